//! `JoinFuture`: [`Process::join`] for async code, on any executor, with no thread per waiter.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

use fork_sys::Pid;
use serde::de::DeserializeOwned;

use crate::join_watcher::Watch;
use crate::{Process, ProcessError};

/// A [`Process`] being joined by `.await`: what [`Process::join_async`] returns. It resolves to
/// exactly what [`join`](Process::join) would return (the value, or `Panicked`, `Exited`,
/// `Signaled`, `Codec`, … naming the process), and the child has been reaped by then.
///
/// It works on any executor (tokio, async-std, smol, a hand-written `block_on`): it depends on
/// no runtime and uses only the [`Waker`](std::task::Waker) it is polled with. While it waits,
/// one background thread for the whole program (`proc-core-exits`, started by the first
/// future that has to wait) sleeps in `poll` on the child's exit fd (its pidfd on Linux) and
/// its result pipe, and wakes the task; the future itself reads the pipe without blocking, so
/// a child sending a large value is never stuck on a full pipe. Thousands of waiting futures
/// cost that one thread. Where the child has no exit fd (off Linux), the thread wakes the task
/// every 20 ms to look.
///
/// A poll may block for a moment in one case: a `ForkServer` child whose pidfd says it exited
/// before its server has written its status is waited for (at most
/// [`fork_sys::STATUS_GRACE`], only if the server is stopped: it reaps at once).
///
/// # Dropping
///
/// Dropping the future before it completes drops the [`Process`], with the same effect: never
/// a zombie; a daemon child is killed and reaped; a running non-daemon child is detached and
/// runs to its end (so `tokio::time::timeout(d, p.join_async())` running out does not kill
/// the child: call [`kill`](JoinFuture::kill) first if that is what you want).
///
/// Polling it again after it completed returns [`ProcessError::AlreadyJoined`].
#[must_use = "a future does nothing unless awaited; dropping it detaches the child"]
pub struct JoinFuture<R> {
    /// Declared first, so it is dropped first: the watcher forgets this waiter, then the
    /// `Process` goes the way of any dropped `Process`.
    watch: Option<Watch>,
    /// `None` once the future completed.
    process: Option<Process<R>>,
    pid: Pid,
    name: Option<String>,
}

// Nothing in it is pinned: the `Process` and the registration move freely.
impl<R> Unpin for JoinFuture<R> {}

impl<R> std::fmt::Debug for JoinFuture<R> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("JoinFuture")
            .field("pid", &self.pid)
            .field("name", &self.name)
            .field("waiting", &self.watch.is_some())
            .field("process", &self.process)
            .finish()
    }
}

impl<R: DeserializeOwned> JoinFuture<R> {
    pub(crate) fn new(process: Process<R>) -> JoinFuture<R> {
        JoinFuture {
            watch: None,
            pid: process.pid(),
            name: process.name().map(str::to_owned),
            process: Some(process),
        }
    }

    /// The child's process id.
    pub fn pid(&self) -> Pid {
        self.pid
    }

    /// The name given to the builder, if any.
    pub fn name(&self) -> Option<&str> {
        self.name.as_deref()
    }

    /// Kills the child with SIGKILL, so that awaiting the future returns
    /// [`ProcessError::Signaled`] soon (unless the child had finished). A no-op once the future
    /// completed.
    pub fn kill(&self) -> Result<(), ProcessError> {
        match &self.process {
            Some(process) => process.kill(),
            None => Ok(()),
        }
    }
}

impl<R: DeserializeOwned> Future for JoinFuture<R> {
    type Output = Result<R, ProcessError>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.get_mut();
        let Some(process) = this.process.as_mut() else {
            return Poll::Ready(Err(ProcessError::AlreadyJoined {
                pid: this.pid,
                name: this.name.clone(),
            }));
        };
        // `join`'s own step, never blocking: read what has arrived, reap if it exited.
        match process.poll_finished() {
            Ok(true) => {
                this.watch = None;
                let outcome = process.take_outcome();
                this.process = None;
                return Poll::Ready(outcome);
            }
            Ok(false) => {}
            Err(err) => {
                // As `join` does: the error, and the handle dropped.
                this.watch = None;
                this.process = None;
                return Poll::Ready(Err(err));
            }
        }
        let fds = process.wake_fds();
        match &mut this.watch {
            Some(watch) => watch.arm(fds, cx.waker()),
            None => match Watch::register(fds, cx.waker()) {
                Ok(watch) => this.watch = Some(watch),
                // No watcher thread could be started (out of threads or fds): wait here, as
                // `join` does. Blocking the executor beats never waking it.
                Err(_) => {
                    let outcome = match this.process.take() {
                        Some(process) => process.join(),
                        None => Err(ProcessError::AlreadyJoined {
                            pid: this.pid,
                            name: this.name.clone(),
                        }),
                    };
                    return Poll::Ready(outcome);
                }
            },
        }
        Poll::Pending
    }
}
