//! Dropping queues leaves no file descriptor, mapping or `/dev/shm` entry behind. A test
//! binary of its own: counts of this process's fds and mappings must not see other tests'.

use proc_core::Process;
use proc_sync::{JoinableQueue, Queue, SimpleQueue};

/// Mappings of proc-sync objects' memory files (memfds, or shm objects elsewhere).
fn shared_mappings() -> usize {
    std::fs::read_to_string("/proc/self/maps")
        .map(|maps| {
            maps.lines()
                .filter(|line| line.contains("memfd:") || line.contains("/dev/shm/"))
                .count()
        })
        .unwrap_or(0)
}

fn dev_shm_entries() -> usize {
    std::fs::read_dir("/dev/shm").map_or(0, |entries| entries.count())
}

#[test]
fn dropped_queues_leave_no_fd_mapping_or_shm_entry_behind() {
    // Warm up whatever the first use allocates for good (thread-locals, the test harness).
    drop(Queue::<u8>::new().unwrap());
    let fds = test_support::open_fd_count();
    let maps = shared_mappings();
    let shm = dev_shm_entries();
    for round in 0..20u64 {
        let queue = Queue::<Vec<u8>>::builder()
            .capacity(1 << 16)
            .build()
            .unwrap();
        let jobs = JoinableQueue::<u64>::new().unwrap();
        let simple = SimpleQueue::<String>::new().unwrap();
        assert!(shared_mappings() >= maps + 3, "the queues are mapped");
        // A second attachment in this process: one more fd and mapping, dropped with it.
        let again = Queue::<Vec<u8>>::attach(&queue.handle().unwrap()).unwrap();
        let child = {
            let (queue, jobs, simple) = (queue.clone(), jobs.clone(), simple.clone());
            Process::spawn(move || {
                queue.put(vec![7; 200_000]).expect("put");
                jobs.put(round).expect("put");
                simple.put(round.to_string()).expect("put");
            })
            .unwrap()
        };
        assert_eq!(again.get().unwrap().len(), 200_000);
        assert_eq!(jobs.get().unwrap(), round);
        jobs.task_done().unwrap();
        assert_eq!(simple.get().unwrap(), round.to_string());
        child.join().unwrap();
    }
    assert_eq!(
        test_support::open_fd_count(),
        fds,
        "file descriptors left open"
    );
    assert_eq!(shared_mappings(), maps, "shared mappings left behind");
    assert_eq!(dev_shm_entries(), shm, "/dev/shm entries left behind");
}
