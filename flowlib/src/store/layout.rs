//! The store layout: every key prefix flowlib uses under a datastore root, named here
//! and nowhere else.
//!
//! ```text
//! datastore.json                                   marks the root as a flowlib datastore
//! blobs/sha256/<2 hex>/<62 hex>                    content-addressed artifact blobs
//! manifests/sha256/<2 hex>/<62 hex>.json           content-addressed task manifests (format 1
//!                                                  stores; a cache hit's own manifest)
//! tmp/<random>                                     staging objects of large local writes
//! quarantine/sha256/<2 hex>/<62 hex>/<unique>     blobs found not to match their address
//! leases/gc/<unique>.json                          leases of gc sweeps in progress
//! flows/<Flow>/runs/<run>/run.json                 run record (create-only)
//! flows/<Flow>/runs/<run>/end.json                 end record (create-only)
//! flows/<Flow>/runs/<run>/reuse.json               tasks a resumed run reuses (create-only)
//! flows/<Flow>/runs/<run>/heartbeat.json           the run's driver is alive (rewritten)
//! flows/<Flow>/runs/<run>/resume-claims/<n>.json   resume number n of this run (create-only)
//! flows/<Flow>/runs/<run>/tasks/<step>/<index>@<attempt>.commit.json  (create-only, written
//!                                                  last; carries the attempt's manifest)
//! flows/<Flow>/runs/<run>/checkpoints/<step>/<index>/latest.json
//! flows/<Flow>/runs/<run>/cards/<step>/<index>@<attempt>.json  an attempt's card (create-only,
//!                                                  before its commit record)
//! flows/<Flow>/runs/<run>/metrics/<step>/<index>@<attempt>/<seq>.jsonl  metric chunks (create-only)
//! flows/<Flow>/runs/<run>/tags/<n>.json            tag events of a run (create-only)
//! flows/<Flow>/runs/<run>/artifact-tags/<step>/<index>/<artifact>/<n>.json  of an artifact
//! flows/<Flow>/aliases/<name>/<n>.json             the n-th move of an alias (create-only)
//! ```

use crate::store::Digest;

/// Where the run directories of every flow live.
pub(crate) fn flows() -> String {
    "flows/".to_string()
}

pub(crate) fn runs(flow: &str) -> String {
    format!("flows/{flow}/runs/")
}

pub(crate) fn run_record(flow: &str, run: &str) -> String {
    format!("flows/{flow}/runs/{run}/run.json")
}

pub(crate) fn run_end(flow: &str, run: &str) -> String {
    format!("flows/{flow}/runs/{run}/end.json")
}

pub(crate) fn reuse(flow: &str, run: &str) -> String {
    format!("flows/{flow}/runs/{run}/reuse.json")
}

/// The run's heartbeat: created when the run starts (reserving its id), rewritten while
/// its driver lives.
pub(crate) fn heartbeat(flow: &str, run: &str) -> String {
    format!("flows/{flow}/runs/{run}/heartbeat.json")
}

/// The numbered claims of the resumes of run `run`.
pub(crate) fn resume_claims(flow: &str, run: &str) -> String {
    format!("flows/{flow}/runs/{run}/resume-claims/")
}

/// Claim number `n` (zero-padded, so listings sort by number).
pub(crate) fn resume_claim(flow: &str, run: &str, n: u64) -> String {
    format!("{}{n:010}.json", resume_claims(flow, run))
}

/// The claim number of a file name under `resume-claims/`.
pub(crate) fn parse_resume_claim(name: &str) -> Option<u64> {
    name.strip_suffix(".json")?.parse().ok()
}

pub(crate) fn tasks(flow: &str, run: &str) -> String {
    format!("flows/{flow}/runs/{run}/tasks/")
}

/// `<step>/<index>@<attempt>`: one flat directory per step keeps task commits cheap
/// (no directory to create per task).
/// `index` is the index path's directory name (`_` outside foreach, else `2.5`).
fn attempt_stem(flow: &str, run: &str, step: &str, index: &str, attempt: u32) -> String {
    format!("flows/{flow}/runs/{run}/tasks/{step}/{index}@{attempt}")
}

/// A manifest stored on its own, content-addressed: every manifest of a format 1 store, and
/// now only a cache hit's own manifest (a commit record carries the manifest otherwise).
pub(crate) fn manifest(digest: &Digest) -> String {
    let hex = digest.hex();
    format!("manifests/sha256/{}/{}.json", &hex[..2], &hex[2..])
}

pub(crate) fn commit(flow: &str, run: &str, step: &str, index: &str, attempt: u32) -> String {
    format!(
        "{}.commit.json",
        attempt_stem(flow, run, step, index, attempt)
    )
}

/// Where the cards of a run's attempts are.
pub(crate) fn cards(flow: &str, run: &str) -> String {
    format!("flows/{flow}/runs/{run}/cards/")
}

/// The card of one attempt: `cards/<step>/<index>@<attempt>.json` (create-only, written
/// before the attempt's commit record).
pub(crate) fn card(flow: &str, run: &str, step: &str, index: &str, attempt: u32) -> String {
    format!("{}{step}/{index}@{attempt}.json", cards(flow, run))
}

/// `(step, index, attempt)` of a path under `cards/`.
pub(crate) fn parse_card_file(rest: &str) -> Option<(&str, &str, u32)> {
    let (step, file) = rest.split_once('/')?;
    let (index, attempt) = file.strip_suffix(".json")?.split_once('@')?;
    Some((step, index, attempt.parse().ok()?))
}

/// The commit record a path under `tasks/` names: (step, index directory name, attempt).
pub(crate) fn parse_commit_file(rest: &str) -> Option<(&str, &str, u32)> {
    let (step, file) = rest.split_once('/')?;
    let stem = file.strip_suffix(".commit.json")?;
    let (index, attempt) = stem.split_once('@')?;
    Some((step, index, attempt.parse().ok()?))
}

/// The batches of cache hits a run took (`__` cannot start a step name, so no commit
/// record lives here; the listing of a run's `tasks/` finds both).
pub(crate) fn cached_batch(flow: &str, run: &str, seq: u64) -> String {
    format!("flows/{flow}/runs/{run}/tasks/{CACHED_DIR}/{seq}.json")
}

/// The directory of [`cached_batch`] under a run's `tasks/`.
pub(crate) const CACHED_DIR: &str = "__cached";

/// The batch number a path under a run's `tasks/` names, if it is a batch of cache hits.
pub(crate) fn parse_cached_batch(rest: &str) -> Option<u64> {
    rest.strip_prefix(CACHED_DIR)?
        .strip_prefix('/')?
        .strip_suffix(".json")?
        .parse()
        .ok()
}

/// The cache index entry of `key` for `step` of `flow`.
pub(crate) fn cache_entry(flow: &str, step: &str, key: &str) -> String {
    format!("cache/{flow}/{step}/{key}.json")
}

/// The cache entries of `flow` (of `step`, when given).
pub(crate) fn cache_step(flow: &str, step: Option<&str>) -> String {
    match step {
        Some(s) => format!("cache/{flow}/{s}/"),
        None => format!("cache/{flow}/"),
    }
}

pub(crate) fn checkpoints(flow: &str, run: &str) -> String {
    format!("flows/{flow}/runs/{run}/checkpoints/")
}

pub(crate) fn checkpoint_latest(flow: &str, run: &str, step: &str, index: &str) -> String {
    format!("flows/{flow}/runs/{run}/checkpoints/{step}/{index}/latest.json")
}

/// The pointer a checkpoint save replaced: the fallback when `latest.json` is damaged.
pub(crate) fn checkpoint_previous(flow: &str, run: &str, step: &str, index: &str) -> String {
    format!("flows/{flow}/runs/{run}/checkpoints/{step}/{index}/previous.json")
}

/// The file that marks a location as a flowlib datastore.
pub(crate) const MARKER: &str = "datastore.json";

/// Content-addressed artifact blobs.
pub(crate) const BLOBS: &str = "blobs/";

/// Content-addressed task manifests.
pub(crate) const MANIFESTS: &str = "manifests/";

/// Staging objects of large local writes, renamed into `blobs/` once hashed. A killed
/// writer leaves one behind; `gc` collects those past the grace period.
pub(crate) const TMP: &str = "tmp/";

/// The object path of a blob.
pub(crate) fn blob(digest: &Digest) -> String {
    let hex = digest.hex();
    format!("blobs/sha256/{}/{}", &hex[..2], &hex[2..])
}

/// Blobs found corrupt (their bytes do not hash to their address), moved aside so that
/// the next write of the same value stores it afresh. Kept for inspection; `gc` collects
/// them past the grace period.
pub(crate) const QUARANTINE: &str = "quarantine/";

/// Where the quarantined copies of `digest` go (one folder per digest, listable).
pub(crate) fn quarantined_copies(digest: &Digest) -> String {
    let hex = digest.hex();
    format!("{QUARANTINE}sha256/{}/{}/", &hex[..2], &hex[2..])
}

/// A fresh quarantine name for a corrupt copy of `digest`.
pub(crate) fn quarantined(digest: &Digest, unique: &str) -> String {
    format!("{}{unique}", quarantined_copies(digest))
}

/// A fresh staging object for a large write.
pub(crate) fn staging(unique: &str) -> String {
    format!("{TMP}{unique}")
}

/// Leases of `gc` sweeps in progress, one `leases/gc/<unique>.json` per sweep. A writer
/// that is about to rely on a stored blob first waits until no live lease is left (the
/// protocol is argued at the top of `maintenance/gc.rs`).
pub(crate) const GC_LEASES: &str = "leases/gc/";

/// The lease of one `gc` sweep.
pub(crate) fn gc_lease(unique: &str) -> String {
    format!("{GC_LEASES}{unique}.json")
}

/// A gc lease not refreshed for this long belongs to a gc that died: writers ignore it.
/// A live sweep refreshes its lease well within this (see `maintenance/gc.rs`).
pub(crate) const GC_LEASE_STALE: std::time::Duration = std::time::Duration::from_secs(600);

/// Content-addressed task specs, read by remote executors (`<exe> step --spec <digest>`).
pub(crate) const SPECS: &str = "specs/";

/// The object path of a task spec.
pub(crate) fn spec(digest: &Digest) -> String {
    let hex = digest.hex();
    format!("specs/sha256/{}/{}.json", &hex[..2], &hex[2..])
}

/// The object path of an array job's list of task specs (one hex digest a line), which its
/// containers fetch when the list is too long for the job's environment. Under `specs/`,
/// so gc sweeps it like the specs it lists.
#[cfg_attr(not(any(feature = "batch", feature = "kubernetes")), allow(dead_code))]
pub(crate) fn spec_list(digest: &Digest) -> String {
    let hex = digest.hex();
    format!("specs/sha256/{}/{}.list", &hex[..2], &hex[2..])
}

/// One attempt's captured output: `<prefix><stream>/<seq>.log` chunks, written create-only
/// while the task runs, so what a killed task printed before it died is kept.
pub(crate) fn logs(flow: &str, run: &str, step: &str, index: &str, attempt: u32) -> String {
    format!("flows/{flow}/runs/{run}/logs/{step}/{index}@{attempt}/")
}

/// Chunk `seq` of one stream of an attempt's log (`prefix` from [`logs`]).
pub(crate) fn log_chunk(prefix: &str, stream: &str, seq: u64) -> String {
    format!("{prefix}{stream}/{seq:08}.log")
}

/// One attempt's metrics: `<prefix><seq>.jsonl` chunks of JSON-lines points, written
/// create-only while the task runs (see `meta/metrics.rs`).
pub(crate) fn metrics(flow: &str, run: &str, step: &str, index: &str, attempt: u32) -> String {
    format!("{}{step}/{index}@{attempt}/", run_metrics(flow, run))
}

/// Every metric chunk of run `run`.
pub(crate) fn run_metrics(flow: &str, run: &str) -> String {
    format!("flows/{flow}/runs/{run}/metrics/")
}

/// Chunk `seq` of an attempt's metrics (`prefix` from [`metrics`]).
pub(crate) fn metric_chunk(prefix: &str, seq: u64) -> String {
    format!("{prefix}{seq:08}.jsonl")
}

/// The chunk number of a metric chunk's file name.
pub(crate) fn parse_metric_chunk(name: &str) -> Option<u64> {
    name.strip_suffix(".jsonl")?.parse().ok()
}

/// A path under [`run_metrics`]: (step, index directory name, attempt, chunk number).
pub(crate) fn parse_metric_path(rest: &str) -> Option<(&str, &str, u32, u64)> {
    let mut it = rest.split('/');
    let (step, attempt_dir, file) = (it.next()?, it.next()?, it.next()?);
    if it.next().is_some() {
        return None;
    }
    let (index, attempt) = attempt_dir.split_once('@')?;
    Some((
        step,
        index,
        attempt.parse().ok()?,
        parse_metric_chunk(file)?,
    ))
}

/// The tag events of a run: `<n>.json`, numbered, create-only (see `meta/tags.rs`).
pub(crate) fn run_tags(flow: &str, run: &str) -> String {
    format!("flows/{flow}/runs/{run}/tags/")
}

/// The tag events of every artifact of run `run`.
pub(crate) fn run_artifact_tags(flow: &str, run: &str) -> String {
    format!("flows/{flow}/runs/{run}/artifact-tags/")
}

/// The tag events of one artifact of one task.
pub(crate) fn artifact_tags(
    flow: &str,
    run: &str,
    step: &str,
    index: &str,
    artifact: &str,
) -> String {
    format!("{}{step}/{index}/{artifact}/", run_artifact_tags(flow, run))
}

/// The aliases of a flow: `<name>/<n>.json`, each move of an alias one numbered
/// create-only record (see `meta/aliases.rs`).
pub(crate) fn aliases(flow: &str) -> String {
    format!("flows/{flow}/aliases/")
}

/// The moves of alias `name` of a flow.
pub(crate) fn alias(flow: &str, name: &str) -> String {
    format!("flows/{flow}/aliases/{name}/")
}

/// Record number `n` under `dir` (zero-padded, so listings sort by number).
pub(crate) fn numbered(dir: &str, n: u64) -> String {
    format!("{dir}{n:010}.json")
}

/// The number of a numbered record's file name.
pub(crate) fn parse_numbered(name: &str) -> Option<u64> {
    name.strip_suffix(".json")?.parse().ok()
}

/// How an attempt's process ended, as the process that watched it saw it (exit code,
/// signal, out of memory), written next to its logs: it explains an attempt that died
/// without a commit record.
pub(crate) fn exit_record(prefix: &str) -> String {
    format!("{prefix}exit.json")
}

/// Flow executables stored for remote tasks, by the SHA-256 of their bytes.
pub(crate) const PACKAGES: &str = "packages/";

/// The executable whose bytes hash to `digest`.
pub(crate) fn package(digest: &Digest) -> String {
    let hex = digest.hex();
    format!("packages/sha256/{}/{}", &hex[..2], &hex[2..])
}

/// A request to cancel a run, made by `cancel` (create-only); the run's driver watches it.
pub(crate) fn cancel_request(flow: &str, run: &str) -> String {
    format!("flows/{flow}/runs/{run}/cancel.json")
}
