//! `fork+_exit+waitpid`: the cost of creating and reaping a process, the floor under every
//! forking API (proc-core's `Process`, proc-pool's workers).

use fork_sys::{ChildHandle, Fork};

use crate::child::expect_success;
use crate::harness::{BenchResult, Contender, Scenario, Unit};
use crate::python;
use crate::scenarios::Context;

/// The floor under every forking API: `ops` times fork, `_exit(0)` in the child, `waitpid`.
pub(crate) fn raw_fork_wait(name: &str) -> Contender {
    Contender::timed(name, fork_wait_ops)
}

/// `ops` times fork, `_exit(0)` in the child, `waitpid` in the parent.
pub(crate) fn fork_wait_ops(ops: u64) -> BenchResult<()> {
    for _ in 0..ops {
        // SAFETY: the child only calls `_exit`, which takes no lock, so a lock that another
        // thread (a library's helper; the harness starts none) held at the fork cannot matter.
        match unsafe { fork_sys::fork()? } {
            Fork::Child => fork_sys::exit_immediately(0),
            Fork::Parent(pid) => expect_success(fork_sys::wait(pid)?, "forked child")?,
        }
    }
    Ok(())
}

/// Builds the scenario.
pub(crate) fn scenario(cx: &Context) -> BenchResult<Scenario> {
    let floor = raw_fork_wait("fork_sys::fork + _exit + fork_sys::wait");
    let child_handle = Contender::timed("fork + ChildHandle::new(pid).wait() (pidfd)", |ops| {
        for _ in 0..ops {
            // SAFETY: single-threaded harness; the child only calls `_exit`.
            match unsafe { fork_sys::fork()? } {
                Fork::Child => fork_sys::exit_immediately(0),
                Fork::Parent(pid) => {
                    expect_success(ChildHandle::new(pid).wait()?, "forked child")?;
                }
            }
        }
        Ok(())
    });
    Ok(Scenario::new(
        "fork+_exit+waitpid",
        "fork, `_exit(0)` in the child, `waitpid` in the parent",
        Unit::TimePerOp,
        cx.ops(200, 40),
        floor,
    )
    .note(
        "fork copies the parent's page tables, so its cost grows with the parent's memory: \
         this harness is a few MiB, a Python interpreter several times that, which is part of \
         Python's figure. `ChildHandle` adds opening a pidfd, which its waits with a timeout use.",
    )
    .contender(child_handle)
    .contender(python::contender(
        cx.python.as_ref(),
        "python3 os.fork + os._exit + os.waitpid",
        python::FORK_WAIT,
        [],
    )))
}
