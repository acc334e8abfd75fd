//! Node configuration: a TOML file in the node's directory (`renkei.toml`), with documented
//! defaults. `renkei init` writes one; docs/OPERATIONS.md is the reference.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::core::{CoreConfig, EXPIRY_MS_DEFAULT, RETRY_DELAY_MS_MAX};

/// The config file name inside a node directory.
pub const CONFIG_FILE: &str = "renkei.toml";
/// The key file name inside a node directory.
pub const KEY_FILE: &str = "operator.key";
/// The admin token file name inside a node directory.
pub const ADMIN_TOKEN_FILE: &str = "admin.token";
/// The token `GET /metrics` needs (created at the first start; 0600).
pub const METRICS_TOKEN_FILE: &str = "metrics.token";

/// A configuration problem.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file could not be read or written.
    #[error("{path}: {source}")]
    Io {
        /// File.
        path: PathBuf,
        /// Cause.
        source: std::io::Error,
    },
    /// The file is not valid TOML for this schema.
    #[error("{path}: {detail}")]
    Parse {
        /// File.
        path: PathBuf,
        /// What is wrong.
        detail: String,
    },
}

/// A peer to connect to at start (besides the roster's addresses).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct PeerConfig {
    /// Operator id (base32 or hex).
    pub id: String,
    /// libp2p multiaddresses.
    pub addrs: Vec<String>,
}

/// Delivery settings.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(default, deny_unknown_fields)]
pub struct DeliveryConfig {
    /// First retry delay (ms). Default 500.
    pub retry_base_ms: u64,
    /// Retry delay cap (ms). Default 300000 (5 min).
    pub retry_max_ms: u64,
    /// The origin gives up and issues an Expired receipt this long after submission (ms).
    /// Default 604800000 (7 days).
    pub expiry_ms: u64,
    /// Envelopes per delivery batch. Default 64.
    pub batch_envelopes_max: usize,
    /// Directory sync interval (ms). Default 30000.
    pub sync_interval_ms: u64,
    /// Envelopes created more than this far ahead of this node's clock are refused
    /// (`Malformed`, naming the times), and so are envelopes older than the expiry window
    /// plus the relay grace plus this (ms). Default 600000 (10 min).
    pub max_skew_ms: u64,
    /// A roster issued longer ago than this many days is reported in `renkei status`,
    /// `/metrics` (`renkei_roster_stale`) and the log. Default 30.
    pub roster_max_age_days: u64,
    /// Take other operators' office bindings only when the federation authority assigned
    /// them (`renkei federation assign`): a claim an operator signs alone is then ignored
    /// and shown as a conflict. Default false (claims count until an assignment exists).
    pub require_assignments: bool,
    /// Most offices one operator's claims may hold in this node's directory (the
    /// authority's assignments are not bounded); further claims are shown as conflicts.
    /// Default 200000.
    pub bindings_per_operator_max: u32,
    /// A unit a relay accepted but the destination has not receipted this long after is
    /// sent again around that relay (direct, or another relay), in ms. 0: never.
    /// Default 600000 (10 min).
    pub relay_watch_ms: u64,
}

impl Default for DeliveryConfig {
    fn default() -> Self {
        DeliveryConfig {
            retry_base_ms: 500,
            retry_max_ms: RETRY_DELAY_MS_MAX,
            expiry_ms: EXPIRY_MS_DEFAULT,
            batch_envelopes_max: renkei_protocol::limits::BATCH_ENVELOPES_MAX,
            sync_interval_ms: 30_000,
            max_skew_ms: crate::core::MAX_SKEW_MS_DEFAULT,
            roster_max_age_days: 30,
            require_assignments: false,
            bindings_per_operator_max: crate::core::BINDINGS_PER_OPERATOR_MAX_DEFAULT,
            relay_watch_ms: crate::core::RELAY_WATCH_MS_DEFAULT,
        }
    }
}

/// Size limits.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(default, deny_unknown_fields)]
pub struct LimitsConfig {
    /// Largest accepted upload (all files of one send unit), bytes. Default 6 MiB.
    pub upload_bytes_max: usize,
    /// sled page cache (meta, offices, bindings), bytes. Default 16 MiB.
    pub store_cache_bytes: u64,
    /// The store's memory table for the trees that grow with every envelope: once this is
    /// full it is written out as a sorted run. Default 8 MiB.
    pub store_memtable_bytes: usize,
    /// The store's log is written in segments of this size; `renkei compact` deletes old
    /// segments whole. Default 256 MiB.
    pub store_segment_bytes: u64,
    /// Inputs folded into one group commit. Default 256.
    pub commit_batch_max: usize,
    /// An upload's body must arrive within this many milliseconds, or `408`. Default
    /// 30 000. The environment variable `RENKEI_REQUEST_TIMEOUT_MS` overrides it.
    pub request_timeout_ms: u64,
    /// Upload bytes of one office received or checked at once (each request counted as
    /// its `Content-Length`); more are answered `429`. Default 12 MiB (two uploads of the
    /// largest size).
    pub office_upload_bytes_in_flight_max: u64,
    /// Uploads one office may start per hour; more are answered `429` with
    /// `Retry-After`. Default 36 000 (ten a second, all hour long).
    pub office_uploads_per_hour_max: u32,
    /// Send units checked at once, off the core's thread (the prepare pool). Default 0:
    /// one per CPU core.
    pub prepare_workers: usize,
    /// `/readyz` answers `503` once the core has been on one batch of inputs this many
    /// milliseconds. Default 10 000.
    pub ready_stall_ms: u64,
    /// A staff member's page session ends when unused this long (ms). Default 1 800 000
    /// (30 min).
    pub session_idle_ms: u64,
    /// A staff member's page session ends this long after sign-in, used or not (ms).
    /// Default 43 200 000 (12 h).
    pub session_max_ms: u64,
    /// Failed authentications (`401`: wrong tokens, failed sign-ins) from one client
    /// address within a minute, after which its requests without a valid credential are
    /// answered `429`. Default 20.
    pub failed_auth_max: u32,
    /// Inbound libp2p connections established at once (only roster peers are admitted).
    /// Default 256.
    pub connections_max: u32,
    /// libp2p connections with one peer. Default 4.
    pub connections_per_peer_max: u32,
    /// Concurrent relay-protocol streams per connection. Default 16.
    pub streams_per_connection_max: usize,
    /// Bytes of peers' requests read and decoded at once, over all streams; a request waits
    /// for room. Default 128 MiB.
    pub inbound_bytes_in_flight_max: usize,
    /// One peer's requests handed to the core and not answered yet; more are answered
    /// `Refused { RateLimited }`. Default 8.
    pub inbound_requests_pending_per_peer_max: usize,
}

impl LimitsConfig {
    /// The network layer's settings for these keys.
    pub fn net_config(&self, keys: &renkei_protocol::keys::OperatorKeys) -> crate::net::Config {
        let mut c = crate::net::Config::new(keys);
        c.connections_max = self.connections_max.max(1);
        c.connections_per_peer_max = self.connections_per_peer_max.max(1);
        c.streams_per_connection_max = self.streams_per_connection_max.max(1);
        c.inbound_bytes_in_flight_max = self.inbound_bytes_in_flight_max.max(1);
        c.inbound_pending_per_peer_max = self.inbound_requests_pending_per_peer_max.max(1);
        c
    }

    /// The upload limits of the HTTP API.
    pub fn upload_limits(&self) -> crate::api::uploads::UploadLimits {
        let cores = std::thread::available_parallelism().map_or(2, usize::from);
        crate::api::uploads::UploadLimits {
            bytes_in_flight_per_office: self.office_upload_bytes_in_flight_max,
            upload_bytes_max: self.upload_bytes_max as u64,
            per_office_per_hour: self.office_uploads_per_hour_max,
            prepare_workers: if self.prepare_workers == 0 {
                cores
            } else {
                self.prepare_workers
            },
        }
    }
}

impl Default for LimitsConfig {
    fn default() -> Self {
        LimitsConfig {
            upload_bytes_max: 6 * 1024 * 1024,
            store_cache_bytes: 16 * 1024 * 1024,
            store_memtable_bytes: crate::store::MEMTABLE_BYTES_DEFAULT,
            store_segment_bytes: crate::store::vlog::SEGMENT_BYTES_MAX,
            commit_batch_max: 256,
            request_timeout_ms: 30_000,
            office_upload_bytes_in_flight_max: 12 * 1024 * 1024,
            office_uploads_per_hour_max: 36_000,
            prepare_workers: 0,
            ready_stall_ms: 10_000,
            session_idle_ms: crate::core::SESSION_IDLE_MS_DEFAULT,
            session_max_ms: crate::core::SESSION_MAX_MS_DEFAULT,
            failed_auth_max: 20,
            connections_max: crate::net::CONNECTIONS_MAX_DEFAULT,
            connections_per_peer_max: crate::net::CONNECTIONS_PER_PEER_MAX_DEFAULT,
            streams_per_connection_max: crate::net::STREAMS_PER_CONNECTION_MAX_DEFAULT,
            inbound_bytes_in_flight_max: crate::net::INBOUND_BYTES_IN_FLIGHT_MAX_DEFAULT,
            inbound_requests_pending_per_peer_max: crate::net::INBOUND_PENDING_PER_PEER_MAX_DEFAULT,
        }
    }
}

/// E-mail notices of new arrivals, for offices that asked on the page.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(default, deny_unknown_fields)]
pub struct NotifyConfig {
    /// SMTP server, `host:port` (port 25 if absent). Empty: no notices are sent.
    pub smtp: String,
    /// Upgrade the connection with STARTTLS (the server's certificate checked against the
    /// system's CAs). Default false (a relay on the same host or private network).
    pub starttls: bool,
    /// SMTP user name (empty: no authentication).
    pub username: String,
    /// SMTP password.
    pub password: String,
    /// The sender address. Default `renkei@localhost`.
    pub from: String,
    /// Arrivals for one office within this long after the first go in one message (ms).
    /// Default 60 000.
    pub delay_ms: u64,
}

impl Default for NotifyConfig {
    fn default() -> Self {
        NotifyConfig {
            smtp: String::new(),
            starttls: false,
            username: String::new(),
            password: String::new(),
            from: "renkei@localhost".into(),
            delay_ms: 60_000,
        }
    }
}

/// The whole node configuration.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct NodeConfig {
    /// Operator display name.
    pub name: String,
    /// HTTP API and web page address. Default 127.0.0.1:8080.
    #[serde(default = "default_http")]
    pub http: SocketAddr,
    /// Where the operator endpoints (`/admin/v1/…`) listen: a Unix socket path (relative
    /// to the node directory; the socket is made 0600) or a TCP address such as
    /// `127.0.0.1:8081`. Default `admin.sock`. Never the office listener.
    #[serde(default = "default_admin_listen")]
    pub admin_listen: String,
    /// libp2p listen addresses. Default none (a single-operator node).
    #[serde(default)]
    pub listen: Vec<String>,
    /// Path of the signed roster (relative to the node directory), if federated.
    #[serde(default)]
    pub roster: Option<PathBuf>,
    /// Federation authority public key (base32 or hex), if federated.
    #[serde(default)]
    pub authority: Option<String>,
    /// Whether this node relays envelopes for other operators.
    #[serde(default)]
    pub relay: bool,
    /// Peers to keep connected.
    #[serde(default)]
    pub peers: Vec<PeerConfig>,
    /// Delivery settings.
    #[serde(default)]
    pub delivery: DeliveryConfig,
    /// Limits.
    #[serde(default)]
    pub limits: LimitsConfig,
    /// Reverse proxies whose `X-Forwarded-For` / `Forwarded` headers name the client (for
    /// the failed-sign-in limit). Default none: the TCP peer is the client.
    #[serde(default)]
    pub trusted_proxies: Vec<std::net::IpAddr>,
    /// Web origins (`https://app.example.jp`) whose pages may call the office API from a
    /// browser (CORS). Default none: browsers refuse cross-origin calls; care software
    /// calling from a server needs no entry.
    #[serde(default)]
    pub cors_allowed_origins: Vec<String>,
    /// Mark the staff session cookie `Secure` (browsers then send it over HTTPS only):
    /// set it when offices reach the page through a TLS proxy. Default false (the node
    /// itself speaks plain HTTP).
    #[serde(default)]
    pub session_cookie_secure: bool,
    /// Where the node keeps its state. Default: the local store in `DIR/store`.
    #[serde(default)]
    pub store: StoreConfig,
    /// E-mail notices of new arrivals (off unless `smtp` is set).
    #[serde(default)]
    pub notify: NotifyConfig,
}

/// Which store a node runs on (`[store]` in renkei.toml).
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct StoreConfig {
    /// `"local"` (default: the embedded store in `DIR/store`) or `"postgres"`.
    #[serde(default)]
    pub kind: StoreKind,
    /// For `postgres`: the database, as a URL (`postgres://user@host:5432/renkei`) or a
    /// key=value string (`host=… user=… dbname=…`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub url: Option<String>,
    /// For `postgres`: this node's name in the active/standby lease. Default: the host
    /// name and the HTTP address.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub node: Option<String>,
    /// For `postgres`: how long the lease lasts unless renewed (renewed every quarter of
    /// it); a standby takes over this long after the active node stops answering.
    /// Default 5000.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lease_ttl_ms: Option<u64>,
}

/// The store kinds.
#[derive(Debug, Clone, Copy, Default, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum StoreKind {
    /// The embedded store on this machine's disk.
    #[default]
    Local,
    /// PostgreSQL (active/standby nodes share one database).
    Postgres,
}

/// The lease's default length.
pub const LEASE_TTL_MS_DEFAULT: u64 = 5_000;

impl StoreConfig {
    /// The PostgreSQL URL, for a `postgres` store.
    pub fn postgres_url(&self) -> Result<Option<&str>, ConfigError> {
        match (self.kind, &self.url) {
            (StoreKind::Local, _) => Ok(None),
            (StoreKind::Postgres, Some(u)) if !u.trim().is_empty() => Ok(Some(u)),
            (StoreKind::Postgres, _) => Err(ConfigError::Parse {
                path: PathBuf::from(CONFIG_FILE),
                detail:
                    "[store] kind = \"postgres\" needs url = \"postgres://user@host:5432/renkei\""
                        .to_owned(),
            }),
        }
    }

    /// This node's name in the lease.
    pub fn node_name(&self, http: SocketAddr) -> String {
        self.node.clone().unwrap_or_else(|| {
            let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
                .map(|h| h.trim().to_owned())
                .unwrap_or_else(|_| "localhost".to_owned());
            format!("{host}/{http}")
        })
    }

    /// The lease's length.
    pub fn lease_ttl(&self) -> std::time::Duration {
        std::time::Duration::from_millis(self.lease_ttl_ms.unwrap_or(LEASE_TTL_MS_DEFAULT).max(200))
    }
}

fn default_http() -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], 8080))
}

fn default_admin_listen() -> String {
    ADMIN_SOCKET_DEFAULT.to_owned()
}

/// The admin listener's default: a Unix socket in the node directory.
pub const ADMIN_SOCKET_DEFAULT: &str = "admin.sock";

/// Where the operator endpoints listen ([`NodeConfig::admin_listen`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AdminAddr {
    /// A Unix socket at this path.
    Unix(PathBuf),
    /// A TCP address.
    Tcp(SocketAddr),
}

impl NodeConfig {
    /// The admin listener of the node in `dir`: a TCP address when `admin_listen` is one,
    /// else a socket path (relative to `dir`).
    pub fn admin_addr(&self, dir: &Path) -> AdminAddr {
        match self.admin_listen.parse::<SocketAddr>() {
            Ok(a) => AdminAddr::Tcp(a),
            Err(_) => AdminAddr::Unix(dir.join(&self.admin_listen)),
        }
    }
}

impl NodeConfig {
    /// A config with defaults for `name`.
    pub fn new(name: &str) -> Self {
        NodeConfig {
            name: name.into(),
            http: default_http(),
            admin_listen: default_admin_listen(),
            listen: vec![],
            roster: None,
            authority: None,
            relay: false,
            peers: vec![],
            delivery: DeliveryConfig::default(),
            limits: LimitsConfig::default(),
            trusted_proxies: vec![],
            cors_allowed_origins: vec![],
            session_cookie_secure: false,
            store: StoreConfig::default(),
            notify: NotifyConfig::default(),
        }
    }

    /// Reads `DIR/renkei.toml`.
    pub fn load(dir: &Path) -> Result<Self, ConfigError> {
        let path = dir.join(CONFIG_FILE);
        let text = std::fs::read_to_string(&path).map_err(|source| ConfigError::Io {
            path: path.clone(),
            source,
        })?;
        toml::from_str(&text).map_err(|e| ConfigError::Parse {
            path,
            detail: e.to_string(),
        })
    }

    /// Writes `DIR/renkei.toml`.
    pub fn save(&self, dir: &Path) -> Result<(), ConfigError> {
        let path = dir.join(CONFIG_FILE);
        let text = toml::to_string_pretty(self).map_err(|e| ConfigError::Parse {
            path: path.clone(),
            detail: e.to_string(),
        })?;
        std::fs::write(&path, text).map_err(|source| ConfigError::Io { path, source })
    }

    /// The core's settings.
    pub fn core_config(&self) -> Result<CoreConfig, ConfigError> {
        let authority = match &self.authority {
            Some(a) => Some(a.parse().map_err(|e| ConfigError::Parse {
                path: PathBuf::from(CONFIG_FILE),
                detail: format!("authority: {e}"),
            })?),
            None => None,
        };
        Ok(CoreConfig {
            name: self.name.clone(),
            retry_base_ms: self.delivery.retry_base_ms,
            retry_max_ms: self.delivery.retry_max_ms,
            expiry_ms: self.delivery.expiry_ms,
            relay: self.relay,
            authority,
            sync_interval_ms: self.delivery.sync_interval_ms,
            batch_envelopes_max: self.delivery.batch_envelopes_max,
            max_skew_ms: self.delivery.max_skew_ms,
            roster_max_age_ms: self
                .delivery
                .roster_max_age_days
                .saturating_mul(24 * 3600 * 1000),
            require_assignments: self.delivery.require_assignments,
            bindings_per_operator_max: self.delivery.bindings_per_operator_max,
            relay_watch_ms: self.delivery.relay_watch_ms,
            session_idle_ms: self.limits.session_idle_ms,
            session_max_ms: self.limits.session_max_ms,
            ..CoreConfig::default()
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every core setting in renkei.toml reaches the core (three were once read and then
    /// dropped on the way).
    #[test]
    fn the_core_gets_every_setting_it_is_given() {
        let mut cfg = NodeConfig::new("x");
        cfg.delivery.require_assignments = true;
        cfg.delivery.bindings_per_operator_max = 7;
        cfg.delivery.relay_watch_ms = 8;
        cfg.delivery.max_skew_ms = 9;
        cfg.limits.session_idle_ms = 10;
        cfg.limits.session_max_ms = 11;
        let core = cfg.core_config().unwrap();
        assert!(core.require_assignments);
        assert_eq!(
            (
                core.bindings_per_operator_max,
                core.relay_watch_ms,
                core.max_skew_ms,
                core.session_idle_ms,
                core.session_max_ms
            ),
            (7, 8, 9, 10, 11)
        );
    }

    /// The example shipped in the .deb is a valid config and holds the defaults.
    #[test]
    fn the_packaged_example_is_valid_and_says_the_defaults() {
        let text = include_str!("../../packaging/renkei.toml.example");
        let c: NodeConfig = toml::from_str(text).unwrap();
        assert_eq!(c, NodeConfig::new("example-operator"));
        let pg = text
            .lines()
            .filter_map(|l| l.strip_prefix("# "))
            .skip_while(|l| !l.starts_with("[store]"))
            .collect::<Vec<_>>()
            .join("\n");
        let pg: StoreConfig = toml::from_str::<toml::Table>(&pg)
            .unwrap()
            .get("store")
            .unwrap()
            .clone()
            .try_into()
            .unwrap();
        assert_eq!(pg.kind, StoreKind::Postgres);
        assert!(pg.postgres_url().unwrap().is_some());
    }

    #[test]
    fn roundtrip_and_unknown_fields_refused() {
        let c = NodeConfig::new("shimane");
        let text = toml::to_string_pretty(&c).unwrap();
        let back: NodeConfig = toml::from_str(&text).unwrap();
        assert_eq!(back, c);
        let minimal: NodeConfig = toml::from_str("name = \"x\"").unwrap();
        assert_eq!(minimal.http, default_http());
        assert_eq!(minimal.delivery.expiry_ms, EXPIRY_MS_DEFAULT);
        let e = toml::from_str::<NodeConfig>("name = \"x\"\nbogus = 1").unwrap_err();
        assert!(e.to_string().contains("bogus"), "{e}");
        assert_eq!(minimal.store.postgres_url().unwrap(), None);
        let pg: NodeConfig = toml::from_str(
            "name = \"x\"\n[store]\nkind = \"postgres\"\nurl = \"postgres://r@db/renkei\"",
        )
        .unwrap();
        assert_eq!(
            pg.store.postgres_url().unwrap(),
            Some("postgres://r@db/renkei")
        );
        let no_url: NodeConfig =
            toml::from_str("name = \"x\"\n[store]\nkind = \"postgres\"").unwrap();
        let e = no_url.store.postgres_url().unwrap_err().to_string();
        assert!(e.contains("needs url"), "{e}");
        assert!(toml::from_str::<NodeConfig>("name = \"x\"\n[store]\nkind = \"mysql\"").is_err());
    }
}
