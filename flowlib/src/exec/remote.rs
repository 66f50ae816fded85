//! What every batch engine executor shares (Slurm, Kubernetes, AWS Batch): buffering ready
//! tasks and submitting them once per driver turn, one **array** per step where the engine
//! has arrays; one batched status request per poll with backoff; the commit record as the
//! truth, the engine's own account only explaining a job that ended without one; a
//! `--pending-timeout` for jobs that never start; a timeout counted from when a job is
//! seen running; cancellation and fencing.
//!
//! An engine is the part that differs: [`Engine`] submits a group, reports states, explains
//! an end and cancels. [`Remote`] turns an engine into an [`Executor`].

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::fmt;
use std::time::{Duration, Instant};

use crate::error::{chain, Result};
use crate::exec::child::Ended;
use crate::exec::package::{self, Package};
use crate::exec::processes::{committed_outcome, with_code};
use crate::exec::{Dispatch, Executor, Finished, Started};
use crate::flow::graph::TaskKey;
use crate::flow::{Graph, Resources, Step};
use crate::meta::commit::record_lost;
use crate::meta::logs::ExitRecord;
use crate::meta::TaskRef;
use crate::store::{Datastore, Digest};
use crate::task::Outcome;

/// Options every remote executor takes from the command line.
#[derive(Clone, Debug, Default)]
pub(crate) struct RemoteConfig {
    /// A task whose job is still pending after this long fails ("never started").
    pub(crate) pending_timeout: Option<Duration>,
    /// At most this many tasks of an array at once (`--max-workers` when given).
    pub(crate) max_parallel: Option<usize>,
    /// Say on stderr what was submitted (job ids), unless the run is quiet.
    pub(crate) announce: bool,
}

/// One group of tasks of one step (same attempt number), submitted together: as one array
/// job when there is more than one and the engine has arrays.
#[derive(Debug)]
pub(crate) struct Submission<'a> {
    pub(crate) flow: &'static str,
    pub(crate) run: &'a str,
    pub(crate) step: &'static Step,
    pub(crate) ds: &'a Datastore,
    pub(crate) package: &'a Package,
    /// The stored task spec of each task, in array index order.
    pub(crate) specs: &'a [Digest],
    /// The task attempts, in the same order (engines name jobs after them).
    #[allow(dead_code)] // read by the cloud engines, which are behind features
    pub(crate) tasks: &'a [TaskRef],
    /// Tasks of the array running at once, at most (`None`: no throttle).
    pub(crate) throttle: Option<usize>,
}

impl Submission<'_> {
    /// Whether this group goes as one array job.
    pub(crate) fn is_array(&self) -> bool {
        self.specs.len() > 1
    }
}

/// What the engine says of one submitted task.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum JobState {
    /// Waiting to start, and why (the engine's reason, e.g. `Resources`, `Unschedulable`).
    Pending(String),
    /// Running.
    Running,
    /// Over: it will not run (on) any more.
    Ended,
}

/// How a job that ended without a commit record died.
#[derive(Debug, Clone)]
pub(crate) struct Explained {
    /// One line: what happened, in the engine's terms decoded.
    pub(crate) message: String,
    /// The platform (node loss, eviction, preemption), not the task's code, is to blame:
    /// it counts against the step's platform retry budget.
    pub(crate) platform: bool,
}

/// A batch engine: what differs between Slurm, Kubernetes and AWS Batch.
pub(crate) trait Engine: Send {
    /// The handle of one submitted task (an array element or a single job).
    type Id: Clone + Ord + std::hash::Hash + fmt::Display + fmt::Debug + Send;

    /// Short name, as `--with` takes it.
    fn name(&self) -> &'static str;

    /// The engine's own words for a job id in messages (`Slurm job 12_3`).
    fn describe(&self, id: &Self::Id) -> String;

    /// Refuse, before anything is written, steps the engine could never run.
    fn check(&self, graph: &Graph, steps: &[usize]) -> Result<()>;

    /// The run's datastore and stored code package, before the run record is written: an
    /// engine refuses a datastore its jobs could not open here.
    fn begin(&mut self, ds: &Datastore, package: &Package) -> Result<()>;

    /// The largest array the engine takes (bigger groups are split).
    fn max_array(&self) -> usize;

    /// Whether groups go as arrays at all (an engine or cluster without them: one job each).
    fn arrays(&self) -> bool {
        true
    }

    /// The step's own limit on array tasks running at once (`#[slurm(max_parallel)]`).
    fn throttle(&self, _step: &Step) -> Option<usize> {
        None
    }

    /// Submit one group; one id per task, in order.
    fn submit(&mut self, s: &Submission<'_>) -> Result<Vec<Self::Id>>;

    /// The state of every listed job, in as few requests as the engine allows. A job the
    /// engine no longer knows is left out.
    fn poll(&mut self, ids: &[Self::Id]) -> Result<HashMap<Self::Id, JobState>>;

    /// The last lines the job printed, when the engine keeps them (a job that died before
    /// flowlib started in it has no log in the store).
    fn tail(&mut self, _id: &Self::Id) -> Vec<String> {
        Vec::new()
    }

    /// Why a job that ended (or vanished: `last` is its last known state) left no commit
    /// record. `memory` is the task's memory limit, for an out-of-memory message.
    fn explain(
        &mut self,
        id: &Self::Id,
        last: Option<&JobState>,
        tail: &[String],
        memory: Option<u64>,
    ) -> Explained;

    /// Cancel these jobs (best effort; an error is reported as a warning).
    fn cancel(&mut self, ids: &[Self::Id]) -> Result<()>;
}

/// Tasks in flight at once, at most.
const MAX_IN_FLIGHT: usize = 10_000;
/// Shortest and longest interval between two polls.
const POLL_MIN: Duration = Duration::from_millis(500);
const POLL_MAX: Duration = Duration::from_secs(5);
/// How long a job may be unknown to the engine right after submission (listing lag).
const UNKNOWN_GRACE: Duration = Duration::from_secs(5);

/// One submitted task.
#[derive(Debug)]
struct Tracked {
    key: TaskKey,
    task: TaskRef,
    memory: Option<u64>,
    submitted: Instant,
    pending_since: Option<Instant>,
    /// When it was first seen running (its timeout counts from then).
    running_since: Option<Instant>,
    last: Option<JobState>,
    /// Fenced (timed out) or given up: its result is not reported.
    abandoned: bool,
}

/// A batch engine as an executor.
pub(crate) struct Remote<E: Engine> {
    engine: E,
    flow: &'static str,
    graph: &'static Graph,
    cfg: RemoteConfig,
    ds: Option<Datastore>,
    package: Option<Package>,
    pending: Vec<Dispatch>,
    tracked: BTreeMap<E::Id, Tracked>,
    by_attempt: HashMap<(TaskKey, u32), E::Id>,
    in_flight: usize,
    done: VecDeque<Finished>,
    next_poll: Instant,
    poll_every: Duration,
    /// The run was cancelled: its jobs were cancelled by flowlib.
    cancelling: bool,
    /// Status requests made (benchmarks report the polling rate).
    polls: u64,
}

impl<E: Engine> fmt::Debug for Remote<E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Remote")
            .field("engine", &self.engine.name())
            .field("flow", &self.flow)
            .field("in_flight", &self.in_flight)
            .field("polls", &self.polls)
            .finish_non_exhaustive()
    }
}

impl<E: Engine> Remote<E> {
    pub(crate) fn new(
        engine: E,
        flow: &'static str,
        graph: &'static Graph,
        cfg: RemoteConfig,
    ) -> Remote<E> {
        Remote {
            engine,
            flow,
            graph,
            cfg,
            ds: None,
            package: None,
            pending: Vec::new(),
            tracked: BTreeMap::new(),
            by_attempt: HashMap::new(),
            in_flight: 0,
            done: VecDeque::new(),
            next_poll: Instant::now(),
            poll_every: POLL_MIN,
            cancelling: false,
            polls: 0,
        }
    }

    /// Submit the buffered tasks: one array per step and attempt number, one job for a
    /// lone task.
    fn submit_pending(&mut self) {
        if self.pending.is_empty() {
            return;
        }
        let mut groups: BTreeMap<(usize, u32), Vec<Dispatch>> = BTreeMap::new();
        for d in self.pending.drain(..) {
            groups
                .entry((d.key.0, d.spec.task.attempt))
                .or_default()
                .push(d);
        }
        let max = if self.engine.arrays() {
            self.engine.max_array().max(1)
        } else {
            1
        };
        for ((step, _), mut rest) in groups {
            while !rest.is_empty() {
                let take = rest.len().min(max);
                let chunk: Vec<Dispatch> = rest.drain(..take).collect();
                self.submit_group(step, chunk);
            }
        }
        self.poll_every = POLL_MIN;
        self.next_poll = Instant::now() + POLL_MIN;
    }

    fn submit_group(&mut self, step: usize, tasks: Vec<Dispatch>) {
        let ds = self.ds.clone().expect("begin() opens the store first");
        let pkg = self
            .package
            .clone()
            .expect("begin() stores the package first");
        let s = &self.graph.steps()[step];
        let mut digests = Vec::with_capacity(tasks.len());
        for d in &tasks {
            match with_code(&d.spec, &pkg).store(&ds) {
                Ok(dg) => digests.push(dg),
                Err(e) => {
                    let msg = format!("could not store the task spec: {}", chain(&e));
                    for d in tasks {
                        self.fail_unsubmitted(&d, msg.clone(), true);
                    }
                    return;
                }
            }
        }
        let run = tasks[0].spec.task.run.clone();
        let refs: Vec<TaskRef> = tasks.iter().map(|d| d.spec.task.clone()).collect();
        let throttle = self.engine.throttle(s).or(self.cfg.max_parallel);
        let sub = Submission {
            flow: self.flow,
            run: &run,
            step: s,
            ds: &ds,
            package: &pkg,
            specs: &digests,
            tasks: &refs,
            throttle,
        };
        let t0 = Instant::now();
        match self.engine.submit(&sub) {
            Ok(ids) if ids.len() == tasks.len() => {
                if self.cfg.announce {
                    let what = if sub.is_array() {
                        format!(
                            "{} tasks of `{}` as one array ({} .. {})",
                            tasks.len(),
                            s.name,
                            self.engine.describe(&ids[0]),
                            ids[ids.len() - 1]
                        )
                    } else {
                        format!(
                            "{} as {}",
                            tasks[0].spec.task_id(),
                            self.engine.describe(&ids[0])
                        )
                    };
                    eprintln!(
                        "flowlib: {}: submitted {what} ({:.0} ms)",
                        self.engine.name(),
                        t0.elapsed().as_secs_f64() * 1e3
                    );
                }
                let now = Instant::now();
                for (d, id) in tasks.into_iter().zip(ids) {
                    self.by_attempt
                        .insert((d.key.clone(), d.spec.task.attempt), id.clone());
                    self.tracked.insert(
                        id,
                        Tracked {
                            key: d.key,
                            task: d.spec.task,
                            memory: d.spec.resources.memory,
                            submitted: now,
                            pending_since: Some(now),
                            running_since: None,
                            last: None,
                            abandoned: false,
                        },
                    );
                }
            }
            Ok(ids) => {
                let msg = format!(
                    "{} returned {} job ids for {} tasks of step `{}`",
                    self.engine.name(),
                    ids.len(),
                    tasks.len(),
                    s.name
                );
                let _ = self.engine.cancel(&ids);
                for d in tasks {
                    self.fail_unsubmitted(&d, msg.clone(), true);
                }
            }
            Err(e) => {
                let msg = format!(
                    "{} refused the job of step `{}`: {}",
                    self.engine.name(),
                    s.name,
                    chain(&e)
                );
                for d in tasks {
                    self.fail_unsubmitted(&d, msg.clone(), false);
                }
            }
        }
    }

    /// A task that never reached the engine: recorded lost with why, reported.
    fn fail_unsubmitted(&mut self, d: &Dispatch, msg: String, platform: bool) {
        self.in_flight -= 1;
        if let Some(ds) = &self.ds {
            let _ = record_lost(ds, self.flow, &d.spec.task, &msg);
        }
        self.done.push_back(Finished {
            key: d.key.clone(),
            attempt: d.spec.task.attempt,
            outcome: Ok(Outcome::Lost {
                error: msg,
                platform,
            }),
        });
    }

    /// One status request over every job in flight; resolve the tasks that ended.
    fn poll(&mut self) {
        self.next_poll = Instant::now() + self.poll_every;
        let ids: Vec<E::Id> = self
            .tracked
            .iter()
            .filter(|(_, t)| !t.abandoned)
            .map(|(j, _)| j.clone())
            .collect();
        if ids.is_empty() {
            return;
        }
        self.polls += 1;
        let states = match self.engine.poll(&ids) {
            Ok(s) => s,
            Err(e) => {
                // A transient control-plane problem: try again later, say so once per poll.
                eprintln!("flowlib: warning: {}", chain(&e));
                self.poll_every = (self.poll_every.mul_f32(1.5)).min(POLL_MAX);
                self.next_poll = Instant::now() + self.poll_every;
                return;
            }
        };
        let now = Instant::now();
        let mut changed = false;
        let mut ended: Vec<E::Id> = Vec::new();
        let mut overdue: Vec<E::Id> = Vec::new();
        for (id, t) in self.tracked.iter_mut().filter(|(_, t)| !t.abandoned) {
            match states.get(id) {
                Some(st) => {
                    if t.last.as_ref() != Some(st) {
                        changed = true;
                        t.last = Some(st.clone());
                    }
                    match st {
                        JobState::Pending(_) => {
                            let since = *t.pending_since.get_or_insert(now);
                            if self
                                .cfg
                                .pending_timeout
                                .is_some_and(|limit| now.duration_since(since) > limit)
                            {
                                overdue.push(id.clone());
                            }
                        }
                        JobState::Running | JobState::Ended => {
                            t.pending_since = None;
                            t.running_since.get_or_insert(now);
                        }
                    }
                    if *st == JobState::Ended {
                        ended.push(id.clone());
                    }
                }
                // The engine no longer lists it (purged, or its control plane lost it).
                None if now.duration_since(t.submitted) > UNKNOWN_GRACE => ended.push(id.clone()),
                None => {}
            }
        }
        for id in overdue {
            self.never_started(id);
            changed = true;
        }
        for id in ended {
            self.resolve(id);
            changed = true;
        }
        self.poll_every = if changed {
            POLL_MIN
        } else {
            (self.poll_every.mul_f32(1.5)).min(POLL_MAX)
        };
        self.next_poll = now + self.poll_every;
    }

    /// A job pending past `--pending-timeout`: cancel it, fail the task with the reason.
    fn never_started(&mut self, id: E::Id) {
        let _ = self.engine.cancel(std::slice::from_ref(&id));
        let limit = self.cfg.pending_timeout.unwrap_or_default();
        let Some(t) = self.tracked.get_mut(&id) else {
            return;
        };
        t.abandoned = true;
        let reason = match &t.last {
            Some(JobState::Pending(r)) if !r.is_empty() => r.clone(),
            _ => "unknown".into(),
        };
        let msg = format!(
            "never started: {} was still pending after {} (reason: {reason}); it was cancelled (--pending-timeout)",
            self.engine.describe(&id),
            crate::flow::graph::format_ms(limit.as_millis() as u64)
        );
        let (key, task) = (t.key.clone(), t.task.clone());
        self.report_lost(&id, key, task, msg, false);
    }

    /// A job that ended: its commit record says how; without one, the engine explains.
    fn resolve(&mut self, id: E::Id) {
        let ds = self.ds.clone().expect("open");
        let Some(t) = self.tracked.get(&id) else {
            return;
        };
        let (key, task, memory, last) = (t.key.clone(), t.task.clone(), t.memory, t.last.clone());
        // The task's own output is in the store; the engine's tail is read only for a task
        // that failed or left no record (one request per such task, none per success).
        let no_tail = Ended {
            record: ExitRecord::default(),
            tail: Vec::new(),
        };
        let mut tail = Vec::new();
        match committed_outcome(&ds, self.flow, &task, &no_tail) {
            Ok(Some(Outcome::Failed(_))) => {
                tail = self.engine.tail(&id);
                let ended = Ended {
                    record: ExitRecord::default(),
                    tail: last_lines(&tail),
                };
                let o = committed_outcome(&ds, self.flow, &task, &ended);
                self.finish(
                    &id,
                    key,
                    task.attempt,
                    o.map(|o| o.unwrap_or(Outcome::Fenced)),
                );
                return;
            }
            Ok(Some(o)) => {
                self.finish(&id, key, task.attempt, Ok(o));
                return;
            }
            Ok(None) => {}
            Err(e) => {
                self.finish(&id, key, task.attempt, Err(e));
                return;
            }
        }
        if !self.cancelling {
            tail = self.engine.tail(&id);
        }
        let ended = Ended {
            record: ExitRecord::default(),
            tail: last_lines(&tail),
        };
        let Explained {
            mut message,
            platform,
        } = if self.cancelling {
            Explained {
                message: format!(
                    "the run was cancelled: its {} was cancelled",
                    self.engine.describe(&id)
                ),
                platform: false,
            }
        } else {
            let mut x = self.engine.explain(&id, last.as_ref(), &tail, memory);
            x.message = format!("{} [{}]", x.message, self.engine.describe(&id));
            x
        };
        if !ended.tail.is_empty() {
            message.push_str("; last output:\n");
            message.push_str(
                &ended
                    .tail
                    .iter()
                    .map(|l| format!("  | {l}"))
                    .collect::<Vec<_>>()
                    .join("\n"),
            );
        }
        self.report_lost(&id, key, task, message, platform);
    }

    /// Record the attempt `lost` (create-only: a commit that won the race stands) and report.
    fn report_lost(
        &mut self,
        id: &E::Id,
        key: TaskKey,
        task: TaskRef,
        msg: String,
        platform: bool,
    ) {
        let ds = self.ds.clone().expect("open");
        let outcome = match record_lost(&ds, self.flow, &task, &msg) {
            Ok(true) => Ok(Outcome::Lost {
                error: msg,
                platform,
            }),
            Ok(false) => committed_outcome(
                &ds,
                self.flow,
                &task,
                &Ended {
                    record: ExitRecord::default(),
                    tail: Vec::new(),
                },
            )
            .map(|o| o.unwrap_or(Outcome::Fenced)),
            Err(e) => Err(e),
        };
        self.finish(id, key, task.attempt, outcome);
    }

    fn finish(&mut self, id: &E::Id, key: TaskKey, attempt: u32, outcome: Result<Outcome>) {
        let Some(t) = self.tracked.remove(id) else {
            return;
        };
        self.by_attempt.remove(&(key.clone(), attempt));
        if t.abandoned && !matches!(outcome, Ok(Outcome::Lost { .. })) {
            return;
        }
        self.in_flight = self.in_flight.saturating_sub(1);
        self.done.push_back(Finished {
            key,
            attempt,
            outcome,
        });
    }
}

/// The last lines of an engine's tail that a failure message quotes.
fn last_lines(tail: &[String]) -> Vec<String> {
    tail[tail.len().saturating_sub(crate::meta::logs::TAIL_LINES)..].to_vec()
}

impl<E: Engine> Executor for Remote<E> {
    fn name(&self) -> &'static str {
        self.engine.name()
    }

    fn check(&self, graph: &Graph, steps: &[usize]) -> Result<()> {
        self.engine.check(graph, steps)
    }

    fn slots(&self) -> usize {
        MAX_IN_FLIGHT
    }

    fn has_room(&self, _step: usize, _r: &Resources) -> bool {
        self.in_flight < MAX_IN_FLIGHT
    }

    fn begin(&mut self, ds: &Datastore) -> Result<()> {
        if !ds.is_shared() {
            return Err(crate::error::Error::invalid(format!(
                "--with {} needs a datastore its jobs can open; {} exists only in this process (use a shared directory or an object store)",
                self.engine.name(),
                ds.url()
            )));
        }
        let pkg = package::ensure(ds)?;
        self.engine.begin(ds, &pkg)?;
        self.package = Some(pkg);
        self.ds = Some(ds.clone());
        Ok(())
    }

    fn try_start(&mut self, task: Dispatch) -> Result<(), Box<Dispatch>> {
        if self.in_flight >= MAX_IN_FLIGHT {
            return Err(Box::new(task));
        }
        self.in_flight += 1;
        self.pending.push(task);
        Ok(())
    }

    fn wait(&mut self, timeout: Duration) -> Vec<Finished> {
        self.submit_pending();
        let until = Instant::now() + timeout;
        loop {
            if !self.done.is_empty() {
                return self.done.drain(..).collect();
            }
            let now = Instant::now();
            if now >= self.next_poll {
                self.poll();
                continue;
            }
            if now >= until {
                return Vec::new();
            }
            std::thread::sleep(self.next_poll.min(until).saturating_duration_since(now));
        }
    }

    fn started(&self, key: &TaskKey, attempt: u32) -> Started {
        let Some(t) = self
            .by_attempt
            .get(&(key.clone(), attempt))
            .and_then(|id| self.tracked.get(id))
        else {
            // Not submitted yet (buffered): it waits.
            return Started::Pending;
        };
        match t.running_since {
            Some(at) => Started::At(at),
            None => Started::Pending,
        }
    }

    fn abandon(&mut self, key: &TaskKey, attempt: u32) {
        if let Some(id) = self.by_attempt.remove(&(key.clone(), attempt)) {
            let _ = self.engine.cancel(std::slice::from_ref(&id));
            self.tracked.remove(&id);
            self.in_flight = self.in_flight.saturating_sub(1);
        }
    }

    fn cancel(&mut self) {
        self.cancelling = true;
        for d in std::mem::take(&mut self.pending) {
            self.fail_unsubmitted(
                &d,
                "the run was cancelled before the job was submitted".into(),
                false,
            );
        }
        let ids: Vec<E::Id> = self.tracked.keys().cloned().collect();
        if let Err(e) = self.engine.cancel(&ids) {
            eprintln!("flowlib: warning: {}", chain(&e));
        }
    }
}
