//! Adapter from the standard-spec CSV checks (`renkei_protocol::csv`) to the core's view.

use std::collections::BTreeMap;

use renkei_protocol::csv::{self, Finding, Severity, UnitKind};
use renkei_protocol::envelope::Party;

use super::{Family, UnitFinding, UnitInfo, UserKey};

fn finding(f: &Finding) -> UnitFinding {
    UnitFinding {
        file: f.file.clone(),
        line: f.line,
        column: f.column,
        column_name: f.column_name.clone(),
        rule: f.rule.to_owned(),
        message: f.message.clone(),
        message_ja: csv::rule_ja(f.rule).into(),
        severity: match f.severity {
            Severity::Error => "error".into(),
            Severity::Warning => "warning".into(),
        },
    }
}

fn family(kind: UnitKind) -> Family {
    match kind {
        UnitKind::KyoPlan | UnitKind::KyoDlt1 => Family::KyoPlan,
        UnitKind::KyoRiyohyo
        | UnitKind::KyoDltPlan
        | UnitKind::YoboRiyohyo
        | UnitKind::YoboDltPlan => Family::Riyohyo,
        UnitKind::Jsk | UnitKind::JskDlt | UnitKind::YoboJsk | UnitKind::YoboJskDlt => {
            Family::Jisseki
        }
        UnitKind::YoboKihon | UnitKind::YoboKihonDlt => Family::YoboKihon,
        UnitKind::YoboPlan | UnitKind::YoboPlanDlt => Family::YoboPlan,
    }
}

thread_local! {
    /// The CSV check's decode buffer and parser, kept by each thread that checks units
    /// (the prepare stage's threads, simnet's): building the parser and zeroing a fresh
    /// buffer cost about a quarter of checking a small unit (48–52 against 35–38 µs for a
    /// 7.5 KB 第6表 on the project's VM). A cache of allocations only: it never changes an
    /// answer ([`csv::Scratch`]), and holds at most 16 MiB per thread.
    static SCRATCH: std::cell::RefCell<csv::Scratch> = std::cell::RefCell::new(csv::Scratch::default());
}

pub(super) fn check(files: &[(&str, &[u8])]) -> Result<UnitInfo, Vec<UnitFinding>> {
    let report = SCRATCH.with(|s| match s.try_borrow_mut() {
        Ok(mut scratch) => csv::check_send_unit_in(&mut scratch, files),
        Err(_) => csv::check_send_unit(files),
    });
    let unit = match (&report.unit, report.has_errors()) {
        (Some(u), false) => u,
        _ => {
            let mut out: Vec<UnitFinding> = report
                .all_findings()
                .filter(|f| f.is_error())
                .map(finding)
                .collect();
            if out.is_empty() {
                out.push(UnitFinding::unit(
                    "unit.invalid",
                    "the files do not form one send unit".into(),
                ));
            }
            return Err(out);
        }
    };
    let family = family(unit.kind);
    // One key per user (and month): plan families keep the newest plan date of the user.
    let mut users: BTreeMap<(String, String, String), String> = BTreeMap::new();
    for k in &unit.keys {
        if k.subject.chars().all(|c| c == '0') {
            continue; // 利用者補足 tied to 1〜3表 (000000) carries no date of its own
        }
        let slot_subject = if family.monthly() {
            k.subject.clone()
        } else {
            String::new()
        };
        let e = users
            .entry((k.insurer.clone(), k.insured.clone(), slot_subject))
            .or_default();
        if k.subject > *e {
            *e = k.subject.clone();
        }
    }
    let users: Vec<UserKey> = users
        .into_iter()
        .map(|((insurer, insured, _), subject)| UserKey {
            insurer,
            insured,
            subject,
        })
        .collect();
    let subject = match unit.target_month {
        Some(m) => Some(m.to_string()),
        None => {
            let mut dates: Vec<&str> = users.iter().map(|u| u.subject.as_str()).collect();
            dates.dedup();
            (dates.len() == 1 && dates[0].len() == 8).then(|| dates[0].to_owned())
        }
    };
    Ok(UnitInfo {
        from: Party {
            office: unit.from_office.clone(),
            kind: unit.from_kind.clone(),
        },
        to: Party {
            office: unit.to_office.clone(),
            kind: unit.to_kind.clone(),
        },
        doc_kind: unit.doc_kind,
        stamp: unit.stamp.clone(),
        subject,
        family,
        users,
        names: unit.names.clone(),
    })
}
