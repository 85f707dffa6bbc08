//! Helpers shared by fork-sys's integration tests.
#![allow(dead_code, unreachable_pub)]

use std::fs::File;
use std::io::Read;
use std::os::fd::OwnedFd;

use fork_sys::{Fork, Pid};

/// Forks a child that runs `body` and leaves with `_exit` of its result; returns the pid.
///
/// The tests run inside a multi-threaded harness, so `body` must stay async-signal-safe:
/// syscalls, `thread::sleep`, `abort`; no allocation, no printing.
pub fn fork_child(body: impl FnOnce() -> i32) -> Pid {
    // SAFETY: the child runs only `body`, which every caller keeps async-signal-safe, then
    // leaves through `exit_immediately`.
    match unsafe { fork_sys::fork() }.expect("fork") {
        Fork::Child => fork_sys::exit_immediately(body()),
        Fork::Parent(pid) => pid,
    }
}

/// Reads the whole pipe until every writer has closed it.
pub fn read_all(fd: OwnedFd) -> Vec<u8> {
    let mut bytes = Vec::new();
    File::from(fd).read_to_end(&mut bytes).expect("read pipe");
    bytes
}
