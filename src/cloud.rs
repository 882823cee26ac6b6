//! Names clouds give volumes that the kernel does not know: the name an EBS
//! volume was attached as (AWS keeps it in the NVMe Identify Controller
//! data), Xen's `xvdX` for `sdX`. Pure code over bytes and names.

/// Amazon's PCI vendor id, as the NVMe controller reports it.
pub const AMAZON_VID: u16 = 0x1D0F;
/// The model string of an EBS volume's controller.
pub const EBS_MODEL: &str = "Amazon Elastic Block Store";

/// Why an Identify Controller buffer names no attach name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NotEbs {
    Short(usize),
    Vendor(u16),
    Model(String),
    NoName,
}

impl std::fmt::Display for NotEbs {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            NotEbs::Short(n) => write!(f, "Identify Controller returned {n} bytes"),
            NotEbs::Vendor(v) => write!(f, "NVMe vendor {v:#06x}, not an EBS volume"),
            NotEbs::Model(m) => write!(f, "model `{m}`, not an EBS volume"),
            NotEbs::NoName => write!(f, "an EBS volume without an attach name"),
        }
    }
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b)
        .trim_matches(|c: char| c == '\0' || crate::sys::is_space(c))
        .to_string()
}

/// The name an EBS volume was attached as (`sdf`, `/dev/sdf`, `xvdf`), from
/// the 4096 bytes of an NVMe Identify Controller: vendor id at 0, model at
/// 24..64, the vendor-specific block device name at 3072..3104.
pub fn ebs_attach_name(id: &[u8]) -> Result<String, NotEbs> {
    let vs = id.get(3072..3104).ok_or(NotEbs::Short(id.len()))?;
    let vid = u16::from_le_bytes([id[0], id[1]]);
    if vid != AMAZON_VID {
        return Err(NotEbs::Vendor(vid));
    }
    let model = text(&id[24..64]);
    if model != EBS_MODEL {
        return Err(NotEbs::Model(model));
    }
    let name = text(vs);
    if name.is_empty() {
        return Err(NotEbs::NoName);
    }
    Ok(name)
}

/// An attach name in one form: `/dev/xvdf`, `xvdf`, `/dev/sdf` and `sdf`
/// all become `sdf` (Xen's xvdX is the same attachment as sdX).
pub fn normalize(name: &str) -> String {
    let n = name.strip_prefix("/dev/").unwrap_or(name);
    match n.strip_prefix("xvd") {
        Some(rest) => format!("sd{rest}"),
        None => n.to_string(),
    }
}

/// Whether a kernel name could be a cloud attach name (`sdX`, `xvdX`).
pub fn is_attach_form(name: &str) -> bool {
    let n = normalize(name);
    n.strip_prefix("sd")
        .is_some_and(|r| !r.is_empty() && r.bytes().all(|b| b.is_ascii_lowercase()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn identify(vid: u16, model: &str, vs: &[u8]) -> Vec<u8> {
        let mut b = vec![0u8; 4096];
        b[0..2].copy_from_slice(&vid.to_le_bytes());
        let mut m = model.as_bytes().to_vec();
        m.resize(40, b' ');
        b[24..64].copy_from_slice(&m);
        b[3072..3072 + vs.len()].copy_from_slice(vs);
        b
    }

    #[test]
    fn ebs_names_in_every_padding() {
        for (vs, want) in [
            (&b"sdf"[..], "sdf"),
            (b"/dev/sdf", "/dev/sdf"),
            (b"xvdf                            ", "xvdf"),
            (b"sdf\0\0\0\0", "sdf"),
        ] {
            let id = identify(AMAZON_VID, EBS_MODEL, vs);
            assert_eq!(ebs_attach_name(&id).as_deref(), Ok(want));
            assert_eq!(normalize(want), "sdf");
        }
        assert_eq!(
            ebs_attach_name(&identify(0x1b36, "QEMU NVMe Ctrl", b"sdf")),
            Err(NotEbs::Vendor(0x1b36))
        );
        assert_eq!(
            ebs_attach_name(&identify(
                AMAZON_VID,
                "Amazon EC2 NVMe Instance Storage",
                b""
            )),
            Err(NotEbs::Model("Amazon EC2 NVMe Instance Storage".into()))
        );
        assert_eq!(
            ebs_attach_name(&identify(AMAZON_VID, EBS_MODEL, b"")),
            Err(NotEbs::NoName)
        );
        assert_eq!(ebs_attach_name(&[0u8; 100]), Err(NotEbs::Short(100)));
        assert_eq!(
            NotEbs::Vendor(0x1b36).to_string(),
            "NVMe vendor 0x1b36, not an EBS volume"
        );
    }

    #[test]
    fn attach_forms() {
        assert!(is_attach_form("sdp") && is_attach_form("/dev/xvdp") && is_attach_form("xvdba"));
        assert!(!is_attach_form("nvme1n1") && !is_attach_form("sd") && !is_attach_form("sdp1"));
    }
}
