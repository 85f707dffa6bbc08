//! [`FrameBuffer`]: bytes received in arbitrary pieces, frames taken out whole.

use std::io;

use serde::de::DeserializeOwned;

use super::{CodecError, HEADER_LEN, decode_frame, payload_len};

/// What one [`FrameBuffer::read_available`] pass got.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ReadPass {
    /// Bytes read in this pass.
    pub bytes: usize,
    /// The reader reached end-of-file.
    pub eof: bool,
}

/// Bytes received but not yet decoded: reads arrive in arbitrary pieces, frames come out whole.
///
/// A receiver on a non-blocking fd calls [`FrameBuffer::read_available`] (one bounded pass:
/// everything that has arrived, never more than is there) or [`FrameBuffer::read_from`] (one
/// read), or appends bytes it got elsewhere with [`FrameBuffer::extend`]; then it takes frames
/// with [`FrameBuffer::next_frame`] until that says `None`. Nothing is lost when a wait times
/// out half-way through a frame: the partial bytes stay here for the next call.
#[derive(Debug)]
pub struct FrameBuffer {
    /// Initialised storage; bytes `start..end` are received and not yet decoded. Kept longer
    /// than `end` so the space a large frame needs is zeroed once, not on every read.
    bytes: Vec<u8>,
    start: usize,
    end: usize,
    max_len: usize,
    /// A read has filled all the room it was offered: more reads are likely to follow.
    streaming: bool,
}

/// The least a read asks for: what a default pipe holds.
const READ_CHUNK: usize = 64 * 1024;
/// What a read asks for until reads fill their room: one page. A buffer that receives one small
/// frame (a child's result) then zeroes one page, not a read chunk's 16: in a process that
/// just forked, each page written while the child lives is a copy-on-write fault, which cost
/// `Process::spawn(..).join()` about 20% of its time.
const FIRST_READ: usize = 4096;

impl FrameBuffer {
    /// An empty buffer that refuses frames with payloads over `max_len` bytes.
    pub fn new(max_len: usize) -> FrameBuffer {
        FrameBuffer {
            bytes: Vec::new(),
            start: 0,
            end: 0,
            max_len,
            streaming: false,
        }
    }

    /// The limit this buffer enforces.
    pub fn max_len(&self) -> usize {
        self.max_len
    }

    /// Bytes buffered but not yet decoded.
    pub fn pending(&self) -> usize {
        self.end - self.start
    }

    fn buffered(&self) -> &[u8] {
        &self.bytes[self.start..self.end]
    }

    /// Drops the first `n` bytes buffered (at most what is buffered): for a stream that puts
    /// something of its own between frames.
    pub fn consume(&mut self, n: usize) {
        self.start += n.min(self.pending());
        if self.start == self.end {
            self.start = 0;
            self.end = 0;
        }
    }

    /// The bytes buffered and not yet taken, starting with the next frame's length prefix:
    /// for a receiver that checks a frame's header of its own as soon as it arrives, before
    /// the whole frame is in (and so before waiting for a length that may be corrupt).
    pub fn peek(&self) -> &[u8] {
        self.buffered()
    }

    /// Appends received bytes.
    pub fn extend(&mut self, received: &[u8]) {
        self.make_room(received.len());
        self.bytes[self.end..self.end + received.len()].copy_from_slice(received);
        self.end += received.len();
    }

    /// Reads once from `reader` into the buffer. Room grows with what has actually arrived
    /// (doubling, up to the rest of the frame in progress), so a 64 MiB value arrives in few
    /// large reads, while a bare header that merely *claims* 1 GiB commits no more than a read
    /// chunk. Returns the byte count; 0 is end-of-file. `WouldBlock` and other errors are
    /// returned as they come.
    pub fn read_from(&mut self, reader: &mut impl io::Read) -> io::Result<usize> {
        self.read_once(reader).map(|(got, _room)| got)
    }

    /// Reads what `reader` has right now, in one bounded pass: until it would block, returns
    /// less than the room offered (it has nothing more at this instant), reaches end-of-file,
    /// or a whole frame is buffered. `reader` must be non-blocking. Retries `Interrupted`;
    /// other errors are returned.
    ///
    /// This is how a receiver with a deadline should read: one pass after the deadline sees
    /// everything that had already arrived (a frame bigger than one read included), yet a frame
    /// still streaming in cannot keep it reading, because each full read offers more room than
    /// the last until the kernel's buffer can no longer fill it.
    pub fn read_available(&mut self, reader: &mut impl io::Read) -> io::Result<ReadPass> {
        let mut pass = ReadPass::default();
        loop {
            match self.read_once(reader) {
                Ok((0, _)) => {
                    pass.eof = true;
                    return Ok(pass);
                }
                Ok((got, room)) => {
                    pass.bytes += got;
                    // An oversize header counts as "whole": the decoder reports it next.
                    if got < room || self.has_frame().unwrap_or(true) {
                        return Ok(pass);
                    }
                }
                Err(err) if err.kind() == io::ErrorKind::Interrupted => continue,
                Err(err) if err.kind() == io::ErrorKind::WouldBlock => return Ok(pass),
                Err(err) => return Err(err),
            }
        }
    }

    /// One `read` into fresh room; returns the bytes read and the room that was offered.
    fn read_once(&mut self, reader: &mut impl io::Read) -> io::Result<(usize, usize)> {
        // A frame known to be arriving gets room for its rest (doubling, from a read chunk);
        // otherwise a read chunk once reads have filled the room offered (a stream), and
        // until then a page (a lone small frame, then end-of-file).
        let want = match payload_len(self.buffered(), self.max_len) {
            Ok(Some(len)) if HEADER_LEN + len > self.pending() => {
                let rest = HEADER_LEN + len - self.pending();
                rest.min(self.pending().saturating_mul(2)).max(READ_CHUNK)
            }
            _ if self.streaming => READ_CHUNK,
            _ => FIRST_READ,
        };
        self.make_room(want);
        let room = self.bytes.len() - self.end;
        let got = reader.read(&mut self.bytes[self.end..])?;
        self.end += got;
        self.streaming |= got == room;
        Ok((got, room))
    }

    /// Whether a whole frame is buffered (an oversize header is an error already).
    pub fn has_frame(&self) -> Result<bool, CodecError> {
        let buffered = self.buffered();
        Ok(payload_len(buffered, self.max_len)?
            .is_some_and(|len| buffered.len() >= HEADER_LEN + len))
    }

    /// Takes the next whole frame, if one is buffered.
    pub fn next_frame<T: DeserializeOwned>(&mut self) -> Result<Option<T>, CodecError> {
        match decode_frame(self.buffered(), self.max_len)? {
            Some((value, used)) => {
                self.start += used;
                if self.start == self.end {
                    self.start = 0;
                    self.end = 0;
                }
                Ok(Some(value))
            }
            None => Ok(None),
        }
    }

    /// Takes the next whole frame's payload undecoded, if one is buffered: for protocols that
    /// put a header of their own in front of the values (see [`begin_frame`](super::begin_frame)). The slice is
    /// valid until the buffer is next changed.
    pub fn next_payload(&mut self) -> Result<Option<&[u8]>, CodecError> {
        let Some(len) = payload_len(self.buffered(), self.max_len)? else {
            return Ok(None);
        };
        if self.pending() < HEADER_LEN + len {
            return Ok(None);
        }
        let payload_start = self.start + HEADER_LEN;
        self.start = payload_start + len;
        let payload = &self.bytes[payload_start..self.start];
        if self.start == self.end {
            self.start = 0;
            self.end = 0;
        }
        Ok(Some(payload))
    }

    /// To call at end-of-file: an error if a frame was cut off, `Ok` when the stream ended
    /// cleanly between frames.
    pub fn check_complete_at_eof(&self) -> Result<(), CodecError> {
        let pending = self.pending();
        if pending == 0 {
            return Ok(());
        }
        let expected = match payload_len(self.buffered(), self.max_len)? {
            Some(len) => HEADER_LEN + len,
            None => HEADER_LEN,
        };
        Err(CodecError::Truncated {
            expected,
            got: pending,
        })
    }

    /// Makes `bytes[end..]` at least `extra` long: first by moving undecoded bytes to the
    /// front, then by growing.
    fn make_room(&mut self, extra: usize) {
        if self.bytes.len() - self.end >= extra {
            return;
        }
        if self.start > 0 {
            self.bytes.copy_within(self.start..self.end, 0);
            self.end -= self.start;
            self.start = 0;
        }
        if self.bytes.len() - self.end < extra {
            self.bytes.resize(self.end + extra, 0);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::codec::encode_frame;

    #[test]
    fn a_header_claiming_a_gibibyte_commits_memory_only_as_bytes_arrive() {
        let mut buffer = FrameBuffer::new(1 << 30);
        let mut stream: &[u8] = &[0, 0, 0, 0x40, 1, 2, 3]; // claims 1 GiB, sends 3 bytes
        while buffer.read_from(&mut stream).unwrap() > 0 {}
        assert!(
            buffer.bytes.len() <= 2 * READ_CHUNK,
            "committed {} bytes",
            buffer.bytes.len()
        );
        assert!(matches!(
            buffer.check_complete_at_eof(),
            Err(CodecError::Truncated { expected, got: 7 }) if expected == HEADER_LEN + (1 << 30)
        ));
    }

    #[test]
    fn a_large_frame_arrives_in_few_reads_without_quadratic_copying() {
        let mut frame = Vec::new();
        encode_frame(&vec![3u8; 8 << 20], &mut frame, 1 << 30).unwrap();
        /// A reader that counts its calls and hands out everything it is asked for.
        struct Counting<'a>(&'a [u8], usize);
        impl io::Read for Counting<'_> {
            fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
                self.1 += 1;
                self.0.read(buf)
            }
        }
        let mut reader = Counting(&frame, 0);
        let mut buffer = FrameBuffer::new(1 << 30);
        let pass = buffer.read_available(&mut reader).unwrap();
        assert_eq!(
            pass,
            ReadPass {
                bytes: frame.len(),
                eof: false
            }
        );
        assert_eq!(
            buffer.next_frame::<Vec<u8>>().unwrap().map(|v| v.len()),
            Some(8 << 20)
        );
        // A page, then doubling from 64 KiB, reaches 8 MiB in about 9 reads; fixed 64 KiB reads
        // would take 128.
        assert!(reader.1 <= 12, "{} reads", reader.1);
    }

    #[test]
    fn truncation_is_reported_with_the_sizes() {
        let mut out = Vec::new();
        encode_frame(&vec![7u8; 10], &mut out, 64).unwrap();
        let mut buffer = FrameBuffer::new(64);
        buffer.extend(&out[..6]);
        assert!(buffer.next_frame::<Vec<u8>>().unwrap().is_none());
        let err = buffer.check_complete_at_eof().unwrap_err();
        assert_eq!(
            err.to_string(),
            "stream ended inside a frame: expected 15 bytes, got 6"
        );
    }

    #[test]
    fn next_payload_waits_for_the_whole_frame_and_refuses_oversize_headers() {
        let mut out = Vec::new();
        encode_frame(&[5u8; 10], &mut out, 64).unwrap();
        let mut buffer = FrameBuffer::new(64);
        buffer.extend(&out[..6]);
        assert_eq!(buffer.next_payload().unwrap(), None);
        buffer.extend(&out[6..]);
        assert_eq!(
            buffer.next_payload().unwrap().map(<[u8]>::len),
            Some(out.len() - 4)
        );

        let mut oversize = FrameBuffer::new(64);
        oversize.extend(&1000u32.to_le_bytes());
        assert!(matches!(
            oversize.next_payload(),
            Err(CodecError::FrameTooLarge {
                len: 1000,
                limit: 64
            })
        ));
    }
}
