//! A `communicate` that timed out part-way through its input, resumed: the child gets the
//! whole input exactly once, in order, or the call is refused (`InvalidInput`) and nothing is
//! lost. Never an `Ok` that cut or spliced the input (ported from CPython's
//! `test_communicate_timeout_large_input` and its "Cannot send input after starting
//! communication" check).

#![allow(clippy::unwrap_used)] // In tests a failed unwrap is a failed test, with its location.

use std::io::ErrorKind;
use std::time::Duration;

use proc_spawn::{Child, Command, Error, Stdio};

const SIZE: usize = 4 << 20;

/// Bytes whose every MiB differs from the next, so a splice or a cut shows.
fn patterned(seed: u8) -> Vec<u8> {
    (0..SIZE)
        .map(|i| (i as u32).wrapping_mul(31).wrapping_add(u32::from(seed)) as u8 ^ (i >> 20) as u8)
        .collect()
}

/// `cat` that starts reading only after a pause, so a short first call fills the pipe and
/// times out with most of the input unwritten.
fn slow_cat() -> Child {
    Command::shell("sleep 0.5; exec cat")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        // A `sleep` orphaned by a kill must not hold the test's stderr open.
        .stderr(Stdio::null())
        .spawn()
        .unwrap()
}

/// The first call: times out part-way, returning what was read meanwhile.
fn start_and_time_out(child: &mut Child, input: &[u8]) -> Vec<u8> {
    match child.communicate(Some(input), Some(Duration::from_millis(100))) {
        Err(Error::TimeoutExpired { stdout, .. }) => stdout,
        other => panic!("expected a timeout part-way through the input, got {other:?}"),
    }
}

fn assert_invalid_input(result: Result<(Vec<u8>, Vec<u8>), Error>, says: &str) {
    if let Err(err @ Error::Io { pid, .. }) = &result {
        // The pid prints as a number, in Debug too (it printed `Pid(Pid(22174))`).
        let debug = format!("{err:?}");
        assert!(debug.contains(&format!("pid: Pid({pid})")), "{debug}");
    }
    match result {
        Err(Error::Io { source, during, .. }) => {
            assert_eq!(source.kind(), ErrorKind::InvalidInput, "{source}");
            assert_eq!(during, "communicating");
            assert!(source.to_string().contains(says), "{source}");
        }
        other => panic!("expected InvalidInput, got {other:?}"),
    }
}

#[test]
fn resuming_with_none_finishes_the_input() {
    let _guard = test_support::watchdog(Duration::from_secs(60), "communicate resume");
    let input = patterned(1);
    let mut child = slow_cat();
    let mut out = start_and_time_out(&mut child, &input);
    // Regression: this returned Ok with the child having received only the first 1 MiB.
    let (rest, _) = child.communicate(None, None).unwrap();
    out.extend(rest);
    assert_eq!(out.len(), input.len());
    assert!(
        out == input,
        "the child received other bytes than the input"
    );
    assert!(child.status().unwrap().success());
}

#[test]
fn resuming_with_none_in_short_slices_finishes_the_input() {
    let _guard = test_support::watchdog(Duration::from_secs(60), "communicate resume");
    let input = patterned(2);
    let mut child = slow_cat();
    let mut out = start_and_time_out(&mut child, &input);
    loop {
        match child.communicate(None, Some(Duration::from_millis(5))) {
            Ok((rest, _)) => {
                out.extend(rest);
                break;
            }
            Err(Error::TimeoutExpired { stdout, .. }) => out.extend(stdout),
            Err(other) => panic!("{other}"),
        }
    }
    assert!(
        out == input,
        "{} bytes came back of {}",
        out.len(),
        input.len()
    );
}

#[test]
fn other_input_on_a_resumed_call_is_refused_and_loses_nothing() {
    let _guard = test_support::watchdog(Duration::from_secs(60), "communicate resume");
    let input = patterned(3);
    let mut child = slow_cat();
    let mut out = start_and_time_out(&mut child, &input);
    // Regression: a different input of the same length was spliced in at the offset the
    // first call had reached, and the call returned Ok.
    let other = patterned(4);
    assert_invalid_input(
        child.communicate(Some(&other), None),
        "differs from the unfinished input",
    );
    assert_invalid_input(
        child.communicate(Some(&input[..SIZE / 2]), None),
        "differs from the unfinished input",
    );
    // The same input again continues it, as in a retry loop.
    let (rest, _) = child
        .communicate(Some(&input), Some(Duration::from_secs(30)))
        .unwrap();
    out.extend(rest);
    assert!(
        out == input,
        "{} bytes came back of {}",
        out.len(),
        input.len()
    );
}

#[test]
fn input_after_stdin_was_closed_is_refused() {
    let mut child = Command::shell("sleep 0.3; cat; echo end")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    // No input: stdin is closed at once (end-of-file), and the call times out.
    assert!(matches!(
        child.communicate(None, Some(Duration::from_millis(50))),
        Err(Error::TimeoutExpired { .. })
    ));
    // Regression: these bytes were dropped without a word and the call returned Ok.
    assert_invalid_input(
        child.communicate(Some(b"late"), None),
        "stdin was closed after an earlier call's 0 bytes",
    );
    let (out, _) = child.communicate(None, None).unwrap();
    assert_eq!(out, b"end\n");
}

#[test]
fn taking_stdin_with_input_unwritten_is_an_error_not_a_cut() {
    let _guard = test_support::watchdog(Duration::from_secs(60), "communicate resume");
    let input = patterned(5);
    let mut child = slow_cat();
    start_and_time_out(&mut child, &input);
    drop(child.stdin.take());
    assert_invalid_input(child.communicate(None, None), "stdin was taken with");
    child.kill().unwrap();
    child.wait().unwrap();
}
