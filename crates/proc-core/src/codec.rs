//! The wire codec: every value that crosses a process boundary in prockit is one *frame*,
//! a 4-byte little-endian payload length followed by the value encoded with bincode 2
//! (`config::standard()`, through serde). This module is the only place that calls bincode;
//! proc-pool reuses it.
//!
//! **Byte vectors take a shorter road.** Through serde, a `Vec<u8>` is a sequence of single
//! bytes, each one a call through the serializer (about a nanosecond a byte on its own, many
//! times a plain copy). bincode writes a byte sequence as its length (a varint, as every
//! sequence length) followed by the bytes, so [`encode_value`] and [`encode_into_slice`]
//! write a value that serializes as a sequence of `u8` (`Vec<u8>`, `[u8]`, `Box<[u8]>`,
//! `VecDeque<u8>`, references to them, newtypes around them) as exactly that: the length,
//! then the bytes in one pass; [`decode_sequence`] of `Vec<u8>` values reads each one with
//! one copy. The bytes are the same on both roads (tests check), so either end may take
//! either. Only the value itself takes it: a byte vector inside a struct or a tuple still
//! goes a byte at a time (mark such a field `#[serde(with = "serde_bytes")]`, which bincode
//! copies whole); a `String` was always copied whole.
//!
//! **Scalars take a short road too.** A value made only of integers, `bool`s and floats (alone,
//! or in tuples, structs and newtypes of them) is written and read by a serde serializer and
//! deserializer of exactly bincode's encoding that work in place (`codec/scalars.rs`), a
//! varint at a time, where bincode's generic reader, writer and error values cost a few
//! nanoseconds a number: a `map` over 200,000 numbers sends and reads that many in each
//! direction. Anything else, or input it is not sure to read as bincode does, is left to
//! bincode from the start; the bytes and values are the same (tests check).
//!
//! Decoding never trusts the peer: a length over the configured maximum is refused before
//! anything is allocated, a payload that does not decode as the expected type (or leaves bytes
//! over) is an error naming that type, and a stream that ends inside a frame is `Truncated`.

use std::fmt;
use std::io;

use serde::Serialize;
use serde::de::DeserializeOwned;

/// Bytes in the length prefix of every frame.
pub const HEADER_LEN: usize = 4;

/// The default largest payload a frame may carry: 1 GiB. Configurable per connection; the
/// hard ceiling is `u32::MAX`, what the prefix can express.
pub const DEFAULT_MAX_FRAME_LEN: usize = 1 << 30;

/// The most memory a decoded value may claim, summed over its primitives, strings and byte
/// buffers: 4 GiB, the frame ceiling. bincode allocates a string's or byte buffer's claimed length *before*
/// reading its bytes, and counts each claim against its configured limit; without a limit a
/// corrupt 10-byte frame could ask for 2^60 bytes (a capacity-overflow panic or an abort).
/// It is the last of the steps `decode_value` chooses from (see there).
const DECODE_MEMORY_LIMIT: usize = u32::MAX as usize;

type Config<const LIMIT: usize> = bincode::config::Configuration<
    bincode::config::LittleEndian,
    bincode::config::Varint,
    bincode::config::Limit<LIMIT>,
>;

fn config() -> Config<DECODE_MEMORY_LIMIT> {
    config_with_limit::<DECODE_MEMORY_LIMIT>()
}

fn config_with_limit<const LIMIT: usize>() -> Config<LIMIT> {
    bincode::config::standard().with_limit::<LIMIT>()
}

/// Why a frame could not be written or read.
#[derive(Debug)]
#[non_exhaustive]
pub enum CodecError {
    /// The payload is longer than the limit (on either side: a sender refuses to send it, a
    /// receiver refuses to allocate for it).
    FrameTooLarge {
        /// The payload length, in bytes.
        len: usize,
        /// The limit in force.
        limit: usize,
    },
    /// The stream ended inside a frame.
    Truncated {
        /// Bytes the frame needed (header and payload).
        expected: usize,
        /// Bytes that arrived before the end.
        got: usize,
    },
    /// The value could not be encoded (a `Serialize` impl failed, or a map without a length).
    Encode {
        /// The type being sent.
        type_name: &'static str,
        /// What bincode said.
        message: String,
    },
    /// The payload is not a valid encoding of the expected type.
    Decode {
        /// The type the receiver expected.
        type_name: &'static str,
        /// The payload length.
        len: usize,
        /// What bincode said.
        message: String,
    },
    /// Reading or writing the underlying descriptor failed.
    Io(io::Error),
}

impl fmt::Display for CodecError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CodecError::FrameTooLarge { len, limit } => {
                write!(f, "frame of {len} bytes is over the {limit}-byte limit")
            }
            CodecError::Truncated { expected, got } => write!(
                f,
                "stream ended inside a frame: expected {expected} bytes, got {got}"
            ),
            CodecError::Encode { type_name, message } => {
                write!(f, "could not encode a {type_name}: {message}")
            }
            CodecError::Decode {
                type_name,
                len,
                message,
            } => write!(
                f,
                "a frame of {len} bytes is not a valid {type_name}: {message}"
            ),
            CodecError::Io(err) => write!(f, "frame I/O failed: {err}"),
        }
    }
}

impl std::error::Error for CodecError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            CodecError::Io(err) => Some(err),
            _ => None,
        }
    }
}

impl From<io::Error> for CodecError {
    fn from(err: io::Error) -> CodecError {
        CodecError::Io(err)
    }
}

/// Appends one frame holding `value` to `out`. On error `out` is left as it was, so a caller
/// batching frames loses nothing already queued.
pub fn encode_frame<T: Serialize + ?Sized>(
    value: &T,
    out: &mut Vec<u8>,
    max_len: usize,
) -> Result<(), CodecError> {
    let frame = begin_frame(out);
    match encode_value(value, out) {
        Ok(()) => finish_frame(out, frame, max_len),
        Err(err) => {
            out.truncate(frame.start);
            Err(err)
        }
    }
}

/// A frame being assembled in place by [`begin_frame`], pieces appended, [`finish_frame`]:
/// how a protocol puts its own fixed header and several values into one frame.
#[derive(Debug, Clone, Copy)]
#[must_use = "a begun frame must be finished (or truncated away)"]
pub struct FrameStart {
    start: usize,
}

impl FrameStart {
    /// Payload bytes appended since the frame was begun.
    pub fn payload_len(&self, out: &[u8]) -> usize {
        out.len() - self.start - HEADER_LEN
    }
}

/// Reserves a frame header at the end of `out`; append the payload, then call
/// [`finish_frame`].
pub fn begin_frame(out: &mut Vec<u8>) -> FrameStart {
    let start = out.len();
    out.extend_from_slice(&[0; HEADER_LEN]);
    FrameStart { start }
}

/// Writes the length of the frame begun at `frame` into its header. A payload over `max_len`
/// (or over `u32::MAX`) is refused, and the whole frame is removed from `out`.
pub fn finish_frame(
    out: &mut Vec<u8>,
    frame: FrameStart,
    max_len: usize,
) -> Result<(), CodecError> {
    match frame_header(frame.payload_len(out), max_len) {
        Ok(header) => {
            out[frame.start..frame.start + HEADER_LEN].copy_from_slice(&header);
            Ok(())
        }
        Err(err) => {
            out.truncate(frame.start);
            Err(err)
        }
    }
}

/// Writes one frame holding `value` at the start of `out`, with no allocation; returns the
/// frame's length. `Encode` when it does not fit `out` (or does not encode), `FrameTooLarge`
/// over `max_len`; what was written then is garbage. What a caller that must not allocate
/// tries first, with [`encode_frame`] as the fallback that says which error it was.
// Inlined: a forked child encodes its report with it (see `child_side::run_child`).
#[inline(always)]
pub fn encode_frame_into_slice<T: Serialize + ?Sized>(
    value: &T,
    out: &mut [u8],
    max_len: usize,
) -> Result<usize, CodecError> {
    let Some((header, payload)) = out.split_first_chunk_mut::<HEADER_LEN>() else {
        return Err(CodecError::Encode {
            type_name: std::any::type_name::<T>(),
            message: format!("{} bytes hold no frame header", out.len()),
        });
    };
    let len = encode_into_slice(value, payload)?;
    *header = frame_header(len, max_len)?;
    Ok(HEADER_LEN + len)
}

/// [`encode_frame_into_slice`] of `E::V(value)`, where `V` is variant `index` (below 251) of
/// an enum `E` and holds `value` alone, without `E`'s own `Serialize`: bincode writes a
/// variant as its index (a varint, one byte below 251) and then its content, so the frame has
/// the same bytes, and is decoded as an `E`. For a forked child's report, where the enum's
/// derived `Serialize` and bincode's variant code would be two more windows of code for the
/// child to fault in (see `child_side::run_child`).
#[inline(always)]
pub(crate) fn encode_variant_frame_into_slice<T: Serialize + ?Sized>(
    index: u8,
    value: &T,
    out: &mut [u8],
    max_len: usize,
) -> Result<usize, CodecError> {
    let no_room = |message: String| CodecError::Encode {
        type_name: std::any::type_name::<T>(),
        message,
    };
    if index >= 251 {
        return Err(no_room(format!("variant {index} takes more than one byte")));
    }
    let room = out.len();
    let Some((header, rest)) = out.split_first_chunk_mut::<HEADER_LEN>() else {
        return Err(no_room(format!("{room} bytes hold no frame header")));
    };
    let Some((tag, payload)) = rest.split_first_mut() else {
        return Err(no_room(format!("{room} bytes hold no variant")));
    };
    *tag = index;
    let len = 1 + encode_into_slice(value, payload)?;
    *header = frame_header(len, max_len)?;
    Ok(HEADER_LEN + len)
}

/// The header of a frame whose payload is `len` bytes; refuses one over `max_len` (or over
/// `u32::MAX`).
// Inlined: a forked child runs it, and each 64 KiB window of code a child runs costs it a
// page fault (fork does not copy the page tables of the program's text).
#[inline]
fn frame_header(len: usize, max_len: usize) -> Result<[u8; HEADER_LEN], CodecError> {
    let limit = max_len.min(u32::MAX as usize);
    if len > limit {
        return Err(CodecError::FrameTooLarge { len, limit });
    }
    Ok((len as u32).to_le_bytes())
}

/// Appends the encoding of `value` (no header) to `out`; on error `out` is left as it was.
/// A byte vector goes the short road (see the module docs).
pub fn encode_value<T: Serialize + ?Sized>(value: &T, out: &mut Vec<u8>) -> Result<(), CodecError> {
    if byte_vectors::encode(value, out) || scalars::encode(value, out) {
        return Ok(());
    }
    let start = out.len();
    bincode::serde::encode_into_writer(value, VecAppender(&mut *out), config()).map_err(|err| {
        out.truncate(start);
        CodecError::Encode {
            type_name: std::any::type_name::<T>(),
            message: err.to_string(),
        }
    })
}

/// Encodes `value` (no header) at the start of `out`; returns the bytes used. `Encode` error
/// when it does not fit (or its `Serialize` fails); what was written then is garbage.
#[inline]
pub fn encode_into_slice<T: Serialize + ?Sized>(
    value: &T,
    out: &mut [u8],
) -> Result<usize, CodecError> {
    match byte_vectors::encode_into_slice(value, out) {
        byte_vectors::Probe::Done(used) => return Ok(used),
        byte_vectors::Probe::TooSmall(needed) => {
            return Err(CodecError::Encode {
                type_name: std::any::type_name::<T>(),
                message: format!("{needed} bytes do not fit in {}", out.len()),
            });
        }
        byte_vectors::Probe::NotBytes => {}
    }
    match scalars::encode_into_slice(value, out) {
        Ok(used) => return Ok(used),
        Err(scalars::Refused::TooSmall(needed)) => {
            return Err(CodecError::Encode {
                type_name: std::any::type_name::<T>(),
                message: format!("{needed} bytes do not fit in {}", out.len()),
            });
        }
        Err(scalars::Refused::NotScalars) => {}
    }
    bincode::serde::encode_into_slice(value, out, config()).map_err(|err| CodecError::Encode {
        type_name: std::any::type_name::<T>(),
        message: err.to_string(),
    })
}

/// How many bytes [`encode_value`] writes for `value`, if that is at most `limit`; `None` if
/// more, or if its `Serialize` fails. Nothing is written anywhere, and the cost is bounded by
/// `limit`, not by the value: a byte vector is measured from its length alone, anything else
/// is counted as bincode encodes it, up to `limit` bytes.
///
/// ```
/// use proc_core::codec;
///
/// let image = vec![7u8; 1 << 20];
/// assert_eq!(codec::encoded_len_within(&image, 4 << 20), Some(5 + (1 << 20)));
/// assert_eq!(codec::encoded_len_within(&image, 1 << 20), None);
/// assert_eq!(codec::encoded_len_within(&(1u8, "ab"), 64), Some(4));
/// ```
pub fn encoded_len_within<T: Serialize + ?Sized>(value: &T, limit: usize) -> Option<usize> {
    match byte_vectors::encode_into_slice(value, &mut []) {
        byte_vectors::Probe::TooSmall(needed) => return (needed <= limit).then_some(needed),
        byte_vectors::Probe::Done(used) => return (used <= limit).then_some(used),
        byte_vectors::Probe::NotBytes => {}
    }
    // The short road of scalars writes bincode's bytes, so bincode's count is its count too.
    let mut counter = LenCounter { len: 0, limit };
    bincode::serde::encode_into_writer(value, &mut counter, config()).ok()?;
    Some(counter.len)
}

/// bincode's `Writer` that only counts, and stops the encoding past `limit` bytes.
struct LenCounter {
    len: usize,
    limit: usize,
}

impl bincode::enc::write::Writer for &mut LenCounter {
    #[inline]
    fn write(&mut self, bytes: &[u8]) -> Result<(), bincode::error::EncodeError> {
        self.len += bytes.len();
        if self.len > self.limit {
            return Err(bincode::error::EncodeError::Other("past the limit"));
        }
        Ok(())
    }
}

/// Appends the encoding of `items` as one sequence, exactly as [`encode_value`] of the
/// slice would write it (its length, then each item), but each item a byte vector takes the
/// short road (see the module docs), which it would not inside the slice. The other side reads
/// it with [`decode_value`] as a `Vec<T>`, or with [`decode_len_prefix`] and then
/// [`decode_sequence`]. On error `out` is left as it was.
pub fn encode_sequence<T: Serialize>(items: &[T], out: &mut Vec<u8>) -> Result<(), CodecError> {
    let start = out.len();
    out.extend_from_slice(len_prefix(items.len()).as_bytes());
    if scalars::encode_all(items, out) {
        return Ok(());
    }
    let Some((first, rest)) = items.split_first() else {
        return Ok(());
    };
    if !byte_vectors::encode(first, out) {
        // Not bytes: the items go through bincode in one call, as a tuple (no length).
        let encoded = encode_value(&Tuple(items), out);
        return encoded.inspect_err(|_| out.truncate(start));
    }
    // Room for all, if they are about the size of the first (a chunk of like items).
    let first_len = out.len() - start;
    out.reserve(first_len.saturating_mul(rest.len()).min(1 << 30));
    for item in rest {
        if let Err(err) = encode_value(item, out) {
            out.truncate(start);
            return Err(err);
        }
    }
    Ok(())
}

/// Items written back to back, without a length in front: a tuple, to bincode.
struct Tuple<'a, T>(&'a [T]);

impl<T: Serialize> Serialize for Tuple<'_, T> {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeTuple as _;
        let mut tuple = serializer.serialize_tuple(self.0.len())?;
        for item in self.0 {
            tuple.serialize_element(item)?;
        }
        tuple.end()
    }
}

/// The most bytes a length prefix takes: bincode's varint of a `u64` (a marker byte, then 8).
pub const MAX_LEN_PREFIX: usize = 9;

/// How bincode writes the length of a sequence (a `Vec`, a slice, a string): a varint.
#[derive(Debug, Clone, Copy)]
pub struct LenPrefix {
    bytes: [u8; MAX_LEN_PREFIX],
    len: u8,
}

impl LenPrefix {
    /// The prefix's bytes (1 for lengths under 251, else 3, 5 or 9).
    pub fn as_bytes(&self) -> &[u8] {
        &self.bytes[..usize::from(self.len)]
    }
}

/// The length prefix bincode writes in front of a sequence of `len` items: what a sender that
/// writes a byte vector's bytes itself puts first, for the receiver to read it as a `Vec<u8>`.
pub fn len_prefix(len: usize) -> LenPrefix {
    // bincode's varint: one byte below 251, else a marker (251, 252, 253) and the little
    // endian u16, u32 or u64.
    let mut bytes = [0u8; MAX_LEN_PREFIX];
    let len64 = len as u64;
    let used = if len64 < 251 {
        bytes[0] = len64 as u8;
        1
    } else if let Ok(short) = u16::try_from(len64) {
        bytes[0] = 251;
        bytes[1..3].copy_from_slice(&short.to_le_bytes());
        3
    } else if let Ok(word) = u32::try_from(len64) {
        bytes[0] = 252;
        bytes[1..5].copy_from_slice(&word.to_le_bytes());
        5
    } else {
        bytes[0] = 253;
        bytes[1..9].copy_from_slice(&len64.to_le_bytes());
        9
    };
    LenPrefix {
        bytes,
        len: used as u8,
    }
}

/// Reads a sequence's length prefix from the front of `bytes`: the length, and the prefix's
/// size. A length over `usize::MAX` is a `Decode` error.
pub fn decode_len_prefix(bytes: &[u8]) -> Result<(usize, usize), CodecError> {
    let (len, used) = decode_value::<u64>(bytes).map_err(|err| match err {
        CodecError::Decode { len, message, .. } => CodecError::Decode {
            type_name: "sequence length",
            len,
            message,
        },
        other => other,
    })?;
    let len = usize::try_from(len).map_err(|_| CodecError::Decode {
        type_name: "sequence length",
        len: bytes.len(),
        message: format!("a length of {len} does not fit in memory"),
    })?;
    Ok((len, used))
}

/// Decodes one byte vector (its length prefix, then its bytes) from the front of `bytes`, with
/// one copy; returns it and the bytes used. What it allocates is bounded by `bytes.len()`.
pub fn decode_byte_vector(bytes: &[u8]) -> Result<(Vec<u8>, usize), CodecError> {
    let (body, used) = byte_vector_body(bytes)?;
    Ok((body.to_vec(), used))
}

/// The bytes of the byte vector at the front of `bytes` (after its length prefix), and the
/// bytes it used.
fn byte_vector_body(bytes: &[u8]) -> Result<(&[u8], usize), CodecError> {
    let (len, used) = decode_len_prefix(bytes)?;
    let Some(body) = bytes.get(used..).and_then(|rest| rest.get(..len)) else {
        return Err(CodecError::Decode {
            type_name: "alloc::vec::Vec<u8>",
            len: bytes.len(),
            message: format!(
                "a byte vector of {len} bytes claimed, {} bytes left",
                bytes.len() - used
            ),
        });
    };
    Ok((body, used + len))
}

/// The bytes of `count` byte vectors encoded back to back, each checked as
/// [`decode_byte_vectors`] would, without copying them: for a decoder that copies each into
/// its vector only when it needs it. Returns them and the bytes used.
pub fn split_byte_vectors(bytes: &[u8], count: usize) -> Result<(Vec<&[u8]>, usize), CodecError> {
    // Every vector takes at least its prefix's byte: a corrupt count claims no more than that.
    let mut bodies = Vec::with_capacity(count.min(bytes.len()));
    let mut used = 0;
    for _ in 0..count {
        let (body, len) = byte_vector_body(&bytes[used..])?;
        bodies.push(body);
        used += len;
    }
    Ok((bodies, used))
}

/// bincode's `Writer` for appending to a `Vec`: plain `extend_from_slice`, without the
/// `io::Write` layer (a third faster on sequences of small integers).
struct VecAppender<'a>(&'a mut Vec<u8>);

impl bincode::enc::write::Writer for VecAppender<'_> {
    #[inline]
    fn write(&mut self, bytes: &[u8]) -> Result<(), bincode::error::EncodeError> {
        self.0.extend_from_slice(bytes);
        Ok(())
    }
}

/// Decodes one value from the front of `bytes` (a frame's payload, or what is left of it);
/// returns it and how many bytes it used. Bytes after the value are not looked at.
///
/// What a corrupt length inside the payload can make this allocate is bounded by 64 times
/// `bytes.len()` (at least 64 KiB), never by the length claimed.
pub fn decode_value<T: DeserializeOwned>(bytes: &[u8]) -> Result<(T, usize), CodecError> {
    if let Some(decoded) = scalars::decode::<T>(bytes) {
        return Ok(decoded);
    }
    if let Some(decoded) = byte_vectors::decode::<T>(bytes) {
        return Ok(decoded);
    }
    // bincode counts, against its claim limit, the in-memory size of every primitive it decodes
    // and the claimed length of every string or byte buffer, which it allocates *before*
    // reading. A valid payload claims at most 16 times its length (a 1-byte varint decoding to
    // a 16-byte u128 is the worst case), so the limit is the smallest of a few steps at least
    // 16 times the payload: a larger claim is corrupt and refused before any allocation. The
    // limit is a compile-time constant, so steps of 4 keep the copies of each type's decoder
    // few (nine). Before this, one 4 GiB limit let a 22-byte frame claiming a 4 GiB string
    // commit 4 GiB (the soak suite's fuzz found it). Payloads over 256 MiB keep that ceiling.
    let decoded = by_claim_limit!(bytes.len(), decode_with_limit::<T, _>(bytes));
    decoded.map_err(|err| CodecError::Decode {
        type_name: std::any::type_name::<T>(),
        len: bytes.len(),
        message: err.to_string(),
    })
}

/// Decodes `count` values of type `T` encoded back to back (no length in front: the caller
/// knows how many), as a `Vec`; returns it and how many bytes it used. This is how a sender
/// that encodes values one at a time, as they come, and counts them, is read at the speed
/// of one `Vec<T>`. The same allocation bound as [`decode_value`] holds.
///
/// Byte vectors take the short road (see the module docs); a caller that knows its values
/// are `Vec<u8>` reads them at the speed of one copy each with [`decode_byte_vectors`].
pub fn decode_sequence<T: DeserializeOwned>(
    bytes: &[u8],
    count: usize,
) -> Result<(Vec<T>, usize), CodecError> {
    if let Some(decoded) = scalars::decode_sequence::<T>(bytes, count) {
        return Ok(decoded);
    }
    if let Some(decoded) = byte_vectors::decode_sequence::<T>(bytes, count) {
        return Ok(decoded);
    }
    let decoded = by_claim_limit!(bytes.len(), decode_counted_with_limit::<T, _>(bytes, count));
    decoded.map_err(|err| CodecError::Decode {
        type_name: std::any::type_name::<Vec<T>>(),
        len: bytes.len(),
        message: err.to_string(),
    })
}

/// [`decode_sequence`], appending the values to `out` (a caller that collects the values of
/// many sequences into one vector writes each value once, with no vector in between);
/// returns the bytes used. On error `out` is left as it was.
pub fn decode_sequence_onto<T: DeserializeOwned>(
    bytes: &[u8],
    count: usize,
    out: &mut Vec<T>,
) -> Result<usize, CodecError> {
    if let Some(used) = scalars::decode_sequence_onto::<T>(bytes, count, out) {
        return Ok(used);
    }
    let (mut values, used) = decode_sequence::<T>(bytes, count)?;
    out.append(&mut values);
    Ok(used)
}

/// Decodes `count` byte vectors encoded back to back (each its length prefix and its bytes),
/// one copy each; returns them and the bytes used. What a decoder that knows its values are
/// `Vec<u8>` calls instead of [`decode_sequence`] (which reads them an element at a time).
pub fn decode_byte_vectors(
    bytes: &[u8],
    count: usize,
) -> Result<(Vec<Vec<u8>>, usize), CodecError> {
    let (bodies, used) = split_byte_vectors(bytes, count)?;
    Ok((bodies.into_iter().map(<[u8]>::to_vec).collect(), used))
}

fn decode_counted_with_limit<T: DeserializeOwned, const LIMIT: usize>(
    bytes: &[u8],
    count: usize,
) -> Result<(Vec<T>, usize), bincode::error::DecodeError> {
    // Room for all `count` values at once, as serde's `Vec` does for a sequence, but never
    // more than a corrupt count could claim cheaply: at most one value per byte (a value of a
    // type with no bytes aside), at most 1 MiB up front.
    let claimable = if size_of::<T>() == 0 {
        count
    } else {
        count.min(bytes.len()).min((1 << 20) / size_of::<T>())
    };
    let seed = Counted::<T> {
        count,
        capacity: claimable,
        item: std::marker::PhantomData,
    };
    bincode::serde::seed_decode_from_slice(seed, bytes, config_with_limit::<LIMIT>())
}

/// `count` values back to back: a tuple of that length, to serde (bincode puts no length in
/// front of a tuple).
struct Counted<T> {
    count: usize,
    /// What to allocate up front.
    capacity: usize,
    item: std::marker::PhantomData<T>,
}

impl<'de, T: DeserializeOwned> serde::de::DeserializeSeed<'de> for Counted<T> {
    type Value = Vec<T>;

    fn deserialize<D: serde::Deserializer<'de>>(self, deserializer: D) -> Result<Vec<T>, D::Error> {
        deserializer.deserialize_tuple(self.count, self)
    }
}

impl<'de, T: DeserializeOwned> serde::de::Visitor<'de> for Counted<T> {
    type Value = Vec<T>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} values", self.count)
    }

    fn visit_seq<S: serde::de::SeqAccess<'de>>(self, mut seq: S) -> Result<Vec<T>, S::Error> {
        let mut values = Vec::with_capacity(self.capacity);
        while let Some(value) = seq.next_element()? {
            values.push(value);
        }
        Ok(values)
    }
}

/// Calls `$call` (a decoder generic over its claim limit, `_` standing for it) with the
/// smallest limit step at least 16 times `$len` (see [`decode_value`]).
macro_rules! by_claim_limit {
    ($len:expr, $f:ident::<$t:ty, _>($($arg:expr),*)) => {{
        let claims = ($len).saturating_mul(16);
        if claims <= 64 << 10 {
            $f::<$t, { 64 << 10 }>($($arg),*)
        } else if claims <= 256 << 10 {
            $f::<$t, { 256 << 10 }>($($arg),*)
        } else if claims <= 1 << 20 {
            $f::<$t, { 1 << 20 }>($($arg),*)
        } else if claims <= 4 << 20 {
            $f::<$t, { 4 << 20 }>($($arg),*)
        } else if claims <= 16 << 20 {
            $f::<$t, { 16 << 20 }>($($arg),*)
        } else if claims <= 64 << 20 {
            $f::<$t, { 64 << 20 }>($($arg),*)
        } else if claims <= 256 << 20 {
            $f::<$t, { 256 << 20 }>($($arg),*)
        } else if claims <= 1 << 30 {
            $f::<$t, { 1 << 30 }>($($arg),*)
        } else {
            $f::<$t, DECODE_MEMORY_LIMIT>($($arg),*)
        }
    }};
}
use by_claim_limit;

fn decode_with_limit<T: DeserializeOwned, const LIMIT: usize>(
    bytes: &[u8],
) -> Result<(T, usize), bincode::error::DecodeError> {
    bincode::serde::decode_from_slice::<T, _>(bytes, config_with_limit::<LIMIT>())
}

mod byte_vectors;
mod frame_buffer;
mod scalars;

pub use frame_buffer::{FrameBuffer, ReadPass};

/// Decodes one frame from the front of `buf`: `Ok(None)` when `buf` does not hold a whole
/// frame yet, else the value and how many bytes it used.
pub fn decode_frame<T: DeserializeOwned>(
    buf: &[u8],
    max_len: usize,
) -> Result<Option<(T, usize)>, CodecError> {
    let Some(len) = payload_len(buf, max_len)? else {
        return Ok(None);
    };
    let Some(payload) = buf.get(HEADER_LEN..HEADER_LEN + len) else {
        return Ok(None);
    };
    let (value, used) = decode_value::<T>(payload)?;
    if used != len {
        return Err(CodecError::Decode {
            type_name: std::any::type_name::<T>(),
            len,
            message: format!("{} bytes left over after the value", len - used),
        });
    }
    Ok(Some((value, HEADER_LEN + len)))
}

/// The payload length announced by the header at the front of `buf`, checked against the
/// limit; `Ok(None)` until the whole header is there.
fn payload_len(buf: &[u8], max_len: usize) -> Result<Option<usize>, CodecError> {
    let Some(header) = buf.first_chunk::<HEADER_LEN>() else {
        return Ok(None);
    };
    let len = u32::from_le_bytes(*header) as usize;
    if len > max_len {
        return Err(CodecError::FrameTooLarge {
            len,
            limit: max_len,
        });
    }
    Ok(Some(len))
}

#[cfg(test)]
mod tests;
