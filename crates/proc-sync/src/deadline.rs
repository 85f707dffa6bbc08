//! Deadlines on [`fork_sys::monotonic_now`]'s clock, and the one sleep every waiter here
//! takes: on a futex word, for at most what is left of its deadline and at most
//! [`LONGEST_SLEEP`].

use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use crate::raw_mutex::LIVENESS_SLICE;

/// `timeout` from now, on [`fork_sys::monotonic_now`]'s clock.
pub(crate) fn after(timeout: Duration) -> Duration {
    fork_sys::monotonic_now().saturating_add(timeout)
}

/// Whether `deadline` (`None`: never) has passed.
pub(crate) fn passed(deadline: Option<Duration>) -> bool {
    deadline.is_some_and(|deadline| fork_sys::monotonic_now() >= deadline)
}

/// The longest single sleep of any waiter here.
///
/// Waking is two steps that cannot be one: the waker changes what sleepers wait for, then
/// asks the kernel to wake them. A waker killed between the two (a producer killed right
/// after publishing an item, a setter right after raising an event's flag) wakes nobody,
/// and a sleeper that slept for ever on the old value would never look again, although
/// what it waits for is there. Every sleep here therefore ends after at most this long and
/// looks again: such a death costs the others this much at most, as a dead lock holder's
/// does. An idle waiter pays one wake-up per slice. (A [`Condition`](crate::Condition)'s
/// waiters are the exception, for the reason `Condition::notify` gives.)
pub(crate) const LONGEST_SLEEP: Duration = LIVENESS_SLICE;

/// How long to sleep for a wait with `left` to go (`None`: no limit): at most
/// [`LONGEST_SLEEP`].
pub(crate) fn one_sleep(left: Option<Duration>) -> Duration {
    left.map_or(LONGEST_SLEEP, |left| left.min(LONGEST_SLEEP))
}

/// Sleeps while `word` holds `expected`, until woken, `deadline` or at most
/// [`LONGEST_SLEEP`]. Returns `false` when the deadline has passed (and the caller should
/// give up after looking once more), `true` otherwise (woken, spurious, or a slice ended:
/// look again).
///
/// `sleepers` counts the processes asleep on `word`, so that wakers skip the system call when
/// nobody sleeps: a waker changes `word` then reads `sleepers`, a sleeper raises `sleepers`
/// then (in the kernel) reads `word`, all `SeqCst`, so one of them sees the other.
pub(crate) fn sleep_on(
    word: &AtomicU32,
    expected: u32,
    sleepers: &AtomicU32,
    deadline: Option<Duration>,
) -> bool {
    let left = match deadline {
        Some(deadline) => {
            let now = fork_sys::monotonic_now();
            if now >= deadline {
                return false;
            }
            Some(deadline - now)
        }
        None => None,
    };
    sleepers.fetch_add(1, Ordering::SeqCst);
    fork_sys::futex_wait(word, expected, Some(one_sleep(left)));
    sleepers.fetch_sub(1, Ordering::SeqCst);
    true
}

/// Wakes up to `count` sleepers on `word` if [`sleep_on`] counted any.
pub(crate) fn wake(word: &AtomicU32, sleepers: &AtomicU32, count: u32) {
    if sleepers.load(Ordering::SeqCst) != 0 {
        fork_sys::futex_wake(word, count);
    }
}

/// Test scaffolding for a waker killed between its two steps: runs `sleeper` (which returns
/// once it has seen the change) on a thread of its own, waits until `asleep` says it is about
/// to sleep and lets it get into the kernel, then applies `dead_waker` (the change a waker
/// makes, with no wake-up after it) and asserts that the sleeper notices it anyway.
#[cfg(test)]
pub(crate) fn assert_sleeper_outlives_dead_waker(
    sleeper: impl FnOnce() + Send + 'static,
    asleep: impl Fn() -> bool,
    dead_waker: impl FnOnce(),
) {
    let (done, woke) = std::sync::mpsc::channel();
    // Not scoped: if the sleeper never wakes, the test fails instead of hanging.
    std::thread::spawn(move || {
        sleeper();
        let _ = done.send(());
    });
    while !asleep() {
        std::thread::sleep(Duration::from_millis(1));
    }
    std::thread::sleep(Duration::from_millis(20));
    dead_waker();
    assert!(
        woke.recv_timeout(Duration::from_secs(10)).is_ok(),
        "the sleeper slept through a dead waker's change"
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_sleeper_whose_waker_died_before_waking_looks_again_within_a_slice() {
        let word: &'static AtomicU32 = Box::leak(Box::new(AtomicU32::new(0)));
        let sleepers: &'static AtomicU32 = Box::leak(Box::new(AtomicU32::new(0)));
        assert_sleeper_outlives_dead_waker(
            move || {
                while word.load(Ordering::SeqCst) == 0 {
                    sleep_on(word, 0, sleepers, None);
                }
            },
            || sleepers.load(Ordering::SeqCst) != 0,
            // What a setter killed between its two steps leaves: the word moved, nobody woken.
            || word.store(1, Ordering::SeqCst),
        );
    }
}
