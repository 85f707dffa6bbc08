//! The parent's side of starting a child with `ForkServer` or `Spawn`: get the process (from
//! the fork server, or by starting this executable), check its hello, send it its launch.

use std::fs::File;
use std::io;
use std::os::fd::{AsFd, OwnedFd};
use std::path::{Path, PathBuf};
use std::time::Instant;

use fork_sys::{ChildHandle, Pid, Signal};

use crate::bootstrap::{
    Channel, Context, HELLO_TIMEOUT, Hello, Launch, MAX_FDS, RecvError, frame_of,
};
use crate::error::ProcessError;
use crate::exec_self::{self, Role};
use crate::process::Process;
use crate::start_method::StartMethod;

/// Why a child could not be started, before it has a name attached.
#[derive(Debug)]
pub(crate) enum StartError {
    Io(io::Error),
    /// The child runs another build of the program.
    Mismatch {
        pid: Pid,
        program: PathBuf,
        expected: String,
        found: String,
    },
    /// The child never said hello: not a program with proc-core's entry.
    NoEntry {
        pid: Pid,
        program: PathBuf,
        reason: String,
    },
}

impl StartError {
    pub(crate) fn into_process_error(self, name: Option<String>) -> ProcessError {
        match self {
            StartError::Io(source) => ProcessError::Spawn { name, source },
            StartError::Mismatch {
                pid,
                program,
                expected,
                found,
            } => ProcessError::ExecutableMismatch {
                pid,
                name,
                program,
                expected,
                found,
            },
            StartError::NoEntry {
                pid,
                program,
                reason,
            } => ProcessError::NoEntry {
                pid,
                name,
                program,
                reason,
            },
        }
    }
}

/// Everything a launched child needs, as the builder left it.
#[derive(Debug)]
pub(crate) struct LaunchRequest {
    pub(crate) method: StartMethod,
    /// Addresses in this process: the typed trampoline and the user's function.
    pub(crate) trampoline: usize,
    pub(crate) function: usize,
    pub(crate) args: Vec<u8>,
    pub(crate) fds: Vec<OwnedFd>,
    pub(crate) name: Option<String>,
    pub(crate) daemon: bool,
    pub(crate) max_frame_len: usize,
    pub(crate) kill_group_on_exit: bool,
}

/// What may be queued on a fork server child's socket before the child exists: less than a
/// Unix stream socket buffers by default (Linux: about 200 KiB; macOS: 8 KiB). Bigger
/// launches and arguments are sent once it runs.
const QUEUE_MAX: usize = if cfg!(target_os = "linux") {
    64 << 10
} else {
    4 << 10
};

/// Waits for the hello on `channel` and checks the child runs this very executable.
pub(crate) fn check_hello(
    channel: &mut Channel,
    child: &mut ChildHandle,
    program: &Path,
) -> Result<(), StartError> {
    let pid = child.pid();
    let no_entry = |reason: String| StartError::NoEntry {
        pid,
        program: program.to_path_buf(),
        reason,
    };
    let hello = channel.recv::<Hello>(Some(Instant::now() + HELLO_TIMEOUT), child.exit_fd());
    match hello {
        Ok(hello) => check_identity(hello, pid, program),
        Err(RecvError::Closed) => {
            let how = match child.wait_timeout(std::time::Duration::from_millis(100)) {
                Ok(Some(status)) => format!("it {status} before saying hello"),
                _ => "it closed its channel before saying hello".to_owned(),
            };
            Err(no_entry(how))
        }
        Err(RecvError::TimedOut) => Err(no_entry(format!(
            "it said nothing for {} s",
            HELLO_TIMEOUT.as_secs()
        ))),
        Err(RecvError::Codec(err)) => Err(no_entry(format!(
            "it sent something that is not a hello ({err})"
        ))),
        Err(RecvError::Io(err)) => Err(StartError::Io(err)),
    }
}

/// Checks that the child that said `hello` runs this very executable.
pub(crate) fn check_identity(hello: Hello, pid: Pid, program: &Path) -> Result<(), StartError> {
    match hello.identity {
        Ok(found) => {
            let expected = crate::identity::current().map_err(|reason| {
                StartError::Io(io::Error::other(format!(
                    "cannot read this program's own executable to compare: {reason}"
                )))
            })?;
            if found == expected {
                Ok(())
            } else {
                Err(StartError::Mismatch {
                    pid,
                    program: program.to_path_buf(),
                    expected: expected.to_owned(),
                    found,
                })
            }
        }
        Err(reason) => Err(StartError::NoEntry {
            pid,
            program: program.to_path_buf(),
            reason,
        }),
    }
}

/// Starts a child by `request.method` (`ForkServer` or `Spawn`) and sends it its launch.
pub(crate) fn launch<R>(request: LaunchRequest) -> Result<Process<R>, ProcessError> {
    let LaunchRequest {
        method,
        trampoline,
        function,
        args,
        fds,
        name,
        daemon,
        max_frame_len,
        kill_group_on_exit,
    } = request;
    let spawn_error = |source| ProcessError::Spawn {
        name: name.clone(),
        source,
    };
    if fds.len() > MAX_FDS - 2 {
        return Err(spawn_error(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!(
                "{} descriptors passed; a child can be given at most {}",
                fds.len(),
                MAX_FDS - 2
            ),
        )));
    }
    let (result_read, result_write) = fork_sys::pipe().map_err(spawn_error)?;
    fork_sys::set_nonblocking(&result_read, true).map_err(spawn_error)?;
    // A daemon started by exec watches this process (a fork server's child has the
    // parent-death signal of the single-threaded server instead, which dies with us).
    let watch_parent =
        (daemon && method == StartMethod::Spawn).then(|| fork_sys::getpid().as_raw());
    let mut attached = vec![result_write.as_fd()];
    attached.extend(fds.iter().map(AsFd::as_fd));
    let launch = Launch {
        trampoline: crate::code_offset::of(trampoline),
        function: crate::code_offset::of(function),
        name: name.clone(),
        watch_parent,
        max_frame_len: max_frame_len as u64,
        fds: attached.len() as u32,
        // A `Spawn` child gets both from `exec`; a fork server's child is a copy of the
        // server, made long ago.
        context: (method == StartMethod::ForkServer).then(Context::current),
    };
    let child = match method {
        StartMethod::Spawn => {
            let window = fork_sys::spawn_window();
            let (ours, theirs) = fork_sys::socketpair().map_err(spawn_error)?;
            let spawned = exec_self::spawn_self(Role::Child, theirs.as_fd(), &window);
            drop(theirs);
            drop(window);
            let (pid, program) = spawned.map_err(spawn_error)?;
            let mut child = ChildHandle::new(pid);
            let mut channel = Channel::new(ours);
            // A fresh run of the executable on disk: check it is this very build before it is
            // told anything.
            if let Err(err) = check_hello(&mut channel, &mut child, &program) {
                let _ = child.send_signal(Signal::KILL);
                let _ = child.wait();
                return Err(err.into_process_error(name));
            }
            // Should the child die while this is sent, `join` reports how it died.
            let _ = channel
                .send(&launch, &attached)
                .and_then(|()| channel.send_raw(&args));
            child
        }
        StartMethod::ForkServer => {
            // The child is a fork of the server, whose build was checked when it started: it
            // says no hello. Its launch is queued on the socket before it exists (with the
            // arguments too when they fit the socket's buffer), so the server's fork and our
            // sending overlap, and the child finds everything waiting.
            // Only what surely fits the socket's buffer is queued before the child exists (a
            // send that blocked then would wait for ever); the rest goes once it runs.
            let frame = frame_of(&launch).map_err(spawn_error)?;
            let launch_queued = frame.len() <= QUEUE_MAX;
            let args_queued = launch_queued && frame.len() + args.len() + 4 <= QUEUE_MAX;
            let (child, channel) =
                crate::fork_server::fork_child(daemon, kill_group_on_exit, |channel| {
                    if launch_queued {
                        channel.send_frame(&frame, &attached)?;
                    }
                    if args_queued {
                        channel.send_raw(&args)?;
                    }
                    Ok(())
                })
                .map_err(|err| err.into_process_error(name.clone()))?;
            // If the child dies meanwhile, `join` says how.
            let _ = (|| {
                if !launch_queued {
                    channel.send_frame(&frame, &attached)?;
                }
                if !args_queued {
                    channel.send_raw(&args)?;
                }
                Ok::<(), io::Error>(())
            })();
            child
        }
        StartMethod::Fork => {
            return Err(spawn_error(io::Error::new(
                io::ErrorKind::InvalidInput,
                "a Fork child is not launched: it is forked from the caller",
            )));
        }
    };
    drop(attached);
    drop(result_write);
    drop(fds);
    Ok(Process::started(
        child,
        File::from(result_read),
        name,
        daemon,
        max_frame_len,
        method,
    ))
}
