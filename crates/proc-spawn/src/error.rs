//! `Error`: everything that can go wrong starting, talking to, or checking a child, each with
//! the program (or the whole command line) it concerns.

use std::ffi::OsString;
use std::fmt;
use std::io;
use std::path::PathBuf;
use std::time::Duration;

use fork_sys::{ExitStatus, Pid};

/// What went wrong. Every variant names the program or the command line; the ones that carry
/// output keep every byte read before the failure.
#[derive(Debug)]
#[non_exhaustive]
pub enum Error {
    /// The program does not exist (not in `PATH`, or no such file).
    NotFound {
        /// The program as given to [`Command::new`](crate::Command::new).
        program: OsString,
    },
    /// The program exists but may not be executed (no `x` bit, a directory, a `noexec` mount).
    PermissionDenied {
        /// The program as given.
        program: OsString,
    },
    /// The working directory given with [`current_dir`](crate::Command::current_dir) does not
    /// exist or cannot be entered.
    BadWorkingDirectory {
        /// The program as given.
        program: OsString,
        /// The directory.
        cwd: PathBuf,
        /// What the system said.
        source: io::Error,
    },
    /// Starting the program failed for another reason (out of processes or fds, a NUL byte
    /// in an argument, `uid`/`gid` not permitted, an invalid option).
    Spawn {
        /// The program as given.
        program: OsString,
        /// What the system said.
        source: io::Error,
    },
    /// Talking to or waiting for a running child failed.
    Io {
        /// The program as given.
        program: OsString,
        /// The child's pid.
        pid: Pid,
        /// What we were doing: `"waiting"`, `"writing stdin"`, ...
        during: &'static str,
        /// What the system said.
        source: io::Error,
    },
    /// The child ended unsuccessfully and `check` was asked for (Python's `CalledProcessError`).
    CalledProcessError {
        /// The command line, program first.
        args: Vec<OsString>,
        /// How it ended.
        status: ExitStatus,
        /// Its captured stdout (empty when not captured).
        stdout: Vec<u8>,
        /// Its captured stderr (empty when not captured).
        stderr: Vec<u8>,
    },
    /// The child was still running when the timeout passed (Python's `TimeoutExpired`).
    /// `run` kills it (its whole process group when it has its own) before returning this;
    /// [`Child::communicate`](crate::Child::communicate) leaves it running.
    TimeoutExpired {
        /// The command line, program first.
        args: Vec<OsString>,
        /// The timeout that passed.
        timeout: Duration,
        /// Every byte of stdout read before the timeout.
        stdout: Vec<u8>,
        /// Every byte of stderr read before the timeout.
        stderr: Vec<u8>,
    },
    /// A stage of a [`Pipeline`](crate::Pipeline) ended unsuccessfully and `check` was asked for.
    PipelineFailed {
        /// Which stage, counting from 0.
        stage: usize,
        /// That stage's command line.
        args: Vec<OsString>,
        /// How that stage ended.
        status: ExitStatus,
        /// How every stage ended, in order.
        statuses: Vec<ExitStatus>,
        /// The last stage's captured stdout.
        stdout: Vec<u8>,
        /// The last stage's captured stderr.
        stderr: Vec<u8>,
    },
    /// Output asked for as text is not UTF-8.
    NotUtf8 {
        /// The command line, program first.
        args: Vec<OsString>,
        /// `"stdout"` or `"stderr"`.
        stream: &'static str,
        /// The length of the valid UTF-8 prefix.
        valid_up_to: usize,
    },
}

/// A command line as Python prints it in its errors: `['ls', '-l']`.
struct ArgList<'a>(&'a [OsString]);

impl fmt::Display for ArgList<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("[")?;
        for (i, arg) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str(", ")?;
            }
            write!(f, "{:?}", arg.to_string_lossy())?;
        }
        f.write_str("]")
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::NotFound { program } => {
                write!(f, "failed to spawn {program:?}: no such file or directory")?;
                if !program.as_encoded_bytes().contains(&b'/') {
                    f.write_str(" (not found in PATH)")?;
                }
                Ok(())
            }
            Error::PermissionDenied { program } => {
                write!(f, "failed to spawn {program:?}: permission denied")
            }
            Error::BadWorkingDirectory {
                program,
                cwd,
                source,
            } => write!(
                f,
                "failed to spawn {program:?}: working directory {}: {source}",
                cwd.display()
            ),
            Error::Spawn { program, source } => write!(f, "failed to spawn {program:?}: {source}"),
            Error::Io {
                program,
                pid,
                during,
                source,
            } => write!(f, "{program:?} (pid {pid}): {during}: {source}"),
            Error::CalledProcessError { args, status, .. } => {
                write!(f, "command {} {status}", ArgList(args))
            }
            Error::TimeoutExpired {
                args,
                timeout,
                stdout,
                stderr,
            } => write!(
                f,
                "command {} timed out after {timeout:?} (read {} bytes of stdout and {} of stderr \
                 before)",
                ArgList(args),
                stdout.len(),
                stderr.len()
            ),
            Error::PipelineFailed {
                stage,
                args,
                status,
                statuses,
                ..
            } => write!(
                f,
                "pipeline stage {stage} of {} ({}) {status}",
                statuses.len(),
                ArgList(args)
            ),
            Error::NotUtf8 {
                args,
                stream,
                valid_up_to,
            } => write!(
                f,
                "the {stream} of {} is not UTF-8 (valid up to byte {valid_up_to})",
                ArgList(args)
            ),
        }
    }
}

impl std::error::Error for Error {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Error::BadWorkingDirectory { source, .. }
            | Error::Spawn { source, .. }
            | Error::Io { source, .. } => Some(source),
            _ => None,
        }
    }
}

impl From<Error> for io::Error {
    /// For callers whose functions return `io::Result`: the kind follows the variant
    /// (`NotFound`, `PermissionDenied`, `TimedOut`, ...) and the message is the `Display`.
    fn from(err: Error) -> io::Error {
        let kind = match &err {
            Error::NotFound { .. } => io::ErrorKind::NotFound,
            Error::PermissionDenied { .. } => io::ErrorKind::PermissionDenied,
            Error::BadWorkingDirectory { source, .. }
            | Error::Spawn { source, .. }
            | Error::Io { source, .. } => source.kind(),
            Error::TimeoutExpired { .. } => io::ErrorKind::TimedOut,
            Error::NotUtf8 { .. } => io::ErrorKind::InvalidData,
            _ => io::ErrorKind::Other,
        };
        io::Error::new(kind, err)
    }
}
