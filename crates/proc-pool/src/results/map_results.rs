//! The sink of one `map` or `map_async`: values collected per chunk, joined in order as the
//! chunks complete.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::task::{Poll, Waker};
use std::time::Instant;

use serde::de::DeserializeOwned;

use crate::callbacks::Collect;
use crate::error::TaskError;
use crate::locking::{lock, wait, wait_until};
use crate::protocol::{self, EncodedItems, Origin};
use crate::waiter::Waiter;

use super::{ReplySink, missing_item};

/// The sink of one `map`. The values of the next chunk in order are decoded straight onto the
/// vector `wait` returns (the *joined* values); a chunk that completes before the chunks ahead
/// of it collects in a vector of its own, appended when its turn comes. So the chunks are
/// joined while the workers run, and when they complete in order (the usual case: they are
/// handed out in order) each value is written once, and `wait` has nothing left to copy.
pub(crate) struct MapResults<R> {
    state: Mutex<MapState<R>>,
    changed: Condvar,
    cancelled: AtomicBool,
    len: usize,
    chunksize: usize,
}

struct MapState<R> {
    /// The values of chunks `0..joined`, then those of chunk `joined` so far.
    values: Vec<R>,
    /// How many chunks `values` holds whole.
    joined: usize,
    /// The values of the chunks after `joined` (empty once joined).
    chunks: Vec<Vec<R>>,
    /// Which chunks have all their values.
    complete: Vec<bool>,
    chunks_left: usize,
    error: Option<TaskError>,
    /// The task awaiting the `MapResult`, if it was polled before the map was complete.
    waiter: Waiter,
}

impl<R> MapState<R> {
    /// Every value is in, or an error: what the waiters wait for. Once true, stays true.
    fn is_complete(&self) -> bool {
        self.chunks_left == 0 || self.error.is_some()
    }
}

impl<R: DeserializeOwned + Send> MapResults<R> {
    pub(crate) fn new(len: usize, chunksize: usize) -> Arc<MapResults<R>> {
        let chunks = len.div_ceil(chunksize);
        Arc::new(MapResults {
            state: Mutex::new(MapState {
                values: Vec::new(),
                joined: 0,
                chunks: (0..chunks).map(|_| Vec::new()).collect(),
                complete: vec![false; chunks],
                chunks_left: chunks,
                error: None,
                waiter: Waiter::default(),
            }),
            changed: Condvar::new(),
            cancelled: AtomicBool::new(false),
            len,
            chunksize,
        })
    }

    fn chunk_len(&self, chunk: usize) -> usize {
        self.chunksize.min(self.len - chunk * self.chunksize)
    }

    /// Waits until every value is in, or the first error.
    pub(crate) fn wait(&self) -> Result<Vec<R>, TaskError> {
        let mut state = lock(&self.state);
        while !state.is_complete() {
            state = wait(&self.changed, state);
        }
        if let Some(error) = state.error.clone() {
            // Fail fast, like Python: tasks not yet sent are dropped, running ones discarded
            // (the error stays, so later results are not even decoded).
            self.cancelled.store(true, Ordering::Relaxed);
            state.chunks = Vec::new();
            state.values = Vec::new();
            return Err(error);
        }
        // Every chunk is complete, so every chunk is joined.
        debug_assert_eq!(state.joined, state.chunks.len());
        Ok(std::mem::take(&mut state.values))
    }

    pub(crate) fn cancel(&self) {
        self.cancelled.store(true, Ordering::Relaxed);
    }
}

impl<R: DeserializeOwned + Send + 'static> ReplySink for MapResults<R> {
    fn deliver(
        &self,
        chunk: usize,
        _first: usize,
        items: EncodedItems<'_>,
        last: bool,
        origin: Origin,
    ) {
        // Decode before taking the lock (the caller may be waiting on it), onto the chunk's
        // vector taken out of the state meanwhile: only the manager thread delivers.
        let joining = {
            let mut guard = lock(&self.state);
            let state = &mut *guard;
            if state.error.is_some() {
                return;
            }
            if chunk == state.joined {
                if state.values.capacity() == 0 {
                    // Room for every value at once (if it cannot be had, the vector grows
                    // as the values come: the manager thread must not panic on it).
                    let _ = state.values.try_reserve_exact(self.len);
                }
                Some(std::mem::take(&mut state.values))
            } else {
                None
            }
        };
        let joined = joining.is_some();
        let mut values = match joining {
            Some(values) => values,
            None => std::mem::take(&mut lock(&self.state).chunks[chunk]),
        };
        // Where this chunk's values start in `values`.
        let start = if joined { chunk * self.chunksize } else { 0 };
        let mut error = None;
        protocol::decode_items_into::<R>(items, origin, &mut values, &mut error);
        let expected = self.chunk_len(chunk);
        values.truncate(start + expected);
        let count = values.len().saturating_sub(start);
        let mut guard = lock(&self.state);
        let state = &mut *guard;
        if joined {
            state.values = values;
        } else {
            state.chunks[chunk] = values;
        }
        if state.error.is_some() {
            return;
        }
        if let Some(error) = error {
            state.error = Some(error);
            let woken = state.waiter.notify(&self.changed);
            drop(guard);
            woken.wake();
            return;
        }
        if last {
            if count != expected {
                state.error = Some(missing_item(origin.task, count));
            }
            state.chunks_left -= 1;
            state.complete[chunk] = true;
            // Join this chunk and those after it that completed before their turn.
            while state.complete.get(state.joined) == Some(&true) {
                state.joined += 1;
                // The next chunk's values so far (all of them if it is complete); the rest
                // will be decoded straight onto the joined values.
                if let Some(next) = state.chunks.get_mut(state.joined) {
                    let next = std::mem::take(next);
                    state.values.extend(next);
                }
            }
        }
        if state.is_complete() {
            let woken = state.waiter.notify(&self.changed);
            drop(guard);
            woken.wake();
        }
    }

    fn fail(&self, _chunk: usize, error: TaskError) {
        let mut state = lock(&self.state);
        state.error.get_or_insert(error);
        let woken = state.waiter.notify(&self.changed);
        drop(state);
        woken.wake();
    }

    fn is_cancelled(&self) -> bool {
        self.cancelled.load(Ordering::Relaxed)
    }
}

impl<R> MapResults<R> {
    /// Whether every value is in, or an error: what `wait` waits for.
    pub(crate) fn is_complete(&self) -> bool {
        lock(&self.state).is_complete()
    }

    /// `Ready` once [`is_complete`](MapResults::is_complete); else keeps `waker` to wake
    /// when it is, checked and kept under one lock so that no completion is missed.
    pub(crate) fn poll_complete(&self, waker: &Waker) -> Poll<()> {
        let mut state = lock(&self.state);
        if state.is_complete() {
            return Poll::Ready(());
        }
        state.waiter.register(waker);
        Poll::Pending
    }

    /// The `MapResult` reading this sink is gone: nobody awaits it any more.
    pub(crate) fn forget_waker(&self) {
        lock(&self.state).waiter.clear();
    }

    /// Waits, until `deadline` at most, for every value or the first error, without taking
    /// them; true if they are there.
    pub(crate) fn wait_complete(&self, deadline: Option<Instant>) -> bool {
        let mut state = lock(&self.state);
        while !state.is_complete() {
            match deadline {
                Some(deadline) if Instant::now() >= deadline => return false,
                Some(deadline) => state = wait_until(&self.changed, state, deadline),
                None => state = wait(&self.changed, state),
            }
        }
        true
    }
}

impl<R: DeserializeOwned + Send + 'static> Collect for MapResults<R> {
    type Output = Vec<R>;

    fn is_complete(&self) -> bool {
        MapResults::is_complete(self)
    }

    fn cancel_rest(&self) {
        self.cancel();
    }

    fn take_outcome(&self) -> Result<Vec<R>, TaskError> {
        self.wait()
    }
}
