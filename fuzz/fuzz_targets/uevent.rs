#![no_main]
//! The uevent message parser on arbitrary bytes.

use libfuzzer_sys::fuzz_target;
use pivot_init::uevent;

fuzz_target!(|data: &[u8]| {
    if let Some(ev) = uevent::parse(data) {
        assert!(ev.devpath.starts_with('/') || data.contains(&0));
        let _ = ev.is_block_arrival();
    }
});
