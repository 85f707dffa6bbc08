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
        match crate::retry_eintr(|| rustix::io::write(&fd, bytes))? {
            0 => return Err(io::ErrorKind::WriteZero.into()),
            written => bytes = bytes.get(written..).unwrap_or_default(),
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

/// Puts `bytes` into a pipe by reference, not by copy (`vmsplice`, Linux): the pipe holds
/// the pages of `bytes`, and its reader copies out of them; the writer's copy into the pipe
/// is saved. So the reader gets the bytes as they are in memory *when it reads them*: the
/// caller must leave them unchanged (and not free them into memory it reuses) until the
/// reader has read them, or the reader gets other bytes. That is wrong data, not undefined
/// behaviour: the kernel holds the pages until then.
///
/// `pipe` must be the write end of a pipe (`InvalidInput` otherwise: on a read end,
/// `vmsplice` would write into `bytes`). Never blocks (`SPLICE_F_NONBLOCK`): returns the bytes
/// put, fewer than asked when the pipe fills, and `WouldBlock` on a full pipe. Off Linux,
/// `Unsupported`.
///
/// # References
///  - [Linux](https://man7.org/linux/man-pages/man2/vmsplice.2.html)
pub fn splice_into_pipe(pipe: impl AsFd, bytes: &[u8]) -> io::Result<usize> {
    #[cfg(any(target_os = "linux", target_os = "android"))]
    {
        use rustix::fs::OFlags;
        use rustix::pipe::{IoSliceRaw, SpliceFlags};
        let access = rustix::fs::fcntl_getfl(&pipe)? & OFlags::RWMODE;
        if access != OFlags::WRONLY {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!(
                    "descriptor {} is not the write end of a pipe",
                    pipe.as_fd().as_raw_fd()
                ),
            ));
        }
        let slices = [IoSliceRaw::from_slice(bytes)];
        // SAFETY: `pipe` is open write-only (checked above), so `vmsplice` only reads from
        // `bytes` (it maps their pages into the pipe) and never writes to the memory behind
        // a shared slice. No `GIFT` flag: the pages stay the caller's, referenced by the pipe
        // until read; what the caller does with them later changes only what the reader gets.
        Ok(unsafe { rustix::pipe::vmsplice(&pipe, &slices, SpliceFlags::NONBLOCK) }?)
    }
    #[cfg(not(any(target_os = "linux", target_os = "android")))]
    {
        let _ = (pipe, bytes);
        Err(io::Error::from(io::ErrorKind::Unsupported))
    }
}

#[cfg(all(test, any(target_os = "linux", target_os = "android")))]
mod splice_tests {
    use super::*;
    use std::io::Read as _;

    /// What is spliced arrives byte for byte; a read end is refused without touching the bytes.
    #[test]
    fn spliced_bytes_arrive_and_a_read_end_is_refused() -> io::Result<()> {
        let (read, write) = pipe_nonblocking()?;
        let bytes: Vec<u8> = (0..50_000u32).map(|i| (i * 7 % 251) as u8).collect();
        let mut put = 0;
        let mut got = Vec::new();
        let mut reader = std::fs::File::from(read.try_clone()?);
        while put < bytes.len() {
            match splice_into_pipe(&write, &bytes[put..]) {
                Ok(n) => put += n,
                Err(err) if err.kind() == io::ErrorKind::WouldBlock => {}
                Err(err) => return Err(err),
            }
            let mut buffer = [0u8; 8192];
            match reader.read(&mut buffer) {
                Ok(n) => got.extend_from_slice(&buffer[..n]),
                Err(err) if err.kind() == io::ErrorKind::WouldBlock => {}
                Err(err) => return Err(err),
            }
        }
        drop(write);
        set_nonblocking(&read, false)?;
        reader.read_to_end(&mut got)?;
        assert!(got == bytes, "the spliced bytes differ");
        let (read, _write) = pipe()?;
        let err = splice_into_pipe(&read, &bytes).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::InvalidInput);
        Ok(())
    }
}
