//! # renkei-protocol
//!
//! What another implementation needs to interoperate with Renkei: identifiers, canonical
//! signed CBOR envelopes, sealed payloads, receipts, the operator roster and office bindings,
//! node-to-node wire messages, proof bundles, and the standard-spec CSV (ケアプラン標準仕様)
//! checks. The byte-level specification is `docs/PROTOCOL.md`.
//!
//! No IO, no async, no clock reads, no thread-locals, no randomness of its own: time is an
//! argument, randomness is handed in as bytes, and every function's answer depends only on
//! its arguments.
//!
//! # Layout
//!
//! - [`ids`]: office, insurer, insured, service-kind, operator and envelope identifiers.
//! - [`cbor`]: canonical CBOR encoding and strict decoding.
//! - [`keys`]: operator signing identity and sealing key pair.
//! - [`seal`]: HPKE sealing of payloads.
//! - [`envelope`]: signed, sealed send units.
//! - [`receipt`]: signed statements about envelopes.
//! - [`roster`]: the federation roster and office bindings.
//! - [`proof`]: proof bundles for auditors.
//! - [`export`]: an office's monthly audit export (proof bundles of every unit).
//! - [`wire`]: node-to-node request/response messages.
//! - [`rng`]: the seeded random source handed to the core.
//! - [`limits`]: every size bound.
//! - [`error`]: decode, verify and seal errors.
//! - [`csv`]: the standard-spec CSV files: layouts, names, MS932 decoding, validation,
//!   send units.

pub mod cbor;
pub mod csv;
pub mod envelope;
pub mod error;
pub mod export;
pub mod ids;
pub mod jst;
pub mod keys;
pub mod limits;
pub mod proof;
pub mod receipt;
pub mod rng;
pub mod roster;
pub mod seal;
pub mod wire;

pub use envelope::ENVELOPE_VERSION;
