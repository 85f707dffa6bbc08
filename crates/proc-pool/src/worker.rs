//! A worker process's main loop: read task frames, run them, hand the result frames to a
//! flusher thread that writes them out.
//!
//! **Batching.** The flusher writes whatever results have piled up, at most [`BATCH_WAIT`]
//! after the first of them, or at once when the main thread is about to wait for more tasks.
//! One `write` (and one wake-up of the parent) thus carries hundreds of small results, and
//! no result waits behind a slow task that follows it.
//!
//! **Claiming.** Before each chunk the worker *claims* it in memory shared with the parent
//! (`claim` below): if the chunk then kills the worker, the parent knows exactly which task
//! did; and the parent can *revoke* the chunks queued behind a slow one, which the worker then
//! skips, so they run elsewhere instead of waiting.

use std::fs::File;
use std::io::{self, Write};
use std::panic::catch_unwind;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use fork_sys::SharedAtomics;
use proc_core::codec::FrameBuffer;

use crate::locking::{lock, wait, wait_until};
use crate::protocol::{self, ResultWriter, TaskRequest};

/// Index in a worker's shared counters: the claim word. Normally the sequence number of the
/// last chunk the worker started. The parent may set it to `REVOKED | m`: chunks up to `m`
/// that are not started yet are taken back, and the worker must skip them.
pub(crate) const CLAIM: usize = 0;
/// Index in a worker's shared counters: when the current chunk started, in nanoseconds
/// after the pool's clock base (written only when the pool has a task timeout).
pub(crate) const STARTED_AT: usize = 1;
/// Index in a worker's shared counters: 1 once the initializer has returned.
pub(crate) const READY: usize = 2;
/// How many shared counters a worker has.
pub(crate) const COUNTERS: usize = 3;
/// The flag of a claim word whose chunks up to the rest were revoked by the parent.
pub(crate) const REVOKED: u64 = 1 << 63;

/// How long the flusher lets results pile up before writing them.
const BATCH_WAIT: Duration = Duration::from_micros(50);
/// Write at once when this much is waiting.
const BATCH_BYTES: usize = 256 * 1024;

/// Everything a worker starts with, moved into the forked child.
#[derive(Debug)]
pub(crate) struct WorkerSetup<'a> {
    pub(crate) tasks: File,
    pub(crate) results: File,
    pub(crate) counters: &'a SharedAtomics,
    pub(crate) initializer: Option<fn()>,
    /// Chunks to run before exiting; `None` for no limit.
    pub(crate) max_tasks: Option<u64>,
    pub(crate) max_frame_len: usize,
    /// Set when the pool has a task timeout: record each chunk's start time.
    /// The pool's clock base on the system's monotonic clock ([`fork_sys::monotonic_now`],
    /// the same in every process of the machine, so exec'd workers share it too).
    pub(crate) clock_base: Option<Duration>,
}

/// Runs the worker until the parent sends the shutdown frame, closes the task pipe, or the
/// task budget is spent. Returns normally in every case (the caller `_exit`s), once every
/// result has been written.
pub(crate) fn run(setup: WorkerSetup<'_>) {
    // A group of its own: a timeout or terminate then kills what its tasks started, too. Out
    // of the terminal's foreground group, a task touching the terminal would stop the worker
    // for ever (SIGTTIN, SIGTTOU); ignored, the read or write fails with EIO instead.
    let _ = fork_sys::exec::setpgid(None);
    let _ = fork_sys::ignore_signal(fork_sys::Signal::TTIN);
    let _ = fork_sys::ignore_signal(fork_sys::Signal::TTOU);
    let mut out = ResultWriter::new(setup.max_frame_len);
    if let Some(initializer) = setup.initializer {
        if let Err(panic) = catch_unwind(initializer) {
            out.initializer_failed(&protocol::panic_message(panic.as_ref()));
            let mut results = setup.results;
            let _ = results.write_all(out.pending());
            return;
        }
    }
    let outbox = Arc::new(Outbox::default());
    let results = Arc::new(setup.results);
    let flusher = {
        let outbox = outbox.clone();
        let results = results.clone();
        std::thread::Builder::new()
            .name("pool-flusher".into())
            .spawn(move || outbox.flush_until_closed(&results))
    };
    let flusher = match flusher {
        Ok(flusher) => flusher,
        Err(err) => {
            // Say why (a process limit, say) and exit: the parent treats it like a failed
            // fork, retrying later and failing the queue meanwhile with this reason.
            report_setup_failure(
                &results,
                setup.max_frame_len,
                &format!("a worker could not start its result thread: {err}"),
            );
            return;
        }
    };
    setup.counters.get(READY).store(1, Ordering::Release);
    let plan = Plan {
        counters: setup.counters,
        max_tasks: setup.max_tasks,
        max_frame_len: setup.max_frame_len,
        clock_base: setup.clock_base,
    };
    run_tasks(&setup.tasks, &plan, &mut out, &outbox);
    outbox.close();
    let _ = flusher.join();
}

/// Tells the parent why this worker cannot run (as a `SETUP_FAILED` frame), for a worker that
/// fails before `run`.
pub(crate) fn report_setup_failure(mut results: &File, max_frame_len: usize, message: &str) {
    let mut out = ResultWriter::new(max_frame_len);
    out.setup_failed(message);
    let _ = results.write_all(out.pending());
}

/// What the task loop needs of the setup.
struct Plan<'a> {
    counters: &'a SharedAtomics,
    max_tasks: Option<u64>,
    max_frame_len: usize,
    clock_base: Option<Duration>,
}

fn run_tasks(mut tasks: &File, setup: &Plan<'_>, out: &mut ResultWriter, outbox: &Outbox) {
    let claim = setup.counters.get(CLAIM);
    // Task frames are at most the frame limit plus their own header.
    let mut frames = FrameBuffer::new(
        setup
            .max_frame_len
            .saturating_add(protocol::TASK_HEADER_LEN),
    );
    let mut seq: u64 = 0;
    let mut ran: u64 = 0;
    loop {
        loop {
            let request = match frames.next_payload() {
                Ok(Some(payload)) => protocol::parse_task(payload),
                Ok(None) => break,
                // The parent never sends a bad frame; if one came anyway, nothing after it
                // can be trusted: stop, and the parent sees which chunk was in flight.
                Err(_) => return,
            };
            let Some(TaskRequest::Run { header, args }) = request else {
                return; // Shutdown.
            };
            seq += 1;
            // The start time first: the parent reads the claim, then the time, so it never
            // pairs this chunk with the previous chunk's start.
            if let Some(base) = setup.clock_base {
                let since = fork_sys::monotonic_now().saturating_sub(base);
                let nanos = u64::try_from(since.as_nanos()).unwrap_or(u64::MAX);
                setup
                    .counters
                    .get(STARTED_AT)
                    .store(nanos, Ordering::Release);
            }
            if !try_claim(claim, seq) {
                continue; // Revoked: the parent gave it to another worker.
            }
            out.begin(header.id);
            header.function.run(args, out);
            // What the task printed goes out before its result. Here, not in the flusher,
            // which must never wait on a lock a task may hold.
            let _ = io::stdout().flush();
            let more = frames.has_frame().unwrap_or(false);
            if !outbox.post(out, !more) {
                return; // The parent is gone.
            }
            ran += 1;
            if setup.max_tasks.is_some_and(|max| ran >= max) {
                return;
            }
        }
        match frames.read_from(&mut tasks) {
            Ok(0) => return,
            Ok(_) => {}
            Err(err) if err.kind() == io::ErrorKind::Interrupted => {}
            Err(_) => return,
        }
    }
}

/// Claims chunk `seq` before running it; false if the parent revoked it.
fn try_claim(claim: &AtomicU64, seq: u64) -> bool {
    let mut current = claim.load(Ordering::Acquire);
    loop {
        if current & REVOKED != 0 && seq <= current & !REVOKED {
            return false;
        }
        match claim.compare_exchange_weak(current, seq, Ordering::AcqRel, Ordering::Acquire) {
            Ok(_) => return true,
            Err(now) => current = now,
        }
    }
}

/// Result frames on their way from the main thread to the flusher.
#[derive(Debug, Default)]
struct Outbox {
    state: Mutex<OutboxState>,
    changed: Condvar,
}

#[derive(Debug, Default)]
struct OutboxState {
    pending: Vec<u8>,
    /// Write now: the main thread is about to wait for tasks.
    urgent: bool,
    closed: bool,
    /// A write failed: the parent is gone.
    failed: bool,
}

impl Outbox {
    fn lock(&self) -> MutexGuard<'_, OutboxState> {
        lock(&self.state)
    }

    /// Hands over the finished chunk's frames; `urgent` when no further task is buffered.
    /// False once the parent is gone.
    fn post(&self, out: &mut ResultWriter, urgent: bool) -> bool {
        let mut state = self.lock();
        if state.failed {
            return false;
        }
        let was_empty = state.pending.is_empty();
        if was_empty {
            // Hand the buffer over whole instead of copying it.
            out.swap_pending(&mut state.pending);
        } else {
            state.pending.extend_from_slice(out.pending());
            out.clear();
        }
        state.urgent |= urgent;
        if was_empty || urgent || state.pending.len() >= BATCH_BYTES {
            self.changed.notify_one();
        }
        true
    }

    fn close(&self) {
        self.lock().closed = true;
        self.changed.notify_one();
    }

    /// The flusher thread: writes batches until closed and drained.
    fn flush_until_closed(&self, results: &File) {
        let mut results = results;
        let mut batch = Vec::new();
        loop {
            {
                let mut state = self.lock();
                while state.pending.is_empty() && !state.closed {
                    state = wait(&self.changed, state);
                }
                // Let a batch form, unless it is wanted now.
                let deadline = Instant::now() + BATCH_WAIT;
                while !state.urgent && !state.closed && state.pending.len() < BATCH_BYTES {
                    if Instant::now() >= deadline {
                        break;
                    }
                    state = wait_until(&self.changed, state, deadline);
                }
                if state.pending.is_empty() && state.closed {
                    return;
                }
                std::mem::swap(&mut state.pending, &mut batch);
                state.urgent = false;
            }
            if results.write_all(&batch).is_err() {
                self.lock().failed = true;
                return;
            }
            batch.clear();
        }
    }
}
