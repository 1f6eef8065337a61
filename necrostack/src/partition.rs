//! Partition keys: [`key_hash`], the stable hash of an event's key, and [`partition_of`],
//! which maps that hash onto one of a stream's partitions.
//!
//! A key is computed in one binary (the producer) and used in another (every consumer of
//! a partitioned stream), possibly built by another Rust version on another machine. Both
//! must agree, so neither function depends on anything but its input: no random seed, no
//! `DefaultHasher` (whose algorithm the standard library leaves unspecified), no
//! platform-dependent integer width or byte order.
//!
//! An event's key travels with it on the wire as the JSON number `"key"`, the `u64` that
//! [`key_hash`] returns; a producer in another language sets it with its own XXH3.

use std::hash::{Hash, Hasher};

use xxhash_rust::xxh3::Xxh3Default;

/// The partition key of `key`: XXH3 (64-bit, seed 0, the default secret) of the bytes
/// that `key`'s [`Hash`] implementation feeds to its hasher.
///
/// The same key gives the same `u64` in every process, on every machine and with every
/// Rust version, as long as the bytes `Hash` feeds stay the same. The standard library's
/// implementations feed, and this function turns them into, these bytes:
///
/// * integers (`u8`..`u128`, `i8`..`i128`): their value in little-endian order, whatever
///   the machine's own order; `usize` and `isize` as 8 bytes (`u64`, `i64`), so 32- and
///   64-bit machines agree; `bool` as one byte 0 or 1, `char` as its `u32`;
/// * `str` and `String`: the UTF-8 bytes, then the byte `0xff`;
/// * slices, `Vec` and other collections: the length (as a `usize`), then each element;
/// * tuples, arrays and structs deriving `Hash`: each field in order; enums deriving it:
///   the discriminant (as an `isize`), then the variant's fields.
///
/// So a producer written in another language computes a string key `k` as
/// `XXH3_64bits(utf8(k) ++ [0xff])` and an integer key `n: u64` as
/// `XXH3_64bits(n as 8 little-endian bytes)`. Floats do not implement `Hash`; hash their
/// `to_bits()` if you must.
///
/// ```
/// use necrostack::partition::key_hash;
///
/// // Stable: these values never change.
/// assert_eq!(key_hash("AAPL"), key_hash(&String::from("AAPL")));
/// assert_eq!(key_hash(&42u64), key_hash(&42usize));
/// assert_eq!(key_hash(&()), 0x2d06_8005_38d3_94c2); // XXH3 of no bytes at all
/// assert_ne!(key_hash("AAPL"), key_hash("MSFT"));
/// ```
pub fn key_hash<K: Hash + ?Sized>(key: &K) -> u64 {
    let mut hasher = StableHasher::default();
    key.hash(&mut hasher);
    hasher.finish()
}

/// The partition, in `0..partitions`, that events with the key hash `key` (from
/// [`key_hash`]) belong to. With `partitions == 0` (no partitions at all) it is 0, like
/// with 1: there is one place to go, and no input panics.
///
/// The mapping is Lamping and Veach's *jump consistent hash* ("A Fast, Minimal Memory,
/// Consistent Hash Algorithm", 2014), chosen over `key % partitions` because it moves as
/// few keys as possible when the number of partitions changes: going from `n` to `n + 1`
/// partitions moves only the keys that land on the new partition (about `1/(n + 1)` of
/// them), where `%` would move almost all of them. It is fully specified (a 64-bit linear
/// congruential step and IEEE 754 double arithmetic), so any language reproduces it, and
/// spreads keys evenly in `O(log partitions)` steps without any table.
///
/// ```
/// use necrostack::partition::{key_hash, partition_of};
///
/// let key = key_hash("AAPL");
/// let partition = partition_of(key, 16);
/// assert!(partition < 16);
/// assert_eq!(partition, partition_of(key_hash("AAPL"), 16)); // same key, same partition
/// // One more partition: the key stays where it was, or moves to the new one.
/// assert!([partition, 16].contains(&partition_of(key, 17)));
/// assert_eq!(partition_of(key, 1), 0);
/// assert_eq!(partition_of(key, 0), 0);
/// ```
pub fn partition_of(key: u64, partitions: u32) -> u32 {
    /// The multiplier of the paper's linear congruential generator.
    const LCG_MULTIPLIER: u64 = 2_862_933_555_777_941_757;
    /// 2^31, as the paper's `double(1LL << 31)`.
    const TWO_POW_31: f64 = 2_147_483_648.0;
    let mut state = key;
    let mut bucket: u32 = 0;
    // The next bucket the key jumps to; the loop ends when it is past the last one.
    let mut next: u64 = 0;
    while next < u64::from(partitions) {
        // `next < partitions <= u32::MAX` here, so this never truncates.
        bucket = u32::try_from(next).unwrap_or(u32::MAX);
        state = state.wrapping_mul(LCG_MULTIPLIER).wrapping_add(1);
        // `state >> 33` is below 2^31, exact in an f64; the product is at most
        // 2^32 * 2^31 and `as` saturates, so nothing here overflows.
        let jump = TWO_POW_31 / ((state >> 33) as f64 + 1.0);
        next = ((f64::from(bucket) + 1.0) * jump) as u64;
    }
    bucket
}

/// XXH3 behind the [`Hasher`] interface, with every integer fed in a fixed width and byte
/// order (the defaults feed native-endian bytes and a platform-sized `usize`).
#[derive(Default)]
struct StableHasher(Xxh3Default);

impl Hasher for StableHasher {
    fn finish(&self) -> u64 {
        self.0.digest()
    }

    fn write(&mut self, bytes: &[u8]) {
        self.0.update(bytes);
    }

    fn write_u8(&mut self, n: u8) {
        self.0.update(&[n]);
    }

    fn write_u16(&mut self, n: u16) {
        self.0.update(&n.to_le_bytes());
    }

    fn write_u32(&mut self, n: u32) {
        self.0.update(&n.to_le_bytes());
    }

    fn write_u64(&mut self, n: u64) {
        self.0.update(&n.to_le_bytes());
    }

    fn write_u128(&mut self, n: u128) {
        self.0.update(&n.to_le_bytes());
    }

    fn write_usize(&mut self, n: usize) {
        // `usize` is at most 64 bits on every platform Rust supports.
        self.write_u64(n as u64);
    }

    fn write_i8(&mut self, n: i8) {
        self.write_u8(n.to_le_bytes()[0]);
    }

    fn write_i16(&mut self, n: i16) {
        self.0.update(&n.to_le_bytes());
    }

    fn write_i32(&mut self, n: i32) {
        self.0.update(&n.to_le_bytes());
    }

    fn write_i64(&mut self, n: i64) {
        self.0.update(&n.to_le_bytes());
    }

    fn write_i128(&mut self, n: i128) {
        self.0.update(&n.to_le_bytes());
    }

    fn write_isize(&mut self, n: isize) {
        // Sign-extended to 64 bits: -1 is the same 8 bytes on 32- and 64-bit machines.
        self.write_i64(n as i64);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use xxhash_rust::xxh3::xxh3_64;

    #[test]
    fn keys_hash_to_xxh3_of_the_documented_bytes() {
        assert_eq!(key_hash(&()), xxh3_64(b""));
        assert_eq!(key_hash(&()), 0x2d06_8005_38d3_94c2, "the XXH3 test vector");
        assert_eq!(key_hash("AAPL"), xxh3_64(b"AAPL\xff"));
        assert_eq!(key_hash(&String::from("AAPL")), xxh3_64(b"AAPL\xff"));
        assert_eq!(key_hash(&7u64), xxh3_64(&7u64.to_le_bytes()));
        assert_eq!(key_hash(&7usize), xxh3_64(&7u64.to_le_bytes()));
        assert_eq!(key_hash(&-1isize), xxh3_64(&[0xff; 8]));
        assert_eq!(key_hash(&0x0102u16), xxh3_64(&[2, 1]));
        assert_eq!(key_hash(&0x0102_0304u32), xxh3_64(&[4, 3, 2, 1]));
        assert_eq!(key_hash(&-2i32), xxh3_64(&(-2i32).to_le_bytes()));
        assert_eq!(key_hash(&1u128), xxh3_64(&1u128.to_le_bytes()));
        assert_eq!(key_hash(&true), xxh3_64(&[1]));
        assert_eq!(key_hash(&'A'), xxh3_64(&65u32.to_le_bytes()));
        let mut tuple = b"ab\xff".to_vec();
        tuple.extend_from_slice(&3u32.to_le_bytes());
        assert_eq!(key_hash(&("ab", 3u32)), xxh3_64(&tuple));
        let mut list = 2u64.to_le_bytes().to_vec();
        list.extend_from_slice(&[9, 8]);
        assert_eq!(key_hash(&vec![9u8, 8]), xxh3_64(&list));
    }

    #[test]
    fn key_hashes_never_change() {
        // Pinned: a change here breaks every deployed fleet's partitioning.
        assert_eq!(key_hash("AAPL"), 0xf616_c56a_b9a9_555a);
        assert_eq!(key_hash(&42u64), 0xd5a6_f8c8_38df_27c8);
    }

    #[test]
    fn partitions_are_in_range_and_zero_is_zero() {
        for key in (0..10_000u64).map(|n| key_hash(&n)).chain([0, u64::MAX]) {
            assert_eq!(partition_of(key, 0), 0);
            assert_eq!(partition_of(key, 1), 0);
            for partitions in [2, 3, 16, 1000, u32::MAX] {
                assert!(partition_of(key, partitions) < partitions);
            }
        }
    }

    #[test]
    fn one_more_partition_moves_keys_only_onto_it() {
        for n in 1..64u32 {
            let mut moved = 0;
            for key in (0..2_000u64).map(|k| key_hash(&k)) {
                let (before, after) = (partition_of(key, n), partition_of(key, n + 1));
                if before != after {
                    assert_eq!(after, n, "a key moves to the new partition only");
                    moved += 1;
                }
            }
            // About 1/(n+1) of the keys move.
            let expected = 2_000 / (n + 1);
            assert!(moved <= expected * 2 + 20, "{n}: {moved} moved");
        }
    }

    #[test]
    fn keys_spread_evenly() {
        let mut counts = [0u32; 16];
        for key in 0..16_000u64 {
            counts[partition_of(key_hash(&key), 16) as usize] += 1;
        }
        for count in counts {
            assert!((800..1200).contains(&count), "{counts:?}");
        }
    }

    #[test]
    fn partitions_never_change() {
        // Pinned, like the hashes.
        let got: Vec<u32> = (0..8u64).map(|k| partition_of(key_hash(&k), 16)).collect();
        assert_eq!(got, [11, 15, 14, 10, 4, 8, 13, 12]);
        // The same as the paper's C++ code gives (checked with a transcription of it).
        let got: Vec<u32> = [0, 1, 2, 3, u64::MAX, 0xdead_beef]
            .map(|key| partition_of(key, 1000))
            .to_vec();
        assert_eq!(got, [0, 549, 338, 961, 313, 285]);
    }
}
