//! The checks of a volume made before anything irreversible, shared by the
//! boot and by `pivot-init check`: which init will run, whether the hook
//! will run, whether the old-root directory can be had.

use std::path::{Path, PathBuf};

use crate::config::Config;
use crate::error::Result;
use crate::sys::{self, FileInfo, FileType};

/// What will happen with the hook.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HookCheck {
    /// `pivot.hook=none`.
    Disabled,
    /// The volume has no file there.
    Absent,
    /// There is a file, but it is not run, and why.
    Skip(PathBuf, String),
    /// It will run: the path as seen from the boot root.
    Run(PathBuf),
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

/// Checks the hook of the volume mounted at `root`.
pub fn hook(root: &Path, hook: Option<&Path>) -> HookCheck {
    let Some(hook) = hook else {
        return HookCheck::Disabled;
    };
    let path = sys::in_root(root, hook);
    match sys::lstat(&path) {
        Err(_) => HookCheck::Absent,
        Ok(st) => match hook_skip_reason(&st) {
            Some(why) => HookCheck::Skip(path, why),
            None => HookCheck::Run(path),
        },
    }
}

/// The init that will run on the volume mounted at `root` (the configured
/// one or the first usable fallback), or why none can.
pub fn init(root: &Path, cfg: &Config) -> Result<PathBuf> {
    crate::exec::choose_init(root, &cfg.init)
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

pub fn old_root(root: &Path, old_root: &Path) -> OldRootCheck {
    let old = sys::in_root(root, old_root);
    if sys::is_dir(&old) {
        return OldRootCheck::Exists;
    }
    if sys::lstat(&old).is_ok() {
        return OldRootCheck::NotADirectory;
    }
    let parent = old.parent().unwrap_or(root);
    if !sys::is_dir(parent) {
        OldRootCheck::ParentMissing
    } else if sys::writable(parent) {
        OldRootCheck::WillCreate
    } else {
        OldRootCheck::ParentNotWritable(parent.to_path_buf())
    }
}

/// Everything checked before the switch.
pub struct Preflight {
    pub init: Result<PathBuf>,
    pub hook: HookCheck,
    pub old_root: OldRootCheck,
}

pub fn preflight(root: &Path, cfg: &Config) -> Preflight {
    Preflight {
        init: init(root, cfg),
        hook: hook(root, cfg.hook.as_deref()),
        old_root: old_root(root, &cfg.old_root),
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
        assert_eq!(hook(&root, None), HookCheck::Disabled);
        assert_eq!(
            hook(&root, Some(Path::new("/pre-pivot"))),
            HookCheck::Absent
        );
        std::os::unix::fs::symlink("/bin/true", root.join("pre-pivot")).unwrap();
        assert!(matches!(
            hook(&root, Some(Path::new("/pre-pivot"))),
            HookCheck::Skip(_, ref why) if why.contains("symlink")
        ));
        assert_eq!(old_root(&root, Path::new("/etc")), OldRootCheck::Exists);
        assert_eq!(
            old_root(&root, Path::new("/a/b")),
            OldRootCheck::ParentMissing
        );
        std::fs::write(root.join("file"), "").unwrap();
        assert_eq!(
            old_root(&root, Path::new("/file")),
            OldRootCheck::NotADirectory
        );
        assert_eq!(
            old_root(&root, Path::new("/old-root")),
            OldRootCheck::WillCreate
        );
        let cfg = Config::default();
        let p = preflight(&root, &cfg);
        assert!(p.init.is_err());
        std::fs::remove_dir_all(&root).unwrap();
    }
}
