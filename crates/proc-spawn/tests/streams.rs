//! Standard streams: files, `/dev/null`, pipes, stderr merged into stdout, and `communicate`
//! moving large inputs and outputs at once without deadlock.

#![allow(clippy::unwrap_used)] // In tests a failed unwrap is a failed test, with its location.

use std::fs::File;
use std::io::{Read, Seek, Write};
use std::time::Duration;

use proc_spawn::{Command, Error, ExitStatus, Stdio};

#[test]
fn stdin_from_a_file_and_stdout_and_stderr_to_files() {
    let mut input = tempfile::tempfile().unwrap();
    input.write_all(b"line one\nline two\n").unwrap();
    input.rewind().unwrap();
    let mut out = tempfile::tempfile().unwrap();
    let mut err = tempfile::tempfile().unwrap();
    let status = Command::shell("cat; echo to-stderr >&2")
        .stdin(input)
        .stdout(out.try_clone().unwrap())
        .stderr(err.try_clone().unwrap())
        .call()
        .unwrap();
    assert!(status.success());
    let read_back = |file: &mut File| {
        let mut text = String::new();
        file.rewind().unwrap();
        file.read_to_string(&mut text).unwrap();
        text
    };
    assert_eq!(read_back(&mut out), "line one\nline two\n");
    assert_eq!(read_back(&mut err), "to-stderr\n");
}

#[test]
fn null_streams_read_nothing_and_swallow_output() {
    let done = Command::shell("cat; echo gone; echo gone >&2")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .capture_output()
        .run()
        .unwrap();
    assert_eq!(done.status, ExitStatus::Exited(0));
    assert!(done.stdout.is_empty() && done.stderr.is_empty(), "{done:?}");
}

#[test]
fn stderr_merged_into_stdout_keeps_the_order() {
    let script = "for i in 1 2 3; do echo out$i; echo err$i >&2; done";
    let done = Command::shell(script)
        .stderr(Stdio::stdout())
        .capture_output()
        .run()
        .unwrap();
    assert_eq!(done.stdout, b"out1\nerr1\nout2\nerr2\nout3\nerr3\n");
    assert!(done.stderr.is_empty());
    // Merged into a file, and through the fork+exec path.
    let mut file = tempfile::tempfile().unwrap();
    Command::shell(script)
        .stdout(file.try_clone().unwrap())
        .stderr(Stdio::stdout())
        .uid(rustix::process::getuid().as_raw())
        .check_call()
        .unwrap();
    let mut text = String::new();
    file.rewind().unwrap();
    file.read_to_string(&mut text).unwrap();
    assert_eq!(text, "out1\nerr1\nout2\nerr2\nout3\nerr3\n");
    // Not valid for stdout itself.
    let err = Command::new("true")
        .stdout(Stdio::stdout())
        .call()
        .unwrap_err();
    assert!(matches!(err, Error::Spawn { .. }), "{err:?}");
}

#[test]
fn communicate_moves_10_mib_each_way_at_once() {
    let _guard = test_support::watchdog(Duration::from_secs(60), "10 MiB communicate");
    let input: Vec<u8> = (0..10 * 1024 * 1024)
        .map(|i: u32| (i % 251) as u8)
        .collect();
    // The child writes back everything it reads, and as much again to stderr, while we are
    // still writing: with write-all-then-read this deadlocks at 64 KiB.
    let mut child = Command::shell("tee /dev/stderr")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let (stdout, stderr) = child.communicate(Some(&input), None).unwrap();
    assert!(stdout == input, "stdout differs ({} bytes)", stdout.len());
    assert!(stderr == input, "stderr differs ({} bytes)", stderr.len());
    assert_eq!(child.wait().unwrap(), ExitStatus::Exited(0));
    // And through `run`'s input option.
    let done = Command::new("cat")
        .input(input.clone())
        .capture_output()
        .run()
        .unwrap();
    assert!(done.stdout == input);
}

#[test]
fn a_child_that_closes_stdin_early_does_not_hurt_the_parent() {
    let input = vec![b'x'; 4 * 1024 * 1024];
    // `head -c 10` reads 10 bytes and exits: the rest of our writes hit EPIPE.
    let done = Command::new("head")
        .args(["-c", "10"])
        .input(input.clone())
        .capture_output()
        .run()
        .unwrap();
    assert_eq!(done.status, ExitStatus::Exited(0));
    assert_eq!(done.stdout, b"xxxxxxxxxx");
    // A child that never reads at all.
    let done = Command::new("true")
        .input(input)
        .capture_output()
        .run()
        .unwrap();
    assert!(done.status.success());
}

#[test]
fn pipes_are_std_read_and_write_handles() {
    let mut child = Command::new("tr")
        .args(["a-z", "A-Z"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    stdin.write_all(b"hello popen\n").unwrap();
    drop(stdin);
    let mut text = String::new();
    child
        .stdout
        .take()
        .unwrap()
        .read_to_string(&mut text)
        .unwrap();
    assert_eq!(text, "HELLO POPEN\n");
    assert!(child.wait().unwrap().success());
    // Input without a stdin pipe is refused, not silently dropped.
    let mut child = Command::new("true").spawn().unwrap();
    assert!(matches!(
        child.communicate(Some(b"x"), None),
        Err(Error::Io { .. })
    ));
    child.wait().unwrap();
}
