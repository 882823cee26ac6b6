//! The kexec stage (`pivot.kexec`): the volume boots on its own kernel.
//! On the read-only mount, [`choose`] finds the volume's boot entry (every
//! path opened inside the volume) and decides whether to boot it;
//! [`prepare`] checks the kernel, the initramfs and the command line before
//! anything changes; [`load`] hands them to `kexec_file_load`. The boot
//! then unmounts the volume and reboots into the loaded kernel. The rules
//! (entry order, the line, the headers) are pure code in
//! [`crate::bootentry`].

use crate::sys::Instant;
use std::ffi::CString;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use crate::bootentry::{self, BLS_DIR, BlsEntry, KernelImage, Line};
use crate::config::{Config, KexecInitrd, KexecMode, KexecSettings};
use crate::summary::{self, Timings};
use crate::sys::{self, Errno, ErrnoText, FileInfo, FileType, Files, OpenFile, Resolve, Sys};
use crate::wait::Found as Volume;

/// A file of the volume, open: where it was named and where it is.
pub struct Opened {
    /// As named (`/vmlinuz`, an entry's `linux` line), from the volume's root.
    pub path: PathBuf,
    /// Where it is on the volume after every symlink (`/boot/vmlinuz-6.1.0-13-amd64`).
    pub resolved: PathBuf,
    pub file: OpenFile,
    pub info: FileInfo,
}

impl Opened {
    /// `/vmlinuz (/boot/vmlinuz-6.1.0-13-amd64)`, or the path alone.
    pub fn shown(&self) -> String {
        if self.path == self.resolved {
            self.path.display().to_string()
        } else {
            format!("{} ({})", self.path.display(), self.resolved.display())
        }
    }
}

/// The volume's boot entry: what would be booted, and why that.
pub struct Entry {
    pub kernel: Opened,
    /// `None`: the kernel boots without an initramfs.
    pub initrd: Option<Opened>,
    /// The entry's own command line (a BLS entry's `options`).
    pub options: Option<String>,
    /// Its release: the kernel header's, else the entry's `version`, else
    /// the file name's (`vmlinuz-RELEASE`).
    pub release: Option<String>,
    /// What the kernel's header says, or why it is no kernel for this machine.
    pub image: Result<KernelImage, String>,
    /// Why this entry (`BLS entry debian-6.1, the newest of 2 (version ...)`).
    pub why: String,
    /// What was passed over or ignored on the way, for the log.
    pub notes: Vec<String>,
}

/// Opens `p` inside the volume at `root`: every symlink resolved there,
/// never off it. `None` when nothing is there.
fn open(fs: &dyn Files, root: &Path, p: &Path) -> Result<Option<Opened>, String> {
    let file = match fs.open_in(root, p, Resolve::InRoot) {
        Ok(f) => f,
        Err(Errno::NOENT) | Err(Errno::NOTDIR) => return Ok(None),
        Err(e) => {
            return Err(format!(
                "cannot open {} on the volume: {}",
                p.display(),
                ErrnoText(e)
            ));
        }
    };
    // Kernels without openat2 resolve the plain path: refused when it
    // left the volume.
    let Some(resolved) = fs.path_in(&file, root) else {
        return Err(format!(
            "{} resolves to a place outside the volume",
            p.display()
        ));
    };
    let info = file
        .info()
        .map_err(|e| format!("cannot stat {}: {}", p.display(), ErrnoText(e)))?;
    Ok(Some(Opened {
        path: p.to_path_buf(),
        resolved,
        file,
        info,
    }))
}

/// Opens `p`, which must be there.
fn open_needed(fs: &dyn Files, root: &Path, p: &Path, what: &str) -> Result<Opened, String> {
    open(fs, root, p)?.ok_or_else(|| format!("{what} {} is not on the volume", p.display()))
}

/// The names in directory `dir` of the volume (opened inside it); none
/// when it is missing.
fn names_in(fs: &dyn Files, root: &Path, dir: &str) -> Result<Vec<String>, String> {
    let handle = match fs.open_in(root, Path::new(dir), Resolve::DirInRoot) {
        Ok(h) => h,
        Err(Errno::NOENT) | Err(Errno::NOTDIR) => return Ok(Vec::new()),
        Err(e) => return Err(format!("cannot open {dir} on the volume: {}", ErrnoText(e))),
    };
    let at = fs
        .locate(&handle)
        .ok_or_else(|| format!("cannot tell where {dir} of the volume is"))?;
    let mut names = fs
        .read_dir(&at)
        .map_err(|e| format!("cannot list {dir} on the volume: {}", ErrnoText(e)))?;
    names.sort_unstable();
    Ok(names)
}

/// Where the initramfs comes from, before `pivot.kexec_initrd` has its say.
enum InitrdFrom {
    File(Opened),
    /// The entry names none.
    Without,
    /// The one named after the kernel's release, beside it.
    ByName,
}

/// A kernel found, before its initramfs is settled.
struct Found {
    kernel: Opened,
    initrd: InitrdFrom,
    options: Option<String>,
    version: Option<String>,
    why: String,
    notes: Vec<String>,
}

/// The volume's boot entry, first that applies: `pivot.kexec_kernel`; the
/// BLS entries; Debian's `/vmlinuz` links (at the root or in `/boot`); the
/// newest `/boot/vmlinuz-RELEASE` with its initramfs. `None`: the volume
/// has none of them. `pivot.kexec_initrd` replaces the initramfs of any.
pub fn find(
    fs: &dyn Files,
    root: &Path,
    k: &KexecSettings,
    machine: &str,
) -> Result<Option<Entry>, String> {
    let found = match &k.kernel {
        Some(p) => Some(Found {
            kernel: open_needed(fs, root, p, "pivot.kexec_kernel")?,
            initrd: InitrdFrom::ByName,
            options: None,
            version: None,
            why: "pivot.kexec_kernel".into(),
            notes: Vec::new(),
        }),
        None => match bls(fs, root, k.entry.as_deref(), machine)? {
            Some(f) => Some(f),
            None => match links(fs, root)? {
                Some(f) => Some(f),
                None => newest_in_boot(fs, root, k.initrd.is_some())?,
            },
        },
    };
    let Some(f) = found else {
        return Ok(None);
    };
    let initrd = match (&k.initrd, f.initrd) {
        (Some(KexecInitrd::Without), _) => None,
        (Some(KexecInitrd::Path(p)), _) => Some(open_needed(fs, root, p, "pivot.kexec_initrd")?),
        (None, InitrdFrom::File(o)) => Some(o),
        (None, InitrdFrom::Without) => None,
        (None, InitrdFrom::ByName) => Some(beside(fs, root, &f.kernel)?),
    };
    let image = if f.kernel.info.kind == FileType::RegularFile {
        let head = f.kernel.file.head(bootentry::KERNEL_HEAD);
        bootentry::check_kernel(machine, &head, f.kernel.info.size)
    } else {
        Err("it is not a regular file".into())
    };
    let by_name = bootentry::release_of_name(&f.kernel.resolved.to_string_lossy());
    let release = image
        .as_ref()
        .ok()
        .and_then(|i| i.release.clone())
        .or(f.version)
        .or(by_name);
    Ok(Some(Entry {
        kernel: f.kernel,
        initrd,
        options: f.options,
        release,
        image,
        why: f.why,
        notes: f.notes,
    }))
}

/// The initramfs named after `kernel`'s release, in its directory.
fn beside(fs: &dyn Files, root: &Path, kernel: &Opened) -> Result<Opened, String> {
    let resolved = kernel.resolved.to_string_lossy();
    let dir = kernel.resolved.parent().unwrap_or(Path::new("/"));
    if let Some(release) = bootentry::release_of_name(&resolved) {
        for name in bootentry::initrd_names(&release) {
            if let Some(o) = open(fs, root, &dir.join(&name))? {
                return Ok(o);
            }
        }
        let [a, b] = bootentry::initrd_names(&release);
        return Err(format!(
            "no initramfs for {}: neither {} nor {} is on the volume; set \
             pivot.kexec_initrd=PATH, or none to boot without one",
            kernel.shown(),
            dir.join(a).display(),
            dir.join(b).display()
        ));
    }
    Err(format!(
        "no initramfs for {}: its name has no release to find one by; set \
         pivot.kexec_initrd=PATH, or none to boot without one",
        kernel.shown()
    ))
}

/// Rule 2: the BLS type #1 entries.
fn bls(
    fs: &dyn Files,
    root: &Path,
    wanted: Option<&str>,
    machine: &str,
) -> Result<Option<Found>, String> {
    let mut entries = Vec::new();
    let mut notes = Vec::new();
    for name in names_in(fs, root, BLS_DIR)? {
        let Some(stem) = name.strip_suffix(".conf").filter(|s| !s.starts_with('.')) else {
            continue;
        };
        let path = Path::new(BLS_DIR).join(&name);
        let Some(o) = open(fs, root, &path)? else {
            continue;
        };
        if o.info.kind != FileType::RegularFile {
            notes.push(format!("{} is not a regular file", path.display()));
            continue;
        }
        let text = String::from_utf8_lossy(&o.file.head(64 * 1024)).into_owned();
        entries.push(bootentry::parse_bls(stem, &text));
    }
    if entries.is_empty() {
        if let Some(name) = wanted {
            return Err(format!(
                "pivot.kexec_entry={name}: the volume has no {BLS_DIR}/*.conf"
            ));
        }
        return Ok(None);
    }
    let (e, why) = bootentry::choose_bls(&entries, wanted, machine)?;
    bls_found(fs, root, e, why, notes).map(Some)
}

/// The chosen BLS entry's files. Its paths are relative to the filesystem
/// holding the entries: the volume's root, or its `/boot` when that was a
/// filesystem of its own where the entry was written.
fn bls_found(
    fs: &dyn Files,
    root: &Path,
    e: &BlsEntry,
    why: String,
    mut notes: Vec<String>,
) -> Result<Found, String> {
    let conf = format!("{BLS_DIR}/{}.conf", e.name);
    let locate = |p: &str| -> Result<Opened, String> {
        let p = Path::new(p);
        if let Some(o) = open(fs, root, p)? {
            return Ok(o);
        }
        match open(fs, root, &sys_in_boot(p))? {
            Some(o) => Ok(o),
            None => Err(format!(
                "{conf} names {}, which is not on the volume (nor under /boot)",
                p.display()
            )),
        }
    };
    let linux = e.linux.as_deref().unwrap_or_default();
    let kernel = locate(linux)?;
    let initrd = match e.initrd.as_slice() {
        [] => InitrdFrom::Without,
        [one] => InitrdFrom::File(locate(one)?),
        more => {
            return Err(format!(
                "{conf} names {} initramfs files ({}); kexec_file_load takes one: set \
                 pivot.kexec_initrd=PATH",
                more.len(),
                crate::sys::joined(more, ", ")
            ));
        }
    };
    if !e.ignored.is_empty() {
        notes.push(format!(
            "{conf}: ignoring {}",
            crate::sys::joined(&e.ignored, ", ")
        ));
    }
    Ok(Found {
        kernel,
        initrd,
        options: e.options.clone(),
        version: e.version.clone(),
        why,
        notes,
    })
}

/// `p` under the volume's `/boot`.
fn sys_in_boot(p: &Path) -> PathBuf {
    sys::in_root(Path::new("/boot"), p)
}

/// Rule 3: Debian's `/vmlinuz` and `/initrd.img` links, at the root or in `/boot`.
fn links(fs: &dyn Files, root: &Path) -> Result<Option<Found>, String> {
    for dir in ["/", "/boot"] {
        let dir = Path::new(dir);
        let Some(kernel) = open(fs, root, &dir.join("vmlinuz"))? else {
            continue;
        };
        let initrd = match open(fs, root, &dir.join("initrd.img"))? {
            Some(o) => InitrdFrom::File(o),
            None => InitrdFrom::ByName,
        };
        return Ok(Some(Found {
            why: format!("the link {}", kernel.path.display()),
            kernel,
            initrd,
            options: None,
            version: None,
            notes: Vec::new(),
        }));
    }
    Ok(None)
}

/// Rule 4: the newest `/boot/vmlinuz-RELEASE` with its initramfs beside it
/// (any, when `pivot.kexec_initrd` says which).
fn newest_in_boot(
    fs: &dyn Files,
    root: &Path,
    initrd_given: bool,
) -> Result<Option<Found>, String> {
    let names = names_in(fs, root, "/boot")?;
    let releases = bootentry::releases(&names);
    let mut notes = Vec::new();
    for (i, r) in releases.iter().enumerate() {
        let initrd = bootentry::initrd_names(r)
            .into_iter()
            .find(|n| names.contains(n));
        if initrd.is_none() && !initrd_given {
            notes.push(format!("/boot/vmlinuz-{r} has no initramfs beside it"));
            continue;
        }
        let kernel = open_needed(fs, root, Path::new(&format!("/boot/vmlinuz-{r}")), "kernel")?;
        let initrd = match initrd {
            Some(n) => InitrdFrom::File(open_needed(
                fs,
                root,
                &Path::new("/boot").join(n),
                "initramfs",
            )?),
            None => InitrdFrom::Without,
        };
        let why = match (releases.len(), i) {
            (1, _) => format!("/boot/vmlinuz-{r}, the only kernel in /boot"),
            (n, 0) => format!("/boot/vmlinuz-{r}, the newest of {n} in /boot"),
            (n, _) => format!("/boot/vmlinuz-{r}, the newest of {n} in /boot with an initramfs"),
        };
        return Ok(Some(Found {
            kernel,
            initrd,
            options: None,
            version: Some(r.clone()),
            why,
            notes,
        }));
    }
    if releases.is_empty() {
        return Ok(None);
    }
    Err(format!(
        "no kernel in /boot has its initramfs beside it ({}); set pivot.kexec_initrd=PATH, or \
         none to boot without one",
        crate::sys::joined(&notes, "; ")
    ))
}

/// The entry to boot, or why there is none to boot.
pub type Chosen = Result<Box<Entry>, String>;

/// What the check stage decided.
pub enum Choice {
    /// Pivot as without kexec (`auto`), and why.
    Pivot(String),
    /// Boot the volume's kernel: the entry, or why there is none to boot.
    Kexec(Chosen),
}

/// Why the volume has no entry, for `FAILED at kexec` and `plan`.
pub const NO_ENTRY: &str = "the volume has no boot entry: no pivot.kexec_kernel, no \
     /boot/loader/entries/*.conf, no /vmlinuz or /boot/vmlinuz link, no /boot/vmlinuz-RELEASE \
     with its initramfs";

/// On the read-only mount at `root`: whether the volume boots on its own
/// kernel (`pivot.kexec=on`), or, with `auto`, only when its entry's
/// release is not `running` (`uname -r`); logged either way.
pub fn choose(sys: &dyn Sys, root: &Path, cfg: &Config, machine: &str, running: &str) -> Choice {
    if cfg.kexec.mode == KexecMode::Off {
        return Choice::Pivot("pivot.kexec=off".into());
    }
    let found = find(sys, root, &cfg.kexec, machine);
    if let Ok(Some(e)) = &found {
        for n in &e.notes {
            log::info!("kexec: {n}");
        }
    }
    // A kernel that cannot load another: `auto` pivots, and says why.
    if let (KexecMode::Auto, Ok(Some(e))) = (cfg.kexec.mode, &found)
        && e.release.as_deref() != Some(running)
        && let Err(errno) = sys.kexec_file_probe()
    {
        let how = match errno {
            Errno::NOSYS => "it has no kexec_file_load: no CONFIG_KEXEC_FILE".to_string(),
            e => format!("kexec_file_load: {}", ErrnoText(e)),
        };
        let why = format!(
            "pivot.kexec=auto: this kernel cannot boot {} ({how}); pivoting on the running kernel",
            e.kernel.shown()
        );
        log::warn!("{why}");
        return Choice::Pivot(why);
    }
    match (cfg.kexec.mode, found) {
        (KexecMode::Auto, Ok(None)) => {
            let why = format!("pivot.kexec=auto: {NO_ENTRY}; pivoting on the running kernel");
            log::info!("{why}");
            Choice::Pivot(why)
        }
        (KexecMode::Auto, Ok(Some(e))) if e.release.as_deref() == Some(running) => {
            let why = format!(
                "pivot.kexec=auto: {} ({}) is the running release {running}; pivoting on the \
                 running kernel",
                e.kernel.shown(),
                e.why
            );
            log::info!("{why}");
            Choice::Pivot(why)
        }
        (_, Ok(Some(e))) => {
            log::info!(
                "kexec: booting {} (release {}; running {running}): {}",
                e.kernel.shown(),
                e.release.as_deref().unwrap_or("unknown"),
                e.why
            );
            Choice::Kexec(Ok(Box::new(e)))
        }
        (_, Ok(None)) => Choice::Kexec(Err(NO_ENTRY.into())),
        (_, Err(why)) => Choice::Kexec(Err(why)),
    }
}

/// Why the jump does not happen after the load: the volume was busy.
pub const NOT_CLEAN: &str = "the volume could not be unmounted cleanly, and its own kernel \
                             would find its filesystem in use; not jumping";

/// The kexec stage up to the jump: the chosen entry checked
/// ([`prepare`], with the volume's filesystem UUID for a line without one,
/// and, when the boot is `counting` (`pivot.tries`), pivot-init's own
/// `pivot.bootdisk=UUID=...` for `pivot-init bless` there) and loaded
/// ([`load`]).
pub fn load_entry(
    sys: &dyn Sys,
    cfg: &Config,
    running: &str,
    entry: Chosen,
    node: &Path,
    volume: &Volume,
    counting: bool,
) -> Result<(), String> {
    let own: Vec<String> = match counting {
        true => crate::tries::bootdisk_arg(sys).into_iter().collect(),
        false => Vec::new(),
    };
    let uuid = || match &volume.fs {
        Some(p) => Some(p.uuid.clone()),
        None => crate::probe::read(sys, node).ok().flatten().map(|p| p.uuid),
    };
    let root = cfg.new_root.as_path();
    let p = prepare(sys, root, cfg, running, *entry?, &uuid, &own)?;
    load(sys, p)
}

/// An entry that passed every check, and the line it boots with.
pub struct Prepared {
    pub entry: Entry,
    pub image: KernelImage,
    pub line: Line,
    /// Where the line's base came from (`the entry's options`, ...).
    pub line_from: String,
}

/// The checks before anything changes: the kernel is a kernel for this
/// machine (and whole), the initramfs a readable, non-empty regular file,
/// the command line (see [`bootentry::assemble`]; `running` is the running
/// kernel's) within the kernel's limit. `uuid` gives the volume's
/// filesystem UUID for `root=UUID=` when nothing else gives a line.
/// `own` are pivot-init's own keys for the new boot (boot counting's
/// `pivot.bootdisk=UUID=...`): each replaces a word of the entry's line
/// with the same key.
pub fn prepare(
    fs: &dyn Files,
    root: &Path,
    cfg: &Config,
    running: &str,
    entry: Entry,
    uuid: &dyn Fn() -> Option<String>,
    own: &[String],
) -> Result<Prepared, String> {
    let k = entry.kernel.shown();
    let image = entry
        .image
        .clone()
        .map_err(|why| format!("{k} is not a kernel this machine can boot: {why}"))?;
    if let Some(i) = &entry.initrd {
        let shown = i.shown();
        if i.info.kind != FileType::RegularFile {
            return Err(format!("the initramfs {shown} is not a regular file"));
        }
        if i.info.size == 0 {
            return Err(format!("the initramfs {shown} is empty"));
        }
        let mut b = [0u8; 512];
        i.file
            .read_full_at(&mut b, 0)
            .map_err(|e| format!("cannot read the initramfs {shown}: {}", ErrnoText(e)))?;
    }
    let (base, line_from) = match (&cfg.kexec.cmdline, &entry.options) {
        (Some(c), _) => (c.clone(), "pivot.kexec_cmdline".to_string()),
        (None, Some(o)) => (o.clone(), "the entry's options".to_string()),
        (None, None) => match etc_kernel_cmdline(fs, root)? {
            Some(l) => (l, "the volume's /etc/kernel/cmdline".to_string()),
            None => match uuid().filter(|u| !u.is_empty()) {
                Some(u) => (
                    format!("root=UUID={u} ro"),
                    "the volume's filesystem UUID".to_string(),
                ),
                None => {
                    return Err(format!(
                        "no command line for {k}: the entry has none, the volume has no \
                         /etc/kernel/cmdline, and its filesystem has no UUID for root=UUID=; \
                         set pivot.kexec_cmdline"
                    ));
                }
            },
        },
    };
    let line = bootentry::assemble(&base, running, own);
    if line.text.len() > image.max_cmdline {
        return Err(format!(
            "the command line for {k} is {} bytes; the kernel takes at most {}: {}",
            line.text.len(),
            image.max_cmdline,
            line.text
        ));
    }
    if line.text.contains('\0') {
        return Err(format!("the command line for {k} holds a NUL byte"));
    }
    Ok(Prepared {
        entry,
        image,
        line,
        line_from,
    })
}

/// The volume's `/etc/kernel/cmdline` (kernel-install's), whitespace
/// (newlines too) made single spaces; `None` when missing or blank.
fn etc_kernel_cmdline(fs: &dyn Files, root: &Path) -> Result<Option<String>, String> {
    let Some(o) = open(fs, root, Path::new("/etc/kernel/cmdline"))? else {
        return Ok(None);
    };
    if o.info.kind != FileType::RegularFile {
        return Ok(None);
    }
    let text = String::from_utf8_lossy(&o.file.head(16 * 1024)).into_owned();
    let words: Vec<&str> = sys::words(&text).collect();
    Ok((!words.is_empty()).then(|| crate::sys::joined(&words, " ")))
}

/// The lines that say what would be booted (`plan`, `check`, the log):
/// kernel, initramfs, why that entry, the command line.
pub fn describe(p: &Prepared) -> Vec<String> {
    let e = &p.entry;
    let mut out = vec![
        format!(
            "kernel {} ({}, release {})",
            e.kernel.shown(),
            p.image.format,
            e.release.as_deref().unwrap_or("unknown")
        ),
        match &e.initrd {
            Some(i) => format!("initramfs {} ({} bytes)", i.shown(), i.info.size),
            None => "no initramfs".to_string(),
        },
        format!("why: {}", e.why),
    ];
    let mut from = p.line_from.clone();
    if !p.line.carried.is_empty() {
        let _ = write!(
            from,
            ", with {} of the running kernel",
            crate::sys::joined(&p.line.carried, " ")
        );
    }
    if !p.line.dropped.is_empty() {
        let _ = write!(
            from,
            "; left out {}",
            crate::sys::joined(&p.line.dropped, " ")
        );
    }
    out.push(format!("command line ({from}): {}", p.line.text));
    out
}

/// Loads the prepared kernel (`kexec_file_load`); logs what and the whole
/// command line. Nothing of the volume changes; its files are closed after.
pub fn load(sys: &dyn Sys, p: Prepared) -> Result<(), String> {
    // The why was said when the entry was chosen.
    for l in describe(&p).iter().filter(|l| !l.starts_with("why: ")) {
        log_whole(&format!("kexec: {l}"));
    }
    let k = p.entry.kernel.shown();
    let line = CString::new(p.line.text.as_str())
        .map_err(|_| format!("the command line for {k} holds a NUL byte"))?;
    let t = Instant::now();
    let initrd = p.entry.initrd.as_ref().map(|i| &i.file);
    sys.kexec_file_load(&p.entry.kernel.file, initrd, &line)
        .map_err(|errno| {
            format!(
                "kexec_file_load of {k}{} failed: {}",
                p.entry
                    .initrd
                    .as_ref()
                    .map_or(String::new(), |i| format!(" with {}", i.shown())),
                bootentry::load_failure(errno)
            )
        })?;
    log::info!("kexec: loaded {k} in {} ms", sys::millis(t.elapsed()));
    Ok(())
}

/// Logs `text` whole: a line longer than a kernel log record is split
/// into numbered parts (a command line may be 2 KiB).
fn log_whole(text: &str) {
    const PART: usize = 900;
    if text.len() <= PART {
        log::info!("{text}");
        return;
    }
    let mut parts = Vec::new();
    let mut rest = text;
    while !rest.is_empty() {
        let mut cut = rest.len().min(PART);
        while !rest.is_char_boundary(cut) {
            cut -= 1;
        }
        let Some((part, more)) = rest.split_at_checked(cut) else {
            break;
        };
        parts.push(part);
        rest = more;
    }
    let n = parts.len();
    for (i, p) in parts.iter().enumerate() {
        log::info!("({}/{n}) {p}", i + 1);
    }
}

/// The hook does not run when the volume boots on its own kernel: said
/// when the volume has one.
pub fn note_hook(fs: &dyn Files, root: &Path, hook: Option<&Path>) {
    if let Some(h) = hook
        && fs.lstat(&sys::in_root(root, h)).is_ok()
    {
        log::info!(
            "not running hook {}: pivot.kexec boots the volume's own kernel, and its own boot runs instead",
            sys::in_root(root, h).display()
        );
    }
}

/// The last line before the jump: the times, as the summary line of a
/// pivot gives them (the new kernel's log starts afresh).
pub fn jump_line(t: &Timings, volume: &Volume) -> String {
    format!(
        "kexec: unmounted the volume, syncing and rebooting into its kernel; uevent to kexec \
         {} ms; start to kexec {} ms (uptime {} ms); stages {} ms",
        summary::ms3(sys::micros(volume.at.elapsed())),
        sys::millis(t.t0.elapsed()),
        sys::uptime_ms(),
        summary::stage_list(t)
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sys::RealSys;

    fn tree(name: &str) -> PathBuf {
        let d = std::env::temp_dir().join(format!("pivot-kexec-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        std::fs::create_dir_all(&d).unwrap();
        d
    }

    fn put(root: &Path, p: &str, body: &[u8]) {
        let path = root.join(p.trim_start_matches('/'));
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, body).unwrap();
    }

    fn link(root: &Path, p: &str, target: &str) {
        let path = root.join(p.trim_start_matches('/'));
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::os::unix::fs::symlink(target, path).unwrap();
    }

    /// What `find` chose: (kernel as shown, initramfs as shown, why), or the error.
    fn found(root: &Path, k: &KexecSettings) -> Result<Option<(String, String, String)>, String> {
        Ok(find(&RealSys::default(), root, k, "x86_64")?.map(|e| {
            (
                e.kernel.shown(),
                e.initrd.map_or("-".into(), |i| i.shown()),
                e.why,
            )
        }))
    }

    fn some(k: &str, i: &str, why: &str) -> Result<Option<(String, String, String)>, String> {
        Ok(Some((k.into(), i.into(), why.into())))
    }

    #[test]
    fn debian_links_and_kernels_by_name() {
        let root = tree("links");
        let none = KexecSettings::default();
        assert_eq!(found(&root, &none), Ok(None));
        put(&root, "/boot/vmlinuz-6.1.0-9-amd64", b"k9");
        put(&root, "/boot/initrd.img-6.1.0-9-amd64", b"i9");
        put(&root, "/boot/vmlinuz-6.1.0-13-amd64", b"k13");
        // The newest has no initramfs: the newest that has one.
        assert_eq!(
            found(&root, &none),
            some(
                "/boot/vmlinuz-6.1.0-9-amd64",
                "/boot/initrd.img-6.1.0-9-amd64",
                "/boot/vmlinuz-6.1.0-9-amd64, the newest of 2 in /boot with an initramfs"
            )
        );
        put(&root, "/boot/initramfs-6.1.0-13-amd64.img", b"i13");
        assert_eq!(
            found(&root, &none),
            some(
                "/boot/vmlinuz-6.1.0-13-amd64",
                "/boot/initramfs-6.1.0-13-amd64.img",
                "/boot/vmlinuz-6.1.0-13-amd64, the newest of 2 in /boot"
            )
        );
        // Debian's relative links win over names, and are followed inside.
        link(&root, "/vmlinuz", "boot/vmlinuz-6.1.0-9-amd64");
        link(&root, "/initrd.img", "boot/initrd.img-6.1.0-9-amd64");
        assert_eq!(
            found(&root, &none),
            some(
                "/vmlinuz (/boot/vmlinuz-6.1.0-9-amd64)",
                "/initrd.img (/boot/initrd.img-6.1.0-9-amd64)",
                "the link /vmlinuz"
            )
        );
        // An absolute link is the volume's own path, never the boot root's.
        std::fs::remove_file(root.join("initrd.img")).unwrap();
        link(&root, "/initrd.img", "/boot/initrd.img-6.1.0-9-amd64");
        assert_eq!(
            found(&root, &none).unwrap().unwrap().1,
            "/initrd.img (/boot/initrd.img-6.1.0-9-amd64)"
        );
        // A link out of the volume: the file beyond it is never opened.
        let outside = root.with_extension("outside");
        put(&outside, "/vmlinuz-x", b"outside");
        std::fs::remove_file(root.join("vmlinuz")).unwrap();
        link(
            &root,
            "/vmlinuz",
            outside.join("vmlinuz-x").to_str().unwrap(),
        );
        let r = found(&root, &none);
        assert_ne!(
            r.clone().ok().flatten().map(|f| f.0),
            Some("/vmlinuz".into())
        );
        assert!(
            r.as_ref()
                .map_or(true, |f| !format!("{f:?}").contains("outside")),
            "{r:?}"
        );
        // A kernel link without its initramfs link: the one named after it.
        std::fs::remove_file(root.join("vmlinuz")).unwrap();
        std::fs::remove_file(root.join("initrd.img")).unwrap();
        link(&root, "/boot/vmlinuz", "vmlinuz-6.1.0-13-amd64");
        assert_eq!(
            found(&root, &none),
            some(
                "/boot/vmlinuz (/boot/vmlinuz-6.1.0-13-amd64)",
                "/boot/initramfs-6.1.0-13-amd64.img",
                "the link /boot/vmlinuz"
            )
        );
        std::fs::remove_dir_all(&root).unwrap();
        std::fs::remove_dir_all(&outside).unwrap();
    }

    #[test]
    fn settings_and_bls_entries() {
        let root = tree("bls");
        put(&root, "/boot/vmlinuz-6.1", b"k");
        put(&root, "/boot/initrd.img-6.1", b"i");
        put(&root, "/boot/my-initrd", b"i");
        let mut k = KexecSettings {
            kernel: Some("/boot/vmlinuz-6.1".into()),
            ..KexecSettings::default()
        };
        assert_eq!(
            found(&root, &k),
            some(
                "/boot/vmlinuz-6.1",
                "/boot/initrd.img-6.1",
                "pivot.kexec_kernel"
            )
        );
        k.initrd = Some(KexecInitrd::Without);
        assert_eq!(found(&root, &k).unwrap().unwrap().1, "-");
        k.initrd = Some(KexecInitrd::Path("/boot/nope".into()));
        assert_eq!(
            found(&root, &k),
            Err("pivot.kexec_initrd /boot/nope is not on the volume".into())
        );
        k.kernel = Some("/boot/vmlinuz-7".into());
        assert_eq!(
            found(&root, &k),
            Err("pivot.kexec_kernel /boot/vmlinuz-7 is not on the volume".into())
        );
        // BLS entries: paths from the volume's root, or from its /boot (a
        // /boot partition of its own where they were written).
        put(
            &root,
            "/boot/loader/entries/a.conf",
            b"version 6.1\nlinux /vmlinuz-6.1\ninitrd /my-initrd\noptions root=UUID=a\n",
        );
        put(
            &root,
            "/boot/loader/entries/b.conf",
            b"version 6.0\nlinux /boot/vmlinuz-6.1\ninitrd /a /b\n",
        );
        put(
            &root,
            "/boot/loader/entries/c.conf",
            b"version 7\nlinux /vmlinuz-7\n",
        );
        let mut k = KexecSettings {
            entry: Some("a".into()),
            ..KexecSettings::default()
        };
        assert_eq!(
            found(&root, &k),
            some(
                "/boot/vmlinuz-6.1",
                "/boot/my-initrd",
                "BLS entry a, as pivot.kexec_entry asks"
            )
        );
        k.entry = None;
        assert_eq!(
            found(&root, &k),
            Err("/boot/loader/entries/c.conf names /vmlinuz-7, which is not on the volume (nor under /boot)".into())
        );
        std::fs::remove_file(root.join("boot/loader/entries/c.conf")).unwrap();
        let e = find(&RealSys::default(), &root, &k, "x86_64")
            .unwrap()
            .unwrap();
        assert_eq!(e.options.as_deref(), Some("root=UUID=a"));
        assert_eq!(e.release.as_deref(), Some("6.1"));
        // Not a kernel: said when it is checked.
        assert_eq!(
            e.image,
            Err("it is 1 bytes, too short to be a bzImage".into())
        );
        std::fs::remove_dir_all(&root).unwrap();
    }

    #[test]
    fn the_line_from_the_volume_and_its_limit() {
        let root = tree("line");
        let mut head = vec![0u8; 0x264];
        head[0x1f1] = 4;
        head[0x1fe..0x200].copy_from_slice(&[0x55, 0xaa]);
        head[0x202..0x206].copy_from_slice(b"HdrS");
        head[0x206..0x208].copy_from_slice(&0x020fu16.to_le_bytes());
        head[0x211] = 1;
        head[0x236] = 3;
        head[0x238..0x23c].copy_from_slice(&100u32.to_le_bytes());
        head.resize(5 * 512, 0);
        put(&root, "/boot/vmlinuz-6.1", &head);
        put(&root, "/boot/initrd.img-6.1", b"070701");
        let cfg = Config::default();
        let fs = RealSys::default();
        let prep = |uuid: Option<&str>| {
            let e = find(&fs, &root, &cfg.kexec, "x86_64").unwrap().unwrap();
            let u = uuid.map(str::to_string);
            prepare(
                &fs,
                &root,
                &cfg,
                "console=ttyS0 pivot.x=1",
                e,
                &|| u.clone(),
                &[],
            )
            .map(|p| (p.line.text, p.line_from))
        };
        assert_eq!(
            prep(Some("1234")),
            Ok((
                "root=UUID=1234 ro console=ttyS0".into(),
                "the volume's filesystem UUID".into()
            ))
        );
        assert!(
            prep(None)
                .unwrap_err()
                .starts_with("no command line for /boot/vmlinuz-6.1")
        );
        put(&root, "/etc/kernel/cmdline", b"root=LABEL=x\n  quiet\n");
        assert_eq!(
            prep(None),
            Ok((
                "root=LABEL=x quiet console=ttyS0".into(),
                "the volume's /etc/kernel/cmdline".into()
            ))
        );
        // The header's 100 bytes, less 31: 69 at most.
        put(&root, "/etc/kernel/cmdline", "x".repeat(55).as_bytes());
        assert_eq!(prep(None).unwrap().0.len(), 69);
        put(&root, "/etc/kernel/cmdline", "x".repeat(56).as_bytes());
        assert_eq!(
            prep(None).unwrap_err(),
            format!(
                "the command line for /boot/vmlinuz-6.1 is 70 bytes; the kernel takes at most 69: {} console=ttyS0",
                "x".repeat(56)
            )
        );
        std::fs::remove_dir_all(&root).unwrap();
    }
}
