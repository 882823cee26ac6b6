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

/// Does `dev` match `spec`? `serial` is looked up only when the spec needs it.
pub fn spec_matches(spec: &Spec, dev: &Device, serial: impl FnOnce() -> Option<String>) -> bool {
    match spec {
        Spec::Name(n) => *n == dev.name,
        Spec::Devno(a, b) => (*a, *b) == (dev.major, dev.minor),
        Spec::Serial(s) => serial().is_some_and(|r| serial_matches(s, &r)),
    }
}

/// Reads block device facts from a sysfs tree (`/sys/class/block` at boot,
/// a directory of files in tests).
pub struct SysBlock {
    pub root: PathBuf,
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
}

/// Tracks what was seen, so each non-matching device is logged once and a
/// timeout can list everything.
pub struct Seen {
    pub devices: BTreeMap<String, String>,
}

impl Seen {
    fn note(&mut self, dev: &Device, serial: Option<String>, spec: &Spec) {
        if self.devices.contains_key(&dev.name) {
            return;
        }
        let what = match serial {
            Some(s) => format!("{} serial {s}", dev.describe()),
            None => dev.describe(),
        };
        log::info!("saw {what}: not {spec}");
        self.devices.insert(dev.name.clone(), what);
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
fn check(sys: &SysBlock, spec: &Spec, dev: Device, seen: &mut Seen) -> Option<Device> {
    let mut serial_read = None;
    let hit = spec_matches(spec, &dev, || {
        serial_read = sys.serial(&dev.name);
        serial_read.clone()
    });
    if hit {
        return Some(dev);
    }
    seen.note(&dev, serial_read, spec);
    None
}

fn scan(sys: &SysBlock, spec: &Spec, seen: &mut Seen) -> Option<Device> {
    sys.names()
        .into_iter()
        .filter_map(|n| sys.device(&n))
        .find_map(|d| check(sys, spec, d, seen))
}

/// Waits until a device matching `spec` exists; `timeout` of zero means forever.
pub fn wait_for(spec: &Spec, sys: &SysBlock, timeout_secs: u64) -> Result<Device> {
    let start = Instant::now();
    let sock = subscribe()?;
    let mut seen = Seen {
        devices: BTreeMap::new(),
    };
    if let Some(dev) = scan(sys, spec, &mut seen) {
        log::info!("found {} already present", dev.describe());
        return Ok(dev);
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
                    if !from_kernel || !ev.is_block_arrival() {
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
                    if let Some(dev) = check(sys, spec, dev, &mut seen) {
                        log::info!(
                            "{} appeared after {} ms",
                            dev.describe(),
                            start.elapsed().as_millis()
                        );
                        return Ok(dev);
                    }
                }
                Err(Errno::AGAIN) => break,
                Err(Errno::INTR) => continue,
                Err(Errno::NOBUFS) => {
                    log::warn!("uevent queue overflowed; rescanning /sys/class/block");
                    if let Some(dev) = scan(sys, spec, &mut seen) {
                        return Ok(dev);
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

    #[test]
    fn matching() {
        let sdp = dev("sdp", 8, 240);
        assert!(spec_matches(&Spec::Devno(8, 240), &sdp, || None));
        assert!(!spec_matches(&Spec::Devno(8, 241), &sdp, || None));
        assert!(spec_matches(&Spec::Name("sdp".into()), &sdp, || None));
        assert!(!spec_matches(&Spec::Name("sdp1".into()), &sdp, || None));
        let s = Spec::Serial("vol-0abc".into());
        assert!(spec_matches(&s, &sdp, || Some("vol0abc".into())));
        assert!(spec_matches(&s, &sdp, || Some("vol-0abc  ".into())));
        assert!(!spec_matches(&s, &sdp, || Some("vol0abcd".into())));
        assert!(!spec_matches(&s, &sdp, || None));
        assert!(!serial_matches("", ""));
    }

    #[test]
    fn devno_file() {
        assert_eq!(parse_devno("259:2\n"), Some((259, 2)));
        assert_eq!(parse_devno("8:240"), Some((8, 240)));
        assert_eq!(parse_devno("8-240"), None);
        assert_eq!(parse_devno(""), None);
    }

    #[test]
    fn sysfs_tree_is_read() {
        let root = std::env::temp_dir().join(format!("pivot-sysfs-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&root);
        std::fs::create_dir_all(root.join("nvme1n1/device")).unwrap();
        std::fs::write(root.join("nvme1n1/dev"), "259:2\n").unwrap();
        std::fs::write(root.join("nvme1n1/device/serial"), "vol0abc             \n").unwrap();
        std::fs::create_dir_all(root.join("vda")).unwrap();
        std::fs::write(root.join("vda/dev"), "254:0\n").unwrap();
        std::fs::write(root.join("vda/serial"), "boot\n").unwrap();
        let sys = SysBlock { root: root.clone() };
        assert_eq!(sys.names(), vec!["nvme1n1", "vda"]);
        assert_eq!(sys.device("nvme1n1"), Some(dev("nvme1n1", 259, 2)));
        assert_eq!(sys.serial("nvme1n1").as_deref(), Some("vol0abc"));
        assert_eq!(sys.serial("vda").as_deref(), Some("boot"));
        let mut seen = Seen {
            devices: BTreeMap::new(),
        };
        let found = scan(&sys, &Spec::Serial("vol-0abc".into()), &mut seen);
        assert_eq!(found, Some(dev("nvme1n1", 259, 2)));
        assert_eq!(seen.list(), "none");
        assert_eq!(scan(&sys, &Spec::Devno(8, 240), &mut seen), None);
        assert_eq!(seen.list(), "nvme1n1 (259:2), vda (254:0)");
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
