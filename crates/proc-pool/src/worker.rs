//! A worker process's main loop: read task frames, run them, write result frames.
//!
//! Results are written in batches: after a chunk, the worker flushes only when it has no
//! further whole task frame buffered, when the chunk took long enough that a `write` is noise
//! next to it, or when a lot has piled up. That is how a pool of `fn(u64) -> u64` tasks moves
//! hundreds of thousands of results per second over one pipe. Before each chunk the worker
//! stores how many chunks it has started (and, with a task timeout, when) in memory shared
//! with the parent, so that if the chunk kills it, the parent knows exactly which task did.

use std::fs::File;
use std::io::{self, Write};
use std::panic::catch_unwind;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use fork_sys::SharedAtomics;
use proc_core::codec::FrameBuffer;

use crate::protocol::{self, ResultWriter, TaskRequest};

/// Index in a worker's shared counters: chunks started.
pub(crate) const STARTED: usize = 0;
/// Index in a worker's shared counters: when the current chunk started, in nanoseconds
/// after the pool's clock base (written only when the pool has a task timeout).
pub(crate) const STARTED_AT: usize = 1;
/// How many shared counters a worker has.
pub(crate) const COUNTERS: usize = 2;

/// A chunk that took at least this long is followed by a flush of its results.
const EAGER_FLUSH: Duration = Duration::from_micros(20);
/// Flush once this much output has piled up.
const FLUSH_BYTES: usize = 256 * 1024;

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
    pub(crate) clock_base: Option<Instant>,
}

/// Runs the worker until the parent sends the shutdown frame, closes the task pipe, or the
/// task budget is spent. Returns normally in every case (the caller `_exit`s).
pub(crate) fn run(mut setup: WorkerSetup<'_>) {
    let mut out = ResultWriter::new(setup.max_frame_len);
    if let Some(initializer) = setup.initializer {
        if let Err(panic) = catch_unwind(initializer) {
            out.initializer_failed(&protocol::panic_message(panic.as_ref()));
            let _ = flush(&mut setup.results, &mut out);
            return;
        }
    }
    // Task frames are at most the frame limit plus their own header.
    let mut frames = FrameBuffer::new(
        setup
            .max_frame_len
            .saturating_add(protocol::TASK_HEADER_LEN),
    );
    let mut started: u64 = 0;
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
                let _ = flush(&mut setup.results, &mut out);
                return;
            };
            started += 1;
            if let Some(base) = setup.clock_base {
                let nanos = u64::try_from(base.elapsed().as_nanos()).unwrap_or(u64::MAX);
                setup
                    .counters
                    .get(STARTED_AT)
                    .store(nanos, Ordering::Relaxed);
            }
            setup
                .counters
                .get(STARTED)
                .store(started, Ordering::Release);
            let chunk_start = Instant::now();
            out.begin(header.id);
            header.function.run(args, &mut out);
            let done = setup.max_tasks.is_some_and(|max| started >= max);
            let slow = chunk_start.elapsed() >= EAGER_FLUSH;
            let more = frames.has_frame().unwrap_or(false);
            let flush_now = done || slow || !more || out.pending().len() >= FLUSH_BYTES;
            if flush_now && flush(&mut setup.results, &mut out).is_err() {
                return; // The parent is gone.
            }
            if done {
                return;
            }
        }
        match frames.read_from(&mut setup.tasks) {
            Ok(0) => return,
            Ok(_) => {}
            Err(err) if err.kind() == io::ErrorKind::Interrupted => {}
            Err(_) => return,
        }
    }
}

/// Writes the pending results (and whatever the tasks printed).
fn flush(results: &mut File, out: &mut ResultWriter) -> io::Result<()> {
    let _ = io::stdout().flush();
    if out.pending().is_empty() {
        return Ok(());
    }
    let written = results.write_all(out.pending());
    out.clear();
    written
}
