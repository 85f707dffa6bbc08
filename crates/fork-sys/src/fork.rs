//! `fork` and `_exit`.

use std::io;
use std::sync::{Mutex, PoisonError, RwLock, RwLockReadGuard};

use crate::Pid;
use crate::reaper::ReaperLink;

/// Go's `syscall.ForkLock`: [`fork`] takes it exclusively; a spawn ([`spawn_window`]
/// (crate::spawn_window), both the posix_spawn and the fork+exec path) holds it shared from
/// creating its first pipe (the child's stdio pipes, the exec-error pipe) until the parent has
/// closed the child's ends. Without it, a child forked by another thread in that window (a
/// `Process` running Rust code, which never execs) would inherit those ends: the spawner's
/// `read_exec_error` would wait, and its `communicate` would see no end-of-file, until that
/// child exits.
///
/// It shares one static with the reaper's lock, which `Process::spawn` also holds across
/// its fork: after a fork every page either process writes is a copy-on-write fault (several
/// µs on a VM), and both processes release both locks, so the two words sit on one page
/// (one cache line) by construction, not by the linker's choice (apart, the fork lock went
/// to `.bss` and the reaper's to `.data`: a fault more on each side of every spawn).
#[repr(C, align(64))]
struct HeldAcrossFork {
    fork: RwLock<()>,
    reaper: Mutex<Option<ReaperLink>>,
}

static HELD_ACROSS_FORK: HeldAcrossFork = HeldAcrossFork {
    fork: RwLock::new(()),
    reaper: Mutex::new(None),
};

static FORK_LOCK: &RwLock<()> = &HELD_ACROSS_FORK.fork;

/// The reaper's state and lock (see [`reaper_lock`](crate::reaper_lock)).
pub(crate) fn reaper_mutex() -> &'static Mutex<Option<ReaperLink>> {
    &HELD_ACROSS_FORK.reaper
}

/// The shared side of the fork lock, for a spawner's pipe window.
pub(crate) fn fork_lock_shared() -> RwLockReadGuard<'static, ()> {
    FORK_LOCK.read().unwrap_or_else(PoisonError::into_inner)
}

/// Which side of a [`fork`] this is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[must_use = "both the parent and the child return from fork; decide what each does"]
pub enum Fork {
    /// The original process; the new child has this pid and must be waited for.
    Parent(Pid),
    /// The new process: a copy of the parent with one thread (the one that called `fork`).
    Child,
}

/// Creates a child process that is a copy of this one (`fork(2)`), through libc so that the
/// `pthread_atfork` handlers run (glibc's reset the malloc locks, which keeps `malloc` usable
/// in the child).
///
/// rustix deliberately has no public `fork`; this is the one place the workspace calls it.
///
/// Waits while another thread is inside a spawn's pipe window (the fork lock, held for the
/// microseconds between creating a child's pipes and closing the parent's copies of the
/// child's ends), so the new child never holds a copy of another spawn's pipes. Never call it
/// (or spawn) from a signal handler, nor while holding the lock's shared side.
///
/// # Safety
///
/// The child starts with only the calling thread. Locks held by other threads at the moment of
/// the fork stay held forever in the child (std's stdout lock, an allocator's arena lock in a
/// non-glibc libc, any `Mutex` of the program). Until it calls `exec` or
/// [`exit_immediately`], the child must therefore only do work that cannot wait on such a lock:
/// in a multi-threaded parent, strictly async-signal-safe calls; in a single-threaded parent,
/// anything. The child must leave through [`exit_immediately`] (or `exec`), never by returning
/// into code that would run the parent's destructors or flush its buffers a second time.
/// Flush `std::io::stdout()` before forking, or text buffered in the parent is printed twice.
///
/// # References
///  - [POSIX](https://pubs.opengroup.org/onlinepubs/9799919799/functions/fork.html)
///  - [Linux](https://man7.org/linux/man-pages/man2/fork.2.html)
// Inlined: a forked child runs it, and each 64 KiB window of code a child runs costs it a
// page fault (fork does not copy the page tables of the program's text).
#[inline(always)]
pub unsafe fn fork() -> io::Result<Fork> {
    let exclusive = FORK_LOCK.write().unwrap_or_else(PoisonError::into_inner);
    // SAFETY: the caller's contract, passed on.
    let forked = unsafe { fork_unlocked() };
    // Released on both sides: the child inherits the lock held and must not keep it.
    drop(exclusive);
    forked
}

/// [`fork`] without the fork lock, for the spawn path that already holds its shared side.
///
/// # Safety
///
/// As [`fork`].
// Inlined: a forked child runs it, and each 64 KiB window of code a child runs costs it a
// page fault (fork does not copy the page tables of the program's text).
#[inline(always)]
pub(crate) unsafe fn fork_unlocked() -> io::Result<Fork> {
    // SAFETY: `fork` itself has no memory-safety preconditions; what the child may do afterwards
    // is the caller's contract, stated in `# Safety` of `fork`.
    let pid = unsafe { libc::fork() };
    match pid {
        -1 => Err(io::Error::last_os_error()),
        0 => Ok(Fork::Child),
        pid => Pid::from_raw(pid)
            .map(Fork::Parent)
            .ok_or_else(|| io::Error::other(format!("fork returned an invalid pid {pid}"))),
    }
}

/// Ends the calling process at once with `code` (`_exit(2)`): no atexit handlers, no
/// destructors, no stdio flush. This is how a forked child must leave.
///
/// Async-signal-safe.
///
/// # References
///  - [POSIX](https://pubs.opengroup.org/onlinepubs/9799919799/functions/_exit.html)
///  - [Linux](https://man7.org/linux/man-pages/man2/_exit.2.html)
// Inlined: a forked child runs it, and each 64 KiB window of code a child runs costs it a
// page fault (fork does not copy the page tables of the program's text).
#[inline]
pub fn exit_immediately(code: i32) -> ! {
    // SAFETY: `_exit` has no preconditions; it never returns and touches no Rust state.
    unsafe { libc::_exit(code) }
}
