//! 1,000 fork/wait cycles leave no fd and no zombie behind. In a test binary of its own so that
//! no other test opens fds or forks while we count.

#![allow(clippy::unwrap_used)] // In tests a failed unwrap is a failed test, with its location.

mod common;

use fork_sys::{ChildHandle, ExitStatus};

#[test]
fn a_thousand_fork_wait_cycles_leak_nothing() {
    let fds_before = test_support::open_fd_count();
    let zombies_before = test_support::zombie_children();
    for i in 0..1000 {
        let code = i % 7;
        let pid = common::fork_child(|| code);
        let status = if i % 2 == 0 {
            fork_sys::wait(pid).unwrap()
        } else {
            // Every other cycle through a ChildHandle, whose pidfd must be closed again.
            ChildHandle::new(pid).wait().unwrap()
        };
        assert_eq!(status, ExitStatus::Exited(code));
    }
    assert_eq!(test_support::open_fd_count(), fds_before, "fds leaked");
    assert_eq!(
        test_support::zombie_children(),
        zombies_before,
        "zombies left behind"
    );
    assert_eq!(zombies_before, 0);
}
