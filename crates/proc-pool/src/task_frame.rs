//! Task frames, and the memory a map's large frames are encoded into.
//!
//! A chunk of large arguments is a frame of MiBs (about 4 at the default chunk size, tens at a
//! caller's: 32 buffers of 1 MiB at chunk size 32). Encoding into new memory costs more than the encoding: the kernel maps and
//! zeroes every page at its first touch, which held the copy to 2.5 GB/s on the development VM
//! against 18 GB/s into memory already faulted in (Dec 2026), and a frame that large is
//! often new memory (glibc gives allocations over its mapping threshold, up to 32 MiB, their
//! own mapping, unmapped on free). So the chunks of one `map`, `map_async` or `imap` call share a [`FrameRecycler`]:
//! a large frame's memory goes back to it when the last holder (the task, or a worker's
//! queue that put it into the pipe by reference) lets go, and the call's next chunk is
//! encoded into it.
//!
//! A blocking `map` also keeps only a window of its large frames alive
//! ([`FrameRecycler::wait_for_room`]): before a chunk is encoded, at most one frame per
//! worker and one more, or less than [`WINDOW_BYTES`] of them, may be alive. That turns the
//! memory over while the map runs, and bounds what a map of large items holds to about the
//! window instead of a second copy of all its arguments. The wait is bounded
//! ([`ROOM_WAIT`]): a frame can outlive its chunk (a worker's queue keeps a frame it put into
//! the pipe until that worker claims a later chunk), and a task may wait for a later item's
//! work; after the bound the chunk is encoded into new memory, so the window costs speed at
//! worst, never progress.
//!
//! Nothing is kept once the call's frames are all gone: the recycler lives as long as its
//! frames and the call do, so an idle pool holds no spare frames.

use std::ops::{Deref, DerefMut};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

use crate::locking;

/// Frames at least this long are recycled and counted in the window (smaller ones are cheap
/// to allocate: malloc reuses their memory).
pub(crate) const LARGE_FRAME: usize = 64 * 1024;
/// A window is full once its count of large frames is alive *and* they hold this many bytes
/// (four chunks at the default size of about 4 MiB), so frames only just over
/// [`LARGE_FRAME`] never hold a map back.
pub(crate) const WINDOW_BYTES: usize = 16 * 1024 * 1024;
/// The longest one wait for room lasts.
pub(crate) const ROOM_WAIT: Duration = Duration::from_millis(100);
/// Spare buffers kept for the call's next frames (more are freed as they come back).
const SPARES: usize = 2;

/// An encoded task, as the manager and the workers' queues share it. Dereferences to its
/// bytes. A large frame made by [`FrameRecycler::frame`] gives its memory back to the
/// recycler when dropped.
#[derive(Debug)]
pub(crate) struct TaskFrame {
    bytes: Vec<u8>,
    recycler: Option<Arc<FrameRecycler>>,
}

impl From<Vec<u8>> for TaskFrame {
    /// A frame of its own memory, recycled nowhere.
    fn from(bytes: Vec<u8>) -> TaskFrame {
        TaskFrame {
            bytes,
            recycler: None,
        }
    }
}

impl Clone for TaskFrame {
    /// A copy (made when a frame a worker's queue still holds must change): new memory,
    /// recycled nowhere and not in any window.
    fn clone(&self) -> TaskFrame {
        TaskFrame::from(self.bytes.clone())
    }
}

impl Deref for TaskFrame {
    type Target = Vec<u8>;

    fn deref(&self) -> &Vec<u8> {
        &self.bytes
    }
}

impl DerefMut for TaskFrame {
    fn deref_mut(&mut self) -> &mut Vec<u8> {
        &mut self.bytes
    }
}

impl Drop for TaskFrame {
    fn drop(&mut self) {
        if let Some(recycler) = self.recycler.take() {
            recycler.give_back(std::mem::take(&mut self.bytes));
        }
    }
}

/// The spare frame memory of one call, and how many of its large frames are alive (see the
/// module docs).
#[derive(Debug, Default)]
pub(crate) struct FrameRecycler {
    state: Mutex<RecyclerState>,
    /// Signalled when a large frame goes away.
    returned: Condvar,
    /// A large frame has been made here. Until then there is nothing to count or reuse, and
    /// a call of small chunks (one item each, say) takes no lock per chunk. Set and read
    /// only by the call's own thread, which makes every frame.
    made_large: AtomicBool,
}

#[derive(Debug, Default)]
struct RecyclerState {
    spares: Vec<Vec<u8>>,
    /// Large frames made here and not yet dropped, and their bytes.
    alive: usize,
    alive_bytes: usize,
}

impl RecyclerState {
    fn has_room(&self, frames: usize) -> bool {
        self.alive < frames || self.alive_bytes < WINDOW_BYTES
    }
}

impl FrameRecycler {
    /// A recycler for one call's frames.
    pub(crate) fn new() -> Arc<FrameRecycler> {
        Arc::default()
    }

    /// Memory for the next frame: a returned frame's, emptied, if one is spare; else a new
    /// vector of `capacity`.
    pub(crate) fn buffer(&self, capacity: usize) -> Vec<u8> {
        if !self.made_large.load(Ordering::Relaxed) {
            return Vec::with_capacity(capacity);
        }
        match locking::lock(&self.state).spares.pop() {
            Some(mut spare) => {
                spare.clear();
                spare
            }
            None => Vec::with_capacity(capacity),
        }
    }

    /// Wraps an encoded frame: a large one is counted alive until dropped, and then its memory
    /// comes back here.
    pub(crate) fn frame(self: &Arc<FrameRecycler>, bytes: Vec<u8>) -> TaskFrame {
        if bytes.len() < LARGE_FRAME {
            return TaskFrame::from(bytes);
        }
        self.made_large.store(true, Ordering::Relaxed);
        let mut state = locking::lock(&self.state);
        state.alive += 1;
        state.alive_bytes += bytes.len();
        drop(state);
        TaskFrame {
            bytes,
            recycler: Some(Arc::clone(self)),
        }
    }

    /// Whether a window of `frames` has room: fewer large frames alive than that, or less
    /// than [`WINDOW_BYTES`] in them.
    pub(crate) fn has_room(&self, frames: usize) -> bool {
        !self.made_large.load(Ordering::Relaxed) || locking::lock(&self.state).has_room(frames)
    }

    /// Waits, at most [`ROOM_WAIT`], until a window of `frames` has room. Returns whether
    /// there is room (false: the wait ran out).
    pub(crate) fn wait_for_room(&self, frames: usize) -> bool {
        let deadline = Instant::now() + ROOM_WAIT;
        let mut state = locking::lock(&self.state);
        loop {
            if state.has_room(frames) {
                return true;
            }
            if Instant::now() >= deadline {
                return false;
            }
            state = locking::wait_until(&self.returned, state, deadline);
        }
    }

    /// A large frame is gone: it leaves the window, and its memory is kept for the next frame
    /// if fewer than [`SPARES`] are.
    fn give_back(&self, bytes: Vec<u8>) {
        let mut state = locking::lock(&self.state);
        state.alive = state.alive.saturating_sub(1);
        state.alive_bytes = state.alive_bytes.saturating_sub(bytes.len());
        let unwanted = if state.spares.len() < SPARES {
            state.spares.push(bytes);
            None
        } else {
            Some(bytes)
        };
        drop(state);
        self.returned.notify_all();
        // Freed (unmapped, for a large frame) outside the lock.
        drop(unwanted);
    }
}

#[cfg(test)]
mod tests;
