//! Signals of PID 1: what it takes while it waits (a signalfd in the same
//! `poll` as the uevent socket), Ctrl-Alt-Del as a request, and the clean
//! state every exec starts from.

use std::os::fd::{AsFd, BorrowedFd, FromRawFd, OwnedFd};

use rustix::io::Errno;

/// A signal PID 1 acts on while it waits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Sig {
    /// A child exited: reap it.
    Child,
    /// Ctrl-Alt-Del (the kernel sends SIGINT to PID 1 once its own
    /// immediate reboot is off).
    CtrlAltDel,
    /// SIGTERM: PID 1 is not a service to stop; logged.
    Term,
    /// SIGPWR: the power is failing (a UPS daemon): power off cleanly.
    Power,
    Other(i32),
}

const WATCHED: [i32; 4] = [libc::SIGCHLD, libc::SIGINT, libc::SIGTERM, libc::SIGPWR];

fn set_of(sigs: &[i32]) -> libc::sigset_t {
    // SAFETY: sigemptyset/sigaddset only write the set they are given,
    // which is a local, fully initialised by sigemptyset first.
    unsafe {
        let mut set: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut set);
        for s in sigs {
            libc::sigaddset(&mut set, *s);
        }
        set
    }
}

/// The watched signals, blocked and readable from a descriptor. Dropping it
/// unblocks them again (so no exec inherits a blocked signal).
pub struct SignalFd(OwnedFd);

impl SignalFd {
    pub fn new() -> Result<SignalFd, Errno> {
        let set = set_of(&WATCHED);
        // SAFETY: `set` is a valid sigset; sigprocmask and signalfd only
        // read it. signalfd returns a new descriptor that we own, or -1.
        let fd = unsafe {
            libc::sigprocmask(libc::SIG_BLOCK, &set, std::ptr::null_mut());
            libc::signalfd(-1, &set, libc::SFD_NONBLOCK | libc::SFD_CLOEXEC)
        };
        if fd < 0 {
            let e = Errno::from_raw_os_error(
                std::io::Error::last_os_error().raw_os_error().unwrap_or(0),
            );
            unblock_watched();
            return Err(e);
        }
        // SAFETY: fd is a fresh descriptor that nothing else owns.
        Ok(SignalFd(unsafe { OwnedFd::from_raw_fd(fd) }))
    }

    /// The next pending signal, without blocking.
    pub fn read(&self) -> Option<Sig> {
        // struct signalfd_siginfo is 128 bytes; ssi_signo is its first u32.
        let mut buf = [0u8; 128];
        let n = rustix::io::read(&self.0, &mut buf).ok()?;
        if n < 4 {
            return None;
        }
        let signo = i32::from_ne_bytes([buf[0], buf[1], buf[2], buf[3]]);
        Some(match signo {
            libc::SIGCHLD => Sig::Child,
            libc::SIGINT => Sig::CtrlAltDel,
            libc::SIGTERM => Sig::Term,
            libc::SIGPWR => Sig::Power,
            other => Sig::Other(other),
        })
    }
}

impl AsFd for SignalFd {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.0.as_fd()
    }
}

impl Drop for SignalFd {
    fn drop(&mut self) {
        unblock_watched();
    }
}

fn unblock_watched() {
    let set = set_of(&WATCHED);
    // SAFETY: `set` is a valid sigset that sigprocmask only reads.
    unsafe { libc::sigprocmask(libc::SIG_UNBLOCK, &set, std::ptr::null_mut()) };
}

/// Turns the kernel's immediate reboot on Ctrl-Alt-Del off (`on` false):
/// the kernel then sends SIGINT to PID 1 instead. `on` true gives the next
/// init the kernel's default back.
pub(super) fn ctrl_alt_del_reboots(on: bool) {
    use rustix::system::RebootCommand;
    let cmd = if on {
        RebootCommand::CadOn
    } else {
        RebootCommand::CadOff
    };
    if let Err(e) = rustix::system::reboot(cmd) {
        log::debug!("cannot set Ctrl-Alt-Del: {}", super::ErrnoText(e));
    }
}

/// Every signal back to its default disposition and an empty signal mask:
/// for a PID 1 that something other than the kernel started (systemd's
/// shutdown execs PID 1's second life with whatever it had), so that every
/// child and every exec starts as the kernel would start it. The kernel
/// starts the first PID 1 that way itself, and pivot-init changes no
/// disposition (it takes its signals through a signalfd), so the boot does
/// not need it.
pub(super) fn reset_all() {
    for sig in 1..=64 {
        if sig == libc::SIGKILL || sig == libc::SIGSTOP {
            continue;
        }
        // SAFETY: setting SIG_DFL installs no handler; musl refuses (EINVAL)
        // the signals it reserves, which is fine to ignore.
        unsafe { libc::signal(sig, libc::SIG_DFL) };
    }
    unblock_all();
}

/// An empty signal mask (one call): before an exec, which keeps the mask.
/// PID 1 blocks its signals only while it waits on a signalfd, but a panic
/// can come while it waits, and the failure path then execs from there.
pub(super) fn unblock_all() {
    let empty = set_of(&[]);
    // SAFETY: `empty` is a valid sigset that sigprocmask only reads.
    unsafe { libc::sigprocmask(libc::SIG_SETMASK, &empty, std::ptr::null_mut()) };
}

/// Marks every descriptor from `first` on close-on-exec, so that an exec
/// keeps only the ones below (0-2, the console). Kernels before 5.11 lack
/// `CLOSE_RANGE_CLOEXEC`; there every descriptor we open is close-on-exec already.
pub(super) fn cloexec_from(first: u32) {
    // SAFETY: close_range with CLOSE_RANGE_CLOEXEC only changes descriptor
    // flags; it takes integers and touches no memory. Async-signal-safe.
    unsafe {
        libc::syscall(
            libc::SYS_close_range,
            libc::c_long::from(first),
            libc::c_long::from(u32::MAX),
            super::process::CLOSE_RANGE_CLOEXEC,
        )
    };
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signalfd_sees_a_signal_and_restores_the_mask() {
        let sfd = SignalFd::new().unwrap();
        // SAFETY: raising a blocked signal just queues it for the signalfd.
        unsafe { libc::raise(libc::SIGPWR) };
        assert_eq!(sfd.read(), Some(Sig::Power));
        assert_eq!(sfd.read(), None);
        drop(sfd);
        let status = std::fs::read_to_string("/proc/thread-self/status").unwrap();
        let blk = status.lines().find(|l| l.starts_with("SigBlk:")).unwrap();
        // SIGPWR (30) is no longer blocked in this thread.
        let mask = u64::from_str_radix(blk.split_whitespace().nth(1).unwrap(), 16).unwrap();
        assert_eq!(mask & (1 << (libc::SIGPWR - 1)), 0, "{blk}");
    }

    /// `unblock_all` empties the mask of the thread that calls it (a
    /// thread of its own here, so the test harness's threads are untouched).
    #[test]
    fn unblock_all_empties_the_mask() {
        let blocked = std::thread::spawn(|| {
            let set = set_of(&[libc::SIGUSR1, libc::SIGPWR]);
            // SAFETY: blocking two signals in this thread only.
            unsafe { libc::pthread_sigmask(libc::SIG_BLOCK, &set, std::ptr::null_mut()) };
            let before = sig_blk();
            unblock_all();
            (before, sig_blk())
        })
        .join()
        .unwrap();
        let want = (1u64 << (libc::SIGUSR1 - 1)) | (1 << (libc::SIGPWR - 1));
        assert_eq!(blocked, (want, 0));
    }

    /// This thread's blocked signals (/proc).
    fn sig_blk() -> u64 {
        let status = std::fs::read_to_string("/proc/thread-self/status").unwrap();
        let blk = status.lines().find(|l| l.starts_with("SigBlk:")).unwrap();
        u64::from_str_radix(blk.split_whitespace().nth(1).unwrap(), 16).unwrap()
    }
}
