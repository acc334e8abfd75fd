//! One tree of the memory store: a B-tree, or — for the trees the core only ever reads by
//! exact key — a hash map, which answers a lookup in one or two cache misses where a
//! B-tree of millions of keys takes a miss per level, or — for the trees the core reads by
//! exact key and by ranges within one key prefix (an envelope's receipts, an office's
//! inbox or sent list) — a hash map of groups, each group the entries sharing that prefix
//! in key order. Every kind answers every range and iterates in key order (a range that
//! spans groups, or any range of a hashed tree, sorts what it returns), so every store call
//! means what it means on a B-tree; such calls are simply slow, and the core makes them
//! only when a node opens (e.g. loading its bindings) or an operator lists everything.

// The hash map is looked up, inserted into and removed from; whatever iterates it sorts
// first, so no order of its own is observable, and its hasher has fixed keys.
#![allow(clippy::disallowed_types)]

use std::collections::{BTreeMap, HashMap};
use std::ops::{Bound, RangeBounds};

use super::Tree;
use super::inline_key::Key;

/// Trees the core reads by exact key only (ranges only on opening a node, or in tests).
const HASHED: [Tree; 9] = [
    Tree::Envelopes,
    Tree::Sent,
    Tree::Dedup,
    Tree::Relayed,
    Tree::Submissions,
    Tree::Supersedes,
    Tree::Slots,
    Tree::Bindings,
    Tree::Files,
];

/// Trees read by exact key and by ranges within a prefix, with the prefix's length: an
/// envelope's receipts (envelope id ‖ seq), an office's inbox (office ‖ id) and sent list
/// (office ‖ time ‖ id).
const GROUPED: [(Tree, usize); 4] = [
    (Tree::Receipts, 16),
    (Tree::Inbox, 10),
    (Tree::SentIndex, 10),
    (Tree::InboxIndex, 10),
];

/// Entries of one prefix, in key order.
type Group<V> = Vec<(Key, V)>;

/// Fixed seed (no per-process randomness: nothing depends on it, but a run stays the same
/// run byte for byte, allocation pattern included).
type Hashed<V> = HashMap<Key, V, foldhash::fast::FixedState>;

/// Key-ordered entries, as a range or whole-tree iteration yields them.
pub(crate) type Entries<'a, V> = Box<dyn DoubleEndedIterator<Item = (&'a Key, &'a V)> + 'a>;

/// A tree's map.
#[derive(Debug)]
pub(crate) enum TreeMap<V> {
    Ordered(BTreeMap<Key, V>),
    Hashed(Hashed<V>),
    /// Groups by the first `prefix` bytes of the key (a shorter key is a group of its own).
    Grouped {
        prefix: usize,
        groups: Hashed<Group<V>>,
    },
}

impl<V> TreeMap<V> {
    /// An empty map of the kind `tree` uses.
    pub(crate) fn for_tree(tree: Tree) -> Self {
        if HASHED.contains(&tree) {
            TreeMap::Hashed(Hashed::default())
        } else if let Some(&(_, prefix)) = GROUPED.iter().find(|(t, _)| *t == tree) {
            TreeMap::Grouped {
                prefix,
                groups: Hashed::default(),
            }
        } else {
            TreeMap::Ordered(BTreeMap::new())
        }
    }

    pub(crate) fn get(&self, key: &[u8]) -> Option<&V> {
        match self {
            TreeMap::Ordered(m) => m.get(key),
            TreeMap::Hashed(m) => m.get(key),
            TreeMap::Grouped { prefix, groups } => {
                let g = groups.get(group_of(key, *prefix))?;
                find(g, key).ok().map(|i| &g[i].1)
            }
        }
    }

    pub(crate) fn insert(&mut self, key: Key, v: V) -> Option<V> {
        match self {
            TreeMap::Ordered(m) => m.insert(key, v),
            TreeMap::Hashed(m) => m.insert(key, v),
            TreeMap::Grouped { prefix, groups } => {
                let gk = group_of(key.as_slice(), *prefix);
                let g = match groups.get_mut(gk) {
                    Some(g) => g,
                    None => groups.entry(Key::from(gk)).or_default(),
                };
                match find(g, key.as_slice()) {
                    Ok(i) => Some(std::mem::replace(&mut g[i].1, v)),
                    Err(i) => {
                        // Grown by a quarter, not doubled: millions of small groups (an
                        // envelope's receipts at each node) would otherwise hold up to
                        // twice their length (2 GB more at national scale).
                        if g.len() == g.capacity() {
                            g.reserve_exact(1 + g.len() / 4);
                        }
                        g.insert(i, (key, v));
                        None
                    }
                }
            }
        }
    }

    pub(crate) fn remove_entry(&mut self, key: &[u8]) -> Option<(Key, V)> {
        match self {
            TreeMap::Ordered(m) => m.remove_entry(key),
            TreeMap::Hashed(m) => m.remove_entry(key),
            TreeMap::Grouped { prefix, groups } => {
                let gk = group_of(key, *prefix);
                let g = groups.get_mut(gk)?;
                let i = find(g, key).ok()?;
                let e = g.remove(i);
                if g.is_empty() {
                    groups.remove(gk);
                }
                Some(e)
            }
        }
    }

    /// Every entry, in no particular order (but the same every run).
    #[cfg(any(test, feature = "simnet"))]
    pub(crate) fn entries_any_order(&self) -> Box<dyn Iterator<Item = (&Key, &V)> + '_> {
        match self {
            TreeMap::Ordered(m) => Box::new(m.iter()),
            TreeMap::Hashed(m) => Box::new(m.iter()),
            TreeMap::Grouped { groups, .. } => {
                Box::new(groups.values().flat_map(|g| g.iter().map(|(k, v)| (k, v))))
            }
        }
    }

    /// The entries within `bounds`, in key order.
    pub(crate) fn range<'a>(&'a self, bounds: (Bound<&[u8]>, Bound<&[u8]>)) -> Entries<'a, V> {
        match self {
            TreeMap::Ordered(m) => Box::new(m.range::<[u8], _>(bounds)),
            TreeMap::Hashed(m) => {
                let mut v: Vec<(&Key, &V)> = m
                    .iter()
                    .filter(|(k, _)| RangeBounds::<[u8]>::contains(&bounds, k.as_slice()))
                    .collect();
                v.sort_unstable_by(|a, b| a.0.cmp(b.0));
                Box::new(v.into_iter())
            }
            TreeMap::Grouped { prefix, groups } => match one_group(bounds, *prefix) {
                Some(gk) => {
                    let Some(g) = groups.get(gk) else {
                        return Box::new(std::iter::empty());
                    };
                    let lo = match bounds.0 {
                        Bound::Included(s) => g.partition_point(|(k, _)| k.as_slice() < s),
                        Bound::Excluded(s) => g.partition_point(|(k, _)| k.as_slice() <= s),
                        Bound::Unbounded => 0,
                    };
                    let hi = match bounds.1 {
                        Bound::Included(e) => g.partition_point(|(k, _)| k.as_slice() <= e),
                        Bound::Excluded(e) => g.partition_point(|(k, _)| k.as_slice() < e),
                        Bound::Unbounded => g.len(),
                    };
                    Box::new(g[lo..hi.max(lo)].iter().map(|(k, v)| (k, v)))
                }
                None => {
                    let mut v: Vec<(&Key, &V)> = groups
                        .values()
                        .flat_map(|g| g.iter().map(|(k, v)| (k, v)))
                        .filter(|(k, _)| RangeBounds::<[u8]>::contains(&bounds, k.as_slice()))
                        .collect();
                    v.sort_unstable_by(|a, b| a.0.cmp(b.0));
                    Box::new(v.into_iter())
                }
            },
        }
    }

    /// Every entry, in key order.
    pub(crate) fn iter(&self) -> Entries<'_, V> {
        self.range((Bound::Unbounded, Bound::Unbounded))
    }
}

/// The group of `key`: its first `prefix` bytes (all of it if shorter).
fn group_of(key: &[u8], prefix: usize) -> &[u8] {
    &key[..key.len().min(prefix)]
}

/// Where `key` is (or would go) in a group.
fn find<V>(g: &Group<V>, key: &[u8]) -> Result<usize, usize> {
    g.binary_search_by(|(k, _)| k.as_slice().cmp(key))
}

/// The one group that can hold every key within `bounds`, if there is one: the start's
/// prefix, when the end does not pass the first key after that prefix. (Any key of
/// another group, or shorter than the prefix, is below the start or at or above that
/// first key after.)
fn one_group<'a>(bounds: (Bound<&'a [u8]>, Bound<&[u8]>), prefix: usize) -> Option<&'a [u8]> {
    let start = match bounds.0 {
        Bound::Included(s) | Bound::Excluded(s) => s,
        Bound::Unbounded => return None,
    };
    if start.len() < prefix {
        return None;
    }
    let gk = &start[..prefix];
    let within = match (bounds.1, super::prefix_end(gk)) {
        (_, None) => true,
        (Bound::Excluded(e), Some(after)) => e <= after.as_slice(),
        (Bound::Included(e), Some(after)) => e < after.as_slice(),
        (Bound::Unbounded, Some(_)) => false,
    };
    within.then_some(gk)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A small deterministic generator (no dependency, same keys every run).
    fn some_keys(n: u32, seed: u32) -> Vec<Vec<u8>> {
        (0..n)
            .map(|i| {
                let x = (i ^ seed).wrapping_mul(2_654_435_761);
                let mut k = vec![(x >> 28) as u8 % 3 + 0x10, (x >> 20) as u8 % 4];
                k.extend_from_slice(&x.to_be_bytes()[..(i % 4) as usize]);
                k.truncate((x % 7) as usize);
                k
            })
            .collect()
    }

    #[test]
    fn hashed_and_grouped_trees_answer_as_an_ordered_one() {
        let mut a: TreeMap<u32> = TreeMap::for_tree(Tree::Outbox);
        let mut b: TreeMap<u32> = TreeMap::for_tree(Tree::Sent);
        let mut c: TreeMap<u32> = TreeMap::Grouped {
            prefix: 2,
            groups: Hashed::default(),
        };
        assert!(matches!(a, TreeMap::Ordered(_)) && matches!(b, TreeMap::Hashed(_)));
        assert!(matches!(
            TreeMap::<u32>::for_tree(Tree::Receipts),
            TreeMap::Grouped { prefix: 16, .. }
        ));
        let keys = some_keys(600, 7);
        for (i, k) in keys.iter().enumerate() {
            let x = a.insert(Key::from(&k[..]), i as u32);
            assert_eq!(x, b.insert(Key::from(&k[..]), i as u32));
            assert_eq!(x, c.insert(Key::from(&k[..]), i as u32));
        }
        for k in keys.iter().step_by(7) {
            let x = a.remove_entry(k).map(|e| e.1);
            assert_eq!(x, b.remove_entry(k).map(|e| e.1));
            assert_eq!(x, c.remove_entry(k).map(|e| e.1));
        }
        let all = |m: &TreeMap<u32>| {
            m.iter()
                .map(|(k, v)| (k.as_slice().to_vec(), *v))
                .collect::<Vec<_>>()
        };
        assert_eq!(all(&a), all(&b));
        assert_eq!(all(&a), all(&c));
        assert!(all(&a).windows(2).all(|w| w[0].0 < w[1].0));
        // Every pair of probe keys as bounds, each way: within one group, across groups,
        // empty, open-ended.
        let probes = some_keys(40, 99);
        let mut nonempty = 0;
        for lo in &probes {
            // (BTreeMap refuses a start above the end; the store answers those itself.)
            for hi in probes.iter().filter(|hi| lo < *hi) {
                for r in [
                    (Bound::Included(&lo[..]), Bound::Excluded(&hi[..])),
                    (Bound::Excluded(&lo[..]), Bound::Included(&hi[..])),
                    (Bound::Included(&lo[..]), Bound::Unbounded),
                ] {
                    let ra: Vec<u32> = a.range(r).map(|e| *e.1).collect();
                    assert_eq!(ra, b.range(r).map(|e| *e.1).collect::<Vec<_>>());
                    assert_eq!(ra, c.range(r).map(|e| *e.1).collect::<Vec<_>>());
                    let rev: Vec<u32> = c.range(r).rev().map(|e| *e.1).collect();
                    assert_eq!(rev, ra.iter().rev().copied().collect::<Vec<_>>());
                    nonempty += usize::from(!ra.is_empty());
                }
            }
            // The whole group of a prefix, as `scan_prefix` asks.
            let g = &lo[..lo.len().min(2)];
            let end = crate::store::prefix_end(g);
            let r = (
                Bound::Included(g),
                end.as_deref().map_or(Bound::Unbounded, Bound::Excluded),
            );
            let ra: Vec<u32> = a.range(r).map(|e| *e.1).collect();
            assert_eq!(ra, c.range(r).map(|e| *e.1).collect::<Vec<_>>());
        }
        assert!(nonempty > 100, "the probes must hit entries ({nonempty})");
        for k in keys.iter().chain(&probes) {
            assert_eq!(a.get(k), b.get(k));
            assert_eq!(a.get(k), c.get(k));
        }
        let sorted = |m: &TreeMap<u32>| {
            let mut v: Vec<u32> = m.entries_any_order().map(|(_, v)| *v).collect();
            v.sort_unstable();
            v
        };
        assert_eq!(sorted(&a), sorted(&b));
        assert_eq!(sorted(&a), sorted(&c));
    }
}
