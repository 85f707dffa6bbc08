//! `close_fds_from` on a kernel without `close_range` (before Linux 5.9), simulated with a
//! seccomp filter that makes `close_range` fail with `ENOSYS`: an inheritable fd above a
//! lowered `RLIMIT_NOFILE` soft limit must not reach the program (CPython bpo-21618), by any
//! method. The clone child, which takes an fd table of its own with `close_range` and copies
//! its stdio with `pidfd_getfd` (refused here too, with `EPERM`, as Yama's `ptrace_scope` 1
//! would), falls back to a copied table that it marks close-on-exec or closes.
//!
//! Regression: the fallback closed fds only up to the soft limit, so an fd opened before the
//! limit was lowered leaked into every child.

#![cfg(all(
    target_os = "linux",
    any(target_arch = "x86_64", target_arch = "aarch64")
))]
#![allow(clippy::unwrap_used)] // In tests a failed unwrap is a failed test, with its location.

use std::ffi::CString;
use std::io::Read;
use std::os::fd::{AsFd, AsRawFd, OwnedFd};

use fork_sys::exec::CStringArray;
use fork_sys::{ExitStatus, Fork, SpawnMethod, SpawnRequest};
use rustix::io::FdFlags;
use rustix::process::{Resource, Rlimit, getrlimit, setrlimit};

/// The inheritable fd's number: below any usual soft limit (1024 or more), far above the one
/// the child sets.
const HIGH_FD: i32 = 1000;
/// The soft limit the child lowers itself to.
const LOWERED_SOFT_LIMIT: u64 = 64;

#[cfg(target_arch = "x86_64")]
const AUDIT_ARCH: u32 = 0xC000_003E; // AUDIT_ARCH_X86_64
#[cfg(target_arch = "aarch64")]
const AUDIT_ARCH: u32 = 0xC000_00B7; // AUDIT_ARCH_AARCH64

/// What the kernel refuses, which pushes the spawn onto a fallback.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Refused {
    /// `close_range` is `ENOSYS`: the fallback lists `/proc/self/fd`.
    CloseRange,
    /// `close_range` is `ENOSYS` and no directory opens (`O_DIRECTORY` is `ENOENT`, as without
    /// `/proc`): the fallback loops up to the hard limit.
    CloseRangeAndProc,
    /// `pidfd_getfd` is `EPERM` (as under Yama's `ptrace_scope` 1): the clone child cannot
    /// copy its stdio from the parent, and the spawn must fall back to copying the fd table.
    PidfdGetfd,
}

/// Installs a seccomp filter on the calling thread (and what it forks and execs): `close_range`
/// fails with `ENOSYS`; with `CloseRangeAndProc`, an `openat` with `O_DIRECTORY` fails with
/// `ENOENT` as well; with `PidfdGetfd`, only `pidfd_getfd` fails, with `EPERM`.
/// Async-signal-safe: two `prctl`s on a filter built on the stack.
fn install_filter(refused: Refused) -> bool {
    const LD_W_ABS: u16 = (libc::BPF_LD | libc::BPF_W | libc::BPF_ABS) as u16;
    const JEQ_K: u16 = (libc::BPF_JMP | libc::BPF_JEQ | libc::BPF_K) as u16;
    const JSET_K: u16 = (libc::BPF_JMP | libc::BPF_JSET | libc::BPF_K) as u16;
    const RET_K: u16 = (libc::BPF_RET | libc::BPF_K) as u16;
    const ARCH_OFFSET: u32 = 4; // seccomp_data.arch
    const NR_OFFSET: u32 = 0; // seccomp_data.nr
    const ARG2_LOW_OFFSET: u32 = 16 + 2 * 8; // seccomp_data.args[2], low word (little endian)
    let op = |code, k| libc::sock_filter {
        code,
        jt: 0,
        jf: 0,
        k,
    };
    let jump = |code, k, jt, jf| libc::sock_filter { code, jt, jf, k };
    let hide_proc = u32::from(refused == Refused::CloseRangeAndProc);
    let filter = [
        op(LD_W_ABS, ARCH_OFFSET),
        jump(JEQ_K, AUDIT_ARCH, 1, 0),
        op(RET_K, libc::SECCOMP_RET_ALLOW),
        op(LD_W_ABS, NR_OFFSET),
        jump(
            JEQ_K,
            if refused == Refused::PidfdGetfd {
                libc::SYS_pidfd_getfd as u32
            } else {
                libc::SYS_close_range as u32
            },
            0,
            1,
        ),
        op(
            RET_K,
            libc::SECCOMP_RET_ERRNO
                | if refused == Refused::PidfdGetfd {
                    libc::EPERM as u32
                } else {
                    libc::ENOSYS as u32
                },
        ),
        // `openat` with O_DIRECTORY, when hiding /proc; with `hide_proc` 0 the jump below
        // compares against an impossible syscall number and falls through to "allow".
        jump(
            JEQ_K,
            if hide_proc == 1 {
                libc::SYS_openat as u32
            } else {
                u32::MAX
            },
            0,
            3,
        ),
        op(LD_W_ABS, ARG2_LOW_OFFSET),
        jump(JSET_K, libc::O_DIRECTORY as u32, 0, 1),
        op(RET_K, libc::SECCOMP_RET_ERRNO | libc::ENOENT as u32),
        op(RET_K, libc::SECCOMP_RET_ALLOW),
    ];
    let program = libc::sock_fprog {
        len: filter.len() as u16,
        filter: filter.as_ptr().cast_mut(),
    };
    // SAFETY: PR_SET_NO_NEW_PRIVS takes integer arguments only; PR_SET_SECCOMP reads the
    // program, which lives on this stack frame for the duration of the call.
    unsafe {
        libc::prctl(libc::PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) == 0
            && libc::prctl(
                libc::PR_SET_SECCOMP,
                libc::SECCOMP_MODE_FILTER,
                &program as *const libc::sock_fprog,
            ) == 0
    }
}

/// Whether `close_range` fails with ENOSYS here (the filter took).
fn close_range_is_enosys() -> bool {
    // SAFETY: closes nothing (an empty range above every fd: first > last is EINVAL on a
    // kernel that has it); only the errno is looked at.
    let rc = unsafe { libc::syscall(libc::SYS_close_range, 1u32 << 30, 1u32 << 30, 0u32) };
    rc == -1 && std::io::Error::last_os_error().raw_os_error() == Some(libc::ENOSYS)
}

/// In a forked child: lowers the soft fd limit (and, with `CloseRangeAndProc`, the hard one
/// to 2048, to keep the loop short), makes [`HIGH_FD`] inheritable, installs the filter and
/// spawns `sh -c 'test -e /proc/self/fd/1000 || echo ok'` with `close_fds` by `method`, its
/// stdout on a pipe. Returns the child's exit code: 0 when the shell did not see the fd and
/// its `ok` came through the pipe, 1 when it leaked, 10+ when the set-up failed.
fn leaked_into_child(refused: Refused, method: SpawnMethod) -> i32 {
    // One test at a time under `cargo test`'s threads: they all need fd `HIGH_FD`.
    static ONE_AT_A_TIME: std::sync::Mutex<()> = std::sync::Mutex::new(());
    let _turn = ONE_AT_A_TIME
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    let high = open_high_fd();
    let program = CString::new("/bin/sh").unwrap();
    let argv = CStringArray::new([
        "sh",
        "-c",
        &format!("if test -e /proc/self/fd/{HIGH_FD}; then exit 1; fi; echo ok"),
    ])
    .unwrap();
    let envp = CStringArray::new(["PATH=/bin:/usr/bin"]).unwrap();
    let (read, write) = fork_sys::pipe().unwrap();
    let mut request = SpawnRequest::new(&program, &argv, &envp);
    request.stdio[1] = Some(write.as_fd());
    assert!(request.can_use(method), "{method:?}");
    let hard = getrlimit(Resource::Nofile).maximum;
    let hard = match refused {
        Refused::CloseRange | Refused::PidfdGetfd => hard,
        Refused::CloseRangeAndProc => Some(2048),
    };
    // SAFETY: the child makes syscalls and, on glibc whose atfork handlers keep malloc usable,
    // the spawn's own small allocations; it leaves through `exit_immediately`.
    match unsafe { fork_sys::fork() }.unwrap() {
        Fork::Child => {
            let code = (|| {
                let limit = Rlimit {
                    current: Some(LOWERED_SOFT_LIMIT),
                    maximum: hard,
                };
                if setrlimit(Resource::Nofile, limit).is_err() {
                    return 10;
                }
                if rustix::io::fcntl_setfd(&high, FdFlags::empty()).is_err() {
                    return 11;
                }
                if !install_filter(refused) {
                    return 12;
                }
                if close_range_is_enosys() != (refused != Refused::PidfdGetfd) {
                    return 13;
                }
                let Ok(pid) = fork_sys::spawn_by(&request, method) else {
                    return 14;
                };
                let status = fork_sys::wait(pid);
                // The shell has exited: what it wrote is in the pipe (our write end is still
                // open, so read without waiting for end-of-file).
                let mut out = [0u8; 16];
                let got = fork_sys::set_nonblocking(&read, true)
                    .ok()
                    .and_then(|()| std::fs::File::from(read).read(&mut out).ok());
                match status {
                    Ok(ExitStatus::Exited(0)) if got.map(|n| &out[..n]) != Some(b"ok\n") => 16,
                    Ok(ExitStatus::Exited(code)) => code,
                    _ => 15,
                }
            })();
            fork_sys::exit_immediately(code);
        }
        Fork::Parent(child) => match fork_sys::wait(child).unwrap() {
            ExitStatus::Exited(code) => code,
            other => panic!("test child {other}"),
        },
    }
}

/// A close-on-exec fd numbered [`HIGH_FD`] (the child makes it inheritable).
fn open_high_fd() -> OwnedFd {
    let null = std::fs::File::open("/dev/null").unwrap();
    let high = rustix::io::fcntl_dupfd_cloexec(&null, HIGH_FD).unwrap();
    assert_eq!(high.as_raw_fd(), HIGH_FD, "fd {HIGH_FD} is taken");
    high
}

/// Every method keeps the inheritable fd above the lowered soft limit out of the program, by
/// whichever way the kernel leaves it: glibc's `closefrom` falls back to listing
/// /proc/self/fd itself (checked, not assumed); the clone child, refused its own fd table
/// (no `close_range`, or no `pidfd_getfd`), falls back to a copy that it marks or closes.
#[test]
fn no_method_leaks_an_fd_above_a_lowered_soft_limit_whatever_the_kernel_refuses() {
    let cases = [
        (Refused::CloseRange, SpawnMethod::ForkExec),
        (Refused::CloseRangeAndProc, SpawnMethod::ForkExec),
        (Refused::CloseRange, SpawnMethod::PosixSpawn),
        (Refused::CloseRange, SpawnMethod::CloneVfork),
        (Refused::CloseRangeAndProc, SpawnMethod::CloneVfork),
        (Refused::PidfdGetfd, SpawnMethod::CloneVfork),
    ];
    let program = CString::new("/bin/sh").unwrap();
    let argv = CStringArray::new(["sh"]).unwrap();
    for (refused, method) in cases {
        if !SpawnRequest::new(&program, &argv, &argv).can_use(method) {
            continue; // posix_spawn off glibc
        }
        assert_eq!(
            leaked_into_child(refused, method),
            0,
            "{refused:?}, {method:?}: fd {HIGH_FD}, above the soft limit of \
             {LOWERED_SOFT_LIMIT}, reached the program (1) or the set-up failed (10+)"
        );
    }
}
