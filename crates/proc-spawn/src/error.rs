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
    /// The program, an argument, an environment variable or the working directory contains a
    /// NUL byte, which `exec` cannot pass (Python's `ValueError: embedded null byte`). Checked
    /// before anything else, the `PATH` lookup included: no process was started.
    NulByte {
        /// The program as given.
        program: OsString,
        /// Which part holds the NUL byte.
        part: CommandPart,
    },
    /// Starting the program failed for another reason (out of processes or fds,
    /// `uid`/`gid` not permitted, an invalid option).
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

/// A part of a [`Command`](crate::Command), as [`Error::NulByte`] names it.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum CommandPart {
    /// The program.
    Program,
    /// An argument, counted as in `argv`: the first [`arg`](crate::Command::arg) is 1 (the
    /// program is `argv[0]`).
    Argument(usize),
    /// The name of an environment variable (lossily decoded, NUL shown as `\0`).
    EnvName(OsString),
    /// The value of the environment variable of this name.
    EnvValue(OsString),
    /// The working directory.
    CurrentDir,
}

impl fmt::Display for CommandPart {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CommandPart::Program => f.write_str("the program name"),
            CommandPart::Argument(n) => write!(f, "argument {n}"),
            CommandPart::EnvName(name) => write!(f, "the environment variable name {name:?}"),
            CommandPart::EnvValue(name) => write!(f, "the value of environment variable {name:?}"),
            CommandPart::CurrentDir => f.write_str("the working directory"),
        }
    }
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
            Error::NulByte { program, part } => write!(
                f,
                "failed to spawn {program:?}: {part} contains a NUL byte, which exec cannot pass"
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
            Error::NulByte { .. } => io::ErrorKind::InvalidInput,
            Error::TimeoutExpired { .. } => io::ErrorKind::TimedOut,
            Error::NotUtf8 { .. } => io::ErrorKind::InvalidData,
            _ => io::ErrorKind::Other,
        };
        io::Error::new(kind, err)
    }
}
