//! The executor seam: where a task attempt runs. The scheduler decides *what* runs and
//! when; an executor decides *where* and reports back. Every executor runs a task through
//! the same function (`task::execute`), in-process or through `<exe> step --spec <digest>`,
//! and the datastore's commit record, never the engine's status, says whether it is done.
//!
//! A new executor is one file here implementing [`Executor`], plus one line in [`create`].

mod threads;

use std::sync::Arc;
use std::time::Duration;

use crate::error::Result;
use crate::flow::graph::TaskKey;
use crate::flow::{Flow, Graph, Resources};
use crate::task::{Outcome, Resolved, RunContext, TaskSpec};

pub use threads::{cpu_count, gpu_count, total_memory, Limits};

/// A task attempt handed to an executor.
#[derive(Debug)]
pub(crate) struct Dispatch {
    /// The run it belongs to (datastore, parameters, per-process caches).
    pub(crate) run: Arc<RunContext>,
    /// Which task (step index, foreach index path).
    pub(crate) key: TaskKey,
    /// Everything the attempt needs, serializable.
    pub(crate) spec: TaskSpec,
    /// Its inputs, already read: an executor in this process passes them along, a remote
    /// one drops them and the task reads them by the digests pinned in `spec`.
    pub(crate) resolved: Resolved,
}

/// A finished attempt, as an executor reports it.
#[derive(Debug)]
pub(crate) struct Finished {
    pub(crate) key: TaskKey,
    pub(crate) attempt: u32,
    /// What the attempt committed, or why it could not record itself.
    pub(crate) outcome: Result<Outcome>,
}

/// Runs task attempts somewhere and reports when they finish.
pub(crate) trait Executor {
    /// Short name, as `--with` takes it.
    fn name(&self) -> &'static str;

    /// Refuse, before the run writes anything, steps this executor could never place.
    fn check(&self, graph: &Graph) -> Result<()>;

    /// How many tasks may run at once, at most (bounds how long a big task may be passed over).
    fn slots(&self) -> usize;

    /// Whether a task asking for `resources` could start now.
    fn has_room(&self, resources: &Resources) -> bool;

    /// Start the attempt if there is capacity for it now; hand it back if not.
    fn try_start(&mut self, task: Dispatch) -> Result<(), Box<Dispatch>>;

    /// Wait up to `timeout` for attempts to finish.
    fn wait(&mut self, timeout: Duration) -> Vec<Finished>;

    /// The scheduler fenced this attempt (it timed out): stop it if possible and free its
    /// capacity. Its result, if it still arrives, is discarded.
    fn abandon(&mut self, key: &TaskKey, attempt: u32);
}

/// The executor named `name` for a run of `F` with `limits`.
pub(crate) fn create<F: Flow>(name: &str, limits: &Limits) -> Result<Box<dyn Executor>> {
    match name {
        "threads" => Ok(Box::new(threads::Threads::<F>::new(limits.clone()))),
        other => Err(crate::error::Error::invalid(format!(
            "unknown executor `{other}`; available: threads"
        ))),
    }
}
