//! What can go wrong: per task ([`TaskError`]) and for the pool as a whole ([`PoolError`]).

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use fork_sys::{ExitStatus, Pid};
use proc_core::ProcessError;
use proc_core::codec::CodecError;

/// Why one task has no value. Errors are per task: the others in the same pool (and the same
/// `map`) are not affected, and the pool stays usable.
///
/// Tasks are numbered in submission order; a chunk of a `map` is one task, and every item in
/// it carries the chunk's task number.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub enum TaskError {
    /// The task's function panicked. The worker caught it and lives on.
    Panicked {
        /// The task's number.
        task: u64,
        /// The worker that ran it.
        pid: Pid,
        /// The panic message.
        message: String,
    },
    /// The worker died while running the task (SIGKILL, abort, segfault, OOM, `exit`). Exactly
    /// this task fails; the worker is replaced and the pool's other tasks go on.
    WorkerDied {
        /// The task's number.
        task: u64,
        /// The worker that died.
        pid: Pid,
        /// How it died.
        status: ExitStatus,
    },
    /// The task ran longer than the pool's `task_timeout`; its worker was killed and replaced.
    Timeout {
        /// The task's number.
        task: u64,
        /// The worker that was killed.
        pid: Pid,
        /// The timeout that expired.
        after: Duration,
    },
    /// The worker running the task was found stopped (SIGSTOP, a terminal stop) while the
    /// task's results were awaited: a stopped worker never finishes, so the pool killed it
    /// and started another (Python's pool waits for it for ever). Linux, where the pool can
    /// see that a worker is stopped; a worker under a debugger (traced) is left alone.
    WorkerStopped {
        /// The task's number.
        task: u64,
        /// The worker that was killed.
        pid: Pid,
        /// How long the task had gone without a result when the worker was found stopped.
        after: Duration,
    },
    /// The task's encoded value is over the pool's frame limit; it was not sent back.
    ResultTooLarge {
        /// The task's number.
        task: u64,
        /// The worker that ran it.
        pid: Pid,
        /// The encoded length, in bytes.
        len: u64,
        /// The limit.
        limit: u64,
    },
    /// The worker running the task vanished without an exit status for us: something else in
    /// the program reaped it (SIGCHLD set to `SIG_IGN`, a `waitpid(-1)`). The worker is
    /// replaced, as for `WorkerDied`.
    WorkerLost {
        /// The task's number.
        task: u64,
        /// The worker that vanished.
        pid: Pid,
        /// What the OS said when asked for its status.
        reason: String,
    },
    /// The worker running the task broke the pool's protocol: what it sent through its
    /// result ring was not the frame due (task code that wrote over the worker's memory,
    /// say). The worker was killed and replaced; the task is not run again, and the tasks it
    /// had not started run elsewhere.
    ProtocolViolation {
        /// The task's number.
        task: u64,
        /// The worker that was killed.
        pid: Pid,
        /// What was wrong, in words.
        message: String,
    },
    /// The task's worker died under it (`WorkerDied`, `WorkerLost`, `WorkerStopped`,
    /// `Timeout`) on every one of the attempts the pool's
    /// [`retries`](crate::PoolBuilder::retries) allowed.
    RetriesExhausted {
        /// The task's number.
        task: u64,
        /// How many times the task's item was started.
        attempts: u32,
        /// How the last attempt ended.
        last: Box<TaskError>,
    },
    /// The arguments or the value could not be encoded or decoded (a failing `Serialize`
    /// impl, arguments over the frame limit, or `Serialize`/`Deserialize` impls that disagree).
    Codec {
        /// The task's number, when it got one.
        task: Option<u64>,
        /// What the codec said.
        source: Arc<CodecError>,
    },
    /// The pool's initializer panicked in a new worker, so no task can run: this fails every
    /// task of the pool, queued and future, instead of respawning workers for ever.
    InitializerFailed {
        /// The worker whose initializer failed.
        pid: Pid,
        /// The panic message.
        message: String,
    },
    /// The pool's callback thread, started by the first submission with
    /// [`Callbacks`](crate::Callbacks), could not be started (a thread or process limit):
    /// nothing was submitted.
    CallbackThreadFailed {
        /// Why, as the OS said it.
        message: String,
    },
    /// No worker could be started to run the task.
    WorkerSpawnFailed {
        /// Why, as the OS said it.
        message: String,
    },
    /// The task was submitted from a forked copy of the pool's process (a `Process` child, a
    /// task in a worker): the pool's manager thread lives only in the process that built it.
    ForeignProcess {
        /// The process the pool belongs to.
        owner: Pid,
        /// The process that tried to use it.
        current: Pid,
    },
    /// The pool was closed before the task was submitted.
    PoolClosed,
    /// The task's function cannot be named to a `ForkServer` or `Spawn` worker: it lies in a
    /// shared library, not in the file proc-core is linked into (its distance from proc-core
    /// changes with every process). Use `StartMethod::Fork`, whose workers are copies of this
    /// process.
    NotNameable {
        /// What the check found, in words.
        message: String,
    },
    /// The pool was terminated (or dropped) before the task finished.
    PoolTerminated,
    /// Only from [`AsyncResult::get_timeout`](crate::AsyncResult::get_timeout): no value yet.
    /// The task goes on; ask again later.
    NotReady {
        /// How long the call waited.
        waited: Duration,
    },
    /// The value was already taken out of this [`AsyncResult`](crate::AsyncResult).
    AlreadyTaken,
}

impl TaskError {
    pub(crate) fn codec(task: Option<u64>, source: CodecError) -> TaskError {
        TaskError::Codec {
            task,
            source: Arc::new(source),
        }
    }

    /// Whether the pool's `retries` apply: the task's worker died or was killed under it.
    /// A panic, a codec error or a refused submission is the task's own answer, never
    /// retried.
    pub fn is_retriable(&self) -> bool {
        matches!(
            self,
            TaskError::WorkerDied { .. }
                | TaskError::WorkerLost { .. }
                | TaskError::WorkerStopped { .. }
                | TaskError::Timeout { .. }
        )
    }
}

impl fmt::Display for TaskError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TaskError::Panicked { task, pid, message } => {
                write!(f, "task {task} panicked in worker {pid}: {message}")
            }
            TaskError::WorkerDied { task, pid, status } => write!(
                f,
                "worker {pid} died while running task {task}: {status}; the worker was replaced"
            ),
            TaskError::WorkerLost { task, pid, reason } => write!(
                f,
                "worker {pid} vanished while running task {task}, how it ended is unknown ({reason}); the worker was replaced"
            ),
            TaskError::CallbackThreadFailed { message } => write!(
                f,
                "the pool's callback thread could not be started: {message}; nothing was submitted"
            ),
            TaskError::ProtocolViolation { task, pid, message } => write!(
                f,
                "worker {pid} broke the pool's protocol while running task {task} ({message}); it was killed and replaced"
            ),
            TaskError::RetriesExhausted {
                task,
                attempts,
                last,
            } => write!(
                f,
                "task {task} failed on all {attempts} attempts; the last: {last}"
            ),
            TaskError::Timeout { task, pid, after } => write!(
                f,
                "task {task} ran longer than its {after:?} timeout; worker {pid} was killed and replaced"
            ),
            TaskError::WorkerStopped { task, pid, after } => write!(
                f,
                "worker {pid} was stopped (SIGSTOP?) while running task {task}, with no result for {after:?}; it was killed and replaced"
            ),
            TaskError::ResultTooLarge {
                task,
                pid,
                len,
                limit,
            } => write!(
                f,
                "the value of task {task} (worker {pid}) is {len} bytes encoded, over the pool's {limit}-byte frame limit"
            ),
            TaskError::Codec {
                task: Some(task),
                source,
            } => write!(f, "task {task}: {source}"),
            TaskError::Codec { task: None, source } => {
                write!(f, "task arguments not sent: {source}")
            }
            TaskError::InitializerFailed { pid, message } => write!(
                f,
                "the pool's initializer panicked in worker {pid}: {message}; the pool cannot run tasks"
            ),
            TaskError::WorkerSpawnFailed { message } => {
                write!(f, "no pool worker could be started: {message}")
            }
            TaskError::ForeignProcess { owner, current } => write!(
                f,
                "the pool belongs to process {owner}; process {current}, a forked copy, cannot submit to it"
            ),
            TaskError::PoolClosed => write!(f, "the pool is closed: it takes no new tasks"),
            TaskError::NotNameable { message } => write!(f, "cannot submit the task: {message}"),
            TaskError::PoolTerminated => {
                write!(f, "the pool was terminated before the task finished")
            }
            TaskError::NotReady { waited } => {
                write!(f, "the task has not finished after {waited:?}")
            }
            TaskError::AlreadyTaken => write!(f, "the task's value was already taken"),
        }
    }
}

impl std::error::Error for TaskError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            TaskError::Codec { source, .. } => Some(&**source),
            TaskError::RetriesExhausted { last, .. } => Some(&**last),
            _ => None,
        }
    }
}

/// Why the pool itself could not be built, joined or terminated.
#[derive(Debug)]
#[non_exhaustive]
pub enum PoolError {
    /// A worker could not be started.
    Spawn(ProcessError),
    /// Setting up the pool's own pipes or thread failed.
    Io {
        /// What was being done.
        what: &'static str,
        /// The OS error.
        source: std::io::Error,
    },
    /// [`Pool::join`](crate::Pool::join) was called before [`Pool::close`](crate::Pool::close)
    /// or [`Pool::terminate`](crate::Pool::terminate), so it would wait for ever.
    NotClosed,
    /// The pool's manager thread panicked (a bug in proc-pool); its workers were killed.
    ManagerPanicked {
        /// The panic message.
        message: String,
    },
    /// A builder option is out of range.
    InvalidOption {
        /// The option.
        option: &'static str,
        /// What is wrong with it.
        problem: &'static str,
    },
}

impl fmt::Display for PoolError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PoolError::Spawn(err) => write!(f, "could not start a pool worker: {err}"),
            PoolError::Io { what, source } => write!(f, "pool: {what} failed: {source}"),
            PoolError::NotClosed => write!(
                f,
                "Pool::join called on a pool that is neither closed nor terminated; call close() first"
            ),
            PoolError::ManagerPanicked { message } => {
                write!(f, "the pool's manager thread panicked: {message}")
            }
            PoolError::InvalidOption { option, problem } => {
                write!(f, "invalid pool option {option}: {problem}")
            }
        }
    }
}

impl std::error::Error for PoolError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            PoolError::Spawn(err) => Some(err),
            PoolError::Io { source, .. } => Some(source),
            _ => None,
        }
    }
}
