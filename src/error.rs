//! One error type for the whole boot: a variant per failing operation, each
//! carrying the path, device, flags and errno involved as values; `Display`
//! turns them into one sentence.

use std::fmt;
use std::path::PathBuf;

use crate::config::Spec;
use crate::modules::ModuleError;
use crate::sys::process::Exit;
use crate::sys::{Errno, Halt, MountFlags};
use crate::verify::InitProblem;

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

/// What was found where a block node was wanted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NodeKind {
    Directory,
    Symlink,
    CharDevice,
    Other,
    /// A block node for another device number.
    Block(u32, u32),
    /// Nothing, or not this device's node (`plan` creates none).
    NotThisNode,
}

#[derive(Debug)]
pub enum Error {
    Mount {
        source: PathBuf,
        target: PathBuf,
        fstype: String,
        flags: MountFlags,
        data: String,
        errno: Errno,
    },
    Remount {
        target: PathBuf,
        flags: MountFlags,
        data: String,
        errno: Errno,
    },
    Unmount {
        target: PathBuf,
        errno: Errno,
    },
    Mkdir {
        path: PathBuf,
        errno: Errno,
    },
    Mknod {
        path: PathBuf,
        major: u32,
        minor: u32,
        errno: Errno,
    },
    NotBlockDevice {
        path: PathBuf,
        found: NodeKind,
        want: (u32, u32),
    },
    Open {
        path: PathBuf,
        errno: Errno,
    },
    Read {
        path: PathBuf,
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
        spec: Spec,
        secs: u64,
        /// One description per device seen.
        seen: Vec<String>,
    },
    /// Two or more devices match a spec that should name one volume.
    Ambiguous {
        spec: Spec,
        devices: Vec<String>,
    },
    NoFilesystem {
        device: PathBuf,
    },
    AllFstypesFailed {
        device: PathBuf,
        target: PathBuf,
        tried: Vec<(String, Errno)>,
    },
    HookSpawn {
        path: PathBuf,
        /// What failed: `fork`, `waiting for it`.
        op: &'static str,
        errno: Errno,
    },
    HookFailed {
        path: PathBuf,
        status: Exit,
    },
    HookTimeout {
        path: PathBuf,
        secs: u64,
    },
    NoInit {
        root: PathBuf,
        tried: Vec<(PathBuf, InitProblem)>,
    },
    PivotRoot {
        new_root: PathBuf,
        put_old: PathBuf,
        errno: Errno,
    },
    MoveMount {
        from: PathBuf,
        to: PathBuf,
        errno: Errno,
    },
    Chdir {
        path: PathBuf,
        errno: Errno,
    },
    MakePrivate {
        errno: Errno,
    },
    Chroot {
        path: PathBuf,
        errno: Errno,
    },
    NotInitramfs,
    Modules(ModuleError),
    Exec {
        path: PathBuf,
        errno: Errno,
    },
    /// The init's path names another file than the one that was checked.
    InitChanged {
        path: PathBuf,
    },
    Halt {
        how: Halt,
        errno: Errno,
    },
    Panic {
        msg: String,
    },
    /// Not a failure: a request to reboot or power off (Ctrl-Alt-Del,
    /// SIGPWR) taken while waiting.
    Requested(Halt),
    NoRootSpec,
}

impl fmt::Display for NodeKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            NodeKind::Directory => write!(f, "a directory"),
            NodeKind::Symlink => write!(f, "a symlink"),
            NodeKind::CharDevice => write!(f, "a character device"),
            NodeKind::Other => write!(f, "not a block device"),
            NodeKind::Block(a, b) => write!(f, "a block node for {a}:{b}"),
            NodeKind::NotThisNode => write!(f, "missing or not this device's node"),
        }
    }
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
                data,
                errno,
            } => write!(
                f,
                "mounting {} on {} as {fstype} (flags {}) failed: {}",
                source.display(),
                target.display(),
                crate::mountopts::describe(*flags, data),
                ErrnoText(*errno)
            ),
            Remount {
                target,
                flags,
                data,
                errno,
            } => write!(
                f,
                "remounting {} with {} failed: {}",
                target.display(),
                crate::mountopts::describe(*flags, data),
                ErrnoText(*errno)
            ),
            Unmount { target, errno } => write!(
                f,
                "unmounting {} failed: {}",
                target.display(),
                ErrnoText(*errno)
            ),
            Mkdir { path, errno } => write!(
                f,
                "cannot create directory {}: {}{}",
                path.display(),
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
                "cannot create block node {} ({major}:{minor}): {}",
                path.display(),
                ErrnoText(*errno)
            ),
            NotBlockDevice {
                path,
                found: NodeKind::NotThisNode,
                want,
            } => write!(
                f,
                "{} is missing or is not the node of {}:{}",
                path.display(),
                want.0,
                want.1
            ),
            NotBlockDevice { path, found, want } => {
                write!(f, "{} exists but is {found}", path.display())?;
                if let NodeKind::Block(..) = found {
                    write!(f, ", not {}:{}", want.0, want.1)?;
                }
                Ok(())
            }
            Open { path, errno } => {
                write!(f, "cannot open {}: {}", path.display(), ErrnoText(*errno))
            }
            Read { path, errno } => {
                write!(f, "cannot read {}: {}", path.display(), ErrnoText(*errno))
            }
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
                "no device matching {spec} appeared within {secs} s; block devices seen: {}",
                if seen.is_empty() {
                    "none".to_string()
                } else {
                    seen.join(", ")
                }
            ),
            Ambiguous { spec, devices } => write!(
                f,
                "{} devices match {spec}: {}; detach one or use {}",
                devices.len(),
                devices.join(", "),
                match spec {
                    Spec::Serial(_) | Spec::ById(_) | Spec::Name(_) => "/dev/disk/by-path/...",
                    _ => "SERIAL=",
                }
            ),
            NoFilesystem { device } => write!(
                f,
                "no filesystem found on {} (no known superblock); set pivot.fstype=TYPE to force one",
                device.display()
            ),
            AllFstypesFailed {
                device,
                target,
                tried,
            } => {
                write!(
                    f,
                    "could not mount {} on {} as any of: ",
                    device.display(),
                    target.display()
                )?;
                for (i, (t, errno)) in tried.iter().enumerate() {
                    let sep = if i > 0 { ", " } else { "" };
                    write!(f, "{sep}{t} ({})", ErrnoText(*errno))?;
                }
                Ok(())
            }
            HookSpawn { path, op, errno } => write!(
                f,
                "cannot run hook {}: {op} failed: {}",
                path.display(),
                ErrnoText(*errno)
            ),
            HookFailed { path, status } => {
                write!(f, "hook {} failed: {status}", path.display())
            }
            HookTimeout { path, secs } => write!(
                f,
                "hook {} did not finish within {secs} s (pivot.hook_timeout); its process group was killed",
                path.display()
            ),
            NoInit { root, tried } => {
                write!(f, "no usable init on the new root {}: ", root.display())?;
                for (i, (p, why)) in tried.iter().enumerate() {
                    let sep = if i > 0 { "; " } else { "" };
                    write!(f, "{sep}{}: {why}", p.display())?;
                }
                Ok(())
            }
            PivotRoot {
                new_root,
                put_old,
                errno,
            } => write!(
                f,
                "pivot_root({}, {}) failed: {}",
                new_root.display(),
                put_old.display(),
                ErrnoText(*errno)
            ),
            MoveMount { from, to, errno } => write!(
                f,
                "moving mount {} to {} failed: {}",
                from.display(),
                to.display(),
                ErrnoText(*errno)
            ),
            Chdir { path, errno } => {
                write!(
                    f,
                    "chdir to {} failed: {}",
                    path.display(),
                    ErrnoText(*errno)
                )
            }
            MakePrivate { errno } => write!(
                f,
                "making / recursively private (MS_REC|MS_PRIVATE) failed: {}",
                ErrnoText(*errno)
            ),
            Exec { path, errno } => {
                write!(
                    f,
                    "exec of {} failed: {}",
                    path.display(),
                    ErrnoText(*errno)
                )
            }
            InitChanged { path } => write!(
                f,
                "{} is no longer the file that was checked; not running it",
                path.display()
            ),
            Chroot { path, errno } => {
                write!(
                    f,
                    "chroot to {} failed: {}",
                    path.display(),
                    ErrnoText(*errno)
                )
            }
            NotInitramfs => write!(
                f,
                "/ is not a ramfs or tmpfs, so it is not an initramfs: refusing to delete its contents"
            ),
            Modules(e) => write!(f, "loading kernel modules failed: {e}"),
            Halt { how, errno } => write!(
                f,
                "{} failed: {}",
                match how {
                    crate::sys::Halt::Reboot => "reboot",
                    crate::sys::Halt::PowerOff => "poweroff",
                },
                ErrnoText(*errno)
            ),
            Panic { msg } => write!(f, "internal error (panic): {msg}"),
            Requested(crate::sys::Halt::Reboot) => {
                write!(f, "a reboot was asked for (Ctrl-Alt-Del)")
            }
            Requested(crate::sys::Halt::PowerOff) => {
                write!(f, "a power-off was asked for (SIGPWR)")
            }
            NoRootSpec => write!(
                f,
                "no volume given: set pivot.root=/dev/NAME, MAJ:MIN or SERIAL=... on the kernel command line"
            ),
        }
    }
}

impl std::error::Error for Error {}

impl From<ModuleError> for Error {
    fn from(e: ModuleError) -> Error {
        Error::Modules(e)
    }
}

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
            flags: MountFlags::NOATIME,
            data: "discard".into(),
            errno: Errno::INVAL,
        };
        assert_eq!(
            e.to_string(),
            "mounting /dev/nvme1n1 on /new-root as ext4 (flags rw,noatime,discard) failed: errno 22 (Invalid argument)"
        );
        let e = Error::NotBlockDevice {
            path: "/dev/sdp".into(),
            found: NodeKind::Block(8, 1),
            want: (8, 240),
        };
        assert_eq!(
            e.to_string(),
            "/dev/sdp exists but is a block node for 8:1, not 8:240"
        );
        let e = Error::AllFstypesFailed {
            device: "/dev/vdb".into(),
            target: "/new-root".into(),
            tried: vec![("xfs".into(), Errno::NODEV), ("btrfs".into(), Errno::INVAL)],
        };
        assert_eq!(
            e.to_string(),
            "could not mount /dev/vdb on /new-root as any of: xfs (errno 19 (No such device)), btrfs (errno 22 (Invalid argument))"
        );
    }
}
