//! The switch stage: pivot_root onto the mounted volume, keep the old root
//! at `old-root`, and carry the API filesystems (/dev, /proc, /sys, /run)
//! over into the new root.

use std::path::{Path, PathBuf};

use crate::error::Result;
use crate::sys::Sys;

/// The API mounts that move with us when they are mounted.
pub const API_MOUNTS: [&str; 4] = ["/dev", "/proc", "/sys", "/run"];

/// `base` + absolute `p`.
fn under(base: &Path, p: &Path) -> PathBuf {
    base.join(p.strip_prefix("/").unwrap_or(p))
}

/// Runs the switch. `moves` are the API mounts that are mounted now.
/// Everything that can fail in a way we can undo happens before
/// `pivot_root`: the directories the moves need are created first.
/// A move that fails after the pivot is logged; the boot goes on.
pub fn switch(s: &mut dyn Sys, new_root: &Path, old_root: &Path, moves: &[&str]) -> Result<()> {
    s.make_private()?;
    for m in moves {
        s.mkdir(&under(new_root, Path::new(m)))?;
    }
    let put_old = under(new_root, old_root);
    s.mkdir(&put_old)?;
    s.chdir(new_root)?;
    s.pivot_root(new_root, &put_old)?;
    s.chdir(Path::new("/"))?;
    for m in moves {
        let m = Path::new(m);
        if let Err(e) = s.move_mount(&under(old_root, m), m) {
            log::warn!("{e}; the new root keeps its own {}", m.display());
        }
    }
    Ok(())
}

#[cfg(test)]
pub mod fake {
    use super::*;
    use crate::error::Error;
    use rustix::io::Errno;
    use rustix::mount::MountFlags;

    /// Records every call; fails the call whose text starts with `fail_on`.
    #[derive(Default)]
    pub struct FakeSys {
        pub calls: Vec<String>,
        pub fail_on: Option<String>,
    }

    impl FakeSys {
        fn rec(&mut self, call: String) -> Result<()> {
            let fail = self.fail_on.as_ref().is_some_and(|f| call.starts_with(f));
            self.calls.push(call.clone());
            if fail {
                return Err(Error::Mkdir {
                    path: call,
                    errno: Errno::ROFS,
                });
            }
            Ok(())
        }
    }

    impl Sys for FakeSys {
        fn mount(&mut self, src: &str, t: &Path, fs: &str, f: MountFlags, d: &str) -> Result<()> {
            self.rec(format!("mount {src} {} {fs} {f:?} {d}", t.display()))
        }
        fn unmount(&mut self, t: &Path) -> Result<()> {
            self.rec(format!("umount {}", t.display()))
        }
        fn make_private(&mut self) -> Result<()> {
            self.rec("private /".into())
        }
        fn mkdir(&mut self, p: &Path) -> Result<()> {
            self.rec(format!("mkdir {}", p.display()))
        }
        fn pivot_root(&mut self, n: &Path, o: &Path) -> Result<()> {
            self.rec(format!("pivot_root {} {}", n.display(), o.display()))
        }
        fn chdir(&mut self, p: &Path) -> Result<()> {
            self.rec(format!("chdir {}", p.display()))
        }
        fn move_mount(&mut self, f: &Path, t: &Path) -> Result<()> {
            self.rec(format!("move {} {}", f.display(), t.display()))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::fake::FakeSys;
    use super::*;

    #[test]
    fn order_of_operations() {
        let mut s = FakeSys::default();
        switch(
            &mut s,
            Path::new("/new-root"),
            Path::new("/old-root"),
            &["/dev", "/proc", "/sys"],
        )
        .unwrap();
        assert_eq!(
            s.calls,
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
        let mut s = FakeSys {
            fail_on: Some("mkdir /mnt/v/boot".into()),
            ..FakeSys::default()
        };
        let err = switch(&mut s, Path::new("/mnt/v"), Path::new("/boot"), &["/dev"]);
        assert!(err.is_err());
        assert!(!s.calls.iter().any(|c| c.starts_with("pivot_root")));
    }

    #[test]
    fn failed_move_after_pivot_is_not_fatal() {
        let mut s = FakeSys {
            fail_on: Some("move /old-root/run".into()),
            ..FakeSys::default()
        };
        switch(
            &mut s,
            Path::new("/new-root"),
            Path::new("/old-root"),
            &["/run", "/dev"],
        )
        .unwrap();
        assert_eq!(
            s.calls.last().map(String::as_str),
            Some("move /old-root/dev /dev")
        );
    }
}
