//! `pipe ping-pong 8 B`: one small message to another process and back, the floor under every
//! request/response exchange (`proc_core::pipe`, a pool task and its result).

use std::fs::File;
use std::io::{ErrorKind, Read as _, Write as _};
use std::os::fd::OwnedFd;
use std::time::{Duration, Instant};

use crate::child::fork_helper;
use crate::cpu::{self, PinnedFirst, Placement};
use crate::harness::{BenchResult, Contender, Scenario, Unit};
use crate::python;
use crate::scenarios::Context;

const MESSAGE: [u8; 8] = *b"pingpong";

/// Builds the scenario.
///
/// Placement decides the cost (see `cpu.rs`), so every contender states it. The floor pins
/// parent and child to one CPU: a round trip is then two context switches and nothing else.
/// Across two CPUs each message is a cross-CPU wake-up instead. Unpinned rows show what the
/// scheduler picks, which is what code that does not pin (a library) gets.
pub(crate) fn scenario(cx: &Context) -> BenchResult<Scenario> {
    let python = |placement: Placement| {
        python::contender(
            cx.python.as_ref(),
            format!("python3 os.pipe + os.fork, {placement}"),
            python::PING_PONG,
            placement.script_args(),
        )
    };
    let scenario = |floor: Contender| {
        Scenario::new(
            "pipe ping-pong 8 B",
            "parent writes 8 bytes to a forked child, which echoes them back on a second pipe",
            Unit::TimePerOp,
            cx.ops(2000, 400),
            floor,
        )
        .note(
            "Where the two processes run decides the cost, so every row says so (pinned with \
             `sched_setaffinity`). On one CPU a round trip is two context switches; across two \
             CPUs every message wakes the other CPU, which is an order of magnitude slower, \
             more so in a VM. Left unpinned, the scheduler usually keeps a tight ping-pong on one \
             CPU, but not reliably: Python's unpinned round trip has ranged from about 5 to 60 µs \
             between runs on the development VM. A pool therefore wins by keeping several tasks in \
             flight per wake-up, not by shaving instructions.",
        )
    };
    Ok(cpu::rows_by_placement(
        PinnedFirst::Same,
        scenario,
        rust,
        python,
    ))
}

/// The Rust contender for `placement`: `std::fs::File`s over fork-sys pipes.
fn rust(placement: Placement) -> Contender {
    Contender::self_timed(format!("Rust File pipes, {placement}"), move |ops| {
        round_trips(ops, placement)
    })
}

/// Forks an echo child (untimed), then times `ops` round trips.
pub(crate) fn round_trips(ops: u64, placement: Placement) -> BenchResult<Duration> {
    let _pin = placement.pin_parent()?;
    let (request_read, request_write) = fork_sys::pipe()?;
    let (response_read, response_write) = fork_sys::pipe()?;
    let ((request_write, response_read), echo) = fork_helper(
        "echo child",
        (request_write, response_read),
        (request_read, response_write),
        |(input, output)| echo(input, output),
    )?;
    placement.pin_child(echo.pid())?;
    let (mut to_child, mut from_child) = (File::from(request_write), File::from(response_read));
    let mut answer = [0u8; 8];
    let start = Instant::now();
    for _ in 0..ops {
        to_child.write_all(&MESSAGE)?;
        from_child.read_exact(&mut answer)?;
    }
    let elapsed = start.elapsed();
    if answer != MESSAGE {
        return Err(format!("the echo child sent back {answer:?}").into());
    }
    // End of file tells the child to exit.
    drop(to_child);
    echo.wait_success()?;
    Ok(elapsed)
}

/// The child: copies 8-byte messages from `input` to `output` until end of file.
fn echo(input: OwnedFd, output: OwnedFd) -> i32 {
    let (mut input, mut output) = (File::from(input), File::from(output));
    let mut message = [0u8; 8];
    loop {
        match input.read_exact(&mut message) {
            Ok(()) => {}
            Err(err) if err.kind() == ErrorKind::UnexpectedEof => return 0,
            Err(_) => return 1,
        }
        if output.write_all(&message).is_err() {
            return 1;
        }
    }
}
