//! `imap` and `imap_unordered`: lazy maps with a bounded window of tasks in flight.

use std::collections::VecDeque;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, Waker, ready};

use futures_core::Stream;
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::bound::TaskCall;
use crate::error::TaskError;
use crate::manager::Task;
use crate::pool::Pool;
use crate::results::{Next, Reply, StreamResults, WindowState};
use crate::task_frame::FrameRecycler;

/// The most chunks in flight per worker.
const CHUNKS_PER_WORKER: usize = 512;
/// Chunks submitted in one go (one lock, one wake of the manager).
const SUBMIT_BATCH: usize = 256;
/// About this many encoded bytes of results may be in flight or waiting to be consumed: the
/// window shrinks for large results.
const HELD_BYTES_LIMIT: usize = 16 << 20;
/// About this much of the parent's memory may go to the chunks in flight beyond their
/// results' encoded bytes: their task frames and their items once decoded (an item is a
/// `Result<R, TaskError>` of fixed size until handed out). Enough chunks to keep the workers
/// busy, few enough that an imap of small items raises the parent's memory by about a MiB.
const IN_FLIGHT_BYTES: usize = 256 << 10;
/// Chunks in flight before the size of a chunk's results is known.
const FIRST_WINDOW: usize = 16;

/// The iterator [`Pool::imap`] and [`Pool::imap_unordered`] return: yields one
/// `Result<R, TaskError>` per input item.
///
/// It pulls items from the input only as results are consumed, keeping at most a few hundred
/// chunks per worker in flight, so an endless or huge input runs in flat memory. Dropping it
/// early drops the tasks not yet sent; those running finish and their values are discarded.
///
/// # As a stream
///
/// An `Imap` is also a [`futures_core::Stream`] of the same outcomes, in the same order, for
/// any executor: where the iterator would block, `poll_next` returns `Pending` and the pool's
/// manager thread wakes the task when the next result arrives (no thread per waiter, no
/// reactor). The input is pulled, and chunks encoded, on the thread that polls.
///
/// ```
/// use std::future::poll_fn;
/// use std::pin::Pin;
///
/// use futures_core::Stream;
/// use proc_pool::{Pool, TaskError};
///
/// fn square(x: u64) -> u64 {
///     x * x
/// }
///
/// async fn total(pool: &Pool) -> Result<u64, TaskError> {
///     let mut squares = pool.imap_unordered(square, 0..1000);
///     let mut total = 0;
///     // `StreamExt::next(&mut squares).await` with the `futures` crate.
///     while let Some(value) = poll_fn(|cx| Pin::new(&mut squares).poll_next(cx)).await {
///         total += value?;
///     }
///     Ok(total)
/// }
///
/// let pool = Pool::new(2)?;
/// let runtime = tokio::runtime::Builder::new_current_thread().build()?;
/// assert_eq!(runtime.block_on(total(&pool))?, 332_833_500);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
///
/// Being both an `Iterator` and a `Stream`, with `futures::StreamExt` (or `tokio_stream`'s)
/// in scope `squares.next()` is ambiguous: write `StreamExt::next(&mut squares)`.
pub struct Imap<'pool, I, R> {
    pool: &'pool Pool,
    call: TaskCall,
    input: I,
    input_done: bool,
    chunksize: Option<usize>,
    results: Arc<StreamResults<R>>,
    /// Chunks submitted so far (the next chunk's number).
    submitted: usize,
    /// Ordered: the chunk whose items come next.
    cursor: usize,
    /// The most chunks in flight.
    window: usize,
    /// The encoded length of the last task frame (what a chunk in flight holds here).
    frame_len: usize,
    /// Large frames are encoded into the memory of earlier ones (see `task_frame`).
    frames: Arc<FrameRecycler>,
    /// Items taken from the results under one lock, handed out one by one.
    ready: VecDeque<Result<R, TaskError>>,
}

impl<I, R> std::fmt::Debug for Imap<'_, I, R> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Imap")
            .field("submitted_chunks", &self.submitted)
            .field("input_done", &self.input_done)
            .field("chunksize", &self.chunksize)
            .finish_non_exhaustive()
    }
}

// The items are encoded as they are (an `A` or an `&A`, which encode alike); that they fit
// the task's argument type is checked by `Pool::imap`, which made the `TaskFn`.
impl<'pool, I, R> Imap<'pool, I, R>
where
    I: Iterator,
    I::Item: Serialize,
    R: Serialize + DeserializeOwned + Send + 'static,
{
    pub(crate) fn new(pool: &'pool Pool, call: TaskCall, input: I, ordered: bool) -> Self {
        Imap {
            pool,
            call,
            input,
            input_done: false,
            chunksize: pool.default_chunksize(),
            results: StreamResults::new(ordered),
            submitted: 0,
            cursor: 0,
            window: pool.workers().saturating_mul(CHUNKS_PER_WORKER),
            frame_len: 0,
            frames: FrameRecycler::new(),
            ready: VecDeque::new(),
        }
    }

    /// Sends items in chunks of `chunksize` (0 is taken as 1): fewer, bigger frames. Takes
    /// effect for chunks not yet submitted, so set it before iterating.
    pub fn chunksize(mut self, chunksize: usize) -> Self {
        self.chunksize = Some(chunksize.max(1));
        self
    }

    /// How many chunks may be in flight, given what the results so far weigh.
    fn window(&self, state: WindowState) -> usize {
        let chunksize = self.chunksize.unwrap_or(1);
        // A chunk in flight holds its frame and, as its results arrive, its decoded items.
        let decoded = chunksize.saturating_mul(std::mem::size_of::<Result<R, TaskError>>());
        let by_memory = IN_FLIGHT_BYTES / decoded.saturating_add(self.frame_len).max(1);
        let window = match state.mean_chunk_bytes {
            // Until results show their size, a small window.
            None => FIRST_WINDOW.min(by_memory),
            Some(mean) => by_memory.min(HELD_BYTES_LIMIT / mean.max(1)),
        };
        // At least a chunk per worker, so none idles.
        window.clamp(self.pool.workers().min(self.window), self.window)
    }

    /// Submits chunks until the window is full or the input ends.
    fn refill(&mut self) {
        let chunksize = self.chunksize.unwrap_or(1);
        loop {
            let state = self.results.window_state();
            let window = self.window(state);
            let outstanding = self.submitted - state.handed_out;
            if self.input_done || outstanding >= window || state.held_bytes >= HELD_BYTES_LIMIT {
                return;
            }
            let room = (window - outstanding).min(SUBMIT_BATCH);
            let mut tasks = Vec::with_capacity(room);
            for _ in 0..room {
                let items: Vec<I::Item> = self.input.by_ref().take(chunksize).collect();
                if items.is_empty() {
                    self.input_done = true;
                    break;
                }
                let chunk = self.submitted;
                self.submitted += 1;
                self.results.expect(chunk, items.len());
                let id = self.pool.next_task_id();
                let mut reply = Reply::new(self.results.clone(), chunk);
                match self.pool.encode(&self.call, id, &items, Some(&self.frames)) {
                    Ok(frame) => {
                        self.frame_len = frame.len();
                        let task = Task::new(id, frame, reply, items.len());
                        tasks.push(task.with_bound(self.call.bound.clone()));
                    }
                    // This chunk's items come out as that error, in their place.
                    Err(err) => reply.fail(err),
                }
            }
            if self.pool.submit(tasks).is_err() {
                // The refused chunks failed with the reason; the input ends here.
                self.input_done = true;
            }
        }
    }

    /// The next outcome: the one state machine behind both [`Iterator::next`] (no `waker`:
    /// blocks, never `Pending`) and [`Stream::poll_next`] (keeps `waker` and returns
    /// `Pending` when no outcome is there yet).
    fn poll_item(&mut self, waker: Option<&Waker>) -> Poll<Option<Result<R, TaskError>>> {
        loop {
            if let Some(item) = self.ready.pop_front() {
                return Poll::Ready(Some(item));
            }
            // Taken in batches: the window is looked at, and the lock taken, once per batch.
            self.refill();
            let next = self
                .results
                .take(&mut self.cursor, self.submitted, waker, &mut self.ready);
            if let Next::Empty = ready!(next) {
                if self.input_done {
                    return Poll::Ready(None);
                }
            }
        }
    }
}

impl<I, R> Iterator for Imap<'_, I, R>
where
    I: Iterator,
    I::Item: Serialize,
    R: Serialize + DeserializeOwned + Send + 'static,
{
    type Item = Result<R, TaskError>;

    fn next(&mut self) -> Option<Self::Item> {
        // Without a waker `poll_item` blocks until it is `Ready`: this loop runs once.
        loop {
            if let Poll::Ready(item) = self.poll_item(None) {
                return item;
            }
        }
    }
}

/// `Imap` as an async stream, for any executor: `poll_next` submits chunks and pulls the
/// input (on the polling thread, as `next` does), then returns an outcome if one is there, or
/// keeps the task's waker, which the pool's manager thread wakes when the next result
/// arrives: no thread waits, nothing is registered with a reactor. Same outcomes, same order,
/// same window and same end (`None` for ever once the input is exhausted and every outcome
/// was handed out) as the [`Iterator`].
impl<I, R> Stream for Imap<'_, I, R>
where
    I: Iterator,
    I::Item: Serialize,
    R: Serialize + DeserializeOwned + Send + 'static,
{
    type Item = Result<R, TaskError>;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        self.get_mut().poll_item(Some(cx.waker()))
    }
}

// Nothing of an `Imap` is pinned: `poll_next` only ever uses it through `&mut`, so it may
// move between polls whatever its input iterator is.
impl<I, R> Unpin for Imap<'_, I, R> {}

impl<I, R> Drop for Imap<'_, I, R> {
    fn drop(&mut self) {
        self.results.cancel();
    }
}
