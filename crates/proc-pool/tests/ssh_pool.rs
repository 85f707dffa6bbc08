//! Pools of workers started through `ssh`, against a private `sshd` on a loopback port that
//! each test starts (`test_support::SshServer`). The `ssh` leg of `cargo xtask test` runs the
//! tests named `ssh_*` with `PROCKIT_SSH=1` when `sshd` is installed; without the variable
//! they say they were skipped and pass.

#![allow(clippy::unwrap_used)] // In tests a failed unwrap is a failed test, with its location.

use std::sync::{Mutex, MutexGuard};
use std::time::Duration;

use proc_pool::{Launcher, Pool, PoolError, TaskError};
use test_support::SshServer;

/// The tests look for processes by pid and one of them sets the executable (process-wide):
/// one at a time.
fn one_at_a_time() -> MutexGuard<'static, ()> {
    static LOCK: Mutex<()> = Mutex::new(());
    LOCK.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

fn launcher(server: &SshServer, hosts: usize) -> Launcher {
    let launcher = Launcher::ssh(vec![server.host(); hosts]);
    server
        .client_args()
        .into_iter()
        .fold(launcher, |launcher, arg| launcher.arg(arg))
}

fn square(x: u64) -> u64 {
    x * x
}

fn pid(_: ()) -> u32 {
    std::process::id()
}

/// Writes this worker's pid to `path`, then sleeps far longer than any test waits.
fn pid_then_sleep(path: String) -> u64 {
    std::fs::write(&path, std::process::id().to_string()).unwrap();
    std::thread::sleep(Duration::from_secs(120));
    0
}

/// Whether the process `pid` still runs.
fn alive(pid: u32) -> bool {
    test_support::is_running(pid as i32)
}

/// The pid `pid_then_sleep` wrote to `path`, once it has.
fn pid_written_to(path: &str) -> u32 {
    assert!(
        test_support::eventually(Duration::from_secs(30), || {
            std::fs::read_to_string(path).is_ok_and(|pid| !pid.is_empty())
        }),
        "the task never started"
    );
    std::fs::read_to_string(path).unwrap().parse().unwrap()
}

/// The parent of `pid`, from `/proc/PID/stat`.
fn parent_of(pid: u32) -> u32 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
    let rest = &stat[stat.rfind(')').unwrap() + 1..];
    rest.split_whitespace().nth(1).unwrap().parse().unwrap()
}

#[test]
fn ssh_a_pool_of_ssh_workers_maps_imaps_and_applies() {
    let Some(server) = SshServer::for_test("ssh_a_pool_of_ssh_workers_maps_imaps_and_applies")
    else {
        return;
    };
    let _serial = one_at_a_time();
    let _guard = test_support::watchdog(Duration::from_secs(120), "ssh pool map");
    let pool = Pool::builder()
        .workers(2)
        .launcher(launcher(&server, 2))
        .build()
        .unwrap();
    let expected: Vec<u64> = (0..20_000).map(|x| x * x).collect();
    assert_eq!(pool.map(square, 0..20_000).unwrap(), expected);
    let streamed: Vec<u64> = pool
        .imap(square, 0..1_000)
        .collect::<Result<_, _>>()
        .unwrap();
    assert_eq!(streamed, expected[..1_000]);
    let worker = pool.apply(pid, ()).unwrap();
    assert_ne!(worker, std::process::id());
    pool.close();
    pool.join().unwrap();
    drop(pool);
    assert!(
        test_support::eventually(Duration::from_secs(10), || !alive(worker)),
        "worker {worker} still runs after the pool was joined"
    );
    assert_eq!(test_support::zombie_children(), 0);
}

#[test]
fn ssh_a_dropped_connection_fails_only_its_task_the_worker_ends_and_is_replaced() {
    let Some(server) = SshServer::for_test(
        "ssh_a_dropped_connection_fails_only_its_task_the_worker_ends_and_is_replaced",
    ) else {
        return;
    };
    let _serial = one_at_a_time();
    let _guard = test_support::watchdog(Duration::from_secs(120), "ssh connection dropped");
    let dir = tempfile::tempdir().unwrap();
    let marker = dir.path().join("pid").to_str().unwrap().to_owned();
    let pool = Pool::builder()
        .workers(2)
        .launcher(launcher(&server, 2))
        .build()
        .unwrap();
    let victim = pool.apply_async(pid_then_sleep, marker.clone()).unwrap();
    let worker = pid_written_to(&marker);
    // The sshd process serving this worker's connection: killing it drops the connection as
    // a lost network would, and the worker gets no signal, only its pipes closed.
    let session = parent_of(worker);
    rustix::process::kill_process(
        rustix::process::Pid::from_raw(session as i32).unwrap(),
        rustix::process::Signal::KILL,
    )
    .unwrap();
    let err = victim.get().unwrap_err();
    assert!(
        matches!(
            err,
            TaskError::WorkerDied { .. } | TaskError::WorkerLost { .. }
        ),
        "{err}"
    );
    // Nobody reads the worker's results any more: it ends rather than sleep on alone.
    assert!(
        test_support::eventually(Duration::from_secs(10), || !alive(worker)),
        "worker {worker} still runs after its connection dropped"
    );
    // The rest runs, on the worker left and on the replacement.
    let values = pool.map(square, 0..1_000).unwrap();
    assert_eq!(values[999], 999 * 999);
}

#[test]
fn ssh_a_task_timeout_leaves_no_process_on_the_host() {
    let Some(server) = SshServer::for_test("ssh_a_task_timeout_leaves_no_process_on_the_host")
    else {
        return;
    };
    let _serial = one_at_a_time();
    let _guard = test_support::watchdog(Duration::from_secs(120), "ssh task timeout");
    let dir = tempfile::tempdir().unwrap();
    let marker = dir.path().join("pid").to_str().unwrap().to_owned();
    let pool = Pool::builder()
        .workers(1)
        .task_timeout(Duration::from_secs(2))
        .launcher(launcher(&server, 1))
        .build()
        .unwrap();
    let err = pool.apply(pid_then_sleep, marker.clone()).unwrap_err();
    assert!(matches!(err, TaskError::Timeout { .. }), "{err}");
    let worker = pid_written_to(&marker);
    assert!(
        test_support::eventually(Duration::from_secs(10), || !alive(worker)),
        "worker {worker} still runs after its task timed out"
    );
    assert_eq!(pool.apply(square, 7).unwrap(), 49);
    // Terminating kills the connection; the worker busy in a long task ends with it.
    std::fs::remove_file(&marker).unwrap();
    let _busy = pool.apply_async(pid_then_sleep, marker.clone()).unwrap();
    let busy = pid_written_to(&marker);
    pool.terminate().unwrap();
    pool.join().unwrap();
    assert!(
        test_support::eventually(Duration::from_secs(10), || !alive(busy)),
        "worker {busy} still runs after terminate"
    );
    assert_eq!(test_support::zombie_children(), 0);
}

#[test]
fn ssh_a_worker_of_another_build_is_refused_with_its_path() {
    let Some(server) =
        SshServer::for_test("ssh_a_worker_of_another_build_is_refused_with_its_path")
    else {
        return;
    };
    let _serial = one_at_a_time();
    let _guard = test_support::watchdog(Duration::from_secs(120), "ssh other build");
    let dir = tempfile::tempdir().unwrap();
    let copy = test_support::copy_with_another_build_id(dir.path());
    proc_core::set_executable(Some(copy.clone()));
    let built = Pool::builder()
        .workers(1)
        .launcher(launcher(&server, 1))
        .build();
    proc_core::set_executable(None);
    let err = built.map(|_| ()).unwrap_err();
    let text = err.to_string();
    assert!(
        text.contains("another build") && text.contains(&copy.display().to_string()),
        "{text}"
    );
    assert!(matches!(err, PoolError::Spawn(_)), "{err:?}");
    assert_eq!(test_support::zombie_children(), 0);
}
