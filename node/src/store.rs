//! The node's stores: everything from `renkei_core::store` (the `Store` trait, its
//! conformance suite, the memory store) and the production backend [`DiskStore`] (a
//! write-ahead value log, sorted runs for the per-envelope trees and sled for the small
//! ones).
//!
//! Every write between two `commit()` calls forms one atomic group: after a crash either all
//! of it is there or none of it. Drivers call `commit()` once per batch of inputs and only
//! then release the batch's effects (group commit), so nothing that promises durability
//! leaves a node before the data behind it is on disk.

mod disk;
pub mod lease;
mod node_store;
pub mod pg;
pub mod runs;
pub mod vlog;

pub use disk::{Compaction, DiskStore, MEMTABLE_BYTES_DEFAULT};
pub use node_store::{LeaseGuard, NodeStore};
pub use pg::{Fence, PgStore};
pub use renkei_core::store::*;
