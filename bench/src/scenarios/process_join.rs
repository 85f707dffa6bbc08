//! `Process spawn+join`: run a closure in a forked child and get its typed result back
//! (proc-core), against the bare fork+wait floor and Python's `multiprocessing.Process`.

use std::fs::File;
use std::io::{Read as _, Write as _};
use std::os::fd::AsFd as _;
use std::sync::atomic::Ordering;

use fork_sys::{Fork, Interest};

use crate::child::expect_success;
use crate::harness::{BenchResult, Contender, Scenario, Unit};
use crate::python;
use crate::scenarios::{Context, fork_wait};

/// `ops` times: a pipe, fork, the child writes an 8-byte value and `_exit`s; the parent
/// sleeps on the child's pidfd alone (waking on the pipe too would wake it twice), then reads
/// the value and reaps: what any "run a function in a child and get its value back" must
/// do, with nothing else.
fn fork_value_ops(ops: u64) -> BenchResult<()> {
    for i in 0..ops {
        let (read, write) = fork_sys::pipe()?;
        // SAFETY: the child only writes to a pipe and calls `_exit`, which take no lock, so
        // a lock another thread held at the fork (the harness starts none) cannot matter.
        match unsafe { fork_sys::fork()? } {
            Fork::Child => {
                let code = File::from(write).write_all(&(i * 3).to_le_bytes()).is_err();
                fork_sys::exit_immediately(i32::from(code))
            }
            Fork::Parent(pid) => {
                drop(write);
                let exit = fork_sys::process_exit_fd(pid)?;
                fork_sys::poll(&[(exit.as_fd(), Interest::Read)], None)?;
                let mut value = [0u8; 8];
                File::from(read).read_exact(&mut value)?;
                expect_success(fork_sys::wait(pid)?, "forked child")?;
                if u64::from_le_bytes(value) != i * 3 {
                    return Err("the child's value did not arrive".into());
                }
            }
        }
    }
    Ok(())
}

/// `ops` times: fork, the child stores an 8-byte value in memory it shares with the parent
/// (an anonymous `MAP_SHARED` mapping made once) and `_exit`s; the parent `waitpid`s, then
/// loads the value. The least any way of getting a value back can cost: no descriptor, one
/// sleep. It holds no more than 8 bytes, though: a value of any size needs room the child can
/// fill without the parent, which is what proc-core's result file adds.
fn fork_shared_value_ops(ops: u64) -> BenchResult<()> {
    let shared = fork_sys::SharedRegion::new(8)?;
    for i in 0..ops {
        // SAFETY: the child only stores to shared memory and calls `_exit`, which take no
        // lock, so a lock another thread held at the fork (the harness starts none) cannot
        // matter.
        match unsafe { fork_sys::fork()? } {
            Fork::Child => {
                shared.u64(0).store(i * 3, Ordering::Release);
                fork_sys::exit_immediately(0)
            }
            Fork::Parent(pid) => {
                expect_success(fork_sys::wait(pid)?, "forked child")?;
                if shared.u64(0).load(Ordering::Acquire) != i * 3 {
                    return Err("the child's value did not arrive".into());
                }
            }
        }
    }
    Ok(())
}

const FLOOR: &str = "fork_sys::fork + _exit + wait (no value)";
const PROCESS: &str = "proc_core::Process::spawn(|| u64).join()";

/// Builds the scenario.
pub(crate) fn scenario(cx: &Context) -> BenchResult<Scenario> {
    let floor = fork_wait::raw_fork_wait(FLOOR);
    let process = Contender::timed(PROCESS, |ops| {
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
        "proc-core's figure includes what the floor leaves out: the child's report written to \
         a memory file the running children share (made for the first of them, closed with \
         the last), holding the std stream locks across the fork, its stack-overflow report, \
         and one bincode frame back; the parent waits with a plain `waitpid` and opens no \
         descriptor of the child's own. The second row does the least any way of getting a \
         value back can do (8 bytes in memory shared before the fork, read after the \
         `waitpid`), but holds only those 8 bytes. The third gets it back through a pipe, \
         as proc-core did before Dec 2026 and does when its 1,024 slots are all taken: a \
         pipe, a pidfd the parent sleeps on (its poll wakes once, on the exit), the value read. \
         Each page either process writes while both live is a copy-on-write fault, as is each \
         64 KiB window of code the child runs (fork does not copy the page tables of the \
         program's text): what proc-core adds to the second row is mostly such faults (std's \
         stdout flush in the child, the std stream locks' page on both sides) and the memory \
         file's creation. Python's `Process` returns no value at all (that would need a \
         `Queue` or `Pipe` on top).",
    )
    .contender(Contender::timed(
        "fork + 8-byte value in shared memory, read after waitpid",
        fork_shared_value_ops,
    ))
    .contender(Contender::timed(
        "fork + 8-byte value through a pipe, read after the pidfd's poll, + wait",
        fork_value_ops,
    ))
    .contender(process)
    .contender(python::contender(
        cx.python.as_ref(),
        "python3 multiprocessing.Process (fork) start+join",
        python::PROCESS_JOIN,
        [],
    ))
    // Batches of 20 ops in 150 rounds rather than 200 in 15, each round starting one
    // contender further on: each figure is a few tenths of a millisecond, and the VM's slow
    // spells last longer than a batch of 20 but shorter than one of 200, so coarse turns put
    // them on one row and not another (the spawn+join ratio read 1.36x and 1.49x in two full
    // runs of the same code, Dec 4 2026; a harness taking turns op by op read 1.16-1.18x).
    .interleave(10)
    .goal("spawn+join ≤ 1.3× the bare fork", PROCESS, FLOOR, 1.3))
}
