//! The boundary to the system: the only module that names rustix or libc,
//! and it imports nothing else of the crate. Everything the boot does to or
//! reads from the machine goes through the [`Sys`] trait, grouped by what
//! it touches:
//!
//! - [`Files`]: reads, opens (inside a root), stat, sysfs and /proc.
//! - [`Mounts`]: mount, unmount, mkdir, mknod, pivot_root, move, chroot.
//! - [`Procs`]: spawn, wait, kill, exec, halt: the life of PID 1 and its children.
//! - [`Kernel`]: modules, the log device, the console, uname, NVMe Identify.
//! - [`Events`]: the uevent subscription and the signals PID 1 waits for.
//!
//! [`RealSys`] is the machine; [`fake::FakeSys`] (unit tests) records every
//! change as an [`Op`], can fail any call with a chosen errno, and serves
//! files from a sandbox directory, so the whole boot runs on it without root.
//! A failed call is a [`SysError`]: the [`Op`] with its arguments and the
//! errno, whose `Display` is the sentence a log line carries.

mod error;
mod files;
mod mountflags;
pub mod process;
mod real;
mod signals;
mod uevent_socket;

#[cfg(test)]
pub mod fake;

use std::ffi::{CStr, CString, OsStr};
use std::path::{Path, PathBuf};
use std::time::Duration;

pub use error::{ErrnoText, Op, SysError};
pub use files::{FileInfo, OpenFile, Resolve};
pub use mountflags::{FLAG_CLEAR, FLAG_SET, describe as describe_flags};
pub use process::{Child, Exit, Program, SpawnOpts, Supervised};
pub use real::RealSys;
pub use rustix::fs::FileType;
pub use rustix::io::Errno;
pub use rustix::mount::MountFlags;
pub use rustix::process::Pid;
pub use signals::Sig;
pub use uevent_socket::{Ready, Recv};

/// The API filesystems that move with the root when they are mounted.
pub const API_MOUNTS: [&str; 4] = ["/dev", "/proc", "/sys", "/run"];

/// How a reboot-type action ends the machine.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Halt {
    Reboot,
    PowerOff,
    /// Stop the machine without powering it off (`halt`).
    Halt,
    /// Boot the kernel loaded by `kexec_load` (the `kexec` verb of systemd's
    /// shutdown); fails (EINVAL) when none is loaded.
    Kexec,
}

impl Halt {
    /// Its name as the code spells it (`Reboot`), for what is written out
    /// (the binary is built without `Debug` formatting).
    pub fn name(self) -> &'static str {
        match self {
            Halt::Reboot => "Reboot",
            Halt::PowerOff => "PowerOff",
            Halt::Halt => "Halt",
            Halt::Kexec => "Kexec",
        }
    }
}

/// How an unmount went.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Unmounted {
    Clean,
    /// The mount was busy and was detached lazily (MNT_DETACH).
    Detached,
}

/// How PID 1's life ended. The machine never returns one (an exec replaced
/// the process, a halt stopped the machine, the wait lasts forever); the
/// fake does, so that a test sees how a boot ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum End {
    /// The program PID 1 became (its argv[0]).
    Exec(PathBuf),
    Halt(Halt),
    /// The machine rebooted into the kernel `kexec_file_load` loaded.
    Kexec,
    /// Nothing left to run: PID 1 waits, reaping orphans.
    Forever,
}

/// The running kernel's `uname -r` and `uname -m`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Uname {
    pub release: String,
    pub machine: String,
}

/// Reading the machine: files, directories, sysfs, /proc.
pub trait Files {
    fn read(&self, path: &Path) -> Result<Vec<u8>, Errno>;
    /// The names in a directory (those that are not UTF-8 are left out), unsorted.
    fn read_dir(&self, path: &Path) -> Result<Vec<String>, Errno>;
    /// The path with every symlink and `..` resolved.
    fn canonicalize(&self, path: &Path) -> Option<PathBuf>;
    fn stat(&self, path: &Path) -> Result<FileInfo, Errno>;
    /// `stat` without following a final symlink.
    fn lstat(&self, path: &Path) -> Result<FileInfo, Errno>;
    fn open_ro(&self, path: &Path) -> Result<OpenFile, Errno>;
    /// Opens `p`, absolute as seen from inside `root`, resolved as `how` says.
    fn open_in(&self, root: &Path, p: &Path, how: Resolve) -> Result<OpenFile, Errno>;
    /// Where an open file is, after every symlink, as a path of this process.
    fn locate(&self, file: &OpenFile) -> Option<PathBuf>;
    /// Whether this process may write into `dir`.
    fn writable(&self, dir: &Path) -> bool;
    /// Whether `/` is a ramfs or tmpfs (an initramfs; a machine image boots from a disk).
    fn root_is_ram(&self) -> bool;
    /// Whether the open directory `dir` (a path handle will do) has no entries.
    fn is_empty_dir(&self, dir: &OpenFile) -> Result<bool, Errno>;
    fn write(&self, path: &Path, data: &[u8]) -> Result<(), Errno>;
    /// Creates or truncates `path` (mode 0644; a symlink there is not
    /// followed: ELOOP), writes all of `data` and `fsync`s it.
    fn write_synced(&self, path: &Path, data: &[u8]) -> Result<(), SysError>;
    /// Renames `from` to `to` on one filesystem (`to`, if there, is replaced
    /// in one step).
    fn rename(&self, from: &Path, to: &Path) -> Result<(), SysError>;
    /// `fsync` of a directory: the entries made, renamed or removed in it
    /// are on the disk.
    fn sync_dir(&self, dir: &Path) -> Result<(), SysError>;
    /// Removes a file (`unlink`).
    fn remove_file(&self, path: &Path) -> Result<(), SysError>;
    /// The flags of the mount `path` is on (`statvfs`): read-only, nosuid,
    /// nodev, noexec, sync and the atime flags, as mount flags
    /// that a remount can be given to put them back.
    fn mount_flags(&self, path: &Path) -> Result<MountFlags, SysError>;
    /// Creates `path` (or empties it) with exactly `mode` and writes `data`
    /// into it; a symlink at `path` is not followed.
    fn create_file(&self, path: &Path, data: &[u8], mode: u32) -> Result<(), SysError>;

    fn read_text(&self, path: &Path) -> Result<String, Errno> {
        String::from_utf8(self.read(path)?).map_err(|_| Errno::ILSEQ)
    }

    /// The kernel command line, `/proc/cmdline` (the machine reads it once:
    /// it does not change while the kernel runs).
    fn cmdline(&self) -> Result<Vec<u8>, Errno> {
        self.read(Path::new("/proc/cmdline"))
    }

    /// Whether `path` is a directory (following symlinks).
    fn is_dir(&self, path: &Path) -> bool {
        self.stat(path)
            .is_ok_and(|st| st.kind == FileType::Directory)
    }

    /// Whether something is at `path` (following symlinks).
    fn exists(&self, path: &Path) -> bool {
        self.stat(path).is_ok()
    }

    /// Whether `path` is the root of a mount (its device differs from its
    /// parent's, or it is the same inode as its parent, as for `/`).
    fn is_mount_point(&self, path: &Path) -> bool {
        let (Ok(st), Ok(parent)) = (self.stat(path), self.stat(&path.join(".."))) else {
            return false;
        };
        st.dev != parent.dev || st.ino == parent.ino
    }

    /// What is at `path`, a directory right under `/` where an API
    /// filesystem goes (`/proc`, `/run`): `Some(true)` a mount point (as
    /// [`Files::is_mount_point`] says), `Some(false)` a directory that is
    /// none, `None` neither. `root` is `/`'s `stat`, which the machine
    /// compares a directory's with instead of looking at `path/..` again.
    fn api_dir(&self, path: &Path, root: Option<&FileInfo>) -> Option<bool> {
        let _ = root;
        if self.is_mount_point(path) {
            Some(true)
        } else {
            self.is_dir(path).then_some(false)
        }
    }

    /// Where an open file is, as a path inside `root` (`/sbin/init`), after
    /// every symlink; `None` when that cannot be told or it is outside `root`.
    fn path_in(&self, file: &OpenFile, root: &Path) -> Option<PathBuf> {
        let at = self.locate(file)?;
        let root = self.canonicalize(root)?;
        let rel = at.strip_prefix(&root).ok()?;
        Some(Path::new("/").join(rel))
    }

    /// Reads `len` bytes at `offset` (fewer at the end of the device).
    fn read_at(&self, path: &Path, offset: u64, len: usize) -> Result<Vec<u8>, SysError> {
        let f = self
            .open_ro(path)
            .map_err(|e| Op::Open(path.into()).failed(e))?;
        let mut buf = vec![0u8; len];
        let got = f
            .read_full_at(&mut buf, offset)
            .map_err(|e| Op::Read(path.into()).failed(e))?;
        buf.truncate(got);
        Ok(buf)
    }
}

/// Changing the mount tree and the root.
pub trait Mounts {
    fn mount(
        &self,
        source: &Path,
        target: &Path,
        fstype: &str,
        flags: MountFlags,
        data: &str,
    ) -> Result<(), SysError>;
    /// Changes the flags and options of the mount at `target` (MS_REMOUNT).
    fn remount(&self, target: &Path, flags: MountFlags, data: &str) -> Result<(), SysError>;
    /// Unmounts `target`; a busy mount is detached lazily, and says so.
    fn unmount(&self, target: &Path) -> Result<Unmounted, SysError>;
    /// Unmounts `target`, never lazily: a busy mount stays mounted (EBUSY),
    /// so that it can still be remounted read-only.
    fn try_unmount(&self, target: &Path) -> Result<(), SysError>;
    /// Makes the whole mount tree private, so that pivot_root is allowed.
    fn make_private(&self) -> Result<(), SysError>;
    /// Creates a directory (mode 0755); an existing directory is fine.
    fn mkdir(&self, path: &Path) -> Result<(), SysError>;
    /// Creates the directory `name` (one component, mode 0755) in the open
    /// directory `parent` (`mkdirat`), not by a path that could be resolved
    /// again; an existing entry of that name is EEXIST, whatever it is.
    fn mkdir_at(&self, parent: &OpenFile, name: &OsStr) -> Result<(), SysError>;
    /// [`Mounts::mount`] onto exactly the directory `target` is open on,
    /// whatever its path would resolve to now: mount(2) is given
    /// `/proc/self/fd/N`, a magic link the kernel follows to that directory
    /// (with no link or `..` of its path walked again). The error names
    /// where the directory is.
    fn mount_on(
        &self,
        source: &Path,
        target: &OpenFile,
        fstype: &str,
        flags: MountFlags,
        data: &str,
    ) -> Result<(), SysError>;
    /// [`Mounts::remount`] of the mount whose root `target` is open on (as
    /// a lookup that crossed into that mount opened it).
    fn remount_on(&self, target: &OpenFile, flags: MountFlags, data: &str) -> Result<(), SysError>;
    /// Removes an empty directory (`rmdir`).
    fn remove_dir(&self, path: &Path) -> Result<(), SysError>;
    /// Creates a block device node (mode 0600).
    fn mknod_block(&self, path: &Path, major: u32, minor: u32) -> Result<(), SysError>;
    fn pivot_root(&self, new_root: &Path, put_old: &Path) -> Result<(), SysError>;
    fn chdir(&self, path: &Path) -> Result<(), SysError>;
    fn move_mount(&self, from: &Path, to: &Path) -> Result<(), SysError>;
    fn chroot(&self, path: &Path) -> Result<(), SysError>;
    /// Deletes the initramfs contents under `/` without crossing into other
    /// mounts; returns (entries removed, bytes freed).
    fn free_initramfs(&self) -> (usize, u64);
}

/// Processes: the children PID 1 starts, and what PID 1 itself becomes.
pub trait Procs {
    /// Forks (or clones into a new PID namespace) and execs `prog` with
    /// exactly `argv` and `envp`; the child starts clean (default signal
    /// dispositions, an empty mask, no descriptor but 0-2 and `opts.fd3`).
    fn spawn(
        &self,
        prog: Program,
        argv: &[CString],
        envp: &[CString],
        opts: &SpawnOpts,
    ) -> Result<Child, Errno>;
    /// [`Procs::spawn`] with the child's stdout and stderr on a pipe that
    /// this process reads: `line` gets each line of its output as it comes
    /// (a `\n` or `\r` ends one; not UTF-8: decoded lossily). Returns how
    /// the child ended, once its output is closed and it has exited.
    fn run_logged(
        &self,
        prog: Program,
        argv: &[CString],
        envp: &[CString],
        opts: &SpawnOpts,
        line: &mut dyn FnMut(&str),
    ) -> Result<Exit, Errno>;
    /// Waits for child `pid`, at most `timeout` (`None`: as long as it
    /// takes); `None` when it is still running.
    fn wait_child(&self, pid: Pid, timeout: Option<Duration>) -> Result<Option<Exit>, Errno>;
    /// Kills process group `pgid`: SIGTERM, SIGKILL after `grace`, reaping
    /// every member that is our child.
    fn kill_group(&self, pgid: Pid, grace: Duration);
    /// Reaps every exited child without blocking; returns how many.
    fn reap_children(&self) -> usize;
    /// What every exec of PID 1 starts from, besides the default signal
    /// dispositions PID 1 keeps from its start: an empty signal mask, only
    /// fds 0-2 (the console) survive it, and Ctrl-Alt-Del is back to the
    /// kernel's default for the next init.
    fn clean_for_exec(&self);
    /// Replaces PID 1 with `prog`. Returns only on failure (or on the fake).
    fn exec(&self, prog: Program, argv: &[CString], envp: &[CString]) -> Result<End, Errno>;
    /// `sync`, then reboot or power off. Returns only on failure (or on the fake).
    fn halt(&self, how: Halt) -> Result<End, SysError>;
    /// PID 1's wait, wherever it waits but for the volume (the rescue
    /// shell; the last resort, `child` `None`): until `child` ends (`None`:
    /// for good), reaping every child as it exits, orphans included, and
    /// taking PID 1's signals: Ctrl-Alt-Del and SIGPWR end it as requests,
    /// SIGTERM is logged and changes nothing. The signals are blocked only
    /// while it waits, so no exec inherits them blocked.
    fn supervise(&self, child: Option<Pid>) -> Supervised;
    /// `sync`, then `reboot(LINUX_REBOOT_CMD_KEXEC)`: the machine goes on in
    /// the kernel [`Kernel::kexec_file_load`] loaded. Returns only on failure
    /// (nothing loaded: EINVAL), or on the fake.
    fn kexec_reboot(&self) -> Result<End, SysError>;
}

/// The kernel's other services PID 1 uses.
pub trait Kernel {
    fn uname(&self) -> Uname;
    /// Loads a kernel module from an open file (`finit_module`) with its
    /// parameters (`p=v p2=v2`).
    fn load_module(&self, file: &OpenFile, params: &CStr, flags: i32) -> Result<(), Errno>;
    /// `/dev/kmsg`, opened for writing: where the log goes once it exists.
    fn open_log(&self) -> Option<std::fs::File>;
    /// When the kernel found no /dev/console on the boot root, PID 1 starts
    /// without stdin/stdout/stderr: fills fds 0..2 with the console.
    fn console_fds(&self);
    /// The 4096-byte NVMe Identify Controller data of the controller behind
    /// the block device at `dev` (an admin command, read-only; needs root).
    fn nvme_identify_controller(&self, dev: &Path) -> Result<Vec<u8>, Errno>;
    /// Whether the block device at `dev` is read-only (BLKROGET).
    fn block_read_only(&self, dev: &Path) -> Result<bool, Errno>;
    /// Makes the block device at `dev` read-only or writable (BLKROSET): no
    /// filesystem on it can write while it is read-only, whatever it would.
    fn set_block_read_only(&self, dev: &Path, ro: bool) -> Result<(), SysError>;
    /// Whether this kernel and its CPUs run the machine's 32-bit programs
    /// (compat): on arm64, AArch32 at EL0 with `CONFIG_COMPAT` (a probe of
    /// the `PER_LINUX32` personality); on x86_64, IA32 emulation built in
    /// (`/proc/sys/abi/vsyscall32`; whether the command line turns it off
    /// is for the caller to read). `false` on other machines.
    fn runs_32bit(&self) -> bool;
    /// Loads a kernel, an initramfs (`None`: without one) and its command
    /// line from open files for a later [`Procs::kexec_reboot`]
    /// (`kexec_file_load`; the kernel copies and checks them now).
    /// Whether this kernel loads kernels from files (`kexec_file_load` with
    /// `KEXEC_FILE_UNLOAD`, which unloads what is loaded: nothing at boot):
    /// ENOSYS without `CONFIG_KEXEC_FILE`, EPERM when kexec is disabled.
    fn kexec_file_probe(&self) -> Result<(), Errno>;
    fn kexec_file_load(
        &self,
        kernel: &OpenFile,
        initrd: Option<&OpenFile>,
        cmdline: &CStr,
    ) -> Result<(), Errno>;

    fn kernel_release(&self) -> String {
        self.uname().release
    }

    /// The wall clock (`CLOCK_REALTIME`), in seconds since 1970 (0 before it).
    fn now_secs(&self) -> u64 {
        let t = rustix::time::clock_gettime(rustix::time::ClockId::Realtime);
        u64::try_from(t.tv_sec).unwrap_or(0)
    }
}

/// What PID 1 waits on: kernel uevents and its signals, in one `poll`.
pub trait Events {
    /// Subscribes to kernel uevents (once: an open subscription is kept).
    fn uevents_open(&self) -> Result<(), SysError>;
    fn uevents_close(&self);
    /// `on`: PID 1's signals (child, Ctrl-Alt-Del, SIGTERM, SIGPWR) are
    /// blocked and read from a descriptor; `off` unblocks them again, so no
    /// exec inherits a blocked signal.
    fn watch_signals(&self, on: bool) -> Result<(), Errno>;
    /// Sleeps until a uevent is queued, a watched signal is pending, or
    /// `timeout` passes.
    fn wait_ready(&self, timeout: Duration) -> Result<Ready, SysError>;
    /// The next queued uevent from the kernel, without blocking (messages
    /// from anyone else are dropped here).
    fn recv_uevent<'b>(&self, buf: &'b mut [u8]) -> Result<Recv<'b>, SysError>;
    /// The next pending watched signal, without blocking.
    fn next_signal(&self) -> Option<Sig>;
}

/// Everything that touches the system.
pub trait Sys: Files + Mounts + Procs + Kernel + Events {}

impl<T: Files + Mounts + Procs + Kernel + Events> Sys for T {}

/// `dev_t` of a block device number.
pub fn makedev(major: u32, minor: u32) -> u64 {
    rustix::fs::makedev(major, minor)
}

/// (major, minor) of a `dev_t`.
pub fn split_dev(dev: u64) -> (u32, u32) {
    (rustix::fs::major(dev), rustix::fs::minor(dev))
}

/// The process's arguments from C `main`'s `argc`/`argv` (the binary's
/// entry is `no_main`; see `src/main.rs`). A null `argv` or entry ends the list.
///
/// # Safety
/// `argv` is null or points to `argc` pointers, each null or to a
/// NUL-terminated string, all valid for the lifetime of the process.
pub unsafe fn args_from_c(
    argc: std::ffi::c_int,
    argv: *const *const std::ffi::c_char,
) -> Vec<std::ffi::OsString> {
    use std::os::unix::ffi::OsStrExt;
    let n = usize::try_from(argc).unwrap_or(0);
    let mut out = Vec::with_capacity(n);
    if argv.is_null() {
        return out;
    }
    for i in 0..n {
        // SAFETY: i < argc, and the caller vouches for argc entries.
        let p = unsafe { *argv.add(i) };
        if p.is_null() {
            break;
        }
        // SAFETY: a non-null entry is a NUL-terminated string (caller).
        let arg = unsafe { std::ffi::CStr::from_ptr(p) };
        out.push(std::ffi::OsStr::from_bytes(arg.to_bytes()).to_os_string());
    }
    out
}

/// `parts` with `sep` between them, as `[S]::join` makes it: one small
/// copy of the code for every caller (std's join is large, and one per
/// element type).
pub fn joined<S: AsRef<str>>(parts: &[S], sep: &str) -> String {
    joined_iter(&mut parts.iter().map(AsRef::as_ref), sep)
}

/// The words of `parts` with `sep` between them.
pub fn joined_iter(parts: &mut dyn Iterator<Item = &str>, sep: &str) -> String {
    let mut out = String::new();
    for (i, p) in parts.enumerate() {
        if i > 0 {
            out.push_str(sep);
        }
        out.push_str(p);
    }
    out
}

/// The kernel's `isspace()` (the C locale's): what separates the words of
/// its command line. What the kernel, sysfs and the module files give is
/// ASCII, and is trimmed and split with this (no Unicode table needed).
pub fn is_space(c: char) -> bool {
    matches!(c, ' ' | '\t' | '\n' | '\x0b' | '\x0c' | '\r')
}

/// `s` without [`is_space`] at either end.
pub fn trim(s: &str) -> &str {
    s.trim_matches(is_space)
}

/// The words of `s`, separated by [`is_space`].
pub fn words(s: &str) -> impl Iterator<Item = &str> {
    s.split(is_space).filter(|w| !w.is_empty())
}

/// `s` as a log line shows it: control characters, backslashes and quotes
/// escaped as Rust writes them (`\n`, `\0`, `\u{1b}`, `\\`, `\"`), the rest
/// as it is. Like `str::escape_debug`, without its Unicode tables: other
/// unprintable characters are not escaped.
pub fn escaped(s: &str) -> Escaped<'_> {
    Escaped(s)
}

/// What [`escaped`] gives: written out by `Display`.
pub struct Escaped<'a>(&'a str);

impl std::fmt::Display for Escaped<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        use std::fmt::Write;
        for c in self.0.chars() {
            match c {
                '\t' => f.write_str("\\t")?,
                '\r' => f.write_str("\\r")?,
                '\n' => f.write_str("\\n")?,
                '\0' => f.write_str("\\0")?,
                '\\' | '"' | '\'' => {
                    f.write_char('\\')?;
                    f.write_char(c)?;
                }
                c if c.is_control() => write!(f, "\\u{{{:x}}}", u32::from(c))?,
                c => f.write_char(c)?,
            }
        }
        Ok(())
    }
}

/// Whether this process is PID 1.
pub fn is_pid1() -> bool {
    rustix::process::getpid().is_init()
}

pub fn getpid() -> i32 {
    rustix::process::getpid().as_raw_nonzero().get()
}

pub fn is_root_user() -> bool {
    rustix::process::geteuid().is_root()
}

/// A duration in whole microseconds (saturating): 64-bit, so no 128-bit
/// arithmetic or formatting comes into the binary for it.
pub fn micros(d: Duration) -> u64 {
    d.as_secs()
        .saturating_mul(1_000_000)
        .saturating_add(u64::from(d.subsec_micros()))
}

/// A duration in whole milliseconds (saturating), as [`micros`].
pub fn millis(d: Duration) -> u64 {
    d.as_secs()
        .saturating_mul(1000)
        .saturating_add(u64::from(d.subsec_millis()))
}

/// Where `needle` first starts in `hay`, as `str::find` with a string
/// finds it, without std's two-way searcher (about 1.5 KiB of code) for
/// the short texts searched here.
pub fn find(hay: &str, needle: &str) -> Option<usize> {
    let n = needle.as_bytes();
    if n.is_empty() {
        return Some(0);
    }
    hay.as_bytes().windows(n.len()).position(|w| w == n)
}

/// What follows the last `/` in `s` (all of `s` when it has none), as
/// `s.rsplit('/').next()` gives it, without std's reverse splitter.
pub fn last_name(s: &str) -> &str {
    match s.bytes().rposition(|b| b == b'/') {
        Some(i) => s.get(i + 1..).unwrap_or(""),
        None => s,
    }
}

/// `s` with every `-` made `_` (the kernel takes them alike in parameter
/// and module names), as `s.replace('-', "_")` makes it, in less code.
pub fn underscores(s: &str) -> String {
    s.chars().map(|c| if c == '-' { '_' } else { c }).collect()
}

/// Sorts `v` by `cmp`, stably (equal elements keep their order): an
/// insertion sort, for the short lists (boot entries, kernel releases, the
/// mounts at shutdown) where std's stable sort would add about 450 bytes of
/// code for each element type.
pub fn sort_small_by<T>(v: &mut [T], mut cmp: impl FnMut(&T, &T) -> std::cmp::Ordering) {
    for i in 1..v.len() {
        let mut j = i;
        while let Some(pair) = j.checked_sub(1).and_then(|k| v.get_mut(k..=j)) {
            match pair {
                [a, b] if cmp(a, b) == std::cmp::Ordering::Greater => pair.swap(0, 1),
                _ => break,
            }
            j -= 1;
        }
    }
}

/// `text` on standard output, all of it, unbuffered (a write error, such
/// as a closed pipe, is dropped: there is nowhere to report it). The
/// command-line tool's whole output is one `print`: std's `print!` would
/// bring its buffered, locked `Stdout` along.
pub fn print(text: &str) {
    let _ = files::write_all(rustix::stdio::stdout(), text.as_bytes());
}

/// `text` on standard error, as [`print`] writes it.
pub fn print_err(text: &str) {
    let _ = files::write_all(rustix::stdio::stderr(), text.as_bytes());
}

/// A point on the monotonic clock (`CLOCK_MONOTONIC`), as
/// `std::time::Instant` is, read with rustix: std's `Instant::now` unwraps
/// an `io::Error` on a failed read, and that brings `io::Error`'s `Debug`
/// and with it the Unicode tables into the binary (about 3 KiB).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Instant(Duration);

impl Instant {
    pub fn now() -> Instant {
        let t = rustix::time::clock_gettime(rustix::time::ClockId::Monotonic);
        let (secs, nanos) = (u64::try_from(t.tv_sec), u32::try_from(t.tv_nsec));
        Instant(Duration::new(secs.unwrap_or(0), nanos.unwrap_or(0)))
    }

    /// The time from `earlier` to this one, zero if `earlier` is later.
    pub fn saturating_duration_since(&self, earlier: Instant) -> Duration {
        self.0.saturating_sub(earlier.0)
    }

    /// The time since this one.
    pub fn elapsed(&self) -> Duration {
        Instant::now().saturating_duration_since(*self)
    }
}

impl std::ops::Add<Duration> for Instant {
    type Output = Instant;

    fn add(self, d: Duration) -> Instant {
        Instant(self.0.saturating_add(d))
    }
}

impl std::ops::AddAssign<Duration> for Instant {
    fn add_assign(&mut self, d: Duration) {
        *self = *self + d;
    }
}

/// Milliseconds since boot (CLOCK_BOOTTIME), for the summary line.
pub fn uptime_ms() -> u64 {
    let t = rustix::time::clock_gettime(rustix::time::ClockId::Boottime);
    (t.tv_sec as u64) * 1000 + (t.tv_nsec as u64) / 1_000_000
}

/// CPU time this process has used, in microseconds (/proc/self/schedstat).
pub fn cpu_us(fs: &dyn Files) -> Option<u64> {
    let text = fs.read_text(Path::new("/proc/self/schedstat")).ok()?;
    let ns: u64 = words(&text).next()?.parse().ok()?;
    Some(ns / 1000)
}

/// Peak resident memory (VmHWM) in KiB.
pub fn vm_hwm_kib(fs: &dyn Files) -> Option<u64> {
    let status = fs.read_text(Path::new("/proc/self/status")).ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    words(line).nth(1)?.parse().ok()
}

/// `base` + `p`, where `p` is absolute as seen from inside `base` (a volume
/// mounted at `base`). `..` components are dropped, so the result never
/// leaves `base` lexically; symlinks are resolved by [`Files::open_in`].
pub fn in_root(base: &Path, p: &Path) -> PathBuf {
    use std::path::Component;
    let mut out = base.to_path_buf();
    for c in p.components() {
        if let Component::Normal(n) = c {
            out.push(n);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn underscores_as_replace() {
        for s in ["ia32-emulation", "a-b_c--d", "", "é-ü", "plain"] {
            assert_eq!(underscores(s), s.replace('-', "_"), "{s:?}");
        }
    }

    #[test]
    fn last_name_as_rsplit_gives_it() {
        for s in [
            "/lib/modules/x/kernel/a.ko",
            "a.ko",
            "",
            "/",
            "dir/",
            "/devices/virtual/block/loop0",
        ] {
            assert_eq!(Some(last_name(s)), s.rsplit('/').next(), "{s:?}");
        }
    }

    #[test]
    fn find_finds_as_str_find() {
        for (hay, needle) in [
            ("a #b", " #"),
            ("a\t# b # c", " #"),
            ("x.ko.xz", ".ko"),
            ("x", ".ko"),
            ("", "a"),
            ("abc", ""),
            ("ababc", "abc"),
            ("No such file (os error 2)", " (os error"),
        ] {
            assert_eq!(find(hay, needle), hay.find(needle), "{hay:?} {needle:?}");
        }
    }

    #[test]
    fn sort_small_by_is_stable() {
        let mut v = vec![(3, 'a'), (1, 'b'), (3, 'c'), (2, 'd'), (1, 'e'), (0, 'f')];
        let mut want = v.clone();
        want.sort_by_key(|p| p.0);
        sort_small_by(&mut v, |a, b| a.0.cmp(&b.0));
        assert_eq!(v, want);
        let mut empty: Vec<u8> = Vec::new();
        sort_small_by(&mut empty, |a, b| a.cmp(b));
        assert!(empty.is_empty());
    }

    #[test]
    fn instant_measures_a_sleep_as_std_does() {
        // The same clock (CLOCK_MONOTONIC) as std's: ours, started between
        // two std readings and read between two more, lies between them,
        // however long the machine keeps this thread waiting.
        let outer = std::time::Instant::now();
        let ours = Instant::now();
        let inner = std::time::Instant::now();
        std::thread::sleep(Duration::from_millis(20));
        let short = inner.elapsed();
        let a = ours.elapsed();
        let long = outer.elapsed();
        assert!(a >= Duration::from_millis(20), "{a:?}");
        assert!(short <= a && a <= long, "{short:?} <= {a:?} <= {long:?}");
        let later = ours + Duration::from_secs(3600);
        assert!(later > Instant::now());
        assert_eq!(ours.saturating_duration_since(later), Duration::ZERO);
        assert_eq!(
            later.saturating_duration_since(ours),
            Duration::from_secs(3600)
        );
    }

    #[test]
    fn args_from_c_reads_argc_entries_and_stops_at_null() {
        let a = c"/init";
        let b = c"single";
        let v = [a.as_ptr(), b.as_ptr(), std::ptr::null()];
        // SAFETY: three valid entries, the last null.
        let got = unsafe { args_from_c(3, v.as_ptr()) };
        assert_eq!(got, ["/init", "single"]);
        // SAFETY: a null argv is allowed.
        assert!(unsafe { args_from_c(1, std::ptr::null()) }.is_empty());
        // SAFETY: argc 1 reads only the first entry.
        assert_eq!(unsafe { args_from_c(1, v.as_ptr()) }, ["/init"]);
    }

    /// The machine's `api_dir` (one lstat, `/` given) says of every entry
    /// of `/` what `is_mount_point` and `is_dir` say (links, files and
    /// mount points included), and `None` where nothing is.
    #[test]
    fn api_dir_agrees_with_two_stats() {
        let sys = RealSys::default();
        let root = sys.stat(Path::new("/")).ok();
        let mut seen_mount = false;
        for name in sys.read_dir(Path::new("/")).unwrap() {
            let p = Path::new("/").join(&name);
            let old = if sys.is_mount_point(&p) {
                Some(true)
            } else {
                sys.is_dir(&p).then_some(false)
            };
            assert_eq!(sys.api_dir(&p, root.as_ref()), old, "{name}");
            seen_mount |= old == Some(true);
        }
        assert!(seen_mount, "/proc at least is a mount point here");
        assert_eq!(
            sys.api_dir(Path::new("/no-such-dir-here"), root.as_ref()),
            None
        );
    }

    /// As `escape_debug` for what a log line may carry.
    #[test]
    fn escaped_as_escape_debug() {
        for s in [
            "plain",
            "a\tb\r\n\0",
            "q\"u'o\\te",
            "\x1b[0m \x7f \u{85}",
            "é€😀",
            "",
        ] {
            assert_eq!(
                escaped(s).to_string(),
                s.escape_debug().to_string(),
                "{s:?}"
            );
        }
    }

    /// The kernel's isspace: \v and \f too; no Unicode space.
    #[test]
    fn spaces_as_the_kernel_reads_them() {
        assert_eq!(trim(" \t\x0b\x0c\r\na b\n"), "a b");
        assert_eq!(trim("\u{a0}x\u{2003}"), "\u{a0}x\u{2003}");
        assert_eq!(words(" a\x0bb  c\t").collect::<Vec<_>>(), ["a", "b", "c"]);
        assert_eq!(words("").count(), 0);
    }

    #[test]
    fn in_root_stays_under_the_base() {
        let b = Path::new("/new-root");
        assert_eq!(
            in_root(b, Path::new("/sbin/init")),
            Path::new("/new-root/sbin/init")
        );
        assert_eq!(in_root(b, Path::new("/")), Path::new("/new-root"));
        assert_eq!(
            in_root(b, Path::new("/../../etc")),
            Path::new("/new-root/etc")
        );
        assert_eq!(
            in_root(b, Path::new("relative/x")),
            Path::new("/new-root/relative/x")
        );
    }

    #[test]
    fn flag_names_start_with_ro_or_rw() {
        assert_eq!(describe_flags(MountFlags::empty(), ""), "rw");
        assert_eq!(
            describe_flags(MountFlags::NODEV | MountFlags::RDONLY, "x=1"),
            "ro,nodev,x=1"
        );
    }
}

/// The unwinder, left out. pivot-init is built with `panic = "abort"`: no
/// frame is ever unwound, and std's default panic hook, which could print a
/// backtrace, is replaced before anything can panic (`boot::run`; the CLI
/// prints no backtraces). Yet std's backtrace printer and its (never
/// called) personality routine name a few `_Unwind_*` functions, and the
/// first reference drags in all of libunwind and, for its messages, musl's
/// printf: about 58 KiB of the static binary. Defining the names here
/// satisfies those references, so the linker never takes libunwind's
/// objects; should a future std name another, the link fails loudly with a
/// duplicate definition rather than silently.
#[cfg(all(target_env = "musl", pivot_build_std, not(test)))]
mod no_unwinder {
    use std::ffi::c_void;

    /// `_URC_END_OF_STACK` for a backtrace walk; `_URC_FATAL_PHASE1_ERROR`
    /// for anything that would unwind.
    const END_OF_STACK: i32 = 5;

    macro_rules! stubs {
        ($($name:ident($($arg:ident: $ty:ty),*) -> $ret:ty = $val:expr;)*) => {$(
            // SAFETY: each symbol is defined once in the final binary (so
            // libunwind's is never linked); the signature is the C one std
            // declares; the body touches no memory and calls nothing.
            #[unsafe(no_mangle)]
            pub extern "C" fn $name($(_: $ty),*) -> $ret {
                $val
            }
        )*};
    }

    stubs! {
        _Unwind_Backtrace(trace: *const c_void, arg: *mut c_void) -> i32 = END_OF_STACK;
        _Unwind_GetIP(context: *const c_void) -> usize = 0;
        _Unwind_GetIPInfo(context: *const c_void, before: *mut i32) -> usize = 0;
        _Unwind_GetLanguageSpecificData(context: *const c_void) -> usize = 0;
        _Unwind_GetRegionStart(context: *const c_void) -> usize = 0;
        _Unwind_GetTextRelBase(context: *const c_void) -> usize = 0;
        _Unwind_GetDataRelBase(context: *const c_void) -> usize = 0;
        _Unwind_SetGR(context: *mut c_void, index: i32, value: usize) -> () = ();
        _Unwind_SetIP(context: *mut c_void, value: usize) -> () = ();
    }
}
