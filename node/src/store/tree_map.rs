//! One tree of the memory store: a B-tree, or — for the trees the core only ever reads by
//! exact key — a hash map, which answers a lookup in one or two cache misses where a
//! B-tree of millions of keys takes a miss per level. A hashed tree still answers ranges
//! and iterates in key order (it sorts the keys it returns), so every store call means what
//! it means on a B-tree; those calls are simply slow, and the core makes them only when a
//! node opens (e.g. loading its bindings).

// The hash map is looked up, inserted into and removed from; whatever iterates it sorts
// first, so no order of its own is observable, and its hasher has fixed keys.
#![allow(clippy::disallowed_types)]

use std::collections::{BTreeMap, HashMap};
use std::hash::{BuildHasherDefault, DefaultHasher};
use std::ops::{Bound, RangeBounds};

use super::Tree;
use super::inline_key::Key;

/// Trees the core reads by exact key only (ranges only on opening a node).
const HASHED: [Tree; 8] = [
    Tree::Envelopes,
    Tree::Sent,
    Tree::Dedup,
    Tree::Relayed,
    Tree::Submissions,
    Tree::Supersedes,
    Tree::Slots,
    Tree::Bindings,
];

type Hashed<V> = HashMap<Key, V, BuildHasherDefault<DefaultHasher>>;

/// Key-ordered entries, as a range or whole-tree iteration yields them.
pub(crate) type Entries<'a, V> = Box<dyn DoubleEndedIterator<Item = (&'a Key, &'a V)> + 'a>;

/// A tree's map.
#[derive(Debug)]
pub(crate) enum TreeMap<V> {
    Ordered(BTreeMap<Key, V>),
    Hashed(Hashed<V>),
}

impl<V> TreeMap<V> {
    /// An empty map of the kind `tree` uses.
    pub(crate) fn for_tree(tree: Tree) -> Self {
        if HASHED.contains(&tree) {
            TreeMap::Hashed(Hashed::default())
        } else {
            TreeMap::Ordered(BTreeMap::new())
        }
    }

    pub(crate) fn get(&self, key: &[u8]) -> Option<&V> {
        match self {
            TreeMap::Ordered(m) => m.get(key),
            TreeMap::Hashed(m) => m.get(key),
        }
    }

    pub(crate) fn insert(&mut self, key: Key, v: V) -> Option<V> {
        match self {
            TreeMap::Ordered(m) => m.insert(key, v),
            TreeMap::Hashed(m) => m.insert(key, v),
        }
    }

    pub(crate) fn remove_entry(&mut self, key: &[u8]) -> Option<(Key, V)> {
        match self {
            TreeMap::Ordered(m) => m.remove_entry(key),
            TreeMap::Hashed(m) => m.remove_entry(key),
        }
    }

    /// Every value, in no particular order (but the same every run).
    pub(crate) fn values_any_order(&self) -> Box<dyn Iterator<Item = &V> + '_> {
        match self {
            TreeMap::Ordered(m) => Box::new(m.values()),
            TreeMap::Hashed(m) => Box::new(m.values()),
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
        }
    }

    /// Every entry, in key order.
    pub(crate) fn iter(&self) -> Entries<'_, V> {
        self.range((Bound::Unbounded, Bound::Unbounded))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_hashed_tree_answers_as_an_ordered_one() {
        let mut a: TreeMap<u32> = TreeMap::for_tree(Tree::Inbox);
        let mut b: TreeMap<u32> = TreeMap::for_tree(Tree::Sent);
        assert!(matches!(a, TreeMap::Ordered(_)) && matches!(b, TreeMap::Hashed(_)));
        let keys: Vec<Vec<u8>> = (0u32..500)
            .map(|i| i.wrapping_mul(2_654_435_761).to_be_bytes()[..(i % 4 + 1) as usize].to_vec())
            .collect();
        for (i, k) in keys.iter().enumerate() {
            assert_eq!(
                a.insert(Key::from(&k[..]), i as u32),
                b.insert(Key::from(&k[..]), i as u32)
            );
        }
        for k in keys.iter().step_by(7) {
            assert_eq!(
                a.remove_entry(k).map(|e| e.1),
                b.remove_entry(k).map(|e| e.1)
            );
        }
        assert_eq!(a.iter().count(), b.iter().count());
        let all = |m: &TreeMap<u32>| {
            m.iter()
                .map(|(k, v)| (k.as_slice().to_vec(), *v))
                .collect::<Vec<_>>()
        };
        assert_eq!(all(&a), all(&b));
        assert!(all(&a).windows(2).all(|w| w[0].0 < w[1].0));
        for (lo, hi) in [
            (&[0x10u8][..], &[0x80u8][..]),
            (&[0x80, 0], &[0xff, 0xff, 0xff]),
        ] {
            let r = (Bound::Included(lo), Bound::Excluded(hi));
            let ra: Vec<u32> = a.range(r).map(|e| *e.1).collect();
            let rb: Vec<u32> = b.range(r).map(|e| *e.1).collect();
            assert_eq!(ra, rb);
            assert!(!ra.is_empty());
            let rev: Vec<u32> = b.range(r).rev().map(|e| *e.1).collect();
            assert_eq!(rev, ra.iter().rev().copied().collect::<Vec<_>>());
        }
        for k in &keys {
            assert_eq!(a.get(k), b.get(k));
        }
        let mut va: Vec<u32> = a.values_any_order().copied().collect();
        let mut vb: Vec<u32> = b.values_any_order().copied().collect();
        va.sort_unstable();
        vb.sort_unstable();
        assert_eq!(va, vb);
    }
}
