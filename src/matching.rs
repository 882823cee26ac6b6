//! Is this device the volume? What is known of one device, looked up only
//! as far as the spec needs ([`Facts`]), and the one verdict the boot and
//! `plan` share ([`verdict`]).

use crate::error::{Error, Result};
use crate::node::Device;
use crate::probe::{self, Probe};
use crate::spec::Spec;
use crate::sys::{ErrnoText, Op, SysError};
use crate::sysblock::{PartId, SysBlock};
use std::fmt::Write as _;

/// Whether a serial the user gave matches the one a device reports. Cloud
/// volume ids are written `vol-0abc` but NVMe serials read `vol0abc`.
pub fn serial_matches(wanted: &str, reported: &str) -> bool {
    let reported = crate::sys::trim(reported);
    !reported.is_empty()
        && (wanted == reported || wanted.chars().filter(|c| *c != '-').eq(reported.chars()))
}

/// What is known about one device, looked up only as far as the spec needs.
pub struct Facts<'a> {
    sys: &'a SysBlock<'a>,
    pub dev: Device,
    serial: Option<Option<String>>,
    /// The probe: a filesystem, none known, or why the device cannot be read.
    fs: Option<std::result::Result<Option<Probe>, String>>,
    part: Option<Option<PartId>>,
    /// The cloud attach name (`sdf`), or why there is none.
    attach: Option<std::result::Result<String, String>>,
}

impl<'a> Facts<'a> {
    pub fn new(sys: &'a SysBlock<'a>, dev: Device) -> Facts<'a> {
        Facts {
            sys,
            dev,
            serial: None,
            fs: None,
            part: None,
            attach: None,
        }
    }

    /// Whether `name` (a kernel name that no device has now, like `sdp` or
    /// `xvdp1`) is the name this EBS NVMe volume (or partition) was attached as.
    fn attached_as(&mut self, name: &str) -> bool {
        let base = name.trim_end_matches(|c: char| c.is_ascii_digit());
        let partn: Option<u32> = name.get(base.len()..).and_then(|n| n.parse().ok());
        if !crate::cloud::is_attach_form(base)
            || !self.dev.name.starts_with("nvme")
            || self.sys.exists(name)
        {
            return false;
        }
        let (sys, dev) = (self.sys, &self.dev);
        let disk = match (partn, sys.partition_of(&dev.name)) {
            (None, None) => dev.clone(),
            (Some(n), Some((p, disk))) if n == p => disk,
            _ => return false,
        };
        let attach = self.attach.get_or_insert_with(|| sys.attach_name(&disk));
        let hit = attach
            .as_ref()
            .is_ok_and(|a| crate::cloud::normalize(a) == crate::cloud::normalize(base));
        if hit {
            log::info!("{} attached as /dev/{name}", self.dev.describe());
        }
        hit
    }

    pub fn serial(&mut self) -> Option<&str> {
        let (sys, name) = (self.sys, &self.dev.name);
        self.serial
            .get_or_insert_with(|| sys.serial(name))
            .as_deref()
    }

    /// The filesystem on the device (superblock probe).
    pub fn fs(&mut self) -> Option<&Probe> {
        let (sys, dev) = (self.sys, &self.dev);
        let read = || -> Result<Option<Probe>> { Ok(probe::read(sys.sys, &sys.content(dev)?)?) };
        self.fs
            .get_or_insert_with(|| read().map_err(|e| short_reason(&e)))
            .as_ref()
            .ok()?
            .as_ref()
    }

    pub fn part(&mut self) -> Option<&PartId> {
        let (sys, name) = (self.sys, &self.dev.name);
        self.part.get_or_insert_with(|| sys.part_id(name)).as_ref()
    }

    /// The probe result if one was made.
    pub fn probed(&self) -> Option<&Probe> {
        self.fs.as_ref()?.as_ref().ok()?.as_ref()
    }

    /// Does this device match `spec`?
    pub fn matches(&mut self, spec: &Spec) -> bool {
        match spec {
            Spec::Name(n) => *n == self.dev.name || self.attached_as(n),
            Spec::Devno(a, b) => (*a, *b) == (self.dev.major, self.dev.minor),
            Spec::Serial(s) => self.serial().is_some_and(|r| serial_matches(s, r)),
            Spec::Uuid(u) => self
                .fs()
                .is_some_and(|p| !p.uuid.is_empty() && p.uuid.eq_ignore_ascii_case(u)),
            Spec::Label(l) => self.fs().is_some_and(|p| p.label == *l),
            Spec::PartUuid(u) => self.part().is_some_and(|p| p.uuid.eq_ignore_ascii_case(u)),
            Spec::PartLabel(l) => self.part().is_some_and(|p| p.label.as_deref() == Some(l)),
            Spec::ById(id) => self.sys.by_ids(&self.dev.name).contains(id),
            Spec::ByPath(p) => self.sys.by_path(&self.dev.name).as_ref() == Some(p),
            Spec::Lun(hct, l) => self
                .sys
                .scsi_address(&self.dev.name)
                .is_some_and(|(h, c, t, lun)| lun == *l && hct.is_none_or(|x| x == (h, c, t))),
        }
    }

    /// One line with everything looked up so far: `nvme1n1 (259:2) serial X xfs LABEL=data`.
    pub fn describe(&self) -> String {
        let mut s = self.dev.describe();
        if let Some(Some(serial)) = &self.serial {
            let _ = write!(s, " serial {serial}");
        }
        match &self.fs {
            Some(Ok(Some(p))) => {
                let _ = write!(s, " {}", p.fstype);
                if !p.label.is_empty() {
                    let _ = write!(s, " LABEL={}", p.label);
                }
                if !p.uuid.is_empty() {
                    let _ = write!(s, " UUID={}", p.uuid);
                }
            }
            Some(Ok(None)) => s.push_str(" no known filesystem"),
            Some(Err(why)) => s.push_str(&format!(" cannot read: {why}")),
            None => {}
        }
        match &self.attach {
            Some(Ok(a)) => s.push_str(&format!(" attached as {a}")),
            Some(Err(why)) => s.push_str(&format!(" ({why})")),
            None => {}
        }
        if let Some(Some(p)) = &self.part {
            let _ = write!(s, " PARTUUID={}", p.uuid);
            if let Some(l) = &p.label {
                let _ = write!(s, " PARTLABEL={l}");
            }
        }
        s
    }
}

/// Why a device could not be read, in a few words: the errno, or the node problem.
fn short_reason(e: &Error) -> String {
    match e {
        Error::Sys(SysError { op, errno }) if matches!(**op, Op::Open(_) | Op::Read(_)) => {
            ErrnoText(*errno).to_string()
        }
        other => other.to_string(),
    }
}

/// Whether a probed type passes a `pivot.fstype` list. The ext4 driver also
/// mounts ext2 and ext3, so `ext4` accepts them.
pub fn fstype_allowed(allowed: &[String], probed: &str) -> bool {
    allowed
        .iter()
        .any(|a| a == probed || (a == "ext4" && matches!(probed, "ext2" | "ext3")))
}

/// What to look for: the spec and, optionally, the accepted filesystem types.
pub struct Want<'a> {
    pub spec: &'a Spec,
    pub fstypes: &'a [String],
}

/// Whether one device is the volume: the one verdict the boot and `plan` share.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    Match,
    NoMatch,
    /// It matches the spec but holds a filesystem type `pivot.fstype` does not accept.
    WrongFs(&'static str),
}

impl Verdict {
    /// Why a device is passed over (for the `saw ...` line), or `None` for a match.
    pub fn why_not(&self, want: &Want) -> Option<String> {
        match self {
            Verdict::Match => None,
            Verdict::NoMatch => Some(format!("not {}", want.spec)),
            Verdict::WrongFs(t) => Some(format!(
                "{t}, expected {}",
                crate::sys::joined(want.fstypes, " or ")
            )),
        }
    }
}

/// Looks up as much of `facts` as `want` needs and judges the device.
pub fn verdict(facts: &mut Facts, want: &Want) -> Verdict {
    if !facts.matches(want.spec) {
        return Verdict::NoMatch;
    }
    if !want.fstypes.is_empty()
        && let Some(p) = facts.fs()
        && !fstype_allowed(want.fstypes, p.fstype)
    {
        return Verdict::WrongFs(p.fstype);
    }
    Verdict::Match
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn serials_and_fstype_lists() {
        assert!(serial_matches("vol-0abc", "vol0abc"));
        assert!(serial_matches("vol0abc", " vol0abc "));
        assert!(!serial_matches("vol0abc", "vol0abcd"));
        assert!(!serial_matches("", ""));
        let l = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        assert!(fstype_allowed(&l(&["ext4"]), "ext3"));
        assert!(!fstype_allowed(&l(&["ext3"]), "ext4"));
        assert!(!fstype_allowed(&l(&["ext4"]), "xfs"));
    }
}
