//! Node-to-node messages on `/renkei/relay/1` (request-response). Signed things travel as
//! their exact signed bytes; these messages only frame them.
//!
//! ```text
//! request  = [1, 1, [* envelope: bstr]]                      ; Deliver a batch
//!          / [1, 2, [* signed_receipt: bstr]]                ; Forward receipts
//!          / [1, 3, [roster_serial: uint, cursor: uint]]     ; Directory sync
//! response = [1, 1, [* [id: bstr .size 16, outcome: uint, receipt: bstr / null,
//!                      reason: tstr / null]]]                ; per-envelope hop acks
//!          / [1, 2, count: uint]                             ; receipts taken
//!          / [1, 3, [roster: bstr / null, [* binding: bstr], next_cursor: uint, more: bool]]
//!          / [1, 4, [code: uint, message: tstr]]             ; refused
//! ```
//! Hop outcomes: 1 accepted (receipt = signed `Accepted`), 2 rejected (receipt = signed
//! `Rejected`), 3 retry later (no receipt; `reason` says why, e.g. no route yet).

use ciborium::value::Value;

use crate::cbor::{self, Fields};
use crate::error::DecodeError;
use crate::ids::EnvelopeId;
use crate::limits::{
    BATCH_BYTES_MAX, BATCH_ENVELOPES_MAX, BINDINGS_PER_MESSAGE_MAX, ENVELOPE_BYTES_MAX,
    MESSAGE_BYTES_MAX, REASON_TEXT_BYTES_MAX, RECEIPTS_PER_MESSAGE_MAX,
};

/// The libp2p protocol name.
pub const RELAY_PROTOCOL: &str = "/renkei/relay/1";
const WIRE_VERSION: u64 = 1;

/// A request from one node to another.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Request {
    /// Deliver a batch of encoded envelopes.
    Deliver(Vec<Vec<u8>>),
    /// Forward encoded signed receipts toward the origin.
    Receipts(Vec<Vec<u8>>),
    /// Ask for the roster (if newer than `roster_serial`) and bindings after `cursor`.
    DirectorySync {
        /// Serial of the roster the asker holds.
        roster_serial: u64,
        /// Bindings already seen from this peer.
        cursor: u64,
    },
}

/// What happened to one envelope of a delivered batch.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum HopOutcome {
    /// Durably stored by the receiving node; the signed `Accepted` (or `Delivered`) receipt.
    Accepted(Vec<u8>),
    /// Definitively refused; the signed `Rejected` receipt.
    Rejected(Vec<u8>),
    /// Not taken now; try again later.
    RetryLater(String),
}

/// Per-envelope answer to a delivery.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HopAck {
    /// The envelope (or, for undecodable bytes, all zeros).
    pub id: EnvelopeId,
    /// The outcome.
    pub outcome: HopOutcome,
}

/// Why a whole request was refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RefusalCode {
    /// The peer is not a roster operator.
    NotInRoster,
    /// The request is over a size or count bound.
    TooLarge,
    /// The request could not be decoded.
    Malformed,
    /// Too many requests from this peer; slow down.
    RateLimited,
}

impl RefusalCode {
    fn code(self) -> u64 {
        match self {
            RefusalCode::NotInRoster => 1,
            RefusalCode::TooLarge => 2,
            RefusalCode::Malformed => 3,
            RefusalCode::RateLimited => 4,
        }
    }
    fn from_code(c: u64) -> Option<Self> {
        [
            RefusalCode::NotInRoster,
            RefusalCode::TooLarge,
            RefusalCode::Malformed,
            RefusalCode::RateLimited,
        ]
        .into_iter()
        .find(|r| r.code() == c)
    }
}

/// The answer to a request.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Response {
    /// One hop acknowledgement per delivered envelope, in request order.
    HopAcks(Vec<HopAck>),
    /// How many forwarded receipts were stored.
    ReceiptsTaken(u64),
    /// Directory sync answer.
    Directory {
        /// The responder's roster if newer than the asker's.
        roster: Option<Vec<u8>>,
        /// Signed bindings after the cursor.
        bindings: Vec<Vec<u8>>,
        /// Cursor to ask from next.
        next_cursor: u64,
        /// Whether more bindings remain.
        more: bool,
    },
    /// The request was refused as a whole.
    Refused {
        /// Why.
        code: RefusalCode,
        /// Explanation.
        message: String,
    },
}

fn byte_list(items: &[Vec<u8>]) -> Value {
    Value::Array(items.iter().map(|b| cbor::bytes(b)).collect())
}

fn read_byte_list(
    v: Vec<Value>,
    what: &'static str,
    field: &'static str,
    item_max: usize,
) -> Result<Vec<Vec<u8>>, DecodeError> {
    v.into_iter()
        .map(|i| match i {
            Value::Bytes(b) if b.len() <= item_max => Ok(b),
            Value::Bytes(b) => Err(DecodeError::TooLarge {
                what: field,
                len: b.len(),
                max: item_max,
            }),
            _ => Err(DecodeError::Field {
                what,
                field,
                expected: "byte strings",
            }),
        })
        .collect()
}

fn frame(kind: u64, body: Value) -> Vec<u8> {
    cbor::encode(&Value::Array(vec![
        cbor::uint(WIRE_VERSION),
        cbor::uint(kind),
        body,
    ]))
}

fn unframe(bytes: &[u8], what: &'static str) -> Result<(u64, Value), DecodeError> {
    let mut f = Fields::new(
        cbor::decode_canonical(bytes, what, MESSAGE_BYTES_MAX)?,
        what,
        3,
    )?;
    f.version(WIRE_VERSION)?;
    Ok((f.uint("type")?, f.value("body")?))
}

impl Request {
    /// Canonical bytes.
    pub fn encode(&self) -> Vec<u8> {
        match self {
            Request::Deliver(envs) => frame(1, byte_list(envs)),
            Request::Receipts(rs) => frame(2, byte_list(rs)),
            Request::DirectorySync {
                roster_serial,
                cursor,
            } => frame(
                3,
                Value::Array(vec![cbor::uint(*roster_serial), cbor::uint(*cursor)]),
            ),
        }
    }

    /// Decodes and checks every bound (batch count and bytes, receipts per message).
    pub fn decode(bytes: &[u8]) -> Result<Request, DecodeError> {
        const W: &str = "request";
        let (kind, body) = unframe(bytes, W)?;
        let list = |body: Value, max: usize| match body {
            Value::Array(items) if items.len() <= max => Ok(items),
            Value::Array(items) => Err(DecodeError::TooMany {
                what: "request items",
                count: items.len(),
                max,
            }),
            _ => Err(DecodeError::Field {
                what: W,
                field: "body",
                expected: "an array",
            }),
        };
        match kind {
            1 => {
                let envs = read_byte_list(
                    list(body, BATCH_ENVELOPES_MAX)?,
                    W,
                    "envelope",
                    ENVELOPE_BYTES_MAX,
                )?;
                let total: usize = envs.iter().map(Vec::len).sum();
                if total > BATCH_BYTES_MAX {
                    return Err(DecodeError::TooLarge {
                        what: "delivery batch",
                        len: total,
                        max: BATCH_BYTES_MAX,
                    });
                }
                Ok(Request::Deliver(envs))
            }
            2 => Ok(Request::Receipts(read_byte_list(
                list(body, RECEIPTS_PER_MESSAGE_MAX)?,
                W,
                "receipt",
                crate::limits::RECEIPT_BYTES_MAX,
            )?)),
            3 => {
                let mut f = Fields::new(body, "directory sync request", 2)?;
                Ok(Request::DirectorySync {
                    roster_serial: f.uint("roster_serial")?,
                    cursor: f.uint("cursor")?,
                })
            }
            _ => Err(DecodeError::Field {
                what: W,
                field: "type",
                expected: "1, 2 or 3",
            }),
        }
    }
}

impl Response {
    /// Canonical bytes.
    pub fn encode(&self) -> Vec<u8> {
        match self {
            Response::HopAcks(acks) => frame(
                1,
                Value::Array(
                    acks.iter()
                        .map(|a| {
                            let (code, receipt, reason) = match &a.outcome {
                                HopOutcome::Accepted(r) => (1, cbor::bytes(r), Value::Null),
                                HopOutcome::Rejected(r) => (2, cbor::bytes(r), Value::Null),
                                HopOutcome::RetryLater(why) => (3, Value::Null, cbor::text(why)),
                            };
                            Value::Array(vec![
                                cbor::bytes(a.id.as_bytes()),
                                cbor::uint(code),
                                receipt,
                                reason,
                            ])
                        })
                        .collect(),
                ),
            ),
            Response::ReceiptsTaken(n) => frame(2, cbor::uint(*n)),
            Response::Directory {
                roster,
                bindings,
                next_cursor,
                more,
            } => frame(
                3,
                Value::Array(vec![
                    roster.as_deref().map_or(Value::Null, cbor::bytes),
                    byte_list(bindings),
                    cbor::uint(*next_cursor),
                    Value::Bool(*more),
                ]),
            ),
            Response::Refused { code, message } => frame(
                4,
                Value::Array(vec![cbor::uint(code.code()), cbor::text(message)]),
            ),
        }
    }

    /// Decodes and checks bounds.
    pub fn decode(bytes: &[u8]) -> Result<Response, DecodeError> {
        const W: &str = "response";
        let (kind, body) = unframe(bytes, W)?;
        match kind {
            1 => {
                let items = match body {
                    Value::Array(items) if items.len() <= BATCH_ENVELOPES_MAX => items,
                    _ => {
                        return Err(DecodeError::Field {
                            what: W,
                            field: "acks",
                            expected: "an array of at most 64",
                        });
                    }
                };
                let mut acks = Vec::with_capacity(items.len());
                for item in items {
                    let mut f = Fields::new(item, "hop ack", 4)?;
                    let id = EnvelopeId(f.array("id")?);
                    let code = f.uint("outcome")?;
                    let receipt = f.value("receipt")?;
                    let reason = f.opt_text("reason")?;
                    let outcome = match (code, receipt, reason) {
                        (1, Value::Bytes(r), None) => HopOutcome::Accepted(r),
                        (2, Value::Bytes(r), None) => HopOutcome::Rejected(r),
                        (3, Value::Null, Some(why)) if why.len() <= REASON_TEXT_BYTES_MAX => {
                            HopOutcome::RetryLater(why)
                        }
                        _ => {
                            return Err(DecodeError::Field {
                                what: "hop ack",
                                field: "outcome",
                                expected: "a consistent outcome, receipt and reason",
                            });
                        }
                    };
                    acks.push(HopAck { id, outcome });
                }
                Ok(Response::HopAcks(acks))
            }
            2 => match body {
                Value::Integer(n) => {
                    Ok(Response::ReceiptsTaken(u64::try_from(n).map_err(|_| {
                        DecodeError::Field {
                            what: W,
                            field: "count",
                            expected: "an unsigned integer",
                        }
                    })?))
                }
                _ => Err(DecodeError::Field {
                    what: W,
                    field: "count",
                    expected: "an unsigned integer",
                }),
            },
            3 => {
                let mut f = Fields::new(body, "directory answer", 4)?;
                let roster = match f.value("roster")? {
                    Value::Null => None,
                    Value::Bytes(b) => Some(b),
                    _ => {
                        return Err(DecodeError::Field {
                            what: W,
                            field: "roster",
                            expected: "null or a byte string",
                        });
                    }
                };
                let bindings = read_byte_list(
                    f.list("bindings", BINDINGS_PER_MESSAGE_MAX)?,
                    W,
                    "binding",
                    crate::limits::BINDING_BYTES_MAX + 128,
                )?;
                Ok(Response::Directory {
                    roster,
                    bindings,
                    next_cursor: f.uint("next_cursor")?,
                    more: f.bool("more")?,
                })
            }
            4 => {
                let mut f = Fields::new(body, "refusal", 2)?;
                let c = f.uint("code")?;
                let code = RefusalCode::from_code(c).ok_or(DecodeError::Field {
                    what: W,
                    field: "code",
                    expected: "a known refusal code",
                })?;
                Ok(Response::Refused {
                    code,
                    message: f.text("message")?,
                })
            }
            _ => Err(DecodeError::Field {
                what: W,
                field: "type",
                expected: "1, 2, 3 or 4",
            }),
        }
    }
}
