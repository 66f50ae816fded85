//! Writing a value: encode it, dedup by digest, store it create-only (see the module docs
//! of [`cas`](super) for the small and large paths).

use bytes::Bytes;
use object_store::PutMode;

use super::quarantine::quarantine;
use super::upload::UploadSink;
use super::{Encode, What, SMALL_LIMIT};
use crate::error::{chain, Error, Result};
use crate::store::codec::{self, ByteSink, FieldWriter};
use crate::store::{layout, BlobRef, Datastore, Digest, Hasher};

/// On a remote store, a value found already stored is compared byte for byte with the
/// stored copy up to this size (one small read); above it, by size only. Local stores
/// always compare.
const COMPARE_REMOTE: u64 = 1 << 20;

/// Encode a value with `encode` and store it; `base` is the same artifact's blob in the
/// task's input, so an unchanged value costs no write.
pub(crate) fn put_encoded(
    ds: &Datastore,
    base: Option<BlobRef>,
    what: &What,
    encode: &mut Encode<'_>,
) -> Result<BlobRef> {
    Ok(put_upto(ds, base, what, encode, 0)?.0)
}

/// Encode a value like [`put_encoded`], but hand back the bytes of a small one (at most
/// the datastore's [`inline_limit`](Datastore::inline_limit)) instead of storing it: the
/// caller holds them inline in its manifest.
pub(crate) fn put_or_inline(
    ds: &Datastore,
    base: Option<BlobRef>,
    what: &What,
    encode: &mut Encode<'_>,
) -> Result<(BlobRef, Option<Bytes>)> {
    put_upto(ds, base, what, encode, ds.inline_limit())
}

/// Store as an object a blob that was held inline (`bytes`, already checked against
/// `blob` by the caller), for a record that names it without holding it (an alias).
pub(crate) fn put_inline(ds: &Datastore, blob: BlobRef, bytes: &Bytes, what: &What) -> Result<()> {
    Put {
        ds,
        base: None,
        what,
    }
    .small(blob, bytes.clone())
}

fn put_upto(
    ds: &Datastore,
    base: Option<BlobRef>,
    what: &What,
    encode: &mut Encode<'_>,
    inline: usize,
) -> Result<(BlobRef, Option<Bytes>)> {
    let put = Put { ds, base, what };
    let mut w = FieldWriter::memory(SMALL_LIMIT);
    w.write_raw(&codec::header()).expect("header fits");
    match encode(&mut w) {
        Ok(()) => {
            let bytes = w.into_bytes();
            let blob = BlobRef {
                digest: Digest::of(&bytes),
                size: bytes.len() as u64,
            };
            if bytes.len() <= inline {
                // An exact copy: the writer's buffer has room to spare, and the driver
                // keeps these bytes for every task until its successors start.
                return Ok((blob, Some(Bytes::copy_from_slice(&bytes))));
            }
            let bytes = Bytes::from(bytes);
            if Some(blob) != base {
                put.small(blob, bytes)?;
            }
            Ok((blob, None))
        }
        Err(_) if w.overflowed() && ds.is_local() => Ok((put.large_local(encode)?, None)),
        Err(_) if w.overflowed() => Ok((put.large_remote(encode)?, None)),
        Err(e) => Err(put.cannot_encode(e)),
    }
}

/// One value being written: where, what it is, and the blob it replaces.
struct Put<'a> {
    ds: &'a Datastore,
    base: Option<BlobRef>,
    what: &'a What,
}

impl Put<'_> {
    fn cannot_encode(&self, e: impl std::fmt::Display) -> Error {
        self.what.err("-", format!("cannot encode: {e}"))
    }

    /// Stream the encoding into `sink`.
    fn encode_into(&self, sink: &mut dyn ByteSink, encode: &mut Encode<'_>) -> Result<()> {
        encode_streaming(sink, encode).map_err(|e| self.cannot_encode(e))
    }

    /// The blob the encoding would be, from a hashing pass that stores nothing.
    fn hash(&self, encode: &mut Encode<'_>) -> Result<BlobRef> {
        let mut hs = HashSink(Hasher::new());
        self.encode_into(&mut hs, encode)?;
        Ok(hs.0.finish())
    }

    fn small(&self, blob: BlobRef, bytes: Bytes) -> Result<()> {
        let ds = self.ds;
        if ds.is_known(&blob.digest) {
            return Ok(());
        }
        let rel = layout::blob(&blob.digest);
        let mut gone = 0;
        loop {
            match ds.put_bytes(&rel, bytes.clone(), PutMode::Create) {
                // Created: no copy existed, so no gc sweep can have judged one old, and a
                // sweep that lists this one sees it young. Steps (b) and (c) of the gc
                // protocol guard a copy found or refreshed; a created one needs neither
                // (argued in `maintenance/gc.rs`), which saves two requests per blob.
                Ok(()) => {
                    ds.mark_known(blob.digest);
                    ds.cache_put(blob.digest, &bytes);
                    return Ok(());
                }
                Err(e) if e.is_already_exists() => self.keep_or_replace(&rel, blob, &bytes)?,
                Err(e) => return Err(self.cannot_store(blob, &e)),
            }
            match self.confirm(&rel, blob)? {
                Confirm::Held => {
                    ds.mark_known(blob.digest);
                    ds.cache_put(blob.digest, &bytes);
                    return Ok(());
                }
                Confirm::Waited => {}
                Confirm::Gone => self.count_gone(&mut gone, blob)?,
            }
        }
    }

    fn cannot_store(&self, blob: BlobRef, e: &Error) -> Error {
        self.what
            .err(blob.digest, format!("cannot store: {}", chain(e)))
    }

    /// The same digest is already stored. Guard against a damaged copy (a flipped byte, a
    /// truncation) silently becoming every future run's artifact: a copy that is not
    /// ours is moved to quarantine and ours stored create-only in its place, as a first
    /// write would. A good copy that is old is refreshed (see [`is_old`]).
    fn keep_or_replace(&self, rel: &str, blob: BlobRef, bytes: &Bytes) -> Result<()> {
        let (ds, what) = (self.ds, self.what);
        if let Some(modified) = self.stored_copy(rel, blob, bytes)? {
            if is_old(modified) && ds.touch(rel, bytes).is_err() {
                // Gone since (a gc swept it), or not ours to touch: store it again.
                return ds
                    .put_bytes(rel, bytes.clone(), PutMode::Overwrite)
                    .map_err(|e| self.cannot_store(blob, &e));
            }
            return Ok(());
        }
        quarantine(ds, blob).map_err(|e| {
            what.err(
                blob.digest,
                format!("cannot move a damaged stored copy aside: {}", chain(&e)),
            )
        })?;
        match ds.put_bytes(rel, bytes.clone(), PutMode::Create) {
            // Another writer stored the value meanwhile.
            Ok(()) => Ok(()),
            Err(e) if e.is_already_exists() => Ok(()),
            Err(e) => Err(self.cannot_store(blob, &e)),
        }
    }

    /// When the copy stored at `rel` was written, if it is this blob: same size and, where
    /// reading it back is cheap (local stores; remote blobs up to [`COMPARE_REMOTE`]),
    /// the same bytes. `None` if it is not, or is gone.
    fn stored_copy(
        &self,
        rel: &str,
        blob: BlobRef,
        bytes: &Bytes,
    ) -> Result<Option<chrono::DateTime<chrono::Utc>>> {
        let (ds, what) = (self.ds, self.what);
        let checking = |e: Error| {
            what.err(
                blob.digest,
                format!("cannot check the stored copy: {}", chain(&e)),
            )
        };
        let Some(meta) = ds.head(rel).map_err(checking)? else {
            return Ok(None);
        };
        if meta.size != blob.size {
            return Ok(None);
        }
        if ds.is_local() || blob.size <= COMPARE_REMOTE {
            let stored = ds.get_bytes(rel).map_err(checking)?;
            if stored.as_ref() != Some(bytes) {
                return Ok(None);
            }
        }
        Ok(Some(meta.last_modified))
    }

    /// The writer's half of the `gc` protocol (argued at the top of `maintenance/gc.rs`):
    /// the blob was just stored, refreshed or found young (step a). Wait until no gc sweep
    /// is in progress (b), then check that it is still there (c).
    fn confirm(&self, rel: &str, blob: BlobRef) -> Result<Confirm> {
        let (ds, what) = (self.ds, self.what);
        let check = || -> Result<Confirm> {
            if await_no_gc_sweep(ds)? {
                // Step (a) may be long past: do it again, so that (a) to (c) stays short.
                return Ok(Confirm::Waited);
            }
            Ok(match ds.head(rel)? {
                Some(m) if m.size == blob.size => Confirm::Held,
                _ => Confirm::Gone,
            })
        };
        check().map_err(|e| what.err(blob.digest, format!("cannot check stored blob: {e}")))
    }

    /// A sweep deleted the blob under the writer: store it again, a bounded number of
    /// times (a blob just stored is young, so one retry suffices unless something is off).
    fn count_gone(&self, gone: &mut usize, blob: BlobRef) -> Result<()> {
        *gone += 1;
        if *gone < STORE_ATTEMPTS {
            return Ok(());
        }
        Err(self.what.err(
            blob.digest,
            format!("cannot store: gc deleted it {STORE_ATTEMPTS} times in a row"),
        ))
    }

    /// A large value on a remote store: hash first (dedup before upload), then upload.
    fn large_remote(&self, encode: &mut Encode<'_>) -> Result<BlobRef> {
        let ds = self.ds;
        let blob = self.hash(encode)?;
        if Some(blob) == self.base || ds.is_known(&blob.digest) {
            return Ok(blob);
        }
        let rel = layout::blob(&blob.digest);
        let mut gone = 0;
        loop {
            let found = match ds.head(&rel) {
                // An old copy is uploaded again rather than trusted, to refresh its timestamp.
                Ok(Some(meta)) => meta.size == blob.size && !is_old(meta.last_modified),
                _ => false,
            };
            if !found {
                self.upload_verified(&rel, blob, encode)?;
            }
            match self.confirm(&rel, blob)? {
                Confirm::Held => {
                    ds.mark_known(blob.digest);
                    return Ok(blob);
                }
                Confirm::Waited => {}
                Confirm::Gone => self.count_gone(&mut gone, blob)?,
            }
        }
    }

    /// Pass 2 of a remote write: upload to `rel` while hashing again; abort on any mismatch.
    fn upload_verified(&self, rel: &str, blob: BlobRef, encode: &mut Encode<'_>) -> Result<()> {
        let (ds, what) = (self.ds, self.what);
        let upload = ds
            .put_multipart(rel)
            .map_err(|e| what.err(blob.digest, format!("cannot start upload: {e}")))?;
        let mut sink = UploadSink::new(ds, upload, &what.artifact);
        let res = encode_streaming(&mut sink, encode);
        let again = sink.hashed();
        match res {
            Err(e) => {
                sink.abort();
                return Err(what.err(blob.digest, format!("cannot store: {e}")));
            }
            Ok(()) if again != blob => {
                sink.abort();
                return Err(not_deterministic(what, blob, again));
            }
            Ok(()) => {}
        }
        match sink.finish() {
            Ok(()) => Ok(()),
            // Completing a multipart upload is atomic: if the object is there at full
            // size, the completion went through and only its response was lost.
            Err(e) => match ds.head(rel) {
                Ok(Some(m)) if m.size == blob.size => Ok(()),
                _ => Err(what.err(blob.digest, format!("cannot store: {e}"))),
            },
        }
    }

    /// A large value on a local store: hash first, so that a value already stored (the
    /// input's own, another task's, an earlier run's) costs one encoding pass and no write.
    /// Only a new value is written: encoded again into a staging object while hashed again
    /// (an encoding that differs the second time is refused, never stored under the first
    /// digest), then renamed to its address. A copy found at the address is trusted by its
    /// size, as on remote stores; `verify` and every read check its bytes, and a read that
    /// finds them wrong quarantines it so the next write stores it afresh.
    fn large_local(&self, encode: &mut Encode<'_>) -> Result<BlobRef> {
        let ds = self.ds;
        let blob = self.hash(encode)?;
        if Some(blob) == self.base || ds.is_known(&blob.digest) {
            return Ok(blob);
        }
        crate::failpoint::hold("after-hash", &self.what.artifact);
        let rel = layout::blob(&blob.digest);
        let mut gone = 0;
        loop {
            // Step (a) of the gc protocol: a copy there is made young; else store it.
            if !self.refresh_local(&rel, blob) {
                self.stage_and_rename(&rel, blob, encode)?;
            }
            match self.confirm(&rel, blob)? {
                Confirm::Held => {
                    ds.mark_known(blob.digest);
                    return Ok(blob);
                }
                Confirm::Waited => {}
                Confirm::Gone => self.count_gone(&mut gone, blob)?,
            }
        }
    }

    /// Make a stored local blob young again; `false` if it is gone or cannot be touched.
    fn refresh_local(&self, rel: &str, blob: BlobRef) -> bool {
        let ds = self.ds;
        match ds.head(rel) {
            Ok(Some(m)) if m.size == blob.size => {
                // A local touch only sets the timestamp: it needs no bytes.
                !is_old(m.last_modified) || ds.touch(rel, &Bytes::new()).is_ok()
            }
            _ => false,
        }
    }

    /// One staged local write of `blob`: encode into a staging object while hashing, then
    /// rename it to `rel`, its address, if the bytes are `blob`'s.
    fn stage_and_rename(&self, rel: &str, blob: BlobRef, encode: &mut Encode<'_>) -> Result<()> {
        let (ds, what) = (self.ds, self.what);
        let staging = layout::staging(&crate::store::unique_name());
        let upload = ds
            .put_multipart(&staging)
            .map_err(|e| what.err("-", format!("cannot start a staged write: {e}")))?;
        let mut sink = UploadSink::new(ds, upload, &what.artifact);
        if let Err(e) = encode_streaming(&mut sink, encode) {
            sink.abort();
            return Err(what.err("-", format!("cannot store: {e}")));
        }
        let again = sink.hashed();
        if again != blob {
            sink.abort();
            return Err(not_deterministic(what, blob, again));
        }
        sink.finish()
            .map_err(|e| what.err(blob.digest, format!("cannot store: {e}")))?;
        // Same content under the same name: replacing an existing copy is harmless and atomic.
        ds.rename(&staging, rel).map_err(|e| {
            what.err(
                blob.digest,
                format!("cannot move the staged blob into place: {e}"),
            )
        })
    }
}

fn not_deterministic(what: &What, first: BlobRef, again: BlobRef) -> Error {
    what.err(
        first.digest,
        format!(
            "its encoding is not deterministic (two encodings gave {} and {}); check its Serialize implementation",
            first.digest, again.digest
        ),
    )
}

/// How many times a writer stores a blob that gc sweeps keep deleting before giving up.
const STORE_ATTEMPTS: usize = 4;

/// What step (c) of the gc protocol found.
enum Confirm {
    /// The blob is there and no sweep is deleting: rely on it.
    Held,
    /// A sweep was in progress and is over now: do step (a) again.
    Waited,
    /// A sweep deleted it: store it again.
    Gone,
}

/// Wait until no live `gc` sweep lease exists (see the protocol in `maintenance/gc.rs`);
/// `true` if there was one to wait for. A lease older than [`layout::GC_LEASE_STALE`] is
/// a dead gc's and does not count.
fn await_no_gc_sweep(ds: &Datastore) -> Result<bool> {
    let stale = chrono::Duration::from_std(layout::GC_LEASE_STALE).expect("small");
    let mut delay = std::time::Duration::from_millis(10);
    let mut waited = false;
    loop {
        let now = chrono::Utc::now();
        let live = ds
            .list(layout::GC_LEASES)?
            .iter()
            .any(|l| l.last_modified > now - stale);
        if !live {
            return Ok(waited);
        }
        waited = true;
        std::thread::sleep(delay);
        delay = (delay * 2).min(std::time::Duration::from_millis(500));
    }
}

/// Whether a stored object is older than the time a writer may rely on it without
/// refreshing it (the `gc` protocol this is part of is argued in `maintenance/gc.rs`).
fn is_old(t: chrono::DateTime<chrono::Utc>) -> bool {
    let ttl = chrono::Duration::from_std(crate::store::KNOWN_TTL).unwrap_or(chrono::Duration::MAX);
    t < chrono::Utc::now() - ttl
}

fn encode_streaming(sink: &mut dyn ByteSink, encode: &mut Encode<'_>) -> Result<(), String> {
    let mut w = FieldWriter::stream(sink);
    w.write_raw(&codec::header()).map_err(|e| e.to_string())?;
    encode(&mut w).map_err(|e| e.to_string())?;
    w.flush()
}

struct HashSink(Hasher);

impl ByteSink for HashSink {
    fn write(&mut self, bytes: &[u8]) -> Result<(), String> {
        self.0.update(bytes);
        Ok(())
    }
}
