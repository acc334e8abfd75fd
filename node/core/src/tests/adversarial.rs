//! Adversarial peers: each attack must be refused with a clear answer and change nothing
//! that matters (inbox, files, slots, outbox, sent status, routing).

use renkei_protocol::envelope::{Envelope, Header};
use renkei_protocol::ids::EnvelopeId;
use renkei_protocol::keys::OperatorKeys;
use renkei_protocol::receipt::{Receipt, ReceiptKind, RejectCode, SignedReceipt};
use renkei_protocol::wire::{HopOutcome, RefusalCode, Request, Response};

use super::net::{Net, Tamper};
use super::{CM, SVC, inbox, sent_status, submit_riyohyo, two_operators};
use crate::io::{ApiCommand, ApiReply};
use crate::store::{MemoryStore, Tree};

/// The keys the harness gives node `i`.
fn keys_of(i: u8) -> OperatorKeys {
    OperatorKeys::from_seeds([i + 1; 32], [i + 101; 32])
}

/// Everything a delivery can touch at a destination: received envelopes, inbox, files,
/// document slots, supersession and dedup.
pub(super) fn delivery_state(m: &MemoryStore) -> Vec<Vec<Vec<u8>>> {
    [
        Tree::Envelopes,
        Tree::Inbox,
        Tree::Files,
        Tree::Slots,
        Tree::Supersedes,
        Tree::Dedup,
    ]
    .iter()
    .map(|t| m.values(*t).map(std::borrow::Cow::into_owned).collect())
    .collect()
}

/// Two connected operators A (node 0, homes CM) and B (node 1, homes SVC); A accepts a
/// unit for SVC while the link is cut, so the envelope sits in A's outbox. Returns the
/// envelope id and bytes.
fn pending_unit() -> (Net, EnvelopeId, Vec<u8>) {
    let mut net = two_operators();
    net.partition(0, 1);
    let id = submit_riyohyo(&mut net);
    let env = net
        .memory(0)
        .get_raw(Tree::Envelopes, id.as_bytes())
        .unwrap();
    (net, id, env)
}

fn rejected(receipt: &[u8]) -> (RejectCode, String) {
    match SignedReceipt::decode(receipt)
        .unwrap()
        .receipt()
        .kind
        .clone()
    {
        ReceiptKind::Rejected { code, text } => (code, text),
        other => panic!("expected Rejected, got {other:?}"),
    }
}

/// Re-seals `env`'s files under a modified header, signed by `signer`.
fn reseal(env: &[u8], signer: &OperatorKeys, edit: impl FnOnce(&mut Header)) -> Envelope {
    let env = Envelope::decode(env).unwrap();
    let opened = env.open(&keys_of(1)).unwrap();
    let (mut h, files) = (opened.header, opened.files);
    edit(&mut h);
    let refs: Vec<&[u8]> = files.iter().map(Vec::as_slice).collect();
    Envelope::seal_and_sign(h, &refs, signer, [9; 32]).unwrap()
}

#[test]
fn forged_origin_signature_is_rejected_and_does_not_poison_dedup() {
    let (mut net, id, env) = pending_unit();
    let mut forged = env.clone();
    let last = forged.len() - 1;
    forged[last] ^= 0x01; // the signature is the last field
    let before = delivery_state(net.memory(1));
    let (code, text) = rejected(&net.deliver_raw(0, 1, forged.clone()));
    assert_eq!(code, RejectCode::BadSignature, "{text}");
    assert!(text.contains("signature"), "{text}");
    assert_eq!(delivery_state(net.memory(1)), before, "state changed");
    assert!(inbox(&mut net, 1, SVC, false).is_empty());
    // The genuine envelope with the same id is still delivered afterwards: a forged copy
    // must not occupy its id in the dedup index.
    net.heal(0, 1);
    net.run_for(5_000);
    assert_eq!(sent_status(&mut net, 0, CM, id), "delivered");
    assert_eq!(inbox(&mut net, 1, SVC, false).len(), 1);
    // Replaying the forged copy now changes nothing: it names the same header (digest) as
    // the delivered envelope, so it gets that envelope's first answer, like any duplicate.
    let genuine = net.deliver_raw(0, 1, env);
    let after = net.memory(1).values_all();
    assert_eq!(net.deliver_raw(0, 1, forged), genuine);
    assert_eq!(net.memory(1).values_all(), after);
    assert_eq!(inbox(&mut net, 1, SVC, false).len(), 1);
}

#[test]
fn envelope_from_operator_not_in_roster_is_rejected() {
    let (mut net, _, env) = pending_unit();
    let stranger = OperatorKeys::from_seeds([0xEE; 32], [0xEF; 32]);
    let rogue = reseal(&env, &stranger, |h| {
        h.origin = stranger.id();
        h.id = EnvelopeId([0x77; 16]);
    });
    assert!(rogue.verify().is_ok(), "the rogue envelope is well signed");
    let before = delivery_state(net.memory(1));
    // Relayed in by a roster peer (node 0), so only the origin check can catch it.
    let (code, text) = rejected(&net.deliver_raw(0, 1, rogue.encode()));
    assert_eq!(code, RejectCode::UnknownOperator, "{text}");
    assert!(text.contains("not a roster operator"), "{text}");
    assert_eq!(delivery_state(net.memory(1)), before, "state changed");
    assert!(inbox(&mut net, 1, SVC, false).is_empty());
}

#[test]
fn replayed_envelope_gets_the_first_answer_and_changes_nothing() {
    let (mut net, id, env) = pending_unit();
    net.heal(0, 1);
    net.run_for(5_000);
    assert_eq!(sent_status(&mut net, 0, CM, id), "delivered");
    let first = net.deliver_raw(0, 1, env.clone());
    let before: Vec<Vec<u8>> = net.memory(1).values_all();
    let delivered_before = net.core(1).counters().delivered;
    for _ in 0..3 {
        assert_eq!(net.deliver_raw(0, 1, env.clone()), first, "another answer");
    }
    assert_eq!(
        net.memory(1).values_all(),
        before,
        "a replay changed the store"
    );
    assert_eq!(net.core(1).counters().delivered, delivered_before);
    assert_eq!(
        SignedReceipt::decode(&first).unwrap().receipt().kind,
        ReceiptKind::Delivered
    );
    assert_eq!(inbox(&mut net, 1, SVC, false).len(), 1);
}

#[test]
fn hop_ack_with_receipt_signed_by_wrong_node_does_not_settle() {
    let mut net = Net::new(&[("a", false), ("b", false), ("c", false)]);
    net.connect(0, 1);
    net.add_cm_and_svc();
    net.run_for(100);
    net.partition(0, 1);
    let id = submit_riyohyo(&mut net);
    // B's answers reach A with every receipt re-signed by C, a roster operator that never
    // saw the envelope (same envelope id, digest and kind: only the signer is wrong).
    let c = keys_of(2);
    let by = c.id();
    net.tamper = Some(resign_hop_acks(c, move |rc| rc.node = by));
    net.heal(0, 1);
    net.run_for(3_000);
    assert_eq!(sent_status(&mut net, 0, CM, id), "accepted");
    assert!(
        net.memory(0).get_raw(Tree::Outbox, id.as_bytes()).is_some(),
        "the outbox entry was settled by another node's receipt"
    );
    let ApiReply::Sent(v) = net.api(0, CM, ApiCommand::Sent { id: Some(id) }) else {
        panic!()
    };
    assert!(
        v[0].receipts.iter().all(|r| r.kind != "delivered"),
        "{:?}",
        v[0].receipts
    );
    // With honest answers the entry settles: it was the signer that was refused.
    net.tamper = None;
    net.run_for(10 * 60_000);
    assert_eq!(sent_status(&mut net, 0, CM, id), "delivered");
    assert!(net.memory(0).get_raw(Tree::Outbox, id.as_bytes()).is_none());
}

#[test]
fn forwarded_delivered_receipt_from_non_destination_is_ignored() {
    // C is a roster operator but not the destination: its "Delivered" is a forgery.
    let mut net = Net::new(&[("a", false), ("b", false), ("c", false)]);
    net.connect(0, 1);
    net.connect(0, 2);
    net.add_cm_and_svc();
    net.run_for(100);
    net.partition(0, 1);
    let id = submit_riyohyo(&mut net);
    let env = Envelope::decode(
        &net.memory(0)
            .get_raw(Tree::Envelopes, id.as_bytes())
            .unwrap(),
    )
    .unwrap();
    let c = keys_of(2);
    let fake = Receipt {
        envelope: id,
        digest: env.digest(),
        kind: ReceiptKind::Delivered,
        node: c.id(),
        at_ms: net.now,
    }
    .sign(&c.identity);
    let resp = net.inbound_from(0, c.id(), Request::Receipts(vec![fake.encode()]));
    assert_eq!(resp, Response::ReceiptsTaken(0));
    assert_eq!(sent_status(&mut net, 0, CM, id), "accepted");
}

#[test]
fn binding_hijack_earlier_binding_holds() {
    let mut net = Net::new(&[("a", false), ("b", false), ("c", false)]);
    net.connect(0, 1);
    net.add_cm_and_svc();
    net.run_for(100);
    // C, not yet connected, registers the office that B homes, and publishes its binding.
    net.add_office(2, SVC, "11");
    net.connect(0, 2);
    net.run_for(60_000);
    assert_eq!(net.core(0).counters().binding_conflicts, 1);
    let ApiReply::Status(st) = net.operator(0, ApiCommand::Status) else {
        panic!()
    };
    assert!(
        st.binding_conflicts
            .iter()
            .any(|n| n.contains(SVC) && n.contains("claimed by")),
        "{:?}",
        st.binding_conflicts
    );
    let ApiReply::Directory(d) = net.api(
        0,
        CM,
        ApiCommand::Lookup {
            office: SVC.parse().unwrap(),
        },
    ) else {
        panic!()
    };
    assert_eq!(d.operator, Some(net.id(1).to_string()), "routing changed");
    let id = submit_riyohyo(&mut net);
    net.run_for(5_000);
    assert_eq!(sent_status(&mut net, 0, CM, id), "delivered");
    assert_eq!(inbox(&mut net, 1, SVC, false).len(), 1);
    assert!(
        inbox(&mut net, 2, SVC, false).is_empty(),
        "the hijacker got it"
    );
}

#[test]
fn request_from_peer_not_in_roster_is_refused_without_effect() {
    let (mut net, _, env) = pending_unit();
    let stranger = OperatorKeys::from_seeds([0xEE; 32], [0xEF; 32]).id();
    let before = net.memory(1).values_all();
    for req in [
        Request::Deliver(vec![env.clone()]),
        Request::Receipts(vec![]),
        Request::DirectorySync {
            roster_serial: 0,
            cursor: 0,
        },
    ] {
        match net.inbound_from(1, stranger, req) {
            Response::Refused { code, message } => {
                assert_eq!(code, RefusalCode::NotInRoster);
                assert!(message.contains("not in this node's federation roster"));
            }
            other => panic!("{other:?}"),
        }
    }
    assert_eq!(net.memory(1).values_all(), before, "state changed");
    assert!(inbox(&mut net, 1, SVC, false).is_empty());
}

#[test]
fn envelope_id_reused_with_different_content_is_rejected() {
    let (mut net, id, env) = pending_unit();
    net.heal(0, 1);
    net.run_for(5_000);
    assert_eq!(sent_status(&mut net, 0, CM, id), "delivered");
    let first = net.deliver_raw(0, 1, env.clone());
    // The same id, validly signed by the same origin, with another header.
    let other = reseal(&env, &keys_of(0), |h| h.created_at_ms += 1);
    assert_eq!(other.id(), id);
    let before = delivery_state(net.memory(1));
    let (code, text) = rejected(&net.deliver_raw(0, 1, other.encode()));
    assert_eq!(code, RejectCode::Malformed);
    assert!(
        text.contains("already used for different content"),
        "{text}"
    );
    assert_eq!(delivery_state(net.memory(1)), before, "state changed");
    assert_eq!(inbox(&mut net, 1, SVC, false).len(), 1);
    // The original still gets its first answer.
    assert_eq!(net.deliver_raw(0, 1, env), first);
}

#[test]
fn audit_export_holds_every_unit_of_the_month_and_verifies() {
    use renkei_protocol::export::{AuditExport, Direction};
    let (mut net, id, _) = pending_unit();
    net.heal(0, 1);
    net.run_for(5_000);
    assert_eq!(sent_status(&mut net, 0, CM, id), "delivered");
    let export = |net: &mut Net, node: usize, office: &str, month: &str| -> AuditExport {
        match net.operator(
            node,
            ApiCommand::AuditExport {
                office: office.parse().unwrap(),
                month: month.into(),
            },
        ) {
            ApiReply::AuditExport(b) => AuditExport::decode(&b).unwrap(),
            other => panic!("{other:?}"),
        }
    };
    let roster = net.roster.roster().clone();
    // The fixture unit is about 202505 (subject); the harness clock is in 202506.
    let sent = export(&mut net, 0, CM, "202505");
    assert_eq!(sent.entries.len(), 1);
    assert_eq!(sent.entries[0].direction, Direction::Sent);
    assert_eq!(sent.entries[0].proof.header().id, id);
    let lines = sent.verify(&roster);
    assert!(lines.iter().all(Result::is_ok), "{lines:?}");
    let lines = lines[0].as_ref().unwrap();
    assert!(
        lines
            .iter()
            .any(|l| l.starts_with("delivered by operator b")),
        "{lines:?}"
    );
    let received = export(&mut net, 1, SVC, "202505");
    assert_eq!(received.entries.len(), 1);
    assert_eq!(received.entries[0].direction, Direction::Received);
    assert!(received.verify(&roster).iter().all(Result::is_ok));
    // Created this month (June 2025, Japan time) counts too; another month is empty.
    assert_eq!(export(&mut net, 0, CM, "202506").entries.len(), 1);
    assert!(export(&mut net, 0, CM, "202401").entries.is_empty());
    // A bundle relabelled for another office does not verify.
    let mut forged = sent.clone();
    forged.office = SVC.parse().unwrap();
    let r = forged.verify(&roster);
    assert!(
        r[0].as_ref()
            .is_err_and(|e| e.to_string().contains("not sent by office")),
        "{r:?}"
    );
    // Bad month and offices not homed here are refused.
    assert!(matches!(
        net.operator(
            0,
            ApiCommand::AuditExport {
                office: CM.parse().unwrap(),
                month: "2025-5".into()
            }
        ),
        ApiReply::BadRequest(_)
    ));
    assert!(matches!(
        net.operator(
            0,
            ApiCommand::AuditExport {
                office: SVC.parse().unwrap(),
                month: "202505".into()
            }
        ),
        ApiReply::NotFound(_)
    ));
    // An office (its token: its administrators) may have its own, never another's.
    assert!(matches!(
        net.api(
            0,
            CM,
            ApiCommand::AuditExport {
                office: CM.parse().unwrap(),
                month: "202505".into()
            }
        ),
        ApiReply::AuditExport(_)
    ));
    net.add_office(0, "4071481602", "15");
    assert!(matches!(
        net.api(
            0,
            "4071481602",
            ApiCommand::AuditExport {
                office: CM.parse().unwrap(),
                month: "202505".into()
            }
        ),
        ApiReply::Forbidden(_)
    ));
}

#[test]
fn a_forged_binding_is_refused_and_counted_unless_it_equals_the_one_held() {
    use renkei_protocol::roster::SignedBinding;
    let mut net = Net::new(&[("a", false), ("b", false), ("c", false)]);
    net.connect(0, 1);
    net.add_office(1, SVC, "11");
    net.run_for(60_000);
    let held = net
        .memory(0)
        .get_raw(Tree::Bindings, SVC.as_bytes())
        .expect("a learnt b's binding");
    let genuine = SignedBinding::decode(&held).unwrap();
    let forger = keys_of(2);

    // b's very binding, signed by c: equal to what a holds, so it changes nothing and is
    // not even checked.
    let same = genuine.binding().clone().sign(&forger.identity);
    net.core_mut(0).learn_binding(same).unwrap();
    assert_eq!(net.core(0).counters().bindings_refused, 0);

    // A newer binding for b's office, signed by c: refused, counted, nothing changes.
    let mut newer = genuine.binding().clone();
    newer.since_ms += 1;
    net.core_mut(0)
        .learn_binding(newer.clone().sign(&forger.identity))
        .unwrap();
    assert_eq!(net.core(0).counters().bindings_refused, 1);
    assert_eq!(
        net.memory(0).get_raw(Tree::Bindings, SVC.as_bytes()),
        Some(held.clone())
    );
    // The same newer binding signed by b itself is learnt.
    net.core_mut(0)
        .learn_binding(newer.sign(&keys_of(1).identity))
        .unwrap();
    assert_eq!(net.core(0).counters().bindings_refused, 1);
    assert_ne!(
        net.memory(0).get_raw(Tree::Bindings, SVC.as_bytes()),
        Some(held)
    );
}

#[test]
fn envelope_times_outside_now_plus_or_minus_the_bounds_are_refused() {
    let (mut net, _, env) = pending_unit();
    let now = net.now;
    let skew = crate::MAX_SKEW_MS_DEFAULT;
    for (created, says) in [
        (now + skew + 60_000, "ahead of this node's clock"),
        (0, "in the past, beyond the federation's delivery window"),
    ] {
        let edited = reseal(&env, &keys_of(0), |h| {
            h.created_at_ms = created;
            h.id = EnvelopeId([created as u8 ^ 0x5A; 16]);
        });
        let before = delivery_state(net.memory(1));
        let (code, text) = rejected(&net.deliver_raw(0, 1, edited.encode()));
        assert_eq!(code, RejectCode::Malformed, "{text}");
        assert!(text.contains(says), "{text}");
        assert!(text.contains(&created.to_string()), "{text}");
        assert!(inbox(&mut net, 1, SVC, false).is_empty());
        // Refused without a trace: not even remembered (a copy with a forged time must
        // not take the genuine envelope's id).
        assert_eq!(delivery_state(net.memory(1)), before);
    }
    // Within the skew, ahead of the destination's clock, is fine.
    let ok = reseal(&env, &keys_of(0), |h| {
        h.created_at_ms = now + skew / 2;
        h.id = EnvelopeId([0x42; 16]);
    });
    match SignedReceipt::decode(&net.deliver_raw(0, 1, ok.encode()))
        .unwrap()
        .receipt()
        .kind
    {
        ReceiptKind::Delivered => {}
        ref other => panic!("expected Delivered, got {other:?}"),
    }
}

#[test]
fn a_relay_refuses_destinations_outside_its_roster() {
    let mut net = Net::new(&[("a", false), ("relay", true), ("b", false)]);
    net.connect(0, 1);
    net.connect(1, 2);
    net.add_office(0, CM, "43");
    net.add_office(2, SVC, "11");
    net.run_for(1_000);
    net.partition(0, 1);
    let id = submit_riyohyo(&mut net);
    let env = net
        .memory(0)
        .get_raw(Tree::Envelopes, id.as_bytes())
        .unwrap();
    let outsider = OperatorKeys::from_seeds([0xD0; 32], [0xD1; 32]);
    let env = Envelope::decode(&env).unwrap();
    let opened = env.open(&keys_of(2)).unwrap();
    let (mut h, files) = (opened.header, opened.files);
    h.destination = outsider.id();
    h.sealed_to = outsider.seal.public();
    h.id = EnvelopeId([0x31; 16]);
    let refs: Vec<&[u8]> = files.iter().map(Vec::as_slice).collect();
    let bad = Envelope::seal_and_sign(h, &refs, &keys_of(0), [3; 32]).unwrap();
    let before = net.memory(1).values(Tree::Outbox).count();
    let (code, text) = rejected(&net.deliver_raw(0, 1, bad.encode()));
    assert_eq!(code, RejectCode::NoRoute, "{text}");
    assert!(text.contains("not in this relay's roster"), "{text}");
    assert_eq!(net.memory(1).values(Tree::Outbox).count(), before);
    assert!(
        net.memory(1)
            .get_raw(Tree::Envelopes, &[0x31; 16])
            .is_none()
    );
}

#[test]
fn a_prepared_delivery_is_decided_like_a_raw_one() {
    // The same envelope, prepared by the driver's stage (here: by hand, as the runtime
    // does) or raw (prepared by the core), gets the same receipt bytes and state.
    let (net_a, _, env) = pending_unit();
    let (mut net_b, _, _) = pending_unit();
    let mut net_a = net_a;
    let raw = net_a.deliver_raw(0, 1, env.clone());
    let prepared =
        crate::PreparedEnvelope::all(&keys_of(1), &renkei_protocol::keys::Strict, vec![env]);
    let from = net_b.id(0);
    let core = net_b.core_mut(1);
    core.handle(
        net_a.now,
        crate::Input::Deliver {
            id: 7,
            from,
            envelopes: prepared,
        },
    )
    .unwrap();
    core.commit().unwrap();
    let answer = core.drain_effects().into_iter().find_map(|e| match e {
        crate::Effect::Respond {
            id: 7,
            response: Response::HopAcks(acks),
        } => Some(acks),
        _ => None,
    });
    let acks = answer.expect("a response to the prepared delivery");
    match &acks[0].outcome {
        HopOutcome::Accepted(r) => assert_eq!(r, &raw),
        other => panic!("{other:?}"),
    }
    assert_eq!(
        delivery_state(net_a.memory(1)),
        delivery_state(net_b.memory(1))
    );
}

/// Found by cargo-mutants (outbox.rs: the hop acknowledgement's receipt must name this
/// envelope *and* its digest; a next hop's `bad_signature` means damage in transit).
#[test]
fn hop_acks_naming_another_digest_or_a_bad_signature_do_not_settle() {
    let mut net = two_operators();
    net.partition(0, 1);
    let id = submit_riyohyo(&mut net);
    // First B's receipts name another digest (re-signed by B itself)…
    net.tamper = Some(resign_hop_acks(keys_of(1), |rc| rc.digest[0] ^= 1));
    net.heal(0, 1);
    net.run_for(3_000);
    assert_eq!(sent_status(&mut net, 0, CM, id), "accepted");
    assert!(net.memory(0).get_raw(Tree::Outbox, id.as_bytes()).is_some());
    // …then B says the origin signature was bad: damaged on the way, sent again.
    let b = keys_of(1);
    net.tamper = Some(Box::new(move |i, resp| {
        if i != 1 {
            return;
        }
        if let Response::HopAcks(acks) = resp {
            for a in acks {
                if let HopOutcome::Accepted(r) | HopOutcome::Rejected(r) = &mut a.outcome {
                    let mut rc = SignedReceipt::decode(r).unwrap().receipt().clone();
                    rc.kind = ReceiptKind::Rejected {
                        code: RejectCode::BadSignature,
                        text: "damaged".into(),
                    };
                    let signed = rc.sign(&b.identity).encode();
                    a.outcome = HopOutcome::Rejected(signed);
                    break;
                }
            }
        }
    }));
    let damaged = net.core(0).counters().damaged_in_transit;
    net.run_for(10 * 60_000);
    assert!(net.core(0).counters().damaged_in_transit > damaged);
    assert_ne!(sent_status(&mut net, 0, CM, id), "rejected");
    // Honest answers settle it.
    net.tamper = None;
    net.run_for(10 * 60_000);
    assert_eq!(sent_status(&mut net, 0, CM, id), "delivered");
}

/// Rewrites the receipts in node 1's hop acknowledgements with `change` and signs them
/// again with `signer`'s keys.
fn resign_hop_acks(signer: OperatorKeys, change: impl Fn(&mut Receipt) + 'static) -> Tamper {
    Box::new(move |i, resp| {
        if i != 1 {
            return;
        }
        if let Response::HopAcks(acks) = resp {
            for a in acks {
                if let HopOutcome::Accepted(r) | HopOutcome::Rejected(r) = &mut a.outcome {
                    let mut rc = SignedReceipt::decode(r).unwrap().receipt().clone();
                    change(&mut rc);
                    *r = rc.sign(&signer.identity).encode();
                }
            }
        }
    })
}
