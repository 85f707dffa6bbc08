//! Function children started through a launcher command: the bootstrap over the launched
//! program's stdin and stdout. `env` and `sh` stand in for `srun` and `ssh` (the cluster leg
//! of `cargo xtask test` runs the real ones).

#![allow(clippy::unwrap_used)] // In tests a failed unwrap is a failed test, with its location.

use std::time::Duration;

use proc_core::{Launcher, Process, ProcessError, StartMethod};

fn square(x: u64) -> u64 {
    x * x
}

fn chatty(text: String) -> usize {
    // Printed by the child: it must reach stderr, not the stream its result travels on.
    println!("the child prints this line to its stdout");
    text.len()
}

fn panics(_: ()) -> u64 {
    panic!("launched and panicked")
}

fn pid_and_parent(_: ()) -> (u32, u32) {
    (std::process::id(), std::os::unix::process::parent_id())
}

fn launched(launcher: Launcher) -> proc_core::FnProcessBuilder {
    Process::builder()
        .start_method(StartMethod::Spawn)
        .launcher(launcher)
}

#[test]
fn a_function_runs_through_a_launcher_and_its_value_comes_back() {
    let _guard = test_support::watchdog(Duration::from_secs(60), "launcher");
    let p = launched(Launcher::command(["env"]))
        .spawn_fn(square, 7)
        .unwrap();
    assert_eq!(p.join().unwrap(), 49);
    let via_shell = Launcher::command(["sh", "-c", "exec \"$@\"", "sh"]);
    let p = launched(via_shell).spawn_fn(square, 12).unwrap();
    assert_eq!(p.join().unwrap(), 144);
    // The child is the launcher's child (here `env` replaced itself by it: ours).
    let p = launched(Launcher::command(["env"]))
        .spawn_fn(pid_and_parent, ())
        .unwrap();
    let launcher_pid = p.pid().as_raw() as u32;
    let (pid, parent) = p.join().unwrap();
    assert_eq!(pid, launcher_pid);
    assert_eq!(parent, std::process::id());
}

#[test]
fn what_the_child_prints_does_not_corrupt_the_stream() {
    let _guard = test_support::watchdog(Duration::from_secs(60), "launcher stdout");
    let p = launched(Launcher::command(["env"]))
        .spawn_fn(chatty, "four".to_string())
        .unwrap();
    assert_eq!(p.join().unwrap(), 4);
}

#[test]
fn a_panic_in_a_launched_child_is_reported_like_any_other() {
    let _guard = test_support::watchdog(Duration::from_secs(60), "launcher panic");
    let p = launched(Launcher::command(["env"]))
        .spawn_fn(panics, ())
        .unwrap();
    let err = p.join().unwrap_err();
    assert!(
        matches!(&err, ProcessError::Panicked { message, .. } if message == "launched and panicked"),
        "{err}"
    );
}

#[test]
fn a_launcher_that_prints_first_or_does_not_exist_is_a_clear_error() {
    let _guard = test_support::watchdog(Duration::from_secs(60), "launcher errors");
    let noisy = Launcher::command(["sh", "-c", "echo welcome to the cluster; exec \"$@\"", "sh"]);
    let err = launched(noisy).spawn_fn(square, 1).unwrap_err();
    assert!(matches!(err, ProcessError::NoEntry { .. }), "{err}");
    assert!(err.to_string().contains("not a hello"), "{err}");

    let missing = Launcher::command(["no-such-launcher-here"]);
    let err = launched(missing).spawn_fn(square, 1).unwrap_err();
    assert!(err.to_string().contains("no-such-launcher-here"), "{err}");

    let dies = Launcher::command(["false"]);
    let err = launched(dies).spawn_fn(square, 1).unwrap_err();
    assert!(matches!(err, ProcessError::NoEntry { .. }), "{err}");

    fn with_fds(_: (), _: Vec<std::os::fd::OwnedFd>) -> u64 {
        0
    }
    let (read, _write) = fork_sys::pipe().unwrap();
    let err = launched(Launcher::command(["env"]))
        .spawn_fn_with_fds(with_fds, (), vec![read])
        .unwrap_err();
    assert!(err.to_string().contains("cannot cross a launcher"), "{err}");
}
