//! `ChildHandle`: one child process, reaped exactly once, signalled safely; either our own
//! child, or one that a fork server forked and reaps for us, reporting its status on a pipe.

use std::io;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::time::{Duration, Instant};

use crate::wait::{self, ExitWatcher};
use crate::{ExitStatus, Interest, Pid, Signal};

/// How long [`ChildHandle::try_wait`] waits for a fork server to report the status of a child
/// its pidfd says has exited: the server reaps at once, so this bounds only a stopped server.
pub const STATUS_GRACE: Duration = Duration::from_secs(1);

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
///
/// A *served* handle ([`served`](ChildHandle::served)) stands for a child that another process
/// of ours (a fork server) forked and reaps: its status arrives on a pipe instead of from
/// `waitpid`, and the same calls work on it.
#[derive(Debug)]
pub struct ChildHandle {
    pid: Pid,
    status: Option<ExitStatus>,
    kind: Kind,
}

#[derive(Debug)]
enum Kind {
    /// Our own child: reaped with `waitpid`.
    Own { watcher: ExitWatcher },
    /// A fork server's child: its raw wait status arrives on `status_pipe`.
    Served {
        /// Opened by the server before it could reap the child (Linux).
        pidfd: Option<OwnedFd>,
        /// Readable once the status arrived or the server is gone.
        status_pipe: OwnedFd,
        /// Whether `status_pipe` was made non-blocking (it always is, unless `fcntl` failed:
        /// then each read waits for `poll` to say it will not block).
        nonblocking: bool,
        /// The status bytes read so far, and how many.
        partial: [u8; 4],
        got: usize,
        /// Set once the pipe ended without a status, or with one that is not an ending.
        broken: Option<Broken>,
    },
}

#[derive(Debug, Clone, Copy)]
enum Broken {
    /// End-of-file before 4 bytes: [`StatusLost`].
    Lost,
    /// 4 bytes that `ExitStatus::from_raw` does not take for an ending.
    NotAnEnding(i32),
}

/// The error inside the `io::Error` (kind `Other`) that the waits of a
/// [served](ChildHandle::served) handle return when the fork server closed the status pipe
/// without writing a status (it died, or was killed): whether the child still runs, and how it
/// ended, is unknown. Later calls return the same error.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StatusLost {
    /// The child whose status was lost.
    pub pid: Pid,
}

impl std::fmt::Display for StatusLost {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "the fork server that ran pid {} exited without reporting how it ended",
            self.pid
        )
    }
}

impl std::error::Error for StatusLost {}

/// True when `err` is a served child's lost status ([`StatusLost`]), as
/// [`is_not_a_child`](crate::is_not_a_child) is for our own children's.
pub fn is_status_lost(err: &io::Error) -> bool {
    err.get_ref()
        .is_some_and(|inner| inner.downcast_ref::<StatusLost>().is_some())
}

impl ChildHandle {
    /// Takes charge of `pid`, which must be a child of this process that nothing else will
    /// reap (a pid just returned by [`fork`](crate::fork), say). Opens the exit watcher
    /// (a pidfd on Linux) now, while the pid cannot yet have been reused.
    pub fn new(pid: Pid) -> ChildHandle {
        ChildHandle {
            pid,
            status: None,
            kind: Kind::Own {
                watcher: ExitWatcher::new(pid),
            },
        }
    }

    /// [`new`](ChildHandle::new), but the exit watcher (the pidfd) is opened only when
    /// something needs it: [`exit_fd`](Self::exit_fd), a timed wait. A handle that is only
    /// ever waited for without a limit ([`wait`](Self::wait), a blocking `waitpid`) never
    /// opens one, which saves a few µs per child. Signals go by pid until then, which is
    /// safe for the same reason: nothing else reaps the child, so its pid is not reused.
    pub fn new_watched_on_demand(pid: Pid) -> ChildHandle {
        ChildHandle {
            pid,
            status: None,
            kind: Kind::Own {
                watcher: ExitWatcher::on_demand(pid),
            },
        }
    }

    /// [`new`](ChildHandle::new) with the exit watcher already open: `exit_fd` is the
    /// child's pidfd, made by `clone` (`CLONE_PIDFD`) with the child.
    #[cfg(target_os = "linux")]
    pub(crate) fn with_exit_fd(pid: Pid, exit_fd: OwnedFd) -> ChildHandle {
        ChildHandle {
            pid,
            status: None,
            kind: Kind::Own {
                watcher: ExitWatcher::from_fd(pid, exit_fd),
            },
        }
    }

    /// A child forked and reaped by another process (a fork server), which writes the child's
    /// raw wait status ([`ExitStatus::into_raw`], 4 bytes little endian, one write) on `status`
    /// once it has reaped it, then closes it. `pidfd` (Linux, opened by the server before it
    /// could reap, passed by `SCM_RIGHTS`) signals the child with no pid-reuse race; without
    /// one, [`send_signal`](Self::send_signal) falls back to `kill(pid)` while no status has
    /// arrived.
    ///
    /// `status` is made non-blocking (the read end of a pipe: its file description, so any
    /// copy of it too); [`exit_fd`](Self::exit_fd) returns it on every platform.
    pub fn served(pid: Pid, pidfd: Option<OwnedFd>, status: OwnedFd) -> ChildHandle {
        // Cannot fail on an open fd; if it did, `read_status` polls before every read instead.
        let nonblocking = crate::set_nonblocking(&status, true).is_ok();
        ChildHandle {
            pid,
            status: None,
            kind: Kind::Served {
                pidfd,
                status_pipe: status,
                nonblocking,
                partial: [0; 4],
                got: 0,
                broken: None,
            },
        }
    }

    /// Whether this handle is a [served](Self::served) child (reaped by a fork server, not by
    /// us).
    pub fn is_served(&self) -> bool {
        matches!(self.kind, Kind::Served { .. })
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
    ///
    /// For a served child, reads the status pipe without blocking: the status once it arrived.
    /// When its pidfd says it has exited but the status is not there yet (the server reaps it
    /// a moment later), waits for it (at most [`STATUS_GRACE`]), so a child known to have
    /// exited has a status. When the server went away without reporting (the pipe ended), the
    /// answer is `Ok(None)` while the pidfd says the child still runs (it may outlive the
    /// server), then an error holding [`StatusLost`]; without a pidfd, that error at once.
    pub fn try_wait(&mut self) -> io::Result<Option<ExitStatus>> {
        if self.status.is_none() {
            self.status = match &mut self.kind {
                Kind::Own { .. } => wait::try_wait(self.pid)?,
                Kind::Served { .. } => self.try_served()?,
            };
        }
        Ok(self.status)
    }

    /// [`try_wait`](Self::try_wait) for a served child.
    fn try_served(&mut self) -> io::Result<Option<ExitStatus>> {
        match self.read_status() {
            Ok(Some(status)) => Ok(Some(status)),
            Ok(None) if self.pidfd_ready(Some(Duration::ZERO))? => {
                self.wait_for_status(STATUS_GRACE)
            }
            Ok(None) => Ok(None),
            Err(lost) if self.status_lost() && self.has_pidfd() => {
                if self.pidfd_ready(Some(Duration::ZERO))? {
                    Err(lost)
                } else {
                    Ok(None)
                }
            }
            Err(err) => Err(err),
        }
    }

    /// Reads the status pipe until the status arrives or `timeout` passes (`Ok(None)`).
    fn wait_for_status(&mut self, timeout: Duration) -> io::Result<Option<ExitStatus>> {
        let deadline = Instant::now().checked_add(timeout);
        loop {
            if let Some(status) = self.read_status()? {
                return Ok(Some(status));
            }
            let left = match deadline {
                Some(deadline) => {
                    let now = Instant::now();
                    if now >= deadline {
                        return Ok(None);
                    }
                    Some(deadline - now)
                }
                None => None,
            };
            if let Kind::Served { status_pipe, .. } = &self.kind {
                crate::poll(&[(status_pipe.as_fd(), Interest::Read)], left)?;
            }
        }
    }

    /// Waits at most `timeout` (`None`: no limit) for the child to have *exited*; true once it
    /// has. For our own child this is [`wait_timeout`](Self::wait_timeout) (it reaps). For a
    /// served child with a pidfd it is the pidfd's word, with no round trip through the server,
    /// whose status follows a moment later ([`try_wait`](Self::try_wait) waits for that).
    pub fn wait_exited(&mut self, timeout: Option<Duration>) -> io::Result<bool> {
        if self.status.is_some() {
            return Ok(true);
        }
        if self.is_served() && self.has_pidfd() {
            return self.pidfd_ready(timeout);
        }
        match timeout {
            Some(timeout) => Ok(self.wait_timeout(timeout)?.is_some()),
            None => self.wait().map(|_| true),
        }
    }

    fn has_pidfd(&self) -> bool {
        matches!(self.kind, Kind::Served { pidfd: Some(_), .. })
    }

    fn status_lost(&self) -> bool {
        matches!(
            self.kind,
            Kind::Served {
                broken: Some(Broken::Lost),
                ..
            }
        )
    }

    /// For a served child with a pidfd: waits at most `timeout` for it to become readable;
    /// true once the child has exited. False at once without a pidfd.
    fn pidfd_ready(&self, timeout: Option<Duration>) -> io::Result<bool> {
        let Kind::Served {
            pidfd: Some(pidfd), ..
        } = &self.kind
        else {
            return Ok(false);
        };
        let ready = crate::poll(&[(pidfd.as_fd(), Interest::Read)], timeout)?;
        Ok(ready.first().is_some_and(|r| r.is_ready()))
    }

    /// Blocks until the child ends and returns how it ended. Calling it again returns the same
    /// status.
    pub fn wait(&mut self) -> io::Result<ExitStatus> {
        if let Some(status) = self.status {
            return Ok(status);
        }
        let status = match &self.kind {
            Kind::Own { .. } => wait::wait(self.pid)?,
            Kind::Served { .. } => loop {
                // No deadline: only a status ends the wait.
                if let Some(status) = self.wait_served(None)? {
                    break status;
                }
            },
        };
        self.status = Some(status);
        Ok(status)
    }

    /// Waits at most `timeout` for the child to end; `Ok(None)` if it still runs then.
    /// Sleeps in the kernel; `Duration::ZERO` is the same as [`try_wait`](Self::try_wait).
    pub fn wait_timeout(&mut self, timeout: Duration) -> io::Result<Option<ExitStatus>> {
        if self.status.is_some() {
            return Ok(self.status);
        }
        match &self.kind {
            Kind::Own { watcher } => {
                self.status = wait::wait_with_watcher(self.pid, watcher, timeout)?;
                Ok(self.status)
            }
            Kind::Served { .. } => match Instant::now().checked_add(timeout) {
                Some(deadline) => self.wait_served(Some(deadline)),
                None => self.wait().map(Some),
            },
        }
    }

    /// A served child: [`try_wait`](Self::try_wait), sleeping on [`exit_fd`](Self::exit_fd)
    /// between looks, until a status or `deadline` (`None`: none).
    fn wait_served(&mut self, deadline: Option<Instant>) -> io::Result<Option<ExitStatus>> {
        loop {
            if let Some(status) = self.try_wait()? {
                return Ok(Some(status));
            }
            let left = match deadline {
                Some(deadline) => {
                    let now = Instant::now();
                    if now >= deadline {
                        return Ok(None);
                    }
                    Some(deadline - now)
                }
                None => None,
            };
            self.sleep_until_stirs(left)?;
        }
    }

    /// A served child's status, if the server has written it: one read of what the pipe holds,
    /// without blocking; a lost or bad status is remembered.
    fn read_status(&mut self) -> io::Result<Option<ExitStatus>> {
        let pid = self.pid;
        let Kind::Served {
            status_pipe,
            nonblocking,
            partial,
            got,
            broken,
            ..
        } = &mut self.kind
        else {
            return Ok(None);
        };
        if broken.is_none() {
            if !*nonblocking {
                let ready = crate::poll(
                    &[(status_pipe.as_fd(), Interest::Read)],
                    Some(Duration::ZERO),
                )?;
                if !ready.iter().any(|r| r.is_ready()) {
                    return Ok(None);
                }
            }
            // One read: the server's single 4-byte write arrives whole (it is below
            // PIPE_BUF); should a read split it anyway, the rest is readable next time.
            match crate::retry_eintr(|| rustix::io::read(&*status_pipe, &mut partial[*got..])) {
                Ok(0) => *broken = Some(Broken::Lost),
                Ok(n) => {
                    *got += n;
                    if *got < partial.len() {
                        return Ok(None);
                    }
                    let raw = i32::from_le_bytes(*partial);
                    match ExitStatus::from_raw(raw) {
                        Some(status) => return Ok(Some(status)),
                        None => *broken = Some(Broken::NotAnEnding(raw)),
                    }
                }
                Err(err) if err.kind() == io::ErrorKind::WouldBlock => return Ok(None),
                Err(err) => return Err(err),
            }
        }
        match *broken {
            None => Ok(None),
            Some(Broken::Lost) => Err(io::Error::other(StatusLost { pid })),
            Some(Broken::NotAnEnding(raw)) => Err(io::Error::new(
                io::ErrorKind::InvalidData,
                format!(
                    "the fork server reported status {raw:#x} for process {pid}, \
                     which is not an ending"
                ),
            )),
        }
    }

    /// Sleeps until [`exit_fd`](Self::exit_fd) is readable or `timeout` passes; a signal may
    /// end it early (callers re-check).
    fn sleep_until_stirs(&self, timeout: Option<Duration>) -> io::Result<()> {
        if let Some(fd) = self.exit_fd() {
            crate::poll(&[(fd, Interest::Read)], timeout)?;
        }
        Ok(())
    }

    /// Sends `signal` to the child. Does nothing once the child has been reaped (its pid may
    /// belong to someone else by then), like Python's `Popen.send_signal`.
    ///
    /// A served child is signalled through its pidfd when it has one; otherwise with
    /// `kill(pid)` as long as no status has arrived (one waiting unread in the pipe counts as
    /// arrived). Without a pidfd, a child whose server died (see [`StatusLost`]) is still
    /// signalled by pid, and init may have reaped it and its pid been reused by then.
    pub fn send_signal(&self, signal: Signal) -> io::Result<()> {
        if self.status.is_some() {
            return Ok(());
        }
        match &self.kind {
            Kind::Own { watcher } => {
                #[cfg(target_os = "linux")]
                if let Some(pidfd) = watcher.opened() {
                    return signal_pidfd(pidfd, signal);
                }
                #[cfg(not(target_os = "linux"))]
                let _ = watcher;
            }
            Kind::Served {
                pidfd, status_pipe, ..
            } => {
                if let Some(pidfd) = pidfd {
                    return signal_pidfd(pidfd.as_fd(), signal);
                }
                // Bytes in the pipe: the server has reaped the child and the pid is free.
                if rustix::io::ioctl_fionread(status_pipe).is_ok_and(|unread| unread > 0) {
                    return Ok(());
                }
            }
        }
        match crate::kill(self.pid, signal) {
            Err(err) if err.raw_os_error() == Some(libc::ESRCH) => Ok(()),
            other => other,
        }
    }

    /// A descriptor that becomes readable when the child exits, for callers that `poll` on
    /// several children, or on a child and a pipe, at once. Our own child: the pidfd on Linux
    /// 5.3+, `None` elsewhere (and on older kernels), where callers wake up now and then
    /// instead. A served child: the status pipe, on every platform (readable once the status
    /// arrived, or the server is gone); once the server has gone without reporting, its pidfd
    /// (where it has one).
    pub fn exit_fd(&self) -> Option<BorrowedFd<'_>> {
        match &self.kind {
            // The server gone without a word: the pidfd is what can still tell (the pipe is at
            // end-of-file, readable for ever).
            Kind::Served {
                pidfd: Some(pidfd),
                broken: Some(Broken::Lost),
                ..
            } => Some(pidfd.as_fd()),
            Kind::Served { status_pipe, .. } => Some(status_pipe.as_fd()),
            // Once reaped, the pid may be another process's: a watcher not opened before
            // stays unopened.
            #[cfg(target_os = "linux")]
            Kind::Own { watcher } if self.status.is_some() => watcher.opened(),
            #[cfg(target_os = "linux")]
            Kind::Own { watcher } => watcher.exit_fd(),
            #[cfg(not(target_os = "linux"))]
            Kind::Own { .. } => None,
        }
    }
}

/// `pidfd_send_signal`, where "already exited" (`ESRCH`) is success.
#[cfg(target_os = "linux")]
fn signal_pidfd(pidfd: BorrowedFd<'_>, signal: Signal) -> io::Result<()> {
    match rustix::process::pidfd_send_signal(pidfd, signal.to_rustix()?) {
        // The child has exited but is not reaped yet: nothing to signal.
        Err(rustix::io::Errno::SRCH) => Ok(()),
        other => Ok(other?),
    }
}

/// No pidfds here: a served handle never gets one from a server on this platform.
#[cfg(not(target_os = "linux"))]
fn signal_pidfd(_pidfd: BorrowedFd<'_>, _signal: Signal) -> io::Result<()> {
    Err(io::Error::new(
        io::ErrorKind::Unsupported,
        "pidfds exist only on Linux",
    ))
}
