//! Plaintext at relay: no value in a relay's store may contain a distinctive 32-byte
//! window of any unit's files. Windows depend only on (unit kind, sender, recipient), so
//! each combination is built once. The scan slides over every stored byte with a bitmap
//! prefilter on the first 8 bytes, then confirms in a sorted set.

use std::collections::BTreeSet;

use renkei_node::store::Tree;

use super::Check;
use crate::history::History;
use crate::payload::{UnitKind, window};
use crate::sim::Sim;
use crate::workload::Workload;

const BITMAP_BITS: u32 = 22;

fn slot(prefix: u64) -> usize {
    (prefix.wrapping_mul(0x9E37_79B9_7F4A_7C15) >> (64 - BITMAP_BITS)) as usize
}

fn prefix(b: &[u8]) -> u64 {
    let mut a = [0u8; 8];
    a.copy_from_slice(&b[..8]);
    u64::from_le_bytes(a)
}

pub(super) fn check(c: &mut Check, sim: &Sim, history: &History, workload: &Workload) {
    let combos: BTreeSet<(UnitKind, usize, usize)> = history
        .subs
        .iter()
        .map(|s| (s.kind, s.from, s.to))
        .collect();
    let mut windows: BTreeSet<[u8; 32]> = BTreeSet::new();
    for (kind, from, to) in combos {
        let (f, t) = (&workload.offices[from].number, &workload.offices[to].number);
        for (_, bytes) in kind.build(f, t, "20250101000000") {
            if let Some(w) = window(&bytes, f) {
                windows.insert(w);
            }
        }
    }
    if windows.is_empty() {
        return;
    }
    let mut bitmap = vec![0u64; (1usize << BITMAP_BITS) / 64];
    for w in &windows {
        let s = slot(prefix(w));
        bitmap[s / 64] |= 1 << (s % 64);
    }
    for n in 0..sim.len() {
        if !sim.is_relay(n) {
            continue;
        }
        let Some(store) = sim.store(n) else { continue };
        for tree in Tree::ALL {
            for v in store.values_unordered(tree) {
                if v.len() < 32 {
                    continue;
                }
                for i in 0..=v.len() - 32 {
                    let s = slot(prefix(&v[i..]));
                    if bitmap[s / 64] & (1 << (s % 64)) == 0 {
                        continue;
                    }
                    if v[i..i + 32]
                        .try_into()
                        .is_ok_and(|w: [u8; 32]| windows.contains(&w))
                    {
                        c.flag(|| {
                            format!(
                                "relay n{n} holds plaintext of a unit in tree {} at offset {i}",
                                tree.name()
                            )
                        });
                        break;
                    }
                }
            }
        }
    }
}
