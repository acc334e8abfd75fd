//! The production store: a write-ahead value log, sorted runs for the trees that grow
//! with every envelope, and sled for the small ones.
//!
//! Every concern is a one-byte key prefix (the concern's [`Tree`] index). Writes between
//! commits are held in an overlay (reads see them). `commit()` writes the group to the
//! log ([`super::vlog`]): large values as blobs, then one record with every key
//! operation; one `fdatasync` makes the group durable. Only then is the group applied to
//! its indexes, small values inline and large ones as pointers into the log:
//!
//! - the trees that grow with the number of envelopes (envelopes, inbox, receipts,
//!   dedup, audit, …) go to [`super::runs`], whose memory is bounded by configuration;
//! - the trees bounded by the number of offices and peers (meta, offices, bindings,
//!   binding log) go to sled, one atomic batch per group carrying the group's sequence
//!   number, flushed in the background.
//!
//! On open, each index replays the groups it had not yet persisted from the log.
//!
//! Why not sled alone (docs/PERFORMANCE.md): sled's own flush per group and its handling
//! of 4–9 KiB values cost a third of a busy node's CPU; and sled 0.34 keeps about 70 bytes
//! of memory per key whatever its cache size, so a node holding a million envelopes passed
//! 300 MiB.

use std::collections::BTreeMap;
use std::path::Path;

use super::runs::{Entry, Merge, Runs};
use super::vlog::{self, KIND_BLOB, KIND_GROUP, Log, Pos, Ptr};
use super::{Pairs, Store, StoreError, SyncJob, Tree};

/// The layout marker kept in the store, so a store written in another layout is refused
/// with a clear error instead of being misread.
const LAYOUT_KEY: &[u8] = b"renkei.layout";
const LAYOUT: &[u8] = b"vlog-runs-v1";
/// Sequence number and log position of the last group applied to sled.
const APPLIED_KEY: &[u8] = b"renkei.applied";
/// Values at least this large go to the log; smaller ones stay inline in the index.
const BLOB_MIN: usize = 128;
/// Index value tags.
const INLINE: u8 = 0;
const POINTER: u8 = 1;
/// How often sled writes its state out in the background (the log has it already).
const SLED_FLUSH_MS: u64 = 1000;
/// Default size of the runs' memory table.
pub const MEMTABLE_BYTES_DEFAULT: usize = 8 * 1024 * 1024;

/// What [`DiskStore::compact`] did.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Compaction {
    /// Log segments deleted.
    pub segments: u32,
    /// Live values re-written to the head of the log.
    pub moved_values: u64,
    /// Their bytes.
    pub moved_bytes: u64,
    /// Bytes of the deleted segments.
    pub freed_bytes: u64,
}

/// Values moved per commit group while compacting, at most (bytes).
const MOVE_GROUP_BYTES: usize = 16 * 1024 * 1024;

/// The production [`Store`]: value log, sorted runs and sled.
pub struct DiskStore {
    db: sled::Db,
    runs: Runs,
    log: Log,
    seq: u64,
    /// Where the last group written ends (or the log's end at open).
    end: Pos,
    /// Prefixed key → value, or a tombstone.
    overlay: BTreeMap<Vec<u8>, Option<Vec<u8>>>,
    /// A group written to the log whose flush runs elsewhere ([`Store::commit_start`]):
    /// reads see it (between the overlay and the indexes), and no index takes it before
    /// [`Store::commit_finish`], so nothing of it reaches a file an index keeps before the
    /// log holds it durably.
    staged: Option<Staged>,
    /// Groups and log bytes applied since sled last took a batch (and with it the applied
    /// marker): see [`MARKER_GROUPS`].
    unmarked: (u64, u64),
}

/// A group with no operation on a sled tree gives sled no batch — before, every group
/// wrote sled's applied marker, and sled writes each batch to its own log: a disk write
/// per commit group, about 5 % of a busy node's CPU — until this many groups or
/// [`MARKER_BYTES`] of log have gone by without one. The marker then lags: opening replays
/// the groups after it into sled, whose own operations they do not have, so no more than
/// this is read again.
const MARKER_GROUPS: u64 = 1024;
/// See [`MARKER_GROUPS`].
const MARKER_BYTES: u64 = 64 * 1024 * 1024;

/// A written, not yet durable group.
struct Staged {
    seq: u64,
    end: Pos,
    /// Bytes the group took in the log.
    bytes: u64,
    /// Prefixed key → stored (tagged) index value, or a tombstone.
    ops: BTreeMap<Vec<u8>, Option<Vec<u8>>>,
}

fn backend(e: impl std::fmt::Display) -> StoreError {
    StoreError::Backend(e.to_string())
}

fn index(t: Tree) -> u8 {
    // Tree::ALL has 20 entries, so the position always fits a byte.
    Tree::ALL.iter().position(|x| *x == t).unwrap_or(0) as u8
}

/// Whether a tree lives in sled (bounded by offices and peers) rather than in the runs.
fn in_sled(t: Tree) -> bool {
    matches!(
        t,
        Tree::Meta
            | Tree::Offices
            | Tree::Bindings
            | Tree::BindingLog
            | Tree::Staff
            | Tree::Sessions
    )
}

/// Whether a prefixed key belongs to a sled tree.
fn key_in_sled(k: &[u8]) -> bool {
    k.first()
        .and_then(|b| Tree::ALL.get(*b as usize))
        .is_some_and(|t| in_sled(*t))
}

fn prefixed(t: Tree, key: &[u8]) -> Vec<u8> {
    let mut k = Vec::with_capacity(key.len() + 1);
    k.push(index(t));
    k.extend_from_slice(key);
    k
}

/// The exclusive end of a tree's range: the next tree's prefix (the marker keys sort after
/// every tree: their first byte is b'r' = 114 > 19).
fn tree_end(t: Tree) -> Vec<u8> {
    vec![index(t) + 1]
}

fn applied_value(seq: u64, end: Pos) -> Vec<u8> {
    let mut v = Vec::with_capacity(20);
    v.extend_from_slice(&seq.to_be_bytes());
    v.extend_from_slice(&end.seg.to_be_bytes());
    v.extend_from_slice(&end.off.to_be_bytes());
    v
}

fn parse_applied(v: &[u8]) -> Option<(u64, Pos)> {
    Some((
        u64::from_be_bytes(v.get(..8)?.try_into().ok()?),
        Pos {
            seg: u32::from_be_bytes(v.get(8..12)?.try_into().ok()?),
            off: u64::from_be_bytes(v.get(12..20)?.try_into().ok()?),
        },
    ))
}

/// A group record's payload: seq, then per operation `0 ‖ klen ‖ key` (delete) or
/// `1 ‖ klen ‖ key ‖ vlen ‖ index value` (put).
fn parse_group(p: &[u8]) -> Option<(u64, Vec<Entry>)> {
    fn take<'a>(p: &mut &'a [u8], n: usize) -> Option<&'a [u8]> {
        if p.len() < n {
            return None;
        }
        let (a, b) = p.split_at(n);
        *p = b;
        Some(a)
    }
    fn len(p: &mut &[u8]) -> Option<usize> {
        Some(u32::from_be_bytes(take(p, 4)?.try_into().ok()?) as usize)
    }
    let mut p = p;
    let seq = u64::from_be_bytes(take(&mut p, 8)?.try_into().ok()?);
    let mut ops = Vec::new();
    while !p.is_empty() {
        let op = take(&mut p, 1)?[0];
        let n = len(&mut p)?;
        let k = take(&mut p, n)?.to_vec();
        match op {
            0 => ops.push((k, None)),
            1 => {
                let n = len(&mut p)?;
                ops.push((k, Some(take(&mut p, n)?.to_vec())));
            }
            _ => return None,
        }
    }
    Some((seq, ops))
}

fn push_len(out: &mut Vec<u8>, n: usize) {
    out.extend_from_slice(&(n as u32).to_be_bytes());
}

/// Splits a group's operations into a sled batch (carrying the applied marker) and the
/// operations for the runs; the count is of the batch's operations on sled's trees.
fn split(ops: Vec<Entry>, seq: u64, end: Pos) -> (sled::Batch, usize, Vec<Entry>) {
    let mut batch = sled::Batch::default();
    let mut rest = Vec::with_capacity(ops.len());
    let mut in_sled = 0;
    for (k, v) in ops {
        if key_in_sled(&k) {
            in_sled += 1;
            match v {
                Some(v) => batch.insert(k, v),
                None => batch.remove(k),
            }
        } else {
            rest.push((k, v));
        }
    }
    batch.insert(APPLIED_KEY, applied_value(seq, end));
    (batch, in_sled, rest)
}

/// How long [`open_sled`] waits for the directory's lock: a store of this process that was
/// just dropped releases it when sled's background flusher stops, a moment later.
const LOCK_WAIT: std::time::Duration = std::time::Duration::from_secs(3);

/// Opens the sled index in `dir`, waiting up to [`LOCK_WAIT`] while its lock is held; a
/// lock still held after that is named as such (another process, e.g. a node already
/// running on this directory).
fn open_sled(dir: &Path, cache_bytes: u64) -> Result<sled::Db, StoreError> {
    let started = std::time::Instant::now();
    loop {
        match sled::Config::new()
            .path(dir)
            .cache_capacity(cache_bytes)
            .flush_every_ms(Some(SLED_FLUSH_MS))
            .open()
        {
            // sled reports a held lock as an `Other` I/O error with this text.
            Err(sled::Error::Io(e)) if e.to_string().starts_with("could not acquire lock") => {
                if started.elapsed() >= LOCK_WAIT {
                    return Err(backend(format!(
                        "{}: the store is locked by another process (is a node already \
                         running on this directory?): {e}",
                        dir.display()
                    )));
                }
                std::thread::sleep(std::time::Duration::from_millis(20));
            }
            other => return other.map_err(backend),
        }
    }
}

impl DiskStore {
    /// Opens (creating if needed) the store in `dir`, with a sled page cache of
    /// `cache_bytes` and the default memory table, and replays from the log whatever the
    /// indexes had not persisted.
    pub fn open(dir: &Path, cache_bytes: u64) -> Result<Self, StoreError> {
        Self::open_with(dir, cache_bytes, MEMTABLE_BYTES_DEFAULT)
    }

    /// [`DiskStore::open`] with a memory table of `memtable_bytes`.
    pub fn open_with(
        dir: &Path,
        cache_bytes: u64,
        memtable_bytes: usize,
    ) -> Result<Self, StoreError> {
        Self::open_tuned(dir, cache_bytes, memtable_bytes, vlog::SEGMENT_BYTES_MAX)
    }

    /// [`DiskStore::open_with`] with log segments closed at `segment_bytes` (tests use
    /// small ones to exercise compaction).
    pub fn open_tuned(
        dir: &Path,
        cache_bytes: u64,
        memtable_bytes: usize,
        segment_bytes: u64,
    ) -> Result<Self, StoreError> {
        let db = open_sled(dir, cache_bytes)?;
        match db.get(LAYOUT_KEY).map_err(backend)? {
            Some(v) if v.as_ref() == LAYOUT => {}
            Some(v) => {
                return Err(backend(format!(
                    "{}: store layout {:?} is not {:?}; this version cannot read it \
                     (docs/OPERATIONS.md, \"Store layout\")",
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
        let mut log = Log::open_with(&dir.join("log"), segment_bytes)?;
        let mut runs = Runs::open(&dir.join("runs"), memtable_bytes)?;
        let (sled_seq, sled_from) = match db.get(APPLIED_KEY).map_err(backend)? {
            Some(v) => parse_applied(&v).ok_or_else(|| StoreError::Corrupt {
                tree: "meta",
                detail: "applied-group marker".into(),
            })?,
            None => (0, Pos { seg: 1, off: 0 }),
        };
        let (runs_seq, runs_from) = runs.applied();
        let mut seq = sled_seq.max(runs_seq);
        let mut replayed = 0u64;
        let mut sled_replayed = false;
        log.replay(sled_from.min(runs_from), |kind, payload, end| {
            if kind != KIND_GROUP {
                return Ok(());
            }
            let (gseq, ops) = parse_group(payload).ok_or_else(|| StoreError::Corrupt {
                tree: "log",
                detail: format!("group record ending at {end:?} does not parse"),
            })?;
            if gseq <= sled_seq && gseq <= runs_seq {
                return Ok(());
            }
            let (batch, _, rest) = split(ops, gseq, end);
            if gseq > sled_seq {
                db.apply_batch(batch).map_err(backend)?;
                sled_replayed = true;
            }
            if gseq > runs_seq {
                runs.apply(rest, gseq, end)?;
            }
            seq = seq.max(gseq);
            replayed += 1;
            Ok(())
        })?;
        if sled_replayed {
            db.flush().map_err(backend)?;
        }
        if replayed > 0 {
            tracing::info!(groups = replayed, "replayed commit groups from the log");
        }
        let end = log.end_after(&[]);
        Ok(DiskStore {
            db,
            runs,
            log,
            seq,
            end,
            overlay: BTreeMap::new(),
            staged: None,
            unmarked: (0, 0),
        })
    }

    /// Bytes on disk: sled's files, the runs and the log.
    pub fn size_on_disk(&self) -> Result<u64, StoreError> {
        Ok(self.db.size_on_disk().map_err(backend)? + self.runs.size() + self.log.size())
    }

    /// A stored index value resolved to the value the core wrote.
    fn resolve(&self, v: &[u8]) -> Result<Vec<u8>, StoreError> {
        match v.split_first() {
            Some((&INLINE, rest)) => Ok(rest.to_vec()),
            Some((&POINTER, rest)) => {
                let ptr = Ptr::decode(rest).ok_or_else(|| StoreError::Corrupt {
                    tree: "index",
                    detail: "bad log pointer".into(),
                })?;
                self.log.read(ptr)
            }
            _ => Err(StoreError::Corrupt {
                tree: "index",
                detail: "untagged value".into(),
            }),
        }
    }

    /// Up to `limit` live pairs of `tree` in `[lo, hi)`: the overlay over the tree's index.
    fn scan(
        &self,
        tree: Tree,
        start: &[u8],
        end: Option<&[u8]>,
        limit: usize,
        rev: bool,
    ) -> Result<Pairs, StoreError> {
        let lo = prefixed(tree, start);
        let hi = end.map_or_else(|| tree_end(tree), |e| prefixed(tree, e));
        if lo >= hi || limit == 0 {
            return Ok(Vec::new());
        }
        // Overlay values are the core's own and index values are tagged: give overlay
        // values the inline tag so every merged value resolves the same way.
        let over = self.overlay.range(lo.clone()..hi.clone()).map(|(k, v)| {
            let tagged = v.as_ref().map(|v| {
                let mut t = Vec::with_capacity(v.len() + 1);
                t.push(INLINE);
                t.extend_from_slice(v);
                t
            });
            Ok((k.clone(), tagged))
        });
        let mut sources: Vec<Box<dyn Iterator<Item = Result<Entry, StoreError>> + '_>> = Vec::new();
        if rev {
            sources.push(Box::new(over.rev()));
        } else {
            sources.push(Box::new(over));
        }
        if let Some(g) = &self.staged {
            let r = g
                .ops
                .range(lo.clone()..hi.clone())
                .map(|(k, v)| Ok((k.clone(), v.clone())));
            if rev {
                sources.push(Box::new(r.rev()));
            } else {
                sources.push(Box::new(r));
            }
        }
        if in_sled(tree) {
            let r = self.db.range(lo..hi);
            let r = r.map(|e| {
                e.map(|(k, v)| (k.to_vec(), Some(v.to_vec())))
                    .map_err(backend)
            });
            if rev {
                sources.push(Box::new(r.rev()));
            } else {
                sources.push(Box::new(r));
            }
        } else {
            sources.extend(self.runs.sources(&lo, &hi, rev));
        }
        let mut out = Vec::new();
        for e in Merge::new(sources, rev) {
            let (k, v) = e?;
            if let Some(v) = v {
                out.push((k[1..].to_vec(), self.resolve(&v)?));
                if out.len() >= limit {
                    break;
                }
            }
        }
        Ok(out)
    }
}

impl Store for DiskStore {
    fn get(&self, tree: Tree, key: &[u8]) -> Result<Option<Vec<u8>>, StoreError> {
        let k = prefixed(tree, key);
        if let Some(v) = self.overlay.get(&k) {
            return Ok(v.clone());
        }
        let staged = self.staged.as_ref().and_then(|g| g.ops.get(&k));
        let stored = if let Some(v) = staged {
            v.clone()
        } else if in_sled(tree) {
            self.db.get(&k).map_err(backend)?.map(|v| v.to_vec())
        } else {
            self.runs.get(&k)?.flatten()
        };
        stored.map(|v| self.resolve(&v)).transpose()
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
        self.scan(tree, start, end, limit, false)
    }

    fn range_rev(
        &self,
        tree: Tree,
        start: &[u8],
        end: Option<&[u8]>,
        limit: usize,
    ) -> Result<Pairs, StoreError> {
        self.scan(tree, start, end, limit, true)
    }

    fn last(&self, tree: Tree) -> Result<Option<super::Pair>, StoreError> {
        Ok(self.scan(tree, b"", None, 1, true)?.pop())
    }

    fn commit(&mut self) -> Result<(), StoreError> {
        if let Some(sync) = self.commit_start()? {
            sync()?;
        }
        self.commit_finish()
    }

    fn commit_start(&mut self) -> Result<Option<SyncJob>, StoreError> {
        if self.staged.is_some() {
            return Err(StoreError::Backend(
                "a commit started before the previous one finished".into(),
            ));
        }
        if self.overlay.is_empty() {
            return Ok(None);
        }
        self.log.roll_if_full()?;
        let seq = self.seq + 1;
        let mut buf = Vec::new();
        let mut group = Vec::with_capacity(4096);
        group.extend_from_slice(&seq.to_be_bytes());
        let mut ops = BTreeMap::new();
        for (k, v) in std::mem::take(&mut self.overlay) {
            match v {
                None => {
                    group.push(0);
                    push_len(&mut group, k.len());
                    group.extend_from_slice(&k);
                    ops.insert(k, None);
                }
                Some(v) => {
                    let mut stored = Vec::with_capacity(1 + v.len().min(vlog::PTR_BYTES));
                    if v.len() >= BLOB_MIN {
                        stored.push(POINTER);
                        stored
                            .extend_from_slice(&self.log.append(&mut buf, KIND_BLOB, &v).encode());
                    } else {
                        stored.push(INLINE);
                        stored.extend_from_slice(&v);
                    }
                    group.push(1);
                    push_len(&mut group, k.len());
                    group.extend_from_slice(&k);
                    push_len(&mut group, stored.len());
                    group.extend_from_slice(&stored);
                    ops.insert(k, Some(stored));
                }
            }
        }
        self.log.append(&mut buf, KIND_GROUP, &group);
        let end = self.log.end_after(&buf);
        let sync = self.log.write_unsynced(&buf)?;
        // The group counts as written from here (the next one follows it in the log);
        // the durability point is the flush, before `commit_finish`.
        self.seq = seq;
        self.end = end;
        let bytes = buf.len() as u64;
        self.staged = Some(Staged {
            seq,
            end,
            bytes,
            ops,
        });
        Ok(Some(Box::new(sync)))
    }

    fn commit_finish(&mut self) -> Result<(), StoreError> {
        let Some(Staged {
            seq,
            end,
            bytes,
            ops,
        }) = self.staged.take()
        else {
            return Ok(());
        };
        // Durable now: the indexes take the group.
        let (batch, in_sled, rest) = split(ops.into_iter().collect(), seq, end);
        let (groups, since) = (self.unmarked.0 + 1, self.unmarked.1 + bytes);
        if in_sled > 0 || groups >= MARKER_GROUPS || since >= MARKER_BYTES {
            self.db.apply_batch(batch).map_err(backend)?;
            self.unmarked = (0, 0);
        } else {
            self.unmarked = (groups, since);
        }
        self.runs.apply(rest, seq, end)
    }
}

impl DiskStore {
    /// Gives back the space of old log segments. While the oldest segment (never the one
    /// being written) holds at most `max_live_percent` % of its bytes in values an index
    /// still points to: re-writes those values through ordinary commit groups (so a crash
    /// at any point leaves either the old or the new pointer, both readable), makes both
    /// indexes durable past the segment (so no replay starts in it), checks nothing points
    /// into it any more, and deletes it. Only segments closed before the call are
    /// considered. Call with nothing uncommitted (a stopped node: `renkei compact`).
    pub fn compact(&mut self, max_live_percent: u64) -> Result<Compaction, StoreError> {
        if !self.overlay.is_empty() {
            return Err(StoreError::Backend(
                "compaction with uncommitted writes; commit first".into(),
            ));
        }
        let mut done = Compaction::default();
        // Only segments closed before this call: the values it moves fill new segments,
        // which it must not chase.
        let stop = self.log.cur_seg();
        loop {
            let seg = self.log.first_seg();
            if seg >= stop || seg >= self.log.cur_seg() {
                break;
            }
            let seg_bytes = self.log.seg_len(seg);
            let live = self.pointers_into(seg)?;
            let live_bytes: u64 = live.iter().map(|(_, p)| u64::from(p.len)).sum();
            if live_bytes * 100 > seg_bytes * max_live_percent {
                break;
            }
            let mut pending = 0usize;
            for (k, p) in &live {
                let v = self.log.read(*p)?;
                pending += v.len();
                self.overlay.insert(k.clone(), Some(v));
                if pending >= MOVE_GROUP_BYTES {
                    self.commit()?;
                    pending = 0;
                }
            }
            self.commit()?;
            self.runs.persist(self.seq, self.end)?;
            // Every group is applied: sled's marker may say so (it lags otherwise).
            self.db
                .insert(APPLIED_KEY, applied_value(self.seq, self.end))
                .map_err(backend)?;
            self.unmarked = (0, 0);
            self.db.flush().map_err(backend)?;
            let sled_pos = self
                .db
                .get(APPLIED_KEY)
                .map_err(backend)?
                .and_then(|v| parse_applied(&v))
                .map(|(_, p)| p);
            let runs_pos = self.runs.applied().1;
            if runs_pos.seg <= seg || sled_pos.is_none_or(|p| p.seg <= seg) {
                // Replay could still start in the segment (no group written since the
                // last roll): keep it for now.
                break;
            }
            if !self.pointers_into(seg)?.is_empty() {
                return Err(StoreError::Corrupt {
                    tree: "log",
                    detail: format!("compaction left values pointing into segment {seg}"),
                });
            }
            self.log.drop_first()?;
            tracing::info!(
                segment = seg,
                moved = live.len(),
                moved_bytes = live_bytes,
                freed = seg_bytes,
                "log segment compacted"
            );
            done.segments += 1;
            done.moved_values += live.len() as u64;
            done.moved_bytes += live_bytes;
            done.freed_bytes += seg_bytes;
        }
        Ok(done)
    }

    /// Every live index entry (prefixed key) whose value lies in log segment `seg`.
    fn pointers_into(&self, seg: u32) -> Result<Vec<(Vec<u8>, Ptr)>, StoreError> {
        let mut out = Vec::new();
        let mut check = |k: &[u8], v: &[u8]| {
            if let Some((&POINTER, rest)) = v.split_first()
                && let Some(p) = Ptr::decode(rest)
                && p.seg == seg
            {
                out.push((k.to_vec(), p));
            }
        };
        for e in self.db.iter() {
            let (k, v) = e.map_err(backend)?;
            if key_in_sled(&k) {
                check(&k, &v);
            }
        }
        for e in Merge::new(self.runs.sources(&[], &[u8::MAX], false), false) {
            if let (k, Some(v)) = e? {
                check(&k, &v);
            }
        }
        Ok(out)
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
        let (n, last) = (std::cell::Cell::new(0), std::cell::RefCell::new(None));
        let open = || {
            n.set(n.get() + 1);
            let d = tmp(&format!("conf{}", n.get()));
            *last.borrow_mut() = Some(d.clone());
            DiskStore::open(&d, 8 << 20).unwrap()
        };
        let reopen = |s: DiskStore| {
            drop(s);
            DiskStore::open(last.borrow().as_ref().unwrap(), 8 << 20).unwrap()
        };
        crate::store::conformance::all(open, reopen);
        for i in 1..=n.get() {
            let _ = std::fs::remove_dir_all(tmp(&format!("conf{i}")));
        }
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
        let e = DiskStore::open(&d, 8 << 20).err().unwrap().to_string();
        assert!(e.contains("earlier development version"), "{e}");
        let _ = std::fs::remove_dir_all(&d);
        {
            let db = sled::open(&d).unwrap();
            db.insert(LAYOUT_KEY, b"other").unwrap();
            db.flush().unwrap();
        }
        let e = DiskStore::open(&d, 8 << 20).err().unwrap().to_string();
        assert!(e.contains("layout \"other\""), "{e}");
        let _ = std::fs::remove_dir_all(&d);
    }

    #[test]
    fn groups_the_indexes_lost_are_replayed_from_the_log() {
        let d = tmp("replay");
        let big = vec![9u8; 5000];
        {
            let mut s = DiskStore::open(&d, 8 << 20).unwrap();
            s.put(Tree::Envelopes, b"e1", &big).unwrap();
            s.put(Tree::Offices, b"o1", b"small").unwrap();
            s.commit().unwrap();
            s.put(Tree::Envelopes, b"e2", &big).unwrap();
            s.delete(Tree::Offices, b"o1").unwrap();
            s.commit().unwrap();
        }
        // sled loses everything after the first group (as if its background flush had not
        // run before a crash): roll its state back by hand. The runs' memory table was
        // never written out, so every group is replayed into it.
        {
            let db = sled::open(&d).unwrap();
            let applied = parse_applied(&db.get(APPLIED_KEY).unwrap().unwrap()).unwrap();
            assert_eq!(applied.0, 2);
            db.insert(prefixed(Tree::Offices, b"o1"), &[INLINE, b'x'][..])
                .unwrap();
            db.remove(APPLIED_KEY).unwrap();
            db.flush().unwrap();
        }
        let s = DiskStore::open(&d, 8 << 20).unwrap();
        assert_eq!(s.get(Tree::Envelopes, b"e1").unwrap().unwrap(), big);
        assert_eq!(s.get(Tree::Envelopes, b"e2").unwrap().unwrap(), big);
        assert_eq!(s.get(Tree::Offices, b"o1").unwrap(), None);
        assert_eq!(s.seq, 2);
        drop(s);
        let _ = std::fs::remove_dir_all(&d);
    }

    /// A group that writes no sled tree gives sled nothing to do: its applied marker stays
    /// at the last group that did, until `MARKER_GROUPS` such groups have gone by. A store
    /// whose marker lags opens whole (the groups after the marker are read again).
    #[test]
    fn groups_without_sled_operations_leave_sled_alone_and_reopen_whole() {
        let d = tmp("marker");
        let marker = |s: &DiskStore| {
            parse_applied(&s.db.get(APPLIED_KEY).unwrap().unwrap())
                .unwrap()
                .0
        };
        let mut seq = 0u64;
        {
            let mut s = DiskStore::open(&d, 8 << 20).unwrap();
            let mut commit = |s: &mut DiskStore, sled_too: bool| {
                seq += 1;
                s.put(Tree::Envelopes, &seq.to_be_bytes(), &[seq as u8; 300])
                    .unwrap();
                if sled_too {
                    s.put(Tree::Offices, &seq.to_be_bytes(), b"office").unwrap();
                }
                s.commit().unwrap();
                seq
            };
            let first = commit(&mut s, true);
            assert_eq!(marker(&s), first);
            for _ in 0..10 {
                commit(&mut s, false);
            }
            assert_eq!(marker(&s), first, "ten groups without sled operations");
            let second = commit(&mut s, true);
            assert_eq!(marker(&s), second);
            for _ in 0..MARKER_GROUPS - 1 {
                commit(&mut s, false);
            }
            assert_eq!(marker(&s), second);
            let forced = commit(&mut s, false);
            assert_eq!(marker(&s), forced, "the marker after MARKER_GROUPS groups");
            for _ in 0..5 {
                commit(&mut s, false);
            }
            assert_eq!(marker(&s), forced);
            s.db.flush().unwrap();
        }
        let s = DiskStore::open(&d, 8 << 20).unwrap();
        assert_eq!(s.seq, seq);
        for i in 1..=seq {
            assert_eq!(
                s.get(Tree::Envelopes, &i.to_be_bytes()).unwrap(),
                Some(vec![i as u8; 300]),
                "envelope {i}"
            );
        }
        let offices: Vec<_> = s.range(Tree::Offices, b"", None, 10).unwrap();
        assert_eq!(offices.len(), 2);
        drop(s);
        let _ = std::fs::remove_dir_all(&d);
    }

    /// A small deterministic generator (tests only; no extra dependency).
    struct Lcg(u64);
    impl Lcg {
        fn next(&mut self) -> u64 {
            self.0 = self
                .0
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            self.0 >> 33
        }
    }

    fn copy_dir(from: &std::path::Path, to: &std::path::Path) {
        std::fs::create_dir_all(to).unwrap();
        for e in std::fs::read_dir(from).unwrap() {
            let e = e.unwrap();
            let target = to.join(e.file_name());
            if e.file_type().unwrap().is_dir() {
                copy_dir(&e.path(), &target);
            } else {
                std::fs::copy(e.path(), &target).unwrap();
            }
        }
    }

    /// A pipelined commit whose flush never happened: at the moment a group is written and
    /// its flush not yet run, the machine loses power and the kernel's unsynced pages with
    /// it. Each round, the store directory is copied right after `commit_start` with the
    /// log cut back to where it stood before the group (what the disk holds if the write
    /// never reached it); every copy must open to exactly the state before that group —
    /// no index (a run written out, sled) holds anything of it — while the live store goes
    /// on. The memory table is tiny, so runs are written and merged throughout.
    #[test]
    fn a_group_whose_flush_never_ran_leaves_no_trace() {
        let d = tmp("lostflush");
        let trees = [Tree::Inbox, Tree::Envelopes, Tree::Offices, Tree::Outbox];
        let mut model: BTreeMap<(u8, Vec<u8>), Vec<u8>> = BTreeMap::new();
        let mut snapshots = Vec::new();
        let mut rng = Lcg(11);
        let mut s = DiskStore::open_with(&d, 8 << 20, 2048).unwrap();
        let key = |rng: &mut Lcg| format!("k{:03}", rng.next() % 200).into_bytes();
        for round in 0..60u32 {
            let mut next = model.clone();
            for _ in 0..(1 + rng.next() % 12) {
                let ti = (rng.next() % trees.len() as u64) as usize;
                let k = key(&mut rng);
                if rng.next().is_multiple_of(4) {
                    s.delete(trees[ti], &k).unwrap();
                    next.remove(&(ti as u8, k));
                } else {
                    let len = if rng.next().is_multiple_of(3) {
                        300
                    } else {
                        10
                    };
                    let v = vec![(round % 251) as u8; len];
                    s.put(trees[ti], &k, &v).unwrap();
                    next.insert((ti as u8, k), v);
                }
            }
            let seg = s.log.cur_seg();
            let before = s.log.seg_len(seg);
            let sync = s
                .commit_start()
                .unwrap()
                .expect("a group with writes has a flush");
            if round % 6 == 5 {
                let snap = tmp(&format!("lostflush-{round}"));
                copy_dir(&d, &snap);
                let log_dir = snap.join("log");
                let mut segs: Vec<_> = std::fs::read_dir(&log_dir)
                    .unwrap()
                    .map(|e| e.unwrap().path())
                    .collect();
                segs.sort();
                let newest = segs.pop().unwrap();
                let f = std::fs::OpenOptions::new()
                    .write(true)
                    .open(&newest)
                    .unwrap();
                assert!(
                    f.metadata().unwrap().len() > before,
                    "the group was written"
                );
                f.set_len(before).unwrap();
                snapshots.push((round, snap, model.clone()));
            }
            sync().unwrap();
            s.commit_finish().unwrap();
            model = next;
        }
        drop(s);
        for (round, snap, want) in snapshots {
            let s = DiskStore::open_with(&snap, 8 << 20, 2048).unwrap();
            for (ti, t) in trees.iter().enumerate() {
                let got = s.range(*t, b"", None, 10_000).unwrap();
                let expect: Vec<_> = want
                    .range((ti as u8, vec![])..(ti as u8 + 1, vec![]))
                    .map(|((_, k), v)| (k.clone(), v.clone()))
                    .collect();
                assert_eq!(
                    got, expect,
                    "round {round}, {t:?}: the lost group left a trace"
                );
            }
            drop(s);
            let _ = std::fs::remove_dir_all(&snap);
        }
        let _ = std::fs::remove_dir_all(&d);
    }

    /// The whole store against a model, with a memory table so small that every few
    /// groups become a run and runs merge in the background; reopened now and then.
    #[test]
    fn matches_a_model_through_flushes_merges_and_reopens() {
        let d = tmp("model");
        let trees = [Tree::Inbox, Tree::Envelopes, Tree::Offices, Tree::Outbox];
        let mut model: BTreeMap<(u8, Vec<u8>), Vec<u8>> = BTreeMap::new();
        let mut rng = Lcg(7);
        let mut s = DiskStore::open_with(&d, 8 << 20, 2048).unwrap();
        let key = |rng: &mut Lcg| format!("k{:03}", rng.next() % 300).into_bytes();
        for round in 0..400u32 {
            for _ in 0..(1 + rng.next() % 12) {
                let ti = (rng.next() % trees.len() as u64) as usize;
                let k = key(&mut rng);
                if rng.next().is_multiple_of(4) {
                    s.delete(trees[ti], &k).unwrap();
                    model.remove(&(ti as u8, k));
                } else {
                    let len = if rng.next().is_multiple_of(5) {
                        300
                    } else {
                        10
                    };
                    let v = vec![(round % 251) as u8; len];
                    s.put(trees[ti], &k, &v).unwrap();
                    model.insert((ti as u8, k), v);
                }
            }
            s.commit().unwrap();
            if round % 97 == 96 {
                drop(s);
                s = DiskStore::open_with(&d, 8 << 20, 2048).unwrap();
            }
            // Point reads, forward and reverse ranges with random bounds and limits.
            for (ti, t) in trees.iter().enumerate() {
                let k = key(&mut rng);
                assert_eq!(
                    s.get(*t, &k).unwrap(),
                    model.get(&(ti as u8, k.clone())).cloned(),
                    "round {round} get {t:?} {k:?}"
                );
                let (a, b) = (key(&mut rng), key(&mut rng));
                let (lo, hi) = if a <= b { (a, b) } else { (b, a) };
                let limit = 1 + (rng.next() % 40) as usize;
                let want: Vec<_> = model
                    .range((ti as u8, lo.clone())..(ti as u8, hi.clone()))
                    .map(|((_, k), v)| (k.clone(), v.clone()))
                    .collect();
                let fwd: Vec<_> = want.iter().take(limit).cloned().collect();
                let rev: Vec<_> = want.iter().rev().take(limit).cloned().collect();
                assert_eq!(
                    s.range(*t, &lo, Some(&hi), limit).unwrap(),
                    fwd,
                    "round {round}"
                );
                assert_eq!(
                    s.range_rev(*t, &lo, Some(&hi), limit).unwrap(),
                    rev,
                    "round {round}"
                );
                let last = model
                    .range((ti as u8, vec![])..(ti as u8 + 1, vec![]))
                    .next_back()
                    .map(|((_, k), v)| (k.clone(), v.clone()));
                assert_eq!(s.last(*t).unwrap(), last, "round {round}");
            }
        }
        assert!(
            s.runs.run_count() >= 1,
            "the memory table was never written out"
        );
        assert!(
            s.runs.merges() >= 1,
            "no merge was installed since the last reopen"
        );
        drop(s);
        let _ = std::fs::remove_dir_all(&d);
    }

    #[test]
    fn compaction_deletes_dead_segments_and_loses_nothing() {
        let d = tmp("compact");
        let trees = [Tree::Envelopes, Tree::Inbox, Tree::Bindings, Tree::Outbox];
        let mut model: BTreeMap<(usize, Vec<u8>), Vec<u8>> = BTreeMap::new();
        let mut rng = Lcg(11);
        let open =
            |d: &std::path::Path| DiskStore::open_tuned(d, 8 << 20, 4096, 16 * 1024).unwrap();
        let mut s = open(&d);
        let check = |s: &DiskStore, model: &BTreeMap<(usize, Vec<u8>), Vec<u8>>, when: &str| {
            for (ti, t) in trees.iter().enumerate() {
                let got = s.range(*t, b"", None, usize::MAX).unwrap();
                let want: Vec<_> = model
                    .range((ti, Vec::new())..(ti + 1, Vec::new()))
                    .map(|((_, k), v)| (k.clone(), v.clone()))
                    .collect();
                assert_eq!(got, want, "{when}: {t:?}");
            }
        };
        let mut freed = 0;
        for round in 0..600u32 {
            for _ in 0..(1 + rng.next() % 6) {
                let ti = (rng.next() % trees.len() as u64) as usize;
                let k = format!("k{:03}", rng.next() % 120).into_bytes();
                if rng.next().is_multiple_of(3) {
                    s.delete(trees[ti], &k).unwrap();
                    model.remove(&(ti, k));
                } else {
                    let len = 150 + (rng.next() % 500) as usize;
                    let v = vec![(round % 251) as u8; len];
                    s.put(trees[ti], &k, &v).unwrap();
                    model.insert((ti, k), v);
                }
            }
            s.commit().unwrap();
            if round % 50 == 49 {
                let c = s.compact(50).unwrap();
                freed += c.segments;
                check(&s, &model, &format!("round {round} after compaction {c:?}"));
                if round % 100 == 99 {
                    // A restart after compaction replays from past the deleted segments.
                    drop(s);
                    s = open(&d);
                    check(&s, &model, &format!("round {round} reopened"));
                }
            }
        }
        // Overwrites and deletions left most of the log dead: most of it was given back.
        assert!(freed >= 10, "only {freed} segments freed");
        let log_bytes = s.log.size();
        let live: usize = model.values().map(Vec::len).sum();
        assert!(
            log_bytes < 8 * live as u64 + 64 * 1024,
            "log {log_bytes} B for {live} B live"
        );
        // A segment that is mostly live stays.
        let before = s.log.first_seg();
        assert_eq!(s.compact(0).unwrap().segments, 0);
        assert_eq!(s.log.first_seg(), before);
        // Compacting everything ends (it does not chase the segments its moves fill) and
        // loses nothing.
        let all = s.compact(100).unwrap();
        assert!(all.segments > 0 && s.log.first_seg() > before, "{all:?}");
        check(&s, &model, "after compacting every closed segment");
        drop(s);
        let s = open(&d);
        check(&s, &model, "final reopen");
        drop(s);
        let _ = std::fs::remove_dir_all(&d);
    }

    #[test]
    fn a_store_held_open_is_named_locked_and_one_just_dropped_opens_again() {
        let d = tmp("lock");
        let held = DiskStore::open(&d, 1 << 20).unwrap();
        let Err(e) = DiskStore::open(&d, 1 << 20) else {
            panic!("a second store opened a directory another store holds");
        };
        let e = e.to_string();
        assert!(
            e.contains("locked by another process") && e.contains(&*d.to_string_lossy()),
            "{e}"
        );
        // Dropped and opened again at once (a restart in the same process): sled lets go
        // of the lock a moment after the drop; the open waits for it.
        drop(held);
        for _ in 0..3 {
            let s = DiskStore::open(&d, 1 << 20).unwrap();
            drop(s);
        }
        let _ = std::fs::remove_dir_all(&d);
    }
}
