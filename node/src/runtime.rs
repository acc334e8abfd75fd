//! The production driver: tokio around the sans-IO core, with the sled store, the HTTP API
//! and (when federated) the libp2p network.
//!
//! One task owns the core. It collects a batch of inputs (API calls, network events, timer
//! ticks), feeds them, commits the store once (group commit: one flush per batch), and only
//! then releases the batch's effects — replies, responses carrying receipts, sends. A store
//! error is fatal: the task stops without committing, and the process exits (a crash, as the
//! durability rule assumes).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use renkei_protocol::rng::Entropy;
use tokio::sync::{mpsc, oneshot};

use crate::config::{ConfigError, NodeConfig};
use renkei_protocol::ids::OperatorId;
use renkei_protocol::wire::{Request, Response};

use crate::core::{
    ApiCommand, ApiReply, Auth, Batch, Committing, Core, Effect, Input, RosterPeer, Synced,
};
use crate::keyfile::{self, KeyFileError};
use crate::store::{DiskStore, NodeStore, StoreError};

/// File in the node directory listing the libp2p addresses actually bound.
pub const LISTEN_FILE: &str = "listen.addrs";

/// Bound of the API command channel.
pub const API_QUEUE_MAX: usize = 1024;

/// A failure that stops the node.
#[derive(Debug, thiserror::Error)]
pub enum RuntimeError {
    /// Configuration.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// Key file.
    #[error(transparent)]
    Key(#[from] KeyFileError),
    /// Store.
    #[error("store: {0}")]
    Store(#[from] StoreError),
    /// Network or HTTP setup.
    #[error("{0}")]
    Io(String),
}

/// Milliseconds since the Unix epoch (the only clock read; the core never reads it).
pub fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

/// One API call with its reply channel.
pub struct ApiCall {
    /// Who.
    pub auth: Auth,
    /// What.
    pub cmd: ApiCommand,
    /// Where the reply goes (after commit).
    pub reply: oneshot::Sender<ApiReply>,
}

/// Work on the store between two batches (a consistent view: nothing commits meanwhile).
pub type StoreJob = Box<dyn FnOnce(&NodeStore) + Send>;

/// A cloneable handle to the core task.
#[derive(Clone)]
pub struct CoreHandle {
    tx: mpsc::Sender<ApiCall>,
    jobs: mpsc::Sender<StoreJob>,
    /// When the core started its current batch (ms since the epoch), 0 while it waits for
    /// inputs, 1 once it has stopped.
    busy_since: Arc<AtomicU64>,
    load: Arc<CoreLoad>,
}

/// Where the core's thread spends its time, for `/metrics` (and `renkei bench`): deciding
/// (handling inputs) against committing (the store's flush), in nanoseconds since start.
#[derive(Debug, Default)]
pub struct CoreLoad {
    /// Batches handled.
    pub batches: AtomicU64,
    /// Inputs handled.
    pub inputs: AtomicU64,
    /// Time spent handling inputs.
    pub handle_ns: AtomicU64,
    /// Time spent committing batches.
    pub commit_ns: AtomicU64,
    /// Each commit's duration.
    pub commits: crate::histogram::Histogram,
}

impl CoreHandle {
    /// How long the core has been on its current batch (`None`: waiting for inputs). A core
    /// that has stopped reports the time since the epoch.
    pub fn stalled_for(&self) -> Option<Duration> {
        match self.busy_since.load(Ordering::Relaxed) {
            0 => None,
            t => Some(Duration::from_millis(now_ms().saturating_sub(t))),
        }
    }

    /// Where the core's thread has spent its time.
    pub fn load(&self) -> &CoreLoad {
        &self.load
    }

    /// Runs `f` on the store between two batches of the core (so it sees the state after
    /// one commit and nothing changes while it runs; inputs wait). `None` if the core has
    /// stopped.
    pub async fn with_store<R: Send + 'static>(
        &self,
        f: impl FnOnce(&NodeStore) -> R + Send + 'static,
    ) -> Option<R> {
        let (tx, rx) = oneshot::channel();
        let job: StoreJob = Box::new(move |store| {
            let _ = tx.send(f(store));
        });
        self.jobs.send(job).await.ok()?;
        rx.await.ok()
    }

    /// Runs one API command; the reply comes after the batch's commit.
    pub async fn call(&self, auth: Auth, cmd: ApiCommand) -> ApiReply {
        let (reply, rx) = oneshot::channel();
        if self.tx.send(ApiCall { auth, cmd, reply }).await.is_err() {
            return ApiReply::Internal("the node is shutting down".into());
        }
        rx.await
            .unwrap_or_else(|_| ApiReply::Internal("the node stopped before replying".into()))
    }
}

/// Opens the store of a node directory, as configured. A PostgreSQL store is opened only if
/// its lease is free (no node of this operator is active): offline commands never write
/// beside a running node.
pub fn open_store(dir: &Path, cfg: &NodeConfig) -> Result<NodeStore, StoreError> {
    let Some(url) = cfg.store.postgres_url().map_err(config_error)? else {
        return DiskStore::open_tuned(
            &store_dir(dir),
            cfg.limits.store_cache_bytes,
            cfg.limits.store_memtable_bytes,
            cfg.limits.store_segment_bytes,
        )
        .map(NodeStore::Local);
    };
    let mut active = String::new();
    let me = cfg.store.node_name(cfg.http);
    // A lease that is not renewed (its node was just killed) is waited out; a node that
    // renews it is running, and the command stops.
    let ttl = cfg.store.lease_ttl();
    let give_up = std::time::Instant::now() + ttl + Duration::from_secs(1);
    NodeStore::postgres(url, &me, ttl, |holder, _| {
        active = holder.to_owned();
        std::thread::sleep(Duration::from_millis(200));
        std::time::Instant::now() < give_up
    })?
    .ok_or_else(|| {
        StoreError::Backend(format!(
            "node {active:?} holds this operator's lease on the database (it is the active node): \
             stop it first, or use its admin API"
        ))
    })
}

fn config_error(e: ConfigError) -> StoreError {
    StoreError::Backend(e.to_string())
}

/// Opens the store for a node that is starting: on PostgreSQL, waits as a standby while
/// another node of this operator holds the lease, and takes over when it lets it go or
/// stops renewing it.
/// `active` holds the name of the node that holds the lease (for the standby's answers).
pub async fn open_store_for_node(
    dir: &Path,
    cfg: &NodeConfig,
    active: Arc<std::sync::Mutex<String>>,
) -> Result<NodeStore, RuntimeError> {
    let Some(url) = cfg.store.postgres_url()? else {
        return Ok(open_store(dir, cfg)?);
    };
    let (url, me, ttl) = (
        url.to_owned(),
        cfg.store.node_name(cfg.http),
        cfg.store.lease_ttl(),
    );
    let poll = (ttl / 5).clamp(Duration::from_millis(50), Duration::from_secs(1));
    let store = tokio::task::spawn_blocking(move || {
        let mut said = String::new();
        NodeStore::postgres(&url, &me, ttl, |holder, expires_in_ms| {
            if let Ok(mut a) = active.lock() {
                holder.clone_into(&mut a);
            }
            if said != holder {
                if expires_in_ms < 0 {
                    tracing::warn!(node = %me, "standby: cannot take the lease yet: {holder}");
                } else {
                    tracing::info!(node = %me, active = %holder, expires_in_ms, "standby: another node holds the lease; taking over when it stops renewing it");
                }
                said = holder.to_owned();
            }
            std::thread::sleep(poll);
            true
        })
    })
    .await
    .map_err(|e| RuntimeError::Io(format!("standby: {e}")))??
    .ok_or_else(|| RuntimeError::Io("standby: gave up waiting".into()))?;
    if let Some(l) = store.lease() {
        tracing::info!(node = %l.holder(), "active: this node holds the lease");
    }
    Ok(store)
}

/// Renews the lease of a PostgreSQL store every quarter of its length until the store is
/// dropped. Deposed (another node holds it now), it wakes the core, whose next commit is
/// then refused: the node stops.
fn keep_lease(store: &NodeStore, ttl: Duration, wake_core: mpsc::UnboundedSender<Input>) {
    let Some(guard) = store.lease() else {
        return;
    };
    let lease = guard.watch();
    let spawned = std::thread::Builder::new()
        .name("renkei-lease".into())
        .spawn(move || {
            let mut renewed_at = std::time::Instant::now();
            loop {
                std::thread::sleep(ttl / 4);
                let Some(lease) = lease.upgrade() else {
                    return;
                };
                let Ok(mut l) = lease.lock() else {
                    return;
                };
                match l.renew() {
                    Ok(true) => renewed_at = std::time::Instant::now(),
                    Ok(false) => {
                        tracing::error!(
                            "deposed: another node of this operator holds the lease now; stopping"
                        );
                        let _ = wake_core.send(Input::Tick);
                        return;
                    }
                    Err(e) => {
                        tracing::warn!(error = %e, "could not renew the lease (connecting again)");
                        if let Err(e) = l.reconnect() {
                            tracing::warn!(error = %e, "the database does not answer");
                        }
                        // Past the lease, make the core commit: if its own connection is
                        // gone too, or another node took over, that commit fails and the
                        // node stops (to come back as the standby, or on the database's
                        // new primary).
                        if renewed_at.elapsed() > ttl {
                            let _ = wake_core.send(Input::Tick);
                        }
                    }
                }
            }
        });
    if let Err(e) = spawned {
        tracing::error!(error = %e, "cannot start the lease thread");
    }
}

/// Tells systemd (a `Type=notify` unit: `$NOTIFY_SOCKET` is set) that the node is up —
/// its HTTP address answers — and what it is doing. Nothing without systemd.
fn notify_systemd(status: &str) {
    use sd_notify::NotifyState;
    if let Err(e) = sd_notify::notify(&[NotifyState::Ready, NotifyState::Status(status)]) {
        tracing::warn!(error = %e, "could not notify systemd");
    }
}

/// `DIR/store`.
pub fn store_dir(dir: &Path) -> PathBuf {
    dir.join("store")
}

/// Opens the core of a node directory (store, keys, config, roster file).
pub fn open_core(dir: &Path, cfg: &NodeConfig) -> Result<Core<NodeStore>, RuntimeError> {
    open_core_on(dir, cfg, open_store(dir, cfg)?)
}

/// Opens the core of a node directory on `store`.
pub fn open_core_on(
    dir: &Path,
    cfg: &NodeConfig,
    store: NodeStore,
) -> Result<Core<NodeStore>, RuntimeError> {
    let keys = keyfile::load(dir)?;
    let seed = keyfile::random_seed()?;
    let mut core = Core::open(
        store,
        keys,
        cfg.core_config()?,
        Entropy::from_seed(seed),
        now_ms(),
    )?;
    if let Some(path) = &cfg.roster {
        let path = dir.join(path);
        if path.exists() {
            let bytes = std::fs::read(&path)
                .map_err(|e| RuntimeError::Io(format!("{}: {e}", path.display())))?;
            let mut batch = core.batch(now_ms());
            batch.handle(Input::Api {
                id: 0,
                auth: Auth::Operator,
                cmd: ApiCommand::SetRoster { roster: bytes },
            })?;
            for e in batch.commit()? {
                if let Effect::Reply {
                    reply: ApiReply::BadRequest(why),
                    ..
                } = e
                {
                    return Err(RuntimeError::Io(format!(
                        "roster {}: {why}",
                        path.display()
                    )));
                }
            }
        }
    }
    Ok(core)
}

/// Runs one operator command directly on the store (the node must not be running).
pub fn offline_call(dir: &Path, cmd: ApiCommand) -> Result<ApiReply, RuntimeError> {
    let cfg = NodeConfig::load(dir)?;
    let mut core = open_core(dir, &cfg)?;
    let mut batch = core.batch(now_ms());
    batch.handle(Input::Api {
        id: 1,
        auth: Auth::Operator,
        cmd,
    })?;
    Ok(batch
        .commit()?
        .into_iter()
        .find_map(|e| match e {
            Effect::Reply { id: 1, reply } => Some(reply),
            _ => None,
        })
        .unwrap_or(ApiReply::Internal("no reply".into())))
}

/// Where the core's peer traffic goes: nowhere (a single-operator node, every send fails at
/// once) or the libp2p network.
pub enum Peers {
    /// No network configured.
    None,
    /// The libp2p network actor.
    Net {
        /// Its client.
        client: crate::net::NetClient,
        /// Whether this node is itself a relay (then it does not hold other relays open).
        relay: bool,
    },
}

fn multiaddrs(addrs: &[String]) -> Vec<crate::net::Multiaddr> {
    addrs
        .iter()
        .filter_map(|a| match a.parse() {
            Ok(m) => Some(m),
            Err(e) => {
                tracing::warn!(addr = %a, error = %e, "ignoring an address that is not a multiaddr");
                None
            }
        })
        .collect()
}

impl Peers {
    async fn send(
        &self,
        failed: &mpsc::UnboundedSender<Input>,
        id: u64,
        to: OperatorId,
        request: Request,
    ) {
        match self {
            Peers::None => {
                let _ = failed.send(Input::SendFailed {
                    id,
                    to,
                    error: "this node has no network configured".into(),
                });
            }
            Peers::Net { client, .. } => {
                if let Err(e) = client.send(to, id, request).await {
                    let _ = failed.send(Input::SendFailed {
                        id,
                        to,
                        error: e.to_string(),
                    });
                }
            }
        }
    }

    fn gone(&self, id: u64) -> bool {
        match self {
            Peers::Net { client, .. } => client.take_gone(id),
            Peers::None => false,
        }
    }

    async fn respond(&self, id: u64, response: Response) {
        if let Peers::Net { client, .. } = self
            && let Err(e) = client.respond(id, response).await
        {
            tracing::warn!(error = %e, "could not answer a peer request");
        }
    }

    async fn roster(&self, peers: Vec<RosterPeer>) {
        let Peers::Net { client, relay } = self else {
            return;
        };
        let allowed = peers.iter().map(|p| p.id).collect();
        if let Err(e) = client.set_allowed(allowed).await {
            tracing::warn!(error = %e, "network stopped");
            return;
        }
        for p in peers {
            let addrs = multiaddrs(&p.addrs);
            if addrs.is_empty() {
                continue;
            }
            // Every operator the roster gives an address for is kept connected: directory
            // sync runs over connected peers, and a federation has tens of operators, not
            // thousands. (A relay does not hold other relays open: they dial it.)
            let r = if !(*relay && p.relay) {
                client.keep_connected(p.id, addrs).await
            } else {
                client.add_addresses(p.id, addrs).await
            };
            if let Err(e) = r {
                tracing::warn!(peer = %p.name, error = %e, "network stopped");
            }
        }
    }
}

/// Receipts verified where they arrive (the forwarding task) rather than on the pool: a
/// verification costs about 40 µs, a hop to the pool and back about as much.
const RECEIPTS_INLINE_MAX: usize = 4;

/// Forwards network events into the core's input queue. Deliveries, receipts and
/// responses go through the prepare stage first — decode, signatures, and for an envelope
/// to this node open and check — here when small, else on the bounded pool (`prepare`
/// permits), so the core's thread only decides; other events pass straight on.
async fn forward_events(
    mut events: mpsc::Receiver<crate::net::NetEvent>,
    to_core: mpsc::UnboundedSender<Input>,
    keys: std::sync::Arc<renkei_protocol::keys::OperatorKeys>,
    prepare: std::sync::Arc<tokio::sync::Semaphore>,
    pool: crate::prepare_pool::PreparePool,
) {
    use crate::core::{CheckedReceipt, PreparedEnvelope, PreparedResponse, Signatures};
    use crate::net::NetEvent;
    // Decompressed operator keys, kept for the node's life and shared with the pool.
    let signatures: Signatures = std::sync::Arc::new(renkei_protocol::keys::KnownKeys::default());
    // Larger work goes to the pool (at most `prepare` jobs at once); its input reaches the
    // core when prepared.
    let offload = |f: Box<dyn FnOnce() -> Input + Send>| {
        let (to_core, prepare, pool) = (to_core.clone(), prepare.clone(), pool.clone());
        tokio::spawn(async move {
            let Ok(permit) = prepare.acquire_owned().await else {
                return;
            };
            let input = pool
                .run(move || {
                    let input = f();
                    drop(permit);
                    input
                })
                .await;
            if let Some(input) = input {
                let _ = to_core.send(input);
            }
        });
    };
    while let Some(ev) = events.recv().await {
        let input = match ev {
            NetEvent::Inbound {
                id,
                from,
                request: Request::Deliver(envs),
            } => {
                let bytes: usize = envs.iter().map(Vec::len).sum();
                if bytes <= crate::prepare_pool::INLINE_BYTES_MAX {
                    // Small: prepared here, in arrival order (cheaper than any hop).
                    Input::Deliver {
                        id,
                        from,
                        envelopes: PreparedEnvelope::all(&keys, &*signatures, envs),
                    }
                } else {
                    let (keys, signatures) = (keys.clone(), signatures.clone());
                    offload(Box::new(move || Input::Deliver {
                        id,
                        from,
                        envelopes: PreparedEnvelope::all(&keys, &*signatures, envs),
                    }));
                    continue;
                }
            }
            NetEvent::Inbound {
                id,
                from,
                request: Request::Receipts(rs),
            } => {
                if rs.len() <= RECEIPTS_INLINE_MAX {
                    Input::Receipts {
                        id,
                        from,
                        receipts: CheckedReceipt::all(&*signatures, rs),
                    }
                } else {
                    let signatures = signatures.clone();
                    offload(Box::new(move || Input::Receipts {
                        id,
                        from,
                        receipts: CheckedReceipt::all(&*signatures, rs),
                    }));
                    continue;
                }
            }
            NetEvent::Inbound { id, from, request } => Input::Inbound { id, from, request },
            NetEvent::Response { id, from, response } => {
                if PreparedResponse::receipts(&response) <= RECEIPTS_INLINE_MAX {
                    Input::Answer {
                        id,
                        from,
                        response: PreparedResponse::new(&*signatures, response),
                    }
                } else {
                    let signatures = signatures.clone();
                    offload(Box::new(move || Input::Answer {
                        id,
                        from,
                        response: PreparedResponse::new(&*signatures, response),
                    }));
                    continue;
                }
            }
            NetEvent::SendFailed { id, to, error } => Input::SendFailed { id, to, error },
            NetEvent::PeerUp(p) => {
                tracing::info!(peer = %p, "peer up");
                Input::PeerUp(p)
            }
            NetEvent::PeerDown(p) => {
                tracing::info!(peer = %p, "peer down");
                Input::PeerDown(p)
            }
            NetEvent::Listening(a) => {
                tracing::info!(addr = %a, "listening (libp2p)");
                continue;
            }
        };
        if to_core.send(input).is_err() {
            return;
        }
    }
}

/// The core task: group-commit loop. Returns when `shutdown` resolves (after finishing and
/// committing the current batch) or on a fatal store error.
#[allow(clippy::too_many_arguments)] // the task's channels, its switch and its gauge
pub async fn drive(
    mut core: Core<NodeStore>,
    mut api_rx: mpsc::Receiver<ApiCall>,
    mut jobs: mpsc::Receiver<StoreJob>,
    mut peer_rx: mpsc::UnboundedReceiver<Input>,
    peer_tx: mpsc::UnboundedSender<Input>,
    peers: Peers,
    batch_max: usize,
    mut shutdown: oneshot::Receiver<()>,
    busy_since: Arc<AtomicU64>,
    load: Arc<CoreLoad>,
    pool: crate::prepare_pool::PreparePool,
    notifier: Option<crate::notify::Notifier>,
) -> Result<(), RuntimeError> {
    // Whatever way this returns, `/readyz` then says the core has stopped.
    struct Stopped(Arc<AtomicU64>);
    impl Drop for Stopped {
        fn drop(&mut self) {
            self.0.store(1, Ordering::Relaxed);
        }
    }
    let _stopped = Stopped(busy_since.clone());
    let mut replies: BTreeMap<u64, oneshot::Sender<ApiReply>> = BTreeMap::new();
    let mut next_api = 1u64;
    let mut wake: Option<u64> = Some(now_ms());
    let mut batch: Vec<Input> = Vec::with_capacity(batch_max);
    // Effects produced while opening (e.g. the installed roster) go out first.
    core.announce_roster();
    let mut pending: Vec<Effect> = core.batch(now_ms()).commit()?;
    // The batch whose flush runs on a blocking thread while the next batch is handled (at
    // most one): its effects leave when the flush has returned, never before.
    let mut inflight: Option<InFlight> = None;
    // Hands a durable batch's effects to where they go.
    macro_rules! release_all {
        ($effects:expr) => {
            for e in $effects {
                release(
                    e,
                    &mut replies,
                    &peers,
                    &peer_tx,
                    &mut wake,
                    &pool,
                    notifier.as_ref(),
                )
                .await;
            }
        };
    }
    // Waits for the flush in flight, if any, and takes its batch's effects (the core
    // free: between batches).
    macro_rules! land_inflight {
        () => {
            if inflight.is_some() {
                let synced = flushed(&mut inflight).await;
                pending.extend(land(&mut inflight, synced, &load, |c, s| {
                    c.finish(&mut core, s)
                })?);
            }
        };
    }
    loop {
        release_all!(pending.drain(..));
        busy_since.store(0, Ordering::Relaxed);
        let delay = wake.map_or(Duration::from_secs(3600), |w| {
            Duration::from_millis(w.saturating_sub(now_ms()))
        });
        tokio::select! {
            _ = &mut shutdown => break,
            synced = flushed(&mut inflight), if inflight.is_some() => {
                pending = land(&mut inflight, synced, &load, |c, s| c.finish(&mut core, s))?;
                continue;
            }
            call = api_rx.recv() => match call {
                Some(c) => take_call(c, &mut replies, &mut batch, &mut next_api),
                None => break,
            },
            ev = peer_rx.recv() => if let Some(ev) = ev { batch.push(ev) },
            job = jobs.recv() => {
                if let Some(job) = job {
                    // Between batches: everything before is committed, nothing after has
                    // started. `/readyz` counts the time as a batch.
                    busy_since.store(now_ms().max(2), Ordering::Relaxed);
                    land_inflight!();
                    tokio::task::block_in_place(|| job(core.store()));
                }
                continue;
            }
            _ = tokio::time::sleep(delay) => { wake = None; batch.push(Input::Tick); }
        }
        let now = now_ms();
        busy_since.store(now.max(2), Ordering::Relaxed);
        load.batches.fetch_add(1, Ordering::Relaxed);
        let mut group = core.batch(now);
        let (mut taken, mut deciding, mut closed) = (0usize, Duration::ZERO, false);
        // Group commit, pipelined: while the previous batch's flush runs, this batch stays
        // open and takes what arrives; when the flush returns, the previous batch's effects
        // leave and this batch is written and its own flush started. With nothing in
        // flight, a batch commits as soon as what is waiting is handled.
        loop {
            while taken + batch.len() < batch_max {
                if let Ok(c) = api_rx.try_recv() {
                    take_call(c, &mut replies, &mut batch, &mut next_api);
                } else if let Ok(ev) = peer_rx.try_recv() {
                    batch.push(ev);
                } else {
                    break;
                }
            }
            taken += batch.len();
            let started = std::time::Instant::now();
            for input in batch.drain(..) {
                // A peer's request whose stream failed (timed out, closed) before the core
                // got to it is dropped unread: nobody waits for its answer.
                if let Input::Inbound { id, from, .. }
                | Input::Deliver { id, from, .. }
                | Input::Receipts { id, from, .. } = &input
                    && peers.gone(*id)
                {
                    tracing::info!(id, peer = %from, "dropping a request whose stream is gone");
                    continue;
                }
                group.handle(input)?;
            }
            // The batch's submissions are sealed and signed now and taken back into the
            // same batch: one flush for a submission and its envelope (sealing them into a
            // later batch made smaller batches, more flushes: 831 against 1,145 units/s
            // through a relay, docs/lab/2026-12-prepare-stage.md).
            seal_in_batch(&mut group, &pool).await?;
            deciding += started.elapsed();
            if inflight.is_none() {
                break;
            }
            let open = taken < batch_max && !closed;
            tokio::select! {
                synced = flushed(&mut inflight) => {
                    let waited = std::time::Instant::now();
                    let effects = land(&mut inflight, synced, &load, |c, s| group.finish_previous(c, s))?;
                    release_all!(effects);
                    load.commit_ns.fetch_add(nanos(waited.elapsed()), Ordering::Relaxed);
                    break;
                }
                call = api_rx.recv(), if open => match call {
                    Some(c) => take_call(c, &mut replies, &mut batch, &mut next_api),
                    None => closed = true,
                },
                ev = peer_rx.recv(), if open => match ev {
                    Some(ev) => batch.push(ev),
                    None => closed = true,
                },
            }
        }
        load.inputs.fetch_add(taken as u64, Ordering::Relaxed);
        load.handle_ns.fetch_add(nanos(deciding), Ordering::Relaxed);
        let handled = std::time::Instant::now();
        let mut committing = tokio::task::block_in_place(|| group.commit_start())?;
        let written = handled.elapsed();
        let flush = committing.sync();
        if flush.is_needed() {
            let (tx, rx) = oneshot::channel();
            tokio::task::spawn_blocking(move || {
                let began = std::time::Instant::now();
                let _ = tx.send(flush.run().map(|s| (s, began.elapsed())));
            });
            inflight = Some(InFlight {
                committing,
                rx,
                written,
            });
        } else {
            // Durable already (PostgreSQL commits while writing; a batch that wrote
            // nothing has nothing to wait for): no thread to wake.
            let synced = flush.run()?;
            load.commits.observe(written);
            pending.extend(committing.finish(&mut core, synced)?);
        }
        load.commit_ns
            .fetch_add(nanos(handled.elapsed()), Ordering::Relaxed);
    }
    land_inflight!();
    pending.extend(tokio::task::block_in_place(|| {
        core.batch(now_ms()).commit()
    })?);
    release_all!(pending.drain(..));
    if let Peers::Net { client, .. } = &peers {
        let _ = client.shutdown().await;
    }
    tracing::info!("core stopped after its last commit");
    Ok(())
}

/// Takes one API call into the batch, keeping its reply channel under the call's id.
fn take_call(
    c: ApiCall,
    replies: &mut BTreeMap<u64, oneshot::Sender<ApiReply>>,
    batch: &mut Vec<Input>,
    next_api: &mut u64,
) {
    replies.insert(*next_api, c.reply);
    batch.push(Input::Api {
        id: *next_api,
        auth: c.auth,
        cmd: c.cmd,
    });
    *next_api += 1;
}

/// A batch written to the store whose flush is running.
struct InFlight {
    committing: Committing,
    rx: oneshot::Receiver<Result<(Synced, Duration), StoreError>>,
    /// How long writing the group took (the whole commit on PostgreSQL, whose flush is
    /// then nothing).
    written: Duration,
}

/// Waits for the flush of the batch in flight (pending forever when there is none).
async fn flushed(inflight: &mut Option<InFlight>) -> Result<(Synced, Duration), RuntimeError> {
    match inflight {
        Some(f) => match (&mut f.rx).await {
            Ok(r) => Ok(r?),
            Err(_) => Err(RuntimeError::Io("the store's flush thread stopped".into())),
        },
        None => std::future::pending().await,
    }
}

/// Ends the commit in flight after its flush returned: the store's indexes take the group
/// and its effects are given back, to leave now.
fn land(
    inflight: &mut Option<InFlight>,
    synced: Result<(Synced, Duration), RuntimeError>,
    load: &CoreLoad,
    finish: impl FnOnce(Committing, Synced) -> Result<Vec<Effect>, StoreError>,
) -> Result<Vec<Effect>, RuntimeError> {
    let (synced, took) = synced?;
    let Some(f) = inflight.take() else {
        return Ok(Vec::new());
    };
    load.commits.observe(f.written + took);
    let started = std::time::Instant::now();
    let effects = tokio::task::block_in_place(|| finish(f.committing, synced))?;
    load.commit_ns
        .fetch_add(nanos(started.elapsed()), Ordering::Relaxed);
    Ok(effects)
}

/// Hands one effect of a durable batch to where it goes.
async fn release(
    e: Effect,
    replies: &mut BTreeMap<u64, oneshot::Sender<ApiReply>>,
    peers: &Peers,
    peer_tx: &mpsc::UnboundedSender<Input>,
    wake: &mut Option<u64>,
    pool: &crate::prepare_pool::PreparePool,
    notifier: Option<&crate::notify::Notifier>,
) {
    match e {
        Effect::Reply { id, reply } => {
            if let Some(tx) = replies.remove(&id) {
                let _ = tx.send(reply);
            }
        }
        Effect::Send { id, to, request } => peers.send(peer_tx, id, to, request).await,
        Effect::Respond { id, response } => peers.respond(id, response).await,
        Effect::Wake { at_ms } => *wake = Some(wake.map_or(at_ms, |w| w.min(at_ms))),
        Effect::Roster { peers: list } => peers.roster(list).await,
        Effect::Notify {
            office,
            email,
            kind,
            from,
        } => match notifier {
            Some(n) => n.notify(crate::notify::Notice {
                office,
                email,
                kind,
                from,
            }),
            None => {
                tracing::warn!(%office, "the office asked for e-mail notices, but [notify] smtp is not configured")
            }
        },
        // Taken in the batch that made it (`seal_in_batch`); were one left, its result
        // would come back as an input.
        Effect::Seal { ticket, job } => {
            let (to_core, pool) = (peer_tx.clone(), pool.clone());
            tokio::spawn(async move {
                if let Some(sealed) = pool.run(move || job.run()).await {
                    let _ = to_core.send(Input::Sealed { ticket, sealed });
                }
            });
        }
    }
}

/// Runs the seal jobs the batch produced (the prepare stage's [`crate::core::SealJob`]) and
/// hands their results to the core, until no job is left.
async fn seal_in_batch(
    batch: &mut Batch<'_, NodeStore>,
    pool: &crate::prepare_pool::PreparePool,
) -> Result<(), RuntimeError> {
    loop {
        let jobs = batch.take_seal_jobs();
        if jobs.is_empty() {
            return Ok(());
        }
        // A small unit is sealed right here (about 150 µs: less than waking a pool thread
        // and waiting for it costs on a busy machine); larger ones on the pool, in parallel.
        let sealed = futures::future::join_all(jobs.into_iter().map(|(ticket, job)| {
            let pool = pool.clone();
            async move { (ticket, pool.run_sized(job.bytes(), move || job.run()).await) }
        }))
        .await;
        for (ticket, sealed) in sealed {
            if let Some(sealed) = sealed {
                batch.handle(Input::Sealed { ticket, sealed })?;
            }
        }
    }
}

fn nanos(d: Duration) -> u64 {
    u64::try_from(d.as_nanos()).unwrap_or(u64::MAX)
}

/// Spawns the core task; returns its handle, stop switch and join handle.
pub fn spawn_core(
    core: Core<NodeStore>,
    peers: Peers,
    peer_rx: mpsc::UnboundedReceiver<Input>,
    peer_tx: mpsc::UnboundedSender<Input>,
    batch_max: usize,
    pool: crate::prepare_pool::PreparePool,
    notifier: Option<crate::notify::Notifier>,
) -> (
    CoreHandle,
    oneshot::Sender<()>,
    tokio::task::JoinHandle<Result<(), RuntimeError>>,
) {
    let (tx, rx) = mpsc::channel(API_QUEUE_MAX);
    let (jobs, jobs_rx) = mpsc::channel(4);
    let (stop, stop_rx) = oneshot::channel();
    let busy_since = Arc::new(AtomicU64::new(0));
    let load = Arc::new(CoreLoad::default());
    let join = tokio::spawn(drive(
        core,
        rx,
        jobs_rx,
        peer_rx,
        peer_tx,
        peers,
        batch_max,
        stop_rx,
        busy_since.clone(),
        load.clone(),
        pool,
        notifier,
    ));
    (
        CoreHandle {
            tx,
            jobs,
            busy_since,
            load,
        },
        stop,
        join,
    )
}

/// Starts the libp2p network of a node if its config asks for one.
async fn start_network(
    cfg: &NodeConfig,
    keys: &renkei_protocol::keys::OperatorKeys,
    to_core: mpsc::UnboundedSender<Input>,
    pool: crate::prepare_pool::PreparePool,
) -> Result<(Peers, Vec<String>), RuntimeError> {
    if cfg.listen.is_empty() && cfg.roster.is_none() && cfg.peers.is_empty() {
        return Ok((Peers::None, vec![]));
    }
    let (client, events, ev_loop) = crate::net::Network::new(cfg.limits.net_config(keys))
        .map_err(|e| RuntimeError::Io(format!("network: {e}")))?;
    tokio::spawn(ev_loop.run());
    let workers = cfg.limits.upload_limits().prepare_workers;
    tokio::spawn(forward_events(
        events,
        to_core,
        std::sync::Arc::new(keys.clone()),
        std::sync::Arc::new(tokio::sync::Semaphore::new(workers.max(1))),
        pool,
    ));
    let mut bound = Vec::new();
    for a in multiaddrs(&cfg.listen) {
        let actual = client
            .listen(a.clone())
            .await
            .map_err(|e| RuntimeError::Io(format!("listen on {a}: {e}")))?;
        bound.push(actual.to_string());
    }
    for p in &cfg.peers {
        let id: OperatorId =
            p.id.parse()
                .map_err(|e| RuntimeError::Io(format!("peers: {e}")))?;
        client
            .keep_connected(id, multiaddrs(&p.addrs))
            .await
            .map_err(|e| RuntimeError::Io(e.to_string()))?;
    }
    Ok((
        Peers::Net {
            client,
            relay: cfg.relay,
        },
        bound,
    ))
}

/// A running node: its HTTP address and a way to stop it.
pub struct RunningNode {
    /// Where the HTTP API listens.
    pub http: std::net::SocketAddr,
    /// libp2p addresses actually bound.
    pub p2p: Vec<String>,
    /// Where the operator endpoints listen.
    pub admin: crate::config::AdminAddr,
    stop_http: Option<oneshot::Sender<()>>,
    stop_admin: Option<oneshot::Sender<()>>,
    stop_core: Option<oneshot::Sender<()>>,
    http_task: tokio::task::JoinHandle<std::io::Result<()>>,
    admin_task: tokio::task::JoinHandle<std::io::Result<()>>,
    core_task: tokio::task::JoinHandle<Result<(), RuntimeError>>,
}

impl RunningNode {
    /// Graceful stop: stop taking HTTP requests, finish and commit the current batch.
    pub async fn stop(mut self) -> Result<(), RuntimeError> {
        for s in [self.stop_http.take(), self.stop_admin.take()]
            .into_iter()
            .flatten()
        {
            let _ = s.send(());
        }
        let _ = self.http_task.await;
        let _ = (&mut self.admin_task).await;
        if let crate::config::AdminAddr::Unix(path) = &self.admin {
            let _ = std::fs::remove_file(path);
        }
        if let Some(s) = self.stop_core.take() {
            let _ = s.send(());
        }
        self.core_task
            .await
            .map_err(|e| RuntimeError::Io(format!("core task: {e}")))?
    }

    /// Waits until the core task ends by itself (a fatal error).
    pub async fn wait_core(&mut self) -> Result<(), RuntimeError> {
        (&mut self.core_task)
            .await
            .map_err(|e| RuntimeError::Io(format!("core task: {e}")))?
    }
}

/// Reads the admin token hash of a node directory.
pub fn admin_hash(dir: &Path) -> Result<[u8; 32], RuntimeError> {
    let path = dir.join(crate::config::ADMIN_TOKEN_FILE);
    let token = keyfile::read_secret(&path).map_err(|e| RuntimeError::Io(e.to_string()))?;
    Ok(renkei_protocol::envelope::sha256(token.trim().as_bytes()))
}

/// The hash of the token `/metrics` needs, `DIR/metrics.token`, made (0600) at the first
/// start.
pub fn metrics_hash(dir: &Path) -> Result<[u8; 32], RuntimeError> {
    let path = dir.join(crate::config::METRICS_TOKEN_FILE);
    if !path.exists() {
        let token = crate::api::new_token().map_err(|e| RuntimeError::Io(e.to_string()))?;
        keyfile::write_secret(&path, &format!("{token}\n"))
            .map_err(|e| RuntimeError::Io(e.to_string()))?;
    }
    let token = keyfile::read_secret(&path).map_err(|e| RuntimeError::Io(e.to_string()))?;
    Ok(renkei_protocol::envelope::sha256(token.trim().as_bytes()))
}

/// The configured CORS origins as header values (an origin that is not one is an error at
/// start, not a silent gap).
fn cors_origins(origins: &[String]) -> Result<Vec<axum::http::HeaderValue>, RuntimeError> {
    origins
        .iter()
        .map(|o| {
            let o = o.trim_end_matches('/');
            if !(o.starts_with("https://") || o.starts_with("http://")) || o.contains(' ') {
                return Err(RuntimeError::Io(format!(
                    "cors_allowed_origins: {o:?} is not an origin like https://app.example.jp"
                )));
            }
            axum::http::HeaderValue::from_str(o)
                .map_err(|e| RuntimeError::Io(format!("cors_allowed_origins: {o:?}: {e}")))
        })
        .collect()
}

/// Starts a node from its directory: core task, HTTP API.
pub async fn start(dir: &Path) -> Result<RunningNode, RuntimeError> {
    let cfg = NodeConfig::load(dir)?;
    let std_listener = std::net::TcpListener::bind(cfg.http)
        .and_then(|l| l.set_nonblocking(true).map(|()| l))
        .map_err(|e| RuntimeError::Io(format!("cannot listen on {}: {e}", cfg.http)))?;
    let io = |e: std::io::Error| RuntimeError::Io(format!("HTTP listener: {e}"));
    let store = if cfg.store.postgres_url()?.is_some() {
        // Until this node holds the lease it answers as a standby on its HTTP address.
        let active = Arc::new(std::sync::Mutex::new(String::new()));
        let standby_listener =
            tokio::net::TcpListener::from_std(std_listener.try_clone().map_err(io)?).map_err(io)?;
        let (stop, stopped) = oneshot::channel::<()>();
        let standby = tokio::spawn(crate::api::standby::serve(
            standby_listener,
            active.clone(),
            async move {
                let _ = stopped.await;
            },
        ));
        notify_systemd("standby: waiting for this operator's lease");
        let store = open_store_for_node(dir, &cfg, active).await;
        let _ = stop.send(());
        let _ = standby.await;
        store?
    } else {
        open_store(dir, &cfg)?
    };
    let node_info = crate::api::NodeInfo {
        version: env!("CARGO_PKG_VERSION"),
        store: match &store {
            NodeStore::Local(_) => "local",
            NodeStore::Postgres(..) => "postgres",
        },
        lease: match &store {
            NodeStore::Postgres(s, l) => Some((l.holder(), s.fence().map_or(0, |f| f.0))),
            NodeStore::Local(_) => None,
        },
    };
    let core = open_core_on(dir, &cfg, store)?;
    let admin_hash = admin_hash(dir)?;
    let keys = keyfile::load(dir)?;
    let admin_addr = cfg.admin_addr(dir);
    let admin_listener = bind_admin(&admin_addr)?;
    let (peer_tx, peer_rx) = mpsc::unbounded_channel();
    let pool = crate::prepare_pool::PreparePool::new(cfg.limits.upload_limits().prepare_workers)
        .map_err(|e| RuntimeError::Io(format!("prepare pool: {e}")))?;
    keep_lease(core.store(), cfg.store.lease_ttl(), peer_tx.clone());
    let (peers, p2p) = start_network(&cfg, &keys, peer_tx.clone(), pool.clone()).await?;
    if !p2p.is_empty() {
        // For operators and tests: the addresses actually bound (e.g. for port 0).
        let text: String = p2p.iter().map(|a| format!("{a}\n")).collect();
        std::fs::write(dir.join(LISTEN_FILE), text).map_err(|e| RuntimeError::Io(e.to_string()))?;
    }
    let (handle, stop_core, core_task) = spawn_core(
        core,
        peers,
        peer_rx,
        peer_tx,
        cfg.limits.commit_batch_max,
        pool.clone(),
        crate::notify::Notifier::start(&cfg.notify),
    );
    let listener = tokio::net::TcpListener::from_std(std_listener).map_err(io)?;
    let http = listener
        .local_addr()
        .map_err(|e| RuntimeError::Io(e.to_string()))?;
    let state = crate::api::AppState::new(crate::api::Shared {
        core: handle,
        admin_hash,
        upload_bytes_max: cfg.limits.upload_bytes_max,
        request_timeout: crate::api::body_timeout::request_timeout(cfg.limits.request_timeout_ms),
        uploads: crate::api::uploads::Uploads::new(cfg.limits.upload_limits(), pool),
        ready_stall: Duration::from_millis(cfg.limits.ready_stall_ms.max(1)),
        metrics_hash: metrics_hash(dir)?,
        trusted_proxies: Arc::new(cfg.trusted_proxies.clone()),
        cors_allowed_origins: Arc::new(cors_origins(&cfg.cors_allowed_origins)?),
        info: Arc::new(node_info),
        requests: Arc::default(),
        session_cookie_secure: cfg.session_cookie_secure,
        failed_auth_max: cfg.limits.failed_auth_max as usize,
    });
    let (stop_http, stop_rx) = oneshot::channel::<()>();
    let (stop_admin, stop_admin_rx) = oneshot::channel::<()>();
    let admin_task = tokio::spawn(crate::api::serve_admin(
        admin_listener,
        state.clone(),
        async move {
            let _ = stop_admin_rx.await;
        },
    ));
    let http_task = tokio::spawn(crate::api::serve(listener, state, async move {
        let _ = stop_rx.await;
    }));
    tracing::info!(%http, admin = ?admin_addr, operator = %keys.id(), p2p = ?p2p, "node running");
    notify_systemd(&format!("active: serving on {http}"));
    Ok(RunningNode {
        http,
        p2p,
        admin: admin_addr,
        stop_http: Some(stop_http),
        stop_admin: Some(stop_admin),
        stop_core: Some(stop_core),
        http_task,
        admin_task,
        core_task,
    })
}

/// Binds the admin listener. A socket file left by a node that died is replaced; one that
/// answers belongs to a running node, and this one does not start. The socket is made
/// 0600 (the node's user only) before anything is served on it.
fn bind_admin(addr: &crate::config::AdminAddr) -> Result<crate::api::AdminListener, RuntimeError> {
    use crate::config::AdminAddr;
    match addr {
        AdminAddr::Tcp(a) => {
            let l = std::net::TcpListener::bind(a)
                .and_then(|l| l.set_nonblocking(true).map(|()| l))
                .and_then(tokio::net::TcpListener::from_std)
                .map_err(|e| {
                    RuntimeError::Io(format!("admin_listen: cannot listen on {a}: {e}"))
                })?;
            Ok(crate::api::AdminListener::Tcp(l))
        }
        AdminAddr::Unix(path) => {
            let named = |e: std::io::Error| {
                RuntimeError::Io(format!("admin_listen: socket {}: {e}", path.display()))
            };
            if path.exists() {
                if std::os::unix::net::UnixStream::connect(path).is_ok() {
                    return Err(RuntimeError::Io(format!(
                        "admin_listen: {} answers: another node serves this directory",
                        path.display()
                    )));
                }
                std::fs::remove_file(path).map_err(named)?;
            }
            let l = std::os::unix::net::UnixListener::bind(path).map_err(named)?;
            std::fs::set_permissions(path, std::os::unix::fs::PermissionsExt::from_mode(0o600))
                .map_err(named)?;
            l.set_nonblocking(true).map_err(named)?;
            Ok(crate::api::AdminListener::Unix(
                tokio::net::UnixListener::from_std(l).map_err(named)?,
            ))
        }
    }
}
