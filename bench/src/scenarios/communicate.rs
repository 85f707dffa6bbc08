//! `communicate 256 MiB through cat`: a child's stdin and stdout driven together, the job of
//! `Popen.communicate`. The floor is the raw pipe: the same bytes written once into a pipe to a
//! reader that discards them (the `pipe throughput` scenario's floor: default pipe size, the
//! two ends on two CPUs). Through `cat` every byte crosses two pipes and is copied by `cat` in between.

use std::io::Write as _;
use std::process::Stdio as StdStdio;
use std::time::Instant;

use proc_spawn::{Command, Stdio};

use crate::cpu::{self, Placement};
use crate::harness::{BenchResult, Contender, Scenario, Unit};
use crate::python;
use crate::scenarios::Context;
use crate::scenarios::pipe_throughput::{self, CHUNK};

/// Bytes per op.
const SIZE: usize = 256 * 1024 * 1024;

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
        "proc-spawn enlarges both pipes to 1 MiB (`F_SETPIPE_SZ`), writes and reads in one \
         `poll` loop on non-blocking pipes, and reads straight into the output buffer. \
         Python's `communicate` writes at most `PIPE_BUF` (4 KiB) per `poll` wake-up and \
         reads 32 KiB chunks that it joins at the end.",
    )
    .contender(proc_spawn)
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

fn check(len: usize, success: bool) -> BenchResult<()> {
    if len != SIZE || !success {
        return Err(format!("cat returned {len} bytes of {SIZE} (success: {success})").into());
    }
    Ok(())
}
