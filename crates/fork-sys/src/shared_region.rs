//! A block of memory shared between processes, read and written only through atomics: the
//! ground proc-sync's queues, locks and shared values stand on.
//!
//! Everything in it is reached through `AtomicU32`/`AtomicU64` views of aligned words, byte
//! copies included ([`write_bytes`](SharedRegion::write_bytes) and
//! [`read_bytes`](SharedRegion::read_bytes) move relaxed 8-byte words), so two processes, or
//! two threads, touching the same bytes at once is a logic error of their protocol and never
//! undefined behaviour: the region is `Sync` and every method takes `&self`. Ordering between
//! the data and the control words is the protocol's business: publish with a release store
//! (or fence) after the copies, observe with an acquire load before them.

use std::io;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};
use std::ptr::NonNull;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::time::Duration;

use crate::shared_memory::{map_shared, memory_file};

/// Plain data: a `Copy` type with no pointers, no references, no padding and no invalid bit
/// patterns, so that any bytes read back from shared memory are a valid value of it, in this
/// process or another one.
///
/// Implemented for the integer and float types, and arrays of `Plain`.
///
/// # Safety
///
/// Implement it only for a type whose every bit pattern of `size_of::<Self>()` bytes is a
/// valid value (no `bool`, `char`, enums, references or pointers), with no padding bytes
/// (a `#[repr(C)]` struct whose fields are `Plain` and leave no gaps), and whose alignment
/// is at most 8.
pub unsafe trait Plain: Copy + Send + Sync + 'static {}

macro_rules! plain {
    ($($t:ty),*) => { $(
        // SAFETY: a primitive number: every bit pattern is a value, no padding, align <= 8.
        unsafe impl Plain for $t {}
    )* };
}
plain!(u8, u16, u32, u64, usize, i8, i16, i32, i64, isize, f32, f64);

// SAFETY: an array of plain values has no padding between elements (size is a multiple of
// align) and each element's every bit pattern is valid.
unsafe impl<T: Plain, const N: usize> Plain for [T; N] {}

/// A zero-filled block of memory shared with other processes: with the children this process
/// forks afterwards (the mapping is `MAP_SHARED`), and with any process that receives its
/// memory file ([`fd`](Self::fd), then [`attach`](Self::attach)) or opens it by name
/// ([`create_named`](Self::create_named), [`open_named`](Self::open_named)).
///
/// ```
/// use std::sync::atomic::Ordering;
/// use fork_sys::{ExitStatus, Fork, SharedRegion};
///
/// # fn main() -> std::io::Result<()> {
/// let region = SharedRegion::new(4096)?;
/// // SAFETY: the child only writes to shared memory and leaves with `_exit`.
/// match unsafe { fork_sys::fork()? } {
///     Fork::Child => {
///         region.write_bytes(8, b"hello");
///         region.u32(0).store(5, Ordering::Release);
///         fork_sys::exit_immediately(0);
///     }
///     Fork::Parent(child) => {
///         assert_eq!(fork_sys::wait(child)?, ExitStatus::Exited(0));
///         let len = region.u32(0).load(Ordering::Acquire) as usize;
///         let mut text = vec![0; len];
///         region.read_bytes(8, &mut text);
///         assert_eq!(text, b"hello");
///     }
/// }
/// # Ok(())
/// # }
/// ```
pub struct SharedRegion {
    base: NonNull<AtomicU64>,
    /// Length in bytes, a multiple of 8.
    len: usize,
    file: Option<OwnedFd>,
}

// SAFETY: the mapping is owned by this value alone (unmapped once, in `drop`), and is only
// ever accessed through atomics, so any thread may use it.
unsafe impl Send for SharedRegion {}
// SAFETY: as above: every access, byte copies included, is an atomic load or store.
unsafe impl Sync for SharedRegion {}

impl SharedRegion {
    /// An anonymous shared mapping of `len` bytes (rounded up to a multiple of 8, at least
    /// 8), zeroed: shared with the children this process forks afterwards, dropped by exec.
    pub fn new(len: usize) -> io::Result<SharedRegion> {
        let len = word_len(len)?;
        Ok(SharedRegion {
            base: map_shared(None, len)?.cast(),
            len,
            file: None,
        })
    }

    /// Like [`new`](Self::new), but backed by a memory file, close-on-exec, whose fd
    /// ([`fd`](Self::fd)) another process can [`attach`](Self::attach) (inherited, received by
    /// `SCM_RIGHTS`, or reopened through `/proc/PID/fd/N` on Linux). Linux: `memfd_create`,
    /// size sealed; elsewhere an unnamed (unlinked at once) POSIX shared memory object.
    pub fn new_shareable(len: usize) -> io::Result<SharedRegion> {
        let len = word_len(len)?;
        let file = memory_file::create()?;
        rustix::fs::ftruncate(&file, len as u64)?;
        memory_file::seal_size(&file)?;
        let base = map_shared(Some(file.as_fd()), len)?.cast();
        Ok(SharedRegion {
            base,
            len,
            file: Some(file),
        })
    }

    /// Maps the first `len` bytes (rounded up to a multiple of 8) of a memory file made by
    /// [`new_shareable`](Self::new_shareable) or [`create_named`](Self::create_named), and
    /// keeps `fd` (so [`fd`](Self::fd) can pass it on). A file shorter than `len` is
    /// `InvalidInput` naming both sizes, rather than a `SIGBUS` on first touch.
    pub fn attach(fd: OwnedFd, len: usize) -> io::Result<SharedRegion> {
        let len = word_len(len)?;
        let size = file_size(&fd)?;
        if size < len as u64 {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!(
                    "shared memory file holds {size} bytes, fewer than the {len} bytes expected"
                ),
            ));
        }
        let base = map_shared(Some(fd.as_fd()), len)?.cast();
        Ok(SharedRegion {
            base,
            len,
            file: Some(fd),
        })
    }

    /// Creates the POSIX shared memory object `name` (`/name`: one slash, then at most 30
    /// more bytes on macOS, 254 on Linux) of `len` bytes, zeroed, and maps it. Fails with
    /// `AlreadyExists` when the name is taken. The name outlives every process until
    /// [`unlink_named`](Self::unlink_named) removes it (the memory itself lives until the
    /// last mapping goes).
    ///
    /// # References
    ///  - [POSIX shm_open](https://pubs.opengroup.org/onlinepubs/9799919799/functions/shm_open.html)
    pub fn create_named(name: &str, len: usize) -> io::Result<SharedRegion> {
        use rustix::shm;
        let len = word_len(len)?;
        let file = shm::open(
            name,
            shm::OFlags::CREATE | shm::OFlags::EXCL | shm::OFlags::RDWR,
            rustix::fs::Mode::RUSR | rustix::fs::Mode::WUSR,
        )?;
        if let Err(err) = rustix::fs::ftruncate(&file, len as u64) {
            let _ = shm::unlink(name);
            return Err(err.into());
        }
        match map_shared(Some(file.as_fd()), len) {
            Ok(base) => Ok(SharedRegion {
                base: base.cast(),
                len,
                file: Some(file),
            }),
            Err(err) => {
                let _ = shm::unlink(name);
                Err(err)
            }
        }
    }

    /// Opens and maps the existing POSIX shared memory object `name`, all of it (its size is
    /// [`len`](Self::len), rounded down to a multiple of 8). `NotFound` when there is none.
    pub fn open_named(name: &str) -> io::Result<SharedRegion> {
        use rustix::shm;
        let file = shm::open(
            name,
            shm::OFlags::RDWR,
            rustix::fs::Mode::RUSR | rustix::fs::Mode::WUSR,
        )?;
        let size = file_size(&file)?;
        let len = usize::try_from(size).map_err(|_| {
            io::Error::new(
                io::ErrorKind::InvalidData,
                format!("shared memory {name:?} of {size} bytes does not fit in memory"),
            )
        })? & !7;
        if len == 0 {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                format!("shared memory {name:?} is empty"),
            ));
        }
        let base = map_shared(Some(file.as_fd()), len)?.cast();
        Ok(SharedRegion {
            base,
            len,
            file: Some(file),
        })
    }

    /// Removes the name of a POSIX shared memory object; mappings stay valid.
    pub fn unlink_named(name: &str) -> io::Result<()> {
        Ok(rustix::shm::unlink(name)?)
    }

    /// Closes the memory file (the mapping keeps the memory): for views that must not be
    /// reachable through a descriptor afterwards ([`SharedAtomics::attach`](crate::SharedAtomics::attach)).
    pub(crate) fn close_file(&mut self) {
        self.file = None;
    }

    /// The memory file behind the region, if it has one (not for [`new`](Self::new)).
    pub fn fd(&self) -> Option<BorrowedFd<'_>> {
        self.file.as_ref().map(AsFd::as_fd)
    }

    /// Length in bytes (a multiple of 8).
    pub fn len(&self) -> usize {
        self.len
    }

    /// Always false: a region holds at least one word.
    pub fn is_empty(&self) -> bool {
        false
    }

    #[inline]
    fn words(&self) -> &[AtomicU64] {
        // SAFETY: the mapping is `len` bytes, page-aligned, live as long as `self`; zeroed or
        // written only through atomics, and every bit pattern is a valid `AtomicU64`.
        unsafe { std::slice::from_raw_parts(self.base.as_ptr(), self.len / 8) }
    }

    /// The 32-bit word at byte `offset` (a multiple of 4), e.g. for [`futex_wait`].
    ///
    /// # Panics
    ///
    /// If `offset` is not a multiple of 4 or the word is not inside the region.
    #[inline]
    pub fn u32(&self, offset: usize) -> &AtomicU32 {
        assert!(
            offset % 4 == 0 && offset.checked_add(4).is_some_and(|end| end <= self.len),
            "32-bit word at byte {offset} of a {}-byte shared region",
            self.len
        );
        // SAFETY: in bounds and 4-aligned (checked; the mapping is page-aligned); shared
        // memory accessed only through atomics; the borrow cannot outlive the mapping.
        unsafe {
            &*self
                .base
                .as_ptr()
                .cast::<u8>()
                .add(offset)
                .cast::<AtomicU32>()
        }
    }

    /// The 64-bit word at byte `offset` (a multiple of 8).
    ///
    /// # Panics
    ///
    /// If `offset` is not a multiple of 8 or the word is not inside the region.
    #[inline]
    pub fn u64(&self, offset: usize) -> &AtomicU64 {
        assert!(
            offset % 8 == 0 && offset < self.len,
            "64-bit word at byte {offset} of a {}-byte shared region",
            self.len
        );
        &self.words()[offset / 8]
    }

    /// Copies `bytes` into the region at byte `offset` (relaxed stores; publish them with a
    /// release store of a control word afterwards).
    ///
    /// # Panics
    ///
    /// If the bytes do not fit inside the region.
    pub fn write_bytes(&self, offset: usize, bytes: &[u8]) {
        let end = self.check_range(offset, bytes.len());
        let words = self.words();
        let mut at = offset;
        let mut src = bytes;
        // A partial first word: merge.
        if at % 8 != 0 && !src.is_empty() {
            let take = (8 - at % 8).min(src.len());
            merge_into(&words[at / 8], at % 8, &src[..take]);
            at += take;
            src = &src[take..];
        }
        let whole = src.len() / 8;
        for (word, chunk) in words[at / 8..at / 8 + whole]
            .iter()
            .zip(src.chunks_exact(8))
        {
            let mut b = [0u8; 8];
            b.copy_from_slice(chunk);
            word.store(u64::from_ne_bytes(b), Ordering::Relaxed);
        }
        at += whole * 8;
        src = &src[whole * 8..];
        if !src.is_empty() {
            merge_into(&words[at / 8], 0, src);
        }
        debug_assert_eq!(at + src.len(), end);
    }

    /// Copies `buf.len()` bytes out of the region from byte `offset` (relaxed loads; load the
    /// control word that published them with acquire ordering first).
    ///
    /// # Panics
    ///
    /// If the bytes are not all inside the region.
    pub fn read_bytes(&self, offset: usize, buf: &mut [u8]) {
        self.check_range(offset, buf.len());
        let words = self.words();
        let mut at = offset;
        let mut dst = &mut buf[..];
        if at % 8 != 0 && !dst.is_empty() {
            let take = (8 - at % 8).min(dst.len());
            let b = words[at / 8].load(Ordering::Relaxed).to_ne_bytes();
            dst[..take].copy_from_slice(&b[at % 8..at % 8 + take]);
            at += take;
            dst = &mut dst[take..];
        }
        let whole = dst.len() / 8;
        for (word, chunk) in words[at / 8..at / 8 + whole]
            .iter()
            .zip(dst.chunks_exact_mut(8))
        {
            chunk.copy_from_slice(&word.load(Ordering::Relaxed).to_ne_bytes());
        }
        at += whole * 8;
        let rest = &mut dst[whole * 8..];
        if !rest.is_empty() {
            let b = words[at / 8].load(Ordering::Relaxed).to_ne_bytes();
            let n = rest.len();
            rest.copy_from_slice(&b[..n]);
        }
    }

    /// Stores a plain value at byte `offset` (a multiple of its alignment).
    ///
    /// # Panics
    ///
    /// If the value does not fit inside the region or `offset` is misaligned.
    pub fn write_plain<T: Plain>(&self, offset: usize, value: T) {
        assert!(
            offset % align_of::<T>() == 0,
            "offset {offset} is not a multiple of the alignment {}",
            align_of::<T>()
        );
        // SAFETY: `T: Plain` has no padding, so all its `size_of::<T>()` bytes are
        // initialized; the slice borrows `value` for this call only.
        let bytes =
            unsafe { std::slice::from_raw_parts((&raw const value).cast::<u8>(), size_of::<T>()) };
        self.write_bytes(offset, bytes);
    }

    /// Loads the plain value at byte `offset` (a multiple of its alignment).
    ///
    /// # Panics
    ///
    /// If the value is not inside the region or `offset` is misaligned.
    pub fn read_plain<T: Plain>(&self, offset: usize) -> T {
        assert!(
            offset % align_of::<T>() == 0,
            "offset {offset} is not a multiple of the alignment {}",
            align_of::<T>()
        );
        let mut value = std::mem::MaybeUninit::<T>::uninit();
        // SAFETY: the slice covers exactly the value's bytes, written below in full.
        let bytes = unsafe {
            std::slice::from_raw_parts_mut(value.as_mut_ptr().cast::<u8>(), size_of::<T>())
        };
        bytes.fill(0);
        self.read_bytes(offset, bytes);
        // SAFETY: every byte was written above, and `T: Plain` makes any bytes a valid value.
        unsafe { value.assume_init() }
    }

    fn check_range(&self, offset: usize, len: usize) -> usize {
        match offset.checked_add(len) {
            Some(end) if end <= self.len => end,
            _ => panic!(
                "{len} bytes at byte {offset} of a {}-byte shared region",
                self.len
            ),
        }
    }
}

fn merge_into(word: &AtomicU64, at: usize, src: &[u8]) {
    let mut b = word.load(Ordering::Relaxed).to_ne_bytes();
    b[at..at + src.len()].copy_from_slice(src);
    word.store(u64::from_ne_bytes(b), Ordering::Relaxed);
}

impl std::fmt::Debug for SharedRegion {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SharedRegion")
            .field("len", &self.len)
            .field("fd", &self.file.as_ref().map(AsRawFd::as_raw_fd))
            .finish_non_exhaustive()
    }
}

impl Drop for SharedRegion {
    fn drop(&mut self) {
        // SAFETY: unmaps exactly the mapping the constructor made; no borrow of it outlives
        // `self`. Other processes' mappings keep the pages alive.
        unsafe {
            libc::munmap(self.base.as_ptr().cast(), self.len);
        }
    }
}

fn word_len(len: usize) -> io::Result<usize> {
    len.max(8).checked_next_multiple_of(8).ok_or_else(|| {
        io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("a shared region of {len} bytes does not fit in memory"),
        )
    })
}

fn file_size(fd: &OwnedFd) -> io::Result<u64> {
    let size = rustix::fs::fstat(fd)?.st_size;
    u64::try_from(size).map_err(|_| io::Error::other(format!("negative file size {size}")))
}

/// Sleeps while `word` holds `expected`, until [`futex_wake`] on the same word (from any
/// process sharing it), or `timeout` (`None`: no limit). Returns at once if the word holds
/// another value. May return early (a signal, a spurious wake): callers look again.
///
/// Linux: `futex(FUTEX_WAIT)` on shared memory. Elsewhere it naps for at most a millisecond,
/// so waits are short polls there.
///
/// # References
///  - [Linux futex](https://man7.org/linux/man-pages/man2/futex.2.html)
pub fn futex_wait(word: &AtomicU32, expected: u32, timeout: Option<Duration>) {
    futex_impl::wait(word, expected, timeout);
}

/// Wakes up to `count` sleepers in [`futex_wait`] on `word` (`u32::MAX`: all of them);
/// returns how many were woken (always 0 off Linux, where sleepers poll).
pub fn futex_wake(word: &AtomicU32, count: u32) -> usize {
    // The kernel reads the count as a signed int: u32::MAX would arrive as -1 and wake one.
    futex_impl::wake(word, count.min(i32::MAX as u32))
}

#[cfg(any(target_os = "linux", target_os = "android"))]
mod futex_impl {
    use std::sync::atomic::AtomicU32;
    use std::time::Duration;

    use rustix::thread::futex;

    pub(super) fn wait(word: &AtomicU32, expected: u32, timeout: Option<Duration>) {
        let timeout = timeout.map(|t| rustix::time::Timespec {
            tv_sec: t.as_secs().min(i64::MAX as u64) as i64,
            tv_nsec: i64::from(t.subsec_nanos()),
        });
        // Shared (not private): the waker may be another process. EAGAIN, EINTR and
        // ETIMEDOUT all mean "look again", which the caller does.
        let _ = futex::wait(word, futex::Flags::empty(), expected, timeout.as_ref());
    }

    pub(super) fn wake(word: &AtomicU32, count: u32) -> usize {
        futex::wake(word, futex::Flags::empty(), count).unwrap_or(0)
    }
}

#[cfg(not(any(target_os = "linux", target_os = "android")))]
mod futex_impl {
    use std::sync::atomic::{AtomicU32, Ordering};
    use std::time::Duration;

    pub(super) fn wait(word: &AtomicU32, expected: u32, timeout: Option<Duration>) {
        if word.load(Ordering::SeqCst) == expected {
            let nap = Duration::from_millis(1);
            std::thread::sleep(timeout.map_or(nap, |t| t.min(nap)));
        }
    }

    pub(super) fn wake(_word: &AtomicU32, _count: u32) -> usize {
        0
    }
}

/// Whether process `pid` has ended: it no longer exists (`kill(pid, 0)` fails with `ESRCH`)
/// or, on Linux, it is a zombie waiting to be reaped. A live process, or one we may not
/// signal, is not gone. Used to notice that the holder of a shared lock died.
///
/// A pid can be reused after its process is reaped; callers that store pids accept that a
/// new process with the same pid looks alive.
pub fn process_is_gone(pid: u32) -> bool {
    let Ok(raw) = i32::try_from(pid) else {
        return true;
    };
    let Some(pid) = rustix::process::Pid::from_raw(raw) else {
        return true;
    };
    match rustix::process::test_kill_process(pid) {
        Err(rustix::io::Errno::SRCH) => true,
        _ => is_zombie(raw),
    }
}

#[cfg(target_os = "linux")]
fn is_zombie(pid: i32) -> bool {
    // `/proc/PID/stat` is "PID (COMM) STATE ...": COMM may hold spaces and parentheses, so
    // the state follows the last ')'.
    match std::fs::read(format!("/proc/{pid}/stat")) {
        Ok(stat) => stat
            .iter()
            .rposition(|&b| b == b')')
            .and_then(|close| stat.get(close + 2))
            .is_some_and(|&state| state == b'Z' || state == b'X'),
        Err(err) => err.kind() == io::ErrorKind::NotFound,
    }
}

#[cfg(not(target_os = "linux"))]
fn is_zombie(_pid: i32) -> bool {
    false
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{ExitStatus, Fork};

    #[test]
    fn bytes_round_trip_at_every_alignment_and_length() {
        let region = SharedRegion::new(256).unwrap();
        for offset in 0..17 {
            for len in 0..40 {
                let data: Vec<u8> = (0..len).map(|i| (i * 7 + offset + 1) as u8).collect();
                region.write_bytes(0, &[0xAA; 64]);
                region.write_bytes(offset, &data);
                let mut back = vec![0; len];
                region.read_bytes(offset, &mut back);
                assert_eq!(back, data, "offset {offset} len {len}");
                // The bytes around the copy are untouched.
                let mut all = [0u8; 64];
                region.read_bytes(0, &mut all);
                assert!(all[..offset].iter().all(|&b| b == 0xAA));
                assert!(all[offset + len..].iter().all(|&b| b == 0xAA));
            }
        }
    }

    #[test]
    fn plain_values_round_trip_and_reach_a_forked_child() {
        let region = SharedRegion::new_shareable(64).unwrap();
        region.write_plain(8, [1.5f64, -2.25]);
        // SAFETY: the child only uses the shared region and leaves with `_exit`.
        match unsafe { crate::fork().unwrap() } {
            Fork::Child => {
                let v: [f64; 2] = region.read_plain(8);
                region.write_plain(24, v[0] + v[1]);
                crate::exit_immediately(0);
            }
            Fork::Parent(child) => {
                assert_eq!(crate::wait(child).unwrap(), ExitStatus::Exited(0));
                assert_eq!(region.read_plain::<f64>(24), -0.75);
            }
        }
    }

    #[test]
    #[should_panic(expected = "9 bytes at byte 60 of a 64-byte shared region")]
    fn a_copy_past_the_end_panics_with_the_sizes() {
        SharedRegion::new(64).unwrap().write_bytes(60, &[0; 9]);
    }

    #[test]
    fn a_named_region_is_seen_by_name_and_gone_after_unlink() {
        let name = format!("/fork-sys-test-{}", std::process::id());
        let created = SharedRegion::create_named(&name, 100).unwrap();
        assert_eq!(created.len(), 104);
        assert_eq!(
            SharedRegion::create_named(&name, 8).unwrap_err().kind(),
            io::ErrorKind::AlreadyExists
        );
        let opened = SharedRegion::open_named(&name).unwrap();
        created.write_bytes(0, b"shared");
        let mut back = [0u8; 6];
        opened.read_bytes(0, &mut back);
        assert_eq!(&back, b"shared");
        SharedRegion::unlink_named(&name).unwrap();
        assert_eq!(
            SharedRegion::open_named(&name).unwrap_err().kind(),
            io::ErrorKind::NotFound
        );
    }

    #[test]
    fn a_futex_sleeper_in_a_child_is_woken_by_the_parent() {
        let region = SharedRegion::new(8).unwrap();
        // SAFETY: the child only sleeps on the futex and leaves with `_exit`.
        match unsafe { crate::fork().unwrap() } {
            Fork::Child => {
                while region.u32(0).load(Ordering::Acquire) == 0 {
                    futex_wait(region.u32(0), 0, Some(Duration::from_secs(5)));
                }
                crate::exit_immediately(0);
            }
            Fork::Parent(child) => {
                std::thread::sleep(Duration::from_millis(20));
                region.u32(0).store(1, Ordering::Release);
                futex_wake(region.u32(0), 1);
                assert_eq!(
                    crate::wait_timeout(child, Duration::from_secs(5)).unwrap(),
                    Some(ExitStatus::Exited(0))
                );
            }
        }
    }

    #[test]
    fn waking_u32_max_sleepers_wakes_every_one() {
        let region = SharedRegion::new(8).unwrap();
        let sleep = || {
            // SAFETY: the child only reads the clock, sleeps on the futex and leaves with
            // `_exit`; it exits 1 if its 20 s sleep ran out instead of being woken.
            match unsafe { crate::fork().unwrap() } {
                Fork::Child => {
                    let start = crate::monotonic_now();
                    while region.u32(0).load(Ordering::Acquire) == 0
                        && crate::monotonic_now() - start < Duration::from_secs(20)
                    {
                        futex_wait(region.u32(0), 0, Some(Duration::from_secs(20)));
                    }
                    let woken = crate::monotonic_now() - start < Duration::from_secs(20);
                    crate::exit_immediately(if woken { 0 } else { 1 });
                }
                Fork::Parent(child) => child,
            }
        };
        let children = [sleep(), sleep(), sleep()];
        std::thread::sleep(Duration::from_millis(100));
        region.u32(0).store(1, Ordering::Release);
        futex_wake(region.u32(0), u32::MAX);
        for child in children {
            assert_eq!(crate::wait(child).unwrap(), ExitStatus::Exited(0));
        }
    }

    #[test]
    fn a_dead_and_reaped_or_zombie_process_is_gone_and_a_live_one_is_not() {
        assert!(!process_is_gone(std::process::id()));
        // SAFETY: the child leaves at once with `_exit`.
        match unsafe { crate::fork().unwrap() } {
            Fork::Child => crate::exit_immediately(0),
            Fork::Parent(child) => {
                let raw = child.as_raw() as u32;
                std::thread::sleep(Duration::from_millis(50));
                if cfg!(target_os = "linux") {
                    assert!(process_is_gone(raw), "a zombie is gone");
                }
                crate::wait(child).unwrap();
                assert!(process_is_gone(raw));
            }
        }
    }
}
