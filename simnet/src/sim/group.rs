//! Batches of different nodes handled side by side, on two threads, when they cannot affect
//! one another: the directory's spread at the start of a large run is tens of thousands of
//! answers of 1,024 bindings each, which every node stores on its own.
//!
//! Nodes interact only through the queue, and what one batch's effects put on the queue
//! cannot reach another node sooner than the network's minimum latency (a request or an
//! answer), or lands on the batch's own node (its wake, its send failures). So the batches
//! at the head of the queue, within a window shorter than that latency, each of a different
//! node, are independent: handling them at once and then releasing their effects in queue
//! order gives the very run the one-at-a-time loop gives, event-log hash included (the
//! records each batch's events make when they are taken off the queue are held back and
//! folded just before that batch's effects, where the one-at-a-time loop folds them).
//!
//! The window also stops short of the next multiple of the wake granularity, where a
//! released wake could land (and at such a multiple it is one millisecond wide: a wake can
//! land at the very millisecond, after what is already queued there). A group ends at the
//! first event that is not a node's network input (an API call, a fault, a link event), at
//! the first second batch of a node, and at a node armed to crash mid-batch; runs with a
//! deliberately broken driver never group (its coin is drawn before each batch).

use renkei_core::store::{MemoryStore, StoreError};
use renkei_core::{Core, Effect, Input};
use renkei_protocol::wire::Response;

use super::log::Diverted;
use super::{BATCH_INPUTS_MAX, NodeIx, Sim, event::Event, local};

/// Bindings in a directory answer from which storing them is worth a second thread.
const HEAVY_BINDINGS: usize = 256;

fn heavy(ev: &Event) -> bool {
    matches!(
        ev,
        Event::Response {
            response: Response::Directory { bindings, .. },
            ..
        } if bindings.len() >= HEAVY_BINDINGS
    )
}

/// Events a group may hold: a node's inputs from the network and its own timers.
fn groupable(ev: &Event) -> bool {
    matches!(
        ev,
        Event::Request { .. }
            | Event::Response { .. }
            | Event::Fail { .. }
            | Event::Peer { .. }
            | Event::Wake { .. }
    )
}

/// One node's batch in a group.
struct Batch {
    node: NodeIx,
    at: u64,
    inputs: Vec<Input>,
    /// The event-log records its events made when taken off the queue.
    log: Vec<Diverted>,
    heavy: bool,
}

/// What handling a batch gave: its effects, or the store's failure.
type Outcome = Result<Vec<Effect>, StoreError>;

/// A batch to handle: its place in the group, the node's core, its local time, its inputs.
type Job<'a> = (usize, &'a mut Core<MemoryStore>, u64, Vec<Input>);

impl Sim {
    /// Whether `ev` makes a batch worth a second thread.
    fn weighs(&self, ev: &Event) -> bool {
        if self.side_by_side_always {
            groupable(ev)
        } else {
            heavy(ev)
        }
    }

    /// The end (exclusive) of the window of a group starting at `t`. It never passes the
    /// current [`Sim::run_until`]'s bound: the caller queues its own events (API calls,
    /// faults) at that time once the run has reached it, and they must come before
    /// anything later.
    fn window_end(&self, t: u64) -> u64 {
        let g = self.net.wake_granularity_ms.max(1);
        let bound = self.until.saturating_add(1);
        if t.is_multiple_of(g) {
            return (t + 1).min(bound);
        }
        let reach = self
            .net
            .latency_min_ms
            .min(self.net.dial_fail_ms)
            .min(self.net.request_timeout_ms)
            .max(1);
        (t + reach).min(t.div_ceil(g) * g).min(bound)
    }

    /// Whether the queue's head starts a group worth a second thread (at least two heavy
    /// batches). An estimate: [`Sim::step_group`] decides what the group holds.
    pub(super) fn group_ahead(&self) -> bool {
        if !self.side_by_side || self.broken.is_some() {
            return false;
        }
        let Some(((t, _), first)) = self.queue.first_key_value() else {
            return false;
        };
        if !self.weighs(first) {
            return false;
        }
        let end = self.window_end(*t);
        let mut nodes: Vec<NodeIx> = Vec::new();
        let mut heavy_batches = 0;
        let mut last: Option<(u64, NodeIx)> = None;
        for ((at, _), ev) in &self.queue {
            if *at >= end || !groupable(ev) {
                break;
            }
            let Some(n) = ev.input_node() else { break };
            if last != Some((*at, n)) {
                if nodes.contains(&n) || self.nodes[n].crash_armed {
                    break;
                }
                nodes.push(n);
                last = Some((*at, n));
            }
            if self.weighs(ev) {
                heavy_batches += 1;
                if heavy_batches >= 2 {
                    return true;
                }
            }
        }
        false
    }

    /// Takes the group at the queue's head, handles its batches on two threads, then
    /// releases their effects in queue order.
    pub(super) fn step_group(&mut self) {
        let Some(&(t0, _)) = self.queue.first_key_value().map(|(k, _)| k) else {
            return;
        };
        let end = self.window_end(t0);
        let mut batches: Vec<Batch> = Vec::new();
        while let Some(((at, _), ev)) = self.queue.first_key_value() {
            let at = *at;
            if at >= end || !groupable(ev) {
                break;
            }
            let Some(n) = ev.input_node() else { break };
            if batches.iter().any(|b| b.node == n) || self.nodes[n].crash_armed {
                break;
            }
            batches.push(self.take_batch(at, n));
        }
        self.stats.side_by_side += batches.len() as u64;

        // Handle: heavy batches alternate between the threads, the rest stay here.
        let mut cores: Vec<Option<&mut super::Node>> = self.nodes.iter_mut().map(Some).collect();
        let (mut here, mut there): (Vec<Job>, Vec<Job>) = (Vec::new(), Vec::new());
        let mut flip = false;
        for (k, b) in batches.iter_mut().enumerate() {
            let Some(node) = cores[b.node].take() else {
                continue;
            };
            let now = local(b.at, node.skew_ms);
            let Some(core) = node.core.as_mut() else {
                continue;
            };
            if b.inputs.is_empty() {
                continue;
            }
            let job = (k, core, now, std::mem::take(&mut b.inputs));
            if b.heavy && flip {
                there.push(job);
            } else {
                here.push(job);
            }
            flip ^= b.heavy;
        }
        let inputs: u64 = here.iter().chain(&there).map(|j| j.3.len() as u64).sum();
        let (mut done, other) = std::thread::scope(|s| {
            let h = s.spawn(move || handle_all(there));
            let mine = handle_all(here);
            let theirs = h.join().unwrap_or_else(|p| std::panic::resume_unwind(p));
            (mine, theirs)
        });
        drop(cores);
        self.stats.inputs += inputs;
        done.extend(other);
        let mut outcomes: Vec<Option<Outcome>> = batches.iter().map(|_| None).collect();
        for (k, o) in done {
            outcomes[k] = Some(o);
        }

        // Release, in queue order, as the one-at-a-time loop would have.
        let last = self.now;
        for (b, o) in batches.into_iter().zip(outcomes) {
            if self.host_failure.is_some() {
                break;
            }
            self.now = b.at;
            self.log.fold(b.log);
            match o {
                None => {}
                Some(Err(e)) => self.store_failed(b.node, &e),
                Some(Ok(effects)) => {
                    self.stats.batches += 1;
                    for e in effects {
                        self.release(b.node, e);
                    }
                }
            }
        }
        self.now = last;
    }

    /// Takes node `n`'s batch at `at` off the queue's head (as [`Sim::step`] does), its
    /// event-log records held back.
    fn take_batch(&mut self, at: u64, n: NodeIx) -> Batch {
        self.log.divert();
        let mut inputs = Vec::new();
        let mut is_heavy = false;
        while inputs.len() < BATCH_INPUTS_MAX {
            let same = self
                .queue
                .first_key_value()
                .is_some_and(|((t, _), e)| *t == at && e.input_node() == Some(n));
            if !same {
                break;
            }
            let Some((_, ev)) = self.queue.pop_first() else {
                break;
            };
            self.now = self.now.max(at);
            self.stats.events += 1;
            is_heavy |= self.weighs(&ev);
            if let Some(i) = self.resolve(ev) {
                inputs.push(i);
            }
        }
        Batch {
            node: n,
            at,
            inputs,
            log: self.log.take_diverted(),
            heavy: is_heavy,
        }
    }
}

/// Handles each batch, commits it and takes its effects (the driver's rule: effects leave
/// only after the commit).
fn handle_all(jobs: Vec<Job<'_>>) -> Vec<(usize, Outcome)> {
    jobs.into_iter()
        .map(|(k, core, now, inputs)| {
            let outcome = (|| {
                let mut batch = core.batch(now);
                for input in inputs {
                    batch.handle(input)?;
                }
                batch.commit()
            })();
            (k, outcome)
        })
        .collect()
}
