//! A child that overflows its stack is reported under its own pid (`process N has overflowed
//! its stack`) and dies of `SIGABRT`, whatever the start method; a plain segfault still kills
//! it with `SIGSEGV`. Each check runs in a `Process` child whose stderr is a pipe, so the
//! harness's own stderr is left alone.

#![cfg(target_os = "linux")]
#![allow(clippy::unwrap_used)] // In tests a failed unwrap is a failed test, with its location.

use std::io::Read;
use std::os::fd::AsFd;

use fork_sys::Signal;
use fork_sys::exec::{self, StdioFd};
use proc_core::{Process, ProcessError, StartMethod};

/// Recurses until the stack runs out, with frames big enough to get there quickly.
#[allow(unconditional_recursion)] // the point: it only ends with the stack
fn overflow(depth: u64) -> u64 {
    let frame = [depth; 512];
    std::hint::black_box(&frame);
    overflow(std::hint::black_box(depth) + 1).wrapping_add(frame[7])
}

/// Writes through a null pointer: a segfault nowhere near the stack's guard.
fn null_write(_: ()) {
    let null = std::hint::black_box(std::ptr::null_mut::<u64>());
    // SAFETY: none, deliberately: the write faults and the child dies of it.
    unsafe { null.write_volatile(1) };
}

/// What a child's join said: its pid, the signal that ended it (if one did), the error.
type Outcome = (i32, Option<i32>, String);

fn outcome<R>(pid: fork_sys::Pid, joined: Result<R, ProcessError>) -> Outcome {
    match joined {
        Err(ProcessError::Signaled { signal, .. }) => {
            (pid.as_raw(), Some(signal.as_raw()), format!("{signal}"))
        }
        Err(err) => (pid.as_raw(), None, err.to_string()),
        Ok(_) => (pid.as_raw(), None, "returned".to_string()),
    }
}

/// Runs `start` in a forked `Process` whose stderr is a pipe; returns the outcome `start`
/// reports and everything written to that stderr (by the child and its own children).
fn with_captured_stderr(start: fn() -> Outcome) -> (Outcome, String) {
    let (read, write) = fork_sys::pipe().unwrap();
    let outer = Process::spawn(move || {
        exec::redirect_stdio(write.as_fd(), StdioFd::Stderr).unwrap();
        drop(write);
        start()
    })
    .unwrap();
    let result = outer.join().unwrap();
    let mut printed = String::new();
    std::fs::File::from(read)
        .read_to_string(&mut printed)
        .unwrap();
    (result, printed)
}

fn overflow_fn(depth: u64) -> u64 {
    overflow(depth)
}

fn overflow_under(method: StartMethod) -> Outcome {
    let child = Process::builder()
        .start_method(method)
        .spawn_fn(overflow_fn, 0)
        .unwrap();
    let pid = child.pid();
    outcome(pid, child.join())
}

fn assert_reported_as_the_child((pid, signal, err): Outcome, printed: &str) {
    assert_eq!(signal, Some(Signal::ABRT.as_raw()), "{err}: {printed}");
    assert!(
        printed.contains(&format!("process {pid} has overflowed its stack")),
        "{printed}"
    );
    assert!(!printed.contains("thread '"), "{printed}");
}

#[test]
fn a_closure_childs_overflow_names_the_child_and_aborts() {
    let (joined, printed) = with_captured_stderr(|| {
        let child = Process::spawn(|| overflow(0)).unwrap();
        let pid = child.pid();
        outcome(pid, child.join())
    });
    assert_reported_as_the_child(joined, &printed);
}

#[test]
fn an_overflow_names_the_child_under_the_fork_server_and_spawn_too() {
    for method in [
        StartMethod::Fork,
        StartMethod::ForkServer,
        StartMethod::Spawn,
    ] {
        let start: fn() -> Outcome = match method {
            StartMethod::Fork => || overflow_under(StartMethod::Fork),
            StartMethod::ForkServer => || overflow_under(StartMethod::ForkServer),
            _ => || overflow_under(StartMethod::Spawn),
        };
        let (joined, printed) = with_captured_stderr(start);
        assert_reported_as_the_child(joined, &format!("{method}: {printed}"));
    }
}

fn null_write_under(method: StartMethod) -> Outcome {
    let child = Process::builder()
        .start_method(method)
        .spawn_fn(null_write, ())
        .unwrap();
    let pid = child.pid();
    outcome(pid, child.join())
}

#[test]
fn a_null_pointer_write_still_kills_the_child_with_sigsegv() {
    let (joined, printed) = with_captured_stderr(|| {
        let child = Process::spawn(|| null_write(())).unwrap();
        let pid = child.pid();
        outcome(pid, child.join())
    });
    let (_, signal, err) = joined;
    assert_eq!(signal, Some(Signal::SEGV.as_raw()), "{err}: {printed}");
    assert!(!printed.contains("overflowed"), "{printed}");

    for method in [
        StartMethod::Fork,
        StartMethod::ForkServer,
        StartMethod::Spawn,
    ] {
        let start: fn() -> Outcome = match method {
            StartMethod::Fork => || null_write_under(StartMethod::Fork),
            StartMethod::ForkServer => || null_write_under(StartMethod::ForkServer),
            _ => || null_write_under(StartMethod::Spawn),
        };
        let ((_, signal, err), printed) = with_captured_stderr(start);
        assert_eq!(
            signal,
            Some(Signal::SEGV.as_raw()),
            "{method}: {err}: {printed}"
        );
        assert!(!printed.contains("overflowed"), "{method}: {printed}");
    }
}
