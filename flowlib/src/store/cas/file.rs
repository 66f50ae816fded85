//! Storing a local file under a digest-named key (a flow's executable, for remote tasks),
//! streamed in parts and hashed on the way, once per digest.

use std::io::Read;

use super::upload::UploadSink;
use crate::error::{Error, Result};
use crate::store::codec::ByteSink;
use crate::store::{BlobRef, Datastore};

/// Store the file at `path`, whose content is `expected`, at `rel`, unless an object of that
/// size is already there. Returns whether it was written. The bytes are hashed while they
/// stream: a file that changed since it was hashed is refused (and its upload removed).
pub(crate) fn put_file(
    ds: &Datastore,
    rel: &str,
    path: &std::path::Path,
    expected: BlobRef,
) -> Result<bool> {
    if let Some(meta) = ds.head(rel)? {
        if meta.size == expected.size {
            return Ok(false);
        }
    }
    let fail = |m: String| Error::invalid(format!("cannot store {}: {m}", path.display()));
    let mut file = std::fs::File::open(path).map_err(|e| fail(e.to_string()))?;
    let upload = ds.put_multipart(rel)?;
    let mut sink = UploadSink::new(ds, upload, rel);
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let n = match file.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) => {
                sink.abort();
                return Err(fail(e.to_string()));
            }
        };
        if let Err(e) = sink.write(&buf[..n]) {
            sink.abort();
            return Err(fail(e));
        }
    }
    let got = sink.hashed();
    if got != expected {
        sink.abort();
        return Err(fail(format!(
            "it changed while it was being stored (expected {}, read {})",
            expected.digest, got.digest
        )));
    }
    sink.finish().map_err(fail)?;
    Ok(true)
}
