//! Resource exhaustion: a low `RLIMIT_NOFILE`, then a low `RLIMIT_NPROC`. Every operation of
//! every crate must fail with an error that names the cause (no panic, no hang, no fd or child
//! left behind by the failed attempt), and work again once the limit is lifted.

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::time::Duration;

use proc_core::Process;
use proc_pool::Pool;
use proc_spawn::Command;
use rustix::process::{Resource, Rlimit, getrlimit, setrlimit};

use crate::outcome::{Baseline, Outcome};
use crate::scenarios::Config;

/// One operation under test: its name and a run that says `Ok` or the error's text.
type Operation = (&'static str, fn() -> Result<(), String>);

fn increment(x: u64) -> u64 {
    x + 1
}

/// Everything that creates fds, threads or processes, one crate call each.
const OPERATIONS: &[Operation] = &[
    ("proc_core::pipe", || {
        proc_core::pipe::<u8, u8>()
            .map(drop)
            .map_err(|e| e.to_string())
    }),
    ("Process::spawn+join", || {
        match Process::spawn(|| 7u8).and_then(Process::join) {
            Ok(7) => Ok(()),
            Ok(other) => Err(format!("wrong value {other}")),
            Err(e) => Err(e.to_string()),
        }
    }),
    ("Command::call (clone child)", || {
        match Command::new("/bin/true").call() {
            Ok(status) if status.success() => Ok(()),
            Ok(status) => Err(format!("wrong status {status}")),
            Err(e) => Err(e.to_string()),
        }
    }),
    ("Command::call (fork+exec)", || {
        match Command::new("/bin/true")
            .uid(rustix::process::getuid().as_raw())
            .call()
        {
            Ok(status) if status.success() => Ok(()),
            Ok(status) => Err(format!("wrong status {status}")),
            Err(e) => Err(e.to_string()),
        }
    }),
    ("Command::run capture", || {
        match Command::new("/bin/echo").arg("x").capture_output().run() {
            Ok(done) if done.stdout == b"x\n" => Ok(()),
            Ok(done) => Err(format!("wrong output {:?}", done.stdout)),
            Err(e) => Err(e.to_string()),
        }
    }),
    ("Pool::new+apply", || {
        let pool = Pool::new(2).map_err(|e| e.to_string())?;
        match pool.apply(increment, 41) {
            Ok(42) => Ok(()),
            Ok(other) => Err(format!("wrong value {other}")),
            Err(e) => Err(e.to_string()),
        }
    }),
];

/// Runs every operation once; each must succeed.
fn all_succeed(scenario: &str, when: &str, outcome: &mut Outcome) {
    for (name, operation) in OPERATIONS {
        match catch_unwind(AssertUnwindSafe(operation)) {
            Ok(Ok(())) => outcome.operations += 1,
            Ok(Err(err)) => outcome.violation(scenario, format!("{when}: {name}: {err}")),
            Err(_) => outcome.violation(scenario, format!("{when}: {name} panicked")),
        }
    }
}

/// Runs every operation under the current (low) limit: each may succeed or fail with an error
/// naming `cause`, never panic or leave an fd or child behind.
fn under_limit(
    scenario: &str,
    level: &str,
    causes: &[&str],
    baseline_fds: usize,
    outcome: &mut Outcome,
) {
    for (name, operation) in OPERATIONS {
        outcome.operations += 1;
        match catch_unwind(AssertUnwindSafe(operation)) {
            Ok(Ok(())) => {}
            Ok(Err(err)) if causes.iter().any(|cause| err.contains(cause)) => {
                outcome.faults += 1;
                eprintln!("soak: {scenario}: {level}: {name} refused: {err}");
            }
            Ok(Err(err)) => {
                outcome.violation(scenario, format!("{level}: {name}: unclear error: {err}"));
            }
            Err(_) => outcome.violation(scenario, format!("{level}: {name} panicked")),
        }
        let settled = test_support::eventually(Duration::from_secs(5), || {
            test_support::open_fd_count() <= baseline_fds && test_support::child_count() == 0
        });
        if !settled {
            outcome.violation(
                scenario,
                format!(
                    "{level}: {name} left {} fds (baseline {baseline_fds}) and {} children",
                    test_support::open_fd_count(),
                    test_support::child_count()
                ),
            );
        }
    }
}

/// The lowest fd number not open now (`open` always takes the lowest free one). Under a limit
/// of `n`, new fds may only take free numbers below `n` (fds above it stay open and usable), so
/// a limit of `lowest_free_fd() + k` leaves at most `k` fds to open.
fn lowest_free_fd() -> u64 {
    use std::os::fd::AsRawFd;
    std::fs::File::open("/dev/null")
        .ok()
        .and_then(|probe| u64::try_from(probe.as_raw_fd()).ok())
        .unwrap_or(3)
}

/// Lowers the soft limit of `resource` to `soft` (the hard limit stays, so it can be lifted).
fn set_soft(resource: Resource, soft: u64, original: &Rlimit) -> std::io::Result<()> {
    setrlimit(
        resource,
        Rlimit {
            current: Some(soft),
            maximum: original.maximum,
        },
    )
    .map_err(std::io::Error::from)
}

/// `RLIMIT_NOFILE` from "no fd left at all" to a dozen spare, then lifted.
pub(crate) fn fd_exhaustion(config: &Config) -> Outcome {
    const NAME: &str = "fd-exhaustion";
    let mut outcome = Outcome::default();
    exhaust(
        NAME,
        Resource::Nofile,
        &["Too many open files", "os error 24"],
        &mut outcome,
        || {
            let top = lowest_free_fd();
            (0..config.size(24, 8))
                .map(|spare| {
                    (
                        top + spare,
                        format!("RLIMIT_NOFILE {} ({spare} spare)", top + spare),
                    )
                })
                .collect()
        },
    );
    outcome
}

/// The walk both exhaustion scenarios share: checks that everything works, takes the
/// baselines, sets the soft limit of `resource` to each of the `levels` (limit and its name,
/// computed after the baselines) checking that the crates refuse with one of `errors` and
/// leak nothing, then lifts the limit and checks that everything works again.
fn exhaust(
    name: &'static str,
    resource: Resource,
    errors: &[&str],
    outcome: &mut Outcome,
    levels: impl FnOnce() -> Vec<(u64, String)>,
) {
    all_succeed(name, "before", outcome);
    test_support::eventually(Duration::from_secs(5), || test_support::child_count() == 0);
    let baseline = Baseline::take();
    let baseline_fds = test_support::open_fd_count();
    let original = getrlimit(resource);
    for (limit, level) in levels() {
        if let Err(err) = set_soft(resource, limit, &original) {
            outcome.violation(name, format!("setrlimit: {err}"));
            break;
        }
        under_limit(name, &level, errors, baseline_fds, outcome);
    }
    if let Err(err) = setrlimit(resource, original) {
        outcome.violation(name, format!("lifting the limit: {err}"));
    }
    all_succeed(name, "after lifting the limit", outcome);
    baseline.check(outcome);
}

/// Threads and processes of this process (Linux counts both against `RLIMIT_NPROC`).
fn own_tasks() -> u64 {
    std::fs::read_dir("/proc/self/task").map_or(1, |entries| entries.count() as u64)
}

/// `RLIMIT_NPROC` at 1 (no new process or thread at all), then a few above what this process
/// has; lifted. Root is exempt from the limit, so the driver runs this as `nobody` then.
pub(crate) fn nproc_exhaustion(config: &Config) -> Outcome {
    const NAME: &str = "nproc-exhaustion";
    let mut outcome = Outcome::default();
    if rustix::process::geteuid().is_root() {
        outcome.violation(NAME, "running as root, whom RLIMIT_NPROC does not bind");
        return outcome;
    }
    exhaust(
        NAME,
        Resource::Nproc,
        &["Resource temporarily unavailable", "os error 11"],
        &mut outcome,
        || {
            let mut levels = vec![1];
            levels.extend((1..=config.size(6, 3)).map(|extra| own_tasks() + extra));
            levels
                .into_iter()
                .map(|limit| (limit, format!("RLIMIT_NPROC {limit}")))
                .collect()
        },
    );
    outcome
}
