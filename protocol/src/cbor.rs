//! Canonical CBOR: every protocol value is a CBOR array of fields in a fixed order, encoded
//! deterministically (RFC 8949 §4.2.1 core deterministic encoding: shortest integer and
//! length forms, definite lengths). Maps, floats and tags are never used.
//!
//! Decoding ([`decode_canonical`], one strict reader: [`direct`]) accepts only the
//! canonical encoding of a value of the protocol's subset: one value has exactly one byte
//! string, and a non-canonical encoding is an error naming the fault, not a guess.

use ciborium::value::Value;

use crate::error::DecodeError;
use crate::ids::IdError;

pub(crate) mod direct;

/// Encodes a value in canonical form.
pub fn encode(v: &Value) -> Vec<u8> {
    let mut out = Vec::new();
    if direct::encode(v, &mut out) {
        return out;
    }
    out.clear();
    // Writing into a Vec cannot fail, and every Value we build is encodable.
    if let Err(e) = ciborium::into_writer(v, &mut out) {
        unreachable!("CBOR encoding into memory failed: {e}");
    }
    out
}

/// Decodes `bytes` (at most `max` long) and insists they are the canonical encoding.
pub fn decode_canonical(
    bytes: &[u8],
    what: &'static str,
    max: usize,
) -> Result<Value, DecodeError> {
    if bytes.len() > max {
        return Err(DecodeError::TooLarge {
            what,
            len: bytes.len(),
            max,
        });
    }
    check_items(bytes, what, ITEMS_MAX)?;
    direct::decode(bytes).map_err(|f| match f {
        direct::Fault::NonCanonical => DecodeError::NonCanonical { what },
        direct::Fault::Malformed(detail) => DecodeError::Malformed {
            what,
            detail: detail.to_owned(),
        },
    })
}

/// Most CBOR items one decoded value may hold. A value tree costs about 32 bytes per item
/// however small the item's encoding, so a 17 MiB message of one-byte items would take
/// over half a gigabyte before any check on what it holds; the largest protocol values
/// (a roster of 4,096 operators, a message of 1,024 receipts) hold well under this.
pub const ITEMS_MAX: usize = 1 << 18;

/// Walks the item heads of `bytes` without allocating and refuses, before any value is
/// built, input that holds more than `max` items, declares more items or bytes than it
/// has, or uses indefinite lengths (never canonical). Linear in `bytes`; what it lets
/// through is still decoded and checked in full.
pub fn check_items(bytes: &[u8], what: &'static str, max: usize) -> Result<(), DecodeError> {
    let malformed = |detail: &str| DecodeError::Malformed {
        what,
        detail: detail.to_owned(),
    };
    let mut pos = 0usize;
    // Items still to read; each takes at least one byte, so more than remain is a lie.
    let mut pending: u64 = 1;
    let mut count = 0usize;
    while pending > 0 {
        pending -= 1;
        count += 1;
        if count > max {
            return Err(DecodeError::TooMany {
                what: "CBOR items",
                count,
                max,
            });
        }
        let Some(&ib) = bytes.get(pos) else {
            return Err(malformed("truncated: an item is missing"));
        };
        pos += 1;
        let (major, ai) = (ib >> 5, ib & 0x1f);
        let arg = match ai {
            0..=23 => u64::from(ai),
            24..=27 => {
                let n = 1usize << (ai - 24);
                let Some(b) = bytes.get(pos..pos + n) else {
                    return Err(malformed("truncated: an item's argument is missing"));
                };
                pos += n;
                b.iter().fold(0u64, |acc, x| (acc << 8) | u64::from(*x))
            }
            31 if major >= 2 => return Err(DecodeError::NonCanonical { what }),
            _ => return Err(malformed("reserved additional information")),
        };
        let remaining = (bytes.len() - pos) as u64;
        match major {
            2 | 3 => {
                if arg > remaining {
                    return Err(malformed("truncated: a string is longer than the input"));
                }
                pos += arg as usize;
            }
            4 | 5 => {
                let items = if major == 5 {
                    arg.saturating_mul(2)
                } else {
                    arg
                };
                pending = pending.saturating_add(items);
            }
            6 => pending = pending.saturating_add(1),
            _ => {}
        }
        if pending > (bytes.len() - pos) as u64 {
            return Err(malformed(
                "truncated: more items declared than bytes remain",
            ));
        }
    }
    Ok(())
}

/// The general decoder, kept as the oracle the strict one is compared with (tests; the fuzz
/// target `cbor_strict` has its own copy): ciborium, then re-encoding must give back
/// `bytes`.
#[cfg(test)]
pub(crate) fn decode_general(bytes: &[u8], what: &'static str) -> Result<Value, DecodeError> {
    let v: Value = ciborium::from_reader(bytes).map_err(|e| DecodeError::Malformed {
        what,
        detail: e.to_string(),
    })?;
    if encode(&v) != bytes {
        return Err(DecodeError::NonCanonical { what });
    }
    Ok(v)
}

/// Builds a CBOR byte string.
pub fn bytes(b: &[u8]) -> Value {
    Value::Bytes(b.to_vec())
}

/// Builds a CBOR unsigned integer.
pub fn uint(n: u64) -> Value {
    Value::Integer(n.into())
}

/// Builds a CBOR text string.
pub fn text(s: &str) -> Value {
    Value::Text(s.to_owned())
}

/// Reads the fields of a CBOR array in order, with errors naming the field.
pub struct Fields {
    what: &'static str,
    items: std::vec::IntoIter<Value>,
}

impl Fields {
    /// Expects an array of exactly `n` fields.
    pub fn new(v: Value, what: &'static str, n: usize) -> Result<Self, DecodeError> {
        match v {
            Value::Array(items) if items.len() == n => Ok(Fields {
                what,
                items: items.into_iter(),
            }),
            _ => Err(DecodeError::Field {
                what,
                field: "(top level)",
                expected: "an array of the right length",
            }),
        }
    }

    fn next(&mut self, field: &'static str, expected: &'static str) -> Result<Value, DecodeError> {
        self.items.next().ok_or(DecodeError::Field {
            what: self.what,
            field,
            expected,
        })
    }

    fn err(&self, field: &'static str, expected: &'static str) -> DecodeError {
        DecodeError::Field {
            what: self.what,
            field,
            expected,
        }
    }

    /// The version field: must equal `want`.
    pub fn version(&mut self, want: u64) -> Result<(), DecodeError> {
        let got = self.uint("version")?;
        if got != want {
            return Err(DecodeError::UnknownVersion {
                what: self.what,
                got,
                want,
            });
        }
        Ok(())
    }

    /// An unsigned integer.
    pub fn uint(&mut self, field: &'static str) -> Result<u64, DecodeError> {
        match self.next(field, "an unsigned integer")? {
            Value::Integer(i) => {
                u64::try_from(i).map_err(|_| self.err(field, "an unsigned integer"))
            }
            _ => Err(self.err(field, "an unsigned integer")),
        }
    }

    /// A byte string.
    pub fn bytes(&mut self, field: &'static str) -> Result<Vec<u8>, DecodeError> {
        match self.next(field, "a byte string")? {
            Value::Bytes(b) => Ok(b),
            _ => Err(self.err(field, "a byte string")),
        }
    }

    /// A byte string of exactly `N` bytes.
    pub fn array<const N: usize>(&mut self, field: &'static str) -> Result<[u8; N], DecodeError> {
        let b = self.bytes(field)?;
        <[u8; N]>::try_from(b.as_slice())
            .map_err(|_| self.err(field, "a byte string of the fixed length"))
    }

    /// Null or a byte string of exactly `N` bytes.
    pub fn opt_array<const N: usize>(
        &mut self,
        field: &'static str,
    ) -> Result<Option<[u8; N]>, DecodeError> {
        match self.next(field, "null or a fixed-length byte string")? {
            Value::Null => Ok(None),
            Value::Bytes(b) => <[u8; N]>::try_from(b.as_slice())
                .map(Some)
                .map_err(|_| self.err(field, "null or a fixed-length byte string")),
            _ => Err(self.err(field, "null or a fixed-length byte string")),
        }
    }

    /// A text string.
    pub fn text(&mut self, field: &'static str) -> Result<String, DecodeError> {
        match self.next(field, "a text string")? {
            Value::Text(s) => Ok(s),
            _ => Err(self.err(field, "a text string")),
        }
    }

    /// Null or a text string.
    pub fn opt_text(&mut self, field: &'static str) -> Result<Option<String>, DecodeError> {
        match self.next(field, "null or a text string")? {
            Value::Null => Ok(None),
            Value::Text(s) => Ok(Some(s)),
            _ => Err(self.err(field, "null or a text string")),
        }
    }

    /// Null or an unsigned integer.
    pub fn opt_uint(&mut self, field: &'static str) -> Result<Option<u64>, DecodeError> {
        match self.next(field, "null or an unsigned integer")? {
            Value::Null => Ok(None),
            Value::Integer(i) => u64::try_from(i)
                .map(Some)
                .map_err(|_| self.err(field, "null or an unsigned integer")),
            _ => Err(self.err(field, "null or an unsigned integer")),
        }
    }

    /// A boolean.
    pub fn bool(&mut self, field: &'static str) -> Result<bool, DecodeError> {
        match self.next(field, "a boolean")? {
            Value::Bool(b) => Ok(b),
            _ => Err(self.err(field, "a boolean")),
        }
    }

    /// An array, as its items (at most `max`).
    pub fn list(&mut self, field: &'static str, max: usize) -> Result<Vec<Value>, DecodeError> {
        match self.next(field, "an array")? {
            Value::Array(items) if items.len() <= max => Ok(items),
            Value::Array(_) => Err(self.err(field, "an array within its length bound")),
            _ => Err(self.err(field, "an array")),
        }
    }

    /// Any value (for nested structures decoded by the caller).
    pub fn value(&mut self, field: &'static str) -> Result<Value, DecodeError> {
        self.next(field, "a value")
    }

    /// A text field parsed into an identifier.
    pub fn parse<T: std::str::FromStr<Err = IdError>>(
        &mut self,
        field: &'static str,
    ) -> Result<T, DecodeError> {
        let s = self.text(field)?;
        s.parse().map_err(|source| DecodeError::Id {
            what: self.what,
            field,
            source,
        })
    }

    /// Wraps an identifier error with this value's name.
    pub fn id_err(&self, field: &'static str, source: IdError) -> DecodeError {
        DecodeError::Id {
            what: self.what,
            field,
            source,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn item_counts_are_checked_before_any_value_is_built() {
        // An array of 2^20 one-byte integers: 1 MiB of input, refused on the count.
        let mut big = vec![0x9a, 0x00, 0x10, 0x00, 0x00];
        big.extend(std::iter::repeat_n(0x01, 1 << 20));
        match decode_canonical(&big, "test", 4 << 20) {
            Err(DecodeError::TooMany { what, max, .. }) => {
                assert_eq!((what, max), ("CBOR items", ITEMS_MAX));
            }
            other => panic!("expected the item count refusal, got {other:?}"),
        }
        // A header announcing 2^32 items in a few bytes: refused, nothing reserved.
        let lie = [0x9b, 0, 0, 0, 1, 0, 0, 0, 0, 0x01];
        let e = check_items(&lie, "test", ITEMS_MAX)
            .unwrap_err()
            .to_string();
        assert!(e.contains("more items declared than bytes remain"), "{e}");
        // Indefinite lengths are never canonical.
        assert_eq!(
            check_items(&[0x9f, 0x01, 0xff], "test", ITEMS_MAX),
            Err(DecodeError::NonCanonical { what: "test" })
        );
        // A map counts its keys and values; a string longer than the input is a lie.
        assert!(check_items(&[0xa1, 0x01, 0x02], "test", 3).is_ok());
        assert!(check_items(&[0xa1, 0x01, 0x02], "test", 2).is_err());
        assert!(check_items(&[0x5a, 0xff, 0xff, 0xff, 0xff, 0x00], "test", 9).is_err());
        // What the protocol builds passes untouched.
        let v = Value::Array(vec![
            uint(1),
            Value::Bytes(vec![7; 300]),
            Value::Text("x".into()),
        ]);
        let bytes = encode(&v);
        assert!(check_items(&bytes, "test", 4).is_ok());
        assert_eq!(decode_canonical(&bytes, "test", 1024).unwrap(), v);
    }

    #[test]
    fn non_canonical_integer_is_refused() {
        // [1] canonical is 0x81 0x01; 0x81 0x18 0x01 encodes 1 in a longer form.
        assert!(decode_canonical(&[0x81, 0x01], "t", 10).is_ok());
        assert_eq!(
            decode_canonical(&[0x81, 0x18, 0x01], "t", 10),
            Err(DecodeError::NonCanonical { what: "t" })
        );
        // indefinite-length array
        assert_eq!(
            decode_canonical(&[0x9f, 0x01, 0xff], "t", 10),
            Err(DecodeError::NonCanonical { what: "t" })
        );
        // trailing byte
        assert_eq!(
            decode_canonical(&[0x81, 0x01, 0x00], "t", 10),
            Err(DecodeError::Malformed {
                what: "t",
                detail: "bytes left after the value".into()
            })
        );
        assert!(matches!(
            decode_canonical(&[0x81], "t", 10),
            Err(DecodeError::Malformed { .. })
        ));
        assert!(matches!(
            decode_canonical(&[0; 11], "t", 10),
            Err(DecodeError::TooLarge { len: 11, .. })
        ));
    }
}
