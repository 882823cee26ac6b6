//! The machine: every trait of the boundary on rustix (and libc where
//! rustix has no call).

use std::cell::{Cell, OnceCell};
use std::ffi::{CStr, CString, OsStr};
use std::path::{Path, PathBuf};
use std::time::Duration;

use rustix::fs::{Mode, OFlags};
use rustix::mount::{MountPropagationFlags, UnmountFlags};

use super::files::{self, FileInfo, OpenFile, Resolve};
use super::process::{self, Child, Exit, Program, SpawnOpts, Supervised};
use super::signals::{self, Sig, SignalFd};
use super::uevent_socket::{Ready, Recv, UeventSocket};
use super::{
    End, Errno, Events, FileType, Files, Halt, Kernel, MountFlags, Mounts, Op, Pid, Procs,
    SysError, Uname, Unmounted,
};

/// The real system. It holds the uevent subscription and the signal
/// descriptor while they are open (taken out and put back around each use,
/// so no borrow can fail).
#[derive(Default)]
pub struct RealSys {
    uevents: Cell<Option<UeventSocket>>,
    signals: Cell<Option<SignalFd>>,
    /// What does not change while the kernel runs, once read: its command
    /// line, and whether it runs 32-bit programs.
    cmdline: OnceCell<Vec<u8>>,
    runs_32bit: OnceCell<bool>,
}

impl RealSys {
    /// PID 1's start as the kernel started it: Ctrl-Alt-Del as a SIGINT
    /// that the wait takes as a reboot request. The kernel starts PID 1
    /// with every signal disposition default and an empty mask, and
    /// pivot-init changes no disposition (it takes its signals through a
    /// signalfd, and `no_main` leaves out the Rust runtime's start-up, which
    /// would ignore SIGPIPE), so nothing is reset here; every child starts
    /// clean ([`Procs::spawn`]) and the mask is emptied before every exec
    /// ([`Procs::clean_for_exec`]).
    pub fn pid1_signals(&self) {
        signals::ctrl_alt_del_reboots(false);
    }

    /// PID 1 started by a program (systemd's shutdown execs PID 1's second
    /// life): every signal disposition back to default and an empty mask,
    /// whatever it had, then [`RealSys::pid1_signals`].
    pub fn pid1_signals_reset(&self) {
        signals::reset_all();
        self.pid1_signals();
    }
}

fn c_string(s: &str) -> Result<CString, Errno> {
    CString::new(s).map_err(|_| Errno::INVAL)
}

impl Files for RealSys {
    fn read(&self, path: &Path) -> Result<Vec<u8>, Errno> {
        files::read(path)
    }

    fn cmdline(&self) -> Result<Vec<u8>, Errno> {
        if let Some(line) = self.cmdline.get() {
            return Ok(line.clone());
        }
        let line = files::read(Path::new("/proc/cmdline"))?;
        Ok(self.cmdline.get_or_init(|| line).clone())
    }

    fn read_dir(&self, path: &Path) -> Result<Vec<String>, Errno> {
        files::read_dir(path)
    }

    fn canonicalize(&self, path: &Path) -> Option<PathBuf> {
        files::canonicalize(path)
    }

    fn stat(&self, path: &Path) -> Result<FileInfo, Errno> {
        files::stat(path)
    }

    fn lstat(&self, path: &Path) -> Result<FileInfo, Errno> {
        files::lstat(path)
    }

    fn open_ro(&self, path: &Path) -> Result<OpenFile, Errno> {
        files::open_ro(path)
    }

    fn open_in(&self, root: &Path, p: &Path, how: Resolve) -> Result<OpenFile, Errno> {
        files::open_in(root, p, how)
    }

    fn locate(&self, file: &OpenFile) -> Option<PathBuf> {
        file.real_path()
    }

    fn writable(&self, dir: &Path) -> bool {
        rustix::fs::access(dir, rustix::fs::Access::WRITE_OK).is_ok()
    }

    fn api_dir(&self, path: &Path, root: Option<&FileInfo>) -> Option<bool> {
        match (files::lstat(path), root) {
            // A directory itself (no link) right under `/`: its `..` is `/`.
            (Ok(st), Some(root))
                if st.kind == FileType::Directory && path.parent() == Some(Path::new("/")) =>
            {
                Some(st.dev != root.dev || st.ino == root.ino)
            }
            // Nothing there: neither would stat find anything.
            (Err(_), _) => None,
            _ if self.is_mount_point(path) => Some(true),
            _ => self.is_dir(path).then_some(false),
        }
    }

    fn root_is_ram(&self) -> bool {
        const RAMFS_MAGIC: u64 = 0x8584_58f6;
        const TMPFS_MAGIC: u64 = 0x0102_1994;
        rustix::fs::statfs("/").is_ok_and(|st| {
            let t = st.f_type as u64;
            t == RAMFS_MAGIC || t == TMPFS_MAGIC
        })
    }

    fn write(&self, path: &Path, data: &[u8]) -> Result<(), Errno> {
        files::write(path, data)
    }

    fn is_empty_dir(&self, dir: &OpenFile) -> Result<bool, Errno> {
        dir.is_empty_dir()
    }

    fn write_synced(&self, path: &Path, data: &[u8]) -> Result<(), SysError> {
        let failed = |errno| Op::Write(path.into()).failed(errno);
        let flags = OFlags::WRONLY | OFlags::CREATE | OFlags::TRUNC | OFlags::NOFOLLOW;
        let fd = rustix::fs::open(path, flags | OFlags::CLOEXEC, Mode::from_raw_mode(0o644))
            .map_err(failed)?;
        let mut rest = data;
        while !rest.is_empty() {
            match rustix::io::write(&fd, rest) {
                Ok(0) => return Err(failed(Errno::IO)),
                Ok(n) => rest = rest.get(n..).unwrap_or_default(),
                Err(Errno::INTR) => {}
                Err(e) => return Err(failed(e)),
            }
        }
        rustix::fs::fsync(&fd).map_err(|errno| Op::Fsync(path.into()).failed(errno))
    }

    fn rename(&self, from: &Path, to: &Path) -> Result<(), SysError> {
        rustix::fs::rename(from, to)
            .map_err(|errno| Op::Rename(from.into(), to.into()).failed(errno))
    }

    fn sync_dir(&self, dir: &Path) -> Result<(), SysError> {
        let flags = OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC;
        rustix::fs::open(dir, flags, Mode::empty())
            .and_then(rustix::fs::fsync)
            .map_err(|errno| Op::Fsync(dir.into()).failed(errno))
    }

    fn remove_file(&self, path: &Path) -> Result<(), SysError> {
        rustix::fs::unlink(path).map_err(|errno| Op::Remove(path.into()).failed(errno))
    }

    fn mount_flags(&self, path: &Path) -> Result<MountFlags, SysError> {
        use rustix::fs::StatVfsMountFlags as St;
        let st =
            rustix::fs::statvfs(path).map_err(|errno| Op::Statvfs(path.into()).failed(errno))?;
        // The ST_* bits are not all the MS_* bits (ST_RELATIME is 0x1000,
        // MS_RELATIME 1 << 21): each is named. (Mandatory locking is gone
        // since Linux 5.15: ST_MANDLOCK is never given back.)
        let map = [
            (St::RDONLY, MountFlags::RDONLY),
            (St::NOSUID, MountFlags::NOSUID),
            (St::NODEV, MountFlags::NODEV),
            (St::NOEXEC, MountFlags::NOEXEC),
            (St::SYNCHRONOUS, MountFlags::SYNCHRONOUS),
            (St::NOATIME, MountFlags::NOATIME),
            (St::NODIRATIME, MountFlags::NODIRATIME),
            (St::RELATIME, MountFlags::RELATIME),
        ];
        Ok(map
            .into_iter()
            .filter(|(st_flag, _)| st.f_flag.contains(*st_flag))
            .fold(MountFlags::empty(), |acc, (_, ms)| acc | ms))
    }

    fn create_file(&self, path: &Path, data: &[u8], mode: u32) -> Result<(), SysError> {
        files::create_file(path, data, mode).map_err(|errno| Op::Write(path.into()).failed(errno))
    }
}

/// `mount(2)` on `target` (a path, or the `/proc/self/fd/N` of an open
/// directory); a failure names `shown`.
fn mount_at(
    source: &Path,
    target: &Path,
    shown: &Path,
    fstype: &str,
    flags: MountFlags,
    data: &str,
) -> Result<(), SysError> {
    let r = c_string(data).and_then(|data_c| {
        let data_arg = (!data.is_empty()).then_some(data_c.as_c_str());
        rustix::mount::mount(source, target, fstype, flags, data_arg)
    });
    r.map_err(|errno| {
        Op::Mount {
            source: source.into(),
            target: shown.into(),
            fstype: fstype.into(),
            flags,
            data: data.into(),
        }
        .failed(errno)
    })
}

/// Where an open directory is, for a message (its `/proc/self/fd/N` when
/// /proc cannot tell).
fn shown(f: &OpenFile) -> PathBuf {
    f.real_path().unwrap_or_else(|| f.proc_path())
}

impl Mounts for RealSys {
    fn mount(
        &self,
        source: &Path,
        target: &Path,
        fstype: &str,
        flags: MountFlags,
        data: &str,
    ) -> Result<(), SysError> {
        mount_at(source, target, target, fstype, flags, data)
    }

    fn mount_on(
        &self,
        source: &Path,
        target: &OpenFile,
        fstype: &str,
        flags: MountFlags,
        data: &str,
    ) -> Result<(), SysError> {
        let at = target.proc_path();
        mount_at(source, &at, &shown(target), fstype, flags, data)
    }

    fn remount_on(&self, target: &OpenFile, flags: MountFlags, data: &str) -> Result<(), SysError> {
        rustix::mount::mount_remount(target.proc_path(), flags, data).map_err(|errno| {
            Op::Remount {
                target: shown(target),
                flags,
                data: data.into(),
            }
            .failed(errno)
        })
    }

    fn remount(&self, target: &Path, flags: MountFlags, data: &str) -> Result<(), SysError> {
        rustix::mount::mount_remount(target, flags, data).map_err(|errno| {
            Op::Remount {
                target: target.into(),
                flags,
                data: data.into(),
            }
            .failed(errno)
        })
    }

    fn unmount(&self, target: &Path) -> Result<Unmounted, SysError> {
        let r = match rustix::mount::unmount(target, UnmountFlags::empty()) {
            Ok(()) => Ok(Unmounted::Clean),
            Err(Errno::BUSY) => {
                rustix::mount::unmount(target, UnmountFlags::DETACH).map(|()| Unmounted::Detached)
            }
            Err(e) => Err(e),
        };
        r.map_err(|errno| Op::Unmount(target.into()).failed(errno))
    }

    fn try_unmount(&self, target: &Path) -> Result<(), SysError> {
        rustix::mount::unmount(target, UnmountFlags::empty())
            .map_err(|errno| Op::Unmount(target.into()).failed(errno))
    }

    fn make_private(&self) -> Result<(), SysError> {
        rustix::mount::mount_change(
            "/",
            MountPropagationFlags::PRIVATE | MountPropagationFlags::REC,
        )
        .map_err(|errno| Op::MakePrivate.failed(errno))
    }

    fn mkdir(&self, path: &Path) -> Result<(), SysError> {
        // Most directories asked for are there (the volume's /dev, /proc,
        // /sys): one stat says so, where mkdir would fail and stat follow.
        if self.is_dir(path) {
            return Ok(());
        }
        match rustix::fs::mkdir(path, Mode::from_raw_mode(0o755)) {
            Ok(()) => Ok(()),
            Err(Errno::EXIST) if self.is_dir(path) => Ok(()),
            Err(errno) => Err(Op::Mkdir(path.into()).failed(errno)),
        }
    }

    fn mkdir_at(&self, parent: &OpenFile, name: &OsStr) -> Result<(), SysError> {
        parent
            .mkdir_at(name)
            .map_err(|errno| Op::Mkdir(shown(parent).join(name)).failed(errno))
    }

    fn remove_dir(&self, path: &Path) -> Result<(), SysError> {
        rustix::fs::rmdir(path).map_err(|errno| Op::Remove(path.into()).failed(errno))
    }

    fn mknod_block(&self, path: &Path, major: u32, minor: u32) -> Result<(), SysError> {
        rustix::fs::mknodat(
            rustix::fs::CWD,
            path,
            FileType::BlockDevice,
            Mode::from_raw_mode(0o600),
            rustix::fs::makedev(major, minor),
        )
        .map_err(|errno| Op::Mknod(path.into(), major, minor).failed(errno))
    }

    fn pivot_root(&self, new_root: &Path, put_old: &Path) -> Result<(), SysError> {
        rustix::process::pivot_root(new_root, put_old)
            .map_err(|errno| Op::PivotRoot(new_root.into(), put_old.into()).failed(errno))
    }

    fn chdir(&self, path: &Path) -> Result<(), SysError> {
        rustix::process::chdir(path).map_err(|errno| Op::Chdir(path.into()).failed(errno))
    }

    fn move_mount(&self, from: &Path, to: &Path) -> Result<(), SysError> {
        rustix::mount::mount_move(from, to)
            .map_err(|errno| Op::Move(from.into(), to.into()).failed(errno))
    }

    fn chroot(&self, path: &Path) -> Result<(), SysError> {
        rustix::process::chroot(path).map_err(|errno| Op::Chroot(path.into()).failed(errno))
    }

    fn free_initramfs(&self) -> (usize, u64) {
        files::free_initramfs()
    }
}

impl Procs for RealSys {
    fn spawn(
        &self,
        prog: Program,
        argv: &[CString],
        envp: &[CString],
        opts: &SpawnOpts,
    ) -> Result<Child, Errno> {
        process::spawn(prog, argv, envp, opts)
    }

    fn run_logged(
        &self,
        prog: Program,
        argv: &[CString],
        envp: &[CString],
        opts: &SpawnOpts,
        line: &mut dyn FnMut(&str),
    ) -> Result<Exit, Errno> {
        process::run_logged(prog, argv, envp, opts, line)
    }

    fn wait_child(&self, pid: Pid, timeout: Option<Duration>) -> Result<Option<Exit>, Errno> {
        match timeout {
            None => process::wait_child(pid).map(Some),
            Some(t) => process::wait_child_for(pid, t),
        }
    }

    fn kill_group(&self, pgid: Pid, grace: Duration) {
        process::kill_group(pgid, grace)
    }

    fn reap_children(&self) -> usize {
        process::reap_children()
    }

    fn clean_for_exec(&self) {
        signals::unblock_all();
        signals::cloexec_from(3);
        signals::ctrl_alt_del_reboots(true);
    }

    fn exec(&self, prog: Program, argv: &[CString], envp: &[CString]) -> Result<End, Errno> {
        Err(process::exec(prog, argv, envp))
    }

    fn halt(&self, how: Halt) -> Result<End, SysError> {
        rustix::fs::sync();
        let cmd = match how {
            Halt::Reboot => rustix::system::RebootCommand::Restart,
            Halt::PowerOff => rustix::system::RebootCommand::PowerOff,
            Halt::Halt => rustix::system::RebootCommand::Halt,
            Halt::Kexec => rustix::system::RebootCommand::Kexec,
        };
        let errno = rustix::system::reboot(cmd).err().unwrap_or(Errno::INVAL);
        Err(Op::Halt(how).failed(errno))
    }

    fn supervise(&self, child: Option<Pid>) -> Supervised {
        process::supervise(child)
    }

    fn kexec_reboot(&self) -> Result<End, SysError> {
        // reboot(2) with LINUX_REBOOT_CMD_KEXEC does not sync.
        rustix::fs::sync();
        let errno = rustix::system::reboot(rustix::system::RebootCommand::Kexec)
            .err()
            .unwrap_or(Errno::INVAL);
        Err(Op::KexecReboot.failed(errno))
    }
}

impl Kernel for RealSys {
    fn uname(&self) -> Uname {
        let u = rustix::system::uname();
        Uname {
            release: u.release().to_string_lossy().into_owned(),
            machine: u.machine().to_string_lossy().into_owned(),
        }
    }

    fn load_module(&self, file: &OpenFile, params: &CStr, flags: i32) -> Result<(), Errno> {
        rustix::system::finit_module(file.fd(), params, flags)
    }

    fn open_log(&self) -> Option<std::fs::File> {
        let flags = OFlags::WRONLY | OFlags::CLOEXEC;
        rustix::fs::open("/dev/kmsg", flags, Mode::empty())
            .ok()
            .map(std::fs::File::from)
    }

    fn console_fds(&self) {
        use std::os::fd::{AsRawFd, IntoRawFd};
        for _ in 0..3 {
            match rustix::fs::open("/dev/console", OFlags::RDWR, Mode::empty()) {
                // The lowest free fd is returned: below 3 means a std fd was missing; keep it.
                Ok(fd) if fd.as_raw_fd() < 3 => {
                    let _ = fd.into_raw_fd();
                }
                _ => return,
            }
        }
    }

    fn block_read_only(&self, dev: &Path) -> Result<bool, Errno> {
        let fd = open_block(dev)?;
        // SAFETY: BLKROGET writes one `int` through the pointer the Getter
        // passes, which points at its own `c_int`.
        let ro = unsafe {
            let get = rustix::ioctl::Getter::<BLKROGET, libc::c_int>::new();
            rustix::ioctl::ioctl(&fd, get)?
        };
        Ok(ro != 0)
    }

    fn set_block_read_only(&self, dev: &Path, ro: bool) -> Result<(), SysError> {
        let set = || -> Result<(), Errno> {
            let fd = open_block(dev)?;
            // SAFETY: BLKROSET reads one `int` through the pointer the
            // Setter passes, which points at its own `c_int`.
            unsafe {
                let set =
                    rustix::ioctl::Setter::<BLKROSET, libc::c_int>::new(libc::c_int::from(ro));
                rustix::ioctl::ioctl(&fd, set)
            }
        };
        set().map_err(|errno| Op::SetReadOnly(dev.into(), ro).failed(errno))
    }

    fn runs_32bit(&self) -> bool {
        if let Some(known) = self.runs_32bit.get() {
            return *known;
        }
        let machine = self.uname().machine;
        let runs = match machine.as_str() {
            "aarch64" => arm64_compat(),
            // The directory exists whenever CONFIG_IA32_EMULATION is built in,
            // also when `ia32_emulation=0` turned it off.
            "x86_64" => self.exists(Path::new("/proc/sys/abi/vsyscall32")),
            _ => false,
        };
        // A `no` from x86_64 may only mean /proc is not mounted yet: asked again.
        if runs || machine != "x86_64" {
            let _ = self.runs_32bit.set(runs);
        }
        runs
    }

    fn kexec_file_probe(&self) -> Result<(), Errno> {
        let Some(nr) = SYS_KEXEC_FILE_LOAD else {
            return Err(Errno::NOSYS);
        };
        // SAFETY: with KEXEC_FILE_UNLOAD the kernel reads no descriptor and
        // no memory (the command line pointer is null, its length 0).
        let r = unsafe {
            libc::syscall(
                nr,
                -1 as libc::c_long,
                -1 as libc::c_long,
                0 as libc::c_ulong,
                std::ptr::null::<libc::c_char>(),
                KEXEC_FILE_UNLOAD as libc::c_ulong,
            )
        };
        if r < 0 {
            return Err(Errno::from_raw_os_error(
                std::io::Error::last_os_error().raw_os_error().unwrap_or(0),
            ));
        }
        Ok(())
    }

    fn kexec_file_load(
        &self,
        kernel: &OpenFile,
        initrd: Option<&OpenFile>,
        cmdline: &CStr,
    ) -> Result<(), Errno> {
        use std::os::fd::AsRawFd;
        let Some(nr) = SYS_KEXEC_FILE_LOAD else {
            return Err(Errno::NOSYS);
        };
        let initrd_fd = initrd.map_or(-1, |f| f.fd().as_raw_fd());
        let flags = match initrd {
            Some(_) => 0,
            None => KEXEC_FILE_NO_INITRAMFS,
        };
        let line = cmdline.to_bytes_with_nul();
        // SAFETY: kexec_file_load(kernel_fd, initrd_fd, cmdline_len,
        // cmdline, flags) reads `cmdline_len` bytes at `cmdline` (the C
        // string with its NUL, as the kernel wants the last byte to be NUL),
        // valid for the call, and the two descriptors, which the borrowed
        // files keep open; it writes no memory of ours.
        let r = unsafe {
            libc::syscall(
                nr,
                kernel.fd().as_raw_fd() as libc::c_long,
                initrd_fd as libc::c_long,
                line.len() as libc::c_ulong,
                line.as_ptr(),
                flags as libc::c_ulong,
            )
        };
        if r < 0 {
            return Err(Errno::from_raw_os_error(
                std::io::Error::last_os_error().raw_os_error().unwrap_or(0),
            ));
        }
        Ok(())
    }

    fn nvme_identify_controller(&self, dev: &Path) -> Result<Vec<u8>, Errno> {
        use std::os::fd::AsRawFd;
        /// struct nvme_passthru_cmd of <linux/nvme_ioctl.h> (72 bytes).
        #[repr(C)]
        #[derive(Default)]
        struct PassthruCmd {
            opcode: u8,
            flags: u8,
            rsvd1: u16,
            nsid: u32,
            cdw2: u32,
            cdw3: u32,
            metadata: u64,
            addr: u64,
            metadata_len: u32,
            data_len: u32,
            cdw10: u32,
            cdw11: u32,
            cdw12: u32,
            cdw13: u32,
            cdw14: u32,
            cdw15: u32,
            timeout_ms: u32,
            result: u32,
        }
        /// _IOWR('N', 0x41, struct nvme_admin_cmd)
        const NVME_IOCTL_ADMIN_CMD: libc::c_ulong = 0xC048_4E41;
        let file = files::open_ro(dev)?;
        let mut buf = vec![0u8; 4096];
        let mut cmd = PassthruCmd {
            opcode: 0x06, // Identify
            addr: buf.as_mut_ptr() as u64,
            data_len: 4096,
            cdw10: 1, // CNS 1: the controller
            timeout_ms: 5000,
            ..PassthruCmd::default()
        };
        // SAFETY: the command is a valid struct nvme_passthru_cmd whose data
        // pointer addresses `buf`, 4096 writable bytes that outlive the call; the
        // kernel writes at most data_len bytes there and the result into `cmd`.
        let r = unsafe {
            libc::ioctl(
                file.fd().as_raw_fd(),
                NVME_IOCTL_ADMIN_CMD as _,
                &mut cmd as *mut PassthruCmd,
            )
        };
        if r < 0 {
            return Err(Errno::from_raw_os_error(
                std::io::Error::last_os_error().raw_os_error().unwrap_or(0),
            ));
        }
        Ok(buf)
    }
}

/// The number of `kexec_file_load` (rustix has no call for it, and the
/// libc crate has no number for musl on aarch64): x86_64 320, aarch64 294
/// (asm-generic/unistd.h); elsewhere the boot says ENOSYS.
#[cfg(target_arch = "x86_64")]
const SYS_KEXEC_FILE_LOAD: Option<libc::c_long> = Some(320);
#[cfg(target_arch = "aarch64")]
const SYS_KEXEC_FILE_LOAD: Option<libc::c_long> = Some(294);
#[cfg(not(any(target_arch = "x86_64", target_arch = "aarch64")))]
const SYS_KEXEC_FILE_LOAD: Option<libc::c_long> = None;
/// `KEXEC_FILE_UNLOAD` and `KEXEC_FILE_NO_INITRAMFS` of <linux/kexec.h>.
const KEXEC_FILE_UNLOAD: libc::c_int = 1;
const KEXEC_FILE_NO_INITRAMFS: libc::c_int = 4;

/// `_IO(0x12, 93)` and `_IO(0x12, 94)` of <linux/fs.h>: both pass an `int *`.
const BLKROSET: rustix::ioctl::Opcode = rustix::ioctl::opcode::none(0x12, 93);
const BLKROGET: rustix::ioctl::Opcode = rustix::ioctl::opcode::none(0x12, 94);

fn open_block(dev: &Path) -> Result<std::os::fd::OwnedFd, Errno> {
    let flags = OFlags::RDONLY | OFlags::CLOEXEC | OFlags::NONBLOCK;
    rustix::fs::open(dev, flags, Mode::empty())
}

/// Whether an arm64 kernel runs 32-bit ARM programs. It lets a process
/// take the `PER_LINUX32` personality only when its CPUs run AArch32 at EL0
/// (`arm64_personality` says EINVAL otherwise), and under that personality
/// `uname` says `armv8l` (`armv8b` big-endian) only when it is built with
/// `CONFIG_COMPAT` (`COMPAT_UTS_MACHINE`). The personality is put back at once.
fn arm64_compat() -> bool {
    const PER_LINUX32: libc::c_ulong = 0x0008;
    const PER_MASK: libc::c_ulong = 0x00ff;
    const QUERY: libc::c_ulong = 0xffff_ffff;
    // SAFETY: personality(2) takes an integer and touches no memory; with
    // 0xffffffff it only reports the current personality.
    let Ok(old) = libc::c_ulong::try_from(unsafe { libc::personality(QUERY) }) else {
        return false;
    };
    // SAFETY: as above; the flags of the current personality are kept.
    if unsafe { libc::personality((old & !PER_MASK) | PER_LINUX32) } < 0 {
        return false;
    }
    let machine = rustix::system::uname().machine().to_bytes().to_vec();
    // SAFETY: as above; the personality this process had (it was accepted before).
    unsafe { libc::personality(old) };
    machine.starts_with(b"armv8")
}

impl Events for RealSys {
    fn uevents_open(&self) -> Result<(), SysError> {
        let sock = match self.uevents.take() {
            Some(s) => s,
            None => UeventSocket::subscribe()?,
        };
        self.uevents.set(Some(sock));
        Ok(())
    }

    fn uevents_close(&self) {
        drop(self.uevents.take());
    }

    fn watch_signals(&self, on: bool) -> Result<(), Errno> {
        // Dropping the descriptor unblocks the signals.
        drop(self.signals.take());
        if on {
            self.signals.set(Some(SignalFd::new()?));
        }
        Ok(())
    }

    fn wait_ready(&self, timeout: Duration) -> Result<Ready, SysError> {
        let sock = self.uevents.take();
        let sigs = self.signals.take();
        let r = match &sock {
            Some(s) => s.wait_with(sigs.as_ref(), timeout),
            None => Err(Op::Poll.failed(Errno::BADF)),
        };
        self.uevents.set(sock);
        self.signals.set(sigs);
        r
    }

    fn recv_uevent<'b>(&self, buf: &'b mut [u8]) -> Result<Recv<'b>, SysError> {
        let sock = self.uevents.take();
        let r = match &sock {
            Some(s) => s.recv(buf),
            None => Ok(Recv::Empty),
        };
        self.uevents.set(sock);
        r
    }

    fn next_signal(&self) -> Option<Sig> {
        let sigs = self.signals.take();
        let s = sigs.as_ref().and_then(SignalFd::read);
        self.signals.set(sigs);
        s
    }
}
