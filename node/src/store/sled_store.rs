//! The production store: sled on disk, every concern in one sled tree under a one-byte
//! prefix (the concern's [`Tree`] index).
//!
//! Writes between commits are held in an overlay (reads see them); `commit()` applies the
//! whole overlay as one atomic sled batch and then flushes to disk, so a group is atomic and
//! durable when `commit()` returns. Background flushing is off: nothing reaches disk except
//! through `commit()`.
//!
//! One tree rather than one per concern: a group then commits with `apply_batch` (atomic
//! within a tree) instead of a transaction across 17 trees, which cost a fifth of a busy
//! node's CPU in profiles (docs/PERFORMANCE.md).

use std::collections::BTreeMap;
use std::path::Path;

use super::{Pair, Pairs, Store, StoreError, Tree};

/// The layout marker kept in the store, so a store written in another layout is refused
/// with a clear error instead of being misread.
const LAYOUT_KEY: &[u8] = b"renkei.layout";
const LAYOUT: &[u8] = b"prefixed-v1";

/// sled-backed [`Store`].
pub struct SledStore {
    db: sled::Db,
    /// Prefixed key → value, or a tombstone.
    overlay: BTreeMap<Vec<u8>, Option<Vec<u8>>>,
}

fn backend(e: impl std::fmt::Display) -> StoreError {
    StoreError::Backend(e.to_string())
}

fn index(t: Tree) -> u8 {
    // Tree::ALL has 18 entries, so the position always fits a byte.
    Tree::ALL.iter().position(|x| *x == t).unwrap_or(0) as u8
}

fn prefixed(t: Tree, key: &[u8]) -> Vec<u8> {
    let mut k = Vec::with_capacity(key.len() + 1);
    k.push(index(t));
    k.extend_from_slice(key);
    k
}

/// The exclusive end of a tree's range: the next tree's prefix (the layout key sorts after
/// every tree: its first byte is b'r' = 114 > 18).
fn tree_end(t: Tree) -> Vec<u8> {
    vec![index(t) + 1]
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
        match db.get(LAYOUT_KEY).map_err(backend)? {
            Some(v) if v.as_ref() == LAYOUT => {}
            Some(v) => {
                return Err(backend(format!(
                    "{}: store layout {:?} is not {:?}; this version cannot read it",
                    dir.display(),
                    String::from_utf8_lossy(&v),
                    String::from_utf8_lossy(LAYOUT)
                )));
            }
            None => {
                if db.tree_names().iter().any(|n| n.as_ref() == b"envelopes") {
                    return Err(backend(format!(
                        "{}: store written by an earlier development version (one sled tree \
                         per concern); start from an empty store directory",
                        dir.display()
                    )));
                }
                if !db.is_empty() {
                    return Err(backend(format!(
                        "{}: store has data but no layout marker",
                        dir.display()
                    )));
                }
                db.insert(LAYOUT_KEY, LAYOUT).map_err(backend)?;
                db.flush().map_err(backend)?;
            }
        }
        Ok(SledStore {
            db,
            overlay: BTreeMap::new(),
        })
    }

    /// Bytes on disk as sled reports them.
    pub fn size_on_disk(&self) -> Result<u64, StoreError> {
        self.db.size_on_disk().map_err(backend)
    }
}

impl Store for SledStore {
    fn get(&self, tree: Tree, key: &[u8]) -> Result<Option<Vec<u8>>, StoreError> {
        let k = prefixed(tree, key);
        if let Some(v) = self.overlay.get(&k) {
            return Ok(v.clone());
        }
        Ok(self.db.get(&k).map_err(backend)?.map(|v| v.to_vec()))
    }

    fn put(&mut self, tree: Tree, key: &[u8], value: &[u8]) -> Result<(), StoreError> {
        self.overlay
            .insert(prefixed(tree, key), Some(value.to_vec()));
        Ok(())
    }

    fn delete(&mut self, tree: Tree, key: &[u8]) -> Result<(), StoreError> {
        self.overlay.insert(prefixed(tree, key), None);
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
        let lo = prefixed(tree, start);
        let hi = end.map_or_else(|| tree_end(tree), |e| prefixed(tree, e));
        if lo >= hi {
            return Ok(Vec::new());
        }
        let mut oi = self.overlay.range(lo.clone()..hi.clone()).peekable();
        let mut di = self.db.range(lo..hi).peekable();
        let mut out = Vec::new();
        while out.len() < limit {
            let next_disk = match di.peek() {
                Some(Ok((k, _))) => Some(k.clone()),
                Some(Err(_)) => {
                    return Err(backend(
                        di.next()
                            .and_then(|r| r.err())
                            .map_or("sled".into(), |e| e.to_string()),
                    ));
                }
                None => None,
            };
            let take_overlay = match (&next_disk, oi.peek()) {
                (None, None) => break,
                (Some(d), Some((o, _))) => {
                    if o.as_slice() == d.as_ref() {
                        di.next();
                    }
                    o.as_slice() <= d.as_ref()
                }
                (Some(_), None) => false,
                (None, Some(_)) => true,
            };
            if take_overlay {
                if let Some((k, Some(v))) = oi.next() {
                    out.push((k[1..].to_vec(), v.clone()));
                }
            } else if let Some(Ok((k, v))) = di.next() {
                out.push((k[1..].to_vec(), v.to_vec()));
            }
        }
        Ok(out)
    }

    fn last(&self, tree: Tree) -> Result<Option<Pair>, StoreError> {
        // The last live key is the larger of the overlay's last live key and the disk's
        // last key not hidden by a tombstone.
        let lo = prefixed(tree, b"");
        let hi = tree_end(tree);
        let mut disk = self.db.range(lo.clone()..hi.clone()).rev();
        let disk_last = loop {
            match disk.next() {
                Some(Ok((k, v))) => {
                    if let Some(None) = self.overlay.get(k.as_ref()) {
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
            .range(lo..hi)
            .rev()
            .find_map(|(k, v)| v.as_ref().map(|v| (k.clone(), v.clone())));
        let last = match (disk_last, over_last) {
            (Some(d), Some(o)) => Some(if o.0 >= d.0 { o } else { d }),
            (d, o) => d.or(o),
        };
        Ok(last.map(|(k, v)| (k[1..].to_vec(), v)))
    }

    fn commit(&mut self) -> Result<(), StoreError> {
        if !self.overlay.is_empty() {
            let mut batch = sled::Batch::default();
            for (k, v) in std::mem::take(&mut self.overlay) {
                match v {
                    Some(v) => batch.insert(k, v),
                    None => batch.remove(k),
                }
            }
            self.db.apply_batch(batch).map_err(backend)?;
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

    #[test]
    fn trees_do_not_bleed_into_each_other() {
        let d = tmp("bleed");
        let mut s = SledStore::open(&d, 8 << 20).unwrap();
        s.put(Tree::Envelopes, b"\xff\xff", b"env").unwrap();
        s.put(Tree::Outbox, b"\x00", b"out").unwrap();
        s.put(Tree::Audit, b"z", b"last tree").unwrap();
        for commit in [false, true] {
            if commit {
                s.commit().unwrap();
            }
            let env = s.range(Tree::Envelopes, b"", None, 10).unwrap();
            assert_eq!(env, vec![(b"\xff\xff".to_vec(), b"env".to_vec())]);
            assert_eq!(s.last(Tree::Envelopes).unwrap().unwrap().1, b"env");
            assert_eq!(s.last(Tree::Meta).unwrap(), None);
            assert_eq!(s.range(Tree::Meta, b"", None, 10).unwrap(), vec![]);
            assert_eq!(s.last(Tree::Audit).unwrap().unwrap().0, b"z");
        }
        drop(s);
        let _ = std::fs::remove_dir_all(&d);
    }

    #[test]
    fn a_store_in_another_layout_is_refused_by_name() {
        let d = tmp("layout");
        {
            let db = sled::open(&d).unwrap();
            db.open_tree("envelopes")
                .unwrap()
                .insert(b"k", b"v")
                .unwrap();
            db.flush().unwrap();
        }
        let e = SledStore::open(&d, 8 << 20).err().unwrap().to_string();
        assert!(e.contains("earlier development version"), "{e}");
        let _ = std::fs::remove_dir_all(&d);
        {
            let db = sled::open(&d).unwrap();
            db.insert(LAYOUT_KEY, b"other").unwrap();
            db.flush().unwrap();
        }
        let e = SledStore::open(&d, 8 << 20).err().unwrap().to_string();
        assert!(e.contains("layout \"other\""), "{e}");
        let _ = std::fs::remove_dir_all(&d);
    }
}
