//! A direct serde serializer for stored records: ciborium's bytes, written straight into a
//! `Vec<u8>`.
//!
//! ciborium goes through its low-level encoder for every item (a header value converted to
//! a title, then written through an I/O trait), which made it a tenth of the simulation
//! thread at national scale: a record holds 32-byte digests, which serde writes as arrays
//! of 32 integers. This writer gives the same bytes (every record's format is ciborium's,
//! and audit hashes are taken over them) for what records use: integers up to 64 bits,
//! booleans, text and byte strings, options, unit and enum variants, sequences, tuples,
//! maps and structs. Anything else (floats, 128-bit integers, ciborium's tag wrapper)
//! answers [`Unsupported`]: no record holds one. It is the one writer of records; tests
//! compare it with ciborium byte for byte.

use serde::ser::{self, Serialize};

/// What this writer does not write (no record holds it).
#[derive(Debug, thiserror::Error)]
#[error("not written directly: {0}")]
pub struct Unsupported(String);

impl ser::Error for Unsupported {
    fn custom<T: std::fmt::Display>(msg: T) -> Self {
        Unsupported(msg.to_string())
    }
}

/// Writes `value` as ciborium would, appending to `out`.
pub fn write<T: Serialize + ?Sized>(value: &T, out: &mut Vec<u8>) -> Result<(), Unsupported> {
    value.serialize(&mut Writer(out))
}

struct Writer<'a>(&'a mut Vec<u8>);

const ARRAY: u8 = 4 << 5;
const MAP: u8 = 5 << 5;

impl Writer<'_> {
    /// A header with the shortest argument (what ciborium writes).
    #[inline]
    fn head(&mut self, major: u8, n: u64) {
        let out = &mut *self.0;
        if n < 24 {
            out.push(major | n as u8);
        } else if n <= u64::from(u8::MAX) {
            out.extend_from_slice(&[major | 24, n as u8]);
        } else if n <= u64::from(u16::MAX) {
            out.push(major | 25);
            out.extend_from_slice(&(n as u16).to_be_bytes());
        } else if n <= u64::from(u32::MAX) {
            out.push(major | 26);
            out.extend_from_slice(&(n as u32).to_be_bytes());
        } else {
            out.push(major | 27);
            out.extend_from_slice(&n.to_be_bytes());
        }
    }

    #[inline]
    fn text(&mut self, s: &str) {
        self.head(3 << 5, s.len() as u64);
        self.0.extend_from_slice(s.as_bytes());
    }

    /// ciborium's wrapper for an enum variant with content: a one-entry map from the
    /// variant's name.
    fn variant(&mut self, variant: &str) {
        self.head(MAP, 1);
        self.text(variant);
    }
}

/// An array or map: definite when the length is known, else indefinite (closed by a break
/// in `end`).
fn open<'a, 'b>(w: &'a mut Writer<'b>, major: u8, len: Option<usize>) -> Coll<'a, 'b> {
    match len {
        Some(n) => w.head(major, n as u64),
        None => w.0.push(major | 31),
    }
    Coll {
        w,
        indefinite: len.is_none(),
    }
}

/// The tag wrapper ciborium recognises by these names (records never use it).
fn is_tag_wrapper(name: &str) -> bool {
    name == "@@TAG@@"
}

impl<'a, 'b> ser::Serializer for &'a mut Writer<'b> {
    type Ok = ();
    type Error = Unsupported;
    type SerializeSeq = Coll<'a, 'b>;
    type SerializeTuple = Coll<'a, 'b>;
    type SerializeTupleStruct = Coll<'a, 'b>;
    type SerializeTupleVariant = Coll<'a, 'b>;
    type SerializeMap = Coll<'a, 'b>;
    type SerializeStruct = Coll<'a, 'b>;
    type SerializeStructVariant = Coll<'a, 'b>;

    fn serialize_bool(self, v: bool) -> Result<(), Unsupported> {
        self.0.push(if v { 0xf5 } else { 0xf4 });
        Ok(())
    }
    fn serialize_i8(self, v: i8) -> Result<(), Unsupported> {
        self.serialize_i64(v.into())
    }
    fn serialize_i16(self, v: i16) -> Result<(), Unsupported> {
        self.serialize_i64(v.into())
    }
    fn serialize_i32(self, v: i32) -> Result<(), Unsupported> {
        self.serialize_i64(v.into())
    }
    fn serialize_i64(self, v: i64) -> Result<(), Unsupported> {
        if v < 0 {
            self.head(1 << 5, (v as u64) ^ !0);
        } else {
            self.head(0, v as u64);
        }
        Ok(())
    }
    fn serialize_u8(self, v: u8) -> Result<(), Unsupported> {
        self.head(0, v.into());
        Ok(())
    }
    fn serialize_u16(self, v: u16) -> Result<(), Unsupported> {
        self.head(0, v.into());
        Ok(())
    }
    fn serialize_u32(self, v: u32) -> Result<(), Unsupported> {
        self.head(0, v.into());
        Ok(())
    }
    fn serialize_u64(self, v: u64) -> Result<(), Unsupported> {
        self.head(0, v);
        Ok(())
    }
    fn serialize_f32(self, _: f32) -> Result<(), Unsupported> {
        Err(Unsupported("a float".into()))
    }
    fn serialize_f64(self, _: f64) -> Result<(), Unsupported> {
        Err(Unsupported("a float".into()))
    }
    fn serialize_char(self, v: char) -> Result<(), Unsupported> {
        self.text(v.encode_utf8(&mut [0; 4]));
        Ok(())
    }
    fn serialize_str(self, v: &str) -> Result<(), Unsupported> {
        self.text(v);
        Ok(())
    }
    fn serialize_bytes(self, v: &[u8]) -> Result<(), Unsupported> {
        self.head(2 << 5, v.len() as u64);
        self.0.extend_from_slice(v);
        Ok(())
    }
    fn serialize_none(self) -> Result<(), Unsupported> {
        self.0.push(0xf6);
        Ok(())
    }
    fn serialize_some<T: Serialize + ?Sized>(self, value: &T) -> Result<(), Unsupported> {
        value.serialize(self)
    }
    fn serialize_unit(self) -> Result<(), Unsupported> {
        self.serialize_none()
    }
    fn serialize_unit_struct(self, _: &'static str) -> Result<(), Unsupported> {
        self.serialize_none()
    }
    fn serialize_unit_variant(
        self,
        _: &'static str,
        _: u32,
        variant: &'static str,
    ) -> Result<(), Unsupported> {
        self.text(variant);
        Ok(())
    }
    fn serialize_newtype_struct<T: Serialize + ?Sized>(
        self,
        _: &'static str,
        value: &T,
    ) -> Result<(), Unsupported> {
        value.serialize(self)
    }
    fn serialize_newtype_variant<T: Serialize + ?Sized>(
        self,
        name: &'static str,
        _: u32,
        variant: &'static str,
        value: &T,
    ) -> Result<(), Unsupported> {
        if is_tag_wrapper(name) {
            return Err(Unsupported("a CBOR tag".into()));
        }
        self.variant(variant);
        value.serialize(self)
    }
    fn serialize_seq(self, len: Option<usize>) -> Result<Coll<'a, 'b>, Unsupported> {
        Ok(open(self, ARRAY, len))
    }
    fn serialize_tuple(self, len: usize) -> Result<Coll<'a, 'b>, Unsupported> {
        Ok(open(self, ARRAY, Some(len)))
    }
    fn serialize_tuple_struct(
        self,
        _: &'static str,
        len: usize,
    ) -> Result<Coll<'a, 'b>, Unsupported> {
        Ok(open(self, ARRAY, Some(len)))
    }
    fn serialize_tuple_variant(
        self,
        name: &'static str,
        _: u32,
        variant: &'static str,
        len: usize,
    ) -> Result<Coll<'a, 'b>, Unsupported> {
        if is_tag_wrapper(name) {
            return Err(Unsupported("a CBOR tag".into()));
        }
        self.variant(variant);
        Ok(open(self, ARRAY, Some(len)))
    }
    fn serialize_map(self, len: Option<usize>) -> Result<Coll<'a, 'b>, Unsupported> {
        Ok(open(self, MAP, len))
    }
    fn serialize_struct(self, _: &'static str, len: usize) -> Result<Coll<'a, 'b>, Unsupported> {
        Ok(open(self, MAP, Some(len)))
    }
    fn serialize_struct_variant(
        self,
        _: &'static str,
        _: u32,
        variant: &'static str,
        len: usize,
    ) -> Result<Coll<'a, 'b>, Unsupported> {
        self.variant(variant);
        Ok(open(self, MAP, Some(len)))
    }
    fn is_human_readable(&self) -> bool {
        false
    }
}

/// An open array or map.
pub struct Coll<'a, 'b> {
    w: &'a mut Writer<'b>,
    indefinite: bool,
}

impl Coll<'_, '_> {
    fn item<T: Serialize + ?Sized>(&mut self, value: &T) -> Result<(), Unsupported> {
        value.serialize(&mut *self.w)
    }
    fn close(self) -> Result<(), Unsupported> {
        if self.indefinite {
            self.w.0.push(0xff);
        }
        Ok(())
    }
}

impl ser::SerializeSeq for Coll<'_, '_> {
    type Ok = ();
    type Error = Unsupported;
    fn serialize_element<T: Serialize + ?Sized>(&mut self, value: &T) -> Result<(), Unsupported> {
        self.item(value)
    }
    fn end(self) -> Result<(), Unsupported> {
        self.close()
    }
}

impl ser::SerializeTuple for Coll<'_, '_> {
    type Ok = ();
    type Error = Unsupported;
    fn serialize_element<T: Serialize + ?Sized>(&mut self, value: &T) -> Result<(), Unsupported> {
        self.item(value)
    }
    fn end(self) -> Result<(), Unsupported> {
        self.close()
    }
}

impl ser::SerializeTupleStruct for Coll<'_, '_> {
    type Ok = ();
    type Error = Unsupported;
    fn serialize_field<T: Serialize + ?Sized>(&mut self, value: &T) -> Result<(), Unsupported> {
        self.item(value)
    }
    fn end(self) -> Result<(), Unsupported> {
        self.close()
    }
}

impl ser::SerializeTupleVariant for Coll<'_, '_> {
    type Ok = ();
    type Error = Unsupported;
    fn serialize_field<T: Serialize + ?Sized>(&mut self, value: &T) -> Result<(), Unsupported> {
        self.item(value)
    }
    fn end(self) -> Result<(), Unsupported> {
        self.close()
    }
}

impl ser::SerializeMap for Coll<'_, '_> {
    type Ok = ();
    type Error = Unsupported;
    fn serialize_key<T: Serialize + ?Sized>(&mut self, key: &T) -> Result<(), Unsupported> {
        self.item(key)
    }
    fn serialize_value<T: Serialize + ?Sized>(&mut self, value: &T) -> Result<(), Unsupported> {
        self.item(value)
    }
    fn end(self) -> Result<(), Unsupported> {
        self.close()
    }
}

impl ser::SerializeStruct for Coll<'_, '_> {
    type Ok = ();
    type Error = Unsupported;
    fn serialize_field<T: Serialize + ?Sized>(
        &mut self,
        key: &'static str,
        value: &T,
    ) -> Result<(), Unsupported> {
        self.w.text(key);
        self.item(value)
    }
    fn end(self) -> Result<(), Unsupported> {
        self.close()
    }
}

impl ser::SerializeStructVariant for Coll<'_, '_> {
    type Ok = ();
    type Error = Unsupported;
    fn serialize_field<T: Serialize + ?Sized>(
        &mut self,
        key: &'static str,
        value: &T,
    ) -> Result<(), Unsupported> {
        self.w.text(key);
        self.item(value)
    }
    fn end(self) -> Result<(), Unsupported> {
        self.close()
    }
}
