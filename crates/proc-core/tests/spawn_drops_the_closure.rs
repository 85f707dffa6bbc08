//! What happens when the parent drops its copy of the closure after the fork. In a binary of
//! its own: it counts this process's children.

#![allow(clippy::unwrap_used)] // In tests a failed unwrap is a failed test, with its location.

use std::panic::{self, AssertUnwindSafe};
use std::time::Duration;

use proc_core::{Pid, Process};

/// Panics when dropped in the process that made it, as a captured value's `Drop` might.
struct PanicsOnDropInParent(Pid);

impl Drop for PanicsOnDropInParent {
    fn drop(&mut self) {
        if fork_sys::getpid() == self.0 {
            panic!("a captured value's Drop panicked");
        }
    }
}

/// Spawns (and joins) a process when dropped in the process that made it.
struct SpawnsOnDropInParent(Pid);

impl Drop for SpawnsOnDropInParent {
    fn drop(&mut self) {
        if fork_sys::getpid() == self.0 {
            Process::spawn(|| ()).unwrap().join().unwrap();
        }
    }
}

#[test]
fn a_panic_while_dropping_the_parents_copy_of_the_closure_leaves_no_zombie() {
    let guard = PanicsOnDropInParent(fork_sys::getpid());
    let spawned = panic::catch_unwind(AssertUnwindSafe(|| {
        Process::spawn(move || {
            let _keep = &guard;
        })
    }));
    assert!(spawned.is_err(), "the Drop panic reached the caller");
    assert!(
        test_support::eventually(Duration::from_secs(30), || test_support::child_count() == 0),
        "{} children left ({} zombies)",
        test_support::child_count(),
        test_support::zombie_children()
    );
}

/// A captured value whose `Drop` spawns a process must not switch connection shutdown back on
/// for the rest of the closure's captures: the child's connection end would die with it.
#[test]
fn a_nested_spawn_while_dropping_the_closure_keeps_the_childs_connection_alive() {
    let (mut ours, theirs) = proc_core::pipe::<(), u8>().unwrap();
    // Tuple fields drop in order: the spawning guard first, then the connection end.
    let captured = (SpawnsOnDropInParent(fork_sys::getpid()), theirs);
    let p = Process::spawn(move || {
        // Move the tuple whole (not its fields one by one), so it drops in field order.
        let captured = captured;
        let (_guard, mut theirs) = captured;
        theirs.send(&7).is_ok()
    })
    .unwrap();
    assert_eq!(ours.recv_timeout(Duration::from_secs(30)).unwrap(), Some(7));
    assert!(p.join().unwrap(), "the child could send");
}
