//! Durable storage behind a small trait, and the in-memory backend with crash semantics
//! (simnet, tests). The production backend (`renkei_node::store::DiskStore`: a write-ahead
//! value log, sorted runs for the per-envelope trees and sled for the small ones) lives in
//! the node crate; [`conformance`] is the behaviour every backend must share.
//!
//! Every write between two `commit()` calls forms one atomic group: after a crash either all
//! of it is there or none of it. Drivers call `commit()` once per batch of inputs and only
//! then release the batch's effects (group commit), so nothing that promises durability
//! leaves a node before the data behind it is on disk.

mod inline_key;
mod memory;
mod spill;
mod tree_map;

pub use memory::MemoryStore;
/// What only the simulator uses (feature `simnet`): a value pool several memory stores
/// share, with spill files, and a switch that makes the next flush lie.
#[cfg(any(test, feature = "simnet"))]
pub use memory::{SharedValues, SyncFault};

/// One concern's key space. Keys within a tree are designed for range scans.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Tree {
    /// Node metadata (counters, audit head).
    Meta,
    /// Envelope bytes by id (held for relay, sent, or received).
    Envelopes,
    /// Envelopes awaiting a hop acknowledgement, by id.
    Outbox,
    /// Sent records (origin) by id.
    Sent,
    /// Sent index: office ‖ created_at ‖ id.
    SentIndex,
    /// Envelopes whose origin awaits a final receipt: expires_at ‖ id.
    Pending,
    /// Receipts: envelope id ‖ seq.
    Receipts,
    /// Receipts awaiting forwarding toward an origin: seq.
    ReceiptOutbox,
    /// The answer given to each envelope id received (dedup, forever).
    Dedup,
    /// Inbox records: office ‖ id.
    Inbox,
    /// Opened files of received envelopes: id ‖ index.
    Files,
    /// Latest envelope per document slot.
    Slots,
    /// Explicit supersession: superseded id → superseding id.
    Supersedes,
    /// Offices homed at this node (with token hashes).
    Offices,
    /// Office bindings known from the federation: office → signed binding.
    Bindings,
    /// Bindings in arrival order for directory sync: seq → office.
    BindingLog,
    /// Hash-chained audit log: seq.
    Audit,
    /// Units submitted by offices, for idempotent resubmission: SHA-256 of (office,
    /// supersedes, every file's name and SHA-256) → envelope id.
    Submissions,
    /// Envelopes relayed for others: id → origin, destination and digest, kept to route
    /// their receipts back once the body is gone (a relay drops the body when the next
    /// hop holds it).
    Relayed,
    /// Inbox in arrival order: office ‖ received_at ‖ id → nothing, for paging an office's
    /// inbox newest first without reading all of it. Last, so existing trees keep their
    /// key prefixes on disk (a store from before it is indexed when opened).
    InboxIndex,
    /// Staff accounts of offices homed here: office ‖ `/` ‖ user.
    Staff,
    /// Staff sign-in sessions: SHA-256 of the cookie.
    Sessions,
}

impl Tree {
    /// Every tree.
    pub const ALL: [Tree; 22] = [
        Tree::Meta,
        Tree::Envelopes,
        Tree::Outbox,
        Tree::Sent,
        Tree::SentIndex,
        Tree::Pending,
        Tree::Receipts,
        Tree::ReceiptOutbox,
        Tree::Dedup,
        Tree::Inbox,
        Tree::Files,
        Tree::Slots,
        Tree::Supersedes,
        Tree::Offices,
        Tree::Bindings,
        Tree::BindingLog,
        Tree::Audit,
        Tree::Submissions,
        Tree::Relayed,
        Tree::InboxIndex,
        Tree::Staff,
        Tree::Sessions,
    ];

    /// Stable name (the sled tree name).
    pub fn name(self) -> &'static str {
        match self {
            Tree::Meta => "meta",
            Tree::Envelopes => "envelopes",
            Tree::Outbox => "outbox",
            Tree::Sent => "sent",
            Tree::SentIndex => "sent_index",
            Tree::Pending => "pending",
            Tree::Receipts => "receipts",
            Tree::ReceiptOutbox => "receipt_outbox",
            Tree::Dedup => "dedup",
            Tree::Inbox => "inbox",
            Tree::Files => "files",
            Tree::Slots => "slots",
            Tree::Supersedes => "supersedes",
            Tree::Offices => "offices",
            Tree::Bindings => "bindings",
            Tree::BindingLog => "binding_log",
            Tree::Audit => "audit",
            Tree::Submissions => "submissions",
            Tree::Relayed => "relayed",
            Tree::InboxIndex => "inbox_index",
            Tree::Staff => "staff",
            Tree::Sessions => "sessions",
        }
    }
}

/// A storage failure.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The backend failed (disk, corruption).
    #[error("store backend failed: {0}")]
    Backend(String),
    /// A stored record could not be decoded.
    #[error("stored record in tree {tree} is corrupt: {detail}")]
    Corrupt {
        /// Tree name.
        tree: &'static str,
        /// Detail.
        detail: String,
    },
}

/// One key-value pair.
pub type Pair = (Vec<u8>, Vec<u8>);
/// Key-value pairs returned by scans.
pub type Pairs = Vec<Pair>;

/// The storage interface of the core.
pub trait Store {
    /// Reads a key (seeing this group's uncommitted writes).
    fn get(&self, tree: Tree, key: &[u8]) -> Result<Option<Vec<u8>>, StoreError>;
    /// Writes a key.
    fn put(&mut self, tree: Tree, key: &[u8], value: &[u8]) -> Result<(), StoreError>;
    /// Deletes a key.
    fn delete(&mut self, tree: Tree, key: &[u8]) -> Result<(), StoreError>;
    /// Up to `limit` pairs with `start <= key < end` (end `None` = unbounded), in key order.
    fn range(
        &self,
        tree: Tree,
        start: &[u8],
        end: Option<&[u8]>,
        limit: usize,
    ) -> Result<Pairs, StoreError>;
    /// Like [`Store::range`], but the `limit` largest keys of the range, largest first.
    fn range_rev(
        &self,
        tree: Tree,
        start: &[u8],
        end: Option<&[u8]>,
        limit: usize,
    ) -> Result<Pairs, StoreError>;
    /// The last pair of a tree, if any.
    fn last(&self, tree: Tree) -> Result<Option<Pair>, StoreError>;
    /// Makes every write since the last commit durable, atomically.
    fn commit(&mut self) -> Result<(), StoreError>;
    /// Starts a commit whose durability is waited for elsewhere: writes every write since
    /// the last commit, atomically, and returns the wait ([`SyncJob`], `None` when the
    /// commit is durable already). Reads see the group at once, and the next group's writes
    /// may begin; the caller runs the job (any thread) and, once it returned `Ok`, calls
    /// [`Store::commit_finish`] before the next `commit_start` or `commit`. Nothing the
    /// group promises may leave before then ([`crate::batch::Committing`]). The default
    /// commits at once.
    fn commit_start(&mut self) -> Result<Option<SyncJob>, StoreError> {
        self.commit()?;
        Ok(None)
    }
    /// Ends the commit [`Store::commit_start`] began, after its job returned `Ok`.
    fn commit_finish(&mut self) -> Result<(), StoreError> {
        Ok(())
    }
}

/// The wait that makes a started commit durable (a flush of what it wrote); see
/// [`Store::commit_start`].
pub type SyncJob = Box<dyn FnOnce() -> Result<(), StoreError> + Send>;

/// The exclusive end of the key range that starts with `prefix`.
pub fn prefix_end(prefix: &[u8]) -> Option<Vec<u8>> {
    let mut end = prefix.to_vec();
    while let Some(last) = end.pop() {
        if last < 0xff {
            end.push(last + 1);
            return Some(end);
        }
    }
    None
}

/// All pairs whose key starts with `prefix`, up to `limit`.
pub fn scan_prefix(
    store: &dyn Store,
    tree: Tree,
    prefix: &[u8],
    limit: usize,
) -> Result<Pairs, StoreError> {
    let end = prefix_end(prefix);
    store.range(tree, prefix, end.as_deref(), limit)
}

/// Behaviour every backend must share (garage's shared-test idea): a backend's tests call
/// these on a fresh store; they panic on the first difference. Test support only: built
/// for this crate's tests and, with the `conformance` feature, for another backend's
/// (`renkei-node`'s dev-dependency turns it on); never in a node binary.
#[cfg(any(test, feature = "conformance"))]
#[allow(clippy::unwrap_used)]
pub mod conformance {
    use super::*;

    /// Reads, writes, deletes, forward and reverse ranges, `last`, across commits.
    pub fn basic(s: &mut dyn Store) {
        s.put(Tree::Inbox, b"a1", b"x").unwrap();
        s.put(Tree::Inbox, b"a2", b"y").unwrap();
        s.put(Tree::Inbox, b"b1", b"z").unwrap();
        s.put(Tree::Outbox, b"a1", b"other tree").unwrap();
        assert_eq!(
            s.get(Tree::Inbox, b"a1").unwrap().as_deref(),
            Some(&b"x"[..])
        );
        let got = scan_prefix(s, Tree::Inbox, b"a", 10).unwrap();
        assert_eq!(got.len(), 2);
        assert_eq!(got[1].0, b"a2");
        assert_eq!(scan_prefix(s, Tree::Inbox, b"a", 1).unwrap().len(), 1);
        s.commit().unwrap();
        s.delete(Tree::Inbox, b"a1").unwrap();
        assert_eq!(s.get(Tree::Inbox, b"a1").unwrap(), None);
        assert_eq!(scan_prefix(s, Tree::Inbox, b"", 10).unwrap().len(), 2);
        assert_eq!(s.last(Tree::Inbox).unwrap().unwrap().0, b"b1");
        s.put(Tree::Inbox, b"c", b"w").unwrap();
        assert_eq!(s.last(Tree::Inbox).unwrap().unwrap().0, b"c");
        s.commit().unwrap();
        assert_eq!(
            s.range(Tree::Inbox, b"a2", Some(b"c"), 10).unwrap().len(),
            2
        );
        s.put(Tree::Inbox, b"b2", b"v").unwrap();
        s.delete(Tree::Inbox, b"b1").unwrap();
        let rev: Vec<Vec<u8>> = s
            .range_rev(Tree::Inbox, b"a", Some(b"c"), 10)
            .unwrap()
            .into_iter()
            .map(|(k, _)| k)
            .collect();
        assert_eq!(rev, vec![b"b2".to_vec(), b"a2".to_vec()]);
        assert_eq!(s.range_rev(Tree::Inbox, b"", None, 1).unwrap()[0].0, b"c");
        assert_eq!(s.range_rev(Tree::Outbox, b"", None, 10).unwrap().len(), 1);
    }

    /// Every behaviour below, on stores made by `open` (each call a fresh, empty store) and
    /// reopened by `reopen` (a crash: the store is dropped without a commit and opened again
    /// from what it made durable).
    pub fn all<S: Store>(mut open: impl FnMut() -> S, mut reopen: impl FnMut(S) -> S) {
        basic(&mut open());
        overlay_merges_with_committed(&mut open());
        trees_do_not_bleed(&mut open());
        crash_keeps_committed_only(open(), &mut reopen);
        pipelined_commit(open(), &mut reopen);
    }

    /// A commit started and not yet finished ([`Store::commit_start`]): the next group's
    /// reads and scans see it under their own writes, in every kind of tree; it may not
    /// start again before it finishes; once its flush ran and it finished, it is durable,
    /// and the next group commits over it.
    pub fn pipelined_commit<S: Store>(mut s: S, reopen: &mut impl FnMut(S) -> S) {
        for t in [Tree::Inbox, Tree::Offices] {
            s.put(t, b"a", b"first").unwrap();
            s.put(t, b"b", b"first").unwrap();
            s.put(t, b"c", &vec![3u8; 4096]).unwrap();
        }
        s.commit().unwrap();
        for t in [Tree::Inbox, Tree::Offices] {
            s.put(t, b"a", b"second").unwrap();
            s.delete(t, b"b").unwrap();
            s.put(t, b"d", &vec![4u8; 4096]).unwrap();
        }
        let sync = s.commit_start().unwrap();
        // The next group, while the flush runs.
        for t in [Tree::Inbox, Tree::Offices] {
            assert_eq!(s.get(t, b"a").unwrap().as_deref(), Some(&b"second"[..]));
            assert_eq!(s.get(t, b"b").unwrap(), None);
            assert_eq!(s.get(t, b"d").unwrap().unwrap(), vec![4u8; 4096]);
            s.put(t, b"e", b"third").unwrap();
            s.delete(t, b"c").unwrap();
            let keys: Vec<Vec<u8>> = s
                .range(t, b"", None, 10)
                .unwrap()
                .into_iter()
                .map(|(k, _)| k)
                .collect();
            assert_eq!(keys, vec![b"a".to_vec(), b"d".to_vec(), b"e".to_vec()]);
            assert_eq!(s.range_rev(t, b"", None, 1).unwrap()[0].0, b"e");
        }
        if let Some(sync) = sync {
            assert!(
                s.commit_start().is_err(),
                "a second commit may not start before the first finishes"
            );
            sync().unwrap();
        }
        s.commit_finish().unwrap();
        for t in [Tree::Inbox, Tree::Offices] {
            assert_eq!(s.get(t, b"e").unwrap().as_deref(), Some(&b"third"[..]));
            assert_eq!(s.get(t, b"c").unwrap(), None);
        }
        // Crash with the third group uncommitted: the second one is durable, the third not.
        let mut s = reopen(s);
        for t in [Tree::Inbox, Tree::Offices] {
            assert_eq!(s.get(t, b"a").unwrap().as_deref(), Some(&b"second"[..]));
            assert_eq!(s.get(t, b"b").unwrap(), None);
            assert_eq!(s.get(t, b"c").unwrap().unwrap(), vec![3u8; 4096]);
            assert_eq!(s.get(t, b"d").unwrap().unwrap(), vec![4u8; 4096]);
            assert_eq!(s.get(t, b"e").unwrap(), None);
            s.put(t, b"f", b"after").unwrap();
        }
        s.commit().unwrap();
        let s = reopen(s);
        for t in [Tree::Inbox, Tree::Offices] {
            assert_eq!(s.get(t, b"f").unwrap().as_deref(), Some(&b"after"[..]));
        }
    }

    /// A group's writes are seen by its own reads and scans before the commit, over what is
    /// committed (puts replacing, deletes hiding).
    pub fn overlay_merges_with_committed(s: &mut dyn Store) {
        for k in [b"a", b"c", b"e"] {
            s.put(Tree::Outbox, k, b"disk").unwrap();
        }
        s.commit().unwrap();
        s.put(Tree::Outbox, b"b", b"over").unwrap();
        s.put(Tree::Outbox, b"c", b"over").unwrap();
        s.delete(Tree::Outbox, b"e").unwrap();
        let want = vec![
            (b"a".to_vec(), b"disk".to_vec()),
            (b"b".to_vec(), b"over".to_vec()),
            (b"c".to_vec(), b"over".to_vec()),
        ];
        assert_eq!(s.range(Tree::Outbox, b"", None, 10).unwrap(), want);
        assert_eq!(s.range(Tree::Outbox, b"", None, 2).unwrap(), want[..2]);
        assert_eq!(s.last(Tree::Outbox).unwrap().unwrap().0, b"c");
        assert_eq!(
            s.range_rev(Tree::Outbox, b"", None, 2).unwrap(),
            vec![want[2].clone(), want[1].clone()]
        );
        // Deletes in front of a limited scan do not shorten it, either way.
        for t in [Tree::Relayed, Tree::Submissions] {
            for k in [b"p1", b"p2", b"p3", b"p4"] {
                s.put(t, k, b"v").unwrap();
            }
        }
        s.commit().unwrap();
        s.delete(Tree::Relayed, b"p1").unwrap();
        s.delete(Tree::Relayed, b"p2").unwrap();
        s.delete(Tree::Submissions, b"p4").unwrap();
        s.delete(Tree::Submissions, b"p3").unwrap();
        let keys = |p: Pairs| p.into_iter().map(|(k, _)| k).collect::<Vec<_>>();
        assert_eq!(
            keys(s.range(Tree::Relayed, b"", None, 2).unwrap()),
            vec![b"p3".to_vec(), b"p4".to_vec()]
        );
        assert_eq!(
            keys(s.range_rev(Tree::Submissions, b"", None, 2).unwrap()),
            vec![b"p2".to_vec(), b"p1".to_vec()]
        );
        assert_eq!(s.last(Tree::Submissions).unwrap().unwrap().0, b"p2");
        s.delete(Tree::Outbox, b"a").unwrap();
        s.delete(Tree::Outbox, b"b").unwrap();
        s.put(Tree::Outbox, b"d", b"over").unwrap();
        assert_eq!(
            s.range(Tree::Outbox, b"", None, 2).unwrap(),
            vec![
                (b"c".to_vec(), b"over".to_vec()),
                (b"d".to_vec(), b"over".to_vec())
            ]
        );
        s.commit().unwrap();
        assert_eq!(s.get(Tree::Outbox, b"a").unwrap(), None);
        assert_eq!(
            s.get(Tree::Outbox, b"d").unwrap().as_deref(),
            Some(&b"over"[..])
        );
        // A key written and deleted in one group is not there; deleted and written, it is.
        s.put(Tree::Outbox, b"x", b"1").unwrap();
        s.delete(Tree::Outbox, b"x").unwrap();
        s.delete(Tree::Outbox, b"c").unwrap();
        s.put(Tree::Outbox, b"c", b"again").unwrap();
        s.commit().unwrap();
        assert_eq!(s.get(Tree::Outbox, b"x").unwrap(), None);
        assert_eq!(
            s.get(Tree::Outbox, b"c").unwrap().as_deref(),
            Some(&b"again"[..])
        );
    }

    /// Keys at the edges of the byte range stay in their tree, committed or not.
    pub fn trees_do_not_bleed(s: &mut dyn Store) {
        s.put(Tree::Envelopes, b"\xff\xff", b"env").unwrap();
        s.put(Tree::Outbox, b"\x00", b"out").unwrap();
        s.put(Tree::Outbox, b"", b"empty key").unwrap();
        s.put(Tree::InboxIndex, b"z", b"last tree").unwrap();
        for commit in [false, true] {
            if commit {
                s.commit().unwrap();
            }
            let env = s.range(Tree::Envelopes, b"", None, 10).unwrap();
            assert_eq!(env, vec![(b"\xff\xff".to_vec(), b"env".to_vec())]);
            assert_eq!(s.last(Tree::Envelopes).unwrap().unwrap().1, b"env");
            assert_eq!(s.last(Tree::Meta).unwrap(), None);
            assert_eq!(s.range(Tree::Meta, b"", None, 10).unwrap(), vec![]);
            assert_eq!(s.range(Tree::Outbox, b"", None, 10).unwrap().len(), 2);
            assert_eq!(s.last(Tree::InboxIndex).unwrap().unwrap().0, b"z");
            // Byte order, the shorter key first on a tie.
            let keys: Vec<Vec<u8>> = s
                .range(Tree::Outbox, b"", None, 10)
                .unwrap()
                .into_iter()
                .map(|(k, _)| k)
                .collect();
            assert_eq!(keys, vec![b"".to_vec(), b"\x00".to_vec()]);
        }
    }

    /// After a crash a store holds exactly what its last commit made durable.
    pub fn crash_keeps_committed_only<S: Store>(mut s: S, reopen: &mut impl FnMut(S) -> S) {
        s.put(Tree::Inbox, b"kept", b"1").unwrap();
        s.put(Tree::Envelopes, b"big", &vec![7u8; 1 << 20]).unwrap();
        s.commit().unwrap();
        s.put(Tree::Inbox, b"lost", b"2").unwrap();
        s.delete(Tree::Inbox, b"kept").unwrap();
        s.put(Tree::Envelopes, b"big", b"overwritten").unwrap();
        let mut s = reopen(s);
        assert_eq!(
            s.get(Tree::Inbox, b"kept").unwrap().as_deref(),
            Some(&b"1"[..])
        );
        assert_eq!(s.get(Tree::Inbox, b"lost").unwrap(), None);
        assert_eq!(
            s.get(Tree::Envelopes, b"big").unwrap().unwrap().len(),
            1 << 20
        );
        // And it goes on: a commit after the crash is durable too.
        s.put(Tree::Inbox, b"after", b"3").unwrap();
        s.commit().unwrap();
        let s = reopen(s);
        assert_eq!(scan_prefix(&s, Tree::Inbox, b"", 10).unwrap().len(), 2);
    }

    #[cfg(test)]
    #[test]
    fn prefix_end_rules() {
        assert_eq!(prefix_end(b"ab"), Some(b"ac".to_vec()));
        assert_eq!(prefix_end(&[1, 0xff]), Some(vec![2]));
        assert_eq!(prefix_end(&[0xff]), None);
    }
}
