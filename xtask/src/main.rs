//! `cargo xtask`: the workspace's chores as one small Rust program.
//!
//! Every chore a contributor repeats (the full test matrix, the demo, the benchmarks, what CI runs)
//! is a subcommand here rather than a shell script, so it behaves the same on Linux, macOS and CI
//! and can be read and changed like the rest of the code. The crate is std-only on purpose: a fresh
//! checkout builds it in seconds, before any of the library crates compile.
//!
//! `.cargo/config.toml` defines the alias, so from anywhere in the workspace:
//!
//! ```text
//! cargo xtask test [--quick] [--leg <substring>]...
//! cargo xtask demo [args...]
//! cargo xtask ci
//! cargo xtask bench [args...]
//! cargo xtask soak [--quick] [--only <substring>]... [--fuzz-minutes <m>]
//! cargo xtask check-macos
//! cargo xtask cluster up|down|status
//! ```
//!
//! This file only parses the command line and dispatches; `matrix` holds the test legs and their
//! table, `chores` the commands that wrap a single cargo run, `cluster` the single-node Slurm
//! cluster and the `cluster` leg, `ssh_leg` the `ssh` leg, `workspace` how cargo is found and
//! invoked, and `error` the one error type and its exit codes.

mod chores;
mod cluster;
mod error;
mod matrix;
mod ssh_leg;
mod workspace;

use std::process::ExitCode;

use crate::error::Error;
use crate::workspace::Workspace;

/// Printed for `cargo xtask help` and with no arguments.
const USAGE: &str = "\
Usage: cargo xtask <command> [args...]

Commands:
  test [--quick] [--leg <substring>]...
                   Run the whole check matrix (fmt, clippy, each crate's tests, soak --quick,
                   cluster, ssh, doc tests, release tests, docs), then print a PASS/FAIL/SKIP
                   table. Exits non-zero if any leg failed; later legs still run after a
                   failure. The cluster leg needs root and the Slurm and munge programs, the
                   ssh leg the OpenSSH programs; without them a leg is SKIPPED, saying why,
                   and fails nothing.
                     --quick           skip the release-mode test leg
                     --leg <substring> run only legs whose name contains <substring>
                                       (repeatable; e.g. --leg clippy --leg fork-sys)
  demo [args...]   Run the procdemo binary with <args> (default: `all`); its exit code is ours.
  ci               What CI runs: `test`, then `demo`. Non-zero if either failed.
  bench [args...]  Run the benchmark suite in release mode (it writes docs/BENCHMARKS.md);
                   args are passed through, e.g. `cargo xtask bench --quick`.
  soak [args...]   Run the fault-injection and soak suite in release mode: every scenario
                   checks its invariants and the table (operations, faults injected, tasks
                   lost, fds leaked, zombies left, hangs) must be all zeros. args are passed
                   through: --quick, --only <substring>, --fuzz-minutes <m>, --list.
                   `test` runs `soak --quick` as a leg of its own.
  check-macos      `cargo clippy -D warnings` every target for x86_64-apple-darwin, if that target
                   is installed; otherwise say so and succeed. Not part of `test` or `ci`.
  cluster up|down|status
                   A single-node Slurm cluster on this machine (root; docs/test-cluster.md).
                   up: write /etc/slurm/slurm.conf (never over one xtask did not write) and a
                     munge key if there is none, start munged, slurmctld and slurmd, wait until
                     the node is idle and `srun -N1 -n1 true` works; reuses a running one.
                   down: stop the daemons `up` started, by their recorded pids.
                   status: what runs and the node's state; non-zero unless up.
                   State, logs and pids live in /tmp/prockit-slurm.
  help             Print this message.

Tests run under cargo-nextest (one process per test, hung tests killed per
.config/nextest.toml) when `cargo nextest` is installed, otherwise under `cargo test`.
";

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match dispatch(&args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("error: {error}");
            if matches!(error, Error::Usage(_)) {
                eprintln!("Run `cargo xtask help` for the commands and their flags.");
            }
            ExitCode::from(error.exit_code())
        }
    }
}

/// Runs the subcommand named by the first argument with the rest as its arguments.
fn dispatch(args: &[String]) -> Result<(), Error> {
    let Some((command, rest)) = args.split_first() else {
        print!("{USAGE}");
        return Ok(());
    };
    match command.as_str() {
        "help" | "-h" | "--help" => {
            print!("{USAGE}");
            Ok(())
        }
        "test" => {
            let options = matrix::MatrixOptions::parse(rest)?;
            matrix::run(&Workspace::locate(), &options)
        }
        "demo" => chores::demo(&Workspace::locate(), rest),
        "ci" => {
            no_arguments("ci", rest)?;
            chores::ci(&Workspace::locate())
        }
        "bench" => chores::bench(&Workspace::locate(), rest),
        "soak" => chores::soak(&Workspace::locate(), rest),
        "check-macos" => {
            no_arguments("check-macos", rest)?;
            chores::check_macos(&Workspace::locate())
        }
        "cluster" => cluster::command(rest),
        other => Err(Error::Usage(format!("unknown command `{other}`"))),
    }
}

/// Rejects arguments given to a command that takes none, rather than silently ignoring them.
fn no_arguments(command: &str, rest: &[String]) -> Result<(), Error> {
    match rest.first() {
        None => Ok(()),
        Some(arg) => Err(Error::Usage(format!(
            "`{command}` takes no arguments, got `{arg}`"
        ))),
    }
}
