//! The cross-run cache in front of any executor: a task of a `#[cache]` step is looked up
//! by its key before it is dispatched; a hit is taken by reference and never reaches the
//! executor, a miss runs there and is published once it committed.
//!
//! Hits taken in one driver turn are recorded in one create-only batch (`tasks/__cached/`)
//! before the scheduler hears of them, so no successor of a hit starts before the hit is
//! on record; a driver killed in between leaves nothing any reader believes, and the
//! resumed run looks the same keys up again.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use crate::error::{chain, Result};
use crate::exec::{Dispatch, Executor, Finished, Started};
use crate::flow::graph::TaskKey;
use crate::flow::{Graph, Resources};
use crate::meta::cache::{publish, record_hits, CacheKey, CachedTask};
use crate::meta::{AttemptStatus, Committed, TaskRef};
use crate::store::Datastore;
use crate::task::cache::Probe;
use crate::task::{Outcome, Resolved, RunContext, TaskSpec};

/// How a run uses the cache (`run --no-cache`, `run --refresh STEP`).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct CacheMode {
    /// Neither look up nor publish (`--no-cache`).
    pub disabled: bool,
    /// Steps recomputed and republished even when their key is in the cache (`--refresh`).
    pub refresh: Vec<String>,
}

/// The probe of one flow's tasks (`task::cache::probe::<F>`).
pub(crate) type ProbeFn = fn(&RunContext, &TaskSpec, &Resolved, bool) -> Result<Probe>;

/// A hit waiting to be recorded and reported.
struct Hit {
    key: TaskKey,
    attempt: u32,
    committed: Arc<Committed>,
    from: TaskRef,
    record: CachedTask,
}

/// A miss being computed: published under `key` once it commits.
struct Miss {
    key: CacheKey,
    run: Arc<RunContext>,
    /// The entry there does not verify: replace it.
    replace: bool,
}

/// The cache stage in front of `inner`.
pub(crate) struct CachedExecutor {
    inner: Box<dyn Executor>,
    graph: &'static Graph,
    probe: ProbeFn,
    refresh: Vec<bool>,
    ds: Datastore,
    flow: &'static str,
    run: String,
    pending: Vec<Hit>,
    misses: HashMap<(TaskKey, u32), Miss>,
    batches: u64,
    notes: Vec<String>,
}

impl CachedExecutor {
    /// The cache stage of run `run` of `flow` in `ds`, probing with `probe`; `refresh` are
    /// step indices recomputed regardless of the cache.
    pub(crate) fn new(
        inner: Box<dyn Executor>,
        graph: &'static Graph,
        probe: ProbeFn,
        refresh: Vec<bool>,
        ds: Datastore,
        flow: &'static str,
        run: String,
    ) -> Self {
        CachedExecutor {
            inner,
            graph,
            probe,
            refresh,
            ds,
            flow,
            run,
            pending: Vec::new(),
            misses: HashMap::new(),
            batches: 0,
            notes: Vec::new(),
        }
    }

    /// Record the pending hits in one batch and report them (or, when the batch cannot be
    /// written, report them as attempts that could not be recorded: they are retried).
    fn flush_hits(&mut self) -> Vec<Finished> {
        if self.pending.is_empty() {
            return Vec::new();
        }
        let hits = std::mem::take(&mut self.pending);
        let records = hits.iter().map(|h| h.record.clone()).collect();
        let seq = self.batches;
        self.batches += 1;
        match record_hits(&self.ds, self.flow, &self.run, seq, records) {
            Ok(()) => hits
                .into_iter()
                .map(|h| Finished {
                    key: h.key,
                    attempt: h.attempt,
                    outcome: Ok(Outcome::Cached {
                        committed: h.committed,
                        from: h.from,
                    }),
                })
                .collect(),
            Err(e) => {
                let msg = format!("cannot record cache hits: {}", chain(&e));
                hits.into_iter()
                    .map(|h| Finished {
                        key: h.key,
                        attempt: h.attempt,
                        outcome: Err(crate::error::Error::internal(msg.clone())),
                    })
                    .collect()
            }
        }
    }

    /// Publish the misses among `done` that committed.
    fn publish_done(&mut self, done: &[Finished]) {
        for f in done {
            let Some(miss) = self.misses.remove(&(f.key.clone(), f.attempt)) else {
                continue;
            };
            let Ok(Outcome::Committed(c)) = &f.outcome else {
                continue;
            };
            let (Some(task), Some(pin)) = (&c.task, c.manifest) else {
                continue;
            };
            if c.status != AttemptStatus::Ok {
                continue;
            }
            if let Err(e) = publish(
                &miss.run.ds,
                self.flow,
                &miss.key,
                &task.to_ref(),
                pin,
                miss.replace,
            ) {
                self.notes.push(format!(
                    "{}: could not publish it to the cache ({}); later runs will compute it again",
                    task.task_id(),
                    chain(&e)
                ));
            }
        }
    }
}

impl Executor for CachedExecutor {
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

    fn begin(&mut self, ds: &Datastore) -> Result<()> {
        self.inner.begin(ds)
    }

    fn started(&self, key: &TaskKey, attempt: u32) -> Started {
        self.inner.started(key, attempt)
    }

    fn cancel(&mut self) {
        self.inner.cancel()
    }

    fn try_start(&mut self, d: Dispatch) -> Result<(), Box<Dispatch>> {
        let step = &self.graph.steps()[d.key.0];
        if step.cache.is_none() {
            return self.inner.try_start(d);
        }
        let refresh = self.refresh.get(step.index).copied().unwrap_or(false);
        let task = d.spec.task_id();
        let (key, replace) = match (self.probe)(&d.run, &d.spec, &d.resolved, refresh) {
            Ok(Probe::Hit {
                committed,
                hit,
                from,
            }) => {
                self.pending.push(Hit {
                    key: d.key,
                    attempt: d.spec.task.attempt,
                    committed,
                    from,
                    record: hit,
                });
                return Ok(());
            }
            Ok(Probe::Miss(key)) => (key, false),
            Ok(Probe::Invalid(key, why)) => {
                self.notes.push(format!(
                    "{task}: ignoring a cache entry that does not verify ({why}); computing it again"
                ));
                (key, true)
            }
            Err(e) => {
                self.notes.push(format!(
                    "{task}: cannot look it up in the cache ({}); computing it",
                    chain(&e)
                ));
                return self.inner.try_start(d);
            }
        };
        let id = (d.key.clone(), d.spec.task.attempt);
        let run = d.run.clone();
        match self.inner.try_start(d) {
            Ok(()) => {
                self.misses.insert(id, Miss { key, run, replace });
                Ok(())
            }
            Err(d) => Err(d),
        }
    }

    fn wait(&mut self, timeout: Duration) -> Vec<Finished> {
        let mut out = self.flush_hits();
        let timeout = if out.is_empty() {
            timeout
        } else {
            Duration::ZERO
        };
        let done = self.inner.wait(timeout);
        self.publish_done(&done);
        out.extend(done);
        out
    }

    fn abandon(&mut self, key: &TaskKey, attempt: u32) {
        self.misses.remove(&(key.clone(), attempt));
        self.inner.abandon(key, attempt)
    }

    fn notes(&mut self) -> Vec<String> {
        let mut n = std::mem::take(&mut self.notes);
        n.extend(self.inner.notes());
        n
    }
}

impl std::fmt::Debug for CachedExecutor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CachedExecutor")
            .field("inner", &self.inner.name())
            .field("pending", &self.pending.len())
            .field("misses", &self.misses.len())
            .finish_non_exhaustive()
    }
}
