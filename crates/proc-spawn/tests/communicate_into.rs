//! `Child::communicate_into`: `communicate`'s rules, with the output appended to the caller's
//! buffers (kept bytes, reused capacity), and nothing left open after.
//!
//! The fd test counts the fds of the whole process, so the tests take turns
//! ([`one_at_a_time`]) under `cargo test`; nextest runs each in a process of its own anyway.

#![allow(clippy::unwrap_used)] // In tests a failed unwrap is a failed test, with its location.

use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use proc_spawn::{Child, Command, Error, Stdio};

static TURN: Mutex<()> = Mutex::new(());

fn one_at_a_time() -> MutexGuard<'static, ()> {
    TURN.lock().unwrap_or_else(PoisonError::into_inner)
}

/// `size` bytes whose every MiB differs from the next, so a lost, doubled or moved chunk shows.
fn patterned(size: usize, seed: u8) -> Vec<u8> {
    (0..size)
        .map(|i| (i as u32).wrapping_mul(31).wrapping_add(u32::from(seed)) as u8 ^ (i >> 20) as u8)
        .collect()
}

fn cat() -> Child {
    Command::new("cat")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap()
}

#[test]
fn output_is_appended_after_the_bytes_already_there_and_stderr_kept_apart() {
    let _turn = one_at_a_time();
    let mut child = Command::shell("cat; printf 'to stderr' >&2; exit 3")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let (mut stdout, mut stderr) = (b"kept: ".to_vec(), b"also kept: ".to_vec());
    let status = child
        .communicate_into(Some(b"to stdout"), &mut stdout, &mut stderr, None)
        .unwrap();
    assert_eq!(status.code(), 3);
    assert_eq!(child.status(), Some(status), "the child was reaped");
    assert_eq!(stdout, b"kept: to stdout");
    assert_eq!(stderr, b"also kept: to stderr");
}

#[test]
fn a_large_pattern_comes_back_exact_and_a_reused_buffer_is_not_reallocated() {
    let _turn = one_at_a_time();
    let input = patterned(64 << 20, 7);
    let (mut stdout, mut stderr) = (Vec::new(), Vec::new());
    let status = cat()
        .communicate_into(Some(&input), &mut stdout, &mut stderr, None)
        .unwrap();
    assert!(status.success());
    assert!(stdout == input, "{} bytes of {}", stdout.len(), input.len());
    assert!(
        stderr.is_empty(),
        "stderr was not piped: its buffer stays as it was"
    );

    // Cleared and reused: the same memory takes the second child's output.
    let (address, capacity) = (stdout.as_ptr(), stdout.capacity());
    stdout.clear();
    let input = patterned(64 << 20, 8);
    cat()
        .communicate_into(Some(&input), &mut stdout, &mut stderr, None)
        .unwrap();
    assert!(stdout == input, "{} bytes of {}", stdout.len(), input.len());
    assert_eq!((stdout.as_ptr(), stdout.capacity()), (address, capacity));
}

#[test]
fn no_fd_is_left_open() {
    let _turn = one_at_a_time();
    let (mut stdout, mut stderr) = (Vec::new(), Vec::new());
    // One round first, so that whatever the process opens once (the reaper) is open already.
    cat()
        .communicate_into(Some(b"x"), &mut stdout, &mut stderr, None)
        .unwrap();
    let fds = test_support::open_fd_count();
    for _ in 0..20 {
        let mut child = Command::shell("cat; echo err >&2")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        child
            .communicate_into(Some(&[b'y'; 300_000]), &mut stdout, &mut stderr, None)
            .unwrap();
        assert!(child.stdin.is_none() && child.stdout.is_none() && child.stderr.is_none());
        drop(child);
    }
    assert_eq!(test_support::open_fd_count(), fds);
    assert_eq!(stdout.len(), 1 + 20 * 300_000);
    assert_eq!(stderr, b"err\n".repeat(20));
}

#[test]
fn a_timeout_leaves_what_was_read_in_the_buffers_and_the_next_call_finishes() {
    let _turn = one_at_a_time();
    // Nothing is read for 0.3 s, so the 4 MiB cannot all go out before the timeout.
    let input = patterned(4 << 20, 1);
    let mut child = Command::shell("printf early; sleep 0.3; exec cat")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let (mut stdout, mut stderr) = (b">".to_vec(), Vec::new());
    let err = child
        .communicate_into(
            Some(&input),
            &mut stdout,
            &mut stderr,
            Some(Duration::from_millis(100)),
        )
        .unwrap_err();
    match &err {
        Error::TimeoutExpired {
            stdout: in_error,
            timeout,
            ..
        } => {
            assert!(in_error.is_empty(), "the bytes are in the caller's buffer");
            assert_eq!(*timeout, Duration::from_millis(100));
        }
        other => panic!("expected a timeout, got {other:?}"),
    }
    assert!(
        stdout.starts_with(b">early"),
        "{:?}",
        &stdout[..stdout.len().min(16)]
    );
    assert_eq!(child.poll().unwrap(), None, "the child keeps running");

    // Other input is refused and changes nothing; `None` finishes the kept input.
    let refused = child
        .communicate_into(Some(b"other"), &mut stdout, &mut stderr, None)
        .unwrap_err();
    assert!(
        matches!(&refused, Error::Io { source, .. } if source.kind() == std::io::ErrorKind::InvalidInput),
        "{refused:?}"
    );
    let status = child
        .communicate_into(None, &mut stdout, &mut stderr, None)
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
}

#[test]
fn communicate_still_puts_a_timeouts_output_in_the_error() {
    let _turn = one_at_a_time();
    let mut child = Command::shell("printf early; exec sleep 5")
        .stdout(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    match child.communicate(None, Some(Duration::from_millis(300))) {
        Err(Error::TimeoutExpired { stdout, .. }) => assert_eq!(stdout, b"early"),
        other => panic!("expected a timeout, got {other:?}"),
    }
}

#[test]
fn a_child_that_exits_without_reading_is_not_an_error() {
    let _turn = one_at_a_time();
    let mut child = Command::new("true")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let (mut stdout, mut stderr) = (b"before".to_vec(), Vec::new());
    let status = child
        .communicate_into(Some(&vec![b'z'; 8 << 20]), &mut stdout, &mut stderr, None)
        .unwrap();
    assert!(status.success());
    assert_eq!(stdout, b"before");

    // One that reads a little, then closes its stdin.
    let mut child = Command::new("head")
        .args(["-c", "10"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    stdout.clear();
    child
        .communicate_into(Some(&vec![b'z'; 8 << 20]), &mut stdout, &mut stderr, None)
        .unwrap();
    assert_eq!(stdout, b"zzzzzzzzzz");
}
