//! Proof bundles: what an office shows an auditor. A bundle holds an envelope's whole
//! header (the signed cleartext and, for a version-2 envelope, the inner header that was
//! sealed with the files, so the auditor sees the files' names and SHA-256s), the digest of
//! its sealed payload (so the origin signature verifies without the care plan itself) and
//! every receipt about it. It verifies offline with the roster.
//!
//! ```text
//! proof = [1, header: bstr, sealed_sha256: bstr .size 32, origin_signature: bstr .size 64,
//!          [* signed_receipt: bstr]]
//! ```
//!
//! `header` is the whole header's stored form ([`Header::encode`]: for version 1 the
//! header bytes themselves, so proofs made before version 2 read as they did).

use ciborium::value::Value;

use crate::cbor::{self, Fields};
use crate::envelope::{Digest32, ENVELOPE_SIG_LABEL, Envelope, Header, sha256};
use crate::error::{DecodeError, VerifyError};
use crate::ids::OperatorId;
use crate::keys::verify_labelled;
use crate::limits::{PROOF_BYTES_MAX, RECEIPTS_PER_MESSAGE_MAX};
use crate::receipt::{ReceiptKind, SignedReceipt};
use crate::roster::Roster;

const PROOF_VERSION: u64 = 1;

/// An envelope's signed header plus its receipts.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Proof {
    /// The whole header's stored form.
    stored: Vec<u8>,
    /// The cleartext header bytes the origin signed.
    header_bytes: Vec<u8>,
    header: Header,
    sealed_sha256: Digest32,
    origin_signature: [u8; 64],
    /// The receipts, oldest first.
    pub receipts: Vec<SignedReceipt>,
}

impl Proof {
    /// Builds a proof from an envelope, its whole header (which the origin keeps: a
    /// version-2 envelope's cleartext does not hold it) and its receipts. None when `header`
    /// is not the envelope's.
    pub fn new(
        envelope: &Envelope,
        header: &Header,
        receipts: Vec<SignedReceipt>,
    ) -> Option<Proof> {
        envelope.is_header_of(header).then(|| Proof {
            stored: header.encode(),
            header_bytes: envelope.header_bytes().to_vec(),
            header: header.clone(),
            sealed_sha256: *envelope.sealed_sha256(),
            origin_signature: *envelope.signature(),
            receipts,
        })
    }

    /// The envelope header.
    pub fn header(&self) -> &Header {
        &self.header
    }

    /// Canonical bytes.
    pub fn encode(&self) -> Vec<u8> {
        cbor::encode(&Value::Array(vec![
            cbor::uint(PROOF_VERSION),
            cbor::bytes(&self.stored),
            cbor::bytes(&self.sealed_sha256),
            cbor::bytes(&self.origin_signature),
            Value::Array(
                self.receipts
                    .iter()
                    .map(|r| cbor::bytes(&r.encode()))
                    .collect(),
            ),
        ]))
    }

    /// Decodes. Does not verify.
    pub fn decode(bytes: &[u8]) -> Result<Proof, DecodeError> {
        const W: &str = "proof";
        let mut f = Fields::new(cbor::decode_canonical(bytes, W, PROOF_BYTES_MAX)?, W, 5)?;
        f.version(PROOF_VERSION)?;
        let stored = f.bytes("header")?;
        let header = Header::decode(&stored)?;
        let header_bytes = header.wire_bytes();
        let sealed_sha256 = f.array("sealed_sha256")?;
        let origin_signature = f.array("origin_signature")?;
        let mut receipts = Vec::new();
        for r in f.list("receipts", RECEIPTS_PER_MESSAGE_MAX)? {
            match r {
                Value::Bytes(b) => receipts.push(SignedReceipt::decode(&b)?),
                _ => {
                    return Err(DecodeError::Field {
                        what: W,
                        field: "receipts",
                        expected: "byte strings",
                    });
                }
            }
        }
        Ok(Proof {
            stored,
            header_bytes,
            header,
            sealed_sha256,
            origin_signature,
            receipts,
        })
    }

    /// Verifies everything: the origin signature over the header (the origin a roster
    /// operator at creation time), and each receipt (signature, signer in the roster at its
    /// time, naming this envelope's id and digest, and signed by the operator whose
    /// statement it is: [`crate::receipt::Receipt::check_role`]). Returns one line per
    /// verified statement, for `renkei verify`.
    pub fn verify(&self, roster: &Roster) -> Result<Vec<String>, VerifyError> {
        let h = &self.header;
        let mut msg = Vec::with_capacity(32 + self.header_bytes.len());
        msg.extend_from_slice(&self.sealed_sha256);
        msg.extend_from_slice(&self.header_bytes);
        verify_labelled(
            "envelope",
            &h.origin,
            ENVELOPE_SIG_LABEL,
            &msg,
            &self.origin_signature,
        )?;
        let origin = roster
            .signer_valid_at(&h.origin, h.created_at_ms)
            .ok_or_else(|| VerifyError::UnknownSigner {
                what: "envelope",
                key: h.origin.to_string(),
                at_ms: h.created_at_ms,
            })?;
        let digest = sha256(&self.header_bytes);
        let mut lines = vec![format!(
            "envelope {} from office {} ({}) to office {} ({}), {} file(s), signed by operator {} at {}",
            h.id,
            h.from.office,
            h.from.kind,
            h.to.office,
            h.to.kind,
            h.files.len(),
            origin.name,
            crate::jst::jst(h.created_at_ms)
        )];
        for r in &self.receipts {
            r.verify_with_roster(roster)?;
            let rc = r.receipt();
            if rc.envelope != h.id || rc.digest != digest {
                return Err(VerifyError::Mismatch(format!(
                    "receipt {} names envelope {} / another digest, not this envelope {}",
                    rc.kind.name(),
                    rc.envelope,
                    h.id
                )));
            }
            rc.check_role(Some(roster), &h.origin, &h.destination)?;
            let who = roster
                .signer_valid_at(&rc.node, rc.at_ms)
                .map_or("?", |o| o.name.as_str());
            lines.push(format!(
                "{} by operator {} at {}",
                rc.kind.name(),
                who,
                crate::jst::jst(rc.at_ms)
            ));
        }
        lines.extend(self.contradictions(roster));
        Ok(lines)
    }

    /// Statements in this proof that contradict each other, one line each (starting with
    /// `CONTRADICTION:`), for an auditor: a unit the destination delivered that some
    /// operator also says it rejected. The destination's `Delivered` outranks another
    /// operator's `Rejected` (that operator lied, or refused a copy it was given after
    /// another hop had delivered it); a destination that says both is named as such.
    pub fn contradictions(&self, roster: &Roster) -> Vec<String> {
        let h = &self.header;
        let name = |k: &OperatorId, at: u64| {
            roster
                .signer_valid_at(k, at)
                .map_or_else(|| k.to_string(), |o| o.name.clone())
        };
        let delivered = self
            .receipts
            .iter()
            .map(|r| r.receipt())
            .find(|r| matches!(r.kind, ReceiptKind::Delivered | ReceiptKind::Retrieved));
        let Some(d) = delivered else {
            return Vec::new();
        };
        self.receipts
            .iter()
            .map(|r| r.receipt())
            .filter(|r| matches!(r.kind, ReceiptKind::Rejected { .. }))
            .map(|r| {
                if roster.same_operator(&r.node, &h.destination) {
                    format!(
                        "CONTRADICTION: the destination operator {} both delivered this unit ({}) and rejected it ({})",
                        name(&d.node, d.at_ms),
                        crate::jst::jst(d.at_ms),
                        crate::jst::jst(r.at_ms)
                    )
                } else {
                    format!(
                        "CONTRADICTION: operator {} says it rejected this unit at {}, but the destination operator {} delivered it at {}; the destination's statement stands",
                        name(&r.node, r.at_ms),
                        crate::jst::jst(r.at_ms),
                        name(&d.node, d.at_ms),
                        crate::jst::jst(d.at_ms)
                    )
                }
            })
            .collect()
    }
}
