//! `Process::join_async`: the same outcomes as `join`, awaited on tokio or on a std-only
//! executor, with one watcher thread for any number of waiters, and nothing left behind by a
//! future dropped half-way.
//!
//! The tests count fds, children and threads, so they take turns ([`serial`]); the thread
//! count is taken in a forked child, where no test harness thread can come and go.

#![allow(clippy::unwrap_used)] // In tests a failed unwrap is a failed test, with its location.

use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use proc_core::{JoinFuture, Launcher, Process, ProcessError, Signal, StartMethod};

static SERIAL: Mutex<()> = Mutex::new(());

/// One test at a time (they count this process's fds, children and threads), each under a
/// watchdog that turns a hang (a waker never woken) into a failure.
fn serial(what: &'static str) -> (MutexGuard<'static, ()>, test_support::Watchdog) {
    let turn = SERIAL.lock().unwrap_or_else(PoisonError::into_inner);
    (turn, test_support::watchdog(Duration::from_secs(60), what))
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()
        .unwrap()
}

/// A wait long enough that only a hang exceeds it.
const HANG: Duration = Duration::from_secs(20);

fn triple(x: u64) -> u64 {
    x * 3
}

fn panics(_: ()) -> u64 {
    panic!("panicked under a start method")
}

fn sleeps_a_minute(_: ()) -> u64 {
    std::thread::sleep(HANG);
    0
}

/// This process's open fds once the count has stopped moving (background threads closing
/// what they were done with).
fn settled_fd_count() -> usize {
    let mut last = test_support::open_fd_count();
    loop {
        std::thread::sleep(Duration::from_millis(20));
        let now = test_support::open_fd_count();
        if now == last {
            return now;
        }
        last = now;
    }
}

/// Makes this process's watcher thread exist (a join that has to wait starts it).
fn start_the_watcher() {
    let p = Process::spawn(|| std::thread::sleep(Duration::from_millis(30))).unwrap();
    test_support::block_on(p.join_async()).0.unwrap();
}

#[test]
fn the_future_is_send_and_unpin() {
    fn send_and_unpin<T: Send + Unpin>(_: &T) {}
    let _turn = serial("the_future_is_send_and_unpin");
    let future: JoinFuture<String> = Process::spawn(|| "ok".to_string()).unwrap().join_async();
    send_and_unpin(&future);
    assert_eq!(test_support::block_on(future).0.unwrap(), "ok");
}

#[test]
fn two_hundred_concurrent_waiters_cost_one_thread() {
    let _turn = serial("two_hundred_concurrent_waiters_cost_one_thread");
    // The parent's watcher exists, so the forked scenario also proves that a fork starts its
    // own (the inherited one has no thread behind it there).
    start_the_watcher();
    // In a forked child: one thread to begin with, and no harness threads coming and going.
    // A daemon, so that a hang in it ends with the test.
    let mut scenario = Process::builder()
        .daemon(true)
        .spawn(|| {
            let before = fork_sys::thread_count();
            let release = Instant::now() + Duration::from_secs(2);
            runtime().block_on(async move {
                let mut joins = Vec::new();
                for i in 0..200u64 {
                    let p = Process::spawn(move || {
                        // Every child waits for the same instant, so all 200 wait together.
                        std::thread::sleep(release.saturating_duration_since(Instant::now()));
                        i * 3
                    })
                    .unwrap();
                    joins.push(tokio::spawn(p.join_async()));
                }
                let mut most_threads = 0;
                let mut most_waiting = 0;
                loop {
                    // Yields first, so every join has been polled (and registered) before a look.
                    tokio::time::sleep(Duration::from_millis(5)).await;
                    let waiting = joins.iter().filter(|j| !j.is_finished()).count();
                    if waiting == 0 {
                        break;
                    }
                    most_threads = most_threads.max(fork_sys::thread_count().unwrap_or(0));
                    most_waiting = most_waiting.max(waiting);
                }
                let mut values = Vec::new();
                for join in joins {
                    values.push(join.await.unwrap().unwrap());
                }
                (before, most_threads, most_waiting, values)
            })
        })
        .unwrap();
    let (before, most_threads, most_waiting, values) = scenario
        .join_timeout(HANG)
        .unwrap()
        .expect("200 async joins did not complete");
    assert_eq!(values, (0..200).map(|i| i * 3).collect::<Vec<u64>>());
    assert!(
        most_waiting >= 150,
        "only {most_waiting} joins waited at once: the scenario did not test many waiters"
    );
    if let Some(before) = before {
        assert!(
            most_threads <= before + 1,
            "{most_threads} threads while 200 joins waited, {before} before: more than one \
             watcher thread"
        );
    }
}

#[test]
fn an_eight_mib_value_is_read_while_the_child_is_still_writing() {
    let _turn = serial("an_eight_mib_value_is_read_while_the_child_is_still_writing");
    let len = 8 << 20;
    let expected: Vec<u8> = (0..len).map(|i| (i % 251) as u8).collect();
    let p = Process::spawn(move || (0..len).map(|i| (i % 251) as u8).collect::<Vec<u8>>()).unwrap();
    // The child blocks on a full pipe until someone reads: waiting for its exit alone hangs.
    let value = runtime()
        .block_on(async { tokio::time::timeout(HANG, p.join_async()).await })
        .expect("join_async did not drain the pipe while the child wrote 8 MiB")
        .unwrap();
    assert!(value == expected, "the 8 MiB value came back altered");
}

#[test]
fn a_panicking_child_is_a_panicked_error() {
    let _turn = serial("a_panicking_child_is_a_panicked_error");
    let p = Process::builder()
        .name("doomed")
        .spawn(|| -> u32 {
            std::thread::sleep(Duration::from_millis(50));
            panic!("async boom")
        })
        .unwrap();
    let err = runtime().block_on(p.join_async()).unwrap_err();
    assert!(
        matches!(err, ProcessError::Panicked { ref name, ref message, .. }
            if name.as_deref() == Some("doomed") && message == "async boom"),
        "{err:?}"
    );
}

#[test]
fn a_child_killed_while_awaited_is_a_signaled_error() {
    let _turn = serial("a_child_killed_while_awaited_is_a_signaled_error");
    let p = Process::spawn(|| sleeps_a_minute(())).unwrap();
    let err = runtime().block_on(async {
        let mut join = p.join_async();
        let still_running = tokio::time::timeout(Duration::from_millis(100), &mut join).await;
        assert!(still_running.is_err(), "a sleeping child's join completed");
        join.kill().unwrap();
        tokio::time::timeout(HANG, join).await.unwrap().unwrap_err()
    });
    assert!(
        matches!(
            err,
            ProcessError::Signaled {
                signal: Signal::KILL,
                ..
            }
        ),
        "{err:?}"
    );
}

#[test]
fn a_std_only_block_on_is_woken_without_spinning() {
    let _turn = serial("a_std_only_block_on_is_woken_without_spinning");
    let p = Process::spawn(|| {
        std::thread::sleep(Duration::from_millis(300));
        "woken".to_string()
    })
    .unwrap();
    let (value, polls) = test_support::block_on(p.join_async());
    assert_eq!(value.unwrap(), "woken");
    // A future that woke itself at once would be polled thousands of times in 300 ms.
    assert!(polls <= 10, "polled {polls} times while the child slept");

    // A value larger than the pipe: woken each time more arrived.
    let p = Process::spawn(|| vec![3u64; 1 << 18]).unwrap();
    assert_eq!(
        test_support::block_on(p.join_async()).0.unwrap(),
        vec![3u64; 1 << 18]
    );
}

#[test]
fn polling_again_after_completion_is_already_joined() {
    let _turn = serial("polling_again_after_completion_is_already_joined");
    let mut join = Process::spawn(|| 5u8).unwrap().join_async();
    assert_eq!(test_support::block_on(&mut join).0.unwrap(), 5);
    let again = test_support::block_on(&mut join).0.unwrap_err();
    assert!(
        matches!(again, ProcessError::AlreadyJoined { pid, .. } if pid == join.pid()),
        "{again:?}"
    );
    // Nothing left to kill.
    join.kill().unwrap();
}

#[test]
fn every_start_method_joins_asynchronously() {
    let _turn = serial("every_start_method_joins_asynchronously");
    let rt = runtime();
    let closure = Process::spawn(|| triple(2)).unwrap();
    assert_eq!(rt.block_on(closure.join_async()).unwrap(), 6);
    for method in [
        StartMethod::Fork,
        StartMethod::ForkServer,
        StartMethod::Spawn,
    ] {
        let builder = || Process::builder().start_method(method);
        let p = builder().spawn_fn(triple, 14).unwrap();
        assert_eq!(rt.block_on(p.join_async()).unwrap(), 42, "{method:?}");

        let p = builder().spawn_fn(panics, ()).unwrap();
        let err = rt.block_on(p.join_async()).unwrap_err();
        assert!(
            matches!(err, ProcessError::Panicked { .. }),
            "{method:?}: {err:?}"
        );

        // Woken by its exit alone (a fork server's child: its status pipe).
        let p = builder().spawn_fn(sleeps_a_minute, ()).unwrap();
        let err = rt.block_on(async {
            let mut join = p.join_async();
            let running = tokio::time::timeout(Duration::from_millis(100), &mut join).await;
            assert!(
                running.is_err(),
                "{method:?}: a sleeping child's join completed"
            );
            join.kill().unwrap();
            tokio::time::timeout(HANG, join).await.unwrap().unwrap_err()
        });
        assert!(
            matches!(
                err,
                ProcessError::Signaled {
                    signal: Signal::KILL,
                    ..
                }
            ),
            "{method:?}: {err:?}"
        );
    }
}

#[test]
fn a_launched_child_joins_asynchronously() {
    let _turn = serial("a_launched_child_joins_asynchronously");
    let p = Process::builder()
        .start_method(StartMethod::Spawn)
        .launcher(Launcher::command(["env"]))
        .spawn_fn(triple, 5)
        .unwrap();
    assert_eq!(runtime().block_on(p.join_async()).unwrap(), 15);
}

#[test]
fn a_future_dropped_half_way_leaves_no_zombie_and_no_fd() {
    let _turn = serial("a_future_dropped_half_way_leaves_no_zombie_and_no_fd");
    let rt = runtime();
    // The reaper and the watcher (and their wake pipes) live for the process: start both
    // before counting.
    drop(Process::spawn(|| std::thread::sleep(Duration::from_millis(1))).unwrap());
    start_the_watcher();
    assert!(test_support::eventually(
        HANG,
        || test_support::child_count() == 0
    ));
    // The watcher closes a finished join's duplicates when it next wakes: let it.
    let fds = settled_fd_count();
    let dir = tempfile::tempdir().unwrap();
    let marker = dir.path().join("ran-to-the-end");

    rt.block_on(async {
        let give_up = Duration::from_millis(50);
        // Detached: runs on to its end.
        let path = marker.clone();
        let detached = Process::spawn(move || {
            std::thread::sleep(Duration::from_millis(300));
            std::fs::write(&path, b"done").unwrap();
        })
        .unwrap();
        assert!(
            tokio::time::timeout(give_up, detached.join_async())
                .await
                .is_err()
        );
        // A daemon: killed.
        let daemon = Process::builder()
            .daemon(true)
            .spawn(|| sleeps_a_minute(()))
            .unwrap();
        assert!(
            tokio::time::timeout(give_up, daemon.join_async())
                .await
                .is_err()
        );
        // Registered with the watcher (polled once), then left blocked on a full pipe, then
        // dropped: its write fails once no reader is left, the watcher's copy included.
        let writer = Process::spawn(|| vec![1u8; 4 << 20]).unwrap();
        let mut join = writer.join_async();
        assert!(
            tokio::time::timeout(Duration::ZERO, &mut join)
                .await
                .is_err()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
        drop(join);
    });
    assert!(
        test_support::eventually(HANG, || test_support::child_count() == 0),
        "{} children ({} zombies) left after dropping three joins",
        test_support::child_count(),
        test_support::zombie_children()
    );
    assert_eq!(test_support::zombie_children(), 0);
    assert!(marker.exists(), "the detached child did not run to its end");
    assert!(
        test_support::eventually(Duration::from_secs(10), || {
            test_support::open_fd_count() == fds
        }),
        "{} fds open after dropping three joins, {fds} before",
        test_support::open_fd_count()
    );
}
