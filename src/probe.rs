//! Superblock probing: what filesystem a byte buffer (the start of a block
//! device) holds. Pure code over a slice; short or garbage input is "unknown".

/// How many bytes from the start of a device the probers need.
pub const PROBE_BYTES: usize = 4096;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Probe {
    pub fstype: &'static str,
    /// Lower-case, dashed (`1b4e28ba-2fa1-11d2-883f-0016d3cca427`), or empty.
    pub uuid: String,
    pub label: String,
}

fn le16(b: &[u8], off: usize) -> Option<u16> {
    Some(u16::from_le_bytes(b.get(off..off + 2)?.try_into().ok()?))
}

fn le32(b: &[u8], off: usize) -> Option<u32> {
    Some(u32::from_le_bytes(b.get(off..off + 4)?.try_into().ok()?))
}

/// Formats 16 bytes as a dashed UUID.
pub fn uuid_string(b: &[u8]) -> String {
    let mut s = String::with_capacity(36);
    for (i, byte) in b.iter().take(16).enumerate() {
        if matches!(i, 4 | 6 | 8 | 10) {
            s.push('-');
        }
        s.push_str(&format!("{byte:02x}"));
    }
    s
}

/// A label stored as a NUL-padded fixed field.
fn label_string(b: &[u8]) -> String {
    let end = b.iter().position(|c| *c == 0).unwrap_or(b.len());
    String::from_utf8_lossy(&b[..end]).trim_end().to_string()
}

/// ext2/3/4: superblock at byte 1024, magic 0xEF53 at +0x38.
fn probe_ext(b: &[u8]) -> Option<Probe> {
    const SB: usize = 1024;
    if le16(b, SB + 0x38)? != 0xEF53 {
        return None;
    }
    let compat = le32(b, SB + 0x5C)?;
    let incompat = le32(b, SB + 0x60)?;
    let ro_compat = le32(b, SB + 0x64)?;
    const INCOMPAT_JOURNAL_DEV: u32 = 0x8;
    if incompat & INCOMPAT_JOURNAL_DEV != 0 {
        // An external journal, not a filesystem one can mount.
        return None;
    }
    // Features ext2 also knows: filetype, recover, meta_bg / sparse_super, large_file, btree_dir.
    const EXT2_INCOMPAT: u32 = 0x2 | 0x4 | 0x10;
    const EXT2_RO_COMPAT: u32 = 0x1 | 0x2 | 0x4;
    const COMPAT_HAS_JOURNAL: u32 = 0x4;
    let fstype = if incompat & !EXT2_INCOMPAT != 0 || ro_compat & !EXT2_RO_COMPAT != 0 {
        "ext4"
    } else if compat & COMPAT_HAS_JOURNAL != 0 {
        "ext3"
    } else {
        "ext2"
    };
    Some(Probe {
        fstype,
        uuid: uuid_string(b.get(SB + 0x68..SB + 0x78)?),
        label: label_string(b.get(SB + 0x78..SB + 0x88)?),
    })
}

/// Identifies the filesystem at the start of a device, if we know it.
pub fn probe(b: &[u8]) -> Option<Probe> {
    probe_ext(b)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ext_sb(compat: u32, incompat: u32, ro_compat: u32) -> Vec<u8> {
        let mut b = vec![0u8; 2048];
        b[1024 + 0x38..1024 + 0x3A].copy_from_slice(&0xEF53u16.to_le_bytes());
        b[1024 + 0x5C..1024 + 0x60].copy_from_slice(&compat.to_le_bytes());
        b[1024 + 0x60..1024 + 0x64].copy_from_slice(&incompat.to_le_bytes());
        b[1024 + 0x64..1024 + 0x68].copy_from_slice(&ro_compat.to_le_bytes());
        for i in 0..16 {
            b[1024 + 0x68 + i] = i as u8 * 17;
        }
        b[1024 + 0x78..1024 + 0x7D].copy_from_slice(b"data1");
        b
    }

    #[test]
    fn ext_generations() {
        assert_eq!(probe(&ext_sb(0, 0x2, 0x3)).unwrap().fstype, "ext2");
        assert_eq!(probe(&ext_sb(0x4, 0x2, 0x3)).unwrap().fstype, "ext3");
        let p = probe(&ext_sb(0x4, 0x2 | 0x40 | 0x200, 0x3)).unwrap();
        assert_eq!(p.fstype, "ext4");
        assert_eq!(p.label, "data1");
        assert_eq!(p.uuid, "00112233-4455-6677-8899-aabbccddeeff");
        assert_eq!(probe(&ext_sb(0, 0x2, 0x400)).unwrap().fstype, "ext4");
    }

    #[test]
    fn journal_device_garbage_and_short_are_unknown() {
        assert_eq!(probe(&ext_sb(0, 0x8, 0)), None);
        assert_eq!(probe(&[0u8; 4096]), None);
        assert_eq!(probe(&[]), None);
        let full = ext_sb(0x4, 0x2, 0);
        for len in [0, 1000, 1024 + 0x39, 1024 + 0x70, 1024 + 0x87] {
            assert_eq!(probe(&full[..len]), None, "truncated at {len}");
        }
        let junk: Vec<u8> = (0..4096u32).map(|i| (i * 7919 % 251) as u8).collect();
        assert_eq!(probe(&junk), None);
    }

    /// A real image made by mkfs.ext4, compared with what the tool wrote.
    #[test]
    fn real_mkfs_ext4_image() {
        let dir = std::env::temp_dir().join(format!("pivot-probe-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let img = dir.join("ext4.img");
        let out = std::process::Command::new("mkfs.ext4")
            .args([
                "-q",
                "-F",
                "-L",
                "vol-label",
                "-U",
                "0a1b2c3d-4e5f-4061-8273-94a5b6c7d8e9",
            ])
            .arg(&img)
            .arg("4M")
            .output()
            .expect("mkfs.ext4 runs (apt-get install e2fsprogs)");
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let bytes = std::fs::read(&img).unwrap();
        let p = probe(&bytes[..PROBE_BYTES]).unwrap();
        assert_eq!(p.fstype, "ext4");
        assert_eq!(p.label, "vol-label");
        assert_eq!(p.uuid, "0a1b2c3d-4e5f-4061-8273-94a5b6c7d8e9");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
