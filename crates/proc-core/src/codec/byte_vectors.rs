//! The short road of byte vectors (see the codec's module docs): a serde `Serializer` that
//! accepts only a value that serializes as a sequence of `u8` (or as bytes), and writes it as
//! bincode would, its length prefix and then its bytes, in one pass instead of one serializer
//! call per byte. Any other value is refused at its first step, before anything is written,
//! and the caller takes bincode's road.
//!
//! No type is named: a value takes this road when its `Serialize` impl asks for a sequence
//! whose every element asks for a single `u8`, which is exactly what bincode writes as one
//! byte each, so the bytes cannot differ from bincode's whatever the type.

use std::fmt;

use serde::Serialize;
use serde::de::{self, DeserializeOwned, Visitor};
use serde::ser::{self, Impossible};

use super::len_prefix;

/// Appends `value` to `out` if it is a byte vector (true); otherwise leaves `out` as it was
/// (false).
#[inline]
pub(super) fn encode<T: Serialize + ?Sized>(value: &T, out: &mut Vec<u8>) -> bool {
    let start = out.len();
    match value.serialize(Road(VecSink(out))) {
        Ok(()) => true,
        Err(_) => {
            out.truncate(start);
            false
        }
    }
}

/// What [`encode_into_slice`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Probe {
    /// Written: the bytes used.
    Done(usize),
    /// A byte vector, but its encoding needs this many bytes, more than the slice has.
    TooSmall(usize),
    /// Not a byte vector: bincode's road.
    NotBytes,
}

/// Writes `value` at the start of `out` if it is a byte vector.
#[inline]
pub(super) fn encode_into_slice<T: Serialize + ?Sized>(value: &T, out: &mut [u8]) -> Probe {
    match value.serialize(Road(SliceSink(out))) {
        Ok(used) => Probe::Done(used),
        Err(Refused::TooSmall(needed)) => Probe::TooSmall(needed),
        Err(Refused::NotBytes) => Probe::NotBytes,
    }
}

/// Why the probe stopped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Refused {
    /// The value is not a byte vector.
    NotBytes,
    /// It is, but the slice cannot hold its encoding (this many bytes).
    TooSmall(usize),
}

impl fmt::Display for Refused {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Refused::NotBytes => f.write_str("not a byte vector"),
            Refused::TooSmall(needed) => write!(f, "{needed} bytes do not fit"),
        }
    }
}

impl std::error::Error for Refused {}

impl ser::Error for Refused {
    fn custom<T: fmt::Display>(_message: T) -> Refused {
        Refused::NotBytes
    }
}

/// Where the probe writes.
trait Sink {
    /// What a successful write returns.
    type Done;

    /// Writes `prefix` and then the `len` bytes `bytes` yields (exactly `len`, or it fails:
    /// `NotBytes` if an element was not a `u8`).
    fn write(
        self,
        prefix: &[u8],
        len: usize,
        bytes: impl Iterator<Item = Result<u8, Refused>>,
    ) -> Result<Self::Done, Refused>;
}

/// Appends to a vector (the caller truncates it back on failure).
struct VecSink<'a>(&'a mut Vec<u8>);

impl Sink for VecSink<'_> {
    type Done = ();

    #[inline]
    fn write(
        self,
        prefix: &[u8],
        len: usize,
        bytes: impl Iterator<Item = Result<u8, Refused>>,
    ) -> Result<(), Refused> {
        let out = self.0;
        out.reserve(prefix.len() + len);
        out.extend_from_slice(prefix);
        let body = out.len();
        let mut refused = false;
        // `bytes` is a slice's iterator mapped (a trusted length): `extend` copies in one
        // loop, which the compiler vectorises for a `u8` element.
        out.extend(bytes.map(|byte| {
            byte.unwrap_or_else(|_| {
                refused = true;
                0
            })
        }));
        if refused || out.len() - body != len {
            return Err(Refused::NotBytes);
        }
        Ok(())
    }
}

/// Writes at the start of a slice; returns the bytes used.
struct SliceSink<'a>(&'a mut [u8]);

impl Sink for SliceSink<'_> {
    type Done = usize;

    #[inline]
    fn write(
        self,
        prefix: &[u8],
        len: usize,
        bytes: impl Iterator<Item = Result<u8, Refused>>,
    ) -> Result<usize, Refused> {
        let needed = prefix.len() + len;
        let Some(room) = self.0.get_mut(..needed) else {
            return Err(Refused::TooSmall(needed));
        };
        let (head, body) = room.split_at_mut(prefix.len());
        head.copy_from_slice(prefix);
        let mut written = 0;
        for (slot, byte) in body.iter_mut().zip(bytes) {
            *slot = byte?;
            written += 1;
        }
        if written != len {
            return Err(Refused::NotBytes);
        }
        Ok(needed)
    }
}

/// The serializer of the short road, over its sink.
struct Road<S>(S);

/// Every method but those of a byte vector refuses.
macro_rules! refuse {
    ($($method:ident($($arg:ty),*);)*) => {
        $(
            #[inline]
            fn $method(self, $(_: $arg),*) -> Result<Self::Ok, Refused> {
                Err(Refused::NotBytes)
            }
        )*
    };
}

/// The compound serializers a byte vector never asks for.
macro_rules! refuse_compounds {
    () => {
        #[inline]
        fn serialize_some<T: Serialize + ?Sized>(self, _: &T) -> Result<Self::Ok, Refused> {
            Err(Refused::NotBytes)
        }

        #[inline]
        fn serialize_newtype_variant<T: Serialize + ?Sized>(
            self,
            _: &'static str,
            _: u32,
            _: &'static str,
            _: &T,
        ) -> Result<Self::Ok, Refused> {
            Err(Refused::NotBytes)
        }

        #[inline]
        fn serialize_seq(self, _: Option<usize>) -> Result<Self::SerializeSeq, Refused> {
            Err(Refused::NotBytes)
        }

        #[inline]
        fn serialize_tuple(self, _: usize) -> Result<Self::SerializeTuple, Refused> {
            Err(Refused::NotBytes)
        }

        #[inline]
        fn serialize_tuple_struct(
            self,
            _: &'static str,
            _: usize,
        ) -> Result<Self::SerializeTupleStruct, Refused> {
            Err(Refused::NotBytes)
        }

        #[inline]
        fn serialize_tuple_variant(
            self,
            _: &'static str,
            _: u32,
            _: &'static str,
            _: usize,
        ) -> Result<Self::SerializeTupleVariant, Refused> {
            Err(Refused::NotBytes)
        }

        #[inline]
        fn serialize_map(self, _: Option<usize>) -> Result<Self::SerializeMap, Refused> {
            Err(Refused::NotBytes)
        }

        #[inline]
        fn serialize_struct(
            self,
            _: &'static str,
            _: usize,
        ) -> Result<Self::SerializeStruct, Refused> {
            Err(Refused::NotBytes)
        }

        #[inline]
        fn serialize_struct_variant(
            self,
            _: &'static str,
            _: u32,
            _: &'static str,
            _: usize,
        ) -> Result<Self::SerializeStructVariant, Refused> {
            Err(Refused::NotBytes)
        }

        /// bincode is not human-readable: types that serialize differently for humans (an
        /// address as text, say) must ask this road for what they ask bincode's.
        #[inline]
        fn is_human_readable(&self) -> bool {
            false
        }
    };
}

impl<S: Sink> ser::Serializer for Road<S> {
    type Ok = S::Done;
    type Error = Refused;
    type SerializeSeq = Impossible<S::Done, Refused>;
    type SerializeTuple = Impossible<S::Done, Refused>;
    type SerializeTupleStruct = Impossible<S::Done, Refused>;
    type SerializeTupleVariant = Impossible<S::Done, Refused>;
    type SerializeMap = Impossible<S::Done, Refused>;
    type SerializeStruct = Impossible<S::Done, Refused>;
    type SerializeStructVariant = Impossible<S::Done, Refused>;

    refuse! {
        serialize_bool(bool);
        serialize_i8(i8);
        serialize_i16(i16);
        serialize_i32(i32);
        serialize_i64(i64);
        serialize_u8(u8);
        serialize_u16(u16);
        serialize_u32(u32);
        serialize_u64(u64);
        serialize_f32(f32);
        serialize_f64(f64);
        serialize_char(char);
        serialize_str(&str);
        serialize_none();
        serialize_unit();
        serialize_unit_struct(&'static str);
        serialize_unit_variant(&'static str, u32, &'static str);
    }
    refuse_compounds!();

    /// `serde_bytes` and the like: bincode writes these as a length and the bytes too.
    #[inline]
    fn serialize_bytes(self, bytes: &[u8]) -> Result<Self::Ok, Refused> {
        let prefix = len_prefix(bytes.len());
        self.0
            .write(prefix.as_bytes(), bytes.len(), bytes.iter().map(|b| Ok(*b)))
    }

    /// bincode writes a newtype as what it wraps.
    #[inline]
    fn serialize_newtype_struct<T: Serialize + ?Sized>(
        self,
        _: &'static str,
        value: &T,
    ) -> Result<Self::Ok, Refused> {
        value.serialize(self)
    }

    /// What `Vec<T>`, `[T]`, `VecDeque<T>` call: a byte vector when every element is a `u8`.
    #[inline]
    fn collect_seq<I>(self, items: I) -> Result<Self::Ok, Refused>
    where
        I: IntoIterator,
        I::Item: Serialize,
    {
        let mut items = items.into_iter();
        let (len, upper) = items.size_hint();
        if upper != Some(len) {
            return Err(Refused::NotBytes);
        }
        // The first element decides before any room is taken: a vector of anything else is
        // refused at no cost.
        let first = match items.next() {
            Some(first) => Some(first.serialize(Byte)?),
            None => None,
        };
        let prefix = len_prefix(len);
        let bytes = first
            .map(Ok)
            .into_iter()
            .chain(items.map(|item| item.serialize(Byte)));
        self.0.write(prefix.as_bytes(), len, bytes)
    }
}

/// The serializer of one element: accepts a `u8` (or a newtype around one) and gives it back.
struct Byte;

impl ser::Serializer for Byte {
    type Ok = u8;
    type Error = Refused;
    type SerializeSeq = Impossible<u8, Refused>;
    type SerializeTuple = Impossible<u8, Refused>;
    type SerializeTupleStruct = Impossible<u8, Refused>;
    type SerializeTupleVariant = Impossible<u8, Refused>;
    type SerializeMap = Impossible<u8, Refused>;
    type SerializeStruct = Impossible<u8, Refused>;
    type SerializeStructVariant = Impossible<u8, Refused>;

    refuse! {
        serialize_bool(bool);
        serialize_i8(i8);
        serialize_i16(i16);
        serialize_i32(i32);
        serialize_i64(i64);
        serialize_u16(u16);
        serialize_u32(u32);
        serialize_u64(u64);
        serialize_f32(f32);
        serialize_f64(f64);
        serialize_char(char);
        serialize_str(&str);
        serialize_bytes(&[u8]);
        serialize_none();
        serialize_unit();
        serialize_unit_struct(&'static str);
        serialize_unit_variant(&'static str, u32, &'static str);
    }
    refuse_compounds!();

    #[inline]
    fn serialize_u8(self, byte: u8) -> Result<u8, Refused> {
        Ok(byte)
    }

    #[inline]
    fn serialize_newtype_struct<T: Serialize + ?Sized>(
        self,
        _: &'static str,
        value: &T,
    ) -> Result<u8, Refused> {
        value.serialize(self)
    }
}

/// Decodes a `T` from the front of `bytes` if `T` reads a byte vector (a sequence of `u8`,
/// or bytes): the value and the bytes used. `None` when `T` is anything else, or the bytes
/// are not a whole byte vector: bincode's road decides then (and reports what is wrong).
///
/// No type is named here either: `T` takes this road when its `Deserialize` impl asks for a
/// sequence whose every element asks for a `u8`, as `Vec<u8>` does, and reads exactly what
/// bincode would read for it. The elements still go one by one (serde's `Vec` pushes them),
/// at several times the speed of bincode's checked reads, but not at the speed of one copy:
/// a caller that knows its type is `Vec<u8>` calls `decode_byte_vector`.
#[inline]
pub(super) fn decode<T: DeserializeOwned>(bytes: &[u8]) -> Option<(T, usize)> {
    let mut road = ReadRoad { bytes, used: 0 };
    let value = T::deserialize(&mut road).ok()?;
    Some((value, road.used))
}

/// The deserializer of the short road: the bytes, and how many a value took.
struct ReadRoad<'a> {
    bytes: &'a [u8],
    used: usize,
}

impl<'a> ReadRoad<'a> {
    /// The byte vector at the front: its bytes, counted as used. `NotBytes` when the prefix
    /// claims more than is there.
    fn take_vector(&mut self) -> Result<&'a [u8], NotBytes> {
        let (len, prefix) = super::decode_len_prefix(self.bytes).map_err(|_| NotBytes)?;
        let body = self
            .bytes
            .get(prefix..)
            .and_then(|rest| rest.get(..len))
            .ok_or(NotBytes)?;
        self.used = prefix + len;
        Ok(body)
    }
}

/// Why the read road stopped: not a byte vector (or not a whole one). Nothing else to say,
/// so it is free to pass around, which matters once per byte.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct NotBytes;

impl fmt::Display for NotBytes {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("not a byte vector")
    }
}

impl std::error::Error for NotBytes {}

impl de::Error for NotBytes {
    fn custom<T: fmt::Display>(_message: T) -> NotBytes {
        NotBytes
    }
}

/// Every method but those of a byte vector refuses.
macro_rules! refuse_reads {
    ($($method:ident($($arg:ty),*);)*) => {
        $(
            #[inline]
            fn $method<V: Visitor<'de>>(self, $(_: $arg,)* _: V) -> Result<V::Value, NotBytes> {
                Err(NotBytes)
            }
        )*
    };
}

/// The reads neither a byte vector nor its elements ask for.
macro_rules! refuse_other_reads {
    () => {
        refuse_reads! {
            deserialize_any();
            deserialize_bool();
            deserialize_i8();
            deserialize_i16();
            deserialize_i32();
            deserialize_i64();
            deserialize_u16();
            deserialize_u32();
            deserialize_u64();
            deserialize_f32();
            deserialize_f64();
            deserialize_char();
            deserialize_str();
            deserialize_string();
            deserialize_option();
            deserialize_unit();
            deserialize_unit_struct(&'static str);
            deserialize_tuple(usize);
            deserialize_tuple_struct(&'static str, usize);
            deserialize_map();
            deserialize_struct(&'static str, &'static [&'static str]);
            deserialize_enum(&'static str, &'static [&'static str]);
            deserialize_identifier();
            deserialize_ignored_any();
        }

        /// As bincode's: not human-readable.
        #[inline]
        fn is_human_readable(&self) -> bool {
            false
        }
    };
}

impl<'de> de::Deserializer<'de> for &mut ReadRoad<'_> {
    type Error = NotBytes;

    refuse_other_reads!();
    refuse_reads! {
        deserialize_u8();
    }

    #[inline]
    fn deserialize_seq<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, NotBytes> {
        let body = self.take_vector()?;
        visitor.visit_seq(Elements(body.iter()))
    }

    #[inline]
    fn deserialize_bytes<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, NotBytes> {
        let body = self.take_vector()?;
        visitor.visit_bytes(body)
    }

    #[inline]
    fn deserialize_byte_buf<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, NotBytes> {
        let body = self.take_vector()?;
        visitor.visit_byte_buf(body.to_vec())
    }

    #[inline]
    fn deserialize_newtype_struct<V: Visitor<'de>>(
        self,
        _: &'static str,
        visitor: V,
    ) -> Result<V::Value, NotBytes> {
        visitor.visit_newtype_struct(self)
    }
}

/// The elements of a byte vector, each offered as a `u8`.
struct Elements<'a>(std::slice::Iter<'a, u8>);

impl<'de> de::SeqAccess<'de> for Elements<'_> {
    type Error = NotBytes;

    #[inline]
    fn next_element_seed<S: de::DeserializeSeed<'de>>(
        &mut self,
        seed: S,
    ) -> Result<Option<S::Value>, NotBytes> {
        match self.0.next() {
            Some(byte) => seed.deserialize(Element(*byte)).map(Some),
            None => Ok(None),
        }
    }

    #[inline]
    fn size_hint(&self) -> Option<usize> {
        Some(self.0.len())
    }
}

/// One element: a `u8`, or a newtype around one.
struct Element(u8);

impl<'de> de::Deserializer<'de> for Element {
    type Error = NotBytes;

    refuse_other_reads!();
    refuse_reads! {
        deserialize_seq();
        deserialize_bytes();
        deserialize_byte_buf();
    }

    #[inline]
    fn deserialize_u8<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, NotBytes> {
        visitor.visit_u8(self.0)
    }

    #[inline]
    fn deserialize_newtype_struct<V: Visitor<'de>>(
        self,
        _: &'static str,
        visitor: V,
    ) -> Result<V::Value, NotBytes> {
        visitor.visit_newtype_struct(self)
    }
}

/// Decodes `count` values of `T` back to back if the first one reads as a byte vector (and
/// then all do); `None` otherwise, for bincode's road.
pub(super) fn decode_sequence<T: DeserializeOwned>(
    bytes: &[u8],
    count: usize,
) -> Option<(Vec<T>, usize)> {
    if count == 0 {
        return None;
    }
    let (first, mut used) = decode::<T>(bytes)?;
    // Every vector takes at least its prefix's byte: a corrupt count claims no more.
    let mut values = Vec::with_capacity(count.min(bytes.len()));
    values.push(first);
    for _ in 1..count {
        let (value, len) = decode::<T>(bytes.get(used..)?)?;
        values.push(value);
        used += len;
    }
    Some((values, used))
}
