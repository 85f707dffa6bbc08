//! The child's side of fork+exec: exec, error reporting, stdio redirection, closing fds,
//! signal resets, process groups and the parent-death signal.

#![allow(clippy::unwrap_used)] // In tests a failed unwrap is a failed test, with its location.

mod common;

use std::ffi::CString;
use std::os::fd::{AsFd, AsRawFd};
use std::time::Duration;

use common::{fork_child, read_all};
use fork_sys::exec::{self, CStringArray, StdioFd};
use fork_sys::{ExitStatus, Signal};

/// Everything a test child needs to run `sh -c <script>`, built before the fork.
struct ShellCommand {
    program: CString,
    argv: CStringArray,
    envp: CStringArray,
}

fn sh(script: &str) -> ShellCommand {
    ShellCommand {
        program: CString::new("/bin/sh").unwrap(),
        argv: CStringArray::new(["sh", "-c", script]).unwrap(),
        envp: CStringArray::from_current_env().unwrap(),
    }
}

#[test]
fn exec_runs_the_program_and_the_error_pipe_reads_empty() {
    let cmd = sh("exit 7");
    let (err_read, err_write) = fork_sys::pipe().unwrap();
    let pid = fork_child(|| {
        let err = exec::exec(&cmd.program, &cmd.argv, &cmd.envp);
        exec::report_errno_and_exit(err_write.as_fd(), err.raw_os_error().unwrap_or(0))
    });
    drop(err_write);
    assert!(exec::read_exec_error(err_read).unwrap().is_none());
    assert_eq!(fork_sys::wait(pid).unwrap(), ExitStatus::Exited(7));
}

#[test]
fn exec_failure_reaches_the_parent_as_an_errno() {
    let program = CString::new("/nonexistent/program").unwrap();
    let argv = CStringArray::new(["program"]).unwrap();
    let envp = CStringArray::new::<[&str; 0], &str>([]).unwrap();
    let (err_read, err_write) = fork_sys::pipe().unwrap();
    let pid = fork_child(|| {
        let err = exec::exec(&program, &argv, &envp);
        exec::report_errno_and_exit(err_write.as_fd(), err.raw_os_error().unwrap_or(0))
    });
    drop(err_write);
    let err = exec::read_exec_error(err_read)
        .unwrap()
        .expect("an exec error");
    assert_eq!(err.kind(), std::io::ErrorKind::NotFound, "{err}");
    assert_eq!(fork_sys::wait(pid).unwrap(), ExitStatus::Exited(127));
}

#[test]
fn explicit_environment_replaces_the_parents() {
    let cmd = sh("printf '%s' \"$GREETING-${HOME:-no home}\"");
    let envp = CStringArray::new(["GREETING=hello"]).unwrap();
    let (out_read, out_write) = fork_sys::pipe().unwrap();
    let pid = fork_child(|| {
        if exec::redirect_stdio(out_write.as_fd(), StdioFd::Stdout).is_err() {
            return 100;
        }
        exec::exec(&cmd.program, &cmd.argv, &envp);
        101
    });
    drop(out_write);
    assert_eq!(read_all(out_read), b"hello-no home");
    assert_eq!(fork_sys::wait(pid).unwrap(), ExitStatus::Exited(0));
}

#[test]
fn the_current_environment_is_passed_when_asked_for() {
    // A variable every test process has, checked through the exec'd shell.
    let path = std::env::var("PATH").unwrap();
    let cmd = sh("printf '%s' \"$PATH\"");
    let (out_read, out_write) = fork_sys::pipe().unwrap();
    let pid = fork_child(|| {
        if exec::redirect_stdio(out_write.as_fd(), StdioFd::Stdout).is_err() {
            return 100;
        }
        exec::exec(&cmd.program, &cmd.argv, &cmd.envp);
        101
    });
    drop(out_write);
    assert_eq!(String::from_utf8(read_all(out_read)).unwrap(), path);
    assert_eq!(fork_sys::wait(pid).unwrap(), ExitStatus::Exited(0));
}

#[test]
fn nul_bytes_in_arguments_are_rejected_before_forking() {
    let err = CStringArray::new(["ok", "bad\0arg"]).unwrap_err();
    assert_eq!(err.kind(), std::io::ErrorKind::InvalidInput);
    assert!(err.to_string().contains("bad\\0arg"), "{err}");
}

#[test]
fn redirect_stdio_keeps_an_fd_that_already_has_the_right_number() {
    // Here the pipe's write end is put on fd 1 by dup2 first, then "redirected" onto itself:
    // the close-on-exec flag that dup2 would not clear must be cleared, or `echo` writes nowhere.
    let cmd = sh("echo same-fd");
    let (out_read, out_write) = fork_sys::pipe().unwrap();
    let pid = fork_child(|| {
        if exec::redirect_stdio(out_write.as_fd(), StdioFd::Stdout).is_err() {
            return 100;
        }
        // fd 1 is now a copy; make it close-on-exec, then redirect it onto itself.
        // SAFETY: fd 1 is open (we just dup'ed onto it) and stays owned by the process.
        let stdout = unsafe { std::os::fd::BorrowedFd::borrow_raw(1) };
        if rustix::io::fcntl_setfd(stdout, rustix::io::FdFlags::CLOEXEC).is_err()
            || exec::redirect_stdio(stdout, StdioFd::Stdout).is_err()
        {
            return 101;
        }
        exec::exec(&cmd.program, &cmd.argv, &cmd.envp);
        102
    });
    drop(out_write);
    assert_eq!(read_all(out_read), b"same-fd\n");
    assert_eq!(fork_sys::wait(pid).unwrap(), ExitStatus::Exited(0));
}

/// Runs `test -e /dev/fd/N` in an exec'd shell, where N is an inheritable fd of ours, with or
/// without `close_fds_from` in the child; returns whether the shell could see the fd.
fn inherited_fd_is_visible(close_fds: bool) -> bool {
    // An fd without CLOEXEC, as a careless library elsewhere in the program might leave.
    let (leaky_read, _leaky_write) = fork_sys::pipe().unwrap();
    rustix::io::fcntl_setfd(&leaky_read, rustix::io::FdFlags::empty()).unwrap();
    let cmd = sh(&format!("test -e /dev/fd/{}", leaky_read.as_raw_fd()));
    let (err_read, err_write) = fork_sys::pipe().unwrap();
    let keep = [err_write.as_raw_fd()];
    let pid = fork_child(|| {
        // SAFETY: this child execs or `_exit`s next and never touches the closed fds again.
        if close_fds && unsafe { exec::close_fds_from(3, &keep) }.is_err() {
            return 100;
        }
        let err = exec::exec(&cmd.program, &cmd.argv, &cmd.envp);
        exec::report_errno_and_exit(err_write.as_fd(), err.raw_os_error().unwrap_or(0))
    });
    drop(err_write);
    // The kept error pipe survived close_fds_from: exec succeeded and closed it by CLOEXEC.
    assert!(exec::read_exec_error(err_read).unwrap().is_none());
    drop(leaky_read);
    match fork_sys::wait(pid).unwrap() {
        ExitStatus::Exited(0) => true,
        ExitStatus::Exited(1) => false,
        other => panic!("shell {other}"),
    }
}

#[test]
fn close_fds_from_leaves_the_program_only_the_fds_it_was_given() {
    assert!(
        inherited_fd_is_visible(false),
        "the test itself is broken: the fd should leak"
    );
    assert!(
        !inherited_fd_is_visible(true),
        "close_fds_from left an inherited fd open"
    );
}

#[test]
fn reset_signals_for_exec_restores_sigpipe() {
    // The Rust runtime ignores SIGPIPE and an ignored signal stays ignored across exec; a shell
    // started with SIGPIPE ignored cannot even un-ignore it. So `kill -PIPE $$` kills the shell
    // only when the child reset the disposition.
    fn run(reset: bool) -> ExitStatus {
        let cmd = sh("kill -s PIPE $$; exit 9");
        let pid = fork_child(|| {
            if reset && exec::reset_signals_for_exec().is_err() {
                return 100;
            }
            exec::exec(&cmd.program, &cmd.argv, &cmd.envp);
            101
        });
        fork_sys::wait(pid).unwrap()
    }
    assert_eq!(
        run(false),
        ExitStatus::Exited(9),
        "the test harness should ignore SIGPIPE"
    );
    assert_eq!(run(true).signal(), Some(Signal::PIPE));
}

#[test]
fn kill_group_reaches_a_child_in_its_own_process_group() {
    let (ready_read, ready_write) = fork_sys::pipe().unwrap();
    let pid = fork_child(|| {
        if exec::setpgid(None).is_err() {
            return 100;
        }
        drop(ready_write);
        std::thread::sleep(Duration::from_secs(30));
        0
    });
    // The closure, and the parent's copy of `ready_write` in it, was dropped by fork_child.
    // EOF once the child has joined its own group and closed its end.
    assert!(read_all(ready_read).is_empty());
    let pgid = rustix::process::getpgid(rustix::process::Pid::from_raw(pid.as_raw())).unwrap();
    assert_eq!(
        pgid.as_raw_pid(),
        pid.as_raw(),
        "the child leads its own group"
    );
    fork_sys::kill_group(pid, Signal::TERM).unwrap();
    assert_eq!(fork_sys::wait(pid).unwrap().signal(), Some(Signal::TERM));
}

#[test]
fn setsid_makes_the_child_a_session_leader() {
    let (sid_read, sid_write) = fork_sys::pipe().unwrap();
    let pid = fork_child(|| match exec::setsid() {
        Ok(sid) => {
            let _ = rustix::io::write(&sid_write, &sid.as_raw().to_ne_bytes());
            0
        }
        Err(_) => 100,
    });
    drop(sid_write);
    let sid = read_all(sid_read);
    assert_eq!(fork_sys::wait(pid).unwrap(), ExitStatus::Exited(0));
    assert_eq!(i32::from_ne_bytes(sid.try_into().unwrap()), pid.as_raw());
}

/// A grandchild with a parent-death signal dies when its parent does. This process becomes a
/// subreaper so the orphaned grandchild is re-parented to us and can be waited for.
#[cfg(target_os = "linux")]
#[test]
fn parent_death_signal_kills_the_orphan() {
    test_support::become_subreaper().unwrap();
    let (pid_read, pid_write) = fork_sys::pipe().unwrap();
    let (ready_read, ready_write) = fork_sys::pipe().unwrap();
    let middle = fork_child(|| {
        let parent = fork_sys::getpid();
        let grandchild = fork_child(|| {
            if exec::set_parent_death_signal(Some(Signal::KILL)).is_err() {
                return 100;
            }
            if fork_sys::getppid() != Some(parent) {
                return 101; // the parent died before the request: no signal will come
            }
            let _ = rustix::io::write(&ready_write, b"r");
            std::thread::sleep(Duration::from_secs(30));
            0
        });
        let _ = rustix::io::write(&pid_write, &grandchild.as_raw().to_ne_bytes());
        // Leave only once the grandchild has asked for its death signal.
        let _ = rustix::io::read(&ready_read, &mut [0u8; 1]);
        0
    });
    drop(pid_write);
    let grandchild_raw = i32::from_ne_bytes(read_all(pid_read).try_into().unwrap());
    let grandchild = fork_sys::Pid::from_raw(grandchild_raw).unwrap();
    assert_eq!(fork_sys::wait(middle).unwrap(), ExitStatus::Exited(0));
    let status = fork_sys::wait_timeout(grandchild, Duration::from_secs(20)).unwrap();
    assert_eq!(
        status.and_then(ExitStatus::signal),
        Some(Signal::KILL),
        "{status:?}"
    );
}
