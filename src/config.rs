//! The settings: the config file and the kernel command line, turned into
//! one immutable [`Config`] through one table ([`SETTINGS`]).
//!
//! Pure code but for [`read_boot_config`]: it takes the text of the config
//! file and `/proc/cmdline` and returns the config and
//! the warnings to log. A bad value is reported by key and the default is kept.

use std::fmt;
use std::path::{Path, PathBuf};

use crate::mountopts::MountOpts;
use crate::spec::Spec;
use crate::stage::Stage;
use crate::sys::{API_MOUNTS, Errno, ErrnoText, Files, MountFlags};

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

/// `pivot.kmods`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Kmods {
    /// Bind the boot disk's tree when the volume has none for this kernel.
    #[default]
    Auto,
    /// Never bind: the volume's own tree or nothing.
    Volume,
    /// Always bind the boot disk's tree (over the volume's own).
    Boot,
}

impl Kmods {
    pub fn parse(v: &str) -> std::result::Result<Kmods, String> {
        match v {
            "auto" => Ok(Kmods::Auto),
            "volume" => Ok(Kmods::Volume),
            "boot" => Ok(Kmods::Boot),
            _ => Err(format!("`{v}` is not one of auto, volume, boot")),
        }
    }
}

impl fmt::Display for Kmods {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Kmods::Auto => "auto",
            Kmods::Volume => "volume",
            Kmods::Boot => "boot",
        })
    }
}

/// `pivot.kexec`: whether the volume boots on its own kernel.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum KexecMode {
    /// Pivot onto the volume, on the running kernel.
    #[default]
    Off,
    /// Boot the volume's own kernel (kexec), always.
    On,
    /// Boot the volume's own kernel when its release is not the running one.
    Auto,
}

impl KexecMode {
    pub fn parse(v: &str) -> std::result::Result<KexecMode, String> {
        match v {
            "off" | "0" => Ok(KexecMode::Off),
            "on" | "1" => Ok(KexecMode::On),
            "auto" => Ok(KexecMode::Auto),
            _ => Err(format!("`{v}` is not one of off, on, auto")),
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            KexecMode::Off => "off",
            KexecMode::On => "on",
            KexecMode::Auto => "auto",
        }
    }
}

/// `pivot.fsck`: whether the volume's filesystem is checked before it is mounted.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum FsckMode {
    /// `fsck.TYPE -p` (preen) when the boot root has a checker for the type.
    #[default]
    Auto,
    /// `fsck.TYPE -p -f`: a full check even of a clean filesystem; no
    /// checker for a type that has one is a failure.
    Force,
    Skip,
}

impl FsckMode {
    pub fn parse(v: &str) -> std::result::Result<FsckMode, String> {
        match v {
            "auto" => Ok(FsckMode::Auto),
            "force" => Ok(FsckMode::Force),
            "skip" => Ok(FsckMode::Skip),
            _ => Err(format!("`{v}` is not one of auto, force, skip")),
        }
    }
}

/// `pivot.kexec_initrd`: a file on the volume, or none at all.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KexecInitrd {
    Path(PathBuf),
    /// `none`: the kernel boots without an initramfs.
    Without,
}

/// The `pivot.kexec*` settings: what the volume's boot entry is, when they say.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct KexecSettings {
    pub mode: KexecMode,
    /// `pivot.kexec_kernel`: the kernel on the volume (the entry is then these settings).
    pub kernel: Option<PathBuf>,
    /// `pivot.kexec_initrd`: replaces the entry's initramfs.
    pub initrd: Option<KexecInitrd>,
    /// `pivot.kexec_cmdline`: replaces the entry's options.
    pub cmdline: Option<String>,
    /// `pivot.kexec_entry`: the BLS entry (file name without `.conf`).
    pub entry: Option<String>,
}

impl fmt::Display for FsckMode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            FsckMode::Auto => "auto",
            FsckMode::Force => "force",
            FsckMode::Skip => "skip",
        })
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
    pub debug_panic: Option<Stage>,
    /// `pivot.stats=1`: the summary line also says CPU time and peak memory.
    pub stats: bool,
    /// `pivot.debug_exec_fail=1`: the exec of the checked init fails with
    /// ENOEXEC (to test undoing the switch).
    pub debug_exec_fail: bool,
    pub init: PathBuf,
    pub old_init: PathBuf,
    pub timeout_secs: u64,
    pub devtmpfs: bool,
    pub loglevel: u8,
    /// Kernel modules to load (with dependencies) before waiting.
    pub modules: Vec<String>,
    /// `pivot.coldplug`: load drivers by modalias (`None`: on in initramfs mode).
    pub coldplug: Option<bool>,
    /// `pivot.kmods`: whose module tree the volume gets (machine image mode).
    pub kmods: Kmods,
    /// `pivot.kexec` and its entry settings.
    pub kexec: KexecSettings,
    /// `pivot.tries`: boots a volume gets to come up (0: not counted).
    pub tries: u32,
    /// `pivot.state`: where the count is kept on the boot root.
    pub state: PathBuf,
    /// `pivot.bootdisk`: the boot disk, for `pivot-init bless` after a kexec.
    pub bootdisk: Option<Spec>,
    /// `pivot.fsck`: the check of the volume's filesystem before the mount.
    pub fsck: FsckMode,
    /// `pivot.handback`: a /run tmpfs with `/run/initramfs/shutdown` for the
    /// volume's systemd to hand the shutdown back to.
    pub handback: bool,
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
            stats: false,
            debug_exec_fail: false,
            init: PathBuf::from("/sbin/init"),
            old_init: PathBuf::from("/sbin/init.old"),
            timeout_secs: 0,
            devtmpfs: true,
            loglevel: 6,
            modules: Vec::new(),
            coldplug: None,
            kmods: Kmods::Auto,
            kexec: KexecSettings::default(),
            tries: 0,
            state: PathBuf::from(crate::bootcount::DEFAULT_PATH),
            bootdisk: None,
            fsck: FsckMode::Auto,
            handback: true,
            initramfs: false,
        }
    }
}

impl Config {
    /// Whether drivers are loaded by modalias (default: in initramfs mode).
    pub fn coldplug_on(&self) -> bool {
        self.coldplug.unwrap_or(self.initramfs)
    }

    /// Every setting as (key, value text), in the order of [`SETTINGS`].
    pub fn settings(&self) -> Vec<(&'static str, String)> {
        SETTINGS.iter().map(|s| (s.key, (s.show)(self))).collect()
    }
}

/// The config file of the boot image, read before the kernel command line.
pub const CONFIG_FILE: &str = "/etc/pivot-init.conf";

/// The boot's settings: [`CONFIG_FILE`] if present, then `/proc/cmdline`.
/// Returns the config, the warnings to log once the log is open, and the
/// command line's text (the modules stage reads module parameters from it).
pub fn read_boot_config(fs: &dyn Files, initramfs: bool) -> (Config, Vec<String>, String) {
    let mut early = Vec::new();
    let file = match read_config_file(fs, Path::new(CONFIG_FILE)) {
        FileText::Absent => None,
        FileText::Unreadable(why) => {
            early.push(format!(
                "cannot read {CONFIG_FILE}: {why}; using the command line and defaults"
            ));
            None
        }
        FileText::Text(text, warnings) => {
            early.extend(warnings);
            Some(text)
        }
    };
    let cmdline = match fs.cmdline() {
        Ok(bytes) => String::from_utf8_lossy(&bytes).into_owned(),
        Err(e) => {
            early.push(format!(
                "cannot read /proc/cmdline: {}; using the config file and defaults",
                ErrnoText(e)
            ));
            String::new()
        }
    };
    let p = parse_all(
        file.as_deref().map(|t| (CONFIG_FILE, t)),
        &cmdline,
        initramfs,
    );
    early.extend(p.warnings);
    (p.cfg, early, cmdline)
}

/// What reading a config file found.
pub enum FileText {
    Absent,
    /// It exists but cannot be read: the errno, as text.
    Unreadable(String),
    /// Its text (lines that are not UTF-8 decoded lossily) and a warning per such line.
    Text(String, Vec<String>),
}

/// Reads a config file; a missing file is no problem, anything else is said.
pub fn read_config_file(fs: &dyn Files, path: &Path) -> FileText {
    match fs.read(path) {
        Ok(bytes) => {
            let (text, warnings) = decode_lines(&path.display().to_string(), &bytes);
            FileText::Text(text, warnings)
        }
        Err(Errno::NOENT) => FileText::Absent,
        Err(e) => FileText::Unreadable(ErrnoText(e).to_string()),
    }
}

/// The text of a file whose lines may not all be UTF-8: such a line is
/// decoded lossily (U+FFFD for what is not UTF-8) and named in a warning.
pub fn decode_lines(path: &str, bytes: &[u8]) -> (String, Vec<String>) {
    let mut text = String::with_capacity(bytes.len());
    let mut warnings = Vec::new();
    for (n, line) in bytes.split(|b| *b == b'\n').enumerate() {
        if n > 0 {
            text.push('\n');
        }
        match std::str::from_utf8(line) {
            Ok(l) => text.push_str(l),
            Err(_) => {
                let lossy = String::from_utf8_lossy(line);
                warnings.push(format!(
                    "{path}:{}: not valid UTF-8; read as `{}`",
                    n + 1,
                    crate::sys::trim(&lossy)
                ));
                text.push_str(&lossy);
            }
        }
    }
    (text, warnings)
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
            c if crate::sys::is_space(c) && !in_quote => {
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
    if v.contains('\0') {
        return Err(format!(
            "`{}` must not contain a NUL byte",
            crate::sys::escaped(v)
        ));
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

/// Where each setting that is not at its default came from (a short list:
/// a plain vector, no map).
#[derive(Debug, Default)]
pub struct Sources(Vec<(String, Source)>);

impl Sources {
    pub fn get(&self, key: &str) -> Option<Source> {
        self.0.iter().find(|(k, _)| k == key).map(|(_, s)| *s)
    }

    fn set(&mut self, key: &str, source: Source) {
        match self.0.iter_mut().find(|(k, _)| k == key) {
            Some(e) => e.1 = source,
            None => self.0.push((key.to_string(), source)),
        }
    }
}

/// The result of reading the config file and the command line.
#[derive(Debug)]
pub struct Parsed {
    pub cfg: Config,
    pub warnings: Vec<String>,
    /// Keys (normalized, without `pivot.`) set by something other than the default.
    pub sources: Sources,
}

impl Parsed {
    pub fn source(&self, key: &str) -> Source {
        self.sources.get(key).unwrap_or(Source::Default)
    }
}

/// Splits a config file line into key and value; `None` for blank lines and
/// comments, `Err` for a malformed line.
fn config_line(line: &str) -> Option<Result<(String, String), ()>> {
    let line = crate::sys::trim(line);
    if line.is_empty() || line.starts_with('#') {
        return None;
    }
    let Some((k, v)) = line.split_once('=') else {
        return Some(Err(()));
    };
    let key = crate::sys::trim(k);
    let key = crate::sys::underscores(key.strip_prefix("pivot.").unwrap_or(key));
    if key.is_empty() || key.contains(crate::sys::is_space) {
        return Some(Err(()));
    }
    let v = v.trim_start_matches(crate::sys::is_space);
    let value = match v.strip_prefix('"') {
        // A quoted value ends at its closing quote, `#` and all; after it
        // only a comment may follow.
        Some(quoted) => {
            let Some((inside, rest)) = quoted.split_once('"') else {
                return Some(Err(()));
            };
            let rest = rest.trim_start_matches(crate::sys::is_space);
            if !rest.is_empty() && !rest.starts_with('#') {
                return Some(Err(()));
            }
            inside
        }
        // Unquoted, a ` #` starts a trailing comment.
        None => match crate::sys::find(v, " #").or_else(|| crate::sys::find(v, "\t#")) {
            Some(i) => v
                .get(..i)
                .unwrap_or(v)
                .trim_end_matches(crate::sys::is_space),
            None => v.trim_end_matches(crate::sys::is_space),
        },
    };
    Some(Ok((key, value.to_string())))
}

/// Reads, in order of rising precedence: the defaults, the config file
/// (`path`, `text`), the kernel's own keys (initramfs mode), and the
/// `pivot.*` keys of the command line.
pub fn parse_all(config_file: Option<(&str, &str)>, cmdline: &str, initramfs: bool) -> Parsed {
    let mut p = Parsed {
        cfg: Config {
            initramfs,
            ..Config::default()
        },
        warnings: Vec::new(),
        sources: Sources::default(),
    };
    if let Some((path, text)) = config_file {
        p.apply_file(path, text);
    }
    let words = split_cmdline(cmdline);
    let (k, set) = p.apply_cmdline(&words);
    if initramfs {
        let applied = apply_kernel_keys(&mut p.cfg, &k, &set, &p.sources, &mut p.warnings);
        for key in applied {
            p.sources.set(key, Source::KernelKey);
        }
    }
    p
}

impl Parsed {
    /// The config file's `key = value` lines.
    fn apply_file(&mut self, path: &str, text: &str) {
        for (n, line) in text.lines().enumerate() {
            match config_line(line) {
                None => {}
                Some(Err(())) => self.warnings.push(format!(
                    "{path}:{}: ignoring `{}`: expected `key = value`",
                    n + 1,
                    crate::sys::trim(line)
                )),
                Some(Ok((key, value))) => match apply(&mut self.cfg, &key, &value) {
                    Ok(()) => {
                        self.sources.set(&key, Source::ConfigFile);
                    }
                    Err(why) => self.warnings.push(format!(
                        "{path}:{}: ignoring {key} = {value}: {why}; {}",
                        n + 1,
                        kept(&self.sources, &key)
                    )),
                },
            }
        }
    }

    /// The `pivot.*` words of the command line; returns the kernel's own
    /// root keys and the settings `pivot.*` keys set.
    fn apply_cmdline<'w>(&mut self, words: &'w [String]) -> (KernelKeys<'w>, Vec<String>) {
        let mut set = Vec::new();
        let mut k = KernelKeys::default();
        for word in words {
            k.note(word);
            let Some(rest) = word.strip_prefix("pivot.") else {
                continue;
            };
            let (key, value) = rest.split_once('=').unwrap_or((rest, ""));
            let norm = crate::sys::underscores(key);
            match apply(&mut self.cfg, &norm, value) {
                Ok(()) => {
                    self.sources.set(&norm, Source::CommandLine);
                    set.push(norm);
                }
                Err(why) => self.warnings.push(format!(
                    "ignoring pivot.{key}={value}: {why}; {}",
                    kept(&self.sources, &norm)
                )),
            }
        }
        (k, set)
    }
}

impl<'a> KernelKeys<'a> {
    /// Notes `word` if it is one of the kernel's root keys.
    fn note(&mut self, word: &'a str) {
        let (key, value) = word.split_once('=').unwrap_or((word, ""));
        match key {
            "root" => self.root = Some(value),
            "rootfstype" => self.rootfstype = Some(value),
            "rootflags" => self.rootflags = Some(value),
            "ro" if word == "ro" => self.ro = Some(true),
            "rw" if word == "rw" => self.ro = Some(false),
            "rootwait" if word == "rootwait" => self.rootwait = true,
            "rootdelay" => self.rootdelay = Some(value),
            "init" => self.init = Some(value),
            _ => {}
        }
    }
}

/// Applies the kernel's keys where the command line has no `pivot.*` key for
/// the same setting; returns the settings they set.
fn apply_kernel_keys(
    cfg: &mut Config,
    k: &KernelKeys,
    set: &[String],
    sources: &Sources,
    warnings: &mut Vec<String>,
) -> Vec<&'static str> {
    let unset = |key: &str| !set.iter().any(|k| k == key);
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
                Err(why) => warnings.push(format!(
                    "ignoring {key}={v}: {why}; {}",
                    kept(sources, pivot_key)
                )),
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
    if unset("flags") && (kernel_flags || sources.get("flags").is_none()) {
        let mut opts = MountOpts::parse(k.rootflags.unwrap_or(""));
        if k.ro != Some(false) {
            opts.flags |= MountFlags::RDONLY;
        }
        cfg.mount_opts = opts;
        applied.push("flags");
    }
    applied
}

/// One setting: its key (without `pivot.`), its one-line doc, how a value is
/// parsed into the config, and how `plan` shows the config's value. The
/// parser, the unknown-key check, `plan`, `--help` and the README test all
/// read this table.
pub struct Setting {
    pub key: &'static str,
    pub doc: &'static str,
    pub parse: fn(&mut Config, &str) -> Result<(), String>,
    pub show: fn(&Config) -> String,
}

fn show_path(p: &Path) -> String {
    p.display().to_string()
}

fn show_list(v: &[String], empty: &str) -> String {
    if v.is_empty() {
        empty.to_string()
    } else {
        crate::sys::joined(v, ",")
    }
}

fn show_bool(b: bool) -> String {
    if b { "1" } else { "0" }.to_string()
}

/// A comma-separated list of names made of ASCII letters, digits and `extra`.
fn name_list(v: &str, what: &str, extra: &[u8]) -> Result<Vec<String>, String> {
    let names: Vec<String> = v
        .split(',')
        .filter(|t| !t.is_empty())
        .map(str::to_string)
        .collect();
    if let Some(bad) = names.iter().find(|t| {
        !t.bytes()
            .all(|b| b.is_ascii_alphanumeric() || extra.contains(&b))
    }) {
        return Err(format!("`{bad}` is not a {what} name"));
    }
    Ok(names)
}

/// An absolute path that is not `/` and not on or under an API mount
/// (`/dev`, `/proc`, `/sys`, `/run`): the switch moves those, so a new root
/// there would move with them, and an old root there would be covered.
fn not_root(v: &str, what: &str) -> Result<PathBuf, String> {
    let p = abs_path(v)?;
    if p == Path::new("/") {
        return Err(format!("the {what} cannot be /"));
    }
    if let Some(api) = API_MOUNTS.iter().find(|a| p.starts_with(a)) {
        return Err(format!(
            "the {what} cannot be on or under {api}, which the switch moves"
        ));
    }
    Ok(p)
}

pub const SETTINGS: [Setting; 30] = [
    Setting {
        key: "root",
        doc: "the volume: /dev/NAME, MAJ:MIN, UUID=, LABEL=, PARTUUID=, PARTLABEL=, SERIAL=",
        parse: |c, v| {
            c.root = Some(Spec::parse(v)?);
            Ok(())
        },
        show: |c| c.root.as_ref().map_or("(not set)".into(), Spec::to_string),
    },
    Setting {
        key: "fstype",
        doc: "accepted filesystem type(s), comma-separated",
        parse: |c, v| {
            let types = name_list(v, "filesystem type", b"._")?;
            if types.is_empty() {
                return Err("empty filesystem type list".into());
            }
            c.fstypes = types;
            Ok(())
        },
        show: |c| show_list(&c.fstypes, "(probe)"),
    },
    Setting {
        key: "flags",
        doc: "mount options (ro, rw, noatime, ...; the rest goes to the filesystem)",
        parse: |c, v| {
            c.mount_opts = MountOpts::parse(v);
            Ok(())
        },
        show: |c| c.mount_opts.describe(),
    },
    Setting {
        key: "newroot",
        doc: "where the volume is mounted before the switch",
        parse: |c, v| {
            c.new_root = not_root(v, "new root")?;
            Ok(())
        },
        show: |c| show_path(&c.new_root),
    },
    Setting {
        key: "oldroot",
        doc: "where the boot root lives after the switch, inside the volume",
        parse: |c, v| {
            c.old_root = not_root(v, "old root")?;
            Ok(())
        },
        show: |c| show_path(&c.old_root),
    },
    Setting {
        key: "hook",
        doc: "the pre-pivot hook on the volume; none disables",
        parse: |c, v| {
            c.hook = if v == "none" {
                None
            } else {
                Some(abs_path(v)?)
            };
            Ok(())
        },
        show: |c| c.hook.as_deref().map_or("none".into(), show_path),
    },
    Setting {
        key: "hook_timeout",
        doc: "kill the hook's process group after SECS; 0 = no limit",
        parse: |c, v| {
            c.hook_timeout_secs = seconds(v).map_err(|e| format!("{e} (0 = no limit)"))?;
            Ok(())
        },
        show: |c| format!("{} s", c.hook_timeout_secs),
    },
    Setting {
        key: "hook_failure",
        doc: "abort or continue when the hook fails or times out",
        parse: |c, v| {
            c.hook_abort = match v {
                "abort" => true,
                "continue" => false,
                _ => return Err(format!("`{v}` is not one of abort, continue")),
            };
            Ok(())
        },
        show: |c| if c.hook_abort { "abort" } else { "continue" }.into(),
    },
    Setting {
        key: "init",
        doc: "the volume's init",
        parse: |c, v| {
            c.init = abs_path(v)?;
            Ok(())
        },
        show: |c| show_path(&c.init),
    },
    Setting {
        key: "oldinit",
        doc: "the boot root's original init, run when the boot fails",
        parse: |c, v| {
            c.old_init = abs_path(v)?;
            Ok(())
        },
        show: |c| show_path(&c.old_init),
    },
    Setting {
        key: "timeout",
        doc: "stop waiting for the volume after SECS; 0 = forever",
        parse: |c, v| {
            c.timeout_secs = seconds(v).map_err(|e| format!("{e} (0 = forever)"))?;
            Ok(())
        },
        show: |c| match c.timeout_secs {
            0 => "0 (forever)".into(),
            n => format!("{n} s"),
        },
    },
    Setting {
        key: "onfail",
        doc: "on failure: oldinit, shell, reboot, poweroff or wait",
        parse: |c, v| {
            c.onfail = Some(OnFail::parse(v)?);
            Ok(())
        },
        show: |c| match c.onfail {
            Some(a) => a.name().into(),
            None if c.initramfs => "shell if /bin/sh exists, else wait".into(),
            None => "oldinit".into(),
        },
    },
    Setting {
        key: "modules",
        doc: "kernel modules to load, with dependencies, before waiting",
        parse: |c, v| {
            c.modules = name_list(v, "module", b"_-")?;
            Ok(())
        },
        show: |c| show_list(&c.modules, "(none)"),
    },
    Setting {
        key: "coldplug",
        doc: "load drivers for the devices present and added (by modalias)",
        parse: |c, v| {
            c.coldplug = Some(parse_bool(v)?);
            Ok(())
        },
        show: |c| show_bool(c.coldplug_on()),
    },
    Setting {
        key: "kmods",
        doc: "the running kernel's modules on the volume: auto, volume or boot",
        parse: |c, v| {
            c.kmods = Kmods::parse(v)?;
            Ok(())
        },
        show: |c| c.kmods.to_string(),
    },
    Setting {
        key: "kexec",
        doc: "boot the volume's own kernel: off, on, auto (when its release is not the running one)",
        parse: |c, v| {
            c.kexec.mode = KexecMode::parse(v)?;
            Ok(())
        },
        show: |c| c.kexec.mode.name().into(),
    },
    Setting {
        key: "kexec_kernel",
        doc: "the kernel on the volume to boot with kexec (else the volume's boot entry)",
        parse: |c, v| {
            c.kexec.kernel = Some(abs_path(v)?);
            Ok(())
        },
        show: |c| {
            c.kexec
                .kernel
                .as_deref()
                .map_or("(the volume's entry)".into(), show_path)
        },
    },
    Setting {
        key: "kexec_initrd",
        doc: "the initramfs on the volume for the kexec'd kernel; none boots without",
        parse: |c, v| {
            c.kexec.initrd = Some(if v == "none" {
                KexecInitrd::Without
            } else {
                KexecInitrd::Path(abs_path(v)?)
            });
            Ok(())
        },
        show: |c| match &c.kexec.initrd {
            None => "(the entry's)".into(),
            Some(KexecInitrd::Without) => "none".into(),
            Some(KexecInitrd::Path(p)) => show_path(p),
        },
    },
    Setting {
        key: "kexec_cmdline",
        doc: "the kexec'd kernel's command line (else the entry's options)",
        parse: |c, v| {
            if crate::sys::trim(v).is_empty() {
                return Err("empty command line; leave it unset to use the entry's".into());
            }
            c.kexec.cmdline = Some(v.to_string());
            Ok(())
        },
        show: |c| {
            c.kexec
                .cmdline
                .clone()
                .unwrap_or_else(|| "(the entry's)".into())
        },
    },
    Setting {
        key: "kexec_entry",
        doc: "the BLS entry to boot (file name without .conf; else the newest)",
        parse: |c, v| {
            let name = v.strip_suffix(".conf").unwrap_or(v);
            if name.is_empty() || name.contains('/') || name.starts_with('.') {
                return Err(format!("`{v}` is not an entry file name"));
            }
            c.kexec.entry = Some(name.to_string());
            Ok(())
        },
        show: |c| {
            c.kexec
                .entry
                .clone()
                .unwrap_or_else(|| "(the newest)".into())
        },
    },
    Setting {
        key: "tries",
        doc: "boots a volume gets to come up (pivot-init bless) before the old init runs; 0 = off",
        parse: |c, v| {
            let n = v
                .parse::<u32>()
                .ok()
                .filter(|n| *n <= 1000)
                .ok_or_else(|| format!("`{v}` is not a number of tries 0..1000 (0 = off)"))?;
            if c.initramfs && n > 0 {
                return Err(
                    "boots are counted on the boot disk, and in initramfs mode there \
                            is none: a count kept in the initramfs would be gone at the next \
                            boot (machine-image mode only)"
                        .into(),
                );
            }
            c.tries = n;
            Ok(())
        },
        show: |c| match c.tries {
            0 => "0 (off)".into(),
            n => n.to_string(),
        },
    },
    Setting {
        key: "state",
        doc: "where the boot count is kept on the boot root",
        parse: |c, v| {
            c.state = not_root(v, "state file")?;
            Ok(())
        },
        show: |c| show_path(&c.state),
    },
    Setting {
        key: "bootdisk",
        doc: "the boot disk, for pivot-init bless after a kexec (put on the new kernel's line; the boot ignores it)",
        parse: |c, v| {
            c.bootdisk = Some(Spec::parse(v)?);
            Ok(())
        },
        show: |c| {
            c.bootdisk
                .as_ref()
                .map_or("(not set)".into(), Spec::to_string)
        },
    },
    Setting {
        key: "fsck",
        doc: "check the volume's filesystem before mounting it: auto, force or skip",
        parse: |c, v| {
            c.fsck = FsckMode::parse(v)?;
            Ok(())
        },
        show: |c| c.fsck.to_string(),
    },
    Setting {
        key: "handback",
        doc: "hand /run with /run/initramfs/shutdown to the volume, for systemd to unmount it at shutdown",
        parse: |c, v| {
            c.handback = parse_bool(v)?;
            Ok(())
        },
        show: |c| show_bool(c.handback),
    },
    Setting {
        key: "devtmpfs",
        doc: "mount devtmpfs on /dev when /dev is not a mount",
        parse: |c, v| {
            c.devtmpfs = parse_bool(v)?;
            Ok(())
        },
        show: |c| show_bool(c.devtmpfs),
    },
    Setting {
        key: "loglevel",
        doc: "0..7 as printk levels; 7 adds debug lines",
        parse: |c, v| {
            let level = v.parse::<u8>().ok().filter(|l| *l <= 7);
            c.loglevel = level.ok_or_else(|| format!("`{v}` is not a log level 0..7"))?;
            Ok(())
        },
        show: |c| c.loglevel.to_string(),
    },
    Setting {
        key: "stats",
        doc: "add CPU time and peak memory to the summary line (reads /proc/self/*)",
        parse: |c, v| {
            c.stats = parse_bool(v)?;
            Ok(())
        },
        show: |c| show_bool(c.stats),
    },
    Setting {
        key: "debug_panic",
        doc: "panic when STAGE starts (tests the panic path)",
        parse: |c, v| {
            let stage = Stage::from_name(v).ok_or_else(|| {
                let names: Vec<&str> = Stage::ALL.iter().map(|s| s.name()).collect();
                format!(
                    "`{v}` is not a stage ({})",
                    crate::sys::joined(&names, ", ")
                )
            })?;
            c.debug_panic = Some(stage);
            Ok(())
        },
        show: |c| c.debug_panic.map_or("(off)".into(), |s| s.name().into()),
    },
    Setting {
        key: "debug_exec_fail",
        doc: "make the exec of the checked init fail (tests undoing the switch)",
        parse: |c, v| {
            c.debug_exec_fail = parse_bool(v)?;
            Ok(())
        },
        show: |c| show_bool(c.debug_exec_fail),
    },
];

/// Sets `key` (normalized, without `pivot.`) from `v`, or says why not.
fn apply(cfg: &mut Config, key: &str, v: &str) -> Result<(), String> {
    match SETTINGS.iter().find(|s| s.key == key) {
        Some(s) => (s.parse)(cfg, v),
        None => {
            let keys: Vec<&str> = SETTINGS.iter().map(|s| s.key).collect();
            Err(format!(
                "unknown key; known keys: {}",
                crate::sys::joined(&keys, ", ")
            ))
        }
    }
}

/// The tail of a warning about a refused value: what is used instead.
fn kept(sources: &Sources, key: &str) -> &'static str {
    if sources.get(key).is_some() {
        "keeping the earlier value"
    } else {
        "using the default"
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn config_file_lines_that_are_not_utf8() {
        let (text, w) = decode_lines(
            "/etc/pivot-init.conf",
            b"timeout = 5\nlabel\xff = x\nroot = LABEL=d\n",
        );
        assert_eq!(text, "timeout = 5\nlabel\u{fffd} = x\nroot = LABEL=d\n");
        assert_eq!(
            w,
            ["/etc/pivot-init.conf:2: not valid UTF-8; read as `label\u{fffd} = x`"]
        );
        let p = parse_all(Some(("/etc/pivot-init.conf", &text)), "", false);
        assert_eq!(p.cfg.timeout_secs, 5);
        assert_eq!(p.cfg.root, Some(Spec::Label("d".into())));
        let dir = std::env::temp_dir().join(format!("pivot-conf-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let fs = crate::sys::RealSys::default();
        assert!(matches!(
            read_config_file(&fs, &dir.join("nope")),
            FileText::Absent
        ));
        // A directory cannot be read as a file: said, with the errno.
        match read_config_file(&fs, &dir) {
            FileText::Unreadable(why) => assert_eq!(why, "errno 21 (Is a directory)"),
            _ => panic!("a directory read as a config file"),
        }
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn tries_only_in_a_machine_image() {
        let line = "pivot.tries=3 pivot.state=/var/lib/count pivot.bootdisk=UUID=ab-cd";
        let p = parse_all(None, line, false);
        assert!(p.warnings.is_empty(), "{:?}", p.warnings);
        assert_eq!(p.cfg.tries, 3);
        assert_eq!(p.cfg.state, PathBuf::from("/var/lib/count"));
        assert_eq!(p.cfg.bootdisk, Some(Spec::Uuid("ab-cd".into())));
        let p = parse_all(Some(("f", "tries = 2\n")), "", true);
        assert_eq!(p.cfg.tries, 0);
        assert_eq!(
            p.warnings,
            [
                "f:1: ignoring tries = 2: boots are counted on the boot disk, and in initramfs mode \
                 there is none: a count kept in the initramfs would be gone at the next boot \
                 (machine-image mode only); using the default"
            ]
        );
        // Off is fine in both modes.
        assert!(parse_all(None, "pivot.tries=0", true).warnings.is_empty());
        let p = parse_all(
            None,
            "pivot.tries=-1 pivot.state=/proc/x pivot.tries=1001",
            false,
        );
        assert_eq!(
            p.warnings,
            [
                "ignoring pivot.tries=-1: `-1` is not a number of tries 0..1000 (0 = off); using the default",
                "ignoring pivot.state=/proc/x: the state file cannot be on or under /proc, which the switch moves; using the default",
                "ignoring pivot.tries=1001: `1001` is not a number of tries 0..1000 (0 = off); using the default",
            ]
        );
    }

    #[test]
    fn roots_the_switch_cannot_work_with_are_refused() {
        let p = parse_all(
            None,
            "pivot.newroot=/run/vol pivot.oldroot=/dev/boot pivot.newroot=/ pivot.oldroot=/proc",
            false,
        );
        assert_eq!(p.cfg.new_root, PathBuf::from("/new-root"));
        assert_eq!(p.cfg.old_root, PathBuf::from("/old-root"));
        assert_eq!(
            p.warnings,
            [
                "ignoring pivot.newroot=/run/vol: the new root cannot be on or under /run, which the switch moves; using the default",
                "ignoring pivot.oldroot=/dev/boot: the old root cannot be on or under /dev, which the switch moves; using the default",
                "ignoring pivot.newroot=/: the new root cannot be /; using the default",
                "ignoring pivot.oldroot=/proc: the old root cannot be on or under /proc, which the switch moves; using the default",
            ]
        );
    }

    /// README's settings reference table names every key of [`SETTINGS`],
    /// in the same order, and no other.
    #[test]
    fn readme_table_matches_the_settings() {
        let readme = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/README.md"))
            .expect("README.md");
        let section = readme
            .split("\n## ")
            .find(|s| s.starts_with("Settings"))
            .expect("a Settings section");
        let table: Vec<&str> = section
            .lines()
            .skip_while(|l| !l.starts_with("| key |"))
            .skip(2)
            .take_while(|l| l.starts_with('|'))
            .filter_map(|l| l.split('`').nth(1))
            .collect();
        let keys: Vec<&str> = SETTINGS.iter().map(|s| s.key).collect();
        assert_eq!(table, keys);
        // Each shown default is what plan prints for a default config.
        for s in &SETTINGS {
            assert!(!(s.show)(&Config::default()).is_empty(), "{}", s.key);
            assert!(!s.doc.is_empty(), "{}", s.key);
        }
    }

    fn parse(cmdline: &str, initramfs: bool) -> (Config, Vec<String>) {
        let p = parse_all(None, cmdline, initramfs);
        (p.cfg, p.warnings)
    }

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
        assert_eq!(cfg.debug_panic, Some(Stage::Mount));
    }

    #[test]
    fn kexec_settings() {
        let p = parse_all(
            None,
            "pivot.kexec=auto pivot.kexec_kernel=/boot/vmlinuz-6.1 pivot.kexec_initrd=none \
             pivot.kexec_cmdline=\"root=UUID=x ro quiet\" pivot.kexec-entry=debian.conf",
            false,
        );
        assert!(p.warnings.is_empty(), "{:?}", p.warnings);
        let k = &p.cfg.kexec;
        assert_eq!(k.mode, KexecMode::Auto);
        assert_eq!(k.kernel.as_deref(), Some(Path::new("/boot/vmlinuz-6.1")));
        assert_eq!(k.initrd, Some(KexecInitrd::Without));
        assert_eq!(k.cmdline.as_deref(), Some("root=UUID=x ro quiet"));
        assert_eq!(k.entry.as_deref(), Some("debian"));
        let p = parse_all(
            None,
            "pivot.kexec=yes pivot.kexec_kernel=vmlinuz pivot.kexec_cmdline= pivot.kexec_entry=../x",
            false,
        );
        assert_eq!(p.cfg.kexec, KexecSettings::default());
        assert_eq!(
            p.warnings,
            [
                "ignoring pivot.kexec=yes: `yes` is not one of off, on, auto; using the default",
                "ignoring pivot.kexec_kernel=vmlinuz: `vmlinuz` is not an absolute path; using the default",
                "ignoring pivot.kexec_cmdline=: empty command line; leave it unset to use the entry's; using the default",
                "ignoring pivot.kexec_entry=../x: `../x` is not an entry file name; using the default",
            ]
        );
    }

    #[test]
    fn quoted_values_keep_their_hash() {
        let ok = |l: &str| config_line(l).unwrap().unwrap().1;
        assert_eq!(ok(r#"hook = "/pre pivot #1" # the hook"#), "/pre pivot #1");
        assert_eq!(ok(r#"flags = "ro,noatime""#), "ro,noatime");
        assert_eq!(ok("flags = ro,noatime # read-only"), "ro,noatime");
        assert_eq!(ok("root = LABEL=a#b"), "LABEL=a#b");
        assert_eq!(ok(r#"root = """#), "");
        assert_eq!(config_line(r#"hook = "/unterminated #x"#), Some(Err(())));
        assert_eq!(config_line(r#"hook = "/a" trailing"#), Some(Err(())));
        let p = parse_all(
            Some(("f", "init = \"/sbin/init #2\" # comment\n")),
            "",
            false,
        );
        assert!(p.warnings.is_empty(), "{:?}", p.warnings);
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
        let (_, w) = parse("root=/dev/disk/by-id/ata-x", true);
        assert_eq!(w.len(), 1);
        assert!(
            w[0].starts_with("ignoring root=/dev/disk/by-id/ata-x: "),
            "{}",
            w[0]
        );
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
            "ignoring pivot.root=sda: `sda` is not a valid volume spec; expected /dev/NAME, MAJ:MIN, UUID=, LABEL=, PARTUUID=, PARTLABEL=, SERIAL=, LUN= or a /dev/disk/by-* link; using the default"
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
                "ignoring pivot.root=: empty volume spec; expected /dev/NAME, MAJ:MIN, UUID=, LABEL=, PARTUUID=, PARTLABEL=, SERIAL=, LUN= or a /dev/disk/by-* link; keeping the earlier value",
                "ignoring pivot.hook_timeout=-1: `-1` is not a number of seconds (0 = no limit); using the default",
            ]
        );
    }
}
