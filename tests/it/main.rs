//! End-to-end tests: real `renkei` processes, real sled directories, real HTTP on loopback.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

mod adversarial;
mod backup;
mod browser;
mod byzantine;
mod conformance;
mod contract;
mod crash_loop;
mod failover;
mod federation;
mod flood;
mod notify;
mod proxy;
mod rotation;
mod single_node;
mod staff;
