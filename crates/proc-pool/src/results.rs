//! Where results go: the pool's manager thread hands each result frame to the *sink* of the
//! call that submitted the task (one [`AsyncResult`], a `map`, an `imap`), which decodes the
//! values with the types it knows and wakes whoever waits.
//!
//! Every task carries a [`Reply`], and a `Reply` that is dropped before it was answered fails
//! its items with `PoolTerminated`. So whatever path a task takes (a value, a worker death, a
//! timeout, terminate, even a panic in the manager), its waiter always hears back.

use std::sync::Arc;

use proc_core::codec::CodecError;

use crate::error::TaskError;
use crate::protocol::{EncodedItems, Origin};

mod async_result;
mod map_results;
mod stream_results;
mod wait_spin;

pub use async_result::AsyncResult;
pub(crate) use async_result::{OneSlot, SlotFill};
pub(crate) use map_results::MapResults;
pub(crate) use stream_results::{Next, StreamResults, WindowState};
pub(crate) use wait_spin::WaitSpin;

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
