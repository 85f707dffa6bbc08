//! `start methods: ...`: what a child costs under each start method (`Fork`, `ForkServer`,
//! `Spawn`), from a small parent and from a 1 GiB one, against the fork+wait floor, Python's
//! `multiprocessing` start methods and (with the bench feature `procspawn`) the procspawn
//! crate's exec-self children.
//!
//! The "1 GiB parent" rows make this process a 1 GiB one for their own batches only: the first
//! of them in a round allocates 1 GiB and writes one byte in every 4 KiB page (untimed), so it
//! is resident and a fork must copy its page tables; every other row frees it before it runs,
//! and it is gone when the scenario ends. Held for the whole run, it would slow every fork of
//! every other scenario.

use std::cell::RefCell;
use std::rc::Rc;
use std::time::{Duration, Instant};

use proc_core::{Process, StartMethod};
use proc_pool::Pool;

use crate::harness::{BenchResult, Contender, Rounds, Scenario, Unit};
use crate::python;
use crate::scenarios::{Context, fork_wait};

/// The big parent's size.
const BIG: usize = 1 << 30;

/// The page size the big parent's bytes are touched at.
const PAGE: usize = 4096;

/// How many times a batch's ops a *cheap* row runs (one that costs a few ms at most): a batch
/// of a handful of sub-millisecond ops would be mostly noise. Its time is divided back, so
/// every row reads per op.
const CHEAP_REPEAT: u32 = 10;

/// The children's function: trivial, so the figures are the start method's cost.
fn triple(x: u64) -> u64 {
    x.wrapping_mul(3)
}

fn check(value: u64, arg: u64) -> BenchResult<()> {
    if value == triple(arg) {
        Ok(())
    } else {
        Err(format!(
            "the child returned {value} for {arg}, expected {}",
            triple(arg)
        )
        .into())
    }
}

/// Rounds: a round of either scenario takes several seconds (the 1 GiB `Fork` rows cost
/// ~70 ms per op, Python's `spawn` rows ~60 ms, making the 1 GiB resident ~0.5 s).
fn max_rounds(cx: &Context) -> Rounds {
    Rounds {
        warmup: 1,
        measured: if cx.quick { 3 } else { 5 },
    }
}

/// Which parent a row runs in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Parent {
    /// The harness as it is: a few MiB.
    Small,
    /// The harness holding 1 GiB of resident memory.
    Big,
}

impl Parent {
    fn label(self) -> &'static str {
        match self {
            Parent::Small => "small parent",
            Parent::Big => "1 GiB parent",
        }
    }

    /// The Python script's size argument.
    fn bytes(self) -> usize {
        match self {
            Parent::Small => 0,
            Parent::Big => BIG,
        }
    }
}

/// The 1 GiB the big-parent rows run with, shared by the rows of one scenario so that a round
/// allocates and touches it once.
#[derive(Debug, Clone, Default)]
struct Ballast(Rc<RefCell<Option<Vec<u8>>>>);

impl Ballast {
    /// Makes this process `parent`: holding 1 GiB of resident memory (allocated and touched if
    /// not held yet) or not (freed if held; an allocation this size is its own mapping, so its
    /// pages go back to the kernel).
    fn set_for(&self, parent: Parent) {
        let mut held = self.0.borrow_mut();
        match parent {
            Parent::Small => *held = None,
            Parent::Big if held.is_none() => {
                let mut bytes = vec![0u8; BIG];
                // `vec![0; n]` maps untouched zero pages; one write per page makes them resident.
                for page in bytes.chunks_mut(PAGE) {
                    page[0] = 1;
                }
                *held = Some(std::hint::black_box(bytes));
            }
            Parent::Big => {}
        }
    }
}

/// How a child is started.
#[derive(Debug, Clone, Copy)]
enum Way {
    /// fork+_exit+waitpid, no value: the physics under `Fork`.
    RawFork,
    /// `Process::spawn(move || triple(x))`: a forked closure.
    Closure,
    /// `Process::builder().start_method(m).spawn_fn(triple, x)`.
    Function(StartMethod),
    /// `procspawn::spawn(x, triple).join()`.
    #[cfg_attr(not(feature = "procspawn"), allow(dead_code))]
    ProcSpawn,
}

impl Way {
    /// Whether `ops` of this way in `parent` take long enough to be timed as they are.
    fn is_cheap(self, parent: Parent) -> bool {
        parent == Parent::Small
            || !matches!(
                self,
                Way::RawFork | Way::Closure | Way::Function(StartMethod::Fork)
            )
    }
}

/// The row names, which the goals repeat.
fn process_row(way: Way, parent: Parent) -> String {
    let how = match way {
        Way::RawFork => "raw fork_sys::fork + _exit + wait".to_owned(),
        Way::Closure => "Fork: Process::spawn(closure)".to_owned(),
        Way::Function(method) => format!("{}: spawn_fn", method_name(method)),
        Way::ProcSpawn => "procspawn::spawn(x, f).join()".to_owned(),
    };
    format!("{how}, {}", parent.label())
}

fn method_name(method: StartMethod) -> &'static str {
    match method {
        StartMethod::Fork => "Fork",
        StartMethod::ForkServer => "ForkServer",
        StartMethod::Spawn => "Spawn",
    }
}

fn python_row(what: &str, method: StartMethod, parent: Parent) -> String {
    format!("python3 {what} ({}), {}", method.name(), parent.label())
}

/// Starts `ops` children `way`, each computing `triple(i)`, and joins each before the next.
fn start_join(way: Way, ops: u64) -> BenchResult<()> {
    for i in 0..ops {
        let value = match way {
            Way::RawFork => {
                fork_wait::fork_wait_ops(1)?;
                continue;
            }
            Way::Closure => Process::spawn(move || triple(i))?.join()?,
            Way::Function(method) => Process::builder()
                .start_method(method)
                .spawn_fn(triple, i)?
                .join()?,
            Way::ProcSpawn => procspawn_start_join(i)?,
        };
        check(value, i)?;
    }
    Ok(())
}

#[cfg(feature = "procspawn")]
fn procspawn_start_join(arg: u64) -> BenchResult<u64> {
    Ok(procspawn::spawn(arg, triple).join()?)
}

#[cfg(not(feature = "procspawn"))]
fn procspawn_start_join(_arg: u64) -> BenchResult<u64> {
    Err("the bench was built without the `procspawn` feature".into())
}

/// A row of the start+join scenario. Each batch first makes this process `parent` and runs one
/// untimed op (for `ForkServer`, that starts the server if none runs: the rows time a warm
/// one), then times its ops.
fn process_contender(way: Way, parent: Parent, ballast: &Ballast) -> Contender {
    let name = process_row(way, parent);
    if matches!(way, Way::ProcSpawn) && cfg!(not(feature = "procspawn")) {
        return Contender::skipped(
            name,
            "built without the bench feature `procspawn` (see docs/BENCHMARKS.md, Reproduce)",
        );
    }
    let repeat = if way.is_cheap(parent) {
        CHEAP_REPEAT
    } else {
        1
    };
    let ballast = ballast.clone();
    Contender::self_timed(name, move |ops| {
        ballast.set_for(parent);
        start_join(way, 1)?;
        let start = Instant::now();
        start_join(way, ops * u64::from(repeat))?;
        Ok(start.elapsed() / repeat)
    })
}

/// Kills the fork server, if one runs, and waits until it has exited, so that the next
/// `ForkServer` child starts a new one (proc-core reaps the old one then).
#[cfg(target_os = "linux")]
fn stop_fork_server() -> BenchResult<()> {
    let Some(pid) = proc_core::fork_server_pid() else {
        return Ok(());
    };
    fork_sys::kill(pid, fork_sys::Signal::KILL)?;
    let deadline = Instant::now() + Duration::from_secs(5);
    // A zombie (`Z`), or gone: proc-core's liveness check before the next request sees it.
    let exited = || match std::fs::read_to_string(format!("/proc/{}/stat", pid.as_raw())) {
        Ok(stat) => stat
            .rsplit_once(')')
            .and_then(|(_, rest)| rest.split_whitespace().next())
            .is_some_and(|state| state == "Z" || state == "X"),
        Err(_) => true,
    };
    while !exited() {
        if Instant::now() > deadline {
            return Err(format!("the fork server (pid {pid}) outlived SIGKILL by 5 s").into());
        }
        std::thread::sleep(Duration::from_micros(200));
    }
    Ok(())
}

/// The `ForkServer` row that starts a new server for every child: a program's first child.
/// Stopping the old server is not timed.
fn cold_fork_server(ballast: &Ballast) -> Contender {
    let name = "ForkServer: spawn_fn, cold (a new server per child), small parent";
    if cfg!(not(target_os = "linux")) {
        return Contender::skipped(name, "waits for the stopped server through /proc (Linux)");
    }
    let ballast = ballast.clone();
    Contender::self_timed(name, move |ops| {
        ballast.set_for(Parent::Small);
        let mut elapsed = Duration::ZERO;
        for _ in 0..ops * u64::from(CHEAP_REPEAT) {
            #[cfg(target_os = "linux")]
            stop_fork_server()?;
            let start = Instant::now();
            start_join(Way::Function(StartMethod::ForkServer), 1)?;
            elapsed += start.elapsed();
        }
        Ok(elapsed / CHEAP_REPEAT)
    })
}

/// `multiprocessing` under start method `argv[2]`, in a parent holding `argv[4]` extra
/// resident bytes: `argv[3]` = `process` times `Process(target=abs, args=(i,))` start+join,
/// `pool` times `apply(abs, (-i,))` on `Pool(1, maxtasksperchild=1)` (every apply waits for
/// a new worker). One untimed op first (it starts the fork server, the first worker). The
/// function is a builtin because `spawn` and `forkserver` children cannot import one defined
/// in a `python3 -c` script's `__main__`.
const PYTHON_START_METHODS: &str = r#"
import multiprocessing as mp, sys, time
n, method, kind, size = int(sys.argv[1]), sys.argv[2], sys.argv[3], int(sys.argv[4])
if size:
    ballast = bytearray(size)
    ballast[::4096] = b"\x01" * len(range(0, size, 4096))
ctx = mp.get_context(method)
if kind == "process":
    def op(i):
        p = ctx.Process(target=abs, args=(i,))
        p.start()
        p.join()
        if p.exitcode != 0:
            sys.exit("child exit code %s" % p.exitcode)
    op(0)
    start = time.perf_counter()
    for i in range(n):
        op(i)
    elapsed = time.perf_counter() - start
else:
    with ctx.Pool(1, maxtasksperchild=1) as pool:
        if pool.apply(abs, (-1,)) != 1:
            sys.exit("wrong apply result")
        start = time.perf_counter()
        for i in range(n):
            if pool.apply(abs, (-i,)) != i:
                sys.exit("wrong apply result")
        elapsed = time.perf_counter() - start
print(elapsed)
"#;

/// A Python row: `kind` is `process` or `pool`; `repeat` as [`CHEAP_REPEAT`].
fn python_contender(
    cx: &Context,
    name: String,
    kind: &'static str,
    method: StartMethod,
    parent: Parent,
    repeat: u32,
    ballast: &Ballast,
) -> Contender {
    if cx.python.is_none() {
        return Contender::skipped(name, "python3 not found on PATH");
    }
    let args = vec![
        method.name().to_owned(),
        kind.to_owned(),
        parent.bytes().to_string(),
    ];
    let ballast = ballast.clone();
    Contender::measuring_memory(name, move |ops| {
        // Python's parent is the interpreter; ours stays small meanwhile.
        ballast.set_for(Parent::Small);
        let mut sample = python::run_script(PYTHON_START_METHODS, ops * u64::from(repeat), &args)?;
        sample.elapsed /= repeat;
        Ok(sample)
    })
}

const METHODS: [StartMethod; 3] = [
    StartMethod::Fork,
    StartMethod::ForkServer,
    StartMethod::Spawn,
];

/// Process start+join under every start method, small and 1 GiB parent.
pub(crate) fn process_start_join(cx: &Context) -> BenchResult<Scenario> {
    let ballast = Ballast::default();
    let ways = [
        Way::Closure,
        Way::Function(StartMethod::Fork),
        Way::Function(StartMethod::ForkServer),
        Way::Function(StartMethod::Spawn),
        Way::ProcSpawn,
    ];
    let mut scenario = Scenario::new(
        "start methods: Process start+join",
        "start a child computing `triple(x)` (`fn(u64) -> u64`), join it, check the value",
        Unit::TimePerOp,
        cx.ops(6, 2),
        process_contender(Way::RawFork, Parent::Small, &ballast),
    )
    .max_rounds(max_rounds(cx))
    .note(
        "The floor is the raw fork+_exit+waitpid of the small parent (this harness, a few MiB): \
         no start method makes a process for less. The 1 GiB parent is this same process \
         holding 1 GiB it has written to (every 4 KiB page resident), during those rows' \
         batches only; Python's is the interpreter holding a touched `bytearray(1 << 30)`, \
         shown for its forkserver only (allocating it costs Python ~1 s per batch). Every \
         batch starts with one untimed op, so `ForkServer` rows (ours and Python's) time a \
         warm server; the cold row stops the server before each child, so each op pays for \
         starting a new one (an exec of this binary, its hello) and then the child. `Spawn` \
         and procspawn exec this binary for every child. Rows that cost a few ms at most run \
         10 times the batch's ops (time divided back). Python's children run the builtin \
         `abs` and send nothing back; ours send the value back.",
    );
    for parent in [Parent::Small, Parent::Big] {
        if parent == Parent::Big {
            scenario = scenario.contender(process_contender(Way::RawFork, parent, &ballast));
        }
        for way in ways {
            scenario = scenario.contender(process_contender(way, parent, &ballast));
            if parent == Parent::Small && matches!(way, Way::Function(StartMethod::ForkServer)) {
                scenario = scenario.contender(cold_fork_server(&ballast));
            }
        }
    }
    let python_rows = [
        (StartMethod::Fork, Parent::Small, CHEAP_REPEAT),
        (StartMethod::ForkServer, Parent::Small, CHEAP_REPEAT),
        (StartMethod::Spawn, Parent::Small, 1),
        (StartMethod::ForkServer, Parent::Big, CHEAP_REPEAT),
    ];
    for (method, parent, repeat) in python_rows {
        scenario = scenario.contender(python_contender(
            cx,
            python_row("Process start+join", method, parent),
            "process",
            method,
            parent,
            repeat,
            &ballast,
        ));
    }
    let fork_server = Way::Function(StartMethod::ForkServer);
    Ok(scenario
        .goal(
            "ForkServer from the 1 GiB parent ≤ 1.5× from the small parent",
            process_row(fork_server, Parent::Big),
            process_row(fork_server, Parent::Small),
            1.5,
        )
        .goal(
            "ForkServer ≥ 10× as fast as Python's forkserver (small parents)",
            process_row(fork_server, Parent::Small),
            python_row("Process start+join", StartMethod::ForkServer, Parent::Small),
            0.1,
        )
        .goal(
            "Spawn at least as fast as procspawn (small parent)",
            process_row(Way::Function(StartMethod::Spawn), Parent::Small),
            process_row(Way::ProcSpawn, Parent::Small),
            1.0,
        ))
}

fn pool_row(method: StartMethod, parent: Parent) -> String {
    format!(
        "{}: Pool(1, max_tasks_per_child 1) apply, {}",
        method_name(method),
        parent.label()
    )
}

/// Builds a pool of one worker that is replaced after every task, runs one untimed apply (the
/// first worker, the first replacement), then times `ops` applies.
fn pool_restarts(method: StartMethod, ops: u64) -> BenchResult<Duration> {
    let pool = Pool::builder()
        .start_method(method)
        .workers(1)
        .max_tasks_per_child(1)
        .build()?;
    check(pool.apply(triple, 0)?, 0)?;
    let start = Instant::now();
    for i in 1..=ops {
        check(pool.apply(triple, i)?, i)?;
    }
    Ok(start.elapsed())
}

/// Pool worker restart under every start method, small and 1 GiB parent.
pub(crate) fn pool_worker_restart(cx: &Context) -> BenchResult<Scenario> {
    let ballast = Ballast::default();
    let mut scenario = Scenario::new(
        "start methods: Pool worker restart",
        "one `apply(triple, x)` on a pool of 1 worker with `max_tasks_per_child(1)`: every \
         task waits for a new worker",
        Unit::TimePerOp,
        cx.ops(6, 2),
        process_contender(Way::RawFork, Parent::Small, &ballast),
    )
    .max_rounds(max_rounds(cx))
    .note(
        "The floor is the raw fork+_exit+waitpid of the small parent: a restart cannot cost \
         less than making a process. Each batch builds its pool (untimed) and runs one untimed \
         apply first; Python's `Pool(1, maxtasksperchild=1)` does the same with the builtin \
         `abs`. The 1 GiB parent is held as in the Process start+join scenario; under `Fork` \
         the pool forks every new worker from it. Rows that cost a few ms at most run 10 \
         times the batch's ops (time divided back).",
    );
    for parent in [Parent::Small, Parent::Big] {
        for method in METHODS {
            let cheap = Way::Function(method).is_cheap(parent);
            let repeat = if cheap { CHEAP_REPEAT } else { 1 };
            let ballast = ballast.clone();
            scenario = scenario.contender(Contender::self_timed(
                pool_row(method, parent),
                move |ops| {
                    ballast.set_for(parent);
                    Ok(pool_restarts(method, ops * u64::from(repeat))? / repeat)
                },
            ));
        }
    }
    let python_rows = [
        (StartMethod::Fork, CHEAP_REPEAT),
        (StartMethod::ForkServer, 1),
        (StartMethod::Spawn, 1),
    ];
    for (method, repeat) in python_rows {
        scenario = scenario.contender(python_contender(
            cx,
            python_row("Pool(1, maxtasksperchild=1) apply", method, Parent::Small),
            "pool",
            method,
            Parent::Small,
            repeat,
            &ballast,
        ));
    }
    Ok(scenario
        .goal(
            "ForkServer restart from the 1 GiB parent ≤ 1.5× from the small parent",
            pool_row(StartMethod::ForkServer, Parent::Big),
            pool_row(StartMethod::ForkServer, Parent::Small),
            1.5,
        )
        .goal(
            "ForkServer restart ≥ 10× as fast as Python's forkserver (small parents)",
            pool_row(StartMethod::ForkServer, Parent::Small),
            python_row(
                "Pool(1, maxtasksperchild=1) apply",
                StartMethod::ForkServer,
                Parent::Small,
            ),
            0.1,
        ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn quick() -> Context {
        Context {
            quick: true,
            python: None,
        }
    }

    #[test]
    fn goals_name_rows_of_their_scenario() -> BenchResult<()> {
        process_start_join(&quick())?.check_goals()?;
        pool_worker_restart(&quick())?.check_goals()
    }

    #[test]
    fn the_ballast_is_held_only_for_the_big_parent() {
        let ballast = Ballast::default();
        ballast.set_for(Parent::Big);
        assert_eq!(ballast.0.borrow().as_ref().map(Vec::len), Some(BIG));
        ballast.set_for(Parent::Small);
        assert!(ballast.0.borrow().is_none());
    }
}
