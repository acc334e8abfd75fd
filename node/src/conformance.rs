//! The conformance kit: black-box checks of another operator's node over libp2p, run by
//! `renkei conformance` before an operator joins a federation (or after an upgrade).
//!
//! The kit speaks `/renkei/relay/1` through this crate's own network actor ([`crate::net`])
//! as a roster operator (the tester's identity, which must be in the roster the target
//! holds), and sends the target:
//!
//! | check | sends | passes when |
//! |---|---|---|
//! | `directory-sync` | `DirectorySync` | a `Directory` answer (the target serves roster members) |
//! | `delivery` | a sealed, signed envelope of the given unit for an office homed at the target | one hop ack, `Accepted` with a receipt |
//! | `receipt-signature` | — | that receipt verifies against the roster key of the target, names the envelope and its digest, and is `Delivered` (the destination's role) |
//! | `dedup` | the same envelope again | the *same* receipt bytes (answered from dedup, no second delivery) |
//! | `refuse-garbage` | a frame that is not CBOR | `Refused { Malformed }`, and the node still answers |
//! | `refuse-forged-signature` | a fresh envelope with a corrupted origin signature | `Rejected` receipt with code `bad_signature`, and the node still answers |
//! | `refuse-unknown-origin` | an envelope signed by an operator outside the roster | `Rejected` receipt with code `unknown_operator`, and the node still answers |
//! | `refuse-outsider-peer` | `DirectorySync` from a peer identity outside the roster | the connection denied when established (before the request is read), or `Refused { NotInRoster }` |
//! | `refuse-oversize` | a frame one byte over `MESSAGE_BYTES_MAX` | `Refused { TooLarge }`, and the node still answers |
//! | `refuse-home-capture` | in the tester's directory, a claim binding the unit's receiving office (homed at the target) to the tester — a lying member | once the target has read it, its own directory still binds the office to the target and nowhere to the tester |
//!
//! Every check is run even when an earlier one fails; checks that need the delivery
//! receipt fail when there is none.
//!
//! # Layout
//!
//! - `session`: one libp2p identity connected to the target, request/answer with a bound.
//! - `envelopes`: the envelopes the checks send.
//! - `checks`: the checks themselves.

mod checks;
mod envelopes;
mod session;

use std::fmt;
use std::time::Duration;

use renkei_protocol::ids::OperatorId;
use renkei_protocol::keys::OperatorKeys;
use renkei_protocol::roster::Roster;

use crate::net::{Multiaddr, NetError};

/// Default bound on each request (from sending to the answer).
pub const REQUEST_TIMEOUT_DEFAULT: Duration = Duration::from_secs(60);

/// What the kit needs.
pub struct Options {
    /// The tester's operator keys (a roster operator).
    pub keys: OperatorKeys,
    /// The roster the target holds (the tester and the target must both be in it).
    pub roster: Roster,
    /// The target's address, ending in `/p2p/PEER_ID`.
    pub target: Multiaddr,
    /// A valid send unit (standard file names and bytes) for an office homed at the target.
    pub unit: Vec<(String, Vec<u8>)>,
    /// Bound on each request.
    pub request_timeout: Duration,
}

impl fmt::Debug for Options {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Options")
            .field("tester", &self.keys.id())
            .field("target", &self.target)
            .field("unit_files", &self.unit.len())
            .field("request_timeout", &self.request_timeout)
            .finish_non_exhaustive()
    }
}

/// The result of one check.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CheckResult {
    /// Stable check name (see the module documentation).
    pub name: &'static str,
    /// Whether it passed.
    pub passed: bool,
    /// What was observed.
    pub detail: String,
}

/// Why the kit could not run at all (as opposed to a check failing).
#[derive(Debug, thiserror::Error)]
pub enum ConformanceError {
    /// The target address has no `/p2p/PEER_ID`, or the peer id is not an operator key.
    #[error("target {0}: it must end in /p2p/PEER_ID of an ed25519 (operator) key")]
    Target(String),
    /// The target operator is not in the roster.
    #[error("target operator {0} is not in the roster")]
    TargetNotInRoster(OperatorId),
    /// The tester is not in the roster.
    #[error(
        "this operator ({0}) is not in the roster: the target would refuse every request; ask the federation authority to add it"
    )]
    TesterNotInRoster(OperatorId),
    /// The unit is not a valid send unit.
    #[error("the test unit is not a valid send unit: {0}")]
    Unit(String),
    /// The network could not be set up.
    #[error(transparent)]
    Net(#[from] NetError),
    /// No randomness.
    #[error("no randomness for envelope ids and keys: {0}")]
    Random(String),
}

/// Runs every check against the target and returns the results in order.
pub async fn run(opts: &Options) -> Result<Vec<CheckResult>, ConformanceError> {
    checks::run(opts).await
}
