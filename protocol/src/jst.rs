//! Times as people in Japan read them: `2026-12-06 19:36:49 JST` (UTC+9, no daylight
//! saving). The wire and JSON keep milliseconds since the Unix epoch; this is only for
//! text meant for people (proof lines, the CLI's human output).

/// Milliseconds since the Unix epoch as `YYYY-MM-DD HH:MM:SS JST`.
pub fn jst(ms: u64) -> String {
    let secs = ms / 1000 + 9 * 3600;
    let (days, rem) = (secs / 86_400, secs % 86_400);
    let (y, m, d) = civil_from_days(days as i64);
    format!(
        "{y:04}-{m:02}-{d:02} {:02}:{:02}:{:02} JST",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

/// Year, month, day of a day count since 1970-01-01 (Howard Hinnant's algorithm).
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (if m <= 2 { y + 1 } else { y }, m, d)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn japan_time_of_known_instants() {
        assert_eq!(jst(0), "1970-01-01 09:00:00 JST");
        // 2026-12-06T10:36:49.999Z
        assert_eq!(jst(1_796_553_409_999), "2026-12-06 19:36:49 JST");
        // the day changes at 15:00 UTC
        assert_eq!(jst(1_796_569_200_000), "2026-12-07 00:00:00 JST");
        // 2024-02-29T23:59:59Z: a leap day, next day in Japan
        assert_eq!(jst(1_709_251_199_000), "2024-03-01 08:59:59 JST");
    }
}
