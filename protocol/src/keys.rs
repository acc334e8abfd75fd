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
        let public = self.key.verifying_key();
        let (sig, taken) = crate::memo::signed_ahead(
            || crate::memo::signed_digest(public.as_bytes(), label, msg),
            || self.key.sign(&labelled(label, msg)).to_bytes(),
        );
        // A signature made ahead was remembered as verified by the thread that made it.
        if crate::memo::active() && !taken {
            crate::memo::remember_verified(crate::memo::verified_digest(
                public.as_bytes(),
                label,
                msg,
                &sig,
            ));
        }
        sig
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
    let bad = || VerifyError::BadSignature {
        what,
        key: key.to_string(),
    };
    let digest = crate::memo::active()
        .then(|| crate::memo::verified_digest(key.as_bytes(), label, msg, sig));
    if let Some(d) = &digest
        && crate::memo::is_verified(d)
    {
        return Ok(());
    }
    let vk = verifying_key(key).ok_or_else(bad)?;
    vk.verify_strict(&labelled(label, msg), &Signature::from_bytes(sig))
        .map_err(|_| bad())?;
    if let Some(d) = digest {
        crate::memo::remember_verified(d);
    }
    Ok(())
}

/// Decompressed verifying keys, per thread: operators are few and sign everything, and
/// decompressing a key costs about a quarter of a verification.
const KEY_CACHE_MAX: usize = 1024;

thread_local! {
    static KEYS: std::cell::RefCell<std::collections::BTreeMap<[u8; 32], VerifyingKey>> =
        const { std::cell::RefCell::new(std::collections::BTreeMap::new()) };
}

/// The verifying key for `key`, decompressed once per thread; `None` if the bytes are not
/// a valid point.
fn verifying_key(key: &OperatorId) -> Option<VerifyingKey> {
    let bytes = *key.as_bytes();
    if let Some(vk) = KEYS.with(|k| k.borrow().get(&bytes).copied()) {
        return Some(vk);
    }
    let vk = VerifyingKey::from_bytes(&bytes).ok()?;
    KEYS.with(|k| {
        let mut k = k.borrow_mut();
        if k.len() >= KEY_CACHE_MAX {
            k.clear();
        }
        k.insert(bytes, vk);
    });
    Some(vk)
}

/// From now on, this thread remembers (up to `capacity`, then starts over) every
/// signature that verified, in a memo of its own; `0` turns it off. A shorthand for
/// [`crate::memo::use_on_this_thread`] with a new [`crate::memo::CryptoMemo`]; production
/// nodes do not use one (each verifies a given signature about once).
pub fn remember_verified_signatures(capacity: usize) {
    crate::memo::use_on_this_thread((capacity > 0).then(|| crate::memo::CryptoMemo::new(capacity)));
}

/// An X25519 key pair for opening sealed payloads.
#[derive(Clone)]
pub struct SealKeyPair {
    seed: [u8; 32],
    secret: <SealKem as hpke::Kem>::PrivateKey,
    public: EncPublicKey,
}

impl SealKeyPair {
    /// Derives the key pair from a 32-byte seed with HPKE's `DeriveKeyPair` (RFC 9180 §7.1.3).
    pub fn from_seed(seed: [u8; 32]) -> Self {
        let (secret, public) = SealKem::derive_keypair(&seed);
        let mut pk = [0u8; 32];
        pk.copy_from_slice(&public.to_bytes());
        SealKeyPair {
            seed,
            secret,
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

    pub(crate) fn secret(&self) -> &<SealKem as hpke::Kem>::PrivateKey {
        &self.secret
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
    fn remembered_signatures_still_refuse_every_variation() {
        // Each test runs on its own thread, so the memo is this test's alone.
        let memo = crate::memo::CryptoMemo::new(2);
        crate::memo::use_on_this_thread(Some(memo.clone()));
        let id = SigningIdentity::from_seed([1; 32]);
        let other = SigningIdentity::from_seed([2; 32]);
        let sig = id.sign(b"a", b"msg");
        for _ in 0..2 {
            assert!(verify_labelled("t", &id.id(), b"a", b"msg", &sig).is_ok());
        }
        assert_eq!(memo.verified_len(), 1);
        let mut forged = sig;
        forged[5] ^= 1;
        assert!(verify_labelled("t", &id.id(), b"a", b"msg", &forged).is_err());
        assert!(verify_labelled("t", &id.id(), b"b", b"msg", &sig).is_err());
        assert!(verify_labelled("t", &id.id(), b"a", b"msh", &sig).is_err());
        assert!(verify_labelled("t", &other.id(), b"a", b"msg", &sig).is_err());
        // Failures are not remembered; past the capacity the memo starts over.
        assert_eq!(memo.verified_len(), 1);
        for m in [&b"m2"[..], b"m3"] {
            let s = id.sign(b"a", m);
            assert!(verify_labelled("t", &id.id(), b"a", m, &s).is_ok());
        }
        assert_eq!(memo.verified_len(), 1);
        remember_verified_signatures(0);
        assert!(!crate::memo::active());
    }

    #[test]
    fn cached_keys_verify_like_fresh_ones() {
        let id = SigningIdentity::from_seed([7; 32]);
        let sig = id.sign(b"a", b"msg");
        // Past the cache's capacity and back: answers do not change.
        for n in 0..(KEY_CACHE_MAX + 10) {
            let mut seed = [1u8; 32];
            seed[..8].copy_from_slice(&(n as u64).to_le_bytes());
            let other = SigningIdentity::from_seed(seed).id();
            assert!(verify_labelled("t", &other, b"a", b"msg", &sig).is_err());
            assert!(verify_labelled("t", &id.id(), b"a", b"msg", &sig).is_ok());
        }
        // Bytes that are not a curve point are refused, every time.
        let not_a_point = (0u8..=255)
            .map(|b| {
                let mut k = [b; 32];
                k[31] &= 0x7f;
                OperatorId(k)
            })
            .find(|k| VerifyingKey::from_bytes(k.as_bytes()).is_err())
            .unwrap();
        for _ in 0..2 {
            assert!(verify_labelled("t", &not_a_point, b"a", b"msg", &sig).is_err());
        }
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
