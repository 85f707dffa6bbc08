//! A mutual-exclusion word in shared memory whose holder is a process: the futex lock under
//! [`Lock`](crate::Lock), the queues and the other primitives.
//!
//! The word holds 0 when free, else the holder's pid (low 30 bits) and a "contended" bit:
//! Drepper's three-state futex mutex ("Futexes Are Tricky", mutex 2), with the holder's pid in
//! place of the "1", so that a waiter can tell whose death it is waiting on. Waiters sleep in
//! slices of [`LIVENESS_SLICE`]; when a slice passes with the same holder, they ask the kernel
//! whether that process still exists, and take the word over from a dead one (the caller
//! learns [`Acquired::OwnerDied`], the robust-mutex `EOWNERDEAD`). Uncontended lock and unlock
//! are one atomic instruction each, no system call.

use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

const PID_MASK: u32 = (1 << 30) - 1;
const CONTENDED: u32 = 1 << 30;

/// How long a waiter sleeps before asking whether the holder still lives. A holder's death
/// is noticed within about this long; a live holder costs a waiter one wake-up per slice.
pub(crate) const LIVENESS_SLICE: Duration = Duration::from_millis(50);

/// How the word was taken.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Acquired {
    /// Normally.
    Clean,
    /// From process `pid`, which died holding it.
    OwnerDied(u32),
}

/// This process's id as it is stored in a lock word.
pub(crate) fn my_id() -> u32 {
    fork_sys::getpid_cached() & PID_MASK
}

/// One attempt, no waiting: `None` if a live process holds the word.
pub(crate) fn try_lock(word: &AtomicU32) -> Option<Acquired> {
    let me = my_id();
    match word.compare_exchange(0, me, Ordering::Acquire, Ordering::Relaxed) {
        Ok(_) => Some(Acquired::Clean),
        Err(held) => take_from_dead(word, held, me),
    }
}

/// Takes the word, waiting until `deadline` (on [`fork_sys::monotonic_now`]'s clock; `None`:
/// for ever). `None` when the deadline passed first.
pub(crate) fn lock(word: &AtomicU32, deadline: Option<Duration>) -> Option<Acquired> {
    let me = my_id();
    if word
        .compare_exchange(0, me, Ordering::Acquire, Ordering::Relaxed)
        .is_ok()
    {
        return Some(Acquired::Clean);
    }
    // A short spin: a holder on another CPU often lets go within a few hundred nanoseconds,
    // much sooner than a futex sleep and wake.
    for _ in 0..64 {
        std::hint::spin_loop();
        if word.load(Ordering::Relaxed) == 0
            && word
                .compare_exchange(0, me, Ordering::Acquire, Ordering::Relaxed)
                .is_ok()
        {
            return Some(Acquired::Clean);
        }
    }
    loop {
        let mut held = word.load(Ordering::Relaxed);
        if held == 0 {
            // Take it as contended: others may be asleep and must be woken at unlock.
            if word
                .compare_exchange(0, me | CONTENDED, Ordering::Acquire, Ordering::Relaxed)
                .is_ok()
            {
                return Some(Acquired::Clean);
            }
            continue;
        }
        if held & CONTENDED == 0 {
            if word
                .compare_exchange(held, held | CONTENDED, Ordering::Relaxed, Ordering::Relaxed)
                .is_err()
            {
                continue;
            }
            held |= CONTENDED;
        }
        let now = fork_sys::monotonic_now();
        let slice = match deadline {
            Some(deadline) if deadline <= now => return None,
            Some(deadline) => (deadline - now).min(LIVENESS_SLICE),
            None => LIVENESS_SLICE,
        };
        fork_sys::futex_wait(word, held, Some(slice));
        if fork_sys::monotonic_now().saturating_sub(now) >= slice
            && word.load(Ordering::Relaxed) == held
        {
            // A whole slice with the same holder: is it still there?
            if let Some(taken) = take_from_dead(word, held, me | CONTENDED) {
                return Some(taken);
            }
        }
    }
}

/// If `held` (the word's value) names a process that has ended, replaces it with `mine`.
fn take_from_dead(word: &AtomicU32, held: u32, mine: u32) -> Option<Acquired> {
    let holder = held & PID_MASK;
    if holder == 0 || holder == my_id() || !fork_sys::process_is_gone(holder) {
        return None;
    }
    word.compare_exchange(held, mine, Ordering::Acquire, Ordering::Relaxed)
        .ok()
        .map(|_| Acquired::OwnerDied(holder))
}

/// Releases the word; wakes one sleeper if any may sleep.
pub(crate) fn unlock(word: &AtomicU32) {
    if word.swap(0, Ordering::Release) & CONTENDED != 0 {
        fork_sys::futex_wake(word, 1);
    }
}

/// The pid of the process holding the word, if any.
pub(crate) fn holder(word: &AtomicU32) -> Option<u32> {
    match word.load(Ordering::Relaxed) & PID_MASK {
        0 => None,
        pid => Some(pid),
    }
}
