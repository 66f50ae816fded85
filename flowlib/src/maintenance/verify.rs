//! `verify`: every referenced blob exists and hashes to its address; with `--repair`
//! ([`VerifyReport::repair`]), every corrupt blob found is moved to quarantine so that the
//! next run or resume that produces its value stores it again.

use crate::error::Result;
use crate::maintenance::references::{references, Place, Unreadable};
use crate::store::cas::{quarantine, verify_blob, Damage};
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
    /// After [`repair`](Self::repair): each corrupt blob moved to quarantine, and where
    /// its damaged copy went.
    pub quarantined: Vec<(Digest, String)>,
    /// Whether [`repair`](Self::repair) ran.
    pub(crate) repaired: bool,
    /// The blobs found present but corrupt (what `repair` moves aside).
    pub(crate) corrupt: Vec<BlobRef>,
}

impl VerifyReport {
    /// No problems found.
    pub fn is_ok(&self) -> bool {
        self.problems.is_empty()
    }

    /// `verify --repair`: move every corrupt blob this report found to the datastore's
    /// `quarantine/`, and forget it in this process, so that the next run or resume that
    /// produces its value stores it again (a writer never trusts what is not at the
    /// blob's address). Missing blobs need no move. The problems stay in the report: the
    /// runs that reference those blobs are damaged until the values are written again.
    ///
    /// Each blob is hashed again after the move; a copy that turns out good (repaired
    /// meanwhile by a writer) is moved back, so nothing good is ever left in quarantine.
    pub fn repair(&mut self, ds: &Datastore) -> Result<()> {
        self.repaired = true;
        for blob in std::mem::take(&mut self.corrupt) {
            if let Some(to) = quarantine(ds, blob)? {
                self.quarantined.push((blob.digest, to));
            }
        }
        Ok(())
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
            .chain(refs.bad_cache)
            .map(Problem::Unreadable)
            .collect(),
        ..VerifyReport::default()
    };
    let mut blobs: Vec<(BlobRef, Vec<Place>)> = refs.blobs.into_values().collect();
    blobs.sort_by_key(|(b, _)| b.digest);
    for (blob, places) in blobs {
        report.bytes += blob.size;
        if let Some(damage) = verify_blob(ds, blob)? {
            if let Damage::Corrupt(_) = damage {
                report.corrupt.push(blob);
            }
            report.problems.push(Problem::Blob {
                digest: blob.digest,
                problem: damage.to_string(),
                places,
            });
        }
    }
    Ok(report)
}
