//! Start methods: how a child process comes to exist (Python's `multiprocessing` start
//! methods), the program's entry for children started by `exec`, and the warning about
//! forking a multi-threaded process.

use std::fmt;
use std::path::PathBuf;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicU8, Ordering};
use std::time::{Duration, Instant};

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// How a child process is started. Pick with
/// [`ProcessBuilder::start_method`](crate::ProcessBuilder::start_method) or proc-pool's
/// `PoolBuilder::start_method`.
///
/// | | `Fork` | `ForkServer` | `Spawn` |
/// |---|---|---|---|
/// | child is | a copy of the caller, now | a fork of a small server process | a fresh run of this executable |
/// | runs | any closure | `fn(A) -> R` | `fn(A) -> R` |
/// | cost | grows with the caller's memory (~67 µs per MiB) | flat, well under a millisecond | flat, ~1–2 ms (exec, dynamic loading) |
/// | inherits | every fd, every lock another thread held | nothing of the caller's | nothing of the caller's |
///
/// `ForkServer` and `Spawn` need the program's entry for children: [`init`] first in
/// `main` (and, in test binaries and wherever the platform runs constructors, a constructor
/// that proc-core installs does the same before `main`). docs/proc-core.md says which to pick.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum StartMethod {
    /// `fork` the calling process at the moment of the call: the child sees everything the
    /// caller had, closures may capture anything; costly from a big parent and unsafe from a
    /// multi-threaded one (a lock another thread held stays held in the child).
    Fork,
    /// Ask a fork server (a single-threaded process of this executable, started on first use,
    /// that owns no user state) to fork the child: cheap whatever the caller's size, and the
    /// child inherits no lock and no fd of the caller's.
    ForkServer,
    /// Start a fresh process of this executable (`posix_spawn` of itself) for each child.
    Spawn,
}

impl StartMethod {
    /// Python's name for the method: `"fork"`, `"forkserver"`, `"spawn"`.
    pub fn name(self) -> &'static str {
        match self {
            StartMethod::Fork => "fork",
            StartMethod::ForkServer => "forkserver",
            StartMethod::Spawn => "spawn",
        }
    }
}

impl fmt::Display for StartMethod {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// Set once [`init`] has run in this program.
static INITIALIZED: AtomicBool = AtomicBool::new(false);

/// The program's entry for children started by [`StartMethod::Spawn`] and
/// [`StartMethod::ForkServer`]; call it first in `main`.
///
/// In the program it returns at once (it only records that the program opted in: pools and
/// [`ProcessBuilder::spawn_fn`](crate::ProcessBuilder::spawn_fn) then default to
/// `ForkServer`). In a child started by `exec` it never returns: the child runs the function
/// it was started for and exits. Anything before `init()` in `main` runs in every such child
/// too, which is why it comes first.
///
/// proc-core also runs this check from a constructor, before `main`, on Linux, the BSDs and
/// macOS, so children work in test binaries (whose `main` the test harness owns) and in
/// programs that forgot the call; `init()` is the explicit, portable entry.
///
/// ```
/// fn square(x: u64) -> u64 {
///     x * x
/// }
///
/// fn main() {
///     proc_core::init(); // first
///     let p = proc_core::Process::builder().spawn_fn(square, 7).unwrap(); // a ForkServer child
///     assert_eq!(p.join().unwrap(), 49);
/// }
/// ```
pub fn init() {
    crate::exec_self::enter_if_started_as_child();
    INITIALIZED.store(true, Ordering::Release);
}

/// Whether [`init`] has run in this program.
pub fn is_initialized() -> bool {
    INITIALIZED.load(Ordering::Acquire)
}

/// The method used when none is chosen: `ForkServer` once [`init`] has run, `Fork` otherwise
/// (a program that never called `init` keeps forking, as before start methods existed).
pub fn default_start_method() -> StartMethod {
    if is_initialized() {
        StartMethod::ForkServer
    } else {
        StartMethod::Fork
    }
}

/// The executable `Spawn` children and the fork server are started from (Python's
/// `multiprocessing.set_executable`); `None` restores the default, the file this process
/// runs. The program there must be the *same build* as this one: its identity (build id) is
/// checked in the child's hello and a different one is refused with
/// [`ProcessError::ExecutableMismatch`](crate::ProcessError::ExecutableMismatch). A fork server
/// already running keeps its executable.
pub fn set_executable(path: Option<PathBuf>) {
    *lock(&EXECUTABLE) = path;
}

static EXECUTABLE: Mutex<Option<PathBuf>> = Mutex::new(None);

/// The executable chosen with [`set_executable`], if any.
pub(crate) fn chosen_executable() -> Option<PathBuf> {
    lock(&EXECUTABLE).clone()
}

/// 0: not decided yet (read `PROCKIT_FORK_WARNING`); 1: warn; 2: never warn.
static FORK_WARNING: AtomicU8 = AtomicU8::new(0);
static WARNED: AtomicBool = AtomicBool::new(false);

/// Turns the one-time warning about forking a multi-threaded process off (`false`) or on.
/// It is on by default; the environment variable `PROCKIT_FORK_WARNING=0` turns it off too.
///
/// Like Python 3.12's `DeprecationWarning` from `os.fork()`, the warning is printed once per
/// process, on stderr, the first time a [`StartMethod::Fork`] child is started while the
/// program has more than one thread of its own (threads proc-pool and proc-core run for
/// themselves do not count).
pub fn set_fork_warning(enabled: bool) {
    FORK_WARNING.store(if enabled { 1 } else { 2 }, Ordering::Relaxed);
}

fn fork_warning_enabled() -> bool {
    match FORK_WARNING.load(Ordering::Relaxed) {
        1 => true,
        2 => false,
        _ => {
            let off = std::env::var_os("PROCKIT_FORK_WARNING").is_some_and(|v| v == "0");
            FORK_WARNING.store(if off { 2 } else { 1 }, Ordering::Relaxed);
            !off
        }
    }
}

/// How often (at most) a `Fork` start looks again whether the program has threads.
const WARNING_RECHECK: Duration = Duration::from_secs(1);

/// Names of the threads prockit runs for itself: they fork nothing behind the caller's back
/// and take care of their own locks, so they do not make a fork unsafe.
const LIBRARY_THREADS: [&str; 5] = [
    "proc-pool",
    "fork-sys-reaper",
    "proc-core-exits",
    "parent-watch",
    "pool-flusher",
];

/// Called before a `Fork` child is started: warns once when the program has more than one
/// thread of its own.
pub(crate) fn warn_if_forking_threads() {
    if WARNED.load(Ordering::Relaxed) || !fork_warning_enabled() {
        return;
    }
    // Counting threads reads /proc: at most once a second, not on every fork (a program that
    // forks in a loop would pay tens of microseconds each time).
    static LAST_LOOK: Mutex<Option<Instant>> = Mutex::new(None);
    {
        let Ok(mut last) = LAST_LOOK.try_lock() else {
            return; // Another thread is looking right now.
        };
        let now = Instant::now();
        if last.is_some_and(|at| now.duration_since(at) < WARNING_RECHECK) {
            return;
        }
        *last = Some(now);
    }
    if fork_sys::thread_count().is_none_or(|n| n <= 1) {
        return;
    }
    let Some(user_threads) = user_thread_count() else {
        return;
    };
    if user_threads <= 1 || WARNED.swap(true, Ordering::Relaxed) {
        return;
    }
    eprintln!(
        "prockit: warning: process {} has {user_threads} threads and forks a child \
         (StartMethod::Fork): a lock another thread holds at that instant stays locked in \
         the child for ever. Use StartMethod::ForkServer or StartMethod::Spawn (call \
         proc_core::init() first in main), or silence this with \
         proc_core::set_fork_warning(false) or PROCKIT_FORK_WARNING=0.",
        fork_sys::getpid()
    );
}

/// Threads of the program that are not prockit's own (Linux: by their names in
/// `/proc/self/task`); `None` where that cannot be read.
fn user_thread_count() -> Option<usize> {
    #[cfg(target_os = "linux")]
    {
        let mut count = 0;
        for task in std::fs::read_dir("/proc/self/task").ok()? {
            let Ok(task) = task else { continue };
            let name = std::fs::read_to_string(task.path().join("comm")).unwrap_or_default();
            if !LIBRARY_THREADS.contains(&name.trim_end()) {
                count += 1;
            }
        }
        Some(count)
    }
    #[cfg(not(target_os = "linux"))]
    {
        let _ = LIBRARY_THREADS;
        fork_sys::thread_count()
    }
}
