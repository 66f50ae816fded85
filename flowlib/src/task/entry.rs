//! The task entry points other processes reach: `<exe> step --spec <digest>` (what remote
//! executors run) and [`run_task`] (by run, task id and attempt, for tools and tests).

use std::sync::atomic::AtomicBool;
use std::sync::Arc;

use crate::error::{Error, Result};
use crate::flow::Flow;
use crate::meta::query::successful_attempt;
use crate::meta::{
    parse_task_id, task_id, validate_run_id, Committed, Pinned, ReuseRecord, TaskRef,
};
use crate::store::{Datastore, Digest};
use crate::task::attempt::{execute, Outcome};
use crate::task::spec::{Pin, TaskSpec, SPEC_VERSION};
use crate::task::state::RunContext;

/// How [`run_task`] ended.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum TaskOutcome {
    /// The step succeeded (or its failure was caught) and the attempt is committed.
    Committed,
    /// The step failed; the failure is committed with its error.
    Failed(String),
    /// Another writer had already committed (or fenced) this attempt: nothing was changed.
    AlreadyCommitted,
}

impl From<Outcome> for TaskOutcome {
    fn from(o: Outcome) -> Self {
        match o {
            Outcome::Committed(_) | Outcome::Cached { .. } => TaskOutcome::Committed,
            Outcome::Failed(e) => TaskOutcome::Failed(e),
            Outcome::Fenced => TaskOutcome::AlreadyCommitted,
            Outcome::Lost { error, .. } => TaskOutcome::Failed(error),
        }
    }
}

/// Run the task attempt a stored [`TaskSpec`] describes: what `<exe> step --spec <digest>`
/// does on the machine an executor placed the task on. Inputs are read by their pinned
/// manifest digests (one request each).
pub fn run_spec<F: Flow>(ds: &Datastore, digest: &Digest) -> Result<TaskOutcome> {
    let spec = TaskSpec::load(ds, digest)?;
    if spec.flow != F::NAME {
        return Err(Error::invalid(format!(
            "task spec {digest} is for flow {}, not {}",
            spec.flow,
            F::NAME
        )));
    }
    if let Some(want) = spec.code {
        let exe = std::env::current_exe().ok();
        let have = exe.as_deref().and_then(crate::meta::identity::exe_digest);
        if have != Some(want) {
            return Err(Error::invalid(format!(
                "task {} of run {} was planned for the binary {want}, but this binary ({}) is {}: run the run's own binary (stored in the datastore under packages/)",
                spec.task_id(),
                spec.task.run,
                exe.map(|p| p.display().to_string()).unwrap_or_else(|| "?".into()),
                have.map(|d| d.to_string()).unwrap_or_else(|| "unreadable".into()),
            )));
        }
    }
    execute_alone::<F>(ds, &spec)
}

/// Run one attempt in a process of its own: its run context is built from the spec and
/// its inputs are read by their pinned digests.
fn execute_alone<F: Flow>(ds: &Datastore, spec: &TaskSpec) -> Result<TaskOutcome> {
    let run = Arc::new(RunContext::new(
        ds.clone(),
        F::NAME,
        spec.task.run.clone(),
        spec.params.clone(),
    ));
    Ok(execute::<F>(&run, spec, None, Arc::new(AtomicBool::new(false)))?.into())
}

/// Run one task of an existing run: read its committed inputs from the store, run the step,
/// store its artifacts, write its manifest and commit create-only. Reachable as
/// `<exe> step <name> --run <id> --task <index> --attempt <n>`.
///
/// `task` is `step` or `step/2.5`. Concurrent calls for the same attempt are safe: exactly
/// one commits, the others get [`TaskOutcome::AlreadyCommitted`].
pub fn run_task<F: Flow>(
    ds: &Datastore,
    run_id: &str,
    task: &str,
    attempt: u32,
) -> Result<TaskOutcome> {
    validate_run_id(run_id)?;
    let spec = spec_of_task::<F>(ds, run_id, task, attempt)?;
    execute_alone::<F>(ds, &spec)
}

/// The spec of attempt `attempt` of task `task` of a run, its inputs found through the
/// graph's inputs rule with one lookup each.
pub(crate) fn spec_of_task<F: Flow>(
    ds: &Datastore,
    run_id: &str,
    task: &str,
    attempt: u32,
) -> Result<TaskSpec> {
    let (step_name, index) = parse_task_id(task)?;
    let graph = F::graph();
    let step = graph
        .step(step_name)
        .ok_or_else(|| Error::invalid(format!("flow {} has no step `{step_name}`", F::NAME)))?;
    if index.0.len() != step.depth {
        return Err(Error::invalid(format!(
            "step `{step_name}` is inside {} foreach split(s): its index has {} part(s)",
            step.depth, step.depth
        )));
    }
    let info = ds.run_info(F::NAME, run_id)?;
    // The reuse record the run record pins (digest-checked), as every reader reads it.
    let reuse: Option<ReuseRecord> = ds.reuse_record(F::NAME, run_id)?;
    let lookup = |s: usize, p: &crate::meta::IndexPath| -> Result<Committed> {
        let name = graph.steps()[s].name;
        successful_attempt(ds, F::NAME, run_id, name, p, reuse.as_ref())?.ok_or_else(|| {
            Error::not_found(format!(
                "input task {} of run {run_id} is not committed",
                task_id(name, p)
            ))
        })
    };
    let mut base_count = None;
    let inputs = graph
        .inputs_of(step.index, &index, |k| {
            let c = lookup(k.0, &k.1).ok()?;
            base_count = Some(c.clone());
            c.foreach_count.or(Some(0))
        })
        .ok_or_else(|| {
            Error::not_found(format!(
                "the split of task {task} of run {run_id} is not committed"
            ))
        })?;
    let base = match (&inputs.base, base_count) {
        (None, _) => Committed::initial(info.record.initial.clone()),
        (Some(_), Some(c)) => c,
        (Some((s, p)), None) => lookup(*s, p)?,
    };
    let joined = inputs
        .joined
        .iter()
        .map(|(s, p)| {
            let c = Arc::new(lookup(*s, p)?);
            Pinned::of(c, false).ok_or_else(|| Error::internal("a join input has no attempt"))
        })
        .collect::<Result<Vec<_>>>()?;
    let joined = Pin::all(&crate::meta::Pins::of(joined));
    let params = F::FIELDS
        .iter()
        .filter(|f| f.param.is_some())
        .filter_map(|f| {
            info.record
                .initial
                .get(f.name)
                .map(|b| (f.name.to_string(), *b))
        })
        .collect();
    Ok(TaskSpec {
        version: SPEC_VERSION,
        flow: F::NAME.to_string(),
        task: TaskRef {
            run: run_id.to_string(),
            step: step.name.to_string(),
            index,
            attempt,
        },
        base: Pin::of(&base),
        inputs: joined,
        params,
        checkpoint_sources: vec![run_id.to_string()],
        timeout_ms: step.timeout_ms,
        resources: step.resources,
        code: None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::prelude::Result;
    use crate::prelude::*;
    use crate::store::OpenMode;

    #[derive(FlowState, Default, Serialize, Deserialize)]
    struct Twice {
        #[param(default = 21)]
        n: u64,
        items: Vec<u64>,
        doubled: u64,
        total: u64,
    }

    #[flow]
    impl Twice {
        #[step(start, next = double, foreach = items)]
        fn start(&mut self) -> Result<()> {
            self.items = (1..=self.n).collect();
            Ok(())
        }
        #[step(next = sum)]
        fn double(&mut self, item: &u64) -> Result<()> {
            self.doubled = item * 2;
            Ok(())
        }
        #[step(join, next = end)]
        fn sum(&mut self, inputs: Inputs<Self>) -> Result<()> {
            self.total = inputs.iter().map(|i| i.doubled).sum();
            Ok(())
        }
        #[step(end)]
        fn end(&mut self) -> Result<()> {
            Ok(())
        }
    }

    /// The remote path: a spec stored by digest and run by `run_spec` (what
    /// `<exe> step --spec <digest>` does) reads its pinned inputs and commits the same
    /// artifacts the in-process run did.
    #[test]
    fn a_stored_spec_runs_the_task_again_with_the_same_result() {
        let dir = tempfile::tempdir().unwrap();
        let ds = Datastore::open(dir.path().to_str().unwrap(), OpenMode::Create).unwrap();
        let opts = crate::RunOptions {
            progress: crate::ProgressMode::Quiet,
            ..crate::RunOptions::default()
        };
        let summary = crate::run::<Twice>(&ds, &opts).unwrap();
        let run = summary.run_id;
        let spec = spec_of_task::<Twice>(&ds, &run, "sum", 1).unwrap();
        assert_eq!(spec.input_tasks().count(), 21);
        assert_eq!(spec.inputs.len(), 1, "one range pins the 21 inputs");
        let digest = spec.store(&ds).unwrap();
        assert_eq!(TaskSpec::load(&ds, &digest).unwrap(), spec);
        assert_eq!(
            run_spec::<Twice>(&ds, &digest).unwrap(),
            TaskOutcome::Committed
        );
        let total: u64 = ds.artifact("Twice", &run, "sum", "total").unwrap();
        assert_eq!(total, 21 * 22);
        // The same attempt again: exactly one writer commits it.
        assert_eq!(
            run_spec::<Twice>(&ds, &digest).unwrap(),
            TaskOutcome::AlreadyCommitted
        );
        // A spec of another flow is refused with both names.
        let err = run_spec::<Other>(&ds, &digest).unwrap_err().to_string();
        assert!(err.contains("Twice") && err.contains("Other"), "{err}");
        // A spec planned for another binary is refused, naming both digests.
        let mut other = spec_of_task::<Twice>(&ds, &run, "sum", 2).unwrap();
        let planned = crate::store::Digest::of(b"another build of the flow");
        other.code = Some(planned);
        let digest = other.store(&ds).unwrap();
        let err = run_spec::<Twice>(&ds, &digest).unwrap_err().to_string();
        let mine = crate::meta::identity::exe_digest(&std::env::current_exe().unwrap()).unwrap();
        assert!(
            err.contains(&planned.to_string()) && err.contains(&mine.to_string()),
            "{err}"
        );
        // ... and with the right digest it runs.
        other.code = Some(mine);
        let digest = other.store(&ds).unwrap();
        assert_eq!(
            run_spec::<Twice>(&ds, &digest).unwrap(),
            TaskOutcome::Committed
        );
    }

    /// Regression (#8): a corrupted join input fails the join with an ordinary error that
    /// names the input and the artifact, not a "panicked at flowlib/src/..." message. The
    /// input's small value is held inline in its commit record: the damage is there.
    #[test]
    fn a_corrupted_join_input_fails_the_join_with_an_ordinary_error() {
        let dir = tempfile::tempdir().unwrap();
        let ds = Datastore::open(dir.path().to_str().unwrap(), OpenMode::Create).unwrap();
        let opts = crate::RunOptions::default().with_param("n", "4");
        let run = crate::run::<Twice>(&ds, &opts).unwrap().run_id;
        let a = ds.successful_task("Twice", &run, "double/2").unwrap();
        let m = a.manifest.unwrap();
        let blob = m.artifacts["doubled"];
        assert!(m.inline_of(&blob).is_some(), "a u64 is held inline");
        let path = dir
            .path()
            .join(crate::meta::commit::commit_path("Twice", &a.source));
        let text = std::fs::read_to_string(&path).unwrap();
        let key = format!("\"{}\":\"", blob.digest);
        let at = text.find(&key).expect("the inline bytes are in the record") + key.len();
        let mut bytes = text.into_bytes();
        bytes[at + 2] = if bytes[at + 2] == b'A' { b'B' } else { b'A' };
        std::fs::write(&path, bytes).unwrap();
        let ds = Datastore::open(dir.path().to_str().unwrap(), OpenMode::Existing).unwrap();
        let msg = match run_task::<Twice>(&ds, &run, "sum", 1) {
            Ok(TaskOutcome::Failed(msg)) => msg,
            Err(e) => crate::error::chain(&e),
            Ok(other) => panic!("the join must fail, not {other:?}"),
        };
        assert!(msg.contains("double/2"), "{msg}");
        assert!(!msg.contains("panicked"), "{msg}");
    }

    #[derive(FlowState, Default, Serialize, Deserialize)]
    struct Other {
        x: u8,
    }

    #[flow]
    impl Other {
        #[step(start, next = end)]
        fn start(&mut self) -> Result<()> {
            Ok(())
        }
        #[step(end)]
        fn end(&mut self) -> Result<()> {
            Ok(())
        }
    }
}
