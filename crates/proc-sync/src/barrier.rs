//! [`Barrier`]: a meeting point for a fixed number of parties, in any processes.

use std::fmt;
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use crate::deadline;
use crate::error::SyncError;
use crate::raw_mutex;
use crate::shared_object::{Handle, Kind, SharedObject};

/// Body offsets: the state word (the futex word), the sleepers, the internal mutex, the
/// parties arrived in this round, the parties.
const STATE: usize = 0;
const SLEEPERS: usize = 4;
const MUTEX: usize = 8;
const ARRIVED: usize = 12;
const PARTIES: usize = 16;

/// State bits: the barrier is broken; a reset waits for the broken round's waiters to leave.
/// The bits above count the rounds.
const BROKEN: u32 = 1;
const RESETTING: u32 = 2;
const ROUND: u32 = 4;

/// A barrier shared between processes: `multiprocessing.Barrier`. Each of `parties` callers
/// of [`wait`](Self::wait) sleeps until the last one arrives; then all go on together, and
/// the barrier is ready for the next round.
///
/// A barrier can break: [`abort`](Self::abort), or a party whose
/// [`wait_timeout`](Self::wait_timeout) runs out (as in Python). Every waiter then gets
/// [`SyncError::BrokenBarrier`] (the party that timed out gets [`SyncError::Timeout`]), and
/// so does every later `wait` until [`reset`](Self::reset). A party that dies while waiting
/// is not noticed (a barrier has no owner): give the waits a timeout if that can happen.
///
/// ```
/// use proc_sync::Barrier;
/// use proc_core::Process;
///
/// # fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let start = Barrier::new(3)?;
/// let children: Vec<_> = (0..2)
///     .map(|_| {
///         let start = start.clone();
///         Process::spawn(move || start.wait().map_err(|e| e.to_string()))
///     })
///     .collect::<Result<_, _>>()?;
/// let mine = start.wait()?;
/// let mut indices = vec![mine];
/// for child in children {
///     indices.push(child.join()??);
/// }
/// indices.sort();
/// assert_eq!(indices, [0, 1, 2]);
/// # Ok(())
/// # }
/// ```
#[derive(Clone)]
pub struct Barrier {
    object: Arc<SharedObject>,
}

impl Barrier {
    /// A barrier for `parties` parties (at least 1).
    pub fn new(parties: u32) -> Result<Barrier, SyncError> {
        if parties == 0 {
            return Err(SyncError::Misuse {
                message: "a Barrier needs at least one party".into(),
            });
        }
        let object = SharedObject::create(Kind::Barrier, 0, 24)?;
        object.u32(PARTIES).store(parties, Ordering::Relaxed);
        Ok(Barrier {
            object: Arc::new(object),
        })
    }

    /// Waits until `parties` parties are waiting, then returns this party's arrival index:
    /// `0` for the first to arrive, `parties - 1` for the last (unique in the round, so one
    /// party can be picked for a follow-up job). [`SyncError::BrokenBarrier`] if the barrier
    /// is or becomes broken.
    pub fn wait(&self) -> Result<u32, SyncError> {
        self.wait_until(None, Duration::ZERO)
    }

    /// Like [`wait`](Self::wait), for at most `timeout`. When the time runs out the barrier
    /// breaks (Python's rule: the others get [`SyncError::BrokenBarrier`]) and this party gets
    /// [`SyncError::Timeout`].
    pub fn wait_timeout(&self, timeout: Duration) -> Result<u32, SyncError> {
        self.wait_until(Some(deadline::after(timeout)), timeout)
    }

    /// Breaks the barrier: every waiter, and every later `wait` until [`reset`](Self::reset),
    /// gets [`SyncError::BrokenBarrier`].
    pub fn abort(&self) {
        self.with_mutex(|state| state.fetch_or(BROKEN, Ordering::SeqCst));
        self.wake_all();
    }

    /// Makes the barrier whole and empty again. Parties waiting now get
    /// [`SyncError::BrokenBarrier`] (as in Python); new waits start a fresh round once they
    /// have left.
    pub fn reset(&self) {
        self.with_mutex(|state| {
            let now = state.load(Ordering::Relaxed);
            if self.arrived().load(Ordering::Relaxed) == 0 {
                state.store(next_round(now), Ordering::SeqCst);
            } else {
                state.store(now | BROKEN | RESETTING, Ordering::SeqCst);
            }
        });
        self.wake_all();
    }

    /// The number of parties the barrier waits for.
    pub fn parties(&self) -> u32 {
        self.object.u32(PARTIES).load(Ordering::Relaxed)
    }

    /// How many parties are waiting now (a snapshot).
    pub fn n_waiting(&self) -> u32 {
        self.arrived().load(Ordering::Relaxed)
    }

    /// Whether the barrier is broken (a snapshot).
    pub fn is_broken(&self) -> bool {
        self.state().load(Ordering::Relaxed) & BROKEN != 0
    }

    /// A handle another process can [`attach`](Self::attach) to (see [`Handle`]).
    pub fn handle(&self) -> Result<Handle, SyncError> {
        self.object.handle()
    }

    /// The barrier a [`handle`](Self::handle) names, made in another process.
    pub fn attach(handle: &Handle) -> Result<Barrier, SyncError> {
        Ok(Barrier {
            object: Arc::new(SharedObject::attach(handle, Kind::Barrier, 0)?),
        })
    }

    fn wait_until(&self, deadline: Option<Duration>, timeout: Duration) -> Result<u32, SyncError> {
        let state = self.state();
        let arrived = self.arrived();
        // Arrive: under the mutex, wait out a reset still draining, then count in.
        let (index, round) = loop {
            let entered = self.with_mutex(|state| {
                let now = state.load(Ordering::Relaxed);
                if now & RESETTING != 0 {
                    return Err(now);
                }
                if now & BROKEN != 0 {
                    return Ok(Err(SyncError::BrokenBarrier));
                }
                let index = arrived.load(Ordering::Relaxed);
                if index + 1 == self.parties() {
                    arrived.store(0, Ordering::Relaxed);
                    state.store(next_round(now), Ordering::SeqCst);
                    return Ok(Ok((index, None)));
                }
                arrived.store(index + 1, Ordering::Relaxed);
                Ok(Ok((index, Some(now))))
            });
            match entered {
                Ok(Ok((index, None))) => {
                    self.wake_all();
                    return Ok(index);
                }
                Ok(Ok((index, Some(round)))) => break (index, round),
                Ok(Err(broken)) => return Err(broken),
                Err(resetting) => {
                    if !deadline::sleep_on(state, resetting, self.sleepers(), deadline) {
                        return Err(self.timeout(timeout));
                    }
                }
            }
        };
        // Wait for the round to end: released (the round count moved on) or broken.
        loop {
            let now = state.load(Ordering::SeqCst);
            if now != round {
                return self.leave(round, index);
            }
            if !deadline::sleep_on(state, round, self.sleepers(), deadline) {
                // Out of time: break the barrier for everyone, unless it ended meanwhile.
                let ended = self.with_mutex(|state| {
                    if state.load(Ordering::Relaxed) != round {
                        return true;
                    }
                    state.fetch_or(BROKEN, Ordering::SeqCst);
                    arrived.fetch_sub(1, Ordering::Relaxed);
                    false
                });
                if ended {
                    return self.leave(round, index);
                }
                self.wake_all();
                return Err(self.timeout(timeout));
            }
        }
    }

    /// The round this party waited in has ended: released, or broken.
    fn leave(&self, round: u32, index: u32) -> Result<u32, SyncError> {
        let arrived = self.arrived();
        let outcome = self.with_mutex(|state| {
            let now = state.load(Ordering::Relaxed);
            if now >> 2 != round >> 2 {
                return Ok(());
            }
            // Broken in our round: leave it; the last to leave a reset round completes it.
            let left = arrived.load(Ordering::Relaxed).saturating_sub(1);
            arrived.store(left, Ordering::Relaxed);
            if left == 0 && now & RESETTING != 0 {
                state.store(next_round(now), Ordering::SeqCst);
            }
            Err(SyncError::BrokenBarrier)
        });
        match outcome {
            Ok(()) => Ok(index),
            Err(broken) => {
                self.wake_all();
                Err(broken)
            }
        }
    }

    fn timeout(&self, timeout: Duration) -> SyncError {
        SyncError::Timeout {
            what: "the other parties of the barrier",
            timeout,
        }
    }

    /// Runs `f` on the state word under the barrier's internal mutex. The sections are a few
    /// instructions; if a process died inside one, the barrier is marked broken, since its
    /// counts may be off.
    fn with_mutex<T>(&self, f: impl FnOnce(&AtomicU32) -> T) -> T {
        let mutex = self.object.u32(MUTEX);
        let taken = raw_mutex::lock(mutex, None);
        if let Some(raw_mutex::Acquired::OwnerDied(_)) = taken {
            self.state().fetch_or(BROKEN, Ordering::SeqCst);
        }
        let out = f(self.state());
        raw_mutex::unlock(mutex);
        out
    }

    fn wake_all(&self) {
        deadline::wake(self.state(), self.sleepers(), u32::MAX);
    }

    fn state(&self) -> &AtomicU32 {
        self.object.u32(STATE)
    }

    fn sleepers(&self) -> &AtomicU32 {
        self.object.u32(SLEEPERS)
    }

    fn arrived(&self) -> &AtomicU32 {
        self.object.u32(ARRIVED)
    }
}

/// The state of the round after `state`'s: whole, not resetting.
fn next_round(state: u32) -> u32 {
    (state & !(BROKEN | RESETTING)).wrapping_add(ROUND)
}

impl fmt::Debug for Barrier {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Barrier")
            .field("parties", &self.parties())
            .field("n_waiting", &self.n_waiting())
            .field("broken", &self.is_broken())
            .finish_non_exhaustive()
    }
}
