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
        let text = super::find(&text, " (os error").map_or(&*text, |i| text.get(..i).unwrap_or(""));
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
        // Most are a word and one or two paths: written by one call.
        let (word, one, two): (&str, &PathBuf, Option<&PathBuf>) = match self {
            Mount {
                source,
                target,
                fstype,
                ..
            } => {
                let (s, t) = (source.display(), target.display());
                return write!(f, "mount {s} {t} {fstype}");
            }
            Remount {
                target,
                flags,
                data,
            } => return write!(f, "remount {} {}", target.display(), describe(*flags, data)),
            Unmount(p) => ("umount", p, None),
            Mkdir(p) => ("mkdir", p, None),
            Mknod(p, a, b) => return write!(f, "mknod {} {a}:{b}", p.display()),
            PivotRoot(n, o) => ("pivot_root", n, Some(o)),
            Chdir(p) => ("chdir", p, None),
            Move(a, b) => ("move", a, Some(b)),
            Chroot(p) => ("chroot", p, None),
            SetReadOnly(p, true) => ("setro", p, None),
            SetReadOnly(p, false) => ("setrw", p, None),
            Open(p) => ("open", p, None),
            Read(p) => ("read", p, None),
            Write(p) => ("write", p, None),
            Fsync(p) => ("fsync", p, None),
            Rename(a, b) => ("rename", a, Some(b)),
            Remove(p) => ("remove", p, None),
            Statvfs(p) => ("statvfs", p, None),
            Exec(p) => ("exec", p, None),
            LoadModule(p) => ("finit_module", p, None),
            Halt(h) => return write!(f, "halt {}", h.name()),
            Netlink(op) => return write!(f, "netlink {op}"),
            Spawn(argv) => return write!(f, "spawn {}", super::joined(argv, " ")),
            KexecLoad {
                kernel,
                initrd,
                cmdline,
            } => {
                let initrd = initrd
                    .as_deref()
                    .map_or("-".into(), |p| p.display().to_string());
                return write!(f, "kexec_file_load {} {initrd} {cmdline}", kernel.display());
            }
            MakePrivate => return f.write_str("private /"),
            RootIsRam => return f.write_str("statfs /"),
            FreeInitramfs => return f.write_str("free /"),
            Poll => return f.write_str("poll"),
            KexecReboot => return f.write_str("reboot kexec"),
            KexecUnload => return f.write_str("kexec_file_load unload"),
        };
        write!(f, "{word} {}", one.display())?;
        match two {
            Some(p) => write!(f, " {}", p.display()),
            None => Ok(()),
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
        // Most name one path between two fixed parts: written by one call.
        let (pre, path, post): (&str, &PathBuf, &str) = match &*self.op {
            Mount {
                source,
                target,
                fstype,
                flags,
                data,
            } => {
                let (s, t, d) = (source.display(), target.display(), describe(*flags, data));
                return write!(f, "mounting {s} on {t} as {fstype} (flags {d}) failed: {e}");
            }
            Remount {
                target,
                flags,
                data,
            } => {
                let (t, d) = (target.display(), describe(*flags, data));
                return write!(f, "remounting {t} with {d} failed: {e}");
            }
            Unmount(target) => ("unmounting ", target, " failed"),
            Mkdir(path) => ("cannot create directory ", path, ""),
            Mknod(path, major, minor) => {
                let p = path.display();
                return write!(f, "cannot create block node {p} ({major}:{minor}): {e}");
            }
            Open(path) => ("cannot open ", path, ""),
            Read(path) => ("cannot read ", path, ""),
            Write(path) => ("cannot write ", path, ""),
            Fsync(path) => ("cannot fsync ", path, ""),
            Rename(from, to) => {
                let (a, b) = (from.display(), to.display());
                return write!(f, "cannot rename {a} to {b}: {e}");
            }
            Remove(path) => ("cannot remove ", path, ""),
            Statvfs(path) => ("cannot read the mount flags of ", path, " (statvfs)"),
            Netlink(op) => return write!(f, "uevent netlink socket: {op} failed: {e}"),
            Poll => return write!(f, "waiting on the uevent socket failed: {e}"),
            PivotRoot(new_root, put_old) => {
                let (n, o) = (new_root.display(), put_old.display());
                return write!(f, "pivot_root({n}, {o}) failed: {e}");
            }
            Move(from, to) => {
                let (a, b) = (from.display(), to.display());
                return write!(f, "moving mount {a} to {b} failed: {e}");
            }
            Chdir(path) => ("chdir to ", path, " failed"),
            MakePrivate => {
                return write!(
                    f,
                    "making / recursively private (MS_REC|MS_PRIVATE) failed: {e}"
                );
            }
            Chroot(path) => ("chroot to ", path, " failed"),
            Halt(how) => {
                let how = match how {
                    super::Halt::Reboot => "reboot",
                    super::Halt::PowerOff => "poweroff",
                    super::Halt::Halt => "halt",
                    super::Halt::Kexec => "reboot(LINUX_REBOOT_CMD_KEXEC)",
                };
                return write!(f, "{how} failed: {e}");
            }
            Exec(path) => ("exec of ", path, " failed"),
            SetReadOnly(dev, ro) => {
                let how = if *ro { "read-only" } else { "writable again" };
                return write!(f, "cannot make {} {how} (BLKROSET): {e}", dev.display());
            }
            KexecLoad { kernel, .. } => ("kexec_file_load of ", kernel, " failed"),
            KexecReboot => {
                return write!(
                    f,
                    "reboot into the loaded kernel (LINUX_REBOOT_CMD_KEXEC) failed: {e}"
                );
            }
            RootIsRam | FreeInitramfs | Spawn(_) | LoadModule(_) | KexecUnload => {
                return write!(f, "{} failed: {e}", self.op);
            }
        };
        write!(f, "{pre}{}{post}: {e}", path.display())?;
        if let Mkdir(_) = &*self.op
            && self.errno == Errno::ROFS
        {
            f.write_str("; create it in the image or boot with `rw`")?;
        }
        Ok(())
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
