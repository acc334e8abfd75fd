//! `renkei backup` / `renkei restore`: a logical copy of a node's store, through the
//! [`Store`] trait, so it restores into either kind of store (local or PostgreSQL — also the
//! way to move a node from one to the other).
//!
//! Consistency: a running node makes the copy on its core task between two batches
//! ([`crate::runtime::CoreHandle::with_store`]), so the copy is exactly the state after one
//! commit; the node answers nothing meanwhile (requests wait, they are not refused). A
//! stopped node's store is copied by the CLI directly.
//!
//! Format (`renkei-backup/1`): the magic line, then one record per pair — tree number (1
//! byte, [`Tree::ALL`] order), key length (u32 BE), key, value length (u32 BE), value — then
//! the trailer: a zero byte where a tree number would be, the number of pairs (u64 BE) and
//! the SHA-256 of every byte before the trailer. A restore checks the whole file before it
//! writes anything, and only into an empty store.

use std::io::{Read, Write};

use sha2::{Digest, Sha256};

use crate::store::{Store, StoreError, Tree};

/// The first bytes of a backup file.
pub const MAGIC: &[u8] = b"renkei-backup/1\n";
/// Pairs read from the store per scan (values can be envelopes of megabytes).
const PAGE: usize = 16;

/// A backup or restore failure.
#[derive(Debug, thiserror::Error)]
pub enum BackupError {
    /// Reading the store, or writing it.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// Reading or writing the file.
    #[error("backup file: {0}")]
    Io(#[from] std::io::Error),
    /// The file is not a complete, intact backup.
    #[error("not an intact renkei backup: {0}")]
    Damaged(String),
    /// The store to restore into already holds data.
    #[error("the store to restore into is not empty (tree {0} has data): restore into a new node")]
    NotEmpty(&'static str),
}

/// What a backup holds.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Summary {
    /// Key-value pairs.
    pub pairs: u64,
    /// Size of the file.
    pub bytes: u64,
    /// SHA-256 of the file before its trailer, hex.
    pub sha256: String,
}

/// Counts and hashes what goes through it.
struct Hashing<W> {
    inner: W,
    hash: Sha256,
    bytes: u64,
}

impl<W: Write> Hashing<W> {
    fn put(&mut self, b: &[u8]) -> std::io::Result<()> {
        self.hash.update(b);
        self.bytes += b.len() as u64;
        self.inner.write_all(b)
    }
}

fn len32(n: usize) -> Result<[u8; 4], BackupError> {
    u32::try_from(n)
        .map(u32::to_be_bytes)
        .map_err(|_| BackupError::Damaged(format!("a key or value of {n} bytes")))
}

/// Writes every pair of every tree of `store` to `out`.
pub fn dump(store: &dyn Store, out: impl Write) -> Result<Summary, BackupError> {
    let mut w = Hashing {
        inner: std::io::BufWriter::new(out),
        hash: Sha256::new(),
        bytes: 0,
    };
    w.put(MAGIC)?;
    let mut pairs = 0u64;
    for (i, tree) in Tree::ALL.iter().enumerate() {
        let id = u8::try_from(i + 1).map_err(|_| BackupError::Damaged("tree number".into()))?;
        let mut start = Vec::new();
        loop {
            let page = store.range(*tree, &start, None, PAGE)?;
            for (k, v) in &page {
                w.put(&[id])?;
                w.put(&len32(k.len())?)?;
                w.put(k)?;
                w.put(&len32(v.len())?)?;
                w.put(v)?;
                pairs += 1;
            }
            match page.last() {
                Some((k, _)) if page.len() == PAGE => {
                    // The smallest key after the last one.
                    start = k.clone();
                    start.push(0);
                }
                _ => break,
            }
        }
    }
    let digest = w.hash.clone().finalize();
    let bytes = w.bytes;
    let mut inner = w.inner;
    inner.write_all(&[0])?;
    inner.write_all(&pairs.to_be_bytes())?;
    inner.write_all(&digest)?;
    inner.flush()?;
    Ok(Summary {
        pairs,
        bytes: bytes + 1 + 8 + 32,
        sha256: hex::encode(digest),
    })
}

/// [`dump`] into a new file at `path`: written as `path.partial`, synced, then renamed, so
/// a file under the name is always complete.
pub fn dump_to_file(store: &dyn Store, path: &std::path::Path) -> Result<Summary, BackupError> {
    let mut partial = path.as_os_str().to_owned();
    partial.push(".partial");
    let partial = std::path::PathBuf::from(partial);
    let file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(&partial)?;
    let summary =
        match dump(store, &file).and_then(|s| file.sync_all().map(|()| s).map_err(Into::into)) {
            Ok(s) => s,
            Err(e) => {
                let _ = std::fs::remove_file(&partial);
                return Err(e);
            }
        };
    std::fs::rename(&partial, path)?;
    Ok(summary)
}

/// A reader that hashes and counts what it hands out.
struct Reading<R> {
    inner: R,
    hash: Sha256,
    bytes: u64,
}

impl<R: Read> Reading<R> {
    /// Exactly `n` bytes, hashed (or `Damaged`: the file ends first).
    fn take(&mut self, n: usize) -> Result<Vec<u8>, BackupError> {
        let mut b = Vec::new();
        (&mut self.inner).take(n as u64).read_to_end(&mut b)?;
        if b.len() != n {
            return Err(BackupError::Damaged(format!(
                "it ends after {} bytes, inside a record (a copy cut short?)",
                self.bytes + b.len() as u64
            )));
        }
        self.hash.update(&b);
        self.bytes += n as u64;
        Ok(b)
    }

    fn field(&mut self) -> Result<Vec<u8>, BackupError> {
        let n = self.take(4)?;
        let n = u32::from_be_bytes([n[0], n[1], n[2], n[3]]) as usize;
        if n > VALUE_MAX {
            return Err(BackupError::Damaged(format!(
                "a record of {n} bytes at byte {}",
                self.bytes
            )));
        }
        self.take(n)
    }
}

/// The largest key or value a backup may hold (an envelope is at most 8 MiB; a store record
/// holding one with its metadata stays well under this).
const VALUE_MAX: usize = 64 << 20;

/// Reads a whole backup, calling `each(tree, key, value)` per pair, and checks its trailer.
pub fn read(
    input: impl Read,
    mut each: impl FnMut(Tree, Vec<u8>, Vec<u8>) -> Result<(), BackupError>,
) -> Result<Summary, BackupError> {
    let mut r = Reading {
        inner: std::io::BufReader::new(input),
        hash: Sha256::new(),
        bytes: 0,
    };
    if r.take(MAGIC.len())? != MAGIC {
        return Err(BackupError::Damaged(
            "it does not start with renkei-backup/1".into(),
        ));
    }
    let mut pairs = 0u64;
    loop {
        // The tree number; the trailer's zero byte is not part of the hash.
        let mut id = [0u8; 1];
        r.inner.read_exact(&mut id).map_err(|_| {
            BackupError::Damaged(format!(
                "it ends after {} bytes without its trailer (a copy cut short?)",
                r.bytes
            ))
        })?;
        if id[0] == 0 {
            break;
        }
        r.hash.update(id);
        r.bytes += 1;
        let tree = *Tree::ALL
            .get(usize::from(id[0]) - 1)
            .ok_or_else(|| BackupError::Damaged(format!("unknown tree number {}", id[0])))?;
        let k = r.field()?;
        let v = r.field()?;
        each(tree, k, v)?;
        pairs += 1;
    }
    let digest = r.hash.clone().finalize();
    let mut tail = [0u8; 40];
    r.inner
        .read_exact(&mut tail)
        .map_err(|_| BackupError::Damaged("its trailer is cut short (a copy cut short?)".into()))?;
    let mut extra = [0u8; 1];
    if r.inner.read(&mut extra)? != 0 {
        return Err(BackupError::Damaged("bytes follow its trailer".into()));
    }
    let mut count = [0u8; 8];
    count.copy_from_slice(&tail[..8]);
    if u64::from_be_bytes(count) != pairs {
        return Err(BackupError::Damaged(format!(
            "its trailer counts {} pairs, the file holds {pairs}",
            u64::from_be_bytes(count)
        )));
    }
    if tail[8..] != digest[..] {
        return Err(BackupError::Damaged(
            "its SHA-256 does not match its contents (the file was changed or damaged)".into(),
        ));
    }
    Ok(Summary {
        pairs,
        bytes: r.bytes + 1 + 40,
        sha256: hex::encode(digest),
    })
}

/// Checks a backup file whole, writing nothing.
pub fn verify(path: &std::path::Path) -> Result<Summary, BackupError> {
    read(std::fs::File::open(path)?, |_, _, _| Ok(()))
}

/// Restores the backup at `path` into an empty `store`: the file is checked whole first,
/// then written, committing every `group_bytes` or so (the last commit makes it complete).
pub fn restore(
    store: &mut dyn Store,
    path: &std::path::Path,
    group_bytes: usize,
) -> Result<Summary, BackupError> {
    for tree in Tree::ALL {
        if store.last(tree)?.is_some() {
            return Err(BackupError::NotEmpty(tree.name()));
        }
    }
    let checked = verify(path)?;
    let mut pending = 0usize;
    let summary = read(std::fs::File::open(path)?, |tree, k, v| {
        pending += k.len() + v.len();
        store.put(tree, &k, &v)?;
        if pending >= group_bytes {
            store.commit()?;
            pending = 0;
        }
        Ok(())
    })?;
    store.commit()?;
    if summary != checked {
        return Err(BackupError::Damaged(
            "the file changed while it was restored".into(),
        ));
    }
    Ok(summary)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::store::MemoryStore;

    fn filled() -> MemoryStore {
        let mut s = MemoryStore::new();
        for (i, t) in Tree::ALL.iter().enumerate() {
            for j in 0..(i * 7 % 40) {
                s.put(*t, format!("k{j:03}").as_bytes(), &vec![i as u8; j * 13])
                    .unwrap();
            }
        }
        s.put(Tree::Envelopes, b"", b"empty key").unwrap();
        s.put(Tree::Envelopes, &[0xff; 40], &vec![9; 300_000])
            .unwrap();
        s.commit().unwrap();
        s
    }

    fn everything(s: &MemoryStore) -> Vec<(Tree, Vec<u8>, Vec<u8>)> {
        Tree::ALL
            .iter()
            .flat_map(|t| {
                s.range(*t, b"", None, usize::MAX)
                    .unwrap()
                    .into_iter()
                    .map(move |(k, v)| (*t, k, v))
            })
            .collect()
    }

    #[test]
    fn a_backup_restores_every_pair_of_every_tree() {
        let src = filled();
        let dir = std::env::temp_dir().join(format!("renkei-backup-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("b");
        let made = dump(&src, std::fs::File::create(&path).unwrap()).unwrap();
        assert_eq!(made.bytes, std::fs::metadata(&path).unwrap().len());
        assert_eq!(made.pairs as usize, everything(&src).len());
        let mut dst = MemoryStore::new();
        let got = restore(&mut dst, &path, 100_000).unwrap();
        assert_eq!(got, made);
        assert!(dst.commits() > 1, "committed in groups");
        assert_eq!(everything(&dst), everything(&src));
        // Only into an empty store.
        let e = restore(&mut dst, &path, 1 << 20).unwrap_err();
        assert!(matches!(e, BackupError::NotEmpty(_)), "{e}");
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn a_damaged_or_cut_backup_is_refused_before_anything_is_written() {
        let src = filled();
        let mut bytes = Vec::new();
        dump(&src, &mut bytes).unwrap();
        let dir = std::env::temp_dir().join(format!("renkei-backup-bad-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("b");
        let cases: Vec<(&str, Vec<u8>)> = vec![
            ("cut short", bytes[..bytes.len() / 2].to_vec()),
            ("no trailer", bytes[..bytes.len() - 41].to_vec()),
            ("a flipped byte", {
                let mut b = bytes.clone();
                b[bytes.len() / 3] ^= 1;
                b
            }),
            ("another file", b"PK\x03\x04 not a backup".to_vec()),
            ("bytes after it", [bytes.clone(), vec![0]].concat()),
        ];
        for (what, b) in cases {
            std::fs::write(&path, &b).unwrap();
            let mut dst = MemoryStore::new();
            let e = restore(&mut dst, &path, 1 << 20).unwrap_err();
            assert!(matches!(e, BackupError::Damaged(_)), "{what}: {e}");
            assert_eq!(dst.commits(), 0, "{what}: nothing written");
            assert!(everything(&dst).is_empty(), "{what}");
        }
        let _ = std::fs::remove_dir_all(&dir);
    }
}
