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
    let _ = probe::gpt_header(data);
    let _ = probe::gpt_entry(data);
    let _ = probe::mbr_signature(data);
    let _ = probe::guid_string(data);
});
