//! The frames between the pool and a worker, each one proc-core codec frame (a u32 length,
//! then the payload). docs/proc-pool.md draws them.
//!
//! Parent to worker, on the task pipe, a **task frame**: `[magic: u32][seq: u32][task id:
//! u64][entry: u64][function: u64][skip: u32][bound: u64]` (little endian), then the task's
//! arguments as one bincode sequence `[A]` (a chunk; `apply` sends a chunk of one). `seq`
//! numbers the task frames sent to this worker (1, 2, ...), `skip` says how many of the
//! chunk's items to leave out (they ran already, in a worker that died), `bound` names the
//! bound value the function takes first (0: none). `entry` 0 makes a *control* frame, with
//! sequence number 0, whose function word says which: 0 the *shutdown* frame (finish, flush
//! and exit); 1 a *bound value* frame, whose task id word is the value's id, whose bound word
//! is the id of a value the worker may forget (0: none), and whose payload is the value's
//! encoding (sent to a worker once, before the first task that needs it).
//!
//! Worker to parent, through the worker's shared ring (`fork_sys::SharedRing`), a **result
//! frame**: `[magic: u32][seq: u32][task id: u64][first item: u32][count: u32][flags: u8]`,
//! then `count` items back to back: with flag `VALUES`, each the bincode encoding of a value
//! `R`; without, one `ItemOutcome<R>` each. A chunk's results fill one frame, or several
//! (the frame limit, the ring's room, a switch from values to outcomes at the first item that
//! did not return); the last has the `LAST` flag. Flag `FAILED`: the payload is a bincode
//! `String` saying why the whole chunk failed (its arguments did not decode). Flag
//! `SETUP_FAILED`: the worker could not set itself up; the payload is why, and it exits. Flag
//! `INIT_FAILED`: the initializer panicked, the payload is its message, and the worker exits.
//!
//! The magic words and sequence numbers make each side check every header as soon as it
//! arrives: bytes that are not the next frame (a task that read from the worker's task pipe,
//! a corrupted ring) are a protocol violation, found before any length they claim is
//! believed.

use std::any::{Any, TypeId};

use proc_core::codec::{self, CodecError};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use crate::error::TaskError;
use crate::task_fn::TaskFn;

/// Bytes of a task frame's own header, after the codec's length prefix.
pub(crate) const TASK_HEADER_LEN: usize = 44;
/// Bytes of a result frame's own header.
pub(crate) const RESULT_HEADER_LEN: usize = 25;
/// The first word of every task frame's payload.
pub(crate) const TASK_MAGIC: u32 = u32::from_le_bytes(*b"PKT1");
/// The first word of every result frame's payload.
pub(crate) const RESULT_MAGIC: u32 = u32::from_le_bytes(*b"PKR1");
/// Where a task frame's sequence number sits, from the start of the frame (length prefix
/// included): the manager writes it when it gives the frame to a worker.
const TASK_SEQ_AT: usize = codec::HEADER_LEN + 4;
/// Where a task frame's skip count sits, from the start of the frame.
const TASK_SKIP_AT: usize = codec::HEADER_LEN + 32;
/// Where a task frame's bound value id (or a bound value frame's id to forget) sits.
const TASK_BOUND_AT: usize = codec::HEADER_LEN + 36;
/// The function word of a bound value frame (a control frame).
const BOUND_VALUE: u64 = 1;

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
/// What a worker on a stream writes after each frame, and the manager expects and drops:
/// srun forwards a task's output a line at a time, so without it a frame could wait for the
/// next one's newline.
pub(crate) const STREAM_SEPARATOR: u8 = b'\n';

/// From a worker on a stream (no shared memory): it starts the chunk whose task frame had
/// the sequence number in the `first item` field (what the claim word says otherwise).
pub(crate) const CLAIMED: u8 = 32;
/// From a worker on a stream: its initializer returned (the `READY` counter otherwise).
pub(crate) const READY_FLAG: u8 = 64;

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

/// Appends a task frame for `items` to `out` (sequence number and skip count 0: see
/// [`set_task_seq`], [`set_task_skip`]); on error `out` is unchanged.
pub(crate) fn encode_task<A: Serialize>(
    out: &mut Vec<u8>,
    header: TaskHeader,
    bound: u64,
    items: &[A],
    max_len: usize,
) -> Result<(), CodecError> {
    let frame = codec::begin_frame(out);
    write_task_header(out, header, 0);
    out.extend_from_slice(&bound.to_le_bytes());
    // Item by item, so byte vectors take the codec's short road (the bytes are those of
    // the slice as one value).
    if let Err(err) = codec::encode_sequence(items, out) {
        out.truncate(out.len() - TASK_HEADER_LEN - codec::HEADER_LEN);
        return Err(err);
    }
    codec::finish_frame(out, frame, max_len)
}

fn write_task_header(out: &mut Vec<u8>, header: TaskHeader, skip: u32) {
    let (entry, function) = header.function.to_wire();
    out.extend_from_slice(&TASK_MAGIC.to_le_bytes());
    out.extend_from_slice(&0u32.to_le_bytes());
    out.extend_from_slice(&header.id.to_le_bytes());
    out.extend_from_slice(&entry.to_le_bytes());
    out.extend_from_slice(&function.to_le_bytes());
    out.extend_from_slice(&skip.to_le_bytes());
}

/// Appends the shutdown frame (a control frame: sequence number 0).
pub(crate) fn encode_shutdown(out: &mut Vec<u8>) {
    out.extend_from_slice(&(TASK_HEADER_LEN as u32).to_le_bytes());
    out.extend_from_slice(&TASK_MAGIC.to_le_bytes());
    out.extend_from_slice(&[0; TASK_HEADER_LEN - 4]);
}

/// Appends a bound value frame for value `id`, whose encoding is `value` (see
/// [`set_bound_forget`] for the id the worker may forget).
pub(crate) fn encode_bound_value<C: Serialize + ?Sized>(
    out: &mut Vec<u8>,
    id: u64,
    value: &C,
    max_len: usize,
) -> Result<(), CodecError> {
    let frame = codec::begin_frame(out);
    out.extend_from_slice(&TASK_MAGIC.to_le_bytes());
    out.extend_from_slice(&0u32.to_le_bytes());
    out.extend_from_slice(&id.to_le_bytes());
    out.extend_from_slice(&0u64.to_le_bytes());
    out.extend_from_slice(&BOUND_VALUE.to_le_bytes());
    out.extend_from_slice(&0u32.to_le_bytes());
    out.extend_from_slice(&0u64.to_le_bytes());
    if let Err(err) = codec::encode_value(value, out) {
        out.truncate(out.len() - TASK_HEADER_LEN - codec::HEADER_LEN);
        return Err(err);
    }
    codec::finish_frame(out, frame, max_len)
}

/// Writes, into the bound value frame at the start of `frame`, the id of a value the worker
/// may forget.
pub(crate) fn set_bound_forget(frame: &mut [u8], forget: u64) {
    if let Some(word) = frame.get_mut(TASK_BOUND_AT..TASK_BOUND_AT + 8) {
        word.copy_from_slice(&forget.to_le_bytes());
    }
}

/// Writes the sequence number of the task frame at the start of `frame`.
pub(crate) fn set_task_seq(frame: &mut [u8], seq: u32) {
    if let Some(word) = frame.get_mut(TASK_SEQ_AT..TASK_SEQ_AT + 4) {
        word.copy_from_slice(&seq.to_le_bytes());
    }
}

/// Writes the skip count of the task frame at the start of `frame`.
pub(crate) fn set_task_skip(frame: &mut [u8], skip: u32) {
    if let Some(word) = frame.get_mut(TASK_SKIP_AT..TASK_SKIP_AT + 4) {
        word.copy_from_slice(&skip.to_le_bytes());
    }
}

/// What a task frame asks for.
#[derive(Debug)]
pub(crate) enum TaskRequest<'a> {
    Run {
        header: TaskHeader,
        skip: u32,
        /// The bound value the function takes first; 0 for none.
        bound: u64,
        args: &'a [u8],
    },
    /// A bound value for later tasks, and one the worker may forget (0: none).
    BoundValue {
        id: u64,
        forget: u64,
        value: &'a [u8],
    },
    Shutdown,
}

/// Why bytes are not the frame expected next.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Violation(pub(crate) String);

impl std::fmt::Display for Violation {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// Checks the start of a frame that may not have arrived whole (`frame` starts with the
/// codec's length prefix): its magic word and sequence number, as soon as they are there.
pub(crate) fn check_frame_start(
    frame: &[u8],
    magic: u32,
    expected_seq: u32,
    what: &str,
) -> Result<(), Violation> {
    let at = codec::HEADER_LEN;
    if let Some(word) = frame.get(at..at + 4) {
        let found = u32::from_le_bytes([word[0], word[1], word[2], word[3]]);
        if found != magic {
            return Err(Violation(format!(
                "expected a {what} frame, found bytes {:02x?}",
                &frame[..frame.len().min(12)]
            )));
        }
    }
    if let Some(word) = frame.get(at + 4..at + 8) {
        let seq = u32::from_le_bytes([word[0], word[1], word[2], word[3]]);
        // The shutdown frame goes out with sequence number 0.
        if seq != expected_seq && !(what == "task" && seq == 0) {
            return Err(Violation(format!(
                "{what} frame {seq} arrived where frame {expected_seq} was due"
            )));
        }
    }
    Ok(())
}

/// Splits a task frame's payload; `None` if it is too short to be one.
pub(crate) fn parse_task(payload: &[u8]) -> Option<TaskRequest<'_>> {
    let (head, args) = payload.split_at_checked(TASK_HEADER_LEN)?;
    let word = |i: usize| head[i..i + 8].try_into().map(u64::from_le_bytes);
    let half = |i: usize| head[i..i + 4].try_into().map(u32::from_le_bytes);
    let (id, entry, function) = (word(8).ok()?, word(16).ok()?, word(24).ok()?);
    let bound = word(36).ok()?;
    if entry == 0 {
        return Some(match function {
            BOUND_VALUE => TaskRequest::BoundValue {
                id,
                forget: bound,
                value: args,
            },
            _ => TaskRequest::Shutdown,
        });
    }
    Some(TaskRequest::Run {
        header: TaskHeader {
            id,
            function: TaskFn::from_wire(entry, function),
        },
        skip: half(32).ok()?,
        bound,
        args,
    })
}

/// A result frame's header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct ResultHeader {
    pub(crate) seq: u32,
    pub(crate) id: u64,
    pub(crate) first_item: u32,
    pub(crate) count: u32,
    pub(crate) flags: u8,
}

impl ResultHeader {
    /// Appends the header (after the codec's length prefix, which the caller writes).
    pub(crate) fn write(&self, out: &mut Vec<u8>) {
        let mut header = [0u8; RESULT_HEADER_LEN];
        self.write_to(&mut header);
        out.extend_from_slice(&header);
    }

    /// Writes the header into `out`, `RESULT_HEADER_LEN` bytes.
    pub(crate) fn write_to(&self, out: &mut [u8]) {
        out[..4].copy_from_slice(&RESULT_MAGIC.to_le_bytes());
        out[4..8].copy_from_slice(&self.seq.to_le_bytes());
        out[8..16].copy_from_slice(&self.id.to_le_bytes());
        out[16..20].copy_from_slice(&self.first_item.to_le_bytes());
        out[20..24].copy_from_slice(&self.count.to_le_bytes());
        out[24] = self.flags;
    }
}

/// Splits a result frame's payload (the magic word checked); `None` if it is not one.
pub(crate) fn parse_result(payload: &[u8]) -> Option<(ResultHeader, &[u8])> {
    let (head, items) = payload.split_at_checked(RESULT_HEADER_LEN)?;
    let half = |i: usize| head[i..i + 4].try_into().map(u32::from_le_bytes);
    if half(0).ok()? != RESULT_MAGIC {
        return None;
    }
    Some((
        ResultHeader {
            seq: half(4).ok()?,
            id: u64::from_le_bytes(head[8..16].try_into().ok()?),
            first_item: half(16).ok()?,
            count: half(20).ok()?,
            flags: head[24],
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
    /// Values back to back (flag `VALUES`), rather than one outcome per item.
    pub(crate) values_only: bool,
    /// How many items the bytes hold.
    pub(crate) count: usize,
}

/// Decodes `count` values back to back: `Vec<u8>` values with one copy each (the worker wrote
/// them as their length and bytes), any other type with `codec::decode_sequence`.
fn decode_values<R: DeserializeOwned + 'static>(
    bytes: &[u8],
    count: usize,
) -> Result<(Vec<R>, usize), CodecError> {
    if TypeId::of::<R>() != TypeId::of::<Vec<u8>>() {
        return codec::decode_sequence::<R>(bytes, count);
    }
    let (vectors, used) = codec::decode_byte_vectors(bytes, count)?;
    // `R` is `Vec<u8>`: the downcast cannot fail.
    let mut slot = Some(vectors);
    (&mut slot as &mut dyn Any)
        .downcast_mut::<Option<Vec<R>>>()
        .and_then(Option::take)
        .map(|values| (values, used))
        .ok_or(CodecError::Decode {
            type_name: std::any::type_name::<R>(),
            len: bytes.len(),
            message: "byte vectors are not the type expected".into(),
        })
}

/// Decodes the items of a result frame: the values, in order, onto `values`, until the first
/// item that failed, which goes to `error` (and ends the decoding).
pub(crate) fn decode_items_into<R: DeserializeOwned + 'static>(
    items: EncodedItems<'_>,
    origin: Origin,
    values: &mut Vec<R>,
    error: &mut Option<TaskError>,
) {
    if items.values_only {
        let decoded = if TypeId::of::<R>() == TypeId::of::<Vec<u8>>() {
            decode_values::<R>(items.bytes, items.count)
                .map(|(mut decoded, _)| values.append(&mut decoded))
        } else {
            // Straight onto `values`, with no vector in between.
            codec::decode_sequence_onto::<R>(items.bytes, items.count, values).map(drop)
        };
        if let Err(err) = decoded {
            *error = Some(TaskError::codec(Some(origin.task), err));
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
pub(crate) fn decode_items<R: DeserializeOwned + 'static>(
    items: EncodedItems<'_>,
    origin: Origin,
    mut put: impl FnMut(Result<R, TaskError>),
) -> usize {
    if items.values_only {
        return match decode_values::<R>(items.bytes, items.count) {
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
