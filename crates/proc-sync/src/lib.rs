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
//! use proc_core::Process;
//! use proc_sync::Queue;
//!
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let queue = Queue::<(u32, String)>::new()?;
//! let writer = {
//!     let queue = queue.clone();
//!     // The child's result crosses back as bincode: errors as text.
//!     Process::spawn(move || -> Result<(), String> {
//!         for (n, word) in ["A", "B", "C"].into_iter().enumerate() {
//!             queue.put((n as u32, word.to_string())).map_err(|e| e.to_string())?;
//!         }
//!         Ok(())
//!     })?
//! };
//! assert_eq!(queue.get()?, (0, "A".to_string()));
//! assert_eq!(queue.get()?, (1, "B".to_string()));
//! assert_eq!(queue.get()?, (2, "C".to_string()));
//! writer.join()??;
//! # Ok(())
//! # }
//! ```
//!
//! The queues ([`Queue`], [`JoinableQueue`], [`SimpleQueue`]) carry any serde type, encoded
//! with proc-core's codec; see `docs/proc-sync.md` for how they work and what they promise
//! when a process dies in the middle of a `put` or a `get`.

mod array;
mod barrier;
mod condition;
mod deadline;
mod error;
mod event;
mod item_codec;
mod item_ring;
mod joinable_queue;
mod lock;
mod queue;
mod raw_mutex;
mod rlock;
mod semaphore;
mod shared_memory;
mod shared_object;
mod simple_queue;
mod value;
mod wait_word;

pub use array::{Array, ArrayGuard};
pub use barrier::Barrier;
pub use condition::{Condition, ConditionHandle, ConditionLock};
pub use error::{OwnerDied, SyncError};
pub use event::Event;
pub use joinable_queue::JoinableQueue;
pub use lock::{Lock, LockGuard};
pub use queue::{DEFAULT_CAPACITY, Queue, QueueBuilder};
pub use rlock::{RLock, RLockGuard};
pub use semaphore::{BoundedSemaphore, Semaphore, SemaphoreGuard};
pub use shared_memory::SharedMemory;
pub use shared_object::Handle;
pub use simple_queue::SimpleQueue;
pub use value::{Value, ValueGuard};
