//! `Lock` across forked processes: exclusion, owner death, timeouts without spinning.

use std::time::{Duration, Instant};

use proc_core::Process;
use proc_sync::{Lock, SyncError};

use test_support::this_thread_cpu_time as cpu_time;

#[test]
fn a_holder_killed_while_holding_hands_the_lock_on_with_owner_died() {
    let lock = Lock::new().unwrap();
    let holder = {
        let lock = lock.clone();
        Process::spawn(move || {
            let _held = lock.acquire().map_err(|e| e.to_string())?;
            std::thread::sleep(Duration::from_secs(60));
            Ok::<(), String>(())
        })
        .unwrap()
    };
    let pid = holder.pid().as_raw() as u32;
    let start = Instant::now();
    while lock.holder() != Some(pid) {
        assert!(
            start.elapsed() < Duration::from_secs(10),
            "child never took the lock"
        );
        std::thread::sleep(Duration::from_millis(1));
    }
    // A second process waits on it meanwhile; it must not get it while the holder lives.
    assert!(
        lock.acquire_timeout(Duration::from_millis(100))
            .unwrap()
            .is_none()
    );
    holder.kill().unwrap();
    let died = lock
        .acquire()
        .expect_err("the holder died holding the lock");
    assert_eq!(died.pid(), pid);
    assert!(
        died.to_string().contains(&format!("process {pid} died")),
        "{died}"
    );
    let guard = died.into_inner();
    assert_eq!(lock.holder(), Some(std::process::id()));
    drop(guard);
    assert!(!lock.is_locked());
    // It works normally afterwards.
    let again = lock.try_acquire().unwrap().expect("free lock");
    drop(again);
    assert!(holder.join().is_err());
}

#[test]
fn owner_died_through_question_mark_is_a_sync_error_and_releases() {
    let lock = Lock::new().unwrap();
    let child = {
        let lock = lock.clone();
        Process::spawn(move || {
            std::mem::forget(lock.acquire().map_err(|e| e.to_string())?);
            Ok::<(), String>(())
        })
        .unwrap()
    };
    // The child exits holding the lock (it forgot its guard).
    child.join().unwrap().unwrap();
    let taken = (|| -> Result<(), SyncError> {
        let _guard = lock.acquire()?;
        Ok(())
    })();
    assert!(
        matches!(taken, Err(SyncError::OwnerDied { what: "lock", .. })),
        "{taken:?}"
    );
    assert!(!lock.is_locked(), "the guard inside the error was dropped");
}

#[test]
fn processes_take_turns_and_exclude_each_other() {
    let lock = Lock::new().unwrap();
    let inside = fork_sys::SharedAtomics::new(2).unwrap();
    let inside = std::sync::Arc::new(inside);
    let children: Vec<_> = (0..4)
        .map(|_| {
            let lock = lock.clone();
            let inside = inside.clone();
            Process::spawn(move || {
                use std::sync::atomic::Ordering;
                for _ in 0..2000 {
                    let _held = lock.acquire().map_err(|e| e.to_string())?;
                    if inside.get(0).fetch_add(1, Ordering::SeqCst) != 0 {
                        inside.get(1).fetch_add(1, Ordering::SeqCst);
                    }
                    std::hint::spin_loop();
                    inside.get(0).fetch_sub(1, Ordering::SeqCst);
                }
                Ok::<(), String>(())
            })
            .unwrap()
        })
        .collect();
    for child in children {
        child.join().unwrap().unwrap();
    }
    assert_eq!(
        inside.get(1).load(std::sync::atomic::Ordering::SeqCst),
        0,
        "two processes were inside at once"
    );
}

#[test]
fn a_timed_out_acquire_sleeps_rather_than_spins() {
    let lock = Lock::new().unwrap();
    let holder = {
        let lock = lock.clone();
        Process::spawn(move || {
            let _held = lock.acquire().map_err(|e| e.to_string())?;
            std::thread::sleep(Duration::from_secs(30));
            Ok::<(), String>(())
        })
        .unwrap()
    };
    while lock.holder() != Some(holder.pid().as_raw() as u32) {
        std::thread::sleep(Duration::from_millis(1));
    }
    let cpu = cpu_time();
    let start = Instant::now();
    assert!(
        lock.acquire_timeout(Duration::from_millis(600))
            .unwrap()
            .is_none()
    );
    let waited = start.elapsed();
    let used = cpu_time() - cpu;
    assert!(
        waited >= Duration::from_millis(600),
        "gave up early: {waited:?}"
    );
    assert!(
        used < Duration::from_millis(60),
        "a 600 ms wait used {used:?} of CPU"
    );
    holder.kill().unwrap();
    let _ = holder.join();
}

#[test]
fn a_lock_is_exclusive_between_threads_of_one_process_too() {
    let lock = Lock::new().unwrap();
    let guard = lock.acquire().unwrap();
    std::thread::scope(|s| {
        s.spawn(|| {
            assert!(lock.try_acquire().unwrap().is_none());
        });
    });
    drop(guard);
    assert!(lock.try_acquire().unwrap().is_some());
}
