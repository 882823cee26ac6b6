//! Reading files and devices, and walking the initramfs to free it.

use std::ffi::{CStr, OsStr};
use std::mem::MaybeUninit;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::path::{Path, PathBuf};

use rustix::fs::{AtFlags, FileType, Mode, OFlags, ResolveFlags};
use rustix::io::Errno;

use super::ErrnoText;

/// What `stat` says of a file, in the terms the stages use.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FileInfo {
    pub kind: FileType,
    /// The whole `st_mode` (type and permission bits).
    pub mode: u32,
    pub uid: u32,
    pub dev: u64,
    pub ino: u64,
    /// The device number a device node stands for.
    pub rdev: u64,
    pub size: u64,
}

impl From<rustix::fs::Stat> for FileInfo {
    fn from(st: rustix::fs::Stat) -> FileInfo {
        FileInfo {
            kind: FileType::from_raw_mode(st.st_mode),
            mode: st.st_mode,
            uid: st.st_uid,
            dev: st.st_dev,
            ino: st.st_ino,
            rdev: st.st_rdev,
            size: st.st_size as u64,
        }
    }
}

pub(super) fn stat(path: &Path) -> Result<FileInfo, Errno> {
    rustix::fs::stat(path).map(FileInfo::from)
}

pub(super) fn lstat(path: &Path) -> Result<FileInfo, Errno> {
    rustix::fs::lstat(path).map(FileInfo::from)
}

/// An open file: what the stages read, check and execute.
pub struct OpenFile(OwnedFd);

impl OpenFile {
    pub(super) fn fd(&self) -> &OwnedFd {
        &self.0
    }

    pub fn info(&self) -> Result<FileInfo, Errno> {
        rustix::fs::fstat(&self.0).map(FileInfo::from)
    }

    /// Fills `buf` from `offset` on; returns how many bytes the file had
    /// there. What is read this way are regular files and block devices,
    /// which give less than asked only at their end: a short read ends it
    /// (no second call to learn so).
    pub fn read_full_at(&self, buf: &mut [u8], offset: u64) -> Result<usize, Errno> {
        let mut got = 0;
        while let Some(rest) = buf.get_mut(got..).filter(|r| !r.is_empty()) {
            let want = rest.len();
            match rustix::io::pread(&self.0, rest, offset + got as u64) {
                Ok(n) => {
                    got += n;
                    if n < want {
                        break;
                    }
                }
                Err(Errno::INTR) => continue,
                Err(e) => return Err(e),
            }
        }
        Ok(got)
    }

    /// The first `len` bytes (fewer for a shorter file; none on a read error).
    pub fn head(&self, len: usize) -> Vec<u8> {
        let mut head = vec![0u8; len];
        let n = self.read_full_at(&mut head, 0).unwrap_or(0);
        head.truncate(n);
        head
    }

    /// Where the file is on this machine, after every symlink (from /proc;
    /// read into a buffer on the stack).
    pub(super) fn real_path(&self) -> Option<PathBuf> {
        use std::os::unix::ffi::OsStrExt;
        let mut buf = [0u8; 4096];
        let n = rustix::fs::readlinkat_raw(rustix::fs::CWD, self.proc_path(), &mut buf[..]).ok()?;
        // A whole buffer may be a cut path (a path has at most 4095 bytes).
        let target = buf.get(..n).filter(|_| n < buf.len())?;
        Some(PathBuf::from(OsStr::from_bytes(target)))
    }

    /// `/proc/self/fd/N`: the magic link the kernel follows to exactly
    /// this file, whatever its path resolves to now.
    pub(super) fn proc_path(&self) -> PathBuf {
        use std::os::fd::AsRawFd;
        PathBuf::from(format!("/proc/self/fd/{}", self.0.as_raw_fd()))
    }

    /// Whether this directory (a path handle will do) has no entries.
    pub(super) fn is_empty_dir(&self) -> Result<bool, Errno> {
        let dir = rustix::fs::openat(&self.0, ".", DIR_FLAGS, Mode::empty())?;
        let mut empty = true;
        each_entry(&dir, |_, _| {
            empty = false;
            false
        })?;
        Ok(empty)
    }

    /// Creates the directory `name` (one component, mode 0755) in this
    /// directory; an existing entry of that name is EEXIST.
    pub(super) fn mkdir_at(&self, name: &OsStr) -> Result<(), Errno> {
        let one = Path::new(name);
        let mut parts = one.components();
        match (parts.next(), parts.next()) {
            (Some(std::path::Component::Normal(_)), None) => {}
            _ => return Err(Errno::INVAL),
        }
        rustix::fs::mkdirat(&self.0, one, Mode::from_raw_mode(0o755))
    }
}

/// The names in the directory at `path` that are UTF-8, unsorted.
pub(super) fn read_dir(path: &Path) -> Result<Vec<String>, Errno> {
    let dir = rustix::fs::open(path, DIR_FLAGS, Mode::empty())?;
    let mut names = Vec::new();
    each_entry(&dir, |name, _| {
        if let Ok(n) = name.to_str() {
            names.push(n.to_string());
        }
        true
    })?;
    Ok(names)
}

/// The whole file at `path`: opened (no `fcntl` after it, as musl's
/// `open` does for std), read into a buffer on the stack (a sysfs
/// attribute or /proc/cmdline is one read, and a second says the end);
/// a file that fills that buffer is sized with `fstat` and read straight
/// into the vector it comes back in.
pub(super) fn read(path: &Path) -> Result<Vec<u8>, Errno> {
    let fd = rustix::fs::open(path, OFlags::RDONLY | OFlags::CLOEXEC, Mode::empty())?;
    let mut chunk = [0u8; 4096];
    let mut out = Vec::new();
    loop {
        let len = out.len();
        let n = if out.capacity() - len >= chunk.len() {
            out.resize(out.capacity(), 0);
            let r = read_some(&fd, out.get_mut(len..).unwrap_or_default());
            out.truncate(len + r.unwrap_or(0));
            r?
        } else {
            let n = read_some(&fd, &mut chunk)?;
            if len == 0 && n == chunk.len() {
                let size = rustix::fs::fstat(&fd).map_or(0, |st| st.st_size as usize);
                out.reserve_exact(size.max(2 * n) + 1);
            }
            out.extend_from_slice(chunk.get(..n).unwrap_or_default());
            n
        };
        if n == 0 {
            return Ok(out);
        }
    }
}

/// One `read`, again when a signal interrupted it.
fn read_some(fd: &OwnedFd, buf: &mut [u8]) -> Result<usize, Errno> {
    loop {
        match rustix::io::read(fd, &mut *buf) {
            Err(Errno::INTR) => {}
            r => return r,
        }
    }
}

/// `path` with every symlink and `..` resolved, as realpath(3) gives it:
/// here the kernel's own name for the file opened there (`/proc/self/fd`,
/// as [`OpenFile::real_path`] reads it; std's canonicalize would bring
/// musl's realpath, about 1.5 KiB, for the same answer).
pub(super) fn canonicalize(path: &Path) -> Option<PathBuf> {
    let fd = rustix::fs::open(path, OFlags::PATH | OFlags::CLOEXEC, Mode::empty()).ok()?;
    OpenFile(fd).real_path()
}

/// Writes all of `data` to `fd`.
pub(super) fn write_all(fd: BorrowedFd<'_>, data: &[u8]) -> Result<(), Errno> {
    let mut rest = data;
    while !rest.is_empty() {
        match rustix::io::write(fd, rest) {
            Ok(0) => return Err(Errno::IO),
            Ok(n) => rest = rest.get(n..).unwrap_or_default(),
            Err(Errno::INTR) => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

/// `data` into the file at `path`, created (mode 0666 less the umask) or
/// truncated, as `std::fs::write` does.
pub(super) fn write(path: &Path, data: &[u8]) -> Result<(), Errno> {
    let flags = OFlags::WRONLY | OFlags::CREATE | OFlags::TRUNC | OFlags::CLOEXEC;
    let fd = rustix::fs::open(path, flags, Mode::from_raw_mode(0o666))?;
    write_all(fd.as_fd(), data)
}

/// Creates `path` (or truncates it; a symlink there is refused) with
/// exactly `mode`, whatever the umask, and writes all of `data`.
pub(super) fn create_file(path: &Path, data: &[u8], mode: u32) -> Result<(), Errno> {
    let flags =
        OFlags::WRONLY | OFlags::CREATE | OFlags::TRUNC | OFlags::NOFOLLOW | OFlags::CLOEXEC;
    let fd = rustix::fs::open(path, flags, Mode::from_raw_mode(mode))?;
    rustix::fs::fchmod(&fd, Mode::from_raw_mode(mode))?;
    write_all(fd.as_fd(), data)
}

pub(super) fn open_ro(path: &Path) -> Result<OpenFile, Errno> {
    rustix::fs::open(path, OFlags::RDONLY | OFlags::CLOEXEC, Mode::empty()).map(OpenFile)
}

/// How a path inside a root is resolved by [`super::Files::open_in`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Resolve {
    /// A file to read; every symlink resolved inside the root, so
    /// `/sbin/init -> /lib/systemd/systemd` is found on the volume, not on
    /// the root we run from.
    InRoot,
    /// A directory, as a path handle (to learn where it is, to make a
    /// directory in it, to mount on it); symlinks resolved inside the root,
    /// a magic link (`/proc/self/root`) refused (ELOOP).
    DirInRoot,
    /// A file to read that is not a symlink itself (ELOOP) and whose path
    /// does not leave the root through a symlink or `..` (EXDEV).
    Beneath,
}

/// Opens `p` (absolute as seen from inside `root`) as `how` says.
///
/// A file is looked at before it is opened: it is first opened as a path
/// handle (`O_PATH`, which runs no driver and waits for no writer), and
/// only a regular file is then opened for reading. Anything else comes back
/// as the path handle, whose `info()` says what it is and which cannot be
/// read: a FIFO would block PID 1 forever, a device node would act (a
/// watchdog armed, a tty waiting for carrier).
pub(super) fn open_in(root: &Path, p: &Path, how: Resolve) -> Result<OpenFile, Errno> {
    let rel = p.strip_prefix("/").unwrap_or(p);
    let rel = if rel.as_os_str().is_empty() {
        Path::new(".")
    } else {
        rel
    };
    let (flags, resolve) = match how {
        Resolve::InRoot => (OFlags::empty(), ResolveFlags::IN_ROOT),
        Resolve::DirInRoot => (
            OFlags::DIRECTORY,
            ResolveFlags::IN_ROOT | ResolveFlags::NO_MAGICLINKS,
        ),
        Resolve::Beneath => (
            OFlags::NOFOLLOW,
            ResolveFlags::BENEATH | ResolveFlags::NO_MAGICLINKS,
        ),
    };
    let flags = flags | OFlags::PATH | OFlags::CLOEXEC;
    let dir = rustix::fs::open(
        root,
        OFlags::PATH | OFlags::DIRECTORY | OFlags::CLOEXEC,
        Mode::empty(),
    )?;
    let handle = match rustix::fs::openat2(&dir, rel, flags, Mode::empty(), resolve) {
        // Kernels before 5.6 have no openat2: the plain path; for `Beneath`
        // and `DirInRoot`, then a look at where it is.
        Err(Errno::NOSYS) => {
            let f = OpenFile(rustix::fs::open(root.join(rel), flags, Mode::empty())?);
            let inside = match (f.real_path(), canonicalize(root)) {
                (Some(at), Some(root)) => at.starts_with(root),
                _ => false,
            };
            if how != Resolve::InRoot && !inside {
                return Err(Errno::XDEV);
            }
            f
        }
        r => OpenFile(r?),
    };
    if how == Resolve::DirInRoot {
        return Ok(handle);
    }
    match handle.info()?.kind {
        FileType::RegularFile => reopen_for_reading(&handle),
        // O_PATH|O_NOFOLLOW opens a final symlink itself: refused, as a
        // plain O_NOFOLLOW open would.
        FileType::Symlink if how == Resolve::Beneath => Err(Errno::LOOP),
        _ => Ok(handle),
    }
}

/// The regular file behind a path handle, opened for reading: through
/// `/proc/self/fd`, which names exactly the file that was looked at.
fn reopen_for_reading(handle: &OpenFile) -> Result<OpenFile, Errno> {
    let flags = OFlags::RDONLY | OFlags::CLOEXEC | OFlags::NOCTTY;
    rustix::fs::open(handle.proc_path(), flags, Mode::empty()).map(OpenFile)
}

pub(super) fn free_initramfs() -> (usize, u64) {
    let mut counts = (0, 0);
    match rustix::fs::open("/", DIR_FLAGS, Mode::empty()) {
        Ok(root) => match rustix::fs::fstat(&root) {
            Ok(st) => remove_contents(&root, st.st_dev, &mut counts),
            Err(e) => log::warn!("cannot stat /: {}", ErrnoText(e)),
        },
        Err(e) => log::warn!("cannot open /: {}", ErrnoText(e)),
    }
    counts
}

/// How a directory is opened to be read.
const DIR_FLAGS: OFlags = OFlags::RDONLY
    .union(OFlags::DIRECTORY)
    .union(OFlags::CLOEXEC);

/// The `getdents64` buffer of one directory being read: on the stack (no
/// allocation), room for a few dozen entries per call.
const DIR_BUF: usize = 2048;

/// Calls `each` with the name and type (`d_type`; `Unknown` where the
/// filesystem does not say) of every entry of the open directory `dir` but
/// `.` and `..`, read into a buffer on the stack from where `dir` is; stops
/// when `each` says `false`. The entries may be removed as they come.
pub(super) fn each_entry(
    dir: &OwnedFd,
    mut each: impl FnMut(&CStr, FileType) -> bool,
) -> Result<(), Errno> {
    let mut buf = [MaybeUninit::<u8>::uninit(); DIR_BUF];
    let mut entries = rustix::fs::RawDir::new(dir, &mut buf);
    while let Some(entry) = entries.next() {
        let entry = entry?;
        let name = entry.file_name();
        if name == c"." || name == c".." {
            continue;
        }
        if !each(name, entry.file_type()) {
            break;
        }
    }
    Ok(())
}

/// Removes everything in `dir` that lives on device `dev`; directories on
/// other devices (mount points: the new root, /dev, /proc, ...) are left alone.
/// Each directory is opened once and read into a buffer on the stack while
/// its entries go. Best effort: what cannot be removed is logged and skipped.
fn remove_contents(dir: &OwnedFd, dev: u64, counts: &mut (usize, u64)) {
    let listed = each_entry(dir, |name, kind| {
        remove_entry(dir, name, kind, dev, counts);
        true
    });
    if let Err(e) = listed {
        log::warn!("cannot list a directory of the initramfs: {}", ErrnoText(e));
    }
}

/// Removes `name` from `dir` (a directory with what it holds) when it is
/// on device `dev`; counts it, and a file's size.
fn remove_entry(dir: &OwnedFd, name: &CStr, kind: FileType, dev: u64, counts: &mut (usize, u64)) {
    let (is_dir, size) = if kind == FileType::Directory {
        // An empty directory goes at once (most of an initramfs's are:
        // /dev, /proc, /sys); a mount point refuses (EBUSY) and stays.
        match rustix::fs::unlinkat(dir, name, AtFlags::REMOVEDIR) {
            Ok(()) => {
                counts.0 += 1;
                return;
            }
            Err(Errno::NOTEMPTY) => {}
            Err(Errno::BUSY) => return,
            Err(e) => {
                let name = name.to_string_lossy();
                log::warn!("cannot remove {name} from the initramfs: {}", ErrnoText(e));
                return;
            }
        }
        // Opened without following a link: a mount point opens as the
        // root of what is mounted there, on another device.
        let flags = DIR_FLAGS | OFlags::NOFOLLOW;
        let Ok(sub) = rustix::fs::openat(dir, name, flags, Mode::empty()) else {
            return;
        };
        match rustix::fs::fstat(&sub) {
            Ok(st) if st.st_dev == dev => {}
            _ => return,
        }
        remove_contents(&sub, dev, counts);
        (true, 0)
    } else {
        let Ok(st) = rustix::fs::statat(dir, name, AtFlags::SYMLINK_NOFOLLOW) else {
            return;
        };
        let kind = FileType::from_raw_mode(st.st_mode);
        if kind == FileType::Directory {
            // `d_type` did not say (DT_UNKNOWN): as a directory.
            return remove_entry(dir, name, kind, dev, counts);
        }
        if st.st_dev != dev {
            return;
        }
        (false, st.st_size as u64)
    };
    let flags = if is_dir {
        AtFlags::REMOVEDIR
    } else {
        AtFlags::empty()
    };
    match rustix::fs::unlinkat(dir, name, flags) {
        Ok(()) => {
            counts.0 += 1;
            counts.1 += size;
        }
        // A directory that still holds a mount point stays.
        Err(Errno::NOTEMPTY) | Err(Errno::BUSY) => {}
        Err(e) => log::warn!(
            "cannot remove {} from the initramfs: {}",
            name.to_string_lossy(),
            ErrnoText(e)
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The kernel's name for a path is realpath(3)'s: links (relative and
    /// absolute, chained), `..` and `.` resolved; a missing path has none.
    #[test]
    fn canonicalize_as_realpath() {
        let d = std::env::temp_dir().join(format!("pivot-canon-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        std::fs::create_dir_all(d.join("a/b")).unwrap();
        std::fs::write(d.join("a/b/f"), "x").unwrap();
        std::os::unix::fs::symlink("a/b", d.join("rel")).unwrap();
        std::os::unix::fs::symlink(d.join("rel"), d.join("abs")).unwrap();
        for p in ["a/b/f", "rel", "abs/f", "a/./b/../b/f", "abs/..", "."] {
            let p = d.join(p);
            assert_eq!(canonicalize(&p), std::fs::canonicalize(&p).ok(), "{p:?}");
        }
        assert_eq!(canonicalize(&d.join("missing")), None);
        assert_eq!(canonicalize(&d.join("a/b/f/x")), None);
        std::fs::remove_dir_all(&d).unwrap();
    }

    /// Everything under a directory goes (files, links, nested directories,
    /// an empty one), counted with the files' sizes; the directory stays.
    /// Files shorter than, as long as and longer than the stack chunk, and
    /// /proc files (size 0), read whole; a missing one is ENOENT.
    #[test]
    fn read_reads_whole_files() {
        let d = std::env::temp_dir().join(format!("pivot-read-{}", std::process::id()));
        std::fs::create_dir_all(&d).unwrap();
        for len in [0, 1, 4095, 4096, 4097, 10_000, 300_000] {
            let body: Vec<u8> = (0..len).map(|i| (i % 251) as u8).collect();
            let p = d.join(format!("f{len}"));
            std::fs::write(&p, &body).unwrap();
            assert_eq!(read(&p).unwrap(), body, "{len} bytes");
        }
        for p in ["/proc/self/status", "/proc/self/mountinfo", "/proc/cmdline"] {
            let want = std::fs::read(p).unwrap();
            let got = read(Path::new(p)).unwrap();
            // The status of this process changes between two reads: compare lines.
            assert_eq!(
                got.iter().filter(|b| **b == b'\n').count(),
                want.iter().filter(|b| **b == b'\n').count(),
                "{p}"
            );
        }
        assert_eq!(read(&d.join("missing")), Err(Errno::NOENT));
        write(&d.join("w"), b"on\n").unwrap();
        assert_eq!(std::fs::read(d.join("w")).unwrap(), b"on\n");
        std::fs::remove_dir_all(&d).unwrap();
    }

    #[test]
    fn remove_contents_empties_a_tree() {
        let d = std::env::temp_dir().join(format!("pivot-free-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        std::fs::create_dir_all(d.join("a/b/c")).unwrap();
        std::fs::create_dir_all(d.join("empty")).unwrap();
        std::fs::write(d.join("init"), vec![7u8; 3000]).unwrap();
        std::fs::write(d.join("a/b/c/x"), b"12345").unwrap();
        std::os::unix::fs::symlink("/nowhere", d.join("a/link")).unwrap();
        // Enough entries that one directory takes more than one read.
        for i in 0..200 {
            std::fs::write(d.join(format!("a/f{i:03}-{}", "n".repeat(40))), b"").unwrap();
        }
        let fd = rustix::fs::open(&d, DIR_FLAGS, Mode::empty()).unwrap();
        let dev = rustix::fs::fstat(&fd).unwrap().st_dev;
        let mut counts = (0, 0);
        remove_contents(&fd, dev, &mut counts);
        let left: Vec<_> = std::fs::read_dir(&d).unwrap().collect();
        assert!(left.is_empty(), "{left:?}");
        // init, x, link ("/nowhere": 8 bytes), 200 files; a, b, c, empty.
        assert_eq!(counts, (3 + 200 + 4, 3000 + 5 + 8));
        std::fs::remove_dir_all(&d).unwrap();
    }
}
