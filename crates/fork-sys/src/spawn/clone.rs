//! Linux: our own vfork-style child, `clone(CLONE_VM | CLONE_VFORK | CLONE_PIDFD)` on a stack
//! of its own, instead of glibc's `posix_spawn`.
//!
//! Why not `posix_spawn` with `closefrom`: with N children in flight the parent holds ~3N
//! fds; the child gets a copy of them all at `clone` and `closefrom` closes them one by one,
//! *while the parent waits* (vfork). std's and tokio's children close them at `execve` instead
//! (all close-on-exec), after the parent resumed, but still copy and close each. With
//! `close_fds` and no `pass_fds` this child copies none: it shares the parent's table
//! (`CLONE_FILES`), takes one of its own holding only fds 0-2 and copies its stdio from the
//! parent ([`take_stdio_from_parent`]). Otherwise (fds passed, `close_fds(false)`, or a kernel
//! or ptrace policy that refuses, after which the process never tries again) it gets the usual
//! copy and only marks it close-on-exec (`close_range` with `CLOSE_RANGE_CLOEXEC`, a few bitmap
//! words), so the kernel closes the fds during `execve`, after the parent resumed.
//! `CLONE_PIDFD` hands back the pidfd the caller would otherwise open with `pidfd_open`. Failures travel back in memory (the child shares ours) instead of
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

use std::cell::Cell;
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

/// Set once a child could not take its stdio from the parent ([`take_stdio_from_parent`]:
/// a kernel before 5.9, or `pidfd_getfd` refused by Yama's `ptrace_scope`, an LSM or
/// seccomp): later spawns copy the whole fd table and mark it close-on-exec instead.
static NO_OWN_FD_TABLE: AtomicBool = AtomicBool::new(false);

/// What the child writes for the parent when a step fails; all zero while nothing failed.
/// Atomics because two processes touch it (one at a time: the parent sleeps meanwhile).
#[derive(Default)]
struct Report {
    failed: AtomicBool,
    /// The failure was in taking the stdio from the parent: try again the other way.
    retry_without_own_table: AtomicBool,
    step: AtomicU32,
    errno: AtomicI32,
}

/// What the child's entry point gets through `clone`'s argument pointer.
struct ChildArgs<'r, 'a> {
    request: &'r SpawnRequest<'a>,
    keep: &'r [RawFd],
    report: &'r Report,
    /// `CLONE_FILES`, then a table of its own with only what the program gets
    /// (`ChildSide::SharedFdTable`).
    own_table: bool,
}

thread_local! {
    /// The stack of this thread's last clone child, kept for the next: one spawn at a time
    /// per thread (the parent waits for its child), so one stack per thread is enough.
    static CACHED_STACK: Cell<Option<ChildStack>> = const { Cell::new(None) };
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
    // This thread's stack from the last spawn, or a new one: its mapping, and the pages the
    // child touched, are made once per thread rather than once per child.
    let stack = match CACHED_STACK.try_with(Cell::take).ok().flatten() {
        Some(stack) => stack,
        None => ChildStack::new()?,
    };
    let own_table = request.close_fds
        && request.pass_fds.is_empty()
        && !NO_OWN_FD_TABLE.load(Ordering::Relaxed);
    let started = clone_with_fallbacks(&stack, request, keep, want_pidfd, own_table);
    // No child runs on it any more (`CLONE_VFORK`). A thread on its way out has no cache
    // left: the stack is unmapped here instead.
    let _ = CACHED_STACK.try_with(|cached| cached.set(Some(stack)));
    started
}

/// [`spawn`]'s child, started once, or twice when the first could not take its stdio from the
/// parent (then never again that way in this process).
fn clone_with_fallbacks(
    stack: &ChildStack,
    request: &SpawnRequest<'_>,
    keep: &[RawFd],
    want_pidfd: bool,
    own_table: bool,
) -> io::Result<Started> {
    let report = Report::default();
    let args = ChildArgs {
        request,
        keep,
        report: &report,
        own_table,
    };
    let with_pidfd = want_pidfd && !NO_CLONE_PIDFD.load(Ordering::Relaxed);
    let mut started = clone_child(stack, &args, with_pidfd);
    if with_pidfd && matches!(&started, Err(err) if err.raw_os_error() == Some(libc::EINVAL)) {
        NO_CLONE_PIDFD.store(true, Ordering::Relaxed);
        started = clone_child(stack, &args, false);
    }
    let started = started?;
    if report.failed.load(Ordering::Acquire) {
        // The child has `_exit`ed (or is about to): reap it, leave nothing behind.
        drop(started.pidfd);
        let _ = crate::wait(started.pid);
        let step = SpawnStep::ALL
            .get(report.step.load(Ordering::Relaxed) as usize)
            .copied()
            .unwrap_or(SpawnStep::Exec);
        let errno = report.errno.load(Ordering::Relaxed);
        if own_table && report.retry_without_own_table.load(Ordering::Relaxed) {
            // Only a refusal of the kernel's (no such call or flag, not permitted) turns the
            // fast way off; a bad source fd or a full table fails the other way too, with
            // its own error.
            if matches!(
                errno,
                libc::ENOSYS | libc::EINVAL | libc::EPERM | libc::EACCES
            ) {
                NO_OWN_FD_TABLE.store(true, Ordering::Relaxed);
            }
            return clone_with_fallbacks(stack, request, keep, want_pidfd, false);
        }
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
    if args.own_table {
        flags |= libc::CLONE_FILES;
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
        // SAFETY: a sigset_t is plain bits: all ones is the full set (glibc's `sigfillset`
        // would leave out its internal signals, which glibc's own posix_spawn blocks too) and
        // all zeros the empty one; the kernel reads `all` and writes the old mask into
        // `previous`.
        unsafe {
            let mut all: libc::sigset_t = std::mem::zeroed();
            ptr::write_bytes(
                ptr::from_mut(&mut all).cast::<u8>(),
                0xff,
                std::mem::size_of::<libc::sigset_t>(),
            );
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
    /// The kernel's sigset size (`_NSIG` bits: 128 on MIPS, 64 elsewhere), not glibc's
    /// 1024-bit `sigset_t`.
    const KERNEL_SIGSET_SIZE: usize = if cfg!(any(target_arch = "mips", target_arch = "mips64")) {
        16
    } else {
        8
    };
    // SAFETY: the caller's contract; the kernel reads and writes KERNEL_SIGSET_SIZE bytes,
    // within glibc's 128-byte sets.
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
    let side = if args.own_table {
        super::ChildSide::SharedFdTable
    } else {
        super::ChildSide::SharedMemory
    };
    let (step, err) = set_up_child(args.request, args.keep, side);
    if args.own_table && step == SpawnStep::Stdio {
        args.report
            .retry_without_own_table
            .store(true, Ordering::Relaxed);
    }
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
    /// The highest signal number Linux has (`_NSIG - 1`).
    const LAST_SIGNAL: libc::c_int = if cfg!(any(target_arch = "mips", target_arch = "mips64")) {
        127
    } else {
        64
    };
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

/// The `CLONE_FILES` child's stdio, without copying the parent's fd table: a table of its own
/// holding only fds 0-2 (`close_range(3, ~0, CLOSE_RANGE_UNSHARE)` copies nothing above 2,
/// Linux 5.9+), then each stdio source numbered 3 or more copied from the parent by pidfd
/// (`pidfd_getfd`, 5.6+: allowed where the parent may be ptrace-attached by its child; Yama's
/// `ptrace_scope` 1, an LSM or seccomp may refuse) and `dup2`'d into place; a source that is
/// its own target has its close-on-exec flag cleared. With the N fds of the parent left out,
/// the child's set-up and its exec no longer copy and close them one by one. Fails, the table
/// still shared, if the kernel cannot unshare; after that, on a copy's failure. The caller
/// starts another child the usual way then. Async-signal-safe: raw syscalls only.
pub(super) fn take_stdio_from_parent(request: &SpawnRequest<'_>) -> io::Result<()> {
    use std::os::fd::{AsFd, AsRawFd, BorrowedFd};

    // SAFETY: with CLOSE_RANGE_UNSHARE the kernel gives this process a table of its own
    // holding copies of fds 0-2 and nothing above: the parent's table, shared until here, is
    // not changed, and this child uses none of the fds it loses (it has not opened any).
    let rc = unsafe {
        libc::syscall(
            libc::SYS_close_range,
            3 as libc::c_uint,
            libc::c_uint::MAX,
            libc::CLOSE_RANGE_UNSHARE,
        )
    };
    if rc != 0 {
        return Err(io::Error::last_os_error());
    }
    let needs_copy = |source: &Option<BorrowedFd<'_>>| source.is_some_and(|fd| fd.as_raw_fd() > 2);
    if !request.stdio.iter().any(needs_copy) {
        return set_own_stdio_inheritable(request);
    }
    let parent =
        rustix::process::getppid().ok_or_else(|| io::Error::from_raw_os_error(libc::ESRCH))?;
    // The parent cannot have exited (`CLONE_VFORK` holds it): its pid is still its own.
    let parent = rustix::process::pidfd_open(parent, rustix::process::PidfdFlags::empty())?;
    for (source, target) in request.stdio.iter().zip(super::STDIO_TARGETS) {
        let Some(source) = source.filter(|fd| fd.as_raw_fd() > 2) else {
            continue; // Inherited, or its own target: below.
        };
        // SAFETY: pidfd_getfd only reads its integer arguments; the new fd it returns (close-
        // on-exec) is owned here.
        let copy = unsafe {
            libc::syscall(
                libc::SYS_pidfd_getfd,
                parent.as_raw_fd(),
                source.as_raw_fd(),
                0 as libc::c_uint,
            )
        };
        if copy < 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: the fd pidfd_getfd just installed in this process's own table.
        let copy = unsafe { OwnedFd::from_raw_fd(copy as RawFd) };
        super::exec::redirect_stdio(copy.as_fd(), target)?;
    }
    set_own_stdio_inheritable(request)
}

/// A stdio source that is its own target (`spawn` gives any other source below 3 a copy
/// numbered 3 or more): our copy of the parent's fd at that number, made inheritable as
/// `dup2` would have made it.
fn set_own_stdio_inheritable(request: &SpawnRequest<'_>) -> io::Result<()> {
    use std::os::fd::AsRawFd;

    for (source, target) in request.stdio.iter().zip(super::STDIO_TARGETS) {
        if let Some(fd) = source.filter(|fd| fd.as_raw_fd() == target.raw()) {
            super::exec::redirect_stdio(fd, target)?;
        }
    }
    Ok(())
}
