#![no_main]
//! The configuration parsers on arbitrary text: the config file and the kernel
//! command line, in both modes.

use libfuzzer_sys::fuzz_target;
use pivot_init::{config, spec::Spec};

fuzz_target!(|data: &[u8]| {
    let initramfs = data.first().is_some_and(|b| b & 1 == 1);
    let text = String::from_utf8_lossy(data);
    // The first line is the config file's text, the rest the command line.
    let (file, cmdline) = text.split_once('\n').unwrap_or(("", &text));
    let file = file.replace('\u{1}', "\n");
    for p in [
        config::parse_all(None, cmdline, initramfs),
        config::parse_all(Some(("/etc/pivot-init.conf", &file)), cmdline, initramfs),
    ] {
        for w in &p.warnings {
            assert!(w.starts_with("ignoring ") || w.starts_with("/etc/pivot-init.conf:"), "{w}");
        }
        let cfg = &p.cfg;
        assert!(cfg.new_root.is_absolute() && cfg.old_root.is_absolute());
        assert!(cfg.loglevel <= 7);
        assert_eq!(cfg.settings().len(), config::SETTINGS.len());
        if let Some(spec) = &cfg.root {
            // What is displayed parses back to the same spec.
            assert_eq!(Spec::parse(&spec.to_string()).as_ref(), Ok(spec));
        }
    }
});
