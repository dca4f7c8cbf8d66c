//! A deterministic 64-bit mix, so every process derives the same pseudo-random choices from the
//! same inputs (event contents, per-client seeds, a run id). Not for cryptography.

/// A 64-bit mix of the inputs (splitmix64 finaliser over a combined key).
pub fn mix64(seed: u64, publisher: u32, seq: u64) -> u64 {
    let mut z = seed ^ (u64::from(publisher) << 40) ^ seq.wrapping_mul(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}
