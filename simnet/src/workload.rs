//! The workload: offices homed across the regional operators, who works with whom, and
//! the monthly rhythm of submissions. Before the month boundary care managers send plans
//! and 6/7表 (`month_end` mix); after it service offices send 実績 (`month_start` mix).
//! Some submissions are corrections of earlier units (a newer stamp; sometimes naming the
//! replaced envelope explicitly).

use renkei_protocol::envelope::sha256;
use renkei_protocol::rng::Entropy;

use crate::payload::{UnitKind, office_number};
use crate::scenario::{Mix, Scenario};
use crate::sim::NodeIx;

/// What an office does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// 居宅介護支援 (43): sends plans and 6/7表, receives 実績.
    Care,
    /// 介護予防支援 (46): sends 介護予防 documents.
    Yobo,
    /// Service office (11 and 63): receives plans, sends 実績.
    Provider,
}

impl Role {
    /// Service kinds registered for the office.
    pub fn kinds(self) -> &'static [&'static str] {
        match self {
            Role::Care => &["43"],
            Role::Yobo => &["46"],
            Role::Provider => &["11", "63"],
        }
    }
}

/// One office.
#[derive(Debug, Clone)]
pub struct Office {
    /// 事業所番号.
    pub number: String,
    /// Role.
    pub role: Role,
    /// Home operator (node index).
    pub home: NodeIx,
    /// Service offices it works with (care and 予防 offices).
    pub partners: Vec<usize>,
}

impl Office {
    /// SHA-256 of its API token (the token is the office number in simnet).
    pub fn token_hash(&self) -> [u8; 32] {
        sha256(self.number.as_bytes())
    }
}

/// One planned submission.
#[derive(Debug, Clone, Copy)]
pub struct Planned {
    /// Offset from the start of traffic.
    pub at_ms: u64,
    /// The unit.
    pub kind: UnitKind,
    /// Sending office (index).
    pub from: usize,
    /// Receiving office (index).
    pub to: usize,
    /// The earlier submission this one corrects.
    pub correction_of: Option<usize>,
    /// Whether a correction names the envelope it replaces (`supersedes`), if that one
    /// was accepted by then; otherwise the destination's versioning replaces it by stamp.
    pub names_replaced: bool,
}

/// Offices and submissions of a run.
#[derive(Debug, Clone)]
pub struct Workload {
    /// Offices.
    pub offices: Vec<Office>,
    /// Submissions in time order.
    pub planned: Vec<Planned>,
}

struct Draw(Entropy);

impl Draw {
    fn unit(&mut self) -> f64 {
        (self.0.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }
    fn below(&mut self, n: usize) -> usize {
        self.0.below(n as u64) as usize
    }
}

impl Workload {
    /// Generates the workload of `scenario` for `seed` over `operators` regional operators
    /// (node indices 1..=operators; node 0, the national relay, homes no office).
    pub fn generate(s: &Scenario, seed: u64) -> Workload {
        let w = &s.workload;
        let ops = s.topology.operators.max(1);
        let mut d = Draw(Entropy::from_u64(seed ^ 0x00ff_1ce5));
        let n = w.offices;
        let care = ((n as f64 * w.care_share).round() as usize).clamp(1, n - 2);
        let yobo = ((n as f64 * w.yobo_share).round() as usize).min(n - care - 1);
        let mut offices: Vec<Office> = (0..n)
            .map(|i| Office {
                number: office_number(i),
                role: if i < care {
                    Role::Care
                } else if i < care + yobo {
                    Role::Yobo
                } else {
                    Role::Provider
                },
                home: 1 + d.below(ops),
                partners: Vec::new(),
            })
            .collect();
        let providers = n - care - yobo;
        for o in offices.iter_mut().take(care + yobo) {
            let k = w.partners.clamp(1, providers);
            while o.partners.len() < k {
                let p = care + yobo + d.below(providers);
                if !o.partners.contains(&p) {
                    o.partners.push(p);
                }
            }
        }
        let mut times: Vec<u64> = (0..w.envelopes)
            .map(|_| (d.unit() * w.duration_ms as f64) as u64)
            .collect();
        times.sort_unstable();
        let mut planned: Vec<Planned> = Vec::with_capacity(times.len());
        // Whether a correction names what it replaces is drawn here, from a stream of its
        // own (the other draws stay as they were), so that the helper thread knows it
        // ahead and makes only the envelope that will be asked for.
        let mut naming = Draw(Entropy::from_u64(seed ^ 0x5e9e_ed35));
        for (j, at) in times.into_iter().enumerate() {
            if j > 0 && d.unit() < w.corrections {
                let k = j - 1 - d.below(j.min(500));
                let prev = planned[k];
                planned.push(Planned {
                    at_ms: at,
                    correction_of: Some(k),
                    names_replaced: naming.unit() <= w.explicit_supersedes,
                    ..prev
                });
                continue;
            }
            let mix = if at < w.month_boundary_ms {
                &w.month_end
            } else {
                &w.month_start
            };
            let kind = pick(&mut d, mix);
            let (from, to) = match kind {
                UnitKind::Plan | UnitKind::Riyohyo => {
                    let c = d.below(care);
                    (c, offices[c].partners[d.below(offices[c].partners.len())])
                }
                UnitKind::Jisseki => {
                    let c = d.below(care);
                    (offices[c].partners[d.below(offices[c].partners.len())], c)
                }
                UnitKind::YoboKihon | UnitKind::YoboPlan => {
                    let c = if yobo > 0 {
                        care + d.below(yobo)
                    } else {
                        d.below(care)
                    };
                    (c, offices[c].partners[d.below(offices[c].partners.len())])
                }
            };
            let kind = match kind {
                UnitKind::YoboKihon | UnitKind::YoboPlan if yobo == 0 => UnitKind::Plan,
                k => k,
            };
            planned.push(Planned {
                at_ms: at,
                kind,
                from,
                to,
                correction_of: None,
                names_replaced: false,
            });
        }
        Workload { offices, planned }
    }
}

fn pick(d: &mut Draw, m: &Mix) -> UnitKind {
    let total = m.plan + m.riyohyo + m.jisseki + m.yobo;
    if total <= 0.0 {
        return UnitKind::Riyohyo;
    }
    let mut x = d.unit() * total;
    for (w, k) in [
        (m.plan, UnitKind::Plan),
        (m.riyohyo, UnitKind::Riyohyo),
        (m.jisseki, UnitKind::Jisseki),
    ] {
        if x < w {
            return k;
        }
        x -= w;
    }
    if d.unit() < 0.5 {
        UnitKind::YoboKihon
    } else {
        UnitKind::YoboPlan
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn smoke(explicit: f64) -> Workload {
        let path = format!("{}/scenarios/smoke.toml", env!("CARGO_MANIFEST_DIR"));
        let mut s = Scenario::load(std::path::Path::new(&path)).expect("smoke scenario");
        s.workload.envelopes = 4_000;
        s.workload.explicit_supersedes = explicit;
        Workload::generate(&s, 7)
    }

    #[test]
    fn corrections_name_what_they_replace_as_often_as_asked_and_nothing_else_moves() {
        let half = smoke(0.5);
        let corrections = half
            .planned
            .iter()
            .filter(|p| p.correction_of.is_some())
            .count();
        let named = half.planned.iter().filter(|p| p.names_replaced).count();
        assert!(corrections > 500, "{corrections} corrections");
        assert!(
            half.planned
                .iter()
                .all(|p| !p.names_replaced || p.correction_of.is_some()),
            "only a correction names what it replaces"
        );
        assert!(
            (corrections * 2 / 5..=corrections * 3 / 5).contains(&named),
            "{named} of {corrections} corrections named"
        );
        // Drawn from a stream of its own: the rest of the workload is the same whatever
        // the share.
        for (share, all_named) in [(0.0, false), (1.0, true)] {
            let w = smoke(share);
            assert_eq!(w.planned.len(), half.planned.len());
            for (a, b) in w.planned.iter().zip(&half.planned) {
                assert_eq!(
                    (a.at_ms, a.kind, a.from, a.to, a.correction_of),
                    (b.at_ms, b.kind, b.from, b.to, b.correction_of)
                );
                assert_eq!(a.names_replaced, all_named && a.correction_of.is_some());
            }
        }
    }
}
