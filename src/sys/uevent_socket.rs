//! The kernel uevent subscription (NETLINK_KOBJECT_UEVENT, multicast group 1).
//! One type owns binding, waiting, receiving and the sender check, so no
//! caller can forget to check who sent a message.

use std::os::fd::OwnedFd;
use std::time::Duration;

use rustix::event::{PollFd, PollFlags, Timespec};
use rustix::io::Errno;
use rustix::net::netlink::{self, SocketAddrNetlink};
use rustix::net::{AddressFamily, RecvFlags, SocketFlags, SocketType};

use super::signals::SignalFd;
use super::{Op, SysError};

type Result<T> = std::result::Result<T, SysError>;

/// A bound uevent socket (`O_CLOEXEC`). Closing one bound to the uevent
/// group waits for the kernel's broadcasts in flight; the boot closes it
/// just before the switch, after the last look for late arrivals, which
/// measured cheaper under TCG than leaving it to `execve` (the hot-plug
/// burst has settled by then).
pub struct UeventSocket(OwnedFd);

/// What a wait found ready.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Ready {
    pub uevent: bool,
    pub signal: bool,
}

/// What one receive found.
pub enum Recv<'a> {
    /// A message from the kernel.
    Message(&'a [u8]),
    /// Nothing queued now.
    Empty,
    /// The queue overflowed and messages were lost: rescan.
    Overflow,
}

impl UeventSocket {
    pub fn subscribe() -> Result<UeventSocket> {
        let fd = rustix::net::socket_with(
            AddressFamily::NETLINK,
            SocketType::DGRAM,
            SocketFlags::CLOEXEC,
            Some(netlink::KOBJECT_UEVENT),
        )
        .map_err(|errno| Op::Netlink("socket").failed(errno))?;
        // A large buffer so a burst of events (many disks at once) is not
        // dropped; if it is, ENOBUFS makes the caller rescan.
        let _ = rustix::net::sockopt::set_socket_recv_buffer_size(&fd, 1 << 20);
        rustix::net::bind(&fd, &SocketAddrNetlink::new(0, 1))
            .map_err(|errno| Op::Netlink("bind").failed(errno))?;
        Ok(UeventSocket(fd))
    }

    /// Sleeps until a message is queued, a signal is pending on `signals`,
    /// or `timeout` passes: one `poll` over both.
    pub fn wait_with(&self, signals: Option<&SignalFd>, timeout: Duration) -> Result<Ready> {
        let ts = Timespec {
            tv_sec: timeout.as_secs() as _,
            tv_nsec: timeout.subsec_nanos() as _,
        };
        let mut fds = vec![PollFd::new(&self.0, PollFlags::IN)];
        if let Some(s) = signals {
            fds.push(PollFd::new(s, PollFlags::IN));
        }
        match rustix::event::poll(&mut fds, Some(&ts)) {
            Ok(0) | Err(Errno::INTR) => Ok(Ready::default()),
            Ok(_) => Ok(Ready {
                uevent: !fds[0].revents().is_empty(),
                signal: fds.get(1).is_some_and(|f| !f.revents().is_empty()),
            }),
            Err(errno) => Err(Op::Poll.failed(errno)),
        }
    }

    /// Receives the next queued message from the kernel without blocking.
    /// Only a message whose sender address is there and is port id 0 (the
    /// kernel) is returned; anything else is dropped here.
    pub fn recv<'a>(&self, buf: &'a mut [u8]) -> Result<Recv<'a>> {
        loop {
            match rustix::net::recvfrom(&self.0, &mut buf[..], RecvFlags::DONTWAIT) {
                Ok((n, _, addr)) => {
                    let from_kernel = addr
                        .and_then(|a| SocketAddrNetlink::try_from(a).ok())
                        .is_some_and(|a| a.pid() == 0);
                    if from_kernel {
                        return Ok(Recv::Message(buf.get(..n).unwrap_or(&[])));
                    }
                    log::debug!("dropped a uevent message that is not from the kernel");
                }
                Err(Errno::AGAIN) => return Ok(Recv::Empty),
                Err(Errno::INTR) => continue,
                Err(Errno::NOBUFS) => return Ok(Recv::Overflow),
                Err(errno) => return Err(Op::Netlink("recv").failed(errno)),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A uevent-looking message multicast by a process (port id not 0) is
    /// not taken for the kernel's. Sending to the uevent group needs root.
    #[test]
    fn messages_from_processes_are_dropped() {
        if !rustix::process::geteuid().is_root() {
            eprintln!("not root: cannot send to the uevent group; sender check not exercised");
            return;
        }
        let sock = UeventSocket::subscribe().unwrap();
        let sender = rustix::net::socket_with(
            AddressFamily::NETLINK,
            SocketType::DGRAM,
            SocketFlags::CLOEXEC,
            Some(netlink::KOBJECT_UEVENT),
        )
        .unwrap();
        let msg = b"add@/devices/fake/block/sdz\0ACTION=add\0SUBSYSTEM=block\0MAJOR=8\0MINOR=250\0DEVNAME=sdz\0";
        rustix::net::sendto(
            &sender,
            msg,
            rustix::net::SendFlags::empty(),
            &SocketAddrNetlink::new(0, 1),
        )
        .unwrap();
        let mut buf = vec![0u8; 4096];
        // It arrives (poll says so), and recv drops it.
        assert!(sock.wait_with(None, Duration::from_secs(2)).unwrap().uevent);
        loop {
            match sock.recv(&mut buf).unwrap() {
                Recv::Empty => break,
                Recv::Message(m) => {
                    assert!(!m.ends_with(b"DEVNAME=sdz\0"), "taken as the kernel's")
                }
                Recv::Overflow => {}
            }
        }
    }
}
