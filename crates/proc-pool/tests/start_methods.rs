//! Pools under every start method.

use std::time::Duration;

use proc_pool::{Pool, StartMethod, TaskError};

const METHODS: [StartMethod; 3] = [
    StartMethod::Fork,
    StartMethod::ForkServer,
    StartMethod::Spawn,
];

fn square(x: u64) -> u64 {
    x * x
}

#[test]
fn map_apply_and_imap_under_every_method() {
    for method in METHODS {
        let pool = Pool::builder()
            .start_method(method)
            .workers(2)
            .build()
            .expect("pool");
        assert_eq!(
            pool.map(square, 0..1000).expect("map").len(),
            1000,
            "{method}"
        );
        assert_eq!(pool.apply(square, 7).expect("apply"), 49);
        let total: u64 = pool
            .imap_unordered(square, 0..100)
            .map(|r| r.expect("item"))
            .sum();
        assert_eq!(total, 328_350);
        pool.close();
        pool.join().expect("join");
    }
}

fn die(_: u64) -> u64 {
    std::process::abort()
}

#[test]
fn a_dead_worker_fails_its_task_alone_under_every_method() {
    for method in METHODS {
        let pool = Pool::builder()
            .start_method(method)
            .workers(2)
            .build()
            .expect("pool");
        let err = pool.apply(die, 1).unwrap_err();
        assert!(
            matches!(err, TaskError::WorkerDied { .. }),
            "{method}: {err}"
        );
        assert_eq!(pool.apply(square, 3).expect("after"), 9, "{method}");
    }
}

fn sleepy(ms: u64) -> u64 {
    std::thread::sleep(Duration::from_millis(ms));
    ms
}

#[test]
fn timeouts_and_restarts_under_every_method() {
    for method in METHODS {
        let pool = Pool::builder()
            .start_method(method)
            .workers(2)
            .max_tasks_per_child(1)
            .task_timeout(Duration::from_millis(300))
            .build()
            .expect("pool");
        let err = pool.apply(sleepy, 5_000).unwrap_err();
        assert!(matches!(err, TaskError::Timeout { .. }), "{method}: {err}");
        let values = pool.map(sleepy, vec![1; 20]).expect("map");
        assert_eq!(values, vec![1; 20]);
    }
}

/// Hang 1 of the start-methods issue: holding stdout's lock while iterating `imap` on a pool
/// whose workers are replaced after every task. Under `Fork` the manager must take stdout's
/// lock to fork a replacement; under the other methods nothing in the program is forked.
#[test]
fn holding_stdout_while_imap_restarts_workers_does_not_hang() {
    use std::io::Write;
    for method in [StartMethod::ForkServer, StartMethod::Spawn] {
        let _watchdog = test_support::watchdog(
            Duration::from_secs(60),
            "stdout().lock() held across imap with max_tasks_per_child(1)",
        );
        let pool = Pool::builder()
            .start_method(method)
            .workers(2)
            .max_tasks_per_child(1)
            .build()
            .expect("pool");
        let stdout = std::io::stdout();
        let mut out = stdout.lock();
        let mut seen = Vec::new();
        for value in pool.imap(square, 0..12) {
            let value = value.expect("task");
            writeln!(out, "{value}").expect("print");
            seen.push(value);
        }
        drop(out);
        assert_eq!(seen, (0..12).map(square).collect::<Vec<_>>(), "{method}");
    }
}

/// Starts `sort` with its stdin and stdout on pipes (through fork-sys, as proc-spawn does);
/// returns the write end of its stdin, the read end of its stdout, and its handle.
fn start_sort() -> (std::fs::File, std::fs::File, fork_sys::ChildHandle) {
    use std::os::fd::AsFd;
    let window = fork_sys::spawn_window();
    let (stdin_read, stdin_write) = fork_sys::pipe().expect("pipe");
    let (stdout_read, stdout_write) = fork_sys::pipe().expect("pipe");
    let program = c"/usr/bin/sort";
    let argv = fork_sys::exec::CStringArray::new(["sort"]).expect("argv");
    let envp = fork_sys::exec::CStringArray::from_current_env().expect("envp");
    let mut request = fork_sys::SpawnRequest::new(program, &argv, &envp);
    request.stdio = [Some(stdin_read.as_fd()), Some(stdout_write.as_fd()), None];
    let pid = fork_sys::spawn_in_window(&request, &window).expect("spawn sort");
    drop((stdin_read, stdout_write, window));
    (
        std::fs::File::from(stdin_write),
        std::fs::File::from(stdout_read),
        fork_sys::ChildHandle::new(pid),
    )
}

/// Reads `pipe` to end-of-file, or gives up after `limit` (the pipe stays open while any
/// process holds a copy of its write end).
fn read_to_eof_within(pipe: std::fs::File, limit: Duration) -> Option<Vec<u8>> {
    use std::io::Read;
    use std::os::fd::AsFd;
    let deadline = std::time::Instant::now() + limit;
    let mut pipe = pipe;
    let mut bytes = Vec::new();
    loop {
        let left = deadline.saturating_duration_since(std::time::Instant::now());
        if left.is_zero() {
            return None;
        }
        let ready =
            fork_sys::poll(&[(pipe.as_fd(), fork_sys::Interest::Read)], Some(left)).expect("poll");
        if !ready[0].is_ready() {
            continue;
        }
        let mut chunk = [0u8; 4096];
        match pipe.read(&mut chunk).expect("read") {
            0 => return Some(bytes),
            n => bytes.extend_from_slice(&chunk[..n]),
        }
    }
}

/// Hang 2: a pool built while a child's stdin pipe is open must not hold a copy of its write
/// end, or the child never sees end-of-file.
#[test]
fn a_pool_does_not_keep_another_childs_stdin_open() {
    use std::io::Write;
    for method in [StartMethod::ForkServer, StartMethod::Spawn] {
        let (mut stdin, stdout, mut sort) = start_sort();
        let pool = Pool::builder()
            .start_method(method)
            .workers(2)
            .build()
            .expect("pool");
        assert_eq!(pool.apply(square, 4).expect("task"), 16);
        stdin.write_all(b"b\na\n").expect("write");
        drop(stdin);
        let sorted = read_to_eof_within(stdout, Duration::from_secs(10));
        assert_eq!(
            sorted.as_deref(),
            Some(&b"a\nb\n"[..]),
            "{method}: sort never saw end-of-file"
        );
        assert!(sort.wait().expect("wait").success());
    }
}

fn sleep_then_square(x: u64) -> u64 {
    std::thread::sleep(Duration::from_millis(300));
    x * x
}

/// Hang 2, with a running `Process` instead of a pool.
#[test]
fn a_running_function_child_does_not_keep_another_childs_stdin_open() {
    use std::io::Write;
    for method in [StartMethod::ForkServer, StartMethod::Spawn] {
        let (mut stdin, stdout, mut sort) = start_sort();
        let busy = proc_core::Process::builder()
            .start_method(method)
            .spawn_fn(sleep_then_square, 5)
            .expect("spawn");
        stdin.write_all(b"d\nc\n").expect("write");
        drop(stdin);
        let sorted = read_to_eof_within(stdout, Duration::from_secs(10));
        assert_eq!(sorted.as_deref(), Some(&b"c\nd\n"[..]), "{method}");
        assert!(sort.wait().expect("wait").success());
        assert_eq!(busy.join().expect("join"), 25);
    }
}
