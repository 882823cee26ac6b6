//! Boot counting on the machine (`pivot.tries`; the state and the decisions
//! are [`crate::bootcount`]'s):
//!
//! - the tries stage ([`stage`]): after the node, before anything can
//!   change the volume, the count on the boot root is read and a volume
//!   that used up its tries is refused (the failure policy runs, the volume
//!   untouched);
//! - [`record`]: the count written on the boot disk just before the
//!   hand-over (the exec after the switch, where the boot root is at
//!   `/old-root`, or a kexec, where it is still `/`): a temporary file,
//!   `fsync`, `rename`, `fsync` of the directory, the boot root remounted
//!   read-write for it when it is read-only and put back after. A write
//!   that fails is logged and the boot goes on;
//! - what `pivot-init bless` and `status` need: the boot disk found (named
//!   with `--root`, by `pivot.bootdisk=` on the command line after a kexec,
//!   at `/old-root` after a pivot, or `/` itself), the state read and
//!   written there, the filesystem UUID of a root ([`bootdisk_arg`] puts
//!   the boot root's on a kexec'd kernel's line).

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use crate::bootcount::{self, BootCount, Decision, Volume};
use crate::config::Config;
use crate::error::{Error, Result};
use crate::matching::{Facts, Verdict, Want, verdict};
use crate::node::Device;
use crate::probe::{self, Probe};
use crate::spec::Spec;
use crate::sys::{self, Errno, ErrnoText, FileType, MountFlags, Resolve, Sys, SysError};
use crate::sysblock::{Nodes, SysBlock};
use crate::wait::Found;

/// What the tries stage hands on: the count to write just before the
/// hand-over ([`record`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pending {
    pub next: BootCount,
    /// `pivot.state`: where it goes, as a path on the boot root.
    pub path: PathBuf,
}

/// The tries stage: reads the count on the boot root (`/`) for the volume
/// found on `node`; refuses the volume when it has no tries left, else
/// says how many it has and returns the count to write.
pub fn stage(sys: &dyn Sys, cfg: &Config, found: &Found, node: &Path) -> Result<Pending> {
    let volume = Volume {
        uuid: volume_uuid(sys, found, node),
        spec: cfg.root.as_ref().map(Spec::to_string).unwrap_or_default(),
    };
    let root = Path::new("/");
    let state = match read_state(sys, root, &cfg.state) {
        Ok(state) => state,
        Err(why) => {
            log::warn!("{why}; counting as if there were none");
            None
        }
    };
    let what = format!("{} on {}", volume.describe(), found.dev.describe());
    match bootcount::decide(state.as_ref(), &volume, cfg.tries, sys.now_secs()) {
        Decision::Refuse { boots } => Err(Error::NoTriesLeft {
            volume: what,
            boots,
        }),
        Decision::Go { left, next } => {
            log::info!(
                "{what}: {left} of {} left, this boot included; it is counted in {} on the \
                 boot disk just before the hand-over",
                tries(cfg.tries),
                cfg.state.display()
            );
            Ok(Pending {
                next,
                path: cfg.state.clone(),
            })
        }
    }
}

fn tries(n: u32) -> String {
    if n == 1 {
        "1 try".into()
    } else {
        format!("{n} tries")
    }
}

/// The volume's filesystem UUID: from the wait's probe, else read now;
/// empty when it has none (the count then goes by the spec).
fn volume_uuid(sys: &dyn Sys, found: &Found, node: &Path) -> String {
    if let Some(p) = &found.fs {
        return p.uuid.clone();
    }
    match probe::read(sys, node) {
        Ok(p) => p.map(|p| p.uuid).unwrap_or_default(),
        Err(e) => {
            log::warn!("{e}: the boot count goes by the spec alone");
            String::new()
        }
    }
}

/// Writes the count of this boot on the boot disk, whose root is at
/// `boot_root` now (`/old-root` after the switch, `/` before a kexec). A
/// failure is logged: counting is never the reason a volume does not boot.
pub fn record(sys: &dyn Sys, boot_root: &Path, p: &Pending) {
    let text = bootcount::format(&p.next);
    let vol = p.next.volume.describe();
    match write_state(sys, boot_root, &p.path, text.as_bytes()) {
        Ok(done) => log::info!(
            "counted this boot of {vol} in {}: {} of {} left after it{}",
            done.path.display(),
            p.next.left.unwrap_or(0),
            tries(p.next.tries),
            done.note()
        ),
        Err(why) => {
            log::error!("cannot count this boot of {vol}: {why}; handing over all the same")
        }
    }
}

/// `pivot.bootdisk=UUID=<the boot root's filesystem UUID>`, for the command
/// line of a kernel that pivot-init kexecs into with counting on: there the
/// boot disk is not mounted, and `pivot-init bless` finds it by this. `None`
/// (and a warning) when the boot root's UUID cannot be told.
pub fn bootdisk_arg(sys: &dyn Sys) -> Option<String> {
    match root_filesystem(sys, Path::new("/"), true) {
        Ok((_, p)) if !p.uuid.is_empty() => Some(format!("pivot.bootdisk=UUID={}", p.uuid)),
        Ok((dev, p)) => {
            log::warn!(
                "the boot root ({}, {}) has no filesystem UUID to name it by on the new \
                 kernel's line: `pivot-init bless` there will need --root",
                dev.describe(),
                p.fstype
            );
            None
        }
        Err(why) => {
            log::warn!(
                "cannot name the boot disk on the new kernel's line ({why}): `pivot-init \
                 bless` there will need --root"
            );
            None
        }
    }
}

/// The block device a directory's filesystem is on and what its superblock
/// says: `stat` gives the device number, `/sys/dev/block/MAJ:MIN` its
/// name, its node in /dev the superblock (with `mknod`, the node is made
/// when missing, as the boot does; else, as the command-line tool, only
/// an existing node is read).
pub fn root_filesystem(
    sys: &dyn Sys,
    dir: &Path,
    mknod: bool,
) -> std::result::Result<(Device, Probe), String> {
    let st = sys
        .stat(dir)
        .map_err(|e| format!("cannot stat {}: {}", dir.display(), ErrnoText(e)))?;
    let (major, minor) = sys::split_dev(st.dev);
    let link = PathBuf::from(format!("/sys/dev/block/{major}:{minor}"));
    let name = sys
        .canonicalize(&link)
        .and_then(|real| Some(real.file_name()?.to_str()?.to_string()))
        .ok_or_else(|| {
            format!(
                "{} is on device {major}:{minor}, which is no block device ({} is missing)",
                dir.display(),
                link.display()
            )
        })?;
    let dev = Device { name, major, minor };
    let nodes = PathBuf::from("/dev");
    let blocks = SysBlock {
        sys,
        root: PathBuf::from("/sys/class/block"),
        nodes: if mknod {
            Nodes::Dev(nodes)
        } else {
            Nodes::ReadOnly(nodes)
        },
    };
    let node = blocks.content(&dev).map_err(|e| e.to_string())?;
    match probe::read(sys, &node) {
        Ok(Some(p)) => Ok((dev, p)),
        Ok(None) => Err(format!("no filesystem known on {}", node.display())),
        Err(e) => Err(e.to_string()),
    }
}

/// Reads the count at `rel` on the root at `root`: `None` when there is
/// none; the reason when there is a file that is no count (torn, garbled,
/// not a regular file) or cannot be read.
pub fn read_state(
    sys: &dyn Sys,
    root: &Path,
    rel: &Path,
) -> std::result::Result<Option<BootCount>, String> {
    let at = sys::in_root(root, rel);
    // Opened inside the root, looked at before it is read: a FIFO there
    // would block PID 1 forever.
    let file = match sys.open_in(root, rel, Resolve::InRoot) {
        Ok(f) => f,
        Err(Errno::NOENT) => return Ok(None),
        Err(e) => return Err(format!("cannot read {}: {}", at.display(), ErrnoText(e))),
    };
    match file.info() {
        Ok(st) if st.kind == FileType::RegularFile => {}
        Ok(_) => return Err(format!("{} is not a regular file", at.display())),
        Err(e) => return Err(format!("cannot stat {}: {}", at.display(), ErrnoText(e))),
    }
    let mut buf = vec![0u8; bootcount::MAX_BYTES + 1];
    let n = file
        .read_full_at(&mut buf, 0)
        .map_err(|e| format!("cannot read {}: {}", at.display(), ErrnoText(e)))?;
    buf.truncate(n);
    bootcount::parse(&buf).map(Some).map_err(|why| {
        format!(
            "{} is no boot count pivot-init can read: {why}",
            at.display()
        )
    })
}

/// How a write on the boot disk went.
pub struct Written {
    pub path: PathBuf,
    /// The boot root was read-only: made writable for the write, and
    /// whether it is read-only again (or why not).
    pub remounted: Option<std::result::Result<(), String>>,
    pub root: PathBuf,
}

impl Written {
    /// What the log line adds about the remount.
    pub fn note(&self) -> String {
        match &self.remounted {
            None => String::new(),
            Some(Ok(())) => format!(
                " ({} was read-only: made writable for the write, read-only again)",
                self.root.display()
            ),
            Some(Err(why)) => format!(
                " ({} was read-only: made writable for the write, and stays so: {why})",
                self.root.display()
            ),
        }
    }
}

/// Writes `data` as the file `rel` of the root mounted at `root`,
/// atomically, remounting that mount read-write for it when it is read-only
/// and read-only again after (with the flags it had).
pub fn write_state(
    sys: &dyn Sys,
    root: &Path,
    rel: &Path,
    data: &[u8],
) -> std::result::Result<Written, String> {
    let path = sys::in_root(root, rel);
    let flags = sys.mount_flags(root).map_err(|e| e.to_string())?;
    let read_only = flags.contains(MountFlags::RDONLY);
    if read_only {
        sys.remount(root, flags.difference(MountFlags::RDONLY), "")
            .map_err(|e| format!("{} is read-only and {e}", root.display()))?;
    }
    let written = write_atomically(sys, root, &path, data);
    let remounted = read_only.then(|| sys.remount(root, flags, "").map_err(|e| e.to_string()));
    if let Some(Err(why)) = &remounted {
        log::error!("{why}: {} stays writable", root.display());
    }
    written.map_err(|e| e.to_string())?;
    Ok(Written {
        path,
        remounted,
        root: root.to_path_buf(),
    })
}

/// A temporary file next to `path`, written and `fsync`ed, renamed over
/// `path`, then the directory `fsync`ed: `path` holds the old text or the
/// new one, never a part. Missing directories below `root` are made.
fn write_atomically(
    sys: &dyn Sys,
    root: &Path,
    path: &Path,
    data: &[u8],
) -> std::result::Result<(), SysError> {
    let dir = path.parent().unwrap_or(root);
    let missing: Vec<&Path> = dir
        .ancestors()
        .take_while(|d| d.starts_with(root) && *d != root && !sys.is_dir(d))
        .collect();
    for d in missing.into_iter().rev() {
        sys.mkdir(d)?;
    }
    let mut name = path.file_name().unwrap_or_default().to_os_string();
    name.push(".new");
    let tmp = path.with_file_name(name);
    let r = sys
        .write_synced(&tmp, data)
        .and_then(|()| sys.rename(&tmp, path));
    if let Err(e) = r {
        if sys.exists(&tmp) {
            let _ = sys.remove_file(&tmp);
        }
        return Err(e);
    }
    sys.sync_dir(dir)
}

/// Where the boot disk's root is for `bless` and `status`.
#[derive(Debug)]
pub struct BootRoot {
    pub dir: PathBuf,
    /// How it was found, for the output.
    pub how: String,
    /// It was mounted here for this (unmounted, its directory removed, by
    /// [`BootRoot::release`]).
    mounted: bool,
}

impl BootRoot {
    /// Unmounts what [`locate`] mounted and removes its directory.
    pub fn release(self, sys: &dyn Sys) -> std::result::Result<(), String> {
        if !self.mounted {
            return Ok(());
        }
        sys.unmount(&self.dir).map_err(|e| e.to_string())?;
        sys.remove_dir(&self.dir).map_err(|e| e.to_string())
    }
}

/// Finds the boot disk's root: `explicit` (`--root`); the device named by
/// `pivot.bootdisk=` on the command line (after a kexec; mounted on a
/// directory of its own, under /run, /tmp or /); the old root (`/old-root`)
/// when it is a mount point (after a pivot); or `/` itself when the state is
/// there (on the boot disk, after a fallback to its old init).
pub fn locate(
    sys: &dyn Sys,
    cfg: &Config,
    explicit: Option<&Path>,
) -> std::result::Result<BootRoot, String> {
    if let Some(dir) = explicit {
        if !sys.is_dir(dir) {
            return Err(format!("--root {}: not a directory", dir.display()));
        }
        return Ok(BootRoot {
            dir: dir.to_path_buf(),
            how: format!("{} (--root)", dir.display()),
            mounted: false,
        });
    }
    if let Some(spec) = &cfg.bootdisk {
        return mount_bootdisk(sys, spec);
    }
    let old = &cfg.old_root;
    if sys.is_mount_point(old) {
        return Ok(BootRoot {
            dir: old.clone(),
            how: format!("{} (where the switch left it)", old.display()),
            mounted: false,
        });
    }
    let root = Path::new("/");
    if sys.exists(&sys::in_root(root, &cfg.state)) {
        return Ok(BootRoot {
            dir: root.to_path_buf(),
            how: "/ (this system runs on the boot disk)".into(),
            mounted: false,
        });
    }
    Err(format!(
        "cannot find the boot disk: {} is not a mount point, the command line has no \
         pivot.bootdisk=, and / has no {}; name its root with --root DIR",
        old.display(),
        cfg.state.display()
    ))
}

/// The one block device `spec` names, mounted on a new directory. Read-only
/// first ([`write_state`] remounts it for a write); when it is mounted
/// already, and writable, the kernel refuses another read-only mount of it
/// (EBUSY) and it is mounted read-write.
fn mount_bootdisk(sys: &dyn Sys, spec: &Spec) -> std::result::Result<BootRoot, String> {
    let blocks = SysBlock {
        sys,
        root: PathBuf::from("/sys/class/block"),
        nodes: Nodes::ReadOnly(PathBuf::from("/dev")),
    };
    let want = Want { spec, fstypes: &[] };
    let mut found = Vec::new();
    for dev in blocks.names().iter().filter_map(|n| blocks.device(n)) {
        let mut facts = Facts::new(&blocks, dev);
        if verdict(&mut facts, &want) == Verdict::Match {
            found.push((facts.describe(), facts.dev.clone(), facts.probed().cloned()));
        }
    }
    let (_, dev, probed) = match found.len() {
        1 => found.remove(0),
        0 => return Err(format!("no block device is pivot.bootdisk={spec}")),
        n => {
            let all: Vec<String> = found.into_iter().map(|f| f.0).collect();
            return Err(format!(
                "{n} block devices are pivot.bootdisk={spec}: {}",
                crate::sys::joined(&all, ", ")
            ));
        }
    };
    let node = blocks.content(&dev).map_err(|e| e.to_string())?;
    let fstype = match probed {
        Some(p) => p.fstype,
        None => match probe::read(sys, &node) {
            Ok(Some(p)) => p.fstype,
            Ok(None) => return Err(format!("no filesystem known on {}", node.display())),
            Err(e) => return Err(e.to_string()),
        },
    };
    let base = ["/run", "/tmp"]
        .into_iter()
        .find(|d| sys.is_dir(Path::new(d)))
        .unwrap_or("");
    let dir = PathBuf::from(format!("{base}/pivot-init-bootdisk.{}", sys::getpid()));
    sys.mkdir(&dir).map_err(|e| e.to_string())?;
    let safe = MountFlags::NOSUID | MountFlags::NODEV | MountFlags::NOEXEC;
    let r = match sys.mount(&node, &dir, fstype, safe | MountFlags::RDONLY, "") {
        Err(e) if e.errno == Errno::BUSY => sys.mount(&node, &dir, fstype, safe, ""),
        r => r,
    };
    if let Err(e) = r {
        let _ = sys.remove_dir(&dir);
        return Err(e.to_string());
    }
    Ok(BootRoot {
        how: format!(
            "pivot.bootdisk={spec} on the command line, mounted at {}",
            dir.display()
        ),
        dir,
        mounted: true,
    })
}

/// The first line of `bless` and `status`: where the boot disk is and, when
/// it can be told, its device and filesystem.
pub fn describe_root(sys: &dyn Sys, root: &BootRoot) -> String {
    match root_filesystem(sys, &root.dir, false) {
        Ok((dev, p)) if !p.uuid.is_empty() => format!(
            "boot disk: {}: {} {} UUID={}",
            root.how,
            dev.describe(),
            p.fstype,
            p.uuid
        ),
        Ok((dev, p)) => format!("boot disk: {}: {} {}", root.how, dev.describe(), p.fstype),
        Err(_) => format!("boot disk: {}", root.how),
    }
}

/// `pivot-init bless`: the count on the boot disk (at `root`) reset for the
/// volume this system runs on, with every try back. On the boot disk itself
/// (`/` is on the same filesystem as `root`), or where the running root's
/// UUID cannot be told, the volume the count names is blessed. Returns the
/// lines to print, or why nothing was written.
pub fn bless(sys: &dyn Sys, root: &BootRoot, rel: &Path) -> std::result::Result<String, String> {
    let mut out = String::new();
    let state = read_state(sys, &root.dir, rel).unwrap_or_else(|why| {
        let _ = writeln!(out, "note: {why}; blessing as if there were none");
        None
    });
    let running = running_volume(sys, &root.dir, &mut out);
    let Some(next) = bootcount::bless(state.as_ref(), running.as_ref(), sys.now_secs()) else {
        return Err(format!(
            "nothing to bless: no boot count in {} and no volume known to run here",
            sys::in_root(&root.dir, rel).display()
        ));
    };
    let done = write_state(sys, &root.dir, rel, bootcount::format(&next).as_bytes())?;
    let _ = write!(
        out,
        "{}\nwritten to {}{}\n",
        bootcount::describe(&next),
        done.path.display(),
        done.note()
    );
    Ok(out)
}

/// The volume `/` is, for `bless`; `None` on the boot disk itself or when
/// that cannot be told (said in `out`).
fn running_volume(sys: &dyn Sys, boot_dir: &Path, out: &mut String) -> Option<Volume> {
    let dev = |p: &Path| sys.stat(p).map(|st| st.dev).ok();
    let here = dev(Path::new("/"));
    if here.is_some() && here == dev(boot_dir) {
        return None;
    }
    match root_filesystem(sys, Path::new("/"), false) {
        Ok((_, p)) if !p.uuid.is_empty() => Some(Volume {
            uuid: p.uuid,
            spec: String::new(),
        }),
        Ok((dev, p)) => {
            let _ = writeln!(
                out,
                "note: / ({}, {}) has no filesystem UUID: blessing the volume the count names",
                dev.describe(),
                p.fstype
            );
            None
        }
        Err(why) => {
            let _ = writeln!(
                out,
                "note: cannot tell which volume / is ({why}): blessing the volume the count names"
            );
            None
        }
    }
}

/// `pivot-init status`: the count on the boot disk in a line a person can read.
pub fn status(sys: &dyn Sys, root: &BootRoot, rel: &Path) -> std::result::Result<String, String> {
    match read_state(sys, &root.dir, rel)? {
        Some(c) => Ok(format!("{}\n", bootcount::describe(&c))),
        None => Ok(format!(
            "no boot count in {}: no boot was counted on this boot disk yet\n",
            sys::in_root(&root.dir, rel).display()
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sys::fake::{Disk, FakeSys, NOW};
    use std::os::unix::fs::MetadataExt;

    fn tmp(name: &str) -> PathBuf {
        let d = std::env::temp_dir().join(format!("pivot-tries-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        std::fs::create_dir_all(&d).unwrap();
        d
    }

    /// The first 8 KiB of an ext4 filesystem whose UUID is 16 bytes of `b`.
    fn ext4(b: u8) -> Vec<u8> {
        let mut s = vec![0u8; 8192];
        s[1024 + 0x38..1024 + 0x3A].copy_from_slice(&0xEF53u16.to_le_bytes());
        s[1024 + 0x68..1024 + 0x78].copy_from_slice(&[b; 16]);
        s
    }

    /// A fake machine whose `/` (the sandbox `dir/root`) is on the disk
    /// `vda1` (UUID 1111...), as /sys/dev/block says; `/run` exists.
    fn machine(dir: &Path) -> FakeSys {
        let root = dir.join("root");
        let sys = FakeSys::sandbox(&root);
        std::fs::create_dir_all(root.join("run")).unwrap();
        let (major, minor) = sys::split_dev(std::fs::metadata(&root).unwrap().dev());
        std::fs::create_dir_all(root.join("sys/dev/block")).unwrap();
        std::os::unix::fs::symlink(
            "../../devices/fake/vda1",
            root.join(format!("sys/dev/block/{major}:{minor}")),
        )
        .unwrap();
        sys.disk(Disk {
            name: "vda1".into(),
            major,
            minor,
            serial: None,
            content: ext4(0x11),
            tree: None,
        })
    }

    const ONES: &str = "11111111-1111-1111-1111-111111111111";
    const TWOS: &str = "22222222-2222-2222-2222-222222222222";

    #[test]
    fn the_boot_roots_uuid_for_a_kexecd_kernels_line() {
        let dir = tmp("bootdisk");
        let sys = machine(&dir);
        assert_eq!(
            bootdisk_arg(&sys),
            Some(format!("pivot.bootdisk=UUID={ONES}"))
        );
        let (dev, p) = root_filesystem(&sys, Path::new("/"), false).unwrap();
        assert_eq!((dev.name.as_str(), p.fstype), ("vda1", "ext2"));
        // A root on no block device (tmpfs, overlay): said, no key.
        let bare = FakeSys::sandbox(&dir.join("bare"));
        let why = root_filesystem(&bare, Path::new("/"), true).unwrap_err();
        assert!(why.starts_with("/ is on device "), "{why}");
        assert!(why.ends_with(" is missing)"), "{why}");
        assert_eq!(bootdisk_arg(&bare), None);
        std::fs::remove_dir_all(&dir).unwrap();
    }

    /// After a kexec: the boot disk is found by `pivot.bootdisk=`, mounted
    /// read-only on a directory of its own, remounted for the write, and
    /// unmounted; its count is blessed.
    #[test]
    fn bless_finds_the_boot_disk_by_its_uuid() {
        let dir = tmp("bless");
        let boot = dir.join("bootdisk");
        let spent = format!(
            "pivot-init-state 1\nuuid {ONES}\nspec SERIAL=v\ntries 2\nleft 0\nattempts 2\n\
             last-attempt 5\nend\n"
        );
        std::fs::create_dir_all(boot.join("var/lib/pivot-init")).unwrap();
        std::fs::write(boot.join("var/lib/pivot-init/state"), &spent).unwrap();
        let sys = machine(&dir).disk(Disk {
            name: "nvme0n1p1".into(),
            major: 259,
            minor: 1,
            serial: None,
            content: ext4(0x22),
            tree: Some(boot.clone()),
        });
        let cfg = crate::config::parse_all(None, &format!("pivot.bootdisk=UUID={TWOS}"), false).cfg;
        let root = locate(&sys, &cfg, None).unwrap();
        let at = PathBuf::from(format!("/run/pivot-init-bootdisk.{}", sys::getpid()));
        assert_eq!(root.dir, at);
        assert_eq!(
            root.how,
            format!(
                "pivot.bootdisk=UUID={TWOS} on the command line, mounted at {}",
                at.display()
            )
        );
        assert_eq!(
            status(&sys, &root, &cfg.state).unwrap(),
            "UUID=11111111-1111-1111-1111-111111111111 (SERIAL=v): 0 of 2 tries left, 2 boots \
             since the last bless; last attempt 1970-01-01 00:00:05 UTC; last bless never\n"
        );
        let out = bless(&sys, &root, &cfg.state).unwrap();
        let state = format!("{}/var/lib/pivot-init/state", at.display());
        assert_eq!(
            out,
            format!(
                "UUID={ONES} (SERIAL=v): blessed, all 2 tries left; last attempt 1970-01-01 \
                 00:00:05 UTC; last bless 2023-11-14 22:13:20 UTC\nwritten to {state} ({} was \
                 read-only: made writable for the write, read-only again)\n",
                at.display()
            )
        );
        root.release(&sys).unwrap();
        assert_eq!(
            std::fs::read_to_string(boot.join("var/lib/pivot-init/state")).unwrap(),
            format!(
                "pivot-init-state 1\nuuid {ONES}\nspec SERIAL=v\ntries 2\nattempts 0\n\
                 last-attempt 5\nlast-bless {NOW}\nend\n"
            )
        );
        let log: Vec<String> = sys
            .log()
            .into_iter()
            .filter(|l| !l.starts_with("statvfs") && !l.starts_with("fsync"))
            .collect();
        let a = at.display();
        assert_eq!(
            log,
            [
                format!("mkdir {a}"),
                format!("mount /dev/nvme0n1p1 {a} ext2"),
                format!("remount {a} rw,nosuid,nodev,noexec"),
                format!("write {state}.new"),
                format!("rename {state}.new {state}"),
                format!("remount {a} ro,nosuid,nodev,noexec"),
                format!("umount {a}"),
                format!("remove {a}"),
            ]
        );
        assert!(
            !dir.join("root")
                .join(at.strip_prefix("/").unwrap())
                .exists()
        );
        // Named by a spec that matches nothing, or by no spec and no /old-root.
        let cfg = crate::config::parse_all(None, "pivot.bootdisk=UUID=33", false).cfg;
        assert_eq!(
            locate(&sys, &cfg, None).unwrap_err(),
            "no block device is pivot.bootdisk=UUID=33"
        );
        let cfg = crate::config::Config::default();
        assert_eq!(
            locate(&sys, &cfg, None).unwrap_err(),
            "cannot find the boot disk: /old-root is not a mount point, the command line has no \
             pivot.bootdisk=, and / has no /var/lib/pivot-init/state; name its root with --root DIR"
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }

    /// Where the boot disk's state is garbage, bless still writes a good one
    /// (for the volume that runs, or the one it names), and says so.
    #[test]
    fn bless_over_a_garbled_count() {
        let dir = tmp("bless-garbled");
        let sys = machine(&dir).file("/var/lib/pivot-init/state", b"\x00\x01garbage", 0o644);
        let cfg = crate::config::Config::default();
        let root = locate(&sys, &cfg, None).unwrap();
        assert_eq!(root.how, "/ (this system runs on the boot disk)");
        let why = "/var/lib/pivot-init/state is no boot count pivot-init can read: it does not \
                   end with the line `end` (cut short?)";
        assert_eq!(status(&sys, &root, &cfg.state).unwrap_err(), why);
        // On the boot disk itself with no count to name a volume: nothing to bless.
        assert_eq!(
            bless(&sys, &root, &cfg.state).unwrap_err(),
            "nothing to bless: no boot count in /var/lib/pivot-init/state and no volume known \
             to run here"
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
