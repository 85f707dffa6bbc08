//! Running the procdemo binary, shared by its tests.
// Each test binary uses what it needs of this module.
#![allow(dead_code)]

use assert_cmd::Command;

/// Runs `procdemo <args>`, checks that it succeeded, and returns its stdout.
pub(crate) fn run_procdemo(args: &[&str]) -> String {
    run_procdemo_with_env(args, &[])
}

/// [`run_procdemo`] with extra environment variables.
pub(crate) fn run_procdemo_with_env(args: &[&str], env: &[(&str, &str)]) -> String {
    let mut command = Command::cargo_bin("procdemo").expect("procdemo is built");
    command.args(args);
    for (key, value) in env {
        command.env(key, value);
    }
    let output = command.output().expect("procdemo runs");
    assert!(
        output.status.success(),
        "procdemo {args:?} failed: {output:?}"
    );
    String::from_utf8(output.stdout).expect("utf-8 output")
}
