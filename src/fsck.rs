//! The fsck stage: after the volume is identified and its node made, before
//! it is mounted, its filesystem is checked by the boot root's own checker
//! (`fsck.TYPE -p`, `-f` added by `pivot.fsck=force`), whose output goes to
//! the log line by line (`fsck: ...`) and whose exit status is read as
//! fsck(8) defines it ([`read_status`]).
//!
//! This is the one step before the commit point that may change the
//! volume: a checker repairs what it finds, on the device that is still
//! writable (the mount stage makes it read-only only after this).

use crate::sys::Instant;
use std::ffi::CString;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use crate::config::{Config, FsckMode};
use crate::error::{Error, Result};
use crate::probe::{self, Probe};
use crate::sys::{Errno, Exit, Program, SpawnOpts, Sys, process};
use crate::verify::{self, Arch, InitProblem, Rules};

/// Where the checkers are looked for, on the boot root (in an initramfs,
/// inside it), in order.
pub const CHECKER_DIRS: [&str; 2] = ["/sbin", "/usr/sbin"];

/// The environment a checker runs with.
const CHECKER_PATH: &str = "PATH=/usr/sbin:/usr/bin:/sbin:/bin";

/// The bits of an fsck(8) exit status, with what each means.
pub const STATUS_BITS: [(i32, &str); 7] = [
    (1, "errors corrected"),
    (2, "system should be rebooted"),
    (4, "errors left uncorrected"),
    (8, "operational error"),
    (16, "usage or syntax error"),
    (32, "checking canceled by user request"),
    (128, "shared-library error"),
];

/// What an exit status says the boot should do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// 0: no errors.
    Clean,
    /// 1 or 2 (or both): errors were corrected; "reboot" (2) asks for a
    /// reboot when the checked filesystem is mounted, and the volume is not
    /// mounted yet: the boot goes on.
    Corrected,
    /// 4 and up: errors left, or the checker could not do its work.
    Failed,
}

/// An exit status read as fsck(8) defines it: the outcome and the meaning
/// of each bit set (`errors left uncorrected, operational error`). A status
/// with a bit fsck(8) does not define (64, or above 255: 126 and 127 are
/// what a shell or our own child says when the exec failed) is a failure.
pub fn read_status(code: i32) -> (Outcome, String) {
    if code == 0 {
        return (Outcome::Clean, "no errors".into());
    }
    let known: i32 = STATUS_BITS.iter().map(|(b, _)| b).sum();
    if !(0..=255).contains(&code) || code & !known != 0 {
        return (Outcome::Failed, "not an fsck(8) exit status".into());
    }
    let meaning: Vec<&str> = STATUS_BITS
        .iter()
        .filter(|(b, _)| code & b != 0)
        .map(|(_, m)| *m)
        .collect();
    let outcome = if code & !3 != 0 {
        Outcome::Failed
    } else {
        Outcome::Corrected
    };
    (outcome, crate::sys::joined(&meaning, ", "))
}

/// Why a filesystem type has no checker to run at boot, when that is by
/// design (as in the distributions' initramfs): the line the log gets.
pub fn none_by_design(fstype: &str) -> Option<&'static str> {
    match fstype {
        "xfs" => {
            Some("xfs has no boot-time checker by design: the kernel replays its log at mount")
        }
        "btrfs" => {
            Some("btrfs has no boot-time checker by design: it verifies its checksums itself")
        }
        "squashfs" | "erofs" => Some("a read-only image filesystem: there is nothing to repair"),
        _ => None,
    }
}

/// The program names that check `fstype`, in order: `fsck.TYPE`, then
/// e2fsprogs' and dosfstools' own names.
pub fn checker_names(fstype: &str) -> Vec<String> {
    let mut names = vec![format!("fsck.{fstype}")];
    match fstype {
        "ext2" | "ext3" | "ext4" => names.push("e2fsck".into()),
        "vfat" | "msdos" => names.push("fsck.fat".into()),
        _ => {}
    }
    names
}

/// The checker's arguments: `-p` (preen: repair what is safe without
/// asking, fail on the rest); `-f` with `force`, but not for FAT, whose
/// checker always checks everything and whose `-f` means something else.
pub fn checker_args(fstype: &str, force: bool) -> Vec<&'static str> {
    let mut args = vec!["-p"];
    if force && !matches!(fstype, "vfat" | "msdos") {
        args.push("-f");
    }
    args
}

/// The first checker of `names` that exists in [`CHECKER_DIRS`] on the boot
/// root and can run there (an ELF for this machine whose loader is there, or
/// a script whose interpreter is); else why not, for each one found.
fn find_checker(sys: &dyn Sys, names: &[String]) -> std::result::Result<PathBuf, Vec<String>> {
    let rules = Rules {
        arch: Arch::running(sys),
        covered: Vec::new(),
    };
    let mut unusable = Vec::new();
    for name in names {
        for dir in CHECKER_DIRS {
            let path = Path::new(dir).join(name);
            // Most are not there: one lstat says so (what the check would
            // find too: nothing at that path), instead of opening the root.
            if sys.lstat(&path) == Err(Errno::NOENT) {
                continue;
            }
            match verify::init_problem(sys, Path::new("/"), &path, &rules) {
                None => return Ok(path),
                Some(InitProblem::NotFound) => {}
                Some(why) => unusable.push(format!("{}: {why}", path.display())),
            }
        }
    }
    Err(unusable)
}

/// What the stage did.
#[derive(Debug, Default)]
pub struct Checked {
    /// What running the checker means for the volume (for the line that says
    /// what was done to it); `None` when no checker ran.
    pub change: Option<&'static str>,
    /// The volume's probe, read again after the checker ran (it may have
    /// replayed the journal); as it came when none ran, or none was made.
    pub probe: Option<Probe>,
}

/// The fsck stage on `node`, whose filesystem `probed` says (the wait's
/// probe; read here when the wait made none).
pub fn check(sys: &dyn Sys, cfg: &Config, node: &Path, probed: Option<Probe>) -> Result<Checked> {
    let unchecked = |probe| {
        Ok(Checked {
            change: None,
            probe,
        })
    };
    if cfg.fsck == FsckMode::Skip {
        log::info!("fsck: not checking {} (pivot.fsck=skip)", node.display());
        return unchecked(probed);
    }
    let force = cfg.fsck == FsckMode::Force;
    let fstype = match &probed {
        Some(p) => Some(p.fstype.to_string()),
        None => match probe::read(sys, node) {
            Ok(Some(p)) => Some(p.fstype.to_string()),
            _ => match cfg.fstypes.as_slice() {
                [one] => Some(one.clone()),
                _ => None,
            },
        },
    };
    let Some(fstype) = fstype else {
        let why = format!(
            "cannot tell the filesystem type of {} to choose its checker",
            node.display()
        );
        if force {
            return Err(Error::FsckMissing { why });
        }
        log::info!("fsck: {why}; not checked");
        return unchecked(probed);
    };
    if let Some(why) = none_by_design(&fstype) {
        log::info!("fsck: not checking {} ({fstype}): {why}", node.display());
        return unchecked(probed);
    }
    // A device attached read-only: nothing could be repaired, and a
    // checker would fail to open it for writing (exit 8).
    if sys.block_read_only(node) == Ok(true) {
        log::info!(
            "fsck: not checking {} ({fstype}): the device is read-only",
            node.display()
        );
        return unchecked(probed);
    }
    let names = checker_names(&fstype);
    let checker = match find_checker(sys, &names) {
        Ok(c) => c,
        Err(unusable) => {
            let mut why = format!(
                "no checker for {fstype} on the boot root ({} in {})",
                crate::sys::joined(&names, " or "),
                crate::sys::joined(&CHECKER_DIRS, " or ")
            );
            if !unusable.is_empty() {
                let _ = write!(
                    why,
                    "; found but unusable: {}",
                    crate::sys::joined(&unusable, "; ")
                );
            }
            if force {
                return Err(Error::FsckMissing { why });
            }
            log::info!("fsck: {why}; {} not checked", node.display());
            return unchecked(probed);
        }
    };
    let status = run_checker(sys, &checker, &checker_args(&fstype, force), node)?;
    let name = checker
        .file_name()
        .map_or_else(String::new, |n| n.to_string_lossy().into_owned());
    let device = node.file_name().map_or_else(
        || node.display().to_string(),
        |n| n.to_string_lossy().into_owned(),
    );
    let (outcome, meaning) = match status {
        Exit::Code(code) => read_status(code),
        _ => (Outcome::Failed, String::new()),
    };
    let change = match outcome {
        Outcome::Clean => {
            log::info!("fsck: {name} on {device}: exit 0 (no errors)");
            "fsck checked it"
        }
        Outcome::Corrected => {
            let code = match status {
                Exit::Code(c) => c,
                _ => 0,
            };
            let note = if code & 2 != 0 {
                ": the volume is not mounted yet, so the boot goes on"
            } else {
                ""
            };
            log::warn!("fsck: {name} on {device}: exit {code} ({meaning}){note}");
            "fsck corrected errors on it"
        }
        Outcome::Failed => {
            return Err(Error::FsckFailed {
                checker: name,
                device,
                status,
                meaning,
            });
        }
    };
    // The checker may have changed what the probe read (a journal replayed).
    let probe = probed.map(|old| probe::read(sys, node).ok().flatten().unwrap_or(old));
    Ok(Checked {
        change: Some(change),
        probe,
    })
}

/// Runs `checker ARGS node` with stdin /dev/null, each line of its output
/// logged as `fsck: LINE`; returns how it ended.
fn run_checker(sys: &dyn Sys, checker: &Path, args: &[&str], node: &Path) -> Result<Exit> {
    let spawn_err = |errno| Error::FsckSpawn {
        checker: checker.to_path_buf(),
        errno,
    };
    let mut argv = vec![process::c_path(checker).map_err(spawn_err)?];
    argv.extend(args.iter().filter_map(|a| CString::new(*a).ok()));
    argv.push(process::c_path(node).map_err(spawn_err)?);
    let shown: Vec<String> = argv
        .iter()
        .map(|a| a.to_string_lossy().into_owned())
        .collect();
    log::info!("fsck: running {}", crate::sys::joined(&shown, " "));
    let env = [CString::new(CHECKER_PATH).map_err(|_| spawn_err(crate::sys::Errno::INVAL))?];
    let opts = SpawnOpts {
        cwd: c"/",
        new_group: true,
        stdin_null: true,
        new_pid_ns: false,
        fd3: None,
    };
    let started = Instant::now();
    let path = argv.first().cloned().unwrap_or_default();
    let status = sys
        .run_logged(Program::Path(&path), &argv, &env, &opts, &mut |line| {
            log::info!("fsck: {line}")
        })
        .map_err(spawn_err)?;
    log::debug!(
        "fsck: {} ended with {status} after {} ms",
        checker.display(),
        crate::sys::millis(started.elapsed())
    );
    Ok(status)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exit_statuses_read_as_fsck8_says() {
        let read = |c| read_status(c);
        assert_eq!(read(0), (Outcome::Clean, "no errors".into()));
        assert_eq!(read(1), (Outcome::Corrected, "errors corrected".into()));
        assert_eq!(
            read(2),
            (Outcome::Corrected, "system should be rebooted".into())
        );
        assert_eq!(
            read(3),
            (
                Outcome::Corrected,
                "errors corrected, system should be rebooted".into()
            )
        );
        assert_eq!(read(4), (Outcome::Failed, "errors left uncorrected".into()));
        assert_eq!(read(8), (Outcome::Failed, "operational error".into()));
        assert_eq!(read(16), (Outcome::Failed, "usage or syntax error".into()));
        assert_eq!(
            read(32),
            (Outcome::Failed, "checking canceled by user request".into())
        );
        assert_eq!(read(128), (Outcome::Failed, "shared-library error".into()));
        // e2fsck's "corrected, but some left" and the like: every bit named.
        assert_eq!(
            read(12),
            (
                Outcome::Failed,
                "errors left uncorrected, operational error".into()
            )
        );
        assert_eq!(
            read(5),
            (
                Outcome::Failed,
                "errors corrected, errors left uncorrected".into()
            )
        );
        // What no fsck says: the exec failed (126, 127), out of range.
        for c in [64, 126, 127, 256, -1] {
            assert_eq!(
                read(c),
                (Outcome::Failed, "not an fsck(8) exit status".into()),
                "{c}"
            );
        }
    }

    #[test]
    fn checkers_and_their_arguments_by_type() {
        assert_eq!(checker_names("ext4"), ["fsck.ext4", "e2fsck"]);
        assert_eq!(checker_names("ext2"), ["fsck.ext2", "e2fsck"]);
        assert_eq!(checker_names("vfat"), ["fsck.vfat", "fsck.fat"]);
        assert_eq!(checker_names("f2fs"), ["fsck.f2fs"]);
        assert_eq!(checker_args("ext4", false), ["-p"]);
        assert_eq!(checker_args("ext4", true), ["-p", "-f"]);
        // fsck.fat -f salvages lost chains: not a "force".
        assert_eq!(checker_args("vfat", true), ["-p"]);
        for t in ["xfs", "btrfs", "squashfs", "erofs"] {
            assert!(none_by_design(t).is_some(), "{t}");
        }
        assert!(none_by_design("ext4").is_none());
    }
}
