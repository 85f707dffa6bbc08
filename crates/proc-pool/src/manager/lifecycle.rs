//! The workers' lifecycle, as the manager drives it: keeping the worker count (starting
//! replacements through `launch`, retrying after failed starts), reaping a worker that exited
//! and settling the tasks it held, and shutting the pool down (close) or killing it
//! (terminate). The scheduling loop itself is in the parent module.

use std::io::Write;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use fork_sys::{ExitStatus, Interest};
use proc_core::ProcessError;

use super::{EARLY_DEATHS_LIMIT, Manager, SHUTDOWN_GRACE, SHUTDOWN_SLICE, SPAWN_RETRY};
use crate::error::TaskError;
use crate::launch;
use crate::locking::lock;
use crate::protocol::{self, EncodedItems, Origin};
use crate::worker::READY;
use crate::worker_handle::Worker;

impl Manager {
    pub(super) fn keep_worker_count(&mut self, now: Instant) {
        let wanted = !(self.closed && self.queue.is_empty()) && self.broken.is_none();
        if !wanted {
            self.spawn_retry_at = None;
            return;
        }
        if self.spawn_retry_at.is_some_and(|at| now < at) {
            return;
        }
        self.spawn_retry_at = None;
        while self.workers.len() < self.config.workers {
            if let Err(err) = self.spawn_worker() {
                self.spawn_retry_at = Some(now + SPAWN_RETRY);
                if self.workers.is_empty() {
                    // Nobody can run the queue: fail it now rather than hang; later tasks
                    // get another try at spawning.
                    let error = TaskError::WorkerSpawnFailed {
                        message: err.to_string(),
                    };
                    for mut task in self.queue.drain(..) {
                        task.reply.fail(error.clone());
                    }
                }
                return;
            }
        }
    }

    pub(super) fn spawn_worker(&mut self) -> Result<(), ProcessError> {
        let started = launch::start_worker(
            &self.config,
            self.clock_base_monotonic,
            &mut self.workers,
            &mut self.wake,
        )?;
        lock(&self.shared.pids).push(started.process.pid());
        self.workers
            .push(Worker::new(started, self.config.max_frame_len));
        Ok(())
    }

    /// If the worker at `index` has exited: reads what it left in its pipe, settles its
    /// tasks, and removes it (a replacement is forked on the next turn of the loop).
    pub(super) fn reap_if_exited(&mut self, index: usize) {
        let death = match self.workers[index].process.try_status() {
            Ok(Some(status)) => Death::Exited(status),
            Ok(None) => return,
            // ECHILD: somebody else reaped it (SIGCHLD ignored, a `waitpid(-1)` elsewhere).
            // It is gone all the same; only how it ended is lost.
            Err(err) => Death::Lost(err.to_string()),
        };
        // Everything it wrote is in its ring now: read it all, then what it had staged.
        while self.read_results(index, Instant::now(), true) > 0 {}
        self.recover_staged(index);
        // What it said last (a launched worker's dying words).
        self.workers[index].forward_stderr();
        let worker = self.workers.remove(index);
        let pid = worker.pid();
        lock(&self.shared.pids).retain(|&p| p != pid);
        self.settle_dead_worker(worker, death);
    }

    pub(super) fn settle_dead_worker(&mut self, mut worker: Worker, death: Death) {
        if let Some(reason) = worker.setup_failed.take() {
            // Like a failed fork: its tasks never started; try again later, and if no worker
            // is left meanwhile, fail the queue with the reason rather than let it wait.
            for flight in worker.in_flight.drain(..).rev() {
                self.queue.push_front(flight.task);
            }
            self.spawn_retry_at = Some(Instant::now() + SPAWN_RETRY);
            if self.workers.is_empty() {
                let error = TaskError::WorkerSpawnFailed { message: reason };
                for mut task in self.queue.drain(..) {
                    task.reply.fail(error.clone());
                }
            }
            return;
        }
        let pid = worker.pid();
        let started = worker.started();
        let ready = worker.counters.get(READY).load(Ordering::Acquire) == 1;
        let mut requeue = Vec::new();
        for mut flight in worker.in_flight.drain(..) {
            if flight.seq > started {
                // Never started: it runs elsewhere.
                requeue.push(flight.task);
                continue;
            }
            let task = flight.task.id;
            // The item that was running (or, for a chunk before the running one, the first
            // whose result was lost with the worker): it started, so it never runs again,
            // unless the pool may retry it; the items after it never started.
            let item = flight.next_item();
            let running = flight.seq == started;
            if item >= flight.task.items {
                // Every item returned and is delivered; only the chunk's end was not said.
                let origin = Origin { task, pid };
                let none = EncodedItems {
                    bytes: &[],
                    values_only: false,
                    count: 0,
                };
                flight.task.reply.deliver(item as usize, none, true, origin);
                continue;
            }
            let error = match (worker.timed_out, &death) {
                _ if worker.violation.is_some() => TaskError::ProtocolViolation {
                    task,
                    pid,
                    message: worker.violation.clone().unwrap_or_default(),
                },
                (Some((seq, after)), _) if seq == flight.seq => {
                    TaskError::Timeout { task, pid, after }
                }
                _ if worker.stopped.is_some_and(|(seq, _)| seq == flight.seq) => {
                    let after = worker.stopped.map_or(Duration::ZERO, |(_, after)| after);
                    TaskError::WorkerStopped { task, pid, after }
                }
                // Killed for a chunk that overran but finished before the signal landed:
                // this one did nothing wrong, and its item never returned: it runs again.
                (Some(_), _) if running => {
                    requeue.push(flight.task.resume_at(item));
                    continue;
                }
                (_, Death::Exited(status)) => TaskError::WorkerDied {
                    task,
                    pid,
                    status: *status,
                },
                (_, Death::Lost(reason)) => TaskError::WorkerLost {
                    task,
                    pid,
                    reason: reason.clone(),
                },
            };
            if !running {
                // Its results should all have been in the ring before the next chunk
                // started; they are not (a violation): fail what is left, never rerun.
                flight.task.reply.fail(error);
                continue;
            }
            // Deaths under this item before (attempts count per item).
            let tried = if item == flight.task.skip {
                flight.task.attempts
            } else {
                0
            };
            if error.is_retriable() && tried < self.config.retries {
                let mut again = flight.task.resume_at(item);
                again.attempts = tried + 1;
                requeue.push(again);
                continue;
            }
            let error = if tried > 0 {
                TaskError::RetriesExhausted {
                    task,
                    attempts: tried + 1,
                    last: Box::new(error),
                }
            } else {
                error
            };
            if item + 1 >= flight.task.items {
                flight.task.reply.fail(error);
            } else {
                // The rest of the chunk never started: it runs elsewhere.
                flight.task.reply.fail_one(error);
                requeue.push(flight.task.resume_at(item + 1));
            }
        }
        for task in requeue.into_iter().rev() {
            self.queue.push_front(task);
        }
        if ready {
            self.early_deaths = 0;
            return;
        }
        // Died before its initializer returned (abort, exit, a signal): after a few in a
        // row, stop forking replacements that die the same way.
        self.early_deaths += 1;
        if self.early_deaths >= EARLY_DEATHS_LIMIT {
            let how = match &death {
                Death::Exited(status) => status.to_string(),
                Death::Lost(reason) => reason.clone(),
            };
            let times = self.early_deaths;
            self.break_pool(match self.config.initializer {
                Some(_) => TaskError::InitializerFailed {
                    pid,
                    message: format!(
                        "the worker died before its initializer returned ({how}), {times} workers in a row"
                    ),
                },
                None => TaskError::WorkerSpawnFailed {
                    message: format!(
                        "workers die before they are ready ({how}), {times} in a row"
                    ),
                },
            });
        }
    }

    /// Close, after the last task: ask every worker to exit, wait for them, reap them. A
    /// terminate request (or the grace period running out) turns the wait into a kill.
    pub(super) fn shut_down(&mut self) {
        for worker in &mut self.workers {
            if let Some(mut pipe) = worker.tasks.take() {
                let mut frame = Vec::new();
                protocol::encode_shutdown(&mut frame);
                // The pipe is empty (every task was answered), so this small write fits.
                let _ = pipe.write_all(&frame);
            }
            worker.wake = None;
        }
        let deadline = Instant::now() + SHUTDOWN_GRACE;
        while let Some(worker) = self.workers.last_mut() {
            if let Some(exit_fd) = worker.process.exit_fd() {
                // Exited, not yet reaped: what its tasks left in its group goes with it.
                let exited = fork_sys::poll(&[(exit_fd, Interest::Read)], Some(SHUTDOWN_SLICE))
                    .is_ok_and(|ready| ready.first().is_some_and(|r| r.is_ready()));
                if exited {
                    worker.kill_group_if_ours();
                }
            }
            match worker.process.join_timeout(SHUTDOWN_SLICE) {
                Ok(None) => {
                    let terminate = lock(&self.shared.inbox).terminate;
                    if terminate || Instant::now() >= deadline {
                        for worker in &self.workers {
                            worker.kill();
                        }
                    }
                }
                Ok(Some(())) | Err(_) => {
                    self.workers.pop();
                }
            }
        }
        lock(&self.shared.pids).clear();
        self.refuse(TaskError::PoolClosed);
    }

    /// Kill every worker now, reap them, and fail every task with `PoolTerminated`.
    pub(super) fn terminate(&mut self) {
        for worker in &self.workers {
            worker.kill();
        }
        for worker in self.workers.drain(..) {
            let _ = worker.process.join();
        }
        lock(&self.shared.pids).clear();
        self.fail_everything(TaskError::PoolTerminated);
        self.refuse(TaskError::PoolTerminated);
    }
}

/// How a worker ended.
pub(super) enum Death {
    Exited(ExitStatus),
    /// Its status was taken by someone else; the reason says what the OS said.
    Lost(String),
}
