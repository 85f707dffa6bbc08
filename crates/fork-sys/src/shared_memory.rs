//! Atomic counters that a parent and its forked children all see: an anonymous `MAP_SHARED`
//! mapping, which `fork` shares instead of copying; or, for processes that are not forks of
//! the creator (a fork server's children), a mapping of a memory file whose fd travels to them.

use std::io;
use std::os::fd::{AsRawFd, BorrowedFd, OwnedFd};
use std::ptr::NonNull;
use std::sync::atomic::AtomicU64;

use crate::shared_region::SharedRegion;

/// A fixed array of [`AtomicU64`] in memory shared with every child forked after it was
/// created. A store in one process is seen by the others, with the usual atomic orderings.
///
/// proc-pool uses one per worker: the worker stores which task it is starting, so that when
/// it dies the parent knows exactly which task killed it, without a message per task.
///
/// ```
/// use std::sync::atomic::Ordering;
/// use fork_sys::{ExitStatus, Fork, SharedAtomics};
///
/// # fn main() -> std::io::Result<()> {
/// let shared = SharedAtomics::new(1)?;
/// // SAFETY: the child only stores to an atomic and leaves with `_exit`.
/// match unsafe { fork_sys::fork()? } {
///     Fork::Child => {
///         shared.get(0).store(42, Ordering::Release);
///         fork_sys::exit_immediately(0);
///     }
///     Fork::Parent(child) => {
///         assert_eq!(fork_sys::wait(child)?, ExitStatus::Exited(0));
///         assert_eq!(shared.get(0).load(Ordering::Acquire), 42);
///     }
/// }
/// # Ok(())
/// # }
/// ```
pub struct SharedAtomics {
    /// `len` counters, 8 bytes each: a view of a [`SharedRegion`], which owns the mapping.
    region: SharedRegion,
    len: usize,
}

impl SharedAtomics {
    /// Maps `len` zeroed counters (`len` of 0 is taken as 1). The mapping is private to this
    /// process and its future forked children; exec drops it.
    pub fn new(len: usize) -> io::Result<SharedAtomics> {
        let len = len.max(1);
        Ok(SharedAtomics {
            region: SharedRegion::new(byte_len(len)?)?,
            len,
        })
    }

    /// Like [`new`](Self::new) (zeroed, `len` of 0 taken as 1), but backed by a memory file
    /// that another process can map with [`attach`](Self::attach) once it has the fd
    /// ([`fd`](Self::fd)), received by `SCM_RIGHTS` ([`send_with_fds`](crate::send_with_fds))
    /// or inherited. Linux: `memfd_create` with `MFD_CLOEXEC`, size sealed; elsewhere
    /// `shm_open` of a fresh random name with `O_EXCL`, unlinked at once, so no name outlives
    /// this call.
    ///
    /// # References
    ///  - [Linux memfd_create](https://man7.org/linux/man-pages/man2/memfd_create.2.html)
    ///  - [POSIX shm_open](https://pubs.opengroup.org/onlinepubs/9799919799/functions/shm_open.html)
    ///  - [POSIX ftruncate](https://pubs.opengroup.org/onlinepubs/9799919799/functions/ftruncate.html)
    ///  - [POSIX mmap](https://pubs.opengroup.org/onlinepubs/9799919799/functions/mmap.html)
    pub fn new_shareable(len: usize) -> io::Result<SharedAtomics> {
        let len = len.max(1);
        Ok(SharedAtomics {
            region: SharedRegion::new_shareable(byte_len(len)?)?,
            len,
        })
    }

    /// Maps the `len` counters (0 taken as 1) of a memory file made by
    /// [`new_shareable`](Self::new_shareable), in this or another process: stores through
    /// either mapping are seen through the other. Takes `fd` and closes it once mapped (the
    /// mapping keeps the memory alive): code running later in this process cannot reach the
    /// counters through a stray `write(2)` to that descriptor, and [`fd`](Self::fd) is then
    /// `None`. A file shorter than `len` counters (`fstat`) is `InvalidInput` naming both
    /// sizes, rather than a `SIGBUS` on first touch.
    ///
    /// # References
    ///  - [POSIX fstat](https://pubs.opengroup.org/onlinepubs/9799919799/functions/fstat.html)
    ///  - [POSIX mmap](https://pubs.opengroup.org/onlinepubs/9799919799/functions/mmap.html)
    pub fn attach(fd: OwnedFd, len: usize) -> io::Result<SharedAtomics> {
        let len = len.max(1);
        let mut region = SharedRegion::attach(fd, byte_len(len)?)?;
        region.close_file();
        Ok(SharedAtomics { region, len })
    }

    /// The memory file behind an array made by [`new_shareable`](Self::new_shareable), to pass
    /// to another process; `None` for [`new`](Self::new)'s anonymous mapping, which only forked
    /// children can share, and for an [`attach`](Self::attach)ed one, whose fd was closed.
    pub fn fd(&self) -> Option<BorrowedFd<'_>> {
        self.region.fd()
    }

    /// How many counters there are.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Always false: there is at least one counter.
    pub fn is_empty(&self) -> bool {
        false
    }

    /// The counter at `index`.
    ///
    /// # Panics
    ///
    /// If `index >= self.len()`.
    pub fn get(&self, index: usize) -> &AtomicU64 {
        assert!(
            index < self.len,
            "counter {index} of {} shared counters",
            self.len
        );
        self.region.u64(index * size_of::<AtomicU64>())
    }
}

impl std::fmt::Debug for SharedAtomics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SharedAtomics")
            .field("len", &self.len)
            .field("fd", &self.fd().map(|fd| fd.as_raw_fd()))
            .finish_non_exhaustive()
    }
}

/// The size in bytes of `len` counters, or an error when it does not fit a `usize`.
fn byte_len(len: usize) -> io::Result<usize> {
    len.checked_mul(size_of::<AtomicU64>()).ok_or_else(|| {
        io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("{len} shared counters do not fit in memory"),
        )
    })
}

/// Maps `bytes` shared, readable and writable: anonymous memory, or the start of `file`. The
/// mapping is page-aligned.
pub(crate) fn map_shared(file: Option<BorrowedFd<'_>>, bytes: usize) -> io::Result<NonNull<u8>> {
    let (flags, fd) = match file {
        Some(file) => (libc::MAP_SHARED, file.as_raw_fd()),
        None => (libc::MAP_SHARED | libc::MAP_ANONYMOUS, -1),
    };
    // SAFETY: a fresh mapping at an address of the kernel's choosing touches no existing
    // memory; a file mapping's fd is borrowed for the call (the mapping keeps its own reference
    // to the file); the result is checked before use.
    let addr = unsafe {
        libc::mmap(
            std::ptr::null_mut(),
            bytes,
            libc::PROT_READ | libc::PROT_WRITE,
            flags,
            fd,
            0,
        )
    };
    if addr == libc::MAP_FAILED {
        return Err(io::Error::last_os_error());
    }
    NonNull::new(addr.cast::<u8>()).ok_or_else(|| io::Error::other("mmap returned a null mapping"))
}

/// The one platform split of this module: an anonymous memory file, close-on-exec.
#[cfg(any(target_os = "linux", target_os = "android"))]
pub(crate) mod memory_file {
    use std::io;
    use std::os::fd::OwnedFd;

    use rustix::fs::MemfdFlags;

    pub(crate) fn create() -> io::Result<OwnedFd> {
        Ok(rustix::fs::memfd_create(
            c"fork-sys-shared-atomics",
            MemfdFlags::CLOEXEC | MemfdFlags::ALLOW_SEALING,
        )?)
    }

    /// Fixes the file's size for good (`F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_SEAL`): no process
    /// holding the fd can shrink it under another's mapping, which would turn a counter access
    /// into `SIGBUS`.
    pub(crate) fn seal_size(file: &OwnedFd) -> io::Result<()> {
        use rustix::fs::SealFlags;
        Ok(rustix::fs::fcntl_add_seals(
            file,
            SealFlags::SHRINK | SealFlags::GROW | SealFlags::SEAL,
        )?)
    }
}

/// Without `memfd_create`: `shm_open` a name nobody else can have picked (`O_EXCL`), then
/// unlink it at once; the fd keeps the memory alive.
#[cfg(not(any(target_os = "linux", target_os = "android")))]
pub(crate) mod memory_file {
    use std::io;
    use std::os::fd::OwnedFd;
    use std::sync::atomic::{AtomicU64, Ordering};
    use std::time::{SystemTime, UNIX_EPOCH};

    use rustix::fs::Mode;
    use rustix::io::Errno;
    use rustix::shm;

    static CALLS: AtomicU64 = AtomicU64::new(0);

    pub(crate) fn create() -> io::Result<OwnedFd> {
        let pid = u64::from(crate::getpid().as_raw().unsigned_abs());
        for _ in 0..64 {
            let nanos = SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map_or(0, |d| u64::from(d.subsec_nanos()));
            let call = CALLS.fetch_add(1, Ordering::Relaxed);
            // Unique within this process by the counter; across processes by the pid, while
            // the clock guards against a pid reused since a crash left a name behind. macOS
            // allows 31 bytes: "/fork-sys-" and 16 hex digits is 26.
            let mixed = (pid << 40) ^ (call << 30) ^ nanos;
            let name = format!("/fork-sys-{mixed:016x}");
            match shm::open(
                name.as_str(),
                shm::OFlags::CREATE | shm::OFlags::EXCL | shm::OFlags::RDWR,
                Mode::RUSR | Mode::WUSR,
            ) {
                Ok(file) => {
                    let _ = shm::unlink(name.as_str());
                    // POSIX makes shm_open close-on-exec; say so anyway where it is cheap.
                    rustix::io::fcntl_setfd(&file, rustix::io::FdFlags::CLOEXEC)?;
                    return Ok(file);
                }
                Err(Errno::EXIST) | Err(Errno::INTR) => continue,
                Err(err) => return Err(err.into()),
            }
        }
        Err(io::Error::new(
            io::ErrorKind::AlreadyExists,
            "could not find a free shared memory name in 64 tries",
        ))
    }

    /// POSIX shared memory has no seals.
    pub(crate) fn seal_size(_file: &OwnedFd) -> io::Result<()> {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::Ordering;

    use super::*;
    use crate::{ExitStatus, Fork};

    #[test]
    fn children_stores_reach_the_parent_and_parent_stores_reach_children() {
        let shared = SharedAtomics::new(3).unwrap();
        shared.get(2).store(7, Ordering::Release);
        // SAFETY: the child only uses atomics and leaves with `_exit`.
        match unsafe { crate::fork().unwrap() } {
            Fork::Child => {
                let seen = shared.get(2).load(Ordering::Acquire);
                shared.get(0).store(seen + 1, Ordering::Release);
                shared.get(1).fetch_add(5, Ordering::AcqRel);
                crate::exit_immediately(0);
            }
            Fork::Parent(child) => {
                assert_eq!(crate::wait(child).unwrap(), ExitStatus::Exited(0));
                assert_eq!(shared.get(0).load(Ordering::Acquire), 8);
                assert_eq!(shared.get(1).load(Ordering::Acquire), 5);
            }
        }
    }

    #[test]
    #[should_panic(expected = "counter 4 of 4 shared counters")]
    fn out_of_range_index_panics_with_the_bounds() {
        let shared = SharedAtomics::new(4).unwrap();
        shared.get(4);
    }
}
