//! Per-envelope costs: sign, verify, seal, open, encode, decode at 4 KiB, 64 KiB and 1 MiB.
//! Run: `cargo bench -p renkei-protocol --bench crypto`.
#![allow(missing_docs)]

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use renkei_protocol::envelope::{Envelope, Header, Outer, Party};
use renkei_protocol::ids::{DocKind, EnvelopeId};
use renkei_protocol::keys::OperatorKeys;
use renkei_protocol::seal;

const SIZES: [(usize, &str); 3] = [
    (4 * 1024, "4KiB"),
    (64 * 1024, "64KiB"),
    (1024 * 1024, "1MiB"),
];

fn header(origin: &OperatorKeys, dest: &OperatorKeys, file: &[u8]) -> Header {
    Header {
        outer: Outer {
            id: EnvelopeId([1; 16]),
            from: Party {
                office: "4074478647".parse().expect("office"),
                kind: "43".parse().expect("kind"),
            },
            to: Party {
                office: "4071481594".parse().expect("office"),
                kind: "11".parse().expect("kind"),
            },
            origin: origin.id(),
            destination: dest.id(),
            sealed_to: dest.seal.public(),
            doc_kind: DocKind::D2,
            stamp: "20250425164608".parse().expect("stamp"),
            supersedes: None,
            created_at_ms: 1_745_567_168_000,
        },
        subject: Some("202505".into()),
        salt: Some([7; 16]),
        files: Envelope::file_entries(&[(
            "UPPLAN_202505_4074478647_43_4071481594_11_20250425164608.CSV",
            file,
        )]),
    }
}

fn bench(c: &mut Criterion) {
    let origin = OperatorKeys::from_seeds([1; 32], [2; 32]);
    let dest = OperatorKeys::from_seeds([3; 32], [4; 32]);
    for (size, label) in SIZES {
        let file: Vec<u8> = (0..size).map(|i| (i % 251) as u8).collect();
        let h = header(&origin, &dest, &file);
        let env = Envelope::seal_and_sign(h.clone(), &[&file], &origin, [5; 32]).expect("seal");
        let bytes = env.encode();
        let mut g = c.benchmark_group("envelope");
        g.throughput(Throughput::Bytes(size as u64));
        g.bench_with_input(BenchmarkId::new("seal+sign", label), &file, |b, f| {
            b.iter(|| Envelope::seal_and_sign(h.clone(), &[f], &origin, [5; 32]).expect("seal"))
        });
        g.bench_with_input(BenchmarkId::new("verify", label), &env, |b, e| {
            b.iter(|| e.verify().expect("verify"))
        });
        g.bench_with_input(BenchmarkId::new("open", label), &env, |b, e| {
            b.iter(|| e.open(&dest).expect("open"))
        });
        g.bench_with_input(BenchmarkId::new("encode", label), &env, |b, e| {
            b.iter(|| e.encode())
        });
        g.bench_with_input(BenchmarkId::new("decode", label), &bytes, |b, x| {
            b.iter(|| Envelope::decode(x).expect("decode"))
        });
        let aad = h.encode();
        g.bench_with_input(BenchmarkId::new("seal-only", label), &file, |b, f| {
            b.iter(|| seal::seal(&dest.seal.public(), &aad, f, [6; 32]).expect("seal"))
        });
        g.bench_with_input(BenchmarkId::new("sign-only", label), &bytes, |b, x| {
            b.iter(|| {
                origin
                    .identity
                    .sign(b"renkei/envelope/v1", &x[..64.min(x.len())])
            })
        });
        g.finish();
    }
}

criterion_group! {
    name = benches;
    config = Criterion::default().sample_size(20).measurement_time(std::time::Duration::from_secs(2)).warm_up_time(std::time::Duration::from_millis(500));
    targets = bench
}
criterion_main!(benches);
