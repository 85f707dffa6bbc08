//! `communicate 256 MiB through cat`: a child's stdin and stdout driven together, the job of
//! `Popen.communicate`. The floor is the raw pipe: the same bytes written once into a pipe to a
//! reader that discards them (the `pipe throughput` scenario's floor: default pipe size, the
//! two ends on two CPUs). Through `cat` every byte crosses two pipes and is copied by `cat` in
//! between, and the output lands in memory the reader must fault in unless it reuses a
//! buffer: the C-equivalent rows (a bare `poll` loop through the same `cat`) are the limits of
//! each way of returning the output.

use std::io::Write as _;
use std::os::fd::{AsFd, BorrowedFd};
use std::process::Stdio as StdStdio;
use std::time::Instant;

use fork_sys::Interest;
use proc_spawn::{Command, Stdio};
use rustix::buffer::spare_capacity;
use rustix::io::Errno;

use crate::cpu::{self, Placement};
use crate::harness::{BenchResult, Contender, Scenario, Unit};
use crate::python;
use crate::scenarios::Context;
use crate::scenarios::pipe_throughput::{self, CHUNK};

/// Bytes per op.
const SIZE: usize = 256 * 1024 * 1024;

/// The C-equivalent loop's pipe size, as proc-spawn's (`F_SETPIPE_SZ`).
const BIG_PIPE: usize = 1024 * 1024;

/// `subprocess.run(["cat"], input=data, capture_output=True)` on 256 MiB, checking the length.
const PYTHON_COMMUNICATE: &str = r#"
import subprocess, sys, time
n = int(sys.argv[1])
data = bytes(range(256)) * (256 * 1024 * 1024 // 256)
start = time.perf_counter()
for _ in range(n):
    out = subprocess.run(["cat"], input=data, capture_output=True).stdout
    if len(out) != len(data):
        sys.exit("cat returned %d bytes" % len(out))
print(time.perf_counter() - start)
"#;

/// Builds the scenario.
pub(crate) fn scenario(cx: &Context) -> BenchResult<Scenario> {
    // Pinned across two CPUs, as the pipe throughput scenario's floor: unpinned, the scheduler
    // sometimes puts both ends on one CPU, and the floor would swing between 1 and 8 GB/s.
    let placement = match cpu::two_cpus() {
        Some((first, second)) => Placement::Across(first, second),
        None => Placement::Unpinned,
    };
    let floor_name =
        format!("raw pipe: 64 KiB writes to a draining reader, default pipe, {placement}");
    let floor = Contender::self_timed(floor_name, move |ops| {
        let writes = ops * (SIZE / CHUNK) as u64;
        pipe_throughput::stream(writes, None, placement)
    });
    // The 256 MiB input is made per batch (untimed) and freed after it: held for the whole
    // run, it would make every fork of the other scenarios copy its page tables (a fork of a
    // process holding 512 MiB costs milliseconds, not microseconds).
    let proc_spawn = Contender::self_timed("proc_spawn Child::communicate", |ops| {
        let data = input();
        let start = Instant::now();
        for _ in 0..ops {
            let mut child = Command::new("cat")
                .stdin(Stdio::piped())
                .stdout(Stdio::piped())
                .spawn()?;
            let (out, _) = child.communicate(Some(&data), None)?;
            check(out.len(), child.wait()?.success())?;
        }
        Ok(start.elapsed())
    });
    let proc_spawn_into = Contender::self_timed(
        "proc_spawn Child::communicate_into, a reused buffer",
        |ops| {
            let data = input();
            let (mut out, mut err) = (prefaulted(), Vec::new());
            let start = Instant::now();
            for _ in 0..ops {
                out.clear();
                let mut child = Command::new("cat")
                    .stdin(Stdio::piped())
                    .stdout(Stdio::piped())
                    .spawn()?;
                let status = child.communicate_into(Some(&data), &mut out, &mut err, None)?;
                check(out.len(), status.success())?;
            }
            Ok(start.elapsed())
        },
    );
    let c_fresh = Contender::self_timed(
        "C-equivalent poll loop, 1 MiB pipes, into a fresh buffer",
        |ops| {
            let data = input();
            let start = Instant::now();
            for _ in 0..ops {
                // malloc's: a fresh mapping the reads fault in page by page.
                let mut out = Vec::with_capacity(SIZE + PAD);
                poll_loop(&data, &mut out)?;
            }
            Ok(start.elapsed())
        },
    );
    let c_reused = Contender::self_timed(
        "C-equivalent poll loop, 1 MiB pipes, into a reused buffer",
        |ops| {
            let data = input();
            let mut out = prefaulted();
            let start = Instant::now();
            for _ in 0..ops {
                out.clear();
                poll_loop(&data, &mut out)?;
            }
            Ok(start.elapsed())
        },
    );
    let std_command =
        Contender::self_timed("std Command, a writer thread + wait_with_output", |ops| {
            let data = input();
            let start = Instant::now();
            for _ in 0..ops {
                let mut child = std::process::Command::new("cat")
                    .stdin(StdStdio::piped())
                    .stdout(StdStdio::piped())
                    .spawn()?;
                let mut stdin = child.stdin.take().ok_or("no stdin")?;
                let data = &data;
                let output = std::thread::scope(|scope| {
                    scope.spawn(move || stdin.write_all(data));
                    child.wait_with_output()
                })?;
                check(output.stdout.len(), output.status.success())?;
            }
            Ok(start.elapsed())
        });
    Ok(Scenario::new(
        "communicate 256 MiB through cat",
        "write 256 MiB to `cat` and read them back, at once",
        Unit::Throughput {
            bytes_per_op: SIZE as u64,
        },
        cx.ops(1, 1),
        floor,
    )
    .note(
        "The raw pipe overstates what any `communicate` can reach: every byte also crosses \
         `cat` and a second pipe, and the output has to land in memory, where memory never \
         touched before costs a page fault per 4 KiB page. The C-equivalent rows are a bare loop \
         (what a C program would do: both pipes non-blocking and enlarged to 1 MiB, one \
         `poll`, `read`/`write` until `EAGAIN`, no other work) through the same `cat`; the \
         one into a fresh buffer (malloc'd at the known size, faulted in by the reads as it \
         fills) is what a plain loop reaches returning the output as a new `Vec` \
         (`communicate`); the one into a buffer reused across ops (faulted in once, before) \
         is the physical limit for output into the caller's buffer (`communicate_into`), and \
         for any `communicate`, since a fresh buffer can at best be faulted in as cheaply. \
         proc-spawn enlarges both pipes to 1 MiB once they carry bulk, writes and reads in \
         one `poll` loop on non-blocking pipes, and reads straight into the spare capacity \
         of the output buffer (no zeroing, no copy; it grows by doubling, where the C loop \
         knows the size). A large output is faulted in 2 MiB ahead of the reads \
         (`MADV_POPULATE_WRITE`, Linux 5.14+): a `read` that faults as it copies does so \
         holding the pipe's lock, so `cat`'s writes wait; populated first, the read only \
         copies. That is how `communicate` into a fresh `Vec` can beat the plain C loop \
         into a fresh buffer. Tried and not taken (bench/c/communicate_floor.c, the \
         development VM, Dec 2026): huge pages for the output (`MADV_HUGEPAGE`), from half \
         to twice the CPU time from run to run (compaction), and a writer thread (std's \
         way), no faster. Python's `communicate` \
         writes at most `PIPE_BUF` (4 KiB) per `poll` wake-up and reads 32 KiB chunks that it \
         joins at the end.",
    )
    .contender(c_fresh)
    .contender(c_reused)
    .contender(proc_spawn)
    .contender(proc_spawn_into)
    .contender(std_command)
    .contender(python::contender(
        cx.python.as_ref(),
        "python3 subprocess.run(input=…, capture_output=True)",
        PYTHON_COMMUNICATE,
        [],
    )))
}

/// The bytes sent through `cat`.
fn input() -> Vec<u8> {
    (0..SIZE).map(|i| i as u8).collect()
}

/// Room past the output, so that the read that sees end-of-file has somewhere to go.
const PAD: usize = 4096;

/// An output buffer of `SIZE` bytes whose pages are all mapped already: one reused across ops.
fn prefaulted() -> Vec<u8> {
    let mut out = vec![0u8; SIZE + PAD];
    out.clear();
    out
}

/// The C-equivalent exchange: `cat` with its stdin and stdout piped, both ends non-blocking
/// and enlarged to 1 MiB, driven by one `poll` loop that writes and reads until `EAGAIN`,
/// reading into `out`'s spare capacity (which must hold the whole output).
fn poll_loop(data: &[u8], out: &mut Vec<u8>) -> BenchResult<()> {
    let mut child = std::process::Command::new("cat")
        .stdin(StdStdio::piped())
        .stdout(StdStdio::piped())
        .spawn()?;
    let mut stdin = Some(child.stdin.take().ok_or("no stdin")?);
    let stdout = child.stdout.take().ok_or("no stdout")?;
    for fd in [stdout.as_fd(), stdin.as_ref().ok_or("no stdin")?.as_fd()] {
        fork_sys::set_nonblocking(fd, true)?;
        let _ = fork_sys::set_pipe_size(fd, BIG_PIPE);
    }
    let mut written = 0;
    loop {
        let mut fds: Vec<(BorrowedFd<'_>, Interest)> = vec![(stdout.as_fd(), Interest::Read)];
        if let Some(stdin) = &stdin {
            fds.push((stdin.as_fd(), Interest::Write));
        }
        let ready = fork_sys::poll(&fds, None)?;
        if ready.get(1).is_some_and(|r| r.is_ready()) {
            if let Some(pipe) = &stdin {
                loop {
                    match rustix::io::write(pipe, &data[written..]) {
                        Ok(n) => written += n,
                        Err(Errno::AGAIN | Errno::INTR) => break,
                        Err(err) => return Err(err.into()),
                    }
                    if written == data.len() {
                        stdin = None;
                        break;
                    }
                }
            }
        }
        if ready[0].is_ready() && read_until_blocked(&stdout, out)? {
            break;
        }
    }
    check(out.len(), child.wait()?.success())
}

/// Reads until `EAGAIN` (`false`) or end-of-file (`true`) into `out`'s spare capacity.
fn read_until_blocked(pipe: impl AsFd, out: &mut Vec<u8>) -> BenchResult<bool> {
    loop {
        if out.len() == out.capacity() {
            return Err("the output buffer is full".into());
        }
        match rustix::io::read(&pipe, spare_capacity(out)) {
            Ok(0) => return Ok(true),
            Ok(_) | Err(Errno::INTR) => {}
            Err(Errno::AGAIN) => return Ok(false),
            Err(err) => return Err(err.into()),
        }
    }
}

fn check(len: usize, success: bool) -> BenchResult<()> {
    if len != SIZE || !success {
        return Err(format!("cat returned {len} bytes of {SIZE} (success: {success})").into());
    }
    Ok(())
}
