//! `lock uncontended` and `lock contended`: proc-sync's process-shared `Lock` against
//! Python's `multiprocessing.Lock` (a POSIX semaphore in shared memory), one process alone
//! and two processes hammering the same lock.

use std::hint::black_box;
use std::time::{Duration, Instant};

use crate::child::fork_helper;
use crate::cpu::{self, PinnedFirst, Placement};
use crate::harness::{BenchResult, Contender, Scenario, Unit};
use crate::python;
use crate::scenarios::Context;

/// `N` acquire/release pairs of one `multiprocessing.Lock` (fork context), in one process.
const PYTHON_UNCONTENDED: &str = r#"
import multiprocessing as mp, sys, time
n = int(sys.argv[1])
lock = mp.get_context("fork").Lock()
acquire, release = lock.acquire, lock.release
start = time.perf_counter()
for _ in range(n):
    acquire()
    release()
print(time.perf_counter() - start)
"#;

/// `N` acquire/release pairs of one `multiprocessing.Lock`, half in the parent and half in a
/// forked `Process`, both started together by an `Event` (start-up untimed). Arguments after
/// `N`: the parent's and the child's CPU (`-1`: unpinned).
const PYTHON_CONTENDED: &str = r#"
import multiprocessing as mp, os, sys, time
n, parent_cpu, child_cpu = (int(arg) for arg in sys.argv[1:4])
if parent_cpu >= 0:
    os.sched_setaffinity(0, {parent_cpu})
ctx = mp.get_context("fork")
lock, go, done = ctx.Lock(), ctx.Event(), ctx.Event()
def hammer(k):
    acquire, release = lock.acquire, lock.release
    go.wait()
    for _ in range(k):
        acquire()
        release()
    done.set()
p = ctx.Process(target=hammer, args=(n // 2,))
p.start()
if child_cpu >= 0:
    os.sched_setaffinity(p.pid, {child_cpu})
acquire, release = lock.acquire, lock.release
time.sleep(0.05)
start = time.perf_counter()
go.set()
for _ in range(n - n // 2):
    acquire()
    release()
done.wait()
elapsed = time.perf_counter() - start
p.join()
if p.exitcode != 0:
    sys.exit("the hammering child failed")
print(elapsed)
"#;

/// One process taking and releasing a lock nobody else wants.
pub(crate) fn uncontended(cx: &Context) -> BenchResult<Scenario> {
    let floor = Contender::timed("std::sync::Mutex lock+unlock (threads only)", |ops| {
        let mutex = std::sync::Mutex::new(0u64);
        for _ in 0..ops {
            let mut held = mutex.lock().map_err(|_| "poisoned mutex")?;
            *held = black_box(*held + 1);
        }
        Ok(())
    });
    let lock = Contender::self_timed("proc_sync::Lock acquire+release", |ops| {
        let lock = proc_sync::Lock::new()?;
        let start = Instant::now();
        for _ in 0..ops {
            drop(black_box(lock.acquire()?));
        }
        Ok(start.elapsed())
    });
    let rlock = Contender::self_timed("proc_sync::RLock acquire+release", |ops| {
        let lock = proc_sync::RLock::new()?;
        let start = Instant::now();
        for _ in 0..ops {
            drop(black_box(lock.acquire()?));
        }
        Ok(start.elapsed())
    });
    Ok(Scenario::new(
        "lock uncontended",
        "acquire and release a lock no other process or thread wants",
        Unit::TimePerOp,
        cx.ops(200_000, 20_000),
        floor,
    )
    .note(
        "`proc_sync::Lock` is one compare-and-swap to take and one swap to release, in shared \
         memory; `std::sync::Mutex` is the same on private memory and cannot cross a process. \
         Python's `multiprocessing.Lock` is a POSIX semaphore (`sem_wait`/`sem_post`, futex \
         based too); its figure includes the interpreter's loop and two method calls, which \
         is what a Python program pays.",
    )
    .contender(lock)
    .contender(rlock)
    .contender(python::contender(
        cx.python.as_ref(),
        "python3 multiprocessing.Lock acquire+release",
        PYTHON_UNCONTENDED,
        [],
    )))
}

/// Two processes taking and releasing the same lock as fast as they can.
pub(crate) fn contended(cx: &Context) -> BenchResult<Scenario> {
    let python = |placement: Placement| {
        python::contender(
            cx.python.as_ref(),
            format!("python3 multiprocessing.Lock, 2 processes, {placement}"),
            PYTHON_CONTENDED,
            placement.script_args(),
        )
    };
    let scenario = |reference: Contender| {
        Scenario::new(
            "lock contended",
            "acquire and release one lock, two processes at once (half the ops each)",
            Unit::TimePerOp,
            cx.ops(100_000, 10_000),
            reference,
        )
        .reference()
        .note(
            "Time per acquire+release pair while two processes hammer the same lock; no \
             faster cross-process lock is known, so our own lock across two CPUs is the \
             reference. Across CPUs the lock's cache line moves between them and a waiter \
             sleeps in the kernel after a short spin; on one CPU the holder is rarely \
             preempted inside its tiny critical section, so the other process mostly finds \
             the lock free. Neither lock is fair: a releasing process often takes the lock \
             straight back, which is what keeps the throughput up.",
        )
    };
    Ok(cpu::rows_by_placement(
        PinnedFirst::Across,
        scenario,
        rust,
        python,
    ))
}

/// The Rust contender for `placement`: `proc_sync::Lock` shared with a forked child.
fn rust(placement: Placement) -> Contender {
    Contender::self_timed(
        format!("proc_sync::Lock, 2 processes, {placement}"),
        move |ops| hammer(ops, placement),
    )
}

/// Forks a child that waits for `go`, then does half the `ops` while this process does the
/// other half; the time runs from `go` until both are done.
fn hammer(ops: u64, placement: Placement) -> BenchResult<Duration> {
    let _pin = placement.pin_parent()?;
    let lock = proc_sync::Lock::new()?;
    let go = proc_sync::Event::new()?;
    let done = proc_sync::Event::new()?;
    let theirs = ops / 2;
    let ((), child) = fork_helper(
        "lock hammering child",
        (),
        (lock.clone(), go.clone(), done.clone()),
        move |(lock, go, done)| {
            go.wait();
            for _ in 0..theirs {
                match lock.acquire() {
                    Ok(held) => drop(black_box(held)),
                    Err(_) => return 1,
                }
            }
            done.set();
            0
        },
    )?;
    placement.pin_child(child.pid())?;
    // Let the child reach its wait on `go`, so its start-up is not timed.
    std::thread::sleep(Duration::from_millis(20));
    let start = Instant::now();
    go.set();
    for _ in theirs..ops {
        drop(black_box(lock.acquire()?));
    }
    if !done.wait_timeout(Duration::from_secs(60)) {
        return Err("the hammering child never finished".into());
    }
    let elapsed = start.elapsed();
    child.wait_success()?;
    Ok(elapsed)
}
