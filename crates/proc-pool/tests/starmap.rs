//! `starmap` and `starmap_async`: functions of several arguments, the items tuples of them.

#![allow(clippy::unwrap_used)] // In tests a failed unwrap is a failed test, with its location.

use proc_pool::{Pool, TaskError};

fn power(base: u64, exponent: u32) -> u64 {
    base.pow(exponent)
}

fn one(x: i32) -> i32 {
    -x
}

#[allow(clippy::too_many_arguments)]
fn eight(a: u8, b: u16, c: u32, d: u64, e: i8, f: i16, g: String, h: bool) -> String {
    format!("{a}{b}{c}{d}{e}{f}{g}{h}")
}

fn fails_on_zero(a: u64, b: u64) -> u64 {
    if b == 0 {
        panic!("{a} / 0");
    }
    a / b
}

#[test]
fn starmap_spreads_each_tuple_over_the_arguments_in_input_order() {
    let pool = Pool::new(2).unwrap();
    let items: Vec<(u64, u32)> = (0..100).map(|i| (i, 2)).collect();
    let squares = pool.starmap(power, &items).unwrap();
    assert_eq!(squares, (0..100).map(|i| i * i).collect::<Vec<_>>());
    // By value, of one argument (a 1-tuple), and a closure that captures nothing.
    assert_eq!(pool.starmap(one, vec![(1,), (2,)]).unwrap(), [-1, -2]);
    let join = |a: String, b: String| a + &b;
    let words = [("a".to_string(), "b".to_string()), ("c".into(), "d".into())];
    assert_eq!(pool.starmap(join, &words).unwrap(), ["ab", "cd"]);
    let row = (1u8, 2u16, 3u32, 4u64, -5i8, -6i16, "x".to_string(), true);
    assert_eq!(pool.starmap(eight, [row]).unwrap(), ["1234-5-6xtrue"]);
    assert!(
        pool.starmap(power, Vec::<(u64, u32)>::new())
            .unwrap()
            .is_empty()
    );
}

#[test]
fn a_failing_item_fails_starmap_like_map_and_starmap_async_waits_later() {
    let pool = Pool::new(2).unwrap();
    let err = pool
        .starmap(fails_on_zero, [(4, 2), (1, 0), (9, 3)])
        .unwrap_err();
    assert!(
        matches!(&err, TaskError::Panicked { message, .. } if message == "1 / 0"),
        "{err}"
    );
    let pending = pool
        .starmap_async(fails_on_zero, [(8, 2), (9, 3)], Some(1))
        .unwrap();
    assert_eq!(pending.get().unwrap(), [4, 3]);
    let failed = pool.starmap_async(fails_on_zero, [(8, 0)], None).unwrap();
    assert!(matches!(failed.get(), Err(TaskError::Panicked { .. })));
}

#[test]
fn starmap_runs_on_fork_server_workers_too() {
    let pool = Pool::builder()
        .workers(2)
        .start_method(proc_pool::StartMethod::ForkServer)
        .build()
        .unwrap();
    let values = pool.starmap(power, [(2, 3), (5, 2)]).unwrap();
    assert_eq!(values, [8, 25]);
}
