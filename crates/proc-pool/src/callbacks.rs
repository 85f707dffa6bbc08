//! Python's `callback` and `error_callback`: [`Callbacks`], the pool's callback thread that
//! runs them, and the sink that hands a finished task's outcome to that thread.
//!
//! The manager thread never runs user code (it drives every worker), so a task's callbacks
//! cannot run where its outcome arrives. When a task with callbacks completes, its sink
//! queues a job for the pool's callback thread (started on the first submission with
//! callbacks, named `proc-pool-callbacks`), which takes the outcome, runs the callback on it
//! and only then hands it to the task's `AsyncResult` or `MapResult`: like Python's result
//! handler thread, callbacks run one at a time in completion order, and `get`/`wait` return
//! after the callback, so its side effects are visible.

use std::collections::VecDeque;
use std::io::Write;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::thread::{JoinHandle, ThreadId};

use crate::error::TaskError;
use crate::locking::{lock, wait};
use crate::protocol::{EncodedItems, Origin};
use crate::results::{ReplySink, SlotFill};

/// The callback thread's name, as `std::thread::current().name()` gives it in a callback.
pub(crate) const THREAD_NAME: &str = "proc-pool-callbacks";

/// What to run when a task finishes: Python's `callback` and `error_callback`, for
/// [`Pool::apply_async_with`](crate::Pool::apply_async_with) (`T` is the task's value) and
/// [`Pool::map_async_with`](crate::Pool::map_async_with) (`T` is the `Vec` of values).
///
/// ```
/// use std::sync::mpsc;
///
/// use proc_pool::{Callbacks, Pool, TaskError};
///
/// fn square(x: u64) -> u64 {
///     x * x
/// }
///
/// let pool = Pool::new(2)?;
/// let (tx, rx) = mpsc::channel();
/// let errors = tx.clone();
/// let callbacks = Callbacks::new()
///     .on_value(move |value: &u64| {
///         let _ = tx.send(format!("got {value}"));
///     })
///     .on_error(move |err: &TaskError| {
///         let _ = errors.send(format!("failed: {err}"));
///     });
/// let pending = pool.apply_async_with(square, 12, callbacks)?;
/// assert_eq!(pending.get()?, 144); // returns after the callback ran
/// assert_eq!(rx.try_recv()?, "got 144");
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
///
/// # Where and when they run
///
/// - On the pool's **callback thread**, named `proc-pool-callbacks`: one thread per pool,
///   started by the first submission that has callbacks. Never on the thread that submitted
///   the task, and never on the pool's manager thread (which drives the workers).
/// - **One at a time, in the order the tasks completed.**
/// - **Before the task's result is released**: `get`, `wait` and `ready` of the task see it
///   finished only once its callback has returned, so what the callback did is visible.
/// - `on_value` gets a reference to the value, which `get` then returns; `on_error` gets the
///   task's error (any [`TaskError`] a task can end with: `Panicked`, `WorkerDied`,
///   `Timeout`, `PoolTerminated`, ...), which `get` then returns. For every task submitted,
///   the one that fits its outcome runs, once (if it was given). The closures' types must be
///   written out (`|value: &u64|`) when their bodies call methods on the argument: the
///   builder does not know `T` before it is passed.
/// - A submission the pool **refuses** (closed or terminated pool, arguments that cannot be
///   encoded) returns the error and runs no callback, as Python raises and calls nothing.
/// - On **terminate** (or dropping the pool), tasks not finished fail with
///   [`TaskError::PoolTerminated`], and their `on_error` runs before `terminate` returns.
///   `join` and `terminate` wait for every queued callback, then end the thread.
///
/// # What callbacks must not do
///
/// - **Block for long**: a callback that blocks delays the later callbacks, and the `get` of
///   their tasks, and `join`/`terminate`/drop of the pool, never the workers: they go on
///   running tasks, whose outcomes queue up.
/// - **Wait for a task of the same pool that has callbacks** (its callback would run after
///   this one, on this thread: it would wait for ever). Waiting for a task without callbacks,
///   submitting tasks, or dropping or terminating the pool from a callback is fine.
/// - **Panic**: a panicking callback is caught; the program's panic hook reports it (by
///   default on stderr, naming the thread `proc-pool-callbacks`), the pool adds one line
///   the first time, and the thread goes on with the next callback. The task's outcome is
///   unchanged: `get` returns the value the panicking `on_value` was given.
pub struct Callbacks<T> {
    on_value: Option<OnValue<T>>,
    on_error: Option<OnError>,
}

type OnValue<T> = Box<dyn FnOnce(&T) + Send + 'static>;
type OnError = Box<dyn FnOnce(&TaskError) + Send + 'static>;

impl<T> Callbacks<T> {
    /// No callbacks yet.
    pub fn new() -> Callbacks<T> {
        Callbacks {
            on_value: None,
            on_error: None,
        }
    }

    /// Runs `callback` with the value when the task succeeds (Python's `callback`).
    pub fn on_value(mut self, callback: impl FnOnce(&T) + Send + 'static) -> Callbacks<T> {
        self.on_value = Some(Box::new(callback));
        self
    }

    /// Runs `callback` with the error when the task fails (Python's `error_callback`).
    pub fn on_error(mut self, callback: impl FnOnce(&TaskError) + Send + 'static) -> Callbacks<T> {
        self.on_error = Some(Box::new(callback));
        self
    }

    /// Whether there is nothing to run: the task needs no callback thread.
    pub(crate) fn is_empty(&self) -> bool {
        self.on_value.is_none() && self.on_error.is_none()
    }

    fn run(self, outcome: &Result<T, TaskError>) {
        match (outcome, self.on_value, self.on_error) {
            (Ok(value), Some(on_value), _) => on_value(value),
            (Err(error), _, Some(on_error)) => on_error(error),
            _ => {}
        }
    }
}

impl<T> Default for Callbacks<T> {
    fn default() -> Callbacks<T> {
        Callbacks::new()
    }
}

impl<T> std::fmt::Debug for Callbacks<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Callbacks")
            .field("on_value", &self.on_value.is_some())
            .field("on_error", &self.on_error.is_some())
            .finish()
    }
}

// ---------------------------------------------------------------------------------------------
// The callback thread

/// One finished task's callbacks and hand-over; true if a callback panicked.
type Job = Box<dyn FnOnce() -> bool + Send>;

/// A pool's callback thread: a queue of jobs and the thread that runs them, started on
/// demand, ended by [`finish`](CallbackThread::finish) when the pool is joined or terminated.
pub(crate) struct CallbackThread {
    state: Mutex<RunnerState>,
    changed: Condvar,
    panic_reported: AtomicBool,
}

#[derive(Default)]
struct RunnerState {
    jobs: VecDeque<Job>,
    started: bool,
    /// The thread's id, so that a callback that ends its own pool does not join itself.
    thread: Option<ThreadId>,
    /// Taken by the caller of `finish` that joins the thread.
    handle: Option<JoinHandle<()>>,
    /// No more jobs are expected: the thread exits once the queue is empty.
    closing: bool,
    /// The thread has exited (or was never started and the pool is finished).
    ended: bool,
}

impl std::fmt::Debug for CallbackThread {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let state = lock(&self.state);
        f.debug_struct("CallbackThread")
            .field("started", &state.started)
            .field("queued", &state.jobs.len())
            .field("closing", &state.closing)
            .field("ended", &state.ended)
            .finish()
    }
}

impl CallbackThread {
    /// A callback thread not started yet.
    pub(crate) fn new() -> Arc<CallbackThread> {
        Arc::new(CallbackThread {
            state: Mutex::new(RunnerState::default()),
            changed: Condvar::new(),
            panic_reported: AtomicBool::new(false),
        })
    }

    /// Starts the thread unless it runs already. After [`finish`](CallbackThread::finish)
    /// it starts nothing: the pool refuses submissions by then.
    pub(crate) fn start(self: &Arc<Self>) -> std::io::Result<()> {
        let mut state = lock(&self.state);
        if state.started || state.closing {
            return Ok(());
        }
        let runner = self.clone();
        let handle = std::thread::Builder::new()
            .name(THREAD_NAME.into())
            .spawn(move || runner.run())?;
        state.thread = Some(handle.thread().id());
        state.handle = Some(handle);
        state.started = true;
        Ok(())
    }

    /// Queues a job. Never blocks and never runs it here, with one exception: once the
    /// thread has ended, which happens only after the pool's manager thread has been joined
    /// (so this is not the manager), a late job runs on the calling thread.
    fn push(&self, job: Job) {
        let mut state = lock(&self.state);
        if state.started && !state.ended {
            state.jobs.push_back(job);
            self.changed.notify_all();
            return;
        }
        drop(state);
        self.run_job(job);
    }

    fn run(&self) {
        let mut state = lock(&self.state);
        loop {
            if let Some(job) = state.jobs.pop_front() {
                drop(state);
                self.run_job(job);
                state = lock(&self.state);
            } else if state.closing {
                state.ended = true;
                self.changed.notify_all();
                return;
            } else {
                state = wait(&self.changed, state);
            }
        }
    }

    fn run_job(&self, job: Job) {
        // Callbacks are caught inside the job (so that the outcome is handed over anyway);
        // this catches the rest.
        let panicked = catch_unwind(AssertUnwindSafe(job)).unwrap_or(true);
        if panicked && !self.panic_reported.swap(true, Ordering::Relaxed) {
            let _ = writeln!(
                std::io::stderr(),
                "proc-pool: a task's callback panicked; the pool's callback thread goes on \
                 with the next callbacks, and the task's result is unchanged (said once per pool)"
            );
        }
    }

    /// Runs what is queued, then ends the thread and joins it: called when the pool's
    /// manager thread has ended, so every task has had its answer and its callbacks queued.
    /// From a callback (a callback that joins, terminates or drops its pool) it does not wait
    /// for its own thread, which exits after that callback and the queued ones.
    pub(crate) fn finish(&self) {
        let mut state = lock(&self.state);
        state.closing = true;
        self.changed.notify_all();
        if !state.started {
            state.ended = true;
            return;
        }
        if state.thread == Some(std::thread::current().id()) {
            return;
        }
        loop {
            if let Some(handle) = state.handle.take() {
                drop(state);
                // Jobs catch their panics: the thread cannot end by one.
                let _ = handle.join();
                return;
            }
            if state.ended {
                return;
            }
            // Another caller is joining it.
            state = wait(&self.changed, state);
        }
    }
}

// ---------------------------------------------------------------------------------------------
// The sink of a task with callbacks (and of a `map_async`)

/// A sink whose outcome is taken whole once it is complete.
pub(crate) trait Collect: ReplySink {
    /// The task's value: `R`, or a `map`'s `Vec<R>`.
    type Output;
    /// Whether the outcome is in (for a map: every value, or the first error).
    fn is_complete(&self) -> bool;
    /// Called once complete: tasks still queued are not wanted (a map's first error).
    fn cancel_rest(&self) {}
    /// The outcome, once complete.
    fn take_outcome(&self) -> Result<Self::Output, TaskError>;
}

/// Forwards results to the collecting sink `S` and, once that is complete, drops what is left
/// to send (a map's fail-fast, even when nobody waits) and queues the callbacks, if any.
///
/// Callbacks are *armed* only once the submission succeeded: a refused submission fails its
/// tasks through this sink too, and must not run them.
pub(crate) struct CompletionSink<S: Collect> {
    inner: Arc<S>,
    then: Mutex<Then<S::Output>>,
}

struct Then<T> {
    armed: bool,
    /// Taken by whichever of `arm` and the last delivery sees the task complete and armed.
    pending: Option<Pending<T>>,
}

struct Pending<T> {
    callbacks: Callbacks<T>,
    fill: SlotFill<T>,
    thread: Arc<CallbackThread>,
}

impl<S> CompletionSink<S>
where
    S: Collect + 'static,
    S::Output: Send + 'static,
{
    /// No callbacks: only the fail-fast.
    pub(crate) fn new(inner: Arc<S>) -> Arc<CompletionSink<S>> {
        Arc::new(CompletionSink {
            inner,
            then: Mutex::new(Then {
                armed: false,
                pending: None,
            }),
        })
    }

    /// Once complete, `callbacks` run on `thread` and the outcome then goes to `fill`.
    pub(crate) fn with_callbacks(
        inner: Arc<S>,
        callbacks: Callbacks<S::Output>,
        fill: SlotFill<S::Output>,
        thread: Arc<CallbackThread>,
    ) -> Arc<CompletionSink<S>> {
        Arc::new(CompletionSink {
            inner,
            then: Mutex::new(Then {
                armed: false,
                pending: Some(Pending {
                    callbacks,
                    fill,
                    thread,
                }),
            }),
        })
    }

    /// The submission succeeded: from now on completion runs the callbacks (at once, if the
    /// task completed meanwhile).
    pub(crate) fn arm(&self) {
        lock(&self.then).armed = true;
        self.check();
    }

    /// Whichever of `arm` and a delivery comes second sees both the completion and the arming
    /// (each sets its own under a lock, then looks at the other's).
    fn check(&self) {
        if !self.inner.is_complete() {
            return;
        }
        self.inner.cancel_rest();
        let pending = {
            let mut then = lock(&self.then);
            if !then.armed {
                return;
            }
            then.pending.take()
        };
        let Some(Pending {
            callbacks,
            fill,
            thread,
        }) = pending
        else {
            return;
        };
        let inner = self.inner.clone();
        thread.push(Box::new(move || {
            let outcome = inner.take_outcome();
            let panicked = catch_unwind(AssertUnwindSafe(|| callbacks.run(&outcome))).is_err();
            fill.fill(outcome);
            panicked
        }));
    }
}

impl<S> ReplySink for CompletionSink<S>
where
    S: Collect + 'static,
    S::Output: Send + 'static,
{
    fn deliver(
        &self,
        chunk: usize,
        first_item: usize,
        items: EncodedItems<'_>,
        last: bool,
        origin: Origin,
    ) {
        self.inner.deliver(chunk, first_item, items, last, origin);
        self.check();
    }

    fn fail(&self, chunk: usize, error: TaskError) {
        self.inner.fail(chunk, error);
        self.check();
    }

    fn fail_one(&self, chunk: usize, error: TaskError) {
        self.inner.fail_one(chunk, error);
        self.check();
    }

    fn is_cancelled(&self) -> bool {
        self.inner.is_cancelled()
    }
}
