//! spawn_fn under every start method.

use proc_core::{Process, ProcessError, StartMethod};

fn square(x: u64) -> u64 {
    x * x
}

fn pid_of_child(_: ()) -> i32 {
    fork_sys::getpid().as_raw()
}

const METHODS: [StartMethod; 3] = [StartMethod::Fork, StartMethod::ForkServer, StartMethod::Spawn];

#[test]
fn spawn_fn_returns_the_value_under_every_method() {
    for method in METHODS {
        let p = Process::builder().start_method(method).spawn_fn(square, 12).expect("spawn");
        assert_eq!(p.join().expect("join"), 144, "{method}");
    }
}

fn boom(_: ()) -> u8 {
    panic!("boom")
}

#[test]
fn a_panic_is_reported_under_every_method() {
    for method in METHODS {
        let p = Process::builder().start_method(method).spawn_fn(boom, ()).expect("spawn");
        let err = p.join().unwrap_err();
        assert!(matches!(err, ProcessError::Panicked { ref message, .. } if message == "boom"), "{method}: {err}");
    }
}

#[test]
fn children_are_other_processes() {
    for method in METHODS {
        let p = Process::builder().start_method(method).spawn_fn(pid_of_child, ()).expect("spawn");
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
        assert_eq!(p.join().expect("daemon killed with its starting thread"), 7, "{method}");
    }
    // And a closure daemon (Fork).
    let p = std::thread::spawn(|| Process::builder().daemon(true).spawn(|| nap_then_seven(400)))
        .join()
        .expect("thread")
        .expect("spawn");
    assert_eq!(p.join().expect("closure daemon"), 7);
}

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

fn echo_env(name: String) -> Option<String> {
    std::env::var(&name).ok()
}

/// 1,000 function children under each of `ForkServer` and `Spawn` while 8 threads hold locks
/// across sleeps, allocate, change the environment and print: none hangs, each returns its
/// value, and nothing is left behind.
#[test]
fn a_thousand_children_while_threads_hold_locks() {
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::sync::{Arc, Mutex};
    let _watchdog = test_support::watchdog(
        std::time::Duration::from_secs(240),
        "function children started while 8 threads hold locks",
    );
    // Start the fork server first, so the baseline includes it.
    let p = Process::builder().start_method(StartMethod::ForkServer).spawn_fn(square, 1).expect("warm-up");
    p.join().expect("warm-up");
    let fds = test_support::open_fd_count();
    let stop = Arc::new(AtomicBool::new(false));
    let shared = Arc::new(Mutex::new(Vec::<u8>::new()));
    let busy: Vec<_> = (0..8)
        .map(|i| {
            let stop = stop.clone();
            let shared = shared.clone();
            std::thread::spawn(move || {
                let key = format!("PROCKIT_BUSY_{i}");
                while !stop.load(Ordering::Relaxed) {
                    let mut held = shared.lock().expect("lock");
                    held.extend(vec![i as u8; 4096]);
                    std::thread::sleep(std::time::Duration::from_micros(200));
                    held.clear();
                    drop(held);
                    // SAFETY: every reader of the environment here goes through std's
                    // environment lock (std::env::var and proc-core's env copy).
                    unsafe { std::env::set_var(&key, "x") };
                    let _ = std::env::var(&key);
                    println!("busy thread {i}");
                }
            })
        })
        .collect();
    for method in [StartMethod::ForkServer, StartMethod::Spawn] {
        for round in 0..1000u64 {
            let p = Process::builder().start_method(method).spawn_fn(square, round).expect("spawn");
            assert_eq!(p.join().expect("join"), round * round, "{method}");
        }
    }
    let p = Process::builder()
        .start_method(StartMethod::Spawn)
        .spawn_fn(echo_env, "PROCKIT_BUSY_0".to_string())
        .expect("spawn");
    assert_eq!(p.join().expect("join").as_deref(), Some("x"), "the environment is passed");
    stop.store(true, Ordering::Relaxed);
    for thread in busy {
        thread.join().expect("busy thread");
    }
    assert_eq!(test_support::zombie_children(), 0);
    assert_eq!(test_support::child_count(), 1, "only the fork server is left");
    assert_eq!(test_support::open_fd_count(), fds, "fds leaked");
}

fn take_fds(marker: u8, fds: Vec<std::os::fd::OwnedFd>) -> usize {
    use std::io::Write;
    let count = fds.len();
    for fd in fds {
        std::fs::File::from(fd).write_all(&[marker]).expect("write to a passed fd");
    }
    count
}

/// Descriptors passed to a function child arrive, in order, under every method.
#[test]
fn fds_reach_the_child_under_every_method() {
    use std::io::Read;
    for method in METHODS {
        let (mut read, write) = fork_sys::pipe().map(|(r, w)| (std::fs::File::from(r), w)).expect("pipe");
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
