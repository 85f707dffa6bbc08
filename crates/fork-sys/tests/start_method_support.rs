//! What the fork server and exec'd workers are built on: descriptors over sockets, counters
//! another process can attach to, dying with the parent *process*, served child handles,
//! thread counts and the shared monotonic clock.

#![allow(clippy::unwrap_used)] // In tests a failed unwrap is a failed test, with its location.

mod common;

use std::fs::File;
#[cfg(target_os = "linux")]
use std::io::Read;
use std::io::{ErrorKind, Write};
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use common::{fork_child, read_all};
use fork_sys::{ChildHandle, ExitStatus, Interest, Pid, SharedAtomics, Signal, StatusLost};

// ---------------------------------------------------------------------------------------------
// send_with_fds / recv_with_fds

/// Polls `fd` for reading for at most `limit`; its readiness.
fn readiness(fd: BorrowedFd<'_>, limit: Duration) -> fork_sys::Readiness {
    fork_sys::poll(&[(fd, Interest::Read)], Some(limit)).unwrap()[0]
}

/// Whether the pipe `read` reaches end-of-file (no writer left) within 5 s.
fn at_eof(read: &OwnedFd) -> bool {
    readiness(read.as_fd(), Duration::from_secs(5)).is_ready()
        && rustix::io::read(read, &mut [0u8; 8]) == Ok(0)
}

#[test]
fn three_descriptors_travel_with_the_bytes_and_work_on_the_other_side() {
    let (a, b) = fork_sys::socketpair().unwrap();
    let pipes: Vec<(OwnedFd, OwnedFd)> = (0..3).map(|_| fork_sys::pipe().unwrap()).collect();
    let write_ends: Vec<BorrowedFd<'_>> = pipes.iter().map(|(_, w)| w.as_fd()).collect();
    fork_sys::send_with_fds(a.as_fd(), b"three pipes", &write_ends).unwrap();
    drop(write_ends);
    // Only the received copies can write into the pipes from here on.
    let read_ends: Vec<OwnedFd> = pipes.into_iter().map(|(r, _)| r).collect();

    let mut buf = [0u8; 64];
    let (n, fds) = fork_sys::recv_with_fds(b.as_fd(), &mut buf, 3).unwrap();
    assert_eq!(&buf[..n], b"three pipes");
    assert_eq!(fds.len(), 3);
    for (i, (fd, read_end)) in fds.into_iter().zip(read_ends).enumerate() {
        assert!(
            fork_sys::is_cloexec(&fd).unwrap(),
            "received fd {i} is inheritable"
        );
        let mut writer = File::from(fd);
        writer.write_all(format!("through {i}").as_bytes()).unwrap();
        drop(writer);
        // End-of-file proves the received fd was the pipe's last writer, and is now closed.
        assert_eq!(read_all(read_end), format!("through {i}").into_bytes());
    }
}

#[test]
fn a_large_message_is_sent_whole_with_its_descriptor_first() {
    let (a, b) = fork_sys::socketpair().unwrap();
    let (pipe_read, pipe_write) = fork_sys::pipe().unwrap();
    // Far more than a socket buffer: the rest follows the first sendmsg in plain sends.
    let payload: Vec<u8> = (0..4 << 20).map(|i: u32| (i % 251) as u8).collect();
    let expected = payload.clone();
    let receiver = std::thread::spawn(move || {
        let mut got = Vec::new();
        let mut buf = vec![0u8; 64 << 10];
        let (n, mut fds) = fork_sys::recv_with_fds(b.as_fd(), &mut buf, 1).unwrap();
        got.extend_from_slice(&buf[..n]);
        loop {
            let (n, more) = fork_sys::recv_with_fds(b.as_fd(), &mut buf, 1).unwrap();
            assert!(more.is_empty(), "descriptors came again with a later read");
            if n == 0 {
                break;
            }
            got.extend_from_slice(&buf[..n]);
        }
        (got, fds.pop())
    });
    fork_sys::send_with_fds(a.as_fd(), &payload, &[pipe_write.as_fd()]).unwrap();
    drop(a);
    drop(pipe_write);
    let (got, fd) = receiver.join().unwrap();
    assert_eq!(got.len(), expected.len());
    assert!(got == expected, "the bytes arrived changed");
    File::from(fd.expect("the descriptor did not arrive"))
        .write_all(b"ok")
        .unwrap();
    assert_eq!(read_all(pipe_read), b"ok");
}

#[test]
fn more_descriptors_than_max_fds_is_an_error_and_closes_them() {
    let (a, b) = fork_sys::socketpair().unwrap();
    let pipes: Vec<(OwnedFd, OwnedFd)> = (0..3).map(|_| fork_sys::pipe().unwrap()).collect();
    let write_ends: Vec<BorrowedFd<'_>> = pipes.iter().map(|(_, w)| w.as_fd()).collect();
    fork_sys::send_with_fds(a.as_fd(), b"x", &write_ends).unwrap();
    drop(write_ends);
    let read_ends: Vec<OwnedFd> = pipes.into_iter().map(|(r, _)| r).collect();

    let err = fork_sys::recv_with_fds(b.as_fd(), &mut [0u8; 8], 1).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::InvalidData, "{err}");
    assert!(err.to_string().contains('1'), "{err}");
    // Every copy that arrived (or did not fit) is closed: each pipe has no writer left.
    for read_end in &read_ends {
        assert!(at_eof(read_end), "a received descriptor was left open");
    }
}

#[test]
fn zero_max_fds_refuses_descriptors_too() {
    let (a, b) = fork_sys::socketpair().unwrap();
    let (read, write) = fork_sys::pipe().unwrap();
    fork_sys::send_with_fds(a.as_fd(), b"x", &[write.as_fd()]).unwrap();
    drop(write);
    let err = fork_sys::recv_with_fds(b.as_fd(), &mut [0u8; 8], 0).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::InvalidData, "{err}");
    assert!(at_eof(&read), "the received descriptor was left open");
}

#[test]
fn end_of_file_is_zero_bytes_and_no_descriptors() {
    let (a, b) = fork_sys::socketpair().unwrap();
    drop(a);
    let (n, fds) = fork_sys::recv_with_fds(b.as_fd(), &mut [0u8; 8], 4).unwrap();
    assert_eq!((n, fds.len()), (0, 0));
}

#[test]
fn plain_bytes_arrive_without_descriptors() {
    let (a, b) = fork_sys::socketpair().unwrap();
    fork_sys::send_with_fds(a.as_fd(), b"just bytes", &[]).unwrap();
    let mut buf = [0u8; 32];
    let (n, fds) = fork_sys::recv_with_fds(b.as_fd(), &mut buf, 2).unwrap();
    assert_eq!((&buf[..n], fds.len()), (&b"just bytes"[..], 0));
}

#[test]
fn descriptors_without_bytes_are_refused() {
    let (a, _b) = fork_sys::socketpair().unwrap();
    let err = fork_sys::send_with_fds(a.as_fd(), b"", &[a.as_fd()]).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::InvalidInput);
}

#[test]
fn a_non_blocking_receiver_with_nothing_there_would_block() {
    let (_a, b) = fork_sys::socketpair().unwrap();
    fork_sys::set_nonblocking(&b, true).unwrap();
    let err = fork_sys::recv_with_fds(b.as_fd(), &mut [0u8; 8], 1).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::WouldBlock);
}

// ---------------------------------------------------------------------------------------------
// SharedAtomics::new_shareable / attach / fd

#[test]
fn a_child_attaches_to_counters_whose_fd_it_received() {
    let _guard = test_support::watchdog(Duration::from_secs(60), "shareable counters");
    let (parent_end, child_end) = fork_sys::socketpair().unwrap();
    // Forked before the counters exist, so the child cannot reach them through an inherited
    // mapping: only through the fd it receives.
    // The child allocates: glibc's malloc stays usable after a fork from a threaded parent (its
    // atfork handlers); it takes no other lock and leaves with `_exit`.
    let child = fork_child(|| {
        let mut byte = [0u8; 1];
        let Ok((1, mut fds)) = fork_sys::recv_with_fds(child_end.as_fd(), &mut byte, 1) else {
            return 2;
        };
        let Some(fd) = fds.pop() else { return 3 };
        let Ok(shared) = SharedAtomics::attach(fd, 2) else {
            return 4;
        };
        if shared.get(0).load(Ordering::Acquire) != 7 {
            return 5;
        }
        shared.get(1).store(42, Ordering::Release);
        0
    });
    drop(child_end);
    let shared = SharedAtomics::new_shareable(2).unwrap();
    assert_eq!(shared.get(1).load(Ordering::Acquire), 0, "not zeroed");
    shared.get(0).store(7, Ordering::Release);
    let fd = shared.fd().expect("a shareable array has an fd");
    assert!(fork_sys::is_cloexec(fd).unwrap());
    fork_sys::send_with_fds(parent_end.as_fd(), b"m", &[fd]).unwrap();
    assert_eq!(fork_sys::wait(child).unwrap(), ExitStatus::Exited(0));
    assert_eq!(shared.get(1).load(Ordering::Acquire), 42);
}

#[test]
fn two_mappings_of_one_file_see_each_others_stores() {
    let first = SharedAtomics::new_shareable(3).unwrap();
    let copy = first.fd().unwrap().try_clone_to_owned().unwrap();
    let second = SharedAtomics::attach(copy, 3).unwrap();
    assert!(second.fd().is_none(), "an attached array closes its fd");
    first.get(2).store(11, Ordering::Release);
    second.get(0).fetch_add(5, Ordering::AcqRel);
    assert_eq!(second.get(2).load(Ordering::Acquire), 11);
    assert_eq!(first.get(0).load(Ordering::Acquire), 5);
    // Attaching to fewer counters than the file holds is fine.
    let third =
        SharedAtomics::attach(first.fd().unwrap().try_clone_to_owned().unwrap(), 1).unwrap();
    assert_eq!(third.len(), 1);
    assert_eq!(third.get(0).load(Ordering::Acquire), 5);
}

#[test]
fn attaching_to_a_file_too_small_is_invalid_input_naming_both_sizes() {
    let small = SharedAtomics::new_shareable(1).unwrap();
    let copy = small.fd().unwrap().try_clone_to_owned().unwrap();
    let err = SharedAtomics::attach(copy, 4).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::InvalidInput);
    let message = err.to_string();
    assert!(
        message.contains("8 bytes") && message.contains("32 bytes"),
        "{message}"
    );
}

#[test]
fn anonymous_counters_have_no_fd() {
    assert!(SharedAtomics::new(2).unwrap().fd().is_none());
}

// ---------------------------------------------------------------------------------------------
// process_exit_fd / die_with_parent_process

#[cfg(target_os = "linux")]
#[test]
fn an_exit_fd_becomes_readable_when_the_process_exits_and_reaps_nothing() {
    let child = fork_child(|| {
        std::thread::sleep(Duration::from_secs(30));
        1
    });
    let exit_fd = fork_sys::process_exit_fd(child).unwrap();
    assert!(!readiness(exit_fd.as_fd(), Duration::from_millis(50)).is_ready());
    fork_sys::kill(child, Signal::KILL).unwrap();
    assert!(readiness(exit_fd.as_fd(), Duration::from_secs(10)).is_ready());
    // Still ours to reap: the exit fd took nothing.
    assert_eq!(
        fork_sys::wait(child).unwrap(),
        ExitStatus::Signaled {
            signal: Signal::KILL,
            core_dumped: false
        }
    );
}

#[cfg(target_os = "linux")]
#[test]
fn a_watched_child_outlives_the_thread_that_forked_it() {
    let _guard = test_support::watchdog(Duration::from_secs(60), "parent-watch thread exit");
    let me = fork_sys::getpid();
    let (ready_read, ready_write) = fork_sys::pipe().unwrap();
    let forker = std::thread::spawn(move || {
        // Starting the watch thread allocates: glibc's malloc stays usable after a fork from a
        // threaded parent (its atfork handlers); the child takes no other lock.
        let child = fork_child(|| {
            if fork_sys::die_with_parent_process(me).is_err() {
                return 2;
            }
            let _ = rustix::io::write(&ready_write, b"r");
            std::thread::sleep(Duration::from_secs(60));
            3
        });
        drop(ready_write);
        let mut byte = [0u8; 1];
        File::from(ready_read).read_exact(&mut byte).unwrap();
        child
        // The forking thread exits here: PR_SET_PDEATHSIG would kill the child now.
    });
    let child = forker.join().unwrap();
    let mut handle = ChildHandle::new(child);
    let thread_names = || -> Vec<String> {
        std::fs::read_dir(format!("/proc/{child}/task"))
            .map(|tasks| {
                tasks
                    .filter_map(|task| std::fs::read_to_string(task.ok()?.path().join("comm")).ok())
                    .map(|comm| comm.trim().to_owned())
                    .collect()
            })
            .unwrap_or_default()
    };
    let named = test_support::eventually(Duration::from_secs(10), || {
        thread_names().iter().any(|name| name == "parent-watch")
    });
    assert!(named, "no parent-watch thread in {:?}", thread_names());
    assert_eq!(
        handle.wait_timeout(Duration::from_millis(500)).unwrap(),
        None
    );
    handle.send_signal(Signal::KILL).unwrap();
    assert_eq!(
        handle.wait().unwrap(),
        ExitStatus::Signaled {
            signal: Signal::KILL,
            core_dumped: false
        }
    );
}

/// Runs the grandchild scenario: this process (a subreaper) forks A; A forks B, which runs
/// `b_body(A's pid)`; A sends B's pid here once B wrote a byte on the ready pipe, then exits.
/// Returns B's pid, and A's status.
#[cfg(target_os = "linux")]
fn grandchild(b_body: fn(Pid, &OwnedFd) -> i32) -> (Pid, ExitStatus) {
    test_support::become_subreaper().unwrap();
    let (pid_read, pid_write) = fork_sys::pipe().unwrap();
    // A and B allocate: glibc's malloc stays usable after a fork from a threaded parent (its
    // atfork handlers); they take no other lock and leave with `_exit`.
    let a = fork_child(|| {
        let a = fork_sys::getpid();
        let Ok((ready_read, ready_write)) = fork_sys::pipe() else {
            return 3;
        };
        let b = fork_child(|| b_body(a, &ready_write));
        drop(ready_write);
        let mut byte = [0u8; 1];
        if rustix::io::read(&ready_read, &mut byte) != Ok(1) {
            return 4;
        }
        if rustix::io::write(&pid_write, &b.as_raw().to_le_bytes()) != Ok(4) {
            return 5;
        }
        0
    });
    drop(pid_write);
    // Exactly 4 bytes: B holds a copy of the write end, so end-of-file would wait for B.
    let mut bytes = [0u8; 4];
    let reported = File::from(pid_read).read_exact(&mut bytes);
    let a_status = fork_sys::wait(a).unwrap();
    reported.unwrap_or_else(|err| panic!("A ({a_status}) did not report B's pid: {err}"));
    (Pid::from_raw(i32::from_le_bytes(bytes)).unwrap(), a_status)
}

#[cfg(target_os = "linux")]
#[test]
fn a_watched_grandchild_dies_when_its_parent_process_exits() {
    let _guard = test_support::watchdog(Duration::from_secs(60), "grandchild death");
    let (b, a_status) = grandchild(|a, ready| {
        if fork_sys::die_with_parent_process(a).is_err() {
            return 6;
        }
        let _ = rustix::io::write(ready, b"r");
        std::thread::sleep(Duration::from_secs(30));
        7
    });
    assert_eq!(a_status, ExitStatus::Exited(0));
    let started = Instant::now();
    // We are B's subreaper now that A is gone.
    let status = fork_sys::wait_timeout(b, Duration::from_secs(10)).unwrap();
    assert_eq!(
        status,
        Some(ExitStatus::Signaled {
            signal: Signal::KILL,
            core_dumped: false
        }),
        "B was not killed when A exited"
    );
    assert!(started.elapsed() < Duration::from_secs(5));
}

#[cfg(target_os = "linux")]
#[test]
fn watching_a_parent_that_already_died_kills_at_once() {
    let _guard = test_support::watchdog(Duration::from_secs(60), "late watch");
    let (b, a_status) = grandchild(|a, ready| {
        let _ = rustix::io::write(ready, b"r");
        // Wait (at most 10 s) for A to exit: B is then re-parented to us.
        let deadline = Instant::now() + Duration::from_secs(10);
        while fork_sys::getppid() == Some(a) {
            if Instant::now() >= deadline {
                return 9;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        let _ = fork_sys::die_with_parent_process(a);
        8 // Only if the call returned.
    });
    assert_eq!(a_status, ExitStatus::Exited(0));
    let status = fork_sys::wait_timeout(b, Duration::from_secs(10)).unwrap();
    assert_eq!(
        status,
        Some(ExitStatus::Signaled {
            signal: Signal::KILL,
            core_dumped: false
        })
    );
}

// ---------------------------------------------------------------------------------------------
// thread_count / monotonic_now

#[cfg(target_os = "linux")]
#[test]
fn thread_count_sees_one_thread_after_fork_and_one_more_while_it_lives() {
    assert!(fork_sys::thread_count().unwrap() >= 1);
    // In a forked child the count is exact: nothing else starts threads there.
    // Reading /proc and starting a thread allocate: glibc's malloc stays usable after a fork
    // from a threaded parent (its atfork handlers); the child leaves with `_exit`.
    let child = fork_child(|| {
        if fork_sys::thread_count() != Some(1) {
            return 2;
        }
        let (tx, rx) = std::sync::mpsc::channel::<()>();
        let Ok(extra) = std::thread::Builder::new().spawn(move || rx.recv()) else {
            return 3;
        };
        let during = fork_sys::thread_count();
        drop(tx);
        let _ = extra.join();
        // `join` returns when the thread has cleared its tid, a moment before the kernel
        // takes it out of the thread group: allow it that moment.
        let deadline = Instant::now() + Duration::from_secs(5);
        let mut after = fork_sys::thread_count();
        while after != Some(1) && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(1));
            after = fork_sys::thread_count();
        }
        match (during, after) {
            (Some(2), Some(1)) => 0,
            (Some(2), _) => 4,
            _ => 5,
        }
    });
    assert_eq!(fork_sys::wait(child).unwrap(), ExitStatus::Exited(0));
}

/// A name with spaces reaches the kernel with `-` for them, and the process stays visible to
/// a `scanf("%d (%s) %c %d")` reader of `/proc/PID/stat` (Slurm's `proctrack/linuxproc`
/// kills a cancelled step's processes by that parse).
#[cfg(target_os = "linux")]
#[test]
fn a_thread_name_with_spaces_is_set_with_dashes_and_is_cut_to_15_bytes() {
    let named = std::thread::spawn(|| {
        fork_sys::set_thread_name("my pool\tworker 7").unwrap();
        let comm = std::fs::read_to_string("/proc/thread-self/comm").unwrap();
        let stat = std::fs::read_to_string("/proc/thread-self/stat").unwrap();
        (comm, stat)
    });
    let (comm, stat) = named.join().unwrap();
    assert_eq!(comm, "my-pool-worker-\n");
    // What such a reader does: the first word after " (" must end with ")".
    let after_paren = stat.split_once(" (").unwrap().1;
    let word = after_paren.split_whitespace().next().unwrap();
    assert_eq!(word, "my-pool-worker-)", "{stat}");
}

#[test]
fn thread_count_is_none_only_where_the_platform_does_not_say() {
    assert_eq!(
        fork_sys::thread_count().is_some(),
        cfg!(target_os = "linux")
    );
}

#[test]
fn the_monotonic_clock_is_shared_between_processes_and_moves_with_time() {
    let (read, write) = fork_sys::pipe().unwrap();
    let before = fork_sys::monotonic_now();
    let child = fork_child(|| {
        let now = fork_sys::monotonic_now().as_nanos() as u64;
        let _ = rustix::io::write(&write, &now.to_le_bytes());
        0
    });
    drop(write);
    let bytes = read_all(read);
    assert_eq!(fork_sys::wait(child).unwrap(), ExitStatus::Exited(0));
    let after = fork_sys::monotonic_now();
    let in_child = Duration::from_nanos(u64::from_le_bytes(bytes.try_into().unwrap()));
    assert!(
        before <= in_child && in_child <= after,
        "{before:?} {in_child:?} {after:?}"
    );

    let start = fork_sys::monotonic_now();
    let instant = Instant::now();
    std::thread::sleep(Duration::from_millis(50));
    let moved = fork_sys::monotonic_now() - start;
    assert!(moved >= Duration::from_millis(50), "{moved:?}");
    assert!(
        moved <= instant.elapsed() + Duration::from_millis(5),
        "{moved:?}"
    );
}

// ---------------------------------------------------------------------------------------------
// ChildHandle::served

/// A served handle for `pid` and the "server's" end of its status pipe.
fn served(pid: Pid, pidfd: Option<OwnedFd>) -> (ChildHandle, File) {
    let (read, write) = fork_sys::pipe().unwrap();
    (ChildHandle::served(pid, pidfd, read), File::from(write))
}

/// A child of ours that sleeps until killed (stands in for the server's child).
fn sleeper() -> Pid {
    fork_child(|| {
        std::thread::sleep(Duration::from_secs(60));
        9
    })
}

fn exit_fd_readable(handle: &ChildHandle) -> bool {
    readiness(handle.exit_fd().unwrap(), Duration::ZERO).is_ready()
}

#[test]
fn a_served_status_arrives_through_the_pipe_and_is_cached() {
    let pid = Pid::from_raw(4_000_000).unwrap();
    let (mut handle, mut server) = served(pid, None);
    assert!(handle.is_served());
    assert!(!ChildHandle::new(fork_sys::getpid()).is_served());
    assert_eq!(handle.try_wait().unwrap(), None);
    assert!(!exit_fd_readable(&handle));

    server
        .write_all(&ExitStatus::Exited(3).into_raw().to_le_bytes())
        .unwrap();
    assert!(exit_fd_readable(&handle));
    assert_eq!(handle.try_wait().unwrap(), Some(ExitStatus::Exited(3)));
    drop(server);
    assert_eq!(handle.try_wait().unwrap(), Some(ExitStatus::Exited(3)));
    assert_eq!(handle.wait().unwrap(), ExitStatus::Exited(3));
    assert_eq!(handle.status(), Some(ExitStatus::Exited(3)));
}

#[test]
fn a_status_split_over_two_writes_is_put_together() {
    let pid = Pid::from_raw(4_000_001).unwrap();
    let (mut handle, mut server) = served(pid, None);
    let killed = ExitStatus::Signaled {
        signal: Signal::SEGV,
        core_dumped: true,
    };
    let raw = killed.into_raw().to_le_bytes();
    server.write_all(&raw[..2]).unwrap();
    assert_eq!(handle.try_wait().unwrap(), None);
    server.write_all(&raw[2..]).unwrap();
    assert_eq!(handle.try_wait().unwrap(), Some(killed));
}

#[test]
fn a_server_that_exits_without_a_status_is_status_lost_for_good() {
    let pid = Pid::from_raw(4_000_002).unwrap();
    let (mut handle, server) = served(pid, None);
    drop(server);
    assert!(exit_fd_readable(&handle));
    for _ in 0..2 {
        let err = handle.try_wait().unwrap_err();
        assert_eq!(err.kind(), ErrorKind::Other);
        let lost = err.get_ref().unwrap().downcast_ref::<StatusLost>().unwrap();
        assert_eq!(lost.pid, pid);
        assert_eq!(
            err.to_string(),
            "the fork server that ran pid 4000002 exited without reporting how it ended"
        );
    }
    let err = handle.wait().unwrap_err();
    assert!(err.get_ref().unwrap().is::<StatusLost>());
    let err = handle.wait_timeout(Duration::from_secs(5)).unwrap_err();
    assert!(err.get_ref().unwrap().is::<StatusLost>());
}

#[test]
fn a_status_that_is_no_ending_is_invalid_data() {
    let pid = Pid::from_raw(4_000_003).unwrap();
    let (mut handle, mut server) = served(pid, None);
    // WIFSTOPPED: 0x7f in the low byte.
    server.write_all(&0x137f_i32.to_le_bytes()).unwrap();
    let err = handle.try_wait().unwrap_err();
    assert_eq!(err.kind(), ErrorKind::InvalidData, "{err}");
}

#[cfg(target_os = "linux")]
#[test]
fn a_served_wait_timeout_sleeps_for_the_timeout_without_spinning() {
    let pid = Pid::from_raw(4_000_004).unwrap();
    let (mut handle, server) = served(pid, None);
    let waiter = std::thread::Builder::new()
        .name("served-wait".into())
        .spawn(move || {
            let started = Instant::now();
            let got = handle.wait_timeout(Duration::from_millis(400)).unwrap();
            let took = started.elapsed();
            let cpu = test_support::thread_cpu_time("served-wait").unwrap();
            (got, took, cpu)
        })
        .unwrap();
    let (got, took, cpu) = waiter.join().unwrap();
    drop(server);
    assert_eq!(got, None);
    assert!(took >= Duration::from_millis(400), "{took:?}");
    assert!(took < Duration::from_secs(2), "{took:?}");
    // A spinning wait would burn ~400 ms of CPU; one poll burns nothing measurable.
    assert!(
        cpu <= Duration::from_millis(50),
        "{cpu:?} of CPU in a 400 ms wait"
    );
}

#[test]
fn a_served_wait_returns_when_the_status_is_written() {
    let pid = Pid::from_raw(4_000_005).unwrap();
    let (mut handle, mut server) = served(pid, None);
    let writer = std::thread::spawn(move || {
        std::thread::sleep(Duration::from_millis(100));
        server
            .write_all(&ExitStatus::Exited(0).into_raw().to_le_bytes())
            .unwrap();
        server
    });
    let started = Instant::now();
    assert_eq!(
        handle.wait_timeout(Duration::from_secs(10)).unwrap(),
        Some(ExitStatus::Exited(0))
    );
    assert!(started.elapsed() >= Duration::from_millis(90));
    drop(writer.join().unwrap());

    let (mut handle, mut server) = served(pid, None);
    let writer = std::thread::spawn(move || {
        std::thread::sleep(Duration::from_millis(50));
        server
            .write_all(&ExitStatus::Exited(5).into_raw().to_le_bytes())
            .unwrap();
    });
    assert_eq!(handle.wait().unwrap(), ExitStatus::Exited(5));
    writer.join().unwrap();
}

#[test]
fn a_served_child_without_pidfd_is_signalled_by_pid_until_its_status_arrives() {
    let child = sleeper();
    let (mut handle, mut server) = served(child, None);
    handle.send_signal(Signal::TERM).unwrap();
    let status = fork_sys::wait(child).unwrap();
    assert_eq!(
        status,
        ExitStatus::Signaled {
            signal: Signal::TERM,
            core_dumped: false
        }
    );
    // The "server" reports it; from then on the pid is not ours to signal.
    server.write_all(&status.into_raw().to_le_bytes()).unwrap();
    let other = sleeper();
    let (mut stale, mut stale_server) = served(other, None);
    stale_server
        .write_all(&ExitStatus::Exited(0).into_raw().to_le_bytes())
        .unwrap();
    // Arrived but unread: no signal either.
    stale.send_signal(Signal::KILL).unwrap();
    assert_eq!(stale.try_wait().unwrap(), Some(ExitStatus::Exited(0)));
    stale.send_signal(Signal::KILL).unwrap();
    assert_eq!(
        fork_sys::wait_timeout(other, Duration::from_millis(200)).unwrap(),
        None
    );
    fork_sys::kill(other, Signal::KILL).unwrap();
    fork_sys::wait(other).unwrap();
    assert_eq!(handle.try_wait().unwrap(), Some(status));
}

#[cfg(target_os = "linux")]
#[test]
fn a_served_child_with_a_pidfd_is_signalled_through_it() {
    let child = sleeper();
    let pidfd = rustix::process::pidfd_open(
        rustix::process::Pid::from_raw(child.as_raw()).unwrap(),
        rustix::process::PidfdFlags::empty(),
    )
    .unwrap();
    let (handle, _server) = served(child, Some(pidfd));
    handle.send_signal(Signal::KILL).unwrap();
    assert_eq!(
        fork_sys::wait(child).unwrap(),
        ExitStatus::Signaled {
            signal: Signal::KILL,
            core_dumped: false
        }
    );
    // Exited (and here reaped): ESRCH through the pidfd is success.
    handle.send_signal(Signal::KILL).unwrap();
}

#[test]
fn the_background_reaper_settles_served_handles() {
    let pid = Pid::from_raw(4_000_006).unwrap();
    let (handle, server) = served(pid, None);
    fork_sys::reap_in_background(handle);
    let mut server = server;
    server
        .write_all(&ExitStatus::Exited(0).into_raw().to_le_bytes())
        .unwrap();
    // Once the reaper has read the status it drops the handle, closing the read end: writes
    // fail with EPIPE (the test harness ignores SIGPIPE, as every Rust program does).
    let gone = test_support::eventually(Duration::from_secs(10), || {
        rustix::io::write(&server, b"x") == Err(rustix::io::Errno::PIPE)
    });
    assert!(
        gone,
        "the reaper kept the served handle after its status arrived"
    );
}

#[cfg(target_os = "linux")]
#[test]
fn loaded_image_tells_the_executable_from_the_c_library() {
    fn here() {}
    let ours = fork_sys::loaded_image(here as fn() as usize).expect("our own code");
    let same = fork_sys::loaded_image(fork_sys::getpid as fn() -> Pid as usize).expect("fork-sys");
    assert_eq!(ours.base, same.base, "one executable");
    let strlen = fork_sys::loaded_image(
        libc::strlen as unsafe extern "C" fn(*const libc::c_char) -> usize as usize,
    )
    .expect("libc's strlen");
    assert_ne!(strlen.base, ours.base);
    assert!(strlen.path.to_string_lossy().contains("libc"), "{strlen:?}");
}
