//! `spawn` at the lowest fd limit says what is wrong: too many open files, not a bad fd.
//!
//! Regression (found by the soak suite's fd-exhaustion scenario): with `RLIMIT_NOFILE` at 3,
//! glibc refuses `posix_spawn_file_actions_addclosefrom_np(3)` with EBADF, and `spawn` failed
//! with "Bad file descriptor" instead of the fork+exec path's honest EMFILE. The clone child
//! (Linux) needs no fd of its own for a child that inherits its stdio, and starts it (which
//! then cannot load its libraries: no fd left to open them on).

#![allow(clippy::unwrap_used)] // In tests a failed unwrap is a failed test, with its location.

use std::ffi::CString;

use fork_sys::exec::CStringArray;
use fork_sys::{ExitStatus, Fork, SpawnMethod, SpawnRequest};
use rustix::io::Errno;
use rustix::process::{Resource, Rlimit, setrlimit};

#[test]
fn spawn_under_an_fd_limit_of_three_fails_with_emfile_not_ebadf() {
    let program = CString::new("/bin/true").unwrap();
    let argv = CStringArray::new(["true"]).unwrap();
    let envp = CStringArray::new(["PATH=/bin"]).unwrap();
    let request = SpawnRequest::new(&program, &argv, &envp);
    for method in [
        SpawnMethod::CloneVfork,
        SpawnMethod::PosixSpawn,
        SpawnMethod::ForkExec,
    ] {
        if request.can_use(method) {
            spawn_at_fd_limit_three(&request, method);
        }
    }
}

/// Spawns `request` by `method` in a forked child whose fd limit is 3.
fn spawn_at_fd_limit_three(request: &SpawnRequest<'_>, method: SpawnMethod) {
    // The limit is set in a forked child, so the test process (and its other tests) keep theirs.
    // SAFETY: the child makes syscalls and, on glibc whose atfork handlers keep malloc usable,
    // the spawn's own small allocations; it leaves through `exit_immediately`.
    match unsafe { fork_sys::fork() }.unwrap() {
        Fork::Child => {
            let limit = Rlimit {
                current: Some(3),
                maximum: rustix::process::getrlimit(Resource::Nofile).maximum,
            };
            let code = match setrlimit(Resource::Nofile, limit) {
                Err(_) => 10,
                Ok(()) => match fork_sys::spawn_by(request, method) {
                    Err(err) if err.raw_os_error() == Some(Errno::MFILE.raw_os_error()) => 0,
                    Err(err) if err.raw_os_error() == Some(Errno::BADF.raw_os_error()) => 1, // the bug
                    Err(_) => 2,
                    // Started (the program itself then fails to load its libraries, with
                    // no fd to open them on: its business, exit 127).
                    Ok(pid) => match fork_sys::wait(pid) {
                        Ok(_) if method == SpawnMethod::CloneVfork => 0,
                        _ => 3,
                    },
                },
            };
            fork_sys::exit_immediately(code);
        }
        Fork::Parent(child) => {
            assert_eq!(
                fork_sys::wait(child).unwrap(),
                ExitStatus::Exited(0),
                "{method:?}"
            );
        }
    }
}
