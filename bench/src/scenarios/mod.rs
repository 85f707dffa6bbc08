//! The scenarios, one module each, in the order they run and are reported.
//!
//! To add a scenario, write a module with
//! `pub(crate) fn scenario(cx: &Context) -> BenchResult<Scenario>` and list it in [`ALL`]. To add
//! a contender to a scenario, add one `.contender(...)` to that module's builder.

use crate::harness::{BenchResult, Scenario};
use crate::python::Python;

mod async_spawn;
mod communicate;
mod connection_ping_pong;
pub(crate) mod fork_wait;
mod lock;
pub(crate) mod pipe_ping_pong;
mod pipe_throughput;
mod pool;
mod pool_large_items;
mod pool_over_srun;
mod pool_scale;
mod process_join;
mod queue;
mod spawn_true;
mod start_methods;

/// Builds one scenario. Building is cheap and runs nothing: `--filter` drops scenarios after
/// they are built.
pub(crate) type Builder = fn(&Context) -> BenchResult<Scenario>;

/// Every scenario, in run order.
pub(crate) const ALL: &[Builder] = &[
    fork_wait::scenario,
    spawn_true::scenario,
    communicate::scenario,
    pipe_ping_pong::scenario,
    pipe_throughput::scenario,
    process_join::scenario,
    connection_ping_pong::scenario,
    queue::one_to_one,
    queue::four_by_four,
    queue::bulk,
    pool::map_default,
    pool::map_chunksize_1,
    pool::starmap,
    pool::apply_async,
    pool::apply_round_trip,
    pool::imap_memory,
    pool_large_items::scenario,
    pool_scale::build_pool,
    pool_scale::apply_async_many_workers,
    pool_over_srun::map,
    pool_over_srun::apply_round_trip,
    start_methods::process_start_join,
    start_methods::pool_worker_restart,
    lock::uncontended,
    lock::contended,
    // Last: tokio's process driver installs a SIGCHLD handler that stays for the life of the
    // process (signal-hook-registry never removes one), and every fork after it pays for its
    // delivery: run before the fork scenarios, it made their floors read up to twice as slow.
    async_spawn::scenario,
];

/// What scenario builders may depend on.
#[derive(Debug)]
pub(crate) struct Context {
    /// `--quick`: smaller batches for a smoke run.
    pub(crate) quick: bool,
    /// The `python3` found on `PATH`, if any.
    pub(crate) python: Option<Python>,
}

impl Context {
    /// The batch size: `full` normally, `quick` under `--quick`.
    pub(crate) fn ops(&self, full: u64, quick: u64) -> u64 {
        if self.quick { quick } else { full }
    }
}
