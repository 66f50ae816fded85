//! Checking a stored blob against its address, without decoding it.

use futures::StreamExt;
use object_store::GetResultPayload;

use crate::error::{Error, Result};
use crate::store::{hash_reader, layout, BlobRef, Datastore, Digest, Hasher};

/// What is wrong with a stored blob.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Damage {
    /// Nothing is stored at its address; `quarantined` names a corrupt copy moved aside.
    Missing { quarantined: Option<String> },
    /// Its bytes are not the blob's (what is wrong: size or digest); it can be quarantined.
    Corrupt(String),
}

impl std::fmt::Display for Damage {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Damage::Missing { quarantined: None } => write!(f, "blob is missing"),
            Damage::Missing {
                quarantined: Some(q),
            } => write!(
                f,
                "blob is missing (a corrupt copy was moved to {q}); the next run or resume that produces it stores it again"
            ),
            Damage::Corrupt(problem) => write!(f, "blob is corrupted: {problem}"),
        }
    }
}

/// Check that a stored blob exists and hashes to its address, reading it in a stream.
/// Returns what is wrong with it, if anything.
pub(crate) fn verify_blob(ds: &Datastore, blob: BlobRef) -> Result<Option<Damage>> {
    Ok(match check_object(ds, &layout::blob(&blob.digest), blob)? {
        Checked::Absent => Some(Damage::Missing {
            quarantined: quarantined_copy(ds, blob)?,
        }),
        Checked::Good => None,
        Checked::Bad(problem) => Some(Damage::Corrupt(problem)),
    })
}

/// A corrupt copy of `blob` in quarantine, if there is one.
pub(crate) fn quarantined_copy(ds: &Datastore, blob: BlobRef) -> Result<Option<String>> {
    let copies = ds.list(&layout::quarantined_copies(&blob.digest))?;
    Ok(copies.into_iter().map(|l| l.rel).max())
}

/// What [`check_object`] found.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Checked {
    /// No object there.
    Absent,
    /// Its bytes are the blob's.
    Good,
    /// Its bytes are not the blob's: what is wrong.
    Bad(String),
}

/// Check the object at `rel` against `blob`, reading it in a stream.
pub(crate) fn check_object(ds: &Datastore, rel: &str, blob: BlobRef) -> Result<Checked> {
    let Some(got) = ds.get(rel)? else {
        return Ok(Checked::Absent);
    };
    let bad_size = |size| Checked::Bad(wrong_size(size, blob.size));
    if got.meta.size != blob.size {
        return Ok(bad_size(got.meta.size));
    }
    let got = match got.payload {
        GetResultPayload::File(file, p) => {
            hash_reader(file).map_err(|e| Error::io(format!("reading {}", p.display()), e))?
        }
        GetResultPayload::Stream(mut s) => {
            let mut hasher = Hasher::new();
            while let Some(chunk) = ds.block_on(s.next()) {
                let chunk = chunk.map_err(|e| Error::store("get", ds.path(rel), ds.url(), e))?;
                hasher.update(&chunk);
            }
            hasher.finish()
        }
    };
    if got.size != blob.size {
        return Ok(bad_size(got.size));
    }
    if got.digest != blob.digest {
        return Ok(Checked::Bad(wrong_digest(got.digest)));
    }
    Ok(Checked::Good)
}

/// The problem of a blob with `stored` bytes instead of `expected`.
pub(crate) fn wrong_size(stored: u64, expected: u64) -> String {
    format!("{stored} bytes stored, {expected} expected (truncated or overwritten)")
}

/// The problem of a blob whose bytes hash to `actual`.
pub(crate) fn wrong_digest(actual: Digest) -> String {
    format!("its content hashes to {actual}")
}
