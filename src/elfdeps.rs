//! What a dynamically linked program needs to run in another root (an
//! initramfs): its program interpreter and shared libraries, found the way
//! glibc's dynamic loader (`ld.so`) finds them, with the symlinks the loader
//! goes through. Used by `pivot-mkinitramfs`, not by PID 1.
//!
//! Pure code over bytes and paths: [`parse`] reads an ELF file's program
//! headers and dynamic section; [`resolve`] walks the dependencies over a
//! [`FileSystem`] the caller supplies (the host's in the tool, a fake tree in
//! tests). It imports nothing of the crate.
//!
//! The search for a `DT_NEEDED` name follows `ld.so(8)` and glibc's
//! `_dl_map_object`:
//! 1. a name with a `/` is a path (after `$ORIGIN` expansion);
//! 2. the `DT_RPATH` of the object that needs it, then of the object that
//!    loaded that one, and so on up to the program, unless the object that
//!    needs it has a `DT_RUNPATH` (an object's own `DT_RPATH` is ignored when
//!    it has a `DT_RUNPATH`);
//! 3. `LD_LIBRARY_PATH`: not at boot, never used here;
//! 4. the `DT_RUNPATH` of the object that needs it (not inherited);
//! 5. unless that object was linked with `-z nodeflib`: `/etc/ld.so.cache`,
//!    which `ldconfig` builds from the directories of `/etc/ld.so.conf` in
//!    file order (a name in two of them is found in the first), here stood
//!    for by [`SearchPath::conf_dirs`]; then the loader's built-in directories,
//!    [`SearchPath::system_dirs`] (what `ld.so --help` lists as "system
//!    search path": on Debian x86_64 `/lib/x86_64-linux-gnu`,
//!    `/usr/lib/x86_64-linux-gnu`, `/lib`, `/usr/lib`; not `/lib64`).
//!
//! A candidate is taken when it is an ELF shared object of the program's
//! class, byte order and machine; otherwise the search goes on, as the loader
//! skips an i386 library in a directory of the x86_64 search. Objects load
//! breadth first; a name already loaded (by the name it was asked as, its
//! path or its `DT_SONAME`, such as the interpreter's `ld-linux-x86-64.so.2`
//! that libc needs) is not searched again. Not modelled: `$LIB` and
//! `$PLATFORM` (path elements naming them are skipped), empty path elements
//! (the current directory), the glibc-hwcaps and legacy hwcap
//! subdirectories, and musl's loader.

use std::collections::BTreeSet;
use std::ffi::{OsStr, OsString};
use std::fmt;
use std::io;
use std::os::unix::ffi::OsStrExt;
use std::path::{Component, Path, PathBuf};

// ---------------------------------------------------------------- ELF

/// Which machine code an ELF file holds: class, byte order, machine.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Ident {
    /// 1 = 32-bit, 2 = 64-bit (`EI_CLASS`).
    pub class: u8,
    /// 1 = little-endian, 2 = big-endian (`EI_DATA`).
    pub data: u8,
    /// `e_machine`.
    pub machine: u16,
}

impl Ident {
    /// A short name for messages: `x86_64`, `aarch64`, `machine 40 (32-bit)`.
    pub fn name(self) -> String {
        let known = match (self.machine, self.class, self.data) {
            (62, 2, _) => Some("x86_64"),
            (62, 1, _) => Some("x32"),
            (3, _, _) => Some("i386"),
            (183, _, _) => Some("aarch64"),
            (40, _, _) => Some("arm"),
            (243, 2, _) => Some("riscv64"),
            (22, _, _) => Some("s390x"),
            (21, _, 1) => Some("ppc64le"),
            (21, _, _) => Some("ppc64"),
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

    /// The Debian multiarch triplet (`x86_64-linux-gnu`), when known.
    pub fn triplet(self) -> Option<&'static str> {
        Some(match (self.machine, self.class, self.data) {
            (62, 2, 1) => "x86_64-linux-gnu",
            (62, 1, 1) => "x86_64-linux-gnux32",
            (3, 1, 1) => "i386-linux-gnu",
            (183, 2, 1) => "aarch64-linux-gnu",
            (40, 1, 1) => "arm-linux-gnueabihf",
            (243, 2, 1) => "riscv64-linux-gnu",
            (22, 2, 2) => "s390x-linux-gnu",
            (21, 2, 1) => "powerpc64le-linux-gnu",
            (21, 2, 2) => "powerpc64-linux-gnu",
            _ => return None,
        })
    }
}

/// What an ELF file says about loading it: the parts of its program
/// headers and dynamic section the dynamic loader uses to find libraries.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Dynamic {
    pub ident: Ident,
    /// `e_type`: 2 = executable, 3 = shared object or PIE.
    pub e_type: u16,
    /// `PT_INTERP`: the program interpreter (dynamic loader) the kernel loads.
    pub interp: Option<PathBuf>,
    /// `DT_NEEDED` names, in order.
    pub needed: Vec<OsString>,
    pub soname: Option<OsString>,
    /// `DT_RPATH` as written (colon-separated, `$ORIGIN` not expanded).
    pub rpath: Option<OsString>,
    /// `DT_RUNPATH` as written.
    pub runpath: Option<OsString>,
    /// `DF_1_NODEFLIB` in `DT_FLAGS_1`: the cache and the default
    /// directories are not searched for this object's dependencies.
    pub nodeflib: bool,
}

impl Dynamic {
    /// The `DT_RPATH` the loader uses: none when there is a `DT_RUNPATH`.
    pub fn effective_rpath(&self) -> Option<&OsStr> {
        match self.runpath {
            Some(_) => None,
            None => self.rpath.as_deref(),
        }
    }
}

/// Why bytes are not a loadable ELF file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ElfError {
    /// It does not start with `\x7fELF` (a script, a text file...).
    NotElf,
    /// `EI_CLASS`, `EI_DATA` or `EI_VERSION` has a value that is not defined.
    BadIdent,
    /// `e_type` is not an executable or a shared object (a `.o`, a core).
    NotLoadable(u16),
    /// The file ends before what its headers say it holds.
    Truncated {
        what: &'static str,
        needs: u64,
        len: usize,
    },
    /// Inconsistent headers.
    Malformed(&'static str),
}

impl fmt::Display for ElfError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ElfError::NotElf => write!(f, "not an ELF file"),
            ElfError::BadIdent => write!(f, "an ELF file of unknown class, byte order or version"),
            ElfError::NotLoadable(t) => write!(
                f,
                "an ELF file of type {t}, neither an executable nor a shared object"
            ),
            ElfError::Truncated { what, needs, len } => write!(
                f,
                "cut short: {what} needs {needs} bytes, the file has {len}"
            ),
            ElfError::Malformed(why) => write!(f, "a malformed ELF file: {why}"),
        }
    }
}

const PT_LOAD: u64 = 1;
const PT_DYNAMIC: u64 = 2;
const PT_INTERP: u64 = 3;
const DT_NULL: u64 = 0;
const DT_NEEDED: u64 = 1;
const DT_STRTAB: u64 = 5;
const DT_STRSZ: u64 = 10;
const DT_SONAME: u64 = 14;
const DT_RPATH: u64 = 15;
const DT_RUNPATH: u64 = 29;
const DT_FLAGS_1: u64 = 0x6fff_fffb;
const DF_1_NODEFLIB: u64 = 0x800;

/// Fixed-width reads in the file's byte order; `None` past the end.
struct Bytes<'a> {
    b: &'a [u8],
    le: bool,
    wide: bool,
}

impl Bytes<'_> {
    fn uint(&self, off: u64, len: usize) -> Option<u64> {
        let start = usize::try_from(off).ok()?;
        let s = self.b.get(start..start.checked_add(len)?)?;
        let fold = |v: u64, byte: &u8| (v << 8) | u64::from(*byte);
        Some(if self.le {
            s.iter().rev().fold(0, fold)
        } else {
            s.iter().fold(0, fold)
        })
    }

    /// An address-sized field (`Elf32_Addr`/`Elf64_Addr`, offsets, sizes).
    fn word(&self, off: u64) -> Option<u64> {
        self.uint(off, if self.wide { 8 } else { 4 })
    }

    /// That the file holds `len` bytes from `off`, else why not.
    fn need(&self, what: &'static str, off: u64, len: u64) -> Result<(), ElfError> {
        let end = off.checked_add(len).ok_or(ElfError::Malformed(
            "an offset past the end of the address space",
        ))?;
        if end > self.b.len() as u64 {
            return Err(ElfError::Truncated {
                what,
                needs: end,
                len: self.b.len(),
            });
        }
        Ok(())
    }
}

/// One program header, the fields used here.
#[derive(Debug, Clone, Copy)]
struct Segment {
    kind: u64,
    offset: u64,
    vaddr: u64,
    filesz: u64,
}

/// Parses the ELF file `b` (the whole file): identity, `PT_INTERP` and the
/// dynamic section (`DT_NEEDED`, `DT_SONAME`, `DT_RPATH`, `DT_RUNPATH`,
/// `DT_FLAGS_1`), its strings read through the `PT_LOAD` segment that maps
/// `DT_STRTAB`. The file must hold every loaded segment and its section
/// header table: a copy cut short is an error, not a library that fails at
/// boot. Never panics, whatever the bytes.
pub fn parse(b: &[u8]) -> Result<Dynamic, ElfError> {
    if !b.starts_with(b"\x7fELF") {
        return Err(ElfError::NotElf);
    }
    let id = |i: usize| b.get(i).copied();
    let (class, data, version) = match (id(4), id(5), id(6)) {
        (Some(c @ (1 | 2)), Some(d @ (1 | 2)), Some(v)) => (c, d, v),
        (Some(_), Some(_), Some(_)) => return Err(ElfError::BadIdent),
        _ => {
            return Err(ElfError::Truncated {
                what: "the ELF identification",
                needs: 16,
                len: b.len(),
            });
        }
    };
    if version != 1 {
        return Err(ElfError::BadIdent);
    }
    let r = Bytes {
        b,
        le: data == 1,
        wide: class == 2,
    };
    let ehsize: u64 = if r.wide { 64 } else { 52 };
    r.need("the ELF header", 0, ehsize)?;
    let field = |off32: u64, off64: u64, len: usize| {
        r.uint(if r.wide { off64 } else { off32 }, len)
            .ok_or(ElfError::Malformed("unreadable header field"))
    };
    let e_type = field(16, 16, 2)? as u16;
    let machine = field(18, 18, 2)? as u16;
    let ident = Ident {
        class,
        data,
        machine,
    };
    if !matches!(e_type, 2 | 3) {
        return Err(ElfError::NotLoadable(e_type));
    }
    let word = if r.wide { 8 } else { 4 };
    let phoff = field(28, 32, word)?;
    let shoff = field(32, 40, word)?;
    let phentsize = field(42, 54, 2)?;
    let phnum = field(44, 56, 2)?;
    let shentsize = field(46, 58, 2)?;
    let shnum = field(48, 60, 2)?;
    let want_ph: u64 = if r.wide { 56 } else { 32 };
    if phentsize != want_ph {
        return Err(ElfError::Malformed(
            "program headers of another size than the class defines",
        ));
    }
    if phnum == 0 {
        return Err(ElfError::Malformed("no program headers"));
    }
    r.need("the program headers", phoff, phnum * phentsize)?;
    if shnum > 0 {
        r.need("the section headers", shoff, shnum * shentsize)?;
    }
    let mut segments = Vec::new();
    for i in 0..phnum {
        let ph = phoff + i * phentsize;
        let get = |off32: u64, off64: u64| {
            let off = ph + if r.wide { off64 } else { off32 };
            r.word(off)
                .ok_or(ElfError::Malformed("unreadable program header"))
        };
        let kind = r
            .uint(ph, 4)
            .ok_or(ElfError::Malformed("unreadable program header"))?;
        segments.push(Segment {
            kind,
            offset: get(4, 8)?,
            vaddr: get(8, 16)?,
            filesz: get(16, 32)?,
        });
    }
    for s in segments.iter().filter(|s| s.kind == PT_LOAD) {
        r.need("a loaded segment", s.offset, s.filesz)?;
    }
    let interp = match segments.iter().find(|s| s.kind == PT_INTERP) {
        Some(s) => Some(interp_path(&r, s)?),
        None => None,
    };
    let mut dynamic = Dynamic {
        ident,
        e_type,
        interp,
        needed: Vec::new(),
        soname: None,
        rpath: None,
        runpath: None,
        nodeflib: false,
    };
    if let Some(d) = segments.iter().find(|s| s.kind == PT_DYNAMIC) {
        read_dynamic(&r, d, &segments, &mut dynamic)?;
    }
    Ok(dynamic)
}

fn interp_path(r: &Bytes, s: &Segment) -> Result<PathBuf, ElfError> {
    r.need("the program interpreter's name", s.offset, s.filesz)?;
    let raw = usize::try_from(s.offset)
        .ok()
        .zip(usize::try_from(s.filesz).ok())
        .and_then(|(o, n)| r.b.get(o..o.checked_add(n)?))
        .ok_or(ElfError::Malformed("PT_INTERP out of range"))?;
    // As the kernel wants it: NUL-terminated, at least 2 bytes.
    if raw.len() < 2 || raw.last() != Some(&0) {
        return Err(ElfError::Malformed(
            "PT_INTERP is not a NUL-terminated path",
        ));
    }
    let name = raw.split(|c| *c == 0).next().unwrap_or(raw);
    if name.is_empty() {
        return Err(ElfError::Malformed("PT_INTERP is empty"));
    }
    Ok(PathBuf::from(OsStr::from_bytes(name)))
}

fn read_dynamic(
    r: &Bytes,
    d: &Segment,
    segments: &[Segment],
    out: &mut Dynamic,
) -> Result<(), ElfError> {
    r.need("the dynamic section", d.offset, d.filesz)?;
    let entsize: u64 = if r.wide { 16 } else { 8 };
    let count = d.filesz / entsize;
    let mut entries = Vec::new();
    let mut ended = false;
    for i in 0..count {
        let at = d.offset + i * entsize;
        let bad = ElfError::Malformed("unreadable dynamic entry");
        let tag = r.word(at).ok_or(bad.clone())?;
        let val = r.word(at + entsize / 2).ok_or(bad)?;
        if tag == DT_NULL {
            ended = true;
            break;
        }
        entries.push((tag, val));
    }
    if !ended {
        return Err(ElfError::Malformed(
            "the dynamic section has no DT_NULL end",
        ));
    }
    let find = |tag: u64| entries.iter().find(|(t, _)| *t == tag).map(|(_, v)| *v);
    out.nodeflib = find(DT_FLAGS_1).is_some_and(|f| f & DF_1_NODEFLIB != 0);
    let strings = [DT_NEEDED, DT_SONAME, DT_RPATH, DT_RUNPATH];
    if !entries.iter().any(|(t, _)| strings.contains(t)) {
        return Ok(());
    }
    let strtab = find(DT_STRTAB).ok_or(ElfError::Malformed(
        "names in the dynamic section but no DT_STRTAB",
    ))?;
    // The string table is found by its address: the PT_LOAD segment whose
    // file-backed part maps it gives its file offset.
    let seg = segments
        .iter()
        .filter(|s| s.kind == PT_LOAD)
        .find(|s| strtab >= s.vaddr && strtab - s.vaddr < s.filesz)
        .ok_or(ElfError::Malformed(
            "DT_STRTAB is not in the file part of a loaded segment",
        ))?;
    let start = seg.offset + (strtab - seg.vaddr);
    let seg_left = seg.filesz - (strtab - seg.vaddr);
    let size = match find(DT_STRSZ) {
        Some(sz) if sz <= seg_left => sz,
        Some(_) => {
            return Err(ElfError::Malformed("DT_STRSZ runs past its loaded segment"));
        }
        None => seg_left,
    };
    let table = usize::try_from(start)
        .ok()
        .zip(usize::try_from(size).ok())
        .and_then(|(s, n)| r.b.get(s..s.checked_add(n)?))
        .ok_or(ElfError::Malformed("DT_STRTAB out of range"))?;
    let string = |off: u64| -> Result<OsString, ElfError> {
        let rest = usize::try_from(off)
            .ok()
            .and_then(|o| table.get(o..))
            .ok_or(ElfError::Malformed(
                "a dynamic entry's name is outside DT_STRTAB",
            ))?;
        let end = rest
            .iter()
            .position(|c| *c == 0)
            .ok_or(ElfError::Malformed(
                "a dynamic entry's name has no NUL in DT_STRTAB",
            ))?;
        Ok(OsStr::from_bytes(rest.get(..end).unwrap_or_default()).to_os_string())
    };
    for (tag, val) in &entries {
        match *tag {
            DT_NEEDED => out.needed.push(string(*val)?),
            DT_SONAME if out.soname.is_none() => out.soname = Some(string(*val)?),
            DT_RPATH if out.rpath.is_none() => out.rpath = Some(string(*val)?),
            DT_RUNPATH if out.runpath.is_none() => out.runpath = Some(string(*val)?),
            _ => {}
        }
    }
    Ok(())
}

// ------------------------------------------------------- file system view

/// The file system the dependencies are looked up in: the host's in
/// `pivot-mkinitramfs`, a map in tests. Paths are absolute.
pub trait FileSystem {
    /// The whole file, symlinks followed.
    fn read(&self, path: &Path) -> io::Result<Vec<u8>>;
    /// `Some(target)` as written when the last component of `path` is a
    /// symlink, `None` when it is something else; an error when it is missing.
    fn read_link(&self, path: &Path) -> io::Result<Option<PathBuf>>;
    /// The names in a directory (for `include` globs of `ld.so.conf`).
    fn read_dir(&self, dir: &Path) -> io::Result<Vec<OsString>>;
}

// -------------------------------------------------------------- errors

/// Why the closure of a program cannot be made.
#[derive(Debug)]
pub enum DepsError {
    Read {
        path: PathBuf,
        error: io::Error,
    },
    Elf {
        path: PathBuf,
        error: ElfError,
    },
    /// A path that must be absolute is not (the program, `PT_INTERP`, a
    /// `DT_NEEDED` with a `/`).
    NotAbsolute {
        what: &'static str,
        path: PathBuf,
    },
    SymlinkLoop {
        path: PathBuf,
    },
    /// The interpreter is built for another machine than the program.
    Mismatch {
        path: PathBuf,
        found: Ident,
        want: Ident,
    },
    NotFound {
        name: OsString,
        needed_by: PathBuf,
        searched: Vec<PathBuf>,
        /// Candidates that exist but were not taken, and why.
        rejected: Vec<(PathBuf, String)>,
    },
    IncludeTooDeep {
        path: PathBuf,
    },
}

/// `errno 2 (No such file or directory)`, as the rest of pivot-init says it.
fn errno_text(e: &io::Error) -> String {
    let text = e.to_string();
    match e.raw_os_error() {
        Some(n) => format!(
            "errno {n} ({})",
            text.split(" (os error").next().unwrap_or("")
        ),
        None => text,
    }
}

impl fmt::Display for DepsError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DepsError::Read { path, error } => {
                write!(f, "cannot read {}: {}", path.display(), errno_text(error))
            }
            DepsError::Elf { path, error } => write!(f, "{}: {error}", path.display()),
            DepsError::NotAbsolute { what, path } => {
                write!(f, "{what} {} is not an absolute path", path.display())
            }
            DepsError::SymlinkLoop { path } => {
                write!(f, "{}: too many levels of symbolic links", path.display())
            }
            DepsError::Mismatch { path, found, want } => write!(
                f,
                "{} is built for {}, the program for {}",
                path.display(),
                found.name(),
                want.name()
            ),
            DepsError::NotFound {
                name,
                needed_by,
                searched,
                rejected,
            } => {
                let dirs: Vec<String> = searched.iter().map(|d| d.display().to_string()).collect();
                write!(
                    f,
                    "{} (needed by {}) not found in {}",
                    name.to_string_lossy(),
                    needed_by.display(),
                    if dirs.is_empty() {
                        "any directory".to_string()
                    } else {
                        dirs.join(", ")
                    }
                )?;
                for (p, why) in rejected {
                    write!(f, "; {} not taken: {why}", p.display())?;
                }
                Ok(())
            }
            DepsError::IncludeTooDeep { path } => {
                write!(f, "{}: includes nested too deep (a loop?)", path.display())
            }
        }
    }
}

impl std::error::Error for DepsError {}

// ------------------------------------------------------------- paths

/// `path` made absolute-lexical: `.` dropped, `..` taken off the path so
/// far (never above `/`), repeated slashes folded. `None` when relative.
pub fn normalize(path: &Path) -> Option<PathBuf> {
    let mut out = PathBuf::from("/");
    let mut comps = path.components();
    if comps.next() != Some(Component::RootDir) {
        return None;
    }
    for c in comps {
        match c {
            Component::Normal(n) => out.push(n),
            Component::ParentDir => {
                out.pop();
            }
            Component::CurDir | Component::RootDir | Component::Prefix(_) => {}
        }
    }
    Some(out)
}

fn parent(p: &Path) -> PathBuf {
    p.parent()
        .map_or_else(|| PathBuf::from("/"), Path::to_path_buf)
}

/// Expands `$ORIGIN`/`${ORIGIN}` in one path element; `None` when the
/// element names another dynamic string token (`$LIB`, `$PLATFORM`) or is
/// empty (the loader's current directory), which are not modelled.
fn expand(element: &[u8], origin: &Path) -> Option<PathBuf> {
    if element.is_empty() {
        return None;
    }
    let origin = origin.as_os_str().as_bytes();
    let mut out = Vec::with_capacity(element.len() + origin.len());
    let mut rest = element;
    while let Some(i) = rest.iter().position(|c| *c == b'$') {
        out.extend_from_slice(rest.get(..i)?);
        let after = rest.get(i + 1..)?;
        let token_len = if after.starts_with(b"ORIGIN") {
            let next = after.get(6).copied();
            // `$ORIGINX` is not the token.
            if next.is_some_and(|c| c.is_ascii_alphanumeric() || c == b'_') {
                return None;
            }
            6
        } else if after.starts_with(b"{ORIGIN}") {
            8
        } else {
            return None;
        };
        out.extend_from_slice(origin);
        rest = after.get(token_len..)?;
    }
    out.extend_from_slice(rest);
    Some(PathBuf::from(OsStr::from_bytes(&out)))
}

/// The directories of a `DT_RPATH`/`DT_RUNPATH` value, `$ORIGIN` expanded,
/// absolute and normalized; other elements are dropped.
pub fn search_dirs(value: &OsStr, origin: &Path) -> Vec<PathBuf> {
    value
        .as_bytes()
        .split(|c| *c == b':')
        .filter_map(|e| expand(e, origin))
        .filter_map(|p| normalize(&p))
        .collect()
}

// ---------------------------------------------------- search configuration

/// Where the loader looks after `DT_RPATH`/`DT_RUNPATH`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SearchPath {
    /// The directories `ldconfig` puts in `/etc/ld.so.cache`, in the order
    /// of `/etc/ld.so.conf` (see [`ld_so_conf_dirs`]).
    pub conf_dirs: Vec<PathBuf>,
    /// The loader's built-in directories (see [`system_dirs_from_help`],
    /// [`multiarch_dirs`]). Also where a library must be in an image that
    /// has no `ld.so.cache`.
    pub system_dirs: Vec<PathBuf>,
}

/// The "system search path" directories that glibc's `ld.so --help`
/// prints, in order.
pub fn system_dirs_from_help(help: &str) -> Vec<PathBuf> {
    help.lines()
        .filter_map(|l| l.trim().strip_suffix("(system search path)"))
        .map(|d| PathBuf::from(d.trim()))
        .filter(|d| d.is_absolute())
        .collect()
}

/// glibc's built-in directories on Debian (multiarch) for `ident`:
/// `/lib/TRIPLET`, `/usr/lib/TRIPLET`, `/lib`, `/usr/lib`. `None` for a
/// machine without a known triplet.
pub fn multiarch_dirs(ident: Ident) -> Option<Vec<PathBuf>> {
    let t = ident.triplet()?;
    Some(vec![
        PathBuf::from(format!("/lib/{t}")),
        PathBuf::from(format!("/usr/lib/{t}")),
        PathBuf::from("/lib"),
        PathBuf::from("/usr/lib"),
    ])
}

/// Whether `name` matches the glob `pattern` (`*`, `?`; no classes).
fn glob_match(pattern: &[u8], name: &[u8]) -> bool {
    match pattern.split_first() {
        None => name.is_empty(),
        Some((b'*', rest)) => {
            (0..=name.len()).any(|i| glob_match(rest, name.get(i..).unwrap_or_default()))
        }
        Some((b'?', rest)) => name.split_first().is_some_and(|(_, n)| glob_match(rest, n)),
        Some((c, rest)) => name
            .split_first()
            .is_some_and(|(n, ns)| n == c && glob_match(rest, ns)),
    }
}

/// The library directories of an `ld.so.conf` file, in the order `ldconfig`
/// reads them: one directory per line, `#` comments, `include PATTERN`
/// (relative to the file's directory; `*` and `?` in the last component, the
/// matches in name order), `hwcap` lines ignored; each directory once. A
/// missing top file gives no directories (ldconfig then uses only its
/// built-in ones); a missing included file is skipped as a glob without
/// matches is.
pub fn ld_so_conf_dirs(fs: &dyn FileSystem, conf: &Path) -> Result<Vec<PathBuf>, DepsError> {
    let mut dirs = Vec::new();
    conf_file(fs, conf, 0, &mut dirs)?;
    let mut seen = BTreeSet::new();
    dirs.retain(|d| seen.insert(d.clone()));
    Ok(dirs)
}

fn conf_file(
    fs: &dyn FileSystem,
    conf: &Path,
    depth: u32,
    dirs: &mut Vec<PathBuf>,
) -> Result<(), DepsError> {
    if depth > 16 {
        return Err(DepsError::IncludeTooDeep {
            path: conf.to_path_buf(),
        });
    }
    let text = match fs.read(conf) {
        Ok(t) => t,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
        Err(error) => {
            return Err(DepsError::Read {
                path: conf.to_path_buf(),
                error,
            });
        }
    };
    let here = parent(conf);
    for line in text.split(|c| *c == b'\n') {
        let line = line.split(|c| *c == b'#').next().unwrap_or_default();
        let line = line.trim_ascii();
        if line.is_empty() {
            continue;
        }
        if let Some(rest) = line.strip_prefix(b"include")
            && rest.first().is_some_and(|c| c.is_ascii_whitespace())
        {
            for pattern in rest.split(|c| c.is_ascii_whitespace()) {
                if !pattern.is_empty() {
                    include(fs, &here, pattern, depth, dirs)?;
                }
            }
            continue;
        }
        if line.starts_with(b"hwcap") && line.get(5).is_some_and(|c| c.is_ascii_whitespace()) {
            continue;
        }
        if let Some(d) = normalize(Path::new(OsStr::from_bytes(line))) {
            dirs.push(d);
        }
    }
    Ok(())
}

fn include(
    fs: &dyn FileSystem,
    here: &Path,
    pattern: &[u8],
    depth: u32,
    dirs: &mut Vec<PathBuf>,
) -> Result<(), DepsError> {
    let joined = here.join(OsStr::from_bytes(pattern));
    let Some(full) = normalize(&joined) else {
        return Ok(());
    };
    let name = full.file_name().map(OsStr::as_bytes).unwrap_or_default();
    if !name.iter().any(|c| matches!(c, b'*' | b'?' | b'[')) {
        return conf_file(fs, &full, depth + 1, dirs);
    }
    let dir = parent(&full);
    let mut names = match fs.read_dir(&dir) {
        Ok(n) => n,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
        Err(error) => return Err(DepsError::Read { path: dir, error }),
    };
    names.sort();
    for n in names {
        // A glob's `*` does not match a leading dot.
        if n.as_bytes().first() != Some(&b'.') && glob_match(name, n.as_bytes()) {
            conf_file(fs, &dir.join(&n), depth + 1, dirs)?;
        }
    }
    Ok(())
}

// ------------------------------------------------------------ resolution

/// What an image needs at one path.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub enum Entry {
    /// The file at this path (the same path on the file system read from).
    File(PathBuf),
    /// A symlink at `path` holding `target`.
    Symlink { path: PathBuf, target: PathBuf },
}

impl Entry {
    pub fn path(&self) -> &Path {
        match self {
            Entry::File(p) | Entry::Symlink { path: p, .. } => p,
        }
    }
}

/// A library the program loads.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Library {
    /// The `DT_NEEDED` name it was first asked as.
    pub name: OsString,
    /// Where the loader opens it (before symlinks).
    pub path: PathBuf,
    /// The object whose `DT_NEEDED` named it first.
    pub needed_by: PathBuf,
}

/// A program and everything the loader needs to run it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Closure {
    pub ident: Ident,
    /// `PT_INTERP` as the program names it.
    pub interp: Option<PathBuf>,
    /// In load order (breadth first), each once.
    pub libraries: Vec<Library>,
    /// Files and symlinks for an image, each path once: the program's, the
    /// interpreter's and the libraries' (each symlink on the way to the
    /// file, as written, or absolute when it climbs with `..`), and, for a
    /// library found only through `ld.so.cache`, a symlink in the first
    /// system directory (an image has no cache).
    pub entries: Vec<Entry>,
}

/// The symlinks from `path` to the file it ends at (last components only:
/// the directories on the way are taken as they are).
fn follow(fs: &dyn FileSystem, path: &Path) -> Result<(Vec<Entry>, PathBuf), DepsError> {
    let mut p = normalize(path).ok_or_else(|| DepsError::NotAbsolute {
        what: "the path",
        path: path.to_path_buf(),
    })?;
    let mut links = Vec::new();
    // The kernel's limit for one path walk.
    for _ in 0..40 {
        let target = fs.read_link(&p).map_err(|error| DepsError::Read {
            path: p.clone(),
            error,
        })?;
        let Some(target) = target else {
            return Ok((links, p));
        };
        let next = normalize(&parent(&p).join(&target)).unwrap_or_else(|| PathBuf::from("/"));
        // Directories are real in an image: a `..` there may climb
        // elsewhere than on the host, so such a link points at the result.
        let climbs = target.components().any(|c| c == Component::ParentDir);
        links.push(Entry::Symlink {
            path: p,
            target: if climbs { next.clone() } else { target },
        });
        p = next;
    }
    Err(DepsError::SymlinkLoop {
        path: path.to_path_buf(),
    })
}

/// One loaded object.
struct Object {
    /// Where it was opened (the program: where its symlinks end).
    path: PathBuf,
    origin: PathBuf,
    dynamic: Dynamic,
    /// The object that caused it to load.
    loader: Option<usize>,
}

fn read_elf(fs: &dyn FileSystem, path: &Path) -> Result<Dynamic, DepsError> {
    let bytes = fs.read(path).map_err(|error| DepsError::Read {
        path: path.to_path_buf(),
        error,
    })?;
    parse(&bytes).map_err(|error| DepsError::Elf {
        path: path.to_path_buf(),
        error,
    })
}

/// Where a search found a library.
enum Found {
    Path(PathBuf, Dynamic),
    /// Only through the cache's directories: the image needs a link in a
    /// system directory.
    Cache(PathBuf, Dynamic),
}

/// Finds `name`, needed by `objects[by]`, as the loader would.
fn search(
    fs: &dyn FileSystem,
    name: &OsStr,
    by: usize,
    objects: &[Object],
    sp: &SearchPath,
) -> Result<Found, DepsError> {
    let Some(me) = objects.get(by) else {
        return Err(DepsError::NotFound {
            name: name.to_os_string(),
            needed_by: PathBuf::new(),
            searched: Vec::new(),
            rejected: Vec::new(),
        });
    };
    let want = objects
        .first()
        .map_or(me.dynamic.ident, |o| o.dynamic.ident);
    let mut rejected = Vec::new();
    let mut searched = Vec::new();
    let not_found = |searched, rejected| DepsError::NotFound {
        name: name.to_os_string(),
        needed_by: me.path.clone(),
        searched,
        rejected,
    };
    // Whether a candidate is a library for this program; why not, else.
    let try_path = |p: &Path, rejected: &mut Vec<(PathBuf, String)>| match fs.read(p) {
        Ok(bytes) => match parse(&bytes) {
            Ok(d) if d.ident != want => {
                rejected.push((
                    p.to_path_buf(),
                    format!("built for {}, not {}", d.ident.name(), want.name()),
                ));
                None
            }
            Ok(d) if d.e_type != 3 => {
                rejected.push((p.to_path_buf(), "not a shared object".to_string()));
                None
            }
            Ok(d) => Some(d),
            Err(e) => {
                rejected.push((p.to_path_buf(), e.to_string()));
                None
            }
        },
        Err(e) if matches!(e.raw_os_error(), Some(2 | 20)) => None, // ENOENT, ENOTDIR
        Err(e) if e.kind() == io::ErrorKind::NotFound => None,
        Err(e) => {
            rejected.push((p.to_path_buf(), errno_text(&e)));
            None
        }
    };
    if name.as_bytes().contains(&b'/') {
        let p = expand(name.as_bytes(), &me.origin)
            .and_then(|p| normalize(&p))
            .ok_or_else(|| DepsError::NotAbsolute {
                what: "the DT_NEEDED path",
                path: PathBuf::from(name),
            })?;
        return match try_path(&p, &mut rejected) {
            Some(d) => Ok(Found::Path(p, d)),
            None => Err(not_found(vec![parent(&p)], rejected)),
        };
    }
    let mut dirs: Vec<(PathBuf, bool)> = Vec::new();
    if me.dynamic.runpath.is_none() {
        let mut at = Some(by);
        while let Some(i) = at {
            let Some(o) = objects.get(i) else { break };
            if let Some(rp) = o.dynamic.effective_rpath() {
                dirs.extend(search_dirs(rp, &o.origin).into_iter().map(|d| (d, false)));
            }
            at = o.loader;
        }
    }
    if let Some(rp) = &me.dynamic.runpath {
        dirs.extend(search_dirs(rp, &me.origin).into_iter().map(|d| (d, false)));
    }
    if !me.dynamic.nodeflib {
        let system = |d: &PathBuf| sp.system_dirs.contains(d);
        dirs.extend(sp.conf_dirs.iter().map(|d| (d.clone(), !system(d))));
        dirs.extend(sp.system_dirs.iter().map(|d| (d.clone(), false)));
    }
    for (dir, cache_only) in dirs {
        if searched.contains(&dir) {
            continue;
        }
        let p = dir.join(name);
        searched.push(dir);
        if let Some(d) = try_path(&p, &mut rejected) {
            return Ok(if cache_only {
                Found::Cache(p, d)
            } else {
                Found::Path(p, d)
            });
        }
    }
    Err(not_found(searched, rejected))
}

/// Adds `entries` not yet there.
fn add_entries(out: &mut Vec<Entry>, seen: &mut BTreeSet<PathBuf>, entries: Vec<Entry>) {
    for e in entries {
        if seen.insert(e.path().to_path_buf()) {
            out.push(e);
        }
    }
}

/// The file at `path` with the symlinks on the way to it.
fn chain(fs: &dyn FileSystem, path: &Path) -> Result<(Vec<Entry>, PathBuf), DepsError> {
    let (mut links, end) = follow(fs, path)?;
    links.push(Entry::File(end.clone()));
    Ok((links, end))
}

/// The closure of `program` (an absolute path in `fs`): its interpreter and
/// every library it loads, found as glibc's loader finds them with `sp`
/// (see the module's documentation), and the entries an image needs.
/// A statically linked program has an empty closure but itself.
pub fn resolve(fs: &dyn FileSystem, program: &Path, sp: &SearchPath) -> Result<Closure, DepsError> {
    if !program.is_absolute() {
        return Err(DepsError::NotAbsolute {
            what: "the program",
            path: program.to_path_buf(),
        });
    }
    let mut entries = Vec::new();
    let mut seen = BTreeSet::new();
    let (links, end) = chain(fs, program)?;
    add_entries(&mut entries, &mut seen, links);
    let dynamic = read_elf(fs, &end)?;
    let ident = dynamic.ident;
    // Names the loader already has: the names objects were asked as, their
    // paths and their sonames.
    let mut names: Vec<OsString> = vec![end.clone().into_os_string()];
    let interp = dynamic.interp.clone();
    if let Some(i) = &interp {
        if !i.is_absolute() {
            return Err(DepsError::NotAbsolute {
                what: "the program interpreter",
                path: i.clone(),
            });
        }
        let (links, i_end) = chain(fs, i)?;
        add_entries(&mut entries, &mut seen, links);
        let d = read_elf(fs, &i_end)?;
        if d.ident != ident {
            return Err(DepsError::Mismatch {
                path: i.clone(),
                found: d.ident,
                want: ident,
            });
        }
        names.push(i.clone().into_os_string());
        names.extend(d.soname);
    }
    let mut objects = vec![Object {
        origin: parent(&end),
        path: end,
        dynamic,
        loader: None,
    }];
    let mut libraries = Vec::new();
    let mut cache_links = Vec::new();
    let mut next = 0;
    while let Some(o) = objects.get(next) {
        let needed = o.dynamic.needed.clone();
        for name in needed {
            if names.contains(&name) {
                continue;
            }
            let found = search(fs, &name, next, &objects, sp)?;
            let (path, d) = match found {
                Found::Path(p, d) => (p, d),
                Found::Cache(p, d) => {
                    if let Some(sys) = sp.system_dirs.first() {
                        cache_links.push(Entry::Symlink {
                            path: sys.join(&name),
                            target: p.clone(),
                        });
                    }
                    (p, d)
                }
            };
            names.push(name.clone());
            if objects.iter().any(|o| o.path == path) {
                continue;
            }
            let (links, _) = chain(fs, &path)?;
            add_entries(&mut entries, &mut seen, links);
            names.push(path.clone().into_os_string());
            names.extend(d.soname.clone());
            libraries.push(Library {
                name,
                path: path.clone(),
                needed_by: objects
                    .get(next)
                    .map_or_else(PathBuf::new, |o| o.path.clone()),
            });
            objects.push(Object {
                origin: parent(&path),
                path,
                dynamic: d,
                loader: Some(next),
            });
        }
        next += 1;
    }
    add_entries(&mut entries, &mut seen, cache_links);
    Ok(Closure {
        ident,
        interp,
        libraries,
        entries,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::cell::RefCell;
    use std::collections::BTreeMap;
    use std::process::Command;

    // ------------------------------------------------ a synthetic ELF

    /// What a synthetic ELF holds.
    #[derive(Clone)]
    struct Spec {
        class: u8,
        data: u8,
        machine: u16,
        e_type: u16,
        interp: Option<&'static str>,
        needed: Vec<&'static str>,
        soname: Option<&'static str>,
        rpath: Option<&'static str>,
        runpath: Option<&'static str>,
        flags_1: Option<u64>,
    }

    fn x86_64() -> Spec {
        Spec {
            class: 2,
            data: 1,
            machine: 62,
            e_type: 3,
            interp: None,
            needed: Vec::new(),
            soname: None,
            rpath: None,
            runpath: None,
            flags_1: None,
        }
    }

    fn lib(soname: &'static str, needed: &[&'static str]) -> Vec<u8> {
        elf(&Spec {
            soname: Some(soname),
            needed: needed.to_vec(),
            ..x86_64()
        })
    }

    /// Header, three program headers (PT_LOAD of the whole file at
    /// 0x400000, PT_INTERP, PT_DYNAMIC), the interpreter's name, the
    /// string table and the dynamic section.
    fn elf(s: &Spec) -> Vec<u8> {
        let wide = s.class == 2;
        let le = s.data == 1;
        let put = |out: &mut Vec<u8>, v: u64, len: usize| {
            let bytes = v.to_be_bytes();
            let mut b = bytes[8 - len..].to_vec();
            if le {
                b.reverse();
            }
            out.extend_from_slice(&b);
        };
        let word = if wide { 8 } else { 4 };
        let (ehsize, phsize) = if wide { (64, 56) } else { (52, 32) };
        let base = 0x40_0000u64;
        // Strings.
        let mut strtab = vec![0u8];
        let mut add_str = |t: &str| {
            let off = strtab.len() as u64;
            strtab.extend_from_slice(t.as_bytes());
            strtab.push(0);
            off
        };
        let mut dyns: Vec<(u64, u64)> = Vec::new();
        for n in &s.needed {
            dyns.push((DT_NEEDED, add_str(n)));
        }
        if let Some(n) = s.soname {
            dyns.push((DT_SONAME, add_str(n)));
        }
        if let Some(n) = s.rpath {
            dyns.push((DT_RPATH, add_str(n)));
        }
        if let Some(n) = s.runpath {
            dyns.push((DT_RUNPATH, add_str(n)));
        }
        if let Some(f) = s.flags_1 {
            dyns.push((DT_FLAGS_1, f));
        }
        let interp_off = ehsize + 3 * phsize;
        let interp = s.interp.map(|i| format!("{i}\0")).unwrap_or_default();
        let strtab_off = interp_off + interp.len() as u64;
        let mut dyn_off = strtab_off + strtab.len() as u64 + 2 * 8; // room for STRTAB/STRSZ
        dyn_off = dyn_off.div_ceil(8) * 8;
        dyns.push((DT_STRTAB, base + strtab_off));
        dyns.push((DT_STRSZ, strtab.len() as u64));
        dyns.push((DT_NULL, 0));
        let dyn_size = dyns.len() as u64 * 2 * word as u64;
        let total = dyn_off + dyn_size;
        let mut out = Vec::new();
        out.extend_from_slice(b"\x7fELF");
        out.extend_from_slice(&[s.class, s.data, 1, 0]);
        out.resize(16, 0);
        put(&mut out, u64::from(s.e_type), 2);
        put(&mut out, u64::from(s.machine), 2);
        put(&mut out, 1, 4); // e_version
        put(&mut out, base, word); // e_entry
        put(&mut out, ehsize, word); // e_phoff
        put(&mut out, 0, word); // e_shoff
        put(&mut out, 0, 4); // e_flags
        put(&mut out, ehsize, 2);
        put(&mut out, phsize, 2);
        put(&mut out, 3, 2); // e_phnum
        put(&mut out, 64, 2); // e_shentsize
        put(&mut out, 0, 2); // e_shnum
        put(&mut out, 0, 2); // e_shstrndx
        assert_eq!(out.len() as u64, ehsize);
        let interp_kind = if s.interp.is_some() { PT_INTERP } else { 4 }; // PT_NOTE
        for (kind, off, size) in [
            (PT_LOAD, 0, total),
            (interp_kind, interp_off, interp.len() as u64),
            (PT_DYNAMIC, dyn_off, dyn_size),
        ] {
            put(&mut out, kind, 4);
            if wide {
                put(&mut out, 4, 4); // p_flags
            }
            put(&mut out, off, word);
            put(&mut out, base + off, word); // p_vaddr
            put(&mut out, base + off, word); // p_paddr
            put(&mut out, size, word);
            put(&mut out, size, word);
            if !wide {
                put(&mut out, 4, 4);
            }
            put(&mut out, 8, word); // p_align
        }
        out.extend_from_slice(interp.as_bytes());
        out.extend_from_slice(&strtab);
        out.resize(dyn_off as usize, 0);
        for (t, v) in dyns {
            put(&mut out, t, word);
            put(&mut out, v, word);
        }
        assert_eq!(out.len() as u64, total);
        out
    }

    fn os(v: &[&str]) -> Vec<OsString> {
        v.iter().map(OsString::from).collect()
    }

    #[test]
    fn both_classes_and_byte_orders() {
        for (class, data, machine) in [(2, 1, 62), (1, 1, 3), (2, 2, 22), (1, 2, 8)] {
            let s = Spec {
                class,
                data,
                machine,
                e_type: 2,
                interp: Some("/lib/ld.so.1"),
                needed: vec!["liba.so.1", "libb.so.2"],
                soname: Some("prog"),
                rpath: Some("$ORIGIN/../lib"),
                runpath: Some("/opt/x"),
                flags_1: Some(DF_1_NODEFLIB | 1),
            };
            let d = parse(&elf(&s)).unwrap();
            assert_eq!(
                d,
                Dynamic {
                    ident: Ident {
                        class,
                        data,
                        machine
                    },
                    e_type: 2,
                    interp: Some(PathBuf::from("/lib/ld.so.1")),
                    needed: os(&["liba.so.1", "libb.so.2"]),
                    soname: Some("prog".into()),
                    rpath: Some("$ORIGIN/../lib".into()),
                    runpath: Some("/opt/x".into()),
                    nodeflib: true,
                },
                "class {class} data {data}"
            );
            assert_eq!(d.effective_rpath(), None, "RUNPATH hides RPATH");
        }
        let d = parse(&elf(&Spec {
            rpath: Some("/r"),
            ..x86_64()
        }))
        .unwrap();
        assert_eq!(d.effective_rpath(), Some(OsStr::new("/r")));
        assert_eq!((d.interp, d.nodeflib), (None, false));
    }

    #[test]
    fn malformed_headers_are_errors() {
        let good = elf(&Spec {
            needed: vec!["liba.so.1"],
            ..x86_64()
        });
        assert_eq!(parse(b"#!/bin/sh\n"), Err(ElfError::NotElf));
        let mut b = good.clone();
        b[4] = 3;
        assert_eq!(parse(&b), Err(ElfError::BadIdent));
        let mut b = good.clone();
        b[16] = 1; // ET_REL
        assert_eq!(parse(&b), Err(ElfError::NotLoadable(1)));
        let mut b = good.clone();
        b[54] = 55; // e_phentsize
        assert!(matches!(parse(&b), Err(ElfError::Malformed(_))));
        // DT_STRTAB moved outside every PT_LOAD.
        let mut b = good.clone();
        let n = b.len();
        // The dynamic section ends: NEEDED, STRTAB, STRSZ, NULL (16 bytes each).
        b[n - 48 + 8..n - 48 + 16].copy_from_slice(&0x10u64.to_le_bytes());
        assert_eq!(
            parse(&b),
            Err(ElfError::Malformed(
                "DT_STRTAB is not in the file part of a loaded segment"
            ))
        );
        // No DT_NULL: the last entry overwritten.
        let mut b = good.clone();
        b[n - 16..n - 8].copy_from_slice(&7u64.to_le_bytes());
        assert_eq!(
            parse(&b),
            Err(ElfError::Malformed(
                "the dynamic section has no DT_NULL end"
            ))
        );
        // A name offset past DT_STRSZ.
        let mut b = good.clone();
        b[n - 64 + 8..n - 64 + 16].copy_from_slice(&0x1000u64.to_le_bytes());
        assert!(matches!(parse(&b), Err(ElfError::Malformed(_))));
        // Huge offsets do not overflow.
        let mut b = good;
        b[32..40].copy_from_slice(&u64::MAX.to_le_bytes()); // e_phoff
        assert!(parse(&b).is_err());
    }

    /// Every prefix of a real binary is an error, never a panic nor a
    /// partial answer; random damage to its headers never panics.
    #[test]
    fn truncations_and_damage_never_panic() {
        for p in ["/bin/sh", "/sbin/e2fsck"] {
            let b = std::fs::read(p).unwrap();
            assert!(parse(&b).is_ok(), "{p}");
            for n in 0..b.len() {
                assert!(parse(&b[..n]).is_err(), "{p} cut at {n} parsed");
            }
            let mut seed = 0x9e37_79b9_7f4a_7c15u64;
            let mut rnd = || {
                seed ^= seed << 13;
                seed ^= seed >> 7;
                seed ^= seed << 17;
                seed
            };
            // The headers, program headers and dynamic section are where
            // the parser looks; damage one to four bytes there.
            let dynamic = (0..u64::from(u16::from_le_bytes([b[56], b[57]])))
                .map(|i| 64 + 56 * i as usize)
                .find(|ph| b[*ph] == PT_DYNAMIC as u8)
                .map(|ph| {
                    let at =
                        |o: usize| u64::from_le_bytes(b[ph + o..ph + o + 8].try_into().unwrap());
                    (at(8) as usize, at(32) as usize)
                })
                .unwrap();
            for _ in 0..20_000 {
                let mut d = b.clone();
                for _ in 0..=(rnd() % 4) {
                    let at = if rnd() % 2 == 0 {
                        (rnd() % 0x400) as usize
                    } else {
                        dynamic.0 + (rnd() % dynamic.1 as u64) as usize
                    };
                    d[at] = rnd() as u8;
                }
                let _ = parse(&d);
            }
        }
        for s in [
            x86_64(),
            Spec {
                class: 1,
                data: 2,
                machine: 8,
                ..x86_64()
            },
        ] {
            let b = elf(&Spec {
                interp: Some("/lib/ld.so"),
                needed: vec!["liba.so"],
                runpath: Some("$ORIGIN"),
                ..s
            });
            for n in 0..b.len() {
                assert!(parse(&b[..n]).is_err(), "cut at {n}");
            }
        }
    }

    // ------------------------------------------- against the host's tools

    fn readelf(args: &[&str], p: &str) -> String {
        let o = Command::new("readelf")
            .args(args)
            .arg(p)
            .env("LC_ALL", "C")
            .output()
            .expect("readelf runs (binutils; scripts/setup installs it)");
        assert!(o.status.success(), "readelf {args:?} {p}");
        String::from_utf8_lossy(&o.stdout).into_owned()
    }

    /// The bracketed values of readelf lines containing `key`.
    fn bracketed(text: &str, key: &str) -> Vec<String> {
        text.lines()
            .filter(|l| l.contains(key))
            .filter_map(|l| {
                let (_, rest) = l.split_once(key)?;
                let rest = rest.trim_start().strip_prefix('[')?;
                Some(rest.rsplit_once(']')?.0.to_string())
            })
            .collect()
    }

    /// Host binaries: those scripts/setup installs, and, where this host has
    /// them, one with a DT_RUNPATH (systemd's busctl) and one with an
    /// `$ORIGIN` DT_RPATH (a JDK's java).
    fn host_programs() -> Vec<String> {
        let mut v: Vec<String> = ["/sbin/e2fsck", "/bin/sh", "/sbin/fsck.fat"]
            .map(String::from)
            .to_vec();
        for p in ["/usr/bin/busctl", "/usr/bin/java"] {
            match std::fs::canonicalize(p) {
                Ok(real) => v.push(real.to_string_lossy().into_owned()),
                Err(_) => eprintln!("{p}: not on this host, not compared"),
            }
        }
        v
    }

    #[test]
    fn real_binaries_match_readelf() {
        let mut programs = host_programs();
        programs.push("/lib/x86_64-linux-gnu/libc.so.6".into());
        programs.push("/lib64/ld-linux-x86-64.so.2".into());
        for p in &programs {
            let d = parse(&std::fs::read(p).unwrap()).unwrap();
            let dy = readelf(&["-d", "-W"], p);
            let shown = |v: &Option<OsString>| {
                v.iter()
                    .map(|s| s.to_string_lossy().into_owned())
                    .collect::<Vec<_>>()
            };
            assert_eq!(
                d.needed
                    .iter()
                    .map(|n| n.to_string_lossy().into_owned())
                    .collect::<Vec<_>>(),
                bracketed(&dy, "Shared library:"),
                "{p}"
            );
            assert_eq!(shown(&d.soname), bracketed(&dy, "Library soname:"), "{p}");
            assert_eq!(shown(&d.rpath), bracketed(&dy, "Library rpath:"), "{p}");
            assert_eq!(shown(&d.runpath), bracketed(&dy, "Library runpath:"), "{p}");
            let interp: Vec<String> = readelf(&["-l", "-W"], p)
                .lines()
                .filter_map(|l| l.trim().strip_prefix("[Requesting program interpreter: "))
                .filter_map(|l| l.strip_suffix(']'))
                .map(str::to_string)
                .collect();
            assert_eq!(
                d.interp
                    .iter()
                    .map(|i| i.display().to_string())
                    .collect::<Vec<_>>(),
                interp,
                "{p}"
            );
        }
        let sh = parse(&std::fs::read("/bin/sh").unwrap()).unwrap();
        assert_eq!(sh.needed, os(&["libc.so.6"]));
        assert_eq!(sh.ident.name(), "x86_64");
    }

    /// The host's file system.
    struct Host;

    impl FileSystem for Host {
        fn read(&self, path: &Path) -> io::Result<Vec<u8>> {
            std::fs::read(path)
        }
        fn read_link(&self, path: &Path) -> io::Result<Option<PathBuf>> {
            if std::fs::symlink_metadata(path)?.file_type().is_symlink() {
                std::fs::read_link(path).map(Some)
            } else {
                Ok(None)
            }
        }
        fn read_dir(&self, dir: &Path) -> io::Result<Vec<OsString>> {
            std::fs::read_dir(dir)?
                .map(|e| e.map(|e| e.file_name()))
                .collect()
        }
    }

    fn loader_help() -> String {
        let o = Command::new("/lib64/ld-linux-x86-64.so.2")
            .arg("--help")
            .output()
            .unwrap();
        String::from_utf8_lossy(&o.stdout).into_owned()
    }

    fn host_search() -> SearchPath {
        SearchPath {
            conf_dirs: ld_so_conf_dirs(&Host, Path::new("/etc/ld.so.conf")).unwrap(),
            system_dirs: system_dirs_from_help(&loader_help()),
        }
    }

    /// The loader's built-in directories on this host are the multiarch
    /// defaults, in this order, with no /lib64.
    #[test]
    fn system_dirs_are_what_the_loader_says() {
        let from_help = system_dirs_from_help(&loader_help());
        let ident = parse(&std::fs::read("/bin/sh").unwrap()).unwrap().ident;
        assert_eq!(Some(from_help.clone()), multiarch_dirs(ident));
        assert_eq!(
            from_help,
            [
                "/lib/x86_64-linux-gnu",
                "/usr/lib/x86_64-linux-gnu",
                "/lib",
                "/usr/lib"
            ]
            .map(PathBuf::from)
        );
    }

    /// The directories of /etc/ld.so.conf in ldconfig's order: those
    /// `ldconfig -v` says it read from the configuration (it drops missing
    /// ones and later names of one directory); `-N -X`: it writes nothing.
    #[test]
    fn ld_so_conf_order_matches_ldconfig() {
        let ours = ld_so_conf_dirs(&Host, Path::new("/etc/ld.so.conf")).unwrap();
        let o = Command::new("ldconfig")
            .args(["-N", "-X", "-v"])
            .output()
            .expect("ldconfig runs");
        let text = String::from_utf8_lossy(&o.stdout);
        let theirs: Vec<PathBuf> = text
            .lines()
            .filter(|l| !l.starts_with(['\t', ' ']) && l.contains("(from /etc/"))
            .filter_map(|l| l.split_once(':').map(|(d, _)| PathBuf::from(d)))
            .collect();
        assert!(!theirs.is_empty(), "{text}");
        let mut seen = BTreeSet::new();
        let kept: Vec<PathBuf> = ours
            .into_iter()
            .filter(|d| std::fs::canonicalize(d).is_ok_and(|c| seen.insert(c)))
            .collect();
        assert_eq!(kept, theirs);
    }

    /// `ldd`'s lines: name => path, and the interpreter (a line that is only
    /// a path); the vDSO (no file) is left out.
    fn ldd(p: &str) -> (BTreeMap<String, PathBuf>, Option<PathBuf>) {
        let o = Command::new("ldd").arg(p).output().expect("ldd runs");
        assert!(o.status.success(), "ldd {p}");
        let mut libs = BTreeMap::new();
        let mut interp = None;
        for l in String::from_utf8_lossy(&o.stdout).lines() {
            let l = l.trim();
            let l = l.rsplit_once(" (0x").map_or(l, |(a, _)| a);
            if let Some((name, path)) = l.split_once(" => ") {
                assert_ne!(path, "not found", "ldd {p}: {name} not found");
                libs.insert(name.to_string(), normalize(Path::new(path)).unwrap());
            } else if l.starts_with('/') {
                interp = Some(PathBuf::from(l));
            }
        }
        (libs, interp)
    }

    /// e2fsck's closure, and that of the other host programs, is what
    /// `ldd` prints: the same libraries at the same paths, the same
    /// interpreter.
    #[test]
    fn closures_match_ldd() {
        let sp = host_search();
        for p in host_programs() {
            let c = resolve(&Host, Path::new(&p), &sp).unwrap();
            let (libs, interp) = ldd(&p);
            let ours: BTreeMap<String, PathBuf> = c
                .libraries
                .iter()
                .map(|l| (l.name.to_string_lossy().into_owned(), l.path.clone()))
                .collect();
            assert_eq!(ours, libs, "{p}");
            assert_eq!(c.interp, interp, "{p}");
            let names: Vec<&PathBuf> = c.libraries.iter().map(|l| &l.path).collect();
            let once: BTreeSet<&PathBuf> = names.iter().copied().collect();
            assert_eq!(names.len(), once.len(), "{p}: a library twice");
        }
        // e2fsck: its six libraries, libc's links, the loader's symlink.
        let c = resolve(&Host, Path::new("/sbin/e2fsck"), &sp).unwrap();
        assert_eq!(c.libraries.len(), 6);
        assert_eq!(c.entries.first(), Some(&Entry::File("/sbin/e2fsck".into())));
        assert!(c.entries.contains(&Entry::Symlink {
            path: "/lib64/ld-linux-x86-64.so.2".into(),
            target: "/lib/x86_64-linux-gnu/ld-linux-x86-64.so.2".into()
        }));
        assert!(c.entries.contains(&Entry::File(
            "/lib/x86_64-linux-gnu/ld-linux-x86-64.so.2".into()
        )));
        assert!(c.entries.contains(&Entry::Symlink {
            path: "/lib/x86_64-linux-gnu/libext2fs.so.2".into(),
            target: "libext2fs.so.2.4".into()
        }));
        assert!(c.entries.contains(&Entry::File(
            "/lib/x86_64-linux-gnu/libext2fs.so.2.4".into()
        )));
    }

    // ------------------------------------------------------- a fake tree

    /// Files and symlinks in memory; what was read, in order.
    #[derive(Default)]
    struct Fake {
        files: BTreeMap<PathBuf, Vec<u8>>,
        links: BTreeMap<PathBuf, PathBuf>,
        reads: RefCell<Vec<PathBuf>>,
    }

    fn enoent() -> io::Error {
        io::Error::from_raw_os_error(2)
    }

    impl Fake {
        fn file(mut self, p: &str, b: Vec<u8>) -> Fake {
            self.files.insert(p.into(), b);
            self
        }
        fn link(mut self, p: &str, t: &str) -> Fake {
            self.links.insert(p.into(), t.into());
            self
        }
    }

    impl FileSystem for Fake {
        fn read(&self, path: &Path) -> io::Result<Vec<u8>> {
            self.reads.borrow_mut().push(path.to_path_buf());
            let mut p = path.to_path_buf();
            for _ in 0..40 {
                if let Some(t) = self.links.get(&p) {
                    p = normalize(&parent(&p).join(t)).ok_or_else(enoent)?;
                    continue;
                }
                return self.files.get(&p).cloned().ok_or_else(enoent);
            }
            Err(io::Error::from_raw_os_error(40))
        }
        fn read_link(&self, path: &Path) -> io::Result<Option<PathBuf>> {
            match (self.links.get(path), self.files.contains_key(path)) {
                (Some(t), _) => Ok(Some(t.clone())),
                (None, true) => Ok(None),
                (None, false) => Err(enoent()),
            }
        }
        fn read_dir(&self, dir: &Path) -> io::Result<Vec<OsString>> {
            Ok(self
                .files
                .keys()
                .chain(self.links.keys())
                .filter(|p| p.parent() == Some(dir))
                .filter_map(|p| p.file_name().map(OsStr::to_os_string))
                .collect())
        }
    }

    fn sp(conf: &[&str], system: &[&str]) -> SearchPath {
        SearchPath {
            conf_dirs: conf.iter().map(PathBuf::from).collect(),
            system_dirs: system.iter().map(PathBuf::from).collect(),
        }
    }

    fn found(c: &Closure) -> Vec<(String, String)> {
        c.libraries
            .iter()
            .map(|l| {
                (
                    l.name.to_string_lossy().into_owned(),
                    l.path.display().to_string(),
                )
            })
            .collect()
    }

    fn pair(a: &str, b: &str) -> (String, String) {
        (a.to_string(), b.to_string())
    }

    /// RPATH first (the program's, inherited by what it loads), then
    /// RUNPATH (the needing object's own only), then the cache's
    /// directories, then the system's; a RUNPATH hides the RPATH of its
    /// object and stops the inherited one.
    #[test]
    fn search_order_rpath_runpath_conf_system() {
        let prog = |rpath, runpath| {
            elf(&Spec {
                e_type: 2,
                needed: vec!["liba.so", "libb.so"],
                rpath,
                runpath,
                ..x86_64()
            })
        };
        let tree = || {
            Fake::default()
                // liba is everywhere; libb needs libc.
                .file("/rp/liba.so", lib("liba.so", &[]))
                .file("/run/liba.so", lib("liba.so", &[]))
                .file("/conf/liba.so", lib("liba.so", &[]))
                .file("/sys/liba.so", lib("liba.so", &[]))
                .file("/sys/libb.so", lib("libb.so", &["libc.so"]))
                .file("/rp/libc.so", lib("libc.so", &[]))
                .file("/sys/libc.so", lib("libc.so", &[]))
        };
        let search = sp(&["/conf"], &["/sys"]);
        let run = |fs: &Fake| resolve(fs, Path::new("/bin/p"), &search).unwrap();
        // RPATH only: before everything, and inherited by libb for libc.
        let fs = tree().file("/bin/p", prog(Some("/rp"), None));
        assert_eq!(
            found(&run(&fs)),
            [
                pair("liba.so", "/rp/liba.so"),
                pair("libb.so", "/sys/libb.so"),
                pair("libc.so", "/rp/libc.so")
            ]
        );
        // RUNPATH only: before the cache, not inherited.
        let fs = tree().file("/bin/p", prog(None, Some("/run")));
        assert_eq!(
            found(&run(&fs)),
            [
                pair("liba.so", "/run/liba.so"),
                pair("libb.so", "/sys/libb.so"),
                pair("libc.so", "/sys/libc.so")
            ]
        );
        // Both: the RPATH is not used at all.
        let fs = tree().file("/bin/p", prog(Some("/rp"), Some("/run")));
        assert_eq!(found(&run(&fs))[0], pair("liba.so", "/run/liba.so"));
        assert_eq!(found(&run(&fs))[2], pair("libc.so", "/sys/libc.so"));
        // Neither: the cache's directories before the system's.
        let fs = tree().file("/bin/p", prog(None, None));
        let c = run(&fs);
        assert_eq!(found(&c)[0], pair("liba.so", "/conf/liba.so"));
        // /conf is not a system directory: the image gets a link where the
        // loader looks without a cache.
        assert!(c.entries.contains(&Entry::Symlink {
            path: "/sys/liba.so".into(),
            target: "/conf/liba.so".into()
        }));
        // The order of attempts, as the loader's: RPATH, RUNPATH, conf, system.
        let fs = Fake::default()
            .file(
                "/bin/p",
                elf(&Spec {
                    e_type: 2,
                    needed: vec!["libz.so"],
                    rpath: Some("/r1:/r2"),
                    ..x86_64()
                }),
            )
            .file("/sys/libz.so", lib("libz.so", &[]));
        run(&fs);
        let reads: Vec<PathBuf> = fs.reads.borrow().clone();
        assert_eq!(
            reads,
            [
                "/bin/p",
                "/r1/libz.so",
                "/r2/libz.so",
                "/conf/libz.so",
                "/sys/libz.so"
            ]
            .map(PathBuf::from)
        );
    }

    /// A library's RUNPATH applies to its own dependencies only; a
    /// library's RPATH is searched before the program's for what it needs.
    #[test]
    fn rpath_chain_from_the_needing_object_up() {
        let fs = Fake::default()
            .file(
                "/bin/p",
                elf(&Spec {
                    e_type: 2,
                    needed: vec!["liba.so"],
                    rpath: Some("/prog-rp"),
                    ..x86_64()
                }),
            )
            .file(
                "/prog-rp/liba.so",
                elf(&Spec {
                    needed: vec!["libb.so", "libc.so"],
                    rpath: Some("/a-rp"),
                    ..x86_64()
                }),
            )
            .file(
                "/a-rp/libb.so",
                elf(&Spec {
                    needed: vec!["libd.so"],
                    runpath: Some("/b-run"),
                    ..x86_64()
                }),
            )
            .file("/prog-rp/libb.so", lib("libb.so", &[]))
            .file("/prog-rp/libc.so", lib("libc.so", &[]))
            .file("/a-rp/libc.so", lib("libc.so", &[]))
            .file("/b-run/libd.so", lib("libd.so", &[]))
            .file("/prog-rp/libd.so", lib("libd.so", &[]));
        let c = resolve(&fs, Path::new("/bin/p"), &sp(&[], &["/sys"])).unwrap();
        assert_eq!(
            found(&c),
            [
                pair("liba.so", "/prog-rp/liba.so"),
                pair("libb.so", "/a-rp/libb.so"),
                pair("libc.so", "/a-rp/libc.so"),
                // libb has a RUNPATH: the RPATHs above it are not searched.
                pair("libd.so", "/b-run/libd.so"),
            ]
        );
        assert_eq!(c.libraries[3].needed_by, PathBuf::from("/a-rp/libb.so"));
    }

    /// `$ORIGIN` is the directory of the program where its symlinks end,
    /// and of a library where it was opened; `${ORIGIN}` too; `$LIB` and
    /// empty elements are skipped.
    #[test]
    fn origin_expansion() {
        let fs = Fake::default()
            .link("/usr/bin/tool", "../lib/tool/bin/tool")
            .file(
                "/usr/lib/tool/bin/tool",
                elf(&Spec {
                    e_type: 3,
                    interp: Some("/lib64/ld.so"),
                    needed: vec!["libt.so"],
                    runpath: Some("$LIB::$ORIGIN/../lib"),
                    ..x86_64()
                }),
            )
            .file("/lib64/ld.so", lib("ld.so", &[]))
            .file(
                "/usr/lib/tool/lib/libt.so",
                elf(&Spec {
                    needed: vec!["libu.so"],
                    runpath: Some("${ORIGIN}/private"),
                    soname: Some("libt.so"),
                    ..x86_64()
                }),
            )
            .file("/usr/lib/tool/lib/private/libu.so", lib("libu.so", &[]));
        let c = resolve(&fs, Path::new("/usr/bin/tool"), &sp(&[], &[])).unwrap();
        assert_eq!(
            found(&c),
            [
                pair("libt.so", "/usr/lib/tool/lib/libt.so"),
                pair("libu.so", "/usr/lib/tool/lib/private/libu.so")
            ]
        );
        // The program's symlink climbs with `..`: in the image it points at
        // the absolute result.
        assert_eq!(
            c.entries[..2],
            [
                Entry::Symlink {
                    path: "/usr/bin/tool".into(),
                    target: "/usr/lib/tool/bin/tool".into()
                },
                Entry::File("/usr/lib/tool/bin/tool".into())
            ]
        );
        assert_eq!(
            search_dirs(
                OsStr::new("$ORIGIN:$ORIGINX:/a/./b/../c:rel:$PLATFORM/x"),
                Path::new("/o")
            ),
            [PathBuf::from("/o"), PathBuf::from("/a/c")]
        );
    }

    /// The interpreter satisfies a DT_NEEDED of its soname (libc needs
    /// ld-linux); a library asked under two names, or found at a path
    /// already loaded, is there once; the symlinks to a library are in the
    /// entries with the file they end at.
    #[test]
    fn each_library_once_and_symlinks_kept() {
        let fs = Fake::default()
            .file(
                "/bin/p",
                elf(&Spec {
                    e_type: 3,
                    interp: Some("/lib64/ld-x.so.2"),
                    needed: vec!["liba.so.1", "libc.so.6", "libb.so.1"],
                    ..x86_64()
                }),
            )
            .link("/lib64/ld-x.so.2", "/lib/t/ld-x.so.2")
            .file("/lib/t/ld-x.so.2", lib("ld-x.so.2", &[]))
            .link("/lib/t/liba.so.1", "liba.so.1.0.3")
            .file("/lib/t/liba.so.1.0.3", lib("liba.so.1", &["libc.so.6"]))
            .file("/lib/t/libc.so.6", lib("libc.so.6", &["ld-x.so.2"]))
            .file(
                "/lib/t/libb.so.1",
                lib("libb.so.1", &["liba.so.1", "libc.so.6"]),
            );
        let c = resolve(&fs, Path::new("/bin/p"), &sp(&[], &["/lib/t"])).unwrap();
        assert_eq!(
            found(&c),
            [
                pair("liba.so.1", "/lib/t/liba.so.1"),
                pair("libc.so.6", "/lib/t/libc.so.6"),
                pair("libb.so.1", "/lib/t/libb.so.1")
            ]
        );
        assert_eq!(c.interp, Some(PathBuf::from("/lib64/ld-x.so.2")));
        let link = |p: &str, t: &str| Entry::Symlink {
            path: p.into(),
            target: t.into(),
        };
        assert_eq!(
            c.entries,
            [
                Entry::File("/bin/p".into()),
                link("/lib64/ld-x.so.2", "/lib/t/ld-x.so.2"),
                Entry::File("/lib/t/ld-x.so.2".into()),
                link("/lib/t/liba.so.1", "liba.so.1.0.3"),
                Entry::File("/lib/t/liba.so.1.0.3".into()),
                Entry::File("/lib/t/libc.so.6".into()),
                Entry::File("/lib/t/libb.so.1".into()),
            ]
        );
    }

    /// A library of another machine or class in the way is skipped, as
    /// the loader skips it; nodeflib leaves out the default directories;
    /// what is not found says where it was looked for and what was not
    /// taken.
    #[test]
    fn wrong_machine_skipped_nodeflib_and_not_found() {
        let i386 = elf(&Spec {
            class: 1,
            machine: 3,
            soname: Some("liba.so"),
            ..x86_64()
        });
        let fs = Fake::default()
            .file(
                "/bin/p",
                elf(&Spec {
                    e_type: 2,
                    needed: vec!["liba.so"],
                    ..x86_64()
                }),
            )
            .file("/lib/liba.so", i386.clone())
            .file("/usr/lib/liba.so", lib("liba.so", &[]));
        let c = resolve(&fs, Path::new("/bin/p"), &sp(&[], &["/lib", "/usr/lib"])).unwrap();
        assert_eq!(found(&c), [pair("liba.so", "/usr/lib/liba.so")]);

        let fs = fs.file(
            "/bin/q",
            elf(&Spec {
                e_type: 2,
                needed: vec!["liba.so"],
                flags_1: Some(DF_1_NODEFLIB),
                ..x86_64()
            }),
        );
        let e = resolve(&fs, Path::new("/bin/q"), &sp(&["/lib"], &["/usr/lib"])).unwrap_err();
        assert_eq!(
            e.to_string(),
            "liba.so (needed by /bin/q) not found in any directory"
        );
        let fs = fs.file(
            "/bin/r",
            elf(&Spec {
                e_type: 2,
                needed: vec!["liba.so"],
                rpath: Some("/lib"),
                ..x86_64()
            }),
        );
        let e = resolve(&fs, Path::new("/bin/r"), &sp(&[], &["/opt"])).unwrap_err();
        assert_eq!(
            e.to_string(),
            "liba.so (needed by /bin/r) not found in /lib, /opt; \
             /lib/liba.so not taken: built for i386, not x86_64"
        );
        // Missing program, relative program, symlink loop.
        let e = resolve(&fs, Path::new("/bin/none"), &sp(&[], &[])).unwrap_err();
        assert_eq!(
            e.to_string(),
            "cannot read /bin/none: errno 2 (No such file or directory)"
        );
        assert!(resolve(&fs, Path::new("bin/p"), &sp(&[], &[])).is_err());
        let fs = fs.link("/bin/l1", "l2").link("/bin/l2", "l1");
        assert_eq!(
            resolve(&fs, Path::new("/bin/l1"), &sp(&[], &[]))
                .unwrap_err()
                .to_string(),
            "/bin/l1: too many levels of symbolic links"
        );
        // A script is not an ELF program.
        let fs = fs.file("/bin/s", b"#!/bin/sh\n".to_vec());
        assert_eq!(
            resolve(&fs, Path::new("/bin/s"), &sp(&[], &[]))
                .unwrap_err()
                .to_string(),
            "/bin/s: not an ELF file"
        );
        // A static program: itself only.
        let fs = fs.file(
            "/bin/static",
            elf(&Spec {
                e_type: 2,
                ..x86_64()
            }),
        );
        let c = resolve(&fs, Path::new("/bin/static"), &sp(&[], &[])).unwrap();
        assert_eq!((c.interp, c.libraries.len()), (None, 0));
        assert_eq!(c.entries, [Entry::File("/bin/static".into())]);
    }

    #[test]
    fn ld_so_conf_includes_in_order() {
        let fs = Fake::default()
            .file(
                "/etc/ld.so.conf",
                b"# top\n/opt/first/\ninclude ld.so.conf.d/*.conf\nhwcap 0 x\n/opt/last # end\n"
                    .to_vec(),
            )
            .file(
                "/etc/ld.so.conf.d/b.conf",
                b"/b\ninclude /etc/extra\n".to_vec(),
            )
            .file("/etc/ld.so.conf.d/a.conf", b"/a\n/opt/first\n".to_vec())
            .file("/etc/ld.so.conf.d/.hidden.conf", b"/hidden\n".to_vec())
            .file("/etc/ld.so.conf.d/c.txt", b"/c\n".to_vec())
            .file("/etc/extra", b"/extra\n".to_vec());
        assert_eq!(
            ld_so_conf_dirs(&fs, Path::new("/etc/ld.so.conf")).unwrap(),
            ["/opt/first", "/a", "/b", "/extra", "/opt/last"].map(PathBuf::from)
        );
        assert_eq!(
            ld_so_conf_dirs(&fs, Path::new("/etc/none")).unwrap(),
            Vec::<PathBuf>::new()
        );
        let fs = Fake::default().file("/etc/loop", b"include /etc/loop\n".to_vec());
        assert!(matches!(
            ld_so_conf_dirs(&fs, Path::new("/etc/loop")),
            Err(DepsError::IncludeTooDeep { .. })
        ));
        assert!(glob_match(b"*.conf", b"x.conf"));
        assert!(!glob_match(b"*.conf", b"x.con"));
        assert!(glob_match(b"a?c*", b"abc"));
    }

    #[test]
    fn help_text_and_normalize() {
        let help = "Shared library search path:\n  (libraries located via /etc/ld.so.cache)\n  \
                    /lib64 (system search path)\n  /usr/lib64 (system search path)\n";
        assert_eq!(
            system_dirs_from_help(help),
            [PathBuf::from("/lib64"), PathBuf::from("/usr/lib64")]
        );
        assert_eq!(normalize(Path::new("/a//b/./../c/..")), Some("/a".into()));
        assert_eq!(normalize(Path::new("/../..")), Some("/".into()));
        assert_eq!(normalize(Path::new("a/b")), None);
        assert_eq!(
            multiarch_dirs(Ident {
                class: 2,
                data: 1,
                machine: 183
            })
            .unwrap()[0],
            PathBuf::from("/lib/aarch64-linux-gnu")
        );
    }
}
