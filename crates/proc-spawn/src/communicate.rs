//! `communicate`: stdin, stdout and stderr driven together in one `poll` loop, so a child that
//! fills its output pipe while we are still writing its input cannot deadlock us.
//!
//! The pipes are switched to non-blocking for the loop: a write takes whatever room the pipe
//! has (writing "all of it" on a blocking pipe would stall the loop), and reads take everything
//! available in one pass (`read_to_end` until `WouldBlock`), straight into the output buffers.
//! On Linux the pipes are enlarged to 1 MiB first, which more than doubles bulk throughput.

use std::io::{self, ErrorKind, Read, Write};
use std::os::fd::{AsFd, BorrowedFd};
use std::time::{Duration, Instant};

use fork_sys::Interest;

use crate::{Child, Error};

/// The pipe size asked for (Linux `F_SETPIPE_SZ`); the kernel may cap it.
const BIG_PIPE: usize = 1024 * 1024;

/// What `communicate` has done with the child's input, across calls: a call that times out
/// part-way keeps the unwritten rest here, so that the next call finishes it, and a later
/// call can tell whether its input continues this one.
#[derive(Default)]
pub(crate) enum InputProgress {
    /// No call has written input or closed stdin yet.
    #[default]
    NotStarted,
    /// A call stopped (timeout, error) with input unwritten: `kept[sent..]` is still to go;
    /// the whole input was `total` bytes long.
    Unfinished {
        total: usize,
        kept: Vec<u8>,
        sent: usize,
    },
    /// Stdin is closed: the whole input of `len` bytes went out, or the child closed its end
    /// first (`EPIPE`: the rest was dropped, as Python does).
    Finished { len: usize },
}

impl std::fmt::Debug for InputProgress {
    /// Lengths only: the kept input may be large.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            InputProgress::NotStarted => f.write_str("NotStarted"),
            InputProgress::Unfinished { total, kept, sent } => f
                .debug_struct("Unfinished")
                .field("total", total)
                .field("unwritten", &(kept.len() - sent))
                .finish(),
            InputProgress::Finished { len } => {
                f.debug_struct("Finished").field("len", len).finish()
            }
        }
    }
}

impl InputProgress {
    /// The input still to be written, from the kept rest.
    fn unsent(&self) -> &[u8] {
        match self {
            InputProgress::Unfinished { kept, sent, .. } => kept.get(*sent..).unwrap_or_default(),
            _ => &[],
        }
    }
}

/// Where this call's input comes from.
enum Source<'a> {
    /// The caller's bytes (the first call with input): `written` of them have gone out.
    Caller { bytes: &'a [u8], written: usize },
    /// The rest an earlier call kept in the child ([`InputProgress::Unfinished`]), or nothing.
    Kept,
}

pub(crate) fn communicate(
    child: &mut Child,
    input: Option<&[u8]>,
    timeout: Option<Duration>,
) -> Result<(Vec<u8>, Vec<u8>), Error> {
    let deadline = timeout.map(|t| Instant::now().checked_add(t));
    let input = input.unwrap_or_default();
    let mut source = source_of_input(child, input)?;
    if remaining(child, &source).is_empty() {
        // Nothing (left) to write: close stdin so the child sees end-of-file.
        finish_input(child, &source);
    }
    let result = set_up_pipes(child)
        .map_err(|err| child.io_error("preparing pipes", err))
        .and_then(|()| drive(child, &mut source, deadline, timeout));
    if result.is_err() {
        keep_unwritten_input(child, &source);
        // The pipes still open go back to blocking mode, whatever stopped the loop, for the
        // caller's own reads and writes on them.
        for fd in open_pipes(child).into_iter().flatten() {
            let _ = fork_sys::set_nonblocking(fd, false);
        }
    }
    result
}

/// Decides where this call's input comes from, refusing (`InvalidInput`, nothing written or
/// changed) an `input` that does not continue what an earlier call started: a resumed call
/// passes `None` (or nothing) to finish the kept input, or the same input again.
fn source_of_input<'a>(child: &Child, input: &'a [u8]) -> Result<Source<'a>, Error> {
    let refuse = |message: String| {
        Err(child.io_error(
            "communicating",
            io::Error::new(ErrorKind::InvalidInput, message),
        ))
    };
    match &child.input {
        InputProgress::NotStarted if !input.is_empty() && child.stdin.is_none() => {
            refuse("input was given but the child's stdin is not piped".to_owned())
        }
        InputProgress::NotStarted => Ok(Source::Caller {
            bytes: input,
            written: 0,
        }),
        InputProgress::Unfinished { total, kept, sent } => {
            let written = total - (kept.len() - sent);
            let unsent = child.input.unsent();
            if !input.is_empty() && (input.len() != *total || input.get(written..) != Some(unsent))
            {
                return refuse(format!(
                    "input of {} bytes differs from the unfinished input of an earlier call \
                     ({written} of {total} bytes written): pass None to finish that one",
                    input.len()
                ));
            }
            if child.stdin.is_none() {
                return refuse(format!(
                    "the child's stdin was taken with {} bytes of input unwritten",
                    unsent.len()
                ));
            }
            Ok(Source::Kept)
        }
        InputProgress::Finished { len } if !input.is_empty() && input.len() != *len => {
            refuse(format!(
                "input of {} bytes was given, but stdin was closed after an earlier call's \
                 {len} bytes",
                input.len()
            ))
        }
        InputProgress::Finished { .. } => Ok(Source::Kept),
    }
}

/// The input this call still has to write.
fn remaining<'a>(child: &'a Child, source: &Source<'a>) -> &'a [u8] {
    match source {
        Source::Caller { bytes, written } => bytes.get(*written..).unwrap_or_default(),
        Source::Kept => child.input.unsent(),
    }
}

/// Closes stdin on `communicate`'s behalf (end-of-file for the child): all input written, or
/// the child stopped reading.
fn finish_input(child: &mut Child, source: &Source<'_>) {
    let len = match (source, &child.input) {
        (Source::Caller { bytes, .. }, _) => bytes.len(),
        (Source::Kept, InputProgress::Unfinished { total, .. }) => *total,
        (Source::Kept, InputProgress::Finished { len }) => *len,
        (Source::Kept, InputProgress::NotStarted) => 0,
    };
    child.stdin = None;
    child.input = InputProgress::Finished { len };
}

/// After a call that stopped early: the caller's bytes not written yet are copied into the
/// child, so a later call can finish them (the caller's slice cannot be kept).
fn keep_unwritten_input(child: &mut Child, source: &Source<'_>) {
    if let Source::Caller { bytes, written } = source {
        if child.stdin.is_some() && *written < bytes.len() {
            child.input = InputProgress::Unfinished {
                total: bytes.len(),
                kept: bytes[*written..].to_vec(),
                sent: 0,
            };
        }
    }
}

/// The `poll` loop, then the wait; leaves the pipes still open non-blocking when it fails.
fn drive(
    child: &mut Child,
    source: &mut Source<'_>,
    deadline: Option<Option<Instant>>,
    timeout: Option<Duration>,
) -> Result<(Vec<u8>, Vec<u8>), Error> {
    let mut stdout = Vec::new();
    let mut stderr = Vec::new();
    while child.stdin.is_some() || child.stdout.is_some() || child.stderr.is_some() {
        let remaining = match deadline {
            None | Some(None) => None,
            Some(Some(deadline)) => {
                let now = Instant::now();
                if now >= deadline {
                    return Err(timed_out(child, timeout, stdout, stderr));
                }
                Some(deadline - now)
            }
        };
        let fds: Vec<_> = open_pipes(child)
            .into_iter()
            .zip([Interest::Write, Interest::Read, Interest::Read])
            .filter_map(|(fd, interest)| Some((fd?, interest)))
            .collect();
        let ready =
            fork_sys::poll(&fds, remaining).map_err(|err| child.io_error("polling", err))?;
        drop(fds);
        let mut ready = ready.into_iter();
        if child.stdin.is_some() && ready.next().is_some_and(|r| r.is_ready()) {
            write_input(child, source)?;
        }
        if child.stdout.is_some() && ready.next().is_some_and(|r| r.is_ready()) {
            if let Some(out) = child.stdout.as_mut() {
                if read_available(out, &mut stdout)
                    .map_err(|err| child.io_error("reading stdout", err))?
                {
                    child.stdout = None;
                }
            }
        }
        if child.stderr.is_some() && ready.next().is_some_and(|r| r.is_ready()) {
            if let Some(err) = child.stderr.as_mut() {
                if read_available(err, &mut stderr)
                    .map_err(|e| child.io_error("reading stderr", e))?
                {
                    child.stderr = None;
                }
            }
        }
    }

    let status = match deadline {
        None | Some(None) => child.wait().map(Some)?,
        Some(Some(deadline)) => {
            child.wait_timeout(deadline.saturating_duration_since(Instant::now()))?
        }
    };
    match status {
        Some(_) => Ok((stdout, stderr)),
        None => Err(timed_out(child, timeout, stdout, stderr)),
    }
}

/// The child's stdin, stdout and stderr pipes, where still open.
fn open_pipes(child: &Child) -> [Option<BorrowedFd<'_>>; 3] {
    [
        child.stdin.as_ref().map(AsFd::as_fd),
        child.stdout.as_ref().map(AsFd::as_fd),
        child.stderr.as_ref().map(AsFd::as_fd),
    ]
}

/// Non-blocking pipes for the loop, enlarged where the platform allows.
fn set_up_pipes(child: &Child) -> io::Result<()> {
    for fd in open_pipes(child).into_iter().flatten() {
        fork_sys::set_nonblocking(fd, true)?;
        // Best effort: unsupported off Linux, capped by /proc/sys/fs/pipe-max-size.
        let _ = fork_sys::set_pipe_size(fd, BIG_PIPE);
    }
    Ok(())
}

/// Writes as much of what is left of the input as the pipe takes; closes stdin when all is
/// written or the child stopped reading (`EPIPE`, absorbed as in Python).
fn write_input(child: &mut Child, source: &mut Source<'_>) -> Result<(), Error> {
    loop {
        let Some(stdin) = child.stdin.as_mut() else {
            return Ok(());
        };
        let rest = match source {
            Source::Caller { bytes, written } => bytes.get(*written..).unwrap_or_default(),
            Source::Kept => child.input.unsent(),
        };
        if rest.is_empty() {
            finish_input(child, source);
            return Ok(());
        }
        match stdin.write(rest) {
            Ok(n) => match source {
                Source::Caller { written, .. } => *written += n,
                Source::Kept => {
                    if let InputProgress::Unfinished { sent, .. } = &mut child.input {
                        *sent += n;
                    }
                }
            },
            Err(err) if err.kind() == ErrorKind::WouldBlock => return Ok(()),
            Err(err) if err.kind() == ErrorKind::Interrupted => {}
            Err(err) if err.kind() == ErrorKind::BrokenPipe => {
                finish_input(child, source);
                return Ok(());
            }
            Err(err) => return Err(child.io_error("writing stdin", err)),
        }
    }
}

/// Reads everything available into `buffer`; `Ok(true)` at end-of-file.
fn read_available(pipe: &mut impl Read, buffer: &mut Vec<u8>) -> io::Result<bool> {
    loop {
        // `read_to_end` keeps what it read when it stops with an error, `WouldBlock` included.
        match pipe.read_to_end(buffer) {
            Ok(_) => return Ok(true),
            Err(err) if err.kind() == ErrorKind::WouldBlock => return Ok(false),
            Err(err) if err.kind() == ErrorKind::Interrupted => {}
            Err(err) => return Err(err),
        }
    }
}

/// The timeout error, with everything read so far.
fn timed_out(child: &Child, timeout: Option<Duration>, stdout: Vec<u8>, stderr: Vec<u8>) -> Error {
    Error::TimeoutExpired {
        args: child.args().to_vec(),
        timeout: timeout.unwrap_or_default(),
        stdout,
        stderr,
    }
}
