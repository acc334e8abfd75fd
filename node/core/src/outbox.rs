//! Outbound delivery: the schedule of due envelopes and receipts, per-peer batches (up to
//! [`DELIVER_WINDOW`] delivery batches and one receipt batch in flight per peer), hop acknowledgements, capped
//! exponential backoff with jitter, and the catch-up schedule rebuilt on start.

use std::collections::BTreeMap;

use renkei_protocol::ids::{EnvelopeId, OperatorId};
use renkei_protocol::limits::RECEIPTS_PER_MESSAGE_MAX;
use renkei_protocol::receipt::{ReceiptKind, RejectCode, SignedReceipt};
use renkei_protocol::wire::{HopAck, HopOutcome, Request, Response};

use super::directory::{BUSY_DELIVER, BUSY_RECEIPTS, Route};
use super::prepared::PreparedResponse;
use super::records::{self, OutboxRec, ReceiptOutRec, SentRec, be};
use super::{Core, Effect, Flight, OutboundId};
use crate::store::{Store, StoreError, Tree};

/// A delivery batch being assembled: ids, encoded envelopes, total bytes.
type Batch = (Vec<EnvelopeId>, Vec<Vec<u8>>, usize);

/// Delivery batches in flight per peer. More than one keeps the receiving node busy while
/// an answer travels back (and lets it commit several batches with one flush); one batch
/// in flight bounded throughput by the round trip (docs/lab/2026-11-relay-benchmark.md).
pub(super) const DELIVER_WINDOW: usize = 4;

/// Bytes of encoded envelopes kept in memory for their first send, so a busy node does not
/// read back from disk what it wrote a moment ago. Beyond this they are read from the store.
pub(super) const SEND_CACHE_BYTES_MAX: usize = 32 * 1024 * 1024;

impl<S: Store> Core<S> {
    pub(super) fn load_schedules(&mut self) -> Result<(), StoreError> {
        let now = self.now;
        let mut start = Vec::new();
        loop {
            let rows = self.store.range(Tree::Outbox, &start, None, 4096)?;
            let Some((last, _)) = rows.last() else { break };
            start = last.clone();
            start.push(0);
            for (k, v) in &rows {
                let Ok(id) = EnvelopeId::from_slice(k) else {
                    continue;
                };
                let rec: OutboxRec = records::decode(Tree::Outbox, v)?;
                self.schedule_envelope(id, rec.destination, now);
            }
        }
        for (k, _) in self
            .store
            .range(Tree::ReceiptOutbox, b"", None, usize::MAX)?
        {
            if let Ok(b) = <[u8; 8]>::try_from(k.as_slice()) {
                self.schedule_receipt(u64::from_be_bytes(b), now);
            }
        }
        Ok(())
    }

    /// Schedules an envelope for `destination` at `at` (replacing an earlier time).
    pub(super) fn schedule_envelope(&mut self, id: EnvelopeId, destination: OperatorId, at: u64) {
        self.unschedule_time(&id);
        self.due_of.insert(id, (at, destination));
        self.schedule.insert((at, id));
        self.by_dest
            .entry(destination)
            .or_default()
            .insert((at, id));
    }

    /// Moves a scheduled or in-flight envelope to `at`.
    fn reschedule_envelope(&mut self, id: EnvelopeId, at: u64) -> Result<(), StoreError> {
        let dest = match self.due_of.get(&id) {
            Some((_, d)) => Some(*d),
            None => self.outbox_rec(&id)?.map(|r| r.destination),
        };
        if let Some(dest) = dest {
            self.schedule_envelope(id, dest, at);
        }
        Ok(())
    }

    /// Takes an envelope off the time indexes (in flight, or gone).
    fn unschedule_time(&mut self, id: &EnvelopeId) {
        if let Some((old, dest)) = self.due_of.remove(id) {
            self.schedule.remove(&(old, *id));
            if let Some(set) = self.by_dest.get_mut(&dest) {
                set.remove(&(old, *id));
                if set.is_empty() {
                    self.by_dest.remove(&dest);
                }
            }
        }
    }

    pub(super) fn unschedule_envelope(&mut self, id: &EnvelopeId) {
        self.unschedule_time(id);
        self.attempts.remove(id);
        self.outbox_cache.remove(id);
        self.take_cached_bytes(id);
    }

    /// Keeps an envelope's encoding in memory for its first send, within the cap.
    pub(super) fn cache_for_sending(&mut self, id: EnvelopeId, bytes: Vec<u8>) {
        if self.send_cache_bytes + bytes.len() <= SEND_CACHE_BYTES_MAX {
            self.send_cache_bytes += bytes.len();
            if let Some(old) = self.send_cache.insert(id, bytes) {
                self.send_cache_bytes -= old.len();
            }
        }
    }

    fn take_cached_bytes(&mut self, id: &EnvelopeId) -> Option<Vec<u8>> {
        let b = self.send_cache.remove(id)?;
        self.send_cache_bytes -= b.len();
        Some(b)
    }

    /// The outbox record of a scheduled envelope, from memory (the store is read once).
    /// Due envelopes waiting for a busy peer are looked at on every pump, so this must be
    /// cheap.
    fn outbox_rec(&mut self, id: &EnvelopeId) -> Result<Option<OutboxRec>, StoreError> {
        if let Some(r) = self.outbox_cache.get(id) {
            return Ok(Some(r.clone()));
        }
        let rec = records::get::<OutboxRec>(&self.store, Tree::Outbox, id.as_bytes())?;
        if let Some(r) = &rec {
            self.outbox_cache.insert(*id, r.clone());
        }
        Ok(rec)
    }

    pub(super) fn schedule_receipt(&mut self, seq: u64, at: u64) {
        if let Some(old) = self.receipt_due.insert(seq, at) {
            self.receipt_schedule.remove(&(old, seq));
        }
        self.receipt_schedule.insert((at, seq));
    }

    pub(super) fn in_flight_envelopes(&self) -> usize {
        self.flights
            .values()
            .map(|f| {
                if let Flight::Deliver { ids, .. } = f {
                    ids.len()
                } else {
                    0
                }
            })
            .sum()
    }

    pub(super) fn in_flight_receipts(&self) -> usize {
        self.flights
            .values()
            .map(|f| {
                if let Flight::Receipts { seqs, .. } = f {
                    seqs.len()
                } else {
                    0
                }
            })
            .sum()
    }

    /// Peer `p` came up: what waits on backoff and now goes to `p` (for it, or through it
    /// as a relay) is due now; the queues of other peers keep their schedule, so a peer
    /// that reconnects again and again cannot make the whole outbox due each time.
    pub(super) fn expedite_toward(&mut self, p: OperatorId) {
        let now = self.now;
        let mut via: std::collections::BTreeMap<OperatorId, bool> = Default::default();
        let mut goes_to_p = |core: &Self, dest: OperatorId| -> bool {
            *via.entry(dest)
                .or_insert_with(|| dest == p || core.route(&dest) == Route::Peer(p))
        };
        let later: Vec<(EnvelopeId, OperatorId)> = self
            .due_of
            .iter()
            .filter(|(_, (t, _))| *t > now)
            .map(|(id, (_, d))| (*id, *d))
            .collect();
        for (id, dest) in later {
            if goes_to_p(self, dest) {
                self.schedule_envelope(id, dest, now);
            }
        }
        let later: Vec<u64> = self
            .receipt_schedule
            .iter()
            .filter(|(t, _)| *t > now)
            .map(|(_, s)| *s)
            .collect();
        for s in later {
            let to = self.receipt_to.get(&s).copied();
            if to.is_some_and(|to| goes_to_p(self, to)) {
                self.schedule_receipt(s, now);
            }
        }
    }

    /// Schedules a unit that came back to this relay after it had passed it on: after a
    /// growing pause, so two relays that both lack the destination pass it between them
    /// ever more slowly rather than as fast as the network goes, until one of them reaches
    /// the destination.
    pub(super) fn schedule_returned(&mut self, id: EnvelopeId, dest: OperatorId) {
        let n = self.attempts.entry(id).or_insert(0);
        *n += 1;
        let n = *n;
        let at = self.now + self.backoff(n);
        self.schedule_envelope(id, dest, at);
    }

    fn retry_envelope(&mut self, id: EnvelopeId) -> Result<(), StoreError> {
        let n = self.attempts.entry(id).or_insert(0);
        *n += 1;
        let n = *n;
        let at = self.now + self.backoff(n);
        self.counters.retries += 1;
        self.reschedule_envelope(id, at)?;
        self.attempts.insert(id, n);
        Ok(())
    }

    /// Sends what is due, destination by destination: a destination whose peer has no free
    /// delivery slot is skipped as a whole, so a backlog for one slow peer never holds up
    /// envelopes for the others, and a pass costs the number of destinations plus the
    /// envelopes it sends.
    pub(super) fn send_due_envelopes(&mut self) -> Result<(), StoreError> {
        let now = self.now;
        let dests: Vec<OperatorId> = self
            .by_dest
            .iter()
            .filter(|(_, set)| set.first().is_some_and(|(t, _)| *t <= now))
            .map(|(d, _)| *d)
            .collect();
        let mut batches: BTreeMap<OperatorId, Vec<Batch>> = BTreeMap::new();
        let mut budget = self.cfg.due_scan_max;
        for dest in dests {
            if budget == 0 {
                break;
            }
            let peer = match self.route(&dest) {
                Route::Peer(p) => Some(p),
                Route::Local | Route::None(_) => None,
            };
            let due: Vec<EnvelopeId> = self
                .by_dest
                .get(&dest)
                .into_iter()
                .flatten()
                .take_while(|(t, _)| *t <= now)
                .take(budget)
                .map(|(_, id)| *id)
                .collect();
            for id in due {
                budget = budget.saturating_sub(1);
                let Some(rec) = self.outbox_rec(&id)? else {
                    self.unschedule_envelope(&id);
                    continue;
                };
                if rec.hop > 0 && now >= rec.expires_at_ms {
                    self.store.delete(Tree::Outbox, id.as_bytes())?;
                    self.store.delete(Tree::Envelopes, id.as_bytes())?;
                    self.unschedule_envelope(&id);
                    self.audit(
                        "relay_drop_expired",
                        Some(id),
                        None,
                        format!("for {}", rec.destination),
                    )?;
                    continue;
                }
                // A unit a relay accepted and did not deliver in time goes another way; with
                // no other way, to that relay again (which takes it again if it passed it
                // on: see `relay_take`).
                let peer = match self.handed.get(&id) {
                    Some(relay) if peer == Some(*relay) => {
                        let alt = self.route_avoiding(&dest, relay);
                        if let Some(a) = alt {
                            tracing::info!(%id, avoided = %relay, via = %a, "sending a unit again around the relay that accepted it");
                        }
                        alt.or(peer)
                    }
                    _ => peer,
                };
                // A relay hands a unit back to the hop it came from only when it has no
                // other way (the destination, another relay).
                let peer = match (peer, rec.prev) {
                    (Some(p), Some(prev)) if self.same_operator(&p, &prev) => {
                        self.route_avoiding(&dest, &prev).or(Some(p))
                    }
                    (p, _) => p,
                };
                let Some(peer) = peer else {
                    self.retry_envelope(id)?;
                    continue;
                };
                let free = self.free_slots(BUSY_DELIVER, peer);
                let list = batches.entry(peer).or_default();
                let full = |b: &Batch, len: usize, cfg: &super::CoreConfig| {
                    b.0.len() >= cfg.batch_envelopes_max
                        || (b.2 + len > cfg.batch_bytes_max && !b.0.is_empty())
                };
                if list.is_empty() {
                    if free == 0 {
                        break;
                    }
                    list.push(Batch::default());
                }
                if list.len() >= free && list.last().is_some_and(|b| full(b, 0, &self.cfg)) {
                    break;
                }
                let bytes = match self.take_cached_bytes(&id) {
                    Some(bytes) => bytes,
                    None => match self.store.get(Tree::Envelopes, id.as_bytes())? {
                        Some(bytes) => bytes,
                        None => {
                            self.store.delete(Tree::Outbox, id.as_bytes())?;
                            self.unschedule_envelope(&id);
                            continue;
                        }
                    },
                };
                if list.last().is_some_and(|b| full(b, bytes.len(), &self.cfg)) {
                    if list.len() >= free {
                        self.cache_for_sending(id, bytes);
                        break;
                    }
                    list.push(Batch::default());
                }
                if let Some(b) = list.last_mut() {
                    b.2 += bytes.len();
                    b.0.push(id);
                    b.1.push(bytes);
                }
            }
        }
        for (peer, list) in batches {
            for (ids, envs, _) in list {
                if ids.is_empty() {
                    continue;
                }
                for id in &ids {
                    self.unschedule_time(id);
                }
                let fid = self.new_outbound();
                self.occupy(BUSY_DELIVER, peer);
                self.flights.insert(fid, Flight::Deliver { to: peer, ids });
                self.counters.batches_sent += 1;
                self.effects.push_back(Effect::Send {
                    id: fid,
                    to: peer,
                    request: Request::Deliver(envs),
                });
            }
        }
        Ok(())
    }

    /// How many more requests of `kind` may be in flight to `peer`.
    pub(super) fn free_slots(&self, kind: u8, peer: OperatorId) -> usize {
        let window = if kind == BUSY_DELIVER {
            DELIVER_WINDOW
        } else {
            1
        };
        window.saturating_sub(self.busy.get(&(kind, peer)).copied().unwrap_or(0))
    }

    /// One more request of `kind` in flight to `peer`.
    pub(super) fn occupy(&mut self, kind: u8, peer: OperatorId) {
        *self.busy.entry((kind, peer)).or_insert(0) += 1;
    }

    /// A request of `kind` to `peer` came back (answered or failed).
    pub(super) fn release(&mut self, kind: u8, peer: OperatorId) {
        if let Some(n) = self.busy.get_mut(&(kind, peer)) {
            *n = n.saturating_sub(1);
            if *n == 0 {
                self.busy.remove(&(kind, peer));
            }
        }
    }

    /// A queued receipt's record; if it is gone, the receipt leaves the schedule.
    fn queued_receipt(&mut self, seq: u64) -> Result<Option<ReceiptOutRec>, StoreError> {
        let mut rec = records::get::<ReceiptOutRec>(&self.store, Tree::ReceiptOutbox, &be(seq))?;
        // A receipt older than any node keeps an envelope's routing for is dropped: it can
        // no longer reach anyone who waits for it.
        let window = self.cfg.expiry_ms.saturating_add(self.cfg.relay_grace_ms);
        if let Some(r) = &rec
            && SignedReceipt::decode(&r.receipt)
                .is_ok_and(|sr| sr.receipt().at_ms.saturating_add(window) < self.now)
        {
            tracing::warn!(seq, "dropping a receipt no peer took within its window");
            self.store.delete(Tree::ReceiptOutbox, &be(seq))?;
            rec = None;
        }
        if rec.is_none() {
            if let Some(old) = self.receipt_due.remove(&seq) {
                self.receipt_schedule.remove(&(old, seq));
            }
            self.receipt_to.remove(&seq);
        }
        Ok(rec)
    }

    pub(super) fn send_due_receipts(&mut self) -> Result<(), StoreError> {
        let now = self.now;
        let due: Vec<u64> = self
            .receipt_schedule
            .iter()
            .take_while(|(t, _)| *t <= now)
            .take(self.cfg.due_scan_max)
            .map(|(_, s)| *s)
            .collect();
        let mut batches: BTreeMap<OperatorId, (Vec<u64>, Vec<Vec<u8>>)> = BTreeMap::new();
        for seq in due {
            let mut read = None;
            let to = match self.receipt_to.get(&seq) {
                Some(to) => *to,
                None => {
                    let Some(rec) = self.queued_receipt(seq)? else {
                        continue;
                    };
                    self.receipt_to.insert(seq, rec.to);
                    let to = rec.to;
                    read = Some(rec);
                    to
                }
            };
            let peer = match self.route(&to) {
                Route::Peer(p) => p,
                Route::Local | Route::None(_) => {
                    let at = now + self.backoff(3);
                    self.schedule_receipt(seq, at);
                    continue;
                }
            };
            if self.free_slots(BUSY_RECEIPTS, peer) == 0 {
                continue;
            }
            if batches
                .get(&peer)
                .is_some_and(|b| b.0.len() >= RECEIPTS_PER_MESSAGE_MAX)
            {
                continue;
            }
            let rec = match read {
                Some(rec) => rec,
                None => match self.queued_receipt(seq)? {
                    Some(rec) => rec,
                    None => continue,
                },
            };
            let b = batches.entry(peer).or_default();
            b.0.push(seq);
            b.1.push(rec.receipt);
        }
        for (peer, (seqs, receipts)) in batches {
            for s in &seqs {
                if let Some(old) = self.receipt_due.remove(s) {
                    self.receipt_schedule.remove(&(old, *s));
                }
            }
            let fid = self.new_outbound();
            self.occupy(BUSY_RECEIPTS, peer);
            self.flights
                .insert(fid, Flight::Receipts { to: peer, seqs });
            self.effects.push_back(Effect::Send {
                id: fid,
                to: peer,
                request: Request::Receipts(receipts),
            });
        }
        Ok(())
    }

    pub(super) fn on_response(
        &mut self,
        id: OutboundId,
        from: OperatorId,
        response: PreparedResponse,
    ) -> Result<(), StoreError> {
        let PreparedResponse { response, acks } = response;
        let Some(flight) = self.flights.remove(&id) else {
            return Ok(());
        };
        match flight {
            Flight::Deliver { to, ids } => {
                self.release(BUSY_DELIVER, to);
                let mut pending: BTreeMap<EnvelopeId, ()> = ids.iter().map(|i| (*i, ())).collect();
                match response {
                    Response::HopAcks(list) => {
                        let mut verified = acks.into_iter();
                        for ack in list {
                            let receipt = verified.next().flatten();
                            if pending.remove(&ack.id).is_some() {
                                self.on_hop_ack(from, ack, receipt)?;
                            }
                        }
                    }
                    Response::Refused { code, message } => {
                        tracing::warn!(peer = %from, ?code, %message, "peer refused a delivery batch");
                    }
                    other => {
                        tracing::warn!(peer = %from, ?other, "unexpected answer to a delivery batch")
                    }
                }
                for (id, ()) in pending {
                    self.retaken.remove(&(id, to));
                    self.retry_envelope(id)?;
                }
            }
            Flight::Receipts { to, seqs } => {
                self.release(BUSY_RECEIPTS, to);
                if let Response::ReceiptsTaken(n) = response {
                    // All taken, or refused by their addressee itself: done. A relay that
                    // did not carry an envelope cannot route its receipt (a `Retrieved`
                    // sent through it while the direct link was down): what it did not
                    // take goes again later, perhaps another way (the addressee keeps
                    // one of each; `queued_receipt` drops receipts past their window).
                    let all = usize::try_from(n).is_ok_and(|n| n >= seqs.len());
                    for s in seqs {
                        if all || self.receipt_to.get(&s) == Some(&to) {
                            self.store.delete(Tree::ReceiptOutbox, &be(s))?;
                            self.receipt_to.remove(&s);
                        } else {
                            let at = self.now + self.backoff(2);
                            self.schedule_receipt(s, at);
                        }
                    }
                } else {
                    for s in seqs {
                        let at = self.now + self.backoff(2);
                        self.schedule_receipt(s, at);
                    }
                }
            }
            Flight::Sync { to } => {
                self.release(super::directory::BUSY_SYNC, to);
                self.on_sync_answer(from, response)?;
            }
        }
        Ok(())
    }

    pub(super) fn on_send_failed(
        &mut self,
        id: OutboundId,
        to: OperatorId,
        error: &str,
    ) -> Result<(), StoreError> {
        let Some(flight) = self.flights.remove(&id) else {
            return Ok(());
        };
        tracing::debug!(peer = %to, %error, "send failed; will retry");
        match flight {
            Flight::Deliver { to, ids } => {
                self.release(BUSY_DELIVER, to);
                for i in ids {
                    self.retaken.remove(&(i, to));
                    self.retry_envelope(i)?;
                }
            }
            Flight::Receipts { to, seqs } => {
                self.release(BUSY_RECEIPTS, to);
                for s in seqs {
                    let at = self.now + self.backoff(2);
                    self.schedule_receipt(s, at);
                }
            }
            Flight::Sync { to } => {
                self.release(super::directory::BUSY_SYNC, to);
            }
        }
        Ok(())
    }

    /// One hop acknowledgement, with its receipt as the prepare stage decoded and verified
    /// it (`receipt`).
    fn on_hop_ack(
        &mut self,
        peer: OperatorId,
        ack: HopAck,
        receipt: Option<SignedReceipt>,
    ) -> Result<(), StoreError> {
        let Some(rec) = self.outbox_rec(&ack.id)? else {
            return Ok(());
        };
        let bytes = match ack.outcome {
            HopOutcome::Accepted(b) | HopOutcome::Rejected(b) => b,
            HopOutcome::RetryLater(why) => {
                tracing::debug!(%peer, id = %ack.id, %why, "peer asked to retry later");
                self.retry_envelope(ack.id)?;
                return Ok(());
            }
        };
        let origin = rec.origin;
        let valid = receipt.filter(|r| {
            r.receipt().envelope == ack.id
                && r.receipt().digest == rec.digest
                && self.signer_trusted(r)
                && self.same_operator(&r.receipt().node, &peer)
                && self.receipt_role_ok(&origin, &rec.destination, r)
        });
        let Some(receipt) = valid else {
            tracing::warn!(%peer, id = %ack.id, "hop acknowledgement carries no valid receipt; retrying");
            self.retry_envelope(ack.id)?;
            return Ok(());
        };
        // This node sent bytes whose origin signature verifies (it signed them, or checked
        // them when it accepted them): a next hop that found the signature bad got other
        // bytes — damaged on the way. The unit goes again; the refusal is not final.
        if matches!(
            receipt.receipt().kind,
            ReceiptKind::Rejected {
                code: RejectCode::BadSignature,
                ..
            }
        ) {
            tracing::warn!(%peer, id = %ack.id, "the next hop found the origin signature bad: the envelope was damaged in transit; sending it again");
            self.counters.damaged_in_transit += 1;
            self.retry_envelope(ack.id)?;
            return Ok(());
        }
        // (Unless the destination's receipt came first, by the relay's forwarding.)
        // A relay that took the unit back from this very hop while this hand-over was in
        // flight (the hop handed it back before this acknowledgement arrived) holds it
        // again: the acknowledgement does not end its part.
        if self.retaken.remove(&(ack.id, peer)) {
            self.store_receipt(ack.id, &bytes)?;
            self.forward_receipt(origin, bytes)?;
            self.retry_envelope(ack.id)?;
            return Ok(());
        }
        let relay_took_it = rec.hop == 0
            && self.cfg.relay_watch_ms > 0
            && matches!(receipt.receipt().kind, ReceiptKind::Accepted { hop } if hop > 0)
            && records::get::<SentRec>(&self.store, Tree::Sent, ack.id.as_bytes())?
                .is_some_and(|s| !s.status.is_final());
        if relay_took_it {
            // A relay holds it now; the origin keeps its outbox entry and watches: without
            // the destination's receipt by then, it goes again, avoiding that relay (a
            // relay that accepts and drops is routed around).
            self.handed.insert(ack.id, peer);
            self.attempts.remove(&ack.id);
            let at = self.now.saturating_add(self.cfg.relay_watch_ms);
            self.schedule_envelope(ack.id, rec.destination, at);
        } else {
            self.store.delete(Tree::Outbox, ack.id.as_bytes())?;
            self.unschedule_envelope(&ack.id);
            self.handed.remove(&ack.id);
        }
        if rec.hop == 0 {
            // Its role was checked above against the outbox record's origin and destination.
            self.apply_receipt_at_origin_checked(&receipt, None, true)?;
        } else {
            // The next hop holds the envelope now (or refused it for good): a relay keeps
            // only what routes its receipts back (the relayed tree), not the body.
            self.store.delete(Tree::Envelopes, ack.id.as_bytes())?;
            self.store_receipt(ack.id, &bytes)?;
            self.forward_receipt(origin, bytes)?;
            self.audit(
                "forwarded",
                Some(ack.id),
                None,
                format!("to {peer}: {}", receipt.receipt().kind.name()),
            )?;
        }
        Ok(())
    }
}
