//! Booting a volume's own kernel (`pivot.kexec`), the pure part: Boot Loader
//! Specification type #1 entries and their version order, the choice among
//! a volume's kernels by name, the new kernel's command line, the checks of
//! a kernel image's header (is it a kernel this machine can load, how long
//! may its command line be, which release is it) and what
//! `kexec_file_load`'s errnos mean. Everything here takes text, names and
//! bytes; finding the files inside the volume and loading them is
//! [`crate::kexec`]'s job.

use std::cmp::Ordering;
use std::fmt::Write as _;

use crate::sys::{Errno, ErrnoText};

// ---------------------------------------------------------------------------
// Version order
// ---------------------------------------------------------------------------

/// The characters a version is made of; anything else separates segments
/// and is otherwise ignored (`6.1_rc1` is `6.1rc1`).
fn version_char(c: u8) -> bool {
    c.is_ascii_alphanumeric() || matches!(c, b'~' | b'-' | b'^' | b'.')
}

/// Compares two version strings the way systemd orders boot entries (its
/// rules extend rpm's `rpmvercmp`): the strings are split into numeric and
/// alphabetic segments, each possibly after one of these prefixes:
/// `~` a pre-release (older than anything in its place, even the end of the
/// string), then, each older than what follows it and than a segment
/// without prefix: `-` the start of the release part, `^` a patched
/// release, `.` a point release. Numbers compare as
/// numbers (leading zeros ignored) and are newer than letters; letters
/// compare as bytes, the longer run newer; with every segment equal, the
/// string with more segments is newer. `Greater` means `a` is newer.
pub fn vercmp(a: &str, b: &str) -> Ordering {
    let (mut a, mut b) = (a.as_bytes(), b.as_bytes());
    let skip_invalid = |s: &[u8]| -> usize { s.iter().take_while(|c| !version_char(**c)).count() };
    // `Greater` when `a` lacks the prefix `p` and `b` has it.
    let without = |a: &[u8], b: &[u8], p: u8| (a.first() != Some(&p)).cmp(&(b.first() != Some(&p)));
    loop {
        a = &a[skip_invalid(a)..];
        b = &b[skip_invalid(b)..];
        if a.first() == Some(&b'~') || b.first() == Some(&b'~') {
            let r = without(a, b, b'~');
            if r != Ordering::Equal {
                return r;
            }
            (a, b) = (&a[1..], &b[1..]);
        }
        if a.is_empty() || b.is_empty() {
            return a.len().min(1).cmp(&b.len().min(1));
        }
        for p in [b'-', b'^', b'.'] {
            if a.first() == Some(&p) || b.first() == Some(&p) {
                let r = without(a, b, p);
                if r != Ordering::Equal {
                    return r;
                }
                (a, b) = (&a[1..], &b[1..]);
            }
        }
        let digits = |s: &[u8]| s.iter().take_while(|c| c.is_ascii_digit()).count();
        let letters = |s: &[u8]| s.iter().take_while(|c| c.is_ascii_alphabetic()).count();
        let (na, nb);
        if a.first().is_some_and(u8::is_ascii_digit) || b.first().is_some_and(u8::is_ascii_digit) {
            (na, nb) = (digits(a), digits(b));
            // A number is newer than no number (letters, or nothing).
            let r = (na > 0).cmp(&(nb > 0));
            if r != Ordering::Equal {
                return r;
            }
            let za = a[..na].iter().take_while(|c| **c == b'0').count();
            let zb = b[..nb].iter().take_while(|c| **c == b'0').count();
            let (x, y) = (&a[za..na], &b[zb..nb]);
            let r = x.len().cmp(&y.len()).then_with(|| x.cmp(y));
            if r != Ordering::Equal {
                return r;
            }
        } else {
            (na, nb) = (letters(a), letters(b));
            let n = na.min(nb);
            let r = a[..n].cmp(&b[..n]).then(na.cmp(&nb));
            if r != Ordering::Equal {
                return r;
            }
        }
        // With no segment here (`-` after `.`), the next round takes the
        // prefix: every round consumes something or returns.
        (a, b) = (&a[na..], &b[nb..]);
    }
}

// ---------------------------------------------------------------------------
// Boot Loader Specification type #1 entries
// ---------------------------------------------------------------------------

/// The directory of BLS type #1 entries, as seen from the volume's root.
pub const BLS_DIR: &str = "/boot/loader/entries";

/// One `NAME.conf` of [`BLS_DIR`], as far as booting it by kexec goes.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct BlsEntry {
    /// The file name without `.conf` (what `pivot.kexec_entry` names).
    pub name: String,
    pub title: Option<String>,
    pub version: Option<String>,
    /// `linux`: the kernel, relative to the filesystem holding the entries.
    pub linux: Option<String>,
    /// `initrd` lines, in order (a boot loader loads them one after another).
    pub initrd: Vec<String>,
    /// `options` lines, joined with a space.
    pub options: Option<String>,
    /// `architecture` (`x64`, `aa64`, ...), when the entry names one.
    pub architecture: Option<String>,
    /// Keys this boot cannot honour (`devicetree`, `efi`, ...), for the log.
    pub ignored: Vec<String>,
}

/// Parses a BLS type #1 entry: one `key value` per line (the value is the
/// rest of the line, spaces trimmed), `#` comments and blank lines skipped.
/// `initrd` and `options` may repeat; for any other key the last one counts.
pub fn parse_bls(name: &str, text: &str) -> BlsEntry {
    let mut e = BlsEntry {
        name: name.to_string(),
        ..BlsEntry::default()
    };
    for line in text.lines() {
        let line = crate::sys::trim(line);
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let (key, value) = match line.split_once(|c: char| c.is_ascii_whitespace()) {
            Some((k, v)) => (k, crate::sys::trim(v)),
            None => (line, ""),
        };
        let v = || (!value.is_empty()).then(|| value.to_string());
        match key {
            "title" => e.title = v(),
            "version" => e.version = v(),
            "linux" => e.linux = v(),
            "initrd" => e.initrd.extend(v()),
            "options" => {
                if let Some(v) = v() {
                    e.options = Some(match e.options.take() {
                        Some(o) => format!("{o} {v}"),
                        None => v,
                    });
                }
            }
            "architecture" => e.architecture = v().map(|a| a.to_ascii_lowercase()),
            "machine-id" | "sort-key" => {}
            other => e.ignored.push(other.to_string()),
        }
    }
    e
}

/// The BLS architecture name for `uname -m` (`x64` for x86_64).
pub fn bls_architecture(machine: &str) -> Option<&'static str> {
    Some(match machine {
        "x86_64" => "x64",
        "aarch64" => "aa64",
        "i386" | "i486" | "i586" | "i686" => "ia32",
        "riscv64" => "riscv64",
        m if m.starts_with("armv") => "arm",
        _ => return None,
    })
}

/// Newest first: by `version` (an entry without one by its file name), then
/// by file name, both in [`vercmp`] order.
pub fn bls_order(a: &BlsEntry, b: &BlsEntry) -> Ordering {
    let v = |e: &BlsEntry| e.version.clone().unwrap_or_else(|| e.name.clone());
    vercmp(&v(b), &v(a)).then_with(|| vercmp(&b.name, &a.name))
}

/// The entry to boot among `entries` on machine `machine` (`uname -m`):
/// `wanted` by name (`pivot.kexec_entry`), else the newest usable one.
/// An entry without `linux` (a type #2 or `efi` entry) or for another
/// architecture is passed over. Returns the entry and why it was chosen, or
/// why none can be.
pub fn choose_bls<'a>(
    entries: &'a [BlsEntry],
    wanted: Option<&str>,
    machine: &str,
) -> Result<(&'a BlsEntry, String), String> {
    let unusable = |e: &BlsEntry| -> Option<String> {
        if e.linux.is_none() {
            return Some("it has no `linux` line".into());
        }
        let ours = bls_architecture(machine);
        match (&e.architecture, ours) {
            (Some(a), Some(o)) if a != o => {
                Some(format!("it is for architecture {a}, this machine is {o}"))
            }
            _ => None,
        }
    };
    if let Some(name) = wanted {
        let Some(e) = entries.iter().find(|e| e.name == name) else {
            let mut names: Vec<&str> = entries.iter().map(|e| e.name.as_str()).collect();
            crate::sys::sort_small_by(&mut names, |a, b| a.cmp(b));
            return Err(format!(
                "pivot.kexec_entry={name}: no {BLS_DIR}/{name}.conf on the volume (entries: {})",
                if names.is_empty() {
                    "none".to_string()
                } else {
                    crate::sys::joined(&names, ", ")
                }
            ));
        };
        if let Some(why) = unusable(e) {
            return Err(format!("{BLS_DIR}/{name}.conf cannot be booted: {why}"));
        }
        return Ok((e, format!("BLS entry {name}, as pivot.kexec_entry asks")));
    }
    let mut usable: Vec<&BlsEntry> = entries.iter().filter(|e| unusable(e).is_none()).collect();
    crate::sys::sort_small_by(&mut usable, |a, b| bls_order(a, b));
    let passed: Vec<String> = entries
        .iter()
        .filter_map(|e| unusable(e).map(|why| format!("{}: {why}", e.name)))
        .collect();
    let Some(first) = usable.first() else {
        return Err(format!(
            "no BLS entry in {BLS_DIR} can be booted ({})",
            crate::sys::joined(&passed, "; ")
        ));
    };
    let mut why = match (usable.len(), &first.version) {
        (1, _) => format!("BLS entry {}, the only one", first.name),
        (n, Some(v)) => format!("BLS entry {}, the newest of {n} (version {v})", first.name),
        (n, None) => format!("BLS entry {}, the newest of {n} by name", first.name),
    };
    if !passed.is_empty() {
        let _ = write!(why, "; passed over {}", crate::sys::joined(&passed, "; "));
    }
    Ok((first, why))
}

// ---------------------------------------------------------------------------
// Kernels by file name
// ---------------------------------------------------------------------------

/// The releases of the `vmlinuz-RELEASE` names among `names`, newest first.
pub fn releases(names: &[String]) -> Vec<String> {
    let mut r: Vec<String> = names
        .iter()
        .filter_map(|n| n.strip_prefix("vmlinuz-"))
        .filter(|r| !r.is_empty())
        .map(str::to_string)
        .collect();
    crate::sys::sort_small_by(&mut r, |a, b| vercmp(b, a));
    r
}

/// The release in a kernel's file name (`/boot/vmlinuz-6.1.0-13-amd64`).
pub fn release_of_name(path: &str) -> Option<String> {
    let name = crate::sys::last_name(path);
    let r = name.strip_prefix("vmlinuz-")?;
    (!r.is_empty()).then(|| r.to_string())
}

/// The names an initramfs for `release` goes by, as Debian's
/// initramfs-tools and dracut write them.
pub fn initrd_names(release: &str) -> [String; 2] {
    [
        format!("initrd.img-{release}"),
        format!("initramfs-{release}.img"),
    ]
}

// ---------------------------------------------------------------------------
// The command line
// ---------------------------------------------------------------------------

/// The words of a kernel command line as written: whitespace separates,
/// double quotes group (and are kept, so that a word goes back as it came).
pub fn raw_words(line: &str) -> Vec<&str> {
    let mut out = Vec::new();
    let mut start = None;
    let mut quoted = false;
    for (i, c) in line.char_indices() {
        match c {
            '"' => {
                quoted = !quoted;
                start.get_or_insert(i);
            }
            c if crate::sys::is_space(c) && !quoted => {
                if let Some(word) = start.take().and_then(|s| line.get(s..i)) {
                    out.push(word);
                }
            }
            _ => {
                start.get_or_insert(i);
            }
        }
    }
    if let Some(word) = start.and_then(|s| line.get(s..)) {
        out.push(word);
    }
    out
}

/// A word's key: the part before `=`, quotes removed (`console` of
/// `console=ttyS0`, `ro` of `ro`).
pub fn word_key(word: &str) -> String {
    let plain: String = word.chars().filter(|c| *c != '"').collect();
    match plain.split_once('=') {
        Some((k, _)) => k.to_string(),
        None => plain,
    }
}

/// The keys of the running kernel's line carried into the new one when the
/// new line has none of them: the console keeps working.
pub const CARRIED_KEYS: [&str; 2] = ["console", "earlycon"];

/// The new kernel's command line and how it was made.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Line {
    pub text: String,
    /// Words of the running kernel's line added to it.
    pub carried: Vec<String>,
    /// Words of the base left out: unexpanded boot-loader variables
    /// (`$tuned_params`) and words that `own` replaces.
    pub dropped: Vec<String>,
}

/// The new kernel's line: `base` (the entry's options, or what stands in
/// for them), then the `console=` and `earlycon` words of `running` for
/// each of those keys `base` lacks (nothing else of the running line, so no
/// `pivot.*` key ever crosses), then `own` (pivot-init's own keys for the
/// new boot, which replace words of `base` with the same key). Added words
/// go before a `--` (whatever follows it is the init's).
pub fn assemble(base: &str, running: &str, own: &[String]) -> Line {
    let own_keys: Vec<String> = own.iter().map(|w| word_key(w)).collect();
    let words = raw_words(base);
    let split = words.iter().position(|w| *w == "--").unwrap_or(words.len());
    let (head, tail) = words.split_at(split);
    let mut kept = Vec::new();
    let mut dropped = Vec::new();
    for w in head {
        if w.starts_with('$') || own_keys.contains(&word_key(w)) {
            dropped.push(w.to_string());
        } else {
            kept.push(w.to_string());
        }
    }
    let mut carried = Vec::new();
    for key in CARRIED_KEYS {
        if kept.iter().any(|w| word_key(w) == key) {
            continue;
        }
        carried.extend(
            raw_words(running)
                .into_iter()
                .filter(|w| word_key(w) == key)
                .map(str::to_string),
        );
    }
    let mut all: Vec<String> = kept;
    all.extend(carried.iter().cloned());
    all.extend(own.iter().cloned());
    all.extend(tail.iter().map(|w| w.to_string()));
    Line {
        text: crate::sys::joined(&all, " "),
        carried,
        dropped,
    }
}

// ---------------------------------------------------------------------------
// Kernel images
// ---------------------------------------------------------------------------

/// How much of a kernel file [`check_kernel`] looks at: a bzImage's setup
/// code (at most 255 sectors of 512 bytes and its boot sector) holds the
/// header and the version string; an arm64 Image's header is 64 bytes.
pub const KERNEL_HEAD: usize = 256 * 512;

/// What the header of a kernel this machine can load says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KernelImage {
    /// `bzImage` or `arm64 Image`.
    pub format: &'static str,
    /// The release its header names (a bzImage's version string), if any.
    pub release: Option<String>,
    /// The longest command line (without its NUL) the kernel takes.
    pub max_cmdline: usize,
}

fn le(b: &[u8], off: usize, n: usize) -> Option<u64> {
    let s = b.get(off..off.checked_add(n)?)?;
    Some(s.iter().rev().fold(0, |v, x| (v << 8) | u64::from(*x)))
}

/// arm64's `COMMAND_LINE_SIZE` (with the NUL).
const ARM64_COMMAND_LINE_SIZE: usize = 2048;
/// What x86's kexec_file loader keeps free of the header's `cmdline_size`
/// for the `elfcorehdr=0x...` it may append (`MAX_ELFCOREHDR_STR_LEN`).
const X86_ELFCOREHDR_ROOM: usize = 30;

/// What a file that is no kernel for this machine is, when it is something
/// recognisable.
fn what_else(head: &[u8], machine: &str) -> Option<String> {
    let arm64 = head.get(0x38..0x3c) == Some(b"ARM\x64");
    let bz = head.get(0x202..0x206) == Some(b"HdrS");
    Some(if head.starts_with(b"\x7fELF") {
        "it is an ELF file (a program, or an unpacked vmlinux), not a kernel image".into()
    } else if head.starts_with(&[0x1f, 0x8b]) {
        "it is gzip-compressed data, not a kernel image".into()
    } else if arm64 && machine != "aarch64" {
        format!("it is an arm64 kernel Image, but this machine runs {machine}")
    } else if bz && machine != "x86_64" {
        format!("it is an x86 bzImage, but this machine runs {machine}")
    } else {
        return None;
    })
}

/// Checks that `head` (the first [`KERNEL_HEAD`] bytes of a file of `len`
/// bytes) is a kernel that `kexec_file_load` on `machine` (`uname -m`) can
/// load, as far as its header tells: x86_64 a bzImage (boot flag 0xAA55 and
/// `HdrS`, protocol 2.12 or later, loaded high, a 64-bit entry that may sit
/// above 4 GiB, and the whole of what its header says it holds, since the
/// kernel checks only the header); arm64 an uncompressed `Image` (magic
/// `ARM\x64`, a non-zero image size, little-endian). Why not, when not.
pub fn check_kernel(machine: &str, head: &[u8], len: u64) -> Result<KernelImage, String> {
    if let Some(other) = what_else(head, machine) {
        return Err(other);
    }
    match machine {
        "x86_64" => check_bzimage(head, len),
        "aarch64" => check_arm64_image(head, len),
        m => Err(format!(
            "pivot.kexec boots x86_64 and arm64 kernels; this machine is {m}"
        )),
    }
}

fn check_bzimage(h: &[u8], len: u64) -> Result<KernelImage, String> {
    let field = |off, n| le(h, off, n).unwrap_or(0);
    if len < 0x264 || h.len() < 0x264 {
        return Err(format!("it is {len} bytes, too short to be a bzImage"));
    }
    if field(0x1fe, 2) != 0xAA55 || h.get(0x202..0x206) != Some(b"HdrS") {
        return Err(
            "it is not a bzImage (no 0xAA55 boot flag at 0x1fe and `HdrS` at 0x202)".into(),
        );
    }
    let version = field(0x206, 2);
    if version < 0x020C {
        return Err(format!(
            "its boot protocol is {}.{:02}; kexec_file_load needs 2.12 or later",
            version >> 8,
            version & 0xff
        ));
    }
    if field(0x211, 1) & 1 == 0 {
        return Err("it is a zImage that is not loaded high (loadflags bit 0 clear)".into());
    }
    let xload = field(0x236, 2);
    if xload & 0b11 != 0b11 {
        return Err(format!(
            "it has no 64-bit entry loadable above 4 GiB (xloadflags {xload:#x}, bits 0 and 1 needed)"
        ));
    }
    let setup_sects = match field(0x1f1, 1) {
        0 => 4,
        n => n,
    };
    let need = (setup_sects + 1) * 512 + field(0x1f4, 4) * 16;
    if len < need {
        return Err(format!(
            "it is cut short: {len} bytes, but its header says it holds {need}"
        ));
    }
    let cmdline_size = usize::try_from(field(0x238, 4)).unwrap_or(0);
    // The version string: at 0x200 + kernel_version, NUL-terminated;
    // `uname -r` is its first word.
    let release = match field(0x20e, 2) {
        0 => None,
        at => h
            .get(
                usize::try_from(at)
                    .unwrap_or(usize::MAX)
                    .saturating_add(0x200)..,
            )
            .and_then(|s| s.split(|c| *c == 0).next())
            .and_then(|s| std::str::from_utf8(s).ok())
            .and_then(|s| crate::sys::words(s).next())
            .map(str::to_string),
    };
    Ok(KernelImage {
        format: "bzImage",
        release,
        max_cmdline: cmdline_size.saturating_sub(X86_ELFCOREHDR_ROOM + 1),
    })
}

fn check_arm64_image(h: &[u8], len: u64) -> Result<KernelImage, String> {
    if len < 64 || h.len() < 64 {
        return Err(format!(
            "it is {len} bytes, too short to be an arm64 kernel Image"
        ));
    }
    if h.starts_with(b"MZ") && h.get(4..8) == Some(b"zimg") {
        return Err(
            "it is an EFI zboot image (a compressed kernel); kexec_file_load on arm64 takes an \
             uncompressed Image: boot the Image the zboot file holds"
                .into(),
        );
    }
    if h.get(0x38..0x3c) != Some(b"ARM\x64") {
        return Err("it is not an arm64 kernel Image (no `ARM\\x64` magic at 0x38)".into());
    }
    if le(h, 0x10, 8) == Some(0) {
        return Err(
            "its Image header has image_size 0 (a kernel older than 3.17, which kexec cannot place)"
                .into(),
        );
    }
    if le(h, 0x18, 8).unwrap_or(0) & 1 == 1 {
        return Err("it is a big-endian kernel; this one runs little-endian".into());
    }
    Ok(KernelImage {
        format: "arm64 Image",
        release: None,
        max_cmdline: ARM64_COMMAND_LINE_SIZE - 1,
    })
}

/// What a failed `kexec_file_load` means, as the kernel means it.
pub fn load_failure(errno: Errno) -> String {
    let e = ErrnoText(errno);
    match errno {
        Errno::NOEXEC => format!(
            "the running kernel cannot load it as a kernel ({e}; its loader's reason is in the kernel log)"
        ),
        Errno::KEYREJECTED | Errno::NOKEY | Errno::BADMSG => format!(
            "its signature was rejected ({e}): with lockdown or Secure Boot the running kernel \
             loads only kernels signed with a key it trusts"
        ),
        Errno::PERM => format!(
            "not permitted ({e}): lockdown or Secure Boot wants a signed kernel, or kexec is \
             disabled (kernel.kexec_load_disabled), or pivot-init lacks CAP_SYS_BOOT"
        ),
        Errno::BUSY => format!("another kexec load is in progress ({e})"),
        Errno::NOMEM => format!("not enough memory to place the kernel and initramfs ({e})"),
        Errno::NOSYS => {
            format!("this kernel cannot load a kernel from a file (no CONFIG_KEXEC_FILE; {e})")
        }
        Errno::INVAL => format!(
            "the running kernel refused the load ({e}): an empty or non-regular file, a command \
             line too long, or a kernel header it rejects"
        ),
        Errno::TXTBSY => format!("a file is open for writing ({e})"),
        Errno::FBIG => format!("a file is too large for the kernel to read ({e})"),
        _ => e.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions_in_the_documented_order() {
        // The order systemd documents for its version comparison, oldest first.
        let order = [
            "122.1",
            "123~rc1-1",
            "123",
            "123-a",
            "123-a.1",
            "123-1",
            "123-1.1",
            "123^post1",
            "123.a-1",
            "123.1-1",
            "123a-1",
            "124-1",
        ];
        for (i, a) in order.iter().enumerate() {
            for (j, b) in order.iter().enumerate() {
                assert_eq!(vercmp(a, b), i.cmp(&j), "{a} vs {b}");
            }
        }
    }

    #[test]
    fn versions_of_kernels() {
        use Ordering::*;
        assert_eq!(
            vercmp("6.1.0-57-cloud-amd64", "6.1.0-9-cloud-amd64"),
            Greater
        );
        assert_eq!(vercmp("6.10.1", "6.9.12"), Greater);
        assert_eq!(vercmp("5.15.0-100-generic", "5.15.0-99-generic"), Greater);
        assert_eq!(
            vercmp("6.5.6-300.fc39.x86_64", "6.5.6-300.fc39.x86_64"),
            Equal
        );
        assert_eq!(
            vercmp("6.5.12-300.fc39.x86_64", "6.5.6-300.fc39.x86_64"),
            Greater
        );
        // Only `~` marks a pre-release: `-rc1` is one segment more, so newer
        // (as systemd and rpm have it).
        assert_eq!(vercmp("6.6.0-rc1", "6.6.0"), Greater);
        assert_eq!(vercmp("6.6~rc1", "6.6"), Less);
        // Leading zeros and separators that are not version characters.
        assert_eq!(vercmp("1.001", "1.1"), Equal);
        assert_eq!(vercmp("1_2", "12"), Less);
        assert_eq!(vercmp("1_a", "1a"), Equal);
        assert_eq!(vercmp("", ""), Equal);
        assert_eq!(vercmp("1", ""), Greater);
        assert_eq!(vercmp("~", ""), Less);
        // A prefix with nothing after it ends the loop.
        assert_eq!(vercmp("1.", "1"), Greater);
        assert_eq!(vercmp("1.-", "1.-"), Equal);
        assert_eq!(vercmp("a", "1"), Less);
    }

    #[test]
    fn a_bls_entry() {
        let e = parse_bls(
            "fedora-6.5",
            "# comment\ntitle Fedora Linux (6.5)\nversion  6.5.6-300.fc39.x86_64\n\
             linux /vmlinuz-6.5.6\ninitrd /initramfs-6.5.6.img\noptions root=UUID=x ro\n\
             options rhgb quiet\ndevicetree /dtb\narchitecture X64\nsort-key fedora\n\n",
        );
        assert_eq!(e.title.as_deref(), Some("Fedora Linux (6.5)"));
        assert_eq!(e.version.as_deref(), Some("6.5.6-300.fc39.x86_64"));
        assert_eq!(e.linux.as_deref(), Some("/vmlinuz-6.5.6"));
        assert_eq!(e.initrd, ["/initramfs-6.5.6.img"]);
        assert_eq!(e.options.as_deref(), Some("root=UUID=x ro rhgb quiet"));
        assert_eq!(e.architecture.as_deref(), Some("x64"));
        assert_eq!(e.ignored, ["devicetree"]);
    }

    fn entry(name: &str, version: Option<&str>) -> BlsEntry {
        BlsEntry {
            name: name.into(),
            version: version.map(str::to_string),
            linux: Some(format!("/vmlinuz-{name}")),
            ..BlsEntry::default()
        }
    }

    #[test]
    fn the_newest_usable_entry_or_the_named_one() {
        let mut efi = entry("uki", Some("9.9"));
        efi.linux = None;
        let mut arm = entry("arm", Some("9.8"));
        arm.architecture = Some("aa64".into());
        let entries = vec![
            entry("a-6.1.0-9", Some("6.1.0-9-amd64")),
            entry("b-6.1.0-13", Some("6.1.0-13-amd64")),
            entry("c-old", Some("5.10.0-20-amd64")),
            efi,
            arm,
        ];
        let (e, why) = choose_bls(&entries, None, "x86_64").unwrap();
        assert_eq!(e.name, "b-6.1.0-13");
        assert_eq!(
            why,
            "BLS entry b-6.1.0-13, the newest of 3 (version 6.1.0-13-amd64); passed over \
             uki: it has no `linux` line; arm: it is for architecture aa64, this machine is x64"
        );
        let (e, why) = choose_bls(&entries, Some("c-old"), "x86_64").unwrap();
        assert_eq!(
            (e.name.as_str(), why.as_str()),
            ("c-old", "BLS entry c-old, as pivot.kexec_entry asks")
        );
        assert_eq!(
            choose_bls(&entries, Some("nope"), "x86_64").unwrap_err(),
            "pivot.kexec_entry=nope: no /boot/loader/entries/nope.conf on the volume \
             (entries: a-6.1.0-9, arm, b-6.1.0-13, c-old, uki)"
        );
        assert_eq!(
            choose_bls(&entries, Some("arm"), "x86_64").unwrap_err(),
            "/boot/loader/entries/arm.conf cannot be booted: it is for architecture aa64, this machine is x64"
        );
        // On arm64 the arm entry is the newest.
        assert_eq!(choose_bls(&entries, None, "aarch64").unwrap().0.name, "arm");
        // Without versions: by file name.
        let named = [entry("linux-6.1", None), entry("linux-6.10", None)];
        let (e, why) = choose_bls(&named, None, "x86_64").unwrap();
        assert_eq!(e.name, "linux-6.10");
        assert_eq!(why, "BLS entry linux-6.10, the newest of 2 by name");
        assert_eq!(
            choose_bls(&entries[3..4], None, "x86_64").unwrap_err(),
            "no BLS entry in /boot/loader/entries can be booted (uki: it has no `linux` line)"
        );
    }

    #[test]
    fn kernels_by_name() {
        let names: Vec<String> = [
            "vmlinuz-6.1.0-9-amd64",
            "config-6.1.0-13-amd64",
            "vmlinuz-6.1.0-13-amd64",
            "vmlinuz-",
            "vmlinuz",
            "initrd.img-6.1.0-13-amd64",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        assert_eq!(releases(&names), ["6.1.0-13-amd64", "6.1.0-9-amd64"]);
        assert_eq!(
            release_of_name("/boot/vmlinuz-6.1.0-13-amd64").as_deref(),
            Some("6.1.0-13-amd64")
        );
        assert_eq!(release_of_name("/vmlinuz"), None);
        assert_eq!(
            initrd_names("6.1"),
            [
                "initrd.img-6.1".to_string(),
                "initramfs-6.1.img".to_string()
            ]
        );
    }

    #[test]
    fn command_line_words_keep_their_quotes() {
        assert_eq!(
            raw_words("  a=1 b=\"x y\"  \"c=2 3\" d\n"),
            ["a=1", "b=\"x y\"", "\"c=2 3\"", "d"]
        );
        assert_eq!(word_key("b=\"x y\""), "b");
        assert_eq!(word_key("\"c=2 3\""), "c");
        assert_eq!(word_key("ro"), "ro");
        assert!(raw_words(" \n").is_empty());
    }

    #[test]
    fn the_new_line() {
        let running = "BOOT_IMAGE=/vmlinuz console=tty0 console=ttyS0,115200 earlycon=uart,io,0x3f8 \
                       root=PARTUUID=x rw pivot.root=UUID=y pivot.kexec=on quiet";
        // The entry's options with neither key: both carried, nothing else.
        let l = assemble("root=UUID=v ro kexec.marker=1", running, &[]);
        assert_eq!(
            l.text,
            "root=UUID=v ro kexec.marker=1 console=tty0 console=ttyS0,115200 earlycon=uart,io,0x3f8"
        );
        assert_eq!(l.carried.len(), 3);
        assert!(!l.text.contains("pivot."));
        // A console of its own: only earlycon is carried.
        let l = assemble("root=UUID=v console=hvc0", running, &[]);
        assert_eq!(l.text, "root=UUID=v console=hvc0 earlycon=uart,io,0x3f8");
        // Before `--`; unexpanded boot-loader variables dropped; own keys
        // replace the entry's words of the same key.
        let own = ["pivot.bootdisk=UUID=b".to_string()];
        let l = assemble(
            "root=UUID=v $tuned_params pivot.bootdisk=UUID=old ro -- single x",
            "console=ttyS0",
            &own,
        );
        assert_eq!(
            l.text,
            "root=UUID=v ro console=ttyS0 pivot.bootdisk=UUID=b -- single x"
        );
        assert_eq!(l.dropped, ["$tuned_params", "pivot.bootdisk=UUID=old"]);
        // Quoted words go back as they came.
        let l = assemble("root=UUID=v \"dyndbg=file a.c +p\"", "", &[]);
        assert_eq!(l.text, "root=UUID=v \"dyndbg=file a.c +p\"");
    }

    /// The head of a bzImage with the fields `check_kernel` reads.
    fn bzimage(setup_sects: u8, syssize: u32) -> Vec<u8> {
        let mut h = vec![0u8; 0x8000];
        let put = |h: &mut Vec<u8>, off: usize, v: u64, n: usize| {
            h[off..off + n].copy_from_slice(&v.to_le_bytes()[..n]);
        };
        put(&mut h, 0x1f1, setup_sects.into(), 1);
        put(&mut h, 0x1f4, syssize.into(), 4);
        put(&mut h, 0x1fe, 0xAA55, 2);
        h[0x202..0x206].copy_from_slice(b"HdrS");
        put(&mut h, 0x206, 0x020F, 2);
        put(&mut h, 0x20e, 0x3000 - 0x200, 2);
        h[0x3000..0x3000 + 38].copy_from_slice(b"6.1.0-57-cloud-amd64 (debian-kernel@x)");
        put(&mut h, 0x211, 1, 1);
        put(&mut h, 0x236, 0x7f, 2);
        put(&mut h, 0x238, 2047, 4);
        h
    }

    #[test]
    fn a_bzimage_whole_and_cut() {
        let h = bzimage(0x1b, 0x10000);
        let whole = (0x1b + 1) * 512 + 0x10000 * 16;
        let k = check_kernel("x86_64", &h, whole).unwrap();
        assert_eq!(
            k,
            KernelImage {
                format: "bzImage",
                release: Some("6.1.0-57-cloud-amd64".into()),
                max_cmdline: 2016,
            }
        );
        // Longer (a signature after it) is fine; shorter is cut.
        assert!(check_kernel("x86_64", &h, whole + 1472).is_ok());
        assert_eq!(
            check_kernel("x86_64", &h, 1 << 20).unwrap_err(),
            format!("it is cut short: 1048576 bytes, but its header says it holds {whole}")
        );
        // setup_sects 0 means 4.
        let h0 = bzimage(0, 1);
        assert!(check_kernel("x86_64", &h0, 5 * 512 + 16).is_ok());
        assert!(check_kernel("x86_64", &h0, 5 * 512 + 15).is_err());
        let bad = |f: &dyn Fn(&mut Vec<u8>)| {
            let mut h = bzimage(0x1b, 1);
            f(&mut h);
            check_kernel("x86_64", &h, 1 << 20).unwrap_err()
        };
        assert_eq!(
            bad(&|h| h[0x202] = b'X'),
            "it is not a bzImage (no 0xAA55 boot flag at 0x1fe and `HdrS` at 0x202)"
        );
        assert_eq!(
            bad(&|h| h[0x206] = 0x0b),
            "its boot protocol is 2.11; kexec_file_load needs 2.12 or later"
        );
        assert_eq!(
            bad(&|h| h[0x211] = 0),
            "it is a zImage that is not loaded high (loadflags bit 0 clear)"
        );
        assert_eq!(
            bad(&|h| h[0x236] = 1),
            "it has no 64-bit entry loadable above 4 GiB (xloadflags 0x1, bits 0 and 1 needed)"
        );
        assert_eq!(
            check_kernel("x86_64", &h[..100], 100).unwrap_err(),
            "it is 100 bytes, too short to be a bzImage"
        );
        assert_eq!(
            check_kernel("aarch64", &h, whole).unwrap_err(),
            "it is an x86 bzImage, but this machine runs aarch64"
        );
        assert_eq!(
            check_kernel("riscv64", b"\0\0\0\0", 4).unwrap_err(),
            "pivot.kexec boots x86_64 and arm64 kernels; this machine is riscv64"
        );
    }

    #[test]
    fn other_files_are_named() {
        let mut elf = b"\x7fELF".to_vec();
        elf.resize(4096, 0);
        assert_eq!(
            check_kernel("x86_64", &elf, 4096).unwrap_err(),
            "it is an ELF file (a program, or an unpacked vmlinux), not a kernel image"
        );
        assert_eq!(
            check_kernel("aarch64", &[0x1f, 0x8b, 8, 0], 4).unwrap_err(),
            "it is gzip-compressed data, not a kernel image"
        );
        assert_eq!(
            check_kernel("x86_64", b"hello", 5).unwrap_err(),
            "it is 5 bytes, too short to be a bzImage"
        );
    }

    fn arm64_image(image_size: u64, flags: u64) -> Vec<u8> {
        let mut h = vec![0u8; 4096];
        h[..2].copy_from_slice(b"MZ");
        h[0x10..0x18].copy_from_slice(&image_size.to_le_bytes());
        h[0x18..0x20].copy_from_slice(&flags.to_le_bytes());
        h[0x38..0x3c].copy_from_slice(b"ARM\x64");
        h
    }

    #[test]
    fn arm64_images() {
        let k = check_kernel("aarch64", &arm64_image(0x2000000, 0xa), 30 << 20).unwrap();
        assert_eq!(
            (k.format, k.max_cmdline, k.release),
            ("arm64 Image", 2047, None)
        );
        assert_eq!(
            check_kernel("aarch64", &arm64_image(0, 0xa), 30 << 20).unwrap_err(),
            "its Image header has image_size 0 (a kernel older than 3.17, which kexec cannot place)"
        );
        assert_eq!(
            check_kernel("aarch64", &arm64_image(1, 1), 30 << 20).unwrap_err(),
            "it is a big-endian kernel; this one runs little-endian"
        );
        assert_eq!(
            check_kernel("x86_64", &arm64_image(1, 0), 30 << 20).unwrap_err(),
            "it is an arm64 kernel Image, but this machine runs x86_64"
        );
        let mut zboot = vec![0u8; 4096];
        zboot[..8].copy_from_slice(b"MZ\0\0zimg");
        assert!(
            check_kernel("aarch64", &zboot, 4096)
                .unwrap_err()
                .starts_with("it is an EFI zboot image")
        );
        assert_eq!(
            check_kernel("aarch64", &[0u8; 4096], 4096).unwrap_err(),
            "it is not an arm64 kernel Image (no `ARM\\x64` magic at 0x38)"
        );
    }

    #[test]
    fn load_errnos_as_the_kernel_means_them() {
        assert_eq!(
            load_failure(Errno::NOSYS),
            "this kernel cannot load a kernel from a file (no CONFIG_KEXEC_FILE; errno 38 (Function not implemented))"
        );
        assert!(load_failure(Errno::KEYREJECTED).contains("lockdown or Secure Boot"));
        assert!(load_failure(Errno::PERM).contains("lockdown or Secure Boot"));
        assert!(
            load_failure(Errno::NOEXEC)
                .starts_with("the running kernel cannot load it as a kernel (errno 8")
        );
        assert!(load_failure(Errno::BUSY).contains("in progress"));
        assert!(load_failure(Errno::NOMEM).contains("memory"));
        assert_eq!(load_failure(Errno::IO), "errno 5 (Input/output error)");
    }
}
