//! The simulator: one thread, virtual time, one seed. Node cores with memory stores exchange
//! requests over a simulated network (latency, loss, duplication, reordering, partitions,
//! holds), crash and restart, and run on skewed clocks. The queue is a `BTreeMap` keyed by
//! (time, sequence), so a run is a pure function of its seed and inputs.
//!
//! Driver rules (the same as production): a batch of inputs is handled, the store is
//! committed once, and only then are the batch's effects released. Every `Send` ends in
//! exactly one `Response` or `SendFailed` for the incarnation that sent it.

mod builder;
mod event;
mod group;
mod link;
mod log;

use std::collections::BTreeMap;

use renkei_core::store::{MemoryStore, Tree};
use renkei_core::{ApiCommand, ApiId, ApiReply, Auth, Core, CoreConfig, Effect, Input, OutboundId};
use renkei_protocol::envelope::Envelope;
use renkei_protocol::ids::{OfficeNumber, OperatorId, ServiceKind};
use renkei_protocol::keys::{OperatorKeys, SigningIdentity};
use renkei_protocol::rng::Entropy;
use renkei_protocol::roster::{OfficeBinding, SignedRoster};
use renkei_protocol::wire::{Request, Response};

pub use builder::{Broken, Builder, NetParams};
pub use event::{Fault, NodeIx};
pub use log::EventLog;

use event::{Event, FailWhy};
use link::Link;

/// Outbound ids of injected requests start here, far above any a core draws.
const INJECTED_IDS: OutboundId = 1 << 62;
/// Inputs handled per batch at most (one commit per batch).
const BATCH_INPUTS_MAX: usize = 64;
/// A mid-batch crash that finds no batch with writes within this long crashes the node
/// anyway (between batches).
const CRASH_FALLBACK_MS: u64 = 60_000;

/// One simulated operator node.
pub(crate) struct Node {
    pub(crate) name: String,
    pub(crate) keys: OperatorKeys,
    pub(crate) cfg: CoreConfig,
    pub(crate) core: Option<Core<MemoryStore>>,
    /// The store while the node is down.
    pub(crate) down: Option<MemoryStore>,
    pub(crate) life: u64,
    pub(crate) skew_ms: i64,
    pub(crate) wake: Option<u64>,
    pub(crate) crash_armed: bool,
    /// The seed of the [`Entropy`] the core was last opened with.
    pub(crate) entropy_seed: u64,
}

#[derive(Debug, Clone, Copy)]
struct InboundReq {
    from: NodeIx,
    from_life: u64,
    out: OutboundId,
}

/// Simulator statistics.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct SimStats {
    /// Queue events processed.
    pub events: u64,
    /// Core inputs handled.
    pub inputs: u64,
    /// Batches committed.
    pub batches: u64,
    /// Messages put on the network.
    pub messages: u64,
    /// Messages lost (loss, cuts).
    pub dropped: u64,
    /// Messages delivered twice.
    pub duplicated: u64,
    /// Requests that arrived with an envelope damaged in transit.
    pub corrupted: u64,
    /// Messages held and later released.
    pub held: u64,
    /// Requests that ended in SendFailed.
    pub send_failed: u64,
    /// Node crashes.
    pub crashes: u64,
    /// Crashes between handle and commit.
    pub mid_batch_crashes: u64,
    /// Broken-driver batches (effects released before commit, then crashed).
    pub broken_releases: u64,
    /// Batches handled side by side with other nodes' (see `sim/group.rs`).
    pub side_by_side: u64,
}

/// The simulated federation.
pub struct Sim {
    now: u64,
    rng: Entropy,
    queue: BTreeMap<(u64, u64), Event>,
    seq: u64,
    pub(crate) nodes: Vec<Node>,
    index: BTreeMap<OperatorId, NodeIx>,
    links: BTreeMap<(NodeIx, NodeIx), Link>,
    pending: BTreeMap<(NodeIx, u64, OutboundId), NodeIx>,
    inbound: BTreeMap<(NodeIx, u64), InboundReq>,
    next_inbound: u64,
    next_api: ApiId,
    /// Requests injected so far ([`Sim::inject`]).
    injected: u64,
    /// Answers to injected requests, not yet taken.
    injected_answers: Vec<(OutboundId, Response)>,
    replies: Vec<(ApiId, u64, ApiReply)>,
    net: NetParams,
    broken: Option<Broken>,
    roster: SignedRoster,
    /// The simulated federation authority (signs the roster and office assignments).
    authority: SigningIdentity,
    /// Signed bindings a lying member's node adds to every directory answer it gives
    /// ([`Sim::lie_in_directory`]).
    directory_lies: BTreeMap<NodeIx, Vec<Vec<u8>>>,
    /// A lying member's node that never passes on what it relays ([`Sim::drop_relayed`]).
    dropper: Option<NodeIx>,
    /// Relayed envelopes the dropper did not pass on.
    relayed_dropped: u64,
    /// Envelopes the dropper was given by their origin itself (the ones it drops).
    first_hop: std::collections::BTreeSet<renkei_protocol::ids::EnvelopeId>,
    /// The signature check every core of the run and its checkers share.
    signatures: std::sync::Arc<crate::signatures::Remembered>,
    log: EventLog,
    stats: SimStats,
    /// Set when a node's store fails: the run cannot go on (see [`Sim::host_failure`]).
    host_failure: Option<String>,
    /// Whether independent batches of different nodes may be handled on two threads
    /// (`sim/group.rs`; the run is the same either way).
    side_by_side: bool,
    /// Whether every independent batch is grouped, not only the directory's heavy ones
    /// (slower: it exists to check that grouping changes nothing).
    side_by_side_always: bool,
    /// The last time the current [`Sim::run_until`] may process: a group must not take an
    /// event past it, or what the caller queues at that time would land behind the group.
    until: u64,
}

impl Sim {
    /// A builder (turmoil style).
    pub fn builder() -> Builder {
        Builder::default()
    }

    /// Current virtual time (ms since the epoch, global clock).
    pub fn now(&self) -> u64 {
        self.now
    }

    /// Number of nodes.
    pub fn len(&self) -> usize {
        self.nodes.len()
    }

    /// Whether there are no nodes.
    pub fn is_empty(&self) -> bool {
        self.nodes.is_empty()
    }

    /// A node's display name.
    pub fn name(&self, n: NodeIx) -> &str {
        &self.nodes[n].name
    }

    /// The federation authority's assignment of `office` (service `kinds`) to node `to`'s
    /// operator since `since_ms`, signed and encoded: what `renkei federation assign`
    /// makes.
    pub fn assignment(
        &self,
        office: OfficeNumber,
        kinds: Vec<ServiceKind>,
        to: NodeIx,
        since_ms: u64,
        name: String,
    ) -> Vec<u8> {
        OfficeBinding {
            office,
            kinds,
            operator: self.id(to),
            since_ms,
            released: false,
            name,
        }
        .sign(&self.authority)
        .encode()
    }

    /// Makes node `n` add `binding` (signed, encoded) to every directory answer it gives
    /// from now on: how a lying member publishes claims on offices it does not home.
    pub fn lie_in_directory(&mut self, n: NodeIx, binding: Vec<u8>) {
        self.directory_lies.entry(n).or_default().push(binding);
    }

    /// Makes node `n` accept-and-drop: its core relays honestly (stores, signs
    /// `Accepted`, sends on), but every envelope an origin gave it directly is dropped on
    /// its way out. The core sees the requests time out. (What another relay hands it, it
    /// passes on: the origin watches only the relay it handed a unit to.)
    pub fn drop_relayed(&mut self, n: NodeIx) {
        self.dropper = Some(n);
    }

    /// The node that drops what it relays, if any.
    pub fn dropper(&self) -> Option<NodeIx> {
        self.dropper
    }

    /// Envelopes the dropper did not pass on, so far.
    pub fn relayed_dropped(&self) -> u64 {
        self.relayed_dropped
    }

    /// A node's operator keys (a lying member signs with its own).
    pub fn keys(&self, n: NodeIx) -> &OperatorKeys {
        &self.nodes[n].keys
    }

    /// A node's operator id.
    pub fn id(&self, n: NodeIx) -> OperatorId {
        self.nodes[n].keys.id()
    }

    /// Whether a node relays.
    pub fn is_relay(&self, n: NodeIx) -> bool {
        self.nodes[n].cfg.relay
    }

    /// A node's clock skew.
    pub fn skew_ms(&self, n: NodeIx) -> i64 {
        self.nodes[n].skew_ms
    }

    /// The node's local clock now.
    pub fn local_now(&self, n: NodeIx) -> u64 {
        local(self.now, self.nodes[n].skew_ms)
    }

    /// Node `n`'s clock at global time `global`.
    pub fn local_at(&self, n: NodeIx, global: u64) -> u64 {
        local(global, self.nodes[n].skew_ms)
    }

    /// Sends `request` from node `from` to node `to` as `from`'s node would (over the
    /// link, with its faults). The answer reaches `from`'s core, which ignores an id it
    /// never sent. For the lying member of [`crate::adversary`].
    pub fn inject(&mut self, from: NodeIx, to: NodeIx, request: Request) -> Option<OutboundId> {
        self.nodes[from].core.as_ref()?;
        let id = INJECTED_IDS + self.injected;
        self.injected += 1;
        let to = self.id(to);
        self.release(from, Effect::Send { id, to, request });
        Some(id)
    }

    /// The answers to injected requests that arrived since the last call (they do not
    /// reach the sender's core).
    pub fn take_injected_answers(&mut self) -> Vec<(OutboundId, Response)> {
        std::mem::take(&mut self.injected_answers)
    }

    /// The signature check the run's cores and checkers share.
    pub fn signatures(&self) -> &crate::signatures::Remembered {
        &self.signatures
    }

    /// The federation's roster.
    pub fn roster(&self) -> &SignedRoster {
        &self.roster
    }

    /// A node's store (up or down).
    pub fn store(&self, n: NodeIx) -> Option<&MemoryStore> {
        let node = &self.nodes[n];
        node.core.as_ref().map(|c| c.store()).or(node.down.as_ref())
    }

    /// A node's core, when up.
    pub fn core(&self, n: NodeIx) -> Option<&Core<MemoryStore>> {
        self.nodes[n].core.as_ref()
    }

    /// Whether a node is up.
    pub fn is_up(&self, n: NodeIx) -> bool {
        self.nodes[n].core.is_some()
    }

    /// Statistics so far.
    pub fn stats(&self) -> &SimStats {
        &self.stats
    }

    /// The event log (fingerprint, trace).
    pub fn log(&self) -> &EventLog {
        &self.log
    }

    /// Mutable event log (to finish the trace).
    pub fn log_mut(&mut self) -> &mut EventLog {
        &mut self.log
    }

    /// Writes the event log as text to `w` from now on.
    pub fn trace_to(&mut self, w: Box<dyn std::io::Write + Send + Sync>) {
        self.log.set_trace(w);
    }

    /// Adds a free-text note to the event log (derived options, phases).
    pub fn note(&mut self, text: &str) {
        self.log.note(self.now, text);
    }

    /// The simulator's own random source (workloads draw from it so one seed drives all).
    pub fn rng(&mut self) -> &mut Entropy {
        &mut self.rng
    }

    /// Queues an API command to node `n` now; the reply shows up in [`Sim::take_replies`].
    pub fn api(&mut self, n: NodeIx, auth: Auth, cmd: ApiCommand) -> ApiId {
        let id = self.next_api;
        self.next_api += 1;
        self.push(
            self.now,
            Event::Api {
                node: n,
                id,
                auth,
                cmd,
            },
        );
        id
    }

    /// Runs an API command to completion (processing everything due now) and returns its
    /// reply, if the node answered.
    pub fn call(&mut self, n: NodeIx, auth: Auth, cmd: ApiCommand) -> Option<ApiReply> {
        let id = self.api(n, auth, cmd);
        self.run_until(self.now);
        let pos = self.replies.iter().position(|(i, _, _)| *i == id)?;
        Some(self.replies.remove(pos).2)
    }

    /// Replies released since the last call: (api id, global time, reply).
    pub fn take_replies(&mut self) -> Vec<(ApiId, u64, ApiReply)> {
        std::mem::take(&mut self.replies)
    }

    /// Schedules a fault at a global time (now or later).
    pub fn schedule(&mut self, at: u64, fault: Fault) {
        self.push(at.max(self.now), Event::Fault(fault));
    }

    /// Injects a fault now.
    pub fn fault(&mut self, fault: Fault) {
        self.apply_fault(fault);
    }

    /// Processes every event up to and including time `t`, then sets the clock to `t`.
    pub fn run_until(&mut self, t: u64) {
        self.until = t;
        while self
            .queue
            .first_key_value()
            .is_some_and(|((at, _), _)| *at <= t)
        {
            if !self.step() {
                break;
            }
        }
        self.until = u64::MAX;
        self.now = self.now.max(t);
    }

    /// Runs for `ms` of virtual time.
    pub fn run_for(&mut self, ms: u64) {
        self.run_until(self.now + ms);
    }

    /// Whether every node is up with nothing left to do: no envelope awaiting a final
    /// receipt, nothing in an outbox or receipt outbox.
    pub fn settled(&self) -> bool {
        self.nodes.iter().enumerate().all(|(i, n)| {
            n.core.as_ref().is_some_and(|c| {
                let s = c.store();
                [Tree::Pending, Tree::ReceiptOutbox]
                    .iter()
                    .all(|t| s.values(*t).next().is_none())
                    // What a dropper holds and never passes on stays in its outbox.
                    && s.pairs_unordered(Tree::Outbox).all(|(k, _)| {
                        self.dropper == Some(i)
                            && renkei_protocol::ids::EnvelopeId::from_slice(k)
                                .is_ok_and(|id| self.first_hop.contains(&id))
                    })
            })
        })
    }

    /// Node `n`'s request `out` (of incarnation `life`) fails at `at`, unless answered first.
    fn fail_at(&mut self, at: u64, node: NodeIx, life: u64, out: OutboundId, why: FailWhy) {
        self.push(
            at,
            Event::Fail {
                node,
                life,
                out,
                why,
            },
        );
    }

    fn push(&mut self, at: u64, ev: Event) {
        self.seq += 1;
        self.queue.insert((at, self.seq), ev);
    }

    /// Processes one queue event (and, for node inputs, the inputs queued for the same
    /// node at the same time, as one batch). Returns false when the queue is empty.
    pub fn step(&mut self) -> bool {
        if self.host_failure.is_some() {
            return false;
        }
        if self.group_ahead() {
            self.step_group();
            return true;
        }
        let Some(((t, _), ev)) = self.queue.pop_first() else {
            return false;
        };
        self.now = self.now.max(t);
        self.stats.events += 1;
        let Some(node) = ev.input_node() else {
            self.control(ev);
            return true;
        };
        let mut inputs = Vec::new();
        if let Some(i) = self.resolve(ev) {
            inputs.push(i);
        }
        while inputs.len() < BATCH_INPUTS_MAX {
            let same = self
                .queue
                .first_key_value()
                .is_some_and(|((at, _), e)| *at == t && e.input_node() == Some(node));
            if !same {
                break;
            }
            let Some((_, ev)) = self.queue.pop_first() else {
                break;
            };
            self.stats.events += 1;
            if let Some(i) = self.resolve(ev) {
                inputs.push(i);
            }
        }
        if !inputs.is_empty() {
            self.run_batch(node, inputs);
        }
        true
    }

    /// Turns a node event into a core input, doing the driver's bookkeeping; None when the
    /// event is stale (an older incarnation, a request already answered, a node down).
    fn resolve(&mut self, ev: Event) -> Option<Input> {
        let t = self.now;
        match ev {
            Event::Api {
                node,
                id,
                auth,
                cmd,
            } => {
                if self.nodes[node].core.is_none() {
                    self.replies
                        .push((id, t, ApiReply::Internal("node is down".into())));
                    return None;
                }
                self.log.record(t, node, "api", &[id]);
                Some(Input::Api { id, auth, cmd })
            }
            Event::Request {
                to,
                to_life,
                from,
                from_life,
                out,
                request,
            } => {
                if !self.alive(to, to_life) {
                    return None;
                }
                let id = self.next_inbound;
                self.next_inbound += 1;
                self.inbound.insert(
                    (to, id),
                    InboundReq {
                        from,
                        from_life,
                        out,
                    },
                );
                if self.dropper == Some(to)
                    && let Request::Deliver(envs) = &request
                {
                    let from_id = self.id(from);
                    for b in envs {
                        if let Ok(e) = Envelope::decode(b)
                            && e.header().origin == from_id
                        {
                            self.first_hop.insert(e.id());
                        }
                    }
                }
                let kind = match &request {
                    Request::Deliver(e) => 1 + 16 * e.len() as u64,
                    Request::Receipts(r) => 2 + 16 * r.len() as u64,
                    Request::DirectorySync { .. } => 3,
                };
                self.log.record(t, to, "inbound", &[id, from as u64, kind]);
                Some(Input::Inbound {
                    id,
                    from: self.id(from),
                    request,
                })
            }
            Event::Response {
                to,
                life,
                from,
                out,
                response,
            } => {
                if !self.alive(to, life) || self.pending.remove(&(to, life, out)).is_none() {
                    return None;
                }
                self.log.record(t, to, "response", &[out, from as u64]);
                if out >= INJECTED_IDS {
                    self.injected_answers.push((out, response));
                    return None;
                }
                Some(Input::Response {
                    id: out,
                    from: self.id(from),
                    response,
                })
            }
            Event::Fail {
                node,
                life,
                out,
                why,
            } => {
                if !self.alive(node, life) {
                    return None;
                }
                let peer = self.pending.remove(&(node, life, out))?;
                self.stats.send_failed += 1;
                self.log
                    .record(t, node, "send_failed", &[out, peer as u64, why as u64]);
                Some(Input::SendFailed {
                    id: out,
                    to: self.id(peer),
                    error: why.text().into(),
                })
            }
            Event::Peer {
                node,
                life,
                peer,
                up,
            } => {
                if !self.alive(node, life) {
                    return None;
                }
                self.log.record(
                    t,
                    node,
                    if up { "peer_up" } else { "peer_down" },
                    &[peer as u64],
                );
                let id = self.id(peer);
                Some(if up {
                    Input::PeerUp(id)
                } else {
                    Input::PeerDown(id)
                })
            }
            Event::Sealed {
                node,
                life,
                ticket,
                sealed,
            } => {
                if !self.alive(node, life) {
                    return None;
                }
                self.log.record(t, node, "sealed", &[ticket]);
                Some(Input::Sealed {
                    ticket,
                    sealed: *sealed,
                })
            }
            Event::Wake { node, life, at } => {
                if !self.alive(node, life) || self.nodes[node].wake != Some(at) {
                    return None;
                }
                self.nodes[node].wake = None;
                self.log.record(t, node, "tick", &[]);
                Some(Input::Tick)
            }
            Event::Fault(_)
            | Event::LinkCheck { .. }
            | Event::Reconnect { .. }
            | Event::CrashFallback { .. } => None,
        }
    }

    fn alive(&self, n: NodeIx, life: u64) -> bool {
        self.nodes[n].core.is_some() && self.nodes[n].life == life
    }

    fn run_batch(&mut self, n: NodeIx, inputs: Vec<Input>) {
        let now = local(self.now, self.nodes[n].skew_ms);
        let risky = self.broken.as_ref().is_some_and(|b| {
            inputs.iter().any(|i| {
                matches!(
                    i,
                    Input::Api {
                        cmd: ApiCommand::Submit { .. },
                        ..
                    } | Input::Sealed { .. }
                ) || matches!(
                    i,
                    Input::Inbound {
                        request: Request::Deliver(_),
                        ..
                    }
                )
            }) && b.hits(self.nodes[n].cfg.relay)
        });
        let broken_now = risky
            && self
                .broken
                .as_ref()
                .is_some_and(|b| self.rng.below(1_000_000) < b.per_million());
        let crash_armed = self.nodes[n].crash_armed;
        self.stats.inputs += inputs.len() as u64;
        let Some(core) = self.nodes[n].core.as_mut() else {
            return;
        };
        let mut batch = core.batch(now);
        for input in inputs {
            if let Err(e) = batch.handle(input) {
                drop(batch);
                self.store_failed(n, &e);
                return;
            }
        }
        if crash_armed && batch.core().store().uncommitted() > 0 {
            drop(batch);
            self.stats.mid_batch_crashes += 1;
            self.log.record(self.now, n, "crash_mid_batch", &[]);
            self.crash_now(n);
            return;
        }
        if broken_now {
            // Deliberately wrong durability: the commit returns without making the batch's
            // writes durable (a lying fsync), its effects leave, then the node dies.
            batch.core().store().sync_fault().skip_next_sync();
        }
        let effects = match batch.commit() {
            Ok(effects) => effects,
            Err(e) => {
                self.store_failed(n, &e);
                return;
            }
        };
        if broken_now {
            self.stats.broken_releases += 1;
            for e in effects {
                self.release(n, e);
            }
            self.log.record(self.now, n, "broken_crash", &[]);
            self.crash_now(n);
            return;
        }
        self.stats.batches += 1;
        for e in effects {
            self.release(n, e);
        }
    }

    /// Performs one effect of node `n` (after its batch committed).
    fn release(&mut self, n: NodeIx, e: Effect) {
        let t = self.now;
        let life = self.nodes[n].life;
        match e {
            Effect::Send {
                id,
                to,
                mut request,
            } => {
                if self.dropper == Some(n)
                    && let Request::Deliver(envs) = &mut request
                {
                    let before = envs.len();
                    let first_hop = &self.first_hop;
                    envs.retain(|b| {
                        Envelope::decode(b).is_ok_and(|e| !first_hop.contains(&e.id()))
                    });
                    self.relayed_dropped += (before - envs.len()) as u64;
                    if envs.is_empty() {
                        // Nothing left to send: the request never leaves (it times out).
                        self.pending.insert((n, life, id), n);
                        self.fail_at(
                            t + self.net.request_timeout_ms,
                            n,
                            life,
                            id,
                            FailWhy::Timeout,
                        );
                        return;
                    }
                }
                let Some(&j) = self.index.get(&to) else {
                    self.pending.insert((n, life, id), n);
                    self.fail_at(
                        t + self.net.dial_fail_ms,
                        n,
                        life,
                        id,
                        FailWhy::NoConnection,
                    );
                    return;
                };
                self.log.record(t, n, "send", &[id, j as u64]);
                self.pending.insert((n, life, id), j);
                self.fail_at(
                    t + self.net.request_timeout_ms,
                    n,
                    life,
                    id,
                    FailWhy::Timeout,
                );
                if !self.connected(n, j) {
                    self.fail_at(
                        t + self.net.dial_fail_ms,
                        n,
                        life,
                        id,
                        FailWhy::NoConnection,
                    );
                    return;
                }
                let size = event::request_size(&request);
                let to_life = self.nodes[j].life;
                self.transmit(
                    n,
                    j,
                    size,
                    Event::Request {
                        to: j,
                        to_life,
                        from: n,
                        from_life: life,
                        out: id,
                        request,
                    },
                );
            }
            Effect::Respond { id, mut response } => {
                let Some(r) = self.inbound.remove(&(n, id)) else {
                    return;
                };
                if let (Some(lies), Response::Directory { bindings, .. }) =
                    (self.directory_lies.get(&n), &mut response)
                {
                    bindings.extend(lies.iter().cloned());
                }
                self.log.record(t, n, "respond", &[id, r.from as u64]);
                if self.connected(n, r.from) {
                    let size = event::response_size(&response);
                    self.transmit(
                        n,
                        r.from,
                        size,
                        Event::Response {
                            to: r.from,
                            life: r.from_life,
                            from: n,
                            out: r.out,
                            response,
                        },
                    );
                }
            }
            Effect::Reply { id, reply } => {
                self.log.record(t, n, "reply", &[id, reply_tag(&reply)]);
                self.replies.push((id, t, reply));
            }
            Effect::Wake { at_ms } => {
                let g = self.net.wake_granularity_ms.max(1);
                let at = global(at_ms, self.nodes[n].skew_ms).max(t).div_ceil(g) * g;
                let node = &mut self.nodes[n];
                if node.wake.is_none_or(|w| at < w) {
                    node.wake = Some(at);
                    self.push(at, Event::Wake { node: n, life, at });
                }
            }
            // The simulated network admits every simulated operator already.
            Effect::Roster { .. } => {}
            // No mail leaves a simulated federation.
            Effect::Notify { .. } => {}
            // The prepare stage: the job runs here, its answer is the node's next input.
            Effect::Seal { ticket, job } => {
                let sealed = Box::new(job.run());
                self.push(
                    t,
                    Event::Sealed {
                        node: n,
                        life,
                        ticket,
                        sealed,
                    },
                );
            }
        }
    }

    /// Node `n`'s store failed. A memory store fails only when the host does (a spill file
    /// that cannot be written or read: disk full, I/O error) or when a stored record does
    /// not decode (a bug): neither is a fault of the simulated federation, so the run stops
    /// here and says why, rather than crash the node and let the checkers report the
    /// consequences as if the federation had lost something.
    fn store_failed(&mut self, n: NodeIx, e: &renkei_core::store::StoreError) {
        let why = format!(
            "the store of node {n} ({}) failed at virtual time {} ms: {e}",
            self.nodes[n].name, self.now
        );
        tracing::error!("{why}");
        self.host_failure.get_or_insert(why);
    }

    /// Handles independent batches of different nodes one at a time (`false`) or, where
    /// worth it, two at a time on two threads (`true`, the default). The run is the same
    /// either way.
    pub fn set_side_by_side(&mut self, on: bool) {
        self.side_by_side = on;
    }

    /// Groups every independent batch, not only the directory's heavy ones (when side by
    /// side is on). Slower than the default — most batches are too small to be worth a
    /// second thread — it exists so that tests can check, on ordinary traffic, that
    /// grouping changes nothing.
    pub fn set_side_by_side_always(&mut self, on: bool) {
        self.side_by_side_always = on;
    }

    /// Why the run had to stop (a node's store failed), if it did: no event is processed
    /// after that, and the run's counts and checkers say nothing about the federation.
    pub fn host_failure(&self) -> Option<&str> {
        self.host_failure.as_deref()
    }

    /// Crashes node `n` now: uncommitted writes and unreleased effects are lost, its
    /// connections drop.
    fn crash_now(&mut self, n: NodeIx) {
        let node = &mut self.nodes[n];
        let Some(core) = node.core.take() else { return };
        let mut store = core.into_store();
        store.crash();
        node.down = Some(store);
        node.life += 1;
        node.wake = None;
        node.crash_armed = false;
        self.stats.crashes += 1;
        self.log.record(self.now, n, "crash", &[]);
        let t = self.now;
        // Requests it sent die with it; requests sent to it fail at their senders.
        let mine: Vec<(NodeIx, u64, OutboundId)> = self
            .pending
            .keys()
            .filter(|(i, _, _)| *i == n)
            .copied()
            .collect();
        for k in mine {
            self.pending.remove(&k);
        }
        let theirs: Vec<(NodeIx, u64, OutboundId)> = self
            .pending
            .iter()
            .filter(|(_, p)| **p == n)
            .map(|(k, _)| *k)
            .collect();
        for (i, g, out) in theirs {
            self.push(
                t + 1,
                Event::Fail {
                    node: i,
                    life: g,
                    out,
                    why: FailWhy::ConnectionLost,
                },
            );
        }
        let owed: Vec<(NodeIx, u64)> = self
            .inbound
            .keys()
            .filter(|(j, _)| *j == n)
            .copied()
            .collect();
        for k in owed {
            self.inbound.remove(&k);
        }
        let keys: Vec<(NodeIx, NodeIx)> = self
            .links
            .keys()
            .filter(|(a, b)| *a == n || *b == n)
            .copied()
            .collect();
        for (a, b) in keys {
            let peer = if a == n { b } else { a };
            if let Some(l) = self.links.get_mut(&(a, b))
                && l.connected
            {
                l.connected = false;
                let pg = self.nodes[peer].life;
                self.push(
                    t + 1,
                    Event::Peer {
                        node: peer,
                        life: pg,
                        peer: n,
                        up: false,
                    },
                );
            }
        }
    }

    fn restart(&mut self, n: NodeIx) {
        let seed = self.rng.next_u64();
        self.nodes[n].entropy_seed = seed;
        let now = self.local_now(n);
        let node = &mut self.nodes[n];
        let Some(store) = node.down.take() else {
            return;
        };
        match Core::open(
            store,
            node.keys.clone(),
            node.cfg.clone(),
            Entropy::from_u64(seed),
            now,
        ) {
            Ok(mut core) => {
                core.check_signatures_with(self.signatures.clone());
                let effects = match core.batch(now).commit() {
                    Ok(effects) => effects,
                    Err(e) => {
                        tracing::error!(node = n, error = %e, "node failed to reopen its store");
                        self.log.record(self.now, n, "restart_failed", &[]);
                        return;
                    }
                };
                node.core = Some(core);
                self.log.record(self.now, n, "restart", &[]);
                for e in effects {
                    self.release(n, e);
                }
            }
            Err(e) => {
                tracing::error!(node = n, error = %e, "node failed to reopen its store");
                self.log.record(self.now, n, "restart_failed", &[]);
                return;
            }
        }
        let keys: Vec<(NodeIx, NodeIx)> = self
            .links
            .keys()
            .filter(|(a, b)| *a == n || *b == n)
            .copied()
            .collect();
        for (a, b) in keys {
            self.schedule_reconnect(a, b);
        }
    }
}

fn local(global: u64, skew: i64) -> u64 {
    global.saturating_add_signed(skew)
}

fn global(local: u64, skew: i64) -> u64 {
    local.saturating_add_signed(-skew)
}

fn reply_tag(r: &ApiReply) -> u64 {
    match r {
        ApiReply::Accepted(_) => 1,
        ApiReply::Invalid(_) => 2,
        ApiReply::Unauthorized => 3,
        ApiReply::Forbidden(_) => 4,
        ApiReply::NotFound(_) => 5,
        ApiReply::BadRequest(_) => 6,
        ApiReply::Unroutable(_) => 7,
        ApiReply::Internal(_) => 8,
        _ => 0,
    }
}
