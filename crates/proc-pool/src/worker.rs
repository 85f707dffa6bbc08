//! A worker process's main loop: read task frames, run them, stage each result in the
//! worker's shared ring (`result_writer`); a waker thread tells the parent when there are
//! results to read.
//!
//! **Waking.** Results need no system call to reach the parent: they are in shared memory.
//! Only the parent's `poll` must be woken, by a byte on the wake pipe, and only when it may be
//! asleep: the waker writes one at most [`BATCH_WAIT`] after the first new result (at once
//! when the main thread is about to wait for tasks or for room), and only if the parent has
//! read since the last one (the shared [`WAKE_PENDING`] word). So one wake-up of the parent
//! carries hundreds of small results, and no result waits behind a slow task.
//!
//! **Claiming.** Before each chunk the worker *claims* it in memory shared with the parent
//! (`claim` below): if the chunk then kills the worker, the parent knows exactly which task
//! did; and the parent can *revoke* the chunks queued behind a slow one, which the worker then
//! skips, so they run elsewhere instead of waiting.
//!
//! **Damage.** A task may write to, close or replace any descriptor of its process. The
//! worker keeps its two pipes near the top of the descriptor range (where that is cheap: a fork
//! server's worker, single-threaded at that point), checks every task frame's
//! magic word and sequence number, checks that its wake pipe is still the one it was given
//! before each wake, and stops (exits) at the first sign of damage: what it staged is in the
//! ring, the parent reads it after the exit and gives the tasks not started to another
//! worker.

use std::collections::HashMap;
use std::fs::File;
use std::io::{self, Write};
use std::os::fd::OwnedFd;
use std::panic::catch_unwind;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Condvar, Mutex};
use std::time::{Duration, Instant};

use fork_sys::{SharedAtomics, SharedRing};
use proc_core::codec::FrameBuffer;

use crate::locking::{lock, wait, wait_until};
use crate::protocol::{self, TASK_MAGIC, TaskRequest};
use crate::result_writer::{ResultWriter, STAGED, WakeParent};
use crate::task_fn::BoundSlot;

/// Index in a worker's shared counters: the claim word. Normally the sequence number of the
/// last chunk the worker started. The parent may set it to `REVOKED | m`: chunks up to `m`
/// that are not started yet are taken back, and the worker must skip them.
pub(crate) const CLAIM: usize = 0;
/// Index in a worker's shared counters: when the current chunk started, in nanoseconds
/// after the pool's clock base (for the parent's timeouts and its time per task).
pub(crate) const STARTED_AT: usize = 1;
/// Index in a worker's shared counters: 1 once the initializer has returned.
pub(crate) const READY: usize = 2;
/// Index in a worker's shared counters: 1 while a wake byte is on its way to the parent and
/// the parent has not read the ring since; the parent clears it before each read.
pub(crate) const WAKE_PENDING: usize = 4;
/// Index in a worker's shared counters: the nanoseconds it has spent running chunks, from
/// each one's start to its return, by its own clock. With `CHUNKS_RUN`, the parent's measure
/// of the time a chunk takes: measured from the parent, a chunk's time would include its wait
/// for a CPU and the parent's own, which in a pool of hundreds of workers on a few CPUs dwarf
/// a small task.
pub(crate) const BUSY_NANOS: usize = 5;
/// Index in a worker's shared counters: how many chunks `BUSY_NANOS` covers (stored after it).
pub(crate) const CHUNKS_RUN: usize = 6;
/// How many shared counters a worker has (`STAGED`, index 3, is `result_writer`'s).
pub(crate) const COUNTERS: usize = 7;
/// The flag of a claim word whose chunks up to the rest were revoked by the parent.
pub(crate) const REVOKED: u64 = 1 << 63;

/// How long the waker lets results pile up before waking the parent.
const BATCH_WAIT: Duration = Duration::from_micros(50);
/// The worker's pipes go this far below the top of its descriptor range.
const HIGH_FD_RESERVE: u32 = 16;

/// Everything a worker starts with, moved into the forked child.
#[derive(Debug)]
pub(crate) struct WorkerSetup<'a> {
    pub(crate) tasks: File,
    /// The wake pipe's write end.
    pub(crate) wake: File,
    pub(crate) ring: &'a mut SharedRing,
    pub(crate) counters: &'a SharedAtomics,
    pub(crate) initializer: Option<fn()>,
    /// Chunks to run before exiting; `None` for no limit.
    pub(crate) max_tasks: Option<u64>,
    pub(crate) max_frame_len: usize,
    /// Record each chunk's start time (the parent's timeouts and its measure of the time
    /// per task read it).
    /// The pool's clock base on the system's monotonic clock ([`fork_sys::monotonic_now`],
    /// the same in every process of the machine, so exec'd workers share it too).
    pub(crate) clock_base: Option<Duration>,
}

/// Runs the worker until the parent sends the shutdown frame, closes the task pipe, the task
/// budget is spent or its descriptors are damaged. Returns normally in every case (the
/// caller `_exit`s), once every result is in the ring.
pub(crate) fn run(setup: WorkerSetup<'_>) {
    // A group of its own: a timeout or terminate then kills what its tasks started, too. Out
    // of the terminal's foreground group, a task touching the terminal would stop the worker
    // for ever (SIGTTIN, SIGTTOU); ignored, the read or write fails with EIO instead.
    let _ = fork_sys::exec::setpgid(None);
    let _ = fork_sys::ignore_signal(fork_sys::Signal::TTIN);
    let _ = fork_sys::ignore_signal(fork_sys::Signal::TTOU);
    // Where it is cheap (the worker has one thread: a fork server's child), not in a `Fork`
    // worker, which has its parent watch already, nor a `Spawn` worker (see `move_fd_high`).
    let tasks = File::from(fork_sys::move_fd_high(
        OwnedFd::from(setup.tasks),
        HIGH_FD_RESERVE,
    ));
    let wake = File::from(fork_sys::move_fd_high(
        OwnedFd::from(setup.wake),
        HIGH_FD_RESERVE,
    ));
    let waker = Waker::new(wake, setup.counters.get(WAKE_PENDING));
    let mut out = ResultWriter::new(
        setup.ring,
        setup.counters.get(STAGED),
        &waker,
        setup.max_frame_len,
    );
    if let Some(initializer) = setup.initializer {
        if let Err(panic) = catch_unwind(initializer) {
            out.initializer_failed(&protocol::panic_message(panic.as_ref()));
            waker.ping();
            return;
        }
    }
    std::thread::scope(|scope| {
        let thread = std::thread::Builder::new()
            .name("pool-waker".into())
            .spawn_scoped(scope, || waker.run());
        if let Err(err) = thread {
            // Say why (a process limit, say) and exit: the parent treats it like a failed
            // fork, retrying later and failing the queue meanwhile with this reason.
            out.setup_failed(&format!("a worker could not start its waker thread: {err}"));
            waker.ping();
            return;
        }
        setup.counters.get(READY).store(1, Ordering::Release);
        let plan = Plan {
            counters: setup.counters,
            max_tasks: setup.max_tasks,
            max_frame_len: setup.max_frame_len,
            clock_base: setup.clock_base,
        };
        run_tasks(&tasks, &plan, &mut out, Some(&waker));
        waker.close();
    });
}

/// A worker on a byte stream, started through a launcher (on another machine, say): task
/// frames come on `input`, every result frame goes to `output` as soon as it exists (one item
/// per frame, written before the next item starts), and what the shared counters say
/// otherwise goes in band (`READY`, `CLAIMED` frames). Nothing is revoked from such a worker.
pub(crate) fn run_streamed(
    input: File,
    output: File,
    initializer: Option<fn()>,
    max_tasks: Option<u64>,
    max_frame_len: usize,
) {
    let _ = fork_sys::exec::setpgid(None);
    let _ = fork_sys::ignore_signal(fork_sys::Signal::TTIN);
    let _ = fork_sys::ignore_signal(fork_sys::Signal::TTOU);
    // Claims are made in memory of our own (the parent's are in band), and the writer needs
    // a ring it never writes: the smallest.
    let (Ok(counters), Ok(mut ring)) = (SharedAtomics::new(COUNTERS), SharedRing::new(64)) else {
        report_setup_failure("a worker could not map its counters");
    };
    let mut out = ResultWriter::streaming(
        &mut ring,
        output,
        counters.get(STAGED),
        &NO_WAKE,
        max_frame_len,
    );
    if let Some(initializer) = initializer {
        if let Err(panic) = catch_unwind(initializer) {
            out.initializer_failed(&protocol::panic_message(panic.as_ref()));
            return;
        }
    }
    out.ready();
    let plan = Plan {
        counters: &counters,
        max_tasks,
        max_frame_len,
        // The parent stamps a chunk's start when its claim arrives.
        clock_base: None,
    };
    run_tasks(&input, &plan, &mut out, None);
}

/// A stream worker's writer wakes nobody: the parent polls the stream itself.
struct NoWake;

impl WakeParent for NoWake {
    fn published(&self, _urgent: bool) {}
}

static NO_WAKE: NoWake = NoWake;

/// Tells the parent why this worker cannot run, for a worker that fails before `run` (it
/// could not map its ring): the only channel left is its exit status.
pub(crate) fn report_setup_failure(message: &str) -> ! {
    let _ = writeln!(io::stderr(), "proc-pool worker: {message}");
    fork_sys::exit_immediately(SETUP_FAILED_STATUS)
}

/// The exit status of a worker that could not set itself up before it had a ring.
pub(crate) const SETUP_FAILED_STATUS: i32 = 70;

/// What the task loop needs of the setup.
struct Plan<'a> {
    counters: &'a SharedAtomics,
    max_tasks: Option<u64>,
    max_frame_len: usize,
    clock_base: Option<Duration>,
}

fn run_tasks(
    mut tasks: &File,
    setup: &Plan<'_>,
    out: &mut ResultWriter<'_>,
    waker: Option<&Waker<'_>>,
) {
    let claim = setup.counters.get(CLAIM);
    // Task frames are at most the frame limit plus their own header.
    let mut frames = FrameBuffer::new(
        setup
            .max_frame_len
            .saturating_add(protocol::TASK_HEADER_LEN),
    );
    let mut seq: u64 = 0;
    let mut ran: u64 = 0;
    // What `BUSY_NANOS` and `CHUNKS_RUN` hold (this thread is their only writer).
    let mut busy_nanos: u64 = 0;
    let mut chunks_run: u64 = 0;
    // Bound values the parent sent, by id (it says when one may be forgotten).
    let mut bound_values: HashMap<u64, BoundSlot> = HashMap::new();
    loop {
        loop {
            // Check each frame's start as soon as it is there: bytes that are not the next
            // frame (a task read from this pipe) must not make us wait for a length they
            // claim. Stop: the parent sees which chunk was in flight.
            let expected = (seq + 1) as u32;
            if protocol::check_frame_start(frames.peek(), TASK_MAGIC, expected, "task").is_err() {
                return;
            }
            let request = match frames.next_payload() {
                Ok(Some(payload)) => protocol::parse_task(payload),
                Ok(None) => break,
                Err(_) => return,
            };
            let (header, skip, bound, args) = match request {
                Some(TaskRequest::Run {
                    header,
                    skip,
                    bound,
                    args,
                }) => (header, skip, bound, args),
                Some(TaskRequest::BoundValue { id, forget, value }) => {
                    bound_values.remove(&forget);
                    bound_values.insert(id, BoundSlot::new(value.to_vec()));
                    continue;
                }
                // Shutdown, or a frame too short to be a task.
                Some(TaskRequest::Shutdown) | None => return,
            };
            seq += 1;
            // The start time first: the parent reads the claim, then the time, so it never
            // pairs this chunk with the previous chunk's start.
            let started = setup.clock_base.map(|base| {
                let nanos = since_nanos(base);
                setup
                    .counters
                    .get(STARTED_AT)
                    .store(nanos, Ordering::Release);
                nanos
            });
            if !try_claim(claim, seq) {
                continue; // Revoked: the parent gave it to another worker.
            }
            out.claimed(seq);
            out.begin(header.id, skip);
            let bound = (bound != 0).then(|| bound_values.get_mut(&bound)).flatten();
            header.function.run(args, skip, out, bound);
            if let (Some(base), Some(started)) = (setup.clock_base, started) {
                busy_nanos = busy_nanos.saturating_add(since_nanos(base).saturating_sub(started));
                chunks_run += 1;
                let counters = setup.counters;
                counters
                    .get(BUSY_NANOS)
                    .store(busy_nanos, Ordering::Relaxed);
                counters
                    .get(CHUNKS_RUN)
                    .store(chunks_run, Ordering::Release);
            }
            // What the task printed goes out before the parent hears of its result. Here, not
            // in the waker, which must never wait on a lock a task may hold.
            let _ = io::stdout().flush();
            if let Some(waker) = waker {
                let more = frames.has_frame().unwrap_or(false);
                waker.published(!more);
                if waker.failed() {
                    return; // The parent is gone, or the wake pipe was damaged.
                }
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

/// Nanoseconds from `base` to now, on the system's monotonic clock.
fn since_nanos(base: Duration) -> u64 {
    let since = fork_sys::monotonic_now().saturating_sub(base);
    u64::try_from(since.as_nanos()).unwrap_or(u64::MAX)
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

/// Wakes the parent when results are published (see the module docs). The main thread's side
/// is a few atomics; it takes the lock only to wake the waker thread, once per batch. A wake
/// wanted at once (the main thread is about to wait) it writes itself: handing it to the
/// waker thread would put a thread switch on every round trip of a lone task.
struct Waker<'a> {
    /// Guards nothing but the sleep of the waker thread on `changed`.
    sleep: Mutex<()>,
    changed: Condvar,
    /// Results were published since the last wake.
    published: AtomicBool,
    closed: AtomicBool,
    /// A wake could not be delivered: the parent is gone, or the pipe is not ours any more.
    failed: AtomicBool,
    pipe: File,
    /// The wake pipe's identity (device, inode) when the worker started.
    identity: Option<(u64, u64)>,
    /// The shared `WAKE_PENDING` word.
    pending: &'a AtomicU64,
}

impl<'a> Waker<'a> {
    fn new(pipe: File, pending: &'a AtomicU64) -> Waker<'a> {
        let identity = file_identity(&pipe);
        Waker {
            sleep: Mutex::new(()),
            changed: Condvar::new(),
            published: AtomicBool::new(false),
            closed: AtomicBool::new(false),
            failed: AtomicBool::new(false),
            pipe,
            identity,
            pending,
        }
    }

    fn failed(&self) -> bool {
        self.failed.load(Ordering::Relaxed)
    }

    /// Wakes the waker thread (under the lock, so it cannot miss it between its check and
    /// its wait).
    fn nudge(&self) {
        let _sleep = lock(&self.sleep);
        self.changed.notify_one();
    }

    fn close(&self) {
        self.closed.store(true, Ordering::Release);
        self.nudge();
    }

    /// Writes a wake byte unless one is pending already; false if it cannot be delivered.
    fn ping(&self) -> bool {
        if self.pending.swap(1, Ordering::SeqCst) != 0 {
            return true;
        }
        // A task may have closed our pipe and opened a file that got its number, or put
        // /dev/null in its place: never write a wake byte into a task's file, and stop.
        if file_identity(&self.pipe) != self.identity {
            return false;
        }
        loop {
            match (&self.pipe).write(&[1]) {
                Ok(_) => return true,
                Err(err) if err.kind() == io::ErrorKind::Interrupted => {}
                Err(_) => return false,
            }
        }
    }

    /// The waker thread: wakes the parent for what is published, in batches, until closed.
    fn run(&self) {
        loop {
            {
                let mut sleep = lock(&self.sleep);
                while !self.published.load(Ordering::Acquire)
                    && !self.closed.load(Ordering::Acquire)
                {
                    sleep = wait(&self.changed, sleep);
                }
                // Let a batch form (a wake wanted now, the main thread writes itself).
                let deadline = Instant::now() + BATCH_WAIT;
                while self.published.load(Ordering::Acquire)
                    && !self.closed.load(Ordering::Acquire)
                    && Instant::now() < deadline
                {
                    sleep = wait_until(&self.changed, sleep, deadline);
                }
            }
            let published = self.published.swap(false, Ordering::AcqRel);
            if !published && self.closed.load(Ordering::Acquire) {
                return;
            }
            if published && !self.ping() {
                self.failed.store(true, Ordering::Release);
                return;
            }
        }
    }
}

impl WakeParent for Waker<'_> {
    fn published(&self, urgent: bool) {
        if urgent {
            // Whatever the waker thread was waiting to announce, this wake covers: the parent
            // reads the whole ring.
            self.published.store(false, Ordering::Release);
            if !self.ping() {
                self.failed.store(true, Ordering::Release);
            }
            return;
        }
        if !self.published.swap(true, Ordering::AcqRel) {
            self.nudge();
        }
    }
}

/// The (device, inode) of an open file, to tell whether a descriptor still holds it.
fn file_identity(file: &File) -> Option<(u64, u64)> {
    use std::os::unix::fs::MetadataExt;
    file.metadata().ok().map(|m| (m.dev(), m.ino()))
}
