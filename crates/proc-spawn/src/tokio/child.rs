//! The async `Child`: a blocking [`crate::Child`] inside (reaping, signals, killers, the input
//! progress of `communicate`, the drop rule), with its pipes and its exit registered with
//! tokio's reactor, so no thread waits for it.

use std::ffi::OsString;
use std::fs::File;
use std::io;
use std::time::Duration;

use fork_sys::{ExitStatus, Pid, Signal};

use super::pipe::{ChildStderr, ChildStdin, ChildStdout, Registered};
use crate::{Error, Killer};

/// The shortest and longest nap between looks where no exit fd can be registered (off Linux,
/// or a kernel without pidfds): quick for short children, a few wake-ups a second for long
/// ones, never a spin.
const FIRST_SLICE: Duration = Duration::from_millis(1);
const LAST_SLICE: Duration = Duration::from_millis(10);

/// A child process started by [`Command::spawn_async`](crate::Command::spawn_async): the
/// async twin of [`crate::Child`], driven by tokio's reactor. No thread waits for it and no
/// `SIGCHLD` handler is installed: on Linux [`wait`](Child::wait) sleeps on the child's pidfd
/// registered with the reactor, the pipes are non-blocking fds registered there too
/// ([`AsyncWrite`](::tokio::io::AsyncWrite) / [`AsyncRead`](::tokio::io::AsyncRead)).
/// Elsewhere `wait` looks every few milliseconds (`tokio::time::sleep`).
///
/// The methods are those of [`crate::Child`], awaited: [`wait`](Child::wait),
/// [`wait_timeout`](Child::wait_timeout), [`communicate`](Child::communicate) (same rules:
/// timeouts, input kept across calls, `EPIPE` absorbed); signals and [`killer`](Child::killer)
/// are immediate, as there. Non-blocking polling is [`try_wait`](Child::try_wait) (the
/// blocking `Child::poll`: the name `poll` reads as `Future::poll` here).
///
/// **Dropping it never leaves a zombie and never blocks**: the pipes close first; a child that
/// ended is reaped on the spot; one still running goes to fork-sys's background reaper (one
/// thread for the whole process, shared with the blocking `Child`), after a `SIGKILL` (to its
/// group, when it has one) when the command asked for
/// [`kill_on_drop`](crate::Command::kill_on_drop). Dropping a `wait` or `communicate` future
/// part-way is safe: the child stays here; input a dropped `communicate` did not write is
/// kept for the next call, as after a timeout (the output it had read is lost with it).
///
/// Needs a tokio runtime with IO and time enabled (`#[tokio::main]`, `#[tokio::test]`,
/// `Builder::enable_all`); a current-thread runtime is enough.
#[derive(Debug)]
pub struct Child {
    /// The parent's end of the child's stdin, when piped.
    pub stdin: Option<ChildStdin>,
    /// The parent's end of the child's stdout, when piped.
    pub stdout: Option<ChildStdout>,
    /// The parent's end of the child's stderr, when piped.
    pub stderr: Option<ChildStderr>,
    /// Declared before `inner`, so dropped first: it registers `inner`'s pidfd.
    exit: ExitWait,
    /// Its pipes taken out (they live above, registered).
    pub(crate) inner: crate::Child,
}

/// How [`Child::wait`] sleeps until the child has exited.
#[derive(Debug)]
enum ExitWait {
    /// The child's pidfd, registered with the reactor: readable once the child has exited.
    #[cfg(target_os = "linux")]
    Pidfd(::tokio::io::unix::AsyncFd<InnerPidfd>),
    /// Naps of [`FIRST_SLICE`] growing to [`LAST_SLICE`] between looks.
    Slices,
}

impl Child {
    /// Takes over a blocking `Child` just spawned: registers its pipes and its pidfd. On
    /// failure the child is killed (its group too, when it has its own) and left to the
    /// reaper: nobody could talk to it.
    pub(crate) fn from_blocking(mut inner: crate::Child) -> Result<Child, Error> {
        match register(&mut inner) {
            Ok((stdin, stdout, stderr)) => Ok(Child {
                stdin,
                stdout,
                stderr,
                exit: exit_wait(&inner),
                inner,
            }),
            Err(err) => {
                let _ = inner.signal_group(Signal::KILL);
                Err(inner.io_error("registering with tokio's reactor", err))
            }
        }
    }

    /// The child's process id.
    pub fn pid(&self) -> Pid {
        self.inner.pid()
    }

    /// The command line it was started with, program first.
    pub fn args(&self) -> &[OsString] {
        self.inner.args()
    }

    /// How it ended, if it has been reaped already.
    pub fn status(&self) -> Option<ExitStatus> {
        self.inner.status()
    }

    /// True when something else reaped the child, so its status is unknown (see
    /// [`crate::Child::status_lost`]).
    pub fn status_lost(&self) -> bool {
        self.inner.status_lost()
    }

    /// Reaps the child if it has ended, without waiting; `Ok(None)` while it runs (the
    /// blocking [`Child::poll`](crate::Child::poll), Python's `poll`).
    pub fn try_wait(&mut self) -> Result<Option<ExitStatus>, Error> {
        self.inner.poll()
    }

    /// Waits until the child ends, without a thread: on Linux the child's pidfd is registered
    /// with the reactor. Does not close stdin first: drop [`Child::stdin`] (or use
    /// [`communicate`](Child::communicate)) if the child waits for end-of-file.
    /// Cancel-safe: dropping the future leaves the child as it was.
    pub async fn wait(&mut self) -> Result<ExitStatus, Error> {
        let mut slice = FIRST_SLICE;
        loop {
            if let Some(status) = self.inner.poll()? {
                return Ok(status);
            }
            match &self.exit {
                #[cfg(target_os = "linux")]
                ExitWait::Pidfd(pidfd) => {
                    let mut ready = pidfd
                        .readable()
                        .await
                        .map_err(|err| self.inner.io_error("waiting", err))?;
                    // Readable means exited, and the pidfd stays so: only a reap by someone
                    // else (`SIGCHLD` ignored, handled by `poll`) could make the next look
                    // miss. Should it, wait for the next readiness rather than spin.
                    if let Some(status) = self.inner.poll()? {
                        return Ok(status);
                    }
                    ready.clear_ready();
                }
                ExitWait::Slices => {
                    ::tokio::time::sleep(slice).await;
                    slice = (slice * 2).min(LAST_SLICE);
                }
            }
        }
    }

    /// Waits at most `timeout`; `Ok(None)` if the child still runs then (it keeps running).
    pub async fn wait_timeout(&mut self, timeout: Duration) -> Result<Option<ExitStatus>, Error> {
        match ::tokio::time::timeout(timeout, self.wait()).await {
            Ok(status) => status.map(Some),
            // One last look: it may have ended as the time ran out.
            Err(_elapsed) => self.inner.poll(),
        }
    }

    /// Writes `input` to stdin (then closes it) while reading stdout and stderr, all at once
    /// on the reactor, then waits for the child; returns `(stdout, stderr)`. The same rules
    /// as the blocking [`Child::communicate`](crate::Child::communicate), one implementation
    /// of them: on a timeout, [`Error::TimeoutExpired`] with every byte read so far and the
    /// child still running; input not written yet is kept for the next call (pass `None`, or
    /// the same input again; other input is refused with `InvalidInput`); a child that stops
    /// reading (`EPIPE`) is not an error.
    ///
    /// Dropping the future part-way keeps the unwritten input for the next call, as a timeout
    /// does; what it had read is lost.
    pub async fn communicate(
        &mut self,
        input: Option<&[u8]>,
        timeout: Option<Duration>,
    ) -> Result<(Vec<u8>, Vec<u8>), Error> {
        let (mut stdout, mut stderr) = (Vec::new(), Vec::new());
        let result =
            super::communicate::communicate_into(self, input, (&mut stdout, &mut stderr), timeout)
                .await;
        crate::communicate::with_output(result, (stdout, stderr))
    }

    /// [`communicate`](Child::communicate), appending stdout and stderr to the caller's
    /// buffers (the bytes already in them are kept), then returning how the child ended: the
    /// blocking [`Child::communicate_into`](crate::Child::communicate_into), awaited. On a
    /// timeout the bytes read before it are in the buffers and the error holds empty ones;
    /// dropping the future part-way leaves what it had read in them too.
    pub async fn communicate_into(
        &mut self,
        input: Option<&[u8]>,
        stdout: &mut Vec<u8>,
        stderr: &mut Vec<u8>,
        timeout: Option<Duration>,
    ) -> Result<ExitStatus, Error> {
        super::communicate::communicate_into(self, input, (stdout, stderr), timeout).await?;
        // The driver reaped the child before returning.
        Ok(self.inner.status().unwrap_or(crate::child::LOST_STATUS))
    }

    /// A cloneable, `Send + Sync` handle that signals this child from any thread or task,
    /// also while a task awaits [`wait`](Child::wait) (see [`Killer`]).
    pub fn killer(&self) -> Killer {
        self.inner.killer()
    }

    /// Sends `signal` to the child; does nothing once it has been reaped.
    pub fn send_signal(&self, signal: Signal) -> Result<(), Error> {
        self.inner.send_signal(signal)
    }

    /// `SIGTERM`: asks the child to end. Does not wait: await [`wait`](Child::wait).
    pub fn terminate(&self) -> Result<(), Error> {
        self.inner.terminate()
    }

    /// `SIGKILL`: ends the child at once. Does not wait: await [`wait`](Child::wait).
    pub fn kill(&self) -> Result<(), Error> {
        self.inner.kill()
    }

    /// Sends `signal` to the child's whole process group when it has its own (see
    /// [`crate::Child::signal_group`]); to the child alone otherwise.
    pub fn signal_group(&self, signal: Signal) -> Result<(), Error> {
        self.inner.signal_group(signal)
    }

    /// `run`'s answer to a timeout, as the blocking one: kills the child, its group when it
    /// has its own, and with `tree` every descendant found (stopped first; Linux), then reaps
    /// it without blocking.
    pub(crate) async fn kill_tree_and_reap(&mut self, tree: bool) -> Result<ExitStatus, Error> {
        self.inner.kill_tree(tree)?;
        self.wait().await
    }

    pub(crate) fn io_error(&self, during: &'static str, source: io::Error) -> Error {
        self.inner.io_error(during, source)
    }
}

/// The child's pipes, registered with the reactor (taken out of `inner`).
#[allow(clippy::type_complexity)] // Three named pipe types, in stdin, stdout, stderr order.
fn register(
    inner: &mut crate::Child,
) -> io::Result<(Option<ChildStdin>, Option<ChildStdout>, Option<ChildStderr>)> {
    let stdin = inner
        .stdin
        .take()
        .map(|p| Registered::new(File::from(std::os::fd::OwnedFd::from(p))));
    let stdout = inner
        .stdout
        .take()
        .map(|p| Registered::new(File::from(std::os::fd::OwnedFd::from(p))));
    let stderr = inner
        .stderr
        .take()
        .map(|p| Registered::new(File::from(std::os::fd::OwnedFd::from(p))));
    Ok((
        stdin.transpose()?.map(ChildStdin),
        stdout.transpose()?.map(ChildStdout),
        stderr.transpose()?.map(ChildStderr),
    ))
}

/// The child's pidfd registered with the reactor where there is one (Linux 5.3+), else naps.
fn exit_wait(inner: &crate::Child) -> ExitWait {
    #[cfg(target_os = "linux")]
    if let Some(pidfd) = inner.exit_fd() {
        use std::os::fd::AsRawFd;
        // A failed registration (out of epoll watches) only costs naps.
        #[allow(deprecated)] // Sound: see `InnerPidfd`.
        let registered = ::tokio::io::unix::AsyncFd::with_interest(
            InnerPidfd(pidfd.as_raw_fd()),
            ::tokio::io::Interest::READABLE,
        );
        if let Ok(registered) = registered {
            return ExitWait::Pidfd(registered);
        }
    }
    #[cfg(not(target_os = "linux"))]
    let _ = inner;
    ExitWait::Slices
}

/// The pidfd of a [`Child`]'s `inner` child, by number, registered without a duplicate: one
/// descriptor per child fewer, which counts with thousands of children at once (every spawn
/// copies the whole descriptor table into the new process and closes it there). Registering a
/// descriptor we do not own is sound here, as tokio requires of `AsyncFd::with_interest`
/// (deprecated for the unsafe `register*`, whose contract this is), because the descriptor
/// stays open and the same for as long as the registration exists: an own child's pidfd is
/// opened once when it is spawned and closed only when its handle drops, and
/// [`Child::exit`](Child) is declared before `Child::inner`, so the registration is dropped
/// (deregistered) first; nothing moves `inner` out of a `Child`.
#[cfg(target_os = "linux")]
#[derive(Debug)]
struct InnerPidfd(std::os::fd::RawFd);

#[cfg(target_os = "linux")]
impl std::os::fd::AsRawFd for InnerPidfd {
    fn as_raw_fd(&self) -> std::os::fd::RawFd {
        self.0
    }
}

impl Drop for Child {
    fn drop(&mut self) {
        // Pipes first: a child blocked writing to us gets EPIPE and can end.
        self.stdin = None;
        self.stdout = None;
        self.stderr = None;
        if self.inner.kill_on_drop && self.inner.status().is_none() {
            // Killed, but not waited for here: that could block the runtime. `inner`'s drop
            // reaps it if it has ended already, or hands it to the background reaper.
            let _ = self.inner.signal_group(Signal::KILL);
            self.inner.kill_on_drop = false;
        }
    }
}
