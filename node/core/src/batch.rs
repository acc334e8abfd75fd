//! The group-commit loop, written once for every driver: a batch of inputs is handled,
//! its seal jobs are taken by the driver's prepare stage (or left for later), the store is
//! committed, and only then are the batch's effects handed out. [`Batch::commit`] is the
//! only way a driver gets effects, so no driver can release a reply, a receipt or a
//! forwarded envelope before the data behind it is durable.
//!
//! ```text
//! let mut batch = core.batch(now);
//! for input in inputs { batch.handle(input)?; }
//! for (ticket, job) in batch.take_seal_jobs() { batch.handle(Input::Sealed { ticket, sealed: job.run() })?; }
//! for effect in batch.commit()? { perform(effect) }
//! ```
//!
//! Dropping a batch without committing is a crash as far as the batch is concerned: the
//! driver must then drop the core too (a store error inside `handle` is fatal) and reopen.

use crate::Core;
use crate::io::{Effect, Input};
use crate::sealing::SealJob;
use crate::store::{Store, StoreError};

/// One batch of a driver's loop over a [`Core`]; see the module documentation.
#[must_use = "a batch's effects leave only through `commit`"]
pub struct Batch<'a, S: Store> {
    core: &'a mut Core<S>,
    now: u64,
}

impl<S: Store> Core<S> {
    /// Starts a batch at time `now_ms`.
    pub fn batch(&mut self, now_ms: u64) -> Batch<'_, S> {
        Batch {
            core: self,
            now: now_ms,
        }
    }
}

impl<S: Store> Batch<'_, S> {
    /// Feeds one input. An error is fatal for the driver (see the module documentation).
    pub fn handle(&mut self, input: Input) -> Result<(), StoreError> {
        self.core.handle(self.now, input)
    }

    /// The batch's time.
    pub fn now(&self) -> u64 {
        self.now
    }

    /// The core, to read (a driver's checkers, its gauges).
    pub fn core(&self) -> &Core<S> {
        self.core
    }

    /// Takes the seal jobs the batch has produced so far, for the prepare stage to run now;
    /// their results come back through [`Batch::handle`] as `Input::Sealed`. Jobs not taken
    /// leave with the other effects after the commit (a driver that seals in a later batch).
    pub fn take_seal_jobs(&mut self) -> Vec<(u64, SealJob)> {
        let mut jobs = Vec::new();
        let mut kept = std::collections::VecDeque::with_capacity(self.core.effects.len());
        for e in self.core.effects.drain(..) {
            match e {
                Effect::Seal { ticket, job } => jobs.push((ticket, job)),
                other => kept.push_back(other),
            }
        }
        self.core.effects = kept;
        jobs
    }

    /// Ends the batch: sends what became due, makes every write durable (one flush), and
    /// only then hands out the batch's effects.
    pub fn commit(self) -> Result<Vec<Effect>, StoreError> {
        self.core.commit()?;
        Ok(self.core.drain_effects())
    }
}
