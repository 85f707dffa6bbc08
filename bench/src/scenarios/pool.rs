//! `Pool ...`: proc-pool against Python's `multiprocessing.Pool` of the same size (2) running
//! the same identity task, and the pipe round trip under a sequential `apply`.

use std::time::{Duration, Instant};

use proc_pool::Pool;

use crate::cpu::{self, Placement};
use crate::harness::{BenchResult, Contender, Rounds, Sample, Scenario, Unit};
use crate::python;
use crate::scenarios::{Context, pipe_ping_pong};

const WORKERS: usize = 2;

/// How the pool scenarios treat start-up.
const WARM_POOL_NOTE: &str = "Every contender starts a fresh pool of 2 per round and runs an \
     untimed warm-up pass of the same kind first (here: a whole map), so the figures are a warm \
     pool's steady state, what a program that keeps its pool pays. On the very first pass of \
     freshly forked workers both pools run about half as fast: the workers' and the parent's \
     first writes to memory they share after the fork are copy-on-write page faults.";

/// `ops` `apply_async(identity, i)`, then every `get`; the last value.
pub(crate) fn apply_async_all(pool: &Pool, ops: u64) -> BenchResult<Option<u64>> {
    let pending = (0..ops)
        .map(|i| pool.apply_async(identity, i))
        .collect::<Result<Vec<_>, _>>()?;
    let mut last = None;
    for result in pending {
        last = Some(result.get()?);
    }
    Ok(last)
}

fn identity(x: u64) -> u64 {
    x
}

fn add(a: u64, b: u64) -> u64 {
    a + b
}

/// How a batch drives the pool.
#[derive(Debug, Clone, Copy)]
enum Drive {
    /// One `map` of all the items; `None`: the default chunk size.
    Map(Option<usize>),
    /// One `starmap` of `add` over `(i, 1)` for every item, at the default chunk size.
    Starmap,
    /// Every task with `apply_async`, then every `get`.
    ApplyAsync,
    /// One `apply` after another.
    Apply,
}

/// Starts a `Pool(2)`, runs an untimed warm-up pass of `warm` tasks, then times `ops` tasks
/// driven the same way.
fn run_pool(ops: u64, warm: u64, drive: Drive) -> BenchResult<Duration> {
    let pool = Pool::new(WORKERS)?;
    drive_pool(&pool, warm.max(1), drive)?;
    drive_pool(&pool, ops, drive)
}

fn drive_pool(pool: &Pool, ops: u64, drive: Drive) -> BenchResult<Duration> {
    let start = Instant::now();
    let last = match drive {
        Drive::Map(chunksize) => {
            let values = match chunksize {
                Some(chunksize) => pool.map_chunked(identity, 0..ops, chunksize)?,
                None => pool.map(identity, 0..ops)?,
            };
            if values.len() as u64 != ops {
                return Err(format!("map returned {} values for {ops} items", values.len()).into());
            }
            values.last().copied()
        }
        Drive::Starmap => {
            let pairs: Vec<(u64, u64)> = (0..ops).map(|i| (i, 1)).collect();
            let values = pool.starmap(add, pairs)?;
            if values.len() as u64 != ops {
                return Err(format!("starmap returned {} values for {ops}", values.len()).into());
            }
            // `add(i, 1)`: the last is `ops`, one more than the identity's.
            values.last().map(|last| last - 1)
        }
        Drive::ApplyAsync => apply_async_all(pool, ops)?,
        Drive::Apply => {
            let mut last = None;
            for i in 0..ops {
                last = Some(pool.apply(identity, i)?);
            }
            last
        }
    };
    let elapsed = start.elapsed();
    if last != ops.checked_sub(1) {
        return Err(format!("the last value was {last:?}, expected {}", ops - 1).into());
    }
    Ok(elapsed)
}

/// Python's pool, given the script's arguments after `N` (see `python::POOL`).
fn python_pool(cx: &Context, name: &str, args: &[&str]) -> Contender {
    python::contender(
        cx.python.as_ref(),
        format!("python3 multiprocessing.Pool(2) {name}"),
        python::POOL,
        args.iter().map(|a| (*a).to_owned()),
    )
}

/// `map` of 200,000 items at Python's default chunk size (25,000 for two workers).
pub(crate) fn map_default(cx: &Context) -> BenchResult<Scenario> {
    let warm = cx.ops(200_000, 20_000);
    Ok(Scenario::new(
        "Pool map, default chunksize",
        "one item of `map(identity, 0..200_000)` on a pool of 2 (Python's chunk size: 25,000)",
        Unit::Rate,
        cx.ops(200_000, 20_000),
        python_pool(cx, "map", &["map", &warm.to_string()]),
    )
    .reference()
    .note(WARM_POOL_NOTE)
    .contender(Contender::self_timed("proc_pool::Pool map", move |ops| {
        run_pool(ops, warm, Drive::Map(None))
    })))
}

/// `starmap` of a two-argument function over 200,000 pairs at Python's default chunk size.
pub(crate) fn starmap(cx: &Context) -> BenchResult<Scenario> {
    let warm = cx.ops(200_000, 20_000);
    Ok(Scenario::new(
        "Pool starmap, default chunksize",
        "one item of `starmap(add, [(i, 1) for i in 0..200_000])` on a pool of 2 (Python's chunk size)",
        Unit::Rate,
        cx.ops(200_000, 20_000),
        python_pool(cx, "starmap", &["starmap", &warm.to_string()]),
    )
    .reference()
    .note(
        "The pools warm up with a whole starmap first (see the first Pool scenario). Both \
         contenders build their list of pairs inside the timed run (a Python list of tuples, a \
         `Vec<(u64, u64)>`), and both spread each pair over the function's two arguments in \
         the worker.",
    )
    .contender(Contender::self_timed("proc_pool::Pool starmap", move |ops| {
        run_pool(ops, warm, Drive::Starmap)
    })))
}

/// `map` at chunk size 1: every item its own task, frame and result.
pub(crate) fn map_chunksize_1(cx: &Context) -> BenchResult<Scenario> {
    Ok(Scenario::new(
        "Pool map, chunksize 1",
        "one item of `map(identity, 0..20_000, chunksize=1)` on a pool of 2",
        Unit::Rate,
        cx.ops(20_000, 2_000),
        python_pool(cx, "map chunksize=1", &["map", "2000", "1"]),
    )
    .reference()
    .note(
        "The pools warm up with 2,000 tasks first (see the first Pool scenario). Every item is \
         a task of its own, with its own frame each way and its own outcome \
         (a panic fails that item alone). The pool still moves them in batches: each worker has \
         a window of tasks in flight sized from the measured time per task, and a worker puts \
         its results in memory it shares with the parent and wakes it once per batch, so a task \
         costs a few hundred nanoseconds, not a pipe round trip.",
    )
    .contender(Contender::self_timed(
        "proc_pool::Pool map_chunked(.., 1)",
        |ops| run_pool(ops, 2000, Drive::Map(Some(1))),
    )))
}

/// 20,000 `apply_async` submissions, then every `get`.
pub(crate) fn apply_async(cx: &Context) -> BenchResult<Scenario> {
    Ok(Scenario::new(
        "Pool apply_async",
        "one `apply_async(identity, i)` of 20,000, then every `get()`, on a pool of 2",
        Unit::Rate,
        cx.ops(20_000, 2_000),
        python_pool(cx, "apply_async", &["apply_async", "2000"]),
    )
    .reference()
    .contender(Contender::self_timed(
        "proc_pool::Pool apply_async",
        |ops| run_pool(ops, 2000, Drive::ApplyAsync),
    )))
}

/// Sequential `apply`: one task's full round trip, against the pipe floor.
pub(crate) fn apply_round_trip(cx: &Context) -> BenchResult<Scenario> {
    let ping_pong = |placement: Placement| {
        Contender::self_timed(
            format!("raw 8-byte pipe round trip, {placement}"),
            move |ops| pipe_ping_pong::round_trips(ops, placement),
        )
    };
    // A pool's workers run beside the caller, on the other CPUs: the floor is a round trip
    // across CPUs. Where the machine has one CPU, the unpinned trip is all there is.
    let floor = match cpu::two_cpus() {
        Some((first, second)) => ping_pong(Placement::Across(first, second)),
        None => ping_pong(Placement::Unpinned),
    };
    let mut scenario = Scenario::new(
        "Pool apply round trip",
        "one `apply(identity, i)` on a pool of 2, waiting for each before the next",
        Unit::TimePerOp,
        cx.ops(500, 100),
        floor,
    )
    .note(
        "The floor is one 8-byte round trip between two processes on different CPUs, which is \
         where a pool's worker runs relative to its caller. A lone `apply` crosses more: the \
         caller hands the task to the pool's manager thread, which writes it to a worker; the \
         result comes back to the manager, which hands it to the caller (who watches for it \
         up to 100 µs before sleeping, so the manager and the worker mostly share the other \
         CPU). The pools are warmed up with 50 applies; nothing else is pinned. The unpinned raw round trip is shown for \
         scale: the scheduler often keeps a tight ping-pong on one CPU, at a few µs.",
    )
    .contender(Contender::self_timed("proc_pool::Pool apply", |ops| {
        run_pool(ops, 50, Drive::Apply)
    }))
    .contender(python_pool(cx, "apply", &["apply", "50"]));
    if cpu::two_cpus().is_some() {
        scenario = scenario.contender(ping_pong(Placement::Unpinned));
    }
    Ok(scenario)
}

/// `imap` over 10 million items: the parent's memory must stay flat.
pub(crate) fn imap_memory(cx: &Context) -> BenchResult<Scenario> {
    let chunksize = 100;
    let rust_name = format!("proc_pool::Pool imap(.., 0..N).chunksize({chunksize})");
    let rust = if cfg!(target_os = "linux") {
        Contender::measuring_memory(rust_name, move |ops| imap_peak_memory(ops, chunksize))
    } else {
        Contender::skipped(rust_name, "needs Linux's /proc/self/clear_refs")
    };
    Ok(Scenario::new(
        "Pool imap memory, 10M items",
        "`imap(identity, 0..10_000_000)` at chunk size 100, every result consumed: how far the \
         parent's resident memory rises at its peak",
        Unit::PeakMemory,
        cx.ops(10_000_000, 1_000_000),
        python::contender(
            cx.python.as_ref(),
            format!("python3 multiprocessing.Pool(2) imap(.., chunksize={chunksize})"),
            python::POOL_IMAP_MEMORY,
            [chunksize.to_string()],
        ),
    )
    .reference()
    .max_rounds(Rounds {
        warmup: 0,
        measured: 3,
    })
    .note(
        "Peak resident memory is reset (Linux `/proc/self/clear_refs`) after the pool starts; \
         the figure is the peak over the run minus the resident size at the start (for \
         proc-pool, half a MiB of it is the two workers' result rings, shared memory the parent \
         reads). proc-pool's imap pulls the input only as results are consumed, and keeps a \
         window of chunks in flight sized by their weight in the parent (about 256 KiB of task \
         frames and decoded items), not by count. Python's imap feeds its task queue from the whole input as fast as it \
         can, and its results wait in the parent until consumed.",
    )
    .contender(rust))
}

/// Runs the imap in this process and measures its peak memory rise.
fn imap_peak_memory(ops: u64, chunksize: usize) -> BenchResult<Sample> {
    let pool = Pool::new(WORKERS)?;
    std::fs::write("/proc/self/clear_refs", "5")?;
    let before = status_kib("VmRSS:")?;
    let start = Instant::now();
    let mut expected = 0;
    for value in pool.imap(identity, 0..ops).chunksize(chunksize) {
        if value? != expected {
            return Err(format!("imap yielded item {expected} out of order").into());
        }
        expected += 1;
    }
    let elapsed = start.elapsed();
    if expected != ops {
        return Err(format!("imap yielded {expected} of {ops} items").into());
    }
    let peak = status_kib("VmHWM:")?.saturating_sub(before);
    Ok(Sample {
        elapsed,
        peak_memory: Some(peak * 1024),
    })
}

/// A `kB` figure of `/proc/self/status`.
fn status_kib(field: &str) -> BenchResult<u64> {
    let status = std::fs::read_to_string("/proc/self/status")?;
    status
        .lines()
        .find_map(|line| line.strip_prefix(field))
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|kib| kib.parse().ok())
        .ok_or_else(|| format!("no {field} in /proc/self/status").into())
}
