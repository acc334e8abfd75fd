//! Fuzz target: `Proof::decode` → `verify` against the fixed test-vector roster — what
//! `renkei verify` does with a bundle an auditor is handed.
//!
//! Invariants checked: a bundle decodes only from canonical bytes; a bundle that verifies
//! has a roster operator as origin at its creation time, one line per statement, and only
//! receipts naming its own envelope.

#![no_main]

#[path = "vectors.rs"]
mod vectors;

use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;
use renkei_protocol::ids::OperatorId;
use renkei_protocol::proof::Proof;
use renkei_protocol::roster::{Roster, SignedRoster};

fn roster() -> &'static Roster {
    static R: OnceLock<Roster> = OnceLock::new();
    R.get_or_init(|| {
        let signed = SignedRoster::decode(&vectors::unhex(vectors::SIGNED_ROSTER_HEX)).unwrap();
        let authority: OperatorId = vectors::AUTHORITY_PUBLIC_HEX.parse().unwrap();
        signed.verify(&authority).unwrap();
        signed.roster().clone()
    })
}

fuzz_target!(|data: &[u8]| {
    let Ok(proof) = Proof::decode(data) else {
        return;
    };
    assert_eq!(proof.encode(), data, "proof decoded from non-canonical bytes");
    if let Ok(lines) = proof.verify(roster()) {
        assert_eq!(lines.len(), 1 + proof.receipts.len());
        let h = proof.header();
        assert!(roster().signer_valid_at(&h.origin, h.created_at_ms).is_some());
        for r in &proof.receipts {
            assert_eq!(r.receipt().envelope, h.id);
        }
    }
});
