//! The bytes queued for one worker's task pipe. Small frames are copied together into one
//! buffer, so that one `write` carries many of them; a large frame (a chunk of large
//! arguments) is not copied at all: the queue shares it with the task in flight, which keeps
//! it anyway (to resend the chunk's rest if the worker dies), and puts it into the pipe by
//! reference (`fork_sys::splice_into_pipe`, `vmsplice`), so that the only copy is the
//! worker's read. The pipe then holds the frame's pages until the worker reads them: the
//! queue keeps the frame (unchanged, since a shared `Arc` is copied before any change) until
//! the worker has claimed its chunk or a later one, which it does only after reading it.

use std::collections::VecDeque;
use std::fs::File;
use std::io::{self, IoSlice, Write as _};
use std::sync::Arc;

use crate::task_frame::TaskFrame;

/// Frames at least this long are shared, not copied.
const SHARE_AT: usize = 64 * 1024;
/// At most this many pieces go into one `writev`.
const PIECES_PER_WRITE: usize = 8;

/// One run of queued bytes.
#[derive(Debug)]
enum Piece {
    /// Frames copied back to back.
    Copied(Vec<u8>),
    /// A large frame, shared with its task, and its chunk's sequence number.
    Shared(Arc<TaskFrame>, u64),
}

impl Piece {
    fn bytes(&self) -> &[u8] {
        match self {
            Piece::Copied(bytes) => bytes,
            Piece::Shared(frame, _) => frame,
        }
    }
}

/// A worker's queue of unwritten bytes (see the module docs).
#[derive(Debug, Default)]
pub(crate) struct Outgoing {
    pieces: VecDeque<Piece>,
    /// The bytes of the front piece already written.
    written: usize,
    /// The bytes queued and not yet written.
    pending: usize,
    /// A copy buffer written out, kept for the next copies (its capacity).
    spare: Vec<u8>,
    /// Frames spliced into the pipe whole, by sequence number, kept until the worker has
    /// read them (see the module docs).
    spliced: VecDeque<(u64, Arc<TaskFrame>)>,
    /// Splicing failed once (not Linux, say): plain writes from then on.
    no_splice: bool,
}

impl Outgoing {
    /// The bytes queued and not yet written.
    pub(crate) fn pending(&self) -> usize {
        self.pending
    }

    /// Queues chunk `seq`'s frame: shared if it is large, copied otherwise.
    pub(crate) fn push_frame(&mut self, frame: &Arc<TaskFrame>, seq: u64) {
        if frame.len() >= SHARE_AT {
            self.pending += frame.len();
            self.pieces.push_back(Piece::Shared(Arc::clone(frame), seq));
        } else {
            self.push_copy(frame);
        }
    }

    /// Queues a copy of `bytes`; returns the copy, to be patched before it is written.
    pub(crate) fn push_copy(&mut self, bytes: &[u8]) -> &mut [u8] {
        self.pending += bytes.len();
        if !matches!(self.pieces.back(), Some(Piece::Copied(_))) {
            let mut buffer = std::mem::take(&mut self.spare);
            buffer.clear();
            self.pieces.push_back(Piece::Copied(buffer));
        }
        match self.pieces.back_mut() {
            Some(Piece::Copied(buffer)) => {
                let at = buffer.len();
                buffer.extend_from_slice(bytes);
                &mut buffer[at..]
            }
            // A copy buffer was just put at the back.
            _ => &mut [],
        }
    }

    /// Forgets the spliced frames of chunks up to `started`, the last the worker claimed: it
    /// has read them.
    pub(crate) fn release_read(&mut self, started: u64) {
        while self.spliced.front().is_some_and(|(seq, _)| *seq <= started) {
            self.spliced.pop_front();
        }
    }

    /// Writes what `pipe` (non-blocking) takes, up to everything queued. `Ok` when the queue
    /// is empty or the pipe is full; the error of a failed write otherwise (the queue is left
    /// as it was then).
    pub(crate) fn write_to(&mut self, mut pipe: &File) -> io::Result<()> {
        while self.pending > 0 {
            let written = if let (Some(Piece::Shared(frame, _)), false) =
                (self.pieces.front(), self.no_splice)
            {
                match fork_sys::splice_into_pipe(pipe, &frame[self.written..]) {
                    Ok(n) => n,
                    Err(err) if err.kind() == io::ErrorKind::Interrupted => continue,
                    Err(err) if err.kind() == io::ErrorKind::WouldBlock => return Ok(()),
                    Err(_) => {
                        self.no_splice = true;
                        continue;
                    }
                }
            } else {
                let mut slices = [IoSlice::new(&[]); PIECES_PER_WRITE];
                let mut used = 0;
                for (slot, piece) in slices.iter_mut().zip(&self.pieces) {
                    // Spliced pieces go on their own.
                    if used > 0 && matches!(piece, Piece::Shared(..)) && !self.no_splice {
                        break;
                    }
                    let bytes = piece.bytes();
                    *slot = IoSlice::new(if used == 0 {
                        &bytes[self.written..]
                    } else {
                        bytes
                    });
                    used += 1;
                }
                match pipe.write_vectored(&slices[..used]) {
                    Ok(n) => n,
                    Err(err) if err.kind() == io::ErrorKind::Interrupted => continue,
                    Err(err) if err.kind() == io::ErrorKind::WouldBlock => return Ok(()),
                    Err(err) => return Err(err),
                }
            };
            self.advance(written);
        }
        Ok(())
    }

    /// Counts `n` more bytes written, dropping the pieces written whole.
    fn advance(&mut self, mut n: usize) {
        self.pending -= n;
        while let Some(front) = self.pieces.front() {
            let left = front.bytes().len() - self.written;
            if n < left {
                self.written += n;
                return;
            }
            n -= left;
            self.written = 0;
            match self.pieces.pop_front() {
                Some(Piece::Copied(buffer)) if buffer.capacity() > self.spare.capacity() => {
                    self.spare = buffer;
                }
                // Kept until read (a frame written by a plain write need not be, but the
                // queue cannot tell which way each of its bytes went).
                Some(Piece::Shared(frame, seq)) => self.spliced.push_back((seq, frame)),
                _ => {}
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Read as _;

    /// Small frames copied, large ones shared, in any order: the pipe gets every byte in
    /// order, and the queue is empty after.
    #[test]
    fn the_pipe_gets_every_queued_byte_in_order() -> io::Result<()> {
        let (read, write) = fork_sys::pipe()?;
        let (mut read, write) = (File::from(read), File::from(write));
        fork_sys::set_nonblocking(&write, true)?;
        let mut outgoing = Outgoing::default();
        let mut expected = Vec::new();
        for (index, len) in [10, 70_000, 3, 200_000, 0, 65_536, 5, 5]
            .into_iter()
            .enumerate()
        {
            let frame: Vec<u8> = (0..len).map(|i| (i * 7 + index) as u8).collect();
            expected.extend_from_slice(&frame);
            outgoing.push_frame(&Arc::new(TaskFrame::from(frame)), index as u64);
        }
        outgoing.push_copy(b"tail")[0] = b'T';
        expected.extend_from_slice(b"Tail");
        assert_eq!(outgoing.pending(), expected.len());
        let mut got = Vec::new();
        let mut buffer = vec![0u8; 100_000];
        while outgoing.pending() > 0 {
            outgoing.write_to(&write)?;
            let n = read.read(&mut buffer)?;
            got.extend_from_slice(&buffer[..n]);
        }
        drop(write);
        read.read_to_end(&mut got)?;
        assert_eq!(got.len(), expected.len());
        assert!(got == expected, "the bytes differ from what was queued");
        assert!(outgoing.pieces.is_empty());
        Ok(())
    }
}
