//! The short road of scalars (see the codec's module docs): a serde `Serializer` and
//! `Deserializer` of exactly bincode's encoding (`config::standard()`) for values made of
//! integers, `bool`s and floats only (alone, or in tuples, structs and newtypes of them,
//! nested), which a `map` over numbers sends by the hundred thousand. bincode's own road
//! costs a few nanoseconds a number through its generic reader and writer and their error
//! values; this one is a varint written or read in place.
//!
//! No type is named: a value takes this road when its `Serialize` / `Deserialize` impl asks
//! only for what the road knows. Anything else (a string, a sequence, an enum, an option, a
//! `char`, a 128-bit integer) is refused, as is any input this road is not sure to read
//! exactly as bincode would (an unusual varint marker, a byte that is not a `bool`, the end of
//! the input): the caller then takes bincode's road from the start, which writes the same bytes
//! or reports its own error. So either road gives the same bytes and the same values (tests
//! check).

use std::fmt;

use serde::de::{self, DeserializeOwned, DeserializeSeed, Visitor};
use serde::ser::{self, Impossible, Serialize};

/// Why the road stopped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Refused {
    /// Not a value of scalars (or not input this road reads): bincode's road.
    NotScalars,
    /// Scalars, but their encoding needs this many bytes, more than the slice has.
    TooSmall(usize),
}

impl fmt::Display for Refused {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Refused::NotScalars => f.write_str("not a value of scalars"),
            Refused::TooSmall(needed) => write!(f, "{needed} bytes do not fit"),
        }
    }
}

impl std::error::Error for Refused {}

impl ser::Error for Refused {
    fn custom<T: fmt::Display>(_message: T) -> Refused {
        Refused::NotScalars
    }
}

impl de::Error for Refused {
    fn custom<T: fmt::Display>(_message: T) -> Refused {
        Refused::NotScalars
    }
}

/// bincode's varint markers: a `u16`, `u32` or `u64` follows (little endian).
const U16_MARKER: u8 = 251;
const U32_MARKER: u8 = 252;
const U64_MARKER: u8 = 253;

/// Appends `value` to `out` if it is made of scalars (true); otherwise leaves `out` as it was
/// (false).
#[inline]
pub(super) fn encode<T: Serialize + ?Sized>(value: &T, out: &mut Vec<u8>) -> bool {
    let start = out.len();
    match value.serialize(&mut Writer(VecSink(out))) {
        Ok(()) => true,
        Err(_) => {
            out.truncate(start);
            false
        }
    }
}

/// Writes `value` at the start of `out` if it is made of scalars: the bytes used, or
/// `TooSmall` with the bytes it needs; `NotScalars` otherwise.
#[inline]
pub(super) fn encode_into_slice<T: Serialize + ?Sized>(
    value: &T,
    out: &mut [u8],
) -> Result<usize, Refused> {
    let mut writer = Writer(SliceSink { out, used: 0 });
    value.serialize(&mut writer)?;
    let SliceSink { out, used } = writer.0;
    if used > out.len() {
        return Err(Refused::TooSmall(used));
    }
    Ok(used)
}

/// Appends `items` back to back if the first is made of scalars (and then all are); false,
/// with `out` as it was, otherwise.
#[inline]
pub(super) fn encode_all<T: Serialize>(items: &[T], out: &mut Vec<u8>) -> bool {
    let start = out.len();
    let Some((first, rest)) = items.split_first() else {
        return true;
    };
    if !encode(first, out) {
        return false;
    }
    // Room for all, if they are about the size of the first (a chunk of like items).
    let first_len = out.len() - start;
    out.reserve(first_len.saturating_mul(rest.len()).min(1 << 30));
    let mut writer = Writer(VecSink(out));
    for item in rest {
        if item.serialize(&mut writer).is_err() {
            writer.0.0.truncate(start);
            return false;
        }
    }
    true
}

/// Decodes one value made of scalars from the front of `bytes`; `None` for bincode's road.
#[inline]
pub(super) fn decode<T: DeserializeOwned>(bytes: &[u8]) -> Option<(T, usize)> {
    if size_of::<T>() == 0 {
        // Nothing to gain, and a count of values of no bytes is bincode's to bound.
        return None;
    }
    let mut reader = Reader { bytes, used: 0 };
    let value = T::deserialize(&mut reader).ok()?;
    Some((value, reader.used))
}

/// Decodes `count` values of `T` back to back if the first one is made of scalars (and then
/// all are); `None` otherwise, for bincode's road.
#[inline]
pub(super) fn decode_sequence<T: DeserializeOwned>(
    bytes: &[u8],
    count: usize,
) -> Option<(Vec<T>, usize)> {
    let mut values = Vec::new();
    let used = decode_sequence_onto(bytes, count, &mut values)?;
    Some((values, used))
}

/// [`decode_sequence`], appending the values to `out`; returns the bytes used. `None`, with
/// `out` as it was, for bincode's road.
#[inline]
pub(super) fn decode_sequence_onto<T: DeserializeOwned>(
    bytes: &[u8],
    count: usize,
    out: &mut Vec<T>,
) -> Option<usize> {
    if count == 0 || size_of::<T>() == 0 {
        // Values of no size: nothing to gain, and a count of them is bincode's to bound.
        return None;
    }
    let mut reader = Reader { bytes, used: 0 };
    let first = T::deserialize(&mut reader).ok()?;
    // Every value takes at least one byte: a corrupt count claims no more than that; and at
    // most 1 MiB up front.
    out.reserve(
        count
            .min(bytes.len())
            .min(((1 << 20) / size_of::<T>()).max(1)),
    );
    let start = out.len();
    out.push(first);
    for _ in 1..count {
        match T::deserialize(&mut reader) {
            Ok(value) => out.push(value),
            Err(_) => {
                out.truncate(start);
                return None;
            }
        }
    }
    Some(reader.used)
}

/// Where the writer puts bytes.
trait Sink {
    fn put(&mut self, bytes: &[u8]);
}

/// Appends to a vector (the caller truncates it back on failure).
struct VecSink<'a>(&'a mut Vec<u8>);

impl Sink for VecSink<'_> {
    #[inline]
    fn put(&mut self, bytes: &[u8]) {
        self.0.extend_from_slice(bytes);
    }
}

/// Writes into a slice from its start; past its end, only counts (to say how much a value
/// needs).
struct SliceSink<'a> {
    out: &'a mut [u8],
    used: usize,
}

impl Sink for SliceSink<'_> {
    #[inline]
    fn put(&mut self, bytes: &[u8]) {
        let end = self.used + bytes.len();
        if let Some(room) = self.out.get_mut(self.used..end) {
            room.copy_from_slice(bytes);
        }
        self.used = end;
    }
}

/// The serializer of the road, over its sink.
struct Writer<S>(S);

impl<S: Sink> Writer<S> {
    /// bincode's varint of an unsigned integer.
    #[inline]
    fn varint(&mut self, value: u64) {
        if value < u64::from(U16_MARKER) {
            self.0.put(&[value as u8]);
        } else if let Ok(short) = u16::try_from(value) {
            let [a, b] = short.to_le_bytes();
            self.0.put(&[U16_MARKER, a, b]);
        } else if let Ok(word) = u32::try_from(value) {
            let [a, b, c, d] = word.to_le_bytes();
            self.0.put(&[U32_MARKER, a, b, c, d]);
        } else {
            let [a, b, c, d, e, f, g, h] = value.to_le_bytes();
            self.0.put(&[U64_MARKER, a, b, c, d, e, f, g, h]);
        }
    }

    /// bincode's zigzag varint of a signed integer.
    #[inline]
    fn signed(&mut self, value: i64) {
        let zigzag = if value < 0 {
            !(value as u64) * 2 + 1
        } else {
            (value as u64) * 2
        };
        self.varint(zigzag);
    }
}

macro_rules! refuse {
    ($($method:ident($($arg:ty),*) -> $ret:ty;)*) => {
        $(
            #[inline]
            fn $method(self, $(_: $arg),*) -> Result<$ret, Refused> {
                Err(Refused::NotScalars)
            }
        )*
    };
}

impl<S: Sink> ser::Serializer for &mut Writer<S> {
    type Ok = ();
    type Error = Refused;
    type SerializeSeq = Impossible<(), Refused>;
    type SerializeTuple = Self;
    type SerializeTupleStruct = Self;
    type SerializeTupleVariant = Impossible<(), Refused>;
    type SerializeMap = Impossible<(), Refused>;
    type SerializeStruct = Self;
    type SerializeStructVariant = Impossible<(), Refused>;

    #[inline]
    fn serialize_bool(self, value: bool) -> Result<(), Refused> {
        self.0.put(&[u8::from(value)]);
        Ok(())
    }

    #[inline]
    fn serialize_i8(self, value: i8) -> Result<(), Refused> {
        self.0.put(&[value as u8]);
        Ok(())
    }

    #[inline]
    fn serialize_i16(self, value: i16) -> Result<(), Refused> {
        self.signed(i64::from(value));
        Ok(())
    }

    #[inline]
    fn serialize_i32(self, value: i32) -> Result<(), Refused> {
        self.signed(i64::from(value));
        Ok(())
    }

    #[inline]
    fn serialize_i64(self, value: i64) -> Result<(), Refused> {
        self.signed(value);
        Ok(())
    }

    #[inline]
    fn serialize_u8(self, value: u8) -> Result<(), Refused> {
        self.0.put(&[value]);
        Ok(())
    }

    #[inline]
    fn serialize_u16(self, value: u16) -> Result<(), Refused> {
        self.varint(u64::from(value));
        Ok(())
    }

    #[inline]
    fn serialize_u32(self, value: u32) -> Result<(), Refused> {
        self.varint(u64::from(value));
        Ok(())
    }

    #[inline]
    fn serialize_u64(self, value: u64) -> Result<(), Refused> {
        self.varint(value);
        Ok(())
    }

    #[inline]
    fn serialize_f32(self, value: f32) -> Result<(), Refused> {
        self.0.put(&value.to_le_bytes());
        Ok(())
    }

    #[inline]
    fn serialize_f64(self, value: f64) -> Result<(), Refused> {
        self.0.put(&value.to_le_bytes());
        Ok(())
    }

    /// bincode writes nothing for a unit.
    #[inline]
    fn serialize_unit(self) -> Result<(), Refused> {
        Ok(())
    }

    #[inline]
    fn serialize_unit_struct(self, _: &'static str) -> Result<(), Refused> {
        Ok(())
    }

    /// bincode writes a newtype as what it wraps.
    #[inline]
    fn serialize_newtype_struct<T: Serialize + ?Sized>(
        self,
        _: &'static str,
        value: &T,
    ) -> Result<(), Refused> {
        value.serialize(self)
    }

    /// bincode writes a tuple, a tuple struct and a struct as their fields, back to back.
    #[inline]
    fn serialize_tuple(self, _: usize) -> Result<Self, Refused> {
        Ok(self)
    }

    #[inline]
    fn serialize_tuple_struct(self, _: &'static str, _: usize) -> Result<Self, Refused> {
        Ok(self)
    }

    #[inline]
    fn serialize_struct(self, _: &'static str, _: usize) -> Result<Self, Refused> {
        Ok(self)
    }

    refuse! {
        serialize_i128(i128) -> ();
        serialize_u128(u128) -> ();
        serialize_char(char) -> ();
        serialize_str(&str) -> ();
        serialize_bytes(&[u8]) -> ();
        serialize_none() -> ();
        serialize_unit_variant(&'static str, u32, &'static str) -> ();
        serialize_seq(Option<usize>) -> Self::SerializeSeq;
        serialize_tuple_variant(&'static str, u32, &'static str, usize) -> Self::SerializeTupleVariant;
        serialize_map(Option<usize>) -> Self::SerializeMap;
        serialize_struct_variant(&'static str, u32, &'static str, usize) -> Self::SerializeStructVariant;
    }

    #[inline]
    fn serialize_some<T: Serialize + ?Sized>(self, _: &T) -> Result<(), Refused> {
        Err(Refused::NotScalars)
    }

    #[inline]
    fn serialize_newtype_variant<T: Serialize + ?Sized>(
        self,
        _: &'static str,
        _: u32,
        _: &'static str,
        _: &T,
    ) -> Result<(), Refused> {
        Err(Refused::NotScalars)
    }

    /// bincode is not human-readable: types that serialize differently for humans (an
    /// address as text, say) must ask this road for what they ask bincode's.
    #[inline]
    fn is_human_readable(&self) -> bool {
        false
    }
}

impl<S: Sink> ser::SerializeTuple for &mut Writer<S> {
    type Ok = ();
    type Error = Refused;

    #[inline]
    fn serialize_element<T: Serialize + ?Sized>(&mut self, value: &T) -> Result<(), Refused> {
        value.serialize(&mut **self)
    }

    #[inline]
    fn end(self) -> Result<(), Refused> {
        Ok(())
    }
}

impl<S: Sink> ser::SerializeTupleStruct for &mut Writer<S> {
    type Ok = ();
    type Error = Refused;

    #[inline]
    fn serialize_field<T: Serialize + ?Sized>(&mut self, value: &T) -> Result<(), Refused> {
        value.serialize(&mut **self)
    }

    #[inline]
    fn end(self) -> Result<(), Refused> {
        Ok(())
    }
}

impl<S: Sink> ser::SerializeStruct for &mut Writer<S> {
    type Ok = ();
    type Error = Refused;

    #[inline]
    fn serialize_field<T: Serialize + ?Sized>(
        &mut self,
        _: &'static str,
        value: &T,
    ) -> Result<(), Refused> {
        value.serialize(&mut **self)
    }

    #[inline]
    fn end(self) -> Result<(), Refused> {
        Ok(())
    }
}

/// The deserializer of the road: reads from `bytes` at `used`.
struct Reader<'a> {
    bytes: &'a [u8],
    used: usize,
}

impl Reader<'_> {
    #[inline]
    fn take<const N: usize>(&mut self) -> Result<[u8; N], Refused> {
        let bytes = self
            .bytes
            .get(self.used..)
            .and_then(|rest| rest.first_chunk::<N>())
            .ok_or(Refused::NotScalars)?;
        self.used += N;
        Ok(*bytes)
    }

    /// bincode's varint of an unsigned integer of at most `max_marker`'s width; any other
    /// marker is refused (bincode reports it).
    #[inline]
    fn varint(&mut self, max_marker: u8) -> Result<u64, Refused> {
        let [marker] = self.take::<1>()?;
        if marker < U16_MARKER {
            return Ok(u64::from(marker));
        }
        if marker > max_marker {
            return Err(Refused::NotScalars);
        }
        Ok(match marker {
            U16_MARKER => u64::from(u16::from_le_bytes(self.take()?)),
            U32_MARKER => u64::from(u32::from_le_bytes(self.take()?)),
            _ => u64::from_le_bytes(self.take()?),
        })
    }

    /// bincode's zigzag varint of a signed integer.
    #[inline]
    fn signed(&mut self, max_marker: u8) -> Result<i64, Refused> {
        let zigzag = self.varint(max_marker)?;
        Ok(if zigzag % 2 == 0 {
            (zigzag / 2) as i64
        } else {
            !(zigzag / 2) as i64
        })
    }
}

macro_rules! refuse_reading {
    ($($method:ident($($arg:ty),*);)*) => {
        $(
            #[inline]
            fn $method<V: Visitor<'de>>(self, $(_: $arg,)* _: V) -> Result<V::Value, Refused> {
                Err(Refused::NotScalars)
            }
        )*
    };
}

impl<'de> de::Deserializer<'de> for &mut Reader<'_> {
    type Error = Refused;

    #[inline]
    fn deserialize_bool<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Refused> {
        match self.take::<1>()? {
            [0] => visitor.visit_bool(false),
            [1] => visitor.visit_bool(true),
            _ => Err(Refused::NotScalars),
        }
    }

    #[inline]
    fn deserialize_i8<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Refused> {
        let [byte] = self.take::<1>()?;
        visitor.visit_i8(byte as i8)
    }

    #[inline]
    fn deserialize_i16<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Refused> {
        let value = self.signed(U16_MARKER)?;
        visitor.visit_i16(value as i16)
    }

    #[inline]
    fn deserialize_i32<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Refused> {
        let value = self.signed(U32_MARKER)?;
        visitor.visit_i32(value as i32)
    }

    #[inline]
    fn deserialize_i64<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Refused> {
        let value = self.signed(U64_MARKER)?;
        visitor.visit_i64(value)
    }

    #[inline]
    fn deserialize_u8<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Refused> {
        let [byte] = self.take::<1>()?;
        visitor.visit_u8(byte)
    }

    #[inline]
    fn deserialize_u16<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Refused> {
        let value = self.varint(U16_MARKER)?;
        visitor.visit_u16(value as u16)
    }

    #[inline]
    fn deserialize_u32<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Refused> {
        let value = self.varint(U32_MARKER)?;
        visitor.visit_u32(value as u32)
    }

    #[inline]
    fn deserialize_u64<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Refused> {
        let value = self.varint(U64_MARKER)?;
        visitor.visit_u64(value)
    }

    #[inline]
    fn deserialize_f32<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Refused> {
        visitor.visit_f32(f32::from_le_bytes(self.take()?))
    }

    #[inline]
    fn deserialize_f64<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Refused> {
        visitor.visit_f64(f64::from_le_bytes(self.take()?))
    }

    #[inline]
    fn deserialize_unit<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Refused> {
        visitor.visit_unit()
    }

    #[inline]
    fn deserialize_unit_struct<V: Visitor<'de>>(
        self,
        _: &'static str,
        visitor: V,
    ) -> Result<V::Value, Refused> {
        visitor.visit_unit()
    }

    #[inline]
    fn deserialize_newtype_struct<V: Visitor<'de>>(
        self,
        _: &'static str,
        visitor: V,
    ) -> Result<V::Value, Refused> {
        visitor.visit_newtype_struct(self)
    }

    /// bincode reads a tuple, a tuple struct and a struct as their fields, back to back.
    #[inline]
    fn deserialize_tuple<V: Visitor<'de>>(
        self,
        len: usize,
        visitor: V,
    ) -> Result<V::Value, Refused> {
        visitor.visit_seq(Fields {
            reader: self,
            left: len,
        })
    }

    #[inline]
    fn deserialize_tuple_struct<V: Visitor<'de>>(
        self,
        _: &'static str,
        len: usize,
        visitor: V,
    ) -> Result<V::Value, Refused> {
        self.deserialize_tuple(len, visitor)
    }

    #[inline]
    fn deserialize_struct<V: Visitor<'de>>(
        self,
        _: &'static str,
        fields: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, Refused> {
        self.deserialize_tuple(fields.len(), visitor)
    }

    refuse_reading! {
        deserialize_any();
        deserialize_i128();
        deserialize_u128();
        deserialize_char();
        deserialize_str();
        deserialize_string();
        deserialize_bytes();
        deserialize_byte_buf();
        deserialize_option();
        deserialize_seq();
        deserialize_map();
        deserialize_identifier();
        deserialize_ignored_any();
        deserialize_enum(&'static str, &'static [&'static str]);
    }

    #[inline]
    fn is_human_readable(&self) -> bool {
        false
    }
}

/// The fields of a tuple or struct, read in order.
struct Fields<'r, 'a> {
    reader: &'r mut Reader<'a>,
    left: usize,
}

impl<'de> de::SeqAccess<'de> for Fields<'_, '_> {
    type Error = Refused;

    #[inline]
    fn next_element_seed<T: DeserializeSeed<'de>>(
        &mut self,
        seed: T,
    ) -> Result<Option<T::Value>, Refused> {
        if self.left == 0 {
            return Ok(None);
        }
        self.left -= 1;
        seed.deserialize(&mut *self.reader).map(Some)
    }

    #[inline]
    fn size_hint(&self) -> Option<usize> {
        Some(self.left)
    }
}

#[cfg(test)]
mod tests;
