//! Never losing work, in process: resume (whole, from a step, with changed parameters,
//! after a partial foreach), refusal when the graph no longer maps, retries, timeouts
//! fenced in the commit protocol, in-step checkpoints, and concurrent runs.

use std::sync::atomic::{AtomicBool, AtomicU32, AtomicUsize, Ordering};
use std::sync::Mutex;
use std::time::Duration;

use flowlib::prelude::*;
use flowlib::{AttemptStatus, ResumeOptions, Run, RunStatus};
use flowlib_testkit::{run_options, temp_store};

fn resume_opts(origin: Option<&str>, step: Option<&str>) -> ResumeOptions {
    let mut o = ResumeOptions::default();
    if let Some(id) = origin {
        o = o.with_origin(id);
    }
    if let Some(name) = step {
        o = o.with_step(name);
    }
    o
}

/// Tests in this file share global switches; run them one at a time.
static SERIAL: Mutex<()> = Mutex::new(());

fn serial() -> std::sync::MutexGuard<'static, ()> {
    SERIAL.lock().unwrap_or_else(|e| e.into_inner())
}

// ---------------------------------------------------------------------------------------

static JOIN_FAILS: AtomicBool = AtomicBool::new(false);
static FAIL_ITEM: AtomicU32 = AtomicU32::new(u32::MAX);
static SQUARE_CALLS: AtomicUsize = AtomicUsize::new(0);
static START_CALLS: AtomicUsize = AtomicUsize::new(0);

#[derive(FlowState, Default, Serialize, Deserialize)]
struct Squares {
    #[param(default = 2u64, help = "multiplier")]
    factor: u64,
    items: Vec<u64>,
    square: u64,
    total: u64,
    report: String,
}

#[flow]
impl Squares {
    #[step(start, next = square, foreach = items)]
    fn start(&mut self) -> Result<()> {
        START_CALLS.fetch_add(1, Ordering::SeqCst);
        self.items = (0..20).collect();
        Ok(())
    }

    #[step(next = sum)]
    fn square(&mut self, item: &u64) -> Result<()> {
        SQUARE_CALLS.fetch_add(1, Ordering::SeqCst);
        if *item == u64::from(FAIL_ITEM.load(Ordering::SeqCst)) {
            return Err(format!("item {item} is cursed").into());
        }
        self.square = item * item * self.factor;
        Ok(())
    }

    #[step(join, next = end)]
    fn sum(&mut self, inputs: Inputs<Self>) -> Result<()> {
        if JOIN_FAILS.load(Ordering::SeqCst) {
            return Err("the join is broken".into());
        }
        self.total = inputs.iter().map(|i| i.square).sum();
        Ok(())
    }

    #[step(end)]
    fn end(&mut self) -> Result<()> {
        self.report = format!("total={} factor={}", self.total, self.factor);
        Ok(())
    }
}

fn reset() {
    JOIN_FAILS.store(false, Ordering::SeqCst);
    FAIL_ITEM.store(u32::MAX, Ordering::SeqCst);
    SQUARE_CALLS.store(0, Ordering::SeqCst);
    START_CALLS.store(0, Ordering::SeqCst);
}

fn expected_total(factor: u64) -> u64 {
    (0..20u64).map(|i| i * i * factor).sum()
}

#[test]
fn resume_reuses_every_committed_task_and_reruns_the_failed_join() {
    let _g = serial();
    reset();
    let (_d, ds) = temp_store();
    JOIN_FAILS.store(true, Ordering::SeqCst);
    let first = flowlib::run::<Squares>(&ds, &run_options(2)).unwrap();
    assert_eq!(first.status, RunStatus::Failed);
    assert_eq!(first.failures[0].0, "sum");
    assert_eq!(SQUARE_CALLS.load(Ordering::SeqCst), 20);

    JOIN_FAILS.store(false, Ordering::SeqCst);
    SQUARE_CALLS.store(0, Ordering::SeqCst);
    START_CALLS.store(0, Ordering::SeqCst);
    let blobs_before = ds.run_ids("Squares").unwrap().len();
    let second =
        flowlib::resume::<Squares>(&ds, &run_options(2), &resume_opts(None, None)).unwrap();
    assert_eq!(second.status, RunStatus::Succeeded, "{second:?}");
    assert_eq!(
        second.tasks_reused, 21,
        "start and the 20 squares are reused"
    );
    assert_eq!(second.tasks_ok, 2, "only the join and the end run");
    assert_eq!(SQUARE_CALLS.load(Ordering::SeqCst), 0);
    assert_eq!(START_CALLS.load(Ordering::SeqCst), 0);
    assert_eq!(ds.run_ids("Squares").unwrap().len(), blobs_before + 1);

    let report: String = ds
        .artifact("Squares", &second.run_id, "end", "report")
        .unwrap();
    assert_eq!(report, format!("total={} factor=2", expected_total(2)));

    // The resumed run is a normal run: listable, dumpable, and it knows its origin.
    let run = Run::<Squares>::open(&ds, &second.run_id).unwrap();
    assert_eq!(run.step("square").unwrap().len(), 20);
    let reused = run.task("square/7").unwrap();
    assert!(reused.attempt().reused);
    assert_eq!(
        reused.attempt().source.run,
        first.run_id,
        "reused by reference to the origin"
    );
    let sq: u64 = reused.artifact("square").unwrap();
    assert_eq!(sq, 98);
    let info = run.info().record.resume.clone().unwrap();
    assert_eq!(info.origin, first.run_id);
    assert_eq!(info.reused_tasks, 21);

    // Resumable again: everything is reused, nothing runs.
    let third = flowlib::resume::<Squares>(&ds, &run_options(2), &resume_opts(None, None)).unwrap();
    assert_eq!(third.status, RunStatus::Succeeded);
    assert_eq!(third.tasks_reused, 23);
    assert_eq!(third.tasks_ok, 0);
    let report3: String = ds
        .artifact("Squares", &third.run_id, "end", "report")
        .unwrap();
    assert_eq!(report3, report);
}

#[test]
fn resume_reruns_only_the_failed_splits_of_a_foreach() {
    let _g = serial();
    reset();
    let (_d, ds) = temp_store();
    FAIL_ITEM.store(13, Ordering::SeqCst);
    let first = flowlib::run::<Squares>(&ds, &run_options(2)).unwrap();
    assert_eq!(first.status, RunStatus::Failed);
    assert_eq!(first.failures.len(), 1);
    assert_eq!(first.failures[0].0, "square/13");
    assert!(first.failures[0].1.contains("item 13 is cursed"));

    FAIL_ITEM.store(u32::MAX, Ordering::SeqCst);
    SQUARE_CALLS.store(0, Ordering::SeqCst);
    let second = flowlib::resume::<Squares>(
        &ds,
        &run_options(2),
        &resume_opts(Some(&first.run_id), None),
    )
    .unwrap();
    assert_eq!(second.status, RunStatus::Succeeded, "{second:?}");
    assert_eq!(
        SQUARE_CALLS.load(Ordering::SeqCst),
        1,
        "only square/13 runs again"
    );
    assert_eq!(second.tasks_reused, 20);
    let total: u64 = ds
        .artifact("Squares", &second.run_id, "sum", "total")
        .unwrap();
    assert_eq!(total, expected_total(2));
}

#[test]
fn resume_from_a_step_reruns_it_and_everything_after_with_new_parameters() {
    let _g = serial();
    reset();
    let (_d, ds) = temp_store();
    let first = flowlib::run::<Squares>(&ds, &run_options(2)).unwrap();
    assert_eq!(first.status, RunStatus::Succeeded);
    SQUARE_CALLS.store(0, Ordering::SeqCst);
    START_CALLS.store(0, Ordering::SeqCst);
    let mut o = run_options(2);
    o.params = vec![("factor".into(), "3".into())];
    let second = flowlib::resume::<Squares>(&ds, &o, &resume_opts(None, Some("square"))).unwrap();
    assert_eq!(second.status, RunStatus::Succeeded, "{second:?}");
    assert_eq!(
        START_CALLS.load(Ordering::SeqCst),
        0,
        "start is upstream: reused"
    );
    assert_eq!(SQUARE_CALLS.load(Ordering::SeqCst), 20);
    assert_eq!(second.tasks_reused, 1);
    let report: String = ds
        .artifact("Squares", &second.run_id, "end", "report")
        .unwrap();
    assert_eq!(report, format!("total={} factor=3", expected_total(3)));
    let info = ds.run_info("Squares", &second.run_id).unwrap().record;
    let changed = &info.resume.unwrap().changed_params;
    assert_eq!(
        changed["factor"],
        (serde_json::json!(2), serde_json::json!(3))
    );
    assert_eq!(info.params["factor"], serde_json::json!(3));
}

#[test]
fn resume_refuses_bad_requests_without_writing_anything() {
    let _g = serial();
    reset();
    let (_d, ds) = temp_store();
    let err =
        flowlib::resume::<Squares>(&ds, &run_options(2), &resume_opts(None, None)).unwrap_err();
    assert!(
        err.to_string().contains("no earlier run of flow Squares"),
        "{err}"
    );
    let first = flowlib::run::<Squares>(&ds, &run_options(2)).unwrap();
    for (origin, step, msg) in [
        (
            Some("20200101T000000000Z-000000000000"),
            None,
            "no run `20200101T000000000Z-000000000000`",
        ),
        (Some("../etc"), None, "invalid run id"),
        (Some("a/b"), None, "invalid run id"),
        (None, Some("nosuch"), "has no step `nosuch`"),
    ] {
        let err = flowlib::resume::<Squares>(&ds, &run_options(2), &resume_opts(origin, step))
            .unwrap_err()
            .to_string();
        assert!(err.contains(msg), "{err}");
    }
    assert_eq!(ds.run_ids("Squares").unwrap(), vec![first.run_id]);
}

// A flow whose graph changed between the origin and the resume.
mod v1 {
    use flowlib::prelude::*;

    #[derive(FlowState, Default, Serialize, Deserialize)]
    pub(super) struct Evolving {
        pub x: u32,
    }

    #[flow]
    impl Evolving {
        #[step(start, next = prep)]
        fn start(&mut self) -> Result<()> {
            Ok(())
        }

        #[step(next = train)]
        fn prep(&mut self) -> Result<()> {
            self.x = 1;
            Ok(())
        }

        #[step(next = end)]
        fn train(&mut self) -> Result<()> {
            Err("fails in v1".into())
        }

        #[step(end)]
        fn end(&mut self) -> Result<()> {
            Ok(())
        }
    }
}

mod v2 {
    use flowlib::prelude::*;

    #[derive(FlowState, Default, Serialize, Deserialize)]
    pub(super) struct Evolving {
        pub x: u32,
    }

    #[flow]
    impl Evolving {
        #[step(start, next = prepare)]
        fn start(&mut self) -> Result<()> {
            Ok(())
        }

        /// `prep` was renamed.
        #[step(next = train)]
        fn prepare(&mut self) -> Result<()> {
            self.x = 1;
            Ok(())
        }

        #[step(next = end)]
        fn train(&mut self) -> Result<()> {
            Ok(())
        }

        #[step(end)]
        fn end(&mut self) -> Result<()> {
            Ok(())
        }
    }
}

#[test]
fn resume_refuses_a_graph_that_no_longer_maps_and_says_what_differs() {
    let _g = serial();
    let (_d, ds) = temp_store();
    let first = flowlib::run::<v1::Evolving>(&ds, &run_options(2)).unwrap();
    assert_eq!(first.status, RunStatus::Failed);
    let err = flowlib::resume::<v2::Evolving>(&ds, &run_options(2), &resume_opts(None, None))
        .unwrap_err()
        .to_string();
    assert!(err.contains("the flow's graph changed"), "{err}");
    assert!(err.contains("step `prep` of run"), "{err}");
    assert!(err.contains("step `prepare` is new"), "{err}");
    assert!(
        err.contains("step `start` changed (next was [prep], now [prepare])"),
        "{err}"
    );
    // Resuming at a step upstream of every change re-runs everything: allowed.
    let ok =
        flowlib::resume::<v2::Evolving>(&ds, &run_options(2), &resume_opts(None, Some("start")))
            .unwrap();
    assert_eq!(ok.status, RunStatus::Succeeded);
    assert_eq!(ok.tasks_reused, 0);
}

// ---------------------------------------------------------------------------------------

static FLAKY_CALLS: AtomicU32 = AtomicU32::new(0);

#[derive(FlowState, Default, Serialize, Deserialize)]
struct Flaky {
    attempts_seen: Vec<u32>,
}

#[flow]
impl Flaky {
    #[step(start, next = end)]
    #[retry(times = 3, delay = "10ms")]
    fn start(&mut self, ctx: &mut Ctx) -> Result<()> {
        let n = FLAKY_CALLS.fetch_add(1, Ordering::SeqCst);
        if n < 2 {
            return Err(format!("transient failure #{n}").into());
        }
        self.attempts_seen = vec![ctx.attempt()];
        Ok(())
    }

    #[step(end)]
    fn end(&mut self) -> Result<()> {
        Ok(())
    }
}

#[test]
fn retries_back_off_and_record_every_attempt() {
    let _g = serial();
    FLAKY_CALLS.store(0, Ordering::SeqCst);
    let (_d, ds) = temp_store();
    let t0 = std::time::Instant::now();
    let s = flowlib::run::<Flaky>(&ds, &run_options(2)).unwrap();
    assert_eq!(s.status, RunStatus::Succeeded, "{s:?}");
    // Backoff: 10 ms then 20 ms.
    assert!(t0.elapsed() >= Duration::from_millis(30));
    let run = Run::<Flaky>::open(&ds, &s.run_id).unwrap();
    let mut attempts: Vec<(u32, AttemptStatus, Option<String>)> = run
        .attempts()
        .iter()
        .filter(|a| a.step == "start")
        .map(|a| (a.source.attempt, a.status, a.error.clone()))
        .collect();
    attempts.sort_by_key(|a| a.0);
    assert_eq!(attempts.len(), 3);
    assert_eq!(attempts[0].1, AttemptStatus::Failed);
    assert_eq!(attempts[0].2.as_deref(), Some("transient failure #0"));
    assert_eq!(attempts[1].2.as_deref(), Some("transient failure #1"));
    assert_eq!(attempts[2].1, AttemptStatus::Ok);
    let seen: Vec<u32> = run
        .task("start")
        .unwrap()
        .artifact("attempts_seen")
        .unwrap();
    assert_eq!(seen, vec![2]);
}

// ---------------------------------------------------------------------------------------

static SLOW_FINISHED: AtomicBool = AtomicBool::new(false);

#[derive(FlowState, Default, Serialize, Deserialize)]
struct Slow {
    winner: String,
}

#[flow]
impl Slow {
    #[step(start, next = end)]
    #[timeout("150ms")]
    #[retry(times = 1, delay = "1ms")]
    fn start(&mut self, ctx: &mut Ctx) -> Result<()> {
        if ctx.attempt() == 0 {
            // Runs well past the timeout, then tries to commit a different result.
            std::thread::sleep(Duration::from_millis(600));
            self.winner = "the timed-out attempt".into();
            SLOW_FINISHED.store(true, Ordering::SeqCst);
            return Ok(());
        }
        self.winner = "the retry".into();
        Ok(())
    }

    #[step(end)]
    fn end(&mut self) -> Result<()> {
        Ok(())
    }
}

#[test]
fn a_timed_out_attempt_is_fenced_and_can_never_become_the_result() {
    let _g = serial();
    SLOW_FINISHED.store(false, Ordering::SeqCst);
    let (_d, ds) = temp_store();
    let s = flowlib::run::<Slow>(&ds, &run_options(2)).unwrap();
    assert_eq!(s.status, RunStatus::Succeeded, "{s:?}");
    let winner: String = ds.artifact("Slow", &s.run_id, "end", "winner").unwrap();
    assert_eq!(winner, "the retry");
    // Let the abandoned thread finish and try to commit.
    for _ in 0..100 {
        if SLOW_FINISHED.load(Ordering::SeqCst) {
            break;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    assert!(SLOW_FINISHED.load(Ordering::SeqCst));
    std::thread::sleep(Duration::from_millis(200));
    let attempts = ds.task_attempts("Slow", &s.run_id).unwrap();
    let a0 = attempts
        .iter()
        .find(|a| a.step == "start" && a.source.attempt == 0)
        .unwrap();
    assert_eq!(a0.status, AttemptStatus::TimedOut, "{a0:?}");
    assert!(a0
        .error
        .as_deref()
        .unwrap()
        .contains("timed out after 150ms"));
    let winner: String = ds.artifact("Slow", &s.run_id, "start", "winner").unwrap();
    assert_eq!(
        winner, "the retry",
        "the late thread's result is never believed"
    );
}

// ---------------------------------------------------------------------------------------

static ITERATIONS: AtomicU32 = AtomicU32::new(0);
static CRASH_AT: AtomicU32 = AtomicU32::new(u32::MAX);

/// Ten checkpointed epochs that fail once after `CRASH_AT`; returns (first epoch, last).
fn train_ten_epochs(ctx: &mut Ctx) -> Result<(u32, u32)> {
    let from: u32 = ctx.checkpoint().load()?.unwrap_or(0);
    let mut epoch = from;
    while epoch < 10 {
        ITERATIONS.fetch_add(1, Ordering::SeqCst);
        epoch += 1;
        ctx.checkpoint().save(&epoch)?;
        if epoch == CRASH_AT.load(Ordering::SeqCst) {
            CRASH_AT.store(u32::MAX, Ordering::SeqCst);
            return Err(format!("crashed after epoch {epoch}").into());
        }
    }
    Ok((from, epoch))
}

#[derive(FlowState, Default, Serialize, Deserialize)]
struct Epochs {
    epochs: u32,
    resumed_from: Option<u32>,
}

#[flow]
impl Epochs {
    #[step(start, next = end)]
    #[checkpoint]
    #[retry(times = 1, delay = "1ms")]
    fn start(&mut self, ctx: &mut Ctx) -> Result<()> {
        let (from, epochs) = train_ten_epochs(ctx)?;
        self.resumed_from = Some(from);
        self.epochs = epochs;
        Ok(())
    }

    #[step(end)]
    fn end(&mut self) -> Result<()> {
        Ok(())
    }
}

#[test]
fn a_retry_continues_from_the_last_checkpoint() {
    let _g = serial();
    ITERATIONS.store(0, Ordering::SeqCst);
    CRASH_AT.store(4, Ordering::SeqCst);
    let (_d, ds) = temp_store();
    let s = flowlib::run::<Epochs>(&ds, &run_options(2)).unwrap();
    assert_eq!(s.status, RunStatus::Succeeded, "{s:?}");
    assert_eq!(
        ITERATIONS.load(Ordering::SeqCst),
        10,
        "4 before the failure, 6 after: none repeated"
    );
    let from: Option<u32> = ds
        .artifact("Epochs", &s.run_id, "end", "resumed_from")
        .unwrap();
    assert_eq!(from, Some(4));
}

#[derive(FlowState, Default, Serialize, Deserialize)]
struct EpochsNoRetry {
    epochs: u32,
    resumed_from: Option<u32>,
}

#[flow]
impl EpochsNoRetry {
    #[step(start, next = end)]
    #[checkpoint]
    fn start(&mut self, ctx: &mut Ctx) -> Result<()> {
        let (from, epochs) = train_ten_epochs(ctx)?;
        self.resumed_from = Some(from);
        self.epochs = epochs;
        Ok(())
    }

    #[step(end)]
    fn end(&mut self) -> Result<()> {
        Ok(())
    }
}

#[test]
fn a_resumed_run_continues_from_the_origins_checkpoint_but_a_fresh_run_does_not() {
    let _g = serial();
    ITERATIONS.store(0, Ordering::SeqCst);
    CRASH_AT.store(7, Ordering::SeqCst);
    let (_d, ds) = temp_store();
    let first = flowlib::run::<EpochsNoRetry>(&ds, &run_options(2)).unwrap();
    assert_eq!(first.status, RunStatus::Failed);
    assert_eq!(ITERATIONS.load(Ordering::SeqCst), 7);
    let second =
        flowlib::resume::<EpochsNoRetry>(&ds, &run_options(2), &resume_opts(None, None)).unwrap();
    assert_eq!(second.status, RunStatus::Succeeded, "{second:?}");
    assert_eq!(ITERATIONS.load(Ordering::SeqCst), 10);
    let from: Option<u32> = ds
        .artifact("EpochsNoRetry", &second.run_id, "end", "resumed_from")
        .unwrap();
    assert_eq!(from, Some(7));
    // A new run starts from scratch.
    ITERATIONS.store(0, Ordering::SeqCst);
    let third = flowlib::run::<EpochsNoRetry>(&ds, &run_options(2)).unwrap();
    assert_eq!(third.status, RunStatus::Succeeded);
    assert_eq!(ITERATIONS.load(Ordering::SeqCst), 10);
    let from: Option<u32> = ds
        .artifact("EpochsNoRetry", &third.run_id, "end", "resumed_from")
        .unwrap();
    assert_eq!(from, Some(0));
}

#[derive(FlowState, Default, Serialize, Deserialize)]
struct EpochsAtRate {
    #[param(default = 1u32, help = "learning rate")]
    rate: u32,
    epochs: u32,
    resumed_from: Option<u32>,
}

#[flow]
impl EpochsAtRate {
    #[step(start, next = end)]
    #[checkpoint]
    fn start(&mut self, ctx: &mut Ctx) -> Result<()> {
        let (from, epochs) = train_ten_epochs(ctx)?;
        self.resumed_from = Some(from);
        self.epochs = epochs * self.rate;
        Ok(())
    }

    #[step(end)]
    fn end(&mut self) -> Result<()> {
        Ok(())
    }
}

#[test]
fn a_resume_with_a_changed_parameter_ignores_checkpoints_made_with_the_old_value() {
    let _g = serial();
    ITERATIONS.store(0, Ordering::SeqCst);
    CRASH_AT.store(7, Ordering::SeqCst);
    let (_d, ds) = temp_store();
    let first = flowlib::run::<EpochsAtRate>(&ds, &run_options(2)).unwrap();
    assert_eq!(first.status, RunStatus::Failed);
    ITERATIONS.store(0, Ordering::SeqCst);
    let o = run_options(2).with_param("rate", "3");
    let second = flowlib::resume::<EpochsAtRate>(&ds, &o, &resume_opts(None, None)).unwrap();
    assert_eq!(second.status, RunStatus::Succeeded, "{second:?}");
    assert_eq!(
        ITERATIONS.load(Ordering::SeqCst),
        10,
        "all ten epochs run at the new rate"
    );
    let from: Option<u32> = ds
        .artifact("EpochsAtRate", &second.run_id, "end", "resumed_from")
        .unwrap();
    assert_eq!(from, Some(0), "the rate-1 checkpoint is not continued");
}

// ---------------------------------------------------------------------------------------

#[test]
fn concurrent_runs_in_one_datastore_do_not_interfere() {
    let _g = serial();
    reset();
    let (_d, ds) = temp_store();
    let handles: Vec<_> = (1..=4u64)
        .map(|factor| {
            let ds = ds.clone();
            std::thread::spawn(move || {
                let mut o = run_options(2);
                o.params = vec![("factor".into(), factor.to_string())];
                (factor, flowlib::run::<Squares>(&ds, &o).unwrap())
            })
        })
        .collect();
    let mut ids = Vec::new();
    for h in handles {
        let (factor, s) = h.join().unwrap();
        assert_eq!(s.status, RunStatus::Succeeded);
        let total: u64 = ds.artifact("Squares", &s.run_id, "sum", "total").unwrap();
        assert_eq!(total, expected_total(factor));
        ids.push(s.run_id);
    }
    ids.sort();
    ids.dedup();
    assert_eq!(ids.len(), 4);
    assert_eq!(ds.run_ids("Squares").unwrap().len(), 4);
}

// ---------------------------------------------------------------------------------------
// Changed parameters: a resume re-runs exactly the steps that read a changed parameter
// and everything downstream of them; everything else is reused.

static TUNED_CALLS: Mutex<Vec<&'static str>> = Mutex::new(Vec::new());

fn tuned_called(step: &'static str) {
    TUNED_CALLS.lock().unwrap().push(step);
}

fn tuned_calls() -> Vec<&'static str> {
    let mut v = std::mem::take(&mut *TUNED_CALLS.lock().unwrap());
    v.sort_unstable();
    v
}

#[derive(FlowState, Default, Serialize, Deserialize)]
struct Tuned {
    #[param(default = 1.0f64, help = "learning rate")]
    lr: f64,
    #[param(default = 7u32, help = "seed")]
    seed: u32,
    data: Vec<f64>,
    prepared: f64,
    fitted: f64,
    other: f64,
    report: String,
}

#[flow]
impl Tuned {
    #[step(start, next = prep)]
    fn start(&mut self) -> Result<()> {
        tuned_called("start");
        self.data = vec![1.0, 2.0, 3.0];
        Ok(())
    }

    #[step(next = [fit, other])]
    fn prep(&mut self) -> Result<()> {
        tuned_called("prep");
        self.prepared = self.data.iter().sum();
        Ok(())
    }

    #[step(next = merge)]
    fn fit(&mut self) -> Result<()> {
        tuned_called("fit");
        self.fitted = self.prepared * self.lr;
        Ok(())
    }

    #[step(next = merge)]
    fn other(&mut self) -> Result<()> {
        tuned_called("other");
        self.other = self.prepared + f64::from(self.seed);
        Ok(())
    }

    #[step(join, next = end)]
    fn merge(&mut self, inputs: Inputs<Self>) -> Result<()> {
        tuned_called("merge");
        self.fitted = inputs.from_step("fit").expect("fit input").fitted;
        self.other = inputs.from_step("other").expect("other input").other;
        Ok(())
    }

    #[step(end)]
    fn end(&mut self) -> Result<()> {
        tuned_called("end");
        self.report = format!("fitted={} other={}", self.fitted, self.other);
        Ok(())
    }
}

fn tuned_resume(
    ds: &flowlib::Datastore,
    origin: &str,
    params: &[(&str, &str)],
) -> flowlib::RunSummary {
    let mut o = run_options(2);
    o.params = params
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    let s = flowlib::resume::<Tuned>(ds, &o, &resume_opts(Some(origin), None)).unwrap();
    assert_eq!(s.status, RunStatus::Succeeded, "{s:?}");
    s
}

fn resume_info(ds: &flowlib::Datastore, run: &str) -> flowlib::ResumeInfo {
    ds.run_info("Tuned", run).unwrap().record.resume.unwrap()
}

#[test]
fn resume_with_a_changed_parameter_reruns_exactly_its_readers_and_their_downstream() {
    let _g = serial();
    let (_d, ds) = temp_store();
    tuned_calls();
    let first = flowlib::run::<Tuned>(&ds, &run_options(2)).unwrap();
    assert_eq!(first.status, RunStatus::Succeeded);
    assert_eq!(tuned_calls().len(), 6);

    // `lr` is read by `fit` only: fit, the join after it and the end re-run; start, prep
    // and the other branch are reused.
    let second = tuned_resume(&ds, &first.run_id, &[("lr", "2.0")]);
    assert_eq!(tuned_calls(), ["end", "fit", "merge"]);
    assert_eq!(second.tasks_reused, 3, "{second:?}");
    let report: String = ds
        .artifact("Tuned", &second.run_id, "end", "report")
        .unwrap();
    assert_eq!(
        report, "fitted=12 other=13",
        "the artifacts agree with lr=2"
    );
    let info = resume_info(&ds, &second.run_id);
    assert_eq!(
        info.changed_params["lr"],
        (serde_json::json!(1.0), serde_json::json!(2.0))
    );
    assert_eq!(
        info.rerun_for_params["lr"],
        ["fit", "merge", "end"],
        "the record says what re-ran because of lr"
    );

    // The same value again changes nothing: everything is reused.
    let third = tuned_resume(&ds, &second.run_id, &[("lr", "2")]);
    assert!(tuned_calls().is_empty());
    assert_eq!(third.tasks_reused, 6);
    let info = resume_info(&ds, &third.run_id);
    assert!(info.changed_params.is_empty(), "{info:?}");
    assert!(info.rerun_for_params.is_empty(), "{info:?}");

    // `seed` is read by `other`: the lr branch is reused this time.
    let fourth = tuned_resume(&ds, &third.run_id, &[("seed", "8")]);
    assert_eq!(tuned_calls(), ["end", "merge", "other"]);
    let report: String = ds
        .artifact("Tuned", &fourth.run_id, "end", "report")
        .unwrap();
    assert_eq!(report, "fitted=12 other=14");
    assert_eq!(
        resume_info(&ds, &fourth.run_id).rerun_for_params["seed"],
        ["other", "merge", "end"]
    );
}

#[test]
fn non_finite_parameters_are_recorded_and_their_changes_listed() {
    let _g = serial();
    let (_d, ds) = temp_store();
    tuned_calls();
    let first = flowlib::run::<Tuned>(&ds, &run_options(2).with_param("lr", "inf")).unwrap();
    assert_eq!(first.status, RunStatus::Succeeded);
    tuned_calls();
    let record = ds.run_info("Tuned", &first.run_id).unwrap().record;
    assert_eq!(record.params["lr"], serde_json::json!("inf"));

    let second = tuned_resume(&ds, &first.run_id, &[("lr", "NaN")]);
    assert_eq!(tuned_calls(), ["end", "fit", "merge"]);
    let info = resume_info(&ds, &second.run_id);
    assert_eq!(
        info.changed_params["lr"],
        (serde_json::json!("inf"), serde_json::json!("NaN"))
    );
    let report: String = ds
        .artifact("Tuned", &second.run_id, "end", "report")
        .unwrap();
    assert_eq!(report, "fitted=NaN other=13");

    let third = tuned_resume(&ds, &second.run_id, &[("lr", "-inf")]);
    assert_eq!(tuned_calls(), ["end", "fit", "merge"]);
    let info = resume_info(&ds, &third.run_id);
    assert_eq!(
        info.changed_params["lr"],
        (serde_json::json!("NaN"), serde_json::json!("-inf"))
    );
    let fourth = tuned_resume(&ds, &third.run_id, &[("lr", "-inf")]);
    assert!(tuned_calls().is_empty(), "-inf again is no change");
    assert!(resume_info(&ds, &fourth.run_id).changed_params.is_empty());
}

#[test]
fn a_resumed_run_reads_only_the_reuse_record_its_run_record_names() {
    let _g = serial();
    let (d, ds) = temp_store();
    tuned_calls();
    let first = flowlib::run::<Tuned>(&ds, &run_options(2)).unwrap();
    let second = tuned_resume(&ds, &first.run_id, &[("seed", "9")]);
    tuned_calls();
    let info = resume_info(&ds, &second.run_id);
    let pin = info.reuse.expect("the run record names its reuse record");
    let path = d
        .path()
        .join("ds/flows/Tuned/runs")
        .join(&second.run_id)
        .join("reuse.json");
    let bytes = std::fs::read(&path).unwrap();
    assert_eq!(pin.digest, flowlib::Digest::of(&bytes));
    assert_eq!(ds.task_attempts("Tuned", &second.run_id).unwrap().len(), 6);

    // Another reuse record in its place is refused, not silently believed.
    let text = String::from_utf8(bytes).unwrap();
    std::fs::write(&path, text.replacen("\"tasks\": [", "\"tasks\": [ ", 1)).unwrap();
    let err = ds.task_attempts("Tuned", &second.run_id).unwrap_err();
    assert!(
        err.to_string()
            .contains("not the reuse record the run record names"),
        "{err}"
    );
    std::fs::remove_file(&path).unwrap();
    let err = ds.task_attempts("Tuned", &second.run_id).unwrap_err();
    assert!(err.to_string().contains("missing"), "{err}");
}

// ---------------------------------------------------------------------------------------
// Exclusivity: a resume refuses an origin that is still running, and of two concurrent
// resumes of one origin exactly one runs.

static GATE_FAILS: AtomicBool = AtomicBool::new(false);
/// The next call of `work` blocks until `GATE_OPEN` (only that one call).
static GATE_BLOCK_NEXT: AtomicBool = AtomicBool::new(false);
static GATE_ENTERED: AtomicBool = AtomicBool::new(false);
static GATE_OPEN: AtomicBool = AtomicBool::new(false);
static GATE_CALLS: AtomicUsize = AtomicUsize::new(0);

#[derive(FlowState, Default, Serialize, Deserialize)]
struct Gate {
    done: bool,
}

#[flow]
impl Gate {
    #[step(start, next = work)]
    fn start(&mut self) -> Result<()> {
        Ok(())
    }

    #[step(next = end)]
    fn work(&mut self) -> Result<()> {
        GATE_CALLS.fetch_add(1, Ordering::SeqCst);
        if GATE_FAILS.load(Ordering::SeqCst) {
            return Err("work is broken".into());
        }
        if GATE_BLOCK_NEXT.swap(false, Ordering::SeqCst) {
            GATE_ENTERED.store(true, Ordering::SeqCst);
            while !GATE_OPEN.load(Ordering::SeqCst) {
                std::thread::sleep(Duration::from_millis(5));
            }
        }
        self.done = true;
        Ok(())
    }

    #[step(end)]
    fn end(&mut self) -> Result<()> {
        Ok(())
    }
}

fn gate_reset() {
    GATE_FAILS.store(false, Ordering::SeqCst);
    GATE_BLOCK_NEXT.store(false, Ordering::SeqCst);
    GATE_ENTERED.store(false, Ordering::SeqCst);
    GATE_OPEN.store(false, Ordering::SeqCst);
    GATE_CALLS.store(0, Ordering::SeqCst);
}

fn wait_until(what: &str, f: impl Fn() -> bool) {
    let t0 = std::time::Instant::now();
    while !f() {
        assert!(t0.elapsed() < Duration::from_secs(60), "timed out: {what}");
        std::thread::sleep(Duration::from_millis(5));
    }
}

#[test]
fn resume_refuses_an_origin_that_is_still_running() {
    let _g = serial();
    gate_reset();
    let (_d, ds) = temp_store();
    GATE_BLOCK_NEXT.store(true, Ordering::SeqCst);
    let running = {
        let ds = ds.clone();
        std::thread::spawn(move || flowlib::run::<Gate>(&ds, &run_options(2)).unwrap())
    };
    wait_until("the run reaches `work`", || {
        GATE_ENTERED.load(Ordering::SeqCst)
    });
    let origin = ds.latest_run("Gate").unwrap().unwrap();
    let info = ds.run_info("Gate", &origin).unwrap();
    assert_eq!(info.is_alive(), Some(true), "a running run is alive");

    let res = flowlib::resume::<Gate>(&ds, &run_options(2), &resume_opts(Some(&origin), None));
    GATE_OPEN.store(true, Ordering::SeqCst);
    let first = running.join().unwrap();
    assert_eq!(first.status, RunStatus::Succeeded);
    let err = match res {
        Ok(s) => panic!("a resume of a running run went ahead: {s:?}"),
        Err(e) => e,
    };
    let msg = err.to_string();
    assert!(matches!(err, flowlib::Error::InvalidInput(_)), "{err:?}");
    assert!(
        msg.contains(&format!("run {origin} is still running")) && msg.contains("heartbeat"),
        "{msg}"
    );
    assert_eq!(GATE_CALLS.load(Ordering::SeqCst), 1, "work ran once only");
    assert_eq!(
        ds.runs("Gate").unwrap().len(),
        1,
        "the refusal wrote no run"
    );

    // Once it finished, it is not alive, and may be resumed.
    assert_eq!(
        ds.run_info("Gate", &origin).unwrap().is_alive(),
        Some(false)
    );
    let again =
        flowlib::resume::<Gate>(&ds, &run_options(2), &resume_opts(Some(&origin), None)).unwrap();
    assert_eq!(again.status, RunStatus::Succeeded);
}

#[test]
fn of_two_concurrent_resumes_of_one_origin_one_runs_and_the_other_refuses() {
    let _g = serial();
    gate_reset();
    let (_d, ds) = temp_store();
    GATE_FAILS.store(true, Ordering::SeqCst);
    let origin = flowlib::run::<Gate>(&ds, &run_options(2)).unwrap();
    assert_eq!(origin.status, RunStatus::Failed);
    let origin = origin.run_id;
    GATE_FAILS.store(false, Ordering::SeqCst);
    GATE_CALLS.store(0, Ordering::SeqCst);
    // Whichever resume runs `work` first stays in it until the test opens the gate.
    GATE_BLOCK_NEXT.store(true, Ordering::SeqCst);

    let barrier = std::sync::Arc::new(std::sync::Barrier::new(2));
    let (tx, rx) = std::sync::mpsc::channel();
    let handles: Vec<_> = (0..2)
        .map(|_| {
            let (ds, barrier, tx, origin) =
                (ds.clone(), barrier.clone(), tx.clone(), origin.clone());
            std::thread::spawn(move || {
                barrier.wait();
                let r = flowlib::resume::<Gate>(
                    &ds,
                    &run_options(2),
                    &resume_opts(Some(&origin), None),
                );
                tx.send(
                    r.map_err(|e| (matches!(e, flowlib::Error::InvalidInput(_)), e.to_string())),
                )
                .unwrap();
            })
        })
        .collect();
    let first = rx
        .recv_timeout(Duration::from_secs(60))
        .expect("a resume ends");
    GATE_OPEN.store(true, Ordering::SeqCst);
    let second = rx
        .recv_timeout(Duration::from_secs(60))
        .expect("a resume ends");
    for h in handles {
        h.join().unwrap();
    }
    let (invalid, msg) = match first {
        Err(e) => e,
        Ok(s) => panic!("the first resume to end did not refuse (both ran): {s:?}; {second:?}"),
    };
    let winner = second.expect("the other resume runs");
    assert_eq!(winner.status, RunStatus::Succeeded);
    assert!(invalid, "{msg}");
    assert!(
        msg.contains(&origin) && msg.contains(&winner.run_id),
        "the refusal names the origin and the resume in progress: {msg}"
    );
    assert_eq!(
        GATE_CALLS.load(Ordering::SeqCst),
        1,
        "the failed work ran once"
    );
    assert_eq!(ds.runs("Gate").unwrap().len(), 2, "one new run only");

    // After the first resume finished, resuming the same origin again is allowed.
    let again =
        flowlib::resume::<Gate>(&ds, &run_options(2), &resume_opts(Some(&origin), None)).unwrap();
    assert_eq!(again.status, RunStatus::Succeeded);
    assert_eq!(again.tasks_reused, 1, "start is reused again");
    assert_eq!(ds.runs("Gate").unwrap().len(), 3);
}
