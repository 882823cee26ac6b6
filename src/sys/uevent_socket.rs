//! The kernel uevent subscription (NETLINK_KOBJECT_UEVENT, multicast group 1).
//! One type owns binding, waiting, receiving and the sender check, so no
//! caller can forget to check who sent a message.

use std::os::fd::OwnedFd;
use std::time::Duration;

use rustix::event::{PollFd, PollFlags, Timespec};
use rustix::io::Errno;
use rustix::net::netlink::{self, SocketAddrNetlink};
use rustix::net::{AddressFamily, RecvFlags, SocketFlags, SocketType};

use crate::error::{Error, Result};

/// A bound uevent socket. It is `O_CLOEXEC`: closing one bound to the
/// uevent group waits for the kernel's broadcasts in flight (~10 ms under
/// TCG on the hot path), so the boot keeps it open and leaves it to `execve`.
pub struct UeventSocket(OwnedFd);

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
        .map_err(|errno| Error::Netlink {
            op: "socket",
            errno,
        })?;
        // A large buffer so a burst of events (many disks at once) is not
        // dropped; if it is, ENOBUFS makes the caller rescan.
        let _ = rustix::net::sockopt::set_socket_recv_buffer_size(&fd, 1 << 20);
        rustix::net::bind(&fd, &SocketAddrNetlink::new(0, 1))
            .map_err(|errno| Error::Netlink { op: "bind", errno })?;
        Ok(UeventSocket(fd))
    }

    /// Sleeps until a message is queued or `timeout` passes; true when one is.
    pub fn wait(&self, timeout: Duration) -> Result<bool> {
        let ts = Timespec {
            tv_sec: timeout.as_secs() as _,
            tv_nsec: timeout.subsec_nanos() as _,
        };
        let mut fds = [PollFd::new(&self.0, PollFlags::IN)];
        match rustix::event::poll(&mut fds, Some(&ts)) {
            Ok(0) | Err(Errno::INTR) => Ok(false),
            Ok(_) => Ok(true),
            Err(errno) => Err(Error::Poll { errno }),
        }
    }

    /// Receives the next queued message from the kernel (port id 0) without
    /// blocking; messages from anyone else are dropped here.
    pub fn recv<'a>(&self, buf: &'a mut [u8]) -> Result<Recv<'a>> {
        loop {
            match rustix::net::recvfrom(&self.0, &mut buf[..], RecvFlags::DONTWAIT) {
                Ok((n, _, addr)) => {
                    let from_kernel = addr
                        .and_then(|a| SocketAddrNetlink::try_from(a).ok())
                        .is_none_or(|a| a.pid() == 0);
                    if from_kernel {
                        return Ok(Recv::Message(buf.get(..n).unwrap_or(&[])));
                    }
                }
                Err(Errno::AGAIN) => return Ok(Recv::Empty),
                Err(Errno::INTR) => continue,
                Err(Errno::NOBUFS) => return Ok(Recv::Overflow),
                Err(errno) => return Err(Error::Netlink { op: "recv", errno }),
            }
        }
    }
}
