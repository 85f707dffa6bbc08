//! `Process spawn+join`: run a closure in a forked child and get its typed result back
//! (proc-core), against the bare fork+wait floor and Python's `multiprocessing.Process`.

use crate::harness::{BenchResult, Contender, Scenario, Unit};
use crate::python;
use crate::scenarios::{Context, fork_wait};

/// Builds the scenario.
pub(crate) fn scenario(cx: &Context) -> BenchResult<Scenario> {
    let floor = fork_wait::raw_fork_wait("fork_sys::fork + _exit + wait (no value)");
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
