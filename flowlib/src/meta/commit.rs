//! The commit protocol, in one place.
//!
//! A task attempt writes its blobs first (idempotent, content-addressed), then its manifest
//! (content-addressed JSON: concurrent writers of one attempt each store their own, so
//! none can overwrite another's), then its commit record with create-only semantics,
//! last. Readers believe an attempt only through its commit record, and the commit record
//! pins the digest of the manifest it commits, so a crash at any instant leaves either a
//! committed attempt or nothing any reader believes.
//!
//! Fencing reuses the same record: the scheduler create-writes a `timed-out` commit for an
//! attempt that ran past its deadline, so a late writer of that attempt number loses the
//! create and can never commit. Every record carries a unique writer id, so a writer that
//! retries a create whose response was lost recognises its own record.

use std::collections::BTreeMap;

use bytes::Bytes;
use object_store::PutMode;

use crate::error::{Error, Result};
use crate::meta::metrics::MetricSummary;
use crate::meta::{
    now_rfc3339, task_id, AttemptStatus, CommitRecord, TaskManifest, TaskRef, METADATA_VERSION,
};
use crate::store::{layout, BlobRef, Datastore, Digest};

/// Write the manifest, then the commit record create-only. Returns the manifest's pin when
/// this writer won, `None` when the attempt was already committed or fenced by another.
/// `metrics` summarizes the metrics the attempt logged; the commit record keeps it.
pub(crate) fn commit(
    ds: &Datastore,
    manifest: &TaskManifest,
    metrics: BTreeMap<String, MetricSummary>,
) -> Result<Option<BlobRef>> {
    let bytes = Bytes::from(serde_json::to_vec_pretty(manifest).expect("manifest serializes"));
    let m_ref = BlobRef {
        digest: Digest::of(&bytes),
        size: bytes.len() as u64,
    };
    let m_rel = layout::manifest(&m_ref.digest);
    let task = task_id(&manifest.step, &manifest.index);
    crate::failpoint::hold("before-manifest", &task);
    if !ds.create(&m_rel, bytes.clone())? {
        // Same address, different bytes: a damaged copy. Replace it.
        ds.put_bytes(&m_rel, bytes, PutMode::Overwrite)?;
    }
    crate::failpoint::hold("before-commit", &task);
    let attempt = TaskRef {
        run: manifest.run.clone(),
        step: manifest.step.clone(),
        index: manifest.index.clone(),
        attempt: manifest.attempt,
    };
    let won = write_record(
        ds,
        &manifest.flow,
        &attempt,
        manifest.status,
        Some(m_ref),
        manifest.error.clone(),
        metrics,
    )?;
    if won {
        crate::failpoint::hold("after-commit", &task);
    }
    Ok(won.then_some(m_ref))
}

/// Identifies this writer in commit records, so two writers never produce identical bytes.
fn writer_id() -> String {
    use std::hash::{BuildHasher, Hasher};
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u128(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap_or_default()
            .as_nanos(),
    );
    format!(
        "{}:{}:{:08x}",
        crate::meta::hostname(),
        std::process::id(),
        h.finish() as u32
    )
}

/// Fence an attempt: commit it as timed out, create-only. Returns false if the attempt
/// committed first (then its own commit stands).
pub(crate) fn fence(ds: &Datastore, flow: &str, attempt: &TaskRef, error: &str) -> Result<bool> {
    let error = Some(error.to_string());
    write_record(
        ds,
        flow,
        attempt,
        AttemptStatus::TimedOut,
        None,
        error,
        BTreeMap::new(),
    )
}

/// Record an attempt whose process died without recording itself (`lost`, with why),
/// create-only, so that a late writer of that attempt (a job the engine reported dead but
/// that still runs) can never commit. Returns false if the attempt committed first: then
/// its own record stands and is the truth.
pub(crate) fn record_lost(
    ds: &Datastore,
    flow: &str,
    attempt: &TaskRef,
    error: &str,
) -> Result<bool> {
    let error = Some(error.to_string());
    write_record(
        ds,
        flow,
        attempt,
        AttemptStatus::Lost,
        None,
        error,
        BTreeMap::new(),
    )
}

/// Create the commit record of `attempt`; false when another writer created it first.
fn write_record(
    ds: &Datastore,
    flow: &str,
    attempt: &TaskRef,
    status: AttemptStatus,
    manifest: Option<BlobRef>,
    error: Option<String>,
    metrics: BTreeMap<String, MetricSummary>,
) -> Result<bool> {
    let record = CommitRecord {
        metrics,
        version: METADATA_VERSION,
        attempt: attempt.attempt,
        status,
        manifest,
        error,
        committed: now_rfc3339(),
        writer: writer_id(),
    };
    ds.create_json(&commit_path(flow, attempt), &record)
}

fn commit_path(flow: &str, a: &TaskRef) -> String {
    layout::commit(flow, &a.run, &a.step, &a.index.dir_name(), a.attempt)
}

/// Read a committed attempt's manifest, verifying it against its commit record.
pub(crate) fn read_commit(
    ds: &Datastore,
    flow: &str,
    attempt: &TaskRef,
) -> Result<Option<(CommitRecord, Option<TaskManifest>)>> {
    let Some(record) = ds.get_json::<CommitRecord>(&commit_path(flow, attempt))? else {
        return Ok(None);
    };
    let Some(m_ref) = record.manifest else {
        return Ok(Some((record, None)));
    };
    let manifest = read_manifest(ds, m_ref, &attempt.task_id())?;
    Ok(Some((record, Some(manifest))))
}

/// Read a manifest by its digest, verifying it.
pub(crate) fn read_manifest(ds: &Datastore, m_ref: BlobRef, task: &str) -> Result<TaskManifest> {
    let m_rel = layout::manifest(&m_ref.digest);
    let bytes = ds.get_bytes(&m_rel)?.ok_or_else(|| {
        Error::metadata(
            ds.path(&m_rel),
            format!("the manifest of task {task} is missing"),
        )
    })?;
    if Digest::of(&bytes) != m_ref.digest || bytes.len() as u64 != m_ref.size {
        return Err(Error::metadata(
            ds.path(&m_rel),
            format!(
                "the manifest of task {task} is corrupted (it does not hash to {})",
                m_ref.digest
            ),
        ));
    }
    serde_json::from_slice(&bytes)
        .map_err(|e| Error::metadata(ds.path(&m_rel), format!("invalid JSON: {e}")))
}
