//! A task that stops its worker (SIGSTOP) fails alone, and `close` + `join` return.

#![cfg(target_os = "linux")]

use std::time::{Duration, Instant};

use proc_pool::{Pool, StartMethod, TaskError};

fn stop_or_square(x: u64) -> u64 {
    if x == 3 {
        let _ = fork_sys::kill(fork_sys::getpid(), fork_sys::Signal::STOP);
    }
    x * x
}

#[cfg(target_os = "linux")]
#[test]
fn a_stopped_worker_fails_its_task_and_join_returns() {
    let _watchdog = test_support::watchdog(Duration::from_secs(120), "a stopped worker");
    for method in [
        StartMethod::Fork,
        StartMethod::ForkServer,
        StartMethod::Spawn,
    ] {
        let pool = Pool::builder()
            .start_method(method)
            .workers(2)
            .build()
            .expect("pool");
        let started = Instant::now();
        let results: Vec<_> = (0..8u64)
            .map(|x| pool.apply_async(stop_or_square, x).expect("submit"))
            .collect();
        pool.close();
        pool.join().expect("join returns");
        for (x, result) in (0..8u64).zip(results) {
            match (x, result.get()) {
                (3, Err(TaskError::WorkerStopped { .. })) => {}
                (3, other) => panic!("{method}: the stopping task: {other:?}"),
                (x, Ok(value)) => assert_eq!(value, x * x, "{method}"),
                (x, Err(err)) => panic!("{method}: task {x}: {err}"),
            }
        }
        assert!(started.elapsed() < Duration::from_secs(30), "{method}");
    }
}
