//! The `tokio` feature: async children on a current-thread runtime. Many at once on one
//! thread, big `communicate`s, timeouts that kill the tree, and futures or children dropped
//! part-way leaving no zombie and no fd.
//!
//! The tests count threads, fds and children of the whole process, so they take turns
//! ([`one_at_a_time`]) under `cargo test`; nextest runs each in a process of its own anyway.

#![cfg(feature = "tokio")]
#![allow(clippy::unwrap_used)] // In tests a failed unwrap is a failed test, with its location.

use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use proc_spawn::{Command, Error, ExitStatus, Pipeline, Signal, Stdio};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

static TURN: Mutex<()> = Mutex::new(());

fn one_at_a_time() -> MutexGuard<'static, ()> {
    TURN.lock().unwrap_or_else(PoisonError::into_inner)
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

fn no_children_soon() -> bool {
    test_support::eventually(Duration::from_secs(10), || test_support::child_count() == 0)
}

/// Starts the background reaper (a thread and a wake pipe, for the life of the process) so
/// that counting fds and threads afterwards sees it already.
fn start_the_reaper() {
    drop(Command::new("sleep").arg("0.01").spawn().unwrap());
    assert!(no_children_soon());
}

#[test]
fn a_thousand_concurrent_runs_capture_their_output_on_one_thread() {
    let _turn = one_at_a_time();
    let _guard = test_support::watchdog(Duration::from_secs(120), "1,000 async runs");
    start_the_reaper();
    let threads = fork_sys::thread_count();
    assert!(cfg!(not(target_os = "linux")) || threads.is_some());
    let most_threads = runtime().block_on(async {
        let mut runs = tokio::task::JoinSet::new();
        for i in 0..1000u32 {
            runs.spawn(async move {
                let out = Command::new("echo")
                    .arg(format!("run {i}"))
                    .capture_output()
                    .run_async()
                    .await;
                (i, out)
            });
        }
        let mut most_threads = fork_sys::thread_count();
        let mut done = 0;
        while let Some(joined) = runs.join_next().await {
            let (i, out) = joined.unwrap();
            let out = out.unwrap();
            assert!(out.status.success(), "{out:?}");
            assert_eq!(out.stdout, format!("run {i}\n").into_bytes());
            assert!(out.stderr.is_empty());
            done += 1;
            if done % 100 == 0 {
                most_threads = most_threads.max(fork_sys::thread_count());
            }
        }
        assert_eq!(done, 1000);
        most_threads
    });
    // Under `cargo test` the harness may start the next test's thread meanwhile (it waits for
    // its turn): one thread more is that, not us. A thread per child would be hundreds.
    let (most, before) = (most_threads.unwrap_or(0), threads.unwrap_or(0));
    assert!(
        most <= before + 1,
        "{most} threads while 1,000 children ran, {before} before"
    );
    assert!(fork_sys::thread_count().unwrap_or(0) <= before + 1);
    assert_eq!(test_support::child_count(), 0);
}

#[test]
fn a_hundred_concurrent_communicates_of_8_mib_come_back_byte_exact() {
    let _turn = one_at_a_time();
    let _guard = test_support::watchdog(Duration::from_secs(180), "100 x 8 MiB");
    const SIZE: usize = 8 << 20;
    // Not a repeating byte: a lost, doubled or reordered chunk shows.
    let input: std::sync::Arc<[u8]> = (0..SIZE)
        .map(|i| (i as u64).wrapping_mul(2_654_435_761) as u8 ^ (i >> 13) as u8)
        .collect();
    runtime().block_on(async {
        let mut calls = tokio::task::JoinSet::new();
        for i in 0..100u32 {
            let input = std::sync::Arc::clone(&input);
            calls.spawn(async move {
                // Each child says who it is first, so crossed pipes would show.
                let mut child = Command::new("sh")
                    .args(["-c", "echo \"$0\"; exec cat", &i.to_string()])
                    .stdin(Stdio::piped())
                    .stdout(Stdio::piped())
                    .stderr(Stdio::piped())
                    .spawn_async()
                    .unwrap();
                let (stdout, stderr) = child
                    .communicate(Some(&input), Some(Duration::from_secs(120)))
                    .await
                    .unwrap();
                let status = child.wait().await.unwrap();
                (i, stdout, stderr, status, input)
            });
        }
        let mut done = 0;
        while let Some(joined) = calls.join_next().await {
            let (i, stdout, stderr, status, input) = joined.unwrap();
            let header = format!("{i}\n").into_bytes();
            assert!(status.success(), "{status:?}");
            assert!(stderr.is_empty());
            assert_eq!(stdout.len(), header.len() + SIZE, "child {i}");
            assert_eq!(&stdout[..header.len()], &header[..], "child {i}");
            assert!(
                stdout[header.len()..] == input[..],
                "child {i}: bytes differ"
            );
            done += 1;
        }
        assert_eq!(done, 100);
    });
}

/// A shell that prints its pid, then starts two background `sleep`s, printing their pids,
/// and waits: the issue's `sh -c 'sleep 100 & sleep 100'`, made observable.
const TWO_SLEEPS: &str = "echo $$; sleep 100 & echo $!; sleep 100 & echo $!; wait";

#[test]
fn a_timed_out_async_run_kills_its_process_group() {
    let _turn = one_at_a_time();
    let _guard = test_support::watchdog(Duration::from_secs(30), "timed-out async run");
    let started = Instant::now();
    let err = runtime().block_on(async {
        Command::shell(TWO_SLEEPS)
            .capture_output()
            .timeout(Duration::from_millis(300))
            .run_async()
            .await
            .unwrap_err()
    });
    assert!(started.elapsed() < Duration::from_secs(10));
    let Error::TimeoutExpired {
        stdout, timeout, ..
    } = err
    else {
        panic!("{err:?}");
    };
    assert_eq!(timeout, Duration::from_millis(300));
    let pids: Vec<i32> = String::from_utf8_lossy(&stdout)
        .lines()
        .map(|line| line.trim().parse().unwrap())
        .collect();
    assert_eq!(pids.len(), 3, "{pids:?}");
    for pid in pids {
        assert!(
            test_support::eventually(Duration::from_secs(5), || !test_support::is_running(pid)),
            "pid {pid} still runs after the timeout"
        );
    }
    assert_eq!(test_support::child_count(), 0, "the shell was reaped");
}

#[test]
fn dropped_futures_and_children_leave_no_zombie_and_no_fd() {
    let _turn = one_at_a_time();
    let _guard = test_support::watchdog(Duration::from_secs(60), "dropped futures");
    start_the_reaper();
    let rt = runtime();
    let fds = test_support::open_fd_count();
    let mut pids = Vec::new();
    rt.block_on(async {
        // A wait() future dropped part-way, then the child dropped.
        let mut child = Command::new("sleep").arg("100").spawn_async().unwrap();
        pids.push(child.pid().as_raw());
        let waited = tokio::time::timeout(Duration::from_millis(50), child.wait()).await;
        assert!(waited.is_err(), "sleep 100 ended: {waited:?}");
        child.kill().unwrap();
        drop(child);

        // A communicate() future dropped part-way, then the child dropped.
        let mut child = Command::new("cat")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn_async()
            .unwrap();
        pids.push(child.pid().as_raw());
        let big = vec![b'y'; 32 << 20];
        let talk = tokio::time::timeout(
            Duration::from_millis(1),
            child.communicate(Some(&big), None),
        )
        .await;
        assert!(talk.is_err(), "communicate of 32 MiB finished in 1 ms");
        drop(child);

        // Children dropped while running, with their pipes: the reaper takes them.
        for _ in 0..20 {
            let child = Command::new("sleep")
                .arg("0.05")
                .stdin(Stdio::piped())
                .stdout(Stdio::piped())
                .spawn_async()
                .unwrap();
            pids.push(child.pid().as_raw());
            drop(child);
        }

        // kill_on_drop: killed at the drop, reaped in the background.
        let child = Command::new("sleep")
            .arg("100")
            .kill_on_drop(true)
            .spawn_async()
            .unwrap();
        let killed = child.pid().as_raw();
        drop(child);
        assert!(
            test_support::eventually(Duration::from_secs(5), || !test_support::is_running(killed)),
            "kill_on_drop left it running"
        );
    });
    assert!(
        no_children_soon(),
        "{} children ({} zombies) left",
        test_support::child_count(),
        test_support::zombie_children()
    );
    assert_eq!(test_support::zombie_children(), 0);
    // The cat whose communicate was dropped is not running either: its stdin closed.
    assert!(
        pids.iter().all(|&pid| !test_support::is_running(pid)),
        "{pids:?}"
    );
    // Counted with the runtime still there: its own fds (epoll, a waker) are in `fds` too.
    assert_eq!(
        test_support::open_fd_count(),
        fds,
        "fds left by dropped children"
    );
    drop(rt);
}

#[test]
fn a_timed_out_communicate_keeps_the_input_and_the_next_call_finishes_it() {
    let _turn = one_at_a_time();
    runtime().block_on(async {
        // `sleep 0.3; cat`: nothing is read at first, so the 4 MiB cannot all go out in time.
        let input: Vec<u8> = (0..(4u32 << 20)).map(|i| (i % 251) as u8).collect();
        let mut child = Command::shell("sleep 0.3; exec cat")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn_async()
            .unwrap();
        let first = child
            .communicate(Some(&input), Some(Duration::from_millis(50)))
            .await
            .unwrap_err();
        let Error::TimeoutExpired { stdout: early, .. } = first else {
            panic!("{first:?}");
        };
        // Other input is refused, and changes nothing.
        let refused = child.communicate(Some(b"other"), None).await.unwrap_err();
        assert!(
            matches!(&refused, Error::Io { source, .. } if source.kind() == std::io::ErrorKind::InvalidInput),
            "{refused:?}"
        );
        let (rest, _) = child.communicate(None, None).await.unwrap();
        let mut all = early;
        all.extend_from_slice(&rest);
        assert!(all == input, "{} bytes came back of {}", all.len(), input.len());
        assert!(child.wait().await.unwrap().success());
    });
}

#[test]
fn communicate_into_appends_and_a_timeout_leaves_the_bytes_in_the_buffers() {
    let _turn = one_at_a_time();
    runtime().block_on(async {
        let input: Vec<u8> = (0..(4u32 << 20)).map(|i| (i % 251) as u8).collect();
        let mut child = Command::shell("printf early; sleep 0.3; exec cat")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn_async()
            .unwrap();
        let (mut stdout, mut stderr) = (b">".to_vec(), b"kept".to_vec());
        let first = child
            .communicate_into(
                Some(&input),
                &mut stdout,
                &mut stderr,
                Some(Duration::from_millis(100)),
            )
            .await
            .unwrap_err();
        assert!(
            matches!(&first, Error::TimeoutExpired { stdout, .. } if stdout.is_empty()),
            "{first:?}"
        );
        assert!(stdout.starts_with(b">early"));
        let status = child
            .communicate_into(None, &mut stdout, &mut stderr, None)
            .await
            .unwrap();
        assert!(status.success());
        let mut expected = b">early".to_vec();
        expected.extend_from_slice(&input);
        assert!(
            stdout == expected,
            "{} bytes of {}",
            stdout.len(),
            expected.len()
        );
        assert_eq!(stderr, b"kept");
    });
}

#[test]
fn a_child_that_stops_reading_is_not_an_error() {
    let _turn = one_at_a_time();
    runtime().block_on(async {
        let mut child = Command::new("head")
            .args(["-c", "10"])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn_async()
            .unwrap();
        let (stdout, _) = child
            .communicate(Some(&vec![b'z'; 8 << 20]), Some(Duration::from_secs(30)))
            .await
            .unwrap();
        assert_eq!(stdout, b"zzzzzzzzzz");
    });
}

#[test]
fn waits_and_signals() {
    let _turn = one_at_a_time();
    runtime().block_on(async {
        let mut child = Command::new("sleep").arg("100").spawn_async().unwrap();
        assert_eq!(child.try_wait().unwrap(), None);
        let started = Instant::now();
        assert_eq!(
            child
                .wait_timeout(Duration::from_millis(100))
                .await
                .unwrap(),
            None
        );
        assert!(started.elapsed() >= Duration::from_millis(100));
        child.terminate().unwrap();
        let status = child.wait().await.unwrap();
        assert_eq!(status.signal(), Some(Signal::TERM));
        // Reaped: signals are no-ops, waits return the same status.
        child.kill().unwrap();
        assert_eq!(child.wait().await.unwrap(), status);

        // A killer from another task ends a child this task waits for.
        let mut child = Command::new("sleep").arg("100").spawn_async().unwrap();
        let killer = child.killer();
        tokio::spawn(async move {
            tokio::time::sleep(Duration::from_millis(50)).await;
            killer.kill()
        });
        assert_eq!(child.wait().await.unwrap().signal(), Some(Signal::KILL));

        let exited = Command::shell("exit 3").call_async().await.unwrap();
        assert_eq!(exited, ExitStatus::Exited(3));
    });
}

#[test]
fn the_pipes_are_async_read_and_write() {
    let _turn = one_at_a_time();
    runtime().block_on(async {
        let mut child = Command::new("cat")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn_async()
            .unwrap();
        let mut stdin = child.stdin.take().unwrap();
        let mut stdout = child.stdout.take().unwrap();
        let writer = async move {
            for _ in 0..1024 {
                stdin.write_all(&[b'q'; 1024]).await.unwrap();
            }
            // Dropped here: cat sees end-of-file.
        };
        let reader = async {
            let mut read = Vec::new();
            stdout.read_to_end(&mut read).await.unwrap();
            read
        };
        let ((), read) = tokio::join!(writer, reader);
        assert_eq!(read.len(), 1 << 20);
        assert!(read.iter().all(|&b| b == b'q'));
        assert!(child.wait().await.unwrap().success());
    });
}

#[test]
fn async_run_has_the_blocking_options_and_errors() {
    let _turn = one_at_a_time();
    runtime().block_on(async {
        let sorted = Command::new("sort")
            .input("b\na\n")
            .capture_output()
            .run_async()
            .await
            .unwrap();
        assert_eq!(sorted.stdout, b"a\nb\n");
        let out = Command::new("echo").arg("hi").output_async().await.unwrap();
        assert_eq!(out.stdout_text().unwrap(), "hi\n");
        let head = Command::new("printf")
            .arg("x")
            .check_output_async()
            .await
            .unwrap();
        assert_eq!(head, b"x");

        let failed = Command::shell("echo out; exit 2")
            .capture_output()
            .check(true)
            .run_async()
            .await
            .unwrap_err();
        match failed {
            Error::CalledProcessError { status, stdout, .. } => {
                assert_eq!(status.code(), 2);
                assert_eq!(stdout, b"out\n");
            }
            other => panic!("{other:?}"),
        }
        let missing = Command::new("prockit-no-such-program")
            .run_async()
            .await
            .unwrap_err();
        assert!(matches!(missing, Error::NotFound { .. }), "{missing:?}");

        let piped = (Command::new("printf").arg("b\\na\\nb\\n")
            | Command::new("sort")
            | Command::new("uniq").capture_output())
        .check(true)
        .run_async()
        .await
        .unwrap();
        assert_eq!(piped.stdout, b"a\nb\n");
        assert_eq!(piped.statuses.len(), 3);

        let fed = (Command::new("sort") | Command::new("uniq").capture_output())
            .input("b\na\nb\n")
            .run_async()
            .await
            .unwrap();
        assert_eq!(fed.stdout, b"a\nb\n");

        let timed_out = (Command::new("sleep").arg("100") | Command::new("cat").capture_output())
            .timeout(Duration::from_millis(100))
            .run_async()
            .await
            .unwrap_err();
        assert!(
            matches!(timed_out, Error::TimeoutExpired { .. }),
            "{timed_out:?}"
        );
    });
    assert!(no_children_soon());
}

#[test]
fn outside_a_runtime_spawn_async_is_an_error_and_starts_nothing() {
    let _turn = one_at_a_time();
    let err = Command::new("sleep").arg("100").spawn_async().unwrap_err();
    match &err {
        Error::Spawn { source, .. } => assert!(source.to_string().contains("tokio runtime")),
        other => panic!("{other:?}"),
    }
    assert_eq!(test_support::child_count(), 0);
}

#[test]
fn the_futures_are_send() {
    fn is_send<T: Send>(_: &T) {}
    let command = Command::new("true");
    is_send(&command.run_async());
    is_send(&Pipeline::new(Command::new("true")).run_async());
    // Build only: never polled, so no runtime is needed.
    let _ = &command;
}

/// An async child costs its pipe ends and one pidfd, no more (Linux, where it waits on the
/// pidfd): every descriptor the parent holds is copied into, and closed in, each child it
/// spawns, so with thousands at once each extra one is paid thousands of times.
#[cfg(target_os = "linux")]
#[test]
fn an_async_child_holds_its_pipes_and_one_pidfd() {
    let _turn = one_at_a_time();
    start_the_reaper();
    let rt = runtime();
    rt.block_on(async {
        let before = test_support::open_fd_count();
        let mut children: Vec<_> = (0..10)
            .map(|_| {
                Command::new("cat")
                    .stdin(Stdio::piped())
                    .stdout(Stdio::piped())
                    .stderr(Stdio::piped())
                    .spawn_async()
                    .unwrap()
            })
            .collect();
        // The runtime's own descriptors (its epoll, its waker) exist from the first spawn.
        let held = test_support::open_fd_count() - before;
        assert!(
            held <= 10 * 4 + 2,
            "{held} descriptors for 10 children with three pipes each"
        );
        for child in &mut children {
            child.stdin = None;
            assert!(child.wait().await.unwrap().success());
        }
    });
    drop(rt);
    assert!(no_children_soon());
}
