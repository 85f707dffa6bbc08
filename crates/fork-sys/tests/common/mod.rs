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

/// Open file descriptors of this process (Linux: `/proc/self/fd`; elsewhere `/dev/fd`).
pub fn open_fd_count() -> usize {
    let dir = if cfg!(target_os = "linux") {
        "/proc/self/fd"
    } else {
        "/dev/fd"
    };
    // The directory handle itself shows up in the listing; subtract it.
    std::fs::read_dir(dir).expect("list fds").count() - 1
}

/// Children of this process that have exited but were never reaped (Linux only: read from
/// `/proc/*/stat`; elsewhere 0).
pub fn zombie_children() -> usize {
    if !cfg!(target_os = "linux") {
        return 0;
    }
    let me = std::process::id().to_string();
    std::fs::read_dir("/proc")
        .expect("list /proc")
        .filter_map(Result::ok)
        .filter_map(|entry| std::fs::read_to_string(entry.path().join("stat")).ok())
        .filter(|stat| {
            // "pid (comm) state ppid ...": comm may hold spaces and parens; split after the last ')'.
            let Some(rest) = stat.rfind(')').map(|i| &stat[i + 1..]) else {
                return false;
            };
            let mut fields = rest.split_whitespace();
            let state = fields.next();
            let ppid = fields.next();
            state == Some("Z") && ppid == Some(me.as_str())
        })
        .count()
}
