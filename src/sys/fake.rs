//! A scriptable [`Sys`](super::Sys) for unit tests, without root.
//!
//! - Every change (mount, mkdir, pivot_root, exec, spawn...) is recorded as
//!   an [`Op`] ([`FakeSys::log`] gives them as one-line texts); any call can
//!   be made to fail with a chosen errno ([`FakeSys::fail`]) or to panic
//!   ([`FakeSys::panic_on`]).
//! - Without a sandbox it knows only the directories and mount points it
//!   was told of or made: enough for a stage on its own.
//! - With a sandbox ([`FakeSys::sandbox`]) files are served from a real
//!   directory that stands for the boot root, through a small mount table:
//!   mounting a disk shows its tree at the target, `pivot_root` and moves
//!   rearrange the table as the kernel would. Disks are present at boot or
//!   arrive with a uevent while the boot waits ([`FakeSys::arrive`]); a block
//!   node is a regular file holding the disk's first bytes. So the whole
//!   boot runs on it, from the command line to the exec.

use std::cell::RefCell;
use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::ffi::{CStr, CString, OsStr};
use std::path::{Component, Path, PathBuf};
use std::rc::Rc;
use std::time::Duration;

use super::files::{self, FileInfo, OpenFile, Resolve};
use super::process::{Child, Exit, Program, SpawnOpts, Supervised};
use super::signals::Sig;
use super::uevent_socket::{Ready, Recv};
use super::{
    End, Errno, Events, FileType, Files, Halt, Kernel, MountFlags, Mounts, Pid, Procs, SysError,
    Uname, Unmounted,
};

pub use super::Op as Call;

pub type Matcher = Box<dyn Fn(&Call) -> bool>;

/// The kernel release the fake reports.
pub const RELEASE: &str = "6.1.0-fake";

/// A disk of the fake machine.
#[derive(Debug, Clone)]
pub struct Disk {
    pub name: String,
    pub major: u32,
    pub minor: u32,
    pub serial: Option<String>,
    /// Its first bytes (a superblock): what reading its node gives.
    pub content: Vec<u8>,
    /// What mounting it shows: a real directory (none: it cannot be mounted).
    pub tree: Option<PathBuf>,
}

#[derive(Default)]
struct State {
    calls: Vec<Call>,
    failures: Vec<(Matcher, Errno)>,
    panics: Vec<String>,
    not_ram: bool,
    dirs: BTreeSet<PathBuf>,
    busy: BTreeSet<PathBuf>,
    /// (mount point as this process sees it, real directory), in mount
    /// order: of two at one path, the later is on top.
    table: Vec<(PathBuf, PathBuf)>,
    /// The real directory that stands for the boot root.
    sandbox: Option<PathBuf>,
    cwd: PathBuf,
    /// Block nodes: path -> device number.
    nodes: BTreeMap<PathBuf, (u32, u32)>,
    disks: Vec<Disk>,
    /// Nodes are made only by mknod (no devtmpfs).
    static_dev: bool,
    arrivals: VecDeque<Disk>,
    queued: VecDeque<Vec<u8>>,
    subscribed: bool,
    signals: VecDeque<Sig>,
    /// How a spawned child ends; `None`: it never does (a hook that times out).
    child_exit: Option<Exit>,
    /// Block devices made read-only (BLKROSET), by node path.
    read_only: BTreeSet<PathBuf>,
    /// `uname -m` (`None`: this machine's).
    machine: Option<String>,
    /// Whether the kernel runs the machine's 32-bit programs.
    runs_32bit: bool,
    /// The flags of each mount, by the real directory it shows (which
    /// stays the same when pivot_root and moves rearrange the table).
    mount_flags: BTreeMap<PathBuf, MountFlags>,
    /// What a child run with `run_logged` writes.
    child_output: Vec<u8>,
}

/// The wall clock the fake reports ([`super::Kernel::now_secs`]):
/// 2023-11-14 22:13:20 UTC.
pub const NOW: u64 = 1_700_000_000;

/// The fake system; see the module documentation. A clone is the same
/// machine (a test keeps one to read the calls of a boot that owns the other).
#[derive(Clone)]
pub struct FakeSys {
    st: Rc<RefCell<State>>,
}

impl Default for FakeSys {
    fn default() -> FakeSys {
        FakeSys {
            st: Rc::new(RefCell::new(State {
                cwd: PathBuf::from("/"),
                child_exit: Some(Exit::Code(0)),
                ..State::default()
            })),
        }
    }
}

/// `p` as an absolute path without `.` and `..`, relative to `cwd`.
fn normal(cwd: &Path, p: &Path) -> PathBuf {
    let mut out = PathBuf::from("/");
    let full = if p.is_absolute() {
        p.to_path_buf()
    } else {
        cwd.join(p)
    };
    for c in full.components() {
        match c {
            Component::Normal(n) => out.push(n),
            Component::ParentDir => {
                out.pop();
            }
            _ => {}
        }
    }
    out
}

/// `p` (under `from`) moved under `to`.
fn rebase(p: &Path, from: &Path, to: &Path) -> PathBuf {
    match p.strip_prefix(from) {
        Ok(rest) if rest.as_os_str().is_empty() => to.to_path_buf(),
        Ok(rest) => to.join(rest),
        Err(_) => p.to_path_buf(),
    }
}

fn errno_of(e: &std::io::Error) -> Errno {
    Errno::from_io_error(e).unwrap_or(Errno::IO)
}

impl FakeSys {
    /// Makes every call whose one-line text starts with `prefix` fail with `errno`.
    pub fn fail(self, prefix: &str, errno: Errno) -> FakeSys {
        let prefix = prefix.to_string();
        self.st
            .borrow_mut()
            .failures
            .push((Box::new(move |c| c.to_string().starts_with(&prefix)), errno));
        self
    }

    /// Makes the next call whose text starts with `prefix` fail with
    /// `errno`, once; the same call succeeds after that.
    pub fn fail_once(self, prefix: &str, errno: Errno) -> FakeSys {
        let prefix = prefix.to_string();
        let used = std::cell::Cell::new(false);
        self.st.borrow_mut().failures.push((
            Box::new(move |c| {
                let hit = !used.get() && c.to_string().starts_with(&prefix);
                used.set(used.get() || hit);
                hit
            }),
            errno,
        ));
        self
    }

    /// Makes the call whose text starts with `prefix` panic (as a bug in
    /// the boot would), after it is recorded.
    pub fn panic_on(self, prefix: &str) -> FakeSys {
        self.st.borrow_mut().panics.push(prefix.to_string());
        self
    }

    /// `/` is not a ramfs/tmpfs: a machine image.
    pub fn not_ram(self) -> FakeSys {
        self.st.borrow_mut().not_ram = true;
        self
    }

    /// A directory that exists.
    pub fn with_dir(self, p: &str) -> FakeSys {
        self.st.borrow_mut().dirs.insert(p.into());
        self
    }

    /// A mount point whose unmount is busy (a lazy detach).
    pub fn with_busy(self, p: &str) -> FakeSys {
        self.st.borrow_mut().busy.insert(p.into());
        self
    }

    /// How a spawned child ends (`None`: it runs until it is killed).
    pub fn child_exits(self, exit: Option<Exit>) -> FakeSys {
        self.st.borrow_mut().child_exit = exit;
        self
    }

    /// What a child run with its output logged (`run_logged`) writes.
    pub fn child_output(self, text: &str) -> FakeSys {
        self.st.borrow_mut().child_output = text.as_bytes().to_vec();
        self
    }

    /// No devtmpfs: nodes exist only once mknod made them.
    pub fn static_dev(self) -> FakeSys {
        self.st.borrow_mut().static_dev = true;
        self
    }

    /// The machine `uname -m` names, and whether its kernel runs 32-bit
    /// programs ([`Kernel::runs_32bit`]).
    pub fn machine(self, uname_m: &str, runs_32bit: bool) -> FakeSys {
        {
            let mut st = self.st.borrow_mut();
            st.machine = Some(uname_m.into());
            st.runs_32bit = runs_32bit;
        }
        self
    }

    /// A signal that arrives while PID 1 waits: for the volume, for the
    /// rescue shell or for good (queued until one of them takes it).
    pub fn signal(self, sig: Sig) -> FakeSys {
        self.st.borrow_mut().signals.push_back(sig);
        self
    }

    /// The calls as one-line texts.
    pub fn log(&self) -> Vec<String> {
        self.st.borrow().calls.iter().map(Call::to_string).collect()
    }

    /// The calls as recorded, with every argument (flags, data).
    pub fn calls(&self) -> Vec<Call> {
        self.st.borrow().calls.clone()
    }

    /// A fake machine whose boot root is the real directory `dir` (made,
    /// with `proc`, `sys`, `dev` and `etc` in it).
    pub fn sandbox(dir: &Path) -> FakeSys {
        let _ = std::fs::remove_dir_all(dir);
        for d in ["proc", "sys/class/block", "sys/devices/fake", "dev", "etc"] {
            let _ = std::fs::create_dir_all(dir.join(d));
        }
        let real = std::fs::canonicalize(dir).unwrap_or_else(|_| dir.to_path_buf());
        let fake = FakeSys::default();
        {
            let mut st = fake.st.borrow_mut();
            st.table.push((PathBuf::from("/"), real.clone()));
            st.sandbox = Some(real);
        }
        fake
    }

    /// Writes a file of the boot root (a sandbox's).
    pub fn file(self, p: &str, content: &[u8], mode: u32) -> FakeSys {
        use std::os::unix::fs::PermissionsExt;
        if let Some(real) = self.real(Path::new(p)) {
            if let Some(parent) = real.parent() {
                let _ = std::fs::create_dir_all(parent);
            }
            let _ = std::fs::write(&real, content);
            let _ = std::fs::set_permissions(&real, std::fs::Permissions::from_mode(mode));
        }
        self
    }

    /// The real directory `tree` mounted at `at` (a volume), unrecorded.
    pub fn mounted(self, at: &str, tree: &Path) -> FakeSys {
        let real = std::fs::canonicalize(tree).unwrap_or_else(|_| tree.to_path_buf());
        self.st.borrow_mut().table.push((at.into(), real));
        self
    }

    /// The mount at `at` (the boot root: `/`) is read-only, as the kernel's
    /// `ro` leaves it.
    pub fn read_only_mount(self, at: &str) -> FakeSys {
        if let Some(real) = self.mount_at(Path::new(at)) {
            let mut st = self.st.borrow_mut();
            let flags = st.mount_flags.entry(real).or_insert(MountFlags::empty());
            *flags |= MountFlags::RDONLY;
        }
        self
    }

    /// The real directory of the mount whose mount point is `at`.
    fn mount_at(&self, at: &Path) -> Option<PathBuf> {
        let st = self.st.borrow();
        let at = normal(&st.cwd, at);
        st.table
            .iter()
            .rev()
            .find(|(v, _)| *v == at)
            .map(|(_, r)| r.clone())
    }

    /// The real directory of the mount `p` is on.
    fn mount_of(&self, p: &Path) -> Option<PathBuf> {
        let st = self.st.borrow();
        let p = normal(&st.cwd, p);
        st.table
            .iter()
            .rev()
            .filter(|(v, _)| p.starts_with(v))
            .max_by_key(|(v, _)| v.components().count())
            .map(|(_, r)| r.clone())
    }

    /// Whether `p` is on a read-only mount.
    fn on_read_only(&self, p: &Path) -> bool {
        let Some(real) = self.mount_of(p) else {
            return false;
        };
        let st = self.st.borrow();
        st.mount_flags
            .get(&real)
            .is_some_and(|f| f.contains(MountFlags::RDONLY))
    }

    /// Records `call`, refuses it on a read-only mount (EROFS), then does
    /// `real` to the sandbox's file for `p` (nothing without a sandbox).
    fn change(
        &self,
        call: Call,
        p: &Path,
        real: impl FnOnce(&Path) -> std::io::Result<()>,
    ) -> Result<(), SysError> {
        self.run(call.clone())?;
        if self.on_read_only(p) {
            return Err(call.failed(Errno::ROFS));
        }
        match self.real(p) {
            Some(r) => real(&r).map_err(|e| call.failed(errno_of(&e))),
            None => Ok(()),
        }
    }

    /// A disk present at boot.
    pub fn disk(self, d: Disk) -> FakeSys {
        self.materialize(d);
        self
    }

    /// A disk that arrives, with its uevent, the next time the boot waits.
    pub fn arrive(self, d: Disk) -> FakeSys {
        self.st.borrow_mut().arrivals.push_back(d);
        self
    }

    /// Where a path of this process is in the sandbox (`None` without one).
    pub fn real(&self, p: &Path) -> Option<PathBuf> {
        let st = self.st.borrow();
        st.sandbox.as_ref()?;
        let p = normal(&st.cwd, p);
        let (at, real) = st
            .table
            .iter()
            .rev()
            .filter(|(v, _)| p.starts_with(v))
            .max_by_key(|(v, _)| v.components().count())?;
        Some(rebase(&p, at, real))
    }

    /// The path of this process for a real path in the sandbox.
    fn virt(&self, real: &Path) -> Option<PathBuf> {
        let st = self.st.borrow();
        let (at, r) = st
            .table
            .iter()
            .rev()
            .filter(|(_, r)| real.starts_with(r))
            .max_by_key(|(_, r)| r.components().count())?;
        Some(rebase(real, r, at))
    }

    /// Shows a disk to the machine: its sysfs directory, its node.
    fn materialize(&self, d: Disk) {
        let sandbox = self.st.borrow().sandbox.clone();
        if let Some(root) = sandbox {
            let dir = root.join("sys/devices/fake").join(&d.name);
            let _ = std::fs::create_dir_all(dir.join("device"));
            let _ = std::fs::write(dir.join("dev"), format!("{}:{}\n", d.major, d.minor));
            if let Some(s) = &d.serial {
                let _ = std::fs::write(dir.join("device/serial"), format!("{s}\n"));
            }
            let _ = std::os::unix::fs::symlink(
                format!("../../devices/fake/{}", d.name),
                root.join("sys/class/block").join(&d.name),
            );
            if !self.st.borrow().static_dev {
                let _ = std::fs::write(root.join("dev").join(&d.name), &d.content);
                self.st
                    .borrow_mut()
                    .nodes
                    .insert(Path::new("/dev").join(&d.name), (d.major, d.minor));
            }
        }
        self.st.borrow_mut().disks.push(d);
    }

    /// Records `call`; its errno when it was told to fail; panics when told to.
    fn rec(&self, call: Call) -> Result<(), Errno> {
        let text = call.to_string();
        let mut st = self.st.borrow_mut();
        let failed = st.failures.iter().find(|(m, _)| m(&call)).map(|(_, e)| *e);
        st.calls.push(call);
        let panic = st.panics.iter().any(|p| text.starts_with(p.as_str()));
        drop(st);
        if panic {
            panic!("the fake was told to panic at `{text}`");
        }
        failed.map_or(Ok(()), Err)
    }

    fn run(&self, call: Call) -> Result<(), SysError> {
        self.rec(call.clone()).map_err(|errno| call.failed(errno))
    }

    fn node(&self, p: &Path) -> Option<(u32, u32)> {
        let st = self.st.borrow();
        st.nodes.get(&normal(&st.cwd, p)).copied()
    }

    fn block_info(devno: (u32, u32)) -> FileInfo {
        FileInfo {
            kind: FileType::BlockDevice,
            mode: 0o60600,
            uid: 0,
            dev: 5,
            ino: 1,
            rdev: super::makedev(devno.0, devno.1),
            size: 0,
        }
    }

    fn meta(&self, p: &Path, follow: bool) -> Result<FileInfo, Errno> {
        if let Some(devno) = self.node(p) {
            return Ok(FakeSys::block_info(devno));
        }
        match self.real(p) {
            Some(real) if follow => files::stat(&real),
            Some(real) => files::lstat(&real),
            None => {
                let st = self.st.borrow();
                if st.dirs.contains(&normal(&st.cwd, p)) {
                    Ok(FileInfo {
                        kind: FileType::Directory,
                        mode: 0o40755,
                        uid: 0,
                        dev: 1,
                        ino: 2,
                        rdev: 0,
                        size: 0,
                    })
                } else {
                    Err(Errno::NOENT)
                }
            }
        }
    }

    fn real_or_noent(&self, p: &Path) -> Result<PathBuf, Errno> {
        self.real(p).ok_or(Errno::NOENT)
    }

    /// The uevent the kernel sends when `d` is added.
    fn add_event(d: &Disk) -> Vec<u8> {
        format!(
            "add@/devices/fake/{0}\0ACTION=add\0DEVPATH=/devices/fake/{0}\0SUBSYSTEM=block\0\
             MAJOR={1}\0MINOR={2}\0DEVNAME={0}\0DEVTYPE=disk\0",
            d.name, d.major, d.minor
        )
        .into_bytes()
    }
}

impl Files for FakeSys {
    fn read(&self, path: &Path) -> Result<Vec<u8>, Errno> {
        std::fs::read(self.real_or_noent(path)?).map_err(|e| errno_of(&e))
    }

    fn read_dir(&self, path: &Path) -> Result<Vec<String>, Errno> {
        let rd = std::fs::read_dir(self.real_or_noent(path)?).map_err(|e| errno_of(&e))?;
        Ok(rd
            .filter_map(|e| e.ok())
            .filter_map(|e| e.file_name().into_string().ok())
            .collect())
    }

    fn canonicalize(&self, path: &Path) -> Option<PathBuf> {
        let real = std::fs::canonicalize(self.real(path)?).ok()?;
        self.virt(&real)
    }

    fn stat(&self, path: &Path) -> Result<FileInfo, Errno> {
        self.meta(path, true)
    }

    fn lstat(&self, path: &Path) -> Result<FileInfo, Errno> {
        self.meta(path, false)
    }

    fn open_ro(&self, path: &Path) -> Result<OpenFile, Errno> {
        files::open_ro(&self.real_or_noent(path)?)
    }

    fn open_in(&self, root: &Path, p: &Path, how: Resolve) -> Result<OpenFile, Errno> {
        files::open_in(&self.real_or_noent(root)?, p, how)
    }

    fn locate(&self, file: &OpenFile) -> Option<PathBuf> {
        self.virt(&file.real_path()?)
    }

    fn writable(&self, dir: &Path) -> bool {
        self.real(dir).is_some_and(|r| r.is_dir())
    }

    fn root_is_ram(&self) -> bool {
        let _ = self.rec(Call::RootIsRam);
        !self.st.borrow().not_ram
    }

    fn write(&self, path: &Path, _data: &[u8]) -> Result<(), Errno> {
        self.rec(Call::Write(path.into()))
    }

    fn is_empty_dir(&self, dir: &OpenFile) -> Result<bool, Errno> {
        dir.is_empty_dir()
    }

    fn write_synced(&self, path: &Path, data: &[u8]) -> Result<(), SysError> {
        self.change(Call::Write(path.into()), path, |real| {
            if real.is_symlink() {
                return Err(std::io::Error::from_raw_os_error(
                    Errno::LOOP.raw_os_error(),
                ));
            }
            std::fs::write(real, data)
        })?;
        self.run(Call::Fsync(path.into()))
    }

    fn rename(&self, from: &Path, to: &Path) -> Result<(), SysError> {
        let target = self.real(to);
        self.change(
            Call::Rename(from.into(), to.into()),
            from,
            |real| match target {
                Some(t) => std::fs::rename(real, t),
                None => Ok(()),
            },
        )
    }

    fn sync_dir(&self, dir: &Path) -> Result<(), SysError> {
        self.run(Call::Fsync(dir.into()))
    }

    fn remove_file(&self, path: &Path) -> Result<(), SysError> {
        self.change(Call::Remove(path.into()), path, |r| std::fs::remove_file(r))
    }

    fn mount_flags(&self, path: &Path) -> Result<MountFlags, SysError> {
        self.run(Call::Statvfs(path.into()))?;
        let real = self.mount_of(path);
        let st = self.st.borrow();
        Ok(real
            .and_then(|r| st.mount_flags.get(&r).copied())
            .unwrap_or(MountFlags::empty()))
    }

    /// Recorded as `write PATH`; made for real in a sandbox.
    fn create_file(&self, path: &Path, data: &[u8], mode: u32) -> Result<(), SysError> {
        use std::os::unix::fs::PermissionsExt;
        self.run(Call::Write(path.into()))?;
        if let Some(real) = self.real(path) {
            let made = std::fs::write(&real, data).and_then(|()| {
                std::fs::set_permissions(&real, std::fs::Permissions::from_mode(mode))
            });
            made.map_err(|e| Call::Write(path.into()).failed(errno_of(&e)))?;
        }
        Ok(())
    }

    fn is_mount_point(&self, path: &Path) -> bool {
        let st = self.st.borrow();
        let p = normal(&st.cwd, path);
        st.table.iter().any(|(v, _)| *v == p)
    }
}

impl Mounts for FakeSys {
    fn mount(
        &self,
        src: &Path,
        target: &Path,
        fstype: &str,
        flags: MountFlags,
        data: &str,
    ) -> Result<(), SysError> {
        let call = Call::Mount {
            source: src.into(),
            target: target.into(),
            fstype: fstype.into(),
            flags,
            data: data.into(),
        };
        self.run(call.clone())?;
        let shown = if self.st.borrow().sandbox.is_none() {
            PathBuf::new()
        } else if flags.contains(MountFlags::BIND) {
            self.real_or_noent(src)
                .map_err(|e| call.clone().failed(e))?
        } else if let Some(devno) = self.node(src) {
            let st = self.st.borrow();
            let disk = st.disks.iter().find(|d| (d.major, d.minor) == devno);
            match disk.and_then(|d| d.tree.clone()) {
                Some(tree) => std::fs::canonicalize(&tree).unwrap_or(tree),
                None => return Err(call.failed(Errno::INVAL)),
            }
        } else {
            // proc, sysfs, devtmpfs, tmpfs: the sandbox's own directory.
            self.real_or_noent(target)
                .map_err(|e| call.clone().failed(e))?
        };
        let mut st = self.st.borrow_mut();
        let at = normal(&st.cwd, target);
        if !flags.contains(MountFlags::BIND) {
            st.mount_flags.insert(shown.clone(), flags);
        }
        st.table.push((at, shown));
        Ok(())
    }

    /// The directory's path (the real fd's link read back through the
    /// mount table), then as [`Mounts::mount`].
    fn mount_on(
        &self,
        src: &Path,
        target: &OpenFile,
        fstype: &str,
        flags: MountFlags,
        data: &str,
    ) -> Result<(), SysError> {
        let at = self.locate(target).unwrap_or_else(|| target.proc_path());
        self.mount(src, &at, fstype, flags, data)
    }

    fn remount_on(&self, target: &OpenFile, flags: MountFlags, data: &str) -> Result<(), SysError> {
        let at = self.locate(target).unwrap_or_else(|| target.proc_path());
        self.remount(&at, flags, data)
    }

    fn remount(&self, t: &Path, flags: MountFlags, data: &str) -> Result<(), SysError> {
        self.run(Call::Remount {
            target: t.into(),
            flags,
            data: data.into(),
        })?;
        if let Some(real) = self.mount_at(t) {
            self.st.borrow_mut().mount_flags.insert(real, flags);
        }
        Ok(())
    }

    fn unmount(&self, t: &Path) -> Result<Unmounted, SysError> {
        self.run(Call::Unmount(t.into()))?;
        let mut st = self.st.borrow_mut();
        let at = normal(&st.cwd, t);
        if let Some(i) = st.table.iter().rposition(|(v, _)| *v == at) {
            st.table.remove(i);
        }
        Ok(if st.busy.contains(t) {
            Unmounted::Detached
        } else {
            Unmounted::Clean
        })
    }

    /// A mount made busy (`with_busy`) stays, with EBUSY.
    fn try_unmount(&self, t: &Path) -> Result<(), SysError> {
        self.run(Call::Unmount(t.into()))?;
        let mut st = self.st.borrow_mut();
        if st.busy.contains(t) {
            return Err(Call::Unmount(t.into()).failed(Errno::BUSY));
        }
        let at = normal(&st.cwd, t);
        if let Some(i) = st.table.iter().rposition(|(v, _)| *v == at) {
            st.table.remove(i);
        }
        Ok(())
    }

    fn make_private(&self) -> Result<(), SysError> {
        self.run(Call::MakePrivate)
    }

    fn mkdir(&self, p: &Path) -> Result<(), SysError> {
        self.run(Call::Mkdir(p.into()))?;
        if let Some(real) = self.real(p) {
            match std::fs::create_dir(&real) {
                Ok(()) => {}
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
                Err(e) => return Err(Call::Mkdir(p.into()).failed(errno_of(&e))),
            }
        }
        let mut st = self.st.borrow_mut();
        let at = normal(&st.cwd, p);
        st.dirs.insert(at);
        Ok(())
    }

    /// Recorded as `mkdir` of the path the parent is at; made for real
    /// (mkdirat on the real descriptor).
    fn mkdir_at(&self, parent: &OpenFile, name: &OsStr) -> Result<(), SysError> {
        let at = self
            .locate(parent)
            .unwrap_or_else(|| parent.proc_path())
            .join(name);
        self.run(Call::Mkdir(at.clone()))?;
        parent
            .mkdir_at(name)
            .map_err(|e| Call::Mkdir(at.clone()).failed(e))?;
        self.st.borrow_mut().dirs.insert(at);
        Ok(())
    }

    fn remove_dir(&self, p: &Path) -> Result<(), SysError> {
        self.change(Call::Remove(p.into()), p, |r| std::fs::remove_dir(r))?;
        let mut st = self.st.borrow_mut();
        let at = normal(&st.cwd, p);
        st.dirs.remove(&at);
        Ok(())
    }

    fn mknod_block(&self, p: &Path, major: u32, minor: u32) -> Result<(), SysError> {
        self.run(Call::Mknod(p.into(), major, minor))?;
        if let Some(real) = self.real(p) {
            let st = self.st.borrow();
            let disk = st
                .disks
                .iter()
                .find(|d| (d.major, d.minor) == (major, minor));
            let _ = std::fs::write(real, disk.map(|d| d.content.clone()).unwrap_or_default());
        }
        let mut st = self.st.borrow_mut();
        let at = normal(&st.cwd, p);
        st.nodes.insert(at, (major, minor));
        Ok(())
    }

    fn pivot_root(&self, n: &Path, o: &Path) -> Result<(), SysError> {
        self.run(Call::PivotRoot(n.into(), o.into()))?;
        let mut st = self.st.borrow_mut();
        let new = normal(&st.cwd, n);
        let put_old = normal(&st.cwd, o);
        let old_at = rebase(&put_old, &new, Path::new("/"));
        let root = Path::new("/");
        let mut table: Vec<(PathBuf, PathBuf)> = Vec::new();
        // The old tree goes under the put-old directory; the new root's
        // mounts become the top of the tree.
        for (v, r) in &st.table {
            if !v.starts_with(&new) {
                table.push((rebase(v, root, &old_at), r.clone()));
            }
        }
        for (v, r) in &st.table {
            if v.starts_with(&new) {
                table.push((rebase(v, &new, root), r.clone()));
            }
        }
        st.table = table;
        st.nodes = std::mem::take(&mut st.nodes)
            .into_iter()
            .map(|(p, d)| (rebase(&p, root, &old_at), d))
            .collect();
        st.cwd = if st.cwd.starts_with(&new) {
            rebase(&st.cwd, &new, root)
        } else {
            rebase(&st.cwd, root, &old_at)
        };
        Ok(())
    }

    fn chdir(&self, p: &Path) -> Result<(), SysError> {
        self.run(Call::Chdir(p.into()))?;
        let mut st = self.st.borrow_mut();
        st.cwd = normal(&st.cwd, p);
        Ok(())
    }

    fn move_mount(&self, f: &Path, t: &Path) -> Result<(), SysError> {
        self.run(Call::Move(f.into(), t.into()))?;
        let mut st = self.st.borrow_mut();
        let (from, to) = (normal(&st.cwd, f), normal(&st.cwd, t));
        let (moved, kept): (Vec<_>, Vec<_>) = std::mem::take(&mut st.table)
            .into_iter()
            .partition(|(v, _)| v.starts_with(&from) && from != Path::new("/"));
        st.table = kept;
        st.table
            .extend(moved.into_iter().map(|(v, r)| (rebase(&v, &from, &to), r)));
        st.nodes = std::mem::take(&mut st.nodes)
            .into_iter()
            .map(|(p, d)| (rebase(&p, &from, &to), d))
            .collect();
        Ok(())
    }

    fn chroot(&self, p: &Path) -> Result<(), SysError> {
        self.run(Call::Chroot(p.into()))
    }

    fn free_initramfs(&self) -> (usize, u64) {
        let _ = self.rec(Call::FreeInitramfs);
        (3, 4096)
    }
}

impl Procs for FakeSys {
    fn spawn(
        &self,
        _prog: Program,
        argv: &[CString],
        _envp: &[CString],
        _opts: &SpawnOpts,
    ) -> Result<Child, Errno> {
        let args = argv
            .iter()
            .map(|a| a.to_string_lossy().into_owned())
            .collect();
        self.rec(Call::Spawn(args))?;
        Ok(Child {
            pid: Pid::from_raw(4242).ok_or(Errno::INVAL)?,
            own_pid_ns: true,
        })
    }

    /// Recorded as `spawn ARGS`; the output set with `child_output`, then
    /// the exit set with `child_exits` (one that never comes: `Other`).
    fn run_logged(
        &self,
        _prog: Program,
        argv: &[CString],
        _envp: &[CString],
        _opts: &SpawnOpts,
        line: &mut dyn FnMut(&str),
    ) -> Result<Exit, Errno> {
        let args = argv
            .iter()
            .map(|a| a.to_string_lossy().into_owned())
            .collect();
        self.rec(Call::Spawn(args))?;
        let output = self.st.borrow().child_output.clone();
        let mut lines = super::process::LineSplitter::default();
        lines.feed(&output, line);
        lines.finish(line);
        Ok(self.st.borrow().child_exit.unwrap_or(Exit::Other))
    }

    fn wait_child(&self, _pid: Pid, _timeout: Option<Duration>) -> Result<Option<Exit>, Errno> {
        Ok(self.st.borrow().child_exit)
    }

    fn kill_group(&self, _pgid: Pid, _grace: Duration) {}

    fn reap_children(&self) -> usize {
        0
    }

    fn clean_for_exec(&self) {}

    fn exec(&self, _prog: Program, argv: &[CString], _envp: &[CString]) -> Result<End, Errno> {
        let path = PathBuf::from(
            argv.first()
                .map(|a| a.to_string_lossy().into_owned())
                .unwrap_or_default(),
        );
        self.rec(Call::Exec(path.clone()))?;
        Ok(End::Exec(path))
    }

    fn halt(&self, how: Halt) -> Result<End, SysError> {
        self.run(Call::Halt(how))?;
        Ok(End::Halt(how))
    }

    /// The queued signals first (the first Ctrl-Alt-Del or SIGPWR is a
    /// request; the others are passed over), then the child's scripted
    /// end; without a child, or one that never ends, [`Supervised::Forever`].
    fn supervise(&self, child: Option<Pid>) -> Supervised {
        loop {
            let next = self.st.borrow_mut().signals.pop_front();
            match next {
                Some(Sig::CtrlAltDel) => return Supervised::Requested(Halt::Reboot),
                Some(Sig::Power) => return Supervised::Requested(Halt::PowerOff),
                Some(_) => {}
                None => break,
            }
        }
        match (child, self.st.borrow().child_exit) {
            (Some(_), Some(exit)) => Supervised::Exited(exit),
            _ => Supervised::Forever,
        }
    }

    fn kexec_reboot(&self) -> Result<End, SysError> {
        self.run(Call::KexecReboot)?;
        Ok(End::Kexec)
    }
}

impl Kernel for FakeSys {
    fn uname(&self) -> Uname {
        let machine = self.st.borrow().machine.clone();
        Uname {
            release: RELEASE.into(),
            machine: machine.unwrap_or_else(|| std::env::consts::ARCH.into()),
        }
    }

    fn runs_32bit(&self) -> bool {
        self.st.borrow().runs_32bit
    }

    fn load_module(&self, file: &OpenFile, _params: &CStr, _flags: i32) -> Result<(), Errno> {
        let at = self.locate(file).unwrap_or_default();
        self.rec(Call::LoadModule(at))
    }

    fn open_log(&self) -> Option<std::fs::File> {
        None
    }

    fn now_secs(&self) -> u64 {
        NOW
    }

    fn console_fds(&self) {}

    fn nvme_identify_controller(&self, _dev: &Path) -> Result<Vec<u8>, Errno> {
        Err(Errno::NOTTY)
    }

    fn block_read_only(&self, dev: &Path) -> Result<bool, Errno> {
        self.node(dev).ok_or(Errno::NOENT)?;
        Ok(self.st.borrow().read_only.contains(dev))
    }

    /// Recorded with where the files are (as this process sees them) and
    /// the line; fails as told (`fail("kexec_file_load", ...)`).
    fn kexec_file_probe(&self) -> Result<(), Errno> {
        self.rec(Call::KexecUnload)
    }

    fn kexec_file_load(
        &self,
        kernel: &OpenFile,
        initrd: Option<&OpenFile>,
        cmdline: &CStr,
    ) -> Result<(), Errno> {
        self.rec(Call::KexecLoad {
            kernel: self.locate(kernel).unwrap_or_default(),
            initrd: initrd.map(|f| self.locate(f).unwrap_or_default()),
            cmdline: cmdline.to_string_lossy().into_owned(),
        })
    }

    fn set_block_read_only(&self, dev: &Path, ro: bool) -> Result<(), SysError> {
        self.run(Call::SetReadOnly(dev.into(), ro))?;
        let mut st = self.st.borrow_mut();
        if ro {
            st.read_only.insert(dev.into());
        } else {
            st.read_only.remove(dev);
        }
        Ok(())
    }
}

impl Events for FakeSys {
    fn uevents_open(&self) -> Result<(), SysError> {
        if !self.st.borrow().subscribed {
            self.run(Call::Netlink("socket"))?;
            self.st.borrow_mut().subscribed = true;
        }
        Ok(())
    }

    fn uevents_close(&self) {
        self.st.borrow_mut().subscribed = false;
    }

    fn watch_signals(&self, _on: bool) -> Result<(), Errno> {
        Ok(())
    }

    fn wait_ready(&self, timeout: Duration) -> Result<Ready, SysError> {
        if !self.st.borrow().signals.is_empty() {
            return Ok(Ready {
                uevent: false,
                signal: true,
            });
        }
        if self.st.borrow().queued.is_empty() {
            let next = self.st.borrow_mut().arrivals.pop_front();
            match next {
                Some(d) => {
                    let ev = FakeSys::add_event(&d);
                    self.materialize(d);
                    self.st.borrow_mut().queued.push_back(ev);
                }
                None => {
                    std::thread::sleep(timeout.min(Duration::from_millis(20)));
                    return Ok(Ready::default());
                }
            }
        }
        Ok(Ready {
            uevent: true,
            signal: false,
        })
    }

    fn recv_uevent<'b>(&self, buf: &'b mut [u8]) -> Result<Recv<'b>, SysError> {
        let Some(msg) = self.st.borrow_mut().queued.pop_front() else {
            return Ok(Recv::Empty);
        };
        let n = msg.len().min(buf.len());
        buf[..n].copy_from_slice(&msg[..n]);
        Ok(Recv::Message(&buf[..n]))
    }

    fn next_signal(&self) -> Option<Sig> {
        self.st.borrow_mut().signals.pop_front()
    }
}
