//! The manager's view of one worker: its process, its task and wake pipes, its result ring,
//! the chunks in flight, the claim word it shares with the worker; revoking queued chunks,
//! reading what it staged before it died, and killing it.

use std::collections::VecDeque;
use std::fs::File;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use fork_sys::{Pid, SharedAtomics, SharedRing, Signal};
use proc_core::codec::FrameBuffer;
use proc_core::{Process, StartMethod};

use crate::bound::BoundValue;
use crate::launch::StartedWorker;
use crate::manager::Task;
use crate::manager::outgoing::Outgoing;
use crate::protocol;
use crate::result_writer::STAGED;
use crate::worker::{BUSY_NANOS, CHUNKS_RUN, CLAIM, REVOKED};

/// How many bound values a worker keeps.
const BOUND_VALUES_KEPT: usize = 8;

pub(crate) struct Worker {
    pub(crate) process: Process<()>,
    /// The task pipe's write end, non-blocking.
    pub(crate) tasks: Option<File>,
    /// The wake pipe's read end, non-blocking; `None` after end-of-file.
    pub(crate) wake: Option<File>,
    /// The ring the worker writes its results into; `None` for a worker on a stream (through
    /// a launcher), whose results come on `wake`, its stdout.
    pub(crate) ring: Option<SharedRing>,
    /// What was read from the ring and not yet taken as frames.
    pub(crate) frames: FrameBuffer,
    /// The sequence number of the next result frame.
    pub(crate) result_seq: u32,
    /// What is queued for the task pipe and not written yet.
    pub(crate) outgoing: Outgoing,
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
    /// Why the worker was killed for speaking out of protocol.
    pub(crate) violation: Option<String>,
    /// The worker could not set itself up, and said why: it exits.
    pub(crate) setup_failed: Option<String>,
    /// The bound values sent to the worker that it keeps, least recently used first.
    pub(crate) bound_values: VecDeque<u64>,
    /// A launched worker's stderr (non-blocking), forwarded line by line; `None` after its
    /// end, and for local workers, whose stderr is the program's.
    pub(crate) stderr: Option<File>,
    /// The start of a line of its stderr whose end has not come yet.
    pub(crate) stderr_line: Vec<u8>,
    /// A worker on a stream: the separator after the last frame has not been read yet.
    pub(crate) separator_due: bool,
    /// `BUSY_NANOS` and `CHUNKS_RUN` when last read for a time per chunk.
    pub(crate) busy_seen: (u64, u64),
}

pub(crate) struct InFlight {
    pub(crate) task: Task,
    /// 1 for the first chunk this worker was sent, and so on.
    pub(crate) seq: u64,
    pub(crate) dispatched: Instant,
    /// Items whose results were delivered, after the task's `skip`.
    pub(crate) delivered: u32,
}

impl InFlight {
    /// The index in its chunk of the next item whose result is due.
    pub(crate) fn next_item(&self) -> u32 {
        self.task.skip + self.delivered
    }
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
        self.outgoing.pending() > 0
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

    /// The mean time the worker spent in each chunk it ran since this was last asked, by its
    /// own clock (`None` if it has finished none since).
    pub(crate) fn time_per_chunk(&mut self) -> Option<Duration> {
        let chunks = self.counters.get(CHUNKS_RUN).load(Ordering::Acquire);
        let busy = self.counters.get(BUSY_NANOS).load(Ordering::Relaxed);
        let (seen_busy, seen_chunks) = self.busy_seen;
        let ran = chunks.checked_sub(seen_chunks).filter(|&ran| ran > 0)?;
        self.busy_seen = (busy, chunks);
        Some(Duration::from_nanos(busy.saturating_sub(seen_busy) / ran))
    }

    /// Whether the worker holds chunks behind the one it runs that it has not started: what
    /// a revocation would take back.
    pub(crate) fn holds_unstarted(&self) -> bool {
        // A worker on a stream cannot be told (no shared claim word): nothing is revoked.
        self.ring.is_some()
            && self.in_flight.len() > 1
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

    /// Queues `value`'s frame for the worker unless it has it already; past
    /// [`BOUND_VALUES_KEPT`] values, the frame tells it to forget the least recently used.
    pub(crate) fn send_bound_value(&mut self, value: &BoundValue) {
        if let Some(at) = self.bound_values.iter().position(|&id| id == value.id) {
            self.bound_values.remove(at);
            self.bound_values.push_back(value.id);
            return;
        }
        let forget = if self.bound_values.len() >= BOUND_VALUES_KEPT {
            self.bound_values.pop_front().unwrap_or(0)
        } else {
            0
        };
        protocol::set_bound_forget(self.outgoing.push_copy(&value.frame), forget);
        self.bound_values.push_back(value.id);
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
        self.wake = None;
    }

    /// Whether the worker's results come on a stream (through a launcher), not a ring.
    pub(crate) fn on_stream(&self) -> bool {
        self.ring.is_none()
    }

    /// Whether its ring holds results not read yet (or cannot be read: it says so then).
    pub(crate) fn ring_has_results(&self) -> bool {
        self.ring
            .as_ref()
            .is_some_and(|ring| ring.available().map_or(true, |n| n > 0))
    }

    /// Reads and discards the wake bytes the worker sent (one read: the worker sends one
    /// byte per read of the parent's, and any left over only wake the manager once more);
    /// `wake` becomes `None` at end-of-file.
    pub(crate) fn drain_wake_pipe(&mut self) {
        let Some(pipe) = self.wake.as_mut() else {
            return;
        };
        let mut sink = [0u8; 64];
        loop {
            match std::io::Read::read(pipe, &mut sink) {
                Ok(0) => self.wake = None,
                Err(err) if err.kind() == std::io::ErrorKind::Interrupted => continue,
                Ok(_) | Err(_) => {}
            }
            return;
        }
    }

    /// Forwards what a launched worker wrote to its stderr, whole lines each prefixed with
    /// `[proc-pool worker PID] ` (PID the launcher's here), to this process's stderr; at its
    /// end, the last partial line too.
    pub(crate) fn forward_stderr(&mut self) {
        use std::io::Read;
        let Some(pipe) = self.stderr.as_mut() else {
            return;
        };
        let mut chunk = [0u8; 4096];
        let mut ended = false;
        loop {
            match pipe.read(&mut chunk) {
                Ok(0) => {
                    ended = true;
                    break;
                }
                Ok(n) => self.stderr_line.extend_from_slice(&chunk[..n]),
                Err(err) if err.kind() == std::io::ErrorKind::Interrupted => {}
                Err(_) => break,
            }
        }
        let prefix = format!("[proc-pool worker {}] ", self.pid());
        let mut out = Vec::new();
        while let Some(end) = self.stderr_line.iter().position(|&b| b == b'\n') {
            out.extend_from_slice(prefix.as_bytes());
            out.extend(self.stderr_line.drain(..=end));
        }
        if ended {
            if !self.stderr_line.is_empty() {
                out.extend_from_slice(prefix.as_bytes());
                out.append(&mut self.stderr_line);
                out.push(b'\n');
            }
            self.stderr = None;
        }
        if !out.is_empty() {
            let _ = std::io::Write::write_all(&mut std::io::stderr().lock(), &out);
        }
    }

    /// After the worker is gone: the part it had staged in its ring and not published (see
    /// `result_writer`), as `(item count, frame bytes)`; `None` when there is none or it
    /// cannot be read.
    pub(crate) fn staged_part(&self) -> Option<(u32, Vec<u8>)> {
        let staged = self.counters.get(STAGED).load(Ordering::Acquire);
        let (count, len) = (
            (staged >> 32) as u32,
            (staged & u64::from(u32::MAX)) as usize,
        );
        if len == 0 || self.frames.pending() > 0 {
            // Nothing staged, or a frame streaming through the ring was cut: its item is
            // lost (it fails), never run again.
            return None;
        }
        let mut bytes = Vec::new();
        self.ring.as_ref()?.read_unpublished(len, &mut bytes).ok()?;
        Some((count, bytes))
    }
}

impl Worker {
    /// The manager's record of a worker that just started.
    pub(crate) fn new(started: StartedWorker, max_frame_len: usize) -> Worker {
        Worker {
            process: started.process,
            tasks: Some(started.tasks),
            wake: Some(started.wake),
            ring: started.ring,
            frames: FrameBuffer::new(max_frame_len + protocol::RESULT_HEADER_LEN),
            result_seq: 1,
            outgoing: Outgoing::default(),
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
            violation: None,
            setup_failed: None,
            bound_values: VecDeque::new(),
            stderr: started.stderr,
            stderr_line: Vec::new(),
            separator_due: false,
            busy_seen: (0, 0),
        }
    }
}
