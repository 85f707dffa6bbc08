//! Children started by the `Spawn` and `ForkServer` start methods (fresh programs, not forks
//! of the creator) attach to a queue by its handle.

use proc_core::{Process, StartMethod};
use proc_sync::{Handle, JoinableQueue, Queue, SyncError};

/// In the child: takes the numbers the parent put until `None`, and puts back their sum.
fn sum_numbers((numbers, sums): (Handle, Handle)) -> Result<u64, String> {
    let numbers = JoinableQueue::<Option<u64>>::attach(&numbers).map_err(|e| e.to_string())?;
    let sums = Queue::<u64>::attach(&sums).map_err(|e| e.to_string())?;
    let mut total = 0;
    while let Some(n) = numbers.get().map_err(|e| e.to_string())? {
        total += n;
        numbers.task_done().map_err(|e| e.to_string())?;
    }
    numbers.task_done().map_err(|e| e.to_string())?;
    sums.put(total).map_err(|e| e.to_string())?;
    Ok(total)
}

/// In the child: attaches with the wrong item type and reports the error.
fn attach_as_strings(handle: Handle) -> String {
    match Queue::<String>::attach(&handle) {
        Ok(_) => "attached".to_string(),
        Err(err) => err.to_string(),
    }
}

#[test]
fn spawned_and_fork_server_children_attach_by_handle() {
    proc_core::init();
    for method in [StartMethod::Spawn, StartMethod::ForkServer] {
        let numbers = JoinableQueue::<Option<u64>>::new().unwrap();
        let sums = Queue::<u64>::new().unwrap();
        let child = Process::builder()
            .start_method(method)
            .spawn_fn(
                sum_numbers,
                (numbers.handle().unwrap(), sums.handle().unwrap()),
            )
            .unwrap();
        for n in 1..=100 {
            numbers.put(Some(n)).unwrap();
        }
        numbers.put(None).unwrap();
        numbers.join().unwrap();
        assert_eq!(sums.get().unwrap(), 5050, "{method}");
        assert_eq!(child.join().unwrap(), Ok(5050), "{method}");
    }
}

#[test]
fn a_spawned_child_attaching_with_another_item_type_gets_a_clear_error() {
    let numbers = Queue::<u64>::new().unwrap();
    let child = Process::builder()
        .start_method(StartMethod::Spawn)
        .spawn_fn(attach_as_strings, numbers.handle().unwrap())
        .unwrap();
    let message = child.join().unwrap();
    assert!(message.contains("bad handle"), "{message}");
    assert!(message.contains("another type"), "{message}");
    // And a handle of a process that is gone cannot be attached.
    let gone = {
        let p = Process::spawn(|| {
            Queue::<u64>::new()
                .and_then(|q| q.handle())
                .map_err(|e| e.to_string())
        })
        .unwrap();
        p.join().unwrap().unwrap()
    };
    let err = Queue::<u64>::attach(&gone).unwrap_err();
    assert!(matches!(err, SyncError::Io { .. }), "{err}");
    assert!(err.to_string().contains("still running"), "{err}");
}
