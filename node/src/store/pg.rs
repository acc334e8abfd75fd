//! The PostgreSQL backend: every tree in one table `renkei_kv (tree, k, v)`, one group commit
//! one transaction (synchronous commit), reads of the group's own writes from an overlay.
//!
//! The `postgres` client runs its own runtime and must not be called from inside tokio, so
//! the connection lives on a thread of its own and the store sends it closures; the core's
//! task waits for the answer exactly as it waits for a disk read with the local store.
//!
//! With a [`Fence`] (active/standby, see [`super::lease`]) every commit first reads the lease
//! row under a share lock and refuses to write unless the fencing number is still this
//! node's: a node that was paused and deposed never commits again.
//!
//! Reads: a group's own writes come from its overlay; committed values (and absences) the
//! store has read or written before come from a bounded cache, which is exact because a
//! node's store is the only writer of its database — the lease and its fence see to that
//! (two stores writing one database without a lease would each keep their own view).
//!
//! Key order: `bytea` compares bytewise with the shorter key first on a tie, as `[u8]` does, so
//! range scans come back in the order the core expects.

use std::collections::BTreeMap;
use std::ops::Bound;
use std::sync::mpsc;

use postgres::Client;

use super::{Pair, Pairs, Store, StoreError, Tree};

/// The schema, created if missing (idempotent).
const SCHEMA: &str = "
SET client_min_messages TO warning;
CREATE TABLE IF NOT EXISTS renkei_kv (
    tree smallint NOT NULL,
    k bytea NOT NULL,
    v bytea NOT NULL,
    PRIMARY KEY (tree, k)
);
CREATE TABLE IF NOT EXISTS renkei_lease (
    id smallint PRIMARY KEY CHECK (id = 1),
    holder text NOT NULL,
    fence bigint NOT NULL,
    expires_at timestamptz NOT NULL
);";

/// The fencing number this node holds; commits are refused once another node holds a
/// higher one.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Fence(pub i64);

type Job = Box<dyn FnOnce(&mut Session) + Send>;

/// The connection and its prepared statements (prepared once per connection).
pub(crate) struct Session {
    /// The client.
    pub(crate) client: Client,
    stmts: BTreeMap<String, postgres::Statement>,
}

impl Session {
    /// The statement for `sql`, prepared on first use.
    pub(crate) fn stmt(&mut self, sql: &str) -> Result<postgres::Statement, postgres::Error> {
        if let Some(s) = self.stmts.get(sql) {
            return Ok(s.clone());
        }
        let s = self.client.prepare(sql)?;
        self.stmts.insert(sql.to_owned(), s.clone());
        Ok(s)
    }
}

/// A connection on its own thread.
pub(crate) struct Conn {
    tx: Option<mpsc::Sender<Job>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Conn {
    /// Connects to `url` (a libpq-style URL or key=value string) and creates the schema.
    /// `session` is SQL run once after connecting (session settings).
    pub(crate) fn connect(url: &str, name: &str, session: &str) -> Result<Conn, StoreError> {
        let (tx, rx) = mpsc::channel::<Job>();
        let (ready_tx, ready_rx) = mpsc::sync_channel::<Result<(), StoreError>>(1);
        let (url, check) = split_tls(url);
        let tls = tls_connector(&check)?;
        let settings = session.to_owned();
        let thread = std::thread::Builder::new()
            .name(format!("renkei-pg-{name}"))
            .spawn(move || {
                let mut session = match Client::connect(&url, tls)
                    .and_then(|mut c| c.batch_execute(SCHEMA).map(|()| c))
                    .and_then(|mut c| c.batch_execute(&settings).map(|()| c))
                {
                    Ok(client) => Session {
                        client,
                        stmts: Default::default(),
                    },
                    Err(e) => {
                        let _ = ready_tx.send(Err(pg_error(&e)));
                        return;
                    }
                };
                let _ = ready_tx.send(Ok(()));
                while let Ok(job) = rx.recv() {
                    job(&mut session);
                }
            })
            .map_err(|e| StoreError::Backend(format!("postgres: cannot start a thread: {e}")))?;
        ready_rx.recv().map_err(|_| {
            StoreError::Backend("postgres: the connection thread stopped".to_owned())
        })??;
        Ok(Conn {
            tx: Some(tx),
            thread: Some(thread),
        })
    }

    /// Runs `f` on the connection's thread and waits for its answer.
    pub(crate) fn call<R: Send + 'static>(
        &self,
        f: impl FnOnce(&mut Session) -> Result<R, postgres::Error> + Send + 'static,
    ) -> Result<R, StoreError> {
        let (tx, rx) = mpsc::sync_channel(1);
        let job: Job = Box::new(move |c| {
            let _ = tx.send(f(c));
        });
        self.tx
            .as_ref()
            .and_then(|t| t.send(job).ok())
            .ok_or_else(|| StoreError::Backend("postgres: connection closed".to_owned()))?;
        rx.recv()
            .map_err(|_| StoreError::Backend("postgres: the connection thread stopped".to_owned()))?
            .map_err(|e| pg_error(&e))
    }
}

impl Drop for Conn {
    fn drop(&mut self) {
        self.tx = None;
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// How the server's certificate is checked, as libpq does for each `sslmode`.
#[derive(Clone, Debug, PartialEq, Eq)]
struct TlsCheck {
    /// `sslrootcert`: the CAs to trust (PEM); the system's CAs when absent.
    root: Option<std::path::PathBuf>,
    /// Verify the chain: `verify-ca`, `verify-full`, or any mode with `sslrootcert`.
    chain: bool,
    /// Verify the host name too: `verify-full`.
    name: bool,
}

/// The connection string as the driver takes it, and how to check the server.
/// The driver knows `sslmode=disable|prefer|require` only and no `sslrootcert`: libpq's
/// `verify-ca` / `verify-full` become `require` plus a check, `sslrootcert` is taken out.
fn split_tls(url: &str) -> (String, TlsCheck) {
    let mut check = TlsCheck {
        root: None,
        chain: false,
        name: false,
    };
    let mut keep = |pair: &str| -> Option<String> {
        match pair.split_once('=') {
            Some(("sslrootcert", v)) => {
                check.root = Some(std::path::PathBuf::from(v));
                None
            }
            Some(("sslmode", mode @ ("verify-ca" | "verify-full"))) => {
                check.chain = true;
                check.name = mode == "verify-full";
                Some("sslmode=require".to_owned())
            }
            _ => Some(pair.to_owned()),
        }
    };
    let cleaned = if let Some((base, query)) = url
        .split_once('?')
        .filter(|_| url.starts_with("postgres://") || url.starts_with("postgresql://"))
    {
        let q: Vec<String> = query.split('&').filter_map(&mut keep).collect();
        if q.is_empty() {
            base.to_owned()
        } else {
            format!("{base}?{}", q.join("&"))
        }
    } else if url.contains("://") {
        url.to_owned()
    } else {
        url.split_whitespace()
            .filter_map(&mut keep)
            .collect::<Vec<_>>()
            .join(" ")
    };
    // libpq: with a root certificate file, `require` (and `prefer`) verify like verify-ca.
    check.chain |= check.root.is_some();
    (cleaned, check)
}

/// TLS for the connection: used when the server offers it (`sslmode=prefer`, the default)
/// or always (`require` and the `verify-` modes), never with `sslmode=disable`. The
/// certificate is checked as [`TlsCheck`] says; unchecked (libpq's `prefer` / `require`
/// without `sslrootcert`), the connection is encrypted but not authenticated.
fn tls_connector(check: &TlsCheck) -> Result<tokio_postgres_rustls::MakeRustlsConnect, StoreError> {
    use rustls::pki_types::{CertificateDer, pem::PemObject};
    use std::sync::Arc;
    let tls_err = |e: String| StoreError::Backend(format!("postgres TLS: {e}"));
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let chain = if check.chain {
        let mut roots = rustls::RootCertStore::empty();
        match &check.root {
            Some(path) => {
                let named = |e: &dyn std::fmt::Display| tls_err(format!("{}: {e}", path.display()));
                for c in CertificateDer::pem_file_iter(path).map_err(|e| named(&e))? {
                    roots
                        .add(c.map_err(|e| named(&e))?)
                        .map_err(|e| named(&e))?;
                }
                if roots.is_empty() {
                    return Err(named(&"no certificate in it"));
                }
            }
            None => {
                for c in rustls_native_certs::load_native_certs().certs {
                    let _ = roots.add(c);
                }
            }
        }
        let v = rustls::client::WebPkiServerVerifier::builder_with_provider(
            Arc::new(roots),
            provider.clone(),
        )
        .build()
        .map_err(|e| tls_err(e.to_string()))?;
        Some(v)
    } else {
        None
    };
    let verifier = ServerCheck {
        chain,
        name: check.name,
        provider: provider.clone(),
    };
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| tls_err(e.to_string()))?
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(verifier))
        .with_no_client_auth();
    Ok(tokio_postgres_rustls::MakeRustlsConnect::new(config))
}

/// The server certificate check of one `sslmode`; the handshake's signatures are always
/// verified (the key exchange is bound to the certificate presented).
#[derive(Debug)]
struct ServerCheck {
    chain: Option<std::sync::Arc<rustls::client::WebPkiServerVerifier>>,
    name: bool,
    provider: std::sync::Arc<rustls::crypto::CryptoProvider>,
}

impl rustls::client::danger::ServerCertVerifier for ServerCheck {
    fn verify_server_cert(
        &self,
        end_entity: &rustls::pki_types::CertificateDer<'_>,
        intermediates: &[rustls::pki_types::CertificateDer<'_>],
        server_name: &rustls::pki_types::ServerName<'_>,
        ocsp: &[u8],
        now: rustls::pki_types::UnixTime,
    ) -> Result<rustls::client::danger::ServerCertVerified, rustls::Error> {
        use rustls::{CertificateError as C, Error as E};
        let Some(chain) = &self.chain else {
            return Ok(rustls::client::danger::ServerCertVerified::assertion());
        };
        match chain.verify_server_cert(end_entity, intermediates, server_name, ocsp, now) {
            Err(E::InvalidCertificate(C::NotValidForName | C::NotValidForNameContext { .. }))
                if !self.name =>
            {
                Ok(rustls::client::danger::ServerCertVerified::assertion())
            }
            r => r,
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &rustls::pki_types::CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &rustls::pki_types::CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
        self.provider
            .signature_verification_algorithms
            .supported_schemes()
    }
}

/// A PostgreSQL error with the server's message when there is one.
pub(crate) fn pg_error(e: &postgres::Error) -> StoreError {
    match e.as_db_error() {
        Some(db) => {
            StoreError::Backend(format!("postgres: {} ({})", db.message(), db.code().code()))
        }
        None => {
            // The driver's message is general ("error performing TLS handshake"); the
            // cause ("invalid peer certificate: UnknownIssuer") is in its sources.
            let mut text = format!("postgres: {e}");
            let mut cause = std::error::Error::source(e);
            while let Some(c) = cause {
                text.push_str(&format!(": {c}"));
                cause = c.source();
            }
            StoreError::Backend(text)
        }
    }
}

/// The tree's number in the table: its position in [`Tree::ALL`] (stable: new trees go last).
fn tree_id(tree: Tree) -> i16 {
    tree as i16
}

/// The store on PostgreSQL.
pub struct PgStore {
    conn: Conn,
    /// This group's writes (`None` = deleted), applied by the next commit.
    overlay: BTreeMap<(Tree, Vec<u8>), Option<Vec<u8>>>,
    fence: Option<Fence>,
    /// Committed values (and absences) read or written before: a node's store is the only
    /// writer of its database (the lease sees to it), so they stay true until it writes.
    cache: std::sync::Mutex<ReadCache>,
}

/// The read cache's budget; past it the cache starts afresh.
const READ_CACHE_BYTES: usize = 32 << 20;
/// Values written larger than this are dropped from the cache instead of copied into it.
const READ_CACHE_VALUE_MAX: usize = 4096;

/// What a commit teaches the cache about one key: its value or absence (`Some`), or to
/// forget it (`None`: a large value).
type Learnt = Option<Option<Vec<u8>>>;

#[derive(Default)]
struct ReadCache {
    map: BTreeMap<(Tree, Vec<u8>), Option<Vec<u8>>>,
    bytes: usize,
    /// The largest committed key of a tree (`None`: the tree is empty), where known: a scan
    /// that starts past it needs no query (the directory's "bindings since N" asks that of
    /// the binding log at every sync).
    tails: BTreeMap<Tree, Option<Vec<u8>>>,
}

impl ReadCache {
    fn size(key: &[u8], v: &Option<Vec<u8>>) -> usize {
        64 + key.len() + v.as_ref().map_or(0, Vec::len)
    }

    fn insert(&mut self, tree: Tree, key: Vec<u8>, v: Option<Vec<u8>>) {
        let add = Self::size(&key, &v);
        if self.bytes + add > READ_CACHE_BYTES {
            self.clear();
        }
        self.bytes += add;
        if let Some(old) = self.map.insert((tree, key), v) {
            self.bytes -= old.as_ref().map_or(0, Vec::len) + 64;
        }
    }

    fn remove(&mut self, tree: Tree, key: Vec<u8>) {
        if let Some(old) = self.map.remove(&(tree, key.clone())) {
            self.bytes -= Self::size(&key, &old);
        }
    }

    fn clear(&mut self) {
        self.map.clear();
        self.bytes = 0;
        self.tails.clear();
    }

    /// A committed write of `key` (`put`: written, else deleted) moves the tree's tail.
    fn wrote(&mut self, tree: Tree, key: &[u8], put: bool) {
        let Some(tail) = self.tails.get_mut(&tree) else {
            return;
        };
        if put {
            if tail.as_deref().is_none_or(|t| key > t) {
                *tail = Some(key.to_vec());
            }
        } else if tail.as_deref() == Some(key) {
            // The largest key is gone; the next one is not known here.
            self.tails.remove(&tree);
        }
    }
}

impl PgStore {
    /// Connects and creates the schema if missing. With `fence`, every commit checks that
    /// the lease still carries it.
    pub fn open(url: &str, fence: Option<Fence>) -> Result<PgStore, StoreError> {
        Self::open_with(url, fence, "")
    }

    /// Like [`PgStore::open`] for a node under a lease of `ttl`: a transaction left open
    /// longer than that (the process was paused or lost mid-commit) is ended by the server,
    /// so its locks never keep a standby from taking over.
    pub fn open_leased(
        url: &str,
        fence: Fence,
        ttl: std::time::Duration,
    ) -> Result<PgStore, StoreError> {
        Self::open_with(
            url,
            Some(fence),
            &format!(
                "SET idle_in_transaction_session_timeout = {}",
                ttl.as_millis().max(1)
            ),
        )
    }

    fn open_with(url: &str, fence: Option<Fence>, session: &str) -> Result<PgStore, StoreError> {
        // Whatever the server's default: a commit returns once it is durable (and on a
        // synchronous replica, where the server has one).
        let session = format!("SET synchronous_commit TO on; {session}");
        Ok(PgStore {
            conn: Conn::connect(url, "store", &session)?,
            overlay: BTreeMap::new(),
            fence,
            cache: Default::default(),
        })
    }

    /// The size of the table with its indexes and TOAST data, bytes.
    pub fn size_bytes(&self) -> Result<u64, StoreError> {
        let n: i64 = self.conn.call(|c| {
            Ok(c.client
                .query_one("SELECT pg_total_relation_size('renkei_kv')", &[])?
                .get(0))
        })?;
        Ok(u64::try_from(n).unwrap_or(0))
    }

    /// The fencing number this store commits under.
    pub fn fence(&self) -> Option<Fence> {
        self.fence
    }

    /// Rows of `tree` in `[start, end)` from the database, at most `limit`, forward or
    /// backward.
    fn fetch(
        &self,
        tree: Tree,
        start: &[u8],
        end: Option<&[u8]>,
        limit: usize,
        rev: bool,
    ) -> Result<Pairs, StoreError> {
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        let order = if rev { "DESC" } else { "ASC" };
        let sql = match end {
            Some(_) => format!(
                "SELECT k, v FROM renkei_kv WHERE tree = $1 AND k >= $2 AND k < $3 \
                 ORDER BY k {order} LIMIT $4"
            ),
            None => format!(
                "SELECT k, v FROM renkei_kv WHERE tree = $1 AND k >= $2 \
                 ORDER BY k {order} LIMIT $3"
            ),
        };
        let (t, start, end) = (tree_id(tree), start.to_vec(), end.map(<[u8]>::to_vec));
        self.conn.call(move |c| {
            let stmt = c.stmt(&sql)?;
            let rows = match &end {
                Some(end) => c.client.query(&stmt, &[&t, &start, end, &limit])?,
                None => c.client.query(&stmt, &[&t, &start, &limit])?,
            };
            Ok(rows
                .into_iter()
                .map(|r| (r.get::<_, Vec<u8>>(0), r.get::<_, Vec<u8>>(1)))
                .collect())
        })
    }

    /// Whether `start` lies past the tree's largest committed key (learnt with one query
    /// the first time, then kept by the commits).
    fn past_tail(&self, tree: Tree, start: &[u8]) -> Result<bool, StoreError> {
        let known = self
            .cache
            .lock()
            .ok()
            .and_then(|c| c.tails.get(&tree).cloned());
        let tail = match known {
            Some(t) => t,
            None => {
                let t = tree_id(tree);
                let tail: Option<Vec<u8>> = self.conn.call(move |c| {
                    let stmt =
                        c.stmt("SELECT k FROM renkei_kv WHERE tree = $1 ORDER BY k DESC LIMIT 1")?;
                    Ok(c.client.query_opt(&stmt, &[&t])?.map(|r| r.get(0)))
                })?;
                if let Ok(mut c) = self.cache.lock() {
                    c.tails.insert(tree, tail.clone());
                }
                tail
            }
        };
        Ok(tail.as_deref().is_none_or(|t| start > t))
    }

    /// A range scan merged with the overlay.
    fn scan(
        &self,
        tree: Tree,
        start: &[u8],
        end: Option<&[u8]>,
        limit: usize,
        rev: bool,
    ) -> Result<Pairs, StoreError> {
        if limit == 0 || end.is_some_and(|e| e <= start) {
            return Ok(Vec::new());
        }
        let lo = Bound::Included((tree, start.to_vec()));
        let hi = match end {
            Some(e) => Bound::Excluded((tree, e.to_vec())),
            None => match Tree::ALL.get(tree as usize + 1) {
                Some(next) => Bound::Excluded((*next, Vec::new())),
                None => Bound::Unbounded,
            },
        };
        let ours: Vec<(&Vec<u8>, &Option<Vec<u8>>)> = self
            .overlay
            .range((lo, hi))
            .map(|((_, k), v)| (k, v))
            .collect();
        // Each overlay entry can hide at most one stored row: reading that many more rows
        // than asked is enough for the first `limit` of the merge.
        let stored = if self.past_tail(tree, start)? {
            Vec::new()
        } else {
            self.fetch(tree, start, end, limit.saturating_add(ours.len()), rev)?
        };
        let mut merged: BTreeMap<Vec<u8>, Vec<u8>> = stored.into_iter().collect();
        for (k, v) in ours {
            match v {
                Some(v) => merged.insert(k.clone(), v.clone()),
                None => merged.remove(k),
            };
        }
        Ok(if rev {
            merged.into_iter().rev().take(limit).collect()
        } else {
            merged.into_iter().take(limit).collect()
        })
    }
}

impl Store for PgStore {
    fn get(&self, tree: Tree, key: &[u8]) -> Result<Option<Vec<u8>>, StoreError> {
        let id = (tree, key.to_vec());
        if let Some(v) = self.overlay.get(&id) {
            return Ok(v.clone());
        }
        if let Some(v) = self.cache.lock().ok().and_then(|c| c.map.get(&id).cloned()) {
            return Ok(v);
        }
        let (t, k) = (tree_id(tree), key.to_vec());
        let v = self.conn.call(move |c| {
            let stmt = c.stmt("SELECT v FROM renkei_kv WHERE tree = $1 AND k = $2")?;
            Ok(c.client
                .query_opt(&stmt, &[&t, &k])?
                .map(|r| r.get::<_, Vec<u8>>(0)))
        })?;
        if let Ok(mut c) = self.cache.lock() {
            c.insert(tree, id.1, v.clone());
        }
        Ok(v)
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

    fn last(&self, tree: Tree) -> Result<Option<Pair>, StoreError> {
        Ok(self.scan(tree, &[], None, 1, true)?.into_iter().next())
    }

    fn commit(&mut self) -> Result<(), StoreError> {
        // Even a group that wrote nothing checks the fence: a deposed node must not release
        // answers read from a state another node has moved on from.
        if self.overlay.is_empty() && self.fence.is_none() {
            return Ok(());
        }
        let (mut put_t, mut put_k, mut put_v) = (Vec::new(), Vec::new(), Vec::new());
        let (mut del_t, mut del_k) = (Vec::new(), Vec::new());
        // What the cache learns once the commit has landed: small values copied, large ones
        // dropped (read again if ever needed).
        let mut learnt: Vec<(Tree, Vec<u8>, bool, Learnt)> = Vec::with_capacity(self.overlay.len());
        for ((tree, k), v) in std::mem::take(&mut self.overlay) {
            learnt.push((
                tree,
                k.clone(),
                v.is_some(),
                match &v {
                    Some(v) if v.len() > READ_CACHE_VALUE_MAX => None,
                    other => Some(other.clone()),
                },
            ));
            match v {
                Some(v) => {
                    put_t.push(tree_id(tree));
                    put_k.push(k);
                    put_v.push(v);
                }
                None => {
                    del_t.push(tree_id(tree));
                    del_k.push(k);
                }
            }
        }
        let fence = self.fence;
        let outcome = self.conn.call(move |c| {
            let mut tx = c.client.transaction()?;
            if let Some(Fence(mine)) = fence {
                let held: Option<i64> = tx
                    .query_opt("SELECT fence FROM renkei_lease WHERE id = 1 FOR SHARE", &[])?
                    .map(|r| r.get(0));
                if held != Some(mine) {
                    tx.rollback()?;
                    return Ok(Some(held));
                }
            }
            if !put_t.is_empty() {
                tx.execute(
                    "INSERT INTO renkei_kv (tree, k, v) \
                     SELECT * FROM unnest($1::smallint[], $2::bytea[], $3::bytea[]) \
                     ON CONFLICT (tree, k) DO UPDATE SET v = EXCLUDED.v",
                    &[&put_t, &put_k, &put_v],
                )?;
            }
            if !del_t.is_empty() {
                tx.execute(
                    "DELETE FROM renkei_kv USING unnest($1::smallint[], $2::bytea[]) AS d(t, k) \
                     WHERE renkei_kv.tree = d.t AND renkei_kv.k = d.k",
                    &[&del_t, &del_k],
                )?;
            }
            tx.commit()?;
            Ok(None)
        });
        let Ok(mut cache) = self.cache.lock() else {
            return Err(StoreError::Backend(
                "the read cache's lock is poisoned".into(),
            ));
        };
        match outcome {
            Ok(None) => {
                for (tree, k, put, v) in learnt {
                    cache.wrote(tree, &k, put);
                    match v {
                        Some(v) => cache.insert(tree, k, v),
                        None => cache.remove(tree, k),
                    }
                }
                Ok(())
            }
            // Whether it landed is unknown: the cache forgets everything.
            Err(e) => {
                cache.clear();
                Err(e)
            }
            Ok(Some(held)) => Err(StoreError::Backend(format!(
                "deposed: this node's lease (fence {}) is no longer held (the lease now carries {}); \
                 nothing was committed",
                fence.map_or(0, |f| f.0),
                held.map_or("no fence".to_owned(), |f| format!("fence {f}"))
            ))),
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::super::lease::{Attempt, Lease};
    use super::*;
    use std::time::Duration;

    /// A fresh database on the throwaway cluster named by `RENKEI_TEST_PG`
    /// (`scripts/pg-throwaway start`); `None` (the test says so and passes) without one,
    /// unless `RENKEI_REQUIRE_PG=1` (CI), where a missing cluster fails.
    pub(crate) fn fresh_db(tag: &str) -> Option<String> {
        let Ok(admin) = std::env::var("RENKEI_TEST_PG") else {
            assert!(
                std::env::var("RENKEI_REQUIRE_PG").is_err(),
                "RENKEI_REQUIRE_PG is set but RENKEI_TEST_PG is not"
            );
            eprintln!("skipped: no RENKEI_TEST_PG (eval \"$(scripts/pg-throwaway start)\")");
            return None;
        };
        let name = format!(
            "renkei_{tag}_{}_{}",
            std::process::id(),
            NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
        );
        let mut c = Client::connect(&admin, postgres::NoTls).unwrap();
        c.batch_execute(&format!("DROP DATABASE IF EXISTS {name}"))
            .unwrap();
        c.batch_execute(&format!("CREATE DATABASE {name}")).unwrap();
        let (base, _) = admin.rsplit_once('/').unwrap();
        Some(format!("{base}/{name}"))
    }
    static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);

    #[test]
    fn sslmode_and_sslrootcert_become_a_check() {
        let (u, c) =
            split_tls("postgres://r@db/renkei?sslmode=verify-full&sslrootcert=/etc/ca.pem");
        assert_eq!(u, "postgres://r@db/renkei?sslmode=require");
        assert_eq!(c.root.as_deref(), Some(std::path::Path::new("/etc/ca.pem")));
        assert!(c.chain && c.name);
        let (u, c) = split_tls("host=db1,db2 sslrootcert=/ca.pem dbname=renkei");
        assert_eq!(u, "host=db1,db2 dbname=renkei");
        assert!(
            c.chain && !c.name,
            "a root file alone checks the chain, as libpq"
        );
        let (u, c) = split_tls("postgres://r@db/renkei?sslmode=verify-ca");
        assert_eq!(u, "postgres://r@db/renkei?sslmode=require");
        assert!(c.chain && !c.name && c.root.is_none());
        let (u, c) = split_tls("postgres://r@db/renkei");
        assert_eq!(u, "postgres://r@db/renkei");
        assert!(!c.chain && !c.name && c.root.is_none());
        assert_eq!(
            split_tls("postgres://r@db/x?sslrootcert=/a").0,
            "postgres://r@db/x"
        );
    }

    /// The throwaway cluster's test CAs (it offers TLS); `None` like `fresh_db`.
    fn test_cas() -> Option<(String, String)> {
        match (
            std::env::var("RENKEI_TEST_PG_CA"),
            std::env::var("RENKEI_TEST_PG_OTHER_CA"),
        ) {
            (Ok(ca), Ok(other)) => Some((ca, other)),
            _ => {
                assert!(
                    std::env::var("RENKEI_REQUIRE_PG").is_err(),
                    "RENKEI_REQUIRE_PG is set but RENKEI_TEST_PG_CA is not"
                );
                None
            }
        }
    }

    #[test]
    fn tls_to_the_database_verifies_the_server() {
        let (Some(url), Some((ca, other))) = (fresh_db("tls"), test_cas()) else {
            return;
        };
        let on_tls = |conn: &Conn| -> bool {
            conn.call(|s| {
                s.client
                    .query_one(
                        "SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()",
                        &[],
                    )
                    .map(|r| r.get(0))
            })
            .unwrap()
        };
        // verify-full with the right CA: the session is encrypted, and the store works.
        let good = format!("{url}?sslmode=verify-full&sslrootcert={ca}");
        assert!(on_tls(&Conn::connect(&good, "tls", "").unwrap()));
        let mut s = PgStore::open(&good, None).unwrap();
        s.put(Tree::Dedup, b"k", b"v").unwrap();
        s.commit().unwrap();
        drop(s);
        assert!(on_tls(
            &Conn::connect(&format!("{url}?sslmode=prefer&sslrootcert={ca}"), "tls", "").unwrap()
        ));
        // No sslmode (prefer) and no root file: encrypted without checking, as libpq does
        // (the cluster's certificate is from a private CA).
        assert!(on_tls(&Conn::connect(&url, "tls", "").unwrap()));
        // The host name: verify-full refuses a name the certificate does not carry,
        // verify-ca does not look at it.
        let (base, db) = url.rsplit_once('/').unwrap();
        let port = base.rsplit_once(':').unwrap().1;
        let by_name = |mode: &str| {
            format!(
                "host=db.renkei.invalid hostaddr=127.0.0.1 port={port} user=postgres \
                 dbname={db} sslmode={mode} sslrootcert={ca}"
            )
        };
        let e = PgStore::open(&by_name("verify-full"), None)
            .err()
            .unwrap()
            .to_string();
        assert!(e.contains("certificate"), "{e}");
        assert!(on_tls(
            &Conn::connect(&by_name("verify-ca"), "tls", "").unwrap()
        ));
        // A server certificate from another CA is refused, with the reason.
        let bad = format!("{url}?sslmode=require&sslrootcert={other}");
        let e = PgStore::open(&bad, None).err().unwrap().to_string();
        assert!(e.contains("certificate"), "{e}");
        // A root file without certificates is named.
        let e = PgStore::open(
            &format!("{url}?sslmode=require&sslrootcert=/dev/null"),
            None,
        )
        .err()
        .unwrap()
        .to_string();
        assert!(e.contains("/dev/null"), "{e}");
        // sslmode=disable: plain, as asked.
        assert!(!on_tls(
            &Conn::connect(&format!("{url}?sslmode=disable"), "tls", "").unwrap()
        ));
    }

    #[test]
    fn conformance() {
        let Some(first) = fresh_db("conf") else {
            return;
        };
        let last = std::cell::RefCell::new(first.clone());
        let mut used = Some(first);
        let open = || {
            let url = used.take().or_else(|| fresh_db("conf")).unwrap();
            *last.borrow_mut() = url.clone();
            PgStore::open(&url, None).unwrap()
        };
        let reopen = |s: PgStore| {
            drop(s);
            PgStore::open(&last.borrow(), None).unwrap()
        };
        crate::store::conformance::all(open, reopen);
    }

    #[test]
    fn the_read_cache_never_answers_older_than_the_last_commit() {
        let Some(url) = fresh_db("cache") else {
            return;
        };
        let mut s = PgStore::open(&url, None).unwrap();
        let big = vec![7u8; READ_CACHE_VALUE_MAX + 1];
        for round in 0..3u8 {
            // A remembered absence, a remembered small value, a large value not kept.
            assert_eq!(
                s.get(Tree::Dedup, b"k").unwrap().map(|v| v[0]),
                (round > 0).then(|| round - 1)
            );
            s.put(Tree::Dedup, b"k", &[round]).unwrap();
            s.put(
                Tree::Envelopes,
                b"big",
                &big[..big.len() - usize::from(round)],
            )
            .unwrap();
            s.commit().unwrap();
            assert_eq!(s.get(Tree::Dedup, b"k").unwrap(), Some(vec![round]));
            assert_eq!(
                s.get(Tree::Envelopes, b"big").unwrap().unwrap().len(),
                big.len() - usize::from(round)
            );
        }
        s.delete(Tree::Dedup, b"k").unwrap();
        s.commit().unwrap();
        assert_eq!(s.get(Tree::Dedup, b"k").unwrap(), None);
        // Scans that start past a tree's last committed key see what later commits add.
        let keys = |p: Pairs| p.into_iter().map(|(k, _)| k).collect::<Vec<_>>();
        assert!(
            s.range(Tree::BindingLog, b"4", None, 10)
                .unwrap()
                .is_empty()
        );
        for k in [b"1", b"2", b"3"] {
            s.put(Tree::BindingLog, k, b"v").unwrap();
        }
        assert_eq!(
            keys(s.range(Tree::BindingLog, b"2", None, 10).unwrap()).len(),
            2
        );
        s.commit().unwrap();
        assert!(
            s.range(Tree::BindingLog, b"4", None, 10)
                .unwrap()
                .is_empty()
        );
        s.put(Tree::BindingLog, b"5", b"v").unwrap();
        s.commit().unwrap();
        assert_eq!(
            keys(s.range(Tree::BindingLog, b"4", None, 10).unwrap()),
            vec![b"5".to_vec()]
        );
        s.delete(Tree::BindingLog, b"5").unwrap();
        s.delete(Tree::BindingLog, b"3").unwrap();
        s.commit().unwrap();
        assert!(
            s.range(Tree::BindingLog, b"4", None, 10)
                .unwrap()
                .is_empty()
        );
        assert_eq!(
            keys(s.range(Tree::BindingLog, b"", None, 10).unwrap()),
            vec![b"1".to_vec(), b"2".to_vec()]
        );
        assert_eq!(s.last(Tree::BindingLog).unwrap().unwrap().0, b"2");
        // What another connection reads agrees.
        let other = PgStore::open(&url, None).unwrap();
        assert_eq!(other.get(Tree::Dedup, b"k").unwrap(), None);
        assert_eq!(
            other.get(Tree::Envelopes, b"big").unwrap().unwrap().len(),
            big.len() - 2
        );
    }

    #[test]
    fn a_deposed_node_commits_nothing_and_says_so() {
        let Some(url) = fresh_db("fence") else {
            return;
        };
        let ttl = Duration::from_millis(300);
        let mut a = Lease::connect(&url, "node-a", ttl).unwrap();
        let Attempt::Taken(fa) = a.try_take().unwrap() else {
            panic!("a free lease is taken")
        };
        let mut b = Lease::connect(&url, "node-b", ttl).unwrap();
        match b.try_take().unwrap() {
            Attempt::HeldBy { holder, .. } => assert_eq!(holder, "node-a"),
            other => panic!("a held lease is not taken: {other:?}"),
        }
        let mut sa = PgStore::open(&url, Some(fa)).unwrap();
        sa.put(Tree::Inbox, b"by-a", b"1").unwrap();
        sa.commit().unwrap();
        assert!(a.renew().unwrap());
        // node-a pauses past its expiry; node-b takes over with the next fencing number.
        std::thread::sleep(ttl * 2);
        let Attempt::Taken(fb) = b.try_take().unwrap() else {
            panic!("an expired lease is taken")
        };
        assert_eq!(fb.0, fa.0 + 1);
        // node-a wakes up: its renewal and its commit are refused, nothing of it lands.
        assert!(!a.renew().unwrap());
        sa.put(Tree::Inbox, b"by-a-late", b"2").unwrap();
        let err = sa.commit().unwrap_err().to_string();
        assert!(err.contains("deposed"), "{err}");
        // A group with no writes is refused too (no answers from a stale state).
        let err = sa.commit().unwrap_err().to_string();
        assert!(err.contains("deposed"), "{err}");
        let mut sb = PgStore::open(&url, Some(fb)).unwrap();
        assert_eq!(sb.get(Tree::Inbox, b"by-a-late").unwrap(), None);
        assert_eq!(
            sb.get(Tree::Inbox, b"by-a").unwrap().as_deref(),
            Some(&b"1"[..])
        );
        sb.put(Tree::Inbox, b"by-b", b"3").unwrap();
        sb.commit().unwrap();
        // A clean stop hands the lease over at once.
        b.release().unwrap();
        assert!(matches!(a.try_take().unwrap(), Attempt::Taken(Fence(n)) if n == fb.0 + 1));
        // node-a's old store still may not commit: its fence is the old one.
        assert!(sa.commit().is_err());
    }
}
