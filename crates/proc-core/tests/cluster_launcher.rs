//! `Launcher::slurm()` on a real Slurm: the `cluster` leg of `cargo xtask test` brings up a
//! single-node cluster and runs the tests named `cluster_*` with `PROCKIT_SLURM=1`. Without it
//! they say they were skipped and pass (a cluster is not something a unit test can start).

#![allow(clippy::unwrap_used)] // In tests a failed unwrap is a failed test, with its location.

use std::time::Duration;

use proc_core::{Launcher, Process, StartMethod};

/// Whether the cluster leg said a cluster is up; else prints why the test does nothing.
fn cluster_up(test: &str) -> bool {
    let up = std::env::var_os("PROCKIT_SLURM").is_some_and(|v| v == "1");
    if !up {
        eprintln!("{test}: skipped: no Slurm cluster (run `cargo xtask test --leg cluster`)");
    }
    up
}

/// What the job step sees: its Slurm step id, and its value.
fn in_a_step(x: u64) -> (Option<String>, u64) {
    (std::env::var("SLURM_STEP_ID").ok(), x * x)
}

#[test]
fn cluster_a_function_runs_as_a_slurm_job_step() {
    if !cluster_up("cluster_a_function_runs_as_a_slurm_job_step") {
        return;
    }
    let _guard = test_support::watchdog(Duration::from_secs(120), "srun launcher");
    let p = Process::builder()
        .start_method(StartMethod::Spawn)
        .launcher(Launcher::slurm())
        .spawn_fn(in_a_step, 9)
        .unwrap();
    let (step, value) = p.join().unwrap();
    assert_eq!(value, 81);
    assert!(step.is_some(), "the child ran outside a Slurm step");
}

#[test]
fn cluster_several_steps_at_once_each_return_their_value() {
    if !cluster_up("cluster_several_steps_at_once_each_return_their_value") {
        return;
    }
    let _guard = test_support::watchdog(Duration::from_secs(180), "srun launchers at once");
    let children: Vec<_> = (0..4u64)
        .map(|x| {
            Process::builder()
                .start_method(StartMethod::Spawn)
                .launcher(Launcher::slurm())
                .spawn_fn(in_a_step, x)
                .unwrap()
        })
        .collect();
    for (x, child) in (0..4u64).zip(children) {
        assert_eq!(child.join().unwrap().1, x * x);
    }
}
