//! Task code that damages its worker's descriptors (closes them, writes zeros, random bytes
//! or a log line to them, puts /dev/null in their place) fails alone, if at all: every other
//! task returns its value, nothing runs twice, and the pool never hangs.
//!
//! One test function runs the scenarios one after another: under `Fork`, a worker inherits
//! every descriptor of the test process, and a culprit writing to them must not reach pools
//! of tests running beside it.

#![allow(clippy::unwrap_used)] // In tests a failed unwrap is a failed test, with its location.

use std::os::fd::{AsRawFd, BorrowedFd, FromRawFd, OwnedFd};
use std::time::Duration;

use proc_pool::{Pool, StartMethod, TaskError};

/// A task: its log file and its number.
type Task = fn((String, u64)) -> u64;

const TASKS: u64 = 6000;
const CULPRIT: u64 = 3000;

/// Runs `f` on each descriptor number in `range` that is open.
fn each_open_fd(range: std::ops::Range<i32>, mut f: impl FnMut(BorrowedFd<'_>, i32)) {
    for raw in range {
        // SAFETY: only borrowed for this call, and only if the number is open right now; the
        // damage done through it is what this test is about.
        let fd = unsafe { BorrowedFd::borrow_raw(raw) };
        if rustix::io::fcntl_getfd(fd).is_ok() {
            f(fd, raw);
        }
    }
}

fn write_to_fds(bytes: &[u8]) {
    each_open_fd(3..64, |fd, _| {
        let _ = rustix::io::write(fd, bytes);
    });
}

fn close_fds_0_to_1023((log, n): (String, u64)) -> u64 {
    test_support::log_run(&log, n);
    if n == CULPRIT {
        each_open_fd(0..1024, |_, raw| {
            // SAFETY: closing descriptors this code does not own is the damage under test;
            // nothing in this task uses them afterwards.
            drop(unsafe { OwnedFd::from_raw_fd(raw) });
        });
    }
    n
}

fn write_zeros((log, n): (String, u64)) -> u64 {
    test_support::log_run(&log, n);
    if n == CULPRIT {
        write_to_fds(&[0; 256]);
    }
    n
}

fn write_random_bytes((log, n): (String, u64)) -> u64 {
    test_support::log_run(&log, n);
    if n == CULPRIT {
        let mut state: u64 = 0x9e37_79b9_7f4a_7c15;
        let bytes: Vec<u8> = (0..4096)
            .map(|_| {
                state ^= state << 13;
                state ^= state >> 7;
                state ^= state << 17;
                state as u8
            })
            .collect();
        write_to_fds(&bytes);
    }
    n
}

fn write_log_line((log, n): (String, u64)) -> u64 {
    test_support::log_run(&log, n);
    if n == CULPRIT {
        write_to_fds(b"log: task done\n");
    }
    n
}

fn dev_null_over_fds((log, n): (String, u64)) -> u64 {
    test_support::log_run(&log, n);
    if n == CULPRIT {
        let null = std::fs::File::open("/dev/null").expect("open /dev/null");
        each_open_fd(3..64, |_, raw| {
            if raw == null.as_raw_fd() {
                return;
            }
            // SAFETY: the number is open (checked); `dup2` replaces it in place, and the
            // `OwnedFd` is forgotten, so nothing closes it twice.
            let mut target = std::mem::ManuallyDrop::new(unsafe { OwnedFd::from_raw_fd(raw) });
            let _ = rustix::io::dup2(&null, &mut target);
        });
    }
    n
}

fn scenario(name: &str, task: Task, method: StartMethod) {
    let what = format!("{name} ({method:?})");
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("runs.log");
    let log_name = log.to_str().unwrap().to_string();
    let pool = Pool::builder()
        .workers(2)
        .start_method(method)
        .build()
        .unwrap();
    let outcomes: Vec<Result<u64, TaskError>> = pool
        .imap(task, (0..TASKS).map(|n| (log_name.clone(), n)))
        .collect();
    for (n, outcome) in (0..TASKS).zip(&outcomes) {
        match outcome {
            Ok(value) => assert_eq!(*value, n, "{what}"),
            Err(err) => assert_eq!(n, CULPRIT, "{what}: innocent task {n} failed: {err}"),
        }
    }
    let runs = test_support::logged_runs(&log);
    for n in 0..TASKS {
        assert_eq!(
            runs.get(&n),
            Some(&1),
            "{what}: task {n} ran {:?} times",
            runs.get(&n)
        );
    }
    pool.close();
    pool.join().unwrap();
}

#[test]
fn a_task_that_damages_its_workers_descriptors_fails_alone_and_nothing_hangs() {
    let _guard = test_support::watchdog(Duration::from_secs(300), "hostile tasks");
    let scenarios: [(&str, Task); 5] = [
        ("closes fds 0..1023", close_fds_0_to_1023),
        ("writes zeros to fds 3..64", write_zeros),
        ("writes random bytes to fds 3..64", write_random_bytes),
        ("writes a log line to fds 3..64", write_log_line),
        ("puts /dev/null over fds 3..64", dev_null_over_fds),
    ];
    for (name, task) in scenarios {
        scenario(name, task, StartMethod::Fork);
    }
    for (name, task) in &scenarios[..2] {
        scenario(name, *task, StartMethod::ForkServer);
    }
}
