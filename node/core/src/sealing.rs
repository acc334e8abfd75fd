//! The prepare stage for the origin's side of a submission: sealing the unit to its
//! destination, signing the envelope and signing the origin's Accepted (hop 0) receipt.
//!
//! The core decides everything first (who sends to whom, the envelope id and ephemeral
//! seed drawn from its unit stream, the header with the core's time) and hands the pure
//! work out as [`Effect::Seal`](super::io::Effect::Seal) with a [`SealJob`]. The driver
//! runs [`SealJob::run`] where it is cheapest — a worker beside the core in production, the
//! simulation thread in simnet, the test network inline — and feeds the result back as
//! [`Input::Sealed`](super::io::Input::Sealed); only then does the core store the envelope,
//! the sent record and the receipt, and (after that batch's commit) answer the office. One
//! function for every driver, so what simnet runs is what production runs.

use std::sync::Arc;

use renkei_protocol::envelope::{Digest32, Envelope, Header};
use renkei_protocol::ids::EnvelopeId;
use renkei_protocol::keys::OperatorKeys;
use renkei_protocol::receipt::{Receipt, ReceiptKind, SignedReceipt};
use renkei_protocol::seal::SealTables;

/// What the core decided for one submission, for the prepare stage to seal and sign.
#[derive(Debug, Clone)]
pub struct SealJob {
    pub(crate) header: Header,
    pub(crate) files: Vec<Vec<u8>>,
    pub(crate) ephemeral_seed: [u8; 32],
    pub(crate) keys: Arc<OperatorKeys>,
    /// The core's tables of frequent recipients (shared: jobs run on any thread).
    pub(crate) tables: Arc<SealTables>,
}

/// A sealed and signed unit, made only by [`SealJob::run`]: the core trusts that the
/// envelope and receipt are those of the header it decided.
#[derive(Debug, Clone)]
pub struct Sealed {
    /// The envelope id the job was for.
    pub(crate) id: EnvelopeId,
    pub(crate) result: Result<Box<SealedUnit>, String>,
}

#[derive(Debug, Clone)]
pub(crate) struct SealedUnit {
    pub(crate) env: Envelope,
    /// The whole header the envelope was sealed under (the origin keeps it: a version-2
    /// envelope's cleartext does not hold it).
    pub(crate) header: Header,
    pub(crate) encoded: Vec<u8>,
    pub(crate) digest: Digest32,
    /// The origin's Accepted (hop 0) receipt, signed at the header's time.
    pub(crate) accepted: SignedReceipt,
}

impl SealJob {
    /// Seals the files to the header's destination key, signs the envelope and the
    /// Accepted receipt. Pure and CPU-bound (an X25519 agreement and two Ed25519
    /// signatures, plus the payload's cipher over every byte).
    pub fn run(self) -> Sealed {
        let SealJob {
            header,
            files,
            ephemeral_seed,
            keys,
            tables,
        } = self;
        let (id, at_ms) = (header.id, header.created_at_ms);
        let bytes: Vec<&[u8]> = files.iter().map(Vec::as_slice).collect();
        let whole = header.clone();
        let result = Envelope::seal_and_sign_by(&tables, header, &bytes, &keys, ephemeral_seed)
            .map(|env| {
                let digest = env.digest();
                let accepted = Receipt {
                    envelope: id,
                    digest,
                    kind: ReceiptKind::Accepted { hop: 0 },
                    node: keys.id(),
                    at_ms,
                }
                .sign(&keys.identity);
                Box::new(SealedUnit {
                    header: whole,
                    encoded: env.encode(),
                    env,
                    digest,
                    accepted,
                })
            })
            .map_err(|e| format!("sealing failed: {e}"));
        Sealed { id, result }
    }

    /// Bytes of the unit's files.
    pub fn bytes(&self) -> usize {
        self.files.iter().map(Vec::len).sum()
    }
}
