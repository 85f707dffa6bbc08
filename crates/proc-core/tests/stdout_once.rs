//! A child's output appears exactly once, and so does text the parent buffered before the
//! fork, when stdout is a pipe. The test runs this same binary again with stdout captured,
//! because the harness's own capture would hide what the real fd sees.

#![allow(clippy::unwrap_used)] // In tests a failed unwrap is a failed test, with its location.

use std::io::Write;
use std::process::Command;

const ROLE: &str = "PROC_CORE_STDOUT_ONCE_ROLE";

#[test]
fn child_output_appears_exactly_once_through_a_pipe() {
    if std::env::var_os(ROLE).is_some() {
        // The re-run: write to the real stdout (the test runs with --nocapture).
        let mut out = std::io::stdout();
        // Buffered, with no newline yet: a fork that does not flush first prints it twice.
        write!(out, "parent-before-fork;").unwrap();
        let p = proc_core::Process::spawn(|| {
            println!("child-line");
            print!("child-no-newline;");
        })
        .unwrap();
        p.join().unwrap();
        println!("parent-after-join");
        return;
    }
    let output = Command::new(std::env::current_exe().unwrap())
        .args([
            "child_output_appears_exactly_once_through_a_pipe",
            "--exact",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(ROLE, "printer")
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(output.status.success(), "{output:?}");
    for marker in [
        "parent-before-fork;",
        "child-line",
        "child-no-newline;",
        "parent-after-join",
    ] {
        assert_eq!(
            stdout.matches(marker).count(),
            1,
            "{marker:?} in {stdout:?}"
        );
    }
    let before = stdout.find("parent-before-fork;").unwrap();
    let child = stdout.find("child-line").unwrap();
    let after = stdout.find("parent-after-join").unwrap();
    assert!(before < child && child < after, "order: {stdout:?}");
}
