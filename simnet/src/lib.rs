//! # renkei-simnet
//!
//! A deterministic simulated federation: one thread, virtual time, one seed. It runs many
//! `renkei_core` cores (the production delivery code) with memory stores over a simulated
//! network with latency, loss, duplication, reordering, partitions, holds, crashes and
//! clock skew, feeds them a month-start workload of real standard-CSV send units, and
//! checks the delivery invariants afterwards (Jepsen's queue vocabulary: lost, duplicated,
//! unexpected; plus wrong receipts, stale "latest" and plaintext at relays) and liveness.
//!
//! # Layout
//!
//! - [`sim`]: the simulator (builder, event queue, driver, links and faults, event log).
//! - [`scenario`]: scenario files (TOML).
//! - [`plan`]: what a seed derives from a scenario (network draws, fault schedule, skews).
//! - [`workload`]: offices, partners and the monthly rhythm of submissions.
//! - [`payload`]: synthetic send units built from the fixture files.
//! - [`history`]: what the workload submitted and what it was told.
//! - [`checker`]: invariant checkers over the history and the final stores.
//! - [`adversary`]: a lying member of the federation (forged senders, false rejections,
//!   receipt stuffing, replays), for scenarios with a `[byzantine]` section.
//! - [`report`]: counts, checker results, latency percentiles, the SVG plot.
//! - [`signatures`]: the signature check a run shares between its cores and checkers.
//! - [`run`](mod@run): one scenario, one seed, start to finish.
//! - [`calendar`]: virtual dates and 14-digit stamps.
//! - [`lookup`]: hash maps and sets for what is only looked up.

pub use renkei_core::store::SharedValues;

pub mod adversary;
pub mod calendar;
pub mod checker;
pub mod history;
pub mod lookup;
pub mod payload;
pub mod plan;
pub mod report;
pub mod run;
pub mod scenario;
pub mod signatures;
pub mod sim;
pub mod watch;
pub mod workload;

pub use report::Report;
pub use run::{RunOptions, run};
pub use scenario::Scenario;
