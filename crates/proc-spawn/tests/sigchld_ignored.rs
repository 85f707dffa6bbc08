//! A program that set `SIGCHLD` to `SIG_IGN` (the kernel then reaps every child itself, and
//! `waitpid` fails with `ECHILD`): `call`, `run` and `Child::wait` still work, report the lost
//! status as exit code 0 (as Python does), flag it, and keep every byte read.
//!
//! The disposition is process-wide, so the test re-runs itself in a process of its own that
//! inherits `SIGCHLD` ignored across exec (coreutils' `env --ignore-signal=CHLD`; skipped where
//! `env` has no such option, as on macOS).

#![allow(clippy::unwrap_used)] // In tests a failed unwrap is a failed test, with its location.

use std::time::Duration;

use proc_spawn::{Command, ExitStatus, Stdio};

const INNER: &str = "PROC_SPAWN_TEST_SIGCHLD_IGNORED";

#[test]
fn waits_survive_sigchld_ignored() {
    if std::env::var_os(INNER).is_some() {
        return inner();
    }
    let me = std::env::current_exe().unwrap();
    let probe = Command::new("env")
        .args(["--ignore-signal=CHLD", "true"])
        .stderr(Stdio::null())
        .call();
    if !probe.is_ok_and(|status| status.success()) {
        eprintln!("skipped: this `env` cannot start a program with SIGCHLD ignored");
        return;
    }
    let out = Command::new("env")
        .arg("--ignore-signal=CHLD")
        .arg(&me)
        .args(["--exact", "waits_survive_sigchld_ignored", "--nocapture"])
        .env(INNER, "1")
        .capture_output()
        .run()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success() && text.contains("inner checks passed"),
        "{out:?}\n{text}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

fn inner() {
    #[cfg(target_os = "linux")]
    {
        let status = std::fs::read_to_string("/proc/self/status").unwrap();
        let ignored = status.lines().find(|l| l.starts_with("SigIgn:")).unwrap();
        let mask = u64::from_str_radix(ignored.split_whitespace().nth(1).unwrap(), 16).unwrap();
        assert_ne!(
            mask & (1 << (17 - 1)),
            0,
            "SIGCHLD is not ignored: {ignored}"
        );
    }
    // Python: call(['true']) == 0.
    assert_eq!(proc_spawn::call(["true"]).unwrap(), ExitStatus::Exited(0));
    // Python: run(['echo', 'hi'], capture_output=True).stdout == b'hi\n'.
    let done = Command::new("echo")
        .arg("hi")
        .capture_output()
        .run()
        .unwrap();
    assert_eq!(done.stdout, b"hi\n");
    assert!(done.status_lost);
    // Both spawn methods (a uid forces fork+exec), with input through communicate.
    let done = Command::new("cat")
        .input("x".repeat(100_000))
        .capture_output()
        .uid(rustix::process::getuid().as_raw())
        .run()
        .unwrap();
    assert_eq!(done.stdout.len(), 100_000);
    // check_output still returns the bytes.
    assert_eq!(proc_spawn::check_output(["echo", "ok"]).unwrap(), b"ok\n");
    // A Child: wait, then every later query agrees; signals to the gone pid do nothing.
    let mut child = Command::new("sh")
        .args(["-c", "exit 3"])
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    assert_eq!(child.wait().unwrap(), ExitStatus::Exited(0));
    assert!(child.status_lost());
    assert_eq!(child.poll().unwrap(), Some(ExitStatus::Exited(0)));
    assert_eq!(child.status(), Some(ExitStatus::Exited(0)));
    child.kill().unwrap();
    // wait_timeout: None while running, then the lost status.
    let mut child = Command::new("sleep").arg("0.3").spawn().unwrap();
    assert_eq!(child.wait_timeout(Duration::from_millis(10)).unwrap(), None);
    assert_eq!(
        child.wait_timeout(Duration::from_secs(10)).unwrap(),
        Some(ExitStatus::Exited(0))
    );
    println!("inner checks passed");
}
