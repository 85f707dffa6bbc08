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
//!   futex is woken only when a bit in its word says somebody sleeps.
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
//! - **Counts repaired from intentions, idempotently.** The item counters (`puts`, `gets`)
//!   change in the same step as `head` or `tail` moves; since two words cannot change at once,
//!   each side first writes the count as it stands (`puts_before`, `gets_before`) and the
//!   position it is about to store (`put_pending`, `get_pending`), and whoever takes a dead
//!   holder's lock compares that position with the one actually stored and, for a step that
//!   did not happen, stores the count back as it stood. Every repair is such a plain store of
//!   a value the dead process wrote down, never an increment or a decrement, so a repairer
//!   killed half-way leaves the same repair to the next one, and a process killed between any
//!   two of the steps leaves nothing counted twice or not at all.
//! - **Unfinished tasks derived, not kept.** A `JoinableQueue`'s unfinished tasks are `puts`
//!   less the items lost in the ring (`lost`: dropped half-streamed, or taken by a consumer
//!   that died; the get-lock holder's to write, repaired like the counts) less `done`
//!   (`task_done` calls and undecodable items: one atomic addition each, by any process). A
//!   third counter kept beside `puts` could not change in the same step as it.
//!
//! Positions are `u64` byte counts and never wrap in practice (584 years at 1 GB/s).

use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use std::time::Duration;

use proc_core::codec;

use crate::deadline;
use crate::error::SyncError;
use crate::raw_mutex::{self, Acquired, LIVENESS_SLICE};
use crate::shared_object::{HEADER_LEN, Handle, Kind, SharedObject};
use crate::wait_word::{WaitWord, spin_until};

mod get;
mod put;

// The producers' cache line: written by the put-lock holder only.
const PUT_LOCK: usize = 0;
const HEAD: usize = 8;
const PUT_PENDING: usize = 16;
const PUTS: usize = 24;
/// The stamp of the item being streamed in chunks, 0 when none.
const STREAMING: usize = 32;
/// `puts` as it stood before the item being published counted itself.
const PUTS_BEFORE: usize = 40;
// The consumers' cache line: written by the get-lock holder only.
const GET_LOCK: usize = 64;
const TAIL: usize = 72;
const GET_PENDING: usize = 80;
const GETS: usize = 88;
/// While the get-lock holder has taken an item's first record and not yet all of it: what
/// `lost` becomes if the item is never finished (`lost` + 1); 0 otherwise.
const GET_OPEN: usize = 96;
/// `gets` as it stood before the item being taken counted itself.
const GETS_BEFORE: usize = 104;
/// Items taken out of the ring and never delivered.
const LOST: usize = 112;
// Waits: futex words, each a [`WaitWord`].
const ITEMS_WAIT: usize = 128;
const ROOM_WAIT: usize = 136;
/// `task_done` calls, and items taken that did not decode: added to by any process.
const DONE: usize = 144;
const TASKS_WAIT: usize = 152;
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
            at: Some(deadline::after(timeout)),
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

    #[inline]
    pub(crate) fn has_large_items(&self) -> bool {
        self.large_items.load(Ordering::Relaxed)
    }

    pub(crate) fn note_large_items(&self) {
        self.large_items.store(true, Ordering::Relaxed);
    }

    #[inline]
    pub(crate) fn is_closed(&self) -> bool {
        self.closed.load(Ordering::Relaxed)
    }

    #[inline]
    fn check_open(&self) -> Result<(), SyncError> {
        if self.is_closed() {
            Err(SyncError::Closed)
        } else {
            Ok(())
        }
    }

    #[inline]
    fn u32(&self, at: usize) -> &AtomicU32 {
        self.object.u32(at)
    }

    #[inline]
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

    #[inline]
    fn data_offset(&self, pos: u64) -> usize {
        HEADER_LEN + DATA + (pos & (self.capacity - 1)) as usize
    }

    /// The 8-byte word at position `pos` (a multiple of 8).
    #[inline]
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

    fn wait_word(&self, at: usize) -> WaitWord<'_> {
        WaitWord(self.u32(at))
    }

    /// Payload bytes of one chunk at most: a quarter of the ring, so that a producer writes
    /// one chunk while a consumer copies out another.
    fn max_chunk(&self) -> u64 {
        self.capacity / 4
    }

    /// One item fewer unfinished. `Misuse` when none is.
    pub(crate) fn task_done(&self) -> Result<(), SyncError> {
        let done = self.u64(DONE);
        let mut now = done.load(Ordering::SeqCst);
        loop {
            if self.unfinished_given(now) == 0 {
                return Err(SyncError::Misuse {
                    message: "task_done() called more times than items were put in the \
                              JoinableQueue"
                        .into(),
                });
            }
            match done.compare_exchange(now, now + 1, Ordering::SeqCst, Ordering::SeqCst) {
                Ok(_) => break,
                Err(seen) => now = seen,
            }
        }
        self.wake_joiners_if_done();
        Ok(())
    }

    /// The item just taken could not be given to the caller (it did not decode): for a
    /// `JoinableQueue` it counts as done.
    pub(crate) fn item_not_delivered(&self) {
        if self.flavor == Flavor::Joinable {
            let _ = self.task_done();
        }
    }

    /// Items put and not yet marked done (nor lost).
    pub(crate) fn unfinished_tasks(&self) -> u64 {
        self.unfinished_given(self.u64(DONE).load(Ordering::SeqCst))
    }

    fn unfinished_given(&self, done: u64) -> u64 {
        let puts = self.u64(PUTS).load(Ordering::SeqCst);
        let lost = self.u64(LOST).load(Ordering::SeqCst);
        puts.saturating_sub(lost).saturating_sub(done)
    }

    /// After a change that may have left no task unfinished: wakes `join`.
    fn wake_joiners_if_done(&self) {
        if self.flavor == Flavor::Joinable && self.unfinished_tasks() == 0 {
            self.wait_word(TASKS_WAIT).wake_all();
        }
    }

    /// Waits until every item put was marked done, or `deadline`.
    pub(crate) fn join_tasks(&self, deadline: &Deadline) -> Result<(), SyncError> {
        let all_done = || self.unfinished_tasks() == 0;
        let tasks = self.wait_word(TASKS_WAIT);
        while !all_done() {
            if tasks.sleep_unless(deadline.remaining(), all_done) {
                break;
            }
            if deadline.passed() {
                return Err(deadline.timeout_error("every task to be done"));
            }
        }
        Ok(())
    }
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

    /// Puts `item` as one record the way `put` does, but stops after the first `steps` of
    /// `publish_first`'s stores, in its order: what a producer killed there leaves.
    fn publish_cut_short(ring: &ItemRing, item: &[u8], steps: usize) {
        let head = ring.u64(HEAD).load(Ordering::Relaxed);
        let len = item.len() as u64;
        ring.word_at(head)
            .store(len | FIRST | LAST, Ordering::Relaxed);
        ring.copy_in(head + 8, item);
        let new_head = head + 8 + pad8(len);
        let puts = ring.u64(PUTS).load(Ordering::Relaxed);
        let stores = [
            (PUTS_BEFORE, puts),
            (PUT_PENDING, new_head),
            (PUTS, puts + 1),
            (HEAD, new_head),
            (PUT_PENDING, 0),
        ];
        for (at, value) in &stores[..steps] {
            ring.u64(*at).store(*value, Ordering::SeqCst);
        }
    }

    /// Takes the single-record item at `tail` the way `get` does, but stops after the first
    /// `steps` of `consume`'s and `finish`'s stores, in their order: what a consumer killed
    /// there leaves.
    fn take_cut_short(ring: &ItemRing, steps: usize) {
        let tail = ring.u64(TAIL).load(Ordering::Relaxed);
        let len = ring.word_at(tail).load(Ordering::Relaxed) & LEN_MASK;
        let new_tail = tail + 8 + pad8(len);
        let gets = ring.u64(GETS).load(Ordering::Relaxed);
        let lost = ring.u64(LOST).load(Ordering::Relaxed);
        let stores = [
            (GETS_BEFORE, gets),
            (GET_PENDING, new_tail),
            (GETS, gets + 1),
            (GET_OPEN, lost + 1),
            (TAIL, new_tail),
            (GET_PENDING, 0),
            (GET_OPEN, 0),
        ];
        for (at, value) in &stores[..steps] {
            ring.u64(*at).store(*value, Ordering::SeqCst);
        }
    }

    fn take_all(ring: &ItemRing) -> Vec<Vec<u8>> {
        let mut items = Vec::new();
        loop {
            let mut out = Vec::new();
            match ring.get(&mut out, Take::Whole, &Deadline::forever(), true) {
                Ok(()) => items.push(out),
                Err(SyncError::Empty) => return items,
                Err(err) => panic!("get: {err}"),
            }
        }
    }

    #[test]
    fn a_producer_killed_between_any_two_steps_of_a_put_is_repaired_to_exact_counts() {
        for steps in 0..=5 {
            // The repairer may itself have died after its first store: it does it again.
            for repairer_died_half_way in [false, true] {
                let ring = ItemRing::create(Flavor::Joinable, 1, MIN_CAPACITY, 0).unwrap();
                let whole = ItemBytes {
                    prefix: &[],
                    body: b"first",
                };
                ring.put(whole, &Deadline::forever(), false).unwrap();
                publish_cut_short(&ring, b"second", steps);
                let published = steps >= 4;
                let pending = ring.u64(PUT_PENDING).load(Ordering::SeqCst) != 0;
                if repairer_died_half_way && pending && !published {
                    // Its first store: `puts` put back.
                    let before = ring.u64(PUTS_BEFORE).load(Ordering::SeqCst);
                    ring.u64(PUTS).store(before, Ordering::SeqCst);
                }
                ring.repair_put();
                let case =
                    format!("{steps} steps, repairer died half-way: {repairer_died_half_way}");
                let expected: &[&[u8]] = if published {
                    &[b"first", b"second"]
                } else {
                    &[b"first"]
                };
                assert_eq!(ring.qsize(), expected.len(), "{case}");
                assert_eq!(ring.unfinished_tasks(), expected.len() as u64, "{case}");
                assert_eq!(take_all(&ring), expected, "{case}");
                assert_eq!(ring.qsize(), 0, "{case}");
                for _ in expected {
                    ring.task_done().unwrap();
                }
                assert!(ring.task_done().is_err(), "{case}: a phantom task");
            }
        }
    }

    #[test]
    fn a_consumer_killed_between_any_two_steps_of_a_get_is_repaired_to_exact_counts() {
        for steps in 0..=7 {
            for repairer_died_half_way in [false, true] {
                let ring = ItemRing::create(Flavor::Joinable, 1, MIN_CAPACITY, 0).unwrap();
                for item in [&b"first"[..], b"second"] {
                    let whole = ItemBytes {
                        prefix: &[],
                        body: item,
                    };
                    ring.put(whole, &Deadline::forever(), false).unwrap();
                }
                take_cut_short(&ring, steps);
                let taken = steps >= 5;
                let delivered = steps == 7;
                if repairer_died_half_way {
                    // Its first store: `gets` put back, or the item counted lost.
                    if !taken && ring.u64(GET_PENDING).load(Ordering::SeqCst) != 0 {
                        let before = ring.u64(GETS_BEFORE).load(Ordering::SeqCst);
                        ring.u64(GETS).store(before, Ordering::SeqCst);
                    } else if taken && !delivered {
                        let lost = ring.u64(GET_OPEN).load(Ordering::SeqCst);
                        ring.u64(LOST).store(lost, Ordering::SeqCst);
                    }
                }
                ring.repair_get();
                let case =
                    format!("{steps} steps, repairer died half-way: {repairer_died_half_way}");
                let (left, unfinished): (&[&[u8]], u64) = match (taken, delivered) {
                    (false, _) => (&[b"first", b"second"], 2),
                    // Lost with its consumer: no longer a task anyone will finish.
                    (true, false) => (&[b"second"], 1),
                    // Delivered: the dead consumer's to mark done, as in Python.
                    (true, true) => (&[b"second"], 2),
                };
                assert_eq!(ring.qsize(), left.len(), "{case}");
                assert_eq!(ring.unfinished_tasks(), unfinished, "{case}");
                assert_eq!(take_all(&ring), left, "{case}");
                assert_eq!(ring.qsize(), 0, "{case}");
                for _ in 0..unfinished {
                    ring.task_done().unwrap();
                }
                assert!(ring.task_done().is_err(), "{case}: a phantom task");
            }
        }
    }
}
