//! Plaintext at relay: no value in a relay's store may contain a distinctive 32-byte
//! window of any unit's files. Windows depend only on (unit kind, sender, recipient), so
//! each combination is built once. The scan slides over every stored byte; a position is
//! looked at only where the 32 bytes from it are all bytes that occur in some window (CSV
//! text; 32 such bytes in a row almost never occur in ciphertext), then through a bitmap
//! of the windows' first 8 bytes, then confirmed in a sorted set.

use std::collections::BTreeSet;

use renkei_core::store::Tree;

use super::Check;
use crate::history::History;
use crate::payload::{UnitKind, window};
use crate::sim::Sim;
use crate::workload::Workload;

/// Bits of the prefilter bitmap at least; more for many windows (about 16 bits per
/// window, so that a position passing the byte test rarely passes the bitmap by chance).
const BITMAP_BITS_MIN: u32 = 22;

fn slot(prefix: u64, bits: u32) -> usize {
    (prefix.wrapping_mul(0x9E37_79B9_7F4A_7C15) >> (64 - bits)) as usize
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
    let bits = (windows.len() * 16)
        .next_power_of_two()
        .trailing_zeros()
        .max(BITMAP_BITS_MIN);
    let mut bitmap = vec![0u64; (1usize << bits) / 64];
    let mut text = [false; 256];
    for w in &windows {
        let s = slot(prefix(w), bits);
        bitmap[s / 64] |= 1 << (s % 64);
        for b in w {
            text[usize::from(*b)] = true;
        }
    }
    // A lying member that relays (to drop) also homes offices, so its store holds its own
    // units' plaintext, and a window does not always say whose text it is (where a file
    // does not name its sender, its middle is taken): its store is not scanned. What
    // it relays for others is sealed to their destinations like at any relay, and the
    // national relay is scanned for every unit.
    let liar = sim.dropper();
    for n in (0..sim.len()).filter(|n| sim.is_relay(*n) && liar != Some(*n)) {
        let Some(store) = sim.store(n) else { continue };
        for tree in Tree::ALL {
            for v in store.values_unordered(tree) {
                let hit = |i: usize| {
                    let s = slot(prefix(&v[i..]), bits);
                    bitmap[s / 64] & (1 << (s % 64)) != 0
                        && v[i..i + 32]
                            .try_into()
                            .is_ok_and(|w: [u8; 32]| windows.contains(&w))
                };
                if let Some(i) = first_window(&v, &text, hit) {
                    c.flag(|| {
                        format!(
                            "relay n{n} holds plaintext of a unit in tree {} at offset {i}",
                            tree.name()
                        )
                    });
                }
            }
        }
    }
}

/// The first offset `i` where `hit(i)` holds, among those where the 32 bytes from `i` are
/// all `text` bytes. Every 32-byte window holds exactly one offset ≡ 31 (mod 32), so only
/// those offsets are probed; around a text byte the run of text bytes is measured and the
/// windows inside it are tried (in ciphertext most probes end at the first byte).
fn first_window(v: &[u8], text: &[bool; 256], mut hit: impl FnMut(usize) -> bool) -> Option<usize> {
    let is_text = |i: usize| text[usize::from(v[i])];
    let mut q = 31;
    while q < v.len() {
        if is_text(q) {
            let mut a = q;
            while a > q - 31 && is_text(a - 1) {
                a -= 1;
            }
            let mut b = q + 1;
            while b < v.len() && b < q + 32 && is_text(b) {
                b += 1;
            }
            if b - a >= 32
                && let Some(i) = (a..=b - 32).find(|i| hit(*i))
            {
                return Some(i);
            }
        }
        q += 32;
    }
    None
}

#[cfg(test)]
mod tests {
    use super::first_window;

    #[test]
    fn every_window_of_text_bytes_is_tried_once_and_no_other() {
        let mut text = [false; 256];
        for b in b'a'..=b'z' {
            text[usize::from(b)] = true;
        }
        // Random-looking bytes with runs of text of every length around the probes.
        let mut v: Vec<u8> = (0..2_000u32)
            .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
            .collect();
        for (start, len) in [
            (0, 32),
            (40, 31),
            (100, 70),
            (300, 33),
            (1_000, 64),
            (1_968, 32),
        ] {
            for (k, b) in v[start..start + len].iter_mut().enumerate() {
                *b = b'a' + (k % 26) as u8;
            }
        }
        let mut tried = Vec::new();
        assert_eq!(
            first_window(&v, &text, |i| {
                tried.push(i);
                false
            }),
            None
        );
        let want: Vec<usize> = (0..=v.len() - 32)
            .filter(|i| v[*i..*i + 32].iter().all(|b| text[usize::from(*b)]))
            .collect();
        tried.sort_unstable();
        assert_eq!(tried, want);
        assert!(want.contains(&0) && want.contains(&1_968) && want.contains(&138));
        // The first hit in probe order is returned.
        assert_eq!(first_window(&v, &text, |i| i == 300), Some(300));
        assert_eq!(first_window(&v[..31], &text, |_| true), None);
    }
}
