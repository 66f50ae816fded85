//! The executor seam: where a task attempt runs. The scheduler decides *what* runs and
//! when; an executor decides *where* and reports back. Every executor runs a task through
//! the same function (`task::execute`), in-process or through `<exe> step --spec <digest>`,
//! and the datastore's commit record, never the engine's status, says whether it is done.
//!
//! A new executor is one file here implementing [`Executor`], plus one line in [`create`];
//! a new batch engine implements [`remote::Engine`] and gets submission, polling, fencing and
//! failure decoding from [`remote::Remote`].

#[cfg(feature = "batch")]
pub(crate) mod batch;
pub(crate) mod child;
pub(crate) mod entry;
#[cfg(feature = "kubernetes")]
pub(crate) mod kubernetes;
pub(crate) mod limit;
pub(crate) mod package;
mod processes;
pub(crate) mod remote;
mod routed;
pub(crate) mod slurm;
mod threads;

use std::sync::Arc;
use std::time::Duration;

use crate::error::Result;
use crate::flow::graph::TaskKey;
use crate::flow::{Flow, Graph, Resources};

use crate::task::{Outcome, Resolved, RunContext, TaskSpec};

pub use routed::{Placement, With};
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

/// When an attempt began to run, as its executor knows it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Started {
    /// When it was dispatched (it starts at once).
    AtDispatch,
    /// Not yet: it waits in the engine's queue.
    Pending,
    /// At this instant.
    At(std::time::Instant),
}

/// Runs task attempts somewhere and reports when they finish.
pub(crate) trait Executor {
    /// Short name, as `--with` takes it.
    fn name(&self) -> &'static str;

    /// Refuse, before the run writes anything, steps this executor could never place;
    /// `steps` are the indices of the steps it will run.
    fn check(&self, graph: &Graph, steps: &[usize]) -> Result<()>;

    /// How many tasks may run at once, at most (bounds how long a big task may be passed over).
    fn slots(&self) -> usize;

    /// Whether a task of step `step` asking for `resources` could start now.
    fn has_room(&self, step: usize, resources: &Resources) -> bool;

    /// Whether a task of step `step` runs from its spec alone, in another process or on
    /// another machine that reads its inputs by the pins in the spec. An executor in this
    /// process passes the inputs the driver holds (`Dispatch::resolved`) along instead, and
    /// is handed a spec without them: a join over 100,000 inputs is not pinned twice.
    fn reads_spec(&self, _step: usize) -> bool {
        true
    }

    /// Get ready to run tasks of a run in `ds`, before the run record is written (a remote
    /// executor stores the code package here). An error stops the run from starting.
    fn begin(&mut self, _ds: &crate::store::Datastore) -> Result<()> {
        Ok(())
    }

    /// When attempt `attempt` of `key` began to run: its timeout counts from then, not
    /// from when it was handed over (a batch job may wait in the queue first).
    fn started(&self, _key: &TaskKey, _attempt: u32) -> Started {
        Started::AtDispatch
    }

    /// The run is cancelled: stop every running attempt (kill processes, cancel jobs).
    /// Their results, if they still arrive, are recorded as cancelled.
    fn cancel(&mut self) {}

    /// Start the attempt if there is capacity for it now; hand it back if not.
    fn try_start(&mut self, task: Dispatch) -> Result<(), Box<Dispatch>>;

    /// Wait up to `timeout` for attempts to finish.
    fn wait(&mut self, timeout: Duration) -> Vec<Finished>;

    /// The scheduler fenced this attempt (it timed out): stop it if possible and free its
    /// capacity. Its result, if it still arrives, is discarded.
    fn abandon(&mut self, key: &TaskKey, attempt: u32);

    /// Messages for the run's progress output since the last call (a damaged cache
    /// entry ignored, a publish that failed): warnings, not failures.
    fn notes(&mut self) -> Vec<String> {
        Vec::new()
    }
}

/// The executor for a run of `F` with `limits`, placing steps as `with` says (every step
/// on threads when it is empty).
pub(crate) fn create<F: Flow>(with: &With, limits: &Limits) -> Result<Box<dyn Executor>> {
    let placement = with.placement(F::graph())?;
    let mut parts: Vec<Box<dyn Executor>> = Vec::new();
    for name in placement.executors() {
        parts.push(create_one::<F>(name, limits, with)?);
    }
    if parts.len() == 1 {
        return Ok(parts.pop().expect("one"));
    }
    Ok(Box::new(routed::Routed::new(placement, parts)))
}

/// The executors `--with` accepts.
pub const EXECUTORS: &[&str] = &["threads", "processes", "slurm", "kubernetes", "batch"];

/// Executors behind a cargo feature: `(name, feature, compiled in)`.
const FEATURE_EXECUTORS: &[(&str, &str, bool)] = &[
    ("kubernetes", "kubernetes", cfg!(feature = "kubernetes")),
    ("batch", "batch", cfg!(feature = "batch")),
];

/// For `--with NAME` whose cargo feature this build left out: one line naming the feature
/// (said when `--with` is parsed, before anything else happens).
pub(crate) fn compiled_out(name: &str) -> Option<String> {
    FEATURE_EXECUTORS
        .iter()
        .find(|(n, _, compiled)| *n == name && !compiled)
        .map(|(n, f, _)| {
            format!(
                "--with {n}: this program was built without flowlib's `{f}` feature; add `features = [\"{f}\"]` to its flowlib dependency"
            )
        })
}

fn create_one<F: Flow>(name: &str, limits: &Limits, with: &With) -> Result<Box<dyn Executor>> {
    match name {
        "threads" => Ok(Box::new(threads::Threads::<F>::new(limits.clone()))),
        "processes" => Ok(Box::new(processes::Processes::new(limits.clone(), F::NAME))),
        "slurm" => Ok(Box::new(remote::Remote::new(
            slurm::Slurm::new()?,
            F::NAME,
            F::graph(),
            with.remote.clone(),
        ))),
        #[cfg(feature = "kubernetes")]
        "kubernetes" => Ok(Box::new(remote::Remote::new(
            kubernetes::Kubernetes::new()?,
            F::NAME,
            F::graph(),
            with.remote.clone(),
        ))),
        #[cfg(feature = "batch")]
        "batch" => Ok(Box::new(remote::Remote::new(
            batch::Batch::new()?,
            F::NAME,
            F::graph(),
            with.remote.clone(),
        ))),
        other if compiled_out(other).is_some() => Err(crate::error::Error::invalid(
            compiled_out(other).expect("checked"),
        )),
        other => Err(crate::error::Error::invalid(format!(
            "unknown executor `{other}`; available: {}",
            EXECUTORS.join(", ")
        ))),
    }
}

/// CPU, memory and GPU capacity of an executor that runs tasks on this machine.
#[derive(Debug)]
pub(crate) struct Capacity {
    cpu: usize,
    memory: u64,
    gpu: u32,
}

/// Capacity one running attempt holds.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Held {
    cpu: usize,
    memory: u64,
    gpu: u32,
}

impl Capacity {
    pub(crate) fn new(l: &Limits) -> Capacity {
        Capacity {
            cpu: l.max_workers,
            memory: l.max_memory,
            gpu: l.gpus,
        }
    }

    pub(crate) fn fits(&self, r: &Resources) -> bool {
        r.cpu as usize <= self.cpu && r.memory.unwrap_or(0) <= self.memory && r.gpu <= self.gpu
    }

    pub(crate) fn take(&mut self, r: &Resources) -> Option<Held> {
        if !self.fits(r) {
            return None;
        }
        let h = Held {
            cpu: r.cpu as usize,
            memory: r.memory.unwrap_or(0),
            gpu: r.gpu,
        };
        self.cpu -= h.cpu;
        self.memory -= h.memory;
        self.gpu -= h.gpu;
        Some(h)
    }

    pub(crate) fn give(&mut self, h: Held) {
        self.cpu += h.cpu;
        self.memory += h.memory;
        self.gpu += h.gpu;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `--with NAME` of an executor this build left out says which feature to enable, in
    /// one line; one it has is not refused for that.
    #[test]
    fn a_compiled_out_executor_is_named_with_its_feature() {
        for (name, feature, compiled) in FEATURE_EXECUTORS {
            assert!(EXECUTORS.contains(name));
            let err = With::parse(&[name.to_string()])
                .err()
                .map(|e| e.to_string());
            if *compiled {
                assert!(compiled_out(name).is_none());
                assert!(err.is_none(), "{err:?}");
            } else {
                let err = err.expect("refused");
                assert!(
                    err.contains(&format!("built without flowlib's `{feature}` feature")),
                    "{err}"
                );
                assert_eq!(err.lines().count(), 1, "{err}");
            }
        }
        assert!(compiled_out("threads").is_none());
    }
}
