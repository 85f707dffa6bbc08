//! Waiting for the first of several processes, like `multiprocessing.connection.wait` on
//! their sentinels.

use std::time::{Duration, Instant};

use serde::de::DeserializeOwned;

use crate::process::sleep_until_any_stirs;
use crate::{Process, ProcessError};

/// Waits until one of `processes` has finished and returns its index: its
/// [`join`](Process::join) will then not block. `Ok(None)` if none finished within `timeout`
/// (`None` waits as long as it takes), and at once for an empty slice. Already-finished or
/// joined processes count as finished, so remove each one you join.
///
/// While waiting it reads the result pipes, so children sending large values are never stuck
/// waiting for a reader (a wait on exit alone would deadlock with them).
///
/// ```
/// use std::time::Duration;
/// let mut procs = vec![
///     proc_core::Process::spawn(|| { std::thread::sleep(Duration::from_secs(5)); 1 })?,
///     proc_core::Process::spawn(|| 2)?,
/// ];
/// let first = proc_core::wait_any(&mut procs, None)?.expect("no timeout given");
/// assert_eq!(procs.remove(first).join()?, 2);
/// procs[0].kill()?;
/// # Ok::<(), proc_core::ProcessError>(())
/// ```
pub fn wait_any<R: DeserializeOwned>(
    processes: &mut [Process<R>],
    timeout: Option<Duration>,
) -> Result<Option<usize>, ProcessError> {
    if processes.is_empty() {
        return Ok(None);
    }
    let deadline = timeout.and_then(|t| Instant::now().checked_add(t));
    loop {
        for (index, process) in processes.iter_mut().enumerate() {
            if process.poll_finished()? {
                return Ok(Some(index));
            }
        }
        let now = Instant::now();
        let remaining = match deadline {
            Some(deadline) if deadline <= now => return Ok(None),
            Some(deadline) => Some(deadline - now),
            None => None,
        };
        if let Err(source) = sleep_until_any_stirs(processes.iter(), remaining) {
            return Err(ProcessError::Wait { source });
        }
    }
}
