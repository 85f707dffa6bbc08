//! Signals: a `Signal` type with readable names, and sending signals by pid or process group.

use std::fmt;
use std::io;
use std::num::NonZeroI32;

use crate::Pid;

/// A signal number that names a real signal on this platform.
///
/// `Display` prints the conventional name (`SIGKILL`), or `signal 40` for a real-time signal.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct Signal(NonZeroI32);

/// Declares named signals: a `Signal` constant each, and `$table` pairing numbers with names
/// (for `Display` and `from_raw`).
macro_rules! named_signals {
    ($table:ident; $($(#[$meta:meta])* $konst:ident = $libc:ident;)*) => {
        impl Signal {
            $(
                $(#[$meta])*
                pub const $konst: Signal = Signal::from_libc(libc::$libc);
            )*
        }

        const $table: &[(i32, &str)] = &[$((libc::$libc, stringify!($libc)),)*];
    };
}

named_signals! {
    NAMED;
    /// `SIGHUP`: the controlling terminal hung up.
    HUP = SIGHUP;
    /// `SIGINT`: interrupt from the keyboard (Ctrl-C).
    INT = SIGINT;
    /// `SIGQUIT`: quit from the keyboard, with a core dump.
    QUIT = SIGQUIT;
    /// `SIGILL`: illegal instruction.
    ILL = SIGILL;
    /// `SIGTRAP`: trace or breakpoint trap.
    TRAP = SIGTRAP;
    /// `SIGABRT`: `abort()` was called.
    ABRT = SIGABRT;
    /// `SIGBUS`: bus error (bad memory access).
    BUS = SIGBUS;
    /// `SIGFPE`: arithmetic exception.
    FPE = SIGFPE;
    /// `SIGKILL`: kill; cannot be caught or ignored.
    KILL = SIGKILL;
    /// `SIGUSR1`: user-defined signal 1.
    USR1 = SIGUSR1;
    /// `SIGSEGV`: invalid memory reference.
    SEGV = SIGSEGV;
    /// `SIGUSR2`: user-defined signal 2.
    USR2 = SIGUSR2;
    /// `SIGPIPE`: write to a pipe with no reader.
    PIPE = SIGPIPE;
    /// `SIGALRM`: timer from `alarm`.
    ALRM = SIGALRM;
    /// `SIGTERM`: polite request to terminate.
    TERM = SIGTERM;
    /// `SIGCHLD`: a child stopped or terminated.
    CHLD = SIGCHLD;
    /// `SIGCONT`: continue if stopped.
    CONT = SIGCONT;
    /// `SIGSTOP`: stop; cannot be caught or ignored.
    STOP = SIGSTOP;
    /// `SIGTSTP`: stop typed at the terminal (Ctrl-Z).
    TSTP = SIGTSTP;
    /// `SIGTTIN`: terminal input for a background process.
    TTIN = SIGTTIN;
    /// `SIGTTOU`: terminal output for a background process.
    TTOU = SIGTTOU;
    /// `SIGURG`: urgent condition on a socket.
    URG = SIGURG;
    /// `SIGXCPU`: CPU time limit exceeded.
    XCPU = SIGXCPU;
    /// `SIGXFSZ`: file size limit exceeded.
    XFSZ = SIGXFSZ;
    /// `SIGVTALRM`: virtual alarm clock.
    VTALRM = SIGVTALRM;
    /// `SIGPROF`: profiling timer expired.
    PROF = SIGPROF;
    /// `SIGWINCH`: the terminal window was resized.
    WINCH = SIGWINCH;
    /// `SIGIO`: I/O is possible on a descriptor.
    IO = SIGIO;
    /// `SIGSYS`: bad system call.
    SYS = SIGSYS;
}

#[cfg(any(target_os = "linux", target_os = "android"))]
named_signals! {
    NAMED_EXTRA;
    /// `SIGPWR`: power failure.
    PWR = SIGPWR;
    /// `SIGSTKFLT`: coprocessor stack fault.
    STKFLT = SIGSTKFLT;
}

#[cfg(any(
    target_os = "macos",
    target_os = "ios",
    target_os = "freebsd",
    target_os = "netbsd",
    target_os = "openbsd",
    target_os = "dragonfly"
))]
named_signals! {
    NAMED_EXTRA;
    /// `SIGEMT`: emulator trap.
    EMT = SIGEMT;
    /// `SIGINFO`: status request from the keyboard (Ctrl-T).
    INFO = SIGINFO;
}

impl Signal {
    const fn from_libc(raw: i32) -> Signal {
        match NonZeroI32::new(raw) {
            Some(nz) => Signal(nz),
            None => panic!("libc signal constants are non-zero"),
        }
    }

    /// The signal with this number, or `None` when it names no signal this platform knows
    /// (0, negatives, numbers past the real-time range, and the real-time signals libc reserves
    /// for itself).
    pub fn from_raw(raw: i32) -> Option<Signal> {
        if Signal::is_sendable(raw) {
            NonZeroI32::new(raw).map(Signal)
        } else {
            None
        }
    }

    /// A signal the kernel reported (a child's terminating signal): taken as it is, even a
    /// number `from_raw` would refuse (one of libc's reserved real-time signals), because the
    /// child *did* die of it. `None` only for 0 and negatives.
    pub(crate) fn from_kernel(raw: i32) -> Option<Signal> {
        NonZeroI32::new(raw).filter(|n| n.get() > 0).map(Signal)
    }

    /// Named, or in the real-time range libc leaves to programs.
    fn is_sendable(raw: i32) -> bool {
        named_table().any(|(n, _)| n == raw) || realtime_range().is_some_and(|r| r.contains(&raw))
    }

    /// The raw signal number.
    pub const fn as_raw(self) -> i32 {
        self.0.get()
    }

    /// The conventional name, like `"SIGTERM"`; `None` for a real-time signal.
    pub fn name(self) -> Option<&'static str> {
        named_table()
            .find(|&(n, _)| n == self.as_raw())
            .map(|(_, name)| name)
    }

    /// The rustix signal, for sending. Refuses (`InvalidInput`) a number only the kernel can
    /// hand us, such as a real-time signal libc reserves for itself: rustix may not carry those.
    pub(crate) fn to_rustix(self) -> std::io::Result<rustix::process::Signal> {
        if !Signal::is_sendable(self.as_raw()) {
            return Err(std::io::ErrorKind::InvalidInput.into());
        }
        // SAFETY: just checked: a named signal, or a real-time signal between `SIGRTMIN()` and
        // `SIGRTMAX()`, which libc has already moved past the ones it reserves; that is what
        // `from_raw_unchecked` asks for.
        Ok(unsafe { rustix::process::Signal::from_raw_unchecked(self.as_raw()) })
    }
}

/// Every named signal of this platform, with its name.
fn named_table() -> impl Iterator<Item = (i32, &'static str)> {
    NAMED.iter().chain(NAMED_EXTRA).copied()
}

#[cfg(not(any(
    target_os = "linux",
    target_os = "android",
    target_os = "macos",
    target_os = "ios",
    target_os = "freebsd",
    target_os = "netbsd",
    target_os = "openbsd",
    target_os = "dragonfly"
)))]
const NAMED_EXTRA: &[(i32, &str)] = &[];

#[cfg(any(target_os = "linux", target_os = "android"))]
fn realtime_range() -> Option<std::ops::RangeInclusive<i32>> {
    Some(libc::SIGRTMIN()..=libc::SIGRTMAX())
}

#[cfg(not(any(target_os = "linux", target_os = "android")))]
fn realtime_range() -> Option<std::ops::RangeInclusive<i32>> {
    None
}

impl fmt::Display for Signal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.name() {
            Some(name) => f.write_str(name),
            None => write!(f, "signal {}", self.as_raw()),
        }
    }
}

impl fmt::Debug for Signal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Signal({self})")
    }
}

/// Sends `signal` to the process `pid` (`kill(2)` with a positive pid).
///
/// Prefer [`ChildHandle::send_signal`](crate::ChildHandle::send_signal) for your own children: it
/// cannot hit an unrelated process that reused the pid after the child was reaped.
///
/// # References
///  - [POSIX](https://pubs.opengroup.org/onlinepubs/9799919799/functions/kill.html)
///  - [Linux](https://man7.org/linux/man-pages/man2/kill.2.html)
pub fn kill(pid: Pid, signal: Signal) -> io::Result<()> {
    Ok(rustix::process::kill_process(
        pid.to_rustix(),
        signal.to_rustix()?,
    )?)
}

/// Sends `signal` to every process in the process group `pgid` (`killpg(3)`).
///
/// # References
///  - [POSIX](https://pubs.opengroup.org/onlinepubs/9799919799/functions/killpg.html)
///  - [Linux](https://man7.org/linux/man-pages/man3/killpg.3.html)
pub fn kill_group(pgid: Pid, signal: Signal) -> io::Result<()> {
    Ok(rustix::process::kill_process_group(
        pgid.to_rustix(),
        signal.to_rustix()?,
    )?)
}

/// Makes this process ignore `signal` (`SIG_IGN`). An ignored signal stays ignored across
/// `exec`. For pool workers, which live in a process group of their own: with SIGTTIN and
/// SIGTTOU ignored, a task that touches the terminal gets an error (`EIO`) instead of the
/// whole worker being stopped for ever.
///
/// # References
///  - [POSIX](https://pubs.opengroup.org/onlinepubs/9799919799/functions/sigaction.html)
pub fn ignore_signal(signal: Signal) -> io::Result<()> {
    // SAFETY: installing SIG_IGN runs no handler code, so nothing about async-signal-safety
    // or the handler's lifetime is at stake; `signal` is a valid, catchable number (SIGKILL
    // and SIGSTOP make the call fail with EINVAL, reported as an error).
    let previous = unsafe { libc::signal(signal.as_raw(), libc::SIG_IGN) };
    if previous == libc::SIG_ERR {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}
