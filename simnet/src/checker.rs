//! Invariant checkers, separate from the workload (TigerBeetle's VOPR, Jepsen's queue
//! checkers). They read only the workload's [`History`] and the nodes' final stores:
//!
//! - **lost**: accepted by the origin, never Delivered nor Expired (including accepted
//!   replies whose origin has no record of the envelope, and valid units rejected);
//! - **duplicated**: two inbox entries for one envelope or one submitted unit;
//! - **unexpected**: an inbox entry never submitted (or one the origin refused);
//! - **wrong receipt**: a stored receipt that does not verify against the roster, or a
//!   Delivered receipt for an envelope in no inbox;
//! - **stale latest**: the inbox shows an older version as latest for a slot where a newer
//!   one was delivered (explicit supersession always; by document slot when the core
//!   derived the unit's users);
//! - **plaintext at relay**: a relay's store holds a 32-byte window of a unit's plaintext;
//! - **liveness**: after faults stop, envelopes still not final within the bound;
//! - **forged**: an inbox entry whose origin operator is not the home of its sending
//!   office (a lying member's forged sender got through), or whose stored envelope's
//!   origin signature does not verify;
//! - **untrue status**: an origin says `rejected` for a unit that is in its recipient's
//!   inbox, or `delivered`/`retrieved` without holding the destination's `Delivered`;
//! - **retrieval**: a unit its office downloaded whole is not `retrieved` at its origin,
//!   or the origin holds other than exactly one `Retrieved` receipt for it;
//! - **delivered once**: a destination signed two different `Delivered` receipts for one
//!   envelope (the one it answers copies with is not the one its origin holds);
//! - **overdue**: during the run, an origin still showed a unit `accepted`/`relayed` well
//!   past its expiry ([`crate::watch`], which also adds to **untrue status** every
//!   `delivered` said while the unit was in no inbox).

mod plaintext;

use std::sync::atomic::{AtomicUsize, Ordering};

use renkei_core::records::{self, DedupRec, InboxRec, SentRec, SentStatus};
use renkei_core::store::{Store, Tree};
use renkei_protocol::envelope::{Envelope, Header};
use renkei_protocol::ids::{EnvelopeId, OperatorId};
use renkei_protocol::receipt::{ReceiptKind, SignedReceipt};
use serde::Serialize;

use crate::history::{History, Outcome, unit_key};
use crate::lookup::{LookupMap, LookupSet};
use crate::payload::UnitKind;
use crate::sim::{NodeIx, Sim};
use crate::workload::Workload;

/// Examples kept per checker.
const EXAMPLES_MAX: usize = 5;

/// One checker's result.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Check {
    /// Violations found.
    pub count: u64,
    /// The first few, described.
    pub examples: Vec<String>,
}

impl Check {
    /// Adds `other`'s violations after this one's.
    pub(crate) fn merge(&mut self, other: Check) {
        self.count += other.count;
        let room = EXAMPLES_MAX.saturating_sub(self.examples.len());
        self.examples.extend(other.examples.into_iter().take(room));
    }

    pub(crate) fn flag(&mut self, what: impl FnOnce() -> String) {
        self.count += 1;
        if self.examples.len() < EXAMPLES_MAX {
            self.examples.push(what());
        }
    }
}

/// All checkers' results.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Findings {
    /// Accepted, never Delivered nor Expired.
    pub lost: Check,
    /// Delivered twice.
    pub duplicated: Check,
    /// Delivered, never submitted.
    pub unexpected: Check,
    /// Receipts that do not verify or claim a delivery that is not there.
    pub wrong_receipt: Check,
    /// An older version shown as latest.
    pub stale_latest: Check,
    /// Plaintext in a relay's store.
    pub plaintext_at_relay: Check,
    /// Not final within the liveness bound after faults stopped.
    pub liveness: Check,
    /// Inbox entries whose origin is not the sending office's home.
    pub forged: Check,
    /// Origin statuses not backed by what happened.
    pub untrue_status: Check,
    /// Downloaded units not `retrieved` at their origin with exactly one receipt.
    pub retrieval: Check,
    /// Offices a node's directory homes at another operator than their own.
    pub hijacked: Check,
    /// Envelopes a destination signed more than one `Delivered` for.
    pub delivered_once: Check,
    /// Units an origin still showed in flight well past their expiry (seen during the
    /// run, [`crate::watch`]).
    pub overdue: Check,
}

impl Findings {
    /// (name, result) of every checker.
    pub fn all(&self) -> [(&'static str, &Check); 13] {
        [
            ("lost", &self.lost),
            ("duplicated", &self.duplicated),
            ("unexpected", &self.unexpected),
            ("wrong_receipt", &self.wrong_receipt),
            ("stale_latest", &self.stale_latest),
            ("plaintext_at_relay", &self.plaintext_at_relay),
            ("liveness", &self.liveness),
            ("forged", &self.forged),
            ("untrue_status", &self.untrue_status),
            ("retrieval", &self.retrieval),
            ("hijacked", &self.hijacked),
            ("delivered_once", &self.delivered_once),
            ("overdue", &self.overdue),
        ]
    }

    /// Whether every checker passed.
    pub fn passed(&self) -> bool {
        self.all().iter().all(|(_, c)| c.count == 0)
    }
}

/// An inbox entry as the checkers see it.
#[derive(Debug, Clone)]
pub struct Received {
    /// Destination node.
    pub node: NodeIx,
    /// Envelope id.
    pub id: EnvelopeId,
    /// Unit key (hash of its file names).
    pub key: [u8; 32],
    /// Stamp.
    pub stamp: String,
    /// Shown as latest.
    pub latest: bool,
    /// Explicitly replaced envelope.
    pub supersedes: Option<EnvelopeId>,
    /// Replacing envelope.
    pub superseded_by: Option<EnvelopeId>,
    /// Users the core derived (0 = it could not derive document slots).
    pub users: u32,
    /// Arrival, global virtual time.
    pub received_at: u64,
    /// The origin operator that signed it.
    pub origin: OperatorId,
    /// The sending office.
    pub from: String,
}

/// Totals gathered while checking.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Tally {
    /// Envelopes final as Delivered (or Retrieved) at their origin.
    pub delivered: u64,
    /// Envelopes final as Expired at their origin.
    pub expired: u64,
    /// Envelopes rejected.
    pub rejected: u64,
    /// Inbox entries across all nodes.
    pub inbox_entries: u64,
    /// Receipts stored across all nodes.
    pub receipts: u64,
}

/// Reads every inbox entry of every node.
pub fn inbox_entries(sim: &Sim) -> Vec<Received> {
    inbox_entries_of(sim, 0..sim.len())
}

/// [`inbox_entries`] on two threads (each decodes the records and headers of half the
/// nodes; the result is the same, in node order).
fn inbox_entries_parallel(sim: &Sim) -> Vec<Received> {
    let half = sim.len() / 2;
    std::thread::scope(|scope| {
        let upper = scope.spawn(|| inbox_entries_of(sim, half..sim.len()));
        let mut out = inbox_entries_of(sim, 0..half);
        out.extend(
            upper
                .join()
                .unwrap_or_else(|p| std::panic::resume_unwind(p)),
        );
        out
    })
}

fn inbox_entries_of(sim: &Sim, nodes: std::ops::Range<NodeIx>) -> Vec<Received> {
    let mut out = Vec::new();
    for n in nodes {
        let Some(store) = sim.store(n) else { continue };
        let skew = sim.skew_ms(n);
        for v in store.values(Tree::Inbox) {
            let Ok(rec) = records::decode::<InboxRec>(Tree::Inbox, &v) else {
                continue;
            };
            let Ok(h) = Header::decode(&rec.header) else {
                continue;
            };
            let names: Vec<&str> = h.files.iter().map(|f| f.name.as_str()).collect();
            out.push(Received {
                node: n,
                id: rec.id,
                key: unit_key(&names),
                stamp: h.stamp.to_string(),
                latest: rec.superseded_by.is_none(),
                supersedes: rec.supersedes,
                superseded_by: rec.superseded_by,
                users: rec.users,
                received_at: rec.received_at_ms.saturating_add_signed(-skew),
                origin: h.origin,
                from: h.from.office.to_string(),
            });
        }
    }
    out
}

/// Runs every checker.
pub fn check(
    sim: &Sim,
    history: &History,
    workload: &Workload,
    plaintext: bool,
    downloaded: &[EnvelopeId],
) -> (Findings, Tally, Vec<Received>) {
    let mut f = Findings::default();
    let mut tally = Tally::default();
    let inbox = inbox_entries_parallel(sim);
    tally.inbox_entries = inbox.len() as u64;
    let inbox_ids: LookupSet<EnvelopeId> = inbox.iter().map(|r| r.id).collect();

    // Two threads. The plaintext scan and the lost check (relays' spill files, origins'
    // sent records) run on the second, the inbox checks on this one; then both take nodes
    // one at a time for the receipt checks (most of the work: 14 M receipts in the
    // national day). Receipts' findings are put together
    // in node order, so the examples do not depend on which thread took which node.
    let next = AtomicUsize::new(0);
    let (mut rx, (lost_found, plain, side_rx)) = std::thread::scope(|scope| {
        let side = scope.spawn(|| {
            let mut plain = Check::default();
            if plaintext {
                plaintext::check(&mut plain, sim, history, workload);
            }
            let lost = lost(sim, history);
            let rx = receipt_checks(sim, &inbox_ids, &next);
            (lost, plain, rx)
        });
        let (dup, unexpected, stale_latest) = inbox_checks(history, &inbox);
        f.duplicated = dup;
        f.unexpected = unexpected;
        f.stale_latest = stale_latest;
        let rx = receipt_checks(sim, &inbox_ids, &next);
        let side = side.join().unwrap_or_else(|p| std::panic::resume_unwind(p));
        (rx, side)
    });
    rx.extend(side_rx);
    rx.sort_by_key(|(n, _, _)| *n);
    for (_, c, count) in rx {
        tally.receipts += count;
        f.wrong_receipt.merge(c);
    }
    (f.lost, tally.delivered, tally.expired, tally.rejected) = lost_found;
    f.plaintext_at_relay = plain;
    f.forged = forged(sim, workload, &inbox);
    f.untrue_status = untrue_status(sim, &inbox_ids);
    f.retrieval = retrieval(sim, history, downloaded);
    f.hijacked = hijacked(sim, workload);
    f.delivered_once = delivered_once(sim);
    (f, tally, inbox)
}

/// Retrieval: every unit downloaded whole is `retrieved` at its origin, which holds
/// exactly one `Retrieved` receipt for it.
fn retrieval(sim: &Sim, history: &History, downloaded: &[EnvelopeId]) -> Check {
    let mut c = Check::default();
    let origin_of: LookupMap<EnvelopeId, NodeIx> = history
        .subs
        .iter()
        .filter_map(|s| match s.outcome {
            Outcome::Accepted(id) => Some((id, s.origin)),
            _ => None,
        })
        .collect();
    for id in downloaded {
        let Some(&o) = origin_of.get(id) else {
            continue;
        };
        let Some(store) = sim.store(o) else { continue };
        let status = store
            .get(Tree::Sent, id.as_bytes())
            .ok()
            .flatten()
            .and_then(|v| records::decode::<SentRec>(Tree::Sent, &v).ok())
            .map(|r| r.status);
        let retrieved = renkei_core::store::scan_prefix(store, Tree::Receipts, id.as_bytes(), 256)
            .unwrap_or_default()
            .iter()
            .filter_map(|(_, v)| SignedReceipt::decode(v).ok())
            .filter(|r| r.receipt().kind == ReceiptKind::Retrieved)
            .count();
        if status != Some(SentStatus::Retrieved) || retrieved != 1 {
            c.flag(|| {
                format!(
                    "{id} was downloaded whole but its origin n{o} says {} with {retrieved} Retrieved receipt(s)",
                    status.map_or("nothing", |s| s.name())
                )
            });
        }
    }
    c
}

/// Hijacked: every node's directory homes every office at its own operator (no office
/// moves in simnet), whatever a lying member claimed. A node that has not learnt another
/// operator's office yet is not flagged: it would ask, not send elsewhere. Its own offices
/// it must know (else a directory that answers nothing would pass this check).
fn hijacked(sim: &Sim, workload: &Workload) -> Check {
    let mut c = Check::default();
    for n in 0..sim.len() {
        let Some(core) = sim.core(n) else { continue };
        for o in &workload.offices {
            let Ok(office) = o.number.parse() else {
                continue;
            };
            match core.directory_home(&office) {
                Some(held) if held != sim.id(o.home) => c.flag(|| {
                    format!(
                        "n{n}'s directory homes office {} at operator {held}, not at n{}",
                        o.number, o.home
                    )
                }),
                None if o.home == n => {
                    c.flag(|| format!("n{n}'s directory does not know its own office {}", o.number))
                }
                _ => {}
            }
        }
    }
    c
}

/// Forged: every inbox entry's origin operator is the home of its sending office (no
/// office moves in simnet).
fn forged(sim: &Sim, workload: &Workload, inbox: &[Received]) -> Check {
    let mut c = Check::default();
    let homes: LookupMap<&str, NodeIx> = workload
        .offices
        .iter()
        .map(|o| (o.number.as_str(), o.home))
        .collect();
    for r in inbox {
        let home = homes.get(r.from.as_str()).map(|h| sim.id(*h));
        if home != Some(r.origin) {
            c.flag(|| {
                format!(
                    "n{} holds {} from office {} signed by operator {}, not by the office's home",
                    r.node, r.id, r.from, r.origin
                )
            });
            continue;
        }
        // Signed by that home, too: the envelope kept in the inbox verifies.
        let verified = sim
            .store(r.node)
            .and_then(|s| s.get(Tree::Envelopes, r.id.as_bytes()).ok().flatten())
            .map(|b| Envelope::decode(&b).map(|e| e.verify_by(sim.signatures())));
        if !matches!(verified, Some(Ok(Ok(())))) {
            c.flag(|| {
                format!(
                    "n{} holds {} from office {} whose origin signature does not verify ({verified:?})",
                    r.node, r.id, r.from
                )
            });
        }
    }
    c
}

/// Untrue status: what each origin tells its offices is backed by what happened — never
/// `rejected` for a unit in its recipient's inbox, and `delivered`/`retrieved` only with
/// the destination's `Delivered` receipt among the origin's receipts.
fn untrue_status(sim: &Sim, inbox_ids: &LookupSet<EnvelopeId>) -> Check {
    let mut c = Check::default();
    for n in 0..sim.len() {
        let Some(store) = sim.store(n) else { continue };
        let mut delivered_by_destination: LookupSet<EnvelopeId> = LookupSet::new();
        let mut sent = Vec::new();
        for v in store.values(Tree::Sent) {
            if let Ok(rec) = records::decode::<SentRec>(Tree::Sent, &v) {
                sent.push(rec);
            }
        }
        if sent.is_empty() {
            continue;
        }
        for v in store.values(Tree::Receipts) {
            if let Ok(r) = SignedReceipt::decode(&v)
                && r.receipt().kind == ReceiptKind::Delivered
            {
                delivered_by_destination.insert(r.receipt().envelope);
            }
        }
        for rec in sent {
            let Ok(h) = Header::decode(&rec.header) else {
                continue;
            };
            match rec.status {
                SentStatus::Rejected if inbox_ids.contains(&rec.id) => c.flag(|| {
                    format!("n{n} says {} was rejected, but it is in the recipient's inbox", rec.id)
                }),
                SentStatus::Delivered | SentStatus::Retrieved
                    if !delivered_by_destination.contains(&rec.id) =>
                {
                    c.flag(|| {
                        format!(
                            "n{n} says {} is {} without a Delivered receipt from its destination {}",
                            rec.id,
                            rec.status.name(),
                            h.destination
                        )
                    })
                }
                _ => {}
            }
        }
    }
    c
}

/// Delivered once: a destination signs one `Delivered` per envelope and answers every
/// later copy with it (its dedup record). Every `Delivered` an origin holds must be that
/// receipt, byte for byte: a destination that took a copy as new (dedup skipped, or an
/// answer that changed) signed another, and its dedup record and the origin's copy differ
/// (the origin keeps the first statement of each kind it gets from an operator).
fn delivered_once(sim: &Sim) -> Check {
    let mut c = Check::default();
    let mut answered: LookupMap<EnvelopeId, (NodeIx, Vec<u8>)> = LookupMap::new();
    for n in 0..sim.len() {
        let Some(store) = sim.store(n) else { continue };
        for v in store.values(Tree::Dedup) {
            let Ok(d) = records::decode::<DedupRec>(Tree::Dedup, &v) else {
                continue;
            };
            if let Ok(r) = SignedReceipt::decode(&d.receipt)
                && r.receipt().kind == ReceiptKind::Delivered
            {
                answered.insert(r.receipt().envelope, (n, d.receipt));
            }
        }
    }
    for n in 0..sim.len() {
        let Some(store) = sim.store(n) else { continue };
        for v in store.values(Tree::Receipts) {
            let Ok(r) = SignedReceipt::decode(&v) else {
                continue;
            };
            if r.receipt().kind != ReceiptKind::Delivered {
                continue;
            }
            let id = r.receipt().envelope;
            match answered.get(&id) {
                Some((_, first)) if first.as_slice() == &*v => {}
                Some((d, first)) => c.flag(|| {
                    let at = SignedReceipt::decode(first).map(|f| f.receipt().at_ms);
                    format!(
                        "n{d} signed two Delivered receipts for {id}: it answers copies with one made at {:?} ms, its origin n{n} holds one made at {} ms",
                        at.ok(),
                        r.receipt().at_ms
                    )
                }),
                None => c.flag(|| {
                    format!("n{n} holds a Delivered receipt for {id} that no destination remembers giving")
                }),
            }
        }
    }
    c
}

/// Lost: every accepted submission is final at its origin as Delivered, Retrieved or
/// Expired. Returns the check and the (delivered, expired, rejected) tally.
fn lost(sim: &Sim, history: &History) -> (Check, u64, u64, u64) {
    let mut c = Check::default();
    let (mut delivered, mut expired, mut rejected) = (0, 0, 0);
    // Each origin's sent records, read once in the order cheapest to read (a lookup per
    // submission read the spilled records back in random order: 12 s of the national
    // day's checks). A record that does not decode counts as none.
    let mut origins: Vec<bool> = vec![false; sim.len()];
    for s in &history.subs {
        if let Some(o) = origins.get_mut(s.origin) {
            *o = true;
        }
    }
    let sent: Vec<LookupMap<&[u8], SentStatus>> = (0..sim.len())
        .map(|n| match sim.store(n) {
            Some(st) if origins[n] => st
                .pairs_unordered(Tree::Sent)
                .filter_map(|(k, v)| {
                    records::decode::<SentRec>(Tree::Sent, &v)
                        .ok()
                        .map(|r| (k, r.status))
                })
                .collect(),
            _ => LookupMap::new(),
        })
        .collect();
    for (i, s) in history.subs.iter().enumerate() {
        let Outcome::Accepted(id) = &s.outcome else {
            continue;
        };
        let status = sent
            .get(s.origin)
            .and_then(|m| m.get(id.as_bytes().as_slice()))
            .copied();
        match status {
            Some(SentStatus::Delivered | SentStatus::Retrieved) => delivered += 1,
            Some(SentStatus::Expired) => expired += 1,
            Some(SentStatus::Rejected) => {
                rejected += 1;
                c.flag(|| {
                    // Name who said so and why.
                    let why = sim
                        .store(s.origin)
                        .and_then(|st| {
                            renkei_core::store::scan_prefix(st, Tree::Receipts, id.as_bytes(), 256)
                                .ok()
                        })
                        .unwrap_or_default()
                        .iter()
                        .filter_map(|(_, v)| SignedReceipt::decode(v).ok())
                        .find_map(|r| match &r.receipt().kind {
                            ReceiptKind::Rejected { code, text } => {
                                Some(format!("{} by {}: {text}", code.as_str(), r.receipt().node))
                            }
                            _ => None,
                        })
                        .unwrap_or_else(|| "no Rejected receipt held".into());
                    format!("submission {i} ({id}) was rejected although the unit is valid ({why})")
                });
            }
            Some(st) => c.flag(|| {
                format!(
                    "submission {i} ({id}) is still {} at its origin n{}",
                    st.name(),
                    s.origin
                )
            }),
            None => c.flag(|| {
                format!(
                    "submission {i} ({id}) was accepted but origin n{} has no record of it",
                    s.origin
                )
            }),
        }
    }

    (c, delivered, expired, rejected)
}

/// Duplicated, unexpected and stale latest.
fn inbox_checks(history: &History, inbox: &[Received]) -> (Check, Check, Check) {
    let mut f = Findings::default();
    // duplicated, unexpected
    for r in inbox {
        match history
            .by_key
            .get(&r.key)
            .map(|i| (*i, &history.subs[*i].outcome))
        {
            None => f.unexpected.flag(|| {
                format!(
                    "inbox of n{} holds {} which was never submitted",
                    r.node, r.id
                )
            }),
            Some((i, Outcome::Accepted(id))) if *id != r.id => f.unexpected.flag(|| {
                format!(
                    "inbox of n{} holds {} but submission {i} was accepted as {id}",
                    r.node, r.id
                )
            }),
            Some((i, Outcome::Refused(why))) => f.unexpected.flag(|| {
                format!(
                    "inbox of n{} holds {} of submission {i}, which the origin refused: {why}",
                    r.node, r.id
                )
            }),
            Some(_) => {}
        }
    }
    // Counted by sorting (millions of entries: maps were most of this check's time).
    let mut ids: Vec<EnvelopeId> = inbox.iter().map(|r| r.id).collect();
    ids.sort_unstable();
    for same in ids.chunk_by(|a, b| a == b).filter(|s| s.len() > 1) {
        let (id, c) = (same[0], same.len());
        f.duplicated
            .flag(|| format!("envelope {id} is in {c} inbox entries"));
    }
    let mut keys: Vec<[u8; 32]> = inbox.iter().map(|r| r.key).collect();
    keys.sort_unstable();
    for same in keys.chunk_by(|a, b| a == b).filter(|s| s.len() > 1) {
        let (k, c) = (&same[0], same.len());
        f.duplicated
            .flag(|| format!("unit {} was delivered {c} times", hex_short(k)));
    }

    stale(&mut f.stale_latest, inbox, history);
    (f.duplicated, f.unexpected, f.stale_latest)
}

/// Wrong receipts, per node taken from `next` (shared by the threads checking): for each
/// node, its findings and the number of receipts it stores.
fn receipt_checks(
    sim: &Sim,
    inbox_ids: &LookupSet<EnvelopeId>,
    next: &AtomicUsize,
) -> Vec<(NodeIx, Check, u64)> {
    let roster = sim.roster().roster();
    let mut out = Vec::new();
    loop {
        let n = next.fetch_add(1, Ordering::Relaxed);
        if n >= sim.len() {
            return out;
        }
        let Some(store) = sim.store(n) else { continue };
        let mut c = Check::default();
        let mut receipts = 0;
        for v in store.values(Tree::Receipts) {
            receipts += 1;
            let r = match SignedReceipt::decode(&v) {
                Ok(r) => r,
                Err(e) => {
                    c.flag(|| format!("n{n} stores a receipt that does not decode: {e}"));
                    continue;
                }
            };
            if let Err(e) = r.verify_with_roster_by(roster, sim.signatures()) {
                c.flag(|| {
                    format!(
                        "n{n} stores a receipt for {} that does not verify: {e}",
                        r.receipt().envelope
                    )
                });
                continue;
            }
            if r.receipt().kind == ReceiptKind::Delivered
                && !inbox_ids.contains(&r.receipt().envelope)
            {
                c.flag(|| {
                    format!(
                        "n{n} stores a Delivered receipt for {}, which is in no inbox",
                        r.receipt().envelope
                    )
                });
            }
        }
        out.push((n, c, receipts));
    }
}

/// Stale latest: per document slot (sender, recipient, unit kind), an entry shown as
/// latest while a newer version is in the inbox and the core was able to know it.
fn stale(c: &mut Check, inbox: &[Received], history: &History) {
    // Grouped by slot by a stable sort (inbox order within a slot), slots in key order.
    let mut slotted: Vec<((usize, usize, UnitKind), &Received)> = inbox
        .iter()
        .filter_map(|r| {
            let s = &history.subs[*history.by_key.get(&r.key)?];
            Some(((s.from, s.to, s.kind), r))
        })
        .collect();
    slotted.sort_by_key(|(slot, _)| *slot);
    for group in slotted.chunk_by(|a, b| a.0 == b.0) {
        let entries: Vec<&Received> = group.iter().map(|(_, r)| *r).collect();
        // Slots hold a few versions: a scan (the last entry of an id, as a map would keep).
        let by_id = |id: EnvelopeId| entries.iter().rev().find(|r| r.id == id);
        let Some(newest) = entries.iter().map(|r| r.stamp.as_str()).max() else {
            continue;
        };
        for r in &entries {
            if r.latest && r.stamp.as_str() < newest {
                let named = entries.iter().any(|o| o.supersedes == Some(r.id));
                if named || r.users > 0 {
                    c.flag(|| format!("{} (stamp {}) is shown as latest although stamp {newest} was delivered", r.id, r.stamp));
                }
            }
            if let Some(by) = r.superseded_by.and_then(by_id)
                && by.stamp < r.stamp
            {
                c.flag(|| {
                    format!(
                        "{} (stamp {}) is marked superseded by older {} (stamp {})",
                        r.id, r.stamp, by.id, by.stamp
                    )
                });
            }
        }
    }
}

fn hex_short(k: &[u8; 32]) -> String {
    k.iter().take(6).map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::history::Submission;

    fn sub(stamp: &str, key: u8) -> Submission {
        Submission {
            at: 0,
            kind: UnitKind::Riyohyo,
            from: 0,
            to: 1,
            origin: 1,
            stamp: stamp.into(),
            key: [key; 32],
            supersedes: None,
            outcome: Outcome::Waiting,
        }
    }

    fn rx(
        id: u8,
        key: u8,
        stamp: &str,
        latest: bool,
        supersedes: Option<u8>,
        users: u32,
    ) -> Received {
        Received {
            node: 1,
            id: EnvelopeId([id; 16]),
            key: [key; 32],
            stamp: stamp.into(),
            latest,
            supersedes: supersedes.map(|s| EnvelopeId([s; 16])),
            superseded_by: None,
            users,
            received_at: 0,
            origin: OperatorId([1; 32]),
            from: "4074478647".into(),
        }
    }

    #[test]
    fn stale_latest_flags_an_explicitly_replaced_unit_shown_as_latest() {
        let mut h = History::default();
        h.submitted(1, sub("20250430100000", 1));
        h.submitted(2, sub("20250430110000", 2));
        let mut c = Check::default();
        // Newer names older explicitly, older still shown as latest: stale.
        stale(
            &mut c,
            &[
                rx(1, 1, "20250430100000", true, None, 0),
                rx(2, 2, "20250430110000", true, Some(1), 0),
            ],
            &h,
        );
        assert_eq!(c.count, 1);
        // Without explicit supersession and without users, the core cannot know: not flagged.
        let mut c = Check::default();
        stale(
            &mut c,
            &[
                rx(1, 1, "20250430100000", true, None, 0),
                rx(2, 2, "20250430110000", true, None, 0),
            ],
            &h,
        );
        assert_eq!(c.count, 0);
        // With users (document slots derived), the older one must not be latest.
        let mut c = Check::default();
        stale(
            &mut c,
            &[
                rx(1, 1, "20250430100000", true, None, 3),
                rx(2, 2, "20250430110000", true, None, 3),
            ],
            &h,
        );
        assert_eq!(c.count, 1);
        // Correct: older superseded.
        let mut c = Check::default();
        stale(
            &mut c,
            &[
                rx(1, 1, "20250430100000", false, None, 3),
                rx(2, 2, "20250430110000", true, Some(1), 3),
            ],
            &h,
        );
        assert_eq!(c.count, 0);
    }
}
