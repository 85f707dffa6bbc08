//! What prockit's tests check again and again, written once: how many fds this process has
//! open, how many of its children are unreaped zombies, a watchdog that turns a hang into
//! a failure, run logs, a private `sshd` ([`SshServer`]), a copy of the test binary that
//! claims another build ([`copy_with_another_build_id`]) and a std-only [`block_on`]. A dev-dependency only.
//!
//! ```
//! let fds = test_support::open_fd_count();
//! let file = std::fs::File::open("/dev/null").unwrap();
//! assert_eq!(test_support::open_fd_count(), fds + 1);
//! drop(file);
//! assert_eq!(test_support::open_fd_count(), fds);
//! ```

#![forbid(unsafe_code)]

mod other_build;
mod ssh_server;
mod std_executor;

pub use other_build::copy_with_another_build_id;
pub use ssh_server::SshServer;
pub use std_executor::block_on;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

/// Open file descriptors of this process (`/proc/self/fd` on Linux, `/dev/fd` elsewhere).
pub fn open_fd_count() -> usize {
    let dir = if cfg!(target_os = "linux") {
        "/proc/self/fd"
    } else {
        "/dev/fd"
    };
    let listed = std::fs::read_dir(dir).map_or(0, |entries| entries.count());
    // The directory handle used for the listing shows up in it.
    listed.saturating_sub(1)
}

/// Children of this process that exited and were never reaped. Read from `/proc/*/stat` on
/// Linux; 0 elsewhere (no portable way to list them).
pub fn zombie_children() -> usize {
    children_in_state(Some('Z'))
}

/// All live or zombie children of this process (Linux; 0 elsewhere).
pub fn child_count() -> usize {
    children_in_state(None)
}

fn children_in_state(wanted: Option<char>) -> usize {
    if !cfg!(target_os = "linux") {
        return 0;
    }
    let me = std::process::id().to_string();
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return 0;
    };
    entries
        .filter_map(Result::ok)
        .filter_map(|entry| std::fs::read_to_string(entry.path().join("stat")).ok())
        .filter(|stat| {
            // "pid (comm) state ppid ...": comm may hold spaces and parens, so split after the
            // last ')'.
            let Some(rest) = stat.rfind(')').map(|i| &stat[i + 1..]) else {
                return false;
            };
            let mut fields = rest.split_whitespace();
            let state = fields.next().and_then(|s| s.chars().next());
            let ppid = fields.next();
            ppid == Some(me.as_str()) && wanted.is_none_or(|w| state == Some(w))
        })
        .count()
}

/// Whether `pid` is a running process: it exists and is not a zombie (Linux, from
/// `/proc/PID/stat`; always `false` elsewhere, so call it from Linux-only tests).
pub fn is_running(pid: i32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Err(_) => false,
        Ok(stat) => stat
            .rfind(')')
            .and_then(|i| stat[i + 1..].split_whitespace().next())
            .is_some_and(|state| state != "Z" && state != "X"),
    }
}

/// Makes this process the reaper of its orphaned descendants (Linux `PR_SET_CHILD_SUBREAPER`),
/// so a test can wait for a grandchild whose parent died.
#[cfg(target_os = "linux")]
pub fn become_subreaper() -> std::io::Result<()> {
    Ok(rustix::process::set_child_subreaper(Some(
        rustix::process::getpid(),
    ))?)
}

/// Polls `condition` every few milliseconds until it holds or `limit` passes; returns whether
/// it held. For effects that happen in the background (a reaper thread), where a test must
/// wait for them without asserting how fast they are.
pub fn eventually(limit: Duration, mut condition: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + limit;
    loop {
        if condition() {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        std::thread::sleep(Duration::from_millis(5));
    }
}

/// Aborts the whole test process if it is still alive after `limit`, printing `what`: a hang
/// (a deadlock after fork, a wait that never ends) becomes a loud failure instead of a suite
/// that never finishes. Disarmed when the returned guard drops.
#[must_use = "the watchdog is disarmed when the guard drops"]
pub fn watchdog(limit: Duration, what: &'static str) -> Watchdog {
    let disarmed = Arc::new(AtomicBool::new(false));
    let flag = Arc::clone(&disarmed);
    let spawned = std::thread::Builder::new()
        .name("watchdog".into())
        .spawn(move || {
            let deadline = Instant::now() + limit;
            while Instant::now() < deadline {
                if flag.load(Ordering::Acquire) {
                    return;
                }
                std::thread::sleep(Duration::from_millis(20));
            }
            if !flag.load(Ordering::Acquire) {
                eprintln!("watchdog: {what} still running after {limit:?}; aborting");
                std::process::abort();
            }
        });
    if let Err(err) = spawned {
        eprintln!("watchdog: could not start ({err}); {what} runs unguarded");
    }
    Watchdog { disarmed }
}

/// Guard returned by [`watchdog`].
#[derive(Debug)]
pub struct Watchdog {
    disarmed: Arc<AtomicBool>,
}

impl Drop for Watchdog {
    fn drop(&mut self) {
        self.disarmed.store(true, Ordering::Release);
    }
}

/// CPU time used so far by the calling thread (`CLOCK_THREAD_CPUTIME_ID`): other tests running
/// in the same process cannot disturb it. For tests that check a wait sleeps rather than spins.
pub fn this_thread_cpu_time() -> Duration {
    let t = rustix::time::clock_gettime(rustix::time::ClockId::ThreadCPUTime);
    Duration::new(
        u64::try_from(t.tv_sec).unwrap_or(0),
        u32::try_from(t.tv_nsec).unwrap_or(0),
    )
}

/// CPU time (user + system) used so far by this process's threads named `name`: Linux reads
/// `/proc/self/task/*/stat`, whose figures are in `USER_HZ` ticks, which the kernel's ABI fixes
/// at 100 per second. `None` elsewhere, or when no thread has that name. For tests that check
/// a background thread sleeps rather than spins.
pub fn thread_cpu_time(name: &str) -> Option<Duration> {
    let tasks = std::fs::read_dir("/proc/self/task").ok()?;
    let mut ticks = None;
    for task in tasks.filter_map(Result::ok) {
        let comm = std::fs::read_to_string(task.path().join("comm")).unwrap_or_default();
        if comm.trim_end() != name {
            continue;
        }
        let stat = std::fs::read_to_string(task.path().join("stat")).ok()?;
        // After "pid (comm) ": state ppid pgrp session tty_nr tpgid flags minflt cminflt
        // majflt cmajflt utime stime: utime and stime are the 12th and 13th fields.
        let rest = &stat[stat.rfind(')')? + 1..];
        let fields: Vec<&str> = rest.split_whitespace().collect();
        let utime: u64 = fields.get(11)?.parse().ok()?;
        let stime: u64 = fields.get(12)?.parse().ok()?;
        *ticks.get_or_insert(0) += utime + stime;
    }
    ticks.map(|t| Duration::from_millis(t * 10))
}

/// Appends `key` as a line to the file at `log` with one `write` on an `O_APPEND` file, so
/// lines from processes writing at once never interleave: how a pool task records that its
/// body ran (tasks capture nothing, and a worker's memory is its own). Panics if the file
/// cannot be written: a test that cannot count must not pass.
pub fn log_run(log: &str, key: u64) {
    use std::io::Write;
    let mut file = std::fs::OpenOptions::new()
        .append(true)
        .create(true)
        .open(log)
        .unwrap_or_else(|err| panic!("opening the run log {log}: {err}"));
    file.write_all(format!("{key}\n").as_bytes())
        .unwrap_or_else(|err| panic!("appending to the run log {log}: {err}"));
}

/// How many times each key was logged by [`log_run`] in the file at `log` (none if it does
/// not exist).
pub fn logged_runs(log: &std::path::Path) -> std::collections::HashMap<u64, usize> {
    let text = std::fs::read_to_string(log).unwrap_or_default();
    let mut runs = std::collections::HashMap::new();
    for line in text.lines() {
        let key = line
            .parse::<u64>()
            .unwrap_or_else(|err| panic!("run log {}: line {line:?}: {err}", log.display()));
        *runs.entry(key).or_insert(0) += 1;
    }
    runs
}
