//! The prepare stage: what PID 1 needs before anything else, mounted when
//! missing (`proc` first, for the config stage; then `sysfs` and
//! `devtmpfs`), the console on fds 0-2, and the log on `/dev/kmsg`.

use std::path::Path;

use crate::config::Config;
use crate::kmsg;
use crate::sys::{self, FileInfo, MountFlags, Sys};

const API_FLAGS: MountFlags = MountFlags::NOSUID
    .union(MountFlags::NODEV)
    .union(MountFlags::NOEXEC);

/// Mounts an API filesystem unless something is mounted there already;
/// returns `target` when it mounted it. `root` is `/`'s `stat`.
fn mount_api(
    sys: &dyn Sys,
    root: Option<&FileInfo>,
    (src, target, fstype): (&str, &'static str, &str),
    flags: MountFlags,
    data: &str,
) -> Option<&'static str> {
    let p = Path::new(target);
    let at = sys.api_dir(p, root);
    if at == Some(true) {
        return None;
    }
    if at.is_none()
        && let Err(e) = sys.mkdir(p)
    {
        log::error!("{e}");
        return None;
    }
    match sys.mount(Path::new(src), p, fstype, flags, data) {
        Ok(()) => {
            log::debug!("mounted {fstype} on {target}");
            Some(target)
        }
        Err(e) => {
            log::error!("{e}");
            None
        }
    }
}

/// `/proc`, which the config stage reads the command line from.
pub fn mount_proc(sys: &dyn Sys) -> Option<&'static str> {
    let root = sys.stat(Path::new("/")).ok();
    mount_api(sys, root.as_ref(), ("proc", "/proc", "proc"), API_FLAGS, "")
}

/// After the config: `/sys`, `/dev` (unless `pivot.devtmpfs=0`), the
/// console, the log; then the start line and the config's warnings.
/// Returns what it mounted.
pub fn prepare(sys: &dyn Sys, cfg: &Config, warnings: &[String]) -> Vec<&'static str> {
    let mut mounted = Vec::new();
    let root = sys.stat(Path::new("/")).ok();
    let root = root.as_ref();
    let sysfs = ("sysfs", "/sys", "sysfs");
    mounted.extend(mount_api(sys, root, sysfs, API_FLAGS, ""));
    if cfg.devtmpfs {
        let devtmpfs = ("devtmpfs", "/dev", "devtmpfs");
        mounted.extend(mount_api(
            sys,
            root,
            devtmpfs,
            MountFlags::NOSUID,
            "mode=0755",
        ));
    }
    sys.console_fds();
    // Lift the kernel's rate limit on /dev/kmsg writers so no line is lost
    // (refused when printk.devkmsg= is on the command line: that wins).
    let _ = sys.write(Path::new("/proc/sys/kernel/printk_devkmsg"), b"on\n");
    match sys.open_log() {
        Some(f) => kmsg::use_device(f),
        None => log::warn!("cannot open /dev/kmsg; logging to the console"),
    }
    kmsg::set_level(cfg.loglevel);
    log::info!(
        "pivot-init {} starting as PID {} ({} mode)",
        env!("CARGO_PKG_VERSION"),
        sys::getpid(),
        if cfg.initramfs {
            "initramfs"
        } else {
            "machine image"
        }
    );
    for w in warnings {
        log::warn!("{w}");
    }
    mounted
}
