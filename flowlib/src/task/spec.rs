//! [`TaskSpec`]: everything one task attempt needs, serializable, so the scheduler can hand
//! it to any executor: in memory to the thread executor, by digest through the store to a
//! remote one (`<exe> step --spec <digest>`).

use std::collections::BTreeMap;
use std::sync::Arc;

use bytes::Bytes;
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::flow::{Graph, Resources};
use crate::meta::commit::read_manifest;
use crate::meta::{Committed, IndexPath, TaskRef};
use crate::store::{layout, BlobRef, Datastore, Digest};

/// Version of the task spec format.
pub(crate) const SPEC_VERSION: u32 = 1;

/// One task attempt to execute, with its inputs pinned by manifest digest.
///
/// A remote task reads its inputs in one request each (no listing of the run), and can
/// never see a different input than the scheduler meant: a manifest is content-addressed.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct TaskSpec {
    /// Spec format version.
    pub version: u32,
    /// Flow name.
    pub flow: String,
    /// The attempt to run: run, step, foreach index and attempt number (0 first).
    pub task: TaskRef,
    /// The state the step starts from.
    pub base: Pin,
    /// A join's inputs, in order.
    pub inputs: Vec<Pin>,
    /// The run's parameter blobs: they override inherited values.
    pub params: BTreeMap<String, BlobRef>,
    /// Runs whose checkpoints this attempt may load, newest first (its own run first).
    pub checkpoint_sources: Vec<String>,
    /// The step's timeout, if any.
    pub timeout_ms: Option<u64>,
    /// What the step asks for.
    pub resources: Resources,
    /// The SHA-256 of the executable the run's driver runs, when the task runs in another
    /// process: the task refuses to run under a different binary.
    #[serde(default)]
    pub code: Option<Digest>,
}

/// One input of a task, pinned.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "kebab-case")]
#[non_exhaustive]
pub enum Pin {
    /// The run's initial state (defaults and parameters), given inline.
    Initial {
        /// Field name to blob.
        artifacts: BTreeMap<String, BlobRef>,
    },
    /// A committed attempt, by the digest of the manifest its commit record pins.
    Task {
        /// The attempt (possibly in an origin run).
        task: TaskRef,
        /// Its manifest.
        manifest: BlobRef,
    },
}

impl Pin {
    /// Pin a committed task (or a run's initial state).
    pub(crate) fn of(c: &Committed) -> Pin {
        match (&c.task, c.manifest) {
            (Some(task), Some(manifest)) => Pin::Task {
                task: task.clone(),
                manifest,
            },
            _ => Pin::Initial {
                artifacts: c.artifacts.clone(),
            },
        }
    }

    /// Read the pinned input from the store: one request for a task, none for an initial state.
    pub(crate) fn resolve(&self, ds: &Datastore) -> Result<Committed> {
        match self {
            Pin::Initial { artifacts } => Ok(Committed::initial(artifacts.clone())),
            Pin::Task { task, manifest } => {
                let m = read_manifest(ds, *manifest, &task.task_id())?;
                if !m.status.is_success() {
                    return Err(Error::metadata(
                        ds.path(&layout::manifest(&manifest.digest)),
                        format!(
                            "input task {} did not succeed ({})",
                            task.task_id(),
                            m.status
                        ),
                    ));
                }
                Ok(Committed::of(task.clone(), *manifest, m))
            }
        }
    }
}

/// A task's inputs, read: what the thread executor passes along in memory.
#[derive(Clone, Debug)]
pub(crate) struct Resolved {
    pub(crate) base: Arc<Committed>,
    /// Join inputs: (step index, foreach index, committed view).
    pub(crate) inputs: Vec<(usize, IndexPath, Arc<Committed>)>,
}

impl TaskSpec {
    /// `step` or `step/2.5`.
    pub fn task_id(&self) -> String {
        self.task.task_id()
    }

    /// Read every pinned input from the store (one request per task input).
    pub(crate) fn resolve(&self, ds: &Datastore, graph: &Graph) -> Result<Resolved> {
        let base = Arc::new(self.base.resolve(ds)?);
        let inputs = self
            .inputs
            .iter()
            .map(|pin| {
                let c = pin.resolve(ds)?;
                let t = c.task.clone().ok_or_else(|| {
                    Error::internal(format!(
                        "task {}: a join input must be a committed task",
                        self.task_id()
                    ))
                })?;
                let step = graph.step(&t.step).ok_or_else(|| {
                    Error::internal(format!(
                        "task {}: flow {} has no step `{}`",
                        self.task_id(),
                        self.flow,
                        t.step
                    ))
                })?;
                Ok((step.index, t.index, Arc::new(c)))
            })
            .collect::<Result<Vec<_>>>()?;
        Ok(Resolved { base, inputs })
    }

    // Remote executors (processes, Slurm, ...) store the spec before they submit the task.
    #[cfg_attr(not(test), allow(dead_code))]
    /// Store this spec content-addressed (create-only; the same spec is stored once) and
    /// return its digest, for `<exe> step --spec <digest>`.
    pub(crate) fn store(&self, ds: &Datastore) -> Result<Digest> {
        let bytes = serde_json::to_vec(self).expect("a task spec serializes");
        let digest = Digest::of(&bytes);
        ds.create(&layout::spec(&digest), Bytes::from(bytes))?;
        Ok(digest)
    }

    /// Read a spec by digest, verifying it.
    pub(crate) fn load(ds: &Datastore, digest: &Digest) -> Result<TaskSpec> {
        let rel = layout::spec(digest);
        let bytes = ds
            .get_bytes(&rel)?
            .ok_or_else(|| Error::not_found(format!("no task spec {digest} in {}", ds.url())))?;
        if Digest::of(&bytes) != *digest {
            return Err(Error::metadata(
                ds.path(&rel),
                format!("task spec {digest} is corrupted (its bytes hash differently)"),
            ));
        }
        let spec: TaskSpec = serde_json::from_slice(&bytes)
            .map_err(|e| Error::metadata(ds.path(&rel), format!("invalid task spec: {e}")))?;
        if spec.version > SPEC_VERSION {
            return Err(Error::metadata(
                ds.path(&rel),
                format!(
                    "task spec format {} is newer than this flowlib ({SPEC_VERSION})",
                    spec.version
                ),
            ));
        }
        Ok(spec)
    }
}
