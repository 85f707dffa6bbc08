//! Timeouts (`run`, `communicate`, `wait_timeout`), signals, and process groups: a timeout
//! returns quickly with the output read so far and leaves no process behind.

#![allow(clippy::unwrap_used)] // In tests a failed unwrap is a failed test, with its location.

use std::time::{Duration, Instant};

use proc_spawn::{Command, Error, ExitStatus, Signal, Stdio};

#[test]
fn run_with_a_timeout_returns_early_with_partial_output_and_leaves_nothing_behind() {
    let _guard = test_support::watchdog(Duration::from_secs(30), "run with a timeout");
    let started = Instant::now();
    // The shell starts `sleep` as its child: our grandchild. Its pid comes out on stdout.
    let err = Command::shell("echo partial; echo $$; sleep 10 & echo $!; echo to-stderr >&2; wait")
        .process_group(0)
        .capture_output()
        .timeout(Duration::from_millis(500))
        .run()
        .unwrap_err();
    // Generous: well before the 10 s sleep would end.
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "{:?}",
        started.elapsed()
    );
    let Error::TimeoutExpired {
        args,
        timeout,
        stdout,
        stderr,
    } = &err
    else {
        panic!("{err:?}");
    };
    assert_eq!(*timeout, Duration::from_millis(500));
    assert_eq!(args[0], "/bin/sh");
    let stdout = String::from_utf8_lossy(stdout);
    let mut lines = stdout.lines();
    assert_eq!(lines.next(), Some("partial"), "{stdout}");
    let shell_pid: i32 = lines.next().unwrap().parse().unwrap();
    let sleep_pid: i32 = lines.next().unwrap().parse().unwrap();
    assert_eq!(stderr, b"to-stderr\n");
    assert!(err.to_string().contains("timed out after 500ms"), "{err}");
    if cfg!(target_os = "linux") {
        // The group kill took the grandchild too (it may linger as a zombie of init's).
        assert!(
            test_support::eventually(Duration::from_secs(5), || !test_support::is_running(
                sleep_pid
            )),
            "sleep {sleep_pid} still running"
        );
        // The shell, our child, was killed and reaped: not even a zombie is left.
        assert!(!std::path::Path::new(&format!("/proc/{shell_pid}")).exists());
    }
}

#[test]
fn a_plain_run_timeout_kills_the_child_and_reaps_it() {
    let started = Instant::now();
    // `exec` makes the shell's pid sleep's, so we learn the pid of the process killed.
    let err = Command::shell("echo $$; exec sleep 10")
        .capture_output()
        .timeout(Duration::from_millis(500))
        .run()
        .unwrap_err();
    assert!(started.elapsed() < Duration::from_secs(5));
    let Error::TimeoutExpired { stdout, .. } = &err else {
        panic!("{err:?}");
    };
    let pid: i32 = String::from_utf8_lossy(stdout).trim().parse().unwrap();
    if cfg!(target_os = "linux") {
        assert!(
            !std::path::Path::new(&format!("/proc/{pid}")).exists(),
            "reaped"
        );
    }
    // A child that finishes in time is not affected by the timeout.
    let done = Command::new("echo")
        .arg("quick")
        .capture_output()
        .timeout(Duration::from_secs(30))
        .run()
        .unwrap();
    assert_eq!(done.stdout, b"quick\n");
}

#[test]
fn communicate_timeout_keeps_the_child_running_and_can_be_resumed() {
    let _guard = test_support::watchdog(Duration::from_secs(30), "communicate resume");
    let mut child = Command::shell("echo first; read line; echo \"got $line\"")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    // No input yet: the child waits for a line, we time out with what it printed.
    let mut stdin = child.stdin.take();
    // Each timed-out call returns what arrived during it; together they hold the first line.
    let mut seen = Vec::new();
    while seen.len() < b"first\n".len() {
        match child.communicate(None, Some(Duration::from_millis(200))) {
            Err(Error::TimeoutExpired { stdout, .. }) => seen.extend(stdout),
            other => panic!("{other:?}"),
        }
    }
    assert_eq!(seen, b"first\n");
    assert_eq!(child.poll().unwrap(), None, "the child keeps running");
    // Its stdout handle is back, in blocking mode; give it a line and finish.
    use std::io::Write;
    stdin.as_mut().unwrap().write_all(b"hello\n").unwrap();
    drop(stdin);
    let (rest, _) = child
        .communicate(None, Some(Duration::from_secs(20)))
        .unwrap();
    assert_eq!(rest, b"got hello\n");
    assert_eq!(child.status(), Some(ExitStatus::Exited(0)));
}

#[test]
fn poll_wait_timeout_terminate_and_kill() {
    let mut child = Command::new("sleep").arg("10").spawn().unwrap();
    assert!(child.pid().as_raw() > 0);
    assert_eq!(child.poll().unwrap(), None);
    assert_eq!(child.wait_timeout(Duration::from_millis(50)).unwrap(), None);
    child.terminate().unwrap();
    let status = child.wait_timeout(Duration::from_secs(20)).unwrap();
    assert_eq!(
        status,
        Some(ExitStatus::Signaled {
            signal: Signal::TERM,
            core_dumped: false
        })
    );
    assert_eq!(status.unwrap().code(), -15);
    // Signalling a reaped child does nothing (its pid may be someone else's now).
    child.kill().unwrap();
    assert_eq!(child.wait().unwrap(), status.unwrap());

    let mut child = Command::new("sleep").arg("10").spawn().unwrap();
    child.kill().unwrap();
    assert_eq!(child.wait().unwrap().signal(), Some(Signal::KILL));
    let mut child = Command::new("sleep").arg("10").spawn().unwrap();
    child.send_signal(Signal::INT).unwrap();
    assert_eq!(child.wait().unwrap().signal(), Some(Signal::INT));
}

#[test]
fn a_new_session_or_group_is_signalled_as_a_whole() {
    for new_session in [false, true] {
        let mut command = Command::shell("sleep 10 & echo $!; wait");
        command.stdout(Stdio::piped());
        if new_session {
            command.new_session(true);
        } else {
            command.process_group(0);
        }
        let mut child = command.spawn().unwrap();
        let mut line = String::new();
        use std::io::BufRead;
        std::io::BufReader::new(child.stdout.as_mut().unwrap())
            .read_line(&mut line)
            .unwrap();
        let grandchild: i32 = line.trim().parse().unwrap();
        assert!(test_support::is_running(grandchild) || !cfg!(target_os = "linux"));
        child.signal_group(Signal::KILL).unwrap();
        assert_eq!(child.wait().unwrap().signal(), Some(Signal::KILL));
        if cfg!(target_os = "linux") {
            assert!(test_support::eventually(Duration::from_secs(5), || {
                !test_support::is_running(grandchild)
            }));
        }
    }
}

#[test]
fn communicate_continues_after_a_timeout_that_followed_the_last_input_byte() {
    let mut child = Command::new("/bin/sh")
        .args(["-c", "cat; sleep 0.3; echo done"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let input = b"hello\n";
    // The first call writes all of the input (and closes stdin), then times out.
    match child.communicate(Some(input), Some(Duration::from_millis(100))) {
        Err(Error::TimeoutExpired { stdout, .. }) => assert_eq!(stdout, input),
        other => panic!("expected a timeout after the echo, got {other:?}"),
    }
    // Called again with the same input, as documented: it goes on reading.
    let (rest, _) = child
        .communicate(Some(input), Some(Duration::from_secs(10)))
        .unwrap();
    assert_eq!(rest, b"done\n");
    assert!(child.wait().unwrap().success());
}
