//! # renkei-simnet
//!
//! A deterministic simulated federation: one thread, virtual time, one seed. It will run many
//! `renkei_node` cores over a simulated network with latency, loss, duplication, partitions
//! and crashes, and check the delivery invariants (lost, duplicated, unexpected).
//!
//! Nothing is implemented here yet; see the open issues.
