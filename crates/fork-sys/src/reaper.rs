//! The background reaper: children whose owners gave up on them while they still ran are
//! waited for here, so none of them lingers as a zombie.
//!
//! One thread per process, started on first use. Handles reach it over a channel; a pipe wakes
//! it. It sleeps in `poll` on the wake pipe and every child's pidfd (Linux), or wakes every
//! 50 ms where there are no pidfds. A forked child inherits the state but not the thread, so
//! the state remembers which pid started the thread and a child starts its own.
//!
//! proc-core's `Process` and proc-spawn's `Child` both hand their dropped children here, so a
//! program using both has one reaper thread.

use std::fs::File;
use std::io::{Read, Write};
use std::os::fd::{AsFd, OwnedFd};
use std::sync::mpsc::{self, Receiver, Sender};
use std::sync::{MutexGuard, PoisonError};
use std::time::Duration;

use crate::{ChildHandle, Interest, Pid};

/// The channel to this process's reaper thread.
#[derive(Debug)]
pub struct ReaperLink {
    /// The process that started the thread; in a forked child the thread does not exist.
    owner: Pid,
    handles: Sender<Adopted>,
    wake: File,
}

/// What runs once an adopted child has been reaped.
type AfterReaped = Box<dyn FnOnce() + Send>;

/// A child in the reaper's care.
struct Adopted {
    child: ChildHandle,
    then: Option<AfterReaped>,
}

impl Adopted {
    /// Reaps the child if it has ended (or can no longer be waited for) and runs what was to
    /// follow; true once it is gone.
    fn reap(&mut self) -> bool {
        if matches!(self.child.try_wait(), Ok(None)) {
            return false;
        }
        if let Some(then) = self.then.take() {
            then();
        }
        true
    }
}

/// Hands `child` (running, or a zombie) to a background thread that reaps it when it ends.
/// When no thread can be started (out of threads or fds), waits for the child here instead:
/// blocking beats a zombie nobody reaps.
pub fn reap_in_background(child: ChildHandle) {
    reap(Adopted { child, then: None });
}

/// [`reap_in_background`], then runs `then` (on the reaper thread) once the child has been
/// reaped: for what must outlive the child, such as memory it may still write to.
pub fn reap_in_background_then(child: ChildHandle, then: impl FnOnce() + Send + 'static) {
    reap(Adopted {
        child,
        then: Some(Box::new(then)),
    });
}

fn reap(adopted: Adopted) {
    if let Err(mut adopted) = hand_over(adopted) {
        let _ = adopted.child.wait();
        // Reaped now (or not waitable): runs what follows.
        adopted.reap();
    }
}

/// The reaper's lock. Hold it across a `fork` whose child may run Rust code, so that no other
/// thread is half-way through [`reap_in_background`] (holding it) at the moment of the fork:
/// the child would inherit it locked.
pub fn reaper_lock() -> MutexGuard<'static, Option<ReaperLink>> {
    crate::fork::reaper_mutex()
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
}

fn hand_over(child: Adopted) -> Result<(), Adopted> {
    let mut link = reaper_lock();
    let me = crate::getpid();
    if link.as_ref().is_none_or(|l| l.owner != me) {
        match start(me) {
            Ok(started) => {
                // In a forked child the old link is the parent's: leave its channel alone (the
                // parent's reaper thread may have been inside it at the fork) and leak it, one
                // pipe fd, once per child.
                if let Some(inherited) = link.replace(started) {
                    std::mem::forget(inherited);
                }
            }
            Err(_) => return Err(child),
        }
    }
    let Some(link) = link.as_mut() else {
        return Err(child);
    };
    link.handles
        .send(child)
        .map_err(|mpsc::SendError(child)| child)?;
    // A full wake pipe already holds a pending wake-up; losing this byte is harmless.
    let _ = link.wake.write(&[1]);
    Ok(())
}

fn start(owner: Pid) -> std::io::Result<ReaperLink> {
    let (wake_read, wake_write) = crate::pipe_nonblocking()?;
    let (handles, inbox) = mpsc::channel();
    std::thread::Builder::new()
        .name("fork-sys-reaper".into())
        .spawn(move || reap_forever(inbox, wake_read))?;
    Ok(ReaperLink {
        owner,
        handles,
        wake: File::from(wake_write),
    })
}

fn reap_forever(inbox: Receiver<Adopted>, wake: OwnedFd) {
    let mut children: Vec<Adopted> = Vec::new();
    let mut wake = File::from(wake);
    loop {
        children.extend(inbox.try_iter());
        // A child whose status cannot be read any more (ECHILD) is gone too.
        children.retain_mut(|adopted| !adopted.reap());

        let mut fds = vec![(wake.as_fd(), Interest::Read)];
        let mut timeout = None;
        for adopted in &children {
            match adopted.child.exit_fd() {
                Some(exit_fd) => fds.push((exit_fd, Interest::Read)),
                // No exit event to sleep on: look again in a while.
                None => timeout = Some(Duration::from_millis(50)),
            }
        }
        if crate::poll(&fds, timeout).is_err() {
            std::thread::sleep(Duration::from_millis(50));
        }
        drop(fds);
        let _ = wake.read(&mut [0u8; 64]);
    }
}
