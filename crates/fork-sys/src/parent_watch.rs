//! Dying with a parent *process*, not with the thread that forked.
//!
//! `PR_SET_PDEATHSIG` fires when the *thread* that forked exits: a child forked from a thread
//! pool's thread (tokio retires idle `spawn_blocking` threads after 10 s) is killed while its
//! parent process still runs. Here the child watches its parent process instead: a pidfd of it
//! (Linux; a kqueue `NOTE_EXIT` filter on Apple and the BSDs), which becomes readable when the
//! last thread of that process has exited, polled by one small thread. The parent pays
//! nothing: no descriptor of its own, nothing to pass, and it works the same for a child forked
//! from it and for one it started by `exec`.

use std::io;
use std::os::fd::{AsFd, OwnedFd};
use std::time::Duration;

use crate::{Interest, Pid, Signal};

/// An fd that becomes readable when process `pid` exits (any process this one may see, not
/// only a child; nothing is reaped): a pidfd on Linux, a kqueue watching `pid`'s exit on Apple
/// and the BSDs. `Unsupported` elsewhere.
///
/// # References
///  - [Linux pidfd_open](https://man7.org/linux/man-pages/man2/pidfd_open.2.html)
///  - [FreeBSD kqueue, EVFILT_PROC](https://man.freebsd.org/cgi/man.cgi?kqueue)
pub fn process_exit_fd(pid: Pid) -> io::Result<OwnedFd> {
    crate::wait::process_exit_fd(pid)
}

/// How often the fallback (no exit fd on this platform) looks at `getppid`.
const FALLBACK_SLICE: Duration = Duration::from_millis(100);

/// Makes the calling process die (SIGKILL to itself) as soon as `parent`, its parent process,
/// exits, whichever of `parent`'s threads started it.
///
/// Opens an exit fd of `parent` ([`process_exit_fd`]), then checks that `parent` is still this
/// process's parent (if it died before, the pid might already name a stranger, and this
/// process is killed before returning), then starts one thread, named `parent-watch`, that
/// sleeps in `poll` on the fd for the rest of the process. Where the platform has no exit fd,
/// the thread looks at `getppid` every 100 ms instead. Errors only if the thread cannot be
/// started. In a child forked from a multi-threaded parent, call it only where starting a
/// thread is safe (it allocates).
///
/// # References
///  - [Linux pidfd_open](https://man7.org/linux/man-pages/man2/pidfd_open.2.html)
///  - [Linux PR_SET_PDEATHSIG, and why it follows the thread](https://man7.org/linux/man-pages/man2/PR_SET_PDEATHSIG.2const.html)
pub fn die_with_parent_process(parent: Pid) -> io::Result<()> {
    let exit_fd = process_exit_fd(parent);
    if crate::getppid() != Some(parent) {
        die();
    }
    std::thread::Builder::new()
        .name("parent-watch".into())
        .spawn(move || match exit_fd {
            Ok(exit_fd) => watch_exit_fd(&exit_fd),
            Err(_) => loop {
                std::thread::sleep(FALLBACK_SLICE);
                if crate::getppid() != Some(parent) {
                    die();
                }
            },
        })?;
    Ok(())
}

fn watch_exit_fd(exit_fd: &OwnedFd) -> ! {
    loop {
        match crate::poll(&[(exit_fd.as_fd(), Interest::Read)], None) {
            Ok(ready) if ready.iter().any(|r| r.is_ready()) => die(),
            Ok(_) => {}
            // Not expected for an fd we own; never spin on it.
            Err(_) => std::thread::sleep(FALLBACK_SLICE),
        }
    }
}

/// SIGKILL to this process; `_exit(137)` (what a shell reports for SIGKILL) if that fails.
fn die() -> ! {
    let _ = crate::kill(crate::getpid(), Signal::KILL);
    crate::exit_immediately(128 + 9)
}
