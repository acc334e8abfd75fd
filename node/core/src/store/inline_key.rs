//! The memory store's key: the bytes themselves, inside the B-tree node, when they are
//! short, as every key the core writes is (an envelope id is 16 bytes, the longest keys
//! office ‖ time ‖ id 34). A B-tree searches a node by comparing keys in turn; with boxed
//! keys each comparison first loads the key from elsewhere in memory, which at national
//! scale (tens of millions of keys) is a cache miss per comparison. Inline, a node's keys
//! are read in a row. Longer keys are boxed, as before; both compare and hash as their
//! bytes.

use std::borrow::Borrow;
use std::cmp::Ordering;
use std::fmt;
use std::hash::{Hash, Hasher};

/// Key bytes kept inline: with the length byte and the tag, a key is 32 bytes.
const INLINE: usize = 30;

/// A key that compares, hashes and borrows as its bytes.
#[derive(Clone)]
pub(crate) enum Key {
    Inline { len: u8, buf: [u8; INLINE] },
    Boxed(Box<[u8]>),
}

impl Key {
    pub(crate) fn as_slice(&self) -> &[u8] {
        match self {
            Key::Inline { len, buf } => &buf[..*len as usize],
            Key::Boxed(b) => b,
        }
    }
}

impl From<&[u8]> for Key {
    fn from(k: &[u8]) -> Self {
        if k.len() <= INLINE {
            let mut buf = [0u8; INLINE];
            buf[..k.len()].copy_from_slice(k);
            // In range: k.len() <= INLINE < 256.
            Key::Inline {
                len: k.len() as u8,
                buf,
            }
        } else {
            Key::Boxed(k.into())
        }
    }
}

impl Borrow<[u8]> for Key {
    fn borrow(&self) -> &[u8] {
        self.as_slice()
    }
}

impl PartialEq for Key {
    fn eq(&self, other: &Self) -> bool {
        self.as_slice() == other.as_slice()
    }
}

impl Eq for Key {}

impl PartialOrd for Key {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for Key {
    fn cmp(&self, other: &Self) -> Ordering {
        self.as_slice().cmp(other.as_slice())
    }
}

impl Hash for Key {
    fn hash<H: Hasher>(&self, h: &mut H) {
        // As the bytes hash, so that a map of keys can be asked with a byte slice.
        self.as_slice().hash(h);
    }
}

impl fmt::Debug for Key {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Key({:02x?})", self.as_slice())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;

    #[test]
    fn keys_order_as_their_bytes_whether_inline_or_boxed() {
        let long: Vec<u8> = (0..INLINE as u8 + 5).collect();
        let raw: Vec<Vec<u8>> = vec![
            vec![],
            vec![0],
            vec![0, 0],
            vec![1],
            long[..INLINE].to_vec(),
            long[..INLINE + 1].to_vec(),
            long.clone(),
            vec![0xff; INLINE],
            vec![0xff; INLINE + 1],
        ];
        let keys: Vec<Key> = raw.iter().map(|k| Key::from(&k[..])).collect();
        assert!(matches!(keys[4], Key::Inline { .. }));
        assert!(matches!(keys[5], Key::Boxed(_)));
        for (a, ka) in raw.iter().zip(&keys) {
            assert_eq!(ka.as_slice(), &a[..]);
            for (b, kb) in raw.iter().zip(&keys) {
                assert_eq!(ka.cmp(kb), a.cmp(b), "{a:?} vs {b:?}");
                assert_eq!(ka == kb, a == b);
            }
        }
        // A map of keys answers lookups and ranges by byte slices.
        let map: BTreeMap<Key, usize> = keys.iter().cloned().zip(0..).collect();
        assert_eq!(map.get(&long[..INLINE + 1]), Some(&5));
        assert_eq!(map.get(&[0u8, 0][..]), Some(&2));
        assert_eq!(map.get(&[2u8][..]), None);
        let from_one: Vec<usize> = map
            .range::<[u8], _>((
                std::ops::Bound::Included(&[1u8][..]),
                std::ops::Bound::Unbounded,
            ))
            .map(|(_, v)| *v)
            .collect();
        assert_eq!(from_one, [3, 7, 8]);
        assert_eq!(std::mem::size_of::<Key>(), 32);
    }
}
