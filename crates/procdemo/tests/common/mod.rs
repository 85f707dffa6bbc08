//! Running the procdemo binary, shared by its tests.

use assert_cmd::Command;

/// Runs `procdemo <args>`, checks that it succeeded, and returns its stdout.
pub(crate) fn run_procdemo(args: &[&str]) -> String {
    let output = Command::cargo_bin("procdemo")
        .expect("procdemo is built")
        .args(args)
        .output()
        .expect("procdemo runs");
    assert!(
        output.status.success(),
        "procdemo {args:?} failed: {output:?}"
    );
    String::from_utf8(output.stdout).expect("utf-8 output")
}
