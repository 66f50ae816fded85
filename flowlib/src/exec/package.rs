//! The code package of a remote task is the flow's own executable: stored once per digest
//! in the datastore (`packages/sha256/..`, deduplicated across runs and flows), run from
//! its own path where that path is visible, otherwise fetched by digest, verified and run.
//! A task refuses to run under a binary whose digest differs from the run's
//! (`task::run_spec`).

use std::path::PathBuf;

use crate::error::{Error, Result};
use crate::meta::identity::exe_digest;
use crate::store::{cas, layout, Backend, BlobRef, Datastore, Digest};

/// The running executable, stored.
#[derive(Debug, Clone)]
pub(crate) struct Package {
    /// Where it is on this machine.
    pub(crate) exe: PathBuf,
    /// The SHA-256 of its bytes.
    pub(crate) digest: Digest,
    /// Its key in the datastore.
    pub(crate) key: String,
}

impl Package {
    /// Where a task can copy it from without flowlib: the object's file when the
    /// datastore is a local (possibly shared) directory.
    pub(crate) fn store_file(&self, ds: &Datastore) -> Option<PathBuf> {
        match ds.backend() {
            Backend::Local(root) => Some(root.join(&self.key)),
            _ => None,
        }
    }
}

/// Store the running executable in `ds` unless it is there already.
pub(crate) fn ensure(ds: &Datastore) -> Result<Package> {
    let exe = crate::exec::child::current_exe()?;
    let digest = exe_digest(&exe).ok_or_else(|| {
        Error::invalid(format!(
            "cannot read this program's executable {} to package it",
            exe.display()
        ))
    })?;
    let size = std::fs::metadata(&exe)
        .map_err(|e| Error::invalid(format!("cannot read {}: {e}", exe.display())))?
        .len();
    let key = layout::package(&digest);
    cas::put_file(ds, &key, &exe, BlobRef { digest, size })?;
    Ok(Package { exe, digest, key })
}
