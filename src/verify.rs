//! Checks of the volume made before anything irreversible: is the init there,
//! executable, and is its interpreter (ELF PT_INTERP or `#!`) on the volume too?
//! Parsing is pure code over bytes; file access resolves paths inside the root.

use std::fmt;
use std::path::{Path, PathBuf};

use crate::error::ErrnoText;
use crate::sys::{self, Errno, FileType};

/// What a program needs to start, read from its first bytes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Needs {
    /// A static ELF, or a format we do not look into.
    Nothing,
    /// A dynamic ELF's PT_INTERP, or a script's `#!` interpreter.
    Interpreter(String),
    /// An ELF whose headers are cut short or inconsistent.
    BrokenElf,
}

fn uint(b: &[u8], off: usize, len: usize, le: bool) -> Option<u64> {
    let s = b.get(off..off.checked_add(len)?)?;
    let mut v = 0u64;
    for i in 0..len {
        let byte = if le { s[len - 1 - i] } else { s[i] };
        v = (v << 8) | u64::from(byte);
    }
    Some(v)
}

/// Reads what `head` (the start of a file, up to 64 KiB) needs to run.
pub fn needs(head: &[u8]) -> Needs {
    if let Some(rest) = head.strip_prefix(b"#!") {
        let line = rest.split(|c| *c == b'\n').next().unwrap_or(&[]);
        let text = String::from_utf8_lossy(line);
        return match text.split_whitespace().next() {
            Some(interp) => Needs::Interpreter(interp.to_string()),
            None => Needs::BrokenElf,
        };
    }
    if head.get(0..4) != Some(b"\x7fELF") {
        return Needs::Nothing;
    }
    elf_interp(head).unwrap_or(Needs::BrokenElf)
}

fn elf_interp(b: &[u8]) -> Option<Needs> {
    let class64 = match b.get(4)? {
        1 => false,
        2 => true,
        _ => return None,
    };
    let le = match b.get(5)? {
        1 => true,
        2 => false,
        _ => return None,
    };
    let (phoff, phentsize, phnum) = if class64 {
        (
            uint(b, 0x20, 8, le)?,
            uint(b, 0x36, 2, le)?,
            uint(b, 0x38, 2, le)?,
        )
    } else {
        (
            uint(b, 0x1c, 4, le)?,
            uint(b, 0x2a, 2, le)?,
            uint(b, 0x2c, 2, le)?,
        )
    };
    for i in 0..phnum {
        let ph = usize::try_from(phoff.checked_add(i.checked_mul(phentsize)?)?).ok()?;
        if uint(b, ph, 4, le)? != 3 {
            continue; // not PT_INTERP
        }
        let (off, size) = if class64 {
            (uint(b, ph + 8, 8, le)?, uint(b, ph + 32, 8, le)?)
        } else {
            (uint(b, ph + 4, 4, le)?, uint(b, ph + 16, 4, le)?)
        };
        let start = usize::try_from(off).ok()?;
        let end = start.checked_add(usize::try_from(size).ok()?)?;
        let raw = b.get(start..end)?;
        let path = raw.split(|c| *c == 0).next().unwrap_or(raw);
        return Some(Needs::Interpreter(
            String::from_utf8_lossy(path).into_owned(),
        ));
    }
    Some(Needs::Nothing)
}

/// Why a file cannot be run as an init.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum InitProblem {
    NotFound,
    Open(Errno),
    Stat(Errno),
    NotRegular,
    NotExecutable,
    Malformed,
    InterpreterNotAbsolute(String),
    TooDeep,
    /// Its interpreter cannot be run, and why.
    Interpreter(String, Box<InitProblem>),
}

impl fmt::Display for InitProblem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            InitProblem::NotFound => write!(f, "not found"),
            InitProblem::Open(e) => write!(f, "cannot open: {}", ErrnoText(*e)),
            InitProblem::Stat(e) => write!(f, "cannot stat: {}", ErrnoText(*e)),
            InitProblem::NotRegular => write!(f, "not a regular file"),
            InitProblem::NotExecutable => write!(f, "not executable"),
            InitProblem::Malformed => write!(f, "a truncated or malformed executable"),
            InitProblem::InterpreterNotAbsolute(i) => {
                write!(f, "its interpreter {i} is not an absolute path")
            }
            InitProblem::TooDeep => write!(f, "too many levels of interpreters"),
            InitProblem::Interpreter(i, why) => {
                write!(f, "its interpreter {i} is missing or unusable ({why})")
            }
        }
    }
}

/// Why `p` cannot be run as an init inside `root`, or `None` when it can.
pub fn init_problem(root: &Path, p: &Path) -> Option<InitProblem> {
    problem(root, p, 0)
}

fn problem(root: &Path, p: &Path, depth: u32) -> Option<InitProblem> {
    let file = match sys::open_in_root(root, p) {
        Ok(f) => f,
        Err(Errno::NOENT) => return Some(InitProblem::NotFound),
        Err(e) => return Some(InitProblem::Open(e)),
    };
    let st = match file.info() {
        Ok(st) => st,
        Err(e) => return Some(InitProblem::Stat(e)),
    };
    if st.kind != FileType::RegularFile {
        return Some(InitProblem::NotRegular);
    }
    if st.mode & 0o111 == 0 {
        return Some(InitProblem::NotExecutable);
    }
    // The first 4 KiB hold the ELF and program headers of any usual binary;
    // read more only when they do not (a disk read costs on the boot path).
    let mut what = needs(&file.head(4096));
    if what == Needs::BrokenElf {
        what = needs(&file.head(64 * 1024));
    }
    match what {
        Needs::Nothing => None,
        Needs::BrokenElf => Some(InitProblem::Malformed),
        Needs::Interpreter(i) => {
            let interp = PathBuf::from(&i);
            if !interp.is_absolute() {
                return Some(InitProblem::InterpreterNotAbsolute(i));
            }
            // The kernel follows up to 4 levels of interpreters.
            if depth >= 4 {
                return Some(InitProblem::TooDeep);
            }
            problem(root, &interp, depth + 1).map(|why| InitProblem::Interpreter(i, Box::new(why)))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn scripts_and_garbage() {
        assert_eq!(
            needs(b"#!/bin/sh -e\necho"),
            Needs::Interpreter("/bin/sh".into())
        );
        assert_eq!(
            needs(b"#!  /usr/bin/env python3\n"),
            Needs::Interpreter("/usr/bin/env".into())
        );
        assert_eq!(needs(b"#!\n"), Needs::BrokenElf);
        assert_eq!(needs(b"plain data"), Needs::Nothing);
        assert_eq!(needs(b"\x7fELF"), Needs::BrokenElf);
        assert_eq!(needs(b"\x7fELF\x02\x01"), Needs::BrokenElf);
    }

    #[test]
    fn real_elves() {
        // A dynamic host binary names its loader; the static pivot-init test binary may not exist.
        let sh = std::fs::read("/bin/sh").unwrap();
        match needs(&sh[..sh.len().min(65536)]) {
            Needs::Interpreter(i) => assert!(i.starts_with("/lib"), "{i}"),
            other => panic!("/bin/sh: {other:?}"),
        }
        let bb = std::fs::read("/bin/busybox").expect("busybox-static (scripts/setup)");
        assert_eq!(needs(&bb[..65536]), Needs::Nothing);
        // Every cut of a real header is handled.
        for cut in 0..300 {
            let _ = needs(&sh[..cut]);
        }
    }

    #[test]
    fn problems_inside_a_root() {
        let root = std::env::temp_dir().join(format!("pivot-verify-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&root);
        std::fs::create_dir_all(root.join("sbin")).unwrap();
        std::fs::create_dir_all(root.join("bin")).unwrap();
        let exe = |p: &str, body: &[u8]| {
            std::fs::write(root.join(p), body).unwrap();
            std::fs::set_permissions(root.join(p), std::fs::Permissions::from_mode(0o755)).unwrap();
        };
        exe("sbin/init", b"#!/bin/nonexistent\n");
        assert_eq!(
            init_problem(&root, Path::new("/sbin/init"))
                .unwrap()
                .to_string(),
            "its interpreter /bin/nonexistent is missing or unusable (not found)"
        );
        exe("bin/nonexistent", b"#!/bin/sh\n");
        // /bin/sh exists on the host but not inside the root.
        assert!(
            init_problem(&root, Path::new("/sbin/init"))
                .unwrap()
                .to_string()
                .contains("/bin/sh is missing")
        );
        exe("bin/sh", &std::fs::read("/bin/busybox").unwrap()[..4096]);
        assert_eq!(init_problem(&root, Path::new("/sbin/init")), None);
        std::fs::write(root.join("bin/data"), b"x").unwrap();
        assert_eq!(
            init_problem(&root, Path::new("/bin/data")),
            Some(InitProblem::NotExecutable)
        );
        assert_eq!(
            init_problem(&root, Path::new("/nope")),
            Some(InitProblem::NotFound)
        );
        assert_eq!(
            init_problem(&root, Path::new("/bin")),
            Some(InitProblem::NotRegular)
        );
        std::fs::remove_dir_all(&root).unwrap();
    }
}
