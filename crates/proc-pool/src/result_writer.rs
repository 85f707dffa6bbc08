//! The worker's side of the results: each item's outcome goes into the worker's shared ring
//! the moment the task returns, before the next item starts, so a worker that dies loses no
//! value a task returned (the parent reads what the ring holds after the death) and the pool
//! never runs such a task again.
//!
//! The items of a *part* (one result frame under construction) are written into the ring
//! past its published head, each as it comes, and the staged length and item count are
//! stored in the counter [`STAGED`] after each one. The part's header is written first with
//! a count of 0 and rewritten when the part is finished; only then is it published (the
//! parent reads published frames whole, as from a pipe). So the parent always finds either
//! whole frames, or whole frames followed by a staged part whose `STAGED` word says how many
//! whole items it holds.
//!
//! A part ends at the chunk's last item, when the next item would take it over the frame
//! limit or past the ring's free room, or when the chunk's first failure switches it from
//! bare values to per-item outcomes. An item too big for the ring at all is sent as a frame
//! of its own, streamed through the ring as the parent reads (not staged: if the worker dies
//! during that copy, that one item's value is lost and it fails; it is never run again).

use std::any::Any;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use fork_sys::SharedRing;
use proc_core::codec;
use serde::Serialize;

use crate::protocol::{
    self, CLAIMED, FAILED, INIT_FAILED, ItemOutcome, LAST, READY_FLAG, RESULT_HEADER_LEN,
    ResultHeader, SETUP_FAILED, VALUES,
};

/// Index in a worker's shared counters: the part staged in the ring past its head, as
/// `items << 32 | bytes` (bytes from the head, length prefix and header included); 0 when
/// nothing is staged.
pub(crate) const STAGED: usize = 3;

/// Bytes of a frame before its items: the codec's length prefix and the result header.
const FRAME_HEAD: usize = codec::HEADER_LEN + RESULT_HEADER_LEN;

/// How long one wait for room in the ring lasts before the worker looks again (the parent
/// reads as it can; a dead parent takes the worker with it).
const ROOM_WAIT: Duration = Duration::from_millis(100);

/// Wakes the parent: the worker's waker thread, or nothing (before it exists).
pub(crate) trait WakeParent {
    /// New results are published; `urgent` when the parent should read now (the worker is
    /// about to wait: for tasks, or for room in the ring).
    fn published(&self, urgent: bool);
}

/// The part being staged.
#[derive(Debug, Clone, Copy)]
struct Part {
    first_item: u32,
    count: u32,
    values: bool,
    /// Bytes staged past the head, frame head included.
    len: usize,
}

/// Counts a value of `used` bytes just encoded into `part` (and the chunk's item it was), and
/// publishes the part's count and length in `staged`, where the parent reads them.
#[inline]
fn record_staged(staged: &AtomicU64, part: &mut Part, next_item: &mut u32, used: usize) {
    part.len += used;
    part.count += 1;
    *next_item += 1;
    staged.store(
        (u64::from(part.count) << 32) | part.len as u64,
        Ordering::Release,
    );
}

/// The chunk whose results are being written.
#[derive(Debug, Clone, Copy)]
struct Chunk {
    id: u64,
    next_item: u32,
    /// Cleared at the chunk's first item that did not return a value that encoded.
    values: bool,
    part: Option<Part>,
}

/// Writes a worker's result frames into its ring.
pub(crate) struct ResultWriter<'a> {
    ring: &'a mut SharedRing,
    /// A worker on a byte stream (through a launcher): every frame goes there whole, one
    /// item per frame, before the next item starts; the ring is not used.
    stream: Option<std::fs::File>,
    staged: &'a AtomicU64,
    wake: &'a dyn WakeParent,
    max_len: usize,
    /// The next result frame's sequence number.
    seq: u32,
    chunk: Option<Chunk>,
    /// One item's encoding, reused.
    scratch: Vec<u8>,
}

impl std::fmt::Debug for ResultWriter<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ResultWriter")
            .field("ring", &self.ring)
            .field("seq", &self.seq)
            .field("chunk", &self.chunk)
            .finish_non_exhaustive()
    }
}

impl<'a> ResultWriter<'a> {
    pub(crate) fn new(
        ring: &'a mut SharedRing,
        staged: &'a AtomicU64,
        wake: &'a dyn WakeParent,
        max_len: usize,
    ) -> ResultWriter<'a> {
        ResultWriter {
            ring,
            stream: None,
            staged,
            wake,
            max_len,
            seq: 1,
            chunk: None,
            scratch: Vec::new(),
        }
    }

    /// A writer for a worker on a byte stream: frames go to `stream` (the ring, which the
    /// caller makes small, is never written).
    pub(crate) fn streaming(
        ring: &'a mut SharedRing,
        stream: std::fs::File,
        staged: &'a AtomicU64,
        wake: &'a dyn WakeParent,
        max_len: usize,
    ) -> ResultWriter<'a> {
        ResultWriter {
            stream: Some(stream),
            ..ResultWriter::new(ring, staged, wake, max_len)
        }
    }

    /// On a stream: tells the parent the chunk sent with sequence number `seq` starts now
    /// (nothing otherwise: the claim word says it).
    pub(crate) fn claimed(&mut self, seq: u64) {
        if self.stream.is_some() {
            self.write_frame(0, seq as u32, CLAIMED, &[]);
        }
    }

    /// On a stream: tells the parent the initializer returned.
    pub(crate) fn ready(&mut self) {
        if self.stream.is_some() {
            self.write_frame(0, 0, READY_FLAG, &[]);
        }
    }

    /// Bytes published and not yet read by the parent.
    pub(crate) fn unread(&self) -> usize {
        self.ring.capacity() - self.ring.free()
    }

    /// Starts the results of chunk `id`, whose first `skip` items are not run.
    pub(crate) fn begin(&mut self, id: u64, skip: u32) {
        self.chunk = Some(Chunk {
            id,
            next_item: skip,
            values: true,
            part: None,
        });
    }

    /// Runs `call` on each of `items` in turn, under `catch_unwind`, and stages each outcome
    /// (its value, or the panic that replaced it) in the ring before the next item starts.
    /// Inlined into the chunk's entry point: while the values fit the open part's room in one
    /// piece, they are encoded one after another straight into that room, looked up once (not
    /// once per item); anything else takes `push_item_otherwise`.
    #[inline]
    pub(crate) fn run_items<A, R: Serialize + 'static>(
        &mut self,
        mut items: impl Iterator<Item = A>,
        call: impl Fn(A) -> R,
    ) {
        let mut pending = None;
        loop {
            let outcome = match pending.take() {
                Some(outcome) => outcome,
                None => match items.next() {
                    Some(item) => catch_unwind(AssertUnwindSafe(|| call(item))),
                    None => return,
                },
            };
            match outcome {
                Ok(value) if self.stage_value_in_place(&value) => {
                    drop_contained(value);
                    pending = self.stage_run(&mut items, &call);
                }
                outcome => self.push_item_otherwise(outcome),
            }
        }
    }

    /// Runs items and stages their values in the open part's room, as long as they fit it
    /// in one piece; returns the first outcome it did not stage (a panic, or a value that
    /// did not fit or encode: the caller's general path takes it, looking at the room
    /// afresh), or `None` when the items ran out.
    #[inline]
    fn stage_run<A, R: Serialize>(
        &mut self,
        items: &mut impl Iterator<Item = A>,
        call: &impl Fn(A) -> R,
    ) -> Option<Result<R, Box<dyn Any + Send>>> {
        let item = items.next()?;
        let chunk = match self.chunk.as_mut() {
            Some(chunk) if chunk.values && self.stream.is_none() => chunk,
            _ => return Some(catch_unwind(AssertUnwindSafe(|| call(item)))),
        };
        let Some(part) = chunk.part.as_mut() else {
            return Some(catch_unwind(AssertUnwindSafe(|| call(item))));
        };
        // The frame limit caps a part's payload.
        let limit = self.max_len.saturating_add(codec::HEADER_LEN);
        let room = self.ring.free_slice(part.len);
        let room_len = room.len().min(limit.saturating_sub(part.len));
        let mut room = &mut room[..room_len];
        let mut item = item;
        loop {
            let value = match catch_unwind(AssertUnwindSafe(|| call(item))) {
                Ok(value) => value,
                panicked => return Some(panicked),
            };
            let encoded = catch_unwind(AssertUnwindSafe(|| codec::encode_into_slice(&value, room)));
            let Ok(Ok(used)) = encoded else {
                return Some(Ok(value));
            };
            room = &mut std::mem::take(&mut room)[used..];
            record_staged(self.staged, part, &mut chunk.next_item, used);
            drop_contained(value);
            item = items.next()?;
        }
    }

    /// Stages an outcome the fast path did not: on a stream, a failure, a byte vector too big
    /// for the ring, a value that does not fit the room left in the part.
    #[inline(never)]
    fn push_item_otherwise<R: Serialize + 'static>(
        &mut self,
        outcome: Result<R, Box<dyn Any + Send>>,
    ) {
        let Some(chunk) = self.chunk else {
            debug_assert!(false, "an item outside a chunk");
            return;
        };
        if self.stream.is_some() {
            self.push_item_to_stream(chunk, outcome);
            return;
        }
        if let (Ok(value), true) = (&outcome, chunk.values) {
            let staged = (value as &dyn Any)
                .downcast_ref::<Vec<u8>>()
                .is_some_and(|bytes| self.send_bytes_whole(bytes));
            if staged {
                drop_contained(outcome);
                return;
            }
        }
        self.push_item_slowly(chunk, outcome);
    }

    /// The fast path of a chunk whose items all returned so far: encodes `value` straight
    /// into the ring, in the open part; false (nothing staged) when it does not fit there in
    /// one piece or does not encode, or the worker is on a stream, for the other paths to
    /// deal with.
    #[inline]
    fn stage_value_in_place<R: Serialize>(&mut self, value: &R) -> bool {
        if self.stream.is_some() {
            return false;
        }
        let Some(chunk) = self.chunk.as_mut() else {
            return false;
        };
        if !chunk.values {
            return false;
        }
        let Some(part) = chunk.part.as_mut() else {
            return self.open_part_then_stage(value);
        };
        // The frame limit caps a part's payload.
        let limit = self.max_len.saturating_add(codec::HEADER_LEN);
        let room = self.ring.free_slice(part.len);
        let room_len = room.len().min(limit.saturating_sub(part.len));
        let room = &mut room[..room_len];
        let encoded = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            codec::encode_into_slice(value, room)
        }));
        let Ok(Ok(used)) = encoded else {
            // No room left in one piece, or it does not encode: the slow path decides.
            return false;
        };
        record_staged(self.staged, part, &mut chunk.next_item, used);
        true
    }

    /// A byte vector too big for the ring, in a chunk whose items all returned so far: sent
    /// as a frame of its own, its bytes copied straight from the vector into the ring as the
    /// parent reads (no encoding into a buffer first). False, having sent nothing, when it is
    /// not that (it fits the ring, the frame limit refuses it, the worker is on a stream): the
    /// other paths deal with it.
    fn send_bytes_whole(&mut self, bytes: &[u8]) -> bool {
        let Some(chunk) = self.chunk else {
            return false;
        };
        let prefix = codec::len_prefix(bytes.len());
        let item_len = prefix.as_bytes().len() + bytes.len();
        let fits_frame = RESULT_HEADER_LEN.saturating_add(item_len) <= self.max_len;
        if self.stream.is_some() || !fits_frame || FRAME_HEAD + item_len <= self.ring.capacity() {
            return false;
        }
        if chunk.part.is_some() {
            self.finish_part(0);
        }
        self.write_single_item_from(chunk, true, &[prefix.as_bytes(), bytes]);
        true
    }

    /// Opens a part of values for the chunk's next item, then stages `value` in it (false,
    /// with the part closed again, if that fails).
    #[cold]
    fn open_part_then_stage<R: Serialize>(&mut self, value: &R) -> bool {
        let Some(chunk) = self.chunk else {
            return false;
        };
        if chunk.part.is_some() || !chunk.values || self.ring.free() < FRAME_HEAD {
            return false;
        }
        let part = Part {
            first_item: chunk.next_item,
            count: 0,
            values: true,
            len: FRAME_HEAD,
        };
        self.write_part_head(chunk.id, part, 0);
        if let Some(chunk) = self.chunk.as_mut() {
            chunk.part = Some(part);
        }
        if self.stage_value_in_place(value) {
            return true;
        }
        // Nothing staged in it: close it again (a part is never empty), for the slow path.
        if let Some(chunk) = self.chunk.as_mut() {
            chunk.part = None;
        }
        false
    }

    /// On a stream: the item's outcome as a frame of its own, written before this returns
    /// (each frame says for itself whether it holds a bare value).
    fn push_item_to_stream<R: Serialize>(
        &mut self,
        chunk: Chunk,
        outcome: Result<R, Box<dyn Any + Send>>,
    ) {
        let values = self.encode_into_scratch(outcome, true);
        self.write_single_item(chunk, values);
    }

    fn push_item_slowly<R: Serialize>(
        &mut self,
        chunk: Chunk,
        outcome: Result<R, Box<dyn Any + Send>>,
    ) {
        let values = self.encode_into_scratch(outcome, chunk.values);
        if !values && chunk.values {
            // From the first failure on, outcomes: the bare values so far end their part.
            self.finish_part(0);
            if let Some(chunk) = self.chunk.as_mut() {
                chunk.values = false;
            }
        }
        self.stage_item();
    }

    /// Encodes `outcome` into `scratch`: a bare value while `values` (the part holds bare
    /// values), else an `ItemOutcome`; a panic, a value that does not encode, or one over the
    /// frame limit as the outcome that says so. Returns whether `scratch` holds a bare value.
    fn encode_into_scratch<R: Serialize>(
        &mut self,
        outcome: Result<R, Box<dyn Any + Send>>,
        mut values: bool,
    ) -> bool {
        self.scratch.clear();
        let encoded = match &outcome {
            Ok(value) if values => encode_guarded(value, &mut self.scratch),
            Ok(value) => encode_guarded(&ItemOutcome::Returned(value), &mut self.scratch),
            Err(panic) => {
                values = false;
                encode_outcome(
                    ItemOutcome::Panicked(protocol::panic_message(panic.as_ref())),
                    &mut self.scratch,
                );
                Ok(())
            }
        };
        // Dropping the value or the panic payload may panic too; contain it.
        let _ = std::panic::catch_unwind(std::panic::AssertUnwindSafe(move || drop(outcome)));
        if let Err(message) = encoded {
            values = false;
            self.scratch.clear();
            encode_outcome(ItemOutcome::EncodeFailed(message), &mut self.scratch);
        }
        let room = self.max_len.saturating_sub(RESULT_HEADER_LEN);
        if self.scratch.len() > room {
            let len = (self.scratch.len() + RESULT_HEADER_LEN) as u64;
            values = false;
            self.scratch.clear();
            // The size of the frame it would need, to compare with the frame limit.
            encode_outcome(
                ItemOutcome::TooLarge {
                    len,
                    limit: self.max_len as u64,
                },
                &mut self.scratch,
            );
        }
        values
    }

    /// Stages `scratch` as the chunk's next item.
    fn stage_item(&mut self) {
        let Some(mut chunk) = self.chunk else {
            return;
        };
        let item_len = self.scratch.len();
        if let Some(part) = chunk.part {
            let fits_frame = part.len - codec::HEADER_LEN + item_len <= self.max_len;
            if !fits_frame || self.ring.free() < part.len + item_len {
                self.finish_part(0);
                chunk.part = None;
            }
        }
        let part = match chunk.part {
            Some(part) => part,
            None if FRAME_HEAD + item_len > self.ring.capacity() => {
                // Bigger than the ring: a frame of its own, streamed.
                self.write_single_item(chunk, chunk.values);
                return;
            }
            None => {
                self.wait_for_room(FRAME_HEAD + item_len);
                let part = Part {
                    first_item: chunk.next_item,
                    count: 0,
                    values: chunk.values,
                    len: FRAME_HEAD,
                };
                self.write_part_head(chunk.id, part, 0);
                part
            }
        };
        // Room was checked (or waited for) above.
        let _ = self.ring.write_at(part.len, &self.scratch);
        let part = Part {
            count: part.count + 1,
            len: part.len + item_len,
            ..part
        };
        self.staged.store(
            (u64::from(part.count) << 32) | part.len as u64,
            Ordering::Release,
        );
        chunk.part = Some(part);
        chunk.next_item += 1;
        self.chunk = Some(chunk);
    }

    /// Sends the item in `scratch` as a frame of its own (`values`: a bare value): one too
    /// big for the ring, streamed through it, or any item on a stream.
    fn write_single_item(&mut self, chunk: Chunk, values: bool) {
        let scratch = std::mem::take(&mut self.scratch);
        self.write_single_item_from(chunk, values, &[&scratch]);
        self.scratch = scratch;
    }

    /// Sends one item, the concatenation of `item`'s pieces, as a frame of its own.
    fn write_single_item_from(&mut self, chunk: Chunk, values: bool, item: &[&[u8]]) {
        let item_len: usize = item.iter().map(|piece| piece.len()).sum();
        let header = ResultHeader {
            seq: self.next_seq(),
            id: chunk.id,
            first_item: chunk.next_item,
            count: 1,
            flags: if values { VALUES } else { 0 },
        };
        let mut head = [0u8; FRAME_HEAD];
        head[..codec::HEADER_LEN]
            .copy_from_slice(&((RESULT_HEADER_LEN + item_len) as u32).to_le_bytes());
        header.write_to(&mut head[codec::HEADER_LEN..]);
        match item {
            [] => self.write_pieces(&[&head]),
            [one] => self.write_pieces(&[&head, one]),
            [one, two] => self.write_pieces(&[&head, one, two]),
            more => {
                let mut pieces = vec![&head[..]];
                pieces.extend_from_slice(more);
                self.write_pieces(&pieces);
            }
        }
        if let Some(chunk) = self.chunk.as_mut() {
            chunk.next_item += 1;
            chunk.part = None;
        }
    }

    /// Writes the head of a part at the ring's head: a provisional one (length and count 0)
    /// when it is being opened (`part.count` 0), else the final one.
    fn write_part_head(&mut self, id: u64, part: Part, flags: u8) {
        let provisional = part.count == 0;
        let payload_len = if provisional {
            0
        } else {
            part.len - codec::HEADER_LEN
        };
        let header = ResultHeader {
            seq: self.seq,
            id,
            first_item: part.first_item,
            count: part.count,
            flags: flags | if part.values { VALUES } else { 0 },
        };
        let mut head = [0u8; FRAME_HEAD];
        head[..4].copy_from_slice(&(payload_len as u32).to_le_bytes());
        header.write_to(&mut head[codec::HEADER_LEN..]);
        // The room for the head was there when the part was opened, and stays reserved.
        let _ = self.ring.write_at(0, &head);
        if provisional {
            self.staged.store(FRAME_HEAD as u64, Ordering::Release);
        }
    }

    /// Finishes the staged part with `flags` and publishes it.
    fn finish_part(&mut self, flags: u8) {
        let Some(mut chunk) = self.chunk else {
            return;
        };
        let Some(part) = chunk.part.take() else {
            return;
        };
        self.write_part_head(chunk.id, part, flags);
        self.ring.publish(part.len);
        self.staged.store(0, Ordering::Release);
        self.seq = self.seq.wrapping_add(1);
        self.chunk = Some(chunk);
        if flags & LAST == 0 {
            // A chunk's last frame is announced by the task loop, which knows whether the
            // worker is about to wait; a part before it, here.
            let urgent = self.unread() >= self.ring.capacity() / 4;
            self.wake.published(urgent);
        }
    }

    /// Ends the chunk: its last frame gets the `LAST` flag (an empty frame if every item
    /// went out in frames of their own).
    pub(crate) fn finish(&mut self) {
        let Some(chunk) = self.chunk else {
            return;
        };
        if chunk.part.is_some() {
            self.finish_part(LAST);
        } else {
            self.write_frame(chunk.id, chunk.next_item, LAST, &[]);
        }
        self.chunk = None;
    }

    /// Fails the whole chunk (its arguments did not decode) with a `FAILED` frame.
    pub(crate) fn fail_chunk(&mut self, message: &str) {
        let Some(chunk) = self.chunk.take() else {
            return;
        };
        self.scratch.clear();
        let _ = codec::encode_value(message, &mut self.scratch);
        let message = std::mem::take(&mut self.scratch);
        self.write_frame(chunk.id, chunk.next_item, LAST | FAILED, &message);
        self.scratch = message;
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
        let room = self
            .max_len
            .saturating_sub(RESULT_HEADER_LEN + 16)
            .min(self.ring.capacity() / 2);
        let mut end = message.len().min(room);
        while !message.is_char_boundary(end) {
            end -= 1;
        }
        let mut payload = Vec::new();
        let _ = codec::encode_value(&message[..end], &mut payload);
        self.write_frame(0, 0, LAST | flag, &payload);
    }

    /// Writes a whole frame (no items counted) and publishes it, waiting for room as needed.
    fn write_frame(&mut self, id: u64, first_item: u32, flags: u8, payload: &[u8]) {
        let mut frame = Vec::with_capacity(FRAME_HEAD + payload.len());
        frame.extend_from_slice(&((RESULT_HEADER_LEN + payload.len()) as u32).to_le_bytes());
        ResultHeader {
            seq: self.next_seq(),
            id,
            first_item,
            count: 0,
            flags,
        }
        .write(&mut frame);
        frame.extend_from_slice(payload);
        self.write_pieces(&[&frame]);
    }

    fn next_seq(&mut self) -> u32 {
        let seq = self.seq;
        self.seq = self.seq.wrapping_add(1);
        seq
    }

    /// Publishes one frame, the concatenation of `pieces`, in parts as the parent makes room
    /// (on a stream: writes it; a failed write means the parent is gone, which ends the
    /// worker at its next read).
    fn write_pieces(&mut self, pieces: &[&[u8]]) {
        if let Some(stream) = self.stream.as_mut() {
            // Every frame here is written whole, so the separator follows each one.
            let len: usize = pieces.iter().map(|piece| piece.len()).sum();
            let mut frame = Vec::with_capacity(len + 1);
            pieces
                .iter()
                .for_each(|piece| frame.extend_from_slice(piece));
            frame.push(protocol::STREAM_SEPARATOR);
            let _ = std::io::Write::write_all(stream, &frame);
            return;
        }
        let mut left: usize = pieces.iter().map(|piece| piece.len()).sum();
        for mut bytes in pieces.iter().copied() {
            while !bytes.is_empty() {
                let n = self.ring.write(bytes);
                bytes = &bytes[n..];
                left -= n;
                if n > 0 {
                    self.wake.published(left > 0);
                }
                if !bytes.is_empty() {
                    self.ring
                        .wait_for_free(left.min(self.ring.capacity() / 2), ROOM_WAIT);
                }
            }
        }
    }

    /// Waits until `bytes` are free in the ring (at most its capacity), waking the parent.
    fn wait_for_room(&mut self, bytes: usize) {
        while self.ring.free() < bytes {
            self.wake.published(true);
            self.ring.wait_for_free(bytes, ROOM_WAIT);
        }
    }
}

/// Encodes `value` onto `out`; a `Serialize` impl that fails or panics is the item's failure
/// (its message), not the worker's.
fn encode_guarded<T: Serialize>(value: &T, out: &mut Vec<u8>) -> Result<(), String> {
    match std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        codec::encode_value(value, out)
    })) {
        Ok(Ok(())) => Ok(()),
        Ok(Err(err)) => Err(err.to_string()),
        Err(panic) => Err(format!(
            "Serialize panicked: {}",
            protocol::panic_message(panic.as_ref())
        )),
    }
}

/// Drops a value or a panic payload whose drop may panic too: contained.
#[inline]
fn drop_contained<T>(value: T) {
    if std::mem::needs_drop::<T>() {
        let _ = std::panic::catch_unwind(std::panic::AssertUnwindSafe(move || drop(value)));
    }
}

fn encode_outcome(outcome: ItemOutcome<()>, out: &mut Vec<u8>) {
    let _ = codec::encode_value(&outcome, out);
}
