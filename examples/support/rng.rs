//! A tiny seeded random number generator, so that runs are reproducible with no
//! dependency: SplitMix64 (Steele, Lea and Flood, 2014), the generator Java's
//! `SplittableRandom` uses and the usual seeder of the xorshift family. Good enough for
//! simulations; not for cryptography.
//!
//! Shared by the examples that simulate (each includes this file with
//! `#[path = "../support/rng.rs"] mod rng;`).

/// A SplitMix64 stream: the same seed always gives the same numbers.
#[derive(Debug, Clone)]
pub struct Rng {
    state: u64,
}

impl Rng {
    /// A stream starting from `seed`.
    pub fn new(seed: u64) -> Self {
        Rng { state: seed }
    }

    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        self.state = self.state.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.state;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// A number in `[0, 1)`.
    pub fn unit(&mut self) -> f64 {
        // The top 53 bits fill a double's mantissa exactly.
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }

    /// A number in `low..=high` (`low <= high`).
    pub fn range(&mut self, low: u64, high: u64) -> u64 {
        low + self.next_u64() % (high - low + 1)
    }

    /// One of `items` (not empty).
    pub fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[self.range(0, items.len() as u64 - 1) as usize]
    }
}

/// A number in `[0, 1)` fixed by `seed` and `keys`: the same inputs give the same draw
/// whatever order things happen in, so a retried step draws afresh per attempt but a
/// rerun draws the same.
pub fn draw(seed: u64, keys: &[u64]) -> f64 {
    let mut rng = Rng::new(seed);
    for key in keys {
        rng = Rng::new(rng.next_u64() ^ key);
    }
    rng.unit()
}
