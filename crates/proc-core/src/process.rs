//! `Process`: a closure running in a forked child, and the handle that joins it.

use std::fs::File;
use std::io;
use std::os::fd::{AsFd, BorrowedFd};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use fork_sys::{ChildHandle, Doorbell, ExitStatus, Interest, Pid, Signal};

use crate::start_method::StartMethod;
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::child_side::{Report, STACK_READ};
use crate::codec::{self, CodecError, FrameBuffer, ReadPass};
use crate::error::ProcessError;
use crate::join_future::JoinFuture;
use crate::join_watcher::WakeFds;
use crate::reaper;
use crate::result_slot::ResultSlot;

mod builder;

pub(crate) use builder::BuilderParts;
pub use builder::ProcessBuilder;

/// A closure running in a forked child process, like Python's `multiprocessing.Process`, whose
/// return value comes back typed through [`join`](Process::join).
///
/// Because `fork` copies the parent's memory, the closure may capture anything; only its
/// return value `R` crosses back, as one bincode frame over a close-on-exec pipe.
///
/// # Dropping
///
/// Dropping a handle never leaves a zombie. A child that has finished is reaped at once. A
/// [daemon](ProcessBuilder::daemon) child is killed (SIGKILL) and reaped. A non-daemon child
/// that is still running is *detached*, like a dropped `std::thread::JoinHandle`: it runs to
/// the end (a stopped one is continued first), its value is discarded, and a background thread
/// reaps it. (Python instead joins
/// non-daemon children when the interpreter exits; a drop that blocks until a child finishes
/// would hang callers that only wanted to give up on it.)
pub struct Process<R> {
    child: ChildHandle,
    name: Option<String>,
    daemon: bool,
    /// The read end of the result pipe, non-blocking; `None` after end-of-file.
    pipe: Option<File>,
    frames: FrameBuffer,
    report: Option<Result<Report<R>, CodecError>>,
    /// Set once the value (or error) has been handed out.
    taken: bool,
    method: StartMethod,
    /// A forked child rings it before a report larger than an empty pipe holds; until it
    /// rings, waits sleep on it and the child's exit, not on the pipe (see
    /// [`child_side::SMALL_WRITE`]). `None`: waits watch the pipe.
    doorbell: Option<Doorbell>,
    /// The doorbell has rung (or could not be polled): waits watch the pipe now.
    rung: AtomicBool,
    /// Where a forked child leaves its report instead of a pipe (Linux), until the report
    /// has been read: released only once the child has been reaped.
    slot: Option<ResultSlot>,
}

impl<R> std::fmt::Debug for Process<R> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Process")
            .field("pid", &self.child.pid())
            .field("name", &self.name)
            .field("daemon", &self.daemon)
            .field("start_method", &self.method)
            .field("status", &self.child.status())
            .field("result_received", &self.report.is_some())
            .finish_non_exhaustive()
    }
}

impl Process<()> {
    /// Starts configuring a process: name, daemon, result limit.
    pub fn builder() -> ProcessBuilder {
        ProcessBuilder::new()
    }
}

impl<R: Serialize + DeserializeOwned> Process<R> {
    /// Forks a child that runs `body`; [`join`](Process::join) returns what it returned.
    ///
    /// ```
    /// let p = proc_core::Process::spawn(|| 6 * 7)?;
    /// assert_eq!(p.join()?, 42);
    /// # Ok::<(), proc_core::ProcessError>(())
    /// ```
    pub fn spawn<F>(body: F) -> Result<Process<R>, ProcessError>
    where
        F: FnOnce() -> R,
    {
        ProcessBuilder::new().spawn(body)
    }
}

/// One `read`, retried when a signal interrupts it.
fn read_retrying(pipe: &mut File, into: &mut [u8]) -> io::Result<usize> {
    loop {
        match io::Read::read(pipe, into) {
            Err(err) if err.kind() == io::ErrorKind::Interrupted => continue,
            done => return done,
        }
    }
}

impl<R> Process<R> {
    /// The handle of a child just started (by any method), whose result comes on `pipe`.
    pub(crate) fn started(
        child: ChildHandle,
        pipe: File,
        name: Option<String>,
        daemon: bool,
        max_frame_len: usize,
        method: StartMethod,
    ) -> Process<R> {
        Process::reporting_through(child, Some(pipe), None, name, daemon, max_frame_len, method)
    }

    /// The handle of a forked child that leaves its report in `slot`.
    fn started_with_slot(
        child: ChildHandle,
        slot: ResultSlot,
        name: Option<String>,
        daemon: bool,
        max_frame_len: usize,
    ) -> Process<R> {
        Process::reporting_through(
            child,
            None,
            Some(slot),
            name,
            daemon,
            max_frame_len,
            StartMethod::Fork,
        )
    }

    /// The handle of a child whose report comes on `pipe` or in `slot` (one of them).
    fn reporting_through(
        child: ChildHandle,
        pipe: Option<File>,
        slot: Option<ResultSlot>,
        name: Option<String>,
        daemon: bool,
        max_frame_len: usize,
        method: StartMethod,
    ) -> Process<R> {
        Process {
            child,
            name,
            daemon,
            pipe,
            frames: FrameBuffer::new(max_frame_len),
            report: None,
            taken: false,
            method,
            doorbell: None,
            rung: AtomicBool::new(false),
            slot,
        }
    }

    /// The same handle, whose child rings `doorbell` before a large report.
    fn with_doorbell(mut self, doorbell: Option<Doorbell>) -> Process<R> {
        self.doorbell = doorbell;
        self
    }

    /// The descriptor a wait watches for the report: the doorbell until it rings, then the
    /// pipe; `None` once the pipe is done with.
    fn report_fd(&self) -> Option<(BorrowedFd<'_>, bool)> {
        let pipe = self.pipe.as_ref()?;
        match &self.doorbell {
            Some(bell) if !self.rung.load(Ordering::Relaxed) => Some((bell.as_fd(), true)),
            _ => Some((pipe.as_fd(), false)),
        }
    }
}

impl<R: DeserializeOwned> Process<R> {
    /// How this child was started.
    pub fn start_method(&self) -> StartMethod {
        self.method
    }

    /// The child's process id.
    pub fn pid(&self) -> Pid {
        self.child.pid()
    }

    /// A descriptor that becomes readable when the child exits, for callers that wait on
    /// many things in one `poll` (Linux: a pidfd). `None` where the platform has none: poll
    /// [`status`](Process::status) in slices there.
    pub fn exit_fd(&self) -> Option<std::os::fd::BorrowedFd<'_>> {
        self.child.exit_fd()
    }

    /// The name given to the builder, if any.
    pub fn name(&self) -> Option<&str> {
        self.name.as_deref()
    }

    /// Whether this is a daemon process.
    pub fn is_daemon(&self) -> bool {
        self.daemon
    }

    /// Waits for the child to finish and returns its value, or why there is none.
    pub fn join(mut self) -> Result<R, ProcessError> {
        self.progress(None)?;
        self.take_outcome()
    }

    /// [`join`](Process::join) for async code: a future that resolves to exactly what `join`
    /// returns, on any executor, without a thread per waiter (see [`JoinFuture`]). Dropping
    /// the future before it completes is dropping the `Process`: a daemon is killed, another
    /// child detached; neither is left a zombie.
    ///
    /// ```
    /// use proc_core::{Process, ProcessError};
    ///
    /// # fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// let runtime = tokio::runtime::Builder::new_current_thread().build()?;
    /// let sum = runtime.block_on(async {
    ///     // Both children run at once; awaiting them blocks no thread.
    ///     let a = Process::spawn(|| (1..=10u64).sum::<u64>())?.join_async();
    ///     let b = Process::spawn(|| (11..=20u64).sum::<u64>())?.join_async();
    ///     Ok::<_, ProcessError>(a.await? + b.await?)
    /// })?;
    /// assert_eq!(sum, 210);
    /// # Ok(())
    /// # }
    /// ```
    pub fn join_async(self) -> JoinFuture<R> {
        JoinFuture::new(self)
    }

    /// Waits at most `timeout` for the child; `Ok(None)` if it is still running then (the
    /// handle stays usable). Sleeps in the kernel, never spins.
    pub fn join_timeout(&mut self, timeout: Duration) -> Result<Option<R>, ProcessError> {
        let deadline = Instant::now().checked_add(timeout);
        if self.progress(deadline)? {
            self.take_outcome().map(Some)
        } else {
            Ok(None)
        }
    }

    /// True while the child runs. A child blocked sending a large value back through a pipe
    /// (a child started by another method, or a forked one when every result slot was taken)
    /// counts as running until the parent reads it (join does).
    pub fn is_alive(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }

    /// Python's `exitcode`: `None` while the child runs, then its exit code, or minus the
    /// signal number when a signal ended it (`-15` after [`terminate`](Process::terminate)).
    /// A child whose closure returned exits 0; one that panicked exits 1.
    pub fn exitcode(&mut self) -> Option<i32> {
        self.child.try_wait().ok().flatten().map(ExitStatus::code)
    }

    /// How the child ended, once it has.
    pub fn status(&mut self) -> Option<ExitStatus> {
        self.child.try_wait().ok().flatten()
    }

    /// Like [`status`](Process::status), but an error when the status cannot be had: `ECHILD`
    /// when something else reaped the child (SIGCHLD set to `SIG_IGN`, a `waitpid(-1)`
    /// elsewhere in the program), where `status` would say "still running" for ever.
    pub fn try_status(&mut self) -> Result<Option<ExitStatus>, ProcessError> {
        self.child
            .try_wait()
            .map_err(|source| self.io_error(source))
    }

    /// Asks the child to stop with SIGTERM, followed by SIGCONT, so that a *stopped* child
    /// (SIGSTOP, Ctrl-Z) gets it too instead of holding it pending for ever (Python's
    /// `terminate` leaves a stopped child stopped). A no-op once the child has been reaped.
    pub fn terminate(&self) -> Result<(), ProcessError> {
        self.send_signal(Signal::TERM)?;
        self.send_signal(Signal::CONT)
    }

    /// Kills the child with SIGKILL. A no-op once the child has been reaped.
    pub fn kill(&self) -> Result<(), ProcessError> {
        self.send_signal(Signal::KILL)
    }

    /// Sends any signal to the child (through its pidfd on Linux, so never to a stranger
    /// that reused the pid). A no-op once the child has been reaped.
    pub fn send_signal(&self, signal: Signal) -> Result<(), ProcessError> {
        self.child
            .send_signal(signal)
            .map_err(|source| self.io_error(source))
    }

    /// Whether the child has finished *and* everything it sent has been read, so `join` will
    /// not block. Drains the result pipe as a side effect, which lets a child blocked on a
    /// large value go on.
    pub(crate) fn poll_finished(&mut self) -> Result<bool, ProcessError> {
        self.progress(Some(Instant::now()))
    }

    /// Reads what the child sent and reaps it when it ends, until both are done (`true`) or
    /// `deadline` passes (`false`; `None` waits for ever). Never blocks in `read`: the pipe
    /// is non-blocking, and the waiting happens in `poll` on the pipe and the pidfd together,
    /// so a child that exits without a word (or leaves a grandchild holding the pipe open)
    /// cannot make the parent wait for an end-of-file that never comes.
    fn progress(&mut self, deadline: Option<Instant>) -> Result<bool, ProcessError> {
        if self.taken {
            return Ok(true);
        }
        loop {
            // An untimed wait on a forked child whose doorbell has not rung reads nothing
            // before the child exits: its report, if any, is a few bytes it writes before
            // exiting, read below once it has. A read now would mostly find the pipe empty, and
            // setting errno for that writes a page the child still shares (a copy-on-write
            // fault, several µs). Timed waits read as before: `poll_finished` does not sleep
            // on the doorbell, and an async join wakes on the pipe.
            if self.pipe.is_some()
                && (deadline.is_some() || !self.report_fd().is_some_and(|(_, is_bell)| is_bell))
            {
                self.drain_pipe(deadline)?;
            }
            // A forked child with a result slot, waited for without a limit: straight to the
            // blocking `waitpid` below (a `WNOHANG` look first would take the kernel's task
            // list lock once more, as the child is exiting).
            let untimed_slot = deadline.is_none() && self.slot.is_some();
            let exited = !untimed_slot
                && match self.child.try_wait() {
                    Ok(status) => status.is_some(),
                    // A fork server's child whose server went away: it has exited (its pidfd
                    // says so), how is unknown; what it sent is still worth reading.
                    Err(err) if fork_sys::is_status_lost(&err) => true,
                    Err(err) => return Err(self.io_error(err)),
                };
            if exited {
                // Whatever it wrote before exiting is in the pipe now, at most a pipe's worth:
                // read it all (reading stops once the report is whole). Not called without a
                // pipe: its frame reaches a page of the stack the fork protected.
                if self.pipe.is_some() {
                    self.drain_pipe(None)?;
                }
                self.collect_slot();
                return Ok(true);
            }
            let now = Instant::now();
            let remaining = match deadline {
                Some(deadline) if deadline <= now => return Ok(false),
                Some(deadline) => Some(deadline - now),
                None => None,
            };
            // The report is in: the child is only flushing and exiting. Wait for that alone
            // (a fork server's child: for its exit, which its pidfd tells at once; the status
            // the server reports a moment later is read when it is asked for).
            if self.report.is_some() || self.pipe.is_none() {
                let exited = self
                    .child
                    .wait_exited(remaining)
                    .map_err(|e| self.io_error(e))?;
                if exited {
                    self.collect_slot();
                }
                return Ok(exited);
            }
            self.sleep_until_stirs(remaining)
                .map_err(|e| self.io_error(e))?;
        }
    }

    /// Reads what is available on the result pipe without blocking, in bounded passes, until
    /// the report is whole, the pipe is empty, or (after at least one pass) `deadline` has
    /// passed, so a large value streaming in cannot stretch a timed wait.
    fn drain_pipe(&mut self, deadline: Option<Instant>) -> Result<(), ProcessError> {
        loop {
            let Some(pipe) = self.pipe.as_mut() else {
                return Ok(());
            };
            if self.report.is_some() {
                return Ok(());
            }
            let pass = if self.frames.pending() == 0 {
                // Most reports are a few bytes: read them into the stack and decode them from
                // there. Every heap page the parent writes while the child lives, or before
                // it writes again after the child is gone, is a page fault: a buffer taken
                // from the allocator costs two or three, this costs none.
                let mut first = [0u8; STACK_READ];
                let got = match read_retrying(pipe, &mut first) {
                    Ok(got) => got,
                    Err(err) if err.kind() == io::ErrorKind::WouldBlock => return Ok(()),
                    Err(err) => return Err(self.io_error(err)),
                };
                let received = &first[..got];
                if let Ok(Some((report, used))) =
                    codec::decode_frame::<Report<R>>(received, self.frames.max_len())
                {
                    if used == got {
                        self.report = Some(Ok(report));
                        return Ok(());
                    }
                }
                // Part of a frame, more than one, or one that does not decode: the buffer
                // takes it from here and says which.
                self.frames.extend(received);
                ReadPass {
                    bytes: got,
                    eof: got == 0,
                }
            } else {
                match self.frames.read_available(pipe) {
                    Ok(pass) => pass,
                    Err(err) => return Err(self.io_error(err)),
                }
            };
            match self.frames.next_frame::<Report<R>>() {
                Ok(Some(report)) => self.report = Some(Ok(report)),
                Ok(None) => {}
                Err(err) => {
                    self.report = Some(Err(err));
                    // Nothing more on this pipe can be trusted.
                    self.pipe = None;
                    return Ok(());
                }
            }
            if pass.eof {
                self.pipe = None;
                if self.report.is_none() {
                    if let Err(err) = self.frames.check_complete_at_eof() {
                        self.report = Some(Err(err));
                    }
                }
                return Ok(());
            }
            if pass.bytes == 0 || deadline.is_some_and(|deadline| Instant::now() >= deadline) {
                return Ok(());
            }
        }
    }

    /// Reads the report a forked child left in its result slot, if it had one, and releases
    /// the slot. Only once the child has been reaped: then nothing writes to the slot any
    /// more.
    fn collect_slot(&mut self) {
        if let Some(slot) = self.slot.take() {
            if self.report.is_none() {
                self.report = slot.read_report::<R>(self.frames.max_len());
            }
        }
    }

    /// What a [`JoinFuture`] waits on: the result pipe while the report is still arriving,
    /// and the exit fd.
    pub(crate) fn wake_fds(&self) -> WakeFds<'_> {
        WakeFds {
            pipe: self
                .pipe
                .as_ref()
                .filter(|_| self.report.is_none())
                .map(AsFd::as_fd),
            exit: self.child.exit_fd(),
        }
    }

    /// Turns the report and the exit status into the value or the error, once.
    pub(crate) fn take_outcome(&mut self) -> Result<R, ProcessError> {
        if self.taken {
            return Err(ProcessError::AlreadyJoined {
                pid: self.pid(),
                name: self.name.clone(),
            });
        }
        self.taken = true;
        let pid = self.pid();
        let name = self.name.clone();
        let status = match self.report {
            // The value is all a returned child owes.
            Some(Ok(Report::Returned(_))) => self.child.status(),
            // Otherwise how it ended is the story (a fork server's report may still be on
            // its way).
            _ => match self.child.status() {
                Some(status) => Some(status),
                None => self.child.try_wait().ok().flatten(),
            },
        };
        match self.report.take() {
            Some(Ok(Report::Returned(value))) => Ok(value),
            Some(Ok(Report::Panicked(message))) => {
                Err(ProcessError::Panicked { pid, name, message })
            }
            Some(Ok(Report::TooLarge { len, limit })) => Err(ProcessError::Codec {
                pid,
                name,
                source: CodecError::FrameTooLarge {
                    len: len as usize,
                    limit: limit as usize,
                },
            }),
            Some(Ok(Report::EncodeFailed { type_name, message })) => Err(ProcessError::Codec {
                pid,
                name,
                source: CodecError::Encode {
                    type_name: "result",
                    message: format!("{type_name}: {message}"),
                },
            }),
            // A cut-off frame from a child that was killed: the death is the real story.
            Some(Err(CodecError::Truncated { .. })) | None
                if matches!(status, Some(ExitStatus::Signaled { .. })) =>
            {
                Err(status_error(pid, name, status))
            }
            Some(Err(source)) => Err(ProcessError::Codec { pid, name, source }),
            None if status.is_none() && self.child.is_served() => Err(ProcessError::Io {
                pid,
                name,
                source: io::Error::other(fork_sys::StatusLost { pid }),
            }),
            None => Err(status_error(pid, name, status)),
        }
    }

    fn io_error(&self, source: io::Error) -> ProcessError {
        ProcessError::Io {
            pid: self.pid(),
            name: self.name.clone(),
            source,
        }
    }
}

/// How often to look at a child when the platform gives no exit event to sleep on.
const SLICE: Duration = Duration::from_millis(20);

impl<R> Process<R> {
    /// [`sleep_until_any_stirs`] for this one process, its descriptors in an array on the
    /// stack: a `join` makes no allocation between the fork and the child's exit, where each
    /// heap page the parent writes is a copy-on-write fault.
    fn sleep_until_stirs(&self, timeout: Option<Duration>) -> io::Result<()> {
        // Without an exit fd, the exit is noticed by looking again after a slice.
        let sliced = Some(timeout.map_or(SLICE, |t| t.min(SLICE)));
        let bell_rang = match (self.report_fd(), self.child.exit_fd()) {
            (Some((report, is_bell)), Some(exit)) => {
                let [report, _] = fork_sys::poll_array(
                    [(report, Interest::Read), (exit, Interest::Read)],
                    timeout,
                )?;
                is_bell && report.is_ready()
            }
            (Some((report, is_bell)), None) => {
                let [report] = fork_sys::poll_array([(report, Interest::Read)], sliced)?;
                is_bell && report.is_ready()
            }
            (None, Some(exit)) => {
                fork_sys::poll_array([(exit, Interest::Read)], timeout)?;
                false
            }
            (None, None) => {
                fork_sys::poll_array([], sliced)?;
                false
            }
        };
        if bell_rang {
            // A large report is on its way: from now on its waits watch the pipe.
            self.rung.store(true, Ordering::Relaxed);
        }
        Ok(())
    }
}

/// Sleeps until one of `processes` sends something on its result pipe or exits, or `timeout`
/// passes (`None`: no limit). Where a child has no exit fd (off Linux), wakes every [`SLICE`]
/// so callers can look at it. May return early; callers re-check.
pub(crate) fn sleep_until_any_stirs<'a, R: 'a>(
    processes: impl IntoIterator<Item = &'a Process<R>>,
    timeout: Option<Duration>,
) -> io::Result<()> {
    let mut fds = Vec::new();
    // Per entry of `fds`: the process whose doorbell it is, if it is one.
    let mut bells = Vec::new();
    let mut every_exit_has_fd = true;
    for process in processes {
        if let Some((fd, is_bell)) = process.report_fd() {
            fds.push((fd, Interest::Read));
            bells.push(is_bell.then_some(process));
        }
        match process.child.exit_fd() {
            Some(exit_fd) => {
                fds.push((exit_fd, Interest::Read));
                bells.push(None);
            }
            None => every_exit_has_fd = false,
        }
    }
    let timeout = if every_exit_has_fd {
        timeout
    } else {
        Some(timeout.map_or(SLICE, |t| t.min(SLICE)))
    };
    let ready = fork_sys::poll(&fds, timeout)?;
    for (readiness, bell) in ready.iter().zip(bells) {
        if let Some(process) = bell.filter(|_| readiness.is_ready()) {
            // A large report is on its way: from now on its waits watch the pipe.
            process.rung.store(true, Ordering::Relaxed);
        }
    }
    Ok(())
}

fn status_error(pid: Pid, name: Option<String>, status: Option<ExitStatus>) -> ProcessError {
    match status {
        Some(ExitStatus::Signaled {
            signal,
            core_dumped,
        }) => ProcessError::Signaled {
            pid,
            name,
            signal,
            core_dumped,
        },
        Some(ExitStatus::Exited(code)) => ProcessError::Exited { pid, name, code },
        None => ProcessError::Io {
            pid,
            name,
            source: io::Error::other("the child has not been reaped"),
        },
    }
}

impl<R> Drop for Process<R> {
    fn drop(&mut self) {
        // Close our end first: a child blocked writing a large value gets EPIPE and exits.
        self.pipe = None;
        match self.child.try_wait() {
            // Reaped (here or before), or reaped by someone else: the child is gone, and its
            // result slot, if any, is released with the handle.
            Ok(Some(_)) => return,
            Err(err) if fork_sys::is_not_a_child(&err) => return,
            Err(_) => {
                // Whether it still runs is unknown: a slot it may yet write to is never handed
                // to another child.
                if let Some(slot) = self.slot.take() {
                    std::mem::forget(slot);
                }
                return;
            }
            Ok(None) => {}
        }
        if self.daemon {
            let _ = self.child.send_signal(Signal::KILL);
        }
        // Detached: it runs to its end, even if it was stopped (a stopped child would never
        // end, and the reaper would wait for it for ever).
        let _ = self.child.send_signal(Signal::CONT);
        if self.child.is_served() {
            // The fork server reaps it; dropping the handle closes its status pipe.
            return;
        }
        // Still unreaped, so the pid cannot have been reused: the reaper may take it over,
        // and release the child's result slot once it has reaped it.
        reaper::adopt(self.child.pid(), self.slot.take());
    }
}
