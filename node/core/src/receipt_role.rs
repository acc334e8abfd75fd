//! Who may sign which receipt. A receipt that verifies under a roster key is not enough:
//! it must come from the node whose statement it is.
//!
//! The rule for envelope statements is the protocol's
//! ([`renkei_protocol::receipt::Receipt::check_role`], shared with offline proof
//! verification):
//!
//! - `Delivered` and `Retrieved`: the destination operator named in the envelope header.
//! - `Expired` and `Accepted{hop 0}`: the origin operator.
//! - `Accepted{hop > 0}` and `Rejected`: any roster operator (relays accept and refuse).
//!
//! The node adds one of its own for hop acknowledgements: the receipt in an answer must be
//! the statement of the peer that answered (see `on_hop_ack`).
//!
//! "The same operator" allows the operator's current key and its retired keys still listed
//! in the roster (key rotation).

use renkei_protocol::envelope::Outer;
use renkei_protocol::ids::OperatorId;
use renkei_protocol::receipt::SignedReceipt;

use super::Core;
use crate::store::Store;

impl<S: Store> Core<S> {
    /// Whether `signer` is a key of the operator `operator` (its current key or a retired
    /// one listed in the roster).
    pub(super) fn same_operator(&self, signer: &OperatorId, operator: &OperatorId) -> bool {
        match self.roster.as_ref() {
            Some(r) => r.roster().same_operator(signer, operator),
            None => signer == operator,
        }
    }

    /// Whether the receipt's signer may make its statement about the envelope whose origin
    /// and destination are given.
    pub(super) fn receipt_role_ok(
        &self,
        origin: &OperatorId,
        destination: &OperatorId,
        r: &SignedReceipt,
    ) -> bool {
        r.receipt()
            .check_role(
                self.roster.as_ref().map(|r| r.roster()),
                origin,
                destination,
            )
            .is_ok()
    }

    /// [`Core::receipt_role_ok`] for an envelope header.
    pub(super) fn receipt_role_ok_for(&self, header: &Outer, r: &SignedReceipt) -> bool {
        self.receipt_role_ok(&header.origin, &header.destination, r)
    }
}
