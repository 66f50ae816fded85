//! The scheduler of one run: a state machine over the graph, with no threads and no I/O.
//!
//! It is fed what happened (a task committed, failed, was fenced; time passed) and answers
//! with what to do (tasks to dispatch, attempts to fence), emitting [`RunEvent`]s on the
//! way. A task becomes ready as soon as its inputs are committed; a failing task fails
//! alone, so independent branches keep running and the run ends failed with every failed
//! task named. The driver in `run::drive` connects it to an executor and the store.

use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::error::chain;
use crate::exec::{Dispatch, Executor, Finished, Started};
use crate::flow::graph::TaskKey;
use crate::flow::{Graph, JoinKind, Transition};
use crate::meta::{task_id, Committed, IndexPath, Pins, RunStatus, TaskRef};
use crate::run::events::RunEvent;
use crate::run::policy;
use crate::task::{Outcome, Pin, Resolved, RunContext, TaskSpec, SPEC_VERSION};

/// Tasks known before the run starts (reused by a resume).
#[derive(Debug, Default)]
pub(crate) struct Prefilled {
    pub(crate) reuse: HashMap<TaskKey, Arc<Committed>>,
    /// Runs whose checkpoints re-run tasks may load, newest first.
    pub(crate) checkpoint_origins: Vec<String>,
    /// Tasks that succeeded in an origin run: their old checkpoints are history, not progress.
    pub(crate) origin_succeeded: HashSet<TaskKey>,
    /// Steps re-run because a parameter they read changed (by step index; empty: none):
    /// their origin checkpoints were made with the old value, so they start afresh.
    pub(crate) fresh: Vec<bool>,
}

/// A task whose inputs are committed, waiting for capacity (or for its retry delay).
#[derive(Debug)]
struct Ready {
    key: TaskKey,
    attempt: u32,
    resolved: Resolved,
    not_before: Option<Instant>,
    skipped: usize,
}

/// An entry of the ready queue: one task, or the items of a foreach not started yet.
///
/// A foreach over 100,000 items is one entry, not 100,000: each item becomes a task (its
/// key, its index path) only when it is offered to the executor, so the queue's memory does
/// not grow with the split's width.
#[derive(Debug)]
enum Queued {
    One(Ready),
    Items {
        /// The foreach body's step.
        step: usize,
        /// The split's index path: item `i` is `within.child(i)`.
        within: IndexPath,
        /// Items `next..end` are still to start.
        next: u32,
        end: u32,
        /// Every item's inputs (the split).
        resolved: Resolved,
        /// How often the next item was passed over.
        skipped: usize,
    },
}

impl Queued {
    /// The step of the next task.
    fn step(&self) -> usize {
        match self {
            Queued::One(r) => r.key.0,
            Queued::Items { step, .. } => *step,
        }
    }

    fn skipped(&mut self) -> &mut usize {
        match self {
            Queued::One(r) => &mut r.skipped,
            Queued::Items { skipped, .. } => skipped,
        }
    }
}

#[derive(Debug)]
struct Running {
    attempt: u32,
    started: Instant,
    deadline: Option<Instant>,
    resolved: Resolved,
}

/// A join waiting for its inputs: how many it expects (known once its split committed),
/// and those committed so far, by their place in the graph's inputs rule.
#[derive(Debug, Default)]
struct JoinWait {
    expected: Option<usize>,
    got: usize,
    inputs: Pins,
}

/// How many bytes of committed views the scheduler keeps for join inputs, across the run
/// (about 25,000 inputs that each changed one small field). An input past the budget is
/// kept as its pin alone, about 100 bytes, and the join reads its record when it loads it
/// (one request, a few dozen at a time): a join over 100,000 items, or over 1,000 large
/// ones, holds the driver's memory flat, and a smaller join reads nothing again.
pub(crate) const JOIN_VIEWS_BUDGET: usize = 8 << 20;

/// What the run has done, when it is over.
#[derive(Debug)]
pub(crate) struct Tally {
    pub(crate) status: RunStatus,
    pub(crate) tasks_ok: usize,
    pub(crate) tasks_reused: usize,
    pub(crate) tasks_cached: usize,
    pub(crate) failures: Vec<(String, String)>,
    pub(crate) not_run: Vec<String>,
}

/// How fencing a timed-out attempt went (the driver writes the fence record).
#[derive(Debug)]
pub(crate) enum FenceResult {
    /// The attempt can never commit now.
    Fenced,
    /// It committed just before the deadline: its result is on the way.
    AlreadyCommitted,
    /// The store could not be written; try again shortly.
    Error(String),
}

/// The scheduler of one run.
#[derive(Debug)]
pub(crate) struct Scheduler {
    graph: &'static Graph,
    run: Arc<RunContext>,
    pre: Prefilled,
    ready: VecDeque<Queued>,
    /// Retries waiting for their backoff delay.
    delayed: Vec<Ready>,
    running: HashMap<TaskKey, Running>,
    // Per-task state is kept only while something still needs it, compactly: a committed
    // task's view goes to its successors (`Ready`), to the join waiting for it (`joins`)
    // or, for a split, to `splits` until its join starts; nothing is kept per task after.
    /// Splits whose join has not started: the join's starting state.
    splits: HashMap<TaskKey, Arc<Committed>>,
    joins: HashMap<TaskKey, JoinWait>,
    /// Bytes of the views kept for join inputs (of joins waiting, queued or running):
    /// at most `views_budget`.
    views_held: usize,
    views_budget: usize,
    /// Steps at least one task of which committed.
    ran: Vec<bool>,
    failed: Vec<(String, String)>,
    failed_steps: HashSet<usize>,
    ok_count: usize,
    reused_count: usize,
    cached_count: usize,
    events: Vec<RunEvent>,
    /// Platform failures (node lost, preempted, could not start) per task so far: they have
    /// a retry budget of their own.
    platform_failures: HashMap<TaskKey, u32>,
    /// The run was cancelled: nothing new starts, and nothing is retried.
    cancelled: bool,
}

impl Scheduler {
    /// A scheduler for `run`, a run of the flow whose graph is `graph`.
    pub(crate) fn new(graph: &'static Graph, run: Arc<RunContext>, pre: Prefilled) -> Self {
        Scheduler {
            graph,
            run,
            pre,
            ready: VecDeque::new(),
            delayed: Vec::new(),
            running: HashMap::new(),
            splits: HashMap::new(),
            joins: HashMap::new(),
            views_held: 0,
            views_budget: JOIN_VIEWS_BUDGET,
            ran: vec![false; graph.steps().len()],
            failed: Vec::new(),
            failed_steps: HashSet::new(),
            ok_count: 0,
            reused_count: 0,
            cached_count: 0,
            events: Vec::new(),
            platform_failures: HashMap::new(),
            cancelled: false,
        }
    }

    /// Entries in the ready queue (a foreach's items not started yet are one).
    #[cfg(test)]
    pub(crate) fn queue_entries(&self) -> usize {
        self.ready.len()
    }

    /// Keep at most `bytes` of join inputs' views (default [`JOIN_VIEWS_BUDGET`]).
    pub(crate) fn set_views_budget(&mut self, bytes: usize) {
        self.views_budget = bytes;
    }

    /// Start the run: the start step receives `initial`.
    pub(crate) fn start(&mut self, initial: Arc<Committed>) {
        let start = self.graph.start().index;
        self.enqueue(
            (start, IndexPath::root()),
            Resolved {
                base: initial,
                inputs: Arc::default(),
            },
        );
    }

    /// The name of step `step`.
    pub(crate) fn step_name(&self, step: usize) -> &'static str {
        self.graph.steps()[step].name
    }

    /// Events emitted since the last call.
    pub(crate) fn drain_events(&mut self) -> std::vec::Drain<'_, RunEvent> {
        self.events.drain(..)
    }

    /// Cancel the run: nothing new starts and nothing is retried; what runs now finishes
    /// (the executor is told to stop it) and is recorded as it ends.
    pub(crate) fn cancel(&mut self) {
        if self.cancelled {
            return;
        }
        self.cancelled = true;
        self.ready.clear();
        self.delayed.clear();
        self.events.push(RunEvent::Note {
            message: format!(
                "cancelled: stopping {} running task(s); nothing new starts (resume continues the run)",
                self.running.len()
            ),
        });
    }

    /// After a cancel, give up on attempts that have not reported (a thread cannot be
    /// killed): each is counted as failed, cancelled.
    pub(crate) fn give_up_running(&mut self) {
        let keys: Vec<TaskKey> = self.running.keys().cloned().collect();
        for key in keys {
            let step = &self.graph.steps()[key.0];
            let task = task_id(step.name, &key.1);
            self.running.remove(&key);
            self.failed_steps.insert(key.0);
            self.failed.push((task, "cancelled while running".into()));
        }
    }

    /// Nothing is running, ready or waiting to be retried: the run is over.
    pub(crate) fn is_idle(&self) -> bool {
        self.running.is_empty() && self.ready.is_empty() && self.delayed.is_empty()
    }

    /// How long the driver may wait for results before the scheduler needs attention.
    pub(crate) fn next_wakeup(&self, now: Instant) -> Duration {
        let deadlines = self.running.values().filter_map(|r| r.deadline);
        let retries = self.delayed.iter().filter_map(|r| r.not_before);
        deadlines
            .chain(retries)
            .map(|t| t.saturating_duration_since(now))
            .fold(Duration::from_millis(100), Duration::min)
            .max(Duration::from_millis(1))
    }

    /// Offer ready tasks to the executor, first fit within a window; once the head of the
    /// queue has been passed over `2 × slots` times, stop backfilling so a large task is not
    /// starved by small ones.
    pub(crate) fn dispatch(&mut self, now: Instant, exec: &mut dyn Executor) {
        self.promote_delayed(now);
        const WINDOW: usize = 64;
        let slots = exec.slots().max(1);
        let mut i = 0;
        let mut scanned = 0;
        // The window bounds the tasks passed over, not those started: a foreach whose tasks
        // all fit is offered whole in one call (a batch engine submits it as one array).
        while i < self.ready.len() && scanned < WINDOW {
            let step = self.ready[i].step();
            let resources = self.graph.steps()[step].resources;
            if exec.has_room(step, &resources) {
                let r = self.take(i);
                let d = Dispatch {
                    run: self.run.clone(),
                    key: r.key.clone(),
                    spec: self.spec(&r, exec.reads_spec(step)),
                    resolved: r.resolved.clone(),
                };
                match exec.try_start(d) {
                    Ok(()) => {
                        self.on_started(r.key, r.attempt, now, r.resolved);
                        continue;
                    }
                    Err(_) => self.ready.insert(i, Queued::One(r)),
                }
            }
            scanned += 1;
            let skipped = self.ready[i].skipped();
            *skipped += 1;
            if *skipped > 2 * slots {
                break;
            }
            i += 1;
        }
        // A foreach of 100,000 items fills the queue at once; give the room back as it
        // drains, so it does not add to the per-task state the run holds at its join.
        if self.ready.capacity() > 1024 && self.ready.len() < self.ready.capacity() / 4 {
            self.ready.shrink_to(self.ready.len() * 2);
        }
    }

    /// The next task of queue entry `i`, taken from the queue (an entry of foreach items
    /// leaves the queue with its last item).
    fn take(&mut self, i: usize) -> Ready {
        let Queued::Items {
            step,
            within,
            next,
            end,
            resolved,
            skipped,
        } = &mut self.ready[i]
        else {
            match self.ready.remove(i) {
                Some(Queued::One(r)) => return r,
                _ => unreachable!("entry {i} is one task"),
            }
        };
        let r = Ready {
            key: (*step, within.child(*next)),
            attempt: 0,
            resolved: resolved.clone(),
            not_before: None,
            skipped: *skipped,
        };
        *next += 1;
        if *next == *end {
            self.ready.remove(i);
        }
        r
    }

    fn on_started(&mut self, key: TaskKey, attempt: u32, now: Instant, resolved: Resolved) {
        let step = &self.graph.steps()[key.0];
        self.events.push(RunEvent::Started {
            step: key.0,
            task: task_id(step.name, &key.1),
            attempt,
        });
        self.running.insert(
            key,
            Running {
                attempt,
                started: now,
                deadline: policy::deadline(step, now),
                resolved,
            },
        );
    }

    /// The spec of a ready task; its join inputs are pinned when `pins` (an executor that
    /// runs it from the spec alone).
    fn spec(&self, r: &Ready, pins: bool) -> TaskSpec {
        let step = &self.graph.steps()[r.key.0];
        let mut checkpoint_sources = vec![self.run.run_id.clone()];
        let fresh = self.pre.fresh.get(r.key.0).copied().unwrap_or(false);
        if !fresh && !self.pre.origin_succeeded.contains(&r.key) {
            checkpoint_sources.extend(self.pre.checkpoint_origins.iter().cloned());
        }
        TaskSpec {
            version: SPEC_VERSION,
            flow: self.graph.flow().to_string(),
            task: TaskRef {
                run: self.run.run_id.clone(),
                step: step.name.to_string(),
                index: r.key.1.clone(),
                attempt: r.attempt,
            },
            base: Pin::of(&r.resolved.base),
            inputs: match pins {
                true => Pin::all(&r.resolved.inputs),
                false => Vec::new(),
            },
            params: self.run.params.clone(),
            checkpoint_sources,
            timeout_ms: step.timeout_ms,
            resources: step.resources,
            code: None,
        }
    }

    fn promote_delayed(&mut self, now: Instant) {
        let mut i = 0;
        while i < self.delayed.len() {
            if self.delayed[i].not_before.is_none_or(|t| t <= now) {
                let r = self.delayed.swap_remove(i);
                self.ready.push_back(Queued::One(r));
            } else {
                i += 1;
            }
        }
    }

    /// A task's inputs are committed: queue it, or take it from the origin run.
    fn enqueue(&mut self, key: TaskKey, resolved: Resolved) {
        if self.cancelled {
            return;
        }
        self.events.push(RunEvent::Queued {
            step: key.0,
            tasks: 1,
        });
        self.queue(key, resolved);
    }

    /// [`enqueue`](Self::enqueue) without its event (a foreach sends one for all its items).
    fn queue(&mut self, key: TaskKey, resolved: Resolved) {
        // Taken, not copied: a resume of 100,000 items keeps no view it handed on.
        if let Some(c) = self.pre.reuse.remove(&key) {
            self.reused_count += 1;
            self.events.push(RunEvent::Reused {
                step: key.0,
                task: task_id(self.graph.steps()[key.0].name, &key.1),
            });
            self.on_committed(key, c);
            return;
        }
        self.ready.push_back(Queued::One(Ready {
            key,
            attempt: 0,
            resolved,
            not_before: None,
            skipped: 0,
        }));
    }

    /// Queue items `0..count` of the foreach whose body is `step`, split at `within`: one
    /// queue entry per stretch of items not taken from the origin run (all of them, in a
    /// run that is not a resume).
    fn queue_items(&mut self, step: usize, within: &IndexPath, count: u32, resolved: &Resolved) {
        let push = |ready: &mut VecDeque<Queued>, from: u32, to: u32| {
            if from < to {
                ready.push_back(Queued::Items {
                    step,
                    within: within.clone(),
                    next: from,
                    end: to,
                    resolved: resolved.clone(),
                    skipped: 0,
                });
            }
        };
        if self.cancelled {
            return;
        }
        if self.pre.reuse.is_empty() {
            push(&mut self.ready, 0, count);
            return;
        }
        let mut from = 0;
        for i in 0..count {
            let key = (step, within.child(i));
            if self.pre.reuse.contains_key(&key) {
                push(&mut self.ready, from, i);
                self.queue(key, resolved.clone());
                from = i + 1;
            }
        }
        push(&mut self.ready, from, count);
    }

    /// An executor reports a finished attempt.
    pub(crate) fn on_finished(&mut self, f: Finished, now: Instant) {
        // A result from an attempt that was fenced off (timed out) is ignored.
        if self.running.get(&f.key).map(|r| r.attempt) != Some(f.attempt) {
            return;
        }
        let r = self.running.remove(&f.key).expect("running");
        let step = &self.graph.steps()[f.key.0];
        match f.outcome {
            Ok(Outcome::Committed(c)) => {
                self.events.push(RunEvent::Committed {
                    step: f.key.0,
                    task: task_id(step.name, &f.key.1),
                    attempt: f.attempt,
                    status: c.status,
                    elapsed: now.saturating_duration_since(r.started),
                });
                self.ok_count += 1;
                self.release(&r.resolved);
                self.on_committed(f.key, c);
            }
            Ok(Outcome::Cached { committed, from }) => {
                self.events.push(RunEvent::Cached {
                    step: f.key.0,
                    task: task_id(step.name, &f.key.1),
                    from: format!("run {} task {}", from.run, from.task_id()),
                });
                self.cached_count += 1;
                self.release(&r.resolved);
                self.on_committed(f.key, committed);
            }
            Ok(Outcome::Failed(msg)) => self.on_failed(f.key, r, msg, now),
            Ok(Outcome::Lost { error, platform }) => {
                let error = if self.cancelled {
                    format!("cancelled: {error}")
                } else {
                    error
                };
                self.on_failed_as(f.key, r, error, now, platform)
            }
            Ok(Outcome::Fenced) => self.on_failed(
                f.key,
                r,
                "the attempt was fenced off by another writer".into(),
                now,
            ),
            Err(e) => self.on_failed(
                f.key,
                r,
                format!("could not record the attempt: {}", chain(&e)),
                now,
            ),
        }
    }

    fn on_failed(&mut self, key: TaskKey, r: Running, msg: String, now: Instant) {
        self.on_failed_as(key, r, msg, now, false)
    }

    /// A failed attempt: retried within the step's user budget, or within its platform
    /// budget when the machine or the engine failed (`platform`), else the task fails.
    fn on_failed_as(
        &mut self,
        key: TaskKey,
        r: Running,
        msg: String,
        now: Instant,
        platform: bool,
    ) {
        let step = &self.graph.steps()[key.0];
        let task = task_id(step.name, &key.1);
        let platform_used = self.platform_failures.get(&key).copied().unwrap_or(0);
        let retry = if platform {
            policy::platform_retry_after(step, platform_used)
        } else {
            policy::retry_after(step, r.attempt - platform_used)
        };
        if platform && retry.is_some() {
            self.platform_failures
                .insert(key.clone(), platform_used + 1);
        }
        if let Some((delay, of)) = retry.filter(|_| !self.cancelled) {
            self.events.push(RunEvent::Retrying {
                step: key.0,
                task,
                attempt: r.attempt,
                error: msg,
                delay,
                of,
            });
            self.delayed.push(Ready {
                key,
                attempt: r.attempt + 1,
                resolved: r.resolved,
                not_before: Some(now + delay),
                skipped: 0,
            });
            return;
        }
        self.events.push(RunEvent::Failed {
            step: key.0,
            task: task.clone(),
            attempt: r.attempt,
            error: msg.clone(),
        });
        self.failed_steps.insert(key.0);
        self.failed.push((task, msg));
        self.release(&r.resolved);
    }

    /// A task's inputs are done with (it committed, or failed for good): the views of its
    /// join inputs no longer count against the budget.
    fn release(&mut self, r: &Resolved) {
        let held: usize = r.inputs.views().map(|v| v.footprint()).sum();
        self.views_held = self.views_held.saturating_sub(held);
    }

    /// Attempts past their deadline, with the error to fence them with.
    /// An attempt's time counts from when its executor says it began to run.
    pub(crate) fn expired(&self, now: Instant, exec: &dyn Executor) -> Vec<(TaskKey, u32, String)> {
        self.running
            .iter()
            .filter(|(k, r)| {
                let Some(d) = r.deadline else { return false };
                match exec.started(k, r.attempt) {
                    Started::AtDispatch => d <= now,
                    Started::Pending => false,
                    Started::At(t) => t + d.saturating_duration_since(r.started) <= now,
                }
            })
            .map(|(k, r)| {
                let step = &self.graph.steps()[k.0];
                (k.clone(), r.attempt, policy::timeout_error(step))
            })
            .collect()
    }

    /// The driver tried to fence an expired attempt. Returns true when the attempt was
    /// fenced, so the executor must abandon it.
    pub(crate) fn on_fence(
        &mut self,
        key: TaskKey,
        attempt: u32,
        result: FenceResult,
        now: Instant,
    ) -> bool {
        if self.running.get(&key).map(|r| r.attempt) != Some(attempt) {
            return false;
        }
        match result {
            FenceResult::Fenced => {
                let r = self.running.remove(&key).expect("running");
                let msg = policy::timeout_error(&self.graph.steps()[key.0]);
                self.on_failed(key, r, msg, now);
                true
            }
            FenceResult::AlreadyCommitted => {
                if let Some(r) = self.running.get_mut(&key) {
                    r.deadline = None;
                }
                false
            }
            FenceResult::Error(e) => {
                if let Some(r) = self.running.get_mut(&key) {
                    r.deadline = Some(now + Duration::from_millis(500));
                }
                let task = task_id(self.graph.steps()[key.0].name, &key.1);
                self.events.push(RunEvent::Note {
                    message: format!("{task}: cannot fence the timed-out attempt yet: {e}"),
                });
                false
            }
        }
    }

    fn on_committed(&mut self, key: TaskKey, c: Arc<Committed>) {
        let (s, p) = key;
        self.ran[s] = true;
        let step = &self.graph.steps()[s];
        match step.transition {
            Transition::End => {}
            Transition::Foreach | Transition::Branch => {
                let join = step.closed_by.expect("validated: every split is joined");
                let expected = self
                    .graph
                    .inputs_of(join, &p, |_| c.foreach_count.or(Some(0)))
                    .map_or(0, |i| i.joined.len());
                let names = |i: usize| self.graph.steps()[i].name.into();
                let preds = &self.graph.steps()[join].preds;
                let inputs = match step.transition {
                    Transition::Foreach => Pins::foreach(names(preds[0]), p.clone(), expected),
                    _ => Pins::branch(preds.iter().map(|&q| names(q)).collect(), &p),
                };
                let wait = self.joins.entry((join, p.clone())).or_default();
                wait.expected = Some(expected);
                wait.inputs = inputs;
                self.splits.insert((s, p.clone()), c.clone());
                let resolved = Resolved {
                    base: c,
                    inputs: Arc::default(),
                };
                if step.transition == Transition::Foreach {
                    let next = step.next[0];
                    self.events.push(RunEvent::Queued {
                        step: next,
                        tasks: expected,
                    });
                    self.queue_items(next, &p, expected as u32, &resolved);
                } else {
                    for &n in &step.next {
                        self.enqueue((n, p.clone()), resolved.clone());
                    }
                }
                self.try_join(join, p);
            }
            Transition::Linear => {
                let n = step.next[0];
                match self.graph.steps()[n].join {
                    Some((_, kind)) => {
                        // The join's index (one level up when closing a foreach) and this
                        // input's place among the join's inputs (`Graph::inputs_of` order).
                        let (jp, place) = match kind {
                            JoinKind::Foreach => (p.parent(), p.0.last().map(|&i| i as usize)),
                            JoinKind::Branch => {
                                let preds = &self.graph.steps()[n].preds;
                                (p, preds.iter().position(|&q| q == s))
                            }
                        };
                        let wait = self.joins.entry((n, jp.clone())).or_default();
                        wait.got += 1;
                        if let Some(i) = place {
                            let size = c.footprint();
                            let keep = self.views_held + size <= self.views_budget;
                            if wait.inputs.set(i, c, keep) && keep {
                                self.views_held += size;
                            }
                        }
                        self.try_join(n, jp);
                    }
                    None => self.enqueue(
                        (n, p),
                        Resolved {
                            base: c,
                            inputs: Arc::default(),
                        },
                    ),
                }
            }
        }
    }

    /// Start a join once every one of its inputs has committed, in the order the graph's
    /// inputs rule gives.
    fn try_join(&mut self, join: usize, path: IndexPath) {
        let key = (join, path);
        let complete = self
            .joins
            .get(&key)
            .is_some_and(|w| w.expected == Some(w.got));
        if !complete {
            return;
        }
        let wait = self.joins.remove(&key).expect("complete");
        let step = &self.graph.steps()[join];
        let (split, _) = step.join.expect("a join closes a split");
        let base = self
            .splits
            .remove(&(split, key.1.clone()))
            .expect("the split committed before its arms");
        assert!(
            wait.inputs.is_complete(),
            "every input of a complete join committed, as a task"
        );
        self.enqueue(
            key,
            Resolved {
                base,
                inputs: Arc::new(wait.inputs),
            },
        );
    }

    /// The run is over: what it did.
    pub(crate) fn finish(self) -> Tally {
        // Steps that never ran because something upstream failed (a foreach over an empty
        // collection legitimately runs nothing, so only failure shadows count).
        let mut blocked = vec![false; self.graph.steps().len()];
        for &f in &self.failed_steps {
            for (i, d) in self.graph.downstream_of(f).into_iter().enumerate() {
                blocked[i] |= d;
            }
        }
        let not_run = self
            .graph
            .steps()
            .iter()
            .filter(|s| {
                (blocked[s.index] || self.cancelled)
                    && !self.failed_steps.contains(&s.index)
                    && !self.ran[s.index]
            })
            .map(|s| s.name.to_string())
            .collect();
        Tally {
            status: if self.cancelled {
                RunStatus::Cancelled
            } else if self.failed.is_empty() {
                RunStatus::Succeeded
            } else {
                RunStatus::Failed
            },
            tasks_ok: self.ok_count,
            tasks_reused: self.reused_count,
            tasks_cached: self.cached_count,
            failures: self.failed,
            not_run,
        }
    }
}
