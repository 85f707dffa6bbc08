//! Waiting for children and decoding how they ended.

#![allow(clippy::unwrap_used)] // In tests a failed unwrap is a failed test, with its location.

mod common;

use std::time::{Duration, Instant};

use common::fork_child;
use fork_sys::{ChildHandle, ExitStatus, Signal};

#[test]
fn every_exit_code_round_trips() {
    for code in 0..=255 {
        let pid = fork_child(|| code);
        assert_eq!(
            fork_sys::wait(pid).unwrap(),
            ExitStatus::Exited(code),
            "code {code}"
        );
    }
}

#[test]
fn deaths_by_signal_are_reported_as_signals() {
    type Death = fn() -> i32;
    let cases: [(&str, Death, Signal); 3] = [
        (
            "SIGKILL",
            || {
                let _ = fork_sys::kill(fork_sys::getpid(), Signal::KILL);
                0
            },
            Signal::KILL,
        ),
        (
            "SIGSEGV",
            || {
                // A real fault, not kill(SIGSEGV): the Rust runtime's stack-overflow handler
                // swallows a SIGSEGV that does not come from a faulting instruction.
                // SAFETY: none, deliberately: the dangling address (8) lies in the never-mapped first page,
                // so this store faults and the child dies of SIGSEGV on the spot.
                unsafe { std::ptr::dangling_mut::<u64>().write_volatile(1) };
                0
            },
            Signal::SEGV,
        ),
        ("abort", || std::process::abort(), Signal::ABRT),
    ];
    for (what, death, signal) in cases {
        let status = fork_sys::wait(fork_child(death)).unwrap();
        assert_eq!(status.signal(), Some(signal), "{what}: {status}");
        assert_eq!(status.code(), -signal.as_raw(), "{what}");
        assert!(
            status
                .to_string()
                .starts_with(&format!("killed by {}", signal)),
            "{status}"
        );
    }
}

/// A death by a signal that is named only on some platforms (SIGPWR) is reported by name.
#[cfg(target_os = "linux")]
#[test]
fn death_by_sigpwr_is_reported_by_name() {
    let pid = fork_child(|| {
        let _ = fork_sys::kill(fork_sys::getpid(), Signal::PWR);
        0
    });
    let status = fork_sys::wait(pid).unwrap();
    assert_eq!(status.signal(), Some(Signal::PWR));
    assert_eq!(status.to_string(), "killed by SIGPWR");
}

/// Signal 32 is one glibc reserves for itself, so `Signal::from_raw` refuses it; a child can
/// still die of it, and that must be reported as a death, not as "still running" (the child
/// is reaped by then, so a second wait could only fail).
#[cfg(all(target_os = "linux", target_env = "gnu"))]
#[test]
fn death_by_a_libc_reserved_signal_is_still_a_death() {
    assert_eq!(Signal::from_raw(32), None);
    let pid = fork_child(|| {
        // glibc handles signal 32 itself and refuses to let `sigaction` touch it, so restore the
        // default action with the raw syscall: a zeroed kernel sigaction is SIG_DFL.
        let default_action = [0u64; 4];
        // SAFETY: rt_sigaction reads one kernel `struct sigaction` (handler, flags, restorer,
        // mask: four words, all zero here) and writes nothing (null old-action pointer).
        unsafe {
            libc::syscall(
                libc::SYS_rt_sigaction,
                32,
                default_action.as_ptr(),
                std::ptr::null_mut::<u64>(),
                8,
            );
            libc::kill(libc::getpid(), 32);
        }
        0
    });
    let status = fork_sys::wait(pid).unwrap();
    assert_eq!(status.signal().map(Signal::as_raw), Some(32), "{status}");
    assert_eq!(status.code(), -32);
    assert_eq!(status.to_string(), "killed by signal 32");
}

#[test]
fn try_wait_reports_running_then_the_status() {
    let pid = fork_child(|| {
        std::thread::sleep(Duration::from_millis(200));
        4
    });
    assert_eq!(fork_sys::try_wait(pid).unwrap(), None);
    assert_eq!(fork_sys::wait(pid).unwrap(), ExitStatus::Exited(4));
}

#[test]
fn wait_timeout_says_still_running_then_returns_the_status() {
    let pid = fork_child(|| {
        std::thread::sleep(Duration::from_millis(400));
        5
    });
    let started = Instant::now();
    assert_eq!(
        fork_sys::wait_timeout(pid, Duration::from_millis(100)).unwrap(),
        None
    );
    let waited = started.elapsed();
    assert!(
        waited >= Duration::from_millis(100),
        "returned early after {waited:?}"
    );

    let status = fork_sys::wait_timeout(pid, Duration::from_secs(30)).unwrap();
    assert_eq!(status, Some(ExitStatus::Exited(5)));
    // It returned when the child ended, not when the 30 s ran out.
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "took {:?}",
        started.elapsed()
    );
}

#[test]
fn wait_timeout_returns_as_soon_as_the_child_ends() {
    let mut child = ChildHandle::new(fork_child(|| 0));
    let started = Instant::now();
    assert_eq!(
        child.wait_timeout(Duration::from_secs(30)).unwrap(),
        Some(ExitStatus::Exited(0))
    );
    assert!(started.elapsed() < Duration::from_secs(10));
}

/// The timed wait must sleep in the kernel. CPU time of this thread alone (CLOCK_THREAD_CPUTIME_ID), so
/// other tests running in the same process cannot disturb it.
#[cfg(target_os = "linux")]
#[test]
fn wait_timeout_does_not_spin() {
    fn thread_cpu_time() -> Duration {
        let mut ts = libc::timespec {
            tv_sec: 0,
            tv_nsec: 0,
        };
        // SAFETY: clock_gettime writes one timespec into the struct we own.
        let rc = unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut ts) };
        assert_eq!(rc, 0);
        Duration::new(ts.tv_sec as u64, ts.tv_nsec as u32)
    }
    let mut child = ChildHandle::new(fork_child(|| {
        std::thread::sleep(Duration::from_secs(1));
        0
    }));
    let before = thread_cpu_time();
    assert_eq!(
        child.wait_timeout(Duration::from_millis(500)).unwrap(),
        None
    );
    let spent = thread_cpu_time() - before;
    assert!(
        spent < Duration::from_millis(50),
        "a 500 ms wait burnt {spent:?} of CPU"
    );
    child.send_signal(Signal::KILL).unwrap();
    assert_eq!(child.wait().unwrap().signal(), Some(Signal::KILL));
}

#[test]
fn child_handle_caches_the_status_and_stops_signalling_after_the_reap() {
    let mut child = ChildHandle::new(fork_child(|| {
        std::thread::sleep(Duration::from_secs(30));
        0
    }));
    assert_eq!(child.try_wait().unwrap(), None);
    assert_eq!(child.status(), None);
    child.send_signal(Signal::TERM).unwrap();
    let status = child.wait().unwrap();
    assert_eq!(
        status,
        ExitStatus::Signaled {
            signal: Signal::TERM,
            core_dumped: false
        }
    );
    assert_eq!(status.to_string(), "killed by SIGTERM");
    // Reaped: the same answer again, from the cache, and signalling is a no-op rather than a
    // shot at whatever process reuses the pid.
    assert_eq!(child.wait().unwrap(), status);
    assert_eq!(child.try_wait().unwrap(), Some(status));
    assert_eq!(child.wait_timeout(Duration::ZERO).unwrap(), Some(status));
    assert_eq!(child.status(), Some(status));
    child.send_signal(Signal::KILL).unwrap();
}

#[test]
fn waiting_for_a_pid_that_is_not_our_child_is_a_clear_error() {
    let pid = fork_child(|| 0);
    fork_sys::wait(pid).unwrap();
    let err = fork_sys::wait(pid).unwrap_err();
    assert!(
        err.to_string()
            .contains(&format!("process {pid} is not an unreaped child")),
        "{err}"
    );
}

#[test]
fn signal_names_and_numbers() {
    assert_eq!(Signal::KILL.to_string(), "SIGKILL");
    assert_eq!(Signal::KILL.as_raw(), 9);
    assert_eq!(Signal::from_raw(15), Some(Signal::TERM));
    assert_eq!(Signal::from_raw(0), None);
    assert_eq!(Signal::from_raw(-1), None);
    assert_eq!(Signal::from_raw(100_000), None);
    #[cfg(target_os = "linux")]
    {
        let rt = Signal::from_raw(libc::SIGRTMIN() + 1).unwrap();
        assert_eq!(rt.name(), None);
        assert_eq!(rt.to_string(), format!("signal {}", libc::SIGRTMIN() + 1));
    }
}

#[test]
fn pids_print_as_numbers() {
    let pid = fork_sys::Pid::from_raw(22174).unwrap();
    assert_eq!(pid.to_string(), "22174");
    // Regression: the derived `Debug` printed rustix's inner pid as well: `Pid(Pid(22174))`.
    assert_eq!(format!("{pid:?}"), "Pid(22174)");
    assert_eq!(format!("{:?}", Some(pid)), "Some(Pid(22174))");
}

/// How many pidfds this process has open (`/proc/self/fd` links to `anon_inode:[pidfd]`).
#[cfg(target_os = "linux")]
fn pidfds_open() -> usize {
    std::fs::read_dir("/proc/self/fd")
        .unwrap()
        .filter_map(|entry| std::fs::read_link(entry.ok()?.path()).ok())
        .filter(|target| target.to_string_lossy().contains("pidfd"))
        .count()
}

#[cfg(target_os = "linux")]
#[test]
fn a_handle_watched_on_demand_opens_its_pidfd_only_when_a_wait_needs_it() {
    // In a child of its own: the harness's other tests open pidfds while we count.
    let pid = fork_child(|| {
        let before = pidfds_open();
        let mut quick = ChildHandle::new_watched_on_demand(fork_child(|| 3));
        // An untimed wait is a blocking waitpid: no pidfd.
        if quick.wait().ok() != Some(ExitStatus::Exited(3)) || pidfds_open() != before {
            return 10;
        }
        // Reaped and never watched: nothing to open on a pid that may be another's now.
        if quick.exit_fd().is_some() {
            return 11;
        }
        let mut slow = ChildHandle::new_watched_on_demand(fork_child(|| {
            std::thread::sleep(Duration::from_secs(30));
            0
        }));
        // Signals go by pid while no pidfd is open.
        if slow.try_wait().ok() != Some(None) || pidfds_open() != before {
            return 12;
        }
        // A timed wait opens it, and keeps it.
        if slow.wait_timeout(Duration::from_millis(20)).ok() != Some(None)
            || pidfds_open() != before + 1
            || slow.exit_fd().is_none()
        {
            return 13;
        }
        if slow.send_signal(Signal::KILL).is_err() {
            return 14;
        }
        match slow.wait_timeout(Duration::from_secs(10)) {
            Ok(Some(status)) if status.signal() == Some(Signal::KILL) => 0,
            _ => 15,
        }
    });
    assert_eq!(fork_sys::wait(pid).unwrap(), ExitStatus::Exited(0));
}

#[test]
fn the_reaper_runs_what_follows_once_the_child_is_reaped() {
    let (sender, receiver) = std::sync::mpsc::channel();
    let pid = fork_child(|| {
        std::thread::sleep(Duration::from_millis(200));
        0
    });
    fork_sys::reap_in_background_then(ChildHandle::new(pid), move || {
        // By now the child is reaped: waiting for it again says it is not our child.
        let reaped = fork_sys::try_wait(pid).is_err_and(|err| fork_sys::is_not_a_child(&err));
        let _ = sender.send(reaped);
    });
    let reaped = receiver
        .recv_timeout(Duration::from_secs(20))
        .expect("the closure ran");
    assert!(reaped, "the closure ran before the child was reaped");
}
