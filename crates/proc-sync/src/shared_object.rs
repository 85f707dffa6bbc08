//! The memory every proc-sync object lives in, and the [`Handle`] that lets a process that is
//! not a fork of the creator (a `Spawn` or `ForkServer` child) attach to it.
//!
//! Each object is one [`SharedRegion`] backed by a memory file: a 64-byte header (magic, kind,
//! type tag, body length) and then the object's own words. Forked children share the mapping
//! as it is; other processes get a [`Handle`] (serde: pass it as an argument) and
//! [`SharedObject::attach`] reopens the creator's memory file through `/proc/PID/fd/N`.

use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};

use fork_sys::SharedRegion;
use serde::{Deserialize, Serialize};

use crate::error::SyncError;

/// Bytes of header before an object's body.
pub(crate) const HEADER_LEN: usize = 64;
const MAGIC: u32 = 0x7072_6b73; // "prks"

/// What kind of object a region holds; named in handle errors.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kind {
    Lock = 1,
    RLock = 2,
    Semaphore = 3,
    Event = 4,
    Condition = 5,
    Barrier = 6,
    #[allow(dead_code, reason = "the queues, on another branch, construct it")]
    Queue = 7,
    Value = 8,
    Array = 9,
}

impl Kind {
    fn name(raw: u32) -> &'static str {
        match raw {
            1 => "Lock",
            2 => "RLock",
            3 => "Semaphore",
            4 => "Event",
            5 => "Condition",
            6 => "Barrier",
            7 => "Queue",
            8 => "Value",
            9 => "Array",
            _ => "unknown object",
        }
    }
}

/// Names the Rust type an object carries, so that attaching a `Queue<String>` as a
/// `Queue<u64>` is a clear error instead of garbage: FNV-1a of the type's name and size.
pub(crate) fn type_tag<T: ?Sized>(size: usize) -> u64 {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for byte in std::any::type_name::<T>().bytes().chain(size.to_le_bytes()) {
        hash ^= u64::from(byte);
        hash = hash.wrapping_mul(0x0100_0000_01b3);
    }
    hash
}

/// Everything another process needs to attach to a queue, lock or shared value: the creator's
/// pid and the number of the memory file in it, and what the object is. Serializable, so it
/// can be an argument of a `Spawn` or `ForkServer` child
/// (`Process::builder().start_method(..).spawn_fn(worker, queue.handle()?)`).
///
/// Attaching reopens `/proc/PID/fd/N` (Linux only), so the creator must still be running and
/// hold the object. Forked children need no handle: they use the object they inherited.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Handle {
    pid: u32,
    fd: i32,
    len: u64,
    kind: u32,
    type_tag: u64,
}

/// One shared object's region.
#[derive(Debug)]
pub(crate) struct SharedObject {
    region: SharedRegion,
}

impl SharedObject {
    /// A fresh object of `kind` with `body_len` zeroed bytes after the header.
    pub(crate) fn create(kind: Kind, type_tag: u64, body_len: usize) -> Result<Self, SyncError> {
        let len = HEADER_LEN
            .checked_add(body_len)
            .ok_or_else(|| SyncError::Misuse {
                message: format!("a shared object of {body_len} bytes does not fit in memory"),
            })?;
        let region = SharedRegion::new_shareable(len)
            .map_err(|err| SyncError::io(format!("map {len} bytes of shared memory"), err))?;
        region.u32(4).store(kind as u32, Ordering::Relaxed);
        region.u64(8).store(type_tag, Ordering::Relaxed);
        region.u64(16).store(body_len as u64, Ordering::Relaxed);
        region.u32(0).store(MAGIC, Ordering::Release);
        Ok(SharedObject { region })
    }

    /// The handle of this object, for [`attach`](Self::attach) in another process.
    pub(crate) fn handle(&self) -> Result<Handle, SyncError> {
        use std::os::fd::AsRawFd;
        let fd = self.region.fd().ok_or_else(|| SyncError::BadHandle {
            message: "this object has no memory file to hand out".into(),
        })?;
        Ok(Handle {
            pid: fork_sys::getpid_cached(),
            fd: fd.as_raw_fd(),
            len: self.region.len() as u64,
            kind: self.region.u32(4).load(Ordering::Relaxed),
            type_tag: self.region.u64(8).load(Ordering::Relaxed),
        })
    }

    /// Maps the object `handle` names, checking it is a `kind` carrying `type_tag`.
    pub(crate) fn attach(handle: &Handle, kind: Kind, type_tag: u64) -> Result<Self, SyncError> {
        if handle.kind != kind as u32 {
            return Err(SyncError::BadHandle {
                message: format!(
                    "the handle is of a {}, not a {}",
                    Kind::name(handle.kind),
                    Kind::name(kind as u32)
                ),
            });
        }
        if handle.type_tag != type_tag {
            return Err(SyncError::BadHandle {
                message: format!(
                    "the {} of the handle carries another type than this one",
                    Kind::name(kind as u32)
                ),
            });
        }
        let file = reopen(handle.pid, handle.fd)?;
        let len = usize::try_from(handle.len).map_err(|_| SyncError::BadHandle {
            message: format!("{} bytes do not fit in memory", handle.len),
        })?;
        let region = SharedRegion::attach(file, len).map_err(|err| {
            SyncError::io(
                format!(
                    "map the {} of process {}",
                    Kind::name(kind as u32),
                    handle.pid
                ),
                err,
            )
        })?;
        let magic = region.u32(0).load(Ordering::Acquire);
        if magic != MAGIC
            || region.u32(4).load(Ordering::Relaxed) != kind as u32
            || region.u64(8).load(Ordering::Relaxed) != type_tag
        {
            return Err(SyncError::BadHandle {
                message: format!(
                    "fd {} of process {} is not the {} the handle describes",
                    handle.fd,
                    handle.pid,
                    Kind::name(kind as u32)
                ),
            });
        }
        Ok(SharedObject { region })
    }

    /// The 32-bit word at `offset` in the body.
    #[inline]
    pub(crate) fn u32(&self, offset: usize) -> &AtomicU32 {
        self.region.u32(HEADER_LEN + offset)
    }

    /// The 64-bit word at `offset` in the body.
    #[inline]
    pub(crate) fn u64(&self, offset: usize) -> &AtomicU64 {
        self.region.u64(HEADER_LEN + offset)
    }

    /// The whole region (offsets from its start, header included: add [`HEADER_LEN`]).
    #[inline]
    pub(crate) fn region(&self) -> &SharedRegion {
        &self.region
    }

    /// Length of the body in bytes.
    pub(crate) fn body_len(&self) -> usize {
        self.region.len() - HEADER_LEN
    }
}

#[cfg(target_os = "linux")]
fn reopen(pid: u32, fd: i32) -> Result<std::os::fd::OwnedFd, SyncError> {
    use rustix::fs::{Mode, OFlags};
    let path = format!("/proc/{pid}/fd/{fd}");
    rustix::fs::open(path.as_str(), OFlags::RDWR | OFlags::CLOEXEC, Mode::empty()).map_err(|err| {
        SyncError::io(
            format!("reopen {path} (is process {pid} still running?)"),
            err.into(),
        )
    })
}

#[cfg(not(target_os = "linux"))]
fn reopen(pid: u32, fd: i32) -> Result<std::os::fd::OwnedFd, SyncError> {
    Err(SyncError::BadHandle {
        message: format!(
            "attaching to fd {fd} of process {pid} needs Linux's /proc; use a forked child, \
             which shares the object as it is"
        ),
    })
}
