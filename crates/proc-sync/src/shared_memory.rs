//! [`SharedMemory`]: a named block of raw bytes that any process can attach to by name.

use std::fmt;
use std::io;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};

use fork_sys::SharedRegion;

use crate::error::SyncError;

/// The longest name, leading `/` included: `NAME_MAX` on Linux, `PSHMNAMLEN` on macOS.
const MAX_NAME: usize = if cfg!(target_os = "macos") { 31 } else { 255 };

/// A named block of shared memory holding raw bytes: `multiprocessing.shared_memory.
/// SharedMemory`, a POSIX shared memory object (`shm_open` + `mmap`; on Linux a file in
/// `/dev/shm`). One process [`create`](Self::create)s it under a name; any process, Python
/// ones included, [`attach`](Self::attach)es to it by that name.
///
/// Bytes are copied in and out ([`write_at`](Self::write_at), [`read_at`](Self::read_at));
/// no reference into the block is handed out, so two processes writing the same bytes at
/// once get one or the other's bytes (or a mix), never undefined behaviour. Coordinate with
/// a [`Lock`](crate::Lock) or an [`Event`](crate::Event).
///
/// # When the name goes away
///
/// The memory lives until its last mapping goes; the *name* lives until it is unlinked. The
/// rule here: **the `SharedMemory` that created the name unlinks it when it is dropped** (its
/// last clone, in the creating process), unless [`keep`](Self::keep) was called; attached
/// ones never unlink on drop; [`unlink`](Self::unlink) removes the name at once, from any
/// process. Forked children that drop a copy of the creator do not unlink (only the creating
/// process does). So a program that forgets nothing leaves no `/dev/shm` entry behind.
///
/// Python differs: there only `unlink()` removes the name, and the `resource_tracker`
/// unlinks (with a warning) what a process created and left behind when it exits. To hand a
/// block on to a process that outlives the creator, call [`keep`](Self::keep) and have the
/// last user [`unlink`](Self::unlink) it.
///
/// ```
/// use proc_sync::SharedMemory;
/// use proc_core::Process;
///
/// # fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let name = format!("doc-shm-{}", std::process::id());
/// let block = SharedMemory::create(&name, 64)?;
/// let child = Process::spawn(move || {
///     let block = SharedMemory::attach(&name).map_err(|e| e.to_string())?;
///     block.write_at(0, b"from the child").map_err(|e| e.to_string())
/// })?;
/// child.join()??;
/// let mut text = [0u8; 14];
/// block.read_at(0, &mut text)?;
/// assert_eq!(&text, b"from the child");
/// drop(block); // the creator: the name is unlinked
/// # Ok(())
/// # }
/// ```
#[derive(Clone)]
pub struct SharedMemory {
    inner: Arc<Inner>,
}

struct Inner {
    region: SharedRegion,
    name: String,
    size: usize,
    /// The pid of the process that created the name, if this handle did.
    creator: Option<u32>,
    /// Set by `keep` and `unlink`: the drop leaves the name alone.
    leave_name: AtomicBool,
}

impl SharedMemory {
    /// Creates the shared memory object `name` (a leading `/` is added if missing, as
    /// Python does) of `size` bytes, zeroed. [`SyncError::NameTaken`] if the name exists.
    pub fn create(name: &str, size: usize) -> Result<SharedMemory, SyncError> {
        let name = full_name(name)?;
        if size == 0 {
            return Err(SyncError::Misuse {
                message: format!("shared memory {name:?} must have a size above zero"),
            });
        }
        let region = SharedRegion::create_named(&name, size).map_err(|err| {
            if err.kind() == io::ErrorKind::AlreadyExists {
                SyncError::NameTaken { name: name.clone() }
            } else {
                SyncError::io(
                    format!("create shared memory {name:?} of {size} bytes"),
                    err,
                )
            }
        })?;
        Ok(SharedMemory::new(
            region,
            name,
            size,
            Some(fork_sys::getpid_cached()),
        ))
    }

    /// Creates a shared memory object of `size` bytes under a fresh name (`/psm_...`, like
    /// Python's `SharedMemory(create=True, size=n)`); [`name`](Self::name) tells it.
    pub fn create_unique(size: usize) -> Result<SharedMemory, SyncError> {
        static NEXT: AtomicU32 = AtomicU32::new(0);
        loop {
            let name = format!(
                "/psm_{}_{}_{:x}",
                fork_sys::getpid_cached(),
                NEXT.fetch_add(1, Ordering::Relaxed),
                fork_sys::monotonic_now().subsec_nanos()
            );
            match SharedMemory::create(&name, size) {
                Err(SyncError::NameTaken { .. }) => continue,
                other => return other,
            }
        }
    }

    /// Attaches to the existing shared memory object `name` (a leading `/` is added if
    /// missing), all of it. [`SyncError::NameNotFound`] if there is none. Its
    /// [`size`](Self::size) is the object's, rounded down to a multiple of 8.
    pub fn attach(name: &str) -> Result<SharedMemory, SyncError> {
        let name = full_name(name)?;
        let region = SharedRegion::open_named(&name).map_err(|err| {
            if err.kind() == io::ErrorKind::NotFound {
                SyncError::NameNotFound { name: name.clone() }
            } else {
                SyncError::io(format!("attach to shared memory {name:?}"), err)
            }
        })?;
        let size = region.len();
        Ok(SharedMemory::new(region, name, size, None))
    }

    /// Same as [`attach`](Self::attach) (Python's `SharedMemory(name)` opens).
    pub fn open(name: &str) -> Result<SharedMemory, SyncError> {
        SharedMemory::attach(name)
    }

    fn new(region: SharedRegion, name: String, size: usize, creator: Option<u32>) -> Self {
        SharedMemory {
            inner: Arc::new(Inner {
                region,
                name,
                size,
                creator,
                leave_name: AtomicBool::new(false),
            }),
        }
    }

    /// The name, with its leading `/` (Python's `name` leaves it out).
    pub fn name(&self) -> &str {
        &self.inner.name
    }

    /// The size in bytes: as created, or as found when attached.
    pub fn size(&self) -> usize {
        self.inner.size
    }

    /// Copies `bytes` into the block at `offset`; [`SyncError::OutOfBounds`] if they would
    /// reach past its end (nothing is written then).
    pub fn write_at(&self, offset: usize, bytes: &[u8]) -> Result<(), SyncError> {
        self.check(offset, bytes.len())?;
        self.inner.region.write_bytes(offset, bytes);
        Ok(())
    }

    /// Fills `buf` from the block at `offset`; [`SyncError::OutOfBounds`] if that would reach
    /// past its end.
    pub fn read_at(&self, offset: usize, buf: &mut [u8]) -> Result<(), SyncError> {
        self.check(offset, buf.len())?;
        self.inner.region.read_bytes(offset, buf);
        Ok(())
    }

    /// `len` bytes from `offset`, as a vector.
    pub fn read_vec(&self, offset: usize, len: usize) -> Result<Vec<u8>, SyncError> {
        self.check(offset, len)?;
        let mut bytes = vec![0; len];
        self.inner.region.read_bytes(offset, &mut bytes);
        Ok(bytes)
    }

    /// Removes the name now (from any process): later [`attach`](Self::attach)es fail and a
    /// new block may take the name; every existing mapping stays valid until dropped.
    /// [`SyncError::NameNotFound`] if the name was unlinked already.
    pub fn unlink(&self) -> Result<(), SyncError> {
        self.inner.leave_name.store(true, Ordering::Relaxed);
        let name = &self.inner.name;
        SharedRegion::unlink_named(name).map_err(|err| {
            if err.kind() == io::ErrorKind::NotFound {
                SyncError::NameNotFound { name: name.clone() }
            } else {
                SyncError::io(format!("unlink shared memory {name:?}"), err)
            }
        })
    }

    /// Keeps the name when this creator is dropped (Python's behaviour without its resource
    /// tracker): someone must [`unlink`](Self::unlink) it later, or it stays in `/dev/shm`
    /// until reboot. No effect on an attached block, which never unlinks.
    pub fn keep(&self) {
        self.inner.leave_name.store(true, Ordering::Relaxed);
    }

    /// Whether this handle created the name (and so unlinks it on drop, unless kept).
    pub fn is_creator(&self) -> bool {
        self.inner.creator.is_some()
    }

    fn check(&self, offset: usize, len: usize) -> Result<(), SyncError> {
        match offset.checked_add(len) {
            Some(end) if end <= self.inner.size => Ok(()),
            _ => Err(SyncError::OutOfBounds {
                offset,
                len,
                size: self.inner.size,
            }),
        }
    }
}

/// `name` with one leading `/`, checked.
fn full_name(name: &str) -> Result<String, SyncError> {
    let bad = |reason| SyncError::BadName {
        name: name.to_owned(),
        reason,
    };
    let bare = name.strip_prefix('/').unwrap_or(name);
    if bare.is_empty() {
        return Err(bad("it is empty"));
    }
    if bare.contains('/') {
        return Err(bad("only a leading '/' is allowed"));
    }
    if bare.contains('\0') {
        return Err(bad("it contains a NUL byte"));
    }
    if bare == "." || bare == ".." {
        return Err(bad("'.' and '..' are not names"));
    }
    if bare.len() + 1 > MAX_NAME {
        return Err(bad(if cfg!(target_os = "macos") {
            "it is longer than the 31 bytes macOS allows"
        } else {
            "it is longer than the 255 bytes allowed"
        }));
    }
    Ok(format!("/{bare}"))
}

impl Drop for Inner {
    fn drop(&mut self) {
        if self.creator != Some(fork_sys::getpid_cached())
            || self.leave_name.load(Ordering::Relaxed)
        {
            return;
        }
        // Only if the name still names our object: someone may have unlinked it and created
        // another under the same name meanwhile.
        if names_this_object(&self.name, &self.region) {
            let _ = SharedRegion::unlink_named(&self.name);
        }
    }
}

/// Whether `name` is (still) the name of the object `region` maps.
fn names_this_object(name: &str, region: &SharedRegion) -> bool {
    let Some(ours) = region.fd() else {
        return false;
    };
    let Ok(named) = rustix::shm::open(name, rustix::shm::OFlags::RDONLY, rustix::fs::Mode::empty())
    else {
        return false;
    };
    match (rustix::fs::fstat(ours), rustix::fs::fstat(&named)) {
        (Ok(a), Ok(b)) => a.st_dev == b.st_dev && a.st_ino == b.st_ino,
        _ => false,
    }
}

impl fmt::Debug for SharedMemory {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SharedMemory")
            .field("name", &self.inner.name)
            .field("size", &self.inner.size)
            .field("creator", &self.inner.creator)
            .finish_non_exhaustive()
    }
}
