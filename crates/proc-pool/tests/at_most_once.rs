//! A task that returned never runs again, whatever happens to its worker next; the task that
//! was running when its worker died fails once; tasks that never started run once elsewhere.
//! Every task appends its number to a log file before doing anything else, so the log says
//! how many times each one ran.

#![allow(clippy::unwrap_used)] // In tests a failed unwrap is a failed test, with its location.

use std::path::Path;
use std::time::Duration;

use proc_pool::{ExitStatus, Pool, Signal, StartMethod, TaskError};

fn kill_self() -> ! {
    let _ = rustix::process::kill_process(rustix::process::getpid(), rustix::process::Signal::KILL);
    unreachable!("SIGKILL returned")
}

/// Odd numbers take their worker down (SIGKILL) right after logging; even ones return.
fn odd_ones_crash((log, n): (String, u64)) -> u64 {
    test_support::log_run(&log, n);
    if n % 2 == 1 {
        kill_self();
    }
    n
}

const TASKS: u64 = 60;

fn inputs(log: &Path) -> Vec<(String, u64)> {
    let log = log.to_str().unwrap().to_string();
    (0..TASKS).map(|n| (log.clone(), n)).collect()
}

/// Each task's outcome is right for it, and the log shows it ran exactly once.
fn check_exactly_once(outcomes: &[(u64, Result<u64, TaskError>)], log: &Path, what: &str) {
    assert_eq!(outcomes.len() as u64, TASKS, "{what}: an outcome per task");
    for (n, outcome) in outcomes {
        match outcome {
            Ok(value) => assert!(n % 2 == 0 && value == n, "{what}: task {n} gave {value}"),
            Err(TaskError::WorkerDied { status, .. }) => {
                assert!(n % 2 == 1, "{what}: task {n} failed, but it returns");
                assert!(
                    matches!(
                        status,
                        ExitStatus::Signaled {
                            signal: Signal::KILL,
                            ..
                        }
                    ),
                    "{what}: {status}"
                );
            }
            Err(other) => panic!("{what}: task {n}: unexpected {other}"),
        }
    }
    let runs = test_support::logged_runs(log);
    for n in 0..TASKS {
        assert_eq!(
            runs.get(&n).copied().unwrap_or(0),
            1,
            "{what}: task {n} ran {:?} times",
            runs.get(&n)
        );
    }
}

fn pool(workers: usize, method: StartMethod) -> Pool {
    Pool::builder()
        .workers(workers)
        .start_method(method)
        .build()
        .unwrap()
}

fn imap_run(workers: usize, chunksize: usize, ordered: bool, method: StartMethod) {
    let what = format!(
        "{} on {workers} workers, chunks of {chunksize}, {method:?}",
        if ordered { "imap" } else { "imap_unordered" }
    );
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("runs.log");
    let pool = pool(workers, method);
    let items = inputs(&log);
    let outcomes: Vec<(u64, Result<u64, TaskError>)> = if ordered {
        let results: Vec<_> = pool
            .imap(odd_ones_crash, items)
            .chunksize(chunksize)
            .collect();
        (0..TASKS).zip(results).collect()
    } else {
        // Unordered: the value says which task it was; an error names its task number,
        // which is the chunk's; with chunks of 1 submitted in order, task n is number n + 1.
        let results: Vec<_> = pool
            .imap_unordered(odd_ones_crash, items)
            .chunksize(chunksize)
            .collect();
        let mut failed_tasks: Vec<u64> = Vec::new();
        let mut outcomes = Vec::new();
        for result in results {
            match result {
                Ok(n) => outcomes.push((n, Ok(n))),
                Err(err) => {
                    let task = match &err {
                        TaskError::WorkerDied { task, .. } => *task,
                        other => panic!("{what}: unexpected {other}"),
                    };
                    failed_tasks.push(task);
                    outcomes.push((u64::MAX, Err(err)));
                }
            }
        }
        // Each failure is one odd task: as many as there are odd numbers.
        assert_eq!(failed_tasks.len() as u64, TASKS / 2, "{what}");
        let mut odd = (0..TASKS).filter(|n| n % 2 == 1);
        for outcome in &mut outcomes {
            if outcome.0 == u64::MAX {
                outcome.0 = odd.next().unwrap();
            }
        }
        outcomes
    };
    check_exactly_once(&outcomes, &log, &what);
    pool.close();
    pool.join().unwrap();
}

#[test]
fn imap_runs_each_task_once_while_half_of_them_crash_their_worker() {
    let _guard = test_support::watchdog(Duration::from_secs(240), "imap at most once");
    for workers in [1, 2, 4] {
        imap_run(workers, 1, true, StartMethod::Fork);
        imap_run(workers, 1, false, StartMethod::Fork);
    }
}

#[test]
fn a_crash_in_the_middle_of_a_chunk_fails_that_item_and_the_rest_resumes_elsewhere() {
    let _guard = test_support::watchdog(Duration::from_secs(240), "chunked imap at most once");
    for workers in [1, 2] {
        imap_run(workers, 5, true, StartMethod::Fork);
    }
}

#[test]
fn fork_server_workers_keep_the_rule_too() {
    let _guard = test_support::watchdog(Duration::from_secs(240), "fork server at most once");
    imap_run(2, 1, true, StartMethod::ForkServer);
    imap_run(2, 4, true, StartMethod::ForkServer);
}

#[test]
fn apply_async_runs_each_task_once_while_half_of_them_crash_their_worker() {
    let _guard = test_support::watchdog(Duration::from_secs(240), "apply_async at most once");
    for workers in [1, 2, 4] {
        let dir = tempfile::tempdir().unwrap();
        let log = dir.path().join("runs.log");
        let pool = pool(workers, StartMethod::Fork);
        let pending: Vec<_> = inputs(&log)
            .into_iter()
            .map(|item| (item.1, pool.apply_async(odd_ones_crash, item).unwrap()))
            .collect();
        let outcomes: Vec<_> = pending.into_iter().map(|(n, r)| (n, r.get())).collect();
        check_exactly_once(
            &outcomes,
            &log,
            &format!("apply_async on {workers} workers"),
        );
    }
}

#[test]
fn map_fails_with_the_first_crash_and_runs_nothing_twice() {
    let _guard = test_support::watchdog(Duration::from_secs(240), "map at most once");
    for workers in [1, 2, 4] {
        for chunksize in [1, 4, 30] {
            let dir = tempfile::tempdir().unwrap();
            let log = dir.path().join("runs.log");
            let pool = pool(workers, StartMethod::Fork);
            let err = pool
                .map_chunked(odd_ones_crash, inputs(&log), chunksize)
                .unwrap_err();
            assert!(matches!(err, TaskError::WorkerDied { .. }), "{err}");
            // Chunks already sent when map gave up still run, once: wait for them.
            pool.close();
            pool.join().unwrap();
            let runs = test_support::logged_runs(&log);
            assert!(
                runs.contains_key(&1) || runs.keys().any(|n| n % 2 == 1),
                "{runs:?}"
            );
            for (n, count) in &runs {
                assert_eq!(
                    *count, 1,
                    "task {n} ran {count} times (chunks of {chunksize})"
                );
            }
        }
    }
}

/// The first attempt at each number crashes; a second attempt (a marker file says there was
/// one) returns.
fn crashes_once((log, n): (String, u64)) -> u64 {
    test_support::log_run(&log, n);
    let marker = format!("{log}.{n}.tried");
    if std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(&marker)
        .is_ok()
    {
        kill_self();
    }
    n
}

fn always_crashes((log, n): (String, u64)) -> u64 {
    test_support::log_run(&log, n);
    kill_self();
}

#[test]
fn retries_run_a_task_again_only_when_its_worker_died_under_it() {
    let _guard = test_support::watchdog(Duration::from_secs(120), "retries");
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("runs.log");
    let log_name = log.to_str().unwrap().to_string();
    let pool = Pool::builder().workers(2).retries(2).build().unwrap();
    let values: Vec<u64> = pool
        .imap(crashes_once, (0..10).map(|n| (log_name.clone(), n)))
        .chunksize(3)
        .map(Result::unwrap)
        .collect();
    assert_eq!(values, (0..10).collect::<Vec<_>>());
    let counts = test_support::logged_runs(&log);
    assert!((0..10).all(|n| counts[&n] == 2), "{counts:?}");

    // Always crashing: three attempts, then the error says so.
    let err = pool
        .apply(always_crashes, (log_name.clone(), 100))
        .unwrap_err();
    match &err {
        TaskError::RetriesExhausted { attempts, last, .. } => {
            assert_eq!(*attempts, 3);
            assert!(matches!(**last, TaskError::WorkerDied { .. }), "{last}");
        }
        other => panic!("expected RetriesExhausted, got {other}"),
    }
    assert!(err.to_string().contains("all 3 attempts"), "{err}");
    assert_eq!(test_support::logged_runs(&log)[&100], 3);

    // A panic is the task's own answer: never retried.
    let err = pool
        .apply(|n: u64| -> u64 { panic!("no {n}") }, 7)
        .unwrap_err();
    assert!(matches!(err, TaskError::Panicked { .. }), "{err}");
}

#[test]
fn without_retries_a_task_whose_worker_died_fails_at_once() {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("runs.log");
    let log_name = log.to_str().unwrap().to_string();
    let pool = Pool::new(1).unwrap();
    let err = pool.apply(crashes_once, (log_name, 5)).unwrap_err();
    assert!(matches!(err, TaskError::WorkerDied { .. }), "{err}");
    assert!(err.is_retriable());
    assert_eq!(test_support::logged_runs(&log)[&5], 1);
}
