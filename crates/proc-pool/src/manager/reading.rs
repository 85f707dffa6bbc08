//! Reading what workers send: each worker's results (its ring, or the stream of a launched
//! worker), every frame's header checked as it arrives, each frame handed to the sink of the
//! chunk it answers; after a worker's death, the part it had staged. The scheduling loop that
//! calls this is in the parent module.

use std::sync::atomic::Ordering;
use std::time::Instant;

use proc_core::codec::{self, CodecError, FrameBuffer};

use super::Manager;
use crate::error::TaskError;
use crate::protocol::{
    self, CLAIMED, EncodedItems, FAILED, INIT_FAILED, LAST, Origin, READY_FLAG, RESULT_MAGIC,
    ResultHeader, SETUP_FAILED, VALUES,
};
use crate::worker::{CLAIM, READY, STARTED_AT, WAKE_PENDING};
use crate::worker_handle::Worker;

impl Manager {
    /// One bounded pass over a worker's result ring, handling every whole frame; returns the
    /// bytes read. `woken`: its wake pipe is readable (drain it).
    pub(super) fn read_results(&mut self, index: usize, now: Instant, woken: bool) -> usize {
        let worker = &mut self.workers[index];
        if woken && !worker.on_stream() {
            worker.drain_wake_pipe();
        }
        let read = match worker.ring.as_mut() {
            Some(ring) => {
                // Cleared before reading, so a result published after the read sends a new
                // wake.
                worker.counters.get(WAKE_PENDING).store(0, Ordering::SeqCst);
                worker.frames.read_available(ring)
            }
            // A worker on a stream: its results come on the stream itself.
            None => match worker.wake.as_mut() {
                Some(stream) => worker.frames.read_available(stream),
                None => Ok(codec::ReadPass::default()),
            },
        };
        let bytes = match read {
            Ok(pass) => {
                if pass.eof && worker.on_stream() {
                    worker.wake = None;
                }
                pass.bytes
            }
            Err(err) => {
                protocol_violation(worker, format!("its results cannot be read: {err}"));
                return 0;
            }
        };
        // Taken out while its frames are handled (they borrow it), put back after.
        let mut frames = std::mem::replace(&mut worker.frames, FrameBuffer::new(0));
        loop {
            let worker = &mut self.workers[index];
            if worker.violation.is_some() {
                break;
            }
            if worker.separator_due {
                match frames.peek().first() {
                    None => break,
                    Some(&protocol::STREAM_SEPARATOR) => {
                        frames.consume(1);
                        worker.separator_due = false;
                    }
                    Some(other) => {
                        let message = format!("byte {other:#04x} where a frame's newline was due");
                        protocol_violation(worker, message);
                        break;
                    }
                }
            }
            let start = protocol::check_frame_start(
                frames.peek(),
                RESULT_MAGIC,
                worker.result_seq,
                "result",
            );
            if let Err(violation) = start {
                protocol_violation(worker, violation.0);
                break;
            }
            let payload = match frames.next_payload() {
                Ok(Some(payload)) => payload,
                Ok(None) => break,
                Err(err) => {
                    protocol_violation(worker, format!("a result frame was refused: {err}"));
                    break;
                }
            };
            let Some((header, items)) = protocol::parse_result(payload) else {
                let message = format!("a result frame of {} bytes is too short", payload.len());
                protocol_violation(worker, message);
                break;
            };
            worker.result_seq = worker.result_seq.wrapping_add(1);
            worker.separator_due = worker.on_stream();
            self.handle_result(index, header, items, now);
        }
        self.workers[index].frames = frames;
        bytes
    }

    /// Hands one result frame (or the part a dead worker staged) to the sink of the chunk it
    /// answers, after checking that it answers the chunk due.
    fn handle_result(&mut self, index: usize, header: ResultHeader, items: &[u8], now: Instant) {
        let worker = &mut self.workers[index];
        let pid = worker.pid();
        let decode_message = |items: &[u8]| {
            codec::decode_value::<String>(items)
                .map_or_else(|err| err.to_string(), |(message, _)| message)
        };
        if header.flags & SETUP_FAILED != 0 {
            worker.setup_failed = Some(decode_message(items));
            return;
        }
        if header.flags & CLAIMED != 0 {
            // A worker on a stream starts the chunk it was sent as `first_item`.
            let seq = u64::from(header.first_item);
            let since = now.saturating_duration_since(self.clock_base);
            worker.counters.get(STARTED_AT).store(
                u64::try_from(since.as_nanos()).unwrap_or(u64::MAX),
                Ordering::Release,
            );
            worker.counters.get(CLAIM).store(seq, Ordering::Release);
            worker.last_progress = now;
            return;
        }
        if header.flags & READY_FLAG != 0 {
            worker.counters.get(READY).store(1, Ordering::Release);
            return;
        }
        if header.flags & INIT_FAILED != 0 {
            let message = decode_message(items);
            self.broken
                .get_or_insert(TaskError::InitializerFailed { pid, message });
            self.closed = true;
            return;
        }
        let Some(front) = worker.in_flight.front_mut() else {
            protocol_violation(worker, "a result frame arrived with no task owed".into());
            return;
        };
        if front.task.id != header.id || front.next_item() != header.first_item {
            let message = format!(
                "results for task {} from item {} arrived where task {} from item {} was due",
                header.id,
                header.first_item,
                front.task.id,
                front.next_item()
            );
            protocol_violation(worker, message);
            return;
        }
        let origin = Origin {
            task: header.id,
            pid,
        };
        let last = header.flags & LAST != 0;
        if header.flags & FAILED != 0 {
            let message = decode_message(items);
            front.task.reply.fail(TaskError::codec(
                Some(header.id),
                CodecError::Decode {
                    type_name: "task arguments",
                    len: front.task.frame.len(),
                    message,
                },
            ));
        } else {
            let encoded = EncodedItems {
                bytes: items,
                values_only: header.flags & VALUES != 0,
                count: header.count as usize,
            };
            front
                .task
                .reply
                .deliver(header.first_item as usize, encoded, last, origin);
            front.delivered += header.count;
        }
        if last {
            self.early_deaths = 0;
            if let Some(done) = worker.in_flight.pop_front() {
                let sample = match worker.ring {
                    Some(_) => worker.time_per_chunk(),
                    // A worker on a stream shares no clock: measured from here.
                    None => Some(
                        now.saturating_duration_since(worker.last_progress.max(done.dispatched)),
                    ),
                };
                if let Some(sample) = sample {
                    let sample = sample.as_nanos() as f64;
                    self.est_nanos = Some(match self.est_nanos {
                        None => sample,
                        Some(est) => est * 0.9 + sample * 0.1,
                    });
                }
            }
        }
        worker.last_progress = now;
    }

    /// After a worker is gone and its ring read: the part it staged and did not publish (the
    /// items that returned in the chunk it was running), delivered like a frame.
    pub(super) fn recover_staged(&mut self, index: usize) {
        let worker = &mut self.workers[index];
        if worker.violation.is_some() || worker.in_flight.is_empty() {
            return;
        }
        let Some((count, bytes)) = worker.staged_part() else {
            return;
        };
        let staged = bytes
            .get(codec::HEADER_LEN..)
            .and_then(protocol::parse_result)
            .filter(|(header, _)| header.seq == worker.result_seq);
        let Some((mut header, items)) = staged else {
            protocol_violation(worker, "the part it staged has no valid header".into());
            return;
        };
        if let Some(front) = worker.in_flight.front() {
            if front.next_item() + count >= front.task.items {
                header.flags |= LAST;
            }
        }
        header.count = count;
        self.handle_result(index, header, items, Instant::now());
    }
}

/// The worker sent something that is not the frame expected: kill it; its tasks are then
/// settled like any dead worker's, the running one failing with `ProtocolViolation`.
pub(super) fn protocol_violation(worker: &mut Worker, message: String) {
    worker.violation.get_or_insert(message);
    worker.retired = true;
    worker.kill();
}
