//! `Queue`, `JoinableQueue` and `SimpleQueue` across forked processes: every item once, in
//! each producer's order; bounds, timeouts without spinning, close, large items, attach
//! errors. Deaths of producers and consumers are in `queue_deaths.rs`.

mod common;

use std::collections::HashSet;
use std::time::Duration;

use common::child;
use proc_core::Process;
use proc_sync::{JoinableQueue, Lock, Queue, SimpleQueue, SyncError};
use test_support::this_thread_cpu_time as cpu_time;

const PRODUCERS: u32 = 4;
const CONSUMERS: u32 = 4;
const PER_PRODUCER: u32 = 100_000;

#[test]
fn four_producers_and_four_consumers_pass_every_item_once_in_each_producers_order() {
    let _watchdog = test_support::watchdog(Duration::from_secs(300), "4x4 queue test hung");
    // `None` tells a consumer to stop.
    let queue = Queue::<Option<(u32, u32)>>::bounded(10_000).unwrap();
    let consumers: Vec<Process<Vec<(u32, u32)>>> = (0..CONSUMERS)
        .map(|_| {
            let queue = queue.clone();
            child(move || {
                let mut got = Vec::new();
                while let Some(item) = queue.get().expect("get") {
                    got.push(item);
                }
                got
            })
            .unwrap()
        })
        .collect();
    let producers: Vec<Process<()>> = (0..PRODUCERS)
        .map(|producer| {
            let queue = queue.clone();
            child(move || {
                for seq in 0..PER_PRODUCER {
                    queue.put(Some((producer, seq))).expect("put");
                }
            })
            .unwrap()
        })
        .collect();
    for producer in producers {
        producer.join().unwrap();
    }
    for _ in 0..CONSUMERS {
        queue.put(None).unwrap();
    }
    let mut seen = HashSet::new();
    let mut busy_consumers = 0;
    for consumer in consumers {
        let got = consumer.join().unwrap();
        busy_consumers += usize::from(!got.is_empty());
        // What one consumer saw of one producer is in that producer's order.
        let mut last = vec![None; PRODUCERS as usize];
        for (producer, seq) in got {
            let previous = &mut last[producer as usize];
            assert!(
                previous.is_none_or(|p| p < seq),
                "producer {producer}: {seq} after {previous:?}"
            );
            *previous = Some(seq);
            assert!(
                seen.insert((producer, seq)),
                "({producer}, {seq}) arrived twice"
            );
        }
    }
    assert_eq!(
        seen.len(),
        (PRODUCERS * PER_PRODUCER) as usize,
        "items lost"
    );
    assert!(busy_consumers > 1, "only one consumer ever got an item");
    assert_eq!(queue.qsize(), 0);
    assert!(queue.empty());
}

#[test]
fn one_producer_order_is_kept_across_wraps_of_a_small_ring() {
    let queue = Queue::<(u64, String)>::builder()
        .capacity(4096)
        .build()
        .unwrap();
    assert_eq!(queue.capacity(), 4096);
    let producer = {
        let queue = queue.clone();
        child(move || {
            for i in 0..20_000u64 {
                queue.put((i, "x".repeat((i % 700) as usize))).expect("put");
            }
        })
        .unwrap()
    };
    for i in 0..20_000u64 {
        let (n, text) = queue.get().unwrap();
        assert_eq!(n, i);
        assert_eq!(text.len(), (i % 700) as usize);
    }
    producer.join().unwrap();
}

#[test]
fn a_timed_out_get_sleeps_rather_than_spins() {
    let queue = Queue::<u64>::new().unwrap();
    let cpu = cpu_time();
    let err = queue.get_timeout(Duration::from_millis(600)).unwrap_err();
    let used = cpu_time() - cpu;
    assert!(
        matches!(
            err,
            SyncError::Timeout {
                what: "a queue item",
                ..
            }
        ),
        "{err}"
    );
    assert!(err.to_string().contains("600ms"), "{err}");
    assert!(
        used < Duration::from_millis(60),
        "a 600 ms get used {used:?} of CPU"
    );
    assert!(matches!(queue.try_get(), Err(SyncError::Empty)));
}

#[test]
fn a_get_waiting_in_another_process_gets_the_item_put_later() {
    let queue = Queue::<String>::new().unwrap();
    let consumer = {
        let queue = queue.clone();
        child(move || {
            queue
                .get_timeout(Duration::from_secs(60))
                .map_err(|e| e.to_string())
        })
        .unwrap()
    };
    std::thread::sleep(Duration::from_millis(100));
    queue.put("late".to_string()).unwrap();
    assert_eq!(consumer.join().unwrap().unwrap(), "late");
}

#[test]
fn a_bounded_queue_blocks_put_until_a_get_and_times_out_when_full() {
    let queue = Queue::<u32>::bounded(2).unwrap();
    assert_eq!(queue.maxsize(), 2);
    queue.put(1).unwrap();
    queue.put(2).unwrap();
    assert!(queue.full());
    assert_eq!(queue.qsize(), 2);
    assert!(matches!(
        queue.try_put(3),
        Err(SyncError::Full { maxsize: 2 })
    ));
    let cpu = cpu_time();
    let err = queue
        .put_timeout(3, Duration::from_millis(300))
        .unwrap_err();
    assert!(
        matches!(
            err,
            SyncError::Timeout {
                what: "room in the queue",
                ..
            }
        ),
        "{err}"
    );
    assert!(
        cpu_time() - cpu < Duration::from_millis(60),
        "a timed-out put spun"
    );
    // A consumer in another process makes room while this put waits.
    let consumer = {
        let queue = queue.clone();
        child(move || {
            std::thread::sleep(Duration::from_millis(100));
            queue.get().map_err(|e| e.to_string())
        })
        .unwrap()
    };
    queue.put(3).unwrap();
    assert_eq!(consumer.join().unwrap().unwrap(), 1);
    assert_eq!(queue.qsize(), 2);
    assert_eq!(queue.get().unwrap(), 2);
    assert_eq!(queue.get().unwrap(), 3);
    assert!(!queue.full());
    assert!(queue.empty());
}

#[test]
fn a_ring_full_of_bytes_blocks_an_unbounded_put() {
    let queue = Queue::<Vec<u8>>::builder().capacity(4096).build().unwrap();
    assert_eq!(queue.maxsize(), 0);
    // Four items of 900 bytes fill a 4 KiB ring, whatever the count.
    for _ in 0..4 {
        queue.put(vec![1; 900]).unwrap();
    }
    assert!(matches!(
        queue.try_put(vec![2; 900]),
        Err(SyncError::Full { maxsize: 0 })
    ));
    let err = queue
        .put_timeout(vec![2; 900], Duration::from_millis(50))
        .unwrap_err();
    assert!(matches!(err, SyncError::Timeout { .. }), "{err}");
    assert_eq!(queue.get().unwrap(), vec![1; 900]);
    queue.try_put(vec![2; 900]).unwrap();
    assert_eq!(queue.qsize(), 4);
}

#[test]
fn items_larger_than_the_ring_arrive_intact() {
    let queue = Queue::<Vec<u8>>::new().unwrap();
    let texts = Queue::<(String, Vec<u64>)>::builder()
        .capacity(64 << 10)
        .build()
        .unwrap();
    let pattern = |len: usize, seed: u8| -> Vec<u8> {
        (0..len)
            .map(|i| (i as u8).wrapping_mul(31).wrapping_add(seed))
            .collect()
    };
    let sizes = [8 << 20, 3, 1 << 20, (3 << 20) + 5, 0, 300_000];
    let producer = {
        let (queue, texts) = (queue.clone(), texts.clone());
        child(move || {
            for (i, &len) in sizes.iter().enumerate() {
                queue.put(pattern(len, i as u8)).expect("put bytes");
            }
            let numbers: Vec<u64> = (0..200_000).collect();
            texts.put(("é".repeat(500_000), numbers)).expect("put text");
        })
        .unwrap()
    };
    for (i, &len) in sizes.iter().enumerate() {
        let got = queue.get().unwrap();
        assert_eq!(got.len(), len, "item {i}");
        assert!(
            got == pattern(len, i as u8),
            "item {i} of {len} bytes differs"
        );
    }
    let (text, numbers) = texts.get().unwrap();
    assert_eq!(text, "é".repeat(500_000));
    assert_eq!(numbers, (0..200_000).collect::<Vec<u64>>());
    producer.join().unwrap();
    assert!(queue.empty() && texts.empty());
}

#[test]
fn a_closed_queue_refuses_put_and_get_in_this_process_only() {
    let queue = Queue::<u32>::new().unwrap();
    let handle = queue.handle().unwrap();
    let child = {
        let queue = queue.clone();
        child(move || {
            std::thread::sleep(Duration::from_millis(50));
            queue.put(7).map_err(|e| e.to_string())
        })
        .unwrap()
    };
    let clone = queue.clone();
    queue.close();
    assert!(clone.is_closed(), "clones are the same queue");
    assert!(matches!(queue.put(1), Err(SyncError::Closed)));
    assert!(matches!(
        clone.get_timeout(Duration::from_secs(5)),
        Err(SyncError::Closed)
    ));
    assert_eq!(SyncError::Closed.to_string(), "the queue is closed");
    // The child, forked before, still puts; a fresh attachment here still gets.
    child.join().unwrap().unwrap();
    let reopened = Queue::<u32>::attach(&handle).unwrap();
    assert!(!reopened.is_closed());
    assert_eq!(reopened.get().unwrap(), 7);
}

#[test]
fn attaching_with_another_type_or_kind_is_a_clear_error() {
    let numbers = Queue::<u64>::new().unwrap();
    let handle = numbers.handle().unwrap();
    let err = Queue::<String>::attach(&handle).unwrap_err();
    assert!(matches!(err, SyncError::BadHandle { .. }), "{err}");
    assert!(err.to_string().contains("another type"), "{err}");
    let err = JoinableQueue::<u64>::attach(&handle).unwrap_err();
    assert!(
        err.to_string()
            .contains("is of a Queue, not a JoinableQueue"),
        "{err}"
    );
    let err = SimpleQueue::<u64>::attach(&handle).unwrap_err();
    assert!(err.to_string().contains("not a SimpleQueue"), "{err}");
    let err = Lock::attach(&handle).unwrap_err();
    assert!(
        err.to_string().contains("is of a Queue, not a Lock"),
        "{err}"
    );
    // The right type attaches, and is the same queue.
    let same = Queue::<u64>::attach(&handle).unwrap();
    same.put(5).unwrap();
    assert_eq!(numbers.get().unwrap(), 5);
    // A JoinableQueue is a Queue.
    let jobs = JoinableQueue::<u64>::new().unwrap();
    let as_queue = Queue::<u64>::attach(&jobs.handle().unwrap()).unwrap();
    as_queue.put(1).unwrap();
    assert_eq!(jobs.unfinished_tasks(), 1);
}

#[test]
fn an_item_its_deserialize_refuses_is_a_codec_error_and_the_next_one_arrives() {
    #[derive(serde::Serialize, serde::Deserialize, Debug)]
    struct Even(#[serde(deserialize_with = "even")] u32);
    fn even<'de, D: serde::Deserializer<'de>>(d: D) -> Result<u32, D::Error> {
        let n = <u32 as serde::Deserialize>::deserialize(d)?;
        if n % 2 == 0 {
            Ok(n)
        } else {
            Err(serde::de::Error::custom(format!("{n} is odd")))
        }
    }
    let queue = JoinableQueue::<Even>::new().unwrap();
    queue.put(Even(3)).unwrap();
    queue.put(Even(4)).unwrap();
    let err = queue.get().unwrap_err();
    assert!(matches!(err, SyncError::Codec(_)), "{err}");
    assert!(err.to_string().contains("3 is odd"), "{err}");
    // The undecodable item is taken and counts as done; the next one arrives.
    assert_eq!(queue.get().unwrap().0, 4);
    assert_eq!(queue.unfinished_tasks(), 1);
}

#[test]
fn a_joinable_queue_joins_once_every_item_is_done() {
    let jobs = JoinableQueue::<u32>::bounded(8).unwrap();
    let results = SimpleQueue::<u32>::new().unwrap();
    let workers: Vec<Process<()>> = (0..2)
        .map(|_| {
            let (jobs, results) = (jobs.clone(), results.clone());
            Process::builder()
                .daemon(true)
                .spawn(move || {
                    loop {
                        let job = jobs.get().expect("get");
                        results.put(job * 10).expect("put result");
                        jobs.task_done().expect("task_done");
                    }
                })
                .unwrap()
        })
        .collect();
    for job in 0..100 {
        jobs.put(job).unwrap();
    }
    jobs.join().unwrap();
    assert_eq!(jobs.unfinished_tasks(), 0);
    let mut got: Vec<u32> = (0..100).map(|_| results.get().unwrap()).collect();
    got.sort_unstable();
    assert_eq!(got, (0..100).map(|j| j * 10).collect::<Vec<_>>());
    assert!(results.empty());
    for worker in workers {
        worker.kill().unwrap();
    }
}

#[test]
fn join_timeout_sleeps_and_task_done_too_often_is_misuse() {
    let jobs = JoinableQueue::<u8>::new().unwrap();
    assert!(matches!(jobs.task_done(), Err(SyncError::Misuse { .. })));
    jobs.put(1).unwrap();
    let cpu = cpu_time();
    let err = jobs.join_timeout(Duration::from_millis(300)).unwrap_err();
    assert!(matches!(err, SyncError::Timeout { .. }), "{err}");
    assert!(
        cpu_time() - cpu < Duration::from_millis(60),
        "a timed-out join spun"
    );
    assert_eq!(jobs.get().unwrap(), 1);
    assert_eq!(
        jobs.unfinished_tasks(),
        1,
        "get alone does not finish a task"
    );
    jobs.task_done().unwrap();
    jobs.join_timeout(Duration::from_secs(5)).unwrap();
    let err = jobs.task_done().unwrap_err();
    assert!(
        err.to_string().contains("task_done() called more times"),
        "{err}"
    );
}

#[test]
fn a_simple_queue_passes_items_between_processes() {
    let queue = SimpleQueue::<String>::new().unwrap();
    assert!(queue.empty());
    let child = {
        let queue = queue.clone();
        child(move || {
            let got = queue.get().expect("get");
            queue.put(format!("{got} back")).expect("put");
        })
        .unwrap()
    };
    queue.put("there".to_string()).unwrap();
    child.join().unwrap();
    assert_eq!(queue.get().unwrap(), "there back");
    queue.close();
    assert!(matches!(queue.put("x".to_string()), Err(SyncError::Closed)));
}

#[test]
fn puts_borrow_or_move_and_threads_share_a_queue() {
    // Queues are Send + Sync whatever the item type: only its bytes live in the queue.
    fn send_sync<Q: Send + Sync>() {}
    send_sync::<Queue<std::cell::Cell<u32>>>();
    send_sync::<JoinableQueue<std::cell::Cell<u32>>>();
    send_sync::<SimpleQueue<std::cell::Cell<u32>>>();
    let queue = Queue::<String>::new().unwrap();
    let text = "kept".to_string();
    queue.put(&text).unwrap();
    queue.put(text.clone()).unwrap();
    std::thread::scope(|s| {
        for _ in 0..4 {
            s.spawn(|| {
                for _ in 0..1000 {
                    queue.put("t".to_string()).unwrap();
                }
            });
        }
    });
    assert_eq!(queue.qsize(), 4002);
    assert_eq!(queue.get().unwrap(), "kept");
    assert_eq!(queue.get().unwrap(), "kept");
    for _ in 0..4000 {
        assert_eq!(queue.try_get().unwrap(), "t");
    }
    assert!(matches!(queue.try_get(), Err(SyncError::Empty)));
}
