//! # renkei-core
//!
//! The seam between deciding and doing. This crate holds the sans-IO core, the [`store`]
//! trait every backend implements (with its conformance suite) and the in-memory store
//! with crash semantics. Its dependency tree holds no tokio, libp2p, axum, hyper, tower,
//! mio or sled: the production node (`renkei-node`) and the simulator (`renkei-simnet`)
//! both drive it, and neither can reach around it.
//!
//! The sans-IO core: one state machine that owns a node's delivery logic — submit,
//! outbox, relay, inbox, dedup, receipts, retries, expiry, versioning, directory and the
//! audit log. The production runtime (tokio + libp2p + sled) and simnet (virtual time +
//! simulated network + memory store) both drive it the same way:
//!
//! ```text
//! let mut batch = core.batch(now);
//! for input in inputs { batch.handle(input)?; }
//! for effect in batch.commit()? { perform(effect) }   // one flush, then the effects
//! ```
//!
//! That loop exists once, in [`Batch`]: effects leave the core only through
//! [`Batch::commit`], after the store's commit.
//!
//! It never sleeps, spawns, reads the clock or draws randomness itself: time comes in
//! `now`, randomness from the seeded [`Entropy`] handed to [`Core::open`].
//!
//! A store error inside `handle` is fatal for the driver: it must drop the core without
//! committing (a crash) and reopen, so a half-applied input never becomes durable.

mod api;
mod audit;
mod audit_export;
mod batch;
pub mod certificate;
mod directory;
mod inbound;
mod inbox;
pub mod io;
mod lookup_map;
mod origin;
mod outbox;
mod prepared;
mod receipt_role;
pub mod records;
pub mod sealing;
mod sender;
pub mod staff;
pub mod store;
mod submissions;
pub mod unit;
pub use batch::{Batch, Committing, Synced};
pub use prepared::{CheckedReceipt, PreparedEnvelope, PreparedResponse};
pub use sealing::{SealJob, Sealed};
pub use unit::PreparedUnit;
pub mod views;

use std::collections::{BTreeMap, BTreeSet, VecDeque};

use renkei_protocol::ids::{EnvelopeId, OfficeNumber, OperatorId};
use renkei_protocol::keys::{KnownKeys, OperatorKeys, SignatureCheck};
use renkei_protocol::limits::{BATCH_BYTES_MAX, BATCH_ENVELOPES_MAX};
use renkei_protocol::rng::Entropy;
use renkei_protocol::roster::{OfficeBinding, SignedRoster};

pub use audit::verify_chain;
pub use io::{
    ApiCommand, ApiId, ApiReply, Auth, Counters, DELIVERY_BUCKETS_MS, Effect, InboundId, Input,
    OutboundId, RosterPeer,
};

use crate::store::{Store, StoreError};
use records::OfficeRec;

/// Cap on retry delay.
pub const RETRY_DELAY_MS_MAX: u64 = 5 * 60 * 1000;
/// Default bound on an envelope's creation time ahead of this node's clock: 10 minutes.
pub const MAX_SKEW_MS_DEFAULT: u64 = 10 * 60 * 1000;
/// Default expiry window: 7 days.
pub const EXPIRY_MS_DEFAULT: u64 = 7 * 24 * 3600 * 1000;
/// Sequence numbers reserved in the store at a time ([`Core::next_seq`]).
const SEQ_RESERVE: u64 = 4096;

/// Core settings (the node config's delivery section).
#[derive(Debug, Clone)]
pub struct CoreConfig {
    /// Display name of this operator.
    pub name: String,
    /// First retry delay.
    pub retry_base_ms: u64,
    /// Retry delay cap.
    pub retry_max_ms: u64,
    /// Origin gives up (Expired receipt) this long after creation.
    pub expiry_ms: u64,
    /// Relays keep trying this much longer than the origin's window before dropping.
    pub relay_grace_ms: u64,
    /// Whether this node relays envelopes for other operators.
    pub relay: bool,
    /// The federation authority key that signs rosters.
    pub authority: Option<OperatorId>,
    /// Directory sync interval.
    pub sync_interval_ms: u64,
    /// Envelopes per delivery batch.
    pub batch_envelopes_max: usize,
    /// Bytes per delivery batch.
    pub batch_bytes_max: usize,
    /// Due envelopes looked at per pass (bounds the work of one commit).
    pub due_scan_max: usize,
    /// An envelope created more than this far ahead of this node's clock is refused (and
    /// the past bound is the expiry window plus the relay grace plus this).
    pub max_skew_ms: u64,
    /// A roster issued longer ago than this is reported (status, metrics, log): the
    /// authority re-issues rosters, and a node that stopped hearing of them may route by
    /// stale entries.
    pub roster_max_age_ms: u64,
    /// Take office bindings from peers only when the federation authority assigned them
    /// (operators' own claims are then ignored and counted as conflicts).
    pub require_assignments: bool,
    /// Most offices one operator's claims may hold in this node's directory (assignments
    /// are not bounded): a member signing claims for the public list of office numbers is
    /// stopped there, with a conflict note.
    pub bindings_per_operator_max: u32,
    /// Origin: a unit a relay accepted but the destination has not receipted this long
    /// after is sent again avoiding that relay (direct, or another relay). 0: never.
    pub relay_watch_ms: u64,
    /// A staff session ends when unused this long.
    pub session_idle_ms: u64,
    /// A staff session ends this long after sign-in, used or not.
    pub session_max_ms: u64,
}

/// Default idle timeout of a staff session: 30 minutes.
pub const SESSION_IDLE_MS_DEFAULT: u64 = 30 * 60 * 1000;
/// Default absolute timeout of a staff session: 12 hours.
pub const SESSION_MAX_MS_DEFAULT: u64 = 12 * 3600 * 1000;

/// Default watch on a relay that accepted a unit: 10 minutes.
pub const RELAY_WATCH_MS_DEFAULT: u64 = 10 * 60 * 1000;

/// Default bound on the offices one operator's claims may hold: 200,000 (the federation
/// has about 250,000 offices in all).
pub const BINDINGS_PER_OPERATOR_MAX_DEFAULT: u32 = 200_000;

/// Default bound on a roster's age before the node says so: 30 days.
pub const ROSTER_MAX_AGE_MS_DEFAULT: u64 = 30 * 24 * 3600 * 1000;

impl Default for CoreConfig {
    fn default() -> Self {
        CoreConfig {
            name: "renkei".into(),
            retry_base_ms: 500,
            retry_max_ms: RETRY_DELAY_MS_MAX,
            expiry_ms: EXPIRY_MS_DEFAULT,
            relay_grace_ms: 24 * 3600 * 1000,
            relay: false,
            authority: None,
            sync_interval_ms: 30_000,
            batch_envelopes_max: BATCH_ENVELOPES_MAX,
            batch_bytes_max: BATCH_BYTES_MAX,
            due_scan_max: 4096,
            max_skew_ms: MAX_SKEW_MS_DEFAULT,
            roster_max_age_ms: ROSTER_MAX_AGE_MS_DEFAULT,
            require_assignments: false,
            bindings_per_operator_max: BINDINGS_PER_OPERATOR_MAX_DEFAULT,
            relay_watch_ms: RELAY_WATCH_MS_DEFAULT,
            session_idle_ms: SESSION_IDLE_MS_DEFAULT,
            session_max_ms: SESSION_MAX_MS_DEFAULT,
        }
    }
}

#[derive(Debug, Clone)]
enum Flight {
    Deliver {
        to: OperatorId,
        ids: Vec<EnvelopeId>,
    },
    Receipts {
        to: OperatorId,
        seqs: Vec<u64>,
    },
    Sync {
        to: OperatorId,
    },
}

/// The node core. See the module docs.
pub struct Core<S: Store> {
    store: S,
    /// Shared with the seal jobs handed to the prepare stage.
    keys: std::sync::Arc<OperatorKeys>,
    /// How this core checks signatures ([`Core::check_signatures_with`]).
    signatures: Signatures,
    /// Tables of the recipients this core seals to often, shared with its seal jobs.
    seal_tables: std::sync::Arc<renkei_protocol::seal::SealTables>,
    cfg: CoreConfig,
    /// Retry jitter.
    rng: Entropy,
    /// Envelope ids and ephemeral sealing seeds: a stream of its own (drawn from `rng` at
    /// open), so that the k-th unit sealed since open takes the k-th pair whatever retries
    /// happened in between (a replayed run's ids do not depend on its retry timing).
    unit_rng: Entropy,
    /// Pairs drawn from `unit_rng` since open.
    unit_draws: u64,
    effects: VecDeque<Effect>,
    now: u64,
    roster: Option<SignedRoster>,
    offices: BTreeMap<OfficeNumber, OfficeRec>,
    tokens: BTreeMap<[u8; 32], OfficeNumber>,
    /// Staff sessions by the SHA-256 of their cookie ([`staff`]).
    sessions: BTreeMap<[u8; 32], staff::SessionRec>,
    /// Office → binding, as learnt (the signed form is in the store's bindings tree).
    /// Boxed: 250,000 at every node of a national federation, a bucket of the map is a key
    /// and a pointer instead of the whole binding (smaller tables, cheaper growth).
    bindings: lookup_map::LookupMap<OfficeNumber, Box<OfficeBinding>>,
    binding_seq: u64,
    conflicts: BTreeMap<OfficeNumber, String>,
    /// Offices whose held binding the federation authority assigned, with the
    /// assignment's time (`Meta` `assigned/` ‖ office).
    assigned: BTreeMap<OfficeNumber, u64>,
    /// Offices each operator (by the key in its bindings) holds in this node's directory.
    holdings: BTreeMap<OperatorId, u32>,
    schedule: BTreeSet<(u64, EnvelopeId)>,
    due_of: BTreeMap<EnvelopeId, (u64, OperatorId)>,
    by_dest: BTreeMap<OperatorId, BTreeSet<(u64, EnvelopeId)>>,
    attempts: BTreeMap<EnvelopeId, u32>,
    /// Origin: units a relay accepted, by the relay, watched until the destination's
    /// receipt (not kept across a restart: the unit is then simply sent again).
    handed: BTreeMap<EnvelopeId, OperatorId>,
    /// Relay: units taken back from a hop while this node's hand-over to that hop was
    /// still in flight; that hand-over's acknowledgement does not end this node's part.
    retaken: BTreeSet<(EnvelopeId, OperatorId)>,
    outbox_cache: BTreeMap<EnvelopeId, records::OutboxRec>,
    send_cache: BTreeMap<EnvelopeId, Vec<u8>>,
    send_cache_bytes: usize,
    receipt_schedule: BTreeSet<(u64, u64)>,
    receipt_due: BTreeMap<u64, u64>,
    /// The operator each queued receipt goes to (learnt when queued or first read): a
    /// receipt whose peer is busy is passed over without reading its record again.
    receipt_to: BTreeMap<u64, OperatorId>,
    flights: BTreeMap<OutboundId, Flight>,
    busy: BTreeMap<(u8, OperatorId), usize>,
    peers_up: BTreeSet<OperatorId>,
    sync_cursor: BTreeMap<OperatorId, u64>,
    next_sync_ms: u64,
    next_outbound: u64,
    wake_requested: Option<u64>,
    /// A lower bound of the earliest expiry in [`Tree::Pending`] (`Some(None)`: the tree
    /// is empty), or `None` when it must be looked up: `pump` asks after every batch, and
    /// at national scale that lookup was millions of range scans.
    ///
    /// [`Tree::Pending`]: crate::store::Tree::Pending
    pending_first: Option<Option<u64>>,
    audit_head: (u64, [u8; 32]),
    /// The last sequence number drawn ([`Self::next_seq`]).
    seq: u64,
    /// The highest sequence number the store has reserved: every number drawn is at most
    /// this, also after a restart.
    seq_reserved: u64,
    counters: Counters,
    /// Submissions decided and out for sealing, by ticket (see [`sealing`]).
    sealing: BTreeMap<u64, origin::PendingSeal>,
    /// The ticket of each submission key out for sealing: the same unit submitted again
    /// meanwhile waits for the first one's answer.
    sealing_keys: BTreeMap<[u8; 32], u64>,
    next_ticket: u64,
}

impl<S: Store> Core<S> {
    /// Opens the core over a store, rebuilding every schedule from it (outbox, receipt
    /// outbox, expiry) so pending work resumes after a restart.
    pub fn open(
        store: S,
        keys: OperatorKeys,
        cfg: CoreConfig,
        mut rng: Entropy,
        now_ms: u64,
    ) -> Result<Self, StoreError> {
        let unit_rng = Entropy::from_seed(rng.bytes32());
        let mut core = Core {
            store,
            keys: std::sync::Arc::new(keys),
            signatures: std::sync::Arc::new(KnownKeys::default()),
            seal_tables: std::sync::Arc::default(),
            cfg,
            rng,
            unit_rng,
            unit_draws: 0,
            effects: VecDeque::new(),
            now: now_ms,
            roster: None,
            offices: BTreeMap::new(),
            tokens: BTreeMap::new(),
            sessions: BTreeMap::new(),
            bindings: lookup_map::LookupMap::default(),
            binding_seq: 0,
            conflicts: BTreeMap::new(),
            assigned: BTreeMap::new(),
            holdings: BTreeMap::new(),
            schedule: BTreeSet::new(),
            due_of: BTreeMap::new(),
            by_dest: BTreeMap::new(),
            attempts: BTreeMap::new(),
            handed: BTreeMap::new(),
            retaken: BTreeSet::new(),
            outbox_cache: BTreeMap::new(),
            send_cache: BTreeMap::new(),
            send_cache_bytes: 0,
            receipt_schedule: BTreeSet::new(),
            receipt_due: BTreeMap::new(),
            receipt_to: BTreeMap::new(),
            flights: BTreeMap::new(),
            busy: BTreeMap::new(),
            peers_up: BTreeSet::new(),
            sync_cursor: BTreeMap::new(),
            next_sync_ms: now_ms,
            next_outbound: 1,
            wake_requested: None,
            pending_first: None,
            audit_head: (0, [0; 32]),
            seq: 0,
            seq_reserved: 0,
            counters: Counters::default(),
            sealing: BTreeMap::new(),
            sealing_keys: BTreeMap::new(),
            next_ticket: 1,
        };
        core.load_directory()?;
        core.load_sessions()?;
        core.load_schedules()?;
        core.audit_head = audit::load_head(&mut core.store)?;
        core.seq = core.load_seq()?;
        core.seq_reserved = core.seq;
        core.rebind_after_rotation()?;
        core.index_inbox()?;
        core.announce_roster();
        core.pump()?;
        Ok(core)
    }

    /// Feeds one input at time `now_ms` (drivers go through [`Batch::handle`]).
    pub(crate) fn handle(&mut self, now_ms: u64, input: Input) -> Result<(), StoreError> {
        self.now = self.now.max(now_ms);
        match input {
            Input::Api { id, auth, cmd } => {
                // A submission answers later, once sealed and stored (`Input::Sealed`).
                if let Some(reply) = self.api(id, auth, cmd)? {
                    self.effects.push_back(Effect::Reply { id, reply });
                }
            }
            Input::Sealed { ticket, sealed } => self.sealed(ticket, sealed)?,
            Input::Inbound { id, from, request } => {
                let response = self.inbound(from, request)?;
                self.effects.push_back(Effect::Respond { id, response });
            }
            Input::Deliver {
                id,
                from,
                envelopes,
            } => {
                let response = self.deliver_prepared_from(from, envelopes)?;
                self.effects.push_back(Effect::Respond { id, response });
            }
            Input::Receipts { id, from, receipts } => {
                let response = self.receipts_from(from, receipts)?;
                self.effects.push_back(Effect::Respond { id, response });
            }
            Input::Response { id, from, response } => {
                // Handed a raw response (simnet, tests): the prepare stage runs here.
                let prepared = PreparedResponse::new(&*self.signatures, response);
                self.on_response(id, from, prepared)?;
            }
            Input::Answer { id, from, response } => self.on_response(id, from, response)?,
            Input::SendFailed { id, to, error } => self.on_send_failed(id, to, &error)?,
            Input::PeerUp(p) => {
                self.peers_up.insert(p);
                self.expedite_toward(p);
                self.send_sync(p);
            }
            Input::PeerDown(p) => {
                self.peers_up.remove(&p);
            }
            Input::Tick => {}
        }
        Ok(())
    }

    /// Ends a batch without handing out its effects (tests that look at them separately):
    /// what [`Batch::commit`] does before it drains them.
    #[cfg(test)]
    pub(crate) fn commit(&mut self) -> Result<(), StoreError> {
        self.pump()?;
        self.store.commit()
    }

    /// Takes the effects produced so far. Release them only after the batch's flush (drivers
    /// get them from [`Batch::commit`] or [`Committing::finish`]).
    pub(crate) fn drain_effects(&mut self) -> Vec<Effect> {
        self.effects.drain(..).collect()
    }

    /// This node's operator id.
    pub fn id(&self) -> OperatorId {
        self.keys.id()
    }

    /// Whether `id` designates this node: its current operator id or a retired one kept in
    /// its key file (after a key rotation).
    pub fn is_me(&self, id: &OperatorId) -> bool {
        self.keys.is_own_id(id)
    }

    /// The store (read access for checkers and tools).
    pub fn store(&self) -> &S {
        &self.store
    }

    /// Checks signatures by `check` from now on (by default a [`KnownKeys`] of its own).
    /// A driver shares one with its prepare stage; simnet brings one that also remembers
    /// answers (each the answer of [`renkei_protocol::keys::Strict`] for the same inputs).
    pub fn check_signatures_with(&mut self, check: Signatures) {
        self.signatures = check;
    }

    /// Gives the store back (simnet: crash and reopen).
    pub fn into_store(self) -> S {
        self.store
    }

    /// Envelope ids drawn since open (each with an ephemeral sealing seed): the k-th unit
    /// sealed after open takes the k-th (id, seed) pair of the unit stream, whose seed is
    /// the first 32 bytes drawn from the [`Entropy`] handed to [`Core::open`]
    /// ([`unit_stream`]).
    #[cfg(test)]
    pub(crate) fn unit_draws(&self) -> u64 {
        self.unit_draws
    }

    /// Counters.
    pub fn counters(&self) -> &Counters {
        &self.counters
    }

    /// Number of envelopes waiting in the outbox.
    pub fn outbox_len(&self) -> usize {
        self.schedule.len()
    }

    /// A sequence number greater than every one drawn before (receipt keys within an
    /// envelope, the receipt outbox's order). The store keeps a reservation, not the last
    /// number: it is written once per [`SEQ_RESERVE`] numbers, so a group does not write
    /// the meta tree for each receipt (on the local store that was a write to sled's own log
    /// per commit group, ≈ 5 % of a busy node's CPU). After a restart, numbers continue past
    /// the reservation: gaps, never a number twice.
    fn next_seq(&mut self) -> Result<u64, StoreError> {
        self.seq += 1;
        if self.seq > self.seq_reserved {
            self.seq_reserved = self.seq + SEQ_RESERVE - 1;
            self.store.put(
                crate::store::Tree::Meta,
                b"seq",
                &self.seq_reserved.to_be_bytes(),
            )?;
        }
        Ok(self.seq)
    }

    /// The reservation of sequence numbers in the store (0 in a new store).
    fn load_seq(&self) -> Result<u64, StoreError> {
        Ok(self
            .store
            .get(crate::store::Tree::Meta, b"seq")?
            .and_then(|b| <[u8; 8]>::try_from(b.as_slice()).ok())
            .map_or(0, u64::from_be_bytes))
    }

    fn new_outbound(&mut self) -> OutboundId {
        let id = self.next_outbound;
        self.next_outbound += 1;
        id
    }

    fn backoff(&mut self, attempts: u32) -> u64 {
        let exp = self
            .cfg
            .retry_base_ms
            .saturating_mul(1u64 << attempts.min(30));
        let d = exp.min(self.cfg.retry_max_ms).max(1);
        d / 2 + self.rng.below(d / 2 + 1)
    }

    /// Sends what is due, asks for the next wake-up.
    fn pump(&mut self) -> Result<(), StoreError> {
        self.expire_due()?;
        self.send_due_envelopes()?;
        self.send_due_receipts()?;
        self.maybe_sync();
        // Items still due now are waiting for their peer's batch in flight; the response (or
        // failure) of that batch pumps again, so only future due times need a wake-up.
        // (Waking at now+1 for them would spin until the flight ends.)
        let mut next = self.next_sync_ms;
        if let Some((t, _)) = self
            .schedule
            .range((self.now + 1, EnvelopeId([0; 16]))..)
            .next()
        {
            next = next.min(*t);
        }
        if let Some((t, _)) = self.receipt_schedule.range((self.now + 1, 0)..).next() {
            next = next.min(*t);
        }
        if let Some(t) = self.next_expiry()? {
            next = next.min(t);
        }
        let next = next.max(self.now + 1);
        if self
            .wake_requested
            .is_none_or(|w| w <= self.now || next < w)
        {
            self.wake_requested = Some(next);
            self.effects.push_back(Effect::Wake { at_ms: next });
        }
        Ok(())
    }
}

/// The unit stream of a core opened with `rng` (see [`Core::unit_draws`]): a caller that
/// handed the core this source can tell the (id, ephemeral seed) pairs it will draw.
/// A signature check shared by a core and its driver's prepare stage (see
/// [`Core::check_signatures_with`]).
pub type Signatures = std::sync::Arc<dyn SignatureCheck + Send + Sync>;

#[cfg(test)]
pub(crate) fn unit_stream(mut rng: Entropy) -> Entropy {
    Entropy::from_seed(rng.bytes32())
}

/// The next (envelope id, ephemeral seed) pair of a unit stream.
pub(crate) fn next_unit_pair(stream: &mut Entropy) -> (EnvelopeId, [u8; 32]) {
    let id = EnvelopeId(stream.bytes16());
    (id, stream.bytes32())
}

#[cfg(test)]
impl<S: Store> Core<S> {
    pub(crate) fn store_mut_for_tests(&mut self) -> &mut S {
        &mut self.store
    }
}

#[cfg(test)]
mod tests;
