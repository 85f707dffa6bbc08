//! `Pool over srun ...`: a pool whose workers are Slurm job steps (`Launcher::slurm()`, the
//! byte-stream transport through srun's stdio forwarding) against the same pool with local
//! `ForkServer` workers, in one run. Runs where a Slurm cluster answers (`cargo xtask cluster
//! up` makes a one-node one); elsewhere the srun rows say they were skipped.

use std::time::{Duration, Instant};

use proc_pool::{Launcher, Pool, StartMethod};

use crate::harness::{BenchResult, Contender, Scenario, Unit};
use crate::scenarios::Context;

const WORKERS: usize = 2;

fn identity(x: u64) -> u64 {
    x
}

/// Why srun workers cannot run here, or `None` when a cluster answers.
fn no_cluster() -> Option<String> {
    let answer = std::process::Command::new("sinfo")
        .args(["-h", "-o", "%t"])
        .output();
    match answer {
        Err(err) => Some(format!(
            "no Slurm here (sinfo: {err}); `cargo xtask cluster up`"
        )),
        Ok(out) if !out.status.success() => Some(format!(
            "no Slurm cluster answers (sinfo {}); `cargo xtask cluster up`",
            out.status
        )),
        Ok(out) if String::from_utf8_lossy(&out.stdout).trim().is_empty() => {
            Some("the Slurm cluster has no node".to_owned())
        }
        Ok(_) => None,
    }
}

/// Where a benchmarked pool's workers run.
#[derive(Debug, Clone, Copy)]
enum Workers {
    /// Local `ForkServer` workers: tasks on pipes, results in shared memory.
    Local,
    /// Local workers on the launchers' byte-stream protocol, started through `env`: what the
    /// stream costs without srun.
    Stream,
    /// Slurm job steps.
    Srun,
}

fn pool(workers: Workers) -> BenchResult<Pool> {
    let builder = Pool::builder().workers(WORKERS);
    let builder = match workers {
        Workers::Local => builder.start_method(StartMethod::ForkServer),
        Workers::Stream => builder.launcher(Launcher::command(["env"])),
        Workers::Srun => builder.launcher(Launcher::slurm()),
    };
    Ok(builder.build()?)
}

/// A fresh pool, a warm-up `map` of `warm` items, then `ops` items timed.
fn map_batch(workers: Workers, ops: u64, warm: u64) -> BenchResult<Duration> {
    let pool = pool(workers)?;
    pool.map(identity, 0..warm.max(1))?;
    let start = Instant::now();
    let values = pool.map(identity, 0..ops)?;
    let elapsed = start.elapsed();
    if values.len() as u64 != ops {
        return Err(format!("map returned {} values for {ops}", values.len()).into());
    }
    Ok(elapsed)
}

/// A fresh pool, 20 warm-up `apply`s, then `ops` `apply`s one after another.
fn apply_batch(workers: Workers, ops: u64) -> BenchResult<Duration> {
    let pool = pool(workers)?;
    for i in 0..20 {
        pool.apply(identity, i)?;
    }
    let start = Instant::now();
    for i in 0..ops {
        if pool.apply(identity, i)? != i {
            return Err("apply returned another value".into());
        }
    }
    Ok(start.elapsed())
}

fn srun_contender(
    name: &str,
    batch: impl FnMut(u64) -> BenchResult<Duration> + 'static,
) -> Contender {
    match no_cluster() {
        Some(reason) => Contender::skipped(name, reason),
        None => Contender::self_timed(name, batch),
    }
}

/// `map` of 100,000 items through srun workers against local `ForkServer` workers.
pub(crate) fn map(cx: &Context) -> BenchResult<Scenario> {
    let warm = cx.ops(100_000, 10_000);
    Ok(Scenario::new(
        "Pool over srun, map",
        "one item of `map(identity, 0..100_000)` on a pool of 2 (default chunk size)",
        Unit::Rate,
        cx.ops(100_000, 10_000),
        Contender::self_timed("proc_pool::Pool, ForkServer workers", move |ops| {
            map_batch(Workers::Local, ops, warm)
        }),
    )
    .reference()
    .note(
        "The srun workers are job steps of a one-node Slurm on the same machine (`cargo xtask \
         cluster up`): the difference from local workers is srun's stdio forwarding (tasks \
         down its stdin, one result frame per item up its stdout) instead of pipes and shared \
         memory. The `env` row runs the same stream protocol as srun workers on local pipes, \
         so srun's own share is the gap between the last two rows. Each batch starts its pool \
         and maps once untimed first.",
    )
    .contender(Contender::self_timed(
        "proc_pool::Pool, stream workers through env",
        move |ops| map_batch(Workers::Stream, ops, warm),
    ))
    .contender(srun_contender(
        "proc_pool::Pool, srun workers",
        move |ops| map_batch(Workers::Srun, ops, warm),
    )))
}

/// One `apply` after another through srun workers against local `ForkServer` workers.
pub(crate) fn apply_round_trip(cx: &Context) -> BenchResult<Scenario> {
    Ok(Scenario::new(
        "Pool over srun, apply round trip",
        "one `apply(identity, i)` on a pool of 2, waiting for each before the next",
        Unit::TimePerOp,
        cx.ops(200, 50),
        Contender::self_timed("proc_pool::Pool, ForkServer workers", |ops| {
            apply_batch(Workers::Local, ops)
        }),
    )
    .reference()
    .contender(Contender::self_timed(
        "proc_pool::Pool, stream workers through env",
        |ops| apply_batch(Workers::Stream, ops),
    ))
    .contender(srun_contender("proc_pool::Pool, srun workers", |ops| {
        apply_batch(Workers::Srun, ops)
    })))
}
