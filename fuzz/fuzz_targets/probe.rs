#![no_main]
//! The superblock prober and partition table readers on arbitrary bytes.

use libfuzzer_sys::fuzz_target;
use pivot_init::probe;

fuzz_target!(|data: &[u8]| {
    let _ = probe::probe(data);
    // Place the input where the btrfs superblock is read, too.
    if data.len() <= 4096 {
        let mut buf = vec![0u8; probe::PROBE_BYTES];
        buf[0x10000..0x10000 + data.len()].copy_from_slice(data);
        let _ = probe::probe(&buf);
    }
    if let Some(h) = probe::gpt_header(data) {
        for partn in [0, 1, h.entries, h.entries.wrapping_add(1), u32::MAX] {
            for bs in [512, 4096, u64::MAX] {
                let _ = h.entry_offset(partn, bs);
            }
        }
    }
    // The header fields without the CRC gate, so arbitrary values reach the arithmetic.
    if data.len() >= 16 {
        let h = probe::GptHeader {
            entries_lba: u64::from_le_bytes(data[0..8].try_into().unwrap_or_default()),
            entries: u32::from_le_bytes(data[8..12].try_into().unwrap_or_default()),
            entry_size: u32::from_le_bytes(data[12..16].try_into().unwrap_or_default()),
        };
        let _ = h.entry_offset(h.entries, 512);
    }
    let _ = probe::gpt_entry(data);
    let _ = probe::mbr_signature(data);
    let _ = probe::guid_string(data);
});
