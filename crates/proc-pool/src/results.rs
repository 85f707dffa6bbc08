//! Where results go: the pool's manager thread hands each result frame to the *sink* of the
//! call that submitted the task (one [`AsyncResult`], a `map`, an `imap`), which decodes the
//! values with the types it knows and wakes whoever waits.
//!
//! Every task carries a [`Reply`], and a `Reply` that is dropped before it was answered fails
//! its items with `PoolTerminated`. So whatever path a task takes (a value, a worker death, a
//! timeout, terminate, even a panic in the manager), its waiter always hears back.

use std::collections::{HashMap, VecDeque};
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::task::{Context, Poll, Waker};
use std::time::{Duration, Instant};

use proc_core::codec::CodecError;
use serde::de::DeserializeOwned;

use crate::callbacks::Collect;
use crate::error::TaskError;
use crate::locking::{lock, wait, wait_until};
use crate::protocol::{self, EncodedItems, Origin};
use crate::waiter::Waiter;

/// What the manager needs from a result destination.
pub(crate) trait ReplySink: Send + Sync {
    /// Items `first_item..` of chunk `chunk` arrived, encoded back to back in `items`; `last`
    /// when the chunk is complete.
    fn deliver(
        &self,
        chunk: usize,
        first_item: usize,
        items: EncodedItems<'_>,
        last: bool,
        origin: Origin,
    );
    /// Every item of chunk `chunk` not delivered yet failed with `error`.
    fn fail(&self, chunk: usize, error: TaskError);
    /// The next item of chunk `chunk` not delivered yet failed with `error`; the items after
    /// it will still be delivered. (A sink that fails whole on the first error, like `map`'s,
    /// needs nothing more than `fail`.)
    fn fail_one(&self, chunk: usize, error: TaskError) {
        self.fail(chunk, error);
    }
    /// Nobody wants the results any more: queued tasks may be dropped unsent.
    fn is_cancelled(&self) -> bool {
        false
    }
}

/// The answer owed for one chunk.
pub(crate) struct Reply {
    sink: Arc<dyn ReplySink>,
    chunk: usize,
    settled: bool,
}

impl std::fmt::Debug for Reply {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Reply")
            .field("chunk", &self.chunk)
            .field("settled", &self.settled)
            .finish_non_exhaustive()
    }
}

impl Reply {
    pub(crate) fn new(sink: Arc<dyn ReplySink>, chunk: usize) -> Reply {
        Reply {
            sink,
            chunk,
            settled: false,
        }
    }

    pub(crate) fn deliver(
        &mut self,
        first_item: usize,
        items: EncodedItems<'_>,
        last: bool,
        origin: Origin,
    ) {
        self.sink
            .deliver(self.chunk, first_item, items, last, origin);
        self.settled |= last;
    }

    pub(crate) fn fail(&mut self, error: TaskError) {
        if !self.settled {
            self.settled = true;
            self.sink.fail(self.chunk, error);
        }
    }

    /// Fails the chunk's next undelivered item only: the rest of the chunk runs again.
    pub(crate) fn fail_one(&mut self, error: TaskError) {
        if !self.settled {
            self.sink.fail_one(self.chunk, error);
        }
    }

    pub(crate) fn is_cancelled(&self) -> bool {
        self.sink.is_cancelled()
    }
}

impl Drop for Reply {
    fn drop(&mut self) {
        self.fail(TaskError::PoolTerminated);
    }
}

/// The error for items a complete chunk did not contain (a worker and its parent disagreeing
/// on the protocol; not expected).
fn missing_item(task: u64, index: usize) -> TaskError {
    TaskError::codec(
        Some(task),
        CodecError::Decode {
            type_name: "result frame",
            len: 0,
            message: format!("the chunk's results ended before item {index}"),
        },
    )
}

// ---------------------------------------------------------------------------------------------
// apply_async

/// The sink of one `apply_async` task.
pub(crate) struct OneSlot<R> {
    state: Mutex<SlotState<R>>,
    ready: Condvar,
}

struct SlotState<R> {
    value: Option<Result<R, TaskError>>,
    done: bool,
    /// The task awaiting the `AsyncResult`, if it was polled before the outcome was in.
    waiter: Waiter,
}

impl<R> SlotState<R> {
    fn new() -> SlotState<R> {
        SlotState {
            value: None,
            done: false,
            waiter: Waiter::default(),
        }
    }
}

impl<R: DeserializeOwned + Send> ReplySink for OneSlot<R> {
    fn deliver(
        &self,
        _chunk: usize,
        _first: usize,
        items: EncodedItems<'_>,
        last: bool,
        origin: Origin,
    ) {
        let mut state = lock(&self.state);
        protocol::decode_items::<R>(items, origin, |item| {
            state.value.get_or_insert(item);
        });
        if last {
            state
                .value
                .get_or_insert_with(|| Err(missing_item(origin.task, 0)));
            state.done = true;
            let woken = state.waiter.notify(&self.ready);
            drop(state);
            woken.wake();
        }
    }

    fn fail(&self, _chunk: usize, error: TaskError) {
        self.set(Err(error));
    }
}

/// The value of a task submitted with [`Pool::apply_async`](crate::Pool::apply_async), once
/// it is there: Python's `AsyncResult`.
///
/// The task runs whether or not anybody waits for it; dropping the `AsyncResult` (awaited
/// or not, polled or not) only discards the value: it does not cancel the task.
///
/// # Awaiting
///
/// An `AsyncResult` is also a [`Future`] of what [`get`](AsyncResult::get) returns, on any
/// executor: the pool's own manager thread (or its callback thread, after the task's
/// callbacks ran) wakes the task that awaits, so no thread is started per waiter and nothing
/// is registered with an I/O reactor. Awaited again after it gave its outcome, it gives
/// [`TaskError::AlreadyTaken`].
///
/// ```
/// use proc_pool::{Pool, TaskError};
///
/// fn square(x: u64) -> u64 {
///     x * x
/// }
///
/// async fn sum_of_squares(pool: &Pool) -> Result<u64, TaskError> {
///     let pending = (1..=3)
///         .map(|x| pool.apply_async(square, x))
///         .collect::<Result<Vec<_>, _>>()?;
///     let mut total = 0;
///     for value in pending {
///         total += value.await?; // the three tasks run at once
///     }
///     Ok(total)
/// }
///
/// let pool = Pool::new(2)?;
/// // Any executor will do; here tokio's, without threads of its own.
/// let runtime = tokio::runtime::Builder::new_current_thread().build()?;
/// assert_eq!(runtime.block_on(sum_of_squares(&pool))?, 14);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub struct AsyncResult<R> {
    slot: Arc<OneSlot<R>>,
    task: u64,
}

impl<R> std::fmt::Debug for AsyncResult<R> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AsyncResult")
            .field("task", &self.task)
            .finish_non_exhaustive()
    }
}

impl<R: DeserializeOwned + Send + 'static> AsyncResult<R> {
    /// A new empty slot, and the reply the task carries to fill it.
    pub(crate) fn new(task: u64) -> (AsyncResult<R>, Reply) {
        let slot = OneSlot::empty();
        let reply = Reply::new(slot.clone(), 0);
        (AsyncResult { slot, task }, reply)
    }
}

impl<R> AsyncResult<R> {
    /// The task's number, as errors name it.
    pub fn task(&self) -> u64 {
        self.task
    }

    /// Whether the task has finished (with a value or an error).
    pub fn ready(&self) -> bool {
        lock(&self.slot.state).done
    }

    /// Waits until the task has finished.
    pub fn wait(&self) {
        let mut state = lock(&self.slot.state);
        while !state.done {
            state = wait(&self.slot.ready, state);
        }
    }

    /// Waits at most `timeout` for the task; true if it has finished.
    pub fn wait_timeout(&self, timeout: Duration) -> bool {
        let deadline = Instant::now().checked_add(timeout);
        let mut state = lock(&self.slot.state);
        while !state.done {
            match deadline {
                Some(deadline) if Instant::now() >= deadline => return false,
                Some(deadline) => state = wait_until(&self.slot.ready, state, deadline),
                None => state = wait(&self.slot.ready, state),
            }
        }
        true
    }

    /// Waits for the task and returns its value, or why there is none.
    pub fn get(self) -> Result<R, TaskError> {
        self.wait();
        self.take()
    }

    /// Waits at most `timeout`: the value once the task has finished, else
    /// [`TaskError::NotReady`] (the task goes on; call again). Once the value has been
    /// returned, later calls give [`TaskError::AlreadyTaken`].
    pub fn get_timeout(&self, timeout: Duration) -> Result<R, TaskError> {
        if self.wait_timeout(timeout) {
            self.take()
        } else {
            Err(TaskError::NotReady { waited: timeout })
        }
    }

    fn take(&self) -> Result<R, TaskError> {
        lock(&self.slot.state)
            .value
            .take()
            .unwrap_or(Err(TaskError::AlreadyTaken))
    }
}

/// Awaiting an `AsyncResult` gives what [`get`](AsyncResult::get) gives, without blocking a
/// thread: the task that polled is woken by whatever finishes the task (its value, its error,
/// the pool's termination, or, for a task with [`Callbacks`](crate::Callbacks), the callback
/// thread once the callback has run). Polled again after it returned `Ready`, it returns
/// `Ready(Err(`[`TaskError::AlreadyTaken`]`))`, as `get_timeout` does after the value was
/// taken; it never panics.
impl<R> Future for AsyncResult<R> {
    type Output = Result<R, TaskError>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let mut state = lock(&self.slot.state);
        if !state.done {
            state.waiter.register(cx.waker());
            return Poll::Pending;
        }
        Poll::Ready(state.value.take().unwrap_or(Err(TaskError::AlreadyTaken)))
    }
}

impl<R> Drop for AsyncResult<R> {
    fn drop(&mut self) {
        // The task runs on; its completion need not wake a task that stopped waiting (nor
        // keep that task's waker alive until then).
        lock(&self.slot.state).waiter.clear();
    }
}

// ---------------------------------------------------------------------------------------------
// map

/// The sink of one `map`: each chunk's values collect in a vector of their own, joined in
/// chunk order at the end. (A chunk that comes back whole is one decoded vector, moved in.)
pub(crate) struct MapResults<R> {
    state: Mutex<MapState<R>>,
    changed: Condvar,
    cancelled: AtomicBool,
    len: usize,
    chunksize: usize,
}

struct MapState<R> {
    chunks: Vec<Vec<R>>,
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
                chunks: (0..chunks).map(|_| Vec::new()).collect(),
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
            return Err(error);
        }
        let mut chunks = std::mem::take(&mut state.chunks);
        drop(state);
        if chunks.len() == 1 {
            return Ok(chunks.pop().unwrap_or_default());
        }
        let mut values = Vec::with_capacity(self.len);
        for chunk in chunks {
            values.extend(chunk);
        }
        Ok(values)
    }

    pub(crate) fn cancel(&self) {
        self.cancelled.store(true, Ordering::Relaxed);
    }
}

impl<R: DeserializeOwned + Send> ReplySink for MapResults<R> {
    fn deliver(
        &self,
        chunk: usize,
        _first: usize,
        items: EncodedItems<'_>,
        last: bool,
        origin: Origin,
    ) {
        // Decode before taking the lock: the caller may be waiting on it.
        let mut decoded = Vec::new();
        let mut error = None;
        protocol::decode_items_into::<R>(items, origin, &mut decoded, &mut error);
        let mut guard = lock(&self.state);
        let state = &mut *guard;
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
        let expected = self.chunk_len(chunk);
        let values = &mut state.chunks[chunk];
        if values.is_empty() {
            *values = decoded;
        } else {
            values.append(&mut decoded);
        }
        values.truncate(expected);
        if last {
            if values.len() != expected {
                state.error = Some(missing_item(origin.task, values.len()));
            }
            state.chunks_left -= 1;
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

// ---------------------------------------------------------------------------------------------
// imap and imap_unordered

/// The sink of one `imap` (ordered: items come out per chunk, in chunk order) or
/// `imap_unordered` (items come out as they arrive).
pub(crate) struct StreamResults<R> {
    state: Mutex<StreamState<R>>,
    changed: Condvar,
    cancelled: AtomicBool,
    ordered: bool,
}

struct StreamState<R> {
    /// Chunks submitted and not yet handed out whole.
    chunks: HashMap<usize, ChunkItems<R>>,
    /// Unordered: items that arrived and were not handed out yet, with their chunk.
    arrived: VecDeque<(usize, Result<R, TaskError>)>,
    /// Chunks whose every item was handed out.
    handed_out: usize,
    /// Encoded bytes of the results held here (arrived, chunk not yet handed out whole).
    held_bytes: usize,
    /// Encoded bytes of every result that arrived, and how many chunks they completed.
    total_bytes: usize,
    total_chunks: usize,
    /// The task polling the `Imap` as a stream, if it found nothing at its last poll.
    waiter: Waiter,
}

struct ChunkItems<R> {
    len: usize,
    /// Items arrived (or failed).
    delivered: usize,
    /// Items handed out.
    handed: usize,
    /// Ordered: items arrived and not yet handed out.
    items: VecDeque<Result<R, TaskError>>,
    /// Encoded bytes of its results that arrived.
    bytes: usize,
}

/// What [`StreamResults::next`] found.
pub(crate) enum Next<R> {
    Item(Result<R, TaskError>),
    /// Ordered: the chunk at the cursor was handed out whole; move the cursor on.
    ChunkDone,
    /// Every submitted chunk has been handed out.
    Empty,
}

impl<R> StreamResults<R> {
    /// Nobody wants the results any more (the `Imap` was dropped): queued tasks may be
    /// dropped unsent, and no task is to be woken.
    pub(crate) fn cancel(&self) {
        self.cancelled.store(true, Ordering::Relaxed);
        lock(&self.state).waiter.clear();
    }
}

impl<R: DeserializeOwned + Send> StreamResults<R> {
    pub(crate) fn new(ordered: bool) -> Arc<StreamResults<R>> {
        Arc::new(StreamResults {
            state: Mutex::new(StreamState {
                chunks: HashMap::new(),
                arrived: VecDeque::new(),
                handed_out: 0,
                held_bytes: 0,
                total_bytes: 0,
                total_chunks: 0,
                waiter: Waiter::default(),
            }),
            changed: Condvar::new(),
            cancelled: AtomicBool::new(false),
            ordered,
        })
    }

    /// Called before chunk `chunk` of `len` items is submitted.
    pub(crate) fn expect(&self, chunk: usize, len: usize) {
        lock(&self.state).chunks.insert(
            chunk,
            ChunkItems {
                len,
                delivered: 0,
                handed: 0,
                items: VecDeque::new(),
                bytes: 0,
            },
        );
    }

    /// Encoded bytes of the results that arrived and wait to be handed out, and the mean
    /// encoded size of a chunk's results so far (`None` before the first chunk completed).
    pub(crate) fn held_bytes(&self) -> (usize, Option<usize>) {
        let state = lock(&self.state);
        let mean = (state.total_chunks > 0).then(|| state.total_bytes / state.total_chunks);
        (state.held_bytes, mean)
    }

    /// Chunks whose every item was handed out: the rest are outstanding.
    pub(crate) fn handed_out_chunks(&self) -> usize {
        lock(&self.state).handed_out
    }

    /// The next item, given the ordered cursor and how many chunks were submitted. When none
    /// is there yet: with no `waker`, blocks until one arrives (`Imap` as an `Iterator`),
    /// never returning `Pending`; with a `waker`, keeps it to wake on the next arrival and
    /// returns `Pending` (`Imap` as a `Stream`). Both read the state through
    /// [`take_next`](StreamResults::take_next).
    pub(crate) fn next(
        &self,
        cursor: usize,
        submitted: usize,
        waker: Option<&Waker>,
    ) -> Poll<Next<R>> {
        let mut guard = lock(&self.state);
        loop {
            if let Some(next) = self.take_next(&mut guard, cursor, submitted) {
                return Poll::Ready(next);
            }
            match waker {
                // Checked and kept under one lock: an arrival after the check wakes it.
                Some(waker) => {
                    guard.waiter.register(waker);
                    return Poll::Pending;
                }
                None => guard = wait(&self.changed, guard),
            }
        }
    }

    /// The next item if one is there, or `None` to wait for one.
    fn take_next(
        &self,
        state: &mut StreamState<R>,
        cursor: usize,
        submitted: usize,
    ) -> Option<Next<R>> {
        if self.ordered {
            if let Some(chunk) = state.chunks.get_mut(&cursor) {
                if let Some(item) = chunk.items.pop_front() {
                    chunk.handed += 1;
                    return Some(Next::Item(item));
                }
                if chunk.handed == chunk.len {
                    let bytes = chunk.bytes;
                    state.chunks.remove(&cursor);
                    state.handed_out += 1;
                    state.held_bytes -= bytes;
                    return Some(Next::ChunkDone);
                }
            } else if cursor >= submitted {
                return Some(Next::Empty);
            }
        } else {
            if let Some((chunk, item)) = state.arrived.pop_front() {
                if let Some(entry) = state.chunks.get_mut(&chunk) {
                    entry.handed += 1;
                    if entry.handed == entry.len {
                        let bytes = entry.bytes;
                        state.chunks.remove(&chunk);
                        state.handed_out += 1;
                        state.held_bytes -= bytes;
                    }
                }
                return Some(Next::Item(item));
            }
            if state.handed_out >= submitted {
                return Some(Next::Empty);
            }
        }
        None
    }

    /// Adds arrived items of `chunk`, at most the chunk's length in all.
    fn push(&self, state: &mut StreamState<R>, chunk: usize, items: Vec<Result<R, TaskError>>) {
        let Some(entry) = state.chunks.get_mut(&chunk) else {
            return;
        };
        let room = entry.len - entry.delivered;
        for item in items.into_iter().take(room) {
            if self.ordered {
                entry.items.push_back(item);
            } else {
                state.arrived.push_back((chunk, item));
            }
            entry.delivered += 1;
        }
    }

    /// Fails the chunk's items that have not arrived.
    fn finish_chunk(
        &self,
        state: &mut StreamState<R>,
        chunk: usize,
        error: impl Fn(usize) -> TaskError,
    ) {
        let Some(entry) = state.chunks.get(&chunk) else {
            return;
        };
        let missing: Vec<_> = (entry.delivered..entry.len)
            .map(|i| Err(error(i)))
            .collect();
        self.push(state, chunk, missing);
    }
}

impl<R: DeserializeOwned + Send> ReplySink for StreamResults<R> {
    fn deliver(
        &self,
        chunk: usize,
        _first: usize,
        items: EncodedItems<'_>,
        last: bool,
        origin: Origin,
    ) {
        let mut decoded = Vec::new();
        protocol::decode_items::<R>(items, origin, |item| decoded.push(item));
        let mut state = lock(&self.state);
        if let Some(entry) = state.chunks.get_mut(&chunk) {
            entry.bytes += items.bytes.len();
            state.held_bytes += items.bytes.len();
        }
        state.total_bytes += items.bytes.len();
        state.total_chunks += usize::from(last);
        self.push(&mut state, chunk, decoded);
        if last {
            self.finish_chunk(&mut state, chunk, |index| missing_item(origin.task, index));
        }
        let woken = state.waiter.notify(&self.changed);
        drop(state);
        woken.wake();
    }

    fn fail(&self, chunk: usize, error: TaskError) {
        let mut state = lock(&self.state);
        self.finish_chunk(&mut state, chunk, |_| error.clone());
        let woken = state.waiter.notify(&self.changed);
        drop(state);
        woken.wake();
    }

    fn fail_one(&self, chunk: usize, error: TaskError) {
        let mut state = lock(&self.state);
        self.push(&mut state, chunk, vec![Err(error)]);
        let woken = state.waiter.notify(&self.changed);
        drop(state);
        woken.wake();
    }

    fn is_cancelled(&self) -> bool {
        self.cancelled.load(Ordering::Relaxed)
    }
}

// ---------------------------------------------------------------------------------------------
// Outcomes taken whole, for callbacks and `map_async`

impl<R> OneSlot<R> {
    /// An empty slot, not tied to a task: filled through [`SlotFill`], or used as the
    /// collecting sink of a task whose outcome goes through its callbacks first.
    pub(crate) fn empty() -> Arc<OneSlot<R>> {
        Arc::new(OneSlot {
            state: Mutex::new(SlotState::new()),
            ready: Condvar::new(),
        })
    }

    /// Puts `outcome` in the slot and wakes its waiters (blocked or awaiting), unless it is
    /// done already.
    fn set(&self, outcome: Result<R, TaskError>) {
        let mut state = lock(&self.state);
        if !state.done {
            state.value = Some(outcome);
            state.done = true;
            let woken = state.waiter.notify(&self.ready);
            drop(state);
            woken.wake();
        }
    }
}

impl<R> AsyncResult<R> {
    /// An `AsyncResult` that gets its outcome from the returned [`SlotFill`] rather than from
    /// a worker: what a task with callbacks returns, filled once its callbacks ran.
    pub(crate) fn filled_later(task: u64) -> (AsyncResult<R>, SlotFill<R>) {
        let slot = OneSlot::empty();
        let fill = SlotFill {
            slot: Some(slot.clone()),
        };
        (AsyncResult { slot, task }, fill)
    }
}

/// Fills an [`AsyncResult::filled_later`] once; if dropped unused (its callback thread is
/// gone), it fails it with `PoolTerminated`, so that no waiter waits for ever.
pub(crate) struct SlotFill<R> {
    slot: Option<Arc<OneSlot<R>>>,
}

impl<R> SlotFill<R> {
    /// Hands `outcome` to the `AsyncResult` and wakes its waiters.
    pub(crate) fn fill(mut self, outcome: Result<R, TaskError>) {
        if let Some(slot) = self.slot.take() {
            slot.set(outcome);
        }
    }
}

impl<R> Drop for SlotFill<R> {
    fn drop(&mut self) {
        if let Some(slot) = self.slot.take() {
            slot.set(Err(TaskError::PoolTerminated));
        }
    }
}

impl<R: DeserializeOwned + Send> Collect for OneSlot<R> {
    type Output = R;

    fn is_complete(&self) -> bool {
        lock(&self.state).done
    }

    fn take_outcome(&self) -> Result<R, TaskError> {
        lock(&self.state)
            .value
            .take()
            .unwrap_or(Err(TaskError::AlreadyTaken))
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

impl<R: DeserializeOwned + Send> Collect for MapResults<R> {
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
