//! The syscall boundary: the only module that names rustix or libc. Every
//! wrapper turns an errno into an [`Error`] naming what was attempted.
//!
//! - [`Sys`]: what the stages do to the system (mount, unmount, mkdir, mknod,
//!   pivot_root, move, chroot, reboot...), with [`RealSys`] and, for unit
//!   tests without root, a recording fake ([`fake::FakeSys`]).
//! - [`UeventSocket`]: the kernel uevent subscription (bind, receive, sender check).
//! - [`process`]: fork/exec of the hook and the shell, exec of an init, waits.
//! - Reading: [`read_regions`], [`read_at`], [`OpenFile`] (opened inside a root).

mod files;
pub mod process;
pub mod signals;
mod uevent_socket;

#[cfg(test)]
pub mod fake;

use std::ffi::CString;
use std::fmt;
use std::os::fd::OwnedFd;
use std::path::{Path, PathBuf};

use rustix::fs::{Mode, OFlags};
use rustix::mount::{MountPropagationFlags, UnmountFlags};

pub use files::{
    FileInfo, OpenFile, lstat, open_beneath, open_dir_in_root, open_in_root, open_ro, read_at,
    read_regions, stat,
};
pub use rustix::fs::FileType;
pub use rustix::io::Errno;
pub use rustix::mount::MountFlags;
pub use rustix::process::{Pid, WaitStatus};
pub use signals::{Sig, SignalFd};
pub use uevent_socket::{Ready, Recv, UeventSocket};

use crate::error::{Error, Result};

/// How a reboot-type action ends the machine.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Halt {
    Reboot,
    PowerOff,
}

/// How an unmount went.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Unmounted {
    Clean,
    /// The mount was busy and was detached lazily (MNT_DETACH).
    Detached,
}

/// Operations of the stages that change the system. Everything the boot
/// does to mounts, the root and the machine goes through here.
pub trait Sys {
    fn mount(
        &mut self,
        source: &Path,
        target: &Path,
        fstype: &str,
        flags: MountFlags,
        data: &str,
    ) -> Result<()>;
    /// Changes the flags and options of the mount at `target` (MS_REMOUNT).
    fn remount(&mut self, target: &Path, flags: MountFlags, data: &str) -> Result<()>;
    /// Unmounts `target`; a busy mount is detached lazily, and says so.
    fn unmount(&mut self, target: &Path) -> Result<Unmounted>;
    /// Makes the whole mount tree private, so that pivot_root is allowed.
    fn make_private(&mut self) -> Result<()>;
    /// Creates a directory (mode 0755); an existing directory is fine.
    fn mkdir(&mut self, path: &Path) -> Result<()>;
    /// Creates a block device node (mode 0600).
    fn mknod_block(&mut self, path: &Path, major: u32, minor: u32) -> Result<()>;
    fn pivot_root(&mut self, new_root: &Path, put_old: &Path) -> Result<()>;
    fn chdir(&mut self, path: &Path) -> Result<()>;
    fn move_mount(&mut self, from: &Path, to: &Path) -> Result<()>;
    fn chroot(&mut self, path: &Path) -> Result<()>;
    /// Whether `/` is a ramfs or tmpfs (an initramfs), checked before deleting anything.
    fn root_is_ram(&mut self) -> bool;
    /// Deletes the initramfs contents under `/` without crossing into other
    /// mounts; returns (entries removed, bytes freed).
    fn free_initramfs(&mut self) -> (usize, u64);
    /// Whether `path` is a directory (following symlinks).
    fn is_dir(&mut self, path: &Path) -> bool;
    /// Whether `path` is the root of a mount.
    fn is_mount_point(&mut self, path: &Path) -> bool;
    /// `sync`, then reboot or power off. Returns only on failure.
    fn halt(&mut self, how: Halt) -> Error;
}

/// One operation of [`Sys`] with its arguments: what the fake records, and
/// what an error names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Op {
    Mount {
        source: PathBuf,
        target: PathBuf,
        fstype: String,
        flags: MountFlags,
        data: String,
    },
    Remount {
        target: PathBuf,
        flags: MountFlags,
        data: String,
    },
    Unmount(PathBuf),
    MakePrivate,
    Mkdir(PathBuf),
    Mknod(PathBuf, u32, u32),
    PivotRoot(PathBuf, PathBuf),
    Chdir(PathBuf),
    Move(PathBuf, PathBuf),
    Chroot(PathBuf),
    RootIsRam,
    FreeInitramfs,
    Halt(Halt),
}

/// One short line per call, so a test can compare a whole sequence at a glance.
impl fmt::Display for Op {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        use Op::*;
        match self {
            Mount {
                source,
                target,
                fstype,
                ..
            } => write!(
                f,
                "mount {} {} {fstype}",
                source.display(),
                target.display()
            ),
            Remount {
                target,
                flags,
                data,
            } => write!(
                f,
                "remount {} {}",
                target.display(),
                crate::mountopts::describe(*flags, data)
            ),
            Unmount(p) => write!(f, "umount {}", p.display()),
            MakePrivate => write!(f, "private /"),
            Mkdir(p) => write!(f, "mkdir {}", p.display()),
            Mknod(p, a, b) => write!(f, "mknod {} {a}:{b}", p.display()),
            PivotRoot(n, o) => write!(f, "pivot_root {} {}", n.display(), o.display()),
            Chdir(p) => write!(f, "chdir {}", p.display()),
            Move(a, b) => write!(f, "move {} {}", a.display(), b.display()),
            Chroot(p) => write!(f, "chroot {}", p.display()),
            RootIsRam => write!(f, "statfs /"),
            FreeInitramfs => write!(f, "free /"),
            Halt(h) => write!(f, "halt {h:?}"),
        }
    }
}

impl Op {
    /// The error for this operation failing with `errno`.
    pub fn error(self, errno: Errno) -> Error {
        match self {
            Op::Mount {
                source,
                target,
                fstype,
                flags,
                data,
            } => Error::Mount {
                source,
                target,
                fstype,
                flags,
                data,
                errno,
            },
            Op::Remount {
                target,
                flags,
                data,
            } => Error::Remount {
                target,
                flags,
                data,
                errno,
            },
            Op::Unmount(target) => Error::Unmount { target, errno },
            Op::MakePrivate => Error::MakePrivate { errno },
            Op::Mkdir(path) => Error::Mkdir { path, errno },
            Op::Mknod(path, major, minor) => Error::Mknod {
                path,
                major,
                minor,
                errno,
            },
            Op::PivotRoot(new_root, put_old) => Error::PivotRoot {
                new_root,
                put_old,
                errno,
            },
            Op::Chdir(path) => Error::Chdir { path, errno },
            Op::Move(from, to) => Error::MoveMount { from, to, errno },
            Op::Chroot(path) => Error::Chroot { path, errno },
            Op::Halt(how) => Error::Halt { how, errno },
            // Queries that do not fail.
            Op::RootIsRam | Op::FreeInitramfs => Error::NotInitramfs,
        }
    }
}

/// The real system.
pub struct RealSys;

fn c_string(s: &str) -> std::result::Result<CString, Errno> {
    CString::new(s).map_err(|_| Errno::INVAL)
}

impl Sys for RealSys {
    fn mount(
        &mut self,
        source: &Path,
        target: &Path,
        fstype: &str,
        flags: MountFlags,
        data: &str,
    ) -> Result<()> {
        let r = c_string(data).and_then(|data_c| {
            let data_arg = (!data.is_empty()).then_some(data_c.as_c_str());
            rustix::mount::mount(source, target, fstype, flags, data_arg)
        });
        r.map_err(|errno| {
            Op::Mount {
                source: source.into(),
                target: target.into(),
                fstype: fstype.into(),
                flags,
                data: data.into(),
            }
            .error(errno)
        })
    }

    fn remount(&mut self, target: &Path, flags: MountFlags, data: &str) -> Result<()> {
        rustix::mount::mount_remount(target, flags, data).map_err(|errno| {
            Op::Remount {
                target: target.into(),
                flags,
                data: data.into(),
            }
            .error(errno)
        })
    }

    fn unmount(&mut self, target: &Path) -> Result<Unmounted> {
        let r = match rustix::mount::unmount(target, UnmountFlags::empty()) {
            Ok(()) => Ok(Unmounted::Clean),
            Err(Errno::BUSY) => {
                rustix::mount::unmount(target, UnmountFlags::DETACH).map(|()| Unmounted::Detached)
            }
            Err(e) => Err(e),
        };
        r.map_err(|errno| Op::Unmount(target.into()).error(errno))
    }

    fn make_private(&mut self) -> Result<()> {
        rustix::mount::mount_change(
            "/",
            MountPropagationFlags::PRIVATE | MountPropagationFlags::REC,
        )
        .map_err(|errno| Op::MakePrivate.error(errno))
    }

    fn mkdir(&mut self, path: &Path) -> Result<()> {
        match rustix::fs::mkdir(path, Mode::from_raw_mode(0o755)) {
            Ok(()) => Ok(()),
            Err(Errno::EXIST) if is_dir(path) => Ok(()),
            Err(errno) => Err(Op::Mkdir(path.into()).error(errno)),
        }
    }

    fn mknod_block(&mut self, path: &Path, major: u32, minor: u32) -> Result<()> {
        rustix::fs::mknodat(
            rustix::fs::CWD,
            path,
            FileType::BlockDevice,
            Mode::from_raw_mode(0o600),
            rustix::fs::makedev(major, minor),
        )
        .map_err(|errno| Op::Mknod(path.into(), major, minor).error(errno))
    }

    fn pivot_root(&mut self, new_root: &Path, put_old: &Path) -> Result<()> {
        rustix::process::pivot_root(new_root, put_old)
            .map_err(|errno| Op::PivotRoot(new_root.into(), put_old.into()).error(errno))
    }

    fn chdir(&mut self, path: &Path) -> Result<()> {
        rustix::process::chdir(path).map_err(|errno| Op::Chdir(path.into()).error(errno))
    }

    fn move_mount(&mut self, from: &Path, to: &Path) -> Result<()> {
        rustix::mount::mount_move(from, to)
            .map_err(|errno| Op::Move(from.into(), to.into()).error(errno))
    }

    fn chroot(&mut self, path: &Path) -> Result<()> {
        rustix::process::chroot(path).map_err(|errno| Op::Chroot(path.into()).error(errno))
    }

    fn root_is_ram(&mut self) -> bool {
        root_is_ram()
    }

    fn free_initramfs(&mut self) -> (usize, u64) {
        files::free_initramfs()
    }

    fn is_dir(&mut self, path: &Path) -> bool {
        is_dir(path)
    }

    fn is_mount_point(&mut self, path: &Path) -> bool {
        is_mount_point(path)
    }

    fn halt(&mut self, how: Halt) -> Error {
        rustix::fs::sync();
        let cmd = match how {
            Halt::Reboot => rustix::system::RebootCommand::Restart,
            Halt::PowerOff => rustix::system::RebootCommand::PowerOff,
        };
        let errno = rustix::system::reboot(cmd).err().unwrap_or(Errno::INVAL);
        Op::Halt(how).error(errno)
    }
}

/// Whether `/` is a ramfs or tmpfs: an initramfs (a machine image boots from a disk).
pub fn root_is_ram() -> bool {
    const RAMFS_MAGIC: u64 = 0x8584_58f6;
    const TMPFS_MAGIC: u64 = 0x0102_1994;
    rustix::fs::statfs("/").is_ok_and(|st| {
        let t = st.f_type as u64;
        t == RAMFS_MAGIC || t == TMPFS_MAGIC
    })
}

pub fn is_dir(path: &Path) -> bool {
    stat(path).is_ok_and(|st| st.kind == FileType::Directory)
}

/// Whether `path` is the root of a mount (its device differs from its parent's,
/// or it is the same inode as its parent, as for `/`).
pub fn is_mount_point(path: &Path) -> bool {
    let (Ok(st), Ok(parent)) = (stat(path), stat(&path.join(".."))) else {
        return false;
    };
    st.dev != parent.dev || st.ino == parent.ino
}

/// `dev_t` of a block device number.
pub fn makedev(major: u32, minor: u32) -> u64 {
    rustix::fs::makedev(major, minor)
}

/// (major, minor) of a `dev_t`.
pub fn split_dev(dev: u64) -> (u32, u32) {
    (rustix::fs::major(dev), rustix::fs::minor(dev))
}

/// The process's arguments from C `main`'s `argc`/`argv` (the binary's
/// entry is `no_main`; see `src/main.rs`). A null `argv` or entry ends the list.
///
/// # Safety
/// `argv` is null or points to `argc` pointers, each null or to a
/// NUL-terminated string, all valid for the lifetime of the process.
pub unsafe fn args_from_c(
    argc: std::ffi::c_int,
    argv: *const *const std::ffi::c_char,
) -> Vec<std::ffi::OsString> {
    use std::os::unix::ffi::OsStrExt;
    let n = usize::try_from(argc).unwrap_or(0);
    let mut out = Vec::with_capacity(n);
    if argv.is_null() {
        return out;
    }
    for i in 0..n {
        // SAFETY: i < argc, and the caller vouches for argc entries.
        let p = unsafe { *argv.add(i) };
        if p.is_null() {
            break;
        }
        // SAFETY: a non-null entry is a NUL-terminated string (caller).
        let arg = unsafe { std::ffi::CStr::from_ptr(p) };
        out.push(std::ffi::OsStr::from_bytes(arg.to_bytes()).to_os_string());
    }
    out
}

/// Whether this process is PID 1.
pub fn is_pid1() -> bool {
    rustix::process::getpid().is_init()
}

pub fn getpid() -> i32 {
    rustix::process::getpid().as_raw_nonzero().get()
}

pub fn is_root_user() -> bool {
    rustix::process::geteuid().is_root()
}

/// Whether the current user may write into `dir`.
pub fn writable(dir: &Path) -> bool {
    rustix::fs::access(dir, rustix::fs::Access::WRITE_OK).is_ok()
}

/// The running kernel's release (`uname -r`).
pub fn kernel_release() -> String {
    rustix::system::uname()
        .release()
        .to_string_lossy()
        .into_owned()
}

/// The running machine (`uname -m`).
pub fn machine() -> String {
    rustix::system::uname()
        .machine()
        .to_string_lossy()
        .into_owned()
}

/// The 4096-byte NVMe Identify Controller data of the controller behind
/// the block device at `dev` (an admin command, read-only; needs root).
pub fn nvme_identify_controller(dev: &Path) -> std::result::Result<Vec<u8>, Errno> {
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
    let file = open_ro(dev)?;
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

/// Loads a kernel module from an open file (`finit_module`) with its
/// parameters (`p=v p2=v2`).
pub fn finit_module(
    file: &OpenFile,
    params: &std::ffi::CStr,
    flags: i32,
) -> std::result::Result<(), Errno> {
    rustix::system::finit_module(file.fd(), params, flags)
}

/// Opens a file for reading and writing (the console).
pub fn open_rw(path: &Path) -> std::result::Result<OwnedFd, Errno> {
    rustix::fs::open(path, OFlags::RDWR | OFlags::CLOEXEC, Mode::empty())
}

/// When the kernel found no /dev/console on the boot root, PID 1 starts
/// without stdin/stdout/stderr. Fill fds 0..2 with the console, which
/// devtmpfs now provides, so that the hook and the real init have one.
pub fn ensure_console_fds() {
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

/// Milliseconds since boot (CLOCK_BOOTTIME), for the summary line.
pub fn uptime_ms() -> u64 {
    let t = rustix::time::clock_gettime(rustix::time::ClockId::Boottime);
    (t.tv_sec as u64) * 1000 + (t.tv_nsec as u64) / 1_000_000
}

/// CPU time this process has used, in microseconds (/proc/self/schedstat).
pub fn cpu_us() -> Option<u64> {
    let text = std::fs::read_to_string("/proc/self/schedstat").ok()?;
    let ns: u64 = text.split_whitespace().next()?.parse().ok()?;
    Some(ns / 1000)
}

/// Peak resident memory (VmHWM) in KiB.
pub fn vm_hwm_kib() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

/// `base` + `p`, where `p` is absolute as seen from inside `base` (a volume
/// mounted at `base`). `..` components are dropped, so the result never
/// leaves `base` lexically; symlinks are resolved by [`open_in_root`].
pub fn in_root(base: &Path, p: &Path) -> PathBuf {
    use std::path::Component;
    let mut out = base.to_path_buf();
    for c in p.components() {
        if let Component::Normal(n) = c {
            out.push(n);
        }
    }
    out
}

#[cfg(test)]
mod args_tests {
    #[test]
    fn args_from_c_reads_argc_entries_and_stops_at_null() {
        let a = c"/init";
        let b = c"single";
        let v = [a.as_ptr(), b.as_ptr(), std::ptr::null()];
        // SAFETY: three valid entries, the last null.
        let got = unsafe { super::args_from_c(3, v.as_ptr()) };
        assert_eq!(got, ["/init", "single"]);
        // SAFETY: a null argv is allowed.
        assert!(unsafe { super::args_from_c(1, std::ptr::null()) }.is_empty());
        // SAFETY: argc 1 reads only the first entry.
        assert_eq!(unsafe { super::args_from_c(1, v.as_ptr()) }, ["/init"]);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn in_root_stays_under_the_base() {
        let b = Path::new("/new-root");
        assert_eq!(
            in_root(b, Path::new("/sbin/init")),
            Path::new("/new-root/sbin/init")
        );
        assert_eq!(in_root(b, Path::new("/")), Path::new("/new-root"));
        assert_eq!(
            in_root(b, Path::new("/../../etc")),
            Path::new("/new-root/etc")
        );
        assert_eq!(
            in_root(b, Path::new("relative/x")),
            Path::new("/new-root/relative/x")
        );
    }
}

/// The unwinder, left out. pivot-init is built with `panic = "abort"`: no
/// frame is ever unwound, and std's default panic hook, which could print a
/// backtrace, is replaced before anything can panic (`boot::run`; the CLI
/// prints no backtraces). Yet std's backtrace printer and its (never
/// called) personality routine name a few `_Unwind_*` functions, and the
/// first reference drags in all of libunwind and, for its messages, musl's
/// printf: about 58 KiB of the static binary. Defining the names here
/// satisfies those references, so the linker never takes libunwind's
/// objects; should a future std name another, the link fails loudly with a
/// duplicate definition rather than silently.
#[cfg(all(target_env = "musl", pivot_build_std, not(test)))]
mod no_unwinder {
    use std::ffi::c_void;

    /// `_URC_END_OF_STACK` for a backtrace walk; `_URC_FATAL_PHASE1_ERROR`
    /// for anything that would unwind.
    const END_OF_STACK: i32 = 5;

    macro_rules! stubs {
        ($($name:ident($($arg:ident: $ty:ty),*) -> $ret:ty = $val:expr;)*) => {$(
            // SAFETY: each symbol is defined once in the final binary (so
            // libunwind's is never linked); the signature is the C one std
            // declares; the body touches no memory and calls nothing.
            #[unsafe(no_mangle)]
            pub extern "C" fn $name($(_: $ty),*) -> $ret {
                $val
            }
        )*};
    }

    stubs! {
        _Unwind_Backtrace(trace: *const c_void, arg: *mut c_void) -> i32 = END_OF_STACK;
        _Unwind_GetIP(context: *const c_void) -> usize = 0;
        _Unwind_GetIPInfo(context: *const c_void, before: *mut i32) -> usize = 0;
        _Unwind_GetLanguageSpecificData(context: *const c_void) -> usize = 0;
        _Unwind_GetRegionStart(context: *const c_void) -> usize = 0;
        _Unwind_GetTextRelBase(context: *const c_void) -> usize = 0;
        _Unwind_GetDataRelBase(context: *const c_void) -> usize = 0;
        _Unwind_SetGR(context: *mut c_void, index: i32, value: usize) -> () = ();
        _Unwind_SetIP(context: *mut c_void, value: usize) -> () = ();
    }
}
