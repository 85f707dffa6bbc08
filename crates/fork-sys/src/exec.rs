//! The child's side of fork+exec: everything here is async-signal-safe and allocation-free, so
//! it may run between `fork` and `exec` in a multi-threaded parent. Build a [`CStringArray`]
//! for argv and envp *before* forking; the functions below only read it.
//!
//! Exec failure travels back to the parent through a close-on-exec pipe, as in std and in
//! CPython's `_posixsubprocess`: the child writes its errno with [`report_errno_and_exit`]; the
//! parent calls [`read_exec_error`], which sees end-of-file (no error) when exec succeeded and
//! closed the pipe.

use std::ffi::{CStr, CString, OsStr};
use std::io;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd, RawFd};
use std::os::unix::ffi::OsStrExt;
use std::ptr;

use rustix::io::FdFlags;

use crate::{Pid, Signal, retry_eintr};

/// A NULL-terminated array of C strings, as `execve` wants for `argv` and `envp`, built before
/// the fork so the child never allocates.
#[derive(Debug)]
pub struct CStringArray {
    strings: Vec<CString>,
    /// Pointers into `strings`, then a NULL. `CString`s keep their heap buffer when the `Vec`
    /// holding them moves, so these stay valid for as long as `self` lives.
    pointers: Vec<*const libc::c_char>,
}

// SAFETY: the raw pointers point into `strings`, which `CStringArray` owns and never mutates
// after construction; sharing or sending the array is as safe as sharing `Vec<CString>`.
unsafe impl Send for CStringArray {}
// SAFETY: see `Send`: the pointers are only read.
unsafe impl Sync for CStringArray {}

impl CStringArray {
    /// Builds the array; fails with `InvalidInput` naming the item when one contains a NUL byte.
    pub fn new<I, S>(items: I) -> io::Result<CStringArray>
    where
        I: IntoIterator<Item = S>,
        S: AsRef<OsStr>,
    {
        let strings = items
            .into_iter()
            .map(|item| {
                let bytes = item.as_ref().as_bytes();
                CString::new(bytes).map_err(|_| {
                    io::Error::new(
                        io::ErrorKind::InvalidInput,
                        format!(
                            "{:?} contains a NUL byte and cannot be passed to exec",
                            item.as_ref()
                        ),
                    )
                })
            })
            .collect::<io::Result<Vec<CString>>>()?;
        let pointers = strings
            .iter()
            .map(|s| s.as_ptr())
            .chain(std::iter::once(ptr::null()))
            .collect();
        Ok(CStringArray { strings, pointers })
    }

    /// This process's environment as `KEY=value` strings, for [`exec`]'s `envp`. Read through
    /// `std::env`, which takes std's environment lock, so a concurrent `set_var` cannot tear it.
    pub fn from_current_env() -> io::Result<CStringArray> {
        CStringArray::new(std::env::vars_os().map(|(key, value)| {
            let mut entry = key;
            entry.push("=");
            entry.push(value);
            entry
        }))
    }

    /// The strings, without the terminating NULL.
    pub fn as_slice(&self) -> &[CString] {
        &self.strings
    }

    /// The NULL-terminated pointer array, valid while `self` lives.
    pub fn as_ptr(&self) -> *const *const libc::c_char {
        self.pointers.as_ptr()
    }
}

/// Replaces this process's program with `program` (`execve(2)`), passing `argv` and `envp`.
/// Returns only on failure.
///
/// `program` is a path: it is not looked up in `PATH` (resolve it before forking: the lookup
/// allocates). There is deliberately no "inherit the environment" variant: reading `environ`
/// in the child races with a `setenv` another thread was doing at the fork. Build `envp` with
/// [`CStringArray::from_current_env`] before forking instead, as std does under its env lock.
///
/// # References
///  - [POSIX](https://pubs.opengroup.org/onlinepubs/9799919799/functions/exec.html)
///  - [Linux](https://man7.org/linux/man-pages/man2/execve.2.html)
pub fn exec(program: &CStr, argv: &CStringArray, envp: &CStringArray) -> io::Error {
    // SAFETY: `program` is NUL-terminated; `argv` and `envp` are NULL-terminated arrays of
    // NUL-terminated strings that outlive the call (CStringArray's invariant).
    unsafe { libc::execve(program.as_ptr(), argv.as_ptr(), envp.as_ptr()) };
    io::Error::last_os_error()
}

/// One of the three standard streams, as a target for [`redirect_stdio`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StdioFd {
    /// fd 0.
    Stdin,
    /// fd 1.
    Stdout,
    /// fd 2.
    Stderr,
}

impl StdioFd {
    /// The fd number, 0 to 2.
    pub fn raw(self) -> RawFd {
        match self {
            StdioFd::Stdin => 0,
            StdioFd::Stdout => 1,
            StdioFd::Stderr => 2,
        }
    }
}

/// Makes `fd` the process's stdin, stdout or stderr (`dup2`), leaving it inheritable across
/// exec. When `fd` already *is* that number, `dup2` would do nothing and leave `FD_CLOEXEC`
/// set, so the flag is cleared instead (std does the same).
///
/// # References
///  - [POSIX](https://pubs.opengroup.org/onlinepubs/9799919799/functions/dup2.html)
pub fn redirect_stdio(fd: BorrowedFd<'_>, target: StdioFd) -> io::Result<()> {
    if fd.as_raw_fd() == target.raw() {
        return Ok(rustix::io::fcntl_setfd(fd, FdFlags::empty())?);
    }
    retry_eintr(|| match target {
        StdioFd::Stdin => rustix::stdio::dup2_stdin(fd),
        StdioFd::Stdout => rustix::stdio::dup2_stdout(fd),
        StdioFd::Stderr => rustix::stdio::dup2_stderr(fd),
    })
}

/// Closes every fd from `lowest` up, except those in `keep` (which must be sorted ascending),
/// so the program exec'd next inherits exactly the fds it was given. Async-signal-safe and
/// allocation-free, whichever way it goes:
///
/// - Linux 5.9+: `close_range` over each gap between the kept fds.
/// - Linux before 5.9 (`close_range` is `ENOSYS`): the open fds are listed from
///   `/proc/self/fd` with `getdents64` into a buffer on the stack, and each one is closed, so
///   an fd above a lowered `RLIMIT_NOFILE` soft limit is closed too (CPython bpo-21618).
///   Without `/proc`, a `close` loop up to the *hard* limit (at most 2^20 numbers): an fd
///   cannot be opened above it, whatever the soft limit was when it was opened.
/// - Elsewhere (macOS, the BSDs): a `close` loop up to the soft limit, at most 65,536 numbers;
///   an fd left above a soft limit lowered after it was opened stays open there.
///
/// # Safety
///
/// This closes descriptors that `File`s and `OwnedFd`s elsewhere in the process own. Call it
/// only in a forked child that will `exec` or `_exit` next and never touches those fds (or
/// the objects owning them) again; anywhere else it breaks I/O safety: a later write through
/// such an object could land in an unrelated file that reused the number.
///
/// # References
///  - [Linux close_range](https://man7.org/linux/man-pages/man2/close_range.2.html)
///  - [Linux getdents64](https://man7.org/linux/man-pages/man2/getdents64.2.html)
///  - [CPython bpo-21618](https://bugs.python.org/issue21618)
pub unsafe fn close_fds_from(lowest: RawFd, keep: &[RawFd]) -> io::Result<()> {
    let lowest = lowest.max(0);
    // SAFETY: the caller's contract, passed on.
    match unsafe { close_gaps_with_close_range(lowest, keep) } {
        Err(err) if err.raw_os_error() == Some(libc::ENOSYS) => {
            // SAFETY: the caller's contract, passed on.
            unsafe { close_fds_without_close_range(lowest, keep) }
        }
        other => other,
    }
}

/// Sets close-on-exec on every fd from `lowest` up (`close_range` with `CLOSE_RANGE_CLOEXEC`,
/// Linux 5.11+), so the next `execve` closes them; clear the flag again on fds the program
/// should inherit. Unlike [`close_fds_from`] it closes nothing now: in a vfork-style child the
/// closing then happens inside `execve`, after the suspended parent was released, instead of
/// while it waits. `EINVAL` (Linux 5.9 and 5.10) or `ENOSYS` (older, and off Linux) when the
/// kernel cannot: close the fds instead. Async-signal-safe.
///
/// # References
///  - [Linux close_range](https://man7.org/linux/man-pages/man2/close_range.2.html)
pub fn mark_cloexec_from(lowest: RawFd) -> io::Result<()> {
    #[cfg(target_os = "linux")]
    {
        // SAFETY: with CLOSE_RANGE_CLOEXEC, close_range only sets a flag on open fds; it
        // closes none, so no owner of an fd is affected before an exec.
        let rc = unsafe {
            libc::syscall(
                libc::SYS_close_range,
                lowest.max(0) as libc::c_uint,
                libc::c_uint::MAX,
                libc::CLOSE_RANGE_CLOEXEC,
            )
        };
        if rc == 0 {
            Ok(())
        } else {
            Err(io::Error::last_os_error())
        }
    }
    #[cfg(not(target_os = "linux"))]
    {
        let _ = lowest;
        Err(io::Error::from_raw_os_error(libc::ENOSYS))
    }
}

/// `close_range` over every gap between the kept fds, from `lowest` up; `ENOSYS` where the
/// kernel (before Linux 5.9) or the platform has no `close_range`.
///
/// # Safety
///
/// As [`close_fds_from`].
unsafe fn close_gaps_with_close_range(lowest: RawFd, keep: &[RawFd]) -> io::Result<()> {
    let mut start = lowest;
    for &kept in keep {
        if kept >= start {
            if kept > start {
                // SAFETY: the caller's contract, passed on.
                unsafe { close_range(start, kept - 1) }?;
            }
            start = kept + 1;
        }
    }
    // SAFETY: the caller's contract, passed on.
    unsafe { close_range(start, RawFd::MAX) }
}

/// Closes fds `first..=last` with the `close_range` syscall.
///
/// # Safety
///
/// As [`close_fds_from`]: nothing may use these descriptors afterwards.
#[cfg(target_os = "linux")]
unsafe fn close_range(first: RawFd, last: RawFd) -> io::Result<()> {
    // SAFETY: close_range only closes descriptors, and our caller promised that nothing uses
    // them afterwards (a child about to exec or `_exit`).
    let rc = unsafe {
        libc::syscall(
            libc::SYS_close_range,
            first as libc::c_uint,
            last as libc::c_uint,
            0 as libc::c_uint,
        )
    };
    if rc == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

/// No `close_range` on this platform: always `ENOSYS`, so the caller falls back.
///
/// # Safety
///
/// None needed; `unsafe` to match the Linux version.
#[cfg(not(target_os = "linux"))]
unsafe fn close_range(_first: RawFd, _last: RawFd) -> io::Result<()> {
    Err(io::Error::from_raw_os_error(libc::ENOSYS))
}

/// [`close_fds_from`] without `close_range`: closes the fds `/proc/self/fd` lists (Linux),
/// else every number up to the fd limit (see [`close_fds_from`] for which limit).
///
/// # Safety
///
/// As [`close_fds_from`].
unsafe fn close_fds_without_close_range(lowest: RawFd, keep: &[RawFd]) -> io::Result<()> {
    #[cfg(target_os = "linux")]
    {
        // SAFETY: the caller's contract, passed on.
        if unsafe { close_listed_fds(lowest, keep) }? {
            return Ok(());
        }
    }
    let highest = highest_possible_fd();
    let mut kept = keep.iter().copied().peekable();
    for fd in lowest..=highest {
        while kept.next_if(|&k| k < fd).is_some() {}
        if kept.next_if_eq(&fd).is_some() {
            continue;
        }
        // SAFETY: closing a number that is not open fails with EBADF, which we ignore; our
        // caller promised that nothing uses these descriptors afterwards.
        unsafe { libc::close(fd) };
    }
    Ok(())
}

/// The highest fd number a `close` loop must reach: on Linux the hard `RLIMIT_NOFILE` (no fd
/// can be opened above it, and `setrlimit` cannot raise it past `fs.nr_open`), at most 2^20;
/// elsewhere the soft limit, at most 65,536 (a hard limit there is often "unlimited").
fn highest_possible_fd() -> RawFd {
    const LINUX_CEILING: RawFd = 1 << 20;
    const OTHER_CEILING: RawFd = 1 << 16;
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit writes into the struct we pass; it is async-signal-safe (a syscall).
    let got = unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) } == 0;
    let (bound, ceiling) = if cfg!(target_os = "linux") {
        (limit.rlim_max, LINUX_CEILING)
    } else {
        (limit.rlim_cur, OTHER_CEILING)
    };
    if !got {
        return ceiling;
    }
    RawFd::try_from(bound).map_or(ceiling, |bound| bound.min(ceiling))
}

/// Closes every fd `/proc/self/fd` lists from `lowest` up, except `keep` and the listing's
/// own fd; `Ok(false)` when `/proc/self/fd` cannot be opened (no `/proc`), so the caller falls
/// back to a loop. Reads with `getdents64` into a buffer on this stack: no allocation, no
/// lock, async-signal-safe. Passes repeat until one finds nothing left to close, so an entry a
/// close might have made the listing skip is caught by the next pass.
///
/// # Safety
///
/// As [`close_fds_from`].
#[cfg(target_os = "linux")]
unsafe fn close_listed_fds(lowest: RawFd, keep: &[RawFd]) -> io::Result<bool> {
    use std::mem::MaybeUninit;

    use rustix::fs::{Mode, OFlags, RawDir, SeekFrom};

    let Ok(dir) = rustix::fs::openat(
        rustix::fs::CWD,
        c"/proc/self/fd",
        OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC,
        Mode::empty(),
    ) else {
        return Ok(false);
    };
    let dir_fd = dir.as_raw_fd();
    let mut buffer = [MaybeUninit::<u8>::uninit(); 2048];
    loop {
        rustix::fs::seek(&dir, SeekFrom::Start(0))?;
        let mut closed_any = false;
        let mut entries = RawDir::new(&dir, &mut buffer);
        while let Some(entry) = entries.next() {
            let Some(fd) = parse_fd(entry?.file_name().to_bytes()) else {
                continue; // "." and ".."
            };
            if fd < lowest || fd == dir_fd || keep.binary_search(&fd).is_ok() {
                continue;
            }
            // SAFETY: our caller promised that nothing uses these descriptors afterwards; an
            // error (EBADF for one closed meanwhile) changes nothing.
            unsafe { libc::close(fd) };
            closed_any = true;
        }
        if !closed_any {
            return Ok(true);
        }
    }
}

/// A `/proc/self/fd` entry's name as an fd number; `None` for anything but decimal digits.
#[cfg(target_os = "linux")]
fn parse_fd(name: &[u8]) -> Option<RawFd> {
    if name.is_empty() {
        return None;
    }
    name.iter().try_fold(0 as RawFd, |fd, &byte| {
        let digit = byte.checked_sub(b'0').filter(|d| *d < 10)?;
        fd.checked_mul(10)?.checked_add(RawFd::from(digit))
    })
}

/// Starts a new session with this process as its leader (`setsid(2)`), detaching it from the
/// controlling terminal; returns the new session id.
///
/// # References
///  - [POSIX](https://pubs.opengroup.org/onlinepubs/9799919799/functions/setsid.html)
pub fn setsid() -> io::Result<Pid> {
    Ok(Pid::from_rustix(rustix::process::setsid()?))
}

/// Moves this process into the process group `pgid`, or into a new group of its own when
/// `None` (`setpgid(0, pgid)`).
///
/// # References
///  - [POSIX](https://pubs.opengroup.org/onlinepubs/9799919799/functions/setpgid.html)
pub fn setpgid(pgid: Option<Pid>) -> io::Result<()> {
    Ok(rustix::process::setpgid(None, pgid.map(Pid::to_rustix))?)
}

/// Asks the kernel to send `signal` to this process when its parent thread dies
/// (`PR_SET_PDEATHSIG`), or clears the request with `None`.
///
/// If the parent died before this call, the signal never comes: check afterwards that
/// [`getppid`](crate::getppid) is still the expected parent. Linux only;
/// `ErrorKind::Unsupported` elsewhere. Async-signal-safe, errors included.
///
/// # References
///  - [Linux](https://man7.org/linux/man-pages/man2/PR_SET_PDEATHSIG.2const.html)
pub fn set_parent_death_signal(signal: Option<Signal>) -> io::Result<()> {
    #[cfg(any(target_os = "linux", target_os = "android"))]
    {
        let signal = signal.map(Signal::to_rustix).transpose()?;
        Ok(rustix::process::set_parent_process_death_signal(signal)?)
    }
    #[cfg(not(any(target_os = "linux", target_os = "android")))]
    {
        let _ = signal;
        // A bare kind: `io::Error::new` would allocate, and this runs between fork and exec.
        Err(io::ErrorKind::Unsupported.into())
    }
}

/// Restores what a Rust program changes but an exec'd program expects untouched: the Rust
/// runtime ignores `SIGPIPE`, and dispositions set to "ignore" survive exec, so `SIGPIPE` goes
/// back to its default; and the signal mask is emptied, since the mask also survives exec.
///
/// # References
///  - [POSIX](https://pubs.opengroup.org/onlinepubs/9799919799/functions/sigprocmask.html)
pub fn reset_signals_for_exec() -> io::Result<()> {
    // SAFETY: `signal` and `sigprocmask` are async-signal-safe; the set is initialised by
    // `sigemptyset` before use, and the previous mask is not requested (null).
    unsafe {
        if libc::signal(libc::SIGPIPE, libc::SIG_DFL) == libc::SIG_ERR {
            return Err(io::Error::last_os_error());
        }
        let mut empty = std::mem::MaybeUninit::<libc::sigset_t>::uninit();
        libc::sigemptyset(empty.as_mut_ptr());
        if libc::sigprocmask(libc::SIG_SETMASK, empty.as_ptr(), ptr::null_mut()) != 0 {
            return Err(io::Error::last_os_error());
        }
    }
    Ok(())
}

/// The child's half of exec-error reporting: writes `errno` as 4 bytes to `fd` (the write end of
/// a close-on-exec pipe) and leaves with `_exit(127)`. Async-signal-safe.
pub fn report_errno_and_exit(fd: BorrowedFd<'_>, errno: i32) -> ! {
    let bytes = errno.to_ne_bytes();
    let _ = retry_eintr(|| rustix::io::write(fd, &bytes));
    crate::exit_immediately(127)
}

/// The parent's half of exec-error reporting: reads the pipe's read end until end-of-file.
/// `Ok(None)` means exec succeeded (the child's copy of the write end was closed by exec);
/// `Ok(Some(err))` is the errno the child sent. Close the parent's copy of the write end first,
/// or this never sees end-of-file.
pub fn read_exec_error(read_end: OwnedFd) -> io::Result<Option<io::Error>> {
    let mut buf = [0u8; 4];
    let mut filled = 0;
    while filled < buf.len() {
        match retry_eintr(|| rustix::io::read(read_end.as_fd(), &mut buf[filled..]))? {
            0 => break,
            n => filled += n,
        }
    }
    match filled {
        0 => Ok(None),
        4 => Ok(Some(io::Error::from_raw_os_error(i32::from_ne_bytes(buf)))),
        n => Err(io::Error::new(
            io::ErrorKind::InvalidData,
            format!("exec error pipe: expected 4 bytes of errno, got {n}"),
        )),
    }
}
