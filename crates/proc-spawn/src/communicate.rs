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

pub(crate) fn communicate(
    child: &mut Child,
    input: Option<&[u8]>,
    timeout: Option<Duration>,
) -> Result<(Vec<u8>, Vec<u8>), Error> {
    let deadline = timeout.map(|t| Instant::now().checked_add(t));
    let input = input.unwrap_or_default();
    if !input.is_empty() && child.stdin.is_none() && !child.input_closed {
        return Err(child.io_error(
            "communicating",
            io::Error::new(
                ErrorKind::InvalidInput,
                "input was given but the child's stdin is not piped",
            ),
        ));
    }
    if child.input_written >= input.len() {
        // Nothing (left) to write: close stdin so the child sees end-of-file.
        close_input(child);
    }
    let result = set_up_pipes(child)
        .map_err(|err| child.io_error("preparing pipes", err))
        .and_then(|()| drive(child, input, deadline, timeout));
    if result.is_err() {
        // The pipes still open go back to blocking mode, whatever stopped the loop, for the
        // caller's own reads and writes on them.
        for fd in open_pipes(child).into_iter().flatten() {
            let _ = fork_sys::set_nonblocking(fd, false);
        }
    }
    result
}

/// The `poll` loop, then the wait; leaves the pipes still open non-blocking when it fails.
fn drive(
    child: &mut Child,
    input: &[u8],
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
            write_input(child, input)?;
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

/// Closes the child's stdin on `communicate`'s behalf (end-of-file for the child).
fn close_input(child: &mut Child) {
    if child.stdin.take().is_some() {
        child.input_closed = true;
    }
}

/// Writes as much of what is left of `input` as the pipe takes; closes stdin when all is
/// written or the child stopped reading (`EPIPE`, absorbed as in Python).
fn write_input(child: &mut Child, input: &[u8]) -> Result<(), Error> {
    let Some(stdin) = child.stdin.as_mut() else {
        return Ok(());
    };
    loop {
        let rest = input.get(child.input_written..).unwrap_or_default();
        if rest.is_empty() {
            close_input(child);
            return Ok(());
        }
        match stdin.write(rest) {
            Ok(n) => child.input_written += n,
            Err(err) if err.kind() == ErrorKind::WouldBlock => return Ok(()),
            Err(err) if err.kind() == ErrorKind::Interrupted => {}
            Err(err) if err.kind() == ErrorKind::BrokenPipe => {
                close_input(child);
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
