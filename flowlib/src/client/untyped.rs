//! Untyped access to past runs, for tools that do not have the flow's type (a dashboard, a
//! notebook, a script over several flows): [`Run`], [`Step`], [`Task`] and [`Artifact`]
//! handles with metadata, metrics, logs and artifact bytes.
//!
//! Everything is read when asked for, not before: opening a run reads its run and end
//! records; listing a step's tasks lists its commit records; a task's manifest is read the
//! first time one of its artifacts or its manifest is asked for, and kept.
//!
//! ```
//! use flowlib::prelude::*;
//! use flowlib::client::untyped::Run;
//!
//! #[derive(FlowState, Default, Serialize, Deserialize)]
//! struct Fit {
//!     #[param(default = 0.1)]
//!     lr: f64,
//!     loss: f64,
//! }
//!
//! #[flow]
//! impl Fit {
//!     #[step(start, next = end)]
//!     fn start(&mut self, ctx: &mut Ctx) -> Result<()> {
//!         for epoch in 0..3u64 {
//!             self.loss = self.lr / (epoch as f64 + 1.0);
//!             ctx.log_metric_at("loss", self.loss, epoch);
//!         }
//!         Ok(())
//!     }
//!     #[step(end)]
//!     fn end(&mut self) -> Result<()> { Ok(()) }
//! }
//!
//! # fn main() -> flowlib::Result<()> {
//! let dir = tempfile::tempdir().unwrap();
//! let ds = flowlib::Datastore::open(dir.path().to_str().unwrap(), flowlib::OpenMode::Create)?;
//! let opts = flowlib::RunOptions::default().with_tags(vec![("team".into(), "vision".into())]);
//! let id = flowlib::run::<Fit>(&ds, &opts)?.run_id;
//!
//! // No `Fit` type needed from here on: a Run, its Steps, Tasks and Artifacts by name.
//! let run = Run::open(&ds, "Fit", "latest")?;
//! assert_eq!(run.id(), id);
//! assert_eq!(run.tags()?.tags["team"], "vision");
//! assert_eq!(run.steps(), ["start", "end"]);
//! let step = run.step("start")?;
//! let task = &step.tasks()?[0];
//! assert_eq!(task.status()?, flowlib::AttemptStatus::Ok);
//! let points = task.metrics()?;
//! assert_eq!((points.len(), points[2].step), (3, Some(2)));
//! assert_eq!(task.metric_summaries()?["loss"].min, 0.1 / 3.0);
//! let loss = run.task("end")?.artifact("loss")?;
//! assert_eq!(loss.decode::<f64>()?, 0.1 / 3.0);
//! println!("{} ({} bytes)", loss.digest(), loss.size());
//!
//! // Search and aliases work on the same datastore.
//! let q = flowlib::client::Query::parse("metrics.loss < 0.05 and tags.team = 'vision'")?;
//! assert_eq!(flowlib::client::search(&ds, "Fit", &q)?.len(), 1);
//! ds.set_alias("Fit", "champion", &format!("{id}/end/loss"), "end")?;
//! let champion = ds.alias("Fit", "champion")?;
//! assert_eq!(champion.blob().unwrap().digest, loss.digest());
//! assert_eq!(champion.lineage.produced_by[0].task.task_id(), "start");
//! # Ok(()) }
//! ```

use std::collections::BTreeMap;
use std::sync::{Arc, OnceLock};

use bytes::Bytes;

use crate::error::{Error, Result};
use crate::meta::commit::{manifest_of, read_pinned, read_record};
use crate::meta::metrics::{read_metrics, summarize, MetricPoint, MetricSummary};
use crate::meta::tags::{existing_run, Tags};
use crate::meta::{
    logs, parse_task_id, AttemptStatus, CommitRecord, IndexPath, ReuseRecord, RunInfo, RunStatus,
    TaskManifest, TaskRef,
};
use crate::store::codec::{Tag, ViaSerde};
use crate::store::{layout, BlobRef, Datastore, Digest};

#[derive(Debug)]
struct RunInner {
    ds: Datastore,
    flow: String,
    info: RunInfo,
    reuse: OnceLock<Option<ReuseRecord>>,
}

impl RunInner {
    fn reuse(&self) -> Result<Option<&ReuseRecord>> {
        if let Some(r) = self.reuse.get() {
            return Ok(r.as_ref());
        }
        let r = self.ds.reuse_record(&self.flow, &self.info.record.run_id)?;
        Ok(self.reuse.get_or_init(|| r).as_ref())
    }
}

/// A past run of any flow, by name.
#[derive(Clone, Debug)]
pub struct Run {
    inner: Arc<RunInner>,
}

impl Run {
    /// Open run `id` (or `latest`) of flow `flow`: reads its run and end records only.
    ///
    /// ```no_run
    /// # fn demo(ds: &flowlib::Datastore) -> flowlib::Result<()> {
    /// let run = flowlib::client::untyped::Run::open(ds, "Train", "latest")?;
    /// println!("{} started {}", run.id(), run.info().record.started);
    /// # Ok(()) }
    /// ```
    pub fn open(ds: &Datastore, flow: &str, id: &str) -> Result<Run> {
        let run = existing_run(ds, flow, id)?;
        let info = ds.run_info(flow, &run)?;
        Ok(Run {
            inner: Arc::new(RunInner {
                ds: ds.clone(),
                flow: flow.to_string(),
                info,
                reuse: OnceLock::new(),
            }),
        })
    }

    /// The run id.
    pub fn id(&self) -> &str {
        &self.inner.info.record.run_id
    }

    /// The flow's name.
    pub fn flow(&self) -> &str {
        &self.inner.flow
    }

    /// Its run and end records.
    pub fn info(&self) -> &RunInfo {
        &self.inner.info
    }

    /// Its status.
    pub fn status(&self) -> RunStatus {
        self.inner.info.status()
    }

    /// Its parameters, as JSON.
    pub fn params(&self) -> &BTreeMap<String, serde_json::Value> {
        &self.inner.info.record.params
    }

    /// Its tags and notes.
    ///
    /// ```no_run
    /// # fn demo(run: &flowlib::client::untyped::Run) -> flowlib::Result<()> {
    /// if let Some(team) = run.tags()?.tags.get("team") {
    ///     println!("team {team}");
    /// }
    /// # Ok(()) }
    /// ```
    pub fn tags(&self) -> Result<Tags> {
        self.inner.ds.run_tags(self.flow(), self.id())
    }

    /// The names of its steps, in graph order (from the run record: nothing else is read).
    pub fn steps(&self) -> Vec<String> {
        self.inner
            .info
            .record
            .graph
            .iter()
            .map(|s| s.name.clone())
            .collect()
    }

    /// Step `name`.
    pub fn step(&self, name: &str) -> Result<Step> {
        if !self.inner.info.record.graph.iter().any(|s| s.name == name) {
            return Err(Error::not_found(format!(
                "run {} of {} has no step `{name}` (it has: {})",
                self.id(),
                self.flow(),
                self.steps().join(", ")
            )));
        }
        Ok(Step {
            run: self.clone(),
            name: name.to_string(),
        })
    }

    /// Task `id` (`pick`, `fit/2`): its successful attempt, or its last attempt when none
    /// succeeded. Reads only that task's commit records.
    ///
    /// ```no_run
    /// # fn demo(run: &flowlib::client::untyped::Run) -> flowlib::Result<()> {
    /// let task = run.task("fit/2")?;
    /// for p in task.metrics()? {
    ///     println!("{} {:?} {}", p.name, p.step, p.value);
    /// }
    /// # Ok(()) }
    /// ```
    pub fn task(&self, id: &str) -> Result<Task> {
        let (step, index) = parse_task_id(id)?;
        let tasks = self.step(step)?.tasks_at(Some(&index))?;
        tasks.into_iter().next().ok_or_else(|| {
            Error::not_found(format!(
                "run {} of {} has no committed task {id}",
                self.id(),
                self.flow()
            ))
        })
    }
}

/// One step of a [`Run`].
#[derive(Clone, Debug)]
pub struct Step {
    run: Run,
    name: String,
}

impl Step {
    /// The step's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Its tasks, one per index (the successful attempt, else the last), in index order;
    /// tasks a resumed run reused from its origin included. Lists commit records and reads
    /// them; no manifest is read.
    ///
    /// ```no_run
    /// # fn demo(run: &flowlib::client::untyped::Run) -> flowlib::Result<()> {
    /// let fits = run.step("fit")?.tasks()?;
    /// println!("{} fit tasks", fits.len());
    /// # Ok(()) }
    /// ```
    pub fn tasks(&self) -> Result<Vec<Task>> {
        self.tasks_at(None)
    }

    fn tasks_at(&self, only: Option<&IndexPath>) -> Result<Vec<Task>> {
        let inner = &self.run.inner;
        let (ds, flow, run) = (&inner.ds, &inner.flow, self.run.id());
        let dir = format!("{}{}/", layout::tasks(flow, run), self.name);
        // index → attempts (attempt, commit record)
        let mut by_index: BTreeMap<Vec<u32>, Vec<(u32, CommitRecord)>> = BTreeMap::new();
        for l in ds.list(&dir)? {
            let Some(rest) = l.rel.strip_prefix(&layout::tasks(flow, run)) else {
                continue;
            };
            let Some((_, index, attempt)) = layout::parse_commit_file(rest) else {
                continue;
            };
            let Some(index) = IndexPath::parse(index) else {
                continue;
            };
            if only.is_some_and(|o| *o != index) {
                continue;
            }
            let Some(record) = ds.get_json::<CommitRecord>(&l.rel)? else {
                continue;
            };
            crate::meta::commit::check_version(ds, &l.rel, &record)?;
            by_index.entry(index.0).or_default().push((attempt, record));
        }
        let mut out: BTreeMap<Vec<u32>, Task> = BTreeMap::new();
        for (index, mut attempts) in by_index {
            attempts.sort_by_key(|(a, _)| *a);
            let pick = attempts
                .iter()
                .rposition(|(_, r)| r.status.is_success())
                .unwrap_or(attempts.len() - 1);
            let (attempt, record) = attempts.swap_remove(pick);
            let task = TaskRef {
                run: run.to_string(),
                step: self.name.clone(),
                index: IndexPath(index.clone()),
                attempt,
            };
            out.insert(index, Task::new(inner.clone(), task, Some(record), false));
        }
        if let Some(reuse) = inner.reuse()? {
            for t in &reuse.tasks {
                let s = &t.source;
                if s.step != self.name || only.is_some_and(|o| *o != s.index) {
                    continue;
                }
                out.entry(s.index.0.clone()).or_insert_with(|| {
                    let task = Task::new(inner.clone(), s.clone(), None, true);
                    let _ = task.pin.set(Some(t.manifest));
                    let _ = task.status_of_reused.set(t.status);
                    task
                });
            }
        }
        Ok(out.into_values().collect())
    }
}

/// One task attempt of a [`Run`], possibly reused from another run.
#[derive(Clone, Debug)]
pub struct Task {
    run: Arc<RunInner>,
    task: TaskRef,
    reused: bool,
    commit: OnceLock<Option<CommitRecord>>,
    pin: OnceLock<Option<BlobRef>>,
    status_of_reused: OnceLock<AttemptStatus>,
    manifest: OnceLock<TaskManifest>,
}

impl Task {
    fn new(run: Arc<RunInner>, task: TaskRef, commit: Option<CommitRecord>, reused: bool) -> Task {
        let t = Task {
            run,
            task,
            reused,
            commit: OnceLock::new(),
            pin: OnceLock::new(),
            status_of_reused: OnceLock::new(),
            manifest: OnceLock::new(),
        };
        if let Some(c) = commit {
            let _ = t.pin.set(c.manifest);
            let _ = t.commit.set(Some(c));
        }
        t
    }

    /// The task id: `step` or `step/2.5`.
    pub fn id(&self) -> String {
        self.task.task_id()
    }

    /// The attempt number.
    pub fn attempt(&self) -> u32 {
        self.task.attempt
    }

    /// The attempt, as a reference (its run is the origin's when it was reused).
    pub fn task_ref(&self) -> &TaskRef {
        &self.task
    }

    /// Whether the run reused it from its origin.
    pub fn reused(&self) -> bool {
        self.reused
    }

    /// Its commit record (the origin's when reused).
    pub fn commit_record(&self) -> Result<&CommitRecord> {
        if let Some(Some(c)) = self.commit.get() {
            return Ok(c);
        }
        let c = read_record(&self.run.ds, &self.run.flow, &self.task)?;
        self.commit.get_or_init(|| c).as_ref().ok_or_else(|| {
            Error::not_found(format!(
                "task {} attempt {} of run {} has no commit record",
                self.id(),
                self.attempt(),
                self.task.run
            ))
        })
    }

    /// How the attempt ended.
    pub fn status(&self) -> Result<AttemptStatus> {
        if let Some(s) = self.status_of_reused.get() {
            return Ok(*s);
        }
        Ok(self.commit_record()?.status)
    }

    /// Its manifest: artifacts, parents, timings (read on first use, then kept).
    pub fn manifest(&self) -> Result<&TaskManifest> {
        if let Some(m) = self.manifest.get() {
            return Ok(m);
        }
        let pin = match self.pin.get() {
            Some(p) => *p,
            None => self.commit_record()?.manifest,
        };
        let pin = pin.ok_or_else(|| {
            Error::not_found(format!(
                "task {} attempt {} of run {} has no manifest (it timed out or was lost)",
                self.id(),
                self.attempt(),
                self.task.run
            ))
        })?;
        let (ds, flow) = (&self.run.ds, &self.run.flow);
        // The commit record, when read already and pinning it, carries it.
        let m = match self.commit.get() {
            Some(Some(c)) if c.manifest == Some(pin) && c.manifest_json.is_some() => {
                manifest_of(ds, flow, &self.task, c)?.expect("a pinned manifest")
            }
            _ => read_pinned(ds, flow, &self.task, pin)?,
        };
        Ok(self.manifest.get_or_init(|| m))
    }

    /// Every metric point it logged, in order.
    pub fn metrics(&self) -> Result<Vec<MetricPoint>> {
        read_metrics(&self.run.ds, &self.run.flow, &self.task)
    }

    /// Its metrics summarized: from the commit record, or from the points when the
    /// attempt left none (it was killed).
    pub fn metric_summaries(&self) -> Result<BTreeMap<String, MetricSummary>> {
        match self.commit_record() {
            Ok(c) if !c.metrics.is_empty() => Ok(c.metrics.clone()),
            _ => Ok(summarize(&self.metrics()?)),
        }
    }

    /// What it printed to `stream` (`stdout` or `stderr`), as stored.
    ///
    /// ```no_run
    /// # fn demo(task: &flowlib::client::untyped::Task) -> flowlib::Result<()> {
    /// print!("{}", task.logs("stdout")?);
    /// # Ok(()) }
    /// ```
    pub fn logs(&self, stream: &str) -> Result<String> {
        if !logs::STREAMS.contains(&stream) {
            return Err(Error::invalid(format!(
                "`{stream}` is not a stream: stdout or stderr"
            )));
        }
        let (_, bytes) = logs::read_from(&self.run.ds, &self.run.flow, &self.task, stream, 0)?;
        Ok(String::from_utf8_lossy(&bytes).into_owned())
    }

    /// Its artifacts, by name.
    pub fn artifacts(&self) -> Result<Vec<Artifact>> {
        let m = self.manifest()?;
        Ok(m.artifacts
            .iter()
            .map(|(n, b)| self.handle(n, *b, m.inline_of(b)))
            .collect())
    }

    /// Artifact `name`.
    pub fn artifact(&self, name: &str) -> Result<Artifact> {
        let m = self.manifest()?;
        let b = m.artifacts.get(name).ok_or_else(|| {
            Error::not_found(format!(
                "task {} of run {} has no artifact `{name}` (it has: {})",
                self.id(),
                self.task.run,
                m.artifacts.keys().cloned().collect::<Vec<_>>().join(", ")
            ))
        })?;
        Ok(self.handle(name, *b, m.inline_of(b)))
    }

    fn handle(&self, name: &str, blob: BlobRef, inline: Option<&Bytes>) -> Artifact {
        Artifact {
            ds: self.run.ds.clone(),
            name: name.to_string(),
            blob,
            inline: inline.cloned(),
            task: self.task.clone(),
        }
    }
}

/// One artifact of a [`Task`]: its name and blob, read on demand.
#[derive(Clone, Debug)]
pub struct Artifact {
    ds: Datastore,
    name: String,
    blob: BlobRef,
    /// The bytes, when the task's manifest holds them inline.
    inline: Option<Bytes>,
    task: TaskRef,
}

impl Artifact {
    /// The artifact's (field's) name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Its content digest.
    pub fn digest(&self) -> Digest {
        self.blob.digest
    }

    /// Its size in bytes, as stored.
    pub fn size(&self) -> u64 {
        self.blob.size
    }

    /// Whether its bytes are held inline in the task's manifest (a small value, at most
    /// 1 KiB encoded) rather than stored as an object under `blobs/`.
    pub fn is_inline(&self) -> bool {
        self.inline.is_some()
    }

    fn what(&self) -> crate::store::cas::What {
        crate::store::cas::What::new(
            &self.name,
            crate::error::Site::task(Some(&self.task.run), self.task.task_id()),
        )
    }

    /// The value decoded as `T` (the field's type, or any type with the same serde
    /// shape), verified against its digest.
    ///
    /// ```no_run
    /// # fn demo(task: &flowlib::client::untyped::Task) -> flowlib::Result<()> {
    /// let best: Option<(f64, f64, (f64, f64))> = task.artifact("best")?.decode()?;
    /// # Ok(()) }
    /// ```
    pub fn decode<T: serde::Serialize + serde::de::DeserializeOwned>(&self) -> Result<T> {
        let mut out: Option<T> = None;
        let inline = self.inline.as_ref();
        crate::store::cas::load_decoded(&self.ds, self.blob, inline, &self.what(), &mut |r| {
            out = Some((&Tag::<T>::NEW).decode_field(r)?);
            Ok(())
        })?;
        Ok(out.expect("decoded"))
    }

    /// A JSON view of the value, decoded with the field's type from flow `F`.
    ///
    /// ```no_run
    /// # use flowlib::prelude::*;
    /// # #[derive(FlowState, Default, Serialize, Deserialize)] struct Train { best: f64 }
    /// # #[flow] impl Train { #[step(start, next = end)] fn start(&mut self) -> Result<()> { Ok(()) }
    /// #   #[step(end)] fn end(&mut self) -> Result<()> { Ok(()) } }
    /// # fn demo(task: &flowlib::client::untyped::Task) -> flowlib::Result<()> {
    /// let json = task.artifact("best")?.json::<Train>()?;
    /// # Ok(()) }
    /// ```
    pub fn json<F: crate::flow::Flow>(&self) -> Result<serde_json::Value> {
        let i = F::field_index(&self.name).ok_or_else(|| {
            Error::not_found(format!(
                "artifact `{}` is not a field of {} in this version of the code",
                self.name,
                F::NAME
            ))
        })?;
        let what = self.what();
        let mut state = F::default();
        let inline = self.inline.as_ref();
        crate::store::cas::load_decoded(&self.ds, self.blob, inline, &what, &mut |r| {
            state.__decode_field(i, r)
        })?;
        state
            .__field_json(i)
            .map_err(|e| what.err(self.blob.digest, format!("cannot render as JSON: {e}")))
    }
}
