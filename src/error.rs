//! One error type for the whole boot, above the layers whose errors it
//! wraps: a failed system call ([`SysError`], which names the operation,
//! its arguments and the errno), a module that cannot be loaded, and a
//! variant per failure of a stage, each carrying the path, device and errno
//! involved as values; `Display` turns them into one sentence.

use std::fmt;
use std::path::PathBuf;

use crate::modules::ModuleError;
use crate::spec::Spec;
use crate::sys::{Errno, ErrnoText, Exit, Halt, SysError};
use crate::verify::InitProblem;

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
    /// A system call failed.
    Sys(SysError),
    NotBlockDevice {
        path: PathBuf,
        found: NodeKind,
        want: (u32, u32),
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
    /// The hook could not be run (found at the check, before the commit).
    HookUnusable {
        path: PathBuf,
        why: String,
    },
    NoInit {
        root: PathBuf,
        tried: Vec<(PathBuf, InitProblem)>,
    },
    NotInitramfs,
    /// The filesystem checker ended with a status fsck(8) calls a failure
    /// (`meaning`: what its bits say), or by a signal.
    FsckFailed {
        checker: String,
        device: String,
        status: Exit,
        meaning: String,
    },
    /// `pivot.fsck=force`, and the volume cannot be checked (`why`).
    FsckMissing {
        why: String,
    },
    /// The checker could not be started.
    FsckSpawn {
        checker: PathBuf,
        errno: Errno,
    },
    Modules(ModuleError),
    /// The init's path names another file than the one that was checked.
    InitChanged {
        path: PathBuf,
    },
    Panic {
        msg: String,
    },
    /// Not a failure: a request to reboot or power off (Ctrl-Alt-Del,
    /// SIGPWR) taken while waiting.
    Requested(Halt),
    NoRootSpec,
    /// The volume's own kernel cannot be booted (`pivot.kexec`): no entry,
    /// a file that is no kernel for this machine, a refused load, and why.
    Kexec(String),
    /// `pivot.tries`: the volume was handed over that many boots since it
    /// was last blessed, and never said it came up.
    NoTriesLeft {
        volume: String,
        boots: u32,
    },
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
            Sys(e) => e.fmt(f),
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
            WaitTimeout { spec, secs, seen } => write!(
                f,
                "no device matching {spec} appeared within {secs} s; block devices seen: {}",
                if seen.is_empty() {
                    "none".to_string()
                } else {
                    crate::sys::joined(seen, ", ")
                }
            ),
            Ambiguous { spec, devices } => write!(
                f,
                "{} devices match {spec}: {}; detach one or use {}",
                devices.len(),
                crate::sys::joined(devices, ", "),
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
            HookUnusable { path, why } => write!(
                f,
                "hook {} cannot run: {why} (pivot.hook_failure=continue would go on without it)",
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
            InitChanged { path } => write!(
                f,
                "{} is no longer the file that was checked; not running it",
                path.display()
            ),
            NotInitramfs => write!(
                f,
                "/ is not a ramfs or tmpfs, so it is not an initramfs: refusing to delete its contents"
            ),
            FsckFailed {
                checker,
                device,
                status,
                meaning,
            } => match status {
                Exit::Code(c) => write!(f, "{checker} on {device} exited {c} ({meaning})"),
                other => write!(f, "{checker} on {device}: {other}"),
            },
            FsckMissing { why } => write!(
                f,
                "pivot.fsck=force, but {why} (pivot.fsck=auto would go on unchecked)"
            ),
            FsckSpawn { checker, errno } => {
                write!(f, "cannot run {}: {}", checker.display(), ErrnoText(*errno))
            }
            Modules(e) => write!(f, "loading kernel modules failed: {e}"),
            Panic { msg } => write!(f, "internal error (panic): {msg}"),
            Requested(Halt::Reboot) => {
                write!(f, "a reboot was asked for (Ctrl-Alt-Del)")
            }
            Requested(Halt::PowerOff) => {
                write!(f, "a power-off was asked for (SIGPWR)")
            }
            Kexec(why) => f.write_str(why),
            NoTriesLeft { volume, boots } => write!(
                f,
                "{volume} did not come up in {boots} boot{}; run 'pivot-init bless' on it to try again",
                if *boots == 1 { "" } else { "s" }
            ),
            Requested(how) => write!(f, "a {} was asked for", how.name()),
            NoRootSpec => write!(
                f,
                "no volume given: set pivot.root=/dev/NAME, MAJ:MIN or SERIAL=... on the kernel command line"
            ),
        }
    }
}

impl std::error::Error for Error {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Error::Sys(e) => Some(e),
            Error::Modules(e) => Some(e),
            _ => None,
        }
    }
}

impl From<SysError> for Error {
    fn from(e: SysError) -> Error {
        Error::Sys(e)
    }
}

impl From<ModuleError> for Error {
    fn from(e: ModuleError) -> Error {
        Error::Modules(e)
    }
}

pub type Result<T> = std::result::Result<T, Error>;

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sys::Op;
    use std::error::Error as _;

    #[test]
    fn display_names_path_and_errno() {
        let e = Error::from(Op::Mkdir("/new-root".into()).failed(Errno::ROFS));
        assert_eq!(
            e.to_string(),
            "cannot create directory /new-root: errno 30 (Read-only file system); create it in the image or boot with `rw`"
        );
        assert!(e.source().is_some());
        let e = Error::NotBlockDevice {
            path: "/dev/sdp".into(),
            found: NodeKind::Block(8, 1),
            want: (8, 240),
        };
        assert_eq!(
            e.to_string(),
            "/dev/sdp exists but is a block node for 8:1, not 8:240"
        );
        assert!(e.source().is_none());
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
