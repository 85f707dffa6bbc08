//! Queues, locks, events and shared memory between processes: the rest of Python's
//! `multiprocessing` toolbox, on futexes in shared memory.
//!
//! Every object lives in a block of shared memory that the children this process forks
//! afterwards share as it is; a process started otherwise (a `Spawn` or `ForkServer` child)
//! gets the object's [`Handle`] as an argument and attaches to it. Objects are `Clone`: clones
//! are the same object. Blocking calls sleep in the kernel (a futex), with a timeout where
//! Python offers one; none of them spins.
//!
//! A lock whose holder dies does not hang everyone else as Python's does: the next acquirer
//! gets it with an [`OwnerDied`] error naming the dead process.
//!
//! ```
//! use proc_sync::Lock;
//!
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let lock = Lock::new()?;
//! {
//!     let _held = lock.acquire()?;
//!     assert!(lock.is_locked());
//! }
//! assert!(!lock.is_locked());
//! # Ok(())
//! # }
//! ```

mod array;
mod barrier;
mod condition;
mod deadline;
mod error;
mod event;
mod lock;
mod raw_mutex;
mod rlock;
mod semaphore;
mod shared_memory;
mod shared_object;
mod value;

pub use array::{Array, ArrayGuard};
pub use barrier::Barrier;
pub use condition::{Condition, ConditionHandle, ConditionLock};
pub use error::{OwnerDied, SyncError};
pub use event::Event;
pub use lock::{Lock, LockGuard};
pub use rlock::{RLock, RLockGuard};
pub use semaphore::{BoundedSemaphore, Semaphore, SemaphoreGuard};
pub use shared_memory::SharedMemory;
pub use shared_object::Handle;
pub use value::{Value, ValueGuard};
