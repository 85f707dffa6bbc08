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

#[test]
fn run_options_on_a_stage_are_an_error_not_ignored() {
    type SetOption = fn(&mut Command);
    let stages: [(&str, SetOption); 3] = [
        ("Pipeline::input", |c| {
            c.input("data");
        }),
        ("Pipeline::timeout", |c| {
            c.timeout(Duration::from_secs(1));
        }),
        ("Pipeline::check", |c| {
            c.check(true);
        }),
    ];
    for (instead, set) in stages {
        let mut first = Command::new("cat");
        set(&mut first);
        let pipeline = first | Command::new("cat").capture_output();
        for result in [pipeline.run().map(drop), pipeline.spawn().map(drop)] {
            match result {
                Err(err @ Error::Spawn { .. }) => {
                    assert!(err.to_string().contains(instead), "{err}");
                }
                other => panic!("{instead}: {other:?}"),
            }
        }
    }
}

#[test]
fn input_goes_to_the_first_stage_through_the_poll_loop() {
    let _guard = test_support::watchdog(Duration::from_secs(60), "pipeline input");
    let out = (Command::new("sort") | Command::new("uniq").capture_output())
        .input("b\na\nb\n")
        .check(true)
        .run()
        .unwrap();
    assert_eq!(out.stdout, b"a\nb\n");
    // More than any pipe holds, each way: written while the output is read.
    let big = vec![b'x'; 4 << 20];
    let out = (Command::new("cat") | Command::new("cat").capture_output())
        .input(big.clone())
        .run()
        .unwrap();
    assert_eq!(out.stdout.len(), big.len());
    // One stage.
    let out = Pipeline::new(Command::new("cat").capture_output().into())
        .input("one")
        .run()
        .unwrap();
    assert_eq!(out.stdout, b"one");
}

#[test]
fn a_timeout_kills_every_stage_and_keeps_the_output() {
    let _guard = test_support::watchdog(Duration::from_secs(60), "pipeline timeout");
    let started = std::time::Instant::now();
    let err = (Command::shell("echo partial; exec sleep 100")
        | Command::new("cat")
        | Command::shell("cat; sleep 100").capture_output())
    .timeout(Duration::from_millis(300))
    .run()
    .unwrap_err();
    assert!(started.elapsed() < Duration::from_secs(10), "{err:?}");
    match &err {
        Error::TimeoutExpired {
            args,
            stdout,
            timeout,
            ..
        } => {
            assert_eq!(stdout, b"partial\n");
            assert_eq!(*timeout, Duration::from_millis(300));
            assert_eq!(args.iter().filter(|a| *a == "|").count(), 2, "{args:?}");
        }
        other => panic!("{other:?}"),
    }
    // Every stage was reaped: none is left as a zombie or running.
    assert_eq!(test_support::zombie_children(), 0);
    // A stage before the last still running after the last ended counts too.
    let err = (Command::new("sleep").arg("100") | Command::new("true"))
        .timeout(Duration::from_millis(300))
        .run()
        .unwrap_err();
    assert!(matches!(err, Error::TimeoutExpired { .. }), "{err:?}");
}

#[test]
fn a_piped_stderr_before_the_last_stage_is_an_error_not_a_hang() {
    let _guard = test_support::watchdog(Duration::from_secs(30), "piped middle stderr");
    let err = (Command::shell("head -c 300000 /dev/zero >&2; echo done")
        .stderr(proc_spawn::Stdio::piped())
        | Command::new("cat").capture_output())
    .run()
    .unwrap_err();
    assert!(
        err.to_string().contains("stderr of pipeline stage 0"),
        "{err}"
    );
}

#[test]
fn pipeline_failed_keeps_the_last_stages_stderr() {
    let err = (Command::new("true") | Command::shell("echo oops >&2; exit 3").capture_output())
        .check(true)
        .run()
        .unwrap_err();
    match err {
        Error::PipelineFailed { stage, stderr, .. } => {
            assert_eq!(stage, 1);
            assert_eq!(stderr, b"oops\n");
        }
        other => panic!("{other:?}"),
    }
}
