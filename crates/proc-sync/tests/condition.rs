//! `Condition` across forked processes: notify from another process, owner death of the
//! lock while waiting, re-entrant locks, timeouts without spinning.

use std::time::Duration;

use proc_core::Process;
use proc_sync::{Condition, Lock, RLock, Value};

mod waits;

#[test]
fn a_notify_from_a_child_wakes_the_waiting_parent() {
    let cond = Condition::new().unwrap();
    let ready = Value::new(0u32).unwrap();
    let held = cond.acquire().unwrap();
    let child = {
        let (cond, ready) = (cond.clone(), ready.clone());
        Process::spawn(move || {
            // Blocks until the parent's wait releases the lock.
            let _held = cond.acquire().map_err(|e| e.to_string())?;
            ready.set(1).map_err(|e| e.to_string())?;
            cond.notify(1);
            Ok::<(), String>(())
        })
        .unwrap()
    };
    let (held, met) = cond
        .wait_for_timeout(held, Duration::from_secs(20), || {
            ready.get().is_ok_and(|v| v == 1)
        })
        .unwrap();
    assert!(met, "the child's notify never arrived");
    assert_eq!(cond.lock().holder(), Some(std::process::id()));
    drop(held);
    child.join().unwrap().unwrap();
}

#[test]
fn notify_all_wakes_waiters_in_several_processes() {
    let cond = Condition::new().unwrap();
    let go = Value::new(0u32).unwrap();
    let children: Vec<_> = (0..3)
        .map(|_| {
            let (cond, go) = (cond.clone(), go.clone());
            Process::spawn(move || {
                let held = cond.acquire().map_err(|e| e.to_string())?;
                let (_held, met) = cond
                    .wait_for_timeout(held, Duration::from_secs(20), || {
                        go.get().is_ok_and(|v| v == 1)
                    })
                    .map_err(|e| e.to_string())?;
                Ok::<bool, String>(met)
            })
            .unwrap()
        })
        .collect();
    std::thread::sleep(Duration::from_millis(200));
    {
        let _held = cond.acquire().unwrap();
        go.set(1).unwrap();
        cond.notify_all();
    }
    for child in children {
        assert!(child.join().unwrap().unwrap(), "a waiter was not woken");
    }
}

#[test]
fn a_waiter_gets_owner_died_when_the_notifier_dies_holding_the_lock() {
    let cond = Condition::with_lock(RLock::new().unwrap()).unwrap();
    let held = cond.acquire().unwrap();
    let notifier = {
        let cond = cond.clone();
        Process::spawn(move || {
            let _held = cond.acquire().map_err(|e| e.to_string())?;
            cond.notify_all();
            // Dies here (killed), still holding the lock.
            std::thread::sleep(Duration::from_secs(60));
            Ok::<(), String>(())
        })
        .unwrap()
    };
    let pid = notifier.pid().as_raw() as u32;
    let lock = cond.lock().clone();
    let killer = std::thread::spawn(move || {
        assert!(test_support::eventually(Duration::from_secs(10), || {
            lock.holder() == Some(pid)
        }));
        std::thread::sleep(Duration::from_millis(100));
        notifier.kill().unwrap();
        notifier
    });
    let died = cond.wait(held).expect_err("the lock's holder died");
    assert_eq!(died.pid(), pid);
    let held = died.into_inner();
    assert!(cond.lock().is_mine());
    assert_eq!(cond.lock().depth(), 1);
    drop(held);
    assert!(!cond.lock().is_locked());
    assert!(killer.join().unwrap().join().is_err());
}

#[test]
fn a_wait_on_an_rlock_releases_every_level_and_restores_them() {
    let cond = Condition::with_lock(RLock::new().unwrap()).unwrap();
    let outer = cond.acquire().unwrap();
    let inner = cond.acquire().unwrap();
    let child = {
        let cond = cond.clone();
        Process::spawn(move || {
            // Only possible while the parent waits with both levels released.
            let _held = cond.acquire().map_err(|e| e.to_string())?;
            cond.notify(1);
            Ok::<(), String>(())
        })
        .unwrap()
    };
    let (inner, notified) = cond.wait_timeout(inner, Duration::from_secs(20)).unwrap();
    assert!(notified);
    assert_eq!(cond.lock().depth(), 2);
    drop(inner);
    drop(outer);
    assert!(!cond.lock().is_locked());
    child.join().unwrap().unwrap();
}

#[test]
fn a_timed_out_wait_sleeps_rather_than_spins_and_takes_the_lock_back() {
    let cond = Condition::with_lock(Lock::new().unwrap()).unwrap();
    let held = cond.acquire().unwrap();
    let (held, notified) =
        waits::sleeps_through_timeout(|timeout| cond.wait_timeout(held, timeout)).unwrap();
    assert!(!notified);
    assert_eq!(cond.lock().holder(), Some(std::process::id()));
    drop(held);
}

#[test]
#[should_panic(expected = "another lock")]
fn a_guard_of_another_lock_is_refused() {
    let cond = Condition::new().unwrap();
    let other = Lock::new().unwrap();
    let _ = cond.wait(other.acquire().unwrap());
}

#[test]
fn two_processes_take_a_thousand_turns_without_losing_a_notify() {
    // A lost notify leaves one side waiting for its turn until the 20 s timeout: a failure.
    const TURNS: u32 = 1000;
    let cond = Condition::new().unwrap();
    let turn = Value::new(0u32).unwrap();
    let take_turns = |cond: &Condition, turn: &Value<u32>, parity: u32| -> Result<(), String> {
        let mut held = cond.acquire().map_err(|e| e.to_string())?;
        for _ in 0..TURNS / 2 {
            let (next, met) = cond
                .wait_for_timeout(held, Duration::from_secs(20), || {
                    turn.get().is_ok_and(|t| t % 2 == parity)
                })
                .map_err(|e| e.to_string())?;
            if !met {
                return Err(format!("waited 20 s for turn {parity} mod 2"));
            }
            turn.update(|t| t + 1).map_err(|e| e.to_string())?;
            cond.notify(1);
            held = next;
        }
        Ok(())
    };
    let child = {
        let (cond, turn) = (cond.clone(), turn.clone());
        Process::spawn(move || take_turns(&cond, &turn, 1)).unwrap()
    };
    take_turns(&cond, &turn, 0).unwrap();
    child.join().unwrap().unwrap();
    assert_eq!(turn.get().unwrap(), TURNS);
}
