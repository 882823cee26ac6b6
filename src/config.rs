//! The kernel command line, turned into one immutable [`Config`].
//!
//! Pure code: it takes the text of `/proc/cmdline` and returns the config and
//! the warnings to log. A bad value is reported by key and the default is kept.

use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};

use crate::mountopts::MountOpts;

/// Which volume to pivot onto.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Spec {
    /// `/dev/NAME`: the kernel name of the block device (`nvme1n1`, `sdp`, `vdb1`).
    Name(String),
    /// `MAJ:MIN` in decimal.
    Devno(u32, u32),
    /// `SERIAL=...`: the disk serial sysfs reports (virtio, NVMe).
    Serial(String),
    /// `UUID=...`: the filesystem UUID (compared case-insensitively).
    Uuid(String),
    /// `LABEL=...`: the filesystem label.
    Label(String),
    /// `PARTUUID=...`: GPT partition GUID, or `SSSSSSSS-PP` on an MBR disk.
    PartUuid(String),
    /// `PARTLABEL=...`: GPT partition name.
    PartLabel(String),
}

/// Builds a spec from the text after its `KEY=`.
type MakeSpec = fn(String) -> Spec;

/// The `KEY=` forms of a spec, with their variants.
const KEYED: [(&str, MakeSpec); 5] = [
    ("SERIAL=", Spec::Serial),
    ("UUID=", Spec::Uuid),
    ("LABEL=", Spec::Label),
    ("PARTUUID=", Spec::PartUuid),
    ("PARTLABEL=", Spec::PartLabel),
];

impl fmt::Display for Spec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Spec::Name(n) => write!(f, "/dev/{n}"),
            Spec::Devno(a, b) => write!(f, "{a}:{b}"),
            Spec::Serial(s) => write!(f, "SERIAL={s}"),
            Spec::Uuid(s) => write!(f, "UUID={s}"),
            Spec::Label(s) => write!(f, "LABEL={s}"),
            Spec::PartUuid(s) => write!(f, "PARTUUID={s}"),
            Spec::PartLabel(s) => write!(f, "PARTLABEL={s}"),
        }
    }
}

impl Spec {
    /// Parses a spec, or says what is accepted.
    pub fn parse(s: &str) -> Result<Spec, String> {
        const ACCEPTED: &str =
            "expected /dev/NAME, MAJ:MIN, UUID=, LABEL=, PARTUUID=, PARTLABEL= or SERIAL=";
        if s.is_empty() {
            return Err(format!("empty volume spec; {ACCEPTED}"));
        }
        if let Some(name) = s.strip_prefix("/dev/") {
            if name.is_empty() || name.contains('/') || name == "." || name == ".." {
                return Err(format!("`{s}` is not a device name; {ACCEPTED}"));
            }
            return Ok(Spec::Name(name.to_string()));
        }
        for (prefix, make) in KEYED {
            if let Some(v) = s.strip_prefix(prefix) {
                if v.is_empty() {
                    return Err(format!("empty value after {prefix}; {ACCEPTED}"));
                }
                return Ok(make(v.to_string()));
            }
        }
        if let Some((a, b)) = s.split_once(':')
            && let (Ok(a), Ok(b)) = (a.parse::<u32>(), b.parse::<u32>())
        {
            return Ok(Spec::Devno(a, b));
        }
        Err(format!("`{s}` is not a valid volume spec; {ACCEPTED}"))
    }
}

/// What to do when the boot cannot go on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OnFail {
    OldInit,
    Shell,
    Reboot,
    PowerOff,
    Wait,
}

impl OnFail {
    pub fn parse(v: &str) -> Result<OnFail, String> {
        Ok(match v {
            "oldinit" => OnFail::OldInit,
            "shell" => OnFail::Shell,
            "reboot" => OnFail::Reboot,
            "poweroff" => OnFail::PowerOff,
            "wait" => OnFail::Wait,
            _ => {
                return Err(format!(
                    "`{v}` is not one of oldinit, shell, reboot, poweroff, wait"
                ));
            }
        })
    }

    pub fn name(self) -> &'static str {
        match self {
            OnFail::OldInit => "oldinit",
            OnFail::Shell => "shell",
            OnFail::Reboot => "reboot",
            OnFail::PowerOff => "poweroff",
            OnFail::Wait => "wait",
        }
    }
}

/// Everything the boot needs to know, resolved once.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Config {
    pub root: Option<Spec>,
    pub fstypes: Vec<String>,
    pub mount_opts: MountOpts,
    pub new_root: PathBuf,
    pub old_root: PathBuf,
    pub hook: Option<PathBuf>,
    pub hook_abort: bool,
    /// Kill the hook's process group after this many seconds (0: no limit).
    pub hook_timeout_secs: u64,
    /// `pivot.onfail`; `None` means the mode's default.
    pub onfail: Option<OnFail>,
    /// `pivot.debug_panic=STAGE`: panic when that stage starts (to test the panic path).
    pub debug_panic: Option<String>,
    pub init: PathBuf,
    pub old_init: PathBuf,
    pub timeout_secs: u64,
    pub devtmpfs: bool,
    pub loglevel: u8,
    /// Kernel modules to load (with dependencies) before waiting.
    pub modules: Vec<String>,
    /// `pivot.coldplug`: load drivers by modalias (`None`: on in initramfs mode).
    pub coldplug: Option<bool>,
    /// Running as `/init` of an initramfs (the root is ramfs/tmpfs).
    pub initramfs: bool,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            root: None,
            fstypes: Vec::new(),
            mount_opts: MountOpts::default(),
            new_root: PathBuf::from("/new-root"),
            old_root: PathBuf::from("/old-root"),
            hook: Some(PathBuf::from("/pre-pivot")),
            hook_abort: true,
            hook_timeout_secs: 60,
            onfail: None,
            debug_panic: None,
            init: PathBuf::from("/sbin/init"),
            old_init: PathBuf::from("/sbin/init.old"),
            timeout_secs: 0,
            devtmpfs: true,
            loglevel: 6,
            modules: Vec::new(),
            coldplug: None,
            initramfs: false,
        }
    }
}

impl Config {
    /// Whether drivers are loaded by modalias (default: in initramfs mode).
    pub fn coldplug_on(&self) -> bool {
        self.coldplug.unwrap_or(self.initramfs)
    }

    /// Every setting as (key, value text), in the order of the reference table.
    pub fn settings(&self) -> Vec<(&'static str, String)> {
        let path = |p: &Path| p.display().to_string();
        let list = |v: &[String]| {
            if v.is_empty() {
                "(none)".to_string()
            } else {
                v.join(",")
            }
        };
        vec![
            (
                "root",
                self.root
                    .as_ref()
                    .map_or("(not set)".to_string(), |s| s.to_string()),
            ),
            (
                "fstype",
                if self.fstypes.is_empty() {
                    "(probe)".to_string()
                } else {
                    self.fstypes.join(",")
                },
            ),
            ("flags", self.mount_opts.describe()),
            ("newroot", path(&self.new_root)),
            ("oldroot", path(&self.old_root)),
            (
                "hook",
                self.hook.as_deref().map_or("none".to_string(), path),
            ),
            ("hook_timeout", format!("{} s", self.hook_timeout_secs)),
            (
                "hook_failure",
                if self.hook_abort { "abort" } else { "continue" }.to_string(),
            ),
            ("init", path(&self.init)),
            ("oldinit", path(&self.old_init)),
            (
                "timeout",
                if self.timeout_secs == 0 {
                    "0 (forever)".to_string()
                } else {
                    format!("{} s", self.timeout_secs)
                },
            ),
            (
                "onfail",
                match self.onfail {
                    Some(a) => a.name().to_string(),
                    None if self.initramfs => "shell if /bin/sh exists, else wait".to_string(),
                    None => "oldinit".to_string(),
                },
            ),
            ("modules", list(&self.modules)),
            (
                "coldplug",
                if self.coldplug_on() { "1" } else { "0" }.to_string(),
            ),
            (
                "devtmpfs",
                if self.devtmpfs { "1" } else { "0" }.to_string(),
            ),
            ("loglevel", self.loglevel.to_string()),
            (
                "debug_panic",
                self.debug_panic
                    .clone()
                    .unwrap_or_else(|| "(off)".to_string()),
            ),
        ]
    }
}

/// Splits a kernel command line into words the way the kernel does:
/// whitespace separates, double quotes group and are removed.
pub fn split_cmdline(line: &str) -> Vec<String> {
    let mut words = Vec::new();
    let mut cur = String::new();
    let mut in_quote = false;
    let mut have = false;
    for c in line.chars() {
        match c {
            '"' => {
                in_quote = !in_quote;
                have = true;
            }
            c if c.is_whitespace() && !in_quote => {
                if have {
                    words.push(std::mem::take(&mut cur));
                    have = false;
                }
            }
            c => {
                cur.push(c);
                have = true;
            }
        }
    }
    if have {
        words.push(cur);
    }
    words
}

/// An absolute path without `..` components, or an error text.
fn abs_path(v: &str) -> Result<PathBuf, String> {
    if !v.starts_with('/') {
        return Err(format!("`{v}` is not an absolute path"));
    }
    if v.split('/').any(|c| c == "..") {
        return Err(format!("`{v}` must not contain `..`"));
    }
    Ok(PathBuf::from(v))
}

fn parse_bool(v: &str) -> Result<bool, String> {
    match v {
        "1" | "yes" | "true" | "on" => Ok(true),
        "0" | "no" | "false" | "off" => Ok(false),
        _ => Err(format!("`{v}` is not a boolean; expected 0 or 1")),
    }
}

const KNOWN_KEYS: &str = "root, fstype, flags, newroot, oldroot, hook, hook_timeout, hook_failure, init, oldinit, timeout, onfail, modules, coldplug, devtmpfs, loglevel, debug_panic";

const STAGES: [&str; 8] = [
    "prepare", "config", "wait", "node", "mount", "hook", "switch", "exec",
];

fn seconds(v: &str) -> Result<u64, String> {
    v.parse::<u64>()
        .ok()
        .filter(|s| *s <= 86_400 * 365)
        .ok_or_else(|| format!("`{v}` is not a number of seconds"))
}

/// The kernel's own root keys, used in initramfs mode where no `pivot.*` key
/// sets the same thing.
#[derive(Default)]
struct KernelKeys<'a> {
    root: Option<&'a str>,
    rootfstype: Option<&'a str>,
    rootflags: Option<&'a str>,
    /// `ro` or `rw`, the last one given.
    ro: Option<bool>,
    rootwait: bool,
    rootdelay: Option<&'a str>,
    init: Option<&'a str>,
}

/// Where a setting came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Source {
    Default,
    ConfigFile,
    /// The kernel's own keys (`root=`, `rootfstype=`, ...) in initramfs mode.
    KernelKey,
    CommandLine,
}

impl Source {
    pub fn name(self) -> &'static str {
        match self {
            Source::Default => "default",
            Source::ConfigFile => "config file",
            Source::KernelKey => "kernel command line (kernel key)",
            Source::CommandLine => "kernel command line",
        }
    }
}

/// The result of reading the config file and the command line.
#[derive(Debug)]
pub struct Parsed {
    pub cfg: Config,
    pub warnings: Vec<String>,
    /// Keys (normalized, without `pivot.`) set by something other than the default.
    pub sources: BTreeMap<String, Source>,
}

impl Parsed {
    pub fn source(&self, key: &str) -> Source {
        self.sources.get(key).copied().unwrap_or(Source::Default)
    }
}

/// Parses the command line. Returns the config and one warning per problem.
/// With `initramfs`, `root=`, `rootfstype=`, `rootflags=`, `ro`/`rw`,
/// `rootwait`, `rootdelay=` and `init=` apply where no `pivot.*` key is given.
pub fn parse(cmdline: &str, initramfs: bool) -> (Config, Vec<String>) {
    let p = parse_all(None, cmdline, initramfs);
    (p.cfg, p.warnings)
}

/// Splits a config file line into key and value; `None` for blank lines and
/// comments, `Err` for a malformed line.
fn config_line(line: &str) -> Option<Result<(String, String), ()>> {
    let line = line.trim();
    if line.is_empty() || line.starts_with('#') {
        return None;
    }
    // A ` #` starts a trailing comment.
    let line = match line.find(" #").or_else(|| line.find("\t#")) {
        Some(i) => line[..i].trim_end(),
        None => line,
    };
    let Some((k, v)) = line.split_once('=') else {
        return Some(Err(()));
    };
    let key = k.trim();
    let key = key.strip_prefix("pivot.").unwrap_or(key).replace('-', "_");
    if key.is_empty() || key.contains(char::is_whitespace) {
        return Some(Err(()));
    }
    let v = v.trim();
    let v = v
        .strip_prefix('"')
        .and_then(|x| x.strip_suffix('"'))
        .unwrap_or(v);
    Some(Ok((key, v.to_string())))
}

/// Reads, in order of rising precedence: the defaults, the config file
/// (`path`, `text`), the kernel's own keys (initramfs mode), and the
/// `pivot.*` keys of the command line.
pub fn parse_all(config_file: Option<(&str, &str)>, cmdline: &str, initramfs: bool) -> Parsed {
    let mut cfg = Config {
        initramfs,
        ..Config::default()
    };
    let mut warnings = Vec::new();
    let mut sources = BTreeMap::new();
    if let Some((path, text)) = config_file {
        for (n, line) in text.lines().enumerate() {
            match config_line(line) {
                None => {}
                Some(Err(())) => warnings.push(format!(
                    "{path}:{}: ignoring `{}`: expected `key = value`",
                    n + 1,
                    line.trim()
                )),
                Some(Ok((key, value))) => match apply(&mut cfg, &key, &value) {
                    Ok(()) => {
                        sources.insert(key, Source::ConfigFile);
                    }
                    Err(why) => warnings.push(format!(
                        "{path}:{}: ignoring {key} = {value}: {why}; {}",
                        n + 1,
                        if sources.contains_key(&key) {
                            "keeping the earlier value"
                        } else {
                            "using the default"
                        }
                    )),
                },
            }
        }
    }
    let mut set = std::collections::BTreeSet::new();
    let words = split_cmdline(cmdline);
    let mut k = KernelKeys::default();
    for word in &words {
        let (key, value) = word.split_once('=').unwrap_or((word, ""));
        match key {
            "root" => k.root = Some(value),
            "rootfstype" => k.rootfstype = Some(value),
            "rootflags" => k.rootflags = Some(value),
            "ro" if word == "ro" => k.ro = Some(true),
            "rw" if word == "rw" => k.ro = Some(false),
            "rootwait" if word == "rootwait" => k.rootwait = true,
            "rootdelay" => k.rootdelay = Some(value),
            "init" => k.init = Some(value),
            _ => {}
        }
        let Some(rest) = word.strip_prefix("pivot.") else {
            continue;
        };
        let (key, value) = rest.split_once('=').unwrap_or((rest, ""));
        let norm = key.replace('-', "_");
        match apply(&mut cfg, &norm, value) {
            Ok(()) => {
                set.insert(norm.clone());
                sources.insert(norm, Source::CommandLine);
            }
            Err(why) => warnings.push(format!(
                "ignoring pivot.{key}={value}: {why}; {}",
                if sources.contains_key(&norm) {
                    "keeping the earlier value"
                } else {
                    "using the default"
                }
            )),
        }
    }
    if initramfs {
        for key in apply_kernel_keys(&mut cfg, &k, &set, &sources, &mut warnings) {
            sources.insert(key.to_string(), Source::KernelKey);
        }
    }
    Parsed {
        cfg,
        warnings,
        sources,
    }
}

/// Applies the kernel's keys where the command line has no `pivot.*` key for
/// the same setting; returns the settings they set.
fn apply_kernel_keys(
    cfg: &mut Config,
    k: &KernelKeys,
    set: &std::collections::BTreeSet<String>,
    sources: &BTreeMap<String, Source>,
    warnings: &mut Vec<String>,
) -> Vec<&'static str> {
    let unset = |key: &str| !set.contains(key);
    let mut applied = Vec::new();
    let mut kernel = |key: &str,
                      value: Option<&str>,
                      pivot_key: &'static str,
                      applied: &mut Vec<&'static str>| {
        if let Some(v) = value
            && unset(pivot_key)
        {
            match apply(cfg, pivot_key, v) {
                Ok(()) => applied.push(pivot_key),
                Err(why) => warnings.push(format!("ignoring {key}={v}: {why}; using the default")),
            }
        }
    };
    kernel("root", k.root, "root", &mut applied);
    kernel("rootfstype", k.rootfstype, "fstype", &mut applied);
    kernel("init", k.init, "init", &mut applied);
    if unset("timeout") {
        // rootwait: forever; rootdelay=N without it: wait up to N seconds.
        if k.rootwait {
            cfg.timeout_secs = 0;
            applied.push("timeout");
        } else {
            kernel("rootdelay", k.rootdelay, "timeout", &mut applied);
        }
    }
    // The kernel's mount options apply when it gives any, or when the config
    // file gave none: then, like the kernel, read-only unless `rw`.
    let kernel_flags = k.rootflags.is_some() || k.ro.is_some();
    if unset("flags") && (kernel_flags || !sources.contains_key("flags")) {
        let mut opts = MountOpts::parse(k.rootflags.unwrap_or(""));
        if k.ro != Some(false) {
            opts.flags |= rustix::mount::MountFlags::RDONLY;
        }
        cfg.mount_opts = opts;
        applied.push("flags");
    }
    applied
}

fn apply(cfg: &mut Config, key: &str, v: &str) -> Result<(), String> {
    match key {
        "root" => cfg.root = Some(Spec::parse(v)?),
        "fstype" => {
            let types: Vec<String> = v
                .split(',')
                .filter(|t| !t.is_empty())
                .map(str::to_string)
                .collect();
            if types.is_empty() {
                return Err("empty filesystem type list".into());
            }
            if let Some(bad) = types.iter().find(|t| {
                !t.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'.' || b == b'_')
            }) {
                return Err(format!("`{bad}` is not a filesystem type name"));
            }
            cfg.fstypes = types;
        }
        "flags" => cfg.mount_opts = MountOpts::parse(v),
        "newroot" => {
            let p = abs_path(v)?;
            if p == Path::new("/") {
                return Err("the new root cannot be /".into());
            }
            cfg.new_root = p;
        }
        "oldroot" => {
            let p = abs_path(v)?;
            if p == Path::new("/") {
                return Err("the old root cannot be /".into());
            }
            cfg.old_root = p;
        }
        "hook" => {
            cfg.hook = if v == "none" {
                None
            } else {
                Some(abs_path(v)?)
            };
        }
        "hook_failure" => {
            cfg.hook_abort = match v {
                "abort" => true,
                "continue" => false,
                _ => return Err(format!("`{v}` is not one of abort, continue")),
            }
        }
        "init" => cfg.init = abs_path(v)?,
        "modules" => {
            let mods: Vec<String> = v
                .split(',')
                .filter(|m| !m.is_empty())
                .map(str::to_string)
                .collect();
            if let Some(bad) = mods.iter().find(|m| {
                !m.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
            }) {
                return Err(format!("`{bad}` is not a module name"));
            }
            cfg.modules = mods;
        }
        "oldinit" => cfg.old_init = abs_path(v)?,
        "timeout" => cfg.timeout_secs = seconds(v).map_err(|e| format!("{e} (0 = forever)"))?,
        "hook_timeout" => {
            cfg.hook_timeout_secs = seconds(v).map_err(|e| format!("{e} (0 = no limit)"))?
        }
        "onfail" => cfg.onfail = Some(OnFail::parse(v)?),
        "debug_panic" => {
            if !STAGES.contains(&v) {
                return Err(format!("`{v}` is not a stage ({})", STAGES.join(", ")));
            }
            cfg.debug_panic = Some(v.to_string());
        }
        "devtmpfs" => cfg.devtmpfs = parse_bool(v)?,
        "coldplug" => cfg.coldplug = Some(parse_bool(v)?),
        "loglevel" => {
            cfg.loglevel = v
                .parse::<u8>()
                .ok()
                .filter(|l| *l <= 7)
                .ok_or_else(|| format!("`{v}` is not a log level 0..7"))?
        }
        _ => return Err(format!("unknown key; known keys: {KNOWN_KEYS}")),
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn split_handles_quotes_and_spaces() {
        assert_eq!(
            split_cmdline("  a=1  b=\"x y\" \"c=2 3\"\n"),
            vec!["a=1", "b=x y", "c=2 3"]
        );
        assert_eq!(split_cmdline(""), Vec::<String>::new());
        assert_eq!(split_cmdline("e=\"\""), vec!["e="]);
    }

    #[test]
    fn defaults_without_pivot_keys() {
        let (cfg, w) = parse("console=ttyS0 root=/dev/nvme0n1 rw quiet\n", false);
        assert_eq!(cfg, Config::default());
        assert!(w.is_empty());
    }

    #[test]
    fn full_line() {
        let (cfg, w) = parse(
            "console=ttyS0 pivot.root=/dev/nvme1n1 pivot.fstype=ext4,xfs pivot.flags=ro,noatime,data=ordered \
             pivot.newroot=/mnt/vol pivot.oldroot=/boot-disk pivot.hook=none pivot.init=/lib/systemd/systemd \
             pivot.oldinit=/sbin/init.orig pivot.devtmpfs=0 pivot.loglevel=7 pivot.timeout=30 pivot.hook-failure=continue pivot.modules=xfs,virtio-blk \
             pivot.hook_timeout=5 pivot.onfail=poweroff pivot.debug_panic=mount",
            false,
        );
        assert!(w.is_empty(), "{w:?}");
        assert_eq!(cfg.root, Some(Spec::Name("nvme1n1".into())));
        assert_eq!(cfg.fstypes, vec!["ext4", "xfs"]);
        assert!(cfg.mount_opts.read_only());
        assert_eq!(cfg.mount_opts.data, "data=ordered");
        assert_eq!(cfg.new_root, PathBuf::from("/mnt/vol"));
        assert_eq!(cfg.old_root, PathBuf::from("/boot-disk"));
        assert_eq!(cfg.hook, None);
        assert_eq!(cfg.init, PathBuf::from("/lib/systemd/systemd"));
        assert_eq!(cfg.old_init, PathBuf::from("/sbin/init.orig"));
        assert!(!cfg.devtmpfs);
        assert_eq!(cfg.loglevel, 7);
        assert_eq!(cfg.timeout_secs, 30);
        assert!(!cfg.hook_abort);
        assert_eq!(cfg.modules, vec!["xfs", "virtio-blk"]);
        assert_eq!(cfg.hook_timeout_secs, 5);
        assert_eq!(cfg.onfail, Some(OnFail::PowerOff));
        assert_eq!(cfg.debug_panic.as_deref(), Some("mount"));
    }

    #[test]
    fn config_file_then_command_line() {
        let file = "# comment\n\nroot = LABEL=data\npivot.timeout = 30 # trailing comment\nflags = \"ro,noatime\"\n\
                    no equals here\n = value\nhook-timeout = 5\nonfail = explode\n";
        let p = parse_all(
            Some(("/etc/pivot-init.conf", file)),
            "pivot.timeout=7 quiet",
            false,
        );
        assert_eq!(p.cfg.root, Some(Spec::Label("data".into())));
        assert_eq!(p.cfg.timeout_secs, 7);
        assert!(p.cfg.mount_opts.read_only());
        assert_eq!(p.cfg.hook_timeout_secs, 5);
        assert_eq!(p.source("root"), Source::ConfigFile);
        assert_eq!(p.source("timeout"), Source::CommandLine);
        assert_eq!(p.source("hook_timeout"), Source::ConfigFile);
        assert_eq!(p.source("init"), Source::Default);
        assert_eq!(
            p.warnings,
            vec![
                "/etc/pivot-init.conf:6: ignoring `no equals here`: expected `key = value`",
                "/etc/pivot-init.conf:7: ignoring `= value`: expected `key = value`",
                "/etc/pivot-init.conf:9: ignoring onfail = explode: `explode` is not one of oldinit, shell, reboot, poweroff, wait; using the default",
            ]
        );
        // In initramfs mode the kernel's root= beats the file; the file's flags stay
        // when the kernel gives no ro/rw/rootflags.
        let p = parse_all(
            Some(("f", "root = LABEL=data\nflags = rw,noatime\n")),
            "root=/dev/vda",
            true,
        );
        assert_eq!(p.cfg.root, Some(Spec::Name("vda".into())));
        assert_eq!(p.source("root"), Source::KernelKey);
        assert_eq!(p.cfg.mount_opts.describe(), "rw,noatime");
        assert_eq!(p.source("flags"), Source::ConfigFile);
    }

    #[test]
    fn initramfs_mode_uses_kernel_keys() {
        let (cfg, w) = parse(
            "root=LABEL=data rootfstype=xfs rootflags=noatime,logbufs=8 rootdelay=7 init=/lib/systemd/systemd",
            true,
        );
        assert!(w.is_empty(), "{w:?}");
        assert!(cfg.initramfs);
        assert_eq!(cfg.root, Some(Spec::Label("data".into())));
        assert_eq!(cfg.fstypes, vec!["xfs"]);
        assert_eq!(cfg.mount_opts.describe(), "ro,noatime,logbufs=8");
        assert_eq!(cfg.timeout_secs, 7);
        assert_eq!(cfg.init, PathBuf::from("/lib/systemd/systemd"));
        // rw and rootwait.
        let (cfg, _) = parse("root=8:240 ro rw rootwait rootdelay=3", true);
        assert_eq!(cfg.root, Some(Spec::Devno(8, 240)));
        assert!(!cfg.mount_opts.read_only());
        assert_eq!(cfg.timeout_secs, 0);
        // pivot.* keys win; kernel keys are ignored outside initramfs mode.
        let (cfg, _) = parse(
            "root=/dev/sda pivot.root=/dev/vdb rootfstype=xfs pivot.fstype=ext4 pivot.flags=rw pivot.timeout=9 rootdelay=3",
            true,
        );
        assert_eq!(cfg.root, Some(Spec::Name("vdb".into())));
        assert_eq!(cfg.fstypes, vec!["ext4"]);
        assert!(!cfg.mount_opts.read_only());
        assert_eq!(cfg.timeout_secs, 9);
        let (cfg, _) = parse("root=/dev/sda rootfstype=xfs", false);
        assert_eq!((cfg.root, cfg.fstypes.len()), (None, 0));
        // A bad kernel value is reported with its own key.
        let (_, w) = parse("root=/dev/disk/by-uuid/x", true);
        assert_eq!(w.len(), 1);
        assert!(
            w[0].starts_with("ignoring root=/dev/disk/by-uuid/x: "),
            "{}",
            w[0]
        );
    }

    #[test]
    fn specs() {
        assert_eq!(Spec::parse("/dev/sdp"), Ok(Spec::Name("sdp".into())));
        assert_eq!(Spec::parse("8:240"), Ok(Spec::Devno(8, 240)));
        assert_eq!(Spec::parse("259:2"), Ok(Spec::Devno(259, 2)));
        assert_eq!(
            Spec::parse("SERIAL=vol-0abc"),
            Ok(Spec::Serial("vol-0abc".into()))
        );
        for bad in [
            "",
            "/dev/",
            "/dev/../sda",
            "/dev/a/b",
            "8:",
            ":1",
            "8:x",
            "sdp",
            "SERIAL=",
            "-1:2",
        ] {
            assert!(Spec::parse(bad).is_err(), "{bad} should be refused");
        }
        assert_eq!(Spec::Devno(8, 240).to_string(), "8:240");
        assert_eq!(Spec::Name("sdp".into()).to_string(), "/dev/sdp");
    }

    #[test]
    fn bad_values_warn_by_key_and_keep_defaults() {
        let (cfg, w) = parse(
            "pivot.root=sda pivot.loglevel=9 pivot.devtmpfs=maybe pivot.newroot=relative pivot.fstype=, \
             pivot.bogus=1 pivot.timeout=abc pivot.init=/../x pivot.hook_failure=explode pivot.newroot=/",
            false,
        );
        assert_eq!(cfg, Config::default());
        assert_eq!(w.len(), 10, "{w:#?}");
        assert_eq!(
            w[0],
            "ignoring pivot.root=sda: `sda` is not a valid volume spec; expected /dev/NAME, MAJ:MIN, UUID=, LABEL=, PARTUUID=, PARTLABEL= or SERIAL=; using the default"
        );
        assert_eq!(
            w[1],
            "ignoring pivot.loglevel=9: `9` is not a log level 0..7; using the default"
        );
        assert!(w[5].starts_with("ignoring pivot.bogus=1: unknown key; known keys: root,"));
        assert_eq!(
            w[6],
            "ignoring pivot.timeout=abc: `abc` is not a number of seconds (0 = forever); using the default"
        );
    }

    #[test]
    fn later_value_wins_and_bad_later_value_keeps_earlier() {
        let (cfg, w) = parse(
            "pivot.root=8:240 pivot.root=/dev/vdb pivot.loglevel=3 pivot.loglevel=x",
            false,
        );
        assert_eq!(cfg.root, Some(Spec::Name("vdb".into())));
        assert_eq!(cfg.loglevel, 3);
        assert_eq!(
            w,
            vec![
                "ignoring pivot.loglevel=x: `x` is not a log level 0..7; keeping the earlier value"
            ]
        );
        // The fault-matrix line: each bad value is named with what is accepted.
        let (cfg, w) = parse(
            "pivot.root=SERIAL=good pivot.timeout=abc pivot.onfail=explode pivot.root= pivot.hook_timeout=-1",
            false,
        );
        assert_eq!(cfg.root, Some(Spec::Serial("good".into())));
        assert_eq!(
            (cfg.timeout_secs, cfg.onfail, cfg.hook_timeout_secs),
            (0, None, 60)
        );
        assert_eq!(
            w,
            vec![
                "ignoring pivot.timeout=abc: `abc` is not a number of seconds (0 = forever); using the default",
                "ignoring pivot.onfail=explode: `explode` is not one of oldinit, shell, reboot, poweroff, wait; using the default",
                "ignoring pivot.root=: empty volume spec; expected /dev/NAME, MAJ:MIN, UUID=, LABEL=, PARTUUID=, PARTLABEL= or SERIAL=; keeping the earlier value",
                "ignoring pivot.hook_timeout=-1: `-1` is not a number of seconds (0 = no limit); using the default",
            ]
        );
    }
}
