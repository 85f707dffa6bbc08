//! `run` and `CompletedProcess`: Python's `subprocess.run`, on top of `spawn` and
//! `communicate`.

use std::ffi::OsString;

use fork_sys::ExitStatus;

use crate::stdio::Kind;
use crate::{Command, Error, Input, Stdio};

/// A child that ran to completion (Python's `CompletedProcess`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CompletedProcess {
    /// The command line, program first.
    pub args: Vec<OsString>,
    /// How it ended; `status.code()` is Python's `returncode` (`-9` for SIGKILL).
    pub status: ExitStatus,
    /// True when the child's status was lost because something else reaped it (`SIGCHLD`
    /// set to `SIG_IGN`); `status` is then `Exited(0)`, as in Python. See
    /// [`Child::status_lost`](crate::Child::status_lost).
    pub status_lost: bool,
    /// Captured stdout (empty unless captured).
    pub stdout: Vec<u8>,
    /// Captured stderr (empty unless captured).
    pub stderr: Vec<u8>,
}

impl CompletedProcess {
    /// [`Error::CalledProcessError`] unless the child exited with code 0 (Python's
    /// `check_returncode`).
    pub fn check_returncode(self) -> Result<CompletedProcess, Error> {
        if self.status.success() {
            return Ok(self);
        }
        Err(Error::CalledProcessError {
            args: self.args,
            status: self.status,
            stdout: self.stdout,
            stderr: self.stderr,
        })
    }

    /// stdout as text (Python's `text=True`); [`Error::NotUtf8`] names the stream and the
    /// first invalid byte otherwise.
    pub fn stdout_text(&self) -> Result<&str, Error> {
        self.text(&self.stdout, "stdout")
    }

    /// stderr as text; see [`stdout_text`](CompletedProcess::stdout_text).
    pub fn stderr_text(&self) -> Result<&str, Error> {
        self.text(&self.stderr, "stderr")
    }

    fn text<'a>(&self, bytes: &'a [u8], stream: &'static str) -> Result<&'a str, Error> {
        std::str::from_utf8(bytes).map_err(|err| Error::NotUtf8 {
            args: self.args.clone(),
            stream,
            valid_up_to: err.valid_up_to(),
        })
    }
}

/// The streams `run` uses: pipes for captured output and for input, where the command did
/// not choose.
fn run_streams(command: &Command) -> [Stdio; 3] {
    let options = &command.run;
    let or_piped = |chosen: &Option<Stdio>, pipe: bool| match chosen {
        Some(stdio) => stdio.clone(),
        None if pipe => Stdio::piped(),
        None => Stdio::inherit(),
    };
    [
        or_piped(&command.stdin, options.input.is_some()),
        or_piped(&command.stdout, options.capture_output),
        or_piped(&command.stderr, options.capture_output),
    ]
}

/// What `run` (blocking or async) decided before starting the child.
pub(crate) struct RunPlan {
    /// stdin, stdout, stderr.
    pub(crate) streams: [Stdio; 3],
    /// A timeout kills the child's tree, not the child alone.
    pub(crate) kill_tree: bool,
    /// The child gets a process group of its own.
    pub(crate) new_group: bool,
}

impl RunPlan {
    /// The streams and the group for `command`, or the error for options that cannot work
    /// together (input without a piped stdin).
    pub(crate) fn of(command: &Command) -> Result<RunPlan, Error> {
        let options = &command.run;
        let streams = run_streams(command);
        if options.input.is_some() && !matches!(streams[0].0, Kind::Piped) {
            return Err(Error::Spawn {
                program: command.program.clone(),
                source: std::io::Error::new(
                    std::io::ErrorKind::InvalidInput,
                    "input was given but stdin is set to something other than a pipe",
                ),
            });
        }
        let kill_tree = options.timeout.is_some() && !options.keep_tree_on_timeout;
        // A group of our own (to kill on the timeout) only where the terminal's Ctrl-C does
        // not depend on the child sharing ours.
        let new_group = kill_tree && !crate::tree::in_terminal_foreground();
        Ok(RunPlan {
            streams,
            kill_tree,
            new_group,
        })
    }
}

/// The `CompletedProcess` of a child that ended, checked when the command asks for it.
pub(crate) fn completed(
    command: &Command,
    status: ExitStatus,
    status_lost: bool,
    (stdout, stderr): (Vec<u8>, Vec<u8>),
) -> Result<CompletedProcess, Error> {
    let completed = CompletedProcess {
        args: command.get_args(),
        status,
        status_lost,
        stdout,
        stderr,
    };
    if command.run.check {
        completed.check_returncode()
    } else {
        Ok(completed)
    }
}

pub(crate) fn run(command: &Command) -> Result<CompletedProcess, Error> {
    let options = &command.run;
    let RunPlan {
        streams,
        kill_tree,
        new_group,
    } = RunPlan::of(command)?;
    let mut child = crate::spawn::spawn_with_streams(command, streams, new_group)?;
    let output =
        match child.communicate(options.input.as_ref().map(Input::as_bytes), options.timeout) {
            Ok(output) => output,
            Err(err @ Error::TimeoutExpired { .. }) => {
                // Python kills only the child; we take its group and its descendants with
                // it, so no grandchild is left running. Best effort: the timeout, with every
                // byte it holds, is the error to report; a child we failed to kill or reap
                // here is reaped when `child` drops.
                let _ = child.kill_tree_and_reap(kill_tree);
                return Err(err);
            }
            Err(err) => return Err(err),
        };
    let status = child.wait()?;
    completed(command, status, child.status_lost(), output)
}
