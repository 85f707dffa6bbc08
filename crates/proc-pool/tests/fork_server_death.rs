//! A pool whose fork server is killed: its own test binary (killing the server would fail
//! other tests' workers too).

use std::time::Duration;

use proc_pool::{Pool, StartMethod, TaskError};

fn square(x: u64) -> u64 {
    x * x
}

fn sleepy(ms: u64) -> u64 {
    std::thread::sleep(Duration::from_millis(ms));
    ms
}

/// A killed fork server takes its workers with it: their running tasks fail with an error
/// that says so (never a hang), the pool starts a new server and goes on.
#[test]
fn a_killed_fork_server_fails_running_tasks_and_is_replaced() {
    let _watchdog = test_support::watchdog(
        Duration::from_secs(60),
        "a pool whose fork server was killed",
    );
    let pool = Pool::builder()
        .start_method(StartMethod::ForkServer)
        .workers(2)
        .build()
        .expect("pool");
    assert_eq!(pool.apply(square, 2).expect("task"), 4);
    let server = proc_core::fork_server_pid().expect("a fork server runs");
    let running: Vec<_> = (0..2)
        .map(|_| pool.apply_async(sleepy, 3_000).expect("submit"))
        .collect();
    std::thread::sleep(Duration::from_millis(300));
    fork_sys::kill(server, fork_sys::Signal::KILL).expect("kill the fork server");
    for result in running {
        match result.get() {
            Err(TaskError::WorkerLost { reason, .. }) => {
                assert!(reason.contains("fork server"), "{reason}");
            }
            Err(TaskError::WorkerDied { .. }) => {}
            other => panic!("a task on a worker of the killed server: {other:?}"),
        }
    }
    assert_eq!(pool.apply(square, 3).expect("the pool goes on"), 9);
    let replacement = proc_core::fork_server_pid().expect("a new fork server");
    assert_ne!(replacement, server);
    pool.close();
    pool.join().expect("join");
}
