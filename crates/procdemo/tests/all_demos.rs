//! `procdemo` and `procdemo all` run every demo once; unknown names are a clear error.

use assert_cmd::Command;

fn run(args: &[&str]) -> String {
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

#[test]
fn all_runs_every_demo_and_no_line_is_printed_twice() {
    for args in [&[][..], &["all"][..]] {
        let stdout = run(args);
        assert!(stdout.contains("== fork:"), "{stdout}");
        assert!(stdout.contains("== process:"), "{stdout}");
        assert_eq!(
            stdout.matches("Run child process test (").count(),
            1,
            "{stdout}"
        );
        assert_eq!(stdout.matches(") start...").count(), 1, "{stdout}");
        assert_eq!(stdout.matches("I am child process").count(), 1, "{stdout}");
    }
}

#[test]
fn an_unknown_demo_is_a_clear_error() {
    let output = Command::cargo_bin("procdemo")
        .unwrap()
        .arg("frobnicate")
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("no demo named \"frobnicate\""), "{stderr}");
    assert!(stderr.contains("fork"), "usage lists the demos: {stderr}");
}
