//! The KEM's shared secret and HPKE's key schedule (RFC 9180 §4.1 and §5.1), base mode,
//! for DHKEM(X25519, HKDF-SHA256) with HKDF-SHA256 and ChaCha20-Poly1305: what the sending
//! and the opening side compute alike from the Diffie–Hellman value. HKDF and HMAC are the
//! RustCrypto crates'.

use zeroize::Zeroize;

use crate::error::SealError;

const VERSION: &[u8] = b"HPKE-v1";
/// "KEM" ‖ I2OSP(0x0020, 2): DHKEM(X25519, HKDF-SHA256).
pub(super) const KEM_SUITE: &[u8] = b"KEM\x00\x20";
/// "HPKE" ‖ kem 0x0020 ‖ kdf 0x0001 ‖ aead 0x0003.
const HPKE_SUITE: &[u8] = b"HPKE\x00\x20\x00\x01\x00\x03";

/// The AEAD key and base nonce of a base-mode context whose Diffie–Hellman value is `dh`,
/// encapsulated key `enc`, recipient public key `pk_r`, and `info`. Every secret
/// intermediate is wiped before returning, as the `hpke` crate does.
pub(super) fn key_and_nonce(
    dh: &[u8; 32],
    enc: &[u8; 32],
    pk_r: &[u8; 32],
    info: &[u8],
) -> Result<([u8; 32], [u8; 12]), SealError> {
    // ExtractAndExpand (§4.1).
    let mut kem_context = [0u8; 64];
    kem_context[..32].copy_from_slice(enc);
    kem_context[32..].copy_from_slice(pk_r);
    let mut eae_prk = labeled_extract(&[], KEM_SUITE, b"eae_prk", dh);
    let shared: Result<[u8; 32], _> =
        labeled_expand(&eae_prk, KEM_SUITE, b"shared_secret", &kem_context);
    eae_prk.zeroize();
    let mut shared = shared?;

    // KeySchedule (§5.1), base mode: no PSK.
    let psk_id_hash = labeled_extract(&[], HPKE_SUITE, b"psk_id_hash", &[]);
    let info_hash = labeled_extract(&[], HPKE_SUITE, b"info_hash", info);
    let mut context = [0u8; 65];
    context[1..33].copy_from_slice(&psk_id_hash);
    context[33..].copy_from_slice(&info_hash);
    let mut secret = labeled_extract(&shared, HPKE_SUITE, b"secret", &[]);
    shared.zeroize();
    let key = labeled_expand(&secret, HPKE_SUITE, b"key", &context);
    let nonce = labeled_expand(&secret, HPKE_SUITE, b"base_nonce", &context);
    secret.zeroize();
    Ok((key?, nonce?))
}

/// HKDF-SHA256 from the `hkdf` crate (RustCrypto), on the SHA-256 of `sha2` 0.11 that
/// `hkdf`/`hmac` 0.13 take (the `hpke` crate uses the same pair).
type Kdf = hkdf::Hkdf<sha2_11::Sha256>;

/// LabeledExtract(salt, label, ikm) = HKDF-Extract(salt, "HPKE-v1" ‖ suite ‖ label ‖ ikm).
pub(super) fn labeled_extract(salt: &[u8], suite: &[u8], label: &[u8], ikm: &[u8]) -> [u8; 32] {
    let mut extract = hkdf::HkdfExtract::<sha2_11::Sha256>::new(Some(salt));
    for part in [VERSION, suite, label, ikm] {
        extract.input_ikm(part);
    }
    extract.finalize().0.into()
}

/// LabeledExpand(prk, label, info, N) = HKDF-Expand(prk, I2OSP(N, 2) ‖ "HPKE-v1" ‖ suite ‖
/// label ‖ info, N), for N ≤ 32.
pub(super) fn labeled_expand<const N: usize>(
    prk: &[u8; 32],
    suite: &[u8],
    label: &[u8],
    info: &[u8],
) -> Result<[u8; N], SealError> {
    const { assert!(N <= 32) };
    let len = (N as u16).to_be_bytes();
    let mut out = [0u8; N];
    Kdf::from_prk(prk)
        .map_err(|e| SealError::Seal(format!("HKDF: {e}")))?
        .expand_multi_info(&[&len, VERSION, suite, label, info], &mut out)
        .map_err(|e| SealError::Seal(format!("HKDF: {e}")))?;
    Ok(out)
}
