//! The programs the cluster needs (found on `PATH` or in the sbin directories), running a
//! command under a deadline with its output captured, and reading `sinfo`'s answer.

use std::ffi::OsStr;
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use super::daemons::signal;
use crate::error::Error;

/// Where the daemons usually are, searched after `PATH` because a non-login root shell (or a
/// CI runner) may not have them on it.
const SBIN_DIRS: [&str; 3] = ["/usr/sbin", "/sbin", "/usr/local/sbin"];

/// The absolute paths of every program the cluster commands run.
#[derive(Debug, Clone)]
pub(crate) struct Programs {
    pub(crate) munged: PathBuf,
    pub(crate) slurmctld: PathBuf,
    pub(crate) slurmd: PathBuf,
    pub(crate) srun: PathBuf,
    pub(crate) sinfo: PathBuf,
    pub(crate) scancel: PathBuf,
    pub(crate) scontrol: PathBuf,
}

impl Programs {
    /// The names looked for, in the order [`Programs`] holds them.
    pub(crate) const NAMES: [&'static str; 7] = [
        "munged",
        "slurmctld",
        "slurmd",
        "srun",
        "sinfo",
        "scancel",
        "scontrol",
    ];

    /// Finds every program, or says which are missing.
    pub(crate) fn find() -> Result<Self, Vec<&'static str>> {
        let path = std::env::var_os("PATH").unwrap_or_default();
        let found: Vec<Option<PathBuf>> = Self::NAMES
            .iter()
            .map(|name| find_program(name, &path))
            .collect();
        let missing: Vec<&'static str> = Self::NAMES
            .iter()
            .zip(&found)
            .filter(|(_, path)| path.is_none())
            .map(|(name, _)| *name)
            .collect();
        match found[..] {
            [
                Some(ref munged),
                Some(ref slurmctld),
                Some(ref slurmd),
                Some(ref srun),
                Some(ref sinfo),
                Some(ref scancel),
                Some(ref scontrol),
            ] => Ok(Self {
                munged: munged.clone(),
                slurmctld: slurmctld.clone(),
                slurmd: slurmd.clone(),
                srun: srun.clone(),
                sinfo: sinfo.clone(),
                scancel: scancel.clone(),
                scontrol: scontrol.clone(),
            }),
            _ => Err(missing),
        }
    }

    /// Like [`Programs::find`], with the missing ones turned into an error for `command`.
    pub(crate) fn require(command: &str) -> Result<Self, Error> {
        Self::find().map_err(|missing| {
            Error::Cluster(format!(
                "{command}: {} not found on PATH or in {}; install Slurm and munge \
                 (Debian/Ubuntu: apt-get install slurm-wlm munge)",
                missing.join(", "),
                SBIN_DIRS.join(", ")
            ))
        })
    }
}

/// The first executable file called `name` in the directories of `path` (a `PATH` value), then
/// in [`SBIN_DIRS`] (where daemons such as `slurmd` and `sshd` live, often outside a user's
/// `PATH`).
pub(crate) fn find_program(name: &str, path: &OsStr) -> Option<PathBuf> {
    use std::os::unix::fs::PermissionsExt as _;
    std::env::split_paths(path)
        .chain(SBIN_DIRS.iter().map(PathBuf::from))
        .map(|dir| dir.join(name))
        .find(|candidate| {
            candidate
                .metadata()
                .is_ok_and(|meta| meta.is_file() && meta.permissions().mode() & 0o111 != 0)
        })
}

/// How a command run by [`run_bounded`] ended.
#[derive(Debug)]
pub(crate) struct Finished {
    /// The command line, for messages.
    pub(crate) shown: String,
    pub(crate) status: ExitStatus,
    pub(crate) stdout: Vec<u8>,
    pub(crate) stderr: Vec<u8>,
    /// From just before the spawn to the moment `wait` returned.
    pub(crate) elapsed: Duration,
}

impl Finished {
    /// `Ok(self)` when the command succeeded, otherwise an error with what it printed.
    pub(crate) fn success(self) -> Result<Self, Error> {
        if self.status.success() {
            Ok(self)
        } else {
            Err(Error::Cluster(format!(
                "`{}` failed ({}): {}",
                self.shown,
                self.status,
                String::from_utf8_lossy(&self.stderr).trim()
            )))
        }
    }
}

/// Runs `program args...` with `input` on its stdin (none: stdin is empty), capturing stdout
/// and stderr, and kills it if it has not exited after `timeout`: a Slurm command waiting on a
/// controller that never answers must not hang the caller.
pub(crate) fn run_bounded(
    program: &Path,
    args: &[&str],
    input: Option<&[u8]>,
    timeout: Duration,
) -> Result<Finished, Error> {
    let shown = std::iter::once(program.display().to_string())
        .chain(args.iter().map(|arg| (*arg).to_owned()))
        .collect::<Vec<_>>()
        .join(" ");
    let started = Instant::now();
    let mut child = Command::new(program)
        .args(args)
        .stdin(if input.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|source| Error::Spawn {
            command: shown.clone(),
            source,
        })?;
    let pid = child.id();
    let stdin = child.stdin.take();
    let stdout = child.stdout.take();
    let stderr = child.stderr.take();
    // Each pipe has a thread so a full one never blocks the others; the child's own thread
    // waits for it, so the exit time is exact rather than a polling interval late.
    std::thread::scope(|scope| {
        let writer = scope.spawn(move || match (stdin, input) {
            (Some(mut pipe), Some(bytes)) => pipe.write_all(bytes),
            _ => Ok(()),
        });
        let stdout_reader = scope.spawn(move || read_all(stdout));
        let stderr_reader = scope.spawn(move || read_all(stderr));
        let (exited, exit) = mpsc::channel();
        let waiter = scope.spawn(move || {
            let status = child.wait();
            let _ = exited.send(());
            (status, started.elapsed())
        });
        let timed_out = match exit.recv_timeout(timeout) {
            Ok(()) => false,
            Err(_) => {
                // Best effort: if it exited just now the signal finds nothing, which is fine.
                let _ = signal(pid, "KILL");
                true
            }
        };
        let joined =
            |what: &str| Error::Cluster(format!("the thread that {what} for `{shown}` panicked"));
        let (status, elapsed) = waiter.join().map_err(|_| joined("waits"))?;
        let status = status.map_err(|source| Error::Spawn {
            command: shown.clone(),
            source,
        })?;
        let stdout = stdout_reader.join().map_err(|_| joined("reads stdout"))?;
        let stderr = stderr_reader.join().map_err(|_| joined("reads stderr"))?;
        let written = writer.join().map_err(|_| joined("writes stdin"))?;
        if timed_out {
            return Err(Error::Cluster(format!(
                "`{shown}` did not finish within {:.0?}; killed it (pid {pid})",
                timeout
            )));
        }
        let read_error = |source| Error::Spawn {
            command: shown.clone(),
            source,
        };
        let stdout = stdout.map_err(read_error)?;
        let stderr = stderr.map_err(read_error)?;
        // A command that exits without reading all its input is judged by its status (and a
        // caller comparing output sees the shortfall); a write error on success is a real one.
        if status.success() {
            written.map_err(read_error)?;
        }
        Ok(Finished {
            shown: shown.clone(),
            status,
            stdout,
            stderr,
            elapsed,
        })
    })
}

/// Everything a pipe yields until end of file.
fn read_all(pipe: Option<impl std::io::Read>) -> std::io::Result<Vec<u8>> {
    let mut bytes = Vec::new();
    if let Some(mut pipe) = pipe {
        pipe.read_to_end(&mut bytes)?;
    }
    Ok(bytes)
}

/// The arguments that make sinfo print one `<node> <state>` line per node.
pub(crate) const SINFO_NODE_ARGS: [&str; 4] = ["--noheader", "--Node", "--format", "%N %T"];

/// The state sinfo gives `node` in output produced with [`SINFO_NODE_ARGS`], e.g. `idle`,
/// `mixed`, `down*` (the `*` meaning it does not respond).
pub(crate) fn node_state<'a>(sinfo: &'a str, node: &str) -> Option<&'a str> {
    sinfo.lines().find_map(|line| {
        let mut words = line.split_whitespace();
        (words.next()? == node).then_some(())?;
        words.next()
    })
}

/// Whether a node in `state` was taken out of service by Slurm itself (a step that would not
/// die drains it, for instance) while its slurmd answers: `scontrol update state=resume` puts
/// it back. `down*` (not responding) is not one: that needs slurmd running.
pub(crate) fn resumable(state: &str) -> bool {
    matches!(state, "drained" | "draining" | "down")
}

/// Whether a node in `state` (sinfo's long form) takes jobs now. A job running on it (`mixed`,
/// `allocated`) does not stop a new one: the partition oversubscribes.
pub(crate) fn takes_jobs(state: &str) -> bool {
    matches!(state, "idle" | "mixed" | "allocated" | "completing")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sinfo_node_state() {
        let output = "vm idle\nother down*\n";
        assert_eq!(node_state(output, "vm"), Some("idle"));
        assert_eq!(node_state(output, "other"), Some("down*"));
        assert_eq!(node_state(output, "v"), None);
        assert_eq!(node_state("", "vm"), None);
        assert!(takes_jobs("idle"));
        assert!(takes_jobs("mixed"));
        assert!(
            !takes_jobs("idle*"),
            "a node that does not respond takes nothing"
        );
        assert!(!takes_jobs("down"));
        assert!(!takes_jobs("drained"));
        assert!(resumable("drained"));
        assert!(resumable("down"));
        assert!(!resumable("down*"));
        assert!(!resumable("idle"));
    }

    #[test]
    fn programs_are_found_on_path_or_not_at_all() {
        let dirs = std::env::join_paths(["/nonexistent", "/bin", "/usr/bin"]).unwrap();
        let sh = find_program("sh", &dirs);
        assert!(sh.is_some_and(|path| path.ends_with("sh")));
        assert_eq!(find_program("no-such-program-prockit", &dirs), None);
    }

    #[test]
    fn bounded_runs_capture_output_and_feed_input() {
        let sh = Path::new("/bin/sh");
        let finished = run_bounded(
            sh,
            &["-c", "cat; echo oops >&2"],
            Some(b"hello"),
            Duration::from_secs(10),
        );
        let finished = finished.unwrap();
        assert!(finished.status.success());
        assert_eq!(finished.stdout, b"hello");
        assert_eq!(finished.stderr, b"oops\n");
        let failed = run_bounded(sh, &["-c", "exit 3"], None, Duration::from_secs(10)).unwrap();
        let message = failed
            .success()
            .err()
            .map(|error| error.to_string())
            .unwrap_or_default();
        assert!(
            message.starts_with("`/bin/sh -c exit 3` failed"),
            "{message}"
        );
    }

    #[test]
    fn bounded_runs_are_killed_at_the_deadline() {
        let started = Instant::now();
        let result = run_bounded(
            Path::new("/bin/sleep"),
            &["30"],
            None,
            Duration::from_millis(200),
        );
        let message = result
            .err()
            .map(|error| error.to_string())
            .unwrap_or_default();
        assert!(message.contains("did not finish within 200ms"), "{message}");
        assert!(started.elapsed() < Duration::from_secs(10));
    }
}
