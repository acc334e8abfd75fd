//! The result of one run: derived options, counts, checker results, virtual-time latency
//! percentiles, speed, the event-log hash; as text, JSON (serde) or an SVG plot.

mod plot;

use serde::Serialize;

use crate::checker::{Findings, Tally};
use crate::plan::Plan;
use crate::sim::SimStats;

/// Delivery latency (submission → inbox), virtual milliseconds.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Latency {
    /// Deliveries measured.
    pub count: u64,
    /// Median.
    pub p50_ms: u64,
    /// 90th percentile.
    pub p90_ms: u64,
    /// 99th percentile.
    pub p99_ms: u64,
    /// Maximum.
    pub max_ms: u64,
}

impl Latency {
    /// Percentiles of the samples.
    pub fn of(samples: &[u64]) -> Latency {
        let mut v = samples.to_vec();
        v.sort_unstable();
        let at = |p: f64| -> u64 {
            if v.is_empty() {
                return 0;
            }
            let i = ((v.len() as f64 - 1.0) * p).round() as usize;
            v[i.min(v.len() - 1)]
        };
        Latency {
            count: v.len() as u64,
            p50_ms: at(0.5),
            p90_ms: at(0.9),
            p99_ms: at(0.99),
            max_ms: v.last().copied().unwrap_or(0),
        }
    }
}

/// Counts of the run.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Counts {
    /// Offices registered.
    pub offices: u64,
    /// Submissions attempted.
    pub submitted: u64,
    /// Accepted by their origin.
    pub accepted: u64,
    /// Refused by their origin (not routable yet, origin down, …).
    pub refused: u64,
    /// Never answered (the origin crashed first).
    pub unanswered: u64,
    /// Final as Delivered at the origin.
    pub delivered: u64,
    /// Final as Expired at the origin.
    pub expired: u64,
    /// Rejected.
    pub rejected: u64,
    /// Inbox entries.
    pub inbox_entries: u64,
    /// Receipts stored across all nodes.
    pub receipts: u64,
    /// Refusal reasons (first words) with their counts.
    pub refusals: std::collections::BTreeMap<String, u64>,
}

impl Counts {
    pub(crate) fn absorb(&mut self, t: &Tally) {
        self.delivered = t.delivered;
        self.expired = t.expired;
        self.rejected = t.rejected;
        self.inbox_entries = t.inbox_entries;
        self.receipts = t.receipts;
    }
}

/// One run's report.
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    /// Scenario name.
    pub scenario: String,
    /// Seed.
    pub seed: u64,
    /// Derived options.
    pub plan: Plan,
    /// Counts.
    pub counts: Counts,
    /// Checker results.
    pub checks: Findings,
    /// Delivery latency.
    pub latency: Latency,
    /// Virtual time from "faults stop" until everything settled (or the bound).
    pub settle_ms: u64,
    /// Virtual time simulated.
    pub simulated_ms: u64,
    /// Wall-clock time of the run.
    pub wall_ms: u64,
    /// Where the wall-clock time went.
    pub phases: Phases,
    /// Queue events processed.
    pub events: u64,
    /// Events per wall-clock second.
    pub events_per_s: u64,
    /// Store values kept in a spill file instead of memory (0: none).
    pub spilled_bytes: u64,
    /// SHA-256 of the event log (same seed ⇒ same hash).
    pub event_log_hash: String,
    /// Why the run stopped before its end, if it did (a node's store failed: the host's
    /// spill disk, or a bug). Such a run has no verdict: the checkers did not run.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub stopped: Option<String>,
    /// Simulator statistics.
    pub stats: SimStats,
    /// What the lying member tried, in a scenario with one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub attacks: Option<crate::adversary::Attacks>,
    /// (submission offset from traffic start, latency) per delivery, for the plot.
    #[serde(skip)]
    pub points: Vec<(u64, u64)>,
}

/// Wall-clock time of a run's phases (they add up to its wall time).
#[derive(Debug, Clone, Default, Serialize)]
pub struct Phases {
    /// Building the federation, registering the offices, the directory's first sync.
    pub setup_ms: u64,
    /// The workload, with the planned faults.
    pub traffic_ms: u64,
    /// Faults healed, waiting (bounded) for every envelope to settle.
    pub settle_ms: u64,
    /// The checkers, and the report's latency figures.
    pub check_ms: u64,
}

impl Report {
    /// Whether every checker passed.
    pub fn passed(&self) -> bool {
        self.stopped.is_none() && self.checks.passed()
    }

    /// The human-readable report.
    pub fn text(&self) -> String {
        let mut out = format!("scenario {}  seed {}\n", self.scenario, self.seed);
        out.push_str("derived options:\n");
        for l in self.plan.lines() {
            out.push_str(&format!("  {l}\n"));
        }
        let c = &self.counts;
        out.push_str(&format!(
            "counts: offices {} submitted {} accepted {} refused {} unanswered {} delivered {} expired {} rejected {} inbox {} receipts {}\n",
            c.offices, c.submitted, c.accepted, c.refused, c.unanswered, c.delivered, c.expired, c.rejected, c.inbox_entries, c.receipts
        ));
        for (why, n) in &c.refusals {
            out.push_str(&format!("  refused {n}x: {why}\n"));
        }
        if let Some(why) = &self.stopped {
            out.push_str(&format!(
                "STOPPED: {why}\n  the run could not finish, so it has no verdict\ncheckers: not run\n"
            ));
        } else {
            out.push_str("checkers:\n");
            for (name, check) in self.checks.all() {
                let verdict = if check.count == 0 { "ok" } else { "FAIL" };
                out.push_str(&format!("  {name:<20} {:>6}  {verdict}\n", check.count));
                for e in &check.examples {
                    out.push_str(&format!("      {e}\n"));
                }
            }
        }
        if let Some(a) = &self.attacks {
            out.push_str(&format!(
                "lying member n{}: forged senders {}, false rejections {}, stuffed receipts {}, replays {}, corrupted signatures {}, broken units {}, files unlike their header {}, claimed homes {}, relayed envelopes dropped {}\n",
                a.node,
                a.forged,
                a.false_rejections,
                a.stuffed,
                a.replays,
                a.corrupted,
                a.invalid,
                a.unlike,
                a.claims,
                a.dropped
            ));
        }
        let l = &self.latency;
        out.push_str(&format!(
            "latency (virtual): n {} p50 {} ms p90 {} ms p99 {} ms max {} ms; settled {} ms after faults stopped\n",
            l.count, l.p50_ms, l.p90_ms, l.p99_ms, l.max_ms, self.settle_ms
        ));
        let s = &self.stats;
        out.push_str(&format!(
            "network: messages {} dropped {} duplicated {} corrupted {} held {} send_failed {}; crashes {} (mid-batch {})\n",
            s.messages,
            s.dropped,
            s.duplicated,
            s.corrupted,
            s.held,
            s.send_failed,
            s.crashes,
            s.mid_batch_crashes
        ));
        out.push_str(&format!(
            "speed: simulated {:.1} s in {:.2} s wall, {} events ({} events/s), {} batches ({} side by side)\n",
            self.simulated_ms as f64 / 1000.0,
            self.wall_ms as f64 / 1000.0,
            self.events,
            self.events_per_s,
            s.batches,
            s.side_by_side
        ));
        let p = &self.phases;
        out.push_str(&format!(
            "wall: setup {:.1} s, traffic {:.1} s, settle {:.1} s, checkers {:.1} s\n",
            p.setup_ms as f64 / 1000.0,
            p.traffic_ms as f64 / 1000.0,
            p.settle_ms as f64 / 1000.0,
            p.check_ms as f64 / 1000.0
        ));
        if self.spilled_bytes > 0 {
            out.push_str(&format!(
                "memory: {:.1} MB of store values kept in spill files\n",
                self.spilled_bytes as f64 / 1e6
            ));
        }
        out.push_str(&format!("event log sha256 {}\n", self.event_log_hash));
        out
    }

    /// An SVG of delivery latency over simulated time.
    pub fn svg(&self) -> String {
        plot::svg(
            &format!("{} seed {}", self.scenario, self.seed),
            &self.points,
            &self.plan,
        )
    }
}
