//! Pools under every start method leave nothing behind: its own test binary, since it counts
//! the process's fds and children.

use std::time::Duration;

use proc_pool::{Pool, StartMethod};

const METHODS: [StartMethod; 3] = [
    StartMethod::Fork,
    StartMethod::ForkServer,
    StartMethod::Spawn,
];

fn square(x: u64) -> u64 {
    x * x
}

fn die(_: u64) -> u64 {
    std::process::abort()
}

fn sleepy(ms: u64) -> u64 {
    std::thread::sleep(Duration::from_millis(ms));
    ms
}

/// Pools under the fork server and spawn, dropped busy or joined, leave no worker, no zombie
/// and no descriptor behind (the fork server and its socket stay, for the next pool).
#[test]
fn pools_leave_nothing_behind_under_every_method() {
    // The fork server first, so it is part of the baseline.
    let warm = Pool::builder()
        .start_method(StartMethod::ForkServer)
        .workers(1)
        .build()
        .expect("pool");
    assert_eq!(warm.apply(square, 1).expect("task"), 1);
    drop(warm);
    let fds = test_support::open_fd_count();
    let children = test_support::child_count();
    for method in METHODS {
        for round in 0..6 {
            let pool = Pool::builder()
                .start_method(method)
                .workers(3)
                .build()
                .expect("pool");
            let _ = pool.apply(die, 1);
            let busy: Vec<_> = (0..6)
                .map(|_| pool.apply_async(sleepy, 10_000).expect("submit"))
                .collect();
            let workers = pool.worker_pids();
            if round % 2 == 0 {
                pool.terminate().expect("terminate");
            }
            drop(busy);
            drop(pool);
            assert!(
                test_support::eventually(Duration::from_secs(10), || test_support::child_count()
                    == children),
                "{method} round {round}: workers left"
            );
            // Under ForkServer the workers are the server's children, not ours: each must be
            // gone (the server keeps one spare child of its own, which is no worker).
            assert!(
                test_support::eventually(Duration::from_secs(10), || workers
                    .iter()
                    .all(|&pid| is_gone(pid))),
                "{method} round {round}: workers {workers:?} left"
            );
            assert_eq!(test_support::zombie_children(), 0, "{method}");
            assert_eq!(
                test_support::open_fd_count(),
                fds,
                "{method} round {round}: fds leaked"
            );
        }
    }
}

/// Whether `pid` has exited and been reaped (it may name another process later, but not
/// within a test's few seconds).
fn is_gone(pid: fork_sys::Pid) -> bool {
    !std::path::Path::new(&format!("/proc/{pid}")).exists()
}
