//! The `cluster` leg of `cargo xtask test`: bring the cluster up, check it does what the pool
//! launcher will need (an idle node, a fast `srun`, binary stdin forwarded byte-exact), run the
//! crates' `cluster_` tests against it, and take it down again.
//!
//! Without the Slurm and munge programs, or without root, the leg is skipped and says why; it
//! never fails a run for what the machine lacks.

use std::io::Read as _;
use std::path::Path;
use std::time::{Duration, Instant};

use super::client::{Programs, SINFO_NODE_ARGS, node_state, run_bounded, takes_jobs};
use super::config::{HostFacts, io_error};
use super::{CLIENT_TIMEOUT, SRUN_TRUE, Up, down, effective_uid, up};
use crate::error::Error;
use crate::workspace::{CargoInvocation, Workspace};

/// Set to `1` for the crates' `cluster_` tests: a cluster is up and `srun` works.
pub(crate) const CLUSTER_ENV: &str = "PROCKIT_SLURM";

/// The substring that selects a test for this leg (and only for it: the test legs run it too,
/// without [`CLUSTER_ENV`], where it should return early).
pub(crate) const TEST_FILTER: &str = "cluster_";

/// Bytes sent through `srun cat`: enough that a launcher that mangles or truncates binary
/// stdin, or buffers it all, shows it.
const ROUND_TRIP_BYTES: usize = 20_000_000;

/// How many `srun -N1 -n1 true` runs the latency figure is the median of.
const LATENCY_RUNS: usize = 5;

/// How the leg ended when it did not fail.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum LegEnd {
    /// Every check passed.
    Ran,
    /// The machine cannot run a cluster; the reason, for the table.
    Skipped(String),
}

/// What the leg does, for the line printed before it runs.
pub(crate) fn leg_description(tests: &CargoInvocation) -> String {
    format!(
        "cargo xtask cluster up; sinfo, srun latency, 20 MB through srun cat; {tests}; \
         cargo xtask cluster down"
    )
}

/// Runs the leg; `tests` is the cargo command that runs the crates' `cluster_` tests.
///
/// A cluster that was already up (started by an earlier `cargo xtask cluster up`) is used and
/// left up; one the leg started is taken down even when a check failed.
pub(crate) fn run_leg(workspace: &Workspace, tests: &CargoInvocation) -> Result<LegEnd, Error> {
    let missing = Programs::find().err().unwrap_or_default();
    if let Some(reason) = skip_reason(&missing, effective_uid()) {
        println!("cluster: SKIPPED: {reason}");
        return Ok(LegEnd::Skipped(reason));
    }
    let how = up()?;
    let checked = check(workspace, tests);
    match how {
        Up::Started => {
            let stopped = down();
            checked.and(stopped)?;
        }
        Up::Reused => {
            println!("cluster: left up (it was up before the leg; `cargo xtask cluster down`)");
            checked?;
        }
    }
    Ok(LegEnd::Ran)
}

/// Why the leg cannot run here, or `None` when it can: `missing` are the programs not found,
/// `uid` the effective uid (`None` when unknown).
fn skip_reason(missing: &[&str], uid: Option<u32>) -> Option<String> {
    if !missing.is_empty() {
        return Some(format!(
            "Slurm/munge not installed (no {}); `.ci/run` installs them as root on \
             Debian/Ubuntu: apt-get install slurm-wlm munge",
            missing.join(", ")
        ));
    }
    match uid {
        Some(0) => None,
        Some(uid) => Some(format!(
            "not root (uid {uid}); the cluster writes /etc/slurm and /etc/munge"
        )),
        None => Some("cannot tell whether we are root (no /proc/self/status)".to_owned()),
    }
}

/// The smoke checks and the crates' tests, on a cluster that is up.
fn check(workspace: &Workspace, tests: &CargoInvocation) -> Result<(), Error> {
    let programs = Programs::require("cluster leg")?;
    let host = HostFacts::read()?;

    // The last `srun true` of `up` may still be completing: give the node a moment to be idle.
    // A node busy with someone else's jobs (a shared machine) still passes if it takes jobs:
    // the partition oversubscribes, so ours run beside them.
    let deadline = Instant::now() + Duration::from_secs(3);
    loop {
        let finished =
            run_bounded(&programs.sinfo, &SINFO_NODE_ARGS, None, CLIENT_TIMEOUT)?.success()?;
        let text = String::from_utf8_lossy(&finished.stdout);
        let state = node_state(&text, &host.short_name).unwrap_or("not listed");
        if state == "idle" {
            println!("cluster: sinfo: node {} idle", host.short_name);
            break;
        }
        if Instant::now() >= deadline {
            if takes_jobs(state) {
                println!(
                    "cluster: sinfo: node {} {state}, not idle: other jobs run on it (squeue \
                     lists them); going on, the partition oversubscribes",
                    host.short_name
                );
                break;
            }
            return Err(Error::Cluster(format!(
                "cluster leg: sinfo says node {} is {state}, not idle",
                host.short_name
            )));
        }
        std::thread::sleep(Duration::from_millis(100));
    }

    let mut latencies = Vec::with_capacity(LATENCY_RUNS);
    for _ in 0..LATENCY_RUNS {
        let finished = run_bounded(&programs.srun, &SRUN_TRUE, None, CLIENT_TIMEOUT)?.success()?;
        latencies.push(finished.elapsed);
    }
    println!(
        "cluster: srun -N1 -n1 true: {}",
        describe_latencies(&mut latencies)
    );

    let urandom = Path::new("/dev/urandom");
    let mut input = vec![0; ROUND_TRIP_BYTES];
    std::fs::File::open(urandom)
        .and_then(|mut file| file.read_exact(&mut input))
        .map_err(io_error("read", urandom))?;
    let finished = run_bounded(
        &programs.srun,
        &["-N1", "-n1", "cat"],
        Some(&input),
        Duration::from_secs(60),
    )?
    .success()?;
    compare_round_trip(&input, &finished.stdout)?;
    let seconds = finished.elapsed.as_secs_f64();
    println!(
        "cluster: {} bytes of random binary through srun -N1 -n1 cat: byte-exact, {seconds:.2}s \
         ({:.0} MB/s)",
        input.len(),
        input.len() as f64 / 1e6 / seconds.max(1e-9)
    );

    println!("cluster: {tests}");
    let status = workspace.status(tests)?;
    if status.success() {
        Ok(())
    } else {
        Err(Error::Failed {
            command: tests.to_string(),
            status,
        })
    }
}

/// `median 52 ms (min 48, max 70, 5 runs)`; sorts `latencies`.
fn describe_latencies(latencies: &mut [Duration]) -> String {
    latencies.sort_unstable();
    let ms = |duration: &Duration| duration.as_millis();
    match (
        latencies.first(),
        latencies.get(latencies.len() / 2),
        latencies.last(),
    ) {
        (Some(min), Some(median), Some(max)) => format!(
            "median {} ms (min {}, max {}, {} runs)",
            ms(median),
            ms(min),
            ms(max),
            latencies.len()
        ),
        _ => "no runs".to_owned(),
    }
}

/// Fails unless `output` is exactly `input`, naming the first byte that differs.
fn compare_round_trip(input: &[u8], output: &[u8]) -> Result<(), Error> {
    if input == output {
        return Ok(());
    }
    let first_difference = input
        .iter()
        .zip(output)
        .position(|(sent, received)| sent != received)
        .unwrap_or_else(|| input.len().min(output.len()));
    Err(Error::Cluster(format!(
        "cluster leg: srun -N1 -n1 cat returned {} bytes for {} sent, differing from byte {}",
        output.len(),
        input.len(),
        first_difference
    )))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn skips_without_the_programs_or_without_root() {
        let missing = skip_reason(&["srun", "munged"], Some(0));
        assert!(
            missing.as_deref().is_some_and(
                |reason| reason.starts_with("Slurm/munge not installed (no srun, munged)")
            ),
            "{missing:?}"
        );
        let not_root = skip_reason(&[], Some(1000));
        assert!(
            not_root
                .as_deref()
                .is_some_and(|reason| reason.starts_with("not root (uid 1000)")),
            "{not_root:?}"
        );
        assert!(skip_reason(&[], None).is_some());
        assert_eq!(skip_reason(&[], Some(0)), None);
        // Missing programs are the reason given even when we are not root either.
        assert!(
            skip_reason(&["srun"], Some(1000))
                .is_some_and(|reason| reason.starts_with("Slurm/munge not installed"))
        );
    }

    #[test]
    fn round_trip_comparison_names_the_first_difference() {
        assert!(compare_round_trip(b"abc", b"abc").is_ok());
        let message = |output: &[u8]| {
            compare_round_trip(b"abcdef", output)
                .err()
                .map(|error| error.to_string())
                .unwrap_or_default()
        };
        assert!(message(b"abXdef").ends_with("6 bytes for 6 sent, differing from byte 2"));
        assert!(message(b"abc").ends_with("3 bytes for 6 sent, differing from byte 3"));
        assert!(message(b"abcdefg").ends_with("7 bytes for 6 sent, differing from byte 6"));
    }

    #[test]
    fn latencies_are_summarised_by_their_median() {
        let mut runs = [80, 50, 60, 55, 300].map(Duration::from_millis);
        assert_eq!(
            describe_latencies(&mut runs),
            "median 60 ms (min 50, max 300, 5 runs)"
        );
        assert_eq!(describe_latencies(&mut []), "no runs");
    }
}
