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

/// Whether a run was cancelled: its flag (Ctrl-C) or a `cancel.json` request in the store,
/// looked for every two seconds.
pub(crate) struct CancelWatch<'a> {
    ds: &'a Datastore,
    rel: String,
    flag: Option<std::sync::Arc<std::sync::atomic::AtomicBool>>,
    last_look: Option<Instant>,
    seen: bool,
}

impl<'a> CancelWatch<'a> {
    pub(crate) fn new(
        ds: &'a Datastore,
        flow: &str,
        run: &str,
        flag: Option<std::sync::Arc<std::sync::atomic::AtomicBool>>,
    ) -> Self {
        CancelWatch {
            ds,
            rel: crate::store::layout::cancel_request(flow, run),
            flag,
            last_look: None,
            seen: false,
        }
    }

    pub(crate) fn is_cancelled(&mut self) -> bool {
        if self.seen {
            return true;
        }
        if self
            .flag
            .as_ref()
            .is_some_and(|f| f.load(std::sync::atomic::Ordering::SeqCst))
        {
            self.seen = true;
            return true;
        }
        if self
            .last_look
            .is_none_or(|t| t.elapsed() >= std::time::Duration::from_secs(2))
        {
            self.last_look = Some(Instant::now());
            // A store error here is not a cancel; the next look tries again.
            self.seen = matches!(self.ds.head(&self.rel), Ok(Some(_)));
        }
        self.seen
    }
}

/// After a cancel, how long running attempts have to report before they are given up.
const CANCEL_GRACE: std::time::Duration = std::time::Duration::from_secs(10);

/// Run the scheduler to completion; `cancelled` is asked on every turn whether the run
/// was cancelled (Ctrl-C, `cancel <run>`).
pub(crate) fn drive(
    mut sched: Scheduler,
    exec: &mut dyn Executor,
    sink: &mut dyn EventSink,
    fencer: &dyn Fence,
    cancelled: &mut dyn FnMut() -> bool,
) -> Tally {
    let mut cancel_at: Option<Instant> = None;
    loop {
        if cancel_at.is_none() && cancelled() {
            cancel_at = Some(Instant::now());
            sched.cancel();
            exec.cancel();
        }
        if cancel_at.is_some_and(|t| t.elapsed() > CANCEL_GRACE) {
            sched.give_up_running();
        }
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
        for message in exec.notes() {
            sink.event(&crate::run::events::RunEvent::Note { message });
        }
        let now = Instant::now();
        for (key, attempt, error) in sched.expired(now, exec) {
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
