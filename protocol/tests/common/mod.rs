//! Shared builders for the protocol tests: fixed keys and a sample send unit.
#![allow(dead_code, missing_docs, clippy::unwrap_used)]

use renkei_protocol::envelope::{Envelope, Header, Outer, Party, salt_from_seed};
use renkei_protocol::ids::{DocKind, EnvelopeId, OperatorId};
use renkei_protocol::keys::{OperatorKeys, SigningIdentity};
use renkei_protocol::receipt::{Receipt, ReceiptKind, SignedReceipt};
use renkei_protocol::roster::{OfficeBinding, OperatorEntry, Roster, SignedBinding, SignedRoster};

pub fn authority() -> SigningIdentity {
    SigningIdentity::from_seed([0xA0; 32])
}
pub fn origin() -> OperatorKeys {
    OperatorKeys::from_seeds([0x11; 32], [0x12; 32])
}
pub fn destination() -> OperatorKeys {
    OperatorKeys::from_seeds([0x21; 32], [0x22; 32])
}

pub const FILE_A: &[u8] = b"202407,131003,0000012345,20250401\r\n";
pub const FILE_B: &[u8] = b"202407,131003,0000012345,\"\x83\x65\x83\x58\x83\x67\"\r\n";

/// The sample envelope's ephemeral seed.
pub const EPHEMERAL_SEED: [u8; 32] = [0x33; 32];

/// A version-2 header (what nodes write).
pub fn header(files: &[(&str, &[u8])]) -> Header {
    Header {
        salt: Some(salt_from_seed(&EPHEMERAL_SEED)),
        ..header_v1(files)
    }
}

/// A version-1 header (everything in the cleartext), still read.
pub fn header_v1(files: &[(&str, &[u8])]) -> Header {
    Header {
        outer: outer(),
        subject: Some("202505".into()),
        files: Envelope::file_entries(files),
        salt: None,
    }
}

pub fn outer() -> Outer {
    Outer {
        id: EnvelopeId([0x5A; 16]),
        from: Party {
            office: "4074478647".parse().unwrap(),
            kind: "43".parse().unwrap(),
        },
        to: Party {
            office: "4071481594".parse().unwrap(),
            kind: "11".parse().unwrap(),
        },
        origin: origin().id(),
        destination: destination().id(),
        sealed_to: destination().seal.public(),
        doc_kind: DocKind::D2,
        stamp: "20250425164608".parse().unwrap(),
        supersedes: None,
        created_at_ms: 1_745_567_168_000,
    }
}

pub fn sample_files() -> Vec<(&'static str, &'static [u8])> {
    vec![
        (
            "UPPLAN_202505_4074478647_43_4071481594_11_20250425164608.CSV",
            FILE_A,
        ),
        (
            "UPSIKYU_202505_4074478647_43_4071481594_11_20250425164608.CSV",
            FILE_B,
        ),
    ]
}

pub fn envelope_with(files: &[(&str, &[u8])]) -> Envelope {
    let bytes: Vec<&[u8]> = files.iter().map(|f| f.1).collect();
    Envelope::seal_and_sign(header(files), &bytes, &origin(), EPHEMERAL_SEED).unwrap()
}

pub fn envelope_v1() -> Envelope {
    let files = sample_files();
    let bytes: Vec<&[u8]> = files.iter().map(|f| f.1).collect();
    Envelope::seal_and_sign(header_v1(&files), &bytes, &origin(), EPHEMERAL_SEED).unwrap()
}

pub fn envelope() -> Envelope {
    envelope_with(&sample_files())
}

pub fn delivered(env: &Envelope) -> SignedReceipt {
    Receipt {
        envelope: env.id(),
        digest: env.digest(),
        kind: ReceiptKind::Delivered,
        node: destination().id(),
        at_ms: 1_745_567_169_000,
    }
    .sign(&destination().identity)
}

pub fn entry(name: &str, k: &OperatorKeys, relay: bool) -> OperatorEntry {
    OperatorEntry {
        name: name.into(),
        id: k.id(),
        enc_key: k.seal.public(),
        relay,
        addrs: vec!["/ip4/127.0.0.1/tcp/7001".into()],
        valid_from_ms: 1_700_000_000_000,
        valid_until_ms: None,
        old_keys: vec![],
    }
}

pub fn roster() -> SignedRoster {
    Roster {
        serial: 1,
        issued_at_ms: 1_740_000_000_000,
        authority: authority().id(),
        operators: vec![
            entry("origin", &origin(), false),
            entry("destination", &destination(), true),
        ],
    }
    .sign(&authority())
}

pub fn binding() -> SignedBinding {
    OfficeBinding {
        office: "4071481594".parse().unwrap(),
        kinds: vec!["11".parse().unwrap()],
        operator: destination().id(),
        since_ms: 1_740_000_000_000,
        released: false,
        name: String::new(),
    }
    .sign(&destination().identity)
}

pub fn operator_id(seed: u8) -> OperatorId {
    SigningIdentity::from_seed([seed; 32]).id()
}

/// A proof of `env` (whose whole header the destination reads by opening it).
pub fn proof(env: &Envelope, receipts: Vec<SignedReceipt>) -> renkei_protocol::proof::Proof {
    let header = env.open(&destination()).unwrap().header;
    renkei_protocol::proof::Proof::new(env, &header, receipts).unwrap()
}
