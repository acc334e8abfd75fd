//! Validation throughput on a large generated 第6表 (UPPLAN) in MS932, decoding included.
//!
//! `cargo bench -p renkei-protocol --bench csv` — results in docs/PERFORMANCE.md.

#![allow(missing_docs)] // criterion's macros generate undocumented items

use std::hint::black_box;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use renkei_protocol::csv::{Scratch, check_file, check_send_unit_in};
use renkei_protocol::ids::mod10_check_digit;

const NAME: &str = "UPPLAN_202505_4074478647_43_4071481594_11_20250425164608.CSV";
/// Users in the generated file (each with one row per service day of May 2025 it uses).
const USERS: u32 = 6_000;
const DAYS_PER_USER: u32 = 28;

/// A 第6表 of `USERS` users, about 30 MB, MS932 with CRLF, free texts quoted, some with
/// commas, doubled quotes and MS932-only characters.
fn generate() -> Vec<u8> {
    let mut text = String::new();
    for u in 0..USERS {
        let body = format!("{:05}", 13000 + u % 900);
        let insurer = format!("{body}{}", mod10_check_digit(&body));
        let insured = format!("{:010}", 1_000_000_000 + u64::from(u) * 7);
        for d in 0..DAYS_PER_USER {
            let day = 1 + d % 31;
            let (code, office, office_name, item) = match d % 3 {
                0 => ("131111", "4070383858", "ひばり訪問看護事業所", "\"\""),
                1 => ("111211", "4071481594", "ひばり訪問介護事業所", "\"\""),
                _ => (
                    "171001",
                    "4072107503",
                    "みどり福祉用具貸与事業所㈱",
                    "\"歩行器,折りたたみ \"\"軽量\"\" ①型\"",
                ),
            };
            text.push_str(&format!(
                "202407,{insurer},{insured},20250425,202505,4074478647,\"見本　ケア子\",471,,202505{day:02},,1330,1430,1,{code},,,{item},,{office},\"{office_name}\",,0,4074478647,\r\n"
            ));
        }
    }
    let (bytes, _, unmappable) = encoding_rs::SHIFT_JIS.encode(&text);
    assert!(!unmappable);
    bytes.into_owned()
}

fn bench(c: &mut Criterion) {
    let bytes = generate();
    let report = check_file(NAME, &bytes);
    assert!(
        report.findings.is_empty(),
        "generated file must be valid: {:?}",
        report.findings.first()
    );
    assert_eq!(report.users, USERS as usize);
    assert_eq!(report.rows, (USERS * DAYS_PER_USER) as usize);
    eprintln!(
        "generated UPPLAN: {} bytes, {} rows, {} users",
        bytes.len(),
        report.rows,
        report.users
    );
    let mut g = c.benchmark_group("csv");
    g.throughput(Throughput::Bytes(bytes.len() as u64));
    g.sample_size(20);
    g.bench_function("check_file_upplan_ms932", |b| {
        b.iter(|| check_file(black_box(NAME), black_box(&bytes)))
    });
    g.finish();

    // A unit the size `renkei bench relay` sends (about 4 KiB): the first records of the
    // same file, checked as a send unit with a reused scratch, as the prepare stage does.
    let mut end = 0;
    while end < 4096 {
        end += bytes[end..]
            .iter()
            .position(|&b| b == b'\n')
            .expect("a whole line")
            + 1;
    }
    let small = &bytes[..end];
    let mut scratch = Scratch::default();
    let r = check_send_unit_in(&mut scratch, &[(NAME, small)]);
    assert!(!r.has_errors(), "the 4 KiB unit must be valid");
    let mut g = c.benchmark_group("csv");
    g.throughput(Throughput::Bytes(small.len() as u64));
    g.bench_function("check_send_unit_upplan_4k", |b| {
        b.iter(|| check_send_unit_in(&mut scratch, black_box(&[(NAME, small)])))
    });
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
