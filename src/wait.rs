//! The wait stage: subscribe to kernel uevents first, then scan sysfs, then
//! sleep on the socket until a block device matching the spec appears.
//! No sleep-polling: between events the process is blocked in `poll()`.
//! Also the node stage ([`ensure_node`]), which makes the device's node.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use crate::config::Spec;
use crate::error::{Error, NodeKind, Result};
use crate::probe::{self, Probe};
use crate::sys::{self, FileType, Halt, Recv, Sig, SignalFd, Sys, UeventSocket};
use crate::uevent;

/// How often a progress line is logged while waiting.
pub const PROGRESS_EVERY: Duration = Duration::from_secs(10);

/// A block device as the kernel names it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Device {
    pub name: String,
    pub major: u32,
    pub minor: u32,
}

impl Device {
    pub fn describe(&self) -> String {
        format!("{} ({}:{})", self.name, self.major, self.minor)
    }
}

/// `0000:00:04.0`: a PCI address as a sysfs directory names it.
fn is_pci_address(c: &str) -> bool {
    let b = c.as_bytes();
    b.len() == 12
        && b[4] == b':'
        && b[7] == b':'
        && b[10] == b'.'
        && c.bytes()
            .enumerate()
            .all(|(i, x)| matches!(i, 4 | 7 | 10) || x.is_ascii_hexdigit())
}

/// `H:C:T:L`, as a SCSI device's sysfs directory is named.
fn scsi_address(c: &str) -> Option<(u32, u32, u32, u32)> {
    let n: Vec<u32> = c
        .split(':')
        .map(|p| p.parse().ok())
        .collect::<Option<_>>()?;
    match n.as_slice() {
        [h, c, t, l] => Some((*h, *c, *t, *l)),
        _ => None,
    }
}

/// Parses a sysfs `dev` file (`259:2\n`).
pub fn parse_devno(s: &str) -> Option<(u32, u32)> {
    let (a, b) = s.trim().split_once(':')?;
    Some((a.parse().ok()?, b.parse().ok()?))
}

/// Whether a serial the user gave matches the one a device reports. Cloud
/// volume ids are written `vol-0abc` but NVMe serials read `vol0abc`.
pub fn serial_matches(wanted: &str, reported: &str) -> bool {
    let reported = reported.trim();
    !reported.is_empty() && (wanted == reported || wanted.replace('-', "") == reported)
}

/// Identity of a partition, from its disk's partition table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PartId {
    pub uuid: String,
    /// GPT only.
    pub label: Option<String>,
}

/// Where device contents are read from.
pub enum Nodes {
    /// Block nodes in this directory, created with mknod when missing.
    Dev(PathBuf),
    /// `pivot-init plan`: existing block nodes only; nothing is created.
    ReadOnly(PathBuf),
    /// Unit tests: regular files named like the devices.
    #[cfg(test)]
    Files(PathBuf),
}

/// Reads block device facts from a sysfs tree (`/sys/class/block` at boot,
/// another copy for `plan --sysfs`) and device contents from `nodes`.
pub struct SysBlock {
    pub root: PathBuf,
    pub nodes: Nodes,
}

impl SysBlock {
    pub fn device(&self, name: &str) -> Option<Device> {
        let text = std::fs::read_to_string(self.root.join(name).join("dev")).ok()?;
        let (major, minor) = parse_devno(&text)?;
        Some(Device {
            name: name.to_string(),
            major,
            minor,
        })
    }

    /// The serial: `NAME/serial` (virtio-blk) or `NAME/device/serial` (NVMe, SCSI).
    pub fn serial(&self, name: &str) -> Option<String> {
        let dir = self.root.join(name);
        [dir.join("serial"), dir.join("device/serial")]
            .iter()
            .find_map(|p| std::fs::read_to_string(p).ok())
            .map(|s| s.trim().to_string())
            .filter(|s| !s.is_empty())
    }

    pub fn names(&self) -> Vec<String> {
        let mut names: Vec<String> = std::fs::read_dir(&self.root)
            .map(|rd| {
                rd.filter_map(|e| e.ok())
                    .filter_map(|e| e.file_name().into_string().ok())
                    .collect()
            })
            .unwrap_or_default();
        names.sort();
        names
    }

    /// A path to read the device's contents from (its node, made if needed).
    pub fn content(&self, dev: &Device) -> Result<PathBuf> {
        match &self.nodes {
            Nodes::Dev(dir) => ensure_node(&mut sys::RealSys, dir, dev),
            Nodes::ReadOnly(dir) => {
                let path = dir.join(&dev.name);
                match sys::lstat(&path) {
                    Ok(st)
                        if st.kind == FileType::BlockDevice
                            && st.rdev == sys::makedev(dev.major, dev.minor) =>
                    {
                        Ok(path)
                    }
                    _ => Err(Error::NotBlockDevice {
                        path,
                        found: NodeKind::NotThisNode,
                        want: (dev.major, dev.minor),
                    }),
                }
            }
            #[cfg(test)]
            Nodes::Files(dir) => Ok(dir.join(&dev.name)),
        }
    }

    /// For a partition: its number and the disk it is on.
    pub fn partition_of(&self, name: &str) -> Option<(u32, Device)> {
        let dir = self.root.join(name);
        let partn = std::fs::read_to_string(dir.join("partition"))
            .ok()?
            .trim()
            .parse()
            .ok()?;
        // /sys/class/block/nvme1n1p2 -> .../nvme1n1/nvme1n1p2: the parent dir is the disk.
        let real = std::fs::canonicalize(&dir).ok()?;
        let disk = real.parent()?.file_name()?.to_str()?;
        Some((partn, self.device(disk)?))
    }

    /// Whether a block device of this kernel name exists.
    pub fn exists(&self, name: &str) -> bool {
        self.root.join(name).exists()
    }

    fn attr(&self, name: &str, rel: &str) -> Option<String> {
        let text = std::fs::read_to_string(self.root.join(name).join(rel)).ok()?;
        let t = text.trim();
        (!t.is_empty()).then(|| t.to_string())
    }

    /// A disk's names under /dev/disk/by-id, as udev makes them:
    /// `nvme-MODEL_SERIAL` and `nvme-WWID`, `virtio-SERIAL`,
    /// `scsi-0VENDOR_MODEL_SERIAL` and `wwn-0xWWN`; a partition gets its
    /// disk's names with `-partN`.
    pub fn by_ids(&self, name: &str) -> Vec<String> {
        if let Some((partn, disk)) = self.partition_of(name) {
            return self
                .by_ids(&disk.name)
                .into_iter()
                .map(|id| format!("{id}-part{partn}"))
                .collect();
        }
        let under = |s: &str| s.split_whitespace().collect::<Vec<_>>().join("_");
        let mut ids = Vec::new();
        if name.starts_with("nvme") {
            if let (Some(model), Some(serial)) = (
                self.attr(name, "device/model"),
                self.attr(name, "device/serial"),
            ) {
                ids.push(format!("nvme-{}_{}", under(&model), under(&serial)));
            }
            if let Some(wwid) = self.attr(name, "wwid") {
                ids.push(format!("nvme-{}", under(&wwid)));
            }
        } else if name.starts_with("vd") {
            if let Some(serial) = self.attr(name, "serial") {
                ids.push(format!("virtio-{}", under(&serial)));
            }
        } else if name.starts_with("sd") {
            let vendor = self.attr(name, "device/vendor");
            let model = self.attr(name, "device/model");
            if let (Some(v), Some(m), Some(serial)) = (vendor, model, self.scsi_serial(name)) {
                ids.push(format!(
                    "scsi-0{}_{}_{}",
                    under(&v),
                    under(&m),
                    under(&serial)
                ));
            }
            if let Some(naa) = self
                .attr(name, "device/wwid")
                .and_then(|w| w.strip_prefix("naa.").map(str::to_lowercase))
            {
                ids.push(format!("wwn-0x{naa}"));
            }
        }
        ids
    }

    /// A SCSI disk's unit serial number (VPD page 0x80).
    fn scsi_serial(&self, name: &str) -> Option<String> {
        let page = std::fs::read(self.root.join(name).join("device/vpd_pg80")).ok()?;
        let len = usize::from(*page.get(3)?);
        let serial = page.get(4..4 + len)?;
        let t = String::from_utf8_lossy(serial).trim().to_string();
        (!t.is_empty()).then_some(t)
    }

    /// A disk's name under /dev/disk/by-path, as udev's path_id makes it for
    /// PCI devices: `pci-DDDD:BB:DD.F` then `-nvme-NSID` (NVMe) or
    /// `-scsi-H:C:T:L` (SCSI, H counted from the controller's first host);
    /// virtio-blk has the PCI part only; `-partN` for a partition.
    pub fn by_path(&self, name: &str) -> Option<String> {
        if let Some((partn, disk)) = self.partition_of(name) {
            return Some(format!("{}-part{partn}", self.by_path(&disk.name)?));
        }
        let real = std::fs::canonicalize(self.root.join(name)).ok()?;
        // The PCI function nearest the disk: the controller.
        let pci = real.ancestors().find(|a| {
            a.file_name()
                .and_then(|f| f.to_str())
                .is_some_and(is_pci_address)
        })?;
        let addr = pci.file_name()?.to_str()?;
        let below = real.strip_prefix(pci).ok()?;
        let below: Vec<&str> = below.iter().filter_map(|c| c.to_str()).collect();
        let mut path = format!("pci-{addr}");
        if below.contains(&"nvme") {
            path.push_str(&format!("-nvme-{}", self.attr(name, "nsid")?));
        } else if let Some((h, c, t, l)) = below.iter().rev().find_map(|c| scsi_address(c)) {
            let base = self.first_scsi_host(pci)?;
            path.push_str(&format!("-scsi-{}:{c}:{t}:{l}", h.checked_sub(base)?));
        }
        Some(path)
    }

    /// The lowest SCSI host number under a controller's sysfs directory.
    fn first_scsi_host(&self, controller: &Path) -> Option<u32> {
        let hosts = self.root.join("../../class/scsi_host");
        let mut first = None;
        for e in std::fs::read_dir(hosts).ok()?.filter_map(|e| e.ok()) {
            let Ok(real) = std::fs::canonicalize(e.path()) else {
                continue;
            };
            let n = e
                .file_name()
                .to_str()
                .and_then(|f| f.strip_prefix("host")?.parse::<u32>().ok());
            if let Some(n) = n
                && real.starts_with(controller)
                && first.is_none_or(|f| n < f)
            {
                first = Some(n);
            }
        }
        first
    }

    /// A SCSI disk's address (host, channel, target, LUN).
    pub fn scsi_address(&self, name: &str) -> Option<(u32, u32, u32, u32)> {
        let real = std::fs::canonicalize(self.root.join(name).join("device")).ok()?;
        scsi_address(real.file_name()?.to_str()?)
    }

    /// The name an EBS NVMe volume was attached as, from its controller's
    /// Identify data; why not when it is not one.
    pub fn attach_name(&self, dev: &Device) -> std::result::Result<String, String> {
        let node = self.content(dev).map_err(|e| e.to_string())?;
        let id = sys::nvme_identify_controller(&node).map_err(|e| {
            format!(
                "NVMe Identify Controller failed: {}",
                crate::error::ErrnoText(e)
            )
        })?;
        crate::cloud::ebs_attach_name(&id).map_err(|e| e.to_string())
    }

    fn sector_size(&self, disk: &str) -> u64 {
        std::fs::read_to_string(self.root.join(disk).join("queue/logical_block_size"))
            .ok()
            .and_then(|s| s.trim().parse().ok())
            .filter(|n: &u64| n.is_power_of_two() && (512..=65536).contains(n))
            .unwrap_or(512)
    }

    /// PARTUUID/PARTLABEL of a partition, read from its disk's GPT or MBR.
    pub fn part_id(&self, name: &str) -> Option<PartId> {
        let (partn, disk) = self.partition_of(name)?;
        let path = self.content(&disk).ok()?;
        let bs = self.sector_size(&disk.name);
        let lba1 = sys::read_at(&path, bs, 512).ok()?;
        if let Some(h) = probe::gpt_header(&lba1) {
            let off = h.entry_offset(partn, bs)?;
            let entry = sys::read_at(&path, off, h.entry_size as usize).ok()?;
            let (uuid, label) = probe::gpt_entry(&entry)?;
            return Some(PartId {
                uuid,
                label: Some(label),
            });
        }
        let sector0 = sys::read_at(&path, 0, 512).ok()?;
        probe::mbr_signature(&sector0).map(|sig| PartId {
            uuid: probe::mbr_partuuid(sig, partn),
            label: None,
        })
    }
}

/// What is known about one device, looked up only as far as the spec needs.
pub struct Facts<'a> {
    sys: &'a SysBlock,
    pub dev: Device,
    serial: Option<Option<String>>,
    /// The probe: a filesystem, none known, or why the device cannot be read.
    fs: Option<std::result::Result<Option<Probe>, String>>,
    part: Option<Option<PartId>>,
    /// The cloud attach name (`sdf`), or why there is none.
    attach: Option<std::result::Result<String, String>>,
}

impl<'a> Facts<'a> {
    pub fn new(sys: &'a SysBlock, dev: Device) -> Facts<'a> {
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
        let partn: Option<u32> = name[base.len()..].parse().ok();
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
        let read = || -> Result<Option<Probe>> { probe::read(&sys.content(dev)?) };
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
            s.push_str(&format!(" serial {serial}"));
        }
        match &self.fs {
            Some(Ok(Some(p))) => {
                s.push_str(&format!(" {}", p.fstype));
                if !p.label.is_empty() {
                    s.push_str(&format!(" LABEL={}", p.label));
                }
                if !p.uuid.is_empty() {
                    s.push_str(&format!(" UUID={}", p.uuid));
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
            s.push_str(&format!(" PARTUUID={}", p.uuid));
            if let Some(l) = &p.label {
                s.push_str(&format!(" PARTLABEL={l}"));
            }
        }
        s
    }
}

/// Why a device could not be read, in a few words: the errno, or the node problem.
fn short_reason(e: &Error) -> String {
    match e {
        Error::Open { errno, .. } | Error::Read { errno, .. } => {
            crate::error::ErrnoText(*errno).to_string()
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
            Verdict::WrongFs(t) => Some(format!("{t}, expected {}", want.fstypes.join(" or "))),
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

/// What the wait stage hands on: the device, and its probe if one was made.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Found {
    pub dev: Device,
    /// Everything that was read of it (`nvme1n1 (259:2) ext4 LABEL=data ...`).
    pub what: String,
    pub fs: Option<Probe>,
    /// When its uevent (or the sysfs scan) brought it to us.
    pub at: Instant,
    /// What the waiting cost; `None` when the first scan found it.
    pub idle: Option<Idle>,
}

/// The cost of waiting, from PID 1's first sleep to the uevent that brought
/// the device: how often it woke (uevents, signals, progress lines), and
/// its CPU time (`pivot.stats=1` only: read from /proc/self/schedstat).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Idle {
    pub wakeups: u32,
    pub cpu_us: Option<u64>,
}

/// Tracks what was seen, so each non-matching device is logged once and a
/// timeout can list everything.
#[derive(Default)]
pub struct Seen {
    /// (kernel name, what was read of it), each device once.
    pub devices: Vec<(String, String)>,
}

impl Seen {
    fn note(&mut self, name: &str, what: String, why: &str) {
        if self.devices.iter().any(|(n, _)| n == name) {
            return;
        }
        log::info!("saw {what}: {why}");
        self.devices.push((name.to_string(), what));
    }

    /// What was read of each device, in name order.
    pub fn list(&self) -> Vec<String> {
        let mut d = self.devices.clone();
        d.sort();
        d.into_iter().map(|(_, what)| what).collect()
    }
}

/// Checks one device; returns it when it is the one.
fn check(sys: &SysBlock, want: &Want, dev: Device, seen: &mut Seen) -> Option<Found> {
    let at = Instant::now();
    let mut facts = Facts::new(sys, dev);
    if let Some(why) = verdict(&mut facts, want).why_not(want) {
        seen.note(&facts.dev.name.clone(), facts.describe(), &why);
        return None;
    }
    let fs = facts.probed().cloned();
    Some(Found {
        what: facts.describe(),
        dev: facts.dev,
        fs,
        at,
        idle: None,
    })
}

/// Checks the devices present: the one that is the volume, `None` when
/// none is, an error when more than one is (for a spec that names one
/// volume, picking one would be a coin toss).
fn scan(sys: &SysBlock, want: &Want, seen: &mut Seen) -> Result<Option<Found>> {
    let mut found = Vec::new();
    for dev in sys.names().into_iter().filter_map(|n| sys.device(&n)) {
        if let Some(f) = check(sys, want, dev, seen) {
            found.push(f);
            if !want.spec.names_one_volume() {
                break;
            }
        }
    }
    one_of(want, found)
}

/// The one match, or the ambiguity error naming all of them.
fn one_of(want: &Want, mut found: Vec<Found>) -> Result<Option<Found>> {
    if found.len() <= 1 {
        return Ok(found.pop());
    }
    for f in &found {
        log::warn!("saw {}: matches {}", f.what, want.spec);
    }
    Err(Error::Ambiguous {
        spec: want.spec.clone(),
        devices: found.iter().map(|f| f.dev.describe()).collect(),
    })
}

/// The device a uevent announces, when it is a block device arriving. Its
/// number is what sysfs says (`/sys/class/block/NAME/dev`); a message whose
/// MAJOR/MINOR disagree is dropped, so no node is made from it.
fn arriving(sys: &SysBlock, ev: &uevent::Uevent) -> Option<Device> {
    if !ev.is_block_arrival() {
        return None;
    }
    let dev = sys.device(&ev.devname)?;
    if let (Some(major), Some(minor)) = (ev.major, ev.minor)
        && (major, minor) != (dev.major, dev.minor)
    {
        log::warn!(
            "uevent for {} says {major}:{minor}, sysfs says {}:{}: ignoring it",
            dev.name,
            dev.major,
            dev.minor
        );
        return None;
    }
    Some(dev)
}

/// One wait: the clock, the progress timer and what was seen so far.
struct Waiter<'a> {
    want: &'a Want<'a>,
    sys: &'a SysBlock,
    start: Instant,
    timeout_secs: u64,
    deadline: Option<Instant>,
    next_progress: Instant,
    seen: Seen,
}

impl Waiter<'_> {
    /// How long to sleep before the next deadline or progress line; an error
    /// once the deadline has passed.
    fn sleep_time(&mut self) -> Result<Duration> {
        let now = Instant::now();
        if let Some(d) = self.deadline
            && now >= d
        {
            return Err(Error::WaitTimeout {
                spec: self.want.spec.clone(),
                secs: self.timeout_secs,
                seen: self.seen.list(),
            });
        }
        if now >= self.next_progress {
            log::info!(
                "still waiting for {} after {} s; seen so far: {}",
                self.want.spec,
                self.start.elapsed().as_secs(),
                seen_text(&self.seen.list())
            );
            self.next_progress += PROGRESS_EVERY;
        }
        let wake = self
            .deadline
            .map_or(self.next_progress, |d| d.min(self.next_progress));
        Ok(wake.saturating_duration_since(now))
    }

    /// Handles every queued message; the device when one is the volume
    /// (every queued message is still looked at: two matches arriving
    /// together are as ambiguous as two present at the start).
    fn drain(
        &mut self,
        sock: &UeventSocket,
        buf: &mut [u8],
        on_modalias: &mut dyn FnMut(&str),
    ) -> Result<Option<Found>> {
        let mut found = Vec::new();
        loop {
            let ev = match sock.recv(buf)? {
                Recv::Empty => break,
                Recv::Overflow => {
                    log::warn!("uevent queue overflowed; rescanning /sys/class/block");
                    return scan(self.sys, self.want, &mut self.seen);
                }
                Recv::Message(msg) => match uevent::parse(msg) {
                    Some(ev) => ev,
                    None => continue,
                },
            };
            if ev.action == "add" && !ev.modalias.is_empty() {
                on_modalias(&ev.modalias);
            }
            let Some(dev) = arriving(self.sys, &ev) else {
                continue;
            };
            log::debug!("uevent {} {}", ev.action, dev.describe());
            if found.iter().any(|f: &Found| f.dev == dev) {
                continue;
            }
            if let Some(f) = check(self.sys, self.want, dev, &mut self.seen) {
                log::info!(
                    "{} appeared after {} ms",
                    f.dev.describe(),
                    self.start.elapsed().as_millis()
                );
                found.push(f);
                if !self.want.spec.names_one_volume() {
                    break;
                }
            }
        }
        one_of(self.want, found)
    }
}

/// After the volume was chosen and mounted: devices that arrived since and
/// match too do not undo the boot, but each is logged.
pub fn late_matches(sock: &UeventSocket, want: &Want, sys: &SysBlock, chosen: &Device) {
    let mut buf = vec![0u8; 16 * 1024];
    while let Ok(Recv::Message(msg)) = sock.recv(&mut buf) {
        let Some(dev) = uevent::parse(msg).and_then(|ev| arriving(sys, &ev)) else {
            continue;
        };
        if dev != *chosen && Facts::new(sys, dev.clone()).matches(want.spec) {
            log::warn!(
                "{} also matches {}, but appeared after {} was chosen: going on with {}",
                dev.describe(),
                want.spec,
                chosen.name,
                chosen.name
            );
        }
    }
}

fn seen_text(list: &[String]) -> String {
    if list.is_empty() {
        "none".into()
    } else {
        list.join(", ")
    }
}

/// Waits until a device matching `want` exists; `timeout_secs` of zero
/// means forever. `sock` must have been subscribed before this is called,
/// so that a device appearing during the scan is not missed. `on_modalias`
/// is called for each device added while waiting (hotplug driver loading).
/// `stats`: measure the CPU time of the waiting ([`Found::idle`]).
pub fn wait_for(
    sock: &UeventSocket,
    signals: Option<&SignalFd>,
    want: &Want,
    sys: &SysBlock,
    timeout_secs: u64,
    stats: bool,
    on_modalias: &mut dyn FnMut(&str),
) -> Result<Found> {
    let start = Instant::now();
    let mut w = Waiter {
        want,
        sys,
        start,
        timeout_secs,
        deadline: (timeout_secs > 0).then(|| start + Duration::from_secs(timeout_secs)),
        next_progress: start + PROGRESS_EVERY,
        seen: Seen::default(),
    };
    if let Some(found) = scan(sys, want, &mut w.seen)? {
        log::info!("found {} already present", found.dev.describe());
        return Ok(found);
    }
    log::info!(
        "waiting for {} (uevents; timeout {})",
        want.spec,
        match timeout_secs {
            0 => "none".to_string(),
            n => format!("{n} s"),
        }
    );
    let mut buf = vec![0u8; 16 * 1024];
    let cpu_at_first_sleep = if stats { sys::cpu_us() } else { None };
    let mut wakeups = 0;
    loop {
        let sleep = w.sleep_time()?;
        let ready = sock.wait_with(signals, sleep)?;
        wakeups += 1;
        if ready.signal
            && let Some(s) = signals
        {
            take_signals(s)?;
        }
        if ready.uevent
            && let Some(mut found) = w.drain(sock, &mut buf, on_modalias)?
        {
            // Up to the device's uevent: what follows is the boot's own time.
            let cpu_now = if stats { sys::cpu_us() } else { None };
            found.idle = Some(Idle {
                wakeups,
                cpu_us: cpu_now
                    .zip(cpu_at_first_sleep)
                    .map(|(b, a)| b.saturating_sub(a)),
            });
            return Ok(found);
        }
    }
}

/// PID 1's signals while it waits: children are reaped; Ctrl-Alt-Del and
/// SIGPWR end the wait as requests; SIGTERM is logged and changes nothing.
fn take_signals(signals: &SignalFd) -> Result<()> {
    while let Some(sig) = signals.read() {
        match sig {
            Sig::Child => {
                let n = sys::process::reap_children();
                log::debug!("reaped {n} child process(es)");
            }
            Sig::CtrlAltDel => return Err(Error::Requested(Halt::Reboot)),
            Sig::Power => return Err(Error::Requested(Halt::PowerOff)),
            Sig::Term => log::info!(
                "SIGTERM while waiting: ignored (PID 1 keeps waiting; Ctrl-Alt-Del reboots)"
            ),
            Sig::Other(n) => log::debug!("signal {n} while waiting: ignored"),
        }
    }
    Ok(())
}

/// The node stage: makes sure `dev_dir/NAME` is a block node for `dev`,
/// creating it with mknod when missing (no devtmpfs, static /dev).
pub fn ensure_node(s: &mut dyn Sys, dev_dir: &Path, dev: &Device) -> Result<PathBuf> {
    let path = dev_dir.join(&dev.name);
    let want = (dev.major, dev.minor);
    let found = match sys::lstat(&path) {
        Err(_) => {
            s.mknod_block(&path, dev.major, dev.minor)?;
            log::info!(
                "created block node {} ({}:{}) with mknod",
                path.display(),
                dev.major,
                dev.minor
            );
            return Ok(path);
        }
        Ok(st) if st.kind == FileType::BlockDevice => {
            if sys::split_dev(st.rdev) == want {
                return Ok(path);
            }
            let (a, b) = sys::split_dev(st.rdev);
            NodeKind::Block(a, b)
        }
        Ok(st) => match st.kind {
            FileType::Directory => NodeKind::Directory,
            FileType::Symlink => NodeKind::Symlink,
            FileType::CharacterDevice => NodeKind::CharDevice,
            _ => NodeKind::Other,
        },
    };
    Err(Error::NotBlockDevice { path, found, want })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dev(name: &str, major: u32, minor: u32) -> Device {
        Device {
            name: name.into(),
            major,
            minor,
        }
    }

    fn tmp(name: &str) -> PathBuf {
        let root = std::env::temp_dir().join(format!("pivot-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&root);
        std::fs::create_dir_all(&root).unwrap();
        root
    }

    /// A fake sysfs with devices whose contents are files in `files/`.
    fn fake(root: &Path) -> SysBlock {
        std::fs::create_dir_all(root.join("files")).unwrap();
        SysBlock {
            root: root.join("class"),
            nodes: Nodes::Files(root.join("files")),
        }
    }

    fn add(sys: &SysBlock, path: &str, devno: &str, serial: Option<&str>, content: &[u8]) {
        let real = sys.root.join("../devices").join(path);
        std::fs::create_dir_all(real.join("device")).unwrap();
        std::fs::write(real.join("dev"), format!("{devno}\n")).unwrap();
        if let Some(s) = serial {
            std::fs::write(real.join("device/serial"), format!("{s}    \n")).unwrap();
        }
        let name = path.rsplit('/').next().unwrap();
        if let Some(n) = name.rsplit('p').next().and_then(|n| n.parse::<u32>().ok())
            && path.contains('/')
        {
            std::fs::write(real.join("partition"), format!("{n}\n")).unwrap();
        }
        std::fs::create_dir_all(&sys.root).unwrap();
        std::os::unix::fs::symlink(&real, sys.root.join(name)).unwrap();
        if let Nodes::Files(dir) = &sys.nodes {
            std::fs::write(dir.join(name), content).unwrap();
        }
    }

    fn find(sys: &SysBlock, spec: Spec, fstypes: &[&str], seen: &mut Seen) -> Option<String> {
        let fstypes: Vec<String> = fstypes.iter().map(|s| s.to_string()).collect();
        let want = Want {
            spec: &spec,
            fstypes: &fstypes,
        };
        scan(sys, &want, seen).unwrap().map(|f| f.dev.name)
    }

    fn ext4_sb(uuid: [u8; 16], label: &str) -> Vec<u8> {
        let mut b = vec![0u8; 8192];
        b[1024 + 0x38..1024 + 0x3A].copy_from_slice(&0xEF53u16.to_le_bytes());
        b[1024 + 0x60] = 0x42;
        b[1024 + 0x68..1024 + 0x78].copy_from_slice(&uuid);
        b[1024 + 0x78..1024 + 0x78 + label.len()].copy_from_slice(label.as_bytes());
        b
    }

    #[test]
    fn matching_by_every_spec_form() {
        let root = tmp("match");
        let sys = fake(&root);
        add(
            &sys,
            "nvme0/nvme0n1",
            "259:0",
            Some("boot"),
            &ext4_sb([1; 16], "bootdisk"),
        );
        add(
            &sys,
            "nvme1/nvme1n1",
            "259:1",
            Some("vol0abc"),
            &ext4_sb([0xab; 16], "data"),
        );
        // A GPT disk with one partition: header at LBA 1, entries at LBA 2.
        let mut disk = vec![0u8; 4096];
        disk[510] = 0x55;
        disk[511] = 0xaa;
        disk[446 + 4] = 0xee;
        disk[512..520].copy_from_slice(b"EFI PART");
        disk[512 + 72..512 + 80].copy_from_slice(&2u64.to_le_bytes());
        disk[512 + 80..512 + 84].copy_from_slice(&128u32.to_le_bytes());
        disk[512 + 84..512 + 88].copy_from_slice(&128u32.to_le_bytes());
        disk[512 + 12..512 + 16].copy_from_slice(&92u32.to_le_bytes());
        disk[512 + 24..512 + 32].copy_from_slice(&1u64.to_le_bytes());
        let crc = probe::crc32(&disk[512..512 + 92]);
        disk[512 + 16..512 + 20].copy_from_slice(&crc.to_le_bytes());
        disk[1024..1040].copy_from_slice(&[0x0f; 16]);
        disk[1040..1056].copy_from_slice(&[1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16]);
        for (i, c) in "rootfs".encode_utf16().enumerate() {
            disk[1024 + 56 + 2 * i..1024 + 58 + 2 * i].copy_from_slice(&c.to_le_bytes());
        }
        add(&sys, "nvme2/nvme2n1", "259:2", Some("gptdisk"), &disk);
        add(
            &sys,
            "nvme2/nvme2n1/nvme2n1p1",
            "259:3",
            None,
            &ext4_sb([0xcd; 16], "part1"),
        );

        let mut seen = Seen::default();
        let cases = [
            (Spec::Name("nvme1n1".into()), "nvme1n1"),
            (Spec::Devno(259, 3), "nvme2n1p1"),
            (Spec::Serial("vol-0abc".into()), "nvme1n1"),
            (
                Spec::Uuid("ABABABAB-ABAB-ABAB-ABAB-ABABABABABAB".into()),
                "nvme1n1",
            ),
            (Spec::Label("part1".into()), "nvme2n1p1"),
            (
                Spec::PartUuid("04030201-0605-0807-090A-0B0C0D0E0F10".into()),
                "nvme2n1p1",
            ),
            (Spec::PartLabel("rootfs".into()), "nvme2n1p1"),
        ];
        for (spec, want) in cases {
            assert_eq!(
                find(&sys, spec.clone(), &[], &mut seen).as_deref(),
                Some(want),
                "{spec}"
            );
        }
        assert_eq!(find(&sys, Spec::Label("nope".into()), &[], &mut seen), None);
        assert_eq!(
            find(&sys, Spec::Serial("vol0ab".into()), &[], &mut seen),
            None
        );
        // The fstype check rejects a matching device of another type.
        let mut seen2 = Seen::default();
        assert_eq!(
            find(&sys, Spec::Serial("vol0abc".into()), &["xfs"], &mut seen2),
            None
        );
        assert_eq!(
            seen2
                .devices
                .iter()
                .find(|(n, _)| n == "nvme1n1")
                .map(|(_, w)| w.as_str()),
            Some(
                "nvme1n1 (259:1) serial vol0abc ext4 LABEL=data UUID=abababab-abab-abab-abab-abababababab"
            )
        );
        assert_eq!(
            find(
                &sys,
                Spec::Serial("vol0abc".into()),
                &["xfs", "ext4"],
                &mut seen2
            )
            .as_deref(),
            Some("nvme1n1")
        );
        std::fs::remove_dir_all(&root).unwrap();
    }

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

    #[test]
    fn devno_file() {
        assert_eq!(parse_devno("259:2\n"), Some((259, 2)));
        assert_eq!(parse_devno("8:240"), Some((8, 240)));
        assert_eq!(parse_devno("8-240"), None);
        assert_eq!(parse_devno(""), None);
    }

    #[test]
    fn seen_list_names_what_was_looked_up() {
        let root = tmp("seen");
        let sys = fake(&root);
        add(&sys, "vda", "254:0", Some("boot"), b"");
        add(&sys, "nvme1/nvme1n1", "259:2", None, &[0u8; 8192]);
        let mut seen = Seen::default();
        assert_eq!(find(&sys, Spec::Devno(8, 240), &[], &mut seen), None);
        assert_eq!(seen_text(&seen.list()), "nvme1n1 (259:2), vda (254:0)");
        let mut seen = Seen::default();
        assert_eq!(find(&sys, Spec::Label("x".into()), &[], &mut seen), None);
        assert_eq!(
            seen_text(&seen.list()),
            "nvme1n1 (259:2) no known filesystem, vda (254:0) no known filesystem"
        );
        std::fs::remove_dir_all(&root).unwrap();
    }

    #[test]
    fn ensure_node_creates_or_refuses() {
        let dir = std::env::temp_dir().join(format!("pivot-dev-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(dir.join("sdp")).unwrap();
        let err = ensure_node(&mut sys::RealSys, &dir, &dev("sdp", 8, 240)).unwrap_err();
        assert_eq!(
            err.to_string(),
            format!("{}/sdp exists but is a directory", dir.display())
        );
        // A missing node is made with mknod, with the device's number.
        let mut fake = sys::fake::FakeSys::default();
        let p = ensure_node(&mut fake, &dir, &dev("sdq", 8, 250)).unwrap();
        assert_eq!(p, dir.join("sdq"));
        assert_eq!(
            fake.log(),
            vec![format!("mknod {}/sdq 8:250", dir.display())]
        );
        if sys::is_root_user() {
            let p = ensure_node(&mut sys::RealSys, &dir, &dev("sdq", 8, 250)).unwrap();
            let st = sys::lstat(&p).unwrap();
            assert_eq!(st.kind, FileType::BlockDevice);
            assert_eq!(st.rdev, sys::makedev(8, 250));
            // A second call finds the node and leaves it.
            assert_eq!(
                ensure_node(&mut sys::RealSys, &dir, &dev("sdq", 8, 250)).unwrap(),
                p
            );
            let err = ensure_node(&mut sys::RealSys, &dir, &dev("sdq", 8, 1)).unwrap_err();
            assert_eq!(
                err.to_string(),
                format!(
                    "{}/sdq exists but is a block node for 8:250, not 8:1",
                    dir.display()
                )
            );
        }
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
