//! The mount stage: create the new-root directory if needed, decide the
//! filesystem type (given, or probed from the superblock) and mount.

use std::path::Path;

use crate::config::Config;
use crate::error::{Error, Result};
use crate::probe;
use crate::sys::{self, Sys};

/// Probes `device` and returns the type to mount it as.
pub fn probe_device(device: &Path) -> Result<&'static str> {
    let head = sys::read_head(device, probe::PROBE_BYTES)?;
    match probe::probe(&head) {
        Some(p) => {
            log::info!(
                "{}: {} UUID={} LABEL={}",
                device.display(),
                p.fstype,
                p.uuid,
                p.label
            );
            Ok(p.fstype)
        }
        None => Err(Error::NoFilesystem {
            device: sys::path_str(device),
        }),
    }
}

/// Mounts `device` on the configured new root; returns the type used.
pub fn mount_volume(s: &mut dyn Sys, cfg: &Config, device: &Path) -> Result<String> {
    let target = cfg.new_root.as_path();
    if !sys::is_dir(target) {
        s.mkdir(target)?;
        log::info!("created {}", target.display());
    }
    let types: Vec<String> = if cfg.fstypes.is_empty() {
        vec![probe_device(device)?.to_string()]
    } else {
        cfg.fstypes.clone()
    };
    let source = sys::path_str(device);
    let opts = &cfg.mount_opts;
    let mut failures = Vec::new();
    for t in &types {
        match s.mount(&source, target, t, opts.flags, &opts.data) {
            Ok(()) => {
                log::info!(
                    "mounted {source} on {} as {t} ({})",
                    target.display(),
                    opts.describe()
                );
                return Ok(t.clone());
            }
            Err(e) if types.len() == 1 => return Err(e),
            Err(e) => {
                log::warn!("{e}");
                failures.push(match e {
                    Error::Mount { errno, .. } => {
                        format!("{t} ({})", crate::error::ErrnoText(errno))
                    }
                    other => format!("{t} ({other})"),
                });
            }
        }
    }
    Err(Error::AllFstypesFailed {
        device: source,
        target: sys::path_str(target),
        tried: failures.join(", "),
    })
}
