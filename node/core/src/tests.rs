//! Unit tests of the core on the memory store: a tiny deterministic network of cores.
#![allow(clippy::unwrap_used)]

mod adversarial;
mod byzantine;
pub(super) mod net;
mod outbox;
mod rotation;
mod routing;
mod staff;

use net::{Net, fixture_unit, keep_users, rename_stamp, replace_bytes};
use renkei_protocol::ids::EnvelopeId;
use renkei_protocol::proof::Proof;
use renkei_protocol::receipt::{ReceiptKind, RejectCode, SignedReceipt};

use super::io::{ApiCommand, ApiReply};
use super::unit::PreparedUnit;
use crate::store::{Store, Tree};

const CM: &str = "4074478647"; // 居宅 (43)
const SVC: &str = "4071481594"; // 訪問介護 (11)

/// Two connected operators: a care-management office "43" at node 0, a service office
/// "11" at node 1, each knowing the other's binding (directory sync has run).
pub(super) fn two_operators() -> Net {
    let mut net = Net::new(&[("a", false), ("b", false)]);
    net.connect(0, 1);
    net.add_cm_and_svc();
    net.run_for(100);
    net
}

/// One node homing both CM and SVC.
fn one_node() -> Net {
    let mut net = Net::new(&[("solo", false)]);
    net.add_office(0, CM, "43");
    net.add_office(0, SVC, "11");
    net
}

/// CM (at node 0) submits `files`; the unit's id.
fn submit_files(net: &mut Net, files: Vec<(String, Vec<u8>)>) -> EnvelopeId {
    accepted_id(&net.api(
        0,
        CM,
        ApiCommand::Submit {
            unit: PreparedUnit::new(files),
            supersedes: None,
        },
    ))
}

/// CM (at node 0) submits the 利用票 fixture to SVC; the unit's id.
fn submit_riyohyo(net: &mut Net) -> EnvelopeId {
    submit_files(net, fixture_unit("d2_kyo_riyohyo"))
}

fn accepted_id(r: &ApiReply) -> EnvelopeId {
    match r {
        ApiReply::Accepted(v) => v.id.parse().unwrap(),
        other => panic!("expected Accepted, got {other:?}"),
    }
}

fn sent_status(net: &mut Net, node: usize, office: &str, id: EnvelopeId) -> String {
    match net.api(node, office, ApiCommand::Sent { id: Some(id) }) {
        ApiReply::Sent(v) => v[0].status.clone(),
        other => panic!("{other:?}"),
    }
}

fn inbox(
    net: &mut Net,
    node: usize,
    office: &str,
    latest_only: bool,
) -> Vec<super::views::InboxView> {
    match net.api(
        node,
        office,
        ApiCommand::Inbox {
            latest_only,
            before: None,
            limit: crate::io::INBOX_PAGE_MAX,
        },
    ) {
        ApiReply::InboxPage(p) => p.items,
        other => panic!("{other:?}"),
    }
}

#[test]
fn local_delivery_fetch_retrieved_and_proof() {
    let mut net = one_node();
    let files = fixture_unit("d2_kyo_riyohyo");
    let id = accepted_id(&net.api(
        0,
        CM,
        ApiCommand::Submit {
            unit: PreparedUnit::new(files.clone()),
            supersedes: None,
        },
    ));
    net.run_for(10);
    assert_eq!(sent_status(&mut net, 0, CM, id), "delivered");
    let inb = inbox(&mut net, 0, SVC, false);
    assert_eq!(inb.len(), 1);
    assert_eq!(inb[0].id, id.to_string());
    // Both offices are homed here: their names are shown.
    assert_eq!(inb[0].from_name.as_deref(), Some("office 4074478647"));
    match net.api(0, CM, ApiCommand::Sent { id: Some(id) }) {
        ApiReply::Sent(v) => assert_eq!(v[0].to_name.as_deref(), Some("office 4071481594")),
        other => panic!("{other:?}"),
    }
    // The users' 被保険者番号, for the page's 利用者 filter: from the files themselves.
    assert!(!inb[0].insured.is_empty());
    for n in &inb[0].insured {
        assert!(
            n.len() == 10 && n.bytes().all(|b| b.is_ascii_digit()),
            "{n}"
        );
        assert!(
            files
                .iter()
                .any(|(_, b)| b.windows(10).any(|w| w == n.as_bytes())),
            "{n} is in no file"
        );
    }
    // The certificate: sent by one office, received by the other, verified; no one else's.
    for (office, role) in [(CM, "sent"), (SVC, "received")] {
        match net.api(0, office, ApiCommand::Certificate { id }) {
            ApiReply::Certificate(c) => {
                assert_eq!(c.role, role);
                assert!(c.verified, "{:?}", c.verification);
                assert_eq!(c.files.len(), files.len());
            }
            other => panic!("{other:?}"),
        }
    }
    net.add_office(0, "4071481602", "15");
    assert!(matches!(
        net.api(0, "4071481602", ApiCommand::Certificate { id }),
        ApiReply::NotFound(_)
    ));
    for (name, bytes) in &files {
        match net.api(
            0,
            SVC,
            ApiCommand::Fetch {
                id,
                name: name.clone(),
            },
        ) {
            ApiReply::File(f) => assert_eq!(&f.bytes, bytes, "bytes of {name} changed"),
            other => panic!("{other:?}"),
        }
    }
    assert_eq!(sent_status(&mut net, 0, CM, id), "retrieved");
    let ApiReply::Proof(p) = net.api(0, CM, ApiCommand::Proof { id }) else {
        panic!()
    };
    let lines = Proof::decode(&p)
        .unwrap()
        .verify(net.roster.roster())
        .unwrap();
    let kinds: Vec<&str> = lines
        .iter()
        .skip(1)
        .map(|l| l.split(' ').next().unwrap())
        .collect();
    assert_eq!(kinds, ["accepted", "delivered", "retrieved"]);
    assert!(super::verify_chain(net.store(0)).unwrap() > 3);
}

#[test]
fn a_unit_submitted_twice_while_it_is_sealed_is_sent_once() {
    let mut net = two_operators();
    let files = fixture_unit("d2_kyo_riyohyo");
    let submit = || ApiCommand::Submit {
        unit: PreparedUnit::new(files.clone()),
        supersedes: None,
    };
    let other = rename_stamp(&files, "20250425164609");
    let replies = net.api_together(
        0,
        CM,
        vec![
            submit(),
            submit(),
            ApiCommand::Submit {
                unit: PreparedUnit::new(other),
                supersedes: None,
            },
        ],
    );
    let ids: Vec<EnvelopeId> = replies.iter().map(accepted_id).collect();
    assert_eq!(ids[0], ids[1], "the same unit twice is one envelope");
    assert_ne!(ids[0], ids[2]);
    assert_eq!(net.core(0).unit_draws(), 2);
    net.run_for(1_000);
    assert_eq!(inbox(&mut net, 1, SVC, false).len(), 2);
}

/// CM's submission of `files`, handed straight to node 0's core with API call id 7: the
/// seal job it gives the prepare stage, under its ticket.
fn seal_job_of(
    core: &mut super::Core<crate::store::MemoryStore>,
    files: Vec<(String, Vec<u8>)>,
) -> (u64, crate::sealing::SealJob) {
    use crate::io::{Auth, Effect, Input};
    core.handle(
        0,
        Input::Api {
            id: 7,
            auth: Auth::Office(renkei_protocol::envelope::sha256(CM.as_bytes())),
            cmd: ApiCommand::Submit {
                unit: PreparedUnit::new(files),
                supersedes: None,
            },
        },
    )
    .unwrap();
    core.drain_effects()
        .into_iter()
        .find_map(|e| match e {
            Effect::Seal { ticket, job } => Some((ticket, job)),
            _ => None,
        })
        .unwrap()
}

#[test]
fn a_seal_result_for_another_ticket_or_unit_is_ignored() {
    use crate::io::{Effect, Input};
    let mut net = two_operators();
    let core = net.core_mut(0);
    let submit = |core: &mut super::Core<_>, stamp: &str| {
        seal_job_of(core, rename_stamp(&fixture_unit("d2_kyo_riyohyo"), stamp))
    };
    let (t1, j1) = submit(core, "20250425164608");
    let (t2, j2) = submit(core, "20250425164609");
    // Each result handed back under the other's ticket: neither is taken.
    core.handle(
        0,
        Input::Sealed {
            ticket: t1,
            sealed: j2.clone().run(),
        },
    )
    .unwrap();
    core.handle(
        0,
        Input::Sealed {
            ticket: t2,
            sealed: j1.clone().run(),
        },
    )
    .unwrap();
    assert!(core.drain_effects().is_empty());
    core.handle(
        0,
        Input::Sealed {
            ticket: t1,
            sealed: j1.run(),
        },
    )
    .unwrap();
    let replies = core.drain_effects();
    assert!(
        matches!(
            &replies[..],
            [Effect::Reply {
                id: 7,
                reply: ApiReply::Accepted(_)
            }]
        ),
        "{replies:?}"
    );
    let _ = (t2, j2);
}

/// The driver decides where the prepare stage runs (inline or on its pool) by how much
/// work an input carries: a seal job's file bytes, a response's receipts to verify.
#[test]
fn prepare_work_is_sized_by_what_it_carries() {
    use crate::prepared::PreparedResponse;
    use renkei_protocol::wire::{HopAck, HopOutcome, Response};
    let mut net = two_operators();
    let files = fixture_unit("d1_kyo_plan");
    let total: usize = files.iter().map(|(_, b)| b.len()).sum();
    let (_, job) = seal_job_of(net.core_mut(0), files);
    assert_eq!(job.bytes(), total);
    let ack = |outcome| HopAck {
        id: EnvelopeId([1; 16]),
        outcome,
    };
    let acks = Response::HopAcks(vec![
        ack(HopOutcome::Accepted(vec![1])),
        ack(HopOutcome::Rejected(vec![2])),
        ack(HopOutcome::RetryLater("busy".into())),
    ]);
    assert_eq!(PreparedResponse::receipts(&acks), 3);
    assert_eq!(PreparedResponse::receipts(&Response::ReceiptsTaken(5)), 0);
}

/// A plan unit names each user once, with the newest plan date the user's records carry
/// (plan families order versions by that date; only 利用票 and 実績 are per month).
#[test]
fn a_plan_unit_keys_each_user_once_by_the_newest_plan_date() {
    let files = fixture_unit("d1_kyo_plan");
    // The first user's 第1表 record once more, with a later plan date.
    let files: Vec<(String, Vec<u8>)> = files
        .into_iter()
        .map(|(n, b)| {
            if !n.starts_with("UP1KYO") {
                return (n, b);
            }
            let first = keep_users(&[(n.clone(), b.clone())], &USERS[..1])
                .remove(0)
                .1;
            let mut more = b.clone();
            more.extend_from_slice(&replace_bytes(&first, b",20250402,", b",20250410,"));
            (n, more)
        })
        .collect();
    let borrowed: Vec<(&str, &[u8])> = files
        .iter()
        .map(|(n, b)| (n.as_str(), b.as_slice()))
        .collect();
    let info = crate::unit::check_unit(&borrowed).unwrap();
    let first: Vec<&str> = info
        .users
        .iter()
        .filter(|u| u.insured == USERS[0])
        .map(|u| u.subject.as_str())
        .collect();
    assert_eq!(first, ["20250410"], "{:?}", info.users);
    assert_eq!(info.users.len(), 3);
}

#[test]
fn direct_delivery_between_two_operators() {
    let mut net = two_operators();
    let files = fixture_unit("d2_kyo_riyohyo");
    let id = accepted_id(&net.api(
        0,
        CM,
        ApiCommand::Submit {
            unit: PreparedUnit::new(files.clone()),
            supersedes: None,
        },
    ));
    net.run_for(1_000);
    assert_eq!(sent_status(&mut net, 0, CM, id), "delivered");
    assert_eq!(inbox(&mut net, 1, SVC, false).len(), 1);
    // Each side names the other office, homed at the other operator, by the name its
    // home put in the office's binding.
    assert_eq!(
        inbox(&mut net, 1, SVC, false)[0].from_name.as_deref(),
        Some("office 4074478647")
    );
    match net.api(0, CM, ApiCommand::Sent { id: Some(id) }) {
        ApiReply::Sent(v) => assert_eq!(v[0].to_name.as_deref(), Some("office 4071481594")),
        other => panic!("{other:?}"),
    }
    // The receiving office downloads one file of the unit: not yet Retrieved, and the
    // inbox says which file it has.
    assert!(files.len() > 1);
    let fetch = |net: &mut Net, name: &str| {
        let r = net.api(
            1,
            SVC,
            ApiCommand::Fetch {
                id,
                name: name.to_owned(),
            },
        );
        assert!(matches!(r, ApiReply::File(_)), "{r:?}");
    };
    fetch(&mut net, &files[1].0);
    fetch(&mut net, &files[1].0);
    net.run_for(1_000);
    assert_eq!(sent_status(&mut net, 0, CM, id), "delivered");
    let entry = &inbox(&mut net, 1, SVC, false)[0];
    assert_eq!(entry.fetched, [files[1].0.clone()]);
    assert_eq!(entry.retrieved_at_ms, None);
    // Every file downloaded: the Retrieved receipt is signed and travels back.
    for (name, _) in &files {
        fetch(&mut net, name);
    }
    net.run_for(1_000);
    assert_eq!(sent_status(&mut net, 0, CM, id), "retrieved");
    let entry = &inbox(&mut net, 1, SVC, false)[0];
    assert_eq!(entry.fetched.len(), files.len());
    assert!(entry.retrieved_at_ms.is_some());
}

#[test]
fn the_kth_unit_sealed_takes_the_kth_pair_of_the_unit_stream_whatever_the_retries() {
    use crate::{next_unit_pair, unit_stream};
    use renkei_protocol::rng::Entropy;
    let mut net = two_operators();
    // Node 0 was opened with Entropy::from_u64(0) (tests/net.rs).
    let mut stream = unit_stream(Entropy::from_u64(0));
    let submit = |net: &mut Net, stamp: &str| {
        let files = rename_stamp(&fixture_unit("d2_kyo_riyohyo"), stamp);
        submit_files(net, files)
    };
    // Cut off: the first unit is retried with jittered back-off (draws from the core's other
    // stream) before the second is sealed.
    net.partition(0, 1);
    let first = submit(&mut net, "20250501090000");
    assert_eq!(first, next_unit_pair(&mut stream).0);
    net.run_for(60_000);
    assert_eq!(sent_status(&mut net, 0, CM, first), "accepted");
    let second = submit(&mut net, "20250501090100");
    assert_eq!(second, next_unit_pair(&mut stream).0);
    assert_eq!(net.core(0).unit_draws(), 2);
    // A refused unit draws nothing.
    let refused = net.api(
        0,
        CM,
        ApiCommand::Submit {
            unit: PreparedUnit::new(vec![("X.CSV".into(), b"junk".to_vec())]),
            supersedes: None,
        },
    );
    assert!(matches!(refused, ApiReply::Invalid(_)), "{refused:?}");
    assert_eq!(net.core(0).unit_draws(), 2);
    net.heal(0, 1);
    net.run_for(600_000);
    assert_eq!(sent_status(&mut net, 0, CM, first), "delivered");
    assert_ne!(first, second);
}

/// Operators a and b linked only through a relay; one unit sent from a to b and settled.
fn unit_through_a_relay() -> (Net, EnvelopeId, Vec<(String, Vec<u8>)>) {
    let mut net = Net::new(&[("a", false), ("relay", true), ("b", false)]);
    net.connect(0, 1);
    net.connect(1, 2);
    net.add_office(0, CM, "43");
    net.add_office(2, SVC, "11");
    net.run_for(1_000);
    let files = fixture_unit("d2_kyo_riyohyo");
    let id = accepted_id(&net.api(
        0,
        CM,
        ApiCommand::Submit {
            unit: PreparedUnit::new(files.clone()),
            supersedes: None,
        },
    ));
    net.run_for(5_000);
    (net, id, files)
}

#[test]
fn relay_routes_without_reading_and_receipts_come_back() {
    let (mut net, id, files) = unit_through_a_relay();
    assert_eq!(sent_status(&mut net, 0, CM, id), "delivered");
    let ApiReply::Sent(v) = net.api(0, CM, ApiCommand::Sent { id: Some(id) }) else {
        panic!()
    };
    let kinds: Vec<(String, Option<u8>)> = v[0]
        .receipts
        .iter()
        .map(|r| (r.kind.clone(), r.hop))
        .collect();
    assert!(kinds.contains(&("accepted".into(), Some(1))), "{kinds:?}");
    assert!(kinds.contains(&("delivered".into(), None)), "{kinds:?}");
    // the relay's store never holds the plaintext
    for (_, bytes) in &files {
        let needle = &bytes[..64.min(bytes.len())];
        for v in net.memory(1).values_all() {
            assert!(
                !v.windows(needle.len()).any(|w| w == needle),
                "plaintext found at the relay"
            );
        }
    }
}

#[test]
fn a_relay_drops_the_body_once_the_next_hop_holds_it_and_still_routes_receipts() {
    let (mut net, id, files) = unit_through_a_relay();
    assert_eq!(sent_status(&mut net, 0, CM, id), "delivered");
    assert!(
        net.memory(1)
            .get_raw(Tree::Envelopes, id.as_bytes())
            .is_none(),
        "the relay still holds the body after the destination took it"
    );
    assert!(
        net.memory(1)
            .get_raw(Tree::Relayed, id.as_bytes())
            .is_some()
    );
    assert!(net.memory(1).get_raw(Tree::Outbox, id.as_bytes()).is_none());
    // The origin and the destination keep theirs.
    assert!(
        net.memory(0)
            .get_raw(Tree::Envelopes, id.as_bytes())
            .is_some()
    );
    assert!(
        net.memory(2)
            .get_raw(Tree::Envelopes, id.as_bytes())
            .is_some()
    );
    // A receipt made later (the office downloads) still finds its way back through the
    // relay, by the routing record.
    for (name, _) in &files {
        net.api(
            2,
            SVC,
            ApiCommand::Fetch {
                id,
                name: name.clone(),
            },
        );
    }
    net.run_for(5_000);
    assert_eq!(sent_status(&mut net, 0, CM, id), "retrieved");
}

#[test]
fn duplicates_get_the_first_answer_forever() {
    let mut net = two_operators();
    let id = submit_riyohyo(&mut net);
    net.run_for(1_000);
    let env = net
        .memory(0)
        .get_raw(Tree::Envelopes, id.as_bytes())
        .unwrap();
    let first = net.deliver_raw(0, 1, env.clone());
    let second = net.deliver_raw(0, 1, env);
    assert_eq!(first, second);
    let r = SignedReceipt::decode(&first).unwrap();
    assert_eq!(r.receipt().kind, ReceiptKind::Delivered);
    assert_eq!(inbox(&mut net, 1, SVC, false).len(), 1);
}

#[test]
fn rejection_is_definitive_and_repeated_for_duplicates() {
    let mut net = two_operators();
    // B releases the office after A learnt the binding: A still routes there.
    let id = {
        net.partition(0, 1);
        let id = submit_riyohyo(&mut net);
        net.operator(
            1,
            ApiCommand::RemoveOffice {
                office: SVC.parse().unwrap(),
            },
        );
        net.heal(0, 1);
        id
    };
    net.run_for(5_000);
    assert_eq!(sent_status(&mut net, 0, CM, id), "rejected");
    let env = net
        .memory(0)
        .get_raw(Tree::Envelopes, id.as_bytes())
        .unwrap();
    let again = SignedReceipt::decode(&net.deliver_raw(0, 1, env)).unwrap();
    assert!(matches!(
        again.receipt().kind,
        ReceiptKind::Rejected {
            code: RejectCode::UnknownOffice,
            ..
        }
    ));
}

/// Regression (found by the crash-loop test, tests/it/crash_loop.rs): an office that
/// resubmitted a unit because the answer to its first submission was lost (the origin was
/// killed after its commit) created a second envelope of the same files, and the recipient
/// got the unit twice. Identical resubmission now returns the unit already sent.
#[test]
fn identical_resubmission_returns_the_unit_already_sent() {
    let mut net = two_operators();
    let files = fixture_unit("d2_kyo_riyohyo");
    let submit = |net: &mut Net, files: Vec<(String, Vec<u8>)>| submit_files(net, files);
    net.partition(0, 1);
    let id = submit(&mut net, files.clone());
    // The answer is lost with a crash after the commit; the office sends the same files
    // again, in another order.
    net.crash(0);
    let mut reordered = files.clone();
    reordered.reverse();
    assert_eq!(submit(&mut net, reordered), id);
    net.heal(0, 1);
    net.run_for(5_000);
    assert_eq!(sent_status(&mut net, 0, CM, id), "delivered");
    // After delivery too, with the current status.
    match net.api(
        0,
        CM,
        ApiCommand::Submit {
            unit: PreparedUnit::new(files.clone()),
            supersedes: None,
        },
    ) {
        ApiReply::Accepted(v) => {
            assert_eq!(v.id, id.to_string());
            assert_eq!(v.status, "delivered");
        }
        other => panic!("{other:?}"),
    }
    let inb = inbox(&mut net, 1, SVC, false);
    assert_eq!(inb.len(), 1, "{inb:?}");
    match net.api(0, CM, ApiCommand::Sent { id: None }) {
        ApiReply::Sent(v) => assert_eq!(v.len(), 1),
        other => panic!("{other:?}"),
    }
    // Other files (another stamp) or another `supersedes` make a new unit.
    let other = submit(&mut net, rename_stamp(&files, "20250426090000"));
    assert_ne!(other, id);
    let replacing = accepted_id(&net.api(
        0,
        CM,
        ApiCommand::Submit {
            unit: PreparedUnit::new(files.clone()),
            supersedes: Some(id),
        },
    ));
    assert_ne!(replacing, id);
    assert_ne!(replacing, other);
}

/// A unit that ended rejected is not the answer to a resubmission: the same files become a
/// new unit.
#[test]
fn resubmission_after_a_rejection_is_a_new_unit() {
    let mut net = two_operators();
    net.partition(0, 1);
    let files = fixture_unit("d2_kyo_riyohyo");
    let id = accepted_id(&net.api(
        0,
        CM,
        ApiCommand::Submit {
            unit: PreparedUnit::new(files.clone()),
            supersedes: None,
        },
    ));
    net.operator(
        1,
        ApiCommand::RemoveOffice {
            office: SVC.parse().unwrap(),
        },
    );
    net.heal(0, 1);
    net.run_for(5_000);
    assert_eq!(sent_status(&mut net, 0, CM, id), "rejected");
    // The office is registered again; the same files go out as a new unit.
    net.add_office(1, SVC, "11");
    net.run_for(1_000);
    let again = submit_files(&mut net, files);
    assert_ne!(again, id);
    net.run_for(5_000);
    assert_eq!(sent_status(&mut net, 0, CM, again), "delivered");
}

/// Two operators cut apart, and a unit of CM's for SVC accepted at the first.
fn cut_off_with_a_unit() -> (Net, EnvelopeId) {
    let mut net = two_operators();
    net.partition(0, 1);
    let id = submit_riyohyo(&mut net);
    (net, id)
}

#[test]
fn unreachable_destination_expires() {
    let (mut net, id) = cut_off_with_a_unit();
    net.run_for(net.expiry_ms + 60_000);
    assert_eq!(sent_status(&mut net, 0, CM, id), "expired");
    assert!(inbox(&mut net, 1, SVC, false).is_empty());
    assert_eq!(net.core(0).outbox_len(), 0);
    assert_eq!(net.core(0).counters().expired, 1);
}

/// Found by cargo-mutants (origin.rs: the early return of `expire_due`): a node that wakes
/// only well after a unit's expiry (asleep, or its timer late) still expires it then.
#[test]
fn a_unit_expires_at_a_wake_after_its_time() {
    let (mut net, id) = cut_off_with_a_unit();
    net.run_for(1_000);
    net.now += net.expiry_ms + 600_000;
    net.input(0, crate::Input::Tick);
    assert_eq!(sent_status(&mut net, 0, CM, id), "expired");
}

#[test]
fn restart_resumes_pending_envelopes() {
    let mut net = two_operators();
    net.partition(0, 1);
    let id = submit_riyohyo(&mut net);
    net.run_for(2_000);
    net.crash(0);
    net.heal(0, 1);
    net.run_for(5_000);
    assert_eq!(sent_status(&mut net, 0, CM, id), "delivered");
    assert_eq!(inbox(&mut net, 1, SVC, false).len(), 1);
}

#[test]
fn office_sees_only_its_own_data() {
    let mut net = one_node();
    net.add_office(0, "4009242217", "46");
    let files = fixture_unit("d2_kyo_riyohyo");
    // SVC's token cannot send a unit whose names say it comes from CM
    assert!(matches!(
        net.api(
            0,
            SVC,
            ApiCommand::Submit {
                unit: PreparedUnit::new(files.clone()),
                supersedes: None
            }
        ),
        ApiReply::Forbidden(_)
    ));
    let id = accepted_id(&net.api(
        0,
        CM,
        ApiCommand::Submit {
            unit: PreparedUnit::new(files.clone()),
            supersedes: None,
        },
    ));
    net.run_for(10);
    let other = "4009242217";
    assert!(matches!(
        net.api(
            0,
            other,
            ApiCommand::Fetch {
                id,
                name: files[0].0.clone()
            }
        ),
        ApiReply::NotFound(_)
    ));
    assert!(matches!(
        net.api(0, other, ApiCommand::Sent { id: Some(id) }),
        ApiReply::NotFound(_)
    ));
    assert!(matches!(
        net.api(0, other, ApiCommand::Proof { id }),
        ApiReply::NotFound(_)
    ));
    assert!(inbox(&mut net, 0, other, false).is_empty());
    assert!(matches!(
        net.api_token(
            0,
            [9; 32],
            ApiCommand::Inbox {
                latest_only: false,
                before: None,
                limit: 10,
            }
        ),
        ApiReply::Unauthorized
    ));
}

#[test]
fn late_older_unit_never_displaces_newer_one() {
    let mut net = one_node();
    let old = fixture_unit("d2_kyo_riyohyo");
    let new = rename_stamp(&old, "20250426090000");
    // the newer unit arrives first, then the older one
    let id_new = submit_files(&mut net, new);
    let id_old = submit_files(&mut net, old);
    net.run_for(10);
    let latest = inbox(&mut net, 0, SVC, true);
    assert_eq!(
        latest.iter().map(|e| e.id.clone()).collect::<Vec<_>>(),
        vec![id_new.to_string()]
    );
    let all = inbox(&mut net, 0, SVC, false);
    let old_entry = all.iter().find(|e| e.id == id_old.to_string()).unwrap();
    assert_eq!(
        old_entry.superseded_by.as_deref(),
        Some(id_new.to_string().as_str())
    );
}

/// The three users of the `d2_kyo_riyohyo` fixture (被保険者番号), in the order its files
/// list them.
const USERS: [&str; 3] = ["3490391694", "6699747534", "1047640335"];

/// Submits a 利用票 unit from CM to SVC for `users` under `stamp` on a one-node net.
fn submit_for(net: &mut Net, users: &[&str], stamp: &str) -> EnvelopeId {
    let files = rename_stamp(&keep_users(&fixture_unit("d2_kyo_riyohyo"), users), stamp);
    let id = submit_files(net, files);
    net.run_for(10);
    id
}

/// (id, superseded_by) of every unit in SVC's inbox.
fn replaced_by(net: &mut Net) -> std::collections::BTreeMap<String, Option<String>> {
    inbox(net, 0, SVC, false)
        .into_iter()
        .map(|e| (e.id, e.superseded_by))
        .collect()
}

/// Found by cargo-mutants (inbox.rs: the count of a unit's live slots): a unit for
/// several users stays latest while a newer unit replaces it for some of them, and is
/// replaced only when every one of its slots has a newer holder — by the last of them.
#[test]
fn a_unit_stays_latest_while_it_holds_a_slot() {
    let mut net = one_node();
    let all = submit_for(&mut net, &USERS, "20250425164608");
    let first = submit_for(&mut net, &USERS[..1], "20250426090000");
    let by = replaced_by(&mut net);
    assert_eq!(by[&all.to_string()], None, "still the latest for two users");
    assert_eq!(by[&first.to_string()], None);
    let rest = submit_for(&mut net, &USERS[1..], "20250427090000");
    let by = replaced_by(&mut net);
    assert_eq!(by[&all.to_string()], Some(rest.to_string()));
    assert_eq!(by[&first.to_string()], None);
    assert_eq!(by[&rest.to_string()], None);
}

/// Found by cargo-mutants (inbox.rs: the late unit's choice of its replacement): a late
/// older unit takes the slots no newer unit holds and stays latest; one that finds all its
/// slots taken is replaced by the newest of their holders.
#[test]
fn a_late_unit_takes_only_free_slots_and_names_the_newest_holder() {
    let mut net = one_node();
    let a = submit_for(&mut net, &USERS[..1], "20250426090000");
    let b = submit_for(&mut net, &USERS[1..2], "20250427090000");
    // Older than both, for the first two users: both slots are taken.
    let late = submit_for(&mut net, &USERS[..2], "20250425164608");
    // Older than both, for all three: it holds the third user's slot.
    let late_all = submit_for(&mut net, &USERS, "20250425164609");
    let by = replaced_by(&mut net);
    assert_eq!(
        by[&late.to_string()],
        Some(b.to_string()),
        "the newest holder"
    );
    assert_eq!(by[&late_all.to_string()], None, "latest for the third user");
    assert_eq!(by[&a.to_string()], None);
    assert_eq!(by[&b.to_string()], None);
}

/// Found by cargo-mutants (inbox.rs: the bounds of a page's scan): a page reads at most
/// `INBOX_SCAN_MAX` index entries, in chunks, and says where to go on; the next page
/// reads on from there to the office's oldest unit.
#[test]
fn an_inbox_page_scans_a_bounded_number_of_entries_and_says_where_to_go_on() {
    use crate::records::{self, InboxRec, office_id_key, office_time_id_key};
    use renkei_protocol::ids::OfficeNumber;
    let mut net = one_node();
    let old = submit_for(&mut net, &USERS, "20250425164608");
    let new = submit_for(&mut net, &USERS, "20250426090000");
    let office: OfficeNumber = SVC.parse().unwrap();
    let rec: InboxRec = records::get(net.store(0), Tree::Inbox, &office_id_key(&office, &old))
        .unwrap()
        .unwrap();
    assert!(rec.superseded_by.is_some());
    // Replaced units received before both, one per millisecond: more than a scan reads.
    let extra = crate::io::INBOX_SCAN_MAX + 1500;
    let mut ids = Vec::new();
    let store = net.core_mut(0).store_mut_for_tests();
    for i in 0..extra {
        let mut r = rec.clone();
        let mut b = [0u8; 16];
        b[..8].copy_from_slice(&(i as u64 + 1).to_be_bytes());
        r.id = EnvelopeId(b);
        r.received_at_ms = 1 + i as u64;
        store
            .put(
                Tree::InboxIndex,
                &office_time_id_key(&office, r.received_at_ms, &r.id),
                b"",
            )
            .unwrap();
        records::put(store, Tree::Inbox, &office_id_key(&office, &r.id), &r).unwrap();
        ids.push(r.id);
    }
    net.core_mut(0).commit().unwrap();
    let page = |net: &mut Net, before| match net.api(
        0,
        SVC,
        ApiCommand::Inbox {
            latest_only: true,
            before,
            limit: 10,
        },
    ) {
        ApiReply::InboxPage(p) => p,
        other => panic!("{other:?}"),
    };
    let p = page(&mut net, None);
    assert_eq!(
        p.items.iter().map(|v| v.id.clone()).collect::<Vec<_>>(),
        [new.to_string()]
    );
    // Newest first: `new`, `old`, then the copies from the newest; the scan stops after
    // exactly INBOX_SCAN_MAX entries.
    let stop = ids[extra - (crate::io::INBOX_SCAN_MAX - 2)];
    assert_eq!(p.next, Some(stop));
    let p = page(&mut net, Some(stop));
    assert!(p.items.is_empty());
    assert_eq!(p.next, None, "the second page reached the oldest unit");
}

#[test]
fn explicit_supersession_in_order() {
    let mut net = one_node();
    let first = fixture_unit("d2_kyo_riyohyo");
    let second = rename_stamp(&first, "20250427090000");
    let id1 = submit_files(&mut net, first);
    let id2 = accepted_id(&net.api(
        0,
        CM,
        ApiCommand::Submit {
            unit: PreparedUnit::new(second),
            supersedes: Some(id1),
        },
    ));
    net.run_for(10);
    let all = inbox(&mut net, 0, SVC, false);
    let e1 = all.iter().find(|e| e.id == id1.to_string()).unwrap();
    assert_eq!(e1.superseded_by.as_deref(), Some(id2.to_string().as_str()));
    assert!(!e1.latest);
    // naming an id the office never sent is refused
    let bogus = EnvelopeId([7; 16]);
    let r = net.api(
        0,
        CM,
        ApiCommand::Submit {
            unit: PreparedUnit::new(fixture_unit("d2_kyo_riyohyo")),
            supersedes: Some(bogus),
        },
    );
    assert!(matches!(r, ApiReply::Invalid(_)), "{r:?}");
}

/// Found by cargo-mutants (inbox.rs: `same_sender` → `false` survived, because slot
/// versioning replaced the older unit anyway): a unit that explicitly names an earlier one
/// of other document slots (another kind of document) replaces it by that rule alone.
#[test]
fn explicit_supersession_applies_across_document_slots() {
    let mut net = one_node();
    let id1 = submit_riyohyo(&mut net);
    let id2 = accepted_id(&net.api(
        0,
        CM,
        ApiCommand::Submit {
            unit: PreparedUnit::new(rename_stamp(&fixture_unit("d1_kyo_plan"), "20250427090000")),
            supersedes: Some(id1),
        },
    ));
    net.run_for(10);
    let all = inbox(&mut net, 0, SVC, false);
    let e1 = all.iter().find(|e| e.id == id1.to_string()).unwrap();
    assert_eq!(e1.superseded_by.as_deref(), Some(id2.to_string().as_str()));
    assert!(!e1.latest);
    let latest = inbox(&mut net, 0, SVC, true);
    assert_eq!(
        latest.iter().map(|e| e.id.clone()).collect::<Vec<_>>(),
        vec![id2.to_string()]
    );
}

#[test]
fn audit_chain_detects_tampering() {
    let mut net = one_node();
    submit_riyohyo(&mut net);
    net.run_for(10);
    let n = super::verify_chain(net.store(0)).unwrap();
    assert!(n >= 4, "{n}");
    net.tamper_audit(0, 2);
    let e = super::verify_chain(net.store(0)).unwrap_err();
    assert!(
        e.to_string().contains("entry 2") || e.to_string().contains("entry 3"),
        "{e}"
    );
}

#[test]
fn peer_not_in_roster_is_refused() {
    let mut net = Net::new(&[("a", false), ("b", false)]);
    let stranger = renkei_protocol::keys::OperatorKeys::from_seeds([0xEE; 32], [0xEF; 32]).id();
    let resp = net.inbound_from(
        1,
        stranger,
        renkei_protocol::wire::Request::DirectorySync {
            roster_serial: 0,
            cursor: 0,
        },
    );
    assert!(matches!(
        resp,
        renkei_protocol::wire::Response::Refused {
            code: renkei_protocol::wire::RefusalCode::NotInRoster,
            ..
        }
    ));
}

#[test]
fn crash_at_every_commit_point_loses_nothing_acknowledged() {
    // A scripted run; at step k node k%3 crashes before committing its batch.
    for k in 0..60 {
        let mut net = Net::new(&[("a", false), ("relay", true), ("b", false)]);
        net.connect(0, 1);
        net.connect(1, 2);
        net.add_office(0, CM, "43");
        net.add_office(2, SVC, "11");
        net.run_for(1_000);
        let mut accepted = Vec::new();
        for i in 0..3 {
            let files = rename_stamp(
                &fixture_unit("d2_kyo_riyohyo"),
                &format!("2025042516460{i}"),
            );
            let reply = net.api(
                0,
                CM,
                ApiCommand::Submit {
                    unit: PreparedUnit::new(files),
                    supersedes: None,
                },
            );
            if let ApiReply::Accepted(v) = reply {
                accepted.push(v.id.parse::<EnvelopeId>().unwrap());
            }
        }
        assert_eq!(accepted.len(), 3, "step {k}: submissions were not accepted");
        net.crash_on_step(k, k % 3);
        net.run_for(20_000);
        net.heal_all();
        net.run_for(600_000);
        let inb = inbox(&mut net, 2, SVC, false);
        for id in &accepted {
            assert_eq!(
                inb.iter().filter(|e| e.id == id.to_string()).count(),
                1,
                "step {k}: accepted {id} not delivered exactly once"
            );
            assert_eq!(sent_status(&mut net, 0, CM, *id), "delivered", "step {k}");
        }
        assert_eq!(
            inb.len(),
            accepted.len(),
            "step {k}: unexpected inbox entries"
        );
    }
}

mod interleavings {
    //! Random interleavings of submissions, partitions, crashes and time for a small
    //! federation; the queue-checker invariants must hold.
    use super::*;
    use proptest::prelude::*;

    #[derive(Debug, Clone)]
    enum Op {
        SubmitPlan(u8),
        SubmitJisseki(u8),
        Cut(usize, usize),
        Heal(usize, usize),
        Crash(usize),
        CrashMidBatch(usize, usize),
        Wait(u64),
    }

    fn op() -> impl Strategy<Value = Op> {
        prop_oneof![
            3 => any::<u8>().prop_map(Op::SubmitPlan),
            2 => any::<u8>().prop_map(Op::SubmitJisseki),
            1 => (0usize..3, 0usize..3).prop_map(|(a, b)| Op::Cut(a, b)),
            1 => (0usize..3, 0usize..3).prop_map(|(a, b)| Op::Heal(a, b)),
            1 => (0usize..3).prop_map(Op::Crash),
            1 => (0usize..3, 0usize..8).prop_map(|(i, k)| Op::CrashMidBatch(i, k)),
            2 => (1u64..120_000).prop_map(Op::Wait),
        ]
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 24, ..ProptestConfig::default() })]
        #[test]
        fn lost_duplicated_unexpected_are_zero(ops in proptest::collection::vec(op(), 1..25)) {
            let mut net = Net::new(&[("a", false), ("relay", true), ("b", false)]);
            net.connect(0, 1);
            net.connect(1, 2);
            net.add_office(0, CM, "43");
            net.add_office(2, SVC, "11");
            net.run_for(60_000);
            let plan = fixture_unit("d2_kyo_riyohyo");
            let jsk = fixture_unit("d3_jisseki");
            let mut sent_to_b = Vec::new();
            let mut sent_to_a = Vec::new();
            for op in ops {
                match op {
                    Op::SubmitPlan(n) => {
                        let files = rename_stamp(&plan, &format!("202504251646{:02}", n % 60));
                        if let ApiReply::Accepted(v) = net.api(0, CM, ApiCommand::Submit { unit: PreparedUnit::new(files), supersedes: None }) {
                            sent_to_b.push(v.id);
                        }
                    }
                    Op::SubmitJisseki(n) => {
                        let files = rename_stamp(&jsk, &format!("202504281646{:02}", n % 60));
                        if let ApiReply::Accepted(v) = net.api(2, SVC, ApiCommand::Submit { unit: PreparedUnit::new(files), supersedes: None }) {
                            sent_to_a.push(v.id);
                        }
                    }
                    Op::Cut(a, b) if a != b => net.partition(a, b),
                    Op::Heal(a, b) if a != b && (a == 1 || b == 1) => net.heal(a, b),
                    Op::Crash(i) => net.crash(i),
                    Op::CrashMidBatch(i, k) => net.crash_on_step(k, i),
                    Op::Wait(ms) => net.run_for(ms),
                    _ => {}
                }
            }
            // Liveness phase: faults stop.
            net.heal_all();
            net.run_for(net.expiry_ms * 2);
            for (node, office, sender, sender_office, ids) in [(2, SVC, 0, CM, &sent_to_b), (0, CM, 2, SVC, &sent_to_a)] {
                let inb = inbox(&mut net, node, office, false);
                for id in ids.iter() {
                    let n = inb.iter().filter(|e| &e.id == id).count();
                    prop_assert!(n <= 1, "duplicated: {} appears {} times", id, n);
                    let status = sent_status(&mut net, sender, sender_office, id.parse().unwrap());
                    prop_assert!(n == 1 || status == "expired", "lost: {} status {} not in inbox", id, status);
                    prop_assert!(status == "delivered" || status == "expired", "{} ended {}", id, status);
                }
                for e in &inb {
                    prop_assert!(ids.contains(&e.id), "unexpected inbox entry {}", e.id);
                }
            }
        }
    }
}

#[test]
fn sent_list_is_newest_first_and_pages_back_with_before() {
    let mut net = Net::new(&[("a", false)]);
    net.add_office(0, CM, "43");
    net.add_office(0, SVC, "11");
    net.add_office(0, "4071480000", "43");
    let mut ids = Vec::new();
    for i in 0..5u64 {
        let files = rename_stamp(
            &fixture_unit("d2_kyo_riyohyo"),
            &format!("2025042516460{i}"),
        );
        ids.push(submit_files(&mut net, files));
        net.run_for(10);
    }
    let page = |net: &mut Net, before: Option<EnvelopeId>, limit: usize| -> Vec<String> {
        match net.api(0, CM, ApiCommand::SentPage { before, limit }) {
            ApiReply::Sent(v) => v.into_iter().map(|s| s.id).collect(),
            other => panic!("{other:?}"),
        }
    };
    let want = |i: &[usize]| -> Vec<String> { i.iter().map(|&i| ids[i].to_string()).collect() };
    assert_eq!(page(&mut net, None, 2), want(&[4, 3]));
    assert_eq!(page(&mut net, Some(ids[3]), 2), want(&[2, 1]));
    assert_eq!(page(&mut net, Some(ids[1]), 2), want(&[0]));
    assert_eq!(page(&mut net, Some(ids[0]), 2), Vec::<String>::new());
    assert_eq!(page(&mut net, None, 100), want(&[4, 3, 2, 1, 0]));
    // Another office cannot page with this office's ids.
    match net.api(
        0,
        "4071480000",
        ApiCommand::SentPage {
            before: Some(ids[2]),
            limit: 10,
        },
    ) {
        ApiReply::NotFound(m) => assert!(m.contains("before"), "{m}"),
        other => panic!("{other:?}"),
    }
}

#[test]
fn a_stuck_peer_does_not_hold_up_envelopes_for_others() {
    // A sends to B (which takes requests and never answers) and to C. The scan budget is
    // tiny, so B's blocked backlog alone would fill every pass of a single global scan.
    let mut net = Net::new_with(&[("a", false), ("b", false), ("c", false)], |cfg| {
        cfg.due_scan_max = 4;
        cfg.batch_envelopes_max = 1;
    });
    net.connect(0, 1);
    net.connect(0, 2);
    net.add_cm_and_svc();
    net.add_office(2, "4071480000", "11");
    net.run_for(100);
    net.stuck.insert(1);
    let base = fixture_unit("d2_kyo_riyohyo");
    // Window (4 batches of 1) plus a backlog of 8 for B.
    for i in 0..12u64 {
        let files = rename_stamp(&base, &format!("202504251646{i:02}"));
        submit_files(&mut net, files);
    }
    net.run_for(50);
    let to_c: Vec<(String, Vec<u8>)> = rename_stamp(&base, "20250425164659")
        .into_iter()
        .map(|(n, b)| {
            let n = n.replace(SVC, "4071480000");
            (n, b)
        })
        .collect();
    let id = submit_files(&mut net, to_c);
    net.run_for(200);
    assert_eq!(sent_status(&mut net, 0, CM, id), "delivered");
}

#[test]
fn a_restarted_node_resumes_directory_sync_where_it_stopped() {
    let mut net = two_operators();
    net.run_for(2_000);
    let a = net.id(0);
    let read = net.core(1).sync_cursor.get(&a).copied();
    assert!(
        read.is_some_and(|c| c >= 1),
        "b read a's binding log: {read:?}"
    );
    // The cursor is in b's store, committed with the bindings it covers: after a crash
    // b asks a for what is new since, not for a's whole log again.
    net.crash(1);
    assert_eq!(net.core(1).sync_cursor.get(&a).copied(), read);
    let resp = net.inbound_from(
        0,
        net.id(1),
        renkei_protocol::wire::Request::DirectorySync {
            roster_serial: 0,
            cursor: read.unwrap(),
        },
    );
    match resp {
        renkei_protocol::wire::Response::Directory { bindings, .. } => {
            assert!(
                bindings.is_empty(),
                "{} bindings sent again",
                bindings.len()
            );
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn a_cursor_past_the_end_of_the_log_reads_it_from_the_start() {
    let mut net = two_operators();
    net.run_for(2_000);
    let held = net.core(0).binding_seq;
    assert!(held >= 2, "a holds both offices' bindings: {held}");
    let resp = net.inbound_from(
        0,
        net.id(1),
        renkei_protocol::wire::Request::DirectorySync {
            roster_serial: 0,
            cursor: held + 1_000,
        },
    );
    match resp {
        renkei_protocol::wire::Response::Directory {
            bindings,
            next_cursor,
            ..
        } => {
            assert_eq!(bindings.len() as u64, held);
            assert_eq!(next_cursor, held);
        }
        other => panic!("{other:?}"),
    }
}

/// The bindings in a directory-sync answer of node `i` to node `to`, read from `cursor`.
fn sync_answer(net: &mut Net, i: usize, to: usize, cursor: u64) -> (Vec<String>, u64) {
    let peer = net.id(to);
    match net.inbound_from(
        i,
        peer,
        renkei_protocol::wire::Request::DirectorySync {
            roster_serial: 0,
            cursor,
        },
    ) {
        renkei_protocol::wire::Response::Directory {
            bindings,
            next_cursor,
            ..
        } => {
            let mut offices: Vec<String> = bindings
                .iter()
                .map(|b| {
                    renkei_protocol::roster::SignedBinding::decode(b)
                        .unwrap()
                        .binding()
                        .office
                        .to_string()
                })
                .collect();
            offices.sort();
            (offices, next_cursor)
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn directory_sync_does_not_send_a_peer_back_what_it_sent() {
    let mut net = Net::new(&[("a", false), ("relay", true), ("b", false)]);
    net.connect(0, 1);
    net.connect(1, 2);
    net.add_office(1, "4009242217", "43");
    net.add_office(0, CM, "43");
    net.add_office(2, SVC, "11");
    net.run_for(2_000);
    // The relay's log: its own office (1), then what it learnt from a and from b.
    assert_eq!(net.core(1).binding_seq, 3);
    assert_eq!(
        sync_answer(&mut net, 1, 2, 1),
        (vec![CM.to_string()], 3),
        "b is not sent its own office back"
    );
    assert_eq!(sync_answer(&mut net, 1, 0, 1), (vec![SVC.to_string()], 3));
    // From the start (a peer whose store was replaced), everything.
    let (all, next) = sync_answer(&mut net, 1, 2, 0);
    assert_eq!(next, 3);
    assert_eq!(all.len(), 3, "{all:?}");
    // And each end learnt the other's office through the relay.
    for (i, office) in [(0, SVC), (2, CM)] {
        assert!(
            net.core(i).bindings.contains_key(
                &office
                    .parse::<renkei_protocol::ids::OfficeNumber>()
                    .unwrap()
            ),
            "node {i} knows {office}"
        );
    }
}

#[test]
fn a_peer_coming_up_makes_only_its_own_queue_due() {
    // A holds envelopes for B and for C, both unreachable and backing off. C coming up
    // makes C's envelope due at once; B's keeps its retry time.
    let mut net = Net::new(&[("a", false), ("b", false), ("c", false)]);
    net.connect(0, 1);
    net.connect(0, 2);
    net.add_cm_and_svc();
    net.add_office(2, "4071480000", "11");
    net.run_for(1_000);
    net.partition(0, 1);
    net.partition(0, 2);
    let base = fixture_unit("d2_kyo_riyohyo");
    let to_b = accepted_id(&net.api(
        0,
        CM,
        ApiCommand::Submit {
            unit: PreparedUnit::new(rename_stamp(&base, "20250425164601")),
            supersedes: None,
        },
    ));
    let to_c_files: Vec<(String, Vec<u8>)> = rename_stamp(&base, "20250425164602")
        .into_iter()
        .map(|(n, b)| (n.replace(SVC, "4071480000"), b))
        .collect();
    let to_c = submit_files(&mut net, to_c_files);
    // Several failed attempts: both wait on backoff, well after now.
    net.run_for(20_000);
    let due = |net: &Net, id: EnvelopeId| net.core(0).due_of.get(&id).map(|(t, _)| *t);
    let b_due = due(&net, to_b).expect("queued for b");
    assert!(b_due > net.now, "b's envelope waits on backoff");
    assert!(due(&net, to_c).is_some_and(|t| t > net.now));
    let c = net.id(2);
    let now = net.now;
    let core = net.core_mut(0);
    core.handle(now, crate::Input::PeerUp(c)).unwrap();
    assert_eq!(
        core.due_of.get(&to_c).map(|(t, _)| *t),
        Some(now),
        "c's is due now"
    );
    assert_eq!(
        core.due_of.get(&to_b).map(|(t, _)| *t),
        Some(b_due),
        "b's keeps its retry time"
    );
}

#[test]
fn the_inbox_pages_newest_first_and_never_drops_units() {
    let mut net = one_node();
    let base = fixture_unit("d2_kyo_riyohyo");
    let mut sent = Vec::new();
    for i in 0..25u64 {
        let files = rename_stamp(&base, &format!("202504251646{i:02}"));
        sent.push(submit_files(&mut net, files));
        net.run_for(10);
    }
    let page = |net: &mut Net, latest_only, before, limit| match net.api(
        0,
        SVC,
        ApiCommand::Inbox {
            latest_only,
            before,
            limit,
        },
    ) {
        ApiReply::InboxPage(p) => p,
        other => panic!("{other:?}"),
    };
    let mut seen = Vec::new();
    let mut before = None;
    let mut pages = Vec::new();
    loop {
        let p = page(&mut net, false, before, 10);
        pages.push(p.items.len());
        seen.extend(p.items.iter().map(|v| v.id.clone()));
        match p.next {
            Some(n) => {
                assert_eq!(Some(n.to_string()), p.items.last().map(|v| v.id.clone()));
                before = Some(n);
            }
            None => break,
        }
    }
    assert_eq!(pages, [10, 10, 5]);
    let newest_first: Vec<String> = sent.iter().rev().map(|i| i.to_string()).collect();
    assert_eq!(seen, newest_first, "every unit once, newest received first");
    // The same plan for the same user and month: only the newest is latest.
    let latest = page(&mut net, true, None, 10);
    assert_eq!(latest.items.len(), 1);
    assert_eq!(latest.items[0].id, sent[24].to_string());
    // A cursor of another office's (or no) unit is an error, not an empty page.
    let ApiReply::NotFound(m) = net.api(
        0,
        SVC,
        ApiCommand::Inbox {
            latest_only: false,
            before: Some(EnvelopeId([3; 16])),
            limit: 10,
        },
    ) else {
        panic!("expected NotFound");
    };
    assert!(m.contains("before"), "{m}");

    // A store written before the index existed is indexed when the node opens.
    let keys: Vec<Vec<u8>> = net
        .store(0)
        .range(Tree::InboxIndex, b"", None, 100)
        .unwrap()
        .into_iter()
        .map(|(k, _)| k)
        .collect();
    assert_eq!(keys.len(), 25);
    for k in &keys {
        net.core_mut(0)
            .store_mut_for_tests()
            .delete(Tree::InboxIndex, k)
            .unwrap();
    }
    net.core_mut(0).commit().unwrap();
    net.crash(0);
    let p = page(&mut net, false, None, 100);
    assert_eq!(p.items.len(), 25);
    assert_eq!(p.items[0].id, sent[24].to_string());
}

/// Found by cargo-mutants (unit_validate.rs: how a unit's users and subject are derived):
/// a 利用票 unit names its month and holds one slot per user; a plan unit names its plan
/// date when its users share one (here: a unit for one user), none when they differ.
#[test]
fn a_units_users_and_subject_come_from_its_files() {
    let mut net = one_node();
    let one_user = rename_stamp(
        &keep_users(&fixture_unit("d1_kyo_plan"), &USERS[..1]),
        "20250426090000",
    );
    for files in [
        fixture_unit("d2_kyo_riyohyo"),
        fixture_unit("d1_kyo_plan"),
        one_user,
    ] {
        submit_files(&mut net, files);
        net.run_for(10);
    }
    let mut shown: Vec<(String, Option<String>, usize)> = inbox(&mut net, 0, SVC, false)
        .iter()
        .map(|v| (v.kind.clone(), v.subject.clone(), v.users))
        .collect();
    shown.sort();
    assert_eq!(shown.len(), 3);
    assert_eq!(shown[2], ("D2".into(), Some("202505".into()), 3));
    assert_eq!(
        shown[0],
        ("D1".into(), None, 3),
        "three users, three plan dates"
    );
    let (kind, date, users) = &shown[1];
    assert_eq!((kind.as_str(), *users), ("D1", 1));
    assert!(
        date.as_ref()
            .is_some_and(|d| d.len() == 8 && d.starts_with("20")),
        "the one user's plan date: {date:?}"
    );
}

/// Found by cargo-mutants (unit.rs: `Family::monthly`): 利用票 of different months are
/// different documents — June's does not replace May's — while a newer one of the same
/// month does.
#[test]
fn a_months_riyohyo_does_not_replace_another_months() {
    let mut net = one_node();
    let may = fixture_unit("d2_kyo_riyohyo");
    // The same unit for June: the month in the names and in the records (MS932 bytes,
    // replaced as bytes; May's dates become June's, all of them valid in June).
    let june: Vec<(String, Vec<u8>)> = rename_stamp(&may, "20250520090000")
        .into_iter()
        .map(|(n, b)| {
            (
                n.replace("_202505_", "_202506_"),
                replace_bytes(&b, b"202505", b"202506"),
            )
        })
        .collect();
    let may_newer = rename_stamp(&may, "20250521090000");
    for files in [may, june, may_newer] {
        submit_files(&mut net, files);
        net.run_for(10);
    }
    let mut latest: Vec<(Option<String>, String)> = inbox(&mut net, 0, SVC, true)
        .into_iter()
        .map(|v| (v.subject, v.stamp))
        .collect();
    latest.sort();
    assert_eq!(
        latest,
        [
            (Some("202505".to_string()), "20250521090000".to_string()),
            (Some("202506".to_string()), "20250520090000".to_string())
        ]
    );
}

/// Found by cargo-mutants (origin.rs: what a unit may name in `supersedes`): only a unit
/// the same office sent to the same recipient.
#[test]
fn a_unit_may_supersede_only_one_sent_to_the_same_recipient() {
    const OTHER: &str = "4071480000";
    let mut net = one_node();
    net.add_office(0, OTHER, "11");
    let first = submit_riyohyo(&mut net);
    let to_other: Vec<(String, Vec<u8>)> =
        rename_stamp(&fixture_unit("d2_kyo_riyohyo"), "20250426090000")
            .into_iter()
            .map(|(n, b)| {
                (
                    n.replace(SVC, OTHER),
                    replace_bytes(&b, SVC.as_bytes(), OTHER.as_bytes()),
                )
            })
            .collect();
    let r = net.api(
        0,
        CM,
        ApiCommand::Submit {
            unit: PreparedUnit::new(to_other.clone()),
            supersedes: Some(first),
        },
    );
    assert!(matches!(r, ApiReply::Invalid(_)), "{r:?}");
    // Without naming it, the same unit goes.
    submit_files(&mut net, to_other);
}

#[test]
fn sequence_numbers_never_repeat_across_restarts_and_reserve_in_blocks() {
    let mut net = one_node();
    let now = net.now;
    let (mut committed, mut meta_writes) = (0u64, 0usize);
    for round in 0..3 {
        let core = net.core_mut(0);
        let start = core.seq;
        for _ in 0..(crate::SEQ_RESERVE + 10) {
            let before = core.seq_reserved;
            let s = core.next_seq().unwrap();
            assert!(
                s > committed,
                "round {round}: {s} after {committed} committed"
            );
            assert!(s <= core.seq_reserved);
            meta_writes += usize::from(core.seq_reserved != before);
            committed = s;
        }
        assert!(core.seq > start);
        core.batch(now).commit().unwrap();
        // Numbers drawn and never committed may come again: nothing was stored with them.
        for _ in 0..crate::SEQ_RESERVE {
            core.next_seq().unwrap();
        }
        net.crash(0);
    }
    // One reservation per block, not one write per number.
    assert!(meta_writes <= 3 * 2, "{meta_writes} reservations");
    let s = net.core_mut(0).next_seq().unwrap();
    assert!(s > committed);
}
