//! Key rotation in the core: an envelope addressed and sealed to the old key while the
//! destination was away is still delivered and opened after the rotation; receipts and
//! proofs made before verify with the new roster; new units go to the new key; bindings
//! are re-signed under it.
#![allow(clippy::unwrap_used)]

use renkei_protocol::envelope::Header;
use renkei_protocol::proof::Proof;
use renkei_protocol::receipt::ReceiptKind;

use super::net::{Net, fixture_unit, rename_stamp};
use super::{CM, SVC, accepted_id, inbox, sent_status};
use crate::io::{ApiCommand, ApiReply};

fn proof(net: &mut Net, node: usize, office: &str, id: renkei_protocol::ids::EnvelopeId) -> Proof {
    let ApiReply::Proof(p) = net.api(node, office, ApiCommand::Proof { id }) else {
        panic!("no proof for {id}")
    };
    Proof::decode(&p).unwrap()
}

fn submit(net: &mut Net, stamp: &str) -> renkei_protocol::ids::EnvelopeId {
    let files = rename_stamp(&fixture_unit("d2_kyo_riyohyo"), stamp);
    accepted_id(&net.api(
        0,
        CM,
        ApiCommand::Submit {
            unit: crate::PreparedUnit::new(files),
            supersedes: None,
        },
    ))
}

#[test]
fn rotation_keeps_in_flight_envelopes_and_old_proofs_valid() {
    // a — relay — b
    let mut net = Net::new(&[("a", false), ("relay", true), ("b", false)]);
    net.connect(0, 1);
    net.connect(1, 2);
    net.add_office(0, CM, "43");
    net.add_office(2, SVC, "11");
    net.run_for(1_000);

    // Before the rotation: delivered, with a proof signed by b's first key.
    let u1 = submit(&mut net, "20250425164608");
    net.run_for(5_000);
    assert_eq!(sent_status(&mut net, 0, CM, u1), "delivered");
    let p1 = proof(&mut net, 0, CM, u1);
    let old_roster = net.roster.roster().clone();
    p1.verify(&old_roster).unwrap();

    // b goes away; a unit sealed and addressed to b's old key waits at the relay.
    net.partition(1, 2);
    let u2 = submit(&mut net, "20250425170000");
    net.run_for(5_000);
    assert_eq!(sent_status(&mut net, 0, CM, u2), "relayed");
    let old_b = net.id(2);

    // b rotates; the authority publishes the roster; everyone installs it.
    let expires = net.now + 30 * 86_400_000;
    assert_eq!(net.rotate(2, ([0x61; 32], [0x62; 32]), expires), old_b);
    let new_b = net.id(2);
    assert_ne!(new_b, old_b);
    for i in 0..3 {
        net.install_roster(i);
    }
    net.heal(1, 2);
    net.run_for(10_000);

    // The in-flight unit reached b under its new id and was opened with the old key.
    assert_eq!(sent_status(&mut net, 0, CM, u2), "delivered");
    let got: Vec<String> = inbox(&mut net, 2, SVC, false)
        .into_iter()
        .map(|e| e.id)
        .collect();
    assert!(got.contains(&u2.to_string()), "{got:?}");
    let p2 = proof(&mut net, 0, CM, u2);
    assert_eq!(p2.header().destination, old_b);
    let delivered = p2
        .receipts
        .iter()
        .find(|r| r.receipt().kind == ReceiptKind::Delivered)
        .unwrap();
    assert_eq!(delivered.receipt().node, new_b);
    let new_roster = net.roster.roster().clone();
    p2.verify(&new_roster).unwrap();
    // The old roster does not know the new key.
    assert!(p2.verify(&old_roster).is_err());
    // The proof made before the rotation verifies with the new roster.
    proof(&mut net, 0, CM, u1).verify(&new_roster).unwrap();
    p1.verify(&new_roster).unwrap();

    // b re-signed its binding under the new key, and a learnt it.
    let ApiReply::Directory(d) = net.api(
        0,
        CM,
        ApiCommand::Lookup {
            office: SVC.parse().unwrap(),
        },
    ) else {
        panic!()
    };
    assert_eq!(d.operator.as_deref(), Some(new_b.to_string().as_str()));

    // A unit sent after the rotation is addressed and sealed to the new key.
    let u3 = submit(&mut net, "20250425180000");
    net.run_for(5_000);
    assert_eq!(sent_status(&mut net, 0, CM, u3), "delivered");
    let p3 = proof(&mut net, 0, CM, u3);
    let h: &Header = p3.header();
    assert_eq!(h.destination, new_b);
    let b_entry = new_roster.operator(&new_b).unwrap();
    assert_eq!(h.sealed_to, b_entry.enc_key);
    p3.verify(&new_roster).unwrap();
    assert_eq!(inbox(&mut net, 2, SVC, false).len(), 3);
    assert!(crate::verify_chain(net.store(2)).unwrap() > 0);
}

#[test]
fn a_node_still_under_the_old_roster_routes_old_addresses_to_the_new_key_only_once_told() {
    // a and b directly; a keeps the old roster until it learns the new one by sync from b.
    let mut net = Net::new(&[("a", false), ("b", false)]);
    net.connect(0, 1);
    net.add_cm_and_svc();
    net.run_for(1_000);
    net.partition(0, 1);
    let u = submit(&mut net, "20250425170000");
    net.run_for(1_000);
    let old_b = net.id(1);
    net.rotate(1, ([0x71; 32], [0x72; 32]), net.now + 86_400_000);
    // Only b has the new roster; a learns it (and b's new binding) by directory sync.
    net.install_roster(1);
    net.heal(0, 1);
    net.run_for(120_000);
    assert_eq!(sent_status(&mut net, 0, CM, u), "delivered");
    let p = proof(&mut net, 0, CM, u);
    assert_eq!(p.header().destination, old_b);
    p.verify(net.roster.roster()).unwrap();
    assert!(net.core(0).is_me(&net.id(0)));
    assert!(net.core(1).is_me(&old_b));
}

/// The audit entries of node `n` naming `event`.
fn audited(net: &Net, n: usize, event: &str) -> usize {
    net.store(n)
        .range(crate::store::Tree::Audit, b"", None, 100_000)
        .unwrap()
        .iter()
        .filter(|(_, v)| v.windows(event.len()).any(|w| w == event.as_bytes()))
        .count()
}

/// Found by cargo-mutants (directory.rs: `rebind_after_rotation`): a start re-signs only
/// what needs it — nothing when every binding is current; a binding signed before
/// bindings named their office, once, with the name (no audit: nothing moved); after a
/// rotation, every office under the new key (audited).
#[test]
fn a_start_re_signs_only_stale_bindings() {
    use crate::store::{Store, Tree};
    use renkei_protocol::roster::OfficeBinding;
    let mut net = Net::new(&[("a", false)]);
    net.add_office(0, CM, "43");
    let log = |net: &Net| {
        net.store(0)
            .range(Tree::BindingLog, b"", None, 1000)
            .unwrap()
            .len()
    };
    let before = log(&net);
    net.crash(0);
    assert_eq!(log(&net), before, "nothing re-signed");
    // A binding from before names: re-signed once, with the name.
    let a = net.id(0);
    let unnamed = OfficeBinding {
        office: CM.parse().unwrap(),
        kinds: vec!["43".parse().unwrap()],
        operator: a,
        since_ms: net.now,
        released: false,
        name: String::new(),
    }
    .sign(&net.core(0).keys.identity);
    let store = net.core_mut(0).store_mut_for_tests();
    store
        .put(Tree::Bindings, CM.as_bytes(), &unnamed.encode())
        .unwrap();
    net.core_mut(0).commit().unwrap();
    net.crash(0);
    let office = CM.parse().unwrap();
    assert_eq!(
        net.core(0).binding_of(&office).map(|b| b.name.clone()),
        Some(OfficeBinding::name_for(&format!("office {CM}")))
    );
    assert_eq!(log(&net), before + 1);
    assert_eq!(audited(&net, 0, "office_rebound"), 0);
    net.crash(0);
    assert_eq!(log(&net), before + 1, "once");
    // A rotation: re-signed under the new key, and audited.
    net.rotate(0, ([0x61; 32], [0x62; 32]), net.now + 3_600_000);
    assert_eq!(
        net.core(0).binding_of(&office).map(|b| b.operator),
        Some(net.id(0))
    );
    assert_eq!(audited(&net, 0, "office_rebound"), 1);
}
