//! The typed duplex connection, across processes and against a broken peer.

#![allow(clippy::unwrap_used)] // In tests a failed unwrap is a failed test, with its location.

use std::fs::File;
use std::io::Write;
use std::time::{Duration, Instant};

use proc_core::codec::CodecError;
use proc_core::{Connection, ConnectionError, Process};

#[test]
fn requests_and_replies_cross_a_process_boundary() {
    let (mut parent, mut child) = proc_core::pipe::<Vec<u32>, u64>().unwrap();
    let p = Process::spawn(move || {
        let mut served = 0;
        // Serve until the parent hangs up.
        while let Ok(numbers) = child.recv() {
            child
                .send(&numbers.iter().map(|&n| u64::from(n)).sum())
                .unwrap();
            served += 1;
        }
        served
    })
    .unwrap();
    for n in 0..100u32 {
        parent.send(&(0..n).collect()).unwrap();
        assert_eq!(
            parent.recv().unwrap(),
            u64::from(n) * u64::from(n.saturating_sub(1)) / 2
        );
    }
    drop(parent);
    assert_eq!(p.join().unwrap(), 100);
}

#[test]
fn a_closed_peer_is_disconnected_on_both_recv_and_send() {
    let (mut parent, child) = proc_core::pipe::<String, String>().unwrap();
    let p = Process::spawn(move || drop(child)).unwrap();
    p.join().unwrap();
    assert!(matches!(parent.recv(), Err(ConnectionError::Disconnected)));
    assert!(matches!(
        parent.try_recv(),
        Err(ConnectionError::Disconnected)
    ));
    let err = parent.send(&"anyone?".to_string()).unwrap_err();
    assert!(matches!(err, ConnectionError::Disconnected), "{err:?}");
    assert_eq!(err.to_string(), "the other end of the connection is closed");
}

#[test]
fn recv_timeout_and_try_recv_wait_only_as_long_as_asked() {
    let (mut a, mut b) = proc_core::pipe::<u8, u8>().unwrap();
    assert_eq!(a.try_recv().unwrap(), None);
    let started = Instant::now();
    assert_eq!(a.recv_timeout(Duration::from_millis(100)).unwrap(), None);
    assert!(started.elapsed() >= Duration::from_millis(100));
    assert!(!a.poll(Duration::ZERO).unwrap());
    b.send(&7).unwrap();
    assert!(a.poll(Duration::from_secs(5)).unwrap());
    assert_eq!(a.recv_timeout(Duration::from_secs(5)).unwrap(), Some(7));
}

#[test]
fn a_frame_split_across_a_timeout_is_not_lost() {
    let (ours, theirs) = fork_sys::socketpair().unwrap();
    let mut conn: Connection<(), String> = Connection::from_fd(ours).unwrap();
    let mut frame = Vec::new();
    proc_core::codec::encode_frame(&"split in two".to_string(), &mut frame, 1024).unwrap();
    let mut raw = File::from(theirs);
    raw.write_all(&frame[..5]).unwrap();
    assert_eq!(conn.recv_timeout(Duration::from_millis(20)).unwrap(), None);
    raw.write_all(&frame[5..]).unwrap();
    assert_eq!(conn.recv().unwrap(), "split in two");
}

#[test]
fn oversize_values_are_refused_before_sending_and_the_stream_stays_in_step() {
    let (a, mut b) = proc_core::pipe::<Vec<u8>, Vec<u8>>().unwrap();
    let mut a = a.with_max_frame_len(100);
    let err = a.send(&vec![1; 1000]).unwrap_err();
    assert!(
        matches!(
            err,
            ConnectionError::Codec(CodecError::FrameTooLarge {
                len: 1003, // 3 bytes of varint length, then the 1000 bytes
                limit: 100
            })
        ),
        "{err:?}"
    );
    a.send(&vec![2; 10]).unwrap();
    assert_eq!(b.recv().unwrap(), vec![2; 10]);
}

#[test]
fn garbage_on_the_wire_is_a_clear_error_not_a_panic_or_a_hang() {
    let cases: [(&[u8], &str); 3] = [
        (&[0xff, 0xff, 0xff, 0x7f], "over the 1048576-byte limit"),
        (
            &[3, 0, 0, 0, 0xff, 0xff, 0xff],
            "is not a valid alloc::string::String",
        ),
        (
            &[10, 0, 0, 0, 1, 2],
            "stream ended inside a frame: expected 14 bytes, got 6",
        ),
    ];
    for (bytes, message) in cases {
        let (ours, theirs) = fork_sys::socketpair().unwrap();
        let mut conn: Connection<(), String> = Connection::from_fd(ours)
            .unwrap()
            .with_max_frame_len(1 << 20);
        File::from(theirs).write_all(bytes).unwrap(); // then closed: end-of-file
        let err = conn.recv().unwrap_err();
        assert!(matches!(err, ConnectionError::Codec(_)), "{err:?}");
        assert!(
            err.to_string().contains(message),
            "{err} should mention {message}"
        );
    }
}

#[test]
fn a_large_frame_trickling_in_does_not_stretch_recv_timeout() {
    let (ours, theirs) = fork_sys::socketpair().unwrap();
    let mut conn: Connection<(), Vec<u8>> = Connection::from_fd(ours).unwrap();
    let mut frame = Vec::new();
    proc_core::codec::encode_frame(&vec![5u8; 1 << 20], &mut frame, 1 << 30).unwrap();
    let writer = std::thread::spawn(move || {
        let mut raw = File::from(theirs);
        // 20 pieces, 25 ms apart: half a second of steady arrival.
        for piece in frame.chunks(frame.len() / 20 + 1) {
            raw.write_all(piece).unwrap();
            std::thread::sleep(Duration::from_millis(25));
        }
        raw
    });
    let started = Instant::now();
    assert_eq!(conn.recv_timeout(Duration::from_millis(60)).unwrap(), None);
    let waited = started.elapsed();
    assert!(
        waited < Duration::from_millis(300),
        "a 60 ms receive took {waited:?}"
    );
    // Nothing read so far was lost.
    assert_eq!(
        conn.recv_timeout(Duration::from_secs(30))
            .unwrap()
            .map(|v| v.len()),
        Some(1 << 20)
    );
    drop(writer.join().unwrap());
}

/// A huge frame written in one go (data available on every read) must not keep a 20 ms
/// receive reading it to the end.
#[test]
fn a_huge_frame_streaming_in_does_not_stretch_recv_timeout() {
    let (ours, theirs) = fork_sys::socketpair().unwrap();
    let mut conn: Connection<(), Vec<u8>> = Connection::from_fd(ours)
        .unwrap()
        .with_max_frame_len(1 << 30);
    let len = 256usize << 20;
    let mut frame = Vec::with_capacity(len + 4);
    frame.extend_from_slice(&(len as u32).to_le_bytes());
    frame.resize(len + 4, 0);
    let writer = std::thread::spawn(move || {
        // Fails with EPIPE once the receiver gives up and drops its end.
        let _ = File::from(theirs).write_all(&frame);
    });
    std::thread::sleep(Duration::from_millis(20)); // let the writer fill the socket
    let started = Instant::now();
    assert_eq!(conn.recv_timeout(Duration::from_millis(20)).unwrap(), None);
    let waited = started.elapsed();
    assert!(
        waited < Duration::from_millis(400),
        "a 20 ms receive took {waited:?}"
    );
    drop(conn);
    writer.join().unwrap();
}

/// Linux only: there a Unix socket buffers about 200 KiB, so the frame can arrive whole before
/// anyone reads; macOS buffers 8 KiB and the send would wait for a reader.
#[cfg(target_os = "linux")]
#[test]
fn try_recv_and_poll_see_a_frame_larger_than_one_read_that_has_already_arrived() {
    let (ours, theirs) = fork_sys::socketpair().unwrap();
    let mut conn: Connection<(), Vec<u8>> = Connection::from_fd(ours).unwrap();
    let mut peer: Connection<Vec<u8>, ()> = Connection::from_fd(theirs).unwrap();
    // 100 KiB: more than one 64 KiB read, less than a Unix socket buffers by default, so the
    // whole frame is there before we look.
    peer.send(&vec![1u8; 100 << 10]).unwrap();
    assert!(conn.poll(Duration::ZERO).unwrap());
    assert_eq!(conn.try_recv().unwrap().map(|v| v.len()), Some(100 << 10));
}

#[test]
fn send_to_a_gone_peer_is_disconnected_even_with_sigpipe_at_its_default() {
    let outcome = Process::spawn(|| {
        // As in a program that restored SIGPIPE's default: a plain write would kill us here.
        fork_sys::exec::reset_signals_for_exec().unwrap();
        let (mut a, b) = proc_core::pipe::<u8, u8>().unwrap();
        drop(b);
        match a.send(&1) {
            Err(ConnectionError::Disconnected) => "disconnected".to_string(),
            other => format!("{other:?}"),
        }
    })
    .unwrap()
    .join()
    .unwrap();
    assert_eq!(outcome, "disconnected");
}
