//! What the API shows: JSON-serialisable views of sent items, inbox entries, receipts,
//! offices and the directory. Ids are hex, operator ids base32, times milliseconds.

use serde::Serialize;

use super::io::Counters;

/// One file of a unit.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct FileView {
    /// Standard file name.
    pub name: String,
    /// Bytes.
    pub size: u64,
    /// SHA-256, hex.
    pub sha256: String,
}

/// One receipt.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct ReceiptView {
    /// accepted | delivered | retrieved | rejected | expired.
    pub kind: String,
    /// Signing node (base32 operator id).
    pub node: String,
    /// Its roster name, when known.
    pub node_name: Option<String>,
    /// Signing time.
    pub at_ms: u64,
    /// Hop number of an `accepted` receipt.
    pub hop: Option<u8>,
    /// Rejection code.
    pub code: Option<String>,
    /// Rejection text.
    pub text: Option<String>,
}

/// A sent unit and its receipts.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct SentView {
    /// Envelope id.
    pub id: String,
    /// Always "accepted" in the submit reply; the current status elsewhere:
    /// accepted | relayed | delivered | retrieved | rejected | expired.
    pub status: String,
    /// Sending office.
    pub from: String,
    /// Sending kind.
    pub from_kind: String,
    /// Receiving office.
    pub to: String,
    /// Receiving kind.
    pub to_kind: String,
    /// The receiving office's name, when it is homed at this node too.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub to_name: Option<String>,
    /// D1…D7.
    pub kind: String,
    /// 対象年月 / 計画作成日.
    pub subject: Option<String>,
    /// ファイル連番.
    pub stamp: String,
    /// The files.
    pub files: Vec<FileView>,
    /// Creation time.
    pub created_at_ms: u64,
    /// Replaced envelope.
    pub supersedes: Option<String>,
    /// The destination operator (base32).
    pub destination: String,
    /// Receipts, oldest first.
    pub receipts: Vec<ReceiptView>,
}

/// A received unit.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct InboxView {
    /// Envelope id.
    pub id: String,
    /// Sending office.
    pub from: String,
    /// Sending kind.
    pub from_kind: String,
    /// The sending office's name, when it is homed at this node too.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub from_name: Option<String>,
    /// The origin operator (base32 id) that signed the unit; the sending office is bound to
    /// it (checked on arrival).
    pub origin: String,
    /// Its name in the roster (this node's own name when it is this node).
    pub origin_name: Option<String>,
    /// Receiving kind.
    pub to_kind: String,
    /// D1…D7.
    pub kind: String,
    /// 対象年月 / 計画作成日.
    pub subject: Option<String>,
    /// ファイル連番.
    pub stamp: String,
    /// The files.
    pub files: Vec<FileView>,
    /// Arrival time.
    pub received_at_ms: u64,
    /// The envelope this one replaces.
    pub supersedes: Option<String>,
    /// The envelope that replaced this one (fully).
    pub superseded_by: Option<String>,
    /// When every file of the unit had been downloaded (the `Retrieved` receipt's time).
    pub retrieved_at_ms: Option<u64>,
    /// Names of the files downloaded so far.
    pub fetched: Vec<String>,
    /// Whether this is the latest for at least one of its users (and month).
    pub latest: bool,
    /// Users (insured persons) in the unit.
    pub users: usize,
    /// Their 被保険者番号 (sorted; empty for units received before they were kept).
    pub insured: Vec<String>,
    /// Their names where the unit's files carry them (利用者補足情報, 利用者基本情報).
    pub names: Vec<UserNameView>,
}

/// A user's name as a unit's files give it.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct UserNameView {
    /// 被保険者番号.
    pub insured: String,
    /// 利用者氏名.
    pub name: String,
    /// 利用者氏名フリガナ.
    pub kana: String,
}

/// Directory answer: can that office receive electronically, and where.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct DirectoryView {
    /// The office asked about.
    pub office: String,
    /// Whether it is bound to an operator of the federation.
    pub reachable: bool,
    /// Operator name.
    pub operator_name: Option<String>,
    /// Operator id (base32).
    pub operator: Option<String>,
    /// Bound since.
    pub since_ms: Option<u64>,
    /// Service kinds.
    pub kinds: Vec<String>,
    /// Homed at this node.
    pub homed_here: bool,
}

/// An office homed at this node.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct OfficeView {
    /// 事業所番号.
    pub office: String,
    /// Name.
    pub name: String,
    /// Service kinds.
    pub kinds: Vec<String>,
    /// The address told of new arrivals by e-mail.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub notify: Option<String>,
    /// Staff must enrol a second factor before using the page.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub totp_required: bool,
    /// The signed-in staff member, when the caller is a session (not an API token).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub staff: Option<SessionView>,
}

/// A staff account, as its office's administrators see it (no secrets).
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct StaffView {
    /// User ID.
    pub user: String,
    /// May manage the office's staff.
    pub admin: bool,
    /// A TOTP second factor is enrolled.
    pub totp: bool,
    /// Locked after failed sign-ins until then (ms since the epoch).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub locked_until_ms: Option<u64>,
    /// Created (ms since the epoch).
    pub created_ms: u64,
    /// A staff member of another office granted to act for this one (`user` is then
    /// `OFFICE:USER`).
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub granted: bool,
}

/// A signed-in staff member's session.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct SessionView {
    /// The office.
    pub office: renkei_protocol::ids::OfficeNumber,
    /// User ID.
    pub user: String,
    /// May manage the office's staff.
    pub admin: bool,
    /// The session ends then unless used again (idle), and at the latest then (absolute).
    pub expires_at_ms: u64,
    /// The office requires a second factor this account has not enrolled: the session
    /// may only enrol one (and sign out) until it does.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub must_enrol: bool,
    /// The offices this account may act for (its own first), when more than one.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub offices: Vec<String>,
}

/// What the edge needs to check a sign-in.
#[derive(Debug, Clone)]
pub struct StaffCredentials {
    /// argon2id PHC string.
    pub password: String,
    /// TOTP secret (empty: none enrolled).
    pub totp: Vec<u8>,
    /// Locked until then (ms since the epoch; 0: not locked).
    pub locked_until_ms: u64,
}

/// Node status.
#[derive(Debug, Clone, Serialize)]
pub struct StatusView {
    /// This node (base32).
    pub operator: String,
    /// Offices homed here.
    pub offices: usize,
    /// Envelopes awaiting a hop acknowledgement.
    pub outbox: usize,
    /// Receipts awaiting forwarding.
    pub receipt_outbox: usize,
    /// Roster serial, if a roster is installed.
    pub roster_serial: Option<u64>,
    /// When the installed roster was issued.
    pub roster_issued_at_ms: Option<u64>,
    /// Set when the roster is older than `delivery.roster_max_age_days`: what to do.
    pub roster_warning: Option<String>,
    /// Peers currently connected.
    pub peers_up: Vec<String>,
    /// Binding conflicts (office: holder vs claimant).
    pub binding_conflicts: Vec<String>,
    /// Counters.
    pub counters: Counters,
}
