//! `RLock` across forked processes: re-entry by the owning thread only, owner death, timeouts
//! without spinning.

use std::time::Duration;

use proc_core::Process;
use proc_sync::RLock;

mod waits;

/// Waits until process `pid` holds the lock.
fn until_held_by(lock: &RLock, pid: u32) {
    assert!(
        test_support::eventually(Duration::from_secs(10), || lock.holder() == Some(pid)),
        "process {pid} never took the lock"
    );
}

#[test]
fn the_owner_reenters_and_another_process_waits_for_every_level() {
    let lock = RLock::new().unwrap();
    let outer = lock.acquire().unwrap();
    let inner = lock.acquire().unwrap();
    assert_eq!(lock.depth(), 2);
    let try_in_child = |lock: &RLock| {
        let lock = lock.clone();
        Process::spawn(move || {
            lock.try_acquire()
                .map(|g| g.is_some())
                .map_err(|e| e.to_string())
        })
        .unwrap()
        .join()
        .unwrap()
        .unwrap()
    };
    assert!(!try_in_child(&lock), "a child took a lock held twice");
    drop(inner);
    assert_eq!(lock.depth(), 1);
    assert!(!try_in_child(&lock), "a child took a lock still held once");
    drop(outer);
    assert!(!lock.is_locked());
    assert!(try_in_child(&lock), "a child could not take the free lock");
}

#[test]
fn another_thread_of_the_owning_process_waits_too() {
    let lock = RLock::new().unwrap();
    let held = lock.acquire().unwrap();
    std::thread::scope(|s| {
        s.spawn(|| {
            assert!(!lock.is_mine());
            assert_eq!(lock.depth(), 0);
            assert!(lock.try_acquire().unwrap().is_none());
            assert!(
                lock.acquire_timeout(Duration::from_millis(50))
                    .unwrap()
                    .is_none()
            );
        });
    });
    drop(held);
    std::thread::scope(|s| {
        s.spawn(|| {
            let mine = lock.try_acquire().unwrap().expect("free lock");
            assert!(lock.is_mine());
            drop(mine);
        });
    });
}

#[test]
fn a_holder_killed_at_depth_two_hands_the_lock_on_with_owner_died() {
    let lock = RLock::new().unwrap();
    let holder = {
        let lock = lock.clone();
        Process::spawn(move || {
            let _a = lock.acquire().map_err(|e| e.to_string())?;
            let _b = lock.acquire().map_err(|e| e.to_string())?;
            std::thread::sleep(Duration::from_secs(60));
            Ok::<(), String>(())
        })
        .unwrap()
    };
    let pid = holder.pid().as_raw() as u32;
    until_held_by(&lock, pid);
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
    assert!(died.to_string().contains("rlock"), "{died}");
    let guard = died.into_inner();
    // Taken over at depth 1, not the dead owner's 2.
    assert_eq!(lock.depth(), 1);
    assert!(lock.is_mine());
    drop(guard);
    assert!(!lock.is_locked());
    let again = lock.try_acquire().unwrap().expect("free lock");
    drop(again);
    assert!(holder.join().is_err());
}

#[test]
fn a_timed_out_acquire_sleeps_rather_than_spins() {
    let lock = RLock::new().unwrap();
    let holder = {
        let lock = lock.clone();
        Process::spawn(move || {
            let _held = lock.acquire().map_err(|e| e.to_string())?;
            std::thread::sleep(Duration::from_secs(30));
            Ok::<(), String>(())
        })
        .unwrap()
    };
    until_held_by(&lock, holder.pid().as_raw() as u32);
    let taken = waits::sleeps_through_timeout(|timeout| lock.acquire_timeout(timeout));
    assert!(taken.unwrap().is_none());
    holder.kill().unwrap();
    let _ = holder.join();
}

#[test]
fn an_rlock_attached_by_handle_is_the_same_lock() {
    let lock = RLock::new().unwrap();
    let twin = RLock::attach(&lock.handle().unwrap()).unwrap();
    let held = lock.acquire().unwrap();
    assert_eq!(twin.holder(), Some(std::process::id()));
    drop(held);
    assert!(!twin.is_locked());
    let wrong = proc_sync::Lock::attach(&lock.handle().unwrap()).unwrap_err();
    assert!(wrong.to_string().contains("RLock, not a Lock"), "{wrong}");
}
