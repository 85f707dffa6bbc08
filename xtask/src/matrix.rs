//! `cargo xtask test`: the check matrix, its legs in order, and the PASS/FAIL table.
//!
//! Every leg runs even after one fails, because the table is most useful when it is complete:
//! a formatting slip should not hide a test failure three legs later. A leg the machine cannot
//! run (the `cluster` leg without Slurm, the `ssh` leg without OpenSSH) is SKIPPED, says why,
//! and fails nothing.

use std::fmt::Write as _;
use std::time::{Duration, Instant};

use crate::cluster::{self, LegEnd};
use crate::error::Error;
use crate::ssh_leg;
use crate::workspace::{CargoInvocation, Workspace};

/// Less free disk than this where the build goes draws a warning before the first leg: a
/// clean run wrote 3.7 GB (Dec 2026), and a CI disk that filled up failed every leg after.
const DISK_WANTED: u64 = 5 << 30;

/// Name of the leg that `--quick` skips.
const RELEASE_LEG: &str = "release tests";

/// Name of the soak suite's short leg.
const SOAK_LEG: &str = "soak --quick";

/// Name of the leg that runs against a single-node Slurm cluster.
const CLUSTER_LEG: &str = "cluster";

/// Name of the leg that runs through `ssh` into a private sshd.
const SSH_LEG: &str = "ssh";

/// What the user asked of `cargo xtask test`.
#[derive(Debug, Default, PartialEq, Eq)]
pub(crate) struct MatrixOptions {
    /// Skip the release-mode test leg, the slowest one to build.
    quick: bool,
    /// Run only legs whose name contains one of these; empty means every leg.
    leg_filters: Vec<String>,
}

impl MatrixOptions {
    /// Parses `[--quick] [--leg <substring>]...` (also `--leg=<substring>`).
    pub(crate) fn parse(args: &[String]) -> Result<Self, Error> {
        let mut options = Self::default();
        let mut args = args.iter();
        while let Some(arg) = args.next() {
            if arg == "--quick" {
                options.quick = true;
            } else if arg == "--leg" {
                let filter = args
                    .next()
                    .ok_or_else(|| Error::Usage("`--leg` needs a substring after it".to_owned()))?;
                options.leg_filters.push(filter.clone());
            } else if let Some(filter) = arg.strip_prefix("--leg=") {
                options.leg_filters.push(filter.to_owned());
            } else {
                return Err(Error::Usage(format!("`test` does not take `{arg}`")));
            }
        }
        Ok(options)
    }

    /// Whether the leg named `name` runs under these options.
    fn selects(&self, name: &str) -> bool {
        if self.quick && name == RELEASE_LEG {
            return false;
        }
        self.leg_filters.is_empty() || self.leg_filters.iter().any(|f| name.contains(f.as_str()))
    }
}

/// Optional features the matrix turns on, so their code is linted, documented and tested too
/// (clippy, doc tests, docs, `check-macos`): proc-spawn's `tokio` (the async subprocess). Its
/// blocking tests run under it as well.
pub(crate) const ASYNC_FEATURES: &str = "proc-spawn/tokio";

/// The extra arguments of a crate's test leg: `--all-features` for the crates with optional
/// features worth testing.
fn features_of(package: &str) -> &'static [&'static str] {
    match package {
        "proc-spawn" => &["--all-features"],
        _ => &[],
    }
}

/// Which program runs the tests.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum TestRunner {
    /// `cargo nextest`: one process per test, so a test that forks does so from a
    /// single-threaded process, and `.config/nextest.toml` kills tests that hang.
    Nextest,
    /// `cargo test`: always available; the crates must stay correct under it too.
    CargoTest,
}

impl TestRunner {
    /// Tests of one package. With nextest, a crate with no tests yet passes instead of
    /// failing the leg (`--no-tests=pass`): an empty crate is work in progress, not a bug.
    fn package_tests(self, package: &str) -> CargoInvocation {
        match self {
            Self::Nextest => {
                CargoInvocation::new(["nextest", "run", "-p", package, "--no-tests=pass"])
            }
            Self::CargoTest => CargoInvocation::new(["test", "-p", package]),
        }
        .args(features_of(package).iter().copied())
    }

    /// Every workspace test built with optimizations, where timing-dependent code
    /// (timeouts, races between parent and child) behaves differently than in debug.
    fn release_tests(self) -> CargoInvocation {
        match self {
            Self::Nextest => CargoInvocation::new([
                "nextest",
                "run",
                "--workspace",
                "--release",
                "--no-tests=pass",
            ]),
            Self::CargoTest => CargoInvocation::new(["test", "--workspace", "--release"]),
        }
    }

    /// The tests of `crates` whose names contain `cluster_`, told by the environment that a
    /// cluster is up.
    fn cluster_tests(self, crates: &[String]) -> CargoInvocation {
        self.filtered_tests(crates, cluster::TEST_FILTER, cluster::CLUSTER_ENV)
    }

    /// The tests of `crates` whose names contain `ssh_`, told by the environment that the
    /// OpenSSH programs are there.
    fn ssh_tests(self, crates: &[String]) -> CargoInvocation {
        self.filtered_tests(crates, ssh_leg::TEST_FILTER, ssh_leg::SSH_ENV)
    }

    /// The tests of `crates` whose names contain `filter`, with `env_var=1` telling them that
    /// what they need is there. A leg may have no such tests yet, so zero matching tests must
    /// pass: nextest needs `--no-tests=pass` for that, `cargo test` with a filter passes on its
    /// own.
    fn filtered_tests(self, crates: &[String], filter: &str, env_var: &str) -> CargoInvocation {
        let packages = crates.iter().flat_map(|name| ["-p", name.as_str()]);
        let command = match self {
            Self::Nextest => CargoInvocation::new(["nextest", "run", "--no-tests=pass"]),
            Self::CargoTest => CargoInvocation::new(["test"]),
        };
        command.args(packages).args([filter]).env(env_var, "1")
    }
}

/// What a leg does.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Action {
    /// One cargo command; the leg passes when it succeeds.
    Cargo(CargoInvocation),
    /// The cluster leg ([`cluster::run_leg`]) with the cargo command of its tests.
    Cluster(CargoInvocation),
    /// The ssh leg ([`ssh_leg::run_leg`]) with the cargo command of its tests.
    Ssh(CargoInvocation),
}

impl std::fmt::Display for Action {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Cargo(command) => write!(f, "{command}"),
            Self::Cluster(tests) => f.write_str(&cluster::leg_description(tests)),
            Self::Ssh(tests) => f.write_str(&ssh_leg::leg_description(tests)),
        }
    }
}

/// One row of the matrix: a name for the table and what it runs.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Leg {
    name: String,
    action: Action,
}

impl Leg {
    fn new(name: impl Into<String>, command: CargoInvocation) -> Self {
        Self {
            name: name.into(),
            action: Action::Cargo(command),
        }
    }
}

/// Every leg in the order it runs: cheap static checks first so they fail fast, then the
/// tests crate by crate (in dependency order, which is also name order), then the slower
/// whole-workspace legs.
fn all_legs(crates: &[String], runner: TestRunner) -> Vec<Leg> {
    let mut legs = vec![
        Leg::new("fmt", CargoInvocation::new(["fmt", "--all", "--check"])),
        Leg::new(
            "clippy",
            CargoInvocation::new([
                "clippy",
                "--workspace",
                "--all-targets",
                "--features",
                ASYNC_FEATURES,
                "--",
                "-D",
                "warnings",
            ]),
        ),
    ];
    for name in crates {
        legs.push(Leg::new(format!("test {name}"), runner.package_tests(name)));
    }
    // The soak suite's short form: every scenario at small sizes (`cargo xtask soak` runs the
    // full one). A debug build, so it reuses what the test legs just compiled.
    legs.push(Leg::new(
        SOAK_LEG,
        CargoInvocation::new(["run", "--quiet", "--package", "soak", "--", "--quick"]),
    ));
    // After the crates' own legs, which build what its tests need; skipped without Slurm.
    legs.push(Leg {
        name: CLUSTER_LEG.to_owned(),
        action: Action::Cluster(runner.cluster_tests(crates)),
    });
    // Skipped without OpenSSH; its tests start their own sshd, so it needs no root.
    legs.push(Leg {
        name: SSH_LEG.to_owned(),
        action: Action::Ssh(runner.ssh_tests(crates)),
    });
    // nextest cannot run doctests, so they always go through `cargo test`.
    legs.push(Leg::new(
        "doc tests",
        CargoInvocation::new(["test", "--workspace", "--doc", "--features", ASYNC_FEATURES]),
    ));
    legs.push(Leg::new(RELEASE_LEG, runner.release_tests()));
    // `-D warnings` makes broken intra-doc links and missing docs fail the leg
    // instead of scrolling past as warnings.
    legs.push(Leg::new(
        "docs",
        CargoInvocation::new([
            "doc",
            "--workspace",
            "--no-deps",
            "--features",
            ASYNC_FEATURES,
        ])
        .env("RUSTDOCFLAGS", "-D warnings"),
    ));
    legs
}

/// How one leg ended.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Outcome {
    Pass,
    /// Why it failed: exit status, or why it could not start.
    Fail(String),
    /// Why this machine cannot run it.
    Skip(String),
}

/// A leg's row in the table.
#[derive(Debug)]
struct LegResult {
    name: String,
    outcome: Outcome,
    duration: Duration,
}

/// Runs the selected legs in order, prints the table, and fails if any leg failed.
pub(crate) fn run(workspace: &Workspace, options: &MatrixOptions) -> Result<(), Error> {
    // Incremental caches only pay off when the same crate is rebuilt after an edit; a matrix
    // mostly builds from scratch, and in a clean run they were 2 GB of the 5.7 GB written
    // (a CI disk once filled up mid-run). The user's own CARGO_INCREMENTAL wins.
    let workspace = &workspace.with_default_env("CARGO_INCREMENTAL", "0");
    let defaults: Vec<String> = workspace.default_envs().collect();
    if !defaults.is_empty() {
        println!(
            "note: every leg runs with {} (set it yourself to choose otherwise)",
            defaults.join(" ")
        );
    }
    if let Some(free) = workspace
        .free_disk_bytes()
        .filter(|&free| free < DISK_WANTED)
    {
        println!(
            "warning: {:.1} GB free where the build goes; a clean run of the matrix writes about \
             4 GB, so legs may fail with \"No space left on device\" (`cargo clean` frees \
             what earlier builds left)",
            free as f64 / 1e9
        );
    }
    let runner = if workspace.has_nextest() {
        TestRunner::Nextest
    } else {
        eprintln!(
            "note: cargo-nextest not found, running tests with `cargo test` \
             (install it with `cargo install cargo-nextest --locked`)"
        );
        TestRunner::CargoTest
    };
    let crates = workspace.member_crates()?;
    let legs: Vec<Leg> = all_legs(&crates, runner)
        .into_iter()
        .filter(|leg| options.selects(&leg.name))
        .collect();
    if legs.is_empty() {
        let names: Vec<String> = all_legs(&crates, runner)
            .into_iter()
            .map(|leg| leg.name)
            .collect();
        return Err(Error::Usage(format!(
            "no leg matches {:?}; the legs are: {}",
            options.leg_filters,
            names.join(", ")
        )));
    }

    let started = Instant::now();
    let mut results = Vec::with_capacity(legs.len());
    for (index, leg) in legs.iter().enumerate() {
        println!(
            "==> [{}/{}] {}: {}",
            index + 1,
            legs.len(),
            leg.name,
            leg.action
        );
        let leg_started = Instant::now();
        let outcome = match &leg.action {
            Action::Cargo(command) => match workspace.status(command) {
                Ok(status) if status.success() => Outcome::Pass,
                Ok(status) => Outcome::Fail(status.to_string()),
                Err(error) => Outcome::Fail(error.to_string()),
            },
            Action::Cluster(tests) => leg_outcome(cluster::run_leg(workspace, tests)),
            Action::Ssh(tests) => leg_outcome(ssh_leg::run_leg(workspace, tests)),
        };
        results.push(LegResult {
            name: leg.name.clone(),
            outcome,
            duration: leg_started.elapsed(),
        });
    }

    print!("{}", render_table(&results, started.elapsed()));
    let failed: Vec<String> = results
        .iter()
        .filter(|result| matches!(result.outcome, Outcome::Fail(_)))
        .map(|result| result.name.clone())
        .collect();
    if failed.is_empty() {
        Ok(())
    } else {
        Err(Error::StepsFailed {
            command: "xtask test",
            failed,
            total: results.len(),
        })
    }
}

/// The table's verdict on a leg that can be skipped; an error is also printed where it happened.
fn leg_outcome(end: Result<LegEnd, Error>) -> Outcome {
    match end {
        Ok(LegEnd::Ran) => Outcome::Pass,
        Ok(LegEnd::Skipped(reason)) => Outcome::Skip(reason),
        Err(error) => {
            eprintln!("error: {error}");
            Outcome::Fail(error.to_string())
        }
    }
}

/// The summary printed after the last leg, e.g.
///
/// ```text
/// ==> summary
///   leg     result        time
///   fmt     PASS          0.4s
///   clippy  PASS         12.0s
///   total                12.4s
/// xtask test: all legs passed (2 of 2)
/// ```
///
/// A skipped leg reads `SKIP` with its reason, and the closing line then names it:
/// `xtask test: every leg that ran passed (2 of 3; skipped: cluster)`.
///
/// The closing line deliberately does not read "N passed, N failed": it counts legs, and CI
/// tooling that scans for test counts must not mistake it for one.
fn render_table(results: &[LegResult], total: Duration) -> String {
    let width = results
        .iter()
        .map(|result| result.name.len())
        .chain(["total".len()])
        .max()
        .unwrap_or(0);
    let mut table = String::from("\n==> summary\n");
    // Writing to a String cannot fail, so the fmt::Results below are ignored.
    let _ = writeln!(table, "  {:width$}  {:6}  {:>10}", "leg", "result", "time");
    for result in results {
        let (verdict, reason) = match &result.outcome {
            Outcome::Pass => ("PASS", None),
            Outcome::Fail(reason) => ("FAIL", Some(reason)),
            Outcome::Skip(reason) => ("SKIP", Some(reason)),
        };
        let time = format_duration(result.duration);
        let _ = write!(table, "  {:width$}  {verdict:6}  {time:>10}", result.name);
        if let Some(reason) = reason {
            let _ = write!(table, "  ({reason})");
        }
        table.push('\n');
    }
    let _ = writeln!(
        table,
        "  {:width$}  {:6}  {:>10}",
        "total",
        "",
        format_duration(total)
    );
    // On failure the closing line is the error `main` prints, naming the failed legs.
    let failed = results
        .iter()
        .any(|result| matches!(result.outcome, Outcome::Fail(_)));
    let skipped: Vec<&str> = results
        .iter()
        .filter(|result| matches!(result.outcome, Outcome::Skip(_)))
        .map(|result| result.name.as_str())
        .collect();
    let count = results.len();
    if !failed && skipped.is_empty() {
        let _ = writeln!(table, "xtask test: all legs passed ({count} of {count})");
    } else if !failed {
        let _ = writeln!(
            table,
            "xtask test: every leg that ran passed ({} of {count}; skipped: {})",
            count - skipped.len(),
            skipped.join(", ")
        );
    }
    table
}

/// `0.4s`, `59.9s`, `1m 03.5s`: tenths of a second, minutes once it gets long.
fn format_duration(duration: Duration) -> String {
    let tenths = duration.as_millis() / 100;
    let (minutes, tenths) = (tenths / 600, tenths % 600);
    let (seconds, tenth) = (tenths / 10, tenths % 10);
    if minutes == 0 {
        format!("{seconds}.{tenth}s")
    } else {
        format!("{minutes}m {seconds:02}.{tenth}s")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn strings(args: &[&str]) -> Vec<String> {
        args.iter().map(|arg| (*arg).to_owned()).collect()
    }

    fn leg_names(crates: &[&str], options: &MatrixOptions) -> Vec<String> {
        all_legs(&strings(crates), TestRunner::Nextest)
            .into_iter()
            .map(|leg| leg.name)
            .filter(|name| options.selects(name))
            .collect()
    }

    #[test]
    fn options_parse() {
        let cases: [(&[&str], MatrixOptions); 4] = [
            (&[], MatrixOptions::default()),
            (
                &["--quick"],
                MatrixOptions {
                    quick: true,
                    leg_filters: vec![],
                },
            ),
            (
                &["--leg", "clippy", "--leg=fork"],
                MatrixOptions {
                    quick: false,
                    leg_filters: strings(&["clippy", "fork"]),
                },
            ),
            (
                &["--leg", "doc", "--quick"],
                MatrixOptions {
                    quick: true,
                    leg_filters: strings(&["doc"]),
                },
            ),
        ];
        for (args, expected) in cases {
            let parsed = MatrixOptions::parse(&strings(args));
            assert_eq!(parsed.ok(), Some(expected), "args: {args:?}");
        }
    }

    #[test]
    fn options_reject_bad_arguments() {
        for args in [&["--leg"][..], &["--fast"], &["fork-sys"]] {
            let parsed = MatrixOptions::parse(&strings(args));
            assert!(matches!(parsed, Err(Error::Usage(_))), "args: {args:?}");
        }
    }

    #[test]
    fn legs_run_in_the_documented_order() {
        let names = leg_names(&["fork-sys", "procdemo"], &MatrixOptions::default());
        let expected = [
            "fmt",
            "clippy",
            "test fork-sys",
            "test procdemo",
            "soak --quick",
            "cluster",
            "ssh",
            "doc tests",
            "release tests",
            "docs",
        ];
        assert_eq!(names, expected);
    }

    #[test]
    fn quick_skips_only_the_release_leg() {
        let quick = MatrixOptions::parse(&strings(&["--quick"])).unwrap();
        let names = leg_names(&["fork-sys"], &quick);
        assert_eq!(
            names,
            [
                "fmt",
                "clippy",
                "test fork-sys",
                "soak --quick",
                "cluster",
                "ssh",
                "doc tests",
                "docs"
            ]
        );
    }

    #[test]
    fn leg_filter_matches_substrings() {
        let options = MatrixOptions::parse(&strings(&["--leg", "doc"])).unwrap();
        assert_eq!(leg_names(&["fork-sys"], &options), ["doc tests", "docs"]);
    }

    #[test]
    fn runners_build_the_expected_commands() {
        let cases = [
            (
                TestRunner::Nextest.package_tests("fork-sys"),
                "cargo nextest run -p fork-sys --no-tests=pass",
            ),
            (
                TestRunner::CargoTest.package_tests("fork-sys"),
                "cargo test -p fork-sys",
            ),
            (
                TestRunner::Nextest.package_tests("proc-spawn"),
                "cargo nextest run -p proc-spawn --no-tests=pass --all-features",
            ),
            (
                TestRunner::CargoTest.package_tests("proc-spawn"),
                "cargo test -p proc-spawn --all-features",
            ),
            (
                TestRunner::Nextest.release_tests(),
                "cargo nextest run --workspace --release --no-tests=pass",
            ),
            (
                TestRunner::CargoTest.release_tests(),
                "cargo test --workspace --release",
            ),
        ];
        for (command, expected) in cases {
            assert_eq!(command.to_string(), expected);
        }
    }

    #[test]
    fn cluster_leg_runs_the_crates_cluster_tests_with_the_variable_set() {
        let crates = strings(&["fork-sys", "proc-pool"]);
        assert_eq!(
            TestRunner::Nextest.cluster_tests(&crates).to_string(),
            "PROCKIT_SLURM=1 cargo nextest run --no-tests=pass -p fork-sys -p proc-pool cluster_"
        );
        assert_eq!(
            TestRunner::CargoTest.cluster_tests(&crates).to_string(),
            "PROCKIT_SLURM=1 cargo test -p fork-sys -p proc-pool cluster_"
        );
        let options = MatrixOptions::parse(&strings(&["--leg", "cluster"])).unwrap();
        assert_eq!(leg_names(&["fork-sys"], &options), ["cluster"]);
    }

    #[test]
    fn ssh_leg_runs_the_crates_ssh_tests_with_the_variable_set() {
        let crates = strings(&["fork-sys", "proc-pool"]);
        assert_eq!(
            TestRunner::Nextest.ssh_tests(&crates).to_string(),
            "PROCKIT_SSH=1 cargo nextest run --no-tests=pass -p fork-sys -p proc-pool ssh_"
        );
        assert_eq!(
            TestRunner::CargoTest.ssh_tests(&crates).to_string(),
            "PROCKIT_SSH=1 cargo test -p fork-sys -p proc-pool ssh_"
        );
        let options = MatrixOptions::parse(&strings(&["--leg", "ssh"])).unwrap();
        assert_eq!(leg_names(&["fork-sys"], &options), ["ssh"]);
        let legs = all_legs(&crates, TestRunner::Nextest);
        let ssh = legs.iter().find(|leg| leg.name == "ssh");
        assert_eq!(
            ssh.map(|leg| &leg.action),
            Some(&Action::Ssh(TestRunner::Nextest.ssh_tests(&crates)))
        );
    }

    #[test]
    fn durations_format() {
        let cases = [
            (Duration::from_millis(0), "0.0s"),
            (Duration::from_millis(430), "0.4s"),
            (Duration::from_millis(59_950), "59.9s"),
            (Duration::from_millis(63_500), "1m 03.5s"),
            (Duration::from_secs(3600), "60m 00.0s"),
        ];
        for (duration, expected) in cases {
            assert_eq!(format_duration(duration), expected);
        }
    }

    #[test]
    fn table_marks_failures() {
        let results = [
            LegResult {
                name: "fmt".to_owned(),
                outcome: Outcome::Pass,
                duration: Duration::from_millis(400),
            },
            LegResult {
                name: "clippy".to_owned(),
                outcome: Outcome::Fail("exit status: 101".to_owned()),
                duration: Duration::from_secs(12),
            },
        ];
        let table = render_table(&results, Duration::from_millis(12_400));
        assert!(table.contains("fmt     PASS"), "{table}");
        assert!(table.contains("clippy  FAIL"), "{table}");
        assert!(table.contains("(exit status: 101)"), "{table}");
        assert!(!table.contains("passed"), "{table}");
    }

    #[test]
    fn table_of_passing_legs_says_so_last() {
        let results = [LegResult {
            name: "fmt".to_owned(),
            outcome: Outcome::Pass,
            duration: Duration::from_millis(400),
        }];
        let table = render_table(&results, Duration::from_millis(400));
        assert!(
            table.ends_with("  total                0.4s\nxtask test: all legs passed (1 of 1)\n"),
            "{table}"
        );
    }

    #[test]
    fn skipped_legs_say_why_and_fail_nothing() {
        let results = [
            LegResult {
                name: "fmt".to_owned(),
                outcome: Outcome::Pass,
                duration: Duration::from_millis(400),
            },
            LegResult {
                name: "cluster".to_owned(),
                outcome: Outcome::Skip("Slurm/munge not installed (no srun)".to_owned()),
                duration: Duration::from_millis(1),
            },
        ];
        let table = render_table(&results, Duration::from_millis(401));
        assert!(
            table.contains("cluster  SKIP          0.0s  (Slurm/munge not installed (no srun))"),
            "{table}"
        );
        assert!(
            table.ends_with("xtask test: every leg that ran passed (1 of 2; skipped: cluster)\n"),
            "{table}"
        );
        assert!(!table.contains("all legs passed"), "{table}");
    }
}
