//! The reader and writer of the CBOR the protocol builds: unsigned and negative integers,
//! byte and text strings, arrays, booleans and null, in canonical form (RFC 8949 §4.2.1:
//! shortest integer and length forms, definite lengths).
//!
//! [`decode`] is the protocol's one CBOR decoder: it answers the value for input that is
//! the canonical encoding of such a value, and for anything else an error naming the
//! fault — an over-long or indefinite length (not canonical), truncation, bytes after the
//! value, text that is not UTF-8, nesting deeper than [`MAX_DEPTH`], or a kind of item the
//! protocol never uses (a map, a tag, a float, `undefined`). It is linear in its input
//! and allocates only for what the input holds. A general decoder (ciborium, then
//! re-encoding and comparing) is kept only as the oracle that tests and the fuzz target
//! `cbor_strict` compare it with. [`encode`] writes the bytes ciborium writes, and
//! declines a value holding anything else.

use ciborium::value::{Integer, Value};

/// Deepest nesting read (the protocol's values nest three levels).
pub const MAX_DEPTH: usize = 64;

/// What is wrong with bytes that are not the canonical encoding of a protocol value.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Fault {
    /// An argument or length in a longer form than needed, or an indefinite length.
    NonCanonical,
    /// Not well-formed, or outside the protocol's subset: the text says which.
    Malformed(&'static str),
}

/// The value `bytes` canonically encode, or what is wrong with them.
pub(crate) fn decode(bytes: &[u8]) -> Result<Value, Fault> {
    let mut r = Reader { b: bytes, pos: 0 };
    let v = r.value(0)?;
    if r.pos != bytes.len() {
        return Err(Fault::Malformed("bytes left after the value"));
    }
    Ok(v)
}

/// Appends the canonical encoding of `v` to `out`; `false` (with `out` partly written) if
/// `v` holds a kind of value outside the subset.
pub(super) fn encode(v: &Value, out: &mut Vec<u8>) -> bool {
    match v {
        Value::Integer(i) => {
            let i = i128::from(*i);
            match u64::try_from(i) {
                Ok(n) => head(out, 0, n),
                // Negative: CBOR stores -1 - i, which fits u64 for every `Integer`.
                Err(_) => match u64::try_from(-1 - i) {
                    Ok(n) => head(out, 1, n),
                    Err(_) => return false,
                },
            }
        }
        Value::Bytes(b) => {
            head(out, 2, b.len() as u64);
            out.extend_from_slice(b);
        }
        Value::Text(s) => {
            head(out, 3, s.len() as u64);
            out.extend_from_slice(s.as_bytes());
        }
        Value::Array(items) => {
            head(out, 4, items.len() as u64);
            return items.iter().all(|item| encode(item, out));
        }
        Value::Bool(false) => out.push(0xf4),
        Value::Bool(true) => out.push(0xf5),
        Value::Null => out.push(0xf6),
        _ => return false,
    }
    true
}

/// The initial byte(s) of an item: major type and argument, shortest form.
fn head(out: &mut Vec<u8>, major: u8, n: u64) {
    let m = major << 5;
    match n {
        0..=23 => out.push(m | n as u8),
        24..=0xff => out.extend_from_slice(&[m | 24, n as u8]),
        0x100..=0xffff => {
            out.push(m | 25);
            out.extend_from_slice(&(n as u16).to_be_bytes());
        }
        0x1_0000..=0xffff_ffff => {
            out.push(m | 26);
            out.extend_from_slice(&(n as u32).to_be_bytes());
        }
        _ => {
            out.push(m | 27);
            out.extend_from_slice(&n.to_be_bytes());
        }
    }
}

struct Reader<'a> {
    b: &'a [u8],
    pos: usize,
}

const TRUNCATED: Fault = Fault::Malformed("truncated");

impl<'a> Reader<'a> {
    fn byte(&mut self) -> Result<u8, Fault> {
        let x = *self.b.get(self.pos).ok_or(TRUNCATED)?;
        self.pos += 1;
        Ok(x)
    }

    fn take(&mut self, n: usize) -> Result<&'a [u8], Fault> {
        let b: &'a [u8] = self.b;
        let end = self.pos.checked_add(n).ok_or(TRUNCATED)?;
        let s = b.get(self.pos..end).ok_or(TRUNCATED)?;
        self.pos = end;
        Ok(s)
    }

    fn fixed<const N: usize>(&mut self) -> Result<[u8; N], Fault> {
        self.take(N)?.try_into().map_err(|_| TRUNCATED)
    }

    /// The argument for additional information `ai`, only in its shortest form.
    fn arg(&mut self, ai: u8) -> Result<u64, Fault> {
        let (n, min) = match ai {
            0..=23 => return Ok(u64::from(ai)),
            24 => (u64::from(self.byte()?), 24),
            25 => (u64::from(u16::from_be_bytes(self.fixed()?)), 0x100),
            26 => (u64::from(u32::from_be_bytes(self.fixed()?)), 0x1_0000),
            27 => (u64::from_be_bytes(self.fixed()?), 0x1_0000_0000),
            31 => return Err(Fault::NonCanonical), // indefinite length
            _ => return Err(Fault::Malformed("reserved additional information")),
        };
        if n < min {
            return Err(Fault::NonCanonical);
        }
        Ok(n)
    }

    fn len(&mut self, ai: u8) -> Result<usize, Fault> {
        usize::try_from(self.arg(ai)?).map_err(|_| TRUNCATED)
    }

    fn value(&mut self, depth: usize) -> Result<Value, Fault> {
        if depth > MAX_DEPTH {
            return Err(Fault::Malformed("nested too deep"));
        }
        let ib = self.byte()?;
        let ai = ib & 0x1f;
        Ok(match ib >> 5 {
            0 => Value::Integer(self.arg(ai)?.into()),
            1 => Value::Integer(
                Integer::try_from(-1 - i128::from(self.arg(ai)?))
                    .map_err(|_| Fault::Malformed("a negative integer out of range"))?,
            ),
            2 => {
                let n = self.len(ai)?;
                Value::Bytes(self.take(n)?.to_vec())
            }
            3 => {
                let n = self.len(ai)?;
                Value::Text(
                    std::str::from_utf8(self.take(n)?)
                        .map_err(|_| Fault::Malformed("a text string that is not UTF-8"))?
                        .to_owned(),
                )
            }
            4 => {
                let n = self.len(ai)?;
                // Every item takes at least a byte: a longer count is a lie, not a reason
                // to allocate.
                if n > self.b.len() - self.pos {
                    return Err(TRUNCATED);
                }
                let mut items = Vec::with_capacity(n);
                for _ in 0..n {
                    items.push(self.value(depth + 1)?);
                }
                Value::Array(items)
            }
            5 => return Err(Fault::Malformed("a map (the protocol uses none)")),
            6 => return Err(Fault::Malformed("a tag (the protocol uses none)")),
            _ => match ai {
                20 => Value::Bool(false),
                21 => Value::Bool(true),
                22 => Value::Null,
                25..=27 => return Err(Fault::Malformed("a float (the protocol uses none)")),
                31 => return Err(Fault::Malformed("a break outside an indefinite length")),
                _ => {
                    return Err(Fault::Malformed(
                        "a simple value other than true, false or null",
                    ));
                }
            },
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cbor::decode_general;

    /// A small deterministic generator (xorshift).
    struct Gen(u64);

    impl Gen {
        fn next(&mut self) -> u64 {
            self.0 ^= self.0 << 13;
            self.0 ^= self.0 >> 7;
            self.0 ^= self.0 << 17;
            self.0
        }

        fn below(&mut self, n: u64) -> u64 {
            self.next() % n
        }

        /// A value, mostly of the subset, now and then a map, tag or float.
        fn value(&mut self, depth: usize) -> Value {
            let edge = [
                0,
                23,
                24,
                255,
                256,
                65_535,
                65_536,
                u32::MAX as u64,
                u64::MAX,
            ];
            match self.below(if depth > 3 { 9 } else { 11 }) {
                0 => Value::Integer(edge[self.below(9) as usize].into()),
                1 => Value::Integer((self.next() >> self.below(64)).into()),
                2 => {
                    let n = edge[self.below(8) as usize] as i128;
                    Value::Integer(Integer::try_from(-1 - n).unwrap_or(Integer::from(-1)))
                }
                3 => Value::Bytes((0..self.below(300)).map(|_| self.next() as u8).collect()),
                4 => Value::Text("ケアプラン".repeat(self.below(60) as usize)),
                5 => Value::Bool(self.below(2) == 0),
                6 => Value::Null,
                7 => Value::Float(0.5),
                8 => Value::Tag(1, Box::new(Value::Null)),
                9 | 10 if depth < 6 => {
                    let long = self.below(8) == 0;
                    let n = self.below(if long { 40 } else { 6 });
                    Value::Array((0..n).map(|_| self.value(depth + 1)).collect())
                }
                _ => Value::Map(vec![(Value::Null, Value::Bool(true))]),
            }
        }
    }

    fn in_subset(v: &Value) -> bool {
        match v {
            Value::Integer(_) | Value::Bytes(_) | Value::Text(_) | Value::Bool(_) => true,
            Value::Null => true,
            Value::Array(items) => items.iter().all(in_subset),
            _ => false,
        }
    }

    #[test]
    fn encodes_byte_for_byte_as_ciborium_and_declines_the_rest() {
        let mut g = Gen(0x9e37_79b9_7f4a_7c15);
        let mut checked = 0;
        for _ in 0..3000 {
            let v = g.value(0);
            let mut general = Vec::new();
            ciborium::into_writer(&v, &mut general).unwrap();
            let mut direct = Vec::new();
            let ok = encode(&v, &mut direct);
            assert_eq!(ok, in_subset(&v), "{v:?}");
            if ok {
                assert_eq!(direct, general, "{v:?}");
                assert_eq!(decode(&direct), Ok(v));
                checked += 1;
            }
        }
        assert!(checked > 1000, "only {checked} values of the subset");
    }

    #[test]
    fn accepts_exactly_what_the_general_decoder_accepts() {
        // Every mutation of valid encodings (flipped, dropped, inserted, truncated bytes):
        // where the reader answers, the general decoder (ciborium, re-encoded and compared)
        // accepts the same value; where the general decoder accepts a value of the subset,
        // the reader answers too. (The fuzz target `cbor_strict` does the same on
        // arbitrary input.)
        let mut g = Gen(0x2545_f491_4f6c_dd1d);
        let (mut answered, mut declined) = (0, 0);
        for _ in 0..3000 {
            let v = Value::Array(vec![g.value(1), g.value(1)]);
            let mut bytes = Vec::new();
            ciborium::into_writer(&v, &mut bytes).unwrap();
            let at = g.below(bytes.len() as u64) as usize;
            match g.below(5) {
                0 => bytes[at] ^= 1 << g.below(8),
                1 => {
                    bytes.remove(at);
                }
                2 => bytes.insert(at, g.next() as u8),
                3 => bytes.truncate(at),
                _ => {} // unchanged
            }
            let general = decode_general(&bytes, "t");
            match decode(&bytes) {
                Ok(d) => {
                    assert_eq!(general, Ok(d), "{bytes:02x?}");
                    answered += 1;
                }
                Err(_) => {
                    assert!(
                        !general.as_ref().is_ok_and(in_subset),
                        "declined {bytes:02x?}, which the general path accepts"
                    );
                    declined += 1;
                }
            }
        }
        assert!(answered > 500 && declined > 500, "{answered} {declined}");
    }

    #[test]
    fn refuses_what_canonical_form_forbids_and_names_it() {
        let m = Fault::Malformed;
        for (bad, want) in [
            (&[0x18, 0x01][..], Fault::NonCanonical), // 1 in a longer form
            (&[0x19, 0x00, 0xff], Fault::NonCanonical), // 255 in a longer form
            (&[0x9f, 0x01, 0xff], Fault::NonCanonical), // indefinite-length array
            (&[0x5f, 0x41, 0x00, 0xff], Fault::NonCanonical), // indefinite byte string
            (&[0x81, 0x01, 0x00], m("bytes left after the value")),
            (&[0x82, 0x01], m("truncated")),
            (&[0x62, 0xff, 0xfe], m("a text string that is not UTF-8")),
            (
                &[0x9b, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff],
                m("truncated"),
            ), // absurd count
            (&[0xf7], m("a simple value other than true, false or null")), // undefined
            (&[0xa0], m("a map (the protocol uses none)")),
            (&[0xc1, 0x00], m("a tag (the protocol uses none)")),
            (&[0xf9, 0x3c, 0x00], m("a float (the protocol uses none)")),
            (&[0x1c], m("reserved additional information")),
        ] {
            assert_eq!(decode(bad), Err(want), "{bad:02x?}");
            // The general decoder refuses every one of them too (or reads a value outside
            // the subset).
            assert!(
                !decode_general(bad, "t").as_ref().is_ok_and(in_subset),
                "{bad:02x?}"
            );
        }
        let deep: Vec<u8> = std::iter::repeat_n(0x81, 100).chain([0x00]).collect();
        assert_eq!(decode(&deep), Err(m("nested too deep")));
    }
}
