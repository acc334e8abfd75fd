//! Behaviour of envelopes, receipts, rosters, bindings, proofs and wire messages.

#![allow(clippy::unwrap_used)]

mod common;

use common::*;
use renkei_protocol::envelope::{Envelope, sha256};
use renkei_protocol::error::{DecodeError, SealError, VerifyError};
use renkei_protocol::limits::{BATCH_ENVELOPES_MAX, ENVELOPE_BYTES_MAX};
use renkei_protocol::proof::Proof;
use renkei_protocol::receipt::SignedReceipt;
use renkei_protocol::roster::{OldKey, Roster, SignedBinding, SignedRoster};
use renkei_protocol::wire::{HopAck, HopOutcome, RefusalCode, Request, Response};

#[test]
fn envelope_roundtrip_verify_open() {
    let env = envelope();
    let bytes = env.encode();
    let back = Envelope::decode(&bytes).unwrap();
    assert_eq!(back, env);
    assert_eq!(back.encode(), bytes);
    back.verify().unwrap();
    let opened = back.open(&destination()).unwrap();
    assert_eq!(opened.files, vec![FILE_A.to_vec(), FILE_B.to_vec()]);
    assert_eq!(opened.header, header(&sample_files()));
    // relays and the origin cannot read it
    assert_eq!(back.open(&origin()), Err(SealError::Open));
}

#[test]
fn forged_origin_signature_fails_verification() {
    use renkei_protocol::envelope::{ENVELOPE_SIG_LABEL, sha256};
    let env = envelope();
    // Another operator signs the exact message the origin signed and splices its signature
    // in: the header still names the real origin, so verification must fail.
    let mut msg = sha256(env.sealed()).to_vec();
    msg.extend_from_slice(env.header_bytes());
    let forged_sig = destination().identity.sign(ENVELOPE_SIG_LABEL, &msg);
    let mut bytes = env.encode();
    let n = bytes.len();
    bytes[n - 64..].copy_from_slice(&forged_sig);
    let forged = Envelope::decode(&bytes).unwrap();
    let e = forged.verify().unwrap_err();
    assert!(
        matches!(
            e,
            VerifyError::BadSignature {
                what: "envelope",
                ..
            }
        ),
        "{e}"
    );
    // the genuine signature over the same message verifies
    let genuine = origin().identity.sign(ENVELOPE_SIG_LABEL, &msg);
    assert_eq!(&genuine, env.signature());
}

#[test]
fn seal_refuses_mismatched_files_and_foreign_origin() {
    let files = sample_files();
    let h = header(&files);
    let e = Envelope::seal_and_sign(h.clone(), &[FILE_A], &origin(), [0; 32]).unwrap_err();
    assert!(
        e.to_string()
            .contains("header lists 2 files, payload has 1"),
        "{e}"
    );
    let e = Envelope::seal_and_sign(h, &[FILE_A, FILE_B], &destination(), [0; 32]).unwrap_err();
    assert!(e.to_string().contains("origin"), "{e}");
}

#[test]
fn sealing_is_deterministic_given_the_seed_and_checks_every_file() {
    let files = sample_files();
    let bytes: Vec<&[u8]> = files.iter().map(|f| f.1).collect();
    let a = Envelope::seal_and_sign(header(&files), &bytes, &origin(), [7; 32]).unwrap();
    let b = Envelope::seal_and_sign(header(&files), &bytes, &origin(), [7; 32]).unwrap();
    assert_eq!(a.encode(), b.encode());
    let back = Envelope::decode(&a.encode()).unwrap();
    back.verify().unwrap();
    assert_eq!(back.open(&destination()).unwrap().files[1], FILE_B);
    // A file whose bytes differ from its header entry (same length) is refused.
    let mut other = FILE_B.to_vec();
    other[0] ^= 1;
    let e =
        Envelope::seal_and_sign(header(&files), &[FILE_A, &other], &origin(), [7; 32]).unwrap_err();
    assert!(e.to_string().contains("does not match"), "{e}");
}

#[test]
fn the_header_bytes_are_found_in_an_envelope_without_decoding_it() {
    let env = envelope();
    let bytes = env.encode();
    let hb = Envelope::header_bytes_in(&bytes).unwrap();
    assert_eq!(sha256(hb), env.digest());
    assert_eq!(hb, header(&sample_files()).wire_bytes());
    let v1 = envelope_v1().encode();
    assert_eq!(
        Envelope::header_bytes_in(&v1).unwrap(),
        envelope_v1().header_bytes()
    );
    // Anything that does not start as an envelope does, or stops short, is None.
    assert!(Envelope::header_bytes_in(&[]).is_none());
    assert!(Envelope::header_bytes_in(&bytes[..3]).is_none());
    let mut other = bytes.clone();
    other[1] = 0x03;
    assert!(Envelope::header_bytes_in(&other).is_none());
    for cut in [4, 10, hb.len()] {
        assert!(
            Envelope::header_bytes_in(&bytes[..cut]).is_none(),
            "cut at {cut}"
        );
    }
}

#[test]
fn unknown_version_is_an_error() {
    let env = envelope();
    let mut bytes = env.encode();
    // outer array header 0x84, then version 0x02
    assert_eq!(&bytes[..2], &[0x84, 0x02]);
    bytes[1] = 0x03;
    assert_eq!(
        Envelope::decode(&bytes).unwrap_err(),
        DecodeError::UnknownVersion {
            what: "envelope",
            got: 3,
            want: 2
        }
    );
    // A version-2 envelope around a version-1 header (or the reverse) is refused.
    let v1 = envelope_v1();
    let spliced = Envelope::decode(&{
        let mut b = v1.encode();
        b[1] = 0x02;
        b
    })
    .unwrap_err();
    assert!(
        spliced.to_string().contains("envelope's version"),
        "{spliced}"
    );
}

#[test]
fn oversize_envelope_is_refused_by_name() {
    let big = vec![0u8; ENVELOPE_BYTES_MAX + 1];
    let e = Envelope::decode(&big).unwrap_err();
    assert!(e.to_string().contains("over the limit"), "{e}");
}

#[test]
fn receipt_roundtrip_and_roster_check() {
    let env = envelope();
    let r = delivered(&env);
    let back = SignedReceipt::decode(&r.encode()).unwrap();
    assert_eq!(back, r);
    back.verify().unwrap();
    let roster = roster();
    back.verify_with_roster(roster.roster()).unwrap();
    // a roster without the destination refuses it
    let mut rs = roster.roster().clone();
    rs.operators.retain(|o| o.name != "destination");
    let e = back.verify_with_roster(&rs).unwrap_err();
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
}

#[test]
fn old_key_receipts_verify_until_expiry() {
    let env = envelope();
    let r = delivered(&env); // signed with destination's key at 1_745_567_169_000
    let mut rs = roster().roster().clone();
    let new = OperatorKeysExt::rotated();
    let d = rs
        .operators
        .iter_mut()
        .find(|o| o.name == "destination")
        .unwrap();
    d.old_keys.push(OldKey {
        id: d.id,
        enc_key: d.enc_key,
        expires_ms: 1_800_000_000_000,
    });
    d.id = new.id();
    d.enc_key = new.seal.public();
    r.verify_with_roster(&rs).unwrap();
    rs.operators[1].old_keys[0].expires_ms = 1_745_567_168_999;
    assert!(r.verify_with_roster(&rs).is_err());
}

struct OperatorKeysExt;
impl OperatorKeysExt {
    fn rotated() -> renkei_protocol::keys::OperatorKeys {
        renkei_protocol::keys::OperatorKeys::from_seeds([0x31; 32], [0x32; 32])
    }
}

#[test]
fn roster_signed_by_authority_only() {
    let r = roster();
    let back = SignedRoster::decode(&r.encode()).unwrap();
    back.verify(&authority().id()).unwrap();
    let e = back.verify(&operator_id(9)).unwrap_err();
    assert!(matches!(e, VerifyError::WrongAuthority { .. }));
    // a roster naming the right authority but signed by someone else
    let forged: SignedRoster = Roster {
        ..r.roster().clone()
    }
    .sign(&origin().identity);
    assert!(forged.verify(&authority().id()).is_err());
    assert_eq!(back.roster().relays().count(), 1);
}

#[test]
fn binding_roundtrip_and_verify() {
    let b = binding();
    let back = SignedBinding::decode(&b.encode()).unwrap();
    assert_eq!(back, b);
    assert_eq!(
        back.verify(roster().roster()).unwrap(),
        renkei_protocol::roster::BindingSigner::Operator
    );
    // The same binding signed by the federation authority is its assignment.
    let assigned = b.binding().clone().sign(&authority());
    assert_eq!(
        assigned.verify(roster().roster()).unwrap(),
        renkei_protocol::roster::BindingSigner::Authority
    );
    assert!(assigned.signed_by(&authority().id()) && !assigned.signed_by(&origin().id()));
    // signed by an operator not in the roster
    let stranger = renkei_protocol::keys::SigningIdentity::from_seed([0x77; 32]);
    let mut inner = b.binding().clone();
    inner.operator = stranger.id();
    let e = inner.sign(&stranger).verify(roster().roster()).unwrap_err();
    assert!(matches!(
        e,
        VerifyError::UnknownSigner {
            what: "binding",
            ..
        }
    ));
}

#[test]
fn proof_verifies_and_catches_foreign_receipts() {
    let env = envelope();
    let made = proof(&env, vec![delivered(&env)]);
    let back = Proof::decode(&made.encode()).unwrap();
    let lines = back.verify(roster().roster()).unwrap();
    assert_eq!(lines.len(), 2);
    assert!(
        lines[1].starts_with("delivered by operator destination"),
        "{lines:?}"
    );
    // a receipt for another envelope in the bundle
    let other = envelope_with(&[(
        "UPPLAN_202505_4074478647_43_4071481594_11_20250425164608.CSV",
        FILE_B,
    )]);
    let bad = proof(&env, vec![delivered(&other)]);
    assert!(matches!(
        bad.verify(roster().roster()),
        Err(VerifyError::Mismatch(_))
    ));
}

#[test]
fn wire_roundtrip_and_bounds() {
    let env = envelope().encode();
    let reqs = [
        Request::Deliver(vec![env.clone(), env.clone()]),
        Request::Receipts(vec![delivered(&envelope()).encode()]),
        Request::DirectorySync {
            roster_serial: 3,
            cursor: 99,
        },
    ];
    for r in reqs {
        assert_eq!(Request::decode(&r.encode()).unwrap(), r);
    }
    let resps = [
        Response::HopAcks(vec![
            HopAck {
                id: envelope().id(),
                outcome: HopOutcome::Accepted(vec![1, 2]),
            },
            HopAck {
                id: envelope().id(),
                outcome: HopOutcome::RetryLater("no route".into()),
            },
        ]),
        Response::ReceiptsTaken(7),
        Response::Directory {
            roster: Some(vec![9]),
            bindings: vec![binding().encode()],
            next_cursor: 4,
            more: true,
        },
        Response::Refused {
            code: RefusalCode::NotInRoster,
            message: "who are you".into(),
        },
    ];
    for r in resps {
        assert_eq!(Response::decode(&r.encode()).unwrap(), r);
    }
    let too_many = Request::Deliver(vec![vec![0u8; 1]; BATCH_ENVELOPES_MAX + 1]).encode();
    let e = Request::decode(&too_many).unwrap_err();
    assert!(e.to_string().contains("over the limit of 64"), "{e}");
}

#[test]
fn a_version_2_cleartext_names_no_file_date_or_digest() {
    let files = sample_files();
    let env = envelope();
    assert_eq!(env.version(), 2);
    let clear = env.encode();
    let contains = |needle: &[u8]| clear.windows(needle.len()).any(|w| w == needle);
    for (name, bytes) in &files {
        assert!(!contains(name.as_bytes()), "file name {name} in the clear");
        assert!(!contains(&sha256(bytes)), "digest of {name} in the clear");
    }
    assert!(!contains(b"202505"), "the plan's month in the clear");
    // The same unit under version 1 shows all three: what version 2 removed.
    let v1 = envelope_v1().encode();
    assert!(v1.windows(6).any(|w| w == b"202505"));
    assert!(v1.windows(32).any(|w| w == sha256(FILE_A)));
    // Two envelopes of the same files and date differ in what they commit to: the
    // cleartext cannot link them.
    let mut other = header(&files);
    other.salt = Some(renkei_protocol::envelope::salt_from_seed(&[0x44; 32]));
    assert_ne!(
        other.wire_bytes()[..],
        header(&files).wire_bytes()[..],
        "the salt changes the cleartext's digest of the sealed part"
    );
}

#[test]
fn a_stored_header_must_be_the_one_its_cleartext_names() {
    let h = header(&sample_files());
    let stored = h.encode();
    assert_eq!(
        renkei_protocol::envelope::Header::decode(&stored).unwrap(),
        h
    );
    assert_eq!(h.digest(), envelope().digest());
    // Another inner header (another month) under the same cleartext is refused.
    let mut other = h.clone();
    other.subject = Some("202506".into());
    let (outer, _) = h.parts();
    let (_, inner) = other.parts();
    let spliced = ciborium_array(&[2u8], &outer, &inner.unwrap());
    let e = renkei_protocol::envelope::Header::decode(&spliced).unwrap_err();
    assert!(e.to_string().contains("inner"), "{e}");
}

/// `[version, bstr, bstr]` in canonical CBOR (short arrays only).
fn ciborium_array(version: &[u8], a: &[u8], b: &[u8]) -> Vec<u8> {
    let mut out = vec![0x83, version[0]];
    for s in [a, b] {
        let n = s.len();
        assert!(n < 65536);
        if n < 24 {
            out.push(0x40 | n as u8);
        } else if n < 256 {
            out.extend([0x58, n as u8]);
        } else {
            out.push(0x59);
            out.extend((n as u16).to_be_bytes());
        }
        out.extend_from_slice(s);
    }
    out
}

#[test]
fn the_stored_digest_is_the_decoded_headers_digest() {
    use renkei_protocol::envelope::Header;
    for h in [header(&sample_files()), header_v1(&sample_files())] {
        let stored = h.encode();
        assert_eq!(Header::stored_digest(&stored).unwrap(), h.digest());
        assert_eq!(
            Header::stored_digest(&stored).unwrap(),
            Header::decode(&stored).unwrap().digest()
        );
    }
    assert_eq!(
        Header::stored_digest(&header(&sample_files()).encode()).unwrap(),
        envelope().digest()
    );
    assert!(Header::stored_digest(&[0x83, 0x03, 0x40, 0x40]).is_err());
}
