//! The shared part of every queue: a ring of byte records in a [`SharedObject`], with many
//! producers and many consumers across processes, that survives any of them being killed.
//!
//! # Why this shape
//!
//! - **Two locks, then one producer and one consumer.** Producers take a put lock, consumers a
//!   get lock ([`raw_mutex`]: one atomic instruction when free, a futex sleep when not, and a
//!   dead holder's lock is taken over). Between the put-lock holder and the get-lock holder
//!   the ring is single-producer/single-consumer, like fork-sys's `SharedRing`: `head` and
//!   `tail` are byte positions that only grow, each written by one side. A small item costs a
//!   few atomic operations on each side and no system call while the queue is not empty: a
//!   futex is woken only when a waiter count beside it says somebody sleeps.
//! - **Records published whole.** An item is one record: a header word (payload length and
//!   flags), the encoded bytes, padding to 8. The producer writes past `head`, where consumers
//!   do not look, then moves `head` with one release store: a producer killed before that
//!   store has published nothing, and the next producer overwrites what it left.
//! - **Large items stream in chunks.** An item larger than a quarter of the ring goes as a
//!   sequence of chunk records, each published whole as soon as there is room: a `FIRST`
//!   chunk (which also carries the item's total length and a stamp), continuations, and a
//!   `LAST` one. Items larger than the ring therefore pass, and producer and consumer copy at
//!   the same time. A consumer holds the get lock from the first chunk to the last.
//! - **An unfinished item is simply dropped.** A producer that dies (or whose timeout runs
//!   out) in the middle of an item leaves a `FIRST` chunk and some continuations and nothing
//!   more. Consumers drop it: a new `FIRST` chunk ends the unfinished item, and a consumer
//!   waiting for the rest of an item that the ring no longer streams (the `streaming` word
//!   names another item, or the put lock's holder is gone) drops it too. No filler has to be
//!   written and nobody waits for a dead process to make room. Continuation chunks whose
//!   `FIRST` chunk a dead consumer took are skipped by the next one: a consumer killed in the
//!   middle of a `get` loses that one item and nothing else.
//! - **Counts repaired from intentions.** The item counters (`puts`, `gets`, and the unfinished
//!   tasks of a `JoinableQueue`) change in the same step as `head` or `tail` moves; since two
//!   words cannot change at once, each side first writes the position it is about to store
//!   (`put_pending`, `get_pending`), and whoever takes a dead holder's lock compares it with the
//!   position actually stored and undoes the count of a step that did not happen.
//!
//! Positions are `u64` byte counts and never wrap in practice (584 years at 1 GB/s).

use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use std::time::Duration;

use proc_core::codec;

use crate::error::SyncError;
use crate::raw_mutex::{self, Acquired, LIVENESS_SLICE};
use crate::shared_object::{HEADER_LEN, Handle, Kind, SharedObject};

// The producers' cache line: written by the put-lock holder only.
const PUT_LOCK: usize = 0;
const HEAD: usize = 8;
const PUT_PENDING: usize = 16;
const PUTS: usize = 24;
/// The stamp of the item being streamed in chunks, 0 when none.
const STREAMING: usize = 32;
// The consumers' cache line: written by the get-lock holder only.
const GET_LOCK: usize = 64;
const TAIL: usize = 72;
const GET_PENDING: usize = 80;
const GETS: usize = 88;
/// 1 while the get-lock holder has taken an item's first chunk and not yet all of it.
const GET_OPEN: usize = 96;
// Waits: futex words (sequence numbers bumped at each wake) and how many sleep on them.
const ITEMS_SEQ: usize = 128;
const ITEMS_WAITERS: usize = 132;
const ROOM_SEQ: usize = 136;
const ROOM_WAITERS: usize = 140;
const UNFINISHED: usize = 144;
const TASKS_SEQ: usize = 152;
const TASKS_WAITERS: usize = 156;
// Set once by the creator.
const CAPACITY: usize = 192;
const MAXSIZE: usize = 200;
const FLAVOR: usize = 208;
/// The ring's bytes start here in the body.
const DATA: usize = 256;

/// Chunk header flags, above the 32-bit payload length.
const FIRST: u64 = 1 << 32;
const LAST: u64 = 1 << 33;
const LEN_MASK: u64 = u32::MAX as u64;
/// Extra words of a `FIRST` chunk that is not also `LAST`: total length, stamp.
const STREAM_HEADER: u64 = 16;

/// The smallest and largest ring, in bytes.
pub(crate) const MIN_CAPACITY: usize = 4096;
pub(crate) const MAX_CAPACITY: usize = 1 << 32;
/// The largest item, encoded: what proc-core's frames accept.
pub(crate) const MAX_ITEM_LEN: usize = codec::DEFAULT_MAX_FRAME_LEN;

/// How long a producer waiting for room or a consumer waiting for an item spins before it
/// sleeps: a peer on another CPU usually answers within this, far sooner than a futex wake.
const SPIN: Duration = Duration::from_micros(20);
/// Pauses between two looks at the other side's position while spinning. Looking less often
/// lets the producer write several records before the consumer pulls the line over.
const POLL_EVERY: u32 = 512;
/// How long `try_put`/`try_get` wait for another producer or consumer that is in the middle
/// of an operation (and holds the lock for it).
const TRY_GRACE: Duration = Duration::from_millis(5);

/// Which queue type a ring was made for; attaching checks it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Flavor {
    Queue = 1,
    Joinable = 2,
    Simple = 3,
}

impl Flavor {
    fn name(raw: u32) -> &'static str {
        match raw {
            1 => "Queue",
            2 => "JoinableQueue",
            3 => "SimpleQueue",
            _ => "unknown queue",
        }
    }
}

/// When a wait ends: the instant on [`fork_sys::monotonic_now`]'s clock (`None`: never) and
/// the timeout the caller gave, for the error.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Deadline {
    at: Option<Duration>,
    timeout: Duration,
}

impl Deadline {
    pub(crate) fn forever() -> Deadline {
        Deadline {
            at: None,
            timeout: Duration::MAX,
        }
    }

    pub(crate) fn after(timeout: Duration) -> Deadline {
        Deadline {
            at: Some(fork_sys::monotonic_now().saturating_add(timeout)),
            timeout,
        }
    }

    /// How long is left: `None` for ever, `Some(ZERO)` when passed.
    fn remaining(&self) -> Option<Duration> {
        self.at
            .map(|at| at.saturating_sub(fork_sys::monotonic_now()))
    }

    fn passed(&self) -> bool {
        self.remaining() == Some(Duration::ZERO)
    }

    fn timeout_error(&self, what: &'static str) -> SyncError {
        SyncError::Timeout {
            what,
            timeout: self.timeout,
        }
    }
}

/// An item's encoded bytes: `prefix` then `body` (a `Vec<u8>` item goes as its length prefix
/// and its own bytes, without a copy).
#[derive(Debug, Clone, Copy)]
pub(crate) struct ItemBytes<'a> {
    pub(crate) prefix: &'a [u8],
    pub(crate) body: &'a [u8],
}

impl ItemBytes<'_> {
    fn len(&self) -> usize {
        self.prefix.len() + self.body.len()
    }

    /// The pieces of bytes `from..from + len`.
    fn pieces(&self, from: usize, len: usize) -> [&[u8]; 2] {
        let end = from + len;
        let p = self.prefix.len();
        let in_prefix = &self.prefix[from.min(p)..end.min(p)];
        let in_body = &self.body[from.saturating_sub(p)..end.saturating_sub(p)];
        [in_prefix, in_body]
    }
}

/// How a consumer wants the item's bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Take {
    /// All of them.
    Whole,
    /// Without the leading length prefix (a `u64` in the codec's encoding), which must equal
    /// the length of the rest: the bytes of a `Vec<u8>` item, copied once.
    AfterLengthPrefix,
}

/// The queue's shared ring, as one process sees it.
#[derive(Debug)]
pub(crate) struct ItemRing {
    object: SharedObject,
    capacity: u64,
    maxsize: u64,
    flavor: Flavor,
    /// `close()` was called in this process.
    closed: AtomicBool,
    /// An item of this queue did not fit the stack buffer of `item_codec` in this process.
    large_items: AtomicBool,
    /// A lower bound of `tail` (it only grows): producers read the consumers' line only when
    /// this says the ring is too full.
    seen_tail: AtomicU64,
    /// A lower bound of `head`, likewise for consumers.
    seen_head: AtomicU64,
}

/// A held put or get lock, released when dropped.
struct Held<'a>(&'a AtomicU32);

impl Drop for Held<'_> {
    fn drop(&mut self) {
        raw_mutex::unlock(self.0);
    }
}

/// An item being taken in chunks.
struct Assembly {
    stamp: u64,
    total: u64,
    got: u64,
}

/// Why a consumer's wait for a record ended without one.
enum NoRecord {
    TimedOut,
    /// The item being taken is no longer streamed: its producer died or gave up.
    Abandoned,
}

impl ItemRing {
    /// A new, empty ring of `capacity` bytes (rounded up to a power of two within
    /// [`MIN_CAPACITY`]..=[`MAX_CAPACITY`]) taking at most `maxsize` items (0: no limit).
    pub(crate) fn create(
        flavor: Flavor,
        type_tag: u64,
        capacity: usize,
        maxsize: usize,
    ) -> Result<ItemRing, SyncError> {
        let capacity = capacity
            .max(MIN_CAPACITY)
            .checked_next_power_of_two()
            .filter(|c| *c <= MAX_CAPACITY)
            .ok_or_else(|| SyncError::Misuse {
                message: format!(
                    "a queue of {capacity} bytes is over the largest ring of {MAX_CAPACITY} bytes"
                ),
            })?;
        let object = SharedObject::create(Kind::Queue, type_tag, DATA + capacity)?;
        object
            .u64(CAPACITY)
            .store(capacity as u64, Ordering::Relaxed);
        object.u64(MAXSIZE).store(maxsize as u64, Ordering::Relaxed);
        object.u32(FLAVOR).store(flavor as u32, Ordering::Release);
        Ok(ItemRing::from_object(object, flavor))
    }

    /// The ring a handle names; `accepts` lists the flavors the caller's type can use.
    pub(crate) fn attach(
        handle: &Handle,
        type_tag: u64,
        wanted: Flavor,
        accepts: &[Flavor],
    ) -> Result<ItemRing, SyncError> {
        let object = SharedObject::attach(handle, Kind::Queue, type_tag)?;
        let raw = object.u32(FLAVOR).load(Ordering::Acquire);
        let Some(flavor) = accepts.iter().copied().find(|f| *f as u32 == raw) else {
            return Err(SyncError::BadHandle {
                message: format!(
                    "the handle is of a {}, not a {}",
                    Flavor::name(raw),
                    Flavor::name(wanted as u32)
                ),
            });
        };
        let capacity = object.u64(CAPACITY).load(Ordering::Relaxed);
        if !capacity.is_power_of_two()
            || capacity < MIN_CAPACITY as u64
            || object.body_len() as u64 != DATA as u64 + capacity
        {
            return Err(SyncError::BadHandle {
                message: format!(
                    "the queue's memory of {} bytes does not hold a ring of {capacity} bytes",
                    object.body_len()
                ),
            });
        }
        Ok(ItemRing::from_object(object, flavor))
    }

    fn from_object(object: SharedObject, flavor: Flavor) -> ItemRing {
        let capacity = object.u64(CAPACITY).load(Ordering::Relaxed);
        let maxsize = object.u64(MAXSIZE).load(Ordering::Relaxed);
        let seen_tail = object.u64(TAIL).load(Ordering::Acquire);
        let seen_head = object.u64(HEAD).load(Ordering::Acquire);
        ItemRing {
            object,
            capacity,
            maxsize,
            flavor,
            closed: AtomicBool::new(false),
            large_items: AtomicBool::new(false),
            seen_tail: AtomicU64::new(seen_tail),
            seen_head: AtomicU64::new(seen_head),
        }
    }

    pub(crate) fn handle(&self) -> Result<Handle, SyncError> {
        self.object.handle()
    }

    /// The ring's size in bytes.
    pub(crate) fn capacity(&self) -> usize {
        self.capacity as usize
    }

    /// The item bound, 0 for none.
    pub(crate) fn maxsize(&self) -> usize {
        self.maxsize as usize
    }

    pub(crate) fn close(&self) {
        self.closed.store(true, Ordering::Relaxed);
    }

    pub(crate) fn has_large_items(&self) -> bool {
        self.large_items.load(Ordering::Relaxed)
    }

    pub(crate) fn note_large_items(&self) {
        self.large_items.store(true, Ordering::Relaxed);
    }

    pub(crate) fn is_closed(&self) -> bool {
        self.closed.load(Ordering::Relaxed)
    }

    fn check_open(&self) -> Result<(), SyncError> {
        if self.is_closed() {
            Err(SyncError::Closed)
        } else {
            Ok(())
        }
    }

    fn u32(&self, at: usize) -> &AtomicU32 {
        self.object.u32(at)
    }

    fn u64(&self, at: usize) -> &AtomicU64 {
        self.object.u64(at)
    }

    /// Items put and not yet taken (a snapshot).
    pub(crate) fn qsize(&self) -> usize {
        let gets = self.u64(GETS).load(Ordering::Acquire);
        let puts = self.u64(PUTS).load(Ordering::Acquire);
        puts.saturating_sub(gets) as usize
    }

    /// Whether no record waits in the ring (a snapshot).
    pub(crate) fn is_empty(&self) -> bool {
        self.u64(HEAD).load(Ordering::Acquire) == self.u64(TAIL).load(Ordering::Acquire)
    }

    /// Whether a put would wait now: `maxsize` items are in the queue, or the ring has no room
    /// for a small record (a snapshot).
    pub(crate) fn is_full(&self) -> bool {
        (self.maxsize != 0 && self.qsize() as u64 >= self.maxsize) || self.free(true) < 16
    }

    // ---- the ring's bytes -------------------------------------------------------------

    fn data_offset(&self, pos: u64) -> usize {
        HEADER_LEN + DATA + (pos & (self.capacity - 1)) as usize
    }

    /// The 8-byte word at position `pos` (a multiple of 8).
    fn word_at(&self, pos: u64) -> &AtomicU64 {
        self.object.region().u64(self.data_offset(pos))
    }

    /// Copies `bytes` in at position `pos`, wrapping at the end.
    fn copy_in(&self, pos: u64, bytes: &[u8]) {
        let start = (pos & (self.capacity - 1)) as usize;
        let first = bytes.len().min(self.capacity as usize - start);
        let region = self.object.region();
        region.write_bytes(HEADER_LEN + DATA + start, &bytes[..first]);
        if first < bytes.len() {
            region.write_bytes(HEADER_LEN + DATA, &bytes[first..]);
        }
    }

    /// Copies `buf.len()` bytes out from position `pos`, wrapping at the end.
    fn copy_out(&self, pos: u64, buf: &mut [u8]) {
        let start = (pos & (self.capacity - 1)) as usize;
        let first = buf.len().min(self.capacity as usize - start);
        let region = self.object.region();
        let (a, b) = buf.split_at_mut(first);
        region.read_bytes(HEADER_LEN + DATA + start, a);
        if !b.is_empty() {
            region.read_bytes(HEADER_LEN + DATA, b);
        }
    }

    // ---- locks ------------------------------------------------------------------------

    fn lock(&self, at: usize, deadline: &Deadline) -> Option<(Held<'_>, Acquired)> {
        let word = self.u32(at);
        let taken = raw_mutex::lock(word, deadline.at)?;
        Some((Held(word), taken))
    }

    /// For `try_*`: the lock at once, or within [`TRY_GRACE`] while `worth_waiting` holds.
    fn try_lock(
        &self,
        at: usize,
        worth_waiting: impl Fn() -> bool,
    ) -> Option<(Held<'_>, Acquired)> {
        let word = self.u32(at);
        if let Some(taken) = raw_mutex::try_lock(word) {
            return Some((Held(word), taken));
        }
        if !worth_waiting() {
            return None;
        }
        self.lock(at, &Deadline::after(TRY_GRACE))
    }

    // ---- producers --------------------------------------------------------------------

    /// Free bytes, from the cached tail unless `fresh`.
    fn free(&self, fresh: bool) -> u64 {
        let head = self.u64(HEAD).load(Ordering::Relaxed);
        let tail = if fresh {
            let tail = self.u64(TAIL).load(Ordering::SeqCst);
            // A plain store: whatever a thread of this process stores was read from
            // `tail`, so it is a lower bound still (a lock-prefixed `fetch_max` cost more).
            self.seen_tail.store(tail, Ordering::Relaxed);
            tail
        } else {
            self.seen_tail.load(Ordering::Relaxed)
        };
        self.capacity.saturating_sub(head.saturating_sub(tail))
    }

    fn has_room(&self, bytes: u64, new_item: bool, fresh: bool) -> bool {
        if self.free(fresh) < bytes && (fresh || self.free(true) < bytes) {
            return false;
        }
        if new_item && self.maxsize != 0 {
            let puts = self.u64(PUTS).load(Ordering::Relaxed);
            let gets = self.u64(GETS).load(Ordering::SeqCst);
            return puts.saturating_sub(gets) < self.maxsize;
        }
        true
    }

    /// The put-lock holder: waits until `bytes` are free and, for a `new_item`, the queue
    /// holds fewer than `maxsize` items.
    fn wait_room(&self, bytes: u64, new_item: bool, deadline: &Deadline) -> Result<(), SyncError> {
        if self.has_room(bytes, new_item, false) {
            return Ok(());
        }
        let spin_until = fork_sys::monotonic_now() + SPIN;
        loop {
            for _ in 0..64 {
                std::hint::spin_loop();
            }
            if self.has_room(bytes, new_item, true) {
                return Ok(());
            }
            if fork_sys::monotonic_now() >= spin_until {
                break;
            }
        }
        let seq = self.u32(ROOM_SEQ);
        let waiters = self.u32(ROOM_WAITERS);
        loop {
            let seen = seq.load(Ordering::SeqCst);
            waiters.fetch_add(1, Ordering::SeqCst);
            // Look again after announcing ourselves: a consumer that moved the tail before
            // seeing the count is seen here.
            let ready = self.has_room(bytes, new_item, true);
            let left = deadline.remaining();
            if !ready && left != Some(Duration::ZERO) {
                fork_sys::futex_wait(seq, seen, left);
            }
            waiters.fetch_sub(1, Ordering::SeqCst);
            if ready || self.has_room(bytes, new_item, true) {
                return Ok(());
            }
            if deadline.passed() {
                return Err(deadline.timeout_error("room in the queue"));
            }
        }
    }

    fn wake_consumers(&self) {
        if self.u32(ITEMS_WAITERS).load(Ordering::SeqCst) != 0 {
            self.u32(ITEMS_SEQ).fetch_add(1, Ordering::SeqCst);
            fork_sys::futex_wake(self.u32(ITEMS_SEQ), u32::MAX);
        }
    }

    /// Puts one item, waiting for room until `deadline`. `try_now`: fail with `Full` instead
    /// of waiting (beyond a moment for the put lock).
    pub(crate) fn put(
        &self,
        item: ItemBytes<'_>,
        deadline: &Deadline,
        try_now: bool,
    ) -> Result<(), SyncError> {
        self.check_open()?;
        let total = item.len();
        if total > MAX_ITEM_LEN {
            return Err(SyncError::TooLarge {
                len: total,
                limit: MAX_ITEM_LEN,
            });
        }
        let single = total as u64 <= self.max_chunk();
        let first_record = if single {
            8 + pad8(total as u64)
        } else {
            8 + STREAM_HEADER + self.max_chunk()
        };
        let full = || SyncError::Full {
            maxsize: self.maxsize as usize,
        };
        let (_held, taken) = if try_now {
            if !self.has_room(first_record, true, true) {
                return Err(full());
            }
            self.try_lock(PUT_LOCK, || self.has_room(first_record, true, true))
                .ok_or_else(full)?
        } else {
            self.lock(PUT_LOCK, deadline)
                .ok_or_else(|| deadline.timeout_error("room in the queue"))?
        };
        if let Acquired::OwnerDied(_) = taken {
            self.repair_put();
        }
        if try_now {
            if !self.has_room(first_record, true, true) {
                return Err(full());
            }
        } else {
            self.wait_room(first_record, true, deadline)?;
        }
        let head = self.u64(HEAD).load(Ordering::Relaxed);
        if single {
            let len = total as u64;
            self.word_at(head)
                .store(len | FIRST | LAST, Ordering::Relaxed);
            let mut at = head + 8;
            for piece in item.pieces(0, total) {
                self.copy_in(at, piece);
                at += piece.len() as u64;
            }
            self.publish_first(head + 8 + pad8(len));
            return Ok(());
        }
        self.put_streamed(item, head, deadline)
    }

    /// Payload bytes of one chunk at most: a quarter of the ring, so that a producer writes
    /// one chunk while a consumer copies out another.
    fn max_chunk(&self) -> u64 {
        self.capacity / 4
    }

    /// Moves `head` to `new_head` over an item's first record, counting the item.
    fn publish_first(&self, new_head: u64) {
        self.u64(PUT_PENDING).store(new_head, Ordering::Relaxed);
        let puts = self.u64(PUTS).load(Ordering::Relaxed);
        self.u64(PUTS).store(puts + 1, Ordering::Release);
        if self.flavor == Flavor::Joinable {
            self.u64(UNFINISHED).fetch_add(1, Ordering::SeqCst);
        }
        self.u64(HEAD).store(new_head, Ordering::SeqCst);
        self.u64(PUT_PENDING).store(0, Ordering::Relaxed);
        self.wake_consumers();
    }

    fn publish(&self, new_head: u64) {
        self.u64(HEAD).store(new_head, Ordering::SeqCst);
        self.wake_consumers();
    }

    /// An item larger than a chunk: a `FIRST` chunk (room for it is there), then the rest
    /// as room appears. Running out of time in between abandons the item.
    fn put_streamed(
        &self,
        item: ItemBytes<'_>,
        mut head: u64,
        deadline: &Deadline,
    ) -> Result<(), SyncError> {
        let total = item.len() as u64;
        let stamp = self.u64(PUTS).load(Ordering::Relaxed) + 1;
        self.u64(STREAMING).store(stamp, Ordering::SeqCst);
        let mut sent = 0u64;
        while sent < total {
            let first = sent == 0;
            let extra = if first { STREAM_HEADER } else { 0 };
            let len = (total - sent).min(self.max_chunk());
            let record = 8 + extra + pad8(len);
            if !first {
                if let Err(err) = self.wait_room(record, false, deadline) {
                    // Abandoned: consumers drop what was sent (see the module docs).
                    self.u64(STREAMING).store(0, Ordering::SeqCst);
                    self.wake_consumers();
                    return Err(err);
                }
            }
            let last = sent + len == total;
            let flags = if first { FIRST } else { 0 } | if last { LAST } else { 0 };
            self.word_at(head).store(len | flags, Ordering::Relaxed);
            if first {
                self.word_at(head + 8).store(total, Ordering::Relaxed);
                self.word_at(head + 16).store(stamp, Ordering::Relaxed);
            }
            let mut at = head + 8 + extra;
            for piece in item.pieces(sent as usize, len as usize) {
                self.copy_in(at, piece);
                at += piece.len() as u64;
            }
            head += record;
            if first {
                self.publish_first(head);
            } else {
                self.publish(head);
            }
            sent += len;
        }
        self.u64(STREAMING).store(0, Ordering::SeqCst);
        Ok(())
    }

    /// After taking the put lock from a dead producer: undo the count of an item it counted
    /// and did not publish, and end the stream of an item it left unfinished.
    fn repair_put(&self) {
        let pending = self.u64(PUT_PENDING).load(Ordering::Acquire);
        if pending != 0 {
            if self.u64(HEAD).load(Ordering::Acquire) != pending {
                let puts = self.u64(PUTS).load(Ordering::Relaxed);
                self.u64(PUTS)
                    .store(puts.saturating_sub(1), Ordering::Release);
                if self.flavor == Flavor::Joinable {
                    self.finish_task_quietly();
                }
            }
            self.u64(PUT_PENDING).store(0, Ordering::Relaxed);
        }
        if self.u64(STREAMING).swap(0, Ordering::SeqCst) != 0 {
            self.wake_consumers();
        }
    }

    // ---- consumers --------------------------------------------------------------------

    /// Bytes published and not taken, from the cached head unless `fresh`.
    fn available(&self, fresh: bool) -> u64 {
        let tail = self.u64(TAIL).load(Ordering::Relaxed);
        let head = if fresh {
            let head = self.u64(HEAD).load(Ordering::SeqCst);
            self.seen_head.store(head, Ordering::Relaxed);
            head
        } else {
            self.seen_head.load(Ordering::Relaxed)
        };
        head.saturating_sub(tail)
    }

    fn has_record(&self, fresh: bool) -> bool {
        self.available(fresh) >= 8 || (!fresh && self.available(true) >= 8)
    }

    /// Whether the item stamped `stamp`, of which the ring holds no more, will get no more:
    /// another item is being streamed, or none is and the put lock's holder is gone.
    fn abandoned(&self, stamp: u64) -> bool {
        let streaming = self.u64(STREAMING).load(Ordering::SeqCst);
        let gone = streaming != stamp
            || raw_mutex::holder(self.u32(PUT_LOCK)).is_none_or(fork_sys::process_is_gone);
        // The producer publishes its last chunk before it clears `streaming` and before it
        // unlocks: look at the ring again after those.
        gone && !self.has_record(true)
    }

    /// The get-lock holder: waits for a record until `deadline`; in the middle of item
    /// `mid_item` (its stamp), for as long as the item is still streamed.
    fn wait_record(&self, deadline: &Deadline, mid_item: Option<u64>) -> Result<(), NoRecord> {
        if self.has_record(false) {
            return Ok(());
        }
        let spin_until = fork_sys::monotonic_now() + SPIN;
        loop {
            for _ in 0..POLL_EVERY {
                std::hint::spin_loop();
            }
            if self.has_record(true) {
                return Ok(());
            }
            if fork_sys::monotonic_now() >= spin_until {
                break;
            }
        }
        let seq = self.u32(ITEMS_SEQ);
        let waiters = self.u32(ITEMS_WAITERS);
        loop {
            if let Some(stamp) = mid_item {
                if self.abandoned(stamp) {
                    return Err(NoRecord::Abandoned);
                }
            }
            let seen = seq.load(Ordering::SeqCst);
            waiters.fetch_add(1, Ordering::SeqCst);
            let ready = self.has_record(true);
            // Mid-item the wait is the producer's to bound (it abandons the item when its own
            // timeout runs out); we only look at its liveness in slices.
            let left = match mid_item {
                Some(_) => Some(LIVENESS_SLICE),
                None => deadline.remaining(),
            };
            if !ready && left != Some(Duration::ZERO) {
                fork_sys::futex_wait(seq, seen, left);
            }
            waiters.fetch_sub(1, Ordering::SeqCst);
            if ready || self.has_record(true) {
                return Ok(());
            }
            if mid_item.is_none() && deadline.passed() {
                return Err(NoRecord::TimedOut);
            }
        }
    }

    fn wake_producers(&self) {
        if self.u32(ROOM_WAITERS).load(Ordering::SeqCst) != 0 {
            self.u32(ROOM_SEQ).fetch_add(1, Ordering::SeqCst);
            fork_sys::futex_wake(self.u32(ROOM_SEQ), u32::MAX);
        }
    }

    /// Moves `tail` past a record; for an item's first record, counts the item as taken.
    fn consume(&self, new_tail: u64, first: bool) {
        if first {
            self.u64(GET_PENDING).store(new_tail, Ordering::Relaxed);
            let gets = self.u64(GETS).load(Ordering::Relaxed);
            self.u64(GETS).store(gets + 1, Ordering::Release);
            self.u64(GET_OPEN).store(1, Ordering::Relaxed);
            self.u64(TAIL).store(new_tail, Ordering::SeqCst);
            self.u64(GET_PENDING).store(0, Ordering::Relaxed);
        } else {
            self.u64(TAIL).store(new_tail, Ordering::SeqCst);
        }
        self.wake_producers();
    }

    /// After taking the get lock from a dead consumer: undo the count of an item it counted
    /// and did not take; an item it took and never finished is lost (for a `JoinableQueue`
    /// it counts as done, or `join` would wait for ever).
    fn repair_get(&self) {
        let pending = self.u64(GET_PENDING).load(Ordering::Acquire);
        if pending != 0 {
            if self.u64(TAIL).load(Ordering::Acquire) != pending {
                let gets = self.u64(GETS).load(Ordering::Relaxed);
                self.u64(GETS)
                    .store(gets.saturating_sub(1), Ordering::Release);
                self.u64(GET_OPEN).store(0, Ordering::Relaxed);
            }
            self.u64(GET_PENDING).store(0, Ordering::Relaxed);
        }
        self.drop_open_item();
    }

    /// The item the get-lock holder had begun will not be delivered.
    fn drop_open_item(&self) {
        if self.u64(GET_OPEN).swap(0, Ordering::Relaxed) != 0 && self.flavor == Flavor::Joinable {
            self.finish_task_quietly();
        }
    }

    /// Takes one item's bytes into `out` (cleared first), waiting until `deadline`.
    /// `try_now`: `Empty` instead of waiting.
    pub(crate) fn get(
        &self,
        out: &mut Vec<u8>,
        take: Take,
        deadline: &Deadline,
        try_now: bool,
    ) -> Result<(), SyncError> {
        self.check_open()?;
        out.clear();
        let (_held, taken) = if try_now {
            if !self.has_record(true) {
                return Err(SyncError::Empty);
            }
            self.try_lock(GET_LOCK, || self.has_record(true))
                .ok_or(SyncError::Empty)?
        } else {
            self.lock(GET_LOCK, deadline)
                .ok_or_else(|| deadline.timeout_error("a queue item"))?
        };
        if let Acquired::OwnerDied(_) = taken {
            self.repair_get();
        }
        let no_wait;
        let deadline = if try_now {
            no_wait = Deadline::after(Duration::ZERO);
            &no_wait
        } else {
            deadline
        };
        let mut assembly: Option<Assembly> = None;
        loop {
            match self.wait_record(deadline, assembly.as_ref().map(|a| a.stamp)) {
                Ok(()) => {}
                Err(NoRecord::TimedOut) if try_now => return Err(SyncError::Empty),
                Err(NoRecord::TimedOut) => return Err(deadline.timeout_error("a queue item")),
                Err(NoRecord::Abandoned) => {
                    assembly = None;
                    out.clear();
                    self.drop_open_item();
                    continue;
                }
            }
            let tail = self.u64(TAIL).load(Ordering::Relaxed);
            let available = self.available(false);
            let header = self.word_at(tail).load(Ordering::Relaxed);
            let len = header & LEN_MASK;
            let first = header & FIRST != 0;
            let last = header & LAST != 0;
            let extra = if first && !last { STREAM_HEADER } else { 0 };
            let record = 8 + extra + pad8(len);
            if header >> 34 != 0 || len > self.max_chunk() || record > available {
                return Err(self.corrupt(tail, header, available));
            }
            let payload = tail + 8 + extra;
            if first {
                if assembly.take().is_some() {
                    // A new item began: the one being taken was abandoned.
                    out.clear();
                    self.drop_open_item();
                }
                if last {
                    append_from(self, out, payload, len);
                    self.consume(tail + record, true);
                    return self.finish(out, take);
                }
                let total = self.word_at(tail + 8).load(Ordering::Relaxed);
                let stamp = self.word_at(tail + 16).load(Ordering::Relaxed);
                if total <= len || total > MAX_ITEM_LEN as u64 {
                    return Err(self.corrupt(tail, header, available));
                }
                out.reserve(total as usize);
                append_from(self, out, payload, len);
                self.consume(tail + record, true);
                assembly = Some(Assembly {
                    stamp,
                    total,
                    got: len,
                });
                continue;
            }
            let Some(item) = assembly.as_mut() else {
                // The rest of an item whose first chunk a dead consumer took, or that was
                // abandoned before we came: skip it.
                self.consume(tail + record, false);
                continue;
            };
            if item.got + len > item.total || (last && item.got + len != item.total) {
                return Err(self.corrupt(tail, header, available));
            }
            append_from(self, out, payload, len);
            item.got += len;
            self.consume(tail + record, false);
            if last {
                return self.finish(out, take);
            }
        }
    }

    /// The whole item is out of the ring: it is ours.
    fn finish(&self, out: &mut Vec<u8>, take: Take) -> Result<(), SyncError> {
        self.u64(GET_OPEN).store(0, Ordering::Relaxed);
        if take == Take::AfterLengthPrefix {
            let (len, used) = codec::decode_value::<u64>(out)?;
            if len != (out.len() - used) as u64 {
                return Err(SyncError::Codec(codec::CodecError::Decode {
                    type_name: "alloc::vec::Vec<u8>",
                    len: out.len(),
                    message: format!("{len} bytes announced, {} present", out.len() - used),
                }));
            }
            out.drain(..used);
        }
        Ok(())
    }

    fn corrupt(&self, tail: u64, header: u64, available: u64) -> SyncError {
        SyncError::Corrupt {
            message: format!(
                "queue record at byte {tail} has header {header:#x} with {available} bytes \
                 published (ring of {} bytes)",
                self.capacity
            ),
        }
    }

    // ---- tasks (JoinableQueue) --------------------------------------------------------

    /// One item fewer unfinished. `Misuse` when none is.
    pub(crate) fn task_done(&self) -> Result<(), SyncError> {
        let unfinished = self.u64(UNFINISHED);
        let mut now = unfinished.load(Ordering::SeqCst);
        loop {
            if now == 0 {
                return Err(SyncError::Misuse {
                    message: "task_done() called more times than items were put in the \
                              JoinableQueue"
                        .into(),
                });
            }
            match unfinished.compare_exchange(now, now - 1, Ordering::SeqCst, Ordering::SeqCst) {
                Ok(_) => break,
                Err(seen) => now = seen,
            }
        }
        if now == 1 {
            self.u32(TASKS_SEQ).fetch_add(1, Ordering::SeqCst);
            if self.u32(TASKS_WAITERS).load(Ordering::SeqCst) != 0 {
                fork_sys::futex_wake(self.u32(TASKS_SEQ), u32::MAX);
            }
        }
        Ok(())
    }

    /// `task_done` for an item that will never be delivered (its count cannot be 0 then).
    fn finish_task_quietly(&self) {
        let _ = self.task_done();
    }

    /// The item just taken could not be given to the caller (it did not decode): for a
    /// `JoinableQueue` it counts as done.
    pub(crate) fn item_not_delivered(&self) {
        if self.flavor == Flavor::Joinable {
            self.finish_task_quietly();
        }
    }

    /// Items put and not yet marked done.
    pub(crate) fn unfinished_tasks(&self) -> u64 {
        self.u64(UNFINISHED).load(Ordering::SeqCst)
    }

    /// Waits until every item put was marked done, or `deadline`.
    pub(crate) fn join_tasks(&self, deadline: &Deadline) -> Result<(), SyncError> {
        let seq = self.u32(TASKS_SEQ);
        let waiters = self.u32(TASKS_WAITERS);
        loop {
            if self.unfinished_tasks() == 0 {
                return Ok(());
            }
            let seen = seq.load(Ordering::SeqCst);
            waiters.fetch_add(1, Ordering::SeqCst);
            let done = self.unfinished_tasks() == 0;
            let left = deadline.remaining();
            if !done && left != Some(Duration::ZERO) {
                fork_sys::futex_wait(seq, seen, left);
            }
            waiters.fetch_sub(1, Ordering::SeqCst);
            if done || self.unfinished_tasks() == 0 {
                return Ok(());
            }
            if deadline.passed() {
                return Err(deadline.timeout_error("every task to be done"));
            }
        }
    }
}

/// Appends `len` bytes from ring position `from` to `out`.
fn append_from(ring: &ItemRing, out: &mut Vec<u8>, from: u64, len: u64) {
    let at = out.len();
    out.resize(at + len as usize, 0);
    ring.copy_out(from, &mut out[at..]);
}

/// `len` rounded up to a multiple of 8.
fn pad8(len: u64) -> u64 {
    (len + 7) & !7
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bytes(n: usize) -> Vec<u8> {
        (0..n).map(|i| (i * 31 % 251) as u8).collect()
    }

    #[test]
    fn records_wrap_around_and_come_out_whole_in_order() {
        let ring = ItemRing::create(Flavor::Queue, 1, MIN_CAPACITY, 0).unwrap();
        let mut out = Vec::new();
        for round in 0..200usize {
            let item = bytes(round * 37 % 900);
            let whole = ItemBytes {
                prefix: &[],
                body: &item,
            };
            ring.put(whole, &Deadline::forever(), false).unwrap();
            assert_eq!(ring.qsize(), 1);
            ring.get(&mut out, Take::Whole, &Deadline::forever(), false)
                .unwrap();
            assert_eq!(out, item, "round {round}");
            assert!(ring.is_empty());
        }
    }

    #[test]
    fn an_item_four_times_the_ring_streams_through_a_consumer_thread() {
        let ring = ItemRing::create(Flavor::Queue, 1, MIN_CAPACITY, 0).unwrap();
        let item = bytes(4 * MIN_CAPACITY + 13);
        std::thread::scope(|s| {
            s.spawn(|| {
                let pieces = ItemBytes {
                    prefix: &item[..5],
                    body: &item[5..],
                };
                ring.put(pieces, &Deadline::forever(), false).unwrap();
            });
            let mut out = Vec::new();
            ring.get(&mut out, Take::Whole, &Deadline::forever(), false)
                .unwrap();
            assert_eq!(out, item);
        });
        assert_eq!(ring.qsize(), 0);
    }

    #[test]
    fn a_stream_abandoned_by_its_producer_is_dropped_and_the_next_item_arrives() {
        let ring = ItemRing::create(Flavor::Joinable, 1, MIN_CAPACITY, 0).unwrap();
        let item = bytes(4 * MIN_CAPACITY);
        let whole = ItemBytes {
            prefix: &[],
            body: &item,
        };
        // Nobody reads: the producer gives up after the chunks that fit.
        let err = ring
            .put(whole, &Deadline::after(Duration::from_millis(20)), false)
            .unwrap_err();
        assert!(matches!(err, SyncError::Timeout { .. }), "{err}");
        assert_eq!(ring.unfinished_tasks(), 1);
        let small = [7u8; 3];
        std::thread::scope(|s| {
            s.spawn(|| {
                let mut out = Vec::new();
                ring.get(&mut out, Take::Whole, &Deadline::forever(), false)
                    .unwrap();
                assert_eq!(out, small);
            });
            let next = ItemBytes {
                prefix: &[],
                body: &small,
            };
            ring.put(next, &Deadline::forever(), false).unwrap();
        });
        // The abandoned item counts as done; the delivered one is the caller's.
        assert_eq!(ring.unfinished_tasks(), 1);
        ring.task_done().unwrap();
        assert!(ring.task_done().is_err());
    }
}
