//! Python's `multiprocessing.Process` for Rust: run a closure in a forked child, join it, get
//! its typed result back.
//!
//! ```
//! use proc_core::{Process, ProcessError};
//!
//! fn run_proc(name: &str) -> String {
//!     format!("Run child process {name} ({})...", fork_sys::getpid())
//! }
//!
//! # fn main() -> Result<(), ProcessError> {
//! println!("Parent process {}.", fork_sys::getpid());
//! // The closure may capture anything (fork copies memory); only its return value crosses
//! // back, as one bincode frame.
//! let p = Process::spawn(move || run_proc("test"))?;
//! println!("Child process will start.");
//! let line = p.join()?;
//! assert!(line.starts_with("Run child process test ("));
//! println!("{line}\nChild process end.");
//!
//! // Failures are typed and name the process.
//! let err = Process::builder().name("doomed").spawn(|| -> u8 { panic!("boom") })?.join().unwrap_err();
//! assert!(matches!(err, ProcessError::Panicked { ref message, .. } if message == "boom"));
//! assert!(err.to_string().starts_with("process \"doomed\" (pid "));
//! # Ok(())
//! # }
//! ```
//!
//! **Async.** [`Process::join_async`] returns a [`JoinFuture`]: the same result as `join`, on
//! any executor (no runtime dependency), with one background thread for all waiters.
//!
//! Also here: [`pipe`], a typed duplex [`Connection`] like `multiprocessing.Pipe`;
//! [`wait_any`] for the first of several processes to finish; and [`codec`], the wire format
//! (length-prefixed bincode frames) that proc-pool reuses.
//!
//! Forking a multi-threaded program is only safe for code that takes no lock another thread
//! may hold. `spawn` holds stdout's and stderr's locks across the fork, so `println!` in the
//! child cannot deadlock, and glibc keeps `malloc` usable; locks of your own (a `Mutex` another
//! thread may hold at that instant) are your concern, exactly as with Python's `fork` start
//! method.
//!
//! **Start methods.** [`Process::spawn`] forks the caller ([`StartMethod::Fork`]), which costs
//! time in proportion to the caller's memory and copies every lock another thread holds. For
//! plain functions `fn(A) -> R`, [`ProcessBuilder::start_method`] offers Python's two other
//! methods: [`StartMethod::ForkServer`] (a small single-threaded server of this executable
//! forks the child: cheap and safe whatever the program has become) and [`StartMethod::Spawn`]
//! (a fresh run of this executable). Call [`init`] first in `main`; after it, function
//! children and proc-pool's pools default to `ForkServer`. docs/proc-core.md compares them.
//!
//! ```
//! use proc_core::{Process, StartMethod};
//!
//! fn word_count(text: String) -> usize {
//!     text.split_whitespace().count()
//! }
//!
//! for method in [StartMethod::Fork, StartMethod::ForkServer, StartMethod::Spawn] {
//!     let p = Process::builder().start_method(method).spawn_fn(word_count, "a b c".into())?;
//!     assert_eq!(p.join()?, 3);
//! }
//! # Ok::<(), proc_core::ProcessError>(())
//! ```

// All real unsafe lives in fork-sys. The single call of the unsafe `fork_sys::fork`, in
// `Process::spawn`, is allowed where it stands, with its SAFETY argument.
#![deny(unsafe_code)]

mod bootstrap;
mod child_side;
pub mod code_offset;
pub mod codec;
mod command_launcher;
mod connection;
mod error;
mod exec_self;
mod fork_server;
mod identity;
mod join_future;
mod join_watcher;
mod launcher;
mod process;
mod reaper;
mod result_slot;
mod spawn_fn;
mod start_method;
mod wait_any;

pub use command_launcher::{LaunchedStreams, Launcher};
pub use connection::{Connection, ConnectionError, pipe};
pub use error::ProcessError;
pub use fork_server::fork_server_pid;
pub use fork_sys::{ExitStatus, Pid, Signal};
pub use join_future::JoinFuture;
pub use process::{Process, ProcessBuilder};
pub use spawn_fn::FnProcessBuilder;
pub use start_method::{
    StartMethod, default_start_method, init, is_initialized, set_executable, set_fork_warning,
};
pub use wait_any::wait_any;
