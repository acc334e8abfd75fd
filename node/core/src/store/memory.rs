//! In-memory store with crash semantics: [`MemoryStore::crash`] discards every write since
//! the last commit, as a power cut would.
//!
//! One map per tree, keyed by the raw key bytes, so a lookup allocates nothing. Stores made
//! with the same [`SharedValues`] keep one copy of a value that several of them hold: in a
//! simulated federation the origin, the relay and the destination hold the very same
//! envelope bytes under the same id, and every node holds the same signed bindings and
//! receipts. Values are immutable once stored, so sharing changes nothing a store does.
//!
//! A pool made with [`SharedValues::spilling_to`] keeps the bulky values (envelopes, opened
//! files, audit records, dedup answers, relay records) in unlinked spill files instead of
//! the heap: the maps then hold a file position per value. Each store has its own file (so
//! what one node holds can be read back without reading every node's), and the pool one
//! for the envelopes several stores share. What a store answers is the same byte for byte;
//! only where the bytes wait differs.

use std::borrow::Cow;
#[allow(clippy::disallowed_types)] // the pool's map only (see `Pool`)
use std::collections::HashMap;
use std::hash::{Hash, Hasher};
use std::ops::Bound;
#[cfg(any(test, feature = "simnet"))]
use std::path::Path;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, MutexGuard, Weak};

use super::inline_key::Key;
use super::spill::{Arena, Spill};
use super::tree_map::TreeMap;
use super::{Pair, Pairs, Store, StoreError, SyncJob, Tree};

/// A stored value: on the heap, in the store's own spill file, or in the pool's.
#[derive(Debug, Clone)]
enum Val {
    Heap(Arc<[u8]>),
    Spilled(Spill),
    Pooled(Spill),
}

impl Val {
    fn len(&self) -> usize {
        match self {
            Val::Heap(v) => v.len(),
            Val::Spilled(s) | Val::Pooled(s) => s.len(),
        }
    }
}

/// Where a value goes.
enum Place {
    Heap,
    SharedHeap,
    SharedSpill,
    OwnSpill,
}

type Map = TreeMap<Val>;
type Range<'a> = (Bound<&'a [u8]>, Bound<&'a [u8]>);

/// Trees whose values several nodes hold byte for byte: envelope bytes (origin, relays,
/// destination), signed bindings (every node) and signed receipts (every node on the path).
const SHARED_TREES: [Tree; 3] = [Tree::Envelopes, Tree::Bindings, Tree::Receipts];
/// Values shorter than this are not worth a pool entry.
const SHARE_MIN: usize = 96;
/// Trees whose values a spilling pool writes to files: the bulk of a node's bytes, written
/// once (or a few times) and seldom read. Receipts and inbox records stay on the heap: the
/// checkers read every one of them at the end of a run in key order, which from files
/// larger than memory would be random reads (sent records they read in submission order,
/// close to the order they were written).
const SPILL_TREES: [Tree; 6] = [
    Tree::Envelopes,
    Tree::Files,
    Tree::Audit,
    Tree::Dedup,
    Tree::Relayed,
    Tree::Sent,
];
/// Values shorter than this stay on the heap (a file position costs 16 bytes too).
const SPILL_MIN: usize = 48;
/// A spilled value is worth a pool entry (kept for the whole run) from this size: an
/// envelope is, a receipt is cheaper written twice.
const SHARE_SPILLED_MIN: usize = 1024;

/// A pool of values shared by the stores made with it (see the module docs).
#[derive(Debug, Clone, Default)]
pub struct SharedValues(Arc<Mutex<Pool>>);

#[derive(Debug)]
enum Pooled {
    /// While some store holds it.
    Heap(Weak<[u8]>),
    /// For the whole run (the spill file never forgets), with a second, independent hash
    /// of the value ([`check_of`]) so that a hit needs no read back from the file.
    Spilled(Spill, u64),
}

// The pool's map is looked up, inserted into and swept (`retain`), never iterated in an
// order anything can observe: a hash map keeps determinism.
#[allow(clippy::disallowed_types)]
#[derive(Debug, Default)]
struct Pool {
    /// (length, hash) → the value.
    map: HashMap<(usize, u64), Pooled, foldhash::fast::FixedState>,
    /// Pool size after the last sweep of dead entries.
    swept_len: usize,
    /// Where shared bulky values go, if spilling.
    arena: Option<Arena>,
    /// Where each store's own spill file is made, if spilling.
    spill_dir: Option<PathBuf>,
}

/// Length and a fast 64-bit hash (foldhash, fixed seed) of a value: the pool's key.
fn hash_of(value: &[u8]) -> (usize, u64) {
    use std::hash::BuildHasher;
    (
        value.len(),
        foldhash::quality::FixedState::with_seed(0x7265_6e6b_6569).hash_one(value),
    )
}

/// A second 64-bit hash of a value, independent of [`hash_of`]'s (another function: SipHash
/// with a prefix): a spilled value whose length and both hashes match is taken to be the
/// same value (128 bits of hash over a few million values of one run) without reading it
/// back.
fn check_of(value: &[u8]) -> u64 {
    let mut h = std::hash::DefaultHasher::new();
    h.write_u64(0x5eed_c0de_5eed_c0de);
    value.hash(&mut h);
    h.finish()
}

fn backend(e: std::io::Error) -> StoreError {
    StoreError::Backend(e.to_string())
}

impl SharedValues {
    /// An empty pool.
    #[cfg(any(test, feature = "simnet"))]
    pub fn new() -> Self {
        Self::default()
    }

    /// An empty pool whose stores keep their bulky values in spill files made (and at once
    /// unlinked) in `dir`: the pool's own, for values several stores share, now; each
    /// store's at its first spilled value.
    ///
    /// # Errors
    /// The pool's file cannot be created in `dir`.
    #[cfg(any(test, feature = "simnet"))]
    pub fn spilling_to(dir: &Path) -> std::io::Result<Self> {
        let pool = Pool {
            spill_dir: Some(dir.to_path_buf()),
            arena: Some(Arena::create(dir)?),
            ..Pool::default()
        };
        Ok(Self(Arc::new(Mutex::new(pool))))
    }

    fn lock(&self) -> MutexGuard<'_, Pool> {
        // A poisoned pool only means another store panicked mid-insert; its map is intact.
        self.0.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Where a value of `len` bytes in `tree` goes.
    fn place(&self, tree: Tree, len: usize) -> Place {
        let spills = self.lock().arena.is_some();
        let share = SHARED_TREES.contains(&tree) && len >= SHARE_MIN;
        let spill = spills && SPILL_TREES.contains(&tree) && len >= SPILL_MIN;
        match (spill, share) {
            (true, true) if len >= SHARE_SPILLED_MIN => Place::SharedSpill,
            (true, _) => Place::OwnSpill,
            (false, true) => Place::SharedHeap,
            (false, false) => Place::Heap,
        }
    }

    /// A new spill file for one store (`None` if the pool does not spill).
    fn own_arena(&self) -> Result<Option<Arena>, StoreError> {
        let dir = self.lock().spill_dir.clone();
        dir.map(|d| Arena::create(&d).map_err(backend)).transpose()
    }

    /// The bytes of a value in the pool's spill file.
    fn load_pooled(&self, s: Spill) -> Result<Vec<u8>, StoreError> {
        let pool = self.lock();
        match pool.arena.as_ref() {
            Some(arena) => arena.read(s).map_err(backend),
            None => Err(StoreError::Backend(
                "a pooled spilled value in a pool without a spill file".into(),
            )),
        }
    }

    /// Number of values in the pool (live or not yet swept).
    #[cfg(any(test, feature = "simnet"))]
    pub fn len(&self) -> usize {
        self.lock().map.len()
    }

    /// Whether the pool is empty.
    #[cfg(any(test, feature = "simnet"))]
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Bytes in the pool's own spill file, of values several stores share (0 when not
    /// spilling).
    #[cfg(any(test, feature = "simnet"))]
    pub fn spilled_bytes(&self) -> u64 {
        self.lock().arena.as_ref().map_or(0, Arena::len)
    }
}

impl Pool {
    /// The shared heap copy of `value` (a new one if no store holds it).
    fn intern(&mut self, value: &[u8]) -> Val {
        let key = hash_of(value);
        if let Some(Pooled::Heap(w)) = self.map.get(&key)
            && let Some(v) = w.upgrade()
            && *v == *value
        {
            return Val::Heap(v);
        }
        let v: Arc<[u8]> = Arc::from(value);
        self.map.insert(key, Pooled::Heap(Arc::downgrade(&v)));
        if self.map.len() > 2 * self.swept_len + 4096 {
            self.map.retain(|_, p| match p {
                Pooled::Heap(w) => w.strong_count() > 0,
                Pooled::Spilled(..) => true,
            });
            self.swept_len = self.map.len();
        }
        Val::Heap(v)
    }

    /// The shared spilled copy of `value` (appended if the file has none yet).
    fn intern_spilled(&mut self, value: &[u8]) -> Result<Val, StoreError> {
        let key = hash_of(value);
        let Some(arena) = self.arena.as_mut() else {
            return Err(StoreError::Backend(
                "a pool without a spill file cannot spill".into(),
            ));
        };
        let check = check_of(value);
        if let Some(Pooled::Spilled(s, c)) = self.map.get(&key)
            && *c == check
        {
            return Ok(Val::Pooled(*s));
        }
        let s = arena.append(value).map_err(backend)?;
        self.map.insert(key, Pooled::Spilled(s, check));
        Ok(Val::Pooled(s))
    }
}

/// An in-memory [`Store`] for simnet and tests.
#[derive(Debug)]
pub struct MemoryStore {
    trees: Vec<Map>,
    /// Undo log since the last durable commit: key and its previous value. A crash rolls
    /// all of it back, so a group written but never flushed is lost, as in a page cache.
    undo: Vec<(Tree, Key, Option<Val>)>,
    /// Where the group being written began in `undo` (entries before it were written by
    /// a commit whose flush has not been seen to run).
    group_start: usize,
    /// The flush of the last started commit, set when its job ran (and did not lie), and
    /// how much of `undo` it makes durable.
    flushed: Option<(Arc<std::sync::atomic::AtomicBool>, usize)>,
    commits: u64,
    shared: Option<SharedValues>,
    /// This store's spill file, made at its first spilled value.
    own: Option<Arena>,
    sync_fault: SyncFault,
}

/// A fault switch on a [`MemoryStore`]: when set, the next commit returns without making
/// the group durable (a lying fsync), so a crash after it loses the group. simnet's
/// deliberately broken driver uses it to show its checkers notice effects released ahead
/// of durability.
#[derive(Debug, Clone, Default)]
pub struct SyncFault(Arc<std::sync::atomic::AtomicBool>);

impl SyncFault {
    /// The next commit will not be durable.
    #[cfg(any(test, feature = "simnet"))]
    pub fn skip_next_sync(&self) {
        self.0.store(true, std::sync::atomic::Ordering::Relaxed);
    }

    fn take(&self) -> bool {
        self.0.swap(false, std::sync::atomic::Ordering::Relaxed)
    }
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
            trees: Tree::ALL.iter().map(|t| Map::for_tree(*t)).collect(),
            undo: Vec::new(),
            group_start: 0,
            flushed: None,
            commits: 0,
            shared: None,
            own: None,
            sync_fault: SyncFault::default(),
        }
    }

    /// An empty store that shares identical values with the other stores of `pool`.
    #[cfg(any(test, feature = "simnet"))]
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

    /// Simulates a crash: every write not made durable by a flush that ran is lost.
    pub fn crash(&mut self) {
        self.group_start = 0;
        self.flushed = None;
        while let Some((t, k, old)) = self.undo.pop() {
            match old {
                Some(v) => {
                    self.tree_mut(t).insert(k, v);
                }
                None => {
                    self.tree_mut(t).remove_entry(k.as_slice());
                }
            }
        }
    }

    /// This store's fault switch (see [`SyncFault`]).
    #[cfg(any(test, feature = "simnet"))]
    pub fn sync_fault(&self) -> SyncFault {
        self.sync_fault.clone()
    }

    /// Number of commits so far.
    pub fn commits(&self) -> u64 {
        self.commits
    }

    /// Number of writes since the last commit started.
    pub fn uncommitted(&self) -> usize {
        self.undo.len() - self.group_start
    }

    /// Every value of a tree, in key order (for checkers).
    ///
    /// # Panics
    /// A spilled value cannot be read back from the spill file (the simulation has lost
    /// its own state and cannot go on).
    pub fn values(&self, tree: Tree) -> impl Iterator<Item = Cow<'_, [u8]>> {
        self.tree(tree).iter().map(|(_, v)| self.load_or_panic(v))
    }

    /// Every value of a tree in the order cheapest to read: heap values first, then
    /// spilled values in file order (for checkers that look at every value, e.g. "no
    /// plaintext at a relay").
    ///
    /// # Panics
    /// As [`MemoryStore::values`].
    #[cfg(any(test, feature = "simnet"))]
    pub fn values_unordered(&self, tree: Tree) -> impl Iterator<Item = Cow<'_, [u8]>> {
        self.pairs_unordered(tree).map(|(_, v)| v)
    }

    /// Every (key, value) of a tree in the order cheapest to read, as
    /// [`MemoryStore::values_unordered`] (for checkers that look up most of a tree's
    /// records: read in file order, not key order).
    ///
    /// # Panics
    /// As [`MemoryStore::values`].
    #[cfg(any(test, feature = "simnet"))]
    pub fn pairs_unordered(&self, tree: Tree) -> impl Iterator<Item = (&[u8], Cow<'_, [u8]>)> {
        let mut entries: Vec<(&Key, &Val)> = self.tree(tree).entries_any_order().collect();
        entries.sort_by_key(|(_, v)| match v {
            Val::Heap(_) => (0, 0),
            Val::Spilled(s) => (1, s.offset()),
            Val::Pooled(s) => (2, s.offset()),
        });
        entries
            .into_iter()
            .map(|(k, v)| (k.as_slice(), self.load_or_panic(v)))
    }

    /// Every (key, value) of a tree.
    ///
    /// # Panics
    /// As [`MemoryStore::values`].
    pub fn pairs(&self, tree: Tree) -> impl Iterator<Item = (&[u8], Cow<'_, [u8]>)> {
        self.tree(tree)
            .iter()
            .map(|(k, v)| (k.as_slice(), self.load_or_panic(v)))
    }

    /// Bytes in this store's own spill file.
    #[cfg(any(test, feature = "simnet"))]
    pub fn spilled_bytes(&self) -> u64 {
        self.own.as_ref().map_or(0, Arena::len)
    }

    /// Total bytes held (keys and values; a shared value counts in every store holding it).
    #[cfg(any(test, feature = "simnet"))]
    pub fn bytes(&self) -> usize {
        self.trees
            .iter()
            .flat_map(TreeMap::iter)
            .map(|(k, v)| k.as_slice().len() + v.len())
            .sum()
    }

    fn load<'a>(&self, v: &'a Val) -> Result<Cow<'a, [u8]>, StoreError> {
        match (v, &self.shared, &self.own) {
            (Val::Heap(b), _, _) => Ok(Cow::Borrowed(&b[..])),
            (Val::Spilled(s), _, Some(own)) => own.read(*s).map(Cow::Owned).map_err(backend),
            (Val::Pooled(s), Some(pool), _) => pool.load_pooled(*s).map(Cow::Owned),
            _ => Err(StoreError::Backend(format!(
                "a spilled value ({} bytes) without its spill file",
                v.len()
            ))),
        }
    }

    fn load_or_panic<'a>(&self, v: &'a Val) -> Cow<'a, [u8]> {
        self.load(v)
            .unwrap_or_else(|e| panic!("reading back a simulated store: {e}"))
    }

    fn pair(&self, (k, v): (&Key, &Val)) -> Result<Pair, StoreError> {
        Ok((k.as_slice().to_vec(), self.load(v)?.into_owned()))
    }

    fn bounds<'a>(start: &'a [u8], end: Option<&'a [u8]>) -> Option<Range<'a>> {
        match end {
            Some(e) if e <= start => None,
            Some(e) => Some((Bound::Included(start), Bound::Excluded(e))),
            None => Some((Bound::Included(start), Bound::Unbounded)),
        }
    }
}

impl Store for MemoryStore {
    fn get(&self, tree: Tree, key: &[u8]) -> Result<Option<Vec<u8>>, StoreError> {
        self.tree(tree)
            .get(key)
            .map(|v| self.load(v).map(Cow::into_owned))
            .transpose()
    }

    fn put(&mut self, tree: Tree, key: &[u8], value: &[u8]) -> Result<(), StoreError> {
        let v = match &self.shared {
            None => Val::Heap(Arc::from(value)),
            Some(pool) => match pool.place(tree, value.len()) {
                Place::Heap => Val::Heap(Arc::from(value)),
                Place::SharedHeap => pool.lock().intern(value),
                Place::SharedSpill => pool.lock().intern_spilled(value)?,
                Place::OwnSpill => {
                    if self.own.is_none() {
                        self.own = pool.own_arena()?;
                    }
                    match self.own.as_mut() {
                        Some(own) => Val::Spilled(own.append(value).map_err(backend)?),
                        None => Val::Heap(Arc::from(value)),
                    }
                }
            },
        };
        let k = Key::from(key);
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
        self.tree(tree)
            .range(b)
            .take(limit)
            .map(|e| self.pair(e))
            .collect()
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
        self.tree(tree)
            .range(b)
            .rev()
            .take(limit)
            .map(|e| self.pair(e))
            .collect()
    }

    fn last(&self, tree: Tree) -> Result<Option<Pair>, StoreError> {
        self.tree(tree)
            .iter()
            .next_back()
            .map(|e| self.pair(e))
            .transpose()
    }

    fn commit(&mut self) -> Result<(), StoreError> {
        if let Some(job) = self.commit_start()? {
            job()?;
        }
        self.commit_finish()
    }

    /// The group is written at once (reads see it); it becomes durable only when the
    /// returned flush runs and [`Store::commit_finish`] sees that it ran. A driver that lets
    /// a batch's effects out without running the flush (or a lying flush, [`SyncFault`])
    /// loses the group at the next crash, as a node whose fsync never ran would.
    fn commit_start(&mut self) -> Result<Option<SyncJob>, StoreError> {
        if self.flushed.is_some() {
            return Err(StoreError::Backend(
                "a commit started before the previous one finished".into(),
            ));
        }
        self.commits += 1;
        self.group_start = self.undo.len();
        let ran = Arc::new(std::sync::atomic::AtomicBool::new(false));
        self.flushed = Some((ran.clone(), self.undo.len()));
        let lie = self.sync_fault.take();
        Ok(Some(Box::new(move || {
            ran.store(!lie, std::sync::atomic::Ordering::Release);
            Ok(())
        })))
    }

    fn commit_finish(&mut self) -> Result<(), StoreError> {
        if let Some((ran, upto)) = self.flushed.take()
            && ran.load(std::sync::atomic::Ordering::Acquire)
        {
            // A flush makes everything written before it durable, earlier groups too.
            self.undo.drain(..upto);
            self.group_start -= upto;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn heap(v: &Val) -> &Arc<[u8]> {
        match v {
            Val::Heap(b) => b,
            Val::Spilled(s) | Val::Pooled(s) => panic!("expected a heap value, found {s:?}"),
        }
    }

    fn spilled(v: &Val) -> (bool, Spill) {
        match v {
            Val::Spilled(s) => (false, *s),
            Val::Pooled(s) => (true, *s),
            Val::Heap(b) => panic!("expected a spilled value, found {} heap bytes", b.len()),
        }
    }

    #[test]
    fn conformance_spilling() {
        let pool = SharedValues::spilling_to(&std::env::temp_dir()).unwrap();
        crate::store::conformance::all(
            || MemoryStore::with_shared(pool.clone()),
            |mut s| {
                s.crash();
                s
            },
        );
    }

    #[test]
    fn a_spilling_pool_keeps_bulky_values_in_its_file_and_answers_the_same() {
        let pool = SharedValues::spilling_to(&std::env::temp_dir()).unwrap();
        let (mut a, mut b) = (
            MemoryStore::with_shared(pool.clone()),
            MemoryStore::with_shared(pool.clone()),
        );
        let envelope: Vec<u8> = (0..3000u32).map(|i| (i * 7) as u8).collect();
        let receipt = vec![5u8; 200];
        let file = vec![9u8; 2000];
        a.put(Tree::Envelopes, b"e", &envelope).unwrap();
        b.put(Tree::Envelopes, b"e", &envelope).unwrap();
        a.put(Tree::Receipts, b"r", &receipt).unwrap();
        b.put(Tree::Receipts, b"r", &receipt).unwrap();
        a.put(Tree::Files, b"f", &file).unwrap();
        a.put(Tree::Files, b"small", b"tiny").unwrap();
        a.put(Tree::Slots, b"s", &file).unwrap();
        a.put(Tree::Inbox, b"i", &file).unwrap();
        // Bulky values of the spill trees are in files: the envelope once, in the pool's
        // file (several stores hold it); the opened file in the store's own. Receipts stay
        // on the heap (shared), as do small values and other trees.
        let (pooled, se) = spilled(a.tree(Tree::Envelopes).get(b"e").unwrap());
        assert!(pooled);
        assert_eq!(
            (true, se),
            spilled(b.tree(Tree::Envelopes).get(b"e").unwrap())
        );
        assert!(Arc::ptr_eq(
            heap(a.tree(Tree::Receipts).get(b"r").unwrap()),
            heap(b.tree(Tree::Receipts).get(b"r").unwrap())
        ));
        assert!(!spilled(a.tree(Tree::Files).get(b"f").unwrap()).0);
        heap(a.tree(Tree::Files).get(b"small").unwrap());
        heap(a.tree(Tree::Slots).get(b"s").unwrap());
        heap(a.tree(Tree::Inbox).get(b"i").unwrap());
        assert_eq!(pool.spilled_bytes(), envelope.len() as u64);
        assert_eq!(a.spilled_bytes(), file.len() as u64);
        assert_eq!(b.spilled_bytes(), 0, "b spilled nothing of its own");
        // Reads answer the same bytes, whichever way they ask.
        assert_eq!(
            a.get(Tree::Envelopes, b"e").unwrap(),
            Some(envelope.clone())
        );
        assert_eq!(b.get(Tree::Receipts, b"r").unwrap(), Some(receipt.clone()));
        assert_eq!(a.range(Tree::Files, b"", None, 10).unwrap()[0].1, file);
        assert_eq!(a.last(Tree::Files).unwrap().unwrap().1, b"tiny");
        assert_eq!(&*a.values(Tree::Envelopes).next().unwrap(), &envelope[..]);
        a.put(Tree::Files, b"g", &envelope).unwrap();
        let all: Vec<Vec<u8>> = a
            .values_unordered(Tree::Files)
            .map(Cow::into_owned)
            .collect();
        assert_eq!(all, [b"tiny".to_vec(), file.clone(), envelope.clone()]);
        // Crash semantics are the same: the uncommitted overwrite is undone.
        a.commit().unwrap();
        a.put(Tree::Envelopes, b"e", &file).unwrap();
        a.crash();
        assert_eq!(a.get(Tree::Envelopes, b"e").unwrap(), Some(envelope));
        // Values read back across many tail flushes.
        for i in 0u32..2000 {
            let mut v = vec![3u8; 1500];
            v[..4].copy_from_slice(&i.to_be_bytes());
            a.put(Tree::Audit, &i.to_be_bytes(), &v).unwrap();
        }
        for i in (0u32..2000).step_by(97) {
            let v = a.get(Tree::Audit, &i.to_be_bytes()).unwrap().unwrap();
            assert_eq!(v[..4], i.to_be_bytes());
        }
    }

    #[test]
    fn conformance() {
        crate::store::conformance::all(MemoryStore::new, |mut s| {
            s.crash();
            s
        });
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

    /// A group is durable only once its flush ran: a driver that finishes a commit
    /// without running it (releasing the batch's effects before the data is safe), or a
    /// lying flush, loses the group at the next crash — until a later flush covers it.
    #[test]
    fn a_group_whose_flush_never_ran_is_lost_at_a_crash() {
        let mut s = MemoryStore::new();
        s.put(Tree::Inbox, b"k", b"1").unwrap();
        s.commit().unwrap();
        s.put(Tree::Inbox, b"k", b"2").unwrap();
        let job = s.commit_start().unwrap();
        drop(job);
        s.commit_finish().unwrap();
        s.put(Tree::Inbox, b"n", b"3").unwrap();
        assert_eq!(s.uncommitted(), 1, "only the group being written");
        s.crash();
        assert_eq!(
            s.get(Tree::Inbox, b"k").unwrap().as_deref(),
            Some(&b"1"[..])
        );
        assert_eq!(s.get(Tree::Inbox, b"n").unwrap(), None);

        // A lying flush is the same; the next real flush makes both groups durable.
        s.put(Tree::Inbox, b"k", b"2").unwrap();
        s.sync_fault().skip_next_sync();
        s.commit().unwrap();
        s.put(Tree::Inbox, b"n", b"3").unwrap();
        s.commit().unwrap();
        s.crash();
        assert_eq!(
            s.get(Tree::Inbox, b"k").unwrap().as_deref(),
            Some(&b"2"[..])
        );
        assert_eq!(
            s.get(Tree::Inbox, b"n").unwrap().as_deref(),
            Some(&b"3"[..])
        );
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
            heap(a.tree(Tree::Envelopes).get(b"id").unwrap()),
            heap(b.tree(Tree::Envelopes).get(b"id").unwrap()),
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
            heap(a.tree(Tree::Files).get(b"f").unwrap()),
            heap(b.tree(Tree::Files).get(b"f").unwrap())
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
