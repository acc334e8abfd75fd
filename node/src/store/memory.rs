//! In-memory store with crash semantics: [`MemoryStore::crash`] discards every write since
//! the last commit, as a power cut would.

use std::collections::BTreeMap;

use super::{Pair, Pairs, Store, StoreError, Tree};

type Key = (Tree, Vec<u8>);

/// An in-memory [`Store`] for simnet and tests.
#[derive(Debug, Default, Clone)]
pub struct MemoryStore {
    data: BTreeMap<Key, Vec<u8>>,
    /// Undo log since the last commit: key and its previous value.
    undo: Vec<(Key, Option<Vec<u8>>)>,
    commits: u64,
}

impl MemoryStore {
    /// An empty store.
    pub fn new() -> Self {
        Self::default()
    }

    /// Simulates a crash: every write since the last commit is lost.
    pub fn crash(&mut self) {
        while let Some((k, old)) = self.undo.pop() {
            match old {
                Some(v) => self.data.insert(k, v),
                None => self.data.remove(&k),
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
        self.data
            .range((tree, Vec::new())..)
            .take_while(move |((t, _), _)| *t == tree)
            .map(|(_, v)| v.as_slice())
    }

    /// Total bytes held.
    pub fn bytes(&self) -> usize {
        self.data.iter().map(|((_, k), v)| k.len() + v.len()).sum()
    }
}

impl Store for MemoryStore {
    fn get(&self, tree: Tree, key: &[u8]) -> Result<Option<Vec<u8>>, StoreError> {
        Ok(self.data.get(&(tree, key.to_vec())).cloned())
    }

    fn put(&mut self, tree: Tree, key: &[u8], value: &[u8]) -> Result<(), StoreError> {
        let k = (tree, key.to_vec());
        let old = self.data.insert(k.clone(), value.to_vec());
        self.undo.push((k, old));
        Ok(())
    }

    fn delete(&mut self, tree: Tree, key: &[u8]) -> Result<(), StoreError> {
        let k = (tree, key.to_vec());
        if let Some(old) = self.data.remove(&k) {
            self.undo.push((k, Some(old)));
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
        let lo = (tree, start.to_vec());
        Ok(self
            .data
            .range(lo..)
            .take_while(|((t, k), _)| *t == tree && end.is_none_or(|e| k.as_slice() < e))
            .take(limit)
            .map(|((_, k), v)| (k.clone(), v.clone()))
            .collect())
    }

    fn range_rev(
        &self,
        tree: Tree,
        start: &[u8],
        end: Option<&[u8]>,
        limit: usize,
    ) -> Result<Pairs, StoreError> {
        let lo = (tree, start.to_vec());
        let iter: Box<dyn DoubleEndedIterator<Item = (&Key, &Vec<u8>)>> = match end {
            Some(e) => Box::new(self.data.range(lo..(tree, e.to_vec()))),
            None => match Tree::ALL.iter().find(|t| **t > tree) {
                Some(next) => Box::new(self.data.range(lo..(*next, Vec::new()))),
                None => Box::new(self.data.range(lo..)),
            },
        };
        Ok(iter
            .rev()
            .take(limit)
            .map(|((_, k), v)| (k.clone(), v.clone()))
            .collect())
    }

    fn last(&self, tree: Tree) -> Result<Option<Pair>, StoreError> {
        let lo = (tree, Vec::new());
        let found = match Tree::ALL.iter().find(|t| **t > tree) {
            Some(next) => self.data.range(lo..(*next, Vec::new())).next_back(),
            None => self.data.range(lo..).next_back(),
        };
        Ok(found.map(|((_, k), v)| (k.clone(), v.clone())))
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
}
