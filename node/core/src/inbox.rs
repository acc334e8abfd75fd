//! The destination's inbox: storing received units, versioning by document slot and by
//! explicit supersession (a late-arriving older unit never displaces a newer one), listing,
//! and downloads (the first issues the `Retrieved` receipt).

use renkei_protocol::envelope::{Envelope, Header, Outer};
use renkei_protocol::ids::{EnvelopeId, OfficeNumber};
use renkei_protocol::receipt::ReceiptKind;

use super::Core;
use super::io::{ApiReply, FileReply, INBOX_PAGE_MAX, INBOX_SCAN_MAX, InboxPage};
use super::origin::file_views;
use super::records::{self, InboxRec, SlotRec, id_n_key, office_id_key, office_time_id_key};
use super::unit::UnitInfo;
use super::views::InboxView;
use crate::store::{Store, StoreError, Tree};

impl<S: Store> Core<S> {
    pub(super) fn inbox_insert(
        &mut self,
        env: &Envelope,
        header: &Header,
        encoded: &[u8],
        files: &[Vec<u8>],
        info: &UnitInfo,
    ) -> Result<(), StoreError> {
        let h = header;
        let id = env.id();
        let office = h.to.office.clone();
        if let Some(email) = self.offices.get(&office).and_then(|o| o.notify.clone()) {
            self.effects.push_back(super::io::Effect::Notify {
                office: office.clone(),
                email,
                kind: h.doc_kind.to_string(),
                from: h.from.office.clone(),
            });
        }
        self.store.put(Tree::Envelopes, id.as_bytes(), encoded)?;
        for (i, f) in files.iter().enumerate() {
            self.store.put(Tree::Files, &id_n_key(&id, i as u64), f)?;
        }
        let mut live = 0u32;
        let mut newest_other: Option<(SlotRec, EnvelopeId)> = None;
        let slots = info.slots();
        for (key, subject) in &slots {
            let order = (subject.clone(), h.stamp.to_string(), h.created_at_ms, id);
            match records::get::<SlotRec>(&self.store, Tree::Slots, key)? {
                Some(cur) if cur.order > order => {
                    if newest_other
                        .as_ref()
                        .is_none_or(|(n, _)| cur.order > n.order)
                    {
                        let holder = cur.order.3;
                        newest_other = Some((cur, holder));
                    }
                }
                cur => {
                    records::put(
                        &mut self.store,
                        Tree::Slots,
                        key,
                        &SlotRec {
                            order,
                            office: office.clone(),
                        },
                    )?;
                    live += 1;
                    if let Some(prev) = cur {
                        self.slot_lost(&prev.office, prev.order.3, id)?;
                    }
                }
            }
        }
        let mut superseded_by = if live == 0 && !slots.is_empty() {
            newest_other.map(|(_, id)| id)
        } else {
            None
        };
        // A newer unit that named this one explicitly may have arrived first. A unit
        // replaces only units of its own sending office from the same origin operator.
        if let Some(b) = self.store.get(Tree::Supersedes, id.as_bytes())?
            && let Ok(newer) = EnvelopeId::from_slice(&b)
            && let Some(n) =
                records::get::<InboxRec>(&self.store, Tree::Inbox, &office_id_key(&office, &newer))?
            && Header::decode(&n.header).is_ok_and(|nh| self.same_sender(&nh, h))
        {
            superseded_by = Some(newer);
        }
        if let Some(old) = h.supersedes {
            let key = office_id_key(&office, &old);
            match records::get::<InboxRec>(&self.store, Tree::Inbox, &key)? {
                Some(mut prev) => {
                    let same =
                        Header::decode(&prev.header).is_ok_and(|ph| self.same_sender(&ph, h));
                    if !same {
                        tracing::warn!(%id, %old, "ignoring `supersedes`: the named unit is another sender's");
                    } else if prev.superseded_by.is_none() {
                        prev.superseded_by = Some(id);
                        records::put(&mut self.store, Tree::Inbox, &key, &prev)?;
                    }
                }
                // Not here yet: remembered, and checked against its sender when it comes.
                None => self
                    .store
                    .put(Tree::Supersedes, old.as_bytes(), id.as_bytes())?,
            }
        }
        let rec = InboxRec {
            id,
            // The whole header (version 2: with the part that was sealed), which the
            // inbox, downloads and certificates read; its cleartext's digest is the
            // envelope's.
            header: header.encode(),
            office: office.clone(),
            received_at_ms: self.now,
            supersedes: h.supersedes,
            superseded_by,
            retrieved_at_ms: None,
            slots: slots.into_iter().map(|(k, _)| k).collect(),
            live_slots: live,
            users: info.users.len() as u32,
            fetched: Vec::new(),
            insured: {
                let mut v: Vec<String> = info.users.iter().map(|u| u.insured.clone()).collect();
                v.sort();
                v.dedup();
                v.truncate(records::INSURED_KEPT_MAX);
                v
            },
            names: info
                .names
                .iter()
                .take(records::INSURED_KEPT_MAX)
                .map(|n| [n.insured.clone(), n.name.clone(), n.kana.clone()])
                .collect(),
        };
        self.store.put(
            Tree::InboxIndex,
            &office_time_id_key(&office, self.now, &id),
            b"",
        )?;
        records::put(
            &mut self.store,
            Tree::Inbox,
            &office_id_key(&office, &id),
            &rec,
        )
    }

    /// Indexes the inbox of a store written before [`Tree::InboxIndex`] existed (once: a
    /// store with an index, or without an inbox, is left as it is).
    pub(super) fn index_inbox(&mut self) -> Result<(), StoreError> {
        if self.store.last(Tree::InboxIndex)?.is_some() || self.store.last(Tree::Inbox)?.is_none() {
            return Ok(());
        }
        let mut n = 0u64;
        let mut from = Vec::new();
        loop {
            let batch = self.store.range(Tree::Inbox, &from, None, 4096)?;
            let Some((last, _)) = batch.last() else { break };
            let mut next = last.clone();
            next.push(0);
            for (_, v) in &batch {
                let rec: InboxRec = records::decode(Tree::Inbox, v)?;
                self.store.put(
                    Tree::InboxIndex,
                    &office_time_id_key(&rec.office, rec.received_at_ms, &rec.id),
                    b"",
                )?;
                n += 1;
            }
            from = next;
        }
        self.store.commit()?;
        tracing::info!(units = n, "indexed the inbox in arrival order");
        Ok(())
    }

    /// A newer unit took one of `prev`'s slots.
    fn slot_lost(
        &mut self,
        office: &OfficeNumber,
        prev: EnvelopeId,
        by: EnvelopeId,
    ) -> Result<(), StoreError> {
        let key = office_id_key(office, &prev);
        if let Some(mut rec) = records::get::<InboxRec>(&self.store, Tree::Inbox, &key)? {
            rec.live_slots = rec.live_slots.saturating_sub(1);
            if rec.live_slots == 0 && rec.superseded_by.is_none() {
                rec.superseded_by = Some(by);
            }
            records::put(&mut self.store, Tree::Inbox, &key, &rec)?;
        }
        Ok(())
    }

    /// Whether two units come from the same sending office through the same origin
    /// operator (its current or a retired key): the only case where one may replace the
    /// other.
    fn same_sender(&self, a: &Outer, b: &Outer) -> bool {
        a.from.office == b.from.office && self.same_operator(&a.origin, &b.origin)
    }

    fn inbox_view(&self, rec: &InboxRec) -> Result<InboxView, StoreError> {
        let h = Header::decode(&rec.header).map_err(|e| StoreError::Corrupt {
            tree: "inbox",
            detail: e.to_string(),
        })?;
        Ok(InboxView {
            id: rec.id.to_string(),
            from: h.from.office.to_string(),
            from_kind: h.from.kind.to_string(),
            from_name: self.office_name(&h.from.office),
            origin: h.origin.to_string(),
            origin_name: self.operator_name(&h.origin),
            to_kind: h.to.kind.to_string(),
            kind: h.doc_kind.to_string(),
            subject: h.subject.clone(),
            stamp: h.stamp.to_string(),
            files: file_views(&h),
            received_at_ms: rec.received_at_ms,
            supersedes: rec.supersedes.map(|s| s.to_string()),
            superseded_by: rec.superseded_by.map(|s| s.to_string()),
            retrieved_at_ms: rec.retrieved_at_ms,
            fetched: h
                .files
                .iter()
                .enumerate()
                .filter(|(i, _)| rec.was_fetched(*i))
                .map(|(_, f)| f.name.clone())
                .collect(),
            latest: rec.superseded_by.is_none(),
            users: rec.users as usize,
            insured: rec.insured.clone(),
            names: rec
                .names
                .iter()
                .map(|[insured, name, kana]| crate::views::UserNameView {
                    insured: insured.clone(),
                    name: name.clone(),
                    kana: kana.clone(),
                })
                .collect(),
        })
    }

    /// A page of an office's inbox, newest received first: at most `limit` units (capped
    /// at [`INBOX_PAGE_MAX`]) received before unit `before` (the last of the previous
    /// page), only the latest of each document slot if asked. Reads at most
    /// [`INBOX_SCAN_MAX`] index entries: a page may then hold fewer units (or none), and its
    /// `next` cursor says where to go on. Nothing is dropped silently.
    pub(super) fn inbox_page(
        &self,
        office: &OfficeNumber,
        latest_only: bool,
        before: Option<EnvelopeId>,
        limit: usize,
    ) -> Result<ApiReply, StoreError> {
        let start = office.as_str().as_bytes().to_vec();
        let mut end = match before {
            None => crate::store::prefix_end(&start),
            Some(id) => match records::get::<InboxRec>(
                &self.store,
                Tree::Inbox,
                &office_id_key(office, &id),
            )? {
                Some(rec) => Some(office_time_id_key(office, rec.received_at_ms, &id)),
                None => {
                    return Ok(ApiReply::NotFound(format!(
                        "before: no unit {id} in this office's inbox"
                    )));
                }
            },
        };
        let limit = limit.clamp(1, INBOX_PAGE_MAX);
        let mut items = Vec::new();
        let mut scanned = 0usize;
        // The index key of the last unit read, while older ones may remain.
        let mut last_seen: Option<(Vec<u8>, EnvelopeId)> = None;
        'scan: while scanned < INBOX_SCAN_MAX {
            let want = (INBOX_SCAN_MAX - scanned).min(1024);
            let keys = self
                .store
                .range_rev(Tree::InboxIndex, &start, end.as_deref(), want)?;
            let Some((oldest, _)) = keys.last() else {
                last_seen = None;
                break;
            };
            end = Some(oldest.clone());
            for (k, _) in &keys {
                scanned += 1;
                let Some(id) = k.get(18..34).and_then(|b| EnvelopeId::from_slice(b).ok()) else {
                    continue;
                };
                last_seen = Some((k.clone(), id));
                let Some(rec) = records::get::<InboxRec>(
                    &self.store,
                    Tree::Inbox,
                    &office_id_key(office, &id),
                )?
                else {
                    continue;
                };
                if latest_only && rec.superseded_by.is_some() {
                    continue;
                }
                items.push(self.inbox_view(&rec)?);
                if items.len() == limit {
                    break 'scan;
                }
            }
            if keys.len() < want {
                last_seen = None;
                break;
            }
        }
        // More may follow unless the scan reached the office's oldest unit.
        let next = match last_seen {
            Some((key, id)) => (!self
                .store
                .range_rev(Tree::InboxIndex, &start, Some(&key), 1)?
                .is_empty())
            .then_some(id),
            None => None,
        };
        Ok(ApiReply::InboxPage(InboxPage { items, next }))
    }

    /// One file of a received unit (`name`), or all of them (`None`, in header order).
    /// Downloading marks the files fetched; once every file of the unit has been, the
    /// destination signs `Retrieved` for it.
    pub(super) fn fetch(
        &mut self,
        office: &OfficeNumber,
        id: EnvelopeId,
        name: Option<&str>,
    ) -> Result<ApiReply, StoreError> {
        let key = office_id_key(office, &id);
        let Some(mut rec) = records::get::<InboxRec>(&self.store, Tree::Inbox, &key)? else {
            return Ok(ApiReply::NotFound(format!(
                "no unit {id} in this office's inbox"
            )));
        };
        let h = Header::decode(&rec.header).map_err(|e| StoreError::Corrupt {
            tree: "inbox",
            detail: e.to_string(),
        })?;
        let indexes: Vec<usize> = match name {
            Some(name) => match h.files.iter().position(|f| f.name == name) {
                Some(i) => vec![i],
                None => {
                    return Ok(ApiReply::NotFound(format!(
                        "unit {id} has no file named {name}"
                    )));
                }
            },
            None => (0..h.files.len()).collect(),
        };
        let mut out = Vec::with_capacity(indexes.len());
        for &index in &indexes {
            let Some(bytes) = self.store.get(Tree::Files, &id_n_key(&id, index as u64))? else {
                return Ok(ApiReply::NotFound(format!(
                    "file {} of unit {id} is no longer held",
                    h.files[index].name
                )));
            };
            out.push(FileReply {
                name: h.files[index].name.clone(),
                bytes,
            });
        }
        let newly: Vec<usize> = indexes
            .iter()
            .copied()
            .filter(|&i| rec.mark_fetched(i))
            .collect();
        if !newly.is_empty() {
            let what = match name {
                Some(n) => n.to_owned(),
                None => format!("the whole unit ({} file(s))", h.files.len()),
            };
            self.audit("download", Some(id), Some(office), what)?;
            // Retrieved is a statement about the unit: signed once every file of it has
            // been downloaded, not at the first of them.
            let all = (0..h.files.len()).all(|i| rec.was_fetched(i));
            if all && rec.retrieved_at_ms.is_none() {
                rec.retrieved_at_ms = Some(self.now);
                let r = self.sign_receipt(id, h.digest(), ReceiptKind::Retrieved);
                let encoded = r.encode();
                self.audit(
                    "retrieve",
                    Some(id),
                    Some(office),
                    format!("{} file(s)", h.files.len()),
                )?;
                if self.is_me(&h.origin) {
                    self.apply_receipt_at_origin(&r)?;
                } else {
                    self.store_receipt(id, &encoded)?;
                    self.forward_receipt(h.origin, encoded)?;
                }
            }
            records::put(&mut self.store, Tree::Inbox, &key, &rec)?;
        }
        Ok(match name {
            Some(_) => ApiReply::File(out.remove(0)),
            None => ApiReply::Files(out),
        })
    }
}
