//! Decoding: the standard's files are Shift_JIS as MS932 (Windows-31J), without BOM.
//!
//! `encoding_rs::SHIFT_JIS` is the WHATWG Shift_JIS decoder, which is Windows-31J (NEC and
//! IBM extensions included). User-defined characters (外字, lead bytes 0xF0–0xF9) decode to
//! the Private Use Area; the standard forbids them, so they are reported.

use encoding_rs::{DecoderResult, SHIFT_JIS};

use super::finding::{Finding, Severity, Sink};

/// The UTF-8 byte-order mark.
pub const UTF8_BOM: &[u8] = b"\xEF\xBB\xBF";

/// Where a byte offset lies in CSV text: physical line, record and column (all 1-based).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Place {
    pub(crate) line: u64,
    pub(crate) record: u64,
    pub(crate) column: u32,
}

/// Locates `offset` in `bytes` by scanning CSV structure (quotes, commas, line ends).
///
/// Works on the raw Shift_JIS bytes as well as on UTF-8: the structural bytes `"` `,` CR
/// LF are below 0x40 and never occur as the second byte of a Shift_JIS character.
#[cfg(test)]
pub(crate) fn locate(bytes: &[u8], offset: usize) -> Place {
    Locator::new(bytes).at(offset)
}

/// Locates a series of byte offsets in one pass: each call continues the scan where the
/// previous one stopped, so locating every finding of a file costs one scan of the file
/// however many findings there are (rescanning from the start per finding made a file full
/// of 外字 or invalid bytes quadratic). Offsets asked in decreasing order restart the scan.
pub(crate) struct Locator<'a> {
    bytes: &'a [u8],
    /// Next byte to scan.
    i: usize,
    /// The last offset asked for.
    asked: usize,
    place: Place,
    in_quotes: bool,
    field_start: bool,
    record_empty: bool,
}

impl<'a> Locator<'a> {
    pub(crate) fn new(bytes: &'a [u8]) -> Self {
        Locator {
            bytes,
            i: 0,
            asked: 0,
            place: Place {
                line: 1,
                record: 1,
                column: 1,
            },
            in_quotes: false,
            field_start: true,
            record_empty: true,
        }
    }

    /// Where `offset` lies (as a scan from the start to `offset` finds it).
    pub(crate) fn at(&mut self, offset: usize) -> Place {
        if offset < self.asked {
            *self = Locator::new(self.bytes);
        }
        self.asked = offset;
        let bytes = self.bytes;
        let end = offset.min(bytes.len());
        while self.i < end {
            let b = bytes[self.i];
            if b == b'\n' {
                self.place.line += 1;
            }
            if self.in_quotes {
                if b == b'"' {
                    if bytes.get(self.i + 1) == Some(&b'"') {
                        self.i += 1;
                    } else {
                        self.in_quotes = false;
                    }
                }
            } else {
                match b {
                    b'"' if self.field_start => self.in_quotes = true,
                    b',' => {
                        self.place.column += 1;
                        self.field_start = true;
                        self.record_empty = false;
                        self.i += 1;
                        continue;
                    }
                    b'\r' | b'\n' => {
                        if !self.record_empty {
                            self.place.record += 1;
                        }
                        self.place.column = 1;
                        self.record_empty = true;
                        self.field_start = true;
                        self.i += 1;
                        continue;
                    }
                    _ => {}
                }
            }
            self.field_start = false;
            self.record_empty = false;
            self.i += 1;
        }
        self.place
    }
}

fn at(
    file: &str,
    loc: &mut Locator<'_>,
    offset: usize,
    rule: &'static str,
    message: String,
) -> Finding {
    let p = loc.at(offset);
    Finding::file(file, rule, Severity::Error, message)
        .at(p.line, Some(p.record))
        .col(p.column, None)
}

const UTF8_MESSAGE: &str = "file is UTF-8; the standard requires Shift_JIS (MS932)";

/// Decodes a file's bytes to text into `out` (cleared first), reporting encoding findings.
///
/// Returns `false` when the content cannot be read as the standard's encoding at all (a
/// UTF-8 file); otherwise `out` holds the text, with U+FFFD where bytes were invalid (each
/// reported) and without a leading BOM (reported).
pub(crate) fn decode(file: &str, bytes: &[u8], sink: &mut Sink, out: &mut String) -> bool {
    out.clear();
    let mut body = bytes;
    if let Some(rest) = bytes.strip_prefix(UTF8_BOM) {
        sink.push(
            Finding::file(
                file,
                "encoding.bom",
                Severity::Error,
                format!(
                    "file starts with a UTF-8 byte-order mark (EF BB BF): {UTF8_MESSAGE}; save it as Shift_JIS without BOM"
                ),
            )
            .at(1, Some(1))
            .col(1, None),
        );
        body = rest;
    }
    let malformed = decode_into(file, body, out);
    if let Ok(utf8) = std::str::from_utf8(body)
        && !utf8.is_ascii()
        && (!malformed.is_empty() || utf8.chars().any(|c| c as u32 >= 0x800))
    {
        let first = body.iter().position(|b| !b.is_ascii()).unwrap_or(0);
        sink.push(at(
            file,
            &mut Locator::new(body),
            first,
            "encoding.utf8",
            format!(
                "{UTF8_MESSAGE}; export it again as Shift_JIS (MS932) from the care software (first non-ASCII character here)"
            ),
        ));
        out.clear();
        return false;
    }
    for f in malformed {
        sink.push(f);
    }
    report_user_defined(file, out.as_bytes(), sink);
    true
}

/// Decodes into `out` with U+FFFD for each malformed sequence; returns a finding for each
/// (at most [`MALFORMED_REPORTED_MAX`]).
fn decode_into(file: &str, body: &[u8], out: &mut String) -> Vec<Finding> {
    let mut decoder = SHIFT_JIS.new_decoder_without_bom_handling();
    let mut found = Vec::new();
    let mut more = 0u64;
    let mut loc = Locator::new(body);
    let mut pos = 0;
    // Decoded through a fixed scratch buffer: `decode_to_string*` touches every page of the
    // String's spare capacity on each call, and it is called once per malformed sequence,
    // so a file of invalid bytes cost time quadratic in its size (43× a valid file at
    // 300 KB, hours at 6 MB).
    out.reserve(body.len().saturating_add(body.len() / 2));
    // Room for the whole file when it is small (at most 3 UTF-8 bytes per input byte), so a
    // 4 KiB file does not zero a 64 KiB buffer.
    let mut scratch = vec![
        0u8;
        body.len()
            .saturating_mul(3)
            .saturating_add(16)
            .min(DECODE_CHUNK_BYTES)
    ];
    loop {
        let (result, read, written) =
            decoder.decode_to_utf8_without_replacement(&body[pos..], &mut scratch, true);
        pos += read;
        // The decoder writes only whole UTF-8 characters.
        if let Ok(text) = std::str::from_utf8(&scratch[..written]) {
            out.push_str(text);
        }
        match result {
            DecoderResult::InputEmpty => break,
            DecoderResult::OutputFull => {}
            DecoderResult::Malformed(bad, extra) => {
                let end = pos.saturating_sub(usize::from(extra));
                let start = end.saturating_sub(usize::from(bad));
                if found.len() < MALFORMED_REPORTED_MAX {
                    let shown: Vec<String> = body[start..end]
                        .iter()
                        .map(|b| format!("{b:02X}"))
                        .collect();
                    found.push(at(
                        file,
                        &mut loc,
                        start,
                        "encoding.invalid_ms932",
                        format!(
                            "bytes {} at byte offset {start} are not valid Shift_JIS (MS932); the file is damaged or in another encoding",
                            shown.join(" ")
                        ),
                    ));
                } else {
                    more += 1;
                }
                out.push('\u{FFFD}');
            }
        }
    }
    if more > 0 {
        found.push(Finding::file(
            file,
            "encoding.invalid_ms932",
            Severity::Error,
            format!(
                "{more} more invalid Shift_JIS (MS932) byte sequences follow (only the first {MALFORMED_REPORTED_MAX} are located)"
            ),
        ));
    }
    found
}

/// Scratch buffer of the decoder (UTF-8 bytes per call).
const DECODE_CHUNK_BYTES: usize = 64 * 1024;

/// Invalid byte sequences located per file; further ones are counted in one finding.
pub const MALFORMED_REPORTED_MAX: usize = 20;

/// Reports characters decoded into the Private Use Area: user-defined characters (外字).
/// The sink keeps the first [`super::finding::FINDINGS_PER_RULE_MAX`] and counts the rest
/// without building them; all are located in one scan.
fn report_user_defined(file: &str, text: &[u8], sink: &mut Sink) {
    let mut loc = Locator::new(text);
    for i in memchr::memchr2_iter(0xEE, 0xEF, text) {
        let pua = text[i] == 0xEE || text.get(i + 1).is_some_and(|b| (0x80..=0xA3).contains(b));
        if pua {
            sink.push_with("encoding.user_defined", Severity::Error, || {
                let ch = std::str::from_utf8(&text[i..(i + 3).min(text.len())])
                    .ok()
                    .and_then(|s| s.chars().next())
                    .map(|c| format!("U+{:04X}", c as u32))
                    .unwrap_or_default();
                at(
                    file,
                    &mut loc,
                    i,
                    "encoding.user_defined",
                    format!(
                        "user-defined character (外字, {ch}) is not allowed; replace it with a standard MS932 character"
                    ),
                )
            });
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(bytes: &[u8]) -> (Option<String>, Vec<Finding>) {
        let mut sink = Sink::default();
        let mut out = String::new();
        let t = decode("F.CSV", bytes, &mut sink, &mut out).then_some(out);
        (t, sink.finish("F.CSV"))
    }

    #[test]
    fn ms932_decodes_including_extensions() {
        // ① (87 40), ㈱ (87 8A), 髙 (FB FC), ～ (81 60 -> U+FF5E), ｱ (B1), 﨑 (ED 95)
        let (t, f) = run(b"a,\x87\x40\x87\x8A\xFB\xFC\x81\x60\xB1\xED\x95\r\n");
        assert!(f.is_empty(), "{f:?}");
        assert_eq!(t.unwrap(), "a,①㈱髙～ｱ﨑\r\n");
    }

    #[test]
    fn invalid_bytes_named_at_line_and_column() {
        let (t, f) = run(b"1,2\r\n3,\"x\r\ny\",\x85\x20z\r\n");
        assert_eq!(f.len(), 1, "{f:?}");
        assert_eq!(f[0].rule, "encoding.invalid_ms932");
        assert_eq!(
            (f[0].line, f[0].column, f[0].record),
            (Some(3), Some(3), Some(2))
        );
        assert!(t.unwrap().contains('\u{FFFD}'));
    }

    #[test]
    fn utf8_and_bom_are_refused() {
        let (t, f) = run("202407,\"東京\"\r\n".as_bytes());
        assert!(t.is_none());
        assert_eq!(f[0].rule, "encoding.utf8");
        assert!(
            f[0].message
                .contains("file is UTF-8; the standard requires Shift_JIS (MS932)")
        );
        assert_eq!((f[0].line, f[0].column), (Some(1), Some(2)));
        let (t, f) = run(b"\xEF\xBB\xBF202407,\x93\x8C\r\n");
        assert_eq!(t.unwrap(), "202407,東\r\n");
        assert_eq!(f[0].rule, "encoding.bom");
        assert_eq!((f[0].line, f[0].column), (Some(1), Some(1)));
    }

    #[test]
    fn user_defined_characters_are_refused() {
        let (_, f) = run(b"a,\xF0\x40\r\n");
        assert_eq!(f[0].rule, "encoding.user_defined");
        assert_eq!(f[0].column, Some(2));
    }

    #[test]
    fn locate_counts_quoted_line_breaks_and_commas() {
        let b = b"a,\"x,\r\ny\"\r\n\r\nb,c";
        assert_eq!(
            locate(b, 0),
            Place {
                line: 1,
                record: 1,
                column: 1
            }
        );
        assert_eq!(
            locate(b, 7),
            Place {
                line: 2,
                record: 1,
                column: 2
            }
        );
        assert_eq!(
            locate(b, b.len() - 1),
            Place {
                line: 4,
                record: 2,
                column: 2
            }
        );
    }
}
