//! Workers started through a launcher (`env` stands in for `srun` and `ssh` here): tasks and
//! results on the launcher's stdin and stdout, the same guarantees as local workers.

#![allow(clippy::unwrap_used)] // In tests a failed unwrap is a failed test, with its location.

use std::time::Duration;

use proc_pool::{ExitStatus, Pool, Signal, TaskError};

/// One test at a time under `cargo test`'s threads: one of them counts open descriptors.
fn one_at_a_time() -> std::sync::MutexGuard<'static, ()> {
    static TURN: std::sync::Mutex<()> = std::sync::Mutex::new(());
    TURN.lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

fn pool(workers: usize) -> Pool {
    Pool::builder()
        .workers(workers)
        .launcher(proc_pool::Launcher::command(["env"]))
        .build()
        .unwrap()
}

fn square(x: u64) -> u64 {
    x * x
}

fn odd_ones_crash((log, n): (String, u64)) -> u64 {
    test_support::log_run(&log, n);
    if n % 2 == 1 {
        let _ =
            rustix::process::kill_process(rustix::process::getpid(), rustix::process::Signal::KILL);
    }
    n
}

fn sleepy(ms: u64) -> u64 {
    std::thread::sleep(Duration::from_millis(ms));
    ms
}

#[test]
fn launched_workers_map_imap_and_apply() {
    let _turn = one_at_a_time();
    let _guard = test_support::watchdog(Duration::from_secs(120), "launched workers");
    let fds_before = test_support::open_fd_count();
    let pool = pool(2);
    let expected: Vec<u64> = (0..20_000).map(|x| x * x).collect();
    assert_eq!(pool.map(square, 0..20_000).unwrap(), expected);
    let streamed: Vec<u64> = pool.imap(square, 0..2_000).map(Result::unwrap).collect();
    assert_eq!(streamed, expected[..2_000]);
    assert_eq!(pool.apply(square, 12).unwrap(), 144);
    let err = pool
        .apply(|x: u64| -> u64 { panic!("no {x}") }, 3)
        .unwrap_err();
    assert!(matches!(err, TaskError::Panicked { .. }), "{err}");
    pool.close();
    pool.join().unwrap();
    drop(pool);
    // Nothing left behind: no launcher process, no stream.
    assert!(test_support::eventually(Duration::from_secs(5), || {
        test_support::zombie_children() == 0 && test_support::open_fd_count() <= fds_before
    }));
}

#[test]
fn a_launched_worker_that_dies_fails_only_its_task_and_nothing_runs_twice() {
    let _turn = one_at_a_time();
    let _guard = test_support::watchdog(Duration::from_secs(120), "launched worker deaths");
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("runs.log");
    let log_name = log.to_str().unwrap().to_string();
    let pool = pool(2);
    let outcomes: Vec<_> = pool
        .imap(odd_ones_crash, (0..40).map(|n| (log_name.clone(), n)))
        .chunksize(3)
        .collect();
    for (n, outcome) in (0..40u64).zip(&outcomes) {
        match outcome {
            Ok(value) => assert!(n % 2 == 0 && *value == n, "task {n}"),
            Err(TaskError::WorkerDied { status, .. }) => {
                assert_eq!(n % 2, 1, "task {n} returns, but failed");
                assert!(
                    matches!(
                        status,
                        ExitStatus::Signaled {
                            signal: Signal::KILL,
                            ..
                        }
                    ),
                    "{status}"
                );
            }
            Err(other) => panic!("task {n}: {other}"),
        }
    }
    let runs = test_support::logged_runs(&log);
    for n in 0..40 {
        assert_eq!(
            runs.get(&n),
            Some(&1),
            "task {n} ran {:?} times",
            runs.get(&n)
        );
    }
}

#[test]
fn a_task_timeout_kills_a_launched_worker() {
    let _turn = one_at_a_time();
    let _guard = test_support::watchdog(Duration::from_secs(120), "launched worker timeout");
    let pool = Pool::builder()
        .workers(1)
        .task_timeout(Duration::from_millis(300))
        .launcher(proc_pool::Launcher::command(["env"]))
        .build()
        .unwrap();
    let err = pool.apply(sleepy, 5_000).unwrap_err();
    assert!(matches!(err, TaskError::Timeout { .. }), "{err}");
    assert_eq!(pool.apply(sleepy, 1).unwrap(), 1);
}

fn says_hello(x: u64) -> u64 {
    eprintln!("task {x} says hello on stderr");
    println!("task {x} says hello on stdout");
    x
}

/// Runs a launched pool in a forked child whose stderr is a pipe: what comes out of it.
fn stderr_of_a_launched_pool() -> String {
    use std::io::Read;
    use std::os::fd::AsFd;
    let (read, write) = fork_sys::pipe().unwrap();
    let child = proc_core::Process::spawn(move || {
        fork_sys::exec::redirect_stdio(write.as_fd(), fork_sys::exec::StdioFd::Stderr).unwrap();
        drop(write);
        let pool = pool(1);
        let value = pool.apply(says_hello, 7).unwrap();
        pool.close();
        pool.join().unwrap();
        value
    })
    .unwrap();
    assert_eq!(child.join().unwrap(), 7);
    let mut text = String::new();
    std::fs::File::from(read).read_to_string(&mut text).unwrap();
    text
}

#[test]
fn what_a_launched_worker_prints_is_forwarded_with_a_prefix() {
    let _turn = one_at_a_time();
    let _guard = test_support::watchdog(Duration::from_secs(120), "launched worker stderr");
    let text = stderr_of_a_launched_pool();
    for stream in ["stderr", "stdout"] {
        let line = format!("task 7 says hello on {stream}");
        let found = text.lines().find(|l| l.ends_with(&line));
        let found = found.unwrap_or_else(|| panic!("no {line:?} in {text:?}"));
        assert!(found.starts_with("[proc-pool worker "), "{found:?}");
    }
}
