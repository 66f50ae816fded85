//! The commit protocol, in one place.
//!
//! A task attempt writes its blobs first (idempotent, content-addressed), then its commit
//! record, create-only, last: **one object**, which carries the attempt's manifest (its
//! artifacts' digests, parents, timings, status) together with the manifest's SHA-256.
//! Readers believe an attempt only through its commit record, so a crash at any instant
//! leaves either a committed attempt or nothing any reader believes; a killed writer
//! leaves at most blobs, which `gc` collects.
//!
//! Concurrent writers of one attempt (a retried job whose first run was not dead, a
//! duplicated container) each build their own record, with their own manifest and a unique
//! writer id, and race to create the same key; exactly one create succeeds. Because the
//! manifest travels *inside* the record, the winner's record can only ever name the
//! winner's manifest. The race that once motivated content-addressed manifests (writer A's
//! record naming a per-attempt manifest file that writer B overwrote) has no object to
//! happen on: there is no second object to overwrite, and the record's own bytes are
//! written whole or not at all by the create.
//!
//! A writer that retries a create whose response was lost finds the key taken and reads
//! it back: the bytes are its own (the writer id makes them unique) exactly when its first
//! try went through.
//!
//! Fencing reuses the same record: the scheduler create-writes a `timed-out` commit for an
//! attempt that ran past its deadline, so a late writer of that attempt number loses the
//! create and can never commit.
//!
//! Records of version 1 (flowlib before one object per attempt) pinned a manifest stored
//! separately under `manifests/`; they are still read. A task taken from the cache whose
//! pass-through fields differ from its source's still stores its own manifest there (it
//! has no commit record of its own), so a pin is resolved through the record of the task
//! it names first and through `manifests/` second ([`read_pinned`]).

use std::collections::BTreeMap;

use bytes::Bytes;
use object_store::PutMode;

use crate::error::{Error, Result};
use crate::meta::metrics::MetricSummary;
use crate::meta::records::COMMIT_VERSION;
use crate::meta::{now_rfc3339, task_id, AttemptStatus, CommitRecord, TaskManifest, TaskRef};
use crate::store::{layout, BlobRef, Datastore, Digest};

/// Create the attempt's commit record, carrying `manifest`. Returns the manifest's pin when
/// this writer won, `None` when the attempt was already committed or fenced by another.
/// `metrics` summarizes the metrics the attempt logged; the commit record keeps it.
pub(crate) fn commit(
    ds: &Datastore,
    manifest: &TaskManifest,
    metrics: BTreeMap<String, MetricSummary>,
) -> Result<Option<BlobRef>> {
    let task = task_id(&manifest.step, &manifest.index);
    crate::failpoint::hold("before-commit", &task);
    let json = serde_json::to_string(manifest).expect("manifest serializes");
    let m_ref = BlobRef {
        digest: Digest::of(json.as_bytes()),
        size: json.len() as u64,
    };
    let raw = serde_json::value::RawValue::from_string(json).expect("valid JSON");
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
        Some((m_ref, raw)),
        manifest.error.clone(),
        metrics,
    )?;
    if won {
        crate::failpoint::hold("after-commit", &task);
    }
    Ok(won.then_some(m_ref))
}

/// Store a manifest under `manifests/` (content-addressed, so idempotent) and return its
/// pin: for a cached task's own manifest, which has no commit record to travel in.
pub(crate) fn write_manifest(ds: &Datastore, manifest: &TaskManifest) -> Result<BlobRef> {
    let bytes = Bytes::from(serde_json::to_vec_pretty(manifest).expect("manifest serializes"));
    let m_ref = BlobRef {
        digest: Digest::of(&bytes),
        size: bytes.len() as u64,
    };
    let m_rel = layout::manifest(&m_ref.digest);
    if !ds.create(&m_rel, bytes.clone())? {
        // Same address, different bytes: a damaged copy. Replace it.
        ds.put_bytes(&m_rel, bytes, PutMode::Overwrite)?;
    }
    Ok(m_ref)
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
    manifest: Option<(BlobRef, Box<serde_json::value::RawValue>)>,
    error: Option<String>,
    metrics: BTreeMap<String, MetricSummary>,
) -> Result<bool> {
    let (manifest, manifest_json) = manifest.unzip();
    let record = CommitRecord {
        metrics,
        version: COMMIT_VERSION,
        attempt: attempt.attempt,
        status,
        manifest,
        manifest_json,
        error,
        committed: now_rfc3339(),
        writer: writer_id(),
    };
    // Compact: a record is read by machines, and its size is the commit's cost.
    let bytes = Bytes::from(serde_json::to_vec(&record).expect("record serializes"));
    ds.create(&commit_path(flow, attempt), bytes)
}

/// Where the commit record of attempt `a` of `flow` is.
pub(crate) fn commit_path(flow: &str, a: &TaskRef) -> String {
    layout::commit(flow, &a.run, &a.step, &a.index.dir_name(), a.attempt)
}

/// Read a committed attempt's record and manifest, verifying the manifest against the pin
/// the record holds.
pub(crate) fn read_commit(
    ds: &Datastore,
    flow: &str,
    attempt: &TaskRef,
) -> Result<Option<(CommitRecord, Option<TaskManifest>)>> {
    let Some(record) = read_record(ds, flow, attempt)? else {
        return Ok(None);
    };
    let manifest = manifest_of(ds, flow, attempt, &record)?;
    Ok(Some((record, manifest)))
}

/// The commit record of `attempt`, if it has one; a record of a newer format than this
/// flowlib reads is an error that says so.
pub(crate) fn read_record(
    ds: &Datastore,
    flow: &str,
    attempt: &TaskRef,
) -> Result<Option<CommitRecord>> {
    let rel = commit_path(flow, attempt);
    let Some(record) = ds.get_json::<CommitRecord>(&rel)? else {
        return Ok(None);
    };
    check_version(ds, &rel, &record)?;
    Ok(Some(record))
}

/// Refuse a commit record written by a newer flowlib.
pub(crate) fn check_version(ds: &Datastore, rel: &str, record: &CommitRecord) -> Result<()> {
    if record.version > COMMIT_VERSION {
        return Err(Error::metadata(
            ds.path(rel),
            format!(
                "commit record format {} is newer than this flowlib reads ({COMMIT_VERSION}); upgrade flowlib",
                record.version
            ),
        ));
    }
    Ok(())
}

/// The manifest `record` (the commit record of `attempt`) commits: the one it carries, or,
/// for version 1 records, the one it pins under `manifests/`. `None` for a record without
/// one (fenced, lost).
pub(crate) fn manifest_of(
    ds: &Datastore,
    flow: &str,
    attempt: &TaskRef,
    record: &CommitRecord,
) -> Result<Option<TaskManifest>> {
    let Some(pin) = record.manifest else {
        return Ok(None);
    };
    let Some(raw) = &record.manifest_json else {
        return read_manifest(ds, pin, &attempt.task_id()).map(Some);
    };
    let rel = commit_path(flow, attempt);
    parse_manifest(ds, &rel, raw.get().as_bytes(), pin, &attempt.task_id()).map(Some)
}

/// The manifest pinned as `pin` of a task that `source` names (a reused task, a cache
/// hit, a task spec's input): carried by `source`'s commit record in the common case,
/// else stored under `manifests/` (version 1 stores; a cached task's own manifest).
/// Either way it must hash to `pin`.
pub(crate) fn read_pinned(
    ds: &Datastore,
    flow: &str,
    source: &TaskRef,
    pin: BlobRef,
) -> Result<TaskManifest> {
    let (rel, bytes) = pinned_bytes(ds, flow, source, pin)?;
    parse_manifest(ds, &rel, &bytes, pin, &source.task_id())
}

/// The bytes of the manifest pinned as `pin` (see [`read_pinned`]), with the key they
/// were read from.
pub(crate) fn pinned_bytes(
    ds: &Datastore,
    flow: &str,
    source: &TaskRef,
    pin: BlobRef,
) -> Result<(String, Bytes)> {
    if let Some(record) = read_record(ds, flow, source)? {
        if let (Some(p), Some(raw)) = (record.manifest, &record.manifest_json) {
            if p == pin {
                let bytes = Bytes::copy_from_slice(raw.get().as_bytes());
                return Ok((commit_path(flow, source), bytes));
            }
        }
    }
    let m_rel = layout::manifest(&pin.digest);
    let bytes = ds.get_bytes(&m_rel)?.ok_or_else(|| {
        Error::metadata(
            ds.path(&m_rel),
            format!("the manifest of task {} is missing", source.task_id()),
        )
    })?;
    Ok((m_rel, bytes))
}

/// Read a manifest stored under `manifests/` by its digest, verifying it.
pub(crate) fn read_manifest(ds: &Datastore, m_ref: BlobRef, task: &str) -> Result<TaskManifest> {
    let m_rel = layout::manifest(&m_ref.digest);
    let bytes = ds.get_bytes(&m_rel)?.ok_or_else(|| {
        Error::metadata(
            ds.path(&m_rel),
            format!("the manifest of task {task} is missing"),
        )
    })?;
    parse_manifest(ds, &m_rel, &bytes, m_ref, task)
}

/// Verify manifest bytes read from `rel` against their pin and parse them.
fn parse_manifest(
    ds: &Datastore,
    rel: &str,
    bytes: &[u8],
    m_ref: BlobRef,
    task: &str,
) -> Result<TaskManifest> {
    if Digest::of(bytes) != m_ref.digest || bytes.len() as u64 != m_ref.size {
        return Err(Error::metadata(
            ds.path(rel),
            format!(
                "the manifest of task {task} is corrupted (it does not hash to {})",
                m_ref.digest
            ),
        ));
    }
    serde_json::from_slice(bytes)
        .map_err(|e| Error::metadata(ds.path(rel), format!("invalid JSON: {e}")))
}
