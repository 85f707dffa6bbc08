//! `Event` across forked processes: a set in one wakes waiters in others.

use std::time::{Duration, Instant};

use proc_core::Process;
use proc_sync::Event;

mod waits;

#[test]
fn an_event_set_by_a_child_wakes_the_waiting_parent() {
    let event = Event::new().unwrap();
    let child = {
        let event = event.clone();
        Process::spawn(move || {
            std::thread::sleep(Duration::from_millis(100));
            event.set();
        })
        .unwrap()
    };
    assert!(!event.is_set());
    assert!(event.wait_timeout(Duration::from_secs(20)), "never woken");
    assert!(event.is_set());
    child.join().unwrap();
}

#[test]
fn a_set_event_lets_every_wait_through_until_cleared() {
    let event = Event::new().unwrap();
    event.set();
    event.set();
    event.wait();
    assert!(event.wait_timeout(Duration::ZERO));
    let child = {
        let event = event.clone();
        Process::spawn(move || event.wait_timeout(Duration::from_secs(5))).unwrap()
    };
    assert!(child.join().unwrap());
    event.clear();
    assert!(!event.is_set());
    assert!(!event.wait_timeout(Duration::from_millis(20)));
}

#[test]
fn a_set_then_clear_still_wakes_every_waiter_of_the_moment() {
    let event = Event::new().unwrap();
    let waiting = Event::new().unwrap();
    let children: Vec<_> = (0..2)
        .map(|_| {
            let (event, waiting) = (event.clone(), waiting.clone());
            Process::spawn(move || {
                waiting.set();
                let start = Instant::now();
                // Woken by the set, not by the end of the timeout: one set wakes every waiter.
                event.wait_timeout(Duration::from_secs(30))
                    && start.elapsed() < Duration::from_secs(20)
            })
            .unwrap()
        })
        .collect();
    waiting.wait();
    std::thread::sleep(Duration::from_millis(300));
    event.set();
    event.clear();
    for child in children {
        assert!(child.join().unwrap(), "a waiter missed the set");
    }
}

#[test]
fn a_timed_out_wait_sleeps_rather_than_spins() {
    let event = Event::new().unwrap();
    assert!(!waits::sleeps_through_timeout(
        |timeout| event.wait_timeout(timeout)
    ));
}
