//! The hook stage: run the volume's pre-pivot program, if it has one.

use std::ffi::CString;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::config::Config;
use crate::error::{Error, Result};
use crate::preflight::{Hook, HookCheck};
use crate::sys::{Errno, Exit, Instant, Program, SpawnOpts, Sys, process};

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

/// Runs the hook as `check` (made before the commit point) found it, with
/// cwd = the new root. Returns whether it ran; Ok when there is none, it was
/// skipped, it succeeded, or it failed with `pivot.hook_failure=continue`.
pub fn run(
    sys: &dyn Sys,
    cfg: &Config,
    check: HookCheck,
    device: &Path,
    fstype: &str,
) -> Result<bool> {
    let hook = match check {
        HookCheck::Disabled => return Ok(false),
        HookCheck::Absent => {
            let hook = cfg.hook.as_deref().unwrap_or(Path::new(""));
            log::debug!("no hook at {} on the volume", hook.display());
            return Ok(false);
        }
        HookCheck::Unusable(path, why) => {
            log::warn!(
                "not running hook {}: {why}; going on as pivot.hook_failure=continue says",
                path.display()
            );
            return Ok(false);
        }
        HookCheck::Skip(path, why) => {
            log::warn!("not running hook {}: {why}", path.display());
            return Ok(false);
        }
        HookCheck::Run(hook) => hook,
    };
    let started = Instant::now();
    log::info!("running hook {}", hook.path.display());
    let status = spawn_and_wait(sys, cfg, &hook, device, fstype)?;
    let path = hook.path;
    let Some(status) = status else {
        return timed_out(cfg, path).map(|()| true);
    };
    log::info!(
        "hook {} ended with {status} after {} ms",
        path.display(),
        crate::sys::millis(started.elapsed())
    );
    if status.success() {
        return Ok(true);
    }
    if cfg.hook_abort {
        return Err(Error::HookFailed { path, status });
    }
    log::warn!("hook failed ({status}); going on as pivot.hook_failure=continue says");
    Ok(true)
}

/// Starts the hook from its open file, as PID 1 of its own PID namespace
/// (so nothing it starts outlives it) in its own process group, and waits
/// for it, at most `pivot.hook_timeout`; `None` when it was still running
/// then. A script runs as `INTERPRETER [ARG] /proc/self/fd/3`, its file on
/// fd 3, its interpreter from the boot root (as the kernel would resolve it).
fn spawn_and_wait(
    sys: &dyn Sys,
    cfg: &Config,
    hook: &Hook,
    device: &Path,
    fstype: &str,
) -> Result<Option<Exit>> {
    let path = hook.path.as_path();
    let spawn_err = |op: &'static str| {
        move |errno| Error::HookSpawn {
            path: path.to_path_buf(),
            op,
            errno,
        }
    };
    let path_c = process::c_path(path).map_err(spawn_err("preparing its path"))?;
    let cwd = process::c_path(&cfg.new_root).map_err(spawn_err("preparing its path"))?;
    let (prog, argv) = match &hook.script {
        None => (None, vec![path_c]),
        Some(s) => {
            let interp = CString::new(s.interpreter.clone())
                .map_err(|_| spawn_err("preparing its path")(Errno::INVAL))?;
            let mut argv = vec![interp.clone()];
            argv.extend(s.arg.clone().and_then(|a| CString::new(a).ok()));
            argv.push(c"/proc/self/fd/3".to_owned());
            (Some(interp), argv)
        }
    };
    let opts = SpawnOpts {
        cwd: &cwd,
        new_group: true,
        stdin_null: true,
        new_pid_ns: true,
        fd3: hook.script.as_ref().map(|_| &hook.file),
    };
    let program = match &prog {
        Some(interp) => Program::Path(interp),
        None => Program::File(&hook.file),
    };
    let env = hook_env(device, &cfg.new_root, fstype);
    let child = sys
        .spawn(program, &argv, &env, &opts)
        .map_err(spawn_err("fork"))?;
    if !child.own_pid_ns {
        log::warn!(
            "no PID namespaces in this kernel: the hook's process group is killed when it exits, \
             but a child it moved to a new session (setsid) may survive"
        );
    }
    let limit = (cfg.hook_timeout_secs > 0).then(|| Duration::from_secs(cfg.hook_timeout_secs));
    let waited = sys.wait_child(child.pid, limit);
    let status = waited.map_err(spawn_err("waiting for it"))?;
    if status.is_none() {
        log::warn!(
            "hook {} still running after {} s: killing its process group (TERM, KILL after 2 s)",
            path.display(),
            cfg.hook_timeout_secs
        );
        sys.kill_group(child.pid, Duration::from_secs(2));
    } else if !child.own_pid_ns {
        // What it left in its process group goes with it.
        sys.kill_group(child.pid, Duration::ZERO);
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
    use crate::preflight;
    use crate::sys::RealSys;

    fn check(cfg: &Config) -> HookCheck {
        preflight::hook(&RealSys::default(), &cfg.new_root, cfg.hook.as_deref())
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
        run(
            &RealSys::default(),
            &cfg,
            check(&cfg),
            Path::new("/dev/vdz"),
            "ext4",
        )
        .unwrap();
        let out = std::fs::read_to_string(dir.join("out")).unwrap();
        assert_eq!(out, format!("/dev/vdz ext4 {0} {0}\n", dir.display()));

        std::fs::write(&hook, "#!/bin/sh\nexit 3\n").unwrap();
        let err = run(
            &RealSys::default(),
            &cfg,
            check(&cfg),
            Path::new("/dev/vdz"),
            "ext4",
        )
        .unwrap_err();
        assert_eq!(
            err.to_string(),
            format!("hook {} failed: exit status 3", hook.display())
        );
        let cont = Config {
            hook_abort: false,
            ..cfg.clone()
        };
        assert!(
            run(
                &RealSys::default(),
                &cont,
                check(&cont),
                Path::new("/dev/vdz"),
                "ext4"
            )
            .is_ok()
        );

        // A hook that outlives its timeout is killed with its children.
        std::fs::write(&hook, "#!/bin/sh\nsleep 987651 &\nsleep 987652\n").unwrap();
        let slow = Config {
            hook_timeout_secs: 1,
            ..cfg.clone()
        };
        let t = std::time::Instant::now();
        let err = run(
            &RealSys::default(),
            &slow,
            check(&slow),
            Path::new("/dev/vdz"),
            "ext4",
        )
        .unwrap_err();
        assert_eq!(
            err.to_string(),
            format!(
                "hook {} did not finish within 1 s (pivot.hook_timeout); its process group was killed",
                hook.display()
            )
        );
        assert!(t.elapsed() < std::time::Duration::from_secs(10));
        assert_eq!(survivors("98765"), Vec::<String>::new());
        // A daemon in a new session does not outlive a hook that exits.
        std::fs::write(
            &hook,
            "#!/bin/sh\nsetsid sleep 987653 &\nsleep 0.2\nexit 0\n",
        )
        .unwrap();
        assert!(
            run(
                &RealSys::default(),
                &cfg,
                check(&cfg),
                Path::new("/dev/vdz"),
                "ext4"
            )
            .unwrap()
        );
        assert_eq!(survivors("987653"), Vec::<String>::new());
        std::fs::remove_dir_all(&dir).unwrap();
    }

    /// Live processes (not zombies) whose command line contains `mark`,
    /// after giving them up to 5 s to go.
    fn survivors(mark: &str) -> Vec<String> {
        let find = || -> Vec<String> {
            let Ok(dir) = std::fs::read_dir("/proc") else {
                return Vec::new();
            };
            dir.filter_map(|e| e.ok())
                .filter(|e| {
                    e.file_name()
                        .to_string_lossy()
                        .bytes()
                        .all(|b| b.is_ascii_digit())
                })
                .filter_map(|e| {
                    let cmd = std::fs::read(e.path().join("cmdline")).ok()?;
                    let stat = std::fs::read_to_string(e.path().join("stat")).ok()?;
                    let cmd = String::from_utf8_lossy(&cmd).replace('\0', " ");
                    (cmd.contains(mark) && !stat.contains(") Z ")).then_some(cmd)
                })
                .collect()
        };
        let until = std::time::Instant::now() + std::time::Duration::from_secs(5);
        while !find().is_empty() && std::time::Instant::now() < until {
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
        find()
    }
}
