//! Requests from peers: envelopes to relay or deliver here (with dedup and definitive
//! rejections), receipts travelling back to their origin, and directory sync.

use renkei_protocol::envelope::{Digest32, Envelope, Outer, sha256};
use renkei_protocol::error::DecodeError;
use renkei_protocol::ids::{EnvelopeId, OperatorId};
use renkei_protocol::receipt::{ReceiptKind, RejectCode, SignedReceipt};
use renkei_protocol::wire::{HopAck, HopOutcome, RefusalCode, Request, Response};

use super::Core;
use super::origin::party;
use super::prepared::CheckedReceipt;
use super::prepared::{Opened, PreparedEnvelope, open_and_check};
use super::records::{self, DedupRec, OutboxRec, ReceiptOutRec, RelayedRec, SentRec};
use super::sender::Sender;
use crate::store::{Store, StoreError, Tree};

fn reject(code: RejectCode, text: impl Into<String>) -> ReceiptKind {
    ReceiptKind::Rejected {
        code,
        text: text.into(),
    }
}

impl<S: Store> Core<S> {
    /// `Refused { NotInRoster }` for a peer outside the roster (counted), else `None`.
    fn refuse_outsider(&mut self, from: &OperatorId) -> Option<Response> {
        if self.peer_allowed(from) {
            return None;
        }
        self.counters.refused += 1;
        Some(Response::Refused {
            code: RefusalCode::NotInRoster,
            message: format!("operator {from} is not in this node's federation roster"),
        })
    }

    pub(super) fn inbound(
        &mut self,
        from: OperatorId,
        request: Request,
    ) -> Result<Response, StoreError> {
        if let Some(refused) = self.refuse_outsider(&from) {
            return Ok(refused);
        }
        Ok(match request {
            Request::Deliver(envs) => {
                // Handed a raw delivery (simnet, tests): the prepare stage runs here.
                let prepared = PreparedEnvelope::all(&self.keys, &*self.signatures, envs);
                self.deliver_prepared(from, prepared)?
            }
            Request::Receipts(rs) => {
                // Raw (simnet, tests): the prepare stage runs here.
                self.take_receipts(from, CheckedReceipt::all(&*self.signatures, rs))?
            }
            Request::DirectorySync {
                roster_serial,
                cursor,
            } => {
                self.send_sync(from);
                self.serve_sync(from, roster_serial, cursor)?
            }
        })
    }

    /// A `Receipts` request whose receipts the prepare stage has decoded and verified.
    pub(super) fn receipts_from(
        &mut self,
        from: OperatorId,
        receipts: Vec<CheckedReceipt>,
    ) -> Result<Response, StoreError> {
        if let Some(refused) = self.refuse_outsider(&from) {
            return Ok(refused);
        }
        self.take_receipts(from, receipts)
    }

    fn take_receipts(
        &mut self,
        from: OperatorId,
        receipts: Vec<CheckedReceipt>,
    ) -> Result<Response, StoreError> {
        let mut n = 0;
        for r in receipts {
            if self.take_receipt(from, r)? {
                n += 1;
            }
        }
        Ok(Response::ReceiptsTaken(n))
    }

    /// A delivery whose envelopes the prepare stage has decoded, verified and opened.
    pub(super) fn deliver_prepared_from(
        &mut self,
        from: OperatorId,
        envelopes: Vec<PreparedEnvelope>,
    ) -> Result<Response, StoreError> {
        if let Some(refused) = self.refuse_outsider(&from) {
            return Ok(refused);
        }
        self.deliver_prepared(from, envelopes)
    }

    fn deliver_prepared(
        &mut self,
        from: OperatorId,
        envelopes: Vec<PreparedEnvelope>,
    ) -> Result<Response, StoreError> {
        let mut acks = Vec::with_capacity(envelopes.len());
        for p in envelopes {
            acks.push(self.accept_envelope(from, p)?);
        }
        Ok(Response::HopAcks(acks))
    }

    fn accept_envelope(
        &mut self,
        from: OperatorId,
        p: PreparedEnvelope,
    ) -> Result<HopAck, StoreError> {
        let PreparedEnvelope {
            bytes,
            env,
            signature_ok,
            opened,
        } = p;
        let bytes = bytes.as_slice();
        let env = match env {
            Ok(e) => e,
            Err(e) => {
                let code = if matches!(
                    e,
                    DecodeError::TooLarge { .. } | DecodeError::TooMany { .. }
                ) {
                    RejectCode::TooLarge
                } else {
                    RejectCode::Malformed
                };
                let r = self.sign_receipt(
                    EnvelopeId([0; 16]),
                    sha256(bytes),
                    reject(code, e.to_string()),
                );
                self.counters.rejected += 1;
                return Ok(HopAck {
                    id: EnvelopeId([0; 16]),
                    outcome: HopOutcome::Rejected(r.encode()),
                });
            }
        };
        let id = env.id();
        let digest = env.digest();
        if let Some(d) = records::get::<DedupRec>(&self.store, Tree::Dedup, id.as_bytes())? {
            if d.digest == digest {
                self.counters.duplicates += 1;
                // A unit this relay accepted and passed on came back (another relay that
                // could not reach the destination handed it back, perhaps before its own
                // acknowledgement arrived; or its origin sends it again around a relay
                // that did not deliver): it takes it again, or the unit would be lost
                // between two hops that each believe the other holds it. Marked returned:
                // it is not handed back again. (A copy from the hop it already holds it
                // from is only a duplicate.)
                if !d.rejected
                    && signature_ok
                    && self.cfg.relay
                    && !self.is_me(&env.header().destination)
                    && records::get::<OutboxRec>(&self.store, Tree::Outbox, id.as_bytes())?
                        .is_none_or(|o| o.prev.is_some_and(|p| !self.same_operator(&p, &from)))
                {
                    let in_flight = self.flights.values().any(|f| {
                        matches!(f, super::Flight::Deliver { to, ids } if *to == from && ids.contains(&id))
                    });
                    if in_flight {
                        self.retaken.insert((id, from));
                    }
                    self.relay_take(from, env.header(), bytes, digest, true)?;
                }
                let outcome = if d.rejected {
                    HopOutcome::Rejected(d.receipt)
                } else {
                    HopOutcome::Accepted(d.receipt)
                };
                return Ok(HopAck { id, outcome });
            }
            let r = self.sign_receipt(
                id,
                digest,
                reject(
                    RejectCode::Malformed,
                    "envelope id already used for different content",
                ),
            );
            self.counters.rejected += 1;
            return Ok(HopAck {
                id,
                outcome: HopOutcome::Rejected(r.encode()),
            });
        }
        let h = env.header();
        // Its creation time is checked first (the roster check reads the roster at that
        // time): out of bounds is refused but, like a failed authentication, not
        // remembered, so a copy with a forged time cannot take the genuine envelope's id.
        let out_of_time = self.time_out_of_bounds(h.created_at_ms);
        let (receipt, rejected) = if let Some(text) = out_of_time.clone() {
            (
                self.sign_receipt(id, digest, reject(RejectCode::Malformed, text)),
                true,
            )
        } else if !signature_ok {
            (
                self.sign_receipt(
                    id,
                    digest,
                    reject(RejectCode::BadSignature, "origin signature does not verify"),
                ),
                true,
            )
        } else if !self.is_me(&h.origin)
            && self.roster.as_ref().is_none_or(|r| {
                r.roster()
                    .signer_valid_at(&h.origin, h.created_at_ms)
                    .is_none()
            })
        {
            let text = format!("origin {} is not a roster operator", h.origin);
            (
                self.sign_receipt(id, digest, reject(RejectCode::UnknownOperator, text)),
                true,
            )
        } else if self.is_me(&h.destination) {
            match self.sender_standing(h) {
                Sender::Bound => {
                    let opened = opened.unwrap_or_else(|| open_and_check(&self.keys, &env));
                    self.deliver_opened(&env, bytes, opened)?
                }
                Sender::Unknown(why) => {
                    // Not decided yet: ask the peer for its directory, and for the unit
                    // again later. Nothing is remembered.
                    tracing::info!(%id, peer = %from, %why, "sender's home not known yet; asked to retry");
                    self.send_sync(from);
                    return Ok(HopAck {
                        id,
                        outcome: HopOutcome::RetryLater(why),
                    });
                }
                Sender::NotBound(text) => (
                    self.sign_receipt(id, digest, reject(RejectCode::SenderNotBound, text)),
                    true,
                ),
            }
        } else if self.cfg.relay
            && self
                .roster
                .as_ref()
                .is_none_or(|r| r.roster().operator_with_key(&h.destination).is_none())
        {
            let text = format!(
                "destination operator {} is not in this relay's roster",
                h.destination
            );
            (
                self.sign_receipt(id, digest, reject(RejectCode::NoRoute, text)),
                true,
            )
        } else if self.cfg.relay {
            let hop = self.relay_take(from, h, bytes, digest, false)?;
            (
                self.sign_receipt(id, digest, ReceiptKind::Accepted { hop }),
                false,
            )
        } else {
            let text = format!(
                "this node does not relay; the envelope is for operator {}",
                h.destination
            );
            (
                self.sign_receipt(id, digest, reject(RejectCode::NoRoute, text)),
                true,
            )
        };
        // An envelope that fails authentication (bad signature, origin not in the roster,
        // a sending office not bound to the origin) is refused but not remembered: its id is not the signer's to take, and
        // remembering it would let anyone block the genuine envelope of that id.
        let authentic = out_of_time.is_none()
            && !matches!(
                receipt.receipt().kind,
                ReceiptKind::Rejected {
                    code: RejectCode::BadSignature
                        | RejectCode::UnknownOperator
                        | RejectCode::SenderNotBound,
                    ..
                }
            );
        if authentic {
            self.remember_answer(&env, &receipt, rejected)?;
        } else {
            self.counters.rejected += 1;
            tracing::warn!(%id, peer = %from, "refused an envelope that fails authentication or its time bounds");
        }
        let bytes = receipt.encode();
        Ok(HopAck {
            id,
            outcome: if rejected {
                HopOutcome::Rejected(bytes)
            } else {
                HopOutcome::Accepted(bytes)
            },
        })
    }

    /// Takes envelope `bytes` (header `h`) from peer `from` to relay: stores it, its
    /// outbox and routing records, and schedules it. `returned`: it came back after this
    /// relay had passed it on. Answers this relay's hop number.
    fn relay_take(
        &mut self,
        from: OperatorId,
        h: &Outer,
        bytes: &[u8],
        digest: Digest32,
        returned: bool,
    ) -> Result<u8, StoreError> {
        let id = h.id;
        let hop = if from == h.origin { 1 } else { 2 };
        self.store.put(Tree::Envelopes, id.as_bytes(), bytes)?;
        let expires_at_ms = h
            .created_at_ms
            .saturating_add(self.cfg.expiry_ms)
            .saturating_add(self.cfg.relay_grace_ms);
        let out = OutboxRec {
            origin: h.origin,
            destination: h.destination,
            digest,
            expires_at_ms,
            hop,
            prev: Some(from),
            returned,
        };
        records::put(&mut self.store, Tree::Outbox, id.as_bytes(), &out)?;
        let routing = RelayedRec {
            origin: h.origin,
            destination: h.destination,
            digest,
        };
        records::put(&mut self.store, Tree::Relayed, id.as_bytes(), &routing)?;
        if returned {
            self.schedule_returned(id, h.destination);
        } else {
            self.schedule_envelope(id, h.destination, self.now);
            self.cache_for_sending(id, bytes.to_vec());
        }
        self.counters.relayed_in += 1;
        self.audit(
            if returned {
                "relay_retake"
            } else {
                "relay_accept"
            },
            Some(id),
            None,
            format!("from {from}, for {}", h.destination),
        )?;
        Ok(hop)
    }

    /// Why an envelope's creation time cannot be taken, if it cannot: more than
    /// `max_skew_ms` ahead of this node's clock, or older than any relay keeps an envelope
    /// (expiry + relay grace + skew). Expiry and retries are computed from this
    /// sender-chosen time, so an unbounded one would make a relay keep and retry an
    /// envelope forever.
    pub(super) fn time_out_of_bounds(&self, created_at_ms: u64) -> Option<String> {
        let skew = self.cfg.max_skew_ms;
        if created_at_ms > self.now.saturating_add(skew) {
            return Some(format!(
                "created_at_ms {created_at_ms} is {} ms ahead of this node's clock (at most {skew} ms allowed)",
                created_at_ms - self.now
            ));
        }
        let window = self
            .cfg
            .expiry_ms
            .saturating_add(self.cfg.relay_grace_ms)
            .saturating_add(skew);
        (self.now.saturating_sub(created_at_ms) > window).then(|| {
            format!(
                "created_at_ms {created_at_ms} is {} ms in the past, beyond the federation's delivery window of {window} ms",
                self.now - created_at_ms
            )
        })
    }

    /// Records the first answer to an envelope (dedup, forever) and keeps the receipt.
    pub(super) fn remember_answer(
        &mut self,
        env: &Envelope,
        receipt: &SignedReceipt,
        rejected: bool,
    ) -> Result<(), StoreError> {
        let bytes = receipt.encode();
        let d = DedupRec {
            digest: env.digest(),
            rejected,
            receipt: bytes.clone(),
        };
        records::put(&mut self.store, Tree::Dedup, env.id().as_bytes(), &d)?;
        if rejected {
            self.counters.rejected += 1;
            self.audit(
                "reject",
                Some(env.id()),
                Some(&env.header().to.office),
                receipt.receipt().kind.name().into(),
            )?;
        }
        if !self.is_me(&env.header().origin) {
            self.store_receipt(env.id(), &bytes)?;
        }
        Ok(())
    }

    /// Destination: open, re-validate, put into the office's inbox. Returns the receipt
    /// (Delivered, or Rejected) and whether it is a rejection. `encoded` is `env`'s
    /// canonical bytes (as received: an envelope decodes only from those), stored as they
    /// are instead of encoded again.
    pub(super) fn deliver_here(
        &mut self,
        env: &Envelope,
        encoded: &[u8],
    ) -> Result<(SignedReceipt, bool), StoreError> {
        let opened = open_and_check(&self.keys, env);
        self.deliver_opened(env, encoded, opened)
    }

    /// [`Self::deliver_here`] of an envelope the prepare stage has opened and checked.
    pub(super) fn deliver_opened(
        &mut self,
        env: &Envelope,
        encoded: &[u8],
        opened: Result<Opened, (RejectCode, String)>,
    ) -> Result<(SignedReceipt, bool), StoreError> {
        let h = env.header();
        let (id, digest) = (env.id(), env.digest());
        if !self.homes(&h.to) {
            let text = format!("office {} is not homed at this operator", party(&h.to));
            return Ok((
                self.sign_receipt(id, digest, reject(RejectCode::UnknownOffice, text)),
                true,
            ));
        }
        let Opened {
            header,
            files,
            checked,
        } = match opened {
            Ok(o) => o,
            Err((code, text)) => {
                return Ok((self.sign_receipt(id, digest, reject(code, text)), true));
            }
        };
        let info = match checked {
            Ok(i) => i,
            Err(findings) => {
                let text: Vec<String> = findings
                    .iter()
                    .take(3)
                    .map(|f| format!("{} {}: {}", f.file, f.rule, f.message))
                    .collect();
                return Ok((
                    self.sign_receipt(id, digest, reject(RejectCode::InvalidCsv, text.join("; "))),
                    true,
                ));
            }
        };
        if info.from != h.from || info.to != h.to {
            let text = format!(
                "file names say {} → {} but the envelope says {} → {}",
                party(&info.from),
                party(&info.to),
                party(&h.from),
                party(&h.to)
            );
            return Ok((
                self.sign_receipt(id, digest, reject(RejectCode::InvalidCsv, text)),
                true,
            ));
        }
        self.inbox_insert(env, &header, encoded, &files, &info)?;
        self.counters.delivered += 1;
        self.audit(
            "deliver",
            Some(id),
            Some(&h.to.office),
            format!("from {}", party(&h.from)),
        )?;
        Ok((self.sign_receipt(id, digest, ReceiptKind::Delivered), false))
    }

    /// A receipt arriving from peer `from`: applied if we are the origin, forwarded toward
    /// the origin if we relayed the envelope. Returns whether it was taken.
    fn take_receipt(
        &mut self,
        from: OperatorId,
        checked: CheckedReceipt,
    ) -> Result<bool, StoreError> {
        let CheckedReceipt { bytes, receipt } = checked;
        let bytes = bytes.as_slice();
        // Decoded and its signature verified by the prepare stage; the signer's standing is
        // decided here.
        let Some(r) = receipt.filter(|r| self.signer_trusted(r)) else {
            return Ok(false);
        };
        let id = r.receipt().envelope;
        if let Some(sent) = records::get::<SentRec>(&self.store, Tree::Sent, id.as_bytes())? {
            let header = renkei_protocol::envelope::Header::decode(&sent.header).ok();
            let role_ok = header
                .as_ref()
                .is_some_and(|h| self.receipt_role_ok_for(h, &r));
            if !role_ok {
                tracing::warn!(%id, signer = %r.receipt().node, kind = r.receipt().kind.name(),
                    "ignoring receipt signed by a node that cannot make that statement");
                return Ok(false);
            }
            let on_path = match &header {
                Some(h) => self.on_path(&id, &h.destination, from, &r)?,
                None => false,
            };
            if !on_path {
                tracing::warn!(%id, signer = %r.receipt().node, peer = %from,
                    "ignoring a relay statement from off the envelope's path");
                return Ok(false);
            }
            self.apply_receipt_at_origin_checked(&r, Some(sent), true)?;
            return Ok(true);
        }
        if let Some(rec) = records::get::<RelayedRec>(&self.store, Tree::Relayed, id.as_bytes())? {
            if rec.digest != r.receipt().digest
                || !self.receipt_role_ok(&rec.origin, &rec.destination, &r)
                || !self.on_path(&id, &rec.destination, from, &r)?
            {
                return Ok(false);
            }
            if self.store_receipt(id, bytes)? {
                self.forward_receipt(rec.origin, bytes.to_vec())?;
            }
            return Ok(true);
        }
        // Relayed before relays kept a routing record: the body is still there.
        if let Some(env) = self.store.get(Tree::Envelopes, id.as_bytes())? {
            let Ok(env) = Envelope::decode(&env) else {
                return Ok(false);
            };
            if env.digest() != r.receipt().digest
                || !self.receipt_role_ok_for(env.header(), &r)
                || !self.on_path(&id, &env.header().destination, from, &r)?
            {
                return Ok(false);
            }
            if self.store_receipt(id, bytes)? {
                self.forward_receipt(env.header().origin, bytes.to_vec())?;
            }
            return Ok(true);
        }
        Ok(false)
    }

    /// Queues a receipt for the origin operator.
    pub(super) fn forward_receipt(
        &mut self,
        to: OperatorId,
        receipt: Vec<u8>,
    ) -> Result<(), StoreError> {
        if self.is_me(&to) {
            if let Ok(r) = SignedReceipt::decode(&receipt) {
                self.apply_receipt_at_origin(&r)?;
            }
            return Ok(());
        }
        let seq = self.next_seq()?;
        records::put(
            &mut self.store,
            Tree::ReceiptOutbox,
            &records::be(seq),
            &ReceiptOutRec { to, receipt },
        )?;
        self.receipt_to.insert(seq, to);
        self.schedule_receipt(seq, self.now);
        Ok(())
    }
}
