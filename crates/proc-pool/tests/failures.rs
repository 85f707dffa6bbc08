//! Errors are per task: panics, dead workers, timeouts, oversize values, a closed or
//! terminated pool. Each fails its own task with an error that says what happened, and the
//! pool goes on.

#![allow(clippy::unwrap_used)] // In tests a failed unwrap is a failed test, with its location.

use std::collections::HashSet;
use std::sync::atomic::{AtomicI32, Ordering};
use std::time::{Duration, Instant};

use proc_pool::{ExitStatus, Pool, PoolError, Signal, TaskError};

fn pid(_: ()) -> i32 {
    fork_sys::getpid().as_raw()
}

/// Kills its own worker on three inputs, in three ways.
fn sometimes_fatal(x: u64) -> u64 {
    let me = fork_sys::getpid();
    match x {
        13 => drop(fork_sys::kill(me, Signal::KILL)),
        42 => std::process::abort(),
        // A real fault, not kill(SIGSEGV): the Rust runtime's stack-overflow handler
        // swallows the first SIGSEGV that does not come from a faulting instruction.
        // SAFETY: none, deliberately: a store to the never-mapped first page faults, which
        // is the point of the test.
        77 => unsafe { std::ptr::dangling_mut::<u64>().write_volatile(1) },
        _ => {}
    }
    x + 1
}

/// Whether `pid` still exists (reaped workers do not; other tests of this binary may run
/// pools of their own under `cargo test`, so counting all children would not do).
fn is_alive(pid: proc_pool::Pid) -> bool {
    cfg!(target_os = "linux") && std::path::Path::new(&format!("/proc/{pid}")).exists()
}

fn sleep_ms(ms: u64) -> u64 {
    std::thread::sleep(Duration::from_millis(ms));
    ms
}

#[test]
fn three_tasks_that_kill_their_worker_fail_alone_and_the_pool_goes_on() {
    let _watchdog = test_support::watchdog(Duration::from_secs(60), "the crash test");
    let pool = Pool::new(2).unwrap();
    let pending: Vec<_> = (0..100u64)
        .map(|i| pool.apply_async(sometimes_fatal, i).unwrap())
        .collect();
    let mut deaths = Vec::new();
    for (i, result) in pending.into_iter().enumerate() {
        match result.get() {
            Ok(value) => assert_eq!(value, i as u64 + 1),
            Err(TaskError::WorkerDied { status, pid, .. }) => {
                assert!(pid.as_raw() > 0);
                deaths.push((i, status));
            }
            Err(other) => panic!("task {i}: unexpected {other}"),
        }
    }
    let died: Vec<usize> = deaths.iter().map(|d| d.0).collect();
    assert_eq!(died, [13, 42, 77]);
    assert!(matches!(
        deaths[0].1,
        ExitStatus::Signaled {
            signal: Signal::KILL,
            ..
        }
    ));
    assert!(matches!(
        deaths[1].1,
        ExitStatus::Signaled {
            signal: Signal::ABRT,
            ..
        }
    ));
    assert!(matches!(
        deaths[2].1,
        ExitStatus::Signaled {
            signal: Signal::SEGV,
            ..
        }
    ));

    // The same pool runs another hundred tasks, with its full worker count.
    let values = pool.map_chunked(sometimes_fatal, 100..200, 1).unwrap();
    assert_eq!(values, (101..201).collect::<Vec<_>>());
    assert!(test_support::eventually(Duration::from_secs(10), || pool
        .worker_pids()
        .len()
        == 2));
}

#[test]
fn a_worker_death_fails_the_whole_map_with_a_clear_error() {
    let pool = Pool::new(2).unwrap();
    let err = pool.map_chunked(sometimes_fatal, 0..20, 1).unwrap_err();
    assert!(matches!(err, TaskError::WorkerDied { .. }), "{err}");
    let text = err.to_string();
    assert!(
        text.contains("died while running task") && text.contains("SIGKILL"),
        "{text}"
    );
    // imap gives every other item its value.
    let outcomes: Vec<_> = pool.imap(sometimes_fatal, 0..100).collect();
    let failed: Vec<usize> = outcomes
        .iter()
        .enumerate()
        .filter(|(_, o)| o.is_err())
        .map(|(i, _)| i)
        .collect();
    assert_eq!(failed, [13, 42, 77]);
}

#[test]
fn a_task_past_its_timeout_fails_and_later_tasks_run_on_a_fresh_worker() {
    let pool = Pool::builder()
        .workers(1)
        .task_timeout(Duration::from_millis(300))
        .build()
        .unwrap();
    let before = pool.apply(pid, ()).unwrap();
    let started = Instant::now();
    let err = pool.apply(sleep_ms, 20_000).unwrap_err();
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "the timeout did not fire"
    );
    match &err {
        TaskError::Timeout { after, pid, .. } => {
            assert_eq!(*after, Duration::from_millis(300));
            assert_eq!(pid.as_raw(), before);
        }
        other => panic!("expected a timeout, got {other}"),
    }
    assert!(err.to_string().contains("timeout"), "{err}");
    let after = pool.apply(pid, ()).unwrap();
    assert_ne!(
        before, after,
        "the timed-out worker should have been replaced"
    );
    // Tasks within the limit are untouched by it.
    assert_eq!(pool.apply(sleep_ms, 50).unwrap(), 50);
}

#[test]
fn a_panicking_task_reports_its_message_and_the_worker_lives_on() {
    let pool = Pool::new(1).unwrap();
    let before = pool.apply(pid, ()).unwrap();
    let err = pool
        .apply(|x: u32| -> u32 { panic!("bad input {x}") }, 7)
        .unwrap_err();
    match &err {
        TaskError::Panicked { message, pid, .. } => {
            assert_eq!(message, "bad input 7");
            assert_eq!(pid.as_raw(), before);
        }
        other => panic!("expected a panic, got {other}"),
    }
    assert!(err.to_string().contains("panicked in worker"), "{err}");
    assert_eq!(pool.apply(pid, ()).unwrap(), before);
    // Inside a map, the panicking item fails and the others are values.
    let outcomes: Vec<_> = pool
        .imap(
            |x: u32| if x % 10 == 3 { panic!("no {x}") } else { x },
            0..30,
        )
        .chunksize(7)
        .collect();
    for (i, outcome) in outcomes.iter().enumerate() {
        match outcome {
            Ok(v) => assert_eq!(*v as usize, i),
            Err(TaskError::Panicked { message, .. }) => assert_eq!(*message, format!("no {i}")),
            Err(other) => panic!("{other}"),
        }
    }
    assert_eq!(outcomes.iter().filter(|o| o.is_err()).count(), 3);
}

static INITIALIZED_IN: AtomicI32 = AtomicI32::new(0);

fn remember_pid() {
    INITIALIZED_IN.store(fork_sys::getpid().as_raw(), Ordering::Relaxed);
}

fn pid_and_initializer(_: u32) -> (i32, i32) {
    (
        fork_sys::getpid().as_raw(),
        INITIALIZED_IN.load(Ordering::Relaxed),
    )
}

#[test]
fn max_tasks_per_child_replaces_workers_and_each_runs_the_initializer() {
    let pool = Pool::builder()
        .workers(1)
        .max_tasks_per_child(2)
        .initializer(remember_pid)
        .build()
        .unwrap();
    let seen = pool.map_chunked(pid_and_initializer, 0..10, 1).unwrap();
    let pids: HashSet<i32> = seen.iter().map(|s| s.0).collect();
    assert_eq!(pids.len(), 5, "{seen:?}");
    for (pid, initialized_in) in &seen {
        assert_eq!(pid, initialized_in, "the initializer did not run in {pid}");
    }
}

#[test]
fn an_initializer_that_panics_fails_tasks_instead_of_respawning_for_ever() {
    let pool = Pool::builder()
        .workers(2)
        .initializer(|| panic!("no database"))
        .build()
        .unwrap();
    let err = pool.apply(pid, ()).unwrap_err();
    match &err {
        TaskError::InitializerFailed { message, .. } => assert_eq!(message, "no database"),
        other => panic!("expected InitializerFailed, got {other}"),
    }
    assert!(matches!(
        pool.apply_async(pid, ()),
        Err(TaskError::InitializerFailed { .. })
    ));
}

#[test]
fn a_closed_pool_refuses_tasks_and_join_waits_for_the_queued_ones() {
    let pool = Pool::new(2).unwrap();
    assert!(matches!(pool.join(), Err(PoolError::NotClosed)));
    let queued: Vec<_> = (0..20)
        .map(|_| pool.apply_async(sleep_ms, 20).unwrap())
        .collect();
    pool.close();
    assert!(matches!(
        pool.apply_async(sleep_ms, 1),
        Err(TaskError::PoolClosed)
    ));
    assert!(matches!(
        pool.map(sleep_ms, [1]),
        Err(TaskError::PoolClosed)
    ));
    let workers = pool.worker_pids();
    pool.join().unwrap();
    assert!(pool.worker_pids().is_empty());
    assert!(
        workers.iter().all(|&pid| !is_alive(pid)),
        "workers left: {workers:?}"
    );
    for result in queued {
        assert!(result.ready());
        assert_eq!(result.get().unwrap(), 20);
    }
}

#[test]
fn terminate_during_long_tasks_returns_promptly_and_fails_them() {
    let pool = Pool::new(2).unwrap();
    let long: Vec<_> = (0..6)
        .map(|_| pool.apply_async(sleep_ms, 30_000).unwrap())
        .collect();
    std::thread::sleep(Duration::from_millis(100));
    let workers = pool.worker_pids();
    let started = Instant::now();
    pool.terminate().unwrap();
    assert!(
        workers.iter().all(|&pid| !is_alive(pid)),
        "workers left: {workers:?}"
    );
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "terminate took {:?}",
        started.elapsed()
    );
    for result in long {
        assert!(matches!(result.get(), Err(TaskError::PoolTerminated)));
    }
    assert!(matches!(
        pool.apply_async(sleep_ms, 1),
        Err(TaskError::PoolTerminated)
    ));
}

#[test]
fn a_value_over_the_frame_limit_fails_its_task_and_the_pool_stays_usable() {
    let pool = Pool::builder()
        .workers(1)
        .max_frame_len(64 * 1024)
        .build()
        .unwrap();
    let err = pool.apply(|n: usize| vec![1u8; n], 1 << 20).unwrap_err();
    match &err {
        TaskError::ResultTooLarge { len, limit, .. } => {
            assert!(*len > 1 << 20);
            assert_eq!(*limit, 64 * 1024);
        }
        other => panic!("expected ResultTooLarge, got {other}"),
    }
    assert!(err.to_string().contains("65536-byte frame limit"), "{err}");
    assert_eq!(
        pool.apply(|n: usize| vec![1u8; n], 1000).unwrap().len(),
        1000
    );
    // Items that fit alone but not together are split over several frames.
    let parts = pool
        .map_chunked(|n: usize| vec![2u8; n], vec![40_000; 6], 6)
        .unwrap();
    assert!(parts.iter().all(|p| p.len() == 40_000));
    // Arguments over the limit are refused before anything is sent.
    let err = pool
        .apply(|v: Vec<u8>| v.len(), vec![0u8; 100_000])
        .unwrap_err();
    assert!(matches!(err, TaskError::Codec { task: None, .. }), "{err}");
    assert_eq!(pool.apply(|v: Vec<u8>| v.len(), vec![0u8; 10]).unwrap(), 10);
}

#[test]
fn builder_options_out_of_range_are_refused() {
    assert!(matches!(
        Pool::new(0),
        Err(PoolError::InvalidOption {
            option: "workers",
            ..
        })
    ));
    assert!(matches!(
        Pool::builder().max_tasks_per_child(0).build(),
        Err(PoolError::InvalidOption { .. })
    ));
}

#[test]
fn an_initializer_that_aborts_fails_the_tasks_after_a_few_workers() {
    let _watchdog = test_support::watchdog(Duration::from_secs(60), "the aborting initializer");
    let pool = Pool::builder()
        .workers(2)
        .initializer(|| std::process::abort())
        .build()
        .unwrap();
    let err = pool.apply(pid, ()).unwrap_err();
    match &err {
        TaskError::InitializerFailed { message, .. } => {
            assert!(message.contains("SIGABRT"), "{message}");
        }
        other => panic!("expected InitializerFailed, got {other}"),
    }
    // A broken pool winds down: join returns without close.
    pool.join().unwrap();
    assert!(pool.worker_pids().is_empty());
}

#[test]
fn join_returns_for_a_pool_whose_initializer_panicked() {
    let _watchdog = test_support::watchdog(Duration::from_secs(30), "join on a broken pool");
    let pool = Pool::builder()
        .workers(1)
        .initializer(|| panic!("no config"))
        .build()
        .unwrap();
    assert!(pool.apply(pid, ()).is_err());
    pool.join().unwrap();
}

#[test]
fn a_huge_task_timeout_is_no_timeout() {
    let pool = Pool::builder()
        .workers(1)
        .task_timeout(Duration::MAX)
        .build()
        .unwrap();
    assert_eq!(pool.apply(sleep_ms, 20).unwrap(), 20);
    assert_eq!(pool.apply(sleep_ms, 1).unwrap(), 1);
    pool.terminate().unwrap();
}

#[test]
fn terminate_from_another_thread_waits_for_the_workers_while_join_runs() {
    let pool = std::sync::Arc::new(Pool::new(1).unwrap());
    let pending = pool.apply_async(sleep_ms, 30_000).unwrap();
    std::thread::sleep(Duration::from_millis(50));
    let workers = pool.worker_pids();
    pool.close();
    let joiner = {
        let pool = pool.clone();
        std::thread::spawn(move || pool.join())
    };
    std::thread::sleep(Duration::from_millis(50));
    let started = Instant::now();
    pool.terminate().unwrap();
    assert!(started.elapsed() < Duration::from_secs(10));
    // When terminate returns, the workers are gone, whichever thread joined the manager.
    assert!(
        workers.iter().all(|&w| !is_alive(w)),
        "workers left: {workers:?}"
    );
    joiner.join().unwrap().unwrap();
    assert!(matches!(pending.get(), Err(TaskError::PoolTerminated)));
}

/// Starts `sleep 30` in the worker's process group and returns its pid.
#[cfg(target_os = "linux")]
fn start_a_sleeper(_: ()) -> i32 {
    let child = std::process::Command::new("sleep")
        .arg("30")
        .spawn()
        .unwrap();
    let pid = child.id() as i32;
    std::mem::forget(child);
    pid
}

#[cfg(target_os = "linux")]
#[test]
fn processes_started_by_tasks_go_with_their_worker() {
    let pool = Pool::builder()
        .workers(1)
        .task_timeout(Duration::from_millis(300))
        .build()
        .unwrap();
    // The worker is killed by a timeout: what its task started dies with it.
    let first = pool.apply(start_a_sleeper, ()).unwrap();
    assert!(pool.apply(sleep_ms, 10_000).is_err());
    assert!(
        test_support::eventually(Duration::from_secs(10), || !is_running(first)),
        "sleep {first} outlived its worker"
    );
    // Terminating the pool takes the rest.
    let second = pool.apply(start_a_sleeper, ()).unwrap();
    pool.terminate().unwrap();
    assert!(
        test_support::eventually(Duration::from_secs(10), || !is_running(second)),
        "sleep {second} outlived the pool"
    );
}

/// Whether `pid` exists and is not a zombie.
#[cfg(target_os = "linux")]
fn is_running(pid: i32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .ok()
        .and_then(|stat| {
            stat.rfind(')')
                .and_then(|i| stat[i + 1..].split_whitespace().next().map(str::to_owned))
        })
        .is_some_and(|state| state != "Z")
}

#[test]
fn revoked_tasks_do_not_use_up_a_workers_task_budget() {
    let _watchdog = test_support::watchdog(Duration::from_secs(60), "revocation with a budget");
    let pool = Pool::builder()
        .workers(1)
        .max_tasks_per_child(3)
        .build()
        .unwrap();
    // Tiny tasks first, so the pool hands out several at a time.
    assert_eq!(
        pool.map_chunked(sleep_ms, vec![0; 30], 1).unwrap().len(),
        30
    );
    // The worker gets the slow task and the fast ones behind it; those are revoked while the
    // slow one runs. The worker has then run one task of its three and must get them back.
    let slow = pool.apply_async(sleep_ms, 300).unwrap();
    let fast: Vec<_> = (0..5)
        .map(|_| pool.apply_async(sleep_ms, 0).unwrap())
        .collect();
    assert_eq!(slow.get().unwrap(), 300);
    for result in fast {
        assert_eq!(result.get().unwrap(), 0);
    }
}

/// Starts `sleep 30` in the worker's group, notes its pid in the file `notes`, then ends the
/// worker with `exit(3)`.
#[cfg(target_os = "linux")]
fn start_a_sleeper_and_exit(notes: String) -> i32 {
    use std::io::Write as _;
    let pid = start_a_sleeper(());
    let mut file = std::fs::OpenOptions::new()
        .append(true)
        .create(true)
        .open(notes)
        .unwrap();
    writeln!(file, "{pid}").unwrap();
    std::process::exit(3);
}

#[cfg(target_os = "linux")]
#[test]
fn processes_started_by_tasks_go_with_a_worker_that_exits_or_is_closed() {
    let notes = std::env::temp_dir().join(format!("proc-pool-sleepers-{}", std::process::id()));
    let notes_path = notes.to_string_lossy().into_owned();
    let pool = Pool::new(1).unwrap();
    // A worker that exits by itself: its group is killed before it is reaped, whichever of
    // its pipe's end-of-file and its exit the pool sees first.
    for _ in 0..20 {
        let err = pool
            .apply(start_a_sleeper_and_exit, notes_path.clone())
            .unwrap_err();
        assert!(matches!(err, TaskError::WorkerDied { .. }), "{err}");
    }
    let sleepers: Vec<i32> = std::fs::read_to_string(&notes)
        .unwrap()
        .lines()
        .map(|line| line.parse().unwrap())
        .collect();
    let _ = std::fs::remove_file(&notes);
    assert_eq!(sleepers.len(), 20);
    for sleeper in sleepers {
        assert!(
            test_support::eventually(Duration::from_secs(10), || !is_running(sleeper)),
            "sleep {sleeper} outlived its worker"
        );
    }
    // A pool that is closed and joined takes what its workers' tasks left behind, too.
    let sleeper = pool.apply(start_a_sleeper, ()).unwrap();
    pool.close();
    pool.join().unwrap();
    assert!(
        test_support::eventually(Duration::from_secs(10), || !is_running(sleeper)),
        "sleep {sleeper} outlived close and join"
    );
}

fn panics_on_31337(x: u64) -> u64 {
    if x == 31_337 {
        panic!("no {x}");
    }
    x
}

/// One item in the middle of a chunk of tens of thousands panics: `map` fails with exactly
/// that item's panic, and `imap` gives it as the item's error and every other value in
/// order, before and after it in the same chunk.
#[test]
fn a_panic_in_the_middle_of_a_long_chunk_fails_exactly_its_item() {
    let pool = Pool::new(2).unwrap();
    match pool.map(panics_on_31337, 0..100_000u64) {
        Err(TaskError::Panicked { message, .. }) => assert_eq!(message, "no 31337"),
        other => panic!("expected the panic of item 31337, got {other:?}"),
    }
    let outcomes: Vec<_> = pool
        .imap(panics_on_31337, 0..60_000u64)
        .chunksize(25_000)
        .collect();
    assert_eq!(outcomes.len(), 60_000);
    for (i, outcome) in outcomes.iter().enumerate() {
        match outcome {
            Ok(value) => assert_eq!(*value, i as u64),
            Err(TaskError::Panicked { message, .. }) if i == 31_337 => {
                assert_eq!(message, "no 31337");
            }
            Err(other) => panic!("item {i}: {other}"),
        }
    }
    // The pool goes on, every value in order.
    let values = pool.map(panics_on_31337, 0..30_000u64).unwrap();
    assert!(values.iter().copied().eq(0..30_000u64));
}

/// A result whose `Serialize` panics on 13 and fails on 17 (a number otherwise, which the
/// codec writes without bincode).
#[derive(Debug, PartialEq, serde::Deserialize)]
struct Picky(u64);

impl serde::Serialize for Picky {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        match self.0 {
            13 => panic!("cannot write 13"),
            17 => Err(serde::ser::Error::custom("will not write 17")),
            n => serializer.serialize_newtype_struct("Picky", &n),
        }
    }
}

fn picky(x: u64) -> Picky {
    Picky(x)
}

/// A value that does not encode fails its own item with the reason, whether its `Serialize`
/// panics or returns an error, in the middle of a chunk of values that do; the others arrive.
#[test]
fn a_result_that_does_not_encode_fails_only_its_item() {
    let pool = Pool::new(1).unwrap();
    let outcomes: Vec<_> = pool.imap(picky, 0..40u64).chunksize(40).collect();
    for (i, outcome) in outcomes.iter().enumerate() {
        match (i, outcome) {
            (13, Err(err @ TaskError::Codec { .. })) => {
                assert!(
                    err.to_string()
                        .contains("Serialize panicked: cannot write 13"),
                    "{err}"
                );
            }
            (17, Err(err @ TaskError::Codec { .. })) => {
                assert!(err.to_string().contains("will not write 17"), "{err}");
            }
            (i, Ok(value)) if i != 13 && i != 17 => assert_eq!(*value, Picky(i as u64)),
            (i, other) => panic!("item {i}: {other:?}"),
        }
    }
    assert_eq!(outcomes.len(), 40);
    match pool.map(picky, 0..40u64) {
        Err(err @ TaskError::Codec { .. }) => {
            assert!(err.to_string().contains("cannot write 13"), "{err}");
        }
        other => panic!("expected item 13's failure, got {other:?}"),
    }
}
