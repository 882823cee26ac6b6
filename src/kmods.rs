//! The running kernel's modules follow the boot onto the volume. In a
//! machine image the kernel comes from the boot disk, and so do its modules
//! (`/lib/modules/$(uname -r)`); a volume installed for another kernel has
//! none for it. Before the switch the boot disk's tree is bind-mounted,
//! read-only, where the volume's would be; likewise `/lib/firmware` when
//! the volume has none at all.
//!
//! Where a tree goes is the volume's to say, and a volume may be broken or
//! hostile: its `/lib` may link to `usr/lib` or `/usr/lib` (merged /usr),
//! or anywhere. So every step is taken inside the volume, on descriptors:
//! each directory on the way is opened inside the volume (its links
//! followed as the volume sees them after the switch, never out of it, a
//! magic link refused: [`Resolve::DirInRoot`]), a missing one is made in
//! the directory opened before it (`mkdirat`), and the mounts go onto the
//! directory opened ([`crate::sys::Mounts::mount_on`]: mount(2) on its
//! `/proc/self/fd/N`, which the kernel follows to exactly that directory;
//! chosen over the new mount API, `open_tree`/`move_mount`, which would
//! need Linux 5.2, 5.12 for a read-only attach, and a fallback besides). No
//! path of the volume is resolved again from the boot root, where a link
//! such as `/lib/modules -> /proc/self/root/tmp` or `-> /tmp` would lead to
//! the boot root's `/tmp`. A tree never goes where the switch covers it
//! (`/dev`, `/proc`, `/sys`, `/run`, the old-root directory) nor over the
//! volume's root.
//!
//! A read-only volume (`pivot.flags=ro`, erofs, squashfs) takes no new
//! directory. Then a small tmpfs may hold the mount point, over the
//! directory that holds the release directories (the volume's
//! `lib/modules`) or over an empty directory, and nothing else: over `/lib`
//! it would hide the dynamic loader and every library. Otherwise the bind
//! is skipped, and the warning says why and what to do.

use std::ffi::OsStr;
use std::path::{Component, Path, PathBuf};

use crate::config::{Config, Kmods};
use crate::modules::module_dir;
use crate::sys::{
    self, API_MOUNTS, Errno, ErrnoText, MountFlags, OpenFile, Resolve, Sys, SysError,
};

/// Machine image: the boot disk's module tree (and firmware) for the
/// running kernel onto the volume mounted at `cfg.new_root`, read-only,
/// when `pivot.kmods` says so. Returns the mounts made, innermost last
/// (undone with [`unbind`]); `note` is told the list at every change, so a
/// panic half way leaves nothing unknown behind. A bind that cannot be made
/// is a warning (what it made is undone): the volume goes on without it.
pub fn bind_trees(sys: &dyn Sys, cfg: &Config, note: &mut dyn FnMut(&[PathBuf])) -> Vec<PathBuf> {
    let mut made = Made {
        list: Vec::new(),
        note,
    };
    if cfg.initramfs {
        return made.list;
    }
    let release = sys.kernel_release();
    let modules = module_dir(&release);
    let vol = cfg.new_root.as_path();
    // Resolving where the tree would go walks the volume's paths: only
    // when it is bound (one open tells whether the volume has one).
    let trees = Trees {
        boot: sys.is_dir(&modules),
        volume: sys.open_in(vol, &modules, Resolve::DirInRoot).is_ok(),
    };
    if !should_bind(cfg.kmods, trees) {
        match (trees.volume, cfg.kmods) {
            (true, _) => log::info!("modules for {release}: the volume's own"),
            (false, Kmods::Volume) if trees.boot => {
                log::info!("modules for {release}: none on the volume (pivot.kmods=volume)")
            }
            _ => log::debug!("modules for {release}: none on the boot disk either"),
        }
        return made.list;
    }
    let why = if trees.volume {
        "pivot.kmods=boot"
    } else {
        "the volume has none"
    };
    let volume = match Volume::new(sys, cfg) {
        Ok(v) => v,
        Err(r) => {
            log::warn!("{}", r.line(&format!("modules for {release}")));
            return made.list;
        }
    };
    let tree = Tree {
        from: &modules,
        to: &modules,
        holder: modules.parent(),
    };
    match bind(sys, &volume, &tree, &mut made) {
        Ok(()) => log::info!("modules for {release} from the boot disk ({why})"),
        Err(r) => log::warn!("{}", r.line(&format!("modules for {release}"))),
    }
    let firmware = Path::new("/lib/firmware");
    if sys.is_dir(firmware) && sys.open_in(vol, firmware, Resolve::DirInRoot).is_err() {
        let tree = Tree {
            from: firmware,
            to: firmware,
            holder: None,
        };
        match bind(sys, &volume, &tree, &mut made) {
            Ok(()) => log::info!("firmware from the boot disk (the volume has none)"),
            Err(r) => log::warn!("{}", r.line("firmware")),
        }
    }
    made.list
}

/// Unmounts what [`bind_trees`] mounted onto the volume, innermost first.
/// The paths are where the mounts are, with no link in them (as the kernel
/// tells where an open directory is), and nothing of the volume has run
/// since they were made.
pub fn unbind(sys: &dyn Sys, bound: &mut Vec<PathBuf>) {
    while let Some(p) = bound.pop() {
        if let Err(e) = sys.unmount(&p) {
            log::warn!("{e}");
        }
    }
}

/// What the boot root and the volume have, as far as the decision goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Trees {
    /// The boot root has `/lib/modules/RELEASE`.
    pub boot: bool,
    /// The volume has `/lib/modules/RELEASE` (after its symlinks).
    pub volume: bool,
}

/// Whether to bind the boot disk's module tree onto the volume.
pub fn should_bind(mode: Kmods, t: Trees) -> bool {
    t.boot
        && match mode {
            Kmods::Auto => !t.volume,
            Kmods::Volume => false,
            Kmods::Boot => true,
        }
}

/// The mounts made onto the volume, innermost last; every change is told
/// to `note`.
struct Made<'n> {
    list: Vec<PathBuf>,
    note: &'n mut dyn FnMut(&[PathBuf]),
}

impl Made<'_> {
    fn push(&mut self, p: PathBuf) {
        self.list.push(p);
        (self.note)(&self.list);
    }

    /// Unmounts what was made after the first `keep`, innermost first.
    fn undo_to(&mut self, sys: &dyn Sys, keep: usize) {
        while self.list.len() > keep {
            if let Some(p) = self.list.pop()
                && let Err(e) = sys.unmount(&p)
            {
                log::warn!("{e}");
            }
            (self.note)(&self.list);
        }
    }
}

/// One tree to bind: the boot root's `from` onto the volume's `to`.
struct Tree<'p> {
    from: &'p Path,
    /// Absolute, as the volume sees it.
    to: &'p Path,
    /// The directory that holds such trees (`/lib/modules` for a release's
    /// modules): on a read-only volume a tmpfs may cover it.
    holder: Option<&'p Path>,
}

/// Why a tree is not bound, and what would help.
#[derive(Debug, PartialEq, Eq)]
struct Refusal {
    why: String,
    hint: Option<String>,
}

impl Refusal {
    fn new(why: String) -> Refusal {
        Refusal { why, hint: None }
    }

    /// The warning for a tree of `what` (`modules for 6.1.0`, `firmware`).
    fn line(&self, what: &str) -> String {
        let hint = self
            .hint
            .as_ref()
            .map_or(String::new(), |h| format!(" ({h})"));
        format!("{}: not binding the boot disk's {what}{hint}", self.why)
    }
}

impl From<SysError> for Refusal {
    fn from(e: SysError) -> Refusal {
        Refusal::new(e.to_string())
    }
}

type Step<T> = std::result::Result<T, Refusal>;

/// A directory of the volume, open, and where it is.
struct Place {
    file: OpenFile,
    /// As this process sees it: what is mounted on and unmounted.
    at: PathBuf,
    /// As the volume sees it.
    inner: PathBuf,
}

/// The mounted volume and the places in it a tree may not go.
struct Volume<'c> {
    root: &'c Path,
    /// Where the volume's root is, with no link in it.
    real: PathBuf,
    /// What the switch covers: the API mounts and the old-root directory.
    covered: Vec<PathBuf>,
}

impl<'c> Volume<'c> {
    fn new(sys: &dyn Sys, cfg: &'c Config) -> Step<Volume<'c>> {
        let root = cfg.new_root.as_path();
        let real = sys
            .canonicalize(root)
            .ok_or_else(|| Refusal::new(format!("cannot tell where {} is", root.display())))?;
        let mut covered: Vec<PathBuf> = API_MOUNTS.iter().map(PathBuf::from).collect();
        covered.push(sys::in_root(Path::new("/"), &cfg.old_root));
        Ok(Volume {
            root,
            real,
            covered,
        })
    }

    /// Opens `logical` (absolute, as the volume sees it) inside the volume.
    fn open(&self, sys: &dyn Sys, logical: &Path) -> Result<OpenFile, Errno> {
        sys.open_in(self.root, logical, Resolve::DirInRoot)
    }

    /// Where the open directory `file` (found for `logical`) is; refused
    /// when that is out of the volume or where the switch covers it.
    fn place(&self, sys: &dyn Sys, logical: &Path, file: OpenFile) -> Step<Place> {
        let shown = logical.display();
        let at = sys
            .locate(&file)
            .ok_or_else(|| Refusal::new(format!("cannot tell where {shown} on the volume is")))?;
        let inner = match at.strip_prefix(&self.real) {
            Ok(rel) => Path::new("/").join(rel),
            Err(_) => {
                return Err(Refusal::new(format!(
                    "{shown} on the volume leads out of it, to {}",
                    at.display()
                )));
            }
        };
        if self.covered.iter().any(|c| inner.starts_with(c)) {
            return Err(Refusal::new(format!(
                "{shown} on the volume leads to {}, which the switch covers",
                inner.display()
            )));
        }
        Ok(Place { file, at, inner })
    }

    /// Opens and places `logical`, which must be there.
    fn reopen(&self, sys: &dyn Sys, logical: &Path) -> Step<Place> {
        let f = self
            .open(sys, logical)
            .map_err(|e| cannot_open(logical, e))?;
        self.place(sys, logical, f)
    }
}

fn cannot_open(logical: &Path, e: Errno) -> Refusal {
    let note = match e {
        Errno::LOOP | Errno::XDEV => " (a magic link, or too many links)",
        _ => "",
    };
    Refusal::new(format!(
        "cannot open {} inside the volume, its links followed inside it: {}{note}",
        logical.display(),
        ErrnoText(e)
    ))
}

/// Binds `tree`; on a refusal, what it made is undone.
fn bind(sys: &dyn Sys, vol: &Volume, tree: &Tree, made: &mut Made) -> Step<()> {
    let keep = made.list.len();
    let r = bind_steps(sys, vol, tree, made);
    if r.is_err() {
        made.undo_to(sys, keep);
    }
    r
}

fn bind_steps(sys: &dyn Sys, vol: &Volume, tree: &Tree, made: &mut Made) -> Step<()> {
    let names: Vec<&OsStr> = tree
        .to
        .components()
        .filter_map(|c| match c {
            Component::Normal(n) => Some(n),
            _ => None,
        })
        .collect();
    let mut logical = PathBuf::from("/");
    let mut dir = vol.reopen(sys, &logical)?;
    let mut covered_once = false;
    for (i, name) in names.iter().enumerate() {
        let next = logical.join(name);
        let found = match vol.open(sys, &next) {
            Ok(f) => f,
            Err(Errno::NOENT) => {
                // Missing: made in the directory found before it.
                if let Err(e) = sys.mkdir_at(&dir.file, name) {
                    if e.errno == Errno::EXIST {
                        return Err(Refusal::new(format!(
                            "{} on the volume is a link that leads nowhere inside it",
                            next.display()
                        )));
                    }
                    if e.errno != Errno::ROFS || covered_once {
                        return Err(e.into());
                    }
                    let last = i + 1 == names.len();
                    if !may_cover(sys, tree, &logical, &dir, last) {
                        return Err(Refusal {
                            why: format!("the volume is read-only and has no {}", next.display()),
                            hint: Some(format!(
                                "create {} on the volume, or mount it rw",
                                next.display()
                            )),
                        });
                    }
                    dir = cover(sys, vol, &logical, dir, made)?;
                    covered_once = true;
                    sys.mkdir_at(&dir.file, name)?;
                }
                vol.open(sys, &next).map_err(|e| cannot_open(&next, e))?
            }
            Err(e) => return Err(cannot_open(&next, e)),
        };
        dir = vol.place(sys, &next, found)?;
        logical = next;
    }
    if dir.inner == Path::new("/") {
        return Err(Refusal::new(format!(
            "{} on the volume is the volume's root",
            tree.to.display()
        )));
    }
    sys.mount_on(tree.from, &dir.file, "", MountFlags::BIND, "")?;
    made.push(dir.at.clone());
    // The bind's own root, for the remount: the lookup crosses into it.
    let top = vol.reopen(sys, tree.to)?;
    if top.at != dir.at {
        return Err(Refusal::new(format!(
            "{} on the volume moved from {} to {} while it was bound",
            tree.to.display(),
            dir.at.display(),
            top.at.display()
        )));
    }
    sys.remount_on(&top.file, MountFlags::BIND | MountFlags::RDONLY, "")?;
    Ok(())
}

/// On a read-only volume, whether a tmpfs may cover `dir` (found for
/// `logical`) to hold a missing directory: when it is the directory that
/// holds such trees (the volume's `lib/modules`, and the tree itself is
/// what is missing) or when it is empty; never the volume's root.
fn may_cover(sys: &dyn Sys, tree: &Tree, logical: &Path, dir: &Place, last: bool) -> bool {
    if dir.inner == Path::new("/") {
        return false;
    }
    let holder = last
        && tree
            .holder
            .is_some_and(|h| h == logical && dir.inner.ends_with(h.strip_prefix("/").unwrap_or(h)));
    holder || sys.is_empty_dir(&dir.file) == Ok(true)
}

/// A small tmpfs over `dir`, to hold the mount point; returns the tmpfs's
/// root, opened again for `logical`.
fn cover(sys: &dyn Sys, vol: &Volume, logical: &Path, dir: Place, made: &mut Made) -> Step<Place> {
    sys.mount_on(
        Path::new("tmpfs"),
        &dir.file,
        "tmpfs",
        MountFlags::NOSUID | MountFlags::NODEV,
        "mode=0755,size=64k",
    )?;
    made.push(dir.at.clone());
    let top = vol.reopen(sys, logical)?;
    if top.at != dir.at {
        return Err(Refusal::new(format!(
            "{} on the volume moved from {} to {} while it was covered",
            logical.display(),
            dir.at.display(),
            top.at.display()
        )));
    }
    Ok(top)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kmsg::testlog;
    use crate::sys::fake::{FakeSys, RELEASE};

    #[test]
    fn the_decision() {
        let t = |boot, volume| Trees { boot, volume };
        assert!(should_bind(Kmods::Auto, t(true, false)));
        assert!(!should_bind(Kmods::Auto, t(true, true)));
        assert!(!should_bind(Kmods::Auto, t(false, false)));
        assert!(!should_bind(Kmods::Volume, t(true, false)));
        assert!(should_bind(Kmods::Boot, t(true, true)));
        assert!(!should_bind(Kmods::Boot, t(false, true)));
        assert_eq!(Kmods::parse("boot"), Ok(Kmods::Boot));
        assert!(Kmods::parse("both").is_err());
    }

    /// A boot root with the module tree for the fake's release, /lib/firmware
    /// when `firmware`, and /tmp; the volume (a real directory `dir/vol`,
    /// filled by `fill`) mounted at /new-root.
    struct Machine {
        dir: PathBuf,
        sys: FakeSys,
    }

    impl Machine {
        fn new(name: &str, firmware: bool, fill: impl FnOnce(&Path)) -> Machine {
            let dir =
                std::env::temp_dir().join(format!("pivot-kmods-{name}-{}", std::process::id()));
            let _ = std::fs::remove_dir_all(&dir);
            let vol = dir.join("vol");
            for d in ["sbin", "proc", "sys", "dev", "run", "old-root"] {
                std::fs::create_dir_all(vol.join(d)).unwrap();
            }
            std::fs::write(vol.join("sbin/init"), b"init").unwrap();
            fill(&vol);
            let mut sys = FakeSys::sandbox(&dir.join("boot"))
                .not_ram()
                .file(&format!("/lib/modules/{RELEASE}/modules.dep"), b"", 0o644)
                .mounted("/new-root", &vol);
            if firmware {
                sys = sys.file("/lib/firmware/fw.bin", b"fw", 0o644);
            }
            std::fs::create_dir_all(dir.join("boot/tmp")).unwrap();
            Machine { dir, sys }
        }

        /// Runs the binds with `cfg`: (what they returned, every list
        /// `note` was told, the log lines).
        fn bind(&self, cfg: &Config) -> (Vec<PathBuf>, Vec<Vec<PathBuf>>, Vec<String>) {
            testlog::start();
            let mut noted = Vec::new();
            let made = bind_trees(&self.sys, cfg, &mut |l| noted.push(l.to_vec()));
            (made, noted, testlog::take())
        }

        fn vol(&self, p: &str) -> PathBuf {
            self.dir.join("vol").join(p)
        }

        /// What the boot root's /tmp holds.
        fn boot_tmp(&self) -> Vec<String> {
            std::fs::read_dir(self.dir.join("boot/tmp"))
                .unwrap()
                .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
                .collect()
        }
    }

    impl Drop for Machine {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.dir);
        }
    }

    fn link(vol: &Path, p: &str, target: &str) {
        let at = vol.join(p);
        std::fs::create_dir_all(at.parent().unwrap()).unwrap();
        std::os::unix::fs::symlink(target, at).unwrap();
    }

    fn paths(ps: &[&str]) -> Vec<PathBuf> {
        ps.iter().map(PathBuf::from).collect()
    }

    /// A merged-/usr volume, its /lib a relative or an absolute link: the
    /// directories are made and the mounts made where the volume resolves
    /// them, the modules read-only, and the firmware the volume lacks too.
    #[test]
    fn merged_usr_is_resolved_inside_the_volume() {
        for target in ["usr/lib", "/usr/lib"] {
            let m = Machine::new("merged", true, |v| {
                std::fs::create_dir_all(v.join("usr/lib")).unwrap();
                link(v, "lib", target);
            });
            let (made, noted, log) = m.bind(&Config::default());
            let tree = format!("/new-root/usr/lib/modules/{RELEASE}");
            assert_eq!(made, paths(&[&tree, "/new-root/usr/lib/firmware"]));
            assert_eq!(noted.last(), Some(&made), "{target}");
            assert_eq!(
                m.sys.log(),
                [
                    "mkdir /new-root/usr/lib/modules".to_string(),
                    format!("mkdir {tree}"),
                    format!("mount /lib/modules/{RELEASE} {tree} "),
                    format!("remount {tree} ro"),
                    "mkdir /new-root/usr/lib/firmware".to_string(),
                    "mount /lib/firmware /new-root/usr/lib/firmware ".to_string(),
                    "remount /new-root/usr/lib/firmware ro".to_string(),
                ],
                "{target}"
            );
            assert!(m.vol(&format!("usr/lib/modules/{RELEASE}")).is_dir());
            assert_eq!(
                log,
                [
                    format!("modules for {RELEASE} from the boot disk (the volume has none)"),
                    "firmware from the boot disk (the volume has none)".to_string(),
                ]
            );
        }
    }

    /// The volume's /lib/modules links out of it: to `/proc/self/root/tmp`
    /// (the boot root's /tmp, were it resolved from the boot root) or to
    /// `/tmp` when the volume has none. Nothing is made or mounted, on the
    /// boot root least of all; the warning says why.
    #[test]
    fn links_that_lead_out_of_the_volume_are_refused() {
        for target in ["/proc/self/root/tmp", "/tmp", "../../tmp/x"] {
            let m = Machine::new("out", false, |v| link(v, "lib/modules", target));
            let (made, noted, log) = m.bind(&Config::default());
            assert!(made.is_empty() && noted.is_empty(), "{target}: {made:?}");
            assert_eq!(m.sys.log(), ["mkdir /new-root/lib/modules"], "{target}");
            assert_eq!(
                log,
                [format!(
                    "/lib/modules on the volume is a link that leads nowhere inside it: \
                     not binding the boot disk's modules for {RELEASE}"
                )],
                "{target}"
            );
            assert!(m.boot_tmp().is_empty(), "{target}: {:?}", m.boot_tmp());
        }
    }

    /// An absolute link that resolves inside the volume is followed there,
    /// as the volume will see it after the switch.
    #[test]
    fn an_absolute_link_is_followed_inside_the_volume() {
        let m = Machine::new("abs", false, |v| {
            std::fs::create_dir_all(v.join("tmp")).unwrap();
            link(v, "lib/modules", "/tmp");
        });
        let (made, _, _) = m.bind(&Config::default());
        let tree = format!("/new-root/tmp/{RELEASE}");
        assert_eq!(made, paths(&[&tree]));
        assert_eq!(
            m.sys.log(),
            [
                format!("mkdir {tree}"),
                format!("mount /lib/modules/{RELEASE} {tree} "),
                format!("remount {tree} ro"),
            ]
        );
        assert!(m.boot_tmp().is_empty());
    }

    /// Links into what the switch covers (an API mount's directory, the
    /// old-root directory) or onto the volume's root are refused.
    #[test]
    fn covered_places_and_the_root_are_refused() {
        for (target, inner) in [
            ("/proc", "/proc"),
            ("/dev", "/dev"),
            ("../old-root", "/old-root"),
        ] {
            let m = Machine::new("covered", false, |v| link(v, "lib/modules", target));
            let (made, _, log) = m.bind(&Config::default());
            assert!(made.is_empty());
            assert_eq!(m.sys.log(), Vec::<String>::new(), "{target}");
            assert_eq!(
                log,
                [format!(
                    "/lib/modules on the volume leads to {inner}, which the switch covers: \
                     not binding the boot disk's modules for {RELEASE}"
                )]
            );
        }
        // The tree itself a link to the volume's root: the volume has it
        // (auto binds nothing); pivot.kmods=boot would bind over the root.
        let m = Machine::new("root", false, |v| {
            link(v, &format!("lib/modules/{RELEASE}"), "/")
        });
        let cfg = Config {
            kmods: Kmods::Boot,
            ..Config::default()
        };
        let (made, _, log) = m.bind(&cfg);
        assert!(made.is_empty());
        assert_eq!(m.sys.log(), Vec::<String>::new());
        assert_eq!(
            log,
            [format!(
                "/lib/modules/{RELEASE} on the volume is the volume's root: \
                 not binding the boot disk's modules for {RELEASE}"
            )]
        );
    }

    /// A read-only volume with a /lib but no /lib/modules: no tmpfs over
    /// its /lib (the loader and the libraries would vanish); the bind is
    /// skipped, and so is the firmware's.
    #[test]
    fn a_read_only_volume_keeps_its_lib() {
        let m = Machine::new("ro-lib", true, |v| {
            std::fs::create_dir_all(v.join("lib")).unwrap();
            std::fs::write(v.join("lib/ld.so"), b"loader").unwrap();
        });
        let sys = m.sys.clone().fail("mkdir /new-root", Errno::ROFS);
        testlog::start();
        let made = bind_trees(&sys, &Config::default(), &mut |_| {});
        let log = testlog::take();
        assert!(made.is_empty());
        assert_eq!(
            sys.log(),
            [
                "mkdir /new-root/lib/modules",
                "mkdir /new-root/lib/firmware"
            ]
        );
        assert_eq!(
            log,
            [
                format!(
                    "the volume is read-only and has no /lib/modules: not binding the boot \
                     disk's modules for {RELEASE} (create /lib/modules on the volume, or mount it rw)"
                ),
                "the volume is read-only and has no /lib/firmware: not binding the boot \
                 disk's firmware (create /lib/firmware on the volume, or mount it rw)"
                    .to_string(),
            ]
        );
        // Nothing at all: the root is never covered.
        let m = Machine::new("ro-none", false, |_| {});
        let sys = m.sys.clone().fail("mkdir /new-root", Errno::ROFS);
        testlog::start();
        assert!(bind_trees(&sys, &Config::default(), &mut |_| {}).is_empty());
        assert_eq!(sys.log(), ["mkdir /new-root/lib"]);
        assert_eq!(
            testlog::take(),
            [format!(
                "the volume is read-only and has no /lib: not binding the boot disk's \
                 modules for {RELEASE} (create /lib on the volume, or mount it rw)"
            )]
        );
    }

    /// A read-only volume: a tmpfs may cover its lib/modules (which holds
    /// the release directories) or an empty directory, nothing else.
    #[test]
    fn a_read_only_volume_gets_a_tmpfs_only_where_it_hides_nothing_else() {
        let tree = format!("/new-root/lib/modules/{RELEASE}");
        // The volume's lib/modules, with another kernel's tree.
        let m = Machine::new("ro-holder", false, |v| {
            std::fs::create_dir_all(v.join("lib/modules/5.10.0-other")).unwrap();
        });
        let sys = m
            .sys
            .clone()
            .fail_once(&format!("mkdir {tree}"), Errno::ROFS);
        testlog::start();
        let made = bind_trees(&sys, &Config::default(), &mut |_| {});
        assert_eq!(made, paths(&["/new-root/lib/modules", &tree]));
        assert_eq!(
            sys.log(),
            [
                format!("mkdir {tree}"),
                "mount tmpfs /new-root/lib/modules tmpfs".to_string(),
                format!("mkdir {tree}"),
                format!("mount /lib/modules/{RELEASE} {tree} "),
                format!("remount {tree} ro"),
            ]
        );
        // An empty /lib.
        let m = Machine::new("ro-empty", false, |v| {
            std::fs::create_dir_all(v.join("lib")).unwrap();
        });
        let sys = m
            .sys
            .clone()
            .fail_once("mkdir /new-root/lib/modules", Errno::ROFS);
        let made = bind_trees(&sys, &Config::default(), &mut |_| {});
        assert_eq!(made, paths(&["/new-root/lib", &tree]));
        assert_eq!(
            sys.log()[..3],
            [
                "mkdir /new-root/lib/modules",
                "mount tmpfs /new-root/lib tmpfs",
                "mkdir /new-root/lib/modules",
            ]
        );
        // lib/modules a link to a full directory that is not a modules
        // directory: not covered.
        let m = Machine::new("ro-sbin", false, |v| link(v, "lib/modules", "/sbin"));
        let sys = m.sys.clone().fail("mkdir /new-root", Errno::ROFS);
        testlog::start();
        assert!(bind_trees(&sys, &Config::default(), &mut |_| {}).is_empty());
        assert_eq!(sys.log(), [format!("mkdir /new-root/sbin/{RELEASE}")]);
        assert_eq!(
            testlog::take(),
            [format!(
                "the volume is read-only and has no /lib/modules/{RELEASE}: not binding the \
                 boot disk's modules for {RELEASE} (create /lib/modules/{RELEASE} on the \
                 volume, or mount it rw)"
            )]
        );
    }

    /// A step that fails after a mount: what the tree made is unmounted,
    /// innermost first, and the list told each time.
    #[test]
    fn a_failure_after_a_mount_undoes_the_tree() {
        let tree = format!("/new-root/lib/modules/{RELEASE}");
        let m = Machine::new("undo", false, |v| {
            std::fs::create_dir_all(v.join("lib/modules")).unwrap();
        });
        let sys = m
            .sys
            .clone()
            .fail_once(&format!("mkdir {tree}"), Errno::ROFS)
            .fail("remount", Errno::PERM);
        testlog::start();
        let mut noted = Vec::new();
        let made = bind_trees(&sys, &Config::default(), &mut |l| noted.push(l.to_vec()));
        assert!(made.is_empty());
        assert_eq!(
            noted,
            [
                paths(&["/new-root/lib/modules"]),
                paths(&["/new-root/lib/modules", &tree]),
                paths(&["/new-root/lib/modules"]),
                vec![],
            ]
        );
        assert_eq!(
            sys.log()[4..],
            [
                format!("remount {tree} ro"),
                format!("umount {tree}"),
                "umount /new-root/lib/modules".to_string(),
            ]
        );
        assert_eq!(
            testlog::take(),
            [format!(
                "remounting {tree} with ro failed: errno 1 (Operation not permitted): \
                 not binding the boot disk's modules for {RELEASE}"
            )]
        );
    }
}
