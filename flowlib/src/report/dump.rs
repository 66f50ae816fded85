//! `dump`: a run, a step, a task, or one artifact.

use std::fmt::Write;

use crate::client::{Run, TaskView};
use crate::error::{chain, Error, Result};
use crate::flow::graph::format_bytes;
use crate::flow::Flow;
use crate::meta::query::{successful, Damaged};
use crate::meta::{AttemptStatus, RunInfo, Timings};
use crate::report::{plural, RunState};
use crate::store::{BlobRef, Datastore};

/// What `dump` shows: one of four views, by how much of `RUN/STEP/TASK ARTIFACT` is named.
#[derive(Clone, Debug, serde::Serialize)]
#[serde(tag = "view", rename_all = "kebab-case")]
#[non_exhaustive]
pub(crate) enum DumpReport {
    /// `dump RUN` (boxed: a run's records dwarf the other views).
    Run(Box<RunDump>),
    /// `dump RUN/STEP` of a step with other than one task.
    Step(StepDump),
    /// `dump RUN/STEP[/INDEX]`.
    Task(TaskDump),
    /// `dump RUN/STEP[/INDEX] ARTIFACT`.
    Artifact(ArtifactDump),
}

/// A run: its records and how each step went.
#[derive(Clone, Debug, serde::Serialize)]
#[non_exhaustive]
pub(crate) struct RunDump {
    /// Its records.
    pub(crate) info: RunInfo,
    /// Its state now.
    pub(crate) state: RunState,
    /// Every step of the graph, in graph order.
    pub(crate) steps: Vec<StepTally>,
    /// The run's records that cannot be read (their tasks count as not run).
    pub(crate) damaged: Vec<Damaged>,
}

/// How one step of a run went.
#[derive(Clone, Debug, serde::Serialize)]
#[non_exhaustive]
pub(crate) struct StepTally {
    /// Step name.
    pub(crate) step: String,
    /// Successful tasks.
    pub(crate) ok: usize,
    /// Of them, taken from the cache of a `#[cache]` step.
    pub(crate) cached: usize,
    /// Attempts that did not succeed.
    pub(crate) failed: Vec<AttemptLine>,
}

/// One attempt of a task.
#[derive(Clone, Debug, serde::Serialize)]
#[non_exhaustive]
pub(crate) struct AttemptLine {
    /// Task id (`fit/2`).
    pub(crate) task: String,
    /// Attempt number.
    pub(crate) attempt: u32,
    /// How it ended.
    pub(crate) status: AttemptStatus,
    /// Time spent loading, in the step, and storing.
    pub(crate) timings: Timings,
}

/// The successful tasks of a step.
#[derive(Clone, Debug, serde::Serialize)]
#[non_exhaustive]
pub(crate) struct StepDump {
    /// Run id.
    pub(crate) run: String,
    /// Step name.
    pub(crate) step: String,
    /// Its successful tasks.
    pub(crate) tasks: Vec<AttemptLine>,
    /// The records of its tasks that cannot be read.
    pub(crate) damaged: Vec<Damaged>,
}

/// One task: its attempt, parents, timings and artifacts.
#[derive(Clone, Debug, serde::Serialize)]
#[non_exhaustive]
pub(crate) struct TaskDump {
    /// Run id.
    pub(crate) run: String,
    /// The attempt shown.
    pub(crate) attempt: AttemptLine,
    /// The run it was reused from, if it was.
    pub(crate) reused_from: Option<String>,
    /// The task it was taken from by the cache (`run R task T`), if it was.
    pub(crate) cached_from: Option<String>,
    /// The step's error, if it caught one.
    pub(crate) error: Option<String>,
    /// Parent task ids.
    pub(crate) parents: Vec<String>,
    /// Its artifacts, by name.
    pub(crate) artifacts: Vec<ArtifactLine>,
}

/// One artifact of a task.
#[derive(Clone, Debug, serde::Serialize)]
#[non_exhaustive]
pub(crate) struct ArtifactLine {
    /// Artifact name.
    pub(crate) name: String,
    /// Where it is stored.
    pub(crate) blob: BlobRef,
    /// Its value as JSON, or why it could not be read.
    #[serde(flatten, serialize_with = "value_or_error")]
    pub(crate) value: std::result::Result<serde_json::Value, String>,
}

/// One artifact's value.
#[derive(Clone, Debug, serde::Serialize)]
#[non_exhaustive]
pub(crate) struct ArtifactDump {
    /// Its value as JSON.
    pub(crate) value: serde_json::Value,
}

/// An artifact line's value as `{"value": ...}` or `{"error": "..."}`.
fn value_or_error<S: serde::Serializer>(
    v: &std::result::Result<serde_json::Value, String>,
    s: S,
) -> std::result::Result<S::Ok, S::Error> {
    use serde::ser::SerializeMap;
    let mut m = s.serialize_map(Some(1))?;
    match v {
        Ok(value) => m.serialize_entry("value", value)?,
        Err(error) => m.serialize_entry("error", error)?,
    }
    m.end()
}

impl DumpReport {
    /// The view of run `run_id` that `path` (`STEP[/INDEX]`, or none) and `artifact` name.
    pub(crate) fn build<F: Flow>(
        ds: &Datastore,
        run_id: &str,
        path: Option<&str>,
        artifact: Option<&str>,
    ) -> Result<DumpReport> {
        let run = Run::<F>::open(ds, run_id)?;
        let Some(path) = path.filter(|p| !p.is_empty()) else {
            if artifact.is_some() {
                return Err(Error::invalid(
                    "name a task to dump an artifact: dump <run>/<step>[/<index>] <artifact>",
                ));
            }
            return Ok(DumpReport::Run(Box::new(RunDump::build(&run)?)));
        };
        let (step, index) = match path.split_once('/') {
            Some((s, i)) => (s, Some(i)),
            None => (path, None),
        };
        let view = run.step(step)?;
        let task = match index {
            Some(i) => run.task(&format!("{step}/{i}")).or_else(|e| {
                if i == "_" || i.is_empty() {
                    view.only_task()
                } else {
                    Err(e)
                }
            })?,
            None if view.len() != 1 => {
                if artifact.is_some() {
                    return Err(Error::invalid(format!(
                        "step `{step}` has {} tasks: name one, like {run_id}/{step}/0",
                        view.len()
                    )));
                }
                return Ok(DumpReport::Step(StepDump {
                    run: run_id.to_string(),
                    step: step.to_string(),
                    tasks: view.tasks().map(|t| AttemptLine::of(&t)).collect(),
                    damaged: run
                        .damaged()?
                        .iter()
                        .filter(|d| {
                            d.task.as_deref().and_then(|t| t.split('/').next()) == Some(step)
                        })
                        .cloned()
                        .collect(),
                }));
            }
            None => view.only_task()?,
        };
        Ok(match artifact {
            Some(name) => DumpReport::Artifact(ArtifactDump {
                value: task.artifact_json(name)?,
            }),
            None => DumpReport::Task(TaskDump::build(run_id, &task)),
        })
    }

    /// The view as text.
    pub(crate) fn render_text(&self) -> String {
        match self {
            DumpReport::Run(r) => r.render_text(),
            DumpReport::Step(s) => s.render_text(),
            DumpReport::Task(t) => t.render_text(),
            DumpReport::Artifact(a) => {
                let mut s = serde_json::to_string_pretty(&a.value).expect("JSON renders");
                s.push('\n');
                s
            }
        }
    }
}

impl RunDump {
    fn build<F: Flow>(run: &Run<F>) -> Result<RunDump> {
        let attempts = run.attempts()?;
        let ok = successful(attempts.to_vec());
        let steps = F::graph()
            .steps()
            .iter()
            .map(|s| StepTally {
                step: s.name.to_string(),
                ok: ok.keys().filter(|(st, _)| st == s.name).count(),
                cached: ok
                    .iter()
                    .filter(|((st, _), a)| st == s.name && a.cached)
                    .count(),
                failed: attempts
                    .iter()
                    .filter(|a| a.step == s.name && !a.status.is_success())
                    .map(|a| AttemptLine {
                        task: a.task_id(),
                        attempt: a.source.attempt,
                        status: a.status,
                        timings: a
                            .manifest
                            .as_ref()
                            .map(|m| m.timings.clone())
                            .unwrap_or_default(),
                    })
                    .collect(),
            })
            .collect();
        Ok(RunDump {
            info: run.info().clone(),
            state: RunState::of(run.info()),
            steps,
            damaged: run.damaged()?.to_vec(),
        })
    }

    fn render_text(&self) -> String {
        let mut out = String::new();
        let (r, end) = (&self.info.record, &self.info.end);
        let _ = writeln!(out, "run {} of {}: {}", r.run_id, r.flow, self.state);
        let _ = writeln!(out, "  started   {}", r.started);
        if let Some(e) = end {
            let secs = e.duration_ms as f64 / 1000.0;
            let _ = writeln!(out, "  finished  {} ({secs:.2}s)", e.finished);
        }
        if let Some(why) = self.info.end_error() {
            let _ = writeln!(out, "  end record not written: {why}");
        }
        let _ = writeln!(out, "  graph     {}", r.graph_digest);
        let _ = writeln!(
            out,
            "  code      {} {}{}",
            r.code.exe,
            r.code.exe_digest.map(|d| d.to_string()).unwrap_or_default(),
            r.code
                .git_commit
                .as_ref()
                .map(|c| format!(" (git {c})"))
                .unwrap_or_default()
        );
        let _ = writeln!(
            out,
            "  host      {} (user {}, pid {})",
            r.host, r.user, r.pid
        );
        if let Some(res) = &r.resume {
            let from = res.step.as_ref().map(|s| format!(" from step {s}"));
            let _ = writeln!(
                out,
                "  resumed   {}{} ({} tasks reused)",
                res.origin,
                from.unwrap_or_default(),
                res.reused_tasks
            );
            for (k, (a, b)) in &res.changed_params {
                let _ = writeln!(out, "  changed   {k}: {a} -> {b}");
            }
        }
        for (k, v) in &r.params {
            let _ = writeln!(out, "  param     {k} = {v}");
        }
        out.push_str("steps:\n");
        for s in &self.steps {
            let _ = write!(out, "  {:<20} {} task{} ok", s.step, s.ok, plural(s.ok));
            if s.cached > 0 {
                let _ = write!(out, " ({} cached)", s.cached);
            }
            if !s.failed.is_empty() {
                let failed: Vec<String> = s
                    .failed
                    .iter()
                    .map(|a| format!("{} attempt {} {}", a.task, a.attempt, a.status))
                    .collect();
                let _ = write!(out, "; {}", failed.join(", "));
            }
            out.push('\n');
        }
        // Skipped records: their tasks count as not run (`resume` runs them again).
        for d in &self.damaged {
            let _ = writeln!(out, "  damaged   {d}");
        }
        out
    }
}

impl AttemptLine {
    fn of<F: Flow>(t: &TaskView<'_, F>) -> AttemptLine {
        let m = t.manifest();
        AttemptLine {
            task: t.id(),
            attempt: m.attempt,
            status: m.status,
            timings: m.timings.clone(),
        }
    }
}

impl StepDump {
    fn render_text(&self) -> String {
        let mut out = format!(
            "step {} of run {}: {} successful tasks\n",
            self.step,
            self.run,
            self.tasks.len()
        );
        for t in &self.tasks {
            let ms = t.timings.load_ms + t.timings.step_ms + t.timings.store_ms;
            let _ = writeln!(
                out,
                "  {:<24} attempt {} {} ({ms:.1} ms)",
                t.task, t.attempt, t.status
            );
        }
        for d in &self.damaged {
            let _ = writeln!(out, "  damaged   {d}");
        }
        out
    }
}

/// Artifacts up to this size are decoded for the task view's preview; larger ones are
/// only named, with their size (a preview must stay cheap in memory and time).
const PREVIEW_MAX_BLOB: u64 = 1 << 20;

impl TaskDump {
    fn build<F: Flow>(run_id: &str, task: &TaskView<'_, F>) -> TaskDump {
        let (m, a) = (task.manifest(), task.attempt());
        TaskDump {
            run: run_id.to_string(),
            attempt: AttemptLine::of(task),
            reused_from: a.reused.then(|| a.source.run.clone()),
            cached_from: a
                .cached
                .then(|| format!("run {} task {}", a.source.run, a.source.task_id())),
            error: m.error.clone(),
            parents: m.parents.iter().map(|p| p.task_id()).collect(),
            artifacts: m
                .artifacts
                .iter()
                .map(|(name, blob)| ArtifactLine {
                    name: name.clone(),
                    blob: *blob,
                    value: if blob.size > PREVIEW_MAX_BLOB {
                        // Bounded: a preview never decodes a large artifact (#8.14).
                        Err(format!(
                            "{}, too large to preview: `dump {run_id}/{} {name}` prints it",
                            format_bytes(blob.size),
                            task.id()
                        ))
                    } else {
                        task.artifact_json(name).map_err(|e| chain(&e))
                    },
                })
                .collect(),
        }
    }

    fn render_text(&self) -> String {
        let mut out = String::new();
        let a = &self.attempt;
        let reused = self
            .reused_from
            .as_ref()
            .map(|r| format!(" (reused from run {r})"))
            .or_else(|| {
                self.cached_from
                    .as_ref()
                    .map(|c| format!(" (cached from {c})"))
            });
        let _ = writeln!(
            out,
            "task {} of run {}: attempt {} {}{}",
            a.task,
            self.run,
            a.attempt,
            a.status,
            reused.unwrap_or_default()
        );
        if let Some(e) = &self.error {
            let _ = writeln!(out, "  error: {e}");
        }
        if !self.parents.is_empty() {
            let shown: Vec<&str> = self.parents.iter().take(8).map(String::as_str).collect();
            let more = self.parents.len().saturating_sub(8);
            let more = if more > 0 {
                format!(" and {more} more")
            } else {
                String::new()
            };
            let _ = writeln!(out, "  parents: {}{more}", shown.join(", "));
        }
        let t = &a.timings;
        let _ = writeln!(
            out,
            "  timings: load {:.1} ms, step {:.1} ms, store {:.1} ms",
            t.load_ms, t.step_ms, t.store_ms
        );
        out.push_str("artifacts:\n");
        for art in &self.artifacts {
            let v = match &art.value {
                Ok(v) => preview(v),
                Err(e) => format!("<{e}>"),
            };
            let _ = writeln!(
                out,
                "  {:<16} {} {:>10}  {}",
                art.name,
                art.blob.digest.short(),
                format_bytes(art.blob.size),
                v
            );
        }
        out
    }
}

/// An artifact's JSON on one line, cut after 60 characters.
fn preview(v: &serde_json::Value) -> String {
    let s = v.to_string();
    if s.chars().count() > 60 {
        format!("{}…", s.chars().take(59).collect::<String>())
    } else {
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::prelude::Result;
    use crate::prelude::*;
    use crate::store::OpenMode;

    #[derive(FlowState, Default, Serialize, Deserialize)]
    struct Big {
        blob: Vec<u8>,
        small: u32,
    }

    #[flow]
    impl Big {
        #[step(start, next = end)]
        fn start(&mut self) -> Result<()> {
            self.blob = vec![7; 3 << 20];
            self.small = 42;
            Ok(())
        }
        #[step(end)]
        fn end(&mut self) -> Result<()> {
            Ok(())
        }
    }

    /// Regression (#8.14): the task view names a large artifact with its size instead of
    /// decoding it into JSON for a 60-character preview.
    #[test]
    fn the_task_view_does_not_decode_large_artifacts() {
        let dir = tempfile::tempdir().unwrap();
        let ds = Datastore::open(dir.path().to_str().unwrap(), OpenMode::Create).unwrap();
        let id = crate::run::<Big>(&ds, &crate::RunOptions::default())
            .unwrap()
            .run_id;
        let DumpReport::Task(t) = DumpReport::build::<Big>(&ds, &id, Some("end"), None).unwrap()
        else {
            panic!("a task view");
        };
        let by_name = |n: &str| t.artifacts.iter().find(|a| a.name == n).unwrap();
        let big = by_name("blob").value.as_ref().unwrap_err();
        assert!(big.contains("too large to preview"), "{big}");
        assert!(big.contains(&format!("dump {id}/end blob")), "{big}");
        assert_eq!(
            by_name("small").value.as_ref().unwrap(),
            &serde_json::json!(42)
        );
    }
}
