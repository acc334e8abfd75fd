//! Key rotation (old receipts, old sealing keys) and the receipt-role rule of offline proof
//! verification.

#![allow(clippy::unwrap_used)]

mod common;

use common::*;
use renkei_protocol::envelope::Envelope;
use renkei_protocol::error::VerifyError;
use renkei_protocol::export::{AuditExport, Direction, ExportEntry};
use renkei_protocol::keys::OperatorKeys;
use renkei_protocol::receipt::{Receipt, ReceiptKind, RejectCode, SignedReceipt};
use renkei_protocol::roster::{OldKey, Roster};

fn other() -> OperatorKeys {
    OperatorKeys::from_seeds([0x41; 32], [0x42; 32])
}

/// origin, destination, and a third operator "other" (a relay).
fn roster3() -> Roster {
    let mut r = roster().roster().clone();
    r.operators.push(entry("other", &other(), true));
    r
}

fn receipt(env: &Envelope, kind: ReceiptKind, by: &OperatorKeys, at_ms: u64) -> SignedReceipt {
    Receipt {
        envelope: env.id(),
        digest: env.digest(),
        kind,
        node: by.id(),
        at_ms,
    }
    .sign(&by.identity)
}

const T: u64 = 1_745_567_169_000;

#[test]
fn delivered_signed_by_a_non_destination_roster_operator_is_refused() {
    let env = envelope();
    let r = roster3();
    // The genuine proof verifies.
    proof(&env, vec![delivered(&env)]).verify(&r).unwrap();
    for (kind, by) in [
        (ReceiptKind::Delivered, other()),
        (ReceiptKind::Delivered, origin()),
        (ReceiptKind::Retrieved, other()),
        (ReceiptKind::Expired, destination()),
        (ReceiptKind::Accepted { hop: 0 }, other()),
    ] {
        let name = kind.name();
        let forged = receipt(&env, kind, &by, T);
        // The receipt itself is a valid roster signature ...
        forged.verify_with_roster(&r).unwrap();
        // ... but not that operator's statement to make.
        let e = proof(&env, vec![forged]).verify(&r).unwrap_err();
        match &e {
            VerifyError::WrongSigner {
                receipt,
                signer,
                role,
                expected,
                ..
            } => {
                assert_eq!(*receipt, name);
                assert_eq!(*signer, by.id().to_string());
                let want = if *role == "destination" {
                    destination().id()
                } else {
                    assert_eq!(*role, "origin");
                    origin().id()
                };
                assert_eq!(*expected, want.to_string());
            }
            other => panic!("{name}: wrong error {other}"),
        }
        let text = e.to_string();
        assert!(
            text.contains(name) && text.contains(&by.id().to_string()),
            "{text}"
        );
    }
}

#[test]
fn relay_statements_may_come_from_any_roster_operator() {
    let env = envelope();
    let r = roster3();
    let receipts = vec![
        receipt(&env, ReceiptKind::Accepted { hop: 0 }, &origin(), T - 500),
        receipt(&env, ReceiptKind::Accepted { hop: 1 }, &other(), T - 400),
        receipt(
            &env,
            ReceiptKind::Rejected {
                code: RejectCode::NoRoute,
                text: "no route".into(),
            },
            &other(),
            T - 300,
        ),
        delivered(&env),
        receipt(&env, ReceiptKind::Retrieved, &destination(), T + 1),
    ];
    let proof = proof(&env, receipts);
    let lines = proof.verify(&r).unwrap();
    // The envelope, five statements, and the contradiction between the relay's rejection
    // and the destination's delivery, which names the one that stands.
    assert_eq!(lines.len(), 7, "{lines:?}");
    let c = proof.contradictions(&r);
    assert_eq!(c.len(), 1, "{c:?}");
    assert!(
        c[0].contains("operator other says it rejected")
            && c[0].contains("the destination's statement stands"),
        "{c:?}"
    );
    assert_eq!(lines[6], c[0]);
}

#[test]
fn a_destination_that_delivers_and_rejects_is_named() {
    let env = envelope();
    let r = roster3();
    let receipts = vec![
        receipt(
            &env,
            ReceiptKind::Rejected {
                code: RejectCode::InvalidCsv,
                text: "bad".into(),
            },
            &destination(),
            T - 300,
        ),
        delivered(&env),
    ];
    let both = proof(&env, receipts);
    let c = both.contradictions(&r);
    assert_eq!(c.len(), 1, "{c:?}");
    assert!(c[0].contains("both delivered this unit"), "{c:?}");
    // Without a delivery there is nothing to contradict.
    let only_rejected = proof(
        &env,
        vec![receipt(
            &env,
            ReceiptKind::Rejected {
                code: RejectCode::InvalidCsv,
                text: "bad".into(),
            },
            &destination(),
            T - 300,
        )],
    );
    assert!(only_rejected.contradictions(&r).is_empty());
}

#[test]
fn audit_export_verification_applies_the_role_rule() {
    let env = envelope();
    let r = roster3();
    let export = |rc: SignedReceipt| AuditExport {
        office: "4074478647".parse().unwrap(),
        month: "202505".into(),
        generated_at_ms: T + 10,
        node: origin().id(),
        entries: vec![ExportEntry {
            direction: Direction::Sent,
            proof: proof(&env, vec![rc]),
        }],
    };
    let good = export(delivered(&env)).verify(&r);
    assert!(good[0].is_ok(), "{good:?}");
    let bad = export(receipt(&env, ReceiptKind::Delivered, &other(), T)).verify(&r);
    assert!(
        matches!(bad[0], Err(VerifyError::WrongSigner { .. })),
        "{bad:?}"
    );
}

/// The roster after the destination rotated to `new`, its old key kept until `expires_ms`.
fn rotated_roster(new: &OperatorKeys, expires_ms: u64) -> Roster {
    let mut r = roster3();
    r.serial += 1;
    let d = r
        .operators
        .iter_mut()
        .find(|o| o.name == "destination")
        .unwrap();
    d.old_keys.push(OldKey {
        id: d.id,
        enc_key: d.enc_key,
        expires_ms,
    });
    d.id = new.id();
    d.enc_key = new.seal.public();
    r
}

#[test]
fn proofs_signed_with_the_old_key_verify_until_its_expiry_and_not_after() {
    let env = envelope();
    let rotated = destination().rotate([0x51; 32], [0x52; 32]);
    let expires = T + 1_000;
    let r = rotated_roster(&rotated, expires);
    assert!(r.same_operator(&destination().id(), &rotated.id()));
    assert!(!r.same_operator(&origin().id(), &rotated.id()));
    assert_eq!(
        r.operator_with_key(&destination().id()).map(|o| o.id),
        Some(rotated.id())
    );
    // Delivered signed with the old key before the rotation: still verifies.
    let lines = proof(&env, vec![delivered(&env)]).verify(&r).unwrap();
    assert!(lines[1].starts_with("delivered by operator destination"));
    // Retrieved signed with the new key, about an envelope addressed to the old id: the
    // same operator, so it verifies too.
    let retrieved = receipt(&env, ReceiptKind::Retrieved, &rotated, T + 5_000);
    proof(&env, vec![delivered(&env), retrieved.clone()])
        .verify(&r)
        .unwrap();
    // A statement made with the old key after its expiry does not.
    let late = receipt(&env, ReceiptKind::Retrieved, &destination(), expires);
    let e = proof(&env, vec![late]).verify(&r).unwrap_err();
    assert!(
        matches!(
            e,
            VerifyError::UnknownSigner {
                what: "receipt",
                ..
            }
        ),
        "{e}"
    );
    // Once the old key's overlap ended before the receipt was made, it no longer verifies.
    let r_short = rotated_roster(&rotated, T);
    assert!(proof(&env, vec![delivered(&env)]).verify(&r_short).is_err());
    // The new key's statements need the new roster: the old one does not know the key.
    let e = proof(&env, vec![retrieved]).verify(&roster3()).unwrap_err();
    assert!(matches!(e, VerifyError::UnknownSigner { .. }), "{e}");
}

#[test]
fn envelopes_sealed_to_the_old_key_still_open_after_rotation() {
    let env = envelope(); // sealed to destination()'s current (soon old) key
    let rotated = destination().rotate([0x51; 32], [0x52; 32]);
    let files = env.open(&rotated).unwrap().files;
    assert_eq!(files.len(), 2);
    assert_eq!(files[0], FILE_A);
    // Without the retired sealing key it cannot be opened.
    let fresh = OperatorKeys::from_seeds([0x51; 32], [0x52; 32]);
    assert!(env.open(&fresh).is_err());
}

#[test]
fn a_revoked_operators_past_statements_verify_and_later_ones_do_not() {
    let env = envelope();
    let mut r = roster3();
    // The destination operator is revoked just after it delivered.
    let revoked_at = T + 10;
    let d = destination().id();
    for o in r.operators.iter_mut().filter(|o| o.id == d) {
        o.valid_until_ms = Some(revoked_at);
    }
    let before = proof(&env, vec![delivered(&env)]);
    assert!(
        before.verify(&r).is_ok(),
        "a statement from before the revocation"
    );
    let after = proof(
        &env,
        vec![receipt(
            &env,
            ReceiptKind::Retrieved,
            &destination(),
            revoked_at + 1,
        )],
    );
    let e = after.verify(&r).unwrap_err().to_string();
    assert!(e.contains(&d.to_string()), "{e}");
    assert!(r.signer_valid_at(&d, revoked_at - 1).is_some());
    assert!(r.signer_valid_at(&d, revoked_at).is_none());
}
