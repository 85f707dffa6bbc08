//! `Child`: a running program (Python's `Popen`), reaped exactly once, never left a zombie.

use std::ffi::OsString;
use std::fs::File;
use std::io;
use std::os::fd::{BorrowedFd, OwnedFd};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use fork_sys::{ChildHandle, ExitStatus, Interest, Pid, Signal};

use crate::communicate::InputProgress;
use crate::killer::{Shared, State};
use crate::tree::StoppedTree;
use crate::{ChildStderr, ChildStdin, ChildStdout, Error, Killer};

/// `ESRCH` ("no such process"), 3 on Linux and on macOS.
const ESRCH: i32 = 3;

/// The status reported for a child whose real status was lost (see [`Child::status_lost`]):
/// exit code 0, as Python's `Popen` reports.
pub(crate) const LOST_STATUS: ExitStatus = ExitStatus::Exited(0);

/// How long a wait with killers sleeps between checks where there is no exit fd to sleep on
/// (no pidfd or kqueue): a wake-up now and then, never a spin.
const NO_EXIT_FD_SLICE: Duration = Duration::from_millis(20);

/// A child process started by [`Command::spawn`](crate::Command::spawn): Python's `Popen`.
///
/// Its pipes (when piped) are the public fields, std's `Read`/`Write` handles; take them, or
/// let [`communicate`](Child::communicate) drive them all at once without deadlocking.
///
/// Dropping a `Child` never leaves a zombie: a child that has not ended yet is reaped by a
/// background thread ([`fork_sys::reap_in_background`]), or killed first when the command
/// asked for [`kill_on_drop`](crate::Command::kill_on_drop).
#[derive(Debug)]
pub struct Child {
    handle: ChildHandle,
    args: Vec<OsString>,
    /// The parent's end of the child's stdin, when piped.
    pub stdin: Option<ChildStdin>,
    /// The parent's end of the child's stdout, when piped.
    pub stdout: Option<ChildStdout>,
    /// The parent's end of the child's stderr, when piped.
    pub stderr: Option<ChildStderr>,
    /// The child leads its own process group (new group or new session).
    own_group: bool,
    pub(crate) kill_on_drop: bool,
    /// What `communicate` did with its input so far: the unwritten rest after a timeout is
    /// kept here, so a later call finishes it (as Python's does) instead of cutting it.
    pub(crate) input: InputProgress,
    /// The child has ended but something else reaped it, so its status is lost.
    status_lost: bool,
    /// Shared with the [`Killer`]s, once one was asked for: from then on every reap happens
    /// under its lock, and blocking waits sleep on the exit fd without it.
    killer: OnceLock<Arc<Shared>>,
}

impl Child {
    pub(crate) fn new(
        handle: ChildHandle,
        args: Vec<OsString>,
        [stdin, stdout, stderr]: [Option<OwnedFd>; 3],
        own_group: bool,
        kill_on_drop: bool,
    ) -> Child {
        Child {
            handle,
            args,
            stdin: stdin.map(|fd| ChildStdin(File::from(fd))),
            stdout: stdout.map(|fd| ChildStdout(File::from(fd))),
            stderr: stderr.map(|fd| ChildStderr(File::from(fd))),
            own_group,
            kill_on_drop,
            input: InputProgress::default(),
            status_lost: false,
            killer: OnceLock::new(),
        }
    }

    /// The child's process id.
    pub fn pid(&self) -> Pid {
        self.handle.pid()
    }

    /// The command line it was started with, program first.
    pub fn args(&self) -> &[OsString] {
        &self.args
    }

    /// How it ended, if it has been reaped already (Python's `returncode`, as a status).
    pub fn status(&self) -> Option<ExitStatus> {
        match self.status_lost {
            true => Some(LOST_STATUS),
            false => self.handle.status(),
        }
    }

    /// True when the child has ended but something else reaped it, so how it ended is
    /// unknown: the program set `SIGCHLD` to `SIG_IGN` (the kernel then reaps every child
    /// itself) or some code called `waitpid(-1)`. The waits then report
    /// `ExitStatus::Exited(0)`, as Python's `Popen` does (`returncode` 0), rather than fail:
    /// `call`, `run` and `check_output` still work and return what they read. Check this when
    /// the difference matters.
    pub fn status_lost(&self) -> bool {
        self.status_lost
    }

    /// Reaps the child if it has ended, without blocking; `Ok(None)` while it runs (Python's
    /// `poll`).
    pub fn poll(&mut self) -> Result<Option<ExitStatus>, Error> {
        let result = self.try_reap();
        self.settle(result, "polling")
    }

    /// Blocks until the child ends. Does not close stdin first: drop [`Child::stdin`] (or use
    /// [`communicate`](Child::communicate)) if the child waits for end-of-file.
    pub fn wait(&mut self) -> Result<ExitStatus, Error> {
        let result = match self.killer.get() {
            None => self.handle.wait().map(Some),
            Some(_) => self.wait_beside_killers(None),
        };
        let status = self.settle(result, "waiting")?;
        // `settle` turns every `Ok` into `Some` here: a blocking wait only returns at the end.
        Ok(status.unwrap_or(LOST_STATUS))
    }

    /// Waits at most `timeout`; `Ok(None)` if the child still runs then (it keeps running).
    /// Sleeps in the kernel on a pidfd (Linux) or kqueue (macOS): no busy wait.
    pub fn wait_timeout(&mut self, timeout: Duration) -> Result<Option<ExitStatus>, Error> {
        let result = match self.killer.get() {
            None => self.handle.wait_timeout(timeout),
            Some(_) => self.wait_beside_killers(Some(timeout)),
        };
        self.settle(result, "waiting")
    }

    /// A cloneable, `Send + Sync` handle that signals this child (or its group) from any
    /// thread, also while this `Child` is blocked in [`wait`](Child::wait), and never a
    /// stranger (see [`Killer`]). The first call sets up what the killers share; from then
    /// on the waits sleep on the child's pidfd (kqueue off Linux) and reap under a lock the
    /// killers' signals take.
    pub fn killer(&self) -> Killer {
        let shared = self.killer.get_or_init(|| {
            Arc::new(Shared::new(
                self.pid(),
                self.args.first().cloned().unwrap_or_default(),
                self.own_group,
                self.handle.exit_fd(),
                self.status().is_some(),
            ))
        });
        Killer::new(Arc::clone(shared))
    }

    /// The child's pidfd (Linux), readable once it has exited.
    #[cfg_attr(not(target_os = "linux"), allow(dead_code))] // Only the Linux paths sleep on it.
    pub(crate) fn exit_fd(&self) -> Option<BorrowedFd<'_>> {
        self.handle.exit_fd()
    }

    /// Reaps the child if it has ended, without blocking; with killers, under their lock (a
    /// reap found done by someone else, `ECHILD`, counts as a reap too).
    fn try_reap(&mut self) -> io::Result<Option<ExitStatus>> {
        let Child { handle, killer, .. } = self;
        let Some(shared) = killer.get() else {
            return handle.try_wait();
        };
        let mut state = shared.lock_for_reap();
        let result = handle.try_wait();
        let reaped = match &result {
            Ok(status) => status.is_some(),
            Err(err) => fork_sys::is_not_a_child(err),
        };
        if reaped {
            *state = State::Reaped;
        }
        result
    }

    /// `wait` (`timeout` `None`) or `wait_timeout` for a child with killers: sleeps until the
    /// child has exited *without* reaping it, then reaps under the killers' lock, so a
    /// killer never waits for the child to end and never signals a reaped pid.
    fn wait_beside_killers(&mut self, timeout: Option<Duration>) -> io::Result<Option<ExitStatus>> {
        let deadline = timeout.and_then(|t| Instant::now().checked_add(t));
        loop {
            if let Some(status) = self.try_reap()? {
                return Ok(Some(status));
            }
            let left = match deadline {
                None => None,
                Some(deadline) => {
                    let now = Instant::now();
                    if now >= deadline {
                        return Ok(None);
                    }
                    Some(deadline - now)
                }
            };
            self.sleep_until_exit(left)?;
        }
    }

    /// Sleeps until the child may have exited, or `timeout` passes; may return early.
    fn sleep_until_exit(&self, timeout: Option<Duration>) -> io::Result<()> {
        let exit_fd: Option<BorrowedFd<'_>> = self
            .handle
            .exit_fd()
            .or_else(|| self.killer.get().and_then(|shared| shared.exit_fd()));
        match exit_fd {
            Some(fd) => fork_sys::poll(&[(fd, Interest::Read)], timeout).map(drop),
            None => {
                std::thread::sleep(timeout.map_or(NO_EXIT_FD_SLICE, |t| t.min(NO_EXIT_FD_SLICE)));
                Ok(())
            }
        }
    }

    /// A wait's result, with `ECHILD` for this (unreaped, ours alone) child read as "ended,
    /// status lost" ([`status_lost`](Child::status_lost)).
    fn settle(
        &mut self,
        result: std::io::Result<Option<ExitStatus>>,
        during: &'static str,
    ) -> Result<Option<ExitStatus>, Error> {
        if self.status_lost {
            return Ok(Some(LOST_STATUS));
        }
        match result {
            Err(err) if fork_sys::is_not_a_child(&err) && self.handle.status().is_none() => {
                self.status_lost = true;
                Ok(Some(LOST_STATUS))
            }
            other => other.map_err(|source| self.io_error(during, source)),
        }
    }

    /// Sends `signal` to the child; does nothing once it has been reaped (its pid may belong
    /// to someone else by then), as in Python.
    pub fn send_signal(&self, signal: Signal) -> Result<(), Error> {
        if self.status_lost {
            // Reaped by someone else: the pid may be another process's by now.
            return Ok(());
        }
        self.handle
            .send_signal(signal)
            .map_err(|source| self.io_error("sending a signal", source))
    }

    /// `SIGTERM`: asks the child to end.
    pub fn terminate(&self) -> Result<(), Error> {
        self.send_signal(Signal::TERM)
    }

    /// `SIGKILL`: ends the child at once.
    pub fn kill(&self) -> Result<(), Error> {
        self.send_signal(Signal::KILL)
    }

    /// Sends `signal` to the child's whole process group, grandchildren included, when it was
    /// started in its own ([`process_group(0)`](crate::Command::process_group) or
    /// [`new_session`](crate::Command::new_session)); to the child alone otherwise. Does
    /// nothing once the child has been reaped: its group id may be reused after that.
    pub fn signal_group(&self, signal: Signal) -> Result<(), Error> {
        if !self.own_group || self.status().is_some() {
            return self.send_signal(signal);
        }
        match fork_sys::kill_group(self.pid(), signal) {
            Err(err) if err.raw_os_error() == Some(ESRCH) => Ok(()), // the group is gone
            other => other.map_err(|source| self.io_error("signalling the process group", source)),
        }
    }

    /// Writes `input` to stdin (then closes it) while reading stdout and stderr, all at once,
    /// so no size of input or output deadlocks; then waits for the child. Returns
    /// `(stdout, stderr)`, each empty when not piped.
    ///
    /// With a `timeout` that passes first, returns [`Error::TimeoutExpired`] holding every
    /// byte read so far, and **the child keeps running**: kill it, or call `communicate`
    /// again, which returns what arrives from then on. Input not written yet is kept in the
    /// `Child` (copied out of `input`, which cannot be borrowed past the call), and the next
    /// call finishes it: pass `None` (as in Python), or the same `input` again (a retry
    /// loop). Any other input on a resumed call, or input after stdin was closed, is refused
    /// with an [`Error::Io`] of kind `InvalidInput` that writes and changes nothing: the child
    /// never receives a cut or spliced input. (The check compares the length and the bytes
    /// not written yet; once everything was written, only the length is left to compare.)
    ///
    /// A child that exits or closes stdin before reading all of `input` is not an error (the
    /// `EPIPE` is absorbed, as in Python). Passing `input` without a piped stdin is an error.
    ///
    /// The output is returned in new `Vec`s, whose pages the kernel has to fault in as they
    /// fill; a caller that runs children over and over can reuse its buffers with
    /// [`communicate_into`](Child::communicate_into) instead.
    pub fn communicate(
        &mut self,
        input: Option<&[u8]>,
        timeout: Option<Duration>,
    ) -> Result<(Vec<u8>, Vec<u8>), Error> {
        let (mut stdout, mut stderr) = (Vec::new(), Vec::new());
        let result =
            crate::communicate::communicate_into(self, input, (&mut stdout, &mut stderr), timeout);
        crate::communicate::with_output(result, (stdout, stderr))
    }

    /// [`communicate`](Child::communicate), appending the child's stdout and stderr to the
    /// caller's buffers (the bytes already in them are kept) instead of returning new ones,
    /// then returning how the child ended. A buffer cleared and reused across children keeps
    /// its capacity, so the output lands in memory that is already mapped: no page faults,
    /// no growth, no reallocation.
    ///
    /// The same rules as `communicate`, with one difference on a timeout: the bytes read
    /// before it are in `stdout` and `stderr` (appended, as always), and the
    /// [`Error::TimeoutExpired`] returned holds empty ones. Output not piped leaves its buffer
    /// as it was.
    ///
    /// ```
    /// use proc_spawn::{Command, Stdio};
    ///
    /// let (mut stdout, mut stderr) = (Vec::new(), Vec::new());
    /// for word in ["one", "two"] {
    ///     stdout.clear(); // the capacity stays
    ///     let mut child = Command::new("cat").stdin(Stdio::piped()).stdout(Stdio::piped()).spawn()?;
    ///     let status = child.communicate_into(Some(word.as_bytes()), &mut stdout, &mut stderr, None)?;
    ///     assert!(status.success());
    ///     assert_eq!(stdout, word.as_bytes());
    /// }
    /// # Ok::<(), proc_spawn::Error>(())
    /// ```
    pub fn communicate_into(
        &mut self,
        input: Option<&[u8]>,
        stdout: &mut Vec<u8>,
        stderr: &mut Vec<u8>,
        timeout: Option<Duration>,
    ) -> Result<ExitStatus, Error> {
        crate::communicate::communicate_into(self, input, (stdout, stderr), timeout)?;
        // The driver reaped the child before returning.
        Ok(self.status().unwrap_or(LOST_STATUS))
    }

    /// Kills the child (its whole group when it has its own) and reaps it; used by drop.
    pub(crate) fn kill_and_reap(&mut self) -> Result<ExitStatus, Error> {
        self.signal_group(Signal::KILL)?;
        self.wait()
    }

    /// `run`'s and a pipeline's answer to a timeout: kills the child, its whole group when it
    /// has its own, and with `tree` every descendant found (stopped first, so none escapes by
    /// forking or being re-parented meanwhile; Linux), then reaps it.
    pub(crate) fn kill_tree_and_reap(&mut self, tree: bool) -> Result<ExitStatus, Error> {
        self.kill_tree(tree)?;
        self.wait()
    }

    /// The signalling half of [`kill_tree_and_reap`](Child::kill_tree_and_reap), for the
    /// async child, which reaps without blocking.
    pub(crate) fn kill_tree(&mut self, tree: bool) -> Result<(), Error> {
        let descendants = if tree {
            StoppedTree::stop(self)
        } else {
            StoppedTree::default()
        };
        let killed = self.signal_group(Signal::KILL);
        descendants.kill();
        if let Err(err) = killed {
            // Never leave it stopped: a stopped child would keep `wait` waiting for ever.
            let _ = self.send_signal(Signal::CONT);
            return Err(err);
        }
        Ok(())
    }

    pub(crate) fn io_error(&self, during: &'static str, source: io::Error) -> Error {
        Error::Io {
            program: self.args.first().cloned().unwrap_or_default(),
            pid: self.pid(),
            during,
            source,
        }
    }
}

impl Drop for Child {
    fn drop(&mut self) {
        // Close our pipe ends first: a child blocked writing to us gets EPIPE and can end.
        self.stdin = None;
        self.stdout = None;
        self.stderr = None;
        if matches!(self.try_reap(), Ok(Some(_)) | Err(_)) {
            return;
        }
        if self.kill_on_drop && self.kill_and_reap().is_ok() {
            return;
        }
        // From here the reaper decides when the pid is freed: killers keep only the pidfd.
        let _detached = self.killer.get().map(|shared| {
            let mut state = shared.lock_for_reap();
            *state = State::Detached;
            state
        });
        // Still unreaped, so the pid cannot have been reused: a fresh handle is safe.
        fork_sys::reap_in_background(ChildHandle::new(self.pid()));
    }
}
