//! A seeded cryptographic random source (ChaCha20 keystream). The protocol and the node core
//! never draw randomness themselves: a driver seeds one of these (from the OS in
//! production, from the scenario seed in simnet) and hands it in.

use chacha20::ChaCha20Rng;
use hpke::rand_core::{Rng, SeedableRng};

/// Deterministic, seedable, cryptographically strong byte source.
pub struct Entropy(ChaCha20Rng);

impl Entropy {
    /// From a 32-byte seed.
    pub fn from_seed(seed: [u8; 32]) -> Self {
        Entropy(ChaCha20Rng::from_seed(seed))
    }
    /// From a 64-bit seed (simnet, tests).
    pub fn from_u64(seed: u64) -> Self {
        let mut s = [0u8; 32];
        s[..8].copy_from_slice(&seed.to_le_bytes());
        Self::from_seed(s)
    }
    /// 16 random bytes.
    pub fn bytes16(&mut self) -> [u8; 16] {
        let mut b = [0u8; 16];
        self.0.fill_bytes(&mut b);
        b
    }
    /// 32 random bytes.
    pub fn bytes32(&mut self) -> [u8; 32] {
        let mut b = [0u8; 32];
        self.0.fill_bytes(&mut b);
        b
    }
    /// A random u64.
    pub fn next_u64(&mut self) -> u64 {
        self.0.next_u64()
    }
    /// A uniform value in `0..n` (n > 0), by rejection-free multiply-shift (bias < 2^-32
    /// for the small ranges used here).
    pub fn below(&mut self, n: u64) -> u64 {
        ((u128::from(self.next_u64()) * u128::from(n.max(1))) >> 64) as u64
    }
}

impl std::fmt::Debug for Entropy {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Entropy(..)")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn same_seed_same_stream() {
        let mut a = Entropy::from_u64(7);
        let mut b = Entropy::from_u64(7);
        assert_eq!(a.bytes32(), b.bytes32());
        assert_ne!(Entropy::from_u64(8).bytes16(), a.bytes16());
        for _ in 0..100 {
            assert!(a.below(10) < 10);
        }
    }
}
