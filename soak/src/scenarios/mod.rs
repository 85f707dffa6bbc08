//! The scenarios, one module per family, and the entry point a scenario child runs.

mod communicate;
mod cycles;
mod eintr;
mod limits;
mod pool;
mod security;
mod sync;

use std::process::ExitCode;
use std::time::Duration;

use crate::outcome::Outcome;

pub(crate) use security::SECRET_VAR;

/// How big a run is.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Config {
    /// The short form run by `cargo xtask test`.
    pub(crate) quick: bool,
    /// How long the codec fuzz runs.
    pub(crate) fuzz_for: Duration,
}

impl Config {
    /// `full` normally, `quick` under `--quick`.
    pub(crate) fn size(&self, full: u64, quick: u64) -> u64 {
        if self.quick { quick } else { full }
    }
}

/// One scenario: its name in the table, what it proves, how to run it.
#[derive(Debug)]
pub(crate) struct Scenario {
    pub(crate) name: &'static str,
    pub(crate) proves: &'static str,
    run: fn(&Config) -> Outcome,
    /// The driver kills the scenario after this (full size; quick runs get a third, at least
    /// 30 s): "hangs" in the table.
    deadline: Duration,
    /// Runs as an unprivileged user when the driver is root (rlimits do not bind root).
    pub(crate) unprivileged: bool,
}

impl Scenario {
    /// The driver's deadline for this scenario.
    pub(crate) fn deadline(&self, quick: bool, fuzz_minutes: Option<f64>) -> Duration {
        let base = if quick {
            (self.deadline / 3).max(Duration::from_secs(30))
        } else {
            self.deadline
        };
        match fuzz_minutes {
            Some(minutes) if self.name == "codec-fuzz" => {
                base + Duration::from_secs_f64(minutes * 60.0)
            }
            _ => base,
        }
    }
}

/// Every scenario, in the order the table lists them.
pub(crate) const ALL: &[Scenario] = &[
    Scenario {
        name: "pool-kill-storm",
        proves: "10,000 tasks while a thread SIGKILLs a random worker every few ms: each task ends with its value or WorkerDied, the pool ends with its full worker count",
        run: pool::kill_storm,
        deadline: Duration::from_secs(300),
        unprivileged: false,
    },
    Scenario {
        name: "pool-kill-storm-forkserver",
        proves: "the kill storm on a pool whose workers proc-core's fork server forks (StartMethod::ForkServer): the same invariants, exit statuses reported by the server",
        run: pool::kill_storm_fork_server,
        deadline: Duration::from_secs(300),
        unprivileged: false,
    },
    Scenario {
        name: "pool-mixed-faults",
        proves: "tasks that panic, abort, segfault, overrun their timeout or return oversize values, mixed at random: each gets exactly its own error, every other task its value",
        run: pool::mixed_faults,
        deadline: Duration::from_secs(300),
        unprivileged: false,
    },
    Scenario {
        name: "sync-kill-storm",
        proves: "4 producers, 4 consumers and 2 lock holders SIGKILLed at random while items flow through one bounded Queue: every item put is got once, in its producer's order, but the one a killed consumer was taking; a clean acquire never sees a half-done update; owner-died only after a holder died",
        run: sync::kill_storm,
        deadline: Duration::from_secs(300),
        unprivileged: false,
    },
    Scenario {
        name: "process-cycles",
        proves: "10,000 Process spawn/join cycles: same open fds and no child before and after",
        run: cycles::process_cycles,
        deadline: Duration::from_secs(300),
        unprivileged: false,
    },
    Scenario {
        name: "subprocess-cycles",
        proves: "10,000 subprocess spawn/wait cycles (both spawn paths, piped and not): same open fds and no child before and after",
        run: cycles::subprocess_cycles,
        deadline: Duration::from_secs(300),
        unprivileged: false,
    },
    Scenario {
        name: "fork-busy-threads",
        proves: "1,000 forks from a parent whose 8 threads allocate, lock and print: no child deadlocks",
        run: cycles::fork_busy_threads,
        deadline: Duration::from_secs(300),
        unprivileged: false,
    },
    Scenario {
        name: "eintr-storm",
        proves: "a 1 ms SIGALRM handler without SA_RESTART while waits, communicate, pipe reads and pool results run: no spurious error, no lost byte",
        run: eintr::storm,
        deadline: Duration::from_secs(180),
        unprivileged: false,
    },
    Scenario {
        name: "fd-exhaustion",
        proves: "a low RLIMIT_NOFILE: every operation fails with a clear error (no panic, no fd leaked), and works again once the limit is lifted",
        run: limits::fd_exhaustion,
        deadline: Duration::from_secs(120),
        unprivileged: false,
    },
    Scenario {
        name: "nproc-exhaustion",
        proves: "a low RLIMIT_NPROC (run as nobody when root): every spawn fails with a clear error (no panic), and works again once the limit is lifted",
        run: limits::nproc_exhaustion,
        deadline: Duration::from_secs(120),
        unprivileged: true,
    },
    Scenario {
        name: "communicate-faults",
        proves: "communicate with children that close stdin early, die mid-write, or write 1 GiB to stdout and stderr at once: no deadlock, every byte kept",
        run: communicate::faults,
        deadline: Duration::from_secs(300),
        unprivileged: false,
    },
    Scenario {
        name: "security",
        proves: "no parent fd reaches an exec'd child unless passed; the environment is exactly the one asked for; no shell unless asked; pool pipes never reach programs tasks run",
        run: security::checks,
        deadline: Duration::from_secs(120),
        unprivileged: false,
    },
    Scenario {
        name: "codec-fuzz",
        proves: "arbitrary bytes and length prefixes into the frame decoder and FrameBuffer: no panic, no allocation past the bound",
        run: crate::fuzz::run,
        deadline: Duration::from_secs(120),
        unprivileged: false,
    },
];

/// Becomes `nobody` when running as root: root is exempt from `RLIMIT_NPROC`, so the
/// process-count scenario would prove nothing. Done in this process, not by the driver's exec,
/// so the binary need not be reachable by `nobody` (a checkout under `/root` is not). Must run
/// while this process has one thread: the raw `setuid` family changes the calling thread only.
#[cfg(target_os = "linux")]
fn drop_root() -> std::io::Result<()> {
    use rustix::process::{DumpableBehavior, Gid, Uid, set_dumpable_behavior};
    use rustix::thread::{set_thread_groups, set_thread_res_gid, set_thread_res_uid};
    /// `nobody` and `nogroup` on Debian-like systems; any unprivileged ids would do.
    const NOBODY: u32 = 65_534;
    if !rustix::process::geteuid().is_root() {
        return Ok(());
    }
    let tasks = std::fs::read_dir("/proc/self/task").map_or(0, Iterator::count);
    if tasks != 1 {
        return Err(std::io::Error::other(format!(
            "{tasks} threads: the uid change would only reach one"
        )));
    }
    let (uid, gid) = (Uid::from_raw(NOBODY), Gid::from_raw(NOBODY));
    set_thread_groups(&[])?;
    set_thread_res_gid(gid, gid, gid)?;
    set_thread_res_uid(uid, uid, uid)?;
    // A uid change makes the process undumpable, which hands /proc/self (fd counts) to root.
    set_dumpable_behavior(DumpableBehavior::Dumpable)?;
    Ok(())
}

#[cfg(not(target_os = "linux"))]
fn drop_root() -> std::io::Result<()> {
    Ok(())
}

/// `soak --run-scenario <name> [--quick] [--fuzz-minutes <m>]`: runs one scenario in this
/// process and prints its row.
pub(crate) fn run_in_this_process(args: &[String]) -> ExitCode {
    let Some(name) = args.first() else {
        eprintln!("soak: --run-scenario needs a name");
        return ExitCode::from(2);
    };
    let Some(scenario) = ALL.iter().find(|s| s.name == name.as_str()) else {
        eprintln!("soak: no scenario named {name}");
        return ExitCode::from(2);
    };
    let quick = args.iter().any(|a| a == "--quick");
    let fuzz_minutes = args
        .iter()
        .position(|a| a == "--fuzz-minutes")
        .and_then(|i| args.get(i + 1))
        .and_then(|m| m.parse::<f64>().ok());
    let fuzz_for = match fuzz_minutes {
        Some(minutes) => Duration::from_secs_f64(minutes * 60.0),
        None if quick => Duration::from_secs(5),
        None => Duration::from_secs(60),
    };
    let config = Config { quick, fuzz_for };
    if scenario.unprivileged {
        if let Err(err) = drop_root() {
            eprintln!("soak: {}: cannot drop root: {err}", scenario.name);
            return ExitCode::FAILURE;
        }
    }
    let outcome = (scenario.run)(&config);
    println!("{}", outcome.to_line());
    if outcome.passed() {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}
