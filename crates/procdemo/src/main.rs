//! `procdemo`: the seed programs of Python's process APIs, rewritten on prockit's crates.
//!
//! `procdemo` or `procdemo all` runs every demo; `procdemo <name>` runs one. Each demo prints
//! what its Python original prints, with real pids.

// All real unsafe lives in fork-sys; the fork demo's one call of `fork_sys::fork` is allowed
// where it stands.
#![deny(unsafe_code)]

use std::process::ExitCode;

mod fork_demo;
mod pool_demo;
mod process_demo;
mod queue_demo;
mod start_methods_demo;
mod subprocess_demo;

/// A demo: its name on the command line, a one-line summary, and the code.
struct Demo {
    name: &'static str,
    summary: &'static str,
    run: fn() -> Result<(), Box<dyn std::error::Error>>,
}

const DEMOS: &[Demo] = &[
    Demo {
        name: "fork",
        summary: "os.fork: a parent and its child each say who they are",
        run: fork_demo::run,
    },
    Demo {
        name: "process",
        summary: "multiprocessing.Process: run a function in a child and join it",
        run: process_demo::run,
    },
    Demo {
        name: "pool",
        summary: "multiprocessing.Pool: five tasks with random sleeps on four workers",
        run: pool_demo::run,
    },
    Demo {
        name: "queue",
        summary: "multiprocessing.Queue: a writer process puts A, B, C; a reader process gets them",
        run: queue_demo::run,
    },
    Demo {
        name: "start-methods",
        summary: "start methods: one task under fork, forkserver and spawn, with the pids",
        run: start_methods_demo::run,
    },
    Demo {
        name: "subprocess",
        summary: "subprocess.call: run a program, print its exit code (-- CMD ARGS… for another)",
        run: subprocess_demo::run,
    },
];

fn main() -> ExitCode {
    // First: in a child started by the `spawn` method (or the fork server) this never
    // returns; here it returns at once and makes `forkserver` the pools' default.
    proc_core::init();
    let arg = std::env::args().nth(1);
    // A demo run alone prints exactly what its Python seed prints; `all` adds a header per demo.
    let with_headers = matches!(arg.as_deref(), None | Some("all"));
    let selected: Vec<&Demo> = match arg.as_deref() {
        None | Some("all") => DEMOS.iter().collect(),
        Some("-h" | "--help" | "help") => {
            print_usage();
            return ExitCode::SUCCESS;
        }
        Some(name) => match DEMOS.iter().find(|demo| demo.name == name) {
            Some(demo) => vec![demo],
            None => {
                eprintln!("procdemo: no demo named {name:?}");
                print_usage();
                return ExitCode::from(2);
            }
        },
    };
    for (i, demo) in selected.iter().enumerate() {
        if with_headers {
            if i > 0 {
                println!();
            }
            println!("== {}: {}", demo.name, demo.summary);
        }
        if let Err(err) = (demo.run)() {
            eprintln!("procdemo {}: {err}", demo.name);
            return ExitCode::FAILURE;
        }
    }
    ExitCode::SUCCESS
}

fn print_usage() {
    eprintln!("usage: procdemo [all | <demo>]\n\ndemos:");
    for demo in DEMOS {
        eprintln!("  {:<10} {}", demo.name, demo.summary);
    }
}
