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
