//! `Pipeline`: `a | b | c`, each stage's stdout into the next one's stdin, the status of every
//! stage, and which one failed.

use std::ffi::OsString;
use std::ops::BitOr;
use std::time::{Duration, Instant};

use fork_sys::{ExitStatus, Signal};

use crate::stdio::Kind;
use crate::{Child, Command, Error, Input, Stdio};

/// Commands connected stdout to stdin, like a shell's `a | b | c`; build one with `|` on
/// [`Command`]s or with [`Pipeline::new`] and [`pipe`](Pipeline::pipe).
///
/// The intermediate pipes are closed in the parent as soon as the stage reading them has
/// started, so end-of-file and `SIGPIPE` behave as in a shell: when `head` exits, `yes` dies
/// of `SIGPIPE`. The last stage's stdout and stderr are captured when it sets them to
/// [`Stdio::piped`] or asks for [`capture_output`](Command::capture_output); other streams are
/// as each command sets them (stderr inherited by default).
///
/// `input`, `timeout` and `check` belong to the pipeline ([`Pipeline::input`],
/// [`Pipeline::timeout`], [`Pipeline::check`]): set on a stage's `Command` they are an error,
/// never silently ignored.
#[derive(Debug, Clone)]
pub struct Pipeline {
    stages: Vec<Command>,
    check: bool,
    pub(crate) input: Option<Input>,
    pub(crate) timeout: Option<Duration>,
}

/// How a pipeline ended: every stage's status, and the last stage's captured output.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PipelineOutput {
    /// Each stage's command line, in order.
    pub args: Vec<Vec<OsString>>,
    /// Each stage's status, in order.
    pub statuses: Vec<ExitStatus>,
    /// The last stage's captured stdout.
    pub stdout: Vec<u8>,
    /// The last stage's captured stderr.
    pub stderr: Vec<u8>,
}

impl PipelineOutput {
    /// The first stage that failed, if any. A stage other than the last that was killed by
    /// `SIGPIPE` does not count: a later stage stopped reading on purpose (`yes | head -1`).
    pub fn failed_stage(&self) -> Option<usize> {
        let last = self.statuses.len().saturating_sub(1);
        self.statuses.iter().enumerate().find_map(|(i, status)| {
            let broken_pipe = i < last && status.signal() == Some(Signal::PIPE);
            (!status.success() && !broken_pipe).then_some(i)
        })
    }

    /// True when no stage failed (see [`failed_stage`](PipelineOutput::failed_stage)).
    pub fn success(&self) -> bool {
        self.failed_stage().is_none()
    }

    /// [`Error::PipelineFailed`] naming the first failing stage, if any.
    pub fn check(self) -> Result<PipelineOutput, Error> {
        match self.failed_stage() {
            None => Ok(self),
            Some(stage) => Err(Error::PipelineFailed {
                stage,
                args: self.args.get(stage).cloned().unwrap_or_default(),
                status: self.statuses[stage],
                statuses: self.statuses,
                stdout: self.stdout,
                stderr: self.stderr,
            }),
        }
    }
}

impl Pipeline {
    /// A pipeline of one stage.
    pub fn new(first: Command) -> Pipeline {
        Pipeline {
            stages: vec![first],
            check: false,
            input: None,
            timeout: None,
        }
    }

    /// Appends a stage reading the previous one's stdout.
    pub fn pipe(mut self, next: Command) -> Pipeline {
        self.stages.push(next);
        self
    }

    /// Makes [`run`](Pipeline::run) return [`Error::PipelineFailed`] when a stage fails.
    pub fn check(mut self, check: bool) -> Pipeline {
        self.check = check;
        self
    }

    /// For [`run`](Pipeline::run): feed `input` to the first stage's stdin (piped, written
    /// in the same `poll` loop that reads the last stage's output, so no size deadlocks).
    ///
    /// Takes the bytes without copying them, as [`Command::input`] does.
    pub fn input(mut self, input: impl Into<Input>) -> Pipeline {
        self.input = Some(input.into());
        self
    }

    /// For [`run`](Pipeline::run): give up after `timeout`. Every stage is then killed with
    /// everything it started (per stage, as [`Command::kill_tree_on_timeout`] says) and
    /// reaped, and the error is
    /// [`Error::TimeoutExpired`] with the last stage's output read so far and the stages'
    /// command lines joined by `"|"`.
    pub fn timeout(mut self, timeout: Duration) -> Pipeline {
        self.timeout = Some(timeout);
        self
    }

    /// The options `run` alone reads, set on a stage where they would be ignored.
    fn reject_stage_run_options(&self) -> Result<(), Error> {
        for (i, stage) in self.stages.iter().enumerate() {
            let misplaced = [
                (stage.run.input.is_some(), "input", "Pipeline::input"),
                (stage.run.timeout.is_some(), "timeout", "Pipeline::timeout"),
                (stage.run.check, "check", "Pipeline::check"),
            ];
            if let Some((_, option, instead)) = misplaced.iter().find(|(set, ..)| *set) {
                return Err(invalid(
                    stage,
                    format!(
                        "{option} is set on pipeline stage {i}, where it would be ignored: \
                         use {instead}"
                    ),
                ));
            }
        }
        Ok(())
    }

    /// Starts every stage, connected; the last stage's pipes (if any) are on its `Child`.
    /// If a stage cannot start, the ones already started are killed and reaped.
    ///
    /// A stage's `input`, `timeout` or `check` is an error here too (they are `run`'s).
    pub fn spawn(&self) -> Result<Vec<Child>, Error> {
        self.reject_stage_run_options()?;
        self.spawn_stages(false)
    }

    /// The first stage's program, for errors before anything starts.
    #[cfg_attr(not(feature = "tokio"), allow(dead_code))] // The async run's.
    pub(crate) fn first_program(&self) -> Option<&std::ffi::OsStr> {
        self.stages.first().map(|stage| stage.program.as_os_str())
    }

    /// Whether a timeout kills stage `i`'s whole tree (see [`Command::kill_tree_on_timeout`]).
    pub(crate) fn kills_tree(&self, i: usize) -> bool {
        self.timeout.is_some()
            && self
                .stages
                .get(i)
                .is_some_and(|stage| !stage.run.keep_tree_on_timeout)
    }

    /// Starts the stages; with `for_timeout` (`run` with a timeout), each stage that kills its
    /// tree on a timeout gets a process group of its own, unless this process is in its
    /// terminal's foreground.
    pub(crate) fn spawn_stages(&self, for_timeout: bool) -> Result<Vec<Child>, Error> {
        let new_groups = for_timeout && !crate::tree::in_terminal_foreground();
        let mut children: Vec<Child> = Vec::with_capacity(self.stages.len());
        let last = self.stages.len().saturating_sub(1);
        for (i, stage) in self.stages.iter().enumerate() {
            let mut command = stage.clone();
            if i == 0 && self.input.is_some() && command.stdin.is_none() {
                command.stdin(Stdio::piped());
            }
            if let Some(previous) = children.last_mut().and_then(|c| c.stdout.take()) {
                command.stdin(previous);
            }
            if i < last {
                command.stdout(Stdio::piped());
            } else if command.run.capture_output {
                if command.stdout.is_none() {
                    command.stdout(Stdio::piped());
                }
                if command.stderr.is_none() {
                    command.stderr(Stdio::piped());
                }
            }
            let streams = [&command.stdin, &command.stdout, &command.stderr]
                .map(|s| s.clone().unwrap_or_default());
            let new_group = new_groups && self.kills_tree(i);
            match crate::spawn::spawn_with_streams(&command, streams, new_group) {
                Ok(child) => children.push(child),
                Err(err) => {
                    for mut started in children {
                        let _ = started.kill_and_reap();
                    }
                    return Err(err);
                }
            }
            // `command`, holding the parent's copy of the pipe's read end, drops here: only
            // the stage reading it keeps it open.
        }
        Ok(children)
    }

    /// Runs every stage to completion and collects the statuses and the last stage's output,
    /// writing [`input`](Pipeline::input) to the first stage meanwhile; with a
    /// [`timeout`](Pipeline::timeout), kills every stage when it passes.
    ///
    /// Only the last stage's stdout and stderr can be captured: a piped stderr on an earlier
    /// stage would fill up unread and stall the pipeline, so it is an error (read it through
    /// [`spawn`](Pipeline::spawn), or send it elsewhere).
    pub fn run(&self) -> Result<PipelineOutput, Error> {
        self.check_run_options()?;
        let deadline = self.timeout.and_then(|t| Instant::now().checked_add(t));
        let mut children = self.spawn_stages(self.timeout.is_some())?;
        let (stdout, stderr) = match self.communicate(&mut children) {
            Ok(output) => output,
            Err(Error::TimeoutExpired { stdout, stderr, .. }) => {
                return Err(self.timed_out(&mut children, stdout, stderr));
            }
            Err(err) => return Err(err),
        };
        let mut statuses = Vec::with_capacity(children.len());
        for i in 0..children.len() {
            let status = match deadline {
                None => children[i].wait()?,
                Some(deadline) => {
                    let left = deadline.saturating_duration_since(Instant::now());
                    match children[i].wait_timeout(left)? {
                        Some(status) => status,
                        None => return Err(self.timed_out(&mut children, stdout, stderr)),
                    }
                }
            };
            statuses.push(status);
        }
        self.finish(
            children.iter().map(|c| c.args().to_vec()).collect(),
            statuses,
            (stdout, stderr),
        )
    }

    /// The `PipelineOutput` of stages that all ended, checked when asked for.
    pub(crate) fn finish(
        &self,
        args: Vec<Vec<OsString>>,
        statuses: Vec<ExitStatus>,
        (stdout, stderr): (Vec<u8>, Vec<u8>),
    ) -> Result<PipelineOutput, Error> {
        let output = PipelineOutput {
            args,
            statuses,
            stdout,
            stderr,
        };
        if self.check {
            output.check()
        } else {
            Ok(output)
        }
    }

    /// What `run` (blocking or async) refuses before starting anything.
    pub(crate) fn check_run_options(&self) -> Result<(), Error> {
        self.reject_stage_run_options()?;
        let last = self.stages.len().saturating_sub(1);
        for (i, stage) in self.stages.iter().enumerate().take(last) {
            if matches!(stage.stderr, Some(Stdio(Kind::Piped))) {
                return Err(invalid(
                    stage,
                    format!(
                        "stderr of pipeline stage {i} is piped, but run reads only the last \
                         stage's: it would fill up and stall the pipeline"
                    ),
                ));
            }
        }
        if let (Some(_), Some(first)) = (&self.input, self.stages.first()) {
            if first
                .stdin
                .as_ref()
                .is_some_and(|s| !matches!(s.0, Kind::Piped))
            {
                return Err(invalid(
                    first,
                    "input was given but the first stage's stdin is set to something other \
                     than a pipe"
                        .to_owned(),
                ));
            }
        }
        Ok(())
    }

    /// Writes the input to the first stage while reading the last stage's output, in one
    /// `communicate` loop: the first stage's stdin is lent to the last `Child`, whose
    /// `communicate` drives its stdin, stdout and stderr together.
    fn communicate(&self, children: &mut [Child]) -> Result<(Vec<u8>, Vec<u8>), Error> {
        let first_stdin = children.first_mut().and_then(|first| first.stdin.take());
        let Some(last) = children.last_mut() else {
            return Ok((Vec::new(), Vec::new()));
        };
        // No input: a piped first stdin is closed at once (end-of-file), as `run` does.
        last.stdin = first_stdin;
        last.communicate(self.input.as_ref().map(Input::as_bytes), self.timeout)
    }

    /// Kills every stage (its group when it has its own), reaps it, and builds the error.
    fn timed_out(&self, children: &mut [Child], stdout: Vec<u8>, stderr: Vec<u8>) -> Error {
        for (i, child) in children.iter_mut().enumerate() {
            // Best effort: the timeout, with its bytes, is the error to report.
            let _ = child.kill_tree_and_reap(self.kills_tree(i));
        }
        self.timeout_error(children.iter().map(Child::args), stdout, stderr)
    }

    /// The timeout error: the stages' command lines joined by `"|"`, the last stage's output.
    pub(crate) fn timeout_error<'a>(
        &self,
        stages: impl Iterator<Item = &'a [OsString]>,
        stdout: Vec<u8>,
        stderr: Vec<u8>,
    ) -> Error {
        let mut args = Vec::new();
        for (i, stage) in stages.enumerate() {
            if i > 0 {
                args.push(OsString::from("|"));
            }
            args.extend(stage.iter().cloned());
        }
        Error::TimeoutExpired {
            args,
            timeout: self.timeout.unwrap_or_default(),
            stdout,
            stderr,
        }
    }
}

/// The error for an option a pipeline cannot honour where it was set.
fn invalid(stage: &Command, message: String) -> Error {
    Error::Spawn {
        program: stage.program.clone(),
        source: std::io::Error::new(std::io::ErrorKind::InvalidInput, message),
    }
}

impl From<&mut Command> for Command {
    /// A copy of a builder chain's command, so chains can be piped:
    /// `Command::new("a").arg("x") | Command::new("b").arg("y")`.
    fn from(command: &mut Command) -> Command {
        command.clone()
    }
}

impl<Next: Into<Command>> BitOr<Next> for Command {
    type Output = Pipeline;

    fn bitor(self, next: Next) -> Pipeline {
        Pipeline::new(self).pipe(next.into())
    }
}

impl<Next: Into<Command>> BitOr<Next> for &mut Command {
    type Output = Pipeline;

    fn bitor(self, next: Next) -> Pipeline {
        Pipeline::new(self.clone()).pipe(next.into())
    }
}

impl<Next: Into<Command>> BitOr<Next> for Pipeline {
    type Output = Pipeline;

    fn bitor(self, next: Next) -> Pipeline {
        self.pipe(next.into())
    }
}
