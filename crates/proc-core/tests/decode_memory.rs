//! What a corrupt frame can make the decoder allocate grows with the bytes that arrived, never
//! with a length the frame claims. Measured with a counting global allocator, so this test has
//! a binary of its own.
//!
//! Regression: a 22-byte frame whose string claimed 4 GiB made bincode allocate 4 GiB before
//! finding the bytes missing (the soak suite's codec fuzz found it).

#![allow(clippy::unwrap_used)] // In tests a failed unwrap is a failed test, with its location.

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicUsize, Ordering};

use proc_core::codec;

static LIVE: AtomicUsize = AtomicUsize::new(0);
static PEAK: AtomicUsize = AtomicUsize::new(0);

struct Counting;

// SAFETY: each method forwards the caller's arguments to `System` unchanged; the bookkeeping
// touches two atomics and never allocates.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        // SAFETY: the caller's contract, passed on.
        let ptr = unsafe { System.alloc(layout) };
        if !ptr.is_null() {
            let live = LIVE.fetch_add(layout.size(), Ordering::Relaxed) + layout.size();
            PEAK.fetch_max(live, Ordering::Relaxed);
        }
        ptr
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: the caller's contract, passed on.
        unsafe { System.dealloc(ptr, layout) };
        LIVE.fetch_sub(layout.size(), Ordering::Relaxed);
    }
}

#[global_allocator]
static ALLOCATOR: Counting = Counting;

/// Bytes allocated at the peak while `f` ran, above what was live before.
fn peak_during(f: impl FnOnce()) -> usize {
    let base = LIVE.load(Ordering::Relaxed);
    PEAK.store(base, Ordering::Relaxed);
    f();
    PEAK.load(Ordering::Relaxed) - base
}

/// A frame whose payload is a varint length (`0xfc` then a little-endian u32) claiming `claim`
/// bytes of string, followed by only `present` bytes of it.
fn lying_string_frame(claim: u32, present: usize) -> Vec<u8> {
    let mut payload = vec![0xfc];
    payload.extend_from_slice(&claim.to_le_bytes());
    payload.extend(std::iter::repeat_n(b'a', present));
    let mut frame = (payload.len() as u32).to_le_bytes().to_vec();
    frame.extend(payload);
    frame
}

#[test]
fn a_string_claiming_gigabytes_allocates_only_about_what_arrived() {
    // One test function: the allocator is global, parallel tests would blur the figures.
    for (claim, present) in [
        (u32::MAX - 8, 0),
        (3 << 30, 17),
        (1 << 20, 100),
        (70_000, 5_000),
    ] {
        let frame = lying_string_frame(claim, present);
        let peak = peak_during(|| {
            let err =
                codec::decode_frame::<String>(&frame, codec::DEFAULT_MAX_FRAME_LEN).unwrap_err();
            assert!(err.to_string().contains("alloc::string::String"), "{err}");
        });
        let bound = 64 * frame.len() + (64 << 10) + 4096; // + the error message
        assert!(
            peak <= bound,
            "a {}-byte frame claiming {claim} bytes allocated {peak} (bound {bound})",
            frame.len()
        );
    }
    // Honest values still decode, including those whose memory is many times their encoding
    // (small u64 and u128 varints: 1 byte each on the wire, 8 and 16 in memory).
    for count in [0, 1, 1000, 5000, 70_000, 300_000] {
        let small: Vec<u64> = (0..count).map(|i| i % 100).collect();
        let mut frame = Vec::new();
        codec::encode_frame(&small, &mut frame, codec::DEFAULT_MAX_FRAME_LEN).unwrap();
        let (back, _) = codec::decode_frame::<Vec<u64>>(&frame, codec::DEFAULT_MAX_FRAME_LEN)
            .unwrap()
            .unwrap();
        assert_eq!(back, small);
        let tiny: Vec<u128> = (0..count as u128).map(|i| i % 100).collect();
        let mut frame = Vec::new();
        codec::encode_frame(&tiny, &mut frame, codec::DEFAULT_MAX_FRAME_LEN).unwrap();
        let (back, _) = codec::decode_frame::<Vec<u128>>(&frame, codec::DEFAULT_MAX_FRAME_LEN)
            .unwrap()
            .unwrap();
        assert_eq!(back, tiny);
    }
    // Honest strings of every size still decode.
    for len in [0, 1, 4095, 4096, 4097, 65_536, 1 << 20, (1 << 20) + 1] {
        let text = "x".repeat(len);
        let mut frame = Vec::new();
        codec::encode_frame(&text, &mut frame, codec::DEFAULT_MAX_FRAME_LEN).unwrap();
        let (back, used) = codec::decode_frame::<String>(&frame, codec::DEFAULT_MAX_FRAME_LEN)
            .unwrap()
            .unwrap();
        assert_eq!((back.len(), used), (len, frame.len()));
    }
}
