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

mod attempts;
mod exclusive;
mod params;
