//! Envelopes: one send unit (several standard CSV files, optionally JPEGs) from one office to
//! another, sealed to the destination operator and signed by the origin operator.
//!
//! Encoding (canonical CBOR, see `docs/PROTOCOL.md`). Version 2, what a node writes:
//!
//! ```text
//! envelope = [2, header: bstr, sealed: bstr, signature: bstr .size 64]
//! header   = [2, id, from_office, from_kind, to_office, to_kind, origin, destination,
//!             sealed_to, doc_kind, stamp, supersedes / null, created_at_ms,
//!             inner_sha256: bstr .size 32]          ; the cleartext every hop reads
//! inner    = [salt: bstr .size 16, subject / null, [* [name, length, sha256]]]
//! payload  = [inner: bstr, [* bstr]]  ; sealed: the inner header and the files' bytes
//! signed   = "renkei/envelope/v1" 0x00 || SHA-256(sealed) || header
//! ```
//!
//! The plan's date (`subject`), the file names and the files' digests are sealed with the
//! files; the cleartext commits to them through `inner_sha256`, which the random `salt`
//! makes useless for confirming a guessed content. Version 1 (everything in the cleartext
//! header, `payload = [* bstr]`) is still read:
//!
//! ```text
//! header   = [1, id, from_office, from_kind, to_office, to_kind, origin, destination,
//!             sealed_to, doc_kind, subject / null, stamp, supersedes / null, created_at_ms,
//!             [* [name, length, sha256]]]
//! ```
//!
//! A whole header (both parts, as the origin and, after opening, the destination know it)
//! is stored and carried in proofs as `[2, header: bstr, inner: bstr]` (version 1: the
//! version-1 header bytes).

use ciborium::value::Value;
use std::ops::{Deref, DerefMut};
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
/// Version of the envelope and header encodings a node writes.
pub const ENVELOPE_VERSION: u64 = 2;
/// The earlier version, still read: everything but the files in the cleartext header.
pub const ENVELOPE_VERSION_1: u64 = 1;

/// A SHA-256 digest.
pub type Digest32 = [u8; 32];

/// SHA-256 of bytes.
pub fn sha256(b: &[u8]) -> Digest32 {
    Sha256::digest(b).into()
}

/// The salt of a version-2 header, derived from the envelope's ephemeral seed (secret, fresh
/// for every envelope): a function of it, so a simulation replays, and unknowable to hops.
pub fn salt_from_seed(ephemeral_seed: &[u8; 32]) -> [u8; 16] {
    let mut h = Sha256::new();
    h.update(b"renkei/envelope/v2/salt\0");
    h.update(ephemeral_seed);
    let d: Digest32 = h.finalize().into();
    let mut salt = [0; 16];
    salt.copy_from_slice(&d[..16]);
    salt
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

/// The cleartext part of a header: what every hop reads (routing, dedup, receipts, and the
/// destination's checks before it opens the payload).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Outer {
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
    /// ファイル連番 shared by the unit's files.
    pub stamp: Stamp,
    /// The envelope this one replaces, if the sender says so.
    pub supersedes: Option<EnvelopeId>,
    /// Creation time at the origin, milliseconds since the Unix epoch.
    pub created_at_ms: u64,
}

/// A whole header, as the origin writes it and the destination reads it once it has opened
/// the payload: the cleartext part (reached through `Deref`) and the sealed part.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Header {
    /// What every hop reads.
    pub outer: Outer,
    /// 対象年月 (`YYYYMM`) or 計画作成日 (`YYYYMMDD`) when the unit has one.
    pub subject: Option<String>,
    /// The files, in payload order.
    pub files: Vec<FileEntry>,
    /// Random bytes sealed with `subject` and `files` (version 2): the cleartext holds only
    /// a digest of the three, which without the salt confirms no guess. `None`: a version-1
    /// header, everything in the cleartext.
    pub salt: Option<[u8; 16]>,
}

impl Deref for Header {
    type Target = Outer;
    fn deref(&self) -> &Outer {
        &self.outer
    }
}

impl DerefMut for Header {
    fn deref_mut(&mut self) -> &mut Outer {
        &mut self.outer
    }
}

const W_HEADER: &str = "envelope header";
const W_INNER: &str = "envelope inner header";
const W_STORED: &str = "stored envelope header";

fn files_value(files: &[FileEntry]) -> Value {
    Value::Array(
        files
            .iter()
            .map(|f| {
                Value::Array(vec![
                    cbor::text(&f.name),
                    cbor::uint(f.len),
                    cbor::bytes(&f.sha256),
                ])
            })
            .collect(),
    )
}

/// The header fields before `subject` (version 1) or `stamp` (both versions).
fn outer_head(version: u64, o: &Outer) -> Vec<Value> {
    vec![
        cbor::uint(version),
        cbor::bytes(o.id.as_bytes()),
        cbor::text(o.from.office.as_str()),
        cbor::text(o.from.kind.as_str()),
        cbor::text(o.to.office.as_str()),
        cbor::text(o.to.kind.as_str()),
        cbor::bytes(o.origin.as_bytes()),
        cbor::bytes(o.destination.as_bytes()),
        cbor::bytes(&o.sealed_to),
        cbor::uint(u64::from(o.doc_kind.code())),
    ]
}

fn outer_tail(o: &Outer) -> [Value; 3] {
    [
        cbor::text(o.stamp.as_str()),
        o.supersedes
            .map_or(Value::Null, |s| cbor::bytes(s.as_bytes())),
        cbor::uint(o.created_at_ms),
    ]
}

fn subject_value(subject: &Option<String>) -> Value {
    subject.as_deref().map_or(Value::Null, cbor::text)
}

/// The first item of a CBOR array, as a version number.
fn version_of(v: &Value) -> Option<u64> {
    match v {
        Value::Array(items) => match items.first() {
            Some(Value::Integer(i)) => u64::try_from(*i).ok(),
            _ => None,
        },
        _ => None,
    }
}

fn unknown_version(what: &'static str, got: Option<u64>) -> DecodeError {
    match got {
        Some(got) => DecodeError::UnknownVersion {
            what,
            got,
            want: ENVELOPE_VERSION,
        },
        None => DecodeError::Field {
            what,
            field: "(top level)",
            expected: "an array starting with its version",
        },
    }
}

/// Reads the cleartext fields in order; `subject` only in version 1, where it sits between
/// `doc_kind` and `stamp`.
fn read_outer(f: &mut Fields, v1: bool) -> Result<(Outer, Option<String>), DecodeError> {
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
    let doc_kind = DocKind::from_code(f.uint("doc_kind")?).map_err(|e| f.id_err("doc_kind", e))?;
    let subject = if v1 { read_subject(f, W_HEADER)? } else { None };
    let stamp: Stamp = f.parse("stamp")?;
    let supersedes = f.opt_array("supersedes")?.map(EnvelopeId);
    let created_at_ms = f.uint("created_at")?;
    Ok((
        Outer {
            id,
            from,
            to,
            origin,
            destination,
            sealed_to,
            doc_kind,
            stamp,
            supersedes,
            created_at_ms,
        },
        subject,
    ))
}

fn read_subject(f: &mut Fields, what: &'static str) -> Result<Option<String>, DecodeError> {
    let subject = f.opt_text("subject")?;
    if let Some(s) = &subject
        && (!(s.len() == 6 || s.len() == 8) || !s.bytes().all(|b| b.is_ascii_digit()))
    {
        return Err(DecodeError::Field {
            what,
            field: "subject",
            expected: "null, YYYYMM or YYYYMMDD",
        });
    }
    Ok(subject)
}

fn read_files(f: &mut Fields, what: &'static str) -> Result<Vec<FileEntry>, DecodeError> {
    let mut files = Vec::new();
    for item in f.list("files", FILES_PER_ENVELOPE_MAX)? {
        let mut g = Fields::new(item, "envelope header file entry", 3)?;
        let name = g.text("name")?;
        if name.is_empty() || name.len() > FILE_NAME_BYTES_MAX {
            return Err(DecodeError::Field {
                what,
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
            what,
            field: "files",
            expected: "a non-empty array",
        });
    }
    Ok(files)
}

/// Decodes the cleartext header bytes of either version: the cleartext part and, for
/// version 1, the rest (in the clear); for version 2, the digest of the sealed part.
fn decode_cleartext(bytes: &[u8]) -> Result<(Outer, Inner), DecodeError> {
    let v = cbor::decode_canonical(bytes, W_HEADER, HEADER_BYTES_MAX)?;
    match version_of(&v) {
        Some(ENVELOPE_VERSION_1) => {
            let mut f = Fields::new(v, W_HEADER, 15)?;
            f.version(ENVELOPE_VERSION_1)?;
            let (outer, subject) = read_outer(&mut f, true)?;
            let files = read_files(&mut f, W_HEADER)?;
            Ok((outer, Inner::Clear { subject, files }))
        }
        Some(ENVELOPE_VERSION) => {
            let mut f = Fields::new(v, W_HEADER, 14)?;
            f.version(ENVELOPE_VERSION)?;
            let (outer, _) = read_outer(&mut f, false)?;
            let digest = f.array("inner_sha256")?;
            Ok((outer, Inner::Sealed(digest)))
        }
        got => Err(unknown_version(W_HEADER, got)),
    }
}

/// A version-2 inner header: salt, subject, files.
type InnerHeader = ([u8; 16], Option<String>, Vec<FileEntry>);

/// Decodes a version-2 inner header (after checking it is the one the cleartext names).
fn decode_inner(bytes: &[u8], digest: &Digest32) -> Result<InnerHeader, DecodeError> {
    if sha256(bytes) != *digest {
        return Err(DecodeError::Field {
            what: W_INNER,
            field: "(whole)",
            expected: "the bytes whose SHA-256 the cleartext header names",
        });
    }
    let mut f = Fields::new(
        cbor::decode_canonical(bytes, W_INNER, HEADER_BYTES_MAX)?,
        W_INNER,
        3,
    )?;
    let salt = f.array("salt")?;
    let subject = read_subject(&mut f, W_INNER)?;
    let files = read_files(&mut f, W_INNER)?;
    Ok((salt, subject, files))
}

impl Header {
    fn v1_value(&self) -> Value {
        let mut items = outer_head(ENVELOPE_VERSION_1, &self.outer);
        items.push(subject_value(&self.subject));
        items.extend(outer_tail(&self.outer));
        items.push(files_value(&self.files));
        Value::Array(items)
    }

    fn inner_bytes(&self, salt: &[u8; 16]) -> Vec<u8> {
        cbor::encode(&Value::Array(vec![
            cbor::bytes(salt),
            subject_value(&self.subject),
            files_value(&self.files),
        ]))
    }

    fn outer_bytes(&self, inner: &[u8]) -> Vec<u8> {
        let mut items = outer_head(ENVELOPE_VERSION, &self.outer);
        items.extend(outer_tail(&self.outer));
        items.push(cbor::bytes(&sha256(inner)));
        cbor::encode(&Value::Array(items))
    }

    /// The cleartext header bytes (what is signed, sealed over as AAD, and hashed into
    /// [`Header::digest`]) and, for version 2, the inner header bytes sealed with the files.
    pub fn parts(&self) -> (Vec<u8>, Option<Vec<u8>>) {
        match &self.salt {
            None => (cbor::encode(&self.v1_value()), None),
            Some(salt) => {
                let inner = self.inner_bytes(salt);
                (self.outer_bytes(&inner), Some(inner))
            }
        }
    }

    /// The cleartext header bytes.
    pub fn wire_bytes(&self) -> Vec<u8> {
        self.parts().0
    }

    /// The envelope digest receipts name: SHA-256 of the cleartext header bytes (which
    /// commit to every file's SHA-256, in version 2 through the inner header's digest).
    pub fn digest(&self) -> Digest32 {
        sha256(&self.wire_bytes())
    }

    /// The header's version.
    pub fn version(&self) -> u64 {
        if self.salt.is_some() {
            ENVELOPE_VERSION
        } else {
            ENVELOPE_VERSION_1
        }
    }

    /// The whole header's canonical bytes, as nodes store it and proofs carry it: version 1,
    /// the header bytes; version 2, `[2, header: bstr, inner: bstr]`.
    pub fn encode(&self) -> Vec<u8> {
        match self.parts() {
            (v1, None) => v1,
            (outer, Some(inner)) => cbor::encode(&Value::Array(vec![
                cbor::uint(ENVELOPE_VERSION),
                cbor::bytes(&outer),
                cbor::bytes(&inner),
            ])),
        }
    }

    /// The envelope digest of a whole header's stored bytes ([`Header::encode`]), without
    /// decoding the sealed part: the SHA-256 of the cleartext header (version 1: of the
    /// bytes themselves). Equal to `Header::decode(bytes)?.digest()` for bytes that decode;
    /// it checks only the stored form's shape, so a caller that needs the header decodes it.
    pub fn stored_digest(bytes: &[u8]) -> Result<Digest32, DecodeError> {
        let v = cbor::decode_canonical(bytes, W_STORED, 2 * HEADER_BYTES_MAX)?;
        match version_of(&v) {
            Some(ENVELOPE_VERSION_1) => Ok(sha256(bytes)),
            Some(ENVELOPE_VERSION) => {
                let mut f = Fields::new(v, W_STORED, 3)?;
                f.version(ENVELOPE_VERSION)?;
                Ok(sha256(&f.bytes("header")?))
            }
            got => Err(unknown_version(W_STORED, got)),
        }
    }

    /// Decodes a whole header ([`Header::encode`]'s bytes, either version).
    pub fn decode(bytes: &[u8]) -> Result<Header, DecodeError> {
        let v = cbor::decode_canonical(bytes, W_STORED, 2 * HEADER_BYTES_MAX)?;
        match version_of(&v) {
            Some(ENVELOPE_VERSION_1) => {
                let (outer, inner) = decode_cleartext(bytes)?;
                let Inner::Clear { subject, files } = inner else {
                    return Err(unknown_version(W_STORED, Some(ENVELOPE_VERSION)));
                };
                Ok(Header {
                    outer,
                    subject,
                    files,
                    salt: None,
                })
            }
            Some(ENVELOPE_VERSION) => {
                let mut f = Fields::new(v, W_STORED, 3)?;
                f.version(ENVELOPE_VERSION)?;
                let outer_bytes = f.bytes("header")?;
                let inner_bytes = f.bytes("inner")?;
                let (outer, inner) = decode_cleartext(&outer_bytes)?;
                let Inner::Sealed(digest) = inner else {
                    return Err(DecodeError::Field {
                        what: W_STORED,
                        field: "header",
                        expected: "a version-2 header",
                    });
                };
                let (salt, subject, files) = decode_inner(&inner_bytes, &digest)?;
                Ok(Header {
                    outer,
                    subject,
                    files,
                    salt: Some(salt),
                })
            }
            got => Err(unknown_version(W_STORED, got)),
        }
    }
}

/// What an envelope's cleartext says of its sealed part.
#[derive(Clone, Debug)]
enum Inner {
    /// Version 1: the subject and the files, in the clear.
    Clear {
        subject: Option<String>,
        files: Vec<FileEntry>,
    },
    /// Version 2: the SHA-256 of the inner header sealed with the files.
    Sealed(Digest32),
}

/// A signed envelope. The header and sealed payload are carried as the exact bytes that
/// were signed; nothing re-encodes them.
#[derive(Clone, Debug)]
pub struct Envelope {
    outer: Outer,
    inner: Inner,
    header_bytes: Vec<u8>,
    sealed: Vec<u8>,
    signature: [u8; 64],
    /// SHA-256 of `sealed`, once computed (the signature covers it).
    sealed_sha256: OnceLock<Digest32>,
}

impl PartialEq for Envelope {
    fn eq(&self, other: &Self) -> bool {
        // The header is decoded from `header_bytes`; the digest is a function of `sealed`.
        self.header_bytes == other.header_bytes
            && self.sealed == other.sealed
            && self.signature == other.signature
    }
}

impl Eq for Envelope {}

/// The message an origin signs (under [`ENVELOPE_SIG_LABEL`]): the sealed payload's
/// SHA-256, then the cleartext header bytes (PROTOCOL.md §3).
pub fn signed_message(header_bytes: &[u8], sealed_sha256: &Digest32) -> Vec<u8> {
    let mut m = Vec::with_capacity(32 + header_bytes.len());
    m.extend_from_slice(sealed_sha256);
    m.extend_from_slice(header_bytes);
    m
}

fn files_bytes_value(files: &[&[u8]]) -> Value {
    Value::Array(files.iter().map(|f| cbor::bytes(f)).collect())
}

/// What opening an envelope gives: the whole header and the files' bytes, in header order.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Opened {
    /// The whole header (for version 2, with the inner part read from the payload).
    pub header: Header,
    /// The files.
    pub files: Vec<Vec<u8>>,
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
    /// `header.sealed_to`, and signs as `origin`, whose id must be `header.origin`. The
    /// header's `salt` decides the version: `Some` (what nodes write) makes version 2.
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
        check_files(&header.files, files)?;
        let (header_bytes, inner_bytes) = header.parts();
        let (payload, inner) = match inner_bytes {
            None => (
                cbor::encode(&files_bytes_value(files)),
                Inner::Clear {
                    subject: header.subject,
                    files: header.files,
                },
            ),
            Some(inner) => (
                cbor::encode(&Value::Array(vec![
                    cbor::bytes(&inner),
                    files_bytes_value(files),
                ])),
                Inner::Sealed(sha256(&inner)),
            ),
        };
        let sealed = seal::seal_by(
            tables,
            &header.outer.sealed_to,
            &header_bytes,
            &payload,
            ephemeral_seed,
        )?;
        let sealed_sha256 = sha256(&sealed);
        let signature = origin.identity.sign(
            ENVELOPE_SIG_LABEL,
            &signed_message(&header_bytes, &sealed_sha256),
        );
        Ok(Envelope {
            outer: header.outer,
            inner,
            header_bytes,
            sealed,
            signature,
            sealed_sha256: OnceLock::from(sealed_sha256),
        })
    }

    /// SHA-256 of the sealed payload.
    pub fn sealed_sha256(&self) -> &Digest32 {
        self.sealed_sha256.get_or_init(|| sha256(&self.sealed))
    }

    /// The cleartext header: what every hop reads.
    pub fn header(&self) -> &Outer {
        &self.outer
    }
    /// The envelope's version (1 or 2).
    pub fn version(&self) -> u64 {
        match self.inner {
            Inner::Clear { .. } => ENVELOPE_VERSION_1,
            Inner::Sealed(_) => ENVELOPE_VERSION,
        }
    }
    /// The canonical cleartext header bytes.
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
        self.outer.id
    }
    /// The envelope digest named by receipts: SHA-256 of the canonical cleartext header
    /// bytes (which commit to every file's SHA-256).
    pub fn digest(&self) -> Digest32 {
        sha256(&self.header_bytes)
    }

    /// Whether `header` is this envelope's whole header (its cleartext bytes are these).
    pub fn is_header_of(&self, header: &Header) -> bool {
        header.wire_bytes() == self.header_bytes
    }

    /// The canonical envelope bytes.
    pub fn encode(&self) -> Vec<u8> {
        cbor::encode(&Value::Array(vec![
            cbor::uint(self.version()),
            cbor::bytes(&self.header_bytes),
            cbor::bytes(&self.sealed),
            cbor::bytes(&self.signature),
        ]))
    }

    /// The header bytes inside an encoded envelope, found without decoding the rest (the
    /// sealed payload is most of an envelope): what a receipt's digest and a header need.
    /// None when `bytes` does not start as an envelope does. Nothing is checked beyond
    /// that: [`Envelope::decode`] is what accepts an envelope.
    pub fn header_bytes_in(bytes: &[u8]) -> Option<&[u8]> {
        // [version, header, sealed, signature]: array(4), uint 1 or 2, then a byte string.
        let rest = bytes
            .strip_prefix(&[0x84, ENVELOPE_VERSION as u8])
            .or_else(|| bytes.strip_prefix(&[0x84, ENVELOPE_VERSION_1 as u8]))?;
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

    /// Decodes envelope bytes (bounded by [`ENVELOPE_BYTES_MAX`]), either version. Does not
    /// verify.
    pub fn decode(bytes: &[u8]) -> Result<Envelope, DecodeError> {
        const W: &str = "envelope";
        let v = cbor::decode_canonical(bytes, W, ENVELOPE_BYTES_MAX)?;
        let version = match version_of(&v) {
            Some(n @ (ENVELOPE_VERSION_1 | ENVELOPE_VERSION)) => n,
            got => return Err(unknown_version(W, got)),
        };
        let mut f = Fields::new(v, W, 4)?;
        f.version(version)?;
        let header_bytes = f.bytes("header")?;
        let sealed = f.bytes("sealed")?;
        let signature = f.array("signature")?;
        let (outer, inner) = decode_cleartext(&header_bytes)?;
        let header_version = match inner {
            Inner::Clear { .. } => ENVELOPE_VERSION_1,
            Inner::Sealed(_) => ENVELOPE_VERSION,
        };
        if header_version != version {
            return Err(DecodeError::Field {
                what: W,
                field: "header",
                expected: "a header of the envelope's version",
            });
        }
        Ok(Envelope {
            outer,
            inner,
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
            &self.outer.origin,
            ENVELOPE_SIG_LABEL,
            &signed_message(&self.header_bytes, self.sealed_sha256()),
            &self.signature,
        )
    }

    /// Opens the payload with the destination's keys, reads the whole header (version 2:
    /// the inner header sealed with the files, checked against the cleartext's digest) and
    /// checks every file against it (count, length, SHA-256).
    pub fn open(&self, keys: &OperatorKeys) -> Result<Opened, SealError> {
        let pair = keys
            .seal_for(&self.outer.sealed_to)
            .ok_or(SealError::Open)?;
        let plain = seal::open(pair, &self.header_bytes, &self.sealed)?;
        const W: &str = "envelope payload";
        let v = cbor::decode_canonical(&plain, W, usize::MAX)?;
        let (header, files) = match &self.inner {
            Inner::Clear { subject, files } => (
                Header {
                    outer: self.outer.clone(),
                    subject: subject.clone(),
                    files: files.clone(),
                    salt: None,
                },
                v,
            ),
            Inner::Sealed(digest) => {
                let mut f = Fields::new(v, W, 2)?;
                let inner = f.bytes("inner")?;
                let (salt, subject, entries) = decode_inner(&inner, digest)?;
                (
                    Header {
                        outer: self.outer.clone(),
                        subject,
                        files: entries,
                        salt: Some(salt),
                    },
                    f.value("files")?,
                )
            }
        };
        let files = match files {
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
                    field: "files",
                    expected: "an array",
                }
                .into());
            }
        };
        let refs: Vec<&[u8]> = files.iter().map(Vec::as_slice).collect();
        // The header commits to every file; the payload must deliver exactly those.
        check_files(&header.files, &refs)?;
        Ok(Opened { header, files })
    }
}

fn check_files(entries: &[FileEntry], files: &[&[u8]]) -> Result<(), SealError> {
    if entries.len() != files.len() {
        return Err(SealError::Content(format!(
            "header lists {} files, payload has {}",
            entries.len(),
            files.len()
        )));
    }
    for (entry, bytes) in entries.iter().zip(files) {
        if entry.len != bytes.len() as u64 || entry.sha256 != sha256(bytes) {
            return Err(SealError::Content(format!(
                "file {} does not match its length or SHA-256",
                entry.name
            )));
        }
    }
    Ok(())
}
