//! `Stdio`: what a child's stdin, stdout or stderr is connected to, and the pipe handles the
//! parent keeps (`ChildStdin`, `ChildStdout`, `ChildStderr`).

use std::fs::{File, OpenOptions};
use std::io::{self, Read, Write};
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd, RawFd};
use std::sync::Arc;

/// What one of a child's standard streams is connected to. Like std's `Stdio`, plus
/// [`Stdio::stdout`] (Python's `subprocess.STDOUT`) to send stderr where stdout goes.
#[derive(Debug, Clone, Default)]
pub struct Stdio(pub(crate) Kind);

#[derive(Debug, Clone, Default)]
pub(crate) enum Kind {
    /// The parent's own stream.
    #[default]
    Inherit,
    /// A new pipe; the parent gets the other end.
    Piped,
    /// `/dev/null`.
    Null,
    /// An open file or fd (shared, so a `Command` can be cloned and spawned again).
    Fd(Arc<OwnedFd>),
    /// Wherever the child's stdout goes (for stderr only).
    Stdout,
}

impl Stdio {
    /// The parent's stream (the default, as in std and Python).
    pub fn inherit() -> Stdio {
        Stdio(Kind::Inherit)
    }

    /// A new pipe: the parent writes the child's stdin through [`Child::stdin`](crate::Child),
    /// reads its stdout or stderr through [`Child::stdout`](crate::Child) /
    /// [`Child::stderr`](crate::Child).
    pub fn piped() -> Stdio {
        Stdio(Kind::Piped)
    }

    /// `/dev/null`: reads see end-of-file, writes vanish (Python's `DEVNULL`).
    pub fn null() -> Stdio {
        Stdio(Kind::Null)
    }

    /// For stderr: the same place as the child's stdout, so both arrive interleaved in the
    /// order written (Python's `stderr=subprocess.STDOUT`). Invalid for stdin and stdout.
    pub fn stdout() -> Stdio {
        Stdio(Kind::Stdout)
    }
}

impl From<OwnedFd> for Stdio {
    /// The child uses this fd (a file, a socket, a pipe end); the parent's copy closes when
    /// the `Command` holding it drops.
    fn from(fd: OwnedFd) -> Stdio {
        Stdio(Kind::Fd(Arc::new(fd)))
    }
}

impl From<File> for Stdio {
    fn from(file: File) -> Stdio {
        Stdio::from(OwnedFd::from(file))
    }
}

/// Which standard stream, for choosing how `/dev/null` is opened and for error messages.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Stream {
    Stdin,
    Stdout,
    Stderr,
}

/// One stream, ready for the spawn: the fd the child gets (if not inherited) and the pipe end
/// the parent keeps (if piped).
#[derive(Debug, Default)]
pub(crate) struct PreparedStream {
    /// An fd we opened for the child (pipe end, `/dev/null`), closed after the spawn.
    opened: Option<OwnedFd>,
    /// A caller's fd, borrowed.
    given: Option<Arc<OwnedFd>>,
    /// The parent's end of a pipe.
    pub(crate) parent_end: Option<OwnedFd>,
}

impl PreparedStream {
    /// The fd the child should get as this stream; `None` inherits the parent's.
    pub(crate) fn child_fd(&self) -> Option<BorrowedFd<'_>> {
        self.opened
            .as_ref()
            .map(AsFd::as_fd)
            .or_else(|| self.given.as_deref().map(AsFd::as_fd))
    }
}

/// Opens what `stdio` asks for. `Kind::Stdout` is resolved by the caller (it needs stdout's
/// prepared stream) and is an error here.
pub(crate) fn prepare(stdio: &Stdio, stream: Stream) -> io::Result<PreparedStream> {
    let mut prepared = PreparedStream::default();
    match &stdio.0 {
        Kind::Inherit => {}
        Kind::Piped => {
            let (read, write) = fork_sys::pipe()?;
            let (child, parent) = match stream {
                Stream::Stdin => (read, write),
                Stream::Stdout | Stream::Stderr => (write, read),
            };
            prepared.opened = Some(child);
            prepared.parent_end = Some(parent);
        }
        Kind::Null => {
            let null = OpenOptions::new()
                .read(stream == Stream::Stdin)
                .write(stream != Stream::Stdin)
                .open("/dev/null")?;
            prepared.opened = Some(null.into());
        }
        Kind::Fd(fd) => prepared.given = Some(Arc::clone(fd)),
        Kind::Stdout => {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "Stdio::stdout() is only valid for stderr",
            ));
        }
    }
    Ok(prepared)
}

macro_rules! pipe_handle {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        #[derive(Debug)]
        pub struct $name(pub(crate) File);

        impl AsFd for $name {
            fn as_fd(&self) -> BorrowedFd<'_> {
                self.0.as_fd()
            }
        }

        impl AsRawFd for $name {
            fn as_raw_fd(&self) -> RawFd {
                self.0.as_raw_fd()
            }
        }

        impl From<$name> for OwnedFd {
            fn from(handle: $name) -> OwnedFd {
                handle.0.into()
            }
        }

        impl From<$name> for Stdio {
            /// Connects another child to this pipe: a hand-made pipeline.
            fn from(handle: $name) -> Stdio {
                Stdio::from(OwnedFd::from(handle))
            }
        }
    };
}

pipe_handle!(
    /// The parent's end of a child's stdin pipe; dropping it closes the pipe, and the child
    /// reads end-of-file.
    ChildStdin
);
pipe_handle!(
    /// The parent's end of a child's stdout pipe.
    ChildStdout
);
pipe_handle!(
    /// The parent's end of a child's stderr pipe.
    ChildStderr
);

impl Write for ChildStdin {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.0.write(buf)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.0.flush()
    }
}

impl Read for ChildStdout {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        self.0.read(buf)
    }
}

impl Read for ChildStderr {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        self.0.read(buf)
    }
}
