//! spawn_fn under every start method.

use proc_core::{Process, ProcessError, StartMethod};

fn square(x: u64) -> u64 {
    x * x
}

fn pid_of_child(_: ()) -> i32 {
    fork_sys::getpid().as_raw()
}

const METHODS: [StartMethod; 3] = [
    StartMethod::Fork,
    StartMethod::ForkServer,
    StartMethod::Spawn,
];

#[test]
fn spawn_fn_returns_the_value_under_every_method() {
    for method in METHODS {
        let p = Process::builder()
            .start_method(method)
            .spawn_fn(square, 12)
            .expect("spawn");
        assert_eq!(p.join().expect("join"), 144, "{method}");
    }
}

fn boom(_: ()) -> u8 {
    panic!("boom")
}

#[test]
fn a_panic_is_reported_under_every_method() {
    for method in METHODS {
        let p = Process::builder()
            .start_method(method)
            .spawn_fn(boom, ())
            .expect("spawn");
        let err = p.join().unwrap_err();
        assert!(
            matches!(err, ProcessError::Panicked { ref message, .. } if message == "boom"),
            "{method}: {err}"
        );
    }
}

#[test]
fn children_are_other_processes() {
    for method in METHODS {
        let p = Process::builder()
            .start_method(method)
            .spawn_fn(pid_of_child, ())
            .expect("spawn");
        let child_pid = p.pid().as_raw();
        assert_eq!(p.join().expect("join"), child_pid, "{method}");
    }
}

fn nap_then_seven(ms: u64) -> u64 {
    std::thread::sleep(std::time::Duration::from_millis(ms));
    7
}

/// Hang 3 of the start-methods issue: a daemon started from a thread that then exits (as
/// tokio retires idle `spawn_blocking` threads) lives on; the kernel's parent-death signal
/// would have killed it with that thread.
#[test]
fn a_daemon_outlives_the_thread_that_started_it() {
    for method in METHODS {
        let p = std::thread::spawn(move || {
            Process::builder()
                .daemon(true)
                .start_method(method)
                .spawn_fn(nap_then_seven, 400)
        })
        .join()
        .expect("thread")
        .expect("spawn");
        assert_eq!(
            p.join().expect("daemon killed with its starting thread"),
            7,
            "{method}"
        );
    }
    // And a closure daemon (Fork).
    let p = std::thread::spawn(|| {
        Process::builder()
            .daemon(true)
            .spawn(|| nap_then_seven(400))
    })
    .join()
    .expect("thread")
    .expect("spawn");
    assert_eq!(p.join().expect("closure daemon"), 7);
}

#[cfg(target_os = "linux")]
fn start_daemon_and_report(method: StartMethod) -> i32 {
    let daemon = Process::builder()
        .daemon(true)
        .start_method(method)
        .spawn_fn(nap_then_seven, 60_000)
        .expect("daemon");
    let pid = daemon.pid().as_raw();
    // Leave without dropping the handle: the daemon must still die with this process.
    std::mem::forget(daemon);
    pid
}

/// Whether `pid` is gone or a zombie.
fn is_dead(pid: i32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Err(_) => true,
        Ok(stat) => stat
            .rsplit(')')
            .next()
            .is_some_and(|rest| rest.trim_start().starts_with('Z')),
    }
}

/// A daemon dies when its parent process exits, under every method. (Orphans go to init,
/// which reaps them, or leaves them zombies in a container: either counts as dead.)
#[cfg(target_os = "linux")]
#[test]
fn a_daemon_dies_with_its_parent_process() {
    for method in METHODS {
        // The parent is a child of ours, so its exit can be watched.
        let parent = Process::spawn(move || start_daemon_and_report(method)).expect("parent");
        let daemon = parent.join().expect("parent's report");
        assert!(
            test_support::eventually(std::time::Duration::from_secs(10), || is_dead(daemon)),
            "{method}: daemon {daemon} outlived its parent"
        );
    }
}

fn take_fds(marker: u8, fds: Vec<std::os::fd::OwnedFd>) -> usize {
    use std::io::Write;
    let count = fds.len();
    for fd in fds {
        std::fs::File::from(fd)
            .write_all(&[marker])
            .expect("write to a passed fd");
    }
    count
}

/// Descriptors passed to a function child arrive, in order, under every method.
#[test]
fn fds_reach_the_child_under_every_method() {
    use std::io::Read;
    for method in METHODS {
        let (mut read, write) = fork_sys::pipe()
            .map(|(r, w)| (std::fs::File::from(r), w))
            .expect("pipe");
        let second = write.try_clone().expect("dup");
        let p = Process::builder()
            .start_method(method)
            .spawn_fn_with_fds(take_fds, 42, vec![write, second])
            .expect("spawn");
        assert_eq!(p.join().expect("join"), 2, "{method}");
        let mut got = Vec::new();
        read.read_to_end(&mut got).expect("read");
        assert_eq!(got, [42, 42], "{method}");
    }
}

/// The default is `Fork` until `init()` runs, `ForkServer` after.
#[test]
fn init_makes_fork_server_the_default() {
    assert_eq!(proc_core::default_start_method(), StartMethod::Fork);
    proc_core::init();
    assert!(proc_core::is_initialized());
    assert_eq!(proc_core::default_start_method(), StartMethod::ForkServer);
    let p = Process::builder().spawn_fn(square, 9).expect("spawn");
    assert_eq!(p.start_method(), StartMethod::ForkServer);
    assert_eq!(p.join().expect("join"), 81);
}

/// In a fresh process (started by `Spawn`, so nothing was warned yet): captures stderr, lets
/// `threads` extra threads live, forks a closure child, and returns what was printed.
#[cfg(target_os = "linux")]
fn fork_with_threads_and_capture(threads: usize) -> String {
    use std::io::Read;
    use std::os::fd::AsFd;
    let (read, write) = fork_sys::pipe().expect("pipe");
    fork_sys::exec::redirect_stdio(write.as_fd(), fork_sys::exec::StdioFd::Stderr).expect("dup2");
    drop(write);
    let stop = std::sync::Arc::new(std::sync::Barrier::new(threads + 1));
    let sleepers: Vec<_> = (0..threads)
        .map(|_| {
            let stop = stop.clone();
            std::thread::spawn(move || {
                stop.wait();
            })
        })
        .collect();
    let child = Process::spawn(|| 1u8).expect("fork");
    assert_eq!(child.join().expect("join"), 1);
    let child = Process::spawn(|| 2u8).expect("fork again");
    assert_eq!(child.join().expect("join"), 2);
    stop.wait();
    for sleeper in sleepers {
        sleeper.join().expect("thread");
    }
    // Close our stderr so the read below ends.
    let null = std::fs::File::open("/dev/null").expect("/dev/null");
    fork_sys::exec::redirect_stdio(null.as_fd(), fork_sys::exec::StdioFd::Stderr).expect("dup2");
    let mut text = String::new();
    std::fs::File::from(read)
        .read_to_string(&mut text)
        .expect("read");
    text
}

#[cfg(target_os = "linux")]
fn silenced_fork_with_threads(_: ()) -> String {
    proc_core::set_fork_warning(false);
    fork_with_threads_and_capture(2)
}

/// Forking from a multi-threaded program says so once on stderr, as Python 3.12 does; a
/// single-threaded one, or one that turned it off, hears nothing.
#[cfg(target_os = "linux")]
#[test]
fn forking_with_threads_warns_once() {
    let warned = Process::builder()
        .start_method(StartMethod::Spawn)
        .spawn_fn(fork_with_threads_and_capture, 2)
        .expect("spawn")
        .join()
        .expect("join");
    assert_eq!(warned.matches("prockit: warning:").count(), 1, "{warned}");
    assert!(warned.contains("3 threads"), "{warned}");
    assert!(warned.contains("StartMethod::ForkServer"), "{warned}");
    let alone = Process::builder()
        .start_method(StartMethod::Spawn)
        .spawn_fn(fork_with_threads_and_capture, 0)
        .expect("spawn")
        .join()
        .expect("join");
    assert_eq!(alone, "", "a single-threaded program forks without a word");
    let silenced = Process::builder()
        .start_method(StartMethod::Spawn)
        .spawn_fn(silenced_fork_with_threads, ())
        .expect("spawn")
        .join()
        .expect("join");
    assert_eq!(silenced, "");
}

fn sleep_ms(ms: u64) -> u64 {
    std::thread::sleep(std::time::Duration::from_millis(ms));
    ms
}

fn exit_with(code: i32) -> u8 {
    std::process::exit(code)
}

fn abort_now(_: ()) -> u8 {
    std::process::abort()
}

/// The `Process` API answers the same under every method: liveness, timed joins, signals and
/// Python's `exitcode`, exits and deaths, `wait_any`.
#[test]
fn the_process_api_is_the_same_under_every_method() {
    use std::time::Duration;
    for method in METHODS {
        let builder = || Process::builder().start_method(method);
        // Running, then a timed join that times out, then terminate: -15.
        let mut p = builder().spawn_fn(sleep_ms, 30_000).expect("spawn");
        assert!(p.is_alive(), "{method}");
        assert_eq!(p.exitcode(), None, "{method}");
        assert!(
            p.join_timeout(Duration::from_millis(50))
                .expect("join_timeout")
                .is_none()
        );
        p.terminate().expect("terminate");
        let err = p.join_timeout(Duration::from_secs(10)).unwrap_err();
        assert!(
            matches!(
                err,
                ProcessError::Signaled {
                    signal: fork_sys::Signal::TERM,
                    ..
                }
            ),
            "{method}: {err}"
        );
        assert!(!p.is_alive());
        assert_eq!(p.exitcode(), Some(-15), "{method}");
        // kill: -9, and signalling after the end is a no-op.
        let mut p = builder().spawn_fn(sleep_ms, 30_000).expect("spawn");
        p.kill().expect("kill");
        assert!(p.join_timeout(Duration::from_secs(10)).is_err());
        assert_eq!(p.exitcode(), Some(-9), "{method}");
        p.terminate().expect("terminate after the end");
        // An exit before returning, and an abort.
        let err = builder()
            .spawn_fn(exit_with, 3)
            .expect("spawn")
            .join()
            .unwrap_err();
        assert!(
            matches!(err, ProcessError::Exited { code: 3, .. }),
            "{method}: {err}"
        );
        let err = builder()
            .spawn_fn(abort_now, ())
            .expect("spawn")
            .join()
            .unwrap_err();
        assert!(
            matches!(
                err,
                ProcessError::Signaled {
                    signal: fork_sys::Signal::ABRT,
                    ..
                }
            ),
            "{method}: {err}"
        );
        // A value, then exitcode 0 at once.
        let mut p = builder().spawn_fn(sleep_ms, 1).expect("spawn");
        assert_eq!(
            p.join_timeout(Duration::from_secs(10)).expect("join"),
            Some(1)
        );
        assert_eq!(
            p.exitcode(),
            Some(0),
            "{method}: exitcode right after the join"
        );
        // wait_any: the quick one first.
        let mut both = vec![
            builder().spawn_fn(sleep_ms, 2_000).expect("spawn"),
            builder().spawn_fn(sleep_ms, 10).expect("spawn"),
        ];
        let first =
            proc_core::wait_any(&mut both, Some(Duration::from_secs(10))).expect("wait_any");
        assert_eq!(first, Some(1), "{method}");
        let quick = both.pop().expect("two");
        assert_eq!(quick.join().expect("join"), 10);
        both[0].kill().expect("kill the slow one");
        assert!(both[0].join_timeout(Duration::from_secs(10)).is_err());
        // Dropping a running non-daemon child detaches it; dropping a daemon kills it.
        let daemon = builder()
            .daemon(true)
            .spawn_fn(sleep_ms, 30_000)
            .expect("spawn");
        let pid = daemon.pid().as_raw();
        drop(daemon);
        assert!(
            test_support::eventually(Duration::from_secs(10), || is_dead(pid)),
            "{method}: a dropped daemon lives on"
        );
    }
    assert!(test_support::eventually(
        std::time::Duration::from_secs(10),
        || test_support::zombie_children() == 0
    ));
}

fn sum_bytes(bytes: Vec<u8>) -> (usize, u64) {
    (bytes.len(), bytes.iter().map(|&b| u64::from(b)).sum())
}

/// Arguments larger than a socket buffer (queued ones are not) reach the child whole.
#[test]
fn large_arguments_reach_the_child_under_every_method() {
    for len in [0usize, 100, 70_000, 10 << 20] {
        let bytes: Vec<u8> = (0..len).map(|i| (i % 251) as u8).collect();
        let expected = sum_bytes(bytes.clone());
        for method in METHODS {
            let p = Process::builder()
                .start_method(method)
                .spawn_fn(sum_bytes, bytes.clone())
                .expect("spawn");
            assert_eq!(p.join().expect("join"), expected, "{method}, {len} bytes");
        }
    }
}
