//! The driver: connects the scheduler to an executor, the store (for fencing) and an
//! event sink, until the run is over.

use std::time::Instant;

use crate::error::chain;
use crate::exec::Executor;
use crate::flow::graph::TaskKey;
use crate::meta::commit::fence;
use crate::meta::TaskRef;
use crate::run::events::EventSink;
use crate::run::scheduler::{FenceResult, Scheduler, Tally};
use crate::store::Datastore;

/// Fences timed-out attempts (a create-only `timed-out` commit record).
pub(crate) trait Fence {
    fn fence(&self, step: &str, key: &TaskKey, attempt: u32, error: &str) -> FenceResult;
}

/// Fences in the run's datastore.
pub(crate) struct StoreFence<'a> {
    pub(crate) ds: &'a Datastore,
    pub(crate) flow: &'a str,
    pub(crate) run: &'a str,
}

impl Fence for StoreFence<'_> {
    fn fence(&self, step: &str, key: &TaskKey, attempt: u32, error: &str) -> FenceResult {
        let task = TaskRef {
            run: self.run.to_string(),
            step: step.to_string(),
            index: key.1.clone(),
            attempt,
        };
        match fence(self.ds, self.flow, &task, error) {
            Ok(true) => FenceResult::Fenced,
            Ok(false) => FenceResult::AlreadyCommitted,
            Err(e) => FenceResult::Error(chain(&e)),
        }
    }
}

/// Run the scheduler to completion.
pub(crate) fn drive(
    mut sched: Scheduler,
    exec: &mut dyn Executor,
    sink: &mut dyn EventSink,
    fencer: &dyn Fence,
) -> Tally {
    loop {
        sched.dispatch(Instant::now(), exec);
        for e in sched.drain_events() {
            sink.event(&e);
        }
        if sched.is_idle() {
            break;
        }
        let wait = sched.next_wakeup(Instant::now());
        for f in exec.wait(wait) {
            sched.on_finished(f, Instant::now());
        }
        let now = Instant::now();
        for (key, attempt, error) in sched.expired(now) {
            let step = sched.step_name(key.0);
            let result = fencer.fence(step, &key, attempt, &error);
            if sched.on_fence(key.clone(), attempt, result, now) {
                exec.abandon(&key, attempt);
            }
        }
        for e in sched.drain_events() {
            sink.event(&e);
        }
        sink.tick();
    }
    sink.finish();
    sched.finish()
}
