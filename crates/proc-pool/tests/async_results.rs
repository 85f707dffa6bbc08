//! Awaiting pool results: `AsyncResult` and `MapResult` as futures, `Imap` as a stream, on
//! tokio's single-threaded runtime and on `test_support::block_on`, std alone; no thread
//! per waiter; wakers woken once per completion, never a spin; a future dropped early
//! disturbs nothing.
//!
//! Every test holds `SERIAL`: one counts the process's threads, and libtest starts or retires
//! a test thread only when a test finishes, which none can while another holds the lock.

#![allow(clippy::unwrap_used)] // In tests a failed unwrap is a failed test, with its location.

use std::future::{Future, poll_fn};
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::mpsc;
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{Context, Poll, Wake, Waker};
use std::time::Duration;

use futures_core::Stream;
use proc_pool::{Callbacks, Pool, TaskError};

fn square(x: u64) -> u64 {
    x * x
}

fn sleep_ms(ms: u64) -> u64 {
    std::thread::sleep(Duration::from_millis(ms));
    ms
}

fn square_slowly(x: u64) -> u64 {
    std::thread::sleep(Duration::from_micros(200));
    x * x
}

fn fails_on_three(x: u64) -> u64 {
    if x == 3 {
        panic!("three");
    }
    x
}

/// Asserts that `$value` matches `$pattern`, printing it if not (`TaskError` has no `==`).
macro_rules! assert_matches {
    ($value:expr, $pattern:pat $(if $guard:expr)?) => {{
        let value = $value;
        assert!(matches!(value, $pattern $(if $guard)?), "{value:?}");
    }};
}

/// A long wait that is never a timing assertion: only a bound on a hang.
const HANG: Duration = Duration::from_secs(60);

static SERIAL: Mutex<()> = Mutex::new(());

fn serial() -> MutexGuard<'static, ()> {
    SERIAL
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// Runs `future` on a tokio runtime that has no thread but the caller's.
fn on_tokio<F: Future>(future: F) -> F::Output {
    tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()
        .unwrap()
        .block_on(future)
}

/// Every item of `stream`, through `poll_next` alone (no `futures` crate).
async fn collect<S: Stream + Unpin>(mut stream: S) -> Vec<S::Item> {
    let mut items = Vec::new();
    while let Some(item) = poll_fn(|cx| Pin::new(&mut stream).poll_next(cx)).await {
        items.push(item);
    }
    items
}

/// A waker that counts its wakes and reports each on a channel.
struct CountingWaker {
    wakes: AtomicUsize,
    woken: Mutex<mpsc::Sender<()>>,
}

impl CountingWaker {
    fn new() -> (Arc<CountingWaker>, mpsc::Receiver<()>) {
        let (tx, rx) = mpsc::channel();
        let waker = Arc::new(CountingWaker {
            wakes: AtomicUsize::new(0),
            woken: Mutex::new(tx),
        });
        (waker, rx)
    }

    fn wakes(&self) -> usize {
        self.wakes.load(Ordering::SeqCst)
    }
}

impl Wake for CountingWaker {
    fn wake(self: Arc<Self>) {
        self.wake_by_ref();
    }

    fn wake_by_ref(self: &Arc<Self>) {
        self.wakes.fetch_add(1, Ordering::SeqCst);
        let _ = self.woken.lock().unwrap().send(());
    }
}

fn poll_once<F: Future + Unpin>(future: &mut F, waker: &Arc<CountingWaker>) -> Poll<F::Output> {
    let waker = Waker::from(waker.clone());
    Pin::new(future).poll(&mut Context::from_waker(&waker))
}

// ---------------------------------------------------------------------------------------------
// On tokio

#[test]
fn ten_thousand_awaited_apply_asyncs_start_no_thread() {
    let _serial = serial();
    let _watchdog = test_support::watchdog(HANG, "10,000 awaited apply_asyncs");
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()
        .unwrap();
    let pool = Pool::new(4).unwrap();
    assert_eq!(pool.apply(square, 3).unwrap(), 9); // the pool's threads are all up
    let before = fork_sys::thread_count().unwrap();

    let (during, still_waiting, values) = runtime.block_on(async {
        let polled = Arc::new(AtomicUsize::new(0));
        let tasks: Vec<_> = (0..10_000)
            .map(|x| {
                let pending = pool.apply_async(square_slowly, x).unwrap();
                let polled = polled.clone();
                tokio::spawn(async move {
                    polled.fetch_add(1, Ordering::SeqCst);
                    pending.await
                })
            })
            .collect();
        // Count once every future has been polled, and most wait.
        while polled.load(Ordering::SeqCst) < tasks.len() {
            tokio::task::yield_now().await;
        }
        let during = fork_sys::thread_count().unwrap();
        let still_waiting = tasks.iter().filter(|task| !task.is_finished()).count();
        let mut values = Vec::with_capacity(tasks.len());
        for task in tasks {
            values.push(task.await.unwrap().unwrap());
        }
        (during, still_waiting, values)
    });

    let expected: Vec<u64> = (0..10_000).map(|x| x * x).collect();
    assert_eq!(values, expected);
    assert!(
        still_waiting > 0,
        "the count was meant to be taken while tasks waited"
    );
    // Under `cargo test` the harness may start the next test's thread meanwhile (it waits
    // for its turn): one thread more is that. A thread per waiter would be thousands.
    assert!(
        during <= before + 1,
        "{during} threads while {still_waiting} futures waited, {before} before"
    );
    assert!(
        fork_sys::thread_count().unwrap() <= before + 1,
        "threads after"
    );
}

#[test]
fn awaited_map_async_gives_the_values_in_input_order() {
    let _serial = serial();
    let pool = Pool::new(3).unwrap();
    let values = on_tokio(async { pool.map_async(square, 0..1000).unwrap().await });
    let expected: Vec<u64> = (0..1000).map(|x| x * x).collect();
    assert_eq!(values.unwrap(), expected);

    // Its first error, as `get` gives it.
    let err = on_tokio(pool.map_async(fails_on_three, 0..10).unwrap()).unwrap_err();
    assert!(
        matches!(err, TaskError::Panicked { ref message, .. } if message == "three"),
        "{err:?}"
    );
}

#[test]
fn imap_and_imap_unordered_are_streams() {
    let _serial = serial();
    let pool = Pool::new(3).unwrap();
    let (ordered, unordered, chunked) = on_tokio(async {
        tokio::join!(
            collect(pool.imap(square, 0..500)),
            collect(pool.imap_unordered(square, 0..500)),
            collect(pool.imap(square, 0..500).chunksize(7)),
        )
    });
    let expected: Vec<u64> = (0..500).map(|x| x * x).collect();
    let ordered: Vec<u64> = ordered.into_iter().map(Result::unwrap).collect();
    assert_eq!(ordered, expected);
    let chunked: Vec<u64> = chunked.into_iter().map(Result::unwrap).collect();
    assert_eq!(chunked, expected);
    let mut unordered: Vec<u64> = unordered.into_iter().map(Result::unwrap).collect();
    unordered.sort_unstable();
    assert_eq!(unordered, expected);

    // A failed item comes out in its place; the others are values.
    let outcomes = on_tokio(collect(pool.imap(fails_on_three, 0..6)));
    assert_eq!(outcomes.len(), 6);
    for (x, outcome) in (0..6).zip(outcomes) {
        match outcome {
            Ok(value) => assert_eq!(value, x),
            Err(TaskError::Panicked { message, .. }) => assert_eq!((x, &*message), (3, "three")),
            Err(other) => panic!("item {x}: {other:?}"),
        }
    }
}

#[test]
fn a_panicking_task_arrives_as_an_error_through_await() {
    let _serial = serial();
    let pool = Pool::new(2).unwrap();
    let (err, value) = on_tokio(async {
        let failing = pool.apply_async(fails_on_three, 3).unwrap();
        let fine = pool.apply_async(fails_on_three, 4).unwrap();
        (failing.await.unwrap_err(), fine.await.unwrap())
    });
    assert!(
        matches!(err, TaskError::Panicked { ref message, .. } if message == "three"),
        "{err:?}"
    );
    assert_eq!(value, 4);
}

#[test]
fn awaited_results_with_callbacks_arrive_after_the_callback_ran() {
    let _serial = serial();
    let pool = Pool::new(2).unwrap();
    let ran = Arc::new(AtomicBool::new(false));
    let flag = ran.clone();
    // The callback is slow: a future completed before it would see `ran` false.
    let on_value = move |_: &u64| {
        std::thread::sleep(Duration::from_millis(100));
        flag.store(true, Ordering::SeqCst);
    };
    let pending = pool
        .apply_async_with(square, 5, Callbacks::new().on_value(on_value))
        .unwrap();
    assert_eq!(on_tokio(pending).unwrap(), 25);
    assert!(
        ran.load(Ordering::SeqCst),
        "awaited before the callback ran"
    );

    let ran = Arc::new(AtomicBool::new(false));
    let flag = ran.clone();
    let on_error = move |_: &TaskError| {
        std::thread::sleep(Duration::from_millis(100));
        flag.store(true, Ordering::SeqCst);
    };
    let pending = pool
        .map_async_with(
            fails_on_three,
            0..5,
            Some(1),
            Callbacks::new().on_error(on_error),
        )
        .unwrap();
    assert!(on_tokio(pending).is_err());
    assert!(
        ran.load(Ordering::SeqCst),
        "awaited before the callback ran"
    );
}

#[test]
fn dropping_unawaited_and_half_polled_futures_leaves_the_pool_working() {
    let _serial = serial();
    let pool = Pool::new(2).unwrap();
    let noop = Waker::noop();
    let mut cx = Context::from_waker(noop);

    drop(pool.apply_async(sleep_ms, 50).unwrap()); // never polled
    let mut half = pool.apply_async(sleep_ms, 200).unwrap();
    assert!(Pin::new(&mut half).poll(&mut cx).is_pending());
    drop(half);
    let mut map = pool.map_async(sleep_ms, [100, 100, 100]).unwrap();
    assert!(Pin::new(&mut map).poll(&mut cx).is_pending());
    drop(map);
    let mut stream = pool.imap(sleep_ms, [1, 1, 1, 1, 1, 300, 300, 300]);
    let first = on_tokio(poll_fn(|cx| Pin::new(&mut stream).poll_next(cx)));
    assert_eq!(first.unwrap().unwrap(), 1);
    drop(stream);

    // Later calls work, blocking and awaited.
    assert_eq!(pool.apply(square, 7).unwrap(), 49);
    assert_eq!(on_tokio(pool.apply_async(square, 8).unwrap()).unwrap(), 64);
    assert_eq!(pool.map(square, 0..4).unwrap(), [0, 1, 4, 9]);
    pool.close();
    pool.join().unwrap();
    drop(pool);
    assert!(
        test_support::eventually(HANG, || test_support::zombie_children() == 0),
        "{} zombie children",
        test_support::zombie_children()
    );
}

// ---------------------------------------------------------------------------------------------
// Wakers

#[test]
fn a_pending_result_is_woken_once_then_ready() {
    let _serial = serial();
    let pool = Pool::new(1).unwrap();
    let (waker, woken) = CountingWaker::new();
    let mut pending = pool.apply_async(sleep_ms, 300).unwrap();
    assert!(poll_once(&mut pending, &waker).is_pending());
    assert!(poll_once(&mut pending, &waker).is_pending()); // same task: kept, not doubled
    assert_eq!(waker.wakes(), 0);

    woken.recv_timeout(HANG).unwrap();
    assert_matches!(poll_once(&mut pending, &waker), Poll::Ready(Ok(300)));
    assert_eq!(waker.wakes(), 1);
    // Polled again after `Ready`: the value was taken, as `get_timeout` says.
    assert_matches!(
        poll_once(&mut pending, &waker),
        Poll::Ready(Err(TaskError::AlreadyTaken))
    );
}

#[test]
fn the_waker_of_the_last_poll_is_the_one_woken() {
    let _serial = serial();
    let pool = Pool::new(1).unwrap();
    let (first, _) = CountingWaker::new();
    let (second, woken) = CountingWaker::new();
    let mut pending = pool.apply_async(sleep_ms, 200).unwrap();
    assert!(poll_once(&mut pending, &first).is_pending());
    assert!(poll_once(&mut pending, &second).is_pending()); // moved to another task
    woken.recv_timeout(HANG).unwrap();
    assert_eq!((first.wakes(), second.wakes()), (0, 1));
    assert_matches!(poll_once(&mut pending, &second), Poll::Ready(Ok(200)));
}

#[test]
fn a_dropped_future_is_not_woken() {
    let _serial = serial();
    // One worker: the second task runs once the first has finished.
    let pool = Pool::new(1).unwrap();
    let (waker, _) = CountingWaker::new();
    let mut pending = pool.apply_async(sleep_ms, 100).unwrap();
    assert!(poll_once(&mut pending, &waker).is_pending());
    drop(pending);
    assert_eq!(pool.apply(square, 2).unwrap(), 4);
    assert_eq!(waker.wakes(), 0);
}

#[test]
fn terminating_the_pool_wakes_a_pending_future_with_pool_terminated() {
    let _serial = serial();
    let pool = Pool::new(1).unwrap();
    let (waker, woken) = CountingWaker::new();
    let mut pending = pool.apply_async(sleep_ms, 60_000).unwrap();
    assert!(poll_once(&mut pending, &waker).is_pending());
    pool.terminate().unwrap();
    woken.recv_timeout(HANG).unwrap();
    assert_matches!(
        poll_once(&mut pending, &waker),
        Poll::Ready(Err(TaskError::PoolTerminated))
    );
    assert_eq!(waker.wakes(), 1);
}

#[test]
fn a_pending_map_result_and_stream_are_woken_then_ready() {
    let _serial = serial();
    let pool = Pool::new(2).unwrap();
    let (waker, woken) = CountingWaker::new();
    let mut map = pool.map_async(sleep_ms, [200, 200]).unwrap();
    assert!(poll_once(&mut map, &waker).is_pending());
    woken.recv_timeout(HANG).unwrap();
    assert_matches!(poll_once(&mut map, &waker), Poll::Ready(Ok(ref values)) if values == &[200, 200]);
    assert_eq!(waker.wakes(), 1);

    let (waker, woken) = CountingWaker::new();
    let mut stream = pool.imap_unordered(sleep_ms, [200]);
    let mut poll_next = || {
        let waker = Waker::from(waker.clone());
        Pin::new(&mut stream).poll_next(&mut Context::from_waker(&waker))
    };
    assert!(poll_next().is_pending());
    woken.recv_timeout(HANG).unwrap();
    assert_matches!(poll_next(), Poll::Ready(Some(Ok(200))));
    assert_matches!(poll_next(), Poll::Ready(None));
    assert_matches!(poll_next(), Poll::Ready(None));
    assert_eq!(waker.wakes(), 1);
}

// ---------------------------------------------------------------------------------------------
// Without tokio

#[test]
fn results_are_awaited_on_any_executor() {
    let _serial = serial();
    let pool = Pool::new(2).unwrap();
    let ((value, values, streamed), polls) = test_support::block_on(async {
        let value = pool.apply_async(sleep_ms, 200).unwrap().await;
        let values = pool.map_async(square, 0..100).unwrap().await;
        let streamed = collect(pool.imap(square, 0..100)).await;
        (value, values, streamed)
    });
    assert_eq!(value.unwrap(), 200);
    let expected: Vec<u64> = (0..100).map(|x| x * x).collect();
    assert_eq!(values.unwrap(), expected);
    let streamed: Vec<u64> = streamed.into_iter().map(Result::unwrap).collect();
    assert_eq!(streamed, expected);
    // Woken by completions, not spinning: a poll per wake, a few hundred at most here
    // (a spin over 200 ms would be millions).
    assert!(polls < 1000, "{polls} polls");
}
