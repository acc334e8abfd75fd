//! What goes into the core and what comes out: inputs, effects, API commands and replies.

use renkei_protocol::ids::{EnvelopeId, OfficeNumber, OperatorId, ServiceKind};
use renkei_protocol::wire;
use serde::Serialize;

use super::unit::{PreparedUnit, UnitFinding};
use super::views::{DirectoryView, InboxView, OfficeView, SentView, StatusView};

/// Most sent units listed in one answer.
pub const SENT_PAGE_MAX: usize = 10_000;
/// Most inbox units listed in one page.
pub const INBOX_PAGE_MAX: usize = 10_000;
/// Default inbox page size.
pub const INBOX_PAGE_DEFAULT: usize = 1_000;
/// Inbox index entries read for one page at most (with `latest`, superseded units are read
/// and skipped): bounds the core's work per request.
pub const INBOX_SCAN_MAX: usize = 20_000;

/// A page of an office's inbox, newest received first.
#[derive(Debug, Clone)]
pub struct InboxPage {
    /// The units.
    pub items: Vec<InboxView>,
    /// The last unit read, when older ones remain: ask again with `before` = this.
    pub next: Option<EnvelopeId>,
}

/// Correlates an API command with its reply.
pub type ApiId = u64;
/// Correlates an inbound peer request with its response.
pub type InboundId = u64;
/// Correlates an outbound peer request with its response or failure.
pub type OutboundId = u64;

/// Something that happened, fed to [`crate::Core::handle`].
#[derive(Debug, Clone)]
pub enum Input {
    /// A command from the HTTP API or the operator CLI.
    Api {
        /// Reply correlation.
        id: ApiId,
        /// Who asks.
        auth: Auth,
        /// What.
        cmd: ApiCommand,
    },
    /// A request from a peer node (already authenticated as `from` by the transport).
    Inbound {
        /// Response correlation.
        id: InboundId,
        /// The peer.
        from: OperatorId,
        /// The request.
        request: wire::Request,
    },
    /// A peer's delivery (`Request::Deliver`) whose envelopes the prepare stage has
    /// decoded, verified and, for this node, opened and checked.
    Deliver {
        /// Response correlation.
        id: InboundId,
        /// The peer.
        from: OperatorId,
        /// The envelopes, in request order.
        envelopes: Vec<super::prepared::PreparedEnvelope>,
    },
    /// A peer's `Request::Receipts` whose receipts the prepare stage has decoded and
    /// verified.
    Receipts {
        /// Response correlation.
        id: InboundId,
        /// The peer.
        from: OperatorId,
        /// The receipts, in request order.
        receipts: Vec<super::prepared::CheckedReceipt>,
    },
    /// A peer's response to one of our requests, prepared (its receipts verified).
    Answer {
        /// Our request.
        id: OutboundId,
        /// The peer.
        from: OperatorId,
        /// Its response.
        response: super::prepared::PreparedResponse,
    },
    /// A peer's response to one of our requests.
    Response {
        /// Our request.
        id: OutboundId,
        /// The peer.
        from: OperatorId,
        /// Its response.
        response: wire::Response,
    },
    /// One of our requests failed in transport (timeout, connection refused, …). Whether
    /// the peer received it is unknown: everything in it is retried (the peer dedups).
    SendFailed {
        /// Our request.
        id: OutboundId,
        /// The peer.
        to: OperatorId,
        /// Transport detail.
        error: String,
    },
    /// A submission sealed and signed by the prepare stage ([`Effect::Seal`]'s job, run).
    Sealed {
        /// The job's ticket.
        ticket: u64,
        /// What [`super::sealing::SealJob::run`] gave.
        sealed: super::sealing::Sealed,
    },
    /// A connection to a peer came up.
    PeerUp(OperatorId),
    /// The last connection to a peer went down.
    PeerDown(OperatorId),
    /// Time passed (a requested wake-up, or a periodic tick).
    Tick,
}

/// Who issues an API command.
#[derive(Debug, Clone)]
pub enum Auth {
    /// An office, by the SHA-256 of its bearer token.
    Office([u8; 32]),
    /// The node's operator (local CLI).
    Operator,
}

/// A command from the API.
#[derive(Debug, Clone)]
pub enum ApiCommand {
    /// Submit a send unit (the files with their standard names).
    Submit {
        /// The files, hashed and checked by the prepare stage.
        unit: PreparedUnit,
        /// The envelope this unit replaces, if the sender says so.
        supersedes: Option<EnvelopeId>,
    },
    /// A page of the inbox, newest received first.
    Inbox {
        /// Only the latest entry of each document slot.
        latest_only: bool,
        /// Only units received before this one (the previous page's `next`).
        before: Option<EnvelopeId>,
        /// At most this many (capped at [`INBOX_PAGE_MAX`]).
        limit: usize,
    },
    /// Download one file of a received unit.
    Fetch {
        /// The envelope.
        id: EnvelopeId,
        /// The file name.
        name: String,
    },
    /// Download every file of a received unit at once (what signs `Retrieved` in one go).
    FetchUnit {
        /// The envelope.
        id: EnvelopeId,
    },
    /// Sent units (one, or the newest [`SENT_PAGE_MAX`] newest first).
    Sent {
        /// One envelope, or all.
        id: Option<EnvelopeId>,
    },
    /// A page of sent units, newest first.
    SentPage {
        /// Only units sent before this one (the last id of the previous page).
        before: Option<EnvelopeId>,
        /// At most this many (capped at [`SENT_PAGE_MAX`]).
        limit: usize,
    },
    /// The proof bundle of a sent (or received) envelope.
    Proof {
        /// The envelope.
        id: EnvelopeId,
    },
    /// Can this office receive electronically, and where?
    Lookup {
        /// The office asked about.
        office: OfficeNumber,
    },
    /// Which office does this token belong to?
    WhoAmI,
    /// Operator: register an office homed here.
    AddOffice {
        /// 事業所番号.
        office: OfficeNumber,
        /// Service kinds.
        kinds: Vec<ServiceKind>,
        /// Display name.
        name: String,
        /// SHA-256 of the API token.
        token_hash: [u8; 32],
    },
    /// Operator: replace an office's API token (the old one is revoked).
    RotateToken {
        /// 事業所番号.
        office: OfficeNumber,
        /// SHA-256 of the new token.
        token_hash: [u8; 32],
    },
    /// Operator: install the federation authority's assignment of an office homed here
    /// (a binding signed by the authority: `renkei federation assign`).
    AssignOffice {
        /// The signed assignment's bytes.
        assignment: Vec<u8>,
    },
    /// Operator: release an office (its binding is withdrawn).
    RemoveOffice {
        /// 事業所番号.
        office: OfficeNumber,
    },
    /// Operator: list offices homed here.
    ListOffices,
    /// Operator: install a newer signed roster.
    SetRoster {
        /// Encoded signed roster.
        roster: Vec<u8>,
    },
    /// Operator: node status.
    Status,
    /// Operator: an office's audit export for one month (運営指導).
    AuditExport {
        /// The office (homed here).
        office: OfficeNumber,
        /// `YYYYMM`.
        month: String,
    },
    /// Add a staff account (the operator names the office; an office's token or an
    /// administrator's session adds to its own).
    StaffAdd {
        /// The office (operator only).
        office: Option<OfficeNumber>,
        /// User ID.
        user: String,
        /// argon2id PHC string of the password.
        password: String,
        /// May manage the office's staff.
        admin: bool,
    },
    /// Remove a staff account (its sessions end).
    StaffRemove {
        /// The office (operator only).
        office: Option<OfficeNumber>,
        /// User ID.
        user: String,
    },
    /// The office's staff accounts.
    StaffList {
        /// The office (operator only).
        office: Option<OfficeNumber>,
    },
    /// A new password (an administrator for anyone, a staff member for themself).
    StaffPassword {
        /// The office (operator only).
        office: Option<OfficeNumber>,
        /// User ID.
        user: String,
        /// argon2id PHC string.
        password: String,
    },
    /// Enrol (non-empty secret, own account) or remove (empty) a TOTP second factor.
    StaffTotp {
        /// User ID (`None`: the caller).
        user: Option<String>,
        /// The secret.
        secret: Vec<u8>,
    },
    /// The edge's sign-in, first step: the account's password hash and TOTP secret.
    StaffCredentials {
        /// The office.
        office: OfficeNumber,
        /// User ID.
        user: String,
    },
    /// The edge's sign-in, second step: its verdict; a session on success.
    SignIn {
        /// The office.
        office: OfficeNumber,
        /// User ID.
        user: String,
        /// Password (and code, if enrolled) verified.
        ok: bool,
        /// SHA-256 of the session cookie.
        session_hash: [u8; 32],
    },
    /// The certificate of a unit the office sent or received (送信・受信証明).
    Certificate {
        /// Envelope id.
        id: EnvelopeId,
    },
    /// Grant (`admin: Some(..)`) or revoke (`None`) a staff member of another office homed
    /// here the right to act for the caller's office (its administrators).
    StaffGrant {
        /// The staff member's own office.
        home: OfficeNumber,
        /// User ID.
        user: String,
        /// As an administrator of the caller's office; `None` revokes.
        admin: Option<bool>,
    },
    /// Move the caller's session to another office its account was granted (or back).
    SwitchOffice {
        /// The office.
        office: OfficeNumber,
    },
    /// Require (or not) a second factor of the office's staff (its administrators).
    SetTotpRequired {
        /// Required.
        required: bool,
    },
    /// Set (or clear, `None`) the address told of new arrivals by e-mail (the office's
    /// administrators).
    SetNotify {
        /// The address.
        email: Option<String>,
    },
    /// End the caller's session, or all of its account's sessions.
    SignOut {
        /// Every session of the account.
        everywhere: bool,
    },
}

/// A file returned by [`ApiCommand::Fetch`].
#[derive(Debug, Clone)]
pub struct FileReply {
    /// File name.
    pub name: String,
    /// Original bytes.
    pub bytes: Vec<u8>,
}

/// The answer to an API command.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone)]
pub enum ApiReply {
    /// A unit was accepted (durably, once this reply is released).
    Accepted(SentView),
    /// The unit fails validation.
    Invalid(Vec<UnitFinding>),
    /// The token is unknown.
    Unauthorized,
    /// The caller may not do this (e.g. send as another office).
    Forbidden(String),
    /// Nothing of that id visible to the caller.
    NotFound(String),
    /// The request conflicts with what exists (an office registered already).
    Conflict(String),
    /// The request is malformed.
    BadRequest(String),
    /// The destination cannot be reached (not bound in the federation).
    Unroutable(String),
    /// A page of inbox entries.
    InboxPage(InboxPage),
    /// A file.
    File(FileReply),
    /// Every file of a unit, in header order.
    Files(Vec<FileReply>),
    /// Sent units.
    Sent(Vec<SentView>),
    /// A proof bundle (canonical CBOR).
    Proof(Vec<u8>),
    /// Directory answer.
    Directory(DirectoryView),
    /// The caller's office.
    Office(OfficeView),
    /// Offices homed here.
    Offices(Vec<OfficeView>),
    /// Node status.
    Status(StatusView),
    /// Done, nothing to return.
    Done,
    /// The node failed internally (store error); nothing was promised.
    Internal(String),
    /// An audit export (canonical CBOR, `renkei_protocol::export::AuditExport`).
    AuditExport(Vec<u8>),
    /// An office's staff accounts.
    Staff(Vec<super::views::StaffView>),
    /// A sign-in's credentials (for the edge).
    StaffCredentials(super::views::StaffCredentials),
    /// Signed in: the session.
    SignedIn(super::views::SessionView),
    /// A unit's certificate.
    Certificate(Box<super::certificate::CertificateView>),
    /// Sign-in refused (wrong password or code, unknown user, or locked until then).
    SignInRefused {
        /// Locked until then (ms since the epoch; 0: not locked).
        locked_until_ms: u64,
    },
}

#[allow(clippy::large_enum_variant)]
/// What the core asks its driver to do. Drivers release a batch's effects only after
/// committing the store.
#[derive(Debug, Clone)]
pub enum Effect {
    /// Send a request to a peer.
    Send {
        /// Correlation for the response.
        id: OutboundId,
        /// The peer.
        to: OperatorId,
        /// The request.
        request: wire::Request,
    },
    /// Answer a peer's request.
    Respond {
        /// The inbound request.
        id: InboundId,
        /// The answer.
        response: wire::Response,
    },
    /// Answer an API command.
    Reply {
        /// The command.
        id: ApiId,
        /// The answer.
        reply: ApiReply,
    },
    /// Run this pure job ([`super::sealing::SealJob::run`]) off the core's thread and feed
    /// its result back as [`Input::Sealed`] with the same ticket. The office's answer waits
    /// for it (and for the commit after it).
    Seal {
        /// Correlation for [`Input::Sealed`].
        ticket: u64,
        /// The work.
        job: super::sealing::SealJob,
    },
    /// Feed [`Input::Tick`] at (or after) this time.
    Wake {
        /// Milliseconds since the Unix epoch.
        at_ms: u64,
    },
    /// A roster was installed: the transport should admit exactly these operators on the
    /// relay protocol, know their addresses, and keep the relays connected.
    Roster {
        /// Every operator of the roster except this node.
        peers: Vec<RosterPeer>,
    },
    /// A unit arrived in an office's inbox and the office asked to be told by e-mail (the
    /// driver coalesces and sends; nothing of the unit's content is in it).
    Notify {
        /// The receiving office.
        office: OfficeNumber,
        /// Its notice address.
        email: String,
        /// The unit's data kind (D1…D7).
        kind: String,
        /// The sending office.
        from: OfficeNumber,
    },
}

/// One roster operator as the transport needs it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RosterPeer {
    /// Current key (and old keys still valid are listed as separate entries).
    pub id: OperatorId,
    /// Display name.
    pub name: String,
    /// libp2p multiaddresses (none for an old key: admitted, not dialled).
    pub addrs: Vec<String>,
    /// Whether it relays.
    pub relay: bool,
}

/// Counters exposed as metrics.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Counters {
    /// Units accepted from offices.
    pub submitted: u64,
    /// Envelopes accepted for relay from peers.
    pub relayed_in: u64,
    /// Envelopes delivered into local inboxes.
    pub delivered: u64,
    /// Definitive rejections issued.
    pub rejected: u64,
    /// Expired receipts issued.
    pub expired: u64,
    /// Duplicate envelopes answered from the dedup index.
    pub duplicates: u64,
    /// Delivery batches sent.
    pub batches_sent: u64,
    /// Failed or retried sends.
    pub retries: u64,
    /// Receipts received and stored.
    pub receipts_in: u64,
    /// Sent units that reached `delivered` (origin side).
    pub sent_delivered: u64,
    /// Binding conflicts seen.
    pub binding_conflicts: u64,
    /// Office bindings ignored because their signature does not verify (a binding equal
    /// to the one held is ignored before any check, whatever its signature).
    pub bindings_refused: u64,
    /// Inbound requests refused as a whole.
    pub refused: u64,
    /// Envelopes a next hop refused for a bad origin signature although this node sent
    /// bytes that verify: damaged in transit, sent again.
    pub damaged_in_transit: u64,
    /// Sent units that reached `delivered`, counted by the time from their acceptance to
    /// the destination's receipt: one count per bucket of [`DELIVERY_BUCKETS_MS`] (a unit in
    /// the first bucket whose bound it does not exceed), the last for longer ones.
    pub delivery_ms_buckets: [u64; DELIVERY_BUCKETS_MS.len() + 1],
    /// The sum of those times, ms.
    pub delivery_ms_sum: u64,
}

/// Upper bounds of the delivery-time buckets, ms (a hop on loopback to an hour of retries).
pub const DELIVERY_BUCKETS_MS: [u64; 12] = [
    5, 10, 25, 50, 100, 250, 500, 1_000, 5_000, 30_000, 300_000, 3_600_000,
];

impl Counters {
    /// Counts a unit delivered `ms` after it was accepted.
    pub fn delivered_after(&mut self, ms: u64) {
        let i = DELIVERY_BUCKETS_MS
            .iter()
            .position(|b| ms <= *b)
            .unwrap_or(DELIVERY_BUCKETS_MS.len());
        self.delivery_ms_buckets[i] += 1;
        self.delivery_ms_sum = self.delivery_ms_sum.saturating_add(ms);
    }
}
