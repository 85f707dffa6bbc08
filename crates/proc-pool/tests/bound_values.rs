//! Bound values (`Pool::bind`, `Pool::map_with`): a value every task of a call takes first,
//! sent to each worker once and decoded there once.

#![allow(clippy::unwrap_used)] // In tests a failed unwrap is a failed test, with its location.

use std::io::Write;
use std::time::Duration;

use proc_pool::{Pool, StartMethod};
use serde::{Deserialize, Deserializer, Serialize};

/// A bound value whose every decoding appends the decoding process's pid to `log`.
#[derive(Serialize)]
struct Scale {
    log: String,
    factor: u64,
}

impl<'de> Deserialize<'de> for Scale {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Scale, D::Error> {
        #[derive(Deserialize)]
        struct Raw {
            log: String,
            factor: u64,
        }
        let raw = Raw::deserialize(deserializer)?;
        let mut file = std::fs::OpenOptions::new()
            .append(true)
            .create(true)
            .open(&raw.log)
            .unwrap();
        file.write_all(format!("{}\n", std::process::id()).as_bytes())
            .unwrap();
        Ok(Scale {
            log: raw.log,
            factor: raw.factor,
        })
    }
}

fn scaled(scale: &Scale, x: u64) -> u64 {
    x * scale.factor
}

fn decodings(log: &std::path::Path) -> Vec<u32> {
    std::fs::read_to_string(log)
        .unwrap_or_default()
        .lines()
        .map(|line| line.parse().unwrap())
        .collect()
}

fn scale(dir: &tempfile::TempDir, name: &str, factor: u64) -> Scale {
    Scale {
        log: dir.path().join(name).to_str().unwrap().to_string(),
        factor,
    }
}

#[test]
fn a_bound_value_is_decoded_once_per_worker_however_many_tasks_use_it() {
    let dir = tempfile::tempdir().unwrap();
    let pool = Pool::builder().workers(2).chunksize(1).build().unwrap();
    let value = scale(&dir, "scale.log", 3);
    let bound = pool.bind(&value).unwrap();
    let expected: Vec<u64> = (0..500).map(|x| x * 3).collect();
    assert_eq!(bound.map(scaled, 0..500).unwrap(), expected);
    let streamed: Vec<u64> = bound.imap(scaled, 0..500).map(Result::unwrap).collect();
    assert_eq!(streamed, expected);
    let mut unordered: Vec<u64> = bound
        .imap_unordered(scaled, 0..100)
        .map(Result::unwrap)
        .collect();
    unordered.sort_unstable();
    assert_eq!(unordered, expected[..100]);
    for x in 0..50 {
        assert_eq!(bound.apply(scaled, x).unwrap(), x * 3);
    }
    let pending: Vec<_> = (0..50)
        .map(|x| bound.apply_async(scaled, x).unwrap())
        .collect();
    for (x, result) in pending.into_iter().enumerate() {
        assert_eq!(result.get().unwrap(), x as u64 * 3);
    }
    // Decoded only in workers, at most once in each.
    let pids = decodings(std::path::Path::new(&value.log));
    let workers = pool.worker_pids();
    assert!(
        !pids.is_empty() && pids.len() <= 2,
        "decoded {} times",
        pids.len()
    );
    for pid in &pids {
        assert!(
            workers.iter().any(|w| w.as_raw() as u32 == *pid),
            "decoded in {pid}, not a worker of {workers:?}"
        );
    }
    let mut unique = pids.clone();
    unique.dedup();
    assert_eq!(
        unique.len(),
        pids.len(),
        "a worker decoded it twice: {pids:?}"
    );
}

#[test]
fn map_with_binds_for_one_call_and_a_replaced_worker_gets_the_value_again() {
    let _guard = test_support::watchdog(Duration::from_secs(60), "bound value after a kill");
    let dir = tempfile::tempdir().unwrap();
    let pool = Pool::new(1).unwrap();
    let value = scale(&dir, "once.log", 7);
    assert_eq!(
        pool.map_with(scaled, &value, [1, 2, 3]).unwrap(),
        [7, 14, 21]
    );
    let bound = pool.bind(&value).unwrap();
    assert_eq!(bound.apply(scaled, 1).unwrap(), 7);
    let before = decodings(std::path::Path::new(&value.log)).len();
    // Two binds of the same value are two values: decoded once each in the one worker.
    assert_eq!(before, 2);
    let victim = pool.worker_pids()[0];
    rustix::process::kill_process(
        rustix::process::Pid::from_raw(victim.as_raw()).unwrap(),
        rustix::process::Signal::KILL,
    )
    .unwrap();
    assert!(test_support::eventually(Duration::from_secs(10), || {
        pool.worker_pids().first().is_some_and(|pid| *pid != victim)
    }));
    assert_eq!(bound.apply(scaled, 2).unwrap(), 14);
    assert_eq!(
        decodings(std::path::Path::new(&value.log)).len(),
        before + 1
    );
}

#[test]
fn more_bound_values_than_a_worker_keeps_are_sent_again_when_needed() {
    let dir = tempfile::tempdir().unwrap();
    let pool = Pool::new(1).unwrap();
    let values: Vec<Scale> = (1..=12)
        .map(|f| scale(&dir, &format!("{f}.log"), f))
        .collect();
    let bound: Vec<_> = values.iter().map(|v| pool.bind(v).unwrap()).collect();
    for round in 0..3 {
        for (factor, value) in (1..).zip(&bound) {
            assert_eq!(
                value.apply(scaled, 10 + round).unwrap(),
                (10 + round) * factor
            );
        }
    }
    // Twelve values cycled through a worker that keeps eight: each decoded once per round.
    for value in &values {
        let count = decodings(std::path::Path::new(&value.log)).len();
        assert_eq!(count, 3, "{}", value.log);
    }
}

#[test]
fn bound_values_reach_fork_server_workers() {
    let dir = tempfile::tempdir().unwrap();
    let pool = Pool::builder()
        .workers(2)
        .start_method(StartMethod::ForkServer)
        .build()
        .unwrap();
    let value = scale(&dir, "fs.log", 5);
    assert_eq!(
        pool.map_with(scaled, &value, 0..10).unwrap(),
        (0..10).map(|x| x * 5).collect::<Vec<_>>()
    );
}
