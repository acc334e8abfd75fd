//! What offices are told while the run goes on. An origin's status is what its office
//! sees on the page and through the API, so it must be true when it is said:
//!
//! - `delivered` (or `retrieved`) never before the unit is in its recipient's inbox (a
//!   destination commits a unit before its `Delivered` can leave, so at any virtual
//!   instant the two agree);
//! - `accepted` or `relayed` not long past the unit's expiry: by then its origin must have
//!   signed `Expired` and said so.
//!
//! The final stores cannot show either (by the end the unit has arrived, or arrived late),
//! so the run looks at the statuses of the units in flight between its steps, as an office
//! would, and compares them with the destination's inbox at that same instant.

use std::collections::VecDeque;

use renkei_core::records::{self, SentRec, SentStatus, office_id_key};
use renkei_core::store::{Store, Tree};
use renkei_protocol::ids::{EnvelopeId, OfficeNumber};

use crate::checker::Check;
use crate::history::{History, Outcome};
use crate::sim::{NodeIx, Sim};
use crate::workload::Workload;

/// Units looked at per look (round robin over those in flight): small runs look at every
/// unit in flight at every step, the national day's cost stays bounded.
const LOOK_MAX: usize = 16;

/// How long past its expiry (on its origin's clock) a unit may still be shown in flight:
/// the origin expires units at its next batch, and a node just restarted needs a moment.
pub const OVERDUE_MS: u64 = 60_000;

/// A unit in flight, as its sending office follows it.
#[derive(Debug)]
struct Followed {
    origin: NodeIx,
    id: EnvelopeId,
    destination: NodeIx,
    to: OfficeNumber,
}

/// Statuses looked at during the run, and those not backed by what happened.
#[derive(Debug, Default)]
pub struct StatusWatch {
    followed: VecDeque<Followed>,
    /// `delivered`/`retrieved` said while the unit was in no inbox.
    pub early: Check,
    /// Units still shown in flight [`OVERDUE_MS`] after their expiry.
    pub overdue: Check,
    /// Statuses looked at.
    pub looks: u64,
}

impl StatusWatch {
    /// Follows the units accepted since the last call.
    pub fn follow_accepted(&mut self, history: &mut History, workload: &Workload) {
        for i in history.take_accepted() {
            let s = &history.subs[i];
            let Outcome::Accepted(id) = s.outcome else {
                continue;
            };
            let to = &workload.offices[s.to];
            let Ok(office) = to.number.parse() else {
                continue;
            };
            self.followed.push_back(Followed {
                origin: s.origin,
                id,
                destination: to.home,
                to: office,
            });
        }
    }

    /// Looks at the status of up to [`LOOK_MAX`] followed units; those not final go back
    /// in line (as does one whose origin is down).
    pub fn look(&mut self, sim: &Sim) {
        for _ in 0..LOOK_MAX.min(self.followed.len()) {
            let Some(f) = self.followed.pop_front() else {
                return;
            };
            if self.still_open(sim, &f) {
                self.followed.push_back(f);
            }
        }
    }

    /// Looks at one unit; whether to follow it further.
    fn still_open(&mut self, sim: &Sim, f: &Followed) -> bool {
        let Some(store) = sim.core(f.origin).map(|c| c.store()) else {
            return true;
        };
        let Ok(Some(rec)) = records::get::<SentRec>(store, Tree::Sent, f.id.as_bytes()) else {
            return true;
        };
        self.looks += 1;
        match rec.status {
            SentStatus::Delivered | SentStatus::Retrieved => {
                let Some(dest) = sim.store(f.destination) else {
                    return false;
                };
                let there = dest
                    .get(Tree::Inbox, &office_id_key(&f.to, &f.id))
                    .is_ok_and(|v| v.is_some());
                if !there {
                    let now = sim.now();
                    self.early.flag(|| {
                        format!(
                            "n{} tells office {} that {} is {} at {now} ms, while it is in no inbox at n{}",
                            f.origin,
                            rec.from,
                            f.id,
                            rec.status.name(),
                            f.destination
                        )
                    });
                }
                false
            }
            SentStatus::Accepted | SentStatus::Relayed => {
                let late = sim.local_now(f.origin).saturating_sub(rec.expires_at_ms);
                if late > OVERDUE_MS {
                    self.overdue.flag(|| {
                        format!(
                            "n{} still says {} is {} {late} ms after its expiry",
                            f.origin,
                            f.id,
                            rec.status.name()
                        )
                    });
                    return false;
                }
                true
            }
            SentStatus::Rejected | SentStatus::Expired => false,
        }
    }
}
