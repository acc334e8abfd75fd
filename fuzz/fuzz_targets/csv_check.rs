//! Fuzz target: `check_file` (and `parse_file_name`) on arbitrary (name, bytes).
//!
//! The first input byte picks a real file name (or, if ≥ 0xF0, takes the name from the
//! input up to the first NUL), the rest is the file content.

#![no_main]

use libfuzzer_sys::fuzz_target;
use renkei_protocol::csv::{check_file, check_send_unit, parse_file_name};

const NAMES: &[&str] = &[
    "UP1KYO_4074478647_43_4071481594_11_20250425164608.CSV",
    "UP2KYO_4074478647_43_4071481594_11_20250425164608.CSV",
    "UP3KYO_4074478647_43_4071481594_11_20250425164608.CSV",
    "UPHOSOKU_000000_4074478647_43_4071481594_11_20250425164608.CSV",
    "UPPLAN_202505_4074478647_43_4071481594_11_20250425164608.CSV",
    "UPSIKYU_202505_4074478647_43_4071481594_11_20250425164608.CSV",
    "UPJSK_202504_4071481594_11_4074478647_43_20250428164608.CSV",
    "UPKIHON_4009242217_46_4070383858_63_20250425093000.CSV",
    "UPKIHON_SUB1_4009242217_46_4070383858_63_20250425093000.CSV",
    "UPYOBO_4009242217_46_4070383858_63_20250425093000.CSV",
    "DLTJSK_202504_4071481594_11_4074478647_43_20250425164659.CSV",
];

fuzz_target!(|data: &[u8]| {
    let Some((&pick, rest)) = data.split_first() else {
        return;
    };
    let (name, bytes) = if pick >= 0xF0 {
        let end = rest.iter().position(|b| *b == 0).unwrap_or(rest.len());
        let name = String::from_utf8_lossy(&rest[..end]).into_owned();
        let _ = parse_file_name(&name);
        (name, &rest[end.min(rest.len())..])
    } else {
        (NAMES[usize::from(pick) % NAMES.len()].to_owned(), rest)
    };
    let report = check_file(&name, bytes);
    let _ = report.findings.len();
    let _ = check_send_unit(&[(name.as_str(), bytes)]).has_errors();
});
