//! Bounded decoder for the wire format of `bincode` 2 with `config::standard()`.
//!
//! Encoding stays with bincode (`bincode::serde::encode_to_vec` / `encode_into_writer`
//! with `config::standard()`); this module reads exactly that format back and produces
//! the same values bincode's own serde decoder would. The difference is that every
//! length prefix is checked against the bytes the [`Source`] still holds *before*
//! anything is allocated: bincode itself does `vec![0u8; len]` with `len` taken from the
//! input, so one corrupted length prefix can abort the process on allocation.
//!
//! The format (little endian, variable-length integers), as written by bincode 2.0.1:
//! - `u8`/`i8` are one raw byte; `bool` is one byte, `0` or `1`.
//! - Wider integers are varints: a first byte `< 251` is the value; `251`, `252`, `253`,
//!   `254` are followed by a little-endian `u16`, `u32`, `u64`, `u128`. A marker wider
//!   than the target type is an error (a `u16` with marker `252`); `255` is always one.
//!   Non-canonical forms (`251 5 0` for `5`) are accepted, as bincode does.
//! - Signed integers are zigzag-encoded (`0, -1, 1, -2, …` → `0, 1, 2, 3, …`), then varints.
//! - `f32`/`f64` are little-endian IEEE bits; `char` is its UTF-8 bytes, no length prefix.
//! - Strings and byte buffers: varint `u64` length, then the bytes.
//! - `Option`: tag byte `0` (None) or `1` (Some, then the value).
//! - Sequences and maps: varint length, then the elements (keys and values interleaved).
//!   Tuples, arrays, tuple structs and structs: the elements only, in order.
//! - Enums: the variant index as a varint `u32`, then the variant's content.
//! - Unit, unit structs: nothing. Newtype structs: the inner value.
//!
//! Like bincode, the format is not self-describing: `deserialize_any` (untagged,
//! internally tagged and flattened serde types), `deserialize_ignored_any` and
//! `deserialize_identifier` are not supported. Decoding is owned only: borrowed `&str`
//! and `&[u8]` cannot be produced.
//!
//! Allocation bounds: strings and byte buffers allocate exactly their length, and only
//! after it was checked against [`Source::remaining`]. Sequence and map lengths are
//! checked the same way (every element takes at least one byte), and serde's collection
//! visitors cap their preallocation, so memory stays linear in the input size.

use serde::de::{self, DeserializeOwned, DeserializeSeed, Visitor};

/// Deepest nesting of options, newtypes, sequences, tuples, structs, maps and enums that
/// [`Deserializer`] follows before failing with [`DecodeError::TooDeep`]. Keeps a crafted
/// input from overflowing the stack through a recursive type.
pub(crate) const MAX_DEPTH: u32 = 256;

/// Largest integer that is its own one-byte varint.
const SINGLE_BYTE_MAX: u8 = 250;
/// Varint marker: a little-endian `u16` follows.
const U16_MARKER: u8 = 251;
/// Varint marker: a little-endian `u32` follows.
const U32_MARKER: u8 = 252;
/// Varint marker: a little-endian `u64` follows.
const U64_MARKER: u8 = 253;
/// Varint marker: a little-endian `u128` follows.
const U128_MARKER: u8 = 254;

/// Bytes read per step by the bulk float paths; a multiple of 4 and 8.
const BULK_CHUNK: usize = 64 * 1024;

/// Why a blob could not be decoded.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[non_exhaustive]
pub enum DecodeError {
    /// The input ended before the value was complete.
    #[error("unexpected end of input")]
    UnexpectedEnd,
    /// A length prefix claims more than the input still holds.
    #[error("length {len} exceeds the {remaining} bytes left in the input")]
    LengthTooLarge {
        /// The claimed length: bytes for strings, byte buffers and the bulk vectors,
        /// elements for sequences and maps.
        len: u64,
        /// Bytes left in the input when the prefix was read.
        remaining: u64,
    },
    /// A `bool` byte other than 0 or 1.
    #[error("invalid bool byte {0}")]
    InvalidBool(u8),
    /// An `Option` tag other than 0 or 1.
    #[error("invalid option tag {0}")]
    InvalidOptionTag(u8),
    /// A string is not valid UTF-8.
    #[error("string is not valid UTF-8")]
    InvalidUtf8,
    /// A `char` is not one valid UTF-8 sequence. Holds the bytes read, first byte in the
    /// most significant position (`0xeda08000` for the surrogate `ED A0 80`).
    #[error("invalid char encoding {0:#010x}")]
    InvalidChar(u32),
    /// A varint marker byte that is reserved (255) or too wide for the target type.
    #[error("invalid varint marker {0} for this integer width")]
    VarintInvalid(u8),
    /// A decoded integer does not fit the type it is needed as (a length above `usize`).
    #[error("integer out of range")]
    IntegerOverflow,
    /// The type asked for `deserialize_any` or `deserialize_ignored_any`, which needs a
    /// self-describing format.
    #[error("deserialize_any is not supported: the format is not self-describing")]
    AnyNotSupported,
    /// The type asked for `deserialize_identifier`; bincode does not support it either
    /// (enum variants are read as indices instead).
    #[error("deserialize_identifier is not supported")]
    IdentifierNotSupported,
    /// Values nested deeper than [`MAX_DEPTH`].
    #[error("values nested deeper than {MAX_DEPTH} levels")]
    TooDeep,
    /// Bytes were left over after the value.
    #[error("{0} trailing bytes after the value")]
    TrailingBytes(u64),
    /// An error raised by a `Deserialize` implementation.
    #[error("{0}")]
    Custom(String),
}

impl de::Error for DecodeError {
    fn custom<T: std::fmt::Display>(msg: T) -> Self {
        DecodeError::Custom(msg.to_string())
    }
}

/// Where decoded bytes come from.
pub(crate) trait Source {
    /// Fills `buf` completely, or fails with [`DecodeError::UnexpectedEnd`].
    fn read_exact(&mut self, buf: &mut [u8]) -> Result<(), DecodeError>;

    /// Upper bound of the bytes still available (the blob's known payload size minus
    /// what was consumed); length prefixes are checked against it before allocating.
    fn remaining(&self) -> u64;
}

impl Source for &[u8] {
    #[inline]
    fn read_exact(&mut self, buf: &mut [u8]) -> Result<(), DecodeError> {
        if buf.len() > self.len() {
            return Err(DecodeError::UnexpectedEnd);
        }
        let (head, tail) = self.split_at(buf.len());
        buf.copy_from_slice(head);
        *self = tail;
        Ok(())
    }

    #[inline]
    fn remaining(&self) -> u64 {
        self.len() as u64
    }
}

/// Lets several values be decoded one after the other from one source.
impl<S: Source + ?Sized> Source for &mut S {
    #[inline]
    fn read_exact(&mut self, buf: &mut [u8]) -> Result<(), DecodeError> {
        (**self).read_exact(buf)
    }

    #[inline]
    fn remaining(&self) -> u64 {
        (**self).remaining()
    }
}

/// Reads exactly `N` bytes.
#[inline]
fn read_array<const N: usize, S: Source + ?Sized>(src: &mut S) -> Result<[u8; N], DecodeError> {
    let mut buf = [0u8; N];
    src.read_exact(&mut buf)?;
    Ok(buf)
}

/// Reads one raw byte.
#[inline]
fn read_u8<S: Source + ?Sized>(src: &mut S) -> Result<u8, DecodeError> {
    Ok(read_array::<1, S>(src)?[0])
}

/// Reads the rest of a varint whose `marker` byte was already read. Markers above
/// `max_marker` are rejected, as bincode rejects markers wider than the target type.
#[inline]
fn varint_after_marker<S: Source + ?Sized>(
    src: &mut S,
    marker: u8,
    max_marker: u8,
) -> Result<u64, DecodeError> {
    if marker <= SINGLE_BYTE_MAX {
        return Ok(u64::from(marker));
    }
    if marker > max_marker {
        return Err(DecodeError::VarintInvalid(marker));
    }
    match marker {
        U16_MARKER => Ok(u16::from_le_bytes(read_array(src)?).into()),
        U32_MARKER => Ok(u32::from_le_bytes(read_array(src)?).into()),
        U64_MARKER => Ok(u64::from_le_bytes(read_array(src)?)),
        _ => Err(DecodeError::VarintInvalid(marker)),
    }
}

/// Reads a varint of at most `max_marker`'s width; the result fits that width.
#[inline]
fn read_varint<S: Source + ?Sized>(src: &mut S, max_marker: u8) -> Result<u64, DecodeError> {
    let marker = read_u8(src)?;
    varint_after_marker(src, marker, max_marker)
}

/// Reads a `u64` varint in bincode's encoding (also the encoding of every length prefix).
pub(crate) fn read_varint_u64<S: Source + ?Sized>(src: &mut S) -> Result<u64, DecodeError> {
    read_varint(src, U64_MARKER)
}

/// Reads a `u128` varint, the only width that accepts marker 254.
fn read_varint_u128<S: Source + ?Sized>(src: &mut S) -> Result<u128, DecodeError> {
    match read_u8(src)? {
        U128_MARKER => Ok(u128::from_le_bytes(read_array(src)?)),
        marker => varint_after_marker(src, marker, U64_MARKER).map(u128::from),
    }
}

/// Undoes zigzag encoding. For a value read with a narrower width's marker limit the
/// result fits that signed width, so callers may narrow it with `as`.
#[inline]
fn unzigzag(n: u64) -> i64 {
    ((n >> 1) as i64) ^ -((n & 1) as i64)
}

/// Undoes zigzag encoding for 128-bit values.
#[inline]
fn unzigzag_128(n: u128) -> i128 {
    ((n >> 1) as i128) ^ -((n & 1) as i128)
}

/// Checks a length prefix against the bytes left, before anything is allocated for it.
#[inline]
fn check_len(len: u64, remaining: u64) -> Result<usize, DecodeError> {
    if len > remaining {
        return Err(DecodeError::LengthTooLarge { len, remaining });
    }
    usize::try_from(len).map_err(|_| DecodeError::IntegerOverflow)
}

/// Width of the UTF-8 sequence that starts with `first`, 0 if no sequence can start with
/// it (same table as bincode's and `core`'s: C0, C1 and F5..FF never start one).
fn utf8_width(first: u8) -> usize {
    match first {
        0x00..=0x7F => 1,
        0xC2..=0xDF => 2,
        0xE0..=0xEF => 3,
        0xF0..=0xF4 => 4,
        _ => 0,
    }
}

/// Serde deserializer over a [`Source`] holding bincode-2 `standard()` data.
pub(crate) struct Deserializer<S: Source> {
    src: S,
    /// Current nesting depth, bounded by [`MAX_DEPTH`].
    depth: u32,
}

impl<S: Source> Deserializer<S> {
    /// Wraps `src`; values are read from its current position.
    pub(crate) fn new(src: S) -> Self {
        Deserializer { src, depth: 0 }
    }

    /// Returns the source, positioned after the values decoded so far.
    #[cfg_attr(not(test), allow(dead_code))]
    pub(crate) fn into_source(self) -> S {
        self.src
    }

    /// Reads a length prefix and checks it against the bytes left.
    ///
    /// For sequences and maps this assumes every element takes at least one byte, so a
    /// sequence of zero-sized values (`()`, unit structs, empty tuples) longer than the
    /// rest of the input is rejected although bincode would accept it. That trade-off is
    /// deliberate: such data carries no information and we never write it.
    fn read_len(&mut self) -> Result<usize, DecodeError> {
        let len = read_varint_u64(&mut self.src)?;
        check_len(len, self.src.remaining())
    }

    /// Reads a length-prefixed byte string, allocating only after the length was checked.
    fn read_bytes(&mut self) -> Result<Vec<u8>, DecodeError> {
        let len = self.read_len()?;
        let mut buf = vec![0u8; len];
        self.src.read_exact(&mut buf)?;
        Ok(buf)
    }

    /// Reads a `char` the way bincode does: its UTF-8 bytes, width given by the first.
    fn read_char(&mut self) -> Result<char, DecodeError> {
        let mut buf = [0u8; 4];
        self.src.read_exact(&mut buf[..1])?;
        let width = utf8_width(buf[0]);
        if width == 0 {
            return Err(DecodeError::InvalidChar(u32::from_be_bytes(buf)));
        }
        self.src.read_exact(&mut buf[1..width])?;
        std::str::from_utf8(&buf[..width])
            .ok()
            .and_then(|s| s.chars().next())
            .ok_or(DecodeError::InvalidChar(u32::from_be_bytes(buf)))
    }

    /// Runs `f` one nesting level deeper, failing once [`MAX_DEPTH`] is reached.
    fn nested<R>(
        &mut self,
        f: impl FnOnce(&mut Self) -> Result<R, DecodeError>,
    ) -> Result<R, DecodeError> {
        if self.depth >= MAX_DEPTH {
            return Err(DecodeError::TooDeep);
        }
        self.depth += 1;
        let result = f(self);
        self.depth -= 1;
        result
    }
}

/// Decodes one value and requires the source to be fully consumed afterwards.
#[cfg_attr(not(test), allow(dead_code))]
pub(crate) fn decode_all<T: DeserializeOwned, S: Source>(src: S) -> Result<T, DecodeError> {
    let mut de = Deserializer::new(src);
    let value = T::deserialize(&mut de)?;
    match de.src.remaining() {
        0 => Ok(value),
        left => Err(DecodeError::TrailingBytes(left)),
    }
}

/// Decodes a `Vec<u8>` as bincode writes it (varint length, raw bytes) with one read.
pub(crate) fn decode_vec_u8<S: Source + ?Sized>(src: &mut S) -> Result<Vec<u8>, DecodeError> {
    let len = read_varint_u64(src)?;
    let len = check_len(len, src.remaining())?;
    let mut out = vec![0u8; len];
    src.read_exact(&mut out)?;
    Ok(out)
}

/// Decodes a `Vec<f32>` as bincode writes it (varint length, little-endian values),
/// reading in chunks rather than per element.
pub(crate) fn decode_vec_f32<S: Source + ?Sized>(src: &mut S) -> Result<Vec<f32>, DecodeError> {
    decode_vec_le(src, f32::from_le_bytes)
}

/// Decodes a `Vec<f64>` as bincode writes it (varint length, little-endian values),
/// reading in chunks rather than per element.
pub(crate) fn decode_vec_f64<S: Source + ?Sized>(src: &mut S) -> Result<Vec<f64>, DecodeError> {
    decode_vec_le(src, f64::from_le_bytes)
}

/// Bulk path for fixed-width little-endian elements of `N` bytes. The conversion runs per
/// element on a chunk of raw bytes, which compiles to a plain copy on little-endian hosts
/// and to byte swaps on big-endian ones, without `unsafe`.
fn decode_vec_le<T, const N: usize, S: Source + ?Sized>(
    src: &mut S,
    from_le_bytes: impl Fn([u8; N]) -> T,
) -> Result<Vec<T>, DecodeError> {
    let len = read_varint_u64(src)?;
    let remaining = src.remaining();
    let byte_len = len
        .checked_mul(N as u64)
        .ok_or(DecodeError::LengthTooLarge {
            len: u64::MAX,
            remaining,
        })?;
    let mut left = check_len(byte_len, remaining)?;
    let mut out = Vec::with_capacity(left / N);
    let mut chunk = vec![0u8; left.min(BULK_CHUNK)];
    while left > 0 {
        let buf = &mut chunk[..left.min(BULK_CHUNK)];
        src.read_exact(buf)?;
        out.extend(buf.chunks_exact(N).map(|bytes| {
            let mut raw = [0u8; N];
            raw.copy_from_slice(bytes);
            from_le_bytes(raw)
        }));
        left -= buf.len();
    }
    Ok(out)
}

impl<'de, S: Source> de::Deserializer<'de> for &mut Deserializer<S> {
    type Error = DecodeError;

    fn deserialize_any<V: Visitor<'de>>(self, _visitor: V) -> Result<V::Value, DecodeError> {
        Err(DecodeError::AnyNotSupported)
    }

    fn deserialize_bool<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DecodeError> {
        match read_u8(&mut self.src)? {
            0 => visitor.visit_bool(false),
            1 => visitor.visit_bool(true),
            other => Err(DecodeError::InvalidBool(other)),
        }
    }

    // Single bytes are raw, not varints.
    fn deserialize_i8<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DecodeError> {
        visitor.visit_i8(read_u8(&mut self.src)? as i8)
    }

    // The marker limit keeps each varint within its width, so the `as` casts below are
    // lossless.
    fn deserialize_i16<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DecodeError> {
        visitor.visit_i16(unzigzag(read_varint(&mut self.src, U16_MARKER)?) as i16)
    }

    fn deserialize_i32<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DecodeError> {
        visitor.visit_i32(unzigzag(read_varint(&mut self.src, U32_MARKER)?) as i32)
    }

    fn deserialize_i64<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DecodeError> {
        visitor.visit_i64(unzigzag(read_varint(&mut self.src, U64_MARKER)?))
    }

    fn deserialize_i128<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DecodeError> {
        visitor.visit_i128(unzigzag_128(read_varint_u128(&mut self.src)?))
    }

    fn deserialize_u8<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DecodeError> {
        visitor.visit_u8(read_u8(&mut self.src)?)
    }

    fn deserialize_u16<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DecodeError> {
        visitor.visit_u16(read_varint(&mut self.src, U16_MARKER)? as u16)
    }

    fn deserialize_u32<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DecodeError> {
        visitor.visit_u32(read_varint(&mut self.src, U32_MARKER)? as u32)
    }

    fn deserialize_u64<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DecodeError> {
        visitor.visit_u64(read_varint(&mut self.src, U64_MARKER)?)
    }

    fn deserialize_u128<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DecodeError> {
        visitor.visit_u128(read_varint_u128(&mut self.src)?)
    }

    fn deserialize_f32<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DecodeError> {
        visitor.visit_f32(f32::from_le_bytes(read_array(&mut self.src)?))
    }

    fn deserialize_f64<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DecodeError> {
        visitor.visit_f64(f64::from_le_bytes(read_array(&mut self.src)?))
    }

    fn deserialize_char<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DecodeError> {
        visitor.visit_char(self.read_char()?)
    }

    // Owned decoding only: a borrowed `&str` visitor will reject the owned string.
    fn deserialize_str<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DecodeError> {
        self.deserialize_string(visitor)
    }

    fn deserialize_string<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DecodeError> {
        let bytes = self.read_bytes()?;
        let string = String::from_utf8(bytes).map_err(|_| DecodeError::InvalidUtf8)?;
        visitor.visit_string(string)
    }

    fn deserialize_bytes<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DecodeError> {
        self.deserialize_byte_buf(visitor)
    }

    fn deserialize_byte_buf<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DecodeError> {
        visitor.visit_byte_buf(self.read_bytes()?)
    }

    fn deserialize_option<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DecodeError> {
        match read_u8(&mut self.src)? {
            0 => visitor.visit_none(),
            1 => self.nested(|de| visitor.visit_some(de)),
            tag => Err(DecodeError::InvalidOptionTag(tag)),
        }
    }

    fn deserialize_unit<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DecodeError> {
        visitor.visit_unit()
    }

    fn deserialize_unit_struct<V: Visitor<'de>>(
        self,
        _name: &'static str,
        visitor: V,
    ) -> Result<V::Value, DecodeError> {
        visitor.visit_unit()
    }

    fn deserialize_newtype_struct<V: Visitor<'de>>(
        self,
        _name: &'static str,
        visitor: V,
    ) -> Result<V::Value, DecodeError> {
        self.nested(|de| visitor.visit_newtype_struct(de))
    }

    fn deserialize_seq<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DecodeError> {
        let len = self.read_len()?;
        self.deserialize_tuple(len, visitor)
    }

    fn deserialize_tuple<V: Visitor<'de>>(
        self,
        len: usize,
        visitor: V,
    ) -> Result<V::Value, DecodeError> {
        self.nested(|de| visitor.visit_seq(Access { de, len }))
    }

    fn deserialize_tuple_struct<V: Visitor<'de>>(
        self,
        _name: &'static str,
        len: usize,
        visitor: V,
    ) -> Result<V::Value, DecodeError> {
        self.deserialize_tuple(len, visitor)
    }

    fn deserialize_map<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DecodeError> {
        let len = self.read_len()?;
        self.nested(|de| visitor.visit_map(Access { de, len }))
    }

    // Struct fields are written in order without names, like a tuple.
    fn deserialize_struct<V: Visitor<'de>>(
        self,
        _name: &'static str,
        fields: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, DecodeError> {
        self.deserialize_tuple(fields.len(), visitor)
    }

    fn deserialize_enum<V: Visitor<'de>>(
        self,
        _name: &'static str,
        _variants: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, DecodeError> {
        self.nested(|de| visitor.visit_enum(de))
    }

    // Mirrors bincode: variant names never appear on the wire; variants are identified
    // by index in `EnumAccess::variant_seed` instead.
    fn deserialize_identifier<V: Visitor<'de>>(self, _visitor: V) -> Result<V::Value, DecodeError> {
        Err(DecodeError::IdentifierNotSupported)
    }

    // Skipping a value needs to know its type, which the format does not record.
    fn deserialize_ignored_any<V: Visitor<'de>>(
        self,
        _visitor: V,
    ) -> Result<V::Value, DecodeError> {
        Err(DecodeError::AnyNotSupported)
    }

    fn is_human_readable(&self) -> bool {
        false
    }
}

/// Element access for sequences, tuples, structs and maps: `len` elements (map entries)
/// follow.
struct Access<'a, S: Source> {
    de: &'a mut Deserializer<S>,
    len: usize,
}

impl<'de, S: Source> de::SeqAccess<'de> for Access<'_, S> {
    type Error = DecodeError;

    fn next_element_seed<T: DeserializeSeed<'de>>(
        &mut self,
        seed: T,
    ) -> Result<Option<T::Value>, DecodeError> {
        if self.len == 0 {
            return Ok(None);
        }
        self.len -= 1;
        seed.deserialize(&mut *self.de).map(Some)
    }

    // At most the bytes left in the input (checked when the length was read); serde's
    // own collection visitors additionally cap what they preallocate from it.
    fn size_hint(&self) -> Option<usize> {
        Some(self.len)
    }
}

impl<'de, S: Source> de::MapAccess<'de> for Access<'_, S> {
    type Error = DecodeError;

    fn next_key_seed<K: DeserializeSeed<'de>>(
        &mut self,
        seed: K,
    ) -> Result<Option<K::Value>, DecodeError> {
        if self.len == 0 {
            return Ok(None);
        }
        self.len -= 1;
        seed.deserialize(&mut *self.de).map(Some)
    }

    fn next_value_seed<V: DeserializeSeed<'de>>(
        &mut self,
        seed: V,
    ) -> Result<V::Value, DecodeError> {
        seed.deserialize(&mut *self.de)
    }

    fn size_hint(&self) -> Option<usize> {
        Some(self.len)
    }
}

impl<'de, S: Source> de::EnumAccess<'de> for &mut Deserializer<S> {
    type Error = DecodeError;
    type Variant = Self;

    // The variant index is a varint `u32`, handed to the variant visitor as a `u32`
    // (what bincode does; serde's derived visitors map it to the variant).
    fn variant_seed<V: DeserializeSeed<'de>>(
        self,
        seed: V,
    ) -> Result<(V::Value, Self), DecodeError> {
        let index = read_varint(&mut self.src, U32_MARKER)? as u32;
        let value = seed.deserialize(de::value::U32Deserializer::<DecodeError>::new(index))?;
        Ok((value, self))
    }
}

impl<'de, S: Source> de::VariantAccess<'de> for &mut Deserializer<S> {
    type Error = DecodeError;

    fn unit_variant(self) -> Result<(), DecodeError> {
        Ok(())
    }

    fn newtype_variant_seed<T: DeserializeSeed<'de>>(
        self,
        seed: T,
    ) -> Result<T::Value, DecodeError> {
        seed.deserialize(self)
    }

    fn tuple_variant<V: Visitor<'de>>(
        self,
        len: usize,
        visitor: V,
    ) -> Result<V::Value, DecodeError> {
        de::Deserializer::deserialize_tuple(self, len, visitor)
    }

    fn struct_variant<V: Visitor<'de>>(
        self,
        fields: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, DecodeError> {
        de::Deserializer::deserialize_tuple(self, fields.len(), visitor)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde::{Deserialize, Serialize};
    use std::collections::{BTreeMap, HashMap};
    use std::fmt::Debug;
    use std::time::{Duration, Instant};

    fn encode<T: Serialize + ?Sized>(value: &T) -> Vec<u8> {
        bincode::serde::encode_to_vec(value, bincode::config::standard()).unwrap()
    }

    /// bincode's own decoder, requiring it to consume the whole input.
    fn bincode_decode<T: DeserializeOwned>(bytes: &[u8]) -> T {
        let (value, used): (T, usize) =
            bincode::serde::decode_from_slice(bytes, bincode::config::standard()).unwrap();
        assert_eq!(used, bytes.len(), "bincode left bytes over");
        value
    }

    /// Encodes with bincode, decodes with both decoders, and checks all three agree.
    fn roundtrip<T>(value: T)
    where
        T: Serialize + DeserializeOwned + PartialEq + Debug,
    {
        let bytes = encode(&value);
        let ours: T = decode_all(&bytes[..])
            .unwrap_or_else(|e| panic!("decoding {value:?} from {bytes:?}: {e}"));
        assert_eq!(ours, value, "from {bytes:?}");
        assert_eq!(ours, bincode_decode::<T>(&bytes), "from {bytes:?}");
    }

    /// Both decoders reject `bytes` as a `T`; ours with `expected`.
    fn both_reject<T: DeserializeOwned + Debug>(bytes: &[u8], expected: DecodeError) {
        assert_eq!(decode_all::<T, _>(bytes).unwrap_err(), expected);
        assert!(
            bincode::serde::decode_from_slice::<T, _>(bytes, bincode::config::standard()).is_err()
        );
    }

    const UNSIGNED: [u128; 24] = [
        0,
        1,
        127,
        128,
        250,
        251,
        252,
        253,
        254,
        255,
        256,
        32767,
        32768,
        65535,
        65536,
        0x7fff_ffff,
        0x8000_0000,
        u32::MAX as u128,
        u32::MAX as u128 + 1,
        i64::MAX as u128,
        u64::MAX as u128,
        u64::MAX as u128 + 1,
        i128::MAX as u128,
        u128::MAX,
    ];

    fn signed_candidates() -> Vec<i128> {
        let mut out = vec![i128::MIN, i128::MIN + 1, i64::MIN as i128 - 1];
        for &u in &UNSIGNED {
            if let Ok(v) = i128::try_from(u) {
                out.extend([v, -v, -v - 1]);
            }
        }
        out
    }

    macro_rules! roundtrip_ints {
        ($($t:ty),*) => {$(
            let mut seen = 0;
            for &u in &UNSIGNED {
                if let Ok(v) = <$t>::try_from(u) {
                    roundtrip(v);
                    seen += 1;
                }
            }
            for v in signed_candidates() {
                if let Ok(v) = <$t>::try_from(v) {
                    roundtrip(v);
                    seen += 1;
                }
            }
            for v in [<$t>::MIN, <$t>::MAX] {
                roundtrip(v);
            }
            assert!(seen > 4, "{} covered too few values", stringify!($t));
        )*};
    }

    #[test]
    // `u128::try_from(u128)` and `i128::try_from(i128)` cannot fail.
    #[allow(irrefutable_let_patterns)]
    fn integers_at_boundaries() {
        roundtrip_ints!(u8, u16, u32, u64, u128, usize, i8, i16, i32, i64, i128, isize);
    }

    #[test]
    fn integer_wire_layout() {
        // Spot checks of the layout documented at the top of the module.
        assert_eq!(encode(&255u8), [255]);
        assert_eq!(encode(&-1i8), [255]);
        assert_eq!(encode(&250u64), [250]);
        assert_eq!(encode(&251u64), [251, 251, 0]);
        assert_eq!(encode(&65536u64), [252, 0, 0, 1, 0]);
        assert_eq!(
            encode(&(u32::MAX as u64 + 1)),
            [253, 0, 0, 0, 0, 1, 0, 0, 0]
        );
        assert_eq!(encode(&-1i32), [1]);
        assert_eq!(encode(&1i32), [2]);
        assert_eq!(encode(&(u64::MAX as u128 + 1))[0], 254);
        let mut src = &encode(&u64::MAX)[..];
        assert_eq!(read_varint_u64(&mut src), Ok(u64::MAX));
        assert!(src.is_empty());
    }

    #[test]
    fn varint_markers_too_wide_are_rejected() {
        both_reject::<u16>(&[252, 1, 0, 0, 0], DecodeError::VarintInvalid(252));
        both_reject::<i16>(
            &[253, 1, 0, 0, 0, 0, 0, 0, 0],
            DecodeError::VarintInvalid(253),
        );
        both_reject::<u32>(
            &[253, 1, 0, 0, 0, 0, 0, 0, 0],
            DecodeError::VarintInvalid(253),
        );
        let mut wide = vec![254];
        wide.extend(1u128.to_le_bytes());
        both_reject::<u64>(&wide, DecodeError::VarintInvalid(254));
        both_reject::<Vec<u8>>(&wide, DecodeError::VarintInvalid(254));
        roundtrip_bytes::<u128>(&wide, 1);
        both_reject::<u128>(&[255], DecodeError::VarintInvalid(255));
        both_reject::<u16>(&[255], DecodeError::VarintInvalid(255));
        // Enum variant indices are u32 varints.
        both_reject::<Shape>(
            &[253, 0, 0, 0, 0, 0, 0, 0, 0],
            DecodeError::VarintInvalid(253),
        );
    }

    /// Decodes hand-written `bytes` with both decoders and expects `expected`.
    fn roundtrip_bytes<T: DeserializeOwned + PartialEq + Debug>(bytes: &[u8], expected: T) {
        assert_eq!(decode_all::<T, _>(bytes).unwrap(), expected);
        assert_eq!(bincode_decode::<T>(bytes), expected);
    }

    #[test]
    fn non_canonical_varints_are_accepted_like_bincode() {
        roundtrip_bytes::<u64>(&[251, 5, 0], 5);
        roundtrip_bytes::<u32>(&[252, 7, 0, 0, 0], 7);
        roundtrip_bytes::<i64>(&[253, 3, 0, 0, 0, 0, 0, 0, 0], -2);
        roundtrip_bytes::<String>(&[251, 1, 0, b'x'], "x".to_owned());
    }

    #[test]
    fn bool_and_option_tags() {
        roundtrip(true);
        roundtrip(false);
        both_reject::<bool>(&[2], DecodeError::InvalidBool(2));
        both_reject::<bool>(&[255], DecodeError::InvalidBool(255));
        roundtrip(None::<Option<u8>>);
        roundtrip(Some(None::<u8>));
        roundtrip(Some(Some(7u8)));
        both_reject::<Option<u8>>(&[2, 0], DecodeError::InvalidOptionTag(2));
    }

    #[test]
    fn floats_keep_their_bits() {
        let f32s = [
            0.0f32,
            -0.0,
            1.5,
            f32::MIN_POSITIVE,
            f32::MAX,
            f32::INFINITY,
            f32::NEG_INFINITY,
            f32::NAN,
            f32::from_bits(0x7fc0_0001),
            f32::from_bits(0xffff_ffff),
        ];
        for v in f32s {
            let bytes = encode(&v);
            assert_eq!(bytes, v.to_le_bytes());
            let ours: f32 = decode_all(&bytes[..]).unwrap();
            assert_eq!(ours.to_bits(), v.to_bits());
            assert_eq!(bincode_decode::<f32>(&bytes).to_bits(), v.to_bits());
        }
        let f64s = [
            0.0f64,
            -0.0,
            -2.25,
            f64::EPSILON,
            f64::MIN,
            f64::INFINITY,
            f64::NEG_INFINITY,
            f64::NAN,
            f64::from_bits(0xfff0_0000_0000_0001),
        ];
        for v in f64s {
            let bytes = encode(&v);
            assert_eq!(bytes, v.to_le_bytes());
            let ours: f64 = decode_all(&bytes[..]).unwrap();
            assert_eq!(ours.to_bits(), v.to_bits());
            assert_eq!(bincode_decode::<f64>(&bytes).to_bits(), v.to_bits());
        }
    }

    #[test]
    fn chars_are_utf8_without_length() {
        for c in [
            '\0',
            'a',
            '\u{7f}',
            '\u{80}',
            'é',
            '\u{7ff}',
            '\u{800}',
            '€',
            '\u{d7ff}',
            '\u{e000}',
            '\u{ffff}',
            '\u{10000}',
            '😀',
            char::MAX,
        ] {
            let bytes = encode(&c);
            assert_eq!(bytes, c.to_string().as_bytes());
            roundtrip(c);
        }
        both_reject::<char>(&[0x80], DecodeError::InvalidChar(0x8000_0000));
        both_reject::<char>(&[0xc0, 0x80], DecodeError::InvalidChar(0xc000_0000));
        both_reject::<char>(
            &[0xf5, 0x80, 0x80, 0x80],
            DecodeError::InvalidChar(0xf500_0000),
        );
        // A surrogate: right width, not a scalar value.
        both_reject::<char>(&[0xed, 0xa0, 0x80], DecodeError::InvalidChar(0xeda0_8000));
        both_reject::<char>(&[0xe2, 0x28, 0xa1], DecodeError::InvalidChar(0xe228_a100));
        both_reject::<char>(&[0xe2, 0x82], DecodeError::UnexpectedEnd);
    }

    #[test]
    fn strings() {
        roundtrip(String::new());
        roundtrip("hello".to_owned());
        roundtrip("ünïcödé ✓ 😀 \0 end".to_owned());
        roundtrip("x".repeat(300));
        roundtrip("y".repeat(70_000));
        roundtrip(vec!["a".to_owned(), String::new(), "ß".repeat(200)]);
        roundtrip(Box::<str>::from("boxed"));
        both_reject::<String>(&[2, 0xc3, 0x28], DecodeError::InvalidUtf8);
    }

    /// Calls `serialize_bytes` / `deserialize_byte_buf` like `serde_bytes::ByteBuf`.
    #[derive(Debug, PartialEq)]
    struct ByteBuf(Vec<u8>);

    /// Same wire form, read through `deserialize_bytes`.
    #[derive(Debug, PartialEq)]
    struct Bytes(Vec<u8>);

    struct BytesVisitor;

    impl Visitor<'_> for BytesVisitor {
        type Value = Vec<u8>;

        fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
            f.write_str("bytes")
        }

        fn visit_bytes<E: de::Error>(self, v: &[u8]) -> Result<Vec<u8>, E> {
            Ok(v.to_vec())
        }

        fn visit_byte_buf<E: de::Error>(self, v: Vec<u8>) -> Result<Vec<u8>, E> {
            Ok(v)
        }
    }

    impl Serialize for ByteBuf {
        fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
            s.serialize_bytes(&self.0)
        }
    }

    impl<'de> Deserialize<'de> for ByteBuf {
        fn deserialize<D: de::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
            d.deserialize_byte_buf(BytesVisitor).map(ByteBuf)
        }
    }

    impl Serialize for Bytes {
        fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
            s.serialize_bytes(&self.0)
        }
    }

    impl<'de> Deserialize<'de> for Bytes {
        fn deserialize<D: de::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
            d.deserialize_bytes(BytesVisitor).map(Bytes)
        }
    }

    #[test]
    fn byte_buffers_and_vectors() {
        for len in [0usize, 1, 250, 251, 70_000] {
            let data: Vec<u8> = (0..len).map(|i| (i * 7) as u8).collect();
            // `Vec<u8>` goes through serialize_seq; bytes through serialize_bytes: same layout.
            assert_eq!(encode(&data), encode(&ByteBuf(data.clone())));
            roundtrip(ByteBuf(data.clone()));
            roundtrip(Bytes(data.clone()));
            roundtrip(data);
        }
        roundtrip(vec![1.5f32, -0.0, f32::MAX]);
        roundtrip(vec![1.5f64, -1e300]);
        roundtrip(vec![vec![1i32, -2, 3], vec![], vec![i32::MIN, i32::MAX]]);
        roundtrip(vec![u64::MAX; 3]);
    }

    #[derive(Serialize, Deserialize, Debug, PartialEq, Clone)]
    struct UnitStruct;

    #[derive(Serialize, Deserialize, Debug, PartialEq, Clone)]
    struct Newtype(u32);

    #[derive(Serialize, Deserialize, Debug, PartialEq, Clone)]
    struct TupleStruct(i8, String, Vec<u16>);

    #[derive(Serialize, Deserialize, Debug, PartialEq, Clone)]
    struct Record {
        id: u64,
        name: String,
        tags: Option<Vec<String>>,
        pair: (u16, i16),
        shape: Shape,
        unit: UnitStruct,
        wrapped: Newtype,
    }

    #[derive(Serialize, Deserialize, Debug, PartialEq, Clone)]
    enum Shape {
        Empty,
        Circle(f64),
        Rect(u32, u32),
        Poly {
            points: Vec<(i32, i32)>,
            closed: bool,
        },
        Nested(Box<Shape>),
    }

    #[test]
    fn compound_types() {
        roundtrip(());
        roundtrip(UnitStruct);
        roundtrip(Newtype(300));
        roundtrip(TupleStruct(-5, "t".to_owned(), vec![0, 65535]));
        roundtrip((1u8, -2i64, 'c', "s".to_owned(), (true, None::<u8>)));
        roundtrip([7u8; 32]);
        roundtrip([0u64, 250, 251, u64::MAX]);
        roundtrip(Box::new(42u32));
        roundtrip(Shape::Empty);
        roundtrip(Shape::Circle(2.5));
        roundtrip(Shape::Rect(640, 480));
        roundtrip(Shape::Poly {
            points: vec![(0, 0), (-1, 300), (i32::MIN, i32::MAX)],
            closed: true,
        });
        roundtrip(Shape::Nested(Box::new(Shape::Nested(Box::new(
            Shape::Empty,
        )))));
        roundtrip(Record {
            id: 1 << 40,
            name: "rec".to_owned(),
            tags: Some(vec!["a".to_owned(), "bb".to_owned()]),
            pair: (65535, -32768),
            shape: Shape::Rect(1, 2),
            unit: UnitStruct,
            wrapped: Newtype(7),
        });
        // Fixed-size arrays are tuples: no length prefix.
        assert_eq!(encode(&[1u8; 32]).len(), 32);
        assert_eq!(encode(&Shape::Rect(1, 2)), [2, 1, 2]);
    }

    #[test]
    fn maps() {
        let mut btree = BTreeMap::new();
        btree.insert("empty".to_owned(), vec![]);
        btree.insert("one".to_owned(), vec![1u64]);
        btree.insert("big".to_owned(), vec![u64::MAX, 251, 0]);
        roundtrip(btree.clone());
        roundtrip(btree.into_iter().collect::<HashMap<_, _>>());
        roundtrip(HashMap::<String, Vec<u64>>::new());
        let by_int: BTreeMap<i32, Shape> =
            (-300..300).map(|i| (i, Shape::Circle(i as f64))).collect();
        roundtrip(by_int);
    }

    #[test]
    fn unknown_variant_index_is_an_error() {
        let err = decode_all::<Shape, _>(&[9][..]).unwrap_err();
        assert!(matches!(err, DecodeError::Custom(_)), "{err:?}");
    }

    /// Calls `deserialize_any`, as untagged enums do.
    #[derive(Debug)]
    struct Any;

    impl<'de> Deserialize<'de> for Any {
        fn deserialize<D: de::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
            d.deserialize_any(de::IgnoredAny).map(|_| Any)
        }
    }

    #[test]
    fn self_describing_requests_are_refused() {
        both_reject::<Any>(&[0], DecodeError::AnyNotSupported);
        both_reject::<de::IgnoredAny>(&[0], DecodeError::AnyNotSupported);
    }

    #[test]
    fn huge_string_length_is_rejected_before_allocating() {
        let mut bytes = vec![U64_MARKER];
        bytes.extend((1u64 << 60).to_le_bytes());
        bytes.extend([0u8; 10]);
        let start = Instant::now();
        let expected = DecodeError::LengthTooLarge {
            len: 1 << 60,
            remaining: 10,
        };
        assert_eq!(decode_all::<String, _>(&bytes[..]).unwrap_err(), expected);
        assert_eq!(decode_all::<ByteBuf, _>(&bytes[..]).unwrap_err(), expected);
        assert_eq!(decode_all::<Vec<u32>, _>(&bytes[..]).unwrap_err(), expected);
        assert_eq!(
            decode_all::<Vec<String>, _>(&bytes[..]).unwrap_err(),
            expected
        );
        assert_eq!(decode_all::<Vec<()>, _>(&bytes[..]).unwrap_err(), expected);
        assert_eq!(
            decode_all::<HashMap<String, u8>, _>(&bytes[..]).unwrap_err(),
            expected
        );
        assert_eq!(
            decode_all::<BTreeMap<u64, u64>, _>(&bytes[..]).unwrap_err(),
            expected
        );
        assert_eq!(decode_vec_u8(&mut &bytes[..]).unwrap_err(), expected);
        assert!(matches!(
            decode_vec_f32(&mut &bytes[..]).unwrap_err(),
            DecodeError::LengthTooLarge { remaining: 10, .. }
        ));
        assert!(matches!(
            decode_vec_f64(&mut &bytes[..]).unwrap_err(),
            DecodeError::LengthTooLarge { remaining: 10, .. }
        ));
        // Inside a structure the remaining count is what is left at that point.
        let mut nested = encode(&(1u8, "ab"));
        nested.truncate(1);
        nested.extend([U32_MARKER, 0, 0, 0, 0x40, b'a', b'b']);
        assert_eq!(
            decode_all::<(u8, String), _>(&nested[..]).unwrap_err(),
            DecodeError::LengthTooLarge {
                len: 1 << 30,
                remaining: 2
            }
        );
        assert!(start.elapsed() < Duration::from_secs(1));
    }

    #[test]
    fn bulk_length_overflow_is_rejected() {
        let mut bytes = vec![U64_MARKER];
        bytes.extend(u64::MAX.to_le_bytes());
        assert!(matches!(
            decode_vec_f64(&mut &bytes[..]).unwrap_err(),
            DecodeError::LengthTooLarge { .. }
        ));
    }

    #[test]
    fn truncated_input_is_unexpected_end() {
        let value = (u64::MAX, 'é', -70_000i32, 1.0f64, [5u16; 3]);
        let bytes = encode(&value);
        for cut in 0..bytes.len() {
            assert_eq!(
                decode_all::<(u64, char, i32, f64, [u16; 3]), _>(&bytes[..cut]).unwrap_err(),
                DecodeError::UnexpectedEnd,
                "cut at {cut}"
            );
        }
        assert_eq!(
            decode_all::<u32, _>(&[U32_MARKER, 1, 2][..]).unwrap_err(),
            DecodeError::UnexpectedEnd
        );
        assert_eq!(
            decode_all::<u8, _>(&[][..]).unwrap_err(),
            DecodeError::UnexpectedEnd
        );
    }

    #[test]
    fn trailing_bytes_are_reported() {
        let mut bytes = encode(&(5u8, "x"));
        bytes.push(0);
        assert_eq!(
            decode_all::<(u8, String), _>(&bytes[..]).unwrap_err(),
            DecodeError::TrailingBytes(1)
        );
        assert_eq!(
            decode_all::<(), _>(&[1, 2, 3][..]).unwrap_err(),
            DecodeError::TrailingBytes(3)
        );
    }

    #[test]
    fn values_decode_one_after_another() {
        let mut bytes = encode(&vec![1.0f32, 2.0]);
        bytes.extend(encode(&Shape::Rect(3, 4)));
        bytes.extend(encode(&"tail"));
        let mut src = &bytes[..];
        assert_eq!(decode_vec_f32(&mut src).unwrap(), [1.0, 2.0]);
        let mut de = Deserializer::new(&mut src);
        assert_eq!(Shape::deserialize(&mut de).unwrap(), Shape::Rect(3, 4));
        let rest = de.into_source();
        assert_eq!(decode_all::<String, _>(rest).unwrap(), "tail");
        assert!(src.is_empty());
    }

    /// `Option<Box<Self>>` inside a newtype: two nesting levels per link.
    #[derive(Serialize, Deserialize, Debug, PartialEq)]
    struct Chain(Option<Box<Chain>>);

    /// A sequence inside a newtype: two nesting levels per link.
    #[derive(Serialize, Deserialize, Debug, PartialEq)]
    struct Tree(Vec<Tree>);

    #[test]
    fn deep_nesting_is_too_deep_not_a_stack_overflow() {
        // Chain(Some(Chain(Some(...)))): every link is the option tag 1.
        let bytes = vec![1u8; 1_000_000];
        assert_eq!(
            decode_all::<Chain, _>(&bytes[..]).unwrap_err(),
            DecodeError::TooDeep
        );
        // Tree([Tree([...])]): every link is the length 1.
        assert_eq!(
            decode_all::<Tree, _>(&bytes[..]).unwrap_err(),
            DecodeError::TooDeep
        );
        // Shape::Nested(Shape::Nested(...)): every link is the variant index 4.
        let bytes = vec![4u8; 1_000_000];
        assert_eq!(
            decode_all::<Shape, _>(&bytes[..]).unwrap_err(),
            DecodeError::TooDeep
        );
        // Val::Opt(Some(Val::Opt(Some(...)))): variant index 17, then the tag 1.
        let bytes = [17u8, 1].repeat(100_000);
        assert_eq!(
            decode_all::<Val, _>(&bytes[..]).unwrap_err(),
            DecodeError::TooDeep
        );

        // Just under the limit still decodes.
        let mut chain = Chain(None);
        for _ in 0..(MAX_DEPTH / 2 - 1) {
            chain = Chain(Some(Box::new(chain)));
        }
        roundtrip(chain);
    }

    /// Recursive value type for the randomized tests.
    #[derive(Serialize, Deserialize, Debug, PartialEq, Clone)]
    enum Val {
        Unit,
        Bool(bool),
        U8(u8),
        I8(i8),
        U16(u16),
        I16(i16),
        U32(u32),
        I32(i32),
        U64(u64),
        I64(i64),
        U128(u128),
        I128(i128),
        F32(f32),
        F64(f64),
        Char(char),
        Str(String),
        Bytes(ByteBufVal),
        Opt(Option<Box<Val>>),
        List(Vec<Val>),
        Map(BTreeMap<String, Val>),
        Tuple(u8, Box<Val>, i64),
        Struct {
            a: u16,
            b: Vec<Val>,
            c: Option<String>,
        },
        Newtype(Newtype),
        UnitStruct(UnitStruct),
        Floats(Vec<f32>),
    }

    /// `ByteBuf` with the derives `Val` needs.
    #[derive(Debug, PartialEq, Clone)]
    struct ByteBufVal(Vec<u8>);

    impl Serialize for ByteBufVal {
        fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
            s.serialize_bytes(&self.0)
        }
    }

    impl<'de> Deserialize<'de> for ByteBufVal {
        fn deserialize<D: de::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
            d.deserialize_byte_buf(BytesVisitor).map(ByteBufVal)
        }
    }

    /// xorshift64: small, deterministic, no dependency.
    struct Rng(u64);

    impl Rng {
        fn next(&mut self) -> u64 {
            let mut x = self.0;
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            self.0 = x;
            x
        }

        fn below(&mut self, n: u64) -> u64 {
            self.next() % n
        }

        /// Random bits of a random width, so small values and varint boundaries show up.
        fn int(&mut self) -> u128 {
            match self.below(4) {
                0 => UNSIGNED[self.below(UNSIGNED.len() as u64) as usize],
                1 => u128::from(self.next()) << 64 | u128::from(self.next()),
                _ => u128::from(self.next() >> self.below(64)),
            }
        }

        fn float(&mut self) -> f64 {
            let v = f64::from_bits(self.next());
            // NaN would break PartialEq; float bits are covered elsewhere.
            if v.is_nan() {
                -0.0
            } else {
                v
            }
        }

        fn char(&mut self) -> char {
            let max = [0x80, 0x800, 0x1_0000, 0x11_0000][self.below(4) as usize];
            char::from_u32(self.below(max) as u32).unwrap_or('\u{fffd}')
        }

        fn string(&mut self) -> String {
            let max = if self.below(8) == 0 { 300 } else { 8 };
            let len = self.below(max);
            (0..len).map(|_| self.char()).collect()
        }

        fn val(&mut self, depth: u32) -> Val {
            const LEAVES: u64 = 17;
            const ALL: u64 = 25;
            let kind = self.below(if depth >= 4 { LEAVES } else { ALL });
            let int = self.int();
            match kind {
                0 => Val::Unit,
                1 => Val::Bool(int & 1 == 1),
                2 => Val::U8(int as u8),
                3 => Val::I8(int as i8),
                4 => Val::U16(int as u16),
                5 => Val::I16(int as i16),
                6 => Val::U32(int as u32),
                7 => Val::I32(int as i32),
                8 => Val::U64(int as u64),
                9 => Val::I64(int as i64),
                10 => Val::U128(int),
                11 => Val::I128(int as i128),
                12 => Val::F32(self.float() as f32),
                13 => Val::F64(self.float()),
                14 => Val::Char(self.char()),
                15 => Val::Str(self.string()),
                16 => Val::Bytes(ByteBufVal(
                    (0..self.below(40)).map(|_| self.next() as u8).collect(),
                )),
                17 => Val::Opt((int & 1 == 1).then(|| Box::new(self.val(depth + 1)))),
                18 => Val::List((0..self.below(5)).map(|_| self.val(depth + 1)).collect()),
                19 => Val::Map(
                    (0..self.below(4))
                        .map(|_| (self.string(), self.val(depth + 1)))
                        .collect(),
                ),
                20 => Val::Tuple(int as u8, Box::new(self.val(depth + 1)), self.next() as i64),
                21 => Val::Struct {
                    a: int as u16,
                    b: (0..self.below(3)).map(|_| self.val(depth + 1)).collect(),
                    c: (self.below(2) == 0).then(|| self.string()),
                },
                22 => Val::Newtype(Newtype(int as u32)),
                23 => Val::UnitStruct(UnitStruct),
                _ => Val::Floats((0..self.below(6)).map(|_| self.float() as f32).collect()),
            }
        }
    }

    #[test]
    fn random_values_roundtrip() {
        let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
        for _ in 0..2000 {
            roundtrip(rng.val(0));
        }
    }

    /// Mutates a valid encoding: changed bytes (biased to varint markers and tags),
    /// insertions, deletions and truncations.
    fn mutate(rng: &mut Rng, mut bytes: Vec<u8>) -> Vec<u8> {
        for _ in 0..=rng.below(3) {
            let at = rng.below(bytes.len() as u64 + 1) as usize;
            let byte = match rng.below(3) {
                0 => 250 + rng.below(6) as u8,
                1 => rng.below(3) as u8,
                _ => rng.next() as u8,
            };
            match rng.below(4) {
                0 if at < bytes.len() => bytes[at] = byte,
                1 => bytes.insert(at, byte),
                2 if at < bytes.len() => {
                    bytes.remove(at);
                }
                _ => bytes.truncate(at),
            }
        }
        bytes
    }

    #[test]
    fn mutated_input_never_panics_and_agrees_with_bincode() {
        let mut rng = Rng(0x2545_f491_4f6c_dd1d);
        let (mut accepted, mut rejected) = (0, 0);
        for _ in 0..2000 {
            let valid = encode(&rng.val(0));
            let bytes = mutate(&mut rng, valid);
            match decode_all::<Val, _>(&bytes[..]) {
                Ok(ours) => {
                    accepted += 1;
                    // Compare through the encoding: mutated floats may be NaN.
                    assert_eq!(encode(&ours), encode(&bincode_decode::<Val>(&bytes)));
                }
                // bincode would try the oversized allocation (or recurse) here.
                Err(DecodeError::LengthTooLarge { .. } | DecodeError::TooDeep) => rejected += 1,
                Err(DecodeError::TrailingBytes(left)) => {
                    rejected += 1;
                    let (_, used): (Val, usize) =
                        bincode::serde::decode_from_slice(&bytes, bincode::config::standard())
                            .unwrap();
                    assert_eq!(used as u64 + left, bytes.len() as u64);
                }
                Err(_) => {
                    rejected += 1;
                    assert!(bincode::serde::decode_from_slice::<Val, _>(
                        &bytes,
                        bincode::config::standard()
                    )
                    .is_err());
                }
            }
        }
        assert!(accepted > 50 && rejected > 50, "{accepted} / {rejected}");
    }

    #[test]
    fn random_bytes_never_panic() {
        let mut rng = Rng(0xdead_beef_cafe_f00d);
        for _ in 0..2000 {
            let bytes: Vec<u8> = (0..rng.below(64)).map(|_| rng.next() as u8).collect();
            let _ = decode_all::<Val, _>(&bytes[..]);
            let _ = decode_all::<Record, _>(&bytes[..]);
            let _ = decode_vec_f64(&mut &bytes[..]);
        }
    }

    #[test]
    fn bulk_paths_match_bincode() {
        for len in [0usize, 1, 1 << 20] {
            let u8s: Vec<u8> = (0..len).map(|i| (i * 31 + 7) as u8).collect();
            let f32s: Vec<f32> = (0..len)
                .map(|i| f32::from_bits((i as u32).wrapping_mul(0x9e37_79b9)))
                .collect();
            let f64s: Vec<f64> = (0..len)
                .map(|i| f64::from_bits((i as u64).wrapping_mul(0x9e37_79b9_7f4a_7c15)))
                .collect();

            let bytes = encode(&u8s);
            let mut src = &bytes[..];
            assert_eq!(decode_vec_u8(&mut src).unwrap(), u8s);
            assert!(src.is_empty());

            let bytes = encode(&f32s);
            let mut src = &bytes[..];
            let ours = decode_vec_f32(&mut src).unwrap();
            assert!(src.is_empty());
            assert!(ours
                .iter()
                .map(|v| v.to_bits())
                .eq(f32s.iter().map(|v| v.to_bits())));

            let bytes = encode(&f64s);
            let mut src = &bytes[..];
            let ours = decode_vec_f64(&mut src).unwrap();
            assert!(src.is_empty());
            assert!(ours
                .iter()
                .map(|v| v.to_bits())
                .eq(f64s.iter().map(|v| v.to_bits())));
        }
        // A short payload is caught by the length check.
        let bytes = encode(&vec![1.0f64; 3]);
        assert_eq!(
            decode_vec_f64(&mut &bytes[..bytes.len() - 1]).unwrap_err(),
            DecodeError::LengthTooLarge {
                len: 24,
                remaining: 23
            }
        );
    }

    /// Throughput of the bulk paths on 256 MiB; run with
    /// `cargo test --release -- --ignored --nocapture bulk_throughput`.
    #[test]
    #[ignore]
    fn bulk_throughput() {
        const SIZE: usize = 256 << 20;
        let mib = |d: Duration| SIZE as f64 / (1 << 20) as f64 / d.as_secs_f64();

        let bytes = encode(&vec![0xa5u8; SIZE]);
        let start = Instant::now();
        let out = decode_vec_u8(&mut &bytes[..]).unwrap();
        let elapsed = start.elapsed();
        assert_eq!(out.len(), SIZE);
        println!(
            "decode_vec_u8  256 MiB: {elapsed:?} ({:.0} MiB/s)",
            mib(elapsed)
        );
        // Baseline: a plain copy into fresh memory, which page faults dominate.
        let start = Instant::now();
        let copy = bytes[bytes.len() - SIZE..].to_vec();
        let elapsed = start.elapsed();
        assert_eq!(copy, out);
        println!(
            "baseline to_vec 256 MiB: {elapsed:?} ({:.0} MiB/s)",
            mib(elapsed)
        );
        drop((bytes, out, copy));

        let bytes = encode(&vec![1.25f32; SIZE / 4]);
        let start = Instant::now();
        let out = decode_vec_f32(&mut &bytes[..]).unwrap();
        let elapsed = start.elapsed();
        assert_eq!(out.len(), SIZE / 4);
        println!(
            "decode_vec_f32 256 MiB: {elapsed:?} ({:.0} MiB/s)",
            mib(elapsed)
        );
        drop((bytes, out));

        let bytes = encode(&vec![1.25f64; SIZE / 8]);
        let start = Instant::now();
        let out = decode_vec_f64(&mut &bytes[..]).unwrap();
        let elapsed = start.elapsed();
        assert_eq!(out.len(), SIZE / 8);
        println!(
            "decode_vec_f64 256 MiB: {elapsed:?} ({:.0} MiB/s)",
            mib(elapsed)
        );
        drop((bytes, out));

        // The generic path, for comparison.
        let bytes = encode(&vec![1.25f32; SIZE / 4]);
        let start = Instant::now();
        let out: Vec<f32> = decode_all(&bytes[..]).unwrap();
        let elapsed = start.elapsed();
        assert_eq!(out.len(), SIZE / 4);
        println!(
            "decode_all::<Vec<f32>> 256 MiB: {elapsed:?} ({:.0} MiB/s)",
            mib(elapsed)
        );
    }
}
