//! Pipelines: data flows stage to stage, the parent closes the intermediate pipes (so EOF and
//! SIGPIPE behave as in a shell), and a failing stage is reported by position and command.

#![allow(clippy::unwrap_used)] // In tests a failed unwrap is a failed test, with its location.

use std::time::Duration;

use proc_spawn::{Command, Error, ExitStatus, Pipeline, Signal};

#[test]
fn three_stages_carry_the_data() {
    let out = (Command::new("printf").arg("c\\nb\\na\\nb\\n")
        | Command::new("sort")
        | Command::new("uniq").capture_output())
    .check(true)
    .run()
    .unwrap();
    assert_eq!(out.stdout, b"a\nb\nc\n");
    assert_eq!(out.statuses, [ExitStatus::Exited(0); 3]);
    assert!(out.success());
    assert_eq!(out.args[2], ["uniq"]);
}

#[test]
fn a_three_stage_pipeline_reports_the_failing_stage() {
    let pipeline = Pipeline::new(Command::shell("echo data"))
        .pipe(Command::shell("cat >/dev/null; exit 3"))
        .pipe(Command::new("cat"));
    let out = pipeline.run().unwrap();
    assert_eq!(
        out.statuses,
        [
            ExitStatus::Exited(0),
            ExitStatus::Exited(3),
            ExitStatus::Exited(0)
        ]
    );
    assert_eq!(out.failed_stage(), Some(1));
    let err = pipeline.check(true).run().unwrap_err();
    match &err {
        Error::PipelineFailed {
            stage,
            args,
            status,
            statuses,
            ..
        } => {
            assert_eq!(*stage, 1);
            assert_eq!(args[2], "cat >/dev/null; exit 3");
            assert_eq!(*status, ExitStatus::Exited(3));
            assert_eq!(statuses.len(), 3);
        }
        other => panic!("{other:?}"),
    }
    assert!(err.to_string().contains("stage 1 of 3"), "{err}");
}

#[test]
fn eof_and_sigpipe_behave_as_in_a_shell() {
    let _guard = test_support::watchdog(Duration::from_secs(60), "yes | head");
    // If the parent kept a copy of the pipe between `yes` and `head`, `yes` would never get
    // SIGPIPE and this would run for ever.
    let out = (Command::new("yes") | Command::new("head").arg("-n2").capture_output())
        .check(true)
        .run()
        .unwrap();
    assert_eq!(out.stdout, b"y\ny\n");
    assert_eq!(out.statuses[0].signal(), Some(Signal::PIPE));
    assert_eq!(
        out.failed_stage(),
        None,
        "SIGPIPE upstream is not a failure"
    );
    // And `cat` sees end-of-file once `echo` is done, through a middle stage.
    let out = (Command::new("echo").arg("x")
        | Command::new("cat")
        | Command::new("wc").arg("-c").capture_output())
    .run()
    .unwrap();
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "2");
}

#[test]
fn a_stage_that_cannot_start_is_named() {
    // (That the stages already started are stopped is checked in no_leaks.rs.)
    let err = (Command::new("sleep").arg("10") | Command::new("prockit-no-such-stage"))
        .run()
        .unwrap_err();
    assert!(
        matches!(&err, Error::NotFound { program } if program == "prockit-no-such-stage"),
        "{err:?}"
    );
}
