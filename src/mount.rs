//! The mount stage: create the new-root directory if needed, decide the
//! filesystem type (given, or probed from the superblock) and mount.

use std::path::Path;

use crate::config::Config;
use crate::error::{Error, Result};
use crate::mountopts::MountOpts;
use crate::probe::{self, Probe};
use crate::sys::{Errno, ErrnoText, MountFlags, Op, Sys, SysError, Unmounted};

/// What is known of `device`'s filesystem before it is mounted: what the
/// wait stage already read, else a probe when `pivot.fstype` does not say
/// (then not knowing the type is an error); `None` when `pivot.fstype` names
/// the types to try.
pub fn known_filesystem(
    sys: &dyn Sys,
    device: &Path,
    probed: Option<Probe>,
    fstypes: &[String],
) -> Result<Option<Probe>> {
    match probed {
        Some(p) => Ok(Some(p)),
        None if fstypes.is_empty() => {
            let p = probe::read(sys, device)?.ok_or_else(|| Error::NoFilesystem {
                device: device.to_path_buf(),
            })?;
            log::debug!("probed {}", device.display());
            Ok(Some(p))
        }
        None => Ok(None),
    }
}

/// The options of the first mount, the one the checks read: read-only,
/// and `nodev,nosuid,noexec`, so that nothing on the volume can act before
/// it is accepted (a device node opened by mistake, a set-uid file). The
/// commit remounts it with the configured options.
pub fn first_options(opts: &MountOpts) -> MountOpts {
    MountOpts {
        flags: opts.flags
            | MountFlags::RDONLY
            | MountFlags::NODEV
            | MountFlags::NOSUID
            | MountFlags::NOEXEC,
        data: opts.data.clone(),
    }
}

/// What holding the volume's device read-only came to.
pub enum Hold {
    /// Made read-only here: to be given back at the commit or a failure.
    Ours,
    /// It was read-only already: not ours to change.
    Already,
    /// Not held: the change to say (a journal to replay; the device could
    /// not be made read-only and the filesystem may write to it).
    Unheld(&'static str),
}

/// Makes the volume's device read-only until the commit (BLKROSET), unless
/// it is already, or its journal needs recovery (`probed` says so: even a
/// read-only mount replays it). When it cannot be done, the volume is no
/// longer sure to stay unchanged, and the unmount line will not say it did.
pub fn hold_read_only(sys: &dyn Sys, node: &Path, probed: Option<&Probe>) -> Hold {
    if probed.is_some_and(|p| p.needs_replay) {
        let n = node.display();
        log::warn!("{n}: its journal needs recovery, which even a read-only mount writes");
        return Hold::Unheld("its journal was replayed");
    }
    let why = match sys.block_read_only(node) {
        Ok(true) => return Hold::Already,
        Ok(false) => match sys.set_block_read_only(node, true) {
            Ok(()) => return Hold::Ours,
            Err(e) => e.to_string(),
        },
        Err(e) => format!(
            "cannot tell whether {} is read-only (BLKROGET): {}",
            node.display(),
            ErrnoText(e)
        ),
    };
    log::warn!("{why}; the filesystem may write to it even mounted read-only");
    Hold::Unheld("it was mounted on a writable device (its filesystem may have written)")
}

/// Gives the volume's device its writable state back.
pub fn give_back(sys: &dyn Sys, dev: &Path) {
    if let Err(e) = sys.set_block_read_only(dev, false) {
        log::error!("{e}");
    }
}

/// The mount for the checks, with [`first_options`]. A filesystem that
/// must replay its log refuses the read-only device (EROFS, see
/// [`wants_to_write`]): when `held` (the device read-only by
/// [`hold_read_only`]), it is given back and the mount tried again.
/// Returns the type used and whether that happened.
pub fn mount_for_check(
    sys: &dyn Sys,
    cfg: &Config,
    node: &Path,
    probed: Option<Probe>,
    held: bool,
) -> Result<(String, bool)> {
    let first = first_options(&cfg.mount_opts);
    match mount_volume(sys, cfg, &first, node, probed.clone()) {
        Err(e) if held && wants_to_write(&e) => {
            log::warn!(
                "{e}: the filesystem must replay its log, which even a read-only mount \
                 writes; making {} writable for it",
                node.display()
            );
            give_back(sys, node);
            Ok((mount_volume(sys, cfg, &first, node, probed)?, true))
        }
        r => Ok((r?, false)),
    }
}

/// Unmounts the volume (cleanly: a lazy detach is an error) and mounts it
/// again with the configured options (btrfs, which keeps the read-only
/// state its device had at the mount and refuses a read-write remount).
pub fn mount_again(sys: &dyn Sys, cfg: &Config, node: &Path, fstype: &str) -> Result<()> {
    let root = cfg.new_root.as_path();
    if sys.unmount(root)? == Unmounted::Detached {
        return Err(Op::Unmount(root.into()).failed(Errno::BUSY).into());
    }
    let opts = &cfg.mount_opts;
    sys.mount(node, root, fstype, opts.flags, &opts.data)?;
    Ok(())
}

/// Whether a mount failed because the filesystem must write and the
/// device is read-only: a log to replay (xfs, btrfs, f2fs and ext4 say
/// EROFS when the device refuses).
pub fn wants_to_write(e: &Error) -> bool {
    match e {
        Error::Sys(SysError { op, errno }) if matches!(**op, Op::Mount { .. }) => {
            *errno == Errno::ROFS
        }
        Error::AllFstypesFailed { tried, .. } => tried.iter().any(|(_, e)| *e == Errno::ROFS),
        _ => false,
    }
}

/// Unmounts the volume after a failure (from `/`, so that our cwd does not
/// hold it) and says what was done to it.
pub fn unmount_volume(s: &dyn Sys, target: &Path, changes: &[&str]) -> Option<Unmounted> {
    if let Err(e) = s.chdir(Path::new("/")) {
        log::warn!("{e}");
    }
    let what = if changes.is_empty() {
        "the volume was not changed".to_string()
    } else {
        crate::sys::joined(changes, "; ")
    };
    match s.unmount(target) {
        Ok(how) => {
            match how {
                Unmounted::Clean => log::info!("unmounted {} ({what})", target.display()),
                Unmounted::Detached => log::warn!(
                    "{} was busy: detached it lazily; it is unmounted once unused ({what})",
                    target.display()
                ),
            }
            Some(how)
        }
        Err(e) => {
            log::error!("{e}");
            None
        }
    }
}

/// The types to try, in order: the probed one first, then the rest of
/// `pivot.fstype`.
pub fn types_to_try(probed: Option<&Probe>, configured: &[String]) -> Vec<String> {
    let mut types: Vec<String> = probed.map(|p| p.fstype.to_string()).into_iter().collect();
    for t in configured {
        if !types.contains(t) {
            types.push(t.clone());
        }
    }
    types
}

/// Mounts `device` on the configured new root with `opts` (the configured
/// options, or those made read-only for the checks); returns the type used.
/// `probed` is what [`known_filesystem`] says; without it the types of
/// `pivot.fstype` are tried in order.
pub fn mount_volume(
    s: &dyn Sys,
    cfg: &Config,
    opts: &MountOpts,
    device: &Path,
    probed: Option<Probe>,
) -> Result<String> {
    let target = cfg.new_root.as_path();
    if !s.is_dir(target) {
        s.mkdir(target)?;
        log::info!("created {}", target.display());
    }
    let what = probed.as_ref().map_or(String::new(), |p| {
        format!(" (UUID={} LABEL={})", p.uuid, p.label)
    });
    let types = types_to_try(
        probed.as_ref(),
        if probed.is_some() { &[] } else { &cfg.fstypes },
    );
    let mut tried = Vec::new();
    for t in &types {
        match s.mount(device, target, t, opts.flags, &opts.data) {
            Ok(()) => {
                // Mounted read-only for the checks: say what it will be.
                let until = if *opts != cfg.mount_opts {
                    ", read-only until it is checked"
                } else {
                    ""
                };
                log::info!(
                    "mounted {}{what} on {} as {t} ({}){until}",
                    device.display(),
                    target.display(),
                    cfg.mount_opts.describe()
                );
                return Ok(t.clone());
            }
            Err(e) if types.len() == 1 => return Err(e.into()),
            Err(e) => {
                if !matches!(*e.op, Op::Mount { .. }) {
                    return Err(e.into());
                }
                log::warn!("{e}");
                tried.push((t.clone(), e.errno));
            }
        }
    }
    Err(Error::AllFstypesFailed {
        device: device.to_path_buf(),
        target: target.to_path_buf(),
        tried,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sys::Errno;
    use crate::sys::fake::FakeSys;

    fn cfg(fstypes: &[&str]) -> Config {
        Config {
            fstypes: fstypes.iter().map(|t| t.to_string()).collect(),
            ..Config::default()
        }
    }

    fn ext4() -> Probe {
        Probe {
            fstype: "ext4",
            uuid: "u".into(),
            label: "l".into(),
            needs_replay: false,
        }
    }

    #[test]
    fn probed_type_is_mounted_and_new_root_made() {
        let s = FakeSys::default();
        let t = mount_volume(
            &s,
            &cfg(&[]),
            &MountOpts::default(),
            Path::new("/dev/vdb"),
            Some(ext4()),
        )
        .unwrap();
        assert_eq!(t, "ext4");
        assert_eq!(
            s.log(),
            ["mkdir /new-root", "mount /dev/vdb /new-root ext4"]
        );
    }

    #[test]
    fn first_type_refused_second_taken() {
        let s = FakeSys::default()
            .fail("mount /dev/vdb /new-root xfs", Errno::NODEV)
            .with_dir("/new-root");
        let t = mount_volume(
            &s,
            &cfg(&["xfs", "btrfs"]),
            &MountOpts::default(),
            Path::new("/dev/vdb"),
            None,
        );
        assert_eq!(t.unwrap(), "btrfs");
        assert_eq!(
            s.log(),
            [
                "mount /dev/vdb /new-root xfs",
                "mount /dev/vdb /new-root btrfs"
            ]
        );
    }

    #[test]
    fn every_type_refused() {
        let s = FakeSys::default()
            .fail("mount", Errno::INVAL)
            .with_dir("/new-root");
        let err = mount_volume(
            &s,
            &cfg(&["xfs", "btrfs"]),
            &MountOpts::default(),
            Path::new("/dev/vdb"),
            None,
        )
        .unwrap_err();
        assert_eq!(
            err.to_string(),
            "could not mount /dev/vdb on /new-root as any of: xfs (errno 22 (Invalid argument)), \
             btrfs (errno 22 (Invalid argument))"
        );
        // One type only: its own error, with the flags.
        let err = mount_volume(
            &s,
            &cfg(&[]),
            &MountOpts::default(),
            Path::new("/dev/vdb"),
            Some(ext4()),
        )
        .unwrap_err();
        assert_eq!(
            err.to_string(),
            "mounting /dev/vdb on /new-root as ext4 (flags rw) failed: errno 22 (Invalid argument)"
        );
    }

    #[test]
    fn undo_after_a_failure_unmounts_the_volume() {
        let s = FakeSys::default();
        assert_eq!(
            unmount_volume(&s, Path::new("/new-root"), &[]),
            Some(Unmounted::Clean)
        );
        assert_eq!(s.log(), ["chdir /", "umount /new-root"]);
        let s = FakeSys::default().with_busy("/new-root");
        assert_eq!(
            unmount_volume(&s, Path::new("/new-root"), &["mounted read-write"]),
            Some(Unmounted::Detached)
        );
        let s = FakeSys::default().fail("umount", Errno::INVAL);
        assert_eq!(unmount_volume(&s, Path::new("/new-root"), &[]), None);
    }

    #[test]
    fn new_root_that_cannot_be_made() {
        let s = FakeSys::default().fail("mkdir /new-root", Errno::ROFS);
        let err = mount_volume(
            &s,
            &cfg(&[]),
            &MountOpts::default(),
            Path::new("/dev/vdb"),
            Some(ext4()),
        )
        .unwrap_err();
        assert!(matches!(
            err,
            Error::Sys(SysError {
                ref op,
                errno: Errno::ROFS,
            }) if matches!(**op, Op::Mkdir(_))
        ));
        assert_eq!(s.log(), ["mkdir /new-root"]);
    }
}
