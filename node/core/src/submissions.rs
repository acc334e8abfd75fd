//! Idempotent submission. An office that submits the very same unit again — same file
//! names and bytes, same `supersedes` — gets the unit it already sent (same id, current
//! status) instead of a second envelope that would reach the recipient's inbox twice. This
//! is what a client does when the answer to its first submission was lost (the origin
//! crashed after its commit, or the connection was cut): it cannot tell whether the unit
//! was taken, so it sends again. A unit that ended `rejected` or `expired` may be sent
//! again as a new unit.

use renkei_protocol::envelope::{Digest32, sha256};
use renkei_protocol::ids::{EnvelopeId, OfficeNumber};

use super::Core;
use super::records::{self, SentRec, SentStatus};
use crate::store::{Store, StoreError, Tree};

/// The key of a submission: SHA-256 over the office, the `supersedes` id and every file's
/// name and SHA-256, in name order (so the order of the upload does not matter).
pub(super) fn submission_key(
    office: &OfficeNumber,
    supersedes: Option<EnvelopeId>,
    files: &[(&str, Digest32)],
) -> [u8; 32] {
    let mut sorted = files.to_vec();
    sorted.sort();
    let mut buf = Vec::with_capacity(64 + sorted.len() * 96);
    buf.extend_from_slice(office.as_str().as_bytes());
    buf.push(0);
    match supersedes {
        Some(s) => {
            buf.push(1);
            buf.extend_from_slice(s.as_bytes());
        }
        None => buf.push(0),
    }
    for (name, digest) in sorted {
        buf.extend_from_slice(name.as_bytes());
        buf.push(0);
        buf.extend_from_slice(&digest);
    }
    sha256(&buf)
}

impl<S: Store> Core<S> {
    /// The unit already sent under this submission key, unless it ended rejected or
    /// expired.
    pub(super) fn earlier_submission(&self, key: &[u8; 32]) -> Result<Option<SentRec>, StoreError> {
        let Some(id) = self.store.get(Tree::Submissions, key)? else {
            return Ok(None);
        };
        let Ok(id) = EnvelopeId::from_slice(&id) else {
            return Ok(None);
        };
        Ok(
            records::get::<SentRec>(&self.store, Tree::Sent, id.as_bytes())?
                .filter(|r| !matches!(r.status, SentStatus::Rejected | SentStatus::Expired)),
        )
    }

    /// Remembers that this submission key produced unit `id`.
    pub(super) fn record_submission(
        &mut self,
        key: &[u8; 32],
        id: EnvelopeId,
    ) -> Result<(), StoreError> {
        self.store.put(Tree::Submissions, key, id.as_bytes())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn key_ignores_file_order_but_not_names_bytes_office_or_supersedes() {
        let office: OfficeNumber = "4074478647".parse().unwrap();
        let other: OfficeNumber = "4071481594".parse().unwrap();
        let f = |n: &'static str, b: &[u8]| (n, sha256(b));
        let (a, b) = (f("A.CSV", b"one"), f("B.CSV", b"two"));
        let k = submission_key(&office, None, &[a, b]);
        assert_eq!(k, submission_key(&office, None, &[b, a]));
        assert_ne!(k, submission_key(&other, None, &[a, b]));
        assert_ne!(
            k,
            submission_key(&office, Some(EnvelopeId([1; 16])), &[a, b])
        );
        assert_ne!(k, submission_key(&office, None, &[a, f("B.CSV", b"two!")]));
        assert_ne!(k, submission_key(&office, None, &[a, f("C.CSV", b"two")]));
        assert_ne!(k, submission_key(&office, None, &[a]));
    }
}
