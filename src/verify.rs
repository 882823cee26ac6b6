//! Checks of the volume made before anything irreversible: can the kernel
//! run the init, the way `execve` would, and will what it maps hold? `#!`
//! lines are read with the rules of the kernel's `fs/binfmt_script.c`, ELF
//! files with those of `fs/binfmt_elf.c` (class, byte order, type, machine,
//! program headers, `PT_INTERP`, and the `PT_LOAD` segments the loader maps
//! after the point of no return, where a fault kills PID 1 and so panics the
//! kernel); every interpreter is followed inside the volume, a dynamic
//! loader is checked as the kernel loads it (its own `PT_INTERP` ignored).
//! Parsing is pure code over bytes; file access resolves paths inside the root.

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
/// The longest `PT_INTERP` the kernel takes (`PATH_MAX`).
const PATH_MAX: u64 = 4096;
/// The smallest page of any Linux machine: a mapped segment's file offset
/// and address must sit at the same place in a page (`mmap` takes only a
/// page-aligned offset), on bigger pages all the more.
const MIN_PAGE: u64 = 4096;

/// A `#!` line as the kernel splits it: the interpreter and at most one
/// argument, each a C string (it ends at the first NUL byte; the argument
/// may be empty, as the kernel passes it).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Shebang {
    pub interpreter: Vec<u8>,
    pub arg: Option<Vec<u8>>,
}

fn spacetab(c: u8) -> bool {
    c == b' ' || c == b'\t'
}

const NO_INTERPRETER: &str = "its `#!` line has no interpreter";
const LINE_TOO_LONG: &str = "its `#!` line is longer than the kernel reads (256 bytes)";

/// Parses a `#!` line the way `load_script` does. `head` is the start of the
/// file; the kernel looks at the first [`BINPRM_BUF_SIZE`] bytes (zero-filled
/// past the end of the file). `None` when it is not a script; `Err` when the
/// kernel would refuse it (ENOEXEC), or it names no interpreter.
pub fn shebang(head: &[u8]) -> Option<Result<Shebang, &'static str>> {
    if !head.starts_with(b"#!") {
        return None;
    }
    let mut buf = [0u8; BINPRM_BUF_SIZE];
    let n = head.len().min(BINPRM_BUF_SIZE);
    buf[..n].copy_from_slice(&head[..n]);
    Some(split_script_line(&mut buf))
}

/// `load_script` on its buffer, step by step. Its helpers scan inclusive
/// ranges `first..=last`.
fn split_script_line(buf: &mut [u8; BINPRM_BUF_SIZE]) -> Result<Shebang, &'static str> {
    let at = |buf: &[u8; BINPRM_BUF_SIZE], i: usize| buf.get(i).copied().unwrap_or(0);
    let non_spacetab = |buf: &[u8; BINPRM_BUF_SIZE], first: usize, last: usize| {
        (first..=last).find(|&i| !spacetab(at(buf, i)))
    };
    let terminator = |buf: &[u8; BINPRM_BUF_SIZE], first: usize, last: usize| {
        (first..=last).find(|&i| spacetab(at(buf, i)) || at(buf, i) == 0)
    };
    let buf_end = BINPRM_BUF_SIZE - 1;
    // The line ends at the first newline, looked for as `strnchr` does: it
    // stops at the first NUL. Without one, the interpreter must end (space,
    // tab or NUL) inside the buffer, and the line is the buffer but its
    // last byte.
    let newline = buf
        .iter()
        .take_while(|c| **c != 0)
        .position(|c| *c == b'\n');
    let mut end = match newline {
        Some(i) => i,
        None => {
            let start = non_spacetab(buf, 2, buf_end).ok_or(NO_INTERPRETER)?;
            terminator(buf, start, buf_end).ok_or(LINE_TOO_LONG)?;
            buf_end
        }
    };
    // Trailing spaces and tabs go (buf[1] is the `!`, which stops this).
    while end > 2 && spacetab(at(buf, end - 1)) {
        end -= 1;
    }
    let name = non_spacetab(buf, 2, end)
        .filter(|&i| i != end)
        .ok_or(NO_INTERPRETER)?;
    // The name ends at a space, a tab or a NUL (a CR is part of it); after
    // a space or tab, the first byte that is neither starts the argument.
    let sep = terminator(buf, name, end);
    let arg = match sep {
        Some(s) if at(buf, s) != 0 => non_spacetab(buf, s, end),
        _ => None,
    };
    // The kernel ends the line with a NUL, and the name too when there is
    // an argument; each string is then read up to its first NUL.
    if let Some(b) = buf.get_mut(end) {
        *b = 0;
    }
    if let (Some(_), Some(s)) = (arg, sep)
        && let Some(b) = buf.get_mut(s)
    {
        *b = 0;
    }
    let c_string = |from: usize| {
        let rest = buf.get(from..).unwrap_or_default();
        rest.split(|c| *c == 0).next().unwrap_or_default().to_vec()
    };
    let interpreter = c_string(name);
    if interpreter.is_empty() {
        return Err(NO_INTERPRETER);
    }
    Ok(Shebang {
        interpreter,
        arg: arg.map(c_string),
    })
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

impl ElfKind {
    /// The name with class and byte order: `x86_64 (64-bit, big-endian)`.
    pub fn long_name(self) -> String {
        format!(
            "{} ({}-bit, {}-endian)",
            self.name(),
            if self.class == 2 { 64 } else { 32 },
            if self.data == 1 { "little" } else { "big" }
        )
    }
}

/// What the running kernel executes: its own kind, and a compat kind when
/// it runs one (32-bit x86 on x86_64 with IA32 emulation, 32-bit ARM on
/// arm64 with AArch32 at EL0).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Arch {
    pub native: ElfKind,
    pub compat: Option<ElfKind>,
}

impl Arch {
    /// The kinds for `uname -m`; `compat` says whether the kernel runs the
    /// machine's 32-bit programs (x86_64: i386; arm64: 32-bit ARM, little-endian).
    /// `None` for a machine we do not know: then the machine is not checked.
    pub fn for_machine(uname_m: &str, compat: bool) -> Option<Arch> {
        let k = |class, data, machine| ElfKind {
            class,
            data,
            machine,
        };
        let i386 = k(1, 1, 3);
        let (native, compat) = match uname_m {
            "x86_64" => (k(2, 1, 62), compat.then_some(i386)),
            "i386" | "i486" | "i586" | "i686" => (i386, None),
            "aarch64" => (k(2, 1, 183), compat.then_some(k(1, 1, 40))),
            "riscv64" => (k(2, 1, 243), None),
            "s390x" => (k(2, 2, 22), None),
            "ppc64le" => (k(2, 1, 21), None),
            "ppc64" => (k(2, 2, 21), None),
            m if m.starts_with("armv") => (k(1, 1, 40), None),
            _ => return None,
        };
        Some(Arch { native, compat })
    }

    /// The running kernel's. Whether it runs 32-bit programs is what the
    /// kernel says ([`Kernel::runs_32bit`]), unless, on x86_64, its command
    /// line turns IA32 emulation off.
    pub fn running(sys: &(impl Files + Kernel + ?Sized)) -> Option<Arch> {
        let m = sys.uname().machine;
        let mut compat = sys.runs_32bit();
        if compat && m == "x86_64" {
            let cmdline = sys.cmdline().unwrap_or_default();
            compat = ia32_emulation(&String::from_utf8_lossy(&cmdline)).unwrap_or(true);
        }
        let arch = Arch::for_machine(&m, compat);
        if arch.is_none() {
            log::debug!("unknown machine {m}: ELF machines are not checked");
        }
        arch
    }

    pub fn runs(&self, k: ElfKind) -> bool {
        k == self.native || Some(k) == self.compat
    }
}

/// What `ia32_emulation=` on a kernel command line sets (Linux 6.7 and
/// later read it; the last value the kernel accepts wins), `None` when no
/// value is given. The build-time default (`CONFIG_IA32_EMULATION_DEFAULT_DISABLED`)
/// cannot be seen from user space: without the parameter, emulation built
/// in is taken as on. Words after `--` are the init's, not the kernel's.
pub fn ia32_emulation(cmdline: &str) -> Option<bool> {
    let mut on = None;
    for word in crate::config::split_cmdline(cmdline) {
        if word == "--" {
            break;
        }
        // The kernel takes `-` and `_` alike in parameter names.
        if let Some((key, value)) = word.split_once('=')
            && crate::sys::underscores(key) == "ia32_emulation"
            && let Some(b) = kstrtobool(value)
        {
            on = Some(b);
        }
    }
    on
}

/// The kernel's `kstrtobool`: `1`, `y`, `t`, `on` are true; `0`, `n`, `f`,
/// `off` false (by their first letters, any case); anything else is
/// refused (the setting stays as it was). (Kernels from late 2025 also
/// take `e`/`d`; older ones with `ia32_emulation=` do not, so they are not
/// read here.)
pub fn kstrtobool(s: &str) -> Option<bool> {
    let b = s.as_bytes();
    match b.first()? {
        b'y' | b'Y' | b't' | b'T' | b'1' => Some(true),
        b'n' | b'N' | b'f' | b'F' | b'0' => Some(false),
        b'o' | b'O' => match b.get(1)? {
            b'n' | b'N' => Some(true),
            b'f' | b'F' => Some(false),
            _ => None,
        },
        _ => None,
    }
}

/// The ELF header, as far as the kernel's loader reads it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ElfHeader {
    pub kind: ElfKind,
    /// `ET_EXEC` (2) or `ET_DYN` (3).
    pub e_type: u16,
    pub flags: u32,
    pub entry: u64,
    /// Where the program header table starts in the file.
    pub phoff: u64,
    pub phnum: u16,
}

impl ElfHeader {
    fn wide(&self) -> bool {
        self.kind.class == 2
    }

    fn little(&self) -> bool {
        self.kind.data == 1
    }

    /// The size of one program header.
    fn phentsize(&self) -> usize {
        if self.wide() { 56 } else { 32 }
    }

    /// The length of the program header table (at most 64 KiB).
    pub fn table_len(&self) -> usize {
        usize::from(self.phnum) * self.phentsize()
    }
}

/// A program header: the parts the loader reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Segment {
    pub kind: u32,
    pub flags: u32,
    pub offset: u64,
    pub vaddr: u64,
    pub filesz: u64,
    pub memsz: u64,
}

const PT_LOAD: u32 = 1;
const PT_INTERP: u32 = 3;
const PF_X: u32 = 1;

/// What an ELF file says, as far as the kernel's checks go.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Elf {
    pub kind: ElfKind,
    /// PT_INTERP: the dynamic loader the kernel loads with it (a dynamic
    /// loader's own is never read).
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

/// Why an ELF file cannot be executed here, or would crash as it is loaded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ElfProblem {
    /// Cut short, or inconsistent (class, byte order, program headers).
    Malformed,
    /// Not an executable or a position-independent executable (`e_type`).
    NotExecutable(u16),
    /// Built for another machine.
    WrongMachine { found: ElfKind, want: ElfKind },
    /// A segment the loader maps reaches past the end of the file: the
    /// file's first `needs` bytes hold it, and the file has `size`.
    Truncated { offset: u64, needs: u64, size: u64 },
    /// A segment with more bytes in the file than in memory.
    FileOverMemory {
        offset: u64,
        filesz: u64,
        memsz: u64,
    },
    /// A segment whose file offset and address are not at the same place
    /// in a page: `mmap` refuses it.
    Misaligned { offset: u64, vaddr: u64 },
    /// The entry point is in no executable segment.
    EntryOutside(u64),
    /// A dynamic loader of another class, byte order or machine than the
    /// program that names it.
    LoaderKind { found: ElfKind, want: ElfKind },
}

/// Parses the ELF header at the start of a file (`head`: what was read of
/// it, at least its first 64 bytes). `None` when it does not start with the
/// ELF magic; `Err` when the kernel would refuse the header.
pub fn elf_header(head: &[u8]) -> Option<Result<ElfHeader, ElfProblem>> {
    if !head.starts_with(b"\x7fELF") {
        return None;
    }
    Some(parse_header(head))
}

fn parse_header(b: &[u8]) -> Result<ElfHeader, ElfProblem> {
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
    let entry = get(0x18, 0x18, 4, 8)?;
    let phoff = get(0x1c, 0x20, 4, 8)?;
    let flags = get(0x24, 0x30, 4, 4)? as u32;
    let phentsize = get(0x2a, 0x36, 2, 2)?;
    let phnum = get(0x2c, 0x38, 2, 2)? as u16;
    // The kernel wants program headers of its own size, and a table of 1
    // to 64 KiB. (It also refuses one bigger than a page, ELF_MIN_ALIGN:
    // a clean ENOEXEC at the exec, not checked here.)
    let want_size = if wide { 56 } else { 32 };
    if phentsize != want_size || phnum == 0 || u64::from(phnum) * want_size > 65536 {
        return Err(Malformed);
    }
    Ok(ElfHeader {
        kind,
        e_type,
        flags,
        entry,
        phoff,
        phnum,
    })
}

/// The program headers in `table` (the header's table, read whole).
pub fn segments(h: &ElfHeader, table: &[u8]) -> Result<Vec<Segment>, ElfProblem> {
    use ElfProblem::Malformed;
    let le = h.little();
    let size = h.phentsize();
    let mut out = Vec::with_capacity(usize::from(h.phnum));
    for i in 0..usize::from(h.phnum) {
        let ph = table.get(i * size..(i + 1) * size).ok_or(Malformed)?;
        let field = |off32: usize, off64: usize| {
            let (off, len) = if h.wide() { (off64, 8) } else { (off32, 4) };
            uint(ph, off, len, le).ok_or(Malformed)
        };
        out.push(Segment {
            kind: uint(ph, 0, 4, le).ok_or(Malformed)? as u32,
            flags: if h.wide() {
                uint(ph, 4, 4, le)
            } else {
                uint(ph, 24, 4, le)
            }
            .ok_or(Malformed)? as u32,
            offset: field(4, 8)?,
            vaddr: field(8, 16)?,
            filesz: field(16, 32)?,
            memsz: field(20, 40)?,
        });
    }
    Ok(out)
}

/// `len` bytes of a file at `offset`, `None` when the file has fewer.
pub type ReadAt<'a> = &'a dyn Fn(u64, usize) -> Option<Vec<u8>>;

/// Reads the rest of an ELF file as the kernel's loader does, after its
/// header `h`: the program header table, the `PT_INTERP` of a `program`
/// (a dynamic loader's is never read: the kernel ignores it), and what the
/// loader maps: every `PT_LOAD` segment inside the file (`size` bytes),
/// with no more bytes in the file than in memory, its offset and address
/// aligned alike, and the entry point in an executable one.
pub fn elf_body(
    h: &ElfHeader,
    size: u64,
    read_at: ReadAt,
    program: bool,
) -> Result<Elf, ElfProblem> {
    use ElfProblem::Malformed;
    let table = read_at(h.phoff, h.table_len()).ok_or(Malformed)?;
    let segs = segments(h, &table)?;
    let mut interp = None;
    if program && let Some(s) = segs.iter().find(|s| s.kind == PT_INTERP) {
        // A NUL-terminated path of 2 to PATH_MAX bytes; the kernel opens
        // the C string it holds.
        if !(2..=PATH_MAX).contains(&s.filesz) {
            return Err(Malformed);
        }
        let len = usize::try_from(s.filesz).map_err(|_| Malformed)?;
        let raw = read_at(s.offset, len).ok_or(Malformed)?;
        if raw.last() != Some(&0) {
            return Err(Malformed);
        }
        let path = raw.split(|c| *c == 0).next().unwrap_or_default();
        interp = Some(path.to_vec());
    }
    check_mapping(h, &segs, size)?;
    Ok(Elf {
        kind: h.kind,
        interp,
    })
}

/// What `load_elf_binary` and `load_elf_interp` map, after the point of no
/// return: a segment they cannot map, or one whose pages lie past the end
/// of the file (SIGBUS at the first touch), or an entry point outside the
/// code, kills the process, and as PID 1 panics the kernel.
pub fn check_mapping(h: &ElfHeader, segs: &[Segment], size: u64) -> Result<(), ElfProblem> {
    let top = if h.wide() {
        u64::MAX
    } else {
        u64::from(u32::MAX)
    };
    for s in segs.iter().filter(|s| s.kind == PT_LOAD) {
        if s.filesz > s.memsz {
            return Err(ElfProblem::FileOverMemory {
                offset: s.offset,
                filesz: s.filesz,
                memsz: s.memsz,
            });
        }
        match s.vaddr.checked_add(s.memsz) {
            Some(end) if end <= top => {}
            _ => return Err(ElfProblem::Malformed),
        }
        if s.filesz == 0 {
            continue; // nothing of the file is mapped
        }
        let needs = s
            .offset
            .checked_add(s.filesz)
            .ok_or(ElfProblem::Malformed)?;
        if needs > size {
            return Err(ElfProblem::Truncated {
                offset: s.offset,
                needs,
                size,
            });
        }
        if s.offset.wrapping_sub(s.vaddr) % MIN_PAGE != 0 {
            return Err(ElfProblem::Misaligned {
                offset: s.offset,
                vaddr: s.vaddr,
            });
        }
    }
    // Addresses before the load bias: a position-independent file moves
    // as a whole. On 64-bit PowerPC's first ABI the entry is a function
    // descriptor, in data: there it need only be mapped.
    let descriptor = h.kind.machine == 21 && h.wide() && h.flags & 3 != 2;
    let inside = |s: &&Segment| {
        s.kind == PT_LOAD
            && (descriptor || s.flags & PF_X != 0)
            && h.entry >= s.vaddr
            && h.entry - s.vaddr < s.memsz
    };
    if !segs.iter().any(|s| inside(&s)) {
        return Err(ElfProblem::EntryOutside(h.entry));
    }
    Ok(())
}

/// Parses a whole ELF file held in memory as a program: header, program
/// headers, `PT_INTERP`, what the loader maps. `None` when `file` does not
/// start with the ELF magic.
pub fn elf(file: &[u8]) -> Option<Result<Elf, ElfProblem>> {
    let h = match elf_header(file)? {
        Ok(h) => h,
        Err(e) => return Some(Err(e)),
    };
    Some(elf_body(
        &h,
        file.len() as u64,
        &|off, len| slice_at(file, off, len),
        true,
    ))
}

/// `len` bytes of `b` at `off`, when it has them.
fn slice_at(b: &[u8], off: u64, len: usize) -> Option<Vec<u8>> {
    let start = usize::try_from(off).ok()?;
    b.get(start..start.checked_add(len)?).map(<[u8]>::to_vec)
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
    /// A dynamic loader that is not an ELF file (the kernel loads only an ELF there).
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
            Elf(ElfProblem::Truncated {
                offset,
                needs,
                size,
            }) => write!(
                f,
                "a truncated executable: its segment at offset {offset} needs the file's first \
                 {needs} bytes, but it has {size} (copied incompletely?)"
            ),
            Elf(ElfProblem::FileOverMemory {
                offset,
                filesz,
                memsz,
            }) => write!(
                f,
                "a malformed executable: its segment at offset {offset} has more bytes in the \
                 file ({filesz}) than in memory ({memsz})"
            ),
            Elf(ElfProblem::Misaligned { offset, vaddr }) => write!(
                f,
                "a malformed executable: its segment at offset {offset} is not at the same place \
                 in a page as its address {vaddr:#x}"
            ),
            Elf(ElfProblem::EntryOutside(entry)) => write!(
                f,
                "its entry point {entry:#x} is not in an executable segment"
            ),
            Elf(ElfProblem::LoaderKind { found, want }) => {
                let (mut a, mut b) = (found.name(), want.name());
                if a == b {
                    (a, b) = (found.long_name(), want.long_name());
                }
                write!(
                    f,
                    "an ELF binary for {a}, but the program that names it is for {b}"
                )
            }
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
    crate::sys::escaped(&String::from_utf8_lossy(name)).to_string()
}

/// Checks `p` (absolute as seen from inside `root`) as an init; the open
/// file when the kernel would run it.
pub fn check_init(
    fs: &dyn Files,
    root: &Path,
    p: &Path,
    rules: &Rules,
) -> Result<CheckedInit, InitProblem> {
    let f = open_checked(fs, root, p, rules)?;
    if let Some(s) = shebang(&f.head) {
        let s = s.map_err(InitProblem::Script)?;
        check_interpreter(fs, root, &s.interpreter, rules, 1)?;
        return Ok(CheckedInit {
            path: p.to_path_buf(),
            file: f.file,
            script: true,
        });
    }
    check_binary(fs, root, &f, rules)?;
    Ok(CheckedInit {
        path: p.to_path_buf(),
        file: f.file,
        script: false,
    })
}

/// Checks an open program that the kernel will run with its interpreters
/// resolved from `interp_root`: a hook, run from the boot root before the
/// switch, has its `#!` interpreter and its dynamic loader there, not on
/// the volume. Gives the file back, whatever the verdict.
pub fn check_program(
    fs: &dyn Files,
    file: OpenFile,
    interp_root: &Path,
    rules: &Rules,
) -> (OpenFile, Result<(), InitProblem>) {
    let size = match file.info() {
        Ok(st) => st.size,
        Err(e) => return (file, Err(InitProblem::Stat(e))),
    };
    let head = file.head(4096);
    let f = Opened { file, head, size };
    let verdict = match shebang(&f.head) {
        Some(s) => s
            .map_err(InitProblem::Script)
            .and_then(|s| check_interpreter(fs, interp_root, &s.interpreter, rules, 1)),
        None => check_binary(fs, interp_root, &f, rules),
    };
    (f.file, verdict)
}

/// Why `p` cannot be run as an init inside `root`, or `None` when it can.
pub fn init_problem(fs: &dyn Files, root: &Path, p: &Path, rules: &Rules) -> Option<InitProblem> {
    check_init(fs, root, p, rules).err()
}

/// Where the kernel looks for an interpreter named `name`: a relative
/// name from the cwd, which is / at the exec.
fn interpreter_path(name: &[u8]) -> PathBuf {
    sys::in_root(Path::new("/"), Path::new(OsStr::from_bytes(name)))
}

/// A script's interpreter at script depth `depth`.
fn check_interpreter(
    fs: &dyn Files,
    root: &Path,
    name: &[u8],
    rules: &Rules,
    depth: u32,
) -> Result<(), InitProblem> {
    let wrap = |why| InitProblem::Interpreter(shown(name), Box::new(why));
    let f = open_checked(fs, root, &interpreter_path(name), rules).map_err(wrap)?;
    match shebang(&f.head) {
        Some(_) if depth >= MAX_SCRIPT_DEPTH => Err(wrap(InitProblem::TooDeep)),
        Some(s) => {
            let s = s.map_err(|why| wrap(InitProblem::Script(why)))?;
            check_interpreter(fs, root, &s.interpreter, rules, depth + 1).map_err(wrap)
        }
        None => check_binary(fs, root, &f, rules).map_err(wrap),
    }
}

/// A program's ELF: header, machine, what is mapped, and its dynamic loader.
fn check_binary(fs: &dyn Files, root: &Path, f: &Opened, rules: &Rules) -> Result<(), InitProblem> {
    let h = elf_header(&f.head)
        .ok_or(InitProblem::UnknownFormat)?
        .map_err(InitProblem::Elf)?;
    if let Some(arch) = &rules.arch
        && !arch.runs(h.kind)
    {
        return Err(InitProblem::Elf(ElfProblem::WrongMachine {
            found: h.kind,
            want: arch.native,
        }));
    }
    let e =
        elf_body(&h, f.size, &|off, len| f.read_at(off, len), true).map_err(InitProblem::Elf)?;
    match e.interp {
        Some(interp) => check_loader(fs, root, &interp, rules, h.kind),
        None => Ok(()),
    }
}

/// A program's dynamic loader (`PT_INTERP`), as `load_elf_interp` takes
/// it: an ELF of the program's own class, byte order and machine (one
/// binary format handler loads both), `ET_EXEC` or `ET_DYN`, whose
/// segments map; its own `PT_INTERP` is not followed.
fn check_loader(
    fs: &dyn Files,
    root: &Path,
    name: &[u8],
    rules: &Rules,
    want: ElfKind,
) -> Result<(), InitProblem> {
    let wrap = |why| InitProblem::Interpreter(shown(name), Box::new(why));
    let f = open_checked(fs, root, &interpreter_path(name), rules).map_err(wrap)?;
    let h = elf_header(&f.head)
        .ok_or(InitProblem::LoaderNotElf)
        .and_then(|h| h.map_err(InitProblem::Elf))
        .map_err(wrap)?;
    if h.kind != want {
        return Err(wrap(InitProblem::Elf(ElfProblem::LoaderKind {
            found: h.kind,
            want,
        })));
    }
    elf_body(&h, f.size, &|off, len| f.read_at(off, len), false)
        .map(|_| ())
        .map_err(|p| wrap(InitProblem::Elf(p)))
}

/// A file open for the check: its first 4 KiB and its size.
struct Opened {
    file: OpenFile,
    head: Vec<u8>,
    size: u64,
}

impl Opened {
    /// `len` bytes at `off`: from the head when it holds them, else read
    /// (exactly what is asked); `None` past the end of the file or on a
    /// read error.
    fn read_at(&self, off: u64, len: usize) -> Option<Vec<u8>> {
        if off.checked_add(len as u64)? > self.size {
            return None;
        }
        if let Some(b) = slice_at(&self.head, off, len) {
            return Some(b);
        }
        let mut buf = vec![0u8; len];
        match self.file.read_full_at(&mut buf, off) {
            Ok(n) if n == len => Some(buf),
            _ => None,
        }
    }
}

/// Opens `p` inside `root`, checks it is an executable regular file outside
/// what the switch covers, and reads its first 4 KiB.
fn open_checked(
    fs: &dyn Files,
    root: &Path,
    p: &Path,
    rules: &Rules,
) -> Result<Opened, InitProblem> {
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
    Ok(Opened {
        file,
        head,
        size: st.size,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::ffi::OsStringExt;
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

    /// Where a program header field is: (offset in the header, length),
    /// for 32-bit and 64-bit files.
    fn ph_field(class: u8, name: &str) -> (usize, usize) {
        let wide = class == 2;
        match name {
            "type" => (0, 4),
            "flags" => (if wide { 4 } else { 24 }, 4),
            "offset" => (if wide { 8 } else { 4 }, if wide { 8 } else { 4 }),
            "vaddr" => (if wide { 16 } else { 8 }, if wide { 8 } else { 4 }),
            "filesz" => (if wide { 32 } else { 16 }, if wide { 8 } else { 4 }),
            "memsz" => (if wide { 40 } else { 20 }, if wide { 8 } else { 4 }),
            _ => panic!("no field {name}"),
        }
    }

    /// Writes `v` into `b` at `off` in `len` bytes of the file's byte order.
    fn put(b: &mut [u8], off: usize, len: usize, v: u64) {
        let le = b[5] == 1;
        for i in 0..len {
            let at = if le { off + i } else { off + len - 1 - i };
            b[at] = (v >> (8 * i)) as u8;
        }
    }

    /// Sets field `name` of program header `i`.
    fn set_ph(b: &mut [u8], i: usize, name: &str, v: u64) {
        let (ehsize, phsize) = if b[4] == 2 { (64, 56) } else { (52, 32) };
        let (off, len) = ph_field(b[4], name);
        put(b, ehsize + i * phsize + off, len, v);
    }

    /// Sets the entry point.
    fn set_entry(b: &mut [u8], v: u64) {
        let len = if b[4] == 2 { 8 } else { 4 };
        put(b, 0x18, len, v);
    }

    /// The base address of the test files' one `PT_LOAD`.
    const BASE: u64 = 0x40_0000;

    /// A minimal ELF file, as the kernel's loader reads it: the header,
    /// one `PT_LOAD` (read, execute) of the whole file at [`BASE`] with the
    /// entry point in it, and a `PT_INTERP` when `interp` is given.
    fn elf_bytes(class: u8, data: u8, e_type: u16, machine: u16, interp: Option<&str>) -> Vec<u8> {
        let wide = class == 2;
        let (ehsize, phsize) = if wide { (64usize, 56usize) } else { (52, 32) };
        let phnum = if interp.is_some() { 2 } else { 1 };
        let mut b = vec![0u8; ehsize + phsize * phnum];
        b[..4].copy_from_slice(b"\x7fELF");
        b[4] = class;
        b[5] = data;
        b[6] = 1;
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
        if let Some(i) = interp {
            let at = b.len() as u64;
            b.extend_from_slice(i.as_bytes());
            b.push(0);
            set_ph(&mut b, 1, "type", 3);
            set_ph(&mut b, 1, "offset", at);
            set_ph(&mut b, 1, "filesz", i.len() as u64 + 1);
        }
        // Some code after the headers, where the entry point is.
        b.extend_from_slice(&[0xc3; 16]);
        let len = b.len() as u64;
        set_ph(&mut b, 0, "type", 1);
        set_ph(&mut b, 0, "flags", 5);
        set_ph(&mut b, 0, "vaddr", BASE);
        set_ph(&mut b, 0, "filesz", len);
        set_ph(&mut b, 0, "memsz", len);
        set_entry(&mut b, BASE + len - 16);
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
        let e = elf(&sh).unwrap().unwrap();
        assert!(arch.runs(e.kind));
        assert!(e.interp.is_some_and(|i| i.starts_with(b"/lib")));
        let bb = std::fs::read("/bin/busybox").expect("busybox-static (scripts/setup)");
        let e = elf(&bb).unwrap().unwrap();
        assert!(arch.runs(e.kind) && e.interp.is_none());
        // No false alarm: every program of the host passes what the loader
        // maps (a shared library with no entry point is no program).
        let mut programs = 0;
        for dir in ["/usr/bin", "/usr/sbin"] {
            for entry in std::fs::read_dir(dir).unwrap().flatten() {
                let Ok(b) = std::fs::read(entry.path()) else {
                    continue;
                };
                match elf_header(&b) {
                    Some(Ok(h)) if h.entry != 0 => {}
                    _ => continue,
                }
                let r = elf(&b).unwrap();
                assert!(r.is_ok(), "{}: {r:?}", entry.path().display());
                programs += 1;
            }
        }
        assert!(programs > 50, "{programs} programs");
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

    #[test]
    fn shebang_nul_bytes_as_the_kernel_reads_them() {
        let name = |n: &str| Ok((n.to_string(), None));
        let with = |n: &str, a: &str| Ok((n.to_string(), Some(a.to_string())));
        // The argument is a C string: it ends at the first NUL.
        assert_eq!(sb(b"#!/bin/sh -e\0junk\n"), with("/bin/sh", "-e"));
        assert_eq!(sb(b"#!/bin/sh -e\0\n"), with("/bin/sh", "-e"));
        assert_eq!(sb(b"#!/bin/sh -e\n\0"), with("/bin/sh", "-e"));
        // So is the name; a NUL right after it leaves no argument.
        assert_eq!(sb(b"#!/bin/sh\0 -e\n"), name("/bin/sh"));
        // The newline is looked for only before the first NUL: after a NUL
        // the line is the whole buffer, and spaces before the NUL stay in
        // the argument (no newline to trim them back from).
        assert_eq!(sb(b"#!/bin/sh -e  "), with("/bin/sh", "-e  "));
        assert_eq!(sb(b"#!/bin/sh -e  \0\n"), with("/bin/sh", "-e  "));
        // An argument that starts at a NUL is passed, empty.
        assert_eq!(sb(b"#!/bin/sh \0x\n"), with("/bin/sh", ""));
        assert_eq!(sb(b"#!/bin/sh "), with("/bin/sh", ""));
        // A NUL where the name would be: no name.
        assert_eq!(sb(b"#!\0/bin/sh\n"), Err(NO_INTERPRETER));
        assert_eq!(sb(b"#! \t\0/bin/sh\n"), Err(NO_INTERPRETER));
        // A NUL ends a name that would be too long for the buffer.
        let mut long = b"#!/".to_vec();
        long.extend(std::iter::repeat_n(b'a', 300));
        long[100] = 0;
        assert_eq!(sb(&long).unwrap().0.len(), 98);
    }

    /// The running kernel agrees: each line heads a script the kernel runs
    /// with an interpreter (itself a script) that prints the arguments it
    /// was given; `R` stands for that interpreter's path.
    #[test]
    fn shebang_lines_match_the_running_kernel() {
        let dir = std::env::temp_dir().join(format!("pivot-shebang-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        exe(
            &dir,
            "/r",
            b"#!/bin/sh\nfor a in \"$@\"; do printf '[%s]' \"$a\"; done\n",
        );
        let r = dir.join("r").into_os_string().into_vec();
        let runs: &[&[u8]] = &[
            b"#!R\n",
            b"#!R -e\n",
            b"#! \tR \t-x  y \t\n",
            b"#!R -e\r\n",
            b"#!R -e\0junk\n",
            b"#!R -e\0\n",
            b"#!R\0 -e\n",
            b"#!R -e  ",
            b"#!R -e  \0\n",
            b"#!R \0x\n",
            b"#!R ",
            b"#!R",
        ];
        let refused: &[&[u8]] = &[b"#!\n", b"#!  \n", b"#!\0R\n", b"#! \0R -e\n"];
        let script = |i: usize, line: &[u8]| {
            let mut body = Vec::new();
            for (k, part) in line.split(|c| *c == b'R').enumerate() {
                if k > 0 {
                    body.extend_from_slice(&r);
                }
                body.extend_from_slice(part);
            }
            let name = format!("/s{i}");
            exe(&dir, &name, &body);
            (dir.join(&name[1..]), body)
        };
        for (i, line) in runs.iter().enumerate() {
            let (path, body) = script(i, line);
            let parsed = shebang(&body).unwrap().unwrap();
            assert_eq!(parsed.interpreter, r, "{:?}", line.escape_ascii());
            let mut want = Vec::new();
            for a in parsed
                .arg
                .iter()
                .chain([&path.clone().into_os_string().into_vec()])
            {
                want.extend_from_slice(b"[");
                want.extend_from_slice(a);
                want.extend_from_slice(b"]");
            }
            let out = std::process::Command::new(&path).output().unwrap();
            assert_eq!(
                out.stdout.escape_ascii().to_string(),
                want.escape_ascii().to_string(),
                "{}",
                line.escape_ascii()
            );
        }
        for (i, line) in refused.iter().enumerate() {
            let (path, body) = script(100 + i, line);
            assert!(shebang(&body).unwrap().is_err(), "{}", line.escape_ascii());
            assert!(
                std::process::Command::new(&path).output().is_err(),
                "{}",
                line.escape_ascii()
            );
        }
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn what_the_loader_maps() {
        use ElfProblem::*;
        for (class, data) in [(1, 1), (1, 2), (2, 1), (2, 2)] {
            let good = elf_bytes(class, data, 2, 62, None);
            let len = good.len() as u64;
            let entry = BASE + len - 16;
            let with = |f: &dyn Fn(&mut Vec<u8>)| {
                let mut b = good.clone();
                f(&mut b);
                elf(&b).unwrap().map(|_| ())
            };
            assert_eq!(with(&|_| {}), Ok(()));
            // A segment past the end of the file: the file was cut.
            assert_eq!(
                elf(&good[..good.len() - 1]).unwrap(),
                Err(Truncated {
                    offset: 0,
                    needs: len,
                    size: len - 1
                })
            );
            let far = |b: &mut Vec<u8>| {
                set_ph(b, 0, "offset", 0x1000);
                set_ph(b, 0, "vaddr", BASE + 0x1000);
                set_entry(b, BASE + 0x1000);
            };
            assert_eq!(
                with(&far),
                Err(Truncated {
                    offset: 0x1000,
                    needs: 0x1000 + len,
                    size: len
                })
            );
            // Past the end by its file bytes only: a segment of none may
            // start anywhere.
            assert_eq!(
                with(&|b| {
                    far(b);
                    set_ph(b, 0, "filesz", 0);
                }),
                Ok(())
            );
            // More bytes in the file than in memory.
            assert_eq!(
                with(&|b| set_ph(b, 0, "memsz", len - 1)),
                Err(FileOverMemory {
                    offset: 0,
                    filesz: len,
                    memsz: len - 1
                })
            );
            // File offset and address at different places in a page.
            assert_eq!(
                with(&|b| set_ph(b, 0, "vaddr", BASE + 8)),
                Err(Misaligned {
                    offset: 0,
                    vaddr: BASE + 8
                })
            );
            // The entry point: before the segment, at its end, in a
            // segment that is not executable, with no segment at all.
            for e in [BASE - 1, BASE + len] {
                assert_eq!(with(&|b| set_entry(b, e)), Err(EntryOutside(e)));
            }
            assert_eq!(
                with(&|b| set_ph(b, 0, "flags", 4)),
                Err(EntryOutside(entry))
            );
            assert_eq!(with(&|b| set_ph(b, 0, "type", 6)), Err(EntryOutside(entry)));
            // Memory beyond the end of the address space.
            let top = if class == 2 { u64::MAX } else { 0xffff_ffff };
            assert_eq!(
                with(&|b| {
                    set_ph(b, 0, "memsz", top - BASE + 1);
                }),
                Err(Malformed)
            );
            // A position-independent file: the same, before the load bias.
            let mut pie = elf_bytes(class, data, 3, 62, None);
            set_ph(&mut pie, 0, "vaddr", 0);
            set_entry(&mut pie, len - 16);
            assert!(elf(&pie).unwrap().is_ok());
            set_entry(&mut pie, len);
            assert_eq!(elf(&pie).unwrap(), Err(EntryOutside(len)));
        }
        // 64-bit file offsets that wrap around.
        let mut b = elf_bytes(2, 1, 2, 62, None);
        set_ph(&mut b, 0, "offset", u64::MAX - 7);
        assert_eq!(elf(&b).unwrap(), Err(Malformed));
        // 64-bit PowerPC's first ABI: the entry is a function descriptor, in data.
        let mut ppc = elf_bytes(2, 2, 2, 21, None);
        set_ph(&mut ppc, 0, "flags", 6);
        assert!(elf(&ppc).unwrap().is_ok());
        put(&mut ppc, 0x30, 4, 2); // ELFv2: code
        assert!(matches!(elf(&ppc).unwrap(), Err(EntryOutside(_))));
        // The program header table is read where it is, however far.
        let mut far = elf_bytes(2, 1, 2, 62, None);
        let table = far[64..120].to_vec();
        far.resize(0x20000, 0);
        far[0x1f000..0x1f000 + 56].copy_from_slice(&table);
        put(&mut far, 0x20, 8, 0x1f000);
        set_ph(&mut far, 0, "filesz", 0x20000);
        set_ph(&mut far, 0, "memsz", 0x20000);
        let read = std::cell::RefCell::new(Vec::new());
        let h = elf_header(&far[..4096]).unwrap().unwrap();
        let at = |off: u64, len: usize| {
            read.borrow_mut().push((off, len));
            slice_at(&far, off, len)
        };
        assert!(elf_body(&h, far.len() as u64, &at, true).is_ok());
        assert_eq!(*read.borrow(), [(0x1f000, 56)]);
    }

    #[test]
    fn problem_texts() {
        let t = |p| InitProblem::Elf(p).to_string();
        assert_eq!(
            t(ElfProblem::Truncated {
                offset: 4096,
                needs: 1591689,
                size: 16384
            }),
            "a truncated executable: its segment at offset 4096 needs the file's first 1591689 \
             bytes, but it has 16384 (copied incompletely?)"
        );
        assert_eq!(
            t(ElfProblem::EntryOutside(0x401000)),
            "its entry point 0x401000 is not in an executable segment"
        );
        assert_eq!(
            t(ElfProblem::FileOverMemory {
                offset: 8192,
                filesz: 20,
                memsz: 10
            }),
            "a malformed executable: its segment at offset 8192 has more bytes in the file (20) \
             than in memory (10)"
        );
        assert_eq!(
            t(ElfProblem::Misaligned {
                offset: 0,
                vaddr: 0x400008
            }),
            "a malformed executable: its segment at offset 0 is not at the same place in a page \
             as its address 0x400008"
        );
        let k = |class, data, machine| ElfKind {
            class,
            data,
            machine,
        };
        assert_eq!(
            t(ElfProblem::LoaderKind {
                found: k(1, 1, 3),
                want: k(2, 1, 62)
            }),
            "an ELF binary for i386, but the program that names it is for x86_64"
        );
        assert_eq!(
            t(ElfProblem::LoaderKind {
                found: k(2, 2, 62),
                want: k(2, 1, 62)
            }),
            "an ELF binary for x86_64 (64-bit, big-endian), but the program that names it is \
             for x86_64 (64-bit, little-endian)"
        );
    }

    /// busybox-static cut as a copy that stopped: the header and program
    /// headers are there, the code is not. Before this check it passed,
    /// and as PID 1 died at its first page fault past the end.
    #[test]
    fn truncated_binaries_are_refused() {
        let bb = std::fs::read("/bin/busybox").unwrap();
        match elf(&bb[..16384]).unwrap() {
            Err(ElfProblem::Truncated {
                offset,
                needs,
                size,
            }) => assert!(offset < 16384 && needs > 16384 && size == 16384),
            other => panic!("{other:?}"),
        }
        // What no segment maps (the section headers at the end) may be missing.
        let h = elf_header(&bb).unwrap().unwrap();
        let table = slice_at(&bb, h.phoff, h.table_len()).unwrap();
        let end = segments(&h, &table)
            .unwrap()
            .iter()
            .filter(|s| s.kind == PT_LOAD)
            .map(|s| s.offset + s.filesz)
            .max()
            .unwrap() as usize;
        assert!(end < bb.len());
        assert!(elf(&bb[..end]).unwrap().is_ok());
        assert!(matches!(
            elf(&bb[..end - 1]).unwrap(),
            Err(ElfProblem::Truncated { .. })
        ));
        // In a volume: the init is refused with what a person can act on.
        let root = std::env::temp_dir().join(format!("pivot-cut-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&root);
        exe(&root, "/sbin/init", &bb[..16384]);
        let rules = Rules {
            arch: Arch::for_machine(std::env::consts::ARCH, false),
            covered: Vec::new(),
        };
        let why = init_problem(
            &crate::sys::RealSys::default(),
            &root,
            Path::new("/sbin/init"),
            &rules,
        )
        .map(|w| w.to_string())
        .unwrap_or_default();
        assert!(
            why.starts_with("a truncated executable: its segment at offset ")
                && why.ends_with(" bytes, but it has 16384 (copied incompletely?)"),
            "{why}"
        );
        std::fs::remove_dir_all(&root).unwrap();
    }

    #[test]
    fn dynamic_loaders_as_the_kernel_loads_them() {
        let root = std::env::temp_dir().join(format!("pivot-loader-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&root);
        let rules = Rules {
            arch: Arch::for_machine("x86_64", true),
            covered: Vec::new(),
        };
        let fs = crate::sys::RealSys::default();
        let why = |p: &str| init_problem(&fs, &root, Path::new(p), &rules).map(|w| w.to_string());
        let program = |p: &str, loader: &str| exe(&root, p, &elf_bytes(2, 1, 3, 62, Some(loader)));
        // A loader that names a loader of its own, missing or itself: the
        // kernel never reads a loader's PT_INTERP.
        exe(
            &root,
            "/lib/ld.so",
            &elf_bytes(2, 1, 3, 62, Some("/lib/missing.so")),
        );
        program("/bin/a", "/lib/ld.so");
        assert_eq!(why("/bin/a"), None);
        exe(
            &root,
            "/lib/self.so",
            &elf_bytes(2, 1, 3, 62, Some("/lib/self.so")),
        );
        program("/bin/b", "/lib/self.so");
        assert_eq!(why("/bin/b"), None);
        // A loader's PT_INTERP is not read at all: one the kernel would
        // refuse in a program is no matter in a loader.
        let mut odd = elf_bytes(2, 1, 3, 62, Some("/lib/x.so"));
        set_ph(&mut odd, 1, "filesz", 1);
        exe(&root, "/lib/odd.so", &odd);
        program("/bin/c", "/lib/odd.so");
        assert_eq!(why("/bin/c"), None);
        exe(&root, "/bin/c2", &odd);
        assert_eq!(
            why("/bin/c2").unwrap(),
            "a truncated or malformed executable"
        );
        // A loader of another class, machine or byte order than the program.
        let loader_why = |p: &str, bytes: Vec<u8>| {
            exe(&root, "/lib/other.so", &bytes);
            program(p, "/lib/other.so");
            why(p).unwrap()
        };
        assert_eq!(
            loader_why("/bin/d", elf_bytes(1, 1, 3, 3, None)),
            "its interpreter /lib/other.so is missing or unusable (an ELF binary for i386, but \
             the program that names it is for x86_64)"
        );
        assert_eq!(
            loader_why("/bin/e", elf_bytes(2, 1, 3, 183, None)),
            "its interpreter /lib/other.so is missing or unusable (an ELF binary for aarch64, \
             but the program that names it is for x86_64)"
        );
        assert_eq!(
            loader_why("/bin/f", elf_bytes(2, 2, 3, 62, None)),
            "its interpreter /lib/other.so is missing or unusable (an ELF binary for x86_64 \
             (64-bit, big-endian), but the program that names it is for x86_64 (64-bit, \
             little-endian))"
        );
        // A loader that is not a program, or whose segments do not map.
        assert_eq!(
            loader_why("/bin/g", elf_bytes(2, 1, 1, 62, None)),
            "its interpreter /lib/other.so is missing or unusable (an ELF file of type 1, not an \
             executable)"
        );
        let mut cut = elf_bytes(2, 1, 3, 62, None);
        let n = cut.len();
        cut.truncate(n - 1);
        assert_eq!(
            loader_why("/bin/h", cut),
            format!(
                "its interpreter /lib/other.so is missing or unusable (a truncated executable: \
                 its segment at offset 0 needs the file's first {n} bytes, but it has {} (copied \
                 incompletely?))",
                n - 1
            )
        );
        let mut data_only = elf_bytes(2, 1, 3, 62, None);
        set_ph(&mut data_only, 0, "flags", 6);
        let entry = BASE + data_only.len() as u64 - 16;
        assert_eq!(
            loader_why("/bin/i", data_only),
            format!(
                "its interpreter /lib/other.so is missing or unusable (its entry point {entry:#x} \
                 is not in an executable segment)"
            )
        );
        assert_eq!(
            loader_why("/bin/j", b"\x00\x01plain".to_vec()),
            "its interpreter /lib/other.so is missing or unusable (not an ELF binary, as a dynamic \
             loader must be)"
        );
        // A 32-bit program with its 32-bit loader, where the kernel runs both.
        exe(&root, "/lib/ld32.so", &elf_bytes(1, 1, 3, 3, None));
        exe(
            &root,
            "/bin/k",
            &elf_bytes(1, 1, 2, 3, Some("/lib/ld32.so")),
        );
        assert_eq!(why("/bin/k"), None);
        // A missing loader is still refused.
        program("/bin/l", "/lib/nope.so");
        assert_eq!(
            why("/bin/l").unwrap(),
            "its interpreter /lib/nope.so is missing or unusable (not found)"
        );
        std::fs::remove_dir_all(&root).unwrap();
    }

    #[test]
    fn compat_kinds_as_the_kernel_allows() {
        let k = |class, data, machine| ElfKind {
            class,
            data,
            machine,
        };
        let (arm32, i386) = (k(1, 1, 40), k(1, 1, 3));
        let arm64 = Arch::for_machine("aarch64", true).unwrap();
        assert!(arm64.runs(arm32) && arm64.runs(k(2, 1, 183)));
        assert!(!arm64.runs(i386) && !arm64.runs(k(1, 2, 40)));
        assert!(!Arch::for_machine("aarch64", false).unwrap().runs(arm32));
        assert!(Arch::for_machine("x86_64", true).unwrap().runs(i386));
        assert!(!Arch::for_machine("x86_64", true).unwrap().runs(arm32));
        // The running kernel, on the fake: what it says, and on x86_64 the
        // command line.
        let dir = std::env::temp_dir().join(format!("pivot-compat-{}", std::process::id()));
        let compat = |m: &str, on: bool, cmdline: &str| {
            let sys = crate::sys::fake::FakeSys::sandbox(&dir)
                .file("/proc/cmdline", cmdline.as_bytes(), 0o444)
                .machine(m, on);
            Arch::running(&sys).unwrap().compat
        };
        assert_eq!(compat("aarch64", true, ""), Some(arm32));
        assert_eq!(compat("aarch64", false, ""), None);
        assert_eq!(compat("aarch64", true, "ia32_emulation=0"), Some(arm32));
        assert_eq!(compat("x86_64", true, "console=ttyS0 rw"), Some(i386));
        assert_eq!(
            compat("x86_64", true, "root=/dev/sda ia32_emulation=0"),
            None
        );
        assert_eq!(compat("x86_64", true, "ia32-emulation=off"), None);
        assert_eq!(compat("x86_64", true, "\"ia32_emulation=n\" x=1"), None);
        // The last value the kernel takes wins; one it refuses changes nothing.
        assert_eq!(
            compat("x86_64", true, "ia32_emulation=0 ia32_emulation=on"),
            Some(i386)
        );
        assert_eq!(
            compat("x86_64", true, "ia32_emulation=0 ia32_emulation=maybe"),
            None
        );
        // After `--` the words are the init's.
        assert_eq!(compat("x86_64", true, "rw -- ia32_emulation=0"), Some(i386));
        assert_eq!(compat("x86_64", false, "ia32_emulation=1"), None);
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn kstrtobool_as_the_kernel() {
        for t in [
            "1", "y", "Y", "yes", "t", "true", "TRUE", "on", "On", "oN", "1x",
        ] {
            assert_eq!(kstrtobool(t), Some(true), "{t}");
        }
        for f in ["0", "n", "no", "N", "f", "false", "F", "off", "OFF", "of"] {
            assert_eq!(kstrtobool(f), Some(false), "{f}");
        }
        for bad in ["", "o", "ox", "2", "enable", "disable", " 1", "-1"] {
            assert_eq!(kstrtobool(bad), None, "{bad}");
        }
    }
}
