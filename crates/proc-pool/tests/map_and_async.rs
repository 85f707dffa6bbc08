//! Values come back right, in the right order, exactly once: `map`, `imap`, `imap_unordered`,
//! `apply`, `apply_async`.

#![allow(clippy::unwrap_used)] // In tests a failed unwrap is a failed test, with its location.

use std::collections::HashSet;
use std::time::Duration;

use proc_pool::{Pool, TaskError};

fn triple(x: u64) -> u64 {
    x * 3
}

fn pid_of_worker(_: ()) -> i32 {
    fork_sys::getpid().as_raw()
}

fn describe(x: u32) -> String {
    format!("item {x} of pid {}", fork_sys::getpid())
}

#[test]
fn map_of_ten_thousand_items_is_in_order_at_chunksize_one_and_the_default() {
    let pool = Pool::new(2).unwrap();
    let expected: Vec<u64> = (0..10_000).map(|x| x * 3).collect();
    assert_eq!(pool.map(triple, 0..10_000).unwrap(), expected);
    assert_eq!(pool.map_chunked(triple, 0..10_000, 1).unwrap(), expected);
    assert_eq!(pool.map_chunked(triple, 0..10_000, 999).unwrap(), expected);
    assert_eq!(pool.map(triple, Vec::new()).unwrap(), Vec::<u64>::new());
}

/// Its first items are slow: the chunk holding them completes after the chunks behind it.
fn slow_start(x: u64) -> u64 {
    if x < 3 {
        std::thread::sleep(Duration::from_millis(150));
    }
    x * 3
}

/// Chunks that complete out of order (the first one last, while the other worker runs all the
/// rest, in parts bigger than one frame) still give every value in input order, and so do
/// the same chunks completing in order, and a map of a single chunk.
#[test]
fn map_values_are_in_input_order_whatever_order_the_chunks_complete_in() {
    let pool = Pool::new(2).unwrap();
    let expected: Vec<u64> = (0..300_000).map(|x| x * 3).collect();
    assert_eq!(
        pool.map_chunked(slow_start, 0..300_000, 20_000).unwrap(),
        expected
    );
    assert_eq!(
        pool.map_chunked(triple, 0..300_000, 20_000).unwrap(),
        expected
    );
    assert_eq!(
        pool.map_chunked(triple, 0..300_000, 300_000).unwrap(),
        expected
    );
    // A last chunk shorter than the others.
    assert_eq!(
        pool.map_chunked(slow_start, 0..1_001, 100).unwrap(),
        expected[..1_001]
    );
}

#[test]
fn both_workers_take_part_in_a_map() {
    let pool = Pool::new(2).unwrap();
    let texts = pool.map_chunked(describe, 0..200u32, 1).unwrap();
    assert_eq!(texts.len(), 200);
    assert!(texts[7].starts_with("item 7 of pid "));
    let pids: HashSet<&str> = texts.iter().filter_map(|t| t.rsplit(' ').next()).collect();
    let workers: HashSet<String> = pool.worker_pids().iter().map(|p| p.to_string()).collect();
    assert!(
        pids.iter().all(|p| workers.contains(*p)),
        "{pids:?} vs {workers:?}"
    );
    assert!(!pids.contains(fork_sys::getpid().to_string().as_str()));
}

#[test]
fn imap_unordered_returns_every_result_exactly_once() {
    let pool = Pool::new(2).unwrap();
    let mut got: Vec<u64> = pool
        .imap_unordered(triple, 0..10_000)
        .map(Result::unwrap)
        .collect();
    got.sort_unstable();
    assert_eq!(got, (0..10_000).map(|x| x * 3).collect::<Vec<_>>());

    let mut chunked: Vec<u64> = pool
        .imap_unordered(triple, 0..5_001)
        .chunksize(100)
        .map(Result::unwrap)
        .collect();
    chunked.sort_unstable();
    assert_eq!(chunked, (0..5_001).map(|x| x * 3).collect::<Vec<_>>());
}

#[test]
fn imap_is_ordered_and_lazy_over_an_endless_input() {
    let pool = Pool::new(2).unwrap();
    // An endless input: only a window of it is ever pulled ahead of the consumer.
    let first: Vec<u64> = pool
        .imap(triple, 0u64..)
        .take(20_000)
        .map(Result::unwrap)
        .collect();
    assert_eq!(first, (0..20_000).map(|x| x * 3).collect::<Vec<_>>());

    let chunked: Vec<u64> = pool
        .imap(triple, 0..1_234)
        .chunksize(50)
        .map(Result::unwrap)
        .collect();
    assert_eq!(chunked, (0..1_234).map(|x| x * 3).collect::<Vec<_>>());
    // The pool is still fine after an imap was dropped half-way.
    assert_eq!(pool.apply(triple, 5).unwrap(), 15);
}

#[test]
fn apply_async_results_are_routed_to_their_own_task() {
    let pool = Pool::new(2).unwrap();
    let pending: Vec<_> = (0..2_000u64)
        .map(|i| pool.apply_async(triple, i).unwrap())
        .collect();
    for (i, result) in pending.into_iter().enumerate().rev() {
        assert_eq!(result.get().unwrap(), i as u64 * 3);
    }
    let one = pool.apply_async(triple, 7).unwrap();
    one.wait();
    assert!(one.ready());
    assert_eq!(one.get_timeout(Duration::from_secs(1)).unwrap(), 21);
    assert!(matches!(
        one.get_timeout(Duration::from_secs(1)),
        Err(TaskError::AlreadyTaken)
    ));
}

#[test]
fn get_timeout_reports_not_ready_and_the_value_still_comes() {
    let pool = Pool::new(1).unwrap();
    let slow = pool
        .apply_async(
            |ms: u64| {
                std::thread::sleep(Duration::from_millis(ms));
                ms
            },
            400,
        )
        .unwrap();
    assert!(matches!(
        slow.get_timeout(Duration::from_millis(10)),
        Err(TaskError::NotReady { .. })
    ));
    assert!(!slow.ready());
    assert_eq!(slow.get().unwrap(), 400);
}

#[test]
fn values_of_any_serde_type_cross() {
    let pool = Pool::new(2).unwrap();
    let words = pool
        .map(
            |(word, n): (String, usize)| word.repeat(n),
            vec![("ab".to_string(), 2), ("c".to_string(), 0)],
        )
        .unwrap();
    assert_eq!(words, ["abab", ""]);
    let big = pool.apply(|n: usize| vec![7u8; n], 8 << 20).unwrap();
    assert_eq!((big.len(), big[123_456]), (8 << 20, 7));
    let unit: () = pool.apply(|()| (), ()).unwrap();
    assert_eq!(unit, ());
}

#[test]
fn a_slow_task_does_not_hold_back_the_tasks_queued_after_it() {
    let pool = Pool::new(2).unwrap();
    let slow = pool
        .apply_async(|()| std::thread::sleep(Duration::from_secs(4)), ())
        .unwrap();
    // Give the slow task time to start, then queue fast ones: all of them go to the other
    // worker and finish while the slow one still runs.
    std::thread::sleep(Duration::from_millis(100));
    let fast: Vec<_> = (0..50u64)
        .map(|i| pool.apply_async(triple, i).unwrap())
        .collect();
    for (i, result) in fast.into_iter().enumerate() {
        assert_eq!(result.get().unwrap(), i as u64 * 3);
    }
    assert!(!slow.ready(), "the fast tasks should finish first");
    let _ = pid_of_worker;
}

#[test]
fn imap_pulls_its_input_only_as_results_are_consumed() {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicU64, Ordering};

    let pool = Pool::new(2).unwrap();
    let pulled = Arc::new(AtomicU64::new(0));
    let counter = pulled.clone();
    let input = (0u64..).inspect(move |_| {
        counter.fetch_add(1, Ordering::Relaxed);
    });
    let mut results = pool.imap(triple, input);
    for i in 0..10 {
        assert_eq!(results.next().unwrap().unwrap(), i * 3);
    }
    // At most the window (512 chunks per worker) plus one submission batch ahead.
    let ahead = pulled.load(Ordering::Relaxed);
    assert!(
        ahead <= 2 * 512 + 256,
        "pulled {ahead} items for 10 results"
    );
    drop(results);
    assert_eq!(pool.apply(triple, 2).unwrap(), 6);
}

#[test]
fn imap_of_small_chunked_items_keeps_a_window_sized_by_memory() {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicU64, Ordering};

    let pool = Pool::new(2).unwrap();
    let pulled = Arc::new(AtomicU64::new(0));
    let counter = pulled.clone();
    let input = (0u64..).inspect(move |_| {
        counter.fetch_add(1, Ordering::Relaxed);
    });
    let mut results = pool.imap(triple, input).chunksize(100);
    let mut most_ahead = 0;
    for i in 0..50_000 {
        assert_eq!(results.next().unwrap().unwrap(), i * 3);
        most_ahead = most_ahead.max(pulled.load(Ordering::Relaxed) - (i + 1));
    }
    // The window is sized by what its chunks weigh here (a few hundred KiB: about 60 chunks
    // of 100 small results), not a fixed 512 chunks per worker (102,400 items ahead), which
    // held megabytes of results waiting for a slower consumer.
    assert!(
        most_ahead <= 12_000,
        "pulled up to {most_ahead} items ahead of the consumer"
    );
    drop(results);
    assert_eq!(pool.apply(triple, 2).unwrap(), 6);
}

#[test]
fn a_forked_copy_of_the_pool_is_refused_instead_of_hanging() {
    let pool = Pool::new(1).unwrap();
    let owner = fork_sys::getpid();
    // A Process child has a copy of `pool`, but not its manager thread.
    let outcome = proc_core::Process::spawn(|| match pool.apply(triple, 1) {
        Err(TaskError::ForeignProcess { owner, current }) => Ok((owner.as_raw(), current.as_raw())),
        other => Err(format!("{other:?}")),
    })
    .unwrap()
    .join()
    .unwrap();
    let (seen_owner, current) = outcome.unwrap();
    assert_eq!(seen_owner, owner.as_raw());
    assert_ne!(current, owner.as_raw());
    assert_eq!(pool.apply(triple, 1).unwrap(), 3);
}

/// The descriptors a program started from here sees (its own listing fd included).
#[cfg(target_os = "linux")]
fn fds_seen_by_a_subprocess(_: ()) -> Vec<String> {
    let output = std::process::Command::new("ls")
        .arg("/proc/self/fd")
        .output()
        .unwrap();
    let mut fds: Vec<String> = String::from_utf8(output.stdout)
        .unwrap()
        .split_whitespace()
        .map(str::to_owned)
        .collect();
    fds.sort();
    fds
}

#[cfg(target_os = "linux")]
#[test]
fn programs_run_by_tasks_inherit_none_of_the_pools_pipes() {
    let pool = Pool::new(2).unwrap();
    let from_parent = fds_seen_by_a_subprocess(());
    let from_task = pool.apply(fds_seen_by_a_subprocess, ()).unwrap();
    assert_eq!(from_task, from_parent);
}

fn sleep_ms(ms: u64) -> u64 {
    std::thread::sleep(Duration::from_millis(ms));
    ms
}

#[test]
fn tasks_queued_behind_a_slow_one_on_the_same_worker_are_moved_to_a_free_one() {
    let pool = Pool::new(2).unwrap();
    // Make the pool see tiny tasks, so windows grow and many tasks go to each worker.
    pool.map_chunked(triple, 0..5_000, 1).unwrap();
    let mut items = vec![3_000u64];
    items.extend(std::iter::repeat_n(0, 200));
    let started = std::time::Instant::now();
    let mut fast_done_after_slow = 0;
    let mut slow_seen = false;
    for outcome in pool.imap_unordered(sleep_ms, items) {
        match outcome.unwrap() {
            3_000 => slow_seen = true,
            _ if slow_seen => fast_done_after_slow += 1,
            _ => {}
        }
    }
    assert_eq!(
        fast_done_after_slow, 0,
        "fast tasks waited for the slow one"
    );
    assert!(started.elapsed() >= Duration::from_secs(3));
}

#[test]
fn a_finished_value_is_not_held_back_by_the_slow_task_after_it() {
    let pool = Pool::new(1).unwrap();
    let started = std::time::Instant::now();
    let mut results = pool.imap(sleep_ms, [0, 3_000]);
    assert_eq!(results.next().unwrap().unwrap(), 0);
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "the first value came after {:?}",
        started.elapsed()
    );
    drop(results);
}

#[test]
fn a_pool_and_its_results_can_be_shared_and_sent_between_threads() {
    fn send_and_sync<T: Send + Sync>(_: &T) {}
    let pool = std::sync::Arc::new(Pool::new(2).unwrap());
    send_and_sync(&*pool);
    let handles: Vec<_> = (0..4u64)
        .map(|t| {
            let pool = pool.clone();
            std::thread::spawn(move || pool.map(triple, t * 100..t * 100 + 100).unwrap())
        })
        .collect();
    for (t, handle) in handles.into_iter().enumerate() {
        let t = t as u64;
        assert_eq!(
            handle.join().unwrap(),
            (t * 100..t * 100 + 100).map(|x| x * 3).collect::<Vec<_>>()
        );
    }
    let pending = pool.apply_async(triple, 4).unwrap();
    send_and_sync(&pending);
    assert_eq!(
        std::thread::spawn(move || pending.get().unwrap())
            .join()
            .unwrap(),
        12
    );
}

fn hold_stdout(ms: u64) -> u64 {
    let _locked = std::io::stdout().lock();
    std::thread::sleep(Duration::from_millis(ms));
    ms
}

#[test]
fn a_task_holding_stdout_does_not_hold_back_the_value_before_it() {
    let pool = Pool::new(1).unwrap();
    let started = std::time::Instant::now();
    let first = pool.apply_async(sleep_ms, 0).unwrap();
    let holder = pool.apply_async(hold_stdout, 2_000).unwrap();
    assert_eq!(first.get().unwrap(), 0);
    assert!(
        started.elapsed() < Duration::from_millis(1_500),
        "the first value came after {:?}",
        started.elapsed()
    );
    assert_eq!(holder.get().unwrap(), 2_000);
}
