//! A recording [`Sys`] for unit tests: every call is kept as a typed
//! [`Call`], and any call can be made to fail with a chosen errno.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

pub use super::Op as Call;
use super::{Errno, Halt, MountFlags, Sys, Unmounted};
use crate::error::{Error, Result};

pub type Matcher = Box<dyn Fn(&Call) -> bool>;

#[derive(Default)]
pub struct FakeSys {
    pub calls: Vec<Call>,
    /// Calls that fail, with the errno they fail with (the first match wins).
    pub failures: Vec<(Matcher, Errno)>,
    /// `/` is not a ramfs/tmpfs.
    pub not_ram: bool,
    /// Directories that exist (besides those made by `mkdir`).
    pub dirs: BTreeSet<PathBuf>,
    /// Mount points that exist (besides those made by `mount`).
    pub mounts: BTreeSet<PathBuf>,
    /// Targets whose unmount is busy and ends in a lazy detach.
    pub busy: BTreeSet<PathBuf>,
}

impl FakeSys {
    /// Makes every call whose one-line text starts with `prefix` fail with `errno`.
    pub fn fail(mut self, prefix: &str, errno: Errno) -> FakeSys {
        let prefix = prefix.to_string();
        self.failures
            .push((Box::new(move |c| c.to_string().starts_with(&prefix)), errno));
        self
    }

    /// Makes the next call whose text starts with `prefix` fail with
    /// `errno`, once; the same call succeeds after that.
    pub fn fail_once(mut self, prefix: &str, errno: Errno) -> FakeSys {
        let prefix = prefix.to_string();
        let used = std::cell::Cell::new(false);
        self.failures.push((
            Box::new(move |c| {
                let hit = !used.get() && c.to_string().starts_with(&prefix);
                used.set(used.get() || hit);
                hit
            }),
            errno,
        ));
        self
    }

    /// The calls as one-line texts.
    pub fn log(&self) -> Vec<String> {
        self.calls.iter().map(Call::to_string).collect()
    }

    fn rec(&mut self, call: Call) -> std::result::Result<(), Errno> {
        let failed = self
            .failures
            .iter()
            .find(|(m, _)| m(&call))
            .map(|(_, e)| *e);
        self.calls.push(call);
        failed.map_or(Ok(()), Err)
    }
}

impl FakeSys {
    /// Records `call`; its error when it was told to fail.
    fn run(&mut self, call: Call) -> Result<()> {
        match self.rec(call.clone()) {
            Ok(()) => Ok(()),
            Err(errno) => Err(call.error(errno)),
        }
    }
}

impl Sys for FakeSys {
    fn mount(&mut self, src: &Path, t: &Path, fs: &str, flags: MountFlags, d: &str) -> Result<()> {
        self.run(Call::Mount {
            source: src.into(),
            target: t.into(),
            fstype: fs.into(),
            flags,
            data: d.into(),
        })?;
        self.mounts.insert(t.into());
        Ok(())
    }
    fn remount(&mut self, t: &Path, flags: MountFlags, data: &str) -> Result<()> {
        self.run(Call::Remount {
            target: t.into(),
            flags,
            data: data.into(),
        })
    }
    fn unmount(&mut self, t: &Path) -> Result<Unmounted> {
        self.run(Call::Unmount(t.into()))?;
        self.mounts.remove(t);
        Ok(if self.busy.contains(t) {
            Unmounted::Detached
        } else {
            Unmounted::Clean
        })
    }
    fn make_private(&mut self) -> Result<()> {
        self.run(Call::MakePrivate)
    }
    fn mkdir(&mut self, p: &Path) -> Result<()> {
        self.run(Call::Mkdir(p.into()))?;
        self.dirs.insert(p.into());
        Ok(())
    }
    fn mknod_block(&mut self, p: &Path, major: u32, minor: u32) -> Result<()> {
        self.run(Call::Mknod(p.into(), major, minor))
    }
    fn pivot_root(&mut self, n: &Path, o: &Path) -> Result<()> {
        self.run(Call::PivotRoot(n.into(), o.into()))
    }
    fn chdir(&mut self, p: &Path) -> Result<()> {
        self.run(Call::Chdir(p.into()))
    }
    fn move_mount(&mut self, f: &Path, t: &Path) -> Result<()> {
        self.run(Call::Move(f.into(), t.into()))
    }
    fn chroot(&mut self, p: &Path) -> Result<()> {
        self.run(Call::Chroot(p.into()))
    }
    fn root_is_ram(&mut self) -> bool {
        self.calls.push(Call::RootIsRam);
        !self.not_ram
    }
    fn free_initramfs(&mut self) -> (usize, u64) {
        self.calls.push(Call::FreeInitramfs);
        (3, 4096)
    }
    fn is_dir(&mut self, p: &Path) -> bool {
        self.dirs.contains(p)
    }
    fn is_mount_point(&mut self, p: &Path) -> bool {
        self.mounts.contains(p)
    }
    fn halt(&mut self, how: Halt) -> Error {
        let call = Call::Halt(how);
        let errno = self.rec(call.clone()).err().unwrap_or(Errno::INVAL);
        call.error(errno)
    }
}
