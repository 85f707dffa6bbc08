//! [`ProcessBuilder`]: a `Process`'s options, and `spawn` under the `Fork` start method, which
//! picks where the child's report comes back (a result slot, or a pipe) and holds the locks a
//! child needs across the fork.

use std::fs::File;
use std::io::{self, Write};
use std::mem::ManuallyDrop;
use std::os::fd::OwnedFd;

use fork_sys::{ChildHandle, Doorbell, Fork};
use serde::Serialize;
use serde::de::DeserializeOwned;

use super::Process;
use crate::child_side::{self, ChildSetup, ReportSink};
use crate::codec::DEFAULT_MAX_FRAME_LEN;
use crate::error::ProcessError;
use crate::reaper;
use crate::result_slot::ResultSlot;
use crate::start_method::{self, StartMethod};

/// Options for starting a [`Process`]: `Process::builder().name("worker").daemon(true).spawn(f)`.
#[derive(Debug, Clone, Default)]
pub struct ProcessBuilder {
    name: Option<String>,
    daemon: bool,
    max_result_len: Option<usize>,
    kill_group_on_exit: bool,
}

/// A builder's settings, taken apart for a launch.
pub(crate) struct BuilderParts {
    pub(crate) name: Option<String>,
    pub(crate) daemon: bool,
    pub(crate) max_frame_len: usize,
    pub(crate) kill_group_on_exit: bool,
}

impl ProcessBuilder {
    /// A builder with the defaults: unnamed, not a daemon, 1 GiB result limit.
    pub fn new() -> ProcessBuilder {
        ProcessBuilder::default()
    }

    /// Names the process: the name appears in every error about it, and (Linux) as the
    /// child's thread name in `ps` and `top` (cut to 15 bytes).
    pub fn name(mut self, name: impl Into<String>) -> ProcessBuilder {
        self.name = Some(name.into());
        self
    }

    /// A daemon child dies with its parent *process* (SIGKILL, as soon as the parent exits,
    /// whichever thread started the child: a thread of the child sleeps on a pidfd of the
    /// parent, rather than the kernel's parent-death signal, which fires when the starting
    /// *thread* exits) and is killed when its handle is dropped.
    pub fn daemon(mut self, daemon: bool) -> ProcessBuilder {
        self.daemon = daemon;
        self
    }

    /// The largest encoded result the child may send back, in bytes (default 1 GiB). A bigger
    /// value fails the join with a `Codec` error naming both sizes.
    pub fn max_result_len(mut self, bytes: usize) -> ProcessBuilder {
        self.max_result_len = Some(bytes);
        self
    }

    /// When the child exits, kill its process group too, if it made one of its own
    /// (`setpgid(0, 0)`): whatever it started there goes with it. proc-pool's workers use this.
    /// Applied by the fork server for `ForkServer` children (before it reaps them, so the
    /// group id cannot have been reused); for the other methods the caller kills the group
    /// (with [`fork_sys::kill_group`]) once [`Process::exit_fd`] says the child exited.
    pub fn kill_group_on_exit(mut self, kill: bool) -> ProcessBuilder {
        self.kill_group_on_exit = kill;
        self
    }

    pub(crate) fn into_parts(self) -> BuilderParts {
        BuilderParts {
            max_frame_len: self.max_result_len.unwrap_or(DEFAULT_MAX_FRAME_LEN),
            name: self.name,
            daemon: self.daemon,
            kill_group_on_exit: self.kill_group_on_exit,
        }
    }

    /// Forks a child that runs `body` and sends back what it returns (the
    /// [`StartMethod::Fork`] method, the only one that can give a child a closure).
    pub fn spawn<F, R>(self, body: F) -> Result<Process<R>, ProcessError>
    where
        F: FnOnce() -> R,
        R: Serialize + DeserializeOwned,
    {
        let spawn_error = |source| ProcessError::Spawn {
            name: self.name.clone(),
            source,
        };
        let max_frame_len = self.max_result_len.unwrap_or(DEFAULT_MAX_FRAME_LEN);
        start_method::warn_if_forking_threads();
        // The child's stack-overflow report needs this thread's guard range: worked out here,
        // once per thread, rather than in every child.
        fork_sys::prepare_stack_overflow_report();
        // Where the report comes back: a slot of the file this process shares with its forked
        // children (Linux), which needs no descriptor of the child's own and lets `join` wait
        // with a plain `waitpid`; or, when every slot is taken, a pipe.
        let road = match ResultSlot::take(max_frame_len) {
            Some(slot) => ReportRoad::Slot(slot),
            None => {
                // Both ends non-blocking in one call: the parent never blocks reading, and
                // the child writes a small report at once or turns its end back to blocking
                // (`run_child`).
                let (read_end, write_end) = fork_sys::pipe_nonblocking().map_err(spawn_error)?;
                // Without one (out of fds), waits watch the pipe as for other start methods.
                let doorbell = Doorbell::new().ok();
                ReportRoad::Pipe {
                    read_end,
                    write_end,
                    doorbell,
                }
            }
        };
        // Only a daemon child needs it (to watch the parent); a system call saved otherwise.
        let parent = self.daemon.then(fork_sys::getpid);

        // Hold the locks a child might need, so that no other thread holds them at the moment
        // of the fork (the child would inherit them locked forever), and flush stdout, so
        // text buffered before the fork is not printed by both processes.
        child_side::install_panic_hook();
        let stdout = io::stdout();
        let mut stdout_lock = stdout.lock();
        let stderr = io::stderr();
        let stderr_lock = stderr.lock();
        let flushed = stdout_lock.flush();
        let reaper_lock = reaper::lock();
        let client_lock = crate::fork_server::lock_client();
        let watcher_lock = crate::join_watcher::lock();

        #[allow(unsafe_code)] // The crate's one unsafe call: Process exists to wrap it.
        // SAFETY: the locks the child's Rust code is known to need (stdout, stderr, the
        // reaper's, the fork server client's, the join watcher's) are held by this thread, so the child inherits them free once it drops its
        // guards; glibc's atfork handlers keep malloc usable; a panic in the child goes
        // through our hook, which avoids std's backtrace lock. The child never returns: it
        // runs the closure and leaves through `_exit` in `run_child`.
        let forked = unsafe { fork_sys::fork() };
        // Released on both sides (the child inherits them held by its only thread), and here,
        // before the sides part: the child's branch ends in `_exit`, so the compiler treats it
        // as cold and calls the guards' drop code out of line there, which in a forked child
        // costs a page fault for each 64 KiB window of code it touches.
        drop(watcher_lock);
        drop(client_lock);
        drop(reaper_lock);
        drop(stderr_lock);
        drop(stdout_lock);
        match forked {
            Ok(Fork::Child) => {
                child_side::mark_forked_child();
                let slot_in_child;
                let (sink, doorbell) = match road {
                    ReportRoad::Slot(slot) => {
                        // The parent's to release, once this process is gone: never here.
                        slot_in_child = ManuallyDrop::new(slot);
                        (ReportSink::Slot(slot_in_child.writer()), None)
                    }
                    ReportRoad::Pipe {
                        read_end,
                        write_end,
                        doorbell,
                    } => {
                        fork_sys::close(read_end);
                        (ReportSink::Pipe(write_end), doorbell)
                    }
                };
                let setup = ChildSetup {
                    name: self.name.as_deref(),
                    watch_parent: parent,
                    max_frame_len,
                    doorbell: doorbell.as_ref(),
                    stdout: &stdout,
                };
                child_side::run_child(setup, sink, body)
            }
            Ok(Fork::Parent(pid)) => {
                // The handle first: should dropping the closure panic, unwinding drops the
                // handle, which reaps (or, for a daemon, kills) the child.
                let process = match road {
                    ReportRoad::Slot(slot) => Process::started_with_slot(
                        // Opened only if a timed or async wait asks for it: `join` waits with
                        // `waitpid`.
                        ChildHandle::new_watched_on_demand(pid),
                        slot,
                        self.name,
                        self.daemon,
                        max_frame_len,
                    ),
                    ReportRoad::Pipe {
                        read_end,
                        write_end,
                        doorbell,
                    } => {
                        drop(write_end);
                        Process::started(
                            ChildHandle::new(pid),
                            File::from(read_end),
                            self.name,
                            self.daemon,
                            max_frame_len,
                            StartMethod::Fork,
                        )
                        .with_doorbell(doorbell)
                    }
                };
                crate::connection::discard_child_closure(body);
                // A failed flush loses nothing the user can recover; the child is started.
                let _ = flushed;
                Ok(process)
            }
            Err(err) => Err(spawn_error(err)),
        }
    }
}

/// Where a forked child's report comes back: a result slot, or a pipe of its own (with the
/// doorbell it rings before a large report).
enum ReportRoad {
    Slot(ResultSlot),
    Pipe {
        read_end: OwnedFd,
        write_end: OwnedFd,
        doorbell: Option<Doorbell>,
    },
}
