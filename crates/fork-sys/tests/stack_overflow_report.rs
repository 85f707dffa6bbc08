//! What a forked child that overflows its stack reports. std's handler alone would name the
//! thread that forked and that thread's id in the parent (its per-thread table is copied by
//! fork; docs/fork-sys.md, "A forked child's stack overflow"); with
//! `report_stack_overflow_as_this_process` called right after the fork, the report names the
//! child's pid and the child still dies of `SIGABRT`, while any other segfault still kills it
//! with `SIGSEGV`.

#![cfg(target_os = "linux")]
#![allow(clippy::unwrap_used)] // In tests a failed unwrap is a failed test, with its location.

mod common;

use std::os::fd::AsFd;

use common::{fork_child, read_all};
use fork_sys::exec::{self, StdioFd};
use fork_sys::{ExitStatus, Pid, Signal};

/// Recurses until the stack runs out, with frames big enough to get there quickly.
#[allow(unconditional_recursion)] // the point: it only ends with the stack
fn overflow(depth: u64) -> u64 {
    let frame = [depth; 512];
    std::hint::black_box(&frame);
    overflow(std::hint::black_box(depth) + 1).wrapping_add(frame[7])
}

/// Writes through a null pointer: a segfault nowhere near the stack's guard.
fn null_write() -> i32 {
    let null = std::hint::black_box(std::ptr::null_mut::<u64>());
    // SAFETY: none: the point is the fault, which kills the child before anything else runs.
    unsafe { null.write_volatile(1) };
    0
}

/// Forks a child that sends its stderr into a pipe, installs the report (when `report`), then
/// runs `body`; returns the forking thread's tid, the child, its status and what it printed.
fn run_in_child(report: bool, body: fn() -> i32) -> (i32, Pid, ExitStatus, String) {
    let (err_read, err_write) = fork_sys::pipe().unwrap();
    let tid = rustix::thread::gettid().as_raw_pid();
    let pid = fork_child(|| {
        if exec::redirect_stdio(err_write.as_fd(), StdioFd::Stderr).is_err() {
            return 100;
        }
        if report && fork_sys::report_stack_overflow_as_this_process().is_err() {
            return 101;
        }
        body()
    });
    drop(err_write);
    let printed = String::from_utf8_lossy(&read_all(err_read)).into_owned();
    let status = fork_sys::wait(pid).unwrap();
    (tid, pid, status, printed)
}

/// On a named thread of the harness, as a `Process` forked from a worker thread would be.
fn on_named_thread(report: bool, body: fn() -> i32) -> (i32, Pid, ExitStatus, String) {
    std::thread::Builder::new()
        .name("the-forking-thread".into())
        .spawn(move || run_in_child(report, body))
        .unwrap()
        .join()
        .unwrap()
}

#[test]
fn without_the_report_a_forked_childs_overflow_names_the_forking_thread() {
    let (tid, child, status, report) = on_named_thread(false, || overflow(0) as i32);
    assert_eq!(status.signal(), Some(Signal::ABRT), "{status}: {report}");
    // std's handler catches the overflow, under the forking thread's name and its id in the
    // parent, not the child's pid.
    assert!(report.contains("has overflowed its stack"), "{report}");
    assert!(
        report.contains(&format!("thread 'the-forking-thread' ({tid})")),
        "{report}"
    );
    assert!(!report.contains(&child.as_raw().to_string()), "{report}");
}

#[test]
fn with_the_report_a_forked_childs_overflow_names_the_child_and_aborts() {
    let (tid, child, status, report) = on_named_thread(true, || overflow(0) as i32);
    assert_eq!(status.signal(), Some(Signal::ABRT), "{status}: {report}");
    assert!(
        report.contains(&format!("process {child} has overflowed its stack")),
        "{report}"
    );
    assert!(!report.contains("the-forking-thread"), "{report}");
    assert!(!report.contains(&tid.to_string()), "{report}");
}

#[test]
fn with_the_report_a_null_pointer_write_still_kills_with_sigsegv() {
    let (_, _, status, report) = on_named_thread(true, null_write);
    assert_eq!(status.signal(), Some(Signal::SEGV), "{status}: {report}");
    assert!(!report.contains("overflowed"), "{report}");
}

#[test]
fn with_the_report_a_sigsegv_sent_by_kill_still_kills() {
    let (_, _, status, report) = on_named_thread(true, || {
        let _ = fork_sys::kill(fork_sys::getpid(), Signal::SEGV);
        // The signal is delivered before kill returns; reaching here means it was swallowed.
        0
    });
    assert_eq!(status.signal(), Some(Signal::SEGV), "{status}: {report}");
}

#[test]
fn with_the_report_an_overflow_without_an_alternate_stack_is_still_reported() {
    let (_, child, status, report) = on_named_thread(false, || {
        // Drop the alternate stack inherited from std's thread, so the call sets up its own.
        let disable = libc::stack_t {
            ss_sp: std::ptr::null_mut(),
            ss_flags: libc::SS_DISABLE,
            ss_size: 0,
        };
        // SAFETY: disabling the alternate stack of this (not signal-handling) thread only
        // stops handlers from running on it; nothing is freed.
        if unsafe { libc::sigaltstack(&disable, std::ptr::null_mut()) } != 0 {
            return 102;
        }
        if fork_sys::report_stack_overflow_as_this_process().is_err() {
            return 101;
        }
        overflow(0) as i32
    });
    assert_eq!(status.signal(), Some(Signal::ABRT), "{status}: {report}");
    assert!(
        report.contains(&format!("process {child} has overflowed its stack")),
        "{report}"
    );
}
