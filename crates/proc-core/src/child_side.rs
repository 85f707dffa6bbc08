//! What a forked child does: run the closure under `catch_unwind`, send back one report frame,
//! flush its std streams and leave with `_exit`, never returning into the parent's stack.

use std::any::Any;
use std::io::{Stdout, Write};
use std::os::fd::OwnedFd;
use std::panic::{self, AssertUnwindSafe};
use std::sync::Once;
use std::sync::atomic::{AtomicBool, Ordering};

use fork_sys::{Doorbell, Pid, Signal};
use serde::{Deserialize, Serialize};

use crate::codec::{self, CodecError};
use crate::result_slot::SlotWriter;

/// The one frame a child sends back on its result pipe.
#[derive(Debug, Serialize, Deserialize)]
pub(crate) enum Report<R> {
    /// The closure returned this value.
    Returned(R),
    /// The closure panicked with this message.
    Panicked(String),
    /// The returned value could not be encoded.
    EncodeFailed { type_name: String, message: String },
    /// The encoded value was over the frame limit.
    TooLarge { len: u64, limit: u64 },
}

/// Exit codes of a child, as Python's `multiprocessing` uses them: 0 when the closure
/// returned, 1 when it panicked or its value could not be sent.
const EXIT_RETURNED: i32 = 0;
/// The index of [`Report::Returned`], its first variant (a test checks the bytes).
const RETURNED_VARIANT: u8 = 0;
/// The largest report frame a child encodes on its stack.
const SMALL_REPORT: usize = 256;
/// The most a parent's first read of a report (from a pipe or a result slot) takes into its
/// stack: room for any report a child encodes on its stack ([`SMALL_REPORT`]), and then some.
pub(crate) const STACK_READ: usize = 512;
/// The largest report a child writes without ringing its parent's doorbell: what an empty
/// pipe always holds (a page; the kernel gives a pipe at least one, even to a user over the
/// pipe-buffer limit), so the write cannot block and the child goes on to exit. The parent
/// then wakes once, at the exit, instead of once for the report and once more for the exit.
pub(crate) const SMALL_WRITE: usize = 4096;
const EXIT_FAILED: i32 = 1;

/// Set in a child right after the fork; read by the panic hook.
static IN_FORKED_CHILD: AtomicBool = AtomicBool::new(false);

/// Wraps the process's panic hook, once, so that a panic *in a forked child* does not run
/// std's default hook, which takes std's backtrace lock: a parent thread that was inside a
/// panic at the moment of the fork holds that lock for ever in the child, and the child would
/// hang instead of reporting `Panicked`. In the parent the previous hook runs as before.
///
/// Installed from the parent (never from the child, where `set_hook` could wait on a lock a
/// vanished thread held). A hook the program set *before* keeps running in the parent but not
/// in children, which print their own one-line report (no backtrace); a hook set *after*
/// replaces ours, and then children run that hook.
pub(crate) fn install_panic_hook() {
    static INSTALL: Once = Once::new();
    // `set_hook` panics when called from a panicking thread (a spawn inside a `Drop` during
    // unwinding); such a spawn goes without, as it would have before.
    // Nor from a forked child: there `set_hook` could wait for ever on the hook lock, held by
    // a parent thread that was panicking at the fork. (A child inherits the hook its parent
    // installed; this only skips the case where the parent never installed one.)
    if std::thread::panicking() || IN_FORKED_CHILD.load(Ordering::Relaxed) {
        return;
    }
    INSTALL.call_once(|| {
        let previous = panic::take_hook();
        panic::set_hook(Box::new(move |info| {
            if IN_FORKED_CHILD.load(Ordering::Relaxed) {
                let location = info.location().map_or_else(String::new, |l| {
                    format!(" at {}:{}:{}", l.file(), l.line(), l.column())
                });
                let message = panic_message(info.payload());
                // stderr's lock was held across the fork by the spawning thread, so it is free.
                let _ = writeln!(
                    std::io::stderr(),
                    "process {} panicked{location}:\n{message}",
                    fork_sys::getpid()
                );
            } else {
                previous(info);
            }
        }));
    });
}

/// Called first thing in the child after the fork.
// Inlined: a forked child runs it, and each 64 KiB window of code a child runs costs it a
// page fault (fork does not copy the page tables of the program's text).
#[inline]
pub(crate) fn mark_forked_child() {
    IN_FORKED_CHILD.store(true, Ordering::Relaxed);
}

/// Where a child's report goes.
pub(crate) enum ReportSink<'a> {
    /// A pipe of its own, which the parent reads.
    Pipe(OwnedFd),
    /// A slot of the file the parent shares with its forked children (Linux), which holds the
    /// whole report without the parent reading.
    Slot(SlotWriter<'a>),
}

impl From<OwnedFd> for ReportSink<'_> {
    fn from(pipe: OwnedFd) -> Self {
        ReportSink::Pipe(pipe)
    }
}

/// How the child should set itself up before running the closure.
pub(crate) struct ChildSetup<'a> {
    pub(crate) name: Option<&'a str>,
    /// Set for daemon processes: the parent, whose exit (the process's, not a thread's) ends
    /// this child.
    pub(crate) watch_parent: Option<Pid>,
    pub(crate) max_frame_len: usize,
    /// Rung before a report larger than [`SMALL_WRITE`], so a parent sleeping on this
    /// child's exit wakes to read it while it streams.
    pub(crate) doorbell: Option<&'a Doorbell>,
    /// Flushed before the child leaves, so that what the closure printed without a newline
    /// is not lost. Taken from the caller: `std::io::stdout()` is code of its own, and each
    /// 64 KiB window of code a forked child runs costs it a page fault.
    pub(crate) stdout: &'a Stdout,
}

/// Runs in the child after `fork`; never returns. Nothing may unwind out of here: a panic
/// escaping into `spawn` would go on running the *parent's* code in the child, so everything
/// runs under `catch_unwind` and the child leaves through `_exit` whatever happens.
// Inlined into spawn's child branch, with everything else the child runs of ours: each 64 KiB
// window of code a forked child runs costs it a page fault (fork does not copy the page tables
// of the program's text), and left to itself the compiler spreads these over several.
#[inline(always)]
pub(crate) fn run_child<F, R>(setup: ChildSetup<'_>, sink: ReportSink<'_>, body: F) -> !
where
    F: FnOnce() -> R,
    R: Serialize,
{
    // A stack overflow of the closure is reported as `process <pid> has overflowed its stack`
    // (then SIGABRT), not under the name and parent-side id of the thread that forked, which
    // std's handler would use: its per-thread table was copied by the fork. In a launched
    // child (exec'd or forked by the fork server) std's handler was never installed (the entry
    // runs before `main`), so without this an overflow there was a bare SIGSEGV. Best effort:
    // where it fails (or off Linux), std's handler, if any, stays.
    let _ = fork_sys::report_stack_overflow_as_this_process();
    let code = panic::catch_unwind(AssertUnwindSafe(|| child_main(setup, sink, body)))
        .unwrap_or(EXIT_FAILED);
    fork_sys::exit_immediately(code)
}

// Inlined: see `run_child`.
#[inline(always)]
fn child_main<F, R>(setup: ChildSetup<'_>, sink: ReportSink<'_>, body: F) -> i32
where
    F: FnOnce() -> R,
    R: Serialize,
{
    if let Some(parent) = setup.watch_parent {
        // A thread that kills this process when the parent *process* exits (the kernel's
        // parent-death signal follows the thread that forked, which may be long gone). If the
        // parent is already gone, this kills us at once.
        if fork_sys::die_with_parent_process(parent).is_err() {
            // No thread to be had (a process limit): the kernel's signal, which follows the
            // forking thread, is better than nothing.
            let _ = fork_sys::exec::set_parent_death_signal(Some(Signal::KILL));
            if fork_sys::getppid() != Some(parent) {
                return EXIT_FAILED;
            }
        }
    }
    if let Some(name) = setup.name {
        let _ = fork_sys::set_thread_name(name);
    }

    let mut frame = Vec::new();
    // A small report is encoded on the stack: every page the child writes after the fork is
    // a copy-on-write fault, and the allocator's bookkeeping and a fresh buffer cost two or
    // three of them. `small_len` says how much of `small` is the frame, if it is used.
    let mut small = [0u8; SMALL_REPORT];
    let mut small_len = 0;
    let code = match panic::catch_unwind(AssertUnwindSafe(body)) {
        Ok(value) => {
            // A user `Serialize` impl may panic too.
            let encoded = panic::catch_unwind(AssertUnwindSafe(|| {
                // `Report::Returned(value)`'s bytes, written without the enum's code.
                match codec::encode_variant_frame_into_slice(
                    RETURNED_VARIANT,
                    &value,
                    &mut small,
                    setup.max_frame_len,
                ) {
                    Ok(len) => {
                        small_len = len;
                        Ok(())
                    }
                    // Too large for the stack (or refused): the heap road says which.
                    Err(_) => codec::encode_frame(
                        &Report::Returned(&value),
                        &mut frame,
                        setup.max_frame_len,
                    ),
                }
            }));
            // The value dies with the process; running its destructor would only cost time.
            std::mem::forget(value);
            match encoded {
                Ok(Ok(())) => EXIT_RETURNED,
                Ok(Err(err)) => {
                    encode_failure(err, std::any::type_name::<R>(), &mut frame);
                    EXIT_FAILED
                }
                Err(payload) => {
                    let message = format!("Serialize panicked: {}", panic_message(&*payload));
                    std::mem::forget(payload);
                    let err = CodecError::Encode {
                        type_name: std::any::type_name::<R>(),
                        message,
                    };
                    encode_failure(err, std::any::type_name::<R>(), &mut frame);
                    EXIT_FAILED
                }
            }
        }
        Err(payload) => {
            let message = panic_message(&*payload);
            // Dropping a payload can itself panic; it dies with the process instead.
            std::mem::forget(payload);
            let report: Report<()> = Report::Panicked(message);
            if let Err(err) = codec::encode_frame(&report, &mut frame, setup.max_frame_len) {
                encode_failure(err, "panic message", &mut frame);
            }
            EXIT_FAILED
        }
    };
    let frame = if small_len > 0 {
        &small[..small_len]
    } else {
        &frame[..]
    };
    let sent = match sink {
        // The whole frame at once: the file never waits for a reader.
        ReportSink::Slot(slot) => slot.write(frame).is_ok(),
        ReportSink::Pipe(pipe) => send_through_pipe(pipe, frame, setup.doorbell),
    };
    // (std's stderr has no buffer to flush.)
    let mut stdout = setup.stdout;
    let _ = stdout.flush();
    if sent { code } else { EXIT_FAILED }
}

/// Writes the report frame to the result pipe and closes it; false when the report could not
/// be sent for a reason of ours (a failed ring or mode change).
// Inlined: see `run_child`.
#[inline(always)]
fn send_through_pipe(pipe: OwnedFd, frame: &[u8], doorbell: Option<&Doorbell>) -> bool {
    // The pipe may be non-blocking (a forked child's is: its parent reads it so). A small
    // report fits an empty pipe whole (at most `PIPE_BUF` bytes: written whole or not at all);
    // a larger one, or a small one that did not fit after all, rings first and then blocks.
    // EPIPE means the parent dropped the handle: nobody wants the value any more.
    let small_written = frame.len() <= SMALL_WRITE
        && match fork_sys::write_all(&pipe, frame) {
            Ok(()) => true,
            Err(err) => err.kind() != std::io::ErrorKind::WouldBlock,
        };
    if !small_written {
        if let Some(bell) = doorbell {
            // The parent may be asleep until this process exits: wake it to read first.
            // Should the ring fail, writing could block for ever; leave without the report.
            if bell.ring().is_err() {
                return false;
            }
        }
        if fork_sys::set_nonblocking(&pipe, false).is_err() {
            return false;
        }
        let _ = fork_sys::write_all(&pipe, frame);
    }
    // At once: the parent sees the end of the pipe without waiting for the exit.
    fork_sys::close(pipe);
    true
}

/// Replaces `frame` with a report saying why the value could not be sent.
fn encode_failure(err: CodecError, type_name: &str, frame: &mut Vec<u8>) {
    let report: Report<()> = match err {
        CodecError::FrameTooLarge { len, limit } => Report::TooLarge {
            len: len as u64,
            limit: limit as u64,
        },
        other => Report::EncodeFailed {
            type_name: type_name.to_string(),
            message: other.to_string(),
        },
    };
    frame.clear();
    // A report of a few dozen bytes always fits; if even that failed, the parent sees the
    // exit code with no report.
    let _ = codec::encode_frame(&report, frame, usize::MAX);
}

/// The text of a panic payload: `panic!("...")` carries a `&str` or a `String`.
pub(crate) fn panic_message(payload: &(dyn Any + Send)) -> String {
    if let Some(s) = payload.downcast_ref::<&str>() {
        (*s).to_string()
    } else if let Some(s) = payload.downcast_ref::<String>() {
        s.clone()
    } else {
        "Box<dyn Any>".to_string()
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)] // In tests a failed unwrap is a failed test.

    use super::*;

    /// The bytes of `Report::Returned(value)` the enum's way and the child's way.
    fn both_ways<T: Serialize>(value: &T) -> (Vec<u8>, Vec<u8>) {
        let mut enum_way = Vec::new();
        codec::encode_frame(&Report::Returned(value), &mut enum_way, usize::MAX).unwrap();
        let mut small = [0u8; 512];
        let len =
            codec::encode_variant_frame_into_slice(RETURNED_VARIANT, value, &mut small, usize::MAX)
                .unwrap();
        (enum_way, small[..len].to_vec())
    }

    #[test]
    fn a_returned_report_written_without_the_enum_has_the_enums_bytes() {
        for value in [0u64, 7, 250, 251, 70_000, u64::MAX] {
            let (enum_way, child_way) = both_ways(&value);
            assert_eq!(child_way, enum_way, "{value}");
            let (decoded, used) = codec::decode_frame::<Report<u64>>(&child_way, usize::MAX)
                .unwrap()
                .unwrap();
            assert_eq!(used, child_way.len());
            assert!(
                matches!(decoded, Report::Returned(v) if v == value),
                "{value}"
            );
        }
        let (enum_way, child_way) = both_ways(&("text".to_string(), vec![1u8, 2, 3], -5i32));
        assert_eq!(child_way, enum_way);
        let (enum_way, child_way) = both_ways(&vec![9u8; 300]);
        assert_eq!(child_way, enum_way);
    }

    #[test]
    fn a_report_that_does_not_fit_the_slice_or_the_limit_is_refused() {
        let mut small = [0u8; 8];
        assert!(
            codec::encode_variant_frame_into_slice(0, &vec![1u8; 20], &mut small, 100).is_err()
        );
        let mut room = [0u8; 64];
        let err =
            codec::encode_variant_frame_into_slice(0, &vec![1u8; 20], &mut room, 10).unwrap_err();
        assert!(
            matches!(err, CodecError::FrameTooLarge { len: 22, limit: 10 }),
            "{err}"
        );
        assert!(codec::encode_variant_frame_into_slice(251, &1u8, &mut room, 100).is_err());
    }
}
