//! The scheduler as a state machine, driven by a fake executor: no threads, no step bodies,
//! no clock (time is passed in). Proves the executor seam: a backend that only implements
//! [`Executor`] gets joins, nested foreach, retries, timeouts and failure isolation.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::error::Result;
use crate::exec::{Dispatch, Executor, Finished};
use crate::flow::graph::TaskKey;
use crate::flow::{Flow, Graph, Resources};
use crate::meta::{Artifacts, AttemptStatus, Committed, Idx, IndexPath, RunStatus, TaskAt};
use crate::prelude::*;
use crate::run::events::{EventSink, Recorder, RunEvent};
use crate::run::scheduler::{FenceResult, Prefilled, Scheduler, Tally};
use crate::store::{BlobRef, Datastore, Digest, OpenMode};
use crate::task::{Outcome, Pin, RunContext};

/// Takes tasks while it has slots; the test decides how each ends.
#[derive(Debug, Default)]
struct Fake {
    slots: usize,
    running: Vec<Dispatch>,
    abandoned: Vec<(TaskKey, u32)>,
    /// Runs tasks in this process: takes the driver's inputs, not pins.
    local: bool,
    notes: Vec<String>,
}

impl Executor for Fake {
    fn name(&self) -> &'static str {
        "fake"
    }
    fn check(&self, _: &Graph, _: &[usize]) -> Result<()> {
        Ok(())
    }
    fn slots(&self) -> usize {
        self.slots
    }
    fn has_room(&self, _: usize, _: &Resources) -> bool {
        self.running.len() < self.slots
    }
    fn reads_spec(&self, _: usize) -> bool {
        !self.local
    }
    fn notes(&mut self) -> Vec<String> {
        std::mem::take(&mut self.notes)
    }
    fn try_start(&mut self, task: Dispatch) -> std::result::Result<(), Box<Dispatch>> {
        if self.running.len() >= self.slots {
            return Err(Box::new(task));
        }
        self.running.push(task);
        Ok(())
    }
    fn wait(&mut self, _: Duration) -> Vec<Finished> {
        Vec::new()
    }
    fn abandon(&mut self, key: &TaskKey, attempt: u32) {
        self.running
            .retain(|d| !(d.key == *key && d.spec.task.attempt == attempt));
        self.abandoned.push((key.clone(), attempt));
    }
}

/// A scheduler, its fake executor and the events it emitted.
struct Harness {
    sched: Scheduler,
    exec: Fake,
    events: Recorder,
    now: Instant,
}

impl Harness {
    fn new<F: Flow>(slots: usize) -> Self {
        let ds = Datastore::open("memory://scheduler-tests", OpenMode::Create).unwrap();
        let run = Arc::new(RunContext::new(ds, F::NAME, "r1".into(), BTreeMap::new()));
        let mut sched = Scheduler::new(F::graph(), run, Prefilled::default());
        sched.start(Arc::new(Committed::initial(BTreeMap::new())));
        let mut h = Harness {
            sched,
            exec: Fake {
                slots,
                ..Fake::default()
            },
            events: Recorder::default(),
            now: Instant::now(),
        };
        h.pump();
        h
    }

    fn pump(&mut self) {
        self.sched.dispatch(self.now, &mut self.exec);
        for e in self.sched.drain_events() {
            self.events.event(&e);
        }
    }

    /// The running task ids, sorted.
    fn running(&self) -> Vec<String> {
        let mut v: Vec<String> = self.exec.running.iter().map(|d| d.spec.task_id()).collect();
        v.sort();
        v
    }

    fn take(&mut self, task: &str) -> Dispatch {
        let i = self
            .exec
            .running
            .iter()
            .position(|d| d.spec.task_id() == task)
            .unwrap_or_else(|| panic!("{task} is not running: {:?}", self.running()));
        self.exec.running.remove(i)
    }

    /// Finish `task` with `outcome`, then let the scheduler dispatch what became ready.
    fn finish(&mut self, task: &str, outcome: Outcome) {
        let d = self.take(task);
        let f = Finished {
            key: d.key,
            attempt: d.spec.task.attempt,
            outcome: Ok(outcome),
        };
        self.sched.on_finished(f, self.now);
        self.pump();
    }

    /// Commit `task`; a foreach split says it produced `items` items.
    fn commit(&mut self, task: &str, items: Option<u64>) {
        let d = &self.exec.running[self
            .exec
            .running
            .iter()
            .position(|d| d.spec.task_id() == task)
            .unwrap_or_else(|| panic!("{task} is not running: {:?}", self.running()))];
        let c = committed(
            &d.spec.task.step,
            &d.spec.task.index,
            d.spec.task.attempt,
            items,
        );
        self.finish(task, Outcome::Committed(Arc::new(c)));
    }

    fn done(self) -> Tally {
        assert!(self.sched.is_idle(), "still running: {:?}", self.running());
        self.sched.finish()
    }
}

fn committed(step: &str, index: &IndexPath, attempt: u32, items: Option<u64>) -> Committed {
    let bytes = format!("{step}/{index}@{attempt}");
    Committed {
        task: Some(TaskAt {
            run: "r1".into(),
            step: step.into(),
            index: Idx::of(index.clone()),
            attempt,
        }),
        manifest: Some(BlobRef {
            digest: Digest::of(bytes.as_bytes()),
            size: bytes.len() as u64,
        }),
        artifacts: Artifacts::default(),
        foreach_count: items,
        status: AttemptStatus::Ok,
    }
}

#[derive(FlowState, Default, Serialize, Deserialize)]
struct Fan {
    items: Vec<u32>,
}

#[flow]
impl Fan {
    #[step(start, next = work, foreach = items)]
    fn start(&mut self) -> Result<()> {
        Ok(())
    }
    #[step(next = gather)]
    #[retry(times = 1, delay = "2s")]
    fn work(&mut self, _item: &u32) -> Result<()> {
        Ok(())
    }
    #[step(join, next = end)]
    fn gather(&mut self, _inputs: Inputs<Self>) -> Result<()> {
        Ok(())
    }
    #[step(end)]
    fn end(&mut self) -> Result<()> {
        Ok(())
    }
}

#[test]
fn foreach_join_waits_for_every_item_and_orders_its_inputs() {
    let mut h = Harness::new::<Fan>(8);
    assert_eq!(h.running(), ["start"]);
    h.commit("start", Some(3));
    assert_eq!(h.running(), ["work/0", "work/1", "work/2"]);
    h.commit("work/2", None);
    h.commit("work/0", None);
    assert_eq!(h.running(), ["work/1"], "the join waits for every item");
    h.commit("work/1", None);
    assert_eq!(h.running(), ["gather"]);
    let join = h.take("gather");
    assert!(
        matches!(&join.spec.inputs[..], [Pin::Foreach { manifests, .. }] if manifests.len() == 3),
        "a foreach join pins its inputs as one range: {:?}",
        join.spec.inputs
    );
    let order: Vec<String> = join
        .spec
        .inputs
        .iter()
        .flat_map(|p| p.tasks())
        .map(|(task, _)| task.task_id())
        .collect();
    assert_eq!(order, ["work/0", "work/1", "work/2"]);
    assert!(matches!(&join.spec.base, Pin::Task { task, .. } if task.step == "start"));
    h.exec.running.push(join);
    h.commit("gather", None);
    h.commit("end", None);
    let t = h.done();
    assert_eq!(
        (t.status, t.tasks_ok, t.failures.len()),
        (RunStatus::Succeeded, 6, 0)
    );
}

#[test]
fn an_executor_in_this_process_gets_a_joins_inputs_unpinned() {
    let mut h = Harness::new::<Fan>(8);
    h.exec.local = true;
    h.commit("start", Some(3));
    for i in 0..3 {
        h.commit(&format!("work/{i}"), None);
    }
    let join = h.take("gather");
    assert!(join.spec.inputs.is_empty(), "{:?}", join.spec.inputs);
    let ids: Vec<String> = join
        .resolved
        .inputs
        .iter()
        .map(|p| p.task.task_id())
        .collect();
    assert_eq!(ids, ["work/0", "work/1", "work/2"], "the driver's inputs");
}

#[test]
fn the_tracing_wrapper_passes_the_executors_notes_on() {
    let mut fake = Fake {
        notes: vec!["a cache entry was ignored".into()],
        ..Fake::default()
    };
    let span = crate::run::telemetry::run_span("Fan", "r1");
    let mut traced = crate::run::telemetry::Traced::new(&mut fake, span, "Fan", "r1");
    assert_eq!(traced.notes(), ["a cache entry was ignored"]);
}

#[test]
fn an_empty_foreach_goes_straight_to_its_join() {
    let mut h = Harness::new::<Fan>(8);
    h.commit("start", Some(0));
    assert_eq!(h.running(), ["gather"]);
    assert!(h.take("gather").spec.inputs.is_empty());
}

#[test]
fn slots_bound_what_runs_at_once() {
    let mut h = Harness::new::<Fan>(2);
    h.commit("start", Some(5));
    assert_eq!(h.running(), ["work/0", "work/1"]);
    h.commit("work/0", None);
    assert_eq!(h.running(), ["work/1", "work/2"]);
}

#[test]
fn a_wide_foreach_is_one_queue_entry_that_starts_its_items_in_order() {
    let mut h = Harness::new::<Fan>(3);
    h.commit("start", Some(100_000));
    assert_eq!(h.running(), ["work/0", "work/1", "work/2"]);
    assert_eq!(h.sched.queue_entries(), 1, "the other items are one entry");
    h.commit("work/1", None);
    h.commit("work/0", None);
    assert_eq!(h.running(), ["work/2", "work/3", "work/4"]);
    h.exec.slots = 100_000;
    h.pump();
    assert_eq!(
        h.exec.running.len(),
        100_000 - 2,
        "all that fit start in one call"
    );
    assert_eq!(h.sched.queue_entries(), 0);
    let last = h.exec.running.last().map(|d| d.spec.task_id());
    assert_eq!(last.as_deref(), Some("work/99999"));
}

#[test]
fn a_split_that_commits_after_a_cancel_starts_none_of_its_items() {
    let mut h = Harness::new::<Fan>(8);
    h.sched.cancel();
    h.commit("start", Some(5));
    assert!(h.running().is_empty(), "started: {:?}", h.running());
    assert!(h.sched.is_idle());
    assert_eq!(h.done().status, RunStatus::Cancelled);
}

#[test]
fn a_failed_attempt_is_retried_after_its_backoff_then_fails_for_good() {
    let mut h = Harness::new::<Fan>(8);
    h.commit("start", Some(2));
    h.finish("work/0", Outcome::Failed("boom".into()));
    assert!(h.events.events.iter().any(|e| matches!(e,
        RunEvent::Retrying { task, attempt: 0, delay, of: 2, .. }
            if task == "work/0" && *delay == Duration::from_secs(2))));
    assert_eq!(h.running(), ["work/1"], "not before the delay");
    h.now += Duration::from_secs(2);
    h.pump();
    assert_eq!(h.running(), ["work/0", "work/1"]);
    let retry = h.take("work/0");
    assert_eq!(retry.spec.task.attempt, 1);
    h.exec.running.push(retry);
    h.finish("work/0", Outcome::Failed("boom again".into()));
    h.commit("work/1", None);
    let t = h.done();
    assert_eq!(t.status, RunStatus::Failed);
    assert_eq!(
        t.failures,
        [("work/0".to_string(), "boom again".to_string())]
    );
    assert_eq!(t.not_run, ["gather", "end"]);
}

#[derive(FlowState, Default, Serialize, Deserialize)]
struct Arms {
    x: u32,
}

#[flow]
impl Arms {
    #[step(start, next = [left, right])]
    fn start(&mut self) -> Result<()> {
        Ok(())
    }
    #[step(next = meet)]
    #[timeout("1s")]
    fn left(&mut self) -> Result<()> {
        Ok(())
    }
    #[step(next = meet)]
    fn right(&mut self) -> Result<()> {
        Ok(())
    }
    #[step(join, next = end)]
    fn meet(&mut self, _inputs: Inputs<Self>) -> Result<()> {
        Ok(())
    }
    #[step(end)]
    fn end(&mut self) -> Result<()> {
        Ok(())
    }
}

#[test]
fn a_branch_join_takes_its_arms_in_declaration_order() {
    let mut h = Harness::new::<Arms>(8);
    h.commit("start", None);
    assert_eq!(h.running(), ["left", "right"]);
    h.commit("right", None);
    h.commit("left", None);
    let join = h.take("meet");
    let arms: Vec<String> = join
        .spec
        .inputs
        .iter()
        .filter_map(|p| match p {
            Pin::Task { task, .. } => Some(task.step.clone()),
            _ => None,
        })
        .collect();
    assert_eq!(arms, ["left", "right"]);
}

#[test]
fn a_timed_out_attempt_is_fenced_abandoned_and_fails_alone() {
    let mut h = Harness::new::<Arms>(8);
    h.commit("start", None);
    assert!(h.sched.expired(h.now, &h.exec).is_empty());
    let later = h.now + Duration::from_millis(1500);
    let expired = h.sched.expired(later, &h.exec);
    assert_eq!(expired.len(), 1);
    let (key, attempt, error) = expired.into_iter().next().unwrap();
    assert_eq!(error, "timed out after 1s");
    // A store error first: the fence is retried shortly, nothing else changes.
    assert!(!h.sched.on_fence(
        key.clone(),
        attempt,
        FenceResult::Error("disk full".into()),
        later
    ));
    assert!(h.sched.expired(later, &h.exec).is_empty());
    let retry_at = later + Duration::from_millis(600);
    assert_eq!(h.sched.expired(retry_at, &h.exec).len(), 1);
    assert!(h
        .sched
        .on_fence(key.clone(), attempt, FenceResult::Fenced, retry_at));
    h.exec.abandon(&key, attempt);
    // The abandoned attempt's late result is ignored.
    let late = committed("left", &IndexPath::root(), 0, None);
    h.sched.on_finished(
        Finished {
            key,
            attempt,
            outcome: Ok(Outcome::Committed(Arc::new(late))),
        },
        retry_at,
    );
    h.pump();
    h.commit("right", None);
    let t = h.done();
    assert_eq!(
        t.failures,
        [("left".to_string(), "timed out after 1s".to_string())]
    );
    assert_eq!(t.not_run, ["meet", "end"]);
    assert_eq!(t.tasks_ok, 2, "start and right");
}

#[test]
fn an_attempt_that_committed_before_its_fence_stands() {
    let mut h = Harness::new::<Arms>(8);
    h.commit("start", None);
    let later = h.now + Duration::from_secs(2);
    let (key, attempt, _) = h.sched.expired(later, &h.exec).remove(0);
    assert!(!h
        .sched
        .on_fence(key, attempt, FenceResult::AlreadyCommitted, later));
    assert!(
        h.sched.expired(later, &h.exec).is_empty(),
        "no second fence"
    );
    h.commit("left", None);
    h.commit("right", None);
    h.commit("meet", None);
    h.commit("end", None);
    assert_eq!(h.done().status, RunStatus::Succeeded);
}

#[derive(FlowState, Default, Serialize, Deserialize)]
struct Grid {
    rows: Vec<u32>,
    cols: Vec<u32>,
}

#[flow]
impl Grid {
    #[step(start, next = row, foreach = rows)]
    fn start(&mut self) -> Result<()> {
        Ok(())
    }
    #[step(next = cell, foreach = cols)]
    fn row(&mut self, _r: &u32) -> Result<()> {
        Ok(())
    }
    #[step(next = row_done)]
    fn cell(&mut self, _c: &u32) -> Result<()> {
        Ok(())
    }
    #[step(join, next = grid_done)]
    fn row_done(&mut self, _inputs: Inputs<Self>) -> Result<()> {
        Ok(())
    }
    #[step(join, next = end)]
    fn grid_done(&mut self, _inputs: Inputs<Self>) -> Result<()> {
        Ok(())
    }
    #[step(end)]
    fn end(&mut self) -> Result<()> {
        Ok(())
    }
}

#[test]
fn nested_foreach_joins_close_each_level() {
    let mut h = Harness::new::<Grid>(16);
    h.commit("start", Some(2));
    h.commit("row/0", Some(2));
    h.commit("row/1", Some(1));
    assert_eq!(h.running(), ["cell/0.0", "cell/0.1", "cell/1.0"]);
    h.commit("cell/1.0", None);
    assert_eq!(h.running(), ["cell/0.0", "cell/0.1", "row_done/1"]);
    h.commit("row_done/1", None);
    h.commit("cell/0.1", None);
    h.commit("cell/0.0", None);
    let inner = h.take("row_done/0");
    assert_eq!(inner.spec.input_tasks().count(), 2);
    h.exec.running.push(inner);
    h.commit("row_done/0", None);
    let outer = h.take("grid_done");
    assert_eq!(outer.spec.input_tasks().count(), 2);
    h.exec.running.push(outer);
    h.commit("grid_done", None);
    h.commit("end", None);
    assert_eq!(h.done().tasks_ok, 10);
}

#[test]
fn reused_tasks_are_not_dispatched() {
    let ds = Datastore::open("memory://scheduler-tests", OpenMode::Create).unwrap();
    let run = Arc::new(RunContext::new(ds, Fan::NAME, "r2".into(), BTreeMap::new()));
    let mut pre = Prefilled::default();
    let root = IndexPath::root();
    pre.reuse.insert(
        (0, root.clone()),
        Arc::new(committed("start", &root, 0, Some(6))),
    );
    for i in [0, 2, 3] {
        pre.reuse.insert(
            (1, root.child(i)),
            Arc::new(committed("work", &root.child(i), 0, None)),
        );
    }
    let mut sched = Scheduler::new(Fan::graph(), run, pre);
    sched.start(Arc::new(Committed::initial(BTreeMap::new())));
    let mut exec = Fake {
        slots: 8,
        ..Fake::default()
    };
    sched.dispatch(Instant::now(), &mut exec);
    let ids: Vec<String> = exec.running.iter().map(|d| d.spec.task_id()).collect();
    assert_eq!(
        ids,
        ["work/1", "work/4", "work/5"],
        "start and work/0, 2, 3 come from the origin; the rest start in order"
    );
    let reused = sched
        .drain_events()
        .filter(|e| matches!(e, RunEvent::Reused { .. }))
        .count();
    assert_eq!(reused, 4);
}
