use super::*;

/// bincode's own encoding of `value`, without the short road.
fn bincode_road<T: Serialize + ?Sized>(value: &T) -> Vec<u8> {
    bincode::serde::encode_to_vec(value, config()).unwrap()
}

/// A pattern that is not all one byte, so a shifted or reordered copy shows.
fn pattern(len: usize) -> Vec<u8> {
    (0..len).map(|i| (i * 7 + i / 251) as u8).collect()
}

#[derive(Serialize)]
struct Newtype(Vec<u8>);

/// Serializes through `serialize_bytes`, as `serde_bytes` does.
struct AsBytes<'a>(&'a [u8]);

impl Serialize for AsBytes<'_> {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_bytes(self.0)
    }
}

#[test]
fn byte_vectors_take_the_short_road_to_the_same_bytes() {
    for len in [
        0usize,
        1,
        250,
        251,
        300,
        65_535,
        65_536,
        70_000,
        (1 << 20) + 3,
    ] {
        let bytes = pattern(len);
        let expected = bincode_road(&bytes);
        let mut out = vec![0xee];
        encode_value(&bytes, &mut out).unwrap();
        assert_eq!(out[1..], expected[..], "Vec<u8> of {len}");
        assert_eq!(
            len_prefix(len).as_bytes(),
            &expected[..expected.len() - len]
        );
        let mut out = Vec::new();
        encode_value(&bytes[..], &mut out).unwrap();
        assert_eq!(out, expected, "[u8] of {len}");
        let mut out = Vec::new();
        encode_value(&&bytes, &mut out).unwrap();
        assert_eq!(out, expected, "&Vec<u8> of {len}");
        let boxed: Box<[u8]> = bytes.clone().into_boxed_slice();
        let mut out = Vec::new();
        encode_value(&boxed, &mut out).unwrap();
        assert_eq!(out, expected, "Box<[u8]> of {len}");
        let mut out = Vec::new();
        encode_value(&Newtype(bytes.clone()), &mut out).unwrap();
        assert_eq!(out, expected, "newtype of {len}");
        let mut out = Vec::new();
        encode_value(&AsBytes(&bytes), &mut out).unwrap();
        assert_eq!(out, expected, "serialize_bytes of {len}");

        let mut slice = vec![0u8; expected.len()];
        assert_eq!(
            encode_into_slice(&bytes, &mut slice).unwrap(),
            expected.len()
        );
        assert_eq!(slice, expected);
        if !expected.is_empty() {
            let err = encode_into_slice(&bytes, &mut slice[..expected.len() - 1]);
            assert!(matches!(err, Err(CodecError::Encode { .. })), "{err:?}");
        }

        let (back, used) = decode_byte_vector(&expected).unwrap();
        assert_eq!((back == bytes, used), (true, expected.len()));
        let (back, used) = decode_value::<Vec<u8>>(&out).unwrap();
        assert_eq!((back == bytes, used), (true, expected.len()));
    }
}

#[test]
fn other_values_keep_bincodes_road() {
    let mut out = Vec::new();
    encode_value(&vec![1u64, 300, 70_000], &mut out).unwrap();
    assert_eq!(out, bincode_road(&vec![1u64, 300, 70_000]));
    let nested = vec![pattern(3), pattern(300)];
    let mut out = Vec::new();
    encode_value(&nested, &mut out).unwrap();
    assert_eq!(out, bincode_road(&nested));
    let mixed = (7u8, pattern(20), "text".to_string());
    let mut out = Vec::new();
    encode_value(&mixed, &mut out).unwrap();
    assert_eq!(out, bincode_road(&mixed));
    let mut slice = [0u8; 64];
    let used = encode_into_slice(&vec![1i8, -1], &mut slice).unwrap();
    assert_eq!(slice[..used], bincode_road(&vec![1i8, -1])[..]);
}

#[test]
fn a_sequence_encodes_as_its_slice_and_decodes_item_by_item() {
    let vectors = vec![pattern(0), pattern(1 << 16), pattern(5), pattern(251)];
    let numbers = vec![1u64, 2, 1 << 40];
    let strings = vec!["a".to_string(), String::new()];
    let mut out = Vec::new();
    encode_sequence(&vectors, &mut out).unwrap();
    assert_eq!(out, bincode_road(&vectors));
    let refs: Vec<&Vec<u8>> = vectors.iter().collect();
    let mut by_ref = Vec::new();
    encode_sequence(&refs, &mut by_ref).unwrap();
    assert_eq!(by_ref, out);
    let (count, used) = decode_len_prefix(&out).unwrap();
    let (back, rest) = decode_sequence::<Vec<u8>>(&out[used..], count).unwrap();
    assert_eq!((back, used + rest), (vectors.clone(), out.len()));
    let (bodies, rest) = split_byte_vectors(&out[used..], count).unwrap();
    let want: Vec<&[u8]> = vectors.iter().map(Vec::as_slice).collect();
    assert_eq!((bodies, used + rest), (want, out.len()));
    for empty in [&[][..], &numbers[..0]] {
        let mut out = Vec::new();
        encode_sequence(empty, &mut out).unwrap();
        assert_eq!(out, bincode_road(empty));
    }
    let mut out = Vec::new();
    encode_sequence(&numbers, &mut out).unwrap();
    assert_eq!(out, bincode_road(&numbers));
    let mut out = Vec::new();
    encode_sequence(&strings, &mut out).unwrap();
    assert_eq!(out, bincode_road(&strings));
}

#[test]
fn a_byte_vector_claiming_more_than_is_there_is_refused_without_allocating_it() {
    // Claims 2^60 bytes, has 3.
    let mut claim = len_prefix(1 << 60).as_bytes().to_vec();
    claim.extend_from_slice(&[1, 2, 3]);
    let err = decode_byte_vector(&claim).unwrap_err();
    assert!(err.to_string().contains("Vec<u8>"), "{err}");
    let err = decode_sequence::<Vec<u8>>(&claim, usize::MAX).unwrap_err();
    assert!(matches!(err, CodecError::Decode { .. }), "{err}");
    // One vector short.
    let mut two = Vec::new();
    encode_value(&pattern(10), &mut two).unwrap();
    assert!(decode_sequence::<Vec<u8>>(&two, 2).is_err());
    assert!(split_byte_vectors(&two, 2).is_err());
    assert!(split_byte_vectors(&claim, 1).is_err());
}

#[test]
fn a_frame_built_in_pieces_comes_out_as_its_header_and_values() {
    let mut out = vec![9u8]; // bytes already queued stay untouched
    let frame = begin_frame(&mut out);
    out.extend_from_slice(&7u64.to_le_bytes());
    encode_value(&vec![1u32, 2, 3], &mut out).unwrap();
    encode_value("tail", &mut out).unwrap();
    finish_frame(&mut out, frame, 1024).unwrap();
    // A second frame too big for its limit vanishes whole.
    let too_big = begin_frame(&mut out);
    encode_value(&vec![0u8; 100], &mut out).unwrap();
    let err = finish_frame(&mut out, too_big, 50).unwrap_err();
    assert!(
        matches!(
            err,
            CodecError::FrameTooLarge {
                len: 101,
                limit: 50
            }
        ),
        "{err}"
    );

    let mut buffer = FrameBuffer::new(1024);
    buffer.extend(&out[1..]);
    let payload = buffer.next_payload().unwrap().unwrap().to_vec();
    assert_eq!(buffer.pending(), 0);
    assert_eq!(buffer.next_payload().unwrap(), None);
    assert_eq!(payload[..8], 7u64.to_le_bytes());
    let (numbers, used) = decode_value::<Vec<u32>>(&payload[8..]).unwrap();
    assert_eq!(numbers, [1, 2, 3]);
    let (tail, rest) = decode_value::<String>(&payload[8 + used..]).unwrap();
    assert_eq!((tail.as_str(), 8 + used + rest), ("tail", payload.len()));
    assert_eq!(out[0], 9);
}

#[test]
fn values_encoded_one_at_a_time_decode_as_a_counted_sequence() {
    let values = vec![String::from("a"), String::new(), "ß".repeat(300)];
    let mut out = Vec::new();
    for value in &values {
        encode_value(value, &mut out).unwrap();
    }
    out.extend_from_slice(b"trailing");
    let (decoded, used) = decode_sequence::<String>(&out, 3).unwrap();
    assert_eq!(decoded, values);
    assert_eq!(&out[used..], b"trailing");
    // Fewer bytes than the count needs: an error naming the type, not a panic.
    let err = decode_sequence::<String>(&out[..used - 1], 3).unwrap_err();
    assert!(
        err.to_string().contains("Vec<alloc::string::String>"),
        "{err}"
    );
    // A count the bytes cannot hold is refused without allocating for it.
    assert!(decode_sequence::<u8>(&[1, 2], usize::MAX).is_err());
}

#[test]
fn a_frame_encoded_into_a_slice_is_encode_frames_bytes_and_keeps_its_limits() {
    for value in [String::new(), "x".repeat(40), "y".repeat(200)] {
        let mut heap = Vec::new();
        encode_frame(&value, &mut heap, 1 << 20).unwrap();
        let mut slice = [0u8; 256];
        let used = encode_frame_into_slice(&value, &mut slice, 1 << 20).unwrap();
        assert_eq!(&slice[..used], &heap[..], "a {}-byte string", value.len());
    }
    let long = "z".repeat(300);
    assert!(matches!(
        encode_frame_into_slice(&long, &mut [0u8; 256], 1 << 20),
        Err(CodecError::Encode { .. })
    ));
    assert!(matches!(
        encode_frame_into_slice(&"w".repeat(40), &mut [0u8; 256], 20),
        Err(CodecError::FrameTooLarge { len: 41, limit: 20 })
    ));
    assert!(matches!(
        encode_frame_into_slice(&1u8, &mut [0u8; 3], 20),
        Err(CodecError::Encode { .. })
    ));
}

#[test]
fn frames_round_trip_and_report_their_size() {
    let mut out = Vec::new();
    encode_frame(
        &("hello".to_string(), 42u64),
        &mut out,
        DEFAULT_MAX_FRAME_LEN,
    )
    .unwrap();
    encode_frame(&vec![1u8, 2, 3], &mut out, DEFAULT_MAX_FRAME_LEN).unwrap();
    let (first, used) = decode_frame::<(String, u64)>(&out, DEFAULT_MAX_FRAME_LEN)
        .unwrap()
        .unwrap();
    assert_eq!(first, ("hello".to_string(), 42));
    let (second, used2) = decode_frame::<Vec<u8>>(&out[used..], DEFAULT_MAX_FRAME_LEN)
        .unwrap()
        .unwrap();
    assert_eq!(second, vec![1, 2, 3]);
    assert_eq!(used + used2, out.len());
}

#[test]
fn a_partial_frame_is_not_yet_a_frame() {
    let mut out = Vec::new();
    encode_frame(&"abcdef", &mut out, DEFAULT_MAX_FRAME_LEN).unwrap();
    for cut in 0..out.len() {
        assert!(
            decode_frame::<String>(&out[..cut], DEFAULT_MAX_FRAME_LEN)
                .unwrap()
                .is_none()
        );
    }
}

#[test]
fn oversize_frames_are_refused_on_both_sides_and_nothing_queued_is_lost() {
    let mut out = Vec::new();
    encode_frame(&1u8, &mut out, 16).unwrap();
    let queued = out.clone();
    let err = encode_frame(&vec![0u8; 100], &mut out, 16).unwrap_err();
    assert!(
        matches!(
            err,
            CodecError::FrameTooLarge {
                len: 101,
                limit: 16
            }
        ),
        "{err}"
    );
    assert_eq!(out, queued, "the failed frame left no bytes behind");

    let header = (u32::MAX).to_le_bytes();
    let err = decode_frame::<Vec<u8>>(&header, 1 << 20).unwrap_err();
    assert_eq!(
        err.to_string(),
        format!("frame of {} bytes is over the 1048576-byte limit", u32::MAX)
    );
}

#[test]
fn wrong_type_and_trailing_bytes_name_the_expected_type() {
    let mut out = Vec::new();
    encode_frame(&(1u8, 2u8, 3u8), &mut out, 64).unwrap();
    let err = decode_frame::<u8>(&out, 64).unwrap_err();
    assert!(err.to_string().contains("not a valid u8"), "{err}");
    assert!(err.to_string().contains("2 bytes left over"), "{err}");

    let mut out = Vec::new();
    encode_frame(&[0xffu8; 3], &mut out, 64).unwrap();
    let err = decode_frame::<String>(&out, 64).unwrap_err();
    assert!(err.to_string().contains("alloc::string::String"), "{err}");
}

/// Arbitrary bytes never panic, hang or allocate wildly: every prefix of many pseudo-random
/// buffers, decoded as several types, is a value, "need more", or an error.
#[test]
fn arbitrary_input_never_panics() {
    #[derive(serde::Deserialize, Debug)]
    #[allow(dead_code)]
    enum Shape {
        Unit,
        Tuple(u64, String),
        Struct {
            items: Vec<(i32, Option<String>)>,
            map: std::collections::BTreeMap<String, Vec<u8>>,
        },
    }
    let mut state = 0x9E37_79B9_7F4A_7C15u64;
    let mut next = move || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state
    };
    for _ in 0..5_000 {
        let len = (next() % 48) as usize;
        let mut bytes: Vec<u8> = (0..len).map(|_| next() as u8).collect();
        // Half the time, a plausible header so the payload decoder is reached.
        if next() % 2 == 0 && len >= 4 {
            bytes[..4].copy_from_slice(&((len - 4) as u32).to_le_bytes());
        }
        let _ = decode_frame::<Shape>(&bytes, 1 << 20);
        let _ = decode_frame::<Vec<String>>(&bytes, 1 << 20);
        let _ = decode_frame::<(u128, f64, char, bool)>(&bytes, 1 << 20);
        let _ = decode_frame::<Result<Vec<u64>, String>>(&bytes, 1 << 20);
    }
}

#[test]
fn encoded_len_within_is_encode_values_length_up_to_the_limit() {
    /// Checks `encoded_len_within` of `value` against its encoding, at and around the limit.
    fn check<T: Serialize + ?Sized>(value: &T) {
        let mut encoded = Vec::new();
        encode_value(value, &mut encoded).unwrap();
        let len = encoded.len();
        assert_eq!(len, bincode_road(value).len());
        assert_eq!(encoded_len_within(value, usize::MAX), Some(len));
        assert_eq!(
            encoded_len_within(value, len),
            Some(len),
            "exactly at the limit fits"
        );
        assert_eq!(
            encoded_len_within(value, len - 1),
            None,
            "one byte over does not"
        );
        assert_eq!(encoded_len_within(value, 0), None);
    }
    #[derive(Serialize)]
    struct Record {
        name: String,
        samples: Vec<f64>,
        tag: Option<u32>,
    }
    let bytes = pattern(70_000);
    check(&bytes);
    check(&Newtype(bytes.clone()));
    check(&AsBytes(&bytes));
    check(&Vec::<u8>::new());
    check(&Record {
        name: "probe".into(),
        samples: vec![0.5; 1000],
        tag: Some(70_000),
    });
    check(&(7u64, -3i32, 2.5f32));
    check("text");
}

#[test]
fn encoded_len_within_a_value_whose_serialize_fails_is_none() {
    struct Fails;
    impl Serialize for Fails {
        fn serialize<S: serde::Serializer>(&self, _: S) -> Result<S::Ok, S::Error> {
            Err(serde::ser::Error::custom("no"))
        }
    }
    assert_eq!(encoded_len_within(&Fails, usize::MAX), None);
}
