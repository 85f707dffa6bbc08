//! [`Condition`]: a condition variable shared between processes, over a [`Lock`] or an
//! [`RLock`].

use std::fmt;
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::deadline;
use crate::error::{OwnerDied, SyncError};
use crate::lock::{Lock, LockGuard};
use crate::rlock::{RLock, RLockGuard};
use crate::shared_object::{Handle, Kind, SharedObject};

/// Body offsets: the sequence word (the futex word), the sleepers.
const SEQUENCE: usize = 0;
const SLEEPERS: usize = 4;

/// The locks a [`Condition`] can be built over: [`Lock`] and [`RLock`]. Sealed.
pub trait ConditionLock: sealed::Sealed + Clone + Send + Sync + fmt::Debug + Sized {
    /// The lock's guard, which [`Condition::wait`] takes and gives back.
    type Guard;
}

mod sealed {
    use super::ConditionLock;
    use crate::error::{OwnerDied, SyncError};
    use crate::shared_object::Handle;

    /// What a condition needs of its lock; not for use outside this crate.
    pub trait Sealed: Sized {
        /// Which object the lock is (its address in this process).
        fn object_id(&self) -> usize;
        /// Which lock object a guard holds.
        fn guard_object_id(guard: &<Self as ConditionLock>::Guard) -> usize
        where
            Self: ConditionLock;
        /// Releases the lock entirely; returns what `restore` needs.
        fn release_all(&self, guard: <Self as ConditionLock>::Guard) -> u32
        where
            Self: ConditionLock;
        /// Takes it back (without a deadline, as Python does after a wait).
        #[allow(clippy::type_complexity)]
        fn restore(
            &self,
            saved: u32,
        ) -> Result<<Self as ConditionLock>::Guard, OwnerDied<<Self as ConditionLock>::Guard>>
        where
            Self: ConditionLock;
        fn lock_handle(&self) -> Result<Handle, SyncError>;
        fn attach_lock(handle: &Handle) -> Result<Self, SyncError>;
    }
}

impl sealed::Sealed for Lock {
    fn object_id(&self) -> usize {
        Arc::as_ptr(Lock::object(self)) as usize
    }
    fn guard_object_id(guard: &LockGuard) -> usize {
        Arc::as_ptr(guard.object()) as usize
    }
    fn release_all(&self, guard: LockGuard) -> u32 {
        drop(guard);
        1
    }
    fn restore(&self, _saved: u32) -> Result<LockGuard, OwnerDied<LockGuard>> {
        self.acquire()
    }
    fn lock_handle(&self) -> Result<Handle, SyncError> {
        self.handle()
    }
    fn attach_lock(handle: &Handle) -> Result<Lock, SyncError> {
        Lock::attach(handle)
    }
}

impl ConditionLock for Lock {
    type Guard = LockGuard;
}

impl sealed::Sealed for RLock {
    fn object_id(&self) -> usize {
        Arc::as_ptr(RLock::object(self)) as usize
    }
    fn guard_object_id(guard: &RLockGuard) -> usize {
        Arc::as_ptr(guard.object()) as usize
    }
    fn release_all(&self, guard: RLockGuard) -> u32 {
        RLock::release_all(self, guard)
    }
    fn restore(&self, saved: u32) -> Result<RLockGuard, OwnerDied<RLockGuard>> {
        RLock::restore(self, saved)
    }
    fn lock_handle(&self) -> Result<Handle, SyncError> {
        self.handle()
    }
    fn attach_lock(handle: &Handle) -> Result<RLock, SyncError> {
        RLock::attach(handle)
    }
}

impl ConditionLock for RLock {
    type Guard = RLockGuard;
}

/// A condition variable shared between processes: `multiprocessing.Condition`. Waiters
/// hold the lock, call [`wait`](Self::wait) (which releases it while they sleep and takes it
/// back before returning), and another process [`notify`](Self::notify)s them after
/// changing what they wait for.
///
/// The lock is a [`Lock`] ([`Condition::new`]) or any [`Lock`] or [`RLock`] given to
/// [`with_lock`](Self::with_lock) (Python's default is an `RLock`). Sleeping is on a futex
/// sequence word: `notify` bumps it and wakes sleepers, so a notify between a waiter's
/// release of the lock and its sleep is never lost.
///
/// **Owner death**: a waiter that wakes while the process holding the lock has died gets
/// the lock back with [`OwnerDied`] (carrying the guard), exactly as an `acquire` would.
///
/// Like every condition variable, a wait may return without a matching notify (a signal,
/// or a `notify(1)` reaching two waiters that were just falling asleep): check the
/// condition in a loop, or use [`wait_for`](Self::wait_for).
///
/// ```
/// use proc_sync::{Condition, Value};
/// use proc_core::Process;
///
/// # fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let ready = Condition::new()?;
/// let flag = Value::new(0u32)?;
/// let child = {
///     let (ready, flag) = (ready.clone(), flag.clone());
///     Process::spawn(move || {
///         let _held = ready.acquire().map_err(|e| e.to_string())?;
///         flag.set(1).map_err(|e| e.to_string())?;
///         ready.notify_all();
///         Ok::<(), String>(())
///     })?
/// };
/// let held = ready.acquire()?;
/// let held = ready.wait_for(held, || flag.get().is_ok_and(|v| v == 1))?;
/// drop(held);
/// child.join()??;
/// # Ok(())
/// # }
/// ```
pub struct Condition<L: ConditionLock = Lock> {
    lock: L,
    object: Arc<SharedObject>,
}

/// What another process needs to [`attach`](Condition::attach) to a [`Condition`]: the
/// handles of its sequence word and of its lock. Serializable, like [`Handle`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ConditionHandle {
    condition: Handle,
    lock: Handle,
}

impl Condition<Lock> {
    /// A condition over a new [`Lock`].
    pub fn new() -> Result<Condition<Lock>, SyncError> {
        Condition::with_lock(Lock::new()?)
    }
}

impl<L: ConditionLock> Condition<L> {
    /// A condition over `lock` (a clone of it keeps working as the same lock).
    pub fn with_lock(lock: L) -> Result<Condition<L>, SyncError> {
        Ok(Condition {
            lock,
            object: Arc::new(SharedObject::create(Kind::Condition, 0, 8)?),
        })
    }

    /// The lock.
    pub fn lock(&self) -> &L {
        &self.lock
    }

    /// Releases the lock `guard` holds, sleeps until notified, takes the lock back and
    /// returns its guard. `Err(OwnerDied)` when the process that held the lock meanwhile
    /// died holding it: the lock is held all the same (the error carries the guard).
    ///
    /// # Panics
    ///
    /// If `guard` holds another lock than this condition's.
    pub fn wait(&self, guard: L::Guard) -> Result<L::Guard, OwnerDied<L::Guard>> {
        self.wait_until(guard, None).map(|(guard, _)| guard)
    }

    /// Like [`wait`](Self::wait), sleeping at most `timeout`; the flag is `false` when the
    /// time ran out without a notify (Python's `wait(timeout)` return value). The lock is
    /// taken back either way, without a time limit, as in Python.
    ///
    /// # Panics
    ///
    /// If `guard` holds another lock than this condition's.
    pub fn wait_timeout(
        &self,
        guard: L::Guard,
        timeout: Duration,
    ) -> Result<(L::Guard, bool), OwnerDied<L::Guard>> {
        self.wait_until(guard, Some(deadline::after(timeout)))
    }

    /// Waits until `condition()` holds, checking it with the lock held, before the first wait
    /// and after every wake-up.
    ///
    /// # Panics
    ///
    /// If `guard` holds another lock than this condition's.
    pub fn wait_for(
        &self,
        mut guard: L::Guard,
        mut condition: impl FnMut() -> bool,
    ) -> Result<L::Guard, OwnerDied<L::Guard>> {
        while !condition() {
            guard = self.wait(guard)?;
        }
        Ok(guard)
    }

    /// Like [`wait_for`](Self::wait_for) for at most `timeout`: the flag is the condition's
    /// last value (Python's `wait_for(predicate, timeout)` return value).
    ///
    /// # Panics
    ///
    /// If `guard` holds another lock than this condition's.
    pub fn wait_for_timeout(
        &self,
        mut guard: L::Guard,
        timeout: Duration,
        mut condition: impl FnMut() -> bool,
    ) -> Result<(L::Guard, bool), OwnerDied<L::Guard>> {
        let deadline = Some(deadline::after(timeout));
        loop {
            if condition() {
                return Ok((guard, true));
            }
            if deadline::passed(deadline) {
                return Ok((guard, false));
            }
            guard = self.wait_until(guard, deadline)?.0;
        }
    }

    /// Wakes up to `n` waiters (in any process). Python requires the caller to hold the lock;
    /// here it is allowed without, though waiters then may miss a change made just before.
    pub fn notify(&self, n: u32) {
        // A count of waiters, not the queues' sleeper bit (`WaitWord`): a notify of fewer
        // than all must leave the others counted, and a waiter tells a notify from a
        // spurious wake-up by the word having moved. (So waiters sleep unsliced: one that
        // looked again after a slice would take a notify meant for another. A notifier
        // killed between the two steps below wakes nobody, as if it had died before
        // notifying; the next notify wakes the sleepers.)
        if n != 0 && self.sleepers().load(Ordering::SeqCst) != 0 {
            self.sequence().fetch_add(1, Ordering::SeqCst);
            fork_sys::futex_wake(self.sequence(), n);
        }
    }

    /// Wakes every waiter.
    pub fn notify_all(&self) {
        self.notify(u32::MAX);
    }

    /// A handle another process can [`attach`](Self::attach) to: the condition's and its
    /// lock's.
    pub fn handle(&self) -> Result<ConditionHandle, SyncError> {
        Ok(ConditionHandle {
            condition: self.object.handle()?,
            lock: self.lock.lock_handle()?,
        })
    }

    /// The condition (and its lock) a [`handle`](Self::handle) names, made in another
    /// process.
    pub fn attach(handle: &ConditionHandle) -> Result<Condition<L>, SyncError> {
        Ok(Condition {
            lock: L::attach_lock(&handle.lock)?,
            object: Arc::new(SharedObject::attach(&handle.condition, Kind::Condition, 0)?),
        })
    }

    fn wait_until(
        &self,
        guard: L::Guard,
        deadline: Option<Duration>,
    ) -> Result<(L::Guard, bool), OwnerDied<L::Guard>> {
        assert!(
            L::guard_object_id(&guard) == self.lock.object_id(),
            "Condition::wait was given the guard of another lock than the condition's"
        );
        let sequence = self.sequence();
        // Read before the lock is released: a notify made after that (it needs no lock, but
        // the notifier's change was made under it) moves the word and the sleep below
        // returns at once.
        let seen = sequence.load(Ordering::SeqCst);
        self.sleepers().fetch_add(1, Ordering::SeqCst);
        let saved = self.lock.release_all(guard);
        let mut notified = true;
        while sequence.load(Ordering::SeqCst) == seen {
            let timeout = match deadline {
                Some(deadline) => {
                    let now = fork_sys::monotonic_now();
                    if now >= deadline {
                        notified = false;
                        break;
                    }
                    Some(deadline - now)
                }
                None => None,
            };
            fork_sys::futex_wait(sequence, seen, timeout);
        }
        self.sleepers().fetch_sub(1, Ordering::SeqCst);
        self.lock.restore(saved).map(|guard| (guard, notified))
    }

    fn sequence(&self) -> &AtomicU32 {
        self.object.u32(SEQUENCE)
    }

    fn sleepers(&self) -> &AtomicU32 {
        self.object.u32(SLEEPERS)
    }
}

impl Condition<Lock> {
    /// Takes the condition's lock ([`Lock::acquire`]).
    pub fn acquire(&self) -> Result<LockGuard, OwnerDied<LockGuard>> {
        self.lock.acquire()
    }
}

impl Condition<RLock> {
    /// Takes the condition's lock ([`RLock::acquire`]).
    pub fn acquire(&self) -> Result<RLockGuard, OwnerDied<RLockGuard>> {
        self.lock.acquire()
    }
}

impl<L: ConditionLock> Clone for Condition<L> {
    fn clone(&self) -> Self {
        Condition {
            lock: self.lock.clone(),
            object: Arc::clone(&self.object),
        }
    }
}

impl<L: ConditionLock> fmt::Debug for Condition<L> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Condition")
            .field("lock", &self.lock)
            .field(
                "waiters",
                &self.object.u32(SLEEPERS).load(Ordering::Relaxed),
            )
            .finish_non_exhaustive()
    }
}
