//! Starting a fresh process of this executable (the `Spawn` method, and the fork server), and
//! the entry that such a process takes before any user code runs.
//!
//! The process is `posix_spawn`ed (so its cost does not grow with the caller's size) with one
//! marker argument, its bootstrap socket as stdin, the caller's stdout and stderr, and no other
//! descriptor. Its entry, run by a constructor before `main` and again by [`crate::init`],
//! recognises the marker, moves the socket off fd 0 (stdin becomes `/dev/null`, as Python's
//! children have it), and becomes what the marker says: a launched child or the fork server.
//! It never returns into `main`.

use std::ffi::{CString, OsString};
use std::io;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::FileTypeExt;
use std::path::PathBuf;

use fork_sys::exec::{CStringArray, StdioFd};
use fork_sys::{Pid, Signal, SpawnRequest, SpawnWindow};

/// What a started process becomes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Role {
    /// Run one launched function and exit.
    Child,
    /// Serve fork requests until the program goes away.
    ForkServer,
    /// Run one launched function, started by a [`crate::Launcher`]: the bootstrap protocol
    /// over stdin and stdout.
    Launched,
}

impl Role {
    pub(crate) fn marker(self) -> &'static str {
        match self {
            Role::Child => "--prockit-start-method-child",
            Role::ForkServer => "--prockit-fork-server",
            Role::Launched => "--prockit-launched-child",
        }
    }
}

/// The executable to start: [`crate::set_executable`]'s choice, or the file this process runs.
pub(crate) fn executable() -> io::Result<PathBuf> {
    match crate::start_method::chosen_executable() {
        Some(path) => Ok(path),
        None => crate::identity::running_executable(),
    }
}

/// Starts this executable in `role`, with `socket` as its stdin. Call inside `window`, with
/// `socket` created inside it, and close the caller's copy before leaving it.
pub(crate) fn spawn_self(
    role: Role,
    socket: BorrowedFd<'_>,
    window: &SpawnWindow,
) -> io::Result<(Pid, PathBuf)> {
    let program = executable()?;
    let c_program = CString::new(program.as_os_str().as_bytes()).map_err(|_| {
        io::Error::new(
            io::ErrorKind::InvalidInput,
            "executable path has a NUL byte",
        )
    })?;
    // argv[0] as the program was started, so `ps` shows its name.
    let argv0 = std::env::args_os()
        .next()
        .unwrap_or_else(|| OsString::from(program.as_os_str()));
    let argv = CStringArray::new([argv0, OsString::from(role.marker())])?;
    let envp = CStringArray::from_current_env()?;
    // Only the socket (as stdin) and stdout/stderr: close_fds is the default.
    let mut request = SpawnRequest::new(&c_program, &argv, &envp);
    request.stdio[0] = Some(socket);
    let pid = fork_sys::spawn_in_window(&request, window)?;
    Ok((pid, program))
}

/// The entry: in a process started by [`spawn_self`], becomes its role and never returns;
/// anywhere else, returns at once.
pub(crate) fn enter_if_started_as_child() {
    let mut args = std::env::args_os();
    let role = match args.nth(1) {
        Some(arg) if arg == Role::Child.marker() => Role::Child,
        Some(arg) if arg == Role::ForkServer.marker() => Role::ForkServer,
        Some(arg) if arg == Role::Launched.marker() => Role::Launched,
        _ => return,
    };
    if role == Role::Launched {
        enter_as_launched_child();
    }
    // Ours only if stdin is the bootstrap socket (someone typing the marker by hand gets the
    // program's own `main`).
    let Ok(socket) = std::io::stdin().as_fd().try_clone_to_owned() else {
        return;
    };
    let socket = std::fs::File::from(socket);
    if !socket.metadata().is_ok_and(|m| m.file_type().is_socket()) {
        return;
    }
    let socket = OwnedFd::from(socket);
    if let Ok(null) = std::fs::File::open("/dev/null") {
        let _ = fork_sys::exec::redirect_stdio(null.as_fd(), StdioFd::Stdin);
    }
    // What Rust's runtime does before `main`, which has not run (we may be in a constructor):
    // a write to a closed pipe is an error, not a death.
    let _ = fork_sys::ignore_signal(Signal::PIPE);
    // Panics in the child print the same one-line report as in a `Fork` child
    // (`process N panicked at file:line:col`), not std's default for an unnamed thread.
    crate::child_side::install_panic_hook();
    crate::child_side::mark_forked_child();
    match role {
        Role::Child => crate::bootstrap::run_launched_child(socket, true),
        Role::ForkServer => crate::fork_server::serve(socket),
        Role::Launched => fork_sys::exit_immediately(crate::bootstrap::EXIT_NO_LAUNCH),
    }
}

/// The entry of a child started through a [`crate::Launcher`]: its stdin and stdout are the
/// stream to the parent (pipes or sockets, through `srun`, `ssh`...). They move to other
/// numbers; stdin becomes `/dev/null` and stdout goes to stderr, so what user code prints
/// reaches the launcher's stderr instead of corrupting the stream. Returns (to run `main`)
/// unless stdin and stdout are a pipe or a socket: someone typed the marker by hand.
fn enter_as_launched_child() {
    let stream = |fd: BorrowedFd<'_>| {
        let Ok(file) = fd.try_clone_to_owned().map(std::fs::File::from) else {
            return None;
        };
        let kind = file.metadata().ok()?.file_type();
        (kind.is_fifo() || kind.is_socket()).then(|| OwnedFd::from(file))
    };
    let (Some(input), Some(output)) = (
        stream(std::io::stdin().as_fd()),
        stream(std::io::stdout().as_fd()),
    ) else {
        return;
    };
    if let Ok(null) = std::fs::File::open("/dev/null") {
        let _ = fork_sys::exec::redirect_stdio(null.as_fd(), StdioFd::Stdin);
    }
    let _ = fork_sys::exec::redirect_stdio(std::io::stderr().as_fd(), StdioFd::Stdout);
    let _ = fork_sys::ignore_signal(Signal::PIPE);
    crate::child_side::install_panic_hook();
    crate::child_side::mark_forked_child();
    crate::bootstrap::run_streamed_child(input, output)
}

/// The constructor: runs [`enter_if_started_as_child`] before `main` (before the test
/// harness's, too), so children started from test binaries and from programs that did not call
/// `init` find their entry.
extern "C" fn enter_before_main() {
    // Unwinding out of an `extern "C"` function aborts; nothing in the entry should panic,
    // and if it did, the child exits instead.
    if std::panic::catch_unwind(enter_if_started_as_child).is_err() {
        fork_sys::exit_immediately(crate::bootstrap::EXIT_NO_LAUNCH);
    }
}

#[cfg(any(
    target_os = "linux",
    target_os = "android",
    target_os = "freebsd",
    target_os = "netbsd",
    target_os = "openbsd",
    target_os = "dragonfly",
    target_os = "illumos",
    target_os = "solaris"
))]
#[used]
#[allow(unsafe_code)]
// SAFETY: the loader calls every pointer in `.init_array` once, before `main`, as a C
// function; this one is a valid `extern "C" fn()` (the arguments glibc passes are ignored,
// as the C ABI allows). It only reads its arguments and returns unless this is a child we
// started.
#[unsafe(link_section = ".init_array")]
static ENTER_BEFORE_MAIN: extern "C" fn() = enter_before_main;

#[cfg(target_vendor = "apple")]
#[used]
#[allow(unsafe_code)]
// SAFETY: as above, for Mach-O's list of initialisers.
#[unsafe(link_section = "__DATA,__mod_init_func")]
static ENTER_BEFORE_MAIN: extern "C" fn() = enter_before_main;
