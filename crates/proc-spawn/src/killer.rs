//! `Killer`: a cloneable, `Send + Sync` handle that signals a child (or its process group)
//! from any thread, even while another thread waits for it, and never signals a stranger.
//!
//! Why it is safe: a pid (and a group id, which is its leader's pid) cannot be reused while
//! the child is unreaped, so the danger is only a signal racing the reap. A `Child` with
//! killers reaps under the write side of a lock whose read side every signal holds; its
//! blocking waits sleep on the child's pidfd (kqueue elsewhere) *without* the lock and take
//! it only for the reap, which then cannot block. On Linux signals to the child itself go
//! through a duplicate of its pidfd, which names that process and no other even after a reap
//! this process did not do (`SIGCHLD` ignored).

use std::ffi::OsString;
use std::fmt;
use std::io;
use std::os::fd::OwnedFd;
use std::sync::{Arc, PoisonError, RwLock, RwLockReadGuard, RwLockWriteGuard};

use fork_sys::{Pid, Signal};

use crate::Error;

/// `ESRCH` ("no such process"), 3 on Linux and on macOS.
const ESRCH: i32 = 3;

/// A handle that signals one [`Child`](crate::Child) (or its process group) from any thread,
/// even while another thread is blocked in [`wait`](crate::Child::wait): what `&mut self` on
/// `Child` rules out. Get one with [`Child::killer`](crate::Child::killer); clone it freely.
///
/// **It never signals a stranger.** While the child is unreaped its pid is reserved; the
/// `Child` reaps it only under a lock each signal holds, and once it is reaped every method
/// here does nothing and returns `Ok(())` (as Python's `send_signal` does). On Linux the
/// child itself is signalled through a duplicate of its pidfd.
///
/// After the `Child` is **dropped** with the child still running (the background reaper then
/// reaps it at a moment nobody here learns of): on Linux [`send_signal`](Killer::send_signal),
/// [`kill`](Killer::kill) and [`terminate`](Killer::terminate) still reach the child through
/// its pidfd; [`signal_group`](Killer::signal_group), and every method where there is no
/// pidfd, do nothing.
///
/// ```
/// use std::time::Duration;
/// use proc_spawn::{Command, ExitStatus, Signal};
///
/// let mut child = Command::new("sleep").arg("100").spawn()?;
/// let killer = child.killer();
/// let stopper = std::thread::spawn(move || {
///     std::thread::sleep(Duration::from_millis(50));
///     killer.kill()
/// });
/// let status = child.wait()?; // blocked here while the other thread kills it
/// assert_eq!(status.signal(), Some(Signal::KILL));
/// stopper.join().unwrap()?;
/// # Ok::<(), proc_spawn::Error>(())
/// ```
#[derive(Clone)]
pub struct Killer {
    shared: Arc<Shared>,
}

/// What a `Child` and its killers share.
pub(crate) struct Shared {
    pid: Pid,
    program: OsString,
    own_group: bool,
    /// Linux: a duplicate of the child's pidfd (signals reach this process and no other).
    /// Elsewhere: an exit watcher (kqueue) the `Child` sleeps on while waiting, if any.
    fd: Option<OwnedFd>,
    state: RwLock<State>,
}

/// Where the child is, as far as signalling it is concerned.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum State {
    /// Not reaped by us: its pid and group id cannot have been reused.
    Unreaped,
    /// Reaped, or found reaped by someone else: nothing is left to signal.
    Reaped,
    /// Its `Child` was dropped while it ran and the background reaper took it: only the pidfd
    /// still names it for sure.
    Detached,
}

impl Shared {
    /// The shared part for a child with this pid; `exit_fd` is the child's pidfd (Linux),
    /// duplicated here. Opened while the `Child` is unreaped, so both name the child.
    pub(crate) fn new(
        pid: Pid,
        program: OsString,
        own_group: bool,
        exit_fd: Option<std::os::fd::BorrowedFd<'_>>,
        reaped: bool,
    ) -> Shared {
        let fd = if reaped {
            None
        } else if cfg!(target_os = "linux") {
            exit_fd.and_then(|fd| fd.try_clone_to_owned().ok())
        } else {
            // A kqueue watching the child, for the `Child`'s waits (best effort).
            fork_sys::process_exit_fd(pid).ok()
        };
        Shared {
            pid,
            program,
            own_group,
            fd,
            state: RwLock::new(if reaped {
                State::Reaped
            } else {
                State::Unreaped
            }),
        }
    }

    /// The write side, for the `Child`'s reaps.
    pub(crate) fn lock_for_reap(&self) -> RwLockWriteGuard<'_, State> {
        self.state.write().unwrap_or_else(PoisonError::into_inner)
    }

    fn lock_for_signal(&self) -> RwLockReadGuard<'_, State> {
        self.state.read().unwrap_or_else(PoisonError::into_inner)
    }

    /// An fd that becomes readable when the child exits, for waits off Linux (on Linux the
    /// `Child`'s own pidfd serves).
    pub(crate) fn exit_fd(&self) -> Option<std::os::fd::BorrowedFd<'_>> {
        use std::os::fd::AsFd;
        self.fd.as_ref().map(AsFd::as_fd)
    }

    fn error(&self, during: &'static str, source: io::Error) -> Error {
        Error::Io {
            program: self.program.clone(),
            pid: self.pid,
            during,
            source,
        }
    }

    /// Whether the pid is still this child's: it runs, or it is an unreaped zombie. False
    /// once something reaped it (only possible behind our back: `SIGCHLD` ignored). Linux,
    /// with a pidfd; elsewhere the state alone decides.
    #[cfg(target_os = "linux")]
    fn still_ours(&self) -> bool {
        use std::os::fd::AsFd;
        self.fd
            .as_ref()
            .is_none_or(|pidfd| pid_still_ours(pidfd.as_fd()))
    }

    #[cfg(not(target_os = "linux"))]
    fn still_ours(&self) -> bool {
        true
    }

    /// Signals the child itself; the caller holds the read side and has checked the state.
    fn signal_child(&self, state: State, signal: Signal) -> Result<(), Error> {
        #[cfg(target_os = "linux")]
        if let Some(pidfd) = &self.fd {
            if let Some(sig) = rustix::process::Signal::from_named_raw(signal.as_raw()) {
                return match rustix::process::pidfd_send_signal(pidfd, sig) {
                    // Exited, not reaped yet: nothing to signal.
                    Err(rustix::io::Errno::SRCH) => Ok(()),
                    other => other.map_err(|e| self.error("sending a signal", e.into())),
                };
            }
        }
        // By pid (no pidfd, or a real-time signal rustix cannot carry): only while our lock
        // says the child is unreaped (a detached one may be reaped at any moment) and nothing
        // reaped it behind our back.
        if state != State::Unreaped || !self.still_ours() {
            return Ok(());
        }
        kill_by_pid(self, signal)
    }
}

/// Whether the child `pidfd` names still holds its pid: it runs, or it is an unreaped zombie.
/// False once it was reaped (behind our back: `SIGCHLD` ignored, a `waitpid(-1)`), when the
/// pid may name a stranger. A child that cannot exit meanwhile (stopped, or reaped only under
/// our lock) keeps the answer true.
#[cfg(target_os = "linux")]
pub(crate) fn pid_still_ours(pidfd: std::os::fd::BorrowedFd<'_>) -> bool {
    use std::time::Duration;

    use rustix::process::{WaitId, WaitIdOptions, waitid};

    let exited = fork_sys::poll(&[(pidfd, fork_sys::Interest::Read)], Some(Duration::ZERO))
        .map_or(true, |ready| ready.iter().any(|r| r.is_ready()));
    if !exited {
        return true;
    }
    // Exited: a zombie (still ours, the pid reserved) or reaped already.
    let options = WaitIdOptions::EXITED | WaitIdOptions::NOHANG | WaitIdOptions::NOWAIT;
    matches!(waitid(WaitId::PidFd(pidfd), options), Ok(Some(_)))
}

fn kill_by_pid(shared: &Shared, signal: Signal) -> Result<(), Error> {
    match fork_sys::kill(shared.pid, signal) {
        Err(err) if err.raw_os_error() == Some(ESRCH) => Ok(()),
        other => other.map_err(|source| shared.error("sending a signal", source)),
    }
}

impl Killer {
    pub(crate) fn new(shared: Arc<Shared>) -> Killer {
        Killer { shared }
    }

    /// The child's process id.
    pub fn pid(&self) -> Pid {
        self.shared.pid
    }

    /// Sends `signal` to the child; does nothing (and returns `Ok`) once it has been reaped.
    pub fn send_signal(&self, signal: Signal) -> Result<(), Error> {
        let state = self.shared.lock_for_signal();
        match *state {
            State::Reaped => Ok(()),
            state => self.shared.signal_child(state, signal),
        }
    }

    /// `SIGTERM` to the child.
    pub fn terminate(&self) -> Result<(), Error> {
        self.send_signal(Signal::TERM)
    }

    /// `SIGKILL` to the child.
    pub fn kill(&self) -> Result<(), Error> {
        self.send_signal(Signal::KILL)
    }

    /// Sends `signal` to the child's whole process group, grandchildren included, when it was
    /// started in its own ([`process_group(0)`](crate::Command::process_group) or
    /// [`new_session`](crate::Command::new_session)); to the child alone otherwise. Does
    /// nothing once the child has been reaped, or its `Child` dropped: its group id may be
    /// reused after that.
    pub fn signal_group(&self, signal: Signal) -> Result<(), Error> {
        let state = self.shared.lock_for_signal();
        match *state {
            State::Reaped => Ok(()),
            state if !self.shared.own_group => self.shared.signal_child(state, signal),
            State::Detached => Ok(()),
            State::Unreaped => {
                if !self.shared.still_ours() {
                    return Ok(());
                }
                match fork_sys::kill_group(self.shared.pid, signal) {
                    Err(err) if err.raw_os_error() == Some(ESRCH) => Ok(()), // the group is gone
                    other => other.map_err(|source| {
                        self.shared.error("signalling the process group", source)
                    }),
                }
            }
        }
    }
}

impl fmt::Debug for Killer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Killer")
            .field("pid", &self.shared.pid)
            .field("state", &*self.shared.lock_for_signal())
            .finish()
    }
}

impl fmt::Debug for Shared {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Shared")
            .field("pid", &self.pid)
            .field("own_group", &self.own_group)
            .field("state", &*self.lock_for_signal())
            .finish_non_exhaustive()
    }
}
