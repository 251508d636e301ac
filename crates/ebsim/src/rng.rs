//! A tiny seeded generator (SplitMix64): the same seed gives the same faults and the same timing,
//! so a run can be repeated exactly, with no dependency.

/// SplitMix64 (Steele, Lea, Flood 2014).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SplitMix64(u64);

impl SplitMix64 {
    /// A generator starting from `seed`.
    pub fn new(seed: u64) -> Self {
        Self(seed)
    }

    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in [0, 1).
    pub fn next_f64(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }

    /// Uniform in `min..=max` (`min` when `max <= min`).
    pub fn between(&mut self, min: u64, max: u64) -> u64 {
        if max <= min {
            return min;
        }
        let width = max - min + 1;
        // The modulo bias is below 2^-40 for the widths used here (milliseconds).
        min + self.next_u64() % width
    }
}

#[cfg(test)]
mod tests {
    use super::SplitMix64;

    #[test]
    fn reproducible_and_within_bounds() {
        let mut a = SplitMix64::new(7);
        let mut b = SplitMix64::new(7);
        let xs: Vec<u64> = (0..200).map(|_| a.between(100, 250)).collect();
        let ys: Vec<u64> = (0..200).map(|_| b.between(100, 250)).collect();
        assert_eq!(xs, ys);
        assert!(xs.iter().all(|x| (100..=250).contains(x)));
        assert!(xs.contains(&100) || xs.contains(&101), "reaches the low end");
        assert!(xs.iter().any(|x| *x >= 245), "reaches the high end");
        assert_ne!(SplitMix64::new(8).next_u64(), SplitMix64::new(7).next_u64());
        assert_eq!(SplitMix64::new(1).between(5, 5), 5);
        assert_eq!(SplitMix64::new(1).between(9, 3), 9);
    }
}
