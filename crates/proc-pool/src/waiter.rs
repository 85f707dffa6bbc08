//! The async half of every result sink: the [`Waker`] of the last poll, kept beside the state
//! it waits on, and woken by whatever changes that state, as the sink's condvar wakes the
//! blocking waiters.
//!
//! No thread waits for a future and nothing is registered with an I/O reactor: the manager
//! thread (or the callback thread) that completes a result calls `wake` itself, so a result
//! can be awaited on any executor.

use std::sync::Condvar;
use std::task::Waker;

/// The waker of the last poll that found nothing, if any. Lives inside a sink's mutex.
#[derive(Debug, Default)]
pub(crate) struct Waiter {
    waker: Option<Waker>,
}

impl Waiter {
    /// Keeps `waker` to wake on the next change, unless the one kept already wakes the same
    /// task (`will_wake`): a future moved to another task is woken there, and re-polling in
    /// the same task clones nothing.
    pub(crate) fn register(&mut self, waker: &Waker) {
        match &mut self.waker {
            Some(kept) if kept.will_wake(waker) => {}
            slot => *slot = Some(waker.clone()),
        }
    }

    /// Forgets the waker: the future or stream that registered it is gone.
    pub(crate) fn clear(&mut self) {
        self.waker = None;
    }

    /// Wakes the blocking waiters on `condvar` now (the caller holds the lock), and takes the
    /// async waiter's waker, to be woken by [`Woken::wake`] once the lock is released: an
    /// executor that polls inside `wake` would otherwise find the lock held.
    #[must_use = "call `wake` on it once the lock is released"]
    pub(crate) fn notify(&mut self, condvar: &Condvar) -> Woken {
        condvar.notify_all();
        Woken(self.waker.take())
    }
}

/// A waker taken by [`Waiter::notify`], to wake after unlocking.
#[derive(Debug)]
pub(crate) struct Woken(Option<Waker>);

impl Woken {
    /// Wakes the task that polled last, if one waits. Each registration is woken once: the
    /// task registers again if it polls and still finds nothing.
    pub(crate) fn wake(self) {
        if let Some(waker) = self.0 {
            waker.wake();
        }
    }
}
