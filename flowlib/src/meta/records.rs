//! Record schemas: run records, task manifests, commit records, reuse records. All records
//! are JSON, stored in the datastore next to the blobs (see `store::layout`). The commit
//! protocol that writes and reads them is in `meta::commit`.

use std::collections::BTreeMap;
use std::fmt;

use bytes::Bytes;
use serde::{Deserialize, Serialize};

use crate::meta::{task_id, IndexPath, Parents};
use crate::store::{BlobRef, Digest};

/// Version of the metadata records written by this flowlib.
pub(crate) const METADATA_VERSION: u32 = 1;

/// Version of the commit records written by this flowlib: 2 carries the manifest inside
/// the record (one object per attempt); 1 pinned a manifest stored under `manifests/`.
pub(crate) const COMMIT_VERSION: u32 = 2;
/// What identifies the code that ran.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
#[non_exhaustive]
pub struct CodeIdentity {
    /// Path of the running executable.
    pub exe: String,
    /// SHA-256 of the executable.
    pub exe_digest: Option<Digest>,
    /// Git commit of the working directory's repository, when there is one.
    pub git_commit: Option<String>,
    /// flowlib version.
    pub flowlib: String,
}

/// How a resumed run relates to its origin.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[non_exhaustive]
pub struct ResumeInfo {
    /// The origin run.
    pub origin: String,
    /// The step resumed from, when one was given.
    pub step: Option<String>,
    /// Parameters whose value differs from the origin's: name, (origin value, new value).
    /// Compared by blob digest, so NaN and infinities count too (recorded as `"NaN"`,
    /// `"inf"`, `"-inf"`, since JSON has no such numbers).
    pub changed_params: BTreeMap<String, (serde_json::Value, serde_json::Value)>,
    /// Number of tasks reused from the origin.
    pub reused_tasks: usize,
    /// For each changed parameter, the steps re-run because of it, in graph order: the
    /// steps that read it and everything downstream of them.
    #[serde(default)]
    pub rerun_for_params: BTreeMap<String, Vec<String>>,
    /// Digest and size of this run's `reuse.json`, written before the run record: a run
    /// record that names one never exists without it. Absent in records of older flowlib.
    #[serde(default)]
    pub reuse: Option<BlobRef>,
}

/// The shape of one step, as recorded in a run record.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct StepShape {
    /// Step name.
    pub name: String,
    /// Names of the next steps.
    pub next: Vec<String>,
    /// The foreach field, for foreach steps.
    pub foreach: Option<String>,
    /// For joins: the split step they close.
    pub joins: Option<String>,
}

/// The run record, `run.json`, written create-only when a run starts.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[non_exhaustive]
pub struct RunRecord {
    /// Metadata version.
    pub version: u32,
    /// Flow name.
    pub flow: String,
    /// Run id.
    pub run_id: String,
    /// Start time (RFC 3339).
    pub started: String,
    /// Parameter values (JSON).
    pub params: BTreeMap<String, serde_json::Value>,
    /// The initial state (defaults and parameters) the start step receives.
    pub initial: BTreeMap<String, BlobRef>,
    /// Digest of the graph that ran.
    pub graph_digest: String,
    /// Shape of the graph that ran, to check that a resume maps onto it.
    #[serde(default)]
    pub graph: Vec<StepShape>,
    /// The code that ran.
    pub code: CodeIdentity,
    /// Host name.
    pub host: String,
    /// User name.
    pub user: String,
    /// Process id of the scheduler.
    pub pid: u32,
    /// Command line.
    pub argv: Vec<String>,
    /// Set for resumed runs.
    #[serde(default)]
    pub resume: Option<ResumeInfo>,
    /// Set when a workflow engine (Argo Workflows) drives the run instead of a flowlib
    /// driver process.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub orchestrator: Option<Orchestrator>,
    /// The executors the run's steps were placed on (`threads`, `slurm`, ...): what
    /// `cancel` stops besides the driver. Absent in records of older flowlib.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub executors: Option<Vec<String>>,
}

/// The workflow engine that drives a run without a flowlib driver (`export argo`): no
/// process keeps the run's heartbeat fresh, so readers ask the engine, not the heartbeat's
/// age, whether the run is alive; the engine's exit handler writes the end record.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct Orchestrator {
    /// The engine: `argo`.
    pub engine: String,
    /// The engine's name of the workflow running the run (`{{workflow.name}}`).
    pub workflow: String,
    /// The workflow's uid (`{{workflow.uid}}`).
    pub uid: String,
}

impl Orchestrator {
    /// An Argo Workflows workflow, by name and uid.
    pub fn argo(workflow: impl Into<String>, uid: impl Into<String>) -> Self {
        Orchestrator {
            engine: "argo".to_string(),
            workflow: workflow.into(),
            uid: uid.into(),
        }
    }
}

impl fmt::Display for Orchestrator {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} workflow {} (uid {})",
            self.engine, self.workflow, self.uid
        )
    }
}

/// How a run ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
#[non_exhaustive]
pub enum RunStatus {
    /// Every task succeeded.
    Succeeded,
    /// Some task failed.
    Failed,
    /// Still running, or killed before it could say so.
    Running,
    /// Cancelled (Ctrl-C, or `cancel <run>`): what committed stays, `resume` continues it.
    Cancelled,
}

impl fmt::Display for RunStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            RunStatus::Succeeded => "succeeded",
            RunStatus::Failed => "failed",
            RunStatus::Running => "running",
            RunStatus::Cancelled => "cancelled",
        })
    }
}

/// The end record, `end.json`, written create-only when a run finishes.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[non_exhaustive]
pub struct RunEnd {
    /// Final status.
    pub status: RunStatus,
    /// End time (RFC 3339).
    pub finished: String,
    /// Wall time in milliseconds.
    pub duration_ms: u64,
    /// Tasks that committed successfully (run or reused).
    pub tasks_ok: usize,
    /// Tasks reused from an origin run.
    pub tasks_reused: usize,
    /// Tasks of `#[cache]` steps taken from the cache.
    #[serde(default)]
    pub tasks_cached: usize,
    /// Failed tasks with their errors.
    pub failures: Vec<(String, String)>,
    /// Tasks that never ran because of an upstream failure.
    pub not_run: usize,
}

/// Outcome of one task attempt.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
#[non_exhaustive]
pub enum AttemptStatus {
    /// The step succeeded and its artifacts are committed.
    Ok,
    /// The step failed; a `#[catch]` step recorded the error and passed its inputs on.
    Caught,
    /// The step returned an error or panicked.
    Failed,
    /// The attempt ran past its timeout and was fenced off.
    TimedOut,
    /// The attempt's process or job died without recording itself (killed, crashed, out of
    /// memory, node lost); the watcher recorded why.
    Lost,
}

impl AttemptStatus {
    /// Whether downstream steps may use this attempt's artifacts.
    pub fn is_success(self) -> bool {
        matches!(self, AttemptStatus::Ok | AttemptStatus::Caught)
    }
}

impl fmt::Display for AttemptStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            AttemptStatus::Ok => "ok",
            AttemptStatus::Caught => "caught",
            AttemptStatus::Failed => "failed",
            AttemptStatus::TimedOut => "timed-out",
            AttemptStatus::Lost => "lost",
        })
    }
}

/// Reference to a committed task attempt, possibly in another run.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[non_exhaustive]
pub struct TaskRef {
    /// Run holding the attempt.
    pub run: String,
    /// Step name.
    pub step: String,
    /// Foreach index path.
    pub index: IndexPath,
    /// Attempt number.
    pub attempt: u32,
}

impl TaskRef {
    /// Attempt `attempt` of task `step` at foreach index path `index` (empty outside a
    /// foreach) of run `run`.
    pub fn new(run: &str, step: &str, index: &[u32], attempt: u32) -> TaskRef {
        TaskRef {
            run: run.to_string(),
            step: step.to_string(),
            index: IndexPath(index.to_vec()),
            attempt,
        }
    }

    /// `step` or `step/2.5`.
    pub fn task_id(&self) -> String {
        task_id(&self.step, &self.index)
    }
}

/// Time spent in the phases of an attempt, in milliseconds.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
#[non_exhaustive]
pub struct Timings {
    /// Reading inputs.
    pub load_ms: f64,
    /// Running the step body.
    pub step_ms: f64,
    /// Encoding and storing artifacts.
    pub store_ms: f64,
}

/// The manifest of one attempt: artifacts, parents, timings, outcome.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[non_exhaustive]
pub struct TaskManifest {
    /// Metadata version.
    pub version: u32,
    /// Flow name.
    pub flow: String,
    /// Run id.
    pub run: String,
    /// Step name.
    pub step: String,
    /// Foreach index path.
    pub index: IndexPath,
    /// Attempt number.
    pub attempt: u32,
    /// Tasks whose artifacts this task started from or joined, in order; a join's foreach
    /// inputs are stored as ranges (see [`Parents`]).
    pub parents: Parents,
    /// Artifact name to blob.
    pub artifacts: BTreeMap<String, BlobRef>,
    /// The bytes of the small blobs among [`artifacts`](Self::artifacts) (at most
    /// `INLINE_LIMIT`, 1 KiB, each), held here instead of as objects under `blobs/`: a task
    /// whose artifacts are all small is one object, its commit record. They are still
    /// addressed and verified by their SHA-256 (a reader checks the bytes against the
    /// digest). Written as base64 in JSON; absent in manifests written before they were.
    #[serde(
        default,
        skip_serializing_if = "BTreeMap::is_empty",
        with = "inline_bytes"
    )]
    pub inline: BTreeMap<Digest, Bytes>,
    /// For foreach steps: the number of splits.
    pub foreach_count: Option<u64>,
    /// Outcome.
    pub status: AttemptStatus,
    /// Error message for failed or caught attempts.
    pub error: Option<String>,
    /// Start time (RFC 3339).
    pub started: String,
    /// End time (RFC 3339).
    pub finished: String,
    /// Phase timings.
    pub timings: Timings,
    /// Host that ran the attempt.
    pub host: String,
    /// Process id that ran the attempt.
    pub pid: u32,
    /// Where the attempt's captured output is (a store prefix; see `logs`), when any was.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub logs: Option<String>,
    /// For a task taken from the cache whose fields outside the step's reach differ from
    /// the source's (so it needs a manifest of its own): the task that computed it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cached_from: Option<TaskRef>,
}

impl TaskManifest {
    /// The bytes of `blob` when this manifest holds them inline.
    pub(crate) fn inline_of(&self, blob: &BlobRef) -> Option<&Bytes> {
        self.inline.get(&blob.digest)
    }
}

/// The commit record of an attempt: written create-only, last. Its presence is what makes
/// an attempt count; its `manifest` digest pins the manifest it commits.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[non_exhaustive]
pub struct CommitRecord {
    /// Metadata version.
    pub version: u32,
    /// Attempt number.
    pub attempt: u32,
    /// Outcome.
    pub status: AttemptStatus,
    /// Digest and size of the manifest JSON bytes (absent for fenced attempts).
    pub manifest: Option<BlobRef>,
    /// The manifest itself, exactly the bytes `manifest` hashes to (version 2). Absent in
    /// version 1 records, whose manifest is stored under `manifests/` by its digest.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub manifest_json: Option<Box<serde_json::value::RawValue>>,
    /// Error for failed attempts.
    pub error: Option<String>,
    /// When it was committed (RFC 3339).
    pub committed: String,
    /// Who wrote it (host, pid and a random tag): makes every writer's bytes unique, so a
    /// writer retrying a lost response recognises its own record.
    #[serde(default)]
    pub writer: String,
    /// The metrics the attempt logged, summarized (last, min, max, count), by name; the
    /// points themselves are under the run's `metrics/` (see `read_metrics`).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub metrics: BTreeMap<String, crate::meta::metrics::MetricSummary>,
}

/// `reuse.json`: the tasks a resumed run took from its origin, by reference.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[non_exhaustive]
pub struct ReuseRecord {
    /// Metadata version.
    pub version: u32,
    /// The origin run.
    pub origin: String,
    /// The reused tasks.
    pub tasks: Vec<ReusedTask>,
}

/// One task reused from an origin run.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[non_exhaustive]
pub struct ReusedTask {
    /// Where the committed attempt lives (the run that actually executed it).
    pub source: TaskRef,
    /// Its status there (ok or caught).
    pub status: AttemptStatus,
    /// Its manifest digest, pinned like a commit record pins it.
    pub manifest: BlobRef,
}

/// `heartbeat.json`: written create-only when a run starts (it reserves the run id),
/// rewritten every [`HEARTBEAT_PERIOD`] while the run's driver is alive, and marked
/// `ended` when the driver stops. A run whose heartbeat is older than [`HEARTBEAT_STALE`]
/// is dead, on any host.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[non_exhaustive]
pub struct Heartbeat {
    /// Host of the run's driver.
    pub host: String,
    /// Process id of the run's driver.
    pub pid: u32,
    /// When it was last written (RFC 3339).
    pub refreshed: String,
    /// The driver stopped (the run ended, or could not go on).
    #[serde(default)]
    pub ended: bool,
    /// A tag unique to the driver: makes its create-only first write recognisable as its
    /// own on a retry, and nobody else's.
    #[serde(default)]
    pub writer: String,
    /// Set when the driver ended without its end record, with why it could not be written
    /// (a full disk): readers show the run as failed, not killed. See `run::heartbeat`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub end_error: Option<String>,
    /// Set when a workflow engine drives the run (no driver refreshes this heartbeat): the
    /// run is alive until its end record or an ended heartbeat says otherwise.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub orchestrator: Option<Orchestrator>,
}

/// How often a live run rewrites its heartbeat.
pub(crate) const HEARTBEAT_PERIOD: std::time::Duration = std::time::Duration::from_secs(10);

/// A heartbeat not rewritten for this long (three periods) belongs to a dead run.
pub(crate) const HEARTBEAT_STALE: std::time::Duration =
    std::time::Duration::from_secs(3 * HEARTBEAT_PERIOD.as_secs());

/// One claim of `resume-claims/<n>.json`: resume number `n` of an origin, by the run that
/// makes it. Claims are create-only and numbered: a resume takes the next number only when
/// the newest claimant is dead or finished, so two concurrent resumes of one origin cannot
/// both proceed.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[non_exhaustive]
pub(crate) struct ResumeClaim {
    /// The resumed run that holds the claim.
    pub(crate) run: String,
    /// Its host.
    pub(crate) host: String,
    /// Its process id.
    pub(crate) pid: u32,
    /// When the claim was made (RFC 3339).
    pub(crate) claimed: String,
}

/// `TaskManifest::inline` in JSON: digest → base64 of the bytes.
mod inline_bytes {
    use std::collections::BTreeMap;

    use base64::Engine;
    use bytes::Bytes;
    use serde::de::Error as _;
    use serde::{Deserialize, Deserializer, Serializer};

    use crate::store::Digest;

    const B64: base64::engine::GeneralPurpose = base64::engine::general_purpose::STANDARD;

    pub(super) fn serialize<S: Serializer>(
        m: &BTreeMap<Digest, Bytes>,
        s: S,
    ) -> Result<S::Ok, S::Error> {
        s.collect_map(m.iter().map(|(d, b)| (d, B64.encode(b))))
    }

    pub(super) fn deserialize<'de, D: Deserializer<'de>>(
        d: D,
    ) -> Result<BTreeMap<Digest, Bytes>, D::Error> {
        let m = BTreeMap::<Digest, String>::deserialize(d)?;
        m.into_iter()
            .map(|(k, v)| {
                let bytes = B64
                    .decode(v.as_bytes())
                    .map_err(|e| D::Error::custom(format!("inline bytes of {k}: {e}")))?;
                Ok((k, Bytes::from(bytes)))
            })
            .collect()
    }
}
