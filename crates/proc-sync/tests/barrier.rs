//! `Barrier` across forked processes: rounds, breaking by timeout and abort, reset.

use std::time::Duration;

use proc_core::Process;
use proc_sync::{Barrier, SyncError};

mod waits;

/// `count` children each waiting `rounds` times at `barrier`, returning their indices.
fn waiting_children(
    barrier: &Barrier,
    count: usize,
    rounds: usize,
) -> Vec<Process<Result<Vec<u32>, String>>> {
    (0..count)
        .map(|_| {
            let barrier = barrier.clone();
            Process::spawn(move || {
                (0..rounds)
                    .map(|_| barrier.wait_timeout(Duration::from_secs(20)))
                    .collect::<Result<Vec<u32>, _>>()
                    .map_err(|e| e.to_string())
            })
            .expect("fork a waiting party")
        })
        .collect()
}

#[test]
fn four_processes_meet_in_several_rounds_with_distinct_indices() {
    let barrier = Barrier::new(4).unwrap();
    let children = waiting_children(&barrier, 3, 50);
    let mut rounds: Vec<Vec<u32>> = (0..50)
        .map(|_| vec![barrier.wait_timeout(Duration::from_secs(20)).unwrap()])
        .collect();
    for child in children {
        for (round, index) in child.join().unwrap().unwrap().into_iter().enumerate() {
            rounds[round].push(index);
        }
    }
    for mut indices in rounds {
        indices.sort();
        assert_eq!(indices, [0, 1, 2, 3]);
    }
    assert_eq!(barrier.n_waiting(), 0);
    assert!(!barrier.is_broken());
}

#[test]
fn a_party_that_times_out_breaks_the_barrier_for_the_others() {
    let barrier = Barrier::new(3).unwrap();
    let child = {
        let barrier = barrier.clone();
        Process::spawn(
            move || match barrier.wait_timeout(Duration::from_secs(20)) {
                Err(SyncError::BrokenBarrier) => Ok(()),
                other => Err(format!("{other:?}")),
            },
        )
        .unwrap()
    };
    assert!(test_support::eventually(Duration::from_secs(10), || {
        barrier.n_waiting() == 1
    }));
    let err = waits::sleeps_through_timeout(|timeout| barrier.wait_timeout(timeout)).unwrap_err();
    assert!(matches!(err, SyncError::Timeout { .. }), "{err:?}");
    child.join().unwrap().unwrap();
    assert!(barrier.is_broken());
    assert!(matches!(barrier.wait(), Err(SyncError::BrokenBarrier)));
    // Reset makes it whole again: a full round goes through.
    barrier.reset();
    assert!(!barrier.is_broken());
    let children = waiting_children(&barrier, 2, 1);
    barrier.wait_timeout(Duration::from_secs(20)).unwrap();
    for child in children {
        child.join().unwrap().unwrap();
    }
}

#[test]
fn abort_breaks_the_waiters_of_other_processes_and_reset_mends_it() {
    let barrier = Barrier::new(3).unwrap();
    let children = waiting_children(&barrier, 2, 1);
    assert!(test_support::eventually(Duration::from_secs(10), || {
        barrier.n_waiting() == 2
    }));
    barrier.abort();
    for child in children {
        let err = child.join().unwrap().unwrap_err();
        assert!(err.contains("broken"), "{err}");
    }
    assert!(barrier.is_broken());
    assert_eq!(barrier.n_waiting(), 0);
    barrier.reset();
    let children = waiting_children(&barrier, 2, 1);
    barrier.wait_timeout(Duration::from_secs(20)).unwrap();
    for child in children {
        child.join().unwrap().unwrap();
    }
}

#[test]
fn reset_with_waiters_breaks_their_round_then_the_barrier_works() {
    let barrier = Barrier::new(2).unwrap();
    let children = waiting_children(&barrier, 1, 1);
    assert!(test_support::eventually(Duration::from_secs(10), || {
        barrier.n_waiting() == 1
    }));
    barrier.reset();
    let err = children
        .into_iter()
        .next()
        .unwrap()
        .join()
        .unwrap()
        .unwrap_err();
    assert!(err.contains("broken"), "{err}");
    assert!(
        !barrier.is_broken(),
        "the reset completed once the waiter left"
    );
    let children = waiting_children(&barrier, 1, 1);
    barrier.wait_timeout(Duration::from_secs(20)).unwrap();
    children
        .into_iter()
        .next()
        .unwrap()
        .join()
        .unwrap()
        .unwrap();
}

#[test]
fn a_barrier_needs_a_party() {
    let err = Barrier::new(0).unwrap_err();
    assert!(err.to_string().contains("at least one party"), "{err}");
    assert_eq!(Barrier::new(1).unwrap().wait().unwrap(), 0);
}
