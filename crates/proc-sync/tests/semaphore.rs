//! `Semaphore` and `BoundedSemaphore` across forked processes.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use proc_core::Process;
use proc_sync::{BoundedSemaphore, Semaphore, SyncError};

mod waits;

#[test]
fn at_most_value_processes_hold_a_unit_at_once() {
    let slots = Semaphore::new(2).unwrap();
    // [inside now, most inside at once]
    let inside = Arc::new(fork_sys::SharedAtomics::new(2).unwrap());
    let children: Vec<_> = (0..4)
        .map(|_| {
            let (slots, inside) = (slots.clone(), inside.clone());
            Process::spawn(move || {
                for _ in 0..300 {
                    let _unit = slots.acquire();
                    let now = inside.get(0).fetch_add(1, Ordering::SeqCst) + 1;
                    inside.get(1).fetch_max(now, Ordering::SeqCst);
                    std::thread::yield_now();
                    inside.get(0).fetch_sub(1, Ordering::SeqCst);
                }
            })
            .unwrap()
        })
        .collect();
    for child in children {
        child.join().unwrap();
    }
    let most = inside.get(1).load(Ordering::SeqCst);
    assert!(most <= 2, "{most} processes held one of 2 units at once");
    assert_eq!(slots.get_value(), 2);
}

#[test]
fn a_unit_taken_in_a_child_is_released_by_the_parent() {
    let slots = Semaphore::new(1).unwrap();
    let child = {
        let slots = slots.clone();
        Process::spawn(move || slots.acquire().forget()).unwrap()
    };
    child.join().unwrap();
    assert_eq!(slots.get_value(), 0);
    assert!(slots.try_acquire().is_none());
    slots.release().unwrap();
    assert_eq!(slots.get_value(), 1);
    assert!(slots.try_acquire().is_some());
}

#[test]
fn a_waiting_child_is_woken_by_a_release_in_the_parent() {
    let slots = Semaphore::new(0).unwrap();
    let child = {
        let slots = slots.clone();
        Process::spawn(move || slots.acquire_timeout(Duration::from_secs(20)).is_some()).unwrap()
    };
    std::thread::sleep(Duration::from_millis(100));
    slots.release().unwrap();
    assert!(child.join().unwrap(), "the child's acquire timed out");
    // The child's guard was dropped when it returned: the unit came back.
    assert_eq!(slots.get_value(), 1);
}

#[test]
fn a_bounded_semaphore_refuses_a_release_above_its_initial_value() {
    let slots = BoundedSemaphore::new(1).unwrap();
    let err = slots.release().unwrap_err();
    assert!(matches!(err, SyncError::Misuse { .. }), "{err:?}");
    assert!(err.to_string().contains("initial value 1"), "{err}");
    assert_eq!(slots.get_value(), 1);
    // Taken in a child, given back here: allowed once.
    let child = {
        let slots = slots.clone();
        Process::spawn(move || slots.acquire().forget()).unwrap()
    };
    child.join().unwrap();
    slots.release().unwrap();
    assert!(slots.release().is_err());
    assert_eq!(slots.get_value(), 1);
    // A bounded semaphore's handle is not a plain one's.
    let handle = slots.handle().unwrap();
    assert!(Semaphore::attach(&handle).is_err());
    assert_eq!(BoundedSemaphore::attach(&handle).unwrap().bound(), 1);
}

#[test]
fn a_timed_out_acquire_sleeps_rather_than_spins() {
    let slots = Semaphore::new(0).unwrap();
    assert!(waits::sleeps_through_timeout(|timeout| slots.acquire_timeout(timeout)).is_none());
}
