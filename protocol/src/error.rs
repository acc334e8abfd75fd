//! Errors of the protocol crate, one type per concern: decoding bytes, verifying signatures,
//! sealing and opening payloads.

use crate::ids::IdError;

/// Bytes that are not a valid encoding of the expected protocol value.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DecodeError {
    /// The input is longer than the bound for this kind of value.
    #[error("{what} is {len} bytes, over the limit of {max} bytes")]
    TooLarge {
        /// What was being decoded.
        what: &'static str,
        /// Its length.
        len: usize,
        /// The bound.
        max: usize,
    },
    /// The input holds more items than the bound for this kind of value.
    #[error("{what}: {count}, over the limit of {max}")]
    TooMany {
        /// What was counted.
        what: &'static str,
        /// How many (at least; counting stops past the bound).
        count: usize,
        /// The bound.
        max: usize,
    },
    /// Not well-formed CBOR (or trailing bytes after the value).
    #[error("{what} is not well-formed CBOR: {detail}")]
    Malformed {
        /// What was being decoded.
        what: &'static str,
        /// Decoder detail.
        detail: String,
    },
    /// Well-formed CBOR that is not the canonical encoding of its value.
    #[error(
        "{what} is not in canonical CBOR form (shortest integers and lengths, definite lengths, no tags)"
    )]
    NonCanonical {
        /// What was being decoded.
        what: &'static str,
    },
    /// A version this implementation does not speak.
    #[error("{what} has version {got}; this node speaks version {want}")]
    UnknownVersion {
        /// What was being decoded.
        what: &'static str,
        /// Version found.
        got: u64,
        /// Version expected.
        want: u64,
    },
    /// A field of the wrong shape.
    #[error("{what}: field {field} must be {expected}")]
    Field {
        /// What was being decoded.
        what: &'static str,
        /// Field name.
        field: &'static str,
        /// Expected shape.
        expected: &'static str,
    },
    /// A field whose value breaks an identifier rule.
    #[error("{what}: field {field}: {source}")]
    Id {
        /// What was being decoded.
        what: &'static str,
        /// Field name.
        field: &'static str,
        /// The identifier rule that failed.
        source: IdError,
    },
}

/// A signature or trust check that failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum VerifyError {
    /// The signature does not verify under the claimed key.
    #[error("{what}: signature does not verify under key {key}")]
    BadSignature {
        /// What was verified.
        what: &'static str,
        /// The key (base32 operator id form).
        key: String,
    },
    /// The signer is not an operator of the roster (or not at that time).
    #[error("{what}: signer {key} is not a roster operator valid at {at_ms} ms")]
    UnknownSigner {
        /// What was verified.
        what: &'static str,
        /// The key.
        key: String,
        /// The time checked.
        at_ms: u64,
    },
    /// The roster is signed by a key other than the federation authority's.
    #[error("roster is signed by {got}, expected federation authority {want}")]
    WrongAuthority {
        /// Key found.
        got: String,
        /// Key expected.
        want: String,
    },
    /// A receipt signed by an operator that cannot make its statement (e.g. `Delivered`
    /// signed by someone other than the destination operator).
    #[error(
        "receipt {receipt} about envelope {envelope} is signed by {signer}, but only the {role} operator {expected} may make that statement"
    )]
    WrongSigner {
        /// The receipt kind.
        receipt: &'static str,
        /// The envelope it is about.
        envelope: String,
        /// Who signed it.
        signer: String,
        /// The role that must sign it ("destination" or "origin").
        role: &'static str,
        /// The key of the operator in that role (as named in the envelope header).
        expected: String,
    },
    /// Stated facts that do not agree (e.g. a proof whose receipts name another envelope).
    #[error("{0}")]
    Mismatch(String),
    /// The signed bytes could not be decoded.
    #[error(transparent)]
    Decode(#[from] DecodeError),
}

/// Sealing or opening a payload failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SealError {
    /// HPKE refused (wrong key, changed header, corrupted ciphertext).
    #[error("cannot open sealed payload: wrong key, altered header or corrupted ciphertext")]
    Open,
    /// The sealed payload is too short to hold an encapsulated key and a tag.
    #[error("sealed payload is {0} bytes, too short")]
    Short(usize),
    /// HPKE refused to seal (bad recipient key).
    #[error("cannot seal to this key: {0}")]
    Seal(String),
    /// The opened files do not match the header's list.
    #[error("opened payload does not match the header: {0}")]
    Content(String),
    /// The opened plaintext is not a valid payload encoding.
    #[error(transparent)]
    Decode(#[from] DecodeError),
}
