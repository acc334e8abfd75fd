//! Fuzz target: what a destination node does with envelope bytes from the network —
//! `Envelope::decode` → `verify` → `open` with the fixed test-vector destination key.
//!
//! First byte < 0x80: the rest is envelope bytes (decode, verify, open). Otherwise the
//! rest is an arbitrary plaintext payload, sealed to the destination under the
//! test-vector header (version 1 for a first byte below 0xC0, version 2 above) and signed
//! by the origin, so that the fuzzer reaches the code after a successful HPKE open
//! (payload decoding, the inner header against its digest, file count/length/SHA-256
//! checks), which random ciphertext never does.

#![no_main]

#[path = "vectors.rs"]
mod vectors;

use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;
use renkei_protocol::envelope::{ENVELOPE_SIG_LABEL, Envelope, sha256};
use renkei_protocol::keys::OperatorKeys;
use renkei_protocol::seal;

struct Fixed {
    destination: OperatorKeys,
    origin: OperatorKeys,
    header: Vec<u8>,
    header_v2: Vec<u8>,
}

fn fixed() -> &'static Fixed {
    static F: OnceLock<Fixed> = OnceLock::new();
    F.get_or_init(|| Fixed {
        destination: OperatorKeys::from_seeds(
            vectors::DESTINATION_SIGN_SEED,
            vectors::DESTINATION_SEAL_SEED,
        ),
        origin: OperatorKeys::from_seeds(vectors::ORIGIN_SIGN_SEED, vectors::ORIGIN_SEAL_SEED),
        header: vectors::unhex(vectors::HEADER_HEX),
        header_v2: vectors::unhex(vectors::HEADER_V2_HEX),
    })
}

fn cbor_bstr(out: &mut Vec<u8>, b: &[u8]) {
    let n = b.len() as u64;
    if n < 24 {
        out.push(0x40 | n as u8);
    } else if n < 0x100 {
        out.extend([0x58, n as u8]);
    } else if n < 0x1_0000 {
        out.push(0x59);
        out.extend((n as u16).to_be_bytes());
    } else {
        out.push(0x5a);
        out.extend((n as u32).to_be_bytes());
    }
    out.extend_from_slice(b);
}

fn check(bytes: &[u8], f: &Fixed) {
    let Ok(env) = Envelope::decode(bytes) else {
        return;
    };
    assert_eq!(env.encode(), bytes, "envelope decoded from non-canonical bytes");
    let verified = env.verify().is_ok();
    if let Ok(opened) = env.open(&f.destination) {
        // Opening succeeded: the files must be exactly what the header promises, and the
        // whole header must be the one the cleartext names.
        let (h, files) = (&opened.header, &opened.files);
        assert!(env.is_header_of(h), "opened a header the cleartext does not name");
        assert_eq!(files.len(), h.files.len());
        for (entry, file) in h.files.iter().zip(files) {
            assert_eq!(entry.len, file.len() as u64);
            assert_eq!(entry.sha256, sha256(file));
        }
        let _ = verified;
    }
}

fuzz_target!(|data: &[u8]| {
    let Some((&mode, rest)) = data.split_first() else {
        return;
    };
    let f = fixed();
    if mode < 0x80 {
        check(rest, f);
        return;
    }
    // Seal `rest` as the plaintext payload under the fixed header.
    let (version, header) = if mode < 0xC0 {
        (0x01, &f.header)
    } else {
        (0x02, &f.header_v2)
    };
    let Ok(sealed) = seal::seal(&f.destination.seal.public(), header, rest, [mode; 32]) else {
        return;
    };
    let mut msg = Vec::with_capacity(32 + header.len());
    msg.extend_from_slice(&sha256(&sealed));
    msg.extend_from_slice(header);
    let sig = f.origin.identity.sign(ENVELOPE_SIG_LABEL, &msg);
    let mut env = vec![0x84, version];
    cbor_bstr(&mut env, header);
    cbor_bstr(&mut env, &sealed);
    cbor_bstr(&mut env, &sig);
    let decoded = Envelope::decode(&env);
    assert!(decoded.is_ok(), "a freshly signed envelope must decode");
    if let Ok(e) = decoded {
        assert!(e.verify().is_ok(), "a freshly signed envelope must verify");
    }
    check(&env, f);
});
