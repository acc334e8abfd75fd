//! The sending side of HPKE base mode, RFC 9180, for the one suite Renkei uses:
//! DHKEM(X25519, HKDF-SHA256), HKDF-SHA256, ChaCha20-Poly1305, single shot.
//!
//! Written out here (rather than through the `hpke` crate, which still opens) so the
//! ephemeral public key is computed once (the crate derives it, drops it and computes it
//! again inside its encapsulation); HKDF and HMAC are the RustCrypto crates'. A test checks
//! every output against the `hpke` crate's, byte for byte, for the same inputs, and the
//! RFC 9180 A.2.1 known answer runs on it (`seal::tests`).
//!
//! The key agreement with a recipient sealed to often (a destination operator receives
//! thousands of units at month start) may use a table of multiples of the recipient's
//! point, built once per recipient after [`TABLE_AFTER`] seals through the same
//! [`SealTables`]: a constant-time fixed-base multiplication instead of a Montgomery ladder
//! (a 4 KiB seal: 39 instead of 76 µs). The caller owns the tables (a node's core keeps one
//! for its life; until 2026-12-07 they were a thread-local, which the protocol no longer
//! has). Only a public key that is a point of the prime-order subgroup (every key a Renkei
//! node makes) gets a table; any other key — on the twist, with a small-order component —
//! goes through the ladder. The bytes are the same either way (tested against the crate).

use std::sync::{Arc, Mutex};

use chacha20::ChaCha20Rng;
use chacha20poly1305::aead::AeadInOut;
use chacha20poly1305::{ChaCha20Poly1305, KeyInit};
use curve25519_dalek::edwards::{EdwardsBasepointTable, EdwardsPoint};
use curve25519_dalek::montgomery::MontgomeryPoint;
use curve25519_dalek::scalar::{Scalar, clamp_integer};
use curve25519_dalek::traits::BasepointTable;
use hpke::rand_core::{Rng, SeedableRng};
use zeroize::Zeroize;

use crate::error::SealError;
use crate::keys::EncPublicKey;

use super::schedule::{self, KEM_SUITE, labeled_expand, labeled_extract};

/// Seals to a recipient use its table from this many seals through one [`SealTables`]:
/// building one costs ≈ 1 ms, what ≈ 28 seals by table save over the ladder.
pub(crate) const TABLE_AFTER: u32 = 48;
/// Recipients whose seal counts or tables one [`SealTables`] keeps (then the oldest is
/// forgotten); a table is ≈ 30 KB.
const RECIPIENTS_MAX: usize = 64;

/// `enc ‖ ciphertext ‖ tag` of `plaintext` sealed to `recipient` with `info` and `aad`, the
/// ephemeral key derived from 32 bytes of a ChaCha20 RNG seeded with `ephemeral_seed`.
pub(crate) fn seal(
    tables: &SealTables,
    recipient: &EncPublicKey,
    info: &[u8],
    aad: &[u8],
    plaintext: &[u8],
    ephemeral_seed: [u8; 32],
) -> Result<Vec<u8>, SealError> {
    let mut ikm = [0u8; 32];
    ChaCha20Rng::from_seed(ephemeral_seed).fill_bytes(&mut ikm);
    seal_ikm(tables, recipient, info, aad, plaintext, ikm)
}

/// [`seal`] with the ephemeral key derived from `ikm` (RFC 9180's `ikmE`: the known-answer
/// tests hand it in).
pub(crate) fn seal_ikm(
    tables: &SealTables,
    recipient: &EncPublicKey,
    info: &[u8],
    aad: &[u8],
    plaintext: &[u8],
    mut ikm: [u8; 32],
) -> Result<Vec<u8>, SealError> {
    // Encap (RFC 9180 §4.1), with DeriveKeyPair (§7.1.3) of fresh ikm. Every secret
    // intermediate is wiped before returning, as the `hpke` crate does.
    let mut dkp_prk = labeled_extract(&[], KEM_SUITE, b"dkp_prk", &ikm);
    ikm.zeroize();
    let mut sk: [u8; 32] = labeled_expand(&dkp_prk, KEM_SUITE, b"sk", &[])?;
    dkp_prk.zeroize();
    let (enc, mut dh) = key_pair_and_agreement(tables, sk, recipient);
    sk.zeroize();
    if dh == [0u8; 32] {
        return Err(SealError::Seal(
            "the recipient key gives an all-zero shared secret (a small-order point)".into(),
        ));
    }
    let keys = schedule::key_and_nonce(&dh, &enc, recipient, info);
    dh.zeroize();
    let (mut key, nonce) = keys?;

    // Seal with sequence number 0: the base nonce itself.
    let mut out = Vec::with_capacity(enc.len() + plaintext.len() + 16);
    out.extend_from_slice(&enc);
    out.extend_from_slice(plaintext);
    let sealed = ChaCha20Poly1305::new(&key.into()).encrypt_inout_detached(
        &nonce.into(),
        aad,
        out[32..].as_mut().into(),
    );
    key.zeroize();
    let tag = sealed.map_err(|e| SealError::Seal(format!("ChaCha20-Poly1305: {e}")))?;
    out.extend_from_slice(&tag);
    Ok(out)
}

/// The ephemeral public key X25519(`sk`, 9) and the shared secret X25519(`sk`, `public`).
/// With the recipient's table both are Edwards points, turned into u-coordinates with one
/// field inversion instead of two (each is ≈ 5 µs of a ≈ 40 µs seal).
fn key_pair_and_agreement(
    tables: &SealTables,
    sk: [u8; 32],
    public: &EncPublicKey,
) -> ([u8; 32], [u8; 32]) {
    if let Some(table) = tables.entry(public) {
        let ephemeral = EdwardsPoint::mul_base_clamped(sk);
        let mut s = Scalar::from_bytes_mod_order(clamp_integer(sk));
        let shared = table.mul_base(&s);
        s.zeroize();
        let us = EdwardsPoint::to_montgomery_batch(&[ephemeral, shared]);
        return (us[0].to_bytes(), us[1].to_bytes());
    }
    (
        MontgomeryPoint::mul_base_clamped(sk).to_bytes(),
        MontgomeryPoint(*public).mul_clamped(sk).to_bytes(),
    )
}

/// What one [`SealTables`] knows of one recipient public key.
struct Recipient {
    key: [u8; 32],
    /// Seals to it through these tables.
    seals: u32,
    table: Table,
}

enum Table {
    /// Not built yet (fewer than [`TABLE_AFTER`] seals).
    NotYet,
    Built(Arc<EdwardsBasepointTable>),
    /// No table can serve this key: the ladder it is.
    Unusable,
}

/// Tables of multiples of the points of recipients sealed to often (see the module docs).
/// Owned by the caller and shared by reference (its threads take turns; the lock is held
/// only to count a seal and to hand out a table). Only public values are kept.
#[derive(Default)]
pub struct SealTables(Mutex<Vec<Recipient>>);

impl std::fmt::Debug for SealTables {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let n = self.0.lock().map_or(0, |r| r.len());
        write!(f, "SealTables({n} recipients)")
    }
}

impl SealTables {
    /// Counts a seal to `public` and answers its table when it has (or now gets) one.
    fn entry(&self, public: &[u8; 32]) -> Option<Arc<EdwardsBasepointTable>> {
        // A poisoned lock holds whole entries (a key, a count, a table or none).
        let mut r = self.0.lock().unwrap_or_else(|e| e.into_inner());
        let i = match r.iter().position(|x| x.key == *public) {
            Some(i) => i,
            None => {
                if r.len() >= RECIPIENTS_MAX {
                    r.remove(0);
                }
                r.push(Recipient {
                    key: *public,
                    seals: 0,
                    table: Table::NotYet,
                });
                r.len() - 1
            }
        };
        let x = &mut r[i];
        x.seals = x.seals.saturating_add(1);
        if matches!(x.table, Table::NotYet) && x.seals >= TABLE_AFTER {
            x.table = table_for(&x.key).map_or(Table::Unusable, Table::Built);
        }
        match &x.table {
            Table::Built(t) => Some(t.clone()),
            _ => None,
        }
    }

    #[cfg(test)]
    fn has_table(&self, public: &[u8; 32]) -> bool {
        self.0
            .lock()
            .map(|r| {
                r.iter()
                    .any(|x| x.key == *public && matches!(x.table, Table::Built(_)))
            })
            .unwrap_or(false)
    }
}

/// A table of multiples of the point whose u-coordinate is `public`, if that point is in
/// the prime-order subgroup (then a clamped scalar reduced mod ℓ gives the same product,
/// and either sign of the point the same u-coordinate).
fn table_for(public: &[u8; 32]) -> Option<Arc<EdwardsBasepointTable>> {
    let point = MontgomeryPoint(*public).to_edwards(0)?;
    if !point.is_torsion_free() || point.is_small_order() {
        return None;
    }
    Some(Arc::new(EdwardsBasepointTable::create(&point)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::keys::{SealKem, SealKeyPair};
    use hpke::{Deserializable, OpModeS, Serializable};

    fn by_the_crate(pk: &[u8; 32], info: &[u8], aad: &[u8], pt: &[u8], seed: [u8; 32]) -> Vec<u8> {
        let pk = <SealKem as hpke::Kem>::PublicKey::from_bytes(pk).unwrap();
        let (enc, ct) = hpke::single_shot_seal_with_rng::<
            hpke::aead::ChaCha20Poly1305,
            hpke::kdf::HkdfSha256,
            SealKem,
        >(
            &OpModeS::Base,
            &pk,
            info,
            pt,
            aad,
            &mut ChaCha20Rng::from_seed(seed),
        )
        .unwrap();
        [enc.to_bytes().to_vec(), ct].concat()
    }

    #[test]
    fn the_same_bytes_as_the_hpke_crate_by_ladder_and_by_table() {
        let tables = SealTables::default();
        let mut rng = ChaCha20Rng::from_seed([7; 32]);
        for k in 0..6u8 {
            let recipient = SealKeyPair::from_seed([k; 32]).public();
            // Enough seals to one recipient that the later ones use its table.
            for i in 0..(TABLE_AFTER + 8) {
                let mut seed = [0u8; 32];
                rng.fill_bytes(&mut seed);
                let len = (rng.next_u32() % 300) as usize;
                let mut pt = vec![0u8; len];
                rng.fill_bytes(&mut pt);
                let aad = [k, i as u8, 3];
                let info = if i % 2 == 0 {
                    &b"renkei/seal/v1"[..]
                } else {
                    b""
                };
                assert_eq!(
                    seal(&tables, &recipient, info, &aad, &pt, seed).unwrap(),
                    by_the_crate(&recipient, info, &aad, &pt, seed),
                    "recipient {k}, seal {i}"
                );
            }
            assert!(tables.has_table(&recipient), "recipient {k} got a table");
        }
    }

    #[test]
    fn keys_no_table_can_serve_go_through_the_ladder() {
        // A u-coordinate on the twist, the identity's (0), a small-order point's, and a
        // point with a small-order component: no table, the ladder's answer (and the same
        // refusal of an all-zero secret as the crate's).
        let tables = SealTables::default();
        let order_8 = curve25519_dalek::constants::EIGHT_TORSION[1]
            .to_montgomery()
            .to_bytes();
        let honest = SealKeyPair::from_seed([1; 32]).public();
        let mixed = (MontgomeryPoint(honest).to_edwards(0).unwrap()
            + curve25519_dalek::constants::EIGHT_TORSION[1])
            .to_montgomery()
            .to_bytes();
        let mut twist = [0u8; 32];
        twist[0] = 2; // u = 2 is not on Curve25519
        assert!(MontgomeryPoint(twist).to_edwards(0).is_none());
        for key in [twist, [0u8; 32], order_8, mixed] {
            assert!(table_for(&key).is_none());
        }
        for i in 0..(TABLE_AFTER + 2) {
            let seed = [i as u8; 32];
            let ours = seal(&tables, &mixed, b"i", b"a", b"p", seed).unwrap();
            assert_eq!(ours, by_the_crate(&mixed, b"i", b"a", b"p", seed));
            let ours = seal(&tables, &twist, b"i", b"a", b"p", seed).unwrap();
            assert_eq!(ours, by_the_crate(&twist, b"i", b"a", b"p", seed));
            assert!(seal(&tables, &order_8, b"i", b"a", b"p", seed).is_err());
            assert!(seal(&tables, &[0u8; 32], b"i", b"a", b"p", seed).is_err());
        }
    }
}
