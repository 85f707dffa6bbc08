//! Deadlines on [`fork_sys::monotonic_now`]'s clock, and the one sleep every waiter here
//! takes: on a futex word, for at most what is left of its deadline.

use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

/// `timeout` from now, on [`fork_sys::monotonic_now`]'s clock.
pub(crate) fn after(timeout: Duration) -> Duration {
    fork_sys::monotonic_now().saturating_add(timeout)
}

/// Whether `deadline` (`None`: never) has passed.
pub(crate) fn passed(deadline: Option<Duration>) -> bool {
    deadline.is_some_and(|deadline| fork_sys::monotonic_now() >= deadline)
}

/// Sleeps while `word` holds `expected`, until woken, `deadline` or at most `slice` (`None`: no
/// slice). Returns `false` when the deadline has passed (and the caller should give up after
/// looking once more), `true` otherwise (woken, spurious, or a slice ended: look again).
///
/// `sleepers` counts the processes asleep on `word`, so that wakers skip the system call when
/// nobody sleeps: a waker changes `word` then reads `sleepers`, a sleeper raises `sleepers`
/// then (in the kernel) reads `word`, all `SeqCst`, so one of them sees the other.
pub(crate) fn sleep_on(
    word: &AtomicU32,
    expected: u32,
    sleepers: &AtomicU32,
    deadline: Option<Duration>,
    slice: Option<Duration>,
) -> bool {
    let timeout = match deadline {
        Some(deadline) => {
            let now = fork_sys::monotonic_now();
            if now >= deadline {
                return false;
            }
            Some(slice.map_or(deadline - now, |slice| slice.min(deadline - now)))
        }
        None => slice,
    };
    sleepers.fetch_add(1, Ordering::SeqCst);
    fork_sys::futex_wait(word, expected, timeout);
    sleepers.fetch_sub(1, Ordering::SeqCst);
    true
}

/// Wakes up to `count` sleepers on `word` if [`sleep_on`] counted any.
pub(crate) fn wake(word: &AtomicU32, sleepers: &AtomicU32, count: u32) {
    if sleepers.load(Ordering::SeqCst) != 0 {
        fork_sys::futex_wake(word, count);
    }
}
