//! The cross-run cache in front of any executor: a task of a `#[cache]` step is looked up
//! by its key before it is dispatched; a hit is taken by reference and never reaches the
//! executor, a miss runs there and is published once it committed.
//!
//! Hits taken in one driver turn are recorded in one create-only batch (`tasks/__cached/`)
//! before the scheduler hears of them, so no successor of a hit starts before the hit is
//! on record; a driver killed in between leaves nothing any reader believes, and the
//! resumed run looks the same keys up again.
//!
//! Publishing is off the driver's path: a thread of its own writes the entries of
//! committed misses (one read of the manifest, one create-only write each), and the run
//! waits for it only when it ends. A driver killed before an entry is written loses only
//! that entry: a later run computes the task again.

use std::collections::HashMap;
use std::sync::{mpsc, Arc, Mutex};
use std::time::Duration;

use crate::error::{chain, Result};
use crate::exec::{Dispatch, Executor, Finished, Started};
use crate::flow::graph::TaskKey;
use crate::flow::{Graph, Resources};
use crate::meta::cache::{publish, record_hits, CacheKey, CachedTask};
use crate::meta::{AttemptStatus, Committed, TaskRef};
use crate::store::{BlobRef, Datastore};
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
    /// Tasks of cached steps taken from the scheduler, not probed yet.
    queued: Vec<Dispatch>,
    /// Probed misses waiting for room in the executor, with the key to publish (none when
    /// the key could not be computed).
    waiting: std::collections::VecDeque<(Dispatch, Option<(CacheKey, bool)>)>,
    cancelled: bool,
    pending: Vec<Hit>,
    /// Every attempt taken and not yet started in the executor or reported (queued,
    /// waiting, or a hit not yet recorded): the scheduler asks about each running task
    /// every turn, so this is a set, not a scan of the queues.
    held: std::collections::HashSet<(TaskKey, u32)>,
    misses: HashMap<(TaskKey, u32), Miss>,
    batches: u64,
    notes: Vec<String>,
    publisher: Publisher,
}

/// An entry to write.
struct Publish {
    ds: Datastore,
    key: CacheKey,
    task: TaskRef,
    manifest: BlobRef,
    replace: bool,
}

/// The thread that writes cache entries, and the warnings it had.
struct Publisher {
    tx: Option<mpsc::Sender<Publish>>,
    thread: Option<std::thread::JoinHandle<()>>,
    notes: Arc<Mutex<Vec<String>>>,
}

impl Publisher {
    fn start(flow: &'static str) -> Publisher {
        let (tx, rx) = mpsc::channel::<Publish>();
        let notes: Arc<Mutex<Vec<String>>> = Arc::default();
        let out = notes.clone();
        let thread = std::thread::Builder::new()
            .name("flowlib-cache-publish".into())
            .spawn(move || {
                for p in rx {
                    if let Err(e) = publish(&p.ds, flow, &p.key, &p.task, p.manifest, p.replace) {
                        out.lock().unwrap_or_else(|e| e.into_inner()).push(format!(
                            "{}: could not publish it to the cache ({}); later runs will compute it again",
                            p.task.task_id(),
                            chain(&e)
                        ));
                    }
                }
            })
            .ok();
        Publisher {
            tx: thread.as_ref().map(|_| tx),
            thread,
            notes,
        }
    }

    fn send(&self, p: Publish) -> Option<Publish> {
        match &self.tx {
            Some(tx) => tx.send(p).err().map(|e| e.0),
            None => Some(p),
        }
    }

    fn notes(&self) -> Vec<String> {
        std::mem::take(&mut *self.notes.lock().unwrap_or_else(|e| e.into_inner()))
    }
}

impl Drop for Publisher {
    /// The entries of the run's misses are written before the run returns.
    fn drop(&mut self) {
        self.tx = None;
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
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
            queued: Vec::new(),
            waiting: std::collections::VecDeque::new(),
            cancelled: false,
            pending: Vec::new(),
            held: std::collections::HashSet::new(),
            misses: HashMap::new(),
            batches: 0,
            notes: Vec::new(),
            publisher: Publisher::start(flow),
        }
    }

    /// Record the pending hits in one batch and report them (or, when the batch cannot be
    /// written, report them as attempts that could not be recorded: they are retried).
    fn flush_hits(&mut self) -> Vec<Finished> {
        if self.pending.is_empty() {
            return Vec::new();
        }
        let hits = std::mem::take(&mut self.pending);
        for h in &hits {
            self.held.remove(&(h.key.clone(), h.attempt));
        }
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
            let job = Publish {
                ds: miss.run.ds.clone(),
                key: miss.key,
                task: task.to_ref(),
                manifest: pin,
                replace: miss.replace,
            };
            // Without the thread (it could not be started), publish here.
            if let Some(p) = self.publisher.send(job) {
                if let Err(e) = publish(&p.ds, self.flow, &p.key, &p.task, p.manifest, p.replace) {
                    self.notes.push(format!(
                        "{}: could not publish it to the cache ({}); later runs will compute it again",
                        p.task.task_id(),
                        chain(&e)
                    ));
                }
            }
        }
    }
}

impl CachedExecutor {
    fn is_ours(&self, key: &TaskKey, attempt: u32) -> bool {
        self.held.contains(&(key.clone(), attempt))
    }

    /// Probe every queued task (in parallel): hits wait to be recorded, misses wait for
    /// room in the executor.
    fn probe_queued(&mut self) {
        if self.queued.is_empty() {
            return;
        }
        let queued: Vec<Dispatch> = self.queued.drain(..).collect();
        let (probe, refresh, graph) = (self.probe, &self.refresh, self.graph);
        let one = |d: &Dispatch| {
            let step = &graph.steps()[d.key.0];
            let refresh = refresh.get(step.index).copied().unwrap_or(false);
            probe(&d.run, &d.spec, &d.resolved, refresh)
        };
        // Probes are I/O (one read each): many at once, on the store's I/O pool.
        use rayon::prelude::*;
        let results: Vec<Result<Probe>> = match crate::store::io_pool() {
            Some(pool) if queued.len() > 1 => pool.install(|| queued.par_iter().map(one).collect()),
            _ => queued.iter().map(one).collect(),
        };
        for (d, r) in queued.into_iter().zip(results) {
            let task = d.spec.task_id();
            match r {
                Ok(Probe::Hit {
                    committed,
                    hit,
                    from,
                }) => self.pending.push(Hit {
                    key: d.key,
                    attempt: d.spec.task.attempt,
                    committed,
                    from,
                    record: *hit,
                }),
                Ok(Probe::Miss(key)) => self.waiting.push_back((d, Some((key, false)))),
                Ok(Probe::Invalid(key, why)) => {
                    self.notes.push(format!(
                        "{task}: ignoring a cache entry that does not verify ({why}); computing it again"
                    ));
                    self.waiting.push_back((d, Some((key, true))));
                }
                Err(e) => {
                    self.notes.push(format!(
                        "{task}: cannot look it up in the cache ({}); computing it",
                        chain(&e)
                    ));
                    self.waiting.push_back((d, None));
                }
            }
        }
    }

    /// Hand waiting misses to the executor, in order, as far as it has room: past 64
    /// that do not fit, the rest wait for the next turn (the scan stays short however
    /// many wait).
    fn place_waiting(&mut self) {
        const WINDOW: usize = 64;
        let mut passed = std::collections::VecDeque::new();
        while passed.len() < WINDOW {
            let Some((d, key)) = self.waiting.pop_front() else {
                break;
            };
            let step = &self.graph.steps()[d.key.0];
            if !self.inner.has_room(step.index, &step.resources) {
                passed.push_back((d, key));
                continue;
            }
            let id = (d.key.clone(), d.spec.task.attempt);
            let run = d.run.clone();
            match self.inner.try_start(d) {
                Ok(()) => {
                    self.held.remove(&id);
                    if let Some((key, replace)) = key {
                        self.misses.insert(id, Miss { key, run, replace });
                    }
                }
                Err(d) => passed.push_back((*d, key)),
            }
        }
        while let Some(p) = passed.pop_back() {
            self.waiting.push_front(p);
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

    /// A cached step's tasks are always taken (they are probed first, and the misses wait
    /// here for room in the executor), so a whole foreach is probed at once.
    fn has_room(&self, step: usize, resources: &Resources) -> bool {
        self.graph.steps()[step].cache.is_some() || self.inner.has_room(step, resources)
    }

    fn reads_spec(&self, step: usize) -> bool {
        self.inner.reads_spec(step)
    }

    fn begin(&mut self, ds: &Datastore) -> Result<()> {
        self.inner.begin(ds)
    }

    /// A task being probed or waiting for room has not started: its timeout does not run.
    fn started(&self, key: &TaskKey, attempt: u32) -> Started {
        if self.is_ours(key, attempt) {
            return Started::Pending;
        }
        self.inner.started(key, attempt)
    }

    fn cancel(&mut self) {
        self.cancelled = true;
        self.inner.cancel()
    }

    fn try_start(&mut self, d: Dispatch) -> Result<(), Box<Dispatch>> {
        if self.graph.steps()[d.key.0].cache.is_none() {
            return self.inner.try_start(d);
        }
        self.held.insert((d.key.clone(), d.spec.task.attempt));
        self.queued.push(d);
        Ok(())
    }

    fn wait(&mut self, timeout: Duration) -> Vec<Finished> {
        if self.cancelled {
            // Tasks that never started end here, as cancelled.
            let never: Vec<Dispatch> = self
                .queued
                .drain(..)
                .chain(self.waiting.drain(..).map(|(d, _)| d))
                .collect();
            for d in &never {
                self.held.remove(&(d.key.clone(), d.spec.task.attempt));
            }
            let mut out: Vec<Finished> = never
                .into_iter()
                .map(|d| Finished {
                    key: d.key,
                    attempt: d.spec.task.attempt,
                    outcome: Ok(Outcome::Lost {
                        error: "the run was cancelled before the task started".into(),
                        platform: false,
                    }),
                })
                .collect();
            out.extend(self.flush_hits());
            let done = self.inner.wait(if out.is_empty() {
                timeout
            } else {
                Duration::ZERO
            });
            self.publish_done(&done);
            out.extend(done);
            return out;
        }
        self.probe_queued();
        self.place_waiting();
        let mut out = self.flush_hits();
        let timeout = if out.is_empty() {
            timeout
        } else {
            Duration::ZERO
        };
        let done = self.inner.wait(timeout);
        self.publish_done(&done);
        out.extend(done);
        if !self.waiting.is_empty() {
            self.place_waiting();
        }
        out
    }

    fn abandon(&mut self, key: &TaskKey, attempt: u32) {
        let same = |d: &Dispatch| !(d.key == *key && d.spec.task.attempt == attempt);
        self.queued.retain(same);
        self.waiting.retain(|(d, _)| same(d));
        self.held.remove(&(key.clone(), attempt));
        self.misses.remove(&(key.clone(), attempt));
        self.inner.abandon(key, attempt)
    }

    fn notes(&mut self) -> Vec<String> {
        let mut n = std::mem::take(&mut self.notes);
        n.extend(self.publisher.notes());
        n.extend(self.inner.notes());
        n
    }
}

impl std::fmt::Debug for CachedExecutor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CachedExecutor")
            .field("inner", &self.inner.name())
            .field("queued", &self.queued.len())
            .field("waiting", &self.waiting.len())
            .field("pending", &self.pending.len())
            .field("misses", &self.misses.len())
            .finish_non_exhaustive()
    }
}
