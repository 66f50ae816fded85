//! `verify`: every referenced blob exists and hashes to its address.

use crate::error::Result;
use crate::maintenance::references::{references, Place, Unreadable};
use crate::store::cas::verify_blob;
use crate::store::Datastore;
use crate::store::{BlobRef, Digest};

/// What `verify` found.
#[derive(Clone, Debug, Default)]
#[non_exhaustive]
pub struct VerifyReport {
    /// Distinct blobs checked.
    pub blobs: usize,
    /// Their total size.
    pub bytes: u64,
    /// Places that reference them (a blob shared by two tasks counts twice).
    pub places: usize,
    /// Every problem: unreadable metadata first, then bad blobs by digest.
    pub problems: Vec<Problem>,
}

impl VerifyReport {
    /// No problems found.
    pub fn is_ok(&self) -> bool {
        self.problems.is_empty()
    }
}

/// One problem `verify` found.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Problem {
    /// Run metadata could not be read.
    Unreadable(Unreadable),
    /// A referenced blob is missing or does not hash to its address.
    Blob {
        /// The blob's address.
        digest: Digest,
        /// What is wrong with it (`blob is missing`).
        problem: String,
        /// Every place that references it.
        places: Vec<Place>,
    },
}

/// Check every blob that committed metadata references (of one flow, or one run of it).
pub fn verify(ds: &Datastore, flow: Option<&str>, run: Option<&str>) -> Result<VerifyReport> {
    let refs = references(ds, flow, run)?;
    let mut report = VerifyReport {
        blobs: refs.blobs.len(),
        places: refs.blobs.values().map(|(_, p)| p.len()).sum(),
        problems: refs
            .unreadable
            .into_iter()
            .map(Problem::Unreadable)
            .collect(),
        ..VerifyReport::default()
    };
    let mut blobs: Vec<(BlobRef, Vec<Place>)> = refs.blobs.into_values().collect();
    blobs.sort_by_key(|(b, _)| b.digest);
    for (blob, places) in blobs {
        report.bytes += blob.size;
        if let Some(problem) = verify_blob(ds, blob)? {
            report.problems.push(Problem::Blob {
                digest: blob.digest,
                problem,
                places,
            });
        }
    }
    Ok(report)
}
