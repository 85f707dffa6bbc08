//! `Pool scale ...`: what a pool of many workers costs against a pool of few: building it,
//! and a burst of `apply_async` spread over every worker.

use std::time::{Duration, Instant};

use proc_pool::Pool;

use crate::harness::{BenchResult, Contender, Rounds, Scenario, Unit};
use crate::python;
use crate::scenarios::{Context, pool};

/// The small pool and the large one.
const FEW: usize = 8;
const MANY: usize = 256;

/// Rounds for these scenarios: a `Pool(256)` takes a fraction of a second to build and
/// to tear down, and Python's seconds.
const ROUNDS: Rounds = Rounds {
    warmup: 1,
    measured: 5,
};

/// `multiprocessing.Pool(argv[2])`, fork context: with `argv[3]` = `build`, the time to
/// construct it (ops = 1); with `apply_async`, the time of `argv[1]` `apply_async(identity, i)`
/// then every `get()`, after a warm-up of one task per worker.
const PYTHON_SCALE: &str = r#"
import multiprocessing as mp, sys, time
def identity(x):
    return x
n, workers, mode = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3]
start = time.perf_counter()
pool = mp.get_context("fork").Pool(workers)
elapsed = time.perf_counter() - start
if mode == "apply_async":
    [r.get() for r in [pool.apply_async(identity, (i,)) for i in range(workers)]]
    start = time.perf_counter()
    pending = [pool.apply_async(identity, (i,)) for i in range(n)]
    if [r.get() for r in pending][-1] != n - 1:
        sys.exit("wrong apply_async result")
    elapsed = time.perf_counter() - start
pool.terminate()
pool.join()
print(elapsed)
"#;

fn identity(x: u64) -> u64 {
    x
}

fn row(workers: usize, what: &str) -> String {
    format!("proc_pool::Pool({workers}) {what}")
}

fn python_row(workers: usize, what: &str) -> String {
    format!("python3 multiprocessing.Pool({workers}) {what}")
}

fn python(cx: &Context, workers: usize, mode: &str) -> Contender {
    python::contender(
        cx.python.as_ref(),
        python_row(workers, mode),
        PYTHON_SCALE,
        [workers.to_string(), mode.to_owned()],
    )
}

/// Times building a pool of `workers` (every worker running); the drop is not timed.
fn build(ops: u64, workers: usize) -> BenchResult<Duration> {
    let mut total = Duration::ZERO;
    for _ in 0..ops {
        let start = Instant::now();
        let pool = Pool::new(workers)?;
        total += start.elapsed();
        drop(pool);
    }
    Ok(total)
}

/// Builds a pool of `workers`, runs one task per worker, then times `ops` `apply_async`
/// followed by every `get`.
fn apply_async(ops: u64, workers: usize) -> BenchResult<Duration> {
    let pool = Pool::new(workers)?;
    let warm = (0..workers as u64)
        .map(|i| pool.apply_async(identity, i))
        .collect::<Result<Vec<_>, _>>()?;
    for result in warm {
        result.get()?;
    }
    let start = Instant::now();
    let last = pool::apply_async_all(&pool, ops)?;
    let elapsed = start.elapsed();
    if last != ops.checked_sub(1) {
        return Err(format!("the last value was {last:?}, expected {}", ops - 1).into());
    }
    Ok(elapsed)
}

/// Building a `Pool(8)` and a `Pool(256)`.
pub(crate) fn build_pool(cx: &Context) -> BenchResult<Scenario> {
    Ok(Scenario::new(
        "Pool scale, build",
        "`Pool::new(n)`, returning once every worker runs (the drop is not timed)",
        Unit::TimePerOp,
        1,
        Contender::self_timed(row(FEW, "build"), |ops| build(ops, FEW)),
    )
    .reference()
    .max_rounds(ROUNDS)
    .note(
        "Fork start method (the default without `proc_core::init`), as Python's fork context. \
         Python's `Pool(n)` constructor returns once it has forked its workers.",
    )
    .contender(Contender::self_timed(row(MANY, "build"), |ops| {
        build(ops, MANY)
    }))
    .contender(python(cx, FEW, "build"))
    .contender(python(cx, MANY, "build")))
}

/// 20,000 `apply_async` on a `Pool(8)` and on a `Pool(256)`.
pub(crate) fn apply_async_many_workers(cx: &Context) -> BenchResult<Scenario> {
    let few = row(FEW, "apply_async");
    let many = row(MANY, "apply_async");
    Ok(Scenario::new(
        "Pool scale, apply_async",
        "one `apply_async(identity, i)` of 20,000, then every `get()`, on a pool of n",
        Unit::Rate,
        cx.ops(20_000, 2_000),
        Contender::self_timed(few.clone(), |ops| apply_async(ops, FEW)),
    )
    .reference()
    .max_rounds(ROUNDS)
    .note(
        "Each round builds a fresh pool and runs one task per worker first (untimed). Tiny \
         tasks spread over many workers: what the pool's manager pays per worker (the \
         descriptors it polls, the rings it reads, the workers it picks from) shows up here, \
         not in the pool-of-2 scenarios.",
    )
    .contender(Contender::self_timed(many.clone(), |ops| {
        apply_async(ops, MANY)
    }))
    .contender(python(cx, FEW, "apply_async"))
    .contender(python(cx, MANY, "apply_async"))
    // Rates: Pool(8)'s divided by Pool(256)'s is how many times as long 256 workers take.
    .goal("256 workers apply_async within 3× of 8", few, many, 3.0))
}
