//! `communicate`: stdin, stdout and stderr driven together, so a child that fills its output
//! pipe while we are still writing its input cannot deadlock us.
//!
//! **One state machine, two drivers.** [`Communication`] is everything a call decides: where
//! its input comes from (the caller's bytes, or what an earlier timed-out call kept in the
//! child's [`InputProgress`]), whether that input continues the earlier one, what to write
//! next, what was read, when stdin is to be closed, and what to keep when the call stops
//! early. It never waits. The blocking driver here waits in one `fork_sys::poll` on the open
//! pipes; the async one (`tokio::communicate`, feature `tokio`) waits for the readiness of the
//! same pipes registered with tokio's reactor. Both call the same steps on readiness.
//!
//! The pipes are non-blocking while they are driven: a write takes whatever room the pipe has
//! (writing "all of it" on a blocking pipe would stall the loop), and reads take everything
//! available in one pass (until `WouldBlock`), straight into the spare capacity of the output
//! buffers (the caller's, for `communicate_into`), large ones faulted in ahead of the reads.
//! On Linux a pipe that shows it carries bulk (a read that drains a full default-sized pipe, a
//! write that fills one) is enlarged to 1 MiB, which more than doubles bulk throughput; a
//! child that prints a line costs no `fcntl` for it and keeps a default-sized pipe.

use std::ffi::OsString;
use std::io::{self, ErrorKind, Write};
use std::os::fd::{AsFd, BorrowedFd};
use std::time::{Duration, Instant};

use fork_sys::Interest;
use rustix::buffer::spare_capacity;
use rustix::io::Errno;

use crate::{Child, Error};

/// The pipe size asked for (Linux `F_SETPIPE_SZ`); the kernel may cap it.
const BIG_PIPE: usize = 1024 * 1024;

/// A pipe's default capacity on Linux (16 pages): a read pass that takes this much found the
/// pipe full, and the pipe is worth enlarging.
const DEFAULT_PIPE: usize = 64 * 1024;

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

/// One output pipe of the child.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Output {
    Stdout,
    Stderr,
}

impl Output {
    /// What an error while reading it was doing.
    pub(crate) fn during(self) -> &'static str {
        match self {
            Output::Stdout => "reading stdout",
            Output::Stderr => "reading stderr",
        }
    }
}

/// What a step on a ready pipe left to do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Step {
    /// The pipe would block: wait for it to be ready again.
    WouldBlock,
    /// Done with this pipe: for stdin, the input is all written or the child stopped reading
    /// (the progress says `Finished`; drop the pipe so the child sees end-of-file); for an
    /// output, end-of-file (drop it).
    Finished,
}

/// One `communicate` call, whatever waits for the pipes: the state machine both drivers
/// share. It holds the call's input source, the buffers the output is appended to (the
/// caller's, for `communicate_into`) and the deadline; the input progress that outlives the
/// call stays in the child, passed in by the driver.
pub(crate) struct Communication<'a> {
    source: Source<'a>,
    stdout: &'a mut Vec<u8>,
    stderr: &'a mut Vec<u8>,
    timeout: Option<Duration>,
    /// `None` without a timeout, or one too far away to represent.
    deadline: Option<Instant>,
    /// Which pipes (stdin, stdout, stderr) were enlarged already (or tried).
    enlarged: [bool; 3],
    /// How far stdout's and stderr's buffers were faulted in ahead of the reads (offsets).
    populated: [usize; 2],
}

impl<'a> Communication<'a> {
    /// Starts a call: decides where its input comes from, refusing (`InvalidInput`, nothing
    /// written or changed) an `input` that does not continue what an earlier call started: a
    /// resumed call passes `None` (or nothing) to finish the kept input, or the same input
    /// again. `stdin_open`: the child's stdin pipe is still ours. What is read is appended to
    /// `stdout` and `stderr`, whose bytes already there are kept.
    pub(crate) fn begin(
        progress: &InputProgress,
        stdin_open: bool,
        input: Option<&'a [u8]>,
        (stdout, stderr): (&'a mut Vec<u8>, &'a mut Vec<u8>),
        timeout: Option<Duration>,
    ) -> io::Result<Communication<'a>> {
        let input = input.unwrap_or_default();
        let refuse = |message: String| Err(io::Error::new(ErrorKind::InvalidInput, message));
        let source = match progress {
            InputProgress::NotStarted if !input.is_empty() && !stdin_open => {
                return refuse("input was given but the child's stdin is not piped".to_owned());
            }
            InputProgress::NotStarted => Source::Caller {
                bytes: input,
                written: 0,
            },
            InputProgress::Unfinished { total, kept, sent } => {
                let written = total - (kept.len() - sent);
                let unsent = progress.unsent();
                if !input.is_empty()
                    && (input.len() != *total || input.get(written..) != Some(unsent))
                {
                    return refuse(format!(
                        "input of {} bytes differs from the unfinished input of an earlier call \
                         ({written} of {total} bytes written): pass None to finish that one",
                        input.len()
                    ));
                }
                if !stdin_open {
                    return refuse(format!(
                        "the child's stdin was taken with {} bytes of input unwritten",
                        unsent.len()
                    ));
                }
                Source::Kept
            }
            InputProgress::Finished { len } if !input.is_empty() && input.len() != *len => {
                return refuse(format!(
                    "input of {} bytes was given, but stdin was closed after an earlier call's \
                     {len} bytes",
                    input.len()
                ));
            }
            InputProgress::Finished { .. } => Source::Kept,
        };
        Ok(Communication {
            source,
            stdout,
            stderr,
            timeout,
            deadline: timeout.and_then(|t| Instant::now().checked_add(t)),
            enlarged: [false; 3],
            populated: [0; 2],
        })
    }

    /// Enlarges pipe `index` (0 stdin, 1 stdout, 2 stderr) to [`BIG_PIPE`] the first time it
    /// shows it carries bulk. Best effort: unsupported off Linux, capped by
    /// `/proc/sys/fs/pipe-max-size`; growing a pipe never loses what is in it.
    fn enlarge_once(&mut self, index: usize, pipe: BorrowedFd<'_>) {
        if !std::mem::replace(&mut self.enlarged[index], true) {
            let _ = fork_sys::set_pipe_size(pipe, BIG_PIPE);
        }
    }

    /// The input this call still has to write.
    fn remaining<'p>(&'p self, progress: &'p InputProgress) -> &'p [u8] {
        match &self.source {
            Source::Caller { bytes, written } => bytes.get(*written..).unwrap_or_default(),
            Source::Kept => progress.unsent(),
        }
    }

    /// Whether input is left to write; when not, the driver calls
    /// [`close_input`](Communication::close_input) before anything else, so the child sees
    /// end-of-file (also when there was no input at all).
    pub(crate) fn input_left(&self, progress: &InputProgress) -> bool {
        !self.remaining(progress).is_empty()
    }

    /// Records that stdin is closed on `communicate`'s behalf (all input written, or the child
    /// stopped reading); the driver drops its pipe.
    pub(crate) fn close_input(&self, progress: &mut InputProgress) {
        let len = match (&self.source, &*progress) {
            (Source::Caller { bytes, .. }, _) => bytes.len(),
            (Source::Kept, InputProgress::Unfinished { total, .. }) => *total,
            (Source::Kept, InputProgress::Finished { len }) => *len,
            (Source::Kept, InputProgress::NotStarted) => 0,
        };
        *progress = InputProgress::Finished { len };
    }

    /// On a writable stdin: writes as much of what is left as the pipe takes. `Finished` when
    /// all is written or the child stopped reading (`EPIPE`, absorbed as in Python): the
    /// progress then says so and the driver drops the pipe.
    pub(crate) fn write_input(
        &mut self,
        progress: &mut InputProgress,
        mut stdin: impl Write + AsFd,
    ) -> io::Result<Step> {
        loop {
            let rest = self.remaining(progress);
            if rest.is_empty() {
                self.close_input(progress);
                return Ok(Step::Finished);
            }
            match stdin.write(rest) {
                // The pipe is full and there is more: bulk input. Make room once and go on.
                Err(err) if err.kind() == ErrorKind::WouldBlock && !self.enlarged[0] => {
                    self.enlarge_once(0, stdin.as_fd());
                }
                Ok(n) => match &mut self.source {
                    Source::Caller { written, .. } => *written += n,
                    Source::Kept => {
                        if let InputProgress::Unfinished { sent, .. } = progress {
                            *sent += n;
                        }
                    }
                },
                Err(err) if err.kind() == ErrorKind::WouldBlock => return Ok(Step::WouldBlock),
                Err(err) if err.kind() == ErrorKind::Interrupted => {}
                Err(err) if err.kind() == ErrorKind::BrokenPipe => {
                    self.close_input(progress);
                    return Ok(Step::Finished);
                }
                Err(err) => return Err(err),
            }
        }
    }

    /// On a readable output pipe: reads everything available; `Finished` at end-of-file.
    pub(crate) fn read_output(&mut self, which: Output, mut pipe: impl AsFd) -> io::Result<Step> {
        let (buffer, index) = match which {
            Output::Stdout => (&mut *self.stdout, 1),
            Output::Stderr => (&mut *self.stderr, 2),
        };
        let before = buffer.len();
        let step = read_available(&mut pipe, buffer, &mut self.populated[index - 1])?;
        // A pass that drained a full default-sized pipe: the child writes in bulk.
        if step == Step::WouldBlock && buffer.len() - before >= DEFAULT_PIPE {
            self.enlarge_once(index, pipe.as_fd());
        }
        Ok(step)
    }

    /// The time left before the deadline: `Ok(None)` without one, `Err(())` once it passed.
    pub(crate) fn time_left(&self) -> Result<Option<Duration>, ()> {
        match self.deadline {
            None => Ok(None),
            Some(deadline) => {
                let now = Instant::now();
                if now >= deadline {
                    Err(())
                } else {
                    Ok(Some(deadline - now))
                }
            }
        }
    }

    /// After a call that stopped early (timeout, error, a dropped future): the caller's bytes
    /// not written yet are copied into the child's progress, so a later call can finish them
    /// (the caller's slice cannot be kept). `stdin_open`: the pipe is still ours.
    pub(crate) fn keep_unwritten_input(&self, progress: &mut InputProgress, stdin_open: bool) {
        if let Source::Caller { bytes, written } = &self.source {
            if stdin_open && *written < bytes.len() {
                *progress = InputProgress::Unfinished {
                    total: bytes.len(),
                    kept: bytes[*written..].to_vec(),
                    sent: 0,
                };
            }
        }
    }

    /// The timeout error. What was read so far stays in the call's buffers: `communicate`
    /// moves its own into the error ([`with_output`]), `communicate_into` leaves them to the
    /// caller.
    pub(crate) fn timed_out(&self, args: &[OsString]) -> Error {
        Error::TimeoutExpired {
            args: args.to_vec(),
            timeout: self.timeout.unwrap_or_default(),
            stdout: Vec::new(),
            stderr: Vec::new(),
        }
    }
}

/// `communicate`'s answer from `communicate_into`'s on fresh buffers: the buffers, or the
/// error, a timeout's holding every byte read before it (Python's `TimeoutExpired.output`).
pub(crate) fn with_output<T>(
    result: Result<T, Error>,
    (stdout, stderr): (Vec<u8>, Vec<u8>),
) -> Result<(Vec<u8>, Vec<u8>), Error> {
    match result {
        Ok(_) => Ok((stdout, stderr)),
        Err(Error::TimeoutExpired { args, timeout, .. }) => Err(Error::TimeoutExpired {
            args,
            timeout,
            stdout,
            stderr,
        }),
        Err(err) => Err(err),
    }
}

/// The first read of a call into a buffer with no room left: small, on the stack, so that an
/// empty output (stderr, mostly) allocates nothing.
const PROBE: usize = 32;

/// The least room a read is given: a default pipe's worth.
const MIN_ROOM: usize = DEFAULT_PIPE;

/// Reads everything `pipe` has now, appending it to `buffer`: `Finished` at end-of-file,
/// `WouldBlock` once the pipe is empty. Reads go straight into the buffer's spare capacity,
/// which is neither zeroed first (as `read_to_end` through a plain `Read` does) nor copied
/// after; the buffer grows by doubling (`Vec::reserve`), so a reused buffer with room enough
/// is never reallocated.
fn read_available(
    pipe: &mut impl AsFd,
    buffer: &mut Vec<u8>,
    populated: &mut usize,
) -> io::Result<Step> {
    if buffer.capacity() == buffer.len() {
        let mut probe = [0u8; PROBE];
        match retry_interrupted(|| rustix::io::read(pipe.as_fd(), &mut probe)) {
            Ok(0) => return Ok(Step::Finished),
            Ok(n) => buffer.extend_from_slice(&probe[..n]),
            Err(Errno::AGAIN) => return Ok(Step::WouldBlock),
            Err(err) => return Err(err.into()),
        }
    }
    loop {
        if buffer.capacity() - buffer.len() < MIN_ROOM {
            buffer.reserve(MIN_ROOM);
            // Copied to a new place, maybe: what lies past the bytes may not be populated.
            *populated = buffer.len();
        }
        populate_ahead(buffer, populated);
        match retry_interrupted(|| rustix::io::read(pipe.as_fd(), spare_capacity(buffer))) {
            Ok(0) => return Ok(Step::Finished),
            Ok(_) => {}
            Err(Errno::AGAIN) => return Ok(Step::WouldBlock),
            Err(err) => return Err(err.into()),
        }
    }
}

/// Bulk output, from this capacity on, is faulted in ahead of the reads (see [`populate_ahead`]).
const POPULATE_FROM: usize = 4 * 1024 * 1024;

/// How far ahead of the reads bulk output is faulted in: more than a 1 MiB pipe holds, so
/// that a read never faults.
const POPULATE_AHEAD: usize = 2 * 1024 * 1024;

/// Faults the next [`POPULATE_AHEAD`] bytes of a large buffer's spare capacity in, in one
/// `madvise(MADV_POPULATE_WRITE)` (Linux), before a read copies into them. A read that faults
/// in pages as it copies does so holding the pipe's lock, and the child's writes wait for
/// it; populated first, the read only copies. `populated` is how far (an offset in `buffer`)
/// the call populated already, reset when the buffer grows; a buffer reused with its pages in
/// place costs one cheap call per 2 MiB. Best effort: off Linux or on a kernel before 5.14,
/// the reads fault as before.
fn populate_ahead(buffer: &mut Vec<u8>, populated: &mut usize) {
    if buffer.capacity() < POPULATE_FROM || *populated >= buffer.len() + POPULATE_AHEAD / 2 {
        return;
    }
    let len = buffer.len();
    let from = (*populated).max(len);
    let to = (len + POPULATE_AHEAD).min(buffer.capacity());
    if let Some(region) = buffer.spare_capacity_mut().get_mut(from - len..to - len) {
        let _ = fork_sys::populate_for_writing(region);
    }
    *populated = to;
}

/// `call` again while a signal interrupts it.
fn retry_interrupted<T>(mut call: impl FnMut() -> rustix::io::Result<T>) -> rustix::io::Result<T> {
    loop {
        match call() {
            Err(Errno::INTR) => {}
            other => return other,
        }
    }
}

/// The blocking driver: `Child::communicate_into` (and so `Child::communicate`, on fresh
/// buffers). Returns once the child was reaped.
pub(crate) fn communicate_into(
    child: &mut Child,
    input: Option<&[u8]>,
    output: (&mut Vec<u8>, &mut Vec<u8>),
    timeout: Option<Duration>,
) -> Result<(), Error> {
    let mut call =
        Communication::begin(&child.input, child.stdin.is_some(), input, output, timeout)
            .map_err(|err| child.io_error("communicating", err))?;
    if !call.input_left(&child.input) {
        // Nothing (left) to write: close stdin so the child sees end-of-file.
        call.close_input(&mut child.input);
        child.stdin = None;
    }
    let result = set_up_pipes(open_pipes(child))
        .map_err(|err| Stopped::Failed(child.io_error("preparing pipes", err)))
        .and_then(|()| drive(child, &mut call));
    if let Err(err) = result {
        call.keep_unwritten_input(&mut child.input, child.stdin.is_some());
        // The pipes still open go back to blocking mode, whatever stopped the loop, for the
        // caller's own reads and writes on them.
        for fd in open_pipes(child).into_iter().flatten() {
            let _ = fork_sys::set_nonblocking(fd, false);
        }
        return Err(match err {
            Stopped::TimedOut => call.timed_out(child.args()),
            Stopped::Failed(err) => err,
        });
    }
    Ok(())
}

/// Why a driver stopped before the end.
pub(crate) enum Stopped {
    TimedOut,
    Failed(Error),
}

impl From<Error> for Stopped {
    fn from(err: Error) -> Stopped {
        Stopped::Failed(err)
    }
}

/// The `poll` loop, then the wait; leaves the pipes still open non-blocking when it fails.
fn drive(child: &mut Child, call: &mut Communication<'_>) -> Result<(), Stopped> {
    while child.stdin.is_some() || child.stdout.is_some() || child.stderr.is_some() {
        let left = call.time_left().map_err(|()| Stopped::TimedOut)?;
        let fds: Vec<_> = open_pipes(child)
            .into_iter()
            .zip([Interest::Write, Interest::Read, Interest::Read])
            .filter_map(|(fd, interest)| Some((fd?, interest)))
            .collect();
        let ready = fork_sys::poll(&fds, left).map_err(|err| child.io_error("polling", err))?;
        drop(fds);
        let mut ready = ready.into_iter();
        if child.stdin.is_some() && ready.next().is_some_and(|r| r.is_ready()) {
            if let Some(stdin) = child.stdin.as_mut() {
                let step = call
                    .write_input(&mut child.input, stdin)
                    .map_err(|err| child.io_error("writing stdin", err))?;
                if step == Step::Finished {
                    child.stdin = None;
                }
            }
        }
        for which in [Output::Stdout, Output::Stderr] {
            let open = match which {
                Output::Stdout => child.stdout.is_some(),
                Output::Stderr => child.stderr.is_some(),
            };
            if !open || !ready.next().is_some_and(|r| r.is_ready()) {
                continue;
            }
            let read = match (which, child.stdout.as_mut(), child.stderr.as_mut()) {
                (Output::Stdout, Some(pipe), _) => call.read_output(which, pipe),
                (Output::Stderr, _, Some(pipe)) => call.read_output(which, pipe),
                _ => continue,
            };
            let step = read.map_err(|err| child.io_error(which.during(), err))?;
            if step == Step::Finished {
                match which {
                    Output::Stdout => child.stdout = None,
                    Output::Stderr => child.stderr = None,
                }
            }
        }
    }

    let status = match call.time_left().map_err(|()| Stopped::TimedOut)? {
        None => child.wait().map(Some)?,
        Some(left) => child.wait_timeout(left)?,
    };
    match status {
        Some(_) => Ok(()),
        None => Err(Stopped::TimedOut),
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

/// Non-blocking pipes for the loop (enlarged later, by the call, if they carry bulk).
pub(crate) fn set_up_pipes<'f>(
    pipes: impl IntoIterator<Item = Option<BorrowedFd<'f>>>,
) -> io::Result<()> {
    for fd in pipes.into_iter().flatten() {
        fork_sys::set_nonblocking(fd, true)?;
    }
    Ok(())
}
