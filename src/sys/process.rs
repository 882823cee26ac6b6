//! Processes: fork/exec of the hook and the shell, exec of an init, waits.
//! Everything a child needs is prepared before `fork`; the child makes only
//! async-signal-safe calls.

use std::ffi::{CStr, CString};
use std::path::Path;
use std::time::{Duration, Instant};

use rustix::event::{PollFd, PollFlags, Timespec};
use rustix::io::Errno;
use rustix::process::{Pid, Signal, WaitOptions, WaitStatus};

/// How a child ended, for the log.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Exit {
    Code(i32),
    Signal(i32),
    Other,
}

impl Exit {
    pub fn of(st: WaitStatus) -> Exit {
        match (st.exit_status(), st.terminating_signal()) {
            (Some(c), _) => Exit::Code(c),
            (None, Some(sig)) => Exit::Signal(sig),
            _ => Exit::Other,
        }
    }

    pub fn success(self) -> bool {
        self == Exit::Code(0)
    }
}

impl std::fmt::Display for Exit {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Exit::Code(c) => write!(f, "exit status {c}"),
            Exit::Signal(s) => write!(f, "killed by signal {s}"),
            Exit::Other => write!(f, "ended"),
        }
    }
}

/// The errno a libc call just set.
fn last_errno() -> Errno {
    Errno::from_raw_os_error(std::io::Error::last_os_error().raw_os_error().unwrap_or(0))
}

/// A NUL-terminated copy of a path; a NUL inside is EINVAL, as the kernel says.
pub fn c_path(p: &Path) -> Result<CString, Errno> {
    use std::os::unix::ffi::OsStrExt;
    CString::new(p.as_os_str().as_bytes()).map_err(|_| Errno::INVAL)
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
    pub cwd: &'a CStr,
    /// Its own process group (so the whole group can be signalled).
    pub new_group: bool,
    /// stdin from /dev/null; stdout/stderr are inherited (the console).
    pub stdin_null: bool,
}

/// Forks and execs `path` with exactly `argv` and `envp`. Returns the child's pid.
pub fn spawn(
    path: &CStr,
    argv: &[CString],
    envp: &[CString],
    opts: &SpawnOpts,
) -> Result<Pid, Errno> {
    let argv_p = ptr_array(argv);
    let envp_p = ptr_array(envp);
    let devnull = c"/dev/null";
    // SAFETY: after fork only the calling thread exists in the child. PID 1
    // is single-threaded; in a multi-threaded test process this is sound too
    // because, between fork and execve/_exit, the child calls only
    // async-signal-safe functions (setpgid, chdir, open, dup2, close, execve,
    // _exit) on data prepared before the fork, and never allocates or locks.
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
    Pid::from_raw(pid).ok_or(Errno::INVAL)
}

/// Replaces this process with `path`. Returns only on failure.
pub fn execve(path: &CStr, argv: &[CString], envp: &[CString]) -> Errno {
    let argv_p = ptr_array(argv);
    let envp_p = ptr_array(envp);
    // SAFETY: path, argv and envp are NUL-terminated strings and NULL-terminated
    // pointer arrays that live until execve returns (it only returns on error).
    unsafe { libc::execve(path.as_ptr(), argv_p.as_ptr(), envp_p.as_ptr()) };
    last_errno()
}

/// Waits for one child; returns how it ended.
pub fn wait_child(pid: Pid) -> Result<Exit, Errno> {
    loop {
        match rustix::process::waitpid(Some(pid), WaitOptions::empty()) {
            Ok(Some((_, st))) => return Ok(Exit::of(st)),
            Ok(None) | Err(Errno::INTR) => continue,
            Err(e) => return Err(e),
        }
    }
}

fn timespec(d: Duration) -> Timespec {
    Timespec {
        tv_sec: d.as_secs() as _,
        tv_nsec: d.subsec_nanos() as _,
    }
}

/// Waits for child `pid` for at most `timeout`; `None` when it is still running.
/// Sleeps in poll() on a pidfd, so no time is spent while waiting.
pub fn wait_child_for(pid: Pid, timeout: Duration) -> Result<Option<Exit>, Errno> {
    let pidfd = match rustix::process::pidfd_open(pid, rustix::process::PidfdFlags::empty()) {
        Ok(fd) => fd,
        // Kernels before 5.3: no timed wait; wait as long as it takes.
        Err(Errno::NOSYS) => return wait_child(pid).map(Some),
        Err(e) => return Err(e),
    };
    let deadline = Instant::now() + timeout;
    loop {
        let ts = timespec(deadline.saturating_duration_since(Instant::now()));
        let mut fds = [PollFd::new(&pidfd, PollFlags::IN)];
        match rustix::event::poll(&mut fds, Some(&ts)) {
            Ok(0) => return Ok(None),
            Ok(_) => return wait_child(pid).map(Some),
            Err(Errno::INTR) => continue,
            Err(e) => return Err(e),
        }
    }
}

fn nap_20ms() {
    let _ = rustix::thread::nanosleep(&timespec(Duration::from_millis(20)));
}

/// Kills process group `pgid`: SIGTERM, then SIGKILL after `grace`, and reaps
/// every member that became our child. Returns when the group is gone (or
/// after a bounded wait).
pub fn kill_group(pgid: Pid, grace: Duration) {
    use rustix::process::{kill_process_group, test_kill_process_group, waitpgid};
    let reap = || while let Ok(Some(_)) = waitpgid(pgid, WaitOptions::NOHANG) {};
    let gone = || test_kill_process_group(pgid).is_err();
    let _ = kill_process_group(pgid, Signal::TERM);
    let deadline = Instant::now() + grace;
    while Instant::now() < deadline && !gone() {
        // Reap what died; a short nap between checks (bounded by `grace`).
        reap();
        nap_20ms();
    }
    let _ = kill_process_group(pgid, Signal::KILL);
    for _ in 0..250 {
        reap();
        if gone() {
            break;
        }
        nap_20ms();
    }
    reap();
}

/// Runs `sh` on the console (our stdin/stdout/stderr) and waits for it.
pub fn run_console_shell(sh: &Path) -> Result<Exit, Errno> {
    let path = c_path(sh)?;
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

/// Reaps every exited child without blocking; returns how many.
pub fn reap_children() -> usize {
    let mut n = 0;
    while let Ok(Some(_)) = rustix::process::wait(WaitOptions::NOHANG) {
        n += 1;
    }
    n
}

/// The last resort: PID 1 must not exit, so sleep forever, reaping orphans.
pub fn wait_forever() -> ! {
    loop {
        match rustix::process::wait(WaitOptions::empty()) {
            Ok(_) => {}
            Err(_) => rustix::event::pause(),
        }
    }
}
