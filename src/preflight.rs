//! The checks of a volume made before anything irreversible, shared by the
//! boot and by `pivot-init check`: which init will run, whether the hook
//! will run, whether the old-root directory can be had.

use std::path::{Path, PathBuf};

use crate::config::Config;
use crate::error::{Error, Result};
use crate::sys::{self, API_MOUNTS, Errno, ErrnoText, FileInfo, FileType, OpenFile, Resolve, Sys};
use crate::verify::{self, Arch, BINPRM_BUF_SIZE, CheckedInit, InitProblem, Rules, Shebang};

/// What will happen with the hook.
pub enum HookCheck {
    /// `pivot.hook=none`.
    Disabled,
    /// The volume has no file there.
    Absent,
    /// There is a file, but it is not run, and why.
    Skip(PathBuf, String),
    /// It is the hook, but the kernel could not run it: its interpreter or
    /// dynamic loader is missing or unusable on the boot root. With
    /// `pivot.hook_failure=abort` the volume is refused before the commit.
    Unusable(PathBuf, String),
    /// It will run.
    Run(Hook),
}

/// A hook that passed its check, open: what runs is this file.
pub struct Hook {
    /// The path as seen from the boot root (`/new-root/pre-pivot`).
    pub path: PathBuf,
    pub file: OpenFile,
    /// Its `#!` line; `None` for an ELF binary.
    pub script: Option<Shebang>,
}

/// Why a hook file is not run, or `None` when it should run. `lstat` facts:
/// a symlink is never followed (it could point off the volume).
pub fn hook_skip_reason(st: &FileInfo) -> Option<String> {
    if st.kind == FileType::Symlink {
        return Some("it is a symlink (a hook must be a regular file on the volume)".into());
    }
    if st.kind != FileType::RegularFile {
        return Some("it is not a regular file".into());
    }
    if st.uid != 0 {
        return Some(format!("it is owned by uid {}, not root", st.uid));
    }
    if st.mode & 0o022 != 0 {
        return Some(format!(
            "it is group- or world-writable (mode {:04o})",
            st.mode & 0o7777
        ));
    }
    if st.mode & 0o111 == 0 {
        return Some("it is not executable".into());
    }
    None
}

/// Checks the hook of the volume mounted at `root`: opened inside the
/// volume (no symlink on the way leaves it; the hook itself is not a
/// symlink), then judged on the open file.
pub fn hook(sys: &dyn Sys, root: &Path, hook: Option<&Path>) -> HookCheck {
    let Some(hook) = hook else {
        return HookCheck::Disabled;
    };
    let path = sys::in_root(root, hook);
    let skip = |why: String| HookCheck::Skip(path.clone(), why);
    let file = match sys.open_in(root, hook, Resolve::Beneath) {
        Ok(f) => f,
        Err(Errno::NOENT) => return HookCheck::Absent,
        Err(Errno::LOOP) => {
            return skip("it is a symlink (a hook must be a regular file on the volume)".into());
        }
        Err(Errno::XDEV) => {
            return skip("its path leaves the volume through a symlink".into());
        }
        Err(e) => return skip(format!("cannot open it: {}", ErrnoText(e))),
    };
    let st = match file.info() {
        Ok(st) => st,
        Err(e) => return skip(format!("cannot stat it: {}", ErrnoText(e))),
    };
    if let Some(why) = hook_skip_reason(&st) {
        return skip(why);
    }
    let head = file.head(BINPRM_BUF_SIZE);
    let script = match verify::shebang(&head) {
        Some(Ok(s)) => Some(s),
        Some(Err(why)) => return skip(why.into()),
        None if head.starts_with(b"\x7fELF") => None,
        None => return skip("it is neither an ELF binary nor a `#!` script".into()),
    };
    // It runs before the switch: its interpreters come from the boot root.
    let rules = Rules {
        arch: Arch::running(sys),
        covered: Vec::new(),
    };
    match verify::check_program(sys, file, Path::new("/"), &rules) {
        (_, Err(why)) => HookCheck::Unusable(path, why.to_string()),
        (file, Ok(())) => HookCheck::Run(Hook { path, file, script }),
    }
}

/// The checks of the check stage on the volume at `cfg.new_root`: the init
/// that will run, open, and the hook (refused here when it cannot run and
/// `pivot.hook_failure` is `abort`).
pub fn checks(sys: &dyn Sys, cfg: &Config, moved: &[&str]) -> Result<(CheckedInit, HookCheck)> {
    let root = cfg.new_root.as_path();
    let init = init(sys, root, cfg, moved)?;
    log::debug!("checked init {}", init.path.display());
    let hook = hook(sys, root, cfg.hook.as_deref());
    if let (HookCheck::Unusable(path, why), true) = (&hook, cfg.hook_abort) {
        let (path, why) = (path.clone(), why.clone());
        return Err(Error::HookUnusable { path, why });
    }
    Ok((init, hook))
}

/// The init that will run on the volume mounted at `root` (the configured
/// one or the first usable fallback), open, or why none can. `moved` are the
/// API mounts the switch carries over: they and the old-root directory
/// cover what the volume has there, so an init resolving there is refused.
pub fn init(sys: &dyn Sys, root: &Path, cfg: &Config, moved: &[&str]) -> Result<CheckedInit> {
    let rules = rules(sys, cfg, moved);
    crate::exec::choose_init(sys, root, &cfg.init, cfg.initramfs, &rules)
}

/// The machine to check ELF headers against, and what the switch covers.
fn rules(sys: &dyn Sys, cfg: &Config, moved: &[&str]) -> Rules {
    let mut covered = vec![cfg.old_root.clone()];
    covered.extend(moved.iter().map(PathBuf::from));
    Rules {
        arch: Arch::running(sys),
        covered,
    }
}

/// Why `p` would not be run as the init of the volume at `root`, or `None`.
pub fn init_problem(sys: &dyn Sys, root: &Path, cfg: &Config, p: &Path) -> Option<InitProblem> {
    crate::verify::init_problem(sys, root, p, &rules(sys, cfg, &API_MOUNTS))
}

/// Whether the directory the boot root moves to can be had.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OldRootCheck {
    Exists,
    /// Missing; its parent is writable, so it will be created.
    WillCreate,
    NotADirectory,
    ParentMissing,
    /// Missing, and this directory cannot be written.
    ParentNotWritable(PathBuf),
}

pub fn old_root(sys: &dyn Sys, root: &Path, old_root: &Path) -> OldRootCheck {
    let old = sys::in_root(root, old_root);
    if sys.is_dir(&old) {
        return OldRootCheck::Exists;
    }
    if sys.lstat(&old).is_ok() {
        return OldRootCheck::NotADirectory;
    }
    let parent = old.parent().unwrap_or(root);
    if !sys.is_dir(parent) {
        OldRootCheck::ParentMissing
    } else if sys.writable(parent) {
        OldRootCheck::WillCreate
    } else {
        OldRootCheck::ParentNotWritable(parent.to_path_buf())
    }
}

/// Everything checked before the switch.
pub struct Preflight {
    pub init: Result<CheckedInit>,
    pub hook: HookCheck,
    pub old_root: OldRootCheck,
}

pub fn preflight(sys: &dyn Sys, root: &Path, cfg: &Config) -> Preflight {
    Preflight {
        init: init(sys, root, cfg, &API_MOUNTS),
        hook: hook(sys, root, cfg.hook.as_deref()),
        old_root: old_root(sys, root, &cfg.old_root),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn info(kind: FileType, mode: u32, uid: u32) -> FileInfo {
        FileInfo {
            kind,
            mode,
            uid,
            dev: 0,
            ino: 0,
            rdev: 0,
            size: 0,
        }
    }

    #[test]
    fn hook_skip_reasons() {
        let why = |t, m, u| hook_skip_reason(&info(t, m, u));
        assert_eq!(why(FileType::RegularFile, 0o755, 0), None);
        assert_eq!(why(FileType::RegularFile, 0o700, 0), None);
        let why = |t, m, u| why(t, m, u).unwrap();
        assert_eq!(why(FileType::RegularFile, 0o644, 0), "it is not executable");
        assert_eq!(
            why(FileType::Symlink, 0o777, 0),
            "it is a symlink (a hook must be a regular file on the volume)"
        );
        assert_eq!(
            why(FileType::Directory, 0o755, 0),
            "it is not a regular file"
        );
        assert_eq!(
            why(FileType::RegularFile, 0o755, 1000),
            "it is owned by uid 1000, not root"
        );
        assert_eq!(
            why(FileType::RegularFile, 0o100777, 0),
            "it is group- or world-writable (mode 0777)"
        );
        assert_eq!(
            why(FileType::RegularFile, 0o775, 0),
            "it is group- or world-writable (mode 0775)"
        );
    }

    #[test]
    fn a_volume_tree() {
        let root = std::env::temp_dir().join(format!("pivot-preflight-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&root);
        std::fs::create_dir_all(root.join("etc")).unwrap();
        let fs = sys::RealSys::default();
        let why = |p: &str| match hook(&fs, &root, Some(Path::new(p))) {
            HookCheck::Skip(_, why) => why,
            HookCheck::Unusable(_, why) => format!("unusable: {why}"),
            HookCheck::Run(h) => format!("runs {}", h.path.display()),
            HookCheck::Absent => "absent".into(),
            HookCheck::Disabled => "disabled".into(),
        };
        assert!(matches!(hook(&fs, &root, None), HookCheck::Disabled));
        assert_eq!(why("/pre-pivot"), "absent");
        std::os::unix::fs::symlink("/bin/true", root.join("pre-pivot")).unwrap();
        assert_eq!(
            why("/pre-pivot"),
            "it is a symlink (a hook must be a regular file on the volume)"
        );
        // A parent directory that is a symlink off the volume.
        let outside = root.with_extension("outside");
        std::fs::create_dir_all(&outside).unwrap();
        std::fs::copy("/bin/busybox", outside.join("hook")).unwrap();
        std::os::unix::fs::symlink(&outside, root.join("hooks")).unwrap();
        assert_eq!(
            why("/hooks/hook"),
            "its path leaves the volume through a symlink"
        );
        use std::os::unix::fs::PermissionsExt;
        let mode = |m| std::fs::Permissions::from_mode(m);
        std::fs::write(root.join("etc/hook"), "#!/bin/sh\ntrue\n").unwrap();
        std::fs::set_permissions(root.join("etc/hook"), mode(0o755)).unwrap();
        if sys::is_root_user() {
            assert_eq!(
                why("/etc/hook"),
                format!("runs {}/etc/hook", root.display())
            );
            std::fs::write(root.join("etc/hook"), "plain text").unwrap();
            assert_eq!(
                why("/etc/hook"),
                "it is neither an ELF binary nor a `#!` script"
            );
        }
        std::fs::remove_dir_all(&outside).unwrap();
        assert_eq!(
            old_root(&fs, &root, Path::new("/etc")),
            OldRootCheck::Exists
        );
        assert_eq!(
            old_root(&fs, &root, Path::new("/a/b")),
            OldRootCheck::ParentMissing
        );
        std::fs::write(root.join("file"), "").unwrap();
        assert_eq!(
            old_root(&fs, &root, Path::new("/file")),
            OldRootCheck::NotADirectory
        );
        assert_eq!(
            old_root(&fs, &root, Path::new("/old-root")),
            OldRootCheck::WillCreate
        );
        let cfg = Config::default();
        let p = preflight(&fs, &root, &cfg);
        assert!(p.init.is_err());
        std::fs::remove_dir_all(&root).unwrap();
    }
}
