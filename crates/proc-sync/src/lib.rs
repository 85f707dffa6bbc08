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

mod error;
mod item_codec;
mod item_ring;
mod joinable_queue;
mod lock;
mod queue;
mod raw_mutex;
mod shared_object;
mod simple_queue;

pub use error::{OwnerDied, SyncError};
pub use joinable_queue::JoinableQueue;
pub use lock::{Lock, LockGuard};
pub use queue::{DEFAULT_CAPACITY, Queue, QueueBuilder};
pub use simple_queue::SimpleQueue;
pub use shared_object::Handle;
