//! 1,000 worker restarts while threads hold locks: its own test binary (it counts zombies).

use std::time::Duration;

use proc_pool::{Pool, StartMethod};

fn square(x: u64) -> u64 {
    x * x
}

/// 1,000 worker restarts (`max_tasks_per_child(1)`) under each of `ForkServer` and `Spawn`
/// while 8 threads of the program hold their own locks across sleeps, allocate, change the
/// environment and print: no hang, every value right.
#[test]
fn a_thousand_worker_restarts_while_threads_hold_locks() {
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::sync::{Arc, Mutex};
    let _watchdog = test_support::watchdog(
        Duration::from_secs(300),
        "worker restarts while 8 threads hold locks",
    );
    let stop = Arc::new(AtomicBool::new(false));
    let shared = Arc::new(Mutex::new(Vec::<u8>::new()));
    let busy: Vec<_> = (0..8)
        .map(|i| {
            let stop = stop.clone();
            let shared = shared.clone();
            std::thread::spawn(move || {
                let key = format!("PROCKIT_POOL_BUSY_{i}");
                while !stop.load(Ordering::Relaxed) {
                    let mut held = shared.lock().expect("lock");
                    held.extend(vec![i as u8; 4096]);
                    std::thread::sleep(Duration::from_micros(200));
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
        let pool = Pool::builder()
            .start_method(method)
            .workers(2)
            .max_tasks_per_child(1)
            .build()
            .expect("pool");
        let values = pool.map_chunked(square, 0..1000u64, 1).expect("map");
        assert_eq!(
            values,
            (0..1000u64).map(square).collect::<Vec<_>>(),
            "{method}"
        );
        pool.close();
        pool.join().expect("join");
    }
    stop.store(true, Ordering::Relaxed);
    for thread in busy {
        thread.join().expect("busy thread");
    }
    assert_eq!(test_support::zombie_children(), 0);
}
