//! A byte stream from one process to another through shared memory: a ring buffer with one
//! writer and one reader, whose bytes survive the writer's death.
//!
//! proc-pool's workers send their results through one: a result is in the parent's reach the
//! moment it is copied in, without a system call, and what a worker wrote before it crashed
//! is still there for the parent to read after the crash. No file descriptor leads to it (an
//! attached ring closes its memory file), so a task that writes garbage to every descriptor
//! of its process cannot inject bytes into it.

use std::io;
use std::os::fd::{AsFd, OwnedFd};
use std::ptr::NonNull;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::time::Duration;

use crate::shared_memory::{map_shared, memory_file};

/// Where the writer's position lives (bytes written, ever).
const HEAD_AT: usize = 0;
/// Where the reader's position lives (bytes read, ever), on a cache line of its own.
const TAIL_AT: usize = 64;
/// The word a writer waiting for room sleeps on (`futex` on Linux).
const WAITING_AT: usize = 128;
/// The data follow the header.
const DATA_AT: usize = 192;

/// A single-writer, single-reader byte ring in memory shared between processes.
///
/// One process writes ([`write_at`](Self::write_at), [`publish`](Self::publish)), another
/// reads ([`read`](Self::read), or `io::Read`), each through its own mapping: a fork's copy
/// ([`new`](Self::new)), or a mapping of the memory file ([`new_shareable`](Self::new_shareable)
/// and [`attach`](Self::attach)). Positions are byte counts since the start (`u64`, never
/// wrapping in practice); the writer owns `[head, tail + capacity)`, the reader `[tail,
/// head)`, and each position is stored with release and loaded with acquire ordering, so the
/// bytes behind a position are visible to whoever sees the position.
///
/// The writer may also write *beyond* what it has published (up to the free room) and
/// publish later: bytes written but not published are not read, but stay readable with
/// [`read_unpublished`](Self::read_unpublished) once the writer is gone.
///
/// Methods that move a position take `&mut self`: within one process, one thread writes and
/// one reads. The other process is outside Rust's view: the ring never hands out references
/// to its bytes, only copies them with `ptr::copy_nonoverlapping`, and a reader validates
/// both positions (a head behind the tail, or more than `capacity` ahead of it, is
/// `InvalidData`), so a writer that breaks the protocol (a wild memory write, say) can make
/// the reader see wrong bytes, never read outside the mapping.
///
/// ```
/// use fork_sys::{ExitStatus, Fork, SharedRing};
///
/// # fn main() -> std::io::Result<()> {
/// let mut ring = SharedRing::new(4096)?;
/// // SAFETY: the child only copies bytes into the ring and leaves with `_exit`.
/// match unsafe { fork_sys::fork()? } {
///     Fork::Child => {
///         let ok = ring.write_at(0, b"hello").is_ok();
///         ring.publish(5);
///         fork_sys::exit_immediately(if ok { 0 } else { 1 });
///     }
///     Fork::Parent(child) => {
///         assert_eq!(fork_sys::wait(child)?, ExitStatus::Exited(0));
///         let mut buf = [0u8; 16];
///         let n = ring.read(&mut buf)?;
///         assert_eq!(&buf[..n], b"hello");
///     }
/// }
/// # Ok(())
/// # }
/// ```
pub struct SharedRing {
    base: NonNull<u8>,
    capacity: usize,
    /// The writer's last look at the free room: a lower bound (the reader only ever frees
    /// more), so writes within it need no atomic load.
    known_free: usize,
}

// SAFETY: the mapping is owned by this value alone (unmapped once, in `drop`); the positions
// are atomics, and the data are only copied by `&mut self` methods (one thread at a time in
// this process) or `&self` reads of bytes no `&mut self` method of this process writes
// concurrently (see `read_unpublished`).
unsafe impl Send for SharedRing {}
// SAFETY: as above: `&self` methods only load atomics or copy bytes out.
unsafe impl Sync for SharedRing {}

/// The room the writer asked for is not free: `free` bytes are.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RingFull {
    /// Bytes free right now.
    pub free: usize,
}

impl std::fmt::Display for RingFull {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "the shared ring has only {} bytes free", self.free)
    }
}

impl std::error::Error for RingFull {}

impl SharedRing {
    /// An empty ring of `capacity` bytes (rounded up to a power of two, at least 64) in an
    /// anonymous shared mapping: this process and the children it forks afterwards share it.
    pub fn new(capacity: usize) -> io::Result<SharedRing> {
        let capacity = ring_capacity(capacity)?;
        let base = map_shared(None, DATA_AT + capacity)?;
        Ok(SharedRing {
            base,
            capacity,
            known_free: 0,
        })
    }

    /// An empty ring like [`new`](Self::new), backed by a memory file, and that file's fd, to
    /// pass to another process (`SCM_RIGHTS`), which maps it with [`attach`](Self::attach).
    /// Drop the fd once passed: the ring does not need it.
    pub fn new_shareable(capacity: usize) -> io::Result<(SharedRing, OwnedFd)> {
        let capacity = ring_capacity(capacity)?;
        let file = memory_file::create()?;
        rustix::fs::ftruncate(&file, (DATA_AT + capacity) as u64)?;
        memory_file::seal_size(&file)?;
        let base = map_shared(Some(file.as_fd()), DATA_AT + capacity)?;
        let ring = SharedRing {
            base,
            capacity,
            known_free: 0,
        };
        Ok((ring, file))
    }

    /// Maps the ring of `capacity` bytes (as given to the creator) in memory file `fd`, and
    /// closes `fd`: no descriptor of this process then leads to the ring. A file too short for
    /// that capacity is `InvalidInput`.
    pub fn attach(fd: OwnedFd, capacity: usize) -> io::Result<SharedRing> {
        let capacity = ring_capacity(capacity)?;
        let bytes = DATA_AT + capacity;
        let size = rustix::fs::fstat(&fd)?.st_size;
        if u64::try_from(size).map_or(true, |size| size < bytes as u64) {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("shared ring file holds {size} bytes, fewer than the {bytes} of its ring"),
            ));
        }
        let base = map_shared(Some(fd.as_fd()), bytes)?;
        drop(fd);
        Ok(SharedRing {
            base,
            capacity,
            known_free: 0,
        })
    }

    /// The ring's size in bytes.
    #[inline]
    pub fn capacity(&self) -> usize {
        self.capacity
    }

    #[inline]
    fn word(&self, at: usize) -> &AtomicU64 {
        // SAFETY: `at` is one of the header offsets above, 8-aligned in a page-aligned mapping
        // at least `DATA_AT` bytes long; every bit pattern is a valid `AtomicU64`; the header
        // is only accessed through atomics; the borrow cannot outlive `self`.
        unsafe { &*self.base.as_ptr().add(at).cast::<AtomicU64>() }
    }

    fn waiting(&self) -> &AtomicU32 {
        // SAFETY: as in `word`: `WAITING_AT` is 4-aligned, inside the header, atomics only.
        unsafe { &*self.base.as_ptr().add(WAITING_AT).cast::<AtomicU32>() }
    }

    /// Bytes published and not yet read (the reader's view). `InvalidData` when the positions
    /// make no sense (the writer broke the protocol).
    pub fn available(&self) -> io::Result<usize> {
        let head = self.word(HEAD_AT).load(Ordering::SeqCst);
        let tail = self.word(TAIL_AT).load(Ordering::Relaxed);
        self.span(tail, head)
    }

    /// `head - tail`, checked against the capacity.
    fn span(&self, tail: u64, head: u64) -> io::Result<usize> {
        match head.checked_sub(tail) {
            Some(used) if used <= self.capacity as u64 => Ok(used as usize),
            _ => Err(io::Error::new(
                io::ErrorKind::InvalidData,
                format!(
                    "shared ring positions out of order: head {head}, tail {tail}, capacity {}",
                    self.capacity
                ),
            )),
        }
    }

    /// The writer's position: bytes published since the start.
    pub fn head(&self) -> u64 {
        self.word(HEAD_AT).load(Ordering::Acquire)
    }

    /// Bytes the writer may write now (the writer's view): the capacity less what is
    /// published and unread.
    #[inline]
    pub fn free(&self) -> usize {
        let head = self.word(HEAD_AT).load(Ordering::Relaxed);
        let tail = self.word(TAIL_AT).load(Ordering::SeqCst);
        // A reader that moved its tail past the head broke the protocol: nothing is free.
        self.span(tail, head).map_or(0, |used| self.capacity - used)
    }

    /// Copies `bytes` into the ring at `offset` bytes past the head, without publishing them.
    /// Fails, writing nothing, unless `offset + bytes.len()` is free.
    #[inline]
    pub fn write_at(&mut self, offset: usize, bytes: &[u8]) -> Result<(), RingFull> {
        let Some(end) = offset.checked_add(bytes.len()) else {
            return Err(RingFull {
                free: self.known_free,
            });
        };
        if end > self.known_free {
            // Look again: the reader may have freed more since.
            self.known_free = self.free();
            if end > self.known_free {
                return Err(RingFull {
                    free: self.known_free,
                });
            }
        }
        let head = self.word(HEAD_AT).load(Ordering::Relaxed);
        let start = (head as usize).wrapping_add(offset) & (self.capacity - 1);
        let data = self.base.as_ptr().wrapping_add(DATA_AT);
        if start + bytes.len() <= self.capacity {
            // SAFETY: `start + len <= capacity`: the copy stays in the data area (`capacity`
            // bytes from `DATA_AT`); the room is free (`known_free` is a lower bound of the
            // free room), so the reader does not read it concurrently (see the type's docs);
            // `bytes` is not in the mapping (the mapping is only written through raw
            // pointers, never lent out).
            unsafe {
                std::ptr::copy_nonoverlapping(bytes.as_ptr(), data.add(start), bytes.len());
            }
        } else {
            let first = self.capacity - start;
            // SAFETY: as above, in two pieces: `first` bytes up to the end of the data area,
            // the rest (less than `start`, since `len <= capacity`) from its start.
            unsafe {
                std::ptr::copy_nonoverlapping(bytes.as_ptr(), data.add(start), first);
                std::ptr::copy_nonoverlapping(bytes.as_ptr().add(first), data, bytes.len() - first);
            }
        }
        Ok(())
    }

    /// The free room from `offset` bytes past the head, as one slice: up to the end of the
    /// ring's memory or of the free room, whichever comes first (the rest of the room, if
    /// any, is at the start of the memory: [`write_at`](Self::write_at) reaches it). Empty
    /// when `offset` is past the free room. For an encoder that writes in place.
    #[inline]
    pub fn free_slice(&mut self, offset: usize) -> &mut [u8] {
        if offset >= self.known_free {
            self.known_free = self.free();
        }
        let Some(room) = self.known_free.checked_sub(offset) else {
            return &mut [];
        };
        let head = self.word(HEAD_AT).load(Ordering::Relaxed);
        let start = (head as usize).wrapping_add(offset) & (self.capacity - 1);
        let len = room.min(self.capacity - start);
        // SAFETY: `start + len <= capacity`: the slice lies in the data area; it is free room
        // (`known_free` is a lower bound of it), which the reader never touches, and it is
        // borrowed from `&mut self`, so nothing else in this process touches it while it
        // lives; any byte pattern is a valid `u8`.
        unsafe { std::slice::from_raw_parts_mut(self.base.as_ptr().add(DATA_AT + start), len) }
    }

    /// Makes the next `len` bytes written readable. `len` is capped at the free room.
    pub fn publish(&mut self, len: usize) {
        if len > self.known_free {
            self.known_free = self.free();
        }
        let len = len.min(self.known_free);
        self.known_free -= len;
        let head = self.word(HEAD_AT).load(Ordering::Relaxed);
        self.word(HEAD_AT)
            .store(head + len as u64, Ordering::SeqCst);
    }

    /// Writes and publishes as much of `bytes` as is free; returns how much.
    pub fn write(&mut self, bytes: &[u8]) -> usize {
        self.known_free = self.free();
        let len = bytes.len().min(self.known_free);
        if self.write_at(0, &bytes[..len]).is_ok() {
            self.publish(len);
            len
        } else {
            0
        }
    }

    /// The writer: waits until at least `wanted` bytes are free (at most the capacity), or
    /// `timeout`; returns whether they are. On Linux it sleeps on a futex the reader wakes
    /// when it reads; elsewhere it naps in steps of at most a millisecond.
    pub fn wait_for_free(&self, wanted: usize, timeout: Duration) -> bool {
        let wanted = wanted.min(self.capacity);
        let deadline = crate::monotonic_now().saturating_add(timeout);
        loop {
            if self.free() >= wanted {
                return true;
            }
            let now = crate::monotonic_now();
            if now >= deadline {
                return false;
            }
            // Say we wait, then look again: a reader that read in between sees the flag
            // (both sides use sequentially consistent operations) and wakes us.
            self.waiting().store(1, Ordering::SeqCst);
            if self.free() >= wanted {
                self.waiting().store(0, Ordering::Relaxed);
                return true;
            }
            sleep_while_waiting(self.waiting(), deadline - now);
        }
    }

    /// The reader: copies up to `buf.len()` published bytes out and moves the tail past
    /// them; wakes a writer waiting for room. `WouldBlock` when nothing is published;
    /// `InvalidData` when the positions make no sense.
    pub fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let available = self.available()?;
        if available == 0 {
            return Err(io::ErrorKind::WouldBlock.into());
        }
        let tail = self.word(TAIL_AT).load(Ordering::Relaxed);
        let len = buf.len().min(available);
        self.copy_out(tail, &mut buf[..len]);
        self.word(TAIL_AT)
            .store(tail + len as u64, Ordering::SeqCst);
        if self.waiting().swap(0, Ordering::SeqCst) != 0 {
            wake_writer(self.waiting());
        }
        Ok(len)
    }

    /// After the writer is gone (exited, killed): the `len` bytes it wrote past its head
    /// without publishing them, appended to `out`. `InvalidData` if `len` is more than the
    /// room there was, or the positions make no sense. Reading this while the writer runs
    /// gives bytes it may be changing: only the protocol above this ring can say whether
    /// that matters.
    pub fn read_unpublished(&self, len: usize, out: &mut Vec<u8>) -> io::Result<()> {
        let head = self.word(HEAD_AT).load(Ordering::Acquire);
        let tail = self.word(TAIL_AT).load(Ordering::Relaxed);
        let used = self.span(tail, head)?;
        if len > self.capacity - used {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                format!(
                    "{len} unpublished bytes claimed, but only {} were free",
                    self.capacity - used
                ),
            ));
        }
        let at = out.len();
        out.resize(at + len, 0);
        self.copy_out(head, &mut out[at..]);
        Ok(())
    }

    /// Copies `buf.len()` (at most the capacity) bytes starting at position `from`.
    fn copy_out(&self, from: u64, buf: &mut [u8]) {
        let len = buf.len().min(self.capacity);
        let start = (from as usize) & (self.capacity - 1);
        let first = len.min(self.capacity - start);
        // SAFETY: `start < capacity`, `first <= capacity - start` and `len - first <= start`,
        // so both copies stay in the data area; `buf` is private memory of this process, not
        // in the mapping. The bytes are the reader's (published, unread) or the writer's after
        // it is gone; a writer breaking the protocol can only change what is copied.
        unsafe {
            let data = self.base.as_ptr().add(DATA_AT);
            std::ptr::copy_nonoverlapping(data.add(start), buf.as_mut_ptr(), first);
            std::ptr::copy_nonoverlapping(data, buf.as_mut_ptr().add(first), len - first);
        }
    }
}

impl io::Read for SharedRing {
    /// [`SharedRing::read`]: `WouldBlock` when nothing is published, like a non-blocking pipe.
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        SharedRing::read(self, buf)
    }
}

impl std::fmt::Debug for SharedRing {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SharedRing")
            .field("capacity", &self.capacity)
            .field("head", &self.word(HEAD_AT).load(Ordering::Relaxed))
            .field("tail", &self.word(TAIL_AT).load(Ordering::Relaxed))
            .finish()
    }
}

impl Drop for SharedRing {
    fn drop(&mut self) {
        // SAFETY: unmaps exactly the mapping the constructor made (`DATA_AT + capacity` bytes);
        // no borrow of it can outlive `self`.
        unsafe {
            libc::munmap(self.base.as_ptr().cast(), DATA_AT + self.capacity);
        }
    }
}

/// `capacity` rounded up to a power of two, at least 64.
fn ring_capacity(capacity: usize) -> io::Result<usize> {
    capacity
        .max(64)
        .checked_next_power_of_two()
        .filter(|c| c.checked_add(DATA_AT).is_some())
        .ok_or_else(|| {
            io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("a shared ring of {capacity} bytes does not fit in memory"),
            )
        })
}

/// Sleeps until the reader clears `waiting` (and wakes us), or about `timeout`.
#[cfg(any(target_os = "linux", target_os = "android"))]
fn sleep_while_waiting(waiting: &AtomicU32, timeout: Duration) {
    use rustix::thread::futex;
    let timeout = rustix::time::Timespec {
        tv_sec: timeout.as_secs().min(i64::MAX as u64) as i64,
        tv_nsec: i64::from(timeout.subsec_nanos()),
    };
    // Shared (not private): the reader is another process. EAGAIN (the flag changed already),
    // EINTR and ETIMEDOUT all mean "look again", which the caller does.
    let _ = futex::wait(waiting, futex::Flags::empty(), 1, Some(&timeout));
}

#[cfg(any(target_os = "linux", target_os = "android"))]
fn wake_writer(waiting: &AtomicU32) {
    use rustix::thread::futex;
    let _ = futex::wake(waiting, futex::Flags::empty(), 1);
}

/// Without a futex across processes: nap briefly, then look again.
#[cfg(not(any(target_os = "linux", target_os = "android")))]
fn sleep_while_waiting(waiting: &AtomicU32, timeout: Duration) {
    if waiting.load(Ordering::SeqCst) != 0 {
        std::thread::sleep(timeout.min(Duration::from_millis(1)));
    }
}

#[cfg(not(any(target_os = "linux", target_os = "android")))]
fn wake_writer(_waiting: &AtomicU32) {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bytes_wrap_around_the_end_and_come_out_in_order() {
        let mut ring = SharedRing::new(64).unwrap();
        let mut buf = [0u8; 64];
        for round in 0u8..20 {
            let chunk: Vec<u8> = (0..40)
                .map(|i| round.wrapping_mul(7).wrapping_add(i))
                .collect();
            assert_eq!(ring.write(&chunk), 40);
            assert_eq!(ring.free(), 24);
            let n = ring.read(&mut buf).unwrap();
            assert_eq!(&buf[..n], &chunk[..]);
        }
        assert_eq!(
            ring.read(&mut buf).unwrap_err().kind(),
            io::ErrorKind::WouldBlock
        );
    }

    #[test]
    fn a_write_past_the_free_room_is_refused_whole() {
        let mut ring = SharedRing::new(64).unwrap();
        assert_eq!(ring.write(&[1; 50]), 50);
        assert_eq!(ring.write_at(10, &[2; 5]), Err(RingFull { free: 14 }));
        assert_eq!(ring.write_at(9, &[2; 5]), Ok(()));
        // Unpublished bytes are not read.
        let mut buf = [0u8; 64];
        assert_eq!(ring.read(&mut buf).unwrap(), 50);
        assert_eq!(
            ring.read(&mut buf).unwrap_err().kind(),
            io::ErrorKind::WouldBlock
        );
    }

    #[test]
    fn unpublished_bytes_are_readable_after_the_fact() {
        let mut ring = SharedRing::new(64).unwrap();
        assert_eq!(ring.write(&[9; 60]), 60);
        let mut buf = [0u8; 64];
        assert_eq!(ring.read(&mut buf).unwrap(), 60);
        ring.write_at(0, b"abcdefgh").unwrap(); // wraps at 64
        let mut out = vec![0xff];
        ring.read_unpublished(8, &mut out).unwrap();
        assert_eq!(out, b"\xffabcdefgh");
        let err = ring.read_unpublished(65, &mut out).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::InvalidData);
    }

    #[test]
    fn a_corrupt_head_is_invalid_data_not_a_wild_read() {
        let mut ring = SharedRing::new(64).unwrap();
        ring.word(HEAD_AT).store(1 << 40, Ordering::SeqCst);
        let mut buf = [0u8; 8];
        assert_eq!(
            ring.read(&mut buf).unwrap_err().kind(),
            io::ErrorKind::InvalidData
        );
        assert_eq!(ring.free(), 0);
    }

    #[test]
    fn a_writer_waiting_for_room_is_woken_by_a_read() {
        let mut ring = SharedRing::new(64).unwrap();
        assert_eq!(ring.write(&[1; 64]), 64);
        assert!(!ring.wait_for_free(1, Duration::from_millis(5)));
        // SAFETY: the child only loads atomics, sleeps on the futex and leaves with `_exit`.
        match unsafe { crate::fork().unwrap() } {
            crate::Fork::Child => {
                let woke = ring.wait_for_free(16, Duration::from_secs(20));
                crate::exit_immediately(if woke { 0 } else { 1 });
            }
            crate::Fork::Parent(child) => {
                std::thread::sleep(Duration::from_millis(20));
                let mut buf = [0u8; 32];
                assert_eq!(ring.read(&mut buf).unwrap(), 32);
                assert_eq!(crate::wait(child).unwrap(), crate::ExitStatus::Exited(0));
            }
        }
    }
}
