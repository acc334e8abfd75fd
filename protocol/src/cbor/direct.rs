//! A direct reader and writer for the CBOR the protocol builds: unsigned and negative
//! integers, byte and text strings, arrays, booleans and null, in canonical form.
//!
//! Both are shortcuts, not a second definition of the format: [`decode`] answers only for
//! input that is the canonical encoding of such a value (exactly what the general path
//! would accept, with the same value) and `None` for anything else — maps, tags, floats,
//! undefined, indefinite or over-long lengths, bad UTF-8, truncation, trailing bytes, deep
//! nesting — which the general path (ciborium, then re-encoding) then refuses with the
//! error it names. [`encode`] writes the bytes ciborium writes, and declines a value
//! holding anything else.

use ciborium::value::{Integer, Value};

/// Deeper values are left to the general path (ciborium allows 256 levels).
const MAX_DEPTH: usize = 64;

/// The value `bytes` canonically encode, if they encode one of the protocol's subset.
pub(super) fn decode(bytes: &[u8]) -> Option<Value> {
    let mut r = Reader { b: bytes, pos: 0 };
    let v = r.value(0)?;
    (r.pos == bytes.len()).then_some(v)
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

impl<'a> Reader<'a> {
    fn byte(&mut self) -> Option<u8> {
        let x = *self.b.get(self.pos)?;
        self.pos += 1;
        Some(x)
    }

    fn take(&mut self, n: usize) -> Option<&'a [u8]> {
        let b: &'a [u8] = self.b;
        let end = self.pos.checked_add(n)?;
        let s = b.get(self.pos..end)?;
        self.pos = end;
        Some(s)
    }

    fn fixed<const N: usize>(&mut self) -> Option<[u8; N]> {
        self.take(N)?.try_into().ok()
    }

    /// The argument for additional information `ai`, only in its shortest form.
    fn arg(&mut self, ai: u8) -> Option<u64> {
        let (n, min) = match ai {
            0..=23 => return Some(u64::from(ai)),
            24 => (u64::from(self.byte()?), 24),
            25 => (u64::from(u16::from_be_bytes(self.fixed()?)), 0x100),
            26 => (u64::from(u32::from_be_bytes(self.fixed()?)), 0x1_0000),
            27 => (u64::from_be_bytes(self.fixed()?), 0x1_0000_0000),
            _ => return None, // reserved, or indefinite length
        };
        (n >= min).then_some(n)
    }

    fn len(&mut self, ai: u8) -> Option<usize> {
        usize::try_from(self.arg(ai)?).ok()
    }

    fn value(&mut self, depth: usize) -> Option<Value> {
        if depth > MAX_DEPTH {
            return None;
        }
        let ib = self.byte()?;
        let ai = ib & 0x1f;
        Some(match ib >> 5 {
            0 => Value::Integer(self.arg(ai)?.into()),
            1 => Value::Integer(Integer::try_from(-1 - i128::from(self.arg(ai)?)).ok()?),
            2 => {
                let n = self.len(ai)?;
                Value::Bytes(self.take(n)?.to_vec())
            }
            3 => {
                let n = self.len(ai)?;
                Value::Text(std::str::from_utf8(self.take(n)?).ok()?.to_owned())
            }
            4 => {
                let n = self.len(ai)?;
                // Every item takes at least a byte: a longer count is a lie, not a reason
                // to allocate.
                if n > self.b.len() - self.pos {
                    return None;
                }
                let mut items = Vec::with_capacity(n);
                for _ in 0..n {
                    items.push(self.value(depth + 1)?);
                }
                Value::Array(items)
            }
            7 => match ai {
                20 => Value::Bool(false),
                21 => Value::Bool(true),
                22 => Value::Null,
                _ => return None,
            },
            _ => return None,
        })
    }
}

/// Item-by-item reading of a value of known layout (a decoder that builds its struct
/// without a [`Value`] tree in between). Each read answers `None` wherever [`decode`]
/// would (over-long arguments, bad UTF-8, truncation, another kind of item) and also for
/// an item of another kind than asked; the caller then takes the general path, which
/// names what is wrong. A struct read to [`Items::end`] this way is the one the general
/// path builds from the same bytes.
pub(crate) struct Items<'a>(Reader<'a>);

impl<'a> Items<'a> {
    /// A reader of `bytes`, if they are at most `max` long (longer ones are the general
    /// path's to refuse).
    pub(crate) fn within(bytes: &'a [u8], max: usize) -> Option<Self> {
        (bytes.len() <= max).then_some(Items(Reader { b: bytes, pos: 0 }))
    }

    /// The additional information of the next item, if it is of major type `major`.
    fn head(&mut self, major: u8) -> Option<u8> {
        let ib = self.0.byte()?;
        (ib >> 5 == major).then_some(ib & 0x1f)
    }

    /// The head of a versioned struct: an array of exactly `n` items whose first is
    /// `version` (the other items follow).
    pub(crate) fn versioned(&mut self, n: usize, version: u64) -> Option<()> {
        (self.array()? == n && self.uint()? == version).then_some(())
    }

    /// An array's length (its items follow).
    pub(crate) fn array(&mut self) -> Option<usize> {
        let ai = self.head(4)?;
        let n = self.0.len(ai)?;
        (n <= self.0.b.len() - self.0.pos).then_some(n)
    }

    pub(crate) fn uint(&mut self) -> Option<u64> {
        let ai = self.head(0)?;
        self.0.arg(ai)
    }

    pub(crate) fn bytes(&mut self) -> Option<&'a [u8]> {
        let ai = self.head(2)?;
        let n = self.0.len(ai)?;
        self.0.take(n)
    }

    pub(crate) fn text(&mut self) -> Option<&'a str> {
        let ai = self.head(3)?;
        let n = self.0.len(ai)?;
        std::str::from_utf8(self.0.take(n)?).ok()
    }

    pub(crate) fn bool(&mut self) -> Option<bool> {
        match self.0.byte()? {
            0xf4 => Some(false),
            0xf5 => Some(true),
            _ => None,
        }
    }

    pub(crate) fn null(&mut self) -> Option<()> {
        (self.0.byte()? == 0xf6).then_some(())
    }

    /// Whether every byte was read.
    pub(crate) fn end(&self) -> Option<()> {
        (self.0.pos == self.0.b.len()).then_some(())
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
                assert_eq!(decode(&direct), Some(v));
                checked += 1;
            }
        }
        assert!(checked > 1000, "only {checked} values of the subset");
    }

    #[test]
    fn answers_exactly_what_the_general_path_accepts() {
        // Every mutation of valid encodings (flipped, dropped, inserted, truncated bytes):
        // where the direct reader answers, the general path accepts the same value; where
        // the general path accepts a value of the subset, the direct reader answers too.
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
                Some(d) => {
                    assert_eq!(general, Ok(d), "{bytes:02x?}");
                    answered += 1;
                }
                None => {
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
    fn refuses_what_canonical_form_forbids() {
        for bad in [
            &[0x18, 0x01][..],                                       // 1 in a longer form
            &[0x19, 0x00, 0xff],                                     // 255 in a longer form
            &[0x9f, 0x01, 0xff],                                     // indefinite-length array
            &[0x5f, 0x41, 0x00, 0xff], // indefinite-length byte string
            &[0x81, 0x01, 0x00],       // trailing byte
            &[0x82, 0x01],             // truncated
            &[0x62, 0xff, 0xfe],       // text that is not UTF-8
            &[0x9b, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff], // absurd count
            &[0xf7],                   // undefined
            &[0xa0],                   // a map
            &[0xc1, 0x00],             // a tag
            &[0xf9, 0x3c, 0x00],       // a float
        ] {
            assert_eq!(decode(bad), None, "{bad:02x?}");
        }
        let deep: Vec<u8> = std::iter::repeat_n(0x81, 100).chain([0x00]).collect();
        assert_eq!(decode(&deep), None);
    }
}
