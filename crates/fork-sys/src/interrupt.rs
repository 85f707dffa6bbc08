//! Interrupting signal handlers and the interval timer: what a test needs to prove that every
//! wait, read and poll of the workspace survives `EINTR` (prockit's soak suite runs its
//! subprocess and pool work under a 1 ms `SIGALRM` storm).
//!
//! The handler counts deliveries and does nothing else (one relaxed atomic add, which is
//! async-signal-safe). It is installed *without* `SA_RESTART`, so a blocking call interrupted
//! by it fails with `EINTR` instead of being restarted by the kernel: the worst case for code
//! above, which must retry.

use std::io;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use crate::Signal;

/// Deliveries counted per signal number (real-time signals included on Linux: 65 slots).
static CAUGHT: [AtomicU64; 65] = [const { AtomicU64::new(0) }; 65];

extern "C" fn count_delivery(signal: libc::c_int) {
    if let Some(slot) = usize::try_from(signal).ok().and_then(|i| CAUGHT.get(i)) {
        slot.fetch_add(1, Ordering::Relaxed);
    }
}

/// Installs a handler for `signal` that only counts its deliveries ([`signals_caught`]), with
/// `SA_RESTART` deliberately *off*: a blocking syscall that the signal interrupts fails with
/// `EINTR` (`sigaction(2)`). Replaces whatever handler was there, process-wide.
///
/// # References
///  - [POSIX](https://pubs.opengroup.org/onlinepubs/9799919799/functions/sigaction.html)
///  - [Linux](https://man7.org/linux/man-pages/man2/sigaction.2.html)
pub fn count_signal_interrupting(signal: Signal) -> io::Result<()> {
    set_action(
        signal,
        count_delivery as extern "C" fn(libc::c_int) as libc::sighandler_t,
    )
}

/// Puts `signal` back to its default action (`SIG_DFL`).
///
/// # References
///  - [POSIX](https://pubs.opengroup.org/onlinepubs/9799919799/functions/sigaction.html)
pub fn restore_default_action(signal: Signal) -> io::Result<()> {
    set_action(signal, libc::SIG_DFL)
}

/// How many times the handler of [`count_signal_interrupting`] has run for `signal`.
pub fn signals_caught(signal: Signal) -> u64 {
    usize::try_from(signal.as_raw())
        .ok()
        .and_then(|i| CAUGHT.get(i))
        .map_or(0, |slot| slot.load(Ordering::Relaxed))
}

fn set_action(signal: Signal, handler: libc::sighandler_t) -> io::Result<()> {
    // SAFETY: all-zero is a valid `sigaction` (no flags, empty mask) that we fill in below.
    let mut action: libc::sigaction = unsafe { std::mem::zeroed() };
    action.sa_sigaction = handler;
    action.sa_flags = 0; // no SA_RESTART, no SA_SIGINFO: `handler` takes the signal number
    // SAFETY: `sa_mask` is a valid sigset_t that sigemptyset initialises.
    unsafe { libc::sigemptyset(&mut action.sa_mask) };
    // SAFETY: `action` is fully initialised; the handler (or SIG_DFL) is async-signal-safe:
    // it touches one static atomic. A null old-action pointer is allowed.
    let result = unsafe { libc::sigaction(signal.as_raw(), &action, std::ptr::null_mut()) };
    if result == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

/// Arms the real-time interval timer (`setitimer(ITIMER_REAL)`): `SIGALRM` every `interval`,
/// delivered to the process (any thread not blocking it). `None` disarms it. The timer is not
/// inherited by forked children. With `SIGALRM` at its default action the process would die:
/// install a handler first ([`count_signal_interrupting`]).
///
/// # References
///  - [POSIX](https://pubs.opengroup.org/onlinepubs/9799919799/functions/setitimer.html)
///  - [Linux](https://man7.org/linux/man-pages/man2/setitimer.2.html)
pub fn set_interval_timer(interval: Option<Duration>) -> io::Result<()> {
    let period = interval.unwrap_or(Duration::ZERO);
    let tick = libc::timeval {
        tv_sec: libc::time_t::try_from(period.as_secs()).unwrap_or(libc::time_t::MAX),
        // Below 1,000,000: fits `suseconds_t` everywhere (i64 on Linux, i32 on macOS).
        tv_usec: period.subsec_micros() as libc::suseconds_t,
    };
    let timer = libc::itimerval {
        it_interval: tick,
        it_value: tick,
    };
    // SAFETY: `timer` is a valid itimerval; a null old-value pointer is allowed.
    let result = unsafe { libc::setitimer(libc::ITIMER_REAL, &timer, std::ptr::null_mut()) };
    if result == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

/// Blocks (`true`) or unblocks (`false`) `signal` for the calling thread only
/// (`pthread_sigmask(3)`). A process-directed signal goes to the main thread whenever it does
/// not block it; blocking it there spreads the deliveries over the other threads, which is how
/// a test reaches the waits of background threads with an interval timer.
///
/// # References
///  - [POSIX](https://pubs.opengroup.org/onlinepubs/9799919799/functions/pthread_sigmask.html)
pub fn set_signal_blocked(signal: Signal, blocked: bool) -> io::Result<()> {
    // SAFETY: all-zero is valid storage for a sigset_t, which sigemptyset initialises.
    let mut set: libc::sigset_t = unsafe { std::mem::zeroed() };
    // SAFETY: `set` is valid, initialised storage; `signal` names a real signal.
    unsafe {
        libc::sigemptyset(&mut set);
        libc::sigaddset(&mut set, signal.as_raw());
    }
    let how = if blocked {
        libc::SIG_BLOCK
    } else {
        libc::SIG_UNBLOCK
    };
    // SAFETY: `set` is initialised; a null old-mask pointer is allowed.
    let result = unsafe { libc::pthread_sigmask(how, &set, std::ptr::null_mut()) };
    if result == 0 {
        Ok(())
    } else {
        Err(io::Error::from_raw_os_error(result))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{ExitStatus, Fork};

    #[test]
    fn an_interval_timer_interrupts_a_blocking_read_with_eintr() {
        // In a forked child, which has one thread: in the test harness, the process-directed
        // SIGALRM would go to the main thread, not to the one blocked in `read`.
        // SAFETY: the child makes only syscalls (sigaction, setitimer, read) and leaves with
        // `exit_immediately`; it allocates nothing.
        match unsafe { crate::fork() }.unwrap() {
            Fork::Child => {
                let code = (|| {
                    count_signal_interrupting(Signal::ALRM).ok()?;
                    let (reader, _writer) = crate::pipe().ok()?;
                    set_interval_timer(Some(Duration::from_millis(5))).ok()?;
                    // Nothing is ever written: only the signal can end this read.
                    let mut byte = [0u8; 1];
                    let err = rustix::io::read(&reader, &mut byte).err()?;
                    set_interval_timer(None).ok()?;
                    let counted = signals_caught(Signal::ALRM) > 0;
                    Some(if err == rustix::io::Errno::INTR && counted {
                        0
                    } else {
                        2
                    })
                })();
                crate::exit_immediately(code.unwrap_or(1));
            }
            Fork::Parent(child) => {
                assert_eq!(crate::wait(child).unwrap(), ExitStatus::Exited(0));
            }
        }
    }

    #[test]
    fn a_blocked_signal_stays_pending_until_unblocked() {
        // SAFETY: as above: syscalls only, then `exit_immediately`.
        match unsafe { crate::fork() }.unwrap() {
            Fork::Child => {
                let code = (|| {
                    count_signal_interrupting(Signal::USR1).ok()?;
                    set_signal_blocked(Signal::USR1, true).ok()?;
                    crate::kill(crate::getpid(), Signal::USR1).ok()?;
                    let held = signals_caught(Signal::USR1) == 0;
                    set_signal_blocked(Signal::USR1, false).ok()?;
                    let delivered = signals_caught(Signal::USR1) == 1;
                    restore_default_action(Signal::USR1).ok()?;
                    Some(if held && delivered { 0 } else { 2 })
                })();
                crate::exit_immediately(code.unwrap_or(1));
            }
            Fork::Parent(child) => {
                assert_eq!(crate::wait(child).unwrap(), ExitStatus::Exited(0));
            }
        }
    }
}
