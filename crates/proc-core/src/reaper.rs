//! The background reaper: children whose handles were dropped while they still ran are waited
//! for by fork-sys's reaper thread ([`fork_sys::reap_in_background`]), shared with proc-spawn,
//! so a process using both crates has one reaper and one lock to hold across `fork`.

use std::sync::MutexGuard;

use fork_sys::{ChildHandle, Pid, ReaperLink};

use crate::result_slot::ResultSlot;

/// Hands a child that is still running (or a zombie) to the reaper thread. `pid` must be an
/// unreaped child of this process that its previous owner will not wait for.
/// `slot`, the child's result slot if it has one, is released once the child is reaped.
pub(crate) fn adopt(pid: Pid, slot: Option<ResultSlot>) {
    let child = ChildHandle::new(pid);
    match slot {
        Some(slot) => fork_sys::reap_in_background_then(child, move || drop(slot)),
        None => fork_sys::reap_in_background(child),
    }
}

/// Held across `fork` by `Process::spawn`, so that no other thread is half-way through
/// handing a child over (holding this lock) at the moment of the fork: the child would
/// inherit it locked.
pub(crate) fn lock() -> MutexGuard<'static, Option<ReaperLink>> {
    fork_sys::reaper_lock()
}
