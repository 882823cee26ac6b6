//! One error type for the whole boot: a variant per failing operation, each
//! naming the path, device, flags and errno involved.

use std::fmt;

use rustix::io::Errno;

/// Formats an errno as `ENOENT (No such file or directory)`-like text.
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

#[derive(Debug)]
pub enum Error {
    Mount {
        source: String,
        target: String,
        fstype: String,
        flags: String,
        errno: Errno,
    },
    Unmount {
        target: String,
        errno: Errno,
    },
    Mkdir {
        path: String,
        errno: Errno,
    },
    Mknod {
        path: String,
        major: u32,
        minor: u32,
        errno: Errno,
    },
    NotBlockDevice {
        path: String,
        what: String,
    },
    Open {
        path: String,
        errno: Errno,
    },
    Read {
        path: String,
        errno: Errno,
    },
    Netlink {
        op: &'static str,
        errno: Errno,
    },
    Poll {
        errno: Errno,
    },
    WaitTimeout {
        spec: String,
        secs: u64,
        seen: String,
    },
    NoFilesystem {
        device: String,
    },
    AllFstypesFailed {
        device: String,
        target: String,
        tried: String,
    },
    HookSpawn {
        path: String,
        err: String,
    },
    HookFailed {
        path: String,
        status: String,
    },
    HookTimeout {
        path: String,
        secs: u64,
    },
    NoInit {
        root: String,
        tried: String,
    },
    PivotRoot {
        new_root: String,
        put_old: String,
        errno: Errno,
    },
    MoveMount {
        from: String,
        to: String,
        errno: Errno,
    },
    Chdir {
        path: String,
        errno: Errno,
    },
    MakePrivate {
        errno: Errno,
    },
    Chroot {
        path: String,
        errno: Errno,
    },
    NotInitramfs,
    Modules {
        msg: String,
    },
    Exec {
        path: String,
        err: String,
    },
    Panic {
        msg: String,
    },
    NoRootSpec,
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        use Error::*;
        match self {
            Mount {
                source,
                target,
                fstype,
                flags,
                errno,
            } => write!(
                f,
                "mounting {source} on {target} as {fstype} (flags {flags}) failed: {}",
                ErrnoText(*errno)
            ),
            Unmount { target, errno } => {
                write!(f, "unmounting {target} failed: {}", ErrnoText(*errno))
            }
            Mkdir { path, errno } => write!(
                f,
                "cannot create directory {path}: {}{}",
                ErrnoText(*errno),
                if *errno == Errno::ROFS {
                    "; create it in the image or boot with `rw`"
                } else {
                    ""
                }
            ),
            Mknod {
                path,
                major,
                minor,
                errno,
            } => write!(
                f,
                "cannot create block node {path} ({major}:{minor}): {}",
                ErrnoText(*errno)
            ),
            NotBlockDevice { path, what } => write!(f, "{path} exists but is {what}"),
            Open { path, errno } => write!(f, "cannot open {path}: {}", ErrnoText(*errno)),
            Read { path, errno } => write!(f, "cannot read {path}: {}", ErrnoText(*errno)),
            Netlink { op, errno } => write!(
                f,
                "uevent netlink socket: {op} failed: {}",
                ErrnoText(*errno)
            ),
            Poll { errno } => write!(
                f,
                "waiting on the uevent socket failed: {}",
                ErrnoText(*errno)
            ),
            WaitTimeout { spec, secs, seen } => write!(
                f,
                "no device matching {spec} appeared within {secs} s; block devices seen: {seen}"
            ),
            NoFilesystem { device } => write!(
                f,
                "no filesystem found on {device} (no known superblock); set pivot.fstype=TYPE to force one"
            ),
            AllFstypesFailed {
                device,
                target,
                tried,
            } => write!(f, "could not mount {device} on {target} as any of: {tried}"),
            HookSpawn { path, err } => write!(f, "cannot run hook {path}: {err}"),
            HookFailed { path, status } => write!(f, "hook {path} failed: {status}"),
            HookTimeout { path, secs } => write!(
                f,
                "hook {path} did not finish within {secs} s (pivot.hook_timeout); its process group was killed"
            ),
            NoInit { root, tried } => write!(f, "no usable init on the new root {root}: {tried}"),
            PivotRoot {
                new_root,
                put_old,
                errno,
            } => write!(
                f,
                "pivot_root({new_root}, {put_old}) failed: {}",
                ErrnoText(*errno)
            ),
            MoveMount { from, to, errno } => write!(
                f,
                "moving mount {from} to {to} failed: {}",
                ErrnoText(*errno)
            ),
            Chdir { path, errno } => write!(f, "chdir to {path} failed: {}", ErrnoText(*errno)),
            MakePrivate { errno } => write!(
                f,
                "making / recursively private (MS_REC|MS_PRIVATE) failed: {}",
                ErrnoText(*errno)
            ),
            Exec { path, err } => write!(f, "exec of {path} failed: {err}"),
            Chroot { path, errno } => write!(f, "chroot to {path} failed: {}", ErrnoText(*errno)),
            NotInitramfs => write!(
                f,
                "/ is not a ramfs or tmpfs, so it is not an initramfs: refusing to delete its contents"
            ),
            Modules { msg } => write!(f, "loading kernel modules failed: {msg}"),
            Panic { msg } => write!(f, "internal error (panic): {msg}"),
            NoRootSpec => write!(
                f,
                "no volume given: set pivot.root=/dev/NAME, MAJ:MIN or SERIAL=... on the kernel command line"
            ),
        }
    }
}

impl std::error::Error for Error {}

pub type Result<T> = std::result::Result<T, Error>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn display_names_path_and_errno() {
        let e = Error::Mkdir {
            path: "/new-root".into(),
            errno: Errno::ROFS,
        };
        assert_eq!(
            e.to_string(),
            "cannot create directory /new-root: errno 30 (Read-only file system); create it in the image or boot with `rw`"
        );
        let e = Error::Mount {
            source: "/dev/nvme1n1".into(),
            target: "/new-root".into(),
            fstype: "ext4".into(),
            flags: "rw".into(),
            errno: Errno::INVAL,
        };
        assert_eq!(
            e.to_string(),
            "mounting /dev/nvme1n1 on /new-root as ext4 (flags rw) failed: errno 22 (Invalid argument)"
        );
    }
}
