//! Operator key material: an ed25519 signing key (the operator's identity and libp2p
//! PeerId) paired with a separate X25519 key for sealed payloads.
//!
//! The two keys are *paired*, not derived: each comes from its own 32-byte seed, and the
//! roster lists both, signed by the federation authority. Keeping them separate means the
//! encryption key can be rotated without changing the operator's identity, and no key is
//! used for two purposes.

use ed25519_dalek::{Signature, Signer, SigningKey, VerifyingKey};
use hpke::{Deserializable, Kem as _, Serializable};

use crate::error::VerifyError;
use crate::ids::OperatorId;

/// The HPKE KEM used for sealing (DHKEM(X25519, HKDF-SHA256), RFC 9180 id 0x0020).
pub type SealKem = hpke::kem::X25519HkdfSha256;

/// An X25519 public key to which payloads are sealed.
pub type EncPublicKey = [u8; 32];

/// An ed25519 signing identity (an operator, or the federation authority).
#[derive(Clone)]
pub struct SigningIdentity {
    key: SigningKey,
}

impl SigningIdentity {
    /// From a 32-byte secret seed.
    pub fn from_seed(seed: [u8; 32]) -> Self {
        SigningIdentity {
            key: SigningKey::from_bytes(&seed),
        }
    }

    /// The secret seed (for storing the key on disk).
    pub fn seed(&self) -> [u8; 32] {
        self.key.to_bytes()
    }

    /// The public key as an operator id.
    pub fn id(&self) -> OperatorId {
        OperatorId(self.key.verifying_key().to_bytes())
    }

    /// Signs `msg` under a domain-separation label: the signed bytes are
    /// `label || 0x00 || msg`.
    pub fn sign(&self, label: &[u8], msg: &[u8]) -> [u8; 64] {
        self.key.sign(&labelled(label, msg)).to_bytes()
    }
}

impl std::fmt::Debug for SigningIdentity {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "SigningIdentity({:?})", self.id())
    }
}

pub(crate) fn labelled(label: &[u8], msg: &[u8]) -> Vec<u8> {
    let mut m = Vec::with_capacity(label.len() + 1 + msg.len());
    m.extend_from_slice(label);
    m.push(0);
    m.extend_from_slice(msg);
    m
}

/// Verifies a labelled signature with `verify_strict` (no malleable or small-order keys).
pub fn verify_labelled(
    what: &'static str,
    key: &OperatorId,
    label: &[u8],
    msg: &[u8],
    sig: &[u8; 64],
) -> Result<(), VerifyError> {
    check_labelled(&Strict, what, key, label, msg, sig)
}

/// [`verify_labelled`] by `check`.
pub fn check_labelled(
    check: &dyn SignatureCheck,
    what: &'static str,
    key: &OperatorId,
    label: &[u8],
    msg: &[u8],
    sig: &[u8; 64],
) -> Result<(), VerifyError> {
    if check.valid(key, label, msg, sig) {
        Ok(())
    } else {
        Err(VerifyError::BadSignature {
            what,
            key: key.to_string(),
        })
    }
}

/// How a caller checks signatures. [`Strict`] is the definition: Ed25519 `verify_strict`
/// (no malleable signatures, no small-order keys) of `label ‖ 0x00 ‖ msg` under `key`.
/// Every implementation must answer exactly as [`Strict`] does for the same four inputs;
/// what it may add is memory (decompressed keys, [`KnownKeys`]; answers already computed
/// for exactly these inputs). The signed objects' `verify_by` methods take one; their
/// `verify` uses [`Strict`].
pub trait SignatureCheck {
    /// Whether `sig` is `key`'s signature of `label ‖ 0x00 ‖ msg`.
    fn valid(&self, key: &OperatorId, label: &[u8], msg: &[u8], sig: &[u8; 64]) -> bool;
}

/// The protocol's definition of a valid signature (see [`SignatureCheck`]).
#[derive(Clone, Copy, Debug, Default)]
pub struct Strict;

impl SignatureCheck for Strict {
    fn valid(&self, key: &OperatorId, label: &[u8], msg: &[u8], sig: &[u8; 64]) -> bool {
        VerifyingKey::from_bytes(key.as_bytes()).is_ok_and(|vk| valid_under(&vk, label, msg, sig))
    }
}

fn valid_under(vk: &VerifyingKey, label: &[u8], msg: &[u8], sig: &[u8; 64]) -> bool {
    vk.verify_strict(&labelled(label, msg), &Signature::from_bytes(sig))
        .is_ok()
}

/// [`Strict`], keeping each key it has decompressed (operators are few and sign
/// everything; decompressing a key costs about a quarter of a verification). Owned by its
/// caller — a node keeps one for its life and shares it with its worker threads — and
/// bounded: past [`KnownKeys::MAX`] keys it starts over.
#[derive(Debug, Default)]
pub struct KnownKeys {
    keys: std::sync::RwLock<std::collections::BTreeMap<[u8; 32], VerifyingKey>>,
}

impl KnownKeys {
    /// Keys kept at most.
    pub const MAX: usize = 1024;

    fn key(&self, key: &OperatorId) -> Option<VerifyingKey> {
        let bytes = *key.as_bytes();
        // A poisoned lock still holds whole entries: each is a key and its point.
        if let Some(vk) = self
            .keys
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .get(&bytes)
        {
            return Some(*vk);
        }
        let vk = VerifyingKey::from_bytes(&bytes).ok()?;
        let mut keys = self.keys.write().unwrap_or_else(|e| e.into_inner());
        if keys.len() >= Self::MAX {
            keys.clear();
        }
        keys.insert(bytes, vk);
        Some(vk)
    }
}

impl SignatureCheck for KnownKeys {
    fn valid(&self, key: &OperatorId, label: &[u8], msg: &[u8], sig: &[u8; 64]) -> bool {
        self.key(key)
            .is_some_and(|vk| valid_under(&vk, label, msg, sig))
    }
}

/// An X25519 key pair for opening sealed payloads.
#[derive(Clone)]
pub struct SealKeyPair {
    seed: [u8; 32],
    /// The X25519 secret (RFC 7748's scalar before clamping).
    secret: [u8; 32],
    public: EncPublicKey,
}

impl SealKeyPair {
    /// Derives the key pair from a 32-byte seed with HPKE's `DeriveKeyPair` (RFC 9180 §7.1.3).
    pub fn from_seed(seed: [u8; 32]) -> Self {
        let (secret, public) = SealKem::derive_keypair(&seed);
        let mut pk = [0u8; 32];
        pk.copy_from_slice(&public.to_bytes());
        let mut sk = [0u8; 32];
        sk.copy_from_slice(&secret.to_bytes());
        SealKeyPair {
            seed,
            secret: sk,
            public: pk,
        }
    }

    /// The seed (for storing the key on disk).
    pub fn seed(&self) -> [u8; 32] {
        self.seed
    }

    /// The public key.
    pub fn public(&self) -> EncPublicKey {
        self.public
    }

    pub(crate) fn secret(&self) -> &[u8; 32] {
        &self.secret
    }
}

impl Drop for SealKeyPair {
    /// The seed and the secret are wiped when the pair goes (the `hpke` crate's private key,
    /// which it held before, wiped itself the same way).
    fn drop(&mut self) {
        use zeroize::Zeroize;
        self.seed.zeroize();
        self.secret.zeroize();
    }
}

impl std::fmt::Debug for SealKeyPair {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "SealKeyPair({})", hex::encode(self.public))
    }
}

/// Checks that 32 bytes are an acceptable X25519 public key for sealing.
pub fn check_enc_key(pk: &EncPublicKey) -> bool {
    <SealKem as hpke::Kem>::PublicKey::from_bytes(pk).is_ok()
}

/// An operator's full key material: signing identity plus sealing key pair, and what is
/// kept of retired keys after a rotation: their sealing key pairs (to open envelopes sealed
/// to them during the overlap) and the public halves of their signing keys (to recognise
/// envelopes addressed to the old id). Retired signing *secrets* are not kept: nothing is
/// signed with an old key after a rotation.
#[derive(Clone, Debug)]
pub struct OperatorKeys {
    /// The signing identity.
    pub identity: SigningIdentity,
    /// The current sealing key pair.
    pub seal: SealKeyPair,
    /// Older sealing key pairs still accepted for opening.
    pub old_seals: Vec<SealKeyPair>,
    /// Older operator ids (retired signing keys, public half) that still designate this
    /// operator, oldest first.
    pub old_ids: Vec<OperatorId>,
}

impl OperatorKeys {
    /// From the two seeds.
    pub fn from_seeds(sign_seed: [u8; 32], seal_seed: [u8; 32]) -> Self {
        OperatorKeys {
            identity: SigningIdentity::from_seed(sign_seed),
            seal: SealKeyPair::from_seed(seal_seed),
            old_seals: Vec::new(),
            old_ids: Vec::new(),
        }
    }

    /// The operator id (ed25519 public key).
    pub fn id(&self) -> OperatorId {
        self.identity.id()
    }

    /// Whether `id` is this operator: its current id or a retired one.
    pub fn is_own_id(&self, id: &OperatorId) -> bool {
        *id == self.id() || self.old_ids.contains(id)
    }

    /// Key rotation: new seeds become current; the current id and sealing key pair are
    /// retired (kept for recognition and opening), the current signing secret is dropped.
    pub fn rotate(self, sign_seed: [u8; 32], seal_seed: [u8; 32]) -> Self {
        let old_id = self.id();
        let mut old_ids = self.old_ids;
        old_ids.push(old_id);
        let mut old_seals = self.old_seals;
        old_seals.push(self.seal);
        OperatorKeys {
            identity: SigningIdentity::from_seed(sign_seed),
            seal: SealKeyPair::from_seed(seal_seed),
            old_seals,
            old_ids,
        }
    }

    /// The seal key pair whose public key is `pk` (current or old).
    pub fn seal_for(&self, pk: &EncPublicKey) -> Option<&SealKeyPair> {
        std::iter::once(&self.seal)
            .chain(&self.old_seals)
            .find(|k| &k.public == pk)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sign_verify_and_label_separation() {
        let id = SigningIdentity::from_seed([1; 32]);
        let sig = id.sign(b"a", b"msg");
        assert!(verify_labelled("t", &id.id(), b"a", b"msg", &sig).is_ok());
        assert!(verify_labelled("t", &id.id(), b"b", b"msg", &sig).is_err());
        assert!(verify_labelled("t", &id.id(), b"a", b"msh", &sig).is_err());
        let other = SigningIdentity::from_seed([2; 32]);
        let e = verify_labelled("receipt", &other.id(), b"a", b"msg", &sig).unwrap_err();
        assert!(
            e.to_string()
                .starts_with("receipt: signature does not verify"),
            "{e}"
        );
    }

    #[test]
    fn known_keys_answer_as_strict_past_their_capacity() {
        let known = KnownKeys::default();
        let id = SigningIdentity::from_seed([7; 32]);
        let sig = id.sign(b"a", b"msg");
        for n in 0..(KnownKeys::MAX + 10) {
            let mut seed = [1u8; 32];
            seed[..8].copy_from_slice(&(n as u64).to_le_bytes());
            let other = SigningIdentity::from_seed(seed).id();
            for (key, label) in [(&other, &b"a"[..]), (&id.id(), b"a"), (&id.id(), b"b")] {
                assert_eq!(
                    known.valid(key, label, b"msg", &sig),
                    Strict.valid(key, label, b"msg", &sig)
                );
            }
        }
        assert!(known.valid(&id.id(), b"a", b"msg", &sig));
    }

    #[test]
    fn keys_that_are_not_points_are_refused() {
        let id = SigningIdentity::from_seed([7; 32]);
        let sig = id.sign(b"a", b"msg");
        let not_a_point = (0u8..=255)
            .map(|b| {
                let mut k = [b; 32];
                k[31] &= 0x7f;
                OperatorId(k)
            })
            .find(|k| VerifyingKey::from_bytes(k.as_bytes()).is_err())
            .unwrap();
        assert!(verify_labelled("t", &not_a_point, b"a", b"msg", &sig).is_err());
        assert!(verify_labelled("t", &id.id(), b"a", b"msg", &sig).is_ok());
    }

    #[test]
    fn rotation_keeps_old_ids_and_seals() {
        let k = OperatorKeys::from_seeds([1; 32], [2; 32]);
        let (old_id, old_pk) = (k.id(), k.seal.public());
        let r = k.rotate([3; 32], [4; 32]);
        assert_ne!(r.id(), old_id);
        assert!(r.is_own_id(&old_id) && r.is_own_id(&r.id()));
        assert!(!r.is_own_id(&SigningIdentity::from_seed([5; 32]).id()));
        assert_eq!(r.seal_for(&old_pk).map(SealKeyPair::public), Some(old_pk));
        let new_pk = r.seal.public();
        assert_eq!(r.seal_for(&new_pk).map(SealKeyPair::public), Some(new_pk));
        let r2 = r.rotate([6; 32], [7; 32]);
        assert_eq!(r2.old_ids.len(), 2);
        assert!(r2.seal_for(&old_pk).is_some() && r2.seal_for(&new_pk).is_some());
    }

    #[test]
    fn seal_keys_are_deterministic() {
        let a = SealKeyPair::from_seed([3; 32]);
        let b = SealKeyPair::from_seed([3; 32]);
        assert_eq!(a.public(), b.public());
        assert_ne!(a.public(), SealKeyPair::from_seed([4; 32]).public());
        assert!(check_enc_key(&a.public()));
    }
}
