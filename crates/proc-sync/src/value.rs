//! [`Value`]: one plain value in shared memory, with a lock.

use std::fmt;
use std::marker::PhantomData;
use std::sync::Arc;

use fork_sys::Plain;

use crate::error::{OwnerDied, SyncError};
use crate::lock::{Lock, LockGuard};
use crate::shared_object::{HEADER_LEN, Handle, Kind, SharedObject, type_tag};

/// Where the value starts in the body, after the lock word (8, so any `Plain` is aligned).
const VALUE_AT: usize = 8;

/// What a shared value's lock is called in [`OwnerDied`] and [`SyncError::OwnerDied`].
const VALUE_LOCK: &str = "lock of a shared value";

/// One value of plain data (a number, an array of numbers, a `#[repr(C)]` struct of them:
/// see [`Plain`]) in shared memory, with a lock: `multiprocessing.Value`.
///
/// [`get`](Self::get) and [`set`](Self::set) each take the lock for one copy; to read and
/// write under one lock, as in `with v.get_lock(): v.value += 1`, hold the
/// [`lock`](Self::lock) guard, or use [`update`](Self::update). The value is copied in and
/// out: no reference into shared memory ever exists, so no `unsafe` is needed to use it.
///
/// The lock is a [`Lock`]'s: if its holder dies, the next access gets
/// [`SyncError::OwnerDied`] (or [`OwnerDied`] from `lock`), once; the value may be half
/// written then.
///
/// ```
/// use proc_sync::Value;
/// use proc_core::Process;
///
/// # fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let counter = Value::new(0u64)?;
/// let children: Vec<_> = (0..2)
///     .map(|_| {
///         let counter = counter.clone();
///         Process::spawn(move || {
///             for _ in 0..100 {
///                 counter.update(|n| n + 1).map_err(|e| e.to_string())?;
///             }
///             Ok::<(), String>(())
///         })
///     })
///     .collect::<Result<_, _>>()?;
/// for child in children {
///     child.join()??;
/// }
/// assert_eq!(counter.get()?, 200);
/// # Ok(())
/// # }
/// ```
pub struct Value<T: Plain> {
    lock: Lock,
    of: PhantomData<fn() -> T>,
}

/// Holds a [`Value`]'s lock: reads and writes through it happen under the lock, which is
/// released when the guard is dropped.
#[must_use = "the lock is released as soon as the guard is dropped"]
pub struct ValueGuard<T: Plain> {
    held: LockGuard,
    of: PhantomData<fn() -> T>,
}

impl<T: Plain> Value<T> {
    /// A shared value holding `value`.
    pub fn new(value: T) -> Result<Value<T>, SyncError> {
        let object = SharedObject::create(
            Kind::Value,
            type_tag::<T>(size_of::<T>()),
            VALUE_AT + size_of::<T>(),
        )?;
        object.region().write_plain(HEADER_LEN + VALUE_AT, value);
        Ok(Value::from_object(object))
    }

    fn from_object(object: SharedObject) -> Value<T> {
        Value {
            lock: Lock::from_object(Arc::new(object)),
            of: PhantomData,
        }
    }

    /// The value, read under the lock.
    pub fn get(&self) -> Result<T, SyncError> {
        Ok(self.lock()?.get())
    }

    /// Replaces the value, under the lock.
    pub fn set(&self, value: T) -> Result<(), SyncError> {
        self.lock()?.set(value);
        Ok(())
    }

    /// Replaces the value by `f(value)` under one hold of the lock, and returns the new value:
    /// `counter.update(|n| n + 1)` is Python's `with v.get_lock(): v.value += 1`.
    pub fn update(&self, f: impl FnOnce(T) -> T) -> Result<T, SyncError> {
        Ok(self.lock()?.update(f))
    }

    /// Takes the lock and returns the guard to read and write through. `Err(OwnerDied)` when
    /// the previous holder died holding it: the lock is held all the same (the error carries
    /// the guard), and the value may be half written.
    pub fn lock(&self) -> Result<ValueGuard<T>, OwnerDied<ValueGuard<T>>> {
        let wrap = |held| ValueGuard {
            held,
            of: PhantomData,
        };
        self.lock
            .acquire()
            .map(wrap)
            .map_err(|died| died.map(wrap, VALUE_LOCK))
    }

    /// A handle another process can [`attach`](Self::attach) to (see [`Handle`]).
    pub fn handle(&self) -> Result<Handle, SyncError> {
        self.lock.object().handle()
    }

    /// The shared value a [`handle`](Self::handle) names, made in another process. The
    /// handle must be of a `Value` of this same `T`.
    pub fn attach(handle: &Handle) -> Result<Value<T>, SyncError> {
        let object = SharedObject::attach(handle, Kind::Value, type_tag::<T>(size_of::<T>()))?;
        if object.body_len() < VALUE_AT + size_of::<T>() {
            return Err(SyncError::BadHandle {
                message: format!(
                    "the shared value holds {} bytes, too few for a {}",
                    object.body_len(),
                    std::any::type_name::<T>()
                ),
            });
        }
        Ok(Value::from_object(object))
    }
}

impl<T: Plain> ValueGuard<T> {
    /// The value.
    pub fn get(&self) -> T {
        self.held
            .object()
            .region()
            .read_plain(HEADER_LEN + VALUE_AT)
    }

    /// Replaces the value.
    pub fn set(&mut self, value: T) {
        self.held
            .object()
            .region()
            .write_plain(HEADER_LEN + VALUE_AT, value);
    }

    /// Replaces the value by `f(value)`; returns the new value.
    pub fn update(&mut self, f: impl FnOnce(T) -> T) -> T {
        let value = f(self.get());
        self.set(value);
        value
    }
}

impl<T: Plain> Clone for Value<T> {
    fn clone(&self) -> Self {
        Value {
            lock: self.lock.clone(),
            of: PhantomData,
        }
    }
}

impl<T: Plain + fmt::Debug> fmt::Debug for Value<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Read without the lock: a Debug print must neither block nor take the lock (which
        // would swallow an owner-died outcome meant for the next real access). A value of
        // several words may show half of a write in progress.
        let value: T = self
            .lock
            .object()
            .region()
            .read_plain(HEADER_LEN + VALUE_AT);
        f.debug_struct("Value")
            .field("value", &value)
            .field("holder", &self.lock.holder())
            .finish()
    }
}

impl<T: Plain + fmt::Debug> fmt::Debug for ValueGuard<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ValueGuard")
            .field("value", &self.get())
            .finish()
    }
}
