//! The producers' side of the ring: room, records, chunks, and the repair after a dead
//! producer.

use std::sync::atomic::Ordering;

use super::*;

impl ItemRing {
    /// Free bytes, from the cached tail unless `fresh`.
    pub(super) fn free(&self, fresh: bool) -> u64 {
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
        let ready = || self.has_room(bytes, new_item, true);
        if self.has_room(bytes, new_item, false) || spin_until(64, ready) {
            return Ok(());
        }
        let room = self.wait_word(ROOM_WAIT);
        loop {
            if room.sleep_unless(deadline.remaining(), ready) {
                return Ok(());
            }
            if deadline.passed() {
                return Err(deadline.timeout_error("room in the queue"));
            }
        }
    }

    fn wake_consumers(&self) {
        self.wait_word(ITEMS_WAIT).wake_all();
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

    /// Moves `head` to `new_head` over an item's first record, counting the item. (The
    /// order of the stores is what `repair_put` relies on.)
    fn publish_first(&self, new_head: u64) {
        let puts = self.u64(PUTS).load(Ordering::Relaxed);
        self.u64(PUTS_BEFORE).store(puts, Ordering::Relaxed);
        self.u64(PUT_PENDING).store(new_head, Ordering::Release);
        self.u64(PUTS).store(puts + 1, Ordering::Release);
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

    /// After taking the put lock from a dead producer: put `puts` back as it stood if the
    /// producer died publishing an item (whether or not it had counted it yet), and end the
    /// stream of an item it left unfinished. Stores only: a repairer killed half-way leaves
    /// the same repair to the next one.
    pub(super) fn repair_put(&self) {
        let pending = self.u64(PUT_PENDING).load(Ordering::Acquire);
        if pending != 0 {
            if self.u64(HEAD).load(Ordering::Acquire) != pending {
                let before = self.u64(PUTS_BEFORE).load(Ordering::Relaxed);
                self.u64(PUTS).store(before, Ordering::SeqCst);
                self.wake_joiners_if_done();
            }
            self.u64(PUT_PENDING).store(0, Ordering::Relaxed);
        }
        if self.u64(STREAMING).swap(0, Ordering::SeqCst) != 0 {
            self.wake_consumers();
        }
    }
}
