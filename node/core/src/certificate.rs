//! The certificate of one unit an office sent or received (送信・受信証明, for 運営指導):
//! its parties, files with their SHA-256, every receipt with its operator and time, and the
//! result of verifying the unit's proof — the same check `renkei verify` runs offline —
//! against the roster this node holds.

use renkei_protocol::ids::{EnvelopeId, OfficeNumber};
use renkei_protocol::proof::Proof;
use renkei_protocol::roster::{OperatorEntry, Roster};
use serde::Serialize;

use super::Core;
use super::io::ApiReply;
use super::origin::file_views;
use super::views::{FileView, ReceiptView};
use crate::store::{Store, StoreError};

/// One party of a unit.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct PartyView {
    /// 事業所番号.
    pub office: String,
    /// サービス種類コード.
    pub kind: String,
    /// The office's name, when it is homed here.
    pub name: Option<String>,
    /// Its operator's name in the roster (or its id).
    pub operator: String,
}

/// A unit's certificate.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct CertificateView {
    /// Envelope id.
    pub id: String,
    /// Whether this office sent (`sent`) or received (`received`) it.
    pub role: String,
    /// Data kind (D1…D7).
    pub kind: String,
    /// 対象年月.
    pub subject: Option<String>,
    /// The send unit's stamp.
    pub stamp: String,
    /// Created at the origin.
    pub created_at_ms: u64,
    /// The sender.
    pub from: PartyView,
    /// The recipient.
    pub to: PartyView,
    /// The unit this one replaces.
    pub supersedes: Option<String>,
    /// The files.
    pub files: Vec<FileView>,
    /// Every receipt, oldest first.
    pub receipts: Vec<ReceiptView>,
    /// The proof verified: the origin's signature and every receipt's.
    pub verified: bool,
    /// What was verified, one line each, or why it failed.
    pub verification: Vec<String>,
    /// The roster verified against (none for a node without one: its own key only).
    pub roster_serial: Option<u64>,
    /// When this certificate was made.
    pub issued_at_ms: u64,
}

impl<S: Store> Core<S> {
    pub(super) fn certificate(
        &self,
        office: &OfficeNumber,
        id: EnvelopeId,
    ) -> Result<ApiReply, StoreError> {
        let bytes = match self.proof(office, id)? {
            ApiReply::Proof(b) => b,
            other => return Ok(other),
        };
        let proof = Proof::decode(&bytes).map_err(|e| StoreError::Corrupt {
            tree: "envelopes",
            detail: e.to_string(),
        })?;
        // A node without a roster (a single operator) verifies against its own key.
        let own;
        let roster: &Roster = match &self.roster {
            Some(r) => r.roster(),
            None => {
                own = Roster {
                    serial: 0,
                    issued_at_ms: 0,
                    authority: self.keys.id(),
                    operators: vec![OperatorEntry {
                        name: self.cfg.name.clone(),
                        id: self.keys.id(),
                        enc_key: self.keys.seal.public(),
                        relay: false,
                        addrs: vec![],
                        valid_from_ms: 0,
                        valid_until_ms: None,
                        old_keys: vec![],
                    }],
                };
                &own
            }
        };
        let (verified, verification) = match proof.verify(roster) {
            Ok(lines) => (!lines.iter().any(|l| l.starts_with("CONTRADICTION")), lines),
            Err(e) => (false, vec![e.to_string()]),
        };
        let h = proof.header();
        let party = |p: &renkei_protocol::envelope::Party, op| PartyView {
            office: p.office.to_string(),
            kind: p.kind.to_string(),
            name: self.office_name(&p.office),
            operator: self.operator_name(op).unwrap_or_else(|| op.to_string()),
        };
        Ok(ApiReply::Certificate(Box::new(CertificateView {
            id: id.to_string(),
            role: if &h.from.office == office {
                "sent"
            } else {
                "received"
            }
            .into(),
            kind: h.doc_kind.to_string(),
            subject: h.subject.clone(),
            stamp: h.stamp.to_string(),
            created_at_ms: h.created_at_ms,
            from: party(&h.from, &h.origin),
            to: party(&h.to, &h.destination),
            supersedes: h.supersedes.map(|s| s.to_string()),
            files: file_views(h),
            receipts: self.receipt_views(&id)?,
            verified,
            verification,
            roster_serial: self.roster.as_ref().map(|r| r.roster().serial),
            issued_at_ms: self.now,
        })))
    }
}
