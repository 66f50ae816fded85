//! Reading a value: load a blob and decode it, verifying size and digest. Small blobs are
//! read whole (from memory, the local read cache or the store), verified, then decoded;
//! large blobs are decoded while streaming and hashing, and only accepted once the digest
//! matched.

use std::io::Read;
use std::path::PathBuf;

use bytes::Bytes;
use futures::StreamExt;
use object_store::GetResultPayload;

use super::quarantine::quarantine;
use super::verify::{check_object, quarantined_copy, wrong_digest, wrong_size, Checked};
use super::{Decode, What, SMALL_LIMIT};
use crate::error::{chain, Error, Result};
use crate::store::codec::{self, DecodeError, FieldReader, Source};
use crate::store::{hash_file, layout, BlobRef, Datastore, Digest, Hasher};

/// A local read cache staging file receiving a copy of a streamed blob.
type Tee = (PathBuf, std::fs::File);

/// Buffer size of streamed reads from local files.
const FILE_BUFFER: usize = 1 << 20;

/// Load a blob and decode it with `decode`, verifying size and digest. `inline` is the
/// blob's bytes when the manifest that names it holds them (a small blob: nothing is
/// read). A stored blob whose bytes do not match its address is moved to quarantine (see
/// `quarantine.rs`) before the error is returned, so the next write of the value stores
/// it again.
pub(crate) fn load_decoded(
    ds: &Datastore,
    blob: BlobRef,
    inline: Option<&Bytes>,
    what: &What,
    decode: &mut Decode<'_>,
) -> Result<()> {
    let load = Load { ds, blob, what };
    if let Some(bytes) = inline {
        load.check_bytes(bytes).map_err(|p| {
            load.err(format!(
                "the bytes held inline in the manifest are corrupted: {p}"
            ))
        })?;
        return load.decode_slice(bytes, decode);
    }
    if blob.size <= SMALL_LIMIT as u64 {
        let bytes = load.small()?;
        return load.decode_slice(&bytes, decode);
    }
    if load.decode_cached_copy(decode)? {
        return Ok(());
    }
    load.streaming(decode)
}

/// One blob being read, and what it holds.
struct Load<'a> {
    ds: &'a Datastore,
    blob: BlobRef,
    what: &'a What,
}

impl Load<'_> {
    fn err(&self, message: impl Into<String>) -> Error {
        self.what.err(self.blob.digest, message)
    }

    fn missing(&self, rel: &str) -> Error {
        match quarantined_copy(self.ds, self.blob).ok().flatten() {
            None => self.err(format!("blob is missing from the datastore ({rel})")),
            Some(q) => self.err(format!(
                "blob is missing from the datastore ({rel}): a corrupt copy was moved to {q}; the next run or resume that produces it stores it again"
            )),
        }
    }

    /// The stored blob's bytes are not its own (`problem` says how): move them to
    /// quarantine, so the next write of the value stores it again.
    fn corrupt(&self, problem: String) -> Error {
        let moved = match quarantine(self.ds, self.blob) {
            Ok(Some(q)) => {
                format!("; moved to {q}: the next run or resume that produces it stores it again")
            }
            Ok(None) => String::new(),
            Err(e) => format!("; could not move it to quarantine: {}", chain(&e)),
        };
        self.err(format!("blob is corrupted: {problem}{moved}"))
    }

    fn decode_error(&self, e: DecodeError) -> Error {
        self.err(format!(
            "cannot decode: {e} (was the field's type changed since it was written?)"
        ))
    }

    /// Read a small blob whole, verified.
    fn small(&self) -> Result<Bytes> {
        let (ds, blob) = (self.ds, self.blob);
        if let Some(b) = ds.cache_get(&blob.digest) {
            return Ok(b);
        }
        if let Some(disk) = ds.disk_cache() {
            if let Some(p) = disk.lookup(&blob.digest) {
                if let Ok(bytes) = std::fs::read(&p) {
                    let bytes = Bytes::from(bytes);
                    if self.check_bytes(&bytes).is_ok() {
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
            .map_err(|e| self.err(format!("cannot read: {}", chain(&e))))?
            .ok_or_else(|| self.missing(&rel))?;
        self.check_bytes(&bytes).map_err(|p| self.corrupt(p))?;
        ds.mark_known(blob.digest);
        ds.cache_put(blob.digest, &bytes);
        if let Some(disk) = ds.disk_cache() {
            disk.put_bytes(&blob.digest, &bytes);
        }
        Ok(bytes)
    }

    /// Whether `bytes` are the blob's; if not, what is wrong.
    fn check_bytes(&self, bytes: &[u8]) -> Result<(), String> {
        if bytes.len() as u64 != self.blob.size {
            return Err(wrong_size(bytes.len() as u64, self.blob.size));
        }
        let actual = Digest::of(bytes);
        if actual != self.blob.digest {
            return Err(wrong_digest(actual));
        }
        Ok(())
    }

    fn decode_slice(&self, bytes: &[u8], decode: &mut Decode<'_>) -> Result<()> {
        codec::check_header(bytes).map_err(|m| self.err(m))?;
        let mut r = FieldReader::slice(&bytes[codec::HEADER_LEN..]);
        decode(&mut r).map_err(|e| self.decode_error(e))?;
        if r.remaining() != 0 {
            return Err(self.decode_error(DecodeError::TrailingBytes(r.remaining())));
        }
        Ok(())
    }

    /// Decode a local copy of a remote blob, if there is one; false when the blob must be
    /// fetched.
    fn decode_cached_copy(&self, decode: &mut Decode<'_>) -> Result<bool> {
        let Some(disk) = self.ds.disk_cache() else {
            return Ok(false);
        };
        let Some(p) = disk.lookup(&self.blob.digest) else {
            return Ok(false);
        };
        let Ok(f) = std::fs::File::open(&p) else {
            return Ok(false);
        };
        let kind = StreamKind::File(std::io::BufReader::with_capacity(FILE_BUFFER, f));
        match self.decode_stream(kind, None, decode) {
            Ok(_) => Ok(true),
            // A genuine decode error stands; a damaged entry is dropped and the blob
            // fetched again (the store's copy may well be intact).
            Err(Failure::Undecodable(e)) if hash_file(&p).ok() == Some(self.blob) => Err(e),
            Err(_) => {
                disk.remove(&self.blob.digest);
                Ok(false)
            }
        }
    }

    /// Stream a large blob from the store, copying it into the local read cache.
    fn streaming(&self, decode: &mut Decode<'_>) -> Result<()> {
        let (ds, blob) = (self.ds, self.blob);
        let rel = layout::blob(&blob.digest);
        let got = ds
            .get(&rel)
            .map_err(|e| self.err(format!("cannot read: {}", chain(&e))))?
            .ok_or_else(|| self.missing(&rel))?;
        if got.meta.size != blob.size {
            return Err(self.corrupt(wrong_size(got.meta.size, blob.size)));
        }
        let (kind, tee) = match got.payload {
            GetResultPayload::File(file, _) => (
                StreamKind::File(std::io::BufReader::with_capacity(FILE_BUFFER, file)),
                None,
            ),
            GetResultPayload::Stream(s) => {
                let tee = ds
                    .disk_cache()
                    .filter(|d| d.accepts(blob.size))
                    .and_then(|d| d.staging(&blob.digest));
                (StreamKind::Remote(s), tee)
            }
        };
        let tee = match self.decode_stream(kind, tee, decode) {
            Ok(tee) => tee,
            Err(Failure::Corrupt(problem)) => return Err(self.corrupt(problem)),
            Err(Failure::Io(e)) => return Err(e),
            // Damaged bytes can fail to decode before the digest is reached: hash the
            // stored blob to tell damage from a genuine decode error (a changed type).
            Err(Failure::Undecodable(e)) => {
                return Err(match check_object(ds, &rel, blob) {
                    Ok(Checked::Bad(problem)) => self.corrupt(problem),
                    _ => e,
                })
            }
        };
        if let (Some((p, f)), Some(disk)) = (tee, ds.disk_cache()) {
            drop(f);
            disk.commit(&p, &blob.digest, blob.size);
        }
        ds.mark_known(blob.digest);
        Ok(())
    }

    /// Decode a streamed blob, verifying it; copies the bytes into `tee` (a cache staging
    /// file) and returns it when everything verified.
    fn decode_stream(
        &self,
        kind: StreamKind,
        tee: Option<Tee>,
        decode: &mut Decode<'_>,
    ) -> Result<Option<Tee>, Failure> {
        let mut src = StreamSource {
            ds: self.ds,
            rel: layout::blob(&self.blob.digest),
            size: self.blob.size,
            resumes: 0,
            kind,
            chunk: Bytes::new(),
            hasher: Hasher::new(),
            remaining: self.blob.size,
            io_error: None,
            tee,
        };
        let res = self.decode_source(&mut src, decode);
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

    fn decode_source(
        &self,
        src: &mut StreamSource<'_>,
        decode: &mut Decode<'_>,
    ) -> Result<(), Failure> {
        let io = |src: &mut StreamSource<'_>| {
            src.io_error
                .take()
                .map(|io| Failure::Io(self.err(format!("cannot read: {io}"))))
        };
        let mut header = [0u8; codec::HEADER_LEN];
        if src.read_exact(&mut header).is_err() {
            return Err(io(src)
                .unwrap_or_else(|| Failure::Undecodable(self.err("cannot read the blob header"))));
        }
        codec::check_header(&header).map_err(|m| Failure::Undecodable(self.err(m)))?;
        let res = {
            let mut r = FieldReader::stream(src);
            decode(&mut r)
        };
        if let Some(failure) = io(src) {
            return Err(failure);
        }
        res.map_err(|e| Failure::Undecodable(self.decode_error(e)))?;
        if src.remaining != 0 {
            let trailing = DecodeError::TrailingBytes(src.remaining);
            return Err(Failure::Undecodable(self.decode_error(trailing)));
        }
        let actual = src.hasher.clone().finish();
        if actual.digest != self.blob.digest {
            return Err(Failure::Corrupt(wrong_digest(actual.digest)));
        }
        Ok(())
    }
}

/// Why a streamed read failed.
enum Failure {
    /// The bytes read are not the blob's: what is wrong.
    Corrupt(String),
    /// Reading failed; the stored bytes may be intact.
    Io(Error),
    /// The bytes did not decode: damaged, or written as another type.
    Undecodable(Error),
}

/// How many times one read of a large remote blob is resumed after a cut response.
const MAX_RESUMES: u32 = 5;

/// A verified, hashing byte source over a streamed blob.
struct StreamSource<'a> {
    ds: &'a Datastore,
    /// The blob's object path and size, to resume a remote read cut mid-body.
    rel: String,
    size: u64,
    /// Reads resumed so far (bounded by [`MAX_RESUMES`]).
    resumes: u32,
    kind: StreamKind,
    chunk: Bytes,
    hasher: Hasher,
    remaining: u64,
    io_error: Option<String>,
    /// Copy of the bytes read, for the local read cache (dropped on any write error).
    tee: Option<Tee>,
}

enum StreamKind {
    File(std::io::BufReader<std::fs::File>),
    Remote(futures::stream::BoxStream<'static, object_store::Result<Bytes>>),
}

impl StreamSource<'_> {
    /// The next chunk of a remote stream, or `false` at its end or on an error. A response
    /// cut in the middle of its body (a transport error, or an early end) is resumed from
    /// the byte reached with a range request, a few times; every byte is still hashed
    /// once, so the digest check at the end covers the whole blob (#8.9).
    fn next_chunk(&mut self) -> bool {
        loop {
            let StreamKind::Remote(stream) = &mut self.kind else {
                return false;
            };
            let failure = match self.ds.block_on(stream.next()) {
                Some(Ok(b)) if b.is_empty() => continue,
                Some(Ok(b)) => {
                    self.chunk = b;
                    return true;
                }
                Some(Err(e)) => e.to_string(),
                None if self.remaining == 0 => return false,
                None => format!("the response ended {} bytes early", self.remaining),
            };
            if self.resumes >= MAX_RESUMES {
                self.io_error = Some(format!("{failure} (after {} resumed reads)", self.resumes));
                return false;
            }
            self.resumes += 1;
            let offset = self.size - self.remaining;
            match self.ds.get_from(&self.rel, offset) {
                Ok(Some(got)) => match got.payload {
                    GetResultPayload::Stream(s) => self.kind = StreamKind::Remote(s),
                    // Only remote stores stream; a local read never gets here.
                    GetResultPayload::File(..) => {
                        self.io_error = Some(failure);
                        return false;
                    }
                },
                Ok(None) => {
                    self.io_error = Some(format!("{failure}; and the blob is gone"));
                    return false;
                }
                Err(e) => {
                    self.io_error = Some(format!("{failure}; resuming failed: {}", chain(&e)));
                    return false;
                }
            }
        }
    }

    /// Hash the bytes read, and copy them into the cache staging file.
    fn consumed(&mut self, bytes: &[u8]) {
        self.hasher.update(bytes);
        self.remaining -= bytes.len() as u64;
        if let Some((p, f)) = &mut self.tee {
            use std::io::Write;
            if f.write_all(bytes).is_err() {
                let _ = std::fs::remove_file(p);
                self.tee = None;
            }
        }
    }
}

impl Source for StreamSource<'_> {
    fn read_exact(&mut self, mut buf: &mut [u8]) -> Result<(), DecodeError> {
        if buf.len() as u64 > self.remaining {
            return Err(DecodeError::UnexpectedEnd);
        }
        if let StreamKind::File(f) = &mut self.kind {
            if let Err(e) = f.read_exact(buf) {
                self.io_error = Some(e.to_string());
                return Err(DecodeError::UnexpectedEnd);
            }
            self.consumed(buf);
            return Ok(());
        }
        while !buf.is_empty() {
            if self.chunk.is_empty() {
                if !self.next_chunk() {
                    return Err(DecodeError::UnexpectedEnd);
                }
                continue;
            }
            let n = self.chunk.len().min(buf.len());
            let (head, tail) = buf.split_at_mut(n);
            head.copy_from_slice(&self.chunk[..n]);
            self.chunk = self.chunk.slice(n..);
            self.consumed(head);
            buf = tail;
        }
        Ok(())
    }

    fn remaining(&self) -> u64 {
        self.remaining
    }
}
