//! A timed-out child's whole tree: whether a new process group may be used for it (not when
//! this process is in its terminal's foreground, where the group is what Ctrl-C reaches), and
//! finding and killing its descendants, which a group kill alone misses when the child shares
//! our group or a descendant left it.
//!
//! Descendants are found in `/proc` (Linux): each round stops (`SIGSTOP`) every newly found
//! process, so none can fork, exit or be re-parented behind our back, and looks again for
//! children of every process found so far, until a round finds nothing new; then all are
//! killed. Each is held by a pidfd opened *before* its parent link is checked, so a pid reused
//! in between is never signalled. Elsewhere, the group kill is all there is.

use std::os::fd::OwnedFd;

use crate::Child;

/// At most this many rounds of looking for descendants: a tree deeper than this is killed as
/// far as it was found (its lower part is then left to the group kill).
#[cfg(target_os = "linux")]
const MAX_ROUNDS: usize = 64;
/// At most this many descendants are held: a fork bomb must not exhaust our fds.
#[cfg(target_os = "linux")]
const MAX_DESCENDANTS: usize = 4096;

/// Whether this process is in the foreground process group of its controlling terminal: a
/// Ctrl-C typed there reaches our whole group, children included. False without a terminal
/// (a service, CI, a pipeline stage of a shell script run without one) and in the background.
pub(crate) fn in_terminal_foreground() -> bool {
    use rustix::fs::{Mode, OFlags};
    let Ok(tty) = rustix::fs::open(
        c"/dev/tty",
        OFlags::RDONLY | OFlags::NOCTTY | OFlags::CLOEXEC | OFlags::NONBLOCK,
        Mode::empty(),
    ) else {
        return false; // ENXIO: no controlling terminal
    };
    rustix::termios::tcgetpgrp(&tty)
        .is_ok_and(|foreground| foreground == rustix::process::getpgrp())
}

/// The descendants of a child, stopped, held by pidfds until [`kill`](StoppedTree::kill).
#[derive(Debug, Default)]
pub(crate) struct StoppedTree {
    // Only Linux finds descendants (in /proc); elsewhere the tree is always empty.
    #[cfg_attr(not(target_os = "linux"), allow(dead_code))]
    pidfds: Vec<OwnedFd>,
}

impl StoppedTree {
    /// Stops `child` and finds and stops all its descendants (Linux; nothing elsewhere).
    /// Best effort: what cannot be read or signalled is left to the group kill.
    pub(crate) fn stop(child: &Child) -> StoppedTree {
        #[cfg(target_os = "linux")]
        {
            linux::stop(child)
        }
        #[cfg(not(target_os = "linux"))]
        {
            let _ = child;
            StoppedTree::default()
        }
    }

    /// `SIGKILL` to every descendant found (stopped processes die of it at once).
    pub(crate) fn kill(self) {
        #[cfg(target_os = "linux")]
        for pidfd in &self.pidfds {
            let _ = rustix::process::pidfd_send_signal(pidfd, rustix::process::Signal::KILL);
        }
    }
}

#[cfg(target_os = "linux")]
mod linux {
    use std::collections::HashSet;
    use std::time::{Duration, Instant};

    use fork_sys::Signal;
    use rustix::process::{Pid, PidfdFlags, pidfd_open, pidfd_send_signal};

    use super::{MAX_DESCENDANTS, MAX_ROUNDS, StoppedTree};
    use crate::Child;

    /// How long a round waits for the processes it stopped to be stopped, before it lists
    /// their children (a process stopping has just returned from `fork`, at worst).
    const STOP_GRACE: Duration = Duration::from_millis(50);

    pub(super) fn stop(child: &Child) -> StoppedTree {
        let root = child.pid().as_raw();
        if child.status().is_some() {
            return StoppedTree::default(); // reaped: the pid may be a stranger's
        }
        // Stopped, the child cannot exit (and so be reaped behind our back) while we look.
        let _ = child.send_signal(Signal::STOP);
        // Its children are found by their parent pid, which must still be the child's: not
        // so once something else reaped it (`SIGCHLD` ignored).
        if !child.exit_fd().is_some_and(crate::killer::pid_still_ours) {
            return StoppedTree::default();
        }
        let mut members: HashSet<i32> = HashSet::from([root]);
        let mut just_stopped = vec![root];
        let mut tree = StoppedTree::default();
        for _ in 0..MAX_ROUNDS {
            wait_until_stopped(&just_stopped);
            just_stopped.clear();
            for (pid, ppid) in processes() {
                if !members.contains(&ppid) || members.contains(&pid) {
                    continue;
                }
                if tree.pidfds.len() >= MAX_DESCENDANTS {
                    return tree;
                }
                let Some(pidfd) =
                    Pid::from_raw(pid).and_then(|p| pidfd_open(p, PidfdFlags::empty()).ok())
                else {
                    continue; // gone already
                };
                // The pidfd names whatever has this pid now; it is ours only if its parent is
                // still one of the tree (a stopped process forks no stranger).
                if parent_of(pid) != Some(ppid) {
                    continue;
                }
                let _ = pidfd_send_signal(&pidfd, rustix::process::Signal::STOP);
                members.insert(pid);
                just_stopped.push(pid);
                tree.pidfds.push(pidfd);
            }
            if just_stopped.is_empty() {
                break;
            }
        }
        tree
    }

    /// Waits (at most [`STOP_GRACE`]) until every process of `pids` is stopped or gone.
    fn wait_until_stopped(pids: &[i32]) {
        let deadline = Instant::now() + STOP_GRACE;
        while pids
            .iter()
            .any(|&pid| state_of(pid).is_some_and(|s| !matches!(s, 'T' | 't' | 'Z' | 'X')))
            && Instant::now() < deadline
        {
            std::thread::sleep(Duration::from_millis(1));
        }
    }

    /// Every process visible in `/proc`, with its parent.
    fn processes() -> Vec<(i32, i32)> {
        let Ok(entries) = std::fs::read_dir("/proc") else {
            return Vec::new();
        };
        entries
            .filter_map(Result::ok)
            .filter_map(|entry| entry.file_name().to_str()?.parse::<i32>().ok())
            .filter_map(|pid| Some((pid, parent_of(pid)?)))
            .collect()
    }

    /// The fields of `/proc/<pid>/stat` after the command name: state, ppid, ...
    fn stat_fields(pid: i32) -> Option<String> {
        let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
        // "pid (comm) state ppid ...": comm may hold spaces and parentheses.
        let after = stat.rfind(')')? + 1;
        Some(stat[after..].to_owned())
    }

    fn parent_of(pid: i32) -> Option<i32> {
        stat_fields(pid)?.split_whitespace().nth(1)?.parse().ok()
    }

    fn state_of(pid: i32) -> Option<char> {
        stat_fields(pid)?.split_whitespace().next()?.chars().next()
    }
}
