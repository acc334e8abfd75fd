//! Named bounds on everything that crosses a node boundary. A value over its bound is
//! refused with [`crate::error::DecodeError::TooLarge`] (or a wire refusal), never dropped
//! silently.

/// Maximum encoded size of one envelope (header + sealed payload + signature).
pub const ENVELOPE_BYTES_MAX: usize = 8 * 1024 * 1024;
/// Maximum encoded size of an envelope header.
pub const HEADER_BYTES_MAX: usize = 64 * 1024;
/// Maximum number of files in one send unit.
pub const FILES_PER_ENVELOPE_MAX: usize = 64;
/// Maximum length of a file name, in bytes.
pub const FILE_NAME_BYTES_MAX: usize = 128;
/// Maximum number of envelopes in one delivery batch.
pub const BATCH_ENVELOPES_MAX: usize = 64;
/// Maximum total envelope bytes in one delivery batch.
pub const BATCH_BYTES_MAX: usize = 16 * 1024 * 1024;
/// Maximum encoded size of one node-to-node message.
pub const MESSAGE_BYTES_MAX: usize = BATCH_BYTES_MAX + 1024 * 1024;
/// Maximum encoded size of a signed receipt.
pub const RECEIPT_BYTES_MAX: usize = 4 * 1024;
/// Maximum length of a rejection reason text, in bytes.
pub const REASON_TEXT_BYTES_MAX: usize = 1024;
/// Maximum number of receipts in one message.
pub const RECEIPTS_PER_MESSAGE_MAX: usize = 1024;
/// Maximum number of bindings in one directory-sync answer.
pub const BINDINGS_PER_MESSAGE_MAX: usize = 1024;
/// Maximum encoded size of a signed binding.
pub const BINDING_BYTES_MAX: usize = 4 * 1024;
/// Maximum encoded size of a signed roster.
pub const ROSTER_BYTES_MAX: usize = 1024 * 1024;
/// Maximum number of operators in a roster.
pub const ROSTER_OPERATORS_MAX: usize = 4096;
/// Maximum encoded size of a proof bundle.
pub const PROOF_BYTES_MAX: usize = 1024 * 1024;
