//! [`Event`]: a flag shared between processes that waiters sleep on until it is set.

use std::fmt;
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use crate::deadline;
use crate::error::SyncError;
use crate::shared_object::{Handle, Kind, SharedObject};

/// Body offsets: the state word (the futex word), the sleepers.
const STATE: usize = 0;
const SLEEPERS: usize = 4;

/// The flag's bit of the state word; the bits above count the `set`s, so that a waiter
/// notices a `set` followed at once by a `clear` (Python wakes its waiters then too).
const SET: u32 = 1;

/// A flag shared between processes: `multiprocessing.Event`. [`wait`](Self::wait) sleeps
/// until some process calls [`set`](Self::set); [`clear`](Self::clear) lowers it again.
///
/// A waiter sleeps on a futex (no polling); `set` wakes every waiter with one system call,
/// and none at all when nobody waits.
///
/// ```
/// use proc_sync::Event;
/// use proc_core::Process;
///
/// # fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let ready = Event::new()?;
/// let child = {
///     let ready = ready.clone();
///     Process::spawn(move || ready.set())?
/// };
/// ready.wait();
/// assert!(ready.is_set());
/// child.join()?;
/// # Ok(())
/// # }
/// ```
#[derive(Clone)]
pub struct Event {
    object: Arc<SharedObject>,
}

impl Event {
    /// A new event, not set.
    pub fn new() -> Result<Event, SyncError> {
        Ok(Event {
            object: Arc::new(SharedObject::create(Kind::Event, 0, 8)?),
        })
    }

    /// Sets the flag and wakes every process and thread waiting for it.
    pub fn set(&self) {
        let state = self.state();
        let mut seen = state.load(Ordering::Relaxed);
        loop {
            if seen & SET != 0 {
                return;
            }
            // Count the set in the bits above the flag (wrapping is harmless: a waiter only
            // compares for a change).
            let next = (seen | SET).wrapping_add(2);
            match state.compare_exchange_weak(seen, next, Ordering::SeqCst, Ordering::Relaxed) {
                Ok(_) => break,
                Err(now) => seen = now,
            }
        }
        deadline::wake(state, self.object.u32(SLEEPERS), u32::MAX);
    }

    /// Lowers the flag: later waits sleep until the next [`set`](Self::set).
    pub fn clear(&self) {
        self.state().fetch_and(!SET, Ordering::SeqCst);
    }

    /// Whether the flag is set (a snapshot).
    pub fn is_set(&self) -> bool {
        self.state().load(Ordering::Acquire) & SET != 0
    }

    /// Sleeps until the flag is set (returns at once if it is).
    pub fn wait(&self) {
        self.wait_until(None);
    }

    /// Like [`wait`](Self::wait), for at most `timeout`: `true` if the flag was set (Python's
    /// `wait(timeout)` return value), `false` if the time ran out first.
    pub fn wait_timeout(&self, timeout: Duration) -> bool {
        self.wait_until(Some(deadline::after(timeout)))
    }

    /// A handle another process can [`attach`](Self::attach) to (see [`Handle`]).
    pub fn handle(&self) -> Result<Handle, SyncError> {
        self.object.handle()
    }

    /// The event a [`handle`](Self::handle) names, made in another process.
    pub fn attach(handle: &Handle) -> Result<Event, SyncError> {
        Ok(Event {
            object: Arc::new(SharedObject::attach(handle, Kind::Event, 0)?),
        })
    }

    fn wait_until(&self, deadline: Option<Duration>) -> bool {
        let state = self.state();
        let first = state.load(Ordering::Acquire);
        if first & SET != 0 {
            return true;
        }
        loop {
            let still = deadline::sleep_on(state, first, self.object.u32(SLEEPERS), deadline);
            // Any change since we looked first is a set (a clear alone cannot change a word
            // whose flag is down).
            if state.load(Ordering::Acquire) != first {
                return true;
            }
            if !still {
                return false;
            }
        }
    }

    fn state(&self) -> &AtomicU32 {
        self.object.u32(STATE)
    }
}

impl fmt::Debug for Event {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Event")
            .field("is_set", &self.is_set())
            .finish_non_exhaustive()
    }
}
