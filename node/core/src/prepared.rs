//! The prepare stage for envelopes from peers: decode, origin signature, and — for an
//! envelope to this node — open and the standard-spec check, all pure and outside the
//! core's thread in production. The core takes a [`PreparedEnvelope`] and only decides
//! (dedup, roster, time bounds, homes, relay or deliver) and writes.
//!
//! The core makes one itself (on its own thread) only for a raw `Request::Deliver` handed
//! to it directly, as simnet and the core's tests do: it is the same function, so what
//! they exercise is what production runs.

use renkei_protocol::envelope::{Envelope, Header};
use renkei_protocol::error::DecodeError;
use renkei_protocol::keys::{OperatorKeys, SignatureCheck};
use renkei_protocol::receipt::{RejectCode, SignedReceipt};
use renkei_protocol::wire::{HopOutcome, Response};

use super::unit::{UnitFinding, UnitInfo, check_unit};

/// What opening an envelope to this node gave.
#[derive(Debug, Clone)]
pub(crate) struct Opened {
    /// The whole header (the cleartext and the part sealed with the files).
    pub(crate) header: Header,
    /// The files, in header order.
    pub(crate) files: Vec<Vec<u8>>,
    /// The standard-spec check of the unit.
    pub(crate) checked: Result<UnitInfo, Vec<UnitFinding>>,
}

/// An envelope from a peer as the prepare stage leaves it.
#[derive(Debug, Clone)]
pub struct PreparedEnvelope {
    /// The bytes as received.
    pub(crate) bytes: Vec<u8>,
    pub(crate) env: Result<Envelope, DecodeError>,
    /// Whether the origin signature verifies (over the header's key).
    pub(crate) signature_ok: bool,
    /// For an authentic envelope to this node: opened and checked, or why not.
    pub(crate) opened: Option<Result<Opened, (RejectCode, String)>>,
}

impl PreparedEnvelope {
    /// Prepares the bytes of one envelope for the node holding `keys`, checking
    /// signatures by `check`.
    pub fn new(
        keys: &OperatorKeys,
        check: &dyn SignatureCheck,
        bytes: Vec<u8>,
    ) -> PreparedEnvelope {
        let env = Envelope::decode(&bytes);
        let (signature_ok, opened) = match &env {
            Err(_) => (false, None),
            Ok(e) => {
                let ok = e.verify_by(check).is_ok();
                let mine = keys.is_own_id(&e.header().destination);
                (ok, (ok && mine).then(|| open_and_check(keys, e)))
            }
        };
        PreparedEnvelope {
            bytes,
            env,
            signature_ok,
            opened,
        }
    }

    /// Prepares every envelope of a delivery.
    pub fn all(
        keys: &OperatorKeys,
        check: &dyn SignatureCheck,
        envelopes: Vec<Vec<u8>>,
    ) -> Vec<PreparedEnvelope> {
        envelopes
            .into_iter()
            .map(|b| PreparedEnvelope::new(keys, check, b))
            .collect()
    }
}

/// Opens `env` with `keys` and checks its unit (the destination's part of the pure work).
pub(crate) fn open_and_check(
    keys: &OperatorKeys,
    env: &Envelope,
) -> Result<Opened, (RejectCode, String)> {
    let opened = env
        .open(keys)
        .map_err(|e| (RejectCode::CannotOpen, e.to_string()))?;
    let (header, files) = (opened.header, opened.files);
    let refs: Vec<(&str, &[u8])> = header
        .files
        .iter()
        .zip(&files)
        .map(|(f, b)| (f.name.as_str(), b.as_slice()))
        .collect();
    // `open` checked every file against its header entry (length and SHA-256).
    let checked = check_unit(&refs);
    Ok(Opened {
        header,
        files,
        checked,
    })
}

/// A receipt from a peer as the prepare stage leaves it: its bytes, and the receipt decoded
/// with its signature verified (`None`: undecodable or a bad signature). Whether its signer
/// may make that statement (roster, role) is the core's to decide.
#[derive(Debug, Clone)]
pub struct CheckedReceipt {
    pub(crate) bytes: Vec<u8>,
    pub(crate) receipt: Option<SignedReceipt>,
}

impl CheckedReceipt {
    /// Decodes and verifies one receipt.
    pub fn new(check: &dyn SignatureCheck, bytes: Vec<u8>) -> CheckedReceipt {
        let receipt = verified(check, &bytes);
        CheckedReceipt { bytes, receipt }
    }

    /// Checks every receipt of a `Receipts` request.
    pub fn all(check: &dyn SignatureCheck, receipts: Vec<Vec<u8>>) -> Vec<CheckedReceipt> {
        receipts
            .into_iter()
            .map(|b| CheckedReceipt::new(check, b))
            .collect()
    }
}

/// A peer's response as the prepare stage leaves it: for hop acknowledgements, each ack's
/// receipt decoded and its signature verified (in ack order; `None` for an ack without a
/// receipt or with one that does not verify).
#[derive(Debug, Clone)]
pub struct PreparedResponse {
    pub(crate) response: Response,
    pub(crate) acks: Vec<Option<SignedReceipt>>,
}

impl PreparedResponse {
    /// Prepares one response.
    pub fn new(check: &dyn SignatureCheck, response: Response) -> PreparedResponse {
        let acks = match &response {
            Response::HopAcks(acks) => acks
                .iter()
                .map(|a| match &a.outcome {
                    HopOutcome::Accepted(b) | HopOutcome::Rejected(b) => verified(check, b),
                    HopOutcome::RetryLater(_) => None,
                })
                .collect(),
            _ => Vec::new(),
        };
        PreparedResponse { response, acks }
    }

    /// Signatures the prepare stage verifies for it (to decide where to prepare it).
    pub fn receipts(response: &Response) -> usize {
        match response {
            Response::HopAcks(acks) => acks.len(),
            _ => 0,
        }
    }
}

/// The receipt in `bytes` if it decodes and its signature verifies.
fn verified(check: &dyn SignatureCheck, bytes: &[u8]) -> Option<SignedReceipt> {
    SignedReceipt::decode(bytes)
        .ok()
        .filter(|r| r.verify_by(check).is_ok())
}
