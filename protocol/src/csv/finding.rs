//! Findings: what a check found, where, and how bad it is.

use std::collections::BTreeMap;
use std::fmt;

use serde::Serialize;

/// How bad a finding is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    /// The file does not meet the standard; Renkei will not send it.
    Error,
    /// Worth a look; the file is still sent.
    Warning,
}

impl fmt::Display for Severity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Severity::Error => "error",
            Severity::Warning => "warning",
        })
    }
}

/// One finding of a check, located as precisely as known.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Finding {
    /// File name (as given, without directories).
    pub file: String,
    /// 1-based physical line where the record starts (line breaks inside quoted text count).
    pub line: Option<u64>,
    /// 1-based record number.
    pub record: Option<u64>,
    /// 1-based column number.
    pub column: Option<u32>,
    /// Japanese column name from the layout.
    pub column_name: Option<String>,
    /// Stable rule id, e.g. `encoding.utf8`, `date.calendar` (docs/CSV.md lists them).
    pub rule: &'static str,
    /// What is wrong and what to do, in English.
    pub message: String,
    /// The offending value, shortened.
    pub excerpt: Option<String>,
    /// Error or warning.
    pub severity: Severity,
}

/// Characters of a value kept in a finding's excerpt.
pub const EXCERPT_CHARS_MAX: usize = 40;

/// Shortens a value for an excerpt.
pub fn excerpt(value: &str) -> String {
    let mut out: String = value
        .chars()
        .take(EXCERPT_CHARS_MAX)
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect();
    if value.chars().nth(EXCERPT_CHARS_MAX).is_some() {
        out.push('…');
    }
    out
}

impl Finding {
    /// A finding about a whole file (no line or column).
    pub fn file(
        file: &str,
        rule: &'static str,
        severity: Severity,
        message: impl Into<String>,
    ) -> Finding {
        Finding {
            file: file.to_owned(),
            line: None,
            record: None,
            column: None,
            column_name: None,
            rule,
            message: message.into(),
            excerpt: None,
            severity,
        }
    }

    /// Sets the line (and record).
    pub fn at(mut self, line: u64, record: Option<u64>) -> Finding {
        self.line = Some(line);
        self.record = record;
        self
    }

    /// Sets the column.
    pub fn col(mut self, column: u32, name: Option<&str>) -> Finding {
        self.column = Some(column);
        self.column_name = name.map(str::to_owned);
        self
    }

    /// Sets the value excerpt.
    pub fn value(mut self, value: &str) -> Finding {
        self.excerpt = Some(excerpt(value));
        self
    }

    /// Whether this is an error.
    pub fn is_error(&self) -> bool {
        self.severity == Severity::Error
    }
}

impl fmt::Display for Finding {
    /// `FILE:LINE:COLUMN: error[rule]: message (列 名前) value "…"`, one line.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.file)?;
        if let Some(l) = self.line {
            write!(f, ":{l}")?;
            if let Some(c) = self.column {
                write!(f, ":{c}")?;
            }
        } else if let Some(c) = self.column {
            write!(f, ": column {c}")?;
        }
        write!(f, ": {}[{}]: {}", self.severity, self.rule, self.message)?;
        if let Some(n) = &self.column_name {
            write!(f, " (column {}", n)?;
            if let Some(c) = self.column {
                write!(f, " #{c}")?;
            }
            f.write_str(")")?;
        }
        if let Some(v) = &self.excerpt {
            write!(f, " value {v:?}")?;
        }
        Ok(())
    }
}

/// Findings of one rule kept per file; further ones are counted, not listed.
pub const FINDINGS_PER_RULE_MAX: usize = 50;

/// Collects a file's findings, keeping at most [`FINDINGS_PER_RULE_MAX`] per rule so that a
/// systematically broken 30 MB file does not produce millions of lines.
#[derive(Debug, Default)]
pub(crate) struct Sink {
    findings: Vec<Finding>,
    per_rule: BTreeMap<&'static str, (usize, Severity)>,
}

impl Sink {
    pub(crate) fn push(&mut self, f: Finding) {
        if self.count(f.rule, f.severity) {
            self.findings.push(f);
        }
    }

    /// Counts a finding of `rule` and builds it with `make` only if it will be listed: a
    /// file with a million findings of one rule costs a million counts, not a million
    /// messages.
    pub(crate) fn push_with(
        &mut self,
        rule: &'static str,
        severity: Severity,
        make: impl FnOnce() -> Finding,
    ) {
        if self.count(rule, severity) {
            self.findings.push(make());
        }
    }

    /// Counts one finding; returns whether it is listed.
    fn count(&mut self, rule: &'static str, severity: Severity) -> bool {
        let entry = self.per_rule.entry(rule).or_insert((0, severity));
        entry.0 += 1;
        entry.1 = entry.1.min(severity);
        entry.0 <= FINDINGS_PER_RULE_MAX
    }

    pub(crate) fn finish(mut self, file: &str) -> Vec<Finding> {
        for (rule, (n, severity)) in &self.per_rule {
            if *n > FINDINGS_PER_RULE_MAX {
                self.findings.push(Finding::file(
                    file,
                    "findings.truncated",
                    *severity,
                    format!(
                        "{} more findings of rule {rule} not listed (only the first {FINDINGS_PER_RULE_MAX} are shown)",
                        n - FINDINGS_PER_RULE_MAX
                    ),
                ));
            }
        }
        self.findings
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn display_is_one_line_with_location() {
        let f = Finding::file("A.CSV", "date.calendar", Severity::Error, "not a date")
            .at(3, Some(2))
            .col(4, Some("作成年月日"))
            .value("20250230");
        assert_eq!(
            f.to_string(),
            "A.CSV:3:4: error[date.calendar]: not a date (column 作成年月日 #4) value \"20250230\""
        );
        let json = serde_json::to_value(&f).unwrap();
        assert_eq!(json["severity"], "error");
        assert_eq!(json["column_name"], "作成年月日");
    }

    #[test]
    fn sink_caps_per_rule_but_remembers_errors() {
        let mut s = Sink::default();
        for i in 0..(FINDINGS_PER_RULE_MAX as u64 + 10) {
            s.push(Finding::file("F", "x.y", Severity::Error, "m").at(i + 1, None));
        }
        let v = s.finish("F");
        assert_eq!(v.len(), FINDINGS_PER_RULE_MAX + 1);
        assert_eq!(v.last().unwrap().rule, "findings.truncated");
        assert!(v.last().unwrap().message.starts_with("10 more"));
    }

    #[test]
    fn excerpts_are_short_and_single_line() {
        let long = "あ".repeat(100);
        let e = excerpt(&long);
        assert_eq!(e.chars().count(), EXCERPT_CHARS_MAX + 1);
        assert_eq!(excerpt("a\r\nb"), "a  b");
    }
}
