//! `procdemo pool` prints the `multiprocessing.Pool` seed's lines: every task starts and
//! finishes once, on at most four worker pids, none of them the parent's.

use std::collections::{HashMap, HashSet};

mod common;

#[test]
fn pool_demo_runs_five_tasks_on_at_most_four_workers() {
    let stdout = common::run_procdemo_with_env(&["pool"], &[("PROCDEMO_POOL_MAX_SLEEP", "0.3")]);
    let lines: Vec<&str> = stdout.lines().collect();
    assert_eq!(lines.len(), 2 + 2 * 5 + 1, "{stdout}");
    let parent: u32 = lines[0]
        .strip_prefix("Parent process ")
        .and_then(|rest| rest.strip_suffix('.'))
        .and_then(|pid| pid.parse().ok())
        .unwrap_or_else(|| panic!("first line: {stdout}"));
    assert_eq!(lines[lines.len() - 1], "All subprocesses done.");
    assert!(
        lines.contains(&"Waiting for all subprocesses done..."),
        "{stdout}"
    );

    let mut started: HashMap<u32, u32> = HashMap::new();
    let mut finished = HashSet::new();
    for line in &lines[1..lines.len() - 1] {
        if let Some(rest) = line.strip_prefix("Run task ") {
            let (task, pid) = rest
                .strip_suffix(")...")
                .and_then(|r| r.split_once(" ("))
                .unwrap_or_else(|| panic!("bad line {line:?}"));
            let (task, pid) = (task.parse().unwrap(), pid.parse().unwrap());
            assert!(started.insert(task, pid).is_none(), "task {task} ran twice");
            assert_ne!(pid, parent, "task {task} ran in the parent");
        } else if let Some(rest) = line.strip_prefix("Task ") {
            let (task, secs) = rest
                .strip_suffix(" seconds.")
                .and_then(|r| r.split_once(" runs "))
                .unwrap_or_else(|| panic!("bad line {line:?}"));
            let task: u32 = task.parse().unwrap();
            assert!(
                started.contains_key(&task),
                "task {task} finished before it started"
            );
            assert_eq!(
                secs.split_once('.').map(|(_, d)| d.len()),
                Some(2),
                "{line}"
            );
            let secs: f64 = secs.parse().unwrap();
            assert!((0.0..1.0).contains(&secs), "{line}");
            assert!(finished.insert(task), "task {task} finished twice");
        } else {
            assert_eq!(*line, "Waiting for all subprocesses done...");
        }
    }
    assert_eq!(finished, (0..5).collect());
    let pids: HashSet<u32> = started.values().copied().collect();
    assert!((1..=4).contains(&pids.len()), "{pids:?}");
}
