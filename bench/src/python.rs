//! Python contenders: what a Python programmer pays for the same operation.
//!
//! Each script runs as `python3 -c SCRIPT N`, performs `N` ops, and prints the seconds they took
//! as measured inside the script with `time.perf_counter`, so interpreter start-up and imports
//! are left out. The harness starts one interpreter per round, interleaved with the Rust
//! contenders, and subtracts nothing.

use std::io;
use std::process::{Command, Stdio};
use std::time::Duration;

use crate::harness::{BenchResult, Contender, Sample};

/// `os.fork()`, `os._exit(0)` in the child, `os.waitpid` in the parent.
pub(crate) const FORK_WAIT: &str = r#"
import os, sys, time
n = int(sys.argv[1])
start = time.perf_counter()
for _ in range(n):
    pid = os.fork()
    if pid == 0:
        os._exit(0)
    os.waitpid(pid, 0)
print(time.perf_counter() - start)
"#;

/// `subprocess.run(["/bin/true"])`, checking the exit code.
pub(crate) const SPAWN_TRUE: &str = r#"
import subprocess, sys, time
n = int(sys.argv[1])
start = time.perf_counter()
for _ in range(n):
    if subprocess.run(["/bin/true"]).returncode != 0:
        sys.exit("/bin/true failed")
print(time.perf_counter() - start)
"#;

/// `asyncio.create_subprocess_exec("echo", i)` for `N` children at once, each with its stdout
/// captured (`communicate`) and checked.
pub(crate) const ASYNC_SPAWN: &str = r#"
import asyncio, sys, time
n = int(sys.argv[1])
async def one(i):
    child = await asyncio.create_subprocess_exec(
        "echo", str(i), stdout=asyncio.subprocess.PIPE)
    out, _ = await child.communicate()
    if child.returncode != 0 or out != f"{i}\n".encode():
        sys.exit(f"echo {i} printed {out!r}")
async def main():
    await asyncio.gather(*(one(i) for i in range(n)))
start = time.perf_counter()
asyncio.run(main())
print(time.perf_counter() - start)
"#;

/// 8-byte round trips to a forked echo child over two `os.pipe()`s; the fork is not timed.
/// Arguments after `N`: the parent's and the child's CPU (`-1`: unpinned), pinned the same way
/// as the Rust contenders (see `cpu.rs`).
pub(crate) const PING_PONG: &str = r#"
import os, sys, time
n, parent_cpu, child_cpu = (int(arg) for arg in sys.argv[1:4])
if parent_cpu >= 0:
    os.sched_setaffinity(0, {parent_cpu})
req_r, req_w = os.pipe()
resp_r, resp_w = os.pipe()
pid = os.fork()
if pid == 0:
    os.close(req_w)
    os.close(resp_r)
    while True:
        data = os.read(req_r, 8)
        if not data:
            os._exit(0)
        os.write(resp_w, data)
if child_cpu >= 0:
    os.sched_setaffinity(pid, {child_cpu})
os.close(req_r)
os.close(resp_w)
message = b"pingpong"
start = time.perf_counter()
for _ in range(n):
    os.write(req_w, message)
    if os.read(resp_r, 8) != message:
        sys.exit("echo child sent something else back")
elapsed = time.perf_counter() - start
os.close(req_w)
os.waitpid(pid, 0)
print(elapsed)
"#;

/// `multiprocessing.Process` (fork context) started and joined; the target returns nothing,
/// since a Python `Process` cannot hand a value back without a `Queue` or `Pipe`.
pub(crate) const PROCESS_JOIN: &str = r#"
import multiprocessing as mp, sys, time
def target():
    pass
ctx = mp.get_context("fork")
n = int(sys.argv[1])
start = time.perf_counter()
for _ in range(n):
    p = ctx.Process(target=target)
    p.start()
    p.join()
    if p.exitcode != 0:
        sys.exit("child failed")
print(time.perf_counter() - start)
"#;

/// Round trips of a small integer over `multiprocessing.Pipe` to an echo `Process`; start-up
/// is not timed. Arguments after `N`: the parent's and the child's CPU (`-1`: unpinned).
pub(crate) const CONNECTION_PING_PONG: &str = r#"
import multiprocessing as mp, os, sys, time
n, parent_cpu, child_cpu = (int(arg) for arg in sys.argv[1:4])
if parent_cpu >= 0:
    os.sched_setaffinity(0, {parent_cpu})
def echo(conn, parent_end):
    # Without this, the child's inherited copy of the parent's end keeps the pipe open and
    # recv() never raises EOFError: the join below would hang for ever.
    parent_end.close()
    while True:
        try:
            value = conn.recv()
        except EOFError:
            return
        conn.send(value)
ctx = mp.get_context("fork")
ours, theirs = ctx.Pipe()
p = ctx.Process(target=echo, args=(theirs, ours))
p.start()
theirs.close()
if child_cpu >= 0:
    os.sched_setaffinity(p.pid, {child_cpu})
start = time.perf_counter()
for i in range(n):
    ours.send(i)
    if ours.recv() != i:
        sys.exit("echo sent something else back")
elapsed = time.perf_counter() - start
ours.close()
p.join()
print(elapsed)
"#;

/// `multiprocessing.Pool(2)` (fork context) running an identity function: argument `mode` is
/// `map` (all `N` items in one `map`), `starmap` (`add(i, 1)` over `N` pairs), `apply_async`
/// (`N` submissions, then every `get`) or `apply` (`N` sequential calls); then the number of items of an untimed warm-up pass of the
/// same kind on the fresh pool, and for `map` an optional chunk size (default: Python's).
pub(crate) const POOL: &str = r#"
import multiprocessing as mp, sys, time
def identity(x):
    return x
def add(a, b):
    return a + b
n, mode, warm = int(sys.argv[1]), sys.argv[2], int(sys.argv[3])
chunksize = int(sys.argv[4]) if len(sys.argv) > 4 else None
def run(pool, n):
    if mode == "map":
        out = pool.map(identity, range(n), chunksize)
        if out[-1] != n - 1 or len(out) != n:
            sys.exit("wrong map result")
    elif mode == "starmap":
        out = pool.starmap(add, [(i, 1) for i in range(n)], chunksize)
        if out[-1] != n or len(out) != n:
            sys.exit("wrong starmap result")
    elif mode == "apply_async":
        pending = [pool.apply_async(identity, (i,)) for i in range(n)]
        if [r.get() for r in pending][-1] != n - 1:
            sys.exit("wrong apply_async result")
    else:
        for i in range(n):
            if pool.apply(identity, (i,)) != i:
                sys.exit("wrong apply result")
with mp.get_context("fork").Pool(2) as pool:
    run(pool, warm)
    start = time.perf_counter()
    run(pool, n)
    elapsed = time.perf_counter() - start
print(elapsed)
"#;

/// `multiprocessing.Pool(2).imap` of an identity function over `range(N)` at chunk size
/// `argv[2]`, consuming every result; prints the time and how far the process's resident
/// memory rose at its peak (Linux: peak reset through `/proc/self/clear_refs`).
pub(crate) const POOL_IMAP_MEMORY: &str = r#"
import multiprocessing as mp, sys, time
def identity(x):
    return x
def status_kib(field):
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(field):
                return int(line.split()[1])
n, chunksize = int(sys.argv[1]), int(sys.argv[2])
with mp.get_context("fork").Pool(2) as pool:
    with open("/proc/self/clear_refs", "w") as f:
        f.write("5")
    before = status_kib("VmRSS:")
    start = time.perf_counter()
    count = 0
    for value in pool.imap(identity, range(n), chunksize):
        count += 1
    elapsed = time.perf_counter() - start
    peak = status_kib("VmHWM:") - before
if count != n:
    sys.exit("imap lost results")
print(elapsed, peak * 1024)
"#;

/// The Python interpreter found on `PATH`.
#[derive(Debug, Clone)]
pub(crate) struct Python {
    version: String,
}

impl Python {
    /// Runs `python3 --version`; `None` when there is no working `python3`.
    pub(crate) fn detect() -> Option<Python> {
        let output = Command::new("python3")
            .arg("--version")
            .stdin(Stdio::null())
            .output()
            .ok()?;
        if !output.status.success() {
            return None;
        }
        // Python 3.4+ prints the version on stdout, older ones on stderr.
        let text = [output.stdout, output.stderr].concat();
        let version = String::from_utf8_lossy(&text).trim().to_owned();
        Some(Python { version })
    }

    /// The version line, e.g. `Python 3.11.7`.
    pub(crate) fn version(&self) -> &str {
        &self.version
    }
}

/// A contender running `python3 -c script N args...` (`script` being one of this module's
/// constants), or a skipped one when `python` is `None`.
pub(crate) fn contender(
    python: Option<&Python>,
    name: impl Into<String>,
    script: &'static str,
    args: impl IntoIterator<Item = String>,
) -> Contender {
    if python.is_none() {
        return Contender::skipped(name, "python3 not found on PATH");
    }
    let args: Vec<String> = args.into_iter().collect();
    Contender::measuring_memory(name, move |ops| run_script(script, ops, &args))
}

/// Runs `script` for `ops` ops and returns the time it reported (and the peak memory rise,
/// in bytes, when it printed one after the time).
pub(crate) fn run_script(script: &str, ops: u64, args: &[String]) -> BenchResult<Sample> {
    let output = Command::new("python3")
        .arg("-c")
        .arg(script)
        .arg(ops.to_string())
        .args(args)
        .stdin(Stdio::null())
        .stderr(Stdio::piped())
        .output()
        .map_err(|err| io::Error::new(err.kind(), format!("cannot run python3: {err}")))?;
    let stdout = String::from_utf8_lossy(&output.stdout);
    if !output.status.success() {
        return Err(format!(
            "python3 {}: {}",
            output.status,
            String::from_utf8_lossy(&output.stderr).trim()
        )
        .into());
    }
    let unexpected = || {
        format!(
            "python3 printed {:?}, expected the elapsed seconds (and a byte count)",
            stdout.trim()
        )
    };
    let mut words = stdout.split_whitespace();
    let seconds: f64 = words
        .next()
        .and_then(|w| w.parse().ok())
        .ok_or_else(unexpected)?;
    let peak_memory = match words.next() {
        Some(word) => Some(word.parse::<u64>().map_err(|_| unexpected())?),
        None => None,
    };
    let elapsed = Duration::try_from_secs_f64(seconds)
        .map_err(|_| format!("python3 reported {seconds} s, not a duration"))?;
    Ok(Sample {
        elapsed,
        peak_memory,
    })
}
