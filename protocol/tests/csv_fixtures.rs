//! The shared fixtures: every valid file passes with its row and user counts and forms its
//! send unit; every invalid file fails with the defect its note names, where it names it.

#![allow(clippy::unwrap_used)] // test helpers, not only #[test] fns

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use renkei_protocol::csv::{
    FileReport, Finding, Severity, UnitKind, check_file, check_send_unit, group_send_units,
};
use renkei_protocol::ids::DocKind;

const FIXTURES: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../fixtures");
const SPEC: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/spec/202407.toml");

fn read(rel: &str) -> (String, Vec<u8>) {
    let path = Path::new(FIXTURES).join(rel);
    let name = path.file_name().unwrap().to_str().unwrap().to_owned();
    (name, std::fs::read(&path).unwrap())
}

fn dir_files(rel: &str) -> Vec<(String, Vec<u8>)> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(Path::new(FIXTURES).join(rel))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| !p.to_string_lossy().ends_with(".txt"))
        .collect();
    v.sort();
    v.into_iter()
        .map(|p| {
            (
                p.file_name().unwrap().to_str().unwrap().to_owned(),
                std::fs::read(&p).unwrap(),
            )
        })
        .collect()
}

fn errors(r: &FileReport) -> Vec<&Finding> {
    r.findings.iter().filter(|f| f.is_error()).collect()
}

fn manifest() -> serde_json::Value {
    serde_json::from_slice(&std::fs::read(Path::new(FIXTURES).join("manifest.json")).unwrap())
        .unwrap()
}

/// Users per valid file (distinct 保険者番号 + 被保険者番号), counted independently of the
/// code under test (README: 3 users in D1/D2, 2 in D3/D4/D5; deletes as listed).
const USERS: &[(&str, usize)] = &[
    ("UP1KYO_4074478647_43_4071481594_11_20250425164608.CSV", 3),
    ("UP2KYO_4074478647_43_4071481594_11_20250425164608.CSV", 3),
    ("UP3KYO_4074478647_43_4071481594_11_20250425164608.CSV", 3),
    (
        "UPHOSOKU_000000_4074478647_43_4071481594_11_20250425164608.CSV",
        3,
    ),
    (
        "UPHOSOKU_202505_4074478647_43_4071481594_11_20250425164608.CSV",
        3,
    ),
    (
        "UPPLAN_202505_4074478647_43_4071481594_11_20250425164608.CSV",
        3,
    ),
    (
        "UPSIKYU_202505_4074478647_43_4071481594_11_20250425164608.CSV",
        3,
    ),
    (
        "UPJSK_202504_4071481594_11_4074478647_43_20250428164608.CSV",
        2,
    ),
    ("UPKIHON_4009242217_46_4070383858_63_20250425093000.CSV", 2),
    (
        "UPKIHON_IMAGE_4009242217_46_4070383858_63_20250425093000_0001.jpg",
        0,
    ),
    (
        "UPKIHON_IMAGE_4009242217_46_4070383858_63_20250425093000_0002.jpg",
        0,
    ),
    (
        "UPKIHON_SUB1_4009242217_46_4070383858_63_20250425093000.CSV",
        2,
    ),
    (
        "UPKIHON_SUB2_4009242217_46_4070383858_63_20250425093000.CSV",
        2,
    ),
    ("UPYOBO_4009242217_46_4070383858_63_20250425093000.CSV", 2),
    (
        "UPYOBO_SUB_4009242217_46_4070383858_63_20250425093000.CSV",
        2,
    ),
    ("DLT1KYO_4074478647_43_4071481594_11_20250425164659.CSV", 1),
    (
        "DLTJSK_202504_4071481594_11_4074478647_43_20250425164659.CSV",
        1,
    ),
    (
        "DLTPLAN_202505_4074478647_43_4071481594_11_20250425164700.CSV",
        2,
    ),
];

#[test]
fn every_valid_file_passes_with_its_counts() {
    let m = manifest();
    let valid = m["valid"].as_object().unwrap();
    assert_eq!(valid.len(), USERS.len());
    let users: BTreeMap<&str, usize> = USERS.iter().copied().collect();
    for (rel, facts) in valid {
        let (name, bytes) = read(rel);
        let r = check_file(&name, &bytes);
        assert!(errors(&r).is_empty(), "{rel}: {:#?}", r.findings);
        assert!(
            r.findings.iter().all(|f| f.severity == Severity::Warning),
            "{rel}"
        );
        // No warnings either: the fixtures' office numbers carry valid check digits.
        assert!(r.findings.is_empty(), "{rel}: {:#?}", r.findings);
        assert_eq!(r.rows as u64, facts["rows"].as_u64().unwrap(), "{rel} rows");
        assert_eq!(r.users, users[name.as_str()], "{rel} users");
        let d: DocKind = facts["d_category"].as_str().unwrap().parse().unwrap();
        assert_eq!(r.doc_kind, Some(d), "{rel}");
        assert_eq!(
            r.file_name.as_ref().unwrap().prefix.as_str(),
            facts["prefix"].as_str().unwrap()
        );
        if facts["columns"].as_u64().unwrap() > 0 {
            assert_eq!(r.csv_version.as_deref(), Some("202407"));
        }
    }
}

#[test]
fn every_valid_directory_is_one_send_unit() {
    let cases: &[(&str, UnitKind, DocKind, usize)] = &[
        ("valid/d1_kyo_plan", UnitKind::KyoPlan, DocKind::D1, 3),
        ("valid/d2_kyo_riyohyo", UnitKind::KyoRiyohyo, DocKind::D2, 3),
        ("valid/d3_jisseki", UnitKind::Jsk, DocKind::D3, 2),
        ("valid/d4_yobo_kihon", UnitKind::YoboKihon, DocKind::D4, 2),
        ("valid/d5_yobo_plan", UnitKind::YoboPlan, DocKind::D5, 2),
    ];
    for (dir, kind, d, users) in cases {
        let files = dir_files(dir);
        let refs: Vec<(&str, &[u8])> = files.iter().map(|(n, b)| (n.as_str(), &b[..])).collect();
        let r = check_send_unit(&refs);
        assert!(
            !r.has_errors(),
            "{dir}: {:#?}",
            r.all_findings().collect::<Vec<_>>()
        );
        assert_eq!(r.all_findings().count(), 0, "{dir}: {:#?}", r.findings);
        let u = r.unit.as_ref().unwrap();
        assert_eq!(u.kind, *kind, "{dir}");
        assert_eq!(u.doc_kind, *d, "{dir}");
        let distinct: std::collections::BTreeSet<_> =
            u.keys.iter().map(|k| (&k.insurer, &k.insured)).collect();
        assert_eq!(distinct.len(), *users, "{dir}");
        assert!(
            u.keys.windows(2).all(|w| w[0] < w[1]),
            "{dir}: sorted, deduped"
        );
        assert_eq!(group_send_units(&refs).len(), 1, "{dir}");
    }
    // 対象年月 of the 利用票 and 実績 units, plan dates as subjects of the plan unit
    let files = dir_files("valid/d2_kyo_riyohyo");
    let refs: Vec<(&str, &[u8])> = files.iter().map(|(n, b)| (n.as_str(), &b[..])).collect();
    let u = check_send_unit(&refs).unit.unwrap();
    assert_eq!(u.target_month.unwrap().to_string(), "202505");
    assert!(u.keys.iter().all(|k| k.subject == "202505"));
    let files = dir_files("valid/d1_kyo_plan");
    let refs: Vec<(&str, &[u8])> = files.iter().map(|(n, b)| (n.as_str(), &b[..])).collect();
    let u = check_send_unit(&refs).unit.unwrap();
    assert_eq!(u.target_month, None);
    assert_eq!(u.keys.len(), 3);
    assert!(
        u.keys
            .iter()
            .any(|k| k.insurer == "136390" && k.insured == "3490391694" && k.subject == "20250402")
    );
}

#[test]
fn each_delete_is_its_own_send_unit() {
    let files = dir_files("valid/deletes");
    let refs: Vec<(&str, &[u8])> = files.iter().map(|(n, b)| (n.as_str(), &b[..])).collect();
    let groups = group_send_units(&refs);
    assert_eq!(groups.len(), 3);
    let mut kinds = Vec::new();
    for g in &groups {
        assert_eq!(g.len(), 1);
        let r = check_send_unit(g);
        assert!(
            !r.has_errors(),
            "{:#?}",
            r.all_findings().collect::<Vec<_>>()
        );
        assert_eq!(r.all_findings().count(), 0);
        let u = r.unit.unwrap();
        kinds.push((u.kind, u.doc_kind));
    }
    kinds.sort();
    assert_eq!(
        kinds,
        vec![
            (UnitKind::KyoDlt1, DocKind::D1),
            (UnitKind::KyoDltPlan, DocKind::D2),
            (UnitKind::JskDlt, DocKind::D3),
        ]
    );
}

#[test]
fn the_whole_valid_tree_groups_into_its_units_in_stamp_order() {
    let mut files = Vec::new();
    for d in [
        "valid/d1_kyo_plan",
        "valid/d2_kyo_riyohyo",
        "valid/d3_jisseki",
        "valid/d4_yobo_kihon",
        "valid/d5_yobo_plan",
        "valid/deletes",
    ] {
        files.extend(dir_files(d));
    }
    let refs: Vec<(&str, &[u8])> = files.iter().map(|(n, b)| (n.as_str(), &b[..])).collect();
    let groups = group_send_units(&refs);
    // D1 and D2 share sender, recipient and stamp but are two units; D4 and D5 likewise.
    assert_eq!(groups.len(), 8);
    let stamps: Vec<String> = groups
        .iter()
        .map(|g| check_send_unit(g).unit.unwrap().stamp.to_string())
        .collect();
    let mut sorted = stamps.clone();
    sorted.sort();
    assert_eq!(stamps, sorted);
}

/// (fixture dir, rule, line, column) — line and column as the fixture's note names them.
const INVALID: &[(&str, &str, Option<u64>, Option<u32>)] = &[
    ("bad_date", "date.calendar", Some(1), Some(4)),
    ("bad_month", "format.yyyymm", Some(1), Some(5)),
    ("bad_month", "name.yyyymm", None, None),
    ("bom", "encoding.bom", Some(1), Some(1)),
    ("empty", "file.empty", None, None),
    ("header", "csv.header_row", Some(1), None),
    ("insured_9digits", "insured.format", Some(1), Some(3)),
    (
        "insurer_check_digit",
        "insurer.check_digit",
        Some(1),
        Some(2),
    ),
    ("mixed_versions", "version.mixed", Some(2), Some(1)),
    ("no_total", "sikyu.total_missing", Some(3), Some(9)),
    ("nondigit_office", "format.digits", Some(1), Some(17)),
    ("sender_mismatch", "name.sender_mismatch", Some(1), Some(6)),
    ("two_months", "month.multiple", Some(9), Some(5)),
    ("unknown_prefix", "name.prefix", None, None),
    ("unterminated", "csv.unterminated_quote", Some(1), Some(14)),
    ("utf8", "encoding.utf8", Some(1), None),
    ("wrong_columns", "csv.column_count", Some(2), None),
];

fn invalid_report(dir: &str) -> FileReport {
    let files = dir_files(&format!("invalid/{dir}"));
    assert_eq!(files.len(), 1, "{dir}");
    let (name, bytes) = &files[0];
    check_file(name, bytes)
}

#[test]
fn every_invalid_file_fails_with_its_defect_where_the_note_says() {
    let m = manifest();
    let dirs: std::collections::BTreeSet<String> = m["invalid"]
        .as_object()
        .unwrap()
        .keys()
        .map(|k| k.split('/').nth(1).unwrap().to_owned())
        .collect();
    let covered: std::collections::BTreeSet<String> =
        INVALID.iter().map(|(d, ..)| (*d).to_owned()).collect();
    assert_eq!(dirs, covered, "every invalid fixture has an expectation");
    for (dir, rule, line, column) in INVALID {
        let r = invalid_report(dir);
        assert!(r.has_errors(), "{dir}");
        let hit = r.findings.iter().find(|f| {
            f.rule == *rule
                && f.severity == Severity::Error
                && f.line == *line
                && (column.is_none() || f.column == *column)
        });
        assert!(
            hit.is_some(),
            "{dir}: want {rule} at {line:?}:{column:?}, got {:#?}",
            r.findings
        );
    }
}

#[test]
fn invalid_findings_name_columns_and_values() {
    let r = invalid_report("bad_date");
    let f = r
        .findings
        .iter()
        .find(|f| f.rule == "date.calendar")
        .unwrap();
    assert_eq!(f.column_name.as_deref(), Some("作成年月日"));
    assert_eq!(f.excerpt.as_deref(), Some("20250230"));
    assert!(f.message.contains("has 28 days"), "{f}");
    // the only error of a file with exactly one defect
    assert_eq!(errors(&r).len(), 1, "{:#?}", r.findings);

    let r = invalid_report("nondigit_office");
    let f = r
        .findings
        .iter()
        .find(|f| f.rule == "format.digits")
        .unwrap();
    assert_eq!(f.column_name.as_deref(), Some("サービス事業者コード"));
    assert_eq!(f.excerpt.as_deref(), Some("13712A4567"));

    let r = invalid_report("insured_9digits");
    let lines: Vec<u64> = r
        .findings
        .iter()
        .filter(|f| f.rule == "insured.format")
        .filter_map(|f| f.line)
        .collect();
    assert_eq!(lines, vec![1, 2, 3]);

    let r = invalid_report("sender_mismatch");
    let n = r
        .findings
        .iter()
        .filter(|f| f.rule == "name.sender_mismatch")
        .count();
    assert_eq!(n, r.rows, "every record");

    let r = invalid_report("utf8");
    let f = r
        .findings
        .iter()
        .find(|f| f.rule == "encoding.utf8")
        .unwrap();
    assert!(
        f.message
            .contains("file is UTF-8; the standard requires Shift_JIS (MS932)")
    );

    let r = invalid_report("wrong_columns");
    let f = r
        .findings
        .iter()
        .find(|f| f.rule == "csv.column_count")
        .unwrap();
    assert!(
        f.message.contains("27 columns") && f.message.contains("28"),
        "{f}"
    );

    let r = invalid_report("unterminated");
    let f = r
        .findings
        .iter()
        .find(|f| f.rule == "csv.unterminated_quote")
        .unwrap();
    assert_eq!(f.column_name.as_deref(), Some("サービス内容"));

    let r = invalid_report("unknown_prefix");
    assert!(r.findings[0].message.contains("UP4KYO"));
}

#[test]
fn files_with_one_defect_report_no_unrelated_errors() {
    // The defect's own rule(s) only: no collateral errors from a single defect.
    let allowed: &[(&str, &[&str])] = &[
        ("bad_date", &["date.calendar"]),
        ("bad_month", &["format.yyyymm", "name.yyyymm"]),
        ("bom", &["encoding.bom"]),
        ("empty", &["file.empty"]),
        ("header", &["csv.header_row"]),
        ("insured_9digits", &["insured.format"]),
        ("insurer_check_digit", &["insurer.check_digit"]),
        ("mixed_versions", &["version.mixed"]),
        ("no_total", &["sikyu.total_missing"]),
        ("nondigit_office", &["format.digits"]),
        ("sender_mismatch", &["name.sender_mismatch"]),
        ("two_months", &["month.multiple"]),
        ("unknown_prefix", &["name.prefix"]),
        ("unterminated", &["csv.unterminated_quote"]),
        ("utf8", &["encoding.utf8"]),
        ("wrong_columns", &["csv.column_count"]),
    ];
    for (dir, rules) in allowed {
        let r = invalid_report(dir);
        for f in errors(&r) {
            assert!(rules.contains(&f.rule), "{dir}: unexpected {f}");
        }
    }
}

/// When `../shared` sits beside the repository, the copies in the repository must be
/// byte-identical to it (skipped silently when it is absent, e.g. in a bare clone).
#[test]
fn copies_match_shared_when_present() {
    let shared = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../shared");
    if !shared.is_dir() {
        return;
    }
    assert_eq!(
        std::fs::read(shared.join("spec/layouts.toml")).unwrap(),
        std::fs::read(SPEC).unwrap(),
        "protocol/spec/202407.toml differs from shared/spec/layouts.toml"
    );
    let mut stack = vec![PathBuf::new()];
    let mut n = 0;
    while let Some(rel) = stack.pop() {
        for e in std::fs::read_dir(shared.join("fixtures").join(&rel)).unwrap() {
            let e = e.unwrap();
            let r = rel.join(e.file_name());
            if e.file_type().unwrap().is_dir() {
                stack.push(r);
            } else {
                n += 1;
                assert_eq!(
                    std::fs::read(e.path()).unwrap(),
                    std::fs::read(Path::new(FIXTURES).join(&r)).unwrap_or_default(),
                    "fixtures/{} differs from shared/fixtures",
                    r.display()
                );
            }
        }
    }
    assert!(n > 30);
}

mod never_panics {
    use super::*;
    use proptest::prelude::*;
    use renkei_protocol::csv::parse_file_name;

    const DIRS: &[&str] = &[
        "valid/d1_kyo_plan",
        "valid/d2_kyo_riyohyo",
        "valid/d3_jisseki",
        "valid/d4_yobo_kihon",
        "valid/d5_yobo_plan",
        "valid/deletes",
    ];

    #[derive(Debug, Clone)]
    enum Mutation {
        Flip(usize, u8),
        Truncate(usize),
        Insert(usize, Vec<u8>),
    }

    fn mutation() -> impl Strategy<Value = Mutation> {
        prop_oneof![
            (any::<usize>(), 1u8..=255).prop_map(|(i, x)| Mutation::Flip(i, x)),
            any::<usize>().prop_map(Mutation::Truncate),
            (
                any::<usize>(),
                prop::collection::vec(
                    prop_oneof![
                        Just(b'"'),
                        Just(b','),
                        Just(b'\r'),
                        Just(b'\n'),
                        Just(0x81u8),
                        Just(0xEFu8),
                        any::<u8>()
                    ],
                    1..8
                )
            )
                .prop_map(|(i, v)| Mutation::Insert(i, v)),
        ]
    }

    fn apply(bytes: &mut Vec<u8>, m: &Mutation) {
        if bytes.is_empty() {
            return;
        }
        match m {
            Mutation::Flip(i, x) => {
                let i = i % bytes.len();
                bytes[i] ^= x;
            }
            Mutation::Truncate(i) => bytes.truncate(i % bytes.len()),
            Mutation::Insert(i, v) => {
                let i = i % (bytes.len() + 1);
                bytes.splice(i..i, v.iter().copied());
            }
        }
    }

    fn all_valid() -> Vec<(String, Vec<u8>)> {
        DIRS.iter().flat_map(|d| dir_files(d)).collect()
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(300))]

        #[test]
        fn random_bytes(bytes in prop::collection::vec(any::<u8>(), 0..2048), which in 0usize..18) {
            let names = all_valid();
            let name = &names[which % names.len()].0;
            let r = check_file(name, &bytes);
            prop_assert_eq!(&r.name, name);
            let _ = check_send_unit(&[(name.as_str(), &bytes[..])]);
        }

        #[test]
        fn mutated_valid_files(which in 0usize..18, ms in prop::collection::vec(mutation(), 1..6)) {
            let mut files = all_valid();
            let k = which % files.len();
            for m in &ms {
                apply(&mut files[k].1, m);
            }
            let (name, bytes) = &files[k];
            let _ = check_file(name, bytes);
            let refs: Vec<(&str, &[u8])> = files.iter().map(|(n, b)| (n.as_str(), &b[..])).collect();
            for g in group_send_units(&refs) {
                let _ = check_send_unit(&g).has_errors();
            }
        }

        #[test]
        fn mutated_names(which in 0usize..18, ms in prop::collection::vec(mutation(), 1..4)) {
            let files = all_valid();
            let mut name = files[which % files.len()].0.clone().into_bytes();
            for m in &ms {
                apply(&mut name, m);
            }
            let name = String::from_utf8_lossy(&name).into_owned();
            let _ = parse_file_name(&name);
            let _ = check_file(&name, &files[which % files.len()].1);
        }

        #[test]
        fn arbitrary_names(name in "\\PC{0,80}") {
            let _ = parse_file_name(&name);
            let _ = check_file(&name, b"202407,136390,3490391694,20250402\r\n");
        }
    }
}

/// Every rule id the code can emit is documented in docs/CSV.md.
#[test]
fn every_rule_id_is_documented() {
    const FAMILIES: &[&str] = &[
        "name", "file", "image", "encoding", "csv", "version", "field", "format", "date",
        "insurer", "insured", "office", "month", "sikyu", "kihon", "findings", "spec", "unit",
    ];
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let docs = std::fs::read_to_string(root.join("../docs/CSV.md")).unwrap();
    let mut found = 0;
    for e in std::fs::read_dir(root.join("src/csv")).unwrap() {
        let src = std::fs::read_to_string(e.unwrap().path()).unwrap();
        let code = src.split("#[cfg(test)]").next().unwrap();
        for lit in code.split('"').skip(1).step_by(2) {
            let Some((family, rest)) = lit.split_once('.') else {
                continue;
            };
            let is_rule = FAMILIES.contains(&family)
                && !rest.is_empty()
                && rest
                    .bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_');
            if is_rule {
                found += 1;
                assert!(
                    docs.contains(&format!("`{lit}`")),
                    "{lit} is not in docs/CSV.md"
                );
            }
        }
    }
    assert!(found > 40, "found only {found} rule ids");
}
