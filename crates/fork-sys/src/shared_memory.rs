//! Atomic counters that a parent and its forked children all see: an anonymous `MAP_SHARED`
//! mapping, which `fork` shares instead of copying.

use std::io;
use std::ptr::NonNull;
use std::sync::atomic::AtomicU64;

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
    base: NonNull<AtomicU64>,
    len: usize,
}

// SAFETY: the mapping is plain memory holding only atomics, which are `Sync`; the pointer is
// owned by this value alone (unmapped once, in `drop`).
unsafe impl Send for SharedAtomics {}
// SAFETY: as above: shared access only ever goes through `&AtomicU64`.
unsafe impl Sync for SharedAtomics {}

impl SharedAtomics {
    /// Maps `len` zeroed counters (`len` of 0 is taken as 1). The mapping is private to this
    /// process and its future forked children; exec drops it.
    pub fn new(len: usize) -> io::Result<SharedAtomics> {
        let len = len.max(1);
        let bytes = len
            .checked_mul(size_of::<AtomicU64>())
            .ok_or_else(|| io::Error::other("shared counter array too large"))?;
        // SAFETY: a fresh anonymous mapping at an address of the kernel's choosing touches no
        // existing memory; the result is checked before use.
        let addr = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                bytes,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_SHARED | libc::MAP_ANONYMOUS,
                -1,
                0,
            )
        };
        if addr == libc::MAP_FAILED {
            return Err(io::Error::last_os_error());
        }
        let base = NonNull::new(addr.cast::<AtomicU64>())
            .ok_or_else(|| io::Error::other("mmap returned a null mapping"))?;
        Ok(SharedAtomics { base, len })
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
        // SAFETY: in bounds (checked above) of a live, page-aligned (hence `AtomicU64`-aligned)
        // mapping that anonymous mmap zero-filled, a valid `AtomicU64` bit pattern; the memory
        // is only ever accessed through atomics, so sharing it with other processes is no data
        // race; the borrow cannot outlive `self`, which unmaps it.
        unsafe { &*self.base.as_ptr().add(index) }
    }
}

impl std::fmt::Debug for SharedAtomics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SharedAtomics")
            .field("len", &self.len)
            .finish_non_exhaustive()
    }
}

impl Drop for SharedAtomics {
    fn drop(&mut self) {
        // SAFETY: unmaps exactly the mapping `new` created; no borrow of it can outlive `self`.
        // Forked children keep their own reference to the pages until they exit.
        unsafe {
            libc::munmap(self.base.as_ptr().cast(), self.len * size_of::<AtomicU64>());
        }
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
