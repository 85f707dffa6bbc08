//! `procdemo` and `procdemo all` run every demo once; unknown names are a clear error.

mod common;

use assert_cmd::Command;

#[test]
fn all_runs_every_demo_and_no_line_is_printed_twice() {
    for args in [&[][..], &["all"][..]] {
        let stdout = common::run_procdemo_with_env(
            args,
            &[
                ("PROCDEMO_POOL_MAX_SLEEP", "0.1"),
                ("PROCDEMO_QUEUE_MAX_SLEEP", "0.1"),
            ],
        );
        assert!(stdout.contains("== fork:"), "{stdout}");
        assert!(stdout.contains("== process:"), "{stdout}");
        assert!(stdout.contains("== pool:"), "{stdout}");
        assert!(stdout.contains("== queue:"), "{stdout}");
        assert_eq!(stdout.matches(" from queue.").count(), 3, "{stdout}");
        assert_eq!(stdout.matches("Run task ").count(), 5, "{stdout}");
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
