//! What dropping a handle does: no zombie ever; daemons are killed, others detached.

#![allow(clippy::unwrap_used)] // In tests a failed unwrap is a failed test, with its location.

use std::time::Duration;

use proc_core::{Process, Signal};

#[test]
fn dropping_a_daemon_kills_and_reaps_it() {
    // kill(pid, SIGCONT) fails with ESRCH once the child is gone *and reaped*; a zombie still
    // accepts signals.
    let p = Process::builder()
        .daemon(true)
        .spawn(|| std::thread::sleep(Duration::from_secs(60)))
        .unwrap();
    let pid = p.pid();
    assert!(p.is_daemon());
    drop(p);
    assert!(
        test_support::eventually(Duration::from_secs(10), || fork_sys::kill(
            pid,
            Signal::CONT
        )
        .is_err()),
        "daemon {pid} still exists after its handle was dropped"
    );
}

#[test]
fn dropping_a_running_non_daemon_detaches_it_and_it_is_reaped_when_done() {
    let (mut done_rx, done_tx) = proc_core::pipe::<(), ()>().unwrap();
    let p = Process::spawn(move || {
        std::thread::sleep(Duration::from_millis(300));
        let mut tx = done_tx;
        tx.send(&()).unwrap();
    })
    .unwrap();
    let pid = p.pid();
    drop(p);
    // It was not killed: it finished its work.
    assert_eq!(
        done_rx.recv_timeout(Duration::from_secs(30)).unwrap(),
        Some(())
    );
    assert!(
        test_support::eventually(Duration::from_secs(10), || fork_sys::kill(
            pid,
            Signal::CONT
        )
        .is_err()),
        "detached child {pid} was never reaped"
    );
}

/// A daemon's parent dies abruptly (no drop runs): the kernel's parent-death signal kills it.
/// This process becomes a subreaper so the orphaned daemon is re-parented to us.
#[cfg(target_os = "linux")]
#[test]
fn a_daemon_dies_with_its_parent() {
    test_support::become_subreaper().unwrap();
    let middle = Process::spawn(|| {
        let (mut ready_rx, mut ready_tx) = proc_core::pipe::<(), ()>().unwrap();
        let daemon = Process::builder()
            .daemon(true)
            .spawn(move || {
                // Running means the parent-death signal is armed.
                ready_tx.send(&()).unwrap();
                std::thread::sleep(Duration::from_secs(60))
            })
            .unwrap();
        ready_rx.recv().unwrap();
        let pid = daemon.pid().as_raw();
        // Vanish without dropping the handle, as a crash would.
        std::mem::forget(daemon);
        pid
    })
    .unwrap();
    let daemon = fork_sys::Pid::from_raw(middle.join().unwrap()).unwrap();
    let status = fork_sys::wait_timeout(daemon, Duration::from_secs(30)).unwrap();
    assert_eq!(
        status.and_then(fork_sys::ExitStatus::signal),
        Some(Signal::KILL),
        "{status:?}"
    );
}
