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

/// Node 0 homes CM, node 1 SVC, linked, each knowing the other's bindings.
fn linked_pair(tweak: fn(&mut crate::CoreConfig)) -> Net {
    let mut net = Net::new_with(&[("a", false), ("b", false)], tweak);
    net.connect(0, 1);
    net.add_cm_and_svc();
    net.run_for(100);
    net
}

/// [`linked_pair`] cut apart, so what CM submits waits in node 0's outbox.
fn cut_apart(tweak: fn(&mut crate::CoreConfig)) -> Net {
    let mut net = linked_pair(tweak);
    net.partition(0, 1);
    net
}

/// The batches node 0 sends node 1 once the link is back: envelope lengths per request.
/// Checks that node 0 counted each request it sent then.
fn batches_after_reconnect(net: &mut Net) -> Vec<Vec<usize>> {
    net.run_for(5_000);
    net.clear_sent();
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

/// [`cut_apart`] with batches of at most three envelopes (of any size), and eight units
/// of CM's waiting in node 0's outbox.
fn eight_waiting_in_batches_of_three() -> Net {
    let mut net = cut_apart(|c| {
        c.batch_envelopes_max = 3;
        c.batch_bytes_max = 1 << 30;
    });
    submit_n(&mut net, 8);
    net
}

#[test]
fn a_pass_fills_batches_up_to_their_envelope_limit() {
    let mut net = eight_waiting_in_batches_of_three();
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
    let mut net = cut_apart(|c| {
        c.batch_envelopes_max = 100;
        c.batch_bytes_max = 25_000;
    });
    submit_n(&mut net, 14);
    net.run_for(5_000);
    net.stuck.insert(1);
    net.clear_sent();
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

/// [`linked_pair`] where node 1 then takes requests and never answers.
fn stuck_peer(tweak: fn(&mut crate::CoreConfig)) -> Net {
    let mut net = linked_pair(tweak);
    net.stuck.insert(1);
    net
}

#[test]
fn one_pass_fills_the_window_with_batches_full_by_count() {
    let mut net = eight_waiting_in_batches_of_three();
    net.run_for(5_000);
    net.stuck.insert(1);
    net.clear_sent();
    // The link comes back; b never answers, so whatever a sends went in this one pass.
    net.heal(0, 1);
    let shapes: Vec<usize> = net.deliveries.iter().map(|(_, _, l)| l.len()).collect();
    assert_eq!(
        shapes,
        [3, 3, 2],
        "three batches at once: the window has room"
    );
}

#[test]
fn a_batch_takes_an_envelope_that_fills_it_to_the_byte() {
    let mut net = cut_apart(|c| c.batch_envelopes_max = 100);
    let ids = submit_n(&mut net, 3);
    net.run_for(5_000);
    let len = |net: &Net, id: &EnvelopeId| {
        net.store(0)
            .get(Tree::Envelopes, id.as_bytes())
            .unwrap()
            .unwrap()
            .len()
    };
    // The limit is exactly the first two envelopes: they go together, the third alone.
    let two = len(&net, &ids[0]) + len(&net, &ids[1]);
    net.core_mut(0).cfg.batch_bytes_max = two;
    net.stuck.insert(1);
    net.clear_sent();
    net.heal(0, 1);
    let batches: Vec<Vec<usize>> = net.deliveries.iter().map(|(_, _, l)| l.clone()).collect();
    assert_eq!(batches.len(), 2, "{batches:?} against a limit of {two}");
    assert_eq!(batches[0].iter().sum::<usize>(), two);
}

#[test]
fn a_failed_request_frees_one_slot_of_the_window_not_all() {
    let mut net = stuck_peer(|c| c.batch_envelopes_max = 1);
    submit_n(&mut net, 10);
    assert_eq!(
        net.deliveries.len(),
        4,
        "the window: four requests in flight"
    );
    // One request fails: its slot is free, the other three are still in flight.
    let (b, first) = (net.id(1), net.delivery_ids[0]);
    net.clear_sent();
    net.input(
        0,
        Input::SendFailed {
            id: first,
            to: b,
            error: "reset".into(),
        },
    );
    net.run_for(10);
    assert_eq!(
        net.deliveries.len(),
        1,
        "one more request, into the freed slot"
    );
    assert_eq!(net.core(0).in_flight_envelopes(), 4);
}

#[test]
fn units_waiting_for_a_busy_peer_keep_their_bytes_in_memory_up_to_the_cap() {
    let mut net = stuck_peer(|c| c.batch_envelopes_max = 1);
    // Four in flight; the rest wait for the window with their bytes cached (about 10 KB
    // each: more than a megabyte in all).
    submit_n(&mut net, 4);
    let waiting = 116;
    let base = fixture_unit("d2_kyo_riyohyo");
    for i in 0..waiting {
        let files = rename_stamp(&base, &format!("2025042517{:02}{:02}", i / 60, i % 60));
        accepted_id(&net.api(
            0,
            CM,
            ApiCommand::Submit {
                unit: PreparedUnit::new(files),
                supersedes: None,
            },
        ));
    }
    let core = net.core(0);
    assert_eq!(core.send_cache.len(), waiting);
    let bytes: usize = core.send_cache.values().map(Vec::len).sum();
    assert!(bytes > 1 << 20, "{bytes} bytes");
    assert_eq!(core.send_cache_bytes, bytes);
}

/// Retrieved receipts node `i` owes CM's node for `ids`, made by SVC (homed at `i`)
/// downloading each unit in one batch.
fn download_together(net: &mut Net, i: usize, ids: &[EnvelopeId]) {
    let cmds = ids
        .iter()
        .map(|id| ApiCommand::FetchUnit { id: *id })
        .collect();
    for r in net.api_together(i, SVC, cmds) {
        assert!(matches!(r, ApiReply::Files(_)), "{r:?}");
    }
}

/// Two operators; `n` units delivered from a to b, then downloaded at b while a is away:
/// b owes a their Retrieved receipts.
fn downloaded_while_the_origin_is_away(n: u64) -> (Net, Vec<EnvelopeId>) {
    let mut net = super::two_operators();
    let ids = submit_n(&mut net, n);
    net.run_for(1_000);
    net.partition(0, 1);
    download_together(&mut net, 1, &ids);
    (net, ids)
}

fn receipt_outbox(net: &mut Net, i: usize) -> usize {
    match net.operator(i, ApiCommand::Status) {
        ApiReply::Status(s) => s.receipt_outbox,
        other => panic!("{other:?}"),
    }
}

#[test]
fn receipts_due_for_one_peer_go_in_one_request() {
    // a is away while SVC downloads; when it is back (and never answers), what is due
    // for it goes together.
    let (mut net, _) = downloaded_while_the_origin_is_away(3);
    net.run_for(1_000);
    net.stuck.insert(0);
    net.clear_sent();
    net.heal(0, 1);
    assert_eq!(net.receipt_sends, [(1, 0, 3)]);
}

#[test]
fn receipts_a_relay_took_are_done_at_their_sender() {
    // a — relay — b: b's Retrieved for a goes to the relay, which takes it.
    let mut net = through_a_relay(|_| {});
    let ids = submit_n(&mut net, 2);
    net.run_for(1_000);
    net.clear_sent();
    download_together(&mut net, 2, &ids);
    net.run_for(120_000);
    let from_b: Vec<(usize, usize, usize)> = net
        .receipt_sends
        .iter()
        .filter(|s| s.0 == 2)
        .copied()
        .collect();
    // One request each (the receipt window is one request): each sent once, to the relay.
    assert_eq!(from_b, [(2, 1, 1), (2, 1, 1)]);
    assert_eq!(receipt_outbox(&mut net, 2), 0);
    for id in ids {
        assert_eq!(sent_status(&mut net, 0, CM, id), "retrieved");
    }
}

#[test]
fn a_receipt_no_peer_took_within_its_window_is_dropped() {
    let (mut net, _) = downloaded_while_the_origin_is_away(1);
    net.run_for(60_000);
    assert_eq!(receipt_outbox(&mut net, 1), 1, "waiting for a");
    // Past the longest any node keeps the envelope's routing (expiry and the relays'
    // grace), nobody waits for it any more.
    net.run_for(net.expiry_ms + 24 * 3600 * 1000 + 600_000);
    assert_eq!(receipt_outbox(&mut net, 1), 0);
    assert!(
        net.store(1)
            .range(Tree::ReceiptOutbox, b"", None, 10)
            .unwrap()
            .is_empty()
    );
}

#[test]
fn a_relay_hands_a_unit_back_only_when_it_has_no_other_way() {
    // a — r2 — r1 — r3 — b (roster order r1, r2, r3): r1 gets CM's unit from r2, and its
    // first choice toward b is r2 again; r3 is another way.
    let mut net = Net::new(&[
        ("a", false),
        ("b", false),
        ("r1", true),
        ("r2", true),
        ("r3", true),
    ]);
    for (x, y) in [(0, 3), (3, 2), (2, 4), (4, 1)] {
        net.connect(x, y);
    }
    net.add_cm_and_svc();
    net.run_for(2_000);
    net.clear_sent();
    let id = submit_n(&mut net, 1)[0];
    net.run_for(60_000);
    assert_eq!(sent_status(&mut net, 0, CM, id), "delivered");
    let hops: Vec<(usize, usize)> = net.deliveries.iter().map(|(f, t, _)| (*f, *t)).collect();
    assert_eq!(hops, [(0, 3), (3, 2), (2, 4), (4, 1)], "never back to r2");
}

#[test]
fn a_relay_keeps_its_next_hop_when_that_is_not_where_the_unit_came_from() {
    // a — r1 — r2 — b, b with an address in the roster: r1 could dial b, but its next
    // hop r2 is up, and r2 is not where the unit came from.
    let mut net = Net::new(&[("a", false), ("b", false), ("r1", true), ("r2", true)]);
    let mut roster = net.roster.roster().clone();
    roster.serial += 1;
    roster.operators[1].addrs = vec!["/ip4/127.0.0.1/tcp/1".into()];
    net.roster = roster.sign(&net.authority);
    for i in 0..4 {
        net.install_roster(i);
    }
    for (x, y) in [(0, 2), (2, 3), (3, 1)] {
        net.connect(x, y);
    }
    net.add_cm_and_svc();
    net.run_for(2_000);
    net.clear_sent();
    let id = submit_n(&mut net, 1)[0];
    net.run_for(60_000);
    assert_eq!(sent_status(&mut net, 0, CM, id), "delivered");
    let hops: Vec<(usize, usize)> = net.deliveries.iter().map(|(f, t, _)| (*f, *t)).collect();
    assert_eq!(hops, [(0, 2), (2, 3), (3, 1)]);
}
