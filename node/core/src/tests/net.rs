//! A tiny deterministic network of cores for the core's unit tests: zero-latency FIFO
//! delivery over links that can be cut, virtual time, crashes that lose uncommitted writes.
#![allow(clippy::unwrap_used, dead_code)]

use std::collections::{BTreeMap, BTreeSet, VecDeque};

use renkei_protocol::envelope::sha256;
use renkei_protocol::ids::OperatorId;
use renkei_protocol::keys::{OperatorKeys, SigningIdentity};
use renkei_protocol::rng::Entropy;
use renkei_protocol::roster::{OldKey, OperatorEntry, Roster, SignedRoster};
use renkei_protocol::wire::{HopOutcome, Request, Response};

use crate::io::{ApiCommand, ApiReply, Auth, Effect, Input};
use crate::store::{MemoryStore, Store, Tree};
use crate::{Core, CoreConfig};

const T0: u64 = 1_750_000_000_000;

pub struct Node {
    core: Option<Core<MemoryStore>>,
    keys: OperatorKeys,
    cfg: CoreConfig,
    wake: Option<u64>,
    generation: u64,
}

/// Rewrites node `i`'s response in place.
pub type Tamper = Box<dyn FnMut(usize, &mut Response)>;

pub struct Net {
    nodes: Vec<Node>,
    pub now: u64,
    queue: VecDeque<(usize, Input)>,
    links: BTreeSet<(usize, usize)>,
    replies: BTreeMap<u64, ApiReply>,
    next_api: u64,
    next_inbound: u64,
    inbound: BTreeMap<(usize, u64), (usize, u64)>,
    pub roster: SignedRoster,
    pub authority: SigningIdentity,
    pub expiry_ms: u64,
    crash_plan: Option<(usize, usize)>,
    /// Rewrites node `i`'s responses before they reach the requester (adversarial tests).
    pub tamper: Option<Tamper>,
    /// Nodes that take requests and never answer (a stuck peer: no failure, no response).
    pub stuck: BTreeSet<usize>,
    /// E-mail notices the nodes asked for: (node, office, address).
    pub notices: Vec<(usize, renkei_protocol::ids::OfficeNumber, String)>,
    /// Every delivery request sent over a link: (from, to, each envelope's length).
    pub deliveries: Vec<(usize, usize, Vec<usize>)>,
    /// The request id of each entry of `deliveries`, as its sender knows it.
    pub delivery_ids: Vec<u64>,
    /// Every receipt request sent over a link: (from, to, how many receipts).
    pub receipt_sends: Vec<(usize, usize, usize)>,
    /// The last peer list each node announced to its transport (`Effect::Roster`).
    pub announced: BTreeMap<usize, Vec<crate::io::RosterPeer>>,
}

/// The files of a fixture send unit directory, sorted by name.
pub fn fixture_unit(dir: &str) -> Vec<(String, Vec<u8>)> {
    let root = concat!(env!("CARGO_MANIFEST_DIR"), "/../../fixtures/valid/");
    let mut out: Vec<(String, Vec<u8>)> = std::fs::read_dir(format!("{root}{dir}"))
        .unwrap()
        .map(|e| e.unwrap())
        .map(|e| {
            (
                e.file_name().to_string_lossy().into_owned(),
                std::fs::read(e.path()).unwrap(),
            )
        })
        .collect();
    out.sort();
    out
}

/// The same unit under another 14-digit stamp (a newer or older version).
pub fn rename_stamp(files: &[(String, Vec<u8>)], stamp: &str) -> Vec<(String, Vec<u8>)> {
    files
        .iter()
        .map(|(n, b)| {
            let old = n
                .rsplit('_')
                .next()
                .unwrap()
                .split('.')
                .next()
                .unwrap()
                .to_owned();
            (n.replace(&old, stamp), b.clone())
        })
        .collect()
}

/// The same unit with only the records of the users whose 被保険者番号 (the third field of
/// every record of these layouts) is in `insured`: a unit for fewer users. (A record ends
/// at a line break outside quotes; MS932's second bytes are never `"`.)
pub fn keep_users(files: &[(String, Vec<u8>)], insured: &[&str]) -> Vec<(String, Vec<u8>)> {
    files
        .iter()
        .map(|(n, b)| {
            let mut kept = Vec::new();
            let (mut start, mut quoted) = (0, false);
            for (i, c) in b.iter().enumerate() {
                match c {
                    b'"' => quoted = !quoted,
                    b'\n' if !quoted => {
                        let record = &b[start..=i];
                        if record
                            .split(|c| *c == b',')
                            .nth(2)
                            .is_some_and(|f| insured.iter().any(|u| u.as_bytes() == f))
                        {
                            kept.extend_from_slice(record);
                        }
                        start = i + 1;
                    }
                    _ => {}
                }
            }
            (n.clone(), kept)
        })
        .collect()
}

/// `b` with every `from` replaced by `to` (same length).
pub fn replace_bytes(b: &[u8], from: &[u8], to: &[u8]) -> Vec<u8> {
    let mut out = b.to_vec();
    let mut i = 0;
    while i + from.len() <= out.len() {
        if &out[i..i + from.len()] == from {
            out[i..i + from.len()].copy_from_slice(to);
            i += from.len();
        } else {
            i += 1;
        }
    }
    out
}

fn link(a: usize, b: usize) -> (usize, usize) {
    (a.min(b), a.max(b))
}

impl Net {
    pub fn new(spec: &[(&str, bool)]) -> Net {
        Net::new_with(spec, |_| {})
    }

    /// Like [`Net::new`], with every node's core config adjusted by `tweak`.
    pub fn new_with(spec: &[(&str, bool)], tweak: fn(&mut CoreConfig)) -> Net {
        let authority = SigningIdentity::from_seed([0xAA; 32]);
        let keys: Vec<OperatorKeys> = (0..spec.len())
            .map(|i| OperatorKeys::from_seeds([i as u8 + 1; 32], [i as u8 + 101; 32]))
            .collect();
        let roster = Roster {
            serial: 1,
            issued_at_ms: T0 - 1000,
            authority: authority.id(),
            operators: spec
                .iter()
                .zip(&keys)
                .map(|((name, relay), k)| OperatorEntry {
                    name: (*name).into(),
                    id: k.id(),
                    enc_key: k.seal.public(),
                    relay: *relay,
                    addrs: vec![],
                    valid_from_ms: T0 - 1000,
                    valid_until_ms: None,
                    old_keys: vec![],
                })
                .collect(),
        }
        .sign(&authority);
        let expiry_ms = 3_600_000;
        let mut net = Net {
            nodes: vec![],
            now: T0,
            queue: VecDeque::new(),
            links: BTreeSet::new(),
            replies: BTreeMap::new(),
            notices: Vec::new(),
            next_api: 1,
            next_inbound: 1,
            inbound: BTreeMap::new(),
            roster,
            authority: authority.clone(),
            expiry_ms,
            crash_plan: None,
            tamper: None,
            stuck: BTreeSet::new(),
            deliveries: Vec::new(),
            delivery_ids: Vec::new(),
            receipt_sends: Vec::new(),
            announced: BTreeMap::new(),
        };
        for ((name, relay), k) in spec.iter().zip(keys) {
            let mut cfg = CoreConfig {
                name: (*name).into(),
                relay: *relay,
                authority: Some(authority.id()),
                expiry_ms,
                ..CoreConfig::default()
            };
            tweak(&mut cfg);
            let i = net.nodes.len() as u64;
            let core = Core::open(
                MemoryStore::new(),
                k.clone(),
                cfg.clone(),
                Entropy::from_u64(i),
                T0,
            )
            .unwrap();
            net.nodes.push(Node {
                core: Some(core),
                keys: k,
                cfg,
                wake: None,
                generation: 0,
            });
        }
        for i in 0..net.nodes.len() {
            let r = net.operator(
                i,
                ApiCommand::SetRoster {
                    roster: net.roster.encode(),
                },
            );
            assert!(matches!(r, ApiReply::Done), "{r:?}");
        }
        net
    }

    pub fn id(&self, i: usize) -> OperatorId {
        self.nodes[i].keys.id()
    }

    pub fn core(&self, i: usize) -> &Core<MemoryStore> {
        self.nodes[i].core.as_ref().unwrap()
    }

    pub fn core_mut(&mut self, i: usize) -> &mut Core<MemoryStore> {
        self.nodes[i].core.as_mut().unwrap()
    }

    pub fn memory(&self, i: usize) -> &MemoryStore {
        self.core(i).store()
    }

    pub fn store(&self, i: usize) -> &dyn Store {
        self.core(i).store()
    }

    fn step(&mut self, i: usize, input: Input) {
        if let Some((k, target)) = self.crash_plan
            && target == i
        {
            if k == 0 {
                self.crash_plan = None;
                self.nodes[i]
                    .core
                    .as_mut()
                    .unwrap()
                    .handle(self.now, input)
                    .unwrap();
                self.crash(i);
                return;
            }
            self.crash_plan = Some((k - 1, target));
        }
        let core = self.nodes[i].core.as_mut().unwrap();
        core.handle(self.now, input).unwrap();
        core.commit().unwrap();
        for e in core.drain_effects() {
            self.effect(i, e);
        }
    }

    fn effect(&mut self, i: usize, e: Effect) {
        match e {
            Effect::Send { id, to, request } => {
                let j = self.nodes.iter().position(|n| n.keys.id() == to);
                let linked = j.filter(|j| self.links.contains(&link(i, *j)));
                match (linked, &request) {
                    (Some(j), Request::Deliver(envs)) => {
                        self.deliveries
                            .push((i, j, envs.iter().map(Vec::len).collect()));
                        self.delivery_ids.push(id);
                    }
                    (Some(j), Request::Receipts(rs)) => self.receipt_sends.push((i, j, rs.len())),
                    _ => {}
                }
                match linked {
                    Some(j) if self.stuck.contains(&j) => {}
                    Some(j) => {
                        let inb = self.next_inbound;
                        self.next_inbound += 1;
                        self.inbound.insert((j, inb), (i, id));
                        let from = self.id(i);
                        self.queue.push_back((
                            j,
                            Input::Inbound {
                                id: inb,
                                from,
                                request,
                            },
                        ));
                    }
                    None => self.queue.push_back((
                        i,
                        Input::SendFailed {
                            id,
                            to,
                            error: "no link".into(),
                        },
                    )),
                }
            }
            Effect::Respond { id, mut response } => {
                if let Some(t) = self.tamper.as_mut() {
                    t(i, &mut response);
                }
                if let Some((req, out)) = self.inbound.remove(&(i, id)) {
                    let from = self.id(i);
                    if self.links.contains(&link(i, req)) {
                        self.queue.push_back((
                            req,
                            Input::Response {
                                id: out,
                                from,
                                response,
                            },
                        ));
                    } else {
                        self.queue.push_back((
                            req,
                            Input::SendFailed {
                                id: out,
                                to: from,
                                error: "link cut".into(),
                            },
                        ));
                    }
                }
            }
            Effect::Reply { id, reply } => {
                self.replies.insert(id, reply);
            }
            Effect::Wake { at_ms } => {
                let w = &mut self.nodes[i].wake;
                *w = Some(w.map_or(at_ms, |x| x.min(at_ms)));
            }
            Effect::Roster { peers } => {
                self.announced.insert(i, peers);
            }
            Effect::Notify { office, email, .. } => self.notices.push((i, office, email)),
            // The prepare stage of this network: inline, next in the queue.
            Effect::Seal { ticket, job } => self.queue.push_back((
                i,
                Input::Sealed {
                    ticket,
                    sealed: job.run(),
                },
            )),
        }
    }

    fn drain(&mut self) {
        let mut steps = 0u64;
        while let Some((i, input)) = self.queue.pop_front() {
            self.step(i, input);
            steps += 1;
            assert!(steps < 5_000_000, "no quiescence");
        }
    }

    /// Hands node `i` one input now (and everything that follows from it).
    pub fn input(&mut self, i: usize, input: Input) {
        self.queue.push_back((i, input));
        self.drain();
    }

    /// Forgets the requests recorded so far (`deliveries`, `delivery_ids`, `receipt_sends`).
    pub fn clear_sent(&mut self) {
        self.deliveries.clear();
        self.delivery_ids.clear();
        self.receipt_sends.clear();
    }

    pub fn run_for(&mut self, ms: u64) {
        let end = self.now + ms;
        loop {
            self.drain();
            let next = self.nodes.iter().filter_map(|n| n.wake).min();
            match next {
                Some(t) if t <= end => {
                    self.now = self.now.max(t);
                    for i in 0..self.nodes.len() {
                        if self.nodes[i].wake.is_some_and(|w| w <= self.now) {
                            self.nodes[i].wake = None;
                            self.queue.push_back((i, Input::Tick));
                        }
                    }
                }
                _ => {
                    self.now = end;
                    return;
                }
            }
        }
    }

    pub fn api_token(&mut self, i: usize, token_hash: [u8; 32], cmd: ApiCommand) -> ApiReply {
        self.call(i, Auth::Office(token_hash), cmd)
    }

    pub fn api(&mut self, i: usize, office: &str, cmd: ApiCommand) -> ApiReply {
        self.call(i, Auth::Office(sha256(office.as_bytes())), cmd)
    }

    pub fn operator(&mut self, i: usize, cmd: ApiCommand) -> ApiReply {
        self.call(i, Auth::Operator, cmd)
    }

    fn call(&mut self, i: usize, auth: Auth, cmd: ApiCommand) -> ApiReply {
        let id = self.next_api;
        self.next_api += 1;
        self.queue.push_back((i, Input::Api { id, auth, cmd }));
        self.drain();
        self.replies
            .remove(&id)
            .unwrap_or(ApiReply::Internal("node crashed before replying".into()))
    }

    /// Several office commands queued together (so each is handled before any seal job
    /// runs), then drained; their replies in order.
    pub fn api_together(&mut self, i: usize, office: &str, cmds: Vec<ApiCommand>) -> Vec<ApiReply> {
        let ids: Vec<u64> = cmds
            .into_iter()
            .map(|cmd| {
                let id = self.next_api;
                self.next_api += 1;
                let auth = Auth::Office(sha256(office.as_bytes()));
                self.queue.push_back((i, Input::Api { id, auth, cmd }));
                id
            })
            .collect();
        self.drain();
        ids.into_iter()
            .map(|id| {
                self.replies
                    .remove(&id)
                    .unwrap_or(ApiReply::Internal("no reply".into()))
            })
            .collect()
    }

    /// The offices most tests use: the care manager CM (居宅, 43) on node 0 and the
    /// service office SVC (11) on node 1.
    pub fn add_cm_and_svc(&mut self) {
        self.add_office(0, super::CM, "43");
        self.add_office(1, super::SVC, "11");
    }

    pub fn add_office(&mut self, i: usize, office: &str, kind: &str) {
        let r = self.operator(
            i,
            ApiCommand::AddOffice {
                office: office.parse().unwrap(),
                kinds: vec![kind.parse().unwrap()],
                name: format!("office {office}"),
                token_hash: sha256(office.as_bytes()),
            },
        );
        assert!(matches!(r, ApiReply::Office(_)), "{r:?}");
    }

    pub fn connect(&mut self, a: usize, b: usize) {
        if self.links.insert(link(a, b)) {
            let (ia, ib) = (self.id(a), self.id(b));
            self.queue.push_back((a, Input::PeerUp(ib)));
            self.queue.push_back((b, Input::PeerUp(ia)));
            self.drain();
        }
    }

    pub fn heal(&mut self, a: usize, b: usize) {
        self.connect(a, b);
    }

    pub fn partition(&mut self, a: usize, b: usize) {
        if self.links.remove(&link(a, b)) {
            let (ia, ib) = (self.id(a), self.id(b));
            self.queue.push_back((a, Input::PeerDown(ib)));
            self.queue.push_back((b, Input::PeerDown(ia)));
            self.drain();
        }
    }

    pub fn heal_all(&mut self) {
        for a in 0..self.nodes.len() {
            for b in a + 1..self.nodes.len() {
                if self.nodes[a].cfg.relay || self.nodes[b].cfg.relay || self.nodes.len() == 2 {
                    self.connect(a, b);
                }
            }
        }
    }

    /// Crashes node `i` (uncommitted writes and unreleased effects are lost) and restarts it.
    pub fn crash(&mut self, i: usize) {
        let node = &mut self.nodes[i];
        let mut store = node.core.take().unwrap().into_store();
        store.crash();
        node.generation += 1;
        node.wake = None;
        let seed = 1000 * node.generation + i as u64;
        node.core = Some(
            Core::open(
                store,
                node.keys.clone(),
                node.cfg.clone(),
                Entropy::from_u64(seed),
                self.now,
            )
            .unwrap(),
        );
        // Requests it owed an answer to fail at their senders.
        let owed: Vec<(u64, (usize, u64))> = self
            .inbound
            .iter()
            .filter(|((j, _), _)| *j == i)
            .map(|((_, inb), v)| (*inb, *v))
            .collect();
        for (inb, (req, out)) in owed {
            self.inbound.remove(&(i, inb));
            let to = self.id(i);
            self.queue.push_back((
                req,
                Input::SendFailed {
                    id: out,
                    to,
                    error: "peer crashed".into(),
                },
            ));
        }
        let peers: Vec<usize> = self
            .links
            .iter()
            .filter_map(|&(a, b)| {
                if a == i {
                    Some(b)
                } else if b == i {
                    Some(a)
                } else {
                    None
                }
            })
            .collect();
        for p in peers {
            let pid = self.id(p);
            self.queue.push_back((i, Input::PeerUp(pid)));
        }
        let core = self.nodes[i].core.as_mut().unwrap();
        for e in core.drain_effects() {
            self.effect(i, e);
        }
    }

    /// Key rotation of node `i`: it stops cleanly, its keys rotate to the given seeds, and it
    /// restarts under the new key (its links re-announced under the new id). The
    /// authority's roster gets the new key with the old one retired until `expires_ms`;
    /// it is installed on no node (see [`Net::install_roster`]). Returns the old id.
    pub fn rotate(&mut self, i: usize, seeds: ([u8; 32], [u8; 32]), expires_ms: u64) -> OperatorId {
        let old = self.id(i);
        let mut r = self.roster.roster().clone();
        r.serial += 1;
        let node = &mut self.nodes[i];
        node.keys = node.keys.clone().rotate(seeds.0, seeds.1);
        let e = r.operators.iter_mut().find(|o| o.id == old).unwrap();
        e.old_keys.push(OldKey {
            id: e.id,
            enc_key: e.enc_key,
            expires_ms,
        });
        e.id = node.keys.id();
        e.enc_key = node.keys.seal.public();
        self.roster = r.sign(&self.authority);
        let store = node.core.take().unwrap().into_store();
        node.generation += 1;
        node.wake = None;
        let seed = 1000 * node.generation + i as u64;
        node.core = Some(
            Core::open(
                store,
                node.keys.clone(),
                node.cfg.clone(),
                Entropy::from_u64(seed),
                self.now,
            )
            .unwrap(),
        );
        let core = self.nodes[i].core.as_mut().unwrap();
        for e in core.drain_effects() {
            self.effect(i, e);
        }
        let peers: Vec<usize> = self
            .links
            .iter()
            .filter_map(|&(a, b)| (a == i).then_some(b).or((b == i).then_some(a)))
            .collect();
        let new = self.id(i);
        for p in peers {
            let pid = self.id(p);
            self.queue.push_back((p, Input::PeerDown(old)));
            self.queue.push_back((p, Input::PeerUp(new)));
            self.queue.push_back((i, Input::PeerUp(pid)));
        }
        self.drain();
        old
    }

    /// Installs the authority's current roster on node `i`.
    pub fn install_roster(&mut self, i: usize) {
        let roster = self.roster.encode();
        let r = self.operator(i, ApiCommand::SetRoster { roster });
        assert!(matches!(r, ApiReply::Done), "{r:?}");
    }

    /// Node `i` crashes (before committing) on its `k`-th input from now.
    pub fn crash_on_step(&mut self, k: usize, i: usize) {
        self.crash_plan = Some((k, i));
    }

    /// Delivers raw envelope bytes from node `from` to node `to`; returns the receipt.
    pub fn deliver_raw(&mut self, from: usize, to: usize, env: Vec<u8>) -> Vec<u8> {
        match self.inbound_from(to, self.id(from), Request::Deliver(vec![env])) {
            Response::HopAcks(acks) => match &acks[0].outcome {
                HopOutcome::Accepted(r) | HopOutcome::Rejected(r) => r.clone(),
                HopOutcome::RetryLater(w) => panic!("retry later: {w}"),
            },
            other => panic!("{other:?}"),
        }
    }

    /// A request from any operator id straight into node `i`; returns its response.
    pub fn inbound_from(&mut self, i: usize, from: OperatorId, request: Request) -> Response {
        let inb = 1_000_000_000 + self.next_inbound;
        self.next_inbound += 1;
        let core = self.nodes[i].core.as_mut().unwrap();
        core.handle(
            self.now,
            Input::Inbound {
                id: inb,
                from,
                request,
            },
        )
        .unwrap();
        core.commit().unwrap();
        let mut out = None;
        for e in core.drain_effects() {
            match e {
                Effect::Respond { id, response } if id == inb => out = Some(response),
                other => self.effect(i, other),
            }
        }
        self.drain();
        out.unwrap()
    }

    /// Edits an audit entry behind the core's back.
    pub fn tamper_audit(&mut self, i: usize, seq: u64) {
        let store = self.nodes[i].core.as_mut().unwrap();
        let key = seq.to_be_bytes();
        let mut rec: crate::records::AuditRec =
            crate::records::get(store.store(), Tree::Audit, &key)
                .unwrap()
                .unwrap();
        rec.detail.push_str(" (edited)");
        store
            .store_mut_for_tests()
            .put(Tree::Audit, &key, &crate::records::encode(&rec))
            .unwrap();
    }
}

impl MemoryStore {
    /// A raw value.
    pub fn get_raw(&self, tree: Tree, key: &[u8]) -> Option<Vec<u8>> {
        self.get(tree, key).unwrap()
    }

    /// Every value of every tree.
    pub fn values_all(&self) -> Vec<Vec<u8>> {
        Tree::ALL
            .iter()
            .flat_map(|t| self.values(*t).map(|v| v.to_vec()).collect::<Vec<_>>())
            .collect()
    }
}
