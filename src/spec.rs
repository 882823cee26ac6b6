//! Volume specs: how the user names the volume (`/dev/NAME`, `MAJ:MIN`,
//! `UUID=`, `LABEL=`, `SERIAL=`, a `/dev/disk/by-*` link...), parsed and
//! printed. Pure code: matching a spec against devices is `matching`'s job.

use std::fmt;

/// Which volume to pivot onto.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Spec {
    /// `/dev/NAME`: the kernel name of the block device (`nvme1n1`, `sdp`, `vdb1`).
    Name(String),
    /// `MAJ:MIN` in decimal.
    Devno(u32, u32),
    /// `SERIAL=...`: the disk serial sysfs reports (virtio, NVMe).
    Serial(String),
    /// `UUID=...`: the filesystem UUID (compared case-insensitively).
    Uuid(String),
    /// `LABEL=...`: the filesystem label.
    Label(String),
    /// `PARTUUID=...`: GPT partition GUID, or `SSSSSSSS-PP` on an MBR disk.
    PartUuid(String),
    /// `PARTLABEL=...`: GPT partition name.
    PartLabel(String),
    /// `/dev/disk/by-id/NAME`: one of the names udev gives a disk
    /// (`nvme-MODEL_SERIAL`, `nvme-eui.…`, `virtio-SERIAL`,
    /// `scsi-0VENDOR_MODEL_SERIAL`, `wwn-0x…`), `-partN` for its partition N.
    ById(String),
    /// `/dev/disk/by-path/NAME`: where the disk sits (`pci-0000:00:04.0-nvme-1`,
    /// `pci-0000:00:05.0-scsi-0:0:3:0`, `pci-0000:00:06.0` for virtio), `-partN`.
    ByPath(String),
    /// `LUN=N` (a SCSI disk with LUN N, as Azure names data disks) or
    /// `LUN=H:C:T:L` (exactly that address).
    Lun(Option<(u32, u32, u32)>, u32),
}

/// Builds a spec from the text after its `KEY=`.
type MakeSpec = fn(String) -> Spec;

/// The `KEY=` forms of a spec, with their variants.
const KEYED: [(&str, MakeSpec); 5] = [
    ("SERIAL=", Spec::Serial),
    ("UUID=", Spec::Uuid),
    ("LABEL=", Spec::Label),
    ("PARTUUID=", Spec::PartUuid),
    ("PARTLABEL=", Spec::PartLabel),
];

impl fmt::Display for Spec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Spec::Name(n) => write!(f, "/dev/{n}"),
            Spec::Devno(a, b) => write!(f, "{a}:{b}"),
            Spec::Serial(s) => write!(f, "SERIAL={s}"),
            Spec::Uuid(s) => write!(f, "UUID={s}"),
            Spec::Label(s) => write!(f, "LABEL={s}"),
            Spec::PartUuid(s) => write!(f, "PARTUUID={s}"),
            Spec::PartLabel(s) => write!(f, "PARTLABEL={s}"),
            Spec::ById(s) => write!(f, "/dev/disk/by-id/{s}"),
            Spec::ByPath(s) => write!(f, "/dev/disk/by-path/{s}"),
            Spec::Lun(None, l) => write!(f, "LUN={l}"),
            Spec::Lun(Some((h, c, t)), l) => write!(f, "LUN={h}:{c}:{t}:{l}"),
        }
    }
}

/// Reverses udev's encoding of a name in a /dev/disk link: `\xHH` is the byte HH.
pub fn udev_unescape(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        let hex = b
            .get(i + 2..i + 4)
            .and_then(|h| std::str::from_utf8(h).ok());
        match (
            b[i],
            b.get(i + 1),
            hex.and_then(|h| u8::from_str_radix(h, 16).ok()),
        ) {
            (b'\\', Some(b'x'), Some(v)) => {
                out.push(v);
                i += 4;
            }
            (c, _, _) => {
                out.push(c);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// A `/dev/disk/...` link as the spec it stands for; `Err` for a form that
/// cannot be resolved without udev.
fn disk_link(kind: &str, name: &str) -> Result<Spec, String> {
    if name.is_empty() {
        return Err(format!("/dev/disk/{kind}/ names no disk"));
    }
    let by_id_ok = ["nvme-", "virtio-", "scsi-0", "wwn-0x"];
    Ok(match kind {
        "by-uuid" => Spec::Uuid(name.to_string()),
        "by-label" => Spec::Label(udev_unescape(name)),
        "by-partuuid" => Spec::PartUuid(name.to_string()),
        "by-partlabel" => Spec::PartLabel(udev_unescape(name)),
        "by-id" => match name.strip_prefix("google-") {
            Some(gcp) => Spec::Serial(gcp.to_string()),
            None if by_id_ok.iter().any(|p| name.starts_with(p)) => Spec::ById(name.to_string()),
            None => {
                return Err(format!(
                    "/dev/disk/by-id/{name} cannot be resolved without udev (known here: nvme-, \
                     virtio-, scsi-0, wwn-0x, google-); use SERIAL=, UUID= or LABEL= instead"
                ));
            }
        },
        "by-path" if name.starts_with("pci-") => Spec::ByPath(name.to_string()),
        _ => {
            return Err(format!(
                "/dev/disk/{kind}/{name} cannot be resolved without udev; use UUID=, LABEL=, \
                 PARTUUID=, SERIAL= or a /dev/disk/by-uuid, by-label, by-id or by-path (pci-) link instead"
            ));
        }
    })
}

/// `LUN=N` or `LUN=H:C:T:L`.
fn lun(v: &str) -> Option<Spec> {
    let n: Vec<u32> = v
        .split(':')
        .map(|p| p.parse().ok())
        .collect::<Option<_>>()?;
    match n.as_slice() {
        [l] => Some(Spec::Lun(None, *l)),
        [h, c, t, l] => Some(Spec::Lun(Some((*h, *c, *t)), *l)),
        _ => None,
    }
}

impl Spec {
    /// A spec that names one volume by what it holds or how it is known, so
    /// two devices matching it at once is an error, not a choice.
    pub fn names_one_volume(&self) -> bool {
        !matches!(self, Spec::Devno(..) | Spec::ByPath(_))
    }

    /// Parses a spec, or says what is accepted.
    pub fn parse(s: &str) -> Result<Spec, String> {
        const ACCEPTED: &str = "expected /dev/NAME, MAJ:MIN, UUID=, LABEL=, PARTUUID=, PARTLABEL=, \
             SERIAL=, LUN= or a /dev/disk/by-* link";
        if s.is_empty() {
            return Err(format!("empty volume spec; {ACCEPTED}"));
        }
        if let Some(link) = s.strip_prefix("/dev/disk/") {
            let (kind, name) = link.split_once('/').unwrap_or((link, ""));
            return disk_link(kind, name);
        }
        if let Some(v) = s.strip_prefix("LUN=") {
            return lun(v).ok_or_else(|| format!("`{v}` is not a LUN (N or H:C:T:L); {ACCEPTED}"));
        }
        if let Some(name) = s.strip_prefix("/dev/") {
            if name.is_empty() || name.contains('/') || name == "." || name == ".." {
                return Err(format!("`{s}` is not a device name; {ACCEPTED}"));
            }
            return Ok(Spec::Name(name.to_string()));
        }
        for (prefix, make) in KEYED {
            if let Some(v) = s.strip_prefix(prefix) {
                if v.is_empty() {
                    return Err(format!("empty value after {prefix}; {ACCEPTED}"));
                }
                return Ok(make(v.to_string()));
            }
        }
        if let Some((a, b)) = s.split_once(':')
            && let (Ok(a), Ok(b)) = (a.parse::<u32>(), b.parse::<u32>())
        {
            return Ok(Spec::Devno(a, b));
        }
        Err(format!("`{s}` is not a valid volume spec; {ACCEPTED}"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn udev_links_as_specs() {
        let p = |s: &str| Spec::parse(s);
        assert_eq!(
            p("/dev/disk/by-uuid/6b47dd90-d2cf-4709-a8c4-a18b6723dcc5"),
            Ok(Spec::Uuid("6b47dd90-d2cf-4709-a8c4-a18b6723dcc5".into()))
        );
        assert_eq!(
            p("/dev/disk/by-label/my\\x20data\\x2fv1"),
            Ok(Spec::Label("my data/v1".into()))
        );
        assert_eq!(
            p("/dev/disk/by-partlabel/EFI\\x20System"),
            Ok(Spec::PartLabel("EFI System".into()))
        );
        assert_eq!(
            p("/dev/disk/by-partuuid/5eedb007-02"),
            Ok(Spec::PartUuid("5eedb007-02".into()))
        );
        assert_eq!(
            p("/dev/disk/by-id/nvme-Amazon_Elastic_Block_Store_vol0abc"),
            Ok(Spec::ById("nvme-Amazon_Elastic_Block_Store_vol0abc".into()))
        );
        assert_eq!(
            p("/dev/disk/by-id/google-data-1"),
            Ok(Spec::Serial("data-1".into()))
        );
        assert_eq!(
            p("/dev/disk/by-path/pci-0000:00:04.0-nvme-1-part2"),
            Ok(Spec::ByPath("pci-0000:00:04.0-nvme-1-part2".into()))
        );
        assert_eq!(p("LUN=3"), Ok(Spec::Lun(None, 3)));
        assert_eq!(p("LUN=1:0:0:3"), Ok(Spec::Lun(Some((1, 0, 0)), 3)));
        for bad in [
            "/dev/disk/by-id/ata-ST1000_X",
            "/dev/disk/by-id/usb-Kingston_1",
            "/dev/disk/by-diskseq/3",
            "/dev/disk/by-path/platform-a000000.virtio_mmio",
            "/dev/disk/by-uuid/",
            "LUN=",
            "LUN=1:2",
        ] {
            assert!(p(bad).is_err(), "{bad}");
        }
        assert!(
            p("/dev/disk/by-id/ata-ST1000_X")
                .unwrap_err()
                .contains("cannot be resolved without udev")
        );
        assert_eq!(udev_unescape("a\\x2"), "a\\x2");
        assert_eq!(udev_unescape("\\xzz\\x41"), "\\xzzA");
    }

    #[test]
    fn specs() {
        assert_eq!(Spec::parse("/dev/sdp"), Ok(Spec::Name("sdp".into())));
        assert_eq!(Spec::parse("8:240"), Ok(Spec::Devno(8, 240)));
        assert_eq!(Spec::parse("259:2"), Ok(Spec::Devno(259, 2)));
        assert_eq!(
            Spec::parse("SERIAL=vol-0abc"),
            Ok(Spec::Serial("vol-0abc".into()))
        );
        for bad in [
            "",
            "/dev/",
            "/dev/../sda",
            "/dev/a/b",
            "8:",
            ":1",
            "8:x",
            "sdp",
            "SERIAL=",
            "-1:2",
        ] {
            assert!(Spec::parse(bad).is_err(), "{bad} should be refused");
        }
        assert_eq!(Spec::Devno(8, 240).to_string(), "8:240");
        assert_eq!(Spec::Name("sdp".into()).to_string(), "/dev/sdp");
    }
}
