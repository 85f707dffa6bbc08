//! Async subprocesses on tokio's reactor (feature `tokio`): no thread per child, no `SIGCHLD`
//! handler.
//!
//! The async API sits next to the blocking one, on the same [`Command`](crate::Command):
//! [`spawn_async`](crate::Command::spawn_async) gives a [`Child`] whose
//! [`wait`](Child::wait), [`wait_timeout`](Child::wait_timeout) and
//! [`communicate`](Child::communicate) are awaited, and whose pipes are
//! [`AsyncWrite`](::tokio::io::AsyncWrite) / [`AsyncRead`](::tokio::io::AsyncRead);
//! [`run_async`](crate::Command::run_async), [`output_async`](crate::Command::output_async),
//! [`call_async`](crate::Command::call_async),
//! [`check_call_async`](crate::Command::check_call_async),
//! [`check_output_async`](crate::Command::check_output_async) and
//! [`Pipeline::run_async`](crate::Pipeline::run_async) are `run` and friends, with the same
//! options and errors (a timeout kills the tree exactly as the blocking `run`'s does).
//!
//! ```
//! use std::time::Duration;
//! use proc_spawn::{Command, Stdio};
//!
//! # fn main() -> Result<(), proc_spawn::Error> {
//! # let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
//! # runtime.block_on(async {
//! let out = Command::new("echo").arg("hello").capture_output()
//!     .timeout(Duration::from_secs(10)).check(true).run_async().await?;
//! assert_eq!(out.stdout, b"hello\n");
//!
//! let mut child = Command::new("cat").stdin(Stdio::piped()).stdout(Stdio::piped()).spawn_async()?;
//! let (stdout, _) = child.communicate(Some(&[b'x'; 1 << 20]), None).await?;
//! assert_eq!(stdout.len(), 1 << 20);
//! # Ok(())
//! # })
//! # }
//! ```
//!
//! How it waits: on Linux the child's pidfd is registered with the reactor
//! (`tokio::io::unix::AsyncFd`) and becomes readable when the child exits; elsewhere (or on a
//! kernel without pidfds) `wait` looks every 1 to 10 ms with `tokio::time::sleep`. The pipes
//! are non-blocking fds registered with the reactor on every platform. `communicate` is the
//! blocking one's state machine, stepped on readiness instead of after `poll`.

mod child;
mod communicate;
mod pipe;
mod run;

pub use child::Child;
pub use pipe::{ChildStderr, ChildStdin, ChildStdout};
