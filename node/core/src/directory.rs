//! Directory: the roster, office bindings (ours and the federation's), offices homed here
//! with their token hashes, routing, and directory sync.

use renkei_protocol::envelope::Party;
use renkei_protocol::ids::{OfficeNumber, OperatorId, ServiceKind};
use renkei_protocol::keys::EncPublicKey;
use renkei_protocol::limits::BINDINGS_PER_MESSAGE_MAX;
use renkei_protocol::roster::{OfficeBinding, SignedBinding, SignedRoster};
use renkei_protocol::wire::{Request, Response};

use super::io::RosterPeer;
use super::records::{self, OfficeRec, be};
use super::views::{DirectoryView, OfficeView};
use super::{Core, Effect, Flight};
use crate::store::{Store, StoreError, Tree};

/// Where to send an envelope next.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Route {
    /// The destination is this node.
    Local,
    /// Send to this peer (the destination itself or a relay).
    Peer(OperatorId),
    /// No way to reach the destination now.
    None(String),
}

pub(crate) const BUSY_DELIVER: u8 = 0;
pub(crate) const BUSY_RECEIPTS: u8 = 1;
pub(crate) const BUSY_SYNC: u8 = 2;

/// Meta keys `sync_cursor/` ‖ peer operator id → the last binding-log sequence read from
/// that peer (big-endian u64).
const SYNC_CURSOR_PREFIX: &[u8] = b"sync_cursor/";

/// Meta keys `assigned/` ‖ office number → the time (big-endian u64) of the federation
/// authority's assignment behind the binding held for that office.
const ASSIGNED_PREFIX: &[u8] = b"assigned/";

impl<S: Store> Core<S> {
    pub(super) fn load_directory(&mut self) -> Result<(), StoreError> {
        if let Some(b) = self.store.get(Tree::Meta, b"roster")? {
            match SignedRoster::decode(&b) {
                Ok(r) => self.roster = Some(r),
                Err(e) => {
                    return Err(StoreError::Corrupt {
                        tree: "meta",
                        detail: format!("roster: {e}"),
                    });
                }
            }
        }
        for (_, v) in self.store.range(Tree::Offices, b"", None, usize::MAX)? {
            let rec: OfficeRec = records::decode(Tree::Offices, &v)?;
            self.tokens.insert(rec.token_hash, rec.office.clone());
            self.offices.insert(rec.office.clone(), rec);
        }
        for (_, v) in self.store.range(Tree::Bindings, b"", None, usize::MAX)? {
            let b = SignedBinding::decode(&v).map_err(|e| StoreError::Corrupt {
                tree: "bindings",
                detail: e.to_string(),
            })?;
            let b = b.into_binding();
            if !b.released {
                *self.holdings.entry(b.operator).or_default() += 1;
            }
            self.bindings.insert(b.office.clone(), Box::new(b));
        }
        for (k, since) in self.meta_u64s(ASSIGNED_PREFIX, "assignment mark")? {
            let office = std::str::from_utf8(&k)
                .ok()
                .and_then(|o| o.parse::<OfficeNumber>().ok())
                .ok_or_else(|| StoreError::Corrupt {
                    tree: "meta",
                    detail: format!("assignment mark {}", hex::encode(&k)),
                })?;
            self.assigned.insert(office, since);
        }
        if let Some((k, _)) = self.store.last(Tree::BindingLog)? {
            self.binding_seq = <[u8; 8]>::try_from(k.as_slice()).map_or(0, u64::from_be_bytes);
        }
        // Where each peer's binding log was read up to: a restarted node resumes there
        // instead of pulling every peer's whole log again (at national scale 50 peers ×
        // 250,000 bindings after a relay restart).
        for (k, seq) in self.meta_u64s(SYNC_CURSOR_PREFIX, "sync cursor")? {
            let peer = OperatorId::from_slice(&k).map_err(|_| StoreError::Corrupt {
                tree: "meta",
                detail: format!("sync cursor {}", hex::encode(&k)),
            })?;
            self.sync_cursor.insert(peer, seq);
        }
        Ok(())
    }

    /// The `Meta` entries under `prefix` whose values are big-endian u64s: (key after the
    /// prefix, value). `what` names them in the error for a malformed value.
    fn meta_u64s(&self, prefix: &[u8], what: &str) -> Result<Vec<(Vec<u8>, u64)>, StoreError> {
        let end = crate::store::prefix_end(prefix);
        self.store
            .range(Tree::Meta, prefix, end.as_deref(), usize::MAX)?
            .into_iter()
            .map(|(k, v)| {
                let n = <[u8; 8]>::try_from(v.as_slice())
                    .map(u64::from_be_bytes)
                    .map_err(|_| StoreError::Corrupt {
                        tree: "meta",
                        detail: format!("{what} {}", hex::encode(&k)),
                    })?;
                Ok((k[prefix.len()..].to_vec(), n))
            })
            .collect()
    }

    /// Tells the driver which operators the transport should admit and dial.
    pub fn announce_roster(&mut self) {
        let Some(r) = self.roster.as_ref() else {
            return;
        };
        if r.roster().operator(&self.keys.id()).is_none() {
            tracing::warn!(
                operator = %self.keys.id(),
                serial = r.roster().serial,
                "this node's operator key is not the current key of any roster operator: \
                 other operators will refuse it until the authority publishes a roster with it"
            );
        }
        if let Some(w) = self.roster_warning() {
            tracing::warn!("{w}");
        }
        let mut peers = Vec::new();
        for o in &r.roster().operators {
            if !self.is_me(&o.id) && o.valid_at(self.now) {
                peers.push(RosterPeer {
                    id: o.id,
                    name: o.name.clone(),
                    addrs: o.addrs.clone(),
                    relay: o.relay,
                });
            }
            // A retired key is admitted until its expiry (the operator may still run under
            // it until it restarts) but not dialled: its addresses answer with the new key.
            for k in o
                .old_keys
                .iter()
                .filter(|k| !self.is_me(&k.id) && self.now < k.expires_ms)
            {
                peers.push(RosterPeer {
                    id: k.id,
                    name: o.name.clone(),
                    addrs: vec![],
                    relay: o.relay,
                });
            }
        }
        self.effects.push_back(Effect::Roster { peers });
    }

    /// Whether `peer` may talk to us: a roster operator (current key, or an old key not yet
    /// expired) now.
    pub(crate) fn peer_allowed(&self, peer: &OperatorId) -> bool {
        self.roster
            .as_ref()
            .is_some_and(|r| r.roster().signer_valid_at(peer, self.now).is_some())
    }

    /// The name of an office: its record's when it is homed here, else the name its home
    /// put in its binding (bindings signed before names were carried have none).
    pub(crate) fn office_name(&self, office: &OfficeNumber) -> Option<String> {
        self.offices
            .get(office)
            .map(|o| o.name.clone())
            .filter(|n| !n.is_empty())
            .or_else(|| {
                self.bindings
                    .get(office)
                    .filter(|b| !b.released && !b.name.is_empty())
                    .map(|b| b.name.clone())
            })
    }

    pub(crate) fn operator_name(&self, id: &OperatorId) -> Option<String> {
        if self.is_me(id) {
            return Some(self.cfg.name.clone());
        }
        self.roster.as_ref().and_then(|r| {
            r.roster()
                .signer_valid_at(id, self.now)
                // A key retired (and expired) since it signed still names its operator.
                .or_else(|| r.roster().operator_with_key(id))
                .map(|o| o.name.clone())
        })
    }

    /// The home operator of an office, if bound (and not released), by its current key: a
    /// binding signed with a key the operator has since retired names the operator that now
    /// holds a newer key (key rotation), and new envelopes go to that key.
    pub(crate) fn home_of(&self, office: &OfficeNumber) -> Option<OperatorId> {
        if self.offices.contains_key(office) {
            return Some(self.keys.id());
        }
        // A binding counts while its operator's roster entry is valid: bindings of an
        // operator removed (revoked) from the roster stop counting.
        self.bindings
            .get(office)
            .filter(|b| !b.released)
            .map(|b| self.current_key_of(&b.operator))
            .filter(|op| self.operator_valid_now(op))
    }

    /// [`Core::home_of`], for simnet's checkers (feature `simnet`): where this node's
    /// directory homes an office.
    #[cfg(feature = "simnet")]
    pub fn directory_home(&self, office: &OfficeNumber) -> Option<OperatorId> {
        self.home_of(office)
    }

    /// Whether `operator` (its current key) has a roster entry valid now.
    pub(crate) fn operator_valid_now(&self, operator: &OperatorId) -> bool {
        self.is_me(operator)
            || self.roster.as_ref().is_some_and(|r| {
                r.roster()
                    .operator_with_key(operator)
                    .is_some_and(|o| o.valid_at(self.now))
            })
    }

    /// What `renkei status` says about the roster's age, when it is older than
    /// `roster_max_age_ms`.
    pub(crate) fn roster_warning(&self) -> Option<String> {
        let issued = self.roster.as_ref()?.roster().issued_at_ms;
        let age = self.now.saturating_sub(issued);
        (age > self.cfg.roster_max_age_ms).then(|| {
            format!(
                "the roster (serial {}) was issued {} days ago, more than the {} days of delivery.roster_max_age_days: ask the federation authority for the current roster",
                self.roster.as_ref().map_or(0, |r| r.roster().serial),
                age / (24 * 3600 * 1000),
                self.cfg.roster_max_age_ms / (24 * 3600 * 1000)
            )
        })
    }

    /// The current key of the operator that `key` designates (itself unless the roster lists
    /// it as a retired key of an operator).
    pub(crate) fn current_key_of(&self, key: &OperatorId) -> OperatorId {
        if self.is_me(key) {
            return self.keys.id();
        }
        self.roster
            .as_ref()
            .and_then(|r| r.roster().operator_with_key(key))
            .map_or(*key, |o| o.id)
    }

    /// The key to seal to for `operator` (the current sealing key of the operator it
    /// designates).
    pub(crate) fn seal_key_of(&self, operator: &OperatorId) -> Option<EncPublicKey> {
        if self.is_me(operator) {
            return Some(self.keys.seal.public());
        }
        self.roster.as_ref().and_then(|r| {
            r.roster()
                .operator_with_key(operator)
                .filter(|o| o.valid_at(self.now))
                .map(|o| o.enc_key)
        })
    }

    /// Next hop toward `dest`: itself if connected; else a connected relay; else itself if
    /// the roster lists addresses to dial; else any relay (to be dialled).
    ///
    /// `dest` may be a key its operator has retired (an envelope sealed and addressed before
    /// a key rotation): it is then delivered to the operator's current key, unless the
    /// operator is still connected under the old one.
    pub(crate) fn route(&self, dest: &OperatorId) -> Route {
        if self.is_me(dest) {
            return Route::Local;
        }
        let Some(roster) = self.roster.as_ref().map(|r| r.roster()) else {
            return Route::None("no roster installed: this node only delivers locally".into());
        };
        let Some(entry) = roster.operator_with_key(dest) else {
            return Route::None(format!("operator {dest} is not in the roster"));
        };
        if !entry.valid_at(self.now) {
            return Route::None(format!(
                "operator {} is not valid in the roster now (its entry runs from {} until {})",
                entry.name,
                renkei_protocol::jst::jst(entry.valid_from_ms),
                entry
                    .valid_until_ms
                    .map_or_else(|| "further notice".to_owned(), renkei_protocol::jst::jst)
            ));
        }
        if self.peers_up.contains(dest) {
            return Route::Peer(*dest);
        }
        let target = entry.id;
        if self.peers_up.contains(&target) {
            return Route::Peer(target);
        }
        let relays: Vec<OperatorId> = roster
            .relays()
            .filter(|o| o.valid_at(self.now))
            .map(|o| o.id)
            .filter(|r| !self.is_me(r) && *r != target)
            .collect();
        if let Some(r) = relays.iter().find(|r| self.peers_up.contains(r)) {
            return Route::Peer(*r);
        }
        if !entry.addrs.is_empty() || relays.is_empty() {
            return Route::Peer(target);
        }
        Route::Peer(relays[0])
    }

    /// A next hop toward `dest` other than `avoid`: the destination itself (connected,
    /// or with addresses to dial), else another connected relay.
    pub(crate) fn route_avoiding(
        &self,
        dest: &OperatorId,
        avoid: &OperatorId,
    ) -> Option<OperatorId> {
        let roster = self.roster.as_ref()?.roster();
        let entry = roster.operator_with_key(dest)?;
        if !entry.valid_at(self.now) {
            return None;
        }
        let target = entry.id;
        if target != *avoid
            && (self.peers_up.contains(dest)
                || self.peers_up.contains(&target)
                || !entry.addrs.is_empty())
        {
            return Some(if self.peers_up.contains(dest) {
                *dest
            } else {
                target
            });
        }
        roster
            .relays()
            .filter(|o| o.valid_at(self.now))
            .map(|o| o.id)
            .find(|r| !self.is_me(r) && r != avoid && *r != target && self.peers_up.contains(r))
    }

    pub(super) fn add_office(
        &mut self,
        office: OfficeNumber,
        kinds: Vec<ServiceKind>,
        name: String,
        token_hash: [u8; 32],
    ) -> Result<Result<OfficeView, String>, StoreError> {
        if let Some(other) = self.binding_of(&office).filter(|b| !b.released)
            && !self.is_me(&other.operator)
        {
            let holder = self
                .operator_name(&other.operator)
                .unwrap_or_else(|| other.operator.to_string());
            return Ok(Err(if self.assigned.contains_key(&office) {
                format!(
                    "office {office} is assigned by the federation authority to operator {holder}; a newer assignment to this operator (renkei federation assign, then renkei office assign) moves it here"
                )
            } else {
                format!(
                    "office {office} is already homed at operator {holder}; it must be released there first, or the federation authority assigns it here (renkei office assign)"
                )
            }));
        }
        if let Some(old) = self.offices.get(&office) {
            // Adding again used to issue a new token silently (the old one stopped working,
            // the name was blanked): an operator's typo locked an office out.
            return Ok(Err(format!(
                "office {office} is already registered here (kinds {}{}); `renkei office token rotate {office}` issues a new token, `renkei office remove {office}` releases it",
                old.kinds
                    .iter()
                    .map(ToString::to_string)
                    .collect::<Vec<_>>()
                    .join(","),
                if old.name.is_empty() {
                    String::new()
                } else {
                    format!(", {}", old.name)
                }
            )));
        }
        let rec = OfficeRec {
            office: office.clone(),
            kinds: kinds.clone(),
            name,
            token_hash,
            since_ms: self.now,
            notify: None,
            totp_required: false,
        };
        self.keep_office(&rec)?;
        // An office the authority assigned here keeps the assignment as its binding.
        if !self.assigned.contains_key(&office) {
            let binding = OfficeBinding {
                office: office.clone(),
                kinds,
                operator: self.keys.id(),
                since_ms: self.now,
                released: false,
                name: OfficeBinding::name_for(&rec.name),
            }
            .sign(&self.keys.identity);
            self.store_binding(binding)?;
        }
        self.audit("office_added", None, Some(&office), String::new())?;
        Ok(Ok(office_view(&rec)))
    }

    /// Stores an office's record and indexes it (by number, by token hash).
    pub(super) fn keep_office(&mut self, rec: &OfficeRec) -> Result<(), StoreError> {
        records::put(
            &mut self.store,
            Tree::Offices,
            rec.office.as_str().as_bytes(),
            rec,
        )?;
        self.tokens.insert(rec.token_hash, rec.office.clone());
        self.offices.insert(rec.office.clone(), rec.clone());
        Ok(())
    }

    /// Replaces an office's API token: the old one stops working at once. `None` when the
    /// office is not homed here.
    pub(super) fn rotate_token(
        &mut self,
        office: &OfficeNumber,
        token_hash: [u8; 32],
    ) -> Result<Option<OfficeView>, StoreError> {
        let Some(mut rec) = self.offices.get(office).cloned() else {
            return Ok(None);
        };
        self.tokens.remove(&rec.token_hash);
        rec.token_hash = token_hash;
        self.keep_office(&rec)?;
        self.audit(
            "token_rotated",
            None,
            Some(office),
            "new API token; the old one is revoked".into(),
        )?;
        Ok(Some(office_view(&rec)))
    }

    pub(super) fn remove_office(&mut self, office: &OfficeNumber) -> Result<bool, StoreError> {
        let Some(rec) = self.offices.remove(office) else {
            return Ok(false);
        };
        self.tokens.remove(&rec.token_hash);
        self.store
            .delete(Tree::Offices, office.as_str().as_bytes())?;
        self.drop_staff_of(office)?;
        let release = OfficeBinding {
            office: office.clone(),
            kinds: rec.kinds,
            operator: self.keys.id(),
            since_ms: self.now,
            released: true,
            name: String::new(),
        }
        .sign(&self.keys.identity);
        self.store_binding(release)?;
        self.audit("office_removed", None, Some(office), String::new())?;
        Ok(true)
    }

    /// After a key rotation, re-signs the bindings of the offices homed here that are still
    /// signed with a retired key of this node, under the current key (since now), so the
    /// federation learns the new id by directory sync and routes to it.
    /// The same at open for a binding of this node that does not carry its office's name
    /// (signed before bindings named offices): re-signed once with the name, so offices at
    /// other operators see it.
    pub(super) fn rebind_after_rotation(&mut self) -> Result<(), StoreError> {
        let me = self.keys.id();
        let stale: Vec<(OfficeRec, bool)> = self
            .offices
            .values()
            .filter_map(|o| {
                let b = self.bindings.get(&o.office)?;
                if !self.keys.is_own_id(&b.operator) || b.released {
                    return None;
                }
                let rotated = b.operator != me;
                // (An office the authority assigned keeps the assignment: no claim of ours
                // replaces it, named or not.)
                let unnamed = b.name != OfficeBinding::name_for(&o.name)
                    && !self.assigned.contains_key(&o.office);
                (rotated || unnamed).then(|| (o.clone(), rotated))
            })
            .collect();
        for (rec, rotated) in stale {
            let binding = OfficeBinding {
                office: rec.office.clone(),
                kinds: rec.kinds.clone(),
                operator: me,
                since_ms: self.now,
                released: false,
                name: OfficeBinding::name_for(&rec.name),
            }
            .sign(&self.keys.identity);
            if !rotated {
                self.store_binding(binding)?;
                tracing::info!(office = %rec.office, "office binding re-signed with the office's name");
                continue;
            }
            self.store_binding(binding)?;
            tracing::info!(office = %rec.office, operator = %me, "office binding re-signed under the rotated key");
            self.audit(
                "office_rebound",
                None,
                Some(&rec.office),
                format!("key rotation: now operator {me}"),
            )?;
        }
        Ok(())
    }

    fn store_binding(&mut self, b: SignedBinding) -> Result<(), StoreError> {
        let encoded = b.encode();
        self.store_binding_encoded(b, &encoded, None)
    }

    /// [`Self::store_binding`] with `b`'s canonical encoding at hand (as received: a binding
    /// decodes only from its canonical bytes), learnt from peer `source` (None: made here).
    fn store_binding_encoded(
        &mut self,
        b: SignedBinding,
        encoded: &[u8],
        source: Option<OperatorId>,
    ) -> Result<(), StoreError> {
        let office = b.binding().office.clone();
        self.store
            .put(Tree::Bindings, office.as_str().as_bytes(), encoded)?;
        self.binding_seq += 1;
        let mut entry = office.as_str().as_bytes().to_vec();
        if let Some(p) = source {
            entry.extend_from_slice(p.as_bytes());
        }
        self.store
            .put(Tree::BindingLog, &be(self.binding_seq), &entry)?;
        let b = b.into_binding();
        if !b.released {
            *self.holdings.entry(b.operator).or_default() += 1;
        }
        if let Some(old) = self.bindings.insert(office, Box::new(b))
            && !old.released
            && let Some(n) = self.holdings.get_mut(&old.operator)
        {
            *n = n.saturating_sub(1);
        }
        // Tell the federation soon: a sync request makes each peer pull from us in turn.
        self.next_sync_ms = self.now;
        Ok(())
    }

    /// The binding held for `office`, if any.
    pub(crate) fn binding_of(&self, office: &OfficeNumber) -> Option<&OfficeBinding> {
        self.bindings.get(office).map(|b| &**b)
    }

    /// Applies a binding learnt from the federation. The earlier binding holds until its
    /// operator releases it; a competing claim is recorded as a conflict.
    #[cfg(test)]
    pub(crate) fn learn_binding(&mut self, b: SignedBinding) -> Result<(), StoreError> {
        let encoded = b.encode();
        self.learn_binding_encoded(b, &encoded, None)
    }

    /// [`Self::learn_binding`] of a binding received as `encoded` (its canonical bytes: a
    /// directory sync carries 250,000 of them to every node, and encoding each again was
    /// 4 % of a national run's setup).
    fn learn_binding_encoded(
        &mut self,
        b: SignedBinding,
        encoded: &[u8],
        source: Option<OperatorId>,
    ) -> Result<(), StoreError> {
        let Some(roster) = self.roster.as_ref() else {
            return Ok(());
        };
        // A binding equal to the one held (which verified when it was stored) changes
        // nothing whatever its signature: answered before the signature is checked, so
        // that the same bindings arriving again over several links cost no verification.
        if self.binding_of(&b.binding().office) == Some(b.binding()) {
            return Ok(());
        }
        let signer = match b.verify_by(roster.roster(), &*self.signatures) {
            Ok(s) => s,
            Err(e) => {
                self.counters.bindings_refused += 1;
                tracing::warn!(error = %e, "ignoring binding that does not verify");
                return Ok(());
            }
        };
        let nb = b.binding();
        if signer.is_authority() {
            return self.learn_assignment(b, encoded, source);
        }
        if let Some(note) = self.claim_refused(nb) {
            if self
                .conflicts
                .insert(nb.office.clone(), note.clone())
                .is_none()
            {
                self.counters.binding_conflicts += 1;
                tracing::warn!(%note, "binding conflict; the authority's assignment holds");
            }
            return Ok(());
        }
        if self.is_me(&nb.operator) {
            return Ok(()); // our own bindings (old keys' too) are authoritative locally
        }
        if self.assigned.contains_key(&nb.office) && !nb.released {
            // The assigned operator's own claim: the assignment already says it (and stays
            // what this node passes on).
            return Ok(());
        }
        let new_for_it = self
            .binding_of(&nb.office)
            .is_none_or(|cur| cur.operator != nb.operator || cur.released);
        let held = self.holdings.get(&nb.operator).copied().unwrap_or(0);
        if !nb.released && new_for_it && held >= self.cfg.bindings_per_operator_max {
            let note = format!(
                "office {} claimed by {}, which already holds {held} offices here (delivery.bindings_per_operator_max)",
                nb.office, nb.operator
            );
            if self
                .conflicts
                .insert(nb.office.clone(), note.clone())
                .is_none()
            {
                self.counters.binding_conflicts += 1;
                tracing::warn!(%note, "binding refused: the operator's claims are over their bound");
            }
            return Ok(());
        }
        match self.binding_of(&nb.office) {
            Some(cur) if cur == nb => Ok(()),
            // The same operator, possibly re-signing under a rotated key: the newer holds.
            Some(cur) if self.same_operator(&cur.operator, &nb.operator) => {
                if nb.since_ms >= cur.since_ms {
                    self.store_binding_encoded(b, encoded, source)?;
                }
                Ok(())
            }
            Some(cur) if !cur.released => {
                if !nb.released {
                    let holder = cur.operator;
                    let note = format!(
                        "office {} held by {} since {}, claimed by {} since {}",
                        nb.office, holder, cur.since_ms, nb.operator, nb.since_ms
                    );
                    if self
                        .conflicts
                        .insert(nb.office.clone(), note.clone())
                        .is_none()
                    {
                        self.counters.binding_conflicts += 1;
                        tracing::warn!(%note, "binding conflict; the earlier binding holds");
                    }
                }
                Ok(())
            }
            _ => {
                if !nb.released || self.bindings.contains_key(&nb.office) {
                    self.conflicts.remove(&nb.office);
                    self.store_binding_encoded(b, encoded, source)?;
                }
                Ok(())
            }
        }
    }

    /// Why an operator's claim `nb` is not taken, if it is not: the office's held binding
    /// is the authority's assignment to another operator, or this node takes assignments
    /// only.
    fn claim_refused(&self, nb: &OfficeBinding) -> Option<String> {
        if self.assigned.contains_key(&nb.office)
            && let Some(cur) = self.binding_of(&nb.office)
            && !self.same_operator(&cur.operator, &nb.operator)
        {
            return Some(format!(
                "office {} assigned by the federation authority to {}, claimed by {} since {}",
                nb.office, cur.operator, nb.operator, nb.since_ms
            ));
        }
        (self.cfg.require_assignments && !self.assigned.contains_key(&nb.office)).then(|| {
            format!(
                "office {} claimed by {} without an assignment of the federation authority (delivery.require_assignments)",
                nb.office, nb.operator
            )
        })
    }

    /// Takes the federation authority's assignment `b` (verified): over any claim, and
    /// over an older assignment (the office moving operators).
    fn learn_assignment(
        &mut self,
        b: SignedBinding,
        encoded: &[u8],
        source: Option<OperatorId>,
    ) -> Result<(), StoreError> {
        let nb = b.binding().clone();
        if self
            .assigned
            .get(&nb.office)
            .is_some_and(|t| *t >= nb.since_ms)
        {
            return Ok(());
        }
        if self.offices.contains_key(&nb.office) && !self.is_me(&nb.operator) {
            let note = format!(
                "office {} is registered here, but the federation authority assigned it to {} since {}: remove it here",
                nb.office, nb.operator, nb.since_ms
            );
            tracing::warn!(%note, "an office homed here is assigned elsewhere");
            self.conflicts.insert(nb.office.clone(), note);
        } else {
            self.conflicts.remove(&nb.office);
        }
        self.mark_assigned(&nb.office, nb.since_ms)?;
        self.store_binding_encoded(b, encoded, source)
    }

    fn mark_assigned(&mut self, office: &OfficeNumber, since_ms: u64) -> Result<(), StoreError> {
        let mut key = ASSIGNED_PREFIX.to_vec();
        key.extend_from_slice(office.as_str().as_bytes());
        self.store.put(Tree::Meta, &key, &since_ms.to_be_bytes())?;
        self.assigned.insert(office.clone(), since_ms);
        Ok(())
    }

    /// Installs the federation authority's assignment of an office to this operator
    /// (`renkei office assign`, before or after `renkei office add`): from now on the
    /// directory carries it instead of this operator's own claim, and no other operator's
    /// claim can displace it — not even one this node learnt first.
    pub(super) fn install_assignment(
        &mut self,
        bytes: &[u8],
    ) -> Result<Result<(), String>, StoreError> {
        let b = match SignedBinding::decode(bytes) {
            Ok(b) => b,
            Err(e) => return Ok(Err(format!("not an office assignment: {e}"))),
        };
        let Some(roster) = self.roster.as_ref() else {
            return Ok(Err("no roster installed: an assignment is checked against the federation authority named in it".into()));
        };
        match b.verify_by(roster.roster(), &*self.signatures) {
            Ok(s) if s.is_authority() => {}
            Ok(_) => {
                return Ok(Err(
                    "this binding is signed by its operator, not by the federation authority"
                        .into(),
                ));
            }
            Err(e) => return Ok(Err(format!("the assignment does not verify: {e}"))),
        }
        let nb = b.binding().clone();
        if !self.is_me(&nb.operator) {
            return Ok(Err(format!(
                "the assignment homes office {} at operator {}, not at this operator",
                nb.office, nb.operator
            )));
        }
        if nb.released {
            return Ok(Err(format!("the assignment releases office {}", nb.office)));
        }
        self.mark_assigned(&nb.office, nb.since_ms)?;
        self.conflicts.remove(&nb.office);
        let encoded = b.encode();
        self.store_binding_encoded(b, &encoded, None)?;
        self.audit(
            "office_assigned",
            None,
            Some(&nb.office),
            format!("federation authority's assignment since {}", nb.since_ms),
        )?;
        Ok(Ok(()))
    }

    /// Installs a roster if it verifies under the authority and is newer.
    pub(crate) fn install_roster(
        &mut self,
        bytes: &[u8],
    ) -> Result<Result<u64, String>, StoreError> {
        let Some(authority) = self.cfg.authority else {
            return Ok(Err(
                "this node has no federation authority key configured".into()
            ));
        };
        let r = match SignedRoster::decode(bytes) {
            Ok(r) => r,
            Err(e) => return Ok(Err(e.to_string())),
        };
        if let Err(e) = r.verify_by(&authority, &*self.signatures) {
            return Ok(Err(e.to_string()));
        }
        let serial = r.roster().serial;
        if self
            .roster
            .as_ref()
            .is_some_and(|cur| cur.roster().serial >= serial)
        {
            return Ok(Ok(serial));
        }
        self.store.put(Tree::Meta, b"roster", bytes)?;
        self.roster = Some(r);
        self.announce_roster();
        // Operators removed from the roster are disconnected by the transport; forget them.
        let allowed: Vec<OperatorId> = self
            .peers_up
            .iter()
            .copied()
            .filter(|p| self.peer_allowed(p))
            .collect();
        self.peers_up = allowed.into_iter().collect();
        self.audit("roster_installed", None, None, format!("serial {serial}"))?;
        Ok(Ok(serial))
    }

    pub(super) fn lookup(&self, office: &OfficeNumber) -> DirectoryView {
        let homed_here = self.offices.contains_key(office);
        let b = self.binding_of(office).filter(|b| !b.released);
        DirectoryView {
            office: office.to_string(),
            reachable: homed_here || b.is_some(),
            operator_name: b.and_then(|b| self.operator_name(&b.operator)),
            operator: b.map(|b| b.operator.to_string()),
            since_ms: b.map(|b| b.since_ms),
            kinds: b
                .map(|b| b.kinds.iter().map(|k| k.to_string()).collect())
                .unwrap_or_default(),
            homed_here,
        }
    }

    /// The view of one office homed here (every upload asks, so not by listing them all).
    pub(super) fn office_view_of(&self, office: &OfficeNumber) -> Option<OfficeView> {
        self.offices.get(office).map(office_view)
    }

    pub(super) fn office_views(&self) -> Vec<OfficeView> {
        self.offices.values().map(office_view).collect()
    }

    pub(super) fn conflict_notes(&self) -> Vec<String> {
        self.conflicts.values().cloned().collect()
    }

    /// Whether `party` is an office homed here that runs that service kind.
    pub(crate) fn homes(&self, party: &Party) -> bool {
        self.offices
            .get(&party.office)
            .is_some_and(|o| o.kinds.contains(&party.kind))
    }

    /// Answers a directory-sync request.
    /// The answer to `peer`'s directory sync from `cursor`: up to a page of the binding
    /// log's entries after it, leaving out what was learnt from `peer` itself (it holds
    /// those: it sent them) unless it reads from the start (a peer whose store was replaced
    /// starts again at 0). In a star of 50 operators around a relay, each operator's log
    /// is mostly what it learnt from the relay: sent back, the relay's every sync would
    /// carry the whole directory home again.
    pub(super) fn serve_sync(
        &self,
        peer: OperatorId,
        roster_serial: u64,
        cursor: u64,
    ) -> Result<Response, StoreError> {
        let roster = self
            .roster
            .as_ref()
            .filter(|r| r.roster().serial > roster_serial)
            .map(|r| r.encode());
        // A cursor past the end of this node's log is from before this node's store was
        // replaced: the peer reads the whole log again rather than wait for it to grow
        // past a position that no longer means anything.
        let cursor = if cursor > self.binding_seq { 0 } else { cursor };
        let rows = self.store.range(
            Tree::BindingLog,
            &be(cursor.saturating_add(1)),
            None,
            BINDINGS_PER_MESSAGE_MAX + 1,
        )?;
        let more = rows.len() > BINDINGS_PER_MESSAGE_MAX;
        let mut bindings = Vec::new();
        let mut next_cursor = cursor;
        for (k, entry) in rows.into_iter().take(BINDINGS_PER_MESSAGE_MAX) {
            next_cursor = <[u8; 8]>::try_from(k.as_slice()).map_or(next_cursor, u64::from_be_bytes);
            let (office, source) = log_entry(&entry);
            if cursor > 0 && source == Some(peer.as_bytes().as_slice()) {
                continue;
            }
            if let Some(b) = self.store.get(Tree::Bindings, office)? {
                bindings.push(b);
            }
        }
        Ok(Response::Directory {
            roster,
            bindings,
            next_cursor,
            more,
        })
    }

    pub(super) fn on_sync_answer(
        &mut self,
        from: OperatorId,
        response: Response,
    ) -> Result<(), StoreError> {
        if let Response::Directory {
            roster,
            bindings,
            next_cursor,
            more,
        } = response
        {
            if let Some(r) = roster
                && let Err(e) = self.install_roster(&r)?
            {
                tracing::warn!(peer = %from, error = %e, "peer offered a roster that does not verify");
            }
            for bytes in bindings {
                if let Ok(b) = SignedBinding::decode(&bytes) {
                    self.learn_binding_encoded(b, &bytes, Some(from))?;
                }
            }
            if self.sync_cursor.insert(from, next_cursor) != Some(next_cursor) {
                // Committed with the bindings it covers.
                let mut key = SYNC_CURSOR_PREFIX.to_vec();
                key.extend_from_slice(from.as_bytes());
                self.store
                    .put(Tree::Meta, &key, &next_cursor.to_be_bytes())?;
            }
            if more {
                self.send_sync(from);
            }
        }
        Ok(())
    }

    /// Periodic directory sync with every connected roster peer.
    pub(super) fn maybe_sync(&mut self) {
        if self.now < self.next_sync_ms {
            return;
        }
        self.next_sync_ms = self.now + self.cfg.sync_interval_ms;
        let peers: Vec<OperatorId> = self.peers_up.iter().copied().collect();
        for p in peers {
            self.send_sync(p);
        }
    }

    pub(super) fn send_sync(&mut self, to: OperatorId) {
        if self.free_slots(BUSY_SYNC, to) == 0 {
            return;
        }
        self.occupy(BUSY_SYNC, to);
        let id = self.new_outbound();
        let cursor = self.sync_cursor.get(&to).copied().unwrap_or(0);
        let roster_serial = self.roster.as_ref().map_or(0, |r| r.roster().serial);
        self.flights.insert(id, Flight::Sync { to });
        self.effects.push_back(Effect::Send {
            id,
            to,
            request: Request::DirectorySync {
                roster_serial,
                cursor,
            },
        });
    }
}

/// A binding-log entry: the office, then the id of the peer it was learnt from (absent for
/// bindings made here, and in logs written before 2026-12-03).
fn log_entry(entry: &[u8]) -> (&[u8], Option<&[u8]>) {
    match entry.len().checked_sub(OPERATOR_ID_LEN) {
        Some(n) if n > 0 => (&entry[..n], Some(&entry[n..])),
        _ => (entry, None),
    }
}

/// Bytes of an operator id.
const OPERATOR_ID_LEN: usize = 32;

fn office_view(rec: &OfficeRec) -> OfficeView {
    OfficeView {
        office: rec.office.to_string(),
        name: rec.name.clone(),
        kinds: rec.kinds.iter().map(|k| k.to_string()).collect(),
        notify: rec.notify.clone(),
        totp_required: rec.totp_required,
        staff: None,
    }
}
