//! [`RLock`]: a re-entrant lock shared between processes, owned by one thread of one process,
//! which survives its holder's death like [`Lock`](crate::Lock).

use std::cell::Cell;
use std::fmt;
use std::marker::PhantomData;
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use crate::deadline;
use crate::error::{OwnerDied, SyncError};
use crate::raw_mutex::{self, Acquired};
use crate::shared_object::{Handle, Kind, SharedObject};

/// Body offsets: the process word (a [`raw_mutex`]), the owning thread, the depth.
const WORD: usize = 0;
const THREAD: usize = 4;
const DEPTH: usize = 8;

/// A re-entrant lock shared between processes: `multiprocessing.RLock`. The thread holding it
/// may acquire it again (each guard releases one level); other threads, of this process or
/// another, wait until every level is released.
///
/// The owner is a thread of a process: its pid (in the lock word, checked for liveness as
/// with [`Lock`](crate::Lock)) and a number this process gives each of its threads. Guards
/// are not `Send`, so a level is always released by the thread that took it: Python's
/// "release by a non-owner" error cannot happen.
///
/// **If the holding process dies**, the next acquirer gets the lock (at depth 1) with an
/// [`OwnerDied`] error naming the dead process, like [`Lock`](crate::Lock).
///
/// ```
/// use proc_sync::RLock;
///
/// # fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let lock = RLock::new()?;
/// let outer = lock.acquire()?;
/// let inner = lock.acquire()?; // the same thread: no deadlock
/// assert_eq!(lock.depth(), 2);
/// drop(inner);
/// drop(outer);
/// assert!(!lock.is_locked());
/// # Ok(())
/// # }
/// ```
#[derive(Clone)]
pub struct RLock {
    object: Arc<SharedObject>,
}

/// Holds one level of an [`RLock`]; dropping it releases that level. Not `Send`: the level
/// belongs to the thread that acquired it, so no other thread can release it.
///
/// ```compile_fail
/// fn on_another_thread<T: Send>(_: T) {}
/// let lock = proc_sync::RLock::new().unwrap();
/// on_another_thread(lock.acquire().unwrap());
/// ```
#[must_use = "the level is released as soon as the guard is dropped"]
pub struct RLockGuard {
    object: Arc<SharedObject>,
    not_send: PhantomData<*const ()>,
}

thread_local! {
    static THREAD_NUMBER: Cell<u32> = const { Cell::new(0) };
}

/// This thread's number in this process (from 1): unique among the process's threads, and
/// together with the pid unique among every thread that can reach a lock. A forked child's
/// thread keeps its parent thread's number, but not its pid.
fn this_thread() -> u32 {
    static NEXT: AtomicU32 = AtomicU32::new(1);
    THREAD_NUMBER.with(|number| {
        if number.get() == 0 {
            number.set(NEXT.fetch_add(1, Ordering::Relaxed).max(1));
        }
        number.get()
    })
}

impl RLock {
    /// A new, unlocked re-entrant lock.
    pub fn new() -> Result<RLock, SyncError> {
        Ok(RLock {
            object: Arc::new(SharedObject::create(Kind::RLock, 0, 16)?),
        })
    }

    /// Takes the lock, or one more level of it if this thread holds it already.
    /// `Err(OwnerDied)` when the previous holder died holding it: the lock is held all the
    /// same (the error carries the guard).
    pub fn acquire(&self) -> Result<RLockGuard, OwnerDied<RLockGuard>> {
        match self.take(None) {
            Some(taken) => taken,
            None => unreachable!("a lock without a deadline returned without the lock"),
        }
    }

    /// Like [`acquire`](Self::acquire), but gives up after `timeout`: `Ok(None)` then.
    pub fn acquire_timeout(
        &self,
        timeout: Duration,
    ) -> Result<Option<RLockGuard>, OwnerDied<RLockGuard>> {
        self.take(Some(deadline::after(timeout))).transpose()
    }

    /// Takes the lock (or one more level) if that needs no waiting.
    pub fn try_acquire(&self) -> Result<Option<RLockGuard>, OwnerDied<RLockGuard>> {
        if let Some(level) = self.reenter() {
            return Ok(Some(level));
        }
        match raw_mutex::try_lock(self.word()) {
            Some(taken) => self.first_level(taken, 1).map(Some),
            None => Ok(None),
        }
    }

    /// Whether some thread of some process holds the lock (a snapshot).
    pub fn is_locked(&self) -> bool {
        raw_mutex::holder(self.word()).is_some()
    }

    /// The pid of the process holding the lock, if any (a snapshot).
    pub fn holder(&self) -> Option<u32> {
        raw_mutex::holder(self.word())
    }

    /// Whether the calling thread holds the lock.
    pub fn is_mine(&self) -> bool {
        raw_mutex::holder(self.word()) == Some(raw_mutex::my_id())
            && self.object.u32(THREAD).load(Ordering::Relaxed) == this_thread()
    }

    /// How many levels the calling thread holds: 0 unless [`is_mine`](Self::is_mine).
    pub fn depth(&self) -> u32 {
        if self.is_mine() {
            self.object.u32(DEPTH).load(Ordering::Relaxed)
        } else {
            0
        }
    }

    /// A handle another process can [`attach`](Self::attach) to (see [`Handle`]).
    pub fn handle(&self) -> Result<Handle, SyncError> {
        self.object.handle()
    }

    /// The lock a [`handle`](Self::handle) names, made in another process.
    pub fn attach(handle: &Handle) -> Result<RLock, SyncError> {
        Ok(RLock {
            object: Arc::new(SharedObject::attach(handle, Kind::RLock, 0)?),
        })
    }

    pub(crate) fn object(&self) -> &Arc<SharedObject> {
        &self.object
    }

    /// Releases every level the guard's thread holds, for a condition wait: returns the depth
    /// to [`restore`](Self::restore) afterwards.
    pub(crate) fn release_all(&self, guard: RLockGuard) -> u32 {
        std::mem::forget(guard);
        let depth = self.object.u32(DEPTH).swap(0, Ordering::Relaxed);
        self.object.u32(THREAD).store(0, Ordering::Relaxed);
        raw_mutex::unlock(self.word());
        depth
    }

    /// Takes the lock again at `depth` levels after a condition wait, without a deadline.
    pub(crate) fn restore(&self, depth: u32) -> Result<RLockGuard, OwnerDied<RLockGuard>> {
        match raw_mutex::lock(self.word(), None) {
            Some(taken) => self.first_level(taken, depth.max(1)),
            None => unreachable!("a lock without a deadline returned without the lock"),
        }
    }

    fn take(
        &self,
        deadline: Option<Duration>,
    ) -> Option<Result<RLockGuard, OwnerDied<RLockGuard>>> {
        if let Some(level) = self.reenter() {
            return Some(Ok(level));
        }
        raw_mutex::lock(self.word(), deadline).map(|taken| self.first_level(taken, 1))
    }

    /// One more level, if this thread holds the lock already.
    fn reenter(&self) -> Option<RLockGuard> {
        if !self.is_mine() {
            return None;
        }
        // Only the owning thread writes the depth while it holds the lock.
        let depth = self.object.u32(DEPTH);
        depth.store(
            depth.load(Ordering::Relaxed).saturating_add(1),
            Ordering::Relaxed,
        );
        Some(self.guard())
    }

    fn first_level(
        &self,
        taken: Acquired,
        depth: u32,
    ) -> Result<RLockGuard, OwnerDied<RLockGuard>> {
        self.object
            .u32(THREAD)
            .store(this_thread(), Ordering::Relaxed);
        self.object.u32(DEPTH).store(depth, Ordering::Relaxed);
        let guard = self.guard();
        match taken {
            Acquired::Clean => Ok(guard),
            Acquired::OwnerDied(pid) => Err(OwnerDied::new(guard, pid, "rlock")),
        }
    }

    fn guard(&self) -> RLockGuard {
        RLockGuard {
            object: Arc::clone(&self.object),
            not_send: PhantomData,
        }
    }

    fn word(&self) -> &AtomicU32 {
        self.object.u32(WORD)
    }
}

impl RLockGuard {
    pub(crate) fn object(&self) -> &Arc<SharedObject> {
        &self.object
    }
}

impl Drop for RLockGuard {
    fn drop(&mut self) {
        let depth = self.object.u32(DEPTH);
        let left = depth.load(Ordering::Relaxed).saturating_sub(1);
        depth.store(left, Ordering::Relaxed);
        if left == 0 {
            // The thread word is cleared before the lock word: a thread of this process that
            // takes the lock next never sees a stale owner matching itself.
            self.object.u32(THREAD).store(0, Ordering::Relaxed);
            raw_mutex::unlock(self.object.u32(WORD));
        }
    }
}

impl fmt::Debug for RLock {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RLock")
            .field("holder", &self.holder())
            .field("depth_here", &self.depth())
            .finish_non_exhaustive()
    }
}

impl fmt::Debug for RLockGuard {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RLockGuard").finish_non_exhaustive()
    }
}
