//! The one error type of xtask, and the process exit code each kind maps to.

use std::fmt;
use std::io;
use std::path::PathBuf;
use std::process::ExitStatus;

/// Why an xtask command did not succeed.
///
/// Each variant carries what a person needs to act on it: the command line that failed, the
/// path that could not be read, or the legs that failed.
#[derive(Debug)]
pub(crate) enum Error {
    /// The command line was wrong; the message says how, and a pointer to `help` follows it.
    Usage(String),
    /// A program could not be started at all (not installed, not on `PATH`, not executable).
    Spawn {
        /// The command line as shown to the user, e.g. `cargo fmt --all --check`.
        command: String,
        /// What the operating system said.
        source: io::Error,
    },
    /// A program ran and did not exit successfully.
    Failed {
        /// The command line as shown to the user.
        command: String,
        /// How it ended: an exit code, or the signal that killed it.
        status: ExitStatus,
    },
    /// A directory the workspace layout promises could not be listed.
    ReadDir {
        /// The directory.
        path: PathBuf,
        /// What the operating system said.
        source: io::Error,
    },
    /// A file or directory could not be read, written or created.
    Io {
        /// What was being done, e.g. `write` or `create directory`.
        action: &'static str,
        /// The file or directory.
        path: PathBuf,
        /// What the operating system said.
        source: io::Error,
    },
    /// The single-node Slurm cluster (`cargo xtask cluster`) is not as it should be; the
    /// message names the command, file or pid involved and what to do about it.
    Cluster(String),
    /// Some steps of a multi-step command failed; each has already reported its own output.
    StepsFailed {
        /// The command, e.g. `test` or `ci`.
        command: &'static str,
        /// The names of the failed steps, in the order they ran.
        failed: Vec<String>,
        /// How many steps ran in all.
        total: usize,
    },
}

impl Error {
    /// The exit code xtask ends with for this error.
    ///
    /// A failed child's own exit code is passed on (so `cargo xtask demo` exits as procdemo did);
    /// usage errors exit 2 like most command-line tools; everything else exits 1.
    pub(crate) fn exit_code(&self) -> u8 {
        match self {
            Self::Usage(_) => 2,
            Self::Failed { status, .. } => status
                .code()
                .and_then(|code| u8::try_from(code).ok())
                .filter(|&code| code != 0)
                .unwrap_or(1),
            Self::Spawn { .. }
            | Self::ReadDir { .. }
            | Self::Io { .. }
            | Self::Cluster(_)
            | Self::StepsFailed { .. } => 1,
        }
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Usage(message) => f.write_str(message),
            Self::Spawn { command, source } => write!(
                f,
                "could not start `{command}`: {source} \
                 (is it installed and on PATH? cargo can also be named by the CARGO variable)"
            ),
            Self::Failed { command, status } => write!(f, "`{command}` failed ({status})"),
            Self::ReadDir { path, source } => {
                write!(f, "could not list {}: {source}", path.display())
            }
            Self::Io {
                action,
                path,
                source,
            } => write!(f, "could not {action} {}: {source}", path.display()),
            Self::Cluster(message) => f.write_str(message),
            Self::StepsFailed {
                command,
                failed,
                total,
            } => write!(
                f,
                "{command} failed: {} ({} of {total})",
                failed.join(", "),
                failed.len()
            ),
        }
    }
}

impl std::error::Error for Error {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Self::Spawn { source, .. } | Self::ReadDir { source, .. } | Self::Io { source, .. } => {
                Some(source)
            }
            Self::Usage(_) | Self::Cluster(_) | Self::Failed { .. } | Self::StepsFailed { .. } => {
                None
            }
        }
    }
}
