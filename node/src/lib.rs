//! # renkei-node
//!
//! The Renkei node.
//!
//! # Layout
//!
//! - [`core`]: the `renkei-core` crate, re-exported: the sans-IO delivery state machine
//!   (outbox, relay, inbox, dedup, receipts, retries, versioning, audit log) driven by both
//!   the production runtime and simnet. No tokio, libp2p, sled or clock inside.
//! - [`store`]: the production backend (write-ahead value log, sorted runs, sled for the
//!   small trees) beside the core's `Store` trait and memory store; group commit.
//! - [`runtime`]: the tokio driver (group-commit loop) around the core.
//! - [`api`]: the HTTP API and the web page.
//! - [`config`], [`keyfile`]: the node directory's configuration and operator key.
//! - [`net`]: the libp2p network actor (TCP + noise + yamux, QUIC, `/renkei/relay/1`) with a
//!   typed client; its events map 1:1 to the core's inputs.
//! - [`conformance`]: the conformance kit, black-box checks of another operator's node over
//!   libp2p (`renkei conformance`).

pub mod api;
pub mod backup;
pub mod config;
pub mod conformance;
pub use renkei_core as core;
pub mod histogram;
pub mod keyfile;
pub mod net;
pub mod notify;
pub mod prepare_pool;
pub mod runtime;
pub mod store;
