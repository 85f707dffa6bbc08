//! `ProcessError`: how a child process can fail to hand back its value.

use std::fmt;
use std::io;

use fork_sys::{Pid, Signal};

use crate::codec::CodecError;

/// Why [`Process::join`](crate::Process::join) (or a sibling) produced no value. Every variant
/// names the process: its pid and, when the builder gave one, its name.
#[derive(Debug)]
#[non_exhaustive]
pub enum ProcessError {
    /// The child could not be started (`fork` failed: too many processes, out of memory).
    Spawn {
        /// The name given to the builder, if any.
        name: Option<String>,
        /// What the OS said.
        source: io::Error,
    },
    /// The closure panicked in the child; `message` is the panic payload's text.
    Panicked {
        /// The child's pid.
        pid: Pid,
        /// The name given to the builder, if any.
        name: Option<String>,
        /// The panic message (`"Box<dyn Any>"` when the payload was not a string).
        message: String,
    },
    /// The child exited (`std::process::exit`, say) before its closure returned a value.
    Exited {
        /// The child's pid.
        pid: Pid,
        /// The name given to the builder, if any.
        name: Option<String>,
        /// Its exit code.
        code: i32,
    },
    /// A signal ended the child before it returned a value: killed, segfault, abort, OOM.
    Signaled {
        /// The child's pid.
        pid: Pid,
        /// The name given to the builder, if any.
        name: Option<String>,
        /// The signal.
        signal: Signal,
        /// Whether a core dump was written.
        core_dumped: bool,
    },
    /// The value could not cross the pipe: it failed to encode in the child, was over the frame
    /// limit, or did not decode as the expected type in the parent.
    Codec {
        /// The child's pid.
        pid: Pid,
        /// The name given to the builder, if any.
        name: Option<String>,
        /// What went wrong with the frame.
        source: CodecError,
    },
    /// Waiting for, reading from or signalling the child failed.
    Io {
        /// The child's pid.
        pid: Pid,
        /// The name given to the builder, if any.
        name: Option<String>,
        /// What the OS said.
        source: io::Error,
    },
    /// Sleeping until one of several processes finished failed (in [`wait_any`](crate::wait_any)).
    Wait {
        /// What the OS said.
        source: io::Error,
    },
    /// A `ForkServer` or `Spawn` child (or the fork server itself) runs another build of the
    /// program than this one: its executable's identity (build id) differs, so the functions
    /// this program names would be other code there. It was killed before it was told anything.
    ExecutableMismatch {
        /// The child's pid.
        pid: Pid,
        /// The name given to the builder, if any.
        name: Option<String>,
        /// The executable it was started from.
        program: std::path::PathBuf,
        /// This program's identity.
        expected: String,
        /// The child's.
        found: String,
    },
    /// A `ForkServer` or `Spawn` child never reached proc-core's entry: the executable it was
    /// started from is not a program built with proc-core (see
    /// [`set_executable`](crate::set_executable)), or it died first.
    NoEntry {
        /// The child's pid.
        pid: Pid,
        /// The name given to the builder, if any.
        name: Option<String>,
        /// The executable it was started from.
        program: std::path::PathBuf,
        /// What happened instead.
        reason: String,
    },
    /// The value was already taken by an earlier `join_timeout` or `wait_any` + join.
    AlreadyJoined {
        /// The child's pid.
        pid: Pid,
        /// The name given to the builder, if any.
        name: Option<String>,
    },
}

impl ProcessError {
    /// The child's pid, when it was started.
    pub fn pid(&self) -> Option<Pid> {
        match self {
            ProcessError::Spawn { .. } | ProcessError::Wait { .. } => None,
            ProcessError::Panicked { pid, .. }
            | ProcessError::Exited { pid, .. }
            | ProcessError::Signaled { pid, .. }
            | ProcessError::Codec { pid, .. }
            | ProcessError::Io { pid, .. }
            | ProcessError::ExecutableMismatch { pid, .. }
            | ProcessError::NoEntry { pid, .. }
            | ProcessError::AlreadyJoined { pid, .. } => Some(*pid),
        }
    }
}

/// `process 4242` or `process "worker" (pid 4242)`.
struct Label<'a>(Option<Pid>, &'a Option<String>);

impl fmt::Display for Label<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match (self.0, self.1) {
            (Some(pid), Some(name)) => write!(f, "process {name:?} (pid {pid})"),
            (Some(pid), None) => write!(f, "process {pid}"),
            (None, Some(name)) => write!(f, "process {name:?}"),
            (None, None) => f.write_str("process"),
        }
    }
}

impl fmt::Display for ProcessError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ProcessError::Spawn { name, source } => {
                write!(f, "could not start {}: {source}", Label(None, name))
            }
            ProcessError::Panicked { pid, name, message } => {
                write!(f, "{} panicked: {message}", Label(Some(*pid), name))
            }
            ProcessError::Exited { pid, name, code } => write!(
                f,
                "{} exited with code {code} before returning a value",
                Label(Some(*pid), name)
            ),
            ProcessError::Signaled {
                pid,
                name,
                signal,
                core_dumped,
            } => {
                write!(f, "{} was killed by {signal}", Label(Some(*pid), name))?;
                if *core_dumped {
                    f.write_str(" (core dumped)")?;
                }
                Ok(())
            }
            ProcessError::Codec { pid, name, source } => {
                write!(f, "{}: result frame: {source}", Label(Some(*pid), name))
            }
            ProcessError::Io { pid, name, source } => {
                write!(f, "{}: {source}", Label(Some(*pid), name))
            }
            ProcessError::Wait { source } => write!(f, "waiting for processes failed: {source}"),
            ProcessError::ExecutableMismatch {
                pid,
                name,
                program,
                expected,
                found,
            } => write!(
                f,
                "{} was refused: {} is another build than this program ({found}, expected \
                 {expected}); the functions it would run are not the same code",
                Label(Some(*pid), name),
                program.display()
            ),
            ProcessError::NoEntry {
                pid,
                name,
                program,
                reason,
            } => write!(
                f,
                "{} started from {} never reached proc-core's entry ({reason}); is it this \
                 program, built with proc-core?",
                Label(Some(*pid), name),
                program.display()
            ),
            ProcessError::AlreadyJoined { pid, name } => write!(
                f,
                "{} was already joined; its value was taken",
                Label(Some(*pid), name)
            ),
        }
    }
}

impl std::error::Error for ProcessError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            ProcessError::Spawn { source, .. }
            | ProcessError::Io { source, .. }
            | ProcessError::Wait { source } => Some(source),
            ProcessError::Codec { source, .. } => Some(source),
            _ => None,
        }
    }
}
