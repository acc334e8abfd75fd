//! A lying member of the federation (issue 29): an admitted operator whose node runs the
//! honest core — it homes its own offices, relays, answers — while its operator also
//! attacks the others with what its roster key can sign:
//!
//! - **forged sender**: a unit "from" an office homed at another operator, naming that
//!   operator's genuine unit in `supersedes`, sealed to the destination and signed by the
//!   liar as origin, delivered straight to the destination;
//! - **false rejection**: a `Rejected` receipt for another operator's unit still in
//!   flight, sent to its origin;
//! - **receipt stuffing**: dozens of hop receipts and rejections for one unit, sent to its
//!   origin;
//! - **replay**: a genuine envelope delivered again to its destination;
//! - **corrupted signature**: a genuine envelope with a flipped signature byte;
//! - **a unit failing the standard**: one of its own offices' units with a broken CSV
//!   line, the header matching it;
//! - **files unlike their header**: one of its own offices' valid units under a header
//!   that lists another digest for a file, sealed and signed by hand as the protocol
//!   defines (the sealing API would refuse to make it);
//! - **a claimed home**: its own signed binding of an office another operator homes,
//!   published in every directory answer its node gives from then on (a hijack: units for
//!   that office would be sealed to the liar);
//! - **accept and drop**: its node is a relay in the roster; what others give it to relay
//!   it accepts (a signed `Accepted`) and never passes on ([`Sim::drop_relayed`]).
//!
//! The answers to its requests are tallied by outcome ([`Attacks::outcomes`]): forged
//! senders, corrupted signatures, broken units and files unlike their header must come
//! back refused (`sender_not_bound`, `bad_signature`, `invalid_csv`, `cannot_open`) — the
//! refusals of the very checks production runs, exercised inside a simulation.
//!
//! It sees every header (as a relay would) and signs only with its own key. Its requests
//! travel like any of its node's (over the simulated links, with their faults); the
//! answers come back to its node's core, which ignores them (ids it never sent). The
//! honest-party checkers ([`crate::checker`]) then say whether any attack got through.

use renkei_core::records::{self, SentRec, SentStatus};
use renkei_core::store::{Store, Tree};
use renkei_core::unit::check_unit;
use renkei_protocol::envelope::{Envelope, Header};
use renkei_protocol::ids::EnvelopeId;
use renkei_protocol::keys::OperatorKeys;
use renkei_protocol::receipt::{Receipt, ReceiptKind, RejectCode, SignedReceipt};
use renkei_protocol::rng::Entropy;
use renkei_protocol::roster::OfficeBinding;
use renkei_protocol::wire::{HopOutcome, Request, Response};
use serde::Serialize;

use crate::history::{History, unit_key};
use crate::sim::{NodeIx, Sim};
use crate::workload::Workload;

/// What the liar tried.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Attacks {
    /// The lying node.
    pub node: NodeIx,
    /// Forged-sender units delivered to destinations.
    pub forged: u64,
    /// False rejections sent to origins.
    pub false_rejections: u64,
    /// Stuffed receipts sent to origins.
    pub stuffed: u64,
    /// Genuine envelopes replayed.
    pub replays: u64,
    /// Envelopes sent with a corrupted signature.
    pub corrupted: u64,
    /// Units failing the standard-spec check.
    pub invalid: u64,
    /// Units whose files do not match their header (sealed by hand).
    pub unlike: u64,
    /// Offices homed elsewhere that it claimed in its directory.
    pub claims: u64,
    /// Envelopes it accepted as a relay and never passed on.
    pub dropped: u64,
    /// Answers to the liar's deliveries: `accepted`, or the rejection code.
    pub outcomes: std::collections::BTreeMap<String, u64>,
}

/// The lying operator's attacker.
pub struct Adversary {
    node: NodeIx,
    keys: OperatorKeys,
    rng: Entropy,
    strike: u64,
    /// Whether it claims others' offices ([`crate::scenario::Byzantine::claims`]).
    claims: bool,
    /// What it tried so far.
    pub attacks: Attacks,
}

/// What is wrong with a unit of the liar's own office.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Flaw {
    /// A CSV line cut short (the header lists the broken file faithfully).
    BrokenCsv,
    /// Valid files, a header that lists another digest for one of them.
    FilesUnlikeHeader,
}

/// One genuine unit the liar found at its origin.
struct Target {
    origin: NodeIx,
    destination: NodeIx,
    sent: SentRec,
    header: Header,
}

impl Adversary {
    /// The attacker of node `node` (its keys sign every lie).
    pub fn new(node: NodeIx, keys: OperatorKeys, seed: u64, claims: bool) -> Adversary {
        Adversary {
            node,
            keys,
            rng: Entropy::from_u64(seed ^ 0x00ba_d0be),
            strike: 0,
            claims,
            attacks: Attacks {
                node,
                ..Attacks::default()
            },
        }
    }

    /// The lying node.
    pub fn node(&self) -> NodeIx {
        self.node
    }

    /// One attack, the next in turn, on a genuine unit of another operator.
    pub fn strike(&mut self, sim: &mut Sim, history: &History, workload: &Workload) {
        self.tally(sim);
        let kind = self.strike % if self.claims { 8 } else { 7 };
        self.strike += 1;
        if kind == 5 || kind == 6 {
            let flaw = if kind == 5 {
                Flaw::BrokenCsv
            } else {
                Flaw::FilesUnlikeHeader
            };
            self.own_flawed_unit(sim, history, workload, flaw);
            return;
        }
        if kind == 7 {
            self.claim(sim, workload);
            return;
        }
        // A false rejection and a corrupted signature are about a unit still in flight (a
        // delivered one is answered from the dedup index); the rest take any. Receipts go
        // to the unit's origin, envelopes to its destination: one the liar has a link to.
        let Some(t) = self.pick(sim, matches!(kind, 1 | 4), matches!(kind, 1 | 2)) else {
            return;
        };
        match kind {
            0 => self.forge(sim, history, workload, &t),
            1 => {
                let lie = self.receipt(
                    sim,
                    &t,
                    ReceiptKind::Rejected {
                        code: RejectCode::InvalidCsv,
                        text: "the liar says so".into(),
                    },
                );
                sim.inject(self.node, t.origin, Request::Receipts(vec![lie]));
                self.attacks.false_rejections += 1;
            }
            2 => {
                let mut lies = Vec::new();
                for i in 0..24u8 {
                    lies.push(self.receipt(sim, &t, ReceiptKind::Accepted { hop: 1 + i }));
                    lies.push(self.receipt(
                        sim,
                        &t,
                        ReceiptKind::Rejected {
                            code: RejectCode::NoRoute,
                            text: format!("stuffing {i}"),
                        },
                    ));
                }
                self.attacks.stuffed += lies.len() as u64;
                sim.inject(self.node, t.origin, Request::Receipts(lies));
            }
            _ => {
                let Some(mut bytes) = sim
                    .store(t.origin)
                    .and_then(|s| s.get(Tree::Envelopes, t.sent.id.as_bytes()).ok().flatten())
                else {
                    return;
                };
                if kind == 4 {
                    // The signature is the envelope's last field.
                    if let Some(last) = bytes.last_mut() {
                        *last ^= 0x01;
                    }
                    self.attacks.corrupted += 1;
                } else {
                    self.attacks.replays += 1;
                }
                sim.inject(self.node, t.destination, Request::Deliver(vec![bytes]));
            }
        }
    }

    /// Tallies the answers to its deliveries that came back since the last call.
    pub fn tally(&mut self, sim: &mut Sim) {
        self.attacks.dropped = sim.relayed_dropped();
        for (_, response) in sim.take_injected_answers() {
            let acks = match response {
                Response::HopAcks(acks) => acks,
                Response::ReceiptsTaken(_) => continue,
                other => {
                    let name = format!("{other:?}");
                    let head: String = name.chars().take_while(|c| c.is_alphanumeric()).collect();
                    *self
                        .attacks
                        .outcomes
                        .entry(format!("answered {head}"))
                        .or_default() += 1;
                    continue;
                }
            };
            for ack in acks {
                let outcome = match ack.outcome {
                    HopOutcome::Accepted(_) => "accepted".to_owned(),
                    HopOutcome::RetryLater(_) => "retry_later".to_owned(),
                    HopOutcome::Rejected(r) => {
                        match SignedReceipt::decode(&r).map(|r| r.receipt().kind.clone()) {
                            Ok(ReceiptKind::Rejected { code, .. }) => code.as_str().to_owned(),
                            _ => "rejected (unreadable)".to_owned(),
                        }
                    }
                };
                *self.attacks.outcomes.entry(outcome).or_default() += 1;
            }
        }
    }

    /// A unit from one of its own offices to another operator's, honestly signed by the
    /// liar as origin, with a `flaw` only the destination's own checks can find.
    fn own_flawed_unit(
        &mut self,
        sim: &mut Sim,
        history: &History,
        workload: &Workload,
        flaw: Flaw,
    ) {
        let own: Vec<&crate::history::Submission> = history
            .subs
            .iter()
            .filter(|s| {
                let home = workload.offices[s.to].home;
                s.origin == self.node && home != self.node && sim.linked(self.node, home)
            })
            .collect();
        if own.is_empty() {
            return;
        }
        let sub = own[self.rng.below(own.len() as u64) as usize];
        let (from, to) = (&workload.offices[sub.from], &workload.offices[sub.to]);
        let Some(entry) = sim.roster().roster().operator(&sim.id(to.home)).cloned() else {
            return;
        };
        let stamp = later_stamp(&sub.stamp);
        let mut files = sub.kind.build(&from.number, &to.number, &stamp);
        let refs: Vec<(&str, &[u8])> = files
            .iter()
            .map(|(n, b)| (n.as_str(), b.as_slice()))
            .collect();
        let Ok(info) = check_unit(&refs) else {
            return;
        };
        if flaw == Flaw::BrokenCsv {
            // A broken line (a field cut short), and a header that lists it faithfully.
            let b = &mut files[0].1;
            if let Some(pos) = b.iter().position(|c| *c == b',') {
                b.remove(pos);
            }
        }
        let refs: Vec<(&str, &[u8])> = files
            .iter()
            .map(|(n, b)| (n.as_str(), b.as_slice()))
            .collect();
        let mut entries = Envelope::file_entries(&refs);
        if flaw == Flaw::FilesUnlikeHeader {
            // Valid files under a header that lists another digest for the first.
            entries[0].sha256[0] ^= 0x01;
        }
        let mut id = [0u8; 16];
        id.copy_from_slice(&self.rng.bytes32()[..16]);
        let header = Header {
            outer: renkei_protocol::envelope::Outer {
                id: EnvelopeId(id),
                from: info.from,
                to: info.to,
                origin: self.keys.id(),
                destination: entry.id,
                sealed_to: entry.enc_key,
                doc_kind: info.doc_kind,
                stamp: info.stamp,
                supersedes: None,
                created_at_ms: sim.local_now(self.node),
            },
            subject: info.subject,
            files: entries,
            salt: Some(renkei_protocol::envelope::salt_from_seed(
                &self.rng.bytes32(),
            )),
        };
        let bodies: Vec<&[u8]> = files.iter().map(|(_, b)| b.as_slice()).collect();
        let bytes = match flaw {
            Flaw::BrokenCsv => {
                let Ok(env) =
                    Envelope::seal_and_sign(header, &bodies, &self.keys, self.rng.bytes32())
                else {
                    return;
                };
                self.attacks.invalid += 1;
                env.encode()
            }
            Flaw::FilesUnlikeHeader => {
                let Some(bytes) = self.seal_by_hand(&header, &bodies) else {
                    return;
                };
                self.attacks.unlike += 1;
                bytes
            }
        };
        sim.inject(self.node, to.home, Request::Deliver(vec![bytes]));
    }

    /// Seals and signs a version-2 envelope the way the protocol defines it, without the
    /// sealing API's check that the files match the header (which an attacker need not
    /// use): payload `[inner header, [files]]`, sealed to the destination with the
    /// cleartext header as associated data, signed over the payload's digest and the
    /// cleartext header.
    fn seal_by_hand(&mut self, header: &Header, files: &[&[u8]]) -> Option<Vec<u8>> {
        use renkei_protocol::cbor;
        use renkei_protocol::envelope::{ENVELOPE_SIG_LABEL, sha256, signed_message};
        let (header_bytes, inner) = header.parts();
        let payload = cbor::encode(&ciborium::value::Value::Array(vec![
            cbor::bytes(&inner?),
            ciborium::value::Value::Array(files.iter().map(|f| cbor::bytes(f)).collect()),
        ]));
        let sealed = renkei_protocol::seal::seal(
            &header.sealed_to,
            &header_bytes,
            &payload,
            self.rng.bytes32(),
        )
        .ok()?;
        let signature = self.keys.identity.sign(
            ENVELOPE_SIG_LABEL,
            &signed_message(&header_bytes, &sha256(&sealed)),
        );
        Some(cbor::encode(&ciborium::value::Value::Array(vec![
            cbor::uint(header.version()),
            cbor::bytes(&header_bytes),
            cbor::bytes(&sealed),
            cbor::bytes(&signature),
        ])))
    }

    /// Before the offices register: claims every third office another operator homes, so
    /// its claims race the homes' own bindings to every node (what a new node, or a node
    /// hearing of an office for the first time, faces). Without the authority's
    /// assignments, first-seen would decide, and some nodes would home those offices at
    /// the liar.
    pub fn claim_early(&mut self, sim: &mut Sim, workload: &Workload) {
        if !self.claims {
            return;
        }
        let me = self.node;
        for o in workload.offices.iter().filter(|o| o.home != me).step_by(3) {
            self.claim_office(sim, o);
        }
    }

    /// Claims an office another operator homes: signs its own binding of the office (as
    /// if the office had moved to it) and adds it to every directory answer its node gives.
    fn claim(&mut self, sim: &mut Sim, workload: &Workload) {
        let others: Vec<_> = workload
            .offices
            .iter()
            .filter(|o| o.home != self.node)
            .collect();
        if others.is_empty() {
            return;
        }
        let o = others[self.rng.below(others.len() as u64) as usize];
        self.claim_office(sim, o);
    }

    /// Signs its own binding of `o` and adds it to its node's directory answers.
    fn claim_office(&mut self, sim: &mut Sim, o: &crate::workload::Office) {
        let Ok(office) = o.number.parse() else {
            return;
        };
        let binding = OfficeBinding {
            office,
            kinds: o
                .role
                .kinds()
                .iter()
                .filter_map(|k| k.parse().ok())
                .collect(),
            operator: self.keys.id(),
            since_ms: sim.local_now(self.node),
            released: false,
            name: String::new(),
        }
        .sign(&self.keys.identity)
        .encode();
        sim.lie_in_directory(self.node, binding);
        self.attacks.claims += 1;
    }

    /// A genuine unit sent by another operator to a third one (in flight only, if asked),
    /// whose origin (`to_origin`) or destination the liar has a link to.
    fn pick(&mut self, sim: &Sim, in_flight: bool, to_origin: bool) -> Option<Target> {
        let honest: Vec<NodeIx> = (1..sim.len()).filter(|n| *n != self.node).collect();
        if honest.is_empty() {
            return None;
        }
        for _ in 0..16 {
            let origin = honest[self.rng.below(honest.len() as u64) as usize];
            if to_origin && !sim.linked(self.node, origin) {
                continue;
            }
            let Some(store) = sim.store(origin) else {
                continue;
            };
            let sent: Vec<SentRec> = store
                .values(Tree::Sent)
                .filter_map(|v| records::decode::<SentRec>(Tree::Sent, &v).ok())
                .filter(|s| {
                    !in_flight || matches!(s.status, SentStatus::Accepted | SentStatus::Relayed)
                })
                .collect();
            if sent.is_empty() {
                continue;
            }
            let sent = sent[self.rng.below(sent.len() as u64) as usize].clone();
            let Ok(header) = Header::decode(&sent.header) else {
                continue;
            };
            let Some(destination) = (0..sim.len()).find(|n| sim.id(*n) == header.destination)
            else {
                continue;
            };
            if destination == self.node
                || destination == origin
                || (!to_origin && !sim.linked(self.node, destination))
            {
                continue;
            }
            return Some(Target {
                origin,
                destination,
                sent,
                header,
            });
        }
        None
    }

    /// A receipt about `t` signed by the liar.
    fn receipt(&self, sim: &Sim, t: &Target, kind: ReceiptKind) -> Vec<u8> {
        Receipt {
            envelope: t.sent.id,
            digest: t.header.digest(),
            kind,
            node: self.keys.id(),
            at_ms: sim.local_now(self.node),
        }
        .sign(&self.keys.identity)
        .encode()
    }

    /// The forged-sender unit for `t`: the same kind of unit between the same offices,
    /// under a later stamp, naming the genuine one in `supersedes`, signed as origin by
    /// the liar.
    fn forge(&mut self, sim: &mut Sim, history: &History, workload: &Workload, t: &Target) {
        let names: Vec<&str> = t.header.files.iter().map(|f| f.name.as_str()).collect();
        let Some(sub) = history
            .by_key
            .get(&unit_key(&names))
            .map(|i| &history.subs[*i])
        else {
            return;
        };
        let (from, to) = (
            &workload.offices[sub.from].number,
            &workload.offices[sub.to].number,
        );
        let stamp = later_stamp(&t.header.stamp.to_string());
        let files = sub.kind.build(from, to, &stamp);
        let refs: Vec<(&str, &[u8])> = files
            .iter()
            .map(|(n, b)| (n.as_str(), b.as_slice()))
            .collect();
        let Ok(info) = check_unit(&refs) else {
            return;
        };
        let mut id = [0u8; 16];
        id.copy_from_slice(&self.rng.bytes32()[..16]);
        let header = Header {
            outer: renkei_protocol::envelope::Outer {
                id: EnvelopeId(id),
                from: info.from,
                to: info.to,
                origin: self.keys.id(),
                destination: t.header.destination,
                sealed_to: t.header.sealed_to,
                doc_kind: info.doc_kind,
                stamp: info.stamp,
                supersedes: Some(t.sent.id),
                created_at_ms: sim.local_now(self.node),
            },
            subject: info.subject,
            files: Envelope::file_entries(&refs),
            salt: Some(renkei_protocol::envelope::salt_from_seed(
                &self.rng.bytes32(),
            )),
        };
        let bodies: Vec<&[u8]> = files.iter().map(|(_, b)| b.as_slice()).collect();
        let Ok(env) = Envelope::seal_and_sign(header, &bodies, &self.keys, self.rng.bytes32())
        else {
            return;
        };
        sim.inject(
            self.node,
            t.destination,
            Request::Deliver(vec![env.encode()]),
        );
        self.attacks.forged += 1;
    }
}

/// A stamp (yyyymmddhhmmss) a little later than `stamp`, still a valid time: its last
/// minute of the same hour.
fn later_stamp(stamp: &str) -> String {
    if stamp.len() != 14 {
        return stamp.to_owned();
    }
    let bumped = format!("{}5959", &stamp[..10]);
    if bumped.as_str() > stamp {
        bumped
    } else {
        stamp.to_owned()
    }
}
