//! Synthetic standard-CSV send units: the fixture units of `fixtures/valid/`, embedded, with
//! the office numbers rewritten in file names and content and the 14-digit stamp rewritten
//! in file names. Office numbers are ASCII digits and in MS932 ASCII digits are never trail
//! bytes, so replacing them byte for byte keeps every file valid Shift_JIS.

use renkei_protocol::ids::mod10_check_digit;
use serde::Serialize;

/// The send units the workload draws from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
pub enum UnitKind {
    /// 第1〜3表 + 利用者補足 (居宅介護支援 43 → service office 11).
    Plan,
    /// 第6表 + 第7表 + 利用者補足 for 202505 (43 → 11).
    Riyohyo,
    /// 実績 for 202504 (11 → 43).
    Jisseki,
    /// 介護予防 利用者基本情報 with its two sub-tables and the family-structure JPEGs named in
    /// its column 62 (46 → 63).
    YoboKihon,
    /// 介護予防サービス・支援計画書 (46 → 63).
    YoboPlan,
}

type Files = &'static [(&'static str, &'static [u8])];

macro_rules! fx {
    ($dir:literal, $name:literal) => {
        (
            $name,
            include_bytes!(concat!("../../fixtures/valid/", $dir, "/", $name)) as &'static [u8],
        )
    };
}

struct Fixture {
    files: Files,
    from: &'static str,
    to: &'static str,
    stamp: &'static str,
}

const PLAN: Fixture = Fixture {
    files: &[
        fx!(
            "d1_kyo_plan",
            "UP1KYO_4074478647_43_4071481594_11_20250425164608.CSV"
        ),
        fx!(
            "d1_kyo_plan",
            "UP2KYO_4074478647_43_4071481594_11_20250425164608.CSV"
        ),
        fx!(
            "d1_kyo_plan",
            "UP3KYO_4074478647_43_4071481594_11_20250425164608.CSV"
        ),
        fx!(
            "d1_kyo_plan",
            "UPHOSOKU_000000_4074478647_43_4071481594_11_20250425164608.CSV"
        ),
    ],
    from: "4074478647",
    to: "4071481594",
    stamp: "20250425164608",
};

const RIYOHYO: Fixture = Fixture {
    files: &[
        fx!(
            "d2_kyo_riyohyo",
            "UPHOSOKU_202505_4074478647_43_4071481594_11_20250425164608.CSV"
        ),
        fx!(
            "d2_kyo_riyohyo",
            "UPPLAN_202505_4074478647_43_4071481594_11_20250425164608.CSV"
        ),
        fx!(
            "d2_kyo_riyohyo",
            "UPSIKYU_202505_4074478647_43_4071481594_11_20250425164608.CSV"
        ),
    ],
    from: "4074478647",
    to: "4071481594",
    stamp: "20250425164608",
};

const JISSEKI: Fixture = Fixture {
    files: &[fx!(
        "d3_jisseki",
        "UPJSK_202504_4071481594_11_4074478647_43_20250428164608.CSV"
    )],
    from: "4071481594",
    to: "4074478647",
    stamp: "20250428164608",
};

const YOBO_KIHON: Fixture = Fixture {
    files: &[
        fx!(
            "d4_yobo_kihon",
            "UPKIHON_4009242217_46_4070383858_63_20250425093000.CSV"
        ),
        fx!(
            "d4_yobo_kihon",
            "UPKIHON_IMAGE_4009242217_46_4070383858_63_20250425093000_0001.jpg"
        ),
        fx!(
            "d4_yobo_kihon",
            "UPKIHON_IMAGE_4009242217_46_4070383858_63_20250425093000_0002.jpg"
        ),
        fx!(
            "d4_yobo_kihon",
            "UPKIHON_SUB1_4009242217_46_4070383858_63_20250425093000.CSV"
        ),
        fx!(
            "d4_yobo_kihon",
            "UPKIHON_SUB2_4009242217_46_4070383858_63_20250425093000.CSV"
        ),
    ],
    from: "4009242217",
    to: "4070383858",
    stamp: "20250425093000",
};

const YOBO_PLAN: Fixture = Fixture {
    files: &[
        fx!(
            "d5_yobo_plan",
            "UPYOBO_4009242217_46_4070383858_63_20250425093000.CSV"
        ),
        fx!(
            "d5_yobo_plan",
            "UPYOBO_SUB_4009242217_46_4070383858_63_20250425093000.CSV"
        ),
    ],
    from: "4009242217",
    to: "4070383858",
    stamp: "20250425093000",
};

impl UnitKind {
    fn fixture(self) -> &'static Fixture {
        match self {
            UnitKind::Plan => &PLAN,
            UnitKind::Riyohyo => &RIYOHYO,
            UnitKind::Jisseki => &JISSEKI,
            UnitKind::YoboKihon => &YOBO_KIHON,
            UnitKind::YoboPlan => &YOBO_PLAN,
        }
    }

    /// Service kind codes (sender, recipient).
    pub fn kinds(self) -> (&'static str, &'static str) {
        match self {
            UnitKind::Plan | UnitKind::Riyohyo => ("43", "11"),
            UnitKind::Jisseki => ("11", "43"),
            UnitKind::YoboKihon | UnitKind::YoboPlan => ("46", "63"),
        }
    }

    /// File names of the unit between two offices under a stamp.
    pub fn names(self, from: &str, to: &str, stamp: &str) -> Vec<String> {
        let fx = self.fixture();
        fx.files
            .iter()
            .map(|(n, _)| rename(n, fx, from, to, stamp))
            .collect()
    }

    /// The unit's files between two offices under a stamp.
    pub fn build(self, from: &str, to: &str, stamp: &str) -> Vec<(String, Vec<u8>)> {
        let fx = self.fixture();
        fx.files
            .iter()
            .map(|(n, bytes)| {
                let mut b = bytes.to_vec();
                if n.ends_with(".CSV") {
                    swap_digits(
                        &mut b,
                        fx.from.as_bytes(),
                        from.as_bytes(),
                        fx.to.as_bytes(),
                        to.as_bytes(),
                    );
                    // UPKIHON names its images (with the stamp) in column 62.
                    let (old, new) = (fx.stamp.as_bytes(), stamp.as_bytes());
                    swap_digits(&mut b, old, new, old, new);
                }
                (rename(n, fx, from, to, stamp), b)
            })
            .collect()
    }

    /// The unit's identity as the checkers see it: its file names joined.
    pub fn key(self, from: &str, to: &str, stamp: &str) -> String {
        self.names(from, to, stamp).join("|")
    }
}

fn rename(name: &str, fx: &Fixture, from: &str, to: &str, stamp: &str) -> String {
    // The names hold "_<from>_<k>_<to>_<k>_<stamp>"; replace the whole run in one go so a
    // generated number equal to a fixture number cannot be rewritten twice.
    let (fk, tk) = fixture_kinds(fx);
    let old = format!("_{}_{fk}_{}_{tk}_{}", fx.from, fx.to, fx.stamp);
    let new = format!("_{from}_{fk}_{to}_{tk}_{stamp}");
    name.replacen(&old, &new, 1)
}

fn fixture_kinds(fx: &Fixture) -> (&'static str, &'static str) {
    if std::ptr::eq(fx, &JISSEKI) {
        ("11", "43")
    } else if std::ptr::eq(fx, &YOBO_KIHON) || std::ptr::eq(fx, &YOBO_PLAN) {
        ("46", "63")
    } else {
        ("43", "11")
    }
}

/// Replaces every occurrence of `a` with `a2` and of `b` with `b2` in one left-to-right
/// pass (all four are equal-length ASCII digit strings).
fn swap_digits(data: &mut [u8], a: &[u8], a2: &[u8], b: &[u8], b2: &[u8]) {
    let n = a.len();
    let (fa, fb) = (
        memchr::memmem::Finder::new(a),
        memchr::memmem::Finder::new(b),
    );
    let mut i = 0;
    while i + n <= data.len() {
        // The next match of either string; `a` first at a tie, as a byte-by-byte scan would.
        let next_a = fa.find(&data[i..]).map(|p| (i + p, a2));
        let next_b = fb.find(&data[i..]).map(|p| (i + p, b2));
        let Some((at, with)) = (match (next_a, next_b) {
            (Some(x), Some(y)) => Some(if y.0 < x.0 { y } else { x }),
            (x, y) => x.or(y),
        }) else {
            return;
        };
        data[at..at + n].copy_from_slice(with);
        i = at + n;
    }
}

/// The `i`-th synthetic office number: prefecture, seven serial digits, modulus-10 check
/// digit over the first nine (so validation raises no check-digit warning).
pub fn office_number(i: usize) -> String {
    let body = format!("{:02}{:07}", 1 + i % 47, i % 10_000_000);
    format!("{body}{}", mod10_check_digit(&body))
}

/// A distinctive 32-byte window of a file (around the sender's office number when it
/// occurs), used to look for plaintext in relay stores.
pub fn window(bytes: &[u8], from: &str) -> Option<[u8; 32]> {
    if bytes.len() < 32 {
        return None;
    }
    // Skip occurrences inside file names (UPKIHON names its images in column 62): those
    // are header metadata every relay legitimately holds, not care-plan content.
    let pos = bytes
        .windows(from.len())
        .enumerate()
        .position(|(i, w)| w == from.as_bytes() && (i == 0 || bytes[i - 1] != b'_'))
        .unwrap_or(bytes.len() / 2);
    let start = pos.saturating_sub(8).min(bytes.len() - 32);
    <[u8; 32]>::try_from(&bytes[start..start + 32]).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn office_numbers_carry_their_check_digit() {
        for i in [0, 1, 46, 47, 123_456, 9_999_999] {
            let n = office_number(i);
            assert_eq!(n.len(), 10);
            let check = mod10_check_digit(&n[..9]);
            assert_eq!(n.as_bytes()[9] - b'0', check, "{n}");
        }
        assert_ne!(office_number(1), office_number(48));
    }

    #[test]
    fn rewrites_names_and_content() {
        let files = UnitKind::Riyohyo.build("0112345671", "0200000012", "20250430120000");
        assert_eq!(files.len(), 3);
        assert_eq!(
            files[1].0,
            "UPPLAN_202505_0112345671_43_0200000012_11_20250430120000.CSV"
        );
        for (_, b) in &files {
            let s = String::from_utf8_lossy(b);
            assert!(!s.contains("4074478647") && !s.contains("4071481594"));
            assert!(s.contains("0112345671"));
        }
        let k = UnitKind::YoboKihon.build("0112345671", "0200000012", "20250430120000");
        assert_eq!(
            k[3].0,
            "UPKIHON_SUB1_0112345671_46_0200000012_63_20250430120000.CSV"
        );
        assert_eq!(
            k[1].0,
            "UPKIHON_IMAGE_0112345671_46_0200000012_63_20250430120000_0001.jpg"
        );
        let names: Vec<&str> = k.iter().map(|(n, _)| n.as_str()).collect();
        let refs: Vec<(&str, &[u8])> = k.iter().map(|(n, b)| (n.as_str(), b.as_slice())).collect();
        let report = renkei_protocol::csv::check_send_unit(&refs);
        assert!(
            !report.has_errors(),
            "{names:?}: {:?}",
            report.all_findings().collect::<Vec<_>>()
        );
    }

    #[test]
    fn swapping_is_simultaneous() {
        let mut d = b"1111,2222,1111".to_vec();
        swap_digits(&mut d, b"1111", b"2222", b"2222", b"1111");
        assert_eq!(&d, b"2222,1111,2222");
        // Left to right, a match consumes its bytes: in "1111122221" the "1111" at 0 wins
        // over the "1111" at 1, then "1222" matches at 4.
        let mut d = b"1111122221".to_vec();
        swap_digits(&mut d, b"1111", b"3333", b"1222", b"4444");
        assert_eq!(&d, b"3333444421");
        let mut d = b"x1222".to_vec();
        swap_digits(&mut d, b"1111", b"3333", b"1222", b"4444");
        assert_eq!(&d, b"x4444");
    }
}
