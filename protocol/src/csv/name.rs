//! File names of the standard: what a file is, who sends it to whom, and its stamp.
//!
//! Ver 4.x: `PREFIX[_YYYYMM]_<from office>_<from kind>_<to office>_<to kind>_<stamp>.CSV`,
//! and `UPKIHON_IMAGE_<from office>_<from kind>_<to office>_<to kind>_<stamp>_<nnnn>.jpg`.
//! Ver 3.x names lack the two kind codes; they parse with [`FileName::old_style`] set.

use serde::{Serialize, Serializer};

use super::finding::{Finding, Severity};
use crate::ids::{FilePrefix, OfficeNumber, ServiceKind, Stamp, YearMonth};

/// Longest file name accepted, in bytes.
pub const NAME_BYTES_MAX: usize = 200;

/// A parsed file name.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct FileName {
    /// What the file is.
    #[serde(serialize_with = "prefix_str")]
    pub prefix: FilePrefix,
    /// `YYYYMM` after the prefix (対象年月 / 提供年月; `000000` for UPHOSOKU tied to 1〜3表).
    pub yyyymm: Option<String>,
    /// Sender office.
    pub from_office: OfficeNumber,
    /// Sender service kind (absent in Ver 3 names).
    pub from_kind: Option<ServiceKind>,
    /// Recipient office.
    pub to_office: OfficeNumber,
    /// Recipient service kind (absent in Ver 3 names).
    pub to_kind: Option<ServiceKind>,
    /// ファイル連番, shared by the files of one send unit.
    pub stamp: Stamp,
    /// Branch number `nnnn` of a family-structure JPEG.
    pub image_branch: Option<u16>,
    /// A Ver 3 name (no service-kind codes).
    pub old_style: bool,
}

fn prefix_str<S: Serializer>(p: &FilePrefix, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(p.as_str())
}

/// A file name made safe to print (control characters replaced).
pub(crate) fn printable(name: &str) -> String {
    name.chars()
        .map(|c| if c.is_control() { '?' } else { c })
        .take(NAME_BYTES_MAX)
        .collect()
}

/// Parses a file name. The error names what is wrong (rule ids `name.*`).
///
/// Rejects names that could escape a directory or carry control characters: `/`, `\`,
/// `..`, NUL and other control characters, non-ASCII characters, and names over
/// [`NAME_BYTES_MAX`] bytes; unknown prefixes; malformed fields.
#[allow(clippy::result_large_err)] // the node's API: the finding is the error, shown as is
pub fn parse_file_name(name: &str) -> Result<FileName, Finding> {
    let parsed = parse_name(name);
    if let Some(f) = parsed.findings.into_iter().find(Finding::is_error) {
        return Err(f);
    }
    parsed.name.ok_or_else(|| {
        Finding::file(
            &printable(name),
            "name.format",
            Severity::Error,
            "file name does not follow the standard's pattern",
        )
    })
}

/// Everything learnt from a name, including soft errors (a bad `YYYYMM` still gives the
/// prefix, so the content can be checked).
pub(crate) struct ParsedName {
    pub(crate) prefix: Option<FilePrefix>,
    pub(crate) name: Option<FileName>,
    pub(crate) findings: Vec<Finding>,
}

fn fail(name: &str, rule: &'static str, message: String) -> ParsedName {
    ParsedName {
        prefix: None,
        name: None,
        findings: vec![Finding::file(
            &printable(name),
            rule,
            Severity::Error,
            message,
        )],
    }
}

const PATTERN: &str = "PREFIX[_YYYYMM]_<from office 10>_<from kind 2>_<to office 10>_<to kind 2>_<YYYYMMDDHHMMSS>.CSV";

pub(crate) fn parse_name(name: &str) -> ParsedName {
    if name.is_empty() {
        return fail(name, "name.format", "file name is empty".into());
    }
    if name.len() > NAME_BYTES_MAX {
        return fail(
            name,
            "name.unsafe",
            format!(
                "file name is {} bytes long; at most {NAME_BYTES_MAX} are accepted",
                name.len()
            ),
        );
    }
    if let Some(c) = name
        .chars()
        .find(|c| !c.is_ascii() || c.is_ascii_control() || *c == '/' || *c == '\\')
    {
        return fail(
            name,
            "name.unsafe",
            format!(
                "file name contains {:?}; names may hold only ASCII letters, digits, '_' and '.' (no paths, control or non-ASCII characters)",
                c
            ),
        );
    }
    if name.contains("..") {
        return fail(
            name,
            "name.unsafe",
            "file name contains \"..\"; names must not point outside their directory".into(),
        );
    }
    let Some((stem, ext)) = name.rsplit_once('.') else {
        return fail(
            name,
            "name.extension",
            "file name has no extension; expected .CSV (or .jpg for UPKIHON_IMAGE)".into(),
        );
    };
    let is_csv = ext.eq_ignore_ascii_case("csv");
    let is_jpg = ext.eq_ignore_ascii_case("jpg");
    let Some(prefix) = FilePrefix::ALL.into_iter().find(|p| {
        stem.strip_prefix(p.as_str())
            .is_some_and(|r| r.starts_with('_'))
    }) else {
        let token = stem
            .split('_')
            .take_while(|t| !t.bytes().next().is_some_and(|b| b.is_ascii_digit()))
            .collect::<Vec<_>>()
            .join("_");
        let known: Vec<&str> = FilePrefix::ALL.iter().map(|p| p.as_str()).collect();
        return fail(
            name,
            "name.prefix",
            format!(
                "unknown file prefix {token}; the standard's prefixes are {}",
                known.join(", ")
            ),
        );
    };
    let mut out = ParsedName {
        prefix: Some(prefix),
        name: None,
        findings: Vec::new(),
    };
    let file = printable(name);
    let mut err = |rule: &'static str, message: String| {
        out.findings
            .push(Finding::file(&file, rule, Severity::Error, message));
    };
    let image = prefix == FilePrefix::UpKihonImage;
    if image && !is_jpg {
        err(
            "name.extension",
            format!("{prefix} files are JPEG images and must end in .jpg, not .{ext}"),
        );
        return out;
    }
    if !image && !is_csv {
        err(
            "name.extension",
            format!("{prefix} files must end in .CSV, not .{ext}"),
        );
        return out;
    }
    let rest = &stem[prefix.as_str().len() + 1..];
    let mut tokens: Vec<&str> = rest.split('_').collect();
    let mut yyyymm = None;
    if prefix.has_yyyymm() {
        if tokens.len() < 4 || !is_digits(tokens[0], 6) {
            err(
                "name.format",
                format!(
                    "{prefix} file names need _YYYYMM after the prefix ({PATTERN}), got {name:?}"
                ),
            );
            return out;
        }
        let ym = tokens.remove(0);
        let zero_ok = prefix == FilePrefix::UpHosoku && ym == "000000";
        if !zero_ok && let Err(e) = ym.parse::<YearMonth>() {
            err(
                "name.yyyymm",
                format!(
                    "the YYYYMM field {ym} of the file name is not a valid month ({}); it must be the 対象年月 of the data",
                    e.rule
                ),
            );
        }
        yyyymm = Some(ym.to_owned());
    }
    let branch = if image { tokens.pop() } else { None };
    let (from_office, from_kind, to_office, to_kind, stamp, old_style) = match tokens[..] {
        [fo, fk, to, tk, st] => (fo, Some(fk), to, Some(tk), st, false),
        [fo, to, st] if !image => (fo, None, to, None, st, true),
        _ => {
            err(
                "name.format",
                format!("file name does not follow the standard's pattern {PATTERN}"),
            );
            return out;
        }
    };
    let office = |field: &str, v: &str, err: &mut dyn FnMut(&'static str, String)| {
        v.parse::<OfficeNumber>()
            .map_err(|e| err("name.office", format!("file name field {field}: {e}")))
            .ok()
    };
    let kind = |field: &str, v: Option<&str>, err: &mut dyn FnMut(&'static str, String)| match v {
        None => Ok(None),
        Some(v) => v
            .parse::<ServiceKind>()
            .map(Some)
            .map_err(|e| err("name.kind", format!("file name field {field}: {e}"))),
    };
    let fo = office("from_office", from_office, &mut err);
    let fk = kind("from_kind", from_kind, &mut err);
    let to = office("to_office", to_office, &mut err);
    let tk = kind("to_kind", to_kind, &mut err);
    let st = stamp
        .parse::<Stamp>()
        .map_err(|e| {
            err(
                "name.stamp",
                format!("file name field stamp (ファイル連番): {e}"),
            )
        })
        .ok();
    let br = match branch {
        None => Ok(None),
        Some(b) if is_digits(b, 4) => Ok(b.parse::<u16>().ok()),
        Some(b) => {
            err(
                "name.format",
                format!("image branch number must be 4 digits (_0001), got {b:?}"),
            );
            Err(())
        }
    };
    if let (Some(from_office), Ok(from_kind), Some(to_office), Ok(to_kind), Some(stamp), Ok(br)) =
        (fo, fk, to, tk, st, br)
    {
        out.name = Some(FileName {
            prefix,
            yyyymm,
            from_office,
            from_kind,
            to_office,
            to_kind,
            stamp,
            image_branch: br,
            old_style,
        });
    }
    out
}

fn is_digits(s: &str, n: usize) -> bool {
    s.len() == n && s.bytes().all(|b| b.is_ascii_digit())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ver4_names() {
        let n = parse_file_name("UPPLAN_202505_4074478647_43_4071481594_11_20250425164608.CSV")
            .unwrap();
        assert_eq!(n.prefix, FilePrefix::UpPlan);
        assert_eq!(n.yyyymm.as_deref(), Some("202505"));
        assert_eq!(n.from_office.as_str(), "4074478647");
        assert_eq!(n.from_kind.as_ref().unwrap().as_str(), "43");
        assert_eq!(n.to_office.as_str(), "4071481594");
        assert_eq!(n.to_kind.as_ref().unwrap().as_str(), "11");
        assert_eq!(n.stamp.as_str(), "20250425164608");
        assert!(!n.old_style);
        let n =
            parse_file_name("UPKIHON_SUB1_4009242217_46_4070383858_63_20250425093000.csv").unwrap();
        assert_eq!(n.prefix, FilePrefix::UpKihonSub1);
        assert_eq!(n.yyyymm, None);
        let n =
            parse_file_name("UPKIHON_IMAGE_4009242217_46_4070383858_63_20250425093000_0002.jpg")
                .unwrap();
        assert_eq!(n.prefix, FilePrefix::UpKihonImage);
        assert_eq!(n.image_branch, Some(2));
        let n = parse_file_name("UPHOSOKU_000000_4074478647_43_4071481594_11_20250425164608.CSV")
            .unwrap();
        assert_eq!(n.yyyymm.as_deref(), Some("000000"));
        let n =
            parse_file_name("UPYOBO_SUB_4009242217_46_4070383858_63_20250425093000.CSV").unwrap();
        assert_eq!(n.prefix, FilePrefix::UpYoboSub);
    }

    #[test]
    fn ver3_names_are_flagged_old() {
        let n = parse_file_name("UPPLAN_201912_0300000100_0300000005_20191025200201.CSV").unwrap();
        assert!(n.old_style);
        assert_eq!(n.from_kind, None);
        assert_eq!(n.to_office.as_str(), "0300000005");
    }

    #[test]
    fn rejects_with_named_rules() {
        let rule = |n: &str| parse_file_name(n).unwrap_err().rule;
        assert_eq!(
            rule("UP4KYO_4074478647_43_4071481594_11_20250425164608.CSV"),
            "name.prefix"
        );
        let e =
            parse_file_name("UP4KYO_4074478647_43_4071481594_11_20250425164608.CSV").unwrap_err();
        assert!(e.message.contains("unknown file prefix UP4KYO"), "{e}");
        assert_eq!(
            rule("UPPLAN_202513_4074478647_43_4071481594_11_20250425164608.CSV"),
            "name.yyyymm"
        );
        assert_eq!(
            rule("UPPLAN_000000_4074478647_43_4071481594_11_20250425164608.CSV"),
            "name.yyyymm"
        );
        assert_eq!(
            rule("../UPPLAN_202505_4074478647_43_4071481594_11_20250425164608.CSV"),
            "name.unsafe"
        );
        assert_eq!(rule("a/b.CSV"), "name.unsafe");
        assert_eq!(rule("a\\b.CSV"), "name.unsafe");
        assert_eq!(rule("UP1KYO\0.CSV"), "name.unsafe");
        assert_eq!(rule("UP1KYO\n.CSV"), "name.unsafe");
        assert_eq!(rule("UP1KYO_計画.CSV"), "name.unsafe");
        assert_eq!(rule(&"A".repeat(300)), "name.unsafe");
        assert_eq!(
            rule("UP1KYO_4074478647_43_4071481594_11_20250425164608.txt"),
            "name.extension"
        );
        assert_eq!(
            rule("UP1KYO_4074478647_43_4071481594_11_20250425164608"),
            "name.extension"
        );
        assert_eq!(
            rule("UP1KYO_407447864_43_4071481594_11_20250425164608.CSV"),
            "name.office"
        );
        assert_eq!(
            rule("UP1KYO_4074478647_4_4071481594_11_20250425164608.CSV"),
            "name.kind"
        );
        assert_eq!(
            rule("UP1KYO_4074478647_43_4071481594_11_20250431164608.CSV"),
            "name.stamp"
        );
        assert_eq!(
            rule("UP1KYO_4074478647_43_4071481594_20250425164608.CSV"),
            "name.format"
        );
        assert_eq!(
            rule("UPPLAN_4074478647_43_4071481594_11_20250425164608.CSV"),
            "name.format"
        );
        assert_eq!(
            rule("UPKIHON_IMAGE_4009242217_46_4070383858_63_20250425093000_01.jpg"),
            "name.format"
        );
        assert_eq!(rule(""), "name.format");
    }
}
