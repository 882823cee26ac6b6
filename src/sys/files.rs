//! Reading files and devices, and walking the initramfs to free it.

use std::ffi::CString;
use std::os::fd::OwnedFd;
use std::path::Path;

use rustix::fs::{AtFlags, FileType, Mode, OFlags, ResolveFlags};
use rustix::io::Errno;

use crate::error::{ErrnoText, Error, Result};

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

pub fn stat(path: &Path) -> std::result::Result<FileInfo, Errno> {
    rustix::fs::stat(path).map(FileInfo::from)
}

/// `stat` without following a final symlink.
pub fn lstat(path: &Path) -> std::result::Result<FileInfo, Errno> {
    rustix::fs::lstat(path).map(FileInfo::from)
}

/// A file opened for reading.
pub struct OpenFile(OwnedFd);

impl OpenFile {
    pub(super) fn fd(&self) -> &OwnedFd {
        &self.0
    }

    pub fn info(&self) -> std::result::Result<FileInfo, Errno> {
        rustix::fs::fstat(&self.0).map(FileInfo::from)
    }

    /// Fills `buf` from `offset` on; returns how many bytes the file had there.
    pub fn read_full_at(&self, buf: &mut [u8], offset: u64) -> std::result::Result<usize, Errno> {
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

    /// Where this file is, as a path inside `root` (`/sbin/init`), after
    /// every symlink; `None` when /proc cannot tell or it is outside `root`.
    pub fn path_in(&self, root: &Path) -> Option<std::path::PathBuf> {
        use std::os::fd::AsRawFd;
        let link = std::fs::read_link(format!("/proc/self/fd/{}", self.0.as_raw_fd())).ok()?;
        let root = std::fs::canonicalize(root).ok()?;
        let rel = link.strip_prefix(&root).ok()?;
        Some(Path::new("/").join(rel))
    }

    /// The first `len` bytes (fewer for a shorter file; none on a read error).
    pub fn head(&self, len: usize) -> Vec<u8> {
        let mut head = vec![0u8; len];
        let n = self.read_full_at(&mut head, 0).unwrap_or(0);
        head.truncate(n);
        head
    }
}

pub fn open_ro(path: &Path) -> std::result::Result<OpenFile, Errno> {
    rustix::fs::open(path, OFlags::RDONLY | OFlags::CLOEXEC, Mode::empty()).map(OpenFile)
}

fn open_for_reading(path: &Path) -> Result<OpenFile> {
    open_ro(path).map_err(|errno| Error::Open {
        path: path.to_path_buf(),
        errno,
    })
}

/// Opens `p` (absolute as seen from inside `root`) for reading, resolving
/// every symlink inside `root`, so `/sbin/init -> /lib/systemd/systemd` is
/// found on the volume, not on the root we run from.
pub fn open_in_root(root: &Path, p: &Path) -> std::result::Result<OpenFile, Errno> {
    let rel = p.strip_prefix("/").unwrap_or(p);
    let flags = OFlags::RDONLY | OFlags::CLOEXEC;
    let dir = rustix::fs::open(
        root,
        OFlags::PATH | OFlags::DIRECTORY | OFlags::CLOEXEC,
        Mode::empty(),
    )?;
    match rustix::fs::openat2(&dir, rel, flags, Mode::empty(), ResolveFlags::IN_ROOT) {
        // Kernels before 5.6 have no openat2: use the plain path.
        Err(Errno::NOSYS) => rustix::fs::open(root.join(rel), flags, Mode::empty()),
        r => r,
    }
    .map(OpenFile)
}

/// Opens the directory `p` (absolute as seen from inside `root`, symlinks
/// resolved inside `root`) as a path handle, to learn where it is.
pub fn open_dir_in_root(root: &Path, p: &Path) -> std::result::Result<OpenFile, Errno> {
    let rel = p.strip_prefix("/").unwrap_or(p);
    let flags = OFlags::PATH | OFlags::DIRECTORY | OFlags::CLOEXEC;
    let dir = rustix::fs::open(root, flags, Mode::empty())?;
    let rel = if rel.as_os_str().is_empty() {
        Path::new(".")
    } else {
        rel
    };
    match rustix::fs::openat2(&dir, rel, flags, Mode::empty(), ResolveFlags::IN_ROOT) {
        Err(Errno::NOSYS) => rustix::fs::open(root.join(rel), flags, Mode::empty()),
        r => r,
    }
    .map(OpenFile)
}

/// Opens `p` (absolute as seen from inside `root`) for reading, refusing a
/// final symlink (ELOOP) and any path that leaves `root` through a symlink
/// or `..` (EXDEV): what is opened is a file of the volume.
pub fn open_beneath(root: &Path, p: &Path) -> std::result::Result<OpenFile, Errno> {
    let rel = p.strip_prefix("/").unwrap_or(p);
    let flags = OFlags::RDONLY | OFlags::NOFOLLOW | OFlags::CLOEXEC;
    let dir = rustix::fs::open(
        root,
        OFlags::PATH | OFlags::DIRECTORY | OFlags::CLOEXEC,
        Mode::empty(),
    )?;
    let how = ResolveFlags::BENEATH | ResolveFlags::NO_MAGICLINKS;
    match rustix::fs::openat2(&dir, rel, flags, Mode::empty(), how) {
        // Kernels before 5.6: open the plain path, then see where it is.
        Err(Errno::NOSYS) => {
            let f = OpenFile(rustix::fs::open(root.join(rel), flags, Mode::empty())?);
            match f.path_in(root) {
                Some(_) => Ok(f),
                None => Err(Errno::XDEV),
            }
        }
        r => r.map(OpenFile),
    }
}

/// Reads the given (offset, length) regions of a file or device into a
/// zeroed buffer of `total` bytes, each at its own offset; what lies past the
/// end of the device stays zero. Stops early, after any region, once
/// `enough(buffer)` says so.
pub fn read_regions(
    path: &Path,
    regions: &[(u64, usize)],
    total: usize,
    enough: impl Fn(&[u8]) -> bool,
) -> Result<Vec<u8>> {
    let f = open_for_reading(path)?;
    let mut buf = vec![0u8; total];
    for (off, len) in regions {
        let start = usize::try_from(*off).unwrap_or(usize::MAX);
        if let Some(region) = buf.get_mut(start..start.saturating_add(*len).min(total)) {
            f.read_full_at(region, *off).map_err(|errno| Error::Read {
                path: path.to_path_buf(),
                errno,
            })?;
        }
        if enough(&buf) {
            break;
        }
    }
    Ok(buf)
}

/// Reads `len` bytes at `offset` (fewer at the end of the device).
pub fn read_at(path: &Path, offset: u64, len: usize) -> Result<Vec<u8>> {
    let f = open_for_reading(path)?;
    let mut buf = vec![0u8; len];
    let got = f
        .read_full_at(&mut buf, offset)
        .map_err(|errno| Error::Read {
            path: path.to_path_buf(),
            errno,
        })?;
    buf.truncate(got);
    Ok(buf)
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
