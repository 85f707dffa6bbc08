//! proc-sync under a kill storm: producers, consumers and lock holders SIGKILLed at random
//! while items flow through one bounded `Queue` and a `Lock` guards a two-word invariant.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use fork_sys::SharedAtomics;
use proc_core::{Process, ProcessError};
use proc_sync::{Lock, Queue, SyncError};

use crate::outcome::{Baseline, Outcome};
use crate::rng::Rng;
use crate::scenarios::Config;

const NAME: &str = "sync-kill-storm";
const PRODUCERS: usize = 4;
const CONSUMERS: usize = 4;
const HOLDERS: usize = 2;

/// Counters every process of the scenario shares (forked children inherit the mappings).
struct Shared {
    /// Per item (`producer * per_producer + seq`): how many times a consumer got it.
    seen: SharedAtomics,
    /// Per producer: the next `seq` it will put, stored after each `put` returned.
    progress: SharedAtomics,
    /// Fault counts, indexed by [`OUT_OF_ORDER`], [`TORN_UNDER_LOCK`], [`OWNER_DIED`] and
    /// [`ERRORS`].
    faults: SharedAtomics,
    /// The two words the lock guards: equal whenever nobody holds it.
    pair: SharedAtomics,
    queue: Queue<(u32, u64)>,
    lock: Lock,
    per_producer: u64,
}

/// Items a consumer got out of their producer's order.
const OUT_OF_ORDER: usize = 0;
/// Clean lock acquires that found the invariant broken.
const TORN_UNDER_LOCK: usize = 1;
/// Owner-died reports on the lock.
const OWNER_DIED: usize = 2;
/// Unexpected errors in a consumer.
const ERRORS: usize = 3;

type Child = Process<Result<(), String>>;

fn producer(shared: &Arc<Shared>, p: u32, from: u64) -> Result<Child, ProcessError> {
    let shared = Arc::clone(shared);
    Process::spawn(move || {
        for seq in from..shared.per_producer {
            loop {
                match shared.queue.put((p, seq)) {
                    Ok(()) => break,
                    // A producer killed mid-put: this put repaired the queue; put again.
                    Err(SyncError::OwnerDied { .. }) => continue,
                    Err(err) => return Err(format!("producer {p}: put {seq}: {err}")),
                }
            }
            shared
                .progress
                .get(p as usize)
                .store(seq + 1, Ordering::Release);
        }
        Ok(())
    })
}

fn consumer(shared: &Arc<Shared>, stop: &Arc<SharedAtomics>) -> Result<Child, ProcessError> {
    let shared = Arc::clone(shared);
    let stop = Arc::clone(stop);
    Process::spawn(move || {
        let mut last = [None::<u64>; PRODUCERS];
        loop {
            match shared.queue.get_timeout(Duration::from_millis(50)) {
                Ok((p, seq)) => {
                    let index = p as u64 * shared.per_producer + seq;
                    shared
                        .seen
                        .get(index as usize)
                        .fetch_add(1, Ordering::AcqRel);
                    if last[p as usize].is_some_and(|before| before >= seq) {
                        shared
                            .faults
                            .get(OUT_OF_ORDER)
                            .fetch_add(1, Ordering::Relaxed);
                    }
                    last[p as usize] = Some(seq);
                }
                Err(SyncError::Timeout { .. }) => {
                    if stop.get(0).load(Ordering::Acquire) != 0 {
                        return Ok(());
                    }
                }
                Err(SyncError::OwnerDied { .. }) => {}
                Err(err) => {
                    shared.faults.get(ERRORS).fetch_add(1, Ordering::Relaxed);
                    return Err(format!("consumer: {err}"));
                }
            }
        }
    })
}

fn holder(shared: &Arc<Shared>, stop: &Arc<SharedAtomics>) -> Result<Child, ProcessError> {
    let shared = Arc::clone(shared);
    let stop = Arc::clone(stop);
    Process::spawn(move || {
        let (a, b) = (shared.pair.get(0), shared.pair.get(1));
        while stop.get(0).load(Ordering::Acquire) == 0 {
            let _guard = match shared.lock.acquire() {
                Ok(guard) => {
                    if a.load(Ordering::Relaxed) != b.load(Ordering::Relaxed) {
                        shared
                            .faults
                            .get(TORN_UNDER_LOCK)
                            .fetch_add(1, Ordering::Relaxed);
                    }
                    guard
                }
                Err(died) => {
                    shared
                        .faults
                        .get(OWNER_DIED)
                        .fetch_add(1, Ordering::Relaxed);
                    // Repair what the dead holder left half-done.
                    b.store(a.load(Ordering::Relaxed), Ordering::Relaxed);
                    died.into_inner()
                }
            };
            // Break the invariant for a moment, as real critical sections do.
            let next = a.load(Ordering::Relaxed) + 1;
            a.store(next, Ordering::Relaxed);
            for _ in 0..200 {
                std::hint::spin_loop();
            }
            b.store(next, Ordering::Relaxed);
        }
        Ok(())
    })
}

/// Four producers put `(producer, seq)` in order into a bounded queue, four consumers take
/// them, two processes take turns on a lock; a thread SIGKILLs one of them every 2-8 ms and
/// starts a replacement (a producer's replacement goes on after the item its predecessor was
/// putting, which may or may not have gone in). Every item put must be got exactly once, in
/// its producer's order, except at most one item per consumer killed (the one it was taking);
/// a clean acquire must never see the lock's invariant broken; owner-died reports at most one
/// per holder killed; the queue and the lock work afterwards.
pub(crate) fn kill_storm(config: &Config) -> Outcome {
    let mut outcome = Outcome::default();
    let per_producer = config.size(500_000, 50_000);
    let started = Instant::now();
    let baseline = Baseline::take();
    let built = (|| -> Result<Shared, Box<dyn std::error::Error>> {
        Ok(Shared {
            seen: SharedAtomics::new(PRODUCERS * per_producer as usize)?,
            progress: SharedAtomics::new(PRODUCERS)?,
            faults: SharedAtomics::new(4)?,
            pair: SharedAtomics::new(2)?,
            queue: Queue::bounded(256)?,
            lock: Lock::new()?,
            per_producer,
        })
    })();
    let shared = match built {
        Ok(shared) => Arc::new(shared),
        Err(err) => {
            outcome.violation(NAME, format!("setting up: {err}"));
            return outcome;
        }
    };
    let stop = match SharedAtomics::new(1) {
        Ok(stop) => Arc::new(stop),
        Err(err) => {
            outcome.violation(NAME, format!("setting up: {err}"));
            return outcome;
        }
    };
    let mut killed = Kills::default();
    let spawned = (|| -> Result<_, ProcessError> {
        let producers = (0..PRODUCERS)
            .map(|p| producer(&shared, p as u32, 0).map(Some))
            .collect::<Result<Vec<_>, _>>()?;
        let consumers = (0..CONSUMERS)
            .map(|_| consumer(&shared, &stop))
            .collect::<Result<Vec<_>, _>>()?;
        let holders = (0..HOLDERS)
            .map(|_| holder(&shared, &stop))
            .collect::<Result<Vec<_>, _>>()?;
        Ok((producers, consumers, holders))
    })();
    let (mut producers, mut consumers, mut holders) = match spawned {
        Ok(children) => children,
        Err(err) => {
            outcome.violation(NAME, format!("starting the processes: {err}"));
            return outcome;
        }
    };
    // Per producer: the first `seq` its current process puts (a replacement's progress word
    // still says where its predecessor stopped until its own first put returns).
    let mut starts = [0u64; PRODUCERS];
    let mut rng = Rng::new(0x7379_6e63);
    // The storm lasts until the producers are done (or a deadline passes).
    let deadline = if config.quick {
        Duration::from_secs(40)
    } else {
        Duration::from_secs(120)
    };
    loop {
        std::thread::sleep(Duration::from_micros(2_000 + rng.below(6_000)));
        let all_put =
            (0..PRODUCERS).all(|p| shared.progress.get(p).load(Ordering::Acquire) >= per_producer);
        if all_put || started.elapsed() > deadline {
            break;
        }
        let choice = rng.below((PRODUCERS + CONSUMERS + HOLDERS) as u64) as usize;
        if choice < PRODUCERS {
            let p = choice;
            if shared.progress.get(p).load(Ordering::Acquire) >= per_producer {
                continue;
            }
            let Some(victim) = producers[p].take() else {
                continue;
            };
            if victim.kill().is_err() {
                producers[p] = Some(victim);
                continue;
            }
            killed.producers += 1;
            let _ = victim.join();
            // Where the dead producer got to: the item it was putting may or may not be in.
            // (Not below where it started: a replacement killed in its first put has not yet
            // moved the progress word past its predecessor's item.)
            let next = shared
                .progress
                .get(p)
                .load(Ordering::Acquire)
                .max(starts[p]);
            killed.maybe.push((p, next));
            starts[p] = next + 1;
            match producer(&shared, p as u32, next + 1) {
                Ok(fresh) => producers[p] = Some(fresh),
                Err(err) => {
                    outcome.violation(NAME, format!("restarting producer {p}: {err}"));
                    break;
                }
            }
        } else {
            // A consumer or a lock holder: killed, reaped, replaced by a fresh one.
            type Start = fn(&Arc<Shared>, &Arc<SharedAtomics>) -> Result<Child, ProcessError>;
            let (slot, count, start, what): (&mut Child, &mut u64, Start, &str) =
                if choice < PRODUCERS + CONSUMERS {
                    let c = choice - PRODUCERS;
                    (
                        &mut consumers[c],
                        &mut killed.consumers,
                        consumer,
                        "a consumer",
                    )
                } else {
                    let h = choice - PRODUCERS - CONSUMERS;
                    (
                        &mut holders[h],
                        &mut killed.holders,
                        holder,
                        "a lock holder",
                    )
                };
            if slot.kill().is_err() {
                continue;
            }
            *count += 1;
            match start(&shared, &stop) {
                Ok(fresh) => {
                    let _ = std::mem::replace(slot, fresh).join();
                }
                Err(err) => {
                    outcome.violation(NAME, format!("restarting {what}: {err}"));
                    break;
                }
            }
        }
        outcome.faults += 1;
    }
    for (p, child) in producers.into_iter().enumerate() {
        let Some(child) = child else { continue };
        match child.join() {
            Ok(Ok(())) => {}
            Ok(Err(err)) => outcome.violation(NAME, err),
            Err(err) => outcome.violation(NAME, format!("producer {p} ended badly: {err}")),
        }
    }
    // Consumers drain what is left, then stop on their next empty wait.
    stop.get(0).store(1, Ordering::Release);
    for child in consumers.into_iter().chain(holders) {
        match child.join() {
            Ok(Ok(())) => {}
            Ok(Err(err)) => outcome.violation(NAME, err),
            Err(err) => outcome.violation(NAME, format!("a consumer or holder ended badly: {err}")),
        }
    }
    settle(&shared, &killed, &mut outcome);
    // Both still work after the storm.
    match shared
        .queue
        .put((0, 0))
        .and_then(|()| shared.queue.get_timeout(Duration::from_secs(5)))
    {
        Ok((0, 0)) => {}
        Ok(other) => outcome.violation(NAME, format!("queue after the storm gave {other:?}")),
        Err(err) => outcome.violation(NAME, format!("queue after the storm: {err}")),
    }
    match shared.lock.acquire_timeout(Duration::from_secs(5)) {
        Ok(Some(_)) | Err(_) => {}
        Ok(None) => outcome.hang(NAME, "the lock after the storm"),
    }
    eprintln!(
        "soak: {NAME}: {} producers, {} consumers, {} lock holders killed; {} items got, {} owner-died reports",
        killed.producers,
        killed.consumers,
        killed.holders,
        outcome.operations,
        shared.faults.get(OWNER_DIED).load(Ordering::Relaxed)
    );
    drop(shared);
    drop(stop);
    baseline.check(&mut outcome);
    outcome
}

/// What the storm killed, and the items whose fate a producer's death left open.
#[derive(Debug, Default)]
struct Kills {
    producers: u64,
    consumers: u64,
    holders: u64,
    /// `(producer, seq)` being put when its producer was killed: got once or never.
    maybe: Vec<(usize, u64)>,
}

/// Checks every item's count against what was put, and the shared fault counters.
fn settle(shared: &Shared, killed: &Kills, outcome: &mut Outcome) {
    let mut missing = 0u64;
    for p in 0..PRODUCERS {
        let put_until = shared.progress.get(p).load(Ordering::Acquire);
        for seq in 0..shared.per_producer {
            let index = p * shared.per_producer as usize + seq as usize;
            let count = shared.seen.get(index).load(Ordering::Acquire);
            let maybe = killed.maybe.contains(&(p, seq));
            match count {
                1 => outcome.operations += 1,
                0 if maybe || seq >= put_until => {}
                0 => missing += 1,
                n => outcome.rerun(
                    NAME,
                    n - 1,
                    format!("item {seq} of producer {p} got {n} times"),
                ),
            }
        }
    }
    // A consumer killed mid-get may lose the item it was taking, and only that one.
    if missing > killed.consumers {
        outcome.lost(
            NAME,
            format!(
                "{missing} items put were never got, with only {} consumers killed",
                killed.consumers
            ),
        );
        outcome.lost += missing - killed.consumers - 1;
    }
    let count = |i: usize| shared.faults.get(i).load(Ordering::Relaxed);
    if count(OUT_OF_ORDER) > 0 {
        outcome.violation(
            NAME,
            format!(
                "{} items out of their producer's order",
                count(OUT_OF_ORDER)
            ),
        );
    }
    if count(TORN_UNDER_LOCK) > 0 {
        outcome.violation(
            NAME,
            format!(
                "{} clean acquires saw a half-done update",
                count(TORN_UNDER_LOCK)
            ),
        );
    }
    if count(OWNER_DIED) > killed.holders {
        outcome.violation(
            NAME,
            format!(
                "{} owner-died reports for {} holders killed",
                count(OWNER_DIED),
                killed.holders
            ),
        );
    }
}
