#![no_main]
//! The init check's parsers on arbitrary bytes: `#!` lines as the kernel
//! splits them, ELF headers, program headers, `PT_INTERP` and what the
//! loader maps, for a program and for a dynamic loader; the
//! `ia32_emulation=` reading of a command line.

use libfuzzer_sys::fuzz_target;
use pivot_init::verify::{self, ElfProblem};

fuzz_target!(|data: &[u8]| {
    if let Some(Ok(s)) = verify::shebang(data) {
        // C strings without a line end; the name has no space or tab.
        let clean = |b: &[u8]| !b.contains(&0) && !b.contains(&b'\n');
        assert!(!s.interpreter.is_empty() && clean(&s.interpreter));
        assert!(!s.interpreter.iter().any(|c| *c == b' ' || *c == b'\t'));
        if let Some(a) = &s.arg {
            assert!(clean(a));
            assert!(a.first().is_none_or(|c| *c != b' ' && *c != b'\t'));
        }
    }
    let whole = verify::elf(data);
    if let Some(Ok(e)) = &whole
        && let Some(i) = &e.interp
    {
        assert!(!i.contains(&0));
    }
    if let Some(Ok(h)) = verify::elf_header(data) {
        assert!(h.table_len() <= 65536);
        let read = |off: u64, len: usize| {
            let start = usize::try_from(off).ok()?;
            data.get(start..start.checked_add(len)?).map(<[u8]>::to_vec)
        };
        let size = data.len() as u64;
        let program = verify::elf_body(&h, size, &read, true);
        assert_eq!(Some(&program), whole.as_ref());
        // A loader is checked as a program is, but for its PT_INTERP.
        let loader = verify::elf_body(&h, size, &read, false);
        if program.is_ok() {
            assert!(loader.is_ok());
        }
        if loader.is_ok() {
            // Every mapped byte is in the file.
            let table = read(h.phoff, h.table_len()).unwrap_or_default();
            for s in verify::segments(&h, &table).unwrap_or_default() {
                if s.kind == 1 && s.filesz > 0 {
                    assert!(s.offset.checked_add(s.filesz).is_some_and(|e| e <= size));
                    assert!(s.filesz <= s.memsz);
                }
            }
        }
        // Fewer bytes in the file never make it better.
        if let Some(shorter) = size.checked_sub(1) {
            let cut = verify::elf_body(&h, shorter, &read, false);
            if loader.is_err() {
                assert!(cut.is_err());
            }
            if let Err(ElfProblem::Truncated { size: s, .. }) = cut {
                assert_eq!(s, shorter);
            }
        }
    }
    let text = String::from_utf8_lossy(data);
    let _ = verify::ia32_emulation(&text);
    let _ = verify::kstrtobool(&text);
});
