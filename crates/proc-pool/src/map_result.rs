//! [`MapResult`], the handle [`Pool::map_async`](crate::Pool::map_async) returns.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::task::{Context, Poll, ready};
use std::time::{Duration, Instant};

use serde::de::DeserializeOwned;

use crate::error::TaskError;
use crate::results::{AsyncResult, MapResults};

/// The values of a [`Pool::map_async`](crate::Pool::map_async), once they are all there (or
/// its first error): Python's `MapResult`, with the methods of [`AsyncResult`].
///
/// The tasks run whether or not anybody waits for them; dropping the `MapResult` (awaited or
/// not) only discards the values (callbacks given with
/// [`map_async_with`](crate::Pool::map_async_with) still run).
///
/// Like [`AsyncResult`], it is a [`Future`] too, of what [`get`](MapResult::get) returns,
/// woken by the pool when the map is complete, on any executor:
///
/// ```
/// fn square(x: u64) -> u64 {
///     x * x
/// }
///
/// let pool = proc_pool::Pool::new(2)?;
/// let runtime = tokio::runtime::Builder::new_current_thread().build()?;
/// let values = runtime.block_on(async { pool.map_async(square, 1..=4)?.await })?;
/// assert_eq!(values, [1, 4, 9, 16]);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub struct MapResult<R> {
    source: Source<R>,
}

enum Source<R> {
    /// No callbacks: the values wait in the map's sink until taken.
    Collecting {
        results: Arc<MapResults<R>>,
        taken: AtomicBool,
    },
    /// Callbacks: the callback thread hands the outcome over once they have run.
    Called(AsyncResult<Vec<R>>),
}

impl<R> std::fmt::Debug for MapResult<R> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let callbacks = matches!(self.source, Source::Called(_));
        f.debug_struct("MapResult")
            .field("callbacks", &callbacks)
            .finish_non_exhaustive()
    }
}

impl<R: DeserializeOwned + Send + 'static> MapResult<R> {
    /// The handle of a `map_async` without callbacks, reading the map's sink.
    pub(crate) fn collecting(results: Arc<MapResults<R>>) -> MapResult<R> {
        MapResult {
            source: Source::Collecting {
                results,
                taken: AtomicBool::new(false),
            },
        }
    }

    /// The handle of a `map_async` with callbacks, filled after them.
    pub(crate) fn called(result: AsyncResult<Vec<R>>) -> MapResult<R> {
        MapResult {
            source: Source::Called(result),
        }
    }

    /// Whether the map has finished: every value is in, or an error (and its callback, if
    /// any, has run).
    pub fn ready(&self) -> bool {
        match &self.source {
            Source::Collecting { results, .. } => results.is_complete(),
            Source::Called(result) => result.ready(),
        }
    }

    /// Waits until the map has finished.
    pub fn wait(&self) {
        match &self.source {
            Source::Collecting { results, .. } => {
                results.wait_complete(None);
            }
            Source::Called(result) => result.wait(),
        }
    }

    /// Waits at most `timeout` for the map; true if it has finished.
    pub fn wait_timeout(&self, timeout: Duration) -> bool {
        match &self.source {
            Source::Collecting { results, .. } => {
                results.wait_complete(Instant::now().checked_add(timeout))
            }
            Source::Called(result) => result.wait_timeout(timeout),
        }
    }

    /// Waits for the map and returns the values in input order, or its first error.
    pub fn get(self) -> Result<Vec<R>, TaskError> {
        self.wait();
        self.take()
    }

    /// Waits at most `timeout`: the values once the map has finished, else
    /// [`TaskError::NotReady`] (the tasks go on; call again). Once the values (or the error)
    /// have been returned, later calls give [`TaskError::AlreadyTaken`].
    pub fn get_timeout(&self, timeout: Duration) -> Result<Vec<R>, TaskError> {
        if self.wait_timeout(timeout) {
            self.take()
        } else {
            Err(TaskError::NotReady { waited: timeout })
        }
    }

    fn take(&self) -> Result<Vec<R>, TaskError> {
        match &self.source {
            Source::Collecting { results, taken } => {
                if taken.swap(true, Ordering::AcqRel) {
                    Err(TaskError::AlreadyTaken)
                } else {
                    results.wait()
                }
            }
            Source::Called(result) => result.get_timeout(Duration::ZERO),
        }
    }
}

/// Awaiting a `MapResult` gives what [`get`](MapResult::get) gives (the values in input
/// order, or the first error), without blocking a thread: the task that polled is woken when
/// the map finishes (after its callbacks, if any, have run). Polled again after it returned
/// `Ready`, it returns `Ready(Err(`[`TaskError::AlreadyTaken`]`))`; it never panics. See
/// [`AsyncResult`]'s `Future` implementation.
impl<R: DeserializeOwned + Send + 'static> Future for MapResult<R> {
    type Output = Result<Vec<R>, TaskError>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.get_mut();
        match &mut this.source {
            Source::Collecting { results, .. } => {
                ready!(results.poll_complete(cx.waker()));
                Poll::Ready(this.take())
            }
            Source::Called(result) => Pin::new(result).poll(cx),
        }
    }
}

impl<R> Drop for MapResult<R> {
    fn drop(&mut self) {
        // A `Called` source forgets its waker in its own `drop`.
        if let Source::Collecting { results, .. } = &self.source {
            results.forget_waker();
        }
    }
}
