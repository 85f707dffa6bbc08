//! Producers and consumers SIGKILLed in the middle of `put` and `get`: the queue stays whole,
//! no other producer's item is lost, and a dead consumer loses at most the item it was taking.

mod common;

use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use common::child;
use fork_sys::{SharedAtomics, Signal};
use proc_sync::{JoinableQueue, Queue, SyncError};

/// The bytes of item `seq` of `len` bytes: any corruption or mix-up shows.
fn pattern(seq: u64, len: usize) -> Vec<u8> {
    (0..len)
        .map(|i| {
            (i as u64)
                .wrapping_mul(131)
                .wrapping_add(seq.wrapping_mul(7)) as u8
        })
        .collect()
}

/// A small, seeded pseudo-random sequence (xorshift), printed so a failure can be replayed.
struct Random(u64);

impl Random {
    fn seeded() -> Random {
        let seed = std::env::var("QUEUE_TEST_SEED")
            .ok()
            .and_then(|s| s.parse().ok())
            .unwrap_or_else(|| {
                std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .map_or(1, |d| d.as_nanos() as u64)
                    | 1
            });
        eprintln!("QUEUE_TEST_SEED={seed}");
        Random(seed)
    }

    fn below(&mut self, n: u64) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0 % n
    }
}

fn wait_until(what: &str, mut condition: impl FnMut() -> bool) {
    assert!(
        test_support::eventually(Duration::from_secs(30), &mut condition),
        "never happened: {what}"
    );
}

#[test]
fn a_producer_killed_while_streaming_an_item_loses_no_other_item() {
    let _watchdog = test_support::watchdog(Duration::from_secs(120), "producer death test hung");
    let queue = Queue::<(u32, Vec<u8>)>::builder()
        .capacity(4096)
        .build()
        .unwrap();
    let victim = {
        let queue = queue.clone();
        // 64 KiB through a 4 KiB ring nobody reads: it streams the first chunks and waits.
        child(move || {
            queue
                .put((0, pattern(0, 64 << 10)))
                .map_err(|e| e.to_string())
        })
        .unwrap()
    };
    wait_until("the victim's first chunk", || queue.qsize() == 1);
    std::thread::sleep(Duration::from_millis(50));
    victim.kill().unwrap();
    assert!(victim.join().is_err(), "the victim was killed");
    let survivor = {
        let queue = queue.clone();
        child(move || {
            for seq in 0..2000u64 {
                let len = if seq % 100 == 7 {
                    20_000
                } else {
                    (seq % 50) as usize
                };
                queue.put((1, pattern(seq, len))).expect("put");
            }
        })
        .unwrap()
    };
    for seq in 0..2000u64 {
        let (from, bytes) = queue.get().unwrap();
        assert_eq!(from, 1, "the dead producer's half-sent item was delivered");
        let len = if seq % 100 == 7 {
            20_000
        } else {
            (seq % 50) as usize
        };
        assert!(bytes == pattern(seq, len), "item {seq} is not whole");
    }
    survivor.join().unwrap();
    assert!(matches!(queue.try_get(), Err(SyncError::Empty)));
    assert_eq!(
        queue.qsize(),
        0,
        "the dead producer's item is not counted for ever"
    );
}

#[test]
fn producers_killed_at_random_moments_never_corrupt_the_queue() {
    let _watchdog = test_support::watchdog(Duration::from_secs(240), "random kills test hung");
    let mut random = Random::seeded();
    // A small ring, so that many items stream in chunks and kills land mid-item.
    let queue = Queue::<(u32, u64, Vec<u8>)>::builder()
        .capacity(8192)
        .maxsize(16)
        .build()
        .unwrap();
    const SURVIVOR_ITEMS: u64 = 3000;
    let size = |seq: u64| (seq.wrapping_mul(2_654_435_761) % 9000) as usize;
    let survivor = {
        let queue = queue.clone();
        child(move || {
            for seq in 0..SURVIVOR_ITEMS {
                queue.put((0, seq, pattern(seq, size(seq)))).expect("put");
            }
        })
        .unwrap()
    };
    std::thread::scope(|s| {
        let consumer = s.spawn(|| {
            let mut next_survivor = 0;
            let mut last_of_victim = std::collections::HashMap::new();
            while next_survivor < SURVIVOR_ITEMS {
                let (from, seq, bytes) = queue.get().unwrap();
                assert!(
                    bytes == pattern(seq, size(seq)),
                    "item {from}/{seq} is not whole"
                );
                if from == 0 {
                    assert_eq!(
                        seq, next_survivor,
                        "the survivor's items out of order or lost"
                    );
                    next_survivor += 1;
                } else if let Some(last) = last_of_victim.insert(from, seq) {
                    assert!(last < seq, "victim {from}: {seq} after {last}");
                }
            }
        });
        let mut victim_no = 1u32;
        while !consumer.is_finished() {
            let victim = {
                let queue = queue.clone();
                child(move || {
                    for seq in 0.. {
                        queue
                            .put((victim_no, seq, pattern(seq, size(seq))))
                            .expect("put");
                    }
                })
                .unwrap()
            };
            std::thread::sleep(Duration::from_micros(500 + random.below(20_000)));
            victim.kill().unwrap();
            let _ = victim.join();
            victim_no += 1;
        }
        consumer.join().unwrap();
    });
    survivor.join().unwrap();
    // Whatever the victims left is taken (or dropped, half-streamed); then the counts must be
    // exact again: none left over, and exactly `maxsize` items fit.
    while queue.try_get().is_ok() {}
    assert_eq!(queue.qsize(), 0, "the item counts drifted");
    for seq in 0..16 {
        queue
            .try_put((0, seq, Vec::new()))
            .expect("room for maxsize items");
    }
    assert!(
        matches!(
            queue.try_put((0, 16, Vec::new())),
            Err(SyncError::Full { .. })
        ),
        "more than maxsize items fit: the counts drifted"
    );
}

#[test]
fn a_consumer_killed_in_the_middle_of_an_item_loses_only_that_item() {
    let _watchdog = test_support::watchdog(Duration::from_secs(120), "consumer death test hung");
    let queue = JoinableQueue::<Vec<u8>>::builder()
        .capacity(4096)
        .build()
        .unwrap();
    let producer = {
        let queue = queue.clone();
        child(move || {
            queue.put(pattern(9, 64 << 10)).expect("put big");
            for i in 0..3u8 {
                queue.put(vec![i; 10]).expect("put small");
            }
        })
        .unwrap()
    };
    // The producer streams the first chunks of the big item into the ring, then waits for
    // room; stopped there, it holds the item half-sent.
    wait_until("the big item's first chunk", || queue.qsize() == 1);
    std::thread::sleep(Duration::from_millis(50));
    fork_sys::kill(producer.pid(), Signal::STOP).unwrap();
    let victim = {
        let queue = queue.clone();
        child(move || queue.get().map(|v| v.len()).map_err(|e| e.to_string())).unwrap()
    };
    // It took the first chunk (counted) and everything in the ring: it waits for the rest.
    wait_until("the victim in the middle of the item", || {
        queue.qsize() == 0 && queue.empty()
    });
    victim.kill().unwrap();
    assert!(victim.join().is_err(), "the victim was killed");
    fork_sys::kill(producer.pid(), Signal::CONT).unwrap();
    for i in 0..3u8 {
        assert_eq!(queue.get().unwrap(), vec![i; 10]);
    }
    producer.join().unwrap();
    assert!(matches!(queue.try_get(), Err(SyncError::Empty)));
    // The lost item counts as done: only the three delivered ones are unfinished.
    assert_eq!(queue.unfinished_tasks(), 3);
    for _ in 0..3 {
        queue.task_done().unwrap();
    }
    queue.join_timeout(Duration::from_secs(10)).unwrap();
}

#[test]
fn consumers_killed_at_random_moments_lose_at_most_one_item_each() {
    let _watchdog = test_support::watchdog(Duration::from_secs(240), "random consumer kills hung");
    let mut random = Random::seeded();
    const ITEMS: usize = 6000;
    let queue = Queue::<(u32, Vec<u8>)>::builder()
        .capacity(8192)
        .maxsize(64)
        .build()
        .unwrap();
    // How many times each item was received, across all consumers.
    let received = std::sync::Arc::new(SharedAtomics::new(ITEMS).unwrap());
    let size = |i: u32| (u64::from(i).wrapping_mul(2_654_435_761) % 7000) as usize;
    let mut producer = {
        let queue = queue.clone();
        child(move || {
            for i in 0..ITEMS as u32 {
                queue.put((i, pattern(u64::from(i), size(i)))).expect("put");
            }
        })
        .unwrap()
    };
    let consume = {
        let (queue, received) = (queue.clone(), received.clone());
        move || loop {
            let (i, bytes) = match queue.get_timeout(Duration::from_secs(2)) {
                Ok(item) => item,
                Err(SyncError::Timeout { .. }) => return,
                Err(err) => panic!("get: {err}"),
            };
            assert!(
                bytes == pattern(u64::from(i), size(i)),
                "item {i} is not whole"
            );
            received.get(i as usize).fetch_add(1, Ordering::SeqCst);
        }
    };
    let mut kills = 0;
    let start = Instant::now();
    while producer.is_alive() {
        let consume = consume.clone();
        let victim = child(consume).unwrap();
        // Longer than the 50 ms a waiter takes to notice its predecessor's death, so that
        // most victims get items before they die.
        std::thread::sleep(Duration::from_micros(20_000 + random.below(130_000)));
        victim.kill().unwrap();
        if victim.join().is_err() {
            kills += 1;
        }
        assert!(
            start.elapsed() < Duration::from_secs(200),
            "the producer never finished"
        );
    }
    producer.join().unwrap();
    // The last consumer drains what is left and stops once the queue stays empty.
    let last = child(consume).unwrap();
    last.join().unwrap();
    let counts: Vec<u64> = (0..ITEMS)
        .map(|i| received.get(i).load(Ordering::SeqCst))
        .collect();
    let twice: Vec<usize> = (0..ITEMS).filter(|&i| counts[i] > 1).collect();
    assert!(twice.is_empty(), "items received twice: {twice:?}");
    let lost = counts.iter().filter(|&&c| c == 0).count();
    eprintln!("{kills} consumers killed, {lost} items lost");
    assert!(kills > 0, "no consumer was killed");
    assert!(
        lost <= kills,
        "{lost} items lost to {kills} killed consumers"
    );
    assert_eq!(queue.qsize(), 0);
}
