//! Pipes are close-on-exec, and the non-blocking variant does not block.

#![allow(clippy::unwrap_used)] // In tests a failed unwrap is a failed test, with its location.

mod common;

use std::fs::File;
use std::io::{ErrorKind, Read, Write};
use std::os::fd::{AsRawFd, OwnedFd};

fn fd_flags(fd: &OwnedFd) -> (i32, i32) {
    // SAFETY: F_GETFD and F_GETFL only read flags of a descriptor we own.
    unsafe {
        (
            libc::fcntl(fd.as_raw_fd(), libc::F_GETFD),
            libc::fcntl(fd.as_raw_fd(), libc::F_GETFL),
        )
    }
}

#[test]
fn both_ends_are_close_on_exec() {
    let (read, write) = fork_sys::pipe().unwrap();
    for end in [&read, &write] {
        let (fd_flags, status_flags) = fd_flags(end);
        assert_ne!(
            fd_flags & libc::FD_CLOEXEC,
            0,
            "FD_CLOEXEC missing on fd {}",
            end.as_raw_fd()
        );
        assert_eq!(
            status_flags & libc::O_NONBLOCK,
            0,
            "blocking pipe is non-blocking"
        );
        assert!(fork_sys::is_cloexec(end).unwrap());
    }
}

#[test]
fn nonblocking_pipe_is_close_on_exec_and_never_blocks() {
    let (read, write) = fork_sys::pipe_nonblocking().unwrap();
    for end in [&read, &write] {
        let (fd_flags, status_flags) = fd_flags(end);
        assert_ne!(fd_flags & libc::FD_CLOEXEC, 0);
        assert_ne!(status_flags & libc::O_NONBLOCK, 0);
    }
    let mut reader = File::from(read);
    let err = reader.read(&mut [0u8; 8]).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::WouldBlock);

    let mut writer = File::from(write);
    writer.write_all(b"ping").unwrap();
    let mut buf = [0u8; 4];
    reader.read_exact(&mut buf).unwrap();
    assert_eq!(&buf, b"ping");

    fork_sys::set_nonblocking(&reader, false).unwrap();
    let (_, status_flags) = fd_flags(&OwnedFd::from(reader));
    assert_eq!(status_flags & libc::O_NONBLOCK, 0);
}

#[cfg(target_os = "linux")]
#[test]
fn pipe_size_can_grow_to_one_mebibyte() {
    let (read, _write) = fork_sys::pipe().unwrap();
    let size = fork_sys::set_pipe_size(&read, 1 << 20).unwrap();
    assert!(size >= 1 << 20, "got {size}");
}

#[cfg(target_os = "linux")]
#[test]
fn pidfds_are_close_on_exec_too() {
    let child = fork_sys::ChildHandle::new(common::fork_child(|| 0));
    let pidfd = child.exit_fd().expect("pidfd_open works on this kernel");
    assert!(fork_sys::is_cloexec(pidfd).unwrap());
    let mut child = child;
    child.wait().unwrap();
}

#[test]
fn a_write_end_watched_for_hang_up_wakes_only_when_the_reader_closes() {
    use fork_sys::Interest;
    use std::os::fd::AsFd;
    use std::time::Duration;
    let (read, write) = fork_sys::pipe().unwrap();
    // Room to write is not a hang-up: the wait times out.
    let quiet = fork_sys::poll(
        &[(write.as_fd(), Interest::HangUp)],
        Some(Duration::from_millis(50)),
    )
    .unwrap();
    assert!(!quiet[0].is_ready(), "{quiet:?}");
    drop(read);
    let gone = fork_sys::poll(
        &[(write.as_fd(), Interest::HangUp)],
        Some(Duration::from_secs(5)),
    )
    .unwrap();
    assert!(gone[0].hung_up, "{gone:?}");
    // A socket's peer closing is one too.
    let (mine, peer) = fork_sys::socketpair().unwrap();
    drop(peer);
    let gone = fork_sys::poll(
        &[(mine.as_fd(), Interest::HangUp)],
        Some(Duration::from_secs(5)),
    )
    .unwrap();
    assert!(gone[0].hung_up, "{gone:?}");
}

#[test]
fn write_all_writes_every_byte_and_stops_at_a_full_nonblocking_pipe() {
    // Blocking: a write larger than the pipe completes while a reader drains it.
    let (read, write) = fork_sys::pipe().unwrap();
    let sent: Vec<u8> = (0..300_000u32).map(|i| (i % 251) as u8).collect();
    let reader = std::thread::spawn(move || {
        let mut got = Vec::new();
        File::from(read).read_to_end(&mut got).unwrap();
        got
    });
    fork_sys::write_all(&write, &sent).unwrap();
    drop(write);
    assert_eq!(reader.join().unwrap(), sent);

    // Non-blocking and nobody reading: it says WouldBlock once the pipe is full, and the
    // bytes that went in are all there, in order.
    let (read, write) = fork_sys::pipe_nonblocking().unwrap();
    let err = fork_sys::write_all(&write, &sent).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::WouldBlock);
    let mut got = Vec::new();
    let err = File::from(read).read_to_end(&mut got).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::WouldBlock);
    assert!(
        !got.is_empty() && got.len() < sent.len(),
        "{} bytes",
        got.len()
    );
    assert_eq!(got, sent[..got.len()]);
}

#[test]
fn close_closes_the_descriptor_and_the_reader_sees_the_end() {
    let (read, write) = fork_sys::pipe_nonblocking().unwrap();
    fork_sys::write_all(&write, b"last words").unwrap();
    let mut reader = File::from(read);
    let mut got = [0u8; 10];
    reader.read_exact(&mut got).unwrap();
    assert_eq!(&got, b"last words");
    // Still open: nothing to read yet. Closed: end of file.
    let err = reader.read(&mut got).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::WouldBlock);
    fork_sys::close(write);
    assert_eq!(
        reader.read(&mut got).unwrap(),
        0,
        "the write end is still open"
    );
}
