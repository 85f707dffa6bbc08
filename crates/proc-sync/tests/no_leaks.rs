//! Dropping any proc-sync object leaves no fd, no mapping and no `/dev/shm` entry behind.
//! Its own test binary: other tests would open fds and map memory meanwhile.

use proc_sync::{
    Array, Barrier, BoundedSemaphore, Condition, Event, Lock, RLock, Semaphore, SharedMemory, Value,
};

fn mappings() -> usize {
    std::fs::read_to_string("/proc/self/maps").map_or(0, |maps| maps.lines().count())
}

fn shm_entries(prefix: &str) -> usize {
    std::fs::read_dir("/dev/shm").map_or(0, |dir| {
        dir.filter_map(Result::ok)
            .filter(|entry| entry.file_name().to_string_lossy().starts_with(prefix))
            .count()
    })
}

/// Creates one of everything (and attaches each by handle or name), then drops them all.
fn one_of_everything(round: usize) -> Result<(), Box<dyn std::error::Error>> {
    let lock = Lock::new()?;
    let _l2 = Lock::attach(&lock.handle()?)?;
    let rlock = RLock::new()?;
    let _r2 = RLock::attach(&rlock.handle()?)?;
    let sem = Semaphore::new(1)?;
    let _s2 = Semaphore::attach(&sem.handle()?)?;
    let bounded = BoundedSemaphore::new(1)?;
    let _b2 = BoundedSemaphore::attach(&bounded.handle()?)?;
    let event = Event::new()?;
    let _e2 = Event::attach(&event.handle()?)?;
    let cond = Condition::new()?;
    let _c2 = Condition::<Lock>::attach(&cond.handle()?)?;
    let barrier = Barrier::new(2)?;
    let _ba2 = Barrier::attach(&barrier.handle()?)?;
    let value = Value::new(1u64)?;
    let _v2 = Value::<u64>::attach(&value.handle()?)?;
    let array = Array::new(&[1u8; 100])?;
    let _a2 = Array::<u8>::attach(&array.handle()?)?;
    let name = format!("proc-sync-leak-{}-{round}", std::process::id());
    let block = SharedMemory::create(&name, 4096)?;
    let _attached = SharedMemory::attach(&name)?;
    let _clone = block.clone();
    Ok(())
}

#[test]
fn dropping_every_kind_of_object_leaves_no_fd_mapping_or_shm_entry() {
    let prefix = format!("proc-sync-leak-{}-", std::process::id());
    // Warm up: the first round may allocate for good (thread-locals, the allocator's arenas).
    one_of_everything(0).unwrap();
    let (fds, maps) = (test_support::open_fd_count(), mappings());
    for round in 1..=20 {
        one_of_everything(round).unwrap();
    }
    assert_eq!(test_support::open_fd_count(), fds, "fds leaked");
    assert_eq!(mappings(), maps, "mappings leaked");
    if cfg!(target_os = "linux") {
        assert_eq!(shm_entries(&prefix), 0, "/dev/shm entries left behind");
    }
}

/// Every object can be shared between threads, cloned, and printed: checked when this file
/// compiles (a test running beside the leak check could map memory for its thread meanwhile).
const _: fn() = || {
    fn check<T: Send + Sync + Clone + std::fmt::Debug>() {}
    check::<Lock>();
    check::<RLock>();
    check::<Semaphore>();
    check::<BoundedSemaphore>();
    check::<Event>();
    check::<Condition>();
    check::<Condition<RLock>>();
    check::<Barrier>();
    check::<Value<u64>>();
    check::<Array<f32>>();
    check::<SharedMemory>();
    check::<proc_sync::Handle>();
    check::<proc_sync::ConditionHandle>();
};
