//! Test vectors: fixed keys and inputs, and the exact bytes they must produce. The expected
//! bytes live in `docs/test-vectors/v2.json` (envelope version 2, what nodes write) and
//! `docs/test-vectors/v1.json` (envelope version 1, still read) so another implementation
//! can check itself; this test regenerates them and fails on any difference. After an
//! intended format change, rewrite the files with
//! `RENKEI_WRITE_VECTORS=1 cargo test -p renkei-protocol --test vectors`.

#![allow(clippy::unwrap_used)]

mod common;

use std::collections::BTreeMap;

use common::*;
use renkei_protocol::envelope::Envelope;
use renkei_protocol::proof::Proof;
use renkei_protocol::receipt::SignedReceipt;
use renkei_protocol::roster::{SignedBinding, SignedRoster};
use renkei_protocol::wire::{HopAck, HopOutcome, Request, Response};
use serde_json::{Value, json};

fn vectors(version: u64) -> Value {
    let files = sample_files();
    let (env, header) = if version == 1 {
        (envelope_v1(), header_v1(&files))
    } else {
        (envelope(), header(&files))
    };
    let receipt = delivered(&env);
    let files: Vec<Value> = sample_files()
        .iter()
        .map(|(n, b)| json!({"name": n, "bytes_hex": hex::encode(b)}))
        .collect();
    let mut keys = BTreeMap::new();
    keys.insert("authority_seed_hex", hex::encode([0xA0u8; 32]));
    keys.insert("authority_public_hex", authority().id().to_hex());
    keys.insert("origin_sign_seed_hex", hex::encode([0x11u8; 32]));
    keys.insert("origin_seal_seed_hex", hex::encode([0x12u8; 32]));
    keys.insert("origin_id_hex", origin().id().to_hex());
    keys.insert("origin_id_base32", origin().id().to_string());
    keys.insert(
        "origin_seal_public_hex",
        hex::encode(origin().seal.public()),
    );
    keys.insert("destination_sign_seed_hex", hex::encode([0x21u8; 32]));
    keys.insert("destination_seal_seed_hex", hex::encode([0x22u8; 32]));
    keys.insert("destination_id_hex", destination().id().to_hex());
    keys.insert(
        "destination_seal_public_hex",
        hex::encode(destination().seal.public()),
    );
    let mut v = json!({
        "about": "Renkei protocol v1 test vectors. Keys: ed25519 from the 32-byte seed (RFC 8032); \
                  X25519 seal keys by HPKE DeriveKeyPair(seed) (RFC 9180 7.1.3). The envelope's \
                  ephemeral HPKE key comes from ChaCha20Rng seeded with ephemeral_seed_hex. See docs/PROTOCOL.md.",
        "keys": keys,
        "envelope": {
            "files": files,
            "ephemeral_seed_hex": hex::encode([0x33u8; 32]),
            "header_hex": hex::encode(env.header_bytes()),
            "digest_hex": hex::encode(env.digest()),
            "sealed_hex": hex::encode(env.sealed()),
            "signature_hex": hex::encode(env.signature()),
            "envelope_hex": hex::encode(env.encode()),
        },
        "receipt_delivered": {
            "signed_receipt_hex": hex::encode(receipt.encode()),
        },
        "roster": { "signed_roster_hex": hex::encode(roster().encode()) },
        "binding": { "signed_binding_hex": hex::encode(binding().encode()) },
        "proof": { "proof_hex": hex::encode(Proof::new(&env, &header, vec![receipt.clone()]).unwrap().encode()) },
        "wire": {
            "deliver_request_hex": hex::encode(Request::Deliver(vec![env.encode()]).encode()),
            "hop_ack_response_hex": hex::encode(Response::HopAcks(vec![HopAck { id: env.id(), outcome: HopOutcome::Accepted(receipt.encode()) }]).encode()),
            "directory_sync_request_hex": hex::encode(Request::DirectorySync { roster_serial: 1, cursor: 0 }.encode()),
        },
    });
    if version == 2 {
        v["about_version"] = json!(
            "Envelope version 2: the cleartext header ends with the SHA-256 of the inner header \
             [salt, subject, files], which is sealed with the files (payload = [inner, [* file]]); \
             the salt is SHA-256(\"renkei/envelope/v2/salt\" 0x00 || ephemeral_seed)[..16]. \
             stored_header_hex is the whole header as nodes store it and proofs carry it. \
             v1.json holds the version-1 envelope of the same unit, which nodes still read."
        );
        v["envelope"]["stored_header_hex"] = json!(hex::encode(header.encode()));
    }
    v
}

fn path(version: u64) -> String {
    format!(
        "{}/../docs/test-vectors/v{version}.json",
        env!("CARGO_MANIFEST_DIR")
    )
}

#[test]
fn vectors_reproduce_byte_for_byte() {
    for version in [1, 2] {
        let path = path(version);
        let got = serde_json::to_string_pretty(&vectors(version)).unwrap() + "\n";
        if std::env::var_os("RENKEI_WRITE_VECTORS").is_some() {
            std::fs::write(&path, &got).unwrap();
        }
        let want = std::fs::read_to_string(&path).expect("a test-vector file is missing");
        assert_eq!(got, want, "protocol bytes changed: see {path}");
    }
}

#[test]
fn vectors_decode_verify_and_open_from_the_file() {
    for version in [1, 2] {
        decode_verify_and_open(version);
    }
}

fn decode_verify_and_open(version: u64) {
    let v: Value = serde_json::from_str(&std::fs::read_to_string(path(version)).unwrap()).unwrap();
    let h = |p: &str| hex::decode(v.pointer(p).unwrap().as_str().unwrap()).unwrap();
    let env = Envelope::decode(&h("/envelope/envelope_hex")).unwrap();
    assert_eq!(env.version(), version);
    env.verify().unwrap();
    let opened = env.open(&destination()).unwrap();
    let files = opened.files;
    assert_eq!(files[0], h("/envelope/files/0/bytes_hex"));
    assert_eq!(opened.header.subject.as_deref(), Some("202505"));
    if version == 2 {
        assert_eq!(opened.header.encode(), h("/envelope/stored_header_hex"));
    }
    let r = SignedReceipt::decode(&h("/receipt_delivered/signed_receipt_hex")).unwrap();
    let roster = SignedRoster::decode(&h("/roster/signed_roster_hex")).unwrap();
    roster.verify(&authority().id()).unwrap();
    r.verify_with_roster(roster.roster()).unwrap();
    SignedBinding::decode(&h("/binding/signed_binding_hex"))
        .unwrap()
        .verify(roster.roster())
        .unwrap();
    let p = Proof::decode(&h("/proof/proof_hex")).unwrap();
    assert_eq!(p.verify(roster.roster()).unwrap().len(), 2);
}
