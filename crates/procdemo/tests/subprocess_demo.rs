//! `procdemo subprocess` prints the seed's lines around the command it runs; a missing program
//! is a clear message and a non-zero exit alone, and does not fail `procdemo all`.

#![allow(clippy::unwrap_used)] // In tests a failed unwrap is a failed test, with its location.

mod common;

use assert_cmd::Command;

fn procdemo(args: &[&str]) -> std::process::Output {
    Command::cargo_bin("procdemo")
        .unwrap()
        .args(args)
        .output()
        .unwrap()
}

#[test]
fn any_command_after_dashes_runs_and_its_exit_code_is_printed() {
    let output = procdemo(&["subprocess", "--", "sh", "-c", "echo hello from sh; exit 3"]);
    assert!(output.status.success(), "{output:?}");
    assert_eq!(
        String::from_utf8_lossy(&output.stdout),
        "$ sh -c echo hello from sh; exit 3\nhello from sh\nExit code: 3\n"
    );
}

#[test]
fn a_missing_program_run_alone_is_a_clear_error() {
    let output = procdemo(&["subprocess", "--", "prockit-no-such-program", "x"]);
    assert_eq!(output.status.code(), Some(1), "{output:?}");
    assert_eq!(
        String::from_utf8_lossy(&output.stdout),
        "$ prockit-no-such-program x\n"
    );
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("\"prockit-no-such-program\""), "{stderr}");
    assert!(stderr.contains("no such file or directory"), "{stderr}");
    assert!(!stderr.contains("panicked"), "{stderr}");
}

#[test]
fn the_seed_prints_the_command_then_the_exit_code_or_names_nslookup() {
    let output = procdemo(&["subprocess"]);
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        stdout.starts_with("$ nslookup www.python.org\n"),
        "{stdout}"
    );
    if output.status.success() {
        // nslookup exists; without a network it fails, and that is its exit code to print.
        let last = stdout.lines().last().unwrap();
        assert!(last.starts_with("Exit code: "), "{stdout}");
    } else {
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(stderr.contains("\"nslookup\""), "{stderr}");
    }
}

#[test]
fn all_runs_the_subprocess_demo_and_succeeds_whatever_is_installed() {
    let stdout = common::run_procdemo(&["all"]);
    let demo = stdout.split("== subprocess:").nth(1).unwrap();
    assert!(demo.contains("$ nslookup www.python.org\n"), "{stdout}");
    assert!(
        demo.contains("Exit code: ") || demo.contains("failed to spawn \"nslookup\""),
        "{stdout}"
    );
}
