//! Scenario files (TOML): topology, workload, network, faults and checks. Numbers that
//! faults and the network draw from may be given as a range `[lo, hi]`; the run's seed
//! picks a value inside it (printed as a derived option). The format is documented in
//! `docs/SIMNET.md`.

use std::path::Path;

use serde::Deserialize;

/// A scenario could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum ScenarioError {
    /// The file could not be read.
    #[error("cannot read scenario {path}: {source}")]
    Io {
        /// Path.
        path: String,
        /// Cause.
        source: std::io::Error,
    },
    /// The TOML is malformed or has unknown fields.
    #[error("scenario {path} is not valid: {source}")]
    Toml {
        /// Path.
        path: String,
        /// Cause.
        source: Box<toml::de::Error>,
    },
    /// A value is out of its allowed range.
    #[error("scenario {name}: {why}")]
    Invalid {
        /// Scenario name.
        name: String,
        /// What is wrong.
        why: String,
    },
}

/// A number, or a `[lo, hi]` range the seed picks from.
#[derive(Debug, Clone, Copy, Deserialize, PartialEq)]
#[serde(untagged)]
pub enum Span {
    /// Exactly this value.
    One(f64),
    /// Uniformly inside `[lo, hi]`.
    Range([f64; 2]),
}

impl Span {
    /// The bounds.
    pub fn bounds(self) -> (f64, f64) {
        match self {
            Span::One(v) => (v, v),
            Span::Range([a, b]) => (a.min(b), a.max(b)),
        }
    }
}

impl Default for Span {
    fn default() -> Self {
        Span::One(0.0)
    }
}

/// A whole scenario.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Scenario {
    /// Name (printed; used in the replay command).
    pub name: String,
    /// One line of intent.
    #[serde(default)]
    pub description: String,
    /// Operators and links.
    pub topology: Topology,
    /// Offices and traffic.
    pub workload: Workload,
    /// Core settings for every node.
    #[serde(default)]
    pub core: CoreSettings,
    /// The simulated network.
    #[serde(default)]
    pub net: Net,
    /// Faults injected during the fault window.
    #[serde(default)]
    pub faults: Faults,
    /// Checker settings.
    #[serde(default)]
    pub check: Check,
    /// A lying member of the federation, if any.
    #[serde(default)]
    pub byzantine: Option<Byzantine>,
}

/// A lying member ([`crate::adversary`]): one regional operator whose operator attacks
/// the others while its node runs the honest core.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Byzantine {
    /// The lying operator's node index (1 ..= operators; 0 is the national relay).
    pub node: usize,
    /// Attacks, spread evenly over the traffic (forged sender, false rejection, receipt
    /// stuffing, replay, corrupted signature, a unit failing the standard and, with
    /// `claims`, a claim on another operator's office, in turn).
    pub strikes: usize,
    /// Whether the liar also claims offices other operators home (publishing its own
    /// bindings for them in its directory answers). The federation authority then assigns
    /// every office and nodes take homes from assignments only
    /// (`delivery.require_assignments`), as docs/SECURITY.md says a federation facing a
    /// lying member runs. Default on.
    #[serde(default = "d_true")]
    pub claims: bool,
    /// Whether the liar's node is a relay in the roster that accepts what it is given to
    /// relay (signing `Accepted`) and never passes it on: origins must route around it
    /// (`delivery.relay_watch_ms`). Default on.
    #[serde(default = "d_true")]
    pub drops: bool,
}

/// Operators and links.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Topology {
    /// Regional / vendor operators besides the national relay (each linked to the relay).
    pub operators: usize,
    /// Extra direct links between random operator pairs.
    #[serde(default)]
    pub direct_links: usize,
}

/// Offices and the monthly rhythm.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Workload {
    /// Offices in the federation (homed across the regional operators).
    pub offices: usize,
    /// Share of care-management offices (居宅介護支援, kind 43).
    #[serde(default = "d_care_share")]
    pub care_share: f64,
    /// Share of 介護予防支援 offices (kind 46).
    #[serde(default = "d_yobo_share")]
    pub yobo_share: f64,
    /// Service offices each care-management office works with.
    #[serde(default = "d_partners")]
    pub partners: usize,
    /// Send units submitted.
    pub envelopes: usize,
    /// Start of the traffic, `YYYY-MM-DDTHH:MM` (virtual time; also the stamps' clock).
    #[serde(default = "d_start")]
    pub start: String,
    /// Quiet time after the offices register, for directory sync, in ms.
    #[serde(default = "d_warmup")]
    pub warmup_ms: u64,
    /// Submissions spread over this many ms.
    pub duration_ms: u64,
    /// Offset (ms from `start`) of the month boundary; before it the `month_end` mix
    /// applies, after it the `month_start` mix.
    #[serde(default)]
    pub month_boundary_ms: u64,
    /// Mix before the boundary.
    #[serde(default = "d_mix_end")]
    pub month_end: Mix,
    /// Mix after the boundary.
    #[serde(default = "d_mix_start")]
    pub month_start: Mix,
    /// Probability that a submission is a correction of an earlier unit (newer stamp).
    #[serde(default = "d_correction")]
    pub corrections: f64,
    /// Probability that a correction also names the replaced envelope (`supersedes`).
    #[serde(default = "d_explicit")]
    pub explicit_supersedes: f64,
}

/// Relative weights of the send units.
#[derive(Debug, Clone, Copy, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Mix {
    /// 第1〜3表 + 補足 (43 → 11).
    #[serde(default)]
    pub plan: f64,
    /// 第6表 + 第7表 + 補足 (43 → 11).
    #[serde(default)]
    pub riyohyo: f64,
    /// 実績 (11 → 43).
    #[serde(default)]
    pub jisseki: f64,
    /// 介護予防 利用者基本情報 / 支援計画書 (46 → 63).
    #[serde(default)]
    pub yobo: f64,
}

/// Core settings.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CoreSettings {
    /// Origin expiry window.
    #[serde(default = "d_expiry")]
    pub expiry_ms: u64,
    /// First retry delay.
    #[serde(default = "d_retry_base")]
    pub retry_base_ms: u64,
    /// Retry cap.
    #[serde(default = "d_retry_max")]
    pub retry_max_ms: u64,
    /// Directory sync interval.
    #[serde(default = "d_sync")]
    pub sync_interval_ms: u64,
    /// Driver: wake-ups are fed at the next multiple of this (the core asks "at or after";
    /// 1 = exactly when asked). Larger values bound the core's 1 ms wake loop while a peer
    /// is busy (see docs/SIMNET.md).
    #[serde(default = "d_granularity")]
    pub wake_granularity_ms: u64,
}

/// The simulated network.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Net {
    /// Smallest one-way latency.
    #[serde(default = "d_lat_min")]
    pub latency_min_ms: Span,
    /// Mean one-way latency (min + exponential tail).
    #[serde(default = "d_lat_mean")]
    pub latency_mean_ms: Span,
    /// Bytes per ms a link carries (adds size / bandwidth to the latency).
    #[serde(default = "d_bandwidth")]
    pub bandwidth_bytes_per_ms: u64,
    /// Probability a message is lost.
    #[serde(default)]
    pub loss: Span,
    /// Probability a message is delivered twice.
    #[serde(default)]
    pub duplicate: Span,
    /// Probability an envelope-carrying request arrives with one envelope's bytes damaged
    /// in transit (a bit flip, a truncation, or sealed payloads swapped between two
    /// envelopes): the receiver must refuse it and the origin send it again.
    #[serde(default)]
    pub corrupt: Span,
    /// Probability a message is delayed by an extra `reorder_ms` (overtaken by later ones).
    #[serde(default)]
    pub reorder: Span,
    /// Extra delay of a reordered message.
    #[serde(default = "d_reorder_ms")]
    pub reorder_ms: u64,
    /// A request without an answer fails (SendFailed) after this long.
    #[serde(default = "d_timeout")]
    pub request_timeout_ms: u64,
    /// A link cut both ways is declared down (PeerDown) after this long.
    #[serde(default = "d_keepalive")]
    pub keepalive_ms: u64,
    /// A healed link, or a restarted node's links, come up after this long.
    #[serde(default = "d_reconnect")]
    pub reconnect_ms: u64,
    /// A send over a link that is down fails after this long.
    #[serde(default = "d_dial_fail")]
    pub dial_fail_ms: u64,
}

/// Faults injected during the fault window.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Faults {
    /// Faults start after this offset from the start of traffic, in ms.
    #[serde(default)]
    pub window_start_ms: u64,
    /// Faults stop (and everything heals) at this offset from the start of traffic, in ms.
    #[serde(default)]
    pub window_end_ms: u64,
    /// Number of link partitions.
    #[serde(default)]
    pub partitions: Span,
    /// Duration of each partition.
    #[serde(default = "d_fault_ms")]
    pub partition_ms: Span,
    /// Share of partitions that are one-way.
    #[serde(default)]
    pub one_way_share: f64,
    /// Number of hold/release episodes.
    #[serde(default)]
    pub holds: Span,
    /// Duration of each hold.
    #[serde(default = "d_fault_ms")]
    pub hold_ms: Span,
    /// Number of node crashes.
    #[serde(default)]
    pub crashes: Span,
    /// Downtime after each crash.
    #[serde(default = "d_fault_ms")]
    pub crash_down_ms: Span,
    /// Crash targets: `relay`, `operators` or `any`.
    #[serde(default = "d_target")]
    pub crash_target: String,
    /// Share of crashes that hit between `handle` and `commit` (a batch half applied).
    #[serde(default = "d_mid_batch")]
    pub mid_batch_share: f64,
    /// Largest clock skew of a node (each node draws one in `[-max, max]`).
    #[serde(default)]
    pub skew_ms: Span,
    /// One operator whose links go down and up repeatedly.
    #[serde(default)]
    pub flap: Option<Flap>,
}

/// A flapping operator.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Flap {
    /// Number of down/up cycles.
    pub cycles: Span,
    /// Time down per cycle.
    pub down_ms: Span,
    /// Time up per cycle.
    pub up_ms: Span,
    /// Whether some cycles crash the operator instead of cutting its links.
    #[serde(default)]
    pub crash: bool,
}

/// Checker settings.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Check {
    /// After faults stop, every envelope must end Delivered or Expired within this bound.
    #[serde(default = "d_liveness")]
    pub liveness_ms: u64,
    /// Check the relays' stores for plaintext windows of units they forwarded.
    #[serde(default = "d_true")]
    pub plaintext: bool,
}

fn d_care_share() -> f64 {
    0.16
}
fn d_yobo_share() -> f64 {
    0.04
}
fn d_partners() -> usize {
    4
}
fn d_start() -> String {
    "2025-04-28T09:00".into()
}
fn d_warmup() -> u64 {
    120_000
}
fn d_mix_end() -> Mix {
    Mix {
        plan: 2.0,
        riyohyo: 6.0,
        jisseki: 0.5,
        yobo: 1.0,
    }
}
fn d_mix_start() -> Mix {
    Mix {
        plan: 0.5,
        riyohyo: 1.0,
        jisseki: 8.0,
        yobo: 0.5,
    }
}
fn d_correction() -> f64 {
    0.1
}
fn d_explicit() -> f64 {
    0.5
}
fn d_expiry() -> u64 {
    renkei_core::EXPIRY_MS_DEFAULT
}
fn d_retry_base() -> u64 {
    500
}
fn d_retry_max() -> u64 {
    renkei_core::RETRY_DELAY_MS_MAX
}
fn d_sync() -> u64 {
    30_000
}
fn d_granularity() -> u64 {
    1
}
fn d_lat_min() -> Span {
    Span::One(2.0)
}
fn d_lat_mean() -> Span {
    Span::One(15.0)
}
fn d_bandwidth() -> u64 {
    12_500
}
fn d_reorder_ms() -> u64 {
    200
}
fn d_timeout() -> u64 {
    30_000
}
fn d_keepalive() -> u64 {
    10_000
}
fn d_reconnect() -> u64 {
    2_000
}
fn d_dial_fail() -> u64 {
    1_000
}
fn d_fault_ms() -> Span {
    Span::Range([5_000.0, 120_000.0])
}
fn d_target() -> String {
    "any".into()
}
fn d_mid_batch() -> f64 {
    0.5
}
fn d_liveness() -> u64 {
    3_600_000
}
fn d_true() -> bool {
    true
}

impl Default for CoreSettings {
    fn default() -> Self {
        CoreSettings {
            expiry_ms: d_expiry(),
            retry_base_ms: d_retry_base(),
            retry_max_ms: d_retry_max(),
            sync_interval_ms: d_sync(),
            wake_granularity_ms: d_granularity(),
        }
    }
}

impl Default for Net {
    fn default() -> Self {
        Net {
            latency_min_ms: d_lat_min(),
            latency_mean_ms: d_lat_mean(),
            bandwidth_bytes_per_ms: d_bandwidth(),
            loss: Span::default(),
            duplicate: Span::default(),
            corrupt: Span::default(),
            reorder: Span::default(),
            reorder_ms: d_reorder_ms(),
            request_timeout_ms: d_timeout(),
            keepalive_ms: d_keepalive(),
            reconnect_ms: d_reconnect(),
            dial_fail_ms: d_dial_fail(),
        }
    }
}

impl Default for Faults {
    fn default() -> Self {
        Faults {
            window_start_ms: 0,
            window_end_ms: 0,
            partitions: Span::default(),
            partition_ms: d_fault_ms(),
            one_way_share: 0.0,
            holds: Span::default(),
            hold_ms: d_fault_ms(),
            crashes: Span::default(),
            crash_down_ms: d_fault_ms(),
            crash_target: d_target(),
            mid_batch_share: d_mid_batch(),
            skew_ms: Span::default(),
            flap: None,
        }
    }
}

impl Default for Check {
    fn default() -> Self {
        Check {
            liveness_ms: d_liveness(),
            plaintext: true,
        }
    }
}

impl Scenario {
    /// Reads and validates a scenario file.
    pub fn load(path: &Path) -> Result<Scenario, ScenarioError> {
        let p = path.display().to_string();
        let text = std::fs::read_to_string(path).map_err(|source| ScenarioError::Io {
            path: p.clone(),
            source,
        })?;
        Scenario::parse(&text).map_err(|e| match e {
            ScenarioError::Toml { source, .. } => ScenarioError::Toml { path: p, source },
            other => other,
        })
    }

    /// Parses and validates scenario text.
    pub fn parse(text: &str) -> Result<Scenario, ScenarioError> {
        let s: Scenario = toml::from_str(text).map_err(|e| ScenarioError::Toml {
            path: "<text>".into(),
            source: Box::new(e),
        })?;
        s.validate()?;
        Ok(s)
    }

    fn validate(&self) -> Result<(), ScenarioError> {
        let bad = |why: String| {
            Err(ScenarioError::Invalid {
                name: self.name.clone(),
                why,
            })
        };
        if self.topology.operators == 0 {
            return bad("topology.operators must be at least 1".into());
        }
        if self.workload.offices < 4 {
            return bad("workload.offices must be at least 4".into());
        }
        if self.workload.offices > 9_999_999 {
            return bad(
                "workload.offices must be below 10,000,000 (office numbers have 7 free digits)"
                    .into(),
            );
        }
        let shares = self.workload.care_share + self.workload.yobo_share;
        if !(0.0..1.0).contains(&shares) || self.workload.care_share <= 0.0 {
            return bad("workload.care_share must be > 0 and care_share + yobo_share < 1".into());
        }
        if crate::calendar::parse_start(&self.workload.start).is_none() {
            return bad(format!(
                "workload.start {:?} is not YYYY-MM-DDTHH:MM",
                self.workload.start
            ));
        }
        if !matches!(
            self.faults.crash_target.as_str(),
            "relay" | "operators" | "any"
        ) {
            return bad(format!(
                "faults.crash_target {:?} must be relay, operators or any",
                self.faults.crash_target
            ));
        }
        for (name, v) in [
            ("net.loss", self.net.loss),
            ("net.duplicate", self.net.duplicate),
            ("net.corrupt", self.net.corrupt),
            ("net.reorder", self.net.reorder),
        ] {
            let (lo, hi) = v.bounds();
            if lo < 0.0 || hi >= 1.0 {
                return bad(format!("{name} must be a probability in [0, 1)"));
            }
        }
        if self.net.request_timeout_ms == 0 {
            return bad("net.request_timeout_ms must be positive".into());
        }
        Ok(())
    }

    /// Memory a run needs, roughly, in bytes: per envelope ≈ 14 KB (each node's store holds
    /// its envelopes, receipts, inbox, files and audit entries; measured 14.8–14.9 KB per
    /// envelope in docs/lab/2026-12-simnet-wall-time.md), or ≈ 5.5 KB when the stores keep their bulky
    /// values in spill files (`spilling`; the full national day: 16.2 GB measured), and per
    /// office and node ≈ 250 B (every node learns every office binding).
    pub fn memory_estimate_bytes(&self, spilling: bool) -> u64 {
        const PER_ENVELOPE: u64 = 14 * 1024;
        const PER_ENVELOPE_SPILLING: u64 = 5632;
        const PER_OFFICE_NODE: u64 = 250;
        const BASE: u64 = 64 * 1024 * 1024;
        let nodes = self.topology.operators as u64 + 1;
        let per_envelope = if spilling {
            PER_ENVELOPE_SPILLING
        } else {
            PER_ENVELOPE
        };
        BASE + self.workload.envelopes as u64 * per_envelope
            + self.workload.offices as u64 * nodes * PER_OFFICE_NODE
    }

    /// Disk a run's spill files take, roughly, in bytes (when it spills): ≈ 9.5 KB per
    /// envelope (the full national day wrote 22.0 GB for 2.4 M envelopes).
    pub fn spill_estimate_bytes(&self) -> u64 {
        const PER_ENVELOPE: u64 = 9728;
        self.workload.envelopes as u64 * PER_ENVELOPE
    }

    /// The same scenario with offices and envelopes multiplied by `factor` (scale runs).
    pub fn scaled(&self, factor: f64) -> Scenario {
        let mut s = self.clone();
        let f = factor.max(0.0);
        s.workload.offices = ((s.workload.offices as f64 * f).round() as usize).max(4);
        s.workload.envelopes = ((s.workload.envelopes as f64 * f).round() as usize).max(1);
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn memory_estimate_tracks_the_measured_runs() {
        let Ok(national) = Scenario::load(std::path::Path::new(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/scenarios/month-start-national.toml"
        ))) else {
            panic!("national scenario loads");
        };
        // Measured (docs/lab/2026-12-simnet-wall-time.md): 3.6 GB at scale 0.1, 17.9 GB at 0.5.
        let gb = |s: &Scenario| s.memory_estimate_bytes(false) as f64 / 1e9;
        assert!(
            (3.0..4.5).contains(&gb(&national.scaled(0.1))),
            "{}",
            gb(&national.scaled(0.1))
        );
        assert!(
            (15.0..21.0).contains(&gb(&national.scaled(0.5))),
            "{}",
            gb(&national.scaled(0.5))
        );
        assert!(gb(&national) > 30.0);
        // Spilling: 16.2 GB measured for the full national day.
        let spilling = national.memory_estimate_bytes(true) as f64 / 1e9;
        assert!((15.0..18.5).contains(&spilling), "{spilling}");
    }

    #[test]
    fn ranges_and_defaults() {
        let s = Scenario::parse(
            r#"
name = "t"
[topology]
operators = 2
[workload]
offices = 10
envelopes = 5
duration_ms = 1000
[net]
loss = [0.01, 0.02]
"#,
        );
        let Ok(s) = s else { panic!("{s:?}") };
        assert_eq!(s.net.loss.bounds(), (0.01, 0.02));
        assert_eq!(s.net.request_timeout_ms, 30_000);
    }

    #[test]
    fn rejects_unknown_fields_and_bad_values() {
        assert!(Scenario::parse("name='x'\nfoo=1\n[topology]\noperators=1\n[workload]\noffices=9\nenvelopes=1\nduration_ms=1").is_err());
        let e = Scenario::parse(
            "name='x'\n[topology]\noperators=1\n[workload]\noffices=9\nenvelopes=1\nduration_ms=1\n[net]\nloss=1.5",
        );
        assert!(matches!(e, Err(ScenarioError::Invalid { .. })), "{e:?}");
    }
}
