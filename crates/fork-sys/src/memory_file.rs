//! An anonymous file in memory that forked children inherit, written and read at offsets:
//! where proc-core's forked children leave their reports (Linux).

use std::cell::UnsafeCell;
use std::ffi::CStr;
use std::io;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::sync::{Mutex, PoisonError};

use rustix::fs::{FallocateFlags, MemfdFlags};

/// An anonymous file in memory (`memfd_create`, close-on-exec): the children this process forks
/// afterwards inherit it, programs they exec do not. It is sparse: a write at any offset
/// takes memory only for the pages it fills, and [`discard`](Self::discard) gives them back.
///
/// Unlike a pipe, it holds what a process wrote after that process has exited, and the
/// writer never waits for a reader: a forked child writes its result at an offset that its
/// parent gave it and exits; the parent reads it back after reaping the child.
///
/// ```
/// use fork_sys::{ExitStatus, Fork, MemoryFile};
///
/// # fn main() -> std::io::Result<()> {
/// let file = MemoryFile::new(c"example")?;
/// // SAFETY: the child only writes to the file and leaves with `_exit`.
/// match unsafe { fork_sys::fork()? } {
///     Fork::Child => {
///         let code = i32::from(file.write_all_at(b"hello", 1 << 30).is_err());
///         fork_sys::exit_immediately(code);
///     }
///     Fork::Parent(child) => {
///         assert_eq!(fork_sys::wait(child)?, ExitStatus::Exited(0));
///         let mut text = [0u8; 5];
///         assert_eq!(file.read_at(&mut text, 1 << 30)?, 5);
///         assert_eq!(&text, b"hello");
///         file.discard(1 << 30, 5)?;
///         assert_eq!(file.read_at(&mut text, 1 << 30)?, 5);
///         assert_eq!(text, [0; 5]);
///     }
/// }
/// # Ok(())
/// # }
/// ```
///
/// # References
///  - [Linux memfd_create](https://man7.org/linux/man-pages/man2/memfd_create.2.html)
///  - [POSIX pwrite](https://pubs.opengroup.org/onlinepubs/9799919799/functions/pwrite.html)
///  - [Linux fallocate](https://man7.org/linux/man-pages/man2/fallocate.2.html)
#[derive(Debug)]
pub struct MemoryFile {
    file: OwnedFd,
}

impl MemoryFile {
    /// A new, empty file; `name` is what `/proc/PID/fd` shows for it (`/memfd:<name>`).
    pub fn new(name: &CStr) -> io::Result<MemoryFile> {
        let file = rustix::fs::memfd_create(name, MemfdFlags::CLOEXEC)?;
        Ok(MemoryFile { file })
    }

    /// The largest size a process may give a file (`RLIMIT_FSIZE`), `None` when unlimited. A
    /// write past it fails with `EFBIG` after the kernel has sent the writer `SIGXFSZ`, whose
    /// default action ends the process: keep offsets below it.
    ///
    /// # References
    ///  - [POSIX getrlimit](https://pubs.opengroup.org/onlinepubs/9799919799/functions/getrlimit.html)
    pub fn size_limit() -> Option<u64> {
        rustix::process::getrlimit(rustix::process::Resource::Fsize).current
    }

    /// Writes all of `bytes` at `offset` (`pwrite`, retried on a short write or `EINTR`); the
    /// file grows as needed. Makes no use of libc, so a forked child touches no code of libc's
    /// for it (each 64 KiB window of code a forked child runs costs it a page fault).
    #[inline]
    pub fn write_all_at(&self, mut bytes: &[u8], mut offset: u64) -> io::Result<()> {
        while !bytes.is_empty() {
            match crate::retry_eintr(|| rustix::io::pwrite(&self.file, bytes, offset))? {
                0 => return Err(io::ErrorKind::WriteZero.into()),
                written => {
                    bytes = bytes.get(written..).unwrap_or_default();
                    offset += written as u64;
                }
            }
        }
        Ok(())
    }

    /// Reads into `buf` from `offset` (one `pread`, retried on `EINTR`); how many bytes it
    /// read, fewer than `buf.len()` only where the file ends. Bytes never written, or
    /// discarded, read as zeros.
    pub fn read_at(&self, buf: &mut [u8], offset: u64) -> io::Result<usize> {
        crate::retry_eintr(|| rustix::io::pread(&self.file, &mut *buf, offset))
    }

    /// Fills `buf` from `offset`; `UnexpectedEof` if the file ends first.
    pub fn read_exact_at(&self, mut buf: &mut [u8], mut offset: u64) -> io::Result<()> {
        while !buf.is_empty() {
            match self.read_at(buf, offset)? {
                0 => return Err(io::ErrorKind::UnexpectedEof.into()),
                got => {
                    buf = &mut buf[got..];
                    offset += got as u64;
                }
            }
        }
        Ok(())
    }

    /// Gives back the memory of `len` bytes from `offset` (`fallocate` with
    /// `FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE`): they read as zeros afterwards, and the
    /// file keeps its size.
    pub fn discard(&self, offset: u64, len: u64) -> io::Result<()> {
        if len == 0 {
            return Ok(());
        }
        Ok(rustix::fs::fallocate(
            &self.file,
            FallocateFlags::PUNCH_HOLE | FallocateFlags::KEEP_SIZE,
            offset,
            len,
        )?)
    }
}

impl AsFd for MemoryFile {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.file.as_fd()
    }
}

/// A [`MemoryFile`] made when its first user [`hold`](Self::hold)s it and closed, memory and
/// all, when its last lets go: a process that uses it only now and then keeps no descriptor
/// open in between. It can live in a `static` (`new` is `const`), and holding and letting go
/// write only inside it (a lock word and a count), not to the heap: a parent that forks
/// between the two writes to no page but this one (every page a parent writes after a fork
/// is a page fault).
///
/// A forked child inherits the value with whatever file its parent held, still open in the
/// child: a child should use its parent's file only through holds made before the fork, and
/// keep its own files elsewhere.
#[derive(Debug)]
pub struct SharedMemoryFile {
    name: &'static CStr,
    /// How many holds there are; the file is `Some` exactly while it is not 0.
    holds: Mutex<usize>,
    file: UnsafeCell<Option<MemoryFile>>,
}

// SAFETY: `file` is written only under `holds`' lock, when the count goes from 0 to 1 (made)
// or from 1 to 0 (taken away); it is read only through a `MemoryFileHold`, whose existence
// keeps the count above 0, so never while it is written.
unsafe impl Sync for SharedMemoryFile {}

impl SharedMemoryFile {
    /// No file yet; `name` is what `/proc/PID/fd` will show for it (`/memfd:<name>`).
    pub const fn new(name: &'static CStr) -> SharedMemoryFile {
        SharedMemoryFile {
            name,
            holds: Mutex::new(0),
            file: UnsafeCell::new(None),
        }
    }

    /// A hold on the file, made now if no one holds it.
    pub fn hold(&self) -> io::Result<MemoryFileHold<'_>> {
        let mut holds = self.holds.lock().unwrap_or_else(PoisonError::into_inner);
        if *holds == 0 {
            let file = MemoryFile::new(self.name)?;
            // SAFETY: the count is 0 and we hold its lock: no `MemoryFileHold` exists, so
            // nothing reads `file`, and no one else writes it.
            unsafe { *self.file.get() = Some(file) };
        }
        *holds += 1;
        Ok(MemoryFileHold { shared: self })
    }

    /// Counts one hold less, closing the file if that was the last; with `only_if_last`, only
    /// if it was the last (false otherwise, and nothing changes). One critical section, so no
    /// hold is made between the count reaching 0 and the file closing.
    fn let_go(&self, only_if_last: bool) -> bool {
        let mut holds = self.holds.lock().unwrap_or_else(PoisonError::into_inner);
        if only_if_last && *holds != 1 {
            return false;
        }
        *holds -= 1;
        if *holds == 0 {
            // SAFETY: the count is 0 and we hold its lock: that was the last hold, so nothing
            // reads `file`, and no one else writes it.
            let file = unsafe { (*self.file.get()).take() };
            drop(holds);
            drop(file);
        }
        true
    }

    /// Whether any hold exists (and so the file is open).
    pub fn is_held(&self) -> bool {
        *self.holds.lock().unwrap_or_else(PoisonError::into_inner) > 0
    }
}

/// A hold on a [`SharedMemoryFile`]: the file stays open while it lives. Dereferences to the
/// [`MemoryFile`].
#[derive(Debug)]
pub struct MemoryFileHold<'a> {
    shared: &'a SharedMemoryFile,
}

impl MemoryFileHold<'_> {
    /// Lets go of the file, running `tidy` on it first unless this is the last hold, in
    /// which case the file is closed at once (its memory with it) and nothing need be tidied:
    /// a hold made afterwards gets a new, empty file, never this one.
    pub fn release(self, tidy: impl FnOnce(&MemoryFile)) {
        if self.shared.let_go(true) {
            // Let go already: its drop would count it a second time.
            std::mem::forget(self);
            return;
        }
        tidy(&self);
        // Dropping `self` lets go (and closes the file if the others let go meanwhile).
    }
}

impl std::ops::Deref for MemoryFileHold<'_> {
    type Target = MemoryFile;

    // Inlined: a forked child reaches its report's file through it, and each 64 KiB window of
    // code a forked child runs costs it a page fault.
    #[inline]
    fn deref(&self) -> &MemoryFile {
        // SAFETY: this hold keeps the count above 0, so the file was made and is not taken
        // away or replaced while it lives (see `SharedMemoryFile`'s `Sync`).
        match unsafe { &*self.shared.file.get() } {
            Some(file) => file,
            None => unreachable!("a held shared memory file is open"),
        }
    }
}

impl Drop for MemoryFileHold<'_> {
    fn drop(&mut self) {
        self.shared.let_go(false);
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)] // In tests a failed unwrap is a failed test.

    use std::os::fd::{AsFd, AsRawFd};

    use super::*;

    #[test]
    fn the_file_lives_from_the_first_hold_to_the_last_release() {
        static SHARED: SharedMemoryFile = SharedMemoryFile::new(c"fork-sys-test");
        assert!(!SHARED.is_held());
        let first = SHARED.hold().unwrap();
        let second = SHARED.hold().unwrap();
        // One file for both.
        assert_eq!(first.as_fd().as_raw_fd(), second.as_fd().as_raw_fd());
        first.write_all_at(b"kept", 4096).unwrap();
        let mut tidied = false;
        first.release(|file| {
            tidied = true;
            let mut back = [0u8; 4];
            assert_eq!(file.read_at(&mut back, 4096).unwrap(), 4);
            assert_eq!(&back, b"kept");
        });
        assert!(tidied, "a release that is not the last tidies");
        assert!(SHARED.is_held());
        let path = format!("/proc/self/fd/{}", second.as_fd().as_raw_fd());
        let mut last_tidied = false;
        second.release(|_| last_tidied = true);
        assert!(!last_tidied, "the last release closes instead of tidying");
        assert!(!SHARED.is_held());
        assert!(
            std::fs::read_link(&path).map_or(true, |target| !target
                .to_string_lossy()
                .contains("fork-sys-test")),
            "the file is still open after the last release"
        );
        // A new hold: a new, empty file.
        let third = SHARED.hold().unwrap();
        let mut back = [0u8; 4];
        assert_eq!(third.read_at(&mut back, 4096).unwrap(), 0);
    }
}
