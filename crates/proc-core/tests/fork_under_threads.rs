//! Forking from a parent whose other threads allocate, lock and print continuously must not
//! deadlock the child. In a binary of its own: the busy threads would slow every other test.

#![allow(clippy::unwrap_used)] // In tests a failed unwrap is a failed test, with its location.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use proc_core::Process;

#[test]
fn five_hundred_spawns_while_eight_threads_allocate_and_lock() {
    let _watchdog =
        test_support::watchdog(Duration::from_secs(100), "500 spawn+join cycles under load");
    let stop = Arc::new(AtomicBool::new(false));
    let shared = Arc::new(Mutex::new(HashMap::<u64, Vec<u8>>::new()));
    let workers: Vec<_> = (0..8)
        .map(|t| {
            let stop = Arc::clone(&stop);
            let shared = Arc::clone(&shared);
            std::thread::spawn(move || {
                let mut i = 0u64;
                while !stop.load(Ordering::Relaxed) {
                    let blob = vec![t as u8; (i % 4096) as usize];
                    shared.lock().unwrap().insert(i % 64, blob);
                    let text: String = format!("{t}:{i}").repeat((i % 7) as usize);
                    drop(text);
                    if i % 16 == 0 {
                        // Holds the std stream locks now and then, as a logging thread would.
                        let out = std::io::stdout().lock();
                        let err = std::io::stderr().lock();
                        std::hint::black_box((&out, &err));
                    }
                    i += 1;
                }
            })
        })
        .collect();

    for i in 0..500u32 {
        // The child allocates, formats and prints: all of it needs locks the busy threads
        // take (malloc's arenas, stderr's lock).
        let p = Process::spawn(move || {
            let v: Vec<String> = (0..32).map(|n| format!("{i}-{n}")).collect();
            // The real locks, not the test harness's capture buffer that `eprint!` may use.
            let out = std::io::stdout().lock();
            let err = std::io::stderr().lock();
            drop((out, err));
            v.len() as u32 + i
        })
        .unwrap();
        assert_eq!(p.join().unwrap(), 32 + i);
    }

    stop.store(true, Ordering::Relaxed);
    for worker in workers {
        worker.join().unwrap();
    }
}

/// A parent thread inside std's panic machinery at the moment of a fork holds std's backtrace
/// lock for ever in the child; a child that then panics must still report `Panicked`, not hang.
#[test]
fn panicking_children_report_while_a_parent_thread_keeps_panicking() {
    let _watchdog = test_support::watchdog(
        Duration::from_secs(100),
        "panicking children under a panicking thread",
    );
    let stop = Arc::new(AtomicBool::new(false));
    let panicker = {
        let stop = Arc::clone(&stop);
        std::thread::spawn(move || {
            let mut caught = 0u64;
            while !stop.load(Ordering::Relaxed) {
                // Through the default hook (and its lock) every time.
                if std::panic::catch_unwind(|| panic!("parent thread panics on purpose")).is_err() {
                    caught += 1;
                }
            }
            caught
        })
    };
    for i in 0..200u32 {
        let err = Process::spawn(move || -> u32 { panic!("child {i} panics") })
            .unwrap()
            .join()
            .unwrap_err();
        assert!(
            matches!(&err, proc_core::ProcessError::Panicked { message, .. } if *message == format!("child {i} panics")),
            "{err}"
        );
    }
    stop.store(true, Ordering::Relaxed);
    assert!(panicker.join().unwrap() > 0);
}
