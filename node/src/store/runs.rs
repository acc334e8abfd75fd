//! Sorted runs: the index of the trees that grow with every envelope, in memory bounded
//! by configuration rather than by the number of keys.
//!
//! Writes applied after the log's durability point go to a memory table; once it holds
//! `mem_limit` bytes it is written out as an immutable sorted file (a *run*) and a
//! manifest naming the runs and the last log group they cover is replaced atomically.
//! Reads look at the memory table, then the runs newest first. A background thread merges
//! a run into the next older one whenever the newer holds at least half as many bytes
//! (a binary counter: about log₂(size / mem_limit) runs). A deletion is kept only while
//! an older run may hold a live value for its key: a delete of a key no run holds just
//! drops it from the memory table, and merges drop deletions nothing below them needs.
//!
//! Memory: the memory table, plus one key per 4 KiB block of each run (the sparse
//! index) — about 4 MiB per million envelopes. Blocks are read with `pread`, so they
//! live in the kernel's page cache, not in the process.
//!
//! Why not sled for these trees (docs/PERFORMANCE.md): sled 0.34 splits a leaf at 16 keys
//! and keeps per-page state in memory for every page, resident or not — about 70 bytes
//! per key, so a node holding a million envelopes (≈ 8 keys each) passed 300 MiB
//! whatever its cache size.
//!
//! Run file: blocks of entries (`tag u8 ‖ klen u16 LE ‖ [vlen u32 LE] ‖ key ‖ [value]`,
//! tag 0 = deletion, 1 = value), each block followed by its crc32; then the block index
//! (`klen u16 ‖ first key ‖ offset u64 ‖ length u32` per block); then a footer (`index
//! offset u64 ‖ index length u32 ‖ index crc32 ‖ entries u64 ‖ magic`). All integers
//! little-endian.

use std::collections::BTreeMap;
use std::fs::File;
use std::io::Write;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;

use super::StoreError;
use super::vlog::Pos;

/// One entry: a key and its value, or `None` for a deletion.
pub type Entry = (Vec<u8>, Option<Vec<u8>>);
type EntryIter<'a> = Box<dyn Iterator<Item = Result<Entry, StoreError>> + 'a>;

const BLOCK_TARGET: usize = 4096;
const MAGIC: &[u8; 8] = b"rkrun001";
const FOOTER: usize = 8 + 4 + 4 + 8 + 8;
const MANIFEST: &str = "MANIFEST";
const MANIFEST_MAGIC: &[u8; 8] = b"rkman001";

fn io(path: &Path, e: std::io::Error) -> StoreError {
    StoreError::Backend(format!("{}: {e}", path.display()))
}

fn corrupt(detail: String) -> StoreError {
    StoreError::Corrupt {
        tree: "runs",
        detail,
    }
}

fn run_name(num: u64) -> String {
    format!("{num:010}.run")
}

struct BlockRef {
    first: Vec<u8>,
    off: u64,
    len: u32,
}

/// One immutable sorted run on disk, with its block index in memory.
pub struct Table {
    num: u64,
    path: PathBuf,
    file: File,
    index: Vec<BlockRef>,
    bytes: u64,
}

fn encode_entry(out: &mut Vec<u8>, k: &[u8], v: Option<&[u8]>) {
    out.push(u8::from(v.is_some()));
    out.extend_from_slice(&(k.len() as u16).to_le_bytes());
    if let Some(v) = v {
        out.extend_from_slice(&(v.len() as u32).to_le_bytes());
    }
    out.extend_from_slice(k);
    if let Some(v) = v {
        out.extend_from_slice(v);
    }
}

/// Walks the entries of a decoded block: `(key, value)` slices.
struct BlockEntries<'a> {
    buf: &'a [u8],
    at: usize,
}

impl<'a> Iterator for BlockEntries<'a> {
    type Item = Result<(&'a [u8], Option<&'a [u8]>), StoreError>;
    fn next(&mut self) -> Option<Self::Item> {
        if self.at >= self.buf.len() {
            return None;
        }
        let b = self.buf;
        let bad = || corrupt(format!("entry at block offset {} does not parse", self.at));
        let tag = b[self.at];
        let Some(kl) = b.get(self.at + 1..self.at + 3) else {
            return Some(Err(bad()));
        };
        let klen = u16::from_le_bytes([kl[0], kl[1]]) as usize;
        let mut p = self.at + 3;
        let vlen = match tag {
            0 => None,
            1 => {
                let Some(vl) = b.get(p..p + 4) else {
                    return Some(Err(bad()));
                };
                p += 4;
                Some(u32::from_le_bytes([vl[0], vl[1], vl[2], vl[3]]) as usize)
            }
            _ => return Some(Err(bad())),
        };
        let Some(key) = b.get(p..p + klen) else {
            return Some(Err(bad()));
        };
        p += klen;
        let val = match vlen {
            None => None,
            Some(n) => {
                let Some(v) = b.get(p..p + n) else {
                    return Some(Err(bad()));
                };
                p += n;
                Some(v)
            }
        };
        self.at = p;
        Some(Ok((key, val)))
    }
}

impl Table {
    /// Writes `entries` (sorted, unique keys) as run `num` in `dir`: to a temporary file,
    /// synced, then renamed. `None` when there was nothing to write.
    fn write(
        dir: &Path,
        num: u64,
        entries: impl Iterator<Item = Result<Entry, StoreError>>,
        cancel: &AtomicBool,
    ) -> Result<Option<Table>, StoreError> {
        let path = dir.join(run_name(num));
        let tmp = dir.join(format!("{}.tmp", run_name(num)));
        let mut f = std::io::BufWriter::with_capacity(
            256 * 1024,
            File::create(&tmp).map_err(|e| io(&tmp, e))?,
        );
        let mut index = Vec::new();
        let mut block = Vec::with_capacity(BLOCK_TARGET * 2);
        let mut first: Option<Vec<u8>> = None;
        let mut off = 0u64;
        let mut count = 0u64;
        let mut end_block = |f: &mut std::io::BufWriter<File>,
                             block: &mut Vec<u8>,
                             first: &mut Option<Vec<u8>>,
                             off: &mut u64|
         -> Result<(), StoreError> {
            let Some(k) = first.take() else {
                return Ok(());
            };
            let crc = crc32fast::hash(block);
            block.extend_from_slice(&crc.to_le_bytes());
            f.write_all(block).map_err(|e| io(&tmp, e))?;
            index.push(BlockRef {
                first: k,
                off: *off,
                len: block.len() as u32,
            });
            *off += block.len() as u64;
            block.clear();
            Ok(())
        };
        for e in entries {
            let (k, v) = e?;
            if first.is_none() {
                first = Some(k.clone());
            }
            encode_entry(&mut block, &k, v.as_deref());
            count += 1;
            if block.len() >= BLOCK_TARGET {
                if cancel.load(Ordering::Relaxed) {
                    drop(f);
                    let _ = std::fs::remove_file(&tmp);
                    return Err(StoreError::Backend("merge cancelled".into()));
                }
                end_block(&mut f, &mut block, &mut first, &mut off)?;
            }
        }
        end_block(&mut f, &mut block, &mut first, &mut off)?;
        if count == 0 {
            drop(f);
            let _ = std::fs::remove_file(&tmp);
            return Ok(None);
        }
        let mut idx = Vec::new();
        for b in &index {
            idx.extend_from_slice(&(b.first.len() as u16).to_le_bytes());
            idx.extend_from_slice(&b.first);
            idx.extend_from_slice(&b.off.to_le_bytes());
            idx.extend_from_slice(&b.len.to_le_bytes());
        }
        let mut footer = Vec::with_capacity(FOOTER);
        footer.extend_from_slice(&off.to_le_bytes());
        footer.extend_from_slice(&(idx.len() as u32).to_le_bytes());
        footer.extend_from_slice(&crc32fast::hash(&idx).to_le_bytes());
        footer.extend_from_slice(&count.to_le_bytes());
        footer.extend_from_slice(MAGIC);
        f.write_all(&idx).map_err(|e| io(&tmp, e))?;
        f.write_all(&footer).map_err(|e| io(&tmp, e))?;
        let f = f
            .into_inner()
            .map_err(|e| io(&tmp, std::io::Error::other(e.to_string())))?;
        f.sync_all().map_err(|e| io(&tmp, e))?;
        drop(f);
        std::fs::rename(&tmp, &path).map_err(|e| io(&path, e))?;
        Table::open(dir, num).map(Some)
    }

    /// Opens run `num`, checking its footer and index.
    fn open(dir: &Path, num: u64) -> Result<Table, StoreError> {
        let path = dir.join(run_name(num));
        let file = File::open(&path).map_err(|e| io(&path, e))?;
        let bytes = file.metadata().map_err(|e| io(&path, e))?.len();
        let bad = |what: &str| corrupt(format!("{}: {what}", path.display()));
        if bytes < FOOTER as u64 {
            return Err(bad("shorter than its footer"));
        }
        let mut footer = [0u8; FOOTER];
        file.read_exact_at(&mut footer, bytes - FOOTER as u64)
            .map_err(|e| io(&path, e))?;
        if &footer[FOOTER - 8..] != MAGIC {
            return Err(bad("not a run file (bad magic)"));
        }
        let u64_at = |i: usize| u64::from_le_bytes(footer[i..i + 8].try_into().unwrap_or([0; 8]));
        let u32_at = |i: usize| u32::from_le_bytes(footer[i..i + 4].try_into().unwrap_or([0; 4]));
        let index_off = u64_at(0);
        let index_len = u32_at(8) as u64;
        let crc = u32_at(12);
        if index_off + index_len + FOOTER as u64 != bytes {
            return Err(bad("footer does not match the file length"));
        }
        let mut idx = vec![0u8; index_len as usize];
        file.read_exact_at(&mut idx, index_off)
            .map_err(|e| io(&path, e))?;
        if crc32fast::hash(&idx) != crc {
            return Err(bad("block index checksum mismatch"));
        }
        let mut index = Vec::new();
        let mut p = 0usize;
        while p < idx.len() {
            let kl = idx
                .get(p..p + 2)
                .ok_or_else(|| bad("block index truncated"))?;
            let klen = u16::from_le_bytes([kl[0], kl[1]]) as usize;
            let rest = idx
                .get(p + 2..p + 2 + klen + 12)
                .ok_or_else(|| bad("block index truncated"))?;
            let first = rest[..klen].to_vec();
            let off = u64::from_le_bytes(rest[klen..klen + 8].try_into().unwrap_or([0; 8]));
            let len = u32::from_le_bytes(rest[klen + 8..].try_into().unwrap_or([0; 4]));
            index.push(BlockRef { first, off, len });
            p += 2 + klen + 12;
        }
        Ok(Table {
            num,
            path,
            file,
            index,
            bytes,
        })
    }

    /// Bytes on disk.
    pub fn bytes(&self) -> u64 {
        self.bytes
    }

    fn read_block(&self, i: usize) -> Result<Vec<u8>, StoreError> {
        let b = &self.index[i];
        let mut buf = vec![0u8; b.len as usize];
        self.file
            .read_exact_at(&mut buf, b.off)
            .map_err(|e| io(&self.path, e))?;
        if buf.len() < 4 {
            return Err(corrupt(format!(
                "{}: block {i} too short",
                self.path.display()
            )));
        }
        let body = buf.len() - 4;
        let crc = u32::from_le_bytes(buf[body..].try_into().unwrap_or([0; 4]));
        if crc32fast::hash(&buf[..body]) != crc {
            return Err(corrupt(format!(
                "{}: block {i} checksum mismatch",
                self.path.display()
            )));
        }
        buf.truncate(body);
        Ok(buf)
    }

    /// The entry for `key`: `Some(None)` if this run records its deletion.
    fn get(&self, key: &[u8]) -> Result<Option<Option<Vec<u8>>>, StoreError> {
        let i = self.index.partition_point(|b| b.first.as_slice() <= key);
        if i == 0 {
            return Ok(None);
        }
        let buf = self.read_block(i - 1)?;
        for e in (BlockEntries { buf: &buf, at: 0 }) {
            let (k, v) = e?;
            match k.cmp(key) {
                std::cmp::Ordering::Less => continue,
                std::cmp::Ordering::Equal => return Ok(Some(v.map(<[u8]>::to_vec))),
                std::cmp::Ordering::Greater => break,
            }
        }
        Ok(None)
    }

    fn decode_block(&self, i: usize) -> Result<Vec<Entry>, StoreError> {
        let buf = self.read_block(i)?;
        (BlockEntries { buf: &buf, at: 0 })
            .map(|e| e.map(|(k, v)| (k.to_vec(), v.map(<[u8]>::to_vec))))
            .collect()
    }
}

/// Entries of one run with `lo <= key < hi`, ascending or descending.
struct Cursor {
    table: Arc<Table>,
    lo: Vec<u8>,
    /// `None`: unbounded.
    hi: Option<Vec<u8>>,
    rev: bool,
    /// The next block to load (forward) or one past it (reverse).
    next_block: usize,
    buf: std::vec::IntoIter<Entry>,
    done: bool,
}

impl Cursor {
    fn new(table: Arc<Table>, lo: &[u8], hi: Option<&[u8]>, rev: bool) -> Cursor {
        let next_block = if rev {
            match hi {
                Some(hi) => table.index.partition_point(|b| b.first.as_slice() < hi),
                None => table.index.len(),
            }
        } else {
            table
                .index
                .partition_point(|b| b.first.as_slice() <= lo)
                .saturating_sub(1)
        };
        Cursor {
            table,
            lo: lo.to_vec(),
            hi: hi.map(<[u8]>::to_vec),
            rev,
            next_block,
            buf: Vec::new().into_iter(),
            done: false,
        }
    }

    fn load(&mut self) -> Result<bool, StoreError> {
        let i = if self.rev {
            if self.next_block == 0 {
                return Ok(false);
            }
            self.next_block -= 1;
            self.next_block
        } else {
            if self.next_block >= self.table.index.len()
                || self
                    .hi
                    .as_ref()
                    .is_some_and(|hi| self.table.index[self.next_block].first >= *hi)
            {
                return Ok(false);
            }
            self.next_block += 1;
            self.next_block - 1
        };
        let mut entries = self.table.decode_block(i)?;
        if self.rev {
            entries.reverse();
        }
        self.buf = entries.into_iter();
        Ok(true)
    }
}

impl Iterator for Cursor {
    type Item = Result<Entry, StoreError>;
    fn next(&mut self) -> Option<Self::Item> {
        while !self.done {
            match self.buf.next() {
                Some(e) => {
                    let below = e.0 < self.lo;
                    let above = self.hi.as_ref().is_some_and(|hi| e.0 >= *hi);
                    if self.rev {
                        if below {
                            self.done = true;
                        } else if !above {
                            return Some(Ok(e));
                        }
                    } else if above {
                        self.done = true;
                    } else if !below {
                        return Some(Ok(e));
                    }
                }
                None => match self.load() {
                    Ok(true) => {}
                    Ok(false) => self.done = true,
                    Err(e) => {
                        self.done = true;
                        return Some(Err(e));
                    }
                },
            }
        }
        None
    }
}

/// Merges sorted sources (index 0 = newest): each key once, from the newest source that
/// has it, in ascending (or, with `rev`, descending) order. Deletions are passed through.
pub struct Merge<'a> {
    sources: Vec<EntryIter<'a>>,
    heads: Vec<Option<Entry>>,
    rev: bool,
    started: bool,
}

impl<'a> Merge<'a> {
    /// A merge of `sources`, newest first.
    pub fn new(sources: Vec<EntryIter<'a>>, rev: bool) -> Merge<'a> {
        let heads = sources.iter().map(|_| None).collect();
        Merge {
            sources,
            heads,
            rev,
            started: false,
        }
    }

    fn fill(&mut self, i: usize) -> Result<(), StoreError> {
        self.heads[i] = self.sources[i].next().transpose()?;
        Ok(())
    }
}

impl Iterator for Merge<'_> {
    type Item = Result<Entry, StoreError>;
    fn next(&mut self) -> Option<Self::Item> {
        if !self.started {
            self.started = true;
            for i in 0..self.sources.len() {
                if let Err(e) = self.fill(i) {
                    return Some(Err(e));
                }
            }
        }
        let mut best: Option<usize> = None;
        for (i, h) in self.heads.iter().enumerate() {
            let Some((k, _)) = h else { continue };
            best = match best {
                None => Some(i),
                Some(b) => {
                    let bk = self.heads[b].as_ref().map(|e| &e.0);
                    let better = match bk {
                        Some(bk) if self.rev => k > bk,
                        Some(bk) => k < bk,
                        None => true,
                    };
                    if better { Some(i) } else { Some(b) }
                }
            };
        }
        let b = best?;
        let out = self.heads[b].take()?;
        // Older sources holding the same key are shadowed: skip their entry.
        for i in 0..self.heads.len() {
            if i != b
                && self.heads[i].as_ref().is_some_and(|e| e.0 == out.0)
                && let Err(e) = self.fill(i)
            {
                return Some(Err(e));
            }
        }
        if let Err(e) = self.fill(b) {
            return Some(Err(e));
        }
        Some(Ok(out))
    }
}

/// Memory-table bytes charged for an entry (key, value and map overhead).
fn entry_cost(k: &[u8], v: Option<&[u8]>) -> usize {
    k.len() + v.map_or(0, <[u8]>::len) + 48
}

/// Whether `tables` (newest first) hold a live value for `key`: the newest that has the
/// key decides.
fn live_on_disk(tables: &[Arc<Table>], key: &[u8]) -> Result<bool, StoreError> {
    for t in tables {
        if let Some(v) = t.get(key)? {
            return Ok(v.is_some());
        }
    }
    Ok(false)
}

/// A merge running on a background thread.
struct Merging {
    inputs: Vec<u64>,
    cancel: Arc<AtomicBool>,
    handle: JoinHandle<Result<Option<Table>, StoreError>>,
}

/// The runs, the memory table and the manifest.
pub struct Runs {
    dir: PathBuf,
    /// Newest first.
    tables: Vec<Arc<Table>>,
    next_num: u64,
    mem: BTreeMap<Vec<u8>, Option<Vec<u8>>>,
    mem_bytes: usize,
    mem_limit: usize,
    /// The last log group whose writes are all in the runs (not counting `mem`).
    applied: (u64, Pos),
    merging: Option<Merging>,
    merges: u64,
}

impl Runs {
    /// Opens (creating if needed) the runs in `dir`. Files the manifest does not name
    /// (a crash mid-flush or mid-merge) are removed. The caller replays log groups after
    /// [`Runs::applied`] through [`Runs::apply`].
    pub fn open(dir: &Path, mem_limit: usize) -> Result<Runs, StoreError> {
        std::fs::create_dir_all(dir).map_err(|e| io(dir, e))?;
        let (applied, next_num, nums) = read_manifest(dir)?;
        let mut tables = Vec::new();
        for n in &nums {
            tables.push(Arc::new(Table::open(dir, *n)?));
        }
        for e in std::fs::read_dir(dir).map_err(|e| io(dir, e))?.flatten() {
            let name = e.file_name();
            let Some(name) = name.to_str() else { continue };
            let listed = name
                .strip_suffix(".run")
                .and_then(|n| n.parse::<u64>().ok())
                .is_some_and(|n| nums.contains(&n));
            if (name.ends_with(".run") || name.ends_with(".tmp")) && !listed {
                tracing::info!(file = name, "removing a run the manifest does not name");
                let _ = std::fs::remove_file(e.path());
            }
        }
        Ok(Runs {
            dir: dir.to_path_buf(),
            tables,
            next_num,
            mem: BTreeMap::new(),
            mem_bytes: 0,
            mem_limit,
            applied,
            merging: None,
            merges: 0,
        })
    }

    /// The last log group whose writes are in the runs on disk.
    pub fn applied(&self) -> (u64, Pos) {
        self.applied
    }

    /// Bytes on disk.
    pub fn size(&self) -> u64 {
        self.tables.iter().map(|t| t.bytes).sum()
    }

    /// Number of runs on disk.
    pub fn run_count(&self) -> usize {
        self.tables.len()
    }

    /// Merges installed since open.
    pub fn merges(&self) -> u64 {
        self.merges
    }

    /// The entry for `key`: `Some(None)` if deleted.
    pub fn get(&self, key: &[u8]) -> Result<Option<Option<Vec<u8>>>, StoreError> {
        if let Some(v) = self.mem.get(key) {
            return Ok(Some(v.clone()));
        }
        for t in &self.tables {
            if let Some(v) = t.get(key)? {
                return Ok(Some(v));
            }
        }
        Ok(None)
    }

    /// Sources for `lo <= key < hi`, newest first: the memory table, then each run.
    pub fn sources(&self, lo: &[u8], hi: &[u8], rev: bool) -> Vec<EntryIter<'_>> {
        let mut out: Vec<EntryIter<'_>> = Vec::new();
        let m = self
            .mem
            .range(lo.to_vec()..hi.to_vec())
            .map(|(k, v)| Ok((k.clone(), v.clone())));
        if rev {
            out.push(Box::new(m.rev()));
        } else {
            out.push(Box::new(m));
        }
        for t in &self.tables {
            out.push(Box::new(Cursor::new(t.clone(), lo, Some(hi), rev)));
        }
        out
    }

    /// Applies one durable log group's writes. Writes the memory table out as a run when
    /// it is full, and starts or finishes background merges.
    pub fn apply(
        &mut self,
        ops: impl IntoIterator<Item = Entry>,
        seq: u64,
        end: Pos,
    ) -> Result<(), StoreError> {
        for (k, v) in ops {
            let cost = entry_cost(&k, v.as_deref());
            let old = if v.is_none() && !live_on_disk(&self.tables, &k)? {
                // Nothing on disk to hide: forget the key instead of keeping a deletion.
                // Queue-like trees (outbox, pending) insert and delete each key within
                // moments; without this their deletions would pile up and every scan
                // from the queue's head would walk them.
                self.mem.remove_entry(&k)
            } else {
                self.mem_bytes += cost;
                self.mem.insert(k.clone(), v).map(|o| (k, o))
            };
            if let Some((k, o)) = old {
                self.mem_bytes = self.mem_bytes.saturating_sub(entry_cost(&k, o.as_deref()));
            }
        }
        self.finish_merge()?;
        if self.mem_bytes >= self.mem_limit {
            self.flush(seq, end)?;
        }
        self.start_merge();
        Ok(())
    }

    /// Writes the memory table out now (even empty) and records that every log group up to
    /// `seq`, ending at `end`, is in the runs on disk (value-log compaction needs replay to
    /// start past the segment it deletes).
    pub fn persist(&mut self, seq: u64, end: Pos) -> Result<(), StoreError> {
        self.finish_merge()?;
        self.flush(seq, end)
    }

    /// Writes the memory table out as the newest run, covering log groups up to `seq`.
    fn flush(&mut self, seq: u64, end: Pos) -> Result<(), StoreError> {
        let num = self.next_num;
        self.next_num += 1;
        let mem = std::mem::take(&mut self.mem);
        self.mem_bytes = 0;
        let never = AtomicBool::new(false);
        let t = Table::write(&self.dir, num, mem.into_iter().map(Ok), &never)?;
        if let Some(t) = t {
            self.tables.insert(0, Arc::new(t));
        }
        self.applied = (seq, end);
        self.write_manifest()
    }

    /// Starts merging the newest run that holds at least half the bytes of the next older
    /// one into it, if no merge is running.
    fn start_merge(&mut self) {
        if self.merging.is_some() {
            return;
        }
        let Some(i) = (0..self.tables.len().saturating_sub(1))
            .find(|&i| self.tables[i].bytes * 2 >= self.tables[i + 1].bytes)
        else {
            return;
        };
        let newer = self.tables[i].clone();
        let older = self.tables[i + 1].clone();
        let below: Vec<Arc<Table>> = self.tables[i + 2..].to_vec();
        let bottom = below.is_empty();
        let num = self.next_num;
        self.next_num += 1;
        let dir = self.dir.clone();
        let cancel = Arc::new(AtomicBool::new(false));
        let c = cancel.clone();
        let inputs = vec![newer.num, older.num];
        tracing::debug!(?inputs, output = num, bottom, "merging runs");
        let handle = std::thread::Builder::new()
            .name("renkei-merge".into())
            .spawn(move || {
                let sources: Vec<EntryIter<'_>> = vec![
                    Box::new(Cursor::new(newer, b"", None, false)),
                    Box::new(Cursor::new(older, b"", None, false)),
                ];
                // A deletion survives the merge only if a run below still holds a live
                // value for its key (at the bottom, never).
                let merged = Merge::new(sources, false).filter(|e| match e {
                    Ok((k, None)) => live_on_disk(&below, k).unwrap_or(true),
                    _ => true,
                });
                Table::write(&dir, num, merged, &c)
            });
        match handle {
            Ok(handle) => {
                self.merging = Some(Merging {
                    inputs,
                    cancel,
                    handle,
                })
            }
            Err(e) => tracing::warn!(error = %e, "could not start a merge thread"),
        }
    }

    /// Installs a finished merge: the output replaces its inputs, the manifest is
    /// rewritten, and only then are the inputs deleted.
    fn finish_merge(&mut self) -> Result<(), StoreError> {
        if !self
            .merging
            .as_ref()
            .is_some_and(|m| m.handle.is_finished())
        {
            return Ok(());
        }
        let Some(m) = self.merging.take() else {
            return Ok(());
        };
        let out = m
            .handle
            .join()
            .map_err(|_| StoreError::Backend("merge thread panicked".into()))??;
        let Some(pos) = self.tables.iter().position(|t| t.num == m.inputs[0]) else {
            return Err(StoreError::Backend("merged run vanished".into()));
        };
        self.tables.drain(pos..pos + 2);
        if let Some(t) = out {
            self.tables.insert(pos, Arc::new(t));
        }
        self.write_manifest()?;
        self.merges += 1;
        for n in m.inputs {
            let p = self.dir.join(run_name(n));
            std::fs::remove_file(&p).map_err(|e| io(&p, e))?;
        }
        Ok(())
    }

    fn write_manifest(&self) -> Result<(), StoreError> {
        let mut m = Vec::new();
        m.extend_from_slice(MANIFEST_MAGIC);
        m.extend_from_slice(&self.applied.0.to_le_bytes());
        m.extend_from_slice(&self.applied.1.seg.to_le_bytes());
        m.extend_from_slice(&self.applied.1.off.to_le_bytes());
        // Reserve the number a running merge writes to, so a reopened store never reuses it.
        m.extend_from_slice(&self.next_num.to_le_bytes());
        m.extend_from_slice(&(self.tables.len() as u32).to_le_bytes());
        for t in &self.tables {
            m.extend_from_slice(&t.num.to_le_bytes());
        }
        let crc = crc32fast::hash(&m);
        m.extend_from_slice(&crc.to_le_bytes());
        let tmp = self.dir.join("MANIFEST.tmp");
        let path = self.dir.join(MANIFEST);
        {
            let mut f = File::create(&tmp).map_err(|e| io(&tmp, e))?;
            f.write_all(&m).map_err(|e| io(&tmp, e))?;
            f.sync_all().map_err(|e| io(&tmp, e))?;
        }
        std::fs::rename(&tmp, &path).map_err(|e| io(&path, e))?;
        File::open(&self.dir)
            .and_then(|d| d.sync_all())
            .map_err(|e| io(&self.dir, e))
    }
}

impl Drop for Runs {
    fn drop(&mut self) {
        if let Some(m) = self.merging.take() {
            m.cancel.store(true, Ordering::Relaxed);
            let _ = m.handle.join();
        }
    }
}

type ManifestState = ((u64, Pos), u64, Vec<u64>);

fn read_manifest(dir: &Path) -> Result<ManifestState, StoreError> {
    let path = dir.join(MANIFEST);
    let m = match std::fs::read(&path) {
        Ok(m) => m,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Ok(((0, Pos { seg: 1, off: 0 }), 1, Vec::new()));
        }
        Err(e) => return Err(io(&path, e)),
    };
    let bad = || corrupt(format!("{}: manifest does not parse", path.display()));
    if m.len() < 8 + 8 + 4 + 8 + 8 + 4 + 4 || &m[..8] != MANIFEST_MAGIC {
        return Err(bad());
    }
    let body = m.len() - 4;
    if crc32fast::hash(&m[..body]).to_le_bytes() != m[body..] {
        return Err(bad());
    }
    let u64_at = |i: usize| -> Result<u64, StoreError> {
        Ok(u64::from_le_bytes(
            m.get(i..i + 8)
                .ok_or_else(bad)?
                .try_into()
                .map_err(|_| bad())?,
        ))
    };
    let u32_at = |i: usize| -> Result<u32, StoreError> {
        Ok(u32::from_le_bytes(
            m.get(i..i + 4)
                .ok_or_else(bad)?
                .try_into()
                .map_err(|_| bad())?,
        ))
    };
    let seq = u64_at(8)?;
    let seg = u32_at(16)?;
    let off = u64_at(20)?;
    let next_num = u64_at(28)?;
    let n = u32_at(36)? as usize;
    if 40 + n * 8 != body {
        return Err(bad());
    }
    let nums = (0..n)
        .map(|i| u64_at(40 + i * 8))
        .collect::<Result<_, _>>()?;
    Ok(((seq, Pos { seg, off }), next_num, nums))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tmp(name: &str) -> PathBuf {
        let d = std::env::temp_dir().join(format!("renkei-runs-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        d
    }

    fn fill(r: &mut Runs, from: u64, n: u64) {
        for i in from..from + n {
            let k = format!("key{i:06}").into_bytes();
            r.apply([(k, Some(vec![1u8; 100]))], i, Pos { seg: 1, off: i })
                .unwrap();
        }
    }

    #[test]
    fn a_run_the_manifest_does_not_name_is_removed_on_open() {
        let d = tmp("orphan");
        {
            let mut r = Runs::open(&d, 4096).unwrap();
            fill(&mut r, 0, 100);
            assert!(r.run_count() >= 1);
        }
        // A crash after a run was written but before the manifest named it.
        std::fs::write(d.join(run_name(999)), b"half a run").unwrap();
        std::fs::write(d.join(format!("{}.tmp", run_name(998))), b"x").unwrap();
        let r = Runs::open(&d, 4096).unwrap();
        assert!(!d.join(run_name(999)).exists());
        assert!(!d.join(format!("{}.tmp", run_name(998))).exists());
        assert_eq!(
            r.get(b"key000003").unwrap(),
            Some(Some(vec![1u8; 100])),
            "the named runs are intact"
        );
        drop(r);
        let _ = std::fs::remove_dir_all(&d);
    }

    #[test]
    fn a_corrupt_block_is_an_error_naming_the_run() {
        let d = tmp("corrupt");
        {
            let mut r = Runs::open(&d, 1 << 20).unwrap();
            fill(&mut r, 0, 50);
            r.flush(50, Pos { seg: 1, off: 50 }).unwrap();
        }
        let run = std::fs::read_dir(&d)
            .unwrap()
            .flatten()
            .map(|e| e.path())
            .find(|p| p.extension().is_some_and(|e| e == "run"))
            .unwrap();
        let mut bytes = std::fs::read(&run).unwrap();
        bytes[20] ^= 0x40;
        std::fs::write(&run, bytes).unwrap();
        let r = Runs::open(&d, 1 << 20).unwrap();
        let e = r.get(b"key000001").unwrap_err().to_string();
        assert!(e.contains("checksum mismatch"), "{e}");
        assert!(e.contains(&run_name(1)), "{e}");
        drop(r);
        let _ = std::fs::remove_dir_all(&d);
    }

    #[test]
    fn queue_churn_leaves_no_deletions_behind() {
        let d = tmp("churn");
        let mut r = Runs::open(&d, 4096).unwrap();
        let mut seq = 0;
        // Keys inserted and deleted a little later, as an outbox does; some straddle a
        // memory-table flush.
        for i in 0..20_000u64 {
            seq += 1;
            let k = format!("q{i:08}").into_bytes();
            r.apply([(k, Some(vec![3u8; 20]))], seq, Pos { seg: 1, off: seq })
                .unwrap();
            if i >= 10 {
                seq += 1;
                let old = format!("q{:08}", i - 10).into_bytes();
                r.apply([(old, None)], seq, Pos { seg: 1, off: seq })
                    .unwrap();
            }
        }
        for _ in 0..200 {
            if r.merging.is_none() {
                break;
            }
            std::thread::sleep(std::time::Duration::from_millis(10));
            r.apply([], seq, Pos { seg: 1, off: seq }).unwrap();
        }
        let all: Vec<_> = Merge::new(r.sources(b"", b"\xff", false), false)
            .map(|e| e.unwrap())
            .collect();
        let dead = all.iter().filter(|(_, v)| v.is_none()).count();
        assert_eq!(all.len() - dead, 10, "the ten newest keys are live");
        // Without dropping, ~20,000 deletions would remain for every scan to walk.
        assert!(dead < 500, "{dead} deletions left");
        drop(r);
        let _ = std::fs::remove_dir_all(&d);
        // Within one memory table, a deleted key that no run holds leaves nothing.
        let mut r = Runs::open(&d, 64 << 20).unwrap();
        for i in 0..1000u64 {
            let k = format!("q{i:08}").into_bytes();
            r.apply(
                [(k.clone(), Some(vec![3u8; 20]))],
                2 * i,
                Pos { seg: 1, off: 2 * i },
            )
            .unwrap();
            r.apply(
                [(k, None)],
                2 * i + 1,
                Pos {
                    seg: 1,
                    off: 2 * i + 1,
                },
            )
            .unwrap();
        }
        assert!(r.mem.is_empty(), "{} entries left in memory", r.mem.len());
        assert_eq!(r.mem_bytes, 0);
        drop(r);
        let _ = std::fs::remove_dir_all(&d);
    }

    #[test]
    fn merges_keep_the_newest_value_and_drop_deletions_at_the_bottom() {
        let d = tmp("merge");
        let mut r = Runs::open(&d, 2048).unwrap();
        fill(&mut r, 0, 300);
        // Overwrite and delete some keys in newer runs.
        for i in 0..300u64 {
            let k = format!("key{i:06}").into_bytes();
            let v = if i % 3 == 0 {
                None
            } else {
                Some(vec![2u8; 50])
            };
            r.apply(
                [(k, v)],
                300 + i,
                Pos {
                    seg: 1,
                    off: 300 + i,
                },
            )
            .unwrap();
        }
        // Let background merges finish.
        for _ in 0..200 {
            std::thread::sleep(std::time::Duration::from_millis(10));
            r.apply([], 600, Pos { seg: 1, off: 600 }).unwrap();
            if r.merging.is_none() {
                break;
            }
        }
        assert!(r.merges() > 0, "no merge ran");
        assert!(
            r.run_count() < 40,
            "{} runs: merges do not keep up",
            r.run_count()
        );
        for i in 0..300u64 {
            let k = format!("key{i:06}").into_bytes();
            let want = if i % 3 == 0 {
                None
            } else {
                Some(vec![2u8; 50])
            };
            assert_eq!(r.get(&k).unwrap().flatten(), want, "key {i}");
        }
        let live: Vec<_> = Merge::new(r.sources(b"", b"\xff", false), false)
            .map(|e| e.unwrap())
            .filter(|(_, v)| v.is_some())
            .collect();
        assert_eq!(live.len(), 200);
        drop(r);
        let _ = std::fs::remove_dir_all(&d);
    }
}
