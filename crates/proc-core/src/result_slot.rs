//! Where a forked child leaves its report (Linux): a slot of one memory file that the
//! process shares with every child it forks, instead of a pipe, an eventfd and a pidfd of
//! the child's own.
//!
//! A pipe makes the parent a reader for as long as the child writes: a report larger than
//! the pipe holds needs the parent awake, so the parent has to sleep on the pipe (or a
//! doorbell) and on the child's exit at once, which takes a pidfd. Each of the three costs a
//! few µs to open and close, a fifth of what a small child costs over the bare fork. A slot
//! needs none of them: the child writes its whole report (a frame, as on a pipe) at the
//! slot's offset with `pwrite`, which never waits for a reader, and exits; the parent waits
//! for the exit with a plain blocking `waitpid` and reads the report back with `pread`.
//!
//! The file ([`fork_sys::SharedMemoryFile`], close-on-exec) is made for the first child of a
//! process that runs and closed with the last (a forked child that spawns makes its own), so
//! a process with no child running holds no descriptor for it; children running at once share
//! one. It is sparse: a slot takes memory only for the report in it, and gives it back when
//! the slot is released. A slot is released once its child has been reaped (by `join`, by the
//! handle's drop, or by the reaper after a drop), never before, so no late write of a child
//! lands in a report of another.
//!
//! There are [`SLOTS`] of them; when all are taken (or the file cannot be made), a spawn
//! falls back to a pipe of its own, as on other platforms.

#[cfg(not(target_os = "linux"))]
pub(crate) use elsewhere::{ResultSlot, SlotWriter};
#[cfg(target_os = "linux")]
pub(crate) use linux::{ResultSlot, SlotWriter};

#[cfg(target_os = "linux")]
mod linux {
    use std::sync::OnceLock;
    use std::sync::atomic::{AtomicU64, Ordering};

    use fork_sys::{MemoryFile, MemoryFileHold, Pid, SharedMemoryFile};
    use serde::de::DeserializeOwned;

    use crate::child_side::{Report, STACK_READ};
    use crate::codec::{self, CodecError, HEADER_LEN};

    /// How many children may hold a slot at once.
    const SLOTS: usize = 1024;

    /// The room of each slot: a frame of the largest payload the codec allows (`u32::MAX`)
    /// and its header, rounded up to a power of two. Offsets only: the file is sparse.
    const STRIDE: u64 = 1 << 33;

    /// The slots of one process, and which of them are taken.
    struct Arena {
        /// The process that made it. A forked child inherits its parent's arena (and the file,
        /// where its own report goes) but makes its own for its children: [`forked`].
        owner: Pid,
        /// The file while any slot of it is held (each holds it): it is closed when the last
        /// is released, so a process with no child running holds no descriptor for it. Its
        /// count and lock live here, beside the slot numbers, not on the heap: one page for
        /// the parent to write when it releases a slot after a fork, not three.
        file: SharedMemoryFile,
        /// False under a file size limit (`RLIMIT_FSIZE`): slots lie up to `SLOTS * STRIDE`
        /// bytes in, and a write past the limit would kill the child with `SIGXFSZ`. Pipes,
        /// then.
        usable: bool,
        /// Bit `i` of word `i / 64`: slot `i` is taken.
        taken: [AtomicU64; SLOTS / 64],
        /// In a forked child (and only there): the child's own arena.
        forked: OnceLock<Box<Arena>>,
    }

    impl Arena {
        fn new(owner: Pid) -> Arena {
            // Made inside a spawn window (the fork lock's shared side), so no other thread forks
            // while the `OnceLock` that will hold it is half-initialised: a child inheriting it so
            // would wait for ever on its first spawn.
            let _window = fork_sys::spawn_window();
            Arena {
                owner,
                file: SharedMemoryFile::new(c"proc-core-results"),
                usable: MemoryFile::size_limit().is_none(),
                taken: [const { AtomicU64::new(0) }; SLOTS / 64],
                forked: OnceLock::new(),
            }
        }
    }

    impl std::fmt::Debug for Arena {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.debug_struct("Arena")
                .field("owner", &self.owner)
                .finish_non_exhaustive()
        }
    }

    /// The first process's arena; its children's hang off it ([`Arena::forked`]).
    static ARENA: OnceLock<Arena> = OnceLock::new();

    /// The arena of the calling process, made on first use.
    fn arena() -> &'static Arena {
        let me = fork_sys::getpid();
        let mut arena = ARENA.get_or_init(|| Arena::new(me));
        while arena.owner != me {
            arena = arena.forked.get_or_init(|| Box::new(Arena::new(me)));
        }
        arena
    }

    /// A slot held for one child: released (its memory given back, its number free again) when
    /// dropped, which the owner does only once the child has been reaped.
    #[derive(Debug)]
    pub(crate) struct ResultSlot {
        arena: &'static Arena,
        index: usize,
        /// `Some` until the slot is released.
        file: Option<MemoryFileHold<'static>>,
        /// How far into the slot the child's report reaches, once read (`u64::MAX` until then:
        /// anywhere).
        reach: AtomicU64,
    }

    impl ResultSlot {
        /// A free slot, if there is one and a report of `max_frame_len` fits it; `None` sends
        /// the spawn down the pipe road.
        pub(crate) fn take(max_frame_len: usize) -> Option<ResultSlot> {
            if max_frame_len as u64 + HEADER_LEN as u64 > STRIDE {
                return None;
            }
            let arena = arena();
            if !arena.usable {
                return None;
            }
            let file = arena.file.hold().ok()?;
            for (word_index, word) in arena.taken.iter().enumerate() {
                let mut taken = word.load(Ordering::Relaxed);
                while taken != u64::MAX {
                    let bit = (!taken).trailing_zeros();
                    let mask = 1u64 << bit;
                    taken = word.fetch_or(mask, Ordering::Acquire);
                    if taken & mask == 0 {
                        return Some(ResultSlot {
                            arena,
                            index: word_index * 64 + bit as usize,
                            file: Some(file),
                            reach: AtomicU64::new(u64::MAX),
                        });
                    }
                }
            }
            None
        }

        /// Where the child writes its report.
        // Inlined: a forked child runs it (see `SlotWriter::write`).
        #[inline]
        pub(crate) fn writer(&self) -> SlotWriter<'_> {
            SlotWriter {
                file: self.file(),
                offset: self.offset(),
            }
        }

        #[inline]
        fn file(&self) -> &MemoryFile {
            match &self.file {
                Some(file) => file,
                None => unreachable!("a result slot is held until it is dropped"),
            }
        }

        #[inline]
        fn offset(&self) -> u64 {
            self.index as u64 * STRIDE
        }

        /// The report the child left, once it has been reaped: `None` if it left none (it was
        /// killed, or exec'd, before it finished writing one: the header is written last); an
        /// error for a frame that does not decode. Small reports are read into the stack: every
        /// heap page the parent writes while another child lives is a copy-on-write fault.
        pub(crate) fn read_report<R: DeserializeOwned>(
            &self,
            max_len: usize,
        ) -> Option<Result<Report<R>, CodecError>> {
            let file = self.file();
            let mut first = [0u8; STACK_READ];
            let got = match file.read_at(&mut first, self.offset()) {
                Ok(got) => got,
                Err(err) => return Some(Err(CodecError::Io(err))),
            };
            let header = first.first_chunk::<HEADER_LEN>()?;
            let payload = u32::from_le_bytes(*header) as usize;
            // No frame ever has an empty payload (a report names its variant), and the slot read
            // zeros until the child wrote.
            if payload == 0 {
                return None;
            }
            let frame_len = HEADER_LEN + payload;
            self.reach.store(frame_len as u64, Ordering::Relaxed);
            if frame_len <= got {
                return Some(decode_whole(&first[..frame_len], max_len));
            }
            if payload > max_len {
                return Some(Err(CodecError::FrameTooLarge {
                    len: payload,
                    limit: max_len,
                }));
            }
            let mut frame = vec![0u8; frame_len];
            frame[..got].copy_from_slice(&first[..got]);
            match file.read_exact_at(&mut frame[got..], self.offset() + got as u64) {
                Ok(()) => Some(decode_whole(&frame, max_len)),
                // Shorter than its header says (the file cut short under it).
                Err(err) if err.kind() == std::io::ErrorKind::UnexpectedEof => {
                    Some(Err(CodecError::Truncated {
                        expected: frame_len,
                        got,
                    }))
                }
                Err(err) => Some(Err(CodecError::Io(err))),
            }
        }
    }

    /// Decodes a frame whose header announced `frame.len()` bytes.
    fn decode_whole<R: DeserializeOwned>(
        frame: &[u8],
        max_len: usize,
    ) -> Result<Report<R>, CodecError> {
        match codec::decode_frame::<Report<R>>(frame, max_len)? {
            Some((report, _)) => Ok(report),
            None => Err(CodecError::Truncated {
                expected: frame.len(),
                got: frame.len(),
            }),
        }
    }

    impl Drop for ResultSlot {
        fn drop(&mut self) {
            // The child is gone (the owner's contract).
            let Some(file) = self.file.take() else {
                return;
            };
            // A copy of the handle in a forked child (moved into another child's closure, say):
            // the slot, and the report in it, are still the parent's.
            if fork_sys::getpid() != self.arena.owner {
                std::mem::forget(file);
                return;
            }
            let offset = self.offset();
            let reach = self.reach.load(Ordering::Relaxed);
            let mut tidied = true;
            // The last hold closes the file, memory and all: nothing to tidy, and a slot taken
            // afterwards is in a new file. Otherwise zero the frame header, so that the next
            // child's parent never reads this report for its own, and give back the memory of
            // a report that reached past the first page (the first stays, for the next child:
            // a fresh page would have to be zeroed again). Should either fail, the number
            // stays taken rather than risk a stale report.
            file.release(|file| {
                let zeroed = file.write_all_at(&[0; HEADER_LEN], offset).is_ok();
                let freed = reach <= FIRST_PAGE
                    || file
                        .discard(offset + FIRST_PAGE, STRIDE - FIRST_PAGE)
                        .is_ok();
                tidied = zeroed && freed;
            });
            if tidied {
                self.free_number();
            }
        }
    }

    impl ResultSlot {
        fn free_number(&self) {
            let word = &self.arena.taken[self.index / 64];
            word.fetch_and(!(1u64 << (self.index % 64)), Ordering::Release);
        }
    }

    /// What a slot keeps between children: its first page, where small reports go.
    const FIRST_PAGE: u64 = 4096;

    /// A child's end of a slot: where its report goes.
    #[derive(Debug, Clone, Copy)]
    pub(crate) struct SlotWriter<'a> {
        file: &'a MemoryFile,
        offset: u64,
    }

    impl SlotWriter<'_> {
        /// Writes the child's whole report frame; never waits for the parent. The payload
        /// first, the length header last: a child killed while writing leaves no header (the
        /// slot's reads as zero until then), so its parent sees no report and the signal,
        /// never a frame whose tail is the zeros of a sparse file, which could decode as a
        /// value.
        // Inlined: a forked child runs it, and each 64 KiB window of code a child runs costs it a
        // page fault (fork does not copy the page tables of the program's text).
        #[inline]
        pub(crate) fn write(&self, frame: &[u8]) -> std::io::Result<()> {
            let (header, payload) = frame.split_at(HEADER_LEN.min(frame.len()));
            self.file
                .write_all_at(payload, self.offset + HEADER_LEN as u64)?;
            self.file.write_all_at(header, self.offset)
        }
    }

    #[cfg(test)]
    mod tests {
        #![allow(clippy::unwrap_used)] // In tests a failed unwrap is a failed test.

        use super::{HEADER_LEN, ResultSlot, codec};
        use crate::child_side::Report;

        #[test]
        fn a_payload_without_its_header_is_no_report() {
            let slot = ResultSlot::take(1 << 20).unwrap();
            let mut frame = Vec::new();
            codec::encode_frame(&Report::Returned(vec![7u8; 10_000]), &mut frame, 1 << 20).unwrap();
            // What a child killed after the payload, before the header, leaves: no report.
            let writer = slot.writer();
            writer
                .file
                .write_all_at(&frame[HEADER_LEN..], writer.offset + HEADER_LEN as u64)
                .unwrap();
            assert!(slot.read_report::<Vec<u8>>(1 << 20).is_none());
            // The whole write: the value.
            writer.write(&frame).unwrap();
            match slot.read_report::<Vec<u8>>(1 << 20) {
                Some(Ok(Report::Returned(value))) => assert_eq!(value, vec![7u8; 10_000]),
                other => panic!("the report read back as {other:?}"),
            }
        }
    }
}

/// No memory files here: every spawn takes the pipe road.
#[cfg(not(target_os = "linux"))]
mod elsewhere {
    use std::convert::Infallible;

    use serde::de::DeserializeOwned;

    use crate::child_side::Report;
    use crate::codec::CodecError;

    /// Never made off Linux.
    #[derive(Debug)]
    pub(crate) struct ResultSlot(Infallible);

    impl ResultSlot {
        pub(crate) fn take(_max_frame_len: usize) -> Option<ResultSlot> {
            None
        }

        pub(crate) fn writer(&self) -> SlotWriter<'_> {
            match self.0 {}
        }

        pub(crate) fn read_report<R: DeserializeOwned>(
            &self,
            _max_len: usize,
        ) -> Option<Result<Report<R>, CodecError>> {
            match self.0 {}
        }
    }

    /// As on Linux, dropping it releases it (never made here, so never run).
    impl Drop for ResultSlot {
        fn drop(&mut self) {
            match self.0 {}
        }
    }

    /// Never made off Linux.
    #[derive(Debug, Clone, Copy)]
    pub(crate) struct SlotWriter<'a>(Infallible, std::marker::PhantomData<&'a ()>);

    impl SlotWriter<'_> {
        pub(crate) fn write(&self, _frame: &[u8]) -> std::io::Result<()> {
            match self.0 {}
        }
    }
}
