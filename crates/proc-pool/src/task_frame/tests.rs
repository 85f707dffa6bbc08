use super::*;

/// A frame that fills the window's bytes alone.
const BIG: usize = WINDOW_BYTES;

#[test]
fn a_large_frame_gives_its_memory_to_the_next_one() {
    let recycler = FrameRecycler::new();
    let first = recycler.frame(vec![7u8; BIG]);
    let address = first.as_ptr();
    assert!(
        !recycler.has_room(1),
        "one frame of the window's bytes fills a window of one frame"
    );
    drop(first);
    assert!(recycler.has_room(1));
    let buffer = recycler.buffer(16);
    assert_eq!(
        buffer.as_ptr(),
        address,
        "the next frame is not in the freed one's memory"
    );
    assert!(buffer.is_empty() && buffer.capacity() >= BIG);
    assert!(
        recycler.buffer(16).capacity() < BIG,
        "one spare was handed out twice"
    );
}

#[test]
fn small_frames_are_neither_counted_nor_kept() {
    let recycler = FrameRecycler::new();
    let frames: Vec<TaskFrame> = (0..100)
        .map(|_| recycler.frame(vec![1u8; LARGE_FRAME - 1]))
        .collect();
    assert!(recycler.has_room(1));
    drop(frames);
    assert_eq!(recycler.buffer(0).capacity(), 0);
}

#[test]
fn the_window_counts_frames_and_bytes() {
    let recycler = FrameRecycler::new();
    // Three frames of 1 MiB: three frames, but far below the window's bytes.
    let small: Vec<TaskFrame> = (0..3).map(|_| recycler.frame(vec![0u8; 1 << 20])).collect();
    assert!(recycler.has_room(3));
    let big: Vec<TaskFrame> = (0..2).map(|_| recycler.frame(vec![0u8; BIG])).collect();
    assert!(
        !recycler.has_room(3),
        "5 frames holding 131 MiB leave room in a window of 3"
    );
    assert!(recycler.has_room(6));
    drop(big);
    assert!(recycler.has_room(3));
    drop(small);
}

#[test]
fn a_waiter_wakes_when_a_frame_goes_and_gives_up_after_the_bound() {
    let recycler = FrameRecycler::new();
    let frame = recycler.frame(vec![0u8; WINDOW_BYTES]);
    // Nothing goes away: the wait runs out, and takes about its bound.
    let start = Instant::now();
    assert!(!recycler.wait_for_room(1));
    assert!(start.elapsed() >= ROOM_WAIT);
    // The frame goes away on another thread while the wait is on.
    let waiter = {
        let recycler = Arc::clone(&recycler);
        std::thread::spawn(move || recycler.wait_for_room(1))
    };
    std::thread::sleep(Duration::from_millis(10));
    drop(frame);
    assert!(waiter.join().expect("the waiter panicked"));
}

#[test]
fn a_copy_is_recycled_nowhere_and_the_original_still_is() {
    let recycler = FrameRecycler::new();
    let original = Arc::new(recycler.frame(vec![3u8; BIG]));
    let mut shared = Arc::clone(&original);
    Arc::make_mut(&mut shared)[0] = 4;
    assert_eq!((original[0], shared[0]), (3, 4));
    drop(shared);
    assert!(
        !recycler.has_room(1),
        "the copy's drop took the original out of the window"
    );
    drop(original);
    assert!(recycler.has_room(1));
    assert!(recycler.buffer(0).capacity() >= BIG);
}
