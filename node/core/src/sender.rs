//! Who may speak for an office: a destination takes a unit only if its sending office is
//! bound (in this node's directory) to the operator that signed the envelope as origin.
//! Without this, any roster operator — a relay that saw the genuine unit, say — could sign
//! a unit "from" another operator's office, with `supersedes` naming the genuine one, and
//! the recipient's inbox would show the forgery as the latest plan.
//!
//! The directory holds one binding per office, the latest it has learnt:
//!
//! - bound to the origin (its current or a retired key), with the sender's service kind:
//!   the sender is who it says;
//! - released by the origin after the unit was made: it was the origin's office when the
//!   unit was made (a unit in flight while its office moves);
//! - no binding yet (a new office whose binding has not reached this node by directory
//!   sync): not decided — the hop is answered "retry later" and a directory sync is asked
//!   of the peer, so the unit is taken once the binding arrives;
//! - anything else (bound to another operator, released before the unit was made, a kind
//!   the office does not run, a binding whose operator is no longer in the roster): refused
//!   as `sender_not_bound`, and — like a failed signature — not remembered, so a forgery
//!   cannot take the id of a genuine unit.

use renkei_protocol::envelope::Outer;
use renkei_protocol::ids::OperatorId;

use super::Core;
use crate::store::Store;

/// Whether an envelope's sending office is bound to its origin.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Sender {
    /// Bound to the origin at the unit's time.
    Bound,
    /// This node has no binding for the office yet.
    Unknown(String),
    /// Bound elsewhere (or not for that kind): a forged or stale sender.
    NotBound(String),
}

impl<S: Store> Core<S> {
    /// Whether the sending office of `h` is bound to `h.origin` (see the module docs).
    pub(crate) fn sender_standing(&self, h: &Outer) -> Sender {
        let office = &h.from.office;
        if let Some(rec) = self.offices.get(office) {
            return if !self.is_me(&h.origin) {
                Sender::NotBound(format!(
                    "sending office {office} is homed at this operator, not at origin {}",
                    h.origin
                ))
            } else if !rec.kinds.contains(&h.from.kind) {
                Sender::NotBound(format!(
                    "sending office {office} does not run service kind {}",
                    h.from.kind
                ))
            } else {
                Sender::Bound
            };
        }
        let Some(b) = self.bindings.get(office) else {
            return Sender::Unknown(format!(
                "sending office {office} is not yet known here; retry after directory sync"
            ));
        };
        let in_roster = |op: &OperatorId| {
            self.roster
                .as_ref()
                .is_some_and(|r| r.roster().operator_with_key(op).is_some())
        };
        if !self.same_operator(&b.operator, &h.origin) {
            let holder = self
                .operator_name(&b.operator)
                .unwrap_or_else(|| b.operator.to_string());
            return Sender::NotBound(format!(
                "sending office {office} is bound to operator {holder}, not to the origin {}",
                h.origin
            ));
        }
        if !in_roster(&b.operator) {
            return Sender::NotBound(format!(
                "sending office {office} is bound to operator {}, which is no longer in the roster",
                b.operator
            ));
        }
        if b.released && b.since_ms < h.created_at_ms {
            return Sender::NotBound(format!(
                "sending office {office} was released by the origin before the unit was made"
            ));
        }
        if !b.kinds.contains(&h.from.kind) {
            return Sender::NotBound(format!(
                "sending office {office} is not bound for service kind {}",
                h.from.kind
            ));
        }
        Sender::Bound
    }
}
