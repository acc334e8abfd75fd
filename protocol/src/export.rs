//! Audit exports: what an office shows an auditor (運営指導) for one month — every unit it
//! sent or received whose target month (subject) or creation month is that month, each as
//! a proof bundle with all its receipts. It verifies offline with the roster alone.
//!
//! ```text
//! export = [1, office: tstr, month: tstr, generated_at_ms: uint, node: bstr .size 32,
//!           [* [direction: uint, proof: bstr]]]      ; direction 1 sent, 2 received
//! ```
//!
//! The wrapper is not signed: every statement in it is a signed proof, and verification
//! checks that each proof is about `office` in the stated direction and about `month`.
//! Completeness (that no unit was left out) rests on the exporting node; the auditor can
//! cross-check with the counterpart office's export.

use ciborium::value::Value;

use crate::cbor::{self, Fields};
use crate::envelope::Header;
use crate::error::{DecodeError, VerifyError};
use crate::ids::{OfficeNumber, OperatorId};
use crate::proof::Proof;
use crate::roster::Roster;

const EXPORT_VERSION: u64 = 1;
/// Maximum encoded size of an audit export.
pub const EXPORT_BYTES_MAX: usize = 512 * 1024 * 1024;
/// Maximum number of units in one audit export.
pub const EXPORT_ENTRIES_MAX: usize = 1 << 20;
/// Japan Standard Time offset, for creation months.
const JST_OFFSET_MS: u64 = 9 * 3600 * 1000;

/// Whether the office sent or received a unit.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Direction {
    /// Sent by the office.
    Sent,
    /// Received by the office.
    Received,
}

impl Direction {
    fn code(self) -> u64 {
        match self {
            Direction::Sent => 1,
            Direction::Received => 2,
        }
    }
    /// Display name.
    pub fn name(self) -> &'static str {
        match self {
            Direction::Sent => "sent",
            Direction::Received => "received",
        }
    }
}

/// One unit of an export.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ExportEntry {
    /// Sent or received by the office.
    pub direction: Direction,
    /// The unit's proof bundle.
    pub proof: Proof,
}

/// An office's audit export for one month.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AuditExport {
    /// The office.
    pub office: OfficeNumber,
    /// `YYYYMM`.
    pub month: String,
    /// When the node produced it.
    pub generated_at_ms: u64,
    /// The node (operator) that produced it.
    pub node: OperatorId,
    /// The units.
    pub entries: Vec<ExportEntry>,
}

/// Checks a `YYYYMM` month.
pub fn check_month(month: &str) -> Result<(), String> {
    let ok = month.len() == 6
        && month.bytes().all(|b| b.is_ascii_digit())
        && matches!(month[4..].parse::<u8>(), Ok(1..=12));
    if ok {
        Ok(())
    } else {
        Err(format!("month must be YYYYMM (e.g. 202505), got {month:?}"))
    }
}

/// The `YYYYMM` (Japan time) of a time in milliseconds since the Unix epoch.
pub fn month_of_ms(ms: u64) -> String {
    let days = (ms.saturating_add(JST_OFFSET_MS) / 86_400_000) as i64;
    // Howard Hinnant's civil_from_days.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!("{y:04}{m:02}")
}

/// Whether a unit belongs to `month`: its subject (対象年月 or 計画作成日) or its creation
/// month (Japan time) is `month`.
pub fn unit_in_month(h: &Header, month: &str) -> bool {
    h.subject
        .as_deref()
        .is_some_and(|s| s.get(..6) == Some(month))
        || month_of_ms(h.created_at_ms) == month
}

impl AuditExport {
    /// Canonical bytes.
    pub fn encode(&self) -> Vec<u8> {
        cbor::encode(&Value::Array(vec![
            cbor::uint(EXPORT_VERSION),
            cbor::text(self.office.as_str()),
            cbor::text(&self.month),
            cbor::uint(self.generated_at_ms),
            cbor::bytes(self.node.as_bytes()),
            Value::Array(
                self.entries
                    .iter()
                    .map(|e| {
                        Value::Array(vec![
                            cbor::uint(e.direction.code()),
                            cbor::bytes(&e.proof.encode()),
                        ])
                    })
                    .collect(),
            ),
        ]))
    }

    /// Decodes (every proof too). Does not verify.
    pub fn decode(bytes: &[u8]) -> Result<AuditExport, DecodeError> {
        const W: &str = "audit export";
        let mut f = Fields::new(cbor::decode_canonical(bytes, W, EXPORT_BYTES_MAX)?, W, 6)?;
        f.version(EXPORT_VERSION)?;
        let office = f.parse("office")?;
        let month = f.text("month")?;
        let generated_at_ms = f.uint("generated_at_ms")?;
        let node = OperatorId(f.array("node")?);
        let mut entries = Vec::new();
        for item in f.list("entries", EXPORT_ENTRIES_MAX)? {
            let bad = || DecodeError::Field {
                what: W,
                field: "entries",
                expected: "[direction (1 or 2), proof bytes] pairs",
            };
            let Value::Array(pair) = item else {
                return Err(bad());
            };
            let [d, p]: [Value; 2] = pair.try_into().map_err(|_| bad())?;
            let direction = match d.as_integer().map(u64::try_from) {
                Some(Ok(1)) => Direction::Sent,
                Some(Ok(2)) => Direction::Received,
                _ => return Err(bad()),
            };
            let Value::Bytes(p) = p else {
                return Err(bad());
            };
            entries.push(ExportEntry {
                direction,
                proof: Proof::decode(&p)?,
            });
        }
        Ok(AuditExport {
            office,
            month,
            generated_at_ms,
            node,
            entries,
        })
    }

    /// Verifies every proof against the roster, and that each is about this office (as
    /// sender or recipient, as its direction says) and this month. Returns one result per
    /// unit, in order: the proof's lines, or why it fails.
    pub fn verify(&self, roster: &Roster) -> Vec<Result<Vec<String>, VerifyError>> {
        self.entries
            .iter()
            .map(|e| {
                let h = e.proof.header();
                let party = match e.direction {
                    Direction::Sent => &h.from.office,
                    Direction::Received => &h.to.office,
                };
                if *party != self.office {
                    return Err(VerifyError::Mismatch(format!(
                        "unit {} was not {} by office {}",
                        h.id,
                        e.direction.name(),
                        self.office
                    )));
                }
                if !unit_in_month(h, &self.month) {
                    return Err(VerifyError::Mismatch(format!(
                        "unit {} is neither about nor created in {}",
                        h.id, self.month
                    )));
                }
                e.proof.verify(roster)
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn months_in_japan_time() {
        // 2025-04-30T15:00:00Z is 2025-05-01 00:00 JST.
        assert_eq!(month_of_ms(1_746_025_200_000), "202505");
        assert_eq!(month_of_ms(1_746_025_199_999), "202504");
        assert_eq!(month_of_ms(0), "197001");
        assert_eq!(month_of_ms(951_782_400_000 - JST_OFFSET_MS), "200002"); // 2000-02-29 JST
    }

    #[test]
    fn month_rules() {
        assert!(check_month("202505").is_ok());
        for bad in ["2025-5", "202513", "202500", "20250", "2025ab"] {
            assert!(check_month(bad).is_err(), "{bad}");
        }
    }
}
