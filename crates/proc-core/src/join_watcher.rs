//! The `proc-core-exits` thread: one per process, started by the first
//! [`JoinFuture`](crate::JoinFuture) that has to wait, it sleeps in one `poll` on every waiting
//! future's descriptors (the child's exit fd and, while the value is still arriving, its result
//! pipe) and wakes the future's [`Waker`] when one of them stirs. It never reads, reaps or
//! decodes anything: the future does that itself when it is polled, with the same steps as
//! `join`. So any executor works, and a thousand waiters cost one thread.
//!
//! Each waiter is *armed* while its future waits for a wake-up and *disarmed* by the thread as
//! it wakes it: the descriptors are level-triggered (a result pipe stays readable until the
//! future reads it), and only the armed ones are polled, so the thread never spins on a
//! descriptor its future has not had the chance to read yet. A future that arms itself again
//! writes a byte on the thread's wake pipe (only when it was disarmed: a waker swap alone
//! needs no wake-up).
//!
//! The thread polls its own duplicates of the descriptors (close-on-exec), so a future that is
//! dropped never leaves it polling a closed, perhaps reused, number; a dropped future marks
//! its waiter cancelled and wakes the thread, which closes the duplicates at once (a child
//! blocked writing a large value then gets `EPIPE`, as when a `Process` is dropped).
//! Where a waiter has no exit fd (off Linux, a kernel without pidfds) or a duplicate could not
//! be made (out of fds), the thread wakes it every [`SLICE`] instead, so it still completes.
//!
//! Like fork-sys's reaper, the thread lives as long as the process, and a forked child (which
//! inherits the state but not the thread) starts its own. `Process::spawn` holds [`lock`]
//! across `fork`, so no child inherits it held.

use std::fs::File;
use std::io::{self, Read, Write};
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd, RawFd};
use std::sync::mpsc::{self, Receiver, Sender};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::task::Waker;
use std::time::{Duration, Instant};

use fork_sys::{Interest, Pid};

/// How often a waiter whose child has no exit fd is woken to look for itself.
pub(crate) const SLICE: Duration = Duration::from_millis(20);

/// The channel to this process's watcher thread.
#[derive(Debug)]
pub(crate) struct WatcherLink {
    /// The process that started the thread; in a forked child the thread does not exist.
    owner: Pid,
    waiters: Sender<Waiter>,
    wake: Arc<File>,
}

static WATCHER: Mutex<Option<WatcherLink>> = Mutex::new(None);

/// The watcher's lock. `Process::spawn` holds it across `fork`, so no other thread is half-way
/// through registering a waiter (holding it) at the instant of the fork: the child would
/// inherit it locked.
pub(crate) fn lock() -> MutexGuard<'static, Option<WatcherLink>> {
    WATCHER.lock().unwrap_or_else(PoisonError::into_inner)
}

/// What a future and the watcher share about one waiter.
#[derive(Debug)]
struct Slot {
    state: Mutex<SlotState>,
}

#[derive(Debug)]
struct SlotState {
    waker: Option<Waker>,
    /// The future is waiting: the thread polls its descriptors and wakes it once.
    armed: bool,
    /// The value is still arriving: watch the result pipe too (else only the exit fd).
    watch_pipe: bool,
    /// The future is gone: the thread forgets the waiter and closes its duplicates.
    cancelled: bool,
    /// A new exit fd for the thread to take (a fork server's child whose server died: its
    /// exit fd turns from the status pipe into a pidfd); `Some(None)`: none, wake in slices.
    new_exit: Option<Option<OwnedFd>>,
}

impl Slot {
    fn state(&self) -> MutexGuard<'_, SlotState> {
        // The state stays meaningful after a panic elsewhere; a poisoned waiter would not.
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// A future's registration with the watcher thread. Dropping it cancels the registration.
#[derive(Debug)]
pub(crate) struct Watch {
    slot: Arc<Slot>,
    wake: Arc<File>,
    /// The number of the exit fd the thread holds a duplicate of, to notice when it changes.
    exit_fd: Option<RawFd>,
}

/// The descriptors one waiter is woken by, as the future sees them right now.
#[derive(Debug, Clone, Copy)]
pub(crate) struct WakeFds<'a> {
    /// The result pipe, while the value is still arriving.
    pub(crate) pipe: Option<BorrowedFd<'a>>,
    /// Readable once the child exited (a pidfd, or a fork server's status pipe).
    pub(crate) exit: Option<BorrowedFd<'a>>,
}

impl Watch {
    /// Registers a waiter woken through `waker` when one of `fds` stirs, armed from the start,
    /// starting the watcher thread if this process has none. Fails only when the thread cannot
    /// be started (out of threads or fds).
    pub(crate) fn register(fds: WakeFds<'_>, waker: &Waker) -> io::Result<Watch> {
        let slot = Arc::new(Slot {
            state: Mutex::new(SlotState {
                waker: Some(waker.clone()),
                armed: true,
                watch_pipe: fds.pipe.is_some(),
                cancelled: false,
                new_exit: None,
            }),
        });
        let exit = fds.exit.and_then(duplicate);
        let pipe = fds.pipe.and_then(duplicate);
        let waiter = Waiter {
            // A duplicate that could not be made: slices, never a wait nothing ends.
            sliced: exit.is_none() || (fds.pipe.is_some() && pipe.is_none()),
            slot: Arc::clone(&slot),
            pipe,
            exit,
        };
        let wake = hand_over(waiter)?;
        Ok(Watch {
            slot,
            wake,
            exit_fd: fds.exit.map(|fd| fd.as_raw_fd()),
        })
    }

    /// Arms the waiter again (the future is about to return `Pending`): `waker` is woken the
    /// next time one of `fds` stirs. Wakes the thread when it was not watching this waiter.
    pub(crate) fn arm(&mut self, fds: WakeFds<'_>, waker: &Waker) {
        let exit_fd = fds.exit.map(|fd| fd.as_raw_fd());
        let exit_changed = exit_fd != self.exit_fd;
        let was_armed = {
            let mut state = self.slot.state();
            if !state.waker.as_ref().is_some_and(|w| w.will_wake(waker)) {
                state.waker = Some(waker.clone());
            }
            state.watch_pipe = fds.pipe.is_some();
            if exit_changed {
                state.new_exit = Some(fds.exit.and_then(duplicate));
                self.exit_fd = exit_fd;
            }
            std::mem::replace(&mut state.armed, true)
        };
        if !was_armed || exit_changed {
            wake_thread(&self.wake);
        }
    }
}

impl Drop for Watch {
    fn drop(&mut self) {
        {
            let mut state = self.slot.state();
            state.cancelled = true;
            state.waker = None;
        }
        // So the thread closes its duplicates now, not at its next wake-up.
        wake_thread(&self.wake);
    }
}

/// A close-on-exec duplicate of `fd`; `None` when the process is out of fds.
fn duplicate(fd: BorrowedFd<'_>) -> Option<OwnedFd> {
    fd.try_clone_to_owned().ok()
}

fn wake_thread(wake: &File) {
    // Non-blocking: a full pipe already holds a pending wake-up, so losing this byte is fine.
    let _ = (&*wake).write(&[1]);
}

/// Sends `waiter` to this process's watcher thread, starting it first if need be; returns
/// the thread's wake pipe.
fn hand_over(waiter: Waiter) -> io::Result<Arc<File>> {
    let mut link = lock();
    let me = fork_sys::getpid();
    if link.as_ref().is_none_or(|l| l.owner != me) {
        let started = start(me)?;
        // In a forked child the old link is the parent's: leave its channel alone (the
        // parent's thread may have been inside it at the fork) and leak it, once per child.
        if let Some(inherited) = link.replace(started) {
            std::mem::forget(inherited);
        }
    }
    let link = link
        .as_mut()
        .ok_or_else(|| io::Error::other("the exit watcher thread is missing"))?;
    link.waiters
        .send(waiter)
        .map_err(|_| io::Error::other("the exit watcher thread has ended"))?;
    wake_thread(&link.wake);
    Ok(Arc::clone(&link.wake))
}

fn start(owner: Pid) -> io::Result<WatcherLink> {
    let (wake_read, wake_write) = fork_sys::pipe_nonblocking()?;
    let (waiters, inbox) = mpsc::channel();
    std::thread::Builder::new()
        .name("proc-core-exits".into())
        .spawn(move || watch_forever(&inbox, File::from(wake_read)))?;
    Ok(WatcherLink {
        owner,
        waiters,
        wake: Arc::new(File::from(wake_write)),
    })
}

/// The thread's view of one waiter: its own duplicates of the future's descriptors.
#[derive(Debug)]
struct Waiter {
    slot: Arc<Slot>,
    pipe: Option<OwnedFd>,
    exit: Option<OwnedFd>,
    /// Woken every [`SLICE`]: no exit fd, or a pipe it could not duplicate.
    sliced: bool,
}

fn watch_forever(inbox: &Receiver<Waiter>, mut wake: File) {
    let mut waiters: Vec<Waiter> = Vec::new();
    let mut last_slice = Instant::now();
    loop {
        waiters.extend(inbox.try_iter());
        // Take in what the futures changed; find the armed waiters.
        let mut armed = Vec::with_capacity(waiters.len());
        waiters.retain_mut(|waiter| {
            let mut state = waiter.slot.state();
            if state.cancelled {
                return false;
            }
            if let Some(exit) = state.new_exit.take() {
                waiter.sliced |= exit.is_none();
                waiter.exit = exit;
            }
            if !state.watch_pipe {
                waiter.pipe = None;
            }
            armed.push(state.armed);
            true
        });

        let mut fds = vec![(wake.as_fd(), Interest::Read)];
        // Which waiter each descriptor after the wake pipe belongs to.
        let mut owners = Vec::new();
        let mut timeout = None;
        for (index, waiter) in waiters.iter().enumerate() {
            if !armed[index] {
                continue;
            }
            for fd in [&waiter.pipe, &waiter.exit].into_iter().flatten() {
                fds.push((fd.as_fd(), Interest::Read));
                owners.push(index);
            }
            if waiter.sliced {
                timeout = Some(SLICE.saturating_sub(last_slice.elapsed()));
            }
        }
        let mut fire = vec![false; waiters.len()];
        let mut woken_by_pipe = false;
        match fork_sys::poll(&fds, timeout) {
            Ok(ready) => {
                woken_by_pipe = ready.first().is_some_and(|r| r.is_ready());
                for (owner, readiness) in owners.iter().zip(ready.iter().skip(1)) {
                    if readiness.is_ready() {
                        fire[*owner] = true;
                    }
                }
            }
            // Too many fds for poll, or no memory: every armed waiter looks for itself, in
            // slices, until poll works again.
            Err(_) => {
                std::thread::sleep(SLICE);
                fire.copy_from_slice(&armed);
            }
        }
        drop(fds);
        if last_slice.elapsed() >= SLICE {
            last_slice = Instant::now();
            for (index, waiter) in waiters.iter().enumerate() {
                fire[index] |= waiter.sliced && armed[index];
            }
        }
        for (waiter, _) in waiters.iter().zip(&fire).filter(|(_, fire)| **fire) {
            let waker = {
                let mut state = waiter.slot.state();
                state.armed = false;
                state.waker.take()
            };
            if let Some(waker) = waker {
                waker.wake();
            }
        }
        if woken_by_pipe {
            drain(&mut wake);
        }
    }
}

/// Empties the wake pipe (non-blocking): one wake-up stands for all the bytes written.
fn drain(wake: &mut File) {
    let mut bytes = [0u8; 256];
    while matches!(wake.read(&mut bytes), Ok(n) if n == bytes.len()) {}
}
