//! The production store: sled on disk, one sled tree per concern.
//!
//! Writes between commits are held in an overlay (reads see them); `commit()` applies the
//! whole overlay in one sled transaction across all trees and then flushes to disk, so a
//! group is atomic and durable when `commit()` returns. Background flushing is off: nothing
//! reaches disk except through `commit()`.

use std::collections::BTreeMap;
use std::path::Path;

use sled::Transactional;

use super::{Pair, Pairs, Store, StoreError, Tree};

/// sled-backed [`Store`].
pub struct SledStore {
    db: sled::Db,
    trees: Vec<sled::Tree>,
    overlay: BTreeMap<(Tree, Vec<u8>), Option<Vec<u8>>>,
}

fn backend(e: impl std::fmt::Display) -> StoreError {
    StoreError::Backend(e.to_string())
}

impl SledStore {
    /// Opens (creating if needed) the store in `dir`, with a page cache of `cache_bytes`.
    pub fn open(dir: &Path, cache_bytes: u64) -> Result<Self, StoreError> {
        let db = sled::Config::new()
            .path(dir)
            .cache_capacity(cache_bytes)
            .flush_every_ms(None)
            .open()
            .map_err(backend)?;
        let trees = Tree::ALL
            .iter()
            .map(|t| db.open_tree(t.name()))
            .collect::<Result<Vec<_>, _>>()
            .map_err(backend)?;
        Ok(SledStore {
            db,
            trees,
            overlay: BTreeMap::new(),
        })
    }

    fn tree(&self, t: Tree) -> &sled::Tree {
        // Tree::ALL order is the index order of `trees`.
        let i = Tree::ALL.iter().position(|x| *x == t).unwrap_or(0);
        &self.trees[i]
    }

    /// Bytes on disk as sled reports them.
    pub fn size_on_disk(&self) -> Result<u64, StoreError> {
        self.db.size_on_disk().map_err(backend)
    }
}

impl Store for SledStore {
    fn get(&self, tree: Tree, key: &[u8]) -> Result<Option<Vec<u8>>, StoreError> {
        if let Some(v) = self.overlay.get(&(tree, key.to_vec())) {
            return Ok(v.clone());
        }
        Ok(self
            .tree(tree)
            .get(key)
            .map_err(backend)?
            .map(|v| v.to_vec()))
    }

    fn put(&mut self, tree: Tree, key: &[u8], value: &[u8]) -> Result<(), StoreError> {
        self.overlay
            .insert((tree, key.to_vec()), Some(value.to_vec()));
        Ok(())
    }

    fn delete(&mut self, tree: Tree, key: &[u8]) -> Result<(), StoreError> {
        self.overlay.insert((tree, key.to_vec()), None);
        Ok(())
    }

    fn range(
        &self,
        tree: Tree,
        start: &[u8],
        end: Option<&[u8]>,
        limit: usize,
    ) -> Result<Pairs, StoreError> {
        // Merge the on-disk range with the overlay; the overlay wins, tombstones hide.
        let lo = (tree, start.to_vec());
        let over: Vec<(&Vec<u8>, &Option<Vec<u8>>)> = self
            .overlay
            .range(lo..)
            .take_while(|((t, k), _)| *t == tree && end.is_none_or(|e| k.as_slice() < e))
            .map(|((_, k), v)| (k, v))
            .collect();
        let disk: Box<dyn Iterator<Item = sled::Result<(sled::IVec, sled::IVec)>>> = match end {
            Some(e) => Box::new(self.tree(tree).range(start..e)),
            None => Box::new(self.tree(tree).range(start..)),
        };
        let mut out = Vec::new();
        let mut oi = over.into_iter().peekable();
        let mut di = disk.peekable();
        while out.len() < limit {
            let next_disk = match di.peek() {
                Some(Ok((k, _))) => Some(k.to_vec()),
                Some(Err(_)) => {
                    return Err(backend(
                        di.next()
                            .and_then(|r| r.err())
                            .map_or("sled".into(), |e| e.to_string()),
                    ));
                }
                None => None,
            };
            let next_over = oi.peek().map(|(k, _)| (*k).clone());
            match (next_disk, next_over) {
                (None, None) => break,
                (Some(d), Some(o)) if o <= d => {
                    if o == d {
                        di.next();
                    }
                    if let Some((k, Some(v))) = oi.next() {
                        out.push((k.clone(), v.clone()));
                    }
                }
                (Some(_), _) => {
                    if let Some(Ok((k, v))) = di.next() {
                        out.push((k.to_vec(), v.to_vec()));
                    }
                }
                (None, Some(_)) => {
                    if let Some((k, Some(v))) = oi.next() {
                        out.push((k.clone(), v.clone()));
                    }
                }
            }
        }
        Ok(out)
    }

    fn last(&self, tree: Tree) -> Result<Option<Pair>, StoreError> {
        // The last live key is the larger of the overlay's last live key and the disk's
        // last key not hidden by a tombstone.
        let mut disk = self.tree(tree).iter().rev();
        let disk_last = loop {
            match disk.next() {
                Some(Ok((k, v))) => {
                    if let Some(None) = self.overlay.get(&(tree, k.to_vec())) {
                        continue;
                    }
                    break Some((k.to_vec(), v.to_vec()));
                }
                Some(Err(e)) => return Err(backend(e)),
                None => break None,
            }
        };
        let over_last = self
            .overlay
            .iter()
            .rev()
            .filter(|((t, _), v)| *t == tree && v.is_some())
            .map(|((_, k), v)| (k.clone(), v.clone().unwrap_or_default()))
            .next();
        Ok(match (disk_last, over_last) {
            (Some(d), Some(o)) => Some(if o.0 >= d.0 { o } else { d }),
            (d, o) => d.or(o),
        })
    }

    fn commit(&mut self) -> Result<(), StoreError> {
        if !self.overlay.is_empty() {
            let mut batches: Vec<sled::Batch> = (0..Tree::ALL.len())
                .map(|_| sled::Batch::default())
                .collect();
            for ((t, k), v) in std::mem::take(&mut self.overlay) {
                let i = Tree::ALL.iter().position(|x| *x == t).unwrap_or(0);
                match v {
                    Some(v) => batches[i].insert(k, v),
                    None => batches[i].remove(k),
                }
            }
            let refs: Vec<&sled::Tree> = self.trees.iter().collect();
            refs.as_slice()
                .transaction(|tx| {
                    for (t, b) in tx.iter().zip(&batches) {
                        t.apply_batch(b)?;
                    }
                    Ok::<(), sled::transaction::ConflictableTransactionError<()>>(())
                })
                .map_err(|e| backend(format!("{e:?}")))?;
        }
        self.db.flush().map_err(backend)?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tmp(name: &str) -> std::path::PathBuf {
        let d = std::env::temp_dir().join(format!("renkei-sled-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        d
    }

    #[test]
    fn conformance() {
        let d = tmp("conf");
        crate::store::conformance::basic(&mut SledStore::open(&d, 8 << 20).unwrap());
        let _ = std::fs::remove_dir_all(&d);
    }

    #[test]
    fn uncommitted_writes_are_lost_on_drop_committed_survive() {
        let d = tmp("drop");
        {
            let mut s = SledStore::open(&d, 8 << 20).unwrap();
            s.put(Tree::Inbox, b"kept", b"1").unwrap();
            s.commit().unwrap();
            s.put(Tree::Inbox, b"lost", b"2").unwrap();
            s.delete(Tree::Inbox, b"kept").unwrap();
            // dropped without commit
        }
        let s = SledStore::open(&d, 8 << 20).unwrap();
        assert_eq!(
            s.get(Tree::Inbox, b"kept").unwrap().as_deref(),
            Some(&b"1"[..])
        );
        assert_eq!(s.get(Tree::Inbox, b"lost").unwrap(), None);
        drop(s);
        let _ = std::fs::remove_dir_all(&d);
    }

    #[test]
    fn overlay_merges_with_disk_in_scans() {
        let d = tmp("merge");
        let mut s = SledStore::open(&d, 8 << 20).unwrap();
        for k in [b"a", b"c", b"e"] {
            s.put(Tree::Outbox, k, b"disk").unwrap();
        }
        s.commit().unwrap();
        s.put(Tree::Outbox, b"b", b"over").unwrap();
        s.put(Tree::Outbox, b"c", b"over").unwrap();
        s.delete(Tree::Outbox, b"e").unwrap();
        let got = s.range(Tree::Outbox, b"", None, 10).unwrap();
        let keys: Vec<_> = got.iter().map(|(k, v)| (k.clone(), v.clone())).collect();
        assert_eq!(
            keys,
            vec![
                (b"a".to_vec(), b"disk".to_vec()),
                (b"b".to_vec(), b"over".to_vec()),
                (b"c".to_vec(), b"over".to_vec())
            ]
        );
        assert_eq!(s.last(Tree::Outbox).unwrap().unwrap().0, b"c");
        drop(s);
        let _ = std::fs::remove_dir_all(&d);
    }
}
