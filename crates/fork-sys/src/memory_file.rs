//! An anonymous file in memory that forked children inherit, written and read at offsets:
//! where proc-core's forked children leave their reports (Linux).

use std::ffi::CStr;
use std::io;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};

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
