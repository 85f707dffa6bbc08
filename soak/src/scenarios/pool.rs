//! Pool scenarios: a kill storm, and tasks that fail in every way a task can, mixed at random.

use std::collections::HashSet;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use proc_pool::{ExitStatus, Pool, Signal, StartMethod, TaskError};

use crate::ledger::Ledger;
use crate::outcome::{Baseline, Outcome};
use crate::rng::Rng;
use crate::scenarios::Config;

/// How long all of a scenario's results may take, from the first submission, before the ones
/// still missing count as hangs (a third of it in quick runs): one deadline for all, so a stuck
/// pool costs the scenario a minute, not a wait per task.
const RESULT_DEADLINE: Duration = Duration::from_secs(60);

/// What is left of the result deadline counted from `started`.
fn left(started: Instant, quick: bool) -> Duration {
    let deadline = if quick {
        RESULT_DEADLINE / 3
    } else {
        RESULT_DEADLINE
    };
    deadline.saturating_sub(started.elapsed())
}

/// Ends a pool: `close` and `join` normally, but `terminate` when tasks hung (a `join` would
/// wait for them for ever).
fn finish(pool: Pool, name: &str, outcome: &mut Outcome) {
    let ended = if outcome.hangs > 0 {
        pool.terminate()
    } else {
        pool.close();
        pool.join()
    };
    if let Err(err) = ended {
        outcome.violation(name, format!("ending the pool: {err}"));
    }
}

/// About 200 µs of work, so a kill usually lands on a worker mid-task.
fn spin(x: u64) -> u64 {
    let until = Instant::now() + Duration::from_micros(200);
    let mut acc = x;
    while Instant::now() < until {
        acc = std::hint::black_box(acc.rotate_left(7) ^ 0x5bd1_e995);
    }
    std::hint::black_box(acc);
    x.wrapping_mul(3) + 1
}

/// [`spin`], then its run logged in the ledger at `ledger` under `x`, last thing before it
/// returns (a few µs more): what the `reruns` column counts.
fn busy((ledger, x): (String, u64)) -> u64 {
    let value = spin(x);
    Ledger::record(&ledger, x);
    value
}

/// `busy`'s arguments for the keys `keys`.
fn logged(ledger: &Ledger, keys: impl IntoIterator<Item = u64>) -> Vec<(String, u64)> {
    keys.into_iter()
        .map(|x| (ledger.path().to_owned(), x))
        .collect()
}

/// The kill storm's maps log their items under these keys plus `round * 1_000`, clear of the
/// `apply_async` and `imap` tasks' 0..10,000.
const MAP_KEYS: u64 = 1 << 32;
/// The map after the storm logs its items under these keys.
const AFTER_KEYS: u64 = 2 << 32;

/// A pool and a baseline taken after a warm-up pool came and went (the reaper thread and the
/// panic hook exist from then on, and are not leaks).
fn warm_baseline(scenario: &str, outcome: &mut Outcome) -> Baseline {
    warm_baseline_under(StartMethod::Fork, scenario, outcome)
}

/// [`warm_baseline`] for pools of `method`: under `ForkServer` the warm-up starts proc-core's
/// fork server, which stays (one child, one socket) and is part of the baseline.
fn warm_baseline_under(method: StartMethod, scenario: &str, outcome: &mut Outcome) -> Baseline {
    let build = Pool::builder().start_method(method).workers(1).build();
    match build.and_then(|pool| {
        let _ = pool.apply(spin, 1);
        pool.terminate()
    }) {
        Ok(()) => {}
        Err(err) => outcome.violation(scenario, format!("warm-up pool: {err}")),
    }
    Baseline::take_with(usize::from(method == StartMethod::ForkServer))
}

/// What the kill storm's result checks keep besides the outcome.
#[derive(Debug, Default)]
struct Tally {
    /// Tasks (or whole maps) that failed with `WorkerDied`.
    died: u64,
    /// Keys whose task returned its value: each must be in the ledger exactly once.
    valued: Vec<u64>,
}

impl Tally {
    fn absorb(&mut self, other: Tally) {
        self.died += other.died;
        self.valued.extend(other.valued);
    }
}

/// Checks one kill-storm result: the value, or `WorkerDied`.
fn settle(
    name: &str,
    x: u64,
    result: Result<u64, TaskError>,
    tally: &mut Tally,
    outcome: &mut Outcome,
) {
    match result {
        Ok(value) if value == x.wrapping_mul(3) + 1 => {
            tally.valued.push(x);
            outcome.operations += 1;
        }
        Ok(value) => outcome.violation(name, format!("task {x}: wrong value {value}")),
        Err(TaskError::WorkerDied { .. }) => {
            tally.died += 1;
            outcome.operations += 1;
        }
        Err(TaskError::NotReady { .. }) => {
            outcome.hang(name, format!("task {x}: no answer by the deadline"));
        }
        Err(other) => outcome.lost(name, format!("task {x}: {other}")),
    }
}

/// 10,000 tasks (half `apply_async`, half through `imap` on a second thread), and twenty `map`s
/// of 100 in chunks of 7 on a third, while a fourth thread SIGKILLs a random worker every
/// 1-5 ms. Every task logs its run in a [`Ledger`]: a body that returned and ran again is a
/// rerun (the pool has no retries here, so none may).
pub(crate) fn kill_storm(config: &Config) -> Outcome {
    kill_storm_under(config, StartMethod::Fork, "pool-kill-storm")
}

/// The kill storm on a pool whose workers the fork server forks: the same invariants, the
/// statuses coming from the server.
pub(crate) fn kill_storm_fork_server(config: &Config) -> Outcome {
    kill_storm_under(
        config,
        StartMethod::ForkServer,
        "pool-kill-storm-forkserver",
    )
}

fn kill_storm_under(config: &Config, method: StartMethod, name: &'static str) -> Outcome {
    let quick = config.quick;
    const WORKERS: usize = 4;
    let tasks = config.size(10_000, 1_000);
    let mut outcome = Outcome::default();
    let baseline = warm_baseline_under(method, name, &mut outcome);
    let ledger = match Ledger::create(name) {
        Ok(ledger) => ledger,
        Err(err) => {
            outcome.violation(name, format!("the run ledger: {err}"));
            return outcome;
        }
    };
    let pool = match Pool::builder()
        .start_method(method)
        .workers(WORKERS)
        .build()
    {
        Ok(pool) => pool,
        Err(err) => {
            outcome.violation(name, format!("Pool::new: {err}"));
            return outcome;
        }
    };
    let stop = AtomicBool::new(false);
    let kills = AtomicU64::new(0);
    let mut tally = Tally::default();
    let maps = 20;
    let map_len = tasks / 100;
    let map_keys = |round: u64| MAP_KEYS + round * 1_000..MAP_KEYS + round * 1_000 + map_len;
    let started = Instant::now();
    std::thread::scope(|scope| {
        let (pool, stop, kills, ledger) = (&pool, &stop, &kills, &ledger);
        scope.spawn(move || {
            let mut rng = Rng::new(0x6b69_6c6c);
            while !stop.load(Ordering::Relaxed) {
                std::thread::sleep(Duration::from_micros(1_000 + rng.below(4_000)));
                let pids = pool.worker_pids();
                if pids.is_empty() {
                    continue;
                }
                let victim = pids[rng.below(pids.len() as u64) as usize];
                if fork_sys::kill(victim, Signal::KILL).is_ok() {
                    kills.fetch_add(1, Ordering::Relaxed);
                }
            }
        });
        let half = tasks / 2;
        let imap_side = scope.spawn(move || {
            let mut side = Outcome::default();
            let mut side_tally = Tally::default();
            let mut seen = 0;
            let items = logged(ledger, half..tasks);
            for (i, result) in pool.imap(busy, items).enumerate() {
                seen += 1;
                settle(name, half + i as u64, result, &mut side_tally, &mut side);
            }
            for missing in seen..(tasks - half) {
                side.lost(name, format!("imap item {} never came", half + missing));
            }
            (side, side_tally)
        });
        // Whole maps in chunks of 7 on a third thread: a kill fails one chunk, and map
        // returns that first error (dropping its other tasks; chunks already running may
        // still finish, once) or every value in order.
        let map_side = scope.spawn(move || {
            let mut side = Outcome::default();
            let mut side_tally = Tally::default();
            for round in 0..maps {
                let items = map_keys(round);
                match pool.map_chunked(busy, logged(ledger, items.clone()), 7) {
                    Ok(values)
                        if values.len() == items.clone().count()
                            && items
                                .clone()
                                .zip(&values)
                                .all(|(x, v)| *v == x.wrapping_mul(3) + 1) =>
                    {
                        side.operations += values.len() as u64;
                        side_tally.valued.extend(items);
                    }
                    Ok(_) => side.violation(name, format!("map {round}: wrong values")),
                    Err(TaskError::WorkerDied { .. }) => side_tally.died += 1,
                    Err(other) => side.lost(name, format!("map {round}: {other}")),
                }
            }
            (side, side_tally)
        });
        let pending: Vec<_> = logged(ledger, 0..half)
            .into_iter()
            .map(|arg| (arg.1, pool.apply_async(busy, arg)))
            .collect();
        for (x, submitted) in pending {
            match submitted {
                Ok(result) => {
                    settle(
                        name,
                        x,
                        result.get_timeout(left(started, quick)),
                        &mut tally,
                        &mut outcome,
                    );
                }
                Err(err) => outcome.lost(name, format!("apply_async({x}): {err}")),
            }
        }
        match map_side.join() {
            Ok((side, side_tally)) => {
                tally.absorb(side_tally);
                outcome.absorb(&side);
            }
            Err(_) => outcome.violation(name, "the map thread panicked"),
        }
        match imap_side.join() {
            Ok((side, side_tally)) => {
                tally.absorb(side_tally);
                outcome.absorb(&side);
            }
            Err(_) => outcome.violation(name, "the imap thread panicked"),
        }
        stop.store(true, Ordering::Relaxed);
    });
    let died = tally.died;
    outcome.faults = kills.load(Ordering::Relaxed);
    if died > outcome.faults {
        outcome.violation(
            name,
            format!(
                "{died} tasks failed with WorkerDied, but only {} kills",
                outcome.faults
            ),
        );
    }
    let full = test_support::eventually(Duration::from_secs(10), || {
        pool.worker_pids().len() == WORKERS
    });
    if !full {
        outcome.violation(
            name,
            format!(
                "the pool ended with {} of its {WORKERS} workers",
                pool.worker_pids().len()
            ),
        );
    }
    // It still works after the storm.
    let after = AFTER_KEYS..AFTER_KEYS + 100;
    match pool.map(busy, logged(&ledger, after.clone())) {
        Ok(values)
            if values
                .iter()
                .zip(after.clone())
                .all(|(v, x)| *v == x.wrapping_mul(3) + 1) =>
        {
            tally.valued.extend(after.clone());
        }
        Ok(_) => outcome.violation(name, "map after the storm: wrong values"),
        Err(err) => outcome.violation(name, format!("map after the storm: {err}")),
    }
    finish(pool, name, &mut outcome);
    // Nothing runs any more (joined, or terminated after a hang): count the runs.
    let submitted: HashSet<u64> = (0..tasks)
        .chain((0..maps).flat_map(map_keys))
        .chain(after)
        .collect();
    ledger.check(name, &submitted, &tally.valued, &mut outcome);
    drop(ledger);
    terminate_mid_storm(config.quick, method, name, &mut outcome);
    eprintln!(
        "soak: {name}: {} kills, {died} tasks or maps failed with WorkerDied, {} tasks done, {} reruns",
        outcome.faults, outcome.operations, outcome.reruns
    );
    baseline.check(&mut outcome);
    outcome
}

/// A second pool, terminated while a thousand tasks are queued or running and a worker is
/// being killed: every task still ends, with its value, `WorkerDied` or `PoolTerminated`, and
/// none ran twice.
fn terminate_mid_storm(quick: bool, method: StartMethod, name: &str, outcome: &mut Outcome) {
    let ledger = match Ledger::create(&format!("{name}-terminate")) {
        Ok(ledger) => ledger,
        Err(err) => {
            outcome.violation(name, format!("the run ledger: {err}"));
            return;
        }
    };
    let pool = match Pool::builder().start_method(method).workers(3).build() {
        Ok(pool) => pool,
        Err(err) => {
            outcome.violation(name, format!("Pool::new: {err}"));
            return;
        }
    };
    let started = Instant::now();
    let tasks = 1_000;
    let pending: Vec<_> = logged(&ledger, 0..tasks)
        .into_iter()
        .map(|arg| (arg.1, pool.apply_async(busy, arg)))
        .collect();
    std::thread::sleep(Duration::from_millis(20));
    if let Some(&victim) = pool.worker_pids().first() {
        if fork_sys::kill(victim, Signal::KILL).is_ok() {
            outcome.faults += 1;
        }
    }
    if let Err(err) = pool.terminate() {
        outcome.violation(name, format!("terminate: {err}"));
    }
    outcome.faults += 1;
    let (mut done, mut terminated) = (0, 0);
    let mut valued = Vec::new();
    for (x, submitted) in pending {
        match submitted.map(|result| result.get_timeout(left(started, quick))) {
            Ok(Ok(value)) if value == x.wrapping_mul(3) + 1 => {
                valued.push(x);
                done += 1;
            }
            Ok(Err(TaskError::WorkerDied { .. })) => done += 1,
            Ok(Err(TaskError::PoolTerminated)) => terminated += 1,
            Ok(Err(TaskError::NotReady { .. })) => {
                outcome.hang(name, format!("task {x} after terminate: no answer"));
            }
            Ok(other) => outcome.lost(name, format!("task {x} after terminate: {other:?}")),
            Err(err) => outcome.lost(name, format!("apply_async({x}): {err}")),
        }
    }
    outcome.operations += done + terminated;
    if !pool.worker_pids().is_empty() {
        outcome.violation(name, "workers still listed after terminate");
    }
    drop(pool);
    ledger.check(name, &(0..tasks).collect(), &valued, outcome);
    eprintln!("soak: {name}: terminate mid-storm: {done} tasks ended, {terminated} terminated");
}

/// What a mixed-fault task does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Fault {
    None,
    Panic,
    Abort,
    Segfault,
    Overrun,
    Oversize,
}

impl Fault {
    fn from_code(code: u8) -> Fault {
        match code {
            1 => Fault::Panic,
            2 => Fault::Abort,
            3 => Fault::Segfault,
            4 => Fault::Overrun,
            5 => Fault::Oversize,
            _ => Fault::None,
        }
    }

    fn code(self) -> u8 {
        self as u8
    }

    /// 80 % plain tasks, the rest spread over the five faults.
    fn pick(rng: &mut Rng) -> Fault {
        match rng.below(100) {
            0..80 => Fault::None,
            80..84 => Fault::Panic,
            84..88 => Fault::Abort,
            88..92 => Fault::Segfault,
            92..94 => Fault::Overrun,
            _ => Fault::Oversize,
        }
    }
}

/// The frame limit of the mixed-fault pool; `Oversize` returns more than this.
const FRAME_LIMIT: usize = 64 * 1024;
/// The task timeout of the mixed-fault pool; `Overrun` sleeps ten times this.
const TASK_TIMEOUT: Duration = Duration::from_millis(200);

/// A mixed-fault task: logs its run in the ledger at `ledger` as the last thing before it
/// returns, panics, aborts or segfaults (an `Overrun` is killed at its timeout before that).
fn faulty((ledger, code, seed): (String, u8, u64)) -> Vec<u8> {
    match Fault::from_code(code) {
        Fault::None => {
            let value = seed.to_le_bytes().repeat(4);
            Ledger::record(&ledger, seed);
            value
        }
        Fault::Panic => {
            Ledger::record(&ledger, seed);
            panic!("planned panic {seed}")
        }
        Fault::Abort => {
            Ledger::record(&ledger, seed);
            std::process::abort()
        }
        Fault::Segfault => {
            Ledger::record(&ledger, seed);
            crate::crash::segfault()
        }
        Fault::Overrun => {
            std::thread::sleep(TASK_TIMEOUT * 10);
            Ledger::record(&ledger, seed);
            Vec::new()
        }
        Fault::Oversize => {
            let value = vec![7; 2 * FRAME_LIMIT];
            Ledger::record(&ledger, seed);
            value
        }
    }
}

fn killed_by(status: &ExitStatus, wanted: Signal) -> bool {
    matches!(status, ExitStatus::Signaled { signal, .. } if *signal == wanted)
}

/// Tasks that panic, abort, segfault, overrun their timeout or return oversize values, mixed
/// at random among plain ones: each gets exactly its own error, every plain task its value,
/// and no task body runs twice (the crashes make workers die with results staged and tasks
/// queued behind them).
pub(crate) fn mixed_faults(config: &Config) -> Outcome {
    let quick = config.quick;
    const NAME: &str = "pool-mixed-faults";
    const WORKERS: usize = 3;
    let tasks = config.size(2_000, 300);
    let mut outcome = Outcome::default();
    let baseline = warm_baseline(NAME, &mut outcome);
    let ledger = match Ledger::create(NAME) {
        Ok(ledger) => ledger,
        Err(err) => {
            outcome.violation(NAME, format!("the run ledger: {err}"));
            return outcome;
        }
    };
    // Workers also retire every 25 tasks, so replacements for crashes and for recycling mix.
    let pool = match Pool::builder()
        .workers(WORKERS)
        .max_tasks_per_child(25)
        .task_timeout(TASK_TIMEOUT)
        .max_frame_len(FRAME_LIMIT)
        .build()
    {
        Ok(pool) => pool,
        Err(err) => {
            outcome.violation(NAME, format!("Pool::builder().build(): {err}"));
            return outcome;
        }
    };
    let mut rng = Rng::new(0x6661_756c_7473);
    let jobs: Vec<(Fault, u64)> = (0..tasks)
        .map(|seed| (Fault::pick(&mut rng), seed))
        .collect();
    let started = Instant::now();
    let pending: Vec<_> = jobs
        .iter()
        .map(|&(fault, seed)| {
            pool.apply_async(faulty, (ledger.path().to_owned(), fault.code(), seed))
        })
        .collect();
    // Tasks whose error or value shows their body reached its end, where it logs its run.
    let mut ended = Vec::new();
    for (&(fault, seed), submitted) in jobs.iter().zip(pending) {
        if fault != Fault::None {
            outcome.faults += 1;
        }
        let result = match submitted {
            Ok(result) => result.get_timeout(left(started, quick)),
            Err(err) => {
                outcome.lost(
                    NAME,
                    format!("task {seed} ({fault:?}) not submitted: {err}"),
                );
                continue;
            }
        };
        let expected = match (&fault, &result) {
            (Fault::None, Ok(value)) => *value == seed.to_le_bytes().repeat(4),
            (Fault::Panic, Err(TaskError::Panicked { message, .. })) => {
                message.contains(&format!("planned panic {seed}"))
            }
            (Fault::Abort, Err(TaskError::WorkerDied { status, .. })) => {
                killed_by(status, Signal::ABRT)
            }
            (Fault::Segfault, Err(TaskError::WorkerDied { status, .. })) => {
                killed_by(status, Signal::SEGV)
            }
            (Fault::Overrun, Err(TaskError::Timeout { after, .. })) => *after == TASK_TIMEOUT,
            (Fault::Oversize, Err(TaskError::ResultTooLarge { len, .. })) => {
                *len > FRAME_LIMIT as u64
            }
            (_, Err(TaskError::NotReady { .. })) => {
                outcome.hang(NAME, format!("task {seed} ({fault:?}): no answer"));
                continue;
            }
            _ => false,
        };
        if expected {
            outcome.operations += 1;
            if fault != Fault::Overrun {
                ended.push(seed);
            }
        } else {
            let got = match &result {
                Ok(value) => format!("a value of {} bytes", value.len()),
                Err(err) => err.to_string(),
            };
            outcome.violation(NAME, format!("task {seed} ({fault:?}) ended with {got}"));
        }
    }
    let full = test_support::eventually(Duration::from_secs(10), || {
        pool.worker_pids().len() == WORKERS
    });
    if !full {
        outcome.violation(NAME, "the pool did not get back to its full worker count");
    }
    finish(pool, NAME, &mut outcome);
    ledger.check(NAME, &(0..tasks).collect(), &ended, &mut outcome);
    drop(ledger);
    baseline.check(&mut outcome);
    outcome
}
