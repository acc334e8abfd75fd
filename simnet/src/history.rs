//! What the workload submitted and what the origin told it, recorded independently of the
//! nodes so the checkers can compare the two.

use std::collections::BTreeMap;

use renkei_core::ApiId;
use renkei_protocol::envelope::sha256;
use renkei_protocol::ids::EnvelopeId;

use crate::lookup::LookupMap;
use crate::payload::UnitKind;
use crate::sim::NodeIx;

/// What became of a submission.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// No reply yet (or never: the origin crashed before releasing it).
    Waiting,
    /// The origin accepted it under this envelope id.
    Accepted(EnvelopeId),
    /// The origin refused it (reply kind and text).
    Refused(String),
}

/// One submission.
#[derive(Debug, Clone)]
pub struct Submission {
    /// Global virtual time of the API call.
    pub at: u64,
    /// Unit kind.
    pub kind: UnitKind,
    /// Sending office (index into the workload's offices).
    pub from: usize,
    /// Receiving office.
    pub to: usize,
    /// Origin node.
    pub origin: NodeIx,
    /// The stamp.
    pub stamp: String,
    /// SHA-256 of the unit's file names (its identity for the checkers).
    pub key: [u8; 32],
    /// Explicitly replaced envelope.
    pub supersedes: Option<EnvelopeId>,
    /// The outcome.
    pub outcome: Outcome,
}

/// The workload's record.
#[derive(Debug, Default)]
pub struct History {
    /// Submissions in order.
    pub subs: Vec<Submission>,
    by_api: BTreeMap<ApiId, usize>,
    /// Unit key → submission index (looked up millions of times by the checkers, never
    /// iterated).
    pub by_key: LookupMap<[u8; 32], usize>,
    /// Submissions accepted since [`History::take_accepted`] was last called.
    fresh: Vec<usize>,
}

/// The key of a unit from its file names.
pub fn unit_key<S: AsRef<str>>(names: &[S]) -> [u8; 32] {
    let joined: Vec<&str> = names.iter().map(|s| s.as_ref()).collect();
    sha256(joined.join("|").as_bytes())
}

impl History {
    /// An empty history with room for `n` submissions (grown by doubling, the national
    /// day's 2.4 M were copied and their pages faulted in again at each step).
    pub fn with_capacity(n: usize) -> Self {
        History {
            subs: Vec::with_capacity(n),
            by_api: BTreeMap::new(),
            by_key: LookupMap::with_capacity(n),
            fresh: Vec::new(),
        }
    }

    /// Records a submission sent as API call `api`.
    pub fn submitted(&mut self, api: ApiId, s: Submission) {
        let i = self.subs.len();
        self.by_api.insert(api, i);
        self.by_key.insert(s.key, i);
        self.subs.push(s);
    }

    /// Records a reply; returns false if the API id is not a submission.
    pub fn replied(&mut self, api: ApiId, outcome: Outcome) -> bool {
        match self.by_api.remove(&api) {
            Some(i) => {
                if matches!(outcome, Outcome::Accepted(_)) {
                    self.fresh.push(i);
                }
                self.subs[i].outcome = outcome;
                true
            }
            None => false,
        }
    }

    /// The submissions accepted since the last call, in reply order.
    pub fn take_accepted(&mut self) -> Vec<usize> {
        std::mem::take(&mut self.fresh)
    }

    /// The accepted envelope of submission `i`, if any.
    pub fn accepted(&self, i: usize) -> Option<EnvelopeId> {
        match self.subs.get(i).map(|s| &s.outcome) {
            Some(Outcome::Accepted(id)) => Some(*id),
            _ => None,
        }
    }
}
