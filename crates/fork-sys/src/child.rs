//! `ChildHandle`: one child process, reaped exactly once, signalled safely.

use std::io;
use std::time::Duration;

use crate::wait::{self, ExitWatcher};
use crate::{ExitStatus, Pid, Signal};

/// A child process of this process that has not been reaped yet, with the parts every higher
/// layer needs: a cached exit status, waits with and without timeouts, and signalling that
/// cannot hit a stranger.
///
/// Once the child is reaped its pid may be reused by an unrelated process, so after that
/// [`send_signal`](ChildHandle::send_signal) does nothing; on Linux it signals through a pidfd,
/// which names this process and no other even before the reap.
///
/// Dropping a `ChildHandle` neither waits nor kills: the layer above decides (proc-core and
/// proc-spawn each document their choice). An unreaped child stays a zombie until then.
#[derive(Debug)]
pub struct ChildHandle {
    pid: Pid,
    status: Option<ExitStatus>,
    watcher: ExitWatcher,
}

impl ChildHandle {
    /// Takes charge of `pid`, which must be a child of this process that nothing else will
    /// reap (a pid just returned by [`fork`](crate::fork), say). Opens the exit watcher
    /// (a pidfd on Linux) now, while the pid cannot yet have been reused.
    pub fn new(pid: Pid) -> ChildHandle {
        ChildHandle {
            pid,
            status: None,
            watcher: ExitWatcher::new(pid),
        }
    }

    /// The child's process id.
    pub fn pid(&self) -> Pid {
        self.pid
    }

    /// How the child ended, if it has been reaped already; never makes a syscall.
    pub fn status(&self) -> Option<ExitStatus> {
        self.status
    }

    /// Reaps the child if it has ended, without blocking; `Ok(None)` while it runs.
    pub fn try_wait(&mut self) -> io::Result<Option<ExitStatus>> {
        if self.status.is_none() {
            self.status = wait::try_wait(self.pid)?;
        }
        Ok(self.status)
    }

    /// Blocks until the child ends and returns how it ended. Calling it again returns the same
    /// status.
    pub fn wait(&mut self) -> io::Result<ExitStatus> {
        match self.status {
            Some(status) => Ok(status),
            None => {
                let status = wait::wait(self.pid)?;
                self.status = Some(status);
                Ok(status)
            }
        }
    }

    /// Waits at most `timeout` for the child to end; `Ok(None)` if it still runs then.
    /// Sleeps in the kernel; `Duration::ZERO` is the same as [`try_wait`](Self::try_wait).
    pub fn wait_timeout(&mut self, timeout: Duration) -> io::Result<Option<ExitStatus>> {
        if self.status.is_none() {
            self.status = wait::wait_with_watcher(self.pid, &self.watcher, timeout)?;
        }
        Ok(self.status)
    }

    /// Sends `signal` to the child. Does nothing once the child has been reaped (its pid may
    /// belong to someone else by then), like Python's `Popen.send_signal`.
    pub fn send_signal(&self, signal: Signal) -> io::Result<()> {
        if self.status.is_some() {
            return Ok(());
        }
        #[cfg(target_os = "linux")]
        if let Some(pidfd) = self.watcher.pidfd() {
            return match rustix::process::pidfd_send_signal(pidfd, signal.to_rustix()?) {
                // The child has exited but is not reaped yet: nothing to signal.
                Err(rustix::io::Errno::SRCH) => Ok(()),
                other => Ok(other?),
            };
        }
        match crate::kill(self.pid, signal) {
            Err(err) if err.raw_os_error() == Some(libc::ESRCH) => Ok(()),
            other => other,
        }
    }

    /// A descriptor that becomes readable when the child exits, for callers that `poll` on
    /// several children, or on a child and a pipe, at once: the pidfd on Linux 5.3+; `None`
    /// elsewhere (and on older kernels), where callers wake up now and then instead.
    pub fn exit_fd(&self) -> Option<std::os::fd::BorrowedFd<'_>> {
        #[cfg(target_os = "linux")]
        {
            self.watcher.pidfd()
        }
        #[cfg(not(target_os = "linux"))]
        {
            None
        }
    }
}
