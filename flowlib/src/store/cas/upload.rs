//! A byte sink that streams into a multipart upload while hashing what it sends.

use std::collections::VecDeque;

use object_store::{MultipartUpload, PutPayload};

use crate::store::backend::Spawned;
use crate::store::codec::ByteSink;
use crate::store::{BlobRef, Datastore, Hasher};

/// Part size of streaming uploads.
const PART_SIZE: usize = 16 << 20;
/// Parts in flight at once during a remote upload.
const MAX_PARTS_IN_FLIGHT: usize = 4;

/// Streams parts of a multipart upload; remote parts upload concurrently on the I/O runtime.
pub(super) struct UploadSink<'a> {
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
    pub(super) fn new(ds: &'a Datastore, upload: Box<dyn MultipartUpload>, label: &str) -> Self {
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

    /// Digest and size of everything written so far.
    pub(super) fn hashed(&self) -> BlobRef {
        self.hasher.clone().finish()
    }

    fn send_part(&mut self) -> Result<(), String> {
        let data = std::mem::replace(&mut self.part, Vec::with_capacity(PART_SIZE));
        self.parts_sent += 1;
        let fut = self.upload.put_part(PutPayload::from(data));
        // Only remote uploads ever have parts in flight.
        while self.inflight.len() >= MAX_PARTS_IN_FLIGHT {
            self.wait_oldest()?;
        }
        match self.ds.spawn(fut) {
            Spawned::Done(res) => res.map_err(|e| e.to_string()),
            Spawned::Running(h) => {
                self.inflight.push_back(h);
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

    /// Send the last part and complete the upload.
    pub(super) fn finish(mut self) -> Result<(), String> {
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

    pub(super) fn abort(mut self) {
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
