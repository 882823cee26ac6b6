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

/// Why a hook file is not run, or `None` when it should run.
pub fn skip_reason(file_type: FileType, mode: u32) -> Option<&'static str> {
    if file_type != FileType::RegularFile {
        return Some("it is not a regular file");
    }
    if mode & 0o111 == 0 {
        return Some("it is not executable");
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
    if let Some(why) = skip_reason(FileType::from_raw_mode(st.st_mode), st.st_mode) {
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
    let status = crate::sys::wait_child(pid).map_err(|e| {
        spawn_err(format!(
            "waiting for it failed: {}",
            crate::error::ErrnoText(e)
        ))
    })?;
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
        assert_eq!(skip_reason(FileType::RegularFile, 0o755), None);
        assert_eq!(
            skip_reason(FileType::RegularFile, 0o644),
            Some("it is not executable")
        );
        assert_eq!(
            skip_reason(FileType::Symlink, 0o777),
            Some("it is not a regular file")
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
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
