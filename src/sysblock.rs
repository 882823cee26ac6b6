//! What sysfs says of the block devices: their numbers, serials, the names
//! udev would give them (by-id, by-path), partitions and their table
//! entries, a cloud volume's attach name. Read from `/sys/class/block` at
//! boot, or from another copy for `plan --sysfs`; device contents from
//! their nodes.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use crate::error::{Error, NodeKind, Result};
use crate::node::{Device, ensure_node, parse_devno};
use crate::probe;
use crate::sys::{self, ErrnoText, FileType, Sys};

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
pub struct SysBlock<'a> {
    pub sys: &'a dyn Sys,
    pub root: PathBuf,
    pub nodes: Nodes,
}

impl<'a> SysBlock<'a> {
    /// This machine's block devices, their nodes in /dev (made if missing).
    pub fn boot(sys: &'a dyn Sys) -> SysBlock<'a> {
        SysBlock {
            sys,
            root: PathBuf::from("/sys/class/block"),
            nodes: Nodes::Dev(PathBuf::from("/dev")),
        }
    }

    fn text(&self, p: &Path) -> Option<String> {
        self.sys.read_text(p).ok()
    }

    pub fn device(&self, name: &str) -> Option<Device> {
        let text = self.text(&self.root.join(name).join("dev"))?;
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
            .find_map(|p| self.text(p))
            .map(|s| sys::trim(&s).to_string())
            .filter(|s| !s.is_empty())
    }

    pub fn names(&self) -> Vec<String> {
        let mut names = self.sys.read_dir(&self.root).unwrap_or_default();
        names.sort_unstable();
        names
    }

    /// A path to read the device's contents from (its node, made if needed).
    pub fn content(&self, dev: &Device) -> Result<PathBuf> {
        match &self.nodes {
            Nodes::Dev(dir) => ensure_node(self.sys, dir, dev),
            Nodes::ReadOnly(dir) => {
                let path = dir.join(&dev.name);
                match self.sys.lstat(&path) {
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
        let partn = sys::trim(&self.text(&dir.join("partition"))?)
            .parse()
            .ok()?;
        // /sys/class/block/nvme1n1p2 -> .../nvme1n1/nvme1n1p2: the parent dir is the disk.
        let real = self.sys.canonicalize(&dir)?;
        let disk = real.parent()?.file_name()?.to_str()?;
        Some((partn, self.device(disk)?))
    }

    /// Whether a block device of this kernel name exists.
    pub fn exists(&self, name: &str) -> bool {
        self.sys.exists(&self.root.join(name))
    }

    fn attr(&self, name: &str, rel: &str) -> Option<String> {
        let text = self.text(&self.root.join(name).join(rel))?;
        let t = sys::trim(&text);
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
        let under = |s: &str| sys::joined_iter(&mut sys::words(s), "_");
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
                .and_then(|w| w.strip_prefix("naa.").map(str::to_ascii_lowercase))
            {
                ids.push(format!("wwn-0x{naa}"));
            }
        }
        ids
    }

    /// A SCSI disk's unit serial number (VPD page 0x80).
    fn scsi_serial(&self, name: &str) -> Option<String> {
        let page = self
            .sys
            .read(&self.root.join(name).join("device/vpd_pg80"))
            .ok()?;
        let len = usize::from(*page.get(3)?);
        let serial = page.get(4..4 + len)?;
        let t = sys::trim(&String::from_utf8_lossy(serial)).to_string();
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
        let real = self.sys.canonicalize(&self.root.join(name))?;
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
            let _ = write!(path, "-nvme-{}", self.attr(name, "nsid")?);
        } else if let Some((h, c, t, l)) = below.iter().rev().find_map(|c| scsi_address(c)) {
            let base = self.first_scsi_host(pci)?;
            let _ = write!(path, "-scsi-{}:{c}:{t}:{l}", h.checked_sub(base)?);
        }
        Some(path)
    }

    /// The lowest SCSI host number under a controller's sysfs directory.
    fn first_scsi_host(&self, controller: &Path) -> Option<u32> {
        let hosts = self.root.join("../../class/scsi_host");
        let mut first = None;
        for e in self.sys.read_dir(&hosts).ok()? {
            let Some(real) = self.sys.canonicalize(&hosts.join(&e)) else {
                continue;
            };
            let n = e.strip_prefix("host").and_then(|n| n.parse::<u32>().ok());
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
        let real = self
            .sys
            .canonicalize(&self.root.join(name).join("device"))?;
        scsi_address(real.file_name()?.to_str()?)
    }

    /// The name an EBS NVMe volume was attached as, from its controller's
    /// Identify data; why not when it is not one.
    pub fn attach_name(&self, dev: &Device) -> std::result::Result<String, String> {
        let node = self.content(dev).map_err(|e| e.to_string())?;
        let id = self
            .sys
            .nvme_identify_controller(&node)
            .map_err(|e| format!("NVMe Identify Controller failed: {}", ErrnoText(e)))?;
        crate::cloud::ebs_attach_name(&id).map_err(|e| e.to_string())
    }

    fn sector_size(&self, disk: &str) -> u64 {
        self.text(&self.root.join(disk).join("queue/logical_block_size"))
            .and_then(|s| sys::trim(&s).parse().ok())
            .filter(|n: &u64| n.is_power_of_two() && (512..=65536).contains(n))
            .unwrap_or(512)
    }

    /// PARTUUID/PARTLABEL of a partition, read from its disk's GPT or MBR.
    pub fn part_id(&self, name: &str) -> Option<PartId> {
        let (partn, disk) = self.partition_of(name)?;
        let path = self.content(&disk).ok()?;
        let bs = self.sector_size(&disk.name);
        let lba1 = self.sys.read_at(&path, bs, 512).ok()?;
        if let Some(h) = probe::gpt_header(&lba1) {
            let off = h.entry_offset(partn, bs)?;
            let entry = self.sys.read_at(&path, off, h.entry_size as usize).ok()?;
            let (uuid, label) = probe::gpt_entry(&entry)?;
            return Some(PartId {
                uuid,
                label: Some(label),
            });
        }
        let sector0 = self.sys.read_at(&path, 0, 512).ok()?;
        probe::mbr_signature(&sector0).map(|sig| PartId {
            uuid: probe::mbr_partuuid(sig, partn),
            label: None,
        })
    }
}
