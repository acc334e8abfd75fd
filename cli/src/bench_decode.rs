//! `renkei bench decode`: the protocol's decoders of outside bytes (wire messages,
//! envelopes, rosters, proofs) on worst-case inputs at their size limits, next to a valid
//! input: cost per byte and the error each input gets.

use std::time::Instant;

use anyhow::Result;
use renkei_protocol::envelope::Envelope;
use renkei_protocol::limits::{
    BATCH_BYTES_MAX, ENVELOPE_BYTES_MAX, MESSAGE_BYTES_MAX, PROOF_BYTES_MAX, ROSTER_BYTES_MAX,
};
use renkei_protocol::proof::Proof;
use renkei_protocol::roster::SignedRoster;
use renkei_protocol::wire::Request;

/// Arguments of `renkei bench decode`.
#[derive(clap::Args, Debug, Clone)]
pub struct DecodeArgs {
    /// Timed decodes per input (the median is printed).
    #[arg(long, default_value_t = 5)]
    pub runs: usize,
}

/// A decoder under test: its name, its size limit, and a function giving `Ok` or the
/// error text.
type Decoder = (&'static str, usize, fn(&[u8]) -> Result<(), String>);

const DECODERS: [Decoder; 4] = [
    ("wire Request", MESSAGE_BYTES_MAX, |b| {
        Request::decode(b).map(drop).map_err(|e| e.to_string())
    }),
    ("Envelope", ENVELOPE_BYTES_MAX, |b| {
        Envelope::decode(b).map(drop).map_err(|e| e.to_string())
    }),
    ("SignedRoster", ROSTER_BYTES_MAX, |b| {
        SignedRoster::decode(b).map(drop).map_err(|e| e.to_string())
    }),
    ("Proof", PROOF_BYTES_MAX, |b| {
        Proof::decode(b).map(drop).map_err(|e| e.to_string())
    }),
];

/// CBOR head of major type `major` with argument `n`, in its shortest form.
fn head(major: u8, n: u64, out: &mut Vec<u8>) {
    let m = major << 5;
    match n {
        0..=23 => out.push(m | n as u8),
        24..=0xff => out.extend_from_slice(&[m | 24, n as u8]),
        0x100..=0xffff => {
            out.push(m | 25);
            out.extend_from_slice(&(n as u16).to_be_bytes());
        }
        0x1_0000..=0xffff_ffff => {
            out.push(m | 26);
            out.extend_from_slice(&(n as u32).to_be_bytes());
        }
        _ => {
            out.push(m | 27);
            out.extend_from_slice(&n.to_be_bytes());
        }
    }
}

/// The worst-case inputs of `size` bytes.
fn inputs(size: usize) -> Vec<(&'static str, Vec<u8>)> {
    let mut items = Vec::new();
    let n = size.saturating_sub(9);
    head(4, n as u64, &mut items);
    items.resize(size, 0x01);
    let nested = vec![0x81; size];
    let mut lying = Vec::new();
    head(4, u64::MAX, &mut lying);
    lying.resize(size, 0x01);
    let mut one_string = Vec::new();
    head(2, (size - 9) as u64, &mut one_string);
    one_string.resize(size, 0xAB);
    let mut map = Vec::new();
    head(5, (n / 2) as u64, &mut map);
    map.resize(size, 0x01);
    let mut random = Vec::with_capacity(size + 8);
    let mut s = 0x9E37_79B9_7F4A_7C15u64;
    while random.len() < size {
        s ^= s << 13;
        s ^= s >> 7;
        s ^= s << 17;
        random.extend_from_slice(&s.to_le_bytes());
    }
    random.truncate(size);
    vec![
        ("an item per byte", items),
        ("nested arrays", nested),
        ("lying count", lying),
        ("one byte string", one_string),
        ("a map of ints", map),
        ("random bytes", random),
    ]
}

/// A valid request of about `size` bytes: a delivery of byte strings (decoded as far as
/// the wire layer goes; the envelopes inside are decoded one by one later).
fn valid_request(size: usize) -> Vec<u8> {
    let per = size / 64 - 16;
    Request::Deliver((0..64).map(|i| vec![i as u8; per]).collect()).encode()
}

fn time(runs: usize, f: impl Fn() -> Result<(), String>) -> (f64, Result<(), String>) {
    let mut t = Vec::new();
    let mut last = Ok(());
    for _ in 0..runs.max(1) {
        let s = Instant::now();
        last = f();
        t.push(s.elapsed().as_secs_f64());
    }
    t.sort_by(f64::total_cmp);
    (t[t.len() / 2], last)
}

/// Runs the benchmark.
pub fn run(args: DecodeArgs) -> Result<i32> {
    println!(
        "renkei bench decode: each decoder on inputs at its size limit, median of {} runs",
        args.runs
    );
    println!(
        "{:<14} {:<18} {:>10} {:>10} {:>8}  outcome",
        "decoder", "input", "bytes", "µs", "ns/byte"
    );
    let valid = valid_request(BATCH_BYTES_MAX - 64 * 1024);
    let (t, r) = time(args.runs, || DECODERS[0].2(&valid));
    println!(
        "{:<14} {:<18} {:>10} {:>10.0} {:>8.2}  {}",
        "wire Request",
        "valid delivery",
        valid.len(),
        t * 1e6,
        t * 1e9 / valid.len() as f64,
        r.map_or_else(|e| e, |()| "ok".into())
    );
    for (name, max, decode) in DECODERS {
        for (what, bytes) in inputs(max) {
            let (t, r) = time(args.runs, || decode(&bytes));
            let outcome = match r {
                Ok(()) => "ok (!)".to_owned(),
                Err(e) => e.chars().take(70).collect(),
            };
            println!(
                "{name:<14} {what:<18} {:>10} {:>10.0} {:>8.2}  {outcome}",
                bytes.len(),
                t * 1e6,
                t * 1e9 / bytes.len() as f64
            );
        }
    }
    Ok(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every worst-case input is refused with an error naming what is wrong, by every
    /// decoder; the valid delivery decodes.
    #[test]
    fn every_worst_case_input_is_refused_with_a_reason() {
        assert_eq!(DECODERS[0].2(&valid_request(1 << 20)), Ok(()));
        for (name, _, decode) in DECODERS {
            for (what, bytes) in inputs(64 * 1024) {
                let e = decode(&bytes).expect_err(what);
                assert!(!e.is_empty(), "{name} / {what}");
            }
        }
        // The item count is what refuses the dense inputs, before any value is built.
        let (_, items) = &inputs(1 << 20)[0];
        let e = DECODERS[0].2(items).unwrap_err();
        assert!(
            e.contains("CBOR items: 262145, over the limit of 262144"),
            "{e}"
        );
    }
}
