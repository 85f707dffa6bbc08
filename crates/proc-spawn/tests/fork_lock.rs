//! A child forked through fork-sys by another thread (as a proc-core `Process` is) while a
//! spawn is opening its child's pipes never holds copies of the child-side ends: reading the
//! spawned child's output to end-of-file never waits for that forked child. In a binary of its
//! own: it forks from one thread while spawning from another.

#![allow(clippy::unwrap_used)] // In tests a failed unwrap is a failed test, with its location.

use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use fork_sys::Fork;
use proc_spawn::{Command, Stdio};

/// How long each forked child lingers with whatever fds it inherited.
const LINGER: Duration = Duration::from_secs(3);

#[test]
fn output_ends_when_the_program_does_whatever_another_thread_forks() {
    let _guard = test_support::watchdog(Duration::from_secs(120), "spawn window");
    let done = AtomicBool::new(false);
    let slowest = std::thread::scope(|scope| {
        // Forks lingering children as fast as it can, as a thread starting Processes would.
        let forker = scope.spawn(|| {
            let mut children = Vec::new();
            while !done.load(Ordering::Acquire) && children.len() < 400 {
                // SAFETY: the child only sleeps (nanosleep, no allocation) and `_exit`s.
                match unsafe { fork_sys::fork() }.unwrap() {
                    Fork::Child => {
                        std::thread::sleep(LINGER);
                        fork_sys::exit_immediately(0)
                    }
                    Fork::Parent(pid) => children.push(pid),
                }
                std::thread::sleep(Duration::from_micros(100));
            }
            children
        });
        let mut slowest = Duration::ZERO;
        for i in 0..300 {
            let started = Instant::now();
            let mut command = Command::new("echo");
            command
                .arg("x")
                .stdout(Stdio::piped())
                .stderr(Stdio::piped());
            if i % 2 == 1 {
                command.uid(rustix::process::getuid().as_raw()); // the fork+exec path too
            }
            let mut child = command.spawn().unwrap();
            let (stdout, _) = child.communicate(None, None).unwrap();
            assert_eq!(stdout, b"x\n");
            slowest = slowest.max(started.elapsed());
        }
        done.store(true, Ordering::Release);
        for pid in forker.join().unwrap() {
            fork_sys::wait(pid).unwrap();
        }
        slowest
    });
    // Generous: a read that waited for a lingering child took at least LINGER.
    assert!(slowest < LINGER / 2, "a spawn and read took {slowest:?}");
}
