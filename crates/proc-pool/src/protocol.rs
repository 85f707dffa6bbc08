//! The frames between the pool and a worker, each one proc-core codec frame (a u32 length,
//! then the payload). docs/proc-pool.md draws them.
//!
//! Parent to worker, a **task frame**: `[task id: u64][entry: u64][function: u64]` (little
//! endian), then the task's arguments as one bincode sequence `[A]` (a chunk; `apply` sends a
//! chunk of one). `entry` 0 is the *shutdown* frame: finish, flush and exit.
//!
//! Worker to parent, a **result frame**: `[task id: u64][first item: u32][flags: u8]`, then
//! one bincode `ItemOutcome<R>` per item, back to back. A chunk's results fill one frame, or
//! several when they would exceed the frame limit (each part says where it starts); the last
//! part has the `LAST` flag. Flag `VALUES`: the fast path of a chunk whose every item returned
//! and whose values fit in one frame: the payload is one bincode sequence `[R]` instead of
//! per-item outcomes (one encode and one decode call for the whole chunk). Flag `FAILED`: the
//! payload is a bincode `String` saying why the whole chunk failed (its arguments did not
//! decode). Flag `SETUP_FAILED`: the worker could not start its result thread; the payload is
//! why, and the worker exits. Flag `INIT_FAILED`: the initializer panicked, the payload is its message, and the
//! worker exits.

use std::any::Any;

use proc_core::codec::{self, CodecError, FrameStart};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use crate::error::TaskError;
use crate::task_fn::TaskFn;

/// Bytes of a task frame's own header, after the codec's length prefix.
pub(crate) const TASK_HEADER_LEN: usize = 24;
/// Bytes of a result frame's own header.
pub(crate) const RESULT_HEADER_LEN: usize = 13;

/// The last part of a chunk's results.
pub(crate) const LAST: u8 = 1;
/// The chunk failed as a whole; the payload is the reason.
pub(crate) const FAILED: u8 = 2;
/// The worker's initializer panicked; the payload is the message.
pub(crate) const INIT_FAILED: u8 = 4;
/// Every item returned: the payload is the values as one sequence.
pub(crate) const VALUES: u8 = 8;
/// The worker could not set itself up (its result thread did not start); the payload is
/// the OS's reason, and the worker exits.
pub(crate) const SETUP_FAILED: u8 = 16;

/// How one item of a chunk ended, as the worker reports it. `T` is `&R` when encoding.
#[derive(Debug, Serialize, Deserialize)]
pub(crate) enum ItemOutcome<T> {
    /// The function returned this.
    Returned(T),
    /// The function panicked with this message.
    Panicked(String),
    /// The value's `Serialize` impl failed (or panicked).
    EncodeFailed(String),
    /// The encoded value was over the frame limit.
    TooLarge { len: u64, limit: u64 },
}

/// A task frame's header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct TaskHeader {
    pub(crate) id: u64,
    pub(crate) function: TaskFn,
}

/// Appends a task frame for `items` to `out`; on error `out` is unchanged.
pub(crate) fn encode_task<A: Serialize>(
    out: &mut Vec<u8>,
    header: TaskHeader,
    items: &[A],
    max_len: usize,
) -> Result<(), CodecError> {
    let frame = codec::begin_frame(out);
    let (entry, function) = header.function.to_wire();
    out.extend_from_slice(&header.id.to_le_bytes());
    out.extend_from_slice(&entry.to_le_bytes());
    out.extend_from_slice(&function.to_le_bytes());
    if let Err(err) = codec::encode_value(items, out) {
        out.truncate(out.len() - TASK_HEADER_LEN - codec::HEADER_LEN);
        return Err(err);
    }
    codec::finish_frame(out, frame, max_len)
}

/// Appends the shutdown frame.
pub(crate) fn encode_shutdown(out: &mut Vec<u8>) {
    out.extend_from_slice(&(TASK_HEADER_LEN as u32).to_le_bytes());
    out.extend_from_slice(&[0; TASK_HEADER_LEN]);
}

/// What a task frame asks for.
#[derive(Debug)]
pub(crate) enum TaskRequest<'a> {
    Run { header: TaskHeader, args: &'a [u8] },
    Shutdown,
}

/// Splits a task frame's payload; `None` if it is too short to be one.
pub(crate) fn parse_task(payload: &[u8]) -> Option<TaskRequest<'_>> {
    let (head, args) = payload.split_at_checked(TASK_HEADER_LEN)?;
    let word = |i: usize| head[i * 8..i * 8 + 8].try_into().map(u64::from_le_bytes);
    let (id, entry, function) = (word(0).ok()?, word(1).ok()?, word(2).ok()?);
    if entry == 0 {
        return Some(TaskRequest::Shutdown);
    }
    Some(TaskRequest::Run {
        header: TaskHeader {
            id,
            function: TaskFn::from_wire(entry, function),
        },
        args,
    })
}

/// A result frame's header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct ResultHeader {
    pub(crate) id: u64,
    pub(crate) first_item: u32,
    pub(crate) flags: u8,
}

/// Splits a result frame's payload; `None` if it is too short to be one.
pub(crate) fn parse_result(payload: &[u8]) -> Option<(ResultHeader, &[u8])> {
    let (head, items) = payload.split_at_checked(RESULT_HEADER_LEN)?;
    let id = u64::from_le_bytes(head[..8].try_into().ok()?);
    let first_item = u32::from_le_bytes(head[8..12].try_into().ok()?);
    Some((
        ResultHeader {
            id,
            first_item,
            flags: head[12],
        },
        items,
    ))
}

/// Where a chunk's results came from, for the errors they carry.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Origin {
    pub(crate) task: u64,
    pub(crate) pid: fork_sys::Pid,
}

/// The items of a result frame, as the worker encoded them.
#[derive(Debug, Clone, Copy)]
pub(crate) struct EncodedItems<'a> {
    pub(crate) bytes: &'a [u8],
    /// One sequence of values (flag `VALUES`), rather than one outcome per item.
    pub(crate) values_only: bool,
}

/// Decodes the items of a result frame: the values, in order, onto `values`, until the first
/// item that failed, which goes to `error` (and ends the decoding).
pub(crate) fn decode_items_into<R: DeserializeOwned>(
    items: EncodedItems<'_>,
    origin: Origin,
    values: &mut Vec<R>,
    error: &mut Option<TaskError>,
) {
    if items.values_only {
        match codec::decode_value::<Vec<R>>(items.bytes) {
            Ok((decoded, _)) if values.is_empty() => *values = decoded,
            Ok((mut decoded, _)) => values.append(&mut decoded),
            Err(err) => *error = Some(TaskError::codec(Some(origin.task), err)),
        }
        return;
    }
    decode_items::<R>(items, origin, |item| match item {
        Ok(value) if error.is_none() => values.push(value),
        Ok(_) => {}
        Err(err) => {
            error.get_or_insert(err);
        }
    });
}

/// Decodes the items of a result frame in order, handing each to `put`; returns how many.
/// Stops at the first item that does not decode, reporting it as a `Codec` error.
pub(crate) fn decode_items<R: DeserializeOwned>(
    items: EncodedItems<'_>,
    origin: Origin,
    mut put: impl FnMut(Result<R, TaskError>),
) -> usize {
    if items.values_only {
        return match codec::decode_value::<Vec<R>>(items.bytes) {
            Ok((values, _)) => {
                let count = values.len();
                values.into_iter().for_each(|value| put(Ok(value)));
                count
            }
            Err(err) => {
                put(Err(TaskError::codec(Some(origin.task), err)));
                1
            }
        };
    }
    let mut bytes = items.bytes;
    let mut count = 0;
    while !bytes.is_empty() {
        count += 1;
        let (outcome, used) = match codec::decode_value::<ItemOutcome<R>>(bytes) {
            Ok(decoded) => decoded,
            Err(err) => {
                put(Err(TaskError::codec(Some(origin.task), err)));
                return count;
            }
        };
        bytes = &bytes[used..];
        put(match outcome {
            ItemOutcome::Returned(value) => Ok(value),
            ItemOutcome::Panicked(message) => Err(TaskError::Panicked {
                task: origin.task,
                pid: origin.pid,
                message,
            }),
            ItemOutcome::EncodeFailed(message) => Err(TaskError::codec(
                Some(origin.task),
                CodecError::Encode {
                    type_name: std::any::type_name::<R>(),
                    message,
                },
            )),
            ItemOutcome::TooLarge { len, limit } => Err(TaskError::ResultTooLarge {
                task: origin.task,
                pid: origin.pid,
                len,
                limit,
            }),
        });
    }
    count
}

/// The worker's side: builds result frames for the chunk in progress into an output buffer,
/// starting a new part whenever the next item would push a frame over the limit.
#[derive(Debug)]
pub(crate) struct ResultWriter {
    out: Vec<u8>,
    max_len: usize,
    /// The chunk's task id, its next item's index, and the part being filled.
    part: Option<Part>,
}

#[derive(Debug, Clone, Copy)]
struct Part {
    id: u64,
    next_item: u32,
    frame: FrameStart,
    /// Index in `out` of the part's flags byte.
    flags_at: usize,
}

impl ResultWriter {
    pub(crate) fn new(max_len: usize) -> ResultWriter {
        ResultWriter {
            out: Vec::new(),
            max_len,
            part: None,
        }
    }

    /// Encoded frames not yet written out.
    pub(crate) fn pending(&self) -> &[u8] {
        &self.out
    }

    /// Exchanges the pending bytes with `other` (which must be empty).
    pub(crate) fn swap_pending(&mut self, other: &mut Vec<u8>) {
        debug_assert!(self.part.is_none() && other.is_empty());
        std::mem::swap(&mut self.out, other);
    }

    /// After the pending bytes were written.
    pub(crate) fn clear(&mut self) {
        debug_assert!(self.part.is_none(), "cleared in the middle of a chunk");
        self.out.clear();
    }

    /// Starts the results of chunk `id`.
    pub(crate) fn begin(&mut self, id: u64) {
        self.start_part(id, 0);
    }

    fn start_part(&mut self, id: u64, first_item: u32) {
        let frame = codec::begin_frame(&mut self.out);
        self.out.extend_from_slice(&id.to_le_bytes());
        self.out.extend_from_slice(&first_item.to_le_bytes());
        let flags_at = self.out.len();
        self.out.push(0);
        self.part = Some(Part {
            id,
            next_item: first_item,
            frame,
            flags_at,
        });
    }

    /// The fast path for a chunk whose every item returned: all values as one sequence in
    /// one frame. Returns false, writing nothing, when that frame would be over the limit or
    /// a value does not encode; the caller then adds the items one by one.
    pub(crate) fn push_values<R: Serialize>(&mut self, values: &[R]) -> bool {
        let Some(part) = self.part else {
            return false;
        };
        if part.next_item != 0 || part.frame.payload_len(&self.out) != RESULT_HEADER_LEN {
            return false;
        }
        let before = self.out.len();
        let out = &mut self.out;
        let encoded = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            codec::encode_value(values, out)
        }));
        if !matches!(encoded, Ok(Ok(()))) || part.frame.payload_len(&self.out) > self.max_len {
            self.out.truncate(before);
            return false;
        }
        self.part = None;
        self.finish_part(part, LAST | VALUES);
        true
    }

    /// Adds the outcome of the next item: the value (or the panic that replaced it).
    pub(crate) fn push_item<R: Serialize>(&mut self, outcome: Result<R, Box<dyn Any + Send>>) {
        let Some(part) = self.part else {
            debug_assert!(false, "push_item outside a chunk");
            return;
        };
        let before = self.out.len();
        let encoded = match &outcome {
            Ok(value) => {
                // A `Serialize` impl may panic; that is the item's failure, not the worker's.
                let out = &mut self.out;
                match std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                    codec::encode_value(&ItemOutcome::Returned(value), out)
                })) {
                    Ok(Ok(())) => Ok(()),
                    Ok(Err(err)) => Err(err.to_string()),
                    Err(panic) => Err(format!(
                        "Serialize panicked: {}",
                        panic_message(panic.as_ref())
                    )),
                }
            }
            Err(panic) => self.encode_failure(ItemOutcome::Panicked(panic_message(panic.as_ref()))),
        };
        // Dropping the value or the panic payload may panic too; contain it.
        let _ = std::panic::catch_unwind(std::panic::AssertUnwindSafe(move || drop(outcome)));
        if let Err(message) = encoded {
            self.out.truncate(before);
            let _ = self.encode_failure(ItemOutcome::EncodeFailed(message));
        }
        let item_len = self.out.len() - before;
        let room = self.max_len.saturating_sub(RESULT_HEADER_LEN);
        if item_len > room {
            self.out.truncate(before);
            // The size of the frame it would need, to compare with the frame limit.
            let _ = self.encode_failure(ItemOutcome::TooLarge {
                len: (item_len + RESULT_HEADER_LEN) as u64,
                limit: self.max_len as u64,
            });
        }
        if part.frame.payload_len(&self.out) > self.max_len {
            // The item fits alone but not after the ones before it: close this part and
            // carry the item over to a new one.
            let item = self.out.split_off(before);
            self.finish_part(part, 0);
            self.start_part(part.id, part.next_item);
            self.out.extend_from_slice(&item);
        }
        if let Some(part) = self.part.as_mut() {
            part.next_item += 1;
        }
    }

    fn encode_failure(&mut self, outcome: ItemOutcome<()>) -> Result<(), String> {
        codec::encode_value(&outcome, &mut self.out).map_err(|err| err.to_string())
    }

    /// Ends the chunk: its last part gets the `LAST` flag.
    pub(crate) fn finish(&mut self) {
        if let Some(part) = self.part.take() {
            self.finish_part(part, LAST);
        }
    }

    /// Replaces whatever the chunk has produced so far in this part with a `FAILED` frame.
    pub(crate) fn fail_chunk(&mut self, message: &str) {
        if let Some(part) = self.part.take() {
            self.out.truncate(part.flags_at + 1);
            let _ = codec::encode_value(message, &mut self.out);
            self.finish_part(part, LAST | FAILED);
        }
    }

    /// The frame a worker sends when its initializer panicked (the message cut to fit).
    pub(crate) fn initializer_failed(&mut self, message: &str) {
        self.worker_failed(message, INIT_FAILED);
    }

    /// The frame a worker sends when it could not set itself up.
    pub(crate) fn setup_failed(&mut self, message: &str) {
        self.worker_failed(message, SETUP_FAILED);
    }

    fn worker_failed(&mut self, message: &str, flag: u8) {
        let room = self.max_len.saturating_sub(RESULT_HEADER_LEN + 16);
        let mut end = message.len().min(room);
        while !message.is_char_boundary(end) {
            end -= 1;
        }
        let message = &message[..end];
        self.start_part(0, 0);
        if let Some(part) = self.part.take() {
            let _ = codec::encode_value(message, &mut self.out);
            self.finish_part(part, LAST | flag);
        }
    }

    fn finish_part(&mut self, part: Part, flags: u8) {
        self.out[part.flags_at] = flags;
        self.part = None;
        // Items were checked against the limit as they came, so this cannot refuse; if it
        // somehow did, the frame is dropped and the parent reports the chunk as unanswered.
        let _ = codec::finish_frame(&mut self.out, part.frame, self.max_len);
    }
}

/// The text of a panic payload.
pub(crate) fn panic_message(payload: &(dyn Any + Send)) -> String {
    if let Some(text) = payload.downcast_ref::<&str>() {
        (*text).to_string()
    } else if let Some(text) = payload.downcast_ref::<String>() {
        text.clone()
    } else {
        "a panic with a non-string payload".to_string()
    }
}
