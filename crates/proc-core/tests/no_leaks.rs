//! Thousands of processes leave no zombie and no fd behind, whether joined or dropped. In a
//! binary of its own so no other test forks or opens fds while we count.

#![allow(clippy::unwrap_used)] // In tests a failed unwrap is a failed test, with its location.

use std::time::Duration;

use proc_core::Process;

#[test]
fn spawning_joining_and_dropping_leak_nothing() {
    // Start the reaper thread (and its wake pipe) before counting: it lives for the process.
    drop(Process::spawn(|| std::thread::sleep(Duration::from_millis(1))).unwrap());
    assert!(test_support::eventually(
        Duration::from_secs(10),
        || test_support::child_count() == 0
    ));
    let fds = test_support::open_fd_count();

    for i in 0..2000u32 {
        let p = Process::spawn(move || i * 2).unwrap();
        assert_eq!(p.join().unwrap(), i * 2);
    }
    assert_eq!(
        test_support::zombie_children(),
        0,
        "zombies after 2,000 joins"
    );
    assert_eq!(test_support::child_count(), 0);
    assert_eq!(
        test_support::open_fd_count(),
        fds,
        "fds leaked by 2,000 joins"
    );

    // 200 handles dropped unjoined: some children have finished, some are still running.
    for i in 0..200u64 {
        let p = Process::spawn(move || {
            std::thread::sleep(Duration::from_millis(i % 20));
            i
        })
        .unwrap();
        drop(p);
    }
    assert!(
        test_support::eventually(Duration::from_secs(30), || test_support::child_count() == 0),
        "{} children (of which {} zombies) left after dropping 200 handles",
        test_support::child_count(),
        test_support::zombie_children()
    );
    assert_eq!(
        test_support::open_fd_count(),
        fds,
        "fds leaked by 200 drops"
    );
}
