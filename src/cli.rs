//! The command-line tool the binary is when it is not PID 1: `plan` shows how
//! a boot would read its settings and which devices match now; `check`
//! inspects a prepared volume tree the way the boot would. Both only read.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use crate::config::{self, Config, KexecMode, Parsed};
use crate::kexec::{self, Choice};
use crate::matching::{self, Facts, Verdict, Want};
use crate::modules::{self, ModConfig};
use crate::node::Device;
use crate::preflight::{self, HookCheck, OldRootCheck};
use crate::probe;
use crate::sys::{self, Files, Kernel, RealSys, Sys};
use crate::sysblock::{Nodes, SysBlock};
use crate::tries;

pub const USAGE: &str = "\
usage: pivot-init plan [--cmdline STRING] [--config FILE] [--initramfs] [--sysfs DIR]
       pivot-init check VOLUME_DIR [--cmdline STRING] [--config FILE]
       pivot-init bless [--root DIR]
       pivot-init status [--root DIR]
       pivot-init --help | --version

As PID 1, pivot-init waits for the volume named by pivot.root=, mounts it,
runs its pre-pivot hook, pivots onto it and execs its init. Otherwise:

  plan   parse the config file (default /etc/pivot-init.conf) and the kernel
         command line (default /proc/cmdline) exactly as the boot would; print
         every setting with where it came from, every warning, and the block
         devices of this machine that match the volume spec now (read-only;
         --sysfs reads another copy of /sys/class/block).
         Exit status: 0 fine, 1 warnings or no volume spec, 2 bad arguments.
  check  check a volume tree as the boot would before switching to it: the
         init and its interpreter, the hook's permissions, the old-root
         directory; with pivot.kexec, the boot entry that would be booted.
         Exit status: 0 fine, 1 problems found, 2 bad arguments.
  bless  run by the volume's system once it is up (pivot.tries): gives the
         volume every try back in the boot count on the boot disk. The boot
         disk is --root DIR, else the device pivot.bootdisk= names on
         /proc/cmdline (after a kexec; mounted for the write), else
         /old-root (after a pivot), else / when the count is there.
         Exit status: 0 the count was written, 1 it was not, 2 bad arguments.
  status print the boot count on the boot disk (found as for bless): the
         volume, its tries left, the last attempt and the last bless.
";

/// Options shared by `plan` and `check`.
struct Opts {
    cmdline: Option<String>,
    config: Option<PathBuf>,
    initramfs: bool,
    sysfs: Option<PathBuf>,
    positional: Vec<String>,
}

fn parse_opts(args: &[String], allow_initramfs: bool) -> Result<Opts, String> {
    let mut o = Opts {
        cmdline: None,
        config: None,
        initramfs: false,
        sysfs: None,
        positional: Vec::new(),
    };
    let mut it = args.iter();
    while let Some(a) = it.next() {
        match a.as_str() {
            "--cmdline" => o.cmdline = Some(it.next().ok_or("--cmdline needs a value")?.clone()),
            "--config" => o.config = Some(it.next().ok_or("--config needs a file")?.into()),
            "--initramfs" if allow_initramfs => o.initramfs = true,
            "--sysfs" if allow_initramfs => {
                o.sysfs = Some(it.next().ok_or("--sysfs needs a directory")?.into())
            }
            s if s.starts_with('-') => return Err(format!("unknown option {s}")),
            s => o.positional.push(s.to_string()),
        }
    }
    Ok(o)
}

/// Reads the config file and command line the way the boot does.
fn load(fs: &dyn Files, o: &Opts, out: &mut String) -> Result<Parsed, String> {
    let (cmdline, from) = match &o.cmdline {
        Some(c) => (c.clone(), "--cmdline"),
        None => (proc_cmdline(fs)?, "/proc/cmdline"),
    };
    let path = o
        .config
        .clone()
        .unwrap_or_else(|| PathBuf::from(config::CONFIG_FILE));
    let mut early = Vec::new();
    let text = match config::read_config_file(fs, &path) {
        config::FileText::Text(t, warnings) => {
            let _ = writeln!(out, "config file: {} (read)", path.display());
            early.extend(warnings);
            Some(t)
        }
        config::FileText::Absent if o.config.is_some() => {
            return Err(format!("cannot read {}: no such file", path.display()));
        }
        config::FileText::Unreadable(why) if o.config.is_some() => {
            return Err(format!("cannot read {}: {why}", path.display()));
        }
        config::FileText::Absent => {
            let _ = writeln!(out, "config file: {} (not present)", path.display());
            None
        }
        config::FileText::Unreadable(why) => {
            let _ = writeln!(out, "config file: {} (cannot read: {why})", path.display());
            early.push(format!("cannot read {}: {why}", path.display()));
            None
        }
    };
    let _ = writeln!(out, "command line ({from}): {}", sys::trim(&cmdline));
    let mut p = config::parse_all(
        text.as_deref()
            .map(|t| (path.to_str().unwrap_or("config"), t)),
        &cmdline,
        o.initramfs,
    );
    early.append(&mut p.warnings);
    p.warnings = early;
    Ok(p)
}

/// The command line `plan` and `check` read.
fn cmdline_text(o: &Opts) -> Result<String, String> {
    match &o.cmdline {
        Some(c) => Ok(c.clone()),
        None => proc_cmdline(&RealSys::default()),
    }
}

/// This kernel's command line, read as the boot reads it.
fn proc_cmdline(fs: &dyn Files) -> Result<String, String> {
    let line = fs
        .cmdline()
        .map_err(|e| format!("cannot read /proc/cmdline: {}", sys::ErrnoText(e)))?;
    Ok(String::from_utf8_lossy(&line).into_owned())
}

/// The words of the command line `plan` reads.
fn cmdline_words(o: &Opts) -> Result<Vec<String>, String> {
    Ok(config::split_cmdline(&cmdline_text(o)?))
}

/// What `pivot.kexec` would do with the volume tree at `dir`: the entry
/// that would be booted (kernel, initramfs, why, the line, each checked as
/// the boot checks it), or that the boot pivots, or why no entry can be
/// booted. `running` is the command line the boot would have; `uuid` the
/// volume's filesystem UUID, when known. Returns (lines, whether it boots
/// by kexec, whether that is a problem).
fn kexec_report(
    sys: &RealSys,
    dir: &Path,
    cfg: &Config,
    running: &str,
    uuid: Option<String>,
) -> (Vec<String>, bool, bool) {
    let u = sys.uname();
    let mode = cfg.kexec.mode.name();
    let entry = match kexec::choose(sys, dir, cfg, &u.machine, &u.release) {
        Choice::Pivot(why) => {
            return (vec![format!("ok: no kexec: {why}")], false, false);
        }
        Choice::Kexec(Err(why)) => {
            return (vec![format!("problem: kexec: {why}")], true, true);
        }
        Choice::Kexec(Ok(e)) => e,
    };
    let release = entry.release.clone();
    let placeholder = "<the volume's filesystem UUID>".to_string();
    let uuid = || Some(uuid.clone().unwrap_or_else(|| placeholder.clone()));
    match kexec::prepare(sys, dir, cfg, running, *entry, &uuid, &[]) {
        Ok(p) => {
            let mut out = vec![format!(
                "ok: pivot.kexec={mode} would boot the volume's own kernel (release {}; \
                 this machine runs {}):",
                release.as_deref().unwrap_or("unknown"),
                u.release
            )];
            out.extend(kexec::describe(&p).into_iter().map(|l| format!("  {l}")));
            (out, true, false)
        }
        Err(why) => (vec![format!("problem: kexec: {why}")], true, true),
    }
}

/// Where the filesystem of device `major:minor` is mounted whole on this
/// machine (its root at the mount point), from /proc/self/mountinfo.
fn mounted_at(fs: &dyn Files, major: u32, minor: u32) -> Option<PathBuf> {
    let text = fs.read_text(Path::new("/proc/self/mountinfo")).ok()?;
    let devno = format!("{major}:{minor}");
    text.lines().find_map(|l| {
        let f: Vec<&str> = l.split(' ').collect();
        let at = f.get(4)?;
        (f.get(2) == Some(&devno.as_str()) && f.get(3) == Some(&"/"))
            .then(|| PathBuf::from(unescape_octal(at)))
    })
}

/// A mountinfo field: `\040` and the like back to bytes.
fn unescape_octal(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        let code = b
            .get(i + 1..i + 4)
            .filter(|d| b[i] == b'\\' && d.iter().all(|c| (b'0'..=b'7').contains(c)))
            .map(|d| d.iter().fold(0u32, |v, c| v * 8 + u32::from(c - b'0')));
        match code.and_then(|c| u8::try_from(c).ok()) {
            Some(c) => {
                out.push(c);
                i += 4;
            }
            None => {
                out.push(b[i]);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// The parameters modules will get, as the modules stage reads them.
fn module_params(sys: &dyn Sys, cfg: &config::Config, words: &[String]) -> String {
    let dir = modules::module_dir(&sys.kernel_release());
    let conf = ModConfig::read(sys, &dir, &modules::MODPROBE_DIRS, words);
    let mut names: Vec<String> = cfg.modules.iter().map(|m| modules::normalize(m)).collect();
    names.extend(conf.options.iter().map(|(k, _)| k.clone()));
    names.sort_unstable();
    names.dedup();
    let mut out = String::from("\nmodule parameters (modprobe.d, then the command line):\n");
    if names.is_empty() {
        out.push_str("  (none)\n");
    }
    for m in names {
        let params = conf.params(&m);
        let _ = writeln!(
            out,
            "  {m:<13} {}",
            if params.is_empty() { "(none)" } else { &params }
        );
    }
    out
}

/// `plan`: returns (output, exit status).
pub fn plan(args: &[String]) -> Result<(String, i32), String> {
    let real = RealSys::default();
    let o = parse_opts(args, true)?;
    let sysfs = o
        .sysfs
        .clone()
        .unwrap_or_else(|| PathBuf::from("/sys/class/block"));
    if let Some(extra) = o.positional.first() {
        return Err(format!("plan takes no argument `{extra}`"));
    }
    let mut out = format!(
        "pivot-init {} plan ({} mode)\n",
        env!("CARGO_PKG_VERSION"),
        if o.initramfs {
            "initramfs"
        } else {
            "machine image"
        }
    );
    let p = load(&real, &o, &mut out)?;
    out.push_str("\nsettings:\n");
    for (key, value) in p.cfg.settings() {
        let _ = writeln!(out, "  {key:<13} {value:<40} {}", p.source(key).name());
    }
    out.push_str(&module_params(&real, &p.cfg, &cmdline_words(&o)?));
    out.push_str("\nwarnings:\n");
    if p.warnings.is_empty() {
        out.push_str("  (none)\n");
    }
    for w in &p.warnings {
        let _ = writeln!(out, "  {w}");
    }
    let mut status = if p.warnings.is_empty() { 0 } else { 1 };
    match &p.cfg.root {
        None => {
            out.push_str("\nno volume spec: set root in the config file or pivot.root= on the command line\n");
            status = 1;
        }
        Some(spec) => {
            let _ = write!(out, "\nblock devices on this machine and {spec} now:\n");
            let sys = SysBlock {
                sys: &real,
                root: sysfs.clone(),
                nodes: Nodes::ReadOnly(PathBuf::from("/dev")),
            };
            let names = sys.names();
            if names.is_empty() {
                let _ = writeln!(out, "  (no block devices under {})", sysfs.display());
            }
            let mut matched = 0;
            let mut matches = Vec::new();
            for name in names {
                let Some(dev) = sys.device(&name) else {
                    continue;
                };
                let mut f = Facts::new(&sys, dev);
                let want = Want {
                    spec,
                    fstypes: &p.cfg.fstypes,
                };
                let v = matching::verdict(&mut f, &want);
                let verdict = match v {
                    Verdict::NoMatch => "no match".to_string(),
                    Verdict::WrongFs(_) => format!(
                        "matches, but would be skipped: {}",
                        v.why_not(&want).unwrap_or_default()
                    ),
                    Verdict::Match => {
                        matched += 1;
                        matches.push(f.dev.clone());
                        "MATCH".to_string()
                    }
                };
                let _ = writeln!(out, "  {:<60} {verdict}", f.describe());
            }
            if matched == 0 {
                out.push_str("  nothing matches now: the boot would wait for it\n");
            } else if matched > 1 && spec.names_one_volume() {
                let _ = writeln!(
                    out,
                    "  {matched} devices match: the boot would refuse to choose one (FAILED at wait)"
                );
            }
            if p.cfg.kexec.mode != KexecMode::Off {
                out.push_str(&plan_kexec(&real, &p.cfg, &cmdline_text(&o)?, &matches));
            }
        }
    }
    Ok((out, status))
}

/// `plan`'s kexec section: the entry of each matching device that is
/// mounted here now (`plan` itself never mounts).
fn plan_kexec(real: &RealSys, cfg: &Config, running: &str, matches: &[Device]) -> String {
    let mut out = format!("\nkexec (pivot.kexec={}):\n", cfg.kexec.mode.name());
    let mut shown = 0;
    for d in matches {
        let Some(dir) = mounted_at(real, d.major, d.minor) else {
            continue;
        };
        shown += 1;
        let node = PathBuf::from(format!("/dev/block/{}:{}", d.major, d.minor));
        let uuid = probe::read(real, &node).ok().flatten().map(|p| p.uuid);
        let _ = writeln!(out, "  {} is mounted at {}:", d.describe(), dir.display());
        for l in kexec_report(real, &dir, cfg, running, uuid).0 {
            let _ = writeln!(out, "  {l}");
        }
    }
    if shown == 0 {
        out.push_str(
            "  the boot chooses the entry on the volume once it is mounted; no matching device \
             is mounted here now (`pivot-init check DIR` shows it for a mounted copy)\n",
        );
    }
    out
}

/// `check VOLUME_DIR`: returns (output, exit status).
pub fn check(args: &[String]) -> Result<(String, i32), String> {
    let sys = RealSys::default();
    let o = parse_opts(args, false)?;
    let dir = match o.positional.as_slice() {
        [d] => PathBuf::from(d),
        [] => return Err("check needs a VOLUME_DIR".into()),
        [_, extra, ..] => return Err(format!("check takes one VOLUME_DIR, not also `{extra}`")),
    };
    if !sys.is_dir(&dir) {
        return Err(format!("{} is not a directory", dir.display()));
    }
    let mut out = String::new();
    let cfg = if o.cmdline.is_some() || o.config.is_some() {
        let mut header = String::new();
        load(&sys, &o, &mut header)?.cfg
    } else {
        config::Config::default()
    };
    let _ = writeln!(
        out,
        "checking {} as pivot-init would (init {}, hook {}, old root {})",
        dir.display(),
        cfg.init.display(),
        cfg.hook
            .as_deref()
            .map_or("none".to_string(), |h| h.display().to_string()),
        cfg.old_root.display()
    );
    let pf = preflight::preflight(&sys, &dir, &cfg);
    let mut problems = 0;
    // pivot.kexec: the entry, checked; booting it, no hook runs and
    // nothing is switched.
    let mut by_kexec = false;
    let mut kexec_lines = Vec::new();
    if cfg.kexec.mode != KexecMode::Off {
        let running = cmdline_text(&o).unwrap_or_default();
        let uuid = sys
            .stat(&dir)
            .ok()
            .map(|st| sys::split_dev(st.dev))
            .map(|(a, b)| PathBuf::from(format!("/dev/block/{a}:{b}")))
            .and_then(|node| probe::read(&sys, &node).ok().flatten())
            .map(|p| p.uuid);
        let (lines, kexec, bad) = kexec_report(&sys, &dir, &cfg, &running, uuid);
        by_kexec = kexec;
        problems += usize::from(bad);
        kexec_lines = lines;
    }
    let mut problem = |out: &mut String, text: String| {
        problems += 1;
        let _ = writeln!(out, "problem: {text}");
    };
    // The init, with the fallbacks the boot would try.
    match pf.init {
        Ok(init) if init.path == cfg.init => out.push_str(&format!(
            "ok: init {} can be executed\n",
            init.path.display()
        )),
        Ok(init) => {
            let why = preflight::init_problem(&sys, &dir, &cfg, &cfg.init)
                .map(|w| w.to_string())
                .unwrap_or_default();
            let text = format!(
                "init {}: {why}; the boot would fall back to {}",
                cfg.init.display(),
                init.path.display()
            );
            problem(&mut out, text);
        }
        Err(e) => problem(&mut out, e.to_string()),
    }
    for l in kexec_lines {
        let _ = writeln!(out, "{l}");
    }
    if by_kexec {
        out.push_str(
            "ok: no hook runs and nothing is switched: pivot.kexec boots the volume's own kernel\n",
        );
        return Ok(finish(out, problems));
    }
    let hook = cfg.hook.as_deref().unwrap_or(Path::new("")).display();
    match pf.hook {
        HookCheck::Disabled => out.push_str("ok: hooks are disabled\n"),
        HookCheck::Absent => out.push_str(&format!("ok: no hook at {hook}\n")),
        HookCheck::Run(_) => out.push_str(&format!("ok: hook {hook} would run\n")),
        HookCheck::Unusable(_, why) => problem(&mut out, format!("hook {hook} cannot run: {why}")),
        HookCheck::Skip(_, why) => {
            problem(&mut out, format!("hook {hook} would be skipped: {why}"))
        }
    }
    // The directory the boot root moves to.
    let old = cfg.old_root.display();
    match pf.old_root {
        OldRootCheck::Exists => out.push_str(&format!("ok: {old} exists\n")),
        OldRootCheck::WillCreate => out.push_str(&format!(
            "ok: {old} is missing and will be created (the volume must be mounted rw)\n"
        )),
        OldRootCheck::NotADirectory => {
            problem(&mut out, format!("{old} exists but is not a directory"))
        }
        OldRootCheck::ParentMissing => problem(
            &mut out,
            format!("{old} is missing and so is its parent directory"),
        ),
        OldRootCheck::ParentNotWritable(parent) => problem(
            &mut out,
            format!("{old} is missing and {} is not writable", parent.display()),
        ),
    }
    Ok(finish(out, problems))
}

/// `check`'s result line and exit status.
fn finish(mut out: String, problems: usize) -> (String, i32) {
    out.push_str(&if problems == 0 {
        "result: the volume looks bootable\n".to_string()
    } else {
        format!("result: {problems} problem(s)\n")
    });
    (out, if problems == 0 { 0 } else { 1 })
}

/// `bless [--root DIR]` (`write`) and `status [--root DIR]`: returns (output,
/// exit status); what went wrong goes to stderr.
pub fn boot_count(args: &[String], write: bool) -> Result<(String, i32), String> {
    let command = if write { "bless" } else { "status" };
    let mut explicit = None;
    let mut it = args.iter();
    while let Some(a) = it.next() {
        match a.as_str() {
            "--root" => {
                explicit = Some(PathBuf::from(it.next().ok_or("--root needs a directory")?))
            }
            s if s.starts_with('-') => return Err(format!("unknown option {s}")),
            s => return Err(format!("{command} takes no argument `{s}`")),
        }
    }
    let sys = RealSys::default();
    // The boot's settings: the command line (`pivot.bootdisk=` after a
    // kexec, `pivot.oldroot`), then the boot disk's config file (`state`).
    let cmdline = proc_cmdline(&sys).unwrap_or_default();
    let cfg = config::parse_all(None, &cmdline, false).cfg;
    let failed = |out: String, why: String| {
        crate::sys::print_err(&format!("pivot-init {command}: {why}\n"));
        Ok((out, 1))
    };
    let root = match tries::locate(&sys, &cfg, explicit.as_deref()) {
        Ok(r) => r,
        Err(why) => return failed(String::new(), why),
    };
    let conf = crate::sys::in_root(&root.dir, Path::new(config::CONFIG_FILE));
    let state = match config::read_config_file(&sys, &conf) {
        config::FileText::Text(text, _) => {
            let file = conf.display().to_string();
            config::parse_all(Some((&file, &text)), &cmdline, false)
                .cfg
                .state
        }
        _ => cfg.state.clone(),
    };
    let mut out = format!("{}\n", tries::describe_root(&sys, &root));
    let r = if write {
        tries::bless(&sys, &root, &state)
    } else {
        tries::status(&sys, &root, &state)
    };
    if let Err(why) = root.release(&sys) {
        crate::sys::print_err(&format!("pivot-init {command}: {why}\n"));
    }
    match r {
        Ok(text) => {
            out.push_str(&text);
            Ok((out, 0))
        }
        Err(why) => failed(out, why),
    }
}

/// The settings, one line each with the default: the tail of `--help`.
fn settings_help() -> String {
    let defaults = config::Config::default();
    let mut out = String::from(
        "\nsettings (pivot.KEY=VALUE on the kernel command line, KEY = VALUE in /etc/pivot-init.conf):\n",
    );
    for s in &config::SETTINGS {
        let _ = writeln!(
            out,
            "  {:<13} {} (default: {})",
            s.key,
            s.doc,
            (s.show)(&defaults)
        );
    }
    out
}

/// Entry point when not PID 1; returns the exit status.
pub fn main(args: &[String]) -> i32 {
    let result = match args.first().map(String::as_str) {
        None | Some("--help") | Some("-h") | Some("help") => {
            crate::sys::print(&format!("{USAGE}{}", settings_help()));
            return if args.is_empty() { 2 } else { 0 };
        }
        Some("--version") | Some("-V") => {
            crate::sys::print(concat!("pivot-init ", env!("CARGO_PKG_VERSION"), "\n"));
            return 0;
        }
        Some("plan") => plan(&args[1..]),
        Some("check") => check(&args[1..]),
        Some("bless") => boot_count(&args[1..], true),
        Some("status") => boot_count(&args[1..], false),
        Some(other) => Err(format!("unknown command `{other}`")),
    };
    match result {
        Ok((out, status)) => {
            crate::sys::print(&out);
            status
        }
        Err(e) => {
            crate::sys::print_err(&format!("pivot-init: {e}\n{USAGE}\n"));
            2
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sys::fake::FakeSys;

    #[test]
    fn where_a_device_is_mounted_whole() {
        let dir = std::env::temp_dir().join(format!("pivot-cli-mi-{}", std::process::id()));
        let fs = FakeSys::sandbox(&dir).file(
            "/proc/self/mountinfo",
            b"22 1 259:1 / / rw,relatime - ext4 /dev/nvme0n1p1 rw\n\
              30 22 259:2 /sub /mnt/part rw - ext4 /dev/nvme1n1 rw\n\
              31 22 259:2 / /mnt/my\\040vol rw - ext4 /dev/nvme1n1 rw\n",
            0o444,
        );
        assert_eq!(mounted_at(&fs, 259, 1), Some(PathBuf::from("/")));
        // A bind of a subdirectory is not the whole filesystem.
        assert_eq!(mounted_at(&fs, 259, 2), Some(PathBuf::from("/mnt/my vol")));
        assert_eq!(mounted_at(&fs, 8, 0), None);
        assert_eq!(unescape_octal("a\\134b\\0x\\"), "a\\b\\0x\\");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
