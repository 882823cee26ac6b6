//! The mount stage: create the new-root directory if needed, decide the
//! filesystem type (given, or probed from the superblock) and mount.

use std::path::Path;

use crate::config::Config;
use crate::error::{Error, Result};
use crate::probe::{self, Probe};
use crate::sys::{self, Sys};

/// Probes `device` for a filesystem we know.
pub fn probe_device(device: &Path) -> Result<Probe> {
    read_probe(device)?.ok_or_else(|| Error::NoFilesystem {
        device: sys::path_str(device),
    })
}

/// Reads the probe regions of `device` one at a time, stopping as soon as a
/// filesystem is recognised (most are in the first 4 KiB; btrfs is at 64 KiB).
pub fn read_probe(device: &Path) -> Result<Option<Probe>> {
    let buf = sys::read_regions(device, &probe::PROBE_REGIONS, probe::PROBE_BYTES, |b| {
        probe::probe(b).is_some()
    })?;
    Ok(probe::probe(&buf))
}

/// The types to try, in order: the probed one first, then the rest of
/// `pivot.fstype`.
pub fn types_to_try(probed: Option<&Probe>, configured: &[String]) -> Vec<String> {
    let mut types: Vec<String> = probed.map(|p| p.fstype.to_string()).into_iter().collect();
    for t in configured {
        if !types.contains(t) {
            types.push(t.clone());
        }
    }
    types
}

/// Mounts `device` on the configured new root; returns the type used.
/// `probed` is what the wait stage already learnt of the device, if anything.
pub fn mount_volume(
    s: &mut dyn Sys,
    cfg: &Config,
    device: &Path,
    probed: Option<Probe>,
) -> Result<String> {
    let target = cfg.new_root.as_path();
    if !sys::is_dir(target) {
        s.mkdir(target)?;
        log::info!("created {}", target.display());
    }
    let probed = match probed {
        Some(p) => Some(p),
        // Without pivot.fstype the probe decides; it is an error not to know the type.
        None if cfg.fstypes.is_empty() => {
            let p = probe_device(device)?;
            log::debug!("probed {}", device.display());
            Some(p)
        }
        None => None,
    };
    let what = probed.as_ref().map_or(String::new(), |p| {
        format!(" (UUID={} LABEL={})", p.uuid, p.label)
    });
    let types = types_to_try(
        probed.as_ref(),
        if probed.is_some() { &[] } else { &cfg.fstypes },
    );
    let source = sys::path_str(device);
    let opts = &cfg.mount_opts;
    let mut failures = Vec::new();
    for t in &types {
        match s.mount(&source, target, t, opts.flags, &opts.data) {
            Ok(()) => {
                log::info!(
                    "mounted {source}{what} on {} as {t} ({})",
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
