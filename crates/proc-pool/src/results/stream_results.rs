//! The sink of one `imap` or `imap_unordered`: items handed out as their chunks arrive,
//! to an iterator or a stream.

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::task::{Poll, Waker};

use serde::de::DeserializeOwned;

use crate::error::TaskError;
use crate::locking::{lock, wait};
use crate::protocol::{self, EncodedItems, Origin};
use crate::waiter::Waiter;

use super::{ReplySink, missing_item};

/// The sink of one `imap` (ordered: items come out per chunk, in chunk order) or
/// `imap_unordered` (items come out as they arrive).
pub(crate) struct StreamResults<R> {
    state: Mutex<StreamState<R>>,
    changed: Condvar,
    cancelled: AtomicBool,
    ordered: bool,
}

struct StreamState<R> {
    /// Chunks submitted and not yet handed out whole.
    chunks: HashMap<usize, ChunkItems<R>>,
    /// Unordered: items that arrived and were not handed out yet, with their chunk.
    arrived: VecDeque<(usize, Result<R, TaskError>)>,
    /// Chunks whose every item was handed out.
    handed_out: usize,
    /// Encoded bytes of the results held here (arrived, chunk not yet handed out whole).
    held_bytes: usize,
    /// Encoded bytes of every result that arrived, and how many chunks they completed.
    total_bytes: usize,
    total_chunks: usize,
    /// The task polling the `Imap` as a stream, if it found nothing at its last poll.
    waiter: Waiter,
}

struct ChunkItems<R> {
    len: usize,
    /// Items arrived (or failed).
    delivered: usize,
    /// Items handed out.
    handed: usize,
    /// Ordered: items arrived and not yet handed out.
    items: VecDeque<Result<R, TaskError>>,
    /// Encoded bytes of its results that arrived.
    bytes: usize,
}

/// What [`StreamResults::next`] found.
pub(crate) enum Next<R> {
    Item(Result<R, TaskError>),
    /// Ordered: the chunk at the cursor was handed out whole; move the cursor on.
    ChunkDone,
    /// Every submitted chunk has been handed out.
    Empty,
}

impl<R> StreamResults<R> {
    /// Nobody wants the results any more (the `Imap` was dropped): queued tasks may be
    /// dropped unsent, and no task is to be woken.
    pub(crate) fn cancel(&self) {
        self.cancelled.store(true, Ordering::Relaxed);
        lock(&self.state).waiter.clear();
    }
}

impl<R: DeserializeOwned + Send> StreamResults<R> {
    pub(crate) fn new(ordered: bool) -> Arc<StreamResults<R>> {
        Arc::new(StreamResults {
            state: Mutex::new(StreamState {
                chunks: HashMap::new(),
                arrived: VecDeque::new(),
                handed_out: 0,
                held_bytes: 0,
                total_bytes: 0,
                total_chunks: 0,
                waiter: Waiter::default(),
            }),
            changed: Condvar::new(),
            cancelled: AtomicBool::new(false),
            ordered,
        })
    }

    /// Called before chunk `chunk` of `len` items is submitted.
    pub(crate) fn expect(&self, chunk: usize, len: usize) {
        lock(&self.state).chunks.insert(
            chunk,
            ChunkItems {
                len,
                delivered: 0,
                handed: 0,
                items: VecDeque::new(),
                bytes: 0,
            },
        );
    }

    /// Encoded bytes of the results that arrived and wait to be handed out, and the mean
    /// encoded size of a chunk's results so far (`None` before the first chunk completed).
    pub(crate) fn held_bytes(&self) -> (usize, Option<usize>) {
        let state = lock(&self.state);
        let mean = (state.total_chunks > 0).then(|| state.total_bytes / state.total_chunks);
        (state.held_bytes, mean)
    }

    /// Chunks whose every item was handed out: the rest are outstanding.
    pub(crate) fn handed_out_chunks(&self) -> usize {
        lock(&self.state).handed_out
    }

    /// The next item, given the ordered cursor and how many chunks were submitted. When none
    /// is there yet: with no `waker`, blocks until one arrives (`Imap` as an `Iterator`),
    /// never returning `Pending`; with a `waker`, keeps it to wake on the next arrival and
    /// returns `Pending` (`Imap` as a `Stream`). Both read the state through
    /// [`take_next`](StreamResults::take_next).
    pub(crate) fn next(
        &self,
        cursor: usize,
        submitted: usize,
        waker: Option<&Waker>,
    ) -> Poll<Next<R>> {
        let mut guard = lock(&self.state);
        loop {
            if let Some(next) = self.take_next(&mut guard, cursor, submitted) {
                return Poll::Ready(next);
            }
            match waker {
                // Checked and kept under one lock: an arrival after the check wakes it.
                Some(waker) => {
                    guard.waiter.register(waker);
                    return Poll::Pending;
                }
                None => guard = wait(&self.changed, guard),
            }
        }
    }

    /// The next item if one is there, or `None` to wait for one.
    fn take_next(
        &self,
        state: &mut StreamState<R>,
        cursor: usize,
        submitted: usize,
    ) -> Option<Next<R>> {
        if self.ordered {
            if let Some(chunk) = state.chunks.get_mut(&cursor) {
                if let Some(item) = chunk.items.pop_front() {
                    chunk.handed += 1;
                    return Some(Next::Item(item));
                }
                if chunk.handed == chunk.len {
                    let bytes = chunk.bytes;
                    state.chunks.remove(&cursor);
                    state.handed_out += 1;
                    state.held_bytes -= bytes;
                    return Some(Next::ChunkDone);
                }
            } else if cursor >= submitted {
                return Some(Next::Empty);
            }
        } else {
            if let Some((chunk, item)) = state.arrived.pop_front() {
                if let Some(entry) = state.chunks.get_mut(&chunk) {
                    entry.handed += 1;
                    if entry.handed == entry.len {
                        let bytes = entry.bytes;
                        state.chunks.remove(&chunk);
                        state.handed_out += 1;
                        state.held_bytes -= bytes;
                    }
                }
                return Some(Next::Item(item));
            }
            if state.handed_out >= submitted {
                return Some(Next::Empty);
            }
        }
        None
    }

    /// Adds arrived items of `chunk`, at most the chunk's length in all.
    fn push(&self, state: &mut StreamState<R>, chunk: usize, items: Vec<Result<R, TaskError>>) {
        let Some(entry) = state.chunks.get_mut(&chunk) else {
            return;
        };
        let room = entry.len - entry.delivered;
        for item in items.into_iter().take(room) {
            if self.ordered {
                entry.items.push_back(item);
            } else {
                state.arrived.push_back((chunk, item));
            }
            entry.delivered += 1;
        }
    }

    /// Fails the chunk's items that have not arrived.
    fn finish_chunk(
        &self,
        state: &mut StreamState<R>,
        chunk: usize,
        error: impl Fn(usize) -> TaskError,
    ) {
        let Some(entry) = state.chunks.get(&chunk) else {
            return;
        };
        let missing: Vec<_> = (entry.delivered..entry.len)
            .map(|i| Err(error(i)))
            .collect();
        self.push(state, chunk, missing);
    }
}

impl<R: DeserializeOwned + Send + 'static> ReplySink for StreamResults<R> {
    fn deliver(
        &self,
        chunk: usize,
        _first: usize,
        items: EncodedItems<'_>,
        last: bool,
        origin: Origin,
    ) {
        let mut decoded = Vec::new();
        protocol::decode_items::<R>(items, origin, |item| decoded.push(item));
        let mut state = lock(&self.state);
        if let Some(entry) = state.chunks.get_mut(&chunk) {
            entry.bytes += items.bytes.len();
            state.held_bytes += items.bytes.len();
        }
        state.total_bytes += items.bytes.len();
        state.total_chunks += usize::from(last);
        self.push(&mut state, chunk, decoded);
        if last {
            self.finish_chunk(&mut state, chunk, |index| missing_item(origin.task, index));
        }
        let woken = state.waiter.notify(&self.changed);
        drop(state);
        woken.wake();
    }

    fn fail(&self, chunk: usize, error: TaskError) {
        let mut state = lock(&self.state);
        self.finish_chunk(&mut state, chunk, |_| error.clone());
        let woken = state.waiter.notify(&self.changed);
        drop(state);
        woken.wake();
    }

    fn fail_one(&self, chunk: usize, error: TaskError) {
        let mut state = lock(&self.state);
        self.push(&mut state, chunk, vec![Err(error)]);
        let woken = state.waiter.notify(&self.changed);
        drop(state);
        woken.wake();
    }

    fn is_cancelled(&self) -> bool {
        self.cancelled.load(Ordering::Relaxed)
    }
}
