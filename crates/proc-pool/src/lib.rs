//! Python's `multiprocessing.Pool` for Rust: forked worker processes run plain functions
//! `fn(A) -> R`, with arguments and values crossing as bincode frames over Unix pipes.
//!
//! ```
//! use proc_pool::{Pool, TaskError};
//!
//! fn square(x: u64) -> u64 {
//!     x * x
//! }
//!
//! fn main() -> Result<(), Box<dyn std::error::Error>> {
//!     let pool = Pool::new(2)?;
//!     assert_eq!(pool.map(square, 0..5)?, [0, 1, 4, 9, 16]);
//!
//!     let pending = pool.apply_async(square, 12)?;
//!     assert_eq!(pending.get()?, 144);
//!
//!     // Errors are per task: this one panics, the pool goes on.
//!     let err = pool.apply(|x: u64| if x == 0 { panic!("zero") } else { x }, 0).unwrap_err();
//!     assert!(matches!(err, TaskError::Panicked { ref message, .. } if message == "zero"));
//!
//!     let total: u64 = pool.imap_unordered(square, 0..1000).map(|r| r.unwrap()).sum();
//!     assert_eq!(total, 332_833_500);
//!
//!     pool.close();
//!     pool.join()?;
//!     Ok(())
//! }
//! ```
//!
//! What it does better than Python's pool:
//!
//! - **A dead worker never hangs the pool.** When a worker dies mid-task (SIGKILL, abort,
//!   segfault, the OOM killer), exactly the task it was running fails with
//!   [`TaskError::WorkerDied`] naming the pid and the signal; the worker is replaced and every
//!   other task completes. Python's `Pool` waits for that task for ever.
//! - **A task that returned never runs again.** Each result is in memory the parent shares
//!   with the worker before the worker starts anything else, so a crash loses no value and
//!   reruns nothing; tasks not started run once elsewhere. Re-running a task whose worker
//!   died under it is opt-in ([`PoolBuilder::retries`]). Task code that damages its worker's
//!   descriptors fails alone (see docs/proc-pool.md, "Self-checking").
//! - **Timeouts per task** ([`PoolBuilder::task_timeout`]): an overrunning task's worker is
//!   killed and replaced, and the task fails with [`TaskError::Timeout`].
//! - **Throughput**: tasks travel in batches, many frames per `write`, and results through
//!   shared memory with one wake-up per batch, so small tasks cost hundreds of nanoseconds
//!   each rather than a pipe round trip.
//! - **Nothing left behind**: dropping a pool kills and reaps its workers; every task gets an
//!   answer, a value or an error, whatever happens.
//! - **Python's calls, in Rust's terms**: [`Pool::map_async`] returns a [`MapResult`];
//!   [`Pool::apply_async_with`] and [`Pool::map_async_with`] take [`Callbacks`] (Python's
//!   `callback` and `error_callback`), run on a callback thread of the pool's, never on the
//!   thread that drives the workers. Items may be borrowed (`pool.map(f, &items)`, see
//!   [`TaskItems`]); a task that takes a reference (`fn(&str)`) is refused at compile time
//!   with a message saying to take the owned type ([`TaskArg`]).
//! - **Async, on any executor**: [`AsyncResult`] and [`MapResult`] are futures and [`Imap`]
//!   is a `Stream` (`futures-core`'s), woken by the pool's own threads when results arrive:
//!   no thread per waiter, no reactor, no runtime required. The blocking calls stay.
//! - **Start methods** ([`PoolBuilder::start_method`]): workers forked from the program
//!   (`Fork`), forked by a fork server (`ForkServer`: replacing a worker costs well under a
//!   millisecond whatever the program's size, and no lock or descriptor of the program's is
//!   inherited), or fresh runs of the executable (`Spawn`). After `proc_core::init()` the
//!   default is `ForkServer`.
//!
//! See docs/proc-pool.md for the protocol and the scheduling.

#![deny(unsafe_code)]

mod bound;
mod callbacks;
mod error;
mod imap;
mod launch;
mod locking;
mod manager;
mod map_result;
mod pool;
mod protocol;
mod result_writer;
mod results;
mod task_arg;
mod task_fn;
mod task_frame;
mod waiter;
mod worker;
mod worker_handle;

pub use bound::Bound;
pub use callbacks::Callbacks;
pub use error::{PoolError, TaskError};
pub use fork_sys::{ExitStatus, Pid, Signal};
pub use imap::Imap;
pub use map_result::MapResult;
pub use pool::{Pool, PoolBuilder};
pub use proc_core::{Launcher, StartMethod};
pub use results::AsyncResult;
pub use task_arg::{Refs, TaskArg, TaskArgMustBeOwned, TaskItems};
pub use task_fn::StarFn;
