//! `pipe throughput`: bulk data to another process, the floor under large task arguments and
//! results and under `communicate`. Compares the default 64 KiB pipe with one enlarged to 1 MiB
//! through `F_SETPIPE_SZ`.

use std::fs::File;
use std::io::{ErrorKind, Read as _, Write as _};
use std::os::fd::OwnedFd;
use std::time::{Duration, Instant};

use crate::child::fork_helper;
use crate::cpu::{self, Placement};
use crate::harness::{BenchResult, Contender, Scenario, Unit};
use crate::scenarios::Context;

/// Bytes per `write`: one op.
pub(crate) const CHUNK: usize = 64 * 1024;
/// The enlarged pipe's size.
const BIG_PIPE: usize = 1024 * 1024;
/// The reader's buffer: it takes whatever the pipe holds, up to this much per `read`.
const READ_BUFFER: usize = 1024 * 1024;

/// Builds the scenario. The floor pins writer and reader to two different CPUs, as in the
/// ping-pong scenario (see `cpu.rs`).
pub(crate) fn scenario(cx: &Context) -> BenchResult<Scenario> {
    // 64 MiB per batch, 16 MiB under --quick.
    let writes = cx.ops(1024, 256);
    let big_pipe = probe_pipe_size();
    let contender = |pipe_size: Option<usize>, placement: Placement| {
        let pipe = match pipe_size {
            None => "default 64 KiB pipe",
            Some(_) => "pipe enlarged to 1 MiB",
        };
        let name = format!("{pipe}, {placement}");
        match (&big_pipe, pipe_size) {
            (Err(err), Some(_)) => {
                Contender::skipped(name, format!("F_SETPIPE_SZ unavailable: {err}"))
            }
            _ => Contender::self_timed(name, move |writes| stream(writes, pipe_size, placement)),
        }
    };
    let scenario = |floor: Contender| {
        Scenario::new(
            "pipe throughput",
            "a 64 KiB `write` to a pipe drained by a forked reader",
            Unit::Throughput {
                bytes_per_op: CHUNK as u64,
            },
            writes,
            floor,
        )
        .note(
            "The floor pins writer and reader to two CPUs, as a producer and a consumer that both \
             work would run; there a 1 MiB pipe lets the writer run further ahead and multiplies \
             throughput. On one CPU the two take turns, and the default 64 KiB pipe, which stays \
             in cache, is the fastest; an enlarged pipe is slower there. Unpinned rows show what \
             the scheduler chose in this run; on the development VM that was one CPU for short \
             streams and two for long ones.",
        )
    };
    Ok(match cpu::two_cpus() {
        Some((first, second)) => {
            let across = Placement::Across(first, second);
            let same = Placement::Same(first);
            scenario(contender(None, across))
                .contender(contender(Some(BIG_PIPE), across))
                .contender(contender(None, same))
                .contender(contender(Some(BIG_PIPE), same))
                .contender(contender(None, Placement::Unpinned))
                .contender(contender(Some(BIG_PIPE), Placement::Unpinned))
        }
        None => scenario(contender(None, Placement::Unpinned))
            .contender(contender(Some(BIG_PIPE), Placement::Unpinned)),
    })
}

/// Whether this system lets us enlarge a pipe to `BIG_PIPE` (Linux only, and capped by
/// `/proc/sys/fs/pipe-max-size`).
fn probe_pipe_size() -> std::io::Result<()> {
    let (_read, write) = fork_sys::pipe()?;
    fork_sys::set_pipe_size(&write, BIG_PIPE).map(drop)
}

/// Forks a reader (untimed), then times `writes` writes of `CHUNK` bytes until the reader has
/// read them all.
pub(crate) fn stream(
    writes: u64,
    pipe_size: Option<usize>,
    placement: Placement,
) -> BenchResult<Duration> {
    let _pin = placement.pin_parent()?;
    let (data_read, data_write) = fork_sys::pipe()?;
    if let Some(size) = pipe_size {
        fork_sys::set_pipe_size(&data_write, size)?;
    }
    let (ack_read, ack_write) = fork_sys::pipe()?;
    // Both buffers exist before the fork, so the child does not allocate.
    let chunk = vec![0xa5u8; CHUNK];
    let mut sink = vec![0u8; READ_BUFFER];
    let ((data_write, ack_read), reader) = fork_helper(
        "pipe reader",
        (data_write, ack_read),
        (data_read, ack_write),
        move |(data, ack)| drain(data, ack, &mut sink),
    )?;
    placement.pin_child(reader.pid())?;
    let (mut data, mut ack) = (File::from(data_write), File::from(ack_read));
    let start = Instant::now();
    for _ in 0..writes {
        data.write_all(&chunk)?;
    }
    drop(data);
    // The reader acknowledges once it has seen end of file: only then has every byte crossed.
    let mut received = [0u8; 8];
    ack.read_exact(&mut received)?;
    let elapsed = start.elapsed();
    reader.wait_success()?;
    let (received, sent) = (u64::from_ne_bytes(received), writes * CHUNK as u64);
    if received != sent {
        return Err(format!("the reader got {received} bytes of {sent}").into());
    }
    Ok(elapsed)
}

/// The child: reads `data` until end of file, discarding the bytes, then writes their count to
/// `ack`.
fn drain(data: OwnedFd, ack: OwnedFd, buffer: &mut [u8]) -> i32 {
    let mut data = File::from(data);
    let mut total: u64 = 0;
    loop {
        match data.read(buffer) {
            Ok(0) => break,
            Ok(n) => total += n as u64,
            Err(err) if err.kind() == ErrorKind::Interrupted => {}
            Err(_) => return 1,
        }
    }
    match File::from(ack).write_all(&total.to_ne_bytes()) {
        Ok(()) => 0,
        Err(_) => 1,
    }
}
