//! The hook stage: run the volume's pre-pivot program, if it has one.

use std::ffi::CString;
use std::os::unix::ffi::OsStrExt;
use std::path::Path;
use std::time::Instant;

use rustix::fs::FileType;
use rustix::process::WaitStatus;

use crate::config::Config;
use crate::error::{Error, Result};

pub const HOOK_PATH_ENV: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

/// Why a hook file is not run, or `None` when it should run. `lstat` facts:
/// a symlink is never followed (it could point off the volume).
pub fn skip_reason(file_type: FileType, mode: u32, uid: u32) -> Option<String> {
    if file_type == FileType::Symlink {
        return Some("it is a symlink (a hook must be a regular file on the volume)".into());
    }
    if file_type != FileType::RegularFile {
        return Some("it is not a regular file".into());
    }
    if uid != 0 {
        return Some(format!("it is owned by uid {uid}, not root"));
    }
    if mode & 0o022 != 0 {
        return Some(format!(
            "it is group- or world-writable (mode {:04o})",
            mode & 0o7777
        ));
    }
    if mode & 0o111 == 0 {
        return Some("it is not executable".into());
    }
    None
}

/// Describes how a child ended, for the log.
pub fn status_text(st: WaitStatus) -> String {
    match (st.exit_status(), st.terminating_signal()) {
        (Some(c), _) => format!("exit status {c}"),
        (None, Some(sig)) => format!("killed by signal {sig}"),
        _ => "ended".into(),
    }
}

/// The hook's `KEY=VALUE` environment.
fn hook_env(device: &Path, new_root: &Path, fstype: &str) -> Vec<CString> {
    let mut env = Vec::new();
    for (k, v) in [
        ("PIVOT_DEVICE", device.as_os_str().as_bytes()),
        ("PIVOT_NEW_ROOT", new_root.as_os_str().as_bytes()),
        ("PIVOT_FSTYPE", fstype.as_bytes()),
        ("PATH", HOOK_PATH_ENV.as_bytes()),
    ] {
        let mut kv = format!("{k}=").into_bytes();
        kv.extend_from_slice(v);
        if let Ok(c) = CString::new(kv) {
            env.push(c);
        }
    }
    env
}

/// Runs the hook with cwd = the new root; returns Ok when there is none, it
/// was skipped, it succeeded, or it failed with `pivot.hook_failure=continue`.
pub fn run(cfg: &Config, device: &Path, fstype: &str) -> Result<()> {
    let Some(hook) = &cfg.hook else {
        return Ok(());
    };
    let rel = hook.strip_prefix("/").unwrap_or(hook);
    let path = cfg.new_root.join(rel);
    let Ok(st) = rustix::fs::lstat(&path) else {
        log::info!("no hook at {} on the volume", hook.display());
        return Ok(());
    };
    if let Some(why) = skip_reason(FileType::from_raw_mode(st.st_mode), st.st_mode, st.st_uid) {
        log::warn!("not running hook {}: {why}", path.display());
        return Ok(());
    }
    let started = Instant::now();
    log::info!("running hook {}", path.display());
    let spawn_err = |err: String| Error::HookSpawn {
        path: path.display().to_string(),
        err,
    };
    let path_c =
        crate::sys::cstring("the hook path", path.as_os_str().as_bytes()).map_err(spawn_err)?;
    let cwd = crate::sys::cstring("the new root", cfg.new_root.as_os_str().as_bytes())
        .map_err(spawn_err)?;
    let opts = crate::sys::SpawnOpts {
        cwd: &cwd,
        new_group: true,
        stdin_null: true,
    };
    let env = hook_env(device, &cfg.new_root, fstype);
    let pid = crate::sys::spawn(&path_c, std::slice::from_ref(&path_c), &env, &opts)
        .map_err(|e| spawn_err(format!("fork failed: {}", crate::error::ErrnoText(e))))?;
    let waited = if cfg.hook_timeout_secs == 0 {
        crate::sys::wait_child(pid).map(Some)
    } else {
        crate::sys::wait_child_for(pid, std::time::Duration::from_secs(cfg.hook_timeout_secs))
    };
    let status = match waited {
        Ok(Some(st)) => st,
        Ok(None) => {
            log::warn!(
                "hook {} still running after {} s: killing its process group (TERM, KILL after 2 s)",
                path.display(),
                cfg.hook_timeout_secs
            );
            crate::sys::kill_group(pid, std::time::Duration::from_secs(2));
            let err = Error::HookTimeout {
                path: path.display().to_string(),
                secs: cfg.hook_timeout_secs,
            };
            if cfg.hook_abort {
                return Err(err);
            }
            log::warn!("{err}; going on as pivot.hook_failure=continue says");
            return Ok(());
        }
        Err(e) => {
            return Err(spawn_err(format!(
                "waiting for it failed: {}",
                crate::error::ErrnoText(e)
            )));
        }
    };
    let text = status_text(status);
    log::info!(
        "hook {} ended with {text} after {} ms",
        path.display(),
        started.elapsed().as_millis()
    );
    if status.exit_status() == Some(0) {
        return Ok(());
    }
    if cfg.hook_abort {
        return Err(Error::HookFailed {
            path: path.display().to_string(),
            status: text,
        });
    }
    log::warn!("hook failed ({text}); going on as pivot.hook_failure=continue says");
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn skip_reasons() {
        assert_eq!(skip_reason(FileType::RegularFile, 0o755, 0), None);
        assert_eq!(skip_reason(FileType::RegularFile, 0o700, 0), None);
        let why = |t, m, u| skip_reason(t, m, u).unwrap();
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
    fn runs_with_env_and_cwd_and_reports_failure() {
        let dir = std::env::temp_dir().join(format!("pivot-hook-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let hook = dir.join("pre-pivot");
        std::fs::write(
            &hook,
            "#!/bin/sh\necho \"$PIVOT_DEVICE $PIVOT_FSTYPE $PIVOT_NEW_ROOT $(pwd)\" > out\nexit ${FAIL:-0}\n",
        )
        .unwrap();
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&hook, std::fs::Permissions::from_mode(0o755)).unwrap();
        let cfg = Config {
            new_root: dir.clone(),
            ..Config::default()
        };
        run(&cfg, Path::new("/dev/vdz"), "ext4").unwrap();
        let out = std::fs::read_to_string(dir.join("out")).unwrap();
        assert_eq!(out, format!("/dev/vdz ext4 {0} {0}\n", dir.display()));

        std::fs::write(&hook, "#!/bin/sh\nexit 3\n").unwrap();
        let err = run(&cfg, Path::new("/dev/vdz"), "ext4").unwrap_err();
        assert_eq!(
            err.to_string(),
            format!("hook {} failed: exit status 3", hook.display())
        );
        let cont = Config {
            hook_abort: false,
            ..cfg.clone()
        };
        assert!(run(&cont, Path::new("/dev/vdz"), "ext4").is_ok());

        // A hook that outlives its timeout is killed with its children.
        std::fs::write(
            &hook,
            "#!/bin/sh\nsleep 100 &\necho $! > child\nsleep 100\n",
        )
        .unwrap();
        let slow = Config {
            hook_timeout_secs: 1,
            ..cfg.clone()
        };
        let t = std::time::Instant::now();
        let err = run(&slow, Path::new("/dev/vdz"), "ext4").unwrap_err();
        assert_eq!(
            err.to_string(),
            format!(
                "hook {} did not finish within 1 s (pivot.hook_timeout); its process group was killed",
                hook.display()
            )
        );
        assert!(t.elapsed() < std::time::Duration::from_secs(10));
        let child: u32 = std::fs::read_to_string(dir.join("child"))
            .unwrap()
            .trim()
            .parse()
            .unwrap();
        let alive = || {
            std::fs::read_to_string(format!("/proc/{child}/stat"))
                .map(|st| !st.contains(") Z "))
                .unwrap_or(false)
        };
        let until = std::time::Instant::now() + std::time::Duration::from_secs(5);
        while alive() && std::time::Instant::now() < until {
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
        assert!(!alive(), "the hook's background child {child} survived");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
