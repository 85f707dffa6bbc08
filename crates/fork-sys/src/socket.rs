//! Connected Unix stream socket pairs: a duplex byte stream in one fd per end, whose
//! `shutdown` reaches the peer even while forked children still hold copies of the fd.

use std::io::{self, IoSlice, IoSliceMut};
use std::mem::MaybeUninit;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};

use rustix::io::Errno;
use rustix::net::{
    AddressFamily, RecvAncillaryBuffer, RecvAncillaryMessage, RecvFlags, ReturnFlags,
    SendAncillaryBuffer, SendAncillaryMessage, SendFlags, Shutdown, SocketFlags, SocketType,
};

use crate::{Interest, retry_eintr};

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
    retry_eintr(|| rustix::net::send(socket, bytes, nosignal()))
}

/// `MSG_NOSIGNAL` where it exists; Apple relies on the socket's `SO_NOSIGPIPE` instead.
fn nosignal() -> SendFlags {
    #[cfg(not(any(target_os = "macos", target_os = "ios")))]
    {
        SendFlags::NOSIGNAL
    }
    #[cfg(any(target_os = "macos", target_os = "ios"))]
    {
        SendFlags::empty()
    }
}

/// The most descriptors one [`recv_with_fds`] accepts (Linux's own per-message limit,
/// `SCM_MAX_FD`, is 253); a larger `max_fds` is `InvalidInput` rather than a huge buffer.
const MAX_FDS_PER_MESSAGE: usize = 4096;

/// Sends all of `bytes` on a connected Unix stream socket, with `fds` attached (`SCM_RIGHTS`)
/// to the first `sendmsg`, so they arrive with the first byte; the rest of `bytes` follows with
/// plain sends. The receiver gets its own copies of the descriptors (the caller keeps `fds`).
///
/// Blocks until everything is sent, even on a non-blocking socket (it then sleeps in `poll`
/// between sends); retries `EINTR`; never raises SIGPIPE (`MSG_NOSIGNAL`, `SO_NOSIGPIPE` on
/// Apple: see [`forbid_sigpipe`]): a peer that is gone is `ErrorKind::BrokenPipe`. `bytes`
/// must not be empty when `fds` is not (`InvalidInput`): a stream socket carries descriptors
/// only along with data; empty `bytes` and no `fds` sends nothing. Linux takes at most 253
/// descriptors per message (`EINVAL` past it).
///
/// # References
///  - [POSIX sendmsg](https://pubs.opengroup.org/onlinepubs/9799919799/functions/sendmsg.html)
///  - [Linux sendmsg](https://man7.org/linux/man-pages/man2/sendmsg.2.html)
///  - [Linux unix(7), SCM_RIGHTS](https://man7.org/linux/man-pages/man7/unix.7.html)
pub fn send_with_fds(
    socket: BorrowedFd<'_>,
    bytes: &[u8],
    fds: &[BorrowedFd<'_>],
) -> io::Result<()> {
    if bytes.is_empty() {
        return if fds.is_empty() {
            Ok(())
        } else {
            Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!(
                    "cannot send {} descriptors without at least one byte",
                    fds.len()
                ),
            ))
        };
    }
    let mut space: Vec<MaybeUninit<u8>> = if fds.is_empty() {
        Vec::new()
    } else {
        vec![MaybeUninit::uninit(); rustix::cmsg_space!(ScmRights(fds.len()))]
    };
    let mut control = SendAncillaryBuffer::new(&mut space);
    if !fds.is_empty() && !control.push(SendAncillaryMessage::ScmRights(fds)) {
        return Err(io::Error::other(format!(
            "no room for {} descriptors in the control buffer",
            fds.len()
        )));
    }
    // Until the first send succeeds, nothing (neither bytes nor fds) has left: retrying it
    // with the same control message after EINTR or EAGAIN sends the fds exactly once.
    let mut sent = loop {
        match rustix::net::sendmsg(socket, &[IoSlice::new(bytes)], &mut control, nosignal()) {
            Ok(sent) => break sent,
            Err(Errno::INTR) => continue,
            Err(Errno::AGAIN) => wait_writable(socket)?,
            Err(err) => return Err(err.into()),
        }
    };
    while sent < bytes.len() {
        match send_nosignal(socket, &bytes[sent..]) {
            Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
            Ok(more) => sent += more,
            Err(err) if err.kind() == io::ErrorKind::WouldBlock => wait_writable(socket)?,
            Err(err) => return Err(err),
        }
    }
    Ok(())
}

fn wait_writable(socket: BorrowedFd<'_>) -> io::Result<()> {
    crate::poll(&[(socket, Interest::Write)], None).map(drop)
}

/// Receives up to `buf.len()` bytes and up to `max_fds` descriptors in one `recvmsg` from a
/// Unix stream socket. Returns the count of bytes read (0 = end-of-file) and the descriptors
/// that came with them, which are close-on-exec (`MSG_CMSG_CLOEXEC` on Linux and the BSDs;
/// set right after the call on Apple, where a concurrent fork+exec could inherit them in
/// between, as with [`pipe`](crate::pipe) there).
///
/// Blocks unless the socket is non-blocking (then `ErrorKind::WouldBlock`); retries `EINTR`.
/// Descriptors travel with the first byte of their `sendmsg` ([`send_with_fds`]): read them
/// with a call that receives that byte. More descriptors than `max_fds` is an error
/// (`InvalidData`, naming `max_fds`): those that arrived are closed, the kernel closes those
/// that did not fit (`MSG_CTRUNC`), and the bytes of this call are lost with them.
/// `max_fds` over 4096 is `InvalidInput`. Give a non-empty `buf`: with an empty one, 0 cannot
/// tell end-of-file from "nothing read".
///
/// # References
///  - [POSIX recvmsg](https://pubs.opengroup.org/onlinepubs/9799919799/functions/recvmsg.html)
///  - [Linux recvmsg](https://man7.org/linux/man-pages/man2/recvmsg.2.html)
///  - [Linux unix(7), SCM_RIGHTS](https://man7.org/linux/man-pages/man7/unix.7.html)
pub fn recv_with_fds(
    socket: BorrowedFd<'_>,
    buf: &mut [u8],
    max_fds: usize,
) -> io::Result<(usize, Vec<OwnedFd>)> {
    if max_fds > MAX_FDS_PER_MESSAGE {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("max_fds {max_fds} is over the limit of {MAX_FDS_PER_MESSAGE}"),
        ));
    }
    let mut space: Vec<MaybeUninit<u8>> = if max_fds == 0 {
        Vec::new()
    } else {
        vec![MaybeUninit::uninit(); rustix::cmsg_space!(ScmRights(max_fds))]
    };
    let mut control = RecvAncillaryBuffer::new(&mut space);
    #[cfg(not(any(target_os = "macos", target_os = "ios")))]
    let flags = RecvFlags::CMSG_CLOEXEC;
    #[cfg(any(target_os = "macos", target_os = "ios"))]
    let flags = RecvFlags::empty();
    let mut iov = [IoSliceMut::new(buf)];
    let received = retry_eintr(|| rustix::net::recvmsg(socket, &mut iov, &mut control, flags))?;

    let mut fds = Vec::new();
    for message in control.drain() {
        if let RecvAncillaryMessage::ScmRights(arrived) = message {
            fds.extend(arrived);
        }
    }
    // The control buffer is padded for alignment, so the kernel may fit a few more than
    // `max_fds` without truncating: check both.
    if received.flags.contains(ReturnFlags::CTRUNC) || fds.len() > max_fds {
        let arrived = fds.len();
        drop(fds);
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            format!(
                "more descriptors came with the message than the {max_fds} expected \
                 ({arrived} arrived; all closed)"
            ),
        ));
    }
    #[cfg(any(target_os = "macos", target_os = "ios"))]
    for fd in &fds {
        rustix::io::fcntl_setfd(fd, rustix::io::FdFlags::CLOEXEC)?;
    }
    Ok((received.bytes, fds))
}
