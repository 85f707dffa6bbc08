//! A run ledger: pool tasks append their key to a file as the last thing their body does, so a
//! scenario can count how many times each body ran to its end, whichever process ran it. It
//! has to be a file: tasks capture nothing, a `Fork` worker's memory is its own after the fork,
//! and a `ForkServer` worker never had the scenario's memory at all. The task gets the
//! ledger's path in its argument.

use std::collections::{HashMap, HashSet};
use std::fs::{File, OpenOptions};
use std::io::{self, Write as _};
use std::path::PathBuf;

use crate::outcome::Outcome;

/// One scenario pool's run log: a file under the temporary directory, named after the
/// scenario and this process, removed when the ledger is dropped.
#[derive(Debug)]
pub(crate) struct Ledger {
    path: PathBuf,
    /// `path` as the tasks get it (a `String` encodes as itself).
    name: String,
}

impl Ledger {
    /// Creates (or empties) the ledger of `label` for this process.
    pub(crate) fn create(label: &str) -> io::Result<Ledger> {
        let path = std::env::temp_dir().join(format!("soak-{label}-{}.runs", std::process::id()));
        let name = path
            .to_str()
            .ok_or_else(|| {
                io::Error::new(
                    io::ErrorKind::InvalidInput,
                    format!("{} is not UTF-8", path.display()),
                )
            })?
            .to_owned();
        File::create(&path)?;
        Ok(Ledger { path, name })
    }

    /// The path to pass to the tasks.
    pub(crate) fn path(&self) -> &str {
        &self.name
    }

    /// Logs one run of `key`'s body in the ledger at `path`: call it in the task, just before
    /// the body returns. One `write` of the whole line on an `O_APPEND` file: lines from
    /// concurrent workers never interleave, and a worker killed after it has the line in the
    /// page cache. Panics (the task's error, which the scenario reports) if it cannot: a run
    /// that is not logged would hide a rerun.
    pub(crate) fn record(path: &str, key: u64) {
        let line = format!("{key}\n");
        // Not `create`: a ledger that is gone is an error, not a fresh file nobody reads.
        let written = OpenOptions::new()
            .append(true)
            .open(path)
            .and_then(|mut file| file.write(line.as_bytes()));
        match written {
            Ok(n) if n == line.len() => {}
            Ok(n) => panic!("ledger {path}: wrote {n} of {} bytes", line.len()),
            Err(err) => panic!("ledger {path}: {err}"),
        }
    }

    /// How many times each key was logged. Read it once nothing runs any more (the pool
    /// joined or terminated).
    pub(crate) fn counts(&self) -> io::Result<HashMap<u64, u64>> {
        let text = std::fs::read_to_string(&self.path)?;
        let mut counts = HashMap::new();
        for line in text.lines() {
            let key = line.parse::<u64>().map_err(|_| {
                io::Error::new(
                    io::ErrorKind::InvalidData,
                    format!("{}: not a key: {line:?}", self.path.display()),
                )
            })?;
            *counts.entry(key).or_insert(0) += 1;
        }
        Ok(counts)
    }

    /// Adds what the ledger says to `outcome`: every run of a body past its first is a rerun;
    /// a key logged that was never `submitted`, or one of `ended` (tasks whose result shows
    /// their body ran to its end: a value, say) not logged, is a violation. A key logged twice
    /// counts in `reruns` only, not again as a violation.
    pub(crate) fn check(
        &self,
        name: &str,
        submitted: &HashSet<u64>,
        ended: &[u64],
        outcome: &mut Outcome,
    ) {
        let counts = match self.counts() {
            Ok(counts) => counts,
            Err(err) => {
                outcome.violation(name, format!("reading the run ledger: {err}"));
                return;
            }
        };
        let mut logged: Vec<(u64, u64)> = counts.iter().map(|(&k, &n)| (k, n)).collect();
        logged.sort_unstable();
        for (key, runs) in logged {
            if !submitted.contains(&key) {
                outcome.violation(
                    name,
                    format!("task {key} ran {runs} times, never submitted"),
                );
            } else if runs > 1 {
                outcome.rerun(
                    name,
                    runs - 1,
                    format!("the body of task {key} ran to its end {runs} times"),
                );
            }
        }
        for key in ended {
            if !counts.contains_key(key) {
                outcome.violation(
                    name,
                    format!("task {key} has its result, but its body never logged its run"),
                );
            }
        }
    }
}

impl Drop for Ledger {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.path);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_ledger_counts_runs_and_reruns() {
        let ledger = Ledger::create("ledger-test").expect("create");
        for key in [1, 2, 2, 3, 3, 3] {
            Ledger::record(ledger.path(), key);
        }
        let submitted: HashSet<u64> = [1, 2, 3, 4].into_iter().collect();
        let mut outcome = Outcome::default();
        ledger.check("test", &submitted, &[1, 4], &mut outcome);
        // 2 ran once more, 3 twice more; 4 has a value but never ran.
        assert_eq!((outcome.reruns, outcome.violations), (3, 1));
        let path = ledger.path().to_owned();
        drop(ledger);
        assert!(!std::path::Path::new(&path).exists());
    }
}
