//! Checking one file against its layout: [`check_file`].

use std::collections::BTreeSet;

use serde::Serialize;

use super::decode::decode;
use super::finding::{Finding, Severity, Sink};
use super::format;
use super::layout::{self, Column, FileLayout, Format, Spec, VersionUse};
use super::name::{FileName, parse_name, printable};
use super::unit::RelationKey;
use crate::ids::{DocKind, FilePrefix, InsuredNumber, OfficeNumber, mod10_check_digit};

/// What checking one file found.
#[derive(Debug, Clone, Serialize)]
pub struct FileReport {
    /// File name as given.
    pub name: String,
    /// The parsed name, when it parses.
    pub file_name: Option<FileName>,
    /// Document category.
    pub doc_kind: Option<DocKind>,
    /// Number of data records (a header row is not counted).
    pub rows: usize,
    /// Distinct users (保険者番号 + 被保険者番号).
    pub users: usize,
    /// Findings, in file order, name findings first.
    pub findings: Vec<Finding>,
    /// CSV version of the records (column 1 of the first record).
    pub csv_version: Option<String>,
    /// Relation keys, one per user and plan date / month, sorted and deduplicated.
    pub keys: Vec<RelationKey>,
    /// Family-structure image names listed in UPKIHON column 62.
    pub images: Vec<String>,
    /// The users' names where the file carries them (利用者補足情報 columns 5–6, 利用者基本情報
    /// columns 14–15), by 被保険者番号, at most [`USER_NAMES_MAX`]: what a clerk searches
    /// the inbox by. Not part of a report's JSON.
    #[serde(skip)]
    pub names: Vec<UserName>,
}

/// A user's name as a file gives it.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct UserName {
    /// 被保険者番号.
    pub insured: String,
    /// 利用者氏名 (at most [`USER_NAME_CHARS_MAX`] characters).
    pub name: String,
    /// 利用者氏名フリガナ (the same bound).
    pub kana: String,
}

/// Names kept per file.
pub const USER_NAMES_MAX: usize = 1000;
/// Characters kept of a name.
pub const USER_NAME_CHARS_MAX: usize = 64;

impl FileReport {
    /// Whether any finding is an error.
    pub fn has_errors(&self) -> bool {
        self.findings.iter().any(Finding::is_error)
    }
}

/// What checking one file leaves behind for the next: the decoded text's allocation (a
/// fresh 40 MB buffer per file cost page faults worth ~10 % of validation time) and the
/// CSV reader (building one — csv_core compiles its parser tables — costs as much as
/// checking a 4 KiB file). Owned by the caller: [`check_send_unit`](super::check_send_unit)
/// keeps one for the files of a unit, a worker thread may keep one for its life. It never
/// changes an answer: every check starts from an empty buffer and a reset reader.
#[derive(Default)]
pub struct Scratch {
    decoded: String,
    reader: Option<CsvReader>,
}

impl std::fmt::Debug for Scratch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Scratch")
            .field("decoded_capacity", &self.decoded.capacity())
            .field("reader", &self.reader.is_some())
            .finish()
    }
}

/// Largest decode buffer (and CSV reader buffer) kept between files, per thread: a node
/// checks on a pool of threads, and each keeping a 128 MiB buffer from one large upload
/// added up to hundreds of MiB.
const DECODED_KEPT_BYTES_MAX: usize = 16 * 1024 * 1024;

/// The JPEG start-of-image marker.
const JPEG_MAGIC: &[u8] = b"\xFF\xD8\xFF";

/// Checks one file: its name, encoding, CSV structure and every field against the layout
/// of its prefix, and name ↔ content consistency. The bytes are only read.
pub fn check_file(name: &str, bytes: &[u8]) -> FileReport {
    check_file_in(&mut Scratch::default(), name, bytes)
}

/// [`check_file`], reusing `scratch`'s buffers.
pub fn check_file_in(scratch: &mut Scratch, name: &str, bytes: &[u8]) -> FileReport {
    let display = printable(name);
    let parsed = parse_name(name);
    let mut sink = Sink::default();
    for f in parsed.findings {
        sink.push(f);
    }
    let mut report = FileReport {
        name: display.clone(),
        file_name: parsed.name,
        doc_kind: None,
        rows: 0,
        users: 0,
        findings: Vec::new(),
        csv_version: None,
        keys: Vec::new(),
        images: Vec::new(),
        names: Vec::new(),
    };
    let Some(prefix) = parsed.prefix else {
        report.findings = sink.finish(&display);
        return report;
    };
    report.doc_kind = Some(doc_kind(prefix, report.file_name.as_ref()));
    if let Some(n) = &report.file_name {
        name_warnings(&display, n, &mut sink);
    }
    if bytes.is_empty() {
        sink.push(Finding::file(
            &display,
            "file.empty",
            Severity::Error,
            "file is empty (0 bytes); export it again from the care software",
        ));
    } else if prefix == FilePrefix::UpKihonImage {
        if !bytes.starts_with(JPEG_MAGIC) {
            sink.push(Finding::file(
                &display,
                "image.not_jpeg",
                Severity::Error,
                "family-structure image is not a JPEG file (it must start with FF D8 FF)",
            ));
        }
    } else {
        match layout::current() {
            Err(e) => sink.push(Finding::file(
                &display,
                "spec.load",
                Severity::Error,
                e.to_string(),
            )),
            Ok(current) => {
                let mut text = std::mem::take(&mut scratch.decoded);
                text.clear();
                if decode(&display, bytes, &mut sink, &mut text) {
                    let mut check = Check::new(&display, prefix, report.file_name.as_ref());
                    check.run(current, text.as_bytes(), &mut sink, &mut scratch.reader);
                    report.rows = check.rows;
                    report.users = check.users.len();
                    report.csv_version = check.version;
                    report.keys = check.keys.into_iter().collect();
                    report.images = check.images;
                    report.names = check.names.into_iter().collect();
                }
                if text.capacity() <= DECODED_KEPT_BYTES_MAX {
                    text.clear();
                    scratch.decoded = text;
                }
            }
        }
    }
    report.findings = sink.finish(&display);
    report
}

/// The document category of a file.
pub(crate) fn doc_kind(prefix: FilePrefix, name: Option<&FileName>) -> DocKind {
    match name {
        Some(FileName {
            yyyymm,
            from_kind: Some(fk),
            to_kind: Some(tk),
            ..
        }) => prefix.doc_kind_for(yyyymm.as_deref(), fk, tk),
        Some(FileName { yyyymm, .. })
            if prefix == FilePrefix::UpHosoku && yyyymm.as_deref() == Some("000000") =>
        {
            DocKind::D1
        }
        _ => prefix.doc_kind(),
    }
}

fn name_warnings(file: &str, n: &FileName, sink: &mut Sink) {
    if n.old_style {
        sink.push(Finding::file(
            file,
            "name.ver3",
            Severity::Warning,
            "Ver 3 file name without service-kind codes; Ver 4 names carry _<kind>_ after each office number",
        ));
    }
    for (field, office) in [("from_office", &n.from_office), ("to_office", &n.to_office)] {
        if !office.check_digit_ok() {
            sink.push(
                Finding::file(
                    file,
                    "office.check_digit",
                    Severity::Warning,
                    format!(
                        "file name field {field}: office number {office} fails the modulus-10 check digit; please confirm the number (not rejected: the algorithm is not official)"
                    ),
                )
                .value(office.as_str()),
            );
        }
    }
}

/// Column (0-based) of the relation key's subject, per prefix.
fn subject_column(prefix: FilePrefix) -> usize {
    match prefix {
        FilePrefix::Up1Kyo => 13,
        FilePrefix::Up2Kyo | FilePrefix::Up3Kyo => 4,
        FilePrefix::UpPlan | FilePrefix::UpJsk | FilePrefix::UpSikyu => 4,
        FilePrefix::UpHosoku => 62,
        _ => 3,
    }
}

/// Column (0-based) that must equal the file name's `YYYYMM`.
fn name_month_column(prefix: FilePrefix) -> Option<usize> {
    match prefix {
        FilePrefix::UpPlan | FilePrefix::UpJsk | FilePrefix::UpSikyu => Some(4),
        FilePrefix::DltPlan | FilePrefix::DltJsk => Some(3),
        FilePrefix::UpHosoku => Some(62),
        _ => None,
    }
}

/// Column (0-based) that must equal the sender office of the file name.
fn sender_column(prefix: FilePrefix) -> Option<usize> {
    match prefix {
        FilePrefix::UpPlan => Some(5),
        FilePrefix::Up1Kyo => Some(12),
        FilePrefix::DltJsk => Some(4),
        _ => None,
    }
}

/// Column (0-based) that should equal the recipient office of the file name.
fn receiver_column(prefix: FilePrefix) -> Option<usize> {
    match prefix {
        FilePrefix::UpJsk => Some(5),
        _ => None,
    }
}

/// Files that hold exactly one service month (column 5, 対象年月).
fn single_month(prefix: FilePrefix) -> bool {
    matches!(
        prefix,
        FilePrefix::UpPlan | FilePrefix::UpJsk | FilePrefix::UpSikyu
    )
}

const SIKYU_TOTAL: &[u8] = b"999999";
/// Buffer of the CSV reader, at most.
const READ_BUFFER_BYTES: usize = 256 * 1024;
/// Buffer of the CSV reader, at least.
const READ_BUFFER_MIN_BYTES: usize = 8 * 1024;

type CsvReader = csv::Reader<std::io::Cursor<Vec<u8>>>;

/// `kept` reset to read `text` from the start, or a new reader (its buffer no larger than
/// `text` needs: a fresh 256 KiB buffer, zeroed, per 4 KiB unit cost more than the check).
fn take_reader(kept: &mut Option<CsvReader>, text: &[u8]) -> CsvReader {
    let mut rdr = kept.take().unwrap_or_else(|| {
        csv::ReaderBuilder::new()
            .has_headers(false)
            .flexible(true)
            .buffer_capacity(READ_BUFFER_BYTES.min(text.len().max(READ_BUFFER_MIN_BYTES)))
            .from_reader(std::io::Cursor::new(Vec::new()))
    });
    let cursor = rdr.get_mut();
    let mut buf = std::mem::take(cursor.get_mut());
    buf.clear();
    buf.extend_from_slice(text);
    *cursor = std::io::Cursor::new(buf);
    // Seeking a cursor cannot fail; seeking resets the parser and the position.
    let _ = rdr.seek(csv::Position::new());
    rdr
}

fn give_back_reader(kept: &mut Option<CsvReader>, mut rdr: CsvReader) {
    let buf = rdr.get_mut().get_mut();
    if buf.capacity() > DECODED_KEPT_BYTES_MAX {
        *buf = Vec::new();
    }
    *kept = Some(rdr);
}

const SIKYU_SERVICE_CODE: usize = 8;
const KIHON_IMAGE: usize = 61;

/// State of one file's check.
struct Check<'a> {
    file: &'a str,
    prefix: FilePrefix,
    name: Option<&'a FileName>,
    rows: usize,
    users: BTreeSet<(String, String)>,
    keys: BTreeSet<RelationKey>,
    images: Vec<String>,
    names: BTreeSet<UserName>,
    version: Option<String>,
    office_warned: BTreeSet<Vec<u8>>,
}

/// A record's location.
#[derive(Clone, Copy)]
struct At {
    line: u64,
    record: u64,
}

impl<'a> Check<'a> {
    fn new(file: &'a str, prefix: FilePrefix, name: Option<&'a FileName>) -> Self {
        Check {
            file,
            prefix,
            name,
            rows: 0,
            users: BTreeSet::new(),
            keys: BTreeSet::new(),
            images: Vec::new(),
            names: BTreeSet::new(),
            version: None,
            office_warned: BTreeSet::new(),
        }
    }

    fn finding(
        &self,
        at: At,
        col: Option<&Column>,
        rule: &'static str,
        severity: Severity,
        message: String,
    ) -> Finding {
        let f = Finding::file(self.file, rule, severity, message).at(at.line, Some(at.record));
        match col {
            Some(c) => f.col(c.no, Some(&c.name)),
            None => f,
        }
    }

    fn run(
        &mut self,
        current: &'a Spec,
        text: &'a [u8],
        sink: &mut Sink,
        kept: &mut Option<CsvReader>,
    ) {
        let mut rdr = take_reader(kept, text);
        let mut rec = csv::ByteRecord::new();
        let mut record_no = 0u64;
        let mut layout: Option<&FileLayout> = current.layout(self.prefix);
        let mut last: Option<(At, usize)> = None;
        let mut first_month: Option<Vec<u8>> = None;
        let mut prev_user: Vec<u8> = Vec::new();
        let mut prev_key: Vec<u8> = Vec::new();
        let mut prev_service_code: Vec<u8> = Vec::new();
        let mut prev_at: Option<At> = None;
        let mut quote_reported = false;
        // `read_byte_record` only fails on IO errors, which a byte slice does not have.
        while let Ok(true) = rdr.read_byte_record(&mut rec) {
            record_no += 1;
            let (line, start) = match rec.position() {
                Some(p) => real_start(text, p.byte() as usize, p.line()),
                None => (0, 0),
            };
            let at = At {
                line,
                record: record_no,
            };
            last = Some((at, start));
            if record_no == 1
                && let Some(l) = layout
                && is_header(&rec, l)
            {
                sink.push_with("csv.header_row", Severity::Error, || self.finding(
                    at,
                    None,
                    "csv.header_row",
                    Severity::Error,
                    "the first record is a header row of column names; the standard has no header row: remove line 1".to_owned(),
                ));
                record_no = 0;
                continue;
            }
            self.rows += 1;
            if self.version.is_none() {
                layout = self.choose_version(current, &rec, at, sink).or(layout);
            }
            let Some(layout) = layout else { continue };
            let end = (rdr.position().byte() as usize).clamp(start, text.len());
            if self.record(layout, &rec, at, &text[start..end], sink) {
                quote_reported = true;
            }
            // users, keys and per-user 7表 totals
            let user_changed = !same_user(&prev_user, &rec);
            if user_changed {
                if self.prefix == FilePrefix::UpSikyu
                    && let Some(p) = prev_at
                    && prev_service_code != SIKYU_TOTAL
                {
                    let c = &layout.columns[SIKYU_SERVICE_CODE];
                    sink.push_with("sikyu.total_missing", Severity::Error, || self.finding(
                        p,
                        Some(c),
                        "sikyu.total_missing",
                        Severity::Error,
                        format!(
                            "第7表: the rows of user {} end here without the 999999 全合計 (total) row; each user's rows must end with it",
                            String::from_utf8_lossy(&prev_user).replace(',', "/")
                        ),
                    ));
                }
                prev_user.clear();
                for i in 1..3 {
                    prev_user.extend_from_slice(rec.get(i).unwrap_or_default());
                    prev_user.push(b',');
                }
                if let (Some(ins), Some(id)) = (rec.get(1), rec.get(2))
                    && !ins.is_empty()
                {
                    self.users.insert((lossy(ins), lossy(id)));
                }
            }
            if rec.len() == layout.column_count {
                self.key(&rec, user_changed, &mut prev_key);
                self.month(layout, &rec, at, &mut first_month, sink);
            }
            if self.prefix == FilePrefix::UpSikyu {
                prev_service_code.clear();
                prev_service_code
                    .extend_from_slice(rec.get(SIKYU_SERVICE_CODE).unwrap_or_default());
            }
            prev_at = Some(at);
        }
        give_back_reader(kept, rdr);
        let Some((last_at, last_start)) = last else {
            sink.push(Finding::file(
                self.file,
                "file.empty",
                Severity::Error,
                "file has no records; export it again from the care software",
            ));
            return;
        };
        if let Some(column) = quote_problem(&text[last_start..])
            && !quote_reported
        {
            let name = layout
                .and_then(|l| l.columns.get(column as usize - 1))
                .map(|c| c.name.as_str());
            sink.push(
                Finding::file(
                    self.file,
                    "csv.unterminated_quote",
                    Severity::Error,
                    "a quoted field opens here and is never closed: everything to the end of the file was read as this field; add the closing \" (and write a \" inside text as \"\")",
                )
                .at(last_at.line, Some(last_at.record))
                .col(column, name),
            );
        }
        if self.prefix == FilePrefix::UpSikyu
            && self.rows > 0
            && prev_service_code != SIKYU_TOTAL
            && let Some(l) = layout
        {
            let c = &l.columns[SIKYU_SERVICE_CODE];
            let lf = memchr::memchr_iter(b'\n', text).count() as u64;
            let eof_line = lf + if text.ends_with(b"\n") { 1 } else { 2 };
            sink.push(
                Finding::file(
                    self.file,
                    "sikyu.total_missing",
                    Severity::Error,
                    format!(
                        "第7表 ends after record {} without the 999999 全合計 (total) row; the last record must have サービスコード 999999",
                        last_at.record
                    ),
                )
                .at(eof_line, None)
                .col(c.no, Some(&c.name)),
            );
        }
    }

    /// Picks the layout from the CSV version of the first data record.
    fn choose_version(
        &mut self,
        current: &'a Spec,
        rec: &csv::ByteRecord,
        at: At,
        sink: &mut Sink,
    ) -> Option<&'a FileLayout> {
        let v = lossy(rec.get(0).unwrap_or_default());
        self.version = Some(v.clone());
        let col = current.layout(self.prefix).and_then(|l| l.columns.first());
        let (spec, rule, severity, message) = match layout::version_use(&v) {
            Ok(VersionUse::Own(s)) => return s.layout(self.prefix),
            Ok(VersionUse::Fallback(s)) => (
                s,
                "version.ver3",
                Severity::Warning,
                format!(
                    "CSV version {v} (Ver 3.x): Renkei has no separate {v} layouts and checks this file with the {} (Ver 4.1) layouts; columns Ver 3 lacks show up as column-count errors",
                    s.csv_version
                ),
            ),
            Ok(VersionUse::Tolerated(s)) => (
                s,
                "version.ver40",
                Severity::Warning,
                format!(
                    "CSV version {v} is the Ver 4.0 value that Ver 4.1 replaced with {}; checked as {}, but ask the software vendor to write {}",
                    s.csv_version, s.csv_version, s.csv_version
                ),
            ),
            Ok(VersionUse::Rejected) => (
                current,
                "version.unsupported",
                Severity::Error,
                format!(
                    "CSV version {:?} is not accepted; expected {} (Ver 4.1) or 202208 (Ver 3.x)",
                    format_excerpt(&v),
                    current.csv_version
                ),
            ),
            Err(e) => (current, "spec.load", Severity::Error, e.to_string()),
        };
        sink.push(self.finding(at, col, rule, severity, message).value(&v));
        spec.layout(self.prefix)
    }

    /// Checks one record's shape and fields (`raw` is its text). Returns whether a quoting
    /// problem was reported.
    fn record(
        &mut self,
        layout: &'a FileLayout,
        rec: &csv::ByteRecord,
        at: At,
        raw: &[u8],
        sink: &mut Sink,
    ) -> bool {
        if rec.len() != layout.column_count {
            // A wrong count is most often a broken quote that shifted the fields.
            if let Some(column) = quote_problem(raw) {
                let c = layout.columns.get(column as usize - 1);
                sink.push_with("csv.unterminated_quote", Severity::Error, || self.finding(
                    at,
                    c,
                    "csv.unterminated_quote",
                    Severity::Error,
                    format!(
                        "the quoted field in column {column} is not closed properly (a \" inside it ends the quote early, or it never closes): add the closing \" and write a \" inside text as \"\""
                    ),
                ));
                return true;
            }
            sink.push_with("csv.column_count", Severity::Error, || {
                self.finding(
                    at,
                    None,
                    "csv.column_count",
                    Severity::Error,
                    format!(
                        "record has {} columns; {} ({}) needs {}",
                        rec.len(),
                        self.prefix,
                        layout.title,
                        layout.column_count
                    ),
                )
            });
            return false;
        }
        let version = rec.get(0).unwrap_or_default();
        if let Some(v) = &self.version
            && version != v.as_bytes()
        {
            let c = &layout.columns[0];
            sink.push_with("version.mixed", Severity::Error, || self.finding(
                    at,
                    Some(c),
                    "version.mixed",
                    Severity::Error,
                    format!(
                        "CSV version {} differs from {} of the first record; one file must not mix CSV versions",
                        lossy(version),
                        v
                    ),
                )
                .value(&lossy(version)));
        }
        for (i, (value, rule)) in rec.iter().zip(&layout.rules).enumerate().skip(1) {
            let col = &layout.columns[i];
            if value.is_empty() {
                if rule.required {
                    sink.push_with("field.required", rule.severity, || {
                        self.finding(
                            at,
                            Some(col),
                            "field.required",
                            rule.severity,
                            format!("{} is required but empty", col.name),
                        )
                    });
                }
                continue;
            }
            if i == 1 {
                self.insurer(value, col, at, sink);
                continue;
            }
            if i == 2 {
                if InsuredNumber::try_from(lossy(value)).is_err() {
                    sink.push_with("insured.format", Severity::Error, || self.finding(
                            at,
                            Some(col),
                            "insured.format",
                            Severity::Error,
                            format!(
                                "被保険者番号 must be 10 digits, or H + 9 digits for public assistance only; got {} characters",
                                format::chars(value)
                            ),
                        )
                        .value(&lossy(value)));
                }
                continue;
            }
            let ok = match rule.format {
                Format::Digits => format::digits(value),
                Format::Alnum => format::alnum(value),
                Format::Yyyymm => {
                    format::yyyymm(value) || (rule.zero_allowed && value == b"000000")
                }
                Format::Yyyymmdd => {
                    format::yyyymmdd(value) || (rule.zero_allowed && value == b"00000000")
                }
                Format::Hhmm => format::hhmm(value),
                Format::Decimal => format::decimal(value),
                Format::Code => col
                    .values
                    .as_ref()
                    .is_some_and(|vs| vs.iter().any(|c| c.as_bytes() == value)),
                Format::Text | Format::FreeText => true,
            };
            if !ok {
                let (rule_id, message) = self.format_message(col, rule.format, value);
                sink.push(
                    self.finding(at, Some(col), rule_id, rule.severity, message)
                        .value(&lossy(value)),
                );
                continue;
            }
            if let Some(max) = rule.max_chars
                && value.len() > max
                && format::chars(value) > max
            {
                sink.push_with("field.length", rule.severity, || {
                    self.finding(
                        at,
                        Some(col),
                        "field.length",
                        rule.severity,
                        format!(
                            "{} is {} characters long; at most {max} are allowed",
                            col.name,
                            format::chars(value)
                        ),
                    )
                    .value(&lossy(value))
                });
                continue;
            }
            if rule.office {
                self.office(value, col, at, sink);
            }
        }
        self.consistency(layout, rec, at, sink);
        if self.prefix == FilePrefix::UpKihon
            && let Some(img) = rec.get(KIHON_IMAGE)
            && !img.is_empty()
        {
            self.images.push(lossy(img));
        }
        false
    }

    fn format_message(&self, col: &Column, format: Format, value: &[u8]) -> (&'static str, String) {
        let v = lossy(value);
        let name = &col.name;
        match format {
            Format::Digits => ("format.digits", format!("{name} must be digits only (0-9)")),
            Format::Alnum => (
                "format.alnum",
                format!("{name} must be ASCII letters and digits only"),
            ),
            Format::Yyyymm => (
                "format.yyyymm",
                format!(
                    "{name} must be a month YYYYMM: {}",
                    format::yyyymm_reason(&v)
                ),
            ),
            Format::Yyyymmdd => (
                "date.calendar",
                format!(
                    "{name} must be a real calendar date YYYYMMDD: {}",
                    format::date_reason(&v)
                ),
            ),
            Format::Hhmm => (
                "format.hhmm",
                format!("{name} must be a time HHMM (0000-2359) or 9999 for no time"),
            ),
            Format::Decimal => (
                "format.decimal",
                format!("{name} must be a decimal number like 11.40"),
            ),
            Format::Code => {
                let allowed: Vec<String> = col
                    .values
                    .iter()
                    .flatten()
                    .map(|c| {
                        let label = col
                            .codes
                            .as_ref()
                            .and_then(|list| layout::current().ok()?.codes.get(list))
                            .and_then(|l| l.values.iter().find(|x| &x.code == c))
                            .map(|x| format!(" ({})", x.label))
                            .unwrap_or_default();
                        format!("{c}{label}")
                    })
                    .collect();
                (
                    "format.code",
                    format!("{name} must be one of {}", allowed.join(", ")),
                )
            }
            Format::Text | Format::FreeText => ("format.text", format!("{name} is not valid text")),
        }
    }

    fn insurer(&self, value: &[u8], col: &Column, at: At, sink: &mut Sink) {
        let v = lossy(value);
        if value.len() != 6 || !format::digits(value) {
            sink.push_with("insurer.format", Severity::Error, || {
                self.finding(
                    at,
                    Some(col),
                    "insurer.format",
                    Severity::Error,
                    format!(
                        "保険者番号 must be 6 digits; got {} characters",
                        format::chars(value)
                    ),
                )
                .value(&v)
            });
            return;
        }
        let want = mod10_check_digit(&v[..5]);
        if value[5] - b'0' != want {
            sink.push_with("insurer.check_digit", Severity::Error, || self.finding(
                    at,
                    Some(col),
                    "insurer.check_digit",
                    Severity::Error,
                    format!(
                        "保険者番号 {v} fails the modulus-10 check digit (the last digit should be {want}); check the number on the insurance card"
                    ),
                )
                .value(&v));
        }
    }

    fn office(&mut self, value: &[u8], col: &Column, at: At, sink: &mut Sink) {
        if value.len() != 10 {
            sink.push_with("office.format", Severity::Error, || {
                self.finding(
                    at,
                    Some(col),
                    "office.format",
                    Severity::Error,
                    format!("{} must be a 10-digit office number", col.name),
                )
                .value(&lossy(value))
            });
            return;
        }
        // Hot path: the check digit on bytes, without building an OfficeNumber.
        let body_ok = std::str::from_utf8(&value[..9])
            .is_ok_and(|body| mod10_check_digit(body) == value[9].wrapping_sub(b'0'));
        if body_ok || value == b"9999999999" || self.office_warned.contains(value) {
            return;
        }
        let Ok(office) = lossy(value).parse::<OfficeNumber>() else {
            return;
        };
        if !office.check_digit_ok() {
            self.office_warned.insert(value.to_vec());
            sink.push_with("office.check_digit", Severity::Warning, || self.finding(
                    at,
                    Some(col),
                    "office.check_digit",
                    Severity::Warning,
                    format!(
                        "office number {office} fails the modulus-10 check digit; please confirm it (not rejected: the algorithm is not official; reported once per file)"
                    ),
                )
                .value(office.as_str()));
        }
    }

    /// Name ↔ content consistency.
    fn consistency(&self, layout: &FileLayout, rec: &csv::ByteRecord, at: At, sink: &mut Sink) {
        let Some(name) = self.name else { return };
        if !single_month(self.prefix)
            && let Some(i) = name_month_column(self.prefix)
            && let Some(v) = rec.get(i)
        {
            self.name_month(layout, i, v, at, sink);
        }
        if let Some(i) = sender_column(self.prefix)
            && let Some(v) = rec.get(i)
            && v != name.from_office.as_str().as_bytes()
        {
            let c = &layout.columns[i];
            sink.push_with("name.sender_mismatch", Severity::Error, || self.finding(
                    at,
                    Some(c),
                    "name.sender_mismatch",
                    Severity::Error,
                    format!(
                        "{} {} differs from the sender office {} in the file name; the file must be sent by that office, or its name is wrong",
                        c.name,
                        lossy(v),
                        name.from_office
                    ),
                )
                .value(&lossy(v)));
        }
        if let Some(i) = receiver_column(self.prefix)
            && let Some(v) = rec.get(i)
            && v != name.to_office.as_str().as_bytes()
        {
            let c = &layout.columns[i];
            sink.push_with("name.receiver_mismatch", Severity::Warning, || self.finding(
                    at,
                    Some(c),
                    "name.receiver_mismatch",
                    Severity::Warning,
                    format!(
                        "{} {} differs from the recipient office {} in the file name; 実績 normally goes back to the office that made the plan",
                        c.name,
                        lossy(v),
                        name.to_office
                    ),
                )
                .value(&lossy(v)));
        }
        if self.prefix == FilePrefix::UpKihon
            && let Some(img) = rec.get(KIHON_IMAGE)
            && !img.is_empty()
        {
            let c = &layout.columns[KIHON_IMAGE];
            let s = lossy(img);
            let ok = parse_name(&s).name.is_some_and(|n| {
                n.prefix == FilePrefix::UpKihonImage
                    && n.from_office == name.from_office
                    && n.to_office == name.to_office
                    && n.from_kind == name.from_kind
                    && n.to_kind == name.to_kind
                    && n.stamp == name.stamp
            });
            if !ok {
                sink.push_with("kihon.image_name", Severity::Error, || self.finding(
                        at,
                        Some(c),
                        "kihon.image_name",
                        Severity::Error,
                        "家族構成 画像ファイル名 must be UPKIHON_IMAGE_<from>_<kind>_<to>_<kind>_<stamp>_<nnnn>.jpg with the offices, kinds and stamp of this file".to_owned(),
                    )
                    .value(&s));
            }
        }
    }

    /// The month in column `i` agrees with the file name's `YYYYMM`.
    fn name_month(&self, layout: &FileLayout, i: usize, v: &[u8], at: At, sink: &mut Sink) {
        let Some(ym) = self.name.and_then(|n| n.yyyymm.as_ref()) else {
            return;
        };
        if v != ym.as_bytes() {
            let c = &layout.columns[i];
            sink.push_with("name.month_mismatch", Severity::Error, || {
                self.finding(
                    at,
                    Some(c),
                    "name.month_mismatch",
                    Severity::Error,
                    format!(
                        "{} {} differs from the month {ym} in the file name; they must agree",
                        c.name,
                        lossy(v)
                    ),
                )
                .value(&lossy(v))
            });
        }
    }

    /// One service month per 6表/7表/実績 file (checked against the name on the first
    /// record).
    fn month(
        &self,
        layout: &FileLayout,
        rec: &csv::ByteRecord,
        at: At,
        first: &mut Option<Vec<u8>>,
        sink: &mut Sink,
    ) {
        if !single_month(self.prefix) {
            return;
        }
        let Some(v) = rec.get(4) else { return };
        match first {
            None => {
                *first = Some(v.to_vec());
                self.name_month(layout, 4, v, at, sink);
            }
            Some(f) if f.as_slice() != v => {
                let c = &layout.columns[4];
                sink.push_with("month.multiple", Severity::Error, || self.finding(
                        at,
                        Some(c),
                        "month.multiple",
                        Severity::Error,
                        format!(
                            "対象年月 {} differs from {} of the first record; a {} file holds exactly one service month: send each month in its own file",
                            lossy(v),
                            lossy(f),
                            self.prefix
                        ),
                    )
                    .value(&lossy(v)));
            }
            Some(_) => {}
        }
    }

    /// Records the record's relation key (when it differs from the previous record's).
    fn key(&mut self, rec: &csv::ByteRecord, user_changed: bool, prev: &mut Vec<u8>) {
        let mut subject = rec.get(subject_column(self.prefix)).unwrap_or_default();
        if self.prefix == FilePrefix::UpHosoku && subject == b"000000" {
            subject = rec.get(3).unwrap_or_default();
        }
        if !user_changed && prev.as_slice() == subject {
            return;
        }
        prev.clear();
        prev.extend_from_slice(subject);
        let (Some(insurer), Some(insured)) = (rec.get(1), rec.get(2)) else {
            return;
        };
        self.keys.insert(RelationKey {
            insurer: lossy(insurer),
            insured: lossy(insured),
            subject: lossy(subject),
        });
        // The user's name, where this kind of file carries it (once per user and subject).
        let columns = match self.prefix {
            FilePrefix::UpHosoku => Some((5, 4)),
            FilePrefix::UpKihon => Some((14, 13)),
            _ => None,
        };
        if let Some((name_at, kana_at)) = columns
            && self.names.len() < USER_NAMES_MAX
        {
            let clip = |i: usize| -> String {
                lossy(rec.get(i).unwrap_or_default())
                    .trim()
                    .chars()
                    .take(USER_NAME_CHARS_MAX)
                    .collect()
            };
            let (name, kana) = (clip(name_at), clip(kana_at));
            if !insured.is_empty() && (!name.is_empty() || !kana.is_empty()) {
                self.names.insert(UserName {
                    insured: lossy(insured),
                    name,
                    kana,
                });
            }
        }
    }
}

fn lossy(v: &[u8]) -> String {
    String::from_utf8_lossy(v).into_owned()
}

fn format_excerpt(v: &str) -> String {
    super::finding::excerpt(v)
}

fn same_user(prev: &[u8], rec: &csv::ByteRecord) -> bool {
    let (Some(a), Some(b)) = (rec.get(1), rec.get(2)) else {
        return prev.is_empty();
    };
    prev.len() == a.len() + b.len() + 2
        && prev[..a.len()] == *a
        && prev[a.len() + 1..a.len() + 1 + b.len()] == *b
}

/// The line and byte where a record really starts. The `csv` crate positions a record
/// just after the previous terminator's first byte (so after `\r` of a CRLF), and counts
/// lines by `\n`; skip the remaining line-end bytes and count their `\n`.
fn real_start(text: &[u8], byte: usize, line: u64) -> (u64, usize) {
    let mut line = line;
    let mut i = byte.min(text.len());
    while let Some(&b) = text.get(i) {
        match b {
            b'\n' => line += 1,
            b'\r' => {}
            _ => break,
        }
        i += 1;
    }
    (line, i)
}

/// Whether the first record is a header row: column 1 is not a version number and the
/// values are the layout's column names.
fn is_header(rec: &csv::ByteRecord, layout: &FileLayout) -> bool {
    let first = rec.get(0).unwrap_or_default();
    if format::digits(first) {
        return false;
    }
    let matches = rec
        .iter()
        .zip(&layout.columns)
        .filter(|(v, c)| *v == c.name.as_bytes())
        .count();
    first == layout.columns[0].name.as_bytes() || matches * 2 >= rec.len().min(layout.column_count)
}

/// The 1-based column of a broken quoted field in `text` (records from one record's start):
/// a quote that never closes, or one that "closes" before text other than a comma or line
/// end (RFC 4180 allows only those after a closing quote).
fn quote_problem(text: &[u8]) -> Option<u32> {
    let mut column = 1u32;
    let mut in_quotes = false;
    let mut field_start = true;
    let mut open_column = 0;
    let mut i = 0;
    while i < text.len() {
        let b = text[i];
        if in_quotes {
            if b == b'"' {
                match text.get(i + 1) {
                    Some(b'"') => i += 1,
                    None | Some(b',' | b'\r' | b'\n') => in_quotes = false,
                    Some(_) => return Some(open_column),
                }
            }
            field_start = false;
        } else {
            match b {
                b'"' if field_start => {
                    in_quotes = true;
                    open_column = column;
                    field_start = false;
                }
                b',' => {
                    column += 1;
                    field_start = true;
                }
                b'\r' | b'\n' => {
                    column = 1;
                    field_start = true;
                }
                _ => field_start = false,
            }
        }
        i += 1;
    }
    in_quotes.then_some(open_column)
}

#[cfg(test)]
mod tests {
    use super::*;

    const DLT1: &str = "DLT1KYO_4074478647_43_4071481594_11_20250425164659.CSV";
    const PLAN: &str = "UPPLAN_202505_4074478647_43_4071481594_11_20250425164608.CSV";
    const PLAN_ROW: &str = "202407,136390,3490391694,20250425,202505,4074478647,\"見本　ケア子\",471,,20250502,,1330,1430,1,131111,,,\"\",,4070383858,\"ひばり訪問看護事業所\",,0,4074478647,\r\n";

    fn sjis(s: &str) -> Vec<u8> {
        encoding_rs::SHIFT_JIS.encode(s).0.into_owned()
    }

    fn rules(r: &FileReport) -> Vec<(&'static str, Severity, Option<u64>, Option<u32>)> {
        r.findings
            .iter()
            .map(|f| (f.rule, f.severity, f.line, f.column))
            .collect()
    }

    #[test]
    fn users_names_come_from_the_files_that_carry_them() {
        let hosoku = include_bytes!(
            "../../../fixtures/valid/d2_kyo_riyohyo/UPHOSOKU_202505_4074478647_43_4071481594_11_20250425164608.CSV"
        );
        let r = check_file(
            "UPHOSOKU_202505_4074478647_43_4071481594_11_20250425164608.CSV",
            hosoku,
        );
        assert!(!r.has_errors(), "{:?}", r.findings);
        let names: Vec<(&str, &str, &str)> = r
            .names
            .iter()
            .map(|n| (n.insured.as_str(), n.name.as_str(), n.kana.as_str()))
            .collect();
        assert_eq!(
            names,
            vec![
                ("1047640335", "小林\u{3000}トメ", "ｺﾊﾞﾔｼ ﾄﾒ"),
                ("3490391694", "佐藤\u{3000}勇", "ｻﾄｳ ｲｻﾑ"),
                ("6699747534", "田中\u{3000}花子", "ﾀﾅｶ ﾊﾅｺ"),
            ]
        );
        // A 第6表 carries no names; a name longer than the bound is cut.
        assert!(check_file(PLAN, &sjis(PLAN_ROW)).names.is_empty());
        let r = check_file(
            "UPHOSOKU_202505_4074478647_43_4071481594_11_20250425164608.CSV",
            &sjis(
                &encoding_rs::SHIFT_JIS
                    .decode(hosoku)
                    .0
                    .replace("小林", &"長".repeat(200)),
            ),
        );
        let cut = r.names.iter().find(|n| n.name.starts_with('長')).unwrap();
        assert_eq!(cut.name.chars().count(), USER_NAME_CHARS_MAX);
    }

    #[test]
    fn a_valid_plan_row_passes() {
        let r = check_file(PLAN, &sjis(PLAN_ROW));
        assert!(r.findings.is_empty(), "{:?}", r.findings);
        assert_eq!((r.rows, r.users), (1, 1));
        assert_eq!(r.keys[0].subject, "202505");
    }

    #[test]
    fn ver3_and_ver40_versions_warn_unknown_versions_fail() {
        let r = check_file(DLT1, b"202208,136390,3490391694,20250402\r\n");
        assert_eq!(
            rules(&r),
            vec![("version.ver3", Severity::Warning, Some(1), Some(1))]
        );
        assert!(r.findings[0].message.contains("202407"));
        let r = check_file(DLT1, b"202504,136390,3490391694,20250402\r\n");
        assert_eq!(
            rules(&r),
            vec![("version.ver40", Severity::Warning, Some(1), Some(1))]
        );
        let r = check_file(DLT1, b"201910,136390,3490391694,20250402\r\n");
        assert_eq!(
            rules(&r),
            vec![("version.unsupported", Severity::Error, Some(1), Some(1))]
        );
    }

    #[test]
    fn lines_count_crlf_lf_and_quoted_breaks() {
        let text = format!(
            "{}\n{}\r\n\r\n202407,136390,3490391694,20250425,202505,4074478647,\"a\r\nb\",471,,20250532,,1330,1430,1,131111,,,\"\",,4070383858,\"x\",,0,4074478647,\r\n",
            PLAN_ROW.trim_end(),
            PLAN_ROW.trim_end()
        );
        let r = check_file(PLAN, &sjis(&text));
        assert_eq!(
            rules(&r),
            vec![("date.calendar", Severity::Error, Some(4), Some(10))]
        );
        assert_eq!(r.findings[0].record, Some(3));
        assert_eq!(r.rows, 3);
    }

    #[test]
    fn invalid_ms932_is_located() {
        let mut bytes = sjis(PLAN_ROW);
        bytes.extend(sjis(PLAN_ROW));
        let at = bytes.len() - 20;
        bytes[at] = 0x85; // not a lead byte in MS932
        bytes[at + 1] = 0x20;
        let r = check_file(PLAN, &bytes);
        let f = r
            .findings
            .iter()
            .find(|f| f.rule == "encoding.invalid_ms932")
            .unwrap();
        assert_eq!((f.line, f.column), (Some(2), Some(21)));
    }

    #[test]
    fn required_code_length_and_office_rules() {
        let row = PLAN_ROW
            .replace(",471,", ",,") // 単位数: required but uncertain -> warning
            .replace(",0,4074478647,\r", ",7,4074478640,\r") // bad code; bad check digit
            .replace(",1,131111,", ",123,131111,"); // サービス回数 longer than 2
        let r = check_file(PLAN, &sjis(&row));
        let got = rules(&r);
        assert!(
            got.contains(&("field.required", Severity::Warning, Some(1), Some(8))),
            "{got:?}"
        );
        assert!(
            got.contains(&("format.code", Severity::Error, Some(1), Some(23))),
            "{got:?}"
        );
        assert!(
            got.contains(&("office.check_digit", Severity::Warning, Some(1), Some(24))),
            "{got:?}"
        );
        assert!(
            got.contains(&("field.length", Severity::Error, Some(1), Some(14))),
            "{got:?}"
        );
        let code = r.findings.iter().find(|f| f.rule == "format.code").unwrap();
        assert!(code.message.contains("1 (該当)"), "{code}");
    }

    #[test]
    fn name_month_and_hhmm() {
        let row = PLAN_ROW
            .replace(",202505,", ",202506,")
            .replace(",1330,", ",2560,");
        let r = check_file(PLAN, &sjis(&row));
        let got = rules(&r);
        assert!(
            got.contains(&("name.month_mismatch", Severity::Error, Some(1), Some(5))),
            "{got:?}"
        );
        assert!(
            got.contains(&("format.hhmm", Severity::Error, Some(1), Some(12))),
            "{got:?}"
        );
    }

    #[test]
    fn sikyu_needs_a_total_row_per_user() {
        let name = "UPSIKYU_202505_4074478647_43_4071481594_11_20250425164608.CSV";
        let detail = |ins: &str| {
            format!(
                "202407,136390,{ins},20250425,202505,\"x\",4070383858,,131111,,,\"\",471,,,9,4239,,,,,,,,,,,,,,,,0,,,4074478647,\r\n"
            )
        };
        let total = |ins: &str| {
            format!(
                "202407,136390,{ins},20250425,202505,\"\",9999999999,,999999,,,\"\",0,,,0,4239,4239,0,4239,0,4239,,48324,,43491,,4833,0,,,,0,9999999999,,4074478647,\r\n"
            )
        };
        let text = format!(
            "{}{}{}",
            detail("3490391694"),
            detail("1047640335"),
            total("1047640335")
        );
        let r = check_file(name, &sjis(&text));
        assert_eq!(
            rules(&r),
            vec![("sikyu.total_missing", Severity::Error, Some(1), Some(9))]
        );
        let text = format!("{}{}", detail("3490391694"), total("3490391694"));
        assert!(check_file(name, &sjis(&text)).findings.is_empty());
    }

    #[test]
    fn many_bad_rows_are_capped() {
        let row = PLAN_ROW.replace(",20250502,", ",20250532,");
        let r = check_file(PLAN, &sjis(&row.repeat(200)));
        assert_eq!(r.rows, 200);
        let n = r
            .findings
            .iter()
            .filter(|f| f.rule == "date.calendar")
            .count();
        assert_eq!(n, super::super::finding::FINDINGS_PER_RULE_MAX);
        let t = r
            .findings
            .iter()
            .find(|f| f.rule == "findings.truncated")
            .unwrap();
        assert_eq!(t.severity, Severity::Error);
        assert!(t.message.starts_with("150 more"));
    }

    #[test]
    fn jpeg_and_ver3_names() {
        let img = "UPKIHON_IMAGE_4009242217_46_4070383858_63_20250425093000_0001.jpg";
        assert!(check_file(img, b"\xFF\xD8\xFF\xE0").findings.is_empty());
        assert_eq!(rules(&check_file(img, b"GIF89a"))[0].0, "image.not_jpeg");
        let r = check_file(
            "DLT1KYO_4074478647_4071481594_20250425164659.CSV",
            b"202208,136390,3490391694,20250402\r\n",
        );
        let got: Vec<_> = r.findings.iter().map(|f| f.rule).collect();
        assert_eq!(got, vec!["name.ver3", "version.ver3"]);
        assert_eq!(r.doc_kind, Some(DocKind::D1));
    }

    #[test]
    fn real_start_skips_crlf() {
        let t = b"a\r\nb\r\n\r\nc";
        assert_eq!(real_start(t, 2, 1), (2, 3));
        assert_eq!(real_start(t, 4, 2), (4, 8));
    }

    #[test]
    fn unterminated_quote_column() {
        assert_eq!(quote_problem(b"1,\"a\",\"b\r\nc"), Some(3));
        assert_eq!(quote_problem(b"1,\"a\"\"\",b\r\n"), None);
        assert_eq!(quote_problem(b"1,a\"b,c"), None);
        assert_eq!(quote_problem(b"1,\"a,b,\"c\",d"), Some(2));
        assert_eq!(quote_problem(b"1,\"a\""), None);
    }
}
