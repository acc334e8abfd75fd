//! Remembered answers of pure cryptographic functions, for simulation.
//!
//! In simnet fifty simulated operators share one thread: the relay and the destination
//! verify the very same envelope signature, every operator verifies the same bindings and
//! receipts, and the destination opens what the origin sealed a moment before. Verifying a
//! signature and opening a sealed payload are pure functions of their inputs, so an answer
//! known once is the answer. A [`CryptoMemo`] holds such answers; a thread uses one after
//! [`use_on_this_thread`]. A thread without a memo (every production thread) computes
//! everything itself.
//!
//! Two kinds of answer, each keyed by SHA-256 of *every* input:
//! - *verified*: (key, label, message, signature) verifies. Remembered when a verification
//!   succeeds, and when this thread *signs*: a signature made with the secret key of `key`
//!   over exactly these bytes verifies under `key` (Ed25519's correctness; `verify_strict`
//!   refuses only non-canonical or small-order values, which signing does not produce).
//!   Failures are never remembered. Kept up to a capacity, then the set starts over.
//! - *opened*: the plaintext of a sealed payload for (recipient public key, associated
//!   data, sealed bytes), remembered when this thread *seals* (HPKE's correctness: the
//!   recipient's open of exactly these bytes returns the plaintext) and handed out once.
//!
//! - *answers*: the result of some other pure, deterministic function of bytes (e.g. the
//!   node's CSV checks of a send unit, which the destination repeats on exactly the bytes
//!   the origin checked), remembered by whoever computed it under a digest of a label and
//!   every input, and handed out once ([`remember_answer`], [`take_answer`]).
//!
//! - *made ahead*: a signature or a sealed payload that a helper thread computed before the
//!   thread that needs it asked ([`use_ahead_on_this_thread`]): Ed25519 signing is
//!   deterministic (RFC 8032: the same key over the same bytes gives the same signature),
//!   and sealing is deterministic given its ephemeral seed, so a signature keyed by (public
//!   key, label, message) and a sealed payload keyed by (recipient, associated data,
//!   plaintext, ephemeral seed) are the very bytes the asking thread would compute. Handed
//!   out once; at most [`AHEAD_MAX`] wait (then the maps start over: a guess that was
//!   never asked for is dropped).
//!
//! Any altered byte — a forged signature, a tampered payload, another header, another
//! key — changes the digest, so the real computation runs and refuses it as in production.
//! What a memo skips is only the curve arithmetic whose answer is known; the protocol's
//! unit tests, which run without one, check that arithmetic.

// Hash sets and maps here are only ever looked up, inserted into, removed from and
// cleared, never iterated: no order is observable, so determinism does not need B-trees
// (and a national run looks up millions of digests).
#![allow(clippy::disallowed_types)]

use std::any::Any;
use std::collections::{HashMap, HashSet};
use std::hash::{BuildHasherDefault, Hasher};
use std::sync::{Arc, Mutex, MutexGuard};

use sha2::Digest;

/// Plaintexts sealed and not yet opened, at most (then the map starts over; later opens of
/// the forgotten ones compute).
const OPENED_MAX: usize = 16_384;
/// Other answers kept, at most (then the map starts over).
const ANSWERS_MAX: usize = 16_384;
/// Signatures or sealed payloads made ahead and not yet asked for, at most each (then that
/// map starts over).
pub const AHEAD_MAX: usize = 65_536;

/// Shared, remembered answers (see the module docs). Cloning shares the same memo.
#[derive(Clone, Debug)]
pub struct CryptoMemo(Arc<Mutex<Inner>>, Arc<Mutex<Ahead>>);

/// What a helper thread made ahead (its own lock: the helper fills it while the asking
/// thread looks up verified signatures).
#[derive(Default)]
struct Ahead {
    /// `None` while the helper is making it.
    signed: HashMap<[u8; 32], Option<[u8; 64]>, DigestBuild>,
    /// A sealed payload with its SHA-256 (an envelope signs it; the helper that sealed
    /// the bytes hashes them too, so the asking thread does not).
    sealed: AheadMap<Sealed>,
    signed_taken: u64,
    sealed_taken: u64,
    signed_made: u64,
    sealed_made: u64,
    /// Made by an asking thread itself: not made ahead, or not in time.
    signed_missed: u64,
    sealed_missed: u64,
}

impl std::fmt::Debug for Ahead {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Ahead")
            .field("signed", &self.signed.len())
            .field("sealed", &self.sealed.len())
            .finish()
    }
}

/// Hashes a SHA-256 digest by its first eight bytes: they are already uniformly
/// distributed, and a set of millions of digests (one per signature of a national run) is
/// looked up once per verification.
#[derive(Default)]
struct DigestHasher(u64);

impl Hasher for DigestHasher {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        let mut w = [0u8; 8];
        let n = bytes.len().min(8);
        w[..n].copy_from_slice(&bytes[..n]);
        self.0 ^= u64::from_le_bytes(w);
    }
    // The length prefix a slice hashes first says nothing: every key is 32 bytes.
    fn write_usize(&mut self, _: usize) {}
}

type DigestBuild = BuildHasherDefault<DigestHasher>;

struct Inner {
    capacity: usize,
    verified: HashSet<[u8; 32], DigestBuild>,
    /// Plaintext, and whether the associated data pins it (see [`remember_opened`]).
    opened: HashMap<[u8; 32], (Vec<u8>, bool), DigestBuild>,
    opened_taken: u64,
    /// Answer and how many more times it may be handed out.
    answers: HashMap<[u8; 32], (Box<dyn Any + Send>, u32), DigestBuild>,
    answers_taken: u64,
}

impl std::fmt::Debug for Inner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Inner")
            .field("capacity", &self.capacity)
            .field("verified", &self.verified.len())
            .field("opened", &self.opened.len())
            .field("answers", &self.answers.len())
            .finish()
    }
}

impl CryptoMemo {
    /// A memo remembering up to `capacity` verified signatures (≈ 50 bytes each).
    pub fn new(capacity: usize) -> Self {
        CryptoMemo(
            Arc::new(Mutex::new(Inner {
                capacity: capacity.max(1),
                verified: HashSet::with_capacity_and_hasher(
                    capacity.max(1),
                    DigestBuild::default(),
                ),
                opened: HashMap::default(),
                opened_taken: 0,
                answers: HashMap::default(),
                answers_taken: 0,
            })),
            Arc::new(Mutex::new(Ahead::default())),
        )
    }

    fn ahead(&self) -> MutexGuard<'_, Ahead> {
        // Every entry is a complete answer (see `lock`).
        self.1.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Signatures and sealed payloads made ahead and handed out (each saved the asking
    /// thread a signing or a sealing).
    pub fn ahead_taken(&self) -> (u64, u64) {
        let a = self.ahead();
        (a.signed_taken, a.sealed_taken)
    }

    /// Signatures and sealed payloads a helper made ahead (taken or not).
    pub fn ahead_made(&self) -> (u64, u64) {
        let a = self.ahead();
        (a.signed_made, a.sealed_made)
    }

    /// Signatures and sealed payloads the asking threads made themselves, not finding them
    /// made ahead (guessed differently, or not made in time).
    pub fn ahead_missed(&self) -> (u64, u64) {
        let a = self.ahead();
        (a.signed_missed, a.sealed_missed)
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        // A panic elsewhere cannot leave a set or map half-updated in a way that matters:
        // every entry is a complete answer.
        self.0.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Number of verified signatures remembered.
    pub fn verified_len(&self) -> usize {
        self.lock().verified.len()
    }

    /// Opens answered from the memo (each saved a key agreement and a decryption).
    pub fn opened_taken(&self) -> u64 {
        self.lock().opened_taken
    }

    /// Other answers handed out from the memo.
    pub fn answers_taken(&self) -> u64 {
        self.lock().answers_taken
    }
}

thread_local! {
    static CURRENT: std::cell::RefCell<Option<CryptoMemo>> = const { std::cell::RefCell::new(None) };
    static MAKES_AHEAD: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
}

/// This thread uses `memo` from now on (`None`: none, as in production).
pub fn use_on_this_thread(memo: Option<CryptoMemo>) {
    CURRENT.with(|c| *c.borrow_mut() = memo);
    MAKES_AHEAD.with(|a| a.set(false));
}

/// This thread works *ahead* for the threads sharing `memo`: every signature it makes and
/// every payload it seals is kept for them (handed out once, see the module docs), besides
/// what any memo remembers. A helper thread calls this, then signs and seals what it
/// expects another thread to sign and seal soon.
pub fn use_ahead_on_this_thread(memo: CryptoMemo) {
    CURRENT.with(|c| *c.borrow_mut() = Some(memo));
    MAKES_AHEAD.with(|a| a.set(true));
}

fn makes_ahead() -> bool {
    MAKES_AHEAD.with(std::cell::Cell::get)
}

/// Calls `f` with this thread's memo, if it uses one (borrowed: cloning it would touch the
/// shared reference counts, which the helper thread touches too, on every lookup).
fn with_current<R>(f: impl FnOnce(&CryptoMemo) -> R) -> Option<R> {
    CURRENT.with(|c| c.borrow().as_ref().map(f))
}

/// The memo this thread uses, if any (to share it with another thread of the same run).
pub fn this_thread() -> Option<CryptoMemo> {
    CURRENT.with(|c| c.borrow().clone())
}

/// Whether this thread uses a memo.
pub fn active() -> bool {
    CURRENT.with(|c| c.borrow().is_some())
}

/// SHA-256 of everything a verification depends on: key, label, message and signature.
pub(crate) fn verified_digest(key: &[u8], label: &[u8], msg: &[u8], sig: &[u8; 64]) -> [u8; 32] {
    let mut h = sha2::Sha256::new();
    h.update(b"verified");
    h.update(key);
    h.update((label.len() as u64).to_le_bytes());
    h.update(label);
    h.update(sig);
    h.update(msg);
    h.finalize().into()
}

/// SHA-256 of everything an open depends on: the recipient key pair (by its public key),
/// the associated data and the sealed bytes (by their SHA-256, which an envelope computes
/// anyway for its signature).
pub(crate) fn opened_digest(public: &[u8], aad: &[u8], sealed_sha256: &[u8; 32]) -> [u8; 32] {
    let mut h = sha2::Sha256::new();
    h.update(b"opened/v2");
    h.update(public);
    h.update((aad.len() as u64).to_le_bytes());
    h.update(aad);
    h.update(sealed_sha256);
    h.finalize().into()
}

/// Whether this thread's memo holds `digest` as verified.
pub(crate) fn is_verified(digest: &[u8; 32]) -> bool {
    with_current(|m| m.lock().verified.contains(digest)).unwrap_or(false)
}

/// Remembers a verification that succeeded.
pub(crate) fn remember_verified(digest: [u8; 32]) {
    with_current(|m| {
        let mut m = m.lock();
        if m.verified.len() >= m.capacity {
            m.verified.clear();
        }
        m.verified.insert(digest);
    });
}

/// Takes the remembered plaintext of a sealed payload, if any, and whether its associated
/// data pins it.
pub(crate) fn take_opened(digest: &[u8; 32]) -> Option<(Vec<u8>, bool)> {
    with_current(|m| {
        let mut m = m.lock();
        let p = m.opened.remove(digest)?;
        m.opened_taken += 1;
        Some(p)
    })
    .flatten()
}

/// Remembers the plaintext of a payload just sealed; `pinned` when the associated data pins
/// the plaintext down (an envelope header listing the SHA-256 of every file, computed by
/// the sealer from these files: [`crate::seal::seal_digested_pinned`]), so that the opener
/// need not check the files against the header again.
pub(crate) fn remember_opened(digest: [u8; 32], plaintext: Vec<u8>, pinned: bool) {
    with_current(|m| {
        let mut m = m.lock();
        if m.opened.len() >= OPENED_MAX {
            m.opened.clear();
        }
        m.opened.insert(digest, (plaintext, pinned));
    });
}

/// Remembers `value`, the answer of a pure function whose label and every input
/// `digest` covers, to be handed out once (nothing without a memo).
pub fn remember_answer<T: Any + Send>(digest: [u8; 32], value: T) {
    remember_answer_for(digest, value, 1);
}

/// Remembers `value` as [`remember_answer`] does, to be handed out `uses` times (a helper
/// thread that checked ahead what two threads of a simulation will both check).
pub fn remember_answer_for<T: Any + Send>(digest: [u8; 32], value: T, uses: u32) {
    with_current(|m| {
        let mut m = m.lock();
        if m.answers.len() >= ANSWERS_MAX {
            m.answers.clear();
        }
        m.answers.insert(digest, (Box::new(value), uses.max(1)));
    });
}

/// Takes the answer remembered under `digest`, if there is one of type `T` (a copy while it
/// may be handed out again).
pub fn take_answer<T: Any + Send + Clone>(digest: &[u8; 32]) -> Option<T> {
    with_current(|m| {
        let mut m = m.lock();
        let (a, uses) = m.answers.get_mut(digest)?;
        let value = if *uses > 1 {
            *uses -= 1;
            a.downcast_ref::<T>()?.clone()
        } else {
            let (a, _) = m.answers.remove(digest)?;
            *a.downcast::<T>().ok()?
        };
        m.answers_taken += 1;
        Some(value)
    })
    .flatten()
}

/// SHA-256 of everything a signature depends on: the signer's public key, label and
/// message (Ed25519 signing is deterministic).
pub(crate) fn signed_digest(key: &[u8], label: &[u8], msg: &[u8]) -> [u8; 32] {
    let mut h = sha2::Sha256::new();
    h.update(b"signed");
    h.update(key);
    h.update((label.len() as u64).to_le_bytes());
    h.update(label);
    h.update(msg);
    h.finalize().into()
}

/// SHA-256 of everything a sealing depends on: recipient, associated data, plaintext and
/// ephemeral seed.
pub(crate) fn sealed_digest(
    recipient: &[u8],
    aad: &[u8],
    plaintext: &[u8],
    seed: &[u8; 32],
) -> [u8; 32] {
    seal_key(b"sealed", recipient, aad, seed, plaintext)
}

/// The memo key of a seal whose plaintext `aad` pins down
/// ([`crate::seal::seal_digested_pinned`]); never equal to a [`sealed_digest`] key.
pub(crate) fn sealed_pinned_digest(recipient: &[u8], aad: &[u8], seed: &[u8; 32]) -> [u8; 32] {
    seal_key(b"sealed, pinned by the aad", recipient, aad, seed, &[])
}

fn seal_key(tag: &[u8], recipient: &[u8], aad: &[u8], seed: &[u8; 32], rest: &[u8]) -> [u8; 32] {
    let mut h = sha2::Sha256::new();
    h.update(tag);
    h.update(recipient);
    h.update(seed);
    h.update((aad.len() as u64).to_le_bytes());
    h.update(aad);
    h.update(rest);
    h.finalize().into()
}

/// How long a thread waits for an answer the helper is making before it makes it itself
/// (making one takes tens of microseconds).
const AHEAD_WAIT: std::time::Duration = std::time::Duration::from_millis(1);

type AheadMap<T> = HashMap<[u8; 32], Option<T>, DigestBuild>;

/// One of [`Ahead`]'s maps with its counters of answers taken, made and missed.
/// Sealed bytes and their SHA-256.
pub(crate) type Sealed = (Vec<u8>, [u8; 32]);

type AheadSlot<'a, T> = (&'a mut AheadMap<T>, &'a mut u64, &'a mut u64, &'a mut u64);

/// The one protocol of answers made ahead, over either map of [`Ahead`].
fn made_ahead<T: Clone, E>(
    memo: &CryptoMemo,
    map: fn(&mut Ahead) -> AheadSlot<'_, T>,
    d: [u8; 32],
    make: impl FnOnce() -> Result<T, E>,
) -> Result<(T, bool), E> {
    if makes_ahead() {
        {
            let mut a = memo.ahead();
            let (m, _, _, _) = map(&mut a);
            if m.len() >= AHEAD_MAX {
                m.clear();
            }
            m.insert(d, None);
        }
        let made = make();
        let mut a = memo.ahead();
        let (m, _, made_count, _) = map(&mut a);
        match &made {
            Ok(v) => {
                m.insert(d, Some(v.clone()));
                *made_count += 1;
            }
            Err(_) => {
                m.remove(&d);
            }
        }
        return made.map(|v| (v, false));
    }
    // Started at the first sight of the answer being made (reading the clock on every ask
    // cost 1 % of a simulation).
    let mut waiting: Option<std::time::Instant> = None;
    loop {
        let mut a = memo.ahead();
        let (m, taken, _, missed) = map(&mut a);
        match m.get(&d) {
            // Being made: waiting is shorter than making it again.
            Some(None)
                if waiting
                    .get_or_insert_with(std::time::Instant::now)
                    .elapsed()
                    < AHEAD_WAIT => {}
            Some(Some(_)) => {
                if let Some(Some(v)) = m.remove(&d) {
                    *taken += 1;
                    return Ok((v, true));
                }
            }
            _ => {
                *missed += 1;
                break;
            }
        }
        drop(a);
        std::hint::spin_loop();
    }
    make().map(|v| (v, false))
}

/// With a memo: on a thread working ahead, `make()`'s signature is kept under `digest` for
/// the others; on any other thread, a signature made ahead under `digest` is taken instead
/// of calling `make` (waiting for it while the helper is making it). Without a memo:
/// `make()`. Also says whether the signature was taken (made on another thread, which
/// remembered it as verified).
pub(crate) fn signed_ahead(
    digest: impl FnOnce() -> [u8; 32],
    make: impl FnOnce() -> [u8; 64],
) -> ([u8; 64], bool) {
    let Some(m) = this_thread() else {
        return (make(), false);
    };
    let made: Result<_, std::convert::Infallible> = made_ahead(
        &m,
        |a| {
            (
                &mut a.signed,
                &mut a.signed_taken,
                &mut a.signed_made,
                &mut a.signed_missed,
            )
        },
        digest(),
        || Ok(make()),
    );
    match made {
        Ok(v) => v,
        Err(never) => match never {},
    }
}

/// [`signed_ahead`] for sealed payloads (a payload taken was remembered as opened by the
/// thread that sealed it): the sealed bytes with their SHA-256, computed by whichever
/// thread made them.
pub(crate) fn sealed_ahead<E>(
    digest: impl FnOnce() -> [u8; 32],
    make: impl FnOnce() -> Result<Vec<u8>, E>,
) -> Result<(Sealed, bool), E> {
    let make = || {
        make().map(|sealed| {
            let sha = crate::envelope::sha256(&sealed);
            (sealed, sha)
        })
    };
    let Some(m) = this_thread() else {
        return Ok((make()?, false));
    };
    made_ahead(
        &m,
        |a| {
            (
                &mut a.sealed,
                &mut a.sealed_taken,
                &mut a.sealed_made,
                &mut a.sealed_missed,
            )
        },
        digest(),
        make,
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::SealError;
    use crate::keys::{SealKeyPair, SigningIdentity, verify_labelled};
    use crate::seal::{open, seal};

    // Each test runs on its own thread, so the memo it installs is its alone.

    #[test]
    fn a_signature_made_here_is_known_and_every_variation_still_refused() {
        let memo = CryptoMemo::new(16);
        use_on_this_thread(Some(memo.clone()));
        let id = SigningIdentity::from_seed([3; 32]);
        let other = SigningIdentity::from_seed([4; 32]);
        let sig = id.sign(b"a", b"msg");
        assert_eq!(memo.verified_len(), 1, "signing remembers the signature");
        assert!(verify_labelled("t", &id.id(), b"a", b"msg", &sig).is_ok());
        assert_eq!(memo.verified_len(), 1, "verifying it found it");
        let mut forged = sig;
        forged[9] ^= 1;
        assert!(verify_labelled("t", &id.id(), b"a", b"msg", &forged).is_err());
        assert!(verify_labelled("t", &id.id(), b"b", b"msg", &sig).is_err());
        assert!(verify_labelled("t", &id.id(), b"a", b"msG", &sig).is_err());
        assert!(verify_labelled("t", &other.id(), b"a", b"msg", &sig).is_err());
        assert_eq!(memo.verified_len(), 1, "failures are not remembered");
        use_on_this_thread(None);
    }

    #[test]
    fn a_payload_sealed_here_opens_from_the_memo_once_and_alterations_still_fail() {
        let memo = CryptoMemo::new(16);
        use_on_this_thread(Some(memo.clone()));
        let k = SealKeyPair::from_seed([9; 32]);
        let sealed = seal(&k.public(), b"hdr", b"care plan", [1; 32]).unwrap();
        assert_eq!(open(&k, b"hdr", &sealed).unwrap(), b"care plan");
        assert_eq!(memo.opened_taken(), 1, "the open was answered by the memo");
        // Taken, not copied: a second open computes, with the same answer.
        assert_eq!(open(&k, b"hdr", &sealed).unwrap(), b"care plan");
        assert_eq!(memo.opened_taken(), 1);
        let sealed = seal(&k.public(), b"hdr", b"care plan", [2; 32]).unwrap();
        assert_eq!(open(&k, b"hdR", &sealed), Err(SealError::Open));
        let wrong = SealKeyPair::from_seed([8; 32]);
        assert_eq!(open(&wrong, b"hdr", &sealed), Err(SealError::Open));
        let mut bad = sealed.clone();
        bad[40] ^= 1;
        assert_eq!(open(&k, b"hdr", &bad), Err(SealError::Open));
        assert_eq!(memo.opened_taken(), 1, "no altered input was answered");
        assert_eq!(open(&k, b"hdr", &sealed).unwrap(), b"care plan");
        assert_eq!(memo.opened_taken(), 2);
        use_on_this_thread(None);
    }

    #[test]
    fn what_a_helper_made_ahead_is_taken_once_byte_for_byte_and_nothing_else_is() {
        let memo = CryptoMemo::new(64);
        let id = SigningIdentity::from_seed([3; 32]);
        let k = SealKeyPair::from_seed([9; 32]);
        // What a thread without any memo computes.
        use_on_this_thread(None);
        let sig_plain = id.sign(b"a", b"msg");
        let sealed_plain = seal(&k.public(), b"hdr", b"care plan", [7; 32]).unwrap();
        // A helper thread makes them ahead.
        let (m, i) = (memo.clone(), id.clone());
        let pk = k.public();
        std::thread::spawn(move || {
            use_ahead_on_this_thread(m);
            i.sign(b"a", b"msg");
            seal(&pk, b"hdr", b"care plan", [7; 32]).unwrap();
        })
        .join()
        .unwrap();
        use_on_this_thread(Some(memo.clone()));
        // A different message, label, key or seed is computed, not taken.
        assert_eq!(id.sign(b"a", b"msG"), {
            use_on_this_thread(None);
            let s = id.sign(b"a", b"msG");
            use_on_this_thread(Some(memo.clone()));
            s
        });
        let other = SigningIdentity::from_seed([4; 32]);
        other.sign(b"a", b"msg");
        seal(&k.public(), b"hdr", b"care plan", [8; 32]).unwrap();
        assert_eq!(memo.ahead_taken(), (0, 0));
        // The same inputs are taken, and are what computing gives.
        assert_eq!(id.sign(b"a", b"msg"), sig_plain);
        assert_eq!(
            seal(&k.public(), b"hdr", b"care plan", [7; 32]).unwrap(),
            sealed_plain
        );
        assert_eq!(memo.ahead_taken(), (1, 1));
        // Once: the next asks compute (the same bytes).
        assert_eq!(id.sign(b"a", b"msg"), sig_plain);
        assert_eq!(
            seal(&k.public(), b"hdr", b"care plan", [7; 32]).unwrap(),
            sealed_plain
        );
        assert_eq!(memo.ahead_taken(), (1, 1));
        // What the helper made is known verified and sealed-to-open as if made here.
        assert!(verify_labelled("t", &id.id(), b"a", b"msg", &sig_plain).is_ok());
        assert_eq!(open(&k, b"hdr", &sealed_plain).unwrap(), b"care plan");
        use_on_this_thread(None);
    }

    #[test]
    fn a_seal_pinned_by_its_aad_is_taken_without_building_the_plaintext() {
        use crate::seal::seal_digested_pinned;
        let memo = CryptoMemo::new(64);
        let k = SealKeyPair::from_seed([9; 32]);
        let pk = k.public();
        use_on_this_thread(None);
        let plain = seal_digested_pinned(&pk, b"hdr", || b"care plan".to_vec(), [7; 32]).unwrap();
        assert_eq!(plain.0, seal(&pk, b"hdr", b"care plan", [7; 32]).unwrap());
        let m = memo.clone();
        std::thread::spawn(move || {
            use_ahead_on_this_thread(m);
            seal_digested_pinned(&pk, b"hdr", || b"care plan".to_vec(), [7; 32]).unwrap();
        })
        .join()
        .unwrap();
        use_on_this_thread(Some(memo.clone()));
        // Another seed or aad is made here, from the plaintext.
        let mut built = 0;
        seal_digested_pinned(
            &pk,
            b"hdr2",
            || {
                built += 1;
                b"care plan".to_vec()
            },
            [7; 32],
        )
        .unwrap();
        assert_eq!((built, memo.ahead_taken().1), (1, 0));
        // The same is taken: the same bytes and digest, the plaintext never built.
        let taken = seal_digested_pinned(
            &pk,
            b"hdr",
            || {
                built += 1;
                b"care plan".to_vec()
            },
            [7; 32],
        )
        .unwrap();
        assert_eq!(taken, plain);
        assert_eq!((built, memo.ahead_taken().1), (1, 1));
        // The destination opens it from what the helper remembered, told that the aad pins
        // it (an envelope then skips checking its files against the header again).
        let opened =
            crate::seal::open_digested(&k, b"hdr", &taken.0, || crate::envelope::sha256(&taken.0))
                .unwrap();
        assert_eq!(opened, (b"care plan".to_vec(), true));
        // A seal whose plaintext the aad does not pin is opened unpinned.
        let loose = seal(&pk, b"hdr", b"care plan", [5; 32]).unwrap();
        let opened =
            crate::seal::open_digested(&k, b"hdr", &loose, || crate::envelope::sha256(&loose))
                .unwrap();
        assert_eq!(opened, (b"care plan".to_vec(), false));
        use_on_this_thread(None);
    }

    #[test]
    fn an_answer_remembered_for_two_uses_is_handed_out_twice() {
        let memo = CryptoMemo::new(16);
        use_on_this_thread(Some(memo.clone()));
        remember_answer_for([1; 32], String::from("checked"), 2);
        assert_eq!(take_answer::<String>(&[1; 32]).as_deref(), Some("checked"));
        assert_eq!(take_answer::<String>(&[1; 32]).as_deref(), Some("checked"));
        assert_eq!(take_answer::<String>(&[1; 32]), None);
        assert_eq!(memo.answers_taken(), 2);
        use_on_this_thread(None);
    }

    #[test]
    fn without_a_memo_nothing_is_remembered() {
        use_on_this_thread(None);
        let memo = CryptoMemo::new(16);
        let id = SigningIdentity::from_seed([5; 32]);
        let sig = id.sign(b"a", b"msg");
        assert!(verify_labelled("t", &id.id(), b"a", b"msg", &sig).is_ok());
        assert_eq!(memo.verified_len(), 0);
        assert!(!active());
    }
}
