//! Access to past runs: typed (`Run<F>`: list runs, open one, read a task's state or one
//! artifact), and search over runs ([`search`], [`Query`]).
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

mod lineage;
mod query;
pub mod untyped;

pub use lineage::{lineage, resolve_value, AliasView, Appearance, Lineage, Producer};
pub use query::{search, Agg, Field, Query, RunMetric, RunRow, Value};

use std::collections::BTreeMap;
use std::marker::PhantomData;
use std::sync::OnceLock;

use crate::error::{Error, Result, Site};
use crate::flow::Flow;
use crate::meta::query::{Attempts, Damaged};
use crate::meta::{parse_task_id, Committed, RunInfo, RunStatus, TaskAttempt, TaskManifest};
use crate::store::cas::{self, What};
use crate::store::codec::{Tag, ViaSerde};
use crate::store::{BlobRef, Datastore};
use crate::task::{load_state, RunContext};

/// A past run of flow `F`.
#[derive(Debug)]
pub struct Run<F: Flow> {
    ds: Datastore,
    info: RunInfo,
    /// Every attempt and damaged record, read when first asked for: opening a run and
    /// reading one task of it reads that task's records, not the run's 100,000.
    all: OnceLock<Attempts>,
    _flow: PhantomData<fn() -> F>,
}

impl<F: Flow> Run<F> {
    /// Open run `run_id` of `F` (its run records; tasks are read when asked for). Its task
    /// records that cannot be read are skipped (and listed by [`damaged`](Self::damaged));
    /// every other task stays readable.
    pub fn open(ds: &Datastore, run_id: &str) -> Result<Self> {
        let info = ds.run_info(F::NAME, run_id)?;
        Ok(Run {
            ds: ds.clone(),
            info,
            all: OnceLock::new(),
            _flow: PhantomData,
        })
    }

    /// Every attempt of the run, read once (one listing, then the records in batches).
    fn all(&self) -> Result<&Attempts> {
        if let Some(all) = self.all.get() {
            return Ok(all);
        }
        let read = self.ds.task_attempts_checked(F::NAME, self.id())?;
        Ok(self.all.get_or_init(|| read))
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

    /// Every committed attempt (failed ones included) whose records can be read. The first
    /// call reads them all (an error when the store cannot be read); later calls do not.
    pub fn attempts(&self) -> Result<&[TaskAttempt]> {
        Ok(&self.all()?.attempts)
    }

    /// The run's records that could not be read (commit records, manifests, the reuse
    /// record); the attempts they describe are not in [`attempts`](Self::attempts).
    pub fn damaged(&self) -> Result<&[Damaged]> {
        Ok(&self.all()?.damaged)
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
            .attempts()?
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
    ///
    /// Before the run's attempts were listed, this reads that task alone
    /// ([`Datastore::successful_task`]): a few requests whatever the run's size.
    pub fn task(&self, id: &str) -> Result<TaskView<'_, F>> {
        let (step, index) = parse_task_id(id)?;
        if self.all.get().is_none() && F::graph().step(step).is_some() {
            let id = crate::meta::task_id(step, &index);
            if let Ok(a) = self.ds.successful_task(F::NAME, self.id(), &id) {
                return Ok(TaskView {
                    run: self,
                    attempt: Held::Read(Box::new(a)),
                });
            }
            // Missing or damaged: the whole run says which, and what the step has.
        }
        let view = self.step(step)?;
        view.tasks
            .iter()
            .find(|a| a.index == index)
            .map(|a| TaskView {
                run: self,
                attempt: Held::Listed(a),
            })
            .ok_or_else(|| {
                let wanted = crate::meta::task_id(step, &index);
                if let Some(d) = self
                    .all
                    .get()
                    .into_iter()
                    .flat_map(|a| a.damaged.iter())
                    .find(|d| d.task.as_deref() == Some(wanted.as_str()))
                {
                    return Error::not_found(format!(
                        "run {} has no readable successful task `{id}`: a record of it is damaged ({d})",
                        self.id()
                    ));
                }
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
        RunContext::new(
            self.ds.clone(),
            F::NAME,
            self.id().to_string(),
            BTreeMap::new(),
        )
    }
}

/// The successful tasks of one step.
#[derive(Debug)]
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
            attempt: Held::Listed(a),
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
                attempt: Held::Listed(one),
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
#[derive(Debug)]
pub struct TaskView<'a, F: Flow> {
    run: &'a Run<F>,
    attempt: Held<'a>,
}

/// A task's attempt: one of its run's, listed, or read alone.
#[derive(Debug)]
enum Held<'a> {
    Listed(&'a TaskAttempt),
    Read(Box<TaskAttempt>),
}

impl<F: Flow> TaskView<'_, F> {
    /// `step` or `step/2.5`.
    pub fn id(&self) -> String {
        self.attempt().task_id()
    }

    /// The attempt's details.
    pub fn attempt(&self) -> &TaskAttempt {
        match &self.attempt {
            Held::Listed(a) => a,
            Held::Read(a) => a,
        }
    }

    /// The manifest.
    pub fn manifest(&self) -> &TaskManifest {
        self.attempt()
            .manifest
            .as_ref()
            .expect("successful attempts have manifests")
    }

    /// The whole state after this task (every artifact loaded and verified).
    pub fn state(&self) -> Result<F> {
        let c = Committed::from_attempt(self.attempt()).ok_or_else(|| {
            Error::not_found(format!(
                "task {} of run {} did not succeed",
                self.id(),
                self.run.id()
            ))
        })?;
        load_state::<F>(
            &self.run.context(),
            &c,
            &Site::task(Some(self.run.id()), self.id()),
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
        let what = What::new(name, Site::task(Some(self.run.id()), self.id()));
        let mut out: Option<T> = None;
        let inline = self.manifest().inline_of(&blob);
        cas::load_decoded(&self.run.ds, blob, inline, &what, &mut |r| {
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
        let what = What::new(name, Site::task(Some(self.run.id()), self.id()));
        let mut state = F::default();
        let inline = self.manifest().inline_of(&blob);
        cas::load_decoded(&self.run.ds, blob, inline, &what, &mut |r| {
            state.__decode_field(i, r)
        })?;
        state
            .__field_json(i)
            .map_err(|e| what.err(blob.digest, format!("cannot render as JSON: {e}")))
    }
}
