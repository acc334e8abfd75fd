//! Stored records and key layouts. Every record is stored as one version byte followed by
//! its CBOR encoding (ciborium's format, via serde; written by [`writer`] and read by
//! [`reader`], the one writer and reader of records, which tests compare with ciborium's
//! bytes and values); a reader refuses versions it does not know.

#[cfg(test)]
mod codec_tests;
pub mod reader;
pub mod writer;

use renkei_protocol::envelope::Digest32;
use renkei_protocol::ids::{EnvelopeId, OfficeNumber, OperatorId, ServiceKind};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use crate::store::{Store, StoreError, Tree};

/// The version written. Version 2 writes digests and slot keys as CBOR byte strings where
/// version 1 wrote them as arrays of integers (serde's default for `[u8; 32]` and
/// `Vec<u8>`): a third of the bytes, and read at once instead of integer by integer. Both
/// readers take either form for a byte field, so a version 1 record reads the same.
const RECORD_VERSION: u8 = 2;
/// The versions read.
const RECORD_VERSIONS: [u8; 2] = [1, 2];

/// Encodes a record.
pub fn encode<T: Serialize>(rec: &T) -> Vec<u8> {
    encode_as(RECORD_VERSION, rec)
}

/// Encodes a value after the version byte `version` (its serde encoding does not depend
/// on the version: the fields' attributes say how they are written).
pub fn encode_as<T: Serialize>(version: u8, rec: &T) -> Vec<u8> {
    let mut out = Vec::with_capacity(128);
    out.push(version);
    if let Err(e) = writer::write(rec, &mut out) {
        // Records hold integers, strings, byte strings, options, enums, sequences and
        // structs; every record type is written in the codec tests.
        unreachable!("a record holds a kind of value records never use: {e}");
    }
    out
}

/// Decodes a record read from `tree`.
pub fn decode<T: DeserializeOwned>(tree: Tree, bytes: &[u8]) -> Result<T, StoreError> {
    let corrupt = |detail: String| StoreError::Corrupt {
        tree: tree.name(),
        detail,
    };
    match bytes.split_first() {
        Some((v, rest)) if RECORD_VERSIONS.contains(v) => {
            reader::read(rest).map_err(|e| corrupt(e.to_string()))
        }
        Some((v, _)) => Err(corrupt(format!("unknown record version {v}"))),
        None => Err(corrupt("empty record".into())),
    }
}

/// Reads and decodes one record.
pub fn get<T: DeserializeOwned>(
    store: &dyn Store,
    tree: Tree,
    key: &[u8],
) -> Result<Option<T>, StoreError> {
    store.get(tree, key)?.map(|b| decode(tree, &b)).transpose()
}

/// Encodes and writes one record.
pub fn put<T: Serialize>(
    store: &mut dyn Store,
    tree: Tree,
    key: &[u8],
    rec: &T,
) -> Result<(), StoreError> {
    store.put(tree, key, &encode(rec))
}

/// An envelope awaiting a hop acknowledgement.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct OutboxRec {
    /// The operator that created the envelope (receipts travel back to it).
    pub origin: OperatorId,
    /// The destination operator.
    pub destination: OperatorId,
    /// The envelope digest (receipts must name it).
    #[serde(with = "serde_bytes")]
    pub digest: Digest32,
    /// Give up (origin: Expired receipt; relay: drop) at this time.
    pub expires_at_ms: u64,
    /// This node's hop number for the envelope (origin 0).
    pub hop: u8,
    /// At a relay: the hop it got the envelope from, to which it hands it back only when
    /// it has no other way. Absent at the origin and in records written before it existed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub prev: Option<OperatorId>,
    /// At a relay: the envelope came back after this relay had passed it on (see
    /// `prev`); it is sent on after a growing pause.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub returned: bool,
}

/// An envelope relayed for others: what routing its receipts back needs once its body
/// is gone.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct RelayedRec {
    /// The operator that created the envelope (receipts travel back to it).
    pub origin: OperatorId,
    /// The destination operator.
    pub destination: OperatorId,
    /// The envelope digest (receipts must name it).
    #[serde(with = "serde_bytes")]
    pub digest: Digest32,
}

/// Status of a sent unit at its origin.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq, PartialOrd, Ord)]
pub enum SentStatus {
    /// Accepted by the origin node.
    Accepted,
    /// Accepted by a relay.
    Relayed,
    /// In the recipient's inbox.
    Delivered,
    /// Downloaded by the recipient.
    Retrieved,
    /// Refused.
    Rejected,
    /// Given up.
    Expired,
}

impl SentStatus {
    /// API name.
    pub fn name(self) -> &'static str {
        match self {
            SentStatus::Accepted => "accepted",
            SentStatus::Relayed => "relayed",
            SentStatus::Delivered => "delivered",
            SentStatus::Retrieved => "retrieved",
            SentStatus::Rejected => "rejected",
            SentStatus::Expired => "expired",
        }
    }
    /// Whether the journey ended.
    pub fn is_final(self) -> bool {
        matches!(
            self,
            SentStatus::Delivered
                | SentStatus::Retrieved
                | SentStatus::Rejected
                | SentStatus::Expired
        )
    }
}

/// A unit sent by a local office.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct SentRec {
    /// Envelope id.
    pub id: EnvelopeId,
    /// Canonical header bytes.
    #[serde(with = "serde_bytes")]
    pub header: Vec<u8>,
    /// Sending office.
    pub from: OfficeNumber,
    /// Receiving office.
    pub to: OfficeNumber,
    /// Destination operator.
    pub destination: OperatorId,
    /// Current status.
    pub status: SentStatus,
    /// Creation time.
    pub created_at_ms: u64,
    /// When the origin gives up.
    pub expires_at_ms: u64,
}

/// The first answer given to an envelope id (replayed to duplicates, forever).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct DedupRec {
    /// Digest of the envelope answered.
    #[serde(with = "serde_bytes")]
    pub digest: Digest32,
    /// Whether the answer was a rejection.
    pub rejected: bool,
    /// The signed receipt given.
    #[serde(with = "serde_bytes")]
    pub receipt: Vec<u8>,
}

/// A received unit in an office's inbox.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct InboxRec {
    /// Envelope id.
    pub id: EnvelopeId,
    /// Canonical header bytes.
    #[serde(with = "serde_bytes")]
    pub header: Vec<u8>,
    /// Receiving office.
    pub office: OfficeNumber,
    /// Arrival time.
    pub received_at_ms: u64,
    /// Explicitly replaced envelope.
    pub supersedes: Option<EnvelopeId>,
    /// Envelope that replaced this one.
    pub superseded_by: Option<EnvelopeId>,
    /// First download.
    pub retrieved_at_ms: Option<u64>,
    /// Document slots this unit fills.
    #[serde(with = "byte_strings")]
    pub slots: Vec<Vec<u8>>,
    /// Slots where this unit is still the latest.
    pub live_slots: u32,
    /// Users in the unit.
    pub users: u32,
    /// Which of the unit's files (by header position) the office has downloaded: a
    /// bit set, bit `i % 8` of byte `i / 8`. Absent in records written before it existed.
    #[serde(default, with = "serde_bytes", skip_serializing_if = "Vec::is_empty")]
    pub fetched: Vec<u8>,
    /// The 被保険者番号 of the unit's users, sorted, at most [`INSURED_KEPT_MAX`] (for the
    /// page's 利用者 filter). Absent in records written before it existed.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub insured: Vec<String>,
    /// The users' names as the unit's files give them: `[被保険者番号, 氏名, フリガナ]`, sorted,
    /// at most [`INSURED_KEPT_MAX`] (the 利用者 filter by name). Absent in records written
    /// before it existed.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub names: Vec<[String; 3]>,
}

/// 被保険者番号 kept per inbox record.
pub const INSURED_KEPT_MAX: usize = 1000;

impl InboxRec {
    /// Marks file `index` downloaded; whether it was not before.
    pub fn mark_fetched(&mut self, index: usize) -> bool {
        if self.fetched.len() <= index / 8 {
            self.fetched.resize(index / 8 + 1, 0);
        }
        let (byte, bit) = (index / 8, 1u8 << (index % 8));
        let new = self.fetched[byte] & bit == 0;
        self.fetched[byte] |= bit;
        new
    }

    /// Whether file `index` has been downloaded.
    pub fn was_fetched(&self, index: usize) -> bool {
        self.fetched
            .get(index / 8)
            .is_some_and(|b| b & (1u8 << (index % 8)) != 0)
    }
}

/// The latest envelope of a document slot, with its ordering key.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct SlotRec {
    /// Ordering: (plan date or empty, stamp, created_at, id) compared lexicographically.
    pub order: (String, String, u64, EnvelopeId),
    /// Receiving office (owner of the inbox entry).
    pub office: OfficeNumber,
}

/// An office homed at this node.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct OfficeRec {
    /// 事業所番号.
    pub office: OfficeNumber,
    /// Service kinds.
    pub kinds: Vec<ServiceKind>,
    /// Name.
    pub name: String,
    /// SHA-256 of the API token.
    #[serde(with = "serde_bytes")]
    pub token_hash: [u8; 32],
    /// Registration time.
    pub since_ms: u64,
    /// The address told of new arrivals by e-mail, if the office asked. Absent in records
    /// written before it existed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub notify: Option<String>,
    /// Staff must enrol a second factor (TOTP) before using the page. Absent (false) in
    /// records written before it existed.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub totp_required: bool,
}

/// A receipt waiting to be forwarded toward an envelope's origin.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct ReceiptOutRec {
    /// The origin operator.
    pub to: OperatorId,
    /// Signed receipt bytes.
    #[serde(with = "serde_bytes")]
    pub receipt: Vec<u8>,
}

/// One entry of the hash-chained audit log.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct AuditRec {
    /// Sequence number, from 1.
    pub seq: u64,
    /// Time.
    pub at_ms: u64,
    /// What happened.
    pub event: String,
    /// Envelope concerned.
    pub envelope: Option<EnvelopeId>,
    /// Office concerned.
    pub office: Option<OfficeNumber>,
    /// Detail.
    pub detail: String,
    /// Hash of the previous entry (zeros for the first).
    #[serde(with = "serde_bytes")]
    pub prev: [u8; 32],
    /// SHA-256 over all fields above (`audit::entry_hash`: the protocol's canonical CBOR;
    /// entries written before 2026-12-07, the version 1 record encoding).
    #[serde(with = "serde_bytes")]
    pub hash: [u8; 32],
}

/// `Vec<Vec<u8>>` as an array of CBOR byte strings (reads arrays of integers too).
mod byte_strings {
    use serde::{Deserialize, Deserializer, Serialize, Serializer};
    use serde_bytes::{ByteBuf, Bytes};

    pub fn serialize<S: Serializer>(v: &[Vec<u8>], s: S) -> Result<S::Ok, S::Error> {
        let list: Vec<&Bytes> = v.iter().map(|b| Bytes::new(b)).collect();
        list.serialize(s)
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<Vec<u8>>, D::Error> {
        let list = Vec::<ByteBuf>::deserialize(d)?;
        Ok(list.into_iter().map(ByteBuf::into_vec).collect())
    }
}

/// Big-endian u64 key part.
pub fn be(n: u64) -> [u8; 8] {
    n.to_be_bytes()
}

/// Key: office ‖ id.
pub fn office_id_key(office: &OfficeNumber, id: &EnvelopeId) -> Vec<u8> {
    let mut k = office.as_str().as_bytes().to_vec();
    k.extend_from_slice(id.as_bytes());
    k
}

/// Key: office ‖ time ‖ id.
pub fn office_time_id_key(office: &OfficeNumber, t: u64, id: &EnvelopeId) -> Vec<u8> {
    let mut k = office.as_str().as_bytes().to_vec();
    k.extend_from_slice(&be(t));
    k.extend_from_slice(id.as_bytes());
    k
}

/// Key: time ‖ id.
pub fn time_id_key(t: u64, id: &EnvelopeId) -> Vec<u8> {
    let mut k = be(t).to_vec();
    k.extend_from_slice(id.as_bytes());
    k
}

/// Key: id ‖ n.
pub fn id_n_key(id: &EnvelopeId, n: u64) -> Vec<u8> {
    let mut k = id.as_bytes().to_vec();
    k.extend_from_slice(&be(n));
    k
}
