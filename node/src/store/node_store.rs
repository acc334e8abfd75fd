//! The store a node runs on, as configured: the local store or PostgreSQL (with the lease
//! that makes one node of several the active one).

use std::sync::{Arc, Mutex, Weak};

use super::lease::{Attempt, Lease};
use super::{DiskStore, Pair, Pairs, PgStore, Store, StoreError, SyncJob, Tree};

/// The configured store.
// One per node, moved once: boxing the local store would add a pointer chase to every read.
#[allow(clippy::large_enum_variant)]
pub enum NodeStore {
    /// The embedded store in `DIR/store`.
    Local(DiskStore),
    /// PostgreSQL, committing under the lease this node holds.
    Postgres(PgStore, LeaseGuard),
}

/// The lease a PostgreSQL store commits under; let go (so a standby takes over at once) when
/// the store is dropped.
pub struct LeaseGuard(Arc<Mutex<Lease>>);

impl LeaseGuard {
    /// The lease, for the renewing thread (which stops once the store is gone).
    pub fn watch(&self) -> Weak<Mutex<Lease>> {
        Arc::downgrade(&self.0)
    }

    /// This node's name in the lease.
    pub fn holder(&self) -> String {
        self.0
            .lock()
            .map(|l| l.holder().to_owned())
            .unwrap_or_default()
    }
}

impl Drop for LeaseGuard {
    fn drop(&mut self) {
        if let Ok(mut l) = self.0.lock()
            && let Err(e) = l.release()
        {
            tracing::warn!(error = %e, "could not let the lease go (a standby takes over when it expires)");
        }
    }
}

impl NodeStore {
    /// PostgreSQL at `url` for node `holder`: takes the lease, or waits for it while
    /// `wait(holder, expires_in_ms)` says to (a standby); `Ok(None)` when it gave up.
    pub fn postgres(
        url: &str,
        holder: &str,
        ttl: std::time::Duration,
        mut wait: impl FnMut(&str, i64) -> bool,
    ) -> Result<Option<NodeStore>, StoreError> {
        // The database may not be reachable yet (it is starting, or failing over to its
        // replica): that is waited for like a lease held by another node.
        let mut lease = loop {
            match Lease::connect(url, holder, ttl) {
                Ok(l) => break l,
                Err(e) => {
                    if !wait(&format!("unknown (the database: {e})"), -1) {
                        return Err(e);
                    }
                }
            }
        };
        let fence = loop {
            match lease.try_take() {
                Ok(Attempt::Taken(f)) => break f,
                Ok(Attempt::HeldBy {
                    holder,
                    expires_in_ms,
                }) => {
                    if !wait(&holder, expires_in_ms) {
                        return Ok(None);
                    }
                }
                // The row is locked by a commit of the holder (perhaps paused mid-way, until
                // the server ends its transaction), or the database is not reachable yet.
                Err(e) => {
                    if !wait(&format!("unknown ({e})"), -1) {
                        return Err(e);
                    }
                }
            }
        };
        let guard = LeaseGuard(Arc::new(Mutex::new(lease)));
        let store = PgStore::open_leased(url, fence, ttl)?;
        Ok(Some(NodeStore::Postgres(store, guard)))
    }

    /// The lease, for a PostgreSQL store.
    pub fn lease(&self) -> Option<&LeaseGuard> {
        match self {
            NodeStore::Local(_) => None,
            NodeStore::Postgres(_, l) => Some(l),
        }
    }

    /// The store's size on disk, bytes: the local store's files, or the PostgreSQL table
    /// with its indexes and TOAST data.
    pub fn size_bytes(&self) -> Result<u64, StoreError> {
        match self {
            NodeStore::Local(s) => s.size_on_disk(),
            NodeStore::Postgres(s, _) => s.size_bytes(),
        }
    }

    fn inner(&self) -> &dyn Store {
        match self {
            NodeStore::Local(s) => s,
            NodeStore::Postgres(s, _) => s,
        }
    }

    fn inner_mut(&mut self) -> &mut dyn Store {
        match self {
            NodeStore::Local(s) => s,
            NodeStore::Postgres(s, _) => s,
        }
    }
}

impl Store for NodeStore {
    fn get(&self, tree: Tree, key: &[u8]) -> Result<Option<Vec<u8>>, StoreError> {
        self.inner().get(tree, key)
    }

    fn put(&mut self, tree: Tree, key: &[u8], value: &[u8]) -> Result<(), StoreError> {
        self.inner_mut().put(tree, key, value)
    }

    fn delete(&mut self, tree: Tree, key: &[u8]) -> Result<(), StoreError> {
        self.inner_mut().delete(tree, key)
    }

    fn range(
        &self,
        tree: Tree,
        start: &[u8],
        end: Option<&[u8]>,
        limit: usize,
    ) -> Result<Pairs, StoreError> {
        self.inner().range(tree, start, end, limit)
    }

    fn range_rev(
        &self,
        tree: Tree,
        start: &[u8],
        end: Option<&[u8]>,
        limit: usize,
    ) -> Result<Pairs, StoreError> {
        self.inner().range_rev(tree, start, end, limit)
    }

    fn last(&self, tree: Tree) -> Result<Option<Pair>, StoreError> {
        self.inner().last(tree)
    }

    fn commit(&mut self) -> Result<(), StoreError> {
        self.inner_mut().commit()
    }

    fn commit_start(&mut self) -> Result<Option<SyncJob>, StoreError> {
        self.inner_mut().commit_start()
    }

    fn commit_finish(&mut self) -> Result<(), StoreError> {
        self.inner_mut().commit_finish()
    }
}
