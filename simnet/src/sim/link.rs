//! Links between nodes and the faults that act on them: latency, loss, duplication,
//! reordering, cuts (both ways or one way), holds, disconnect after the keepalive, and
//! reconnection after repair or restart.

use ciborium::value::Value;
use renkei_protocol::cbor;
use renkei_protocol::envelope::Envelope;
use renkei_protocol::wire::Request;

use super::event::{Event, FailWhy, Fault, NodeIx};
use super::{CRASH_FALLBACK_MS, Sim};

/// One undirected link `(a, b)` with `a < b`.
#[derive(Debug, Default)]
pub(crate) struct Link {
    /// Both sides see the connection up.
    pub(crate) connected: bool,
    /// Messages a→b are dropped.
    pub(crate) cut_ab: bool,
    /// Messages b→a are dropped.
    pub(crate) cut_ba: bool,
    /// Messages are queued instead of delivered.
    pub(crate) held: bool,
    pub(crate) held_msgs: Vec<(u64, Event)>,
    /// Invalidates stale keepalive/reconnect timers.
    pub(crate) epoch: u64,
}

pub(crate) fn key(a: NodeIx, b: NodeIx) -> (NodeIx, NodeIx) {
    (a.min(b), a.max(b))
}

impl Sim {
    /// Whether `a` can talk to `b` over an established connection.
    pub(crate) fn connected(&self, a: NodeIx, b: NodeIx) -> bool {
        self.links.get(&key(a, b)).is_some_and(|l| l.connected) && self.is_up(a) && self.is_up(b)
    }

    /// Whether nodes `a` and `b` have a link in the topology.
    pub fn linked(&self, a: NodeIx, b: NodeIx) -> bool {
        self.links.contains_key(&key(a, b))
    }

    /// The links of the topology.
    pub fn links(&self) -> Vec<(NodeIx, NodeIx)> {
        self.links.keys().copied().collect()
    }

    fn uniform(&mut self) -> f64 {
        (self.rng.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }

    /// One-way delay for a message of `size` bytes.
    fn latency(&mut self, size: u64) -> u64 {
        let extra = self
            .net
            .latency_mean_ms
            .saturating_sub(self.net.latency_min_ms) as f64;
        let u = self.uniform().max(1e-12);
        let tail = (-u.ln() * extra).min(extra * 20.0) as u64;
        self.net.latency_min_ms + tail + size / self.net.bandwidth_bytes_per_ms.max(1)
    }

    /// Puts a message from `from` to `to` on the network.
    pub(crate) fn transmit(&mut self, from: NodeIx, to: NodeIx, size: u64, ev: Event) {
        self.stats.messages += 1;
        let k = key(from, to);
        let Some(l) = self.links.get(&k) else {
            self.stats.dropped += 1;
            return;
        };
        let cut = if from < to { l.cut_ab } else { l.cut_ba };
        if cut {
            self.stats.dropped += 1;
            return;
        }
        if l.held {
            self.stats.held += 1;
            if let Some(l) = self.links.get_mut(&k) {
                l.held_msgs.push((size, ev));
            }
            return;
        }
        if self.net.loss > 0.0 && self.uniform() < self.net.loss {
            self.stats.dropped += 1;
            return;
        }
        if self.net.duplicate > 0.0 && self.uniform() < self.net.duplicate {
            self.stats.duplicated += 1;
            let d = self.latency(size);
            self.push(self.now + d, ev.clone());
        }
        let mut ev = ev;
        if self.net.corrupt > 0.0
            && matches!(&ev, Event::Request { request: Request::Deliver(e), .. } if !e.is_empty())
            && self.uniform() < self.net.corrupt
        {
            self.stats.corrupted += 1;
            if let Event::Request {
                request: Request::Deliver(envs),
                ..
            } = &mut ev
            {
                self.corrupt(envs);
            }
        }
        let mut d = self.latency(size);
        if self.net.reorder > 0.0 && self.uniform() < self.net.reorder {
            d += self.net.reorder_ms;
        }
        let due = self.now + d;
        self.push(due, ev);
    }

    /// Damages one envelope of `envs` as a faulty path might: one bit flipped anywhere,
    /// the bytes cut short, or (with two or more) its sealed payload swapped with
    /// another's under its own header and signature.
    fn corrupt(&mut self, envs: &mut [Vec<u8>]) {
        let k = self.rng.below(envs.len() as u64) as usize;
        let other = (k + 1) % envs.len();
        match self.rng.below(3) {
            0 if !envs[k].is_empty() => {
                let at = self.rng.below(envs[k].len() as u64) as usize;
                let bit = self.rng.below(8) as u32;
                envs[k][at] ^= 1 << bit;
            }
            1 if envs[k].len() > 1 => {
                let keep = self.rng.below(envs[k].len() as u64) as usize;
                envs[k].truncate(keep);
            }
            _ if other != k => {
                if let (Ok(a), Ok(b)) = (Envelope::decode(&envs[k]), Envelope::decode(&envs[other]))
                    && a.sealed() != b.sealed()
                {
                    envs[k] = cbor::encode(&Value::Array(vec![
                        cbor::uint(a.version()),
                        cbor::bytes(a.header_bytes()),
                        cbor::bytes(b.sealed()),
                        cbor::bytes(a.signature()),
                    ]));
                } else {
                    envs[k].truncate(envs[k].len() / 2);
                }
            }
            _ => {
                let last = envs[k].len().saturating_sub(1);
                if let Some(b) = envs[k].get_mut(last) {
                    *b ^= 0x80;
                }
            }
        }
    }

    /// Handles a queue event that is not a node input.
    pub(crate) fn control(&mut self, ev: Event) {
        match ev {
            Event::Fault(f) => self.apply_fault(f),
            Event::LinkCheck { a, b, epoch } => {
                let due = self
                    .links
                    .get(&(a, b))
                    .is_some_and(|l| l.epoch == epoch && l.cut_ab && l.cut_ba && l.connected);
                if due {
                    self.disconnect(a, b);
                }
            }
            Event::Reconnect { a, b, epoch } => {
                let ok = self.is_up(a) && self.is_up(b);
                let Some(l) = self.links.get_mut(&(a, b)) else {
                    return;
                };
                if l.epoch == epoch && !l.connected && !l.cut_ab && !l.cut_ba && ok {
                    l.connected = true;
                    let t = self.now;
                    self.log.record(t, a, "link_up", &[b as u64]);
                    let (ga, gb) = (self.nodes[a].life, self.nodes[b].life);
                    self.push(
                        t,
                        Event::Peer {
                            node: a,
                            life: ga,
                            peer: b,
                            up: true,
                        },
                    );
                    self.push(
                        t,
                        Event::Peer {
                            node: b,
                            life: gb,
                            peer: a,
                            up: true,
                        },
                    );
                }
            }
            Event::CrashFallback { node, life }
                if self.nodes[node].life == life && self.nodes[node].crash_armed =>
            {
                self.crash_now(node);
            }
            _ => {}
        }
    }

    /// Drops the connection: both sides see PeerDown, requests over it fail.
    fn disconnect(&mut self, a: NodeIx, b: NodeIx) {
        let Some(l) = self.links.get_mut(&(a, b)) else {
            return;
        };
        if !l.connected {
            return;
        }
        l.connected = false;
        let t = self.now;
        self.log.record(t, a, "link_down", &[b as u64]);
        let (ga, gb) = (self.nodes[a].life, self.nodes[b].life);
        self.push(
            t,
            Event::Peer {
                node: a,
                life: ga,
                peer: b,
                up: false,
            },
        );
        self.push(
            t,
            Event::Peer {
                node: b,
                life: gb,
                peer: a,
                up: false,
            },
        );
        let failing: Vec<(NodeIx, u64, u64)> = self
            .pending
            .iter()
            .filter(|((i, _, _), p)| (*i == a && **p == b) || (*i == b && **p == a))
            .map(|(k, _)| *k)
            .collect();
        for (i, g, out) in failing {
            self.push(
                t,
                Event::Fail {
                    node: i,
                    life: g,
                    out,
                    why: FailWhy::ConnectionLost,
                },
            );
        }
    }

    pub(crate) fn schedule_reconnect(&mut self, a: NodeIx, b: NodeIx) {
        let at = self.now + self.net.reconnect_ms;
        let Some(l) = self.links.get_mut(&(a, b)) else {
            return;
        };
        l.epoch += 1;
        let epoch = l.epoch;
        self.push(at, Event::Reconnect { a, b, epoch });
    }

    fn node_links(&self, n: NodeIx) -> Vec<(NodeIx, NodeIx)> {
        self.links
            .keys()
            .filter(|(a, b)| *a == n || *b == n)
            .copied()
            .collect()
    }

    pub(crate) fn apply_fault(&mut self, f: Fault) {
        let text = f.to_string();
        self.log.note(self.now, &text);
        tracing::debug!(at = self.now, fault = %text, "fault");
        match f {
            Fault::Partition(a, b) => self.cut(key(a, b)),
            Fault::PartitionOneWay(from, to) => {
                if let Some(l) = self.links.get_mut(&key(from, to)) {
                    if from < to {
                        l.cut_ab = true;
                    } else {
                        l.cut_ba = true;
                    }
                }
            }
            Fault::Repair(a, b) => self.repair(key(a, b)),
            Fault::Hold(a, b) => {
                if let Some(l) = self.links.get_mut(&key(a, b)) {
                    l.held = true;
                }
            }
            Fault::Release(a, b) => {
                let msgs = match self.links.get_mut(&key(a, b)) {
                    Some(l) => {
                        l.held = false;
                        std::mem::take(&mut l.held_msgs)
                    }
                    None => Vec::new(),
                };
                for (size, ev) in msgs {
                    let d = self.latency(size);
                    self.push(self.now + d, ev);
                }
            }
            Fault::Crash { node, mid_batch } => {
                if self.nodes[node].core.is_none() {
                    return;
                }
                if mid_batch {
                    self.nodes[node].crash_armed = true;
                    let life = self.nodes[node].life;
                    self.push(
                        self.now + CRASH_FALLBACK_MS,
                        Event::CrashFallback { node, life },
                    );
                } else {
                    self.crash_now(node);
                }
            }
            Fault::Restart(node) => self.restart(node),
            Fault::Isolate(n) => {
                for k in self.node_links(n) {
                    self.cut(k);
                }
            }
            Fault::Rejoin(n) => {
                for k in self.node_links(n) {
                    self.repair(k);
                }
            }
        }
    }

    fn cut(&mut self, k: (NodeIx, NodeIx)) {
        let at = self.now + self.net.keepalive_ms;
        let Some(l) = self.links.get_mut(&k) else {
            return;
        };
        l.cut_ab = true;
        l.cut_ba = true;
        l.epoch += 1;
        let epoch = l.epoch;
        self.push(
            at,
            Event::LinkCheck {
                a: k.0,
                b: k.1,
                epoch,
            },
        );
    }

    fn repair(&mut self, k: (NodeIx, NodeIx)) {
        let Some(l) = self.links.get_mut(&k) else {
            return;
        };
        l.cut_ab = false;
        l.cut_ba = false;
        if l.connected {
            l.epoch += 1;
        } else {
            self.schedule_reconnect(k.0, k.1);
        }
    }

    /// Heals everything: repairs and releases every link, restarts every node that is
    /// down, disarms pending mid-batch crashes, and turns off loss, duplication and
    /// reordering (the liveness phase).
    pub fn heal_all(&mut self) {
        self.note("heal all: faults stop");
        self.net.loss = 0.0;
        self.net.duplicate = 0.0;
        self.net.reorder = 0.0;
        for n in 0..self.nodes.len() {
            self.nodes[n].crash_armed = false;
            if self.nodes[n].core.is_none() {
                self.restart(n);
            }
        }
        for k in self.links.keys().copied().collect::<Vec<_>>() {
            self.apply_fault(Fault::Release(k.0, k.1));
            self.repair(k);
        }
    }
}
