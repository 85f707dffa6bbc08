//! `imap` and `imap_unordered`: lazy maps with a bounded window of tasks in flight.

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
use crate::results::{Next, Reply, StreamResults};

/// Chunks in flight per worker: enough to keep every worker's window full of small tasks.
const CHUNKS_PER_WORKER: usize = 512;
/// Chunks submitted in one go (one lock, one wake of the manager).
const SUBMIT_BATCH: usize = 256;
/// About this many encoded bytes of results may be in flight or waiting to be consumed: the
/// window shrinks for large results (it is at most [`CHUNKS_PER_WORKER`] per worker).
const HELD_BYTES_LIMIT: usize = 16 << 20;
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
    window: usize,
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
        }
    }

    /// Sends items in chunks of `chunksize` (0 is taken as 1): fewer, bigger frames. Takes
    /// effect for chunks not yet submitted, so set it before iterating.
    pub fn chunksize(mut self, chunksize: usize) -> Self {
        self.chunksize = Some(chunksize.max(1));
        self
    }

    fn outstanding(&self) -> usize {
        self.submitted - self.results.handed_out_chunks()
    }

    /// Submits chunks until the window is full or the input ends.
    fn refill(&mut self) {
        let chunksize = self.chunksize.unwrap_or(1);
        loop {
            // Until results show their size, a small window; then as many chunks as fit
            // the byte budget, up to the window.
            let (held, mean) = self.results.held_bytes();
            let window = match mean {
                None => FIRST_WINDOW,
                // At least a chunk per worker, so none idles; beyond that, the byte budget.
                Some(mean) => {
                    let least = self.pool.workers().min(self.window);
                    (HELD_BYTES_LIMIT / mean.max(1)).clamp(least, self.window)
                }
            };
            let outstanding = self.outstanding();
            if self.input_done || outstanding >= window || held >= HELD_BYTES_LIMIT {
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
                match self.pool.encode(&self.call, id, &items) {
                    Ok(frame) => {
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
            self.refill();
            match ready!(self.results.next(self.cursor, self.submitted, waker)) {
                Next::Item(item) => return Poll::Ready(Some(item)),
                Next::ChunkDone => self.cursor += 1,
                Next::Empty if self.input_done => return Poll::Ready(None),
                Next::Empty => {}
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
