//! pivot-mkinitramfs: builds a reproducible initramfs (newc cpio, sorted,
//! mtime 0, root-owned) with pivot-init as /init, the skeleton of
//! `initramfs/files.txt`, and optionally kernel modules with their
//! dependencies and a `modules.dep` for them. `scripts/mkinitramfs` runs it.

use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode, Stdio};

use pivot_init::cpio::{Archive, Entry, Kind};
use pivot_init::modules::{self, DepMap};
use pivot_init::sys::RealSys;

const USAGE: &str = "usage: pivot-mkinitramfs --init BIN --output FILE [--list FILE]... \
[--modules M1,M2 --kernel-modules /lib/modules/VERSION [--modprobe-d DIR]] \
[--compress gzip|zstd|xz|none] [--add SRC:DEST[:MODE]]...";

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
                if deps.modules.contains_key(m) && !wanted.contains(m) {
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
        if let Some((_, d)) = deps.modules.get(&modules::module_name(rel)) {
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
    println!(
        "{}: {} bytes ({} KiB; {} uncompressed, {}), {} entries, {} module file(s)",
        a.output.display(),
        out.len(),
        out.len().div_ceil(1024),
        raw,
        a.compress,
        arc.entries.len(),
        nmods
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
