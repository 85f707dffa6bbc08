//! Large byte buffers as task arguments and results: they take the codec's short road (their
//! bytes copied whole), and must come back byte-exact through every way of submitting, beside
//! values of other types, larger than a worker's result ring, and refused whole over the
//! frame limit.

use proc_pool::{Pool, TaskError};
use serde::{Deserialize, Serialize};

const MIB: usize = 1 << 20;

/// Bytes that differ from their neighbours and from item to item, so a shifted, cut or
/// swapped copy shows.
fn pattern(len: usize, seed: u8) -> Vec<u8> {
    (0..len)
        .map(|i| (i as u8).wrapping_mul(31) ^ (i >> 11) as u8 ^ seed)
        .collect()
}

fn reversed(mut bytes: Vec<u8>) -> Vec<u8> {
    bytes.reverse();
    bytes
}

/// The sizes every way is tried with: empty, the varint prefix's steps, 1 MiB, 4 MiB.
fn items() -> Vec<Vec<u8>> {
    [0, 1, 250, 251, 65_536, MIB, 4 * MIB + 3]
        .iter()
        .enumerate()
        .map(|(seed, len)| pattern(*len, seed as u8))
        .collect()
}

fn expected(items: &[Vec<u8>]) -> Vec<Vec<u8>> {
    items.iter().cloned().map(reversed).collect()
}

/// Fails with the first item that differs, naming it (not 16 MiB of bytes).
fn assert_same(got: &[Vec<u8>], want: &[Vec<u8>]) {
    assert_eq!(got.len(), want.len(), "item count");
    if got == want {
        return;
    }
    for (index, (got, want)) in got.iter().zip(want).enumerate() {
        assert_eq!(got.len(), want.len(), "length of item {index}");
        let first_difference = got.iter().zip(want).position(|(a, b)| a != b);
        assert_eq!(first_difference, None, "first wrong byte of item {index}");
    }
}

#[test]
fn byte_vectors_come_back_byte_exact_through_map_apply_and_imap() {
    let pool = Pool::new(2).unwrap();
    let items = items();
    let want = expected(&items);
    assert_same(&pool.map(reversed, &items).unwrap(), &want);
    assert_same(&pool.map_chunked(reversed, &items, 1).unwrap(), &want);
    assert_same(
        &pool.map_chunked(reversed, items.clone(), 3).unwrap(),
        &want,
    );
    let ordered: Vec<Vec<u8>> = pool
        .imap(reversed, &items)
        .chunksize(2)
        .collect::<Result<_, _>>()
        .unwrap();
    assert_same(&ordered, &want);
    let mut unordered: Vec<Vec<u8>> = pool
        .imap_unordered(reversed, items.iter())
        .collect::<Result<_, _>>()
        .unwrap();
    unordered.sort_by_key(Vec::len);
    assert_same(&unordered, &want);
    for (item, want) in items.iter().zip(&want) {
        assert_same(
            &[pool.apply(reversed, item.clone()).unwrap()],
            std::slice::from_ref(want),
        );
    }
    let pending: Vec<_> = items
        .iter()
        .map(|item| pool.apply_async(reversed, item.clone()).unwrap())
        .collect();
    let got: Vec<Vec<u8>> = pending.into_iter().map(|r| r.get().unwrap()).collect();
    assert_same(&got, &want);
    // 16 MiB, whose length prefix is a u32's.
    let huge = pattern(16 * MIB + 5, 99);
    let got = pool.map(reversed, [huge.clone(), Vec::new()]).unwrap();
    assert_same(&got, &[reversed(huge), Vec::new()]);
}

/// A newtype around a byte vector: the same bytes on the wire as a `Vec<u8>`, but a worker
/// reads it through serde (the codec's short road), not by type.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct Wrapped(Vec<u8>);

fn reversed_wrapped(Wrapped(bytes): Wrapped) -> Vec<u8> {
    reversed(bytes)
}

/// Sizes from 0 to 16 MiB: the varint prefix's steps, both sides of the task frame size a
/// worker's queue shares instead of copying (64 KiB) and of the result ring (256 KiB).
fn sizes_to_16_mib() -> Vec<usize> {
    let mut sizes = vec![
        0, 1, 127, 128, 250, 251, 252, 16_383, 16_384, 65_535, 65_536,
    ];
    for base in [64 * 1024, 256 * 1024, MIB, 4 * MIB, 16 * MIB] {
        sizes.extend([base - 40, base - 1, base, base + 1, base + 40]);
    }
    sizes
}

#[test]
fn vec_u8_arguments_read_by_type_match_the_serde_road_at_every_size() {
    let pool = Pool::new(2).unwrap();
    let items: Vec<Vec<u8>> = sizes_to_16_mib()
        .into_iter()
        .enumerate()
        .map(|(seed, len)| pattern(len, seed as u8))
        .collect();
    let wrapped: Vec<Wrapped> = items.iter().cloned().map(Wrapped).collect();
    let want = expected(&items);
    // One item per chunk (small frames copied into a worker's queue between large ones it
    // shares), and all in one chunk of about 40 MiB; the serde road once (it is slow in a
    // debug build).
    for chunksize in [1, items.len()] {
        let by_type = pool.map_chunked(reversed, &items, chunksize).unwrap();
        assert_same(&by_type, &want);
    }
    let by_serde = pool.map_chunked(reversed_wrapped, &wrapped, 3).unwrap();
    assert_same(&by_serde, &want);
}

/// Reversed, but an empty vector takes its worker down (SIGKILL).
fn reversed_unless_empty(bytes: Vec<u8>) -> Vec<u8> {
    if bytes.is_empty() {
        let _ =
            rustix::process::kill_process(rustix::process::getpid(), rustix::process::Signal::KILL);
        unreachable!("SIGKILL returned");
    }
    reversed(bytes)
}

#[test]
fn the_rest_of_a_chunk_of_byte_vectors_whose_worker_died_resumes_at_the_right_item() {
    let pool = Pool::new(2).unwrap();
    let items: Vec<Vec<u8>> = [10, 70_000, 0, 300_000, 5, MIB]
        .iter()
        .enumerate()
        .map(|(seed, len)| pattern(*len, seed as u8))
        .collect();
    // One chunk: the worker dies at item 2, the items after it run elsewhere, skipping the
    // first three of the frame.
    let outcomes: Vec<Result<Vec<u8>, TaskError>> = pool
        .imap(reversed_unless_empty, &items)
        .chunksize(items.len())
        .collect();
    for (index, (outcome, item)) in outcomes.iter().zip(&items).enumerate() {
        match outcome {
            Ok(got) => assert_same(std::slice::from_ref(got), &[reversed(item.clone())]),
            Err(err) => {
                assert_eq!(index, 2, "item {index} failed: {err}");
                assert!(matches!(err, TaskError::WorkerDied { .. }), "{err}");
            }
        }
    }
    assert!(outcomes[2].is_err(), "the empty item's worker died");
}

/// The vector itself; an odd-length one sleeps first, long enough for the manager to take
/// back the chunks queued behind it.
fn slow_if_odd(bytes: Vec<u8>) -> Vec<u8> {
    if bytes.len() % 2 == 1 {
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    bytes
}

#[test]
fn large_chunks_taken_back_from_a_slow_worker_run_elsewhere_and_the_worker_lives() {
    // Large frames are put into a worker's pipe by reference: one taken back and given to
    // another worker (with another sequence number) must not change under the first, which
    // would read it as a damaged frame and exit.
    let pool = Pool::new(2).unwrap();
    // Frames of 70 KB: several fit in a task pipe, put there while the worker sleeps.
    let items: Vec<Vec<u8>> = (0..32)
        .map(|i| pattern(if i % 4 == 0 { 70_001 } else { 70_000 }, i as u8))
        .collect();
    // A first map teaches the manager that chunks are quick: it then queues several on each
    // worker.
    let tiny = vec![vec![1u8, 2]; 2000];
    assert_same(&pool.map_chunked(slow_if_odd, &tiny, 1).unwrap(), &tiny);
    let before = pool.worker_pids();
    let got = pool.map_chunked(slow_if_odd, &items, 1).unwrap();
    assert_same(&got, &items);
    assert_eq!(pool.worker_pids(), before, "a worker was replaced");
}

fn join(a: Vec<u8>, b: Vec<u8>) -> Vec<u8> {
    [b, a].concat()
}

#[test]
fn starmap_pairs_of_byte_vectors_come_back_whole() {
    let pool = Pool::new(2).unwrap();
    // Tuples go bincode's road a byte at a time: up to 1 MiB (16 MiB is slow in a debug
    // build, and proves nothing more here).
    let items: Vec<Vec<u8>> = items().into_iter().filter(|i| i.len() <= MIB).collect();
    let pairs: Vec<(Vec<u8>, Vec<u8>)> = items
        .iter()
        .zip(items.iter().rev())
        .map(|(a, b)| (a.clone(), b.clone()))
        .collect();
    let want: Vec<Vec<u8>> = pairs
        .iter()
        .map(|(a, b)| join(a.clone(), b.clone()))
        .collect();
    assert_same(&pool.starmap(join, pairs).unwrap(), &want);
}

/// A struct with a byte field: bincode's road all the way.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct Record {
    id: u32,
    body: Vec<u8>,
    name: String,
}

fn touch(mut record: Record) -> Record {
    record.id += 1;
    record.body.reverse();
    record
}

fn length(bytes: Vec<u8>) -> u64 {
    bytes.len() as u64
}

fn shout(text: String) -> String {
    text.to_uppercase()
}

fn make(len: usize) -> Vec<u8> {
    pattern(len, 7)
}

#[test]
fn byte_vectors_and_other_types_share_a_pool() {
    let pool = Pool::new(2).unwrap();
    let big = pattern(3 * MIB, 9);
    let record = Record {
        id: 1,
        body: pattern(2 * MIB, 3),
        name: "ß".repeat(1000),
    };
    let bytes = pool.apply_async(reversed, big.clone()).unwrap();
    let records = pool.apply_async(touch, record.clone()).unwrap();
    let lengths = pool
        .map_async(length, vec![big.clone(), Vec::new()])
        .unwrap();
    let numbers = pool.map_async(|x: u64| x * 3, 0..10_000).unwrap();
    let text = pool.apply_async(shout, "ab".repeat(MIB)).unwrap();
    let made = pool.map_async(make, [0, 10, MIB, 5 * MIB]).unwrap();

    assert_same(&[bytes.get().unwrap()], &[reversed(big.clone())]);
    assert_eq!(records.get().unwrap(), touch(record));
    assert_eq!(lengths.get().unwrap(), [3 * MIB as u64, 0]);
    assert_eq!(
        numbers.get().unwrap(),
        (0..10_000).map(|x| x * 3).collect::<Vec<u64>>()
    );
    assert_eq!(text.get().unwrap(), "AB".repeat(MIB));
    assert_same(
        &made.get().unwrap(),
        &[make(0), make(10), make(MIB), make(5 * MIB)],
    );
}

#[test]
fn results_larger_than_the_ring_arrive_whole_between_small_ones_in_one_chunk() {
    // A worker's ring holds 256 KiB: the 3 MiB and 300 KiB results stream through it as
    // frames of their own, the small ones around them are staged in parts.
    let pool = Pool::new(1).unwrap();
    let sizes = [10, 3 * MIB, 20, 20, 300 << 10, 0, 100 << 10, 1];
    let got = pool.map_chunked(make, sizes, sizes.len()).unwrap();
    let want: Vec<Vec<u8>> = sizes.iter().map(|n| make(*n)).collect();
    assert_same(&got, &want);
}

fn reversed_unless_odd(bytes: Vec<u8>) -> Vec<u8> {
    assert!(bytes.len() % 2 == 0, "an odd length: {}", bytes.len());
    reversed(bytes)
}

#[test]
fn a_panic_in_a_chunk_of_byte_vectors_fails_only_its_item() {
    let pool = Pool::new(1).unwrap();
    let items = vec![
        pattern(2 * MIB, 1),
        pattern(10, 2),
        pattern(MIB + 1, 3),
        pattern(2 * MIB, 4),
        pattern(64, 5),
    ];
    let outcomes: Vec<Result<Vec<u8>, TaskError>> = pool
        .imap(reversed_unless_odd, &items)
        .chunksize(items.len())
        .collect();
    for (index, (outcome, item)) in outcomes.into_iter().zip(&items).enumerate() {
        match outcome {
            Ok(value) => assert_same(&[value], &[reversed(item.clone())]),
            Err(TaskError::Panicked { message, .. }) => {
                assert_eq!(index, 2);
                assert!(message.contains("odd length"), "{message}");
            }
            Err(other) => panic!("item {index}: {other}"),
        }
    }
}

#[test]
fn byte_vectors_over_the_frame_limit_are_refused_and_nothing_else_is_lost() {
    let pool = Pool::builder()
        .workers(1)
        .max_frame_len(MIB)
        .build()
        .unwrap();
    // A result over the limit fails its own item, after the worker made it.
    let small = pool.apply_async(make, 1000).unwrap();
    let big = pool.apply_async(make, 2 * MIB).unwrap();
    let after = pool.apply_async(make, MIB / 2).unwrap();
    assert_same(&[small.get().unwrap()], &[make(1000)]);
    match big.get() {
        Err(TaskError::ResultTooLarge { len, limit, .. }) => {
            assert!(len > 2 * MIB as u64, "{len}");
            assert_eq!(limit, MIB as u64);
        }
        other => panic!("expected ResultTooLarge, got {other:?}"),
    }
    assert_same(&[after.get().unwrap()], &[make(MIB / 2)]);
    // An argument over the limit is refused before anything is sent.
    let err = pool.apply(reversed, pattern(2 * MIB, 1)).unwrap_err();
    assert!(matches!(err, TaskError::Codec { task: None, .. }), "{err}");
    assert!(err.to_string().contains("limit"), "{err}");
    // Just under the limit still goes, both ways.
    let fits = pattern(MIB - 64, 2);
    assert_same(
        &[pool.apply(reversed, fits.clone()).unwrap()],
        &[reversed(fits)],
    );
}

#[test]
fn a_map_of_more_large_chunks_than_its_window_reuses_their_memory_and_loses_no_byte() {
    // Chunks of two items of about 6 MiB: frames of 12 MiB, so the window (16 MiB of large
    // frames and three of them, on a pool of 2) fills and later chunks are encoded into the
    // memory of earlier ones. The lengths differ, so a frame encoded over a longer one's
    // memory shows if its length or its tail were wrong.
    let pool = Pool::new(2).unwrap();
    let items: Vec<Vec<u8>> = (0..20)
        .map(|i| pattern(6 * MIB - 1000 * (i % 7), i as u8))
        .collect();
    let got = pool.map_chunked(reversed, &items, 2).unwrap();
    assert_same(&got, &expected(&items));
    // And again through the same pool, the items in the other order.
    let backwards: Vec<Vec<u8>> = items.iter().rev().cloned().collect();
    let got = pool.map_chunked(reversed, &backwards, 2).unwrap();
    assert_same(&got, &expected(&backwards));
}

#[test]
fn a_map_whose_results_grow_past_a_mib_keeps_every_value_in_order() {
    // The first chunks' results are small (the manager decodes them), later ones pass 1 MiB
    // (from then on the waiting caller decodes every part): the switch must lose no value
    // and change no order.
    let pool = Pool::new(2).unwrap();
    let items: Vec<Vec<u8>> = (0..40)
        .map(|i| pattern(i * 64 * 1024 + i, i as u8))
        .collect();
    let got = pool.map_chunked(reversed, &items, 3).unwrap();
    assert_same(&got, &expected(&items));
}

#[test]
fn large_results_of_a_chunk_that_completes_last_still_come_first() {
    // Chunk 0 (an odd length) sleeps, so the chunks after it complete and are decoded before
    // it; `map` must still return them in input order.
    let pool = Pool::new(2).unwrap();
    let items: Vec<Vec<u8>> = (0..8)
        .map(|i| pattern(2 * MIB + usize::from(i == 0), i as u8))
        .collect();
    let got = pool.map_chunked(slow_if_odd, &items, 1).unwrap();
    assert_same(&got, &items);
}

/// The vector reversed, unless it starts with 0xEE: then it panics.
fn reversed_unless_marked(bytes: Vec<u8>) -> Vec<u8> {
    assert!(bytes.first() != Some(&0xEE), "marked item");
    reversed(bytes)
}

#[test]
fn a_panic_among_large_results_fails_the_map_with_it_and_the_pool_goes_on() {
    let pool = Pool::new(2).unwrap();
    let mut items: Vec<Vec<u8>> = (0..12).map(|i| pattern(2 * MIB, i as u8)).collect();
    items[9][0] = 0xEE;
    match pool.map_chunked(reversed_unless_marked, &items, 2) {
        Err(TaskError::Panicked { message, .. }) => assert!(message.contains("marked item")),
        other => panic!(
            "expected the marked item's panic, got {:?}",
            other.map(|v| v.len())
        ),
    }
    items[9][0] = 0;
    let got = pool.map_chunked(reversed_unless_marked, &items, 2).unwrap();
    assert_same(&got, &expected(&items));
}

/// The worker's pid, and the argument's length (so the worker reads it whole).
fn worker_pid_and_len(bytes: Vec<u8>) -> (u32, usize) {
    (std::process::id(), bytes.len())
}

fn worker_pid(_: u64) -> u32 {
    std::process::id()
}

/// The lengths of the runs of equal values in `values`.
fn run_lengths<T: PartialEq>(values: &[T]) -> Vec<usize> {
    values.chunk_by(|a, b| a == b).map(<[T]>::len).collect()
}

/// The chunks of a map of `worker_pid_and_len` over 1 MiB items, as the lengths of the runs
/// of equal pids; every item must have arrived whole.
fn chunk_lengths(got: &[(u32, usize)]) -> Vec<usize> {
    assert!(got.iter().all(|&(_, len)| len == MIB));
    let pids: Vec<u32> = got.iter().map(|&(pid, _)| pid).collect();
    run_lengths(&pids)
}

#[test]
fn map_default_chunks_hold_about_4_mib_of_large_items_and_python_counts_of_small_ones() {
    // One task per worker: each chunk runs in a worker of its own, so the runs of equal pids
    // in the results are the chunks.
    let pool = Pool::builder()
        .workers(2)
        .max_tasks_per_child(1)
        .build()
        .unwrap();
    // Small items: Python's count, 16 / (4 × 2 workers) = 2 a chunk.
    let pids = pool.map(worker_pid, 0..16u64).unwrap();
    assert_eq!(run_lengths(&pids), [2; 8], "{pids:?}");
    // 64 items of 1 MiB: Python's count is 8 a chunk; the byte bound makes it 4 (about 4 MiB).
    let items: Vec<Vec<u8>> = (0..64).map(|i| pattern(MIB, i as u8)).collect();
    let got = pool.map(worker_pid_and_len, &items).unwrap();
    assert_eq!(chunk_lengths(&got), [4; 16], "{got:?}");
    // Where Python's count is the smaller, it stands: 16 of them go 2 to a chunk.
    let got = pool.map(worker_pid_and_len, &items[..16]).unwrap();
    assert_eq!(chunk_lengths(&got), [2; 8], "{got:?}");
    // A chunk size the caller gives is taken as it is.
    let got = pool.map_chunked(worker_pid_and_len, &items, 8).unwrap();
    assert_eq!(chunk_lengths(&got), [8; 8], "{got:?}");
}
