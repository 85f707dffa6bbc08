//! What the queue tests share.

use proc_core::{Process, ProcessError};
use serde::Serialize;
use serde::de::DeserializeOwned;

/// Forks a child running `body`, as a daemon: if the test fails before joining it, dropping
/// the handle kills it, so that no child is left blocked on a queue for ever (holding the
/// test harness's output pipe open).
pub(crate) fn child<F, R>(body: F) -> Result<Process<R>, ProcessError>
where
    F: FnOnce() -> R,
    R: Serialize + DeserializeOwned,
{
    Process::builder().daemon(true).spawn(body)
}
