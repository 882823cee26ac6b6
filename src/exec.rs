//! The exec stage: which init runs on the new root, and the exec itself,
//! which runs the file that was checked.

use std::ffi::{CString, OsString};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use crate::config::Config;
use crate::error::{Error, Result};
use crate::sys::{End, Errno, Op, Program, SpawnOpts, Supervised, Sys, process};
use crate::verify::{self, Arch, CheckedInit, Rules};

/// Inits tried after the configured one, in order, as the kernel does.
/// `/bin/sh` is tried in initramfs mode only: a machine image has its old
/// init, a better last resort than a shell nobody watches.
pub const FALLBACK_INITS: [&str; 4] = ["/sbin/init", "/etc/init", "/bin/init", "/bin/sh"];

/// Whether `p` (absolute, as seen from inside `root`) can be run there.
pub fn executable_in(sys: &dyn Sys, root: &Path, p: &Path) -> bool {
    let rules = Rules {
        arch: Arch::running(sys),
        covered: Vec::new(),
    };
    verify::init_problem(sys, root, p, &rules).is_none()
}

/// The list of inits to try: the configured one, then the usual places.
pub fn candidates(wanted: &Path, initramfs: bool) -> Vec<PathBuf> {
    let mut list = vec![wanted.to_path_buf()];
    for c in FALLBACK_INITS {
        if Path::new(c) != wanted && (initramfs || c != "/bin/sh") {
            list.push(PathBuf::from(c));
        }
    }
    list
}

/// Picks the init to run on the new root before anything irreversible
/// happens, and keeps it open: the exec runs the file that was checked.
pub fn choose_init(
    sys: &dyn Sys,
    root: &Path,
    wanted: &Path,
    initramfs: bool,
    rules: &Rules,
) -> Result<CheckedInit> {
    let mut tried = Vec::new();
    for c in candidates(wanted, initramfs) {
        match verify::check_init(sys, root, &c, rules) {
            Ok(init) => {
                if c != wanted {
                    let problems: Vec<String> = tried
                        .iter()
                        .map(|(p, why): &(PathBuf, _)| format!("{}: {why}", p.display()))
                        .collect();
                    log::warn!(
                        "cannot use {} ({}); using {}",
                        wanted.display(),
                        crate::sys::joined(&problems, "; "),
                        c.display()
                    );
                }
                return Ok(init);
            }
            Err(why) => tried.push((c, why)),
        }
    }
    Err(Error::NoInit {
        root: root.to_path_buf(),
        tried,
    })
}

/// PID 1's arguments for `path`: argv[0] is the path, then what the kernel gave.
fn argv(path: &CString, args: &[OsString]) -> Vec<CString> {
    let mut argv = vec![path.clone()];
    argv.extend(
        args.iter()
            .skip(1)
            .filter_map(|a| CString::new(a.as_bytes()).ok()),
    );
    argv
}

/// The path as a C string and PID 1's arguments for it (argv[0] becomes
/// the path, then what the kernel gave), with the process made ready to exec.
fn prepare(sys: &dyn Sys, path: &Path, args: &[OsString]) -> Result<(CString, Vec<CString>)> {
    let path_c = process::c_path(path).map_err(|errno| Op::Exec(path.into()).failed(errno))?;
    let argv = argv(&path_c, args);
    sys.clean_for_exec();
    Ok((path_c, argv))
}

/// Replaces PID 1 with `path`, giving it the arguments PID 1 got from the
/// kernel. Returns only on failure (or on the fake, how it ended).
pub fn exec(sys: &dyn Sys, path: &Path, args: &[OsString]) -> Result<End> {
    let (path_c, argv) = prepare(sys, path, args)?;
    sys.exec(Program::Path(&path_c), &argv, &process::environ())
        .map_err(|errno| Op::Exec(path.into()).failed(errno).into())
}

/// Execs a checked init (after the switch: its path is now seen from `/`).
/// A binary runs from the open file (`execveat`); a script by its path,
/// which its interpreter opens again, once the path is seen to name the
/// same file. Returns only on failure (or on the fake, how it ended).
pub fn exec_checked(sys: &dyn Sys, init: &CheckedInit, args: &[OsString]) -> Result<End> {
    let path = init.path.as_path();
    let fail = |errno| Error::from(Op::Exec(path.into()).failed(errno));
    let (path_c, argv) = prepare(sys, path, args)?;
    if !init.script {
        match sys.exec(Program::File(&init.file), &argv, &process::environ()) {
            Err(Errno::NOSYS) => log::debug!("no execveat in this kernel: exec by path"),
            r => return r.map_err(fail),
        }
    }
    let same = match (sys.stat(path), init.file.info()) {
        (Ok(a), Ok(b)) => (a.dev, a.ino) == (b.dev, b.ino),
        _ => false,
    };
    if !same {
        return Err(Error::InitChanged {
            path: path.to_path_buf(),
        });
    }
    sys.exec(Program::Path(&path_c), &argv, &process::environ())
        .map_err(fail)
}

/// The exec stage: execs the checked init. In an initramfs, where the
/// switch cannot be undone, the other candidates are tried if that still
/// fails. `pivot.debug_exec_fail` makes the first exec fail (ENOEXEC).
pub fn exec_init(
    sys: &dyn Sys,
    cfg: &Config,
    init: &CheckedInit,
    args: &[OsString],
) -> Result<End> {
    let mut last = if cfg.debug_exec_fail {
        Error::from(Op::Exec(init.path.clone()).failed(Errno::NOEXEC))
    } else {
        match exec_checked(sys, init, args) {
            Ok(end) => return Ok(end),
            Err(e) => e,
        }
    };
    if !cfg.initramfs {
        return Err(last);
    }
    for c in candidates(&cfg.init, true) {
        if c != init.path && executable_in(sys, Path::new("/"), &c) {
            log::error!("{last}; trying {}", c.display());
            match exec(sys, &c, args) {
                Ok(end) => return Ok(end),
                Err(e) => last = e,
            }
        }
    }
    Err(last)
}

/// Runs `/bin/sh` on the console (PID 1's stdin/stdout/stderr) and waits
/// for it, reaping the orphans it leaves as they exit: how it ended, or a
/// reboot or power-off asked for meanwhile (Ctrl-Alt-Del, SIGPWR).
pub fn console_shell(sys: &dyn Sys) -> std::result::Result<Supervised, Errno> {
    let sh = c"/bin/sh";
    let opts = SpawnOpts {
        cwd: c"/",
        new_group: true,
        stdin_null: false,
        new_pid_ns: false,
        fd3: None,
    };
    let child = sys.spawn(
        Program::Path(sh),
        &[sh.to_owned()],
        &process::environ(),
        &opts,
    )?;
    Ok(sys.supervise(Some(child.pid)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn candidates_order_without_duplicates() {
        assert_eq!(
            candidates(Path::new("/sbin/init"), true),
            ["/sbin/init", "/etc/init", "/bin/init", "/bin/sh"].map(PathBuf::from)
        );
        assert_eq!(candidates(Path::new("/init"), true).len(), 5);
        // A machine image falls back to its old init, not to a shell on the volume.
        assert_eq!(
            candidates(Path::new("/sbin/init"), false),
            ["/sbin/init", "/etc/init", "/bin/init"].map(PathBuf::from)
        );
        // ... unless the shell is what was asked for.
        assert_eq!(
            candidates(Path::new("/bin/sh"), false),
            ["/bin/sh", "/sbin/init", "/etc/init", "/bin/init"].map(PathBuf::from)
        );
    }

    #[test]
    fn init_is_resolved_inside_the_root() {
        let root = std::env::temp_dir().join(format!("pivot-exec-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&root);
        std::fs::create_dir_all(root.join("sbin")).unwrap();
        std::fs::create_dir_all(root.join("bin")).unwrap();
        let rules = Rules {
            arch: None,
            covered: Vec::new(),
        };
        let fs = crate::sys::RealSys::default();
        let choose = |initramfs| {
            choose_init(&fs, &root, Path::new("/sbin/init"), initramfs, &rules).map(|i| i.path)
        };
        // An absolute symlink pointing at something only the host has.
        std::os::unix::fs::symlink("/bin/busybox", root.join("sbin/init")).unwrap();
        assert!(!executable_in(&fs, &root, Path::new("/sbin/init")));
        std::fs::write(root.join("bin/sh"), b"plain").unwrap();
        assert_eq!(
            choose(true).unwrap_err().to_string(),
            format!(
                "no usable init on the new root {}: /sbin/init: not found; /etc/init: not found; \
                 /bin/init: not found; /bin/sh: not executable",
                root.display()
            )
        );
        let exe = std::fs::Permissions::from_mode(0o755);
        std::fs::set_permissions(root.join("bin/sh"), exe.clone()).unwrap();
        assert!(choose(true).unwrap_err().to_string().ends_with(
            "/bin/sh: neither an ELF binary nor a `#!` script (the kernel would refuse it: ENOEXEC)"
        ));
        std::fs::copy("/bin/busybox", root.join("bin/sh")).unwrap();
        assert_eq!(choose(true).unwrap(), PathBuf::from("/bin/sh"));
        assert!(
            choose(false).is_err(),
            "no /bin/sh fallback in a machine image"
        );
        // Now the symlink target exists inside the root.
        std::fs::copy("/bin/busybox", root.join("bin/busybox")).unwrap();
        std::fs::set_permissions(root.join("bin/busybox"), exe).unwrap();
        assert_eq!(choose(false).unwrap(), PathBuf::from("/sbin/init"));
        std::fs::remove_dir_all(&root).unwrap();
    }
}
