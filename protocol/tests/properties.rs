//! Property tests: canonical round trips, tamper evidence, sealing, and decoders that never
//! panic on hostile bytes.

#![allow(clippy::unwrap_used)]

mod common;

use common::*;
use proptest::prelude::*;
use renkei_protocol::envelope::{Envelope, FileEntry, Header, Outer, Party};
use renkei_protocol::ids::{DocKind, EnvelopeId, OperatorId};
use renkei_protocol::keys::SealKeyPair;
use renkei_protocol::proof::Proof;
use renkei_protocol::receipt::{Receipt, ReceiptKind, RejectCode, SignedReceipt};
use renkei_protocol::roster::{SignedBinding, SignedRoster};
use renkei_protocol::seal;
use renkei_protocol::wire::{Request, Response};

fn office() -> impl Strategy<Value = String> {
    "[0-9]{10}"
}
fn kind() -> impl Strategy<Value = String> {
    "[0-9A-Z]{2}"
}

prop_compose! {
    fn arb_header()(
        id in any::<[u8; 16]>(),
        fo in office(), fk in kind(), to in office(), tk in kind(),
        origin in any::<[u8; 32]>(), dest in any::<[u8; 32]>(), sealed_to in any::<[u8; 32]>(),
        dk in 1u64..=7,
        subject in proptest::option::of(prop_oneof!["[0-9]{6}", "[0-9]{8}"]),
        supersedes in proptest::option::of(any::<[u8; 16]>()),
        created in any::<u64>(),
        files in proptest::collection::vec(("[A-Z0-9_]{1,60}\\.CSV", any::<u64>(), any::<[u8; 32]>()), 1..6),
        salt in proptest::option::of(any::<[u8; 16]>()),
    ) -> Header {
        Header { outer: Outer {
            id: EnvelopeId(id),
            from: Party { office: fo.parse().unwrap(), kind: fk.parse().unwrap() },
            to: Party { office: to.parse().unwrap(), kind: tk.parse().unwrap() },
            origin: OperatorId(origin),
            destination: OperatorId(dest),
            sealed_to,
            doc_kind: DocKind::from_code(dk).unwrap(),
            stamp: "20250425164608".parse().unwrap(),
            supersedes: supersedes.map(EnvelopeId),
            created_at_ms: created,
            },
            subject,
            files: files.into_iter().map(|(name, len, sha256)| FileEntry { name, len, sha256 }).collect(),
            salt,
        }
    }
}

fn arb_kind() -> impl Strategy<Value = ReceiptKind> {
    prop_oneof![
        any::<u8>().prop_map(|hop| ReceiptKind::Accepted { hop }),
        Just(ReceiptKind::Delivered),
        Just(ReceiptKind::Retrieved),
        (0usize..RejectCode::ALL.len(), ".{0,40}").prop_map(|(i, text)| ReceiptKind::Rejected {
            code: RejectCode::ALL[i],
            text
        }),
        Just(ReceiptKind::Expired),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 128, ..ProptestConfig::default() })]

    #[test]
    fn header_encode_decode_encode_is_identity(h in arb_header()) {
        let bytes = h.encode();
        let back = Header::decode(&bytes).unwrap();
        prop_assert_eq!(&back, &h);
        prop_assert_eq!(back.encode(), bytes);
    }

    #[test]
    fn receipt_encode_decode_encode_is_identity(
        id in any::<[u8; 16]>(), digest in any::<[u8; 32]>(), kind in arb_kind(), at in any::<u64>()
    ) {
        let r = Receipt { envelope: EnvelopeId(id), digest, kind, node: destination().id(), at_ms: at };
        let bytes = r.encode();
        prop_assert_eq!(Receipt::decode(&bytes).unwrap(), r.clone());
        let signed = r.sign(&destination().identity);
        let sb = signed.encode();
        let back = SignedReceipt::decode(&sb).unwrap();
        prop_assert_eq!(back.encode(), sb);
        prop_assert!(back.verify().is_ok());
    }

    #[test]
    fn flipping_any_envelope_byte_breaks_verification(pos in any::<prop::sample::Index>(), bit in 0u8..8) {
        let env = envelope();
        let mut bytes = env.encode();
        let i = pos.index(bytes.len());
        bytes[i] ^= 1 << bit;
        let verdict = Envelope::decode(&bytes).map_err(|e| e.to_string()).and_then(|e| e.verify().map_err(|e| e.to_string()));
        prop_assert!(verdict.is_err(), "flip at byte {} bit {} still verified", i, bit);
    }

    #[test]
    fn flipping_any_receipt_byte_breaks_verification(pos in any::<prop::sample::Index>(), bit in 0u8..8) {
        let r = delivered(&envelope());
        let mut bytes = r.encode();
        let i = pos.index(bytes.len());
        bytes[i] ^= 1 << bit;
        let verdict = SignedReceipt::decode(&bytes).map_err(|e| e.to_string()).and_then(|r| r.verify().map_err(|e| e.to_string()));
        prop_assert!(verdict.is_err(), "flip at byte {} bit {} still verified", i, bit);
    }

    #[test]
    fn opening_with_wrong_key_or_changed_header_fails(
        plain in proptest::collection::vec(any::<u8>(), 0..512),
        aad in proptest::collection::vec(any::<u8>(), 1..64),
        seed in any::<[u8; 32]>(),
        wrong in any::<[u8; 32]>(),
        flip in any::<prop::sample::Index>(),
    ) {
        let k = SealKeyPair::from_seed([0x22; 32]);
        let sealed = seal::seal(&k.public(), &aad, &plain, seed).unwrap();
        prop_assert_eq!(seal::open(&k, &aad, &sealed).unwrap(), plain);
        prop_assume!(wrong != [0x22; 32]);
        prop_assert!(seal::open(&SealKeyPair::from_seed(wrong), &aad, &sealed).is_err());
        let mut aad2 = aad.clone();
        let i = flip.index(aad2.len());
        aad2[i] ^= 0x01;
        prop_assert!(seal::open(&k, &aad2, &sealed).is_err());
    }

    #[test]
    fn random_bytes_never_panic_decoders(bytes in proptest::collection::vec(any::<u8>(), 0..600)) {
        let _ = Envelope::decode(&bytes);
        let _ = Header::decode(&bytes);
        let _ = SignedReceipt::decode(&bytes);
        let _ = Receipt::decode(&bytes);
        let _ = SignedRoster::decode(&bytes);
        let _ = SignedBinding::decode(&bytes);
        let _ = Proof::decode(&bytes);
        let _ = Request::decode(&bytes);
        let _ = Response::decode(&bytes);
    }

    #[test]
    fn mutated_valid_encodings_never_panic_decoders(pos in any::<prop::sample::Index>(), byte in any::<u8>(), cut in any::<prop::sample::Index>()) {
        let env = envelope();
        let samples = [
            env.encode(),
            delivered(&env).encode(),
            roster().encode(),
            binding().encode(),
            Proof::new(&env, &header(&sample_files()), vec![delivered(&env)]).unwrap().encode(),
            envelope_v1().encode(),
            header(&sample_files()).encode(),
            Request::Deliver(vec![env.encode()]).encode(),
        ];
        for s in samples {
            let mut m = s.clone();
            let i = pos.index(m.len());
            m[i] = byte;
            let j = cut.index(m.len());
            for b in [&m[..], &m[..j]] {
                if let Ok(e) = Envelope::decode(b) { let _ = e.verify(); let _ = e.open(&destination()); }
                if let Ok(r) = SignedReceipt::decode(b) { let _ = r.verify(); }
                if let Ok(r) = SignedRoster::decode(b) { let _ = r.verify(&authority().id()); }
                if let Ok(x) = SignedBinding::decode(b) { let _ = x.verify(roster().roster()); }
                if let Ok(p) = Proof::decode(b) { let _ = p.verify(roster().roster()); }
                let _ = Request::decode(b);
                let _ = Response::decode(b);
            }
        }
    }
}
