//! Where the two processes of a pipe scenario run.
//!
//! On a small machine the placement decides a pipe's cost more than any code does: on the 2-core
//! VM these benchmarks were written on, an 8-byte round trip takes about 2 µs when parent and
//! child share a CPU and 40–90 µs across CPUs (each message is a cross-CPU wake-up), and left to
//! itself the scheduler flips between the two from one run to the next (Python's round trip
//! measured anywhere from 5 to 60 µs). The pipe scenarios therefore pin both processes
//! explicitly, Rust and Python alike, and show the scheduler's own choice as a separate
//! contender.

use std::fmt;
use std::io;

use fork_sys::Pid;

use crate::harness::{Contender, Scenario};

/// Which CPUs a parent and its forked helper child run on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Placement {
    /// Parent on the first CPU, child on the second: every message wakes the other CPU.
    Across(usize, usize),
    /// Both on this CPU: every message is a context switch.
    Same(usize),
    /// Wherever the scheduler puts them.
    Unpinned,
}

impl Placement {
    /// The parent's CPU, if pinned.
    fn parent_cpu(self) -> Option<usize> {
        match self {
            Placement::Across(cpu, _) | Placement::Same(cpu) => Some(cpu),
            Placement::Unpinned => None,
        }
    }

    /// The child's CPU, if pinned.
    fn child_cpu(self) -> Option<usize> {
        match self {
            Placement::Across(_, cpu) | Placement::Same(cpu) => Some(cpu),
            Placement::Unpinned => None,
        }
    }

    /// The parent's and the child's CPU as arguments for a Python script, `-1` for unpinned.
    pub(crate) fn script_args(self) -> [String; 2] {
        let arg = |cpu: Option<usize>| cpu.map_or_else(|| "-1".to_owned(), |cpu| cpu.to_string());
        [arg(self.parent_cpu()), arg(self.child_cpu())]
    }

    /// Pins the calling process to the parent's CPU until the returned guard is dropped, which
    /// restores the previous affinity. Call it before forking: the child inherits the pin until
    /// [`pin_child`](Placement::pin_child) moves it.
    pub(crate) fn pin_parent(self) -> io::Result<ParentPin> {
        match self.parent_cpu() {
            Some(cpu) => {
                let original = sys::affinity()?;
                sys::pin(None, cpu)?;
                Ok(ParentPin {
                    original: Some(original),
                })
            }
            None => Ok(ParentPin { original: None }),
        }
    }

    /// Pins the forked child `pid` to the child's CPU.
    pub(crate) fn pin_child(self, pid: Pid) -> io::Result<()> {
        match self.child_cpu() {
            Some(cpu) => sys::pin(Some(pid), cpu),
            None => Ok(()),
        }
    }
}

impl fmt::Display for Placement {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Placement::Across(parent, child) => write!(f, "across CPUs {parent}/{child}"),
            Placement::Same(cpu) => write!(f, "both on CPU {cpu}"),
            Placement::Unpinned => f.write_str("unpinned"),
        }
    }
}

/// Restores the process's CPU affinity when dropped; see [`Placement::pin_parent`].
#[derive(Debug)]
pub(crate) struct ParentPin {
    original: Option<sys::CpuSet>,
}

impl Drop for ParentPin {
    fn drop(&mut self) {
        if let Some(original) = &self.original {
            // Best effort: a failure here leaves the harness pinned, which skews nothing but
            // the unpinned contenders, and there is no caller left to report it to.
            let _ = sys::restore(original);
        }
    }
}

/// A two-process scenario's rows at every placement: ours, then Python's, each pinned across
/// two CPUs and on one (in the order `first` says: the first row is the scenario's floor or
/// reference) and unpinned. With fewer than two CPUs to pin to, only the unpinned rows and a
/// row saying why the others are missing.
pub(crate) fn rows_by_placement(
    first: PinnedFirst,
    scenario: impl FnOnce(Contender) -> Scenario,
    ours: impl Fn(Placement) -> Contender,
    python: impl Fn(Placement) -> Contender,
) -> Scenario {
    let Some((one, two)) = two_cpus() else {
        return scenario(ours(Placement::Unpinned))
            .contender(Contender::skipped(
                "pinned placements",
                "cannot pin to two CPUs here",
            ))
            .contender(python(Placement::Unpinned));
    };
    let (across, same) = (Placement::Across(one, two), Placement::Same(one));
    let order = match first {
        PinnedFirst::Across => [across, same, Placement::Unpinned],
        PinnedFirst::Same => [same, across, Placement::Unpinned],
    };
    let mut rows = scenario(ours(order[0]));
    for placement in &order[1..] {
        rows = rows.contender(ours(*placement));
    }
    order
        .into_iter()
        .fold(rows, |rows, placement| rows.contender(python(placement)))
}

/// Which pinned placement [`rows_by_placement`] puts first.
#[derive(Debug, Clone, Copy)]
pub(crate) enum PinnedFirst {
    /// Across two CPUs.
    Across,
    /// Both on one CPU.
    Same,
}

/// The first two CPUs this process may run on, or `None` when it may use only one or the
/// platform cannot pin (everywhere but Linux).
pub(crate) fn two_cpus() -> Option<(usize, usize)> {
    let allowed = sys::allowed_cpus().ok()?;
    match allowed[..] {
        [first, second, ..] => Some((first, second)),
        _ => None,
    }
}

#[cfg(any(target_os = "linux", target_os = "android"))]
mod sys {
    use std::io;

    use fork_sys::Pid;
    pub(super) use rustix::thread::CpuSet;
    use rustix::thread::{sched_getaffinity, sched_setaffinity};

    pub(super) fn affinity() -> io::Result<CpuSet> {
        Ok(sched_getaffinity(None)?)
    }

    pub(super) fn allowed_cpus() -> io::Result<Vec<usize>> {
        let set = affinity()?;
        Ok((0..CpuSet::MAX_CPU)
            .filter(|&cpu| set.is_set(cpu))
            .collect())
    }

    pub(super) fn pin(pid: Option<Pid>, cpu: usize) -> io::Result<()> {
        let mut set = CpuSet::new();
        set.set(cpu);
        // A fork-sys `Pid` is always positive, so the conversion cannot fail.
        let pid = pid.and_then(|pid| rustix::process::Pid::from_raw(pid.as_raw()));
        Ok(sched_setaffinity(pid, &set)?)
    }

    pub(super) fn restore(set: &CpuSet) -> io::Result<()> {
        Ok(sched_setaffinity(None, set)?)
    }
}

#[cfg(not(any(target_os = "linux", target_os = "android")))]
mod sys {
    use std::io;

    use fork_sys::Pid;

    /// Stands in for a CPU set where affinity cannot be set.
    #[derive(Debug)]
    pub(super) struct CpuSet;

    fn unsupported() -> io::Error {
        io::Error::new(
            io::ErrorKind::Unsupported,
            "CPU affinity is only available on Linux",
        )
    }

    pub(super) fn affinity() -> io::Result<CpuSet> {
        Err(unsupported())
    }

    pub(super) fn allowed_cpus() -> io::Result<Vec<usize>> {
        Err(unsupported())
    }

    pub(super) fn pin(_pid: Option<Pid>, _cpu: usize) -> io::Result<()> {
        Err(unsupported())
    }

    pub(super) fn restore(_set: &CpuSet) -> io::Result<()> {
        Err(unsupported())
    }
}
