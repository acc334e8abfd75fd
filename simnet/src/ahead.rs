//! Work ahead on the second core: a helper thread signs, seals and checks what the
//! simulation thread is about to sign, seal and check, and leaves the answers in the run's
//! [`CryptoMemo`] for it to take.
//!
//! A simulation is one thread (docs/lab/2026-12-simnet-wall-time.md says why its events cannot be spread
//! over cores), but a third of its time went into pure functions whose inputs the simulator
//! knows before the core asks: the workload says what each office submits and when, the
//! cores' unit streams say which envelope id and ephemeral seed the k-th unit a node seals
//! will take ([`renkei_core::Core::unit_draws`]), and a message put on the wire says
//! which node will receive it and when. From these the helper makes, per unit:
//!
//! - at the origin: the CSV check of the send unit, the sealed payload, the envelope
//!   signature and the origin's Accepted (hop 0) receipt;
//! - at each node a Deliver request reaches: the relay's Accepted receipt or the
//!   destination's Delivered receipt, at the node's clock on arrival.
//!
//! and, at the start of a run, the binding each home node signs for each office it
//! registers.
//!
//! What the helper makes is keyed by *every* input ([`renkei_protocol::memo`]): Ed25519
//! signing is deterministic, sealing is deterministic given its seed, the CSV check is a
//! pure function of names and bytes. A guess that was wrong (a node that drew differently,
//! a receipt signed at another millisecond, a unit refused) is simply never asked for, and
//! the simulation thread computes what it needs as it always did. So the run — every
//! byte, the event-log hash — is the same with or without the helper, whatever the
//! helper's timing; only the wall time changes.

use std::collections::{BinaryHeap, VecDeque};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::thread::JoinHandle;

use renkei_core::unit::check_unit_ahead;
use renkei_protocol::envelope::{Envelope, Header, sha256};
use renkei_protocol::ids::{EnvelopeId, OfficeNumber, OperatorId, ServiceKind};
use renkei_protocol::keys::{EncPublicKey, OperatorKeys};
use renkei_protocol::memo::{self, CryptoMemo};
use renkei_protocol::receipt::{Receipt, ReceiptKind};
use renkei_protocol::roster::OfficeBinding;

use crate::sim::NodeIx;

/// One node as the helper needs it.
#[derive(Clone)]
pub(crate) struct NodeKeys {
    pub(crate) keys: OperatorKeys,
    /// The seal key the roster lists for the node (what origins seal to).
    pub(crate) seal_to: EncPublicKey,
}

/// A unit a node will submit.
pub(crate) struct SubmitJob {
    pub(crate) node: NodeIx,
    pub(crate) dest: NodeIx,
    pub(crate) files: Vec<(String, Vec<u8>)>,
    /// The `supersedes` the unit will carry (the replaced envelope's id, as accepted or
    /// guessed, for a correction that names it).
    pub(crate) supersedes: Option<EnvelopeId>,
    /// The origin's clock when it handles the submission.
    pub(crate) at_ms: u64,
    pub(crate) id: EnvelopeId,
    pub(crate) seed: [u8; 32],
}

/// Envelopes arriving at a node.
pub(crate) struct ArrivalJob {
    pub(crate) node: NodeIx,
    pub(crate) from: OperatorId,
    /// The receiving node's clock on arrival.
    pub(crate) at_ms: u64,
    /// Each envelope's header bytes (`Envelope::header_bytes_in`): all a receipt needs,
    /// without copying or decoding the sealed payloads.
    pub(crate) headers: Vec<Vec<u8>>,
}

/// An office a node will register (and so sign a binding for).
pub(crate) struct BindJob {
    pub(crate) node: NodeIx,
    pub(crate) office: OfficeNumber,
    pub(crate) kinds: Vec<ServiceKind>,
    /// The node's clock when it handles the registration.
    pub(crate) at_ms: u64,
}

enum Job {
    Submit(Box<SubmitJob>),
    Arrival(ArrivalJob),
    Bind(BindJob),
}

/// An arrival in the helper's queue, ordered by when it is due (then by when it was
/// queued): the earliest is needed first.
struct Soon {
    due: u64,
    seq: u64,
    job: Job,
}

impl PartialEq for Soon {
    fn eq(&self, other: &Self) -> bool {
        (self.due, self.seq) == (other.due, other.seq)
    }
}
impl Eq for Soon {}
impl PartialOrd for Soon {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}
impl Ord for Soon {
    /// Reversed, so that the max-heap gives the earliest.
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        (other.due, other.seq).cmp(&(self.due, self.seq))
    }
}

#[derive(Default)]
struct Queues {
    /// Arrivals: needed within a few simulated milliseconds, earliest due first (a message
    /// queued later may arrive sooner: latencies differ).
    soon: BinaryHeap<Soon>,
    soon_seq: u64,
    /// Submissions: needed later.
    later: VecDeque<(u64, Job)>,
    stop: bool,
}

struct Shared {
    queues: Mutex<Queues>,
    ready: Condvar,
    /// Jobs queued and not yet taken (read without the lock while the helper spins).
    queued: AtomicU64,
    /// Whether the helper sleeps on `ready` (then a push must wake it).
    sleeping: AtomicBool,
    /// The simulation's global clock: a job due before it is too late to be of use.
    now: AtomicU64,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, Queues> {
        self.queues.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// The helper thread (see the module docs). Dropping it stops the thread.
pub(crate) struct Ahead {
    shared: Arc<Shared>,
    thread: Option<JoinHandle<()>>,
}

impl Ahead {
    /// Starts the helper over `memo` (the run's) for nodes `nodes`.
    pub(crate) fn start(memo: CryptoMemo, nodes: Vec<NodeKeys>) -> std::io::Result<Self> {
        let shared = Arc::new(Shared {
            queues: Mutex::new(Queues::default()),
            ready: Condvar::new(),
            queued: AtomicU64::new(0),
            sleeping: AtomicBool::new(false),
            now: AtomicU64::new(0),
        });
        let s = shared.clone();
        let thread = std::thread::Builder::new()
            .name("simnet-ahead".into())
            .spawn(move || {
                memo::use_ahead_on_this_thread(memo);
                work(&s, &nodes);
            })?;
        Ok(Ahead {
            shared,
            thread: Some(thread),
        })
    }

    /// The simulation's clock moved to `now` (global).
    pub(crate) fn tick(&self, now: u64) {
        self.shared.now.store(now, Ordering::Relaxed);
    }

    /// Queues a unit a node will submit at global time `due`.
    pub(crate) fn submit(&self, due: u64, job: SubmitJob) {
        self.push(due, Job::Submit(Box::new(job)), false);
    }

    /// Queues an office registration handled at global time `due` (the simulation
    /// registers every office at the start of a run, all at one instant: the binding each
    /// home node signs is known before it asks).
    pub(crate) fn bind(&self, due: u64, job: BindJob) {
        self.push(due, Job::Bind(job), false);
    }

    /// Queues envelopes arriving at global time `due`.
    pub(crate) fn arrival(&self, due: u64, job: ArrivalJob) {
        self.push(due, Job::Arrival(job), true);
    }

    fn push(&self, due: u64, job: Job, soon: bool) {
        let mut q = self.shared.lock();
        if soon {
            q.soon_seq += 1;
            let seq = q.soon_seq;
            q.soon.push(Soon { due, seq, job });
        } else {
            q.later.push_back((due, job));
        }
        self.shared.queued.fetch_add(1, Ordering::SeqCst);
        let sleeping = self.shared.sleeping.load(Ordering::SeqCst);
        drop(q);
        if sleeping {
            self.shared.ready.notify_one();
        }
    }
}

impl Drop for Ahead {
    fn drop(&mut self) {
        self.shared.lock().stop = true;
        self.shared.ready.notify_one();
        if let Some(t) = self.thread.take()
            && t.join().is_err()
        {
            tracing::warn!("the simnet helper thread panicked (the run computed without it)");
        }
    }
}

/// How long the helper spins on an empty queue before it sleeps: an arrival is often
/// needed a few tens of microseconds after it is queued, less than waking a sleeping thread
/// takes.
const SPIN: std::time::Duration = std::time::Duration::from_millis(2);

fn work(shared: &Shared, nodes: &[NodeKeys]) {
    loop {
        let idle = std::time::Instant::now();
        while shared.queued.load(Ordering::SeqCst) == 0 && idle.elapsed() < SPIN {
            for _ in 0..64 {
                std::hint::spin_loop();
            }
        }
        let (due, job) = {
            let mut q = shared.lock();
            loop {
                if q.stop {
                    return;
                }
                if let Some(j) = q
                    .soon
                    .pop()
                    .map(|s| (s.due, s.job))
                    .or_else(|| q.later.pop_front())
                {
                    shared.queued.fetch_sub(1, Ordering::SeqCst);
                    break j;
                }
                shared.sleeping.store(true, Ordering::SeqCst);
                q = shared.ready.wait(q).unwrap_or_else(|e| e.into_inner());
                shared.sleeping.store(false, Ordering::SeqCst);
            }
        };
        // Too late: the simulation thread has computed it already, or (a unit) is at the
        // unit's millisecond, where it needs the seal within microseconds.
        let unit = matches!(job, Job::Submit(_));
        let late = || {
            let now = shared.now.load(Ordering::Relaxed);
            due < now || (unit && due == now)
        };
        if late() {
            continue;
        }
        match job {
            Job::Submit(j) => submit(nodes, &j, &mut || arrivals_now(shared, nodes), &late),
            Job::Arrival(j) => arrival(nodes, &j, &late),
            Job::Bind(j) => bind(nodes, j),
        }
    }
}

/// Makes the arrivals queued meanwhile: they are needed within microseconds of wall time,
/// a unit's seal only later (a unit takes ~150 µs; it stops for arrivals between steps).
fn arrivals_now(shared: &Shared, nodes: &[NodeKeys]) {
    while shared.queued.load(Ordering::SeqCst) > 0 {
        let next = {
            let mut q = shared.lock();
            let j = q.soon.pop();
            if j.is_some() {
                shared.queued.fetch_sub(1, Ordering::SeqCst);
            }
            j
        };
        let Some(Soon {
            due,
            job: Job::Arrival(j),
            ..
        }) = next
        else {
            return;
        };
        let late = || due < shared.now.load(Ordering::Relaxed);
        if !late() {
            arrival(nodes, &j, &late);
        }
    }
}

/// What `Core::submit` signs and seals for this unit, if the guesses hold. Stops when
/// `late()`: the simulation has passed the unit's time and made what is left itself (the
/// arrivals made `between` the steps can take longer than the step).
fn submit(nodes: &[NodeKeys], j: &SubmitJob, between: &mut dyn FnMut(), late: &dyn Fn() -> bool) {
    let (Some(origin), Some(dest)) = (nodes.get(j.node), nodes.get(j.dest)) else {
        return;
    };
    let refs: Vec<(&str, &[u8])> = j
        .files
        .iter()
        .map(|(n, b)| (n.as_str(), b.as_slice()))
        .collect();
    let local = j.node == j.dest;
    // Each file hashed once: for the header's entries and the check's memo key.
    let entries = Envelope::file_entries(&refs);
    let sums: Vec<_> = entries.iter().map(|e| e.sha256).collect();
    let Ok(info) = check_unit_ahead(&refs, &sums, if local { 3 } else { 2 }) else {
        return;
    };
    between();
    if late() {
        return;
    }
    let bytes: Vec<&[u8]> = refs.iter().map(|(_, b)| *b).collect();
    let header = Header {
        id: j.id,
        from: info.from.clone(),
        to: info.to.clone(),
        origin: origin.keys.id(),
        destination: dest.keys.id(),
        sealed_to: dest.seal_to,
        doc_kind: info.doc_kind,
        subject: info.subject.clone(),
        stamp: info.stamp.clone(),
        supersedes: j.supersedes,
        created_at_ms: j.at_ms,
        files: entries,
    };
    // The files' digests were computed from these bytes above (`file_entries`).
    let Ok(unsigned) = Envelope::seal_listed(header, &bytes, j.seed) else {
        return;
    };
    between();
    if late() {
        return;
    }
    let env = unsigned.sign(&origin.keys);
    between();
    if late() {
        return;
    }
    let digest = env.digest();
    sign(
        origin,
        j.id,
        digest,
        ReceiptKind::Accepted { hop: 0 },
        j.at_ms,
    );
    if local {
        sign(origin, j.id, digest, ReceiptKind::Delivered, j.at_ms);
    }
}

/// The receipt the receiving node signs for each envelope: Delivered at its destination,
/// Accepted (hop 1 from the origin, 2 from a relay) at a relay. Stops when `late()`.
fn arrival(nodes: &[NodeKeys], j: &ArrivalJob, late: &dyn Fn() -> bool) {
    let Some(me) = nodes.get(j.node) else {
        return;
    };
    let my_id = me.keys.id();
    for header_bytes in &j.headers {
        if late() {
            return;
        }
        let Ok(h) = Header::decode(header_bytes) else {
            continue;
        };
        let kind = if h.destination == my_id {
            ReceiptKind::Delivered
        } else {
            ReceiptKind::Accepted {
                hop: if j.from == h.origin { 1 } else { 2 },
            }
        };
        // The envelope digest receipts name: SHA-256 of the header bytes.
        sign(me, h.id, sha256(header_bytes), kind, j.at_ms);
    }
}

/// The binding the office's home node signs when it registers the office.
fn bind(nodes: &[NodeKeys], j: BindJob) {
    let Some(home) = nodes.get(j.node) else {
        return;
    };
    OfficeBinding {
        office: j.office,
        kinds: j.kinds,
        operator: home.keys.id(),
        since_ms: j.at_ms,
        released: false,
    }
    .sign(&home.keys.identity);
}

fn sign(node: &NodeKeys, id: EnvelopeId, digest: [u8; 32], kind: ReceiptKind, at_ms: u64) {
    Receipt {
        envelope: id,
        digest,
        kind,
        node: node.keys.id(),
        at_ms,
    }
    .sign(&node.keys.identity);
}
