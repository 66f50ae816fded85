//! Quarantine: moving a blob whose bytes do not match its address out of the way.
//!
//! Blobs are content-addressed, so a damaged copy at a blob's address would otherwise be
//! permanent: every later writer of the same value would find it "already stored" and
//! reference it. When a read, a writer or `verify --repair` finds such a copy, it is moved
//! to `quarantine/sha256/<2 hex>/<62 hex>/<unique>` and this process forgets the blob (its
//! known-stored memory and in-memory cache). The next write of the value then finds the
//! address empty and stores it create-only, exactly as a first write does.
//!
//! The move is checked after the fact: the moved copy is hashed again, and if it is good
//! (a writer repaired the address between the check that found it bad and the move), it
//! is moved back. So what stays in quarantine was bad after it left the address, and a good
//! copy is never kept there. Quarantined copies are kept for inspection; `gc` collects them
//! once they are older than its grace period, counted from the move.
//!
//! On a remote store a move is a copy then a delete. Two processes that quarantine the
//! same blob at the same moment can, in the worst interleaving, delete the copy one of
//! them has just rewritten; `verify` then reports the blob missing and the next write of
//! the value stores it again.

use std::time::SystemTime;

use super::verify::{check_object, Checked};
use crate::error::{Error, Result};
use crate::store::{layout, unique_name, Backend, BlobRef, Datastore};

/// Move the copy of `blob` stored at its address to quarantine, if it is corrupt, and
/// forget the blob in this process. Returns where the copy went; `None` when there was
/// nothing to move (already moved, or the copy there turned out to be good).
pub(crate) fn quarantine(ds: &Datastore, blob: BlobRef) -> Result<Option<String>> {
    ds.forget_blob(&blob.digest);
    let rel = layout::blob(&blob.digest);
    let to = layout::quarantined(&blob.digest, &unique_name());
    match ds.rename(&rel, &to) {
        Ok(()) => {}
        Err(e) if is_not_found(&e) => return Ok(None),
        Err(e) => return Err(e),
    }
    match check_object(ds, &to, blob)? {
        Checked::Bad(_) => {
            refresh_time(ds, &to);
            Ok(Some(to))
        }
        Checked::Good => {
            // Same content under the same name: replacing a copy written meanwhile is
            // harmless.
            ds.rename(&to, &rel)?;
            Ok(None)
        }
        Checked::Absent => Ok(None),
    }
}

/// A local rename keeps the file's modification time; `gc`'s grace period counts from
/// the move. Remote stores stamp the copy themselves.
fn refresh_time(ds: &Datastore, rel: &str) {
    if let Backend::Local(root) = ds.backend() {
        if let Ok(f) = std::fs::OpenOptions::new().write(true).open(root.join(rel)) {
            let _ = f.set_modified(SystemTime::now());
        }
    }
}

fn is_not_found(e: &Error) -> bool {
    matches!(e, Error::Store { source, .. } if matches!(**source, object_store::Error::NotFound { .. }))
}
