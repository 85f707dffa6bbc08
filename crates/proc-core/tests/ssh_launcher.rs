//! `Launcher::ssh` against a private `sshd` on a loopback port that each test starts
//! (`test_support::SshServer`). The `ssh` leg of `cargo xtask test` runs the tests named
//! `ssh_*` with `PROCKIT_SSH=1` when OpenSSH is installed; without the variable they say they
//! were skipped and pass.

#![allow(clippy::unwrap_used)] // In tests a failed unwrap is a failed test, with its location.

use std::time::Duration;

use proc_core::{Launcher, Process, ProcessError, StartMethod};
use test_support::SshServer;

fn launcher(server: &SshServer) -> Launcher {
    server
        .client_args()
        .into_iter()
        .fold(Launcher::ssh([server.host()]), |launcher, arg| {
            launcher.arg(arg)
        })
}

/// What the child sees: whether it came in over ssh, its pid, and its value.
fn over_ssh(x: u64) -> (bool, u32, u64) {
    (
        std::env::var_os("SSH_CONNECTION").is_some(),
        std::process::id(),
        x * x,
    )
}

fn panics(message: String) -> u64 {
    panic!("{message}")
}

/// Writes its pid to `path`, then sleeps far longer than the test waits.
fn pid_then_sleep(path: String) -> u64 {
    std::fs::write(&path, std::process::id().to_string()).unwrap();
    std::thread::sleep(Duration::from_secs(120));
    0
}

/// Whether the process `pid` still runs.
fn alive(pid: u32) -> bool {
    test_support::is_running(pid as i32)
}

#[test]
fn ssh_a_function_runs_through_ssh_and_its_panic_comes_back() {
    let Some(server) =
        SshServer::for_test("ssh_a_function_runs_through_ssh_and_its_panic_comes_back")
    else {
        return;
    };
    let _guard = test_support::watchdog(Duration::from_secs(120), "ssh launcher");
    let p = Process::builder()
        .start_method(StartMethod::Spawn)
        .launcher(launcher(&server))
        .spawn_fn(over_ssh, 12)
        .unwrap();
    let (came_over_ssh, pid, value) = p.join().unwrap();
    assert_eq!(value, 144);
    assert!(came_over_ssh, "the child did not run under sshd");
    assert_ne!(pid, std::process::id());

    let p = Process::builder()
        .start_method(StartMethod::Spawn)
        .launcher(launcher(&server))
        .spawn_fn(panics, "remote trouble".to_owned())
        .unwrap();
    let err = p.join().unwrap_err();
    assert!(
        matches!(err, ProcessError::Panicked { ref message, .. } if message.contains("remote trouble")),
        "{err}"
    );
    assert_eq!(test_support::zombie_children(), 0);
}

#[test]
fn ssh_killing_the_process_ends_the_remote_child() {
    let Some(server) = SshServer::for_test("ssh_killing_the_process_ends_the_remote_child") else {
        return;
    };
    let _guard = test_support::watchdog(Duration::from_secs(120), "ssh launcher kill");
    let dir = tempfile::tempdir().unwrap();
    let marker = dir.path().join("pid").to_str().unwrap().to_owned();
    let p = Process::builder()
        .start_method(StartMethod::Spawn)
        .launcher(launcher(&server))
        .spawn_fn(pid_then_sleep, marker.clone())
        .unwrap();
    assert!(test_support::eventually(Duration::from_secs(30), || {
        std::fs::read_to_string(&marker).is_ok_and(|pid| !pid.is_empty())
    }));
    let remote: u32 = std::fs::read_to_string(&marker).unwrap().parse().unwrap();
    // The local process is the ssh client; killing it drops the connection, and the remote
    // child, which gets no signal from that, ends because nobody reads its output.
    p.kill().unwrap();
    let err = p.join().unwrap_err();
    assert!(matches!(err, ProcessError::Signaled { .. }), "{err}");
    assert!(
        test_support::eventually(Duration::from_secs(10), || !alive(remote)),
        "remote child {remote} still runs after its ssh was killed"
    );
    assert_eq!(test_support::zombie_children(), 0);
}
