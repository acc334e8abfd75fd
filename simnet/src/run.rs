//! One scenario, one seed, start to finish: build the federation, register the offices,
//! let the directory sync, play the workload while the planned faults happen, stop the
//! faults, wait (bounded) for every envelope to settle, then check.

use std::io::Write;
use std::time::Instant;

use renkei_core::store::{MemoryStore, SharedValues};
use renkei_core::{ApiCommand, ApiReply, Auth, CoreConfig};
use renkei_protocol::ids::EnvelopeId;

use crate::adversary::Adversary;
use crate::calendar;
use crate::checker;
use crate::history::{History, Outcome, Submission, unit_key};
use crate::plan::Plan;
use crate::report::{Counts, Latency, Phases, Report};
use crate::scenario::Scenario;
use crate::sim::{Broken, Sim};
use crate::workload::Workload;

/// How often (virtual ms) the liveness phase checks whether everything settled.
const SETTLE_POLL_MS: u64 = 5_000;

/// Options of a run besides the scenario and seed.
#[derive(Default)]
pub struct RunOptions {
    /// Write the event log here.
    pub trace: Option<Box<dyn Write + Send + Sync>>,
    /// Break the driver on purpose (to show the checkers fail).
    pub broken: Option<Broken>,
    /// Called now and then with (submissions done, total).
    pub progress: Option<Box<dyn FnMut(u64, u64)>>,
    /// The value pool of the nodes' stores (default: a heap pool); see
    /// [`SharedValues::spilling_to`]. The run is the same either way.
    pub values: Option<SharedValues>,
    /// The process ends right after this run (the CLI's single seed): the simulated
    /// federation is left to the operating system instead of being freed piece by piece
    /// (at national scale tens of millions of allocations, 16 s of wall time). Never set
    /// this in a process that goes on: the memory is not returned.
    pub leave_to_exit: bool,
    /// Handle every batch on the run's own thread, never two nodes' side by side on a
    /// second one (`sim/group.rs`); the run is the same either way.
    pub one_at_a_time: bool,
    /// Group every independent batch side by side, not only the directory's heavy ones:
    /// slower, and the run is the same; tests use it to check that grouping changes
    /// nothing on ordinary traffic.
    pub side_by_side_always: bool,
}

impl std::fmt::Debug for RunOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RunOptions")
            .field("trace", &self.trace.is_some())
            .field("broken", &self.broken)
            .field("values", &self.values)
            .field("leave_to_exit", &self.leave_to_exit)
            .field("one_at_a_time", &self.one_at_a_time)
            .field("side_by_side_always", &self.side_by_side_always)
            .finish()
    }
}

/// Valid signatures remembered per run, at least.
const SIGNATURES_MIN: usize = 1 << 20;
/// Valid signatures remembered per envelope: the envelope's and its receipts' (hop 0, each
/// relay hop, delivered, retrieved), with room to spare, so the checkers' pass at the end
/// still finds them.
const SIGNATURES_PER_ENVELOPE: usize = 6;

/// Whether the federation authority assigns every office and nodes take homes from
/// assignments only: in a scenario with a lying member that claims others' offices.
fn assigned(scenario: &Scenario) -> bool {
    scenario.byzantine.as_ref().is_some_and(|b| b.claims)
}

/// Runs `scenario` with `seed`.
pub fn run(scenario: &Scenario, seed: u64, mut opts: RunOptions) -> Report {
    let wall = Instant::now();
    let plan = Plan::derive(scenario, seed);
    let workload = Workload::generate(scenario, seed);
    let start = calendar::parse_start(&scenario.workload.start).unwrap_or(1_745_830_800_000);
    let t0 = start.saturating_sub(scenario.workload.warmup_ms);
    let c = &scenario.core;
    let mut b = Sim::builder()
        .seed(seed)
        .start_ms(t0)
        .net(plan.net.clone())
        .core(CoreConfig {
            expiry_ms: c.expiry_ms,
            retry_base_ms: c.retry_base_ms,
            retry_max_ms: c.retry_max_ms,
            sync_interval_ms: c.sync_interval_ms,
            // A federation facing a lying member takes homes from the authority only.
            require_assignments: assigned(scenario),
            ..CoreConfig::default()
        });
    let dropper = scenario
        .byzantine
        .as_ref()
        .filter(|b| b.drops && b.strikes > 0)
        .map(|b| b.node);
    for (i, name) in plan.nodes.iter().enumerate() {
        // The national relay, and a lying member that relays in order to drop.
        b = if i == 0 || dropper == Some(i) {
            b.relay(name)
        } else {
            b.operator(name)
        };
        b = b.skew_ms(i, plan.skews_ms[i]);
    }
    for (a, bb) in &plan.links {
        b = b.link(*a, *bb);
    }
    if let Some(br) = opts.broken {
        b = b.broken(br);
    }
    // Every signature of the run is checked for real once; the same five inputs again (the
    // directory's bindings at fifty nodes, an envelope at its relay and its destination,
    // the checkers' pass over every receipt) are answered from the run's memory of valid
    // ones (simnet::signatures).
    b = b.remember_signatures(
        (workload.planned.len() * SIGNATURES_PER_ENVELOPE + workload.offices.len())
            .max(SIGNATURES_MIN),
    );
    let values = opts.values.take().unwrap_or_default();
    b = b.values(values.clone());
    let mut sim = b.build();
    sim.set_side_by_side(!opts.one_at_a_time);
    sim.set_side_by_side_always(opts.side_by_side_always);
    if let Some(w) = opts.trace.take() {
        sim.trace_to(w);
    }
    for l in plan.lines() {
        sim.note(&l);
    }

    // A lying member, if the scenario has one: it strikes evenly over the traffic,
    // and claims a share of the others' offices from the start, racing their homes' own
    // bindings through the directory.
    let mut adversary = scenario
        .byzantine
        .as_ref()
        .filter(|b| b.node >= 1 && b.node < sim.len() && b.strikes > 0)
        .map(|b| Adversary::new(b.node, sim.keys(b.node).clone(), seed, b.claims));
    if let Some(a) = adversary.as_mut() {
        a.claim_early(&mut sim, &workload);
        if dropper == Some(a.node()) {
            sim.drop_relayed(a.node());
        }
    }

    // Offices register at their home operators; the directory spreads the bindings.
    let mut counts = Counts {
        offices: workload.offices.len() as u64,
        ..Counts::default()
    };
    for o in &workload.offices {
        let office: renkei_protocol::ids::OfficeNumber = match o.number.parse() {
            Ok(n) => n,
            Err(e) => {
                tracing::error!(office = %o.number, error = %e, "generated office number does not parse");
                continue;
            }
        };
        let kinds: Vec<_> = o
            .role
            .kinds()
            .iter()
            .filter_map(|k| k.parse().ok())
            .collect();
        let cmd = ApiCommand::AddOffice {
            office: office.clone(),
            kinds,
            name: format!("office {}", o.number),
            token_hash: o.token_hash(),
        };
        sim.api(o.home, Auth::Operator, cmd);
        if assigned(scenario) {
            // The federation authority assigns the office to its home (renkei federation
            // assign), and the home installs the assignment (renkei office assign).
            let names = o
                .role
                .kinds()
                .iter()
                .filter_map(|k| k.parse().ok())
                .collect();
            let assignment =
                sim.assignment(office, names, o.home, t0, format!("office {}", o.number));
            sim.api(
                o.home,
                Auth::Operator,
                ApiCommand::AssignOffice { assignment },
            );
        }
    }
    sim.run_until(start);
    for (_, _, r) in sim.take_replies() {
        if !matches!(r, ApiReply::Office(_) | ApiReply::Done) {
            tracing::warn!(reply = ?r, "office registration refused");
        }
    }
    let setup_done = wall.elapsed();
    sim.note("traffic starts");
    for f in &plan.faults {
        sim.schedule(start + f.at_ms, f.fault.clone());
    }

    let strike_every = scenario
        .byzantine
        .as_ref()
        .map_or(0, |b| (workload.planned.len() / b.strikes.max(1)).max(1));

    // The workload.
    let mut history = History::with_capacity(workload.planned.len());
    let mut last_stamp: std::collections::BTreeMap<(usize, usize, crate::payload::UnitKind), u64> =
        Default::default();
    let total = workload.planned.len() as u64;
    let mut ready = Ready::default();
    let mut watch = crate::watch::StatusWatch::default();
    for (j, p) in workload.planned.iter().enumerate() {
        if sim.host_failure().is_some() {
            break;
        }
        sim.run_until(start + p.at_ms);
        absorb(&mut sim, &mut history);
        watch.follow_accepted(&mut history, &workload);
        watch.look(&sim);

        while ready.next <= j {
            ready.prepare(&sim, &workload, start, &mut last_stamp);
        }
        let Some(Unit { files, stamp }) = ready.units.pop_front() else {
            break;
        };
        let from = &workload.offices[p.from];
        let origin = from.home;
        let names: Vec<&str> = files.iter().map(|(n, _)| n.as_str()).collect();
        let key = unit_key(&names);
        let supersedes: Option<EnvelopeId> = p
            .correction_of
            .filter(|_| p.names_replaced)
            .and_then(|k| history.accepted(k));
        let at = sim.now();
        let api = sim.api(
            origin,
            Auth::Office(from.token_hash()),
            ApiCommand::Submit {
                unit: renkei_core::PreparedUnit::new(files),
                supersedes,
            },
        );
        history.submitted(
            api,
            Submission {
                at,
                kind: p.kind,
                from: p.from,
                to: p.to,
                origin,
                stamp,
                key,
                supersedes,
                outcome: Outcome::Waiting,
            },
        );
        // The lying member strikes just after this unit was handed to its origin (1 ms:
        // accepted, not yet delivered), so there are units in flight to lie about.
        if let Some(a) = adversary.as_mut()
            && j % strike_every == strike_every / 2
        {
            sim.run_for(1);
            a.strike(&mut sim, &history, &workload);
        }
        if let Some(cb) = opts.progress.as_mut()
            && j % 256 == 0
        {
            cb(j as u64, total);
        }
    }
    let traffic_end = start + workload.planned.last().map_or(0, |p| p.at_ms);
    sim.run_until(traffic_end.max(start + plan.faults_end_ms));
    absorb(&mut sim, &mut history);
    // Offices download half of what they received (every file of a unit), still under
    // the faults: the last file makes the destination sign `Retrieved` for the origin.
    watch.follow_accepted(&mut history, &workload);
    watch.look(&sim);
    let mut downloads = download_half(&mut sim);
    sim.run_for(DOWNLOAD_MS);
    absorb_with(&mut sim, &mut history, &mut downloads);

    // Liveness: faults stop; everything must settle within the bound.
    sim.heal_all();
    let traffic_done = wall.elapsed();
    let heal = sim.now();
    let bound = heal + scenario.check.liveness_ms;
    while !sim.settled() && sim.now() < bound && sim.host_failure().is_none() {
        sim.run_for(SETTLE_POLL_MS);
        absorb_with(&mut sim, &mut history, &mut downloads);
        watch.follow_accepted(&mut history, &workload);
        watch.look(&sim);
    }
    let settle_ms = sim.now() - heal;
    absorb_with(&mut sim, &mut history, &mut downloads);
    let downloaded = downloads.whole();
    if let Some(cb) = opts.progress.as_mut() {
        cb(total, total);
    }

    let settle_done = wall.elapsed();
    let stopped = sim.host_failure().map(str::to_string);
    let (mut checks, tally, inbox) = if stopped.is_some() {
        Default::default()
    } else {
        checker::check(
            &sim,
            &history,
            &workload,
            scenario.check.plaintext,
            &downloaded,
        )
    };
    if stopped.is_none() {
        // What offices were told during the run (crate::watch).
        checks.untrue_status.merge(std::mem::take(&mut watch.early));
        checks.overdue = std::mem::take(&mut watch.overdue);
    }
    if stopped.is_none() && !sim.settled() {
        let pending = (0..sim.len())
            .filter_map(|n| sim.store(n))
            .map(|s| s.values(renkei_core::store::Tree::Pending).count() as u64)
            .sum::<u64>();
        checks.liveness.count = pending.max(1);
        // Where the work is left: per node, what its outboxes still hold.
        let left: Vec<String> = (0..sim.len())
            .filter_map(|n| sim.store(n).map(|s| (n, s)))
            .filter_map(|(n, s)| {
                let count = |t| s.values(t).count();
                let (o, r, p) = (
                    count(renkei_core::store::Tree::Outbox),
                    count(renkei_core::store::Tree::ReceiptOutbox),
                    count(renkei_core::store::Tree::Pending),
                );
                (o + r + p > 0)
                    .then(|| format!("n{n}: outbox {o}, receipt outbox {r}, pending {p}"))
            })
            .collect();
        checks.liveness.examples.push(format!(
            "{pending} envelopes still awaiting a final receipt {} ms after faults stopped ({})",
            scenario.check.liveness_ms,
            left.join("; ")
        ));
    }
    counts.absorb(&tally);
    for s in &history.subs {
        counts.submitted += 1;
        match s.outcome {
            Outcome::Accepted(_) => counts.accepted += 1,
            Outcome::Refused(ref why) => {
                counts.refused += 1;
                let head: String = why.chars().take(60).collect();
                *counts.refusals.entry(head).or_default() += 1;
            }
            Outcome::Waiting => counts.unanswered += 1,
        }
    }
    let mut points: Vec<(u64, u64)> = inbox
        .iter()
        .filter_map(|r| history.by_key.get(&r.key).map(|i| &history.subs[*i]))
        .zip(inbox.iter())
        .map(|(s, r)| {
            (
                s.at.saturating_sub(start),
                r.received_at.saturating_sub(s.at),
            )
        })
        .collect();
    points.sort_unstable();
    let latency = Latency::of(&points.iter().map(|p| p.1).collect::<Vec<_>>());
    if let Err(e) = sim.log_mut().finish() {
        tracing::warn!(error = %e, "writing the trace failed");
    }
    let end = wall.elapsed();
    let wall_ms = end.as_millis() as u64;
    let ms = |d: std::time::Duration| d.as_millis() as u64;
    let phases = Phases {
        setup_ms: ms(setup_done),
        traffic_ms: ms(traffic_done - setup_done),
        settle_ms: ms(settle_done - traffic_done),
        check_ms: ms(end - settle_done),
    };
    let events = sim.stats().events;
    let report = Report {
        scenario: scenario.name.clone(),
        seed,
        plan,
        counts,
        checks,
        latency,
        settle_ms,
        simulated_ms: sim.now() - t0,
        wall_ms,
        phases,
        events,
        events_per_s: events * 1000 / wall_ms.max(1),
        spilled_bytes: values.spilled_bytes()
            + (0..sim.len())
                .filter_map(|n| sim.store(n))
                .map(MemoryStore::spilled_bytes)
                .sum::<u64>(),
        event_log_hash: sim.log().hash_hex(),
        stopped,
        stats: sim.stats().clone(),
        attacks: adversary.map(|mut a| {
            a.tally(&mut sim);
            a.attacks
        }),
        points,
    };
    if opts.leave_to_exit {
        std::mem::forget((sim, history, workload, inbox, values));
    }
    report
}

/// A unit built for its submission.
struct Unit {
    files: Vec<(String, Vec<u8>)>,
    stamp: String,
}

/// The workload's next units, built in submission order (the stamps of one slot increase
/// strictly, so they are drawn in order).
#[derive(Default)]
struct Ready {
    /// Units `next - units.len() .. next`.
    units: std::collections::VecDeque<Unit>,
    next: usize,
}

impl Ready {
    fn prepare(
        &mut self,
        sim: &Sim,
        workload: &Workload,
        start: u64,
        last_stamp: &mut std::collections::BTreeMap<(usize, usize, crate::payload::UnitKind), u64>,
    ) {
        let i = self.next;
        self.next += 1;
        let p = &workload.planned[i];
        let (from, to) = (&workload.offices[p.from], &workload.offices[p.to]);
        let origin = from.home;
        let due = start + p.at_ms;
        let slot = (p.from, p.to, p.kind);
        let secs =
            (sim.local_at(origin, due) / 1000).max(last_stamp.get(&slot).map_or(0, |s| s + 1));
        last_stamp.insert(slot, secs);
        let stamp = calendar::stamp(secs * 1000);
        let files = p.kind.build(&from.number, &to.number, &stamp);
        self.units.push_back(Unit { files, stamp });
    }
}

/// Virtual time given to the downloads before the faults stop.
const DOWNLOAD_MS: u64 = 1_000;

/// The workload's downloads: for each unit, the fetch calls still unanswered, and
/// whether one failed.
#[derive(Default)]
struct Downloads {
    /// API call → unit.
    calls: std::collections::BTreeMap<renkei_core::ApiId, EnvelopeId>,
    /// Unit → (fetches unanswered, a fetch failed).
    units: std::collections::BTreeMap<EnvelopeId, (usize, bool)>,
}

impl Downloads {
    /// Units every file of which was fetched.
    fn whole(&self) -> Vec<EnvelopeId> {
        self.units
            .iter()
            .filter(|(_, (left, failed))| *left == 0 && !failed)
            .map(|(id, _)| *id)
            .collect()
    }
}

/// Every up node's offices fetch each file of every other unit in their inbox (by the
/// envelope id's first byte).
fn download_half(sim: &mut Sim) -> Downloads {
    let mut todo = Vec::new();
    for n in 0..sim.len() {
        let Some(core) = sim.core(n) else { continue };
        for v in core.store().values(renkei_core::store::Tree::Inbox) {
            let Ok(rec) = renkei_core::records::decode::<renkei_core::records::InboxRec>(
                renkei_core::store::Tree::Inbox,
                &v,
            ) else {
                continue;
            };
            if rec.id.0[0] % 2 == 1 {
                continue;
            }
            let Ok(h) = renkei_protocol::envelope::Header::decode(&rec.header) else {
                continue;
            };
            let names: Vec<String> = h.files.iter().map(|f| f.name.clone()).collect();
            todo.push((n, rec.office.clone(), rec.id, names));
        }
    }
    let mut d = Downloads::default();
    for (n, office, id, names) in todo {
        let token = renkei_protocol::envelope::sha256(office.as_str().as_bytes());
        d.units.insert(id, (names.len(), false));
        for name in names {
            let api = sim.api(n, Auth::Office(token), ApiCommand::Fetch { id, name });
            d.calls.insert(api, id);
        }
    }
    d
}

/// [`absorb`], taking the answers to the downloads' fetches aside.
fn absorb_with(sim: &mut Sim, history: &mut History, downloads: &mut Downloads) {
    for (api, _, reply) in sim.take_replies() {
        if let Some(id) = downloads.calls.remove(&api) {
            if let Some((left, failed)) = downloads.units.get_mut(&id) {
                *left = left.saturating_sub(1);
                *failed |= !matches!(reply, ApiReply::File(_));
            }
            continue;
        }
        absorb_one(history, api, reply);
    }
}

fn absorb(sim: &mut Sim, history: &mut History) {
    for (api, _, reply) in sim.take_replies() {
        absorb_one(history, api, reply);
    }
}

fn absorb_one(history: &mut History, api: renkei_core::ApiId, reply: ApiReply) {
    let outcome = match reply {
        ApiReply::Accepted(v) => match v.id.parse::<EnvelopeId>() {
            Ok(id) => Outcome::Accepted(id),
            Err(e) => Outcome::Refused(format!("accepted with an unreadable id {}: {e}", v.id)),
        },
        other => Outcome::Refused(refusal(&other)),
    };
    history.replied(api, outcome);
}

fn refusal(r: &ApiReply) -> String {
    match r {
        ApiReply::Invalid(f) => format!(
            "invalid: {}",
            f.iter()
                .map(|x| x.message.as_str())
                .collect::<Vec<_>>()
                .join("; ")
        ),
        ApiReply::Unroutable(m) => format!("unroutable: {m}"),
        ApiReply::Forbidden(m) => format!("forbidden: {m}"),
        ApiReply::Internal(m) => format!("internal: {m}"),
        other => format!("{other:?}"),
    }
}
