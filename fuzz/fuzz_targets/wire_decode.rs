//! Fuzz target: node-to-node wire messages (`Request::decode`, `Response::decode`).
//!
//! Whatever decodes must re-encode to exactly the input bytes (the decoders accept only
//! canonical CBOR), and the inner signed objects a node would then decode (envelopes,
//! receipts, bindings, rosters) are decoded too.

#![no_main]

use libfuzzer_sys::fuzz_target;
use renkei_protocol::envelope::Envelope;
use renkei_protocol::receipt::SignedReceipt;
use renkei_protocol::roster::{SignedBinding, SignedRoster};
use renkei_protocol::wire::{HopOutcome, Request, Response};

fuzz_target!(|data: &[u8]| {
    if let Ok(req) = Request::decode(data) {
        assert_eq!(req.encode(), data, "request decoded from non-canonical bytes");
        match &req {
            Request::Deliver(envs) => {
                for e in envs {
                    if let Ok(env) = Envelope::decode(e) {
                        assert_eq!(&env.encode(), e);
                    }
                }
            }
            Request::Receipts(rs) => {
                for r in rs {
                    if let Ok(sr) = SignedReceipt::decode(r) {
                        assert_eq!(&sr.encode(), r);
                    }
                }
            }
            Request::DirectorySync { .. } => {}
        }
    }
    if let Ok(resp) = Response::decode(data) {
        assert_eq!(resp.encode(), data, "response decoded from non-canonical bytes");
        match &resp {
            Response::HopAcks(acks) => {
                for a in acks {
                    if let HopOutcome::Accepted(r) | HopOutcome::Rejected(r) = &a.outcome {
                        let _ = SignedReceipt::decode(r);
                    }
                }
            }
            Response::Directory {
                roster, bindings, ..
            } => {
                if let Some(r) = roster {
                    let _ = SignedRoster::decode(r);
                }
                for b in bindings {
                    let _ = SignedBinding::decode(b);
                }
            }
            Response::ReceiptsTaken(_) | Response::Refused { .. } => {}
        }
    }
});
