//! The opening side of HPKE base mode (RFC 9180 §5.1.1 `SetupBaseR` and single-shot `Open`)
//! for the suite of [`super::sender`].
//!
//! Written out here rather than through the `hpke` crate for two costs it pays on every
//! open (≈ 83 µs for a 4 KiB payload): it derives the recipient's public key again from the
//! secret (a fixed-base multiplication and an inversion), which the key pair already holds,
//! and it computes X25519 by the Montgomery ladder on the serial field arithmetic. Here the
//! encapsulated key, when it is a point of the curve (every honest sender's is), is lifted to
//! Edwards form and multiplied by the clamped secret with curve25519-dalek's constant-time
//! variable-base multiplication, which runs on the vector (AVX2) backend where the CPU has
//! it; its u-coordinate is X25519's answer, because the clamped scalar is a multiple of the
//! cofactor and a point and its negation share a u-coordinate. A u-coordinate off the curve
//! (on the twist) goes through the ladder, so the value is X25519's for every input. Tests
//! check it against the `hpke` crate's opening for honest, twisted and small-order keys, and
//! the RFC 9180 A.2.1 known answer runs on it (`seal::tests`).

use chacha20poly1305::aead::AeadInOut;
use chacha20poly1305::{ChaCha20Poly1305, KeyInit};
use curve25519_dalek::montgomery::MontgomeryPoint;
use zeroize::Zeroize;

use crate::error::SealError;
use crate::keys::SealKeyPair;

use super::schedule;
use super::{ENC_LEN, TAG_LEN};

/// The plaintext of `sealed` (`enc ‖ ciphertext ‖ tag`) for the key pair `keys`, or
/// [`SealError::Open`] whatever went wrong (a wrong key, another `info` or `aad`, any
/// altered byte, an encapsulated key giving an all-zero secret).
pub(crate) fn open(
    keys: &SealKeyPair,
    info: &[u8],
    aad: &[u8],
    sealed: &[u8],
) -> Result<Vec<u8>, SealError> {
    if sealed.len() < ENC_LEN + TAG_LEN {
        return Err(SealError::Short(sealed.len()));
    }
    let (enc, rest) = sealed.split_at(ENC_LEN);
    let enc: [u8; ENC_LEN] = enc.try_into().map_err(|_| SealError::Open)?;
    let (ct, tag) = rest.split_at(rest.len() - TAG_LEN);

    // Decap (§4.1): DH(skR, pkE), refusing an all-zero value as the `hpke` crate does.
    let mut dh = x25519(keys.secret(), &enc);
    if dh == [0u8; 32] {
        return Err(SealError::Open);
    }
    let keys_nonce = schedule::key_and_nonce(&dh, &enc, &keys.public(), info);
    dh.zeroize();
    let (mut key, nonce) = keys_nonce.map_err(|_| SealError::Open)?;

    let mut out = ct.to_vec();
    let opened = ChaCha20Poly1305::new(&key.into()).decrypt_inout_detached(
        &nonce.into(),
        aad,
        out.as_mut_slice().into(),
        tag.try_into().map_err(|_| SealError::Open)?,
    );
    key.zeroize();
    if opened.is_err() {
        out.zeroize();
        return Err(SealError::Open);
    }
    Ok(out)
}

/// X25519(`secret`, `u`) (RFC 7748): the u-coordinate of the clamped `secret` times the
/// point `u`, by the Edwards form when `u` is on the curve, by the ladder when it is not.
fn x25519(secret: &[u8; 32], u: &[u8; 32]) -> [u8; 32] {
    let point = MontgomeryPoint(*u);
    match point.to_edwards(0) {
        Some(p) => p.mul_clamped(*secret).to_montgomery().to_bytes(),
        None => point.mul_clamped(*secret).to_bytes(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::keys::SealKem;
    use chacha20::ChaCha20Rng;
    use curve25519_dalek::constants::EIGHT_TORSION;
    use hpke::rand_core::{Rng, SeedableRng};
    use hpke::{Deserializable, OpModeR};

    fn by_the_crate(keys: &SealKeyPair, info: &[u8], aad: &[u8], sealed: &[u8]) -> Option<Vec<u8>> {
        let (enc, ct) = sealed.split_at(ENC_LEN);
        let enc = <SealKem as hpke::Kem>::EncappedKey::from_bytes(enc).ok()?;
        let (sk, _) = <SealKem as hpke::Kem>::derive_keypair(&keys.seed());
        hpke::single_shot_open::<hpke::aead::ChaCha20Poly1305, hpke::kdf::HkdfSha256, SealKem>(
            &OpModeR::Base,
            &sk,
            &enc,
            info,
            ct,
            aad,
        )
        .ok()
    }

    #[test]
    fn x25519_by_edwards_is_the_ladder_for_every_kind_of_point() {
        let mut rng = ChaCha20Rng::from_seed([5; 32]);
        let honest = MontgomeryPoint::mul_base_clamped([3; 32]);
        let mixed = (honest.to_edwards(0).unwrap() + EIGHT_TORSION[3]).to_montgomery();
        let mut twist = [0u8; 32];
        twist[0] = 2;
        let mut high_bit = honest.to_bytes();
        high_bit[31] |= 0x80; // X25519 ignores the top bit
        // p − 1 (u = −1, which has no Edwards form), and p + 9 (the base point's u written
        // above p: X25519 reduces it).
        let near_p = |low: u8| {
            let mut u = [0xffu8; 32];
            u[0] = low;
            u[31] = 0x7f;
            u
        };
        let (minus_one, nine_above_p) = (near_p(0xec), near_p(0xf6));
        let mut points = vec![
            honest.to_bytes(),
            mixed.to_bytes(),
            twist,
            high_bit,
            minus_one,
            nine_above_p,
            [0u8; 32],
        ];
        points.extend(EIGHT_TORSION.iter().map(|t| t.to_montgomery().to_bytes()));
        for _ in 0..200 {
            let mut u = [0u8; 32];
            rng.fill_bytes(&mut u); // about half of them on the twist
            points.push(u);
        }
        for u in points {
            let mut secret = [0u8; 32];
            rng.fill_bytes(&mut secret);
            assert_eq!(
                x25519(&secret, &u),
                MontgomeryPoint(u).mul_clamped(secret).to_bytes(),
                "u = {}",
                hex::encode(u)
            );
        }
    }

    #[test]
    fn opens_what_the_crate_opens_and_refuses_what_it_refuses() {
        let mut rng = ChaCha20Rng::from_seed([6; 32]);
        let keys = SealKeyPair::from_seed([4; 32]);
        for i in 0..40u8 {
            let mut seed = [0u8; 32];
            rng.fill_bytes(&mut seed);
            let pt = vec![i; usize::from(i) * 7];
            let sealed = super::super::seal(&keys.public(), &[i], &pt, seed).unwrap();
            assert_eq!(
                open(&keys, super::super::SEAL_INFO, &[i], &sealed).unwrap(),
                pt
            );
            assert_eq!(
                by_the_crate(&keys, super::super::SEAL_INFO, &[i], &sealed),
                Some(pt)
            );
            // Another encapsulated key: on the curve, on the twist, of small order.
            let mut other = sealed.clone();
            let mut u = [0u8; 32];
            rng.fill_bytes(&mut u);
            if i % 3 == 0 {
                u = EIGHT_TORSION[usize::from(i) % 8].to_montgomery().to_bytes();
            }
            other[..ENC_LEN].copy_from_slice(&u);
            assert_eq!(
                open(&keys, super::super::SEAL_INFO, &[i], &other),
                Err(SealError::Open)
            );
            assert_eq!(
                by_the_crate(&keys, super::super::SEAL_INFO, &[i], &other),
                None
            );
        }
    }
}
