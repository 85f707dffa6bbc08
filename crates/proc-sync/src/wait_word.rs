//! Sleeping until another process says so, without a system call on the other side when
//! nobody sleeps: a futex word whose lowest bit says a sleeper may be on it.
//!
//! The sleeper sets the bit, looks at its condition once more, and sleeps only if it still
//! does not hold and the word has not moved since; the waker changes what the condition
//! reads, then, only if the bit is set, moves the word on with the bit cleared and wakes
//! every sleeper. Both sides use sequentially consistent operations, so at least one of them
//! sees the other's step: no wake-up is lost, and a waker that finds the bit clear makes no
//! system call.
//!
//! Why a bit in the word and not a count of sleepers beside it: the count stays up from the
//! wake-up until the woken sleeper runs again and counts itself out, and every waker in that
//! window makes a system call that wakes nobody. A queue's consumer that woke its producer
//! takes many items before the producer runs (on a machine with few CPUs, one each time it
//! is scheduled), so a count cost a `futex` call per item: 1.44 million calls for 2 million
//! items, a quarter of all CPU. The bit is cleared by the one waker that wakes, so later
//! wakers find it clear. [`Condition`](crate::Condition) keeps a count: its waiters need to
//! know whether a notify came, and a notify may wake fewer than all.
//!
//! A waker killed between clearing the bit and the system call wakes nobody, and later
//! wakers find the bit clear: a sleeper that slept for ever would sleep through what it
//! waits for (a queue's consumer beside a ring full of items, its producer waiting for
//! room). So a sleep lasts at most [`deadline::LONGEST_SLEEP`] and then looks again.

use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use crate::deadline;

/// How long a waiter spins before it sleeps: a peer on another CPU usually answers within
/// this, far sooner than a futex sleep and wake.
const SPIN: Duration = Duration::from_micros(20);

/// The word's bit that says a sleeper may be on it; the rest counts wake-ups.
const SLEEPER: u32 = 1;

/// A wake-up word in shared memory.
#[derive(Debug, Clone, Copy)]
pub(crate) struct WaitWord<'a>(pub(crate) &'a AtomicU32);

impl WaitWord<'_> {
    /// Sleeps until woken or `left` passes (`None`: no limit; zero: no sleep; at most
    /// [`deadline::LONGEST_SLEEP`] in one go), unless `ready` holds once this waiter has set
    /// the word's sleeper bit; returns whether `ready` holds afterwards. May return early:
    /// callers loop.
    pub(crate) fn sleep_unless(&self, left: Option<Duration>, ready: impl Fn() -> bool) -> bool {
        self.sleep_at_most(Some(deadline::one_sleep(left)), ready)
    }

    /// [`sleep_unless`](Self::sleep_unless) for at most `longest` (`None`: until woken).
    fn sleep_at_most(&self, longest: Option<Duration>, ready: impl Fn() -> bool) -> bool {
        let mut word = self.0.load(Ordering::SeqCst);
        while word & SLEEPER == 0 {
            match self.0.compare_exchange_weak(
                word,
                word | SLEEPER,
                Ordering::SeqCst,
                Ordering::SeqCst,
            ) {
                Ok(_) => word |= SLEEPER,
                Err(now) => word = now,
            }
        }
        if ready() {
            return true;
        }
        if longest != Some(Duration::ZERO) {
            fork_sys::futex_wait(self.0, word, longest);
        }
        ready()
    }

    /// Wakes every sleeper, if the word's bit says there may be one. Call it after changing
    /// what the sleepers' condition reads (with a sequentially consistent store or RMW).
    pub(crate) fn wake_all(&self) {
        let mut word = self.0.load(Ordering::SeqCst);
        while word & SLEEPER != 0 {
            // `word + 1` clears the bit and moves the word on: a sleeper about to sleep on
            // the old value finds it changed and looks again.
            match self.0.compare_exchange_weak(
                word,
                word.wrapping_add(1),
                Ordering::SeqCst,
                Ordering::SeqCst,
            ) {
                Ok(_) => {
                    fork_sys::futex_wake(self.0, u32::MAX);
                    return;
                }
                Err(now) => word = now,
            }
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_waker_makes_one_wake_up_per_sleep_and_none_without_a_sleeper() {
        let word = AtomicU32::new(0);
        let wait = WaitWord(&word);
        wait.wake_all();
        assert_eq!(
            word.load(Ordering::SeqCst),
            0,
            "nobody slept: the word stays"
        );
        // A sleeper that gives up at once still leaves its bit: the next wake clears it.
        assert!(!wait.sleep_unless(Some(Duration::ZERO), || false));
        assert_eq!(word.load(Ordering::SeqCst), SLEEPER);
        wait.wake_all();
        assert_eq!(word.load(Ordering::SeqCst), 2);
        wait.wake_all();
        assert_eq!(
            word.load(Ordering::SeqCst),
            2,
            "the bit was cleared by the first wake"
        );
    }

    #[test]
    fn no_wake_up_is_lost_between_threads() {
        let word = AtomicU32::new(0);
        let turn = AtomicU32::new(0);
        const TURNS: u32 = 20_000;
        std::thread::scope(|s| {
            // Two threads take turns: each waits for its parity, then hands over.
            for me in 0..2u32 {
                let (word, turn) = (&word, &turn);
                s.spawn(move || {
                    let wait = WaitWord(word);
                    loop {
                        let now = turn.load(Ordering::SeqCst);
                        if now >= TURNS {
                            return;
                        }
                        if now % 2 == me {
                            turn.store(now + 1, Ordering::SeqCst);
                            wait.wake_all();
                        } else {
                            // Unsliced: a lost wake-up hangs the test.
                            wait.sleep_at_most(None, || turn.load(Ordering::SeqCst) != now);
                        }
                    }
                });
            }
        });
        assert_eq!(turn.load(Ordering::SeqCst), TURNS);
    }

    #[test]
    fn a_sleeper_whose_waker_died_before_waking_looks_again_within_a_slice() {
        let word: &'static AtomicU32 = Box::leak(Box::new(AtomicU32::new(0)));
        let ready: &'static AtomicU32 = Box::leak(Box::new(AtomicU32::new(0)));
        deadline::assert_sleeper_outlives_dead_waker(
            move || {
                let wait = WaitWord(word);
                while !wait.sleep_unless(None, || ready.load(Ordering::SeqCst) != 0) {}
            },
            || word.load(Ordering::SeqCst) & SLEEPER != 0,
            // What a waker killed between its two steps leaves: the condition changed and
            // the bit cleared, nobody woken.
            || {
                ready.store(1, Ordering::SeqCst);
                let seen = word.load(Ordering::SeqCst);
                word.store(seen.wrapping_add(1), Ordering::SeqCst);
            },
        );
    }
}
