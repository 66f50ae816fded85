//! [`TaskSpec`]: everything one task attempt needs, serializable, so the scheduler can hand
//! it to any executor: in memory to the thread executor, by digest through the store to a
//! remote one (`<exe> step --spec <digest>`).

use std::collections::BTreeMap;
use std::sync::Arc;

use bytes::Bytes;
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::flow::{Graph, Resources};
use crate::meta::commit::read_pinned;
use crate::meta::{last_within, string_keys, Committed, IndexPath, Pinned, Pins, TaskAt, TaskRef};
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
    /// A join's inputs, in order (a [`Pin::Foreach`] stands for a range of them).
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
    /// Consecutive foreach siblings of one step of one run, each by the digest of its
    /// manifest: a join over a foreach pins its inputs in one entry, not one per input.
    Foreach {
        /// The run holding the attempts.
        run: String,
        /// Their step.
        step: String,
        /// The index path of the split's task: member `k` is `within.child(start + k)`.
        within: IndexPath,
        /// The foreach index of the first member.
        start: u32,
        /// The attempt of every member not listed in `attempts`.
        attempt: u32,
        /// Members whose attempt differs: foreach index → attempt.
        #[serde(
            default,
            skip_serializing_if = "BTreeMap::is_empty",
            with = "string_keys"
        )]
        attempts: BTreeMap<u32, u32>,
        /// Each member's manifest, in index order.
        manifests: Vec<BlobRef>,
    },
}

impl Pin {
    /// Pin a committed task (or a run's initial state).
    pub(crate) fn of(c: &Committed) -> Pin {
        match (&c.task, c.manifest) {
            (Some(task), Some(manifest)) => Pin::Task {
                task: task.to_ref(),
                manifest,
            },
            _ => Pin::Initial {
                artifacts: c.artifacts.to_map(),
            },
        }
    }

    /// The committed attempts this pin stands for, each with its manifest: none for an
    /// initial state, one for a task, every member of a foreach range.
    pub fn tasks(&self) -> impl Iterator<Item = (TaskRef, BlobRef)> + '_ {
        let (one, range) = match self {
            Pin::Initial { .. } => (None, None),
            Pin::Task { task, manifest } => (Some((task.clone(), *manifest)), None),
            Pin::Foreach {
                run,
                step,
                within,
                start,
                attempt,
                attempts,
                manifests,
            } => (
                None,
                Some((run, step, within, *start, *attempt, attempts, manifests)),
            ),
        };
        one.into_iter().chain(range.into_iter().flat_map(
            |(run, step, within, start, attempt, attempts, manifests)| {
                manifests.iter().zip(start..).map(move |(m, i)| {
                    let task = TaskRef {
                        run: run.clone(),
                        step: step.clone(),
                        index: within.child(i),
                        attempt: attempts.get(&i).copied().unwrap_or(attempt),
                    };
                    (task, *m)
                })
            },
        ))
    }

    /// Append committed attempt `t`, whose record pins manifest `m`, to `pins`: a foreach
    /// sibling of the previous pin joins its range (a join over 100,000 items is one pin
    /// with 100,000 manifest digests).
    fn push(pins: &mut Vec<Pin>, t: &TaskAt, m: BlobRef) {
        match pins.last_mut() {
            Some(Pin::Foreach {
                run,
                step,
                within,
                start,
                attempt,
                attempts,
                manifests,
            }) if **run == *t.run
                && **step == *t.step
                && last_within(t.index.as_slice(), &within.0).map(u64::from)
                    == Some(u64::from(*start) + manifests.len() as u64) =>
            {
                let i = *start + manifests.len() as u32;
                if t.attempt != *attempt {
                    attempts.insert(i, t.attempt);
                }
                manifests.push(m);
            }
            Some(Pin::Task { task, manifest })
                if *task.run == *t.run
                    && *task.step == *t.step
                    && next_sibling(&task.index.0, t.index.as_slice()).is_some() =>
            {
                let within = t.index.path().parent();
                let start = next_sibling(&task.index.0, t.index.as_slice()).expect("checked");
                let mut attempts = BTreeMap::new();
                if t.attempt != task.attempt {
                    attempts.insert(start + 1, t.attempt);
                }
                let first = Pin::Foreach {
                    run: t.run.to_string(),
                    step: t.step.to_string(),
                    within,
                    start,
                    attempt: task.attempt,
                    attempts,
                    manifests: vec![*manifest, m],
                };
                *pins.last_mut().expect("a last pin") = first;
            }
            _ => pins.push(Pin::Task {
                task: t.to_ref(),
                manifest: m,
            }),
        }
    }

    /// Pin a join's inputs, in order.
    pub(crate) fn all(inputs: &Pins) -> Vec<Pin> {
        let mut pins: Vec<Pin> = Vec::new();
        for (k, p) in inputs.iter().enumerate() {
            let before = pins.len();
            Pin::push(&mut pins, &p.task, p.manifest);
            // A range that just began has room for every input left (a 100,000-input spec
            // is not grown by doubling); one that just ended gives the rest back.
            if pins.len() > before && before > 0 {
                if let Pin::Foreach { manifests, .. } = &mut pins[before - 1] {
                    manifests.shrink_to_fit();
                }
            }
            if let Some(Pin::Foreach { manifests, .. }) = pins.last_mut() {
                if manifests.len() == 2 {
                    manifests.reserve_exact(inputs.len() - k - 1);
                }
            }
        }
        if let Some(Pin::Foreach { manifests, .. }) = pins.last_mut() {
            manifests.shrink_to_fit();
        }
        pins
    }

    /// Read the pinned input from the store: one request for a task, none for an initial
    /// state. A foreach range stands for several inputs: use [`TaskSpec::resolve`].
    pub(crate) fn resolve(&self, ds: &Datastore, flow: &str) -> Result<Committed> {
        match self {
            Pin::Initial { artifacts } => Ok(Committed::initial(artifacts.clone())),
            Pin::Task { task, manifest } => resolve_task(ds, flow, task.clone(), *manifest),
            Pin::Foreach { .. } => Err(Error::internal(
                "a foreach range pins join inputs, never the state a task starts from",
            )),
        }
    }
}

/// `Some(i)` when `b` is the foreach sibling right after `a`, which is `within.child(i)`.
fn next_sibling(a: &[u32], b: &[u32]) -> Option<u32> {
    let (_, within) = b.split_last()?;
    let i = last_within(a, within)?;
    (i.checked_add(1) == last_within(b, within)).then_some(i)
}

/// Read attempt `task` by the manifest `manifest` its commit record pins (one request: the
/// record carries it); it must have succeeded.
fn resolve_task(ds: &Datastore, flow: &str, task: TaskRef, manifest: BlobRef) -> Result<Committed> {
    let m = read_pinned(ds, flow, &task, manifest)?;
    if !m.status.is_success() {
        return Err(Error::metadata(
            ds.path(&crate::meta::commit::commit_path(flow, &task)),
            format!(
                "input task {} did not succeed ({})",
                task.task_id(),
                m.status
            ),
        ));
    }
    Ok(Committed::of(task, manifest, m))
}

/// Read join input `p`: its view when the driver kept it, else its record (one request).
pub(crate) fn read_input(ds: &Datastore, flow: &str, p: &Pinned) -> Result<Arc<Committed>> {
    match &p.view {
        Some(v) => Ok(v.clone()),
        None => resolve_task(ds, flow, p.task.to_ref(), p.manifest).map(Arc::new),
    }
}

/// A task's inputs, read: what the thread executor passes along in memory.
#[derive(Clone, Debug)]
pub(crate) struct Resolved {
    pub(crate) base: Arc<Committed>,
    /// Join inputs, in order, shared: dispatching a join over 100,000 inputs clones one
    /// pointer. Each is pinned, with its view when the driver kept it ([`read_input`]).
    pub(crate) inputs: Arc<Pins>,
}

impl Resolved {
    /// The tasks a task with these inputs starts from and joins, each once, compactly (as
    /// its manifest lists them): a join's foreach inputs become one range. Linear in the
    /// number of inputs, and no per-input allocation. The joined tasks are distinct
    /// (`Graph::inputs_of`), and the base is the split, never one of them; the check
    /// against the base only keeps "each once" true whatever the caller.
    pub(crate) fn parents(&self) -> crate::meta::Parents {
        let mut parents = crate::meta::Parents::new();
        let base = self.base.task.as_ref();
        if let Some(t) = base {
            parents.push(&t.run, &t.step, t.index.as_slice(), t.attempt);
        }
        for p in self.inputs.iter() {
            let t = &p.task;
            if Some(t) != base {
                parents.push(&t.run, &t.step, t.index.as_slice(), t.attempt);
            }
        }
        parents
    }
}

impl TaskSpec {
    /// `step` or `step/2.5`.
    pub fn task_id(&self) -> String {
        self.task.task_id()
    }

    /// A join's inputs, one by one, each with the manifest that pins it (a foreach range
    /// expanded).
    pub fn input_tasks(&self) -> impl Iterator<Item = (TaskRef, BlobRef)> + '_ {
        self.inputs.iter().flat_map(Pin::tasks)
    }

    /// Read the base from the store (one request) and pin the join inputs: the join reads
    /// them as it loads them, a few dozen at a time (a join over 1,000 items on S3 waits
    /// for about one round trip per 16 inputs, and one over 100,000 holds a few dozen
    /// views, not 100,000), as it does on the thread executor past the driver's budget.
    pub(crate) fn resolve(&self, ds: &Datastore, graph: &Graph) -> Result<Resolved> {
        let base = Arc::new(self.base.resolve(ds, &self.flow)?);
        let pinned = self
            .inputs
            .iter()
            .flat_map(|pin| {
                let tasks = pin.tasks().map(Ok);
                let initial = matches!(pin, Pin::Initial { .. }).then(|| {
                    Err(Error::internal(format!(
                        "task {}: a join input must be a committed task",
                        self.task_id()
                    )))
                });
                initial.into_iter().chain(tasks)
            })
            .collect::<Result<Vec<(TaskRef, BlobRef)>>>()?;
        let mut last: Option<TaskAt> = None;
        let mut inputs = Vec::with_capacity(pinned.len());
        for (t, manifest) in pinned {
            if graph.step(&t.step).is_none() {
                return Err(Error::internal(format!(
                    "task {}: flow {} has no step `{}`",
                    self.task_id(),
                    self.flow,
                    t.step
                )));
            }
            let task = TaskAt::of(t, last.as_ref());
            last = Some(task.clone());
            inputs.push(Pinned {
                task,
                manifest,
                view: None,
            });
        }
        Ok(Resolved {
            base,
            inputs: Arc::new(Pins::of(inputs)),
        })
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::meta::TaskManifest;

    fn committed(run: &str, step: &str, index: &[u32], attempt: u32) -> Committed {
        let task = TaskRef {
            run: run.into(),
            step: step.into(),
            index: IndexPath(index.to_vec()),
            attempt,
        };
        let m: TaskManifest = serde_json::from_value(serde_json::json!({
            "version": 1, "flow": "F", "run": run, "step": step, "index": index,
            "attempt": attempt, "parents": [], "artifacts": {}, "foreach_count": null,
            "status": "ok", "error": null, "started": "", "finished": "",
            "timings": {"load_ms": 0.0, "step_ms": 0.0, "store_ms": 0.0}, "host": "", "pid": 0
        }))
        .unwrap();
        let id = format!("{run}/{step}/{index:?}@{attempt}");
        let pin = BlobRef {
            digest: Digest::of(id.as_bytes()),
            size: id.len() as u64,
        };
        Committed::of(task, pin, m)
    }

    #[test]
    fn a_joins_foreach_inputs_are_one_pin_that_expands_to_each_input_in_order() {
        let mut inputs: Vec<Committed> = (0..1000)
            .map(|i| committed("R", "work", &[4, i], u32::from(i == 3) * 2))
            .collect();
        // A reused item from the origin run breaks the range; so does another step.
        inputs.push(committed("origin", "work", &[4, 1000], 0));
        inputs.push(committed("R", "other", &[4], 0));
        let want: Vec<(TaskRef, BlobRef)> = inputs
            .iter()
            .map(|c| (c.task.as_ref().unwrap().to_ref(), c.manifest.unwrap()))
            .collect();
        let inputs: Vec<Pinned> = inputs
            .into_iter()
            .map(|c| Pinned::of(Arc::new(c), false).unwrap())
            .collect();
        let pins = Pin::all(&Pins::of(inputs));
        assert_eq!(pins.len(), 3, "{pins:?}");
        let json = serde_json::to_string(&pins).unwrap();
        assert!(json.contains(r#""attempts":{"3":2}"#), "{}", &json[..300]);
        let back: Vec<Pin> = serde_json::from_str(&json).unwrap();
        assert_eq!(back, pins);
        let got: Vec<(TaskRef, BlobRef)> = back.iter().flat_map(Pin::tasks).collect();
        assert_eq!(got, want);
    }
}
