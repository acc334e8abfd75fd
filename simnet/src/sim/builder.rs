//! Building a simulated federation, turmoil style:
//!
//! ```
//! use renkei_simnet::sim::Sim;
//! let mut sim = Sim::builder().seed(7).relay("national").operator("east").operator("west")
//!     .link(0, 1).link(0, 2).latency_ms(2, 10).loss(0.01).build();
//! sim.run_for(60_000);
//! assert!(sim.settled());
//! ```

use std::collections::BTreeMap;

use renkei_core::store::{MemoryStore, SharedValues};
use renkei_core::{ApiCommand, ApiReply, Auth, Core, CoreConfig};
use renkei_protocol::keys::{OperatorKeys, SigningIdentity};
use renkei_protocol::rng::Entropy;
use renkei_protocol::roster::{OperatorEntry, Roster};

use super::event::{Event, NodeIx};
use super::link::{Link, key};
use super::log::EventLog;
use super::{Node, Sim, SimStats};
use crate::signatures::Remembered;

/// Network parameters (derived from a scenario, or set on the builder).
#[derive(Debug, Clone, serde::Serialize)]
pub struct NetParams {
    /// Smallest one-way latency.
    pub latency_min_ms: u64,
    /// Mean one-way latency.
    pub latency_mean_ms: u64,
    /// Link bandwidth.
    pub bandwidth_bytes_per_ms: u64,
    /// Message loss probability.
    pub loss: f64,
    /// Duplication probability.
    pub duplicate: f64,
    /// Probability that an envelope-carrying request arrives with one envelope damaged
    /// (a bit flipped, cut short, or its sealed payload swapped with another's).
    pub corrupt: f64,
    /// Reordering probability.
    pub reorder: f64,
    /// Extra delay of a reordered message.
    pub reorder_ms: u64,
    /// Request timeout (then SendFailed).
    pub request_timeout_ms: u64,
    /// Cut links go down after this long.
    pub keepalive_ms: u64,
    /// Links come back this long after repair or restart.
    pub reconnect_ms: u64,
    /// Sends over a down link fail after this long.
    pub dial_fail_ms: u64,
    /// Wake-ups are fed at the next multiple of this (1 = exactly when asked).
    pub wake_granularity_ms: u64,
}

impl Default for NetParams {
    fn default() -> Self {
        NetParams {
            latency_min_ms: 2,
            latency_mean_ms: 15,
            bandwidth_bytes_per_ms: 12_500,
            loss: 0.0,
            duplicate: 0.0,
            corrupt: 0.0,
            reorder: 0.0,
            reorder_ms: 200,
            request_timeout_ms: 30_000,
            keepalive_ms: 10_000,
            reconnect_ms: 2_000,
            dial_fail_ms: 1_000,
            wake_granularity_ms: 1,
        }
    }
}

/// A deliberately wrong driver, to prove the checkers can fail: for batches that submit
/// or accept envelopes, with the given probability, release the effects BEFORE the commit
/// and then crash the node (so a reply or receipt escapes without its data).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Broken {
    /// Probability per risky batch.
    pub probability: f64,
    /// Apply to relays too (otherwise only to non-relay nodes).
    pub relays: bool,
}

impl Broken {
    pub(crate) fn hits(&self, relay: bool) -> bool {
        self.relays || !relay
    }
    pub(crate) fn per_million(&self) -> u64 {
        (self.probability.clamp(0.0, 1.0) * 1_000_000.0) as u64
    }
}

/// Builds a [`Sim`].
#[derive(Debug, Clone)]
pub struct Builder {
    seed: u64,
    start_ms: u64,
    net: NetParams,
    nodes: Vec<(String, bool)>,
    links: Vec<(NodeIx, NodeIx)>,
    skews: BTreeMap<NodeIx, i64>,
    core: CoreConfig,
    broken: Option<Broken>,
    values: Option<SharedValues>,
    signatures: usize,
}

impl Default for Builder {
    fn default() -> Self {
        Builder {
            seed: 0,
            start_ms: 1_745_830_800_000,
            net: NetParams::default(),
            nodes: Vec::new(),
            links: Vec::new(),
            skews: BTreeMap::new(),
            core: CoreConfig::default(),
            broken: None,
            values: None,
            signatures: 1 << 20,
        }
    }
}

impl Builder {
    /// The value pool the nodes' stores share (default: a new heap pool); a pool made with
    /// [`SharedValues::spilling_to`] keeps bulky values in a file instead of memory.
    pub fn values(mut self, pool: SharedValues) -> Self {
        self.values = Some(pool);
        self
    }
    /// The seed: keys, core randomness, network and workload draws all derive from it.
    pub fn seed(mut self, seed: u64) -> Self {
        self.seed = seed;
        self
    }
    /// Virtual start time (ms since the epoch).
    pub fn start_ms(mut self, t: u64) -> Self {
        self.start_ms = t;
        self
    }
    /// All network parameters at once.
    pub fn net(mut self, net: NetParams) -> Self {
        self.net = net;
        self
    }
    /// Latency: minimum and mean one-way delay.
    pub fn latency_ms(mut self, min: u64, mean: u64) -> Self {
        self.net.latency_min_ms = min;
        self.net.latency_mean_ms = mean.max(min);
        self
    }
    /// Message loss probability.
    pub fn loss(mut self, p: f64) -> Self {
        self.net.loss = p;
        self
    }
    /// Duplication probability.
    pub fn duplicate(mut self, p: f64) -> Self {
        self.net.duplicate = p;
        self
    }
    /// Reordering probability and extra delay.
    pub fn reorder(mut self, p: f64, extra_ms: u64) -> Self {
        self.net.reorder = p;
        self.net.reorder_ms = extra_ms;
        self
    }
    /// Adds a relay operator; returns the builder (its index is the insertion order).
    pub fn relay(mut self, name: &str) -> Self {
        self.nodes.push((name.into(), true));
        self
    }
    /// Adds a (non-relay) operator.
    pub fn operator(mut self, name: &str) -> Self {
        self.nodes.push((name.into(), false));
        self
    }
    /// Links two nodes (they connect at start).
    pub fn link(mut self, a: NodeIx, b: NodeIx) -> Self {
        if a != b {
            self.links.push(key(a, b));
        }
        self
    }
    /// Clock skew of a node.
    pub fn skew_ms(mut self, n: NodeIx, skew: i64) -> Self {
        self.skews.insert(n, skew);
        self
    }
    /// Core settings template (name, relay and authority are set per node).
    pub fn core(mut self, cfg: CoreConfig) -> Self {
        self.core = cfg;
        self
    }
    /// Valid signatures the run's shared check remembers at most (default 2^20; see
    /// [`crate::signatures::Remembered`]).
    pub fn remember_signatures(mut self, capacity: usize) -> Self {
        self.signatures = capacity;
        self
    }
    /// Deliberately break the driver (tests of the checkers).
    pub fn broken(mut self, b: Broken) -> Self {
        self.broken = Some(b);
        self
    }

    /// Builds the federation: keys, a roster signed by a simulated authority and
    /// installed on every node, links connected.
    pub fn build(self) -> Sim {
        let mut rng = Entropy::from_u64(self.seed);
        let authority = SigningIdentity::from_seed(rng.bytes32());
        let keys: Vec<OperatorKeys> = self
            .nodes
            .iter()
            .map(|_| OperatorKeys::from_seeds(rng.bytes32(), rng.bytes32()))
            .collect();
        let valid_from = self.start_ms.saturating_sub(86_400_000);
        let roster = Roster {
            serial: 1,
            issued_at_ms: valid_from,
            authority: authority.id(),
            operators: self
                .nodes
                .iter()
                .zip(&keys)
                .map(|((name, relay), k)| OperatorEntry {
                    name: name.clone(),
                    id: k.id(),
                    enc_key: k.seal.public(),
                    relay: *relay,
                    addrs: vec![],
                    valid_from_ms: valid_from,
                    valid_until_ms: None,
                    old_keys: vec![],
                })
                .collect(),
        }
        .sign(&authority);
        let mut nodes = Vec::new();
        let mut index = BTreeMap::new();
        // Origin, relays and destination hold the same envelope bytes; keep one copy.
        let shared = self.values.clone().unwrap_or_default();
        let signatures = std::sync::Arc::new(Remembered::new(self.signatures));
        for (i, ((name, relay), k)) in self.nodes.iter().zip(keys).enumerate() {
            let cfg = CoreConfig {
                name: name.clone(),
                relay: *relay,
                authority: Some(authority.id()),
                ..self.core.clone()
            };
            let skew = self.skews.get(&i).copied().unwrap_or(0);
            let now = self.start_ms.saturating_add_signed(skew);
            let entropy_seed = rng.next_u64();
            let core = match Core::open(
                MemoryStore::with_shared(shared.clone()),
                k.clone(),
                cfg.clone(),
                Entropy::from_u64(entropy_seed),
                now,
            ) {
                Ok(mut c) => {
                    c.check_signatures_with(signatures.clone());
                    Some(c)
                }
                Err(e) => {
                    tracing::error!(node = i, error = %e, "opening an empty memory store failed");
                    None
                }
            };
            index.insert(k.id(), i);
            nodes.push(Node {
                name: name.clone(),
                keys: k,
                cfg,
                down: None,
                core,
                life: 0,
                skew_ms: skew,
                wake: None,
                crash_armed: false,
                entropy_seed,
            });
        }
        let mut links = BTreeMap::new();
        for l in &self.links {
            links.insert(
                *l,
                Link {
                    connected: true,
                    ..Link::default()
                },
            );
        }
        let mut sim = Sim {
            now: self.start_ms,
            rng,
            queue: BTreeMap::new(),
            seq: 0,
            nodes,
            index,
            links,
            pending: BTreeMap::new(),
            inbound: BTreeMap::new(),
            next_inbound: 1,
            next_api: 1,
            injected: 0,
            injected_answers: Vec::new(),
            replies: Vec::new(),
            net: self.net,
            broken: self.broken,
            roster,
            authority,
            directory_lies: BTreeMap::new(),
            dropper: None,
            relayed_dropped: 0,
            first_hop: Default::default(),
            signatures,
            log: EventLog::new(),
            stats: SimStats::default(),
            host_failure: None,
            side_by_side: true,
            side_by_side_always: false,
            until: u64::MAX,
        };
        // Initial effects (wake-ups) of the fresh cores.
        for n in 0..sim.nodes.len() {
            let now = self.start_ms.saturating_add_signed(sim.nodes[n].skew_ms);
            let effects = match sim.nodes[n].core.as_mut().map(|c| c.batch(now).commit()) {
                Some(Ok(effects)) => effects,
                Some(Err(e)) => {
                    tracing::error!(node = n, error = %e, "committing a fresh memory store failed");
                    Vec::new()
                }
                None => Vec::new(),
            };
            for e in effects {
                sim.release(n, e);
            }
        }
        let encoded = sim.roster.encode();
        for n in 0..sim.nodes.len() {
            let r = sim.call(
                n,
                Auth::Operator,
                ApiCommand::SetRoster {
                    roster: encoded.clone(),
                },
            );
            if !matches!(r, Some(ApiReply::Done)) {
                tracing::error!(node = n, reply = ?r, "installing the roster failed");
            }
        }
        let t = sim.now;
        for (a, b) in self.links {
            let (ga, gb) = (sim.nodes[a].life, sim.nodes[b].life);
            sim.push(
                t,
                Event::Peer {
                    node: a,
                    life: ga,
                    peer: b,
                    up: true,
                },
            );
            sim.push(
                t,
                Event::Peer {
                    node: b,
                    life: gb,
                    peer: a,
                    up: true,
                },
            );
        }
        sim.run_until(t);
        sim
    }
}
