//! Who may sign which receipt. A receipt that verifies under a roster key is not enough:
//! it must come from the node whose statement it is.
//!
//! - `Delivered` and `Retrieved`: the destination operator named in the envelope header.
//! - `Expired` and `Accepted{hop 0}`: the origin operator.
//! - `Accepted{hop > 0}` and `Rejected`: any roster operator (relays accept and refuse).
//! - A hop acknowledgement's receipt: the peer that answered, since it is that peer's
//!   statement about the envelope it was handed.
//!
//! "The same operator" allows the operator's current key and its retired keys still listed
//! in the roster (key rotation).

use renkei_protocol::envelope::Header;
use renkei_protocol::ids::OperatorId;
use renkei_protocol::receipt::{ReceiptKind, SignedReceipt};

use super::Core;
use crate::store::Store;

impl<S: Store> Core<S> {
    /// Whether `signer` is a key of the operator `operator` (its current key or a retired
    /// one listed in the roster).
    pub(super) fn same_operator(&self, signer: &OperatorId, operator: &OperatorId) -> bool {
        if signer == operator {
            return true;
        }
        self.roster.as_ref().is_some_and(|r| {
            r.roster().operators.iter().any(|o| {
                let keys: Vec<&OperatorId> = std::iter::once(&o.id)
                    .chain(o.old_keys.iter().map(|k| &k.id))
                    .collect();
                keys.contains(&signer) && keys.contains(&operator)
            })
        })
    }

    /// Whether the receipt's signer may make its statement about the envelope whose origin
    /// and destination are given.
    pub(super) fn receipt_role_ok(
        &self,
        origin: &OperatorId,
        destination: &OperatorId,
        r: &SignedReceipt,
    ) -> bool {
        let rc = r.receipt();
        match rc.kind {
            ReceiptKind::Delivered | ReceiptKind::Retrieved => {
                self.same_operator(&rc.node, destination)
            }
            ReceiptKind::Expired | ReceiptKind::Accepted { hop: 0 } => {
                self.same_operator(&rc.node, origin)
            }
            ReceiptKind::Accepted { .. } | ReceiptKind::Rejected { .. } => true,
        }
    }

    /// [`Core::receipt_role_ok`] for an envelope header.
    pub(super) fn receipt_role_ok_for(&self, header: &Header, r: &SignedReceipt) -> bool {
        self.receipt_role_ok(&header.origin, &header.destination, r)
    }
}
