//! The origin's side: submitting a unit (validate, route, seal, sign, store, outbox),
//! applying receipts to sent items, expiry.

use renkei_protocol::envelope::{Digest32, Envelope, Header, Outer, Party, salt_from_seed};
use renkei_protocol::ids::{EnvelopeId, OfficeNumber, OperatorId};
use renkei_protocol::receipt::{Receipt, ReceiptKind, SignedReceipt, SignerRole};

use super::directory::Route;
use super::io::{ApiId, ApiReply, Effect};
use super::records::{
    self, OutboxRec, SentRec, SentStatus, be, id_n_key, office_time_id_key, time_id_key,
};
use super::sealing::{SealJob, Sealed, SealedUnit};
use super::submissions::submission_key;
use super::unit::{PreparedUnit, UnitFinding};
use super::views::{FileView, ReceiptView, SentView};
use super::{Core, next_unit_pair};
use crate::store::{Store, StoreError, Tree, scan_prefix};

/// Receipts of the kinds any roster operator may sign (`Accepted{hop > 0}`, `Rejected`)
/// kept per envelope.
pub(super) const RECEIPTS_OPEN_MAX: usize = 32;
/// Receipts read per envelope: every one kept (the open kinds above, plus at most one per
/// kind from the origin and from the destination, each of its keys).
pub(super) const RECEIPTS_READ_MAX: usize = 256;

/// A submission out for sealing: who waits for its answer and what to record with it.
#[derive(Debug)]
pub(super) struct PendingSeal {
    id: EnvelopeId,
    /// The API calls answered when it is stored (the first, and identical resubmissions).
    waiting: Vec<ApiId>,
    office: OfficeNumber,
    submission: [u8; 32],
    /// The audit line's text.
    note: String,
}

impl<S: Store> Core<S> {
    pub(super) fn sign_receipt(
        &self,
        id: EnvelopeId,
        digest: [u8; 32],
        kind: ReceiptKind,
    ) -> SignedReceipt {
        Receipt {
            envelope: id,
            digest,
            kind,
            node: self.keys.id(),
            at_ms: self.now,
        }
        .sign(&self.keys.identity)
    }

    /// Decides a submission: checks who sends to whom and where it goes, draws the
    /// envelope id and ephemeral seed, builds the header, and hands the sealing and signing
    /// to the prepare stage ([`Effect::Seal`]). `None`: the answer comes with
    /// [`Input::Sealed`](super::io::Input::Sealed) ([`Self::sealed`]).
    pub(super) fn submit(
        &mut self,
        api: ApiId,
        office: OfficeNumber,
        unit: PreparedUnit,
        supersedes: Option<EnvelopeId>,
    ) -> Result<Option<ApiReply>, StoreError> {
        if unit.files.is_empty() {
            return Ok(Some(ApiReply::BadRequest(
                "a send unit needs at least one file".into(),
            )));
        }
        // The prepare stage hashed every file once (the header's entries, the submission
        // key) and checked the unit, off this thread.
        let PreparedUnit {
            files,
            entries,
            checked,
        } = unit;
        let info = match checked {
            Ok(i) => i,
            Err(findings) => return Ok(Some(ApiReply::Invalid(findings))),
        };
        if info.from.office != office {
            return Ok(Some(ApiReply::Forbidden(format!(
                "the file names say the unit comes from office {}; this token belongs to office {office}",
                info.from.office
            ))));
        }
        if !self.homes(&info.from) {
            return Ok(Some(ApiReply::Forbidden(format!(
                "office {office} is not registered here for service kind {}",
                info.from.kind
            ))));
        }
        let Some(dest) = self.home_of(&info.to.office) else {
            let why = match self.binding_of(&info.to.office).filter(|b| !b.released) {
                Some(b) => format!(
                    "office {} is bound to operator {}, which is no longer valid in the roster: it cannot receive electronically until it moves to another operator",
                    info.to.office,
                    self.operator_name(&b.operator)
                        .unwrap_or_else(|| b.operator.to_string())
                ),
                None => format!(
                    "office {} is not bound to any operator of the federation: it cannot receive electronically",
                    info.to.office
                ),
            };
            return Ok(Some(ApiReply::Unroutable(why)));
        };
        let Some(sealed_to) = self.seal_key_of(&dest) else {
            return Ok(Some(ApiReply::Unroutable(format!(
                "operator {dest} homing office {} is not in the roster",
                info.to.office
            ))));
        };
        if let Some(s) = supersedes {
            let ok = records::get::<SentRec>(&self.store, Tree::Sent, s.as_bytes())?
                .is_some_and(|r| r.from == office && r.to == info.to.office);
            if !ok {
                return Ok(Some(ApiReply::Invalid(vec![UnitFinding::unit(
                    "unit.supersedes",
                    format!(
                        "supersedes {s}: no unit sent by office {office} to office {} has that id",
                        info.to.office
                    ),
                )])));
            }
        }
        let named: Vec<(&str, Digest32)> = files
            .iter()
            .map(|(n, _)| n.as_str())
            .zip(entries.iter().map(|e| e.sha256))
            .collect();
        let submission = submission_key(&office, supersedes, &named);
        if let Some(rec) = self.earlier_submission(&submission)? {
            tracing::info!(id = %rec.id, %office, "identical resubmission: answering with the unit already sent");
            return Ok(Some(ApiReply::Accepted(self.sent_view(&rec)?)));
        }
        if let Some(pending) = self
            .sealing_keys
            .get(&submission)
            .and_then(|t| self.sealing.get_mut(t))
        {
            tracing::info!(%office, "identical resubmission while the first is being sealed: both get its answer");
            pending.waiting.push(api);
            return Ok(None);
        }
        let (id, ephemeral_seed) = next_unit_pair(&mut self.unit_rng);
        self.unit_draws += 1;
        let header = Header {
            outer: Outer {
                id,
                from: info.from.clone(),
                to: info.to.clone(),
                origin: self.keys.id(),
                destination: dest,
                sealed_to,
                doc_kind: info.doc_kind,
                stamp: info.stamp.clone(),
                supersedes,
                created_at_ms: self.now,
            },
            subject: info.subject.clone(),
            files: entries,
            // Version 2: the date, names and digests travel sealed.
            salt: Some(salt_from_seed(&ephemeral_seed)),
        };
        let ticket = self.next_ticket;
        self.next_ticket += 1;
        self.sealing.insert(
            ticket,
            PendingSeal {
                id,
                waiting: vec![api],
                office,
                submission,
                note: format!("to {} {}", info.to.office, info.doc_kind),
            },
        );
        self.sealing_keys.insert(submission, ticket);
        self.effects.push_back(Effect::Seal {
            ticket,
            job: SealJob {
                header,
                files: files.into_iter().map(|(_, b)| b).collect(),
                ephemeral_seed,
                keys: self.keys.clone(),
                tables: self.seal_tables.clone(),
            },
        });
        Ok(None)
    }

    /// Takes a sealed submission back from the prepare stage: stores the envelope, its
    /// sent record and Accepted receipt, queues it (or delivers it here), and answers every
    /// office call waiting for it (after this batch's commit, like every answer).
    pub(super) fn sealed(&mut self, ticket: u64, sealed: Sealed) -> Result<(), StoreError> {
        // A result for another incarnation's ticket (a driver that kept it across a
        // restart) is not this one's.
        if self.sealing.get(&ticket).is_none_or(|p| p.id != sealed.id) {
            return Ok(());
        }
        let Some(pending) = self.sealing.remove(&ticket) else {
            return Ok(());
        };
        self.sealing_keys.remove(&pending.submission);
        let reply = match sealed.result {
            Ok(unit) => self.store_sealed(&pending, *unit)?,
            Err(why) => ApiReply::Internal(why),
        };
        for id in pending.waiting {
            self.effects.push_back(Effect::Reply {
                id,
                reply: reply.clone(),
            });
        }
        Ok(())
    }

    fn store_sealed(
        &mut self,
        pending: &PendingSeal,
        unit: SealedUnit,
    ) -> Result<ApiReply, StoreError> {
        let SealedUnit {
            env,
            header: whole,
            encoded,
            digest,
            accepted,
        } = unit;
        let header = env.header();
        let (id, dest, created) = (header.id, header.destination, header.created_at_ms);
        let office = &pending.office;
        let expires_at_ms = created.saturating_add(self.cfg.expiry_ms);
        self.store.put(Tree::Envelopes, id.as_bytes(), &encoded)?;
        let rec = SentRec {
            id,
            header: whole.encode(),
            from: office.clone(),
            to: header.to.office.clone(),
            destination: dest,
            status: SentStatus::Accepted,
            created_at_ms: created,
            expires_at_ms,
        };
        records::put(&mut self.store, Tree::Sent, id.as_bytes(), &rec)?;
        self.record_submission(&pending.submission, id)?;
        self.store.put(
            Tree::SentIndex,
            &office_time_id_key(office, created, &id),
            b"",
        )?;
        self.store
            .put(Tree::Pending, &time_id_key(expires_at_ms, &id), b"")?;
        if let Some(first) = self.pending_first {
            self.pending_first = Some(Some(first.map_or(expires_at_ms, |t| t.min(expires_at_ms))));
        }
        // A fresh id: no receipt of it can be stored yet, no need to look.
        let seq = self.next_seq()?;
        self.store
            .put(Tree::Receipts, &id_n_key(&id, seq), &accepted.encode())?;
        self.audit("submit", Some(id), Some(office), pending.note.clone())?;
        self.counters.submitted += 1;
        if self.route(&dest) == Route::Local {
            let (receipt, rejected) = self.deliver_here(&env, &encoded)?;
            self.remember_answer(&env, &receipt, rejected)?;
            self.apply_receipt_at_origin(&receipt)?;
        } else {
            let out = OutboxRec {
                origin: self.keys.id(),
                destination: dest,
                digest,
                expires_at_ms,
                hop: 0,
                prev: None,
                returned: false,
            };
            records::put(&mut self.store, Tree::Outbox, id.as_bytes(), &out)?;
            self.schedule_envelope(id, dest, self.now);
            self.cache_for_sending(id, encoded);
        }
        let mut view = self.sent_view(&rec)?;
        view.status = SentStatus::Accepted.name().into();
        Ok(ApiReply::Accepted(view))
    }

    /// Stores a receipt under its envelope unless the same statement is already there:
    /// one receipt per (signing operator, kind), so a member that signs hundreds of hop
    /// receipts stores one. Of the kinds any roster operator may sign (`Accepted{hop > 0}`,
    /// `Rejected`) at most [`RECEIPTS_OPEN_MAX`] per envelope are kept; the origin's and the
    /// destination's statements are always kept (their roles are checked before this), so
    /// stuffing cannot push them out of views, proofs or the audit export. Returns whether
    /// it was new.
    pub(super) fn store_receipt(
        &mut self,
        id: EnvelopeId,
        bytes: &[u8],
    ) -> Result<bool, StoreError> {
        let Ok(new) = SignedReceipt::decode(bytes) else {
            return Ok(false);
        };
        let existing = scan_prefix(
            &self.store,
            Tree::Receipts,
            id.as_bytes(),
            RECEIPTS_READ_MAX,
        )?;
        let mut open = 0;
        for (_, v) in &existing {
            if v.as_slice() == bytes {
                return Ok(false);
            }
            let Ok(old) = SignedReceipt::decode(v) else {
                continue;
            };
            let (o, n) = (old.receipt(), new.receipt());
            if o.kind.name() == n.kind.name() && self.same_operator(&o.node, &n.node) {
                return Ok(false);
            }
            open += usize::from(o.kind.signer_role() == SignerRole::Any);
        }
        if new.receipt().kind.signer_role() == SignerRole::Any && open >= RECEIPTS_OPEN_MAX {
            tracing::warn!(%id, signer = %new.receipt().node, "receipt not kept: the envelope holds the most relay statements it keeps");
            return Ok(false);
        }
        let seq = self.next_seq()?;
        self.store.put(Tree::Receipts, &id_n_key(&id, seq), bytes)?;
        Ok(true)
    }

    /// Whether the destination operator has signed a `Rejected` for this envelope (a
    /// rejection no `Delivered` can overrule).
    fn destination_rejected(
        &self,
        id: &EnvelopeId,
        destination: &OperatorId,
    ) -> Result<bool, StoreError> {
        Ok(self.receipts_of(id)?.iter().any(|r| {
            matches!(r.receipt().kind, ReceiptKind::Rejected { .. })
                && self.same_operator(&r.receipt().node, destination)
        }))
    }

    /// Whether a receipt about envelope `id` (for `destination`) that arrived in a
    /// `Receipts` request from peer `from` may speak for the envelope's path. Only the
    /// statements any member may sign are in question (`Rejected`, `Accepted{hop > 0}`):
    /// they count when the destination signed them, or when `from` is a relay this node
    /// knows held the envelope (its `Accepted{hop > 0}` is kept here), vouching for what
    /// happened further on. A member the envelope never went through can neither reject
    /// it nor claim to hold it. (The next hop's own statement arrives in its hop
    /// acknowledgement, checked against the peer that answered; so by induction every
    /// `Accepted{hop > 0}` kept here came from the path.)
    pub(super) fn on_path(
        &self,
        id: &EnvelopeId,
        destination: &OperatorId,
        from: OperatorId,
        r: &SignedReceipt,
    ) -> Result<bool, StoreError> {
        let rc = r.receipt();
        let anyones = matches!(rc.kind, ReceiptKind::Rejected { .. })
            || matches!(rc.kind, ReceiptKind::Accepted { hop } if hop > 0);
        if !anyones || self.same_operator(&rc.node, destination) {
            return Ok(true);
        }
        Ok(self.receipts_of(id)?.iter().any(|held| {
            matches!(held.receipt().kind, ReceiptKind::Accepted { hop } if hop > 0)
                && self.same_operator(&held.receipt().node, &from)
        }))
    }

    /// The receipts kept for an envelope, in the order they were stored.
    fn receipts_of(&self, id: &EnvelopeId) -> Result<Vec<SignedReceipt>, StoreError> {
        Ok(scan_prefix(
            &self.store,
            Tree::Receipts,
            id.as_bytes(),
            RECEIPTS_READ_MAX,
        )?
        .iter()
        .filter_map(|(_, v)| SignedReceipt::decode(v).ok())
        .collect())
    }

    /// Verifies a receipt: signature, and signer this node or a roster operator at its time.
    pub(super) fn receipt_trusted(&self, r: &SignedReceipt) -> bool {
        r.verify_by(&*self.signatures).is_ok() && self.signer_trusted(r)
    }

    /// Whether the signer of a receipt (whose signature verifies) is this node or was a
    /// roster operator at the receipt's time.
    pub(super) fn signer_trusted(&self, r: &SignedReceipt) -> bool {
        let node = r.receipt().node;
        node == self.keys.id()
            || self.roster.as_ref().is_some_and(|ro| {
                ro.roster()
                    .signer_valid_at(&node, r.receipt().at_ms)
                    .is_some()
            })
    }

    /// Applies a receipt to a sent item (this node being the origin). The caller has
    /// verified `r` ([`Self::receipt_trusted`]) or signed it itself: every caller does, and
    /// verifying twice cost a sixth of a busy origin's CPU.
    pub(super) fn apply_receipt_at_origin(&mut self, r: &SignedReceipt) -> Result<(), StoreError> {
        self.apply_receipt_at_origin_checked(r, None, false)
    }

    /// [`Self::apply_receipt_at_origin`] for a caller that has read the envelope's sent
    /// record already (`sent`), or has checked the receipt's role against the origin and
    /// destination of this envelope's own records (`role_checked`: its header, or its
    /// outbox record, written with the header): decoding the header again for each receipt
    /// was 3 % of a busy origin's time.
    pub(super) fn apply_receipt_at_origin_checked(
        &mut self,
        r: &SignedReceipt,
        sent: Option<SentRec>,
        role_checked: bool,
    ) -> Result<(), StoreError> {
        debug_assert!(
            self.receipt_trusted(r),
            "apply_receipt_at_origin: unverified receipt"
        );
        let rc = r.receipt();
        let sent = match sent {
            Some(s) => Some(s),
            None => records::get::<SentRec>(&self.store, Tree::Sent, rc.envelope.as_bytes())?,
        };
        let Some(mut rec) = sent else {
            return Ok(());
        };
        debug_assert_eq!(
            rec.id, rc.envelope,
            "apply_receipt_at_origin: another record"
        );
        // The digest from the stored form alone (every receipt of every unit comes here);
        // the whole header is decoded only where a rule needs its parties.
        let header = || Header::decode(&rec.header).ok();
        if Header::stored_digest(&rec.header).ok() != Some(rc.digest)
            || !(role_checked || header().is_some_and(|h| self.receipt_role_ok_for(&h, r)))
        {
            tracing::warn!(id = %rc.envelope, "ignoring receipt that does not verify or names another digest");
            return Ok(());
        }
        if !self.store_receipt(rc.envelope, &r.encode())? {
            return Ok(());
        }
        self.counters.receipts_in += 1;
        let old = rec.status;
        // A destination's `Delivered` or `Retrieved` outranks a relay's `Rejected` (a lying
        // relay cannot make a delivered unit show as rejected); the destination's own
        // rejection stands.
        let overrulable = old == SentStatus::Rejected
            && matches!(rc.kind, ReceiptKind::Delivered | ReceiptKind::Retrieved)
            && match header() {
                Some(h) => !self.destination_rejected(&rc.envelope, &h.destination)?,
                None => false,
            };
        // A relay's `Rejected` of a unit it had accepted is a contradiction, not a refusal:
        // a relay that took a unit over never refuses it afterwards (it delivers, or lets
        // it expire). Kept as evidence; the status stays, and the origin, watching that
        // relay, routes around it.
        let relay_reneged = matches!(rc.kind, ReceiptKind::Rejected { .. })
            && header().is_some_and(|h| !self.same_operator(&rc.node, &h.destination))
            && self.receipts_of(&rc.envelope)?.iter().any(|x| {
                matches!(x.receipt().kind, ReceiptKind::Accepted { hop } if hop > 0)
                    && self.same_operator(&x.receipt().node, &rc.node)
            });
        if relay_reneged {
            tracing::warn!(id = %rc.envelope, relay = %rc.node, "a relay rejected a unit it had accepted; kept as evidence, the unit goes on");
        }
        let new = match (&rc.kind, old) {
            (ReceiptKind::Accepted { hop }, SentStatus::Accepted) if *hop > 0 => {
                SentStatus::Relayed
            }
            (ReceiptKind::Delivered, SentStatus::Rejected) if overrulable => SentStatus::Delivered,
            (ReceiptKind::Retrieved, SentStatus::Rejected) if overrulable => SentStatus::Retrieved,
            (
                ReceiptKind::Delivered,
                SentStatus::Accepted | SentStatus::Relayed | SentStatus::Expired,
            ) => SentStatus::Delivered,
            (ReceiptKind::Retrieved, s) if s != SentStatus::Rejected => SentStatus::Retrieved,
            (
                ReceiptKind::Rejected { .. },
                SentStatus::Accepted | SentStatus::Relayed | SentStatus::Expired,
            ) if !relay_reneged => SentStatus::Rejected,
            (ReceiptKind::Expired, SentStatus::Accepted | SentStatus::Relayed) => {
                SentStatus::Expired
            }
            _ => old,
        };
        if new != old {
            if new == SentStatus::Delivered {
                self.counters.sent_delivered += 1;
                self.counters
                    .delivered_after(self.now.saturating_sub(rec.created_at_ms));
            }
            rec.status = new;
            records::put(&mut self.store, Tree::Sent, rec.id.as_bytes(), &rec)?;
            if new.is_final() && self.handed.remove(&rec.id).is_some() {
                // Watched after a relay took it: the journey ended, the watch with it.
                self.store.delete(Tree::Outbox, rec.id.as_bytes())?;
                self.unschedule_envelope(&rec.id);
            }
            if new.is_final() {
                self.store
                    .delete(Tree::Pending, &time_id_key(rec.expires_at_ms, &rec.id))?;
                self.pending_deleted(rec.expires_at_ms);
            }
        }
        self.audit(
            &format!("receipt_{}", rc.kind.name()),
            Some(rc.envelope),
            Some(&rec.from),
            self.operator_name(&rc.node)
                .unwrap_or_else(|| rc.node.to_string()),
        )
    }

    /// Issues Expired receipts for sent items past their window.
    pub(super) fn expire_due(&mut self) -> Result<(), StoreError> {
        if let Some(first) = self.pending_first
            && first.is_none_or(|t| t > self.now)
        {
            return Ok(());
        }
        // Something may be due: look, and look up the earliest expiry afresh afterwards.
        self.pending_first = None;
        let due = self.store.range(
            Tree::Pending,
            b"",
            Some(&be(self.now.saturating_add(1))),
            1024,
        )?;
        for (k, _) in due {
            let Some(id) = k.get(8..24).and_then(|b| EnvelopeId::from_slice(b).ok()) else {
                continue;
            };
            self.store.delete(Tree::Pending, &k)?;
            let Some(rec) = records::get::<SentRec>(&self.store, Tree::Sent, id.as_bytes())? else {
                continue;
            };
            if rec.status.is_final() {
                continue;
            }
            if self.store.get(Tree::Outbox, id.as_bytes())?.is_some() {
                self.store.delete(Tree::Outbox, id.as_bytes())?;
                self.unschedule_envelope(&id);
            }
            let Ok(digest) = Header::stored_digest(&rec.header) else {
                tracing::warn!(%id, "sent record's header does not decode; not expired");
                continue;
            };
            let r = self.sign_receipt(id, digest, ReceiptKind::Expired);
            self.counters.expired += 1;
            self.apply_receipt_at_origin(&r)?;
        }
        Ok(())
    }

    /// The earliest expiry of a sent item still pending (a lower bound after a failed
    /// batch: waking early only finds nothing due).
    pub(super) fn next_expiry(&mut self) -> Result<Option<u64>, StoreError> {
        if let Some(first) = self.pending_first {
            return Ok(first);
        }
        let first = self
            .store
            .range(Tree::Pending, b"", None, 1)?
            .first()
            .and_then(|(k, _)| k.get(..8).and_then(|b| <[u8; 8]>::try_from(b).ok()))
            .map(u64::from_be_bytes);
        self.pending_first = Some(first);
        Ok(first)
    }

    /// A pending item expiring at `t` was removed: the earliest expiry is unknown if it
    /// was that one. (Writes undone by a failed batch only remove items or restore ones
    /// removed, so the bound stays a lower bound.)
    fn pending_deleted(&mut self, t: u64) {
        if self
            .pending_first
            .is_some_and(|first| first.is_none_or(|f| f >= t))
        {
            self.pending_first = None;
        }
    }

    pub(super) fn receipt_views(&self, id: &EnvelopeId) -> Result<Vec<ReceiptView>, StoreError> {
        let mut out = Vec::new();
        for r in self.receipts_of(id)? {
            let rc = r.receipt();
            let (hop, code, text) = match &rc.kind {
                ReceiptKind::Accepted { hop } => (Some(*hop), None, None),
                ReceiptKind::Rejected { code, text } => {
                    (None, Some(code.as_str().to_owned()), Some(text.clone()))
                }
                _ => (None, None, None),
            };
            out.push(ReceiptView {
                kind: rc.kind.name().into(),
                node: rc.node.to_string(),
                node_name: self.operator_name(&rc.node),
                at_ms: rc.at_ms,
                hop,
                code,
                text,
            });
        }
        out.sort_by_key(|r| r.at_ms);
        Ok(out)
    }

    pub(super) fn sent_view(&self, rec: &SentRec) -> Result<SentView, StoreError> {
        let h = Header::decode(&rec.header).map_err(|e| StoreError::Corrupt {
            tree: "sent",
            detail: e.to_string(),
        })?;
        Ok(SentView {
            id: rec.id.to_string(),
            status: rec.status.name().into(),
            from: h.from.office.to_string(),
            from_kind: h.from.kind.to_string(),
            to: h.to.office.to_string(),
            to_kind: h.to.kind.to_string(),
            to_name: self.office_name(&h.to.office),
            kind: h.doc_kind.to_string(),
            subject: h.subject.clone(),
            stamp: h.stamp.to_string(),
            files: file_views(&h),
            created_at_ms: h.created_at_ms,
            supersedes: h.supersedes.map(|s| s.to_string()),
            destination: h.destination.to_string(),
            receipts: self.receipt_views(&rec.id)?,
        })
    }

    pub(super) fn sent_list(
        &self,
        office: &OfficeNumber,
        id: Option<EnvelopeId>,
    ) -> Result<ApiReply, StoreError> {
        if let Some(id) = id {
            return Ok(
                match records::get::<SentRec>(&self.store, Tree::Sent, id.as_bytes())? {
                    Some(rec) if &rec.from == office => ApiReply::Sent(vec![self.sent_view(&rec)?]),
                    _ => ApiReply::NotFound(format!("no sent unit {id} for this office")),
                },
            );
        }
        self.sent_page(office, None, super::io::SENT_PAGE_MAX)
    }

    /// An office's sent units, newest first: at most `limit` (capped), and only those sent
    /// before `before` when given.
    pub(super) fn sent_page(
        &self,
        office: &OfficeNumber,
        before: Option<EnvelopeId>,
        limit: usize,
    ) -> Result<ApiReply, StoreError> {
        let start = office.as_str().as_bytes().to_vec();
        let end = match before {
            None => crate::store::prefix_end(&start),
            Some(id) => match records::get::<SentRec>(&self.store, Tree::Sent, id.as_bytes())? {
                Some(rec) if &rec.from == office => {
                    Some(office_time_id_key(office, rec.created_at_ms, &id))
                }
                _ => {
                    return Ok(ApiReply::NotFound(format!(
                        "before: no sent unit {id} for this office"
                    )));
                }
            },
        };
        let limit = limit.min(super::io::SENT_PAGE_MAX);
        let mut out = Vec::new();
        for (k, _) in self
            .store
            .range_rev(Tree::SentIndex, &start, end.as_deref(), limit)?
        {
            let Some(id) = k.get(18..34).and_then(|b| EnvelopeId::from_slice(b).ok()) else {
                continue;
            };
            if let Some(rec) = records::get::<SentRec>(&self.store, Tree::Sent, id.as_bytes())? {
                out.push(self.sent_view(&rec)?);
            }
        }
        Ok(ApiReply::Sent(out))
    }

    pub(super) fn proof(
        &self,
        office: &OfficeNumber,
        id: EnvelopeId,
    ) -> Result<ApiReply, StoreError> {
        // The whole header comes from the office's own record of the unit: a version-2
        // envelope's cleartext does not hold it.
        let stored = match records::get::<SentRec>(&self.store, Tree::Sent, id.as_bytes())?
            .filter(|r| &r.from == office)
        {
            Some(r) => Some(r.header),
            None => records::get::<records::InboxRec>(
                &self.store,
                Tree::Inbox,
                &records::office_id_key(office, &id),
            )?
            .map(|r| r.header),
        };
        let Some(stored) = stored else {
            return Ok(ApiReply::NotFound(format!(
                "no unit {id} sent or received by this office"
            )));
        };
        let Some(bytes) = self.store.get(Tree::Envelopes, id.as_bytes())? else {
            return Ok(ApiReply::NotFound(format!(
                "envelope {id} is no longer held"
            )));
        };
        let env = Envelope::decode(&bytes).map_err(|e| StoreError::Corrupt {
            tree: "envelopes",
            detail: e.to_string(),
        })?;
        let corrupt = |detail: String| StoreError::Corrupt {
            tree: "envelopes",
            detail,
        };
        let header = Header::decode(&stored).map_err(|e| corrupt(e.to_string()))?;
        let mut receipts = self.receipts_of(&id)?;
        receipts.sort_by_key(|r| r.receipt().at_ms);
        let proof = renkei_protocol::proof::Proof::new(&env, &header, receipts)
            .ok_or_else(|| corrupt(format!("the stored header of {id} is not its envelope's")))?;
        Ok(ApiReply::Proof(proof.encode()))
    }
}

pub(super) fn file_views(h: &Header) -> Vec<FileView> {
    h.files
        .iter()
        .map(|f| FileView {
            name: f.name.clone(),
            size: f.len,
            sha256: hex::encode(f.sha256),
        })
        .collect()
}

/// The sender as a party (for messages).
pub(super) fn party(p: &Party) -> String {
    format!("{} ({})", p.office, p.kind)
}
