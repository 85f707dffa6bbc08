//! Starting a worker, by the pool's start method: a process, the two pipes the manager talks
//! to it on, and the counters it shares with the manager. The manager schedules; this module
//! is the only one that knows how a worker comes to exist.
//!
//! - `Fork`: the manager thread forks itself through `Process::spawn` (which holds stdout's
//!   and stderr's locks across the fork); the child closes the pool's descriptors it
//!   inherited and runs the worker loop. Counters and result ring: anonymous shared mappings.
//! - `ForkServer` and `Spawn`: proc-core starts a function child, [`launched_worker`], and
//!   hands it its task pipe, its wake pipe and the memory files of its counters and its
//!   result ring (`SCM_RIGHTS`; it maps them and closes them); it inherits nothing else of
//!   ours. Its initializer and the pool's clock cross as a [`WorkerConfig`]. A `ForkServer`
//!   worker's group is killed by the server when it exits.

use std::fs::File;
use std::io;
use std::os::fd::OwnedFd;
use std::time::Duration;

use fork_sys::{SharedAtomics, SharedRing};
use proc_core::{Launcher, Process, ProcessError, StartMethod};
use serde::{Deserialize, Serialize};

use crate::manager::Config;
use crate::task_fn;
use crate::worker::{self, COUNTERS, WorkerSetup};
use crate::worker_handle::Worker;

/// Requested size of each task pipe: room for a batch in one `write` (kept modest: the
/// kernel caps the pipe memory of each user).
const PIPE_SIZE: usize = 256 << 10;
/// Bytes of each worker's result ring: the size the result pipes had. (1 MiB measured slower
/// for fresh pools: every page is touched once, on each side, before it is reused.)
pub(crate) const RING_CAPACITY: usize = 256 << 10;

/// The name every worker process carries (in errors, and in `ps` on Linux).
const WORKER_NAME: &str = "proc-pool worker";

/// A worker that has just started, and the manager's ends of its pipes.
#[derive(Debug)]
pub(crate) struct StartedWorker {
    pub(crate) process: Process<()>,
    /// The task pipe's write end, non-blocking.
    pub(crate) tasks: File,
    /// The wake pipe's read end, non-blocking.
    pub(crate) wake: File,
    pub(crate) counters: SharedAtomics,
    /// The ring the worker writes its results into; `None` for a worker on a stream, whose
    /// results come on `wake`.
    pub(crate) ring: Option<SharedRing>,
    /// A launched worker's stderr, for the manager to forward line by line.
    pub(crate) stderr: Option<File>,
}

/// What a worker started by exec needs to know that a forked one would have inherited.
#[derive(Debug, Serialize, Deserialize)]
pub(crate) struct WorkerConfig {
    /// The initializer, as a code offset.
    initializer: Option<u64>,
    max_tasks: Option<u64>,
    max_frame_len: u64,
    ring_capacity: u64,
    /// The pool's clock base, on the system's monotonic clock (`None`: a worker on a stream,
    /// whose chunk starts the parent stamps).
    clock_base: Option<Duration>,
}

/// Starts one worker. Under `Fork`, the child closes `siblings`' pipes and `wake`, which it
/// inherited. `clock_base` is the pool's clock base on the system's monotonic clock.
pub(crate) fn start_worker(
    config: &Config,
    clock_base: Duration,
    siblings: &mut [Worker],
    wake: &mut Option<File>,
) -> Result<StartedWorker, ProcessError> {
    let spawn_error = |source| ProcessError::Spawn {
        name: Some(WORKER_NAME.into()),
        source,
    };
    if let Some(launcher) = &config.launcher {
        return start_streamed_worker(config, launcher.clone());
    }
    let (tasks_read, tasks_write) = fork_sys::pipe().map_err(spawn_error)?;
    let (wake_read, wake_write) = fork_sys::pipe().map_err(spawn_error)?;
    // Bigger pipes carry bigger batches per write; the default is fine if refused.
    let _ = fork_sys::set_pipe_size(&tasks_write, PIPE_SIZE);
    fork_sys::set_nonblocking(&tasks_write, true).map_err(spawn_error)?;
    fork_sys::set_nonblocking(&wake_read, true).map_err(spawn_error)?;
    let builder = Process::builder()
        .name(WORKER_NAME)
        .daemon(true)
        .kill_group_on_exit(true);
    let (tasks_write, wake_read) = (File::from(tasks_write), File::from(wake_read));
    let (process, counters, ring, tasks_write, wake_read) = match config.start_method {
        StartMethod::Fork => {
            let counters = SharedAtomics::new(COUNTERS).map_err(spawn_error)?;
            let mut ring = SharedRing::new(RING_CAPACITY).map_err(spawn_error)?;
            let setup = WorkerSetup {
                tasks: File::from(tasks_read),
                wake: File::from(wake_write),
                // The child writes through its copy of this mapping, the parent reads
                // through its own: `fork` shares a `MAP_SHARED` mapping.
                ring: &mut ring,
                counters: &counters,
                initializer: config.initializer,
                max_tasks: config.max_tasks_per_child,
                max_frame_len: config.max_frame_len,
                clock_base: Some(clock_base),
            };
            let mut parent_ends = Some((tasks_write, wake_read));
            let process = builder.spawn(|| {
                // In the worker. It inherited every descriptor of the parent's: close the
                // pool's own (its parent-side pipe ends, its siblings', the wake pipe).
                drop(parent_ends.take());
                drop(wake.take());
                for sibling in siblings.iter_mut() {
                    sibling.close_inherited_pipes();
                }
                worker::run(setup);
            })?;
            let Some((tasks_write, wake_read)) = parent_ends else {
                // Only the child takes them; in the parent they are always still here.
                return Err(spawn_error(io::Error::other("worker pipes vanished")));
            };
            (process, counters, ring, tasks_write, wake_read)
        }
        method => {
            let counters = SharedAtomics::new_shareable(COUNTERS).map_err(spawn_error)?;
            let counters_fd = counters
                .fd()
                .ok_or_else(|| io::Error::other("shareable counters without a memory file"))
                .and_then(|fd| fd.try_clone_to_owned())
                .map_err(spawn_error)?;
            let (ring, ring_fd) = SharedRing::new_shareable(RING_CAPACITY).map_err(spawn_error)?;
            let worker_config = WorkerConfig {
                initializer: config.initializer.map(task_fn::initializer_offset),
                max_tasks: config.max_tasks_per_child,
                max_frame_len: config.max_frame_len as u64,
                ring_capacity: ring.capacity() as u64,
                clock_base: Some(clock_base),
            };
            let fds: Vec<OwnedFd> = vec![tasks_read, wake_write, counters_fd, ring_fd];
            let process = builder.start_method(method).spawn_fn_with_fds(
                launched_worker,
                worker_config,
                fds,
            )?;
            (process, counters, ring, tasks_write, wake_read)
        }
    };
    Ok(StartedWorker {
        process,
        tasks: tasks_write,
        wake: wake_read,
        counters,
        ring: Some(ring),
        stderr: None,
    })
}

/// Starts a worker through `launcher`: its stdin and stdout are the task and result streams.
fn start_streamed_worker(
    config: &Config,
    launcher: Launcher,
) -> Result<StartedWorker, ProcessError> {
    let spawn_error = |source| ProcessError::Spawn {
        name: Some(WORKER_NAME.into()),
        source,
    };
    let worker_config = WorkerConfig {
        initializer: config.initializer.map(task_fn::initializer_offset),
        max_tasks: config.max_tasks_per_child,
        max_frame_len: config.max_frame_len as u64,
        ring_capacity: 0,
        clock_base: None,
    };
    let (process, streams) = Process::builder()
        .name(WORKER_NAME)
        .daemon(true)
        .start_method(StartMethod::Spawn)
        .launcher(launcher)
        .spawn_fn_with_streams(streamed_worker, worker_config)?;
    // The manager's own record of what the worker says in band (claims, readiness).
    let counters = SharedAtomics::new(COUNTERS).map_err(spawn_error)?;
    Ok(StartedWorker {
        process,
        tasks: streams.input,
        wake: streams.output,
        counters,
        ring: None,
        stderr: Some(streams.stderr),
    })
}

/// A worker started through a launcher: `fds` are its input and output streams.
fn streamed_worker(config: WorkerConfig, fds: Vec<OwnedFd>) {
    let max_frame_len = usize::try_from(config.max_frame_len).unwrap_or(usize::MAX);
    let Ok([input, output]) = <[OwnedFd; 2]>::try_from(fds) else {
        worker::report_setup_failure("a pool worker was launched without its two streams");
    };
    worker::run_streamed(
        File::from(input),
        File::from(output),
        config.initializer.map(task_fn::initializer_at),
        config.max_tasks,
        max_frame_len,
    );
}

/// A worker started by exec (or forked by the fork server): its pipes and shared memory come
/// as `fds` (task pipe, wake pipe, the memory files of its counters and of its ring).
fn launched_worker(config: WorkerConfig, fds: Vec<OwnedFd>) {
    let max_frame_len = usize::try_from(config.max_frame_len).unwrap_or(usize::MAX);
    let Ok([tasks, wake, counters, ring]) = <[OwnedFd; 4]>::try_from(fds) else {
        worker::report_setup_failure("a pool worker was started without its four descriptors");
    };
    let counters = SharedAtomics::attach(counters, COUNTERS).unwrap_or_else(|err| {
        worker::report_setup_failure(&format!(
            "a worker could not map the counters it shares with the pool: {err}"
        ))
    });
    let capacity = usize::try_from(config.ring_capacity).unwrap_or(usize::MAX);
    let mut ring = SharedRing::attach(ring, capacity).unwrap_or_else(|err| {
        worker::report_setup_failure(&format!(
            "a worker could not map the ring it sends its results through: {err}"
        ))
    });
    worker::run(WorkerSetup {
        tasks: File::from(tasks),
        wake: File::from(wake),
        ring: &mut ring,
        counters: &counters,
        initializer: config.initializer.map(task_fn::initializer_at),
        max_tasks: config.max_tasks,
        max_frame_len,
        clock_base: config.clock_base,
    });
}
