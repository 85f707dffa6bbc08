//! The fork lock: a child forked by one thread (that never execs) must not hold a copy of
//! another thread's exec-error pipe, or that thread's fork+exec spawn waits for the child to
//! exit. In a binary of its own: it forks from two threads at once.

#![allow(clippy::unwrap_used)] // In tests a failed unwrap is a failed test, with its location.

use std::ffi::CString;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use fork_sys::exec::CStringArray;
use fork_sys::{Fork, SpawnMethod, SpawnRequest};

/// How long each forked child lingers with whatever fds it inherited.
const LINGER: Duration = Duration::from_secs(4);

#[test]
fn a_spawn_never_waits_for_a_child_forked_by_another_thread() {
    let _guard = test_support::watchdog(Duration::from_secs(120), "fork lock");
    let program = CString::new("/bin/true").unwrap();
    let argv = CStringArray::new(["true"]).unwrap();
    let envp = CStringArray::from_current_env().unwrap();
    // The fork+exec path, which has an exec-error pipe.
    let request = SpawnRequest::new(&program, &argv, &envp);

    let done = AtomicBool::new(false);
    let slowest = std::thread::scope(|scope| {
        // Forks lingering children as fast as it can, as a thread starting Processes would.
        let forker = scope.spawn(|| {
            let mut children = Vec::new();
            while !done.load(Ordering::Acquire) && children.len() < 300 {
                // SAFETY: the child only sleeps (nanosleep, no allocation) and `_exit`s.
                match unsafe { fork_sys::fork() }.unwrap() {
                    Fork::Child => {
                        std::thread::sleep(LINGER);
                        fork_sys::exit_immediately(0)
                    }
                    Fork::Parent(pid) => children.push(pid),
                }
                std::thread::sleep(Duration::from_micros(200));
            }
            children
        });
        let mut slowest = Duration::ZERO;
        for _ in 0..300 {
            let started = Instant::now();
            let pid = fork_sys::spawn_by(&request, SpawnMethod::ForkExec).unwrap();
            slowest = slowest.max(started.elapsed());
            assert!(fork_sys::wait(pid).unwrap().success());
        }
        done.store(true, Ordering::Release);
        for pid in forker.join().unwrap() {
            fork_sys::wait(pid).unwrap();
        }
        slowest
    });
    // Generous: a spawn that waited for a lingering child took at least LINGER.
    assert!(slowest < LINGER / 2, "a spawn took {slowest:?}");
}
