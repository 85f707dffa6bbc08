//! Process ids.

use std::fmt;

/// A process id: always positive.
///
/// Our own type rather than `rustix::process::Pid`, so that fork-sys's public API does not move
/// when rustix makes a semver-breaking release.
///
/// `Debug` prints `Pid(22174)`, `Display` the bare number.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct Pid(rustix::process::Pid);

impl Pid {
    /// Wraps a raw pid; `None` unless `raw` is positive (0 and negatives name groups or "any").
    pub const fn from_raw(raw: i32) -> Option<Pid> {
        if raw > 0 {
            match rustix::process::Pid::from_raw(raw) {
                Some(pid) => Some(Pid(pid)),
                None => None,
            }
        } else {
            None
        }
    }

    /// The raw `pid_t` value.
    pub const fn as_raw(self) -> i32 {
        self.0.as_raw_pid()
    }

    pub(crate) fn to_rustix(self) -> rustix::process::Pid {
        self.0
    }

    pub(crate) fn from_rustix(pid: rustix::process::Pid) -> Pid {
        // The kernel only hands out positive pids for processes.
        Pid(pid)
    }
}

impl fmt::Debug for Pid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Not derived: rustix's inner `Pid` would print as `Pid(Pid(22174))`.
        f.debug_tuple("Pid").field(&self.as_raw()).finish()
    }
}

impl fmt::Display for Pid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.as_raw().fmt(f)
    }
}

impl From<Pid> for i32 {
    fn from(pid: Pid) -> i32 {
        pid.as_raw()
    }
}

/// The id of the calling process.
///
/// # References
///  - [POSIX](https://pubs.opengroup.org/onlinepubs/9799919799/functions/getpid.html)
///  - [Linux](https://man7.org/linux/man-pages/man2/getpid.2.html)
pub fn getpid() -> Pid {
    Pid::from_rustix(rustix::process::getpid())
}

/// The id of the calling process's parent, or `None` when the parent is outside this pid
/// namespace (the parent of a container's init, for example).
///
/// After the parent dies the child is re-parented (to init or a subreaper), so this changes:
/// that is how a child notices it was orphaned.
///
/// # References
///  - [POSIX](https://pubs.opengroup.org/onlinepubs/9799919799/functions/getppid.html)
///  - [Linux](https://man7.org/linux/man-pages/man2/getppid.2.html)
pub fn getppid() -> Option<Pid> {
    rustix::process::getppid().map(Pid::from_rustix)
}

/// The id of the calling process, from a cache: no system call after the first in each
/// process. A `pthread_atfork` child handler clears the cache, so a child forked by any
/// means that runs the atfork handlers (`fork_sys::fork`, libc's `fork`) asks the kernel
/// again. For hot paths that stamp shared memory with the caller's pid (proc-sync's locks).
#[inline]
pub fn getpid_cached() -> u32 {
    use std::sync::atomic::Ordering;
    let cached = pid_cache::PID.load(Ordering::Relaxed);
    if cached != 0 {
        return cached;
    }
    let pid = getpid().as_raw().unsigned_abs();
    if pid_cache::reset_in_children() {
        pid_cache::PID.store(pid, Ordering::Relaxed);
    }
    pid
}

mod pid_cache {
    use std::sync::Once;
    use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};

    pub(super) static PID: AtomicU32 = AtomicU32::new(0);

    extern "C" fn clear_in_child() {
        // Async-signal-safe: one atomic store.
        PID.store(0, Ordering::Relaxed);
    }

    /// Registers the child handler once; false if that failed, and then nothing may be
    /// cached (a forked child would see its parent's pid).
    pub(super) fn reset_in_children() -> bool {
        static REGISTER: Once = Once::new();
        static REGISTERED: AtomicBool = AtomicBool::new(false);
        REGISTER.call_once(|| {
            // SAFETY: registers a child handler that only performs an atomic store; no
            // prepare or parent handler. The function lives as long as the program.
            let rc = unsafe { libc::pthread_atfork(None, None, Some(clear_in_child)) };
            REGISTERED.store(rc == 0, Ordering::Relaxed);
        });
        REGISTERED.load(Ordering::Relaxed)
    }
}
