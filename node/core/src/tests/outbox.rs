//! The origin's and relays' outbox: how due envelopes are batched, cached, retried and
//! expedited. Most of these were found by cargo-mutants (outbox.rs): rules no other test
//! pinned down (docs/SIMNET.md).

use renkei_protocol::ids::EnvelopeId;

use super::net::{Net, fixture_unit, rename_stamp};
use super::{CM, SVC, accepted_id, sent_status};
use crate::io::{ApiCommand, ApiReply, Input};
use crate::store::Tree;
use crate::unit::PreparedUnit;

/// Submits `n` units from CM (at node 0) to SVC under distinct stamps.
fn submit_n(net: &mut Net, n: u64) -> Vec<EnvelopeId> {
    let base = fixture_unit("d2_kyo_riyohyo");
    (0..n)
        .map(|i| {
            let files = rename_stamp(&base, &format!("202504251646{i:02}"));
            accepted_id(&net.api(
                0,
                CM,
                ApiCommand::Submit {
                    unit: PreparedUnit::new(files),
                    supersedes: None,
                },
            ))
        })
        .collect()
}

/// Node 0 homes CM, node 1 SVC; they know each other's bindings and are then cut apart,
/// so what CM submits waits in node 0's outbox.
fn cut_apart(tweak: fn(&mut crate::CoreConfig)) -> Net {
    let mut net = Net::new_with(&[("a", false), ("b", false)], tweak);
    net.connect(0, 1);
    net.add_office(0, CM, "43");
    net.add_office(1, SVC, "11");
    net.run_for(100);
    net.partition(0, 1);
    net
}

/// The batches node 0 sends node 1 once the link is back: envelope lengths per request.
/// Checks that node 0 counted each request it sent then.
fn batches_after_reconnect(net: &mut Net) -> Vec<Vec<usize>> {
    net.run_for(5_000);
    net.deliveries.clear();
    let counted = net.core(0).counters.batches_sent;
    // The link comes back: each side hears that the other is up.
    net.heal(0, 1);
    let sent: Vec<Vec<usize>> = net
        .deliveries
        .iter()
        .filter(|(from, to, _)| (*from, *to) == (0, 1))
        .map(|(_, _, lens)| lens.clone())
        .collect();
    assert_eq!(
        net.core(0).counters.batches_sent - counted,
        sent.len() as u64,
        "each request counted once"
    );
    sent
}

/// a (homes CM) — relay — b (homes SVC), linked in a line, each knowing the others'
/// bindings.
fn through_a_relay(tweak: fn(&mut crate::CoreConfig)) -> Net {
    let mut net = Net::new_with(&[("a", false), ("relay", true), ("b", false)], tweak);
    net.connect(0, 1);
    net.connect(1, 2);
    net.add_office(0, CM, "43");
    net.add_office(2, SVC, "11");
    net.run_for(1_000);
    net
}

#[test]
fn a_pass_fills_batches_up_to_their_envelope_limit() {
    let mut net = cut_apart(|c| {
        c.batch_envelopes_max = 3;
        c.batch_bytes_max = 1 << 30;
    });
    submit_n(&mut net, 8);
    let shapes: Vec<usize> = batches_after_reconnect(&mut net)
        .iter()
        .map(Vec::len)
        .collect();
    assert_eq!(shapes, [3, 3, 2]);
}

#[test]
fn a_batch_holds_what_fits_its_byte_limit_and_a_big_envelope_goes_alone() {
    // About two and a half envelopes per batch (they are the same size to a few bytes).
    let mut net = cut_apart(|c| {
        c.batch_envelopes_max = 100;
        c.batch_bytes_max = 25_000;
    });
    submit_n(&mut net, 5);
    let batches = batches_after_reconnect(&mut net);
    let len = batches[0][0];
    assert!(
        (9_000..12_500).contains(&len),
        "the limit is set for envelopes of about 10 KB: {len}"
    );
    assert_eq!(
        batches.iter().map(Vec::len).collect::<Vec<_>>(),
        [2, 2, 1],
        "{batches:?}"
    );
    for b in &batches {
        assert!(b.iter().sum::<usize>() <= 25_000);
    }
    // Envelopes each larger than the limit still go, one per request.
    let mut net = cut_apart(|c| {
        c.batch_envelopes_max = 100;
        c.batch_bytes_max = 1_000;
    });
    submit_n(&mut net, 3);
    let shapes: Vec<usize> = batches_after_reconnect(&mut net)
        .iter()
        .map(Vec::len)
        .collect();
    assert_eq!(shapes, [1, 1, 1]);
}

#[test]
fn a_busy_peer_gets_its_window_of_batches_and_the_status_counts_them() {
    let mut net = Net::new_with(&[("a", false), ("b", false)], |c| {
        c.batch_envelopes_max = 100;
        c.batch_bytes_max = 25_000;
    });
    net.connect(0, 1);
    net.add_office(0, CM, "43");
    net.add_office(1, SVC, "11");
    net.run_for(100);
    net.partition(0, 1);
    submit_n(&mut net, 14);
    net.run_for(5_000);
    net.stuck.insert(1);
    net.deliveries.clear();
    net.heal(0, 1);
    // Four requests in flight (the window), two envelopes each (the byte limit); the
    // rest wait their turn, the one already read for a batch that had no room kept in
    // memory for its send.
    let shapes: Vec<usize> = net.deliveries.iter().map(|(_, _, l)| l.len()).collect();
    assert_eq!(shapes, [2, 2, 2, 2]);
    let core = net.core(0);
    assert_eq!(core.send_cache.len(), 1);
    assert_eq!(
        core.send_cache_bytes,
        core.send_cache.values().map(Vec::len).sum::<usize>()
    );
    match net.operator(0, ApiCommand::Status) {
        ApiReply::Status(s) => assert_eq!(s.outbox, 14, "in flight and waiting"),
        other => panic!("{other:?}"),
    }
}

#[test]
fn the_send_cache_gives_its_budget_back_once_sent() {
    let mut net = super::two_operators();
    let ids = submit_n(&mut net, 3);
    net.run_for(100);
    for id in ids {
        assert_eq!(sent_status(&mut net, 0, CM, id), "delivered");
    }
    let core = net.core(0);
    assert!(core.send_cache.is_empty());
    assert_eq!(core.send_cache_bytes, 0);
    // Nothing waits and nothing is in flight, and the status says so.
    for n in [0, 1] {
        match net.operator(n, ApiCommand::Status) {
            ApiReply::Status(s) => assert_eq!((s.outbox, s.receipt_outbox), (0, 0)),
            other => panic!("{other:?}"),
        }
    }
}

#[test]
fn retries_back_off_more_and_more_and_are_counted() {
    let mut net = cut_apart(|c| {
        c.retry_base_ms = 1_000;
        c.retry_max_ms = 64_000;
    });
    let id = submit_n(&mut net, 1)[0];
    // Attempt n waits between half and all of min(1 s × 2^n, 64 s): the gaps grow.
    let mut due = Vec::new();
    for _ in 0..600 {
        net.run_for(500);
        let t = net.core(0).due_of.get(&id).map(|(t, _)| *t);
        if let Some(t) = t
            && due.last() != Some(&t)
        {
            due.push(t);
        }
    }
    let gaps: Vec<u64> = due.windows(2).map(|w| w[1] - w[0]).collect();
    assert!(gaps.len() >= 8, "{gaps:?}");
    for w in gaps.windows(3).take(4) {
        assert!(w[2] > w[0], "backoff grows: {gaps:?}");
    }
    let retries = net.core(0).counters.retries;
    // 300 s of failures: a handful of growing waits, then one per 32–64 s.
    assert!((8..=20).contains(&retries), "{retries} retries");
}

#[test]
fn a_relay_drops_a_unit_it_could_not_deliver_within_the_window() {
    let mut net = through_a_relay(|c| c.relay_grace_ms = 60_000);
    net.partition(1, 2);
    let id = submit_n(&mut net, 1)[0];
    net.run_for(1_000);
    assert!(
        net.store(1)
            .get(Tree::Outbox, id.as_bytes())
            .unwrap()
            .is_some(),
        "the relay holds it"
    );
    // Past the delivery window (expiry and the relays' grace), the relay lets it go.
    net.run_for(net.expiry_ms + 2 * 60_000 + 600_000);
    assert!(
        net.store(1)
            .get(Tree::Outbox, id.as_bytes())
            .unwrap()
            .is_none()
    );
    assert!(
        net.store(1)
            .get(Tree::Envelopes, id.as_bytes())
            .unwrap()
            .is_none()
    );
    let audit: Vec<Vec<u8>> = net
        .store(1)
        .range(Tree::Audit, b"", None, 10_000)
        .unwrap()
        .into_iter()
        .map(|(_, v)| v)
        .collect();
    assert!(
        audit
            .iter()
            .any(|v| v.windows(18).any(|w| w == b"relay_drop_expired")),
        "audited"
    );
}

#[test]
fn a_peer_coming_back_makes_due_what_goes_through_it_envelopes_and_receipts() {
    // a — relay — b: what a sends b goes through the relay.
    let mut net = through_a_relay(|_| {});
    let delivered = submit_n(&mut net, 1)[0];
    net.run_for(1_000);
    assert_eq!(sent_status(&mut net, 0, CM, delivered), "delivered");
    net.partition(0, 1);
    let waiting = submit_n(&mut net, 2)[1];
    // b downloads the delivered unit: its Retrieved goes back through the relay, which
    // cannot reach a.
    assert!(matches!(
        net.api(2, SVC, ApiCommand::FetchUnit { id: delivered }),
        ApiReply::Files(_) | ApiReply::File(_)
    ));
    net.run_for(20_000);
    let now = net.now;
    let due = net.core(0).due_of.get(&waiting).map(|(t, _)| *t);
    assert!(
        due.is_some_and(|t| t > now),
        "a's unit waits on backoff: {due:?}"
    );
    let receipt_due: Vec<u64> = net.core(1).receipt_due.values().copied().collect();
    assert!(
        !receipt_due.is_empty() && receipt_due.iter().all(|t| *t > now),
        "the relay's receipt for a waits on backoff: {receipt_due:?}"
    );
    // Each side hears that the other is back (the link itself stays cut here, so what
    // is due shows in the schedules rather than going out).
    let (a, relay) = (net.id(0), net.id(1));
    let core = net.core_mut(1);
    core.handle(now, Input::PeerUp(a)).unwrap();
    assert!(
        core.receipt_due.values().all(|t| *t == now),
        "due now: {:?}",
        core.receipt_due
    );
    let core = net.core_mut(0);
    core.handle(now, Input::PeerUp(relay)).unwrap();
    assert_eq!(
        core.due_of.get(&waiting).map(|(t, _)| *t),
        Some(now),
        "b's unit goes through the relay that came back: due now"
    );
}

#[test]
fn receipts_in_flight_count_in_the_status() {
    let mut net = super::two_operators();
    let ids = submit_n(&mut net, 2);
    net.run_for(1_000);
    // The origin takes requests from now on and never answers.
    net.stuck.insert(0);
    for id in &ids {
        assert!(matches!(
            net.api(1, SVC, ApiCommand::FetchUnit { id: *id }),
            ApiReply::Files(_)
        ));
    }
    net.run_for(100);
    match net.operator(1, ApiCommand::Status) {
        ApiReply::Status(s) => assert_eq!(s.receipt_outbox, 2, "two Retrieved in flight"),
        other => panic!("{other:?}"),
    }
    assert_eq!(net.core(1).in_flight_receipts(), 1, "one request at a time");
}
