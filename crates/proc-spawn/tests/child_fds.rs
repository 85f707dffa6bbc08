//! The child sees no fd of the parent's but 0, 1, 2 and the ones passed, on both spawn paths,
//! even fds the parent left inheritable (not close-on-exec).

#![allow(clippy::unwrap_used)] // In tests a failed unwrap is a failed test, with its location.

use std::fs::File;
use std::os::fd::{AsRawFd, OwnedFd};

use proc_spawn::Command;

/// An fd without `FD_CLOEXEC`, as a careless library or a C dependency might leave one.
fn inheritable_fd() -> OwnedFd {
    let fd = OwnedFd::from(File::open("/dev/null").unwrap());
    rustix::io::fcntl_setfd(&fd, rustix::io::FdFlags::empty()).unwrap();
    fd
}

/// The fds the child shell has open, as listed in its `/proc/<pid>/fd`.
fn child_fds(command: &mut Command) -> Vec<i32> {
    let done = command
        .args(["-c", "ls /proc/$$/fd"])
        .capture_output()
        .check(true)
        .run()
        .unwrap();
    let mut fds: Vec<i32> = done
        .stdout_text()
        .unwrap()
        .lines()
        .map(|line| line.parse().unwrap())
        .collect();
    fds.sort_unstable();
    fds
}

#[test]
#[cfg_attr(
    not(target_os = "linux"),
    ignore = "lists /proc/<pid>/fd, which is Linux's"
)]
fn the_child_sees_only_stdio_and_pass_fds() {
    let leaked = inheritable_fd();
    let leaked_raw = leaked.as_raw_fd();
    // The clone child, then fork+exec (a uid, even our own, forces it).
    assert_eq!(child_fds(&mut Command::new("/bin/sh")), [0, 1, 2]);
    assert_eq!(
        child_fds(Command::new("/bin/sh").uid(rustix::process::getuid().as_raw())),
        [0, 1, 2]
    );

    // Without close_fds the inheritable fd does reach the child: the check above can fail.
    let all = child_fds(Command::new("/bin/sh").close_fds(false));
    assert!(all.contains(&leaked_raw), "{all:?}");

    // A passed fd keeps its number; the inheritable one is still closed.
    let passed = OwnedFd::from(File::open("/dev/null").unwrap());
    let passed_raw = passed.as_raw_fd();
    let seen = child_fds(Command::new("/bin/sh").pass_fd(passed));
    assert_eq!(seen, [0, 1, 2, passed_raw]);
    drop(leaked);
}
