//! The async driver of `communicate`: the same [`Communication`] state machine as the
//! blocking `poll` loop, stepped when tokio's reactor says a pipe is ready.

use std::future::poll_fn;
use std::io;
use std::task::{Context, Poll};
use std::time::Duration;

use super::Child;
use super::pipe::Registered;
use crate::Error;
use crate::communicate::{Communication, InputProgress, Output, Step, Stopped};

/// One call in flight. Dropped however the call ends (done, failed, timed out, or its future
/// dropped part-way), it keeps the input not written yet in the child for the next call;
/// after a call that wrote everything stdin is closed and there is nothing to keep.
struct Exchange<'c, 'a> {
    child: &'c mut Child,
    call: Communication<'a>,
}

impl Drop for Exchange<'_, '_> {
    fn drop(&mut self) {
        let stdin_open = self.child.stdin.is_some();
        self.call
            .keep_unwritten_input(&mut self.child.inner.input, stdin_open);
    }
}

/// `Child::communicate_into`, awaited: appends to the caller's buffers; returns once the child
/// was reaped.
pub(crate) async fn communicate_into(
    child: &mut Child,
    input: Option<&[u8]>,
    output: (&mut Vec<u8>, &mut Vec<u8>),
    timeout: Option<Duration>,
) -> Result<(), Error> {
    let call = Communication::begin(
        &child.inner.input,
        child.stdin.is_some(),
        input,
        output,
        timeout,
    )
    .map_err(|err| child.io_error("communicating", err))?;
    let mut exchange = Exchange { child, call };
    match drive(&mut exchange).await {
        Ok(()) => Ok(()),
        Err(Stopped::TimedOut) => Err(exchange.call.timed_out(exchange.child.args())),
        Err(Stopped::Failed(err)) => Err(err),
    }
}

/// The pipes until all are closed, then the wait, within the call's deadline.
async fn drive(exchange: &mut Exchange<'_, '_>) -> Result<(), Stopped> {
    let Exchange { child, call } = exchange;
    if !call.input_left(&child.inner.input) {
        // Nothing (left) to write: close stdin so the child sees end-of-file.
        call.close_input(&mut child.inner.input);
        child.stdin = None;
    }
    // The pipes are non-blocking already; the call enlarges those that carry bulk.
    let pumped = match call.time_left().map_err(|()| Stopped::TimedOut)? {
        None => poll_fn(|cx| step_ready_pipes(child, call, cx)).await,
        Some(left) => ::tokio::time::timeout(left, poll_fn(|cx| step_ready_pipes(child, call, cx)))
            .await
            .unwrap_or(Err(Stopped::TimedOut)),
    };
    pumped?;
    let status = match call.time_left().map_err(|()| Stopped::TimedOut)? {
        None => Some(child.wait().await?),
        Some(left) => child.wait_timeout(left).await?,
    };
    status.map(drop).ok_or(Stopped::TimedOut)
}

/// What a step's result is for `try_io`: `WouldBlock` as an error, so tokio clears the
/// readiness it had recorded and the next poll registers the waker.
fn blocking_as_error(step: io::Result<Step>) -> io::Result<()> {
    match step? {
        Step::WouldBlock => Err(io::ErrorKind::WouldBlock.into()),
        Step::Finished => Ok(()),
    }
}

/// What one pipe did when looked at.
enum Looked {
    /// Not ready: the waker is registered.
    Pending,
    /// Said ready, but would block: its readiness was cleared; look again.
    Cleared,
    /// Finished with (all input written or `EPIPE`; end-of-file): drop it.
    Finished,
    Failed(io::Error),
}

/// One step of stdin's side, when the reactor says it is writable.
fn look_at_stdin(
    pipe: &Registered,
    call: &mut Communication<'_>,
    progress: &mut InputProgress,
    cx: &mut Context<'_>,
) -> Looked {
    match pipe.0.poll_write_ready(cx) {
        Poll::Pending => Looked::Pending,
        Poll::Ready(Err(err)) => Looked::Failed(err),
        Poll::Ready(Ok(mut guard)) => {
            match guard.try_io(|fd| blocking_as_error(call.write_input(progress, fd.get_ref()))) {
                Ok(Ok(())) => Looked::Finished,
                Ok(Err(err)) => Looked::Failed(err),
                Err(_would_block) => Looked::Cleared,
            }
        }
    }
}

/// One step of an output's side, when the reactor says it is readable.
fn look_at_output(
    pipe: &Registered,
    which: Output,
    call: &mut Communication<'_>,
    cx: &mut Context<'_>,
) -> Looked {
    match pipe.0.poll_read_ready(cx) {
        Poll::Pending => Looked::Pending,
        Poll::Ready(Err(err)) => Looked::Failed(err),
        Poll::Ready(Ok(mut guard)) => {
            match guard.try_io(|fd| blocking_as_error(call.read_output(which, fd.get_ref()))) {
                Ok(Ok(())) => Looked::Finished,
                Ok(Err(err)) => Looked::Failed(err),
                Err(_would_block) => Looked::Cleared,
            }
        }
    }
}

/// Steps every pipe the reactor says is ready, until none is; `Ready` once all are closed.
fn step_ready_pipes(
    child: &mut Child,
    call: &mut Communication<'_>,
    cx: &mut Context<'_>,
) -> Poll<Result<(), Stopped>> {
    loop {
        let mut look_again = false;
        let Child {
            stdin,
            stdout,
            stderr,
            inner,
            ..
        } = &mut *child;
        let mut settle = |looked: Looked, during: &'static str, inner: &crate::Child| match looked {
            Looked::Pending => Ok(false),
            Looked::Cleared => {
                look_again = true;
                Ok(false)
            }
            Looked::Finished => Ok(true),
            Looked::Failed(err) => Err(Stopped::Failed(inner.io_error(during, err))),
        };
        if let Some(pipe) = stdin.as_ref() {
            let looked = look_at_stdin(&pipe.0, call, &mut inner.input, cx);
            if settle(looked, "writing stdin", inner)? {
                *stdin = None; // all written, or the child stopped reading
            }
        }
        if let Some(pipe) = stdout.as_ref() {
            let looked = look_at_output(&pipe.0, Output::Stdout, call, cx);
            if settle(looked, Output::Stdout.during(), inner)? {
                *stdout = None;
            }
        }
        if let Some(pipe) = stderr.as_ref() {
            let looked = look_at_output(&pipe.0, Output::Stderr, call, cx);
            if settle(looked, Output::Stderr.during(), inner)? {
                *stderr = None;
            }
        }
        if stdin.is_none() && stdout.is_none() && stderr.is_none() {
            return Poll::Ready(Ok(()));
        }
        if !look_again {
            return Poll::Pending;
        }
    }
}
