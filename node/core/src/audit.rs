//! The append-only, hash-chained audit log. Each entry's hash covers its fields and the
//! previous entry's hash, so removing, reordering or editing any entry breaks the chain.
//!
//! The hash is SHA-256 over `"renkei/audit/v2" ‖ 0x00 ‖` the protocol's canonical CBOR
//! (`renkei_protocol::cbor`) of the array `[seq, at_ms, event, envelope id or null, office
//! or null, detail, prev]` — a definition of its own, not the bytes a record encoder
//! happens to write. Entries written before 2026-12-07 hash version 1 (the record
//! encoder's bytes of the same fields); the store says from which entry on version 2
//! applies (Meta `audit/v2_from`, set when a store is first opened by this code), so those
//! chains still verify.

use renkei_protocol::envelope::sha256;
use renkei_protocol::ids::{EnvelopeId, OfficeNumber};

use super::Core;
use super::records::{self, AuditRec, be};
use crate::store::{Store, StoreError, Tree};

/// Meta key: the first entry hashed by [`entry_hash`] (version 2), as 8 big-endian bytes.
const V2_FROM: &[u8] = b"audit/v2_from";

/// The version 2 hash of an entry (see the module docs).
fn entry_hash(rec: &AuditRec) -> [u8; 32] {
    use ciborium::value::Value;
    use renkei_protocol::cbor;
    let text = |s: &str| Value::Text(s.to_owned());
    let body = Value::Array(vec![
        cbor::uint(rec.seq),
        cbor::uint(rec.at_ms),
        text(&rec.event),
        rec.envelope
            .map_or(Value::Null, |e| cbor::bytes(e.as_bytes())),
        rec.office
            .as_ref()
            .map_or(Value::Null, |o| text(o.as_str())),
        text(&rec.detail),
        cbor::bytes(&rec.prev),
    ]);
    let mut m = b"renkei/audit/v2\0".to_vec();
    m.extend_from_slice(&cbor::encode(&body));
    sha256(&m)
}

/// The hash of entries written before version 2.
fn entry_hash_v1(rec: &AuditRec) -> [u8; 32] {
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

/// The chain's head, and (first open by this code) where version 2 starts: the next entry.
pub(super) fn load_head(store: &mut dyn Store) -> Result<(u64, [u8; 32]), StoreError> {
    let head = match store.last(Tree::Audit)? {
        Some((_, v)) => {
            let rec: AuditRec = records::decode(Tree::Audit, &v)?;
            (rec.seq, rec.hash)
        }
        None => (0, [0; 32]),
    };
    if store.get(Tree::Meta, V2_FROM)?.is_none() {
        // Written in the same commit group as (or before) the first version 2 entry.
        store.put(Tree::Meta, V2_FROM, &be(head.0 + 1))?;
    }
    Ok(head)
}

/// The first entry hashed by version 2 (a store that never recorded it: none).
fn v2_from(store: &dyn Store) -> Result<u64, StoreError> {
    Ok(store
        .get(Tree::Meta, V2_FROM)?
        .and_then(|v| <[u8; 8]>::try_from(v.as_slice()).ok())
        .map_or(u64::MAX, u64::from_be_bytes))
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
    let v2 = v2_from(store)?;
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
            let hash = if rec.seq >= v2 {
                entry_hash(&rec)
            } else {
                entry_hash_v1(&rec)
            };
            if hash != rec.hash {
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

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use crate::store::MemoryStore;

    fn entry(seq: u64, prev: [u8; 32], detail: &str) -> AuditRec {
        AuditRec {
            seq,
            at_ms: 1_745_830_800_000 + seq,
            event: "submitted".into(),
            envelope: Some(EnvelopeId([seq as u8; 16])),
            office: seq.is_multiple_of(2).then(|| "1310000017".parse().unwrap()),
            detail: detail.into(),
            prev,
            hash: [0; 32],
        }
    }

    /// Appends `n` entries hashed by `hash` after `head`; returns the new head.
    fn append(
        store: &mut MemoryStore,
        mut head: (u64, [u8; 32]),
        n: u64,
        hash: fn(&AuditRec) -> [u8; 32],
    ) -> (u64, [u8; 32]) {
        for _ in 0..n {
            let mut rec = entry(head.0 + 1, head.1, "a unit");
            rec.hash = hash(&rec);
            records::put(store, Tree::Audit, &be(rec.seq), &rec).unwrap();
            head = (rec.seq, rec.hash);
        }
        store.commit().unwrap();
        head
    }

    #[test]
    fn the_entry_hash_is_defined_over_canonical_cbor() {
        // A known answer for the definition in the module docs, computed apart from this
        // code (CBOR heads written out by hand in a short Python script, 2026-12-07).
        let rec = entry(2, [7; 32], "detail 詳細");
        assert_eq!(
            hex::encode(entry_hash(&rec)),
            "b2d151a86b393b3e575fcdabb18fa8c8c7d729e38228adb1170c585e022cc779",
        );
        let mut other = rec.clone();
        other.office = None;
        assert_ne!(entry_hash(&other), entry_hash(&rec));
    }

    /// Three entries written by the code before version 2 (no marker in the store), then
    /// the store opened by this code and two more entries.
    fn mixed_chain() -> MemoryStore {
        let mut store = MemoryStore::new();
        let head = append(&mut store, (0, [0; 32]), 3, entry_hash_v1);
        assert_eq!(verify_chain(&store).unwrap(), 3);
        assert_eq!(load_head(&mut store).unwrap(), head);
        let head = append(&mut store, head, 2, entry_hash);
        assert_eq!(head.0, 5);
        store
    }

    #[test]
    fn chains_written_before_version_2_still_verify() {
        assert_eq!(verify_chain(&mixed_chain()).unwrap(), 5);
        // An edited entry breaks the chain on either side of the change.
        for seq in [2u64, 5] {
            let mut s = mixed_chain();
            let mut rec: AuditRec =
                records::decode(Tree::Audit, &s.get(Tree::Audit, &be(seq)).unwrap().unwrap())
                    .unwrap();
            rec.detail.push('!');
            records::put(&mut s, Tree::Audit, &be(seq), &rec).unwrap();
            let e = verify_chain(&s).unwrap_err();
            assert!(e.to_string().contains(&format!("entry {seq}")), "{e}");
        }
        // Without the marker, the version 2 entries do not pass as version 1.
        let mut s = mixed_chain();
        s.delete(Tree::Meta, V2_FROM).unwrap();
        let e = verify_chain(&s).unwrap_err();
        assert!(e.to_string().contains("entry 4"), "{e}");
    }

    /// Found by cargo-mutants: an entry moved to another key, its own fields intact.
    #[test]
    fn an_entry_under_another_key_breaks_the_chain() {
        let mut store = MemoryStore::new();
        let head = load_head(&mut store).unwrap();
        append(&mut store, head, 2, entry_hash);
        let moved = store.get(Tree::Audit, &be(2)).unwrap().unwrap();
        store.delete(Tree::Audit, &be(2)).unwrap();
        store.put(Tree::Audit, &be(9), &moved).unwrap();
        let e = verify_chain(&store).unwrap_err();
        assert!(e.to_string().contains("key mismatch"), "{e}");
    }

    #[test]
    fn a_new_store_hashes_version_2_from_its_first_entry() {
        let mut store = MemoryStore::new();
        let head = load_head(&mut store).unwrap();
        let head = append(&mut store, head, 3, entry_hash);
        assert_eq!(verify_chain(&store).unwrap(), head.0);
    }
}
