//! Items by reference: `map`, `map_chunked`, `imap`, `imap_unordered` and `map_async` take
//! `&Vec<A>`, `&[A]`, `&[A; N]`, `slice.iter()` and `Refs(iterator of &A)` as well as owned
//! items, and owned items whose type only the task tells still infer.
//! (The mistakes that must not compile are `compile_fail` examples in `src/task_arg.rs`.)

#![allow(clippy::unwrap_used)] // In tests a failed unwrap is a failed test, with its location.

use std::collections::BTreeMap;

use proc_pool::{Pool, Refs};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

fn square(x: u64) -> u64 {
    x * x
}

fn shout(text: String) -> String {
    text.to_uppercase()
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct Point {
    x: i64,
    y: i64,
}

fn norm1(p: Point) -> i64 {
    p.x.abs() + p.y.abs()
}

#[test]
fn owned_items_infer_as_before() {
    let pool = Pool::new(2).unwrap();
    assert_eq!(pool.map(square, 1..=4).unwrap(), [1, 4, 9, 16]);
    assert_eq!(pool.map(square, vec![1, 2]).unwrap(), [1, 4]);
    assert_eq!(pool.map(square, [3, 4]).unwrap(), [9, 16]);
    assert_eq!(pool.map(square, Vec::new()).unwrap(), Vec::<u64>::new());
    // Items whose type only the task tells.
    let parsed = "1 2 3".split(' ').map(|s| s.parse().unwrap());
    assert_eq!(pool.map(square, parsed).unwrap(), [1, 4, 9]);
    let collected = "5,6"
        .split(',')
        .map(str::parse)
        .collect::<Result<Vec<_>, _>>();
    assert_eq!(pool.map(square, collected.unwrap()).unwrap(), [25, 36]);
    let converted = [1u32, 2].into_iter().map(Into::into);
    assert_eq!(pool.map(square, converted).unwrap(), [1, 4]);
    // Closures, annotated or not.
    assert_eq!(pool.map(|x: u64| x + 1, 0..3).unwrap(), [1, 2, 3]);
    assert_eq!(pool.map(|x| x * 2, 0..3).unwrap(), [0, 2, 4]);
}

#[test]
fn map_takes_items_by_reference_and_leaves_them_to_the_caller() {
    let pool = Pool::new(2).unwrap();
    let numbers: Vec<u64> = (1..=6).collect();
    let squares: Vec<u64> = numbers.iter().map(|x| x * x).collect();
    assert_eq!(pool.map(square, &numbers).unwrap(), squares);
    assert_eq!(pool.map(square, &numbers[2..4]).unwrap(), squares[2..4]);
    assert_eq!(pool.map(square, numbers.iter()).unwrap(), squares);
    assert_eq!(pool.map(square, &[7, 8]).unwrap(), [49, 64]);
    let even = Refs(numbers.iter().filter(|x| *x % 2 == 0));
    assert_eq!(pool.map(square, even).unwrap(), [4, 16, 36]);
    assert_eq!(numbers.len(), 6); // still ours

    let words = vec!["ab".to_string(), "c".to_string()];
    assert_eq!(pool.map(shout, &words).unwrap(), ["AB", "C"]);
    let by_key: BTreeMap<u8, String> = [(2, "y".into()), (1, "x".into())].into();
    assert_eq!(pool.map(shout, Refs(by_key.values())).unwrap(), ["X", "Y"]);

    let points = vec![Point { x: 1, y: -2 }, Point { x: -3, y: 4 }];
    assert_eq!(pool.map(norm1, &points).unwrap(), [3, 7]);
    assert_eq!(points[1], Point { x: -3, y: 4 });
}

#[test]
fn every_map_flavour_takes_borrowed_items() {
    let pool = Pool::new(2).unwrap();
    let numbers: Vec<u64> = (0..500).collect();
    let squares: Vec<u64> = numbers.iter().map(|x| x * x).collect();

    assert_eq!(pool.map_chunked(square, &numbers, 7).unwrap(), squares);
    assert_eq!(
        pool.map_chunked(square, numbers.iter(), 1000).unwrap(),
        squares
    );

    let ordered: Vec<u64> = pool
        .imap(square, &numbers)
        .chunksize(9)
        .map(Result::unwrap)
        .collect();
    assert_eq!(ordered, squares);

    let mut unordered: Vec<u64> = pool
        .imap_unordered(square, numbers.iter())
        .map(Result::unwrap)
        .collect();
    unordered.sort_unstable();
    assert_eq!(unordered, squares);

    let pending = pool.map_async(square, &numbers[..]).unwrap();
    assert_eq!(pending.get().unwrap(), squares);
}

/// A caller's own generic wrapper, bounded the way the pool's methods used to be, compiles
/// against the new bounds.
fn generic_map<A, R>(pool: &Pool, task: fn(A) -> R, owned: Vec<A>, borrowed: &[A], one: A) -> Vec<R>
where
    A: Serialize + DeserializeOwned,
    R: Serialize + DeserializeOwned + Send + 'static,
{
    let mut values = pool.map(task, owned).unwrap();
    values.extend(pool.map(task, borrowed).unwrap());
    values.extend(pool.imap(task, borrowed.iter()).map(Result::unwrap));
    values.push(pool.apply(task, one).unwrap());
    values
}

#[test]
fn generic_callers_bounded_by_serde_still_compile() {
    let pool = Pool::new(1).unwrap();
    assert_eq!(generic_map(&pool, square, vec![2], &[3], 4), [4, 9, 9, 16]);
}
