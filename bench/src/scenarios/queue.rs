//! `queue ...`: proc-sync's `Queue` against a raw pipe (the floor: one `write` and one `read`
//! of 8 bytes per item) and Python's `multiprocessing.Queue`, for small items between two
//! processes and between four producers and four consumers; and for 1 MiB items against the
//! pipe's bulk throughput.

use std::fs::File;
use std::io::{ErrorKind, Read as _, Write as _};
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use fork_sys::SharedAtomics;
use proc_sync::Queue;

use crate::child::{Reaper, fork_helper};
use crate::cpu::{self, Placement};
use crate::harness::{BenchResult, Contender, Rounds, Scenario, Unit};
use crate::python;
use crate::scenarios::{Context, pipe_throughput};

/// Producers and consumers of the 4x4 scenario.
const SIDES: u64 = 4;
/// One item of the bulk scenario.
const MIB: usize = 1 << 20;
/// Tells a consumer of the 4x4 scenario to stop.
const STOP: u64 = u64::MAX;

/// `Queue(); Process(target=produce).start()`, then `N` `get`s in the parent, each checked,
/// timed from the first item's arrival (as the Rust contenders are).
const PYTHON_ONE_TO_ONE: &str = r#"
import multiprocessing as mp, sys, time
def produce(q, n):
    for i in range(n):
        q.put(i)
n = int(sys.argv[1])
ctx = mp.get_context("fork")
q = ctx.Queue()
p = ctx.Process(target=produce, args=(q, n))
p.start()
if q.get() != 0:
    sys.exit("items out of order")
start = time.perf_counter()
for i in range(1, n):
    if q.get() != i:
        sys.exit("items out of order")
elapsed = time.perf_counter() - start
p.join()
print(elapsed)
"#;

/// Four producer and four consumer `Process`es on one `Queue`, `N` items in all, `None` to
/// stop each consumer; the start of the processes is timed, as in the Rust contenders.
const PYTHON_FOUR_BY_FOUR: &str = r#"
import multiprocessing as mp, sys, time
def produce(q, n):
    for i in range(n):
        q.put(i)
def consume(q, done):
    count = 0
    while q.get() is not None:
        count += 1
    done.put(count)
n = int(sys.argv[1]) // 4
ctx = mp.get_context("fork")
q, done = ctx.Queue(), ctx.Queue()
start = time.perf_counter()
producers = [ctx.Process(target=produce, args=(q, n)) for _ in range(4)]
consumers = [ctx.Process(target=consume, args=(q, done)) for _ in range(4)]
for p in producers + consumers:
    p.start()
for p in producers:
    p.join()
for _ in consumers:
    q.put(None)
total = sum(done.get() for _ in consumers)
for c in consumers:
    c.join()
elapsed = time.perf_counter() - start
if total != 4 * n:
    sys.exit(f"{total} items of {4 * n} arrived")
print(elapsed)
"#;

const QUEUE_NOTE: &str = "An op is one item from a producer to a consumer. The pipe floor is \
     what a program without a queue pays for the same transfer: one 8-byte `write` and one \
     `read` per item, no encoding, no framing. proc-sync's queue encodes each item with bincode \
     into a ring of shared memory and takes a futex only when a side must sleep, so a steady \
     stream costs no system call per item. Python's `multiprocessing.Queue` pickles each item, \
     and a feeder thread writes it to a pipe.";

/// `queue u64 1x1`: one forked producer, the parent consuming, unpinned; timed from the first
/// item's arrival to the last's, in every contender: the steady stream, without the
/// producer's start (a fork and its first page faults, a few milliseconds that made a tenth
/// of a 100,000-item batch) or its exit.
pub(crate) fn one_to_one(cx: &Context) -> BenchResult<Scenario> {
    Ok(small_items(
        cx,
        SmallItems {
            name: "queue u64 1x1",
            op: "a u64 put by a forked producer and got by the parent (timed from the first arrival)",
            ops: cx.ops(100_000, 10_000),
            floor: ("pipe, 8-byte write and read per item", pipe_one_to_one),
            queue: queue_one_to_one,
            python: PYTHON_ONE_TO_ONE,
            measured: 7,
        },
    ))
}

/// `queue u64 4x4`: four producers and four consumers, all forked, start-up timed.
pub(crate) fn four_by_four(cx: &Context) -> BenchResult<Scenario> {
    Ok(small_items(
        cx,
        SmallItems {
            name: "queue u64 4x4",
            op: "a u64 from one of 4 forked producers to one of 4 forked consumers (forks timed)",
            ops: cx.ops(200_000, 20_000),
            floor: ("pipe shared by 4 writers and 4 readers", pipe_four_by_four),
            queue: queue_four_by_four,
            python: PYTHON_FOUR_BY_FOUR,
            measured: 5,
        },
    ))
}

/// What differs between the two small-item scenarios.
struct SmallItems {
    name: &'static str,
    op: &'static str,
    ops: u64,
    floor: (&'static str, fn(u64) -> BenchResult<Duration>),
    queue: fn(u64) -> BenchResult<Duration>,
    python: &'static str,
    measured: u32,
}

/// A small-item scenario: the pipe floor, proc-sync's queue and Python's, with the issue's
/// goals (at least as fast as the pipe, 50 times Python's queue).
fn small_items(cx: &Context, spec: SmallItems) -> Scenario {
    const QUEUE: &str = "proc-sync Queue<u64>";
    const PYTHON: &str = "python3 multiprocessing.Queue";
    let (floor, floor_batch) = spec.floor;
    Scenario::new(
        spec.name,
        spec.op,
        Unit::TimePerOp,
        spec.ops,
        Contender::self_timed(floor, floor_batch),
    )
    .note(QUEUE_NOTE)
    .contender(Contender::self_timed(QUEUE, spec.queue))
    .contender(python::contender(
        cx.python.as_ref(),
        PYTHON,
        spec.python,
        [],
    ))
    .goal("Queue at least as fast as the pipe", QUEUE, floor, 1.0)
    .goal("Queue ≥ 50× Python's Queue", QUEUE, PYTHON, 0.02)
    .max_rounds(Rounds {
        warmup: 1,
        measured: spec.measured,
    })
}

/// `queue 1 MiB items`: `Vec<u8>` items of 1 MiB against the pipe's bulk throughput, producer
/// and consumer pinned to two CPUs where there are two, as in `pipe throughput`.
pub(crate) fn bulk(cx: &Context) -> BenchResult<Scenario> {
    let placement = match cpu::two_cpus() {
        Some((first, second)) => Placement::Across(first, second),
        None => Placement::Unpinned,
    };
    let floor = format!("pipe enlarged to 1 MiB, {placement}");
    let queue = |capacity: usize| {
        Contender::self_timed(
            format!(
                "proc-sync Queue<Vec<u8>>, {} MiB ring, {placement}",
                capacity / MIB
            ),
            move |ops| queue_bulk(ops, capacity, placement),
        )
    };
    let default_ring = format!("proc-sync Queue<Vec<u8>>, 1 MiB ring, {placement}");
    Ok(Scenario::new(
        "queue 1 MiB items",
        "a 1 MiB Vec<u8> from the parent to a forked consumer",
        Unit::Throughput {
            bytes_per_op: MIB as u64,
        },
        cx.ops(256, 64),
        Contender::self_timed(floor.clone(), move |ops| {
            // The pipe scenario's writes are 64 KiB: 16 of them move one item's bytes.
            pipe_throughput::stream(
                ops * (MIB / pipe_throughput::CHUNK) as u64,
                Some(MIB),
                placement,
            )
        }),
    )
    .note(
        "The floor streams the same bytes through a pipe enlarged to 1 MiB, without item \
         boundaries. The queue encodes each item (a `Vec<u8>` goes as its length and its own \
         bytes), streams it through the ring in chunks of a quarter of the ring, and the \
         consumer allocates a fresh vector per item.",
    )
    .contender(queue(MIB))
    .contender(queue(4 * MIB))
    .goal("Queue ≥ 0.8× the pipe floor", floor, default_ring, 1.25))
}

fn pipe_one_to_one(ops: u64) -> BenchResult<Duration> {
    let (read, write) = fork_sys::pipe()?;
    let (read, writer) = fork_helper("pipe writer", read, write, move |write| {
        let mut write = File::from(write);
        for i in 0..ops {
            if write.write_all(&i.to_ne_bytes()).is_err() {
                return 1;
            }
        }
        0
    })?;
    let mut read = File::from(read);
    let mut item = [0u8; 8];
    let mut start = Instant::now();
    for i in 0..ops {
        read.read_exact(&mut item)?;
        if i == 0 {
            start = Instant::now();
        }
        if u64::from_ne_bytes(item) != i {
            return Err(format!("pipe item {i} arrived out of order").into());
        }
    }
    let elapsed = start.elapsed();
    writer.wait_success()?;
    Ok(elapsed)
}

fn queue_one_to_one(ops: u64) -> BenchResult<Duration> {
    let queue = Queue::<u64>::new()?;
    let (queue, producer) = fork_helper("queue producer", queue.clone(), queue, move |queue| {
        for i in 0..ops {
            if queue.put(i).is_err() {
                return 1;
            }
        }
        0
    })?;
    let mut start = Instant::now();
    for i in 0..ops {
        if queue.get()? != i {
            return Err(format!("queue item {i} arrived out of order").into());
        }
        if i == 0 {
            start = Instant::now();
        }
    }
    let elapsed = start.elapsed();
    producer.wait_success()?;
    Ok(elapsed)
}

fn pipe_four_by_four(ops: u64) -> BenchResult<Duration> {
    let per_producer = ops / SIDES;
    let received = SharedAtomics::new(1)?;
    let start = Instant::now();
    let (read, write) = fork_sys::pipe()?;
    let mut ends = (read, write);
    let mut children: Vec<Reaper> = Vec::new();
    for _ in 0..SIDES {
        let reader_end = ends.0.try_clone()?;
        let (back, reader) = fork_helper("pipe reader", ends, reader_end, |read| {
            let mut read = File::from(read);
            let mut item = [0u8; 8];
            loop {
                match read.read_exact(&mut item) {
                    Ok(()) => received.get(0).fetch_add(1, Ordering::Relaxed),
                    Err(err) if err.kind() == ErrorKind::UnexpectedEof => return 0,
                    Err(_) => return 1,
                };
            }
        })?;
        ends = back;
        children.push(reader);
    }
    for _ in 0..SIDES {
        let writer_end = ends.1.try_clone()?;
        let (back, writer) = fork_helper("pipe writer", ends, writer_end, move |write| {
            let mut write = File::from(write);
            for i in 0..per_producer {
                if write.write_all(&i.to_ne_bytes()).is_err() {
                    return 1;
                }
            }
            0
        })?;
        ends = back;
        children.push(writer);
    }
    drop(ends);
    reap_and_count(children, start, &received, per_producer * SIDES)
}

fn queue_four_by_four(ops: u64) -> BenchResult<Duration> {
    let per_producer = ops / SIDES;
    let received = SharedAtomics::new(1)?;
    let start = Instant::now();
    let queue = Queue::<u64>::new()?;
    let mut consumers = Vec::new();
    for _ in 0..SIDES {
        let ((), consumer) = fork_helper("queue consumer", (), queue.clone(), |queue| {
            loop {
                match queue.get() {
                    Ok(STOP) => return 0,
                    Ok(_) => {
                        received.get(0).fetch_add(1, Ordering::Relaxed);
                    }
                    Err(_) => return 1,
                }
            }
        })?;
        consumers.push(consumer);
    }
    let mut producers = Vec::new();
    for _ in 0..SIDES {
        let ((), producer) = fork_helper("queue producer", (), queue.clone(), move |queue| {
            for i in 0..per_producer {
                if queue.put(i).is_err() {
                    return 1;
                }
            }
            0
        })?;
        producers.push(producer);
    }
    for producer in producers {
        producer.wait_success()?;
    }
    for _ in 0..SIDES {
        queue.put(STOP)?;
    }
    reap_and_count(consumers, start, &received, per_producer * SIDES)
}

/// Reaps the last `children` of a 4x4 batch, then checks that the consumers counted `sent`
/// items; the batch's time ends with the reaping.
fn reap_and_count(
    children: Vec<Reaper>,
    start: Instant,
    received: &SharedAtomics,
    sent: u64,
) -> BenchResult<Duration> {
    for child in children {
        child.wait_success()?;
    }
    let elapsed = start.elapsed();
    let received = received.get(0).load(Ordering::Relaxed);
    if received == sent {
        Ok(elapsed)
    } else {
        Err(format!("{received} items of {sent} arrived").into())
    }
}

fn queue_bulk(ops: u64, capacity: usize, placement: Placement) -> BenchResult<Duration> {
    let _pin = placement.pin_parent()?;
    let queue = Queue::<Vec<u8>>::builder().capacity(capacity).build()?;
    // Made before the fork, so neither side's first touch of it is timed.
    let item = vec![0xa5u8; MIB];
    let ((), consumer) = fork_helper("queue consumer", (), queue.clone(), move |queue| {
        for _ in 0..ops {
            match queue.get() {
                Ok(item) if item.len() == MIB => {}
                _ => return 1,
            }
        }
        0
    })?;
    placement.pin_child(consumer.pid())?;
    let start = Instant::now();
    for _ in 0..ops {
        queue.put(&item)?;
    }
    consumer.wait_success()?;
    Ok(start.elapsed())
}
