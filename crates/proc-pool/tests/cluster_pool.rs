//! A pool of `srun` workers on a real Slurm: the `cluster` leg of `cargo xtask test` brings
//! up a single-node cluster and runs the tests named `cluster_*` with `PROCKIT_SLURM=1`.
//! Without it they say they were skipped and pass.

#![allow(clippy::unwrap_used)] // In tests a failed unwrap is a failed test, with its location.

use std::time::Duration;

use proc_pool::{Launcher, Pool, TaskError};

fn cluster_up(test: &str) -> bool {
    let up = std::env::var_os("PROCKIT_SLURM").is_some_and(|v| v == "1");
    if !up {
        eprintln!("{test}: skipped: no Slurm cluster (run `cargo xtask test --leg cluster`)");
    }
    up
}

/// Slurm jobs of ours still known to the controller (pending or running).
fn our_jobs() -> Vec<String> {
    let out = std::process::Command::new("squeue")
        .args(["-h", "-o", "%i %j"])
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(str::to_owned)
        .collect()
}

fn slurm_pool(workers: usize) -> proc_pool::PoolBuilder {
    Pool::builder().workers(workers).launcher(Launcher::slurm())
}

fn square(x: u64) -> u64 {
    x * x
}

/// Writes the job id of the step running it to `path`, then sleeps: long enough to be
/// cancelled.
fn job_id_then_sleep(path: String) -> u64 {
    let job = std::env::var("SLURM_JOB_ID").unwrap_or_default();
    std::fs::write(&path, job).unwrap();
    std::thread::sleep(Duration::from_secs(60));
    0
}

fn sleep_ms(ms: u64) -> u64 {
    std::thread::sleep(Duration::from_millis(ms));
    ms
}

#[test]
fn cluster_a_pool_of_four_srun_workers_maps_100000_items() {
    if !cluster_up("cluster_a_pool_of_four_srun_workers_maps_100000_items") {
        return;
    }
    let _guard = test_support::watchdog(Duration::from_secs(180), "srun pool map");
    // Four job steps on the test cluster's two cores: its partition shares each core among
    // up to four jobs.
    let pool = slurm_pool(4).build().unwrap();
    let expected: Vec<u64> = (0..100_000).map(|x| x * x).collect();
    assert_eq!(pool.map(square, 0..100_000).unwrap(), expected);
    pool.close();
    pool.join().unwrap();
    drop(pool);
    assert!(
        test_support::eventually(Duration::from_secs(30), || our_jobs().is_empty()),
        "jobs left in squeue: {:?}",
        our_jobs()
    );
}

#[test]
fn cluster_a_cancelled_worker_fails_only_its_task_and_is_replaced() {
    if !cluster_up("cluster_a_cancelled_worker_fails_only_its_task_and_is_replaced") {
        return;
    }
    let _guard = test_support::watchdog(Duration::from_secs(240), "srun pool scancel");
    let dir = tempfile::tempdir().unwrap();
    let marker = dir.path().join("job").to_str().unwrap().to_string();
    let pool = slurm_pool(2).build().unwrap();
    let victim = pool.apply_async(job_id_then_sleep, marker.clone()).unwrap();
    assert!(test_support::eventually(Duration::from_secs(60), || {
        std::fs::read_to_string(&marker).is_ok_and(|job| !job.is_empty())
    }));
    let job = std::fs::read_to_string(&marker).unwrap();
    let status = std::process::Command::new("scancel")
        .arg(&job)
        .status()
        .unwrap();
    assert!(status.success());
    let err = victim.get().unwrap_err();
    assert!(
        matches!(
            err,
            TaskError::WorkerDied { .. } | TaskError::WorkerLost { .. }
        ),
        "{err}"
    );
    // The others run, on the worker left and on the replacement.
    let values = pool.map(square, 0..1_000).unwrap();
    assert_eq!(values[999], 999 * 999);
}

#[test]
fn cluster_a_task_timeout_ends_the_job_step() {
    if !cluster_up("cluster_a_task_timeout_ends_the_job_step") {
        return;
    }
    let _guard = test_support::watchdog(Duration::from_secs(240), "srun pool timeout");
    let pool = slurm_pool(1)
        .task_timeout(Duration::from_secs(2))
        .build()
        .unwrap();
    let err = pool.apply(sleep_ms, 60_000).unwrap_err();
    assert!(matches!(err, TaskError::Timeout { .. }), "{err}");
    assert_eq!(pool.apply(sleep_ms, 1).unwrap(), 1);
    drop(pool);
    assert!(
        test_support::eventually(Duration::from_secs(30), || our_jobs().is_empty()),
        "jobs left in squeue: {:?}",
        our_jobs()
    );
}
