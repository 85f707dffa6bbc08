//! A pool leaves nothing behind: no zombie, no process, no fd, whether it is joined,
//! terminated or dropped busy. In a binary of its own so no other test forks or opens fds
//! while we count.

#![allow(clippy::unwrap_used)] // In tests a failed unwrap is a failed test, with its location.

use std::time::Duration;

use proc_pool::Pool;

fn sleep_ms(ms: u64) -> u64 {
    std::thread::sleep(Duration::from_millis(ms));
    ms
}

fn crash_on_odd(x: u64) -> u64 {
    if x % 2 == 1 {
        std::process::abort();
    }
    x
}

#[test]
fn pools_joined_terminated_and_dropped_busy_leave_nothing_behind() {
    let fds = test_support::open_fd_count();
    for round in 0..20 {
        let pool = Pool::new(3).unwrap();
        assert_eq!(
            pool.map_chunked(crash_on_odd, [0, 2, 4], 1).unwrap(),
            [0, 2, 4]
        );
        let _ = pool.apply(crash_on_odd, 1); // one worker dies and is replaced
        let busy: Vec<_> = (0..12)
            .map(|_| pool.apply_async(sleep_ms, 10_000).unwrap())
            .collect();
        match round % 3 {
            0 => {}
            1 => pool.terminate().unwrap(),
            _ => {
                pool.close();
                // Closed, yet its busy tasks would take 10 s: terminate instead of join.
                pool.terminate().unwrap();
            }
        }
        drop(busy);
        drop(pool);
        assert_eq!(
            test_support::child_count(),
            0,
            "round {round}: workers left"
        );
        assert_eq!(test_support::zombie_children(), 0);
        assert_eq!(
            test_support::open_fd_count(),
            fds,
            "round {round}: fds leaked"
        );
    }
    // And a pool that finishes its work normally.
    let pool = Pool::new(2).unwrap();
    assert_eq!(pool.map(sleep_ms, [1, 2, 3]).unwrap(), [1, 2, 3]);
    pool.close();
    pool.join().unwrap();
    drop(pool);
    assert_eq!(test_support::child_count(), 0);
    assert_eq!(test_support::open_fd_count(), fds);
}
