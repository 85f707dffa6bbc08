//! `Pipeline`: `a | b | c`, each stage's stdout into the next one's stdin, the status of every
//! stage, and which one failed.

use std::ffi::OsString;
use std::ops::BitOr;

use fork_sys::{ExitStatus, Signal};

use crate::{Child, Command, Error, Stdio};

/// Commands connected stdout to stdin, like a shell's `a | b | c`; build one with `|` on
/// [`Command`]s or with [`Pipeline::new`] and [`pipe`](Pipeline::pipe).
///
/// The intermediate pipes are closed in the parent as soon as the stage reading them has
/// started, so end-of-file and `SIGPIPE` behave as in a shell: when `head` exits, `yes` dies
/// of `SIGPIPE`. The last stage's stdout and stderr are captured when it sets them to
/// [`Stdio::piped`] or asks for [`capture_output`](Command::capture_output); other streams are
/// as each command sets them (stderr inherited by default).
#[derive(Debug, Clone)]
pub struct Pipeline {
    stages: Vec<Command>,
    check: bool,
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

    /// Starts every stage, connected; the last stage's pipes (if any) are on its `Child`.
    /// If a stage cannot start, the ones already started are killed and reaped.
    pub fn spawn(&self) -> Result<Vec<Child>, Error> {
        let mut children: Vec<Child> = Vec::with_capacity(self.stages.len());
        let last = self.stages.len().saturating_sub(1);
        for (i, stage) in self.stages.iter().enumerate() {
            let mut command = stage.clone();
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
            match command.spawn() {
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

    /// Runs every stage to completion and collects the statuses and the last stage's output.
    pub fn run(&self) -> Result<PipelineOutput, Error> {
        let mut children = self.spawn()?;
        let (stdout, stderr) = match children.last_mut() {
            Some(last) => last.communicate(None, None)?,
            None => (Vec::new(), Vec::new()),
        };
        let mut statuses = Vec::with_capacity(children.len());
        for child in &mut children {
            statuses.push(child.wait()?);
        }
        let output = PipelineOutput {
            args: children.iter().map(|c| c.args().to_vec()).collect(),
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
