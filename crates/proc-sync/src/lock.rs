//! [`Lock`]: a mutual-exclusion lock shared between processes, which survives its holder's
//! death.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use crate::deadline;
use crate::error::{OwnerDied, SyncError};
use crate::raw_mutex::{self, Acquired};
use crate::shared_object::{Handle, Kind, SharedObject};

/// A lock shared by this process, the children it forks afterwards, and any process that
/// [`attach`](Self::attach)es its [`handle`](Self::handle): `multiprocessing.Lock`.
///
/// Held through a [`LockGuard`] (released when dropped). Uncontended acquire and release are
/// one atomic instruction each in shared memory; a waiter sleeps on a futex, and a timeout is
/// a sleep in the kernel, not a spin.
///
/// **If the holder dies** (killed, crashed) while holding it, the next acquirer does not hang
/// for ever as with Python's `multiprocessing.Lock`: within about 50 ms of the death it gets
/// the lock together with an [`OwnerDied`] error naming the dead process's pid, and the lock
/// works normally afterwards. The data the lock protected may be half-updated: repair it,
/// then go on with [`OwnerDied::into_inner`]'s guard.
///
/// Like Python's, the lock belongs to a process, not a thread: acquiring it again from the
/// process that holds it waits for ever (use [`RLock`](crate::RLock) for re-entry).
///
/// ```
/// use proc_sync::Lock;
/// use proc_core::Process;
///
/// # fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let lock = Lock::new()?;
/// let child = {
///     let lock = lock.clone();
///     Process::spawn(move || {
///         let _held = lock.acquire().map_err(|died| died.to_string())?;
///         Ok::<_, String>(std::process::id())
///     })?
/// };
/// child.join()??;
/// let guard = lock.acquire()?;
/// drop(guard);
/// # Ok(())
/// # }
/// ```
#[derive(Clone)]
pub struct Lock {
    object: Arc<SharedObject>,
}

/// Holds a [`Lock`]; dropping it releases the lock. It owns a reference to the lock (no
/// lifetime), so it can be stored, and an [`OwnerDied`] carrying it converts into a
/// `Box<dyn Error>` with `?`: the lock then stays held until that error is dropped (converted
/// into a [`SyncError`] it is released at once).
#[must_use = "the lock is released as soon as the guard is dropped"]
pub struct LockGuard {
    object: Arc<SharedObject>,
}

impl Lock {
    /// A new, unlocked lock.
    pub fn new() -> Result<Lock, SyncError> {
        Ok(Lock {
            object: Arc::new(SharedObject::create(Kind::Lock, 0, 8)?),
        })
    }

    /// The lock whose word is the first of `object`'s body: a shared value's own lock.
    pub(crate) fn from_object(object: Arc<SharedObject>) -> Lock {
        Lock { object }
    }

    /// The object the lock's word lives in.
    pub(crate) fn object(&self) -> &Arc<SharedObject> {
        &self.object
    }

    /// Waits until the lock is free and takes it. `Err(OwnerDied)` when the previous holder
    /// died holding it: the lock is held all the same (the error carries the guard).
    pub fn acquire(&self) -> Result<LockGuard, OwnerDied<LockGuard>> {
        match raw_mutex::lock(self.word(), None) {
            Some(taken) => self.guard(taken),
            // Without a deadline `lock` only returns once it holds the word.
            None => unreachable!("a lock without a deadline returned without the lock"),
        }
    }

    /// Like [`acquire`](Self::acquire), but gives up after `timeout`: `Ok(None)` then.
    pub fn acquire_timeout(
        &self,
        timeout: Duration,
    ) -> Result<Option<LockGuard>, OwnerDied<LockGuard>> {
        match raw_mutex::lock(self.word(), Some(deadline::after(timeout))) {
            Some(taken) => self.guard(taken).map(Some),
            None => Ok(None),
        }
    }

    /// Takes the lock if it is free (or its holder is dead), without waiting.
    pub fn try_acquire(&self) -> Result<Option<LockGuard>, OwnerDied<LockGuard>> {
        match raw_mutex::try_lock(self.word()) {
            Some(taken) => self.guard(taken).map(Some),
            None => Ok(None),
        }
    }

    /// Whether some process holds the lock right now (a snapshot).
    pub fn is_locked(&self) -> bool {
        raw_mutex::holder(self.word()).is_some()
    }

    /// The pid of the process holding the lock, if any (a snapshot).
    pub fn holder(&self) -> Option<u32> {
        raw_mutex::holder(self.word())
    }

    /// A handle another process can [`attach`](Self::attach) to (see [`Handle`]).
    pub fn handle(&self) -> Result<Handle, SyncError> {
        self.object.handle()
    }

    /// The lock a [`handle`](Self::handle) names, made in another process.
    pub fn attach(handle: &Handle) -> Result<Lock, SyncError> {
        Ok(Lock {
            object: Arc::new(SharedObject::attach(handle, Kind::Lock, 0)?),
        })
    }

    fn word(&self) -> &std::sync::atomic::AtomicU32 {
        self.object.u32(0)
    }

    fn guard(&self, taken: Acquired) -> Result<LockGuard, OwnerDied<LockGuard>> {
        let guard = LockGuard {
            object: Arc::clone(&self.object),
        };
        match taken {
            Acquired::Clean => Ok(guard),
            Acquired::OwnerDied(pid) => Err(OwnerDied::new(guard, pid, "lock")),
        }
    }
}

impl LockGuard {
    /// The object of the lock this guard holds.
    pub(crate) fn object(&self) -> &Arc<SharedObject> {
        &self.object
    }
}

impl Drop for LockGuard {
    fn drop(&mut self) {
        raw_mutex::unlock(self.object.u32(0));
    }
}

impl fmt::Debug for Lock {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Lock")
            .field("holder", &self.holder())
            .finish_non_exhaustive()
    }
}

impl fmt::Debug for LockGuard {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LockGuard").finish_non_exhaustive()
    }
}
