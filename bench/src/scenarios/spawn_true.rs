//! `spawn /bin/true`: running a program and waiting for it, the floor under proc-spawn. std's
//! `Command` is the floor: it uses `posix_spawn` (vfork underneath) when it can.

use std::ffi::CString;
use std::process::Command;

use fork_sys::Fork;
use fork_sys::exec::{self, CStringArray};

use crate::child::expect_success;
use crate::harness::{BenchResult, Contender, Scenario, Unit};
use crate::python;
use crate::scenarios::Context;

const PROGRAM: &str = "/bin/true";

/// Builds the scenario.
pub(crate) fn scenario(cx: &Context) -> BenchResult<Scenario> {
    let floor = Contender::timed("std::process::Command::status", |ops| {
        for _ in 0..ops {
            let status = Command::new(PROGRAM).status()?;
            if !status.success() {
                return Err(format!("{PROGRAM} {status}").into());
            }
        }
        Ok(())
    });

    // Everything the child needs is built before forking.
    let program = CString::new(PROGRAM)?;
    let argv = CStringArray::new([PROGRAM])?;
    let envp = CStringArray::from_current_env()?;
    let fork_exec = Contender::timed("fork_sys::fork + exec + wait", move |ops| {
        for _ in 0..ops {
            // SAFETY: single-threaded harness; the child only calls execve, then `_exit` if
            // that failed.
            match unsafe { fork_sys::fork()? } {
                Fork::Child => {
                    let _failed = exec::exec(&program, &argv, &envp);
                    fork_sys::exit_immediately(127)
                }
                Fork::Parent(pid) => expect_success(fork_sys::wait(pid)?, PROGRAM)?,
            }
        }
        Ok(())
    });

    Ok(Scenario::new(
        "spawn /bin/true",
        "start `/bin/true` and wait for it",
        Unit::TimePerOp,
        cx.ops(100, 20),
        floor,
    )
    .note(
        "std's `Command` uses `posix_spawn` (vfork underneath) when its options allow, so its \
         cost does not grow with the parent's memory; plain fork+exec copies the page tables \
         first, cheap for this small harness and not for a large program. Python's \
         `subprocess` uses vfork too on Linux (since 3.10).",
    )
    .contender(fork_exec)
    .contender(python::contender(
        cx.python.as_ref(),
        "python3 subprocess.run",
        python::SPAWN_TRUE,
        [],
    )))
}
