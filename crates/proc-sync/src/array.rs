//! [`Array`]: a fixed number of plain values in shared memory, with a lock.

use std::fmt;
use std::marker::PhantomData;
use std::sync::Arc;
use std::sync::atomic::Ordering;

use fork_sys::Plain;

use crate::error::{OwnerDied, SyncError};
use crate::lock::{Lock, LockGuard};
use crate::shared_object::{HEADER_LEN, Handle, Kind, SharedObject, type_tag};

/// Body offsets: the lock word, the length (u64), the elements.
const LEN: usize = 8;
const ELEMENTS: usize = 16;

/// What an array's lock is called in [`OwnerDied`] and [`SyncError::OwnerDied`].
const ARRAY_LOCK: &str = "lock of a shared array";

/// A fixed-length array of plain data (see [`Plain`]) in shared memory, with a lock:
/// `multiprocessing.Array`.
///
/// Elements are copied in and out ([`get`](Self::get), [`set`](Self::set),
/// [`to_vec`](Self::to_vec)), each call under the lock; hold the [`lock`](Self::lock) guard
/// to do several under one hold. No reference into shared memory is ever handed out.
///
/// The lock is a [`Lock`]'s: if its holder dies, the next access gets
/// [`SyncError::OwnerDied`] once, and the elements may be half written.
///
/// ```
/// use proc_sync::Array;
/// use proc_core::Process;
///
/// # fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let squares = Array::from_elem(0u32, 4)?;
/// let child = {
///     let squares = squares.clone();
///     Process::spawn(move || {
///         let mut all = squares.lock().map_err(|e| e.to_string())?;
///         for i in 0..all.len() {
///             all.set(i, (i * i) as u32).map_err(|e| e.to_string())?;
///         }
///         Ok::<(), String>(())
///     })?
/// };
/// child.join()??;
/// assert_eq!(squares.to_vec()?, [0, 1, 4, 9]);
/// assert!(squares.get(4).is_err());
/// # Ok(())
/// # }
/// ```
pub struct Array<T: Plain> {
    lock: Lock,
    len: usize,
    of: PhantomData<fn() -> T>,
}

/// Holds an [`Array`]'s lock: element reads and writes through it happen under the lock,
/// which is released when the guard is dropped.
#[must_use = "the lock is released as soon as the guard is dropped"]
pub struct ArrayGuard<T: Plain> {
    held: LockGuard,
    len: usize,
    of: PhantomData<fn() -> T>,
}

impl<T: Plain> Array<T> {
    /// A shared array holding a copy of `values`.
    pub fn new(values: &[T]) -> Result<Array<T>, SyncError> {
        let array = Array::zeroed(values.len())?;
        let region = array.lock.object().region();
        for (i, value) in values.iter().enumerate() {
            region.write_plain(offset_of::<T>(i), *value);
        }
        Ok(array)
    }

    /// A shared array of `len` copies of `value`.
    pub fn from_elem(value: T, len: usize) -> Result<Array<T>, SyncError> {
        let array = Array::zeroed(len)?;
        let region = array.lock.object().region();
        for i in 0..len {
            region.write_plain(offset_of::<T>(i), value);
        }
        Ok(array)
    }

    fn zeroed(len: usize) -> Result<Array<T>, SyncError> {
        let body = len
            .checked_mul(size_of::<T>())
            .and_then(|bytes| bytes.checked_add(ELEMENTS))
            .ok_or_else(|| SyncError::Misuse {
                message: format!(
                    "a shared array of {len} {} does not fit in memory",
                    std::any::type_name::<T>()
                ),
            })?;
        let object = SharedObject::create(Kind::Array, type_tag::<T>(size_of::<T>()), body)?;
        object.u64(LEN).store(len as u64, Ordering::Relaxed);
        Ok(Array::from_object(object, len))
    }

    fn from_object(object: SharedObject, len: usize) -> Array<T> {
        Array {
            lock: Lock::from_object(Arc::new(object)),
            len,
            of: PhantomData,
        }
    }

    /// The number of elements.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether the array has no elements.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Element `index`, read under the lock; [`SyncError::IndexOutOfRange`] past the end.
    pub fn get(&self, index: usize) -> Result<T, SyncError> {
        self.check(index)?;
        let all = self.lock()?;
        Ok(all.read(index))
    }

    /// Replaces element `index` under the lock; [`SyncError::IndexOutOfRange`] past the end.
    pub fn set(&self, index: usize, value: T) -> Result<(), SyncError> {
        self.check(index)?;
        self.lock()?.set(index, value)
    }

    /// A copy of every element, read under one hold of the lock.
    pub fn to_vec(&self) -> Result<Vec<T>, SyncError> {
        Ok(self.lock()?.to_vec())
    }

    /// Takes the lock and returns the guard to read and write through. `Err(OwnerDied)` when
    /// the previous holder died holding it: the lock is held all the same (the error carries
    /// the guard), and the elements may be half written.
    pub fn lock(&self) -> Result<ArrayGuard<T>, OwnerDied<ArrayGuard<T>>> {
        let len = self.len;
        let wrap = move |held| ArrayGuard {
            held,
            len,
            of: PhantomData,
        };
        self.lock
            .acquire()
            .map(wrap)
            .map_err(|died| died.map(wrap, ARRAY_LOCK))
    }

    /// A handle another process can [`attach`](Self::attach) to (see [`Handle`]).
    pub fn handle(&self) -> Result<Handle, SyncError> {
        self.lock.object().handle()
    }

    /// The shared array a [`handle`](Self::handle) names, made in another process. The
    /// handle must be of an `Array` of this same `T`.
    pub fn attach(handle: &Handle) -> Result<Array<T>, SyncError> {
        let object = SharedObject::attach(handle, Kind::Array, type_tag::<T>(size_of::<T>()))?;
        let stored = object.u64(LEN).load(Ordering::Relaxed);
        let len = usize::try_from(stored)
            .ok()
            .filter(|len| {
                len.checked_mul(size_of::<T>())
                    .and_then(|bytes| bytes.checked_add(ELEMENTS))
                    .is_some_and(|need| need <= object.body_len())
            })
            .ok_or_else(|| SyncError::BadHandle {
                message: format!(
                    "a shared array of {} bytes cannot hold the {stored} elements it claims",
                    object.body_len()
                ),
            })?;
        Ok(Array::from_object(object, len))
    }

    fn check(&self, index: usize) -> Result<(), SyncError> {
        if index < self.len {
            Ok(())
        } else {
            Err(SyncError::IndexOutOfRange {
                index,
                len: self.len,
            })
        }
    }
}

/// Where element `index` starts in the region.
fn offset_of<T>(index: usize) -> usize {
    HEADER_LEN + ELEMENTS + index * size_of::<T>()
}

impl<T: Plain> ArrayGuard<T> {
    /// The number of elements.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether the array has no elements.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Element `index`, or `None` past the end (like a slice's `get`).
    pub fn get(&self, index: usize) -> Option<T> {
        (index < self.len).then(|| self.read(index))
    }

    /// Replaces element `index`; [`SyncError::IndexOutOfRange`] past the end.
    pub fn set(&mut self, index: usize, value: T) -> Result<(), SyncError> {
        if index >= self.len {
            return Err(SyncError::IndexOutOfRange {
                index,
                len: self.len,
            });
        }
        self.held
            .object()
            .region()
            .write_plain(offset_of::<T>(index), value);
        Ok(())
    }

    /// A copy of every element.
    pub fn to_vec(&self) -> Vec<T> {
        (0..self.len).map(|i| self.read(i)).collect()
    }

    /// Replaces every element by `values`'s; [`SyncError::Misuse`] when the lengths differ.
    pub fn copy_from_slice(&mut self, values: &[T]) -> Result<(), SyncError> {
        if values.len() != self.len {
            return Err(SyncError::Misuse {
                message: format!(
                    "copied {} elements into a shared array of {}",
                    values.len(),
                    self.len
                ),
            });
        }
        let region = self.held.object().region();
        for (i, value) in values.iter().enumerate() {
            region.write_plain(offset_of::<T>(i), *value);
        }
        Ok(())
    }

    fn read(&self, index: usize) -> T {
        self.held
            .object()
            .region()
            .read_plain(offset_of::<T>(index))
    }
}

impl<T: Plain> Clone for Array<T> {
    fn clone(&self) -> Self {
        Array {
            lock: self.lock.clone(),
            len: self.len,
            of: PhantomData,
        }
    }
}

impl<T: Plain> fmt::Debug for Array<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Array")
            .field("of", &std::any::type_name::<T>())
            .field("len", &self.len)
            .finish_non_exhaustive()
    }
}

impl<T: Plain + fmt::Debug> fmt::Debug for ArrayGuard<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_list().entries(self.to_vec()).finish()
    }
}
