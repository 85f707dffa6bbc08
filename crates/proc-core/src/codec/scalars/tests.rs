use serde::{Deserialize, Serialize};

use super::*;

/// bincode's own encoding of `value`.
fn bincode_bytes<T: Serialize>(value: &T) -> Vec<u8> {
    bincode::serde::encode_to_vec(value, bincode::config::standard()).expect("bincode encodes")
}

fn bincode_value<T: DeserializeOwned>(bytes: &[u8]) -> Option<(T, usize)> {
    bincode::serde::decode_from_slice(bytes, bincode::config::standard()).ok()
}

#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
struct Point {
    x: i32,
    y: f64,
    on: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
struct Meters(u16);

#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
struct Pair(u8, i8);

/// Every value takes the road, writes bincode's bytes and reads back as bincode does.
fn round_trip<T: Serialize + DeserializeOwned + PartialEq + fmt::Debug>(values: &[T]) {
    for value in values {
        let expected = bincode_bytes(value);
        let mut out = vec![7];
        assert!(encode(value, &mut out), "{value:?} takes the road");
        assert_eq!(out[1..], expected, "{value:?}");
        let mut slice = [0u8; 64];
        let used = encode_into_slice(value, &mut slice).expect("fits");
        assert_eq!(slice[..used], expected, "{value:?}");
        let (decoded, used) = decode::<T>(&expected).expect("reads");
        assert_eq!((&decoded, used), (value, expected.len()));
    }
    let mut all = Vec::new();
    assert!(encode_all(values, &mut all));
    let concatenated: Vec<u8> = values.iter().flat_map(bincode_bytes).collect();
    assert_eq!(all, concatenated);
    let (decoded, used) = decode_sequence::<T>(&all, values.len()).expect("reads all");
    assert_eq!((decoded.as_slice(), used), (values, all.len()));
    // Onto values already there, twice.
    let mut onto: Vec<T> = Vec::new();
    assert_eq!(
        decode_sequence_onto(&all, values.len(), &mut onto),
        Some(all.len())
    );
    assert_eq!(
        decode_sequence_onto(&all, values.len(), &mut onto),
        Some(all.len())
    );
    assert_eq!(onto.len(), 2 * values.len());
    assert!(onto[..values.len()] == *values && onto[values.len()..] == *values);
}

#[test]
fn integers_at_every_varint_width_are_bincodes_bytes() {
    round_trip(&[
        0u64,
        1,
        250,
        251,
        255,
        65_535,
        65_536,
        u64::from(u32::MAX),
        u64::from(u32::MAX) + 1,
        u64::MAX,
    ]);
    round_trip(&[0u32, 250, 251, 65_535, 65_536, u32::MAX]);
    round_trip(&[0u16, 250, 251, u16::MAX]);
    round_trip(&[0u8, 250, 251, u8::MAX]);
    round_trip(&[0usize, 251, usize::MAX]);
    round_trip(&[0i64, -1, 1, -126, 125, -127, 126, i64::MIN, i64::MAX]);
    round_trip(&[0i32, -1, -70_000, 70_000, i32::MIN, i32::MAX]);
    round_trip(&[0i16, -1, -200, 200, i16::MIN, i16::MAX]);
    round_trip(&[0i8, -1, i8::MIN, i8::MAX]);
    round_trip(&[0isize, -300, isize::MIN, isize::MAX]);
}

#[test]
fn floats_bools_tuples_structs_and_newtypes_are_bincodes_bytes() {
    round_trip(&[0.0f64, -1.5, f64::MAX, f64::INFINITY]);
    round_trip(&[0.0f32, 3.25, f32::MIN]);
    round_trip(&[true, false]);
    round_trip(&[(1u64, 2u64), (300, u64::MAX)]);
    round_trip(&[(1u8, (-2i64, 3.5f32), true)]);
    round_trip(&[
        Point {
            x: -5,
            y: 0.25,
            on: true,
        },
        Point {
            x: i32::MAX,
            y: -1e300,
            on: false,
        },
    ]);
    round_trip(&[Meters(0), Meters(60_000)]);
    round_trip(&[Pair(255, -128)]);
    round_trip(&[std::num::Wrapping(70_000u32)]);
}

#[test]
fn anything_else_is_refused_and_nothing_is_left_written() {
    let mut out = vec![9];
    assert!(!encode(&"text", &mut out));
    assert!(!encode(&vec![1u64, 2], &mut out));
    assert!(!encode(&Some(1u64), &mut out));
    assert!(!encode(&'c', &mut out));
    assert!(!encode(&1u128, &mut out));
    // Refused halfway, after the number was written: written back.
    assert!(!encode(&(1u64, "text"), &mut out));
    assert_eq!(out, [9]);
    assert!(!encode_all(&[(1u64, None), (2, Some(3u8))], &mut out));
    assert_eq!(out, [9]);
    assert_eq!(
        encode_into_slice(&"text", &mut [0; 16]),
        Err(Refused::NotScalars)
    );
    let bytes = bincode_bytes(&(1u64, String::from("text")));
    assert!(decode::<(u64, String)>(&bytes).is_none());
    assert!(decode::<String>(&bytes).is_none());
    assert!(
        decode::<()>(&[]).is_none(),
        "values of no size go bincode's way"
    );
}

#[test]
fn a_slice_too_small_says_how_much_is_needed() {
    let value = (u64::MAX, 1u8);
    assert_eq!(
        encode_into_slice(&value, &mut [0; 4]),
        Err(Refused::TooSmall(10))
    );
    assert_eq!(encode_into_slice(&value, &mut [0; 10]), Ok(10));
}

/// Input the road is not sure of is refused, for bincode to read or report: it never
/// reads a value bincode would not.
#[test]
fn unusual_input_is_left_to_bincode() {
    // The end of the input, inside a varint.
    assert!(decode::<u64>(&[U32_MARKER, 1, 2]).is_none());
    assert!(bincode_value::<u64>(&[U32_MARKER, 1, 2]).is_none());
    // A u128 marker, a reserved one, a u32 marker for a u16.
    for bytes in [&[254u8; 17][..], &[255; 9], &[U32_MARKER, 0, 0, 1, 0]] {
        assert!(decode::<u64>(bytes).is_none() || bincode_value::<u64>(bytes).is_some());
    }
    assert!(decode::<u16>(&[U32_MARKER, 0, 0, 1, 0]).is_none());
    assert!(bincode_value::<u16>(&[U32_MARKER, 0, 0, 1, 0]).is_none());
    // A byte that is not a bool.
    assert!(decode::<bool>(&[2]).is_none());
    assert!(bincode_value::<bool>(&[2]).is_none());
    // A value its type refuses: bincode's error, not the road's.
    assert!(decode::<std::num::NonZeroU64>(&[0]).is_none());
    // A sequence with one bad value among good ones.
    assert!(decode_sequence::<u16>(&[1, 2, U32_MARKER, 0, 0, 1, 0], 3).is_none());
    // Fewer values than counted.
    assert!(decode_sequence::<u64>(&[1, 2], 3).is_none());
    // Refused halfway onto values already there: they are left as they were.
    let mut onto = vec![7u16, 8];
    assert!(decode_sequence_onto(&[1, 2, U32_MARKER, 0, 0, 1, 0], 3, &mut onto).is_none());
    assert_eq!(onto, [7, 8]);
}

#[test]
fn non_canonical_varints_read_as_bincode_reads_them() {
    // 5 written wide: bincode accepts it, and so does the road.
    for bytes in [&[U16_MARKER, 5, 0][..], &[U32_MARKER, 5, 0, 0, 0]] {
        assert_eq!(decode::<u64>(bytes), bincode_value::<u64>(bytes));
        assert_eq!(decode::<u64>(bytes), Some((5, bytes.len())));
    }
}
