//! `Child::killer`: signalling a child from other threads while one thread waits for it, and
//! never a stranger after the reap. Ports of CPython's `test_threadsafe_wait` and duct's
//! `test_multiple_threads`.

#![allow(clippy::unwrap_used)] // In tests a failed unwrap is a failed test, with its location.

use std::sync::{Arc, Barrier, Mutex};
use std::time::{Duration, Instant};

use proc_spawn::{Command, ExitStatus, Killer, Signal, Stdio};

const KILLED: ExitStatus = ExitStatus::Signaled {
    signal: Signal::KILL,
    core_dumped: false,
};

#[test]
fn a_killer_is_send_sync_and_clone() {
    fn assert_traits<T: Send + Sync + Clone + 'static>() {}
    assert_traits::<Killer>();
}

/// CPython's `test_threadsafe_wait` (bpo-21291): a timer thread kills the child while the
/// main thread is blocked waiting for it; both see the same status, and the thread's later
/// signals (after the reap) do nothing.
#[test]
fn threadsafe_wait() {
    let _guard = test_support::watchdog(Duration::from_secs(30), "threadsafe wait");
    let mut child = Command::new("sleep").arg("12").spawn().unwrap();
    assert_eq!(child.status(), None);
    let killer = child.killer();
    let results = Arc::new(Mutex::new(Vec::new()));
    let thread_results = Arc::clone(&results);
    let timer = std::thread::spawn(move || {
        // Most likely the main thread is in `wait_timeout` by now.
        std::thread::sleep(Duration::from_millis(200));
        thread_results
            .lock()
            .unwrap()
            .push(("kill", killer.kill().is_ok()));
        // The main thread reaps; whatever the timing, these are no-ops then.
        std::thread::sleep(Duration::from_millis(200));
        thread_results
            .lock()
            .unwrap()
            .push(("kill after the reap", killer.kill().is_ok()));
        thread_results.lock().unwrap().push((
            "group after the reap",
            killer.signal_group(Signal::KILL).is_ok(),
        ));
    });
    let started = Instant::now();
    let status = child.wait_timeout(Duration::from_secs(20)).unwrap();
    assert_eq!(
        status,
        Some(KILLED),
        "unexpected result in wait from main thread"
    );
    assert!(started.elapsed() < Duration::from_secs(10));
    // A second wait is a no-op with the same status.
    assert_eq!(child.wait().unwrap(), KILLED);
    timer.join().unwrap();
    assert_eq!(
        *results.lock().unwrap(),
        [
            ("kill", true),
            ("kill after the reap", true),
            ("group after the reap", true)
        ]
    );
    assert_eq!(child.status(), Some(KILLED));
}

/// duct's `test_multiple_threads`: a background thread waits (blocking, no timeout) while
/// the main thread kills.
#[test]
fn kill_while_another_thread_waits() {
    let _guard = test_support::watchdog(Duration::from_secs(30), "kill while waiting");
    let mut child = Command::new("sleep").arg("1000000").spawn().unwrap();
    let killer = child.killer();
    let waiter = std::thread::spawn(move || child.wait().unwrap());
    std::thread::sleep(Duration::from_millis(50));
    killer.kill().unwrap();
    assert_eq!(waiter.join().unwrap(), KILLED);
    // Reaped by the waiter: nothing left to signal, and no error.
    killer.kill().unwrap();
    killer.terminate().unwrap();
}

#[test]
fn many_threads_kill_while_one_waits_and_no_stranger_is_hit() {
    let _guard = test_support::watchdog(Duration::from_secs(60), "kill storm");
    // A bystander that must outlive every round: a signal that missed its target would be
    // likeliest to hit a process started around the same time.
    let mut bystander = Command::new("sleep").arg("1000").spawn().unwrap();
    for round in 0..50 {
        let mut child = Command::new("sleep").arg("1000").spawn().unwrap();
        let killer = child.killer();
        let start = Arc::new(Barrier::new(5));
        let killers: Vec<_> = (0..4)
            .map(|i| {
                let killer = killer.clone();
                let start = Arc::clone(&start);
                std::thread::spawn(move || {
                    start.wait();
                    for _ in 0..20 {
                        let sent = if i % 2 == 0 {
                            killer.kill()
                        } else {
                            killer.signal_group(Signal::KILL)
                        };
                        sent.unwrap();
                    }
                })
            })
            .collect();
        start.wait();
        let status = if round % 2 == 0 {
            child.wait().unwrap()
        } else {
            child
                .wait_timeout(Duration::from_secs(20))
                .unwrap()
                .unwrap()
        };
        assert_eq!(status, KILLED);
        for thread in killers {
            thread.join().unwrap();
        }
        // Spawned after the reap, so it might take the freed pid: the old killer must not
        // reach it.
        let mut next = Command::new("sleep").arg("1000").spawn().unwrap();
        killer.kill().unwrap();
        killer.signal_group(Signal::KILL).unwrap();
        assert_eq!(next.poll().unwrap(), None, "a killer reached a stranger");
        next.kill().unwrap();
        next.wait().unwrap();
    }
    assert_eq!(bystander.poll().unwrap(), None);
    bystander.kill().unwrap();
    bystander.wait().unwrap();
    // (Eventually: under `cargo test` other tests of this binary run beside this one.)
    assert!(test_support::eventually(Duration::from_secs(5), || {
        test_support::zombie_children() == 0
    }));
}

#[test]
fn a_killer_reaches_the_whole_group_while_another_thread_waits() {
    let _guard = test_support::watchdog(Duration::from_secs(30), "group kill while waiting");
    let mut child = Command::shell("sleep 1000 & echo $!; wait")
        .process_group(0)
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut line = String::new();
    std::io::BufRead::read_line(
        &mut std::io::BufReader::new(child.stdout.as_mut().unwrap()),
        &mut line,
    )
    .unwrap();
    let grandchild: i32 = line.trim().parse().unwrap();
    let killer = child.killer();
    let waiter = std::thread::spawn(move || child.wait().unwrap());
    std::thread::sleep(Duration::from_millis(50));
    killer.signal_group(Signal::KILL).unwrap();
    assert_eq!(waiter.join().unwrap(), KILLED);
    if cfg!(target_os = "linux") {
        assert!(
            test_support::eventually(Duration::from_secs(5), || !test_support::is_running(
                grandchild
            )),
            "grandchild {grandchild} survived the group kill"
        );
    }
}

#[test]
fn poll_with_a_killer_and_a_killer_made_after_the_reap() {
    let mut child = Command::new("sleep").arg("1000").spawn().unwrap();
    let killer = child.killer();
    assert_eq!(child.poll().unwrap(), None);
    assert_eq!(killer.pid(), child.pid());
    killer.terminate().unwrap();
    let status = child.wait().unwrap();
    assert_eq!(status.signal(), Some(Signal::TERM));
    // Made after the reap: it has nothing to signal.
    let late = child.killer();
    late.kill().unwrap();
    assert!(format!("{late:?}").contains("Reaped"), "{late:?}");
}

#[cfg(target_os = "linux")]
#[test]
fn after_the_child_is_dropped_a_killer_still_reaches_it_through_its_pidfd() {
    let child = Command::new("sleep").arg("1000").spawn().unwrap();
    let pid = child.pid().as_raw();
    let killer = child.killer();
    drop(child); // still running: the background reaper takes it
    assert!(test_support::is_running(pid));
    killer.kill().unwrap();
    assert!(
        test_support::eventually(Duration::from_secs(5), || !test_support::is_running(pid)),
        "the dropped child survived its killer"
    );
    // Reaped by the reaper by now, at a moment the killer did not see: still harmless.
    killer.kill().unwrap();
    killer.signal_group(Signal::KILL).unwrap();
}
