//! The async entry points on `Command` and `Pipeline`: `spawn_async`, `run_async` and the
//! functions built on it, `Pipeline::run_async`. The decisions (streams, groups, checks,
//! errors) are the blocking `run`'s and the pipeline's own, shared; only the waiting differs.

use std::io;
use std::time::Instant;

use fork_sys::{ExitStatus, Signal};

use super::Child;
use crate::run::{RunPlan, completed};
use crate::{Command, CompletedProcess, Error, Input, Pipeline, PipelineOutput};

/// `Error::Spawn` when there is no tokio runtime to register with, before anything starts
/// (tokio's own types panic there).
fn require_runtime(program: &std::ffi::OsStr) -> Result<(), Error> {
    match ::tokio::runtime::Handle::try_current() {
        Ok(_) => Ok(()),
        Err(_) => Err(Error::Spawn {
            program: program.to_owned(),
            source: io::Error::other(
                "the async API needs a tokio runtime (with IO and time enabled): call it from \
                 inside one",
            ),
        }),
    }
}

impl Command {
    /// Starts the child and returns at once, as an async [`tokio::Child`](super::Child)
    /// whose waits are awaited on tokio's reactor (feature `tokio`). Everything else is
    /// [`spawn`](Command::spawn)'s: options, errors, the drop rule.
    ///
    /// Outside a tokio runtime it is an [`Error::Spawn`] and nothing starts; a runtime
    /// without IO enabled panics, as tokio's own types do.
    pub fn spawn_async(&self) -> Result<Child, Error> {
        require_runtime(&self.program)?;
        Child::from_blocking(self.spawn()?)
    }

    /// [`run`](Command::run), awaited (feature `tokio`): spawn, communicate (input, capture),
    /// wait, check; on a [`timeout`](Command::timeout) the child and everything it started is
    /// killed and reaped exactly as the blocking `run` does (see
    /// [`kill_tree_on_timeout`](Command::kill_tree_on_timeout)), and the error is
    /// [`Error::TimeoutExpired`] with the output read so far.
    ///
    /// Dropping the future part-way drops the child as [`tokio::Child`](super::Child) says:
    /// reaped in the background, killed first with [`kill_on_drop`](Command::kill_on_drop).
    pub async fn run_async(&self) -> Result<CompletedProcess, Error> {
        require_runtime(&self.program)?;
        let options = &self.run;
        let RunPlan {
            streams,
            kill_tree,
            new_group,
        } = RunPlan::of(self)?;
        let child = crate::spawn::spawn_with_streams(self, streams, new_group)?;
        let mut child = Child::from_blocking(child)?;
        let input = options.input.as_ref().map(Input::as_bytes);
        let output = match child.communicate(input, options.timeout).await {
            Ok(output) => output,
            Err(err @ Error::TimeoutExpired { .. }) => {
                // As the blocking run: the timeout is the error; a child we failed to kill or
                // reap here is reaped when `child` drops.
                let _ = child.kill_tree_and_reap(kill_tree).await;
                return Err(err);
            }
            Err(err) => return Err(err),
        };
        let status = child.wait().await?;
        completed(self, status, child.status_lost(), output)
    }

    /// [`run_async`](Command::run_async) capturing stdout and stderr (where not set), as
    /// [`capture_output`](Command::capture_output) does: std's `Command::output`, awaited.
    pub async fn output_async(&self) -> Result<CompletedProcess, Error> {
        let mut command = self.clone();
        command.capture_output().run_async().await
    }

    /// [`call`](Command::call), awaited: how the child ended.
    pub async fn call_async(&self) -> Result<ExitStatus, Error> {
        Ok(self.run_async().await?.status)
    }

    /// [`check_call`](Command::check_call), awaited: an unsuccessful exit is
    /// [`Error::CalledProcessError`].
    pub async fn check_call_async(&self) -> Result<ExitStatus, Error> {
        Ok(self.checked().run_async().await?.status)
    }

    /// [`check_output`](Command::check_output), awaited: stdout, or
    /// [`Error::CalledProcessError`] with the output.
    pub async fn check_output_async(&self) -> Result<Vec<u8>, Error> {
        Ok(self.checked_with_stdout().run_async().await?.stdout)
    }
}

impl Pipeline {
    /// [`run`](Pipeline::run), awaited (feature `tokio`): the same checks, the input written
    /// to the first stage while the last stage's output is read, every status, and on a
    /// [`timeout`](Pipeline::timeout) every stage killed with its tree and reaped.
    pub async fn run_async(&self) -> Result<PipelineOutput, Error> {
        self.check_run_options()?;
        if let Some(first) = self.first_program() {
            require_runtime(first)?;
        }
        let deadline = self.timeout.and_then(|t| Instant::now().checked_add(t));
        let mut blocking = self.spawn_stages(self.timeout.is_some())?;
        // The first stage's stdin is lent to the last stage's `Child`, whose `communicate`
        // drives it with its own stdout and stderr (a piped first stdin without input is
        // closed at once).
        let first_stdin = blocking.first_mut().and_then(|first| first.stdin.take());
        if let Some(last) = blocking.last_mut() {
            last.stdin = first_stdin;
        }
        let mut children = Vec::with_capacity(blocking.len());
        let mut stages = blocking.into_iter();
        for stage in stages.by_ref() {
            match Child::from_blocking(stage) {
                Ok(child) => children.push(child),
                Err(err) => {
                    // Nobody can run the pipeline: stop the stages (the reaper reaps them).
                    for started in &children {
                        let _ = started.signal_group(Signal::KILL);
                    }
                    for rest in stages {
                        let _ = rest.signal_group(Signal::KILL);
                    }
                    return Err(err);
                }
            }
        }
        let input = self.input.as_ref().map(Input::as_bytes);
        let output = match children.last_mut() {
            None => (Vec::new(), Vec::new()),
            Some(last) => match last.communicate(input, self.timeout).await {
                Ok(output) => output,
                Err(Error::TimeoutExpired { stdout, stderr, .. }) => {
                    return Err(self
                        .kill_stages_on_timeout(&mut children, stdout, stderr)
                        .await);
                }
                Err(err) => return Err(err),
            },
        };
        let mut statuses = Vec::with_capacity(children.len());
        for i in 0..children.len() {
            let status = match deadline {
                None => children[i].wait().await?,
                Some(deadline) => {
                    let left = deadline.saturating_duration_since(Instant::now());
                    match children[i].wait_timeout(left).await? {
                        Some(status) => status,
                        None => {
                            let (stdout, stderr) = output;
                            return Err(self
                                .kill_stages_on_timeout(&mut children, stdout, stderr)
                                .await);
                        }
                    }
                }
            };
            statuses.push(status);
        }
        self.finish(
            children.iter().map(|c| c.args().to_vec()).collect(),
            statuses,
            output,
        )
    }

    /// Kills every stage with its tree (as the blocking pipeline does), reaps it, and builds
    /// the timeout error.
    async fn kill_stages_on_timeout(
        &self,
        children: &mut [Child],
        stdout: Vec<u8>,
        stderr: Vec<u8>,
    ) -> Error {
        for (i, child) in children.iter_mut().enumerate() {
            // Best effort: the timeout, with its bytes, is the error to report.
            let _ = child.kill_tree_and_reap(self.kills_tree(i)).await;
        }
        self.timeout_error(children.iter().map(Child::args), stdout, stderr)
    }
}
