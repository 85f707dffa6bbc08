//! 1,000 function children under `ForkServer` and `Spawn` while threads hold locks: its own
//! test binary, since it counts the process's fds and children (tests sharing a process would
//! change both).

use proc_core::{Process, StartMethod};

fn square(x: u64) -> u64 {
    x * x
}

fn echo_env(name: String) -> Option<String> {
    std::env::var(&name).ok()
}

/// 1,000 function children under each of `ForkServer` and `Spawn` while 8 threads hold locks
/// across sleeps, allocate, change the environment and print: none hangs, each returns its
/// value, and nothing is left behind.
#[test]
fn a_thousand_children_while_threads_hold_locks() {
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::sync::{Arc, Mutex};
    let _watchdog = test_support::watchdog(
        std::time::Duration::from_secs(240),
        "function children started while 8 threads hold locks",
    );
    // Start the fork server first, so the baseline includes it.
    let p = Process::builder()
        .start_method(StartMethod::ForkServer)
        .spawn_fn(square, 1)
        .expect("warm-up");
    p.join().expect("warm-up");
    let fds = test_support::open_fd_count();
    let stop = Arc::new(AtomicBool::new(false));
    let shared = Arc::new(Mutex::new(Vec::<u8>::new()));
    let busy: Vec<_> = (0..8)
        .map(|i| {
            let stop = stop.clone();
            let shared = shared.clone();
            std::thread::spawn(move || {
                let key = format!("PROCKIT_BUSY_{i}");
                while !stop.load(Ordering::Relaxed) {
                    let mut held = shared.lock().expect("lock");
                    held.extend(vec![i as u8; 4096]);
                    std::thread::sleep(std::time::Duration::from_micros(200));
                    held.clear();
                    drop(held);
                    // SAFETY: every reader of the environment here goes through std's
                    // environment lock (std::env::var and proc-core's env copy).
                    unsafe { std::env::set_var(&key, "x") };
                    let _ = std::env::var(&key);
                    println!("busy thread {i}");
                }
            })
        })
        .collect();
    for method in [StartMethod::ForkServer, StartMethod::Spawn] {
        for round in 0..1000u64 {
            let p = Process::builder()
                .start_method(method)
                .spawn_fn(square, round)
                .expect("spawn");
            assert_eq!(p.join().expect("join"), round * round, "{method}");
        }
    }
    let p = Process::builder()
        .start_method(StartMethod::Spawn)
        .spawn_fn(echo_env, "PROCKIT_BUSY_0".to_string())
        .expect("spawn");
    assert_eq!(
        p.join().expect("join").as_deref(),
        Some("x"),
        "the environment is passed"
    );
    stop.store(true, Ordering::Relaxed);
    for thread in busy {
        thread.join().expect("busy thread");
    }
    assert_eq!(test_support::zombie_children(), 0);
    assert_eq!(
        test_support::child_count(),
        1,
        "only the fork server is left"
    );
    assert_eq!(test_support::open_fd_count(), fds, "fds leaked");
}
