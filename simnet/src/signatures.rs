//! Signature checks for a whole simulated federation.
//!
//! Fifty simulated operators verify the very same office bindings, envelopes and receipts
//! on one thread (every node checks every binding of the directory; a relay and the
//! destination both check an envelope's origin signature; the checkers verify every stored
//! receipt again). [`Remembered`] is the [`SignatureCheck`] a run hands every core and its
//! checkers: it answers as the protocol's `Strict` check does, and remembers the inputs
//! that checked valid — by SHA-256 of the key, the label, the signature and the message, all
//! four — so the same five inputs are not computed twice. Failures are never remembered,
//! and any changed byte is another digest, checked for real. Production nodes use
//! [`KnownKeys`] alone (each verifies a given signature about once).

use std::sync::Mutex;

use renkei_protocol::ids::OperatorId;
use renkei_protocol::keys::{KnownKeys, SignatureCheck};
use sha2::Digest;

use crate::lookup::LookupSet;

/// See the module docs.
#[derive(Debug)]
pub struct Remembered {
    keys: KnownKeys,
    valid: Mutex<LookupSet<[u8; 32]>>,
    capacity: usize,
}

impl Remembered {
    /// Remembers up to `capacity` valid signatures (≈ 50 bytes each), then starts over.
    pub fn new(capacity: usize) -> Self {
        Remembered {
            keys: KnownKeys::default(),
            valid: Mutex::new(LookupSet::default()),
            capacity: capacity.max(1),
        }
    }

    /// Valid signatures remembered now.
    pub fn len(&self) -> usize {
        self.set().len()
    }

    /// Whether none is remembered.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn set(&self) -> std::sync::MutexGuard<'_, LookupSet<[u8; 32]>> {
        // Every entry is a whole digest: a panic elsewhere leaves nothing half-written.
        self.valid.lock().unwrap_or_else(|e| e.into_inner())
    }
}

fn digest(key: &OperatorId, label: &[u8], msg: &[u8], sig: &[u8; 64]) -> [u8; 32] {
    let mut h = sha2::Sha256::new();
    h.update(b"renkei/simnet/valid-signature");
    h.update(key.as_bytes());
    h.update((label.len() as u64).to_le_bytes());
    h.update(label);
    h.update(sig);
    h.update(msg);
    h.finalize().into()
}

impl SignatureCheck for Remembered {
    fn valid(&self, key: &OperatorId, label: &[u8], msg: &[u8], sig: &[u8; 64]) -> bool {
        let d = digest(key, label, msg, sig);
        if self.set().contains(&d) {
            return true;
        }
        let ok = self.keys.valid(key, label, msg, sig);
        if ok {
            let mut set = self.set();
            if set.len() >= self.capacity {
                set.clear();
            }
            set.insert(d);
        }
        ok
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use renkei_protocol::keys::{SigningIdentity, Strict};

    #[test]
    fn answers_as_strict_and_remembers_only_what_was_valid() {
        let r = Remembered::new(2);
        let id = SigningIdentity::from_seed([1; 32]);
        let other = SigningIdentity::from_seed([2; 32]).id();
        let sig = id.sign(b"a", b"msg");
        let mut forged = sig;
        forged[5] ^= 1;
        for _ in 0..2 {
            for (key, label, msg, s) in [
                (&id.id(), &b"a"[..], &b"msg"[..], &sig),
                (&id.id(), b"a", b"msg", &forged),
                (&id.id(), b"b", b"msg", &sig),
                (&id.id(), b"a", b"msh", &sig),
                (&other, b"a", b"msg", &sig),
            ] {
                assert_eq!(
                    r.valid(key, label, msg, s),
                    Strict.valid(key, label, msg, s)
                );
            }
        }
        assert_eq!(r.len(), 1, "only the valid signature is remembered");
        // Past the capacity the set starts over; answers do not change.
        for m in [&b"m2"[..], b"m3"] {
            let s = id.sign(b"a", m);
            assert!(r.valid(&id.id(), b"a", m, &s));
        }
        assert!(r.len() <= 2);
        assert!(r.valid(&id.id(), b"a", b"msg", &sig));
        assert!(!r.valid(&id.id(), b"a", b"msg", &forged));
    }
}
