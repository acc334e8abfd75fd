//! Envelopes: one send unit (several standard CSV files, optionally JPEGs) from one office to
//! another, sealed to the destination operator and signed by the origin operator.
//!
//! Encoding (canonical CBOR, see `docs/PROTOCOL.md`):
//!
//! ```text
//! envelope = [1, header: bstr, sealed: bstr, signature: bstr .size 64]
//! header   = [1, id, from_office, from_kind, to_office, to_kind, origin, destination,
//!             sealed_to, doc_kind, subject / null, stamp, supersedes / null, created_at_ms,
//!             [* [name, length, sha256]]]
//! payload  = [* bstr]            ; the files' bytes, in header order (sealed)
//! signed   = "renkei/envelope/v1" 0x00 || SHA-256(sealed) || header
//! ```

use ciborium::value::Value;
use std::sync::OnceLock;

use sha2::{Digest, Sha256};

use crate::cbor::{self, Fields};
use crate::error::{DecodeError, SealError, VerifyError};
use crate::ids::{DocKind, EnvelopeId, OfficeNumber, OperatorId, ServiceKind, Stamp};
use crate::keys::{EncPublicKey, OperatorKeys, SignatureCheck, Strict, check_labelled};
use crate::limits::{
    ENVELOPE_BYTES_MAX, FILE_NAME_BYTES_MAX, FILES_PER_ENVELOPE_MAX, HEADER_BYTES_MAX,
};
use crate::seal;
use crate::seal::SealTables;

/// Signature label of envelopes.
pub const ENVELOPE_SIG_LABEL: &[u8] = b"renkei/envelope/v1";
/// Version of the envelope and header encodings.
pub const ENVELOPE_VERSION: u64 = 1;

/// A SHA-256 digest.
pub type Digest32 = [u8; 32];

/// SHA-256 of bytes.
pub fn sha256(b: &[u8]) -> Digest32 {
    Sha256::digest(b).into()
}

/// An office and the service kind it acts as.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Party {
    /// 事業所番号.
    pub office: OfficeNumber,
    /// サービス種類コード.
    pub kind: ServiceKind,
}

/// One file of the send unit as listed in the header.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FileEntry {
    /// The standard file name, exactly as uploaded.
    pub name: String,
    /// Plaintext length in bytes.
    pub len: u64,
    /// SHA-256 of the plaintext bytes.
    pub sha256: Digest32,
}

/// The signed, readable-by-relays part of an envelope.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Header {
    /// Envelope id (chosen once by the origin).
    pub id: EnvelopeId,
    /// Sending office.
    pub from: Party,
    /// Receiving office.
    pub to: Party,
    /// Operator that signed the envelope.
    pub origin: OperatorId,
    /// Operator homing the receiving office.
    pub destination: OperatorId,
    /// X25519 key of `destination` the payload is sealed to.
    pub sealed_to: EncPublicKey,
    /// Document category.
    pub doc_kind: DocKind,
    /// 対象年月 (`YYYYMM`) or 計画作成日 (`YYYYMMDD`) when the unit has one.
    pub subject: Option<String>,
    /// ファイル連番 shared by the unit's files.
    pub stamp: Stamp,
    /// The envelope this one replaces, if the sender says so.
    pub supersedes: Option<EnvelopeId>,
    /// Creation time at the origin, milliseconds since the Unix epoch.
    pub created_at_ms: u64,
    /// The files, in payload order.
    pub files: Vec<FileEntry>,
}

impl Header {
    fn to_value(&self) -> Value {
        let files = self
            .files
            .iter()
            .map(|f| {
                Value::Array(vec![
                    cbor::text(&f.name),
                    cbor::uint(f.len),
                    cbor::bytes(&f.sha256),
                ])
            })
            .collect();
        Value::Array(vec![
            cbor::uint(ENVELOPE_VERSION),
            cbor::bytes(self.id.as_bytes()),
            cbor::text(self.from.office.as_str()),
            cbor::text(self.from.kind.as_str()),
            cbor::text(self.to.office.as_str()),
            cbor::text(self.to.kind.as_str()),
            cbor::bytes(self.origin.as_bytes()),
            cbor::bytes(self.destination.as_bytes()),
            cbor::bytes(&self.sealed_to),
            cbor::uint(u64::from(self.doc_kind.code())),
            self.subject.as_deref().map_or(Value::Null, cbor::text),
            cbor::text(self.stamp.as_str()),
            self.supersedes
                .map_or(Value::Null, |s| cbor::bytes(s.as_bytes())),
            cbor::uint(self.created_at_ms),
            Value::Array(files),
        ])
    }

    /// The canonical header bytes (what is signed and used as sealing AAD).
    pub fn encode(&self) -> Vec<u8> {
        cbor::encode(&self.to_value())
    }

    /// Decodes canonical header bytes.
    pub fn decode(bytes: &[u8]) -> Result<Header, DecodeError> {
        const W: &str = "envelope header";
        let mut f = Fields::new(cbor::decode_canonical(bytes, W, HEADER_BYTES_MAX)?, W, 15)?;
        f.version(ENVELOPE_VERSION)?;
        let id = EnvelopeId(f.array("id")?);
        let from = Party {
            office: f.parse("from_office")?,
            kind: f.parse("from_kind")?,
        };
        let to = Party {
            office: f.parse("to_office")?,
            kind: f.parse("to_kind")?,
        };
        let origin = OperatorId(f.array("origin")?);
        let destination = OperatorId(f.array("destination")?);
        let sealed_to = f.array("sealed_to")?;
        let doc_kind =
            DocKind::from_code(f.uint("doc_kind")?).map_err(|e| f.id_err("doc_kind", e))?;
        let subject = f.opt_text("subject")?;
        if let Some(s) = &subject
            && (!(s.len() == 6 || s.len() == 8) || !s.bytes().all(|b| b.is_ascii_digit()))
        {
            return Err(DecodeError::Field {
                what: W,
                field: "subject",
                expected: "null, YYYYMM or YYYYMMDD",
            });
        }
        let stamp: Stamp = f.parse("stamp")?;
        let supersedes = f.opt_array("supersedes")?.map(EnvelopeId);
        let created_at_ms = f.uint("created_at")?;
        let mut files = Vec::new();
        for item in f.list("files", FILES_PER_ENVELOPE_MAX)? {
            let mut g = Fields::new(item, "envelope header file entry", 3)?;
            let name = g.text("name")?;
            if name.is_empty() || name.len() > FILE_NAME_BYTES_MAX {
                return Err(DecodeError::Field {
                    what: W,
                    field: "files.name",
                    expected: "1..128 bytes",
                });
            }
            files.push(FileEntry {
                name,
                len: g.uint("length")?,
                sha256: g.array("sha256")?,
            });
        }
        if files.is_empty() {
            return Err(DecodeError::Field {
                what: W,
                field: "files",
                expected: "a non-empty array",
            });
        }
        Ok(Header {
            id,
            from,
            to,
            origin,
            destination,
            sealed_to,
            doc_kind,
            subject,
            stamp,
            supersedes,
            created_at_ms,
            files,
        })
    }
}

/// A signed envelope. The header and sealed payload are carried as the exact bytes that
/// were signed; nothing re-encodes them.
#[derive(Clone, Debug)]
pub struct Envelope {
    header: Header,
    header_bytes: Vec<u8>,
    sealed: Vec<u8>,
    signature: [u8; 64],
    /// SHA-256 of `sealed`, once computed (the signature covers it).
    sealed_sha256: OnceLock<Digest32>,
}

impl PartialEq for Envelope {
    fn eq(&self, other: &Self) -> bool {
        // `header` is decoded from `header_bytes`; the digest is a function of `sealed`.
        self.header_bytes == other.header_bytes
            && self.sealed == other.sealed
            && self.signature == other.signature
    }
}

impl Eq for Envelope {}

fn signed_message(header_bytes: &[u8], sealed_sha256: &Digest32) -> Vec<u8> {
    let mut m = Vec::with_capacity(32 + header_bytes.len());
    m.extend_from_slice(sealed_sha256);
    m.extend_from_slice(header_bytes);
    m
}

fn payload_value(files: &[&[u8]]) -> Vec<u8> {
    cbor::encode(&Value::Array(
        files.iter().map(|f| cbor::bytes(f)).collect(),
    ))
}

impl Envelope {
    /// Builds the file list of a header from file names and bytes.
    pub fn file_entries(files: &[(&str, &[u8])]) -> Vec<FileEntry> {
        files
            .iter()
            .map(|(name, bytes)| FileEntry {
                name: (*name).to_owned(),
                len: bytes.len() as u64,
                sha256: sha256(bytes),
            })
            .collect()
    }

    /// Seals `files` (which must match `header.files`: count, lengths and SHA-256s) to
    /// `header.sealed_to`, and signs as `origin`, whose id must be `header.origin`.
    pub fn seal_and_sign(
        header: Header,
        files: &[&[u8]],
        origin: &OperatorKeys,
        ephemeral_seed: [u8; 32],
    ) -> Result<Envelope, SealError> {
        Self::seal_and_sign_by(
            &SealTables::default(),
            header,
            files,
            origin,
            ephemeral_seed,
        )
    }

    /// [`Envelope::seal_and_sign`], sealing through `tables` (the same bytes).
    pub fn seal_and_sign_by(
        tables: &SealTables,
        header: Header,
        files: &[&[u8]],
        origin: &OperatorKeys,
        ephemeral_seed: [u8; 32],
    ) -> Result<Envelope, SealError> {
        if header.origin != origin.id() {
            return Err(SealError::Content(
                "header origin is not the signing operator".into(),
            ));
        }
        check_files(&header, files)?;
        let header_bytes = header.encode();
        let sealed = seal::seal_by(
            tables,
            &header.sealed_to,
            &header_bytes,
            &payload_value(files),
            ephemeral_seed,
        )?;
        let sealed_sha256 = sha256(&sealed);
        let signature = origin.identity.sign(
            ENVELOPE_SIG_LABEL,
            &signed_message(&header_bytes, &sealed_sha256),
        );
        Ok(Envelope {
            header,
            header_bytes,
            sealed,
            signature,
            sealed_sha256: OnceLock::from(sealed_sha256),
        })
    }

    /// SHA-256 of the sealed payload.
    fn sealed_sha256(&self) -> &Digest32 {
        self.sealed_sha256.get_or_init(|| sha256(&self.sealed))
    }

    /// The decoded header.
    pub fn header(&self) -> &Header {
        &self.header
    }
    /// The canonical header bytes.
    pub fn header_bytes(&self) -> &[u8] {
        &self.header_bytes
    }
    /// The sealed payload.
    pub fn sealed(&self) -> &[u8] {
        &self.sealed
    }
    /// The origin signature.
    pub fn signature(&self) -> &[u8; 64] {
        &self.signature
    }
    /// The envelope id.
    pub fn id(&self) -> EnvelopeId {
        self.header.id
    }
    /// The envelope digest named by receipts: SHA-256 of the canonical header bytes (which
    /// commit to every file's SHA-256).
    pub fn digest(&self) -> Digest32 {
        sha256(&self.header_bytes)
    }

    /// The canonical envelope bytes.
    pub fn encode(&self) -> Vec<u8> {
        cbor::encode(&Value::Array(vec![
            cbor::uint(ENVELOPE_VERSION),
            cbor::bytes(&self.header_bytes),
            cbor::bytes(&self.sealed),
            cbor::bytes(&self.signature),
        ]))
    }

    /// The header bytes inside an encoded envelope, found without decoding the rest (the
    /// sealed payload is most of an envelope): what a receipt's digest and a header need.
    /// None when `bytes` does not start as a version-1 envelope does. Nothing is checked
    /// beyond that: [`Envelope::decode`] is what accepts an envelope.
    pub fn header_bytes_in(bytes: &[u8]) -> Option<&[u8]> {
        // [version, header, sealed, signature]: array(4), uint 1, then a byte string.
        let rest = bytes.strip_prefix(&[0x84, ENVELOPE_VERSION as u8])?;
        let (&first, rest) = rest.split_first()?;
        if first >> 5 != 2 {
            return None;
        }
        let (len, rest) = match first & 0x1f {
            n @ 0..=23 => (u64::from(n), rest),
            24 => (u64::from(*rest.first()?), rest.get(1..)?),
            25 => (
                u64::from(u16::from_be_bytes(rest.get(..2)?.try_into().ok()?)),
                rest.get(2..)?,
            ),
            26 => (
                u64::from(u32::from_be_bytes(rest.get(..4)?.try_into().ok()?)),
                rest.get(4..)?,
            ),
            27 => (
                u64::from_be_bytes(rest.get(..8)?.try_into().ok()?),
                rest.get(8..)?,
            ),
            _ => return None,
        };
        rest.get(..usize::try_from(len).ok()?)
    }

    /// Decodes envelope bytes (bounded by [`ENVELOPE_BYTES_MAX`]). Does not verify.
    pub fn decode(bytes: &[u8]) -> Result<Envelope, DecodeError> {
        const W: &str = "envelope";
        let mut f = Fields::new(cbor::decode_canonical(bytes, W, ENVELOPE_BYTES_MAX)?, W, 4)?;
        f.version(ENVELOPE_VERSION)?;
        let header_bytes = f.bytes("header")?;
        let sealed = f.bytes("sealed")?;
        let signature = f.array("signature")?;
        let header = Header::decode(&header_bytes)?;
        Ok(Envelope {
            header,
            header_bytes,
            sealed,
            signature,
            sealed_sha256: OnceLock::new(),
        })
    }

    /// Verifies the origin signature under the header's `origin` key. Whether that key
    /// belongs to a roster operator is the caller's check (see [`crate::roster::Roster`]).
    pub fn verify(&self) -> Result<(), VerifyError> {
        self.verify_by(&Strict)
    }

    /// [`Envelope::verify`] by `check`.
    pub fn verify_by(&self, check: &dyn SignatureCheck) -> Result<(), VerifyError> {
        check_labelled(
            check,
            "envelope",
            &self.header.origin,
            ENVELOPE_SIG_LABEL,
            &signed_message(&self.header_bytes, self.sealed_sha256()),
            &self.signature,
        )
    }

    /// Opens the payload with the destination's keys and checks every file against the
    /// header (count, length, SHA-256). Returns the files' bytes in header order.
    pub fn open(&self, keys: &OperatorKeys) -> Result<Vec<Vec<u8>>, SealError> {
        let pair = keys
            .seal_for(&self.header.sealed_to)
            .ok_or(SealError::Open)?;
        let plain = seal::open(pair, &self.header_bytes, &self.sealed)?;
        const W: &str = "envelope payload";
        let v = cbor::decode_canonical(&plain, W, usize::MAX)?;
        let files = match v {
            Value::Array(items) => items
                .into_iter()
                .map(|i| match i {
                    Value::Bytes(b) => Ok(b),
                    _ => Err(DecodeError::Field {
                        what: W,
                        field: "file",
                        expected: "a byte string",
                    }),
                })
                .collect::<Result<Vec<_>, _>>()?,
            _ => {
                return Err(DecodeError::Field {
                    what: W,
                    field: "(top level)",
                    expected: "an array",
                }
                .into());
            }
        };
        let refs: Vec<&[u8]> = files.iter().map(Vec::as_slice).collect();
        // The header commits to every file; the payload must deliver exactly those.
        check_files(&self.header, &refs)?;
        Ok(files)
    }
}

fn check_files(header: &Header, files: &[&[u8]]) -> Result<(), SealError> {
    if header.files.len() != files.len() {
        return Err(SealError::Content(format!(
            "header lists {} files, payload has {}",
            header.files.len(),
            files.len()
        )));
    }
    for (entry, bytes) in header.files.iter().zip(files) {
        if entry.len != bytes.len() as u64 || entry.sha256 != sha256(bytes) {
            return Err(SealError::Content(format!(
                "file {} does not match its length or SHA-256",
                entry.name
            )));
        }
    }
    Ok(())
}
