//! `Pool large items`: `map` of an identity task over 256 byte buffers of 1 MiB on a pool of
//! 2, against the pipe's bulk throughput (the floor) and Python's `multiprocessing.Pool`
//! mapping the same function over 256 `bytes` of 1 MiB.

use std::time::{Duration, Instant};

use proc_pool::Pool;

use crate::cpu::{self, Placement};
use crate::harness::{BenchResult, Contender, Rounds, Scenario, Unit};
use crate::python;
use crate::scenarios::{Context, pipe_throughput};

/// Bytes of one item.
const MIB: usize = 1 << 20;
/// The pools' size.
const WORKERS: usize = 2;

/// `Pool(2).map(identity, items)` over `N` `bytes` of `argv[2]` bytes each, after an untimed
/// warm-up map of the same items; checks what came back.
const PYTHON_POOL_LARGE_ITEMS: &str = r#"
import multiprocessing as mp, sys, time
def identity(x):
    return x
n, size = int(sys.argv[1]), int(sys.argv[2])
items = [bytes([i % 251]) * size for i in range(n)]
with mp.get_context("fork").Pool(2) as pool:
    pool.map(identity, items)
    start = time.perf_counter()
    out = pool.map(identity, items)
    elapsed = time.perf_counter() - start
if len(out) != n or out[-1] != items[-1] or any(len(o) != size for o in out):
    sys.exit("wrong map result")
print(elapsed)
"#;

/// The row names, which the goals repeat.
const POOL: &str = "proc_pool::Pool(2) map, Vec<u8> items";
const PYTHON: &str = "python3 multiprocessing.Pool(2) map, bytes items";

/// Builds the scenario.
pub(crate) fn scenario(cx: &Context) -> BenchResult<Scenario> {
    let placement = match cpu::two_cpus() {
        Some((first, second)) => Placement::Across(first, second),
        None => Placement::Unpinned,
    };
    let floor = format!("pipe enlarged to 1 MiB, {placement}");
    Ok(Scenario::new(
        "Pool large items",
        "one 1 MiB item of `map(identity, 256 items)` on a pool of 2: 1 MiB to a worker and \
         1 MiB back (2 MiB counted); for the pipe, 2 MiB written and read",
        Unit::Throughput {
            bytes_per_op: 2 * MIB as u64,
        },
        cx.ops(256, 64),
        Contender::self_timed(floor.clone(), move |ops| {
            // The pipe scenario's writes are 64 KiB: 32 of them move one op's 2 MiB.
            pipe_throughput::stream(
                ops * (2 * MIB / pipe_throughput::CHUNK) as u64,
                Some(MIB),
                placement,
            )
        }),
    )
    .note(
        "Every item crosses twice: the argument to a worker, the result back; the figures count \
         both (2 MiB per item), and the floor moves the same 2 MiB per op through one pipe \
         enlarged to 1 MiB between two processes on two CPUs, in 64 KiB writes, without \
         framing or item boundaries: what any program pays to move those bytes once between \
         two processes. Both pools run at their default chunk size (32 items per task here), \
         start fresh each round and warm up with an untimed map of the same items first; the \
         items are made before the timed map and passed by reference (`&items`), and every \
         result is a new buffer in the caller. proc-pool writes a `Vec<u8>` argument or result as \
         its length and then its bytes in one pass, not one serde element per byte, and the \
         caller reads each result with one copy (a worker reads an argument through a \
         deserializer that offers only bytes, about 1 GB/s: it cannot name the argument's \
         type). Python pickles each `bytes` with one copy. The rest is copies and page \
         faults: the manager copies each task frame into the worker's write buffer, and each \
         result from the ring into its frame buffer before decoding it (see docs/proc-pool.md, \
         \"Large values\").",
    )
    .contender(Contender::self_timed(POOL, run_pool))
    .contender(python::contender(
        cx.python.as_ref(),
        PYTHON,
        PYTHON_POOL_LARGE_ITEMS,
        [MIB.to_string()],
    ))
    .goal("Pool ≥ 0.8× the pipe floor", floor, POOL, 1.25)
    .goal("Pool ≥ 3× Python's Pool", PYTHON, POOL, 1.0 / 3.0)
    .max_rounds(Rounds {
        warmup: 1,
        measured: 5,
    }))
}

fn identity(item: Vec<u8>) -> Vec<u8> {
    item
}

/// Starts a `Pool(2)`, maps over `ops` items of 1 MiB once untimed, then times a second map of
/// the same items and checks what came back.
fn run_pool(ops: u64) -> BenchResult<Duration> {
    let items: Vec<Vec<u8>> = (0..ops).map(|i| vec![(i % 251) as u8; MIB]).collect();
    let pool = Pool::new(WORKERS)?;
    pool.map(identity, &items)?;
    let start = Instant::now();
    let out = pool.map(identity, &items)?;
    let elapsed = start.elapsed();
    if out != items {
        return Err("map returned other bytes than it was given".into());
    }
    Ok(elapsed)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn goals_name_rows_of_the_scenario() -> BenchResult<()> {
        let cx = Context {
            quick: true,
            python: None,
        };
        scenario(&cx)?.check_goals()
    }
}
