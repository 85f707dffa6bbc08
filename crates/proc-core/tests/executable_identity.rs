//! A child started from another executable is refused before it runs anything. Its own test
//! binary: `set_executable` is process-wide.

#![cfg(target_os = "linux")]

use std::path::PathBuf;

use proc_core::{Process, ProcessError, StartMethod};

fn square(x: u64) -> u64 {
    x * x
}

/// `set_executable` is process-wide: one test at a time.
fn one_at_a_time() -> std::sync::MutexGuard<'static, ()> {
    static LOCK: std::sync::Mutex<()> = std::sync::Mutex::new(());
    LOCK.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

#[cfg(target_os = "linux")]
#[test]
fn a_child_of_another_build_is_refused_and_a_stranger_program_is_named() {
    let _serial = one_at_a_time();
    let dir = tempfile::tempdir().expect("tempdir");
    let copy = test_support::copy_with_another_build_id(dir.path());
    for method in [StartMethod::Spawn, StartMethod::ForkServer] {
        proc_core::set_executable(Some(copy.clone()));
        let err = Process::builder()
            .name("mismatch")
            .start_method(method)
            .spawn_fn(square, 3)
            .unwrap_err();
        assert!(
            matches!(err, ProcessError::ExecutableMismatch { ref program, .. } if *program == copy),
            "{method}: {err}"
        );
        assert!(err.to_string().contains("another build"), "{err}");
    }
    // A program that is not ours at all never says hello.
    proc_core::set_executable(Some(PathBuf::from("/bin/true")));
    let err = Process::builder()
        .start_method(StartMethod::Spawn)
        .spawn_fn(square, 3)
        .unwrap_err();
    assert!(matches!(err, ProcessError::NoEntry { .. }), "{err}");
    assert!(err.to_string().contains("/bin/true"), "{err}");
    // Back to this executable: it works, and nothing was left behind.
    proc_core::set_executable(None);
    let p = Process::builder()
        .start_method(StartMethod::Spawn)
        .spawn_fn(square, 3)
        .expect("spawn");
    assert_eq!(p.join().expect("join"), 9);
    assert_eq!(test_support::zombie_children(), 0);
}

/// Through `srun` on the live test cluster (the `cluster` leg sets `PROCKIT_SLURM=1`): the job
/// step runs the other build, which says hello with its identity and is refused.
#[test]
fn cluster_a_job_step_of_another_build_is_refused() {
    if std::env::var_os("PROCKIT_SLURM").is_none_or(|v| v != "1") {
        eprintln!("cluster_a_job_step_of_another_build_is_refused: skipped: no Slurm cluster");
        return;
    }
    let _serial = one_at_a_time();
    let dir = tempfile::tempdir().expect("tempdir");
    let copy = test_support::copy_with_another_build_id(dir.path());
    proc_core::set_executable(Some(copy.clone()));
    let spawned = Process::builder()
        .start_method(StartMethod::Spawn)
        .launcher(proc_core::Launcher::slurm())
        .spawn_fn(square, 3);
    proc_core::set_executable(None);
    let err = spawned.map(|_| ()).unwrap_err();
    assert!(
        matches!(err, ProcessError::ExecutableMismatch { ref program, .. } if *program == copy),
        "{err}"
    );
    assert_eq!(test_support::zombie_children(), 0);
}
