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
//! A driver that wants the next batch handled while the flush runs (the production
//! runtime) ends a batch with [`Batch::commit_start`] instead: the batch's writes are
//! written, the flush is handed over as a [`Flush`] to run on another thread, and the
//! effects stay in the [`Committing`] until [`Committing::finish`] gets the [`Synced`] that
//! only a successful flush gives. [`Batch::commit`] is exactly those three steps in a row.
//!
//! Dropping a batch without committing is a crash as far as the batch is concerned: the
//! driver must then drop the core too (a store error inside `handle` is fatal) and reopen.

use crate::Core;
use crate::io::{Effect, Input};
use crate::sealing::SealJob;
use crate::store::{Store, StoreError, SyncJob};

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
    /// only then hands out the batch's effects. The same as [`Batch::commit_start`], then
    /// the flush here, then [`Committing::finish`].
    pub fn commit(self) -> Result<Vec<Effect>, StoreError> {
        let (core, now) = (self.core, self.now);
        let mut committing = Batch {
            core: &mut *core,
            now,
        }
        .commit_start()?;
        let synced = committing.sync().run()?;
        committing.finish(core, synced)
    }

    /// Finishes the commit of the batch before this one ([`Committing::finish`]) while this
    /// one is open: its effects, not this batch's.
    pub fn finish_previous(
        &mut self,
        previous: Committing,
        synced: Synced,
    ) -> Result<Vec<Effect>, StoreError> {
        previous.finish(self.core, synced)
    }

    /// Ends the batch like [`Batch::commit`], but leaves the flush to the caller, so the
    /// next batch can be handled while it runs: the batch's writes are written (reads see
    /// them) and its effects are held in the returned [`Committing`] until
    /// [`Committing::finish`], which needs the [`Synced`] only the flush gives.
    pub fn commit_start(self) -> Result<Committing, StoreError> {
        // What became due goes out in one pass for the whole batch (due envelopes waiting
        // for a busy peer are looked at once per batch, not once per input).
        self.core.pump()?;
        let job = self.core.store.commit_start()?;
        Ok(Committing {
            effects: self.core.drain_effects(),
            job,
        })
    }
}

/// A batch whose writes are written but not yet known durable ([`Batch::commit_start`]).
/// Its effects leave only through [`Committing::finish`], which takes the proof that the
/// flush ran. One commit at a time: finish it before the next batch commits.
#[must_use = "a batch's effects leave only through `finish`"]
pub struct Committing {
    effects: Vec<Effect>,
    job: Option<SyncJob>,
}

/// The flush of a [`Committing`] batch, to run on any thread.
#[must_use = "the flush gives the `Synced` that `finish` needs"]
pub struct Flush(Option<SyncJob>);

/// Proof that a [`Flush`] ran and succeeded.
pub struct Synced(());

impl Flush {
    /// Whether there is anything to wait for (a store that committed at
    /// [`Batch::commit_start`], or a batch that wrote nothing, has not).
    pub fn is_needed(&self) -> bool {
        self.0.is_some()
    }

    /// Runs the flush. An error is fatal for the driver: the batch's effects never leave.
    pub fn run(self) -> Result<Synced, StoreError> {
        if let Some(job) = self.0 {
            job()?;
        }
        Ok(Synced(()))
    }
}

impl Committing {
    /// The flush that makes the batch durable (taken once; later calls give a flush with
    /// nothing to do, since the one flush covers the batch).
    pub fn sync(&mut self) -> Flush {
        Flush(self.job.take())
    }

    /// Whether the batch holds effects to release.
    pub fn has_effects(&self) -> bool {
        !self.effects.is_empty()
    }

    /// Ends the commit after its flush: the store takes the durable group into its
    /// indexes, and the batch's effects are handed out.
    pub fn finish<S: Store>(
        self,
        core: &mut Core<S>,
        _: Synced,
    ) -> Result<Vec<Effect>, StoreError> {
        core.store.commit_finish()?;
        Ok(self.effects)
    }
}
