//! `communicate` against children that misbehave: close stdin early, die in the middle of
//! writing, or write 1 GiB to stdout and stderr at the same time. No deadlock, no panic, and
//! every byte written before a death is kept.

use std::time::{Duration, Instant};

use proc_spawn::{Command, Error, ExitStatus, Signal, Stdio};

use crate::outcome::{Baseline, Outcome};
use crate::rng::Rng;
use crate::scenarios::Config;

const NAME: &str = "communicate-faults";

/// A `communicate` that outlives this is a hang.
const DEADLINE: Duration = Duration::from_secs(120);

/// Starts `sh -c script` with all three streams piped.
fn spawn_sh(script: &str) -> Result<proc_spawn::Child, String> {
    Command::new("/bin/sh")
        .args(["-c", script])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| e.to_string())
}

/// Starts `sh -c script` with all three streams piped and communicates `input`; returns
/// stdout, stderr and the status, or a description of what went wrong.
fn communicate(script: &str, input: &[u8]) -> Result<(Vec<u8>, Vec<u8>, ExitStatus), String> {
    let mut child = spawn_sh(script)?;
    let started = Instant::now();
    let (out, err) = child
        .communicate(Some(input), Some(DEADLINE))
        .map_err(|e| format!("communicate after {:?}: {e}", started.elapsed()))?;
    let status = child.wait().map_err(|e| e.to_string())?;
    Ok((out, err, status))
}

fn killed(status: ExitStatus) -> bool {
    matches!(status, ExitStatus::Signaled { signal, .. } if signal == Signal::KILL)
}

/// Says how many timed-out calls a sliced round took (the first round only: they vary).
fn outcome_timeouts(round: u64, timeouts: u64) {
    if round == 0 {
        eprintln!("soak: {NAME}: cat of 4 MiB took {timeouts} timed-out communicate calls");
    }
}

/// One case: its name, and whether the result is what it must be.
fn check(
    outcome: &mut Outcome,
    case: &str,
    result: Result<(Vec<u8>, Vec<u8>, ExitStatus), String>,
    expect: impl FnOnce(&[u8], &[u8], ExitStatus) -> bool,
) {
    outcome.faults += 1;
    match result {
        Ok((out, err, status)) if expect(&out, &err, status) => outcome.operations += 1,
        Ok((out, err, status)) => outcome.violation(
            NAME,
            format!(
                "{case}: got {} bytes of stdout, {} of stderr, {status}",
                out.len(),
                err.len()
            ),
        ),
        Err(err) if err.contains("timed out") || err.contains("timeout") => {
            outcome.hang(NAME, format!("{case}: {err}"));
        }
        Err(err) => outcome.violation(NAME, format!("{case}: {err}")),
    }
}

/// Calls `communicate` with a short timeout until it returns, keeping what each timed-out call
/// read (the error holds it; the next call continues the input where the last one stopped).
/// Returns everything read, the status, and how many calls timed out.
fn communicate_in_slices(
    script: &str,
    input: &[u8],
    slice: Duration,
) -> Result<(Vec<u8>, Vec<u8>, ExitStatus, u64), String> {
    let mut child = spawn_sh(script)?;
    let started = Instant::now();
    let (mut out, mut err, mut timeouts) = (Vec::new(), Vec::new(), 0);
    loop {
        match child.communicate(Some(input), Some(slice)) {
            Ok((more_out, more_err)) => {
                out.extend(more_out);
                err.extend(more_err);
                break;
            }
            Err(Error::TimeoutExpired { stdout, stderr, .. }) => {
                out.extend(stdout);
                err.extend(stderr);
                timeouts += 1;
                if started.elapsed() > DEADLINE {
                    let _ = child.kill();
                    return Err(format!("still running after {timeouts} timeouts: timeout"));
                }
            }
            Err(other) => return Err(other.to_string()),
        }
    }
    let status = child.wait().map_err(|e| e.to_string())?;
    Ok((out, err, status, timeouts))
}

/// The scenario; see the module docs.
pub(crate) fn faults(config: &Config) -> Outcome {
    let rounds = config.size(20, 3);
    let flood: u64 = config.size(1 << 30, 32 << 20);
    let mut outcome = Outcome::default();
    let _ = communicate("true", b"");
    let baseline = Baseline::take();
    let mut rng = Rng::new(0x636f_6d6d);
    let input = rng.bytes(8 << 20);

    for round in 0..rounds {
        // Closes stdin at once, then keeps writing: the EPIPE on our side is not an error.
        check(
            &mut outcome,
            "closes stdin early",
            communicate("exec 0<&-; printf started; sleep 0.02; printf done", &input),
            |out, err, status| out == b"starteddone" && err.is_empty() && status.success(),
        );
        // Reads 10 bytes of 8 MiB and exits.
        check(
            &mut outcome,
            "head -c 10 of 8 MiB",
            communicate("head -c 10", &input),
            |out, _, status| out == &input[..10] && status.success(),
        );
        // Dies of SIGKILL after writing an odd number of bytes to both streams.
        let size = 100_000 + round * 7_919;
        let script = format!(
            "head -c {size} /dev/zero; head -c {} /dev/zero >&2; kill -9 $$",
            size / 3
        );
        check(
            &mut outcome,
            "dies mid-write",
            communicate(&script, b""),
            |out, err, status| {
                out.len() as u64 == size
                    && err.len() as u64 == size / 3
                    && out.iter().chain(err).all(|b| *b == 0)
                    && killed(status)
            },
        );
        // Echoes part of its input, then dies while we are still writing the rest.
        check(
            &mut outcome,
            "dies mid-read",
            communicate("head -c 1000000; kill -9 $$", &input),
            |out, _, status| out == &input[..1_000_000] && killed(status),
        );
    }
    // Input and output across many timed-out calls: nothing lost, nothing doubled.
    for round in 0..rounds {
        let sliced = communicate_in_slices("cat", &input[..4 << 20], Duration::from_millis(1));
        check(
            &mut outcome,
            "cat across timeouts",
            sliced.map(|(out, err, status, timeouts)| {
                outcome_timeouts(round, timeouts);
                (out, err, status)
            }),
            |out, err, status| out == &input[..4 << 20] && err.is_empty() && status.success(),
        );
        let script = "i=0; while [ $i -lt 40 ]; do printf '%05d\\n' $i; printf e >&2; \
                      i=$((i+1)); sleep 0.002; done; kill -9 $$";
        let want: Vec<u8> = (0..40)
            .flat_map(|i| format!("{i:05}\n").into_bytes())
            .collect();
        check(
            &mut outcome,
            "a slow writer that dies, across timeouts",
            communicate_in_slices(script, b"", Duration::from_millis(3))
                .map(|(out, err, status, _)| (out, err, status)),
            |out, err, status| out == want.as_slice() && err == [b'e'; 40] && killed(status),
        );
    }
    // Floods stdout and stderr at once: a reader that drains one stream at a time deadlocks.
    let script = format!("head -c {flood} /dev/zero & head -c {flood} /dev/zero >&2; wait");
    let started = Instant::now();
    check(
        &mut outcome,
        "floods stdout and stderr",
        communicate(&script, b""),
        |out, err, status| {
            out.len() as u64 == flood
                && err.len() as u64 == flood
                && out.iter().chain(err).all(|b| *b == 0)
                && status.success()
        },
    );
    eprintln!(
        "soak: {NAME}: {} MiB on each stream in {:.1}s",
        flood >> 20,
        started.elapsed().as_secs_f64()
    );
    baseline.check(&mut outcome);
    outcome
}
