//! The core's view of a send unit: who sends to whom, which document, which users, as
//! established by the standard-spec CSV checks of `renkei_protocol::csv`.

use renkei_protocol::envelope::{Digest32, Envelope, FileEntry, Party, sha256};
use renkei_protocol::ids::{DocKind, Stamp};
use renkei_protocol::memo;
use serde::Serialize;

/// One validation finding, as the API reports it.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct UnitFinding {
    /// File name (empty for unit-level findings).
    pub file: String,
    /// Physical line, 1-based.
    pub line: Option<u64>,
    /// Column, 1-based.
    pub column: Option<u32>,
    /// Japanese column name.
    pub column_name: Option<String>,
    /// Rule id.
    pub rule: String,
    /// Message.
    pub message: String,
    /// error | warning.
    pub severity: String,
}

impl UnitFinding {
    pub(crate) fn unit(rule: &str, message: String) -> Self {
        UnitFinding {
            file: String::new(),
            line: None,
            column: None,
            column_name: None,
            rule: rule.into(),
            message,
            severity: "error".into(),
        }
    }
}

/// Slot family: documents that replace each other (a withdrawal shares its family).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Family {
    /// 居宅サービス計画 1〜3表 (ordered by plan date).
    KyoPlan = 1,
    /// 6表/7表 予定 (per month).
    Riyohyo = 2,
    /// 実績 (per month).
    Jisseki = 3,
    /// 介護予防 利用者基本情報 (by date).
    YoboKihon = 4,
    /// 介護予防サービス・支援計画書 (by date).
    YoboPlan = 5,
}

impl Family {
    /// Whether slots of this family are per month (the subject is part of the slot);
    /// otherwise the subject (a plan date) orders versions within one slot per user.
    pub fn monthly(self) -> bool {
        matches!(self, Family::Riyohyo | Family::Jisseki)
    }
}

/// One user's relation key within a unit.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct UserKey {
    /// 保険者番号.
    pub insurer: String,
    /// 被保険者番号.
    pub insured: String,
    /// 対象年月 or 計画作成日.
    pub subject: String,
}

/// What the core needs to know about a valid unit.
#[derive(Debug, Clone)]
pub struct UnitInfo {
    /// Sender.
    pub from: Party,
    /// Recipient.
    pub to: Party,
    /// Category.
    pub doc_kind: DocKind,
    /// Shared stamp.
    pub stamp: Stamp,
    /// The unit's subject (対象年月, or the plan date when all users share one).
    pub subject: Option<String>,
    /// Slot family.
    pub family: Family,
    /// Per-user relation keys.
    pub users: Vec<UserKey>,
}

impl UnitInfo {
    /// Slot keys with the ordering subject: `to ‖ from ‖ family ‖ insurer ‖ insured
    /// [‖ month]`.
    pub fn slots(&self) -> Vec<(Vec<u8>, String)> {
        self.users
            .iter()
            .map(|u| {
                let mut k = Vec::with_capacity(48);
                k.extend_from_slice(self.to.office.as_str().as_bytes());
                k.extend_from_slice(self.from.office.as_str().as_bytes());
                k.push(self.family as u8);
                k.extend_from_slice(u.insurer.as_bytes());
                k.push(b'/');
                k.extend_from_slice(u.insured.as_bytes());
                if self.family.monthly() {
                    k.push(b'/');
                    k.extend_from_slice(u.subject.as_bytes());
                    (k, String::new())
                } else {
                    (k, u.subject.clone())
                }
            })
            .collect()
    }
}

/// A send unit as the prepare stage leaves it: every file hashed (the header's entries)
/// and the unit checked against the standard, outside the core's thread. The core takes
/// it and only decides: the check of a worst-case 6 MB upload no longer holds up every
/// other office and peer. Made only by [`PreparedUnit::new`], so the core can trust that
/// `checked` and `entries` are those of `files`.
#[derive(Debug, Clone)]
pub struct PreparedUnit {
    pub(crate) files: Vec<(String, Vec<u8>)>,
    pub(crate) entries: Vec<FileEntry>,
    pub(crate) checked: Result<UnitInfo, Vec<UnitFinding>>,
}

impl PreparedUnit {
    /// Hashes and checks `files` (name, bytes), in upload order. Pure and CPU-bound: the
    /// production driver runs it on its bounded worker pool, simnet on its own thread.
    pub fn new(files: Vec<(String, Vec<u8>)>) -> PreparedUnit {
        let refs: Vec<(&str, &[u8])> = files
            .iter()
            .map(|(n, b)| (n.as_str(), b.as_slice()))
            .collect();
        let entries = Envelope::file_entries(&refs);
        let checked = if files.is_empty() {
            Err(Vec::new())
        } else {
            let sums: Vec<Digest32> = entries.iter().map(|e| e.sha256).collect();
            check_unit_listed(&refs, &sums)
        };
        PreparedUnit {
            files,
            entries,
            checked,
        }
    }

    /// The files, in upload order.
    pub fn files(&self) -> &[(String, Vec<u8>)] {
        &self.files
    }

    /// Total bytes of the files.
    pub fn bytes(&self) -> usize {
        self.files.iter().map(|(_, b)| b.len()).sum()
    }
}

/// Validates a unit (standard-spec CSV checks) and extracts what the core needs.
///
/// The checks are a pure function of the names and bytes: on a thread with a
/// [`renkei_protocol::memo`] (simnet), a unit that passed is remembered under a digest of
/// every name and byte, and the next check of exactly those files (the destination's, of
/// what the origin checked) takes that answer instead of parsing again. Production
/// threads have no memo and always check.
pub fn check_unit(files: &[(&str, &[u8])]) -> Result<UnitInfo, Vec<UnitFinding>> {
    if !memo::active() {
        return validate::check(files);
    }
    let sums: Vec<Digest32> = files.iter().map(|(_, b)| sha256(b)).collect();
    check_unit_listed(files, &sums)
}

/// [`check_unit`] of files whose SHA-256s the caller has (`sha256s[i]` of `files[i]`, e.g.
/// header entries just made or just checked against the bytes): a memo's key is made of
/// them rather than of every byte again.
pub fn check_unit_listed(
    files: &[(&str, &[u8])],
    sha256s: &[Digest32],
) -> Result<UnitInfo, Vec<UnitFinding>> {
    if !memo::active() {
        return validate::check(files);
    }
    let digest = unit_digest(files, sha256s);
    if let Some(info) = memo::take_answer::<UnitInfo>(&digest) {
        return Ok(info);
    }
    let checked = validate::check(files);
    if let Ok(info) = &checked {
        memo::remember_answer(digest, info.clone());
    }
    checked
}

/// [`check_unit`] on a helper thread, ahead of a simulated submission, of files whose
/// SHA-256s the caller has computed (`sha256s`, in order: the header's entries): the
/// answer is remembered for the `uses` checks to come (the origin's and the
/// destination's). Without a memo it only checks.
pub fn check_unit_ahead(
    files: &[(&str, &[u8])],
    sha256s: &[Digest32],
    uses: u32,
) -> Result<UnitInfo, Vec<UnitFinding>> {
    debug_assert!(
        files.len() == sha256s.len()
            && files.iter().zip(sha256s).all(|((_, b), s)| sha256(b) == *s)
    );
    let checked = validate::check(files);
    if memo::active()
        && let Ok(info) = &checked
    {
        memo::remember_answer_for(unit_digest(files, sha256s), info.clone(), uses);
    }
    checked
}

/// SHA-256 of a label and every file's name, length and SHA-256, each name
/// length-prefixed.
fn unit_digest(files: &[(&str, &[u8])], sha256s: &[Digest32]) -> [u8; 32] {
    use sha2::Digest;
    let mut h = sha2::Sha256::new();
    h.update(b"renkei/check_unit/v2");
    h.update((files.len() as u64).to_le_bytes());
    for ((name, bytes), sum) in files.iter().zip(sha256s) {
        h.update((name.len() as u64).to_le_bytes());
        h.update(name.as_bytes());
        h.update((bytes.len() as u64).to_le_bytes());
        h.update(sum);
    }
    h.finalize().into()
}

#[path = "unit_validate.rs"]
mod validate;

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use crate::tests::net::fixture_unit;
    use renkei_protocol::memo::{CryptoMemo, use_on_this_thread};

    fn refs(files: &[(String, Vec<u8>)]) -> Vec<(&str, &[u8])> {
        files
            .iter()
            .map(|(n, b)| (n.as_str(), b.as_slice()))
            .collect()
    }

    #[test]
    fn with_a_memo_a_checked_unit_is_answered_once_and_any_change_is_checked_again() {
        let memo = CryptoMemo::new(16);
        use_on_this_thread(Some(memo.clone()));
        let files = fixture_unit("d2_kyo_riyohyo");
        let first = check_unit(&refs(&files)).unwrap();
        assert_eq!(memo.answers_taken(), 0);
        let second = check_unit(&refs(&files)).unwrap();
        assert_eq!(memo.answers_taken(), 1, "the second check was answered");
        assert_eq!(format!("{first:?}"), format!("{second:?}"));
        // Handed out once: a third check computes (and remembers) again.
        check_unit(&refs(&files)).unwrap();
        assert_eq!(memo.answers_taken(), 1);

        // One byte changed in a file (the last digit turned into a letter) or a file
        // renamed: checked for real, and refused as without a memo.
        let mut broken = files.clone();
        let at = broken[0].1.iter().rposition(u8::is_ascii_digit).unwrap();
        broken[0].1[at] = b'X';
        let with = check_unit(&refs(&broken)).unwrap_err();
        use_on_this_thread(None);
        let without = check_unit(&refs(&broken)).unwrap_err();
        assert_eq!(with, without);
        use_on_this_thread(Some(memo.clone()));
        let mut renamed = files.clone();
        renamed[0].0 = renamed[0].0.replace(".CSV", ".TXT").replace(".csv", ".txt");
        assert_ne!(renamed[0].0, files[0].0);
        assert!(check_unit(&refs(&renamed)).is_err());
        assert_eq!(memo.answers_taken(), 1, "no changed unit was answered");
        use_on_this_thread(None);
    }
}
