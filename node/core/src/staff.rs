//! Staff accounts of the offices homed here, and their sign-in sessions (the page).
//!
//! An office's staff sign in with the office number, a user ID and a password, and a TOTP
//! code once they have enrolled one. The edge does the heavy pure work off the core's
//! thread — hashing passwords (argon2id, a PHC string reaches the core), verifying them and
//! the codes — and the core decides: it keeps the records, counts failed sign-ins per
//! account and locks it, holds the sessions with their idle and absolute timeouts, and
//! lets a session stand for its office wherever an API token does (a session is looked up
//! by the SHA-256 of its cookie, as a token is by the SHA-256 of the bearer).

use renkei_protocol::ids::OfficeNumber;
use serde::{Deserialize, Serialize};

use super::Core;
use super::io::{ApiReply, Auth};
use super::records;
use super::views::{SessionView, StaffCredentials, StaffView};
use crate::store::{Store, StoreError, Tree};

/// Failed sign-ins in a row that lock an account.
pub const SIGN_IN_FAILURES_MAX: u32 = 5;
/// How long a locked account stays locked.
pub const LOCK_MS: u64 = 15 * 60 * 1000;
/// Sessions one staff member may hold at once; the oldest goes beyond.
pub const SESSIONS_PER_USER_MAX: usize = 16;
/// A session's last use is written to the store at most this often.
const SESSION_TOUCH_MS: u64 = 60_000;

/// A staff account (`Tree::Staff`, key office ‖ `/` ‖ user).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct StaffRec {
    office: OfficeNumber,
    user: String,
    /// argon2id PHC string (made and checked by the edge).
    password: String,
    /// May manage the office's staff.
    admin: bool,
    /// TOTP secret once enrolled.
    #[serde(with = "serde_bytes", default)]
    totp: Vec<u8>,
    failed: u32,
    locked_until_ms: u64,
    created_ms: u64,
}

/// A signed-in session (`Tree::Sessions`, key SHA-256 of the cookie).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct SessionRec {
    office: OfficeNumber,
    user: String,
    admin: bool,
    created_ms: u64,
    last_ms: u64,
    /// The office requires a second factor the account had not enrolled at sign-in.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    must_enrol: bool,
    /// Switched to another office it was granted (a corporation's staff): the account's own
    /// office and administrator flag; `office` and `admin` are then the granted office's.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    home: Option<(OfficeNumber, bool)>,
}

impl SessionRec {
    /// The office the account belongs to (not the one it acts for).
    fn home_office(&self) -> &OfficeNumber {
        self.home.as_ref().map_or(&self.office, |h| &h.0)
    }
}

/// A grant: a staff member of one office may act for another (`Tree::Staff`, key
/// target ‖ `/~` ‖ home ‖ `:` ‖ user; `~` is in no user ID). Mirrored under
/// [`GRANTS_BY_USER`] ‖ home ‖ `:` ‖ user ‖ `/` ‖ target for the account's list.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct GrantRec {
    admin: bool,
    granted_ms: u64,
}

/// Prefix of the grants listed by account (no office number starts with it).
const GRANTS_BY_USER: &[u8] = b"\xffgrants/";

fn grant_key(target: &OfficeNumber, home: &OfficeNumber, user: &str) -> Vec<u8> {
    format!("{target}/~{home}:{user}").into_bytes()
}

fn grant_by_user_key(home: &OfficeNumber, user: &str, target: Option<&OfficeNumber>) -> Vec<u8> {
    let mut k = GRANTS_BY_USER.to_vec();
    k.extend_from_slice(format!("{home}:{user}/").as_bytes());
    if let Some(t) = target {
        k.extend_from_slice(t.as_str().as_bytes());
    }
    k
}

fn staff_key(office: &OfficeNumber, user: &str) -> Vec<u8> {
    let mut k = office.as_str().as_bytes().to_vec();
    k.push(b'/');
    k.extend_from_slice(user.as_bytes());
    k
}

/// A user ID: 1–64 characters of `A–Z a–z 0–9 . _ - @`.
pub fn user_id_ok(user: &str) -> bool {
    (1..=64).contains(&user.len())
        && user
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-' | b'@'))
}

/// A plausible e-mail address: `local@label.label…`, no spaces, control characters or
/// `<>,;"` (nothing that could break a mail header), at most 254 characters — exactly the
/// pattern the OpenAPI document gives.
pub fn email_ok(e: &str) -> bool {
    let bad =
        |c: char| c.is_control() || c.is_whitespace() || c == '\u{feff}' || "<>,;\"@".contains(c);
    let Some((local, domain)) = e.split_once('@') else {
        return false;
    };
    let labels: Vec<&str> = domain.split('.').collect();
    e.chars().count() <= 254
        && !local.is_empty()
        && !local.chars().any(bad)
        && labels.len() >= 2
        && labels.iter().all(|l| !l.is_empty() && !l.chars().any(bad))
}

/// Who asks, for staff commands: the operator, or an office by its API token or a
/// session (with the session's user).
pub(crate) enum Caller {
    Operator,
    Office(OfficeNumber),
    Staff(SessionRec),
}

impl<S: Store> Core<S> {
    /// Sessions from the store, those past their timeouts dropped.
    pub(super) fn load_sessions(&mut self) -> Result<(), StoreError> {
        for (k, v) in self.store.range(Tree::Sessions, b"", None, usize::MAX)? {
            let rec: SessionRec = records::decode(Tree::Sessions, &v)?;
            let Ok(hash) = <[u8; 32]>::try_from(k.as_slice()) else {
                continue;
            };
            self.sessions.insert(hash, rec);
        }
        Ok(())
    }

    fn session_live(&self, s: &SessionRec) -> bool {
        self.now < s.created_ms.saturating_add(self.cfg.session_max_ms)
            && self.now < s.last_ms.saturating_add(self.cfg.session_idle_ms)
    }

    /// The session behind `auth`, if it is one and still live: its last use is moved to
    /// now (written at most once a minute). A session past its timeouts is removed.
    pub(super) fn touch_session(&mut self, auth: &Auth) -> Result<(), StoreError> {
        let Auth::Office(hash) = auth else {
            return Ok(());
        };
        let Some(s) = self.sessions.get(hash) else {
            return Ok(());
        };
        if !self.session_live(s) {
            self.end_session(hash)?;
            return Ok(());
        }
        // Written at most once a minute (sooner when the idle limit is short).
        if self.now >= s.last_ms + SESSION_TOUCH_MS.min(self.cfg.session_idle_ms / 4) {
            let mut s = s.clone();
            s.last_ms = self.now;
            records::put(&mut self.store, Tree::Sessions, hash, &s)?;
            self.sessions.insert(*hash, s);
        }
        Ok(())
    }

    /// The office a live session stands for.
    pub(super) fn session_office(&self, hash: &[u8; 32]) -> Option<OfficeNumber> {
        self.sessions
            .get(hash)
            .filter(|s| self.session_live(s))
            .map(|s| s.office.clone())
    }

    fn end_session(&mut self, hash: &[u8; 32]) -> Result<(), StoreError> {
        if self.sessions.remove(hash).is_some() {
            self.store.delete(Tree::Sessions, hash)?;
        }
        Ok(())
    }

    fn end_sessions_of(&mut self, office: &OfficeNumber, user: &str) -> Result<(), StoreError> {
        let ended: Vec<[u8; 32]> = self
            .sessions
            .iter()
            .filter(|(_, s)| s.home_office() == office && s.user == user)
            .map(|(h, _)| *h)
            .collect();
        for h in ended {
            self.end_session(&h)?;
        }
        Ok(())
    }

    pub(super) fn caller(&self, auth: &Auth) -> Option<Caller> {
        match auth {
            Auth::Operator => Some(Caller::Operator),
            Auth::Office(h) => {
                if let Some(o) = self.tokens.get(h) {
                    return Some(Caller::Office(o.clone()));
                }
                self.sessions
                    .get(h)
                    .filter(|s| self.session_live(s))
                    .map(|s| Caller::Staff(s.clone()))
            }
        }
    }

    /// Whether `auth` is a session that may only enrol a second factor.
    pub(super) fn must_enrol(&self, auth: &Auth) -> bool {
        // (A session's hash is never a token's: no need to look at the tokens first.)
        matches!(auth, Auth::Office(h) if self.sessions.get(h).is_some_and(|s| s.must_enrol && self.session_live(s)))
    }

    /// Requires (or not) a second factor of an office's staff: from their next sign-in,
    /// an account without one may only enrol one.
    pub(super) fn set_totp_required(
        &mut self,
        office: &OfficeNumber,
        required: bool,
    ) -> Result<ApiReply, StoreError> {
        let Some(mut rec) = self.offices.get(office).cloned() else {
            return Ok(ApiReply::NotFound(format!(
                "office {office} is not homed here"
            )));
        };
        rec.totp_required = required;
        self.keep_office(&rec)?;
        self.audit(
            "totp_required_set",
            None,
            Some(office),
            if required { "required" } else { "optional" }.into(),
        )?;
        Ok(match self.office_view_of(office) {
            Some(v) => ApiReply::Office(v),
            None => ApiReply::Done,
        })
    }

    /// Grants a staff member of another office homed here (a corporation's, say) the right
    /// to act for the caller's office (as an administrator of it, or not); revoking ends
    /// the sessions acting for it.
    pub(super) fn staff_grant(
        &mut self,
        auth: &Auth,
        home: OfficeNumber,
        user: &str,
        admin: Option<bool>,
    ) -> Result<ApiReply, StoreError> {
        let target = match self.managed_office(self.caller(auth), None) {
            Ok(o) => o,
            Err(r) => return Ok(r),
        };
        if home == target {
            return Ok(ApiReply::Conflict(
                "that is this office's own staff, who need no grant".into(),
            ));
        }
        match admin {
            Some(admin) => {
                if self.staff_rec(&home, user)?.is_none() {
                    return Ok(ApiReply::NotFound(format!(
                        "no user {user} at office {home} on this node"
                    )));
                }
                let g = GrantRec {
                    admin,
                    granted_ms: self.now,
                };
                records::put(
                    &mut self.store,
                    Tree::Staff,
                    &grant_key(&target, &home, user),
                    &g,
                )?;
                records::put(
                    &mut self.store,
                    Tree::Staff,
                    &grant_by_user_key(&home, user, Some(&target)),
                    &g,
                )?;
                self.audit(
                    "staff_granted",
                    None,
                    Some(&target),
                    format!(
                        "{home}:{user}{}",
                        if admin { " (administrator)" } else { "" }
                    ),
                )?;
            }
            None => {
                self.store
                    .delete(Tree::Staff, &grant_key(&target, &home, user))?;
                self.store
                    .delete(Tree::Staff, &grant_by_user_key(&home, user, Some(&target)))?;
                let acting: Vec<[u8; 32]> = self
                    .sessions
                    .iter()
                    .filter(|(_, s)| {
                        s.office == target && s.home_office() == &home && s.user == user
                    })
                    .map(|(h, _)| *h)
                    .collect();
                for h in acting {
                    self.end_session(&h)?;
                }
                self.audit(
                    "staff_grant_revoked",
                    None,
                    Some(&target),
                    format!("{home}:{user}"),
                )?;
            }
        }
        Ok(ApiReply::Staff(self.staff_list(&target)?))
    }

    /// The offices a session's account may act for: its own, then those granted.
    pub(super) fn offices_of_session(&self, auth: &Auth) -> Result<Vec<String>, StoreError> {
        let Some(Caller::Staff(s)) = self.caller(auth) else {
            return Ok(Vec::new());
        };
        let home = s.home_office().clone();
        let prefix = grant_by_user_key(&home, &s.user, None);
        let mut end = prefix.clone();
        end.push(0xff);
        let mut out = vec![home.to_string()];
        for (k, _) in self.store.range(Tree::Staff, &prefix, Some(&end), 1000)? {
            let t = String::from_utf8_lossy(&k[prefix.len()..]).into_owned();
            if t.parse::<OfficeNumber>()
                .is_ok_and(|o| self.offices.contains_key(&o))
            {
                out.push(t);
            }
        }
        Ok(out)
    }

    /// Moves a session to another office its account was granted, or back to its own.
    pub(super) fn switch_office(
        &mut self,
        auth: &Auth,
        target: OfficeNumber,
    ) -> Result<ApiReply, StoreError> {
        let Auth::Office(h) = auth else {
            return Ok(ApiReply::Unauthorized);
        };
        let Some(Caller::Staff(mut s)) = self.caller(auth) else {
            return Ok(ApiReply::Forbidden(
                "only a staff member's session switches offices".into(),
            ));
        };
        let (home, home_admin) = s.home.clone().unwrap_or((s.office.clone(), s.admin));
        if target == home {
            s.office = home;
            s.admin = home_admin;
            s.home = None;
        } else {
            let Some(v) = self
                .store
                .get(Tree::Staff, &grant_key(&target, &home, &s.user))?
            else {
                return Ok(ApiReply::Forbidden(format!(
                    "this account may not act for office {target}"
                )));
            };
            let g: GrantRec = records::decode(Tree::Staff, &v)?;
            if !self.offices.contains_key(&target) {
                return Ok(ApiReply::NotFound(format!(
                    "office {target} is not homed here"
                )));
            }
            s.office = target;
            s.admin = g.admin;
            s.home = Some((home, home_admin));
        }
        records::put(&mut self.store, Tree::Sessions, h, &s)?;
        let office = s.office.clone();
        self.sessions.insert(*h, s);
        Ok(match self.office_view_of(&office) {
            Some(mut v) => {
                v.staff = self.session_view(auth);
                ApiReply::Office(v)
            }
            None => ApiReply::Unauthorized,
        })
    }

    /// Sets or clears the address an office's new arrivals are told to.
    pub(super) fn set_notify(
        &mut self,
        office: &OfficeNumber,
        email: Option<String>,
    ) -> Result<ApiReply, StoreError> {
        if let Some(e) = &email
            && !email_ok(e)
        {
            return Ok(ApiReply::BadRequest(format!(
                "{e:?} is not an e-mail address (name@domain, up to 254 characters)"
            )));
        }
        let Some(mut rec) = self.offices.get(office).cloned() else {
            return Ok(ApiReply::NotFound(format!(
                "office {office} is not homed here"
            )));
        };
        rec.notify = email.clone();
        self.keep_office(&rec)?;
        self.audit(
            "notify_set",
            None,
            Some(office),
            email.unwrap_or_else(|| "(none)".into()),
        )?;
        Ok(match self.office_view_of(office) {
            Some(v) => ApiReply::Office(v),
            None => ApiReply::Done,
        })
    }

    /// The office whose administrator `auth` is: its API token, or an administrator's
    /// session (the audit export, 運営指導, is theirs to download).
    pub(super) fn office_admin_of(&self, auth: &Auth) -> Option<OfficeNumber> {
        match self.caller(auth)? {
            Caller::Office(o) => Some(o),
            Caller::Staff(s) if s.admin => Some(s.office),
            _ => None,
        }
    }

    /// The staff member a session is (for `/v1/me`).
    pub(super) fn session_view(&self, auth: &Auth) -> Option<SessionView> {
        match self.caller(auth)? {
            Caller::Staff(s) => Some(SessionView {
                office: s.office.clone(),
                user: s.user.clone(),
                admin: s.admin,
                expires_at_ms: (s.created_ms + self.cfg.session_max_ms)
                    .min(s.last_ms.max(self.now) + self.cfg.session_idle_ms),
                must_enrol: s.must_enrol,
                offices: Vec::new(),
            }),
            _ => None,
        }
    }

    /// The office whose staff `caller` may manage (`asked` names it for the operator).
    fn managed_office(
        &self,
        caller: Option<Caller>,
        asked: Option<OfficeNumber>,
    ) -> Result<OfficeNumber, ApiReply> {
        let another = || ApiReply::Forbidden("another office's staff".into());
        let office = match (caller, asked) {
            (None, _) => return Err(ApiReply::Unauthorized),
            (Some(Caller::Operator), Some(o)) => o,
            (Some(Caller::Operator), None) => {
                return Err(ApiReply::BadRequest("name the office".into()));
            }
            (Some(Caller::Office(o)), a) => {
                if a.is_some_and(|a| a != o) {
                    return Err(another());
                }
                o
            }
            (Some(Caller::Staff(s)), a) => {
                if !s.admin {
                    return Err(ApiReply::Forbidden(
                        "only the office's administrators manage its staff".into(),
                    ));
                }
                if a.is_some_and(|a| a != s.office) {
                    return Err(another());
                }
                s.office
            }
        };
        if !self.offices.contains_key(&office) {
            return Err(ApiReply::NotFound(format!(
                "office {office} is not homed here"
            )));
        }
        Ok(office)
    }

    fn staff_rec(&self, office: &OfficeNumber, user: &str) -> Result<Option<StaffRec>, StoreError> {
        match self.store.get(Tree::Staff, &staff_key(office, user))? {
            Some(v) => Ok(Some(records::decode(Tree::Staff, &v)?)),
            None => Ok(None),
        }
    }

    fn put_staff(&mut self, rec: &StaffRec) -> Result<(), StoreError> {
        records::put(
            &mut self.store,
            Tree::Staff,
            &staff_key(&rec.office, &rec.user),
            rec,
        )
    }

    fn staff_list(&self, office: &OfficeNumber) -> Result<Vec<StaffView>, StoreError> {
        let prefix = staff_key(office, "");
        let mut end = prefix.clone();
        end.push(0xff);
        let mut out = Vec::new();
        for (k, v) in self.store.range(Tree::Staff, &prefix, Some(&end), 10_000)? {
            if let Some(who) = k
                .strip_prefix(prefix.as_slice())
                .and_then(|u| u.strip_prefix(b"~"))
            {
                // A grant to another office's staff member.
                let g: GrantRec = records::decode(Tree::Staff, &v)?;
                out.push(StaffView {
                    user: String::from_utf8_lossy(who).into_owned(),
                    admin: g.admin,
                    totp: false,
                    locked_until_ms: None,
                    created_ms: g.granted_ms,
                    granted: true,
                });
                continue;
            }
            let r: StaffRec = records::decode(Tree::Staff, &v)?;
            out.push(view(&r, self.now));
        }
        Ok(out)
    }

    pub(super) fn staff_add(
        &mut self,
        auth: &Auth,
        office: Option<OfficeNumber>,
        user: String,
        password: String,
        admin: bool,
    ) -> Result<ApiReply, StoreError> {
        let office = match self.managed_office(self.caller(auth), office) {
            Ok(o) => o,
            Err(r) => return Ok(r),
        };
        if !user_id_ok(&user) {
            return Ok(ApiReply::BadRequest(
                "a user ID is 1 to 64 characters of A-Z a-z 0-9 . _ - @".into(),
            ));
        }
        if self.staff_rec(&office, &user)?.is_some() {
            return Ok(ApiReply::Conflict(format!(
                "user {user} exists at office {office}"
            )));
        }
        let rec = StaffRec {
            office: office.clone(),
            user: user.clone(),
            password,
            admin,
            totp: Vec::new(),
            failed: 0,
            locked_until_ms: 0,
            created_ms: self.now,
        };
        self.put_staff(&rec)?;
        self.audit(
            "staff_added",
            None,
            Some(&office),
            format!("{user}{}", if admin { " (administrator)" } else { "" }),
        )?;
        Ok(ApiReply::Staff(self.staff_list(&office)?))
    }

    pub(super) fn staff_remove(
        &mut self,
        auth: &Auth,
        office: Option<OfficeNumber>,
        user: &str,
    ) -> Result<ApiReply, StoreError> {
        let office = match self.managed_office(self.caller(auth), office) {
            Ok(o) => o,
            Err(r) => return Ok(r),
        };
        if self.staff_rec(&office, user)?.is_none() {
            return Ok(ApiReply::NotFound(format!(
                "no user {user} at office {office}"
            )));
        }
        self.store.delete(Tree::Staff, &staff_key(&office, user))?;
        self.end_sessions_of(&office, user)?;
        self.audit("staff_removed", None, Some(&office), user.to_owned())?;
        Ok(ApiReply::Staff(self.staff_list(&office)?))
    }

    pub(super) fn staff_list_for(
        &mut self,
        auth: &Auth,
        office: Option<OfficeNumber>,
    ) -> Result<ApiReply, StoreError> {
        match self.managed_office(self.caller(auth), office) {
            Ok(o) => Ok(ApiReply::Staff(self.staff_list(&o)?)),
            Err(r) => Ok(r),
        }
    }

    /// A new password: set by the office's administrators (or the operator) for anyone,
    /// or by a staff member for themself. It unlocks the account and ends its sessions
    /// (but the caller's own).
    pub(super) fn staff_password(
        &mut self,
        auth: &Auth,
        office: Option<OfficeNumber>,
        user: &str,
        password: String,
    ) -> Result<ApiReply, StoreError> {
        let caller = self.caller(auth);
        let office = match &caller {
            Some(Caller::Staff(s))
                if s.user == user && office.as_ref().is_none_or(|o| o == s.home_office()) =>
            {
                s.home_office().clone()
            }
            _ => match self.managed_office(caller, office) {
                Ok(o) => o,
                Err(r) => return Ok(r),
            },
        };
        let Some(mut rec) = self.staff_rec(&office, user)? else {
            return Ok(ApiReply::NotFound(format!(
                "no user {user} at office {office}"
            )));
        };
        rec.password = password;
        rec.failed = 0;
        rec.locked_until_ms = 0;
        self.put_staff(&rec)?;
        let keep = match auth {
            Auth::Office(h) => self.sessions.get(h).cloned().map(|s| (*h, s)),
            Auth::Operator => None,
        };
        self.end_sessions_of(&office, user)?;
        if let Some((h, s)) = keep {
            records::put(&mut self.store, Tree::Sessions, &h, &s)?;
            self.sessions.insert(h, s);
        }
        self.audit("staff_password_set", None, Some(&office), user.to_owned())?;
        Ok(ApiReply::Done)
    }

    /// Enrols a TOTP secret for the caller's own account (`secret` non-empty), or removes
    /// one (the caller's own, or anyone's by an administrator: a lost phone).
    pub(super) fn staff_totp(
        &mut self,
        auth: &Auth,
        user: Option<String>,
        secret: Vec<u8>,
    ) -> Result<ApiReply, StoreError> {
        let caller = self.caller(auth);
        let (office, user) = match (&caller, user) {
            (Some(Caller::Staff(s)), None) => (s.home_office().clone(), s.user.clone()),
            (Some(Caller::Staff(s)), Some(u)) if u == s.user => (s.home_office().clone(), u),
            (_, Some(u)) if secret.is_empty() => match self.managed_office(caller, None) {
                Ok(o) => (o, u),
                Err(r) => return Ok(r),
            },
            (None, _) => return Ok(ApiReply::Unauthorized),
            _ => {
                return Ok(ApiReply::Forbidden(
                    "a second factor is enrolled by its owner, signed in".into(),
                ));
            }
        };
        let Some(mut rec) = self.staff_rec(&office, &user)? else {
            return Ok(ApiReply::NotFound(format!(
                "no user {user} at office {office}"
            )));
        };
        let enrol = !secret.is_empty();
        rec.totp = secret;
        self.put_staff(&rec)?;
        if enrol {
            // Enrolled: this account's sessions may do everything again.
            let freed: Vec<[u8; 32]> = self
                .sessions
                .iter()
                .filter(|(_, s)| s.home_office() == &office && s.user == user && s.must_enrol)
                .map(|(h, _)| *h)
                .collect();
            for h in freed {
                if let Some(mut s) = self.sessions.get(&h).cloned() {
                    s.must_enrol = false;
                    records::put(&mut self.store, Tree::Sessions, &h, &s)?;
                    self.sessions.insert(h, s);
                }
            }
        }
        self.audit(
            if enrol {
                "staff_totp_enrolled"
            } else {
                "staff_totp_removed"
            },
            None,
            Some(&office),
            user,
        )?;
        Ok(ApiReply::Done)
    }

    /// What the edge needs to check a sign-in (it verifies off the core's thread).
    pub(super) fn staff_credentials(
        &self,
        office: &OfficeNumber,
        user: &str,
    ) -> Result<ApiReply, StoreError> {
        Ok(match self.staff_rec(office, user)? {
            Some(r) => ApiReply::StaffCredentials(StaffCredentials {
                password: r.password,
                totp: r.totp,
                locked_until_ms: r.locked_until_ms,
            }),
            None => ApiReply::NotFound("no such user".into()),
        })
    }

    /// The edge's verdict on a sign-in: a session for `session_hash`, or one more failure
    /// (the account locks after [`SIGN_IN_FAILURES_MAX`] in a row, for [`LOCK_MS`]).
    pub(super) fn sign_in(
        &mut self,
        office: &OfficeNumber,
        user: &str,
        ok: bool,
        session_hash: [u8; 32],
    ) -> Result<ApiReply, StoreError> {
        let Some(mut rec) = self.staff_rec(office, user)? else {
            return Ok(ApiReply::SignInRefused { locked_until_ms: 0 });
        };
        if rec.locked_until_ms > self.now {
            return Ok(ApiReply::SignInRefused {
                locked_until_ms: rec.locked_until_ms,
            });
        }
        if !ok {
            rec.failed += 1;
            if rec.failed >= SIGN_IN_FAILURES_MAX {
                rec.failed = 0;
                rec.locked_until_ms = self.now + LOCK_MS;
                self.audit(
                    "staff_locked",
                    None,
                    Some(office),
                    format!("{user}: {SIGN_IN_FAILURES_MAX} failed sign-ins"),
                )?;
            }
            self.put_staff(&rec)?;
            return Ok(ApiReply::SignInRefused {
                locked_until_ms: rec.locked_until_ms,
            });
        }
        if rec.failed != 0 {
            rec.failed = 0;
            self.put_staff(&rec)?;
        }
        // The oldest sessions of this user go beyond the cap.
        let mut mine: Vec<(u64, [u8; 32])> = self
            .sessions
            .iter()
            .filter(|(_, s)| s.home_office() == office && s.user == user)
            .map(|(h, s)| (s.created_ms, *h))
            .collect();
        mine.sort();
        while mine.len() >= SESSIONS_PER_USER_MAX {
            let (_, h) = mine.remove(0);
            self.end_session(&h)?;
        }
        let s = SessionRec {
            office: office.clone(),
            user: user.to_owned(),
            admin: rec.admin,
            created_ms: self.now,
            last_ms: self.now,
            must_enrol: rec.totp.is_empty()
                && self.offices.get(office).is_some_and(|o| o.totp_required),
            home: None,
        };
        records::put(&mut self.store, Tree::Sessions, &session_hash, &s)?;
        self.sessions.insert(session_hash, s);
        Ok(match self.session_view(&Auth::Office(session_hash)) {
            Some(v) => ApiReply::SignedIn(v),
            None => ApiReply::SignInRefused { locked_until_ms: 0 },
        })
    }

    /// Ends the caller's session, or every session of the caller's account.
    pub(super) fn sign_out(
        &mut self,
        auth: &Auth,
        everywhere: bool,
    ) -> Result<ApiReply, StoreError> {
        let Auth::Office(h) = auth else {
            return Ok(ApiReply::Unauthorized);
        };
        let Some(s) = self.sessions.get(h).cloned() else {
            return Ok(ApiReply::Unauthorized);
        };
        if everywhere {
            self.end_sessions_of(s.home_office(), &s.user)?;
        } else {
            self.end_session(h)?;
        }
        Ok(ApiReply::Done)
    }

    /// An office released here takes its staff and their sessions with it.
    pub(super) fn drop_staff_of(&mut self, office: &OfficeNumber) -> Result<(), StoreError> {
        let prefix = staff_key(office, "");
        let mut end = prefix.clone();
        end.push(0xff);
        for (k, _) in self
            .store
            .range(Tree::Staff, &prefix, Some(&end), usize::MAX)?
        {
            self.store.delete(Tree::Staff, &k)?;
        }
        let ended: Vec<[u8; 32]> = self
            .sessions
            .iter()
            .filter(|(_, s)| &s.office == office || s.home_office() == office)
            .map(|(h, _)| *h)
            .collect();
        for h in ended {
            self.end_session(&h)?;
        }
        Ok(())
    }
}

fn view(r: &StaffRec, now: u64) -> StaffView {
    StaffView {
        user: r.user.clone(),
        admin: r.admin,
        totp: !r.totp.is_empty(),
        locked_until_ms: (r.locked_until_ms > now).then_some(r.locked_until_ms),
        created_ms: r.created_ms,
        granted: false,
    }
}
