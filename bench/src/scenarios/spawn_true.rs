//! `spawn /bin/true`: running a program and waiting for it. The floor is glibc's `posix_spawn`
//! with nothing to do but exec, through `fork_sys::spawn` (which uses it for such a request);
//! proc-spawn, std's `Command` (also `posix_spawn` when it can) and Python are measured against it.

use std::ffi::CString;
use std::process::Command;

use fork_sys::exec::{self, CStringArray};
use fork_sys::{Fork, SpawnMethod, SpawnRequest};

use crate::child::expect_success;
use crate::harness::{BenchResult, Contender, Scenario, Unit};
use crate::python;
use crate::scenarios::Context;

const PROGRAM: &str = "/bin/true";

/// Builds the scenario.
pub(crate) fn scenario(cx: &Context) -> BenchResult<Scenario> {
    let std_command = Contender::timed("std::process::Command::status", |ops| {
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
    let floor = posix_spawn_floor(
        program.clone(),
        CStringArray::new([PROGRAM])?,
        CStringArray::from_current_env()?,
    );
    let proc_spawn = Contender::timed("proc_spawn::call", |ops| {
        for _ in 0..ops {
            expect_success(proc_spawn::call([PROGRAM])?, PROGRAM)?;
        }
        Ok(())
    });
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
        "The floor is `posix_spawn` asked for nothing but the exec (no fd closing, no \
         redirection) and a `waitpid`. proc-spawn adds what a real spawn needs: the `PATH` \
         lookup, the environment, a child that sees only fds 0-2 (fork-sys's own vfork-style \
         child, which takes a table of its own holding only those), a pidfd to wait on (from \
         `clone`). std's `Command` also uses `posix_spawn` (vfork underneath) when its \
         options allow, so neither cost grows with the parent's memory; plain fork+exec copies \
         the page tables first, cheap for this small harness and not for a large program. \
         Python's `subprocess` uses vfork too on Linux (since 3.10).",
    )
    .contender(proc_spawn)
    .contender(std_command)
    .contender(fork_exec)
    .contender(python::contender(
        cx.python.as_ref(),
        "python3 subprocess.run",
        python::SPAWN_TRUE,
        [],
    )))
}

/// `posix_spawn` + `waitpid` with a request that needs nothing of the child but the exec.
fn posix_spawn_floor(program: CString, argv: CStringArray, envp: CStringArray) -> Contender {
    const NAME: &str = "posix_spawn + wait (fork_sys::spawn_by)";
    if !SpawnRequest::new(&program, &argv, &envp).can_use(SpawnMethod::PosixSpawn) {
        return Contender::skipped(NAME, "fork_sys has posix_spawn on Linux/glibc only");
    }
    Contender::timed(NAME, move |ops| {
        let mut request = SpawnRequest::new(&program, &argv, &envp);
        request.close_fds = false;
        for _ in 0..ops {
            let pid = fork_sys::spawn_by(&request, SpawnMethod::PosixSpawn)?;
            expect_success(fork_sys::wait(pid)?, PROGRAM)?;
        }
        Ok(())
    })
}
