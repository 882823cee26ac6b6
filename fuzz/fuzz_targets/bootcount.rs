#![no_main]
//! The boot count's state file on arbitrary bytes: a state or the reason it
//! is none, never a panic; a state read back formats to a file that reads
//! as the same state.

use libfuzzer_sys::fuzz_target;
use pivot_init::bootcount;

fuzz_target!(|data: &[u8]| {
    match bootcount::parse(data) {
        Ok(c) => {
            let text = bootcount::format(&c);
            assert_eq!(bootcount::parse(text.as_bytes()), Ok(c.clone()));
            let _ = bootcount::describe(&c);
            let _ = bootcount::decide(Some(&c), &c.volume, 3, u64::MAX);
        }
        Err(why) => assert!(!why.is_empty()),
    }
});
