//! The record codec against ciborium: the same bytes written, the same values read.

use std::collections::BTreeMap;

use renkei_protocol::ids::{EnvelopeId, OfficeNumber, OperatorId, ServiceKind};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use super::reader::read;
use super::writer::write;
use super::{
    AuditRec, DedupRec, InboxRec, OfficeRec, OutboxRec, ReceiptOutRec, RelayedRec, SentRec,
    SentStatus, SlotRec, encode,
};

fn ciborium<T: Serialize>(v: &T) -> Vec<u8> {
    let mut out = Vec::new();
    ciborium::into_writer(v, &mut out).expect("ciborium writes into memory");
    out
}

/// The direct writer's bytes, which must be ciborium's.
fn same<T: Serialize + std::fmt::Debug>(v: &T) {
    let mut out = Vec::new();
    write(v, &mut out).unwrap_or_else(|e| panic!("{v:?}: {e}"));
    assert_eq!(out, ciborium(v), "{v:?}");
    let mut rec = vec![super::RECORD_VERSION];
    rec.extend_from_slice(&out);
    assert_eq!(encode(v), rec, "{v:?}");
}

/// Written as ciborium writes it, and read back by the reader as ciborium reads it; and
/// every damaged copy (cut short, a byte changed) is either refused or read as ciborium
/// reads it.
fn round<T: Serialize + DeserializeOwned + PartialEq + std::fmt::Debug>(v: &T, damage: bool) {
    same(v);
    let bytes = ciborium(v);
    assert_eq!(read::<T>(&bytes).ok().as_ref(), Some(v));
    let mut with_trailing = bytes.clone();
    with_trailing.push(0);
    let e = read::<T>(&with_trailing).expect_err("bytes left over are refused");
    assert!(e.to_string().contains("left after the record"), "{e}");
    if !damage {
        return;
    }
    let agree = |b: &[u8]| {
        let direct = read::<T>(b);
        let slow = ciborium::from_reader::<T, _>(b);
        match (direct, slow) {
            (Err(_), _) => {}
            (Ok(d), Ok(s)) => assert_eq!(d, s, "{b:02x?}"),
            (Ok(d), Err(e)) => panic!("read {d:?} where ciborium says {e}: {b:02x?}"),
        }
    };
    for cut in 0..bytes.len() {
        agree(&bytes[..cut]);
    }
    for at in 0..bytes.len() {
        for new in [
            0x00, 0x17, 0x18, 0x1b, 0x40, 0x5f, 0x7f, 0x9f, 0xa1, 0xf6, 0xf7, 0xff,
        ] {
            let mut b = bytes.clone();
            b[at] = new;
            agree(&b);
            b[at] = bytes[at] ^ 0x01;
            agree(&b);
        }
    }
}

/// Integers at every boundary of CBOR's argument sizes, both signs.
const EDGES: [u64; 12] = [
    0,
    1,
    23,
    24,
    255,
    256,
    65_535,
    65_536,
    4_294_967_295,
    4_294_967_296,
    u64::MAX - 1,
    u64::MAX,
];

fn text(n: usize) -> String {
    "介護".repeat(n / 6) + &"x".repeat(n % 6)
}

#[test]
fn integers_strings_and_bytes_of_every_header_size_are_ciboriums_bytes() {
    for n in EDGES {
        same(&n);
        same(&(n as u32));
        same(&(n as u16));
        same(&(n as u8));
        same(&(n as i64));
        same(&(-(n as i64)));
        same(&(n as i8));
        same(&(n as i32));
        same(&i64::MIN);
    }
    for len in [0, 1, 23, 24, 255, 256, 300, 65_536] {
        same(&text(len));
        same(&serde_bytes::ByteBuf::from(vec![7u8; len]));
        same(&vec![200u8; len.min(300)]);
    }
    same(&'k');
    same(&'護');
    same(&true);
    same(&false);
    same(&());
    same(&Some(5u8));
    same(&None::<u8>);
    same(&[9u8; 32]);
    same(&(String::from("a"), 1u64, [0u8; 3]));
}

#[derive(Debug, Serialize, Deserialize, PartialEq)]
struct Unit;
#[derive(Debug, Serialize, Deserialize, PartialEq)]
struct Newtype(u32);
#[derive(Debug, Serialize, Deserialize, PartialEq)]
struct Tuple(u8, String);
#[derive(Debug, Serialize, Deserialize, PartialEq)]
enum Every {
    Unit,
    Newtype(u64),
    Tuple(u8, i16),
    Struct {
        a: u8,
        #[serde(skip_serializing_if = "Option::is_none")]
        b: Option<String>,
    },
}
/// A sequence and a map of unknown length (ciborium writes them indefinite).
#[derive(Debug)]
struct Unsized;
impl Serialize for Unsized {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeSeq;
        let mut seq = s.serialize_seq(None)?;
        seq.serialize_element(&1u8)?;
        seq.serialize_element(&Every::Unit)?;
        seq.serialize_element(&UnsizedMap)?;
        seq.end()
    }
}
#[derive(Debug)]
struct UnsizedMap;
impl Serialize for UnsizedMap {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap;
        let mut m = s.serialize_map(None)?;
        m.serialize_entry("k", &-3i8)?;
        m.end()
    }
}

#[test]
fn every_serde_shape_records_may_use_is_ciboriums_bytes() {
    round(&Unit, true);
    round(&Newtype(70_000), true);
    round(&Tuple(24, "t".into()), true);
    round(&Every::Unit, true);
    round(&Every::Newtype(u64::MAX), true);
    round(&Every::Tuple(255, -300), true);
    round(&Every::Struct { a: 1, b: None }, true);
    same(&Every::Struct {
        a: 2,
        b: Some(text(40)),
    });
    round(&vec![Every::Unit, Every::Newtype(3)], true);
    same(&BTreeMap::from([
        ("x".to_string(), 1u8),
        ("y".to_string(), 2),
    ]));
    same(&Unsized);
}

#[test]
fn a_float_is_refused_by_the_writer_by_name() {
    #[derive(Debug, Serialize)]
    struct WithFloat {
        n: u8,
        f: f64,
    }
    let v = WithFloat { n: 1, f: 0.5 };
    let mut out = Vec::new();
    let err = write(&v, &mut out).expect_err("floats are not written directly");
    assert!(err.to_string().contains("float"), "{err}");
}

#[test]
fn every_stored_record_is_ciboriums_bytes() {
    let id = EnvelopeId([0xA5; 16]);
    let op = OperatorId([0x11; 32]);
    let office: OfficeNumber = "4074478647".parse().expect("office number");
    let kind: ServiceKind = "43".parse().expect("service kind");
    for (i, n) in EDGES.into_iter().enumerate() {
        let hop = n as u8;
        round(
            &OutboxRec {
                origin: op,
                destination: OperatorId([i as u8; 32]),
                digest: [n as u8; 32],
                expires_at_ms: n,
                hop,
                prev: (i % 2 == 0).then_some(op),
                returned: i % 3 == 0,
            },
            i < 3,
        );
        round(
            &RelayedRec {
                origin: op,
                destination: op,
                digest: [0xFF; 32],
            },
            i < 3,
        );
        for status in [
            SentStatus::Accepted,
            SentStatus::Relayed,
            SentStatus::Delivered,
            SentStatus::Retrieved,
            SentStatus::Rejected,
            SentStatus::Expired,
        ] {
            round(
                &SentRec {
                    id,
                    header: vec![i as u8; i * 40],
                    from: office.clone(),
                    to: office.clone(),
                    destination: op,
                    status,
                    created_at_ms: n,
                    expires_at_ms: n / 3,
                },
                i < 3,
            );
        }
        round(
            &DedupRec {
                digest: [i as u8; 32],
                rejected: i % 2 == 0,
                receipt: vec![0x5A; i * 30],
            },
            i < 3,
        );
        round(
            &InboxRec {
                id,
                header: vec![1; 200],
                office: office.clone(),
                received_at_ms: n,
                supersedes: (i % 2 == 0).then_some(id),
                superseded_by: (i % 3 == 0).then_some(EnvelopeId([i as u8; 16])),
                retrieved_at_ms: (i % 2 == 1).then_some(n),
                slots: vec![vec![i as u8; i * 3]; i],
                live_slots: n as u32,
                users: (n >> 7) as u32,
                fetched: vec![0b101; i % 3],
                insured: (0..i % 3).map(|k| format!("{:010}", k * 7 + i)).collect(),
                names: (0..i % 3)
                    .map(|k| [format!("{:010}", k * 7 + i), text(k), "ﾔﾏﾀﾞ".into()])
                    .collect(),
            },
            i < 3,
        );
        round(
            &SlotRec {
                order: (text(i * 3), text(14), n, id),
                office: office.clone(),
            },
            i < 3,
        );
        round(
            &OfficeRec {
                office: office.clone(),
                kinds: vec![kind.clone(); i],
                name: text(i * 5),
                token_hash: [i as u8; 32],
                since_ms: n,
                notify: (i % 2 == 0).then(|| format!("office{i}@example.jp")),
                totp_required: i % 3 == 1,
            },
            i < 3,
        );
        round(
            &ReceiptOutRec {
                to: op,
                receipt: vec![i as u8; 180],
            },
            i < 3,
        );
        round(
            &AuditRec {
                seq: n,
                at_ms: n.rotate_left(7),
                event: "delivered".into(),
                envelope: (i % 2 == 0).then_some(id),
                office: (i % 3 != 0).then(|| office.clone()),
                detail: text(i * 11),
                prev: [0; 32],
                hash: [i as u8; 32],
            },
            i < 3,
        );
    }
}

/// The version 1 form of the records whose byte fields version 2 writes as byte strings:
/// serde's defaults, as written before.
mod v1 {
    use renkei_protocol::ids::{EnvelopeId, OfficeNumber, OperatorId};
    use serde::Serialize;

    #[derive(Serialize)]
    pub struct DedupRec {
        pub digest: [u8; 32],
        pub rejected: bool,
        #[serde(with = "serde_bytes")]
        pub receipt: Vec<u8>,
    }

    #[derive(Serialize)]
    pub struct InboxRec {
        pub id: EnvelopeId,
        #[serde(with = "serde_bytes")]
        pub header: Vec<u8>,
        pub office: OfficeNumber,
        pub received_at_ms: u64,
        pub supersedes: Option<EnvelopeId>,
        pub superseded_by: Option<EnvelopeId>,
        pub retrieved_at_ms: Option<u64>,
        pub slots: Vec<Vec<u8>>,
        pub live_slots: u32,
        pub users: u32,
    }

    #[derive(Serialize)]
    pub struct RelayedRec {
        pub origin: OperatorId,
        pub destination: OperatorId,
        pub digest: [u8; 32],
    }
}

#[test]
fn version_1_records_read_as_they_were_written_and_version_2_is_smaller() {
    let id = EnvelopeId([7; 16]);
    let office: OfficeNumber = "4074478647".parse().expect("office number");
    let digest: [u8; 32] = std::array::from_fn(|i| (i * 9) as u8);
    let slots = vec![b"slot/one".to_vec(), vec![0, 200, 255]];
    let old = v1::InboxRec {
        id,
        header: vec![1, 2, 3],
        office: office.clone(),
        received_at_ms: 5,
        supersedes: None,
        superseded_by: Some(id),
        retrieved_at_ms: None,
        slots: slots.clone(),
        live_slots: 2,
        users: 3,
    };
    let new = InboxRec {
        id,
        header: vec![1, 2, 3],
        office,
        received_at_ms: 5,
        supersedes: None,
        superseded_by: Some(id),
        retrieved_at_ms: None,
        slots,
        live_slots: 2,
        users: 3,
        fetched: Vec::new(),
        insured: Vec::new(),
        names: Vec::new(),
    };
    let dedup_old = v1::DedupRec {
        digest,
        rejected: true,
        receipt: vec![9; 40],
    };
    let dedup_new = DedupRec {
        digest,
        rejected: true,
        receipt: vec![9; 40],
    };
    let op = OperatorId([3; 32]);
    let relayed_old = v1::RelayedRec {
        origin: op,
        destination: op,
        digest,
    };
    let relayed_new = RelayedRec {
        origin: op,
        destination: op,
        digest,
    };
    fn check<T: Serialize + DeserializeOwned + PartialEq + std::fmt::Debug>(old: Vec<u8>, new: &T) {
        // Both readers, through `decode`, as version 1 bytes.
        let mut rec = vec![1u8];
        rec.extend_from_slice(&old);
        assert_eq!(
            &super::decode::<T>(crate::store::Tree::Inbox, &rec).unwrap(),
            new
        );
        assert_eq!(&read::<T>(&old).expect("the direct reader"), new);
        assert_eq!(&ciborium::from_reader::<T, _>(&old[..]).unwrap(), new);
        // Written now as version 2: fewer bytes, read back the same.
        let now = encode(new);
        assert_eq!(now[0], 2);
        assert!(now.len() < rec.len(), "{} !< {}", now.len(), rec.len());
        assert_eq!(
            &super::decode::<T>(crate::store::Tree::Inbox, &now).unwrap(),
            new
        );
    }
    check(ciborium(&old), &new);
    check(ciborium(&dedup_old), &dedup_new);
    check(ciborium(&relayed_old), &relayed_new);
    // A version the reader does not know is refused by number.
    let mut unknown = encode(&dedup_new);
    unknown[0] = 3;
    let e = super::decode::<DedupRec>(crate::store::Tree::Dedup, &unknown).unwrap_err();
    assert!(e.to_string().contains("unknown record version 3"), "{e}");
}
