//! Value formats checked on bytes (no allocation on the hot path). On failure, the
//! messages come from the validating parsers of [`crate::ids`].

use crate::ids::{YearMonth, check_date, days_in_month};

fn num(v: &[u8]) -> u32 {
    v.iter().fold(0u32, |n, b| {
        n.wrapping_mul(10)
            .wrapping_add(u32::from(b.wrapping_sub(b'0')))
    })
}

/// ASCII digits only (and at least one).
pub(crate) fn digits(v: &[u8]) -> bool {
    !v.is_empty() && v.iter().all(u8::is_ascii_digit)
}

/// ASCII letters and digits only (and at least one).
pub(crate) fn alnum(v: &[u8]) -> bool {
    !v.is_empty() && v.iter().all(u8::is_ascii_alphanumeric)
}

/// `YYYYMM`, year 1900–2999, month 01–12 (the rules of [`YearMonth`]).
pub(crate) fn yyyymm(v: &[u8]) -> bool {
    v.len() == 6 && digits(v) && (1900..=2999).contains(&num(&v[..4])) && {
        let m = num(&v[4..]);
        (1..=12).contains(&m)
    }
}

/// `YYYYMMDD`, a real Gregorian date.
pub(crate) fn yyyymmdd(v: &[u8]) -> bool {
    if v.len() != 8 || !yyyymm(&v[..6]) || !digits(&v[6..]) {
        return false;
    }
    let d = num(&v[6..]);
    let max = days_in_month(num(&v[..4]) as u16, num(&v[4..6]) as u8);
    d >= 1 && d <= u32::from(max)
}

/// `HHMM` 00:00–23:59, `2400` (end of day), or `9999` (no time).
pub(crate) fn hhmm(v: &[u8]) -> bool {
    if v.len() != 4 || !digits(v) {
        return false;
    }
    let (h, m) = (num(&v[..2]), num(&v[2..]));
    (h <= 23 && m <= 59) || v == b"2400" || v == b"9999"
}

/// `digits[.digits]`, e.g. `11.40`.
pub(crate) fn decimal(v: &[u8]) -> bool {
    match v.iter().position(|b| *b == b'.') {
        None => digits(v),
        Some(i) => digits(&v[..i]) && digits(&v[i + 1..]),
    }
}

/// Number of characters of UTF-8 text.
pub(crate) fn chars(v: &[u8]) -> usize {
    v.iter().filter(|b| (**b & 0xC0) != 0x80).count()
}

/// Why a `YYYYMM` value is wrong, in words.
pub(crate) fn yyyymm_reason(v: &str) -> String {
    match v.parse::<YearMonth>() {
        Ok(_) => "is not a valid month".to_owned(),
        Err(e) => e.rule,
    }
}

/// Why a `YYYYMMDD` value is wrong, in words.
pub(crate) fn date_reason(v: &str) -> String {
    match check_date("date", v) {
        Ok(()) => "is not a valid date".to_owned(),
        Err(e) => e.rule,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats() {
        assert!(digits(b"0123"));
        assert!(!digits(b""));
        assert!(!digits(b"13712A4567"));
        assert!(alnum(b"13AAAA"));
        assert!(!alnum(b"13-AAA"));
        assert!(yyyymm(b"202505"));
        assert!(!yyyymm(b"202513"));
        assert!(!yyyymm(b"202500"));
        assert!(!yyyymm(b"20250"));
        assert!(yyyymmdd(b"20240229"));
        assert!(!yyyymmdd(b"20250229"));
        assert!(!yyyymmdd(b"20250230"));
        assert!(!yyyymmdd(b"20250400"));
        assert!(!yyyymmdd(b"2025041x"));
        assert!(!yyyymmdd(b"2025040/"));
        assert!(!yyyymm(b"2025/1"));
        assert!(!hhmm(b"12/0"));
        assert!(hhmm(b"0630"));
        assert!(hhmm(b"9999"));
        assert!(hhmm(b"2400"));
        assert!(!hhmm(b"2460"));
        assert!(!hhmm(b"630"));
        assert!(decimal(b"11.40"));
        assert!(decimal(b"10"));
        assert!(!decimal(b"11."));
        assert!(!decimal(b"1.1.1"));
        assert_eq!(chars("見本ab".as_bytes()), 4);
    }

    #[test]
    fn reasons_come_from_ids() {
        assert!(yyyymm_reason("202513").contains("01..12"));
        assert!(date_reason("20250230").contains("has 28 days"));
    }
}
