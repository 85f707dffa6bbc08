//! `map_async`, and Python's `callback` / `error_callback` (`Callbacks`) for `apply_async_with`
//! and `map_async_with`: which outcome each callback sees, on which thread, in which order,
//! and that `get` returns only after the callback ran.

#![allow(clippy::unwrap_used)] // In tests a failed unwrap is a failed test, with its location.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::thread::ThreadId;
use std::time::Duration;

use proc_pool::{Callbacks, Pool, TaskError};

fn square(x: u64) -> u64 {
    x * x
}

fn panics(x: u64) -> u64 {
    panic!("task {x} panicked on purpose")
}

fn fails_on_three(x: u64) -> u64 {
    if x == 3 {
        panic!("three");
    }
    x
}

fn aborts(_: ()) -> u64 {
    std::process::abort()
}

fn sleep_ms(ms: u64) -> u64 {
    std::thread::sleep(Duration::from_millis(ms));
    ms
}

/// A long wait that is never a timing assertion: only a bound on a hang.
const HANG: Duration = Duration::from_secs(60);

/// The outcomes a task's callbacks saw, in the order they ran.
type Log<T> = Arc<Mutex<Vec<Result<T, TaskError>>>>;

/// Callbacks that record what they get in the returned log.
fn recording<T: Clone + Send + 'static>() -> (Log<T>, Callbacks<T>) {
    let log: Log<T> = Arc::default();
    let (values, errors) = (log.clone(), log.clone());
    let callbacks = Callbacks::new()
        .on_value(move |value: &T| values.lock().unwrap().push(Ok(value.clone())))
        .on_error(move |error: &TaskError| errors.lock().unwrap().push(Err(error.clone())));
    (log, callbacks)
}

fn taken<T>(log: &Log<T>) -> Vec<Result<T, TaskError>> {
    std::mem::take(&mut *log.lock().unwrap())
}

/// The kernel's id of the calling thread, to look for it in `/proc/self/task` later.
fn kernel_tid() -> String {
    let link = std::fs::read_link("/proc/thread-self").unwrap();
    link.file_name().unwrap().to_string_lossy().into_owned()
}

// ---------------------------------------------------------------------------------------------
// map_async

#[test]
fn map_async_returns_the_values_in_input_order() {
    let pool = Pool::new(2).unwrap();
    let pending = pool.map_async(square, 0..1000).unwrap();
    pending.wait();
    assert!(pending.ready());
    assert!(pending.wait_timeout(Duration::ZERO));
    let expected: Vec<u64> = (0..1000).map(|x| x * x).collect();
    assert_eq!(pending.get_timeout(HANG).unwrap(), expected);
    assert!(matches!(
        pending.get_timeout(HANG),
        Err(TaskError::AlreadyTaken)
    ));
    assert!(matches!(pending.get(), Err(TaskError::AlreadyTaken)));

    let chunked = pool.map_async_with(square, 0..10, Some(3), Callbacks::new());
    assert_eq!(chunked.unwrap().get().unwrap(), expected[..10]);
    let empty = pool.map_async(square, Vec::new()).unwrap();
    assert!(empty.ready());
    assert_eq!(empty.get().unwrap(), Vec::<u64>::new());
}

#[test]
fn map_async_gives_the_first_error_like_map() {
    let pool = Pool::new(2).unwrap();
    let pending = pool
        .map_async_with(fails_on_three, 0..100, Some(1), Callbacks::new())
        .unwrap();
    match pending.get() {
        Err(TaskError::Panicked { message, .. }) => assert_eq!(message, "three"),
        other => panic!("expected the panic of item 3, got {other:?}"),
    }
    // The pool goes on.
    assert_eq!(pool.map_async(square, [4]).unwrap().get().unwrap(), [16]);
}

#[test]
fn a_closed_pool_refuses_async_submissions_and_runs_no_callback() {
    let pool = Pool::new(1).unwrap();
    pool.close();
    let (log, callbacks) = recording::<u64>();
    assert!(matches!(
        pool.apply_async_with(square, 2, callbacks),
        Err(TaskError::PoolClosed)
    ));
    let (map_log, map_callbacks) = recording::<Vec<u64>>();
    assert!(matches!(
        pool.map_async_with(square, 0..10, None, map_callbacks),
        Err(TaskError::PoolClosed)
    ));
    assert!(matches!(
        pool.map_async(square, 0..10),
        Err(TaskError::PoolClosed)
    ));
    pool.join().unwrap(); // Waits for every callback there is.
    assert!(taken(&log).is_empty());
    assert!(taken(&map_log).is_empty());
}

// ---------------------------------------------------------------------------------------------
// Where, when and in which order callbacks run

#[test]
fn on_value_runs_on_the_callback_thread_before_get_returns() {
    let pool = Pool::new(2).unwrap();
    /// The callback's thread name and id, and the value it saw.
    type Seen = Option<(Option<String>, ThreadId, u64)>;
    let seen: Arc<Mutex<Seen>> = Arc::default();
    let record = seen.clone();
    let on_value = move |value: &u64| {
        let thread = std::thread::current();
        let name = thread.name().map(str::to_owned);
        *record.lock().unwrap() = Some((name, thread.id(), *value));
    };
    let pending = pool
        .apply_async_with(square, 7, Callbacks::new().on_value(on_value))
        .unwrap();
    assert_eq!(pending.get().unwrap(), 49);
    // `get` returned after the callback: its side effects are there, no waiting needed.
    let (name, id, value) = seen.lock().unwrap().clone().unwrap();
    assert_eq!(value, 49);
    assert_eq!(name.as_deref(), Some("proc-pool-callbacks"));
    assert_ne!(
        name.as_deref(),
        Some("proc-pool"),
        "the manager thread's name"
    );
    assert_ne!(id, std::thread::current().id());
}

#[test]
fn map_async_with_hands_the_whole_vec_or_the_first_error_to_its_callbacks() {
    let pool = Pool::new(2).unwrap();
    let (log, callbacks) = recording::<Vec<u64>>();
    let items: Vec<u64> = (1..=5).collect();
    let pending = pool
        .map_async_with(square, &items, Some(2), callbacks)
        .unwrap();
    assert_eq!(pending.get().unwrap(), [1, 4, 9, 16, 25]);
    assert!(matches!(&taken(&log)[..], [Ok(values)] if values == &[1, 4, 9, 16, 25]));

    let (log, callbacks) = recording::<Vec<u64>>();
    let pending = pool
        .map_async_with(fails_on_three, 0..10, Some(1), callbacks)
        .unwrap();
    assert!(matches!(pending.get(), Err(TaskError::Panicked { .. })));
    match &taken(&log)[..] {
        [Err(TaskError::Panicked { message, .. })] => assert_eq!(message, "three"),
        other => panic!("expected one Panicked, got {other:?}"),
    }

    let (log, callbacks) = recording::<Vec<u64>>();
    let pending = pool
        .map_async_with(square, Vec::new(), None, callbacks)
        .unwrap();
    assert_eq!(pending.get().unwrap(), Vec::<u64>::new());
    assert!(matches!(&taken(&log)[..], [Ok(values)] if values.is_empty()));
}

#[test]
fn callbacks_run_one_at_a_time_in_completion_order() {
    // One worker answers its tasks in order, so completion order is submission order.
    let pool = Pool::new(1).unwrap();
    let order = Arc::new(Mutex::new(Vec::new()));
    let running = Arc::new(AtomicUsize::new(0));
    let overlapped = Arc::new(AtomicUsize::new(0));
    for i in 0..200 {
        let (order, running, overlapped) = (order.clone(), running.clone(), overlapped.clone());
        let on_value = move |value: &u64| {
            if running.fetch_add(1, Ordering::SeqCst) != 0 {
                overlapped.fetch_add(1, Ordering::SeqCst);
            }
            order.lock().unwrap().push((i, *value));
            running.fetch_sub(1, Ordering::SeqCst);
        };
        pool.apply_async_with(square, i, Callbacks::new().on_value(on_value))
            .unwrap();
    }
    pool.close();
    pool.join().unwrap(); // Returns once every callback has run.
    let expected: Vec<(u64, u64)> = (0..200).map(|i| (i, i * i)).collect();
    assert_eq!(*order.lock().unwrap(), expected);
    assert_eq!(overlapped.load(Ordering::SeqCst), 0);
}

#[test]
fn a_blocking_callback_holds_back_its_task_but_not_the_workers() {
    let pool = Pool::new(2).unwrap();
    let (release, released) = mpsc::channel::<()>();
    let (entered, has_entered) = mpsc::channel::<()>();
    let on_value = move |_: &u64| {
        entered.send(()).unwrap();
        released.recv_timeout(HANG).unwrap();
    };
    let blocked = pool
        .apply_async_with(square, 5, Callbacks::new().on_value(on_value))
        .unwrap();
    has_entered.recv_timeout(HANG).unwrap();
    // The callback is running: the task's value is in, but it is not ready until the
    // callback returns. Meanwhile the workers go on.
    assert!(!blocked.ready());
    assert_eq!(pool.map(square, 0..100).unwrap().len(), 100);
    assert_eq!(pool.apply(square, 9).unwrap(), 81);
    assert!(!blocked.ready());
    release.send(()).unwrap();
    assert_eq!(blocked.get().unwrap(), 25);
}

#[test]
fn join_waits_for_every_callback() {
    let pool = Pool::new(2).unwrap();
    let count = Arc::new(AtomicUsize::new(0));
    for i in 0..20 {
        let count = count.clone();
        let on_value = move |_: &u64| {
            std::thread::sleep(Duration::from_millis(2));
            count.fetch_add(1, Ordering::SeqCst);
        };
        pool.apply_async_with(sleep_ms, i % 3, Callbacks::new().on_value(on_value))
            .unwrap();
    }
    pool.close();
    pool.join().unwrap();
    assert_eq!(count.load(Ordering::SeqCst), 20);
}

// ---------------------------------------------------------------------------------------------
// Errors reach on_error

#[test]
fn on_error_gets_a_panic_a_dead_worker_and_a_timeout() {
    let pool = Pool::builder()
        .workers(2)
        .task_timeout(Duration::from_secs(1))
        .build()
        .unwrap();

    let (log, callbacks) = recording::<u64>();
    let result = pool.apply_async_with(panics, 4, callbacks).unwrap().get();
    assert!(matches!(result, Err(TaskError::Panicked { .. })));
    match &taken(&log)[..] {
        [Err(TaskError::Panicked { message, .. })] => {
            assert_eq!(message, "task 4 panicked on purpose");
        }
        other => panic!("expected one Panicked, got {other:?}"),
    }

    let (log, callbacks) = recording::<u64>();
    let result = pool.apply_async_with(aborts, (), callbacks).unwrap().get();
    assert!(matches!(result, Err(TaskError::WorkerDied { .. })));
    assert!(matches!(
        &taken(&log)[..],
        [Err(TaskError::WorkerDied { .. })]
    ));

    let (log, callbacks) = recording::<u64>();
    let result = pool
        .apply_async_with(sleep_ms, 60_000, callbacks)
        .unwrap()
        .get();
    assert!(matches!(result, Err(TaskError::Timeout { .. })));
    assert!(matches!(&taken(&log)[..], [Err(TaskError::Timeout { .. })]));

    // And a value still goes to on_value, not on_error.
    let (log, callbacks) = recording::<u64>();
    assert_eq!(
        pool.apply_async_with(square, 3, callbacks)
            .unwrap()
            .get()
            .unwrap(),
        9
    );
    assert!(matches!(&taken(&log)[..], [Ok(9)]));
}

#[test]
fn terminate_fails_unfinished_tasks_through_on_error_before_it_returns() {
    let pool = Pool::new(1).unwrap();
    let (log, callbacks) = recording::<u64>();
    let running = pool.apply_async_with(sleep_ms, 60_000, callbacks).unwrap();
    let (map_log, map_callbacks) = recording::<Vec<u64>>();
    let queued = pool
        .map_async_with(sleep_ms, [60_000, 60_000], Some(1), map_callbacks)
        .unwrap();
    pool.terminate().unwrap();
    // terminate returned after the callbacks: no waiting needed.
    assert!(matches!(&taken(&log)[..], [Err(TaskError::PoolTerminated)]));
    assert!(matches!(
        &taken(&map_log)[..],
        [Err(TaskError::PoolTerminated)]
    ));
    assert!(running.ready() && queued.ready());
    assert!(matches!(running.get(), Err(TaskError::PoolTerminated)));
    assert!(matches!(queued.get(), Err(TaskError::PoolTerminated)));
}

// ---------------------------------------------------------------------------------------------
// Callbacks that misbehave

#[test]
fn a_panicking_callback_leaves_the_value_and_the_later_callbacks_alone() {
    let pool = Pool::new(1).unwrap();
    let panicking = Callbacks::new().on_value(|value: &u64| panic!("callback saw {value}"));
    let first = pool.apply_async_with(square, 3, panicking).unwrap();
    let (log, callbacks) = recording::<u64>();
    let second = pool.apply_async_with(square, 4, callbacks).unwrap();
    assert_eq!(first.get().unwrap(), 9);
    assert_eq!(second.get().unwrap(), 16);
    assert!(matches!(&taken(&log)[..], [Ok(16)]));
    // The thread lives on for later tasks too.
    let (log, callbacks) = recording::<u64>();
    assert_eq!(
        pool.apply_async_with(square, 5, callbacks)
            .unwrap()
            .get()
            .unwrap(),
        25
    );
    assert!(matches!(&taken(&log)[..], [Ok(25)]));
}

#[test]
fn a_callback_may_submit_tasks_and_drop_the_last_handle_of_its_pool() {
    let pool = Arc::new(Pool::new(1).unwrap());
    let (done, is_done) = mpsc::channel();
    let (go, may_go) = mpsc::channel::<()>();
    let handle = pool.clone();
    let on_value = move |value: &u64| {
        may_go.recv_timeout(HANG).unwrap();
        // Waiting for a task without callbacks is fine from a callback.
        let again = handle.apply(square, *value).unwrap();
        let tid = kernel_tid();
        drop(handle); // The last handle: the pool is dropped (terminated) on this thread.
        done.send((again, tid)).unwrap();
    };
    let pending = pool
        .apply_async_with(square, 3, Callbacks::new().on_value(on_value))
        .unwrap();
    drop(pool);
    go.send(()).unwrap();
    assert_eq!(pending.get().unwrap(), 9);
    let (again, tid) = is_done.recv_timeout(HANG).unwrap();
    assert_eq!(again, 81);
    // The callback thread ends after its last callback.
    let task = format!("/proc/self/task/{tid}");
    assert!(test_support::eventually(HANG, || !std::path::Path::new(
        &task
    )
    .exists()));
}

#[test]
fn the_callback_thread_ends_with_its_pool() {
    let pool = Pool::new(1).unwrap();
    let tid = Arc::new(Mutex::new(String::new()));
    let record = tid.clone();
    let on_value = move |_: &u64| *record.lock().unwrap() = kernel_tid();
    pool.apply_async_with(square, 2, Callbacks::new().on_value(on_value))
        .unwrap()
        .get()
        .unwrap();
    let task = format!("/proc/self/task/{}", tid.lock().unwrap());
    assert!(std::path::Path::new(&task).exists());
    drop(pool); // Joins the thread.
    assert!(test_support::eventually(HANG, || !std::path::Path::new(
        &task
    )
    .exists()));
}
