//! The three daemons of the cluster: starting one, recognising it again by its pid, stopping it,
//! and the pid file that remembers which ones `up` started.
//!
//! A pid alone is not an identity (the kernel reuses them), so the pid file records each
//! daemon's name and start time as `/proc/<pid>/stat` gives them; `down` signals a pid only
//! while both still match.

use std::fmt::Write as _;
use std::fs;
use std::os::unix::process::CommandExt as _;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use super::config::{Account, io_error};
use crate::error::Error;

/// A daemon `up` starts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Daemon {
    /// The munge authentication daemon, run as the munge user.
    Munged,
    /// The Slurm controller.
    Slurmctld,
    /// The Slurm node daemon.
    Slurmd,
}

impl Daemon {
    /// In the order `up` starts them; `down` stops them in reverse.
    pub(crate) const ALL: [Self; 3] = [Self::Munged, Self::Slurmctld, Self::Slurmd];

    /// The program's name, which is also its `comm` in `/proc/<pid>/stat`.
    pub(crate) fn name(self) -> &'static str {
        match self {
            Self::Munged => "munged",
            Self::Slurmctld => "slurmctld",
            Self::Slurmd => "slurmd",
        }
    }

    fn from_name(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|daemon| daemon.name() == name)
    }
}

/// A daemon `up` started: one line of the pid file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Started {
    pub(crate) daemon: Daemon,
    pub(crate) pid: u32,
    /// Field 22 of `/proc/<pid>/stat`: clock ticks after boot at which the process started.
    pub(crate) start_time: u64,
}

impl Started {
    /// Whether this very process still runs: the pid exists, is not a zombie, and has the
    /// daemon's name and the recorded start time (so a reused pid does not count).
    pub(crate) fn is_running(&self) -> bool {
        proc_stat(self.pid).is_some_and(|stat| self.is(&stat))
    }

    /// Whether `stat` (read from this pid) describes this daemon, alive.
    fn is(&self, stat: &ProcStat) -> bool {
        stat.state != 'Z' && stat.comm == self.daemon.name() && stat.start_time == self.start_time
    }
}

/// The pid file: which daemons `up` started, one per line as `<name> <pid> <start time>`.
pub(crate) struct PidFile;

impl PidFile {
    /// The first line of the file, saying what the rest is.
    const HEADER: &'static str =
        "# cargo xtask cluster: the daemons `up` started (name, pid, start time in clock ticks)";

    /// The file's text for `started`.
    pub(crate) fn render(started: &[Started]) -> String {
        let mut text = format!("{}\n", Self::HEADER);
        for entry in started {
            // Writing to a String cannot fail.
            let _ = writeln!(
                text,
                "{} {} {}",
                entry.daemon.name(),
                entry.pid,
                entry.start_time
            );
        }
        text
    }

    /// Parses the file's text; the error names the line that is wrong.
    pub(crate) fn parse(text: &str) -> Result<Vec<Started>, String> {
        let mut started = Vec::new();
        for (index, line) in text.lines().enumerate() {
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let bad = |what: &str| format!("line {}: {what} in `{line}`", index + 1);
            let fields: Vec<&str> = line.split_whitespace().collect();
            let [name, pid, start_time] = fields[..] else {
                return Err(bad("expected `<name> <pid> <start time>`"));
            };
            let daemon = Daemon::from_name(name).ok_or_else(|| bad("unknown daemon"))?;
            let pid = pid
                .parse()
                .ok()
                .filter(|&pid: &u32| pid > 1)
                .ok_or_else(|| bad("bad pid"))?;
            let start_time = start_time.parse().map_err(|_| bad("bad start time"))?;
            started.push(Started {
                daemon,
                pid,
                start_time,
            });
        }
        Ok(started)
    }

    /// Reads the file at `path`; a missing file means nothing was started.
    pub(crate) fn read(path: &Path) -> Result<Vec<Started>, Error> {
        let text = match fs::read_to_string(path) {
            Ok(text) => text,
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(error) => return Err(io_error("read", path)(error)),
        };
        Self::parse(&text).map_err(|problem| {
            Error::Cluster(format!(
                "{}: {problem}; if no daemon from it still runs, delete the file",
                path.display()
            ))
        })
    }

    /// Writes `started` to `path`, or removes the file when there is nothing to record.
    pub(crate) fn write(path: &Path, started: &[Started]) -> Result<(), Error> {
        if started.is_empty() {
            return match fs::remove_file(path) {
                Err(error) if error.kind() != std::io::ErrorKind::NotFound => {
                    Err(io_error("remove", path)(error))
                }
                _ => Ok(()),
            };
        }
        fs::write(path, Self::render(started)).map_err(io_error("write", path))
    }
}

/// What `/proc/<pid>/stat` says about a process.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ProcStat {
    /// The executable's name, at most 15 bytes.
    pub(crate) comm: String,
    /// `R`, `S`, `D`, `Z` (zombie), ...
    pub(crate) state: char,
    /// The parent's pid.
    pub(crate) ppid: u32,
    pub(crate) start_time: u64,
}

/// Parses the text of `/proc/<pid>/stat`. `comm` sits in parentheses and may itself hold spaces
/// and parentheses, so the fields are counted from the last `)`.
fn parse_stat(text: &str) -> Option<ProcStat> {
    let open = text.find('(')?;
    let close = text.rfind(')')?;
    let comm = text.get(open + 1..close)?.to_owned();
    let mut fields = text.get(close + 1..)?.split_whitespace();
    // After comm: field 3 is the state, field 4 the parent, field 22 the start time.
    let state = fields.next()?.chars().next()?;
    let ppid = fields.next()?.parse().ok()?;
    let start_time = fields.nth(22 - 5)?.parse().ok()?;
    Some(ProcStat {
        comm,
        state,
        ppid,
        start_time,
    })
}

/// What `/proc/<pid>/stat` says, or `None` when there is no such process.
pub(crate) fn proc_stat(pid: u32) -> Option<ProcStat> {
    parse_stat(&fs::read_to_string(format!("/proc/{pid}/stat")).ok()?)
}

/// Every process in `/proc` that is not a zombie, with what its stat file says, in pid order.
fn live_processes() -> Vec<(u32, ProcStat)> {
    let Ok(entries) = fs::read_dir("/proc") else {
        return Vec::new();
    };
    let mut table: Vec<(u32, ProcStat)> = entries
        .filter_map(|entry| entry.ok()?.file_name().to_str()?.parse().ok())
        .filter_map(|pid| Some((pid, proc_stat(pid)?)))
        .filter(|(_, stat)| stat.state != 'Z')
        .collect();
    table.sort_unstable_by_key(|(pid, _)| *pid);
    table
}

/// The pids of every live (not zombie) process named `name`, in pid order.
pub(crate) fn processes_named(name: &str) -> Vec<u32> {
    live_processes()
        .into_iter()
        .filter(|(_, stat)| stat.comm == name)
        .map(|(pid, _)| pid)
        .collect()
}

/// What is left of job steps on a node whose slurmd started at `since` (clock ticks after
/// boot): the slurmstepd processes started no earlier (slurmd forks them, and they outlive it
/// when their tasks do not end) and every process below them, in pid order.
pub(crate) fn leftover_steps(since: u64) -> Vec<u32> {
    step_trees(&live_processes(), since)
}

/// [`leftover_steps`] over a process table.
fn step_trees(table: &[(u32, ProcStat)], since: u64) -> Vec<u32> {
    let mut found: Vec<u32> = table
        .iter()
        .filter(|(_, stat)| stat.comm == "slurmstepd" && stat.start_time >= since)
        .map(|(pid, _)| *pid)
        .collect();
    // Add children of what was found until nothing new turns up (a tree is a few levels deep).
    loop {
        let children: Vec<u32> = table
            .iter()
            .filter(|(pid, stat)| found.contains(&stat.ppid) && !found.contains(pid))
            .map(|(pid, _)| *pid)
            .collect();
        if children.is_empty() {
            break;
        }
        found.extend(children);
    }
    found.sort_unstable();
    found
}

/// Kills `pids` with SIGKILL and waits up to five seconds for them to be gone; the ones that
/// are not.
pub(crate) fn kill_all(pids: &[u32]) -> Vec<u32> {
    for &pid in pids {
        // A process that exited meanwhile is fine; one we cannot signal shows up below.
        let _ = signal(pid, "KILL");
    }
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let left: Vec<u32> = pids
            .iter()
            .copied()
            .filter(|&pid| proc_stat(pid).is_some_and(|stat| stat.state != 'Z'))
            .collect();
        if left.is_empty() || Instant::now() >= deadline {
            return left;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Starts `program args...` as `daemon` in a process group of its own (a Ctrl-C meant for
/// xtask does not reach it), with no stdin and its stdout and stderr in `output` (emptied
/// first), as `user` when given. Returns it as the pid file will record it.
pub(crate) fn spawn(
    daemon: Daemon,
    program: &Path,
    args: &[String],
    output: &Path,
    user: Option<Account>,
) -> Result<Started, Error> {
    let shown = format!("{} {}", program.display(), args.join(" "));
    let log = fs::File::create(output).map_err(io_error("create", output))?;
    let log_again = log
        .try_clone()
        .map_err(io_error("duplicate the handle of", output))?;
    let mut command = Command::new(program);
    command
        .args(args)
        .stdin(Stdio::null())
        .stdout(log)
        .stderr(log_again)
        .process_group(0);
    if let Some(user) = user {
        // std also drops the supplementary groups when root changes uid.
        command.uid(user.uid).gid(user.gid);
    }
    // The child is not waited for: it outlives xtask, and init reaps it once `down` stops it.
    let child = command.spawn().map_err(|source| Error::Spawn {
        command: shown.clone(),
        source,
    })?;
    let pid = child.id();
    let stat = proc_stat(pid).ok_or_else(|| {
        Error::Cluster(format!(
            "`{shown}` (pid {pid}) exited at once; see {}",
            output.display()
        ))
    })?;
    Ok(Started {
        daemon,
        pid,
        start_time: stat.start_time,
    })
}

/// How [`stop`] ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Stopped {
    /// It had exited before we asked.
    AlreadyGone,
    /// It exited on SIGTERM.
    Terminated,
    /// It ignored SIGTERM for the whole grace period and was killed.
    Killed,
}

/// Stops `started` if it still runs: SIGTERM, up to `grace` for it to exit, then SIGKILL and up
/// to five more seconds.
pub(crate) fn stop(started: &Started, grace: Duration) -> Result<Stopped, Error> {
    if !started.is_running() {
        return Ok(Stopped::AlreadyGone);
    }
    signal(started.pid, "TERM")?;
    if wait_gone(started, grace) {
        return Ok(Stopped::Terminated);
    }
    signal(started.pid, "KILL")?;
    if wait_gone(started, Duration::from_secs(5)) {
        return Ok(Stopped::Killed);
    }
    Err(Error::Cluster(format!(
        "{} (pid {}) still runs after SIGTERM and SIGKILL",
        started.daemon.name(),
        started.pid
    )))
}

/// Waits up to `timeout` for `started` to stop running; whether it did.
fn wait_gone(started: &Started, timeout: Duration) -> bool {
    let deadline = Instant::now() + timeout;
    while started.is_running() {
        if Instant::now() >= deadline {
            return false;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    true
}

/// Sends `SIG<name>` to `pid` with kill(1): std has no way to signal a process it did not spawn.
pub(crate) fn signal(pid: u32, name: &str) -> Result<(), Error> {
    let shown = format!("kill -s {name} {pid}");
    let output = Command::new("kill")
        .args(["-s", name, &pid.to_string()])
        .stdin(Stdio::null())
        .output()
        .map_err(|source| Error::Spawn {
            command: shown.clone(),
            source,
        })?;
    // The process may have exited between our check and the signal: that is success too.
    if output.status.success() || proc_stat(pid).is_none_or(|stat| stat.state == 'Z') {
        Ok(())
    } else {
        Err(Error::Cluster(format!(
            "`{shown}` failed ({}): {}",
            output.status,
            String::from_utf8_lossy(&output.stderr).trim()
        )))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pid_file_round_trips() {
        let started = [
            Started {
                daemon: Daemon::Munged,
                pid: 17_575,
                start_time: 1_504_123,
            },
            Started {
                daemon: Daemon::Slurmd,
                pid: 17_689,
                start_time: 1_504_200,
            },
        ];
        let text = PidFile::render(&started);
        assert!(text.starts_with("# cargo xtask cluster"), "{text}");
        assert!(text.contains("\nmunged 17575 1504123\n"), "{text}");
        assert_eq!(PidFile::parse(&text), Ok(started.to_vec()));
        assert_eq!(PidFile::parse(""), Ok(Vec::new()));
    }

    #[test]
    fn pid_file_errors_name_the_line() {
        let cases = [
            ("slurmd 12\n", "line 1: expected"),
            ("# header\n\nslurmdd 12 34\n", "line 3: unknown daemon"),
            ("munged x 34\n", "line 1: bad pid"),
            ("munged 1 34\n", "line 1: bad pid"),
            ("munged 12 -4\n", "line 1: bad start time"),
            ("munged 12 34 56\n", "line 1: expected"),
        ];
        for (text, expected) in cases {
            let error = PidFile::parse(text).err().unwrap_or_default();
            assert!(error.starts_with(expected), "{text:?} gave {error:?}");
        }
    }

    #[test]
    fn stat_parses_around_odd_names() {
        // Fields after comm: state ppid pgrp session tty tpgid flags minflt cminflt majflt
        // cmajflt utime stime cutime cstime priority nice threads itrealvalue starttime ...
        let rest = "S 1 17575 17575 0 -1 4194560 100 0 0 0 1 2 0 0 20 0 3 0 1504123 9000 200";
        let plain = parse_stat(&format!("17575 (munged) {rest}"));
        assert_eq!(
            plain,
            Some(ProcStat {
                comm: "munged".to_owned(),
                state: 'S',
                ppid: 1,
                start_time: 1_504_123
            })
        );
        let odd = parse_stat(&format!("42 (a (b) c) {rest}")).map(|stat| stat.comm);
        assert_eq!(odd.as_deref(), Some("a (b) c"));
        assert_eq!(parse_stat("42 (truncated) S 1 2"), None);
    }

    #[test]
    fn a_daemon_is_recognised_by_name_start_time_and_life() {
        let started = Started {
            daemon: Daemon::Slurmd,
            pid: 4242,
            start_time: 1000,
        };
        let stat = |comm: &str, state, start_time| ProcStat {
            comm: comm.to_owned(),
            state,
            ppid: 1,
            start_time,
        };
        assert!(started.is(&stat("slurmd", 'S', 1000)));
        assert!(started.is(&stat("slurmd", 'R', 1000)));
        assert!(
            !started.is(&stat("slurmd", 'Z', 1000)),
            "a zombie has stopped"
        );
        assert!(!started.is(&stat("slurmd", 'S', 1001)), "a reused pid");
        assert!(!started.is(&stat("bash", 'S', 1000)), "another program");
    }

    #[test]
    fn this_process_is_found_by_name() {
        let pid = std::process::id();
        let Some(stat) = proc_stat(pid) else {
            return; // no /proc (macOS): nothing to check
        };
        assert_ne!(stat.state, 'Z');
        assert!(processes_named(&stat.comm).contains(&pid));
    }

    #[test]
    fn leftover_steps_are_the_newer_slurmstepds_and_everything_below_them() {
        let process = |pid, comm: &str, ppid, start_time| {
            (
                pid,
                ProcStat {
                    comm: comm.to_owned(),
                    state: 'S',
                    ppid,
                    start_time,
                },
            )
        };
        let table = [
            process(1, "init", 0, 0),
            process(10, "slurmd", 1, 500),
            process(20, "slurmstepd", 1, 400), // an older slurmd's: not ours
            process(21, "task", 20, 400),
            process(30, "slurmstepd", 1, 600),
            process(31, "cluster_pool", 30, 601),
            process(32, "helper", 31, 602),
            process(33, "grandchild", 32, 603),
            process(40, "slurmstepd", 1, 500),
            process(50, "bash", 1, 700),
        ];
        assert_eq!(step_trees(&table, 500), [30, 31, 32, 33, 40]);
        assert_eq!(step_trees(&table, 800), Vec::<u32>::new());
    }
}
