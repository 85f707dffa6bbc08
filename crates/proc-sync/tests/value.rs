//! `Value` and `Array` shared with forked children, under their locks.

use std::time::Duration;

use proc_core::Process;
use proc_sync::{Array, Event, SyncError, Value};

#[test]
fn four_processes_count_to_forty_thousand_under_the_lock() {
    let counter = Value::new(0u64).unwrap();
    let children: Vec<_> = (0..4)
        .map(|_| {
            let counter = counter.clone();
            Process::spawn(move || {
                for _ in 0..10_000 {
                    let mut held = counter.lock().map_err(|e| e.to_string())?;
                    // A read and a write, apart: only the lock keeps them together.
                    let now = held.get();
                    std::hint::spin_loop();
                    held.set(now + 1);
                }
                Ok::<(), String>(())
            })
            .unwrap()
        })
        .collect();
    for child in children {
        child.join().unwrap().unwrap();
    }
    assert_eq!(counter.get().unwrap(), 40_000);
}

#[test]
fn a_value_of_an_array_type_round_trips_and_update_returns_the_new_value() {
    let point = Value::new([1.5f64, -2.0, 0.25]).unwrap();
    let child = {
        let point = point.clone();
        Process::spawn(move || {
            point
                .update(|[x, y, z]| [x * 2.0, y * 2.0, z * 2.0])
                .map_err(|e| e.to_string())
        })
        .unwrap()
    };
    assert_eq!(child.join().unwrap().unwrap(), [3.0, -4.0, 0.5]);
    assert_eq!(point.get().unwrap(), [3.0, -4.0, 0.5]);
    point.set([0.0; 3]).unwrap();
    assert_eq!(
        format!("{point:?}"),
        "Value { value: [0.0, 0.0, 0.0], holder: None }"
    );
}

#[test]
fn a_holder_killed_holding_a_value_gives_owner_died_once() {
    let value = Value::new(7i32).unwrap();
    let wrote = Event::new().unwrap();
    let holder = {
        let (value, wrote) = (value.clone(), wrote.clone());
        Process::spawn(move || {
            let mut held = value.lock().map_err(|e| e.to_string())?;
            held.set(8);
            wrote.set();
            std::thread::sleep(Duration::from_secs(60));
            Ok::<(), String>(())
        })
        .unwrap()
    };
    assert!(wrote.wait_timeout(Duration::from_secs(20)));
    let pid = holder.pid();
    assert_eq!(
        format!("{value:?}"),
        format!("Value {{ value: 8, holder: Some({pid}) }}")
    );
    holder.kill().unwrap();
    let err = value.get().unwrap_err();
    assert!(matches!(err, SyncError::OwnerDied { .. }), "{err:?}");
    assert!(err.to_string().contains("shared value"), "{err}");
    assert_eq!(value.get().unwrap(), 8);
    assert!(holder.join().is_err());
}

#[test]
fn an_array_is_filled_by_children_and_read_by_the_parent() {
    let squares = Array::from_elem(0u32, 8).unwrap();
    assert_eq!(squares.len(), 8);
    let children: Vec<_> = (0..8)
        .map(|i| {
            let squares = squares.clone();
            Process::spawn(move || squares.set(i, (i * i) as u32).map_err(|e| e.to_string()))
                .unwrap()
        })
        .collect();
    for child in children {
        child.join().unwrap().unwrap();
    }
    assert_eq!(squares.to_vec().unwrap(), [0, 1, 4, 9, 16, 25, 36, 49]);
    assert_eq!(squares.get(3).unwrap(), 9);
    let err = squares.get(8).unwrap_err();
    assert!(
        matches!(err, SyncError::IndexOutOfRange { index: 8, len: 8 }),
        "{err:?}"
    );
    assert!(err.to_string().contains("index 8"), "{err}");
    assert!(squares.set(9, 0).is_err());
}

#[test]
fn an_array_guard_gives_slice_like_access_under_one_hold() {
    let data = Array::new(&[1i16, 2, 3]).unwrap();
    let child = {
        let data = data.clone();
        Process::spawn(move || {
            let mut all = data.lock().map_err(|e| e.to_string())?;
            let sum: i16 = all.to_vec().iter().sum();
            all.copy_from_slice(&[sum, sum, sum])
                .map_err(|e| e.to_string())?;
            Ok::<Option<i16>, String>(all.get(3))
        })
        .unwrap()
    };
    assert_eq!(child.join().unwrap().unwrap(), None);
    let mut all = data.lock().unwrap();
    assert_eq!(all.to_vec(), [6, 6, 6]);
    assert!(all.copy_from_slice(&[1, 2]).is_err());
    all.set(0, -1).unwrap();
    assert_eq!(all.get(0), Some(-1));
    drop(all);
    let empty = Array::<u8>::new(&[]).unwrap();
    assert!(empty.is_empty());
    assert_eq!(empty.to_vec().unwrap(), Vec::<u8>::new());
}

#[test]
fn a_handle_of_another_element_type_is_refused() {
    let value = Value::new(1u32).unwrap();
    let err = Value::<u64>::attach(&value.handle().unwrap()).unwrap_err();
    assert!(matches!(err, SyncError::BadHandle { .. }), "{err:?}");
    assert!(Array::<u32>::attach(&value.handle().unwrap()).is_err());
    let same = Value::<u32>::attach(&value.handle().unwrap()).unwrap();
    same.set(5).unwrap();
    assert_eq!(value.get().unwrap(), 5);
    let array = Array::new(&[1u8, 2]).unwrap();
    assert_eq!(
        Array::<u8>::attach(&array.handle().unwrap())
            .unwrap()
            .to_vec()
            .unwrap(),
        [1, 2]
    );
}
