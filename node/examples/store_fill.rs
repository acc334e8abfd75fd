//! Fills a store with envelope-like records (the mix a destination node writes per
//! envelope) and prints RSS, disk use and rate every 50,000 envelopes:
//! `cargo run --release -p renkei-node --example store_fill -- [ENVELOPES] [CACHE_BYTES]`.
#![allow(clippy::unwrap_used, missing_docs)]
use renkei_node::store::{DiskStore, Store, Tree};

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn rss_kib() -> u64 {
    let s = std::fs::read_to_string("/proc/self/status").unwrap();
    s.lines()
        .find(|l| l.starts_with("VmRSS:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}

fn main() {
    let n: u64 = std::env::args()
        .nth(1)
        .and_then(|a| a.parse().ok())
        .unwrap_or(200_000);
    let cache: u64 = std::env::args()
        .nth(2)
        .and_then(|a| a.parse().ok())
        .unwrap_or(64 << 20);
    let dir = std::env::temp_dir().join(format!("renkei-store-fill-{}", std::process::id()));
    let mut s = DiskStore::open(&dir, cache).unwrap();
    let env = vec![0x5au8; 4500];
    let files = vec![0x33u8; 4100];
    let small = vec![7u8; 200];
    let t0 = std::time::Instant::now();
    for i in 0..n {
        let mut id = [0u8; 16];
        id[..8].copy_from_slice(&(i.wrapping_mul(0x9E37_79B9_7F4A_7C15)).to_be_bytes());
        id[8..].copy_from_slice(&i.to_be_bytes());
        s.put(Tree::Envelopes, &id, &env).unwrap();
        s.put(Tree::Files, &id, &files).unwrap();
        s.put(Tree::Inbox, &id, &small).unwrap();
        s.put(Tree::Dedup, &id, &small[..100]).unwrap();
        s.put(Tree::Receipts, &id, &small).unwrap();
        s.put(Tree::Audit, &i.to_be_bytes(), &small).unwrap();
        if i % 64 == 63 {
            s.commit().unwrap();
        }
        if (i + 1) % 50_000 == 0 {
            println!(
                "{:>8} envelopes  rss {:>7} KiB  disk {:>6} MiB  {:.0}/s",
                i + 1,
                rss_kib(),
                s.size_on_disk().unwrap() >> 20,
                (i + 1) as f64 / t0.elapsed().as_secs_f64()
            );
        }
    }
    s.commit().unwrap();
    drop(s);
    let _ = std::fs::remove_dir_all(&dir);
}
