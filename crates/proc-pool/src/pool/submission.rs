//! Encoding tasks and handing them to the manager: the part of [`Pool`] every way of
//! submitting shares. A call's chunks are encoded into the memory of its earlier large frames
//! (`task_frame`), and a blocking `map` keeps a window of them alive while it submits.

use std::sync::Arc;

use proc_core::StartMethod;
use proc_core::codec;
use serde::Serialize;

use super::Pool;
use crate::bound::TaskCall;
use crate::error::TaskError;
use crate::manager::Task;
use crate::protocol::{self, TaskHeader};
use crate::results::Reply;
use crate::task_frame::{FrameRecycler, TaskFrame};

/// The capacity a task frame starts with: its headers and a few small arguments.
const FRAME_ROOM: usize = codec::HEADER_LEN + protocol::TASK_HEADER_LEN + 20;

/// How many encoded bytes `map` gathers before handing them to the pool.
const SUBMIT_BYTES: usize = 64 * 1024;

/// How many large frames a blocking `map` keeps alive while it submits (see `task_frame`),
/// and what its thread does before it waits for room and after.
pub(super) struct Window<'a> {
    pub(super) frames: usize,
    pub(super) meanwhile: &'a dyn Fn(),
}

impl Pool {
    /// Encodes `items` in chunks of `chunksize` and submits them, chunk `i` answering through
    /// `reply(i)`. Chunks go out as they are encoded, in batches of about SUBMIT_BYTES, so the
    /// workers start on the first while the rest are being encoded. Large frames are encoded
    /// into the memory of the call's earlier ones; with a `window` (a frame count), no more
    /// large frames than that are alive at once, as long as the wait for room does not run
    /// out (see `task_frame`). On an error, the chunks not submitted fail through their
    /// replies; those submitted run.
    pub(super) fn submit_chunks<T: Serialize>(
        &self,
        call: &TaskCall,
        items: &[T],
        chunksize: usize,
        window: Option<Window<'_>>,
        reply: impl Fn(usize) -> Reply,
    ) -> Result<(), TaskError> {
        let recycler = FrameRecycler::new();
        let mut batch = Vec::new();
        let mut batch_bytes = 0;
        let chunks = items.len().div_ceil(chunksize);
        for (chunk, slice) in items.chunks(chunksize).enumerate() {
            if let Some(window) = &window {
                (window.meanwhile)();
                if !recycler.has_room(window.frames) {
                    // What the window waits for must be on its way first.
                    if !batch.is_empty() {
                        batch_bytes = 0;
                        self.submit(std::mem::take(&mut batch))?;
                    }
                    recycler.wait_for_room(window.frames);
                    (window.meanwhile)();
                }
            }
            let id = self.shared.next_task_id();
            let frame = self.encode(call, id, slice, Some(&recycler))?;
            batch_bytes += frame.len();
            let task = Task::new(id, frame, reply(chunk), slice.len());
            batch.push(task.with_bound(call.bound.clone()));
            if batch_bytes >= SUBMIT_BYTES || chunk + 1 == chunks {
                batch_bytes = 0;
                self.submit(std::mem::take(&mut batch))?;
            }
        }
        Ok(())
    }

    pub(crate) fn encode<A: Serialize>(
        &self,
        call: &TaskCall,
        id: u64,
        items: &[A],
        recycler: Option<&Arc<FrameRecycler>>,
    ) -> Result<TaskFrame, TaskError> {
        let function = call.function;
        if self.start_method != StartMethod::Fork {
            function.check_nameable()?;
        }
        // Room for the headers and a small chunk: most frames need no reallocation.
        let mut frame = match recycler {
            Some(recycler) => recycler.buffer(FRAME_ROOM),
            None => Vec::with_capacity(FRAME_ROOM),
        };
        protocol::encode_task(
            &mut frame,
            TaskHeader { id, function },
            call.bound_id(),
            items,
            self.max_frame_len,
        )
        .map_err(|err| TaskError::codec(None, err))?;
        Ok(match recycler {
            Some(recycler) => recycler.frame(frame),
            None => TaskFrame::from(frame),
        })
    }

    /// Queues tasks; if refused, they fail with the reason, which is returned.
    pub(crate) fn submit(&self, tasks: Vec<Task>) -> Result<(), TaskError> {
        self.shared.submit(tasks).map_err(|(reason, tasks)| {
            for mut task in tasks {
                task.reply.fail(reason.clone());
            }
            reason
        })
    }
}
