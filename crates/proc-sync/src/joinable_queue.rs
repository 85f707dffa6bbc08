//! [`JoinableQueue`]: a [`Queue`] that counts unfinished tasks, `multiprocessing.JoinableQueue`.

use std::fmt;
use std::ops::Deref;
use std::sync::Arc;
use std::time::Duration;

use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::error::SyncError;
use crate::item_ring::{Deadline, Flavor, ItemRing};
use crate::queue::{Queue, QueueBuilder, item_tag};
use crate::shared_object::Handle;

/// A [`Queue`] that counts the items put and not yet marked done, so that a process can
/// [`join`](Self::join) until all have been processed: `multiprocessing.JoinableQueue`.
///
/// Every [`Queue`] method works on it (it dereferences to one). Each `put` adds an
/// unfinished task; each consumer calls [`task_done`](Self::task_done) once per item it got,
/// when it has finished with it. The count is in shared memory, like the queue.
///
/// An item that never reaches a consumer counts as done by itself: one a consumer was taking
/// when it was killed, one whose producer died or gave up while streaming it, and one whose
/// bytes do not decode (its `get` failed). An item a consumer got and then died without
/// marking done is not: [`join_timeout`](Self::join_timeout) is the remedy, as in Python.
///
/// ```
/// use proc_core::Process;
/// use proc_sync::JoinableQueue;
///
/// # fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let jobs = JoinableQueue::<u32>::new()?;
/// let worker = {
///     let jobs = jobs.clone();
///     Process::builder().daemon(true).spawn(move || -> Result<(), String> {
///         loop {
///             let job = jobs.get().map_err(|e| e.to_string())?;
///             let _ = job * 2; // the work
///             jobs.task_done().map_err(|e| e.to_string())?;
///         }
///     })?
/// };
/// for job in 0..10 {
///     jobs.put(job)?;
/// }
/// jobs.join()?; // all ten processed
/// assert_eq!(jobs.unfinished_tasks(), 0);
/// worker.kill()?;
/// # Ok(())
/// # }
/// ```
pub struct JoinableQueue<T> {
    queue: Queue<T>,
}

impl<T> Clone for JoinableQueue<T> {
    fn clone(&self) -> Self {
        JoinableQueue {
            queue: self.queue.clone(),
        }
    }
}

impl<T: Serialize + DeserializeOwned + 'static> QueueBuilder<JoinableQueue<T>> {
    /// Makes the queue.
    pub fn build(self) -> Result<JoinableQueue<T>, SyncError> {
        let ring = self.make_ring::<T>(Flavor::Joinable)?;
        Ok(JoinableQueue {
            queue: Queue::from_ring(ring),
        })
    }
}

impl<T: Serialize + DeserializeOwned + 'static> JoinableQueue<T> {
    /// A queue with no limit on the number of items (see [`Queue::new`]).
    pub fn new() -> Result<JoinableQueue<T>, SyncError> {
        Self::builder().build()
    }

    /// A queue of at most `maxsize` items (0: no limit).
    pub fn bounded(maxsize: usize) -> Result<JoinableQueue<T>, SyncError> {
        Self::builder().maxsize(maxsize).build()
    }

    /// Options: `maxsize`, `capacity`.
    pub fn builder() -> QueueBuilder<JoinableQueue<T>> {
        QueueBuilder::new()
    }

    /// The queue a [`handle`](Queue::handle) names, made in another process. The handle of
    /// a plain [`Queue`] is [`SyncError::BadHandle`]: it counts no tasks.
    pub fn attach(handle: &Handle) -> Result<JoinableQueue<T>, SyncError> {
        let ring = ItemRing::attach(
            handle,
            item_tag::<T>(),
            Flavor::Joinable,
            &[Flavor::Joinable],
        )?;
        Ok(JoinableQueue {
            queue: Queue::from_ring(Arc::new(ring)),
        })
    }

    /// Marks one item got from the queue as processed. `Misuse` when called more times than
    /// items were put.
    pub fn task_done(&self) -> Result<(), SyncError> {
        self.ring().task_done()
    }

    /// Waits until every item put has been marked done.
    pub fn join(&self) -> Result<(), SyncError> {
        self.ring().join_tasks(&Deadline::forever())
    }

    /// [`join`](Self::join), waiting at most `timeout`: `Timeout` then.
    pub fn join_timeout(&self, timeout: Duration) -> Result<(), SyncError> {
        self.ring().join_tasks(&Deadline::after(timeout))
    }

    /// Items put and not yet marked done (a snapshot).
    pub fn unfinished_tasks(&self) -> u64 {
        self.ring().unfinished_tasks()
    }

    fn ring(&self) -> &ItemRing {
        self.queue.ring()
    }
}

impl<T> Deref for JoinableQueue<T> {
    type Target = Queue<T>;

    fn deref(&self) -> &Queue<T> {
        &self.queue
    }
}

impl<T> fmt::Debug for JoinableQueue<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("JoinableQueue")
            .field("queue", &self.queue)
            .field("unfinished_tasks", &self.queue.ring().unfinished_tasks())
            .finish()
    }
}
