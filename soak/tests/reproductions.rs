//! Minimal reproductions of bugs the soak suite found in crates this branch does not edit
//! (proc-pool and proc-spawn are being changed by others). Each is `#[ignore]`d with the bug
//! named, so the matrix stays readable; the soak scenario that found it fails until it is
//! fixed. Run them with `cargo test -p soak --test reproductions -- --ignored`, and remove the
//! `ignore` with the fix.

#![allow(clippy::unwrap_used)] // In tests a failed unwrap is a failed test, with its location.

#[cfg(target_os = "linux")]
fn increment(x: u64) -> u64 {
    x + 1
}

/// A worker that cannot start its flusher thread (here: `RLIMIT_NPROC` leaves room for the
/// pool's manager thread and one worker process, not the worker's second thread) exits with
/// status 0 without a word, and the pool fails with "no pool worker could be started: workers
/// die before they are ready (exited successfully), 5 in a row": nothing says the cause,
/// `Resource temporarily unavailable`. Found by `nproc-exhaustion` (since main's "ready only
/// once the flusher runs"); `worker.rs` drops the `thread::Builder::spawn` error.
///
/// Runs in a forked child: it drops to `nobody` when root (root is exempt from the limit) and
/// sets the limit there, so the test process keeps both. Counts assume `nobody` runs nothing
/// else on the machine.
#[cfg(target_os = "linux")]
#[test]
#[ignore = "proc-pool bug: a worker whose flusher thread cannot start exits 0 silently; the pool's error does not name the cause"]
fn a_worker_that_cannot_start_its_flusher_says_why() {
    use rustix::process::{Gid, Resource, Rlimit, Uid, getrlimit, setrlimit};
    use rustix::thread::{set_thread_groups, set_thread_res_gid, set_thread_res_uid};

    // SAFETY: the child drops privileges and sets a limit with raw syscalls (it has one thread,
    // so they reach all of it), then builds a pool; glibc's atfork handlers keep malloc usable.
    // It leaves through `exit_immediately`.
    match unsafe { fork_sys::fork() }.unwrap() {
        fork_sys::Fork::Child => {
            let code = (|| -> Result<i32, String> {
                if rustix::process::geteuid().is_root() {
                    let (uid, gid) = (Uid::from_raw(65_534), Gid::from_raw(65_534));
                    set_thread_groups(&[]).map_err(|e| e.to_string())?;
                    set_thread_res_gid(gid, gid, gid).map_err(|e| e.to_string())?;
                    set_thread_res_uid(uid, uid, uid).map_err(|e| e.to_string())?;
                }
                // This process, the manager thread, one worker process: not the flusher.
                let limit = Rlimit {
                    current: Some(3),
                    maximum: getrlimit(Resource::Nproc).maximum,
                };
                setrlimit(Resource::Nproc, limit).map_err(|e| e.to_string())?;
                let message = match proc_pool::Pool::new(1).map(|p| p.apply(increment, 1)) {
                    Ok(Ok(_)) => return Ok(3),
                    Ok(Err(err)) => err.to_string(),
                    Err(err) => err.to_string(),
                };
                eprintln!("the pool said: {message}");
                Ok(if message.contains("Resource temporarily unavailable") {
                    0
                } else {
                    1
                })
            })();
            fork_sys::exit_immediately(code.unwrap_or_else(|err| {
                eprintln!("setup failed: {err}");
                2
            }));
        }
        fork_sys::Fork::Parent(child) => {
            assert_eq!(
                fork_sys::wait(child).unwrap(),
                fork_sys::ExitStatus::Exited(0),
                "1: the error does not name the cause; 3: the pool worked under the limit"
            );
        }
    }
}
