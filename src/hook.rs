//! The hook stage: run the volume's pre-pivot program, if it has one.

use std::ffi::CString;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use crate::config::Config;
use crate::error::{Error, Result};
use crate::preflight::{self, HookCheck};
use crate::sys::process::{self, Exit, SpawnOpts};

pub const HOOK_PATH_ENV: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

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
    let path = match preflight::hook(&cfg.new_root, cfg.hook.as_deref()) {
        HookCheck::Disabled => return Ok(()),
        HookCheck::Absent => {
            let hook = cfg.hook.as_deref().unwrap_or(Path::new(""));
            log::info!("no hook at {} on the volume", hook.display());
            return Ok(());
        }
        HookCheck::Skip(path, why) => {
            log::warn!("not running hook {}: {why}", path.display());
            return Ok(());
        }
        HookCheck::Run(path) => path,
    };
    let started = Instant::now();
    log::info!("running hook {}", path.display());
    let status = match spawn_and_wait(cfg, &path, device, fstype)? {
        Some(status) => status,
        None => return timed_out(cfg, path),
    };
    log::info!(
        "hook {} ended with {status} after {} ms",
        path.display(),
        started.elapsed().as_millis()
    );
    if status.success() {
        return Ok(());
    }
    if cfg.hook_abort {
        return Err(Error::HookFailed { path, status });
    }
    log::warn!("hook failed ({status}); going on as pivot.hook_failure=continue says");
    Ok(())
}

/// Starts the hook in its own process group and waits for it, at most
/// `pivot.hook_timeout`; `None` when it was still running then.
fn spawn_and_wait(cfg: &Config, path: &Path, device: &Path, fstype: &str) -> Result<Option<Exit>> {
    let spawn_err = |op: &'static str| {
        move |errno| Error::HookSpawn {
            path: path.to_path_buf(),
            op,
            errno,
        }
    };
    let path_c = process::c_path(path).map_err(spawn_err("preparing its path"))?;
    let cwd = process::c_path(&cfg.new_root).map_err(spawn_err("preparing its path"))?;
    let opts = SpawnOpts {
        cwd: &cwd,
        new_group: true,
        stdin_null: true,
    };
    let env = hook_env(device, &cfg.new_root, fstype);
    let pid = process::spawn(&path_c, std::slice::from_ref(&path_c), &env, &opts)
        .map_err(spawn_err("fork"))?;
    let waited = if cfg.hook_timeout_secs == 0 {
        process::wait_child(pid).map(Some)
    } else {
        process::wait_child_for(pid, Duration::from_secs(cfg.hook_timeout_secs))
    };
    let status = waited.map_err(spawn_err("waiting for it"))?;
    if status.is_none() {
        log::warn!(
            "hook {} still running after {} s: killing its process group (TERM, KILL after 2 s)",
            path.display(),
            cfg.hook_timeout_secs
        );
        process::kill_group(pid, Duration::from_secs(2));
    }
    Ok(status)
}

fn timed_out(cfg: &Config, path: PathBuf) -> Result<()> {
    let err = Error::HookTimeout {
        path,
        secs: cfg.hook_timeout_secs,
    };
    if cfg.hook_abort {
        return Err(err);
    }
    log::warn!("{err}; going on as pivot.hook_failure=continue says");
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

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
