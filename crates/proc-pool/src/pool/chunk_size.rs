//! The default chunk size of `map` and its kin: Python's count, bounded in bytes.

use proc_core::codec;
use serde::Serialize;

use super::Pool;

/// About how many bytes of encoded arguments a chunk of the default size holds at most, judged
/// by its first item. 32 MiB chunks (32 items of 1 MiB on two workers) each took a frame of new
/// memory to encode and to read: a map of such items ran at 1.9-2.9 GB/s, against 2.7-3.7 in
/// 4 MiB chunks (docs/proc-pool.md, "Chunk size").
const CHUNK_BYTES: usize = 4 << 20;

/// The default chunk size of a `map` over `items`: Python's (about four chunks per worker),
/// but no more items than make about [`CHUNK_BYTES`], going by the first item's encoding.
/// Python counts items alone, so a map of large values takes a few huge chunks there.
fn default_map_chunksize<T: Serialize>(items: &[T], workers: usize) -> usize {
    let python = items.len().div_ceil(workers.max(1) * 4).max(1);
    let Some(first) = items.first().filter(|_| python > 1) else {
        return python;
    };
    // `None`: the first item alone is more than a chunk's bytes (or does not encode, which
    // its chunk will report).
    let item_len = codec::encoded_len_within(first, CHUNK_BYTES).unwrap_or(CHUNK_BYTES);
    let item_len = item_len.max(1);
    python.min((CHUNK_BYTES + item_len / 2) / item_len).max(1)
}

impl Pool {
    /// The chunk size of a `map` over `items` when the call names none: the pool's
    /// `chunksize`, else [`default_map_chunksize`].
    pub(super) fn map_chunksize<T: Serialize>(&self, items: &[T]) -> usize {
        self.chunksize
            .unwrap_or_else(|| default_map_chunksize(items, self.workers))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_chunksize_follows_python_for_small_items() {
        // Python: chunksize, extra = divmod(len, 4 * workers); chunksize += bool(extra)
        assert_eq!(default_map_chunksize(&vec![7u64; 200_000], 2), 25_000);
        assert_eq!(default_map_chunksize(&[1u8; 10], 4), 1);
        assert_eq!(default_map_chunksize(&["seventeen"; 17], 2), 3);
        assert_eq!(default_map_chunksize::<u8>(&[], 2), 1);
        // 25,000 strings of 100 bytes: 2.5 MB, under the byte bound.
        assert_eq!(
            default_map_chunksize(&vec!["x".repeat(100); 200_000], 2),
            25_000
        );
    }

    #[test]
    fn default_chunksize_holds_a_few_mebibytes_of_large_items() {
        let mib = 1 << 20;
        // Encoded, each is its bytes and a 5-byte length: about four in 4 MiB.
        let items = vec![vec![0u8; mib]; 256];
        assert_eq!(default_map_chunksize(&items, 2), 4);
        let items = vec![vec![0u8; mib / 2 + mib / 4]; 256];
        assert_eq!(default_map_chunksize(&items, 2), 5);
        // Larger than a chunk's bytes: one item per chunk.
        let items = vec![vec![0u8; 5 * mib]; 4];
        assert_eq!(default_map_chunksize(&items, 1), 1);
        // Borrowed items are measured as what they encode to.
        let owned = vec![vec![1.5f64; 100_000]; 64];
        let borrowed: Vec<&Vec<f64>> = owned.iter().collect();
        // 800,005 bytes each (a length, then 8 bytes a float): five in 4 MiB, where Python
        // takes 8.
        assert_eq!(default_map_chunksize(&borrowed, 2), 5);
        // The bound never makes more chunks than Python's when items are few.
        assert_eq!(default_map_chunksize(&vec![vec![0u8; 64 << 10]; 8], 2), 1);
    }
}
