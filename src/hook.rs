//! The hook stage: run the volume's pre-pivot program, if it has one.

use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Instant;

use rustix::fs::FileType;

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
pub fn status_text(st: std::process::ExitStatus) -> String {
    match (st.code(), st.signal()) {
        (Some(c), _) => format!("exit status {c}"),
        (None, Some(sig)) => format!("killed by signal {sig}"),
        _ => "ended".into(),
    }
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
    let spawned = Command::new(&path)
        .current_dir(&cfg.new_root)
        .stdin(Stdio::null())
        .env_clear()
        .env("PIVOT_DEVICE", device)
        .env("PIVOT_NEW_ROOT", &cfg.new_root)
        .env("PIVOT_FSTYPE", fstype)
        .env("PATH", HOOK_PATH_ENV)
        .process_group(0)
        .spawn();
    let mut child = spawned.map_err(|e| Error::HookSpawn {
        path: path.display().to_string(),
        err: e.to_string(),
    })?;
    let status = child.wait().map_err(|e| Error::HookSpawn {
        path: path.display().to_string(),
        err: format!("waiting for it failed: {e}"),
    })?;
    let text = status_text(status);
    log::info!(
        "hook {} ended with {text} after {} ms",
        path.display(),
        started.elapsed().as_millis()
    );
    if status.success() {
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
