//! How long a blocked [`AsyncResult`](super::AsyncResult) wait watches its slot before it
//! sleeps on the condvar: a pool's answer to "is the value about to arrive?".
//!
//! A lone `apply` crosses four wake-ups (caller → manager → worker → manager → caller). When
//! the caller sleeps, the last one costs what waking a thread on another CPU costs (an
//! inter-processor interrupt, and on a VM an exit from the idle CPU's halt: about 15 µs of a
//! 64 µs round trip on the 2-CPU VM of docs/BENCHMARKS.md). A caller that watches its slot
//! for a while instead sees the value the moment the manager stores it, and leaves the other
//! CPU to the manager and the worker, which then hand the task to each other on one CPU
//! without an interrupt: 20–45 µs.
//!
//! Watching burns the CPU it runs on, which only pays when the value comes soon. So a pool
//! keeps the recent length of its blocking waits (an average over the last few, each wait
//! counted whether it watched or slept), and a wait watches, for at most [`WATCH_LIMIT`],
//! only while that average is within the limit and the process may run on two CPUs or more:
//! a pool whose tasks take a millisecond stops watching after its first wait, and starts
//! again once its waits are short again. Glibc's adaptive mutexes and rayon's idle workers
//! make the same trade; `await`ing a result never watches (the executor decides).

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// The longest a blocked wait watches its slot before it sleeps, and the longest recent
/// average wait at which it still watches.
pub(crate) const WATCH_LIMIT: Duration = Duration::from_micros(100);

/// The recent length of one pool's blocking waits, shared by its results.
#[derive(Debug)]
pub(crate) struct WaitSpin {
    /// Whether the process may run on two CPUs or more: on one, a watching caller only
    /// delays the manager and the worker it waits for.
    several_cpus: bool,
    /// An exponential average (weight 1/8) of the recent blocking waits, in nanoseconds.
    recent_wait_ns: AtomicU64,
}

impl WaitSpin {
    /// A pool's, judging the CPUs the process may use now.
    pub(crate) fn new() -> WaitSpin {
        let cpus = std::thread::available_parallelism().map_or(1, |n| n.get());
        WaitSpin::with_cpus(cpus)
    }

    fn with_cpus(cpus: usize) -> WaitSpin {
        WaitSpin {
            several_cpus: cpus >= 2,
            recent_wait_ns: AtomicU64::new(0),
        }
    }

    /// How long a wait starting now, limited to `limit`, should watch before it sleeps.
    fn watch_for(&self, limit: Option<Duration>) -> Duration {
        let recent = Duration::from_nanos(self.recent_wait_ns.load(Ordering::Relaxed));
        if !self.several_cpus || recent > WATCH_LIMIT {
            return Duration::ZERO;
        }
        limit.map_or(WATCH_LIMIT, |limit| limit.min(WATCH_LIMIT))
    }

    /// Watches `finished` until it is set or this pool's watch is over (at most `limit`);
    /// true if it was set.
    pub(crate) fn watch(&self, finished: &AtomicBool, limit: Option<Duration>) -> bool {
        let watch = self.watch_for(limit);
        if watch.is_zero() {
            return finished.load(Ordering::Acquire);
        }
        let start = Instant::now();
        loop {
            if finished.load(Ordering::Acquire) {
                return true;
            }
            // A few pause instructions between looks (tens to hundreds of cycles each):
            // the sibling hyperthread, if any, keeps its share, and the clock is read a
            // few times a microsecond at most.
            for _ in 0..16 {
                std::hint::spin_loop();
            }
            if start.elapsed() >= watch {
                return finished.load(Ordering::Acquire);
            }
        }
    }

    /// Counts one blocking wait that lasted `waited` (until the value came, or the caller's
    /// timeout ran out).
    pub(crate) fn record(&self, waited: Duration) {
        let sample = u64::try_from(waited.as_nanos()).unwrap_or(u64::MAX);
        let recent = self.recent_wait_ns.load(Ordering::Relaxed);
        // Racing waiters may each overwrite the other's sample: an average, not an account.
        let next = recent - recent / 8 + sample / 8;
        self.recent_wait_ns.store(next, Ordering::Relaxed);
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::thread;

    use super::*;

    #[test]
    fn a_pool_with_short_waits_watches_and_one_with_long_waits_stops_until_they_shorten() {
        let spin = WaitSpin::with_cpus(2);
        assert_eq!(spin.watch_for(None), WATCH_LIMIT);
        assert_eq!(
            spin.watch_for(Some(Duration::from_micros(3))),
            Duration::from_micros(3)
        );
        // One wait of a millisecond: the average passes the limit, and watching stops.
        spin.record(Duration::from_millis(1));
        assert_eq!(spin.watch_for(None), Duration::ZERO);
        // Short waits bring it back.
        for _ in 0..8 {
            spin.record(Duration::from_micros(30));
        }
        assert_eq!(spin.watch_for(None), WATCH_LIMIT);
    }

    #[test]
    fn one_cpu_never_watches() {
        let spin = WaitSpin::with_cpus(1);
        assert_eq!(spin.watch_for(None), Duration::ZERO);
        let finished = AtomicBool::new(false);
        assert!(!spin.watch(&finished, None));
        finished.store(true, Ordering::Release);
        assert!(spin.watch(&finished, None));
    }

    #[test]
    fn a_watch_gives_up_after_its_limit_and_reports_a_flag_set_meanwhile() {
        let spin = WaitSpin::with_cpus(2);
        let finished = AtomicBool::new(false);
        let start = Instant::now();
        assert!(!spin.watch(&finished, None));
        assert!(start.elapsed() >= WATCH_LIMIT);

        let finished = Arc::new(finished);
        let setter = {
            let finished = finished.clone();
            thread::spawn(move || finished.store(true, Ordering::Release))
        };
        setter.join().expect("the setter thread panicked");
        assert!(spin.watch(&finished, Some(Duration::from_secs(5))));
    }
}
