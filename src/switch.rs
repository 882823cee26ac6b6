//! The switch stage: pivot_root onto the mounted volume, keep the old root
//! at `old-root`, and carry the API filesystems (/dev, /proc, /sys, /run)
//! over into the new root.

use std::path::Path;

use crate::config::Config;
use crate::error::{Error, Result};
use crate::sys::{API_MOUNTS, Errno, ErrnoText, Op, Sys, in_root as under};

/// The API mounts mounted now, which the switch will carry over: they
/// cover the volume's directories of the same names (the init must not
/// live there). One lstat each against `/`'s stat (`Sys::api_dir`).
pub fn api_mounts(s: &dyn Sys) -> Vec<&'static str> {
    let slash = s.stat(Path::new("/")).ok();
    API_MOUNTS
        .into_iter()
        .filter(|m| s.api_dir(Path::new(m), slash.as_ref()) == Some(true))
        .collect()
}

/// What both modes do first: make the tree private, create the directories
/// the moves need in the new root. Nothing here is irreversible.
fn prepare(s: &dyn Sys, new_root: &Path, moves: &[&str]) -> Result<()> {
    s.make_private()?;
    for m in moves {
        s.mkdir(&under(new_root, Path::new(m)))?;
    }
    Ok(())
}

/// pivot_root into `new_root` with the old root at `put_old`, then move the
/// API mounts over. A move that fails after the pivot is logged; the boot
/// goes on.
fn pivot(
    s: &dyn Sys,
    new_root: &Path,
    old_root: &Path,
    put_old: &Path,
    moves: &[&str],
) -> Result<()> {
    s.chdir(new_root)?;
    s.pivot_root(new_root, put_old)?;
    log::debug!("pivot_root done");
    s.chdir(Path::new("/"))?;
    for m in moves {
        let m = Path::new(m);
        if let Err(e) = s.move_mount(&under(old_root, m), m) {
            log::warn!("{e}; the new root keeps its own {}", m.display());
        }
    }
    Ok(())
}

/// Runs the switch. `moves` are the API mounts that are mounted now.
/// Everything that can fail in a way we can undo happens before
/// `pivot_root`: the directories the moves need are created first.
pub fn switch(s: &dyn Sys, new_root: &Path, old_root: &Path, moves: &[&str]) -> Result<()> {
    prepare(s, new_root, moves)?;
    let put_old = under(new_root, old_root);
    s.mkdir(&put_old)?;
    pivot(s, new_root, old_root, &put_old, moves)
}

/// Machine-image mode, after [`switch`]: puts everything back when the
/// volume's init cannot be executed. The API mounts move back under the
/// boot root (at `old_root` now), `pivot_root` makes the boot root `/` again
/// with the volume back on `new_root`, and the cwd is `/`. The caller
/// unmounts the volume.
pub fn undo(s: &dyn Sys, new_root: &Path, old_root: &Path, moves: &[&str]) -> Result<()> {
    for m in moves.iter().rev() {
        let m = Path::new(m);
        if let Err(e) = s.move_mount(m, &under(old_root, m)) {
            log::warn!("{e}; the boot root keeps its own {}", m.display());
        }
    }
    s.chdir(old_root)?;
    s.pivot_root(old_root, &under(old_root, new_root))?;
    s.chdir(Path::new("/"))?;
    Ok(())
}

/// The switch stage as the config says (initramfs or machine image), with
/// the API mounts `moves`; returns how, for the summary line.
pub fn run(s: &dyn Sys, cfg: &Config, moves: &[&str]) -> Result<String> {
    let (new_root, old_root) = (&cfg.new_root, &cfg.old_root);
    let how = if cfg.initramfs {
        match switch_initramfs(s, new_root, moves)? {
            How::PivotRoot => "pivot_root (initramfs detached)".to_string(),
            How::SwitchRoot => "switch_root".to_string(),
        }
    } else {
        switch(s, new_root, old_root, moves)?;
        format!("pivot_root, boot root at {}", old_root.display())
    };
    Ok(format!("{how}, moved {}", crate::sys::joined(moves, " ")))
}

/// How the root was switched.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum How {
    PivotRoot,
    SwitchRoot,
}

/// Initramfs mode. The API mounts move into the new root first; then
/// `pivot_root(".", ".")`: newer kernels allow it out of an initramfs (the
/// initramfs ends up mounted over the new root and is detached); where the
/// kernel refuses (EINVAL on rootfs), switch_root semantics. Nothing is
/// made on the volume for the old root: the initramfs is not kept.
pub fn switch_initramfs(s: &dyn Sys, new_root: &Path, moves: &[&str]) -> Result<How> {
    if !s.root_is_ram() {
        return Err(Error::NotInitramfs);
    }
    prepare(s, new_root, moves)?;
    for m in moves {
        let m = Path::new(m);
        if let Err(e) = s.move_mount(m, &under(new_root, m)) {
            log::warn!("{e}; the new root keeps its own {}", m.display());
        }
    }
    s.chdir(new_root)?;
    let here = Path::new(".");
    match s.pivot_root(here, here) {
        Ok(()) => {
            if let Err(e) = s.unmount(here) {
                log::warn!("{e}; the initramfs stays mounted");
            }
            s.chdir(Path::new("/"))?;
            Ok(How::PivotRoot)
        }
        Err(e) if matches!(*e.op, Op::PivotRoot(..)) && e.errno == Errno::INVAL => {
            log::debug!(
                "pivot_root refused on the initramfs ({})",
                ErrnoText(e.errno)
            );
            switch_root(s, new_root)?;
            Ok(How::SwitchRoot)
        }
        Err(e) => Err(e.into()),
    }
}

/// switch_root semantics, once the API mounts are in the new root and the
/// cwd is the new root: free the initramfs contents (not crossing mounts),
/// move the new root onto `/`, chroot.
fn switch_root(s: &dyn Sys, new_root: &Path) -> Result<()> {
    let (entries, bytes) = s.free_initramfs();
    log::info!(
        "switch_root: freed the initramfs, removed {entries} entries, {} KiB",
        bytes / 1024
    );
    s.move_mount(new_root, Path::new("/"))?;
    s.chroot(Path::new("."))?;
    s.chdir(Path::new("/"))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sys::SysError;
    use crate::sys::fake::FakeSys;

    #[test]
    fn order_of_operations() {
        let s = FakeSys::default();
        switch(
            &s,
            Path::new("/new-root"),
            Path::new("/old-root"),
            &["/dev", "/proc", "/sys"],
        )
        .unwrap();
        assert_eq!(
            s.log(),
            vec![
                "private /",
                "mkdir /new-root/dev",
                "mkdir /new-root/proc",
                "mkdir /new-root/sys",
                "mkdir /new-root/old-root",
                "chdir /new-root",
                "pivot_root /new-root /new-root/old-root",
                "chdir /",
                "move /old-root/dev /dev",
                "move /old-root/proc /proc",
                "move /old-root/sys /sys",
            ]
        );
    }

    #[test]
    fn failure_before_pivot_stops_before_pivot() {
        let s = FakeSys::default().fail("mkdir /mnt/v/boot", Errno::ROFS);
        let err = switch(&s, Path::new("/mnt/v"), Path::new("/boot"), &["/dev"]);
        assert!(err.is_err());
        assert!(!s.log().iter().any(|c| c.starts_with("pivot_root")));
    }

    #[test]
    fn initramfs_falls_back_to_switch_root_on_einval() {
        let s = FakeSys::default().fail("pivot_root", Errno::INVAL);
        let how = switch_initramfs(&s, Path::new("/new-root"), &["/dev", "/proc"]).unwrap();
        assert_eq!(how, How::SwitchRoot);
        assert_eq!(
            s.log(),
            vec![
                "statfs /",
                "private /",
                "mkdir /new-root/dev",
                "mkdir /new-root/proc",
                "move /dev /new-root/dev",
                "move /proc /new-root/proc",
                "chdir /new-root",
                "pivot_root . .",
                "free /",
                "move /new-root /",
                "chroot .",
                "chdir /",
            ]
        );
    }

    #[test]
    fn initramfs_pivot_root_when_allowed_detaches_the_initramfs() {
        let s = FakeSys::default();
        let how = switch_initramfs(&s, Path::new("/new-root"), &["/dev"]).unwrap();
        assert_eq!(how, How::PivotRoot);
        assert_eq!(
            &s.log()[s.log().len() - 4..],
            &["chdir /new-root", "pivot_root . .", "umount .", "chdir /"]
        );
        // Nothing is made on the volume for an old root.
        assert!(!s.log().iter().any(|c| c.contains("old-root")));
    }

    #[test]
    fn nothing_is_deleted_unless_root_is_ram() {
        let s = FakeSys::default().not_ram();
        let err = switch_initramfs(&s, Path::new("/new-root"), &["/dev"]).unwrap_err();
        assert!(matches!(err, Error::NotInitramfs));
        assert_eq!(s.log(), vec!["statfs /"]);
    }

    #[test]
    fn failed_move_after_pivot_is_not_fatal() {
        let s = FakeSys::default().fail("move /old-root/run", Errno::INVAL);
        switch(
            &s,
            Path::new("/new-root"),
            Path::new("/old-root"),
            &["/run", "/dev"],
        )
        .unwrap();
        assert_eq!(
            s.log().last().map(String::as_str),
            Some("move /old-root/dev /dev")
        );
    }

    #[test]
    fn every_failure_up_to_pivot_root_is_an_error_with_nothing_moved() {
        for (step, errno) in [
            ("private /", Errno::INVAL),
            ("mkdir /new-root/dev", Errno::ROFS),
            ("mkdir /new-root/old-root", Errno::ROFS),
            ("chdir /new-root", Errno::ACCESS),
            ("pivot_root", Errno::PERM),
        ] {
            let s = FakeSys::default().fail(step, errno);
            let err = switch(
                &s,
                Path::new("/new-root"),
                Path::new("/old-root"),
                &["/dev"],
            )
            .unwrap_err();
            let log = s.log();
            assert!(
                log.last().is_some_and(|c| c.starts_with(step)),
                "{step}: {log:?}"
            );
            assert!(
                !log.iter().any(|c| c.starts_with("move")),
                "{step}: {log:?}"
            );
            let text = err.to_string();
            assert!(
                text.contains(&ErrnoText(errno).to_string()),
                "{step}: {text}"
            );
        }
    }

    #[test]
    fn initramfs_errors_other_than_einval_are_not_papered_over() {
        let s = FakeSys::default().fail("pivot_root", Errno::PERM);
        let err = switch_initramfs(&s, Path::new("/new-root"), &[]).unwrap_err();
        assert!(matches!(
            err,
            Error::Sys(SysError {
                ref op,
                errno: Errno::PERM,
            }) if matches!(**op, Op::PivotRoot(..))
        ));
        assert!(!s.log().iter().any(|c| c == "free /"));
        // switch_root: the new root cannot be moved onto /.
        let s = FakeSys::default()
            .fail("pivot_root", Errno::INVAL)
            .fail("move /new-root /", Errno::INVAL);
        let err = switch_initramfs(&s, Path::new("/new-root"), &[]).unwrap_err();
        assert_eq!(
            err.to_string(),
            "moving mount /new-root to / failed: errno 22 (Invalid argument)"
        );
        assert!(!s.log().iter().any(|c| c.starts_with("chroot")));
    }

    #[test]
    fn undo_puts_the_boot_root_back() {
        let s = FakeSys::default();
        undo(
            &s,
            Path::new("/new-root"),
            Path::new("/old-root"),
            &["/dev", "/proc", "/sys"],
        )
        .unwrap();
        assert_eq!(
            s.log(),
            vec![
                "move /sys /old-root/sys",
                "move /proc /old-root/proc",
                "move /dev /old-root/dev",
                "chdir /old-root",
                "pivot_root /old-root /old-root/new-root",
                "chdir /",
            ]
        );
        // A move that fails is logged; the pivot back is what matters.
        let s = FakeSys::default().fail("move /proc", Errno::INVAL);
        undo(
            &s,
            Path::new("/new-root"),
            Path::new("/old-root"),
            &["/dev", "/proc"],
        )
        .unwrap();
        assert!(
            s.log()
                .contains(&"pivot_root /old-root /old-root/new-root".to_string())
        );
        // The pivot back itself failing is an error for the caller.
        let s = FakeSys::default().fail("pivot_root", Errno::BUSY);
        let err = undo(&s, Path::new("/new-root"), Path::new("/old-root"), &[]).unwrap_err();
        assert_eq!(
            err.to_string(),
            "pivot_root(/old-root, /old-root/new-root) failed: errno 16 (Device or resource busy)"
        );
    }
}
