//! The chores that wrap one cargo run each (`demo`, `bench`, `check-macos`), and `ci`,
//! which is `test` followed by `demo`.

use std::process::Command;

use crate::error::Error;
use crate::matrix::{self, MatrixOptions};
use crate::workspace::{CargoInvocation, Workspace};

/// The macOS target `check-macos` compiles for. x86_64 rather than aarch64 only because it is
/// the one a Linux developer is likeliest to have installed; either catches `cfg(target_os)` slips.
const MACOS_TARGET: &str = "x86_64-apple-darwin";

/// `cargo xtask demo [args...]`: runs procdemo with `args`, or `all` when none are given.
///
/// procdemo's exit code becomes ours (cargo passes it through), so a script can tell which
/// seed program failed.
pub(crate) fn demo(workspace: &Workspace, args: &[String]) -> Result<(), Error> {
    workspace.run(&demo_command(args))
}

/// The cargo command line behind `cargo xtask demo <args>`.
fn demo_command(args: &[String]) -> CargoInvocation {
    let args: Vec<&str> = if args.is_empty() {
        vec!["all"]
    } else {
        args.iter().map(String::as_str).collect()
    };
    CargoInvocation::new(["run", "--quiet", "--package", "procdemo", "--"]).args(args)
}

/// `cargo xtask bench [args...]`: builds the bench crate in release mode and runs it with `args`.
///
/// It runs from the workspace root because the bench binary writes docs/BENCHMARKS.md by
/// relative path. The procspawn contender (bench's `procspawn` feature) is built first; when it
/// does not build (offline without it in the cache, say), the bench runs without it and its
/// rows say "skipped".
pub(crate) fn bench(workspace: &Workspace, args: &[String]) -> Result<(), Error> {
    let with_procspawn = CargoInvocation::new([
        "build",
        "--release",
        "--quiet",
        "--package",
        "bench",
        "--features",
        "procspawn",
    ]);
    let features: &[&str] = if workspace.status(&with_procspawn)?.success() {
        &["--features", "procspawn"]
    } else {
        println!("xtask bench: procspawn did not build; running without its rows");
        &[]
    };
    let command = CargoInvocation::new(["run", "--release", "--quiet", "--package", "bench"])
        .args(features.iter().copied())
        .args(["--"])
        .args(args.iter().map(String::as_str));
    workspace.run(&command)
}

/// `cargo xtask soak [args...]`: builds the soak suite in release mode and runs it with `args`
/// (`--quick`, `--only <substring>`, `--fuzz-minutes <m>`, `--list`). Its exit code is ours:
/// non-zero when any scenario's table row is not all zeros.
pub(crate) fn soak(workspace: &Workspace, args: &[String]) -> Result<(), Error> {
    workspace.run(&soak_command(args))
}

/// The cargo command line behind `cargo xtask soak <args>`.
fn soak_command(args: &[String]) -> CargoInvocation {
    CargoInvocation::new(["run", "--release", "--quiet", "--package", "soak", "--"])
        .args(args.iter().map(String::as_str))
}

/// `cargo xtask ci`: exactly what the CI workflow runs, so a green local `ci` predicts a green CI.
///
/// The demo runs even when the matrix failed: a CI log that shows both answers more in one run.
pub(crate) fn ci(workspace: &Workspace) -> Result<(), Error> {
    let mut failed = Vec::new();
    if let Err(error) = matrix::run(workspace, &MatrixOptions::default()) {
        eprintln!("error: {error}");
        failed.push("test".to_owned());
    }
    let demo = demo_command(&[]);
    println!("==> demo: {demo}");
    if let Err(error) = workspace.run(&demo) {
        eprintln!("error: {error}");
        failed.push("demo".to_owned());
    }
    if failed.is_empty() {
        println!("xtask ci: test and demo succeeded");
        Ok(())
    } else {
        Err(Error::StepsFailed {
            command: "xtask ci",
            failed,
            total: 2,
        })
    }
}

/// `cargo xtask check-macos`: type-checks and lints every target for macOS from any host.
///
/// `cargo clippy` (like `cargo check`) needs only the target's standard library, not a macOS linker or SDK, so this
/// catches code that only compiles on Linux (pidfd, `F_SETPIPE_SZ`, ...) before CI's macOS runner
/// does. Without the target installed there is nothing to check against, so it says how to get
/// it and succeeds: this is a convenience, not a gate.
pub(crate) fn check_macos(workspace: &Workspace) -> Result<(), Error> {
    let Some(installed) = rustup_installed_targets() else {
        eprintln!(
            "note: `rustup target list --installed` did not run, so there is no way to tell \
             whether {MACOS_TARGET} is installed; skipping the macOS check"
        );
        return Ok(());
    };
    if !installed.iter().any(|target| target == MACOS_TARGET) {
        eprintln!(
            "note: rustup target {MACOS_TARGET} is not installed, skipping the macOS check \
             (add it with `rustup target add {MACOS_TARGET}`)"
        );
        return Ok(());
    }
    // clippy with -D warnings, as CI's macOS leg runs it: a warning that only appears under
    // another cfg (an import used only by Linux code) fails CI there just like an error.
    let command = CargoInvocation::new([
        "clippy",
        "--workspace",
        "--all-targets",
        "--target",
        MACOS_TARGET,
        "--features",
        crate::matrix::ASYNC_FEATURES,
        "--",
        "-D",
        "warnings",
    ]);
    println!("==> {command}");
    workspace.run(&command)
}

/// The targets `rustup target list --installed` names, or `None` when rustup is missing or fails
/// (a toolchain installed without rustup, for instance).
fn rustup_installed_targets() -> Option<Vec<String>> {
    let output = Command::new("rustup")
        .args(["target", "list", "--installed"])
        .output()
        .ok()
        .filter(|output| output.status.success())?;
    let targets = String::from_utf8_lossy(&output.stdout)
        .lines()
        .map(|line| line.trim().to_owned())
        .filter(|line| !line.is_empty())
        .collect();
    Some(targets)
}
