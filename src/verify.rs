//! Checks of the volume made before anything irreversible: can the kernel
//! run the init, the way `execve` would? `#!` lines are read with the rules
//! of the kernel's `fs/binfmt_script.c`, ELF headers with those of
//! `fs/binfmt_elf.c` (class, byte order, type, machine, program headers);
//! every interpreter is followed inside the volume. Parsing is pure code
//! over bytes; file access resolves paths inside the root.

use std::ffi::OsStr;
use std::fmt;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use crate::sys::{self, Errno, ErrnoText, FileType, Files, Kernel, OpenFile, Resolve};

/// What the kernel reads of a file to pick its binary format.
pub const BINPRM_BUF_SIZE: usize = 256;
/// Script interpreters the kernel follows before `ELOOP` (`exec_binprm`
/// allows binfmt rewrites up to depth 5; the last file must be a binary).
pub const MAX_SCRIPT_DEPTH: u32 = 5;

/// A `#!` line as the kernel splits it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Shebang {
    pub interpreter: Vec<u8>,
    pub arg: Option<Vec<u8>>,
}

fn spacetab(c: u8) -> bool {
    c == b' ' || c == b'\t'
}

/// Parses a `#!` line the way `load_script` does. `head` is the start of the
/// file; the kernel looks at the first [`BINPRM_BUF_SIZE`] bytes (zero-filled
/// past the end of the file). `None` when it is not a script; `Err` when the
/// kernel would refuse it (ENOEXEC).
pub fn shebang(head: &[u8]) -> Option<Result<Shebang, &'static str>> {
    if !head.starts_with(b"#!") {
        return None;
    }
    let mut buf = [0u8; BINPRM_BUF_SIZE];
    let n = head.len().min(BINPRM_BUF_SIZE);
    buf[..n].copy_from_slice(&head[..n]);
    // The line ends at the first newline in the buffer; without one, the
    // interpreter must end (space, tab or NUL) before the buffer does, and
    // the line is the whole buffer but its last byte.
    let end = match buf.iter().position(|c| *c == b'\n') {
        Some(i) => i,
        None => {
            let start = buf[2..BINPRM_BUF_SIZE - 1]
                .iter()
                .position(|c| !spacetab(*c))
                .map(|i| i + 2);
            let Some(start) = start else {
                return Some(Err("its `#!` line has no interpreter"));
            };
            if !buf[start..BINPRM_BUF_SIZE - 1]
                .iter()
                .any(|c| spacetab(*c) || *c == 0)
            {
                return Some(Err(
                    "its `#!` line is longer than the kernel reads (256 bytes)",
                ));
            }
            BINPRM_BUF_SIZE - 1
        }
    };
    let mut line = &buf[2..end];
    while let [rest @ .., last] = line
        && spacetab(*last)
    {
        line = rest;
    }
    let Some(name_start) = line.iter().position(|c| !spacetab(*c)) else {
        return Some(Err("its `#!` line has no interpreter"));
    };
    let line = &line[name_start..];
    // The name ends at a space, a tab or a NUL; a CR is part of it.
    let name_end = line
        .iter()
        .position(|c| spacetab(*c) || *c == 0)
        .unwrap_or(line.len());
    let interpreter = line[..name_end].to_vec();
    if interpreter.is_empty() {
        return Some(Err("its `#!` line has no interpreter"));
    }
    let arg = match line.get(name_end) {
        Some(&sep) if sep != 0 => {
            let rest = &line[name_end..];
            rest.iter()
                .position(|c| !spacetab(*c))
                .map(|i| rest[i..].to_vec())
        }
        _ => None,
    };
    Some(Ok(Shebang { interpreter, arg }))
}

/// The ELF identity the running kernel executes: class, byte order, machine.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ElfKind {
    /// 1 = 32-bit, 2 = 64-bit.
    pub class: u8,
    /// 1 = little-endian, 2 = big-endian.
    pub data: u8,
    pub machine: u16,
}

impl ElfKind {
    /// A short name for messages: `x86_64`, `aarch64`, `EM_40 32-bit`.
    pub fn name(self) -> String {
        let known = match (self.machine, self.class) {
            (62, 2) => Some("x86_64"),
            (62, 1) => Some("x32"),
            (3, _) => Some("i386"),
            (183, _) => Some("aarch64"),
            (40, _) => Some("arm"),
            (243, 2) => Some("riscv64"),
            (22, _) => Some("s390x"),
            (21, _) if self.data == 1 => Some("ppc64le"),
            (21, _) => Some("ppc64"),
            (8, _) => Some("mips"),
            _ => None,
        };
        match known {
            Some(n) => n.to_string(),
            None => format!(
                "machine {} ({}-bit)",
                self.machine,
                if self.class == 2 { 64 } else { 32 }
            ),
        }
    }
}

/// What the running kernel executes: its own kind, and a compat kind when
/// it runs one (32-bit x86 on x86_64 with IA32 emulation).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Arch {
    pub native: ElfKind,
    pub compat: Option<ElfKind>,
}

impl Arch {
    /// The kinds for `uname -m`; `ia32` says whether the kernel runs i386
    /// binaries (x86_64 only). `None` for a machine we do not know: then the
    /// machine is not checked.
    pub fn for_machine(uname_m: &str, ia32: bool) -> Option<Arch> {
        let k = |class, data, machine| ElfKind {
            class,
            data,
            machine,
        };
        let i386 = k(1, 1, 3);
        let (native, compat) = match uname_m {
            "x86_64" => (k(2, 1, 62), ia32.then_some(i386)),
            "i386" | "i486" | "i586" | "i686" => (i386, None),
            "aarch64" => (k(2, 1, 183), None),
            "riscv64" => (k(2, 1, 243), None),
            "s390x" => (k(2, 2, 22), None),
            "ppc64le" => (k(2, 1, 21), None),
            "ppc64" => (k(2, 2, 21), None),
            m if m.starts_with("armv") => (k(1, 1, 40), None),
            _ => return None,
        };
        Some(Arch { native, compat })
    }

    /// The running kernel's.
    pub fn running(sys: &(impl Files + Kernel + ?Sized)) -> Option<Arch> {
        let m = sys.uname().machine;
        // /proc/sys/abi/vsyscall32 exists when an x86_64 kernel has IA32 emulation.
        let ia32 = sys.exists(Path::new("/proc/sys/abi/vsyscall32"));
        let arch = Arch::for_machine(&m, ia32);
        if arch.is_none() {
            log::debug!("unknown machine {m}: ELF machines are not checked");
        }
        arch
    }

    pub fn runs(&self, k: ElfKind) -> bool {
        k == self.native || Some(k) == self.compat
    }
}

/// What an ELF header says, as far as the kernel's checks go.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Elf {
    pub kind: ElfKind,
    /// PT_INTERP: the dynamic loader the kernel loads with it.
    pub interp: Option<Vec<u8>>,
}

fn uint(b: &[u8], off: usize, len: usize, le: bool) -> Option<u64> {
    let s = b.get(off..off.checked_add(len)?)?;
    let fold = |v: u64, byte: &u8| (v << 8) | u64::from(*byte);
    Some(if le {
        s.iter().rev().fold(0, fold)
    } else {
        s.iter().fold(0, fold)
    })
}

/// Parses an ELF header and its program headers from `b` (the start of the
/// file). `None` when `b` does not start with the ELF magic; `Err` when the
/// kernel would refuse the header, or `b` is too short to hold what it names
/// (then the caller reads more).
pub fn elf(b: &[u8]) -> Option<Result<Elf, ElfProblem>> {
    if !b.starts_with(b"\x7fELF") {
        return None;
    }
    Some(parse_elf(b))
}

/// Why an ELF file cannot be executed here.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ElfProblem {
    /// Cut short, or inconsistent (class, byte order, program headers).
    Malformed,
    /// Not an executable or a position-independent executable (`e_type`).
    NotExecutable(u16),
    /// Built for another machine.
    WrongMachine { found: ElfKind, want: ElfKind },
}

fn parse_elf(b: &[u8]) -> Result<Elf, ElfProblem> {
    use ElfProblem::Malformed;
    let (class, data) = (*b.get(4).ok_or(Malformed)?, *b.get(5).ok_or(Malformed)?);
    if !matches!(class, 1 | 2) || !matches!(data, 1 | 2) {
        return Err(Malformed);
    }
    let (le, wide) = (data == 1, class == 2);
    let get = |off32: usize, off64: usize, len32: usize, len64: usize| {
        let (off, len) = if wide { (off64, len64) } else { (off32, len32) };
        uint(b, off, len, le).ok_or(Malformed)
    };
    let e_type = get(0x10, 0x10, 2, 2)? as u16;
    let machine = get(0x12, 0x12, 2, 2)? as u16;
    let kind = ElfKind {
        class,
        data,
        machine,
    };
    // ET_EXEC or ET_DYN.
    if !matches!(e_type, 2 | 3) {
        return Err(ElfProblem::NotExecutable(e_type));
    }
    let phoff = get(0x1c, 0x20, 4, 8)?;
    let phentsize = get(0x2a, 0x36, 2, 2)?;
    let phnum = get(0x2c, 0x38, 2, 2)?;
    // The kernel wants program headers of its own size, and 1..=65536/size of them.
    let want_size = if wide { 56 } else { 32 };
    if phentsize != want_size || phnum == 0 || phnum > 65536 / want_size {
        return Err(Malformed);
    }
    let mut interp = None;
    for i in 0..phnum {
        let ph = usize::try_from(phoff.checked_add(i * phentsize).ok_or(Malformed)?)
            .map_err(|_| Malformed)?;
        if uint(b, ph, 4, le).ok_or(Malformed)? != 3 {
            continue; // not PT_INTERP
        }
        let (off, size) = if wide {
            (uint(b, ph + 8, 8, le), uint(b, ph + 32, 8, le))
        } else {
            (uint(b, ph + 4, 4, le), uint(b, ph + 16, 4, le))
        };
        let start = usize::try_from(off.ok_or(Malformed)?).map_err(|_| Malformed)?;
        let len = usize::try_from(size.ok_or(Malformed)?).map_err(|_| Malformed)?;
        let raw = b
            .get(start..start.checked_add(len).ok_or(Malformed)?)
            .ok_or(Malformed)?;
        // The kernel wants a NUL-terminated path of at least 2 bytes.
        if len < 2 || raw.last() != Some(&0) {
            return Err(Malformed);
        }
        let path = raw.split(|c| *c == 0).next().unwrap_or(raw);
        interp = Some(path.to_vec());
        break;
    }
    Ok(Elf { kind, interp })
}

/// Why a file cannot be run as an init.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum InitProblem {
    NotFound,
    Open(Errno),
    Stat(Errno),
    NotRegular,
    NotExecutable,
    /// Neither ELF nor `#!`: the kernel says ENOEXEC.
    UnknownFormat,
    Script(&'static str),
    Elf(ElfProblem),
    /// A dynamic loader that is itself a script (the kernel loads only an ELF there).
    LoaderNotElf,
    TooDeep,
    /// It resolves (after symlinks, inside the volume) to a place the
    /// switch covers: the old-root directory or an API mount.
    Covered {
        resolved: PathBuf,
        by: PathBuf,
    },
    /// Its interpreter cannot be run, and why.
    Interpreter(String, Box<InitProblem>),
}

impl fmt::Display for InitProblem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        use InitProblem::*;
        match self {
            NotFound => write!(f, "not found"),
            Open(e) => write!(f, "cannot open: {}", ErrnoText(*e)),
            Stat(e) => write!(f, "cannot stat: {}", ErrnoText(*e)),
            NotRegular => write!(f, "not a regular file"),
            NotExecutable => write!(f, "not executable"),
            UnknownFormat => write!(
                f,
                "neither an ELF binary nor a `#!` script (the kernel would refuse it: ENOEXEC)"
            ),
            Script(why) => write!(f, "{why}"),
            Elf(ElfProblem::Malformed) => write!(f, "a truncated or malformed executable"),
            Elf(ElfProblem::NotExecutable(t)) => {
                write!(f, "an ELF file of type {t}, not an executable")
            }
            Elf(ElfProblem::WrongMachine { found, want }) => write!(
                f,
                "an ELF binary for {}, but this machine runs {}",
                found.name(),
                want.name()
            ),
            LoaderNotElf => write!(f, "not an ELF binary, as a dynamic loader must be"),
            TooDeep => write!(f, "too many levels of interpreters"),
            Covered { resolved, by } => write!(
                f,
                "it resolves to {} on the volume, under {}, which the switch covers",
                resolved.display(),
                by.display()
            ),
            Interpreter(i, why) => write!(f, "its interpreter {i} is missing or unusable ({why})"),
        }
    }
}

/// What is checked besides the file itself.
pub struct Rules {
    /// `None`: the ELF machine is not checked.
    pub arch: Option<Arch>,
    /// Directories of the volume the switch covers (old root, API mounts).
    pub covered: Vec<PathBuf>,
}

/// An init that passed the check, open: what will be executed.
pub struct CheckedInit {
    /// The path as seen from inside the volume.
    pub path: PathBuf,
    pub file: OpenFile,
    /// A `#!` script (exec by path: its interpreter reads it by name).
    pub script: bool,
}

/// A printable interpreter name: bytes that are not plain text are escaped
/// (`/bin/busybox\r`).
fn shown(name: &[u8]) -> String {
    String::from_utf8_lossy(name).escape_debug().to_string()
}

/// Checks `p` (absolute as seen from inside `root`) as an init; the open
/// file when the kernel would run it.
pub fn check_init(
    fs: &dyn Files,
    root: &Path,
    p: &Path,
    rules: &Rules,
) -> Result<CheckedInit, InitProblem> {
    let (file, head) = open_checked(fs, root, p, rules)?;
    if let Some(s) = shebang(&head) {
        let s = s.map_err(InitProblem::Script)?;
        check_interpreter(fs, root, &s.interpreter, rules, 1, false)?;
        return Ok(CheckedInit {
            path: p.to_path_buf(),
            file,
            script: true,
        });
    }
    check_binary(fs, root, &file, &head, rules)?;
    Ok(CheckedInit {
        path: p.to_path_buf(),
        file,
        script: false,
    })
}

/// Checks an open program (its first bytes in `head`) that the kernel will
/// run with its interpreters resolved from `interp_root`: a hook, run from
/// the boot root before the switch, has its `#!` interpreter and its
/// dynamic loader there, not on the volume.
pub fn check_program(
    fs: &dyn Files,
    file: &OpenFile,
    head: &[u8],
    interp_root: &Path,
    rules: &Rules,
) -> Result<(), InitProblem> {
    match shebang(head) {
        Some(s) => {
            let s = s.map_err(InitProblem::Script)?;
            check_interpreter(fs, interp_root, &s.interpreter, rules, 1, false)
        }
        None => check_binary(fs, interp_root, file, head, rules),
    }
}

/// Why `p` cannot be run as an init inside `root`, or `None` when it can.
pub fn init_problem(fs: &dyn Files, root: &Path, p: &Path, rules: &Rules) -> Option<InitProblem> {
    check_init(fs, root, p, rules).err()
}

/// An interpreter at script depth `depth` (`loader`: an ELF's PT_INTERP).
fn check_interpreter(
    fs: &dyn Files,
    root: &Path,
    name: &[u8],
    rules: &Rules,
    depth: u32,
    loader: bool,
) -> Result<(), InitProblem> {
    let wrap = |why| InitProblem::Interpreter(shown(name), Box::new(why));
    // The kernel opens a relative name from the cwd, which is / at the exec.
    let path = sys::in_root(Path::new("/"), Path::new(OsStr::from_bytes(name)));
    let (file, head) = open_checked(fs, root, &path, rules).map_err(wrap)?;
    match shebang(&head) {
        Some(_) if loader => Err(wrap(InitProblem::LoaderNotElf)),
        Some(_) if depth >= MAX_SCRIPT_DEPTH => Err(wrap(InitProblem::TooDeep)),
        Some(s) => {
            let s = s.map_err(|why| wrap(InitProblem::Script(why)))?;
            check_interpreter(fs, root, &s.interpreter, rules, depth + 1, false).map_err(wrap)
        }
        None => check_binary(fs, root, &file, &head, rules).map_err(wrap),
    }
}

/// An ELF: header, machine, and its dynamic loader.
fn check_binary(
    fs: &dyn Files,
    root: &Path,
    file: &OpenFile,
    head: &[u8],
    rules: &Rules,
) -> Result<(), InitProblem> {
    let mut parsed = elf(head).ok_or(InitProblem::UnknownFormat)?;
    // The first 4 KiB hold the program headers of any usual binary; read
    // more only when they do not (a disk read costs on the boot path).
    if parsed == Err(ElfProblem::Malformed) && head.len() == 4096 {
        parsed = elf(&file.head(64 * 1024)).ok_or(InitProblem::UnknownFormat)?;
    }
    let e = parsed.map_err(InitProblem::Elf)?;
    if let Some(arch) = &rules.arch
        && !arch.runs(e.kind)
    {
        return Err(InitProblem::Elf(ElfProblem::WrongMachine {
            found: e.kind,
            want: arch.native,
        }));
    }
    match e.interp {
        Some(interp) => check_interpreter(fs, root, &interp, rules, 0, true),
        None => Ok(()),
    }
}

/// Opens `p` inside `root`, checks it is an executable regular file outside
/// what the switch covers, and reads its first 4 KiB.
fn open_checked(
    fs: &dyn Files,
    root: &Path,
    p: &Path,
    rules: &Rules,
) -> Result<(OpenFile, Vec<u8>), InitProblem> {
    let file = match fs.open_in(root, p, Resolve::InRoot) {
        Ok(f) => f,
        Err(Errno::NOENT) => return Err(InitProblem::NotFound),
        Err(e) => return Err(InitProblem::Open(e)),
    };
    let st = file.info().map_err(InitProblem::Stat)?;
    if st.kind != FileType::RegularFile {
        return Err(InitProblem::NotRegular);
    }
    if st.mode & 0o111 == 0 {
        return Err(InitProblem::NotExecutable);
    }
    if let Some(resolved) = fs.path_in(&file, root) {
        if let Some(by) = rules.covered.iter().find(|c| resolved.starts_with(c)) {
            return Err(InitProblem::Covered {
                resolved,
                by: by.clone(),
            });
        }
    } else {
        log::debug!("cannot tell where {} resolves to", p.display());
    }
    let head = file.head(4096);
    Ok((file, head))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    fn sb(head: &[u8]) -> Result<(String, Option<String>), &'static str> {
        let s = shebang(head).expect("a script")?;
        let text = |b: &[u8]| String::from_utf8_lossy(b).into_owned();
        Ok((text(&s.interpreter), s.arg.as_deref().map(text)))
    }

    #[test]
    fn shebang_lines_as_the_kernel_reads_them() {
        let name = |n: &str| Ok((n.to_string(), None));
        let with = |n: &str, a: &str| Ok((n.to_string(), Some(a.to_string())));
        assert_eq!(sb(b"#!/bin/sh\necho"), name("/bin/sh"));
        // No newline at all: the file is shorter than the buffer, zero-filled.
        assert_eq!(sb(b"#!/bin/sh"), name("/bin/sh"));
        assert_eq!(sb(b"#!/bin/sh -e\n"), with("/bin/sh", "-e"));
        // One argument: everything after the name, inner spaces kept, the end trimmed.
        assert_eq!(
            sb(b"#!  /usr/bin/env python3 -u \t\n"),
            with("/usr/bin/env", "python3 -u")
        );
        assert_eq!(sb(b"#!\t/bin/sh\t-x\t\n"), with("/bin/sh", "-x"));
        // A CR is part of the name, as for the kernel.
        assert_eq!(sb(b"#!/bin/busybox\r\nsh\r\n"), name("/bin/busybox\r"));
        assert_eq!(sb(b"#!/bin/sh -e\r\n"), with("/bin/sh", "-e\r"));
        // Nothing after #!.
        assert_eq!(sb(b"#!\n"), Err("its `#!` line has no interpreter"));
        assert_eq!(sb(b"#!   \t \n"), Err("its `#!` line has no interpreter"));
        assert_eq!(sb(b"#!"), Err("its `#!` line has no interpreter"));
        // A line longer than the 256 bytes the kernel reads: a name that
        // does not end in them is refused; an argument is cut.
        let mut long = b"#!/".to_vec();
        long.extend(std::iter::repeat_n(b'a', 300));
        assert_eq!(
            sb(&long),
            Err("its `#!` line is longer than the kernel reads (256 bytes)")
        );
        let mut long = b"#!/bin/sh ".to_vec();
        long.extend(std::iter::repeat_n(b'x', 300));
        let (n, a) = sb(&long).unwrap();
        assert_eq!((n.as_str(), a.map(|a| a.len())), ("/bin/sh", Some(245)));
        // Exactly 255 bytes and a newline at 255 is inside the buffer.
        let mut edge = b"#!/bin/sh ".to_vec();
        edge.extend(std::iter::repeat_n(b'y', 255 - edge.len()));
        edge.push(b'\n');
        assert_eq!(sb(&edge).unwrap().1.map(|a| a.len()), Some(245));
        assert_eq!(shebang(b"plain data"), None);
        assert_eq!(shebang(b"#"), None);
    }

    /// A minimal ELF header (+ program headers) for tests.
    fn elf_bytes(class: u8, data: u8, e_type: u16, machine: u16, interp: Option<&str>) -> Vec<u8> {
        let wide = class == 2;
        let (ehsize, phsize) = if wide { (64usize, 56usize) } else { (52, 32) };
        let phnum = if interp.is_some() { 2 } else { 1 };
        let mut b = vec![0u8; ehsize + phsize * phnum];
        b[..4].copy_from_slice(b"\x7fELF");
        b[4] = class;
        b[5] = data;
        b[6] = 1;
        let put = |b: &mut Vec<u8>, off: usize, len: usize, v: u64| {
            for i in 0..len {
                let byte = (v >> (8 * i)) as u8;
                let at = if data == 1 {
                    off + i
                } else {
                    off + len - 1 - i
                };
                b[at] = byte;
            }
        };
        put(&mut b, 0x10, 2, e_type.into());
        put(&mut b, 0x12, 2, machine.into());
        let (phoff, phentsize, phnum_off) = if wide {
            (0x20, 0x36, 0x38)
        } else {
            (0x1c, 0x2a, 0x2c)
        };
        put(&mut b, phoff, if wide { 8 } else { 4 }, ehsize as u64);
        put(&mut b, phentsize, 2, phsize as u64);
        put(&mut b, phnum_off, 2, phnum as u64);
        put(&mut b, ehsize, 4, 1); // PT_LOAD
        if let Some(i) = interp {
            let ph = ehsize + phsize;
            let at = b.len();
            b.extend_from_slice(i.as_bytes());
            b.push(0);
            put(&mut b, ph, 4, 3);
            if wide {
                put(&mut b, ph + 8, 8, at as u64);
                put(&mut b, ph + 32, 8, i.len() as u64 + 1);
            } else {
                put(&mut b, ph + 4, 4, at as u64);
                put(&mut b, ph + 16, 4, i.len() as u64 + 1);
            }
        }
        b
    }

    #[test]
    fn elf_headers_as_the_kernel_checks_them() {
        let x86_64 = Arch::for_machine("x86_64", false).unwrap();
        let with_ia32 = Arch::for_machine("x86_64", true).unwrap();
        let e = elf(&elf_bytes(2, 1, 2, 62, None)).unwrap().unwrap();
        assert!(x86_64.runs(e.kind) && e.interp.is_none());
        let e = elf(&elf_bytes(2, 1, 3, 62, Some("/lib64/ld-linux-x86-64.so.2")))
            .unwrap()
            .unwrap();
        assert_eq!(
            e.interp.as_deref(),
            Some(&b"/lib64/ld-linux-x86-64.so.2"[..])
        );
        // Another machine; a 32-bit i386 binary runs only with IA32 emulation.
        let arm = elf(&elf_bytes(2, 1, 2, 183, None)).unwrap().unwrap();
        assert!(!x86_64.runs(arm.kind));
        assert_eq!(arm.kind.name(), "aarch64");
        let i386 = elf(&elf_bytes(1, 1, 2, 3, Some("/lib/ld-linux.so.2")))
            .unwrap()
            .unwrap();
        assert!(!x86_64.runs(i386.kind) && with_ia32.runs(i386.kind));
        let s390 = elf(&elf_bytes(2, 2, 2, 22, None)).unwrap().unwrap();
        assert!(Arch::for_machine("s390x", false).unwrap().runs(s390.kind));
        assert!(!Arch::for_machine("ppc64le", false).unwrap().runs(s390.kind));
        // A relocatable object or a core file is not executed.
        assert_eq!(
            elf(&elf_bytes(2, 1, 1, 62, None)),
            Some(Err(ElfProblem::NotExecutable(1)))
        );
        assert_eq!(
            elf(&elf_bytes(2, 1, 4, 62, None)),
            Some(Err(ElfProblem::NotExecutable(4)))
        );
        // Bad class, byte order, program header size; every truncation.
        let mut bad = elf_bytes(2, 1, 2, 62, None);
        bad[4] = 3;
        assert_eq!(elf(&bad), Some(Err(ElfProblem::Malformed)));
        let mut bad = elf_bytes(2, 1, 2, 62, None);
        bad[0x36] = 55;
        assert_eq!(elf(&bad), Some(Err(ElfProblem::Malformed)));
        let good = elf_bytes(2, 1, 3, 62, Some("/lib/ld.so"));
        for cut in 0..good.len() {
            assert!(
                matches!(elf(&good[..cut]), None | Some(Err(_))),
                "cut {cut}"
            );
        }
        assert_eq!(elf(b"#!/bin/sh"), None);
        assert_eq!(Arch::for_machine("vax", false), None);
    }

    #[test]
    fn real_elves() {
        let arch = Arch::for_machine(std::env::consts::ARCH, true).unwrap();
        // A dynamic host binary names its loader.
        let sh = std::fs::read("/bin/sh").unwrap();
        let e = elf(&sh[..sh.len().min(65536)]).unwrap().unwrap();
        assert!(arch.runs(e.kind));
        assert!(e.interp.is_some_and(|i| i.starts_with(b"/lib")));
        let bb = std::fs::read("/bin/busybox").expect("busybox-static (scripts/setup)");
        let e = elf(&bb[..4096]).unwrap().unwrap();
        assert!(arch.runs(e.kind) && e.interp.is_none());
    }

    fn exe(root: &Path, p: &str, body: &[u8]) {
        let path = root.join(p.trim_start_matches('/'));
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(&path, body).unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
    }

    /// A FIFO or a device node where the init is expected is looked at,
    /// never opened: the check answers at once (opening a FIFO for reading
    /// waits for a writer forever).
    #[test]
    fn special_files_are_not_opened() {
        let root = std::env::temp_dir().join(format!("pivot-fifo-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&root);
        std::fs::create_dir_all(root.join("sbin")).unwrap();
        let made = std::process::Command::new("mkfifo")
            .arg(root.join("sbin/init"))
            .status()
            .unwrap();
        assert!(made.success());
        let mut nodes = vec!["/sbin/init"];
        if sys::is_root_user() {
            // A tty: opening it would wait for carrier, or make it ours.
            let tty = std::process::Command::new("mknod")
                .args([root.join("sbin/tty").to_str().unwrap(), "c", "4", "64"])
                .status()
                .unwrap();
            assert!(tty.success());
            nodes.push("/sbin/tty");
        }
        let (tx, rx) = std::sync::mpsc::channel();
        let r = root.clone();
        std::thread::spawn(move || {
            let fs = crate::sys::RealSys::default();
            let rules = Rules {
                arch: None,
                covered: Vec::new(),
            };
            for n in nodes {
                let why = init_problem(&fs, &r, Path::new(n), &rules).map(|w| w.to_string());
                tx.send((n, why)).unwrap();
            }
        });
        for _ in 0..(1 + usize::from(sys::is_root_user())) {
            let (n, why) = rx
                .recv_timeout(std::time::Duration::from_secs(10))
                .expect("the check of a special file hung");
            assert_eq!(why.as_deref(), Some("not a regular file"), "{n}");
        }
        std::fs::remove_dir_all(&root).unwrap();
    }

    #[test]
    fn problems_inside_a_root() {
        let root = std::env::temp_dir().join(format!("pivot-verify-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&root);
        std::fs::create_dir_all(root.join("sbin")).unwrap();
        let arch = Arch::for_machine(std::env::consts::ARCH, false);
        let covered = [PathBuf::from("/old-root"), PathBuf::from("/dev")];
        let rules = Rules {
            arch,
            covered: covered.to_vec(),
        };
        let fs = crate::sys::RealSys::default();
        let why = |p: &str| init_problem(&fs, &root, Path::new(p), &rules).map(|w| w.to_string());
        let busybox = std::fs::read("/bin/busybox").unwrap();
        exe(&root, "/sbin/init", b"#!/bin/nonexistent\n");
        assert_eq!(
            why("/sbin/init").unwrap(),
            "its interpreter /bin/nonexistent is missing or unusable (not found)"
        );
        exe(&root, "/bin/nonexistent", b"#!/bin/sh\n");
        // /bin/sh exists on the host but not inside the root.
        assert!(why("/sbin/init").unwrap().contains("/bin/sh is missing"));
        exe(&root, "/bin/sh", &busybox);
        assert_eq!(why("/sbin/init"), None);
        std::fs::write(root.join("bin/data"), b"x").unwrap();
        assert_eq!(why("/bin/data").unwrap(), "not executable");
        assert_eq!(why("/nope").unwrap(), "not found");
        assert_eq!(why("/bin").unwrap(), "not a regular file");
        // CRLF: the interpreter's name ends in a CR.
        exe(&root, "/bin/busybox", &busybox);
        exe(&root, "/etc/init", b"#!/bin/busybox\r\nsh\r\n");
        assert_eq!(
            why("/etc/init").unwrap(),
            "its interpreter /bin/busybox\\r is missing or unusable (not found)"
        );
        // Another machine's binary.
        let mut arm = busybox.clone();
        arm[0x12..0x14].copy_from_slice(&183u16.to_le_bytes());
        exe(&root, "/bin/arm", &arm);
        assert!(
            why("/bin/arm")
                .unwrap()
                .starts_with("an ELF binary for aarch64, but this machine runs"),
            "{:?}",
            why("/bin/arm")
        );
        // A dynamic loader must be an ELF, not a script.
        exe(&root, "/lib/ld.so", b"#!/bin/sh\n");
        exe(
            &root,
            "/bin/dyn",
            &elf_bytes(2, 1, 3, 62, Some("/lib/ld.so")),
        );
        if std::env::consts::ARCH == "x86_64" {
            assert_eq!(
                why("/bin/dyn").unwrap(),
                "its interpreter /lib/ld.so is missing or unusable (not an ELF binary, as a dynamic loader must be)"
            );
        }
        // Resolving under what the switch covers, directly or through a symlink.
        exe(&root, "/old-root/sbin/init", &busybox);
        std::os::unix::fs::symlink("/old-root/sbin/init", root.join("bin/init")).unwrap();
        assert_eq!(
            why("/bin/init").unwrap(),
            "it resolves to /old-root/sbin/init on the volume, under /old-root, which the switch covers"
        );
        exe(&root, "/dev/sh", &busybox);
        exe(&root, "/bin/viadev", b"#!/dev/sh\n");
        assert!(
            why("/bin/viadev")
                .unwrap()
                .contains("under /dev, which the switch covers")
        );
        // Scripts nest to the kernel's depth: five scripts, then a binary.
        for i in 0..6 {
            let next = if i == 5 {
                "/bin/sh".to_string()
            } else {
                format!("/s{}", i + 1)
            };
            exe(&root, &format!("/s{i}"), format!("#!{next}\n").as_bytes());
        }
        assert_eq!(why("/s1"), None);
        assert!(
            why("/s0")
                .unwrap()
                .contains("too many levels of interpreters")
        );
        std::fs::remove_dir_all(&root).unwrap();
    }
}
