//! What a forked child that overflows its stack reports: std's handler still catches the
//! overflow (guard page, message, `SIGABRT`), but the message names the thread that forked
//! and that thread's id in the parent, because std looks both up in a table the child copied
//! from the parent (docs/fork-sys.md, "A forked child's stack overflow"). This pins that
//! documented behaviour: if a Rust release or a fix in the child's start changes it, the
//! documentation must change with it.

#![cfg(target_os = "linux")]
#![allow(clippy::unwrap_used)] // In tests a failed unwrap is a failed test, with its location.

mod common;

use std::os::fd::AsFd;

use common::{fork_child, read_all};
use fork_sys::exec::{self, StdioFd};
use fork_sys::{ExitStatus, Signal};

/// Recurses until the stack runs out, with frames big enough to get there quickly.
#[allow(unconditional_recursion)] // the point: it only ends with the stack
fn overflow(depth: u64) -> u64 {
    let frame = [depth; 512];
    std::hint::black_box(&frame);
    overflow(std::hint::black_box(depth) + 1).wrapping_add(frame[7])
}

#[test]
fn a_forked_childs_stack_overflow_report_names_the_forking_thread() {
    let forker = std::thread::Builder::new()
        .name("the-forking-thread".into())
        .spawn(|| {
            let tid = rustix::thread::gettid().as_raw_pid();
            let (err_read, err_write) = fork_sys::pipe().unwrap();
            let pid = fork_child(|| {
                if exec::redirect_stdio(err_write.as_fd(), StdioFd::Stderr).is_err() {
                    return 100;
                }
                overflow(0) as i32
            });
            drop(err_write);
            let report = String::from_utf8_lossy(&read_all(err_read)).into_owned();
            (tid, pid, report)
        })
        .unwrap();
    let (tid, child, report) = forker.join().unwrap();
    let status = fork_sys::wait(child).unwrap();
    assert_eq!(status.signal(), Some(Signal::ABRT), "{status}: {report}");
    assert_ne!(status, ExitStatus::Exited(100));
    // The overflow is caught and reported ...
    assert!(report.contains("has overflowed its stack"), "{report}");
    // ... under the forking thread's name and its id in the parent, not the child's pid.
    assert!(
        report.contains(&format!("thread 'the-forking-thread' ({tid})")),
        "{report}"
    );
    assert!(
        !report.contains(&format!("({})", child.as_raw())),
        "{report}"
    );
}
