//! The sink of one `apply_async` task ([`OneSlot`]) and the handle its caller holds
//! ([`AsyncResult`]): waited on, polled as a future, or filled later by the callback thread.

use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use serde::de::DeserializeOwned;

use crate::callbacks::Collect;
use crate::error::TaskError;
use crate::locking::{lock, wait, wait_until};
use crate::protocol::{self, EncodedItems, Origin};
use crate::waiter::Waiter;

use super::wait_spin::{WATCH_LIMIT, WaitSpin};
use super::{Reply, ReplySink, missing_item};

/// The sink of one `apply_async` task.
pub(crate) struct OneSlot<R> {
    state: Mutex<SlotState<R>>,
    ready: Condvar,
    /// `state.done`, readable without the lock: what a blocked wait watches before it
    /// sleeps on `ready` ([`WaitSpin`]). Set under the lock, after `done`.
    finished: AtomicBool,
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

impl<R: DeserializeOwned + Send + 'static> ReplySink for OneSlot<R> {
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
            self.finished.store(true, Ordering::Release);
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
    /// The pool's record of how long its blocking waits take.
    spin: Arc<WaitSpin>,
}

impl<R> std::fmt::Debug for AsyncResult<R> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AsyncResult")
            .field("task", &self.task)
            .finish_non_exhaustive()
    }
}

impl<R: DeserializeOwned + Send + 'static> AsyncResult<R> {
    /// A new empty slot, and the reply the task carries to fill it; `spin` is the pool's.
    pub(crate) fn new(task: u64, spin: Arc<WaitSpin>) -> (AsyncResult<R>, Reply) {
        let slot = OneSlot::empty();
        let reply = Reply::new(slot.clone(), 0);
        (AsyncResult { slot, task, spin }, reply)
    }
}

impl<R> AsyncResult<R> {
    /// The task's number, as errors name it.
    pub fn task(&self) -> u64 {
        self.task
    }

    /// Whether the task has finished (with a value or an error).
    pub fn ready(&self) -> bool {
        self.slot.finished.load(Ordering::Acquire)
    }

    /// Waits until the task has finished.
    ///
    /// A wait that the pool's recent waits say will be short watches the result for up to
    /// 100 µs before it sleeps (when the process may use two CPUs or more), which saves
    /// waking this thread (docs/proc-pool.md in the repository, "Costs").
    pub fn wait(&self) {
        if self.ready() {
            return;
        }
        let start = Instant::now();
        if !self.spin.watch(&self.slot.finished, None) {
            let mut state = lock(&self.slot.state);
            while !state.done {
                state = wait(&self.slot.ready, state);
            }
        }
        self.spin.record(start.elapsed());
    }

    /// Waits at most `timeout` for the task; true if it has finished. Watches before it
    /// sleeps as [`wait`](AsyncResult::wait) does, never past `timeout`.
    pub fn wait_timeout(&self, timeout: Duration) -> bool {
        if self.ready() {
            return true;
        }
        let start = Instant::now();
        let deadline = start.checked_add(timeout);
        let finished = self.spin.watch(&self.slot.finished, Some(timeout)) || {
            let mut state = lock(&self.slot.state);
            loop {
                if state.done {
                    break true;
                }
                match deadline {
                    Some(deadline) if Instant::now() >= deadline => break false,
                    Some(deadline) => state = wait_until(&self.slot.ready, state, deadline),
                    None => state = wait(&self.slot.ready, state),
                }
            }
        };
        // A short wait that timed out says nothing of how long results take; a long one
        // does (longer than a watch).
        let waited = start.elapsed();
        if finished || waited >= WATCH_LIMIT {
            self.spin.record(waited);
        }
        finished
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

impl<R> OneSlot<R> {
    /// An empty slot, not tied to a task: filled through [`SlotFill`], or used as the
    /// collecting sink of a task whose outcome goes through its callbacks first.
    pub(crate) fn empty() -> Arc<OneSlot<R>> {
        Arc::new(OneSlot {
            state: Mutex::new(SlotState::new()),
            ready: Condvar::new(),
            finished: AtomicBool::new(false),
        })
    }

    /// Puts `outcome` in the slot and wakes its waiters (blocked or awaiting), unless it is
    /// done already.
    fn set(&self, outcome: Result<R, TaskError>) {
        let mut state = lock(&self.state);
        if !state.done {
            state.value = Some(outcome);
            state.done = true;
            self.finished.store(true, Ordering::Release);
            let woken = state.waiter.notify(&self.ready);
            drop(state);
            woken.wake();
        }
    }
}

impl<R> AsyncResult<R> {
    /// An `AsyncResult` that gets its outcome from the returned [`SlotFill`] rather than from
    /// a worker: what a task with callbacks returns, filled once its callbacks ran.
    pub(crate) fn filled_later(task: u64, spin: Arc<WaitSpin>) -> (AsyncResult<R>, SlotFill<R>) {
        let slot = OneSlot::empty();
        let fill = SlotFill {
            slot: Some(slot.clone()),
        };
        (AsyncResult { slot, task, spin }, fill)
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

impl<R: DeserializeOwned + Send + 'static> Collect for OneSlot<R> {
    type Output = R;

    fn is_complete(&self) -> bool {
        self.finished.load(Ordering::Acquire)
    }

    fn take_outcome(&self) -> Result<R, TaskError> {
        lock(&self.state)
            .value
            .take()
            .unwrap_or(Err(TaskError::AlreadyTaken))
    }
}
