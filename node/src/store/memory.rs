//! In-memory store with crash semantics: [`MemoryStore::crash`] discards every write since
//! the last commit, as a power cut would.
//!
//! One map per tree, keyed by the raw key bytes, so a lookup allocates nothing. Stores made
//! with the same [`SharedValues`] keep one copy of a value that several of them hold: in a
//! simulated federation the origin, the relay and the destination hold the very same
//! envelope bytes under the same id, and every node holds the same signed bindings and
//! receipts. Values are immutable once stored, so sharing changes nothing a store does.

use std::collections::BTreeMap;
use std::hash::{Hash, Hasher};
use std::ops::Bound;
use std::sync::{Arc, Mutex, Weak};

use super::{Pair, Pairs, Store, StoreError, Tree};

type Val = Arc<[u8]>;
type Map = BTreeMap<Box<[u8]>, Val>;
type Range<'a> = (Bound<&'a [u8]>, Bound<&'a [u8]>);

/// Trees whose values several nodes hold byte for byte: envelope bytes (origin, relays,
/// destination), signed bindings (every node) and signed receipts (every node on the path).
const SHARED_TREES: [Tree; 3] = [Tree::Envelopes, Tree::Bindings, Tree::Receipts];
/// Values shorter than this are not worth a pool entry.
const SHARE_MIN: usize = 96;

/// A pool of values shared by the stores made with it (see the module docs).
#[derive(Debug, Clone, Default)]
pub struct SharedValues(Arc<Mutex<Pool>>);

#[derive(Debug, Default)]
struct Pool {
    /// (length, hash) → the value, while some store holds it.
    map: BTreeMap<(usize, u64), Weak<[u8]>>,
    /// Pool size after the last sweep of dead entries.
    swept_len: usize,
}

impl SharedValues {
    /// An empty pool.
    pub fn new() -> Self {
        Self::default()
    }

    /// The shared copy of `value` (a new one if no store holds it).
    fn intern(&self, value: &[u8]) -> Val {
        let mut h = std::hash::DefaultHasher::new();
        value.hash(&mut h);
        let key = (value.len(), h.finish());
        // A poisoned pool only means another store panicked mid-insert; its map is intact.
        let mut pool = self.0.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(v) = pool.map.get(&key).and_then(Weak::upgrade)
            && *v == *value
        {
            return v;
        }
        let v: Val = Arc::from(value);
        pool.map.insert(key, Arc::downgrade(&v));
        if pool.map.len() > 2 * pool.swept_len + 4096 {
            pool.map.retain(|_, w| w.strong_count() > 0);
            pool.swept_len = pool.map.len();
        }
        v
    }

    /// Number of values in the pool (live or not yet swept).
    pub fn len(&self) -> usize {
        self.0.lock().map_or(0, |p| p.map.len())
    }

    /// Whether the pool is empty.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// An in-memory [`Store`] for simnet and tests.
#[derive(Debug, Clone)]
pub struct MemoryStore {
    trees: Vec<Map>,
    /// Undo log since the last commit: key and its previous value.
    undo: Vec<(Tree, Box<[u8]>, Option<Val>)>,
    commits: u64,
    shared: Option<SharedValues>,
}

impl Default for MemoryStore {
    fn default() -> Self {
        Self::new()
    }
}

impl MemoryStore {
    /// An empty store.
    pub fn new() -> Self {
        Self {
            trees: Tree::ALL.iter().map(|_| Map::new()).collect(),
            undo: Vec::new(),
            commits: 0,
            shared: None,
        }
    }

    /// An empty store that shares identical values with the other stores of `pool`.
    pub fn with_shared(pool: SharedValues) -> Self {
        Self {
            shared: Some(pool),
            ..Self::new()
        }
    }

    fn tree(&self, tree: Tree) -> &Map {
        &self.trees[tree as usize]
    }

    fn tree_mut(&mut self, tree: Tree) -> &mut Map {
        &mut self.trees[tree as usize]
    }

    /// Simulates a crash: every write since the last commit is lost.
    pub fn crash(&mut self) {
        while let Some((t, k, old)) = self.undo.pop() {
            match old {
                Some(v) => self.tree_mut(t).insert(k, v),
                None => self.tree_mut(t).remove(&k),
            };
        }
    }

    /// Number of commits so far.
    pub fn commits(&self) -> u64 {
        self.commits
    }

    /// Number of uncommitted writes.
    pub fn uncommitted(&self) -> usize {
        self.undo.len()
    }

    /// Every value of a tree (for checkers, e.g. "no plaintext at a relay").
    pub fn values(&self, tree: Tree) -> impl Iterator<Item = &[u8]> {
        self.tree(tree).values().map(|v| &v[..])
    }

    /// Every (key, value) of a tree.
    pub fn pairs(&self, tree: Tree) -> impl Iterator<Item = (&[u8], &[u8])> {
        self.tree(tree).iter().map(|(k, v)| (&k[..], &v[..]))
    }

    /// Total bytes held (keys and values; a shared value counts in every store holding it).
    pub fn bytes(&self) -> usize {
        self.trees
            .iter()
            .flat_map(|m| m.iter())
            .map(|(k, v)| k.len() + v.len())
            .sum()
    }

    fn bounds<'a>(start: &'a [u8], end: Option<&'a [u8]>) -> Option<Range<'a>> {
        match end {
            Some(e) if e <= start => None,
            Some(e) => Some((Bound::Included(start), Bound::Excluded(e))),
            None => Some((Bound::Included(start), Bound::Unbounded)),
        }
    }
}

#[allow(clippy::borrowed_box)] // the shape `BTreeMap::iter` yields
fn pair((k, v): (&Box<[u8]>, &Val)) -> Pair {
    (k.to_vec(), v.to_vec())
}

impl Store for MemoryStore {
    fn get(&self, tree: Tree, key: &[u8]) -> Result<Option<Vec<u8>>, StoreError> {
        Ok(self.tree(tree).get(key).map(|v| v.to_vec()))
    }

    fn put(&mut self, tree: Tree, key: &[u8], value: &[u8]) -> Result<(), StoreError> {
        let v = match &self.shared {
            Some(pool) if value.len() >= SHARE_MIN && SHARED_TREES.contains(&tree) => {
                pool.intern(value)
            }
            _ => Arc::from(value),
        };
        let k: Box<[u8]> = key.into();
        let old = self.tree_mut(tree).insert(k.clone(), v);
        self.undo.push((tree, k, old));
        Ok(())
    }

    fn delete(&mut self, tree: Tree, key: &[u8]) -> Result<(), StoreError> {
        if let Some((k, old)) = self.tree_mut(tree).remove_entry(key) {
            self.undo.push((tree, k, Some(old)));
        }
        Ok(())
    }

    fn range(
        &self,
        tree: Tree,
        start: &[u8],
        end: Option<&[u8]>,
        limit: usize,
    ) -> Result<Pairs, StoreError> {
        let Some(b) = Self::bounds(start, end) else {
            return Ok(Vec::new());
        };
        Ok(self
            .tree(tree)
            .range::<[u8], _>(b)
            .take(limit)
            .map(pair)
            .collect())
    }

    fn range_rev(
        &self,
        tree: Tree,
        start: &[u8],
        end: Option<&[u8]>,
        limit: usize,
    ) -> Result<Pairs, StoreError> {
        let Some(b) = Self::bounds(start, end) else {
            return Ok(Vec::new());
        };
        Ok(self
            .tree(tree)
            .range::<[u8], _>(b)
            .rev()
            .take(limit)
            .map(pair)
            .collect())
    }

    fn last(&self, tree: Tree) -> Result<Option<Pair>, StoreError> {
        Ok(self.tree(tree).iter().next_back().map(pair))
    }

    fn commit(&mut self) -> Result<(), StoreError> {
        self.undo.clear();
        self.commits += 1;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn conformance() {
        crate::store::conformance::basic(&mut MemoryStore::new());
    }

    #[test]
    fn crash_discards_uncommitted_writes_only() {
        let mut s = MemoryStore::new();
        s.put(Tree::Inbox, b"k", b"1").unwrap();
        s.commit().unwrap();
        s.put(Tree::Inbox, b"k", b"2").unwrap();
        s.put(Tree::Inbox, b"n", b"3").unwrap();
        s.delete(Tree::Inbox, b"k").unwrap();
        s.crash();
        assert_eq!(
            s.get(Tree::Inbox, b"k").unwrap().as_deref(),
            Some(&b"1"[..])
        );
        assert_eq!(s.get(Tree::Inbox, b"n").unwrap(), None);
        assert_eq!(s.uncommitted(), 0);
    }

    #[test]
    fn stores_of_one_pool_keep_one_copy_of_an_identical_value() {
        let pool = SharedValues::new();
        let (mut a, mut b) = (
            MemoryStore::with_shared(pool.clone()),
            MemoryStore::with_shared(pool.clone()),
        );
        let big = vec![7u8; 4096];
        a.put(Tree::Envelopes, b"id", &big).unwrap();
        b.put(Tree::Envelopes, b"id", &big).unwrap();
        let (va, vb) = (
            &a.tree(Tree::Envelopes)[&b"id"[..]],
            &b.tree(Tree::Envelopes)[&b"id"[..]],
        );
        assert!(Arc::ptr_eq(va, vb), "identical envelope bytes are one copy");
        // A different value of the same length is its own copy; each store reads its own.
        let mut other = big.clone();
        other[0] = 8;
        b.put(Tree::Envelopes, b"id2", &other).unwrap();
        assert_eq!(b.get(Tree::Envelopes, b"id2").unwrap(), Some(other));
        assert_eq!(a.get(Tree::Envelopes, b"id").unwrap(), Some(big.clone()));
        // Trees outside the shared set are never pooled.
        a.put(Tree::Files, b"f", &big).unwrap();
        b.put(Tree::Files, b"f", &big).unwrap();
        assert!(!Arc::ptr_eq(
            &a.tree(Tree::Files)[&b"f"[..]],
            &b.tree(Tree::Files)[&b"f"[..]]
        ));
        // Crash and delete in one store leave the other's copy intact.
        a.crash();
        assert_eq!(a.get(Tree::Envelopes, b"id").unwrap(), None);
        assert_eq!(b.get(Tree::Envelopes, b"id").unwrap(), Some(big));
    }

    #[test]
    fn the_pool_forgets_values_no_store_holds() {
        let pool = SharedValues::new();
        let mut a = MemoryStore::with_shared(pool.clone());
        for i in 0u32..10_000 {
            let mut v = vec![1u8; 200];
            v[..4].copy_from_slice(&i.to_be_bytes());
            a.put(Tree::Receipts, b"k", &v).unwrap(); // overwrites: one live value at a time
            a.commit().unwrap();
        }
        // Dead entries are swept as the pool grows: it stays near the live count, not 10,000.
        assert!(pool.len() <= 4096 + 2, "pool holds {} entries", pool.len());
        assert_eq!(
            a.get(Tree::Receipts, b"k").unwrap().map(|v| v[3]),
            Some((9_999u32 & 0xff) as u8)
        );
    }

    #[test]
    fn an_empty_or_inverted_range_is_empty() {
        let mut s = MemoryStore::new();
        s.put(Tree::Inbox, b"a", b"1").unwrap();
        s.put(Tree::Inbox, b"b", b"2").unwrap();
        assert!(
            s.range(Tree::Inbox, b"b", Some(b"a"), 10)
                .unwrap()
                .is_empty()
        );
        assert!(
            s.range_rev(Tree::Inbox, b"b", Some(b"b"), 10)
                .unwrap()
                .is_empty()
        );
        assert_eq!(s.range(Tree::Inbox, b"a", Some(b"b"), 10).unwrap().len(), 1);
        assert_eq!(s.range_rev(Tree::Inbox, b"", None, 10).unwrap()[0].0, b"b");
    }
}
