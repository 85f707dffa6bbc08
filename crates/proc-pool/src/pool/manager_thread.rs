//! The handle of a pool's manager thread, which every caller of `join` and `terminate`
//! shares.

use std::sync::{Condvar, Mutex, MutexGuard};
use std::thread::JoinHandle;

use crate::error::PoolError;
use crate::locking::{lock, wait};
use crate::protocol;

/// The manager thread's handle, joined once; every caller of `join`/`terminate` waits until
/// it has ended, not only the one that joins it.
#[derive(Debug)]
pub(super) struct ManagerThread {
    state: Mutex<ManagerState>,
    ended: Condvar,
}

#[derive(Debug)]
struct ManagerState {
    handle: Option<JoinHandle<()>>,
    /// `Some` once the thread has been joined: how it ended.
    outcome: Option<Result<(), String>>,
}

impl ManagerThread {
    pub(super) fn new(handle: JoinHandle<()>) -> ManagerThread {
        ManagerThread {
            state: Mutex::new(ManagerState {
                handle: Some(handle),
                outcome: None,
            }),
            ended: Condvar::new(),
        }
    }

    fn lock(&self) -> MutexGuard<'_, ManagerState> {
        lock(&self.state)
    }

    pub(super) fn join(&self) -> Result<(), PoolError> {
        let mut state = self.lock();
        loop {
            if let Some(outcome) = &state.outcome {
                return outcome
                    .clone()
                    .map_err(|message| PoolError::ManagerPanicked { message });
            }
            if let Some(handle) = state.handle.take() {
                drop(state);
                let outcome = handle
                    .join()
                    .map_err(|panic| protocol::panic_message(panic.as_ref()));
                state = self.lock();
                state.outcome = Some(outcome);
                self.ended.notify_all();
                continue;
            }
            // Another thread is joining it: wait for that.
            state = wait(&self.ended, state);
        }
    }
}
