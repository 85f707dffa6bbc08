//! A forked child's own stack-overflow report.
//!
//! std's guard-page handler still works in a forked child, but it names the thread that forked
//! and that thread's id *in the parent* (docs/fork-sys.md, "A forked child's stack overflow"):
//! its per-thread table was copied by `fork` and cannot be told about the child.
//! [`report_stack_overflow_as_this_process`] replaces it in the child with a handler that
//! knows only the guard range the faulting thread recorded in its own thread-local before the
//! handler was installed, so the handler itself only compares, asks for its pid, writes and
//! aborts.
//!
//! Every page a forked child touches costs it a page fault (a copy-on-write one for data, a
//! fresh mapping for code and read-only data, which `fork` does not copy), and those faults
//! are most of what a small child costs over the bare fork. So the child's side does as little
//! as it can: whatever can be learnt before the fork ([`prepare_stack_overflow_report`]: the
//! guard range, whether the thread has an alternate stack) is, the range stays in the
//! thread's TLS (whose pages the kernel has already written in the child) rather than in a
//! global, the handler is installed by a system call made from this crate's code rather than
//! through libc's `sigaction` (another window of code), and the pid is formatted by the
//! handler, only when there is an overflow to report.

use std::io;

/// Size of the alternate signal stack set up when the thread has none (std gives each of its
/// threads one; a thread started otherwise may not have it). The handler needs a few hundred
/// bytes; this leaves room for the kernel's signal frame with large vector state.
#[cfg(target_os = "linux")]
const ALT_STACK_SIZE: usize = 64 * 1024;

/// Makes a stack overflow of the **calling thread** print
/// `process <pid> has overflowed its stack` (the pid of this process, as it is now) and abort
/// (`SIGABRT`), as std does, instead of std's report, which in a forked child names the
/// *parent's* forking thread and its parent-side id. Meant for a forked child, right after the
/// fork and before it runs user code; it is what proc-core's child side calls.
///
/// What it does, in order: records the calling thread's stack guard range
/// (`pthread_getattr_np`: the stack's base, plus or minus its guard size, at least a page —
/// the range std uses, which covers glibc before and after 2.27); gives the thread an
/// alternate signal stack if it has none (a forked child inherits its forking thread's, which
/// std set up; otherwise a leaked 64 KiB `mmap`); then installs a `SIGSEGV` and `SIGBUS`
/// handler (`SA_ONSTACK | SA_SIGINFO`), process-wide (on x86-64 with the `rt_sigaction`
/// system call itself and a restorer of this crate's, elsewhere through libc's `sigaction`). The range, and whether the thread has an
/// alternate stack, come from [`prepare_stack_overflow_report`] when the thread called it
/// before forking (a system call and a page fault saved in the child).
///
/// The handler is async-signal-safe: a fault (kernel-generated, `si_code > 0`) whose address
/// is in the faulting thread's recorded guard range formats the report with the pid `getpid` gives it then,
/// writes it to fd 2 with one `write` and calls `abort`. Any other fault puts the signal's
/// default action back and returns, so the faulting instruction runs again and the process
/// dies of the real signal (`SIGSEGV`, `SIGBUS`); a
/// `SIGSEGV`/`SIGBUS` sent with `kill` is raised again at its default action.
///
/// Contract, for a sound and useful result:
/// - Call it once per process, from the thread that will overflow (a forked child's only
///   thread). Overflows of *other* threads are recognised only if they recorded their own
///   range (by calling this function or [`prepare_stack_overflow_report`]); otherwise, after
///   this call, they die of plain `SIGSEGV` with no report, as does any fault while std's
///   handler is gone.
/// - It replaces every `SIGSEGV`/`SIGBUS` handler of the process, std's and the program's.
/// - It is not async-signal-safe itself: `pthread_getattr_np` allocates (and reads
///   `/proc/self/maps` for a process's initial thread). In a child forked from a
///   multi-threaded parent, call it only where allocation is allowed (glibc's `malloc` is
///   reset by its atfork handlers; see [`fork`](crate::fork)'s contract).
///
/// Linux only; elsewhere it returns an `Unsupported` error and changes nothing.
///
/// # References
///  - [Linux: pthread_getattr_np](https://man7.org/linux/man-pages/man3/pthread_getattr_np.3.html)
///  - [POSIX: sigaltstack](https://pubs.opengroup.org/onlinepubs/9799919799/functions/sigaltstack.html)
///  - [POSIX: sigaction](https://pubs.opengroup.org/onlinepubs/9799919799/functions/sigaction.html)
// Inlined: a forked child runs it, and each 64 KiB window of code a child runs costs it a
// page fault (fork does not copy the page tables of the program's text).
#[inline]
pub fn report_stack_overflow_as_this_process() -> io::Result<()> {
    #[cfg(target_os = "linux")]
    {
        // The handler reads it from this thread's copy: nothing is stored in a global, whose
        // page the child would have to copy.
        cached_guard_range()?;
        // Learnt before the fork by `prepare_stack_overflow_report`, if it was called; a
        // stack set up since (or none known) is asked about here.
        if !ALT_STACK_SEEN.get() {
            ensure_alternate_stack()?;
        }
        install(libc::SIGSEGV)?;
        install(libc::SIGBUS)?;
        Ok(())
    }
    #[cfg(not(target_os = "linux"))]
    {
        Err(io::ErrorKind::Unsupported.into())
    }
}

/// Works out the calling thread's stack guard range now and remembers it for this thread, so
/// that [`report_stack_overflow_as_this_process`] in a child forked from this thread later
/// costs no `pthread_getattr_np` (which, on a process's initial thread, parses
/// `/proc/self/maps`: a fifth of a millisecond in a forked child); and asks whether the thread
/// has an alternate signal stack (one `sigaltstack` query), which the child inherits, so the
/// child need not ask. Call it in the parent right before forking; the child's copy of the
/// thread keeps the answers. Linux only; a no-op elsewhere.
pub fn prepare_stack_overflow_report() {
    #[cfg(target_os = "linux")]
    {
        let _ = cached_guard_range();
        // Stored only when it changed: each page the parent writes between two forks is a
        // copy-on-write fault, and this one (the thread's TLS) need not be among them.
        let seen = has_alternate_stack().unwrap_or(false);
        if ALT_STACK_SEEN.get() != seen {
            ALT_STACK_SEEN.set(seen);
        }
    }
}

#[cfg(target_os = "linux")]
thread_local! {
    /// The calling thread's guard range, once worked out.
    static GUARD_RANGE: std::cell::Cell<Option<(usize, usize)>> = const { std::cell::Cell::new(None) };
    /// Whether the thread had an alternate signal stack when `prepare_stack_overflow_report`
    /// last asked (`false`: not known to, so the child asks itself).
    static ALT_STACK_SEEN: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
}

/// [`current_guard_range`], computed once per thread.
#[cfg(target_os = "linux")]
// Inlined: a forked child runs it, and each 64 KiB window of code a child runs costs it a
// page fault (fork does not copy the page tables of the program's text).
#[inline]
fn cached_guard_range() -> io::Result<(usize, usize)> {
    if let Some(range) = GUARD_RANGE.get() {
        return Ok(range);
    }
    let range = current_guard_range()?;
    GUARD_RANGE.set(Some(range));
    Ok(range)
}

/// The calling thread's guard range, computed as std does on Linux: glibc before 2.27 counted
/// the guard inside the reported stack, later releases put it below, so any fault within a
/// guard size either side of the stack's base counts. A process's initial thread has no guard
/// of its own (the kernel's stack limit plays that part) and reports a size of 0 or a page: at
/// least a page either side, then.
#[cfg(target_os = "linux")]
fn current_guard_range() -> io::Result<(usize, usize)> {
    // SAFETY: all-zero is valid storage for a pthread_attr_t, which pthread_getattr_np
    // initialises.
    let mut attr: libc::pthread_attr_t = unsafe { std::mem::zeroed() };
    // SAFETY: `attr` is valid storage; pthread_self() is the calling, live thread.
    let result = unsafe { libc::pthread_getattr_np(libc::pthread_self(), &mut attr) };
    if result != 0 {
        return Err(io::Error::from_raw_os_error(result));
    }
    let mut stack_addr: *mut libc::c_void = std::ptr::null_mut();
    let mut stack_size: libc::size_t = 0;
    let mut guard_size: libc::size_t = 0;
    // SAFETY: `attr` was initialised by pthread_getattr_np above; the out-pointers are valid
    // locals.
    let (stack, guard) = unsafe {
        (
            libc::pthread_attr_getstack(&attr, &mut stack_addr, &mut stack_size),
            libc::pthread_attr_getguardsize(&attr, &mut guard_size),
        )
    };
    // SAFETY: `attr` was initialised by pthread_getattr_np and is not used after this.
    unsafe { libc::pthread_attr_destroy(&mut attr) };
    if stack != 0 {
        return Err(io::Error::from_raw_os_error(stack));
    }
    if guard != 0 {
        return Err(io::Error::from_raw_os_error(guard));
    }
    let guard = guard_size.max(page_size());
    let base = stack_addr as usize;
    Ok((base.saturating_sub(guard), base.saturating_add(guard)))
}

#[cfg(target_os = "linux")]
pub(crate) fn page_size() -> usize {
    // SAFETY: sysconf has no preconditions.
    let size = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
    usize::try_from(size)
        .ok()
        .filter(|&s| s > 0)
        .unwrap_or(4096)
}

/// Gives the calling thread an alternate signal stack if it has none, so the handler can run
/// when the thread's own stack is exhausted.
#[cfg(target_os = "linux")]
fn ensure_alternate_stack() -> io::Result<()> {
    if has_alternate_stack()? {
        return Ok(()); // inherited from the forking thread (std sets one up for its threads)
    }
    let page = page_size();
    let size = ALT_STACK_SIZE.max(libc::SIGSTKSZ);
    // SAFETY: an anonymous private mapping at an address of the kernel's choosing touches no
    // existing memory.
    let mapping = unsafe {
        libc::mmap(
            std::ptr::null_mut(),
            size + page,
            libc::PROT_READ | libc::PROT_WRITE,
            libc::MAP_PRIVATE | libc::MAP_ANONYMOUS,
            -1,
            0,
        )
    };
    if mapping == libc::MAP_FAILED {
        return Err(io::Error::last_os_error());
    }
    // A guard page below the alternate stack, so that overflowing *it* faults rather than
    // writing over whatever lies below. Best effort: without it the stack still works.
    // SAFETY: the first page of the mapping just created, which nothing else uses.
    let _ = unsafe { libc::mprotect(mapping, page, libc::PROT_NONE) };
    let stack = libc::stack_t {
        // SAFETY: `page` bytes past the start stays inside the `size + page` bytes mapped.
        ss_sp: unsafe { mapping.cast::<u8>().add(page) }.cast(),
        ss_flags: 0,
        ss_size: size,
    };
    // SAFETY: `stack` describes `size` bytes of the mapping above, which is never unmapped (it
    // is leaked for the life of the process).
    if unsafe { libc::sigaltstack(&stack, std::ptr::null_mut()) } != 0 {
        let err = io::Error::last_os_error();
        // SAFETY: the mapping was not registered, so nothing refers to it.
        unsafe { libc::munmap(mapping, size + page) };
        return Err(err);
    }
    Ok(())
}

/// Whether the calling thread has an alternate signal stack.
#[cfg(target_os = "linux")]
fn has_alternate_stack() -> io::Result<bool> {
    // SAFETY: all-zero is valid storage for a stack_t, which sigaltstack fills in.
    let mut current: libc::stack_t = unsafe { std::mem::zeroed() };
    // SAFETY: a null new stack only queries; `current` is valid storage.
    if unsafe { libc::sigaltstack(std::ptr::null(), &mut current) } != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(current.ss_flags & libc::SS_DISABLE == 0)
}

/// Makes [`on_fault`] the handler of `signal` (`SA_SIGINFO | SA_ONSTACK`, empty mask).
#[cfg(target_os = "linux")]
// Inlined: a forked child runs it, and each 64 KiB window of code a child runs costs it a
// page fault (fork does not copy the page tables of the program's text).
#[inline]
fn install(signal: libc::c_int) -> io::Result<()> {
    #[cfg(target_arch = "x86_64")]
    {
        kernel_sigaction::install(signal, on_fault)
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        install_through_libc(signal)
    }
}

/// [`install`] through libc's `sigaction`.
#[cfg(all(target_os = "linux", not(target_arch = "x86_64")))]
fn install_through_libc(signal: libc::c_int) -> io::Result<()> {
    // SAFETY: all-zero is a valid `sigaction` (no flags, empty mask) that we fill in below.
    let mut action: libc::sigaction = unsafe { std::mem::zeroed() };
    action.sa_sigaction = on_fault as FaultHandler as libc::sighandler_t;
    action.sa_flags = libc::SA_SIGINFO | libc::SA_ONSTACK;
    // SAFETY: `sa_mask` is a valid sigset_t that sigemptyset initialises.
    unsafe { libc::sigemptyset(&mut action.sa_mask) };
    // SAFETY: `action` is fully initialised and its handler, `on_fault`, takes the
    // three-argument form SA_SIGINFO calls for and is async-signal-safe. A null old-action
    // pointer is allowed.
    if unsafe { libc::sigaction(signal, &action, std::ptr::null_mut()) } == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

/// The form of handler `SA_SIGINFO` calls.
#[cfg(target_os = "linux")]
type FaultHandler = extern "C" fn(libc::c_int, *mut libc::siginfo_t, *mut libc::c_void);

/// `rt_sigaction` as a system call made from this crate's own code, on x86-64 Linux.
///
/// libc's `sigaction` would do the same, but its code lies in a 64 KiB window of libc that a
/// forked child touches for nothing else: a page fault in every `Process` child (fork does not
/// copy the page tables of code), several µs on a VM and the largest single item a child
/// spends over the bare fork. The kernel's interface is fixed by its ABI: the handler, the
/// flags, the *restorer* (the code the handler returns into, which must make the
/// `rt_sigreturn` call; x86-64 has no default one, so every libc passes its own with
/// `SA_RESTORER`) and a 64-bit mask.
#[cfg(all(target_os = "linux", target_arch = "x86_64"))]
mod kernel_sigaction {
    use std::io;

    use super::FaultHandler;

    /// The `struct sigaction` that x86-64's `rt_sigaction` reads (the kernel's
    /// `include/linux/signal_types.h`, with the architecture's `sa_restorer`): not libc's,
    /// whose mask is 1024 bits and whose field order differs.
    #[repr(C)]
    struct KernelSigaction {
        handler: usize,
        flags: u64,
        restorer: usize,
        mask: u64,
    }

    /// `SA_RESTORER` (`arch/x86/include/uapi/asm/signal.h`): `restorer` is set.
    const SA_RESTORER: u64 = 0x0400_0000;
    /// `__NR_rt_sigaction` on x86-64.
    const SYS_RT_SIGACTION: usize = 13;

    /// The restorer: `rt_sigreturn` (`__NR_rt_sigreturn`, 15), in the very bytes glibc's
    /// `__restore_rt` uses (`48 c7 c0 0f 00 00 00 0f 05`), which is how unwinders (libgcc's,
    /// gdb's) recognise a signal frame and step through it.
    #[unsafe(naked)]
    extern "C" fn restore_rt() {
        std::arch::naked_asm!("mov rax, 15", "syscall", "ud2");
    }

    /// Makes `handler` the handler of `signal`, with `SA_SIGINFO | SA_ONSTACK` and an empty
    /// mask, as libc's `sigaction` would.
    #[inline]
    pub(super) fn install(signal: libc::c_int, handler: FaultHandler) -> io::Result<()> {
        let action = KernelSigaction {
            handler: handler as usize,
            flags: (libc::SA_SIGINFO | libc::SA_ONSTACK) as u64 | SA_RESTORER,
            restorer: restore_rt as *const () as usize,
            mask: 0,
        };
        let result: isize;
        // SAFETY: `rt_sigaction(signal, &action, NULL, 8)`: the kernel reads `action`, a valid
        // local of the layout it expects for a mask of 8 bytes, and writes nothing (no old
        // action). `handler` has the three-argument form SA_SIGINFO calls for and is
        // async-signal-safe (the caller's contract); `restore_rt` makes the `rt_sigreturn`
        // call the kernel's signal frame expects. `syscall` clobbers rcx and r11 and nothing
        // else, and restores the flags.
        unsafe {
            std::arch::asm!(
                "syscall",
                inlateout("rax") SYS_RT_SIGACTION as isize => result,
                in("rdi") signal as isize,
                in("rsi") &raw const action,
                in("rdx") 0usize,
                in("r10") 8usize,
                lateout("rcx") _,
                lateout("r11") _,
                options(nostack, preserves_flags),
            );
        }
        if (-4095..0).contains(&result) {
            Err(io::Error::from_raw_os_error(-result as i32))
        } else {
            Ok(())
        }
    }
}

/// The report for process `pid`, `\nprocess <pid> has overflowed its stack\nfatal runtime
/// error: stack overflow, aborting\n`, written into `out` without allocating; its length.
/// Async-signal-safe.
#[cfg(target_os = "linux")]
fn format_report(pid: i32, out: &mut [u8; REPORT_CAPACITY]) -> usize {
    let mut digits = [0u8; 12];
    let mut n = pid.unsigned_abs();
    let mut first = digits.len();
    loop {
        first -= 1;
        digits[first] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    let parts: [&[u8]; 3] = [
        b"\nprocess ",
        &digits[first..],
        b" has overflowed its stack\nfatal runtime error: stack overflow, aborting\n",
    ];
    let mut len = 0;
    for byte in parts.iter().flat_map(|part| part.iter()) {
        if let Some(slot) = out.get_mut(len) {
            *slot = *byte;
            len += 1;
        }
    }
    len
}

/// Room for the report: its fixed text and a pid of up to 12 digits.
#[cfg(target_os = "linux")]
const REPORT_CAPACITY: usize = 128;

/// The handler. Async-signal-safe: atomic loads, `getpid`, `write`, `abort`, `sigaction`,
/// `raise`.
#[cfg(target_os = "linux")]
extern "C" fn on_fault(
    signal: libc::c_int,
    info: *mut libc::siginfo_t,
    _context: *mut libc::c_void,
) {
    // SAFETY: with SA_SIGINFO the kernel passes a valid siginfo_t for the signal being
    // handled; for SIGSEGV and SIGBUS `si_addr` is the field it fills in.
    let (code, address) = unsafe { ((*info).si_code, (*info).si_addr() as usize) };
    // The faulting thread's own range: a const-initialised thread-local without a destructor
    // is a plain read of the thread's TLS block, which lies apart from its stack's guard.
    let overflowed = GUARD_RANGE
        .get()
        .is_some_and(|(start, end)| start <= address && address < end);
    if code > 0 && overflowed {
        let mut message = [0u8; REPORT_CAPACITY];
        let len = format_report(crate::getpid().as_raw(), &mut message);
        // SAFETY: `message[..len]` is initialised local memory; fd 2 may be closed, in which
        // case write fails harmlessly.
        let _ = unsafe { libc::write(2, message.as_ptr().cast(), len) };
        // SAFETY: abort is async-signal-safe and never returns.
        unsafe { libc::abort() };
    }
    // Not an overflow of ours: the default action, which the fault (repeated when we return)
    // or, for a signal sent with kill, the re-raised signal (pending until we return, since the
    // handler blocks it) then takes.
    // SAFETY: all-zero is a valid `sigaction`; SIG_DFL is 0, so it is the default action with
    // no flags and an empty mask. A null old-action pointer is allowed.
    unsafe {
        let default: libc::sigaction = std::mem::zeroed();
        libc::sigaction(signal, &default, std::ptr::null_mut());
    }
    if code <= 0 {
        // SAFETY: raise is async-signal-safe; `signal` is the signal being handled.
        unsafe { libc::raise(signal) };
    }
}
