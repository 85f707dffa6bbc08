//! The codec fuzz: a property test over a large generated corpus (cargo-fuzz is not available
//! offline; a deterministic generator needs no dependency and reproduces any failure from its
//! seed and input number).
//!
//! Each input is a byte stream built from one of several shapes: valid frames of random values,
//! the same with bytes flipped, cut short or extended, with the length prefix replaced by an
//! arbitrary one (0, ±1, the limit, one past it, `u32::MAX`, random), or plain random bytes.
//! It goes either straight to `decode_frame` as several types, or through a `FrameBuffer` in
//! random pieces (`extend`, `read_from`, `read_available` on a reader that hands out random
//! lengths and `WouldBlock`s), taking frames and payloads until the buffer says "need more" or
//! fails, then checking end-of-file. The frame limit is drawn per input, from 0 to 1 GiB.
//!
//! Checked for every input: no panic (caught, counted, the input printed), and the bytes
//! allocated while handling it, measured by the counting global allocator, stay under
//! [`allocation_bound`]: proportional to the bytes that arrived, never to a length a header or
//! a container claims.

use std::collections::BTreeMap;
use std::io;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::time::Instant;

use proc_core::codec::{self, FrameBuffer, HEADER_LEN};
use serde::{Deserialize, Serialize};

use crate::alloc_counter;
use crate::outcome::Outcome;
use crate::rng::Rng;
use crate::scenarios::Config;

const NAME: &str = "codec-fuzz";

/// A type with the shapes bincode decodes differently: enums, nested containers, maps,
/// strings, options, boxes.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
enum Shape {
    Unit,
    Number(u64),
    Tuple(i32, String),
    Struct {
        items: Vec<(u16, Option<String>)>,
        map: BTreeMap<String, Vec<u8>>,
    },
    Nested(Vec<Vec<u64>>),
    Boxed(Option<Box<Shape>>),
}

fn random_shape(rng: &mut Rng, depth: u32) -> Shape {
    let small = |rng: &mut Rng| rng.below(8) as usize;
    let text = |rng: &mut Rng| {
        let len = small(rng);
        (0..len)
            .map(|_| char::from(b'a' + rng.below(26) as u8))
            .collect::<String>()
    };
    match rng.below(if depth > 2 { 3 } else { 6 }) {
        0 => Shape::Unit,
        1 => Shape::Number(rng.next_u64() >> rng.below(64)),
        2 => Shape::Tuple(rng.next_u64() as i32, text(rng)),
        3 => Shape::Struct {
            items: (0..small(rng))
                .map(|_| (rng.next_u64() as u16, rng.percent(50).then(|| text(rng))))
                .collect(),
            map: (0..small(rng))
                .map(|_| {
                    let key = text(rng);
                    let len = small(rng);
                    (key, rng.bytes(len))
                })
                .collect(),
        },
        4 => Shape::Nested(
            (0..small(rng))
                .map(|_| {
                    (0..small(rng))
                        .map(|_| rng.next_u64() >> rng.below(64))
                        .collect()
                })
                .collect(),
        ),
        _ => Shape::Boxed(
            rng.percent(70)
                .then(|| Box::new(random_shape(rng, depth + 1))),
        ),
    }
}

/// Frame limits an input may be decoded under.
const LIMITS: &[usize] = &[
    0,
    1,
    7,
    64,
    1000,
    4096,
    65_536,
    1 << 20,
    codec::DEFAULT_MAX_FRAME_LEN,
];

/// A length prefix chosen to probe the limit's edges.
fn hostile_len(rng: &mut Rng, max_len: usize, honest: usize) -> u32 {
    let max = u32::try_from(max_len).unwrap_or(u32::MAX);
    match rng.below(8) {
        0 => 0,
        1 => honest.saturating_add(1).try_into().unwrap_or(u32::MAX),
        2 => honest.saturating_sub(1).try_into().unwrap_or(0),
        3 => max,
        4 => max.saturating_add(1),
        5 => u32::MAX,
        6 => rng.next_u64() as u32,
        _ => (rng.below(u64::from(max).max(1) + 1)) as u32,
    }
}

/// One generated input: a byte stream and the limit to decode it under.
fn generate(rng: &mut Rng) -> (Vec<u8>, usize) {
    let max_len = LIMITS[rng.below(LIMITS.len() as u64) as usize];
    let mut stream = Vec::new();
    let frames = 1 + rng.below(4);
    for _ in 0..frames {
        let start = stream.len();
        match rng.below(10) {
            // Plain random bytes, sometimes behind an honest header.
            0 | 1 => {
                let len = rng.below(64) as usize;
                if rng.percent(50) {
                    stream.extend_from_slice(&(len as u32).to_le_bytes());
                }
                stream.extend(rng.bytes(len));
            }
            // A valid frame of a random value, under no limit of its own.
            _ => {
                let value = random_shape(rng, 0);
                let _ = codec::encode_frame(&value, &mut stream, codec::DEFAULT_MAX_FRAME_LEN);
            }
        }
        let frame_len = stream.len() - start;
        match rng.below(6) {
            // An arbitrary length prefix.
            0 | 1 if frame_len >= HEADER_LEN => {
                let honest = frame_len - HEADER_LEN;
                let len = hostile_len(rng, max_len, honest);
                stream[start..start + HEADER_LEN].copy_from_slice(&len.to_le_bytes());
            }
            // Flipped bytes.
            2 if frame_len > 0 => {
                for _ in 0..1 + rng.below(4) {
                    let at = start + rng.below(frame_len as u64) as usize;
                    stream[at] ^= 1 << rng.below(8);
                }
            }
            // Cut short.
            3 if frame_len > 0 => stream.truncate(start + rng.below(frame_len as u64) as usize),
            // Junk appended.
            4 => {
                let len = rng.below(8) as usize;
                let junk = rng.bytes(len);
                stream.extend(junk);
            }
            _ => {}
        }
    }
    (stream, max_len)
}

/// A non-blocking reader over a byte slice that hands out random lengths and sometimes says
/// `WouldBlock` or `Interrupted`, as a socket or pipe does.
struct ChoppyReader<'a> {
    bytes: &'a [u8],
    rng: Rng,
}

impl io::Read for ChoppyReader<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match self.rng.below(10) {
            0 => return Err(io::ErrorKind::WouldBlock.into()),
            1 => return Err(io::ErrorKind::Interrupted.into()),
            _ => {}
        }
        let most = buf.len().min(self.bytes.len());
        let take = if most == 0 {
            0
        } else {
            1 + self.rng.below(most as u64) as usize
        };
        buf[..take].copy_from_slice(&self.bytes[..take]);
        self.bytes = &self.bytes[take..];
        Ok(take)
    }
}

/// Decodes `stream` straight from the slice as several types.
fn decode_directly(stream: &[u8], max_len: usize) -> u64 {
    let mut decoded = 0;
    decoded += u64::from(matches!(
        codec::decode_frame::<Shape>(stream, max_len),
        Ok(Some(_))
    ));
    decoded += u64::from(matches!(
        codec::decode_frame::<Vec<String>>(stream, max_len),
        Ok(Some(_))
    ));
    decoded += u64::from(matches!(
        codec::decode_frame::<(u128, f64, char, bool)>(stream, max_len),
        Ok(Some(_))
    ));
    decoded += u64::from(matches!(
        codec::decode_frame::<Result<Vec<u64>, String>>(stream, max_len),
        Ok(Some(_))
    ));
    decoded += u64::from(matches!(
        codec::decode_frame::<BTreeMap<String, Vec<Vec<u8>>>>(stream, max_len),
        Ok(Some(_))
    ));
    decoded
}

/// Feeds `stream` through a `FrameBuffer` in random pieces, taking frames as they complete.
fn decode_buffered(stream: &[u8], max_len: usize, rng: &mut Rng) -> u64 {
    let mut buffer = FrameBuffer::new(max_len);
    let mut reader = ChoppyReader {
        bytes: stream,
        rng: rng.clone(),
    };
    let as_payloads = rng.percent(30);
    let mut decoded = 0;
    loop {
        let progress = match rng.below(3) {
            0 => {
                let take = reader.bytes.len().min(1 + rng.below(32) as usize);
                buffer.extend(&reader.bytes[..take]);
                reader.bytes = &reader.bytes[take..];
                take > 0
            }
            1 => matches!(buffer.read_from(&mut reader), Ok(n) if n > 0),
            _ => matches!(buffer.read_available(&mut reader), Ok(pass) if pass.bytes > 0),
        };
        // Take every whole frame; an error ends the stream, as it ends a connection.
        loop {
            let next = if as_payloads {
                buffer.next_payload().map(|p| p.map(|_| ()))
            } else {
                buffer.next_frame::<Shape>().map(|v| v.map(|_| ()))
            };
            match next {
                Ok(Some(())) => decoded += 1,
                Ok(None) => break,
                Err(_) => return decoded,
            }
        }
        if !progress && reader.bytes.is_empty() {
            let _ = buffer.check_complete_at_eof();
            return decoded;
        }
    }
}

/// The most a single input may allocate: 64 times the bytes that arrived (what the codec lets a
/// corrupt string length claim; the buffer doubles; the decoded value and its error message
/// are copies), plus 64 KiB (the codec's smallest claim limit), two read chunks, and
/// serde's cautious pre-allocation for a container whose length is claimed but whose elements
/// have not arrived (1 MiB per container open at once, and the types here nest at most four
/// deep). Nothing here scales with a length prefix or a claimed container length.
fn allocation_bound(input_len: usize) -> usize {
    const READ_CHUNKS: usize = 2 * 64 * 1024;
    const SERDE_PREALLOCATION: usize = 4 << 20;
    const SMALLEST_CLAIM_LIMIT: usize = 64 * 1024;
    64 * input_len + SMALLEST_CLAIM_LIMIT + READ_CHUNKS + SERDE_PREALLOCATION
}

/// The fuzz; see the module docs.
pub(crate) fn run(config: &Config) -> Outcome {
    const SEED: u64 = 0x00C0_DEC0_FFEE;
    let mut outcome = Outcome::default();
    let mut rng = Rng::new(SEED);
    let started = Instant::now();
    let mut decoded = 0u64;
    let mut max_peak = 0usize;
    let mut max_peak_small = 0usize;
    let mut biggest_claim_refused = 0u64;
    // The panic hook would print every caught panic; one line each is enough, ours.
    let default_hook = std::panic::take_hook();
    std::panic::set_hook(Box::new(|_| {}));
    while started.elapsed() < config.fuzz_for {
        for _ in 0..256 {
            let input_number = outcome.operations;
            let (stream, max_len) = generate(&mut rng);
            let mut piece_rng = Rng::new(rng.next_u64());
            let buffered = rng.percent(50);
            if stream.len() >= HEADER_LEN {
                let claim = u32::from_le_bytes([stream[0], stream[1], stream[2], stream[3]]);
                if claim as usize > max_len {
                    biggest_claim_refused = biggest_claim_refused.max(u64::from(claim));
                }
            }
            alloc_counter::reset_peak();
            let base = alloc_counter::live_bytes();
            let result = catch_unwind(AssertUnwindSafe(|| {
                if buffered {
                    decode_buffered(&stream, max_len, &mut piece_rng)
                } else {
                    decode_directly(&stream, max_len)
                }
            }));
            let peak = alloc_counter::peak_bytes().saturating_sub(base);
            outcome.operations += 1;
            max_peak = max_peak.max(peak);
            if stream.len() <= 64 {
                max_peak_small = max_peak_small.max(peak);
            }
            match result {
                Ok(0) => {
                    outcome.faults += 1;
                }
                Ok(frames) => decoded += frames,
                Err(_) => outcome.violation(
                    NAME,
                    format!(
                        "input {input_number} (seed {SEED:#x}, limit {max_len}, buffered {buffered}) panicked: {stream:02x?}"
                    ),
                ),
            }
            if peak > allocation_bound(stream.len()) {
                outcome.violation(
                    NAME,
                    format!(
                        "input {input_number} (limit {max_len}, {} bytes) allocated {peak} bytes: {:02x?}",
                        stream.len(),
                        &stream[..stream.len().min(64)]
                    ),
                );
            }
        }
    }
    std::panic::set_hook(default_hook);
    eprintln!(
        "soak: {NAME}: {} inputs in {:.0}s ({} refused whole), {decoded} frames decoded, {} panics; peak allocation \
         per input {max_peak} bytes ({max_peak_small} for inputs of at most 64 bytes); largest \
         length prefix refused {biggest_claim_refused}",
        outcome.operations,
        started.elapsed().as_secs_f64(),
        outcome.faults,
        outcome.violations,
    );
    outcome
}
