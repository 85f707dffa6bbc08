//! The async child's pipe ends: non-blocking fds registered with tokio's reactor, as
//! `AsyncWrite` (stdin) and `AsyncRead` (stdout, stderr).

use std::fs::File;
use std::io::{self, Read, Write};
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd, RawFd};
use std::pin::Pin;
use std::task::{Context, Poll, ready};

use ::tokio::io::unix::AsyncFd;
use ::tokio::io::{AsyncRead, AsyncWrite, Interest, ReadBuf};

/// Registers an fd we own with the current runtime's reactor, for `interest`.
///
/// tokio 1.54 deprecated the safe constructors for the unsafe `AsyncFd::register*`, whose
/// contract is that the fd stays open, and the same, for as long as the `AsyncFd` holds it.
/// That holds by construction for the types used here (`File`, `OwnedFd`): they own their fd,
/// cannot change it, and close it only when dropped, which the `AsyncFd` does after
/// deregistering. So the safe constructor is sound for them, and proc-spawn keeps
/// `#![deny(unsafe_code)]` with no exception.
pub(crate) fn register<T: OwnsItsFd>(fd: T, interest: Interest) -> io::Result<AsyncFd<T>> {
    #[allow(deprecated)] // Sound for an owned fd: see above.
    AsyncFd::with_interest(fd, interest)
}

/// The fd types [`register`] accepts: each owns one fd for its whole life.
pub(crate) trait OwnsItsFd: AsRawFd {}
impl OwnsItsFd for File {}
impl OwnsItsFd for OwnedFd {}

/// A pipe end made non-blocking and registered with the current runtime's reactor.
#[derive(Debug)]
pub(crate) struct Registered(pub(crate) AsyncFd<File>);

impl Registered {
    /// Registers `file` (switched to non-blocking first). Needs a runtime with IO enabled.
    pub(crate) fn new(file: File) -> io::Result<Registered> {
        fork_sys::set_nonblocking(&file, true)?;
        Ok(Registered(register(
            file,
            Interest::READABLE | Interest::WRITABLE,
        )?))
    }

    /// Deregisters the fd and puts it back in blocking mode.
    fn into_owned_fd(self) -> io::Result<OwnedFd> {
        let file = self.0.into_inner();
        fork_sys::set_nonblocking(&file, false)?;
        Ok(file.into())
    }

    fn poll_read(&self, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        loop {
            let mut guard = ready!(self.0.poll_read_ready(cx))?;
            let unfilled = buf.initialize_unfilled();
            match guard.try_io(|fd| retry_interrupted(|| fd.get_ref().read(unfilled))) {
                Ok(Ok(n)) => {
                    buf.advance(n);
                    return Poll::Ready(Ok(()));
                }
                Ok(Err(err)) => return Poll::Ready(Err(err)),
                // Not readable after all: readiness was cleared, ask again (registers the waker).
                Err(_would_block) => {}
            }
        }
    }

    fn poll_write(&self, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        loop {
            let mut guard = ready!(self.0.poll_write_ready(cx))?;
            match guard.try_io(|fd| retry_interrupted(|| fd.get_ref().write(buf))) {
                Ok(result) => return Poll::Ready(result),
                Err(_would_block) => {}
            }
        }
    }
}

fn retry_interrupted<T>(mut call: impl FnMut() -> io::Result<T>) -> io::Result<T> {
    loop {
        match call() {
            Err(err) if err.kind() == io::ErrorKind::Interrupted => {}
            other => return other,
        }
    }
}

macro_rules! async_pipe {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        #[derive(Debug)]
        pub struct $name(pub(crate) Registered);

        impl $name {
            /// The fd, deregistered from the reactor and back in blocking mode: to hand the
            /// pipe to another child ([`Stdio::from`](crate::Stdio)) or to blocking code.
            pub fn into_owned_fd(self) -> io::Result<OwnedFd> {
                self.0.into_owned_fd()
            }
        }

        impl AsFd for $name {
            fn as_fd(&self) -> BorrowedFd<'_> {
                self.0 .0.get_ref().as_fd()
            }
        }

        impl AsRawFd for $name {
            fn as_raw_fd(&self) -> RawFd {
                self.0 .0.as_raw_fd()
            }
        }
    };
}

async_pipe!(
    /// The parent's end of an async child's stdin pipe, an [`AsyncWrite`]; dropping it closes
    /// the pipe, and the child reads end-of-file (`shutdown` does not close it: drop it).
    ChildStdin
);
async_pipe!(
    /// The parent's end of an async child's stdout pipe, an [`AsyncRead`].
    ChildStdout
);
async_pipe!(
    /// The parent's end of an async child's stderr pipe, an [`AsyncRead`].
    ChildStderr
);

impl AsyncWrite for ChildStdin {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        self.0.poll_write(cx, buf)
    }

    /// Nothing is buffered here: always ready.
    fn poll_flush(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    /// A pipe has no half-close: drop the `ChildStdin` to close it.
    fn poll_shutdown(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }
}

impl AsyncRead for ChildStdout {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        self.0.poll_read(cx, buf)
    }
}

impl AsyncRead for ChildStderr {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        self.0.poll_read(cx, buf)
    }
}
