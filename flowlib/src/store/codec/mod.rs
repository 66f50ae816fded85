//! The artifact codec: how one field becomes one blob and back.
//!
//! A blob is an 8-byte header followed by the field's value encoded with bincode 2
//! (`config::standard()`, through serde):
//!
//! | bytes | meaning |
//! |---|---|
//! | 0..4 | magic `FLBL` |
//! | 4 | blob format version (1) |
//! | 5 | codec id (1 = bincode 2 standard config, serde) |
//! | 6..8 | codec major version, little endian (3; 2 still decodes) |
//!
//! Encoding uses [`ser`], which writes bincode's bytes except that `HashMap` entries and
//! `HashSet` elements are sorted by their encoded bytes, so equal values hash the same in
//! every process (version 3; version 2 blobs, written by bincode itself in iteration
//! order, decode unchanged: the byte format is the same). Decoding uses [`de`], a reader
//! of the same format whose allocations are bounded by the bytes actually present, so a
//! malformed blob with a huge length prefix is rejected instead of exhausting memory. `Vec<u8>`, `Vec<f32>` and
//! `Vec<f64>` fields take bulk paths that produce exactly the bytes bincode would.

pub(crate) mod de;
mod ser;

use std::marker::PhantomData;

use serde::de::DeserializeOwned;
use serde::Serialize;

pub use de::DecodeError;
pub(crate) use de::Source;

/// Magic bytes that open every blob.
pub(crate) const MAGIC: &[u8; 4] = b"FLBL";
/// Blob format version.
pub(crate) const FORMAT_VERSION: u8 = 1;
/// Codec id: bincode 2, standard configuration, via serde.
pub(crate) const CODEC_BINCODE2: u8 = 1;
/// Major version of the codec this version writes: 3 = hash collections in canonical
/// order.
pub(crate) const CODEC_MAJOR: u16 = 3;
/// Versions this version reads: 2 (bincode's own order) has the same byte format.
const CODEC_READS: [u16; 2] = [2, 3];
/// Length of the header.
pub(crate) const HEADER_LEN: usize = 8;

/// The header every blob written by this version starts with.
pub(crate) fn header() -> [u8; HEADER_LEN] {
    let v = CODEC_MAJOR.to_le_bytes();
    [
        MAGIC[0],
        MAGIC[1],
        MAGIC[2],
        MAGIC[3],
        FORMAT_VERSION,
        CODEC_BINCODE2,
        v[0],
        v[1],
    ]
}

/// Check a blob header; the error says what was found.
pub(crate) fn check_header(h: &[u8]) -> Result<(), String> {
    if h.len() < HEADER_LEN {
        return Err(format!(
            "blob is {} bytes, shorter than its {HEADER_LEN}-byte header",
            h.len()
        ));
    }
    if &h[0..4] != MAGIC {
        return Err("not a flowlib blob (bad magic bytes)".into());
    }
    if h[4] != FORMAT_VERSION {
        return Err(format!(
            "blob format version {} is not supported by this flowlib (supports {FORMAT_VERSION})",
            h[4]
        ));
    }
    if h[5] != CODEC_BINCODE2 {
        return Err(format!(
            "blob codec id {} is not supported (supports {CODEC_BINCODE2} = bincode 2)",
            h[5]
        ));
    }
    let major = u16::from_le_bytes([h[6], h[7]]);
    if !CODEC_READS.contains(&major) {
        return Err(format!(
            "blob codec version {major} is not supported by this flowlib (reads {CODEC_READS:?})"
        ));
    }
    Ok(())
}

#[cfg(test)]
fn bincode_config() -> bincode::config::Configuration {
    bincode::config::standard()
}

/// Error while encoding a field.
#[derive(Debug)]
pub struct EncodeError {
    pub(crate) message: String,
}

impl EncodeError {
    #[doc(hidden)]
    pub fn no_field(i: usize) -> Self {
        EncodeError {
            message: format!("the state has no field #{i}"),
        }
    }
}

impl std::fmt::Display for EncodeError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for EncodeError {}

impl DecodeError {
    #[doc(hidden)]
    pub fn no_field(i: usize) -> Self {
        DecodeError::Custom(format!("the state has no field #{i}"))
    }
}

/// Where encoded bytes go when they are not collected in memory.
pub(crate) trait ByteSink {
    /// Accept the next bytes. A failure is kept by the sink and reported after encoding.
    fn write(&mut self, bytes: &[u8]) -> Result<(), String>;
}

enum WriterMode<'a> {
    /// Collect in `buf`, failing once `limit` bytes would be exceeded.
    Memory { limit: usize },
    /// Stage in `buf`, hand to the sink in chunks.
    Stream(&'a mut dyn ByteSink),
}

/// The destination of one field's encoding (used by generated code).
pub struct FieldWriter<'a> {
    buf: Vec<u8>,
    mode: WriterMode<'a>,
    overflowed: bool,
    sink_error: Option<String>,
}

/// Size of the chunks handed to a streaming sink.
const STREAM_CHUNK: usize = 1 << 20;

impl<'a> FieldWriter<'a> {
    /// A writer collecting into memory, giving up past `limit` bytes.
    pub(crate) fn memory(limit: usize) -> FieldWriter<'static> {
        FieldWriter {
            buf: Vec::with_capacity(256),
            mode: WriterMode::Memory { limit },
            overflowed: false,
            sink_error: None,
        }
    }

    /// A writer streaming into `sink`.
    pub(crate) fn stream(sink: &'a mut dyn ByteSink) -> Self {
        FieldWriter {
            buf: Vec::with_capacity(STREAM_CHUNK),
            mode: WriterMode::Stream(sink),
            overflowed: false,
            sink_error: None,
        }
    }

    /// Append bytes.
    #[inline]
    fn put(&mut self, bytes: &[u8]) -> Result<(), bincode::error::EncodeError> {
        match &mut self.mode {
            WriterMode::Memory { limit } => {
                if self.buf.len() + bytes.len() > *limit {
                    self.overflowed = true;
                    return Err(bincode::error::EncodeError::Other(
                        "flowlib: in-memory limit reached",
                    ));
                }
                self.buf.extend_from_slice(bytes);
                Ok(())
            }
            WriterMode::Stream(sink) => {
                if self.buf.len() + bytes.len() <= STREAM_CHUNK {
                    self.buf.extend_from_slice(bytes);
                    return Ok(());
                }
                // Flush what is staged, then pass large slices straight through.
                if !self.buf.is_empty() {
                    if let Err(e) = sink.write(&self.buf) {
                        self.sink_error = Some(e);
                        return Err(bincode::error::EncodeError::Other("flowlib: sink failed"));
                    }
                    self.buf.clear();
                }
                if bytes.len() >= STREAM_CHUNK {
                    for chunk in bytes.chunks(STREAM_CHUNK) {
                        if let Err(e) = sink.write(chunk) {
                            self.sink_error = Some(e);
                            return Err(bincode::error::EncodeError::Other("flowlib: sink failed"));
                        }
                    }
                } else {
                    self.buf.extend_from_slice(bytes);
                }
                Ok(())
            }
        }
    }

    /// Flush staged bytes to the sink (streaming mode).
    pub(crate) fn flush(&mut self) -> Result<(), String> {
        if let Some(e) = self.sink_error.take() {
            return Err(e);
        }
        if let WriterMode::Stream(sink) = &mut self.mode {
            if !self.buf.is_empty() {
                sink.write(&self.buf)?;
                self.buf.clear();
            }
        }
        Ok(())
    }

    /// Whether the in-memory limit was hit.
    pub(crate) fn overflowed(&self) -> bool {
        self.overflowed
    }

    /// The collected bytes (memory mode).
    pub(crate) fn into_bytes(self) -> Vec<u8> {
        self.buf
    }

    /// Write raw bytes (the header).
    #[inline]
    pub(crate) fn write_raw(&mut self, bytes: &[u8]) -> Result<(), EncodeError> {
        self.put(bytes).map_err(|e| self.encode_error(e))
    }

    fn encode_error(&mut self, e: bincode::error::EncodeError) -> EncodeError {
        if self.overflowed {
            return EncodeError {
                message: "in-memory limit reached".into(),
            };
        }
        if let Some(s) = self.sink_error.take() {
            return EncodeError { message: s };
        }
        EncodeError {
            message: e.to_string(),
        }
    }

    fn write_varint(&mut self, v: u64) -> Result<(), EncodeError> {
        let mut tmp = [0u8; 9];
        let n = encode_varint_u64(v, &mut tmp);
        self.write_raw(&tmp[..n])
    }
}

impl bincode::enc::write::Writer for FieldWriter<'_> {
    #[inline]
    fn write(&mut self, bytes: &[u8]) -> Result<(), bincode::error::EncodeError> {
        self.put(bytes)
    }
}

/// bincode's variable-length encoding of a `u64` (as used for lengths).
pub(crate) fn encode_varint_u64(v: u64, out: &mut [u8; 9]) -> usize {
    if v < 251 {
        out[0] = v as u8;
        1
    } else if v <= u64::from(u16::MAX) {
        out[0] = 251;
        out[1..3].copy_from_slice(&(v as u16).to_le_bytes());
        3
    } else if v <= u64::from(u32::MAX) {
        out[0] = 252;
        out[1..5].copy_from_slice(&(v as u32).to_le_bytes());
        5
    } else {
        out[0] = 253;
        out[1..9].copy_from_slice(&v.to_le_bytes());
        9
    }
}

/// Where a field's encoded bytes are read from (used by generated code).
pub struct FieldReader<'a> {
    inner: ReaderInner<'a>,
}

enum ReaderInner<'a> {
    Slice(&'a [u8]),
    Stream(&'a mut dyn Source),
}

impl<'a> FieldReader<'a> {
    pub(crate) fn slice(bytes: &'a [u8]) -> Self {
        FieldReader {
            inner: ReaderInner::Slice(bytes),
        }
    }

    pub(crate) fn stream(src: &'a mut dyn Source) -> Self {
        FieldReader {
            inner: ReaderInner::Stream(src),
        }
    }
}

impl Source for FieldReader<'_> {
    #[inline]
    fn read_exact(&mut self, buf: &mut [u8]) -> Result<(), DecodeError> {
        match &mut self.inner {
            ReaderInner::Slice(s) => s.read_exact(buf),
            ReaderInner::Stream(src) => src.read_exact(buf),
        }
    }

    #[inline]
    fn remaining(&self) -> u64 {
        match &self.inner {
            ReaderInner::Slice(s) => s.len() as u64,
            ReaderInner::Stream(src) => src.remaining(),
        }
    }
}

/// Type tag for autoref-based dispatch in generated code: bulk codecs for a few
/// large-array types, serde for everything else.
pub struct Tag<T>(PhantomData<fn() -> T>);

impl<T> std::fmt::Debug for Tag<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Tag<{}>", std::any::type_name::<T>())
    }
}

impl std::fmt::Debug for FieldWriter<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FieldWriter")
            .field("buffered", &self.buf.len())
            .finish_non_exhaustive()
    }
}

impl std::fmt::Debug for FieldReader<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FieldReader").finish_non_exhaustive()
    }
}

impl<T> Tag<T> {
    /// The tag value.
    pub const NEW: Self = Tag(PhantomData);
}

/// The generic path: serde + bincode. Chosen when no bulk codec matches.
pub trait ViaSerde<T> {
    /// Encode `value`.
    fn encode_field(&self, value: &T, w: &mut FieldWriter<'_>) -> Result<(), EncodeError>;
    /// Decode a value.
    fn decode_field(&self, r: &mut FieldReader<'_>) -> Result<T, DecodeError>;
}

impl<T: Serialize + DeserializeOwned> ViaSerde<T> for &Tag<T> {
    fn encode_field(&self, value: &T, w: &mut FieldWriter<'_>) -> Result<(), EncodeError> {
        let mut st = ser::Staged::new(w);
        ser::encode(value, &mut st)?;
        st.finish()
    }

    fn decode_field(&self, r: &mut FieldReader<'_>) -> Result<T, DecodeError> {
        let mut de = de::Deserializer::new(r);
        T::deserialize(&mut de)
    }
}

/// Bulk codecs with bincode's exact byte layout.
pub trait ViaBulk<T> {
    /// Encode `value`.
    fn encode_field(&self, value: &T, w: &mut FieldWriter<'_>) -> Result<(), EncodeError>;
    /// Decode a value.
    fn decode_field(&self, r: &mut FieldReader<'_>) -> Result<T, DecodeError>;
}

impl ViaBulk<Vec<u8>> for Tag<Vec<u8>> {
    fn encode_field(&self, value: &Vec<u8>, w: &mut FieldWriter<'_>) -> Result<(), EncodeError> {
        w.write_varint(value.len() as u64)?;
        w.write_raw(value)
    }

    fn decode_field(&self, r: &mut FieldReader<'_>) -> Result<Vec<u8>, DecodeError> {
        de::decode_vec_u8(r)
    }
}

macro_rules! bulk_float {
    ($t:ty, $dec:path) => {
        impl ViaBulk<Vec<$t>> for Tag<Vec<$t>> {
            fn encode_field(
                &self,
                value: &Vec<$t>,
                w: &mut FieldWriter<'_>,
            ) -> Result<(), EncodeError> {
                const N: usize = std::mem::size_of::<$t>();
                w.write_varint(value.len() as u64)?;
                let mut buf = vec![0u8; 64 * 1024];
                for chunk in value.chunks(buf.len() / N) {
                    for (dst, v) in buf.chunks_exact_mut(N).zip(chunk) {
                        dst.copy_from_slice(&v.to_le_bytes());
                    }
                    w.write_raw(&buf[..chunk.len() * N])?;
                }
                Ok(())
            }

            fn decode_field(&self, r: &mut FieldReader<'_>) -> Result<Vec<$t>, DecodeError> {
                $dec(r)
            }
        }
    };
}
bulk_float!(f32, de::decode_vec_f32);
bulk_float!(f64, de::decode_vec_f64);

/// Encode a value the way a field of type `T` would be, header included (for tests and
/// tools that write blobs outside a flow).
pub fn encode_blob<T: Serialize>(value: &T) -> Result<Vec<u8>, EncodeError> {
    let mut w = FieldWriter::memory(usize::MAX);
    w.write_raw(&header())?;
    let mut st = ser::Staged::new(&mut w);
    ser::encode(value, &mut st)?;
    st.finish()?;
    Ok(w.into_bytes())
}

/// Decode a whole blob (header included) as a `T`.
pub fn decode_blob<T: Serialize + DeserializeOwned>(blob: &[u8]) -> Result<T, DecodeError> {
    check_header(blob).map_err(DecodeError::Custom)?;
    let mut r = FieldReader::slice(&blob[HEADER_LEN..]);
    let v = (&Tag::<T>::NEW).decode_field(&mut r)?;
    if r.remaining() != 0 {
        return Err(DecodeError::TrailingBytes(r.remaining()));
    }
    Ok(v)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn via_bulk<T>(value: &T) -> Vec<u8>
    where
        Tag<T>: ViaBulk<T>,
    {
        let mut w = FieldWriter::memory(usize::MAX);
        Tag::<T>::NEW.encode_field(value, &mut w).unwrap();
        w.into_bytes()
    }

    fn via_serde<T: Serialize + DeserializeOwned>(value: &T) -> Vec<u8> {
        let mut w = FieldWriter::memory(usize::MAX);
        (&Tag::<T>::NEW).encode_field(value, &mut w).unwrap();
        w.into_bytes()
    }

    #[test]
    fn bulk_paths_write_exactly_what_bincode_writes() {
        for n in [0usize, 1, 250, 251, 65_535, 65_536, 200_000] {
            let bytes: Vec<u8> = (0..n).map(|i| (i * 7) as u8).collect();
            let reference = bincode::serde::encode_to_vec(&bytes, bincode_config()).unwrap();
            assert_eq!(via_bulk(&bytes), reference, "Vec<u8> len {n}");
            assert_eq!(via_serde(&bytes), reference);

            let floats: Vec<f32> = (0..n).map(|i| i as f32 * 0.5 - 3.0).collect();
            let reference = bincode::serde::encode_to_vec(&floats, bincode_config()).unwrap();
            assert_eq!(via_bulk(&floats), reference, "Vec<f32> len {n}");

            let doubles: Vec<f64> = (0..n).map(|i| i as f64 * -0.25).collect();
            let reference = bincode::serde::encode_to_vec(&doubles, bincode_config()).unwrap();
            assert_eq!(via_bulk(&doubles), reference, "Vec<f64> len {n}");

            let mut r = FieldReader::slice(&reference);
            assert_eq!(Tag::<Vec<f64>>::NEW.decode_field(&mut r).unwrap(), doubles);
        }
    }

    #[test]
    fn varint_matches_bincode() {
        for v in [
            0u64,
            250,
            251,
            65_535,
            65_536,
            u32::MAX as u64,
            u32::MAX as u64 + 1,
            u64::MAX,
        ] {
            let mut tmp = [0u8; 9];
            let n = encode_varint_u64(v, &mut tmp);
            let reference = bincode::serde::encode_to_vec(v, bincode_config()).unwrap();
            assert_eq!(&tmp[..n], &reference[..], "{v}");
        }
    }

    #[test]
    fn memory_writer_overflows_cleanly() {
        let mut w = FieldWriter::memory(10);
        let value = vec![1u64; 100];
        let err = (&Tag::<Vec<u64>>::NEW)
            .encode_field(&value, &mut w)
            .unwrap_err();
        assert!(w.overflowed(), "{err}");
    }

    #[test]
    fn blob_roundtrip_and_header_checks() {
        let blob = encode_blob(&("hello".to_string(), 42u32)).unwrap();
        assert_eq!(&blob[..4], MAGIC);
        let v: (String, u32) = decode_blob(&blob).unwrap();
        assert_eq!(v, ("hello".to_string(), 42));
        let mut bad = blob.clone();
        bad[0] = b'X';
        assert!(decode_blob::<(String, u32)>(&bad).is_err());
        let mut newer = blob.clone();
        newer[4] = 9;
        let err = decode_blob::<(String, u32)>(&newer)
            .unwrap_err()
            .to_string();
        assert!(err.contains("version 9"), "{err}");
    }

    #[test]
    fn blobs_of_codec_version_2_still_decode() {
        // What flowlib wrote before version 3: bincode's own bytes (here a HashMap in its
        // iteration order) under a version-2 header.
        let map: std::collections::HashMap<String, Vec<u64>> =
            (0..50).map(|i| (format!("k{i}"), vec![i; 3])).collect();
        let mut old = header().to_vec();
        old[6..8].copy_from_slice(&2u16.to_le_bytes());
        old.extend(bincode::serde::encode_to_vec(&map, bincode_config()).unwrap());
        let back: std::collections::HashMap<String, Vec<u64>> = decode_blob(&old).unwrap();
        assert_eq!(back, map);
        let new = encode_blob(&map).unwrap();
        assert_eq!(
            u16::from_le_bytes([new[6], new[7]]),
            3,
            "written as version 3"
        );
        let mut future = new.clone();
        future[6..8].copy_from_slice(&4u16.to_le_bytes());
        let err = decode_blob::<std::collections::HashMap<String, Vec<u64>>>(&future)
            .unwrap_err()
            .to_string();
        assert!(err.contains("codec version 4 is not supported"), "{err}");
    }
}
