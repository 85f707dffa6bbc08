//! [`Semaphore`] and [`BoundedSemaphore`]: a counter shared between processes that waiters
//! take units from.

use std::fmt;
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use crate::deadline;
use crate::error::SyncError;
use crate::shared_object::{Handle, Kind, SharedObject};

/// Body offsets: the value (the futex word), the sleepers, the bound, whether it holds.
const VALUE: usize = 0;
const SLEEPERS: usize = 4;
const BOUND: usize = 8;
const IS_BOUNDED: usize = 12;

/// Type tags telling the two kinds apart in a [`Handle`].
const UNBOUNDED: u64 = 0;
const BOUNDED: u64 = 1;

/// A semaphore shared between processes: `multiprocessing.Semaphore`. Its value is the number
/// of units free; [`acquire`](Self::acquire) waits for one and takes it, the returned
/// [`SemaphoreGuard`] gives it back when dropped.
///
/// Python lets one process acquire and another release (a semaphore counts, it has no
/// owner): [`SemaphoreGuard::forget`] keeps the unit taken, and [`release`](Self::release),
/// from any process, adds one.
///
/// A process that dies holding a guard does not give its unit back (a semaphore has no
/// owner to check on, in Python as here).
///
/// ```
/// use proc_sync::Semaphore;
///
/// # fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let slots = Semaphore::new(2)?;
/// let a = slots.acquire();
/// let b = slots.acquire();
/// assert!(slots.try_acquire().is_none());
/// drop(a);
/// assert_eq!(slots.get_value(), 1);
/// // A unit taken here and given back elsewhere, as in Python:
/// b.forget();
/// slots.release()?;
/// assert_eq!(slots.get_value(), 2);
/// # Ok(())
/// # }
/// ```
#[derive(Clone)]
pub struct Semaphore {
    object: Arc<SharedObject>,
}

/// A [`Semaphore`] whose value may never rise above its initial value:
/// `multiprocessing.BoundedSemaphore`. A [`release`](Self::release) that would is a
/// [`SyncError::Misuse`].
///
/// ```
/// use proc_sync::{BoundedSemaphore, SyncError};
///
/// # fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let slots = BoundedSemaphore::new(1)?;
/// assert!(matches!(slots.release(), Err(SyncError::Misuse { .. })));
/// slots.acquire().forget();
/// slots.release()?;
/// # Ok(())
/// # }
/// ```
#[derive(Clone)]
pub struct BoundedSemaphore {
    inner: Semaphore,
}

/// One unit of a [`Semaphore`] or [`BoundedSemaphore`], given back when dropped (or kept
/// taken by [`forget`](Self::forget)).
#[must_use = "the unit is given back as soon as the guard is dropped"]
pub struct SemaphoreGuard {
    object: Arc<SharedObject>,
}

impl Semaphore {
    /// A semaphore with `value` free units.
    pub fn new(value: u32) -> Result<Semaphore, SyncError> {
        Semaphore::create(value, UNBOUNDED)
    }

    fn create(value: u32, tag: u64) -> Result<Semaphore, SyncError> {
        let object = SharedObject::create(Kind::Semaphore, tag, 16)?;
        object.u32(VALUE).store(value, Ordering::Relaxed);
        object.u32(BOUND).store(value, Ordering::Relaxed);
        object
            .u32(IS_BOUNDED)
            .store(u32::from(tag == BOUNDED), Ordering::Relaxed);
        Ok(Semaphore {
            object: Arc::new(object),
        })
    }

    /// Waits for a free unit and takes it.
    pub fn acquire(&self) -> SemaphoreGuard {
        match self.take(None) {
            Some(guard) => guard,
            None => unreachable!("a semaphore wait without a deadline returned empty-handed"),
        }
    }

    /// Like [`acquire`](Self::acquire), but gives up after `timeout`: `None` then.
    pub fn acquire_timeout(&self, timeout: Duration) -> Option<SemaphoreGuard> {
        self.take(Some(deadline::after(timeout)))
    }

    /// Takes a unit if one is free, without waiting.
    pub fn try_acquire(&self) -> Option<SemaphoreGuard> {
        let value = self.value();
        let mut seen = value.load(Ordering::Relaxed);
        while seen > 0 {
            match value.compare_exchange_weak(seen, seen - 1, Ordering::Acquire, Ordering::Relaxed)
            {
                Ok(_) => return Some(self.guard()),
                Err(now) => seen = now,
            }
        }
        None
    }

    /// Adds a unit (one kept taken by [`SemaphoreGuard::forget`], in this process or another),
    /// waking one waiter. An error only if the value would overflow a
    /// `u32`.
    pub fn release(&self) -> Result<(), SyncError> {
        add_unit(&self.object, None)
    }

    /// The number of free units right now: a snapshot, stale as soon as it is read
    /// (Python's `get_value`).
    pub fn get_value(&self) -> u32 {
        self.value().load(Ordering::Relaxed)
    }

    /// A handle another process can [`attach`](Self::attach) to (see [`Handle`]).
    pub fn handle(&self) -> Result<Handle, SyncError> {
        self.object.handle()
    }

    /// The semaphore a [`handle`](Self::handle) names, made in another process.
    pub fn attach(handle: &Handle) -> Result<Semaphore, SyncError> {
        Ok(Semaphore {
            object: Arc::new(SharedObject::attach(handle, Kind::Semaphore, UNBOUNDED)?),
        })
    }

    fn take(&self, deadline: Option<Duration>) -> Option<SemaphoreGuard> {
        loop {
            if let Some(guard) = self.try_acquire() {
                return Some(guard);
            }
            // Sleeps are sliced: a waiter woken for a unit that then died or gave up before
            // taking it would otherwise leave the unit free and the next sleeper asleep.
            let sleepers = self.object.u32(SLEEPERS);
            if !deadline::sleep_on(self.value(), 0, sleepers, deadline) {
                // One last look, then hand any wake-up meant for us on.
                let last = self.try_acquire();
                if last.is_none() && self.get_value() > 0 {
                    deadline::wake(self.value(), sleepers, 1);
                }
                return last;
            }
        }
    }

    fn value(&self) -> &AtomicU32 {
        self.object.u32(VALUE)
    }

    fn guard(&self) -> SemaphoreGuard {
        SemaphoreGuard {
            object: Arc::clone(&self.object),
        }
    }
}

/// Adds a unit to the semaphore in `object`, refusing to go above `bound`.
fn add_unit(object: &SharedObject, bound: Option<u32>) -> Result<(), SyncError> {
    let value = object.u32(VALUE);
    let mut seen = value.load(Ordering::Relaxed);
    loop {
        let limit = bound.unwrap_or(u32::MAX);
        if seen >= limit {
            return Err(SyncError::Misuse {
                message: match bound {
                    Some(bound) => format!(
                        "released a BoundedSemaphore above its initial value {bound} \
                         (more releases than acquires)"
                    ),
                    None => format!("a Semaphore's value cannot rise above {}", u32::MAX),
                },
            });
        }
        match value.compare_exchange_weak(seen, seen + 1, Ordering::SeqCst, Ordering::Relaxed) {
            Ok(_) => break,
            Err(now) => seen = now,
        }
    }
    deadline::wake(value, object.u32(SLEEPERS), 1);
    Ok(())
}

impl BoundedSemaphore {
    /// A bounded semaphore with `value` free units, never more.
    pub fn new(value: u32) -> Result<BoundedSemaphore, SyncError> {
        Ok(BoundedSemaphore {
            inner: Semaphore::create(value, BOUNDED)?,
        })
    }

    /// Waits for a free unit and takes it.
    pub fn acquire(&self) -> SemaphoreGuard {
        self.inner.acquire()
    }

    /// Like [`acquire`](Self::acquire), but gives up after `timeout`: `None` then.
    pub fn acquire_timeout(&self, timeout: Duration) -> Option<SemaphoreGuard> {
        self.inner.acquire_timeout(timeout)
    }

    /// Takes a unit if one is free, without waiting.
    pub fn try_acquire(&self) -> Option<SemaphoreGuard> {
        self.inner.try_acquire()
    }

    /// Adds a unit, waking one waiter; [`SyncError::Misuse`] if the value is at its initial
    /// value already (Python's `ValueError: Semaphore released too many times`).
    pub fn release(&self) -> Result<(), SyncError> {
        add_unit(&self.inner.object, Some(self.bound()))
    }

    /// The number of free units right now (a snapshot).
    pub fn get_value(&self) -> u32 {
        self.inner.get_value()
    }

    /// The initial value, which the value never exceeds.
    pub fn bound(&self) -> u32 {
        self.inner.object.u32(BOUND).load(Ordering::Relaxed)
    }

    /// A handle another process can [`attach`](Self::attach) to (see [`Handle`]).
    pub fn handle(&self) -> Result<Handle, SyncError> {
        self.inner.handle()
    }

    /// The bounded semaphore a [`handle`](Self::handle) names, made in another process.
    pub fn attach(handle: &Handle) -> Result<BoundedSemaphore, SyncError> {
        Ok(BoundedSemaphore {
            inner: Semaphore {
                object: Arc::new(SharedObject::attach(handle, Kind::Semaphore, BOUNDED)?),
            },
        })
    }
}

impl SemaphoreGuard {
    /// Keeps the unit taken: nothing is given back now. Another process (or this one) gives
    /// it back later with `release`, as Python code that acquires in one process and
    /// releases in another does.
    pub fn forget(self) {
        std::mem::forget(self);
    }
}

impl Drop for SemaphoreGuard {
    fn drop(&mut self) {
        // The unit this guard holds goes back. For a bounded semaphore a `release` beyond
        // the bound made meanwhile already took its place; that release was the misuse, and
        // the value stays at the bound (a destructor cannot report it).
        let bound = (self.object.u32(IS_BOUNDED).load(Ordering::Relaxed) != 0)
            .then(|| self.object.u32(BOUND).load(Ordering::Relaxed));
        let _ = add_unit(&self.object, bound);
    }
}

impl fmt::Debug for Semaphore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Semaphore")
            .field("value", &self.get_value())
            .finish_non_exhaustive()
    }
}

impl fmt::Debug for BoundedSemaphore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("BoundedSemaphore")
            .field("value", &self.get_value())
            .field("bound", &self.bound())
            .finish_non_exhaustive()
    }
}

impl fmt::Debug for SemaphoreGuard {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SemaphoreGuard").finish_non_exhaustive()
    }
}
