//! A map the core only ever looks up by exact key: a hash map that offers no iteration, so
//! no order of its own can reach the core's decisions (determinism needs B-trees only where
//! order is observable). A national directory is 250,000 bindings at every node; a lookup
//! in a B-tree of that size costs a cache miss per level, a hash map one or two.

// Iteration is not offered (see above), and the hasher has fixed keys.
#![allow(clippy::disallowed_types)]

use std::borrow::Borrow;
use std::collections::HashMap;
use std::hash::Hash;

/// Key → value, by exact key only.
#[derive(Debug, Clone)]
pub(crate) struct LookupMap<K, V>(HashMap<K, V, foldhash::fast::FixedState>);

impl<K, V> Default for LookupMap<K, V> {
    fn default() -> Self {
        Self(HashMap::default())
    }
}

impl<K: Hash + Eq, V> LookupMap<K, V> {
    pub(crate) fn get<Q>(&self, k: &Q) -> Option<&V>
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        self.0.get(k)
    }

    pub(crate) fn contains_key<Q>(&self, k: &Q) -> bool
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        self.0.contains_key(k)
    }

    pub(crate) fn insert(&mut self, k: K, v: V) -> Option<V> {
        self.0.insert(k, v)
    }
}

#[cfg(test)]
mod tests {
    use super::LookupMap;

    #[test]
    fn answers_by_exact_key_and_replaces() {
        let mut m = LookupMap::default();
        assert_eq!(m.insert("a".to_string(), 1), None);
        assert_eq!(m.insert("b".to_string(), 2), None);
        assert_eq!(m.insert("a".to_string(), 3), Some(1));
        assert_eq!(m.get("a"), Some(&3));
        assert!(m.contains_key("b"));
        assert!(!m.contains_key("c"));
    }
}
