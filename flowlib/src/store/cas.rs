//! The content-addressed blob store: encode-and-store, load-and-verify.
//!
//! Writing a value:
//! 1. Encode into memory, up to [`SMALL_LIMIT`]. Most artifacts fit: hash the bytes; if
//!    the digest equals the input's (the field is unchanged) nothing is written; else the
//!    blob is put create-only (an existing blob with that digest means it is already stored).
//! 2. A larger value is encoded twice, streaming, so memory stays flat: a first pass only
//!    hashes (an unchanged or already stored blob stops here: dedup before upload), a second
//!    pass uploads in parts straight to the blob's final address while hashing again; if the
//!    two passes disagree (a non-deterministic `Serialize`), the upload is aborted.
//!
//! Reading verifies size and digest. Small blobs are read whole, verified, then decoded;
//! large blobs are decoded while streaming and hashing, and the value is only returned once
//! the digest matched.

use std::collections::VecDeque;
use std::io::Read;

use bytes::Bytes;
use futures::StreamExt;
use object_store::{GetResultPayload, MultipartUpload, ObjectStoreExt, PutMode, PutPayload};

use crate::error::{Error, Result};
use crate::store::codec::{
    self, ByteSink, DecodeError, EncodeError, FieldReader, FieldWriter, Source,
};
use crate::store::layout;
use crate::store::{BlobRef, Digest, Hasher};
use crate::store::{Datastore, Exec};

/// Values whose encoding fits in this many bytes are handled in memory.
pub(crate) const SMALL_LIMIT: usize = 8 << 20;
/// Part size of streaming uploads.
const PART_SIZE: usize = 16 << 20;
/// Parts in flight at once during a remote upload.
const MAX_PARTS_IN_FLIGHT: usize = 4;

/// Names what a blob holds, for error messages.
#[derive(Clone, Debug)]
pub(crate) struct What {
    pub(crate) artifact: String,
    pub(crate) context: String,
}

impl What {
    pub(crate) fn new(artifact: impl Into<String>, context: impl Into<String>) -> Self {
        What {
            artifact: artifact.into(),
            context: context.into(),
        }
    }

    fn err(&self, digest: impl std::fmt::Display, message: impl Into<String>) -> Error {
        Error::Artifact {
            artifact: self.artifact.clone(),
            digest: digest.to_string(),
            context: self.context.clone(),
            message: message.into(),
        }
    }
}

/// Encode a value with `encode` and store it; `base` is the same artifact's blob in the
/// task's input, so an unchanged value costs no write.
pub(crate) fn put_encoded(
    ds: &Datastore,
    base: Option<BlobRef>,
    what: &What,
    encode: &mut dyn FnMut(&mut FieldWriter<'_>) -> Result<(), EncodeError>,
) -> Result<BlobRef> {
    let mut w = FieldWriter::memory(SMALL_LIMIT);
    w.write_raw(&codec::header()).expect("header fits");
    match encode(&mut w) {
        Ok(()) => {
            let bytes = w.into_bytes();
            let blob = BlobRef {
                digest: Digest::of(&bytes),
                size: bytes.len() as u64,
            };
            if Some(blob) != base {
                put_small(ds, blob, Bytes::from(bytes), what)?;
            }
            Ok(blob)
        }
        Err(_) if w.overflowed() => put_large(ds, base, what, encode),
        Err(e) => Err(what.err("-", format!("cannot encode: {e}"))),
    }
}

fn put_small(ds: &Datastore, blob: BlobRef, bytes: Bytes, what: &What) -> Result<()> {
    if ds.is_known(&blob.digest) {
        return Ok(());
    }
    let rel = layout::blob(&blob.digest);
    match ds.put_bytes(&rel, bytes.clone(), PutMode::Create) {
        Ok(()) => {}
        Err(e) if e.is_already_exists() => {
            // Same digest already stored. Guard against a damaged copy (e.g. truncated by
            // a disk error) silently becoming every future run's artifact.
            let path = ds.path(&rel);
            let meta = ds.retry(|| ds.inner.store.head(&path));
            match meta {
                Ok(m) if m.size == blob.size => {
                    if is_old(m.last_modified) {
                        ds.touch(&rel, &bytes).map_err(|e| {
                            what.err(blob.digest, format!("cannot refresh stored blob: {e}"))
                        })?;
                    }
                }
                _ => ds
                    .put_bytes(&rel, bytes.clone(), PutMode::Overwrite)
                    .map_err(|e| {
                        what.err(blob.digest, format!("cannot repair stored blob: {e}"))
                    })?,
            }
        }
        Err(e) => {
            return Err(what.err(
                blob.digest,
                format!("cannot store: {}", crate::error::chain(&e)),
            ))
        }
    }
    ds.mark_known(blob.digest);
    ds.cache_put(blob.digest, &bytes);
    Ok(())
}

/// Whether a stored object is older than the time a writer may rely on it without
/// refreshing it (see `integrity` for the `gc` rule this protects).
fn is_old(t: chrono::DateTime<chrono::Utc>) -> bool {
    let ttl = chrono::Duration::from_std(crate::store::KNOWN_TTL).unwrap_or(chrono::Duration::MAX);
    t < chrono::Utc::now() - ttl
}

struct HashSink(Hasher);

impl ByteSink for HashSink {
    fn write(&mut self, bytes: &[u8]) -> Result<(), String> {
        self.0.update(bytes);
        Ok(())
    }
}

fn encode_streaming(
    sink: &mut dyn ByteSink,
    encode: &mut dyn FnMut(&mut FieldWriter<'_>) -> Result<(), EncodeError>,
) -> Result<(), String> {
    let mut w = FieldWriter::stream(sink);
    w.write_raw(&codec::header()).map_err(|e| e.to_string())?;
    encode(&mut w).map_err(|e| e.to_string())?;
    w.flush()
}

fn put_large(
    ds: &Datastore,
    base: Option<BlobRef>,
    what: &What,
    encode: &mut dyn FnMut(&mut FieldWriter<'_>) -> Result<(), EncodeError>,
) -> Result<BlobRef> {
    if ds.is_local() {
        return put_large_local(ds, base, what, encode);
    }
    // Pass 1: hash only.
    let mut hs = HashSink(Hasher::new());
    encode_streaming(&mut hs, encode).map_err(|e| what.err("-", format!("cannot encode: {e}")))?;
    let blob = hs.0.finish();
    if Some(blob) == base || ds.is_known(&blob.digest) {
        return Ok(blob);
    }
    let rel = layout::blob(&blob.digest);
    let path = ds.path(&rel);
    if let Ok(meta) = ds.retry(|| ds.inner.store.head(&path)) {
        // An old copy is uploaded again rather than trusted, to refresh its timestamp.
        if meta.size == blob.size && !is_old(meta.last_modified) {
            ds.mark_known(blob.digest);
            return Ok(blob);
        }
    }
    upload_verified(ds, &rel, blob, what, encode)?;
    ds.mark_known(blob.digest);
    Ok(blob)
}

/// Pass 2 of a remote write: upload to `rel` while hashing again; abort on any mismatch.
fn upload_verified(
    ds: &Datastore,
    rel: &str,
    blob: BlobRef,
    what: &What,
    encode: &mut dyn FnMut(&mut FieldWriter<'_>) -> Result<(), EncodeError>,
) -> Result<()> {
    let path = ds.path(rel);
    let upload = ds
        .retry(|| ds.inner.store.put_multipart(&path))
        .map_err(|e| what.err(blob.digest, format!("cannot start upload: {e}")))?;
    let mut sink = UploadSink::new(ds, upload, &what.artifact);
    let res = encode_streaming(&mut sink, encode);
    let again = sink.hasher.clone().finish();
    match res {
        Err(e) => {
            sink.abort();
            return Err(what.err(blob.digest, format!("cannot store: {e}")));
        }
        Ok(()) if again != blob => {
            sink.abort();
            return Err(what.err(
                blob.digest,
                format!(
                    "its encoding is not deterministic (two encodings gave {} and {}); check its Serialize implementation",
                    blob.digest, again.digest
                ),
            ));
        }
        Ok(()) => {}
    }
    match sink.finish() {
        Ok(()) => Ok(()),
        Err(e) => {
            // Completing a multipart upload is atomic: if the object is there at full
            // size, the completion went through and only its response was lost.
            match ds.retry(|| ds.inner.store.head(&path)) {
                Ok(m) if m.size == blob.size => Ok(()),
                _ => Err(what.err(blob.digest, format!("cannot store: {e}"))),
            }
        }
    }
}

struct CountSink(u64);

impl ByteSink for CountSink {
    fn write(&mut self, bytes: &[u8]) -> Result<(), String> {
        self.0 += bytes.len() as u64;
        Ok(())
    }
}

/// Local stores write in one hashing pass to a staging object, then rename it to its
/// address: a rename is free on a filesystem, and writing to the page cache costs less
/// than a second SHA-256 pass. Only when the value may be unchanged (same size as the
/// input's blob) is it hashed first, so an unchanged artifact is never rewritten.
fn put_large_local(
    ds: &Datastore,
    base: Option<BlobRef>,
    what: &What,
    encode: &mut dyn FnMut(&mut FieldWriter<'_>) -> Result<(), EncodeError>,
) -> Result<BlobRef> {
    if let Some(b) = base {
        let mut count = CountSink(0);
        encode_streaming(&mut count, encode)
            .map_err(|e| what.err("-", format!("cannot encode: {e}")))?;
        if count.0 == b.size {
            let mut hs = HashSink(Hasher::new());
            encode_streaming(&mut hs, encode)
                .map_err(|e| what.err("-", format!("cannot encode: {e}")))?;
            if hs.0.finish() == b {
                return Ok(b);
            }
        }
    }
    let staging = layout::staging(&crate::store::unique_name());
    let path = ds.path(&staging);
    let upload = ds
        .block_on(ds.inner.store.put_multipart(&path))
        .map_err(|e| what.err("-", format!("cannot start a staged write: {e}")))?;
    let mut sink = UploadSink::new(ds, upload, &what.artifact);
    if let Err(e) = encode_streaming(&mut sink, encode) {
        sink.abort();
        return Err(what.err("-", format!("cannot store: {e}")));
    }
    let blob = sink.hasher.clone().finish();
    sink.finish()
        .map_err(|e| what.err(blob.digest, format!("cannot store: {e}")))?;
    let rel = layout::blob(&blob.digest);
    // Same content under the same name: replacing an existing copy is harmless and atomic.
    ds.block_on(ds.inner.store.rename(&path, &ds.path(&rel)))
        .map_err(|e| {
            what.err(
                blob.digest,
                format!("cannot move the staged blob into place: {e}"),
            )
        })?;
    ds.mark_known(blob.digest);
    Ok(blob)
}

/// Streams parts of a multipart upload; remote parts upload concurrently on the I/O runtime.
struct UploadSink<'a> {
    ds: &'a Datastore,
    upload: Box<dyn MultipartUpload>,
    hasher: Hasher,
    part: Vec<u8>,
    inflight: VecDeque<tokio::task::JoinHandle<object_store::Result<()>>>,
    parts_sent: usize,
    failed: Option<String>,
    /// The artifact being written (for the crash-test hold point).
    label: String,
}

impl<'a> UploadSink<'a> {
    fn new(ds: &'a Datastore, upload: Box<dyn MultipartUpload>, label: &str) -> Self {
        UploadSink {
            ds,
            upload,
            hasher: Hasher::new(),
            part: Vec::with_capacity(PART_SIZE),
            inflight: VecDeque::new(),
            parts_sent: 0,
            failed: None,
            label: label.to_string(),
        }
    }

    fn send_part(&mut self) -> Result<(), String> {
        let data = std::mem::replace(&mut self.part, Vec::with_capacity(PART_SIZE));
        self.parts_sent += 1;
        let fut = self.upload.put_part(PutPayload::from(data));
        match &self.ds.inner.exec {
            Exec::Inline => self.ds.block_on(fut).map_err(|e| e.to_string()),
            Exec::Tokio(rt) => {
                while self.inflight.len() >= MAX_PARTS_IN_FLIGHT {
                    self.wait_oldest()?;
                }
                self.inflight.push_back(rt.spawn(fut));
                Ok(())
            }
        }
    }

    fn wait_oldest(&mut self) -> Result<(), String> {
        if let Some(h) = self.inflight.pop_front() {
            match self.ds.block_on(h) {
                Ok(Ok(())) => Ok(()),
                Ok(Err(e)) => Err(e.to_string()),
                Err(e) => Err(format!("upload task failed: {e}")),
            }
        } else {
            Ok(())
        }
    }

    fn finish(mut self) -> Result<(), String> {
        if !self.part.is_empty() || self.parts_sent == 0 {
            self.send_part()?;
        }
        while !self.inflight.is_empty() {
            if let Err(e) = self.wait_oldest() {
                self.abort();
                return Err(e);
            }
        }
        let upload = &mut self.upload;
        self.ds
            .block_on(upload.complete())
            .map(|_| ())
            .map_err(|e| e.to_string())
    }

    fn abort(mut self) {
        for h in self.inflight.drain(..) {
            h.abort();
        }
        let upload = &mut self.upload;
        let _ = self.ds.block_on(upload.abort());
    }
}

impl ByteSink for UploadSink<'_> {
    fn write(&mut self, mut bytes: &[u8]) -> Result<(), String> {
        if let Some(e) = &self.failed {
            return Err(e.clone());
        }
        self.hasher.update(bytes);
        while !bytes.is_empty() {
            let take = (PART_SIZE - self.part.len()).min(bytes.len());
            self.part.extend_from_slice(&bytes[..take]);
            bytes = &bytes[take..];
            if self.part.len() == PART_SIZE {
                if let Err(e) = self.send_part() {
                    self.failed = Some(e.clone());
                    return Err(e);
                }
                if self.parts_sent == 2 {
                    crate::failpoint::hold("mid-blob", &self.label);
                }
            }
        }
        Ok(())
    }
}

/// Load a blob and decode it with `decode`, verifying size and digest.
pub(crate) fn load_decoded(
    ds: &Datastore,
    blob: BlobRef,
    what: &What,
    decode: &mut dyn FnMut(&mut FieldReader<'_>) -> Result<(), DecodeError>,
) -> Result<()> {
    if blob.size <= SMALL_LIMIT as u64 {
        let bytes = read_small(ds, blob, what)?;
        return decode_slice(&bytes, blob, what, decode);
    }
    load_streaming(ds, blob, what, decode)
}

/// Read a small blob whole, verified.
pub(crate) fn read_small(ds: &Datastore, blob: BlobRef, what: &What) -> Result<Bytes> {
    if let Some(b) = ds.cache_get(&blob.digest) {
        return Ok(b);
    }
    if let Some(disk) = &ds.inner.disk {
        if let Some(p) = disk.lookup(&blob.digest) {
            if let Ok(bytes) = std::fs::read(&p) {
                let bytes = Bytes::from(bytes);
                if verify_bytes(&bytes, blob, what).is_ok() {
                    ds.cache_put(blob.digest, &bytes);
                    return Ok(bytes);
                }
            }
            // A damaged cache entry: drop it and read the store.
            disk.remove(&blob.digest);
        }
    }
    let rel = layout::blob(&blob.digest);
    let bytes = ds
        .get_bytes(&rel)
        .map_err(|e| {
            what.err(
                blob.digest,
                format!("cannot read: {}", crate::error::chain(&e)),
            )
        })?
        .ok_or_else(|| {
            what.err(
                blob.digest,
                format!("blob is missing from the datastore ({rel})"),
            )
        })?;
    verify_bytes(&bytes, blob, what)?;
    ds.mark_known(blob.digest);
    ds.cache_put(blob.digest, &bytes);
    if let Some(disk) = &ds.inner.disk {
        disk.put_bytes(&blob.digest, &bytes);
    }
    Ok(bytes)
}

fn verify_bytes(bytes: &[u8], blob: BlobRef, what: &What) -> Result<()> {
    if bytes.len() as u64 != blob.size {
        return Err(what.err(
            blob.digest,
            format!(
                "blob is corrupted: {} bytes stored, {} expected (truncated or overwritten)",
                bytes.len(),
                blob.size
            ),
        ));
    }
    let actual = Digest::of(bytes);
    if actual != blob.digest {
        return Err(what.err(
            blob.digest,
            format!("blob is corrupted: its content hashes to {actual}"),
        ));
    }
    Ok(())
}

fn decode_slice(
    bytes: &[u8],
    blob: BlobRef,
    what: &What,
    decode: &mut dyn FnMut(&mut FieldReader<'_>) -> Result<(), DecodeError>,
) -> Result<()> {
    codec::check_header(bytes).map_err(|m| what.err(blob.digest, m))?;
    let mut r = FieldReader::slice(&bytes[codec::HEADER_LEN..]);
    decode(&mut r).map_err(|e| decode_error(what, blob, e))?;
    if r.remaining() != 0 {
        return Err(decode_error(
            what,
            blob,
            DecodeError::TrailingBytes(r.remaining()),
        ));
    }
    Ok(())
}

fn decode_error(what: &What, blob: BlobRef, e: DecodeError) -> Error {
    what.err(
        blob.digest,
        format!("cannot decode: {e} (was the field's type changed since it was written?)"),
    )
}

/// A verified, hashing byte source over a streamed blob.
struct StreamSource<'a> {
    ds: &'a Datastore,
    kind: StreamKind,
    chunk: Bytes,
    hasher: Hasher,
    remaining: u64,
    io_error: Option<String>,
    /// Copy of the bytes read, for the local read cache (dropped on any write error).
    tee: Option<(std::path::PathBuf, std::fs::File)>,
}

enum StreamKind {
    File(std::io::BufReader<std::fs::File>),
    Remote(futures::stream::BoxStream<'static, object_store::Result<Bytes>>),
}

impl Source for StreamSource<'_> {
    fn read_exact(&mut self, mut buf: &mut [u8]) -> Result<(), DecodeError> {
        if buf.len() as u64 > self.remaining {
            return Err(DecodeError::UnexpectedEnd);
        }
        while !buf.is_empty() {
            match &mut self.kind {
                StreamKind::File(f) => {
                    if let Err(e) = f.read_exact(buf) {
                        self.io_error = Some(e.to_string());
                        return Err(DecodeError::UnexpectedEnd);
                    }
                    self.hasher.update(buf);
                    self.remaining -= buf.len() as u64;
                    return Ok(());
                }
                StreamKind::Remote(stream) => {
                    if self.chunk.is_empty() {
                        match self.ds.block_on(stream.next()) {
                            Some(Ok(b)) => self.chunk = b,
                            Some(Err(e)) => {
                                self.io_error = Some(e.to_string());
                                return Err(DecodeError::UnexpectedEnd);
                            }
                            None => return Err(DecodeError::UnexpectedEnd),
                        }
                        continue;
                    }
                    let n = self.chunk.len().min(buf.len());
                    let (head, tail) = buf.split_at_mut(n);
                    head.copy_from_slice(&self.chunk[..n]);
                    self.hasher.update(head);
                    if let Some((p, f)) = &mut self.tee {
                        use std::io::Write;
                        if f.write_all(head).is_err() {
                            let _ = std::fs::remove_file(p);
                            self.tee = None;
                        }
                    }
                    self.chunk = self.chunk.slice(n..);
                    self.remaining -= n as u64;
                    buf = tail;
                }
            }
        }
        Ok(())
    }

    fn remaining(&self) -> u64 {
        self.remaining
    }
}

fn load_streaming(
    ds: &Datastore,
    blob: BlobRef,
    what: &What,
    decode: &mut dyn FnMut(&mut FieldReader<'_>) -> Result<(), DecodeError>,
) -> Result<()> {
    // A local copy of a remote blob first.
    if let Some(disk) = &ds.inner.disk {
        if let Some(p) = disk.lookup(&blob.digest) {
            if let Ok(f) = std::fs::File::open(&p) {
                let kind = StreamKind::File(std::io::BufReader::with_capacity(1 << 20, f));
                match decode_stream(ds, blob, what, kind, None, decode) {
                    Ok(_) => return Ok(()),
                    Err(e) => {
                        // A genuine decode error stands; a damaged entry is dropped and
                        // the blob fetched again.
                        if file_blob_ref(&p) == Some(blob) {
                            return Err(e);
                        }
                        disk.remove(&blob.digest);
                    }
                }
            }
        }
    }
    let rel = layout::blob(&blob.digest);
    let path = ds.path(&rel);
    let got = match ds.retry(|| ds.inner.store.get(&path)) {
        Ok(g) => g,
        Err(object_store::Error::NotFound { .. }) => {
            return Err(what.err(
                blob.digest,
                format!("blob is missing from the datastore ({rel})"),
            ))
        }
        Err(e) => return Err(what.err(blob.digest, format!("cannot read: {e}"))),
    };
    if got.meta.size != blob.size {
        return Err(what.err(
            blob.digest,
            format!(
                "blob is corrupted: {} bytes stored, {} expected (truncated or overwritten)",
                got.meta.size, blob.size
            ),
        ));
    }
    let (kind, tee) = match got.payload {
        GetResultPayload::File(file, _) => (
            StreamKind::File(std::io::BufReader::with_capacity(1 << 20, file)),
            None,
        ),
        GetResultPayload::Stream(s) => {
            let tee = ds
                .inner
                .disk
                .as_ref()
                .filter(|d| d.accepts(blob.size))
                .and_then(|d| d.staging(&blob.digest));
            (StreamKind::Remote(s), tee)
        }
    };
    let tee = decode_stream(ds, blob, what, kind, tee, decode)?;
    if let (Some((p, f)), Some(disk)) = (tee, &ds.inner.disk) {
        drop(f);
        disk.commit(&p, &blob.digest, blob.size);
    }
    ds.mark_known(blob.digest);
    Ok(())
}

/// The digest and size of a local file.
fn file_blob_ref(p: &std::path::Path) -> Option<BlobRef> {
    let mut f = std::fs::File::open(p).ok()?;
    let mut h = Hasher::new();
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let n = f.read(&mut buf).ok()?;
        if n == 0 {
            return Some(h.finish());
        }
        h.update(&buf[..n]);
    }
}

/// Decode a streamed blob, verifying it; copies the bytes into `tee` (a cache staging file)
/// and returns it when everything verified.
fn decode_stream<'a>(
    ds: &'a Datastore,
    blob: BlobRef,
    what: &What,
    kind: StreamKind,
    tee: Option<(std::path::PathBuf, std::fs::File)>,
    decode: &mut dyn FnMut(&mut FieldReader<'_>) -> Result<(), DecodeError>,
) -> Result<Option<(std::path::PathBuf, std::fs::File)>> {
    let mut src = StreamSource {
        ds,
        kind,
        chunk: Bytes::new(),
        hasher: Hasher::new(),
        remaining: blob.size,
        io_error: None,
        tee,
    };
    let res = (|| {
        let mut header = [0u8; codec::HEADER_LEN];
        src.read_exact(&mut header)
            .map_err(|_| what.err(blob.digest, "cannot read the blob header"))?;
        codec::check_header(&header).map_err(|m| what.err(blob.digest, m))?;
        let res = {
            let mut r = FieldReader::stream(&mut src);
            decode(&mut r)
        };
        if let Some(io) = src.io_error.take() {
            return Err(what.err(blob.digest, format!("cannot read: {io}")));
        }
        if let Err(e) = res {
            return Err(decode_error(what, blob, e));
        }
        if src.remaining != 0 {
            return Err(decode_error(
                what,
                blob,
                DecodeError::TrailingBytes(src.remaining),
            ));
        }
        let actual = src.hasher.clone().finish();
        if actual.digest != blob.digest {
            return Err(what.err(
                blob.digest,
                format!("blob is corrupted: its content hashes to {}", actual.digest),
            ));
        }
        Ok(())
    })();
    let tee = src.tee.take();
    match res {
        Ok(()) => Ok(tee),
        Err(e) => {
            if let Some((p, f)) = tee {
                drop(f);
                let _ = std::fs::remove_file(p);
            }
            Err(e)
        }
    }
}

/// Check that a stored blob exists and hashes to its address, reading it in a stream.
/// Returns a description of the problem, if any.
pub(crate) fn verify_blob(ds: &Datastore, blob: BlobRef) -> Result<Option<String>> {
    let rel = layout::blob(&blob.digest);
    let path = ds.path(&rel);
    let got = match ds.retry(|| ds.inner.store.get(&path)) {
        Ok(g) => g,
        Err(object_store::Error::NotFound { .. }) => return Ok(Some("blob is missing".into())),
        Err(e) => return Err(Error::store("get", &path, ds.url(), e)),
    };
    if got.meta.size != blob.size {
        return Ok(Some(format!(
            "blob has {} bytes, {} expected",
            got.meta.size, blob.size
        )));
    }
    let mut hasher = Hasher::new();
    match got.payload {
        GetResultPayload::File(mut file, p) => {
            let mut buf = vec![0u8; 1 << 20];
            loop {
                let n = file
                    .read(&mut buf)
                    .map_err(|e| Error::io(format!("reading {}", p.display()), e))?;
                if n == 0 {
                    break;
                }
                hasher.update(&buf[..n]);
            }
        }
        GetResultPayload::Stream(mut s) => {
            while let Some(chunk) = ds.block_on(s.next()) {
                let chunk = chunk.map_err(|e| Error::store("get", &path, ds.url(), e))?;
                hasher.update(&chunk);
            }
        }
    }
    let got = hasher.finish();
    if got.size != blob.size {
        return Ok(Some(format!(
            "blob has {} bytes, {} expected",
            got.size, blob.size
        )));
    }
    if got.digest != blob.digest {
        return Ok(Some(format!("blob content hashes to {}", got.digest)));
    }
    Ok(None)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::codec::{Tag, ViaSerde};
    use crate::store::OpenMode;

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
        put_encoded(ds, base, &What::new("x", ""), &mut |w| {
            (&Tag::<T>::NEW).encode_field(v, w)
        })
        .unwrap()
    }

    fn get<T: serde::Serialize + serde::de::DeserializeOwned + Default>(
        ds: &Datastore,
        b: BlobRef,
    ) -> Result<T> {
        let mut out = T::default();
        load_decoded(ds, b, &What::new("x", " of test"), &mut |r| {
            out = (&Tag::<T>::NEW).decode_field(r)?;
            Ok(())
        })?;
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

    #[test]
    fn corrupted_and_truncated_blobs_are_detected() {
        let (dir, ds) = store();
        let b = put(&ds, &"precious".to_string(), None);
        let file = dir.path().join("ds").join(layout::blob(&b.digest));
        let mut bytes = std::fs::read(&file).unwrap();
        let last = bytes.len() - 1;
        bytes[last] ^= 0xff;
        std::fs::write(&file, &bytes).unwrap();
        let fresh = Datastore::open(ds.url(), OpenMode::Existing).unwrap();
        let err = get::<String>(&fresh, b).unwrap_err().to_string();
        assert!(err.contains("corrupted"), "{err}");
        assert!(err.contains(&b.digest.to_string()), "{err}");
        assert!(err.contains("artifact `x`"), "{err}");
        std::fs::write(&file, &bytes[..3]).unwrap();
        let err = get::<String>(&fresh, b).unwrap_err().to_string();
        assert!(err.contains("3 bytes stored"), "{err}");
        assert!(verify_blob(&fresh, b).unwrap().is_some());
        std::fs::remove_file(&file).unwrap();
        let err = get::<String>(&fresh, b).unwrap_err().to_string();
        assert!(err.contains("missing"), "{err}");
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
        // Corrupt one byte in the middle: the streaming read must refuse the value.
        let file = dir.path().join("ds").join(layout::blob(&b.digest));
        let mut bytes = std::fs::read(&file).unwrap();
        let mid = bytes.len() / 2;
        bytes[mid] ^= 1;
        std::fs::write(&file, &bytes).unwrap();
        let fresh = Datastore::open(ds.url(), OpenMode::Existing).unwrap();
        let err = get::<Vec<u64>>(&fresh, b).unwrap_err().to_string();
        assert!(err.contains("corrupted"), "{err}");
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
