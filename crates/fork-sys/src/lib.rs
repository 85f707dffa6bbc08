//! Thin, documented wrappers over the process syscalls prockit is built on: `fork`, pipes,
//! `waitpid` (with timeouts that sleep in the kernel), signals, pidfds, the child's side of
//! `exec`, [`spawn`] (a program started through `posix_spawn`, or fork+exec when the request
//! needs it) and a background reaper. This is the only prockit crate with real `unsafe`; every
//! other crate goes through it.
//!
//! Python's `os.fork` example, in Rust:
//!
//! ```
//! use fork_sys::{Fork, ExitStatus};
//!
//! # fn main() -> std::io::Result<()> {
//! println!("Process ({}) start...", fork_sys::getpid());
//! // SAFETY: the child only formats and writes a line, then leaves with `_exit`; this doc test
//! // runs single-threaded, so no lock can be held by a thread that fork left behind.
//! match unsafe { fork_sys::fork()? } {
//!     Fork::Child => {
//!         println!("I am child process ({}) and my parent is {}.",
//!             fork_sys::getpid(), fork_sys::getppid().map_or(0, |p| p.as_raw()));
//!         fork_sys::exit_immediately(0);
//!     }
//!     Fork::Parent(child) => {
//!         println!("I ({}) just created a child process ({child}).", fork_sys::getpid());
//!         assert_eq!(fork_sys::wait(child)?, ExitStatus::Exited(0));
//!     }
//! }
//! # Ok(())
//! # }
//! ```
//!
//! Each wrapper returns `std::io::Result`, takes owned or borrowed fds rather than integers, and
//! links its man pages. Platform differences (pidfd on Linux, kqueue on Apple/BSD) live behind
//! `cfg` inside the module that needs them, never in callers.

mod child;
mod doorbell;
pub mod exec;
mod fork;
mod interrupt;
mod loaded_image;
mod memory;
#[cfg(target_os = "linux")]
mod memory_file;
mod parent_watch;
mod pid;
mod pipe;
mod poll;
mod reaper;
mod shared_memory;
mod shared_region;
mod shared_ring;
mod signal;
mod socket;
mod spawn;
mod stack_overflow;
mod status;
mod wait;

pub use child::{ChildHandle, STATUS_GRACE, StatusLost, is_status_lost};
pub use doorbell::Doorbell;
pub use fork::{Fork, exit_immediately, fork};
pub use interrupt::{
    count_signal_interrupting, restore_default_action, set_interval_timer, set_signal_blocked,
    signals_caught,
};
pub use loaded_image::{LoadedImage, loaded_image};
pub use memory::populate_for_writing;
#[cfg(target_os = "linux")]
pub use memory_file::{MemoryFile, MemoryFileHold, SharedMemoryFile};
pub use parent_watch::{die_with_parent_process, process_exit_fd};
pub use pid::{Pid, getpid, getpid_cached, getppid};
pub use pipe::{
    close, is_cloexec, move_fd_high, pipe, pipe_nonblocking, set_nonblocking, set_pipe_size,
    splice_into_pipe, write_all,
};
pub use poll::{
    Interest, Readiness, monotonic_now, poll, poll_array, set_thread_name, thread_count,
};
pub use reaper::{ReaperLink, reap_in_background, reap_in_background_then, reaper_lock};
pub use shared_memory::SharedAtomics;
pub use shared_region::{Plain, SharedRegion, futex_wait, futex_wake, process_is_gone};
pub use shared_ring::{RingFull, SharedRing};
pub use signal::{Signal, ignore_signal, kill, kill_group};
pub use socket::{
    forbid_sigpipe, recv_nonblocking, recv_with_fds, send_nosignal, send_with_fds, shutdown,
    socketpair,
};
pub use spawn::{
    ProcessGroup, SpawnFailure, SpawnMethod, SpawnRequest, SpawnStep, SpawnWindow,
    check_executable, spawn, spawn_by, spawn_child_in_window, spawn_in_window, spawn_window,
};
pub use stack_overflow::{prepare_stack_overflow_report, report_stack_overflow_as_this_process};
pub use status::ExitStatus;
pub use wait::{NotAChild, is_not_a_child, try_wait, wait, wait_timeout};

/// Runs a rustix call again for as long as a signal interrupts it (`EINTR`). Allocation-free,
/// so the child's side of exec may use it too.
pub(crate) fn retry_eintr<T>(
    mut call: impl FnMut() -> rustix::io::Result<T>,
) -> std::io::Result<T> {
    loop {
        match call() {
            Err(rustix::io::Errno::INTR) => continue,
            other => return Ok(other?),
        }
    }
}
