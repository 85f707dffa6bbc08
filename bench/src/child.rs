//! Forked helper children (an echo process, a pipe reader) that are always reaped, even when a
//! batch fails halfway.

use std::io::{self, Write as _};
use std::panic::{self, AssertUnwindSafe};

use fork_sys::{ExitStatus, Fork, Pid, Signal};

use crate::harness::BenchResult;

/// A forked child that must be reaped. [`Reaper::wait_success`] reaps it normally; dropping an
/// unreaped `Reaper` (a batch that failed with `?`) kills the child and reaps it, so no error
/// path leaves a zombie or a child blocked forever on a pipe.
#[derive(Debug)]
pub(crate) struct Reaper {
    pid: Pid,
    what: &'static str,
    reaped: bool,
}

impl Reaper {
    /// The child's pid.
    pub(crate) fn pid(&self) -> Pid {
        self.pid
    }

    /// Waits for the child to end and fails unless it exited with code 0.
    pub(crate) fn wait_success(mut self) -> BenchResult<()> {
        self.reaped = true;
        expect_success(fork_sys::wait(self.pid)?, self.what)
    }
}

impl Drop for Reaper {
    fn drop(&mut self) {
        if !self.reaped {
            // Best effort on an error path that already reports its own error.
            let _ = fork_sys::kill(self.pid, Signal::KILL);
            let _ = fork_sys::wait(self.pid);
        }
    }
}

/// Forks a helper child called `what` (for error messages). The child closes `parent_ends`,
/// runs `body(child_ends)` and leaves with `_exit(code)`, `code` being what `body` returned
/// (101 if it panicked). The parent closes `child_ends` and gets `parent_ends` back with the
/// child's [`Reaper`].
///
/// `body` should only read, write and compute: the children of this harness do nothing else.
pub(crate) fn fork_helper<P, C>(
    what: &'static str,
    parent_ends: P,
    child_ends: C,
    body: impl FnOnce(C) -> i32,
) -> io::Result<(P, Reaper)> {
    io::stdout().flush()?;
    // SAFETY: the bench binary never starts a thread, so no lock is held by a thread that fork
    // leaves behind. The child only runs `body` (reads and writes on its own fds), then leaves
    // through `exit_immediately` without returning into the parent's stack: a panic is caught.
    match unsafe { fork_sys::fork()? } {
        Fork::Child => {
            drop(parent_ends);
            let code = panic::catch_unwind(AssertUnwindSafe(|| body(child_ends))).unwrap_or(101);
            fork_sys::exit_immediately(code)
        }
        Fork::Parent(pid) => {
            drop(child_ends);
            Ok((
                parent_ends,
                Reaper {
                    pid,
                    what,
                    reaped: false,
                },
            ))
        }
    }
}

/// Fails unless `status` is a clean exit with code 0.
pub(crate) fn expect_success(status: ExitStatus, what: &str) -> BenchResult<()> {
    if status.success() {
        Ok(())
    } else {
        Err(format!("{what} {status}").into())
    }
}
