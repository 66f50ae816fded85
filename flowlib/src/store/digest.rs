//! Content digests: `sha256:<hex>` of a blob's bytes, plus its size.

use std::fmt;
use std::io::Read;
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};
// SHA-256 from ring: its block function is assembly (SHA-NI or AVX2, picked at run time),
// so hashing runs at full speed in a user's debug build too, where a pure-Rust hasher
// compiled at opt-level 0 is 25-30x slower (issue #8).
use ring::digest::{Context, SHA256};

/// The SHA-256 of a blob's encoded bytes. Displays as `sha256:<64 hex digits>`.
///
/// ```
/// let d = flowlib::Digest::of(b"hello");
/// assert_eq!(d.to_string(), "sha256:2cf24dba5fb0a30e26e83b2ac5b9e29e1b161e5c1fa7425e73043362938b9824");
/// assert_eq!(d.to_string().parse::<flowlib::Digest>().unwrap(), d);
/// ```
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Digest([u8; 32]);

impl Digest {
    /// Hash `bytes` in one go.
    pub fn of(bytes: &[u8]) -> Self {
        let d = ring::digest::digest(&SHA256, bytes);
        Digest(d.as_ref().try_into().expect("SHA-256 is 32 bytes"))
    }

    /// The raw 32 bytes.
    pub fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }

    /// Lower-case hex of the 32 bytes, without the `sha256:` prefix.
    pub fn hex(&self) -> String {
        let mut s = String::with_capacity(64);
        for b in self.0 {
            s.push(char::from(HEX[(b >> 4) as usize]));
            s.push(char::from(HEX[(b & 15) as usize]));
        }
        s
    }

    /// The first 12 hex digits, for display.
    pub fn short(&self) -> String {
        self.hex()[..12].to_string()
    }
}

const HEX: &[u8; 16] = b"0123456789abcdef";

impl fmt::Display for Digest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "sha256:{}", self.hex())
    }
}

impl fmt::Debug for Digest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "sha256:{}", self.short())
    }
}

/// Error parsing a [`Digest`] from text.
#[derive(Debug, Clone, thiserror::Error)]
#[error("invalid digest `{0}`: expected `sha256:` followed by 64 lower-case hex digits")]
pub struct ParseDigestError(String);

impl FromStr for Digest {
    type Err = ParseDigestError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let hex = s.strip_prefix("sha256:").unwrap_or(s);
        if hex.len() != 64 {
            return Err(ParseDigestError(s.to_string()));
        }
        let mut out = [0u8; 32];
        let bytes = hex.as_bytes();
        for (i, o) in out.iter_mut().enumerate() {
            let hi = hex_val(bytes[2 * i]).ok_or_else(|| ParseDigestError(s.to_string()))?;
            let lo = hex_val(bytes[2 * i + 1]).ok_or_else(|| ParseDigestError(s.to_string()))?;
            *o = (hi << 4) | lo;
        }
        Ok(Digest(out))
    }
}

fn hex_val(c: u8) -> Option<u8> {
    match c {
        b'0'..=b'9' => Some(c - b'0'),
        b'a'..=b'f' => Some(c - b'a' + 10),
        _ => None,
    }
}

impl Serialize for Digest {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Digest {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

/// A stored blob: its digest and its size in bytes. This is an artifact's address.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug, Serialize, Deserialize)]
#[non_exhaustive]
pub struct BlobRef {
    /// SHA-256 of the blob bytes.
    pub digest: Digest,
    /// Blob size in bytes (header included).
    pub size: u64,
}

impl fmt::Display for BlobRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} ({} bytes)", self.digest, self.size)
    }
}

/// Incremental SHA-256 that also counts bytes.
#[derive(Clone)]
pub(crate) struct Hasher {
    inner: Context,
    len: u64,
}

impl Default for Hasher {
    fn default() -> Self {
        Hasher {
            inner: Context::new(&SHA256),
            len: 0,
        }
    }
}

impl Hasher {
    pub(crate) fn new() -> Self {
        Self::default()
    }

    pub(crate) fn update(&mut self, bytes: &[u8]) {
        self.inner.update(bytes);
        self.len += bytes.len() as u64;
    }

    pub(crate) fn finish(self) -> BlobRef {
        BlobRef {
            digest: Digest(
                self.inner
                    .finish()
                    .as_ref()
                    .try_into()
                    .expect("SHA-256 is 32 bytes"),
            ),
            size: self.len,
        }
    }
}

/// Digest and size of everything `r` yields, read in 1 MiB chunks.
pub(crate) fn hash_reader(mut r: impl Read) -> std::io::Result<BlobRef> {
    let mut h = Hasher::new();
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let n = r.read(&mut buf)?;
        if n == 0 {
            return Ok(h.finish());
        }
        h.update(&buf[..n]);
    }
}

/// Digest and size of a local file.
pub(crate) fn hash_file(path: &std::path::Path) -> std::io::Result<BlobRef> {
    hash_reader(std::fs::File::open(path)?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn roundtrip_and_errors() {
        let d = Digest::of(b"abc");
        assert_eq!(d.to_string().parse::<Digest>().unwrap(), d);
        assert_eq!(d.hex().parse::<Digest>().unwrap(), d);
        assert!("sha256:xyz".parse::<Digest>().is_err());
        assert!(format!("sha256:{}", "G".repeat(64))
            .parse::<Digest>()
            .is_err());
        let json = serde_json::to_string(&d).unwrap();
        assert_eq!(serde_json::from_str::<Digest>(&json).unwrap(), d);
    }

    #[test]
    fn hasher_matches_one_shot() {
        let mut h = Hasher::new();
        h.update(b"hello ");
        h.update(b"world");
        let r = h.finish();
        assert_eq!(r.digest, Digest::of(b"hello world"));
        assert_eq!(r.size, 11);
        assert_eq!(hash_reader(&b"hello world"[..]).unwrap(), r);
    }
}
