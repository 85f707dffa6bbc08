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

/// What [`StreamResults::take`] found.
pub(crate) enum Next {
    /// Items were moved into the consumer's buffer.
    Items,
    /// Every submitted chunk has been handed out.
    Empty,
}

/// The consumer's view of the window, read under one lock.
#[derive(Debug, Clone, Copy)]
pub(crate) struct WindowState {
    /// Chunks whose every item was handed out: the rest are outstanding.
    pub(crate) handed_out: usize,
    /// Encoded bytes of the results that arrived and wait to be handed out.
    pub(crate) held_bytes: usize,
    /// The mean encoded size of a chunk's results so far (`None` before one completed).
    pub(crate) mean_chunk_bytes: Option<usize>,
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

    /// How far the consumer is, and what the results held weigh.
    pub(crate) fn window_state(&self) -> WindowState {
        let state = lock(&self.state);
        WindowState {
            handed_out: state.handed_out,
            held_bytes: state.held_bytes,
            mean_chunk_bytes: (state.total_chunks > 0)
                .then(|| state.total_bytes / state.total_chunks),
        }
    }

    /// Moves every item ready to be handed out into `out` under one lock (ordered: from the
    /// chunk at `cursor` on, moving the cursor past each chunk handed out whole), given how
    /// many chunks were submitted. When none is there yet: with no `waker`, blocks until one
    /// arrives (`Imap` as an `Iterator`), never returning `Pending`; with a `waker`, keeps it
    /// to wake on the next arrival and returns `Pending` (`Imap` as a `Stream`).
    pub(crate) fn take(
        &self,
        cursor: &mut usize,
        submitted: usize,
        waker: Option<&Waker>,
        out: &mut VecDeque<Result<R, TaskError>>,
    ) -> Poll<Next> {
        let mut guard = lock(&self.state);
        loop {
            if let Some(next) = self.take_ready(&mut guard, cursor, submitted, out) {
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

    /// Moves the items there into `out`; `None` to wait for one.
    fn take_ready(
        &self,
        state: &mut StreamState<R>,
        cursor: &mut usize,
        submitted: usize,
        out: &mut VecDeque<Result<R, TaskError>>,
    ) -> Option<Next> {
        let before = out.len();
        if self.ordered {
            while let Some(chunk) = state.chunks.get_mut(cursor) {
                chunk.handed += chunk.items.len();
                out.append(&mut chunk.items);
                if chunk.handed < chunk.len {
                    break;
                }
                let bytes = chunk.bytes;
                state.chunks.remove(cursor);
                state.handed_out += 1;
                state.held_bytes -= bytes;
                *cursor += 1;
            }
        } else {
            // Arrivals come in runs of one chunk: count each run once.
            let mut run: Option<(usize, usize)> = None;
            for (chunk, item) in state.arrived.drain(..) {
                out.push_back(item);
                match &mut run {
                    Some((current, count)) if *current == chunk => *count += 1,
                    _ => {
                        if let Some((done, count)) = run.replace((chunk, 1)) {
                            Self::hand_out(
                                &mut state.chunks,
                                &mut state.handed_out,
                                &mut state.held_bytes,
                                done,
                                count,
                            );
                        }
                    }
                }
            }
            if let Some((done, count)) = run {
                Self::hand_out(
                    &mut state.chunks,
                    &mut state.handed_out,
                    &mut state.held_bytes,
                    done,
                    count,
                );
            }
        }
        if out.len() > before {
            Some(Next::Items)
        } else if state.handed_out >= submitted {
            Some(Next::Empty)
        } else {
            None
        }
    }

    /// Unordered: `count` items of `chunk` were handed out; a chunk handed out whole goes.
    fn hand_out(
        chunks: &mut HashMap<usize, ChunkItems<R>>,
        handed_out: &mut usize,
        held_bytes: &mut usize,
        chunk: usize,
        count: usize,
    ) {
        if let Some(entry) = chunks.get_mut(&chunk) {
            entry.handed += count;
            if entry.handed >= entry.len {
                *held_bytes -= entry.bytes;
                chunks.remove(&chunk);
                *handed_out += 1;
            }
        }
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
