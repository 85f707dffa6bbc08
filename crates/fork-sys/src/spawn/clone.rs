//! Linux: our own vfork-style child, `clone(CLONE_VM | CLONE_VFORK | CLONE_PIDFD)` on a stack
//! of its own, instead of glibc's `posix_spawn`.
//!
//! Why not `posix_spawn` with `closefrom`: the parent is suspended from `clone` until the child
//! execs, and with N children in flight it holds ~3N fds that `closefrom` closes *in the child,
//! while the parent waits*. This child only marks them close-on-exec (`close_range` with
//! `CLOSE_RANGE_CLOEXEC`, a few bitmap words), so the kernel closes them during `execve`,
//! after it has released the parent, as it does for std's and tokio's children (whose fds are
//! all close-on-exec already). `CLONE_PIDFD` hands back the pidfd the caller would otherwise
//! open with `pidfd_open`. Failures travel back in memory (the child shares ours) instead of
//! over a pipe: the child writes the step and errno into a [`Report`] and `_exit`s; the parent
//! reads it when `clone` returns, which `CLONE_VFORK` delays until the child has exec'd or
//! exited.
//!
//! The child shares the parent's memory, so it must not touch anything the parent might be in
//! the middle of changing: no allocation, no locks, no glibc function that keeps state
//! (`setuid` would broadcast to the parent's threads: requests with ids go through
//! fork+exec). Signals are blocked across the `clone` and every handled signal is reset to its
//! default in the child before its mask is emptied, so no handler of the parent's ever runs
//! on the child's side (glibc's `posix_spawn` does the same).

use std::ffi::c_void;
use std::io;
use std::os::fd::{FromRawFd, OwnedFd, RawFd};
use std::ptr;
use std::sync::atomic::{AtomicBool, AtomicI32, AtomicU32, Ordering};

use super::{SpawnRequest, SpawnStep, Started, set_up_child};
use crate::Pid;

/// The child's stack: enough for the set-up (a few frames of syscall wrappers; debug builds
/// included) with room to spare. Pages are only touched as used.
const STACK_SIZE: usize = 256 * 1024;

/// Set once `clone` refused `CLONE_PIDFD` (`EINVAL`, Linux before 5.2): later spawns leave it
/// out and open no pidfd here.
static NO_CLONE_PIDFD: AtomicBool = AtomicBool::new(false);

/// What the child writes for the parent when a step fails; all zero while nothing failed.
/// Atomics because two processes touch it (one at a time: the parent sleeps meanwhile).
#[derive(Default)]
struct Report {
    failed: AtomicBool,
    step: AtomicU32,
    errno: AtomicI32,
}

/// What the child's entry point gets through `clone`'s argument pointer.
struct ChildArgs<'r, 'a> {
    request: &'r SpawnRequest<'a>,
    keep: &'r [RawFd],
    report: &'r Report,
}

/// The child's stack, `mmap`'d with a guard page below it (an overflow faults instead of
/// writing over the parent's memory), unmapped on drop.
struct ChildStack {
    base: *mut c_void,
    len: usize,
}

impl ChildStack {
    fn new() -> io::Result<ChildStack> {
        // SAFETY: sysconf only reads a value.
        let page = usize::try_from(unsafe { libc::sysconf(libc::_SC_PAGESIZE) }).unwrap_or(4096);
        let len = STACK_SIZE + page;
        // SAFETY: a fresh anonymous private mapping; no existing memory is touched.
        let base = unsafe {
            libc::mmap(
                ptr::null_mut(),
                len,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_STACK | libc::MAP_NORESERVE,
                -1,
                0,
            )
        };
        if base == libc::MAP_FAILED {
            return Err(io::Error::last_os_error());
        }
        let stack = ChildStack { base, len };
        // SAFETY: the lowest page of the mapping we own; nothing refers to it.
        if unsafe { libc::mprotect(base, page, libc::PROT_NONE) } != 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(stack)
    }

    /// The initial stack pointer: the mapping's top (stacks grow down on every Linux target
    /// Rust supports but HP PA-RISC, which it does not), 16-byte aligned as page-aligned.
    fn top(&self) -> *mut c_void {
        // SAFETY: one past the end of our mapping, as `clone` wants.
        unsafe { self.base.cast::<u8>().add(self.len).cast() }
    }
}

impl Drop for ChildStack {
    fn drop(&mut self) {
        // SAFETY: the mapping made in `new`; the child that used it has exec'd or exited
        // (`CLONE_VFORK`), so nothing runs on it any more.
        unsafe { libc::munmap(self.base, self.len) };
    }
}

/// Starts `request` in a `CLONE_VM | CLONE_VFORK` child; with `want_pidfd`, asks for its pidfd
/// too (`CLONE_PIDFD`, Linux 5.2+; `None` on older kernels). `keep` is the sorted list of
/// passed fds, for the fallback that closes fds instead of marking them.
pub(super) fn spawn(
    request: &SpawnRequest<'_>,
    keep: &[RawFd],
    want_pidfd: bool,
) -> io::Result<Started> {
    let stack = ChildStack::new()?;
    let report = Report::default();
    let args = ChildArgs {
        request,
        keep,
        report: &report,
    };
    let with_pidfd = want_pidfd && !NO_CLONE_PIDFD.load(Ordering::Relaxed);
    let mut started = clone_child(&stack, &args, with_pidfd);
    if with_pidfd && matches!(&started, Err(err) if err.raw_os_error() == Some(libc::EINVAL)) {
        NO_CLONE_PIDFD.store(true, Ordering::Relaxed);
        started = clone_child(&stack, &args, false);
    }
    let started = started?;
    drop(stack);
    if report.failed.load(Ordering::Acquire) {
        // The child has `_exit`ed (or is about to): reap it, leave nothing behind.
        drop(started.pidfd);
        let _ = crate::wait(started.pid);
        let step = SpawnStep::ALL
            .get(report.step.load(Ordering::Relaxed) as usize)
            .copied()
            .unwrap_or(SpawnStep::Exec);
        let errno = report.errno.load(Ordering::Relaxed);
        return Err(super::SpawnFailure { step, errno }.into_io_error());
    }
    Ok(started)
}

/// One `clone` call with all signals blocked around it (the child starts with them blocked,
/// so no handler of ours runs in it before it has reset them).
fn clone_child(
    stack: &ChildStack,
    args: &ChildArgs<'_, '_>,
    with_pidfd: bool,
) -> io::Result<Started> {
    let mut flags = libc::CLONE_VM | libc::CLONE_VFORK | libc::SIGCHLD;
    if with_pidfd {
        flags |= libc::CLONE_PIDFD;
    }
    let mut pidfd: libc::c_int = -1;
    let _blocked = BlockedSignals::new()?;
    // SAFETY: `child_main` only makes async-signal-safe calls on data prepared before this
    // call (`args`, which outlives it: `CLONE_VFORK` keeps us here until the child exec'd or
    // exited) and never returns; it runs on `stack`, a mapping nothing else uses, and shares
    // our memory, which it only reads, but for `args.report`'s atomics. With `CLONE_PIDFD`
    // the kernel writes the pidfd into `pidfd` (the `parent_tid` argument).
    let pid = unsafe {
        libc::clone(
            child_main,
            stack.top(),
            flags,
            ptr::from_ref(args).cast_mut().cast(),
            &mut pidfd as *mut libc::c_int,
        )
    };
    if pid < 0 {
        return Err(io::Error::last_os_error());
    }
    let pid = Pid::from_raw(pid)
        .ok_or_else(|| io::Error::other(format!("clone returned an invalid pid {pid}")))?;
    // SAFETY: with `CLONE_PIDFD` the kernel installed a new close-on-exec fd there, which
    // nothing else owns.
    let pidfd = (with_pidfd && pidfd >= 0).then(|| unsafe { OwnedFd::from_raw_fd(pidfd) });
    Ok(Started { pid, pidfd })
}

/// Every signal blocked in this thread (the raw syscall: glibc's wrappers leave its two
/// internal signals unblocked); the previous mask comes back on drop.
struct BlockedSignals {
    previous: libc::sigset_t,
}

impl BlockedSignals {
    fn new() -> io::Result<BlockedSignals> {
        // SAFETY: an all-zero sigset_t is a valid (empty) set; the kernel reads the full set
        // (all ones, as sigfillset would make it) and writes the old mask into `previous`.
        unsafe {
            let mut all: libc::sigset_t = std::mem::zeroed();
            libc::sigfillset(&mut all);
            let mut previous: libc::sigset_t = std::mem::zeroed();
            set_mask(libc::SIG_SETMASK, &all, &mut previous)?;
            Ok(BlockedSignals { previous })
        }
    }
}

impl Drop for BlockedSignals {
    fn drop(&mut self) {
        // SAFETY: restores the mask read in `new`; the old mask is not asked for.
        let _ = unsafe { set_mask(libc::SIG_SETMASK, &self.previous, ptr::null_mut()) };
    }
}

/// `rt_sigprocmask(how, set, old)` without glibc's filtering.
///
/// # Safety
///
/// `set` points to a valid set; `old` is null or points to writable memory for one.
unsafe fn set_mask(
    how: libc::c_int,
    set: *const libc::sigset_t,
    old: *mut libc::sigset_t,
) -> io::Result<()> {
    /// The kernel's sigset size (64 signals), not glibc's 1024-bit `sigset_t`.
    const KERNEL_SIGSET_SIZE: usize = 8;
    // SAFETY: the caller's contract; the kernel reads and writes 8 bytes, within the sets.
    let rc = unsafe { libc::syscall(libc::SYS_rt_sigprocmask, how, set, old, KERNEL_SIGSET_SIZE) };
    if rc == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

/// The child: set up, exec; on failure, the step and errno into the report, then `_exit(127)`.
/// Never returns.
extern "C" fn child_main(arg: *mut c_void) -> libc::c_int {
    // SAFETY: `arg` is the `ChildArgs` the parent passed to `clone`, alive until we exec or
    // exit (the parent is suspended until then).
    let args = unsafe { &*arg.cast::<ChildArgs<'_, '_>>() };
    let (step, err) = set_up_child(args.request, args.keep, super::ChildSide::SharedMemory);
    let index = SpawnStep::ALL.iter().position(|&s| s == step).unwrap_or(0) as u32;
    args.report.step.store(index, Ordering::Relaxed);
    args.report.errno.store(
        err.raw_os_error().unwrap_or(libc::EINVAL),
        Ordering::Relaxed,
    );
    args.report.failed.store(true, Ordering::Release);
    crate::exit_immediately(127)
}

/// The shared-memory child's signal reset: every signal with a handler back to its default
/// (a handler of the parent's must never run here: it would run on the parent's data), and
/// `SIGPIPE` too (Rust ignores it; the program expects the default); then the mask emptied.
/// glibc's internal signals (32, 33), which its `sigaction` refuses, are left alone: they are
/// sent only to the parent's threads, by tid. Async-signal-safe.
pub(super) fn reset_all_signals() -> io::Result<()> {
    /// The highest signal number Linux has (`_NSIG - 1`) on every architecture but MIPS.
    const LAST_SIGNAL: libc::c_int = 64;
    for signal in 1..=LAST_SIGNAL {
        if signal == libc::SIGKILL || signal == libc::SIGSTOP {
            continue;
        }
        // SAFETY: a zeroed sigaction is a valid "SIG_DFL, no flags, empty mask" value; the
        // query writes into `current`, the set reads `default`. Errors (EINVAL for glibc's
        // reserved signals) leave that signal as it was.
        unsafe {
            let mut current: libc::sigaction = std::mem::zeroed();
            if libc::sigaction(signal, ptr::null(), &mut current) != 0 {
                continue;
            }
            let handled =
                current.sa_sigaction != libc::SIG_DFL && current.sa_sigaction != libc::SIG_IGN;
            if handled || signal == libc::SIGPIPE {
                let default: libc::sigaction = std::mem::zeroed();
                if libc::sigaction(signal, &default, ptr::null_mut()) != 0 {
                    return Err(io::Error::last_os_error());
                }
            }
        }
    }
    // SAFETY: an all-zero set is empty; the old mask is not asked for.
    unsafe {
        let empty: libc::sigset_t = std::mem::zeroed();
        set_mask(libc::SIG_SETMASK, &empty, ptr::null_mut())
    }
}
