//! The cross-run cache of `#[cache]` steps: an index from a task's cache key to an earlier
//! committed task with that key, and the record of the hits a run took from it.
//!
//! **Entries** live at `cache/<Flow>/<step>/<key>.json`, one create-only object per key.
//! A run that computed a key publishes its task there after the task committed; when two
//! runs compute the same key at once, both are correct (each committed its own task) and
//! the first entry wins, the other create finds it and is dropped. An entry is never
//! rewritten, so no reader can see a half-moved entry, and clearing one is a delete.
//!
//! An entry is trusted only as far as it verifies: it must parse, name the key, flow and
//! step it is filed under, and pin a manifest that hashes to its digest and records a
//! successful attempt. Anything else is a [`Lookup::Invalid`]: the caller warns and
//! recomputes, and the next publish of that key replaces the damaged entry.
//!
//! **Hits** are recorded by the run that took them, in numbered create-only batches under
//! its `tasks/__cached/` (one object per driver turn, however many hits it took: a fully
//! cached foreach of 10,000 items is one write), before any successor of a hit starts. A
//! reader of the run's tasks lists them with the commit records (same prefix, one listing).

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::meta::commit::{pinned_bytes, read_pinned};
use crate::meta::{hostname, now_rfc3339, AttemptStatus, IndexPath, TaskManifest, TaskRef};
use crate::store::{layout, BlobRef, Datastore, Digest};

/// Version of the cache key's definition: bumping it makes every earlier entry miss.
pub(crate) const KEY_VERSION: u32 = 1;

/// One cache index entry: the task that computed a key.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[non_exhaustive]
pub struct CacheEntry {
    /// Record version.
    pub version: u32,
    /// Flow name.
    pub flow: String,
    /// Step name.
    pub step: String,
    /// The key (SHA-256 of its parts).
    pub key: Digest,
    /// What went into the key, in order (`code`, `field.x`, `item`, ...): for `cache show`
    /// and for explaining a miss.
    pub parts: Vec<(String, String)>,
    /// The committed attempt that computed it.
    pub source: TaskRef,
    /// Its outcome (always ok: only successful attempts are published).
    pub status: AttemptStatus,
    /// The manifest its commit record pins.
    pub manifest: BlobRef,
    /// That manifest's bytes, verified against `manifest` on every lookup: a hit is one
    /// read.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub manifest_json: Option<String>,
    /// When it was published (RFC 3339).
    pub created: String,
    /// Who published it (`host:pid`).
    pub writer: String,
}

/// A task's cache key and what went into it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct CacheKey {
    pub(crate) digest: Digest,
    pub(crate) parts: Vec<(String, String)>,
}

impl CacheKey {
    /// The key of `parts`: SHA-256 of their canonical JSON.
    pub(crate) fn of(parts: Vec<(String, String)>) -> CacheKey {
        let bytes = serde_json::to_vec(&parts).expect("strings serialize");
        CacheKey {
            digest: Digest::of(&bytes),
            parts,
        }
    }
}

/// What the index says about a key.
#[derive(Debug)]
pub(crate) enum Lookup {
    /// No entry.
    Miss,
    /// A verified entry and the manifest it pins.
    Hit(Box<CacheEntry>, Box<TaskManifest>),
    /// An entry that does not verify (why): ignore it and recompute.
    Invalid(String),
}

fn entry_path(flow: &str, step: &str, key: &Digest) -> String {
    layout::cache_entry(flow, step, &key.hex())
}

/// Look `key` up for `step` of `flow`: one read (the entry holds its manifest, verified
/// against the pinned digest; an entry without one reads the manifest too).
pub(crate) fn lookup(ds: &Datastore, flow: &str, step: &str, key: &Digest) -> Result<Lookup> {
    let rel = entry_path(flow, step, key);
    let Some(bytes) = ds.get_bytes(&rel)? else {
        return Ok(Lookup::Miss);
    };
    let entry: CacheEntry = match serde_json::from_slice(&bytes) {
        Ok(e) => e,
        Err(e) => {
            return Ok(Lookup::Invalid(format!(
                "cache entry {} is not valid JSON ({e})",
                ds.path(&rel)
            )))
        }
    };
    if entry.key != *key || entry.flow != flow || entry.step != step {
        return Ok(Lookup::Invalid(format!(
            "cache entry {} is filed under the wrong key (it names {} {} {})",
            ds.path(&rel),
            entry.flow,
            entry.step,
            entry.key.short()
        )));
    }
    if !entry.status.is_success() {
        return Ok(Lookup::Invalid(format!(
            "cache entry {} records a {} attempt",
            ds.path(&rel),
            entry.status
        )));
    }
    let manifest = match &entry.manifest_json {
        Some(json) => {
            let b = json.as_bytes();
            if Digest::of(b) != entry.manifest.digest || b.len() as u64 != entry.manifest.size {
                return Ok(Lookup::Invalid(format!(
                    "cache entry {}: its copy of the manifest does not hash to {}",
                    ds.path(&rel),
                    entry.manifest.digest
                )));
            }
            match serde_json::from_slice::<TaskManifest>(b) {
                Ok(m) => m,
                Err(e) => {
                    return Ok(Lookup::Invalid(format!(
                        "cache entry {}: its manifest is not valid JSON ({e})",
                        ds.path(&rel)
                    )))
                }
            }
        }
        None => match read_pinned(ds, flow, &entry.source, entry.manifest) {
            Ok(m) => m,
            Err(e) => {
                return Ok(Lookup::Invalid(format!(
                    "cache entry {}: {}",
                    ds.path(&rel),
                    crate::error::chain(&e)
                )))
            }
        },
    };
    if !manifest.status.is_success() || manifest.step != step {
        return Ok(Lookup::Invalid(format!(
            "cache entry {} pins a manifest of {} {} that is not a successful task of step {step}",
            ds.path(&rel),
            manifest.step,
            manifest.status
        )));
    }
    Ok(Lookup::Hit(Box::new(entry), Box::new(manifest)))
}

/// Publish `source`, committed with manifest `manifest`, as the task that computed `key`.
/// Returns false when another entry was there first (it stands, unless it is damaged:
/// then `replace_damaged` replaces it).
pub(crate) fn publish(
    ds: &Datastore,
    flow: &str,
    key: &CacheKey,
    source: &TaskRef,
    manifest: BlobRef,
    replace_damaged: bool,
) -> Result<bool> {
    // The source's commit record carries the manifest (a cached task's own manifest is
    // under `manifests/`); either way it is checked against its pin.
    let (rel, bytes) = pinned_bytes(ds, flow, source, manifest)?;
    if Digest::of(&bytes) != manifest.digest {
        return Err(Error::metadata(
            ds.path(&rel),
            format!("the manifest of task {} is damaged", source.task_id()),
        ));
    }
    let manifest_json = String::from_utf8(bytes.to_vec()).ok();
    let entry = CacheEntry {
        version: KEY_VERSION,
        flow: flow.to_string(),
        step: source.step.clone(),
        key: key.digest,
        parts: key.parts.clone(),
        source: source.clone(),
        status: AttemptStatus::Ok,
        manifest,
        manifest_json,
        created: now_rfc3339(),
        writer: format!("{}:{}", hostname(), std::process::id()),
    };
    let rel = entry_path(flow, &source.step, &key.digest);
    if ds.create_json(&rel, &entry)? {
        return Ok(true);
    }
    if replace_damaged {
        if let Lookup::Invalid(_) = lookup(ds, flow, &source.step, &key.digest)? {
            ds.put_json(&rel, &entry, object_store::PutMode::Overwrite)?;
            return Ok(true);
        }
    }
    Ok(false)
}

/// Cache entries that could not be read: (path, why).
pub type Unreadable = Vec<(String, String)>;

/// Every entry of `flow` (of `step` only, when given), oldest first, and the paths of
/// entries that cannot be read with why.
pub fn entries(
    ds: &Datastore,
    flow: &str,
    step: Option<&str>,
) -> Result<(Vec<CacheEntry>, Unreadable)> {
    let prefix = layout::cache_step(flow, step);
    let mut out = Vec::new();
    let mut bad = Vec::new();
    for obj in ds.list(&prefix)? {
        if !obj.rel.ends_with(".json") {
            continue;
        }
        match ds.get_json::<CacheEntry>(&obj.rel) {
            Ok(Some(e)) => out.push(e),
            Ok(None) => {}
            Err(e) => bad.push((ds.path(&obj.rel).to_string(), crate::error::chain(&e))),
        }
    }
    out.sort_by(|a, b| a.created.cmp(&b.created).then(a.key.cmp(&b.key)));
    Ok((out, bad))
}

/// The entry for `key` (a full digest or a unique prefix of at least 6 hex digits) among
/// `flow`'s entries.
pub fn entry(ds: &Datastore, flow: &str, key: &str) -> Result<CacheEntry> {
    let key = key.strip_prefix("sha256:").unwrap_or(key);
    if key.len() < 6 || !key.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(Error::invalid(format!(
            "`{key}` is not a cache key: give at least 6 hex digits of one (`cache list` shows them)"
        )));
    }
    let (all, _) = entries(ds, flow, None)?;
    let mut found: Vec<CacheEntry> = all
        .into_iter()
        .filter(|e| e.key.hex().starts_with(&key.to_ascii_lowercase()))
        .collect();
    match found.len() {
        0 => Err(Error::not_found(format!(
            "flow {flow} has no cache entry with key {key} (`cache list` shows them)"
        ))),
        1 => Ok(found.remove(0)),
        n => Err(Error::invalid(format!(
            "cache key prefix {key} is ambiguous: {n} entries of flow {flow} start with it"
        ))),
    }
}

/// Delete `flow`'s entries (of `step` only, when given); returns how many. Runs and their
/// artifacts are untouched: the next run of those steps recomputes and republishes.
pub fn clear(ds: &Datastore, flow: &str, step: Option<&str>) -> Result<usize> {
    let prefix = layout::cache_step(flow, step);
    let mut n = 0;
    for obj in ds.list(&prefix)? {
        ds.delete(&obj.rel)?;
        n += 1;
    }
    Ok(n)
}

/// One hit a run took, as its `tasks/__cached/<n>.json` batch records it.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[non_exhaustive]
pub struct CachedTask {
    /// Step name.
    pub step: String,
    /// Foreach index path.
    pub index: IndexPath,
    /// The attempt number the hit stands for in this run.
    pub attempt: u32,
    /// The committed attempt it was taken from (the run that executed it).
    pub source: TaskRef,
    /// Its status (ok).
    pub status: AttemptStatus,
    /// The manifest this run uses for it: the source's own, or one written for this run
    /// when fields the step does not read differ from the source's.
    pub manifest: BlobRef,
    /// The cache key that matched.
    pub key: Digest,
}

/// A batch of hits, written create-only before any successor of them starts.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[non_exhaustive]
pub struct CachedBatch {
    /// Record version.
    pub version: u32,
    /// The hits.
    pub tasks: Vec<CachedTask>,
}

/// Record batch `seq` of `run`'s hits. A batch number already taken is an error: one
/// driver numbers a run's batches.
pub(crate) fn record_hits(
    ds: &Datastore,
    flow: &str,
    run: &str,
    seq: u64,
    tasks: Vec<CachedTask>,
) -> Result<()> {
    let rel = layout::cached_batch(flow, run, seq);
    let batch = CachedBatch {
        version: KEY_VERSION,
        tasks,
    };
    if !ds.create_json(&rel, &batch)? {
        return Err(Error::metadata(
            ds.path(&rel),
            "another writer created this batch of cache hits first (two drivers of one run?)",
        ));
    }
    Ok(())
}
