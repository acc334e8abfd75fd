//! # renkei-node
//!
//! The Renkei node. It will own:
//!
//! - `core`: the sans-IO delivery state machine (outbox, relay, inbox, dedup, receipts,
//!   retries, versioning) driven by both the production runtime and simnet;
//! - `store`: the `Store` trait with its sled (production) and in-memory (simnet) backends;
//! - `net`: libp2p transport and the `/renkei/relay/1` protocol;
//! - `api`: the HTTP API for care software and the web page for office staff;
//! - the tokio runtime wiring and configuration.
//!
//! Nothing is implemented here yet; see the open issues.
