//! A doorbell: a descriptor that becomes readable once any process holding it rings it, and
//! never merely because one of them exited.

use std::io;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};

/// A descriptor another process (a forked child, which inherits it) rings to wake a poller,
/// without a hang-up when that process exits: on Linux an `eventfd`, elsewhere a pipe whose
/// write end this side keeps open. Close-on-exec and non-blocking.
///
/// proc-core's forked child rings it before sending a report too large for an empty pipe, so
/// the parent can sleep on the child's exit alone for small reports (one wake-up per child
/// instead of two) and still read a large one while it streams.
///
/// ```
/// let bell = fork_sys::Doorbell::new()?;
/// assert!(!bell.has_rung()?);
/// bell.ring()?;
/// assert!(bell.has_rung()?);
/// # Ok::<(), std::io::Error>(())
/// ```
#[derive(Debug)]
pub struct Doorbell {
    /// What pollers wait on.
    read: OwnedFd,
    /// Where a ring goes; `None` when it is `read` itself (an eventfd).
    write: Option<OwnedFd>,
}

impl Doorbell {
    /// A new doorbell, not rung.
    ///
    /// # References
    ///  - [Linux eventfd](https://man7.org/linux/man-pages/man2/eventfd.2.html)
    pub fn new() -> io::Result<Doorbell> {
        #[cfg(any(target_os = "linux", target_os = "android"))]
        {
            use rustix::event::{EventfdFlags, eventfd};
            let fd = eventfd(0, EventfdFlags::CLOEXEC | EventfdFlags::NONBLOCK)?;
            Ok(Doorbell {
                read: fd,
                write: None,
            })
        }
        #[cfg(not(any(target_os = "linux", target_os = "android")))]
        {
            let (read, write) = crate::pipe_nonblocking()?;
            Ok(Doorbell {
                read,
                write: Some(write),
            })
        }
    }

    /// Rings: the descriptor becomes readable (and stays so). Ringing again is harmless.
    pub fn ring(&self) -> io::Result<()> {
        let target = self.write.as_ref().unwrap_or(&self.read);
        match rustix::io::write(target, &1u64.to_ne_bytes()[..self.ring_len()]) {
            // A pipe already full of rings, or an eventfd at its limit: rung all the same.
            Ok(_) | Err(rustix::io::Errno::AGAIN) => Ok(()),
            Err(err) => Err(err.into()),
        }
    }

    /// Whether it has rung, without waiting.
    pub fn has_rung(&self) -> io::Result<bool> {
        let ready = crate::poll(
            &[(self.as_fd(), crate::Interest::Read)],
            Some(std::time::Duration::ZERO),
        )?;
        Ok(ready.first().is_some_and(|r| r.readable))
    }

    /// An eventfd takes 8-byte counts; a pipe one byte is enough.
    fn ring_len(&self) -> usize {
        if self.write.is_none() { 8 } else { 1 }
    }
}

impl AsFd for Doorbell {
    /// The descriptor to poll for reading.
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.read.as_fd()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_forked_child_rings_and_its_exit_alone_does_not() -> io::Result<()> {
        for ring in [false, true] {
            let bell = Doorbell::new()?;
            // SAFETY: the child only rings (one write) and leaves with `_exit`.
            match unsafe { crate::fork()? } {
                crate::Fork::Child => {
                    let code = if ring {
                        i32::from(bell.ring().is_err())
                    } else {
                        0
                    };
                    crate::exit_immediately(code)
                }
                crate::Fork::Parent(pid) => {
                    assert_eq!(crate::wait(pid)?, crate::ExitStatus::Exited(0));
                    assert_eq!(bell.has_rung()?, ring, "rung by the child: {ring}");
                }
            }
        }
        Ok(())
    }
}
