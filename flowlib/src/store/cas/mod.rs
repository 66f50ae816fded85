//! The content-addressed blob store: encode-and-store, load-and-verify.
//!
//! Writing a value:
//! 1. Encode into memory, up to [`SMALL_LIMIT`]. Most artifacts fit: hash the bytes; if
//!    the digest equals the input's (the field is unchanged) nothing is written; else the
//!    blob is put create-only (an existing blob with that digest means it is already stored).
//! 2. A larger value is encoded twice, streaming, so memory stays flat: a first pass only
//!    hashes (an unchanged or already stored blob stops here: dedup before upload), a second
//!    pass uploads in parts straight to the blob's final address (remote stores) or to a
//!    staging file renamed to it (local stores) while hashing again; if the two passes
//!    disagree (a non-deterministic `Serialize`), the write is aborted. Re-storing a value
//!    that exists costs the hashing pass only.
//!
//! Reading verifies size and digest. Small blobs are read whole, verified, then decoded;
//! large blobs are decoded while streaming and hashing, and the value is only returned once
//! the digest matched.
//!
//! A stored blob whose bytes do not match its address is moved to quarantine when a read,
//! a writer of the same value or `verify --repair` finds it (`quarantine.rs`), so that the
//! next write of the value stores it again instead of trusting the damaged copy.

mod file;
mod put;
mod quarantine;
mod read;
mod upload;
mod verify;

use crate::error::{Error, Site};
use crate::store::codec::{DecodeError, EncodeError, FieldReader, FieldWriter};

pub(crate) use file::put_file;
pub(crate) use put::{put_encoded, put_inline, put_or_inline};
pub(crate) use quarantine::quarantine;
pub(crate) use read::load_decoded;
pub(crate) use verify::{verify_blob, Damage};

/// Values whose encoding fits in this many bytes are handled in memory.
pub(crate) const SMALL_LIMIT: usize = 8 << 20;

/// A task's artifacts whose encoding (header included) is at most this many bytes are
/// held inline in its manifest, not stored as objects (see [`TaskManifest::inline`]).
///
/// The trade: an inline blob costs no object (no file creation, no billed request), but
/// its bytes travel in the manifest of every task that passes the field on, and in the
/// driver's view of every task until its successors start, where an object is 40 bytes
/// of digest and size. 1 KiB keeps a foreach of 100,000 items that each produce one new
/// value under ~100 MB of such bytes in the driver, and a chain of steps carrying a
/// value unchanged pays ~1.4 KiB of base64 per task instead of a lookup; values this
/// small are rarely worth deduplicating across tasks (measured in BENCHMARKS.md).
///
/// [`TaskManifest::inline`]: crate::meta::TaskManifest::inline
pub(crate) const INLINE_LIMIT: usize = 1 << 10;

/// Writes one value's fields (the encoder a caller hands to [`put_encoded`]).
pub(crate) type Encode<'a> = dyn FnMut(&mut FieldWriter<'_>) -> Result<(), EncodeError> + 'a;
/// Reads one value's fields (the decoder a caller hands to [`load_decoded`]).
pub(crate) type Decode<'a> = dyn FnMut(&mut FieldReader<'_>) -> Result<(), DecodeError> + 'a;

/// Names what a blob holds, for error messages.
#[derive(Clone, Debug)]
pub(crate) struct What {
    pub(crate) artifact: String,
    pub(crate) site: Site,
}

impl What {
    pub(crate) fn new(artifact: impl Into<String>, site: Site) -> Self {
        What {
            artifact: artifact.into(),
            site,
        }
    }

    pub(crate) fn err(&self, digest: impl std::fmt::Display, message: impl Into<String>) -> Error {
        Error::Artifact {
            artifact: self.artifact.clone(),
            digest: digest.to_string(),
            site: Box::new(self.site.clone()),
            message: message.into(),
        }
    }
}

#[cfg(test)]
mod tests {
    use bytes::Bytes;
    use object_store::PutMode;

    use super::*;
    use crate::error::Result;
    use crate::store::codec::{self, Tag, ViaSerde};
    use crate::store::{layout, BlobRef, Datastore, Digest, OpenMode};

    fn store() -> (tempfile::TempDir, Datastore) {
        let dir = tempfile::tempdir().unwrap();
        let ds =
            Datastore::open(dir.path().join("ds").to_str().unwrap(), OpenMode::Create).unwrap();
        (dir, ds)
    }

    fn put<T: serde::Serialize + serde::de::DeserializeOwned>(
        ds: &Datastore,
        v: &T,
        base: Option<BlobRef>,
    ) -> BlobRef {
        put_encoded(ds, base, &What::new("x", Site::default()), &mut |w| {
            (&Tag::<T>::NEW).encode_field(v, w)
        })
        .unwrap()
    }

    fn get<T: serde::Serialize + serde::de::DeserializeOwned + Default>(
        ds: &Datastore,
        b: BlobRef,
    ) -> Result<T> {
        let mut out = T::default();
        load_decoded(
            ds,
            b,
            None,
            &What::new("x", Site::detail(None, "test")),
            &mut |r| {
                out = (&Tag::<T>::NEW).decode_field(r)?;
                Ok(())
            },
        )?;
        Ok(out)
    }

    fn blob_files(ds: &Datastore) -> usize {
        ds.list("blobs/").unwrap().len()
    }

    #[test]
    fn same_value_is_stored_once() {
        let (_d, ds) = store();
        let a = put(&ds, &vec![1u32, 2, 3], None);
        let b = put(&ds, &vec![1u32, 2, 3], None);
        assert_eq!(a, b);
        assert_eq!(blob_files(&ds), 1);
        // A second datastore handle (another process) dedups through the store itself.
        let ds2 = Datastore::open(ds.url(), OpenMode::Existing).unwrap();
        let c = put(&ds2, &vec![1u32, 2, 3], None);
        assert_eq!(a, c);
        assert_eq!(blob_files(&ds2), 1);
        assert_eq!(get::<Vec<u32>>(&ds2, a).unwrap(), vec![1, 2, 3]);
    }

    #[test]
    fn unchanged_base_writes_nothing() {
        let (_d, ds) = store();
        let v = "hello".to_string();
        let blob = BlobRef {
            digest: Digest::of(&codec::encode_blob(&v).unwrap()),
            size: codec::encode_blob(&v).unwrap().len() as u64,
        };
        let r = put(&ds, &v, Some(blob));
        assert_eq!(r, blob);
        assert_eq!(blob_files(&ds), 0, "unchanged artifact must not be written");
    }

    fn quarantined(ds: &Datastore) -> usize {
        ds.list(layout::QUARANTINE).unwrap().len()
    }

    /// Flip one byte at `at` (from the end if negative) of the blob's file; the good bytes.
    fn flip(dir: &tempfile::TempDir, b: BlobRef, at: isize) -> (std::path::PathBuf, Vec<u8>) {
        let file = dir.path().join("ds").join(layout::blob(&b.digest));
        let good = std::fs::read(&file).unwrap();
        let mut bytes = good.clone();
        let i = if at < 0 {
            bytes.len() - at.unsigned_abs()
        } else {
            at as usize
        };
        bytes[i] ^= 0xff;
        std::fs::write(&file, &bytes).unwrap();
        (file, good)
    }

    #[test]
    fn corrupted_and_truncated_blobs_are_detected_and_quarantined() {
        let (dir, ds) = store();
        let b = put(&ds, &"precious".to_string(), None);
        let (file, good) = flip(&dir, b, -1);
        let fresh = Datastore::open(ds.url(), OpenMode::Existing).unwrap();
        let err = get::<String>(&fresh, b).unwrap_err().to_string();
        assert!(err.contains("corrupted"), "{err}");
        assert!(err.contains(&b.digest.to_string()), "{err}");
        assert!(err.contains("artifact `x`"), "{err}");
        assert!(err.contains("moved to quarantine/sha256/"), "{err}");
        assert!(!file.exists(), "moved aside");
        assert_eq!(quarantined(&fresh), 1);
        // Now it is missing, and the error says where the damaged copy went.
        let err = get::<String>(&fresh, b).unwrap_err().to_string();
        assert!(
            err.contains("missing") && err.contains("quarantine/"),
            "{err}"
        );
        assert!(matches!(
            verify_blob(&fresh, b).unwrap(),
            Some(Damage::Missing {
                quarantined: Some(_)
            })
        ));

        std::fs::write(&file, &good[..3]).unwrap();
        let err = get::<String>(&fresh, b).unwrap_err().to_string();
        assert!(err.contains("3 bytes stored"), "{err}");
        assert!(!file.exists(), "a truncated copy is moved aside too");
        assert_eq!(quarantined(&fresh), 2);

        // The handle that found it forgot it: writing the value again stores it.
        assert_eq!(put(&fresh, &"precious".to_string(), None), b);
        assert_eq!(std::fs::read(&file).unwrap(), good);
        assert_eq!(get::<String>(&fresh, b).unwrap(), "precious");
        assert!(verify_blob(&fresh, b).unwrap().is_none());
    }

    #[test]
    fn a_writer_replaces_a_damaged_copy_of_the_same_size() {
        let (dir, ds) = store();
        let b = put(&ds, &"precious".to_string(), None);
        let (file, good) = flip(&dir, b, -1);
        // Another process writes the same value: it must not trust the damaged copy.
        let other = Datastore::open(ds.url(), OpenMode::Existing).unwrap();
        assert_eq!(put(&other, &"precious".to_string(), None), b);
        assert_eq!(std::fs::read(&file).unwrap(), good);
        assert_eq!(quarantined(&other), 1);
        // A good copy is left alone.
        let third = Datastore::open(ds.url(), OpenMode::Existing).unwrap();
        put(&third, &"precious".to_string(), None);
        assert_eq!(quarantined(&third), 1);
    }

    #[test]
    fn quarantine_leaves_a_good_copy_in_place() {
        let (dir, ds) = store();
        let b = put(&ds, &"precious".to_string(), None);
        let file = dir.path().join("ds").join(layout::blob(&b.digest));
        assert_eq!(quarantine(&ds, b).unwrap(), None);
        assert!(file.exists());
        assert_eq!(quarantined(&ds), 0);
        std::fs::remove_file(&file).unwrap();
        assert_eq!(quarantine(&ds, b).unwrap(), None, "nothing to move");
    }

    #[test]
    fn large_values_stream_dedup_and_verify() {
        let (dir, ds) = store();
        let big: Vec<u64> = (0..3_000_000u64).collect(); // ~ 12 MB encoded: takes the streaming path
        let b = put(&ds, &big, None);
        assert!(b.size > SMALL_LIMIT as u64);
        assert_eq!(get::<Vec<u64>>(&ds, b).unwrap(), big);
        let again = put(&ds, &big, None);
        assert_eq!(again, b);
        assert_eq!(blob_files(&ds), 1);
        assert!(verify_blob(&ds, b).unwrap().is_none());
        // Corrupt one byte in the middle: the streaming read must refuse the value, and
        // move the blob aside.
        let (file, good) = flip(&dir, b, b.size as isize / 2);
        let fresh = Datastore::open(ds.url(), OpenMode::Existing).unwrap();
        let err = get::<Vec<u64>>(&fresh, b).unwrap_err().to_string();
        assert!(err.contains("corrupted"), "{err}");
        assert!(!file.exists(), "{err}");
        // Damage that breaks decoding (the length prefix) is told from a changed type by
        // hashing the stored copy: corrupted, not "cannot decode".
        std::fs::write(&file, &good).unwrap();
        let (file, _) = flip(&dir, b, codec::HEADER_LEN as isize);
        let err = get::<Vec<u64>>(&fresh, b).unwrap_err().to_string();
        assert!(err.contains("corrupted"), "{err}");
        assert!(!file.exists(), "{err}");
        assert_eq!(quarantined(&fresh), 2);
        // A large write of the value stores it again.
        assert_eq!(put(&fresh, &big, None), b);
        assert_eq!(get::<Vec<u64>>(&fresh, b).unwrap(), big);
    }

    #[test]
    fn huge_length_prefix_is_rejected_without_allocating() {
        let (_d, ds) = store();
        // A well-formed blob (valid header and digest) whose String claims 2^60 bytes.
        let mut bytes = codec::header().to_vec();
        bytes.push(253);
        bytes.extend_from_slice(&(1u64 << 60).to_le_bytes());
        bytes.extend_from_slice(b"tiny");
        let blob = BlobRef {
            digest: Digest::of(&bytes),
            size: bytes.len() as u64,
        };
        ds.put_bytes(
            &layout::blob(&blob.digest),
            Bytes::from(bytes),
            PutMode::Create,
        )
        .unwrap();
        let err = get::<String>(&ds, blob).unwrap_err().to_string();
        assert!(err.contains("cannot decode"), "{err}");
    }
}
