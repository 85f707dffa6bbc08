//! The manager's view of one worker: its process, its two pipes, the chunks in flight, the
//! claim word it shares with the worker; revoking queued chunks and killing it.

use std::collections::VecDeque;
use std::fs::File;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use fork_sys::{Pid, SharedAtomics, Signal};
use proc_core::codec::FrameBuffer;
use proc_core::{Process, StartMethod};

use crate::launch::StartedWorker;
use crate::manager::Task;
use crate::protocol;
use crate::worker::{CLAIM, REVOKED};

pub(crate) struct Worker {
    pub(crate) process: Process<()>,
    /// The task pipe's write end, non-blocking.
    pub(crate) tasks: Option<File>,
    /// The result pipe's read end, non-blocking; `None` after end-of-file.
    pub(crate) results: Option<File>,
    pub(crate) frames: FrameBuffer,
    pub(crate) unwritten: Vec<u8>,
    pub(crate) written: usize,
    pub(crate) in_flight: VecDeque<InFlight>,
    /// Chunks sent (the last one's sequence number).
    pub(crate) sent: u64,
    /// Chunks sent and then revoked: they do not count against `max_tasks_per_child`, since
    /// the worker never runs them.
    pub(crate) revoked: u64,
    /// Memory shared with the worker: see `worker::CLAIM`.
    pub(crate) counters: SharedAtomics,
    /// The last chunk the worker had started when the parent last revoked its queued
    /// chunks (the claim word then holds the revocation, not this).
    pub(crate) started_at_revoke: u64,
    pub(crate) last_progress: Instant,
    /// Set when the manager killed the worker: the task it had started then (by sequence
    /// number) overran this timeout.
    pub(crate) timed_out: Option<(u64, Duration)>,
    /// Set when the manager killed the worker for being stopped: the chunk it had started
    /// then (by sequence number), and how long it had gone without progress.
    pub(crate) stopped: Option<(u64, Duration)>,
    /// When to look next whether the worker is stopped (while it holds tasks and makes no
    /// progress).
    pub(crate) next_stop_check: Instant,
    /// When the worker was first seen stopped, in the current run of checks.
    pub(crate) stopped_since: Option<Instant>,
    /// Killed for speaking out of protocol (or the shutdown frame was sent): takes nothing.
    pub(crate) retired: bool,
    /// The worker could not set itself up, and said why: it exits.
    pub(crate) setup_failed: Option<String>,
}

pub(crate) struct InFlight {
    pub(crate) task: Task,
    /// 1 for the first chunk this worker was sent, and so on.
    pub(crate) seq: u64,
    pub(crate) dispatched: Instant,
    /// Some of its results were delivered already.
    pub(crate) partial: bool,
}

impl Worker {
    pub(crate) fn pid(&self) -> Pid {
        self.process.pid()
    }

    pub(crate) fn accepts(&self, max_tasks: Option<u64>) -> bool {
        !self.retired
            && self.tasks.is_some()
            && self.timed_out.is_none()
            && self.stopped.is_none()
            && max_tasks.is_none_or(|max| self.sent - self.revoked < max)
    }

    pub(crate) fn has_unwritten(&self) -> bool {
        self.written < self.unwritten.len()
    }

    /// The sequence number of the last chunk the worker started.
    pub(crate) fn started(&self) -> u64 {
        let claim = self.counters.get(CLAIM).load(Ordering::Acquire);
        if claim & REVOKED != 0 {
            self.started_at_revoke
        } else {
            claim
        }
    }

    /// Whether the worker holds chunks behind the one it runs that it has not started: what
    /// a revocation would take back.
    pub(crate) fn holds_unstarted(&self) -> bool {
        self.in_flight.len() > 1
            && self
                .in_flight
                .back()
                .is_some_and(|f| f.seq > self.started())
    }

    /// Takes back the chunks the worker holds but has not started (it will skip them);
    /// returns their tasks, in order.
    pub(crate) fn revoke_unstarted(&mut self) -> Vec<Task> {
        let last_sent = self.sent;
        let claim = self.counters.get(CLAIM);
        let mut current = claim.load(Ordering::Acquire);
        let started = loop {
            let started = if current & REVOKED != 0 {
                self.started_at_revoke
            } else {
                current
            };
            if last_sent <= started {
                return Vec::new();
            }
            match claim.compare_exchange(
                current,
                REVOKED | last_sent,
                Ordering::AcqRel,
                Ordering::Acquire,
            ) {
                Ok(_) => break started,
                Err(now) => current = now,
            }
        };
        self.started_at_revoke = started;
        let mut revoked = Vec::new();
        while self.in_flight.back().is_some_and(|f| f.seq > started) {
            if let Some(flight) = self.in_flight.pop_back() {
                revoked.push(flight.task);
            }
        }
        revoked.reverse();
        self.revoked += revoked.len() as u64;
        revoked
    }

    /// SIGKILL to the worker and its process group (what its tasks started), before it is
    /// reaped (so the pid, which is also the group's id, cannot have been reused). A
    /// fork server's worker is reaped by the server, which kills its group first: only the
    /// worker is signalled from here (through its pidfd, never a stranger).
    pub(crate) fn kill(&self) {
        self.kill_group_if_ours();
        let _ = self.process.kill();
    }

    /// SIGKILL to the worker's process group, when this process reaps the worker (not a fork
    /// server's): call only while the worker is unreaped.
    pub(crate) fn kill_group_if_ours(&self) {
        if self.process.start_method() != StartMethod::ForkServer {
            let _ = fork_sys::kill_group(self.pid(), Signal::KILL);
        }
    }

    /// In a freshly forked sibling: close this worker's parent-side pipes, which the new
    /// worker inherited, so they do not outlive the parent's copies (a worker waiting for
    /// end-of-file on its task pipe would wait for ever). Nothing else of the parent's state
    /// is touched: the child never returns to it.
    pub(crate) fn close_inherited_pipes(&mut self) {
        self.tasks = None;
        self.results = None;
    }
}

impl Worker {
    /// The manager's record of a worker that just started.
    pub(crate) fn new(started: StartedWorker, max_frame_len: usize) -> Worker {
        Worker {
            process: started.process,
            tasks: Some(started.tasks),
            results: Some(started.results),
            frames: FrameBuffer::new(max_frame_len + protocol::RESULT_HEADER_LEN),
            unwritten: Vec::new(),
            written: 0,
            in_flight: VecDeque::new(),
            sent: 0,
            revoked: 0,
            counters: started.counters,
            started_at_revoke: 0,
            last_progress: Instant::now(),
            timed_out: None,
            stopped: None,
            next_stop_check: Instant::now(),
            stopped_since: None,
            retired: false,
            setup_failed: None,
        }
    }
}
