//! A timed-out `run` (and a timed-out pipeline stage) leaves nothing running by default: the
//! child's group and its descendants are killed. In a terminal's foreground the child stays in
//! our process group, so a Ctrl-C typed there still reaches its whole tree; the tests that
//! need a terminal run this binary again in a session of its own, with a pseudo-terminal as
//! its controlling terminal.

#![cfg(target_os = "linux")]
#![allow(clippy::unwrap_used)] // In tests a failed unwrap is a failed test, with its location.

use std::ffi::OsString;
use std::io::Write;
use std::path::Path;
use std::time::Duration;

use proc_spawn::{Command, Error, Pipeline, Stdio};

/// A shell that starts two background `sleep`s, prints its pid, its process group and their
/// pids, and waits: the shell of the issue's `sleep 100 & sleep 100`, made observable.
const TWO_SLEEPS: &str = "echo $$; cut -d' ' -f5 /proc/$$/stat; \
                          sleep 100 & echo $!; sleep 100 & echo $!; wait";

fn gone_soon(pid: i32) -> bool {
    test_support::eventually(Duration::from_secs(5), || !test_support::is_running(pid))
}

/// What [`TWO_SLEEPS`] printed before the timeout: the shell's pid, its group, the sleeps.
struct Printed {
    shell: i32,
    group: i32,
    sleeps: Vec<i32>,
}

fn printed(stdout: &[u8]) -> Printed {
    let numbers: Vec<i32> = String::from_utf8_lossy(stdout)
        .lines()
        .map(|line| line.trim().parse().unwrap())
        .collect();
    assert_eq!(numbers.len(), 4, "{numbers:?}");
    Printed {
        shell: numbers[0],
        group: numbers[1],
        sleeps: numbers[2..].to_vec(),
    }
}

/// Runs [`TWO_SLEEPS`] with a short timeout; returns what it printed.
fn timed_out_two_sleeps(command: &mut Command) -> Printed {
    let err = command
        .capture_output()
        .timeout(Duration::from_millis(300))
        .run()
        .unwrap_err();
    match err {
        Error::TimeoutExpired { stdout, .. } => printed(&stdout),
        other => panic!("{other:?}"),
    }
}

fn kill_leftovers(pids: &[i32]) {
    for &pid in pids {
        let _ = Command::new("kill").args(["-9", &pid.to_string()]).call();
    }
}

#[test]
fn a_timed_out_run_leaves_no_grandchildren_by_default() {
    let _guard = test_support::watchdog(Duration::from_secs(30), "timed-out tree");
    // Regression: both sleeps kept running unless the caller had asked for process_group(0).
    let printed = timed_out_two_sleeps(&mut Command::shell(TWO_SLEEPS));
    let survivors: Vec<i32> = printed
        .sleeps
        .iter()
        .copied()
        .filter(|&pid| !gone_soon(pid))
        .collect();
    kill_leftovers(&survivors);
    assert!(survivors.is_empty(), "still running: {survivors:?}");
    if !in_terminal_foreground() {
        // No terminal to share Ctrl-C with: the child got a group of its own.
        assert_eq!(printed.group, printed.shell);
    }
}

#[test]
fn kill_tree_on_timeout_false_kills_the_child_alone_in_our_group() {
    let _guard = test_support::watchdog(Duration::from_secs(30), "timed-out tree opt-out");
    let printed = timed_out_two_sleeps(Command::shell(TWO_SLEEPS).kill_tree_on_timeout(false));
    let our_group = rustix::process::getpgrp().as_raw_pid();
    assert_eq!(printed.group, our_group, "the child left our process group");
    assert!(!test_support::is_running(printed.shell));
    let running: Vec<i32> = printed
        .sleeps
        .iter()
        .copied()
        .filter(|&p| test_support::is_running(p))
        .collect();
    kill_leftovers(&printed.sleeps);
    assert_eq!(
        running, printed.sleeps,
        "Python's behaviour: the grandchildren live on"
    );
}

#[test]
fn a_descendant_that_left_the_group_is_killed_too() {
    let _guard = test_support::watchdog(Duration::from_secs(30), "timed-out setsid descendant");
    // `setsid` puts the sleep in a session (and group) of its own: a group kill misses it;
    // the walk over the child's descendants does not.
    let err = Command::shell("setsid sleep 100 & echo $!; wait")
        .capture_output()
        .timeout(Duration::from_millis(300))
        .run()
        .unwrap_err();
    let Error::TimeoutExpired { stdout, .. } = err else {
        panic!("{err:?}");
    };
    let pid: i32 = String::from_utf8_lossy(&stdout).trim().parse().unwrap();
    let gone = gone_soon(pid);
    kill_leftovers(&[pid]);
    assert!(gone, "the setsid sleep {pid} survived the timeout");
}

#[test]
fn a_timed_out_pipeline_stage_leaves_no_grandchildren() {
    let _guard = test_support::watchdog(Duration::from_secs(30), "timed-out pipeline tree");
    let err = Pipeline::new(Command::shell(
        "sleep 100 & echo $!; sleep 100 & echo $!; wait",
    ))
    .pipe(Command::new("cat").capture_output().clone())
    .timeout(Duration::from_millis(300))
    .run()
    .unwrap_err();
    let Error::TimeoutExpired { stdout, .. } = err else {
        panic!("{err:?}");
    };
    let sleeps: Vec<i32> = String::from_utf8_lossy(&stdout)
        .lines()
        .map(|l| l.trim().parse().unwrap())
        .collect();
    assert_eq!(sleeps.len(), 2, "{sleeps:?}");
    let survivors: Vec<i32> = sleeps.iter().copied().filter(|&p| !gone_soon(p)).collect();
    kill_leftovers(&survivors);
    assert!(survivors.is_empty(), "still running: {survivors:?}");
}

fn in_terminal_foreground() -> bool {
    let Ok(tty) = std::fs::File::open("/dev/tty") else {
        return false;
    };
    rustix::termios::tcgetpgrp(&tty).is_ok_and(|fg| fg == rustix::process::getpgrp())
}

// ---- In a terminal's foreground ----------------------------------------------------------

const TTY_VAR: &str = "PROC_SPAWN_TEST_TTY";
const SCENARIO_VAR: &str = "PROC_SPAWN_TEST_TTY_SCENARIO";
const PIDS_VAR: &str = "PROC_SPAWN_TEST_PIDS_FILE";
const CHECKED: &str = "checked in the terminal's foreground";

/// A pseudo-terminal: the master end, and the path of the slave end.
fn open_pty() -> (std::fs::File, OsString) {
    use rustix::pty::{OpenptFlags, grantpt, openpt, ptsname, unlockpt};
    let master = openpt(OpenptFlags::RDWR | OpenptFlags::NOCTTY | OpenptFlags::CLOEXEC).unwrap();
    grantpt(&master).unwrap();
    unlockpt(&master).unwrap();
    let name = ptsname(&master, Vec::new()).unwrap();
    let path = OsString::from(std::ffi::OsStr::new(
        std::str::from_utf8(name.to_bytes()).unwrap(),
    ));
    (std::fs::File::from(master), path)
}

/// Runs [`terminal_helper`] in a new session whose controlling terminal is a fresh
/// pseudo-terminal; returns it running, with the master end.
fn start_in_terminal(scenario: &str, pids_file: &Path) -> (proc_spawn::Child, std::fs::File) {
    let (master, slave) = open_pty();
    let child = Command::new(std::env::current_exe().unwrap())
        .args(["--exact", "terminal_helper", "--ignored", "--nocapture"])
        .env(TTY_VAR, &slave)
        .env(SCENARIO_VAR, scenario)
        .env(PIDS_VAR, pids_file)
        .new_session(true)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    (child, master)
}

#[test]
fn in_the_terminal_foreground_a_timed_out_run_still_leaves_nothing() {
    let _guard = test_support::watchdog(Duration::from_secs(60), "terminal timeout");
    let dir = tempfile::tempdir().unwrap();
    let (mut helper, _master) = start_in_terminal("timeout", &dir.path().join("pids"));
    let (out, err) = helper
        .communicate(None, Some(Duration::from_secs(50)))
        .unwrap();
    let out = String::from_utf8_lossy(&out);
    assert!(
        helper.status().unwrap().success() && out.contains(CHECKED),
        "{out}\n{}",
        String::from_utf8_lossy(&err)
    );
}

#[test]
fn ctrl_c_in_the_terminal_reaches_the_whole_tree_of_a_run_with_a_timeout() {
    let _guard = test_support::watchdog(Duration::from_secs(60), "terminal ctrl-c");
    let dir = tempfile::tempdir().unwrap();
    let pids_file = dir.path().join("pids");
    let (mut helper, mut master) = start_in_terminal("ctrl-c", &pids_file);
    let read_pids = || -> Vec<i32> {
        std::fs::read_to_string(&pids_file)
            .unwrap_or_default()
            .lines()
            .filter_map(|l| l.trim().parse().ok())
            .collect()
    };
    assert!(
        test_support::eventually(Duration::from_secs(20), || read_pids().len() == 3),
        "the helper's run did not start"
    );
    let pids = read_pids();
    // Ctrl-C, as typed: the terminal sends SIGINT to its foreground process group.
    master.write_all(b"\x03").unwrap();
    let status = helper.wait_timeout(Duration::from_secs(20)).unwrap();
    let survivors: Vec<i32> = pids.iter().copied().filter(|&p| !gone_soon(p)).collect();
    kill_leftovers(&survivors);
    assert_eq!(
        status.and_then(|s| s.signal()),
        Some(proc_spawn::Signal::INT),
        "{status:?}"
    );
    assert!(survivors.is_empty(), "Ctrl-C did not reach {survivors:?}");
}

/// Not a test of its own: the body the terminal tests run in a session of their own with a
/// pseudo-terminal as controlling terminal, so that this process is in its foreground.
#[test]
#[ignore = "run by the terminal tests, in a session with a pseudo-terminal"]
fn terminal_helper() {
    let Some(tty) = std::env::var_os(TTY_VAR) else {
        return;
    };
    // A session leader without a terminal acquires the first one it opens.
    let tty = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open(tty)
        .unwrap();
    let _ = rustix::process::ioctl_tiocsctty(&tty);
    assert!(
        in_terminal_foreground(),
        "the helper is not in its terminal's foreground"
    );
    let our_group = rustix::process::getpgrp().as_raw_pid();
    let pids_file = std::env::var_os(PIDS_VAR).unwrap();
    match std::env::var(SCENARIO_VAR).unwrap().as_str() {
        "timeout" => {
            let printed = timed_out_two_sleeps(&mut Command::shell(TWO_SLEEPS));
            // Kept in our group, where the terminal's Ctrl-C reaches it ...
            assert_eq!(printed.group, our_group);
            // ... and still nothing left running after the timeout.
            for pid in printed.sleeps {
                assert!(gone_soon(pid), "sleep {pid} survived the timeout");
            }
            println!("{CHECKED}");
        }
        "ctrl-c" => {
            let script = format!(
                "echo $$ >> '{0}'; sleep 100 & echo $! >> '{0}'; sleep 100 & echo $! >> '{0}'; wait",
                Path::new(&pids_file).display()
            );
            // Ctrl-C comes long before this timeout; it kills this process too.
            let _ = Command::shell(script)
                .capture_output()
                .timeout(Duration::from_secs(40))
                .run();
            println!("the run returned: Ctrl-C did not reach this process");
        }
        other => panic!("unknown scenario {other}"),
    }
}
