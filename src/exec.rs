//! The exec stage: which init runs on the new root, and the `execve` itself.

use std::ffi::{CString, OsString};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use crate::error::{Error, Result};
use crate::sys::process;

/// Inits tried after the configured one, in order.
pub const FALLBACK_INITS: [&str; 4] = ["/sbin/init", "/etc/init", "/bin/init", "/bin/sh"];

/// Whether `p` (absolute, as seen from inside `root`) can be run there.
pub fn executable_in(root: &Path, p: &Path) -> bool {
    crate::verify::init_problem(root, p).is_none()
}

/// The list of inits to try: the configured one, then the usual places.
pub fn candidates(wanted: &Path) -> Vec<PathBuf> {
    let mut list = vec![wanted.to_path_buf()];
    for c in FALLBACK_INITS {
        if Path::new(c) != wanted {
            list.push(PathBuf::from(c));
        }
    }
    list
}

/// Picks the init to run on the new root before anything irreversible happens.
pub fn choose_init(root: &Path, wanted: &Path) -> Result<PathBuf> {
    let mut tried = Vec::new();
    for c in candidates(wanted) {
        match crate::verify::init_problem(root, &c) {
            None => {
                if c != wanted {
                    let problems: Vec<String> = tried
                        .iter()
                        .map(|(p, why): &(PathBuf, _)| format!("{}: {why}", p.display()))
                        .collect();
                    log::warn!(
                        "cannot use {} ({}); using {}",
                        wanted.display(),
                        problems.join("; "),
                        c.display()
                    );
                }
                return Ok(c);
            }
            Some(why) => tried.push((c, why)),
        }
    }
    Err(Error::NoInit {
        root: root.to_path_buf(),
        tried,
    })
}

/// Replaces this process with `path`, giving it the arguments PID 1 got from
/// the kernel (argv[0] becomes the init's path). Returns only on failure.
pub fn exec(path: &Path, args: &[OsString]) -> Error {
    let fail = |errno| Error::Exec {
        path: path.to_path_buf(),
        errno,
    };
    let path_c = match process::c_path(path) {
        Ok(c) => c,
        Err(e) => return fail(e),
    };
    let mut argv = vec![path_c.clone()];
    argv.extend(
        args.iter()
            .skip(1)
            .filter_map(|a| CString::new(a.as_bytes()).ok()),
    );
    fail(process::execve(&path_c, &argv, &process::environ()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn candidates_order_without_duplicates() {
        assert_eq!(
            candidates(Path::new("/sbin/init")),
            ["/sbin/init", "/etc/init", "/bin/init", "/bin/sh"].map(PathBuf::from)
        );
        assert_eq!(candidates(Path::new("/init")).len(), 5);
    }

    #[test]
    fn init_is_resolved_inside_the_root() {
        let root = std::env::temp_dir().join(format!("pivot-exec-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&root);
        std::fs::create_dir_all(root.join("sbin")).unwrap();
        std::fs::create_dir_all(root.join("bin")).unwrap();
        // An absolute symlink pointing at something only the host has.
        std::os::unix::fs::symlink("/bin/true", root.join("sbin/init")).unwrap();
        assert!(!executable_in(&root, Path::new("/sbin/init")));
        std::fs::write(root.join("bin/sh"), b"plain").unwrap();
        let err = choose_init(&root, Path::new("/sbin/init")).unwrap_err();
        assert_eq!(
            err.to_string(),
            format!(
                "no usable init on the new root {}: /sbin/init: not found; /etc/init: not found; \
                 /bin/init: not found; /bin/sh: not executable",
                root.display()
            )
        );
        std::fs::set_permissions(root.join("bin/sh"), std::fs::Permissions::from_mode(0o755))
            .unwrap();
        assert_eq!(
            choose_init(&root, Path::new("/sbin/init")).unwrap(),
            PathBuf::from("/bin/sh")
        );
        // Now the symlink target exists inside the root.
        std::fs::write(root.join("bin/true"), "plain").unwrap();
        std::fs::set_permissions(
            root.join("bin/true"),
            std::fs::Permissions::from_mode(0o755),
        )
        .unwrap();
        assert_eq!(
            choose_init(&root, Path::new("/sbin/init")).unwrap(),
            PathBuf::from("/sbin/init")
        );
        std::fs::remove_dir_all(&root).unwrap();
    }
}
