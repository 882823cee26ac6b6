//! Processes: fork/exec of the hook and the shell, exec of an init, waits.
//! Everything a child needs is prepared before `fork`; the child makes only
//! async-signal-safe calls.

use std::ffi::{CStr, CString};
use std::path::Path;
use std::time::Duration;

use rustix::event::{PollFd, PollFlags, Timespec};
use rustix::io::Errno;
use rustix::process::{Pid, Signal, WaitOptions, WaitStatus};

use super::signals::{Sig, SignalFd};
use super::{ErrnoText, Halt, Instant, OpenFile};

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

/// What a spawned child executes.
pub enum Program<'a> {
    /// A path, resolved by the kernel at the exec.
    Path(&'a CStr),
    /// An open file (`execveat` with `AT_EMPTY_PATH`): the file that was checked.
    File(&'a OpenFile),
}

/// How a spawned child is set up between fork and exec.
pub struct SpawnOpts<'a> {
    pub cwd: &'a CStr,
    /// Its own process group (so the whole group can be signalled).
    pub new_group: bool,
    /// stdin from /dev/null; stdout/stderr are inherited (the console).
    pub stdin_null: bool,
    /// Run it as PID 1 of a new PID namespace: when it exits, the kernel
    /// ends everything it started. Falls back to a plain fork where the
    /// kernel has no PID namespaces.
    pub new_pid_ns: bool,
    /// This file becomes fd 3 of the child (a script's own file, which its
    /// interpreter reads as /proc/self/fd/3).
    pub fd3: Option<&'a OpenFile>,
}

/// A started child.
pub struct Child {
    pub pid: Pid,
    /// It runs as PID 1 of its own PID namespace.
    pub own_pid_ns: bool,
}

/// `close_range` flag: mark close-on-exec instead of closing (Linux 5.11).
pub(super) const CLOSE_RANGE_CLOEXEC: libc::c_long = 1 << 2;

/// Forks (or clones into a new PID namespace) and execs `prog` with exactly
/// `argv` and `envp`. The child starts clean: every signal disposition
/// default, an empty signal mask, and no descriptor but 0-2 (and `fd3`).
pub(super) fn spawn(
    prog: Program,
    argv: &[CString],
    envp: &[CString],
    opts: &SpawnOpts,
) -> Result<Child, Errno> {
    spawn_with(prog, argv, envp, opts, None)
}

/// [`spawn`], with the child's stdout and stderr on `output` when given (a
/// descriptor above 2, close-on-exec: the child's copies on 1 and 2 are not).
fn spawn_with(
    prog: Program,
    argv: &[CString],
    envp: &[CString],
    opts: &SpawnOpts,
    output: Option<libc::c_int>,
) -> Result<Child, Errno> {
    use std::os::fd::AsRawFd;
    let argv_p = ptr_array(argv);
    let envp_p = ptr_array(envp);
    let devnull = c"/dev/null";
    let (path, exec_fd) = match prog {
        Program::Path(p) => (p, None),
        Program::File(f) => (c"", Some(f.fd().as_raw_fd())),
    };
    let fd3 = opts.fd3.map(|f| f.fd().as_raw_fd());
    let mut own_pid_ns = false;
    let mut pid = -1;
    if opts.new_pid_ns {
        // SAFETY: a raw clone with only CLONE_NEWPID|SIGCHLD and no new stack
        // is a fork whose child is PID 1 of a new PID namespace; all other
        // arguments are zero, which every architecture's order accepts.
        pid = unsafe {
            libc::syscall(
                libc::SYS_clone,
                libc::c_long::from(libc::CLONE_NEWPID | libc::SIGCHLD),
                0,
                0,
                0,
                0,
            )
        } as libc::pid_t;
        own_pid_ns = pid >= 0;
    }
    if pid < 0 {
        // SAFETY: see the child's block below.
        pid = unsafe { libc::fork() };
    }
    if pid == 0 {
        // SAFETY: after fork (or the clone above) only the calling thread
        // exists in the child. PID 1 is single-threaded; in a multi-threaded
        // test process this is sound too because, until execve/_exit, the
        // child calls only async-signal-safe functions and raw syscalls on
        // data prepared before the fork, and never allocates or locks. Every
        // pointer is a live NUL-terminated C string or a NULL-terminated
        // pointer array built from them.
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
            if let Some(fd) = output {
                libc::dup2(fd, 1);
                libc::dup2(fd, 2);
            }
            let mut first_closed = 3;
            if let Some(fd) = fd3 {
                // dup2 leaves the new descriptor without close-on-exec.
                libc::dup2(fd, 3);
                first_closed = 4;
            }
            libc::syscall(
                libc::SYS_close_range,
                libc::c_long::from(first_closed),
                libc::c_long::from(u32::MAX),
                CLOSE_RANGE_CLOEXEC,
            );
            // Every disposition default (an all-zero kernel sigaction is
            // SIG_DFL), then an empty mask: raw syscalls, whatever the parent had.
            let dfl = [0u64; 4];
            for sig in 1..=64 {
                libc::syscall(
                    libc::SYS_rt_sigaction,
                    libc::c_long::from(sig),
                    dfl.as_ptr(),
                    0,
                    8,
                );
            }
            let empty: libc::sigset_t = std::mem::zeroed();
            libc::sigprocmask(libc::SIG_SETMASK, &empty, std::ptr::null_mut());
            match exec_fd {
                Some(fd) => {
                    libc::syscall(
                        libc::SYS_execveat,
                        libc::c_long::from(fd),
                        path.as_ptr(),
                        argv_p.as_ptr(),
                        envp_p.as_ptr(),
                        libc::c_long::from(libc::AT_EMPTY_PATH),
                    );
                }
                None => {
                    libc::execve(path.as_ptr(), argv_p.as_ptr(), envp_p.as_ptr());
                }
            }
            libc::_exit(127);
        }
    }
    if pid < 0 {
        return Err(last_errno());
    }
    let pid = Pid::from_raw(pid).ok_or(Errno::INVAL)?;
    Ok(Child { pid, own_pid_ns })
}

/// Runs `prog` as [`spawn`] does with its stdout and stderr on a pipe,
/// hands each line it writes to `line`, and waits for it once the pipe is
/// closed (by the child's exit, or by everything it started ending too).
pub(super) fn run_logged(
    prog: Program,
    argv: &[CString],
    envp: &[CString],
    opts: &SpawnOpts,
    line: &mut dyn FnMut(&str),
) -> Result<Exit, Errno> {
    use std::os::fd::AsRawFd;
    let (read_end, write_end) = rustix::pipe::pipe_with(rustix::pipe::PipeFlags::CLOEXEC)?;
    // Above 2, so that the child's dup2 onto 1 and 2 makes new descriptors
    // (PID 1 starts without 0-2 when the boot root has no /dev/console).
    let write_end = if write_end.as_raw_fd() < 3 {
        rustix::io::fcntl_dupfd_cloexec(&write_end, 3)?
    } else {
        write_end
    };
    let child = spawn_with(prog, argv, envp, opts, Some(write_end.as_raw_fd()));
    drop(write_end);
    let child = child?;
    // The child's end as a pidfd (Linux 5.3): once it has exited and the
    // pipe has nothing more to read, a process it left holding the pipe
    // open does not keep PID 1 here.
    let pidfd = rustix::process::pidfd_open(child.pid, rustix::process::PidfdFlags::empty()).ok();
    let mut lines = LineSplitter::default();
    let mut buf = [0u8; 4096];
    loop {
        let (readable, exited) = {
            let mut fds = vec![PollFd::new(&read_end, PollFlags::IN)];
            if let Some(p) = &pidfd {
                fds.push(PollFd::new(p, PollFlags::IN));
            }
            match rustix::event::poll(&mut fds, None) {
                Ok(_) => {}
                Err(Errno::INTR) => continue,
                Err(_) => break,
            }
            let ready = |i: usize| fds.get(i).is_some_and(|f| !f.revents().is_empty());
            (ready(0), ready(1))
        };
        if readable {
            match rustix::io::read(&read_end, &mut buf) {
                Ok(0) => break,
                Ok(n) => lines.feed(buf.get(..n).unwrap_or_default(), line),
                Err(Errno::INTR) => {}
                Err(_) => break,
            }
        } else if exited {
            break;
        }
    }
    lines.finish(line);
    drop(read_end);
    wait_child(child.pid)
}

/// Cuts a byte stream into lines at `\n` or `\r` (a progress bar's
/// redraws), empty lines dropped; a line longer than [`LineSplitter::MAX`]
/// bytes is handed on in pieces.
#[derive(Default)]
pub struct LineSplitter {
    pending: Vec<u8>,
}

impl LineSplitter {
    pub const MAX: usize = 512;

    pub fn feed(&mut self, bytes: &[u8], line: &mut dyn FnMut(&str)) {
        for b in bytes {
            if matches!(b, b'\n' | b'\r') {
                self.flush(line);
            } else {
                self.pending.push(*b);
                if self.pending.len() >= Self::MAX {
                    self.flush(line);
                }
            }
        }
    }

    /// What is left after the end of the stream.
    pub fn finish(&mut self, line: &mut dyn FnMut(&str)) {
        self.flush(line);
    }

    fn flush(&mut self, line: &mut dyn FnMut(&str)) {
        if !self.pending.is_empty() {
            line(&String::from_utf8_lossy(&self.pending));
            self.pending.clear();
        }
    }
}

/// Replaces this process with `prog`: a path, or an open file (`execveat`
/// with `AT_EMPTY_PATH`: what runs is the file that was opened and checked,
/// whatever its path names now; ENOSYS before Linux 3.19). Returns only on
/// failure.
pub(super) fn exec(prog: Program, argv: &[CString], envp: &[CString]) -> Errno {
    use std::os::fd::AsRawFd;
    let argv_p = ptr_array(argv);
    let envp_p = ptr_array(envp);
    match prog {
        // SAFETY: path, argv and envp are NUL-terminated strings and
        // NULL-terminated pointer arrays that live until execve returns (it
        // only returns on error).
        Program::Path(path) => unsafe {
            libc::execve(path.as_ptr(), argv_p.as_ptr(), envp_p.as_ptr());
        },
        // SAFETY: the fd is open for the duration of the call; the empty
        // path, argv and envp are NUL-terminated strings and NULL-terminated
        // pointer arrays that live until the syscall returns (only on error).
        Program::File(file) => unsafe {
            libc::syscall(
                libc::SYS_execveat,
                libc::c_long::from(file.fd().as_raw_fd()),
                c"".as_ptr(),
                argv_p.as_ptr(),
                envp_p.as_ptr(),
                libc::c_long::from(libc::AT_EMPTY_PATH),
            );
        },
    }
    last_errno()
}

/// Waits for one child; returns how it ended.
pub(super) fn wait_child(pid: Pid) -> Result<Exit, Errno> {
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
pub(super) fn wait_child_for(pid: Pid, timeout: Duration) -> Result<Option<Exit>, Errno> {
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
pub(super) fn kill_group(pgid: Pid, grace: Duration) {
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
pub(super) fn reap_children() -> usize {
    let mut n = 0;
    while let Ok(Some(_)) = rustix::process::wait(WaitOptions::NOHANG) {
        n += 1;
    }
    n
}

/// How a supervised wait ended ([`supervise`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Supervised {
    /// The child waited for ended: its own status (the other children
    /// reaped meanwhile, orphans, are not reported).
    Exited(Exit),
    /// Ctrl-Alt-Del (a reboot) or SIGPWR (a power-off) was asked for; the
    /// child, if any, still runs.
    Requested(Halt),
    /// Nothing more will happen: only the fake returns it, once its script
    /// is done (on the machine the wait goes on).
    Forever,
}

/// PID 1's wait: until `child` ends (`None`: for good), reaping every child
/// as it exits, orphans included (`waitpid(-1)`, keeping `child`'s own
/// status), and taking PID 1's signals from a signalfd: Ctrl-Alt-Del and
/// SIGPWR end the wait as requests, SIGTERM is logged and changes nothing.
/// The signals are blocked only while it waits (the descriptor unblocks
/// them when dropped), so no exec inherits them blocked. Without a
/// signalfd it blocks in `wait()`, reaping, and takes no request.
pub(super) fn supervise(child: Option<Pid>) -> Supervised {
    let sfd = match SignalFd::new() {
        Ok(s) => s,
        Err(e) => {
            log::warn!(
                "no signalfd ({}): Ctrl-Alt-Del and SIGPWR are not taken while PID 1 waits",
                ErrnoText(e)
            );
            return Supervised::Exited(reap_until(child));
        }
    };
    loop {
        // Also right after the signalfd exists: a child that exited before
        // (its SIGCHLD discarded, not yet blocked) is reaped here.
        if let Some(exit) = reap_exited(child) {
            return Supervised::Exited(exit);
        }
        let mut fds = [PollFd::new(&sfd, PollFlags::IN)];
        match rustix::event::poll(&mut fds, None) {
            Ok(_) | Err(Errno::INTR) => {}
            Err(e) => {
                log::warn!(
                    "poll on the signalfd failed ({}): Ctrl-Alt-Del and SIGPWR are not taken \
                     while PID 1 waits",
                    ErrnoText(e)
                );
                drop(sfd);
                return Supervised::Exited(reap_until(child));
            }
        }
        while let Some(sig) = sfd.read() {
            match sig {
                // Reaped at the top of the loop.
                Sig::Child => {}
                Sig::CtrlAltDel => return Supervised::Requested(Halt::Reboot),
                Sig::Power => return Supervised::Requested(Halt::PowerOff),
                Sig::Term => {
                    log::info!("SIGTERM: ignored (PID 1 keeps waiting; Ctrl-Alt-Del reboots)")
                }
                Sig::Other(n) => log::debug!("signal {n} while waiting: ignored"),
            }
        }
    }
}

/// Reaps every exited child without blocking; `child`'s status once it is
/// among them (or once PID 1 has no child at all: it is gone).
fn reap_exited(child: Option<Pid>) -> Option<Exit> {
    let mut reaped = 0;
    let found = loop {
        match rustix::process::wait(WaitOptions::NOHANG) {
            Ok(Some((pid, st))) if Some(pid) == child => break Some(Exit::of(st)),
            Ok(Some(_)) => reaped += 1,
            Err(Errno::INTR) => {}
            Err(Errno::CHILD) if child.is_some() => break Some(Exit::Other),
            Ok(None) | Err(_) => break None,
        }
    };
    if reaped > 0 {
        log::debug!("reaped {reaped} child process(es)");
    }
    found
}

/// Without a signalfd: blocks in `wait()`, reaping every child, until
/// `child` ends (`None`: never returns). With no child at all it naps and
/// looks again (an orphan may come; a signal would not wake it).
fn reap_until(child: Option<Pid>) -> Exit {
    loop {
        match rustix::process::wait(WaitOptions::empty()) {
            Ok(Some((pid, st))) if Some(pid) == child => return Exit::of(st),
            Ok(_) | Err(Errno::INTR) => {}
            Err(Errno::CHILD) if child.is_some() => return Exit::Other,
            Err(_) => {
                let _ = rustix::thread::nanosleep(&timespec(Duration::from_secs(1)));
            }
        }
    }
}

/// The very end of the panic path, when even the failure policy returned:
/// PID 1 must not exit, so it sleeps forever, reaping orphans.
pub fn wait_forever() -> ! {
    loop {
        let _ = reap_until(None);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Runs `f` in a forked child of this test process, as PID 1 would run
    /// it: one thread (a process signal reaches the thread that blocked
    /// it), and `waitpid(-1)` sees only its own children, not those of the
    /// other tests. Its error comes back through a file.
    fn in_fork(name: &str, f: impl FnOnce() -> Result<(), String>) {
        let out = std::env::temp_dir().join(format!("pivot-{name}-{}", std::process::id()));
        let _ = std::fs::remove_file(&out);
        // SAFETY: the child runs `f`, which only makes system calls and
        // allocates (glibc's malloc is fork-safe), writes one file and
        // leaves with _exit, never returning into the test harness.
        let pid = unsafe { libc::fork() };
        assert!(pid >= 0, "fork failed");
        if pid == 0 {
            let code = match f() {
                Ok(()) => 0,
                Err(e) => {
                    let _ = std::fs::write(&out, e);
                    1
                }
            };
            // SAFETY: ends the forked child without running the harness's
            // exit handlers.
            unsafe { libc::_exit(code) };
        }
        let pid = Pid::from_raw(pid).unwrap();
        let st = wait_child(pid).unwrap();
        let why = std::fs::read_to_string(&out).unwrap_or_default();
        let _ = std::fs::remove_file(&out);
        assert_eq!(st, Exit::Code(0), "{why}");
    }

    fn check<T: PartialEq + std::fmt::Debug>(got: T, want: T, what: &str) -> Result<(), String> {
        if got == want {
            Ok(())
        } else {
            Err(format!("{what}: got {got:?}, want {want:?}"))
        }
    }

    /// The signals blocked and pending in this thread (/proc), as hex masks.
    fn sig_masks() -> Result<(String, String), String> {
        let status =
            std::fs::read_to_string("/proc/thread-self/status").map_err(|e| e.to_string())?;
        let field = |k: &str| {
            status
                .lines()
                .find_map(|l| l.strip_prefix(k))
                .map(|v| v.trim().to_string())
                .unwrap_or_default()
        };
        Ok((field("SigBlk:"), field("SigPnd:")))
    }

    const NONE: &str = "0000000000000000";

    /// The supervised wait reaps an orphan as it dies (the forked child
    /// stands in for PID 1 as a subreaper), keeps the child's own exit
    /// status, leaves no zombie, and unblocks the signals it blocked.
    #[test]
    fn supervise_reaps_orphans_and_keeps_the_childs_status() {
        let dir = std::env::temp_dir().join(format!("pivot-supervise-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        // The orphan's parent exits at once; the orphan exits after 0.2 s,
        // while the shell still runs; 0.8 s later the shell looks for it:
        // reaped, its pid is gone from /proc (a zombie would still be there).
        let script = format!(
            "(sleep 0.2 & echo $! > {0}/pid); sleep 1; \
             if [ -e /proc/$(cat {0}/pid) ]; then echo present; else echo gone; fi > {0}/seen; \
             exit 7",
            dir.display()
        );
        let d = dir.clone();
        in_fork("supervise-orphans", move || {
            rustix::process::set_child_subreaper(Some(rustix::process::getpid()))
                .map_err(|e| format!("subreaper: {e}"))?;
            let sh = c"/bin/sh";
            let argv = [
                sh.to_owned(),
                c"-c".to_owned(),
                CString::new(script).map_err(|e| e.to_string())?,
            ];
            let opts = SpawnOpts {
                cwd: c"/",
                new_group: true,
                stdin_null: true,
                new_pid_ns: false,
                fd3: None,
            };
            let child = spawn(Program::Path(sh), &argv, &[], &opts).map_err(|e| e.to_string())?;
            check(
                supervise(Some(child.pid)),
                Supervised::Exited(Exit::Code(7)),
                "the shell's own status",
            )?;
            let seen = std::fs::read_to_string(d.join("seen")).map_err(|e| e.to_string())?;
            check(seen.as_str(), "gone\n", "the orphan after it exited")?;
            check(
                rustix::process::wait(WaitOptions::NOHANG).map(|r| r.is_some()),
                Err(Errno::CHILD),
                "children left",
            )?;
            check(sig_masks()?.0, NONE.to_string(), "blocked afterwards")
        });
        std::fs::remove_dir_all(&dir).unwrap();
    }

    /// Ctrl-Alt-Del (SIGINT) and SIGPWR end the supervised wait as requests;
    /// SIGTERM (read first: the lower number) does not. Afterwards nothing
    /// is blocked or pending.
    #[test]
    fn supervise_takes_ctrl_alt_del_and_sigpwr_not_sigterm() {
        in_fork("supervise-signals", || {
            let queue = |sigs: &[i32]| {
                // SAFETY: blocking signals only changes this (single-threaded)
                // process's mask; raise() then queues them, as the kernel
                // queues Ctrl-Alt-Del's SIGINT for PID 1 while it is blocked.
                unsafe {
                    let mut set: libc::sigset_t = std::mem::zeroed();
                    libc::sigemptyset(&mut set);
                    for s in sigs {
                        libc::sigaddset(&mut set, *s);
                    }
                    libc::sigprocmask(libc::SIG_BLOCK, &set, std::ptr::null_mut());
                    for s in sigs {
                        libc::raise(*s);
                    }
                }
            };
            queue(&[libc::SIGINT]);
            check(
                supervise(None),
                Supervised::Requested(Halt::Reboot),
                "SIGINT",
            )?;
            queue(&[libc::SIGTERM, libc::SIGPWR]);
            check(
                supervise(None),
                Supervised::Requested(Halt::PowerOff),
                "SIGTERM, SIGPWR",
            )?;
            check(sig_masks()?, (NONE.into(), NONE.into()), "blocked, pending")
        });
    }

    /// A spawned program starts with nothing ignored or blocked and no
    /// descriptor past 2, though this (test) process ignores SIGPIPE, blocks
    /// a signal and has descriptors open.
    #[test]
    fn children_start_clean() {
        let dir = std::env::temp_dir().join(format!("pivot-spawn-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let out = dir.join("status");
        let keep_open = std::fs::File::open("/proc/self/status").unwrap();
        // A descriptor without close-on-exec, as a careless library might leave.
        // SAFETY: F_DUPFD on an open descriptor returns a new one (>= 50) that we close below.
        let leaky = unsafe {
            use std::os::fd::AsRawFd;
            libc::fcntl(keep_open.as_raw_fd(), libc::F_DUPFD, 50)
        };
        assert!(leaky >= 50);
        // SAFETY: ignoring SIGPIPE and blocking SIGUSR2 in this thread only
        // changes signal state, which is what is under test.
        unsafe {
            libc::signal(libc::SIGPIPE, libc::SIG_IGN);
            let mut set: libc::sigset_t = std::mem::zeroed();
            libc::sigemptyset(&mut set);
            libc::sigaddset(&mut set, libc::SIGUSR2);
            libc::pthread_sigmask(libc::SIG_BLOCK, &set, std::ptr::null_mut());
        }
        let sh = CString::new("/bin/sh").unwrap();
        // The shell reads its own status with its builtin `read` (no child,
        // so no fork window in which a shell may block signals).
        let script = format!(
            "while read -r k v; do case $k in SigBlk:|SigIgn:) echo \"$k $v\";; esac; \
             done < /proc/self/status > {0}; ls /proc/$$/fd >> {0}",
            out.display()
        );
        let argv = [
            sh.clone(),
            CString::new("-c").unwrap(),
            CString::new(script).unwrap(),
        ];
        let opts = SpawnOpts {
            cwd: c"/",
            new_group: false,
            stdin_null: true,
            new_pid_ns: false,
            fd3: None,
        };
        let child = spawn(Program::Path(&sh), &argv, &[], &opts).unwrap();
        assert_eq!(wait_child(child.pid).unwrap(), Exit::Code(0));
        drop(keep_open);
        // SAFETY: `leaky` is our own descriptor, closed once.
        unsafe { libc::close(leaky) };
        let text = std::fs::read_to_string(&out).unwrap();
        // The shell (dash) ignores nothing by itself when not interactive.
        assert!(text.contains("SigBlk: 0000000000000000\n"), "{text}");
        assert!(text.contains("SigIgn: 0000000000000000\n"), "{text}");
        let fds: Vec<&str> = text.lines().skip(2).collect();
        assert!(!fds.contains(&leaky.to_string().as_str()), "{fds:?}");
        assert!(fds.contains(&"0") && fds.contains(&"2"), "{fds:?}");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
