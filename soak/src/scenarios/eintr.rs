//! The EINTR storm: a `SIGALRM` handler installed without `SA_RESTART` and a 1 ms interval
//! timer, while subprocess waits and `communicate`, `Process` result pipes, `Connection`
//! reads and pool results run. Every interrupted syscall must be retried: no spurious error,
//! no lost or reordered byte.
//!
//! The main thread blocks `SIGALRM` once the work threads exist, so the kernel spreads the
//! deliveries over every other thread, the pool's manager and the reaper included, instead of
//! always picking the main thread.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use proc_core::Process;
use proc_pool::Pool;
use proc_spawn::{Command, Signal, Stdio};

use crate::outcome::{Baseline, Outcome};
use crate::rng::Rng;
use crate::scenarios::Config;

const NAME: &str = "eintr-storm";

fn double(x: u64) -> u64 {
    x * 2
}

/// Counts one operation or one violation, from a work thread.
#[derive(Debug, Default)]
struct Tally {
    operations: AtomicU64,
    violations: AtomicU64,
}

impl Tally {
    fn check(&self, what: &str, result: Result<bool, String>) {
        match result {
            Ok(true) => {
                self.operations.fetch_add(1, Ordering::Relaxed);
            }
            Ok(false) => self.fail(format!("{what}: wrong bytes or status")),
            Err(err) => self.fail(format!("{what}: {err}")),
        }
    }

    fn fail(&self, message: String) {
        if self.violations.fetch_add(1, Ordering::Relaxed) < 20 {
            eprintln!("soak: {NAME}: {message}");
        }
    }
}

fn subprocess_round(rng: &mut Rng, tally: &Tally) {
    let input = rng.bytes(1 << 20);
    let echoed = Command::new("/bin/cat")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .and_then(|mut child| {
            let (out, _) = child.communicate(Some(&input), Some(Duration::from_secs(60)))?;
            Ok(out == input && child.wait()?.success())
        });
    tally.check("communicate through cat", echoed.map_err(|e| e.to_string()));

    let run = Command::new("/bin/sh")
        .args(["-c", "printf abc; sleep 0.003; printf def >&2"])
        .capture_output()
        .run()
        .map(|done| done.stdout == b"abc" && done.stderr == b"def" && done.status.success());
    tally.check("run with capture", run.map_err(|e| e.to_string()));

    let waited = Command::new("/bin/sleep")
        .arg("0.005")
        .spawn()
        .and_then(|mut child| child.wait_timeout(Duration::from_secs(30)))
        .map(|status| status.is_some_and(|s| s.success()));
    tally.check("wait_timeout on sleep", waited.map_err(|e| e.to_string()));
}

fn process_round(round: u64, tally: &Tally) {
    let big = Process::spawn(move || {
        (0..(2u64 << 20))
            .map(|i| (i ^ round) as u8)
            .collect::<Vec<u8>>()
    })
    .and_then(Process::join)
    .map(|value| {
        value.len() == 2 << 20
            && value
                .iter()
                .enumerate()
                .all(|(i, b)| *b == (i as u64 ^ round) as u8)
    });
    tally.check("a 2 MiB Process result", big.map_err(|e| e.to_string()));

    let echoed = (|| -> Result<bool, String> {
        let (mut here, mut there) =
            proc_core::pipe::<Vec<u8>, Vec<u8>>().map_err(|e| e.to_string())?;
        let echo = Process::spawn(move || {
            let mut echoed = 0u32;
            while let Ok(message) = there.recv() {
                if there.send(&message).is_err() {
                    break;
                }
                echoed += 1;
            }
            echoed
        })
        .map_err(|e| e.to_string())?;
        let mut all_back = true;
        for i in 0..10u8 {
            let message = vec![i; 100 * 1024];
            here.send(&message).map_err(|e| e.to_string())?;
            let back = here.recv().map_err(|e| e.to_string())?;
            all_back &= back == message;
        }
        drop(here);
        let count = echo.join().map_err(|e| e.to_string())?;
        Ok(all_back && count == 10)
    })();
    tally.check("a Connection echo", echoed);

    // Timed waits: join_timeout while running, wait_any, and recv_timeout on a slow sender.
    let timed = (|| -> Result<bool, String> {
        let (mut here, mut there) = proc_core::pipe::<u64, u64>().map_err(|e| e.to_string())?;
        let mut slow = Process::spawn(move || {
            std::thread::sleep(Duration::from_millis(30));
            there.send(&round).is_ok()
        })
        .map_err(|e| e.to_string())?;
        let still_running = slow
            .join_timeout(Duration::from_millis(5))
            .map_err(|e| e.to_string())?
            .is_none();
        let mut received = None;
        while received.is_none() {
            received = here
                .recv_timeout(Duration::from_millis(3))
                .map_err(|e| e.to_string())?;
        }
        let mut group = vec![
            slow,
            Process::spawn(move || round < u64::MAX).map_err(|e| e.to_string())?,
        ];
        let mut values = Vec::new();
        while !group.is_empty() {
            let first = proc_core::wait_any(&mut group, Some(Duration::from_secs(30)))
                .map_err(|e| e.to_string())?
                .ok_or("wait_any timed out")?;
            values.push(group.remove(first).join().map_err(|e| e.to_string())?);
        }
        Ok(still_running && received == Some(round) && values == [true, true])
    })();
    tally.check("join_timeout, recv_timeout and wait_any", timed);
}

fn pool_round(pool: &Pool, round: u64, tally: &Tally) {
    let mapped = pool
        .map(double, 0..1_000)
        .map(|values| values.iter().enumerate().all(|(i, v)| *v == 2 * i as u64));
    tally.check("pool.map", mapped.map_err(|e| e.to_string()));
    let applied = pool
        .apply_async(double, round)
        .and_then(|pending| pending.get())
        .map(|value| value == 2 * round);
    tally.check("pool.apply_async", applied.map_err(|e| e.to_string()));
    let streamed: Result<Vec<u64>, _> = pool.imap(double, 0..200).collect();
    tally.check(
        "pool.imap",
        streamed
            .map(|values| values.iter().enumerate().all(|(i, v)| *v == 2 * i as u64))
            .map_err(|e| e.to_string()),
    );
}

/// The storm; see the module docs.
pub(crate) fn storm(config: &Config) -> Outcome {
    let run_for = Duration::from_secs(config.size(20, 3));
    let mut outcome = Outcome::default();
    // Warm-up, so the reaper thread exists before the baseline (and before the mask changes).
    let _ = Command::new("/bin/true").call();
    if let Ok(process) = Process::spawn(|| 1u8) {
        let _ = process.join();
    }
    if let Ok(pool) = Pool::new(1) {
        let _ = pool.apply(double, 1);
    }
    test_support::eventually(Duration::from_secs(5), || test_support::child_count() == 0);
    let baseline = Baseline::take();
    // A task timeout puts the manager on its timed-poll path, which the storm interrupts too.
    let pool = match Pool::builder()
        .workers(2)
        .task_timeout(Duration::from_secs(30))
        .build()
    {
        Ok(pool) => pool,
        Err(err) => {
            outcome.violation(NAME, format!("Pool::new: {err}"));
            return outcome;
        }
    };

    if let Err(err) = fork_sys::count_signal_interrupting(Signal::ALRM) {
        outcome.violation(NAME, format!("installing the handler: {err}"));
        return outcome;
    }
    let before = fork_sys::signals_caught(Signal::ALRM);
    let stop = AtomicBool::new(false);
    let tally = Tally::default();
    std::thread::scope(|scope| {
        let (stop, tally, pool) = (&stop, &tally, &pool);
        scope.spawn(move || {
            let mut rng = Rng::new(0x0065_696e_7472);
            while !stop.load(Ordering::Relaxed) {
                subprocess_round(&mut rng, tally);
            }
        });
        scope.spawn(move || {
            let mut round = 0;
            while !stop.load(Ordering::Relaxed) {
                process_round(round, tally);
                round += 1;
            }
        });
        scope.spawn(move || {
            let mut round = 0;
            while !stop.load(Ordering::Relaxed) {
                pool_round(pool, round, tally);
                round += 1;
            }
        });
        if let Err(err) = fork_sys::set_signal_blocked(Signal::ALRM, true)
            .and_then(|()| fork_sys::set_interval_timer(Some(Duration::from_millis(1))))
        {
            tally.fail(format!("arming the storm: {err}"));
        }
        let started = Instant::now();
        while started.elapsed() < run_for {
            std::thread::sleep(Duration::from_millis(50));
        }
        if let Err(err) = fork_sys::set_interval_timer(None) {
            tally.fail(format!("disarming the timer: {err}"));
        }
        stop.store(true, Ordering::Relaxed);
    });
    outcome.faults = fork_sys::signals_caught(Signal::ALRM) - before;
    outcome.operations = tally.operations.load(Ordering::Relaxed);
    outcome.violations += tally.violations.load(Ordering::Relaxed);
    if outcome.faults < run_for.as_millis() as u64 / 4 {
        outcome.violation(
            NAME,
            format!(
                "only {} signals delivered in {run_for:?}: no storm",
                outcome.faults
            ),
        );
    }
    pool.close();
    if let Err(err) = pool.join() {
        outcome.violation(NAME, format!("join: {err}"));
    }
    drop(pool);
    let _ = fork_sys::restore_default_action(Signal::ALRM);
    baseline.check(&mut outcome);
    outcome
}
