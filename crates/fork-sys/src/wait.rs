//! Reaping children: blocking, non-blocking, and with a timeout that sleeps in the kernel.
//!
//! The timeout path needs an event that fires when a child exits. That is the one platform
//! difference here, kept in [`ExitWatcher`]: a pidfd in `poll` on Linux (5.3+), a kqueue
//! `EVFILT_PROC` on Apple and the BSDs, and elsewhere (or when the kernel refuses both) a sleep
//! that backs off from 1 ms to 50 ms between checks.

use std::io;
use std::os::fd::OwnedFd;
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use rustix::io::Errno;
use rustix::process::WaitOptions;

use crate::{ExitStatus, Pid};

/// Blocks until the child `pid` ends, reaps it and returns how it ended. Retries on `EINTR`.
///
/// # References
///  - [POSIX](https://pubs.opengroup.org/onlinepubs/9799919799/functions/waitpid.html)
///  - [Linux](https://man7.org/linux/man-pages/man2/waitpid.2.html)
pub fn wait(pid: Pid) -> io::Result<ExitStatus> {
    loop {
        match waitpid(pid, WaitOptions::empty())? {
            Some(status) => return Ok(status),
            // Without WNOHANG, waitpid only returns early for a stop/continue report, which we
            // did not ask for; keep waiting.
            None => continue,
        }
    }
}

/// Reaps the child `pid` if it has ended, without blocking (`waitpid` with `WNOHANG`);
/// `Ok(None)` while it is still running.
///
/// # References
///  - [POSIX](https://pubs.opengroup.org/onlinepubs/9799919799/functions/waitpid.html)
pub fn try_wait(pid: Pid) -> io::Result<Option<ExitStatus>> {
    waitpid(pid, WaitOptions::NOHANG)
}

/// Waits at most `timeout` for the child `pid` to end; `Ok(None)` if it is still running then.
///
/// Sleeps in the kernel (pidfd + `poll` on Linux, kqueue on Apple/BSD): no busy-waiting. Keep a
/// [`ChildHandle`](crate::ChildHandle) instead when you wait on the same child repeatedly; it
/// opens the watcher once.
pub fn wait_timeout(pid: Pid, timeout: Duration) -> io::Result<Option<ExitStatus>> {
    let watcher = ExitWatcher::new(pid);
    wait_with_watcher(pid, &watcher, timeout)
}

pub(crate) fn wait_with_watcher(
    pid: Pid,
    watcher: &ExitWatcher,
    timeout: Duration,
) -> io::Result<Option<ExitStatus>> {
    let Some(deadline) = Instant::now().checked_add(timeout) else {
        return wait(pid).map(Some);
    };
    let mut naps = 0;
    loop {
        if let Some(status) = try_wait(pid)? {
            return Ok(Some(status));
        }
        let now = Instant::now();
        if now >= deadline {
            return Ok(None);
        }
        watcher.sleep_until_exit(deadline - now, &mut naps)?;
    }
}

/// `waitpid` that retries on `EINTR` and decodes the status. Stop/continue reports are not
/// requested, so `None` only means "still running" under `WNOHANG`.
fn waitpid(pid: Pid, options: WaitOptions) -> io::Result<Option<ExitStatus>> {
    loop {
        match rustix::process::waitpid(Some(pid.to_rustix()), options) {
            Ok(Some((_, raw))) => {
                // The child is reaped now: a status we cannot read must not pass for "still
                // running", or the next wait fails with ECHILD and the real ending is lost.
                return ExitStatus::from_raw(raw.as_raw()).map(Some).ok_or_else(|| {
                    io::Error::other(format!(
                        "waitpid reported status {:#x} for process {pid}, which is not an ending",
                        raw.as_raw()
                    ))
                });
            }
            Ok(None) => return Ok(None),
            Err(Errno::INTR) => continue,
            Err(Errno::CHILD) => {
                return Err(io::Error::new(io::ErrorKind::NotFound, NotAChild { pid }));
            }
            Err(err) => return Err(err.into()),
        }
    }
}

/// The error inside the `io::Error` (kind `NotFound`) that the waits return for `ECHILD`: `pid`
/// is not an unreaped child of this process. For a child nothing in this process waited for,
/// that means it has ended and the kernel (SIGCHLD set to `SIG_IGN`, `SA_NOCLDWAIT`) or some
/// other code (a `waitpid(-1)`) reaped it: how it ended is lost. Test for it with
/// [`is_not_a_child`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NotAChild {
    /// The pid waited for.
    pub pid: Pid,
}

impl std::fmt::Display for NotAChild {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "process {} is not an unreaped child of this process \
             (already waited for, or SIGCHLD is ignored)",
            self.pid
        )
    }
}

impl std::error::Error for NotAChild {}

/// True when `err` is a wait's `ECHILD` ([`NotAChild`]): the child is gone and its status with
/// it.
pub fn is_not_a_child(err: &io::Error) -> bool {
    err.get_ref()
        .is_some_and(|inner| inner.downcast_ref::<NotAChild>().is_some())
}

/// A descriptor that becomes readable when process `pid` exits: a pidfd on Linux, a kqueue
/// with `EVFILT_PROC`/`NOTE_EXIT` registered on Apple and the BSDs. Works for any process the
/// caller may see, not only its children (it never reaps anything).
pub(crate) fn process_exit_fd(pid: Pid) -> io::Result<OwnedFd> {
    platform::open(pid)
}

/// Something that becomes ready when one child exits, so a timed wait can sleep in the kernel.
#[derive(Debug)]
pub(crate) struct ExitWatcher {
    pid: Pid,
    /// A pidfd (Linux) or a kqueue with the child registered (Apple/BSD); `None` inside when
    /// the platform or kernel offers neither, and we back off between checks instead. Unset
    /// until first needed, for a watcher made [`on_demand`](Self::on_demand).
    fd: OnceLock<Option<OwnedFd>>,
}

impl ExitWatcher {
    /// Opens the watcher now. Never fails: when no kernel watcher is available we fall back
    /// to sleeping.
    pub(crate) fn new(pid: Pid) -> ExitWatcher {
        ExitWatcher {
            pid,
            fd: OnceLock::from(platform::open(pid).ok()),
        }
    }

    /// Opens the watcher the first time it is needed (a timed wait, [`fd`](Self::fd)): opening
    /// a pidfd costs a few µs, and an untimed wait (a blocking `waitpid`) needs none.
    pub(crate) fn on_demand(pid: Pid) -> ExitWatcher {
        ExitWatcher {
            pid,
            fd: OnceLock::new(),
        }
    }

    /// A watcher on an exit fd opened elsewhere (a pidfd from `clone`).
    #[cfg(target_os = "linux")]
    pub(crate) fn from_fd(pid: Pid, fd: OwnedFd) -> ExitWatcher {
        ExitWatcher {
            pid,
            fd: OnceLock::from(Some(fd)),
        }
    }

    /// The kernel watcher, opened now if it was not yet. Only while the child is unreaped:
    /// after that its pid may belong to another process.
    fn fd(&self) -> Option<&OwnedFd> {
        self.fd
            .get_or_init(|| platform::open(self.pid).ok())
            .as_ref()
    }

    /// The kernel watcher if it has been opened.
    #[cfg(target_os = "linux")]
    pub(crate) fn opened(&self) -> Option<std::os::fd::BorrowedFd<'_>> {
        use std::os::fd::AsFd;
        self.fd.get().and_then(Option::as_ref).map(|fd| fd.as_fd())
    }

    /// The kernel watcher (the pidfd on Linux), opened now if it was not yet. Only while the
    /// child is unreaped.
    #[cfg(target_os = "linux")]
    pub(crate) fn exit_fd(&self) -> Option<std::os::fd::BorrowedFd<'_>> {
        use std::os::fd::AsFd;
        self.fd().map(|fd| fd.as_fd())
    }

    /// Sleeps until the child may have exited or `timeout` passes, whichever comes first. May
    /// return early (a signal, a spurious wake-up); callers re-check with `try_wait`.
    fn sleep_until_exit(&self, timeout: Duration, naps: &mut u32) -> io::Result<()> {
        match self.fd() {
            Some(fd) => platform::sleep_until_ready(fd, timeout),
            None => {
                // 1, 2, 4 ... 32, 50, 50 ms: quick for short-lived children, cheap for long ones.
                let nap =
                    Duration::from_millis(1u64 << (*naps).min(5)).min(Duration::from_millis(50));
                *naps += 1;
                std::thread::sleep(nap.min(timeout));
                Ok(())
            }
        }
    }
}

#[cfg(target_os = "linux")]
mod platform {
    use std::io;
    use std::os::fd::OwnedFd;
    use std::time::Duration;

    use rustix::event::{PollFd, PollFlags, Timespec};
    use rustix::io::Errno;
    use rustix::process::PidfdFlags;

    use crate::Pid;

    pub(super) fn open(pid: Pid) -> io::Result<OwnedFd> {
        // pidfds are created close-on-exec by the kernel.
        Ok(rustix::process::pidfd_open(
            pid.to_rustix(),
            PidfdFlags::empty(),
        )?)
    }

    pub(super) fn sleep_until_ready(pidfd: &OwnedFd, timeout: Duration) -> io::Result<()> {
        let timeout = Timespec::try_from(timeout).ok();
        let mut fds = [PollFd::new(pidfd, PollFlags::IN)];
        match rustix::event::poll(&mut fds, timeout.as_ref()) {
            Ok(_) | Err(Errno::INTR) => Ok(()),
            Err(err) => Err(err.into()),
        }
    }
}

#[cfg(any(
    target_os = "macos",
    target_os = "ios",
    target_os = "freebsd",
    target_os = "netbsd",
    target_os = "openbsd",
    target_os = "dragonfly"
))]
mod platform {
    use std::io;
    use std::os::fd::OwnedFd;
    use std::time::Duration;

    use rustix::event::kqueue::{self, Event, EventFilter, EventFlags, ProcessEvents};
    use rustix::io::Errno;

    use crate::Pid;

    pub(super) fn open(pid: Pid) -> io::Result<OwnedFd> {
        let kq = kqueue::kqueue()?;
        let exit = Event::new(
            EventFilter::Proc {
                pid: pid.to_rustix(),
                flags: ProcessEvents::EXIT,
            },
            EventFlags::ADD | EventFlags::ONESHOT,
            std::ptr::null_mut(),
        );
        let mut none: Vec<Event> = Vec::new();
        // SAFETY: a process filter refers to no file descriptor, so there is no fd that must
        // outlive the kqueue.
        unsafe { kqueue::kevent(&kq, &[exit], &mut none, Some(Duration::ZERO)) }?;
        Ok(kq)
    }

    pub(super) fn sleep_until_ready(kq: &OwnedFd, timeout: Duration) -> io::Result<()> {
        let mut events: Vec<Event> = Vec::with_capacity(1);
        // SAFETY: the only registered event is a process filter, which refers to no fd.
        match unsafe { kqueue::kevent(kq, &[], &mut events, Some(timeout)) } {
            Ok(_) | Err(Errno::INTR) => Ok(()),
            Err(err) => Err(err.into()),
        }
    }
}

#[cfg(not(any(
    target_os = "linux",
    target_os = "macos",
    target_os = "ios",
    target_os = "freebsd",
    target_os = "netbsd",
    target_os = "openbsd",
    target_os = "dragonfly"
)))]
mod platform {
    use std::io;
    use std::os::fd::OwnedFd;
    use std::time::Duration;

    use crate::Pid;

    pub(super) fn open(_pid: Pid) -> io::Result<OwnedFd> {
        Err(io::Error::new(
            io::ErrorKind::Unsupported,
            "no process-exit event on this platform",
        ))
    }

    pub(super) fn sleep_until_ready(_fd: &OwnedFd, timeout: Duration) -> io::Result<()> {
        std::thread::sleep(timeout);
        Ok(())
    }
}
