//! Objects reached through their handles from a `Spawn` child: a fresh process of this test
//! binary that shares no memory with the parent and attaches by `/proc/PID/fd/N`.

#![cfg(target_os = "linux")]

use proc_core::{Process, StartMethod};
use proc_sync::{Array, Barrier, ConditionHandle, Event, Handle, Semaphore, Value};

/// The child: adds 10 to the value and doubles the array under their locks, takes a unit of
/// the semaphore for good, meets the parent at the barrier and sets the event.
fn worker(handles: (Handle, Handle, Handle, Handle, Handle)) -> Result<u64, String> {
    let (value, array, slots, barrier, done) = handles;
    let value = Value::<u64>::attach(&value).map_err(|e| e.to_string())?;
    let array = Array::<i32>::attach(&array).map_err(|e| e.to_string())?;
    let slots = Semaphore::attach(&slots).map_err(|e| e.to_string())?;
    let barrier = Barrier::attach(&barrier).map_err(|e| e.to_string())?;
    let done = Event::attach(&done).map_err(|e| e.to_string())?;
    let now = value.update(|v| v + 10).map_err(|e| e.to_string())?;
    {
        let mut all = array.lock().map_err(|e| e.to_string())?;
        let doubled: Vec<i32> = all.to_vec().iter().map(|x| x * 2).collect();
        all.copy_from_slice(&doubled).map_err(|e| e.to_string())?;
    }
    slots.acquire().forget();
    barrier.wait().map_err(|e| e.to_string())?;
    done.set();
    Ok(now)
}

fn notifier(handle: ConditionHandle) -> Result<(), String> {
    let cond =
        proc_sync::Condition::<proc_sync::Lock>::attach(&handle).map_err(|e| e.to_string())?;
    let _held = cond.acquire().map_err(|e| e.to_string())?;
    cond.notify_all();
    Ok(())
}

#[test]
fn a_spawn_child_attaches_by_handle_and_works_on_the_same_objects() {
    let value = Value::new(5u64).unwrap();
    let array = Array::new(&[1i32, 2, 3]).unwrap();
    let slots = Semaphore::new(2).unwrap();
    let barrier = Barrier::new(2).unwrap();
    let done = Event::new().unwrap();
    let handles = (
        value.handle().unwrap(),
        array.handle().unwrap(),
        slots.handle().unwrap(),
        barrier.handle().unwrap(),
        done.handle().unwrap(),
    );
    let child = Process::builder()
        .start_method(StartMethod::Spawn)
        .spawn_fn(worker, handles)
        .unwrap();
    let index = barrier
        .wait_timeout(std::time::Duration::from_secs(30))
        .unwrap();
    assert!(index < 2, "index {index} of a 2-party barrier");
    assert!(done.wait_timeout(std::time::Duration::from_secs(30)));
    assert_eq!(child.join().unwrap().unwrap(), 15);
    assert_eq!(value.get().unwrap(), 15);
    assert_eq!(array.to_vec().unwrap(), [2, 4, 6]);
    assert_eq!(slots.get_value(), 1);
}

#[test]
fn a_spawn_child_notifies_a_condition_it_attached() {
    let cond = proc_sync::Condition::new().unwrap();
    let held = cond.acquire().unwrap();
    let child = Process::builder()
        .start_method(StartMethod::Spawn)
        .spawn_fn(notifier, cond.handle().unwrap())
        .unwrap();
    let (held, notified) = cond
        .wait_timeout(held, std::time::Duration::from_secs(30))
        .unwrap();
    assert!(notified, "the spawn child's notify never arrived");
    drop(held);
    child.join().unwrap().unwrap();
}
