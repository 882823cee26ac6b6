#![no_main]
//! The kernel command line parser on arbitrary text.

use libfuzzer_sys::fuzz_target;
use pivot_init::config;

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    let initramfs = data.first().is_some_and(|b| b & 1 == 1);
    let (cfg, warnings) = config::parse(&text, initramfs);
    // Every warning names a pivot.* key; the config is internally sane.
    for w in &warnings {
        assert!(w.starts_with("ignoring "), "{w}");
    }
    assert!(cfg.new_root.is_absolute() && cfg.old_root.is_absolute());
    assert!(cfg.loglevel <= 7);
    if let Some(spec) = &cfg.root {
        // What is displayed parses back to the same spec.
        assert_eq!(config::Spec::parse(&spec.to_string()).as_ref(), Ok(spec));
    }
});
