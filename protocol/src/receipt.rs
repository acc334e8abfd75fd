//! Receipts: signed statements by a node about an envelope. They are the audit evidence:
//! each names the envelope id and digest, verifies offline with only the roster, and never
//! refers to "the last thing sent".
//!
//! ```text
//! receipt        = [1, id: bstr .size 16, digest: bstr .size 32, kind: uint, detail,
//!                   node: bstr .size 32, at_ms: uint]
//! detail         = hop: uint (Accepted) / [code: uint, text: tstr] (Rejected) / null
//! signed_receipt = [receipt: bstr, signature: bstr .size 64]
//! signed         = "renkei/receipt/v1" 0x00 || receipt
//! ```

use ciborium::value::Value;

use crate::cbor::{self, Fields};
use crate::envelope::Digest32;
use crate::error::{DecodeError, VerifyError};
use crate::ids::{EnvelopeId, OperatorId};
use crate::keys::{SignatureCheck, SigningIdentity, Strict, check_labelled};
use crate::limits::{REASON_TEXT_BYTES_MAX, RECEIPT_BYTES_MAX};
use crate::roster::Roster;

/// Signature label of receipts.
pub const RECEIPT_SIG_LABEL: &[u8] = b"renkei/receipt/v1";
const RECEIPT_VERSION: u64 = 1;

/// Why an envelope was definitively refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum RejectCode {
    /// The origin signature does not verify.
    BadSignature,
    /// The origin is not an operator of the roster.
    UnknownOperator,
    /// The destination office is not homed here (or anywhere known).
    UnknownOffice,
    /// The opened files fail the standard-spec CSV checks.
    InvalidCsv,
    /// The payload cannot be opened with this node's keys, or does not match its header.
    CannotOpen,
    /// The envelope bytes are not a valid encoding.
    Malformed,
    /// The envelope is over the size limit.
    TooLarge,
    /// The envelope is for an operator other than this node and no route exists.
    NoRoute,
    /// The sending office is not bound to the envelope's origin operator (a forged
    /// sender): the destination refuses it and does not remember it.
    SenderNotBound,
}

impl RejectCode {
    /// All codes.
    pub const ALL: [RejectCode; 9] = [
        RejectCode::BadSignature,
        RejectCode::UnknownOperator,
        RejectCode::UnknownOffice,
        RejectCode::InvalidCsv,
        RejectCode::CannotOpen,
        RejectCode::Malformed,
        RejectCode::TooLarge,
        RejectCode::NoRoute,
        RejectCode::SenderNotBound,
    ];
    /// Wire code (1…).
    pub fn code(self) -> u64 {
        self as u64 + 1
    }
    /// From the wire code.
    pub fn from_code(c: u64) -> Option<Self> {
        Self::ALL.into_iter().find(|r| r.code() == c)
    }
    /// Stable name, as shown in the API.
    pub fn as_str(self) -> &'static str {
        match self {
            RejectCode::BadSignature => "bad_signature",
            RejectCode::UnknownOperator => "unknown_operator",
            RejectCode::UnknownOffice => "unknown_office",
            RejectCode::InvalidCsv => "invalid_csv",
            RejectCode::CannotOpen => "cannot_open",
            RejectCode::Malformed => "malformed",
            RejectCode::TooLarge => "too_large",
            RejectCode::NoRoute => "no_route",
            RejectCode::SenderNotBound => "sender_not_bound",
        }
    }
}

/// What a receipt states.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ReceiptKind {
    /// Durably stored for relay by the signing node; `hop` counts nodes from the origin (the
    /// origin's own acceptance is hop 0).
    Accepted {
        /// Hop number.
        hop: u8,
    },
    /// Durably in the recipient office's inbox (signed by the destination node).
    Delivered,
    /// Downloaded by the recipient office (signed by the destination node).
    Retrieved,
    /// Definitively refused.
    Rejected {
        /// Reason code.
        code: RejectCode,
        /// Human explanation.
        text: String,
    },
    /// The origin gave up after the retry window (signed by the origin node).
    Expired,
}

impl ReceiptKind {
    /// Stable name, as shown in the API.
    pub fn name(&self) -> &'static str {
        match self {
            ReceiptKind::Accepted { .. } => "accepted",
            ReceiptKind::Delivered => "delivered",
            ReceiptKind::Retrieved => "retrieved",
            ReceiptKind::Rejected { .. } => "rejected",
            ReceiptKind::Expired => "expired",
        }
    }
    /// Who may make this statement about an envelope.
    pub fn signer_role(&self) -> SignerRole {
        match self {
            ReceiptKind::Delivered | ReceiptKind::Retrieved => SignerRole::Destination,
            ReceiptKind::Expired | ReceiptKind::Accepted { hop: 0 } => SignerRole::Origin,
            ReceiptKind::Accepted { .. } | ReceiptKind::Rejected { .. } => SignerRole::Any,
        }
    }

    /// Whether the envelope's journey ended (delivered, rejected or expired).
    pub fn is_final(&self) -> bool {
        matches!(
            self,
            ReceiptKind::Delivered | ReceiptKind::Rejected { .. } | ReceiptKind::Expired
        )
    }
}

/// Which operator may sign a receipt of a given kind about an envelope.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SignerRole {
    /// The destination operator named in the envelope header (`Delivered`, `Retrieved`).
    Destination,
    /// The origin operator named in the envelope header (`Expired`, `Accepted{hop 0}`).
    Origin,
    /// Any roster operator (`Accepted{hop > 0}` by relays, `Rejected` by any hop).
    Any,
}

impl SignerRole {
    /// Stable name, for messages.
    pub fn name(self) -> &'static str {
        match self {
            SignerRole::Destination => "destination",
            SignerRole::Origin => "origin",
            SignerRole::Any => "any roster",
        }
    }
}

/// The content of a receipt.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Receipt {
    /// The envelope.
    pub envelope: EnvelopeId,
    /// The envelope's digest (SHA-256 of its header bytes).
    pub digest: Digest32,
    /// What is stated.
    pub kind: ReceiptKind,
    /// The signing node.
    pub node: OperatorId,
    /// When, in milliseconds since the Unix epoch (signer's clock).
    pub at_ms: u64,
}

impl Receipt {
    fn to_value(&self) -> Value {
        let (code, detail) = match &self.kind {
            ReceiptKind::Accepted { hop } => (1, cbor::uint(u64::from(*hop))),
            ReceiptKind::Delivered => (2, Value::Null),
            ReceiptKind::Retrieved => (3, Value::Null),
            ReceiptKind::Rejected { code, text } => (
                4,
                Value::Array(vec![cbor::uint(code.code()), cbor::text(text)]),
            ),
            ReceiptKind::Expired => (5, Value::Null),
        };
        Value::Array(vec![
            cbor::uint(RECEIPT_VERSION),
            cbor::bytes(self.envelope.as_bytes()),
            cbor::bytes(&self.digest),
            cbor::uint(code),
            detail,
            cbor::bytes(self.node.as_bytes()),
            cbor::uint(self.at_ms),
        ])
    }

    /// Canonical bytes.
    pub fn encode(&self) -> Vec<u8> {
        cbor::encode(&self.to_value())
    }

    /// Decodes canonical receipt bytes.
    pub fn decode(bytes: &[u8]) -> Result<Receipt, DecodeError> {
        const W: &str = "receipt";
        let mut f = Fields::new(cbor::decode_canonical(bytes, W, RECEIPT_BYTES_MAX)?, W, 7)?;
        f.version(RECEIPT_VERSION)?;
        let envelope = EnvelopeId(f.array("id")?);
        let digest = f.array("digest")?;
        let code = f.uint("kind")?;
        let detail = f.value("detail")?;
        let bad = |expected| DecodeError::Field {
            what: W,
            field: "detail",
            expected,
        };
        let kind = match (code, detail) {
            (1, Value::Integer(h)) => ReceiptKind::Accepted {
                hop: u8::try_from(h).map_err(|_| bad("a hop number 0..255"))?,
            },
            (2, Value::Null) => ReceiptKind::Delivered,
            (3, Value::Null) => ReceiptKind::Retrieved,
            (4, v @ Value::Array(_)) => {
                let mut g = Fields::new(v, "receipt rejection", 2)?;
                let c = g.uint("code")?;
                let code = RejectCode::from_code(c).ok_or_else(|| bad("a known rejection code"))?;
                let text = g.text("text")?;
                if text.len() > REASON_TEXT_BYTES_MAX {
                    return Err(bad("a reason of at most 1024 bytes"));
                }
                ReceiptKind::Rejected { code, text }
            }
            (5, Value::Null) => ReceiptKind::Expired,
            (1..=5, _) => return Err(bad("the detail shape of its kind")),
            _ => {
                return Err(DecodeError::Field {
                    what: W,
                    field: "kind",
                    expected: "1..5",
                });
            }
        };
        let node = OperatorId(f.array("node")?);
        let at_ms = f.uint("at_ms")?;
        Ok(Receipt {
            envelope,
            digest,
            kind,
            node,
            at_ms,
        })
    }

    /// The receipt-role rule: a receipt that verifies under a roster key is not enough, it
    /// must come from the operator whose statement it is (see [`ReceiptKind::signer_role`])
    /// about the envelope whose header names `origin` and `destination`. "The same
    /// operator" admits the operator's current key and its retired keys listed in the
    /// roster (key rotation); without a roster, only the very key named in the header.
    ///
    /// Signature and roster membership are checked separately
    /// ([`SignedReceipt::verify_with_roster`]).
    pub fn check_role(
        &self,
        roster: Option<&Roster>,
        origin: &OperatorId,
        destination: &OperatorId,
    ) -> Result<(), VerifyError> {
        let role = self.kind.signer_role();
        let expected = match role {
            SignerRole::Destination => destination,
            SignerRole::Origin => origin,
            SignerRole::Any => return Ok(()),
        };
        let same = match roster {
            Some(r) => r.same_operator(&self.node, expected),
            None => self.node == *expected,
        };
        if same {
            Ok(())
        } else {
            Err(VerifyError::WrongSigner {
                receipt: self.kind.name(),
                envelope: self.envelope.to_string(),
                signer: self.node.to_string(),
                role: role.name(),
                expected: expected.to_string(),
            })
        }
    }

    /// Signs this receipt as `node` (whose id must be `self.node`).
    pub fn sign(self, node: &SigningIdentity) -> SignedReceipt {
        debug_assert_eq!(self.node, node.id());
        let bytes = self.encode();
        let signature = node.sign(RECEIPT_SIG_LABEL, &bytes);
        SignedReceipt {
            receipt: self,
            bytes,
            signature,
        }
    }
}

/// A receipt with its signature, carrying the exact signed bytes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SignedReceipt {
    receipt: Receipt,
    bytes: Vec<u8>,
    signature: [u8; 64],
}

impl SignedReceipt {
    /// The receipt.
    pub fn receipt(&self) -> &Receipt {
        &self.receipt
    }

    /// Canonical `[receipt bytes, signature]` encoding.
    pub fn encode(&self) -> Vec<u8> {
        cbor::encode(&Value::Array(vec![
            cbor::bytes(&self.bytes),
            cbor::bytes(&self.signature),
        ]))
    }

    /// Decodes a signed receipt. Does not verify.
    pub fn decode(bytes: &[u8]) -> Result<SignedReceipt, DecodeError> {
        const W: &str = "signed receipt";
        let mut f = Fields::new(cbor::decode_canonical(bytes, W, RECEIPT_BYTES_MAX)?, W, 2)?;
        let inner = f.bytes("receipt")?;
        let signature = f.array("signature")?;
        Ok(SignedReceipt {
            receipt: Receipt::decode(&inner)?,
            bytes: inner,
            signature,
        })
    }

    /// Verifies the signature under the receipt's own `node` key.
    pub fn verify(&self) -> Result<(), VerifyError> {
        self.verify_by(&Strict)
    }

    /// [`SignedReceipt::verify`] by `check`.
    pub fn verify_by(&self, check: &dyn SignatureCheck) -> Result<(), VerifyError> {
        check_labelled(
            check,
            "receipt",
            &self.receipt.node,
            RECEIPT_SIG_LABEL,
            &self.bytes,
            &self.signature,
        )
    }

    /// Verifies the signature and that the signer was a roster operator (current key, or
    /// an old key before its expiry) at the receipt's time.
    pub fn verify_with_roster(&self, roster: &Roster) -> Result<(), VerifyError> {
        self.verify_with_roster_by(roster, &Strict)
    }

    /// [`SignedReceipt::verify_with_roster`] by `check`.
    pub fn verify_with_roster_by(
        &self,
        roster: &Roster,
        check: &dyn SignatureCheck,
    ) -> Result<(), VerifyError> {
        self.verify_by(check)?;
        if roster
            .signer_valid_at(&self.receipt.node, self.receipt.at_ms)
            .is_none()
        {
            return Err(VerifyError::UnknownSigner {
                what: "receipt",
                key: self.receipt.node.to_string(),
                at_ms: self.receipt.at_ms,
            });
        }
        Ok(())
    }
}

#[cfg(test)]
mod decode_tests {
    use super::*;

    #[test]
    fn receipts_round_trip_and_damaged_ones_are_refused_or_read_as_what_they_say() {
        let node = SigningIdentity::from_seed([5; 32]);
        let kinds = [
            ReceiptKind::Accepted { hop: 0 },
            ReceiptKind::Accepted { hop: 24 },
            ReceiptKind::Accepted { hop: 255 },
            ReceiptKind::Delivered,
            ReceiptKind::Retrieved,
            ReceiptKind::Expired,
            ReceiptKind::Rejected {
                code: RejectCode::TooLarge,
                text: "too large".into(),
            },
        ];
        for (i, kind) in kinds.into_iter().enumerate() {
            let rejected = matches!(kind, ReceiptKind::Rejected { .. });
            let b = Receipt {
                envelope: EnvelopeId([i as u8; 16]),
                digest: [7; 32],
                kind,
                node: node.id(),
                at_ms: [0, 23, 24, 1 << 40, u64::MAX][i % 5],
            }
            .sign(&node)
            .encode();
            let d = SignedReceipt::decode(&b).unwrap();
            assert_eq!(d.encode(), b);
            assert_eq!(
                rejected,
                matches!(d.receipt().kind, ReceiptKind::Rejected { .. })
            );
            for n in 0..b.len() {
                assert!(SignedReceipt::decode(&b[..n]).is_err(), "truncated at {n}");
            }
            for at in 0..b.len() {
                for x in [0x01u8, 0x02, 0x04, 0x08, 0x10, 0x20, 0x40, 0x80, 0xff] {
                    let mut m = b.clone();
                    m[at] ^= x;
                    // What still decodes is exactly what it encodes (canonical bytes).
                    if let Ok(d) = SignedReceipt::decode(&m) {
                        assert_eq!(d.encode(), m, "byte {at} ^ {x:#04x}");
                    }
                }
            }
        }
    }
}
