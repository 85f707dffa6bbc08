//! Pipes, always close-on-exec.

use std::io;
use std::os::fd::{AsFd, AsRawFd, OwnedFd, RawFd};

use rustix::io::FdFlags;

/// Creates a pipe, `(read end, write end)`, with `O_CLOEXEC` on both ends so that no exec'd
/// program inherits them by accident.
///
/// # References
///  - [POSIX](https://pubs.opengroup.org/onlinepubs/9799919799/functions/pipe.html)
///  - [Linux](https://man7.org/linux/man-pages/man2/pipe.2.html)
pub fn pipe() -> io::Result<(OwnedFd, OwnedFd)> {
    pipe_with(false)
}

/// Like [`pipe`], with `O_NONBLOCK` on both ends as well: reads and writes that would block
/// fail with `ErrorKind::WouldBlock` instead.
pub fn pipe_nonblocking() -> io::Result<(OwnedFd, OwnedFd)> {
    pipe_with(true)
}

#[cfg(not(any(target_os = "macos", target_os = "ios")))]
fn pipe_with(nonblocking: bool) -> io::Result<(OwnedFd, OwnedFd)> {
    use rustix::pipe::PipeFlags;
    let mut flags = PipeFlags::CLOEXEC;
    if nonblocking {
        flags |= PipeFlags::NONBLOCK;
    }
    Ok(rustix::pipe::pipe_with(flags)?)
}

/// Apple has no `pipe2`: set the flags right after `pipe`. A concurrent fork+exec in another
/// thread could inherit the ends in between; std has the same window there.
#[cfg(any(target_os = "macos", target_os = "ios"))]
fn pipe_with(nonblocking: bool) -> io::Result<(OwnedFd, OwnedFd)> {
    let (read, write) = rustix::pipe::pipe()?;
    for fd in [&read, &write] {
        rustix::io::fcntl_setfd(fd, FdFlags::CLOEXEC)?;
        if nonblocking {
            set_nonblocking(fd, true)?;
        }
    }
    Ok((read, write))
}

/// Writes all of `bytes` to `fd` with raw `write` system calls, retrying interrupted and
/// partial writes: `File::write_all` without std's code in between. Meant for a forked
/// child's last words: code the child runs is mapped into it page by page, a page fault each,
/// and this inlines into its caller. Stops at the first error (`WouldBlock` on a
/// non-blocking `fd` that is full: a write of at most `PIPE_BUF` bytes to a pipe then wrote
/// nothing; a longer one may have written part).
///
/// # References
///  - [POSIX](https://pubs.opengroup.org/onlinepubs/9799919799/functions/write.html)
#[inline]
pub fn write_all(fd: impl AsFd, mut bytes: &[u8]) -> io::Result<()> {
    while !bytes.is_empty() {
        match rustix::io::write(&fd, bytes) {
            Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
            Ok(written) => bytes = bytes.get(written..).unwrap_or_default(),
            Err(rustix::io::Errno::INTR) => {}
            Err(err) => return Err(err.into()),
        }
    }
    Ok(())
}

/// Closes `fd` with a raw `close` system call: dropping it, without libc's code in between
/// (see [`write_all`] for why a forked child cares). An error of `close` is ignored, as a drop
/// ignores it: the descriptor is gone either way on Linux.
///
/// # References
///  - [POSIX](https://pubs.opengroup.org/onlinepubs/9799919799/functions/close.html)
#[inline]
pub fn close(fd: OwnedFd) {
    use std::os::fd::IntoRawFd;
    // SAFETY: `fd` was owned, and `into_raw_fd` gave up that ownership to us alone: nothing
    // else closes or uses this descriptor number on our behalf.
    unsafe { rustix::io::close(fd.into_raw_fd()) }
}

/// Turns `O_NONBLOCK` on or off for `fd`.
///
/// # References
///  - [POSIX](https://pubs.opengroup.org/onlinepubs/9799919799/functions/fcntl.html)
pub fn set_nonblocking(fd: impl AsFd, nonblocking: bool) -> io::Result<()> {
    use rustix::fs::OFlags;
    let flags = rustix::fs::fcntl_getfl(&fd)?;
    let flags = if nonblocking {
        flags | OFlags::NONBLOCK
    } else {
        flags - OFlags::NONBLOCK
    };
    Ok(rustix::fs::fcntl_setfl(&fd, flags)?)
}

/// Whether `O_CLOEXEC` is set on `fd`.
pub fn is_cloexec(fd: impl AsFd) -> io::Result<bool> {
    Ok(rustix::io::fcntl_getfd(fd)?.contains(FdFlags::CLOEXEC))
}

/// Asks the kernel to make the pipe's buffer `size` bytes (`F_SETPIPE_SZ`) and returns the size
/// it chose. A larger pipe (1 MiB) more than doubles bulk throughput on Linux.
///
/// Linux only; elsewhere the size cannot be changed and this returns
/// `ErrorKind::Unsupported`. Unprivileged processes are capped at
/// `/proc/sys/fs/pipe-max-size` (`EPERM` past it).
///
/// # References
///  - [Linux](https://man7.org/linux/man-pages/man2/fcntl.2.html)
pub fn set_pipe_size(fd: impl AsFd, size: usize) -> io::Result<usize> {
    #[cfg(any(target_os = "linux", target_os = "android"))]
    {
        Ok(rustix::pipe::fcntl_setpipe_size(fd, size)?)
    }
    #[cfg(not(any(target_os = "linux", target_os = "android")))]
    {
        let _ = (fd, size);
        Err(io::Error::new(
            io::ErrorKind::Unsupported,
            "pipe buffers cannot be resized on this platform",
        ))
    }
}

/// Moves `fd` to a descriptor number near the top of this process's range (the soft
/// `RLIMIT_NOFILE` less `reserve`), close-on-exec, and closes the original; returns `fd`
/// unchanged when there is no such room (a low limit), the move fails, or this process has
/// more than one thread: the move grows the kernel's descriptor table, and Linux makes a
/// multi-threaded process wait an RCU grace period for that (milliseconds; measured 5 to 19
/// ms per call in a process with a second thread). Call it while single-threaded.
///
/// Code that writes to, closes or `dup2`s over "the first few dozen descriptors" (a debugging
/// habit, or a library cleaning up after a fork) then misses it: proc-pool keeps its
/// workers' protocol pipes up there.
///
/// # References
///  - [POSIX fcntl F_DUPFD_CLOEXEC](https://pubs.opengroup.org/onlinepubs/9799919799/functions/fcntl.html)
///  - [POSIX getrlimit](https://pubs.opengroup.org/onlinepubs/9799919799/functions/getrlimit.html)
pub fn move_fd_high(fd: OwnedFd, reserve: u32) -> OwnedFd {
    let limit = rustix::process::getrlimit(rustix::process::Resource::Nofile)
        .current
        .unwrap_or(u64::MAX)
        .min(1 << 20);
    let Some(floor) = limit.checked_sub(u64::from(reserve)) else {
        return fd;
    };
    if floor <= 64 || floor <= fd.as_raw_fd() as u64 {
        return fd;
    }
    if crate::thread_count().is_some_and(|threads| threads > 1) {
        return fd;
    }
    match rustix::io::fcntl_dupfd_cloexec(&fd, floor as RawFd) {
        Ok(high) => high,
        Err(_) => fd,
    }
}
