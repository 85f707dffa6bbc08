//! prockit's benchmark harness, run by `cargo xtask bench [--quick] [--no-write] [--filter S]`.
//!
//! It measures what prockit's crates are built on and what users would otherwise use, side by
//! side in one run:
//!
//! - `fork+_exit+waitpid`: creating and reaping a process (raw fork-sys, `ChildHandle`, Python);
//! - `spawn /bin/true`: running a program (std's `Command`, fork+exec, Python's `subprocess`);
//! - `pipe ping-pong 8 B`: a small message to another process and back (Rust, Python);
//! - `pipe throughput`: bulk bytes to another process (default and 1 MiB pipes);
//! - `start methods: ...`: a child and a pool worker restart under `Fork`, `ForkServer` and
//!   `Spawn`, from a small and a 1 GiB parent (Python's start methods; procspawn with
//!   `--features procspawn`).
//!
//! Each scenario has a *floor*, the cheapest known way of doing its operation, and reports every
//! other contender as a ratio to it. Contenders run **interleaved**, one batch each per round,
//! so that machine noise (other processes, CPU frequency, caches) hits all of them alike instead
//! of skewing whichever happened to run during a noisy stretch; the figures are the median and
//! the p10–p90 spread over the rounds. Results are printed and written to docs/BENCHMARKS.md
//! together with a description of the machine.
//!
//! The binary is single-threaded on purpose: its forked children could then do anything, though
//! they only read, write and `_exit`. Every child is reaped, on error paths too.

use std::process::ExitCode;
use std::time::Instant;

use harness::{BenchResult, Rounds};
use python::Python;
use report::{Machine, RunInfo};
use scenarios::Context;

mod child;
mod cpu;
mod harness;
mod python;
mod report;
mod scenarios;

const USAGE: &str = "\
usage: cargo xtask bench [--quick] [--no-write] [--filter SUBSTRING]

  --quick            fewer rounds and smaller batches: a smoke run of a few seconds
  --no-write         print the tables only; do not rewrite docs/BENCHMARKS.md
  --filter SUBSTRING run only the scenarios whose name contains SUBSTRING
  --help             print this help

The `start methods` scenarios show procspawn's rows only in a build with the bench feature
`procspawn`: cargo run --release -p bench --features procspawn -- --filter \"start methods\"";

/// The command line.
#[derive(Debug, Default)]
struct Options {
    quick: bool,
    no_write: bool,
    filter: Option<String>,
    help: bool,
}

impl Options {
    fn parse(args: impl IntoIterator<Item = String>) -> BenchResult<Options> {
        let mut options = Options::default();
        let mut args = args.into_iter();
        while let Some(arg) = args.next() {
            match arg.as_str() {
                "--quick" => options.quick = true,
                "--no-write" => options.no_write = true,
                "--help" | "-h" => options.help = true,
                "--filter" => {
                    let value = args.next().ok_or("--filter needs a value")?;
                    options.filter = Some(value);
                }
                other => match other.strip_prefix("--filter=") {
                    Some(value) => options.filter = Some(value.to_owned()),
                    None => return Err(format!("unknown argument {other:?}\n{USAGE}").into()),
                },
            }
        }
        Ok(options)
    }

    /// The flags as given, for the document's header.
    fn flags(&self) -> Vec<String> {
        let mut flags = Vec::new();
        if self.quick {
            flags.push("--quick".to_owned());
        }
        if let Some(filter) = &self.filter {
            flags.push(format!("--filter {filter:?}"));
        }
        flags
    }
}

fn main() -> ExitCode {
    // First, before anything else: a child this binary started by exec for a `Spawn` or
    // `ForkServer` start method (proc-core) or for procspawn runs its function here and exits.
    proc_core::init();
    #[cfg(feature = "procspawn")]
    procspawn::init();
    match run() {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("bench: error: {err}");
            ExitCode::FAILURE
        }
    }
}

fn run() -> BenchResult<()> {
    let options = Options::parse(std::env::args().skip(1))?;
    if options.help {
        println!("{USAGE}");
        return Ok(());
    }
    let started = Instant::now();
    let cx = Context {
        quick: options.quick,
        python: Python::detect(),
    };
    let mut scenarios = scenarios::ALL
        .iter()
        .map(|build| build(&cx))
        .collect::<BenchResult<Vec<_>>>()?;
    let names: Vec<String> = scenarios
        .iter()
        .map(|s| format!("{:?}", s.name()))
        .collect();
    if let Some(filter) = &options.filter {
        scenarios.retain(|scenario| scenario.name().contains(filter.as_str()));
        if scenarios.is_empty() {
            return Err(format!(
                "no scenario matches {filter:?}; the scenarios are {}",
                names.join(", ")
            )
            .into());
        }
    }
    let rounds = if options.quick {
        Rounds {
            warmup: 1,
            measured: 5,
        }
    } else {
        Rounds {
            warmup: 2,
            measured: 15,
        }
    };

    let machine = Machine::detect();
    println!("machine: {}", machine.summary());
    match &cx.python {
        Some(python) => println!("python: {}", python.version()),
        None => println!("note: python3 not found on PATH; the Python contenders are skipped"),
    }
    println!(
        "{} warm-up + {} measured rounds, contenders interleaved\n",
        rounds.warmup, rounds.measured
    );

    let mut reports = Vec::new();
    for scenario in scenarios {
        let report = harness::run(scenario, rounds)?;
        println!("{}", report.text_table());
        reports.push(report);
    }
    let took = started.elapsed();
    println!("took {:.1} s", took.as_secs_f64());

    if !options.no_write {
        let path = report::document_path();
        let info = RunInfo {
            flags: options.flags(),
            rounds,
            took,
            python: cx.python.as_ref().map(|p| p.version().to_owned()),
        };
        report::write(&path, &machine, &info, &reports)?;
        println!("wrote {}", path.display());
    }
    Ok(())
}
