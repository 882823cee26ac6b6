//! The one place that makes syscalls. Each wrapper turns an errno into an
//! [`Error`] naming what was attempted. The operations whose order matters
//! (mounts, mkdir, pivot) sit behind the [`Sys`] trait so that a recording
//! fake can unit-test the switch sequence without root.

use std::ffi::CString;
use std::path::Path;

use rustix::fs::{FileType, Mode, OFlags};
use rustix::io::Errno;
use rustix::mount::{MountFlags, MountPropagationFlags, UnmountFlags};

use crate::error::{Error, Result};

pub fn path_str(p: &Path) -> String {
    p.display().to_string()
}

/// Operations of the mount/switch stages.
pub trait Sys {
    fn mount(
        &mut self,
        source: &str,
        target: &Path,
        fstype: &str,
        flags: MountFlags,
        data: &str,
    ) -> Result<()>;
    /// Unmounts `target`; a busy mount is detached lazily.
    fn unmount(&mut self, target: &Path) -> Result<()>;
    /// Makes the whole mount tree private, so that pivot_root is allowed.
    fn make_private(&mut self) -> Result<()>;
    /// Creates a directory (mode 0755); an existing directory is fine.
    fn mkdir(&mut self, path: &Path) -> Result<()>;
    fn pivot_root(&mut self, new_root: &Path, put_old: &Path) -> Result<()>;
    fn chdir(&mut self, path: &Path) -> Result<()>;
    fn move_mount(&mut self, from: &Path, to: &Path) -> Result<()>;
    fn chroot(&mut self, path: &Path) -> Result<()>;
    /// Whether `/` is a ramfs or tmpfs (an initramfs) — checked before deleting anything.
    fn root_is_ram(&mut self) -> bool;
    /// Deletes the initramfs contents under `/` without crossing into other
    /// mounts; returns (entries removed, bytes freed).
    fn free_initramfs(&mut self) -> (usize, u64);
}

/// The real system.
pub struct RealSys;

impl Sys for RealSys {
    fn mount(
        &mut self,
        source: &str,
        target: &Path,
        fstype: &str,
        flags: MountFlags,
        data: &str,
    ) -> Result<()> {
        let data_c = CString::new(data).map_err(|_| Error::Mount {
            source: source.into(),
            target: path_str(target),
            fstype: fstype.into(),
            flags: data.into(),
            errno: Errno::INVAL,
        })?;
        let data_arg = if data.is_empty() {
            None
        } else {
            Some(data_c.as_c_str())
        };
        rustix::mount::mount(source, target, fstype, flags, data_arg).map_err(|errno| {
            Error::Mount {
                source: source.into(),
                target: path_str(target),
                fstype: fstype.into(),
                flags: crate::mountopts::MountOpts {
                    flags,
                    data: data.to_string(),
                }
                .describe(),
                errno,
            }
        })
    }

    fn unmount(&mut self, target: &Path) -> Result<()> {
        match rustix::mount::unmount(target, UnmountFlags::empty()) {
            Err(Errno::BUSY) => rustix::mount::unmount(target, UnmountFlags::DETACH),
            r => r,
        }
        .map_err(|errno| Error::Unmount {
            target: path_str(target),
            errno,
        })
    }

    fn make_private(&mut self) -> Result<()> {
        rustix::mount::mount_change(
            "/",
            MountPropagationFlags::PRIVATE | MountPropagationFlags::REC,
        )
        .map_err(|errno| Error::MakePrivate { errno })
    }

    fn mkdir(&mut self, path: &Path) -> Result<()> {
        match rustix::fs::mkdir(path, Mode::from_raw_mode(0o755)) {
            Ok(()) => Ok(()),
            Err(Errno::EXIST) if is_dir(path) => Ok(()),
            Err(errno) => Err(Error::Mkdir {
                path: path_str(path),
                errno,
            }),
        }
    }

    fn pivot_root(&mut self, new_root: &Path, put_old: &Path) -> Result<()> {
        rustix::process::pivot_root(new_root, put_old).map_err(|errno| Error::PivotRoot {
            new_root: path_str(new_root),
            put_old: path_str(put_old),
            errno,
        })
    }

    fn chdir(&mut self, path: &Path) -> Result<()> {
        rustix::process::chdir(path).map_err(|errno| Error::Chdir {
            path: path_str(path),
            errno,
        })
    }

    fn move_mount(&mut self, from: &Path, to: &Path) -> Result<()> {
        rustix::mount::mount_move(from, to).map_err(|errno| Error::MoveMount {
            from: path_str(from),
            to: path_str(to),
            errno,
        })
    }

    fn chroot(&mut self, path: &Path) -> Result<()> {
        rustix::process::chroot(path).map_err(|errno| Error::Chroot {
            path: path_str(path),
            errno,
        })
    }

    fn root_is_ram(&mut self) -> bool {
        const RAMFS_MAGIC: u64 = 0x8584_58f6;
        const TMPFS_MAGIC: u64 = 0x0102_1994;
        rustix::fs::statfs("/").is_ok_and(|st| {
            let t = st.f_type as u64;
            t == RAMFS_MAGIC || t == TMPFS_MAGIC
        })
    }

    fn free_initramfs(&mut self) -> (usize, u64) {
        let mut counts = (0, 0);
        match rustix::fs::open(
            "/",
            OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC,
            Mode::empty(),
        ) {
            Ok(root) => match rustix::fs::fstat(&root) {
                Ok(st) => remove_contents(&root, st.st_dev, &mut counts),
                Err(e) => log::warn!("cannot stat /: {}", crate::error::ErrnoText(e)),
            },
            Err(e) => log::warn!("cannot open /: {}", crate::error::ErrnoText(e)),
        }
        counts
    }
}

/// Removes everything in `dir` that lives on device `dev`; directories on
/// other devices (mount points: the new root, /dev, /proc, ...) are left alone.
/// Best effort: what cannot be removed is logged and skipped.
fn remove_contents(dir: &std::os::fd::OwnedFd, dev: u64, counts: &mut (usize, u64)) {
    use rustix::fs::AtFlags;
    let names: Vec<CString> = match rustix::fs::Dir::read_from(dir) {
        Ok(d) => d
            .filter_map(|e| e.ok())
            .map(|e| e.file_name().to_owned())
            .filter(|n| n.as_bytes() != b"." && n.as_bytes() != b"..")
            .collect(),
        Err(e) => {
            log::warn!(
                "cannot list a directory of the initramfs: {}",
                crate::error::ErrnoText(e)
            );
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
                crate::error::ErrnoText(e)
            ),
        }
    }
}

pub fn is_dir(path: &Path) -> bool {
    rustix::fs::stat(path)
        .map(|st| FileType::from_raw_mode(st.st_mode) == FileType::Directory)
        .unwrap_or(false)
}

/// What is at `path`: `None` if nothing, else (file type, rdev).
pub fn node_at(path: &Path) -> Option<(FileType, u64)> {
    rustix::fs::lstat(path)
        .ok()
        .map(|st| (FileType::from_raw_mode(st.st_mode), st.st_rdev))
}

pub fn mknod_block(path: &Path, major: u32, minor: u32) -> Result<()> {
    rustix::fs::mknodat(
        rustix::fs::CWD,
        path,
        FileType::BlockDevice,
        Mode::from_raw_mode(0o600),
        rustix::fs::makedev(major, minor),
    )
    .map_err(|errno| Error::Mknod {
        path: path_str(path),
        major,
        minor,
        errno,
    })
}

/// Fills `buf` from `offset` on; returns how many bytes the file had there.
fn pread_full(
    fd: &std::os::fd::OwnedFd,
    path: &Path,
    buf: &mut [u8],
    offset: u64,
) -> Result<usize> {
    let mut got = 0;
    while got < buf.len() {
        match rustix::io::pread(fd, &mut buf[got..], offset + got as u64) {
            Ok(0) => break,
            Ok(n) => got += n,
            Err(Errno::INTR) => continue,
            Err(errno) => {
                return Err(Error::Read {
                    path: path_str(path),
                    errno,
                });
            }
        }
    }
    Ok(got)
}

fn open_ro(path: &Path) -> Result<std::os::fd::OwnedFd> {
    use rustix::fs::open;
    open(path, OFlags::RDONLY | OFlags::CLOEXEC, Mode::empty()).map_err(|errno| Error::Open {
        path: path_str(path),
        errno,
    })
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
    let fd = open_ro(path)?;
    let mut buf = vec![0u8; total];
    for (off, len) in regions {
        let start = usize::try_from(*off).unwrap_or(usize::MAX);
        if let Some(region) = buf.get_mut(start..start.saturating_add(*len).min(total)) {
            pread_full(&fd, path, region, *off)?;
        }
        if enough(&buf) {
            break;
        }
    }
    Ok(buf)
}

/// Reads `len` bytes at `offset` (fewer at the end of the device).
pub fn read_at(path: &Path, offset: u64, len: usize) -> Result<Vec<u8>> {
    let fd = open_ro(path)?;
    let mut buf = vec![0u8; len];
    let got = pread_full(&fd, path, &mut buf, offset)?;
    buf.truncate(got);
    Ok(buf)
}

/// Whether `path` is the root of a mount (its device differs from its parent's,
/// or it is the same inode as its parent, as for `/`).
pub fn is_mount_point(path: &Path) -> bool {
    let Ok(st) = rustix::fs::stat(path) else {
        return false;
    };
    let Ok(parent) = rustix::fs::stat(path.join("..")) else {
        return false;
    };
    st.st_dev != parent.st_dev || st.st_ino == parent.st_ino
}

/// Seconds as a float since an arbitrary clock's zero.
pub fn clock_ms(id: rustix::time::ClockId) -> u64 {
    let t = rustix::time::clock_gettime(id);
    (t.tv_sec as u64) * 1000 + (t.tv_nsec as u64) / 1_000_000
}

/// Milliseconds since boot (CLOCK_BOOTTIME), for the summary line.
pub fn uptime_ms() -> u64 {
    clock_ms(rustix::time::ClockId::Boottime)
}

/// CPU time this process has used, in microseconds (/proc/self/schedstat).
pub fn cpu_us() -> Option<u64> {
    let text = std::fs::read_to_string("/proc/self/schedstat").ok()?;
    let ns: u64 = text.split_whitespace().next()?.parse().ok()?;
    Some(ns / 1000)
}

/// Peak resident memory (VmHWM) in KiB.
pub fn vm_hwm_kib() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

/// Reaps every exited child without blocking; returns how many.
pub fn reap_children() -> usize {
    let mut n = 0;
    while let Ok(Some(_)) = rustix::process::wait(rustix::process::WaitOptions::NOHANG) {
        n += 1;
    }
    n
}

/// The last resort: PID 1 must not exit, so sleep forever, reaping orphans.
pub fn wait_forever() -> ! {
    loop {
        match rustix::process::wait(rustix::process::WaitOptions::empty()) {
            Ok(_) => {}
            Err(_) => rustix::event::pause(),
        }
    }
}

/// The errno a libc call just set.
fn last_errno() -> Errno {
    Errno::from_raw_os_error(std::io::Error::last_os_error().raw_os_error().unwrap_or(0))
}

/// A NUL-terminated copy of `s`, or an error naming it.
pub fn cstring(what: &str, s: &[u8]) -> std::result::Result<CString, String> {
    CString::new(s).map_err(|_| format!("{what} contains a NUL byte"))
}

/// A NULL-terminated array of pointers into `items` (which must outlive it).
fn ptr_array(items: &[CString]) -> Vec<*const libc::c_char> {
    items
        .iter()
        .map(|c| c.as_ptr())
        .chain(std::iter::once(std::ptr::null()))
        .collect()
}

/// How a spawned child is set up between fork and exec.
pub struct SpawnOpts<'a> {
    pub cwd: &'a std::ffi::CStr,
    /// Its own process group (so the whole group can be signalled).
    pub new_group: bool,
    /// stdin from /dev/null; stdout/stderr are inherited (the console).
    pub stdin_null: bool,
}

/// Forks and execs `path` with exactly `argv` and `envp`. Returns the child's pid.
/// Everything is prepared before fork; the child makes only raw syscalls.
pub fn spawn(
    path: &std::ffi::CStr,
    argv: &[CString],
    envp: &[CString],
    opts: &SpawnOpts,
) -> std::result::Result<rustix::process::Pid, Errno> {
    let argv_p = ptr_array(argv);
    let envp_p = ptr_array(envp);
    let devnull = c"/dev/null";
    // SAFETY: we are single-threaded, so the child is a faithful copy. Between
    // fork and execve/_exit the child only calls async-signal-safe functions
    // (setpgid, chdir, open, dup2, close, execve, _exit) on data prepared
    // before the fork, whose pointers stay valid in the child's copy.
    let pid = unsafe { libc::fork() };
    if pid == 0 {
        // SAFETY: see above; every pointer is a live NUL-terminated C string
        // or a NULL-terminated pointer array built from them.
        unsafe {
            if opts.new_group {
                libc::setpgid(0, 0);
            }
            if libc::chdir(opts.cwd.as_ptr()) != 0 {
                libc::_exit(126);
            }
            if opts.stdin_null {
                let fd = libc::open(devnull.as_ptr(), libc::O_RDONLY);
                if fd > 0 {
                    libc::dup2(fd, 0);
                    libc::close(fd);
                }
            }
            libc::execve(path.as_ptr(), argv_p.as_ptr(), envp_p.as_ptr());
            libc::_exit(127);
        }
    }
    if pid < 0 {
        return Err(last_errno());
    }
    rustix::process::Pid::from_raw(pid).ok_or(Errno::INVAL)
}

/// Replaces this process with `path`. Returns only on failure.
pub fn execve(path: &std::ffi::CStr, argv: &[CString], envp: &[CString]) -> Errno {
    let argv_p = ptr_array(argv);
    let envp_p = ptr_array(envp);
    // SAFETY: path, argv and envp are NUL-terminated strings and NULL-terminated
    // pointer arrays that live until execve returns (it only returns on error).
    unsafe { libc::execve(path.as_ptr(), argv_p.as_ptr(), envp_p.as_ptr()) };
    last_errno()
}

/// Waits for one child; returns its wait status.
pub fn wait_child(
    pid: rustix::process::Pid,
) -> std::result::Result<rustix::process::WaitStatus, Errno> {
    loop {
        match rustix::process::waitpid(Some(pid), rustix::process::WaitOptions::empty()) {
            Ok(Some((_, st))) => return Ok(st),
            Ok(None) => continue,
            Err(Errno::INTR) => continue,
            Err(e) => return Err(e),
        }
    }
}

/// Waits for child `pid` for at most `timeout`; `None` when it is still running.
/// Sleeps in poll() on a pidfd, so no time is spent while waiting.
pub fn wait_child_for(
    pid: rustix::process::Pid,
    timeout: std::time::Duration,
) -> std::result::Result<Option<rustix::process::WaitStatus>, Errno> {
    use rustix::event::{PollFd, PollFlags, Timespec};
    let pidfd = match rustix::process::pidfd_open(pid, rustix::process::PidfdFlags::empty()) {
        Ok(fd) => fd,
        // Kernels before 5.3: no timed wait; wait as long as it takes.
        Err(Errno::NOSYS) => return wait_child(pid).map(Some),
        Err(e) => return Err(e),
    };
    let deadline = std::time::Instant::now() + timeout;
    loop {
        let left = deadline.saturating_duration_since(std::time::Instant::now());
        let ts = Timespec {
            tv_sec: left.as_secs() as _,
            tv_nsec: left.subsec_nanos() as _,
        };
        let mut fds = [PollFd::new(&pidfd, PollFlags::IN)];
        match rustix::event::poll(&mut fds, Some(&ts)) {
            Ok(0) => return Ok(None),
            Ok(_) => return wait_child(pid).map(Some),
            Err(Errno::INTR) => continue,
            Err(e) => return Err(e),
        }
    }
}

/// Kills process group `pgid`: SIGTERM, then SIGKILL after `grace`, and reaps
/// every member that became our child. Returns when the group is gone (or
/// after a bounded wait).
pub fn kill_group(pgid: rustix::process::Pid, grace: std::time::Duration) {
    use rustix::process::{
        Signal, WaitOptions, kill_process_group, test_kill_process_group, waitpgid,
    };
    let _ = kill_process_group(pgid, Signal::TERM);
    let deadline = std::time::Instant::now() + grace;
    let gone = || test_kill_process_group(pgid).is_err();
    while std::time::Instant::now() < deadline && !gone() {
        // Reap what died; a short nap between checks (bounded by `grace`).
        while let Ok(Some(_)) = waitpgid(pgid, WaitOptions::NOHANG) {}
        let _ = rustix::thread::nanosleep(&rustix::event::Timespec {
            tv_sec: 0,
            tv_nsec: 20_000_000,
        });
    }
    let _ = kill_process_group(pgid, Signal::KILL);
    for _ in 0..250 {
        while let Ok(Some(_)) = waitpgid(pgid, WaitOptions::NOHANG) {}
        if gone() {
            break;
        }
        let _ = rustix::thread::nanosleep(&rustix::event::Timespec {
            tv_sec: 0,
            tv_nsec: 20_000_000,
        });
    }
    while let Ok(Some(_)) = waitpgid(pgid, WaitOptions::NOHANG) {}
}

/// Runs `sh` on the console (our stdin/stdout/stderr) and waits for it.
pub fn run_console_shell(sh: &Path) -> std::result::Result<rustix::process::WaitStatus, Errno> {
    use std::os::unix::ffi::OsStrExt;
    let path = CString::new(sh.as_os_str().as_bytes()).map_err(|_| Errno::INVAL)?;
    let opts = SpawnOpts {
        cwd: c"/",
        new_group: true,
        stdin_null: false,
    };
    let pid = spawn(&path, std::slice::from_ref(&path), &environ(), &opts)?;
    wait_child(pid)
}

/// This process's environment as `KEY=VALUE` C strings.
pub fn environ() -> Vec<CString> {
    use std::os::unix::ffi::OsStrExt;
    std::env::vars_os()
        .filter_map(|(k, v)| {
            let mut kv = k.as_bytes().to_vec();
            kv.push(b'=');
            kv.extend_from_slice(v.as_bytes());
            CString::new(kv).ok()
        })
        .collect()
}
