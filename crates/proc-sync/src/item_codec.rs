//! Items to bytes and back, through proc-core's codec (bincode), for every queue type.
//!
//! Encoding goes into a buffer kept per thread, so a put allocates nothing once the thread
//! has put an item of that size. A `Vec<u8>` item takes a shorter road: bincode writes a
//! byte vector as its length (a `u64` in the codec's encoding) followed by the bytes, so the
//! queue writes the length's encoding and then copies the vector's own bytes into the ring,
//! and the consumer copies them straight into the vector it returns: one copy on each side,
//! as through a pipe. The bytes are the same either way (a test checks), so the two roads
//! meet: an item's type decides the road on both sides, and types are checked at attach.

use std::any::{Any, TypeId};
use std::cell::RefCell;

use proc_core::codec::{self, CodecError};
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::error::SyncError;
use crate::item_ring::{Deadline, ItemBytes, ItemRing, Take};

/// Items whose encoding fits this many bytes are encoded on the stack.
const SMALL_ITEM: usize = 128;

/// A thread's buffer is given back to the allocator when an item left it larger than this.
const KEEP_SCRATCH: usize = 1 << 20;

thread_local! {
    static SCRATCH: RefCell<Vec<u8>> = const { RefCell::new(Vec::new()) };
}

/// Runs `f` with this thread's scratch buffer (a fresh one if it is in use further up the
/// stack, as when a `Serialize` impl puts into a queue).
fn with_scratch<R>(f: impl FnOnce(&mut Vec<u8>) -> R) -> R {
    SCRATCH.with(|cell| match cell.try_borrow_mut() {
        Ok(mut scratch) => {
            scratch.clear();
            let result = f(&mut scratch);
            if scratch.capacity() > KEEP_SCRATCH {
                *scratch = Vec::new();
            }
            result
        }
        Err(_) => f(&mut Vec::new()),
    })
}

/// Encodes `item` and puts it into `ring`.
pub(crate) fn put<T: Serialize + 'static>(
    ring: &ItemRing,
    item: &T,
    deadline: &Deadline,
    try_now: bool,
) -> Result<(), SyncError> {
    if let Some(bytes) = (item as &dyn Any).downcast_ref::<Vec<u8>>() {
        let mut prefix = [0u8; 16];
        let used = codec::encode_into_slice(&(bytes.len() as u64), &mut prefix)?;
        let pieces = ItemBytes {
            prefix: &prefix[..used],
            body: bytes,
        };
        return ring.put(pieces, deadline, try_now);
    }
    if !ring.has_large_items() {
        // Small items are encoded on the stack: no thread-local, no vector.
        let mut small = [0u8; SMALL_ITEM];
        if let Ok(used) = codec::encode_into_slice(item, &mut small) {
            let whole = ItemBytes {
                prefix: &[],
                body: &small[..used],
            };
            return ring.put(whole, deadline, try_now);
        }
        // Too large (or not encodable: the vector below says which); this queue's items
        // go through the buffer from now on.
        ring.note_large_items();
    }
    with_scratch(|scratch| {
        codec::encode_value(item, scratch)?;
        let whole = ItemBytes {
            prefix: &[],
            body: scratch,
        };
        ring.put(whole, deadline, try_now)
    })
}

/// Takes one item out of `ring` and decodes it.
pub(crate) fn get<T: DeserializeOwned + 'static>(
    ring: &ItemRing,
    deadline: &Deadline,
    try_now: bool,
) -> Result<T, SyncError> {
    if TypeId::of::<T>() == TypeId::of::<Vec<u8>>() {
        let mut bytes = Vec::new();
        ring.get(&mut bytes, Take::AfterLengthPrefix, deadline, try_now)?;
        // `T` is `Vec<u8>`: the downcast cannot fail.
        let mut slot = Some(bytes);
        return (&mut slot as &mut dyn Any)
            .downcast_mut::<Option<T>>()
            .and_then(Option::take)
            .ok_or_else(|| SyncError::Misuse {
                message: "a byte vector is not the queue's item type".into(),
            });
    }
    with_scratch(|scratch| {
        ring.get(scratch, Take::Whole, deadline, try_now)?;
        decode_whole(scratch).inspect_err(|_| ring.item_not_delivered())
    })
}

/// Decodes a `T` that must use all of `bytes`.
fn decode_whole<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, SyncError> {
    let (value, used) = codec::decode_value::<T>(bytes)?;
    if used != bytes.len() {
        return Err(SyncError::Codec(CodecError::Decode {
            type_name: std::any::type_name::<T>(),
            len: bytes.len(),
            message: format!("{} bytes left over after the value", bytes.len() - used),
        }));
    }
    Ok(value)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_byte_vector_is_encoded_the_same_on_both_roads() {
        for len in [0usize, 1, 250, 251, 300, 65_535, 65_536, 1 << 20] {
            let bytes: Vec<u8> = (0..len).map(|i| i as u8).collect();
            let mut serde_road = Vec::new();
            codec::encode_value(&bytes, &mut serde_road).unwrap();
            let mut prefix = [0u8; 16];
            let used = codec::encode_into_slice(&(len as u64), &mut prefix).unwrap();
            assert_eq!(&serde_road[..used], &prefix[..used], "length {len}");
            assert_eq!(&serde_road[used..], &bytes[..], "length {len}");
            let back: Vec<u8> = decode_whole(&serde_road).unwrap();
            assert_eq!(back, bytes);
        }
    }

    #[test]
    fn left_over_bytes_are_a_decode_error_naming_the_type() {
        let mut bytes = Vec::new();
        codec::encode_value(&7u32, &mut bytes).unwrap();
        bytes.push(0);
        let err = decode_whole::<u32>(&bytes).unwrap_err();
        assert!(err.to_string().contains("u32"), "{err}");
        assert!(err.to_string().contains("left over"), "{err}");
    }
}
