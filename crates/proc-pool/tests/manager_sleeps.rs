//! The manager thread sleeps in `poll`, never spins. In a binary of its own: it measures the
//! CPU time of the threads named "proc-pool", and other tests' pools would add theirs.

#![allow(clippy::unwrap_used)] // In tests a failed unwrap is a failed test, with its location.
#![cfg(target_os = "linux")]

use std::time::Duration;

use proc_pool::Pool;

fn slow_start() {
    std::thread::sleep(Duration::from_millis(1_500));
}

fn sleep_ms(ms: u64) -> u64 {
    std::thread::sleep(Duration::from_millis(ms));
    ms
}

fn manager_cpu() -> Duration {
    test_support::thread_cpu_time("proc-pool").unwrap()
}

#[test]
fn the_manager_sleeps_while_a_worker_initializes_under_a_short_timeout() {
    let pool = Pool::builder()
        .workers(1)
        .initializer(slow_start)
        .task_timeout(Duration::from_millis(50))
        .build()
        .unwrap();
    let before = manager_cpu();
    assert_eq!(pool.apply(sleep_ms, 1).unwrap(), 1);
    let spent = manager_cpu() - before;
    // It looks again every ~12 ms at most: a few ms of CPU, not the 1.5 s of a spin.
    assert!(
        spent < Duration::from_millis(300),
        "the manager used {spent:?} of CPU"
    );
}

#[test]
fn the_manager_sleeps_while_a_long_task_runs() {
    let pool = Pool::builder()
        .workers(2)
        .task_timeout(Duration::from_secs(60))
        .build()
        .unwrap();
    let before = manager_cpu();
    let long = pool.apply_async(sleep_ms, 1_500).unwrap();
    let quick: Vec<_> = (0..20)
        .map(|i| pool.apply_async(sleep_ms, i).unwrap())
        .collect();
    for result in quick {
        result.get().unwrap();
    }
    assert_eq!(long.get().unwrap(), 1_500);
    let spent = manager_cpu() - before;
    assert!(
        spent < Duration::from_millis(300),
        "the manager used {spent:?} of CPU"
    );
}
