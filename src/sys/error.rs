//! What a failed call says: the operation with its arguments ([`Op`]) and
//! the errno, as one sentence ([`SysError`]).

use std::fmt;
use std::path::PathBuf;

use super::Halt;
use super::mountflags::describe;
use rustix::io::Errno;
use rustix::mount::MountFlags;

/// Formats an errno as `errno 2 (No such file or directory)`.
pub struct ErrnoText(pub Errno);

impl fmt::Display for ErrnoText {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let io = std::io::Error::from_raw_os_error(self.0.raw_os_error());
        // std renders "No such file or directory (os error 2)"; keep the text, add the number.
        let text = io.to_string();
        let text = text.split(" (os error").next().unwrap_or("");
        write!(f, "errno {} ({})", self.0.raw_os_error(), text)
    }
}

/// One operation on the system with its arguments: what a failure names,
/// and what the fake records.
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
    /// `statfs /`: whether the root is an initramfs.
    RootIsRam,
    /// BLKROSET on a block device: read-only (`true`) or writable.
    SetReadOnly(PathBuf, bool),
    FreeInitramfs,
    Halt(Halt),
    Open(PathBuf),
    Read(PathBuf),
    Write(PathBuf),
    /// `fsync` of a file or directory.
    Fsync(PathBuf),
    Rename(PathBuf, PathBuf),
    /// `unlink` or `rmdir`.
    Remove(PathBuf),
    /// `statvfs`: the flags of the mount a path is on.
    Statvfs(PathBuf),
    /// A step of the uevent socket (`socket`, `bind`, `recv`).
    Netlink(&'static str),
    Poll,
    /// `execve` of PID 1 (the path, or the checked file's path).
    Exec(PathBuf),
    /// A child started with these arguments.
    Spawn(Vec<String>),
    LoadModule(PathBuf),
    /// `kexec_file_load` of a kernel (where it is), an initramfs and a command line.
    KexecLoad {
        kernel: PathBuf,
        initrd: Option<PathBuf>,
        cmdline: String,
    },
    /// `sync`, then `reboot(LINUX_REBOOT_CMD_KEXEC)` into the loaded kernel.
    KexecReboot,
    /// `kexec_file_load` with `KEXEC_FILE_UNLOAD`: whether the kernel loads
    /// kernels from files at all (nothing is loaded at boot to unload).
    KexecUnload,
}

/// One short line per operation, so a test can compare a whole sequence at a glance.
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
            } => write!(f, "remount {} {}", target.display(), describe(*flags, data)),
            Unmount(p) => write!(f, "umount {}", p.display()),
            MakePrivate => write!(f, "private /"),
            Mkdir(p) => write!(f, "mkdir {}", p.display()),
            Mknod(p, a, b) => write!(f, "mknod {} {a}:{b}", p.display()),
            PivotRoot(n, o) => write!(f, "pivot_root {} {}", n.display(), o.display()),
            Chdir(p) => write!(f, "chdir {}", p.display()),
            Move(a, b) => write!(f, "move {} {}", a.display(), b.display()),
            Chroot(p) => write!(f, "chroot {}", p.display()),
            RootIsRam => write!(f, "statfs /"),
            SetReadOnly(p, true) => write!(f, "setro {}", p.display()),
            SetReadOnly(p, false) => write!(f, "setrw {}", p.display()),
            FreeInitramfs => write!(f, "free /"),
            Halt(h) => write!(f, "halt {}", h.name()),
            Open(p) => write!(f, "open {}", p.display()),
            Read(p) => write!(f, "read {}", p.display()),
            Write(p) => write!(f, "write {}", p.display()),
            Fsync(p) => write!(f, "fsync {}", p.display()),
            Rename(a, b) => write!(f, "rename {} {}", a.display(), b.display()),
            Remove(p) => write!(f, "remove {}", p.display()),
            Statvfs(p) => write!(f, "statvfs {}", p.display()),
            Netlink(op) => write!(f, "netlink {op}"),
            Poll => write!(f, "poll"),
            Exec(p) => write!(f, "exec {}", p.display()),
            Spawn(argv) => write!(f, "spawn {}", crate::sys::joined(argv, " ")),
            LoadModule(p) => write!(f, "finit_module {}", p.display()),
            KexecLoad {
                kernel,
                initrd,
                cmdline,
            } => write!(
                f,
                "kexec_file_load {} {} {cmdline}",
                kernel.display(),
                initrd
                    .as_deref()
                    .map_or("-".into(), |p| p.display().to_string())
            ),
            KexecReboot => write!(f, "reboot kexec"),
            KexecUnload => write!(f, "kexec_file_load unload"),
        }
    }
}

/// A call that failed: what was attempted and the errno. Its `Display` is
/// the sentence a log line or a `FAILED` line carries.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SysError {
    /// Boxed: an error is moved through every `?` on its way up, and 16
    /// bytes move in a few instructions where 112 need a copy loop.
    pub op: Box<Op>,
    pub errno: Errno,
}

impl Op {
    /// This operation failing with `errno`.
    pub fn failed(self, errno: Errno) -> SysError {
        SysError {
            op: Box::new(self),
            errno,
        }
    }
}

impl fmt::Display for SysError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        use Op::*;
        let e = ErrnoText(self.errno);
        match &*self.op {
            Mount {
                source,
                target,
                fstype,
                flags,
                data,
            } => write!(
                f,
                "mounting {} on {} as {fstype} (flags {}) failed: {e}",
                source.display(),
                target.display(),
                describe(*flags, data),
            ),
            Remount {
                target,
                flags,
                data,
            } => write!(
                f,
                "remounting {} with {} failed: {e}",
                target.display(),
                describe(*flags, data),
            ),
            Unmount(target) => write!(f, "unmounting {} failed: {e}", target.display()),
            Mkdir(path) => write!(
                f,
                "cannot create directory {}: {e}{}",
                path.display(),
                if self.errno == Errno::ROFS {
                    "; create it in the image or boot with `rw`"
                } else {
                    ""
                }
            ),
            Mknod(path, major, minor) => write!(
                f,
                "cannot create block node {} ({major}:{minor}): {e}",
                path.display()
            ),
            Open(path) => write!(f, "cannot open {}: {e}", path.display()),
            Read(path) => write!(f, "cannot read {}: {e}", path.display()),
            Write(path) => write!(f, "cannot write {}: {e}", path.display()),
            Fsync(path) => write!(f, "cannot fsync {}: {e}", path.display()),
            Rename(from, to) => write!(
                f,
                "cannot rename {} to {}: {e}",
                from.display(),
                to.display()
            ),
            Remove(path) => write!(f, "cannot remove {}: {e}", path.display()),
            Statvfs(path) => write!(
                f,
                "cannot read the mount flags of {} (statvfs): {e}",
                path.display()
            ),
            Netlink(op) => write!(f, "uevent netlink socket: {op} failed: {e}"),
            Poll => write!(f, "waiting on the uevent socket failed: {e}"),
            PivotRoot(new_root, put_old) => write!(
                f,
                "pivot_root({}, {}) failed: {e}",
                new_root.display(),
                put_old.display()
            ),
            Move(from, to) => write!(
                f,
                "moving mount {} to {} failed: {e}",
                from.display(),
                to.display()
            ),
            Chdir(path) => write!(f, "chdir to {} failed: {e}", path.display()),
            MakePrivate => write!(
                f,
                "making / recursively private (MS_REC|MS_PRIVATE) failed: {e}"
            ),
            Chroot(path) => write!(f, "chroot to {} failed: {e}", path.display()),
            Halt(how) => write!(
                f,
                "{} failed: {e}",
                match how {
                    super::Halt::Reboot => "reboot",
                    super::Halt::PowerOff => "poweroff",
                    super::Halt::Halt => "halt",
                    super::Halt::Kexec => "reboot(LINUX_REBOOT_CMD_KEXEC)",
                }
            ),
            Exec(path) => write!(f, "exec of {} failed: {e}", path.display()),
            SetReadOnly(dev, ro) => write!(
                f,
                "cannot make {} {} (BLKROSET): {e}",
                dev.display(),
                if *ro { "read-only" } else { "writable again" }
            ),
            KexecLoad { kernel, .. } => {
                write!(f, "kexec_file_load of {} failed: {e}", kernel.display())
            }
            KexecReboot => write!(
                f,
                "reboot into the loaded kernel (LINUX_REBOOT_CMD_KEXEC) failed: {e}"
            ),
            RootIsRam | FreeInitramfs | Spawn(_) | LoadModule(_) | KexecUnload => {
                write!(f, "{} failed: {e}", self.op)
            }
        }
    }
}

impl std::error::Error for SysError {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sentences_name_path_flags_and_errno() {
        let e = Op::Mkdir("/new-root".into()).failed(Errno::ROFS);
        assert_eq!(
            e.to_string(),
            "cannot create directory /new-root: errno 30 (Read-only file system); create it in the image or boot with `rw`"
        );
        let e = Op::Mount {
            source: "/dev/nvme1n1".into(),
            target: "/new-root".into(),
            fstype: "ext4".into(),
            flags: MountFlags::NOATIME,
            data: "discard".into(),
        }
        .failed(Errno::INVAL);
        assert_eq!(
            e.to_string(),
            "mounting /dev/nvme1n1 on /new-root as ext4 (flags rw,noatime,discard) failed: errno 22 (Invalid argument)"
        );
        let e = Op::Halt(Halt::PowerOff).failed(Errno::PERM);
        assert_eq!(
            e.to_string(),
            "poweroff failed: errno 1 (Operation not permitted)"
        );
    }
}
