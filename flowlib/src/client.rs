//! Typed access to past runs: list runs, open one, read a task's state or one artifact.
//!
//! ```no_run
//! use flowlib::prelude::*;
//! # #[derive(FlowState, Default, Serialize, Deserialize)] struct Train { best: f64 }
//! # #[flow] impl Train { #[step(start, next = end)] fn start(&mut self) -> Result<()> { Ok(()) }
//! #   #[step(end)] fn end(&mut self) -> Result<()> { Ok(()) } }
//! # fn main() -> flowlib::Result<()> {
//! let ds = flowlib::Datastore::open(".flowlib", flowlib::OpenMode::Existing)?;
//! let run = flowlib::Run::<Train>::latest(&ds)?;
//! let best: f64 = run.task("end")?.artifact("best")?;
//! let state: Train = run.step("end")?.only_task()?.state()?;
//! # Ok(()) }
//! ```

use std::collections::BTreeMap;
use std::marker::PhantomData;

use crate::cas::{self, What};
use crate::codec::{Tag, ViaSerde};
use crate::datastore::Datastore;
use crate::digest::BlobRef;
use crate::error::{Error, Result};
use crate::flow::Flow;
use crate::metadata::{
    paths, task_id, validate_run_id, AttemptStatus, IndexPath, ReuseRecord, RunEnd, RunRecord,
    RunStatus, TaskManifest, TaskRef,
};
use crate::task::{self, Committed, RunContext};

/// A run as listed by `runs`.
#[derive(Clone, Debug)]
pub struct RunInfo {
    /// The run record.
    pub record: RunRecord,
    /// The end record, once the run finished.
    pub end: Option<RunEnd>,
}

impl RunInfo {
    /// Succeeded, failed, or running (or killed before it could say).
    pub fn status(&self) -> RunStatus {
        self.end
            .as_ref()
            .map(|e| e.status)
            .unwrap_or(RunStatus::Running)
    }

    /// Whether a run without an end record is still alive, when that can be told (same host).
    pub fn is_alive(&self) -> Option<bool> {
        if self.end.is_some() {
            return Some(false);
        }
        if self.record.host != crate::metadata::hostname() {
            return None;
        }
        let pid = self.record.pid;
        // A zombie (killed, not yet reaped) is dead for our purposes.
        if let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) {
            let state = stat
                .rsplit_once(')')
                .and_then(|(_, rest)| rest.split_whitespace().next());
            return Some(!matches!(state, Some("Z") | Some("X") | None));
        }
        // SAFETY: kill with signal 0 only checks that the process exists.
        let rc = unsafe { libc::kill(pid as libc::pid_t, 0) };
        Some(rc == 0 || std::io::Error::last_os_error().raw_os_error() == Some(libc::EPERM))
    }
}

/// One committed task attempt of a run (executed in it, or reused from an origin).
#[derive(Clone, Debug)]
pub struct TaskAttempt {
    /// Step name.
    pub step: String,
    /// Foreach index path.
    pub index: IndexPath,
    /// Where the attempt was executed (another run when reused).
    pub source: TaskRef,
    /// Outcome.
    pub status: AttemptStatus,
    /// The error of a failed or caught attempt.
    pub error: Option<String>,
    /// The manifest (absent for fenced attempts).
    pub manifest: Option<TaskManifest>,
    /// Digest and size of the manifest bytes, as pinned by the commit record.
    pub manifest_ref: Option<BlobRef>,
    /// Reused from an origin run.
    pub reused: bool,
}

impl TaskAttempt {
    /// `step` or `step/2.5`.
    pub fn task_id(&self) -> String {
        task_id(&self.step, &self.index)
    }
}

impl Datastore {
    /// Flows that have runs in this datastore.
    pub fn flows(&self) -> Result<Vec<String>> {
        self.list_dirs(&paths::flows())
    }

    /// Run ids of `flow`, oldest first.
    pub fn run_ids(&self, flow: &str) -> Result<Vec<String>> {
        self.list_dirs(&paths::runs(flow))
    }

    /// The most recent run of `flow`.
    pub fn latest_run(&self, flow: &str) -> Result<Option<String>> {
        // Only runs whose record exists count (a run id dir may hold just a late blob write).
        let ids = self.run_ids(flow)?;
        for id in ids.into_iter().rev() {
            if self.get_bytes(&paths::run_record(flow, &id))?.is_some() {
                return Ok(Some(id));
            }
        }
        Ok(None)
    }

    /// Run record and end record of one run.
    pub fn run_info(&self, flow: &str, run: &str) -> Result<RunInfo> {
        validate_run_id(run)?;
        let record: RunRecord = self
            .get_json(&paths::run_record(flow, run))?
            .ok_or_else(|| {
                Error::not_found(format!("no run `{run}` of flow {flow} in {}", self.url()))
            })?;
        let end = self.get_json(&paths::run_end(flow, run))?;
        Ok(RunInfo { record, end })
    }

    /// Every run of `flow`, oldest first.
    pub fn runs(&self, flow: &str) -> Result<Vec<RunInfo>> {
        let mut out = Vec::new();
        for id in self.run_ids(flow)? {
            match self.run_info(flow, &id) {
                Ok(i) => out.push(i),
                Err(Error::NotFound(_)) => {}
                Err(e) => return Err(e),
            }
        }
        Ok(out)
    }

    /// Every committed attempt of a run, including tasks reused from its origin.
    pub fn task_attempts(&self, flow: &str, run: &str) -> Result<Vec<TaskAttempt>> {
        validate_run_id(run)?;
        let prefix = paths::tasks(flow, run);
        let mut commits: Vec<(String, IndexPath, u32)> = Vec::new();
        for obj in self.list(&prefix)? {
            let Some(rest) = obj.rel.strip_prefix(&prefix) else {
                continue;
            };
            let Some((step, index, attempt)) = paths::parse_commit_file(rest) else {
                continue;
            };
            commits.push((step, index, attempt));
        }
        commits.sort();
        let mut out = Vec::with_capacity(commits.len());
        for (step, index, attempt) in commits {
            let Some((record, manifest)) =
                task::read_commit(self, flow, run, &step, &index, attempt)?
            else {
                continue;
            };
            out.push(TaskAttempt {
                source: TaskRef {
                    run: run.to_string(),
                    step: step.clone(),
                    index: index.clone(),
                    attempt,
                },
                step,
                index,
                status: record.status,
                error: record.error,
                manifest,
                manifest_ref: record.manifest,
                reused: false,
            });
        }
        if let Some(reuse) = self.get_json::<ReuseRecord>(&paths::reuse(flow, run))? {
            for t in reuse.tasks {
                let src = &t.source;
                let manifest = task::read_manifest(self, t.manifest, &src.task_id())?;
                out.push(TaskAttempt {
                    step: src.step.clone(),
                    index: src.index.clone(),
                    source: src.clone(),
                    status: t.status,
                    error: manifest.error.clone(),
                    manifest: Some(manifest),
                    manifest_ref: Some(t.manifest),
                    reused: true,
                });
            }
        }
        Ok(out)
    }

    /// The successful attempt of task `task` (`step` or `step/2.5`) of a run.
    pub fn successful_task(&self, flow: &str, run: &str, task: &str) -> Result<TaskAttempt> {
        let (step, index) = parse_task_id(task)?;
        successful(self.task_attempts(flow, run)?)
            .remove(&(step.to_string(), index))
            .ok_or_else(|| {
                Error::not_found(format!(
                    "run {run} of flow {flow} has no successful task `{task}`"
                ))
            })
    }

    /// Read one artifact of a past run as `T`, without the flow's type (for tools,
    /// notebooks and tests). Only that artifact's blob is read, and it is verified.
    ///
    /// ```no_run
    /// let ds = flowlib::Datastore::open(".flowlib", flowlib::OpenMode::Existing)?;
    /// let run = ds.latest_run("Train")?.expect("a run");
    /// let best: Option<(f64, f64, (f64, f64))> = ds.artifact("Train", &run, "pick", "best")?;
    /// # Ok::<(), flowlib::Error>(())
    /// ```
    pub fn artifact<T: serde::Serialize + serde::de::DeserializeOwned>(
        &self,
        flow: &str,
        run: &str,
        task: &str,
        name: &str,
    ) -> Result<T> {
        let a = self.successful_task(flow, run, task)?;
        let m = a
            .manifest
            .as_ref()
            .expect("successful attempts have manifests");
        let blob = *m.artifacts.get(name).ok_or_else(|| {
            Error::not_found(format!("task {task} of run {run} has no artifact `{name}`"))
        })?;
        let what = What::new(name, format!(" of run {run} task {task}"));
        let mut out: Option<T> = None;
        cas::load_decoded(self, blob, &what, &mut |r| {
            out = Some((&Tag::<T>::NEW).decode_field(r)?);
            Ok(())
        })?;
        Ok(out.expect("decoded"))
    }
}

/// Split `step/2.5` into step and index.
pub(crate) fn parse_task_id(id: &str) -> Result<(&str, IndexPath)> {
    match id.split_once('/') {
        Some((s, i)) => Ok((
            s,
            IndexPath::parse(i)
                .ok_or_else(|| Error::invalid(format!("invalid task index `{i}` in `{id}`")))?,
        )),
        None => Ok((id, IndexPath::root())),
    }
}

/// The successful attempt of each task (the one downstream steps used).
pub(crate) fn successful(attempts: Vec<TaskAttempt>) -> BTreeMap<(String, IndexPath), TaskAttempt> {
    let mut out: BTreeMap<(String, IndexPath), TaskAttempt> = BTreeMap::new();
    for a in attempts {
        if a.status.is_success() && a.manifest.is_some() {
            out.insert((a.step.clone(), a.index.clone()), a);
        }
    }
    out
}

/// A past run of flow `F`.
pub struct Run<F: Flow> {
    ds: Datastore,
    info: RunInfo,
    attempts: Vec<TaskAttempt>,
    _flow: PhantomData<fn() -> F>,
}

impl<F: Flow> Run<F> {
    /// Open run `run_id` of `F`.
    pub fn open(ds: &Datastore, run_id: &str) -> Result<Self> {
        let info = ds.run_info(F::NAME, run_id)?;
        let attempts = ds.task_attempts(F::NAME, run_id)?;
        Ok(Run {
            ds: ds.clone(),
            info,
            attempts,
            _flow: PhantomData,
        })
    }

    /// Open the latest run of `F`.
    pub fn latest(ds: &Datastore) -> Result<Self> {
        let id = ds.latest_run(F::NAME)?.ok_or_else(|| {
            Error::not_found(format!("no runs of flow {} in {}", F::NAME, ds.url()))
        })?;
        Run::open(ds, &id)
    }

    /// The run id.
    pub fn id(&self) -> &str {
        &self.info.record.run_id
    }

    /// Run and end records.
    pub fn info(&self) -> &RunInfo {
        &self.info
    }

    /// Final status.
    pub fn status(&self) -> RunStatus {
        self.info.status()
    }

    /// Every committed attempt (failed ones included).
    pub fn attempts(&self) -> &[TaskAttempt] {
        &self.attempts
    }

    /// The tasks of step `name` that succeeded.
    pub fn step(&self, name: &str) -> Result<StepView<'_, F>> {
        if F::graph().step(name).is_none() {
            let names: Vec<&str> = F::graph().steps().iter().map(|s| s.name).collect();
            return Err(Error::not_found(format!(
                "flow {} has no step `{name}`; steps: {}",
                F::NAME,
                names.join(", ")
            )));
        }
        let mut tasks: Vec<&TaskAttempt> = self
            .attempts
            .iter()
            .filter(|a| a.step == name && a.status.is_success() && a.manifest.is_some())
            .collect();
        tasks.sort_by(|a, b| a.index.cmp(&b.index));
        Ok(StepView {
            run: self,
            name: name.to_string(),
            tasks,
        })
    }

    /// The successful attempt of task `id` (`step` or `step/2.5`).
    pub fn task(&self, id: &str) -> Result<TaskView<'_, F>> {
        let (step, index) = match id.split_once('/') {
            Some((s, i)) => (
                s,
                IndexPath::parse(i)
                    .ok_or_else(|| Error::invalid(format!("invalid task index `{i}` in `{id}`")))?,
            ),
            None => (id, IndexPath::root()),
        };
        let view = self.step(step)?;
        view.tasks
            .iter()
            .find(|a| a.index == index)
            .map(|a| TaskView {
                run: self,
                attempt: a,
            })
            .ok_or_else(|| {
                let ids: Vec<String> = view.tasks.iter().take(10).map(|t| t.task_id()).collect();
                Error::not_found(format!(
                    "run {} has no successful task `{id}`{}",
                    self.id(),
                    if ids.is_empty() {
                        String::new()
                    } else {
                        format!(
                            " (tasks of `{step}`: {}{})",
                            ids.join(", "),
                            if view.tasks.len() > 10 { ", ..." } else { "" }
                        )
                    }
                ))
            })
    }

    fn context(&self) -> RunContext {
        RunContext {
            ds: self.ds.clone(),
            flow: F::NAME,
            run_id: self.id().to_string(),
            params: BTreeMap::new(),
            host: String::new(),
            splits: Default::default(),
        }
    }
}

/// The successful tasks of one step.
pub struct StepView<'a, F: Flow> {
    run: &'a Run<F>,
    name: String,
    tasks: Vec<&'a TaskAttempt>,
}

impl<'a, F: Flow> StepView<'a, F> {
    /// The tasks, in index order.
    pub fn tasks(&self) -> impl Iterator<Item = TaskView<'a, F>> + '_ {
        self.tasks.iter().map(|a| TaskView {
            run: self.run,
            attempt: a,
        })
    }

    /// Number of successful tasks.
    pub fn len(&self) -> usize {
        self.tasks.len()
    }

    /// True when no task of this step succeeded.
    pub fn is_empty(&self) -> bool {
        self.tasks.is_empty()
    }

    /// The single task of a step outside any foreach.
    pub fn only_task(&self) -> Result<TaskView<'a, F>> {
        match self.tasks.as_slice() {
            [one] => Ok(TaskView {
                run: self.run,
                attempt: one,
            }),
            [] => Err(Error::not_found(format!(
                "step `{}` of run {} has no successful task",
                self.name,
                self.run.id()
            ))),
            many => Err(Error::invalid(format!(
                "step `{}` has {} tasks; pick one with task(\"{}/<index>\")",
                self.name,
                many.len(),
                self.name
            ))),
        }
    }

    /// Shortcut for `only_task()?.state()`.
    pub fn state(&self) -> Result<F> {
        self.only_task()?.state()
    }
}

/// One committed task.
pub struct TaskView<'a, F: Flow> {
    run: &'a Run<F>,
    attempt: &'a TaskAttempt,
}

impl<F: Flow> TaskView<'_, F> {
    /// `step` or `step/2.5`.
    pub fn id(&self) -> String {
        self.attempt.task_id()
    }

    /// The attempt's details.
    pub fn attempt(&self) -> &TaskAttempt {
        self.attempt
    }

    /// The manifest.
    pub fn manifest(&self) -> &TaskManifest {
        self.attempt
            .manifest
            .as_ref()
            .expect("successful attempts have manifests")
    }

    /// The whole state after this task (every artifact loaded and verified).
    pub fn state(&self) -> Result<F> {
        let m = self.manifest();
        let c = Committed {
            task: Some(self.attempt.source.clone()),
            artifacts: m.artifacts.clone(),
            foreach_count: m.foreach_count,
            status: m.status,
        };
        task::load_state::<F>(
            &self.run.context(),
            &c,
            &format!(" of run {} task {}", self.run.id(), self.id()),
        )
    }

    /// The blob of artifact `name`.
    pub fn blob(&self, name: &str) -> Result<BlobRef> {
        self.manifest().artifacts.get(name).copied().ok_or_else(|| {
            let names: Vec<&String> = self.manifest().artifacts.keys().collect();
            Error::not_found(format!(
                "task {} of run {} has no artifact `{name}`; artifacts: {}",
                self.id(),
                self.run.id(),
                names
                    .iter()
                    .map(|s| s.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            ))
        })
    }

    /// Read one artifact as `T`, without loading its siblings.
    pub fn artifact<T: serde::Serialize + serde::de::DeserializeOwned>(
        &self,
        name: &str,
    ) -> Result<T> {
        let blob = self.blob(name)?;
        let what = What::new(
            name,
            format!(" of run {} task {}", self.run.id(), self.id()),
        );
        let mut out: Option<T> = None;
        cas::load_decoded(&self.run.ds, blob, &what, &mut |r| {
            out = Some((&Tag::<T>::NEW).decode_field(r)?);
            Ok(())
        })?;
        Ok(out.expect("decoded"))
    }

    /// Read one artifact as JSON (through the flow's field type).
    pub fn artifact_json(&self, name: &str) -> Result<serde_json::Value> {
        let blob = self.blob(name)?;
        let i = F::field_index(name).ok_or_else(|| {
            Error::not_found(format!(
                "artifact `{name}` is not a field of {} in this version of the code",
                F::NAME
            ))
        })?;
        let what = What::new(
            name,
            format!(" of run {} task {}", self.run.id(), self.id()),
        );
        let mut state = F::default();
        cas::load_decoded(&self.run.ds, blob, &what, &mut |r| {
            state.__decode_field(i, r)
        })?;
        state.__field_json(i).map_err(|e| Error::Artifact {
            artifact: name.to_string(),
            digest: blob.digest.to_string(),
            context: what.context.clone(),
            message: format!("cannot render as JSON: {e}"),
        })
    }
}
