//! Dying with a parent *process*: the "alive pipe".
//!
//! `PR_SET_PDEATHSIG` fires when the *thread* that forked exits, not the process: a child forked
//! from a thread pool's thread (tokio retires idle `spawn_blocking` threads after 10 s) is killed
//! while its parent process is still running. A pipe follows the process instead. Each process
//! makes one, on first use, and holds its write end until it exits; nobody ever writes to it.
//! The kernel closes the write end when the process exits (however it exits), and the read end
//! then reports end-of-file (`POLLHUP`) to every process holding a copy of it.
//!
//! For that to mean "this process has exited", no other process may hold a copy of the write
//! end. It is close-on-exec, so exec'd programs never do; and [`fork`](crate::fork) closes it in
//! every child right after the fork (async-signal-safe: one atomic swap and `close`), which is
//! why the raw fd lives in a static `AtomicI32`. A process forked some other way (a raw
//! `libc::fork`) keeps its copy until it exits or execs, or until it calls [`alive_pipe`]
//! itself, which closes it before making its own pipe.

use std::io;
use std::os::fd::{AsFd, BorrowedFd, IntoRawFd, OwnedFd};
use std::sync::atomic::{AtomicI32, Ordering};

use crate::{Interest, Signal};

/// The write end of this process's alive pipe; -1 when there is none. Only its creator keeps
/// it open (see the module documentation).
static WRITE_END: AtomicI32 = AtomicI32::new(-1);
/// The read end; -1 when there is none. Never closed once made: [`alive_pipe`] lends it out
/// for `'static`, and a forked child keeps its parent's, to watch the parent with.
static READ_END: AtomicI32 = AtomicI32::new(-1);
/// The pid of the process that made the pipe, so that a child forked without
/// [`fork`](crate::fork) does not take its parent's pipe for its own.
static OWNER: AtomicI32 = AtomicI32::new(0);

/// The read end of this process's "alive pipe": a close-on-exec pipe made on the first call and
/// kept for the life of the process, whose write end only this process holds. It reports
/// end-of-file (`POLLHUP`, a `read` of 0 bytes) exactly when this process has exited.
///
/// Hand it to a child (inherited across [`fork`](crate::fork), which closes the write end in
/// every child it makes, or sent with [`send_with_fds`](crate::send_with_fds)), which passes it
/// to [`die_with_parent_process`]. Each process that calls this gets a pipe of its own: in a
/// forked child, the first call makes the child's pipe (the parent's read end, which the child
/// inherited, stays open under the borrowed fd the child may hold).
///
/// Creating the pipe takes the fork lock exclusively, so no [`fork`](crate::fork) or
/// [`spawn`](crate::spawn) in another thread can copy the write end before it is recorded;
/// do not call this while holding a [`SpawnWindow`](crate::SpawnWindow). Later calls only
/// read two atomics.
///
/// # References
///  - [POSIX pipe](https://pubs.opengroup.org/onlinepubs/9799919799/functions/pipe.html)
///  - [Linux pipe(7)](https://man7.org/linux/man-pages/man7/pipe.7.html)
pub fn alive_pipe() -> io::Result<BorrowedFd<'static>> {
    let me = crate::getpid().as_raw();
    if let Some(read) = current(me) {
        return Ok(read);
    }
    let _no_fork = crate::fork::fork_lock_exclusive();
    if let Some(read) = current(me) {
        return Ok(read);
    }
    if OWNER.load(Ordering::Acquire) != me {
        // Inherited from a parent that forked without `fork_sys::fork`: its write end is a
        // copy that would keep the parent's pipe open; its read end stays, as in `fork`.
        close_inherited_write_end();
    }
    let (read, write) = crate::pipe()?;
    WRITE_END.store(write.into_raw_fd(), Ordering::Release);
    let read = read.into_raw_fd();
    READ_END.store(read, Ordering::Release);
    OWNER.store(me, Ordering::Release);
    // SAFETY: `read` was just made and is never closed (nothing closes READ_END's fd), so it
    // stays open for the rest of the process: a `'static` borrow.
    Ok(unsafe { BorrowedFd::borrow_raw(read) })
}

/// This process's read end, if it made one already.
fn current(me: i32) -> Option<BorrowedFd<'static>> {
    if OWNER.load(Ordering::Acquire) != me {
        return None;
    }
    let read = READ_END.load(Ordering::Acquire);
    // SAFETY: a read end recorded by this process is never closed (see `alive_pipe`).
    (read >= 0).then(|| unsafe { BorrowedFd::borrow_raw(read) })
}

/// Forgets the parent's alive pipe in a child that `fork` just made, closing the child's copy
/// of the write end. Async-signal-safe: atomics and `close` only.
pub(crate) fn forget_in_child() {
    close_inherited_write_end();
    READ_END.store(-1, Ordering::Release);
    OWNER.store(0, Ordering::Release);
}

fn close_inherited_write_end() {
    let write = WRITE_END.swap(-1, Ordering::AcqRel);
    if write >= 0 {
        // SAFETY: the fd is this process's copy of the parent's write end, which no `OwnedFd`
        // or `File` here owns (the static holds the only reference); closing it is what makes
        // the parent's pipe report its exit. `close` is async-signal-safe.
        unsafe { libc::close(write) };
    }
}

/// Makes the calling process die (SIGKILL to itself) as soon as the process holding the write
/// end of `alive` exits. `alive` is a read end from [`alive_pipe`] in that process (inherited by
/// fork, or received by `SCM_RIGHTS`); it is duplicated, the caller keeps its fd.
///
/// Unlike [`set_parent_death_signal`](crate::exec::set_parent_death_signal), this follows the
/// parent *process*: the thread that forked may exit long before. It starts one thread, named
/// `parent-watch`, which sleeps in `poll` on the pipe (no timeout, no spinning) for the rest of
/// the process. If the pipe has hung up already (the parent died before this call), the
/// process is killed before this returns. Errors only if the duplicate or the thread cannot be
/// made. In a child forked from a multi-threaded parent, call it only where starting a thread
/// is safe (it allocates).
///
/// # References
///  - [POSIX poll](https://pubs.opengroup.org/onlinepubs/9799919799/functions/poll.html)
///  - [Linux pipe(7), end-of-file](https://man7.org/linux/man-pages/man7/pipe.7.html)
pub fn die_with_parent_process(alive: BorrowedFd<'_>) -> io::Result<()> {
    let alive = rustix::io::fcntl_dupfd_cloexec(alive, 0)?;
    if hung_up(&alive, Some(std::time::Duration::ZERO)) {
        die();
    }
    std::thread::Builder::new()
        .name("parent-watch".into())
        .spawn(move || {
            loop {
                if hung_up(&alive, None) {
                    die();
                }
            }
        })?;
    Ok(())
}

/// Waits at most `timeout` (`None`: for ever) for the pipe to report something; true when that
/// is end-of-file. Bytes (nobody should write any) are read and ignored.
fn hung_up(alive: &OwnedFd, timeout: Option<std::time::Duration>) -> bool {
    match crate::poll(&[(alive.as_fd(), Interest::Read)], timeout) {
        Ok(ready) if ready.iter().any(|r| r.is_ready()) => {}
        Ok(_) => return false,
        Err(_) => {
            // Not expected for a pipe we own; never spin on it.
            std::thread::sleep(std::time::Duration::from_millis(100));
            return false;
        }
    }
    let mut buf = [0u8; 64];
    // The pipe is readable, so this does not block (the fd may even be non-blocking, shared
    // with the caller's copy: then EAGAIN just means another reader took the bytes).
    matches!(rustix::io::read(alive, &mut buf), Ok(0))
}

/// SIGKILL to this process; `_exit(137)` (what a shell reports for SIGKILL) if that fails.
fn die() -> ! {
    let _ = crate::kill(crate::getpid(), Signal::KILL);
    crate::exit_immediately(128 + 9)
}
