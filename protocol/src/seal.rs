//! Sealed payloads: HPKE base mode (RFC 9180) with DHKEM(X25519, HKDF-SHA256), HKDF-SHA256
//! and ChaCha20-Poly1305 (suite 0x0020/0x0001/0x0003), single shot.
//!
//! `info` is [`SEAL_INFO`]; the associated data is the envelope's canonical header bytes, so a
//! payload cannot be moved under another header. The sealed form is `enc (32 bytes) ||
//! ciphertext || tag (16 bytes)`. The ephemeral key comes from a ChaCha20 RNG seeded with
//! 32 bytes the caller hands in (the core draws them from its seeded source; production
//! seeds that from the OS).

use crate::error::SealError;
use crate::keys::{EncPublicKey, SealKeyPair};

/// HPKE `info` string for Renkei payloads.
pub const SEAL_INFO: &[u8] = b"renkei/seal/v1";
/// Length of the encapsulated key at the start of a sealed payload.
pub const ENC_LEN: usize = 32;
/// Length of the AEAD tag.
pub const TAG_LEN: usize = 16;

mod receiver;
mod schedule;
mod sender;

pub use sender::SealTables;

/// Seals `plaintext` to `recipient` with `aad` as associated data.
pub fn seal(
    recipient: &EncPublicKey,
    aad: &[u8],
    plaintext: &[u8],
    ephemeral_seed: [u8; 32],
) -> Result<Vec<u8>, SealError> {
    seal_by(
        &SealTables::default(),
        recipient,
        aad,
        plaintext,
        ephemeral_seed,
    )
}

/// [`seal`], using and filling `tables` (the same bytes; faster to a frequent recipient).
pub fn seal_by(
    tables: &SealTables,
    recipient: &EncPublicKey,
    aad: &[u8],
    plaintext: &[u8],
    ephemeral_seed: [u8; 32],
) -> Result<Vec<u8>, SealError> {
    sender::seal(tables, recipient, SEAL_INFO, aad, plaintext, ephemeral_seed)
}

/// Opens a sealed payload with the recipient's key pair; fails on a wrong key, a changed
/// `aad` or any altered byte.
pub fn open(keys: &SealKeyPair, aad: &[u8], sealed: &[u8]) -> Result<Vec<u8>, SealError> {
    open_with_info(keys, SEAL_INFO, aad, sealed)
}

/// [`open`] with another HPKE `info` (the known-answer tests use RFC 9180's).
fn open_with_info(
    keys: &SealKeyPair,
    info: &[u8],
    aad: &[u8],
    sealed: &[u8],
) -> Result<Vec<u8>, SealError> {
    receiver::open(keys, info, aad, sealed)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// RFC 9180 Appendix A.2.1: DHKEM(X25519, HKDF-SHA256), HKDF-SHA256,
    /// ChaCha20Poly1305, base mode, sequence number 0 — on this crate's own sealing path
    /// (`sender::seal_ikm`, HKDF/HMAC from RustCrypto) and its opening path.
    #[test]
    fn rfc9180_a_2_1_known_answer() {
        let h = |s: &str| hex::decode(s).expect("hex");
        let info = h("4f6465206f6e2061204772656369616e2055726e");
        let ikm_e: [u8; 32] = h("909a9b35d3dc4713a5e72a4da274b55d3d3821a37e5d099e74a647db583a904b")
            .try_into()
            .expect("32");
        let ikm_r: [u8; 32] = h("1ac01f181fdf9f352797655161c58b75c656a6cc2716dcb66372da835542e1df")
            .try_into()
            .expect("32");
        let pk_rm = h("4310ee97d88cc1f088a5576c77ab0cf5c3ac797f3d95139c6c84b5429c59662a");
        let enc = h("1afa08d3dec047a643885163f1180476fa7ddb54c6a8029ea33f95796bf2ac4a");
        let pt = h("4265617574792069732074727574682c20747275746820626561757479");
        let aad = h("436f756e742d30");
        let ct = h(
            "1c5250d8034ec2b784ba2cfd69dbdb8af406cfe3ff938e131f0def8c8b60b4db21993c62ce81883d2dd1b51a28",
        );
        // DeriveKeyPair(ikmR) gives the recipient key of the vector.
        let recipient = SealKeyPair::from_seed(ikm_r);
        assert_eq!(recipient.public().to_vec(), pk_rm);
        let pk: EncPublicKey = pk_rm.clone().try_into().expect("32");
        let tables = SealTables::default();
        let sealed = sender::seal_ikm(&tables, &pk, &info, &aad, &pt, ikm_e).expect("seal");
        assert_eq!(hex::encode(&sealed[..ENC_LEN]), hex::encode(&enc), "enc");
        assert_eq!(
            hex::encode(&sealed[ENC_LEN..]),
            hex::encode(&ct),
            "ciphertext ‖ tag"
        );
        // Sealed to often enough, the recipient's table path gives the same bytes.
        for _ in 0..sender::TABLE_AFTER + 1 {
            assert_eq!(
                sender::seal_ikm(&tables, &pk, &info, &aad, &pt, ikm_e).expect("seal"),
                sealed
            );
        }
        let mut wire = enc.clone();
        wire.extend_from_slice(&ct);
        assert_eq!(
            open_with_info(&recipient, &info, &aad, &wire).expect("open"),
            pt
        );
        let mut bad = wire.clone();
        bad[ENC_LEN + 3] ^= 1;
        assert!(open_with_info(&recipient, &info, &aad, &bad).is_err());
    }

    #[test]
    fn seal_open_roundtrip_and_failures() {
        let k = SealKeyPair::from_seed([9; 32]);
        let sealed = seal(&k.public(), b"hdr", b"care plan", [1; 32]).unwrap();
        assert_eq!(sealed.len(), ENC_LEN + 9 + TAG_LEN);
        assert_eq!(open(&k, b"hdr", &sealed).unwrap(), b"care plan");
        // deterministic given the seed
        assert_eq!(
            sealed,
            seal(&k.public(), b"hdr", b"care plan", [1; 32]).unwrap()
        );
        assert_ne!(
            sealed,
            seal(&k.public(), b"hdr", b"care plan", [2; 32]).unwrap()
        );
        assert_eq!(open(&k, b"hdR", &sealed), Err(SealError::Open));
        let wrong = SealKeyPair::from_seed([8; 32]);
        assert_eq!(open(&wrong, b"hdr", &sealed), Err(SealError::Open));
        let mut bad = sealed.clone();
        bad[40] ^= 1;
        assert_eq!(open(&k, b"hdr", &bad), Err(SealError::Open));
        assert_eq!(open(&k, b"hdr", &sealed[..20]), Err(SealError::Short(20)));
    }
}
