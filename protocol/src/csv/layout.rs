//! Column layouts of the standard's CSV files, as data.
//!
//! Each CSV version's layouts live in one TOML file under `protocol/spec/` (embedded at
//! compile time and parsed once, at first use). The next version of the standard is a new
//! file and a new [`SPEC_FILES`] entry, not new code.

use std::collections::BTreeMap;
use std::sync::OnceLock;

use serde::Deserialize;

use super::finding::Severity;
use crate::ids::FilePrefix;

/// The embedded layout files, keyed by the CSV version value they describe.
pub const SPEC_FILES: &[(&str, &str)] = &[("202407", include_str!("../../spec/202407.toml"))];

/// A layout file that could not be read.
#[derive(Debug, Clone, thiserror::Error)]
#[error("layout file for CSV version {version} is invalid: {reason}")]
pub struct SpecError {
    /// The CSV version whose file failed.
    pub version: String,
    /// What was wrong.
    pub reason: String,
}

/// Format of a column's values, as named in the layout file.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Format {
    /// `YYYYMM`.
    Yyyymm,
    /// `YYYYMMDD`, a real Gregorian date.
    Yyyymmdd,
    /// `HHMM`, or `9999` for "no time".
    Hhmm,
    /// ASCII digits only.
    Digits,
    /// ASCII letters and digits.
    Alnum,
    /// One of the values of a code list.
    Code,
    /// Short unstructured text (postal code, phone number, …).
    Text,
    /// Free text (quoted; may hold commas and line breaks).
    FreeText,
    /// Decimal number `99.99`.
    Decimal,
}

/// Maximum length of a column in characters, or `free`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(untagged)]
pub enum Length {
    /// At most this many characters.
    Max(u32),
    /// Variable length (the layout says `"free"`).
    Free(FreeWord),
}

/// The word `free` in a layout's `length`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FreeWord {
    /// `"free"`.
    Free,
}

/// One column of a file layout.
#[derive(Debug, Clone, Deserialize)]
pub struct Column {
    /// 1-based position.
    pub no: u32,
    /// Japanese column name as in the standard.
    pub name: String,
    /// Maximum length in characters.
    pub length: Length,
    /// Whether a value is required.
    pub required: bool,
    /// Value format.
    pub format: Format,
    /// Name of the code list (`[codes.*]`), for `code` columns.
    #[serde(default)]
    pub codes: Option<String>,
    /// Allowed values, for `code` columns.
    #[serde(default)]
    pub values: Option<Vec<String>>,
    /// Length or required flag could not be confirmed: rules on it give warnings only.
    #[serde(default)]
    pub uncertain: bool,
    /// Remarks from the standard.
    #[serde(default)]
    pub note: String,
}

impl Column {
    /// Whether an all-zero date/month (`00000000` / `000000`) is allowed: the standard uses
    /// it where a value is tied to another table (the note says so).
    pub fn zero_allowed(&self) -> bool {
        match self.format {
            Format::Yyyymmdd => self.note.contains("00000000"),
            Format::Yyyymm => self.note.contains("000000"),
            _ => false,
        }
    }

    /// Whether this column holds a care office number (事業所番号, 10 digits).
    pub fn is_office(&self) -> bool {
        self.format == Format::Digits
            && self.length == Length::Max(10)
            && (self.name.contains("業者コード")
                || self.name.contains("事業所コード")
                || self.note.contains("事業者番号"))
    }
}

/// The layout of one file kind (one prefix).
#[derive(Debug, Clone, Deserialize)]
pub struct FileLayout {
    /// File-name prefix.
    pub prefix: String,
    /// Japanese title.
    pub title: String,
    /// Whether the file name has `_YYYYMM`.
    pub has_yyyymm: bool,
    /// Number of columns of every record.
    pub column_count: usize,
    /// The columns, in order.
    pub columns: Vec<Column>,
    /// The columns' checks, compiled once when the layout is loaded.
    #[serde(skip)]
    pub(crate) rules: Vec<ColumnRule>,
}

/// What is checked on one column, precomputed for the hot path.
#[derive(Debug, Clone)]
pub(crate) struct ColumnRule {
    pub(crate) format: Format,
    /// Maximum length in characters.
    pub(crate) max_chars: Option<usize>,
    pub(crate) required: bool,
    /// Warning for `uncertain` columns, error otherwise.
    pub(crate) severity: Severity,
    pub(crate) zero_allowed: bool,
    pub(crate) office: bool,
}

/// A send unit as the layout file describes it.
#[derive(Debug, Clone, Deserialize)]
pub struct SendUnitSpec {
    /// D-category (`D1` …).
    pub d_category: String,
    /// Prefixes of the files it carries.
    pub files: Vec<String>,
}

/// The `[csv]` section.
#[derive(Debug, Clone, Deserialize)]
pub struct CsvSection {
    /// CSV version values accepted.
    pub versions_accepted: Vec<String>,
    /// The version this file describes.
    pub version_current: String,
}

/// A code list.
#[derive(Debug, Clone, Deserialize)]
pub struct CodeList {
    /// Japanese title.
    pub title: String,
    /// The values.
    pub values: Vec<CodeValue>,
}

/// One code of a code list.
#[derive(Debug, Clone, Deserialize)]
pub struct CodeValue {
    /// The code as written in files.
    pub code: String,
    /// Its meaning.
    pub label: String,
}

/// All layouts of one CSV version.
#[derive(Debug, Clone, Deserialize)]
pub struct Spec {
    /// Version of the layout-file schema.
    pub schema_version: u32,
    /// Title of the standard.
    pub spec: String,
    /// The CSV version value these layouts describe.
    pub csv_version: String,
    /// Encoding and version rules.
    pub csv: CsvSection,
    /// Send units by name (`KYO_PLAN`, …).
    pub send_units: BTreeMap<String, SendUnitSpec>,
    /// Code lists by name.
    pub codes: BTreeMap<String, CodeList>,
    /// File layouts by prefix.
    pub files: BTreeMap<String, FileLayout>,
}

impl Spec {
    /// Parses a layout file and checks it is self-consistent.
    pub fn parse(version: &str, text: &str) -> Result<Spec, SpecError> {
        let err = |reason: String| SpecError {
            version: version.to_owned(),
            reason,
        };
        let mut spec: Spec = toml::from_str(text).map_err(|e| err(e.to_string()))?;
        if spec.csv_version != version {
            return Err(err(format!(
                "declares csv_version {} but is registered as {version}",
                spec.csv_version
            )));
        }
        for (key, layout) in &mut spec.files {
            if layout.columns.len() != layout.column_count {
                return Err(err(format!(
                    "{key}: column_count {} but {} columns listed",
                    layout.column_count,
                    layout.columns.len()
                )));
            }
            for (i, c) in layout.columns.iter().enumerate() {
                if c.no as usize != i + 1 {
                    return Err(err(format!("{key}: column {} is numbered {}", i + 1, c.no)));
                }
                if c.format == Format::Code && c.values.as_ref().is_none_or(|v| v.is_empty()) {
                    return Err(err(format!("{key}: code column {} has no values", c.no)));
                }
            }
            if layout.prefix.parse::<FilePrefix>().is_err() {
                return Err(err(format!("{key}: unknown prefix {}", layout.prefix)));
            }
            layout.rules = layout
                .columns
                .iter()
                .map(|c| ColumnRule {
                    format: c.format,
                    max_chars: match c.length {
                        Length::Max(n) => Some(n as usize),
                        Length::Free(_) => None,
                    },
                    required: c.required,
                    severity: if c.uncertain {
                        Severity::Warning
                    } else {
                        Severity::Error
                    },
                    zero_allowed: c.zero_allowed(),
                    office: c.is_office(),
                })
                .collect();
        }
        Ok(spec)
    }

    /// The layout for a file prefix (none for the JPEG family).
    pub fn layout(&self, prefix: FilePrefix) -> Option<&FileLayout> {
        self.files.get(prefix.as_str())
    }
}

static SPECS: OnceLock<Result<BTreeMap<&'static str, Spec>, SpecError>> = OnceLock::new();

/// All embedded specs, keyed by CSV version (parsed at first use).
pub fn specs() -> Result<&'static BTreeMap<&'static str, Spec>, &'static SpecError> {
    SPECS
        .get_or_init(|| {
            SPEC_FILES
                .iter()
                .map(|(v, text)| Spec::parse(v, text).map(|s| (*v, s)))
                .collect()
        })
        .as_ref()
}

/// How a CSV version value is treated.
#[derive(Debug, Clone, Copy)]
pub enum VersionUse<'a> {
    /// A version with its own layout file.
    Own(&'a Spec),
    /// Accepted, but checked with a newer layout (`202208` with `202407`): say so.
    Fallback(&'a Spec),
    /// Not listed as accepted, but read as a newer version with a warning (`202504`, the
    /// value of Ver 4.0 that Ver 4.1 replaced with `202407`).
    Tolerated(&'a Spec),
    /// Not accepted.
    Rejected,
}

/// The CSV version value that Ver 4.0 used and Ver 4.1 replaced.
pub const VERSION_40: &str = "202504";

/// How files of CSV version `v` are checked.
pub fn version_use(v: &str) -> Result<VersionUse<'static>, &'static SpecError> {
    let specs = specs()?;
    if let Some(s) = specs.get(v) {
        return Ok(VersionUse::Own(s));
    }
    let Some((_, newest)) = specs.iter().next_back() else {
        return Ok(VersionUse::Rejected);
    };
    if newest.csv.versions_accepted.iter().any(|a| a == v) {
        Ok(VersionUse::Fallback(newest))
    } else if v == VERSION_40 {
        Ok(VersionUse::Tolerated(newest))
    } else {
        Ok(VersionUse::Rejected)
    }
}

/// The newest embedded spec (what file names and unit composition are checked against).
pub fn current() -> Result<&'static Spec, &'static SpecError> {
    let specs = specs()?;
    specs.values().next_back().ok_or(&NO_SPEC)
}

static NO_SPEC: SpecError = SpecError {
    version: String::new(),
    reason: String::new(),
};

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn embedded_layouts_parse() {
        let specs = specs().unwrap();
        let s = &specs["202407"];
        assert_eq!(s.files.len(), 17);
        assert_eq!(s.layout(FilePrefix::UpPlan).unwrap().column_count, 25);
        assert_eq!(s.layout(FilePrefix::UpKihon).unwrap().column_count, 71);
        assert!(s.layout(FilePrefix::UpKihonImage).is_none());
        for p in FilePrefix::ALL {
            if p != FilePrefix::UpKihonImage {
                assert!(s.layout(p).is_some(), "{p}");
            }
        }
    }

    #[test]
    fn columns_know_zero_dates_and_offices() {
        let s = current().unwrap();
        let hosoku = s.layout(FilePrefix::UpHosoku).unwrap();
        assert!(hosoku.columns[3].zero_allowed());
        assert!(hosoku.columns[62].zero_allowed());
        let plan = s.layout(FilePrefix::UpPlan).unwrap();
        assert!(!plan.columns[4].zero_allowed());
        assert!(plan.columns[5].is_office());
        assert!(plan.columns[19].is_office());
        assert!(!plan.columns[7].is_office());
    }

    #[test]
    fn versions() {
        assert!(matches!(version_use("202407").unwrap(), VersionUse::Own(_)));
        assert!(matches!(
            version_use("202208").unwrap(),
            VersionUse::Fallback(_)
        ));
        assert!(matches!(
            version_use("202504").unwrap(),
            VersionUse::Tolerated(_)
        ));
        assert!(matches!(
            version_use("201910").unwrap(),
            VersionUse::Rejected
        ));
    }

    #[test]
    fn bad_layout_is_named() {
        let e = Spec::parse("202407", "schema_version = 1").unwrap_err();
        assert!(e.to_string().contains("202407"), "{e}");
    }
}
