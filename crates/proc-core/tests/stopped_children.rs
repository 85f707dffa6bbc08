//! A stopped child (SIGSTOP) is not left stopped for ever by `terminate` or by a drop.

#![cfg(target_os = "linux")]

use std::time::Duration;

use proc_core::{Process, ProcessError, StartMethod};

/// Whether `pid` is stopped (`T` in /proc), or gone.
fn state(pid: i32) -> Option<char> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    stat.rsplit(')').next()?.trim_start().chars().next()
}

fn stop_myself_then(value: u64) -> u64 {
    let _ = fork_sys::kill(fork_sys::getpid(), fork_sys::Signal::STOP);
    value
}

#[cfg(target_os = "linux")]
#[test]
fn terminate_ends_a_stopped_child_and_a_drop_lets_it_finish() {
    let _watchdog = test_support::watchdog(Duration::from_secs(60), "stopped children");
    for method in [
        StartMethod::Fork,
        StartMethod::ForkServer,
        StartMethod::Spawn,
    ] {
        let mut p = Process::builder()
            .start_method(method)
            .spawn_fn(stop_myself_then, 5)
            .expect("spawn");
        let pid = p.pid().as_raw();
        assert!(
            test_support::eventually(Duration::from_secs(10), || state(pid) == Some('T')),
            "{method}: the child did not stop"
        );
        p.terminate().expect("terminate");
        let err = p.join_timeout(Duration::from_secs(10)).unwrap_err();
        assert!(
            matches!(
                err,
                ProcessError::Signaled {
                    signal: fork_sys::Signal::TERM,
                    ..
                }
            ),
            "{method}: {err}"
        );
        // Dropped while stopped: continued, it returns, and is reaped.
        let p = Process::builder()
            .start_method(method)
            .spawn_fn(stop_myself_then, 6)
            .expect("spawn");
        let pid = p.pid().as_raw();
        assert!(test_support::eventually(Duration::from_secs(10), || state(
            pid
        )
            == Some('T')));
        drop(p);
        assert!(
            test_support::eventually(Duration::from_secs(10), || state(pid).is_none()),
            "{method}: a dropped stopped child stays {:?}",
            state(pid)
        );
    }
}
