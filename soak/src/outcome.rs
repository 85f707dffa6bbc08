//! What a scenario reports: its counts, checked by the scenario itself, and the one line that
//! carries them to the driver.

use std::fmt;
use std::time::Duration;

/// Printed first on the line that carries a scenario's outcome to the driver.
pub(crate) const ROW_TAG: &str = "SOAK-ROW";

/// Messages printed per scenario before the rest are only counted.
const MESSAGES_SHOWN: u64 = 20;

/// One scenario's counts. Everything but `operations` and `faults` must end at zero.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub(crate) struct Outcome {
    /// Operations completed (tasks, spawns, cycles, fuzz inputs).
    pub(crate) operations: u64,
    /// Faults injected (kills, crashing tasks, signals delivered, refused resources).
    pub(crate) faults: u64,
    /// Tasks or bytes that never got their answer (a task with neither a value nor its error).
    pub(crate) lost: u64,
    /// Extra runs of task bodies that had already returned (each task body logs its run; a
    /// body logged `n` times counts `n - 1`). The pool runs a returned task at most once.
    pub(crate) reruns: u64,
    /// Open fds after minus before.
    pub(crate) fds_leaked: i64,
    /// Children left unreaped (zombies) or still running when the scenario ended.
    pub(crate) zombies: u64,
    /// Waits that passed their deadline inside the scenario (the driver adds its own).
    pub(crate) hangs: u64,
    /// Any other broken invariant: a wrong value, a spurious error, a panic, a short pool.
    pub(crate) violations: u64,
}

impl Outcome {
    /// Counts a broken invariant and says which (the first few, on stderr).
    pub(crate) fn violation(&mut self, scenario: &str, message: impl fmt::Display) {
        self.violations += 1;
        if self.violations <= MESSAGES_SHOWN {
            eprintln!("soak: {scenario}: {message}");
        }
    }

    /// Counts a lost task and says which.
    pub(crate) fn lost(&mut self, scenario: &str, message: impl fmt::Display) {
        self.lost += 1;
        if self.lost <= MESSAGES_SHOWN {
            eprintln!("soak: {scenario}: lost: {message}");
        }
    }

    /// Counts `extra` runs of one task body beyond its first and says which.
    pub(crate) fn rerun(&mut self, scenario: &str, extra: u64, message: impl fmt::Display) {
        let before = self.reruns;
        self.reruns += extra;
        if before < MESSAGES_SHOWN {
            eprintln!("soak: {scenario}: rerun: {message}");
        }
    }

    /// Counts a wait that passed its deadline and says which.
    pub(crate) fn hang(&mut self, scenario: &str, message: impl fmt::Display) {
        self.hangs += 1;
        if self.hangs <= MESSAGES_SHOWN {
            eprintln!("soak: {scenario}: hang: {message}");
        }
    }

    /// Adds `other`'s counts to these (the fd and zombie columns are the caller's to fill).
    pub(crate) fn absorb(&mut self, other: &Outcome) {
        self.operations += other.operations;
        self.faults += other.faults;
        self.lost += other.lost;
        self.reruns += other.reruns;
        self.hangs += other.hangs;
        self.violations += other.violations;
    }

    /// Whether every column that must be zero is.
    pub(crate) fn passed(&self) -> bool {
        self.lost == 0
            && self.reruns == 0
            && self.fds_leaked == 0
            && self.zombies == 0
            && self.hangs == 0
            && self.violations == 0
    }

    /// The line the driver parses: `SOAK-ROW ops faults lost reruns fds zombies hangs
    /// violations`.
    pub(crate) fn to_line(&self) -> String {
        format!(
            "{ROW_TAG} {} {} {} {} {} {} {} {}",
            self.operations,
            self.faults,
            self.lost,
            self.reruns,
            self.fds_leaked,
            self.zombies,
            self.hangs,
            self.violations
        )
    }

    /// Parses [`Outcome::to_line`]'s output.
    pub(crate) fn from_line(line: &str) -> Option<Outcome> {
        let mut fields = line.strip_prefix(ROW_TAG)?.split_whitespace();
        let mut next = || fields.next()?.parse::<i64>().ok();
        let unsigned = |v: i64| u64::try_from(v).ok();
        Some(Outcome {
            operations: unsigned(next()?)?,
            faults: unsigned(next()?)?,
            lost: unsigned(next()?)?,
            reruns: unsigned(next()?)?,
            fds_leaked: next()?,
            zombies: unsigned(next()?)?,
            hangs: unsigned(next()?)?,
            violations: unsigned(next()?)?,
        })
    }
}

/// Open fds and children of this process at the start of a scenario, to compare at its end.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Baseline {
    fds: usize,
    children: usize,
}

impl Baseline {
    /// Counts now. Starts fork-sys's reaper thread first, by dropping a running child: its
    /// wake pipe is two fds that live as long as the process, not a leak. Take it after a
    /// warm-up pass of the scenario's own operations, for the same reason.
    pub(crate) fn take() -> Baseline {
        Baseline::take_with(0)
    }

    /// [`Baseline::take`] in a process that keeps `persistent` children of its own for good
    /// (proc-core's fork server).
    pub(crate) fn take_with(persistent: usize) -> Baseline {
        if let Ok(child) = proc_spawn::Command::new("/bin/sleep").arg("0.01").spawn() {
            drop(child);
        }
        test_support::eventually(Duration::from_secs(5), || {
            test_support::child_count() == persistent
        });
        Baseline {
            fds: test_support::open_fd_count(),
            children: test_support::child_count(),
        }
    }

    /// Fills in `fds_leaked` and `zombies`, giving background reaping a few seconds to finish
    /// (the reaper thread reaps dropped children asynchronously; that is not a leak).
    pub(crate) fn check(&self, outcome: &mut Outcome) {
        let settle = Duration::from_secs(10);
        test_support::eventually(settle, || {
            test_support::open_fd_count() <= self.fds
                && test_support::child_count() <= self.children
        });
        let fds = test_support::open_fd_count();
        outcome.fds_leaked =
            i64::try_from(fds).unwrap_or(i64::MAX) - i64::try_from(self.fds).unwrap_or(i64::MAX);
        let children = test_support::child_count();
        let zombies = test_support::zombie_children();
        let extra_children = children.saturating_sub(self.children);
        outcome.zombies = u64::try_from(zombies.max(extra_children)).unwrap_or(u64::MAX);
        if outcome.fds_leaked != 0 {
            eprintln!("soak: {} fds open before, {fds} after", self.fds);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_row_survives_the_trip_to_the_driver() {
        let outcome = Outcome {
            operations: 10_000,
            faults: 17,
            lost: 0,
            reruns: 4,
            fds_leaked: -1,
            zombies: 2,
            hangs: 0,
            violations: 3,
        };
        assert_eq!(Outcome::from_line(&outcome.to_line()), Some(outcome));
        assert_eq!(Outcome::from_line("SOAK-ROW 1 2"), None);
        // A row without the reruns column (an older child) is not taken for one with it.
        assert_eq!(Outcome::from_line("SOAK-ROW 1 2 0 0 0 0 0"), None);
        assert_eq!(Outcome::from_line("something else"), None);
    }
}
