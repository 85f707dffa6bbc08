//! Connected Unix stream socket pairs: a duplex byte stream in one fd per end, whose
//! `shutdown` reaches the peer even while forked children still hold copies of the fd.

use std::io;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};

use rustix::net::{AddressFamily, RecvFlags, SendFlags, Shutdown, SocketFlags, SocketType};

use crate::retry_eintr;

/// Creates a connected pair of Unix stream sockets, close-on-exec. Writing to one whose peer
/// is gone fails with `EPIPE` through [`send_nosignal`] (Apple: on any write, as the sockets
/// are created with `SO_NOSIGPIPE`), never kills the process with SIGPIPE.
///
/// # References
///  - [POSIX](https://pubs.opengroup.org/onlinepubs/9799919799/functions/socketpair.html)
///  - [Linux](https://man7.org/linux/man-pages/man2/socketpair.2.html)
pub fn socketpair() -> io::Result<(OwnedFd, OwnedFd)> {
    #[cfg(not(any(target_os = "macos", target_os = "ios")))]
    {
        Ok(rustix::net::socketpair(
            AddressFamily::UNIX,
            SocketType::STREAM,
            SocketFlags::CLOEXEC,
            None,
        )?)
    }
    // Apple has no SOCK_CLOEXEC: set the flag right after, as std does there.
    #[cfg(any(target_os = "macos", target_os = "ios"))]
    {
        let (a, b) = rustix::net::socketpair(
            AddressFamily::UNIX,
            SocketType::STREAM,
            SocketFlags::empty(),
            None,
        )?;
        for fd in [&a, &b] {
            rustix::io::fcntl_setfd(fd, rustix::io::FdFlags::CLOEXEC)?;
            rustix::net::sockopt::set_socket_nosigpipe(fd, true)?;
        }
        Ok((a, b))
    }
}

/// Shuts the socket down in both directions (`shutdown(SHUT_RDWR)`): the peer reads
/// end-of-file and its writes fail with `EPIPE`, however many processes still hold a copy of
/// this fd. (Closing only drops this process's copy.)
///
/// # References
///  - [POSIX](https://pubs.opengroup.org/onlinepubs/9799919799/functions/shutdown.html)
pub fn shutdown(socket: impl AsFd) -> io::Result<()> {
    Ok(rustix::net::shutdown(socket, Shutdown::Both)?)
}

/// Reads what a socket holds without blocking (`recv` with `MSG_DONTWAIT`), whatever the fd's
/// own blocking mode: `ErrorKind::WouldBlock` when nothing is there, `Ok(0)` at end-of-file.
/// Writes on the same fd stay blocking.
pub fn recv_nonblocking(socket: BorrowedFd<'_>, buf: &mut [u8]) -> io::Result<usize> {
    retry_eintr(|| rustix::net::recv(socket, &mut *buf, RecvFlags::DONTWAIT)).map(|(got, _)| got)
}

/// Makes writes to `socket` fail with `EPIPE` rather than raise SIGPIPE when the peer is gone:
/// sets `SO_NOSIGPIPE` on Apple, where [`send_nosignal`] relies on it; nothing to do elsewhere
/// (`MSG_NOSIGNAL` does it per call). [`socketpair`] already did this for its sockets.
pub fn forbid_sigpipe(socket: impl AsFd) -> io::Result<()> {
    #[cfg(any(target_os = "macos", target_os = "ios"))]
    {
        Ok(rustix::net::sockopt::set_socket_nosigpipe(socket, true)?)
    }
    #[cfg(not(any(target_os = "macos", target_os = "ios")))]
    {
        let _ = socket;
        Ok(())
    }
}

/// Sends bytes on a socket without ever raising SIGPIPE (`MSG_NOSIGNAL`; on Apple the socket's
/// `SO_NOSIGPIPE`, see [`forbid_sigpipe`]): a peer that is gone is `ErrorKind::BrokenPipe`, even in a program whose
/// SIGPIPE is at its default "terminate". Blocks like `write`; retries `EINTR`; returns the
/// count sent, which may be short.
pub fn send_nosignal(socket: BorrowedFd<'_>, bytes: &[u8]) -> io::Result<usize> {
    #[cfg(not(any(target_os = "macos", target_os = "ios")))]
    let flags = SendFlags::NOSIGNAL;
    #[cfg(any(target_os = "macos", target_os = "ios"))]
    let flags = SendFlags::empty();
    retry_eintr(|| rustix::net::send(socket, bytes, flags))
}
