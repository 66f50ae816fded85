//! The encoder: a serde `Serializer` that writes bincode 2's standard format (little
//! endian, variable-length integers) byte for byte, with one difference that makes digests
//! canonical: the entries of a `HashMap` and the elements of a `HashSet` (std's or
//! hashbrown's, whatever their hasher) are written sorted by their encoded bytes, instead
//! of in the map's iteration order, which differs from process to process. Equal maps
//! therefore encode, and hash, the same everywhere; the bytes are still plain bincode, so
//! any bincode reader (and [`super::de`]) decodes them.
//!
//! Hash collections are recognised by type name in `collect_map`/`collect_seq`, the
//! methods their `Serialize` impls call; a type of one's own that serializes a map in its
//! own order keeps it (a `BTreeMap`'s order is already the same in every process). Sorting
//! costs one buffer per entry, for hash collections only: `Vec`s, structs and `BTreeMap`s
//! take the direct path.
//!
//! Why not bincode's own encoder (which flowlib used before codec version 3): it cannot
//! be told to order a map, and a serializer that wraps it would have to forward every
//! method anyway.

use serde::ser::{self, Serialize};

use super::EncodeError;

/// Where encoded bytes go.
pub(crate) trait Out {
    fn put(&mut self, bytes: &[u8]) -> Result<(), EncodeError>;
}

impl Out for Vec<u8> {
    #[inline]
    fn put(&mut self, bytes: &[u8]) -> Result<(), EncodeError> {
        self.extend_from_slice(bytes);
        Ok(())
    }
}

/// A field writer behind a small staging buffer: the many tiny writes of an encoding are
/// a `Vec` append each, and the writer (its limit, its sink) sees 64 KiB at a time.
pub(crate) struct Staged<'w, 'a> {
    w: &'w mut super::FieldWriter<'a>,
    buf: Vec<u8>,
}

const STAGE: usize = 64 << 10;

impl<'w, 'a> Staged<'w, 'a> {
    pub(crate) fn new(w: &'w mut super::FieldWriter<'a>) -> Self {
        Staged {
            w,
            buf: Vec::with_capacity(STAGE),
        }
    }

    /// Hand what is staged to the writer.
    pub(crate) fn finish(mut self) -> Result<(), EncodeError> {
        self.w.write_raw(&self.buf)?;
        self.buf.clear();
        Ok(())
    }
}

impl Out for Staged<'_, '_> {
    #[inline]
    fn put(&mut self, bytes: &[u8]) -> Result<(), EncodeError> {
        if self.buf.len() + bytes.len() > STAGE {
            self.w.write_raw(&self.buf)?;
            self.buf.clear();
            if bytes.len() > STAGE {
                return self.w.write_raw(bytes);
            }
        }
        self.buf.extend_from_slice(bytes);
        Ok(())
    }
}

impl ser::Error for EncodeError {
    fn custom<T: std::fmt::Display>(msg: T) -> Self {
        EncodeError {
            message: msg.to_string(),
        }
    }
}

/// Encode `value` into `out`.
pub(crate) fn encode<T: Serialize + ?Sized, O: Out>(
    value: &T,
    out: &mut O,
) -> Result<(), EncodeError> {
    value.serialize(&mut Ser { out })
}

/// The serializer over an output.
pub(crate) struct Ser<'a, O: Out> {
    out: &'a mut O,
}

#[inline]
fn varint<O: Out>(out: &mut O, v: u64) -> Result<(), EncodeError> {
    if v < 251 {
        out.put(&[v as u8])
    } else if v <= u64::from(u16::MAX) {
        let b = (v as u16).to_le_bytes();
        out.put(&[251, b[0], b[1]])
    } else if v <= u64::from(u32::MAX) {
        let mut buf = [252u8; 5];
        buf[1..].copy_from_slice(&(v as u32).to_le_bytes());
        out.put(&buf)
    } else {
        let mut buf = [253u8; 9];
        buf[1..].copy_from_slice(&v.to_le_bytes());
        out.put(&buf)
    }
}

fn varint128<O: Out>(out: &mut O, v: u128) -> Result<(), EncodeError> {
    if let Ok(small) = u64::try_from(v) {
        return varint(out, small);
    }
    let mut buf = [254u8; 17];
    buf[1..].copy_from_slice(&v.to_le_bytes());
    out.put(&buf)
}

fn zigzag(v: i64) -> u64 {
    ((v << 1) ^ (v >> 63)) as u64
}

fn zigzag128(v: i128) -> u128 {
    ((v << 1) ^ (v >> 127)) as u128
}

/// Whether the collection type `I` (a collection by reference, or one of its iterators)
/// iterates in an order that differs between processes: std's and hashbrown's hash maps and
/// sets. A prefix compare, so the `Vec`s and `BTreeMap`s of a value cost next to nothing.
#[inline]
fn hash_ordered<I>() -> bool {
    let name = std::any::type_name::<I>();
    let name = name.trim_start_matches('&');
    let name = name.strip_prefix("mut ").unwrap_or(name);
    name.starts_with("std::collections::hash::") || name.starts_with("hashbrown::")
}

fn seq_len(len: Option<usize>) -> Result<usize, EncodeError> {
    len.ok_or_else(|| EncodeError {
        message: "a sequence must know its length to be encoded (bincode's format needs it)".into(),
    })
}

impl<'a, 'b, O: Out> ser::Serializer for &'a mut Ser<'b, O> {
    type Ok = ();
    type Error = EncodeError;
    type SerializeSeq = Self;
    type SerializeTuple = Self;
    type SerializeTupleStruct = Self;
    type SerializeTupleVariant = Self;
    type SerializeMap = Self;
    type SerializeStruct = Self;
    type SerializeStructVariant = Self;

    fn is_human_readable(&self) -> bool {
        false
    }

    fn serialize_bool(self, v: bool) -> Result<(), EncodeError> {
        self.out.put(&[u8::from(v)])
    }
    fn serialize_i8(self, v: i8) -> Result<(), EncodeError> {
        self.out.put(&[v as u8])
    }
    fn serialize_i16(self, v: i16) -> Result<(), EncodeError> {
        varint(self.out, zigzag(i64::from(v)))
    }
    fn serialize_i32(self, v: i32) -> Result<(), EncodeError> {
        varint(self.out, zigzag(i64::from(v)))
    }
    fn serialize_i64(self, v: i64) -> Result<(), EncodeError> {
        varint(self.out, zigzag(v))
    }
    fn serialize_i128(self, v: i128) -> Result<(), EncodeError> {
        varint128(self.out, zigzag128(v))
    }
    fn serialize_u8(self, v: u8) -> Result<(), EncodeError> {
        self.out.put(&[v])
    }
    fn serialize_u16(self, v: u16) -> Result<(), EncodeError> {
        varint(self.out, u64::from(v))
    }
    fn serialize_u32(self, v: u32) -> Result<(), EncodeError> {
        varint(self.out, u64::from(v))
    }
    fn serialize_u64(self, v: u64) -> Result<(), EncodeError> {
        varint(self.out, v)
    }
    fn serialize_u128(self, v: u128) -> Result<(), EncodeError> {
        varint128(self.out, v)
    }
    fn serialize_f32(self, v: f32) -> Result<(), EncodeError> {
        self.out.put(&v.to_le_bytes())
    }
    fn serialize_f64(self, v: f64) -> Result<(), EncodeError> {
        self.out.put(&v.to_le_bytes())
    }
    fn serialize_char(self, v: char) -> Result<(), EncodeError> {
        let mut buf = [0u8; 4];
        self.out.put(v.encode_utf8(&mut buf).as_bytes())
    }
    fn serialize_str(self, v: &str) -> Result<(), EncodeError> {
        varint(self.out, v.len() as u64)?;
        self.out.put(v.as_bytes())
    }
    fn serialize_bytes(self, v: &[u8]) -> Result<(), EncodeError> {
        varint(self.out, v.len() as u64)?;
        self.out.put(v)
    }
    fn serialize_none(self) -> Result<(), EncodeError> {
        self.out.put(&[0])
    }
    fn serialize_some<T: Serialize + ?Sized>(self, value: &T) -> Result<(), EncodeError> {
        self.out.put(&[1])?;
        value.serialize(self)
    }
    fn serialize_unit(self) -> Result<(), EncodeError> {
        Ok(())
    }
    fn serialize_unit_struct(self, _: &'static str) -> Result<(), EncodeError> {
        Ok(())
    }
    fn serialize_unit_variant(
        self,
        _: &'static str,
        index: u32,
        _: &'static str,
    ) -> Result<(), EncodeError> {
        varint(self.out, u64::from(index))
    }
    fn serialize_newtype_struct<T: Serialize + ?Sized>(
        self,
        _: &'static str,
        value: &T,
    ) -> Result<(), EncodeError> {
        value.serialize(self)
    }
    fn serialize_newtype_variant<T: Serialize + ?Sized>(
        self,
        _: &'static str,
        index: u32,
        _: &'static str,
        value: &T,
    ) -> Result<(), EncodeError> {
        varint(self.out, u64::from(index))?;
        value.serialize(self)
    }
    fn serialize_seq(self, len: Option<usize>) -> Result<Self, EncodeError> {
        varint(self.out, seq_len(len)? as u64)?;
        Ok(self)
    }
    fn serialize_tuple(self, _: usize) -> Result<Self, EncodeError> {
        Ok(self)
    }
    fn serialize_tuple_struct(self, _: &'static str, _: usize) -> Result<Self, EncodeError> {
        Ok(self)
    }
    fn serialize_tuple_variant(
        self,
        _: &'static str,
        index: u32,
        _: &'static str,
        _: usize,
    ) -> Result<Self, EncodeError> {
        varint(self.out, u64::from(index))?;
        Ok(self)
    }
    fn serialize_map(self, len: Option<usize>) -> Result<Self, EncodeError> {
        varint(self.out, seq_len(len)? as u64)?;
        Ok(self)
    }
    fn serialize_struct(self, _: &'static str, _: usize) -> Result<Self, EncodeError> {
        Ok(self)
    }
    fn serialize_struct_variant(
        self,
        _: &'static str,
        index: u32,
        _: &'static str,
        _: usize,
    ) -> Result<Self, EncodeError> {
        varint(self.out, u64::from(index))?;
        Ok(self)
    }

    fn collect_seq<I>(self, iter: I) -> Result<(), EncodeError>
    where
        I: IntoIterator,
        I::Item: Serialize,
    {
        let canonical = hash_ordered::<I>();
        let iter = iter.into_iter();
        if !canonical {
            let len = match iter.size_hint() {
                (lo, Some(hi)) if lo == hi => Some(lo),
                _ => None,
            };
            varint(self.out, seq_len(len)? as u64)?;
            for x in iter {
                x.serialize(&mut *self)?;
            }
            return Ok(());
        }
        // Every element into one buffer, then their spans sorted by their bytes: one
        // allocation for the lot, not one per element.
        let mut buf: Vec<u8> = Vec::new();
        let mut spans: Vec<(usize, usize)> = Vec::with_capacity(iter.size_hint().0);
        for x in iter {
            let start = buf.len();
            encode(&x, &mut buf)?;
            spans.push((start, buf.len()));
        }
        spans.sort_unstable_by(|a, b| buf[a.0..a.1].cmp(&buf[b.0..b.1]));
        varint(self.out, spans.len() as u64)?;
        for (a, b) in spans {
            self.out.put(&buf[a..b])?;
        }
        Ok(())
    }

    fn collect_map<K, V, I>(self, iter: I) -> Result<(), EncodeError>
    where
        K: Serialize,
        V: Serialize,
        I: IntoIterator<Item = (K, V)>,
    {
        let canonical = hash_ordered::<I>();
        let iter = iter.into_iter();
        if !canonical {
            let len = match iter.size_hint() {
                (lo, Some(hi)) if lo == hi => Some(lo),
                _ => None,
            };
            varint(self.out, seq_len(len)? as u64)?;
            for (k, v) in iter {
                k.serialize(&mut *self)?;
                v.serialize(&mut *self)?;
            }
            return Ok(());
        }
        // (key start, key end = value start, value end) of each entry in one buffer.
        let mut buf: Vec<u8> = Vec::new();
        let mut spans: Vec<(usize, usize, usize)> = Vec::with_capacity(iter.size_hint().0);
        for (k, v) in iter {
            let start = buf.len();
            encode(&k, &mut buf)?;
            let mid = buf.len();
            encode(&v, &mut buf)?;
            spans.push((start, mid, buf.len()));
        }
        spans.sort_unstable_by(|a, b| {
            buf[a.0..a.1]
                .cmp(&buf[b.0..b.1])
                .then_with(|| buf[a.1..a.2].cmp(&buf[b.1..b.2]))
        });
        varint(self.out, spans.len() as u64)?;
        for (a, _, c) in spans {
            self.out.put(&buf[a..c])?;
        }
        Ok(())
    }
}

macro_rules! compound {
    ($trait:ident, $method:ident) => {
        impl<O: Out> ser::$trait for &mut Ser<'_, O> {
            type Ok = ();
            type Error = EncodeError;
            fn $method<T: Serialize + ?Sized>(&mut self, value: &T) -> Result<(), EncodeError> {
                value.serialize(&mut **self)
            }
            fn end(self) -> Result<(), EncodeError> {
                Ok(())
            }
        }
    };
}

compound!(SerializeSeq, serialize_element);
compound!(SerializeTuple, serialize_element);
compound!(SerializeTupleStruct, serialize_field);
compound!(SerializeTupleVariant, serialize_field);

impl<O: Out> ser::SerializeMap for &mut Ser<'_, O> {
    type Ok = ();
    type Error = EncodeError;
    fn serialize_key<T: Serialize + ?Sized>(&mut self, key: &T) -> Result<(), EncodeError> {
        key.serialize(&mut **self)
    }
    fn serialize_value<T: Serialize + ?Sized>(&mut self, value: &T) -> Result<(), EncodeError> {
        value.serialize(&mut **self)
    }
    fn end(self) -> Result<(), EncodeError> {
        Ok(())
    }
}

impl<O: Out> ser::SerializeStruct for &mut Ser<'_, O> {
    type Ok = ();
    type Error = EncodeError;
    fn serialize_field<T: Serialize + ?Sized>(
        &mut self,
        _: &'static str,
        value: &T,
    ) -> Result<(), EncodeError> {
        value.serialize(&mut **self)
    }
    fn end(self) -> Result<(), EncodeError> {
        Ok(())
    }
}

impl<O: Out> ser::SerializeStructVariant for &mut Ser<'_, O> {
    type Ok = ();
    type Error = EncodeError;
    fn serialize_field<T: Serialize + ?Sized>(
        &mut self,
        _: &'static str,
        value: &T,
    ) -> Result<(), EncodeError> {
        value.serialize(&mut **self)
    }
    fn end(self) -> Result<(), EncodeError> {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};

    use serde::Serialize;

    fn ours<T: Serialize>(v: &T) -> Vec<u8> {
        let mut out = Vec::new();
        super::encode(v, &mut out).unwrap();
        out
    }

    fn theirs<T: Serialize>(v: &T) -> Vec<u8> {
        bincode::serde::encode_to_vec(v, bincode::config::standard()).unwrap()
    }

    #[derive(Serialize)]
    enum E {
        Unit,
        New(i64),
        Tup(u8, String),
        Rec { a: Option<u32>, b: Vec<char> },
    }

    #[derive(Serialize)]
    struct S {
        a: u8,
        b: i16,
        c: u128,
        d: i128,
        e: f32,
        f: f64,
        g: String,
        h: Vec<E>,
        i: BTreeMap<String, (u16, bool)>,
        j: Option<Box<S>>,
        k: (),
        l: [u64; 3],
        m: BTreeSet<i32>,
    }

    #[test]
    fn everything_but_hash_collections_is_bincode_byte_for_byte() {
        let edges: Vec<u64> = vec![
            0,
            250,
            251,
            65_535,
            65_536,
            u64::from(u32::MAX),
            u64::from(u32::MAX) + 1,
            u64::MAX,
        ];
        assert_eq!(ours(&edges), theirs(&edges));
        let signed: Vec<i64> = vec![0, -1, 1, -126, 125, -32_769, i64::MIN, i64::MAX];
        assert_eq!(ours(&signed), theirs(&signed));
        let inner = S {
            a: 255,
            b: -300,
            c: u128::MAX,
            d: i128::MIN,
            e: 1.5,
            f: -0.0,
            g: "héllo".into(),
            h: vec![],
            i: BTreeMap::new(),
            j: None,
            k: (),
            l: [1, 300, 70_000],
            m: [-5, 5].into_iter().collect(),
        };
        let s = S {
            h: vec![
                E::Unit,
                E::New(-7),
                E::Tup(3, "x".into()),
                E::Rec {
                    a: Some(1 << 20),
                    b: vec!['a', 'é', '😀'],
                },
            ],
            i: [("k".to_string(), (9, true)), ("a".into(), (70, false))]
                .into_iter()
                .collect(),
            j: Some(Box::new(inner)),
            ..S {
                a: 0,
                b: 0,
                c: 5,
                d: -5,
                e: 0.0,
                f: 2.0,
                g: String::new(),
                h: vec![],
                i: BTreeMap::new(),
                j: None,
                k: (),
                l: [0; 3],
                m: BTreeSet::new(),
            }
        };
        assert_eq!(ours(&s), theirs(&s));
        let bytes = serde_bytes_like();
        assert_eq!(ours(&bytes), theirs(&bytes));
    }

    fn serde_bytes_like() -> Vec<Vec<u8>> {
        vec![vec![1, 2, 3], vec![], vec![0; 300]]
    }

    #[test]
    fn equal_hash_maps_and_sets_encode_the_same_whatever_their_order() {
        let keys: Vec<String> = (0..200).map(|i| format!("key-{i}")).collect();
        let mut a: HashMap<String, Vec<u32>> = HashMap::new();
        for (i, k) in keys.iter().enumerate() {
            a.insert(k.clone(), vec![i as u32; i % 3]);
        }
        let mut b: HashMap<String, Vec<u32>> = HashMap::with_capacity(1000);
        for (i, k) in keys.iter().enumerate().rev() {
            b.insert(k.clone(), vec![i as u32; i % 3]);
        }
        assert_ne!(
            a.keys().collect::<Vec<_>>(),
            b.keys().collect::<Vec<_>>(),
            "the two maps iterate differently (else this test proves nothing)"
        );
        assert_eq!(ours(&a), ours(&b));
        let sa: HashSet<u64> = (0..500).collect();
        let sb: HashSet<u64> = (0..500).rev().collect();
        assert_eq!(ours(&sa), ours(&sb));
        // Nested: a map of sets inside a struct inside a Vec.
        #[derive(Serialize)]
        struct N {
            m: HashMap<u8, HashSet<String>>,
        }
        let n = |rev: bool| {
            let mut m = HashMap::new();
            for i in 0..20u8 {
                let mut s: Vec<String> = (0..10).map(|j| format!("{i}.{j}")).collect();
                if rev {
                    s.reverse();
                }
                m.insert(i, s.into_iter().collect());
            }
            vec![N { m }]
        };
        assert_eq!(ours(&n(false)), ours(&n(true)));
        // Still bincode: it decodes with bincode as the same map.
        let (back, _): (HashMap<String, Vec<u32>>, usize) =
            bincode::serde::decode_from_slice(&ours(&a), bincode::config::standard()).unwrap();
        assert_eq!(back, a);
    }
}
