//! A fork server that dies under its children, and `Fork` children of a program that uses a
//! fork server: their own test binary (the first kills the server).

use std::time::Duration;

use proc_core::{Process, StartMethod};

/// One test at a time under `cargo test`'s threads: the first kills the fork server the
/// second is using.
static ONE_AT_A_TIME: std::sync::Mutex<()> = std::sync::Mutex::new(());

fn one_at_a_time() -> std::sync::MutexGuard<'static, ()> {
    ONE_AT_A_TIME
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

fn sleep_then(ms: u64) -> u64 {
    std::thread::sleep(Duration::from_millis(ms));
    42
}

/// A non-daemon child lives on when its fork server is killed: it still counts as alive, and
/// `join` returns its value (only its exit status is lost with the server).
#[test]
fn a_child_outliving_its_killed_server_still_returns_its_value() {
    let _turn = one_at_a_time();
    let _watchdog = test_support::watchdog(Duration::from_secs(60), "child of a killed server");
    let mut p = Process::builder()
        .start_method(StartMethod::ForkServer)
        .spawn_fn(sleep_then, 600)
        .expect("spawn");
    let server = proc_core::fork_server_pid().expect("a fork server");
    fork_sys::kill(server, fork_sys::Signal::KILL).expect("kill the server");
    std::thread::sleep(Duration::from_millis(100));
    assert!(p.is_alive(), "the child runs on after its server died");
    assert_eq!(p.exitcode(), None);
    assert_eq!(
        p.join_timeout(Duration::from_secs(10)).expect("join"),
        Some(42)
    );
    // A new server for the next child.
    let again = Process::builder()
        .start_method(StartMethod::ForkServer)
        .spawn_fn(sleep_then, 1)
        .expect("spawn after the server died");
    assert_eq!(again.join().expect("join"), 42);
    assert_ne!(proc_core::fork_server_pid(), Some(server));
}

fn square(x: u64) -> u64 {
    x * x
}

/// `Fork` children made while another thread talks to the fork server: each can use a fork
/// server of its own (it would wait for ever on the parent's client lock, had it inherited
/// it held).
#[test]
fn fork_children_of_a_fork_server_user_can_use_one_too() {
    let _turn = one_at_a_time();
    use std::sync::atomic::{AtomicBool, Ordering};
    let _watchdog = test_support::watchdog(Duration::from_secs(120), "Fork child's fork server");
    let stop = std::sync::Arc::new(AtomicBool::new(false));
    let requester = {
        let stop = stop.clone();
        std::thread::spawn(move || {
            while !stop.load(Ordering::Relaxed) {
                let p = Process::builder()
                    .start_method(StartMethod::ForkServer)
                    .spawn_fn(square, 3)
                    .expect("spawn");
                assert_eq!(p.join().expect("join"), 9);
            }
        })
    };
    for round in 0..30u64 {
        let child = Process::spawn(move || {
            Process::builder()
                .start_method(StartMethod::ForkServer)
                .spawn_fn(square, round)
                .and_then(Process::join)
                .map_err(|err| err.to_string())
        })
        .expect("fork");
        let mut child = child;
        let value = child
            .join_timeout(Duration::from_secs(20))
            .expect("join")
            .unwrap_or_else(|| panic!("round {round}: the Fork child hung"));
        assert_eq!(value, Ok(round * round), "round {round}");
    }
    stop.store(true, Ordering::Relaxed);
    requester.join().expect("requester");
}
