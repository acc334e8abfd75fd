//! The core's view of a send unit: who sends to whom, which document, which users, as
//! established by the standard-spec CSV checks of `renkei_protocol::csv`.

use renkei_protocol::envelope::{Envelope, FileEntry, Party};
use renkei_protocol::ids::{DocKind, Stamp};
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
    /// Message (English, with the details).
    pub message: String,
    /// What the rule means, in Japanese (what the page shows).
    pub message_ja: String,
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
            message_ja: renkei_protocol::csv::rule_ja(rule).into(),
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
    /// The users' names the files carry (利用者補足情報, 利用者基本情報), by 被保険者番号.
    pub names: Vec<renkei_protocol::csv::validate::UserName>,
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
            check_unit(&refs)
        };
        PreparedUnit {
            files,
            entries,
            checked,
        }
    }
}

/// Validates a unit (standard-spec CSV checks) and extracts what the core needs. A pure
/// function of the names and bytes; it runs wherever a unit is checked — the origin's
/// prepare stage, the destination's — in production and in simnet alike.
pub fn check_unit(files: &[(&str, &[u8])]) -> Result<UnitInfo, Vec<UnitFinding>> {
    validate::check(files)
}

#[path = "unit_validate.rs"]
mod validate;
