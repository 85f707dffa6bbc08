//! A forked child's report comes back through a slot of a memory file the parent shares with
//! its running children (Linux): values of any size arrive whole, a slot never shows one
//! child's value to another's parent, memory is given back, running children share one
//! descriptor and leave none, and when every slot is taken the spawn falls back to a pipe.
//! In a binary of its own: it counts fds and holds a thousand children at once.

#![cfg(target_os = "linux")]
#![allow(clippy::unwrap_used)] // In tests a failed unwrap is a failed test, with its location.

use std::os::unix::fs::MetadataExt;
use std::sync::atomic::Ordering;
use std::time::Duration;

use fork_sys::{SharedRegion, Signal};
use proc_core::{Process, ProcessError};

/// Bytes of memory the process's result file holds, if it has one yet.
fn result_file_bytes() -> Option<u64> {
    std::fs::read_dir("/proc/self/fd").ok()?.find_map(|entry| {
        let path = entry.ok()?.path();
        let target = std::fs::read_link(&path).ok()?;
        if !target.to_string_lossy().contains("memfd:proc-core-results") {
            return None;
        }
        Some(std::fs::metadata(&path).ok()?.blocks() * 512)
    })
}

/// 4 MiB of bytes no two positions of which repeat a short pattern.
fn big_value(seed: u8) -> Vec<u8> {
    (0..4u32 << 20)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8 ^ seed)
        .collect()
}

#[test]
fn a_killed_child_never_reports_the_value_of_the_child_before_it() {
    // Keeps the result file open, so the slots below are reused in it, not in a new file.
    let gate = SharedRegion::new(8).unwrap();
    let keeper = keep_the_file_open(&gate);
    for round in 0..20u64 {
        // Leaves its report in a slot, which is then released for the next child.
        assert_eq!(
            Process::spawn(move || round * 7).unwrap().join().unwrap(),
            round * 7
        );
        // Most likely the same slot: killed before it writes anything.
        let sleeper = Process::spawn(|| {
            std::thread::sleep(Duration::from_secs(60));
            1u64
        })
        .unwrap();
        sleeper.kill().unwrap();
        match sleeper.join() {
            Err(ProcessError::Signaled { signal, .. }) => assert_eq!(signal, Signal::KILL),
            other => panic!("round {round}: a killed child's join gave {other:?}"),
        }
    }
    open(&gate);
    assert_eq!(keeper.join().unwrap(), 1);
}

#[test]
fn large_values_arrive_whole_and_their_memory_is_given_back() {
    // Keeps the result file open while the others come and go.
    let gate = SharedRegion::new(8).unwrap();
    let keeper = keep_the_file_open(&gate);

    let value = Process::spawn(|| big_value(3)).unwrap().join().unwrap();
    assert!(value == big_value(3), "a 4 MiB value came back changed");
    let held = result_file_bytes().expect("a result file while a child runs");
    assert!(
        held <= 64 << 10,
        "{held} bytes still held by the result file after the value was read"
    );

    // A value nobody reads: released once the reaper has reaped the child.
    drop(Process::spawn(|| big_value(5)).unwrap());
    assert!(
        test_support::eventually(Duration::from_secs(20), || test_support::child_count() == 1),
        "the child of a dropped handle did not end"
    );
    assert!(
        test_support::eventually(Duration::from_secs(20), || {
            result_file_bytes().is_some_and(|bytes| bytes <= 64 << 10)
        }),
        "{:?} bytes held by the result file after an unread 4 MiB value's child ended",
        result_file_bytes()
    );

    // Values either side of a page, one after another in the same slots.
    for len in [4000usize, 4100, 70_000, 10, 5000, 3] {
        let value = Process::spawn(move || vec![len as u8; len])
            .unwrap()
            .join()
            .unwrap();
        assert_eq!(value, vec![len as u8; len]);
    }

    open(&gate);
    assert_eq!(keeper.join().unwrap(), 1);
    // No child runs: the file is closed, its memory with it.
    assert_eq!(result_file_bytes(), None);
}

/// A child that runs (and so keeps the result file open) until `gate` is opened.
fn keep_the_file_open(gate: &SharedRegion) -> Process<u32> {
    Process::spawn(move || wait_for(gate)).unwrap()
}

/// Sleeps until `gate` is opened; 1.
fn wait_for(gate: &SharedRegion) -> u32 {
    while gate.u32(0).load(Ordering::Acquire) == 0 {
        fork_sys::futex_wait(gate.u32(0), 0, Some(Duration::from_millis(100)));
    }
    1
}

/// Lets every child in [`wait_for`] go.
fn open(gate: &SharedRegion) {
    gate.u32(0).store(1, Ordering::Release);
    fork_sys::futex_wake(gate.u32(0), u32::MAX);
}

#[test]
fn running_children_share_one_descriptor_and_leave_none() {
    let fds = test_support::open_fd_count();
    let children: Vec<_> = (0..20u64)
        .map(|i| {
            Process::spawn(move || {
                std::thread::sleep(Duration::from_millis(300));
                i
            })
            .unwrap()
        })
        .collect();
    assert_eq!(
        test_support::open_fd_count(),
        fds + 1,
        "20 running children should cost their parent one fd, the result file they share"
    );
    for (i, child) in children.into_iter().enumerate() {
        assert_eq!(child.join().unwrap(), i as u64);
    }
    assert_eq!(
        test_support::open_fd_count(),
        fds,
        "fds left after the joins"
    );
    assert_eq!(Process::spawn(|| 1u8).unwrap().join().unwrap(), 1);
    assert_eq!(
        test_support::open_fd_count(),
        fds,
        "fds left after a spawn+join"
    );
}

#[test]
fn more_running_children_than_slots_fall_back_to_pipes() {
    const CHILDREN: u32 = 1040; // more than the 1024 slots
    let gate = SharedRegion::new(8).unwrap();
    let children: Vec<_> = (0..CHILDREN)
        .map(|i| {
            let gate = &gate;
            Process::spawn(move || wait_for(gate) * i).unwrap()
        })
        .collect();
    open(&gate);
    for (i, child) in children.into_iter().enumerate() {
        assert_eq!(child.join().unwrap(), i as u32);
    }
    assert_eq!(test_support::child_count(), 0);
}

#[test]
fn a_child_that_spawns_gets_slots_of_its_own() {
    let sum = Process::spawn(|| {
        let inner: Vec<_> = (1..=5u64)
            .map(|i| Process::spawn(move || i * i).unwrap())
            .collect();
        inner.into_iter().map(|p| p.join().unwrap()).sum::<u64>()
    })
    .unwrap()
    .join()
    .unwrap();
    assert_eq!(sum, 55);
}

#[test]
fn a_handle_moved_into_another_childs_closure_leaves_both_reports_alone() {
    for _ in 0..20 {
        let first = Process::spawn(|| {
            std::thread::sleep(Duration::from_millis(20));
            41u64
        })
        .unwrap();
        // The second child gets the first handle (the parent drops its copy: the reaper
        // takes the first child); dropping it there must not touch the parent's slots, its
        // own report's included.
        let second = Process::spawn(move || {
            drop(first);
            7u64
        })
        .unwrap();
        assert_eq!(second.join().unwrap(), 7);
    }
    assert!(
        test_support::eventually(Duration::from_secs(20), || {
            test_support::child_count() == 0 && result_file_bytes().is_none()
        }),
        "children left: {}, result file: {:?}",
        test_support::child_count(),
        result_file_bytes()
    );
}
