//! Waiting for the first of several processes, like `multiprocessing.connection.wait` on
//! their sentinels.

use std::time::{Duration, Instant};

use fork_sys::Interest;
use serde::de::DeserializeOwned;

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
        let mut fds = Vec::with_capacity(processes.len() * 2);
        let mut every_exit_has_fd = true;
        for process in processes.iter() {
            let (wake, has_exit_fd) = process.wake_fds();
            every_exit_has_fd &= has_exit_fd;
            fds.extend(wake.into_iter().map(|fd| (fd, Interest::Read)));
        }
        // Without pidfds, look at the children now and then.
        let slice = Duration::from_millis(20);
        let timeout = if every_exit_has_fd {
            remaining
        } else {
            Some(remaining.map_or(slice, |r| r.min(slice)))
        };
        if let Err(source) = fork_sys::poll(&fds, timeout) {
            return Err(ProcessError::Wait { source });
        }
    }
}
