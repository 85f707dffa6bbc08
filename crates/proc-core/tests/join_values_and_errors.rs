//! What `join` hands back: the value, or an error that says how the child failed.

#![allow(clippy::unwrap_used)] // In tests a failed unwrap is a failed test, with its location.

use std::time::{Duration, Instant};

use proc_core::{Process, ProcessError, Signal};
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct Record {
    id: u32,
    label: String,
    tags: Vec<String>,
    score: Option<f64>,
}

#[test]
fn values_of_several_types_round_trip() {
    assert_eq!(Process::spawn(|| 42u8).unwrap().join().unwrap(), 42);
    assert_eq!(Process::spawn(|| -7i64).unwrap().join().unwrap(), -7);
    assert_eq!(
        Process::spawn(|| u128::MAX).unwrap().join().unwrap(),
        u128::MAX
    );
    assert_eq!(
        Process::spawn(|| "héllo".to_string())
            .unwrap()
            .join()
            .unwrap(),
        "héllo"
    );
    Process::spawn(|| ()).unwrap().join().unwrap();

    let records: Vec<Record> = (0..1000)
        .map(|id| Record {
            id,
            label: format!("record {id}"),
            tags: vec!["a".into(); (id % 4) as usize],
            score: (id % 3 == 0).then_some(id as f64 / 3.0),
        })
        .collect();
    let expected = records.clone();
    // The closure captures the parent's data: fork copied it.
    assert_eq!(
        Process::spawn(move || records).unwrap().join().unwrap(),
        expected
    );
}

#[test]
fn a_64_mib_value_round_trips() {
    let p = Process::spawn(|| {
        (0..64 * 1024 * 1024)
            .map(|i: u32| (i % 251) as u8)
            .collect::<Vec<u8>>()
    })
    .unwrap();
    let bytes = p.join().unwrap();
    assert_eq!(bytes.len(), 64 * 1024 * 1024);
    assert!(
        bytes
            .iter()
            .enumerate()
            .all(|(i, &b)| b == (i as u32 % 251) as u8)
    );
}

#[test]
fn a_panic_comes_back_with_its_message_and_exit_code_1() {
    let mut p = Process::builder()
        .name("panicker")
        .spawn(|| -> u32 { panic!("bad input: {}", 17) })
        .unwrap();
    let pid = p.pid();
    assert!(p.join_timeout(Duration::from_secs(30)).is_err_and(|err| {
        assert!(
            matches!(&err, ProcessError::Panicked { message, pid: p2, name: Some(n) }
                if message == "bad input: 17" && *p2 == pid && n == "panicker"),
            "{err:?}"
        );
        assert_eq!(
            err.to_string(),
            format!("process \"panicker\" (pid {pid}) panicked: bad input: 17")
        );
        true
    }));
    assert_eq!(p.exitcode(), Some(1));
}

#[test]
fn exit_before_returning_is_exited_with_the_code() {
    let p = Process::spawn(|| -> u32 { std::process::exit(3) }).unwrap();
    let pid = p.pid();
    let err = p.join().unwrap_err();
    assert!(
        matches!(err, ProcessError::Exited { code: 3, .. }),
        "{err:?}"
    );
    assert_eq!(
        err.to_string(),
        format!("process {pid} exited with code 3 before returning a value")
    );
}

#[test]
fn deaths_by_signal_are_signaled_with_the_right_signal() {
    type Body = fn() -> u32;
    let cases: [(Body, Signal); 3] = [
        (
            || {
                let _ = fork_sys::kill(fork_sys::getpid(), Signal::KILL);
                0
            },
            Signal::KILL,
        ),
        (
            || {
                // SAFETY: none, deliberately: a store to the never-mapped first page faults,
                // which is the point of the test.
                unsafe { std::ptr::dangling_mut::<u64>().write_volatile(1) };
                0
            },
            Signal::SEGV,
        ),
        (|| std::process::abort(), Signal::ABRT),
    ];
    for (body, expected) in cases {
        let err = Process::spawn(body).unwrap().join().unwrap_err();
        match err {
            ProcessError::Signaled { signal, .. } => assert_eq!(signal, expected, "{err}"),
            other => panic!("expected death by {expected}, got {other:?}"),
        }
    }
}

#[test]
fn join_timeout_says_not_yet_then_returns_the_value() {
    let mut p = Process::spawn(|| {
        std::thread::sleep(Duration::from_millis(500));
        "done".to_string()
    })
    .unwrap();
    let started = Instant::now();
    assert_eq!(p.join_timeout(Duration::from_millis(100)).unwrap(), None);
    assert!(started.elapsed() >= Duration::from_millis(100));
    assert!(p.is_alive());
    assert_eq!(p.exitcode(), None);
    assert_eq!(
        p.join_timeout(Duration::from_secs(30)).unwrap().as_deref(),
        Some("done")
    );
    assert!(started.elapsed() < Duration::from_secs(20));
    assert!(!p.is_alive());
    assert_eq!(p.exitcode(), Some(0));
    // The value was handed out once.
    assert!(matches!(
        p.join_timeout(Duration::ZERO),
        Err(ProcessError::AlreadyJoined { .. })
    ));
}

#[test]
fn terminate_and_kill_end_a_sleeping_child() {
    for (how, code) in [("terminate", -15), ("kill", -9)] {
        let mut p = Process::spawn(|| std::thread::sleep(Duration::from_secs(60))).unwrap();
        assert!(p.is_alive());
        if how == "terminate" {
            p.terminate().unwrap();
        } else {
            p.kill().unwrap();
        }
        let err = p.join_timeout(Duration::from_secs(30)).unwrap_err();
        assert!(
            matches!(err, ProcessError::Signaled { .. }),
            "{how}: {err:?}"
        );
        assert_eq!(p.exitcode(), Some(code), "{how}");
        // Signalling a reaped child is a no-op, never a shot at a recycled pid.
        p.kill().unwrap();
    }
}

#[test]
fn a_value_over_the_result_limit_is_a_codec_error_naming_both_sizes() {
    let p = Process::builder()
        .max_result_len(1000)
        .spawn(|| vec![0u8; 5000])
        .unwrap();
    let err = p.join().unwrap_err();
    assert!(
        err.to_string()
            // 1 byte of variant tag, 3 of varint length, then the 5000 bytes.
            .ends_with("result frame: frame of 5004 bytes is over the 1000-byte limit"),
        "{err}"
    );
}

#[test]
fn values_around_the_stack_encoded_size_round_trip_and_keep_the_limit() {
    // A child encodes a small report on its stack and a larger one on the heap; its parent
    // reads a first 512 bytes into its stack and decodes a frame that fits from there; a
    // child writes a frame of up to a page without ringing first. The sizes on both sides of
    // each boundary (frames of 256, 512 and 4096 bytes) arrive whole.
    for len in (230..290)
        .chain(490..530)
        .chain(4080..4100)
        .chain([0, 1, 70_000])
    {
        let text: String = (0..len)
            .map(|i| char::from(b'a' + (i % 26) as u8))
            .collect();
        let expected = text.clone();
        assert_eq!(
            Process::spawn(move || text).unwrap().join().unwrap(),
            expected
        );
    }
    // The limit holds for a value small enough for the stack.
    let err = Process::builder()
        .max_result_len(20)
        .spawn(|| vec![7u8; 100])
        .unwrap()
        .join()
        .unwrap_err();
    assert!(
        err.to_string()
            .ends_with("result frame: frame of 102 bytes is over the 20-byte limit"),
        "{err}"
    );
}

#[test]
fn reports_larger_than_an_empty_pipe_are_read_while_the_child_writes() {
    // A parent sleeps on its child's exit until the child says a report too large for an
    // empty pipe is coming; one that did not hear it would wait for an exit that never comes
    // (the child blocked writing). Sizes just past a page and far past a pipe's 64 KiB.
    for len in [4097usize, 5000, 1 << 20] {
        let mut p = Process::spawn(move || vec![9u8; len]).unwrap();
        let value = p.join_timeout(Duration::from_secs(20)).unwrap();
        assert_eq!(value.map(|v| v.len()), Some(len), "a {len}-byte report");
    }
}

#[test]
fn a_value_that_fails_to_serialize_is_a_codec_error() {
    #[derive(Debug)]
    struct Refuses;
    impl Serialize for Refuses {
        fn serialize<S: serde::Serializer>(&self, _: S) -> Result<S::Ok, S::Error> {
            Err(serde::ser::Error::custom("this value refuses to be sent"))
        }
    }
    impl<'de> Deserialize<'de> for Refuses {
        fn deserialize<D: serde::Deserializer<'de>>(_: D) -> Result<Self, D::Error> {
            Err(serde::de::Error::custom("unreachable"))
        }
    }
    let err = Process::spawn(|| Refuses).unwrap().join().unwrap_err();
    assert!(matches!(err, ProcessError::Codec { .. }), "{err:?}");
    assert!(
        err.to_string().contains("this value refuses to be sent"),
        "{err}"
    );
}

#[cfg(target_os = "linux")]
#[test]
fn the_name_becomes_the_childs_thread_name() {
    let comm = Process::builder()
        .name("prockit-worker-with-a-long-name")
        .spawn(|| std::fs::read_to_string("/proc/self/comm").unwrap())
        .unwrap()
        .join()
        .unwrap();
    assert_eq!(comm.trim_end(), "prockit-worker-");
}

#[test]
fn wait_any_returns_the_first_to_finish_even_when_it_sends_a_large_value() {
    let mut procs = vec![
        Process::spawn(|| {
            std::thread::sleep(Duration::from_secs(60));
            Vec::new()
        })
        .unwrap(),
        // 4 MiB: far more than a pipe holds, so this child finishes only if wait_any reads.
        Process::spawn(|| vec![9u8; 4 << 20]).unwrap(),
    ];
    let first = proc_core::wait_any(&mut procs, Some(Duration::from_secs(30))).unwrap();
    assert_eq!(first, Some(1));
    assert_eq!(procs.remove(1).join().unwrap().len(), 4 << 20);
    assert_eq!(
        proc_core::wait_any(&mut procs, Some(Duration::from_millis(50))).unwrap(),
        None
    );
    procs[0].kill().unwrap();
    assert_eq!(proc_core::wait_any(&mut procs, None).unwrap(), Some(0));
}

/// A `Serialize` impl that panics runs after `catch_unwind` around the closure; it must not
/// unwind out of the child into the parent's code (the test would then run twice).
#[test]
fn a_serialize_impl_that_panics_is_a_codec_error_and_the_child_stays_contained() {
    #[derive(Debug)]
    struct PanicsWhenSent;
    impl Serialize for PanicsWhenSent {
        fn serialize<S: serde::Serializer>(&self, _: S) -> Result<S::Ok, S::Error> {
            panic!("refusing to be sent");
        }
    }
    impl<'de> Deserialize<'de> for PanicsWhenSent {
        fn deserialize<D: serde::Deserializer<'de>>(_: D) -> Result<Self, D::Error> {
            Err(serde::de::Error::custom("unreachable"))
        }
    }
    let me = fork_sys::getpid();
    let mut p = Process::spawn(|| PanicsWhenSent).unwrap();
    let err = p.join_timeout(Duration::from_secs(30)).unwrap_err();
    // Only the parent gets here: had the panic escaped, the child would be running this too.
    assert_eq!(fork_sys::getpid(), me);
    assert!(matches!(err, ProcessError::Codec { .. }), "{err:?}");
    assert!(
        err.to_string()
            .contains("Serialize panicked: refusing to be sent"),
        "{err}"
    );
    assert_eq!(p.exitcode(), Some(1));
}

#[test]
fn wait_any_on_nothing_returns_at_once() {
    let mut none: Vec<Process<u8>> = Vec::new();
    assert_eq!(proc_core::wait_any(&mut none, None).unwrap(), None);
}
