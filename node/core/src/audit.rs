//! The append-only, hash-chained audit log. Each entry's hash covers its fields and the
//! previous entry's hash, so removing, reordering or editing any entry breaks the chain.

use renkei_protocol::envelope::sha256;
use renkei_protocol::ids::{EnvelopeId, OfficeNumber};

use super::Core;
use super::records::{self, AuditRec, be};
use crate::store::{Store, StoreError, Tree};

fn entry_hash(rec: &AuditRec) -> [u8; 32] {
    let body = (
        rec.seq,
        rec.at_ms,
        &rec.event,
        rec.envelope,
        &rec.office,
        &rec.detail,
        rec.prev,
    );
    // Version 1's bytes, whatever version records are written in: the chain's hashes
    // must not change under entries already written.
    sha256(&records::encode_as(1, &body))
}

pub(super) fn load_head(store: &dyn Store) -> Result<(u64, [u8; 32]), StoreError> {
    Ok(match store.last(Tree::Audit)? {
        Some((_, v)) => {
            let rec: AuditRec = records::decode(Tree::Audit, &v)?;
            (rec.seq, rec.hash)
        }
        None => (0, [0; 32]),
    })
}

/// A break in the audit chain.
#[derive(Debug, thiserror::Error)]
pub enum AuditError {
    /// Reading the store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// An entry does not follow from the previous one.
    #[error("audit chain broken at entry {seq}: {why}")]
    Broken {
        /// Entry.
        seq: u64,
        /// What is wrong.
        why: &'static str,
    },
}

/// Verifies the whole chain; returns the number of entries.
pub fn verify_chain(store: &dyn Store) -> Result<u64, AuditError> {
    let mut prev = [0u8; 32];
    let mut expect = 1u64;
    let mut start = be(0).to_vec();
    loop {
        let rows = store.range(Tree::Audit, &start, None, 4096)?;
        if rows.is_empty() {
            break;
        }
        for (k, v) in &rows {
            let rec: AuditRec = records::decode(Tree::Audit, v)?;
            if k.as_slice() != be(rec.seq) || rec.seq != expect {
                return Err(AuditError::Broken {
                    seq: rec.seq,
                    why: "sequence gap or key mismatch",
                });
            }
            if rec.prev != prev {
                return Err(AuditError::Broken {
                    seq: rec.seq,
                    why: "previous hash does not match",
                });
            }
            if entry_hash(&rec) != rec.hash {
                return Err(AuditError::Broken {
                    seq: rec.seq,
                    why: "entry hash does not match its content",
                });
            }
            prev = rec.hash;
            expect += 1;
        }
        let last = &rows[rows.len() - 1].0;
        start = be(<[u8; 8]>::try_from(last.as_slice())
            .map_or(u64::MAX, u64::from_be_bytes)
            .saturating_add(1))
        .to_vec();
    }
    Ok(expect - 1)
}

impl<S: Store> Core<S> {
    pub(super) fn audit(
        &mut self,
        event: &str,
        envelope: Option<EnvelopeId>,
        office: Option<&OfficeNumber>,
        detail: String,
    ) -> Result<(), StoreError> {
        let (seq, prev) = self.audit_head;
        let mut rec = AuditRec {
            seq: seq + 1,
            at_ms: self.now,
            event: event.to_owned(),
            envelope,
            office: office.cloned(),
            detail,
            prev,
            hash: [0; 32],
        };
        rec.hash = entry_hash(&rec);
        records::put(&mut self.store, Tree::Audit, &be(rec.seq), &rec)?;
        self.audit_head = (rec.seq, rec.hash);
        Ok(())
    }
}
