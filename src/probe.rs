//! Superblock probing: what filesystem a byte buffer (the start of a block
//! device) holds. Pure code over a slice; short or garbage input is "unknown".

use std::fmt::Write as _;
use std::path::Path;

use crate::sys::{Files, Op, SysError};

/// The regions of a device the probers look at: the first 4 KiB (ext, xfs,
/// vfat, squashfs, erofs, f2fs) and 4 KiB at 64 KiB (btrfs). [`probe`] takes a
/// buffer of [`PROBE_BYTES`] in which only these regions need to be filled.
pub const PROBE_REGIONS: [(u64, usize); 2] = [(0, 4096), (0x10000, 4096)];
pub const PROBE_BYTES: usize = 0x10000 + 4096;

/// Reads the probe regions of `device` one at a time, stopping as soon as a
/// filesystem is recognised: the first 4 KiB, where most are, into a buffer
/// on the stack; only when none is found there, the whole [`PROBE_BYTES`]
/// buffer with every region (btrfs is at 64 KiB). What lies past the end of
/// the device stays zero. The only function here that reads a device; the
/// rest is pure.
pub fn read(fs: &dyn Files, device: &Path) -> Result<Option<Probe>, SysError> {
    let f = fs
        .open_ro(device)
        .map_err(|e| Op::Open(device.into()).failed(e))?;
    let at = |buf: &mut [u8], off: u64| {
        f.read_full_at(buf, off)
            .map_err(|e| Op::Read(device.into()).failed(e))
    };
    let mut head = [0u8; PROBE_REGIONS[0].1];
    at(&mut head, PROBE_REGIONS[0].0)?;
    if let Some(p) = probe(&head) {
        return Ok(Some(p));
    }
    let mut buf = vec![0u8; PROBE_BYTES];
    if let Some(b) = buf.get_mut(..head.len()) {
        b.copy_from_slice(&head);
    }
    for (off, len) in PROBE_REGIONS.iter().skip(1) {
        let start = *off as usize;
        if let Some(region) = buf.get_mut(start..start + len) {
            at(region, *off)?;
        }
    }
    Ok(probe(&buf))
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Probe {
    pub fstype: &'static str,
    /// As blkid prints it: dashed lower-case for most, `XXXX-XXXX` for vfat; may be empty.
    pub uuid: String,
    pub label: String,
    /// The filesystem says its journal needs recovery (ext3/ext4
    /// `needs_recovery`): even a read-only mount would write to the device.
    pub needs_replay: bool,
}

fn le16(b: &[u8], off: usize) -> Option<u16> {
    Some(u16::from_le_bytes(b.get(off..off + 2)?.try_into().ok()?))
}

fn le32(b: &[u8], off: usize) -> Option<u32> {
    Some(u32::from_le_bytes(b.get(off..off + 4)?.try_into().ok()?))
}

fn le64(b: &[u8], off: usize) -> Option<u64> {
    Some(u64::from_le_bytes(b.get(off..off + 8)?.try_into().ok()?))
}

/// Formats 16 bytes as a dashed UUID, bytes in order.
pub fn uuid_string(b: &[u8]) -> String {
    let mut s = String::with_capacity(36);
    for (i, byte) in b.iter().take(16).enumerate() {
        if matches!(i, 4 | 6 | 8 | 10) {
            s.push('-');
        }
        let _ = write!(s, "{byte:02x}");
    }
    s
}

/// A GUID as stored by GPT and Microsoft: the first three fields little-endian.
pub fn guid_string(b: &[u8]) -> Option<String> {
    let b = b.get(..16)?;
    let mut o = [0u8; 16];
    o[..4].copy_from_slice(&[b[3], b[2], b[1], b[0]]);
    o[4..6].copy_from_slice(&[b[5], b[4]]);
    o[6..8].copy_from_slice(&[b[7], b[6]]);
    o[8..].copy_from_slice(&b[8..16]);
    Some(uuid_string(&o))
}

/// A label stored as a NUL-padded fixed field.
fn label_string(b: &[u8]) -> String {
    let end = b.iter().position(|c| *c == 0).unwrap_or(b.len());
    let label = String::from_utf8_lossy(&b[..end]);
    label.trim_end_matches(crate::sys::is_space).to_string()
}

/// A NUL-terminated UTF-16LE label.
fn label_utf16(b: &[u8]) -> String {
    let units: Vec<u16> = b
        .chunks_exact(2)
        .map(|c| u16::from_le_bytes([c[0], c[1]]))
        .take_while(|u| *u != 0)
        .collect();
    String::from_utf16_lossy(&units)
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
    const INCOMPAT_RECOVER: u32 = 0x4;
    Some(Probe {
        fstype,
        uuid: uuid_string(b.get(SB + 0x68..SB + 0x78)?),
        label: label_string(b.get(SB + 0x78..SB + 0x88)?),
        needs_replay: incompat & INCOMPAT_RECOVER != 0,
    })
}

/// XFS: "XFSB" at 0, UUID at 32, 12-byte label at 108.
fn probe_xfs(b: &[u8]) -> Option<Probe> {
    if b.get(0..4)? != b"XFSB" {
        return None;
    }
    Some(Probe {
        fstype: "xfs",
        uuid: uuid_string(b.get(32..48)?),
        label: label_string(b.get(108..120)?),
        ..Probe::default()
    })
}

/// btrfs: superblock at 64 KiB, magic "_BHRfS_M" at +0x40, fsid at +0x20,
/// 256-byte label at +0x12b.
fn probe_btrfs(b: &[u8]) -> Option<Probe> {
    const SB: usize = 0x10000;
    if b.get(SB + 0x40..SB + 0x48)? != b"_BHRfS_M" {
        return None;
    }
    Some(Probe {
        fstype: "btrfs",
        uuid: uuid_string(b.get(SB + 0x20..SB + 0x30)?),
        label: label_string(b.get(SB + 0x12b..SB + 0x22b)?),
        ..Probe::default()
    })
}

/// FAT12/16/32 boot sector with a sane BIOS parameter block.
fn probe_vfat(b: &[u8]) -> Option<Probe> {
    if b.get(510..512)? != [0x55, 0xaa] {
        return None;
    }
    let bytes_per_sector = le16(b, 11)?;
    let sectors_per_cluster = *b.get(13)?;
    let reserved = le16(b, 14)?;
    let fats = *b.get(16)?;
    if !matches!(bytes_per_sector, 512 | 1024 | 2048 | 4096)
        || !sectors_per_cluster.is_power_of_two()
        || reserved == 0
        || fats == 0
    {
        return None;
    }
    // FAT32 keeps its extended BPB at 0x40, FAT12/16 at 0x24.
    let (id_off, label_off) = if b.get(0x52..0x57)? == b"FAT32" {
        (0x43, 0x47)
    } else if matches!(b.get(0x36..0x3b)?, b"FAT16" | b"FAT12" | b"FAT  ") {
        (0x27, 0x2b)
    } else {
        return None;
    };
    let id = le32(b, id_off)?;
    let label = label_string(b.get(label_off..label_off + 11)?);
    Some(Probe {
        fstype: "vfat",
        uuid: format!("{:04X}-{:04X}", id >> 16, id & 0xffff),
        label: if label == "NO NAME" {
            String::new()
        } else {
            label
        },
        ..Probe::default()
    })
}

/// squashfs: "hsqs" at 0; no UUID or label.
fn probe_squashfs(b: &[u8]) -> Option<Probe> {
    (b.get(0..4)? == b"hsqs").then(|| Probe {
        fstype: "squashfs",
        uuid: String::new(),
        label: String::new(),
        ..Probe::default()
    })
}

/// EROFS: superblock at 1024, magic 0xE0F5E1E2, UUID at +48, name at +64.
fn probe_erofs(b: &[u8]) -> Option<Probe> {
    const SB: usize = 1024;
    if le32(b, SB)? != 0xE0F5_E1E2 {
        return None;
    }
    let raw = b.get(SB + 48..SB + 64)?;
    Some(Probe {
        fstype: "erofs",
        uuid: if raw.iter().all(|x| *x == 0) {
            String::new()
        } else {
            uuid_string(raw)
        },
        label: label_string(b.get(SB + 64..SB + 80)?),
        ..Probe::default()
    })
}

/// F2FS: superblock at 1024, magic 0xF2F52010, UUID at +108, UTF-16 name at +124.
fn probe_f2fs(b: &[u8]) -> Option<Probe> {
    const SB: usize = 1024;
    if le32(b, SB)? != 0xF2F5_2010 {
        return None;
    }
    Some(Probe {
        fstype: "f2fs",
        uuid: uuid_string(b.get(SB + 108..SB + 124)?),
        label: label_utf16(b.get(SB + 124..(SB + 124 + 1024).min(b.len()))?),
        ..Probe::default()
    })
}

/// Identifies the filesystem at the start of a device, if we know it.
/// Filesystems with a magic number in a fixed place come before vfat, whose
/// check is a heuristic.
pub fn probe(b: &[u8]) -> Option<Probe> {
    probe_ext(b)
        .or_else(|| probe_xfs(b))
        .or_else(|| probe_btrfs(b))
        .or_else(|| probe_squashfs(b))
        .or_else(|| probe_erofs(b))
        .or_else(|| probe_f2fs(b))
        .or_else(|| probe_vfat(b))
}

/// A GPT header (at LBA 1): where the entries are.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct GptHeader {
    pub entries_lba: u64,
    pub entries: u32,
    pub entry_size: u32,
}

/// CRC-32 (IEEE 802.3, reflected, as zlib and the UEFI spec compute it).
pub fn crc32(data: &[u8]) -> u32 {
    let mut crc = !0u32;
    for b in data {
        crc ^= u32::from(*b);
        for _ in 0..8 {
            crc = (crc >> 1) ^ (0xEDB8_8320 & (crc & 1).wrapping_neg());
        }
    }
    !crc
}

/// The GPT header in LBA 1, checked as blkid does: signature, header size,
/// header CRC32 (computed with its own field zeroed), and that it says it
/// is at LBA 1.
pub fn gpt_header(sector: &[u8]) -> Option<GptHeader> {
    if sector.get(0..8)? != b"EFI PART" {
        return None;
    }
    let size = usize::try_from(le32(sector, 12)?).ok()?;
    if size < 92 || size > sector.len() || le64(sector, 24)? != 1 {
        return None;
    }
    let mut header = sector.get(..size)?.to_vec();
    header.get_mut(16..20)?.fill(0);
    if crc32(&header) != le32(sector, 16)? {
        return None;
    }
    let h = GptHeader {
        entries_lba: le64(sector, 72)?,
        entries: le32(sector, 80)?,
        entry_size: le32(sector, 84)?,
    };
    (h.entry_size >= 128 && h.entry_size <= 4096 && h.entries <= 4096 && h.entries_lba >= 2)
        .then_some(h)
}

impl GptHeader {
    /// Where partition `partn` (1-based)'s entry is, in bytes, with sectors
    /// of `sector_size`; `None` for a number out of range or an offset that
    /// does not fit in 64 bits.
    pub fn entry_offset(&self, partn: u32, sector_size: u64) -> Option<u64> {
        if partn == 0 || partn > self.entries {
            return None;
        }
        let index = u64::from(partn - 1).checked_mul(u64::from(self.entry_size))?;
        self.entries_lba
            .checked_mul(sector_size)?
            .checked_add(index)
    }
}

/// PARTUUID and PARTLABEL of a GPT entry; `None` for an unused entry.
pub fn gpt_entry(e: &[u8]) -> Option<(String, String)> {
    if e.get(0..16)?.iter().all(|x| *x == 0) {
        return None;
    }
    Some((guid_string(e.get(16..32)?)?, label_utf16(e.get(56..128)?)))
}

/// The MBR disk signature, when sector 0 is a DOS partition table (not a GPT
/// protective MBR). A partition's PARTUUID is then `SSSSSSSS-PP`.
pub fn mbr_signature(sector0: &[u8]) -> Option<u32> {
    if sector0.get(510..512)? != [0x55, 0xaa] {
        return None;
    }
    let types: Vec<u8> = (0..4)
        .filter_map(|i| sector0.get(446 + 16 * i + 4).copied())
        .collect();
    if types.contains(&0xee) || types.iter().all(|t| *t == 0) {
        return None;
    }
    le32(sector0, 440)
}

pub fn mbr_partuuid(signature: u32, partn: u32) -> String {
    format!("{signature:08x}-{partn:02x}")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sys::RealSys;

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

    fn scratch(name: &str) -> std::path::PathBuf {
        let dir = std::env::temp_dir().join(format!("pivot-probe-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        dir
    }

    fn run(cmd: &str, args: &[&str]) -> String {
        let out = std::process::Command::new(cmd)
            .args(args)
            .output()
            .unwrap_or_else(|e| panic!("{cmd} cannot run ({e}); run scripts/setup to install it"));
        assert!(
            out.status.success(),
            "{cmd} {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// `blkid -p` of an image as (TYPE, UUID, LABEL).
    fn blkid(img: &str) -> (String, String, String) {
        let out = run("blkid", &["-p", "-o", "export", img]);
        let get = |k: &str| {
            out.lines()
                .find_map(|l| l.strip_prefix(&format!("{k}=")))
                .unwrap_or("")
                // export format escapes blanks with a backslash
                .replace("\\ ", " ")
        };
        (get("TYPE"), get("UUID"), get("LABEL"))
    }

    /// Reads an image the way the boot reads a device.
    fn probe_file(img: &str) -> Option<Probe> {
        read(&RealSys::default(), Path::new(img)).unwrap()
    }

    /// Images made by the real tools agree with `blkid -p` on type, UUID, label.
    #[test]
    fn real_images_agree_with_blkid() {
        let dir = scratch("real");
        let tree = dir.join("tree");
        std::fs::create_dir_all(&tree).unwrap();
        std::fs::write(tree.join("hello"), "hi\n").unwrap();
        let t = tree.to_str().unwrap();
        let img = |n: &str| dir.join(n).to_str().unwrap().to_string();
        let sized = |n: &str, mb: u64| {
            let p = img(n);
            let f = std::fs::File::create(&p).unwrap();
            f.set_len(mb << 20).unwrap();
            p
        };
        let cases: Vec<(&str, String, Vec<&str>)> = vec![
            (
                "ext2",
                sized("ext2", 8),
                vec!["mkfs.ext2", "-q", "-F", "-L", "e2label"],
            ),
            (
                "ext3",
                sized("ext3", 8),
                vec!["mkfs.ext3", "-q", "-F", "-L", "e3label"],
            ),
            (
                "ext4",
                sized("ext4", 8),
                vec!["mkfs.ext4", "-q", "-F", "-L", "vol-label"],
            ),
            (
                "xfs",
                sized("xfs", 300),
                vec!["mkfs.xfs", "-q", "-f", "-L", "xfslabel"],
            ),
            (
                "btrfs",
                sized("btrfs", 128),
                vec!["mkfs.btrfs", "-q", "-f", "-L", "btrfs label"],
            ),
            (
                "vfat",
                sized("fat16", 40),
                vec!["mkfs.vfat", "-F", "16", "-n", "FAT16LAB"],
            ),
            (
                "vfat",
                sized("fat32", 64),
                vec!["mkfs.vfat", "-F", "32", "-n", "FAT32LAB"],
            ),
            (
                "vfat",
                sized("fatnolabel", 40),
                vec!["mkfs.vfat", "-F", "16"],
            ),
            (
                "f2fs",
                sized("f2fs", 64),
                vec!["mkfs.f2fs", "-q", "-f", "-l", "f2label"],
            ),
        ];
        for (want, path, cmd) in &cases {
            let mut args: Vec<&str> = cmd[1..].to_vec();
            args.push(path);
            run(cmd[0], &args);
            let p = probe_file(path).unwrap_or_else(|| panic!("{path}: not recognised"));
            let (ty, uuid, label) = blkid(path);
            assert_eq!(p.fstype, *want, "{path}");
            assert_eq!(p.fstype, ty, "{path} type vs blkid");
            assert_eq!(p.uuid, uuid, "{path} uuid vs blkid");
            assert_eq!(p.label, label, "{path} label vs blkid");
        }
        // Tools that take a source tree.
        let sq = img("squashfs");
        run("mksquashfs", &[t, &sq, "-quiet", "-noappend"]);
        let ero = img("erofs");
        run(
            "mkfs.erofs",
            &["-U", "9e0f1c2d-3b4a-4596-8778-695a4b3c2d1e", &ero, t],
        );
        for (want, path) in [("squashfs", &sq), ("erofs", &ero)] {
            let p = probe_file(path).unwrap_or_else(|| panic!("{path}: not recognised"));
            let (ty, uuid, label) = blkid(path);
            assert_eq!(
                (p.fstype, &p.uuid, &p.label),
                (want, &uuid, &label),
                "{path}"
            );
            assert_eq!(ty, want);
        }
        // Truncating any of them anywhere gives "unknown" or a result, never a panic.
        for (_, path, _) in &cases {
            let mut full = std::fs::read(path).unwrap();
            full.resize(PROBE_BYTES, 0);
            for cut in (0..PROBE_BYTES).step_by(97) {
                let _ = probe(&full[..cut]);
            }
        }
        std::fs::remove_dir_all(&dir).unwrap();
    }

    /// GPT and MBR partition identities agree with what sgdisk/sfdisk wrote and report.
    #[test]
    fn partition_tables_from_real_tools() {
        let dir = scratch("pt");
        let gpt = dir.join("gpt.img");
        std::fs::File::create(&gpt)
            .unwrap()
            .set_len(32 << 20)
            .unwrap();
        let g = gpt.to_str().unwrap();
        run(
            "sgdisk",
            &[
                "-n",
                "1:2048:+4M",
                "-c",
                "1:esp",
                "-u",
                "1:11111111-2222-4333-8444-555555555555",
                "-n",
                "2:0:0",
                "-c",
                "2:root volume",
                "-u",
                "2:A1B2C3D4-E5F6-4788-99AA-BBCCDDEEFF00",
                g,
            ],
        );
        let lba1 = RealSys::default().read_at(&gpt, 512, 512).unwrap();
        let h = gpt_header(&lba1).expect("GPT header");
        assert_eq!((h.entries_lba, h.entry_size), (2, 128));
        for (n, uuid, label) in [
            (1u64, "11111111-2222-4333-8444-555555555555", "esp"),
            (2, "a1b2c3d4-e5f6-4788-99aa-bbccddeeff00", "root volume"),
        ] {
            let e = RealSys::default()
                .read_at(&gpt, h.entries_lba * 512 + (n - 1) * 128, 128)
                .unwrap();
            let (u, l) = gpt_entry(&e).expect("used entry");
            assert_eq!((u.as_str(), l.as_str()), (uuid, label));
            let reported = run("sfdisk", &["--part-uuid", g, &n.to_string()]);
            assert!(
                reported.trim().eq_ignore_ascii_case(&u),
                "sfdisk says {reported}"
            );
            let reported = run("sfdisk", &["--part-label", g, &n.to_string()]);
            assert_eq!(reported.trim(), l);
        }
        let unused = RealSys::default()
            .read_at(&gpt, 2 * 512 + 2 * 128, 128)
            .unwrap();
        assert_eq!(gpt_entry(&unused), None);
        // The protective MBR is not a DOS table.
        assert_eq!(
            mbr_signature(&RealSys::default().read_at(&gpt, 0, 512).unwrap()),
            None
        );

        let mbr = dir.join("mbr.img");
        std::fs::File::create(&mbr)
            .unwrap()
            .set_len(16 << 20)
            .unwrap();
        let m = mbr.to_str().unwrap();
        let out = std::process::Command::new("sfdisk")
            .args(["-q", m])
            .stdin(std::process::Stdio::piped())
            .spawn()
            .and_then(|mut c| {
                use std::io::Write;
                c.stdin
                    .take()
                    .unwrap()
                    .write_all(b"label: dos\nlabel-id: 0x5eedb007\n,4M,L\n,,L\n")?;
                c.wait()
            })
            .expect("sfdisk runs");
        assert!(out.success());
        let sig =
            mbr_signature(&RealSys::default().read_at(&mbr, 0, 512).unwrap()).expect("DOS table");
        assert_eq!(mbr_partuuid(sig, 2), "5eedb007-02");
        let reported = run("blkid", &["-p", "-o", "export", m]);
        assert!(reported.contains("PTUUID=5eedb007"), "{reported}");
        assert_eq!(
            gpt_header(&RealSys::default().read_at(&mbr, 512, 512).unwrap()),
            None
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn guid_byte_order() {
        let b: Vec<u8> = (1..=16).collect();
        assert_eq!(
            guid_string(&b).unwrap(),
            "04030201-0605-0807-090a-0b0c0d0e0f10"
        );
        assert_eq!(guid_string(&b[..15]), None);
        assert_eq!(mbr_partuuid(0xdead, 1), "0000dead-01");
    }

    #[test]
    fn gpt_header_crc_and_offsets() {
        assert_eq!(crc32(b"123456789"), 0xCBF4_3926);
        let mut h = vec![0u8; 512];
        h[..8].copy_from_slice(b"EFI PART");
        h[12..16].copy_from_slice(&92u32.to_le_bytes());
        h[24..32].copy_from_slice(&1u64.to_le_bytes());
        h[72..80].copy_from_slice(&u64::MAX.to_le_bytes());
        h[80..84].copy_from_slice(&128u32.to_le_bytes());
        h[84..88].copy_from_slice(&128u32.to_le_bytes());
        let crc = crc32(&h[..92]);
        h[16..20].copy_from_slice(&crc.to_le_bytes());
        let g = gpt_header(&h).expect("a valid header");
        // entries_lba * sector size overflows: no offset, no panic.
        assert_eq!(g.entry_offset(1, 512), None);
        assert_eq!(g.entry_offset(0, 512), None);
        assert_eq!(g.entry_offset(129, 512), None);
        // A changed byte breaks the CRC; so does a header that is not at LBA 1.
        let mut bad = h.clone();
        bad[80] ^= 1;
        assert!(gpt_header(&bad).is_none());
        let mut bad = h.clone();
        bad[24] = 2;
        assert!(gpt_header(&bad).is_none());
        let ok = GptHeader {
            entries_lba: 2,
            entries: 128,
            entry_size: 128,
        };
        assert_eq!(ok.entry_offset(3, 4096), Some(2 * 4096 + 256));
    }
}
