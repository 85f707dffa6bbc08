//! `Connection`: a typed duplex channel between processes, like `multiprocessing.Pipe`.

use std::cell::Cell;
use std::fmt;
use std::fs::File;
use std::io::{self, Read};
use std::marker::PhantomData;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::time::{Duration, Instant};

use fork_sys::Interest;
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::codec::{self, CodecError, DEFAULT_MAX_FRAME_LEN, FrameBuffer};

/// Creates a connected pair: what the first end sends (`A`) the second receives, and what the
/// second sends (`B`) the first receives.
///
/// Create it before [`Process::spawn`](crate::Process::spawn) and move one end into the
/// closure. Each side sees [`ConnectionError::Disconnected`] as soon as the other drops its
/// end or exits, even though `fork` gave the child a copy of the parent's end too: the ends
/// are Unix sockets, and dropping one shuts the socket down for every copy. (With Python's
/// `Pipe`, the child must close its inherited copy by hand or `recv` waits for ever.)
///
/// ```
/// let (mut parent, mut child) = proc_core::pipe::<String, usize>()?;
/// let p = proc_core::Process::spawn(move || {
///     let mut served = 0;
///     while let Ok(text) = child.recv() {
///         child.send(&text.len()).expect("the parent listens");
///         served += 1;
///     }
///     served // the parent hung up
/// })?;
/// parent.send(&"hello".to_string())?;
/// assert_eq!(parent.recv()?, 5);
/// drop(parent);
/// assert_eq!(p.join()?, 1);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub fn pipe<A, B>() -> io::Result<(Connection<A, B>, Connection<B, A>)> {
    let (a, b) = fork_sys::socketpair()?;
    Ok((Connection::from_fd(a)?, Connection::from_fd(b)?))
}

thread_local! {
    /// Set while `Process::spawn` drops, in the parent, its copy of the closure it ran in the
    /// child: the connection ends captured there now belong to the child, so dropping the
    /// parent's copies must only close fds, not shut the sockets down.
    static DISCARDING_CHILD_CLOSURE: Cell<bool> = const { Cell::new(false) };
}

/// Drops `closure` (the parent's copy of a closure now running in a child) without shutting
/// down the connections it captured. A closure with nothing to drop (no captures, or only
/// plain values) is left alone: the flag is thread-local memory, and in a parent that has just
/// forked, the first write to a page is a copy-on-write fault (a few per cent of a small
/// `spawn` + `join`).
#[inline]
pub(crate) fn discard_child_closure<F>(closure: F) {
    if !std::mem::needs_drop::<F>() {
        return;
    }
    /// Puts the flag back as it was, even if a captured value's `Drop` panics; "as it was"
    /// because a captured value's `Drop` may itself spawn (and discard) a process.
    struct Restore(bool);
    impl Drop for Restore {
        fn drop(&mut self) {
            DISCARDING_CHILD_CLOSURE.set(self.0);
        }
    }
    let _restore = Restore(DISCARDING_CHILD_CLOSURE.replace(true));
    drop(closure);
}

/// One end of a [`pipe`]: sends `S`, receives `R`, each value one length-prefixed bincode frame.
pub struct Connection<S, R> {
    /// One end of a connected stream socket. Writes block; reads use `MSG_DONTWAIT`, so a
    /// timed receive never blocks inside `recv`.
    socket: File,
    frames: FrameBuffer,
    send_buf: Vec<u8>,
    eof: bool,
    types: PhantomData<fn(S) -> R>,
}

impl<S, R> fmt::Debug for Connection<S, R> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Connection")
            .field("socket", &self.socket)
            .field("buffered", &self.frames.pending())
            .field("eof", &self.eof)
            .finish()
    }
}

/// Why a [`Connection`] could not send or receive.
#[derive(Debug)]
#[non_exhaustive]
pub enum ConnectionError {
    /// The other end was closed (its process exited or dropped it); nothing more will come,
    /// or nothing sent will be read.
    Disconnected,
    /// A frame was refused: over the size limit, cut off, or not the expected type.
    Codec(CodecError),
    /// The underlying pipe failed.
    Io(io::Error),
}

impl fmt::Display for ConnectionError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ConnectionError::Disconnected => {
                f.write_str("the other end of the connection is closed")
            }
            ConnectionError::Codec(err) => write!(f, "connection frame: {err}"),
            ConnectionError::Io(err) => write!(f, "connection I/O failed: {err}"),
        }
    }
}

impl std::error::Error for ConnectionError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            ConnectionError::Disconnected => None,
            ConnectionError::Codec(err) => Some(err),
            ConnectionError::Io(err) => Some(err),
        }
    }
}

impl From<CodecError> for ConnectionError {
    fn from(err: CodecError) -> ConnectionError {
        ConnectionError::Codec(err)
    }
}

impl<S, R> Connection<S, R> {
    /// A connection over one end of a connected stream socket you already have (from
    /// [`fork_sys::socketpair`] or `UnixStream::pair`, say). Fails only if the socket cannot be
    /// told to report a gone peer as an error rather than SIGPIPE (Apple's `SO_NOSIGPIPE`).
    pub fn from_fd(socket: OwnedFd) -> io::Result<Self> {
        fork_sys::forbid_sigpipe(&socket)?;
        Ok(Connection {
            socket: File::from(socket),
            frames: FrameBuffer::new(DEFAULT_MAX_FRAME_LEN),
            send_buf: Vec::new(),
            eof: false,
            types: PhantomData,
        })
    }

    /// Sets the largest frame this end will send or accept, in bytes (default 1 GiB).
    pub fn with_max_frame_len(mut self, bytes: usize) -> Self {
        self.frames = FrameBuffer::new(bytes);
        self
    }
}

impl<S: Serialize, R> Connection<S, R> {
    /// Sends one value. Blocks while the pipe is full (until the other side reads). An
    /// oversize or unencodable value is refused before a byte is written, so the stream stays
    /// in step.
    pub fn send(&mut self, value: &S) -> Result<(), ConnectionError> {
        self.send_buf.clear();
        codec::encode_frame(value, &mut self.send_buf, self.frames.max_len())?;
        let mut sent = 0;
        while sent < self.send_buf.len() {
            // Never SIGPIPE: a program whose SIGPIPE is at its default would die here instead
            // of hearing `Disconnected`.
            match fork_sys::send_nosignal(self.socket.as_fd(), &self.send_buf[sent..]) {
                Ok(n) => sent += n,
                Err(err)
                    if matches!(
                        err.kind(),
                        io::ErrorKind::BrokenPipe | io::ErrorKind::ConnectionReset
                    ) =>
                {
                    return Err(ConnectionError::Disconnected);
                }
                Err(err) => return Err(ConnectionError::Io(err)),
            }
        }
        Ok(())
    }
}

impl<S, R: DeserializeOwned> Connection<S, R> {
    /// Receives one value, waiting as long as it takes; `Disconnected` once the other end is
    /// closed and everything it sent has been received.
    pub fn recv(&mut self) -> Result<R, ConnectionError> {
        match self.recv_until(None)? {
            Some(value) => Ok(value),
            None => Err(ConnectionError::Io(io::Error::other(
                "receive without a deadline returned nothing",
            ))),
        }
    }

    /// Receives one value, waiting at most `timeout`; `Ok(None)` when none came in time. A
    /// frame that was half-way through arriving is kept for the next call.
    pub fn recv_timeout(&mut self, timeout: Duration) -> Result<Option<R>, ConnectionError> {
        self.recv_until(Instant::now().checked_add(timeout))
    }

    /// Receives one value if one has arrived, without waiting.
    pub fn try_recv(&mut self) -> Result<Option<R>, ConnectionError> {
        self.recv_until(Some(Instant::now()))
    }

    /// Whether a value can be received without blocking (Python's `Connection.poll`), waiting
    /// at most `timeout` for one; also `true` once the peer is gone (`recv` then says so).
    pub fn poll(&mut self, timeout: Duration) -> Result<bool, ConnectionError> {
        self.wait_for_frame(Instant::now().checked_add(timeout))
    }

    fn recv_until(&mut self, deadline: Option<Instant>) -> Result<Option<R>, ConnectionError> {
        if !self.wait_for_frame(deadline)? {
            return Ok(None);
        }
        if let Some(value) = self.frames.next_frame()? {
            return Ok(Some(value));
        }
        // End-of-file with no whole frame: a clean hang-up, or one in the middle of a frame.
        self.frames.check_complete_at_eof()?;
        Err(ConnectionError::Disconnected)
    }

    /// Reads until a whole frame is buffered or the peer is gone (`true`), or `deadline`
    /// passes (`false`). Reads in bounded passes and sleeps in `poll` between them; after the
    /// deadline it makes exactly one more pass, so what already sits in the socket is always
    /// seen (`try_recv` finds a frame larger than one read), while a frame still streaming in
    /// cannot stretch the wait. Partial frames stay buffered for the next call.
    fn wait_for_frame(&mut self, deadline: Option<Instant>) -> Result<bool, ConnectionError> {
        loop {
            if self.eof || self.frames.has_frame()? {
                return Ok(true);
            }
            let expired = deadline.is_some_and(|deadline| Instant::now() >= deadline);
            let pass = self
                .frames
                .read_available(&mut NonBlockingRecv(self.socket.as_fd()))
                .map_err(ConnectionError::Io)?;
            self.eof |= pass.eof;
            if expired {
                return Ok(self.eof || self.frames.has_frame()?);
            }
            if pass.bytes > 0 || pass.eof {
                continue;
            }
            let remaining =
                deadline.map(|deadline| deadline.saturating_duration_since(Instant::now()));
            fork_sys::poll(&[(self.socket.as_fd(), Interest::Read)], remaining)
                .map_err(ConnectionError::Io)?;
        }
    }
}

impl<S, R> Drop for Connection<S, R> {
    fn drop(&mut self) {
        if !DISCARDING_CHILD_CLOSURE.get() {
            // Reaches the peer even while forked children hold copies of this fd. Fails only
            // if the peer is gone already, which is what we wanted.
            let _ = fork_sys::shutdown(&self.socket);
        }
    }
}

/// `Read` through `recv(MSG_DONTWAIT)`, so reads never block while writes on the same socket
/// still do.
struct NonBlockingRecv<'a>(BorrowedFd<'a>);

impl Read for NonBlockingRecv<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        fork_sys::recv_nonblocking(self.0, buf)
    }
}
