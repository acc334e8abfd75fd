//! API commands: authentication, then dispatch. An office sees only its own data: every
//! lookup is keyed by the authenticated office, and another office's ids are "not found".

use renkei_protocol::ids::OfficeNumber;

use super::Core;
use super::io::{ApiCommand, ApiId, ApiReply, Auth};
use super::views::StatusView;
use crate::store::{Store, StoreError};

impl<S: Store> Core<S> {
    fn office_of(&self, auth: &Auth) -> Option<OfficeNumber> {
        match auth {
            Auth::Office(hash) => self
                .tokens
                .get(hash)
                .cloned()
                .or_else(|| self.session_office(hash)),
            Auth::Operator => None,
        }
    }

    /// Runs command `id`; `None` when its answer comes later (a submission out for
    /// sealing).
    pub(super) fn api(
        &mut self,
        id: ApiId,
        auth: Auth,
        cmd: ApiCommand,
    ) -> Result<Option<ApiReply>, StoreError> {
        let operator = matches!(auth, Auth::Operator);
        self.touch_session(&auth)?;
        if self.must_enrol(&auth)
            && !matches!(
                cmd,
                ApiCommand::WhoAmI | ApiCommand::StaffTotp { .. } | ApiCommand::SignOut { .. }
            )
        {
            return Ok(Some(ApiReply::Forbidden(
                "this office requires a second factor: enrol an authenticator app first".into(),
            )));
        }
        let office = self.office_of(&auth);
        let need_office = || ApiReply::Unauthorized;
        let need_operator =
            || ApiReply::Forbidden("operator command; not available to offices".into());
        Ok(Some(match cmd {
            ApiCommand::Submit { unit, supersedes } => match office {
                Some(o) => return self.submit(id, o, unit, supersedes),
                None => need_office(),
            },
            ApiCommand::Inbox {
                latest_only,
                before,
                limit,
            } => match office {
                Some(o) => self.inbox_page(&o, latest_only, before, limit)?,
                None => need_office(),
            },
            ApiCommand::Fetch { id, name } => match office {
                Some(o) => self.fetch(&o, id, Some(&name))?,
                None => need_office(),
            },
            ApiCommand::FetchUnit { id } => match office {
                Some(o) => self.fetch(&o, id, None)?,
                None => need_office(),
            },
            ApiCommand::Sent { id } => match office {
                Some(o) => self.sent_list(&o, id)?,
                None => need_office(),
            },
            ApiCommand::SentPage { before, limit } => match office {
                Some(o) => self.sent_page(&o, before, limit)?,
                None => need_office(),
            },
            ApiCommand::Proof { id } => match office {
                Some(o) => self.proof(&o, id)?,
                None => need_office(),
            },
            ApiCommand::Certificate { id } => match office {
                Some(o) => self.certificate(&o, id)?,
                None => need_office(),
            },
            ApiCommand::Lookup { office: asked } => match (office, operator) {
                (Some(_), _) | (None, true) => ApiReply::Directory(self.lookup(&asked)),
                _ => need_office(),
            },
            ApiCommand::WhoAmI => match office.and_then(|o| self.office_view_of(&o)) {
                Some(mut v) => {
                    v.staff = self.session_view(&auth);
                    if let Some(st) = v.staff.as_mut() {
                        let offices = self.offices_of_session(&auth)?;
                        if offices.len() > 1 {
                            st.offices = offices;
                        }
                    }
                    ApiReply::Office(v)
                }
                None => need_office(),
            },
            ApiCommand::StaffAdd {
                office: o,
                user,
                password,
                admin,
            } => self.staff_add(&auth, o, user, password, admin)?,
            ApiCommand::StaffRemove { office: o, user } => self.staff_remove(&auth, o, &user)?,
            ApiCommand::StaffList { office: o } => self.staff_list_for(&auth, o)?,
            ApiCommand::StaffPassword {
                office: o,
                user,
                password,
            } => self.staff_password(&auth, o, &user, password)?,
            ApiCommand::StaffTotp { user, secret } => self.staff_totp(&auth, user, secret)?,
            ApiCommand::StaffCredentials { office: o, user } if operator => {
                self.staff_credentials(&o, &user)?
            }
            ApiCommand::SignIn {
                office: o,
                user,
                ok,
                session_hash,
            } if operator => self.sign_in(&o, &user, ok, session_hash)?,
            ApiCommand::SignOut { everywhere } => self.sign_out(&auth, everywhere)?,
            ApiCommand::StaffGrant { home, user, admin } => {
                self.staff_grant(&auth, home, &user, admin)?
            }
            ApiCommand::SwitchOffice { office: o } => self.switch_office(&auth, o)?,
            ApiCommand::SetTotpRequired { required } => match self.office_admin_of(&auth) {
                Some(o) => self.set_totp_required(&o, required)?,
                None if office.is_some() => ApiReply::Forbidden(
                    "the second-factor rule is set by the office's administrators".into(),
                ),
                None => need_office(),
            },
            ApiCommand::SetNotify { email } => match self.office_admin_of(&auth) {
                Some(o) => self.set_notify(&o, email)?,
                None if office.is_some() => ApiReply::Forbidden(
                    "e-mail notices are set by the office's administrators".into(),
                ),
                None => need_office(),
            },
            ApiCommand::AddOffice {
                office: o,
                kinds,
                name,
                token_hash,
            } if operator => {
                let exists = self.offices.contains_key(&o);
                match self.add_office(o, kinds, name, token_hash)? {
                    Ok(v) => ApiReply::Office(v),
                    Err(why) if exists => ApiReply::Conflict(why),
                    Err(why) => ApiReply::Forbidden(why),
                }
            }
            ApiCommand::AssignOffice { assignment } if operator => {
                match self.install_assignment(&assignment)? {
                    Ok(()) => ApiReply::Done,
                    Err(why) => ApiReply::BadRequest(why),
                }
            }
            ApiCommand::RotateToken {
                office: o,
                token_hash,
            } if operator => match self.rotate_token(&o, token_hash)? {
                Some(v) => ApiReply::Office(v),
                None => ApiReply::NotFound(format!("office {o} is not homed here")),
            },
            ApiCommand::RemoveOffice { office: o } if operator => {
                if self.remove_office(&o)? {
                    ApiReply::Done
                } else {
                    ApiReply::NotFound(format!("office {o} is not homed here"))
                }
            }
            ApiCommand::ListOffices if operator => ApiReply::Offices(self.office_views()),
            ApiCommand::SetRoster { roster } if operator => match self.install_roster(&roster)? {
                Ok(_) => ApiReply::Done,
                Err(why) => ApiReply::BadRequest(why),
            },
            ApiCommand::Status if operator => ApiReply::Status(StatusView {
                operator: self.keys.id().to_string(),
                offices: self.offices.len(),
                outbox: self.schedule.len() + self.in_flight_envelopes(),
                receipt_outbox: self.receipt_schedule.len() + self.in_flight_receipts(),
                roster_serial: self.roster.as_ref().map(|r| r.roster().serial),
                roster_issued_at_ms: self.roster.as_ref().map(|r| r.roster().issued_at_ms),
                roster_warning: self.roster_warning(),
                peers_up: self.peers_up.iter().map(|p| p.to_string()).collect(),
                binding_conflicts: self.conflict_notes(),
                counters: self.counters.clone(),
            }),
            ApiCommand::AuditExport { office: o, month }
                if operator || self.office_admin_of(&auth).as_ref() == Some(&o) =>
            {
                self.audit_export(&o, &month)?
            }
            ApiCommand::AddOffice { .. }
            | ApiCommand::RotateToken { .. }
            | ApiCommand::AssignOffice { .. }
            | ApiCommand::AuditExport { .. }
            | ApiCommand::RemoveOffice { .. }
            | ApiCommand::ListOffices
            | ApiCommand::SetRoster { .. }
            | ApiCommand::Status
            | ApiCommand::StaffCredentials { .. }
            | ApiCommand::SignIn { .. } => need_operator(),
        }))
    }
}
