//! # renkei-protocol
//!
//! What another implementation needs to interoperate with Renkei: identifiers, canonical
//! signed CBOR envelopes, sealed payloads, receipts, the operator roster and office bindings,
//! node-to-node wire messages, and the standard-spec CSV (ケアプラン標準仕様) checks.
//!
//! No IO, no async, no clock reads, no randomness of its own: time is an argument and
//! randomness is handed in as bytes.
//!
//! # Layout
//!
//! - [`ids`]: office, insurer, insured, service-kind, operator and envelope identifiers.
//! - [`csv`]: the standard-spec CSV files: layouts, names, MS932 decoding, validation,
//!   send units.

pub mod csv;
pub mod ids;

/// The envelope format version this build writes and accepts.
pub const ENVELOPE_VERSION: u64 = 1;
