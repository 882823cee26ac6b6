//! Reading files and devices, and walking the initramfs to free it.

use std::ffi::{CString, OsStr};
use std::os::fd::OwnedFd;
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

    /// Fills `buf` from `offset` on; returns how many bytes the file had there.
    pub fn read_full_at(&self, buf: &mut [u8], offset: u64) -> Result<usize, Errno> {
        let mut got = 0;
        while let Some(rest) = buf.get_mut(got..).filter(|r| !r.is_empty()) {
            match rustix::io::pread(&self.0, rest, offset + got as u64) {
                Ok(0) => break,
                Ok(n) => got += n,
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

    /// Where the file is on this machine, after every symlink (from /proc).
    pub(super) fn real_path(&self) -> Option<PathBuf> {
        std::fs::read_link(self.proc_path()).ok()
    }

    /// `/proc/self/fd/N`: the magic link the kernel follows to exactly
    /// this file, whatever its path resolves to now.
    pub(super) fn proc_path(&self) -> PathBuf {
        use std::os::fd::AsRawFd;
        PathBuf::from(format!("/proc/self/fd/{}", self.0.as_raw_fd()))
    }

    /// Whether this directory (a path handle will do) has no entries.
    pub(super) fn is_empty_dir(&self) -> Result<bool, Errno> {
        let dir = rustix::fs::openat(
            &self.0,
            ".",
            OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC,
            Mode::empty(),
        )?;
        for entry in rustix::fs::Dir::read_from(&dir)? {
            let name = entry?.file_name().to_bytes().to_vec();
            if name != b"." && name != b".." {
                return Ok(false);
            }
        }
        Ok(true)
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

/// Creates `path` (or truncates it; a symlink there is refused) with
/// exactly `mode`, whatever the umask, and writes all of `data`.
pub(super) fn create_file(path: &Path, data: &[u8], mode: u32) -> Result<(), Errno> {
    let flags =
        OFlags::WRONLY | OFlags::CREATE | OFlags::TRUNC | OFlags::NOFOLLOW | OFlags::CLOEXEC;
    let fd = rustix::fs::open(path, flags, Mode::from_raw_mode(mode))?;
    rustix::fs::fchmod(&fd, Mode::from_raw_mode(mode))?;
    let mut rest = data;
    while !rest.is_empty() {
        match rustix::io::write(&fd, rest) {
            Ok(0) => return Err(Errno::IO),
            Ok(n) => rest = rest.get(n..).unwrap_or_default(),
            Err(Errno::INTR) => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
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
            let inside = match (f.real_path(), std::fs::canonicalize(root)) {
                (Some(at), Ok(root)) => at.starts_with(root),
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
    use std::os::fd::AsRawFd;
    let magic = format!("/proc/self/fd/{}", handle.0.as_raw_fd());
    let flags = OFlags::RDONLY | OFlags::CLOEXEC | OFlags::NOCTTY;
    rustix::fs::open(magic.as_str(), flags, Mode::empty()).map(OpenFile)
}

pub(super) fn free_initramfs() -> (usize, u64) {
    let mut counts = (0, 0);
    match rustix::fs::open(
        "/",
        OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC,
        Mode::empty(),
    ) {
        Ok(root) => match rustix::fs::fstat(&root) {
            Ok(st) => remove_contents(&root, st.st_dev, &mut counts),
            Err(e) => log::warn!("cannot stat /: {}", ErrnoText(e)),
        },
        Err(e) => log::warn!("cannot open /: {}", ErrnoText(e)),
    }
    counts
}

/// Removes everything in `dir` that lives on device `dev`; directories on
/// other devices (mount points: the new root, /dev, /proc, ...) are left alone.
/// Best effort: what cannot be removed is logged and skipped.
fn remove_contents(dir: &OwnedFd, dev: u64, counts: &mut (usize, u64)) {
    let names: Vec<CString> = match rustix::fs::Dir::read_from(dir) {
        Ok(d) => d
            .filter_map(|e| e.ok())
            .map(|e| e.file_name().to_owned())
            .filter(|n| n.as_bytes() != b"." && n.as_bytes() != b"..")
            .collect(),
        Err(e) => {
            log::warn!("cannot list a directory of the initramfs: {}", ErrnoText(e));
            return;
        }
    };
    for name in names {
        let Ok(st) = rustix::fs::statat(dir, name.as_c_str(), AtFlags::SYMLINK_NOFOLLOW) else {
            continue;
        };
        if st.st_dev != dev {
            continue;
        }
        let is_dir = FileType::from_raw_mode(st.st_mode) == FileType::Directory;
        if is_dir {
            match rustix::fs::openat(
                dir,
                name.as_c_str(),
                OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
                Mode::empty(),
            ) {
                Ok(sub) => remove_contents(&sub, dev, counts),
                Err(_) => continue,
            }
        }
        let flags = if is_dir {
            AtFlags::REMOVEDIR
        } else {
            AtFlags::empty()
        };
        match rustix::fs::unlinkat(dir, name.as_c_str(), flags) {
            Ok(()) => {
                counts.0 += 1;
                counts.1 += st.st_size as u64;
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
}
