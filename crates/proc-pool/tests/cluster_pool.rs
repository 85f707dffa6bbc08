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

/// Jobs named `name` still known to the controller (pending, running or completing): each
/// test names its jobs, because the cluster leg runs the tests at once.
fn our_jobs(name: &str) -> Vec<String> {
    let out = std::process::Command::new("squeue")
        .args(["-h", "-o", "%i %j %T", "--name", name])
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(str::to_owned)
        .collect()
}

/// A pool of `workers` srun workers whose jobs are named `name`.
fn slurm_pool(workers: usize, name: &str) -> proc_pool::PoolBuilder {
    Pool::builder()
        .workers(workers)
        .launcher(Launcher::slurm().arg(format!("--job-name={name}")))
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
    const JOB: &str = "prockit-map";
    if !cluster_up("cluster_a_pool_of_four_srun_workers_maps_100000_items") {
        return;
    }
    let _guard = test_support::watchdog(Duration::from_secs(180), "srun pool map");
    // Four job steps on the test cluster's two cores: its partition shares each core among
    // up to four jobs.
    let pool = slurm_pool(4, JOB).build().unwrap();
    let expected: Vec<u64> = (0..100_000).map(|x| x * x).collect();
    assert_eq!(pool.map(square, 0..100_000).unwrap(), expected);
    pool.close();
    pool.join().unwrap();
    drop(pool);
    assert!(
        test_support::eventually(Duration::from_secs(30), || our_jobs(JOB).is_empty()),
        "jobs left in squeue: {:?}",
        our_jobs(JOB)
    );
}

#[test]
fn cluster_a_cancelled_worker_fails_only_its_task_and_is_replaced() {
    const JOB: &str = "prockit-scancel";
    if !cluster_up("cluster_a_cancelled_worker_fails_only_its_task_and_is_replaced") {
        return;
    }
    let _guard = test_support::watchdog(Duration::from_secs(240), "srun pool scancel");
    let dir = tempfile::tempdir().unwrap();
    let marker = dir.path().join("job").to_str().unwrap().to_string();
    let pool = slurm_pool(2, JOB).build().unwrap();
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
    const JOB: &str = "prockit-timeout";
    if !cluster_up("cluster_a_task_timeout_ends_the_job_step") {
        return;
    }
    let _guard = test_support::watchdog(Duration::from_secs(240), "srun pool timeout");
    let pool = slurm_pool(1, JOB)
        .task_timeout(Duration::from_secs(2))
        .build()
        .unwrap();
    let err = pool.apply(sleep_ms, 60_000).unwrap_err();
    assert!(matches!(err, TaskError::Timeout { .. }), "{err}");
    assert_eq!(pool.apply(sleep_ms, 1).unwrap(), 1);
    drop(pool);
    assert!(
        test_support::eventually(Duration::from_secs(30), || our_jobs(JOB).is_empty()),
        "jobs left in squeue: {:?}",
        our_jobs(JOB)
    );
}

/// Writes this worker's pid to a file named after it in `dir`, then sleeps far longer than
/// the test waits.
fn pid_file_then_sleep(dir: String) -> u64 {
    let pid = std::process::id();
    std::fs::write(format!("{dir}/{pid}"), "").unwrap();
    std::thread::sleep(Duration::from_secs(120));
    0
}

/// The pids `pid_file_then_sleep` wrote into `dir` once there are `n`.
fn worker_pids(dir: &std::path::Path, n: usize) -> Vec<u32> {
    let read = || -> Vec<u32> {
        std::fs::read_dir(dir)
            .unwrap()
            .filter_map(|entry| entry.ok()?.file_name().to_str()?.parse().ok())
            .collect()
    };
    assert!(
        test_support::eventually(Duration::from_secs(60), || read().len() == n),
        "{} of {n} tasks started",
        read().len()
    );
    read()
}

/// Whether the process `pid` still runs.
fn alive(pid: u32) -> bool {
    test_support::is_running(pid as i32)
}

#[test]
fn cluster_terminating_or_dropping_a_busy_pool_leaves_no_job_step_and_no_worker() {
    const JOB: &str = "prockit-terminate";
    if !cluster_up("cluster_terminating_or_dropping_a_busy_pool_leaves_no_job_step_and_no_worker") {
        return;
    }
    let _guard = test_support::watchdog(Duration::from_secs(240), "srun pool terminate");
    for terminate in [true, false] {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().to_str().unwrap().to_owned();
        let pool = slurm_pool(2, JOB).build().unwrap();
        let busy: Vec<_> = (0..2)
            .map(|_| pool.apply_async(pid_file_then_sleep, path.clone()).unwrap())
            .collect();
        let pids = worker_pids(dir.path(), 2);
        if terminate {
            pool.terminate().unwrap();
            pool.join().unwrap();
        }
        drop(busy);
        drop(pool);
        assert!(
            test_support::eventually(Duration::from_secs(30), || our_jobs(JOB).is_empty()),
            "terminate {terminate}: jobs left in squeue: {:?}",
            our_jobs(JOB)
        );
        for pid in pids {
            assert!(
                test_support::eventually(Duration::from_secs(10), || !alive(pid)),
                "terminate {terminate}: worker {pid} still runs"
            );
        }
    }
}

/// The job and step ids the task runs in.
fn job_and_step(_: u64) -> (String, String) {
    let var = |name| std::env::var(name).unwrap_or_default();
    (var("SLURM_JOB_ID"), var("SLURM_STEP_ID"))
}

#[test]
fn cluster_workers_inside_an_allocation_are_job_steps_of_it() {
    const JOB: &str = "prockit-allocation";
    if !cluster_up("cluster_workers_inside_an_allocation_are_job_steps_of_it") {
        return;
    }
    let _guard = test_support::watchdog(Duration::from_secs(180), "srun pool in allocation");
    // What `salloc -n 2` gives a shell; `--no-shell` keeps it without one.
    let granted = std::process::Command::new("salloc")
        .args(["--no-shell", "--ntasks=2", &format!("--job-name={JOB}")])
        .output()
        .unwrap();
    let said = String::from_utf8_lossy(&granted.stderr);
    let job: String = said
        .split_once("Granted job allocation ")
        .unwrap_or_else(|| panic!("salloc said: {said}"))
        .1
        .chars()
        .take_while(char::is_ascii_digit)
        .collect();
    let pool = Pool::builder()
        .workers(2)
        .chunksize(1)
        .launcher(Launcher::slurm().arg(format!("--jobid={job}")))
        .build()
        .unwrap();
    let ran = pool.map(job_and_step, 0..200).unwrap();
    pool.close();
    pool.join().unwrap();
    drop(pool);
    let _ = std::process::Command::new("scancel").arg(&job).status();
    assert!(ran.iter().all(|(in_job, _)| *in_job == job), "{ran:?}");
    let steps: std::collections::BTreeSet<&String> = ran.iter().map(|(_, step)| step).collect();
    assert!(
        !steps.is_empty() && steps.len() <= 2 && steps.iter().all(|s| !s.is_empty()),
        "steps {steps:?}"
    );
    assert!(
        test_support::eventually(Duration::from_secs(30), || our_jobs(JOB).is_empty()),
        "jobs left in squeue: {:?}",
        our_jobs(JOB)
    );
}
