//! The wait stage: subscribe to kernel uevents first, then scan sysfs, then
//! sleep on the socket until a block device matching the spec appears.
//! No sleep-polling: between events the process is blocked in `poll()`.

use std::collections::BTreeMap;
use std::os::fd::OwnedFd;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use rustix::event::{PollFd, PollFlags, Timespec};
use rustix::io::Errno;
use rustix::net::netlink::{self, SocketAddrNetlink};
use rustix::net::{AddressFamily, RecvFlags, SocketFlags, SocketType};

use crate::config::Spec;
use crate::error::{Error, Result};
use crate::probe::{self, Probe};
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
    /// Tests: regular files named like the devices.
    Files(PathBuf),
    /// `pivot-init plan`: existing block nodes only; nothing is created.
    ReadOnly(PathBuf),
}

/// Reads block device facts from a sysfs tree (`/sys/class/block` at boot,
/// a directory of files in tests) and device contents from `nodes`.
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
            Nodes::Dev(dir) => ensure_node(dir, dev),
            Nodes::Files(dir) => Ok(dir.join(&dev.name)),
            Nodes::ReadOnly(dir) => {
                let path = dir.join(&dev.name);
                match crate::sys::node_at(&path) {
                    Some((rustix::fs::FileType::BlockDevice, rdev))
                        if rdev == rustix::fs::makedev(dev.major, dev.minor) =>
                    {
                        Ok(path)
                    }
                    _ => Err(Error::NotBlockDevice {
                        path: crate::sys::path_str(&path),
                        what: "missing or not this device's node".into(),
                    }),
                }
            }
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
        let lba1 = crate::sys::read_at(&path, bs, 512).ok()?;
        if let Some(h) = probe::gpt_header(&lba1) {
            if partn == 0 || partn > h.entries {
                return None;
            }
            let off = h.entries_lba * bs + u64::from(partn - 1) * u64::from(h.entry_size);
            let entry = crate::sys::read_at(&path, off, h.entry_size as usize).ok()?;
            let (uuid, label) = probe::gpt_entry(&entry)?;
            return Some(PartId {
                uuid,
                label: Some(label),
            });
        }
        let sector0 = crate::sys::read_at(&path, 0, 512).ok()?;
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
    fs: Option<Option<Probe>>,
    part: Option<Option<PartId>>,
}

impl<'a> Facts<'a> {
    pub fn new(sys: &'a SysBlock, dev: Device) -> Facts<'a> {
        Facts {
            sys,
            dev,
            serial: None,
            fs: None,
            part: None,
        }
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
        self.fs
            .get_or_insert_with(|| {
                let path = sys.content(dev).ok()?;
                crate::mount::read_probe(&path).ok()?
            })
            .as_ref()
    }

    pub fn part(&mut self) -> Option<&PartId> {
        let (sys, name) = (self.sys, &self.dev.name);
        self.part.get_or_insert_with(|| sys.part_id(name)).as_ref()
    }

    /// The probe result if one was made.
    pub fn probed(&self) -> Option<&Probe> {
        self.fs.as_ref().and_then(Option::as_ref)
    }

    /// Does this device match `spec`?
    pub fn matches(&mut self, spec: &Spec) -> bool {
        match spec {
            Spec::Name(n) => *n == self.dev.name,
            Spec::Devno(a, b) => (*a, *b) == (self.dev.major, self.dev.minor),
            Spec::Serial(s) => self.serial().is_some_and(|r| serial_matches(s, r)),
            Spec::Uuid(u) => self
                .fs()
                .is_some_and(|p| !p.uuid.is_empty() && p.uuid.eq_ignore_ascii_case(u)),
            Spec::Label(l) => self.fs().is_some_and(|p| p.label == *l),
            Spec::PartUuid(u) => self.part().is_some_and(|p| p.uuid.eq_ignore_ascii_case(u)),
            Spec::PartLabel(l) => self.part().is_some_and(|p| p.label.as_deref() == Some(l)),
        }
    }

    /// One line with everything looked up so far: `nvme1n1 (259:2) serial X xfs LABEL=data`.
    pub fn describe(&self) -> String {
        let mut s = self.dev.describe();
        if let Some(Some(serial)) = &self.serial {
            s.push_str(&format!(" serial {serial}"));
        }
        match &self.fs {
            Some(Some(p)) => {
                s.push_str(&format!(" {}", p.fstype));
                if !p.label.is_empty() {
                    s.push_str(&format!(" LABEL={}", p.label));
                }
                if !p.uuid.is_empty() {
                    s.push_str(&format!(" UUID={}", p.uuid));
                }
            }
            Some(None) => s.push_str(" no known filesystem"),
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

/// Whether a probed type passes a `pivot.fstype` list. The ext4 driver also
/// mounts ext2 and ext3, so `ext4` accepts them.
pub fn fstype_allowed(allowed: &[String], probed: &str) -> bool {
    allowed
        .iter()
        .any(|a| a == probed || (a == "ext4" && matches!(probed, "ext2" | "ext3")))
}

/// What the wait stage hands on: the device, and its probe if one was made.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Found {
    pub dev: Device,
    pub fs: Option<Probe>,
    /// When its uevent (or the sysfs scan) brought it to us.
    pub at: Instant,
}

/// Tracks what was seen, so each non-matching device is logged once and a
/// timeout can list everything.
pub struct Seen {
    pub devices: BTreeMap<String, String>,
}

impl Seen {
    fn note(&mut self, name: &str, what: String, why: &str) {
        if self.devices.contains_key(name) {
            return;
        }
        log::info!("saw {what}: {why}");
        self.devices.insert(name.to_string(), what);
    }

    pub fn list(&self) -> String {
        if self.devices.is_empty() {
            "none".into()
        } else {
            self.devices
                .values()
                .cloned()
                .collect::<Vec<_>>()
                .join(", ")
        }
    }
}

/// What to look for: the spec and, optionally, the accepted filesystem types.
pub struct Want<'a> {
    pub spec: &'a Spec,
    pub fstypes: &'a [String],
}

/// Opens the kernel uevent socket (multicast group 1: kernel events).
pub fn subscribe() -> Result<OwnedFd> {
    let fd = rustix::net::socket_with(
        AddressFamily::NETLINK,
        SocketType::DGRAM,
        SocketFlags::CLOEXEC,
        Some(netlink::KOBJECT_UEVENT),
    )
    .map_err(|errno| Error::Netlink {
        op: "socket",
        errno,
    })?;
    // A large buffer so a burst of events (many disks at once) is not dropped;
    // if it is, ENOBUFS makes us rescan sysfs.
    let _ = rustix::net::sockopt::set_socket_recv_buffer_size(&fd, 1 << 20);
    rustix::net::bind(&fd, &SocketAddrNetlink::new(0, 1))
        .map_err(|errno| Error::Netlink { op: "bind", errno })?;
    Ok(fd)
}

/// Checks one device; returns it when it is the one.
fn check(sys: &SysBlock, want: &Want, dev: Device, seen: &mut Seen) -> Option<Found> {
    let at = Instant::now();
    let mut facts = Facts::new(sys, dev);
    if !facts.matches(want.spec) {
        seen.note(
            &facts.dev.name.clone(),
            facts.describe(),
            &format!("not {}", want.spec),
        );
        return None;
    }
    if !want.fstypes.is_empty()
        && let Some(p) = facts.fs()
        && !fstype_allowed(want.fstypes, p.fstype)
    {
        let why = format!("{}, expected {}", p.fstype, want.fstypes.join(" or "));
        seen.note(&facts.dev.name.clone(), facts.describe(), &why);
        return None;
    }
    let fs = facts.probed().cloned();
    Some(Found {
        dev: facts.dev,
        fs,
        at,
    })
}

fn scan(sys: &SysBlock, want: &Want, seen: &mut Seen) -> Option<Found> {
    sys.names()
        .into_iter()
        .filter_map(|n| sys.device(&n))
        .find_map(|d| check(sys, want, d, seen))
}

/// Waits until a device matching `spec` exists; `timeout` of zero means forever.
/// `on_modalias` is called for each device added while waiting (hotplug driver loading).
pub fn wait_for(
    want: &Want,
    sys: &SysBlock,
    timeout_secs: u64,
    on_modalias: &mut dyn FnMut(&str),
) -> Result<Found> {
    let spec = want.spec;
    let start = Instant::now();
    let sock = subscribe()?;
    let mut seen = Seen {
        devices: BTreeMap::new(),
    };
    if let Some(found) = scan(sys, want, &mut seen) {
        log::info!("found {} already present", found.dev.describe());
        return Ok(found);
    }
    log::info!(
        "waiting for {spec} (uevents; timeout {})",
        timeout_text(timeout_secs)
    );
    let deadline = (timeout_secs > 0).then(|| start + Duration::from_secs(timeout_secs));
    let mut next_progress = start + PROGRESS_EVERY;
    let mut buf = vec![0u8; 16 * 1024];
    loop {
        let now = Instant::now();
        if let Some(d) = deadline
            && now >= d
        {
            return Err(Error::WaitTimeout {
                spec: spec.to_string(),
                secs: timeout_secs,
                seen: seen.list(),
            });
        }
        if now >= next_progress {
            log::info!(
                "still waiting for {spec} after {} s; seen so far: {}",
                start.elapsed().as_secs(),
                seen.list()
            );
            next_progress += PROGRESS_EVERY;
        }
        let wake = deadline.map_or(next_progress, |d| d.min(next_progress));
        let left = wake.saturating_duration_since(Instant::now());
        let ts = Timespec {
            tv_sec: left.as_secs() as _,
            tv_nsec: left.subsec_nanos() as _,
        };
        let mut fds = [PollFd::new(&sock, PollFlags::IN)];
        match rustix::event::poll(&mut fds, Some(&ts)) {
            Ok(0) | Err(Errno::INTR) => continue,
            Ok(_) => {}
            Err(errno) => return Err(Error::Poll { errno }),
        }
        // Drain every queued message.
        loop {
            match rustix::net::recvfrom(&sock, &mut buf[..], RecvFlags::DONTWAIT) {
                Ok((n, _, addr)) => {
                    // Only the kernel (port id 0) is trusted.
                    let from_kernel = addr
                        .and_then(|a| SocketAddrNetlink::try_from(a).ok())
                        .is_none_or(|a| a.pid() == 0);
                    let Some(ev) = buf.get(..n).and_then(uevent::parse) else {
                        continue;
                    };
                    if !from_kernel {
                        continue;
                    }
                    if ev.action == "add" && !ev.modalias.is_empty() {
                        on_modalias(&ev.modalias);
                    }
                    if !ev.is_block_arrival() {
                        continue;
                    }
                    let dev = match (ev.major, ev.minor) {
                        (Some(major), Some(minor)) => Device {
                            name: ev.devname.clone(),
                            major,
                            minor,
                        },
                        _ => match sys.device(&ev.devname) {
                            Some(d) => d,
                            None => continue,
                        },
                    };
                    log::debug!("uevent {} {}", ev.action, dev.describe());
                    if let Some(found) = check(sys, want, dev, &mut seen) {
                        log::info!(
                            "{} appeared after {} ms",
                            found.dev.describe(),
                            start.elapsed().as_millis()
                        );
                        // Closing a netlink socket bound to the uevent group
                        // waits for the kernel's broadcasts in flight (the
                        // hot-plug burst): ~10 ms under TCG on the hot path.
                        // Leave it to execve (it is O_CLOEXEC).
                        std::mem::forget(sock);
                        return Ok(found);
                    }
                }
                Err(Errno::AGAIN) => break,
                Err(Errno::INTR) => continue,
                Err(Errno::NOBUFS) => {
                    log::warn!("uevent queue overflowed; rescanning /sys/class/block");
                    if let Some(found) = scan(sys, want, &mut seen) {
                        return Ok(found);
                    }
                    break;
                }
                Err(errno) => return Err(Error::Netlink { op: "recv", errno }),
            }
        }
    }
}

fn timeout_text(secs: u64) -> String {
    if secs == 0 {
        "none".into()
    } else {
        format!("{secs} s")
    }
}

/// The node stage: makes sure `dev_dir/NAME` is a block node for `dev`,
/// creating it with mknod when missing (no devtmpfs, static /dev).
pub fn ensure_node(dev_dir: &Path, dev: &Device) -> Result<PathBuf> {
    use rustix::fs::FileType;
    let path = dev_dir.join(&dev.name);
    let want = rustix::fs::makedev(dev.major, dev.minor);
    match crate::sys::node_at(&path) {
        Some((FileType::BlockDevice, rdev)) if rdev == want => Ok(path),
        Some((FileType::BlockDevice, rdev)) => Err(Error::NotBlockDevice {
            path: crate::sys::path_str(&path),
            what: format!(
                "a block node for {}:{}, not {}:{}",
                rustix::fs::major(rdev),
                rustix::fs::minor(rdev),
                dev.major,
                dev.minor
            ),
        }),
        Some((ft, _)) => Err(Error::NotBlockDevice {
            path: crate::sys::path_str(&path),
            what: match ft {
                FileType::Directory => "a directory",
                FileType::Symlink => "a symlink",
                FileType::CharacterDevice => "a character device",
                _ => "not a block device",
            }
            .to_string(),
        }),
        None => {
            crate::sys::mknod_block(&path, dev.major, dev.minor)?;
            log::info!(
                "created block node {} ({}:{}) with mknod",
                path.display(),
                dev.major,
                dev.minor
            );
            Ok(path)
        }
    }
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
        scan(sys, &want, seen).map(|f| f.dev.name)
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

        let mut seen = Seen {
            devices: BTreeMap::new(),
        };
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
        let mut seen2 = Seen {
            devices: BTreeMap::new(),
        };
        assert_eq!(
            find(&sys, Spec::Serial("vol0abc".into()), &["xfs"], &mut seen2),
            None
        );
        assert_eq!(
            seen2.devices.get("nvme1n1").map(String::as_str),
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
        let mut seen = Seen {
            devices: BTreeMap::new(),
        };
        assert_eq!(find(&sys, Spec::Devno(8, 240), &[], &mut seen), None);
        assert_eq!(seen.list(), "nvme1n1 (259:2), vda (254:0)");
        let mut seen = Seen {
            devices: BTreeMap::new(),
        };
        assert_eq!(find(&sys, Spec::Label("x".into()), &[], &mut seen), None);
        assert_eq!(
            seen.list(),
            "nvme1n1 (259:2) no known filesystem, vda (254:0) no known filesystem"
        );
        std::fs::remove_dir_all(&root).unwrap();
    }

    #[test]
    fn ensure_node_creates_or_refuses() {
        let dir = std::env::temp_dir().join(format!("pivot-dev-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(dir.join("sdp")).unwrap();
        let err = ensure_node(&dir, &dev("sdp", 8, 240)).unwrap_err();
        assert_eq!(
            err.to_string(),
            format!("{}/sdp exists but is a directory", dir.display())
        );
        if rustix::process::geteuid().is_root() {
            let p = ensure_node(&dir, &dev("sdq", 8, 250)).unwrap();
            let (ft, rdev) = crate::sys::node_at(&p).unwrap();
            assert_eq!(ft, rustix::fs::FileType::BlockDevice);
            assert_eq!(rdev, rustix::fs::makedev(8, 250));
            // A second call finds the node and leaves it.
            assert_eq!(ensure_node(&dir, &dev("sdq", 8, 250)).unwrap(), p);
        }
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
