//! The `multiprocessing.Pool` seed:
//!
//! ```python
//! from multiprocessing import Pool
//! import os, time, random
//!
//! def long_time_task(name):
//!     print('Run task %s (%s)...' % (name, os.getpid()))
//!     start = time.time()
//!     time.sleep(random.random() * 3)
//!     end = time.time()
//!     print('Task %s runs %0.2f seconds.' % (name, (end - start)))
//!
//! if __name__=='__main__':
//!     print('Parent process %s.' % os.getpid())
//!     p = Pool(4)
//!     for i in range(5):
//!         p.apply_async(long_time_task, args=(i,))
//!     print('Waiting for all subprocesses done...')
//!     p.close()
//!     p.join()
//!     print('All subprocesses done.')
//! ```
//!
//! The sleeps are drawn in the parent (forked workers would share one random state) and
//! passed with the task number. Each task hands back the pid that ran it; the demo checks
//! that every task ran, in a worker, on at most four of them. `PROCDEMO_POOL_MAX_SLEEP`
//! (seconds, default 3) shortens the sleeps, for tests.

use std::collections::HashSet;
use std::hash::{BuildHasher, Hasher};
use std::time::{Duration, Instant};

use proc_pool::Pool;

const WORKERS: usize = 4;
const TASKS: u32 = 5;

fn long_time_task((name, sleep_secs): (u32, f64)) -> i32 {
    let pid = fork_sys::getpid();
    println!("Run task {name} ({pid})...");
    let start = Instant::now();
    std::thread::sleep(Duration::from_secs_f64(sleep_secs));
    println!(
        "Task {name} runs {:.2} seconds.",
        start.elapsed().as_secs_f64()
    );
    pid.as_raw()
}

/// A random fraction in [0, 1): std's randomly keyed hasher, so no extra dependency.
pub(crate) fn random_fraction() -> f64 {
    let bits = std::collections::hash_map::RandomState::new()
        .build_hasher()
        .finish();
    (bits >> 11) as f64 / (1u64 << 53) as f64
}

/// The longest random sleep, in seconds: environment variable `var`, else `default`.
pub(crate) fn max_sleep(var: &str, default: f64) -> Result<f64, Box<dyn std::error::Error>> {
    match std::env::var(var) {
        Err(_) => Ok(default),
        Ok(text) => match text.parse::<f64>() {
            Ok(secs) if secs.is_finite() && secs >= 0.0 => Ok(secs),
            _ => Err(format!("{var}={text:?} is not a number of seconds").into()),
        },
    }
}

pub(crate) fn run() -> Result<(), Box<dyn std::error::Error>> {
    let max_sleep = max_sleep("PROCDEMO_POOL_MAX_SLEEP", 3.0)?;
    let parent = fork_sys::getpid();
    println!("Parent process {parent}.");
    let pool = Pool::new(WORKERS)?;
    let pending = (0..TASKS)
        .map(|i| pool.apply_async(long_time_task, (i, random_fraction() * max_sleep)))
        .collect::<Result<Vec<_>, _>>()?;
    println!("Waiting for all subprocesses done...");
    pool.close();
    pool.join()?;
    let mut pids = HashSet::new();
    for result in pending {
        pids.insert(result.get()?);
    }
    if pids.contains(&parent.as_raw()) || pids.len() > WORKERS {
        return Err(format!(
            "tasks ran in {pids:?}: expected at most {WORKERS} workers, not {parent}"
        )
        .into());
    }
    println!("All subprocesses done.");
    Ok(())
}
