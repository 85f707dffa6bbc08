//! Sleeping until another process says so, without a system call on the other side when
//! nobody sleeps: a futex word that is bumped at each wake-up, beside a count of sleepers.
//!
//! The sleeper announces itself (count up), looks at its condition once more, and sleeps
//! only if it still does not hold and the word has not moved since it looked; the waker
//! changes what the condition reads, then wakes only if the count says someone may sleep.
//! Both sides use sequentially consistent operations, so at least one of them sees the
//! other's step: no wake-up is lost, and a waker that finds nobody asleep makes no system
//! call.

use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

/// How long a waiter spins before it sleeps: a peer on another CPU usually answers within
/// this, far sooner than a futex sleep and wake.
const SPIN: Duration = Duration::from_micros(20);

/// A wake-up word in shared memory and its sleeper count.
#[derive(Debug, Clone, Copy)]
pub(crate) struct WaitWord<'a> {
    pub(crate) seq: &'a AtomicU32,
    pub(crate) sleepers: &'a AtomicU32,
}

impl WaitWord<'_> {
    /// Sleeps until woken or `left` passes (`None`: no limit; zero: no sleep), unless
    /// `ready` holds once this waiter is counted; returns whether `ready` holds afterwards.
    /// May return early: callers loop.
    pub(crate) fn sleep_unless(&self, left: Option<Duration>, ready: impl Fn() -> bool) -> bool {
        let seen = self.seq.load(Ordering::SeqCst);
        self.sleepers.fetch_add(1, Ordering::SeqCst);
        let ready_now = ready();
        if !ready_now && left != Some(Duration::ZERO) {
            fork_sys::futex_wait(self.seq, seen, left);
        }
        self.sleepers.fetch_sub(1, Ordering::SeqCst);
        ready_now || ready()
    }

    /// Wakes every sleeper, if the count says there may be one. Call it after changing what
    /// the sleepers' condition reads (with a sequentially consistent store or RMW).
    pub(crate) fn wake_all(&self) {
        self.wake(u32::MAX);
    }

    /// Moves the word and wakes up to `count` sleepers, if the count says there may be one.
    pub(crate) fn wake(&self, count: u32) {
        if self.sleepers.load(Ordering::SeqCst) != 0 {
            self.seq.fetch_add(1, Ordering::SeqCst);
            fork_sys::futex_wake(self.seq, count);
        }
    }
}

/// Spins for about [`SPIN`], looking at `ready` every `poll_every` pauses; returns whether it
/// came to hold. Looking less often keeps the cache line `ready` reads with its writer.
pub(crate) fn spin_until(poll_every: u32, ready: impl Fn() -> bool) -> bool {
    let until = fork_sys::monotonic_now() + SPIN;
    loop {
        for _ in 0..poll_every {
            std::hint::spin_loop();
        }
        if ready() {
            return true;
        }
        if fork_sys::monotonic_now() >= until {
            return false;
        }
    }
}
