//! The audit export of one office for one month (`renkei audit export`): the proof bundle
//! of every unit the office sent or received whose subject (対象年月 / 計画作成日) or
//! creation month (Japan time) is that month. See `renkei_protocol::export`.

use renkei_protocol::envelope::Header;
use renkei_protocol::export::{AuditExport, Direction, ExportEntry, check_month, unit_in_month};
use renkei_protocol::ids::{EnvelopeId, OfficeNumber};
use renkei_protocol::proof::Proof;

use super::Core;
use super::io::ApiReply;
use super::records::{self, InboxRec, SentRec};
use crate::store::{Store, StoreError, Tree, scan_prefix};

impl<S: Store> Core<S> {
    pub(super) fn audit_export(
        &self,
        office: &OfficeNumber,
        month: &str,
    ) -> Result<ApiReply, StoreError> {
        if let Err(e) = check_month(month) {
            return Ok(ApiReply::BadRequest(e));
        }
        if !self.offices.contains_key(office) {
            return Ok(ApiReply::NotFound(format!(
                "office {office} is not homed at this node"
            )));
        }
        let prefix = office.as_str().as_bytes();
        let mut units: Vec<(Direction, EnvelopeId, Vec<u8>)> = Vec::new();
        for (k, _) in scan_prefix(&self.store, Tree::SentIndex, prefix, usize::MAX)? {
            let Some(id) = k
                .get(k.len().saturating_sub(16)..)
                .and_then(|b| EnvelopeId::from_slice(b).ok())
            else {
                continue;
            };
            if let Some(rec) = records::get::<SentRec>(&self.store, Tree::Sent, id.as_bytes())? {
                units.push((Direction::Sent, id, rec.header));
            }
        }
        for (_, v) in scan_prefix(&self.store, Tree::Inbox, prefix, usize::MAX)? {
            let rec: InboxRec = records::decode(Tree::Inbox, &v)?;
            units.push((Direction::Received, rec.id, rec.header));
        }
        let mut entries = Vec::new();
        for (direction, id, header) in units {
            let Ok(h) = Header::decode(&header) else {
                return Err(StoreError::Corrupt {
                    tree: "sent/inbox",
                    detail: format!("header of {id} does not decode"),
                });
            };
            if !unit_in_month(&h, month) {
                continue;
            }
            match self.proof(office, id)? {
                ApiReply::Proof(bytes) => match Proof::decode(&bytes) {
                    Ok(proof) => entries.push(ExportEntry { direction, proof }),
                    Err(e) => {
                        return Err(StoreError::Corrupt {
                            tree: "envelopes",
                            detail: format!("proof of {id}: {e}"),
                        });
                    }
                },
                other => {
                    tracing::warn!(%id, ?other, "unit left out of the audit export");
                }
            }
        }
        entries.sort_by_key(|e| (e.proof.header().created_at_ms, e.direction));
        let export = AuditExport {
            office: office.clone(),
            month: month.to_owned(),
            generated_at_ms: self.now,
            node: self.keys.id(),
            entries,
        };
        Ok(ApiReply::AuditExport(export.encode()))
    }
}
