//! `renkei bench csv`: the standard-spec check's cost per byte on worst-case inputs, next
//! to a valid file of the same size (issue 28: every input linear, within a small constant
//! of the valid file).

use std::path::PathBuf;
use std::time::Instant;

use anyhow::{Context, Result};
use renkei_protocol::csv::check_send_unit;

/// The UPPLAN fixture whose records make the valid file.
const UPPLAN: &[u8] = include_bytes!(
    "../../fixtures/valid/d2_kyo_riyohyo/UPPLAN_202505_4074478647_43_4071481594_11_20250425164608.CSV"
);

/// A standard file name for every class: the check reads the content as a 6表.
pub const NAME: &str = "UPPLAN_202505_4074478647_43_4071481594_11_20250425164608.CSV";

/// Arguments of `renkei bench csv`.
#[derive(clap::Args, Debug, Clone)]
pub struct CsvArgs {
    /// Size of each generated file, in bytes.
    #[arg(long, default_value_t = 3_000_000)]
    pub size: usize,
    /// Timed checks per class (the median is printed).
    #[arg(long, default_value_t = 3)]
    pub runs: usize,
    /// Also write each class's file into this directory (one subdirectory per class), to
    /// run `renkei csv check` on it.
    #[arg(long)]
    pub write: Option<PathBuf>,
}

/// Makes a file of about the given size.
pub type Generator = fn(usize) -> Vec<u8>;

/// The worst-case classes, by name, each a generator of about `size` bytes.
pub const CLASSES: &[(&str, Generator)] = &[
    ("valid", valid),
    ("gaiji_everywhere", gaiji_everywhere),
    ("gaiji_in_fields", gaiji_in_fields),
    ("malformed_ms932", malformed_ms932),
    ("random_bytes", random_bytes),
    ("zip_archive", zip_archive),
    ("million_columns", million_columns),
    ("finding_per_record", finding_per_record),
    ("unclosed_quote", unclosed_quote),
    ("bare_cr", bare_cr),
    ("long_line", long_line),
];

/// Whole records of the fixture, repeated to about `size` bytes (never stopping inside a
/// quoted field that spans lines).
pub fn valid(size: usize) -> Vec<u8> {
    let lines: Vec<&[u8]> = UPPLAN.split_inclusive(|b| *b == b'\n').collect();
    let mut out = Vec::with_capacity(size + 512);
    let mut quotes = 0usize;
    let mut i = 0;
    while out.len() < size || out.is_empty() || quotes % 2 == 1 {
        let line = lines[i % lines.len()];
        quotes += memchr_count(b'"', line);
        out.extend_from_slice(line);
        i += 1;
    }
    out
}

fn memchr_count(b: u8, s: &[u8]) -> usize {
    s.iter().filter(|x| **x == b).count()
}

fn repeat(unit: &[u8], size: usize) -> Vec<u8> {
    unit.iter()
        .copied()
        .cycle()
        .take(size.max(unit.len()))
        .collect()
}

/// Nothing but user-defined characters (外字, F0 40): one finding per two bytes.
pub fn gaiji_everywhere(size: usize) -> Vec<u8> {
    repeat(b"\xF0\x40", size)
}

/// Valid records whose text field (利用者名) is a run of 外字.
pub fn gaiji_in_fields(size: usize) -> Vec<u8> {
    let gaiji = repeat(b"\xF0\x9F", 20);
    let mut out = Vec::new();
    for rec in valid(size).split_inclusive(|b| *b == b'\n') {
        // The fixture's records quote 利用者名 ("見本　ケア子" or similar): fill every
        // quoted text with 外字.
        let mut in_q = false;
        for &b in rec {
            if b == b'"' {
                if !in_q {
                    out.push(b'"');
                    out.extend_from_slice(&gaiji);
                } else {
                    out.push(b'"');
                }
                in_q = !in_q;
            } else if !in_q {
                out.push(b);
            }
        }
    }
    out
}

/// Bytes that are never valid MS932 (FF), everywhere.
pub fn malformed_ms932(size: usize) -> Vec<u8> {
    repeat(b"\xFF", size)
}

/// A deterministic xorshift stream.
fn noise(size: usize, mut s: u64) -> Vec<u8> {
    let mut out = Vec::with_capacity(size + 8);
    while out.len() < size {
        s ^= s << 13;
        s ^= s >> 7;
        s ^= s << 17;
        out.extend_from_slice(&s.to_le_bytes());
    }
    out.truncate(size);
    out
}

/// Random bytes.
pub fn random_bytes(size: usize) -> Vec<u8> {
    noise(size, 0x9E37_79B9_7F4A_7C15)
}

/// A ZIP archive's layout: local file headers, each followed by deflate-like noise.
pub fn zip_archive(size: usize) -> Vec<u8> {
    let mut out = Vec::with_capacity(size + 128);
    let mut seed = 1u64;
    while out.len() < size {
        out.extend_from_slice(b"PK\x03\x04\x14\x00\x00\x00\x08\x00");
        out.extend_from_slice(&[0; 16]);
        out.extend_from_slice(b"\x0C\x00\x00\x00UPPLAN.CSV\x00\x00");
        out.extend_from_slice(&noise(60_000, seed));
        seed += 1;
    }
    out.extend_from_slice(b"PK\x05\x06");
    out.truncate(size);
    out
}

/// One record of about `size / 2` columns.
pub fn million_columns(size: usize) -> Vec<u8> {
    let mut out = repeat(b"1,", size);
    out.extend_from_slice(b"1\r\n");
    out
}

/// Short records, each with a wrong column count: one finding per 3 bytes.
pub fn finding_per_record(size: usize) -> Vec<u8> {
    repeat(b"1\r\n", size)
}

/// A valid record, then a quote that opens and never closes, to the end of the file.
pub fn unclosed_quote(size: usize) -> Vec<u8> {
    let mut out = valid(1);
    out.extend_from_slice(b"202407,\"");
    let text = repeat(
        // 見本　ケア子 in Shift_JIS, a comma and a line end, again and again
        b"\x8C\xA9\x96\x7B\x81\x40\x83\x50\x83\x41\x8E\x71,\r\n",
        size.saturating_sub(out.len()),
    );
    out.extend_from_slice(&text);
    out
}

/// Records ended by a bare CR, and runs of bare CRs.
pub fn bare_cr(size: usize) -> Vec<u8> {
    repeat(b"1,2\r\r\r\r", size)
}

/// One line of `size` bytes of text without a separator.
pub fn long_line(size: usize) -> Vec<u8> {
    repeat(b"a", size)
}

/// Runs the benchmark; prints one line per class.
pub fn run(args: CsvArgs) -> Result<i32> {
    println!(
        "renkei bench csv: the standard-spec check (renkei_protocol::csv::check_send_unit) of one {}-byte file per class, median of {} runs",
        args.size, args.runs
    );
    println!(
        "{:<20} {:>10} {:>10} {:>9} {:>8} {:>9} {:>9}",
        "class", "bytes", "ms", "ns/byte", "× valid", "findings", "counted"
    );
    let mut valid_ns_per_byte = None;
    for (class, make) in CLASSES {
        let bytes = make(args.size);
        if let Some(dir) = &args.write {
            let d = dir.join(class);
            std::fs::create_dir_all(&d).with_context(|| format!("creating {}", d.display()))?;
            std::fs::write(d.join(NAME), &bytes)?;
        }
        let mut times = Vec::new();
        let mut listed = 0;
        let mut counted = 0;
        for _ in 0..args.runs.max(1) {
            let t = Instant::now();
            let report = check_send_unit(&[(NAME, &bytes)]);
            times.push(t.elapsed().as_secs_f64());
            listed = report.all_findings().count();
            counted = counted_findings(&report);
        }
        times.sort_by(f64::total_cmp);
        let median = times[times.len() / 2];
        let per_byte = median * 1e9 / bytes.len() as f64;
        let base = *valid_ns_per_byte.get_or_insert(per_byte);
        println!(
            "{class:<20} {:>10} {:>10.1} {:>9.2} {:>8.2} {:>9} {:>9}",
            bytes.len(),
            median * 1e3,
            per_byte,
            per_byte / base,
            listed,
            counted
        );
    }
    Ok(0)
}

/// Findings listed plus those the per-rule cap counted without listing.
pub fn counted_findings(report: &renkei_protocol::csv::UnitReport) -> u64 {
    report
        .all_findings()
        .map(|f| {
            if f.rule == "findings.truncated" {
                f.message
                    .split_whitespace()
                    .next()
                    .and_then(|n| n.parse().ok())
                    .unwrap_or(0)
            } else {
                1
            }
        })
        .sum()
}

#[cfg(test)]
mod tests {
    //! Every worst-case class gets a bounded finding list that names what is wrong, and
    //! counts what it does not list (asserted on findings, never on time).
    use super::*;
    use renkei_protocol::csv::finding::FINDINGS_PER_RULE_MAX;

    const SIZE: usize = 200_000;

    fn rules(report: &renkei_protocol::csv::UnitReport) -> Vec<&'static str> {
        report.all_findings().map(|f| f.rule).collect()
    }

    /// Listed findings per rule stay within the cap, and the report stays small however
    /// many findings the file holds.
    fn bounded(class: &str, report: &renkei_protocol::csv::UnitReport) {
        let mut per_rule = std::collections::BTreeMap::<&str, usize>::new();
        for f in report.all_findings() {
            *per_rule.entry(f.rule).or_default() += 1;
        }
        for (rule, n) in &per_rule {
            assert!(
                *n <= FINDINGS_PER_RULE_MAX,
                "{class}: {n} findings of {rule} listed"
            );
        }
        let text: usize = report.all_findings().map(|f| f.message.len()).sum();
        assert!(text < 64 * 1024, "{class}: {text} bytes of messages");
    }

    fn check(class: &str) -> renkei_protocol::csv::UnitReport {
        let make = CLASSES
            .iter()
            .find(|(c, _)| *c == class)
            .map(|(_, m)| *m)
            .expect("class");
        let report = check_send_unit(&[(NAME, &make(SIZE))]);
        bounded(class, &report);
        report
    }

    #[test]
    fn the_valid_file_passes_at_every_size() {
        let r = check("valid");
        assert!(!r.has_errors(), "{:?}", rules(&r));
        for size in [1, 4096, 100_000, 3_000_000] {
            let r = check_send_unit(&[(NAME, &valid(size))]);
            assert!(!r.has_errors(), "{size}: {:?}", rules(&r));
        }
    }

    #[test]
    fn gaiji_everywhere_is_counted_one_by_one_and_located() {
        let r = check("gaiji_everywhere");
        assert_eq!(counted_findings(&r), (SIZE / 2) as u64 + counted_other(&r));
        let first = r
            .all_findings()
            .filter(|f| f.rule == "encoding.user_defined")
            .nth(7)
            .expect("an 外字 finding");
        // One line, no separators: the 8th character is in column 1 of line 1.
        assert_eq!((first.line, first.column), (Some(1), Some(1)));
    }

    /// Findings other than 外字 in a class (counted the same way).
    fn counted_other(r: &renkei_protocol::csv::UnitReport) -> u64 {
        r.all_findings()
            .filter(|f| {
                f.rule != "encoding.user_defined"
                    && !(f.rule == "findings.truncated" && f.message.contains("user_defined"))
            })
            .count() as u64
    }

    #[test]
    fn gaiji_in_fields_are_located_per_record() {
        let r = check("gaiji_in_fields");
        let bytes = gaiji_in_fields(SIZE);
        let gaiji = bytes.windows(2).filter(|w| *w == b"\xF0\x9F").count() as u64;
        let listed: Vec<_> = r
            .all_findings()
            .filter(|f| f.rule == "encoding.user_defined")
            .collect();
        assert_eq!(listed.len(), FINDINGS_PER_RULE_MAX);
        // Located inside the quoted text column, not at the start of the line.
        assert!(listed.iter().all(|f| f.column.is_some_and(|c| c > 1)));
        assert!(listed.last().and_then(|f| f.line) > listed.first().and_then(|f| f.line));
        let counted: u64 = r
            .all_findings()
            .filter(|f| f.rule == "findings.truncated" && f.message.contains("user_defined"))
            .filter_map(|f| f.message.split_whitespace().next()?.parse::<u64>().ok())
            .sum();
        assert_eq!(counted + FINDINGS_PER_RULE_MAX as u64, gaiji);
    }

    #[test]
    fn malformed_bytes_are_located_then_counted() {
        let r = check("malformed_ms932");
        let listed = r
            .all_findings()
            .filter(|f| f.rule == "encoding.invalid_ms932" && f.line.is_some())
            .count();
        assert_eq!(listed, renkei_protocol::csv::decode::MALFORMED_REPORTED_MAX);
        let more = format!(
            "{} more invalid Shift_JIS",
            SIZE - renkei_protocol::csv::decode::MALFORMED_REPORTED_MAX
        );
        assert!(
            r.all_findings().any(|f| f.message.starts_with(&more)),
            "{:?}",
            rules(&r)
        );
    }

    #[test]
    fn binary_files_are_refused_with_a_bounded_list() {
        for class in ["random_bytes", "zip_archive"] {
            let r = check(class);
            assert!(r.has_errors());
            let rs = rules(&r);
            assert!(rs.contains(&"encoding.invalid_ms932"), "{class}: {rs:?}");
            assert!(counted_findings(&r) > 1000, "{class}");
        }
    }

    #[test]
    fn a_million_columns_is_one_column_count_finding() {
        let r = check("million_columns");
        let f = r
            .all_findings()
            .find(|f| f.rule == "csv.column_count")
            .expect("column count");
        assert!(
            f.message
                .contains(&format!("record has {} columns", SIZE / 2 + 1)),
            "{}",
            f.message
        );
    }

    #[test]
    fn a_finding_per_record_is_capped_and_counted() {
        let r = check("finding_per_record");
        // 1 CR LF repeated: a record per 3 bytes, the last one cut after its CR.
        assert_eq!(
            counted_findings(&r),
            SIZE.div_ceil(3) as u64 + counted_other_rules(&r)
        );
        assert!(
            r.all_findings()
                .any(|f| f.rule == "findings.truncated" && f.message.contains("column_count"))
        );
    }

    fn counted_other_rules(r: &renkei_protocol::csv::UnitReport) -> u64 {
        r.all_findings()
            .filter(|f| {
                f.rule != "csv.column_count"
                    && !(f.rule == "findings.truncated" && f.message.contains("column_count"))
            })
            .count() as u64
    }

    #[test]
    fn an_unclosed_quote_is_named_at_its_record() {
        let r = check("unclosed_quote");
        let f = r
            .all_findings()
            .find(|f| f.rule == "csv.unterminated_quote")
            .expect("unterminated quote");
        assert_eq!(f.column, Some(2));
        assert!(f.line.is_some_and(|l| l > 1));
    }

    #[test]
    fn bare_crs_and_long_lines_give_bounded_lists() {
        for class in ["bare_cr", "long_line"] {
            let r = check(class);
            assert!(r.has_errors(), "{class}");
        }
        let r = check("long_line");
        assert!(rules(&r).contains(&"csv.column_count"), "{:?}", rules(&r));
    }
}
