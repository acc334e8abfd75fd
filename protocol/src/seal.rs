//! Sealed payloads: HPKE base mode (RFC 9180) with DHKEM(X25519, HKDF-SHA256), HKDF-SHA256
//! and ChaCha20-Poly1305 (suite 0x0020/0x0001/0x0003), single shot.
//!
//! `info` is [`SEAL_INFO`]; the associated data is the envelope's canonical header bytes, so a
//! payload cannot be moved under another header. The sealed form is `enc (32 bytes) ||
//! ciphertext || tag (16 bytes)`. The ephemeral key comes from a ChaCha20 RNG seeded with
//! 32 bytes the caller hands in (the core draws them from its seeded source; production
//! seeds that from the OS).

use hpke::{Deserializable, OpModeR};

use crate::envelope::{Digest32, sha256};
use crate::error::SealError;
use crate::keys::{EncPublicKey, SealKem, SealKeyPair};

/// HPKE `info` string for Renkei payloads.
pub const SEAL_INFO: &[u8] = b"renkei/seal/v1";
/// Length of the encapsulated key at the start of a sealed payload.
pub const ENC_LEN: usize = 32;
/// Length of the AEAD tag.
pub const TAG_LEN: usize = 16;

mod sender;

type Aead = hpke::aead::ChaCha20Poly1305;
type Kdf = hpke::kdf::HkdfSha256;

/// Seals `plaintext` to `recipient` with `aad` as associated data.
pub fn seal(
    recipient: &EncPublicKey,
    aad: &[u8],
    plaintext: &[u8],
    ephemeral_seed: [u8; 32],
) -> Result<Vec<u8>, SealError> {
    seal_digested(recipient, aad, plaintext, ephemeral_seed).map(|(sealed, _)| sealed)
}

/// [`seal`], with the SHA-256 of the sealed bytes (an envelope signs it).
pub(crate) fn seal_digested(
    recipient: &EncPublicKey,
    aad: &[u8],
    plaintext: &[u8],
    ephemeral_seed: [u8; 32],
) -> Result<(Vec<u8>, Digest32), SealError> {
    let ((out, digest), taken) = crate::memo::sealed_ahead(
        || crate::memo::sealed_digest(recipient, aad, plaintext, &ephemeral_seed),
        || sender::seal(recipient, SEAL_INFO, aad, plaintext, ephemeral_seed),
    )?;
    if crate::memo::active() && !taken {
        crate::memo::remember_opened(
            crate::memo::opened_digest(recipient, aad, &digest),
            plaintext.to_vec(),
            false,
        );
    }
    Ok((out, digest))
}

/// [`seal_digested`] of a plaintext that `aad` pins down: an envelope's header lists the
/// length and SHA-256 of every file the payload carries, and the caller has just computed
/// them from these very files ([`crate::envelope::Envelope::seal_listed`]). With a memo,
/// its key is then taken over `aad` rather than over the plaintext, and the plaintext is
/// built only if the seal has to be made here (a simulation takes most seals made ahead:
/// hashing and building each unit's payload again was ≈ 2 % of its thread). Without a
/// memo this is [`seal_digested`].
pub(crate) fn seal_digested_pinned(
    recipient: &EncPublicKey,
    aad: &[u8],
    plaintext: impl FnOnce() -> Vec<u8>,
    ephemeral_seed: [u8; 32],
) -> Result<(Vec<u8>, Digest32), SealError> {
    if !crate::memo::active() {
        return seal_digested(recipient, aad, &plaintext(), ephemeral_seed);
    }
    let mut made: Option<Vec<u8>> = None;
    let ((out, digest), taken) = crate::memo::sealed_ahead(
        || crate::memo::sealed_pinned_digest(recipient, aad, &ephemeral_seed),
        || {
            let p = made.insert(plaintext());
            sender::seal(recipient, SEAL_INFO, aad, p, ephemeral_seed)
        },
    )?;
    if !taken && let Some(p) = made {
        crate::memo::remember_opened(crate::memo::opened_digest(recipient, aad, &digest), p, true);
    }
    Ok((out, digest))
}

/// Opens a sealed payload with the recipient's key pair; fails on a wrong key, a changed
/// `aad` or any altered byte.
pub fn open(keys: &SealKeyPair, aad: &[u8], sealed: &[u8]) -> Result<Vec<u8>, SealError> {
    open_digested(keys, aad, sealed, || sha256(sealed)).map(|(p, _)| p)
}

/// [`open`], given the SHA-256 of `sealed` (asked for only with a memo). Also says whether
/// `aad` pins the plaintext (it was answered by a memo that a
/// [`seal_digested_pinned`] filled).
pub(crate) fn open_digested(
    keys: &SealKeyPair,
    aad: &[u8],
    sealed: &[u8],
    sealed_sha256: impl FnOnce() -> Digest32,
) -> Result<(Vec<u8>, bool), SealError> {
    if crate::memo::active()
        && let Some(answer) = crate::memo::take_opened(&crate::memo::opened_digest(
            &keys.public(),
            aad,
            &sealed_sha256(),
        ))
    {
        return Ok(answer);
    }
    open_now(keys, aad, sealed).map(|p| (p, false))
}

fn open_now(keys: &SealKeyPair, aad: &[u8], sealed: &[u8]) -> Result<Vec<u8>, SealError> {
    if sealed.len() < ENC_LEN + TAG_LEN {
        return Err(SealError::Short(sealed.len()));
    }
    let (enc, ct) = sealed.split_at(ENC_LEN);
    let enc = <SealKem as hpke::Kem>::EncappedKey::from_bytes(enc).map_err(|_| SealError::Open)?;
    hpke::single_shot_open::<Aead, Kdf, SealKem>(
        &OpModeR::Base,
        keys.secret(),
        &enc,
        SEAL_INFO,
        ct,
        aad,
    )
    .map_err(|_| SealError::Open)
}

#[cfg(test)]
mod tests {
    use super::*;

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
