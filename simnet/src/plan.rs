//! What a seed derives from a scenario: the network's numbers inside their ranges, each
//! node's clock skew, the extra direct links and the fault schedule. Printed in full by
//! every run, so a failure report says exactly what happened.

use serde::Serialize;

use renkei_protocol::rng::Entropy;

use crate::scenario::{Scenario, Span};
use crate::sim::{Fault, NetParams, NodeIx};

/// A fault at an offset (ms) from the start of traffic.
#[derive(Debug, Clone, Serialize)]
pub struct Timed {
    /// Offset from the start of traffic.
    pub at_ms: u64,
    /// The fault (as text).
    pub what: String,
    #[serde(skip)]
    pub(crate) fault: Fault,
}

/// The derived options of one run.
#[derive(Debug, Clone, Serialize)]
pub struct Plan {
    /// The seed.
    pub seed: u64,
    /// Node names (index = node number; node 0 is the national relay).
    pub nodes: Vec<String>,
    /// Links (relay star plus direct links).
    pub links: Vec<(NodeIx, NodeIx)>,
    /// Network parameters.
    pub net: NetParams,
    /// Clock skew per node, ms.
    pub skews_ms: Vec<i64>,
    /// Faults, in time order.
    pub faults: Vec<Timed>,
    /// Faults stop (everything heals) at this offset from the start of traffic.
    pub faults_end_ms: u64,
}

struct Draw(Entropy);

impl Draw {
    fn unit(&mut self) -> f64 {
        (self.0.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }
    fn span(&mut self, s: Span) -> f64 {
        let (lo, hi) = s.bounds();
        lo + (hi - lo) * self.unit()
    }
    fn span_u64(&mut self, s: Span) -> u64 {
        self.span(s).round().max(0.0) as u64
    }
    fn below(&mut self, n: usize) -> usize {
        self.0.below(n as u64) as usize
    }
    fn chance(&mut self, p: f64) -> bool {
        self.unit() < p
    }
}

impl Plan {
    /// Derives the plan of `scenario` for `seed`.
    pub fn derive(s: &Scenario, seed: u64) -> Plan {
        let mut d = Draw(Entropy::from_u64(seed ^ 0x005e_ed0f_fa17));
        let k = s.topology.operators;
        let mut nodes = vec!["national".to_string()];
        nodes.extend((1..=k).map(|i| format!("op{i:02}")));
        let mut links: Vec<(NodeIx, NodeIx)> = (1..=k).map(|i| (0, i)).collect();
        let mut attempts = 0;
        let mut direct = 0;
        while direct < s.topology.direct_links && k >= 2 && attempts < 1000 {
            attempts += 1;
            let a = 1 + d.below(k);
            let b = 1 + d.below(k);
            let l = (a.min(b), a.max(b));
            if a != b && !links.contains(&l) {
                links.push(l);
                direct += 1;
            }
        }
        let n = &s.net;
        let lat_min = d.span_u64(n.latency_min_ms);
        let net = NetParams {
            latency_min_ms: lat_min,
            latency_mean_ms: d.span_u64(n.latency_mean_ms).max(lat_min),
            bandwidth_bytes_per_ms: n.bandwidth_bytes_per_ms.max(1),
            loss: d.span(n.loss),
            duplicate: d.span(n.duplicate),
            corrupt: d.span(n.corrupt),
            reorder: d.span(n.reorder),
            reorder_ms: n.reorder_ms,
            request_timeout_ms: n.request_timeout_ms,
            keepalive_ms: n.keepalive_ms,
            reconnect_ms: n.reconnect_ms,
            dial_fail_ms: n.dial_fail_ms,
            wake_granularity_ms: s.core.wake_granularity_ms.max(1),
        };
        let f = &s.faults;
        let max_skew = d.span_u64(f.skew_ms) as i64;
        let skews_ms: Vec<i64> = nodes
            .iter()
            .map(|_| {
                if max_skew == 0 {
                    0
                } else {
                    d.below(2 * max_skew as usize + 1) as i64 - max_skew
                }
            })
            .collect();
        let (ws, we) = (f.window_start_ms, f.window_end_ms.max(f.window_start_ms));
        let mut faults: Vec<Timed> = Vec::new();
        let mut add = |at: u64, fault: Fault| {
            faults.push(Timed {
                at_ms: at,
                what: fault.to_string(),
                fault,
            })
        };
        if we > ws {
            let pick_time = |d: &mut Draw| ws + (d.unit() * (we - ws) as f64) as u64;
            for _ in 0..d.span_u64(f.partitions) {
                let (a, b) = links[d.below(links.len())];
                let start = pick_time(&mut d);
                let end = (start + d.span_u64(f.partition_ms)).min(we);
                if d.chance(f.one_way_share) {
                    let (x, y) = if d.chance(0.5) { (a, b) } else { (b, a) };
                    add(start, Fault::PartitionOneWay(x, y));
                } else {
                    add(start, Fault::Partition(a, b));
                }
                add(end, Fault::Repair(a, b));
            }
            for _ in 0..d.span_u64(f.holds) {
                let (a, b) = links[d.below(links.len())];
                let start = pick_time(&mut d);
                let end = (start + d.span_u64(f.hold_ms)).min(we);
                add(start, Fault::Hold(a, b));
                add(end, Fault::Release(a, b));
            }
            for _ in 0..d.span_u64(f.crashes) {
                let node = match f.crash_target.as_str() {
                    "relay" => 0,
                    "operators" => 1 + d.below(k),
                    _ => d.below(k + 1),
                };
                let start = pick_time(&mut d);
                let end = (start + d.span_u64(f.crash_down_ms)).min(we);
                add(
                    start,
                    Fault::Crash {
                        node,
                        mid_batch: d.chance(f.mid_batch_share),
                    },
                );
                add(end, Fault::Restart(node));
            }
            if let Some(fl) = &f.flap {
                let node = 1 + d.below(k);
                let mut t = ws;
                for _ in 0..d.span_u64(fl.cycles) {
                    let down = d.span_u64(fl.down_ms);
                    let up = d.span_u64(fl.up_ms);
                    if t >= we {
                        break;
                    }
                    let back = (t + down).min(we);
                    if fl.crash && d.chance(0.5) {
                        add(
                            t,
                            Fault::Crash {
                                node,
                                mid_batch: d.chance(f.mid_batch_share),
                            },
                        );
                        add(back, Fault::Restart(node));
                    } else {
                        add(t, Fault::Isolate(node));
                        add(back, Fault::Rejoin(node));
                    }
                    t = back + up;
                }
            }
        }
        faults.sort_by_key(|t| t.at_ms);
        Plan {
            seed,
            nodes,
            links,
            net,
            skews_ms,
            faults,
            faults_end_ms: we,
        }
    }

    /// The derived options as text lines (what a run prints).
    pub fn lines(&self) -> Vec<String> {
        let n = &self.net;
        let mut out = vec![
            format!("seed {}", self.seed),
            format!(
                "nodes {} ({} links: {})",
                self.nodes.len(),
                self.links.len(),
                links_text(&self.links)
            ),
            format!(
                "net latency min {} ms mean {} ms, bandwidth {} B/ms, loss {:.4}, duplicate {:.4}, corrupt {:.4}, reorder {:.4} (+{} ms), request timeout {} ms, keepalive {} ms, reconnect {} ms, wake granularity {} ms",
                n.latency_min_ms,
                n.latency_mean_ms,
                n.bandwidth_bytes_per_ms,
                n.loss,
                n.duplicate,
                n.corrupt,
                n.reorder,
                n.reorder_ms,
                n.request_timeout_ms,
                n.keepalive_ms,
                n.reconnect_ms,
                n.wake_granularity_ms
            ),
            format!("clock skews ms {:?}", self.skews_ms),
            format!(
                "faults {} (stop at +{} ms)",
                self.faults.len(),
                self.faults_end_ms
            ),
        ];
        out.extend(
            self.faults
                .iter()
                .map(|t| format!("  +{} ms {}", t.at_ms, t.what)),
        );
        out
    }
}

fn links_text(links: &[(NodeIx, NodeIx)]) -> String {
    links
        .iter()
        .map(|(a, b)| format!("{a}-{b}"))
        .collect::<Vec<_>>()
        .join(" ")
}
