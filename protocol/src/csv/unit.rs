//! Send units (送信単位): the files one envelope carries, sharing sender, recipient and
//! stamp, and agreeing on their relation keys.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

use serde::Serialize;

use super::finding::{Finding, Severity};
use super::layout;
use super::name::{FileName, parse_name};
use super::validate::{FileReport, Scratch, UserName, check_file_in};
use crate::ids::{DocKind, FilePrefix, OfficeNumber, ServiceKind, Stamp, YearMonth};

/// The key under which a newer file replaces an older one (DOMAIN.md "Versions and latest").
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
pub struct RelationKey {
    /// 保険者番号.
    pub insurer: String,
    /// 被保険者番号.
    pub insured: String,
    /// 計画作成（変更）日 `YYYYMMDD` for plan tables (相談日 for 利用者基本情報), 対象年月
    /// `YYYYMM` for 6表/7表/実績 and their withdrawals.
    pub subject: String,
}

impl fmt::Display for RelationKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}/{}", self.insurer, self.insured, self.subject)
    }
}

/// The kinds of send unit (送信単位), with the 介護予防 analogues.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
pub enum UnitKind {
    /// 1表 + 2表 + 3表 + 利用者補足 (000000), 居宅 → service office (D1).
    #[serde(rename = "KYO_PLAN")]
    KyoPlan,
    /// Withdraw 1表 (2表, 3表 follow) (D1).
    #[serde(rename = "KYO_DLT1")]
    KyoDlt1,
    /// 6表 予定 + 7表 + 利用者補足 (対象年月) (D2).
    #[serde(rename = "KYO_RIYOHYO")]
    KyoRiyohyo,
    /// Withdraw 6表 (7表 follows) (D2).
    #[serde(rename = "KYO_DLTPLAN")]
    KyoDltPlan,
    /// 実績, service office → 居宅 (D3).
    #[serde(rename = "JSK")]
    Jsk,
    /// Withdraw 実績 (D3).
    #[serde(rename = "JSK_DLT")]
    JskDlt,
    /// 介護予防 利用者基本情報 + 別表1 + 別表2 + family JPEGs (D4).
    #[serde(rename = "YOBO_KIHON")]
    YoboKihon,
    /// Withdraw 利用者基本情報 (D4).
    #[serde(rename = "YOBO_KIHON_DLT")]
    YoboKihonDlt,
    /// 介護予防サービス・支援計画書 + 別表 (D5).
    #[serde(rename = "YOBO_PLAN")]
    YoboPlan,
    /// Withdraw 介護予防サービス・支援計画書 (D5).
    #[serde(rename = "YOBO_PLAN_DLT")]
    YoboPlanDlt,
    /// 介護予防 利用票 予定: 6表 + 7表 + 補足 from a 介護予防支援 office (kind 46) (D6).
    #[serde(rename = "YOBO_RIYOHYO")]
    YoboRiyohyo,
    /// Withdraw 介護予防 6表 (D6).
    #[serde(rename = "YOBO_DLTPLAN")]
    YoboDltPlan,
    /// 介護予防 実績, back to a 介護予防支援 office (D7).
    #[serde(rename = "YOBO_JSK")]
    YoboJsk,
    /// Withdraw 介護予防 実績 (D7).
    #[serde(rename = "YOBO_JSK_DLT")]
    YoboJskDlt,
}

impl UnitKind {
    /// The name used in the layout file and reports (`KYO_PLAN`, …).
    pub fn as_str(self) -> &'static str {
        match self {
            UnitKind::KyoPlan => "KYO_PLAN",
            UnitKind::KyoDlt1 => "KYO_DLT1",
            UnitKind::KyoRiyohyo => "KYO_RIYOHYO",
            UnitKind::KyoDltPlan => "KYO_DLTPLAN",
            UnitKind::Jsk => "JSK",
            UnitKind::JskDlt => "JSK_DLT",
            UnitKind::YoboKihon => "YOBO_KIHON",
            UnitKind::YoboKihonDlt => "YOBO_KIHON_DLT",
            UnitKind::YoboPlan => "YOBO_PLAN",
            UnitKind::YoboPlanDlt => "YOBO_PLAN_DLT",
            UnitKind::YoboRiyohyo => "YOBO_RIYOHYO",
            UnitKind::YoboDltPlan => "YOBO_DLTPLAN",
            UnitKind::YoboJsk => "YOBO_JSK",
            UnitKind::YoboJskDlt => "YOBO_JSK_DLT",
        }
    }

    /// The layout file's send unit whose file list this kind uses (予防 利用票 units reuse
    /// the 居宅 ones).
    pub fn spec_unit(self) -> &'static str {
        match self {
            UnitKind::YoboRiyohyo => "KYO_RIYOHYO",
            UnitKind::YoboDltPlan => "KYO_DLTPLAN",
            UnitKind::YoboJsk => "JSK",
            UnitKind::YoboJskDlt => "JSK_DLT",
            k => k.as_str(),
        }
    }

    /// The document category.
    pub fn doc_kind(self) -> DocKind {
        match self {
            UnitKind::KyoPlan | UnitKind::KyoDlt1 => DocKind::D1,
            UnitKind::KyoRiyohyo | UnitKind::KyoDltPlan => DocKind::D2,
            UnitKind::Jsk | UnitKind::JskDlt => DocKind::D3,
            UnitKind::YoboKihon | UnitKind::YoboKihonDlt => DocKind::D4,
            UnitKind::YoboPlan | UnitKind::YoboPlanDlt => DocKind::D5,
            UnitKind::YoboRiyohyo | UnitKind::YoboDltPlan => DocKind::D6,
            UnitKind::YoboJsk | UnitKind::YoboJskDlt => DocKind::D7,
        }
    }

    /// The file every unit of this kind must carry; the others' keys are checked
    /// against it.
    pub fn primary(self) -> FilePrefix {
        match self {
            UnitKind::KyoPlan => FilePrefix::Up1Kyo,
            UnitKind::KyoDlt1 => FilePrefix::Dlt1Kyo,
            UnitKind::KyoRiyohyo | UnitKind::YoboRiyohyo => FilePrefix::UpPlan,
            UnitKind::KyoDltPlan | UnitKind::YoboDltPlan => FilePrefix::DltPlan,
            UnitKind::Jsk | UnitKind::YoboJsk => FilePrefix::UpJsk,
            UnitKind::JskDlt | UnitKind::YoboJskDlt => FilePrefix::DltJsk,
            UnitKind::YoboKihon => FilePrefix::UpKihon,
            UnitKind::YoboKihonDlt => FilePrefix::DltKihon,
            UnitKind::YoboPlan => FilePrefix::UpYobo,
            UnitKind::YoboPlanDlt => FilePrefix::DltYobo,
        }
    }

    /// The unit kind a file belongs to, from its prefix, `YYYYMM` (UPHOSOKU `000000` goes
    /// with the plan tables) and, for 利用票 files, whether a 介護予防支援 office (kind 46)
    /// sends or receives it.
    pub fn of_file(
        prefix: FilePrefix,
        yyyymm: Option<&str>,
        from: Option<&ServiceKind>,
        to: Option<&ServiceKind>,
    ) -> UnitKind {
        let yobo = [from, to].into_iter().flatten().any(|k| k.as_str() == "46");
        match prefix {
            FilePrefix::Up1Kyo | FilePrefix::Up2Kyo | FilePrefix::Up3Kyo => UnitKind::KyoPlan,
            FilePrefix::UpHosoku if yyyymm == Some("000000") => UnitKind::KyoPlan,
            FilePrefix::Dlt1Kyo => UnitKind::KyoDlt1,
            FilePrefix::UpHosoku | FilePrefix::UpPlan | FilePrefix::UpSikyu if yobo => {
                UnitKind::YoboRiyohyo
            }
            FilePrefix::UpHosoku | FilePrefix::UpPlan | FilePrefix::UpSikyu => UnitKind::KyoRiyohyo,
            FilePrefix::DltPlan if yobo => UnitKind::YoboDltPlan,
            FilePrefix::DltPlan => UnitKind::KyoDltPlan,
            FilePrefix::UpJsk if yobo => UnitKind::YoboJsk,
            FilePrefix::UpJsk => UnitKind::Jsk,
            FilePrefix::DltJsk if yobo => UnitKind::YoboJskDlt,
            FilePrefix::DltJsk => UnitKind::JskDlt,
            FilePrefix::UpKihon
            | FilePrefix::UpKihonSub1
            | FilePrefix::UpKihonSub2
            | FilePrefix::UpKihonImage => UnitKind::YoboKihon,
            FilePrefix::DltKihon => UnitKind::YoboKihonDlt,
            FilePrefix::UpYobo | FilePrefix::UpYoboSub => UnitKind::YoboPlan,
            FilePrefix::DltYobo => UnitKind::YoboPlanDlt,
        }
    }

    fn of_name(n: &FileName) -> UnitKind {
        UnitKind::of_file(
            n.prefix,
            n.yyyymm.as_deref(),
            n.from_kind.as_ref(),
            n.to_kind.as_ref(),
        )
    }
}

impl fmt::Display for UnitKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A valid send unit's identity and keys.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SendUnit {
    /// Which 送信単位.
    pub kind: UnitKind,
    /// Its document category.
    pub doc_kind: DocKind,
    /// Sender office.
    pub from_office: OfficeNumber,
    /// Sender service kind.
    pub from_kind: ServiceKind,
    /// Recipient office.
    pub to_office: OfficeNumber,
    /// Recipient service kind.
    pub to_kind: ServiceKind,
    /// ファイル連番 shared by the files.
    pub stamp: Stamp,
    /// 対象年月 of 利用票/実績 units (from the file names).
    pub target_month: Option<YearMonth>,
    /// Relation keys of all files, per user, sorted and deduplicated.
    pub keys: Vec<RelationKey>,
    /// The users' names the files carry ([`FileReport::names`]), sorted and deduplicated.
    #[serde(skip)]
    pub names: Vec<UserName>,
}

/// What checking one send unit found.
#[derive(Debug, Clone, Serialize)]
pub struct UnitReport {
    /// The unit, when its files agree on who, to whom, when and what.
    pub unit: Option<SendUnit>,
    /// Each file's report.
    pub files: Vec<FileReport>,
    /// Findings about the unit as a whole.
    pub findings: Vec<Finding>,
}

impl UnitReport {
    /// Whether any file or unit finding is an error.
    pub fn has_errors(&self) -> bool {
        self.all_findings().any(Finding::is_error)
    }

    /// File findings (file by file), then unit findings.
    pub fn all_findings(&self) -> impl Iterator<Item = &Finding> {
        self.files
            .iter()
            .flat_map(|f| f.findings.iter())
            .chain(self.findings.iter())
    }
}

/// Label used for unit-level findings.
const UNIT: &str = "(send unit)";

fn unit_finding(rule: &'static str, severity: Severity, message: String) -> Finding {
    Finding::file(UNIT, rule, severity, message)
}

/// Checks one send unit: every file, then that they share sender, recipient and stamp,
/// form one 送信単位 of the standard, and agree on their relation keys.
pub fn check_send_unit(files: &[(&str, &[u8])]) -> UnitReport {
    check_send_unit_in(&mut Scratch::default(), files)
}

/// [`check_send_unit`], reusing `scratch`'s buffers.
pub fn check_send_unit_in(scratch: &mut Scratch, files: &[(&str, &[u8])]) -> UnitReport {
    let reports: Vec<FileReport> = files
        .iter()
        .map(|(n, b)| check_file_in(scratch, n, b))
        .collect();
    let mut findings = Vec::new();
    let unit = unit_of(&reports, &mut findings);
    UnitReport {
        unit,
        files: reports,
        findings,
    }
}

fn unit_of(reports: &[FileReport], findings: &mut Vec<Finding>) -> Option<SendUnit> {
    let Some(first) = reports.first() else {
        findings.push(unit_finding(
            "unit.empty",
            Severity::Error,
            "a send unit needs at least one file".to_owned(),
        ));
        return None;
    };
    let named: Vec<(&FileReport, &FileName)> = reports
        .iter()
        .filter_map(|r| r.file_name.as_ref().map(|n| (r, n)))
        .collect();
    if named.len() != reports.len() {
        findings.push(unit_finding(
            "unit.unnamed_file",
            Severity::Error,
            format!(
                "{} file(s) have names that do not parse (see their findings); a send unit is identified by its file names",
                reports.len() - named.len()
            ),
        ));
        return None;
    }
    let (_, n0) = named[0];
    let mut ok = true;
    for (r, n) in &named[1..] {
        let same = n.from_office == n0.from_office
            && n.to_office == n0.to_office
            && n.from_kind == n0.from_kind
            && n.to_kind == n0.to_kind
            && n.stamp == n0.stamp;
        if !same {
            ok = false;
            findings.push(unit_finding(
                "unit.mismatch",
                Severity::Error,
                format!(
                    "{} has sender, recipient or stamp different from {}; the files of one send unit share all three",
                    r.name, first.name
                ),
            ));
        }
    }
    let kind = UnitKind::of_name(n0);
    for (r, n) in &named[1..] {
        let k = UnitKind::of_name(n);
        if k != kind {
            ok = false;
            findings.push(unit_finding(
                "unit.composition",
                Severity::Error,
                format!(
                    "{} belongs to send unit {k} but {} to {kind}; send them as separate units",
                    r.name, first.name
                ),
            ));
        }
    }
    if !ok {
        return None;
    }
    composition(kind, &named, findings);
    keys_agree(kind, &named, findings);
    if kind == UnitKind::YoboKihon {
        images(&named, findings);
    }
    let (Some(from_kind), Some(to_kind)) = (n0.from_kind.clone(), n0.to_kind.clone()) else {
        findings.push(unit_finding(
            "unit.ver3_name",
            Severity::Error,
            "Ver 3 file names carry no service-kind codes, which Renkei needs to route a send unit; rename the files to the Ver 4 form (…_<office>_<kind>_<office>_<kind>_<stamp>.CSV)".to_owned(),
        ));
        return None;
    };
    let target_month = match kind.doc_kind() {
        DocKind::D2 | DocKind::D3 | DocKind::D6 | DocKind::D7 => named
            .iter()
            .filter(|(_, n)| n.prefix != FilePrefix::UpHosoku || kind.primary() == n.prefix)
            .find_map(|(_, n)| n.yyyymm.as_deref()?.parse::<YearMonth>().ok()),
        _ => None,
    };
    let keys: BTreeSet<RelationKey> = reports
        .iter()
        .flat_map(|r| r.keys.iter().cloned())
        .collect();
    let names: BTreeSet<UserName> = reports
        .iter()
        .flat_map(|r| r.names.iter().cloned())
        .collect();
    Some(SendUnit {
        names: names.into_iter().collect(),
        kind,
        doc_kind: kind.doc_kind(),
        from_office: n0.from_office.clone(),
        from_kind,
        to_office: n0.to_office.clone(),
        to_kind,
        stamp: n0.stamp.clone(),
        target_month,
        keys: keys.into_iter().collect(),
    })
}

/// The unit carries its primary file, each file kind at most once, and the spec's others.
fn composition(kind: UnitKind, named: &[(&FileReport, &FileName)], findings: &mut Vec<Finding>) {
    let mut seen: BTreeMap<(FilePrefix, Option<u16>), &str> = BTreeMap::new();
    for (r, n) in named {
        if let Some(other) = seen.insert((n.prefix, n.image_branch), &r.name) {
            findings.push(unit_finding(
                "unit.duplicate_file",
                Severity::Error,
                format!(
                    "{} and {other} are both {} files of one send unit; send one file per kind (all users in it)",
                    r.name, n.prefix
                ),
            ));
        }
    }
    let has = |p: FilePrefix| named.iter().any(|(_, n)| n.prefix == p);
    if !has(kind.primary()) {
        findings.push(unit_finding(
            "unit.primary_missing",
            Severity::Error,
            format!(
                "send unit {kind} has no {} file; it is the one file such a unit must carry",
                kind.primary()
            ),
        ));
    }
    let spec_files = layout::current()
        .ok()
        .and_then(|s| s.send_units.get(kind.spec_unit()))
        .map(|u| u.files.clone())
        .unwrap_or_default();
    for p in spec_files {
        if let Ok(prefix) = p.parse::<FilePrefix>()
            && prefix != kind.primary()
            && !has(prefix)
        {
            findings.push(unit_finding(
                "unit.file_missing",
                Severity::Warning,
                format!(
                    "send unit {kind} usually also carries a {prefix} file; the receiver will have none for this stamp"
                ),
            ));
        }
    }
}

/// Every file's keys must be keys of the primary file; primary keys missing from another
/// file are reported as warnings.
fn keys_agree(kind: UnitKind, named: &[(&FileReport, &FileName)], findings: &mut Vec<Finding>) {
    let Some((primary, _)) = named.iter().find(|(_, n)| n.prefix == kind.primary()) else {
        return;
    };
    let pk: BTreeSet<&RelationKey> = primary.keys.iter().collect();
    for (r, n) in named {
        if n.prefix == kind.primary() || n.prefix == FilePrefix::UpKihonImage {
            continue;
        }
        let keys: BTreeSet<&RelationKey> = r.keys.iter().collect();
        let extra: Vec<String> = keys.difference(&pk).map(|k| k.to_string()).collect();
        if !extra.is_empty() {
            findings.push(unit_finding(
                "unit.key_unmatched",
                Severity::Error,
                format!(
                    "{} has users/dates not in {} (保険者番号/被保険者番号/date or month): {}; the files of one unit must describe the same plans",
                    r.name,
                    primary.name,
                    extra.join(", ")
                ),
            ));
        }
        let users: BTreeSet<(&str, &str)> = r
            .keys
            .iter()
            .map(|k| (k.insurer.as_str(), k.insured.as_str()))
            .collect();
        let missing: Vec<String> = pk
            .iter()
            .filter(|k| !users.contains(&(k.insurer.as_str(), k.insured.as_str())))
            .map(|k| k.to_string())
            .collect();
        if !missing.is_empty() {
            findings.push(unit_finding(
                "unit.key_missing",
                Severity::Warning,
                format!(
                    "{} has no rows for {} of {}",
                    r.name,
                    missing.join(", "),
                    primary.name
                ),
            ));
        }
    }
}

/// Family-structure images named in UPKIHON are in the unit, and every image is named.
fn images(named: &[(&FileReport, &FileName)], findings: &mut Vec<Finding>) {
    let named_in_csv: BTreeSet<&str> = named
        .iter()
        .filter(|(_, n)| n.prefix == FilePrefix::UpKihon)
        .flat_map(|(r, _)| r.images.iter().map(String::as_str))
        .collect();
    let present: BTreeSet<&str> = named
        .iter()
        .filter(|(_, n)| n.prefix == FilePrefix::UpKihonImage)
        .map(|(r, _)| r.name.as_str())
        .collect();
    for missing in named_in_csv.difference(&present) {
        findings.push(unit_finding(
            "unit.image_missing",
            Severity::Error,
            format!("UPKIHON names the image {missing}, which is not in this send unit; add it"),
        ));
    }
    for extra in present.difference(&named_in_csv) {
        findings.push(unit_finding(
            "unit.image_unreferenced",
            Severity::Warning,
            format!("image {extra} is not named in any UPKIHON record (column 62)"),
        ));
    }
}

/// Groups files into send units by (stamp, sender, recipient, unit kind), in stamp order.
/// Files whose names do not parse each form a group of their own, after the others.
pub fn group_send_units<'a>(files: &[(&'a str, &'a [u8])]) -> Vec<Vec<(&'a str, &'a [u8])>> {
    type Key = (
        Stamp,
        OfficeNumber,
        Option<ServiceKind>,
        OfficeNumber,
        Option<ServiceKind>,
        UnitKind,
    );
    let mut groups: BTreeMap<Key, Vec<(&'a str, &'a [u8])>> = BTreeMap::new();
    let mut loose = Vec::new();
    for &(name, bytes) in files {
        match parse_name(name).name {
            Some(n) => {
                let kind = UnitKind::of_name(&n);
                groups
                    .entry((
                        n.stamp,
                        n.from_office,
                        n.from_kind,
                        n.to_office,
                        n.to_kind,
                        kind,
                    ))
                    .or_default()
                    .push((name, bytes));
            }
            None => loose.push(vec![(name, bytes)]),
        }
    }
    groups.into_values().chain(loose).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    const KIHON: &str = "UPKIHON_4009242217_46_4070383858_63_20250425093000.CSV";
    const KIHON_BYTES: &[u8] = include_bytes!(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../fixtures/valid/d4_yobo_kihon/UPKIHON_4009242217_46_4070383858_63_20250425093000.CSV"
    ));
    const IMG1: &str = "UPKIHON_IMAGE_4009242217_46_4070383858_63_20250425093000_0001.jpg";
    const IMG2: &str = "UPKIHON_IMAGE_4009242217_46_4070383858_63_20250425093000_0002.jpg";
    const JPEG: &[u8] = b"\xFF\xD8\xFF\xE0";
    const DLT1: &str = "DLT1KYO_4074478647_43_4071481594_11_20250425164659.CSV";
    const DLT1_ROW: &[u8] = b"202407,136390,3490391694,20250402\r\n";

    fn rules(r: &UnitReport) -> Vec<&'static str> {
        r.findings.iter().map(|f| f.rule).collect()
    }

    #[test]
    fn images_named_in_kihon_must_travel_with_it() {
        let r = check_send_unit(&[(KIHON, KIHON_BYTES), (IMG1, JPEG)]);
        assert!(
            rules(&r).contains(&"unit.image_missing"),
            "{:?}",
            r.findings
        );
        assert!(r.has_errors());
        let extra = "UPKIHON_IMAGE_4009242217_46_4070383858_63_20250425093000_0003.jpg";
        let r = check_send_unit(&[
            (KIHON, KIHON_BYTES),
            (IMG1, JPEG),
            (IMG2, JPEG),
            (extra, JPEG),
        ]);
        assert!(rules(&r).contains(&"unit.image_unreferenced"));
        assert!(!rules(&r).contains(&"unit.image_missing"));
    }

    #[test]
    fn files_must_share_sender_recipient_and_stamp() {
        let other = "DLT1KYO_4074478647_43_4071481594_11_20250425164700.CSV";
        let r = check_send_unit(&[(DLT1, DLT1_ROW), (other, DLT1_ROW)]);
        assert_eq!(rules(&r), vec!["unit.mismatch"]);
        assert!(r.unit.is_none());
    }

    #[test]
    fn files_of_different_units_do_not_form_one() {
        let plan = "UPPLAN_202505_4074478647_43_4071481594_11_20250425164659.CSV";
        let r = check_send_unit(&[(DLT1, DLT1_ROW), (plan, DLT1_ROW)]);
        assert!(rules(&r).contains(&"unit.composition"));
        assert!(r.unit.is_none());
        let groups = group_send_units(&[(DLT1, DLT1_ROW), (plan, DLT1_ROW), ("junk", b"")]);
        assert_eq!(groups.len(), 3);
        assert_eq!(groups[2][0].0, "junk");
    }

    #[test]
    fn duplicates_missing_primary_and_unmatched_keys() {
        let r = check_send_unit(&[(DLT1, DLT1_ROW), (DLT1, DLT1_ROW)]);
        assert_eq!(rules(&r), vec!["unit.duplicate_file"]);
        let sub1 = "UPKIHON_SUB1_4009242217_46_4070383858_63_20250425093000.CSV";
        let r = check_send_unit(&[(
            sub1,
            b"202407,136028,1366843363,20250511,\"6:00\",\"a\",\"\"\r\n",
        )]);
        assert!(rules(&r).contains(&"unit.primary_missing"));
        let r = check_send_unit(&[
            (KIHON, KIHON_BYTES),
            (IMG1, JPEG),
            (IMG2, JPEG),
            (
                sub1,
                b"202407,136028,1366843363,20250512,\"6:00\",\"a\",\"\"\r\n",
            ),
        ]);
        let got = rules(&r);
        assert!(got.contains(&"unit.key_unmatched"), "{got:?}");
        assert!(got.contains(&"unit.key_missing"), "{got:?}");
        let f = r
            .findings
            .iter()
            .find(|f| f.rule == "unit.key_unmatched")
            .unwrap();
        assert!(f.message.contains("136028/1366843363/20250512"), "{f}");
    }

    #[test]
    fn ver3_names_cannot_be_routed_and_empty_units_fail() {
        let old = "DLT1KYO_4074478647_4071481594_20250425164659.CSV";
        let r = check_send_unit(&[(old, b"202208,136390,3490391694,20250402\r\n")]);
        assert_eq!(rules(&r), vec!["unit.ver3_name"]);
        assert!(r.unit.is_none() && r.has_errors());
        let r = check_send_unit(&[]);
        assert_eq!(rules(&r), vec!["unit.empty"]);
    }

    #[test]
    fn yobo_riyohyo_is_d6_and_jsk_back_to_46_is_d7() {
        let k46: ServiceKind = "46".parse().unwrap();
        let k15: ServiceKind = "15".parse().unwrap();
        let k = UnitKind::of_file(FilePrefix::UpPlan, Some("202505"), Some(&k46), Some(&k15));
        assert_eq!((k, k.doc_kind()), (UnitKind::YoboRiyohyo, DocKind::D6));
        let k = UnitKind::of_file(FilePrefix::UpJsk, Some("202504"), Some(&k15), Some(&k46));
        assert_eq!((k, k.doc_kind()), (UnitKind::YoboJsk, DocKind::D7));
        let k = UnitKind::of_file(FilePrefix::UpHosoku, Some("000000"), Some(&k46), None);
        assert_eq!(k, UnitKind::KyoPlan);
        assert_eq!(
            serde_json::to_value(UnitKind::KyoDltPlan).unwrap(),
            "KYO_DLTPLAN"
        );
    }
}
