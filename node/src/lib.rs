//! # renkei-node
//!
//! The Renkei node.
//!
//! # Layout
//!
//! - [`store`]: the `Store` trait with its sled (production) and in-memory (simnet, tests)
//!   backends; group commit.
//! - [`core`]: the sans-IO delivery state machine (outbox, relay, inbox, dedup, receipts,
//!   retries, versioning, audit log) driven by both the production runtime and simnet. No
//!   tokio, libp2p, sled or clock inside.

pub mod core;
pub mod store;
