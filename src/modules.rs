//! Kernel module loading without modprobe: resolve dependencies from
//! `modules.dep`, skip what is built in or loaded, `finit_module` the rest.
//! The resolution is pure code shared with `pivot-mkinitramfs`.

use std::fmt;
use std::path::{Path, PathBuf};

use crate::sys::{Errno, ErrnoText, Files, Sys};

/// Why a module could not be loaded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ModuleError {
    NotInDep(String),
    Loop(String),
    NoDepFile {
        path: PathBuf,
        errno: Errno,
    },
    Open {
        name: String,
        path: PathBuf,
        errno: Errno,
    },
    /// The kernel cannot decompress this compressed module.
    Compressed {
        name: String,
        path: PathBuf,
        errno: Errno,
    },
    Load {
        name: String,
        path: PathBuf,
        errno: Errno,
    },
}

impl std::error::Error for ModuleError {}

impl fmt::Display for ModuleError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ModuleError::NotInDep(m) => write!(f, "module {m} not found in modules.dep"),
            ModuleError::Loop(p) => write!(f, "dependency loop at {p}"),
            ModuleError::NoDepFile { path, errno } => {
                write!(f, "cannot read {}: {}", path.display(), ErrnoText(*errno))
            }
            ModuleError::Open { name, path, errno } => write!(
                f,
                "module {name}: cannot open {}: {}",
                path.display(),
                ErrnoText(*errno)
            ),
            ModuleError::Compressed { name, path, errno } => write!(
                f,
                "module {name}: {} is compressed and this kernel cannot decompress modules \
                 (no CONFIG_MODULE_DECOMPRESS): {}; ship it uncompressed",
                path.display(),
                ErrnoText(*errno)
            ),
            ModuleError::Load { name, path, errno } => write!(
                f,
                "module {name}: finit_module({}) failed: {}",
                path.display(),
                ErrnoText(*errno)
            ),
        }
    }
}

/// `finit_module` flag: the file is compressed; the kernel decompresses it.
pub const MODULE_INIT_COMPRESSED_FILE: i32 = 4;

/// The module tree of a kernel release, where modprobe looks for it.
pub fn module_dir(release: &str) -> PathBuf {
    Path::new("/lib/modules").join(release)
}

/// A module name as the kernel compares it: dashes as underscores
/// (`virtio-blk` is `virtio_blk`).
pub fn normalize(name: &str) -> String {
    crate::sys::underscores(name)
}

/// A module's name as the kernel knows it: file name without `.ko[.xz|.zst|.gz]`,
/// normalized.
pub fn module_name(path: &str) -> String {
    let base = crate::sys::last_name(path);
    let stem = crate::sys::find(base, ".ko").and_then(|i| base.get(..i));
    normalize(stem.unwrap_or(base))
}

pub fn is_compressed(path: &str) -> bool {
    [".ko.xz", ".ko.zst", ".ko.gz"]
        .iter()
        .any(|e| path.ends_with(e))
}

/// `modules.dep`: module name -> (path, dependency paths), as a vector
/// sorted by name (no map type in the binary for it).
#[derive(Debug, Default)]
pub struct DepMap {
    entries: Vec<(String, (String, Vec<String>))>,
}

impl DepMap {
    pub fn parse(text: &str) -> DepMap {
        let mut entries = Vec::new();
        for line in text.lines() {
            let Some((path, deps)) = line.split_once(':') else {
                continue;
            };
            let path = crate::sys::trim(path);
            if path.is_empty() {
                continue;
            }
            let deps = crate::sys::words(deps).map(str::to_string).collect();
            entries.push((module_name(path), (path.to_string(), deps)));
        }
        // A name listed twice keeps its last line: reversed, then a stable
        // sort puts it first of its equals, and `dedup` keeps the first.
        entries.reverse();
        entries.sort_by(|a, b| a.0.cmp(&b.0));
        entries.dedup_by(|a, b| a.0 == b.0);
        DepMap { entries }
    }

    /// The path and the dependency paths of module `name`.
    pub fn get(&self, name: &str) -> Option<&(String, Vec<String>)> {
        let i = self
            .entries
            .binary_search_by(|e| e.0.as_str().cmp(name))
            .ok()?;
        self.entries.get(i).map(|e| &e.1)
    }

    pub fn contains(&self, name: &str) -> bool {
        self.get(name).is_some()
    }

    /// The module files to load for `wanted`, dependencies first, each once.
    /// Names in `builtin` (sorted, as [`parse_builtin`] gives them) are
    /// skipped; an unknown name is an error.
    pub fn resolve(
        &self,
        wanted: &[String],
        builtin: &[String],
    ) -> Result<Vec<String>, ModuleError> {
        let mut order = Vec::new();
        let mut done = Vec::new();
        for w in wanted {
            let name = normalize(w);
            if builtin.binary_search(&name).is_ok() {
                continue;
            }
            let Some((path, _)) = self.get(&name) else {
                return Err(ModuleError::NotInDep(w.clone()));
            };
            self.visit(path, &mut done, &mut order, 0)?;
        }
        Ok(order)
    }

    fn visit(
        &self,
        path: &str,
        done: &mut Vec<String>,
        order: &mut Vec<String>,
        depth: usize,
    ) -> Result<(), ModuleError> {
        if depth > 64 {
            return Err(ModuleError::Loop(path.to_string()));
        }
        if done.iter().any(|d| d == path) {
            return Ok(());
        }
        done.push(path.to_string());
        if let Some((_, deps)) = self.get(&module_name(path)) {
            for d in deps {
                self.visit(d, done, order, depth + 1)?;
            }
        }
        order.push(path.to_string());
        Ok(())
    }
}

/// Names of the built-in modules (`modules.builtin` lists their paths),
/// sorted, each once.
pub fn parse_builtin(text: &str) -> Vec<String> {
    let mut names: Vec<String> = text
        .lines()
        .filter(|l| !crate::sys::trim(l).is_empty())
        .map(module_name)
        .collect();
    names.sort_unstable();
    names.dedup();
    names
}

/// Shell-style matching as modules.alias uses it: `*`, `?`, `[abc]`,
/// `[a-z]`, `[!x]`.
pub fn glob_match(pat: &[u8], s: &[u8]) -> bool {
    // Iterative with one backtrack point for the last `*`.
    let (mut p, mut i) = (0usize, 0usize);
    let mut star: Option<(usize, usize)> = None;
    while i < s.len() {
        match pat.get(p) {
            Some(b'*') => {
                star = Some((p, i));
                p += 1;
                continue;
            }
            Some(b'?') => {
                p += 1;
                i += 1;
                continue;
            }
            Some(b'[') => {
                if let Some((hit, next)) = class(pat, p, s[i])
                    && hit
                {
                    p = next;
                    i += 1;
                    continue;
                }
            }
            Some(c) if *c == s[i] => {
                p += 1;
                i += 1;
                continue;
            }
            _ => {}
        }
        match star {
            Some((sp, si)) => {
                p = sp + 1;
                i = si + 1;
                star = Some((sp, si + 1));
            }
            None => return false,
        }
    }
    pat[p.min(pat.len())..].iter().all(|c| *c == b'*')
}

/// Matches `c` against the class starting at `pat[p] == b'['`; returns
/// (matched, index after the class), or `None` for an unterminated class.
fn class(pat: &[u8], p: usize, c: u8) -> Option<(bool, usize)> {
    let mut k = p + 1;
    let negate = matches!(pat.get(k), Some(b'!') | Some(b'^'));
    if negate {
        k += 1;
    }
    let mut hit = false;
    let mut first = true;
    loop {
        let b = *pat.get(k)?;
        if b == b']' && !first {
            return Some((hit != negate, k + 1));
        }
        first = false;
        if pat.get(k + 1) == Some(&b'-') && pat.get(k + 2).is_some_and(|e| *e != b']') {
            let e = *pat.get(k + 2)?;
            hit |= b <= c && c <= e;
            k += 3;
        } else {
            hit |= b == c;
            k += 1;
        }
    }
}

/// `modules.alias`: (pattern, module name) pairs.
#[derive(Debug, Default)]
pub struct Aliases(pub Vec<(String, String)>);

impl Aliases {
    pub fn parse(text: &str) -> Aliases {
        Aliases(
            text.lines()
                .filter_map(|l| {
                    let mut w = crate::sys::words(l);
                    match (w.next(), w.next(), w.next()) {
                        (Some("alias"), Some(p), Some(m)) => Some((p.to_string(), normalize(m))),
                        _ => None,
                    }
                })
                .collect(),
        )
    }

    /// The modules whose aliases match a device's modalias.
    pub fn modules_for(&self, modalias: &str) -> Vec<String> {
        let mut out: Vec<String> = Vec::new();
        for (p, m) in &self.0 {
            if glob_match(p.as_bytes(), modalias.as_bytes()) && !out.contains(m) {
                out.push(m.clone());
            }
        }
        out
    }
}

/// What modprobe would read besides the module tree: parameters
/// (`options` lines, `MOD.PARAM=VALUE` on the command line), soft
/// dependencies (`softdep`, `modules.softdep`) and the blacklist
/// (`blacklist` lines, `modprobe.blacklist=`). Module names are normalized
/// (dashes as underscores).
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct ModConfig {
    /// Module -> its parameters (`p=v`), in order: a later one wins in the kernel.
    pub options: Vec<(String, Vec<String>)>,
    /// Module -> (pre, post) soft dependencies.
    pub softdeps: Vec<(String, SoftDeps)>,
    pub blacklist: Vec<String>,
}

/// A module's `pre:` and `post:` soft dependencies.
pub type SoftDeps = (Vec<String>, Vec<String>);

/// The entry for `key` in a short list of pairs, made when missing.
fn entry<'a, V: Default>(list: &'a mut Vec<(String, V)>, key: &str) -> &'a mut V {
    let i = match list.iter().position(|(k, _)| k == key) {
        Some(i) => i,
        None => {
            list.push((key.to_string(), V::default()));
            list.len() - 1
        }
    };
    &mut list[i].1
}

/// The value for `key` in a short list of pairs.
pub fn lookup<'a, V>(list: &'a [(String, V)], key: &str) -> Option<&'a V> {
    list.iter().find(|(k, _)| k == key).map(|(_, v)| v)
}

/// The directories of modprobe configuration on the root pivot-init runs from.
pub const MODPROBE_DIRS: [&str; 2] = ["/lib/modprobe.d", "/etc/modprobe.d"];

impl ModConfig {
    /// Adds the lines of a modprobe.d file or of `modules.softdep`.
    pub fn add_conf(&mut self, text: &str) {
        for line in text.lines() {
            let mut w = crate::sys::words(line);
            match (w.next(), w.next()) {
                (Some("options"), Some(m)) => {
                    entry(&mut self.options, &normalize(m)).extend(w.map(str::to_string))
                }
                (Some("blacklist"), Some(m)) => self.blacklist.push(normalize(m)),
                (Some("softdep"), Some(m)) => {
                    let entry = entry(&mut self.softdeps, &normalize(m));
                    let mut post = false;
                    for t in w {
                        match t {
                            "pre:" => post = false,
                            "post:" => post = true,
                            name if post => entry.1.push(normalize(name)),
                            name => entry.0.push(normalize(name)),
                        }
                    }
                }
                _ => {}
            }
        }
    }

    /// Adds what the kernel command line says: `MOD.PARAM=VALUE` (the kernel
    /// leaves these for modules it does not have built in) and
    /// `modprobe.blacklist=M1,M2`.
    pub fn add_cmdline(&mut self, words: &[String]) {
        for word in words {
            let Some((key, value)) = word.split_once('=') else {
                continue;
            };
            let Some((module, param)) = key.split_once('.') else {
                continue;
            };
            if module.is_empty() || param.is_empty() || module == "pivot" {
                continue;
            }
            if module == "modprobe" && param == "blacklist" {
                self.blacklist
                    .extend(value.split(',').filter(|m| !m.is_empty()).map(normalize));
                continue;
            }
            let value = if value.contains(crate::sys::is_space) {
                format!("\"{value}\"")
            } else {
                value.to_string()
            };
            entry(&mut self.options, &normalize(module)).push(format!("{param}={value}"));
        }
    }

    /// The parameter string `finit_module` gets for `module`.
    pub fn params(&self, module: &str) -> String {
        lookup(&self.options, module)
            .map(|o| crate::sys::joined(o, " "))
            .unwrap_or_default()
    }

    /// Reads `modules.softdep` of `dir` and the `*.conf` files of `conf_dirs`
    /// (in name order), then the command line: the command line wins.
    pub fn read(
        fs: &dyn Files,
        dir: &Path,
        conf_dirs: &[&str],
        cmdline_words: &[String],
    ) -> ModConfig {
        let text = |p: &Path| String::from_utf8_lossy(&fs.read(p).unwrap_or_default()).into_owned();
        let mut c = ModConfig::default();
        c.add_conf(&text(&dir.join("modules.softdep")));
        for d in conf_dirs {
            let mut files = fs.read_dir(Path::new(d)).unwrap_or_default();
            files.retain(|f| f.ends_with(".conf"));
            files.sort_unstable();
            for f in files {
                c.add_conf(&text(&Path::new(d).join(f)));
            }
        }
        c.add_cmdline(cmdline_words);
        c
    }
}

/// Loads modules from one module tree (`/lib/modules/$(uname -r)`).
pub struct Loader {
    dir: PathBuf,
    deps: DepMap,
    builtin: Vec<String>,
    aliases: Aliases,
    conf: ModConfig,
}

impl Loader {
    pub fn open(fs: &dyn Files, dir: &Path, conf: ModConfig) -> Result<Loader, ModuleError> {
        let dep_path = dir.join("modules.dep");
        let dep_text = fs.read(&dep_path).map_err(|errno| ModuleError::NoDepFile {
            errno,
            path: dep_path,
        })?;
        let dep_text = String::from_utf8_lossy(&dep_text);
        let read = |name: &str| {
            String::from_utf8_lossy(&fs.read(&dir.join(name)).unwrap_or_default()).into_owned()
        };
        Ok(Loader {
            dir: dir.to_path_buf(),
            deps: DepMap::parse(&dep_text),
            builtin: parse_builtin(&read("modules.builtin")),
            aliases: Aliases::parse(&read("modules.alias")),
            conf,
        })
    }

    /// Loads `wanted` with their soft dependencies (`pre:` first, `post:`
    /// after, best effort) and dependencies; returns how many were loaded.
    /// An error names the module and the reason.
    pub fn load(&self, sys: &dyn Sys, wanted: &[String]) -> Result<usize, ModuleError> {
        let mut loaded = 0;
        for w in wanted {
            loaded += self.load_soft(sys, &normalize(w), 0)?;
        }
        Ok(loaded)
    }

    fn load_soft(&self, sys: &dyn Sys, name: &str, depth: usize) -> Result<usize, ModuleError> {
        if depth > 8 {
            return Err(ModuleError::Loop(name.to_string()));
        }
        let (pre, post) = lookup(&self.conf.softdeps, name)
            .cloned()
            .unwrap_or_default();
        let mut loaded = 0;
        let soft = |m: &String| match self.load_soft(sys, m, depth + 1) {
            Ok(n) => n,
            Err(e) => {
                log::warn!("{e} (a soft dependency of {name})");
                0
            }
        };
        loaded += pre.iter().map(soft).sum::<usize>();
        let order = self.deps.resolve(&[name.to_string()], &self.builtin)?;
        for rel in order {
            let m = module_name(&rel);
            if sys.exists(&Path::new("/sys/module").join(&m)) {
                log::debug!("module {m} is already loaded");
                continue;
            }
            load_one(sys, &self.dir.join(&rel), &m, &self.conf.params(&m))?;
            loaded += 1;
        }
        loaded += post.iter().map(soft).sum::<usize>();
        Ok(loaded)
    }

    /// Loads the drivers a device's modalias asks for, when this tree has
    /// them and they are not blacklisted (best effort: a failure is a
    /// warning). Returns how many loaded.
    pub fn load_for(&self, sys: &dyn Sys, modalias: &str) -> usize {
        let wanted: Vec<String> = self
            .aliases
            .modules_for(modalias)
            .into_iter()
            .filter(|m| self.deps.contains(m))
            .filter(|m| {
                let black = self.conf.blacklist.contains(m);
                if black {
                    log::debug!("not loading {m} for {modalias}: blacklisted");
                }
                !black
            })
            .collect();
        if wanted.is_empty() {
            return 0;
        }
        match self.load(sys, &wanted) {
            Ok(n) => n,
            Err(e) => {
                log::warn!("{e} (for device {modalias})");
                0
            }
        }
    }

    /// Coldplug: loads drivers for every device present now
    /// (`/sys/bus/*/devices/*/modalias`). Returns how many modules loaded.
    pub fn coldplug(&self, sys: &dyn Sys, sys_bus: &Path) -> usize {
        if self.aliases.0.is_empty() {
            log::debug!("no modules.alias in {}: no coldplug", self.dir.display());
            return 0;
        }
        let mut n = 0;
        for bus in sys.read_dir(sys_bus).unwrap_or_default() {
            let devices = sys_bus.join(bus).join("devices");
            for dev in sys.read_dir(&devices).unwrap_or_default() {
                if let Ok(alias) = sys.read_text(&devices.join(dev).join("modalias")) {
                    n += self.load_for(sys, crate::sys::trim(&alias));
                }
            }
        }
        n
    }
}

/// Whether the running kernel's module tree has `modules.alias`: anything
/// to coldplug with (an initramfs without modules does no work for them).
pub fn has_aliases(sys: &dyn Sys) -> bool {
    sys.exists(&module_dir(&sys.kernel_release()).join("modules.alias"))
}

/// The modules stage: loads `wanted` (an error is fatal) and, with
/// `coldplug`, the drivers of the devices present (`/sys/bus`); returns the
/// loader, which loads drivers for devices that come later. Without a
/// module tree, coldplug alone is quietly skipped (`None`).
pub fn load_stage(
    sys: &dyn Sys,
    wanted: &[String],
    coldplug: bool,
    cmdline_words: &[String],
) -> Result<Option<Loader>, ModuleError> {
    let dir = module_dir(&sys.kernel_release());
    let conf = ModConfig::read(sys, &dir, &MODPROBE_DIRS, cmdline_words);
    let loader = match Loader::open(sys, &dir, conf) {
        Ok(l) => l,
        Err(e) if wanted.is_empty() => {
            log::debug!("no coldplug: {e}");
            return Ok(None);
        }
        Err(e) => return Err(e),
    };
    if !wanted.is_empty() {
        let n = loader.load(sys, wanted)?;
        log::info!(
            "loaded {n} module(s) for {}",
            crate::sys::joined(wanted, ",")
        );
    }
    if coldplug {
        let n = loader.coldplug(sys, Path::new("/sys/bus"));
        if n > 0 {
            log::info!("coldplug: loaded {n} module(s) for the devices present");
        }
    }
    Ok(Some(loader))
}

fn load_one(sys: &dyn Sys, path: &Path, name: &str, params: &str) -> Result<(), ModuleError> {
    let (name, path) = (name.to_string(), path.to_path_buf());
    let file = match sys.open_ro(&path) {
        Ok(f) => f,
        Err(errno) => return Err(ModuleError::Open { name, path, errno }),
    };
    let compressed = is_compressed(&path.to_string_lossy());
    let flags = if compressed {
        MODULE_INIT_COMPRESSED_FILE
    } else {
        0
    };
    let params_c = std::ffi::CString::new(params).unwrap_or_default();
    match sys.load_module(&file, &params_c, flags) {
        Ok(()) => {
            if params.is_empty() {
                log::info!("loaded module {name}");
            } else {
                log::info!("loaded module {name} ({params})");
            }
            Ok(())
        }
        Err(Errno::EXIST) => Ok(()),
        Err(errno)
            if compressed && matches!(errno, Errno::INVAL | Errno::NOPKG | Errno::OPNOTSUPP) =>
        {
            Err(ModuleError::Compressed { name, path, errno })
        }
        Err(errno) => Err(ModuleError::Load { name, path, errno }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const DEP: &str = "kernel/fs/xfs/xfs.ko: kernel/lib/libcrc32c.ko\n\
kernel/lib/libcrc32c.ko:\n\
kernel/drivers/block/virtio_blk.ko: kernel/drivers/virtio/virtio_ring.ko kernel/drivers/virtio/virtio.ko\n\
kernel/drivers/virtio/virtio_ring.ko: kernel/drivers/virtio/virtio.ko\n\
kernel/drivers/virtio/virtio.ko:\n\
kernel/drivers/virtio/virtio_pci.ko: kernel/drivers/virtio/virtio_pci_modern_dev.ko kernel/drivers/virtio/virtio_ring.ko kernel/drivers/virtio/virtio.ko\n\
kernel/drivers/virtio/virtio_pci_modern_dev.ko:\n\
kernel/drivers/scsi/sd_mod.ko.xz: kernel/drivers/scsi/scsi_common.ko\n\
kernel/drivers/scsi/scsi_common.ko:\n\
garbage line\n";

    #[test]
    fn names() {
        assert_eq!(module_name("kernel/drivers/scsi/sd_mod.ko.xz"), "sd_mod");
        assert_eq!(module_name("crc32c-intel.ko"), "crc32c_intel");
        assert!(is_compressed("a.ko.zst") && !is_compressed("a.ko"));
    }

    #[test]
    fn dependencies_first_each_once() {
        let m = DepMap::parse(DEP);
        let order = m
            .resolve(&["virtio_pci".into(), "virtio-blk".into()], &[])
            .unwrap();
        assert_eq!(
            order,
            vec![
                "kernel/drivers/virtio/virtio_pci_modern_dev.ko",
                "kernel/drivers/virtio/virtio.ko",
                "kernel/drivers/virtio/virtio_ring.ko",
                "kernel/drivers/virtio/virtio_pci.ko",
                "kernel/drivers/block/virtio_blk.ko",
            ]
        );
        let order = m.resolve(&["sd_mod".into()], &[]).unwrap();
        assert_eq!(
            order,
            vec![
                "kernel/drivers/scsi/scsi_common.ko",
                "kernel/drivers/scsi/sd_mod.ko.xz"
            ]
        );
    }

    /// Looked up by name in any order of the file; a module listed twice
    /// is the last line's, as the map before it kept it.
    #[test]
    fn lookups_by_name_and_the_last_line_wins() {
        let m = DepMap::parse("z/zz.ko: a/old.ko\nb/b.ko:\nz/zz.ko: y/new.ko\na/aa.ko: b/b.ko\n");
        assert_eq!(
            m.get("zz"),
            Some(&("z/zz.ko".to_string(), vec!["y/new.ko".to_string()]))
        );
        assert_eq!(m.get("aa").map(|e| e.0.as_str()), Some("a/aa.ko"));
        assert!(m.contains("b") && !m.contains("c") && !m.contains(""));
        let builtin = parse_builtin("x/q.ko\n\nx/p.ko\nx/q.ko\n");
        assert_eq!(builtin, ["p", "q"]);
        assert_eq!(
            m.resolve(&["aa".into(), "q".into()], &builtin).unwrap(),
            ["b/b.ko", "a/aa.ko"]
        );
    }

    #[test]
    fn builtin_skipped_unknown_refused() {
        let m = DepMap::parse(DEP);
        let builtin = parse_builtin("kernel/drivers/nvme/host/nvme.ko\n");
        assert_eq!(
            m.resolve(&["nvme".into()], &builtin).unwrap(),
            Vec::<String>::new()
        );
        assert_eq!(
            m.resolve(&["no_such_mod".into()], &builtin)
                .unwrap_err()
                .to_string(),
            "module no_such_mod not found in modules.dep"
        );
    }

    #[test]
    fn globs_as_modules_alias_uses_them() {
        let g = |p: &str, s: &str| glob_match(p.as_bytes(), s.as_bytes());
        assert!(g(
            "pci:v00001AF4d*sv*sd*bc*sc*i*",
            "pci:v00001AF4d00001004sv00001AF4sd00000008bc01sc00i00"
        ));
        assert!(!g(
            "pci:v00001AF4d*sv*sd*bc*sc*i*",
            "pci:v00008086d00001004sv00001AF4sd00000008bc01sc00i00"
        ));
        assert!(g("virtio:d00000008v*", "virtio:d00000008v00001AF4"));
        assert!(!g("virtio:d00000008v*", "virtio:d00000002v00001AF4"));
        assert!(g("scsi:t-0x0[0e]*", "scsi:t-0x0e"));
        assert!(g("a[!b]c", "axc") && !g("a[!b]c", "abc"));
        assert!(g("a[0-9]?", "a7z") && !g("a[0-9]?", "aqz"));
        assert!(g("*", "") && g("**", "x") && !g("a", "") && !g("", "a"));
        assert!(g("a*b*c", "aXbYbZc") && !g("a*b*c", "aXbY"));
        assert!(!g("[", "[") && !g("x[", "x"));
    }

    #[test]
    fn aliases_pick_modules() {
        let a = Aliases::parse(
            "# comment\nalias pci:v00001AF4d*sv*sd*bc*sc*i* virtio_pci\nalias virtio:d00000002v* virtio-blk\n\
             alias virtio:d00000002v* virtio_blk\nalias scsi:t-0x00* sd_mod\nbogus line\n",
        );
        assert_eq!(a.0.len(), 4);
        assert_eq!(
            a.modules_for("virtio:d00000002v00001AF4"),
            vec!["virtio_blk"]
        );
        assert_eq!(a.modules_for("scsi:t-0x00"), vec!["sd_mod"]);
        assert!(a.modules_for("acpi:LNXSYBUS:").is_empty());
    }

    #[test]
    fn loops_end() {
        let m = DepMap::parse("a.ko: b.ko\nb.ko: a.ko\n");
        assert_eq!(m.resolve(&["a".into()], &[]).unwrap(), vec!["b.ko", "a.ko"]);
    }

    #[test]
    fn modprobe_configuration() {
        let mut c = ModConfig::default();
        c.add_conf(
            "# comment\noptions nvme_core io_timeout=30 max_retries=3\nblacklist floppy\n\
             softdep virtio-blk pre: crc32c post: virtio_rng\nsoftdep cifs arc4\ninstall x /bin/true\n",
        );
        c.add_cmdline(&[
            "console=ttyS0".into(),
            "nvme_core.io_timeout=4294967295".into(),
            "virtio-blk.queue_depth=64".into(),
            "pivot.root=LABEL=x".into(),
            "modprobe.blacklist=pcspkr,snd-pcsp".into(),
            // As split_cmdline leaves `a.b="x y"`: the quotes are put back.
            "a.b=x y".into(),
            ".x=1".into(),
            "x.=1".into(),
        ]);
        assert_eq!(
            c.params("nvme_core"),
            "io_timeout=30 max_retries=3 io_timeout=4294967295"
        );
        assert_eq!(c.params("virtio_blk"), "queue_depth=64");
        assert_eq!(c.params("a"), "b=\"x y\"");
        assert_eq!(c.params("pivot"), "");
        assert_eq!(c.params("x"), "");
        assert_eq!(
            lookup(&c.softdeps, "virtio_blk"),
            Some(&(vec!["crc32c".to_string()], vec!["virtio_rng".to_string()]))
        );
        assert_eq!(
            lookup(&c.softdeps, "cifs"),
            Some(&(vec!["arc4".to_string()], vec![]))
        );
        let black: Vec<&str> = c.blacklist.iter().map(String::as_str).collect();
        assert_eq!(black, ["floppy", "pcspkr", "snd_pcsp"]);
    }
}
