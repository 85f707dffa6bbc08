//! `Connection round trip`: a typed value to a child process and back over `proc_core::pipe`,
//! against raw 8-byte pipe round trips and Python's `multiprocessing.Pipe`.

use std::time::{Duration, Instant};

use crate::cpu::{self, Placement};
use crate::harness::{BenchResult, Contender, Scenario, Unit};
use crate::python;
use crate::scenarios::{Context, pipe_ping_pong};

/// Builds the scenario. Every contender runs parent and child on one CPU when it can (see
/// `cpu.rs`: across CPUs the wake-ups dominate and hide the difference in code).
pub(crate) fn scenario(cx: &Context) -> BenchResult<Scenario> {
    let placement =
        cpu::two_cpus().map_or(Placement::Unpinned, |(first, _)| Placement::Same(first));
    let floor = Contender::self_timed(
        format!("raw 8-byte pipe round trip, {placement}"),
        move |ops| pipe_ping_pong::round_trips(ops, placement),
    );
    let connection = Contender::self_timed(
        format!("proc_core::pipe::<u64, u64> send+recv, {placement}"),
        move |ops| connection_round_trips(ops, placement),
    );
    Ok(Scenario::new(
        "Connection round trip",
        "send a u64 to an echo child process and receive it back",
        Unit::TimePerOp,
        cx.ops(2000, 400),
        floor,
    )
    .note(
        "The Connection pays for framing, bincode and a Unix socket instead of a pipe; the \
         child is a `proc_core::Process`, Python's a `multiprocessing.Process` with a `Pipe`. \
         The Python script must close the child's inherited copy of the parent's end by hand, \
         or its echo child never sees EOF and the final join hangs for ever (it did, the first \
         time this benchmark ran); dropping a proc-core end shuts the socket down for every copy.",
    )
    .contender(connection)
    .contender(python::contender(
        cx.python.as_ref(),
        format!("python3 multiprocessing.Pipe send+recv, {placement}"),
        python::CONNECTION_PING_PONG,
        placement.script_args(),
    )))
}

fn connection_round_trips(ops: u64, placement: Placement) -> BenchResult<Duration> {
    let _pin = placement.pin_parent()?;
    let (mut ours, mut theirs) = proc_core::pipe::<u64, u64>()?;
    let echo = proc_core::Process::spawn(move || {
        let mut echoed = 0u64;
        while let Ok(value) = theirs.recv() {
            if theirs.send(&value).is_err() {
                break;
            }
            echoed += 1;
        }
        echoed
    })?;
    placement.pin_child(echo.pid())?;
    let start = Instant::now();
    for i in 0..ops {
        ours.send(&i)?;
        let back = ours.recv()?;
        if back != i {
            return Err(format!("the echo child sent back {back}, expected {i}").into());
        }
    }
    let elapsed = start.elapsed();
    drop(ours);
    let echoed = echo.join()?;
    if echoed != ops {
        return Err(format!("the echo child echoed {echoed} values, expected {ops}").into());
    }
    Ok(elapsed)
}
