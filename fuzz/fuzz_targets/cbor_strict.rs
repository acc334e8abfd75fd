//! Fuzz target: the protocol's one CBOR decoder (`cbor::decode_canonical`, a strict
//! direct reader) against a general one (ciborium, then re-encoding and comparing the
//! bytes). On any input, the strict decoder accepts exactly what the general one accepts
//! as the canonical encoding of a value of the protocol's subset (integers, byte and text
//! strings, arrays, booleans, null), with the same value; everything else it refuses with
//! a named fault.

#![no_main]

use ciborium::value::Value;
use libfuzzer_sys::fuzz_target;
use renkei_protocol::cbor;

fn in_subset(v: &Value) -> bool {
    match v {
        Value::Integer(_) | Value::Bytes(_) | Value::Text(_) | Value::Bool(_) | Value::Null => {
            true
        }
        Value::Array(items) => items.iter().all(in_subset),
        _ => false,
    }
}

/// The general decoder: ciborium, and the canonical re-encoding must be the input.
fn general(bytes: &[u8]) -> Option<Value> {
    let v: Value = ciborium::from_reader(bytes).ok()?;
    let mut again = Vec::new();
    ciborium::into_writer(&v, &mut again).ok()?;
    (again == bytes && in_subset(&v)).then_some(v)
}

fuzz_target!(|data: &[u8]| {
    let strict = cbor::decode_canonical(data, "fuzz", usize::MAX);
    match (strict, general(data)) {
        (Ok(s), Some(g)) => assert_eq!(s, g, "the two decoders read different values"),
        (Ok(s), None) => panic!("the strict decoder accepted {s:?}, the general one refuses"),
        (Err(e), Some(g)) => {
            // Only the item bound may refuse what the general decoder reads.
            assert!(
                matches!(e, renkei_protocol::error::DecodeError::TooMany { .. }),
                "refused {g:?} ({e}), which the general decoder reads"
            )
        }
        (Err(e), None) => assert!(!e.to_string().is_empty()),
    }
});
