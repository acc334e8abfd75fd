//! A lying member of the federation (issue 29): an admitted operator that forges senders,
//! supersedes other operators' units, claims false rejections or stuffs receipts. Each
//! attack is refused and leaves honest offices' inboxes and statuses true.

use renkei_protocol::envelope::{Envelope, Header};
use renkei_protocol::ids::{EnvelopeId, OperatorId};
use renkei_protocol::keys::OperatorKeys;
use renkei_protocol::proof::Proof;
use renkei_protocol::receipt::{Receipt, ReceiptKind, RejectCode, SignedReceipt};
use renkei_protocol::roster::OfficeBinding;
use renkei_protocol::wire::{HopOutcome, Request, Response};

use super::net::{Net, fixture_unit, rename_stamp, replace_bytes};
use super::{CM, SVC, accepted_id, inbox, sent_status};
use crate::io::{ApiCommand, ApiReply};
use crate::store::Tree;
use crate::unit::PreparedUnit;

/// The keys the harness gives node `i`.
fn keys_of(i: u8) -> OperatorKeys {
    OperatorKeys::from_seeds([i + 1; 32], [i + 101; 32])
}

/// A (node 0, homes CM), B (node 1, homes SVC) and C (node 2, a roster member that lies),
/// all connected and with each other's directory.
fn three() -> Net {
    let mut net = Net::new(&[("a", false), ("b", false), ("c", false)]);
    net.connect(0, 1);
    net.connect(0, 2);
    net.connect(1, 2);
    net.add_cm_and_svc();
    net.run_for(60_000);
    net
}

fn submit(net: &mut Net, stamp: &str) -> EnvelopeId {
    accepted_id(&net.api(
        0,
        CM,
        ApiCommand::Submit {
            unit: PreparedUnit::new(rename_stamp(&fixture_unit("d2_kyo_riyohyo"), stamp)),
            supersedes: None,
        },
    ))
}

fn envelope(net: &Net, node: usize, id: EnvelopeId) -> Envelope {
    Envelope::decode(
        &net.memory(node)
            .get_raw(Tree::Envelopes, id.as_bytes())
            .unwrap(),
    )
    .unwrap()
}

/// C's forgery of `genuine`: the same files "from" CM under a newer stamp, naming the
/// genuine unit in `supersedes`, signed by C as origin (C holds the files: say it relayed
/// the unit and learnt them, or made them up).
fn forgery(net: &Net, genuine: &Envelope) -> Envelope {
    let opened = genuine.open(&keys_of(1)).unwrap();
    let (mut h, files): (Header, _) = (opened.header, opened.files);
    let c = keys_of(2);
    h.origin = c.id();
    h.id = EnvelopeId([0x66; 16]);
    h.supersedes = Some(genuine.id());
    h.created_at_ms = net.now;
    let refs: Vec<&[u8]> = files.iter().map(Vec::as_slice).collect();
    Envelope::seal_and_sign(h, &refs, &c, [7; 32]).unwrap()
}

/// "Office `office` (kind `kind`) is homed at `operator` since `since_ms`", unsigned.
fn home(
    office: &str,
    kind: &str,
    operator: renkei_protocol::ids::OperatorId,
    since_ms: u64,
) -> OfficeBinding {
    OfficeBinding {
        office: office.parse().unwrap(),
        kinds: vec![kind.parse().unwrap()],
        operator,
        since_ms,
        released: false,
        name: String::new(),
    }
}

/// Everything a delivery can touch at node `node`.
fn delivery_state(net: &Net, node: usize) -> Vec<Vec<Vec<u8>>> {
    super::adversarial::delivery_state(net.memory(node))
}

fn deliver(net: &mut Net, from: usize, to: usize, env: Vec<u8>) -> HopOutcome {
    match net.inbound_from(to, net.id(from), Request::Deliver(vec![env])) {
        Response::HopAcks(acks) => acks[0].outcome.clone(),
        other => panic!("{other:?}"),
    }
}

#[test]
fn a_forged_sender_is_refused_and_cannot_supersede_the_genuine_unit() {
    let mut net = three();
    let id = submit(&mut net, "20250425164608");
    net.run_for(5_000);
    assert_eq!(sent_status(&mut net, 0, CM, id), "delivered");
    let genuine = envelope(&net, 1, id);
    let forged = forgery(&net, &genuine);
    assert!(
        forged.verify().is_ok(),
        "the forgery is well signed by a roster operator"
    );
    let before = delivery_state(&net, 1);
    let HopOutcome::Rejected(r) = deliver(&mut net, 2, 1, forged.encode()) else {
        panic!("a forged sender was not rejected")
    };
    let ReceiptKind::Rejected { code, text } =
        SignedReceipt::decode(&r).unwrap().receipt().kind.clone()
    else {
        panic!()
    };
    assert_eq!(code, RejectCode::SenderNotBound, "{text}");
    assert!(
        text.contains(CM) && text.contains("bound to operator a"),
        "{text}"
    );
    // Nothing a delivery touches changed: the genuine unit is still the latest, and the
    // forgery's id is not taken.
    assert_eq!(
        delivery_state(&net, 1),
        before,
        "the forgery changed the destination"
    );
    let inb = inbox(&mut net, 1, SVC, false);
    assert_eq!(inb.len(), 1);
    assert_eq!(inb[0].id, id.to_string());
    assert!(inb[0].latest && inb[0].superseded_by.is_none());
    assert_eq!(
        inb[0].origin,
        net.id(0).to_string(),
        "the inbox names the origin"
    );
    assert_eq!(inb[0].origin_name.as_deref(), Some("a"));
}

#[test]
fn a_sender_not_yet_known_is_asked_to_retry_and_taken_after_directory_sync() {
    // B learns of CM's home only through directory sync; a unit that arrives first is
    // asked to come again, not refused for good.
    let mut net = Net::new(&[("a", false), ("b", false)]);
    net.add_office(1, SVC, "11");
    net.connect(0, 1);
    net.run_for(60_000);
    // A learnt SVC's home; now the link is cut, and CM joins A: B has not heard of it.
    net.partition(0, 1);
    net.add_office(0, CM, "43");
    let id = submit(&mut net, "20250425164608");
    let env = envelope(&net, 0, id);
    let before = delivery_state(&net, 1);
    match deliver(&mut net, 0, 1, env.encode()) {
        HopOutcome::RetryLater(why) => {
            assert!(why.contains(CM) && why.contains("not yet known"), "{why}")
        }
        other => panic!("expected retry later, got {other:?}"),
    }
    assert_eq!(delivery_state(&net, 1), before, "nothing is remembered");
    net.heal(0, 1);
    net.run_for(600_000);
    assert_eq!(sent_status(&mut net, 0, CM, id), "delivered");
    assert_eq!(inbox(&mut net, 1, SVC, false).len(), 1);
}

fn false_rejection(net: &Net, liar: usize, id: EnvelopeId, digest: [u8; 32]) -> Vec<u8> {
    let c = keys_of(liar as u8);
    Receipt {
        envelope: id,
        digest,
        kind: ReceiptKind::Rejected {
            code: RejectCode::InvalidCsv,
            text: "made up".into(),
        },
        node: c.id(),
        at_ms: net.now,
    }
    .sign(&c.identity)
    .encode()
}

/// A reaches B only through the relay C (node 2); a unit of CM's is held by C while
/// C's link to B is cut.
fn held_by_the_relay() -> (Net, EnvelopeId) {
    held_by_the_relay_among(0)
}

#[test]
fn a_rejection_from_a_member_off_the_path_is_ignored() {
    let mut net = three();
    net.partition(0, 1);
    let id = submit(&mut net, "20250425164608");
    let env = envelope(&net, 0, id);
    // C, a roster member the unit never went through, tells A it was rejected.
    let lie = false_rejection(&net, 2, id, env.digest());
    let resp = net.inbound_from(0, net.id(2), Request::Receipts(vec![lie]));
    assert_eq!(resp, Response::ReceiptsTaken(0));
    assert_eq!(sent_status(&mut net, 0, CM, id), "accepted");
    net.heal(0, 1);
    net.run_for(60_000);
    assert_eq!(sent_status(&mut net, 0, CM, id), "delivered");
}

#[test]
fn a_false_rejection_on_the_path_is_outranked_by_the_destinations_delivery_and_named_in_the_proof()
{
    // C takes the unit, then lies that it was rejected, and delivers it after all.
    let (mut net, id) = held_by_the_relay();
    let env = envelope(&net, 0, id);
    let lie = false_rejection(&net, 2, id, env.digest());
    net.inbound_from(0, net.id(2), Request::Receipts(vec![lie]));
    assert_eq!(
        sent_status(&mut net, 0, CM, id),
        "relayed",
        "a relay that accepted the unit cannot refuse it afterwards: its rejection is kept as evidence, the unit goes on"
    );
    // The destination gets the unit and says so: that outranks C's rejection.
    net.heal(1, 2);
    net.run_for(600_000);
    assert_eq!(inbox(&mut net, 1, SVC, false).len(), 1);
    assert_eq!(sent_status(&mut net, 0, CM, id), "delivered");
    // The proof holds both statements and says which stands.
    let ApiReply::Proof(bytes) = net.api(0, CM, ApiCommand::Proof { id }) else {
        panic!()
    };
    let proof = Proof::decode(&bytes).unwrap();
    let roster = net.roster.roster().clone();
    let lines = proof.verify(&roster).unwrap();
    let c_line = lines
        .iter()
        .find(|l| l.starts_with("CONTRADICTION"))
        .unwrap_or_else(|| panic!("no contradiction reported: {lines:?}"));
    assert!(
        c_line.contains("operator c") && c_line.contains("destination operator b"),
        "{c_line}"
    );
}

#[test]
fn receipt_stuffing_keeps_one_per_signer_and_kind_and_cannot_push_out_the_delivery() {
    // C is on the unit's path (the relay holding it), so its statements count; it sends
    // 300 hop receipts and 300 rejections before the genuine Delivered.
    let (mut net, id) = held_by_the_relay();
    let env = envelope(&net, 0, id);
    let c = keys_of(2);
    let mut stuffed = Vec::new();
    for i in 0..300u64 {
        for kind in [
            ReceiptKind::Accepted {
                hop: 1 + (i % 200) as u8,
            },
            ReceiptKind::Rejected {
                code: RejectCode::NoRoute,
                text: format!("lie {i}"),
            },
        ] {
            stuffed.push(
                Receipt {
                    envelope: id,
                    digest: env.digest(),
                    kind,
                    node: c.id(),
                    at_ms: net.now + i,
                }
                .sign(&c.identity)
                .encode(),
            );
        }
    }
    for chunk in stuffed.chunks(64) {
        net.inbound_from(0, c.id(), Request::Receipts(chunk.to_vec()));
    }
    net.heal(1, 2);
    net.run_for(600_000);
    assert_eq!(sent_status(&mut net, 0, CM, id), "delivered");
    let kept: Vec<SignedReceipt> = kept_receipts(&net, id)
        .iter()
        .map(|v| SignedReceipt::decode(v).unwrap())
        .collect();
    // Origin's Accepted{0}, B's Delivered, and of C's 601 statements (its genuine hop
    // acknowledgement and the 600 stuffed) one Accepted and one Rejected.
    let mut from_c: Vec<&str> = kept
        .iter()
        .filter(|r| r.receipt().node == c.id())
        .map(|r| r.receipt().kind.name())
        .collect();
    from_c.sort_unstable();
    assert_eq!(from_c, ["accepted", "rejected"], "C's receipts kept");
    assert_eq!(kept.len(), 4, "receipts kept for the envelope");
    let ApiReply::Proof(bytes) = net.api(0, CM, ApiCommand::Proof { id }) else {
        panic!()
    };
    let proof = Proof::decode(&bytes).unwrap();
    assert!(
        proof
            .receipts
            .iter()
            .any(|r| r.receipt().kind == ReceiptKind::Delivered && r.receipt().node == net.id(1)),
        "the genuine Delivered is in the proof"
    );
}

#[test]
fn a_unit_of_another_sender_cannot_supersede() {
    // C homes an office of its own and, lying as origin (an honest origin refuses such a
    // `supersedes` at upload), names A's unit in `supersedes`. Its unit is a unit like any
    // other (delivered), but A's unit stays the latest.
    another_office_names_the_unit(2, "c");
}

/// Found by cargo-mutants (inbox.rs: `&&` → `||` in `same_sender` survived): another office
/// homed at the *same* operator as the unit's sender cannot replace it either.
#[test]
fn another_office_of_the_same_operator_cannot_supersede() {
    another_office_names_the_unit(0, "a");
}

/// An office homed at `origin` (not A's office CM) names A's unit in `supersedes`, signed
/// by `origin`'s operator: delivered, but A's unit stays the latest.
fn another_office_names_the_unit(origin: usize, origin_name: &str) {
    const OTHER: &str = "4071480000";
    let mut net = three();
    net.add_office(origin, OTHER, "43");
    net.run_for(60_000);
    let id = submit(&mut net, "20250425164608");
    net.run_for(5_000);
    let genuine = envelope(&net, 1, id);
    let opened = genuine.open(&keys_of(1)).unwrap();
    let files: Vec<(String, Vec<u8>)> = opened
        .header
        .files
        .iter()
        .zip(opened.files.clone())
        .map(|(f, b)| {
            (
                f.name.replace(CM, OTHER),
                replace_bytes(&b, CM.as_bytes(), OTHER.as_bytes()),
            )
        })
        .collect();
    let c = keys_of(origin as u8);
    let mut h: Header = opened.header;
    h.origin = c.id();
    h.id = EnvelopeId([0x55; 16]);
    h.from.office = OTHER.parse().unwrap();
    h.supersedes = Some(id);
    h.created_at_ms = net.now;
    h.files = files
        .iter()
        .map(|(n, b)| renkei_protocol::envelope::FileEntry {
            name: n.clone(),
            len: b.len() as u64,
            sha256: renkei_protocol::envelope::sha256(b),
        })
        .collect();
    let refs: Vec<&[u8]> = files.iter().map(|(_, b)| b.as_slice()).collect();
    let theirs = Envelope::seal_and_sign(h, &refs, &c, [8; 32]).unwrap();
    let HopOutcome::Accepted(r) = deliver(&mut net, origin, 1, theirs.encode()) else {
        panic!("the other office's unit was refused")
    };
    assert_eq!(
        SignedReceipt::decode(&r).unwrap().receipt().kind,
        ReceiptKind::Delivered
    );
    let inb = inbox(&mut net, 1, SVC, false);
    assert_eq!(inb.len(), 2, "{inb:?}");
    let ours = inb.iter().find(|v| v.id == id.to_string()).unwrap();
    assert!(
        ours.superseded_by.is_none() && ours.latest,
        "another sender's unit replaced it: {ours:?}"
    );
    let other = inb
        .iter()
        .find(|v| v.id == theirs.id().to_string())
        .unwrap();
    assert_eq!(other.origin_name.as_deref(), Some(origin_name));
}

#[test]
fn a_revoked_operator_is_cut_off_and_its_offices_stop_counting() {
    const OTHER: &str = "4071480000";
    let mut net = three();
    net.add_office(2, OTHER, "11");
    net.run_for(60_000);
    // The authority revokes C (its entry ends now) and A installs that roster.
    let c_id = net.id(2);
    let mut r = net.roster.roster().clone();
    r.serial += 1;
    r.issued_at_ms = net.now;
    for o in r.operators.iter_mut().filter(|o| o.id == c_id) {
        o.valid_until_ms = Some(net.now);
    }
    net.roster = r.sign(&net.authority);
    net.install_roster(0);
    // A unit for C's office is refused with a reason, not sealed to C.
    let files: Vec<(String, Vec<u8>)> = fixture_unit("d2_kyo_riyohyo")
        .into_iter()
        .map(|(n, b)| {
            (
                n.replace(SVC, OTHER),
                replace_bytes(&b, SVC.as_bytes(), OTHER.as_bytes()),
            )
        })
        .collect();
    let reply = net.api(
        0,
        CM,
        ApiCommand::Submit {
            unit: PreparedUnit::new(files),
            supersedes: None,
        },
    );
    let ApiReply::Unroutable(why) = reply else {
        panic!("expected unroutable, got {reply:?}")
    };
    assert!(
        why.contains(OTHER) && why.contains("no longer valid"),
        "{why}"
    );
    // C's statements made from now on count for nothing; B's office is still reachable.
    assert!(!net.core(0).peer_allowed(&c_id));
    let id = submit(&mut net, "20250425170000");
    net.run_for(5_000);
    assert_eq!(sent_status(&mut net, 0, CM, id), "delivered");
}

#[test]
fn a_roster_older_than_its_bound_is_reported() {
    let mut net = Net::new_with(&[("a", false)], |c| c.roster_max_age_ms = 60_000);
    let ApiReply::Status(fresh) = net.operator(0, ApiCommand::Status) else {
        panic!()
    };
    assert_eq!(fresh.roster_warning, None);
    net.run_for(120_000);
    let ApiReply::Status(old) = net.operator(0, ApiCommand::Status) else {
        panic!()
    };
    let w = old.roster_warning.expect("a warning for an old roster");
    assert!(w.contains("ask the federation authority"), "{w}");
}

#[test]
fn the_authoritys_assignment_outranks_a_claim_seen_first_and_no_claim_displaces_it() {
    const X: &str = "4071480000";
    let mut net = three();
    // C claims X before its real home does: A learns C's claim first (a hijack).
    net.add_office(2, X, "11");
    net.run_for(60_000);
    let lookup = |net: &mut Net| match net.api(
        0,
        CM,
        ApiCommand::Lookup {
            office: X.parse().unwrap(),
        },
    ) {
        ApiReply::Directory(d) => d.operator_name,
        other => panic!("{other:?}"),
    };
    assert_eq!(
        lookup(&mut net).as_deref(),
        Some("c"),
        "the claim seen first holds"
    );
    // The authority assigns X to B; B installs the assignment, then registers X.
    let assignment = home(X, "11", net.id(1), net.now)
        .sign(&net.authority)
        .encode();
    let r = net.operator(1, ApiCommand::AssignOffice { assignment });
    assert!(matches!(r, ApiReply::Done), "{r:?}");
    net.add_office(1, X, "11");
    net.run_for(60_000);
    assert_eq!(
        lookup(&mut net).as_deref(),
        Some("b"),
        "the assignment outranks the claim"
    );
    // C claims X again, newer (A hears it directly): a conflict, and nothing moves.
    let conflicts = net.core(0).counters().binding_conflicts;
    let claim = home(X, "11", net.id(2), net.now).sign(&keys_of(2).identity);
    net.core_mut(0).learn_binding(claim).unwrap();
    assert_eq!(lookup(&mut net).as_deref(), Some("b"));
    assert_eq!(net.core(0).counters().binding_conflicts, conflicts + 1);
    let ApiReply::Status(st) = net.operator(0, ApiCommand::Status) else {
        panic!()
    };
    assert!(
        st.binding_conflicts
            .iter()
            .any(|n| n.contains(X) && n.contains("assigned by the federation authority")),
        "{:?}",
        st.binding_conflicts
    );
    // A unit for X reaches B.
    let files: Vec<(String, Vec<u8>)> = fixture_unit("d2_kyo_riyohyo")
        .into_iter()
        .map(|(n, b)| {
            (
                n.replace(SVC, X),
                replace_bytes(&b, SVC.as_bytes(), X.as_bytes()),
            )
        })
        .collect();
    let id = accepted_id(&net.api(
        0,
        CM,
        ApiCommand::Submit {
            unit: PreparedUnit::new(files),
            supersedes: None,
        },
    ));
    net.run_for(5_000);
    assert_eq!(sent_status(&mut net, 0, CM, id), "delivered");
    assert_eq!(inbox(&mut net, 1, X, false).len(), 1);
    assert!(
        inbox(&mut net, 2, X, false).is_empty(),
        "the claimant got it"
    );
    // An assignment not signed by the authority is refused with a reason.
    let forged = home(X, "11", net.id(2), net.now)
        .sign(&keys_of(2).identity)
        .encode();
    let r = net.operator(2, ApiCommand::AssignOffice { assignment: forged });
    let ApiReply::BadRequest(why) = r else {
        panic!("{r:?}")
    };
    assert!(why.contains("not by the federation authority"), "{why}");
}

#[test]
fn with_assignments_required_a_bare_claim_is_not_taken() {
    let mut net = Net::new_with(&[("a", false), ("b", false)], |c| {
        c.require_assignments = true
    });
    net.connect(0, 1);
    net.add_cm_and_svc();
    net.run_for(60_000);
    let reply = net.api(
        0,
        CM,
        ApiCommand::Submit {
            unit: PreparedUnit::new(fixture_unit("d2_kyo_riyohyo")),
            supersedes: None,
        },
    );
    assert!(matches!(reply, ApiReply::Unroutable(_)), "{reply:?}");
    // Every office needs its assignment: the recipient's for routing, the sender's for
    // the destination's sender check.
    for (node, office, kind) in [(1, SVC, "11"), (0, CM, "43")] {
        let assignment = home(office, kind, net.id(node), net.now)
            .sign(&net.authority)
            .encode();
        let r = net.operator(node, ApiCommand::AssignOffice { assignment });
        assert!(matches!(r, ApiReply::Done), "{r:?}");
    }
    net.run_for(60_000);
    let id = submit(&mut net, "20250425164608");
    net.run_for(5_000);
    assert_eq!(sent_status(&mut net, 0, CM, id), "delivered");
}

#[test]
fn an_operators_claims_are_bounded() {
    let mut net = Net::new_with(&[("a", false), ("b", false)], |c| {
        c.bindings_per_operator_max = 2
    });
    net.connect(0, 1);
    net.add_office(0, CM, "43");
    for office in [SVC, "4071480000", "4071490009"] {
        net.add_office(1, office, "11");
    }
    net.run_for(60_000);
    let ApiReply::Status(st) = net.operator(0, ApiCommand::Status) else {
        panic!()
    };
    let over: Vec<&String> = st
        .binding_conflicts
        .iter()
        .filter(|n| n.contains("bindings_per_operator_max"))
        .collect();
    assert_eq!(over.len(), 1, "{:?}", st.binding_conflicts);
    assert_eq!(net.core(0).counters().binding_conflicts, 1, "counted once");
    let reachable = [SVC, "4071480000", "4071490009"]
        .iter()
        .filter(|o| {
            match net.api(
                0,
                CM,
                ApiCommand::Lookup {
                    office: o.parse().unwrap(),
                },
            ) {
                ApiReply::Directory(d) => d.reachable,
                other => panic!("{other:?}"),
            }
        })
        .count();
    assert_eq!(reachable, 2);
    // After a restart the count is rebuilt from the store (found by cargo-mutants): a
    // fourth office of b's is still over the bound.
    net.crash(0);
    net.add_office(1, "4071500006", "11");
    net.run_for(60_000);
    match net.api(
        0,
        CM,
        ApiCommand::Lookup {
            office: "4071500006".parse().unwrap(),
        },
    ) {
        ApiReply::Directory(d) => assert!(!d.reachable, "over the bound after a restart"),
        other => panic!("{other:?}"),
    }
}

/// Found by cargo-mutants (directory.rs: `announce_roster`): the transport is told to admit
/// and dial every other roster operator valid now, to admit (not dial) a retired key until
/// it expires, and never this node itself, under any of its keys.
#[test]
fn the_transport_is_told_whom_to_admit_and_dial() {
    let mut net = Net::new(&[("a", false), ("b", false), ("c", true)]);
    let (a, b, c) = (net.id(0), net.id(1), net.id(2));
    let ids = |net: &Net, n: usize| -> Vec<(OperatorId, bool)> {
        let mut v: Vec<(OperatorId, bool)> = net.announced[&n]
            .iter()
            .map(|p| (p.id, p.addrs.is_empty()))
            .collect();
        v.sort();
        v
    };
    let mut want = vec![(b, true), (c, true)];
    want.sort();
    assert_eq!(ids(&net, 0), want);
    // b's key is rotated; its old key stays admitted for an hour.
    let expires = net.now + 3_600_000;
    let old_b = net.rotate(1, ([0x51; 32], [0x52; 32]), expires);
    assert_eq!(old_b, b);
    let new_b = net.id(1);
    net.install_roster(0);
    net.install_roster(1);
    let mut want = vec![(old_b, true), (new_b, true), (c, true)];
    want.sort();
    assert_eq!(ids(&net, 0), want);
    let mut want = vec![(a, true), (c, true)];
    want.sort();
    assert_eq!(ids(&net, 1), want, "b never lists itself, old key or new");
    // Past the old key's expiry it is no longer admitted (as the node announces at its
    // next start).
    net.now = expires + 1;
    net.crash(0);
    let mut want = vec![(new_b, true), (c, true)];
    want.sort();
    assert_eq!(ids(&net, 0), want);
}

#[test]
fn a_retrieved_receipt_a_relay_cannot_route_goes_again_another_way() {
    // A and B are linked directly and through the relay C. The unit goes direct; when B's
    // office downloads it the direct link is down, so `Retrieved` goes to C, which never
    // carried the envelope and cannot route its receipt: B sends it again later, and it
    // reaches A once the direct link is back (it used to be dropped).
    let mut net = Net::new(&[("a", false), ("b", false), ("c", true)]);
    net.connect(0, 1);
    net.connect(0, 2);
    net.connect(1, 2);
    net.add_cm_and_svc();
    net.run_for(60_000);
    let id = submit(&mut net, "20250425164608");
    net.run_for(5_000);
    assert_eq!(sent_status(&mut net, 0, CM, id), "delivered");
    net.partition(0, 1);
    let names: Vec<String> = envelope(&net, 1, id)
        .open(&keys_of(1))
        .unwrap()
        .header
        .files
        .iter()
        .map(|f| f.name.clone())
        .collect();
    for name in names {
        let r = net.api(1, SVC, ApiCommand::Fetch { id, name });
        assert!(matches!(r, ApiReply::File(_)), "{r:?}");
    }
    net.run_for(60_000);
    assert_eq!(
        sent_status(&mut net, 0, CM, id),
        "delivered",
        "not through C"
    );
    net.heal(0, 1);
    net.run_for(600_000);
    assert_eq!(sent_status(&mut net, 0, CM, id), "retrieved");
}

#[test]
fn a_relay_that_accepts_and_drops_is_routed_around() {
    // A reaches B only through relays: C (first in the roster) and D. C takes the unit and
    // never delivers it (its link to B is cut). Once the watch runs out, A sends it again
    // around C, through D: delivered, and the proof shows C's acceptance and B's delivery.
    let mut net = Net::new_with(
        &[("a", false), ("b", false), ("c", true), ("d", true)],
        |c| c.relay_watch_ms = 120_000,
    );
    for (x, y) in [(0, 2), (0, 3), (1, 2), (1, 3)] {
        net.connect(x, y);
    }
    net.add_cm_and_svc();
    net.run_for(60_000);
    net.partition(1, 2); // C holds what it takes: it "drops" it
    let id = submit(&mut net, "20250425164608");
    net.run_for(60_000);
    assert_eq!(sent_status(&mut net, 0, CM, id), "relayed", "C took it");
    net.run_for(600_000);
    assert_eq!(sent_status(&mut net, 0, CM, id), "delivered");
    assert_eq!(inbox(&mut net, 1, SVC, false).len(), 1);
    let ApiReply::Proof(bytes) = net.api(0, CM, ApiCommand::Proof { id }) else {
        panic!()
    };
    let proof = Proof::decode(&bytes).unwrap();
    let kinds: Vec<(&str, OperatorId)> = proof
        .receipts
        .iter()
        .map(|r| (r.receipt().kind.name(), r.receipt().node))
        .collect();
    assert!(kinds.contains(&("accepted", net.id(2))), "{kinds:?}");
    assert!(kinds.contains(&("delivered", net.id(1))), "{kinds:?}");
    // C's link comes back: its late delivery is answered from B's dedup index.
    net.heal(1, 2);
    net.run_for(600_000);
    assert_eq!(inbox(&mut net, 1, SVC, false).len(), 1);
    assert_eq!(sent_status(&mut net, 0, CM, id), "delivered");
}

#[test]
fn two_relays_without_the_destination_do_not_lose_a_unit_between_them() {
    // A reaches B only through relay C; C's link to B is cut, so C hands the unit to
    // relay D, which has no link to B either and hands it back. C must take it again (not
    // answer from its dedup index that it has it, while it passed it on): found by simnet
    // once a lying member became a second relay. When C's link comes back, the unit is
    // delivered, once.
    let mut net = Net::new(&[("a", false), ("b", false), ("c", true), ("d", true)]);
    for (x, y) in [(0, 2), (2, 3), (1, 2)] {
        net.connect(x, y);
    }
    net.add_cm_and_svc();
    net.run_for(60_000);
    net.partition(1, 2);
    let id = submit(&mut net, "20250425164608");
    net.run_for(120_000);
    assert_eq!(sent_status(&mut net, 0, CM, id), "relayed");
    let holds = |net: &Net, n: usize| net.memory(n).get_raw(Tree::Outbox, id.as_bytes()).is_some();
    assert!(
        holds(&net, 2) || holds(&net, 3),
        "neither relay holds the unit any more: it was lost between them"
    );
    // Whoever holds it will send it again within the longest pause (found by
    // cargo-mutants: a returned unit scheduled at no reachable time).
    for n in [2, 3] {
        if holds(&net, n) {
            let core = net.core(n);
            let due = core.due_of.get(&id).map(|(t, _)| *t);
            assert!(
                due.is_some_and(|t| t <= net.now + core.cfg.retry_max_ms),
                "n{n} holds the unit, due {due:?}"
            );
        }
    }
    net.heal(1, 2);
    net.run_for(1_200_000);
    assert_eq!(sent_status(&mut net, 0, CM, id), "delivered");
    assert_eq!(inbox(&mut net, 1, SVC, false).len(), 1);
    assert!(
        !holds(&net, 2) && !holds(&net, 3),
        "both relays let go once delivered"
    );
}

/// Found by cargo-mutants (sender.rs survived): a lying member forges a unit "from" an
/// office homed at the destination itself, or its own home sends under a kind the office
/// does not run. Both are refused as senders not bound.
#[test]
fn a_sender_homed_at_the_destination_cannot_be_forged_nor_send_under_another_kind() {
    let mut net = Net::new(&[("a", false), ("b", false), ("c", false)]);
    net.connect(0, 1);
    net.connect(1, 2);
    net.add_office(1, CM, "43");
    net.add_office(1, SVC, "11");
    net.run_for(60_000);
    let files = fixture_unit("d2_kyo_riyohyo");
    let refs: Vec<(&str, &[u8])> = files
        .iter()
        .map(|(n, b)| (n.as_str(), b.as_slice()))
        .collect();
    let bytes: Vec<&[u8]> = files.iter().map(|(_, b)| b.as_slice()).collect();
    let info = crate::unit::check_unit(&refs).unwrap();
    let b = keys_of(1);
    let now = net.now;
    let header = |origin: &OperatorKeys, id: u8, kind: &str| Header {
        outer: renkei_protocol::envelope::Outer {
            id: EnvelopeId([id; 16]),
            from: renkei_protocol::envelope::Party {
                office: info.from.office.clone(),
                kind: kind.parse().unwrap(),
            },
            to: info.to.clone(),
            origin: origin.id(),
            destination: b.id(),
            sealed_to: b.seal.public(),
            doc_kind: info.doc_kind,
            stamp: info.stamp.clone(),
            supersedes: None,
            created_at_ms: now,
        },
        subject: info.subject.clone(),
        files: Envelope::file_entries(&refs),
        salt: Some([id; 16]),
    };
    let refused = |net: &mut Net, env: Envelope, want: &str| {
        let before = delivery_state(net, 1);
        let HopOutcome::Rejected(r) = deliver(net, 2, 1, env.encode()) else {
            panic!("{want}: not rejected")
        };
        let ReceiptKind::Rejected { code, text } =
            SignedReceipt::decode(&r).unwrap().receipt().kind.clone()
        else {
            panic!()
        };
        assert_eq!(code, RejectCode::SenderNotBound, "{text}");
        assert!(text.contains(want), "{text}");
        assert_eq!(delivery_state(net, 1), before, "{want}: state changed");
    };
    // C signs a unit "from" CM, an office B itself homes.
    let c = keys_of(2);
    let forged = Envelope::seal_and_sign(header(&c, 0x71, "43"), &bytes, &c, [1; 32]).unwrap();
    refused(&mut net, forged, "homed at this operator");
    // B's own envelope (say replayed by C) names a kind CM does not run here.
    let other_kind = Envelope::seal_and_sign(header(&b, 0x72, "46"), &bytes, &b, [2; 32]).unwrap();
    refused(&mut net, other_kind, "does not run service kind 46");
    assert!(inbox(&mut net, 1, SVC, false).is_empty());
}

/// Found by cargo-mutants (inbound.rs: every counter survived `+=` → `*=`): the counters
/// the metrics show count what happened, one by one.
#[test]
fn the_delivery_counters_count_each_event_once() {
    let mut net = three();
    let c = |net: &Net, n: usize| net.core(n).counters().clone();
    // A peer outside the roster is refused as a whole.
    let outsider = keys_of(9).id();
    net.inbound_from(1, outsider, Request::Receipts(vec![]));
    assert_eq!(c(&net, 1).refused, 1);
    // A unit delivered: counted at the destination and, with its receipt, at the origin.
    let id = submit(&mut net, "20250425164608");
    net.run_for(5_000);
    assert_eq!(c(&net, 0).submitted, 1);
    assert_eq!(c(&net, 1).delivered, 1);
    assert_eq!(c(&net, 0).sent_delivered, 1);
    // Its Delivered came back (at least) as a receipt the origin took.
    assert!(c(&net, 0).receipts_in >= 1);
    let genuine = envelope(&net, 0, id).encode();
    // The same envelope again: a duplicate, answered from the dedup index.
    assert!(matches!(
        deliver(&mut net, 0, 1, genuine.clone()),
        HopOutcome::Accepted(_)
    ));
    assert_eq!(c(&net, 1).duplicates, 1);
    assert_eq!(c(&net, 1).delivered, 1);
    // Bytes that are no envelope, the id taken by other content, a bad origin signature:
    // three rejections.
    assert!(matches!(
        deliver(&mut net, 0, 1, b"not an envelope".to_vec()),
        HopOutcome::Rejected(_)
    ));
    assert_eq!(c(&net, 1).rejected, 1);
    let opened = envelope(&net, 0, id).open(&keys_of(1)).unwrap();
    let refs: Vec<&[u8]> = opened.files.iter().map(Vec::as_slice).collect();
    let mut h = opened.header.clone();
    h.stamp = "20250425164609".parse().unwrap();
    let same_id = Envelope::seal_and_sign(h.clone(), &refs, &keys_of(0), [8; 32]).unwrap();
    assert!(matches!(
        deliver(&mut net, 0, 1, same_id.encode()),
        HopOutcome::Rejected(_)
    ));
    assert_eq!(c(&net, 1).rejected, 2);
    h.id = EnvelopeId([0x77; 16]);
    let mut forged = Envelope::seal_and_sign(h, &refs, &keys_of(0), [9; 32])
        .unwrap()
        .encode();
    let last = forged.len() - 1;
    forged[last] ^= 1;
    assert!(matches!(
        deliver(&mut net, 0, 1, forged),
        HopOutcome::Rejected(_)
    ));
    assert_eq!(c(&net, 1).rejected, 3);
    assert_eq!(c(&net, 1).duplicates, 1);
    // The origin's receipts handed to it again: each answered as taken, none counted twice.
    let receipts = kept_receipts(&net, id);
    assert!(receipts.len() >= 2);
    let before = c(&net, 0).receipts_in;
    let n = receipts.len() as u64;
    let resp = net.inbound_from(0, net.id(1), Request::Receipts(receipts));
    assert_eq!(
        resp,
        Response::ReceiptsTaken(n),
        "each receipt answered as taken"
    );
    assert_eq!(
        c(&net, 0).receipts_in,
        before,
        "but stored and counted once"
    );
}

/// Found by cargo-mutants (inbound.rs): the retake of a unit a relay passed on happens only
/// for an authentic copy offered by another hop, never at the destination, and a plain
/// duplicate from the hop the relay holds it from is only a duplicate.
#[test]
fn a_relay_takes_back_only_an_authentic_unit_it_passed_on() {
    let (mut net, id) = held_by_the_relay();
    let outbox = |net: &Net, n: usize| {
        net.memory(n)
            .get_raw(Tree::Outbox, id.as_bytes())
            .map(|b| crate::records::decode::<crate::records::OutboxRec>(Tree::Outbox, &b).unwrap())
    };
    let genuine = envelope(&net, 0, id).encode();
    assert_eq!(net.core(2).counters().relayed_in, 1);
    // The origin sends it again while C holds it: a duplicate, not a unit come back.
    assert!(matches!(
        deliver(&mut net, 0, 2, genuine.clone()),
        HopOutcome::Accepted(_)
    ));
    let held = outbox(&net, 2).expect("C holds it");
    assert!(
        !held.returned,
        "a copy from the hop C holds it from is only a duplicate"
    );
    assert_eq!(net.core(2).counters().relayed_in, 1, "nothing taken again");
    // C delivers; then a copy with a damaged signature is offered to C: not taken again.
    net.heal(1, 2);
    net.run_for(600_000);
    assert_eq!(sent_status(&mut net, 0, CM, id), "delivered");
    assert!(outbox(&net, 2).is_none());
    let mut damaged = genuine.clone();
    let last = damaged.len() - 1;
    damaged[last] ^= 1;
    deliver(&mut net, 0, 2, damaged);
    assert!(
        outbox(&net, 2).is_none(),
        "a copy that fails its signature is not relayed"
    );
    // The destination offered it again takes nothing to relay either.
    assert!(matches!(
        deliver(&mut net, 2, 1, genuine),
        HopOutcome::Accepted(_)
    ));
    assert!(
        outbox(&net, 1).is_none(),
        "the destination answers from its dedup index"
    );
    assert_eq!(inbox(&mut net, 1, SVC, false).len(), 1);
}

/// Found by cargo-mutants (inbound.rs: `||` → `&&` survived): the destination refuses a
/// unit whose file names name another sender than its envelope, even when the recipient
/// matches.
#[test]
fn a_unit_whose_files_name_another_sender_is_refused() {
    const OTHER: &str = "4071480000";
    let mut net = three();
    net.add_office(0, OTHER, "43");
    net.run_for(60_000);
    let id = submit(&mut net, "20250425164608");
    net.run_for(5_000);
    let opened = envelope(&net, 0, id).open(&keys_of(1)).unwrap();
    let refs: Vec<&[u8]> = opened.files.iter().map(Vec::as_slice).collect();
    let mut h = opened.header.clone();
    h.id = EnvelopeId([0x78; 16]);
    h.from.office = OTHER.parse().unwrap();
    let env = Envelope::seal_and_sign(h, &refs, &keys_of(0), [4; 32]).unwrap();
    let HopOutcome::Rejected(r) = deliver(&mut net, 0, 1, env.encode()) else {
        panic!("a unit whose files name another sender was taken")
    };
    let r = SignedReceipt::decode(&r).unwrap();
    let ReceiptKind::Rejected { code, text } = &r.receipt().kind else {
        panic!()
    };
    assert_eq!(*code, RejectCode::InvalidCsv);
    assert!(text.contains("file names say"), "{text}");
    assert_eq!(net.core(1).counters().rejected, 1, "one rejection counted");
}

/// Found by cargo-mutants (inbound.rs: `>` → `>=` survived at both bounds): an envelope
/// exactly at the allowed skew ahead, or exactly at the edge of the delivery window, is
/// taken; one millisecond beyond is not.
#[test]
fn envelope_times_are_bounded_inclusively() {
    let net = three();
    let core = net.core(1);
    let (now, skew) = (core.now, core.cfg.max_skew_ms);
    let window = core.cfg.expiry_ms + core.cfg.relay_grace_ms + skew;
    assert!(core.time_out_of_bounds(now + skew).is_none());
    assert!(core.time_out_of_bounds(now + skew + 1).is_some());
    assert!(core.time_out_of_bounds(now - window).is_none());
    assert!(core.time_out_of_bounds(now - window - 1).is_some());
}

/// Found by cargo-mutants (inbound.rs: `delete !` in the authenticity rule survived): a copy
/// with a forged signature that comes first is refused without taking the genuine unit's
/// id; the genuine unit after it is delivered.
#[test]
fn a_forged_copy_first_does_not_take_the_genuine_units_id() {
    let mut net = three();
    net.partition(0, 1);
    let id = submit(&mut net, "20250425164608");
    let genuine = envelope(&net, 0, id).encode();
    let mut forged = genuine.clone();
    let last = forged.len() - 1;
    forged[last] ^= 1;
    assert!(matches!(
        deliver(&mut net, 2, 1, forged),
        HopOutcome::Rejected(_)
    ));
    assert!(matches!(
        deliver(&mut net, 0, 1, genuine),
        HopOutcome::Accepted(_)
    ));
    assert_eq!(inbox(&mut net, 1, SVC, false).len(), 1);
}

/// Found by cargo-mutants (inbound.rs: `||` → `&&` survived in the relay's receipt rule):
/// a relay passes a receipt back toward the origin only when it names the envelope's
/// digest, its signer may make that statement and it comes along the envelope's path.
#[test]
fn a_relay_forwards_only_receipts_for_the_envelope_it_relayed() {
    let (mut net, id) = held_by_the_relay();
    let env = envelope(&net, 2, id);
    let now = net.now;
    let signed = |digest: [u8; 32], kind: ReceiptKind, by: u8| {
        Receipt {
            envelope: id,
            digest,
            kind,
            node: keys_of(by).id(),
            at_ms: now,
        }
        .sign(&keys_of(by).identity)
        .encode()
    };
    // The destination's Delivered, but naming another digest: refused.
    let wrong_digest = signed([9; 32], ReceiptKind::Delivered, 1);
    assert_eq!(
        net.inbound_from(2, net.id(1), Request::Receipts(vec![wrong_digest])),
        Response::ReceiptsTaken(0)
    );
    // A Delivered signed by the origin (not the destination): refused.
    let wrong_role = signed(env.digest(), ReceiptKind::Delivered, 0);
    assert_eq!(
        net.inbound_from(2, net.id(0), Request::Receipts(vec![wrong_role])),
        Response::ReceiptsTaken(0)
    );
    // The genuine one from the destination: taken.
    let good = signed(env.digest(), ReceiptKind::Delivered, 1);
    assert_eq!(
        net.inbound_from(2, net.id(1), Request::Receipts(vec![good])),
        Response::ReceiptsTaken(1)
    );
    // A relay that relayed before relays kept a routing record still has the body: the
    // same rule holds on that path.
    {
        use crate::store::Store;
        let store = net.core_mut(2).store_mut_for_tests();
        store.delete(Tree::Relayed, id.as_bytes()).unwrap();
        store.commit().unwrap();
    }
    assert!(
        net.memory(2)
            .get_raw(Tree::Envelopes, id.as_bytes())
            .is_some()
    );
    for (bad, from) in [
        (signed([9; 32], ReceiptKind::Delivered, 1), 1),
        (signed(env.digest(), ReceiptKind::Delivered, 0), 0),
    ] {
        assert_eq!(
            net.inbound_from(2, net.id(from), Request::Receipts(vec![bad])),
            Response::ReceiptsTaken(0)
        );
    }
    let again = signed(env.digest(), ReceiptKind::Retrieved, 1);
    assert_eq!(
        net.inbound_from(2, net.id(1), Request::Receipts(vec![again])),
        Response::ReceiptsTaken(1)
    );
}

/// A receipt signed by `node`'s keys about `id`, stating `kind` at `at_ms`.
fn receipt_by(
    node: usize,
    id: EnvelopeId,
    digest: [u8; 32],
    kind: ReceiptKind,
    at_ms: u64,
) -> Vec<u8> {
    let k = keys_of(node as u8);
    Receipt {
        envelope: id,
        digest,
        kind,
        node: k.id(),
        at_ms,
    }
    .sign(&k.identity)
    .encode()
}

/// Found by cargo-mutants (origin.rs: `signer_trusted` → true): a statement its signer
/// dates outside its time in the roster (before it joined) is not taken, even from the
/// destination itself.
#[test]
fn a_receipt_dated_outside_its_signers_roster_time_is_ignored() {
    let mut net = three();
    net.partition(0, 1);
    let id = submit(&mut net, "20250425164608");
    let digest = envelope(&net, 0, id).digest();
    let before_joining = net.roster.roster().operators[1].valid_from_ms - 60_000;
    let r = receipt_by(1, id, digest, ReceiptKind::Delivered, before_joining);
    let resp = net.inbound_from(0, net.id(1), Request::Receipts(vec![r]));
    assert_eq!(resp, Response::ReceiptsTaken(0));
    assert_eq!(sent_status(&mut net, 0, CM, id), "accepted");
    // Dated within its time, the same statement is taken.
    let r = receipt_by(1, id, digest, ReceiptKind::Delivered, net.now);
    net.inbound_from(0, net.id(1), Request::Receipts(vec![r]));
    assert_eq!(sent_status(&mut net, 0, CM, id), "delivered");
}

/// Found by cargo-mutants (origin.rs: `destination_rejected`): the destination's own
/// rejection stands — a `Delivered` it signs afterwards does not turn the unit delivered
/// (a relay's rejection it would outrank) — and the sent view shows the rejection's code
/// and text.
#[test]
fn the_destinations_own_rejection_stands_against_its_later_delivery() {
    let mut net = three();
    net.partition(0, 1);
    let id = submit(&mut net, "20250425164608");
    let digest = envelope(&net, 0, id).digest();
    let rejected = ReceiptKind::Rejected {
        code: RejectCode::InvalidCsv,
        text: "the destination says so".into(),
    };
    let r = receipt_by(1, id, digest, rejected, net.now);
    assert_eq!(
        net.inbound_from(0, net.id(1), Request::Receipts(vec![r])),
        Response::ReceiptsTaken(1)
    );
    assert_eq!(sent_status(&mut net, 0, CM, id), "rejected");
    let r = receipt_by(1, id, digest, ReceiptKind::Delivered, net.now + 1);
    net.inbound_from(0, net.id(1), Request::Receipts(vec![r]));
    assert_eq!(sent_status(&mut net, 0, CM, id), "rejected");
    let r = receipt_by(1, id, digest, ReceiptKind::Retrieved, net.now + 2);
    net.inbound_from(0, net.id(1), Request::Receipts(vec![r]));
    assert_eq!(sent_status(&mut net, 0, CM, id), "rejected");
    let ApiReply::Sent(v) = net.api(0, CM, ApiCommand::Sent { id: Some(id) }) else {
        panic!()
    };
    let rej = v[0]
        .receipts
        .iter()
        .find(|r| r.kind == "rejected")
        .expect("the rejection is listed");
    assert_eq!(rej.code.as_deref(), Some("invalid_csv"));
    assert_eq!(rej.text.as_deref(), Some("the destination says so"));
}

/// Found by cargo-mutants (directory.rs: `learn_assignment`): of two assignments of an
/// office, the newer holds whichever arrives first; an office homed here that the
/// authority assigns elsewhere is reported ("remove it here").
#[test]
fn the_newer_assignment_holds_and_one_against_an_office_homed_here_is_reported() {
    const X: &str = "4071480000";
    let mut net = three();
    let (b, c) = (net.id(1), net.id(2));
    let t = net.now;
    let to_c = home(X, "11", c, t + 1_000).sign(&net.authority);
    let to_b = home(X, "11", b, t).sign(&net.authority);
    let core = net.core_mut(0);
    core.learn_binding(to_c).unwrap();
    core.learn_binding(to_b).unwrap();
    assert_eq!(
        core.home_of(&X.parse().unwrap()),
        Some(c),
        "the newer assignment"
    );
    // CM is homed at a; the authority assigns it to b.
    let away = home(CM, "43", b, t + 2_000).sign(&net.authority);
    net.core_mut(0).learn_binding(away).unwrap();
    let ApiReply::Status(st) = net.operator(0, ApiCommand::Status) else {
        panic!()
    };
    assert!(
        st.binding_conflicts
            .iter()
            .any(|n| n.contains(CM) && n.contains("remove it here")),
        "{:?}",
        st.binding_conflicts
    );
    // An assignment of b's own office to b is no conflict.
    let own = home(SVC, "11", b, t + 3_000).sign(&net.authority);
    net.core_mut(0).learn_binding(own).unwrap();
    let ApiReply::Status(st) = net.operator(0, ApiCommand::Status) else {
        panic!()
    };
    assert!(
        !st.binding_conflicts.iter().any(|n| n.contains(SVC)),
        "{:?}",
        st.binding_conflicts
    );
}

/// Found by cargo-mutants (directory.rs: a held binding that is released): an office its
/// home released may be claimed by another operator, and then lives there.
#[test]
fn an_office_its_home_released_can_be_claimed_by_another_operator() {
    let mut net = three();
    let (b, c) = (net.id(1), net.id(2));
    let office = SVC.parse().unwrap();
    assert_eq!(net.core(0).home_of(&office), Some(b));
    let r = net.operator(
        1,
        ApiCommand::RemoveOffice {
            office: SVC.parse().unwrap(),
        },
    );
    assert!(matches!(r, ApiReply::Done), "{r:?}");
    net.run_for(60_000);
    assert_eq!(net.core(0).home_of(&office), None, "released");
    net.add_office(2, SVC, "11");
    net.run_for(60_000);
    assert_eq!(net.core(0).home_of(&office), Some(c));
}

/// Found by cargo-mutants (directory.rs: `serve_sync`): a directory sync answers a page
/// of at most `BINDINGS_PER_MESSAGE_MAX` bindings and says whether more follow; the roster
/// goes along only to a peer holding an older one.
#[test]
fn a_directory_sync_pages_the_binding_log_and_sends_the_roster_only_when_newer() {
    use renkei_protocol::limits::BINDINGS_PER_MESSAGE_MAX as MAX;
    let mut net = Net::new_with(&[("a", false), ("b", false)], |c| {
        c.bindings_per_operator_max = 10_000
    });
    let b = net.id(1);
    let bk = keys_of(1);
    // a learns MAX + 10 of b's offices.
    for i in 0..(MAX as u64 + 10) {
        let office = format!("40{:08}", 1_000_000 + i);
        let claim = home(&office, "11", b, net.now).sign(&bk.identity);
        net.core_mut(0).learn_binding(claim).unwrap();
    }
    net.core_mut(0).commit().unwrap();
    let serial = net.roster.roster().serial;
    let ask = |net: &mut Net, roster_serial, cursor| {
        let asker = net.id(1);
        match net.inbound_from(
            0,
            asker,
            Request::DirectorySync {
                roster_serial,
                cursor,
            },
        ) {
            Response::Directory {
                roster,
                bindings,
                next_cursor,
                more,
            } => (roster.is_some(), bindings.len(), next_cursor, more),
            other => panic!("{other:?}"),
        }
    };
    let (roster, n, next, more) = ask(&mut net, serial - 1, 0);
    assert!(roster, "b's roster is older");
    assert_eq!((n, more), (MAX, true));
    let (roster, n, next2, more) = ask(&mut net, serial, next);
    assert!(!roster, "b holds this roster");
    assert_eq!((n, more), (10, false));
    assert!(next2 > next);
}

/// Found by cargo-mutants (origin.rs: what outranks a rejection): a first hop's refusal
/// (a relay that never took the unit) makes it `rejected`, and the destination's own
/// `Delivered` or `Retrieved` outranks that: the unit got there after all.
#[test]
fn the_destinations_statement_outranks_a_first_hops_refusal() {
    let mut net = Net::new(&[("a", false), ("b", false), ("c", true)]);
    net.connect(0, 2);
    net.connect(1, 2);
    net.add_cm_and_svc();
    net.run_for(60_000);
    let c = keys_of(2);
    net.tamper = Some(Box::new(move |i, resp| {
        if i != 2 {
            return;
        }
        if let Response::HopAcks(acks) = resp {
            for a in acks {
                if let HopOutcome::Accepted(r) | HopOutcome::Rejected(r) = &a.outcome {
                    let mut rc = SignedReceipt::decode(r).unwrap().receipt().clone();
                    rc.kind = ReceiptKind::Rejected {
                        code: RejectCode::NoRoute,
                        text: "c will not".into(),
                    };
                    a.outcome = HopOutcome::Rejected(rc.sign(&c.identity).encode());
                }
            }
        }
    }));
    // (c cannot reach b for now: what it says is all a hears.)
    net.partition(1, 2);
    let first = submit(&mut net, "20250425164608");
    let second = submit(&mut net, "20250425164609");
    net.run_for(5_000);
    assert_eq!(sent_status(&mut net, 0, CM, first), "rejected");
    assert_eq!(sent_status(&mut net, 0, CM, second), "rejected");
    let (d1, d2) = (
        envelope(&net, 0, first).digest(),
        envelope(&net, 0, second).digest(),
    );
    let r = receipt_by(1, first, d1, ReceiptKind::Delivered, net.now);
    net.inbound_from(0, net.id(1), Request::Receipts(vec![r]));
    assert_eq!(sent_status(&mut net, 0, CM, first), "delivered");
    let r = receipt_by(1, second, d2, ReceiptKind::Retrieved, net.now);
    net.inbound_from(0, net.id(1), Request::Receipts(vec![r]));
    assert_eq!(sent_status(&mut net, 0, CM, second), "retrieved");
}

/// A (CM) — relay C — B (SVC), with `extra` more roster members (nodes 3…) that take no
/// part; C holds a unit of CM's while its link to B is cut.
fn held_by_the_relay_among(extra: usize) -> (Net, EnvelopeId) {
    let names: Vec<String> = (0..extra).map(|i| format!("x{i}")).collect();
    let mut spec: Vec<(&str, bool)> = vec![("a", false), ("b", false), ("c", true)];
    spec.extend(names.iter().map(|n| (n.as_str(), false)));
    let mut net = Net::new(&spec);
    net.connect(0, 2);
    net.connect(1, 2);
    net.add_cm_and_svc();
    net.run_for(60_000);
    net.partition(1, 2);
    let id = submit(&mut net, "20250425164608");
    net.run_for(5_000);
    assert_eq!(sent_status(&mut net, 0, CM, id), "relayed");
    (net, id)
}

/// Found by cargo-mutants (origin.rs: `store_receipt`'s cap, `on_path`): statements any
/// member may sign are kept up to `RECEIPTS_OPEN_MAX` per envelope, the destination's
/// `Delivered` beyond it; a member off the path is not heard at all, even once a relay
/// on it has spoken.
#[test]
fn relay_statements_are_capped_per_envelope_and_the_delivery_is_kept_beyond_the_cap() {
    let extra = crate::origin::RECEIPTS_OPEN_MAX + 6;
    let (mut net, id) = held_by_the_relay_among(extra);
    let digest = envelope(&net, 0, id).digest();
    // A member the unit never went through: its rejection is not taken.
    let lie = false_rejection(&net, 3, id, digest);
    assert_eq!(
        net.inbound_from(0, net.id(3), Request::Receipts(vec![lie])),
        Response::ReceiptsTaken(0)
    );
    // The relay passes on a hop statement from each of the others.
    let now = net.now;
    let statements: Vec<Vec<u8>> = (3..3 + extra)
        .map(|i| receipt_by(i, id, digest, ReceiptKind::Accepted { hop: 2 }, now))
        .collect();
    for chunk in statements.chunks(16) {
        net.inbound_from(0, net.id(2), Request::Receipts(chunk.to_vec()));
    }
    net.heal(1, 2);
    net.run_for(600_000);
    assert_eq!(sent_status(&mut net, 0, CM, id), "delivered");
    let kept: Vec<SignedReceipt> = kept_receipts(&net, id)
        .iter()
        .map(|v| SignedReceipt::decode(v).unwrap())
        .collect();
    let open = kept
        .iter()
        .filter(|r| r.receipt().kind.signer_role() == renkei_protocol::receipt::SignerRole::Any)
        .count();
    assert_eq!(
        open,
        crate::origin::RECEIPTS_OPEN_MAX,
        "C's own and 31 of the others'"
    );
    assert!(
        kept.iter()
            .any(|r| r.receipt().kind == ReceiptKind::Delivered && r.receipt().node == net.id(1))
    );
    assert!(kept.iter().all(|r| r.receipt().node != net.id(3)
        || matches!(r.receipt().kind, ReceiptKind::Accepted { .. })));
}

/// Found by cargo-mutants (origin.rs: the digest check's `||`): the destination's own
/// `Delivered` naming another digest than the unit's is not taken.
#[test]
fn a_delivery_naming_another_digest_is_ignored() {
    let (mut net, id) = held_by_the_relay_among(0);
    let now = net.now;
    let wrong = receipt_by(1, id, [9; 32], ReceiptKind::Delivered, now);
    net.inbound_from(0, net.id(2), Request::Receipts(vec![wrong]));
    assert_eq!(sent_status(&mut net, 0, CM, id), "relayed");
}

/// The receipts node 0 keeps for envelope `id`, as stored.
fn kept_receipts(net: &Net, id: EnvelopeId) -> Vec<Vec<u8>> {
    net.memory(0)
        .pairs(Tree::Receipts)
        .filter(|(k, _)| k.starts_with(id.as_bytes()))
        .map(|(_, v)| v.to_vec())
        .collect()
}
