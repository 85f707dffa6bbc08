//! Sleeping until file descriptors are ready: the one poll loop every higher crate uses (result
//! pipes, typed connections, `communicate`, pool workers), so EINTR and timeouts are handled once.

use std::io;
use std::os::fd::BorrowedFd;
use std::time::Duration;

use rustix::event::{PollFd, PollFlags, Timespec};
use rustix::io::Errno;

/// What to wait for on one descriptor.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Interest {
    /// Data to read, end-of-file, or (for a pidfd) the process exited.
    Read,
    /// Room to write, or the reader went away (a write would fail with `EPIPE`).
    Write,
    /// Only the other end going away: for the write end of a pipe, every reader closed it;
    /// for a socket, the peer closed. What a process watches on its output when it should
    /// end once nobody reads it, without waking for room to write.
    HangUp,
}

/// What [`poll`] found on one descriptor.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Readiness {
    /// `POLLIN`: a read will not block (it may return end-of-file).
    pub readable: bool,
    /// `POLLOUT`: a write will not block.
    pub writable: bool,
    /// `POLLHUP` or `POLLERR`: the other end is gone; a read returns end-of-file, a write fails.
    pub hung_up: bool,
}

impl Readiness {
    /// True when the next operation of the requested kind will not block.
    pub fn is_ready(self) -> bool {
        self.readable || self.writable || self.hung_up
    }
}

/// Waits until at least one of `fds` is ready for its [`Interest`], or `timeout` passes
/// (`None` waits forever). Returns one [`Readiness`] per fd, in order; all not-ready after a
/// timeout or when a signal interrupted the wait, so callers loop and re-check their deadline.
///
/// # References
///  - [POSIX](https://pubs.opengroup.org/onlinepubs/9799919799/functions/poll.html)
///  - [Linux](https://man7.org/linux/man-pages/man2/poll.2.html)
pub fn poll(
    fds: &[(BorrowedFd<'_>, Interest)],
    timeout: Option<Duration>,
) -> io::Result<Vec<Readiness>> {
    let mut poll_fds: Vec<PollFd<'_>> = fds
        .iter()
        .map(|&(fd, interest)| poll_fd(fd, interest))
        .collect();
    if poll_fds_for(&mut poll_fds, timeout)? {
        Ok(poll_fds.iter().map(readiness).collect())
    } else {
        Ok(vec![Readiness::default(); fds.len()])
    }
}

/// [`poll`] for a number of descriptors known when compiling, with no allocation: what a
/// forked child's parent uses while the child lives, when every heap page it writes is a
/// copy-on-write fault.
///
/// ```
/// use std::os::fd::AsFd;
/// use fork_sys::Interest;
///
/// let (read, write) = fork_sys::pipe()?;
/// fork_sys::write_all(&write, b"x")?;
/// let [ready] = fork_sys::poll_array([(read.as_fd(), Interest::Read)], None)?;
/// assert!(ready.readable);
/// # Ok::<(), std::io::Error>(())
/// ```
pub fn poll_array<const N: usize>(
    fds: [(BorrowedFd<'_>, Interest); N],
    timeout: Option<Duration>,
) -> io::Result<[Readiness; N]> {
    let mut poll_fds = fds.map(|(fd, interest)| poll_fd(fd, interest));
    if poll_fds_for(&mut poll_fds, timeout)? {
        Ok(poll_fds.each_ref().map(readiness))
    } else {
        Ok([Readiness::default(); N])
    }
}

/// The `pollfd` asking for `interest` on `fd`.
fn poll_fd(fd: BorrowedFd<'_>, interest: Interest) -> PollFd<'_> {
    let events = match interest {
        Interest::Read => PollFlags::IN,
        Interest::Write => PollFlags::OUT,
        // POLLHUP and POLLERR are reported whatever is asked.
        Interest::HangUp => PollFlags::empty(),
    };
    PollFd::from_borrowed_fd(fd, events)
}

/// What `poll` reported on one descriptor.
fn readiness(fd: &PollFd<'_>) -> Readiness {
    let revents = fd.revents();
    Readiness {
        readable: revents.contains(PollFlags::IN),
        writable: revents.contains(PollFlags::OUT),
        hung_up: revents.intersects(PollFlags::HUP | PollFlags::ERR | PollFlags::NVAL),
    }
}

/// One `poll` of `fds`: `true` when it returned, `false` when a signal interrupted it (the
/// `revents` then mean nothing).
fn poll_fds_for(fds: &mut [PollFd<'_>], timeout: Option<Duration>) -> io::Result<bool> {
    // A timeout too large for a timespec is as good as forever.
    let timeout = timeout.and_then(|t| Timespec::try_from(t).ok());
    match rustix::event::poll(fds, timeout.as_ref()) {
        Ok(_) => Ok(true),
        Err(Errno::INTR) => Ok(false),
        Err(err) => Err(err.into()),
    }
}

/// Names the calling thread (what `ps -L`, `top -H` and debuggers show); in a freshly forked
/// child that is the name of the whole process as `ps` shows it. The kernel keeps 15 bytes:
/// longer names are cut (at a character boundary). Whitespace becomes `-`: programs that
/// read `/proc/PID/stat` with `scanf("%d (%s) %c %d")` lose a process whose name has a space,
/// and one of them is Slurm's `proctrack/linuxproc`, which then cannot kill it when its job
/// step is cancelled (the step hangs "completing" and the node is drained). Linux only; a
/// no-op elsewhere.
///
/// # References
///  - [Linux](https://man7.org/linux/man-pages/man2/PR_SET_NAME.2const.html)
pub fn set_thread_name(name: &str) -> io::Result<()> {
    #[cfg(any(target_os = "linux", target_os = "android"))]
    {
        let mut end = name.len().min(15);
        while !name.is_char_boundary(end) {
            end -= 1;
        }
        let short: Vec<u8> = name.as_bytes()[..end]
            .iter()
            .copied()
            .filter(|&b| b != 0)
            .map(|b| if b.is_ascii_whitespace() { b'-' } else { b })
            .collect();
        let name = std::ffi::CString::new(short)
            .map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e))?;
        Ok(rustix::thread::set_name(&name)?)
    }
    #[cfg(not(any(target_os = "linux", target_os = "android")))]
    {
        let _ = name;
        Ok(())
    }
}

/// How many threads this process has right now, or `None` where the platform does not say.
/// Linux: the `Threads:` line of `/proc/self/status`. For tests and diagnostics (a process
/// about to fork can check it is single-threaded); the count may change the instant after,
/// and a thread just joined may still be counted for a moment (`join` returns when the thread
/// clears its tid, slightly before the kernel removes it from the process).
///
/// # References
///  - [Linux proc_pid_status(5)](https://man7.org/linux/man-pages/man5/proc_pid_status.5.html)
pub fn thread_count() -> Option<usize> {
    #[cfg(any(target_os = "linux", target_os = "android"))]
    {
        let status = std::fs::read_to_string("/proc/self/status").ok()?;
        status
            .lines()
            .find_map(|line| line.strip_prefix("Threads:"))
            .and_then(|count| count.trim().parse().ok())
    }
    #[cfg(not(any(target_os = "linux", target_os = "android")))]
    {
        None
    }
}

/// The system-wide monotonic clock (`CLOCK_MONOTONIC`), as the time since its unspecified
/// start. Unlike [`Instant`](std::time::Instant), the value means the same in every process of
/// the machine, so one process can stamp a deadline or a start time that another compares with
/// its own reading (in shared memory, say). It never goes back, and does not follow changes to
/// the wall clock. On Linux it is the clock behind `Instant` and stops while the system is
/// suspended; macOS's `Instant` reads `CLOCK_UPTIME_RAW` instead, so do not mix the two there.
///
/// # References
///  - [POSIX](https://pubs.opengroup.org/onlinepubs/9799919799/functions/clock_gettime.html)
///  - [Linux](https://man7.org/linux/man-pages/man2/clock_gettime.2.html)
pub fn monotonic_now() -> Duration {
    let now = rustix::time::clock_gettime(rustix::time::ClockId::Monotonic);
    // The kernel keeps both fields in range: seconds since boot, nanoseconds below 10^9.
    Duration::new(
        u64::try_from(now.tv_sec).unwrap_or(0),
        u32::try_from(now.tv_nsec).unwrap_or(0),
    )
}
