//! The sink of one `map` or `map_async`: values collected per chunk, joined in order as the
//! chunks complete.

use std::collections::VecDeque;
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
///
/// Who decodes: the manager thread, as each part arrives; but for a blocking `map`
/// ([`MapResults::decoded_by_waiter`]), once a part of [`QUEUE_AT`] bytes or more arrives,
/// the manager only copies each part's bytes (into the buffer of a part already decoded) and
/// queues them, and the caller, who waits anyway, decodes them (`wait`, `settle_queued`).
/// The manager reads every worker's results in turn: decoding large values there (new memory
/// for each, faulted in page by page) held every worker up, and a `map` of 1 MiB items
/// spent most of the manager's time in it. From the first queued part on, every part is
/// queued, so that one thread at a time settles parts, in the order they arrived.
pub(crate) struct MapResults<R> {
    state: Mutex<MapState<R>>,
    changed: Condvar,
    cancelled: AtomicBool,
    len: usize,
    chunksize: usize,
    /// A caller waits in `wait` and decodes queued parts (see above).
    waiter_decodes: bool,
    /// The manager has started queueing parts: until then `settle_queued`, which a `map`
    /// calls before every chunk it submits, has nothing to do and takes no lock.
    queueing: AtomicBool,
}

/// A part of at least this many bytes starts the queueing of parts for the waiter.
const QUEUE_AT: usize = 1 << 20;
/// Buffers of decoded parts kept for the next copies.
const SPARE_PARTS: usize = 2;

/// A part the manager delivered and the waiter has yet to decode: `deliver`'s arguments,
/// with a copy of the bytes.
struct QueuedPart {
    chunk: usize,
    bytes: Vec<u8>,
    values_only: bool,
    count: usize,
    last: bool,
    origin: Origin,
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
    /// Parts delivered and not yet decoded, oldest first (only when the waiter decodes).
    queued: VecDeque<QueuedPart>,
    /// The buffers of parts already decoded, for the next copies.
    spare: Vec<Vec<u8>>,
}

impl<R> MapState<R> {
    /// Every value is in, or an error: what the waiters wait for. Once true, stays true.
    fn is_complete(&self) -> bool {
        self.chunks_left == 0 || self.error.is_some()
    }
}

impl<R: DeserializeOwned + Send + 'static> MapResults<R> {
    /// The sink of a `map_async`: the manager decodes every part.
    pub(crate) fn new(len: usize, chunksize: usize) -> Arc<MapResults<R>> {
        MapResults::with_decoder(len, chunksize, false)
    }

    /// The sink of a blocking `map`, whose caller waits in [`wait`](MapResults::wait) and
    /// decodes large results there (see the type's docs). Only `wait` takes its values.
    pub(crate) fn decoded_by_waiter(len: usize, chunksize: usize) -> Arc<MapResults<R>> {
        MapResults::with_decoder(len, chunksize, true)
    }

    fn with_decoder(len: usize, chunksize: usize, waiter_decodes: bool) -> Arc<MapResults<R>> {
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
                queued: VecDeque::new(),
                spare: Vec::new(),
            }),
            changed: Condvar::new(),
            cancelled: AtomicBool::new(false),
            len,
            chunksize,
            waiter_decodes,
            queueing: AtomicBool::new(false),
        })
    }

    fn chunk_len(&self, chunk: usize) -> usize {
        self.chunksize.min(self.len - chunk * self.chunksize)
    }

    /// Waits until every value is in, or the first error, decoding the parts queued for it
    /// meanwhile.
    pub(crate) fn wait(&self) -> Result<Vec<R>, TaskError> {
        let mut state = lock(&self.state);
        loop {
            if state.error.is_some() {
                break;
            }
            if let Some(part) = state.queued.pop_front() {
                drop(state);
                self.settle_part(part);
                state = lock(&self.state);
                continue;
            }
            if state.is_complete() {
                break;
            }
            state = wait(&self.changed, state);
        }
        if let Some(error) = state.error.clone() {
            // Fail fast, like Python: tasks not yet sent are dropped, running ones discarded
            // (the error stays, so later results are not even decoded).
            self.cancelled.store(true, Ordering::Relaxed);
            state.chunks = Vec::new();
            state.values = Vec::new();
            state.queued = VecDeque::new();
            return Err(error);
        }
        // Every chunk is complete, so every chunk is joined.
        debug_assert_eq!(state.joined, state.chunks.len());
        Ok(std::mem::take(&mut state.values))
    }

    pub(crate) fn cancel(&self) {
        self.cancelled.store(true, Ordering::Relaxed);
    }

    /// Decodes the parts queued so far (for a caller with something else to wait for).
    pub(crate) fn settle_queued(&self) {
        if !self.queueing.load(Ordering::Acquire) {
            return;
        }
        loop {
            let Some(part) = lock(&self.state).queued.pop_front() else {
                return;
            };
            self.settle_part(part);
        }
    }

    fn settle_part(&self, part: QueuedPart) {
        let items = EncodedItems {
            bytes: &part.bytes,
            values_only: part.values_only,
            count: part.count,
        };
        self.settle(part.chunk, items, part.last, part.origin);
        let mut state = lock(&self.state);
        if state.spare.len() < SPARE_PARTS {
            state.spare.push(part.bytes);
        }
    }

    /// Queues a copy of a delivered part for the waiter, if the waiter decodes and this part
    /// starts or continues the queueing; false if the part is to be settled here.
    fn queue(&self, chunk: usize, items: EncodedItems<'_>, last: bool, origin: Origin) -> bool {
        if !self.waiter_decodes {
            return false;
        }
        // Only the manager thread delivers, so only it reads and sets the flag here; the
        // waiter's reads are hints (`wait` looks at the queue itself).
        if !self.queueing.load(Ordering::Relaxed) {
            if items.bytes.len() < QUEUE_AT {
                return false;
            }
            self.queueing.store(true, Ordering::Release);
        }
        let mut state = lock(&self.state);
        if state.error.is_some() {
            // As `settle` would: nothing more is decoded after an error.
            return true;
        }
        let mut bytes = state.spare.pop().unwrap_or_default();
        drop(state);
        bytes.clear();
        bytes.extend_from_slice(items.bytes);
        let part = QueuedPart {
            chunk,
            bytes,
            values_only: items.values_only,
            count: items.count,
            last,
            origin,
        };
        let mut state = lock(&self.state);
        state.queued.push_back(part);
        let woken = state.waiter.notify(&self.changed);
        drop(state);
        woken.wake();
        true
    }

    /// Decodes one part and joins it: what `deliver` does, in the manager thread or, for
    /// queued parts, in the waiter (one thread at a time: see the type's docs).
    fn settle(&self, chunk: usize, items: EncodedItems<'_>, last: bool, origin: Origin) {
        // Decode before taking the lock (the caller may be waiting on it), onto the chunk's
        // vector taken out of the state meanwhile: one thread at a time settles.
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
        if !self.queue(chunk, items, last, origin) {
            self.settle(chunk, items, last, origin);
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
        debug_assert!(!self.waiter_decodes, "a blocking map's sink is polled");
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
        // Nothing here decodes queued parts: only `wait` may wait on a blocking map's sink.
        debug_assert!(!self.waiter_decodes, "a blocking map's sink is waited on");
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
