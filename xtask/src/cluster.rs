//! `cargo xtask cluster up|down|status`: a single-node Slurm cluster on this machine, for the
//! tests of code that launches work through `srun` (docs/test-cluster.md says how to use and debug
//! it).
//!
//! `up` writes `/etc/munge/munge.key` (only when there is none), `/etc/slurm/slurm.conf` (only
//! over a file it wrote itself) and everything else under [`config::STATE_DIR`]; starts munged
//! (as the munge user), slurmctld and slurmd in the foreground, each in its own process group,
//! recording their pids as it goes; and waits, bounded, until sinfo shows the node idle and
//! `srun -N1 -n1 true` succeeds. A cluster it started earlier that still runs is reused. `down`
//! stops exactly the processes the pid file names, and waits for them. Both are idempotent.
//!
//! `config` holds what is written, `daemons` the pid file and the processes, `client` the Slurm
//! commands run under deadlines, and `leg` the `cluster` leg of `cargo xtask test`.

mod client;
mod config;
mod daemons;
mod leg;

use std::path::Path;
use std::time::{Duration, Instant};

pub(crate) use self::client::find_program;
use self::client::{Programs, SINFO_NODE_ARGS, node_state, resumable, run_bounded, takes_jobs};
use self::config::{Account, HostFacts, Layout, MungeKey};
use self::daemons::{Daemon, PidFile, Started, Stopped};
pub(crate) use self::leg::{CLUSTER_ENV, LegEnd, TEST_FILTER, leg_description, run_leg};
use crate::error::Error;

/// How long `up` waits for munged's socket to accept connections.
const MUNGE_TIMEOUT: Duration = Duration::from_secs(10);

/// How long `up` waits for the node to be idle and `srun -N1 -n1 true` to succeed.
const READY_TIMEOUT: Duration = Duration::from_secs(30);

/// The deadline of a single sinfo, srun or scancel call.
const CLIENT_TIMEOUT: Duration = Duration::from_secs(10);

/// How long `down` gives each daemon to exit on SIGTERM before SIGKILL.
const STOP_GRACE: Duration = Duration::from_secs(10);

/// `cargo xtask cluster <up|down|status>`.
pub(crate) fn command(args: &[String]) -> Result<(), Error> {
    let Some((action, rest)) = args.split_first() else {
        return Err(Error::Usage(
            "`cluster` needs an action: up, down or status".to_owned(),
        ));
    };
    if !["up", "down", "status"].contains(&action.as_str()) {
        return Err(Error::Usage(format!(
            "`cluster` does not know `{action}`: up, down or status"
        )));
    }
    if let Some(extra) = rest.first() {
        return Err(Error::Usage(format!(
            "`cluster {action}` takes no arguments, got `{extra}`"
        )));
    }
    match action.as_str() {
        "up" => up().map(|_| ()),
        "down" => down(),
        _ => status(),
    }
}

/// What `up` did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Up {
    /// Every daemon it started earlier still ran; it only checked the cluster answers.
    Reused,
    /// It started the daemons now.
    Started,
}

/// `cargo xtask cluster up`.
pub(crate) fn up() -> Result<Up, Error> {
    let started_at = Instant::now();
    require_root("cluster up")?;
    let programs = Programs::require("cluster up")?;
    let munge = Account::lookup("munge")?;
    let layout = Layout::default();
    layout.prepare(munge)?;
    let pid_path = layout.pid_file();
    println!(
        "cluster: state, logs and pid file in {}",
        layout.root().display()
    );

    let recorded = PidFile::read(&pid_path)?;
    let (running, exited): (Vec<Started>, Vec<Started>) =
        recorded.iter().partition(|started| started.is_running());
    let slurm_recorded = [Daemon::Slurmctld, Daemon::Slurmd]
        .iter()
        .all(|daemon| recorded.iter().any(|started| started.daemon == *daemon));
    if slurm_recorded && exited.is_empty() && munge_answers() {
        println!(
            "cluster: reusing the cluster `up` started earlier ({})",
            list(&running)
        );
        wait_ready(&programs, &layout, &running, Instant::now() + READY_TIMEOUT)?;
        println!(
            "cluster: up (reused) in {:.1}s",
            started_at.elapsed().as_secs_f64()
        );
        return Ok(Up::Reused);
    }
    if !recorded.is_empty() {
        println!(
            "cluster: what `up` started earlier is incomplete ({} exited); stopping the rest and \
             starting afresh",
            if exited.is_empty() {
                "munged does not answer".to_owned()
            } else {
                list(&exited)
            }
        );
        teardown(&recorded)?;
        PidFile::write(&pid_path, &[])?;
    }

    for daemon in [Daemon::Slurmctld, Daemon::Slurmd] {
        let others = daemons::processes_named(daemon.name());
        if let Some(pid) = others.first() {
            return Err(Error::Cluster(format!(
                "cluster up: a {name} that `cargo xtask cluster up` did not start runs already \
                 (pid {pid}); xtask manages only daemons it started, so stop it (`kill {pid}`) \
                 or use that cluster directly",
                name = daemon.name()
            )));
        }
    }
    let foreign_munged = daemons::processes_named(Daemon::Munged.name());
    let reuse_munged = match foreign_munged.first() {
        Some(pid) if munge_answers() => {
            println!(
                "cluster: munged (pid {pid}) was not started by xtask; using it as it is \
                 (`down` leaves it running)"
            );
            true
        }
        Some(pid) => {
            return Err(Error::Cluster(format!(
                "cluster up: a munged that xtask did not start runs (pid {pid}) but nothing \
                 answers on {}; stop it (`kill {pid}`) and run `cargo xtask cluster up` again",
                config::MUNGE_SOCKET
            )));
        }
        None => false,
    };

    let host = HostFacts::read()?;
    if config::ensure_munge_key(munge)? == MungeKey::Created {
        println!(
            "cluster: created {} (1024 random bytes, owner munge, mode 0400)",
            config::MUNGE_KEY
        );
    }
    config::ensure_munge_run_dir(munge)?;
    config::write_slurm_conf(&config::slurm_conf(&host, &layout))?;
    println!(
        "cluster: {} for node {} ({} CPUs, {} MiB)",
        config::SLURM_CONF,
        host.short_name,
        host.cpus,
        host.memory_mib
    );

    let mut started = Vec::new();
    for daemon in Daemon::ALL {
        if daemon == Daemon::Munged && reuse_munged {
            continue;
        }
        let (program, user) = match daemon {
            Daemon::Munged => (&programs.munged, Some(munge)),
            Daemon::Slurmctld => (&programs.slurmctld, None),
            Daemon::Slurmd => (&programs.slurmd, None),
        };
        let entry = daemons::spawn(
            daemon,
            program,
            &layout.daemon_args(daemon),
            &layout.output(daemon),
            user,
        )?;
        started.push(entry);
        // Recorded at once, so a later failure leaves a pid file `down` can clean up after.
        PidFile::write(&pid_path, &started)?;
        println!("cluster: started {} (pid {})", daemon.name(), entry.pid);
        if daemon == Daemon::Munged {
            wait_munge(&layout, &entry)?;
        }
    }
    wait_ready(&programs, &layout, &started, Instant::now() + READY_TIMEOUT)?;
    println!("cluster: up in {:.1}s", started_at.elapsed().as_secs_f64());
    Ok(Up::Started)
}

/// `cargo xtask cluster down`.
pub(crate) fn down() -> Result<(), Error> {
    let layout = Layout::default();
    let pid_path = layout.pid_file();
    let recorded = PidFile::read(&pid_path)?;
    if recorded.is_empty() {
        println!(
            "cluster: nothing to stop ({} lists no daemon)",
            pid_path.display()
        );
        return Ok(());
    }
    require_root("cluster down")?;
    teardown(&recorded)?;
    PidFile::write(&pid_path, &[])?;
    println!("cluster: down");
    Ok(())
}

/// Takes down what `recorded` (the pid file) names: cancels the partition's jobs while the
/// controller still runs, stops the daemons, then kills whatever is left of job steps (the
/// slurmstepd processes our slurmd started, and everything below them), so nothing of the
/// cluster keeps running.
fn teardown(recorded: &[Started]) -> Result<(), Error> {
    let slurmd_started = recorded
        .iter()
        .find(|started| started.daemon == Daemon::Slurmd)
        .map(|started| started.start_time);
    let controller_runs = recorded
        .iter()
        .any(|started| started.daemon == Daemon::Slurmctld && started.is_running());
    // scancel needs munge to authenticate; without it, it would only retry until its deadline.
    if let (true, Ok(programs)) = (controller_runs && munge_answers(), Programs::find()) {
        let partition = format!("--partition={}", config::CLUSTER_NAME);
        match run_bounded(&programs.scancel, &[&partition], None, CLIENT_TIMEOUT)
            .and_then(client::Finished::success)
        {
            Ok(_) => {
                // Steps that end on the SIGTERM scancel sent end here; the rest are killed below.
                let deadline = Instant::now() + Duration::from_secs(5);
                while slurmd_started.is_some_and(|since| !daemons::leftover_steps(since).is_empty())
                    && Instant::now() < deadline
                {
                    std::thread::sleep(Duration::from_millis(50));
                }
            }
            Err(error) => println!("cluster: note: cancelling the jobs left failed: {error}"),
        }
    }
    let stopped = stop_all(recorded);
    if let Some(since) = slurmd_started {
        let left = daemons::leftover_steps(since);
        if !left.is_empty() {
            println!("cluster: killing what is left of job steps (pids {left:?})");
            let survivors = daemons::kill_all(&left);
            if !survivors.is_empty() {
                return Err(Error::Cluster(format!(
                    "cluster down: job step processes survive SIGKILL (pids {survivors:?})"
                )));
            }
        }
    }
    stopped
}

/// Stops every daemon in `recorded`, in the reverse of the order they started, saying how each
/// ended. All are tried even when one fails; the first failure is returned.
fn stop_all(recorded: &[Started]) -> Result<(), Error> {
    let mut first_error = None;
    for started in recorded.iter().rev() {
        let name = started.daemon.name();
        let pid = started.pid;
        match daemons::stop(started, STOP_GRACE) {
            Ok(Stopped::AlreadyGone) => println!("cluster: {name} (pid {pid}) had already exited"),
            Ok(Stopped::Terminated) => println!("cluster: stopped {name} (pid {pid})"),
            Ok(Stopped::Killed) => {
                println!("cluster: {name} (pid {pid}) ignored SIGTERM; killed it");
            }
            Err(error) => {
                eprintln!("error: {error}");
                first_error.get_or_insert(error);
            }
        }
    }
    first_error.map_or(Ok(()), Err)
}

/// `cargo xtask cluster status`: what runs, what sinfo says, and an error unless it is up.
pub(crate) fn status() -> Result<(), Error> {
    let layout = Layout::default();
    let pid_path = layout.pid_file();
    println!("cluster: state directory {}", layout.root().display());
    let recorded = PidFile::read(&pid_path)?;
    let mut problems = Vec::new();
    for daemon in Daemon::ALL {
        let ours = recorded.iter().find(|started| started.daemon == daemon);
        let mut running = daemons::processes_named(daemon.name());
        match ours {
            Some(started) if started.is_running() => {
                running.retain(|pid| *pid != started.pid);
                println!(
                    "  {:9}  pid {} (started by xtask), log {}",
                    daemon.name(),
                    started.pid,
                    layout.log(daemon).display()
                );
            }
            Some(started) => {
                println!(
                    "  {:9}  pid {} (started by xtask) has exited; see {}",
                    daemon.name(),
                    started.pid,
                    layout.logs_of(daemon)
                );
                problems.push(format!("{} exited", daemon.name()));
            }
            None if daemon == Daemon::Munged && !running.is_empty() => {}
            None => {
                println!("  {:9}  not started by xtask", daemon.name());
                problems.push(format!("{} not running", daemon.name()));
            }
        }
        if !running.is_empty() {
            println!(
                "  {:9}  also running, not started by xtask: pids {running:?}",
                daemon.name()
            );
        }
    }
    let controllers = daemons::processes_named(Daemon::Slurmctld.name());
    match Programs::find() {
        Ok(_) if controllers.is_empty() => {
            println!("  sinfo: not asked, no slurmctld runs");
            problems.push("no controller".to_owned());
        }
        Ok(programs) => {
            let host = HostFacts::read()?;
            match run_bounded(&programs.sinfo, &SINFO_NODE_ARGS, None, CLIENT_TIMEOUT)
                .and_then(client::Finished::success)
            {
                Ok(finished) => {
                    let text = String::from_utf8_lossy(&finished.stdout);
                    let state = node_state(&text, &host.short_name);
                    println!(
                        "  node {}: {} (sinfo)",
                        host.short_name,
                        state.unwrap_or("not listed")
                    );
                    if !state.is_some_and(takes_jobs) {
                        problems.push(format!(
                            "node {} is {}",
                            host.short_name,
                            state.unwrap_or("not listed by sinfo")
                        ));
                    }
                }
                Err(error) => {
                    println!("  sinfo: {error}");
                    problems.push("sinfo gets no answer".to_owned());
                }
            }
        }
        Err(missing) => problems.push(format!("not installed: {}", missing.join(", "))),
    }
    if problems.is_empty() {
        println!("cluster: up");
        Ok(())
    } else {
        Err(Error::Cluster(format!(
            "cluster status: not up: {}",
            problems.join("; ")
        )))
    }
}

/// Waits until munged, just started as `entry`, accepts connections on its socket.
fn wait_munge(layout: &Layout, entry: &Started) -> Result<(), Error> {
    let deadline = Instant::now() + MUNGE_TIMEOUT;
    while !munge_answers() {
        if !entry.is_running() {
            return Err(exited_error(layout, entry));
        }
        if Instant::now() >= deadline {
            return Err(Error::Cluster(format!(
                "cluster up: munged (pid {}) does not accept connections on {} after {:.0?}; \
                 see {}",
                entry.pid,
                config::MUNGE_SOCKET,
                MUNGE_TIMEOUT,
                layout.logs_of(Daemon::Munged)
            )));
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    Ok(())
}

/// Whether something accepts connections on munged's socket.
fn munge_answers() -> bool {
    std::os::unix::net::UnixStream::connect(config::MUNGE_SOCKET).is_ok()
}

/// Waits until the node takes jobs and `srun -N1 -n1 true` succeeds, checking all along that
/// the daemons in `started` still run.
fn wait_ready(
    programs: &Programs,
    layout: &Layout,
    started: &[Started],
    deadline: Instant,
) -> Result<(), Error> {
    let host = HostFacts::read()?;
    let mut last = String::from("sinfo has not answered yet");
    let mut resumed = false;
    loop {
        if let Some(gone) = started.iter().find(|entry| !entry.is_running()) {
            return Err(exited_error(layout, gone));
        }
        let remaining = deadline.saturating_duration_since(Instant::now());
        if remaining.is_zero() {
            return Err(Error::Cluster(format!(
                "cluster up: not ready after {READY_TIMEOUT:.0?}: {last}; see {} and {}, and \
                 docs/test-cluster.md on debugging",
                layout.logs_of(Daemon::Slurmctld),
                layout.logs_of(Daemon::Slurmd)
            )));
        }
        let bound = remaining.min(CLIENT_TIMEOUT);
        match run_bounded(&programs.sinfo, &SINFO_NODE_ARGS, None, bound)
            .and_then(client::Finished::success)
        {
            Ok(finished) => {
                let text = String::from_utf8_lossy(&finished.stdout);
                match node_state(&text, &host.short_name) {
                    Some(state) if takes_jobs(state) => {
                        match run_bounded(&programs.srun, &SRUN_TRUE, None, bound)
                            .and_then(client::Finished::success)
                        {
                            Ok(finished) => {
                                println!(
                                    "cluster: node {} {state}, srun -N1 -n1 true took {} ms",
                                    host.short_name,
                                    finished.elapsed.as_millis()
                                );
                                return Ok(());
                            }
                            Err(error) => last = error.to_string(),
                        }
                    }
                    Some(state) if resumable(state) && !resumed => {
                        resumed = true;
                        resume(programs, &host.short_name, state)?;
                        continue;
                    }
                    Some(state) => last = format!("sinfo says node {} is {state}", host.short_name),
                    None => last = format!("sinfo does not list node {}", host.short_name),
                }
            }
            Err(error) => last = error.to_string(),
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Puts `node`, taken out of service by Slurm (`state`), back in it, saying why it was out.
fn resume(programs: &Programs, node: &str, state: &str) -> Result<(), Error> {
    let reason = run_bounded(
        &programs.sinfo,
        &["--noheader", "--Node", "--format", "%E", "--nodes", node],
        None,
        CLIENT_TIMEOUT,
    )
    .map(|finished| String::from_utf8_lossy(&finished.stdout).trim().to_owned())
    .unwrap_or_default();
    let node_name = format!("nodename={node}");
    run_bounded(
        &programs.scontrol,
        &["update", &node_name, "state=resume"],
        None,
        CLIENT_TIMEOUT,
    )?
    .success()?;
    println!("cluster: node {node} was {state} (reason: {reason}); resumed it");
    Ok(())
}

/// The smallest job: one task on one node, doing nothing.
const SRUN_TRUE: [&str; 3] = ["-N1", "-n1", "true"];

/// The error for a daemon that exited while `up` waited on it, with the end of its output.
fn exited_error(layout: &Layout, entry: &Started) -> Error {
    let output = layout.output(entry.daemon);
    let tail = std::fs::read_to_string(&output)
        .map(|text| {
            let lines: Vec<&str> = text.lines().collect();
            lines[lines.len().saturating_sub(5)..].join("\n    ")
        })
        .unwrap_or_default();
    Error::Cluster(format!(
        "cluster up: {} (pid {}) exited; see {}; its last lines:\n    {tail}",
        entry.daemon.name(),
        entry.pid,
        layout.logs_of(entry.daemon)
    ))
}

/// `munged (pid 1), slurmd (pid 3)`.
fn list(started: &[Started]) -> String {
    started
        .iter()
        .map(|entry| format!("{} (pid {})", entry.daemon.name(), entry.pid))
        .collect::<Vec<_>>()
        .join(", ")
}

/// Fails unless this process runs as root, saying why `command` needs it.
fn require_root(command: &str) -> Result<(), Error> {
    match effective_uid() {
        Some(0) => Ok(()),
        uid => Err(Error::Cluster(format!(
            "{command} needs root ({}): it writes {} and {}, starts munged as the munge user and \
             signals the daemons it started; run it as root",
            uid.map_or_else(
                || "cannot tell who we are: no /proc/self/status".to_owned(),
                |uid| format!("running as uid {uid}")
            ),
            config::SLURM_CONF,
            config::MUNGE_KEY
        ))),
    }
}

/// The effective uid, from `/proc/self/status` (std has no getuid), or `None` without `/proc`.
pub(crate) fn effective_uid() -> Option<u32> {
    effective_uid_in(&std::fs::read_to_string(Path::new("/proc/self/status")).ok()?)
}

/// The effective uid from the `Uid:` line (real, effective, saved, filesystem) of a status file.
fn effective_uid_in(status: &str) -> Option<u32> {
    let line = status.lines().find(|line| line.starts_with("Uid:"))?;
    line.split_whitespace().nth(2)?.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn strings(args: &[&str]) -> Vec<String> {
        args.iter().map(|arg| (*arg).to_owned()).collect()
    }

    #[test]
    fn command_line_errors_are_usage_errors() {
        for args in [&[][..], &["start"], &["up", "now"], &["status", "-v"]] {
            let result = command(&strings(args));
            assert!(
                matches!(result, Err(Error::Usage(_))),
                "{args:?}: {result:?}"
            );
        }
    }

    #[test]
    fn effective_uid_is_the_second_uid() {
        let status = "Name:\txtask\nUid:\t1000\t0\t0\t0\nGid:\t1000\t1000\t1000\t1000\n";
        assert_eq!(effective_uid_in(status), Some(0));
        assert_eq!(effective_uid_in("Name:\txtask\n"), None);
    }
}
