//! The serde deserializer for stored records, the reading half of [`super::writer`]: the
//! one reader of records (ciborium, whose format it reads, is only the oracle its tests
//! compare it with).
//!
//! It reads the CBOR that records are written in (integers up to 64 bits, booleans, null,
//! text and byte strings, arrays and maps, definite or indefinite) straight from the
//! stored bytes, borrowing strings instead of copying them through ciborium's scratch
//! buffer. It answers `None` for anything else — a tag, a float, bytes left over, a value
//! the record type refuses — and [`super::decode`] then asks ciborium, whose answer (the
//! value, or the error naming what is wrong with a corrupt record) is the one given. So a
//! record reads the same either way; tests check that both agree on every record type and
//! on damaged records.

use serde::de::{self, DeserializeOwned, Visitor};

/// Reads one record value that takes all of `bytes`, or says what is wrong with them.
pub fn read<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, Miss> {
    let mut r = Reader { b: bytes, depth: 0 };
    let v = T::deserialize(&mut r)?;
    if !r.b.is_empty() {
        return Err(Miss(format!("{} byte(s) left after the record", r.b.len())));
    }
    Ok(v)
}

/// What is wrong with a stored record's bytes (a damaged record, or a kind of item records
/// never hold).
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct Miss(String);

impl de::Error for Miss {
    fn custom<T: std::fmt::Display>(msg: T) -> Self {
        Miss(msg.to_string())
    }
}

fn miss<T>(what: &str) -> Result<T, Miss> {
    Err(Miss(what.into()))
}

/// ciborium's recursion limit.
const DEPTH_MAX: u32 = 256;

struct Reader<'de> {
    b: &'de [u8],
    depth: u32,
}

/// A header: major type and its argument (`None`: indefinite length).
struct Head {
    major: u8,
    arg: Option<u64>,
}

impl<'de> Reader<'de> {
    fn peek(&self) -> Result<u8, Miss> {
        self.b
            .first()
            .copied()
            .ok_or_else(|| Miss("end of input".into()))
    }

    fn take(&mut self, n: usize) -> Result<&'de [u8], Miss> {
        if self.b.len() < n {
            return miss("end of input");
        }
        let (a, rest) = self.b.split_at(n);
        self.b = rest;
        Ok(a)
    }

    fn head(&mut self) -> Result<Head, Miss> {
        let first = self.take(1)?[0];
        let (major, info) = (first >> 5, first & 0x1f);
        let arg = match info {
            0..=23 => Some(u64::from(info)),
            24 => Some(u64::from(self.take(1)?[0])),
            25 => Some(u64::from(u16::from_be_bytes(
                self.take(2)?.try_into().map_err(|_| Miss("u16".into()))?,
            ))),
            26 => Some(u64::from(u32::from_be_bytes(
                self.take(4)?.try_into().map_err(|_| Miss("u32".into()))?,
            ))),
            27 => Some(u64::from_be_bytes(
                self.take(8)?.try_into().map_err(|_| Miss("u64".into()))?,
            )),
            31 if (2..=5).contains(&major) => None,
            _ => return miss("reserved or indefinite header"),
        };
        Ok(Head { major, arg })
    }

    fn len(arg: u64) -> Result<usize, Miss> {
        usize::try_from(arg).map_err(|_| Miss("length".into()))
    }

    fn enter(&mut self) -> Result<(), Miss> {
        self.depth += 1;
        if self.depth > DEPTH_MAX {
            return miss("too deep");
        }
        Ok(())
    }

    /// At a break (0xff) closing an indefinite array or map: consumes it.
    fn at_break(&mut self) -> Result<bool, Miss> {
        if self.peek()? == 0xff {
            self.b = &self.b[1..];
            return Ok(true);
        }
        Ok(false)
    }
}

impl<'de> de::Deserializer<'de> for &mut Reader<'de> {
    type Error = Miss;

    fn deserialize_any<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Miss> {
        let first = self.peek()?;
        match first {
            0xf4 => {
                self.b = &self.b[1..];
                return visitor.visit_bool(false);
            }
            0xf5 => {
                self.b = &self.b[1..];
                return visitor.visit_bool(true);
            }
            0xf6 => {
                self.b = &self.b[1..];
                return visitor.visit_none();
            }
            _ => {}
        }
        let h = self.head()?;
        match (h.major, h.arg) {
            (0, Some(n)) => visitor.visit_u64(n),
            (1, Some(n)) => match i64::try_from(n) {
                Ok(n) => visitor.visit_i64(-1 - n),
                Err(_) => miss("negative integer beyond i64"),
            },
            (2, Some(n)) => {
                let b = self.take(Reader::len(n)?)?;
                visitor.visit_borrowed_bytes(b)
            }
            (3, Some(n)) => {
                let b = self.take(Reader::len(n)?)?;
                match std::str::from_utf8(b) {
                    Ok(s) => visitor.visit_borrowed_str(s),
                    Err(_) => miss("text not UTF-8"),
                }
            }
            (4, len) => {
                self.enter()?;
                let len = len.map(Reader::len).transpose()?;
                let v = visitor.visit_seq(Items { r: self, left: len })?;
                self.depth -= 1;
                Ok(v)
            }
            (5, len) => {
                self.enter()?;
                let len = len.map(Reader::len).transpose()?;
                let v = visitor.visit_map(Items { r: self, left: len })?;
                self.depth -= 1;
                Ok(v)
            }
            _ => miss("tag, float, simple value or indefinite string"),
        }
    }

    fn deserialize_option<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Miss> {
        match self.peek()? {
            0xf6 | 0xf7 => {
                self.b = &self.b[1..];
                visitor.visit_none()
            }
            _ => visitor.visit_some(self),
        }
    }

    fn deserialize_unit<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Miss> {
        match self.peek()? {
            0xf6 | 0xf7 => {
                self.b = &self.b[1..];
                visitor.visit_unit()
            }
            _ => miss("unit"),
        }
    }

    fn deserialize_unit_struct<V: Visitor<'de>>(
        self,
        _: &'static str,
        visitor: V,
    ) -> Result<V::Value, Miss> {
        self.deserialize_unit(visitor)
    }

    fn deserialize_newtype_struct<V: Visitor<'de>>(
        self,
        _: &'static str,
        visitor: V,
    ) -> Result<V::Value, Miss> {
        visitor.visit_newtype_struct(self)
    }

    fn deserialize_enum<V: Visitor<'de>>(
        self,
        _: &'static str,
        _: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, Miss> {
        match self.peek()? >> 5 {
            // A unit variant: its name.
            3 => visitor.visit_enum(de::value::BorrowedStrDeserializer::<Miss>::new(
                self.name()?,
            )),
            // A variant with content: a one-entry map from its name.
            5 => {
                let h = self.head()?;
                if h.arg != Some(1) {
                    return miss("enum map of one entry");
                }
                self.enter()?;
                let v = visitor.visit_enum(Variant { r: self })?;
                self.depth -= 1;
                Ok(v)
            }
            _ => miss("enum"),
        }
    }

    fn is_human_readable(&self) -> bool {
        false
    }

    // Each hint takes what ciborium's takes for it (and leaves the rest to ciborium), so
    // that a value is never read here where ciborium would refuse it.
    fn deserialize_bool<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Miss> {
        match self.peek()? {
            0xf4 | 0xf5 => self.deserialize_any(visitor),
            _ => miss("bool"),
        }
    }

    fn deserialize_str<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Miss> {
        self.only(&[3], visitor)
    }
    fn deserialize_string<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Miss> {
        self.only(&[3], visitor)
    }
    fn deserialize_char<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Miss> {
        self.only(&[3], visitor)
    }
    fn deserialize_bytes<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Miss> {
        self.only(&[2, 4], visitor)
    }
    fn deserialize_byte_buf<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Miss> {
        self.only(&[2, 4], visitor)
    }
    fn deserialize_seq<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Miss> {
        self.only(&[4], visitor)
    }
    fn deserialize_tuple<V: Visitor<'de>>(self, _: usize, visitor: V) -> Result<V::Value, Miss> {
        self.only(&[4], visitor)
    }
    fn deserialize_tuple_struct<V: Visitor<'de>>(
        self,
        _: &'static str,
        _: usize,
        visitor: V,
    ) -> Result<V::Value, Miss> {
        self.only(&[4], visitor)
    }
    fn deserialize_map<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Miss> {
        self.only(&[5], visitor)
    }
    fn deserialize_struct<V: Visitor<'de>>(
        self,
        _: &'static str,
        _: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, Miss> {
        self.only(&[5], visitor)
    }
    fn deserialize_identifier<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Miss> {
        self.only(&[2, 3], visitor)
    }

    serde::forward_to_deserialize_any! { ignored_any }

    fn deserialize_i8<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Miss> {
        self.only(&[0, 1], visitor)
    }
    fn deserialize_i16<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Miss> {
        self.only(&[0, 1], visitor)
    }
    fn deserialize_i32<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Miss> {
        self.only(&[0, 1], visitor)
    }
    fn deserialize_i64<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Miss> {
        self.only(&[0, 1], visitor)
    }
    fn deserialize_u8<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Miss> {
        self.only(&[0, 1], visitor)
    }
    fn deserialize_u16<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Miss> {
        self.only(&[0, 1], visitor)
    }
    fn deserialize_u32<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Miss> {
        self.only(&[0, 1], visitor)
    }
    fn deserialize_u64<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Miss> {
        self.only(&[0, 1], visitor)
    }

    fn deserialize_i128<V: Visitor<'de>>(self, _: V) -> Result<V::Value, Miss> {
        miss("i128")
    }
    fn deserialize_u128<V: Visitor<'de>>(self, _: V) -> Result<V::Value, Miss> {
        miss("u128")
    }
    fn deserialize_f32<V: Visitor<'de>>(self, _: V) -> Result<V::Value, Miss> {
        miss("float")
    }
    fn deserialize_f64<V: Visitor<'de>>(self, _: V) -> Result<V::Value, Miss> {
        miss("float")
    }
}

impl<'de> Reader<'de> {
    /// Reads the next value as `deserialize_any` does if its major type is one of `majors`.
    fn only<V: Visitor<'de>>(&mut self, majors: &[u8], visitor: V) -> Result<V::Value, Miss> {
        if majors.contains(&(self.peek()? >> 5)) {
            de::Deserializer::deserialize_any(self, visitor)
        } else {
            miss("another type than the record's")
        }
    }

    /// A text string (an enum variant's name).
    fn name(&mut self) -> Result<&'de str, Miss> {
        let h = self.head()?;
        match (h.major, h.arg) {
            (3, Some(n)) => {
                let b = self.take(Reader::len(n)?)?;
                std::str::from_utf8(b).map_err(|_| Miss("text not UTF-8".into()))
            }
            _ => miss("variant name"),
        }
    }
}

/// The items of an array or the entries of a map.
struct Items<'a, 'de> {
    r: &'a mut Reader<'de>,
    /// Left to read; `None` for indefinite length (until a break).
    left: Option<usize>,
}

impl Items<'_, '_> {
    fn more(&mut self) -> Result<bool, Miss> {
        match &mut self.left {
            Some(0) => Ok(false),
            Some(n) => {
                *n -= 1;
                Ok(true)
            }
            None => Ok(!self.r.at_break()?),
        }
    }
}

impl<'de> de::SeqAccess<'de> for Items<'_, 'de> {
    type Error = Miss;
    fn next_element_seed<T: de::DeserializeSeed<'de>>(
        &mut self,
        seed: T,
    ) -> Result<Option<T::Value>, Miss> {
        if !self.more()? {
            return Ok(None);
        }
        seed.deserialize(&mut *self.r).map(Some)
    }
    fn size_hint(&self) -> Option<usize> {
        self.left
    }
}

impl<'de> de::MapAccess<'de> for Items<'_, 'de> {
    type Error = Miss;
    fn next_key_seed<K: de::DeserializeSeed<'de>>(
        &mut self,
        seed: K,
    ) -> Result<Option<K::Value>, Miss> {
        if !self.more()? {
            return Ok(None);
        }
        seed.deserialize(&mut *self.r).map(Some)
    }
    fn next_value_seed<V: de::DeserializeSeed<'de>>(&mut self, seed: V) -> Result<V::Value, Miss> {
        seed.deserialize(&mut *self.r)
    }
    fn size_hint(&self) -> Option<usize> {
        self.left
    }
}

/// A variant with content: the name, then the content.
struct Variant<'a, 'de> {
    r: &'a mut Reader<'de>,
}

impl<'de> de::EnumAccess<'de> for Variant<'_, 'de> {
    type Error = Miss;
    type Variant = Self;
    fn variant_seed<V: de::DeserializeSeed<'de>>(self, seed: V) -> Result<(V::Value, Self), Miss> {
        let name = self.r.name()?;
        let v = seed.deserialize(de::value::BorrowedStrDeserializer::<Miss>::new(name))?;
        Ok((v, self))
    }
}

impl<'de> de::VariantAccess<'de> for Variant<'_, 'de> {
    type Error = Miss;
    fn unit_variant(self) -> Result<(), Miss> {
        miss("unit variant written as a map")
    }
    fn newtype_variant_seed<T: de::DeserializeSeed<'de>>(self, seed: T) -> Result<T::Value, Miss> {
        seed.deserialize(&mut *self.r)
    }
    fn tuple_variant<V: Visitor<'de>>(self, _: usize, visitor: V) -> Result<V::Value, Miss> {
        de::Deserializer::deserialize_any(&mut *self.r, visitor)
    }
    fn struct_variant<V: Visitor<'de>>(
        self,
        _: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, Miss> {
        de::Deserializer::deserialize_any(&mut *self.r, visitor)
    }
}
