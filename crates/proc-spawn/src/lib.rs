//! Python's `subprocess` for Rust, in `std::process`'s style: [`run`], [`call`],
//! [`check_call`], [`check_output`], Popen-style [`Child`]ren with a deadlock-free
//! [`communicate`](Child::communicate) that takes a timeout, and [`Pipeline`]s.
//!
//! ```
//! use std::time::Duration;
//! use proc_spawn::{Command, Error, Stdio};
//!
//! # fn main() -> Result<(), proc_spawn::Error> {
//! // subprocess.call(["true"])
//! let status = proc_spawn::call(["true"])?;
//! assert!(status.success());
//!
//! // subprocess.run(["echo", "hello"], capture_output=True, timeout=10, check=True)
//! let out = Command::new("echo").arg("hello").capture_output()
//!     .timeout(Duration::from_secs(10)).check(true).run()?;
//! assert_eq!(out.stdout_text()?, "hello\n");
//!
//! // Popen + communicate: input and output of any size, no deadlock.
//! let mut child = Command::new("cat").stdin(Stdio::piped()).stdout(Stdio::piped()).spawn()?;
//! let (stdout, _stderr) = child.communicate(Some(&[b'x'; 1 << 20]), None)?;
//! assert_eq!(stdout.len(), 1 << 20);
//!
//! // Typed errors that name what went wrong.
//! match proc_spawn::call(["no-such-program"]) {
//!     Err(Error::NotFound { program }) => assert_eq!(program, "no-such-program"),
//!     other => panic!("{other:?}"),
//! }
//!
//! // Pipelines: `printf 'b\na\n' | sort`, every stage's status.
//! let sorted = (Command::new("printf").arg("b\\na\\n") | Command::new("sort").capture_output())
//!     .check(true)
//!     .run()?;
//! assert_eq!(sorted.stdout, b"a\nb\n");
//! # Ok(())
//! # }
//! ```
//!
//! Starting a program goes through fork-sys's vfork-style child (Linux: its own
//! `clone(CLONE_VM | CLONE_VFORK)`; elsewhere fork+exec), so the cost does not grow with the
//! parent's memory, unless `uid` or `gid` needs fork+exec; the child sees only fds 0, 1, 2 and
//! the ones passed; nothing is allocated between the child's start and its exec. A shell runs only when asked for by name
//! ([`Command::shell`]). A dropped [`Child`] is never left a zombie.
//!
//! Where Python leaves things to chance, the rules are fixed: a timed-out `run` kills the
//! child's whole tree ([`Command::kill_tree_on_timeout`]); a resumed
//! [`communicate`](Child::communicate) finishes the unwritten input or refuses other input,
//! never cuts it; a [`Killer`] signals a child from any thread, never a stranger; a NUL byte
//! is [`Error::NulByte`] naming where it is; [`Input`] is taken without a copy.

#![deny(unsafe_code)]

mod child;
mod command;
mod communicate;
mod error;
mod input;
mod killer;
mod pipeline;
mod run;
mod spawn;
mod stdio;
#[cfg(feature = "tokio")]
pub mod tokio;
mod tree;

use std::ffi::OsStr;

pub use child::Child;
pub use command::Command;
pub use error::{CommandPart, Error};
pub use fork_sys::{ExitStatus, Pid, Signal};
pub use input::Input;
pub use killer::Killer;
pub use pipeline::{Pipeline, PipelineOutput};
pub use run::CompletedProcess;
pub use stdio::{ChildStderr, ChildStdin, ChildStdout, Stdio};

/// A `Command` from a command line, program first; an empty one names no program.
fn command_line<I, S>(args: I) -> Command
where
    I: IntoIterator<Item = S>,
    S: AsRef<OsStr>,
{
    let mut args = args.into_iter();
    let mut command = Command::new(args.next().as_ref().map_or(OsStr::new(""), AsRef::as_ref));
    command.args(args);
    command
}

/// Runs a command line to completion, streams inherited (Python's `subprocess.run(args)`).
/// Use [`Command`] for options.
pub fn run<I, S>(args: I) -> Result<CompletedProcess, Error>
where
    I: IntoIterator<Item = S>,
    S: AsRef<OsStr>,
{
    command_line(args).run()
}

/// Runs a command line and returns how it ended (Python's `subprocess.call`).
pub fn call<I, S>(args: I) -> Result<ExitStatus, Error>
where
    I: IntoIterator<Item = S>,
    S: AsRef<OsStr>,
{
    command_line(args).call()
}

/// Runs a command line; an unsuccessful exit is [`Error::CalledProcessError`] (Python's
/// `subprocess.check_call`).
pub fn check_call<I, S>(args: I) -> Result<ExitStatus, Error>
where
    I: IntoIterator<Item = S>,
    S: AsRef<OsStr>,
{
    command_line(args).check_call()
}

/// Runs a command line and returns its stdout; an unsuccessful exit is
/// [`Error::CalledProcessError`] with the output (Python's `subprocess.check_output`).
pub fn check_output<I, S>(args: I) -> Result<Vec<u8>, Error>
where
    I: IntoIterator<Item = S>,
    S: AsRef<OsStr>,
{
    command_line(args).check_output()
}
