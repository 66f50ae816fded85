//! Runs and steps as `tracing` spans. The run's span is entered around the driver; each
//! step gets a span, a child of the run's, when its first task is dispatched, and it is
//! current while the executor starts that step's attempts, so an executor that runs an
//! attempt in this process (threads) nests the attempt's span (`task::execute`) under it.
//! Attempts in other processes (processes, Slurm, Kubernetes, AWS Batch) open their own
//! `flowlib.task` span there, with the same run, flow, step, task and attempt fields.

use std::collections::HashMap;
use std::time::Duration;

use tracing::Span;

use crate::error::Result;
use crate::exec::{Dispatch, Executor, Finished, Started};
use crate::flow::graph::TaskKey;
use crate::flow::{Graph, Resources};

/// The span of a run: `flowlib.run` with `run_id` and `flow`; `status` is recorded at its end.
pub(crate) fn run_span(flow: &str, run_id: &str) -> Span {
    tracing::info_span!(
        "flowlib.run",
        run_id = run_id,
        flow = flow,
        status = tracing::field::Empty
    )
}

/// An executor whose attempts start inside their step's span.
pub(crate) struct Traced<'a> {
    inner: &'a mut dyn Executor,
    run: Span,
    run_id: String,
    flow: &'static str,
    steps: HashMap<String, Span>,
}

impl<'a> Traced<'a> {
    pub(crate) fn new(
        inner: &'a mut dyn Executor,
        run: Span,
        flow: &'static str,
        run_id: &str,
    ) -> Self {
        Traced {
            inner,
            run,
            run_id: run_id.to_string(),
            flow,
            steps: HashMap::new(),
        }
    }

    fn step_span(&mut self, step: &str) -> Span {
        let (run, run_id, flow) = (&self.run, &self.run_id, self.flow);
        self.steps
            .entry(step.to_string())
            .or_insert_with(|| {
                tracing::info_span!(parent: run, "flowlib.step", run_id = run_id.as_str(), flow = flow, step = step)
            })
            .clone()
    }
}

impl Executor for Traced<'_> {
    fn name(&self) -> &'static str {
        self.inner.name()
    }
    fn check(&self, graph: &Graph, steps: &[usize]) -> Result<()> {
        self.inner.check(graph, steps)
    }
    fn slots(&self) -> usize {
        self.inner.slots()
    }
    fn has_room(&self, step: usize, resources: &Resources) -> bool {
        self.inner.has_room(step, resources)
    }
    fn reads_spec(&self, step: usize) -> bool {
        self.inner.reads_spec(step)
    }
    fn begin(&mut self, ds: &crate::store::Datastore) -> Result<()> {
        self.inner.begin(ds)
    }
    fn started(&self, key: &TaskKey, attempt: u32) -> Started {
        self.inner.started(key, attempt)
    }
    fn cancel(&mut self) {
        self.inner.cancel()
    }
    fn try_start(&mut self, task: Dispatch) -> std::result::Result<(), Box<Dispatch>> {
        let span = self.step_span(&task.spec.task.step);
        span.in_scope(|| self.inner.try_start(task))
    }
    fn wait(&mut self, timeout: Duration) -> Vec<Finished> {
        self.inner.wait(timeout)
    }
    fn abandon(&mut self, key: &TaskKey, attempt: u32) {
        self.inner.abandon(key, attempt)
    }
    fn notes(&mut self) -> Vec<String> {
        self.inner.notes()
    }
}
