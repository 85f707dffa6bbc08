//! The errors of proc-sync: one enum for every operation, plus [`OwnerDied`], which carries the
//! guard of a lock whose previous holder died.

use std::fmt;
use std::io;
use std::time::Duration;

use proc_core::codec::CodecError;

/// What went wrong in a queue, lock or shared value. `Display` names the object, the pid, the
/// limit or the timeout involved.
#[derive(Debug)]
#[non_exhaustive]
pub enum SyncError {
    /// The process holding `what` died while holding it. For locks the caller now holds it
    /// (see [`OwnerDied`] to keep the guard); for a queue the operation was repaired and can
    /// be retried.
    OwnerDied {
        /// The kind of object ("lock", "queue", ...).
        what: &'static str,
        /// The pid of the process that died.
        pid: u32,
    },
    /// A wait with a timeout ran out.
    Timeout {
        /// What was waited for ("a queue item", "room in the queue", "the lock", ...).
        what: &'static str,
        /// The timeout given.
        timeout: Duration,
    },
    /// `try_get` on an empty queue.
    Empty,
    /// `try_put` on a full queue: `maxsize` items are in it.
    Full {
        /// The queue's bound.
        maxsize: usize,
    },
    /// The queue was closed (`close`) by this handle: no more `put`.
    Closed,
    /// An item whose encoding is larger than the queue accepts.
    TooLarge {
        /// The encoded length.
        len: usize,
        /// The queue's limit.
        limit: usize,
    },
    /// An item could not be encoded or decoded (`Serialize`/`Deserialize` failed, or the bytes
    /// are not a value of the expected type).
    Codec(CodecError),
    /// A semaphore, lock or condition used against its rules: released more times than
    /// acquired, a `BoundedSemaphore` above its bound, `task_done` called too often, ...
    Misuse {
        /// What was wrong, in words.
        message: String,
    },
    /// A `Barrier` was broken (`abort`, or a party timed out or died) while waiting.
    BrokenBarrier,
    /// A handle did not describe an object of this kind and type, or could not be attached.
    BadHandle {
        /// Why, in words.
        message: String,
    },
    /// An index past the end of a shared [`Array`](crate::Array).
    IndexOutOfRange {
        /// The index given.
        index: usize,
        /// The array's length.
        len: usize,
    },
    /// A read or write of `len` bytes at `offset` reaching past the end of a
    /// [`SharedMemory`](crate::SharedMemory) block of `size` bytes.
    OutOfBounds {
        /// Where the access started.
        offset: usize,
        /// How many bytes it covered.
        len: usize,
        /// The block's size.
        size: usize,
    },
    /// A name that cannot name a POSIX shared memory object.
    BadName {
        /// The name given.
        name: String,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// [`SharedMemory::create`](crate::SharedMemory::create) with a name that already names
    /// a shared memory object.
    NameTaken {
        /// The name, with its leading `/`.
        name: String,
    },
    /// [`SharedMemory::attach`](crate::SharedMemory::attach) or
    /// [`unlink`](crate::SharedMemory::unlink) of a name that names nothing (never created,
    /// or unlinked already).
    NameNotFound {
        /// The name, with its leading `/`.
        name: String,
    },
    /// A queue's shared memory holds something no producer wrote: another program, or a
    /// stray write, changed it. The queue cannot be used any more.
    Corrupt {
        /// What was found, in words.
        message: String,
    },
    /// A system call failed.
    Io {
        /// What was being done ("map shared memory", "reopen /proc/1234/fd/7", ...).
        op: String,
        /// The OS error.
        source: io::Error,
    },
}

impl SyncError {
    pub(crate) fn io(op: impl Into<String>, source: io::Error) -> SyncError {
        SyncError::Io {
            op: op.into(),
            source,
        }
    }
}

impl fmt::Display for SyncError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SyncError::OwnerDied { what, pid } => {
                write!(f, "process {pid} died while holding the {what}")
            }
            SyncError::Timeout { what, timeout } => {
                write!(f, "timed out after {timeout:?} waiting for {what}")
            }
            SyncError::Empty => write!(f, "the queue is empty"),
            SyncError::Full { maxsize } => write!(f, "the queue is full ({maxsize} items)"),
            SyncError::Closed => write!(f, "the queue is closed"),
            SyncError::TooLarge { len, limit } => write!(
                f,
                "an item of {len} bytes is larger than the queue's limit of {limit} bytes"
            ),
            SyncError::Codec(err) => write!(f, "queue item: {err}"),
            SyncError::Misuse { message } => f.write_str(message),
            SyncError::BrokenBarrier => write!(f, "the barrier is broken"),
            SyncError::BadHandle { message } => write!(f, "bad handle: {message}"),
            SyncError::IndexOutOfRange { index, len } => {
                write!(
                    f,
                    "index {index} is out of range for a shared array of {len} elements"
                )
            }
            SyncError::OutOfBounds { offset, len, size } => write!(
                f,
                "{len} bytes at offset {offset} reach past the end of a shared memory block of \
                 {size} bytes"
            ),
            SyncError::BadName { name, reason } => {
                write!(f, "{name:?} cannot name shared memory: {reason}")
            }
            SyncError::NameTaken { name } => write!(
                f,
                "shared memory {name:?} already exists (attach to it, or unlink it first)"
            ),
            SyncError::NameNotFound { name } => {
                write!(f, "there is no shared memory named {name:?}")
            }
            SyncError::Corrupt { message } => write!(f, "corrupt queue: {message}"),
            SyncError::Io { op, source } => write!(f, "{op}: {source}"),
        }
    }
}

impl std::error::Error for SyncError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            SyncError::Codec(err) => Some(err),
            SyncError::Io { source, .. } => Some(source),
            _ => None,
        }
    }
}

impl From<CodecError> for SyncError {
    fn from(err: CodecError) -> SyncError {
        SyncError::Codec(err)
    }
}

/// The lock was acquired, but its previous holder (process `pid`) died holding it, so what it
/// protected may be half-updated. Like `std::sync::PoisonError`, it carries the guard:
/// [`into_inner`](Self::into_inner) to go on holding the lock, or drop it to release. The
/// lock itself works normally afterwards.
///
/// With `?` it becomes [`SyncError::OwnerDied`] (the guard is dropped, releasing the lock).
pub struct OwnerDied<G> {
    guard: G,
    pid: u32,
    what: &'static str,
}

impl<G> OwnerDied<G> {
    pub(crate) fn new(guard: G, pid: u32, what: &'static str) -> OwnerDied<G> {
        OwnerDied { guard, pid, what }
    }

    /// The same outcome around another guard (a shared value's around its lock's), naming
    /// the lock `what`.
    pub(crate) fn map<H>(self, wrap: impl FnOnce(G) -> H, what: &'static str) -> OwnerDied<H> {
        OwnerDied {
            guard: wrap(self.guard),
            pid: self.pid,
            what,
        }
    }

    /// The pid of the holder that died.
    pub fn pid(&self) -> u32 {
        self.pid
    }

    /// The guard: the caller holds the lock.
    pub fn into_inner(self) -> G {
        self.guard
    }

    /// A reference to the guard.
    pub fn get_ref(&self) -> &G {
        &self.guard
    }
}

impl<G> fmt::Debug for OwnerDied<G> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("OwnerDied")
            .field("pid", &self.pid)
            .field("what", &self.what)
            .finish_non_exhaustive()
    }
}

impl<G> fmt::Display for OwnerDied<G> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "process {} died while holding the {}; it is now held by this process",
            self.pid, self.what
        )
    }
}

impl<G> std::error::Error for OwnerDied<G> {}

impl<G> From<OwnerDied<G>> for SyncError {
    fn from(err: OwnerDied<G>) -> SyncError {
        SyncError::OwnerDied {
            what: err.what,
            pid: err.pid,
        }
    }
}
