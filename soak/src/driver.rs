//! The driver: runs each scenario in a child process under a deadline, collects the rows, and
//! prints the table. Uses `std::process` only, never the crates under test.

use std::io::{BufRead, BufReader};
use std::process::{Command, ExitCode, Stdio};
use std::time::{Duration, Instant};

use crate::outcome::Outcome;
use crate::scenarios::{self, Scenario};

/// What the command line asked for.
#[derive(Debug, Default, Clone, PartialEq)]
pub(crate) struct Options {
    pub(crate) quick: bool,
    pub(crate) only: Vec<String>,
    pub(crate) fuzz_minutes: Option<f64>,
}

impl Options {
    /// `Ok(None)` for `--help` and `--list` (after listing).
    pub(crate) fn parse(args: &[String]) -> Result<Option<Options>, String> {
        let mut options = Options::default();
        let mut args = args.iter();
        while let Some(arg) = args.next() {
            match arg.as_str() {
                "--quick" => options.quick = true,
                "--only" => options
                    .only
                    .push(args.next().ok_or("`--only` needs a substring")?.clone()),
                "--fuzz-minutes" => {
                    let value = args.next().ok_or("`--fuzz-minutes` needs a number")?;
                    let minutes: f64 = value
                        .parse()
                        .map_err(|_| format!("`--fuzz-minutes {value}` is not a number"))?;
                    if !(minutes > 0.0 && minutes < 24.0 * 60.0) {
                        return Err(format!("`--fuzz-minutes {value}` is out of range"));
                    }
                    options.fuzz_minutes = Some(minutes);
                }
                "--list" => {
                    for scenario in scenarios::ALL {
                        println!("{:22} {}", scenario.name, scenario.proves);
                    }
                    return Ok(None);
                }
                "-h" | "--help" | "help" => return Ok(None),
                other => return Err(format!("unknown argument `{other}`")),
            }
        }
        Ok(Some(options))
    }

    fn selects(&self, scenario: &Scenario) -> bool {
        self.only.is_empty() || self.only.iter().any(|o| scenario.name.contains(o.as_str()))
    }

    /// The arguments a scenario child gets after `--run-scenario <name>`.
    fn child_args(&self) -> Vec<String> {
        let mut args = Vec::new();
        if self.quick {
            args.push("--quick".to_owned());
        }
        if let Some(minutes) = self.fuzz_minutes {
            args.push("--fuzz-minutes".to_owned());
            args.push(minutes.to_string());
        }
        args
    }
}

/// One finished row of the table.
#[derive(Debug)]
struct Row {
    name: &'static str,
    outcome: Outcome,
    elapsed: Duration,
    /// Why the child gave no row (crashed, killed at its deadline), if it did not.
    note: Option<String>,
}

/// Runs the selected scenarios, prints the table; failure if any column is not zero.
pub(crate) fn run(options: &Options) -> ExitCode {
    let exe = match std::env::current_exe() {
        Ok(exe) => exe,
        Err(err) => {
            eprintln!("soak: cannot find my own executable: {err}");
            return ExitCode::FAILURE;
        }
    };
    let selected: Vec<&Scenario> = scenarios::ALL
        .iter()
        .filter(|s| options.selects(s))
        .collect();
    if selected.is_empty() {
        eprintln!("soak: no scenario matches {:?} (see --list)", options.only);
        return ExitCode::from(2);
    }
    let started = Instant::now();
    let mut rows = Vec::new();
    for scenario in selected {
        println!(
            "==> soak {}{}",
            scenario.name,
            if options.quick { " (quick)" } else { "" }
        );
        let row = run_one(&exe, scenario, options);
        rows.push(row);
    }
    print!("{}", render_table(&rows, options.quick));
    let failed: Vec<&str> = rows
        .iter()
        .filter(|row| row.note.is_some() || !row.outcome.passed())
        .map(|row| row.name)
        .collect();
    println!("total {:.1}s", started.elapsed().as_secs_f64());
    if failed.is_empty() {
        println!("soak: every column is zero ({} scenarios)", rows.len());
        ExitCode::SUCCESS
    } else {
        eprintln!("soak: FAILED: {}", failed.join(", "));
        ExitCode::FAILURE
    }
}

fn run_one(exe: &std::path::Path, scenario: &Scenario, options: &Options) -> Row {
    let deadline = scenario.deadline(options.quick, options.fuzz_minutes);
    let mut command = Command::new(exe);
    command
        .arg("--run-scenario")
        .arg(scenario.name)
        .args(options.child_args())
        .env(scenarios::SECRET_VAR, "hunter2")
        .stdin(Stdio::null())
        .stdout(Stdio::piped());
    let started = Instant::now();
    let mut row = Row {
        name: scenario.name,
        outcome: Outcome::default(),
        elapsed: Duration::ZERO,
        note: None,
    };
    let mut child = match command.spawn() {
        Ok(child) => child,
        Err(err) => {
            row.note = Some(format!("could not start: {err}"));
            return row;
        }
    };
    // The scenario's stdout is read on a thread (busy threads print to it); the row is its
    // line tagged SOAK-ROW, everything else is dropped.
    let stdout = child.stdout.take();
    let reader = std::thread::spawn(move || {
        let mut found = None;
        if let Some(stdout) = stdout {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if let Some(outcome) = Outcome::from_line(&line) {
                    found = Some(outcome);
                }
            }
        }
        found
    });
    let status = loop {
        match child.try_wait() {
            Ok(Some(status)) => break Some(status),
            Ok(None) if started.elapsed() > deadline => {
                let _ = child.kill();
                let _ = child.wait();
                break None;
            }
            Ok(None) => std::thread::sleep(Duration::from_millis(20)),
            Err(err) => {
                row.note = Some(format!("wait failed: {err}"));
                let _ = child.kill();
                let _ = child.wait();
                break None;
            }
        }
    };
    row.elapsed = started.elapsed();
    let found = reader.join().ok().flatten();
    match (status, found) {
        (None, found) => {
            row.outcome = found.unwrap_or_default();
            row.outcome.hangs += 1;
            eprintln!(
                "soak: {}: still running after {deadline:?}; killed",
                scenario.name
            );
        }
        (Some(status), Some(outcome)) => {
            row.outcome = outcome;
            if !status.success() && row.outcome.passed() {
                row.note = Some(format!("exited with {status}"));
            }
        }
        (Some(status), None) => row.note = Some(format!("no result: {status}")),
    }
    row
}

/// The table, as Markdown so it can be pasted into docs/RELIABILITY.md as it is.
fn render_table(rows: &[Row], quick: bool) -> String {
    use std::fmt::Write as _;
    let mut out = String::new();
    let _ = writeln!(
        out,
        "\n==> soak summary{}\n",
        if quick { " (quick)" } else { "" }
    );
    let _ = writeln!(
        out,
        "| scenario | operations | faults injected | tasks lost | reruns | fds leaked | zombies left | hangs | violations | time |"
    );
    let _ = writeln!(out, "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|");
    for row in rows {
        let o = &row.outcome;
        let _ = write!(
            out,
            "| {} | {} | {} | {} | {} | {} | {} | {} | {} | {:.1}s |",
            row.name,
            o.operations,
            o.faults,
            o.lost,
            o.reruns,
            o.fds_leaked,
            o.zombies,
            o.hangs,
            o.violations,
            row.elapsed.as_secs_f64()
        );
        if let Some(note) = &row.note {
            let _ = write!(out, " **{note}**");
        }
        out.push('\n');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn strings(args: &[&str]) -> Vec<String> {
        args.iter().map(|a| (*a).to_owned()).collect()
    }

    #[test]
    fn options_parse_and_pass_on_to_the_scenario_children() {
        let options = Options::parse(&strings(&[
            "--quick",
            "--only",
            "pool",
            "--fuzz-minutes",
            "5",
        ]))
        .unwrap()
        .unwrap();
        assert_eq!(
            options,
            Options {
                quick: true,
                only: vec!["pool".to_owned()],
                fuzz_minutes: Some(5.0)
            }
        );
        assert_eq!(
            options.child_args(),
            strings(&["--quick", "--fuzz-minutes", "5"])
        );
        assert!(Options::parse(&strings(&["--fuzz-minutes", "x"])).is_err());
        assert!(Options::parse(&strings(&["--fuzz-minutes", "-1"])).is_err());
        assert!(Options::parse(&strings(&["--bogus"])).is_err());
        assert_eq!(Options::parse(&strings(&["--help"])), Ok(None));
    }
}
