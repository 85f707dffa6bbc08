//! Under a process limit, a pool says why it has no worker, and names the OS's reason. In a
//! binary of its own: it forks a child that changes its user and limits.

#![allow(clippy::unwrap_used)] // In tests a failed unwrap is a failed test, with its location.
#![cfg(target_os = "linux")]

fn increment(x: u64) -> u64 {
    x + 1
}

/// A worker that cannot start its result thread (`RLIMIT_NPROC` leaves room for the pool's
/// manager thread and one worker process, not the worker's second thread) tells the pool why,
/// and the task fails naming it, instead of workers dying silently.
///
/// Runs in a forked child, which drops to `nobody` when root (root is exempt from the limit)
/// and sets the limit there, so the test process keeps both. Assumes `nobody` runs nothing
/// else on the machine.
#[test]
fn a_worker_that_cannot_start_its_result_thread_says_why() {
    use rustix::process::{Gid, Resource, Rlimit, Uid, getrlimit, setrlimit};
    use rustix::thread::{set_thread_groups, set_thread_res_gid, set_thread_res_uid};

    // SAFETY: the child drops privileges and sets a limit with raw syscalls (it has one
    // thread, so they reach all of it), then builds a pool; glibc's atfork handlers keep
    // malloc usable. It leaves through `exit_immediately`.
    match unsafe { fork_sys::fork() }.unwrap() {
        fork_sys::Fork::Child => {
            let code = (|| -> Result<i32, String> {
                if rustix::process::geteuid().is_root() {
                    let (uid, gid) = (Uid::from_raw(65_534), Gid::from_raw(65_534));
                    set_thread_groups(&[]).map_err(|e| e.to_string())?;
                    set_thread_res_gid(gid, gid, gid).map_err(|e| e.to_string())?;
                    set_thread_res_uid(uid, uid, uid).map_err(|e| e.to_string())?;
                }
                // This process, the manager thread, one worker process: not its second thread.
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
