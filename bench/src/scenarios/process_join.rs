//! `Process spawn+join`: run a closure in a forked child and get its typed result back
//! (proc-core), against the bare fork+wait floor and Python's `multiprocessing.Process`.

use fork_sys::Fork;

use crate::child::expect_success;
use crate::harness::{BenchResult, Contender, Scenario, Unit};
use crate::python;
use crate::scenarios::Context;

/// Builds the scenario.
pub(crate) fn scenario(cx: &Context) -> BenchResult<Scenario> {
    let floor = Contender::timed("fork_sys::fork + _exit + wait (no value)", |ops| {
        for _ in 0..ops {
            // SAFETY: single-threaded harness; the child only calls `_exit`.
            match unsafe { fork_sys::fork()? } {
                Fork::Child => fork_sys::exit_immediately(0),
                Fork::Parent(pid) => expect_success(fork_sys::wait(pid)?, "forked child")?,
            }
        }
        Ok(())
    });
    let process = Contender::timed("proc_core::Process::spawn(|| u64).join()", |ops| {
        for i in 0..ops {
            let value = proc_core::Process::spawn(move || i * 3)?.join()?;
            if value != i * 3 {
                return Err(format!("child returned {value}, expected {}", i * 3).into());
            }
        }
        Ok(())
    });
    Ok(Scenario::new(
        "Process spawn+join",
        "start a child running a closure, wait for it, get its result back",
        Unit::TimePerOp,
        cx.ops(200, 40),
        floor,
    )
    .note(
        "proc-core's figure includes what the floor leaves out: a result pipe, a pidfd, holding \
         the std stream locks across the fork, and one bincode frame back. Python's \
         `Process` returns no value at all (that would need a `Queue` or `Pipe` on top).",
    )
    .contender(process)
    .contender(python::contender(
        cx.python.as_ref(),
        "python3 multiprocessing.Process (fork) start+join",
        python::PROCESS_JOIN,
        [],
    )))
}
