//! prockit's soak suite: each scenario puts the crates under load, faults or bad input, checks
//! its own invariants (every task ends, no fd leaks, no zombie is left, nothing hangs), and the
//! driver prints one table row per scenario. Any non-zero column fails the run.
//!
//! ```text
//! cargo xtask soak [--quick] [--only <substring>]... [--fuzz-minutes <m>]
//! ```
//!
//! Every scenario runs in a fresh child process of this binary (`soak --run-scenario <name>`):
//! its fd and child counts start clean, its rlimits, signal handlers and uid changes stay its
//! own, and a hang is a deadline the driver enforces by killing it, not a suite that never
//! ends. The driver itself uses only `std::process`, so a bug in the crates under test cannot
//! take the harness down with it.

#![deny(unsafe_code)]

mod alloc_counter;
mod crash;
mod driver;
mod fuzz;
mod ledger;
mod outcome;
mod rng;
mod scenarios;

use std::process::ExitCode;

/// Counts the bytes allocated, so the fuzz scenario can prove the decoder's peak.
#[global_allocator]
static ALLOCATOR: alloc_counter::CountingAllocator = alloc_counter::CountingAllocator;

const USAGE: &str = "\
Usage: soak [--quick] [--only <substring>]... [--fuzz-minutes <m>]

Runs every scenario in a child process, checks its invariants, prints the table, and exits
non-zero if any column is not zero.
  --quick             small sizes, for `cargo xtask test` (well under a minute)
  --only <substring>  run only scenarios whose name contains it (repeatable)
  --fuzz-minutes <m>  run the codec fuzz for <m> minutes (default: 5 s quick, 60 s full)
  --list              print the scenarios and what each proves
";

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.first().map(String::as_str) == Some("--run-scenario") {
        return scenarios::run_in_this_process(&args[1..]);
    }
    match driver::Options::parse(&args) {
        Ok(None) => {
            print!("{USAGE}");
            ExitCode::SUCCESS
        }
        Ok(Some(options)) => driver::run(&options),
        Err(message) => {
            eprintln!("soak: {message}\n\n{USAGE}");
            ExitCode::from(2)
        }
    }
}
