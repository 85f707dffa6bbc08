//! The `Pool` handle and its builder.

use std::sync::Arc;
use std::time::Duration;

use fork_sys::Pid;
use proc_core::StartMethod;
use proc_core::codec::DEFAULT_MAX_FRAME_LEN;
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::bound::TaskCall;
use crate::callbacks::{CallbackThread, Callbacks, CompletionSink};
use crate::error::{PoolError, TaskError};
use crate::imap::Imap;
use crate::manager::{self, Config, Shared, Task};
use crate::map_result::MapResult;
use crate::results::{AsyncResult, MapResults, OneSlot, Reply, WaitSpin};
use crate::task_arg::{TaskArg, TaskItems};
use crate::task_fn::{StarFn, TaskFn};

mod chunk_size;
mod manager_thread;
mod submission;

use manager_thread::ManagerThread;
use submission::Window;

/// A pool of forked worker processes running `fn(A) -> R` tasks: Python's
/// `multiprocessing.Pool`, without its hangs.
///
/// A task is a plain function (a non-capturing closure coerces to one); its argument and value
/// cross the process boundary as bincode frames, so both are `Serialize + DeserializeOwned`.
/// Workers are forked from the pool's manager thread when the pool is built (and whenever one
/// must be replaced), so they see the program as it was at that moment.
///
/// Errors are per task ([`TaskError`]): a task that panics, overruns its timeout or takes its
/// worker down fails alone; the worker is replaced and every other task completes.
///
/// `Pool` is `Send + Sync`: share it between threads by reference or in an `Arc`.
///
/// # Dropping
///
/// Dropping a pool terminates it, like Python's: workers are killed and reaped at once, and
/// tasks not finished yet fail with [`TaskError::PoolTerminated`] (their
/// [`Callbacks`]' `on_error` runs before the drop returns). To wait for the work instead,
/// [`close`](Pool::close) and [`join`](Pool::join) first.
#[derive(Debug)]
pub struct Pool {
    shared: Arc<Shared>,
    manager: ManagerThread,
    /// Runs the tasks' callbacks; started by the first task that has some.
    callbacks: Arc<CallbackThread>,
    /// How long this pool's blocking waits for one result take: whether they watch before
    /// they sleep.
    wait_spin: Arc<WaitSpin>,
    workers: usize,
    chunksize: Option<usize>,
    max_frame_len: usize,
    start_method: StartMethod,
}

/// Options for a [`Pool`]: `Pool::builder().workers(4).task_timeout(d).build()?`.
#[derive(Debug, Clone, Default)]
pub struct PoolBuilder {
    workers: Option<usize>,
    initializer: Option<fn()>,
    max_tasks_per_child: Option<u64>,
    task_timeout: Option<Duration>,
    chunksize: Option<usize>,
    max_frame_len: Option<usize>,
    start_method: Option<StartMethod>,
    retries: u32,
    launcher: Option<proc_core::Launcher>,
}

impl PoolBuilder {
    /// A builder with the defaults: one worker per available CPU, no initializer, workers
    /// that live for ever, no timeout, Python's chunk sizes, 1 GiB frames.
    pub fn new() -> PoolBuilder {
        PoolBuilder::default()
    }

    /// How many worker processes (default: `std::thread::available_parallelism`).
    pub fn workers(mut self, workers: usize) -> PoolBuilder {
        self.workers = Some(workers);
        self
    }

    /// A function each worker runs once, before its first task. If it panics, the pool
    /// cannot run anything: every task then fails with
    /// [`TaskError::InitializerFailed`] (Python's pool respawns such workers for ever).
    pub fn initializer(mut self, initializer: fn()) -> PoolBuilder {
        self.initializer = Some(initializer);
        self
    }

    /// A worker exits after this many tasks (a `map` chunk counts as one) and a fresh one
    /// takes its place: a bound on what a leaky task can accumulate. (`map`'s default chunks
    /// of large items are smaller than Python's, so they count more tasks: see
    /// [`Pool::map`].)
    pub fn max_tasks_per_child(mut self, tasks: u64) -> PoolBuilder {
        self.max_tasks_per_child = Some(tasks);
        self
    }

    /// A task (a chunk) running longer than this is stopped: its worker is killed and
    /// replaced, and the task fails with [`TaskError::Timeout`].
    pub fn task_timeout(mut self, timeout: Duration) -> PoolBuilder {
        self.task_timeout = Some(timeout);
        self
    }

    /// The default chunk size of `map`, `imap` and `imap_unordered` (default: for `map`,
    /// Python's heuristic of about four chunks per worker, but chunks of no more than about
    /// 4 MiB of encoded arguments, judged by the first item; for the `imap`s, 1).
    pub fn chunksize(mut self, chunksize: usize) -> PoolBuilder {
        self.chunksize = Some(chunksize);
        self
    }

    /// The largest frame, in bytes, a task's arguments or results may take (default 1 GiB).
    /// Bigger arguments are refused when submitted; a bigger value fails its task with
    /// [`TaskError::ResultTooLarge`].
    pub fn max_frame_len(mut self, bytes: usize) -> PoolBuilder {
        self.max_frame_len = Some(bytes);
        self
    }

    /// How workers are started (default: [`proc_core::default_start_method`], which is
    /// `ForkServer` once the program called `proc_core::init()`, `Fork` otherwise).
    ///
    /// - [`StartMethod::Fork`]: workers are forks of the pool's manager thread, made when the
    ///   pool is built and whenever one is replaced; they see the program as it was then. The
    ///   cost of each grows with the program's memory, and a lock another thread holds at that
    ///   instant stays held in the worker.
    /// - [`StartMethod::ForkServer`]: workers are forked by proc-core's fork server, a small
    ///   single-threaded process of this executable: cheap whatever the program's size, and
    ///   they inherit no lock and no descriptor of the program's (a child's stdin pipe, say).
    /// - [`StartMethod::Spawn`]: each worker is a fresh process of this executable.
    ///
    /// Under the last two, tasks and the initializer are plain functions of this executable,
    /// named by code offsets (the worker's build id is checked first); global state the
    /// program set up before building the pool is *not* there: set it up in the initializer.
    pub fn start_method(mut self, method: StartMethod) -> PoolBuilder {
        self.start_method = Some(method);
        self
    }

    /// How many more times a task runs when its worker dies under it (a crash, the OOM
    /// killer, a timeout, a stopped worker: [`TaskError::is_retriable`]); default 0, so such
    /// a task fails at once. A retried task runs in a fresh worker; when every attempt
    /// failed, its error is [`TaskError::RetriesExhausted`] with the count and the last
    /// failure. A task that returned (or panicked) is never run again, retries or not.
    ///
    /// Retries are for tasks that may be run twice: one that died half-way through writing
    /// a file runs again from the start.
    pub fn retries(mut self, retries: u32) -> PoolBuilder {
        self.retries = retries;
        self
    }

    /// Starts each worker through `launcher` (`srun`, `ssh`, any command that runs a program
    /// and connects its stdin and stdout to ours: [`proc_core::Launcher`]) instead of by the
    /// start method: workers on other machines. The executable must be at the same path
    /// there (a shared file system); a different build is refused. Tasks go down the
    /// launcher's stdin and results come up its stdout, one frame per item, written before
    /// the next item starts, so the guarantees hold: a task that returned never runs again,
    /// a worker that dies (killed, node lost, `scancel`) fails the task it was running and
    /// nothing else. What such a worker prints goes to the launcher's stderr. Its queued
    /// tasks cannot be taken back (no shared memory): a slow task holds back those sent
    /// behind it.
    pub fn launcher(mut self, launcher: proc_core::Launcher) -> PoolBuilder {
        self.launcher = Some(launcher);
        self
    }

    /// Forks the workers and starts the pool.
    pub fn build(self) -> Result<Pool, PoolError> {
        let workers = match self.workers {
            Some(0) => {
                return Err(PoolError::InvalidOption {
                    option: "workers",
                    problem: "a pool needs at least one worker",
                });
            }
            Some(n) => n,
            None => std::thread::available_parallelism().map_or(1, usize::from),
        };
        if self.max_tasks_per_child == Some(0) {
            return Err(PoolError::InvalidOption {
                option: "max_tasks_per_child",
                problem: "must be at least 1",
            });
        }
        if self.chunksize == Some(0) {
            return Err(PoolError::InvalidOption {
                option: "chunksize",
                problem: "must be at least 1",
            });
        }
        let max_frame_len = self
            .max_frame_len
            .unwrap_or(DEFAULT_MAX_FRAME_LEN)
            .min(u32::MAX as usize);
        // Workers through a launcher are fresh runs of this executable, as under `Spawn`:
        // functions cross to them by code offsets, which must then be nameable.
        let start_method = match (&self.launcher, self.start_method) {
            (Some(_), _) => StartMethod::Spawn,
            (None, Some(method)) => method,
            (None, None) => proc_core::default_start_method(),
        };
        if let (Some(initializer), true) = (self.initializer, start_method != StartMethod::Fork) {
            if let Err(err) = proc_core::code_offset::check(initializer as usize) {
                return Err(PoolError::Spawn(proc_core::ProcessError::Spawn {
                    name: Some("proc-pool worker".into()),
                    source: std::io::Error::new(std::io::ErrorKind::InvalidInput, err),
                }));
            }
        }
        let config = Config {
            workers,
            initializer: self.initializer,
            max_tasks_per_child: self.max_tasks_per_child,
            task_timeout: self.task_timeout,
            max_frame_len,
            start_method,
            retries: self.retries,
            launcher: self.launcher,
        };
        let (shared, handle) = manager::start(config)?;
        Ok(Pool {
            shared,
            manager: ManagerThread::new(handle),
            callbacks: CallbackThread::new(),
            wait_spin: Arc::new(WaitSpin::new()),
            workers,
            chunksize: self.chunksize,
            max_frame_len,
            start_method,
        })
    }
}

impl Pool {
    /// A pool of `workers` processes with the default options.
    ///
    /// ```
    /// fn square(x: u64) -> u64 {
    ///     x * x
    /// }
    ///
    /// let pool = proc_pool::Pool::new(2)?;
    /// assert_eq!(pool.map(square, 1..=4)?, [1, 4, 9, 16]);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn new(workers: usize) -> Result<Pool, PoolError> {
        PoolBuilder::new().workers(workers).build()
    }

    /// Starts configuring a pool.
    pub fn builder() -> PoolBuilder {
        PoolBuilder::new()
    }

    /// How many workers the pool keeps.
    pub fn workers(&self) -> usize {
        self.workers
    }

    /// The pids of the workers running now (fewer than [`workers`](Pool::workers) for a moment
    /// while one is being replaced; none after close, join or terminate).
    pub fn worker_pids(&self) -> Vec<Pid> {
        self.shared.worker_pids()
    }

    /// Runs `function(arg)` in a worker and waits for its value.
    pub fn apply<A, R>(&self, function: fn(A) -> R, arg: A) -> Result<R, TaskError>
    where
        A: TaskArg,
        R: Serialize + DeserializeOwned + Send + 'static,
    {
        self.apply_async(function, arg)?.get()
    }

    /// Submits `function(arg)` and returns at once; the [`AsyncResult`] gives the value.
    /// Fails at once if the pool is closed or terminated, or the argument cannot be encoded
    /// within the frame limit (nothing is sent then).
    pub fn apply_async<A, R>(
        &self,
        function: fn(A) -> R,
        arg: A,
    ) -> Result<AsyncResult<R>, TaskError>
    where
        A: TaskArg,
        R: Serialize + DeserializeOwned + Send + 'static,
    {
        self.apply_call(TaskFn::new(function).into(), arg)
    }

    /// `apply_async` of a named call.
    pub(crate) fn apply_call<A, R>(
        &self,
        call: TaskCall,
        arg: A,
    ) -> Result<AsyncResult<R>, TaskError>
    where
        A: Serialize,
        R: Serialize + DeserializeOwned + Send + 'static,
    {
        let id = self.shared.next_task_id();
        let frame = self.encode(&call, id, std::slice::from_ref(&arg), None)?;
        let (result, reply) = AsyncResult::new(id, self.wait_spin.clone());
        self.submit(vec![Task::new(id, frame, reply, 1).with_bound(call.bound)])?;
        Ok(result)
    }

    /// `map` of a named call, at the pool's chunk size.
    pub(crate) fn map_call<T, R, M>(
        &self,
        call: TaskCall,
        items: impl TaskItems<T, M>,
    ) -> Result<Vec<R>, TaskError>
    where
        T: TaskArg,
        R: Serialize + DeserializeOwned + Send + 'static,
    {
        let items: Vec<_> = items.into_task_items().collect();
        let chunksize = self.map_chunksize(&items);
        self.map_items(call, items, chunksize)
    }

    /// The frame limit.
    pub(crate) fn max_frame_len(&self) -> usize {
        self.max_frame_len
    }

    /// [`apply_async`](Pool::apply_async) with Python's `callback` and `error_callback`:
    /// `callbacks.on_value` runs with the value, or `callbacks.on_error` with the error, on
    /// the pool's callback thread, before the [`AsyncResult`] is ready. See [`Callbacks`] for
    /// where, when and in which order they run.
    ///
    /// A submission the pool refuses (closed, terminated, arguments that cannot be encoded)
    /// returns the error and runs no callback. Fails with [`TaskError::WorkerSpawnFailed`] if
    /// the callback thread, started by the first submission with callbacks, cannot be.
    ///
    /// ```
    /// use std::sync::atomic::{AtomicU64, Ordering};
    /// use std::sync::Arc;
    ///
    /// use proc_pool::{Callbacks, Pool};
    ///
    /// fn square(x: u64) -> u64 {
    ///     x * x
    /// }
    ///
    /// let pool = Pool::new(2)?;
    /// let total = Arc::new(AtomicU64::new(0));
    /// for i in 1..=3 {
    ///     let total = total.clone();
    ///     let on_value = move |value: &u64| {
    ///         total.fetch_add(*value, Ordering::Relaxed);
    ///     };
    ///     pool.apply_async_with(square, i, Callbacks::new().on_value(on_value))?;
    /// }
    /// pool.close();
    /// pool.join()?; // waits for the tasks and for their callbacks
    /// assert_eq!(total.load(Ordering::Relaxed), 1 + 4 + 9);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn apply_async_with<A, R>(
        &self,
        function: fn(A) -> R,
        arg: A,
        callbacks: Callbacks<R>,
    ) -> Result<AsyncResult<R>, TaskError>
    where
        A: TaskArg,
        R: Serialize + DeserializeOwned + Send + 'static,
    {
        if callbacks.is_empty() {
            return self.apply_async(function, arg);
        }
        let id = self.shared.next_task_id();
        let frame = self.encode(
            &TaskFn::new(function).into(),
            id,
            std::slice::from_ref(&arg),
            None,
        )?;
        self.start_callbacks()?;
        let (result, fill) = AsyncResult::filled_later(id, self.wait_spin.clone());
        let sink = CompletionSink::with_callbacks(
            OneSlot::<R>::empty(),
            callbacks,
            fill,
            self.callbacks.clone(),
        );
        let reply = Reply::new(sink.clone(), 0);
        self.submit(vec![Task::new(id, frame, reply, 1)])?;
        sink.arm();
        Ok(result)
    }

    /// [`map`](Pool::map) without waiting: submits every chunk, then returns a [`MapResult`]
    /// whose `get` gives the values in input order or the first error (Python's
    /// `map_async`). As with `map`, the items are collected and encoded here, on the calling
    /// thread (an error to encode them is returned at once), and once a task fails, the
    /// chunks not yet started are dropped, whether or not anybody waits.
    ///
    /// ```
    /// fn square(x: u64) -> u64 {
    ///     x * x
    /// }
    ///
    /// let pool = proc_pool::Pool::new(2)?;
    /// let pending = pool.map_async(square, 1..=4)?;
    /// // ... other work ...
    /// assert_eq!(pending.get()?, [1, 4, 9, 16]);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn map_async<A, R, M>(
        &self,
        function: fn(A) -> R,
        items: impl TaskItems<A, M>,
    ) -> Result<MapResult<R>, TaskError>
    where
        A: TaskArg,
        R: Serialize + DeserializeOwned + Send + 'static,
    {
        self.map_async_with(function, items, None, Callbacks::new())
    }

    /// [`map_async`](Pool::map_async) with Python's other arguments: a chunk size (`None`:
    /// the pool's, else about four chunks per worker of at most about 4 MiB, as for `map`)
    /// and [`Callbacks`], which get the whole `Vec` of values, or the first error, on the
    /// pool's callback thread before the [`MapResult`] is ready. A refused submission runs no
    /// callback.
    ///
    /// ```
    /// use std::sync::mpsc;
    ///
    /// use proc_pool::{Callbacks, Pool};
    ///
    /// fn square(x: u64) -> u64 {
    ///     x * x
    /// }
    ///
    /// let pool = Pool::new(2)?;
    /// let (tx, rx) = mpsc::channel();
    /// let on_value = move |values: &Vec<u64>| {
    ///     let _ = tx.send(values.iter().sum::<u64>());
    /// };
    /// let items = vec![1, 2, 3];
    /// pool.map_async_with(square, &items, Some(1), Callbacks::new().on_value(on_value))?;
    /// assert_eq!(rx.recv()?, 14);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn map_async_with<A, R, M>(
        &self,
        function: fn(A) -> R,
        items: impl TaskItems<A, M>,
        chunksize: Option<usize>,
        callbacks: Callbacks<Vec<R>>,
    ) -> Result<MapResult<R>, TaskError>
    where
        A: TaskArg,
        R: Serialize + DeserializeOwned + Send + 'static,
    {
        let items: Vec<_> = items.into_task_items().collect();
        self.map_async_items(TaskFn::new(function).into(), items, chunksize, callbacks)
    }

    /// `map_async` of a named task function over encodable items.
    fn map_async_items<R, T>(
        &self,
        call: TaskCall,
        items: Vec<T>,
        chunksize: Option<usize>,
        callbacks: Callbacks<Vec<R>>,
    ) -> Result<MapResult<R>, TaskError>
    where
        R: Serialize + DeserializeOwned + Send + 'static,
        T: Serialize,
    {
        let chunksize = chunksize
            .unwrap_or_else(|| self.map_chunksize(&items))
            .max(1);
        let results = MapResults::<R>::new(items.len(), chunksize);
        let (result, sink) = if callbacks.is_empty() {
            let sink = CompletionSink::new(results.clone());
            (MapResult::collecting(results.clone()), sink)
        } else {
            self.start_callbacks()?;
            let (result, fill) = AsyncResult::filled_later(0, self.wait_spin.clone());
            let thread = self.callbacks.clone();
            let sink = CompletionSink::with_callbacks(results.clone(), callbacks, fill, thread);
            (MapResult::called(result), sink)
        };
        // No window: `map_async` returns once every chunk is queued.
        let submitted = self.submit_chunks(&call, &items, chunksize, None, |chunk| {
            Reply::new(sink.clone(), chunk)
        });
        if let Err(err) = submitted {
            // As for `map`: chunks already sent run; their values are dropped with the sink.
            results.cancel();
            return Err(err);
        }
        sink.arm();
        Ok(result)
    }

    /// Python's `starmap`: runs `function` with each item's fields as its arguments, for
    /// functions of 1 to 8 arguments (the items are tuples of them), and returns the values in
    /// input order, or the first error, as [`map`](Pool::map) does (same chunks). `function`
    /// is a function, or a closure that captures nothing (anything else does not compile:
    /// captures cannot cross to a worker).
    ///
    /// ```
    /// fn power(base: u64, exponent: u32) -> u64 {
    ///     base.pow(exponent)
    /// }
    ///
    /// let pool = proc_pool::Pool::new(2)?;
    /// assert_eq!(pool.starmap(power, [(2, 10), (3, 2)])?, [1024, 9]);
    /// let pairs = vec![(String::from("a"), 3), (String::from("b"), 2)];
    /// let repeat = |text: String, times: usize| text.repeat(times);
    /// assert_eq!(pool.starmap(repeat, &pairs)?, ["aaa", "bb"]);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn starmap<F, Args, R, M>(
        &self,
        function: F,
        items: impl TaskItems<Args, M>,
    ) -> Result<Vec<R>, TaskError>
    where
        F: StarFn<Args, R>,
        Args: TaskArg,
        R: Serialize + DeserializeOwned + Send + 'static,
    {
        let items: Vec<_> = items.into_task_items().collect();
        let chunksize = self.map_chunksize(&items);
        self.map_items(TaskFn::star(function).into(), items, chunksize)
    }

    /// [`starmap`](Pool::starmap) without waiting, as [`map_async`](Pool::map_async) is
    /// `map` without waiting; `chunksize` `None` is the pool's default.
    pub fn starmap_async<F, Args, R, M>(
        &self,
        function: F,
        items: impl TaskItems<Args, M>,
        chunksize: Option<usize>,
    ) -> Result<MapResult<R>, TaskError>
    where
        F: StarFn<Args, R>,
        Args: TaskArg,
        R: Serialize + DeserializeOwned + Send + 'static,
    {
        let items: Vec<_> = items.into_task_items().collect();
        let call = TaskFn::star(function).into();
        self.map_async_items(call, items, chunksize, Callbacks::new())
    }

    /// Runs `function` on every item and returns the values in input order, or the first
    /// error to arrive (then tasks not yet started are dropped; arguments that cannot be
    /// encoded are such an error, and chunks already sent run with their values dropped). Items go out in chunks of
    /// the pool's `chunksize`, by default Python's (about four chunks per worker), but no
    /// more items to a chunk than make about 4 MiB encoded, judged by the first item: Python
    /// counts items alone, and a map of large values gets a few huge chunks there.
    ///
    /// The items are the task's arguments, or references to them ([`TaskItems`]): `&Vec<A>`,
    /// `&[A]` and `vec.iter()` are encoded without a clone.
    ///
    /// ```
    /// fn shout(text: String) -> String {
    ///     text.to_uppercase()
    /// }
    ///
    /// let pool = proc_pool::Pool::new(2)?;
    /// let words = vec!["a".to_string(), "b".to_string()];
    /// assert_eq!(pool.map(shout, &words)?, ["A", "B"]); // `words` stays ours
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn map<A, R, M>(
        &self,
        function: fn(A) -> R,
        items: impl TaskItems<A, M>,
    ) -> Result<Vec<R>, TaskError>
    where
        A: TaskArg,
        R: Serialize + DeserializeOwned + Send + 'static,
    {
        let items: Vec<_> = items.into_task_items().collect();
        let chunksize = self.map_chunksize(&items);
        self.map_items(TaskFn::new(function).into(), items, chunksize)
    }

    /// [`map`](Pool::map) with an explicit chunk size (0 is taken as 1): each chunk is one
    /// task, one frame each way.
    pub fn map_chunked<A, R, M>(
        &self,
        function: fn(A) -> R,
        items: impl TaskItems<A, M>,
        chunksize: usize,
    ) -> Result<Vec<R>, TaskError>
    where
        A: TaskArg,
        R: Serialize + DeserializeOwned + Send + 'static,
    {
        let items: Vec<_> = items.into_task_items().collect();
        self.map_items(TaskFn::new(function).into(), items, chunksize.max(1))
    }

    /// `map` of a named task function over encodable items.
    fn map_items<R, T>(
        &self,
        call: TaskCall,
        items: Vec<T>,
        chunksize: usize,
    ) -> Result<Vec<R>, TaskError>
    where
        R: Serialize + DeserializeOwned + Send + 'static,
        T: Serialize,
    {
        if items.is_empty() {
            return Ok(Vec::new());
        }
        // This thread decodes large results as it waits (see `MapResults`).
        let results = MapResults::<R>::decoded_by_waiter(items.len(), chunksize);
        // A window of one large chunk per worker and one more (see `task_frame`), in which
        // this thread decodes the results that have come.
        let window = Window {
            frames: self.workers + 1,
            meanwhile: &|| results.settle_queued(),
        };
        let submitted = self.submit_chunks(&call, &items, chunksize, Some(window), |chunk| {
            Reply::new(results.clone(), chunk)
        });
        if let Err(err) = submitted {
            // Chunks already sent run; their values are dropped with the sink.
            results.cancel();
            return Err(err);
        }
        drop(items);
        results.wait()
    }

    /// A lazy, ordered map: yields each item's outcome in input order, while only a bounded
    /// window of tasks is in flight, so `items` may be endless and memory stays flat. Chunk
    /// size: the pool's `chunksize`, else 1; change it with [`Imap::chunksize`].
    /// The items may be borrowed, as for [`map`](Pool::map): `pool.imap(f, &items)`.
    pub fn imap<A, R, I, M>(&self, function: fn(A) -> R, items: I) -> Imap<'_, I::IntoIter, R>
    where
        I: TaskItems<A, M>,
        A: TaskArg,
        R: Serialize + DeserializeOwned + Send + 'static,
    {
        Imap::new(
            self,
            TaskFn::new(function).into(),
            items.into_task_items(),
            true,
        )
    }

    /// Like [`imap`](Pool::imap), but yields outcomes as tasks complete, in any order.
    pub fn imap_unordered<A, R, I, M>(
        &self,
        function: fn(A) -> R,
        items: I,
    ) -> Imap<'_, I::IntoIter, R>
    where
        I: TaskItems<A, M>,
        A: TaskArg,
        R: Serialize + DeserializeOwned + Send + 'static,
    {
        Imap::new(
            self,
            TaskFn::new(function).into(),
            items.into_task_items(),
            false,
        )
    }

    /// Takes no new tasks (they fail with [`TaskError::PoolClosed`]); those submitted run to
    /// the end. Then [`join`](Pool::join) waits for them.
    pub fn close(&self) {
        self.shared.close();
    }

    /// Waits until every task has finished (and its callbacks, if any, have run) and every
    /// worker has exited; for a pool that was [closed](Pool::close) or
    /// [terminated](Pool::terminate) (else [`PoolError::NotClosed`], as waiting would never
    /// end).
    pub fn join(&self) -> Result<(), PoolError> {
        if !self.shared.is_closed() {
            return Err(PoolError::NotClosed);
        }
        self.join_manager()
    }

    /// Kills every worker now and reaps it; unfinished tasks fail with
    /// [`TaskError::PoolTerminated`]. Returns once the workers are gone and the callbacks
    /// queued (those of the failed tasks among them) have run.
    pub fn terminate(&self) -> Result<(), PoolError> {
        self.shared.request_terminate();
        self.join_manager()
    }

    fn join_manager(&self) -> Result<(), PoolError> {
        if !self.shared.in_owner_process() {
            // A forked copy of the pool: its manager thread (and workers) are the parent's.
            return Ok(());
        }
        let joined = self.manager.join();
        // Every task has had its answer now, and its callbacks are queued: they run, then
        // the callback thread ends.
        self.callbacks.finish();
        joined
    }

    /// Starts the callback thread for a submission with callbacks.
    fn start_callbacks(&self) -> Result<(), TaskError> {
        if !self.shared.in_owner_process() {
            // A forked copy: the submission is refused, and no thread is wanted here.
            return Ok(());
        }
        self.callbacks
            .start()
            .map_err(|err| TaskError::CallbackThreadFailed {
                message: err.to_string(),
            })
    }

    pub(crate) fn next_task_id(&self) -> u64 {
        self.shared.next_task_id()
    }

    pub(crate) fn default_chunksize(&self) -> Option<usize> {
        self.chunksize
    }
}

impl Drop for Pool {
    fn drop(&mut self) {
        let _ = self.terminate();
    }
}
