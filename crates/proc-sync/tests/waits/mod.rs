//! The check every timed wait gets: it lasts its whole timeout and sleeps through it.

use std::time::{Duration, Instant};

/// The timeout the checked waits are given.
pub(crate) const TIMEOUT: Duration = Duration::from_millis(500);

/// Runs `wait` (a wait given [`TIMEOUT`] that is expected to run out) and asserts that it
/// lasted at least the timeout and used under a tenth of it in CPU time (the calling thread's
/// own, which other tests cannot disturb): it slept in the kernel instead of spinning.
/// Returns what `wait` returned.
pub(crate) fn sleeps_through_timeout<T>(wait: impl FnOnce(Duration) -> T) -> T {
    let cpu = test_support::this_thread_cpu_time();
    let start = Instant::now();
    let outcome = wait(TIMEOUT);
    let (waited, used) = (start.elapsed(), test_support::this_thread_cpu_time() - cpu);
    assert!(waited >= TIMEOUT, "gave up early: {waited:?}");
    assert!(
        used < TIMEOUT / 10,
        "a {TIMEOUT:?} wait used {used:?} of CPU"
    );
    outcome
}
