//! Starting a program in a new process. On Linux our own vfork-style child
//! (`clone(CLONE_VM | CLONE_VFORK | CLONE_PIDFD)`, in [`clone`]): it runs on the parent's
//! memory, so its cost does not grow with the parent's size, and it leaves the closing of the
//! parent's fds to `execve`, after the parent resumed. Elsewhere `posix_spawn` when the request
//! allows it (glibc's is vfork-style too), and fork+exec for what neither can do (`uid`/`gid`,
//! whose glibc wrappers must not run on shared memory). Everything the child needs is in a
//! [`SpawnRequest`] built before any starts; nothing allocates in the child.
//!
//! A failure in the child comes back as an `io::Error` of the errno's kind holding a
//! [`SpawnFailure`]: the errno and the step that failed (`chdir`, `exec`, ...). The clone
//! child writes both into memory it shares with the parent; `posix_spawn` returns the errno
//! itself (glibc), and the step is worked out after the fact; the fork+exec path reads both
//! from a close-on-exec pipe, as CPython's `_posixsubprocess` does.

#[cfg(target_os = "linux")]
mod clone;
#[cfg(all(target_os = "linux", target_env = "gnu"))]
mod posix;

use std::ffi::CStr;
use std::io;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd, RawFd};

use crate::exec::{self, CStringArray, StdioFd};
use crate::{ChildHandle, Fork, Pid};

/// Which process group a spawned child joins.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProcessGroup {
    /// A new group whose id is the child's pid (`setpgid(0, 0)`), so the whole group can be
    /// signalled with [`kill_group`](crate::kill_group).
    New,
    /// An existing group.
    Join(Pid),
}

/// Everything a new process needs, prepared before it starts. Build one with
/// [`SpawnRequest::new`] and set the public fields; [`spawn`] starts it.
#[derive(Debug, Clone)]
pub struct SpawnRequest<'a> {
    /// The program's path. It is not looked up in `PATH`: resolve it before.
    pub program: &'a CStr,
    /// The argument vector, `argv[0]` included.
    pub argv: &'a CStringArray,
    /// The environment, as `KEY=value` strings.
    pub envp: &'a CStringArray,
    /// What becomes the child's stdin, stdout and stderr; `None` inherits the parent's.
    pub stdio: [Option<BorrowedFd<'a>>; 3],
    /// The child's working directory; `None` keeps the parent's.
    pub cwd: Option<&'a CStr>,
    /// Close every fd from 3 up in the child except `pass_fds`.
    pub close_fds: bool,
    /// Fds the child keeps at the same number (their close-on-exec flag is cleared in the child).
    pub pass_fds: &'a [BorrowedFd<'a>],
    /// Start a new session (`setsid`): the child leads a new session and process group.
    pub new_session: bool,
    /// Move the child into a process group.
    pub process_group: Option<ProcessGroup>,
    /// `setuid` in the child (dropping supplementary groups when run as root).
    pub uid: Option<u32>,
    /// `setgid` in the child.
    pub gid: Option<u32>,
    /// `umask` in the child.
    pub umask: Option<u32>,
}

/// The step of a child's set-up that failed, in the order they run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum SpawnStep {
    /// Resetting the signal mask and dispositions.
    Signals,
    /// `setsid`.
    NewSession,
    /// `setpgid`.
    ProcessGroup,
    /// `dup2` of stdin, stdout or stderr.
    Stdio,
    /// `chdir` into the working directory.
    Chdir,
    /// `setgid`, `setgroups` or `setuid`.
    Ids,
    /// Closing the fds not passed.
    CloseFds,
    /// Clearing close-on-exec on a passed fd.
    PassFds,
    /// `execve` itself.
    Exec,
}

impl SpawnStep {
    const ALL: [SpawnStep; 9] = [
        SpawnStep::Signals,
        SpawnStep::NewSession,
        SpawnStep::ProcessGroup,
        SpawnStep::Stdio,
        SpawnStep::Chdir,
        SpawnStep::Ids,
        SpawnStep::CloseFds,
        SpawnStep::PassFds,
        SpawnStep::Exec,
    ];

    fn name(self) -> &'static str {
        match self {
            SpawnStep::Signals => "resetting signals",
            SpawnStep::NewSession => "setsid",
            SpawnStep::ProcessGroup => "setpgid",
            SpawnStep::Stdio => "redirecting stdio",
            SpawnStep::Chdir => "chdir",
            SpawnStep::Ids => "setting user and group ids",
            SpawnStep::CloseFds => "closing fds",
            SpawnStep::PassFds => "passing fds",
            SpawnStep::Exec => "exec",
        }
    }
}

/// What [`spawn`] reports when the child could not be started: which step failed, with what
/// errno. It is the inner error of the `io::Error` that `spawn` returns (whose kind is the
/// errno's); get it back with [`SpawnFailure::of`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SpawnFailure {
    /// The step that failed.
    pub step: SpawnStep,
    /// Its errno.
    pub errno: i32,
}

impl SpawnFailure {
    /// The failure inside an error returned by [`spawn`]; `None` for errors that did not come
    /// from the child's set-up (out of memory or fds before it started, say).
    pub fn of(err: &io::Error) -> Option<SpawnFailure> {
        err.get_ref()?.downcast_ref::<SpawnFailure>().copied()
    }

    /// The errno as an `io::Error`, without the step.
    pub fn os_error(&self) -> io::Error {
        io::Error::from_raw_os_error(self.errno)
    }

    fn into_io_error(self) -> io::Error {
        io::Error::new(self.os_error().kind(), self)
    }
}

impl std::fmt::Display for SpawnFailure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.step.name(), self.os_error())
    }
}

impl std::error::Error for SpawnFailure {}

/// How [`spawn`] starts a given request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SpawnMethod {
    /// Linux: our own `clone(CLONE_VM | CLONE_VFORK | CLONE_PIDFD)` child on a stack of its
    /// own, which marks the fds it must not pass close-on-exec (the kernel closes them in
    /// `execve`, after the parent resumed) instead of closing them while the parent waits.
    CloneVfork,
    /// glibc's `posix_spawn` (`clone(CLONE_VM | CLONE_VFORK)` underneath).
    PosixSpawn,
    /// `fork`, the child's setup, `execve`; exec errors over a close-on-exec pipe.
    ForkExec,
}

impl<'a> SpawnRequest<'a> {
    /// A request that inherits stdio and the working directory, closes every other fd in the
    /// child, and changes nothing else.
    pub fn new(
        program: &'a CStr,
        argv: &'a CStringArray,
        envp: &'a CStringArray,
    ) -> SpawnRequest<'a> {
        SpawnRequest {
            program,
            argv,
            envp,
            stdio: [None, None, None],
            cwd: None,
            close_fds: true,
            pass_fds: &[],
            new_session: false,
            process_group: None,
            uid: None,
            gid: None,
            umask: None,
        }
    }

    /// The method [`spawn`] will use: on Linux the clone child unless the request sets `uid`
    /// or `gid` (their libc wrappers keep process-wide state, which a child on the parent's
    /// memory must not touch); fork+exec then, and on every other platform.
    /// ([`SpawnMethod::PosixSpawn`] is there for [`spawn_by`]: the clone child does all it
    /// does and leaves the fds to `execve`.)
    pub fn method(&self) -> SpawnMethod {
        if cfg!(target_os = "linux") && self.uid.is_none() && self.gid.is_none() {
            SpawnMethod::CloneVfork
        } else {
            SpawnMethod::ForkExec
        }
    }

    /// Whether `method` can start this request here: the clone child on Linux without
    /// `uid`/`gid`; `posix_spawn` on Linux with glibc without `uid`, `gid`, `umask`,
    /// `pass_fds`, nor something this glibc lacks (a `cwd` before glibc 2.29, which added
    /// `addchdir_np`; `close_fds` before 2.34, which added `addclosefrom_np`); fork+exec
    /// always.
    pub fn can_use(&self, method: SpawnMethod) -> bool {
        match method {
            SpawnMethod::CloneVfork => self.method() == SpawnMethod::CloneVfork,
            SpawnMethod::PosixSpawn => {
                cfg!(all(target_os = "linux", target_env = "gnu"))
                    && self.uid.is_none()
                    && self.gid.is_none()
                    && self.umask.is_none()
                    && self.pass_fds.is_empty()
                    && posix_spawn_supports(self)
            }
            SpawnMethod::ForkExec => true,
        }
    }
}

/// Starts `request.program` in a new process and returns its pid, through `posix_spawn` when
/// [`SpawnRequest::method`] says so and fork+exec otherwise. The child is not reaped: wrap the
/// pid in a [`ChildHandle`](crate::ChildHandle).
///
/// Fails with the child's errno when the program cannot be executed (`NotFound`,
/// `PermissionDenied`, ...), the working directory cannot be entered, or another step of the
/// set-up fails; [`SpawnFailure::of`] on the error says which step. (`posix_spawn` does not
/// say: when its error comes with a `cwd` we cannot enter, the step is `Chdir`, else `Exec`.)
/// No child is left behind on failure.
///
/// # References
///  - [POSIX](https://pubs.opengroup.org/onlinepubs/9799919799/functions/posix_spawn.html)
///  - [Linux](https://man7.org/linux/man-pages/man3/posix_spawn.3.html)
pub fn spawn(request: &SpawnRequest<'_>) -> io::Result<Pid> {
    spawn_in_window(request, &spawn_window())
}

/// [`spawn`] by the given method rather than [`SpawnRequest::method`]'s choice: to compare
/// methods (benchmarks) or test each. `ErrorKind::Unsupported` when the method cannot start
/// this request here ([`SpawnRequest::can_use`]).
pub fn spawn_by(request: &SpawnRequest<'_>, method: SpawnMethod) -> io::Result<Pid> {
    if !request.can_use(method) {
        return Err(io::Error::new(
            io::ErrorKind::Unsupported,
            format!("{method:?} cannot start this request on this platform"),
        ));
    }
    let window = spawn_window();
    Ok(start(request, method, &window, false)?.pid)
}

/// The shared side of the fork lock (Go's `syscall.ForkLock`), held by a spawner from
/// creating the pipes its child will get until it has closed its copies of their child-side
/// ends. [`fork`](crate::fork) waits while any thread holds one, so a child forked by another
/// thread (a proc-core `Process`, which never execs) never holds a copy of those ends, which
/// would keep the spawner's reads from seeing end-of-file until that child exits.
///
/// Many spawners hold windows at once. Hold one for as short a time as you can: every `fork`
/// waits for it. While holding one, start programs with [`spawn_in_window`], never [`spawn`],
/// and never call [`fork`](crate::fork): taking the lock again can deadlock.
#[derive(Debug)]
#[must_use = "the window closes when it drops"]
pub struct SpawnWindow {
    _shared: std::sync::RwLockReadGuard<'static, ()>,
}

/// Opens a [`SpawnWindow`].
pub fn spawn_window() -> SpawnWindow {
    SpawnWindow {
        _shared: crate::fork::fork_lock_shared(),
    }
}

/// [`spawn`] inside a [`SpawnWindow`] the caller holds (and keeps until it has closed the
/// child-side ends of the child's pipes).
pub fn spawn_in_window(request: &SpawnRequest<'_>, window: &SpawnWindow) -> io::Result<Pid> {
    Ok(start(request, request.method(), window, false)?.pid)
}

/// [`spawn_in_window`], returning the child in a [`ChildHandle`] ready to wait on. On Linux
/// the clone child's pidfd comes from `clone` itself (`CLONE_PIDFD`), which saves the
/// `pidfd_open` that [`ChildHandle::new`] makes.
pub fn spawn_child_in_window(
    request: &SpawnRequest<'_>,
    window: &SpawnWindow,
) -> io::Result<ChildHandle> {
    let started = start(request, request.method(), window, true)?;
    #[cfg(target_os = "linux")]
    if let Some(pidfd) = started.pidfd {
        return Ok(ChildHandle::with_exit_fd(started.pid, pidfd));
    }
    Ok(ChildHandle::new(started.pid))
}

/// A started child: its pid, and its pidfd when the method made one (Linux).
struct Started {
    pid: Pid,
    #[cfg(target_os = "linux")]
    pidfd: Option<OwnedFd>,
}

impl From<Pid> for Started {
    fn from(pid: Pid) -> Started {
        Started {
            pid,
            #[cfg(target_os = "linux")]
            pidfd: None,
        }
    }
}

/// Starts `request` by `method` (which [`SpawnRequest::can_use`]); with `want_pidfd`, the
/// clone child's pidfd is asked of the kernel too.
fn start(
    request: &SpawnRequest<'_>,
    method: SpawnMethod,
    window: &SpawnWindow,
    want_pidfd: bool,
) -> io::Result<Started> {
    let _ = want_pidfd; // Only the clone child, on Linux, has a pidfd to give.
    // A source fd below 3 could be overwritten by an earlier `dup2` onto 0, 1 or 2 before it is
    // read; a copy numbered 3 or higher (and close-on-exec) cannot.
    let mut copies: [Option<OwnedFd>; 3] = [None, None, None];
    for (target, (source, copy)) in request.stdio.iter().zip(copies.iter_mut()).enumerate() {
        if let Some(fd) = source {
            let raw = fd.as_raw_fd();
            if raw < 3 && raw != target as RawFd {
                *copy = Some(fd.try_clone_to_owned()?);
            }
        }
    }
    let mut stdio = request.stdio;
    for (source, copy) in stdio.iter_mut().zip(&copies) {
        if let Some(copy) = copy {
            *source = Some(copy.as_fd());
        }
    }
    let request = SpawnRequest {
        stdio,
        ..request.clone()
    };
    match method {
        #[cfg(target_os = "linux")]
        SpawnMethod::CloneVfork => {
            let mut keep: Vec<RawFd> = request.pass_fds.iter().map(AsRawFd::as_raw_fd).collect();
            keep.sort_unstable();
            clone::spawn(&request, &keep, want_pidfd)
        }
        #[cfg(all(target_os = "linux", target_env = "gnu"))]
        SpawnMethod::PosixSpawn => posix::spawn(&request, window).map(Started::from),
        _ => fork_exec(&request, window).map(Started::from),
    }
}

/// Whether this glibc has the `posix_spawn` extensions `request` needs. They are looked up at
/// run time, never linked: a hard reference would stop every program using fork-sys from
/// starting on an older glibc.
#[cfg(all(target_os = "linux", target_env = "gnu"))]
fn posix_spawn_supports(request: &SpawnRequest<'_>) -> bool {
    (request.cwd.is_none() || posix::ADDCHDIR.get().is_some())
        && (!request.close_fds || posix::ADDCLOSEFROM.get().is_some())
}

#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
fn posix_spawn_supports(_request: &SpawnRequest<'_>) -> bool {
    false
}

/// Whether this process may execute `path` (or, for a directory, search it), judged with its
/// effective ids as `execve` and `chdir` judge: `faccessat(AT_FDCWD, path, X_OK, AT_EACCESS)`.
/// `Ok(())` when it may; the `EACCES` (or `ENOENT`, ...) otherwise. Root passes for any file
/// with at least one `x` bit; a `noexec` mount is not seen here, only by `execve`.
///
/// # References
///  - [POSIX](https://pubs.opengroup.org/onlinepubs/9799919799/functions/access.html)
///  - [Linux](https://man7.org/linux/man-pages/man2/faccessat.2.html)
pub fn check_executable(path: &std::path::Path) -> io::Result<()> {
    Ok(rustix::fs::accessat(
        rustix::fs::CWD,
        path,
        rustix::fs::Access::EXEC_OK,
        rustix::fs::AtFlags::EACCESS,
    )?)
}

const STDIO_TARGETS: [StdioFd; 3] = [StdioFd::Stdin, StdioFd::Stdout, StdioFd::Stderr];

/// The fork+exec path: every allocation (the fds to keep, the error pipe) happens before the
/// fork; the child only makes async-signal-safe calls.
///
/// The caller's window (the shared fork lock) is held from the error pipe's creation until
/// our copy of its write end is closed: no other thread's `fork` can copy the write end into
/// a child that never execs.
fn fork_exec(request: &SpawnRequest<'_>, _window: &SpawnWindow) -> io::Result<Pid> {
    let (err_read, err_write) = crate::pipe()?;
    let mut keep: Vec<RawFd> = request.pass_fds.iter().map(AsRawFd::as_raw_fd).collect();
    keep.push(err_write.as_raw_fd());
    keep.sort_unstable();
    keep.dedup();
    // SAFETY: the child runs `set_up_child` and `exec` (async-signal-safe calls on data built
    // before the fork, no allocation) and leaves through `report_errno_and_exit` if exec fails.
    match unsafe { crate::fork::fork_unlocked()? } {
        Fork::Child => {
            let (step, err) = set_up_child(request, &keep, ChildSide::Forked);
            // A bare kind (never from exec, but from a setup step) has no errno: say EINVAL.
            let errno = err.raw_os_error().unwrap_or(libc::EINVAL);
            report_failure_and_exit(err_write.as_fd(), step, errno)
        }
        Fork::Parent(pid) => {
            drop(err_write);
            match read_failure(err_read) {
                Ok(None) => Ok(pid),
                Ok(Some(err)) | Err(err) => {
                    // The child has exited (127) or is about to: reap it, leave nothing behind.
                    let _ = crate::wait(pid);
                    Err(err)
                }
            }
        }
    }
}

/// Which kind of child runs [`set_up_child`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ChildSide {
    /// A forked copy: closes the fds it must not pass; `SIGPIPE` and the mask reset.
    Forked,
    /// The clone child on the parent's memory (Linux): every handled signal reset (no handler
    /// of the parent's may run here), and the fds marked close-on-exec rather than closed.
    #[cfg(target_os = "linux")]
    SharedMemory,
    /// The clone child on the parent's memory *and fd table* (`CLONE_FILES`, Linux): as
    /// `SharedMemory`, but it takes a table of its own holding only fds 0-2 and copies its
    /// stdio from the parent by pidfd ([`clone`]'s `take_stdio_from_parent`), so none of the
    /// parent's other fds is copied into it, nor closed at its exec. Only for `close_fds`
    /// without `pass_fds`.
    #[cfg(target_os = "linux")]
    SharedFdTable,
}

/// The child's side of [`fork_exec`] and of the clone child, up to and including `execve`;
/// returns the step that stopped it and its error. Async-signal-safe: no allocation, no
/// locks. `keep` (sorted) holds the fds a closing pass must leave open.
fn set_up_child(
    request: &SpawnRequest<'_>,
    keep: &[RawFd],
    side: ChildSide,
) -> (SpawnStep, io::Error) {
    let at = |step: SpawnStep| move |err: io::Error| (step, err);
    let set_up = || -> Result<(), (SpawnStep, io::Error)> {
        match side {
            ChildSide::Forked => exec::reset_signals_for_exec(),
            #[cfg(target_os = "linux")]
            ChildSide::SharedMemory | ChildSide::SharedFdTable => clone::reset_all_signals(),
        }
        .map_err(at(SpawnStep::Signals))?;
        if request.new_session {
            exec::setsid().map_err(at(SpawnStep::NewSession))?;
        }
        match request.process_group {
            Some(ProcessGroup::New) => exec::setpgid(None),
            Some(ProcessGroup::Join(pgid)) => exec::setpgid(Some(pgid)),
            None => Ok(()),
        }
        .map_err(at(SpawnStep::ProcessGroup))?;
        #[cfg(target_os = "linux")]
        if side == ChildSide::SharedFdTable {
            // Nothing above touched the fd table, which the parent's threads still share.
            clone::take_stdio_from_parent(request).map_err(at(SpawnStep::Stdio))?;
        }
        #[cfg(target_os = "linux")]
        let own_table = side != ChildSide::SharedFdTable;
        #[cfg(not(target_os = "linux"))]
        let own_table = true;
        for (source, target) in request.stdio.iter().zip(STDIO_TARGETS) {
            match source {
                Some(fd) if own_table => {
                    exec::redirect_stdio(*fd, target).map_err(at(SpawnStep::Stdio))?;
                }
                _ => {}
            }
        }
        if let Some(cwd) = request.cwd {
            crate::retry_eintr(|| rustix::process::chdir(cwd)).map_err(at(SpawnStep::Chdir))?;
        }
        if let Some(mask) = request.umask {
            rustix::process::umask(rustix::fs::Mode::from_raw_mode(mask as _));
        }
        set_ids(request.uid, request.gid).map_err(at(SpawnStep::Ids))?;
        if request.close_fds && own_table {
            // Marked, the passed fds get their flag cleared below with the others'; a kernel
            // before 5.11 cannot mark, and the fds are closed instead.
            let marked = side != ChildSide::Forked && exec::mark_cloexec_from(3).is_ok();
            if !marked {
                // SAFETY: this child execs or exits next and never uses the fds it closes;
                // `keep` (sorted before the child started) holds the passed fds (and the
                // fork path's error pipe). The clone child has its own fd table (no
                // CLONE_FILES): the parent's fds stay open.
                unsafe { exec::close_fds_from(3, keep) }.map_err(at(SpawnStep::CloseFds))?;
            }
        }
        for fd in request.pass_fds {
            rustix::io::fcntl_setfd(fd, rustix::io::FdFlags::empty())
                .map_err(|err| (SpawnStep::PassFds, err.into()))?;
        }
        Ok(())
    };
    match set_up() {
        Ok(()) => (
            SpawnStep::Exec,
            exec::exec(request.program, request.argv, request.envp),
        ),
        Err(failed) => failed,
    }
}

/// The child's report of a failed step: the step's index and the errno, 4 bytes each, then
/// `_exit(127)`. Async-signal-safe.
fn report_failure_and_exit(fd: BorrowedFd<'_>, step: SpawnStep, errno: i32) -> ! {
    let index = SpawnStep::ALL.iter().position(|&s| s == step).unwrap_or(0) as u32;
    let mut bytes = [0u8; 8];
    bytes[..4].copy_from_slice(&index.to_ne_bytes());
    bytes[4..].copy_from_slice(&errno.to_ne_bytes());
    let _ = crate::retry_eintr(|| rustix::io::write(fd, &bytes));
    crate::exit_immediately(127)
}

/// The parent's side of [`report_failure_and_exit`]: `Ok(None)` at end-of-file (exec
/// succeeded and closed the pipe), the failure otherwise.
fn read_failure(read_end: OwnedFd) -> io::Result<Option<io::Error>> {
    let mut buf = [0u8; 8];
    let mut filled = 0;
    while filled < buf.len() {
        match crate::retry_eintr(|| rustix::io::read(read_end.as_fd(), &mut buf[filled..]))? {
            0 => break,
            n => filled += n,
        }
    }
    let word = |at: usize| [buf[at], buf[at + 1], buf[at + 2], buf[at + 3]];
    match filled {
        0 => Ok(None),
        8 => {
            let step = SpawnStep::ALL
                .get(u32::from_ne_bytes(word(0)) as usize)
                .copied()
                .unwrap_or(SpawnStep::Exec);
            let errno = i32::from_ne_bytes(word(4));
            Ok(Some(SpawnFailure { step, errno }.into_io_error()))
        }
        n => Err(io::Error::new(
            io::ErrorKind::InvalidData,
            format!("spawn error pipe: expected 8 bytes (step, errno), got {n}"),
        )),
    }
}

/// Whether `cwd` is a directory this process may enter, to tell a `chdir` failure from an
/// `exec` one when `posix_spawn` gives only the errno.
#[cfg(all(target_os = "linux", target_env = "gnu"))]
fn can_enter(cwd: &CStr) -> bool {
    use std::os::unix::ffi::OsStrExt;
    let path = std::path::Path::new(std::ffi::OsStr::from_bytes(cwd.to_bytes()));
    path.is_dir() && check_executable(path).is_ok()
}

/// `setgid`, then `setuid` (after which `setgid` would no longer be permitted); a root parent
/// dropping to another user also drops its supplementary groups, as std does.
fn set_ids(uid: Option<u32>, gid: Option<u32>) -> io::Result<()> {
    // SAFETY: setgroups, setgid, setuid and getuid are async-signal-safe syscall wrappers with
    // no memory preconditions (setgroups gets a null list of length 0).
    unsafe {
        if let Some(gid) = gid {
            if libc::setgid(gid as libc::gid_t) != 0 {
                return Err(io::Error::last_os_error());
            }
        }
        if let Some(uid) = uid {
            if libc::getuid() == 0 && libc::setgroups(0, std::ptr::null()) != 0 {
                return Err(io::Error::last_os_error());
            }
            if libc::setuid(uid as libc::uid_t) != 0 {
                return Err(io::Error::last_os_error());
            }
        }
    }
    Ok(())
}
