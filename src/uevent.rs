//! Kernel uevent messages (NETLINK_KOBJECT_UEVENT), parsed from raw bytes.
//!
//! A kernel message is `ACTION@DEVPATH\0KEY=VALUE\0KEY=VALUE\0...`. Messages
//! that udev re-broadcasts start with `libudev\0` and are ignored: at early
//! boot there is no udev, and we only trust the kernel's own.

/// The fields of a uevent that matter for finding a block device.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Uevent {
    pub action: String,
    pub devpath: String,
    pub subsystem: String,
    pub devname: String,
    pub major: Option<u32>,
    pub minor: Option<u32>,
    /// The device's modalias, for loading its driver.
    pub modalias: String,
}

impl Uevent {
    /// A block device (disk or partition) that was added or changed, with
    /// a usable name.
    pub fn is_block_arrival(&self) -> bool {
        self.subsystem == "block"
            && (self.action == "add" || self.action == "change")
            && !self.devname.is_empty()
    }
}

/// Parses one message; `None` when it is not a kernel uevent.
pub fn parse(msg: &[u8]) -> Option<Uevent> {
    let mut fields = msg.split(|b| *b == 0);
    let header = std::str::from_utf8(fields.next()?).ok()?;
    let (action, devpath) = header.split_once('@')?;
    if action.is_empty() || !devpath.starts_with('/') {
        return None;
    }
    let mut ev = Uevent {
        action: action.to_string(),
        devpath: devpath.to_string(),
        ..Uevent::default()
    };
    for field in fields {
        let Ok(field) = std::str::from_utf8(field) else {
            continue;
        };
        let Some((k, v)) = field.split_once('=') else {
            continue;
        };
        match k {
            "ACTION" => ev.action = v.to_string(),
            "DEVPATH" => ev.devpath = v.to_string(),
            "SUBSYSTEM" => ev.subsystem = v.to_string(),
            "DEVNAME" => ev.devname = v.to_string(),
            "MAJOR" => ev.major = v.parse().ok(),
            "MINOR" => ev.minor = v.parse().ok(),
            "MODALIAS" => ev.modalias = v.to_string(),
            _ => {}
        }
    }
    if ev.devname.is_empty() {
        // DEVNAME is the node name under /dev; without it use the last devpath part.
        ev.devname = crate::sys::last_name(&ev.devpath).to_string();
    }
    if !plain_name(&ev.devname) {
        // Joined to /dev for mknod: a name must stay a name there.
        ev.devname.clear();
    }
    Some(ev)
}

/// A device name that names one entry of /dev: not empty, no `/`, not `.` or `..`.
pub fn plain_name(name: &str) -> bool {
    !name.is_empty() && !name.contains('/') && name != "." && name != ".." && !name.contains('\0')
}

#[cfg(test)]
mod tests {
    use super::*;

    const ADD_NVME: &[u8] =
        b"add@/devices/pci0000:00/0000:00:04.0/nvme/nvme1/nvme1n1\0ACTION=add\0\
DEVPATH=/devices/pci0000:00/0000:00:04.0/nvme/nvme1/nvme1n1\0SUBSYSTEM=block\0MAJOR=259\0MINOR=2\0\
DEVNAME=nvme1n1\0DEVTYPE=disk\0DISKSEQ=3\0SEQNUM=1234\0";

    #[test]
    fn parses_kernel_block_add() {
        let ev = parse(ADD_NVME).unwrap();
        assert_eq!(ev.action, "add");
        assert_eq!(ev.subsystem, "block");
        assert_eq!(ev.devname, "nvme1n1");
        assert_eq!((ev.major, ev.minor), (Some(259), Some(2)));
        assert!(ev.is_block_arrival());
    }

    #[test]
    fn ignores_libudev_and_garbage() {
        assert_eq!(parse(b"libudev\0\xfe\xed\xca\xfe"), None);
        assert_eq!(parse(b""), None);
        assert_eq!(parse(b"\0\0\0"), None);
        assert_eq!(parse(b"add@relative\0"), None);
        assert_eq!(parse(b"@/x\0"), None);
        assert_eq!(parse(b"\xff\xfe@/x\0"), None);
    }

    #[test]
    fn non_block_and_remove_are_not_arrivals() {
        let ev = parse(b"add@/devices/pci0000:00/0000:00:03.0/virtio1\0ACTION=add\0SUBSYSTEM=virtio\0MODALIAS=virtio:d00000002v00001AF4\0").unwrap();
        assert!(!ev.is_block_arrival());
        assert_eq!(ev.modalias, "virtio:d00000002v00001AF4");
        let ev = parse(b"add@/devices/virtual/net/lo\0ACTION=add\0SUBSYSTEM=net\0").unwrap();
        assert!(!ev.is_block_arrival());
        assert_eq!(ev.devname, "lo");
        let ev = parse(
            b"remove@/devices/x/block/sdp\0ACTION=remove\0SUBSYSTEM=block\0MAJOR=8\0MINOR=240\0DEVNAME=sdp\0",
        )
        .unwrap();
        assert!(!ev.is_block_arrival());
    }

    #[test]
    fn bad_numbers_and_fields_without_equals() {
        let ev = parse(b"add@/d/sda\0SUBSYSTEM=block\0MAJOR=x\0MINOR=99999999999\0junk\0\xff=1\0")
            .unwrap();
        assert_eq!((ev.major, ev.minor), (None, None));
        assert_eq!(ev.devname, "sda");
    }

    #[test]
    fn names_that_leave_dev_are_refused() {
        for bad in ["../tmp/x", "/etc/passwd", "..", ".", "a/b", ""] {
            let msg = format!(
                "add@/devices/x/block/sdp\0SUBSYSTEM=block\0MAJOR=8\0MINOR=240\0DEVNAME={bad}\0"
            );
            let ev = parse(msg.as_bytes()).unwrap();
            if bad.is_empty() {
                // No DEVNAME: the last part of DEVPATH.
                assert_eq!(ev.devname, "sdp");
                continue;
            }
            assert_eq!(ev.devname, "", "{bad}");
            assert!(!ev.is_block_arrival(), "{bad}");
        }
        let ev = parse(b"add@/devices/x/..\0SUBSYSTEM=block\0").unwrap();
        assert!(!ev.is_block_arrival());
        assert!(plain_name("nvme1n1p2") && !plain_name("x/y"));
    }
}
