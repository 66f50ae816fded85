//! Metadata records and identities: run records, task manifests, commit records, run
//! and task ids. All records are JSON, stored in the datastore next to the blobs.
//!
//! The commit protocol: a task writes its blobs, then its attempt manifest, then its
//! commit record with create-only semantics. Readers believe an attempt only through its
//! commit record, and the commit record carries the digest of the manifest it commits.

use std::collections::BTreeMap;
use std::fmt;
use std::hash::{BuildHasher, Hasher as _};

use serde::{Deserialize, Serialize};

use crate::digest::{BlobRef, Digest};
use crate::error::{Error, Result};

/// Version of the metadata records written by this flowlib.
pub const METADATA_VERSION: u32 = 1;

/// Indices of a task in its enclosing foreach splits, outermost first. Empty outside foreach.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct IndexPath(pub Vec<u32>);

impl IndexPath {
    /// The empty path (tasks outside any foreach).
    pub fn root() -> Self {
        IndexPath(Vec::new())
    }

    /// This path extended by one more index.
    pub fn child(&self, i: u32) -> Self {
        let mut v = self.0.clone();
        v.push(i);
        IndexPath(v)
    }

    /// This path without its last index.
    pub fn parent(&self) -> Self {
        let mut v = self.0.clone();
        v.pop();
        IndexPath(v)
    }

    /// Directory name used in the datastore: `_` for the empty path, else `2.5`.
    pub fn dir_name(&self) -> String {
        if self.0.is_empty() {
            "_".to_string()
        } else {
            self.to_string()
        }
    }

    /// Parse `2.5`, `_` or the empty string.
    pub fn parse(s: &str) -> Option<Self> {
        if s.is_empty() || s == "_" {
            return Some(IndexPath::root());
        }
        s.split('.')
            .map(|p| p.parse::<u32>().ok())
            .collect::<Option<Vec<_>>>()
            .map(IndexPath)
    }
}

impl fmt::Display for IndexPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, x) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str(".")?;
            }
            write!(f, "{x}")?;
        }
        Ok(())
    }
}

/// `step` or `step/2.5`.
pub fn task_id(step: &str, index: &IndexPath) -> String {
    if index.0.is_empty() {
        step.to_string()
    } else {
        format!("{step}/{index}")
    }
}

/// Current time as RFC 3339 with milliseconds, UTC.
pub(crate) fn now_rfc3339() -> String {
    chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}

/// A new run id: time-sortable, with 48 random bits so that runs started anywhere at the
/// same millisecond do not collide (and `run.json` is created create-only to be sure).
pub(crate) fn new_run_id() -> String {
    let now = chrono::Utc::now();
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u128(now.timestamp_nanos_opt().unwrap_or_default() as u128);
    h.write_u32(std::process::id());
    let r = h.finish() & 0xffff_ffff_ffff;
    format!("{}-{r:012x}", now.format("%Y%m%dT%H%M%S%.3fZ")).replace('.', "")
}

/// Check a run id supplied by a user: no path separators, no `..`, nothing odd.
pub fn validate_run_id(id: &str) -> Result<()> {
    let ok = !id.is_empty()
        && id.len() <= 128
        && id != "."
        && id != ".."
        && !id.contains("..")
        && id
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'));
    if ok {
        Ok(())
    } else {
        Err(Error::invalid(format!(
            "invalid run id `{}`: run ids use letters, digits, `-`, `_` and `.` only (no `/` or `..`)",
            id.escape_default()
        )))
    }
}

/// What identifies the code that ran.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
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
pub struct ResumeInfo {
    /// The origin run.
    pub origin: String,
    /// The step resumed from, when one was given.
    pub step: Option<String>,
    /// Parameters whose value differs from the origin's: name, (origin value, new value).
    pub changed_params: BTreeMap<String, (serde_json::Value, serde_json::Value)>,
    /// Number of tasks reused from the origin.
    pub reused_tasks: usize,
}

/// The shape of one step, as recorded in a run record.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
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
}

/// How a run ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum RunStatus {
    /// Every task succeeded.
    Succeeded,
    /// Some task failed.
    Failed,
    /// Still running, or killed before it could say so.
    Running,
}

impl fmt::Display for RunStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            RunStatus::Succeeded => "succeeded",
            RunStatus::Failed => "failed",
            RunStatus::Running => "running",
        })
    }
}

/// The end record, `end.json`, written create-only when a run finishes.
#[derive(Clone, Debug, Serialize, Deserialize)]
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
    /// Failed tasks with their errors.
    pub failures: Vec<(String, String)>,
    /// Tasks that never ran because of an upstream failure.
    pub not_run: usize,
}

/// Outcome of one task attempt.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum AttemptStatus {
    /// The step succeeded and its artifacts are committed.
    Ok,
    /// The step failed; a `#[catch]` step recorded the error and passed its inputs on.
    Caught,
    /// The step returned an error or panicked.
    Failed,
    /// The attempt ran past its timeout and was fenced off.
    TimedOut,
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
        })
    }
}

/// Reference to a committed task attempt, possibly in another run.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
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
    /// `step` or `step/2.5`.
    pub fn task_id(&self) -> String {
        task_id(&self.step, &self.index)
    }
}

/// Time spent in the phases of an attempt, in milliseconds.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
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
    /// Tasks whose artifacts this task started from or joined.
    pub parents: Vec<TaskRef>,
    /// Artifact name to blob.
    pub artifacts: BTreeMap<String, BlobRef>,
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
}

/// The commit record of an attempt: written create-only, last. Its presence is what makes
/// an attempt count; its `manifest` digest pins the manifest it commits.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct CommitRecord {
    /// Metadata version.
    pub version: u32,
    /// Attempt number.
    pub attempt: u32,
    /// Outcome.
    pub status: AttemptStatus,
    /// Digest and size of the manifest JSON bytes (absent for fenced attempts).
    pub manifest: Option<BlobRef>,
    /// Error for failed attempts.
    pub error: Option<String>,
    /// When it was committed (RFC 3339).
    pub committed: String,
    /// Who wrote it (host, pid and a random tag): makes every writer's bytes unique, so a
    /// writer retrying a lost response recognises its own record.
    #[serde(default)]
    pub writer: String,
}

/// `reuse.json`: the tasks a resumed run took from its origin, by reference.
#[derive(Clone, Debug, Serialize, Deserialize)]
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
pub struct ReusedTask {
    /// Where the committed attempt lives (the run that actually executed it).
    pub source: TaskRef,
    /// Its status there (ok or caught).
    pub status: AttemptStatus,
    /// Its manifest digest, pinned like a commit record pins it.
    pub manifest: BlobRef,
}

/// Paths of metadata records, relative to the datastore root.
pub(crate) mod paths {
    use super::IndexPath;

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

    pub(crate) fn tasks(flow: &str, run: &str) -> String {
        format!("flows/{flow}/runs/{run}/tasks/")
    }

    /// `<step>/<index>@<attempt>`: one flat directory per step keeps task commits cheap
    /// (no directory to create per task).
    fn attempt_stem(flow: &str, run: &str, step: &str, index: &IndexPath, attempt: u32) -> String {
        format!(
            "flows/{flow}/runs/{run}/tasks/{step}/{}@{attempt}",
            index.dir_name()
        )
    }

    /// Manifests are content-addressed JSON: concurrent writers of one attempt each store
    /// their own, and the commit record that wins names the one that counts.
    pub(crate) fn manifest(digest: &crate::digest::Digest) -> String {
        let hex = digest.hex();
        format!("manifests/sha256/{}/{}.json", &hex[..2], &hex[2..])
    }

    pub(crate) fn commit(
        flow: &str,
        run: &str,
        step: &str,
        index: &IndexPath,
        attempt: u32,
    ) -> String {
        format!(
            "{}.commit.json",
            attempt_stem(flow, run, step, index, attempt)
        )
    }

    /// The commit record a path under `tasks/` names: (step, index, attempt).
    pub(crate) fn parse_commit_file(rest: &str) -> Option<(String, IndexPath, u32)> {
        let (step, file) = rest.split_once('/')?;
        let stem = file.strip_suffix(".commit.json")?;
        let (index, attempt) = stem.split_once('@')?;
        Some((
            step.to_string(),
            IndexPath::parse(index)?,
            attempt.parse().ok()?,
        ))
    }

    pub(crate) fn checkpoints(flow: &str, run: &str) -> String {
        format!("flows/{flow}/runs/{run}/checkpoints/")
    }

    pub(crate) fn checkpoint_latest(
        flow: &str,
        run: &str,
        step: &str,
        index: &IndexPath,
    ) -> String {
        format!(
            "flows/{flow}/runs/{run}/checkpoints/{step}/{}/latest.json",
            index.dir_name()
        )
    }
}

/// Host name of this machine.
pub(crate) fn hostname() -> String {
    let mut buf = [0u8; 256];
    // SAFETY: the buffer is valid for its length; gethostname NUL-terminates on success.
    let rc = unsafe { libc::gethostname(buf.as_mut_ptr().cast(), buf.len()) };
    if rc == 0 {
        let end = buf.iter().position(|&b| b == 0).unwrap_or(buf.len());
        String::from_utf8_lossy(&buf[..end]).into_owned()
    } else {
        "unknown".to_string()
    }
}

/// User name from the environment.
pub(crate) fn username() -> String {
    std::env::var("USER")
        .or_else(|_| std::env::var("USERNAME"))
        .unwrap_or_else(|_| "unknown".to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn index_paths() {
        let p = IndexPath::root().child(2).child(5);
        assert_eq!(p.to_string(), "2.5");
        assert_eq!(p.dir_name(), "2.5");
        assert_eq!(IndexPath::root().dir_name(), "_");
        assert_eq!(IndexPath::parse("2.5"), Some(p.clone()));
        assert_eq!(IndexPath::parse("_"), Some(IndexPath::root()));
        assert_eq!(IndexPath::parse("x"), None);
        assert_eq!(p.parent().to_string(), "2");
        assert_eq!(task_id("fit", &p), "fit/2.5");
        assert_eq!(task_id("start", &IndexPath::root()), "start");
    }

    #[test]
    fn run_ids_sort_by_time_and_validate() {
        let a = new_run_id();
        std::thread::sleep(std::time::Duration::from_millis(2));
        let b = new_run_id();
        assert!(a < b, "{a} {b}");
        assert_ne!(a, b);
        validate_run_id(&a).unwrap();
        for bad in ["", ".", "..", "a/b", "../x", "a..b", "a b", "x\0"] {
            assert!(validate_run_id(bad).is_err(), "{bad:?}");
        }
    }
}
