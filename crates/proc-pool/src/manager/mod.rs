//! The pool's manager thread: the only code that talks to workers.
//!
//! Callers on any thread encode their tasks and put them in the shared *inbox*, waking the
//! manager through a pipe. The manager owns the workers (their processes, pipes and tasks in
//! flight) and loops: take new tasks, keep the worker count, hand tasks to workers that have
//! room, write, then sleep in one `poll` on the wake pipe, every worker's wake pipe (and task
//! pipe, when a write is pending) and exit fd, until something happens or a task's timeout is
//! due; then read every worker's result ring. Nothing spins.
//!
//! **Scheduling.** Each worker gets a *window* of tasks in flight, sized from the measured
//! time per task so that about [`TARGET_QUEUED_NANOS`] of work waits in its pipe: one task at
//! a time when tasks are slow (a slow task then never holds back tasks queued behind it: they
//! stay in the parent and go to whichever worker frees up), thousands when they are tiny (so
//! the pipes always carry a batch and the per-task cost is a few hundred nanoseconds, not a
//! round trip). A worker that has made no progress for [`STALL`] gets nothing more.
//!
//! **Failure.** When a worker dies, the manager reads what its ring holds (the items that
//! returned, up to the one running), the running item (the chunk the claim word names, the
//! first item without a result) fails with `WorkerDied`, or `Timeout` if the manager killed
//! it for overrunning; what it never started goes back to the front of the queue, and a new
//! worker is started.

use std::cmp::Reverse;
use std::collections::{BinaryHeap, VecDeque};
use std::fs::File;
use std::io::{self, Write};
use std::os::fd::AsFd;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use fork_sys::{Interest, Pid};
use proc_core::StartMethod;

use crate::bound::BoundValue;
use crate::error::{PoolError, TaskError};
use crate::locking::lock;
use crate::protocol;
use crate::results::Reply;
use crate::task_frame::TaskFrame;
use crate::worker::STARTED_AT;
use crate::worker_handle::{InFlight, Worker};

mod lifecycle;
pub(crate) mod outgoing;
mod reading;

/// About this much expected work may wait in a worker's pipe.
const TARGET_QUEUED_NANOS: f64 = 2_000_000.0;
/// The most tasks in flight per worker.
const MAX_WINDOW: usize = 4096;
/// A worker with tasks in flight and no result for this long gets no more, and the tasks
/// it has not started are taken back and given to others.
const STALL: Duration = Duration::from_millis(5);
/// Stop adding to a worker's queue of unwritten bytes past this.
const MAX_UNWRITTEN: usize = 4 << 20;
/// Where the platform gives no exit fd, look at the workers this often.
const EXIT_SLICE: Duration = Duration::from_millis(50);
/// After a failed fork, wait this long before trying again.
const SPAWN_RETRY: Duration = Duration::from_millis(100);
/// How long a closed pool's idle worker may take to exit before it is killed.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(5);
/// The slices in which a shutting-down manager looks for a terminate request.
const SHUTDOWN_SLICE: Duration = Duration::from_millis(20);
/// Workers dying before they are ready, in a row, that mark the pool broken (rather than
/// forking replacements for ever).
const EARLY_DEATHS_LIMIT: u32 = 5;
/// A worker holding tasks with no result for this long is looked at (and then this often):
/// is it stopped?
const STOP_CHECK: Duration = Duration::from_secs(1);
/// A worker found stopped this long, without a continue, is killed.
const STOPPED_GRACE: Duration = Duration::from_secs(3);

/// When to look next whether `worker` is stopped: while it holds tasks and has made no
/// progress for [`STOP_CHECK`] (Linux only: elsewhere the pool cannot tell).
fn stop_check_due(worker: &Worker) -> Option<Instant> {
    if !cfg!(target_os = "linux")
        || worker.in_flight.is_empty()
        || worker.timed_out.is_some()
        || worker.stopped.is_some()
        || worker.retired
    {
        return None;
    }
    Some((worker.last_progress + STOP_CHECK).max(worker.next_stop_check))
}

/// The state letter of process `pid` in `/proc/<pid>/stat` (`R`, `S`, `T` stopped, `t`
/// traced, `Z`...); `None` when it cannot be read.
fn process_state(pid: Pid) -> Option<char> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    stat.rsplit(')').next()?.trim_start().chars().next()
}

/// While a worker holds tasks none of which has visibly started, look again this often (at
/// most) for one that has, so its timeout can be enforced.
const START_RECHECK: Duration = Duration::from_millis(100);

/// The pool's settings, as the builder left them.
#[derive(Debug, Clone)]
pub(crate) struct Config {
    pub(crate) workers: usize,
    pub(crate) initializer: Option<fn()>,
    pub(crate) max_tasks_per_child: Option<u64>,
    pub(crate) task_timeout: Option<Duration>,
    pub(crate) max_frame_len: usize,
    pub(crate) start_method: StartMethod,
    /// How many more times an item whose worker died under it runs (0: it fails).
    pub(crate) retries: u32,
    /// Workers are started through this, on byte streams, instead of by `start_method`.
    pub(crate) launcher: Option<proc_core::Launcher>,
}

/// One encoded chunk and the answer owed for it.
#[derive(Debug)]
pub(crate) struct Task {
    pub(crate) id: u64,
    /// Shared with the queue of the worker it was given to, until written (see
    /// `outgoing`).
    pub(crate) frame: Arc<TaskFrame>,
    pub(crate) reply: Reply,
    /// Items in the chunk.
    pub(crate) items: u32,
    /// Items already settled (they ran in a worker that died): the frame tells the worker to
    /// leave them out.
    pub(crate) skip: u32,
    /// How many times a worker died under this chunk's next item (see `Config::retries`).
    pub(crate) attempts: u32,
    /// The bound value its function takes first, sent to a worker before the task.
    pub(crate) bound: Option<Arc<BoundValue>>,
}

impl Task {
    pub(crate) fn new(id: u64, frame: TaskFrame, reply: Reply, items: usize) -> Task {
        Task {
            id,
            frame: Arc::new(frame),
            reply,
            items: u32::try_from(items).unwrap_or(u32::MAX),
            skip: 0,
            attempts: 0,
            bound: None,
        }
    }

    pub(crate) fn with_bound(mut self, bound: Option<Arc<BoundValue>>) -> Task {
        self.bound = bound;
        self
    }

    /// The rest of the chunk, from item `from` on, for another worker. (`attempts` counts
    /// the deaths under item `skip`: a resumption at a later item starts it afresh.)
    pub(crate) fn resume_at(mut self, from: u32) -> Task {
        if from != self.skip {
            self.attempts = 0;
        }
        self.skip = from;
        protocol::set_task_skip(Arc::<TaskFrame>::make_mut(&mut self.frame), from);
        self
    }
}

/// What the pool's handle and the manager share.
#[derive(Debug)]
pub(crate) struct Shared {
    inbox: Mutex<Inbox>,
    /// Set while a wake byte is unread, so a burst of submissions writes one byte.
    wake_pending: AtomicBool,
    wake: File,
    next_task: AtomicU64,
    pids: Mutex<Vec<Pid>>,
    /// The process the pool (and its manager thread) lives in.
    owner: Pid,
}

#[derive(Debug, Default)]
struct Inbox {
    tasks: VecDeque<Task>,
    closed: bool,
    terminate: bool,
    /// Why submissions are refused, once the manager has stopped or the pool is broken.
    refused: Option<TaskError>,
}

impl Shared {
    pub(crate) fn next_task_id(&self) -> u64 {
        self.next_task.fetch_add(1, Ordering::Relaxed)
    }

    /// Queues `tasks`; if the pool takes no more, hands them back with the reason.
    pub(crate) fn submit(&self, tasks: Vec<Task>) -> Result<(), (TaskError, Vec<Task>)> {
        // The cached pid (no system call per submission; a fork clears the cache).
        if fork_sys::getpid_cached() != self.owner.as_raw().unsigned_abs() {
            let current = fork_sys::getpid();
            // A forked copy of the pool has no manager thread: nothing would ever run.
            let reason = TaskError::ForeignProcess {
                owner: self.owner,
                current,
            };
            return Err((reason, tasks));
        }
        {
            let mut inbox = lock(&self.inbox);
            let refusal = if let Some(reason) = &inbox.refused {
                Some(reason.clone())
            } else if inbox.terminate {
                Some(TaskError::PoolTerminated)
            } else if inbox.closed {
                Some(TaskError::PoolClosed)
            } else {
                None
            };
            if let Some(reason) = refusal {
                return Err((reason, tasks));
            }
            inbox.tasks.extend(tasks);
        }
        self.wake_manager();
        Ok(())
    }

    pub(crate) fn close(&self) {
        lock(&self.inbox).closed = true;
        self.wake_manager();
    }

    pub(crate) fn request_terminate(&self) {
        lock(&self.inbox).terminate = true;
        self.wake_manager();
    }

    /// Whether `join` can end: the pool is closed or terminated.
    pub(crate) fn is_closed(&self) -> bool {
        let inbox = lock(&self.inbox);
        inbox.closed || inbox.terminate || inbox.refused.is_some()
    }

    /// Whether this is the process the pool was built in (not a forked copy).
    pub(crate) fn in_owner_process(&self) -> bool {
        fork_sys::getpid() == self.owner
    }

    pub(crate) fn worker_pids(&self) -> Vec<Pid> {
        lock(&self.pids).clone()
    }

    fn wake_manager(&self) {
        if !self.wake_pending.swap(true, Ordering::AcqRel) {
            // A full pipe already holds a wake byte; any other error means the manager is
            // gone, and then `refused` answers the next submission.
            let _ = (&self.wake).write(&[1]);
        }
    }
}

/// Starts the manager thread and its workers; returns once every worker is running.
pub(crate) fn start(config: Config) -> Result<(Arc<Shared>, JoinHandle<()>), PoolError> {
    let io_error = |what| move |source| PoolError::Io { what, source };
    let (wake_read, wake_write) =
        fork_sys::pipe_nonblocking().map_err(io_error("creating the wake pipe"))?;
    let shared = Arc::new(Shared {
        inbox: Mutex::new(Inbox::default()),
        wake_pending: AtomicBool::new(false),
        wake: File::from(wake_write),
        next_task: AtomicU64::new(1),
        pids: Mutex::new(Vec::new()),
        owner: fork_sys::getpid(),
    });
    let (started_tx, started_rx) = mpsc::channel();
    let thread_shared = shared.clone();
    let handle = std::thread::Builder::new()
        .name("proc-pool".into())
        .spawn(move || {
            let mut manager = Manager {
                shared: thread_shared,
                wake: Some(File::from(wake_read)),
                clock_base: Instant::now(),
                clock_base_monotonic: fork_sys::monotonic_now(),
                workers: Vec::new(),
                queue: VecDeque::new(),
                closed: false,
                broken: None,
                est_nanos: None,
                spawn_retry_at: None,
                early_deaths: 0,
                config,
            };
            for _ in 0..manager.config.workers {
                if let Err(err) = manager.spawn_worker() {
                    let _ = started_tx.send(Err(err));
                    return; // Dropping the manager kills and reaps what it started.
                }
            }
            let _ = started_tx.send(Ok(()));
            drop(started_tx);
            manager.run();
        })
        .map_err(io_error("starting the manager thread"))?;
    match started_rx.recv() {
        Ok(Ok(())) => Ok((shared, handle)),
        Ok(Err(err)) => {
            let _ = handle.join();
            Err(PoolError::Spawn(err))
        }
        Err(_) => Err(match handle.join() {
            Err(panic) => PoolError::ManagerPanicked {
                message: protocol::panic_message(panic.as_ref()),
            },
            Ok(()) => PoolError::ManagerPanicked {
                message: "the manager stopped before starting its workers".into(),
            },
        }),
    }
}

struct Manager {
    shared: Arc<Shared>,
    /// The wake pipe's read end (an `Option` so that a forked worker can close its copy).
    wake: Option<File>,
    config: Config,
    /// The zero of the task start times workers record.
    clock_base: Instant,
    /// The same instant on the system's monotonic clock, which workers read (an `Instant`
    /// cannot cross to an exec'd worker).
    clock_base_monotonic: Duration,
    workers: Vec<Worker>,
    /// Tasks taken from the inbox and not yet handed to a worker.
    queue: VecDeque<Task>,
    closed: bool,
    /// Set when the initializer failed: every task fails with this.
    broken: Option<TaskError>,
    /// Smoothed time per task, in nanoseconds, as seen from here.
    est_nanos: Option<f64>,
    spawn_retry_at: Option<Instant>,
    /// Workers that died before their initializer returned, in a row.
    early_deaths: u32,
}

impl Manager {
    fn run(&mut self) {
        loop {
            let now = Instant::now();
            if self.take_inbox() {
                self.terminate();
                return;
            }
            self.keep_worker_count(now);
            self.dispatch(now);
            self.write_pending();
            if self.closed && self.queue.is_empty() && self.idle() {
                self.shut_down();
                return;
            }
            let timeout = self.next_wakeup(now);
            if let Err(err) = self.wait(timeout) {
                // poll itself failing (ENOMEM) leaves nothing to wait with: stop, failing
                // every task rather than leaving one unanswered.
                self.fail_everything(TaskError::WorkerSpawnFailed {
                    message: format!("the pool manager's poll failed: {err}"),
                });
                self.terminate();
                return;
            }
            let now = Instant::now();
            self.enforce_timeouts(now);
            self.kill_stopped_workers(now);
            self.revoke_from_stalled_workers(now);
        }
    }

    /// Tasks waiting behind a chunk that has run for [`STALL`] go back to the queue, for
    /// workers that are free: one slow task never holds back the tasks queued after it.
    fn revoke_from_stalled_workers(&mut self, now: Instant) {
        let mut revoked = Vec::new();
        for worker in &mut self.workers {
            if worker.holds_unstarted() && now.duration_since(worker.last_progress) >= STALL {
                revoked.extend(worker.revoke_unstarted());
            }
        }
        for task in revoked.into_iter().rev() {
            self.queue.push_front(task);
        }
    }

    fn idle(&self) -> bool {
        self.workers.iter().all(|w| w.in_flight.is_empty())
    }

    /// Moves new tasks into the queue; true when terminate was requested.
    fn take_inbox(&mut self) -> bool {
        self.shared.wake_pending.store(false, Ordering::Release);
        let mut inbox = lock(&self.shared.inbox);
        self.closed |= inbox.closed;
        if let Some(reason) = &self.broken {
            inbox.refused.get_or_insert_with(|| reason.clone());
        }
        self.queue.extend(inbox.tasks.drain(..));
        drop(inbox);
        if let Some(reason) = self.broken.clone() {
            for mut task in self.queue.drain(..) {
                task.reply.fail(reason.clone());
            }
        }
        lock(&self.shared.inbox).terminate
    }

    /// From now on every task fails with `reason`; the pool winds down as if closed.
    fn break_pool(&mut self, reason: TaskError) {
        self.broken.get_or_insert(reason);
        self.closed = true;
    }

    /// How many tasks a worker may have in flight.
    fn window(&self) -> usize {
        match self.est_nanos {
            None => 1,
            Some(nanos) => ((TARGET_QUEUED_NANOS / nanos.max(1.0)) as usize).clamp(1, MAX_WINDOW),
        }
    }

    /// Whether `worker` may be given one more task now.
    fn has_room(&self, worker: &Worker, window: usize, now: Instant) -> bool {
        let load = worker.in_flight.len();
        let room = load == 0
            || (load < window
                && now.duration_since(worker.last_progress) < STALL
                && worker.outgoing.pending() < MAX_UNWRITTEN);
        room && worker.accepts(self.config.max_tasks_per_child)
    }

    /// Hands queued tasks to the workers with room, least loaded first. The workers with room
    /// are kept in a heap by load: a task costs a log of the workers, not a scan of them all
    /// (a burst of 20,000 tasks over 256 workers would otherwise take tens of milliseconds).
    fn dispatch(&mut self, now: Instant) {
        if self.queue.is_empty() {
            return;
        }
        let window = self.window();
        // Least loaded first, then lowest index.
        let mut with_room: BinaryHeap<Reverse<(usize, usize)>> = self
            .workers
            .iter()
            .enumerate()
            .filter(|(_, worker)| self.has_room(worker, window, now))
            .map(|(index, worker)| Reverse((worker.in_flight.len(), index)))
            .collect();
        while let Some(task) = self.queue.front() {
            if task.reply.is_cancelled() {
                self.queue.pop_front();
                continue;
            }
            let Some(Reverse((_, index))) = with_room.pop() else {
                return;
            };
            let Some(mut task) = self.queue.pop_front() else {
                return;
            };
            let worker = &mut self.workers[index];
            if let Some(bound) = &task.bound {
                worker.send_bound_value(bound);
            }
            worker.sent += 1;
            // A copy only if another worker's queue still holds this frame (a chunk taken
            // back before it was all written), which must keep its own sequence number.
            protocol::set_task_seq(
                Arc::<TaskFrame>::make_mut(&mut task.frame),
                worker.sent as u32,
            );
            worker.outgoing.push_frame(&task.frame, worker.sent);
            if worker.in_flight.is_empty() {
                worker.last_progress = now;
            }
            worker.in_flight.push_back(InFlight {
                task,
                seq: worker.sent,
                dispatched: now,
                delivered: 0,
            });
            let worker = &self.workers[index];
            if self.has_room(worker, window, now) {
                with_room.push(Reverse((worker.in_flight.len(), index)));
            }
        }
    }

    /// Writes what each worker's pipe takes without blocking.
    fn write_pending(&mut self) {
        for worker in &mut self.workers {
            let started = worker.started();
            worker.outgoing.release_read(started);
            let Some(pipe) = worker.tasks.as_mut() else {
                continue;
            };
            if worker.outgoing.write_to(pipe).is_err() {
                // EPIPE: the worker is gone; its exit is handled when it is reaped.
                worker.tasks = None;
            }
        }
    }

    /// The longest the next `poll` may sleep.
    fn next_wakeup(&self, now: Instant) -> Option<Duration> {
        let mut wake_at: Option<Instant> = self.spawn_retry_at;
        let mut earliest = |at: Instant| {
            wake_at = Some(wake_at.map_or(at, |w| w.min(at)));
        };
        for worker in &self.workers {
            if worker.ring_has_results() {
                // Results are waiting (more than one pass took, or they came after it):
                // no wake byte may be on its way for them.
                earliest(now);
            }
            if let Some(deadline) = self.timeout_wakeup(worker, now) {
                earliest(deadline);
            }
            if worker.holds_unstarted() {
                earliest(worker.last_progress + STALL);
            }
            if worker.process.exit_fd().is_none() {
                earliest(now + EXIT_SLICE);
            }
            if let Some(at) = stop_check_due(worker) {
                earliest(at);
            }
        }
        wake_at.map(|at| at.saturating_duration_since(now))
    }

    /// A worker that holds tasks, has made no progress for [`STOP_CHECK`] and stays *stopped*
    /// (SIGSTOP, a terminal stop: not traced) for [`STOPPED_GRACE`] will not finish them on
    /// its own: kill it; its running task fails with `WorkerStopped`, the others run
    /// elsewhere.
    fn kill_stopped_workers(&mut self, now: Instant) {
        for worker in &mut self.workers {
            if stop_check_due(worker).is_none_or(|at| now < at) {
                continue;
            }
            worker.next_stop_check = now + STOP_CHECK;
            if process_state(worker.pid()) != Some('T') {
                worker.stopped_since = None;
                continue;
            }
            // Stopped: give whoever stopped it (a user pausing it) a while to continue it.
            let since = *worker.stopped_since.get_or_insert(now);
            if now.saturating_duration_since(since) >= STOPPED_GRACE {
                let stalled = now.saturating_duration_since(worker.last_progress);
                worker.stopped = Some((worker.started(), stalled));
                worker.kill();
            }
        }
    }

    /// With a task timeout: the sequence number of the chunk `worker` is running, and when
    /// it overruns (`None` as well for a timeout too large to add to an `Instant`).
    fn overrun_deadline(&self, worker: &Worker) -> Option<(u64, Instant)> {
        let timeout = self.config.task_timeout?;
        if worker.timed_out.is_some() {
            return None;
        }
        let started = worker.started();
        if !worker.in_flight.iter().any(|f| f.seq == started) {
            return None;
        }
        let nanos = worker.counters.get(STARTED_AT).load(Ordering::Acquire);
        let started_at = self.clock_base.checked_add(Duration::from_nanos(nanos))?;
        Some((started, started_at.checked_add(timeout)?))
    }

    /// When to look at `worker` again for a timeout: its running chunk's deadline; or, when
    /// it holds chunks none of which has visibly started yet (it is between chunks, or in
    /// its initializer), a recheck soon, since a chunk starting now is not announced.
    fn timeout_wakeup(&self, worker: &Worker, now: Instant) -> Option<Instant> {
        let timeout = self.config.task_timeout?;
        if worker.in_flight.is_empty() || worker.timed_out.is_some() {
            return None;
        }
        match self.overrun_deadline(worker) {
            Some((_, deadline)) => Some(deadline),
            None => now.checked_add((timeout / 4).clamp(Duration::from_millis(1), START_RECHECK)),
        }
    }

    fn enforce_timeouts(&mut self, now: Instant) {
        let Some(timeout) = self.config.task_timeout else {
            return;
        };
        for index in 0..self.workers.len() {
            if let Some((seq, deadline)) = self.overrun_deadline(&self.workers[index]) {
                if now >= deadline {
                    let worker = &mut self.workers[index];
                    worker.timed_out = Some((seq, timeout));
                    worker.kill();
                }
            }
        }
    }

    /// Sleeps in `poll` until a worker writes, exits or can take more bytes, a caller
    /// wakes us, or `timeout`; then reads results and handles exits.
    fn wait(&mut self, timeout: Option<Duration>) -> io::Result<()> {
        let readiness = {
            let mut fds = Vec::with_capacity(1 + 3 * self.workers.len());
            if let Some(wake) = &self.wake {
                fds.push((wake.as_fd(), Interest::Read));
            }
            for worker in &self.workers {
                if let Some(wake) = &worker.wake {
                    fds.push((wake.as_fd(), Interest::Read));
                }
                if let (Some(tasks), true) = (&worker.tasks, worker.has_unwritten()) {
                    fds.push((tasks.as_fd(), Interest::Write));
                }
                if let Some(exit) = worker.process.exit_fd() {
                    fds.push((exit, Interest::Read));
                }
                if let Some(stderr) = &worker.stderr {
                    fds.push((stderr.as_fd(), Interest::Read));
                }
            }
            fork_sys::poll(&fds, timeout)?
        };
        // Walk the readiness list in the order it was built.
        let mut ready = readiness.into_iter();
        if self.wake.is_some() && ready.next().is_some_and(|r| r.is_ready()) {
            self.drain_wake_pipe();
        }
        let now = Instant::now();
        let mut exited = Vec::new();
        for index in 0..self.workers.len() {
            let worker = &self.workers[index];
            let woken = worker.wake.is_some() && ready.next().is_some_and(|r| r.is_ready());
            // The ring is looked at on every turn, woken or not: a wake that went astray
            // (a task damaged the pipe) delays results at most until the next turn.
            let results_ready = woken || worker.ring_has_results();
            if worker.tasks.is_some() && worker.has_unwritten() {
                ready.next();
            }
            let exit_fd = worker.process.exit_fd().is_some();
            let exit_ready = exit_fd && ready.next().is_some_and(|r| r.is_ready());
            let stderr_ready =
                worker.stderr.is_some() && ready.next().is_some_and(|r| r.is_ready());
            if stderr_ready {
                self.workers[index].forward_stderr();
            }
            if results_ready {
                self.read_results(index, now, woken);
            }
            // Without an exit fd, ask each turn; with one, only once it says so (an end of
            // file on the results can come first, and the group is killed before the reap).
            if exit_ready || !exit_fd {
                exited.push((index, exit_ready));
            }
        }
        // Highest index first, so removals do not shift the ones still to do.
        for (index, known_exited) in exited.into_iter().rev() {
            if known_exited {
                // Exited, not yet reaped: its pid (its group's id) is still ours. Whatever
                // its tasks started and left in its group goes with it.
                self.workers[index].kill_group_if_ours();
            }
            self.reap_if_exited(index);
        }
        Ok(())
    }

    fn drain_wake_pipe(&mut self) {
        let Some(wake) = self.wake.as_mut() else {
            return;
        };
        let mut sink = [0u8; 64];
        while matches!(io::Read::read(wake, &mut sink), Ok(n) if n > 0) {}
    }

    fn fail_everything(&mut self, error: TaskError) {
        for worker in &mut self.workers {
            for mut flight in worker.in_flight.drain(..) {
                flight.task.reply.fail(error.clone());
            }
        }
        for mut task in self.queue.drain(..) {
            task.reply.fail(error.clone());
        }
    }

    /// From now on the inbox refuses tasks; whatever is in it fails.
    fn refuse(&mut self, reason: TaskError) {
        let leftover: Vec<Task> = {
            let mut inbox = lock(&self.shared.inbox);
            inbox.refused.get_or_insert(reason.clone());
            inbox.tasks.drain(..).collect()
        };
        for mut task in leftover {
            task.reply.fail(reason.clone());
        }
    }
}

impl Drop for Manager {
    /// Runs on every exit of the manager thread, a panic included: no worker outlives it
    /// (each is killed and reaped) and no task is left unanswered.
    fn drop(&mut self) {
        // After a normal exit there is nothing left to kill or fail: this changes nothing.
        self.terminate();
    }
}
