//! Spawn cycles: thousands of `Process` and subprocess lifetimes, and forks from a parent whose
//! other threads are busy allocating, locking and printing.

use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use proc_core::{Process, ProcessError};
use proc_pool::Pool;
use proc_spawn::{Command, ExitStatus, Signal, Stdio};

use crate::outcome::{Baseline, Outcome};
use crate::rng::Rng;
use crate::scenarios::Config;

/// A `join` that outlives this is a hang.
const JOIN_DEADLINE: Duration = Duration::from_secs(60);

/// Joins `process` within [`JOIN_DEADLINE`]; a hang is counted and the child killed.
fn join_or_hang<R: serde::de::DeserializeOwned>(
    scenario: &str,
    mut process: Process<R>,
    outcome: &mut Outcome,
) -> Option<Result<R, ProcessError>> {
    match process.join_timeout(JOIN_DEADLINE) {
        Ok(Some(value)) => Some(Ok(value)),
        Ok(None) => {
            outcome.hang(scenario, format!("process {} still running", process.pid()));
            let _ = process.kill();
            None
        }
        Err(err) => Some(Err(err)),
    }
}

/// 10,000 `Process` lifetimes: plain values, 1 MiB values, panics, kills, and processes dropped
/// while they run (left to the reaper). Same fds and no child before and after.
pub(crate) fn process_cycles(config: &Config) -> Outcome {
    let cycles = config.size(10_000, 500);
    if let Ok(process) = Process::spawn(|| 1u8) {
        let _ = process.join();
    }
    let baseline = Baseline::take();
    let mut outcome = on_threads(cycles, process_cycle);
    baseline.check(&mut outcome);
    outcome
}

/// Runs cycles `0..cycles` spread over [`THREADS`] threads (cycle `i` on thread `i % THREADS`),
/// so spawns, forks, joins and the reaper race each other; merges the outcomes.
fn on_threads(cycles: u64, cycle: fn(u64, &mut Outcome)) -> Outcome {
    let mut outcome = Outcome::default();
    std::thread::scope(|scope| {
        let workers: Vec<_> = (0..THREADS)
            .map(|t| {
                scope.spawn(move || {
                    let mut mine = Outcome::default();
                    for i in (t..cycles).step_by(THREADS as usize) {
                        cycle(i, &mut mine);
                    }
                    mine
                })
            })
            .collect();
        for worker in workers {
            match worker.join() {
                Ok(mine) => outcome.absorb(&mine),
                Err(_) => outcome.violation("cycles", "a cycle thread panicked"),
            }
        }
    });
    outcome
}

/// Threads running cycles at once.
const THREADS: u64 = 4;

/// One `Process` lifetime of [`process_cycles`].
fn process_cycle(i: u64, outcome: &mut Outcome) {
    const NAME: &str = "process-cycles";
    {
        match i % 20 {
            0 => {
                outcome.faults += 1;
                let spawned = Process::spawn(move || -> u64 { panic!("planned panic {i}") });
                match spawned.map(|p| join_or_hang(NAME, p, outcome)) {
                    Ok(Some(Err(ProcessError::Panicked { message, .. })))
                        if message.contains(&format!("planned panic {i}")) =>
                    {
                        outcome.operations += 1;
                    }
                    Ok(None) => {}
                    Ok(Some(other)) => {
                        outcome.violation(NAME, format!("cycle {i}: panic ended as {other:?}"));
                    }
                    Err(err) => outcome.violation(NAME, format!("cycle {i}: spawn: {err}")),
                }
            }
            1 => {
                let spawned = Process::spawn(move || vec![i as u8; 1 << 20]);
                match spawned.map(|p| join_or_hang(NAME, p, outcome)) {
                    Ok(Some(Ok(value))) if value.len() == 1 << 20 && value[4242] == i as u8 => {
                        outcome.operations += 1;
                    }
                    Ok(None) => {}
                    Ok(Some(other)) => outcome.violation(
                        NAME,
                        format!(
                            "cycle {i}: 1 MiB value ended as {:?}",
                            other.map(|v| v.len())
                        ),
                    ),
                    Err(err) => outcome.violation(NAME, format!("cycle {i}: spawn: {err}")),
                }
            }
            2 => {
                outcome.faults += 1;
                let spawned = Process::spawn(|| {
                    std::thread::sleep(Duration::from_secs(30));
                    0u8
                });
                match spawned {
                    Ok(process) => {
                        let _ = process.kill();
                        match join_or_hang(NAME, process, outcome) {
                            Some(Err(ProcessError::Signaled { signal, .. }))
                                if signal == Signal::KILL =>
                            {
                                outcome.operations += 1;
                            }
                            None => {}
                            Some(other) => outcome
                                .violation(NAME, format!("cycle {i}: kill ended as {other:?}")),
                        }
                    }
                    Err(err) => outcome.violation(NAME, format!("cycle {i}: spawn: {err}")),
                }
            }
            3 => {
                // Dropped while it runs: detached, and the reaper must reap it.
                match Process::spawn(|| {
                    std::thread::sleep(Duration::from_millis(2));
                    0u8
                }) {
                    Ok(process) => {
                        drop(process);
                        outcome.operations += 1;
                    }
                    Err(err) => outcome.violation(NAME, format!("cycle {i}: spawn: {err}")),
                }
            }
            _ => match Process::spawn(move || i * 2).map(|p| join_or_hang(NAME, p, outcome)) {
                Ok(Some(Ok(value))) if value == i * 2 => outcome.operations += 1,
                Ok(None) => {}
                Ok(Some(other)) => {
                    outcome.violation(NAME, format!("cycle {i}: ended as {other:?}"));
                }
                Err(err) => outcome.violation(NAME, format!("cycle {i}: spawn: {err}")),
            },
        }
    }
}

/// 10,000 subprocess lifetimes over both spawn paths: `wait`, captured output, a non-zero
/// exit, a `run` killed at its timeout, a pipeline whose first stage dies of SIGPIPE, and
/// children dropped with a pipe still open. Same fds and no child before and after.
pub(crate) fn subprocess_cycles(config: &Config) -> Outcome {
    let cycles = config.size(10_000, 500);
    let _ = Command::new("/bin/true").call();
    let baseline = Baseline::take();
    let mut outcome = on_threads(cycles, subprocess_cycle);
    baseline.check(&mut outcome);
    outcome
}

/// One subprocess lifetime of [`subprocess_cycles`].
fn subprocess_cycle(i: u64, outcome: &mut Outcome) {
    const NAME: &str = "subprocess-cycles";
    {
        let result = match i % 7 {
            // the clone child (Linux)
            0 => Command::new("/bin/true")
                .call()
                .map(|status| status.success()),
            // fork+exec: a uid (even our own) is something a child on our memory must not set
            1 => Command::new("/bin/true")
                .uid(rustix::process::getuid().as_raw())
                .call()
                .map(|status| status.success()),
            2 => Command::new("/bin/echo")
                .arg(i.to_string())
                .capture_output()
                .run()
                .map(|done| done.stdout == format!("{i}\n").into_bytes()),
            3 => {
                outcome.faults += 1;
                Command::new("/bin/sh")
                    .args(["-c", "exit 3"])
                    .call()
                    .map(|status| status == ExitStatus::Exited(3))
            }
            // Killed (with its group) and reaped by `run` at its timeout.
            5 => {
                outcome.faults += 1;
                match Command::new("/bin/sleep")
                    .arg("10")
                    .timeout(Duration::from_millis(5))
                    .run()
                {
                    Err(proc_spawn::Error::TimeoutExpired { .. }) => Ok(true),
                    Err(err) => Err(err),
                    Ok(_) => Ok(false),
                }
            }
            // A pipeline whose first stage dies of SIGPIPE.
            6 => (Command::new("/usr/bin/yes")
                | Command::new("/usr/bin/head")
                    .args(["-n", "2"])
                    .capture_output())
            .run()
            .map(|done| done.stdout == b"y\ny\n"),
            // Dropped with its stdin pipe open, still running: the reaper's job.
            _ => Command::new("/bin/cat")
                .stdin(Stdio::piped())
                .stdout(Stdio::null())
                .spawn()
                .map(|child| {
                    drop(child);
                    true
                }),
        };
        match result {
            Ok(true) => outcome.operations += 1,
            Ok(false) => outcome.violation(NAME, format!("cycle {i}: wrong status or output")),
            Err(err) => outcome.violation(NAME, format!("cycle {i}: {err}")),
        }
    }
}

/// Forks from a parent with 8 threads that allocate, lock a shared mutex and print, for 1,000
/// cycles (a `Process` each; a subprocess on the fork+exec path every 10th; a one-worker pool
/// every 100th): no child may deadlock.
pub(crate) fn fork_busy_threads(config: &Config) -> Outcome {
    const NAME: &str = "fork-busy-threads";
    const THREADS: u64 = 8;
    let cycles = config.size(1_000, 100);
    let mut outcome = Outcome::default();
    if let Ok(process) = Process::spawn(|| 1u8) {
        let _ = process.join();
    }
    let baseline = Baseline::take();
    let stop = AtomicBool::new(false);
    let shared = Mutex::new(Vec::<u64>::new());
    std::thread::scope(|scope| {
        for t in 0..THREADS {
            let (stop, shared) = (&stop, &shared);
            scope.spawn(move || {
                let mut rng = Rng::new(t + 1);
                let mut i = 0u64;
                while !stop.load(Ordering::Relaxed) {
                    let held: Vec<u64> = (0..rng.below(4096)).collect();
                    let text = format!("busy thread {t}: {i} {}", held.len());
                    if let Ok(mut shared) = shared.lock() {
                        shared.push(held.len() as u64);
                        if shared.len() > 1000 {
                            shared.clear();
                        }
                    }
                    if i % 16 == 0 {
                        println!("{text}");
                    }
                    i += 1;
                }
            });
        }
        for i in 0..cycles {
            outcome.faults += 1; // each fork races 8 busy threads
            let spawned = Process::spawn(move || {
                let block: Vec<u64> = (0..10_000).collect();
                println!("child of cycle {i}");
                eprintln!("child of cycle {i} on stderr");
                block.iter().sum::<u64>() + i
            });
            match spawned.map(|p| join_or_hang(NAME, p, &mut outcome)) {
                Ok(Some(Ok(value))) if value == 49_995_000 + i => outcome.operations += 1,
                Ok(None) => {}
                Ok(Some(other)) => {
                    outcome.violation(NAME, format!("cycle {i}: ended as {other:?}"));
                }
                Err(err) => outcome.violation(NAME, format!("cycle {i}: spawn: {err}")),
            }
            if i % 10 == 0 {
                match Command::new("/bin/true")
                    .uid(rustix::process::getuid().as_raw())
                    .call()
                {
                    Ok(status) if status.success() => outcome.operations += 1,
                    other => outcome.violation(NAME, format!("cycle {i}: subprocess: {other:?}")),
                }
            }
            if i % 100 == 0 {
                let applied = Pool::new(1).map(|pool| pool.apply(|x: u64| x + 1, i));
                match applied {
                    Ok(Ok(value)) if value == i + 1 => outcome.operations += 1,
                    other => outcome.violation(NAME, format!("cycle {i}: pool: {other:?}")),
                }
            }
        }
        stop.store(true, Ordering::Relaxed);
    });
    baseline.check(&mut outcome);
    outcome
}
