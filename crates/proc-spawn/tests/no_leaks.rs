//! Thousands of spawns leave no zombie and no fd behind: waited for, failed, timed out, or
//! dropped while running. In a binary of its own so no other test spawns or opens fds while
//! we count.

#![allow(clippy::unwrap_used)] // In tests a failed unwrap is a failed test, with its location.

use std::time::Duration;

use proc_spawn::{Command, Error, Stdio};

fn no_children_soon() -> bool {
    test_support::eventually(Duration::from_secs(30), || test_support::child_count() == 0)
}

#[test]
fn spawning_waiting_failing_and_dropping_leak_nothing() {
    let _guard = test_support::watchdog(Duration::from_secs(240), "no_leaks");
    // Start the background reaper (a thread and its wake pipe, for the life of the process)
    // before counting.
    drop(Command::new("sleep").arg("0.01").spawn().unwrap());
    assert!(no_children_soon());
    let fds = test_support::open_fd_count();

    for i in 0..2000u32 {
        match i % 4 {
            0 => assert!(proc_spawn::call(["true"]).unwrap().success()),
            1 => {
                let out = Command::new("echo")
                    .arg(i.to_string())
                    .capture_output()
                    .run()
                    .unwrap();
                assert_eq!(out.stdout, format!("{i}\n").into_bytes());
            }
            2 => {
                let mut child = Command::new("cat")
                    .stdin(Stdio::piped())
                    .stdout(Stdio::piped())
                    .stderr(Stdio::null())
                    .uid(rustix::process::getuid().as_raw()) // the fork+exec path
                    .spawn()
                    .unwrap();
                let (out, _) = child.communicate(Some(b"x"), None).unwrap();
                assert_eq!(out, b"x");
            }
            _ => {
                let missing = Command::new("/nonexistent/program").call().unwrap_err();
                assert!(matches!(missing, Error::NotFound { .. }));
                let bad_cwd = Command::new("true")
                    .current_dir("/nonexistent")
                    .uid(rustix::process::getuid().as_raw())
                    .call()
                    .unwrap_err();
                assert!(matches!(bad_cwd, Error::BadWorkingDirectory { .. }));
            }
        }
    }
    assert_eq!(
        test_support::zombie_children(),
        0,
        "zombies after 2,000 spawns"
    );
    assert_eq!(test_support::child_count(), 0);
    assert_eq!(
        test_support::open_fd_count(),
        fds,
        "fds leaked by 2,000 spawns"
    );

    // Timeouts kill and reap.
    for _ in 0..20 {
        let err = Command::new("sleep")
            .arg("10")
            .capture_output()
            .timeout(Duration::from_millis(10))
            .run()
            .unwrap_err();
        assert!(matches!(err, Error::TimeoutExpired { .. }));
    }
    assert_eq!(test_support::child_count(), 0);

    // 200 children dropped while running (some finish first): the reaper takes them all.
    for i in 0..200u32 {
        let child = Command::new("sleep")
            .arg(format!("0.0{}", i % 10))
            .stdout(Stdio::piped())
            .spawn()
            .unwrap();
        drop(child);
    }
    assert!(
        no_children_soon(),
        "{} children (of which {} zombies) left after dropping 200",
        test_support::child_count(),
        test_support::zombie_children()
    );

    // A pipeline whose second stage cannot start stops the first one.
    let err = (Command::new("sleep").arg("10") | Command::new("prockit-no-such-stage"))
        .run()
        .unwrap_err();
    assert!(matches!(err, Error::NotFound { .. }));
    assert_eq!(test_support::child_count(), 0);

    // kill_on_drop: gone by the time drop returns.
    let child = Command::new("sleep")
        .arg("10")
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    drop(child);
    assert_eq!(test_support::child_count(), 0);
    assert_eq!(
        test_support::open_fd_count(),
        fds,
        "fds leaked by dropped children"
    );
}
