//! pivot-mkinitramfs: builds a reproducible initramfs (newc cpio, sorted,
//! mtime 0, root-owned) with pivot-init as /init, the skeleton of
//! `initramfs/files.txt`, and optionally kernel modules with their
//! dependencies and a `modules.dep` for them, and host programs (filesystem
//! checkers, `--binary`) with their interpreter and shared libraries.
//! `scripts/mkinitramfs` runs it.

use std::ffi::OsString;
use std::io;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode, Stdio};

use pivot_init::cpio::{Archive, Entry, Kind};
use pivot_init::elfdeps::{self, FileSystem, Ident, SearchPath};
use pivot_init::modules::{self, DepMap};
use pivot_init::sys::RealSys;

const USAGE: &str = "usage: pivot-mkinitramfs --init BIN --output FILE [--list FILE]... \
[--modules M1,M2 --kernel-modules /lib/modules/VERSION [--modprobe-d DIR]] \
[--compress gzip|zstd|xz|none] [--add SRC:DEST[:MODE]]... \
[--fsck ext2,ext3,ext4,vfat] [--binary /ABSOLUTE/PATH]...";

struct Args {
    init: PathBuf,
    output: PathBuf,
    lists: Vec<PathBuf>,
    modules: Vec<String>,
    kernel_modules: Option<PathBuf>,
    /// `options`/`softdep` lines for the included modules come from here.
    modprobe_d: PathBuf,
    compress: String,
    add: Vec<String>,
    /// Filesystem types whose checkers go in, as given.
    fsck: Vec<String>,
    /// Host programs to put in at their own paths.
    binaries: Vec<PathBuf>,
}

fn parse_args() -> Result<Args, String> {
    let mut a = Args {
        init: PathBuf::new(),
        output: PathBuf::new(),
        lists: Vec::new(),
        modules: Vec::new(),
        kernel_modules: None,
        modprobe_d: PathBuf::from("/etc/modprobe.d"),
        compress: "gzip".into(),
        add: Vec::new(),
        fsck: Vec::new(),
        binaries: Vec::new(),
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let mut val = || it.next().ok_or_else(|| format!("{flag} needs a value"));
        match flag.as_str() {
            "--init" => a.init = val()?.into(),
            "--output" | "-o" => a.output = val()?.into(),
            "--list" => a.lists.push(val()?.into()),
            "--modules" => a.modules.extend(
                val()?
                    .split(',')
                    .filter(|m| !m.is_empty())
                    .map(str::to_string),
            ),
            "--kernel-modules" => a.kernel_modules = Some(val()?.into()),
            "--modprobe-d" => a.modprobe_d = val()?.into(),
            "--compress" => a.compress = val()?,
            "--add" => a.add.push(val()?),
            "--fsck" => a.fsck.extend(
                val()?
                    .split(',')
                    .filter(|t| !t.is_empty())
                    .map(str::to_string),
            ),
            "--binary" => {
                let p = PathBuf::from(val()?);
                if !p.is_absolute() {
                    return Err(format!(
                        "--binary {}: give an absolute path (the program goes to the same path in the image)",
                        p.display()
                    ));
                }
                a.binaries.push(p);
            }
            "--help" | "-h" => return Err(USAGE.into()),
            other => return Err(format!("unknown argument {other}")),
        }
    }
    if a.init.as_os_str().is_empty() || a.output.as_os_str().is_empty() {
        return Err("--init and --output are required".into());
    }
    if !matches!(a.compress.as_str(), "gzip" | "zstd" | "xz" | "none") {
        return Err(format!(
            "--compress {}: expected gzip, zstd, xz or none",
            a.compress
        ));
    }
    if !a.modules.is_empty() && a.kernel_modules.is_none() {
        return Err("--modules needs --kernel-modules /lib/modules/VERSION".into());
    }
    Ok(a)
}

fn read(p: &Path) -> Result<Vec<u8>, String> {
    std::fs::read(p).map_err(|e| format!("cannot read {}: {e}", p.display()))
}

fn file(data: Vec<u8>, mode: u32) -> Entry {
    Entry {
        mode,
        uid: 0,
        gid: 0,
        kind: Kind::File(data),
    }
}

/// The `options` and `softdep` lines of `conf` that concern `included`, as
/// one modprobe.d file, and the soft dependencies to include too.
fn modprobe_lines(
    conf: &modules::ModConfig,
    included: &std::collections::BTreeSet<String>,
) -> String {
    let mut out = String::from("# options and softdep lines for the modules of this initramfs\n");
    for (m, opts) in &conf.options {
        if included.contains(m) {
            out.push_str(&format!("options {m} {}\n", opts.join(" ")));
        }
    }
    for (m, (pre, post)) in &conf.softdeps {
        if included.contains(m) && (!pre.is_empty() || !post.is_empty()) {
            out.push_str(&format!("softdep {m}"));
            if !pre.is_empty() {
                out.push_str(&format!(" pre: {}", pre.join(" ")));
            }
            if !post.is_empty() {
                out.push_str(&format!(" post: {}", post.join(" ")));
            }
            out.push('\n');
        }
    }
    out
}

/// Adds the modules and their dependencies, with a modules.dep for them.
fn add_modules(
    arc: &mut Archive,
    dir: &Path,
    modprobe_d: &Path,
    wanted: &[String],
) -> Result<usize, String> {
    let version = dir.file_name().and_then(|v| v.to_str()).ok_or_else(|| {
        format!(
            "{}: cannot tell the kernel version from the name",
            dir.display()
        )
    })?;
    let dep_text = String::from_utf8_lossy(&read(&dir.join("modules.dep"))?).into_owned();
    let deps = DepMap::parse(&dep_text);
    let builtin_text = std::fs::read(dir.join("modules.builtin")).unwrap_or_default();
    let builtin = modules::parse_builtin(&String::from_utf8_lossy(&builtin_text));
    // modprobe.d of the build host and the tree's modules.softdep; the
    // command line of the boot adds its own parameters later.
    let conf = modules::ModConfig::read(
        &RealSys::default(),
        dir,
        &[&modprobe_d.to_string_lossy()],
        &[],
    );
    // Soft dependencies of what is wanted come along when the tree has them.
    let mut wanted: Vec<String> = wanted.iter().map(|w| modules::normalize(w)).collect();
    let mut i = 0;
    while let Some(w) = wanted.get(i).cloned() {
        if let Some((pre, post)) = modules::lookup(&conf.softdeps, &w) {
            for m in pre.iter().chain(post) {
                if deps.contains(m) && !wanted.contains(m) {
                    wanted.push(m.clone());
                }
            }
        }
        i += 1;
    }
    let files = deps.resolve(&wanted, &builtin).map_err(|e| e.to_string())?;
    let base = format!("/lib/modules/{version}");
    let mut dep_out = String::new();
    for rel in &files {
        arc.add(&format!("{base}/{rel}"), file(read(&dir.join(rel))?, 0o644));
        if let Some((_, d)) = deps.get(&modules::module_name(rel)) {
            dep_out.push_str(&format!("{rel}: {}\n", d.join(" ")).replace(": \n", ":\n"));
        }
    }
    arc.add(
        &format!("{base}/modules.dep"),
        file(dep_out.into_bytes(), 0o644),
    );
    // The aliases of the included modules, so pivot-init can load them by
    // device (coldplug, hotplug).
    let included: std::collections::BTreeSet<String> =
        files.iter().map(|f| modules::module_name(f)).collect();
    let alias_text =
        String::from_utf8_lossy(&std::fs::read(dir.join("modules.alias")).unwrap_or_default())
            .into_owned();
    let aliases: String = modules::Aliases::parse(&alias_text)
        .0
        .iter()
        .filter(|(_, m)| included.contains(m))
        .map(|(p, m)| format!("alias {p} {m}\n"))
        .collect();
    arc.add(
        &format!("{base}/modules.alias"),
        file(aliases.into_bytes(), 0o644),
    );
    arc.add(
        &format!("{base}/modules.builtin"),
        file(builtin_text, 0o644),
    );
    arc.add(
        "/etc/modprobe.d/pivot-init.conf",
        file(modprobe_lines(&conf, &included).into_bytes(), 0o644),
    );
    Ok(files.len())
}

/// Whether `init` is an x86-64 ELF (e_machine 62): xz then adds its x86
/// branch filter, which the kernel's decompressor applies (XZ_DEC_X86).
fn is_x86_64_elf(init: &[u8]) -> bool {
    init.starts_with(b"\x7fELF") && init.get(18..20) == Some(&[62, 0][..])
}

/// Compresses the cpio archive. xz: CRC32 check, the only one the kernel's
/// xz decoder verifies besides none (docs: Documentation/staging/xz.rst).
fn compress(data: Vec<u8>, how: &str, x86: bool) -> Result<Vec<u8>, String> {
    let args: &[&str] = match (how, x86) {
        ("gzip", _) => &["gzip", "-n", "-9", "-c"],
        ("zstd", _) => &["zstd", "-q", "-19", "-c"],
        ("xz", true) => &["xz", "--check=crc32", "--x86", "--lzma2=preset=9e", "-c"],
        ("xz", false) => &["xz", "--check=crc32", "--lzma2=preset=9e", "-c"],
        _ => return Ok(data),
    };
    let mut child = Command::new(args[0])
        .args(&args[1..])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .map_err(|e| format!("cannot run {}: {e} (apt-get install {})", args[0], args[0]))?;
    let mut stdin = child.stdin.take().ok_or("no stdin")?;
    let writer = std::thread::spawn(move || {
        use std::io::Write;
        stdin.write_all(&data)
    });
    let out = child.wait_with_output().map_err(|e| e.to_string())?;
    writer
        .join()
        .map_err(|_| "writer thread failed")?
        .map_err(|e| e.to_string())?;
    if !out.status.success() {
        return Err(format!("{} failed", args[0]));
    }
    Ok(out.stdout)
}

/// A filesystem checker an image can carry: the host program, the names it
/// is also installed as in the image's `/sbin`, the package that has it.
struct Checker {
    fstypes: &'static [&'static str],
    program: &'static str,
    aliases: &'static [&'static str],
    package: &'static str,
}

const CHECKERS: &[Checker] = &[
    Checker {
        fstypes: &["ext2", "ext3", "ext4"],
        program: "e2fsck",
        aliases: &["fsck.ext2", "fsck.ext3", "fsck.ext4"],
        package: "e2fsprogs",
    },
    Checker {
        fstypes: &["vfat"],
        program: "fsck.fat",
        aliases: &["fsck.vfat"],
        package: "dosfstools",
    },
];

/// Filesystems that have no boot-time (preen) checker by design: `--fsck`
/// accepts them, says so and adds nothing.
const NO_CHECKER: &[(&str, &str)] = &[
    (
        "xfs",
        "xfs has no boot-time checker by design: the kernel replays its log at mount \
         (fsck.xfs does nothing; xfs_repair is for a person)",
    ),
    (
        "btrfs",
        "btrfs has no boot-time checker by design: it verifies itself at mount \
         (fsck.btrfs does nothing; btrfs check is for a person)",
    ),
];

/// Where checkers are looked for on the host, in order.
const HOST_SBIN: &[&str] = &["/sbin", "/usr/sbin"];

/// The checkers for the `--fsck` types, each once, and the notes for types
/// that need none; an error for a type nothing is known for.
fn checkers_for(types: &[String]) -> Result<(Vec<&'static Checker>, Vec<String>), String> {
    let mut out: Vec<&'static Checker> = Vec::new();
    let mut notes = Vec::new();
    for t in types {
        if let Some(c) = CHECKERS.iter().find(|c| c.fstypes.contains(&t.as_str())) {
            if !out.iter().any(|o| o.program == c.program) {
                out.push(c);
            }
        } else if let Some((_, why)) = NO_CHECKER.iter().find(|(n, _)| n == t) {
            notes.push(format!("--fsck {t}: nothing added: {why}"));
        } else {
            let known: Vec<&str> = CHECKERS.iter().flat_map(|c| c.fstypes).copied().collect();
            return Err(format!(
                "--fsck {t}: no checker known for {t} (known: {}; xfs and btrfs need none)",
                known.join(", ")
            ));
        }
    }
    Ok((out, notes))
}

/// The host path of a checker: the first of `HOST_SBIN` that has it.
fn find_checker(
    c: &Checker,
    fstype: &str,
    exists: &dyn Fn(&Path) -> bool,
) -> Result<PathBuf, String> {
    HOST_SBIN
        .iter()
        .map(|d| Path::new(d).join(c.program))
        .find(|p| exists(p))
        .ok_or_else(|| {
            format!(
                "--fsck {fstype}: {} not found in {} on this host; it comes with {} \
                 (apt-get install {})",
                c.program,
                HOST_SBIN.join(" or "),
                c.package,
                c.package
            )
        })
}

/// The host's file system, for the dependency resolution.
struct HostFs;

impl FileSystem for HostFs {
    fn read(&self, path: &Path) -> io::Result<Vec<u8>> {
        std::fs::read(path)
    }
    fn read_link(&self, path: &Path) -> io::Result<Option<PathBuf>> {
        if std::fs::symlink_metadata(path)?.file_type().is_symlink() {
            std::fs::read_link(path).map(Some)
        } else {
            Ok(None)
        }
    }
    fn read_dir(&self, dir: &Path) -> io::Result<Vec<OsString>> {
        std::fs::read_dir(dir)?
            .map(|e| e.map(|e| e.file_name()))
            .collect()
    }
}

/// Where the loader looks, for a program of `ident` whose interpreter is
/// `interp`: the host's `/etc/ld.so.conf` directories (what its
/// `ld.so.cache` holds), then the loader's built-in directories as it
/// prints them (`ld.so --help`), or Debian's multiarch ones when it prints
/// none (not glibc's, or not runnable here).
fn search_path(conf_dirs: &[PathBuf], interp: Option<&Path>, ident: Ident) -> SearchPath {
    let from_help = interp
        .and_then(|i| {
            Command::new(i)
                .arg("--help")
                .stderr(Stdio::null())
                .output()
                .ok()
        })
        .map(|o| elfdeps::system_dirs_from_help(&String::from_utf8_lossy(&o.stdout)))
        .unwrap_or_default();
    let system_dirs = if !from_help.is_empty() {
        from_help
    } else {
        elfdeps::multiarch_dirs(ident)
            .unwrap_or_else(|| vec![PathBuf::from("/lib"), PathBuf::from("/usr/lib")])
    };
    SearchPath {
        conf_dirs: conf_dirs.to_vec(),
        system_dirs,
    }
}

/// Programs added from the host, for the summary.
#[derive(Default)]
struct Added {
    programs: usize,
    shared: std::collections::BTreeSet<PathBuf>,
}

/// Adds the host program `host` with its interpreter, libraries and the
/// symlinks on their way, at their host paths; it must be built for
/// `machine` (that of /init) when that is known. `what` names it in errors.
fn add_program(
    arc: &mut Archive,
    host: &Path,
    what: &str,
    machine: Option<Ident>,
    conf_dirs: &[PathBuf],
    added: &mut Added,
) -> Result<elfdeps::Closure, String> {
    let head = elfdeps::parse(&read(host)?).map_err(|e| match e {
        elfdeps::ElfError::NotElf => format!(
            "{what}: {} is not an ELF program (a script?); add it with --add SRC:DEST",
            host.display()
        ),
        e => format!("{what}: {}: {e}", host.display()),
    })?;
    if let Some(m) = machine
        && head.ident != m
    {
        return Err(format!(
            "{what}: {} is built for {}, but /init is for {}: the image needs programs of its machine",
            host.display(),
            head.ident.name(),
            m.name()
        ));
    }
    let sp = search_path(conf_dirs, head.interp.as_deref(), head.ident);
    let closure = elfdeps::resolve(&HostFs, host, &sp).map_err(|e| format!("{what}: {e}"))?;
    for e in &closure.entries {
        match e {
            elfdeps::Entry::File(p) => {
                let mode = std::fs::metadata(p)
                    .map_err(|e| format!("cannot stat {}: {e}", p.display()))?
                    .permissions()
                    .mode()
                    & 0o7777;
                arc.add(&p.to_string_lossy(), file(read(p)?, mode));
            }
            elfdeps::Entry::Symlink { path, target } => arc.add(
                &path.to_string_lossy(),
                Entry {
                    mode: 0o777,
                    uid: 0,
                    gid: 0,
                    kind: Kind::Symlink(target.to_string_lossy().into_owned()),
                },
            ),
        }
    }
    added.programs += 1;
    added.shared.extend(closure.interp.iter().cloned());
    added
        .shared
        .extend(closure.libraries.iter().map(|l| l.path.clone()));
    Ok(closure)
}

fn symlink(arc: &mut Archive, path: &str, target: &str) {
    arc.add(
        path,
        Entry {
            mode: 0o777,
            uid: 0,
            gid: 0,
            kind: Kind::Symlink(target.to_string()),
        },
    );
}

/// One line about a program put in: its libraries and interpreter.
fn describe(image_path: &str, also: &[&str], c: &elfdeps::Closure) -> String {
    let mut line = image_path.to_string();
    if !also.is_empty() {
        line.push_str(&format!(" (also {})", also.join(", ")));
    }
    match &c.interp {
        None => line.push_str(": statically linked"),
        Some(i) => line.push_str(&format!(
            ": {} shared librar{} ({}), interpreter {}",
            c.libraries.len(),
            if c.libraries.len() == 1 { "y" } else { "ies" },
            c.libraries
                .iter()
                .map(|l| l.name.to_string_lossy())
                .collect::<Vec<_>>()
                .join(" "),
            i.display()
        )),
    }
    line
}

/// Adds the checkers for `--fsck` at `/sbin/PROGRAM` with their aliases,
/// and the `--binary` programs, each with what it needs to run.
fn add_programs(arc: &mut Archive, a: &Args, init: &[u8]) -> Result<Added, String> {
    let mut added = Added::default();
    if a.fsck.is_empty() && a.binaries.is_empty() {
        return Ok(added);
    }
    let (checkers, notes) = checkers_for(&a.fsck)?;
    for n in notes {
        eprintln!("pivot-mkinitramfs: {n}");
    }
    let machine = elfdeps::parse(init).ok().map(|d| d.ident);
    let conf_dirs = elfdeps::ld_so_conf_dirs(&HostFs, Path::new("/etc/ld.so.conf"))
        .map_err(|e| e.to_string())?;
    for c in checkers {
        let fstype = a
            .fsck
            .iter()
            .find(|t| c.fstypes.contains(&t.as_str()))
            .map_or(c.program, String::as_str);
        let host = find_checker(c, fstype, &|p| p.is_file())?;
        let what = format!("--fsck {fstype}");
        let closure = add_program(arc, &host, &what, machine, &conf_dirs, &mut added)?;
        let in_image = format!("/sbin/{}", c.program);
        if host != Path::new(&in_image) {
            symlink(arc, &in_image, &host.to_string_lossy());
        }
        for alias in c.aliases {
            symlink(arc, &format!("/sbin/{alias}"), c.program);
        }
        println!("{}", describe(&in_image, c.aliases, &closure));
    }
    for b in &a.binaries {
        let what = format!("--binary {}", b.display());
        let closure = add_program(arc, b, &what, machine, &conf_dirs, &mut added)?;
        println!("{}", describe(&b.to_string_lossy(), &[], &closure));
    }
    Ok(added)
}

fn run() -> Result<(), String> {
    let a = parse_args()?;
    let mut arc = Archive::default();
    for list in &a.lists {
        let text = String::from_utf8_lossy(&read(list)?).into_owned();
        let base = list.parent().unwrap_or(Path::new(".")).to_path_buf();
        arc.add_list(&text, &|src| read(&base.join(src)))
            .map_err(|e| format!("{}: {e}", list.display()))?;
    }
    let init = read(&a.init)?;
    let x86 = is_x86_64_elf(&init);
    // Host programs before --add: an explicit file there wins.
    let added = add_programs(&mut arc, &a, &init)?;
    arc.add("/init", file(init, 0o755));
    for spec in &a.add {
        let parts: Vec<&str> = spec.split(':').collect();
        let (src, dest, mode) = match parts.as_slice() {
            [s, d] => (*s, *d, 0o755),
            [s, d, m] => (
                *s,
                *d,
                u32::from_str_radix(m, 8).map_err(|_| format!("--add {spec}: bad mode"))?,
            ),
            _ => return Err(format!("--add {spec}: expected SRC:DEST[:MODE]")),
        };
        arc.add(dest, file(read(Path::new(src))?, mode));
    }
    let mut nmods = 0;
    if let Some(dir) = &a.kernel_modules {
        nmods = add_modules(&mut arc, dir, &a.modprobe_d, &a.modules)?;
    }
    let cpio = arc.write();
    let raw = cpio.len();
    let out = compress(cpio, &a.compress, x86)?;
    write_atomically(&a.output, &out)?;
    let programs = if added.programs > 0 {
        format!(
            ", {} program(s) with {} shared object(s)",
            added.programs,
            added.shared.len()
        )
    } else {
        String::new()
    };
    println!(
        "{}: {} bytes ({} KiB; {} uncompressed, {}), {} entries, {} module file(s){programs}",
        a.output.display(),
        out.len(),
        out.len().div_ceil(1024),
        raw,
        a.compress,
        arc.entries.len(),
        nmods,
    );
    Ok(())
}

/// Writes `data` to a temporary file beside `path`, syncs it and renames it
/// over `path`: an interrupted build never leaves a truncated image.
fn write_atomically(path: &Path, data: &[u8]) -> Result<(), String> {
    use std::io::Write;
    let name = path
        .file_name()
        .ok_or(format!("{} is not a file name", path.display()))?;
    let mut tmp_name = std::ffi::OsString::from(".");
    tmp_name.push(name);
    tmp_name.push(format!(".tmp{}", std::process::id()));
    let tmp = path.with_file_name(tmp_name);
    let written = std::fs::File::create(&tmp).and_then(|mut f| {
        f.write_all(data)?;
        f.sync_all()
    });
    let r = written.and_then(|()| std::fs::rename(&tmp, path));
    if let Err(e) = r {
        let _ = std::fs::remove_file(&tmp);
        return Err(format!("cannot write {}: {e}", path.display()));
    }
    Ok(())
}

fn main() -> ExitCode {
    match run() {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("pivot-mkinitramfs: {e}");
            ExitCode::from(2)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn types(t: &[&str]) -> Vec<String> {
        t.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn fsck_types() {
        let (c, notes) = checkers_for(&types(&["ext4", "ext2", "vfat", "xfs"])).unwrap();
        let programs: Vec<&str> = c.iter().map(|c| c.program).collect();
        assert_eq!(programs, ["e2fsck", "fsck.fat"]);
        assert_eq!(notes.len(), 1);
        assert!(
            notes[0]
                .starts_with("--fsck xfs: nothing added: xfs has no boot-time checker by design"),
            "{}",
            notes[0]
        );
        assert_eq!(
            checkers_for(&types(&["ext4", "ntfs"])).err().unwrap(),
            "--fsck ntfs: no checker known for ntfs (known: ext2, ext3, ext4, vfat; xfs and btrfs need none)"
        );
    }

    #[test]
    fn missing_checker_names_its_package() {
        let (c, _) = checkers_for(&types(&["ext3", "vfat"])).unwrap();
        assert_eq!(
            find_checker(c[0], "ext3", &|_| false).unwrap_err(),
            "--fsck ext3: e2fsck not found in /sbin or /usr/sbin on this host; it comes with \
             e2fsprogs (apt-get install e2fsprogs)"
        );
        assert!(
            find_checker(c[1], "vfat", &|_| false)
                .unwrap_err()
                .ends_with("it comes with dosfstools (apt-get install dosfstools)")
        );
        // /sbin first, then /usr/sbin.
        assert_eq!(
            find_checker(c[1], "vfat", &|p| p.starts_with("/usr/sbin")).unwrap(),
            PathBuf::from("/usr/sbin/fsck.fat")
        );
        assert_eq!(
            find_checker(c[0], "ext3", &|_| true).unwrap(),
            PathBuf::from("/sbin/e2fsck")
        );
    }
}
