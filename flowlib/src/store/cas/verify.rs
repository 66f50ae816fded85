//! Checking a stored blob against its address, without decoding it.

use futures::StreamExt;
use object_store::GetResultPayload;

use crate::error::{Error, Result};
use crate::store::{hash_reader, layout, BlobRef, Datastore, Hasher};

/// Check that a stored blob exists and hashes to its address, reading it in a stream.
/// Returns a description of the problem, if any.
pub(crate) fn verify_blob(ds: &Datastore, blob: BlobRef) -> Result<Option<String>> {
    let rel = layout::blob(&blob.digest);
    let Some(got) = ds.get(&rel)? else {
        return Ok(Some("blob is missing".into()));
    };
    let wrong_size = |size| Some(format!("blob has {size} bytes, {} expected", blob.size));
    if got.meta.size != blob.size {
        return Ok(wrong_size(got.meta.size));
    }
    let got = match got.payload {
        GetResultPayload::File(file, p) => {
            hash_reader(file).map_err(|e| Error::io(format!("reading {}", p.display()), e))?
        }
        GetResultPayload::Stream(mut s) => {
            let mut hasher = Hasher::new();
            while let Some(chunk) = ds.block_on(s.next()) {
                let chunk = chunk.map_err(|e| Error::store("get", ds.path(&rel), ds.url(), e))?;
                hasher.update(&chunk);
            }
            hasher.finish()
        }
    };
    if got.size != blob.size {
        return Ok(wrong_size(got.size));
    }
    if got.digest != blob.digest {
        return Ok(Some(format!("blob content hashes to {}", got.digest)));
    }
    Ok(None)
}
