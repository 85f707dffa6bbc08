//! The consumers' side of the ring: waiting for records, taking items whole or in chunks,
//! dropping abandoned ones, and the repair after a dead consumer.

use std::sync::atomic::Ordering;

use super::*;

impl ItemRing {
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
        let ready = || self.has_record(true);
        if self.has_record(false) || spin_until(POLL_EVERY, ready) {
            return Ok(());
        }
        let items = self.wait_word(ITEMS_WAIT);
        loop {
            // Mid-item the wait is the producer's to bound (it abandons the item when its own
            // timeout runs out); we only look at its liveness in slices.
            let left = match mid_item {
                Some(stamp) if self.abandoned(stamp) => return Err(NoRecord::Abandoned),
                Some(_) => Some(LIVENESS_SLICE),
                None => deadline.remaining(),
            };
            if items.sleep_unless(left, ready) {
                return Ok(());
            }
            if mid_item.is_none() && deadline.passed() {
                return Err(NoRecord::TimedOut);
            }
        }
    }

    fn wake_producers(&self) {
        self.wait_word(ROOM_WAIT).wake_all();
    }

    /// Moves `tail` past a record; for an item's first record, counts the item as taken and
    /// open. (The order of the stores is what `repair_get` relies on.)
    fn consume(&self, new_tail: u64, first: bool) {
        if first {
            let gets = self.u64(GETS).load(Ordering::Relaxed);
            self.u64(GETS_BEFORE).store(gets, Ordering::Relaxed);
            self.u64(GET_PENDING).store(new_tail, Ordering::Release);
            self.u64(GETS).store(gets + 1, Ordering::Release);
            let lost_if_unfinished = self.u64(LOST).load(Ordering::Relaxed) + 1;
            self.u64(GET_OPEN)
                .store(lost_if_unfinished, Ordering::Relaxed);
            self.u64(TAIL).store(new_tail, Ordering::SeqCst);
            self.u64(GET_PENDING).store(0, Ordering::Relaxed);
        } else {
            self.u64(TAIL).store(new_tail, Ordering::SeqCst);
        }
        self.wake_producers();
    }

    /// After taking the get lock from a dead consumer: put `gets` back as it stood if the
    /// consumer died taking an item's first record before it moved `tail` (the item is still
    /// in the ring); an item it took and never finished is lost (for a `JoinableQueue` it is
    /// no longer unfinished, or `join` would wait for ever). Stores only: a repairer killed
    /// half-way leaves the same repair to the next one.
    pub(super) fn repair_get(&self) {
        let pending = self.u64(GET_PENDING).load(Ordering::Acquire);
        if pending != 0 {
            if self.u64(TAIL).load(Ordering::Acquire) != pending {
                let before = self.u64(GETS_BEFORE).load(Ordering::Relaxed);
                self.u64(GETS).store(before, Ordering::SeqCst);
                self.u64(GET_OPEN).store(0, Ordering::Relaxed);
            }
            self.u64(GET_PENDING).store(0, Ordering::Relaxed);
        }
        self.drop_open_item();
    }

    /// The item the get-lock holder had begun will not be delivered: `lost` takes the value
    /// written down when it was opened (a store, so doing this twice counts it once).
    fn drop_open_item(&self) {
        let lost = self.u64(GET_OPEN).load(Ordering::Relaxed);
        if lost != 0 {
            self.u64(LOST).store(lost, Ordering::SeqCst);
            self.u64(GET_OPEN).store(0, Ordering::Relaxed);
            self.wake_joiners_if_done();
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
            let used = strip_length_prefix(out).inspect_err(|_| self.item_not_delivered())?;
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
}

/// Appends `len` bytes from ring position `from` to `out`.
fn append_from(ring: &ItemRing, out: &mut Vec<u8>, from: u64, len: u64) {
    let at = out.len();
    out.resize(at + len as usize, 0);
    ring.copy_out(from, &mut out[at..]);
}

/// The length of the `u64` length prefix at the start of `bytes`, which must announce the
/// length of the rest (a `Vec<u8>` in the codec's encoding).
fn strip_length_prefix(bytes: &[u8]) -> Result<usize, SyncError> {
    let (len, used) = codec::decode_value::<u64>(bytes)?;
    let rest = bytes.len() - used;
    if len == rest as u64 {
        Ok(used)
    } else {
        Err(SyncError::Codec(codec::CodecError::Decode {
            type_name: "alloc::vec::Vec<u8>",
            len: bytes.len(),
            message: format!("{len} bytes announced, {rest} present"),
        }))
    }
}
