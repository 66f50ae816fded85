//! Flow shapes: nested foreach, failure isolation, an empty foreach, catch.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use flowlib::prelude::*;
use flowlib::{Run, RunStatus};
use flowlib_testkit::{run_options, temp_store};

// ---------------------------------------------------------------------------------------
// Nested foreach with both joins.

#[derive(FlowState, Default, Serialize, Deserialize)]
struct Grid {
    rows: Vec<u32>,
    cols: Vec<u32>,
    cell: u64,
    row_sum: u64,
    total: u64,
    seen: Vec<String>,
}

#[flow]
impl Grid {
    #[step(start, next = row, foreach = rows)]
    fn start(&mut self) -> Result<()> {
        self.rows = vec![1, 2, 3];
        self.cols = vec![10, 20];
        Ok(())
    }

    #[step(next = cell, foreach = cols)]
    fn row(&mut self, r: &u32) -> Result<()> {
        self.row_sum = u64::from(*r);
        Ok(())
    }

    #[step(next = join_cols)]
    fn cell(&mut self, c: u32, ctx: &mut Ctx) -> Result<()> {
        self.cell = self.row_sum * u64::from(c);
        self.seen = vec![ctx.task_id()];
        Ok(())
    }

    #[step(join, next = join_rows)]
    fn join_cols(&mut self, inputs: Inputs<Self>) -> Result<()> {
        self.row_sum = inputs.iter().map(|i| i.cell).sum();
        self.seen = inputs.iter().flat_map(|i| i.seen.clone()).collect();
        Ok(())
    }

    #[step(join, next = end)]
    fn join_rows(&mut self, inputs: Inputs<Self>) -> Result<()> {
        self.total = inputs.iter().map(|i| i.row_sum).sum();
        self.seen = inputs.iter().flat_map(|i| i.seen.clone()).collect();
        Ok(())
    }

    #[step(end)]
    fn end(&mut self) -> Result<()> {
        Ok(())
    }
}

#[test]
fn nested_foreach_runs_every_cell_and_both_joins() {
    let (_d, ds) = temp_store();
    let s = flowlib::run::<Grid>(&ds, &run_options(2)).unwrap();
    assert_eq!(s.status, RunStatus::Succeeded, "{s:?}");
    // 1 start + 3 rows + 6 cells + 3 column joins + 1 row join + 1 end
    assert_eq!(s.tasks_ok, 15);
    let run = Run::<Grid>::open(&ds, &s.run_id).unwrap();
    let total: u64 = run.task("join_rows").unwrap().artifact("total").unwrap();
    assert_eq!(total, (1 + 2 + 3) * (10 + 20));
    let seen: Vec<String> = run.task("end").unwrap().artifact("seen").unwrap();
    assert_eq!(
        seen,
        ["cell/0.0", "cell/0.1", "cell/1.0", "cell/1.1", "cell/2.0", "cell/2.1"]
    );
    let c: u64 = run.task("cell/2.1").unwrap().artifact("cell").unwrap();
    assert_eq!(c, 3 * 20);
    assert_eq!(run.step("join_cols").unwrap().len(), 3);
}

// ---------------------------------------------------------------------------------------
// A failing branch does not stop the other one.

static SLOW_ARM_DONE: AtomicUsize = AtomicUsize::new(0);

#[derive(FlowState, Default, Serialize, Deserialize)]
struct Fails {
    ok_value: u32,
    bad_value: u32,
}

#[flow]
impl Fails {
    #[step(start, next = [good, bad, boom])]
    fn start(&mut self) -> Result<()> {
        Ok(())
    }

    #[step(next = join)]
    fn good(&mut self) -> Result<()> {
        std::thread::sleep(Duration::from_millis(200));
        self.ok_value = 42;
        SLOW_ARM_DONE.fetch_add(1, Ordering::SeqCst);
        Ok(())
    }

    #[step(next = join)]
    fn bad(&mut self) -> Result<()> {
        let n: u32 = "not a number".parse()?;
        self.bad_value = n;
        Ok(())
    }

    #[step(next = join)]
    fn boom(&mut self) -> Result<()> {
        panic!("boom at {}", 7);
    }

    #[step(join, next = end)]
    fn join(&mut self, _inputs: Inputs<Self>) -> Result<()> {
        Ok(())
    }

    #[step(end)]
    fn end(&mut self) -> Result<()> {
        Ok(())
    }
}

#[test]
fn failures_are_isolated_and_reported_per_task() {
    let (_d, ds) = temp_store();
    let s = flowlib::run::<Fails>(&ds, &run_options(3)).unwrap();
    assert_eq!(s.status, RunStatus::Failed);
    assert!(
        SLOW_ARM_DONE.load(Ordering::SeqCst) >= 1,
        "the healthy arm must finish"
    );
    let failed: Vec<&str> = s.failures.iter().map(|(t, _)| t.as_str()).collect();
    assert_eq!(failed.len(), 2, "{:?}", s.failures);
    assert!(failed.contains(&"bad") && failed.contains(&"boom"));
    let bad = &s.failures.iter().find(|(t, _)| t == "bad").unwrap().1;
    assert!(bad.contains("invalid digit"), "{bad}");
    let boom = &s.failures.iter().find(|(t, _)| t == "boom").unwrap().1;
    assert!(
        boom.contains("panicked at") && boom.contains("boom at 7"),
        "{boom}"
    );
    assert!(
        boom.contains("tests/executor/shapes.rs"),
        "the panic location is reported: {boom}"
    );
    assert_eq!(s.not_run, ["join", "end"]);
    // The healthy arm committed its artifacts; the failures are recorded with their errors.
    let run = Run::<Fails>::open(&ds, &s.run_id).unwrap();
    let v: u32 = run.task("good").unwrap().artifact("ok_value").unwrap();
    assert_eq!(v, 42);
    let attempts = run.attempts().unwrap();
    let bad_attempt = attempts.iter().find(|a| a.step == "bad").unwrap();
    assert_eq!(bad_attempt.status, flowlib::AttemptStatus::Failed);
    assert!(bad_attempt
        .error
        .as_deref()
        .unwrap()
        .contains("invalid digit"));
    assert_eq!(run.status(), RunStatus::Failed);
    let err = s.into_result().unwrap_err().to_string();
    assert!(
        err.contains("task bad:") && err.contains("task boom:"),
        "{err}"
    );
}

// ---------------------------------------------------------------------------------------
// Empty foreach: the join runs with no inputs.

#[derive(FlowState, Default, Serialize, Deserialize)]
struct Empty {
    items: Vec<String>,
    count: usize,
    joined: bool,
}

#[flow]
impl Empty {
    #[step(start, next = each, foreach = items)]
    fn start(&mut self) -> Result<()> {
        Ok(())
    }

    #[step(next = gather)]
    fn each(&mut self, _item: &String) -> Result<()> {
        Err("never runs".into())
    }

    #[step(join, next = end)]
    fn gather(&mut self, inputs: Inputs<Self>) -> Result<()> {
        self.count = inputs.len();
        self.joined = true;
        Ok(())
    }

    #[step(end)]
    fn end(&mut self) -> Result<()> {
        Ok(())
    }
}

#[test]
fn foreach_over_nothing_still_joins() {
    let (_d, ds) = temp_store();
    let s = flowlib::run::<Empty>(&ds, &run_options(2)).unwrap();
    assert_eq!(s.status, RunStatus::Succeeded, "{s:?}");
    assert_eq!(s.tasks_ok, 3);
    let joined: bool = ds.artifact("Empty", &s.run_id, "end", "joined").unwrap();
    assert!(joined);
}

// ---------------------------------------------------------------------------------------
// Catch: the error becomes an inspectable value and the flow continues.

#[derive(FlowState, Default, Serialize, Deserialize)]
struct Catches {
    value: u32,
    error: Option<String>,
    after: String,
}

#[flow]
impl Catches {
    #[step(start, next = risky)]
    fn start(&mut self) -> Result<()> {
        self.value = 5;
        Ok(())
    }

    #[step(next = end)]
    #[catch(field = error)]
    fn risky(&mut self) -> Result<()> {
        self.value = 999;
        Err("the sensor is offline".into())
    }

    #[step(end)]
    fn end(&mut self) -> Result<()> {
        self.after = format!("value={} error={:?}", self.value, self.error);
        Ok(())
    }
}

#[test]
fn catch_records_the_error_and_continues_with_the_inputs() {
    let (_d, ds) = temp_store();
    let s = flowlib::run::<Catches>(&ds, &run_options(1)).unwrap();
    assert_eq!(s.status, RunStatus::Succeeded, "{s:?}");
    let after: String = ds.artifact("Catches", &s.run_id, "end", "after").unwrap();
    assert_eq!(after, "value=5 error=Some(\"the sensor is offline\")");
    let risky = ds.successful_task("Catches", &s.run_id, "risky").unwrap();
    assert_eq!(risky.status, flowlib::AttemptStatus::Caught);
    assert_eq!(risky.error.as_deref(), Some("the sensor is offline"));
}

// ---------------------------------------------------------------------------------------
// merge_artifacts: a join copies the fields its inputs agree on (#8.19).

#[derive(FlowState, Default, Serialize, Deserialize)]
struct Merge {
    #[param(default = true)]
    exclude_score: bool,
    items: Vec<u32>,
    data: Vec<f64>,
    tag: String,
    score: u32,
    seen: String,
}

#[flow]
impl Merge {
    #[step(start, next = work, foreach = items)]
    fn start(&mut self) -> Result<()> {
        self.items = vec![1, 2, 3];
        self.data = vec![0.5, 1.5];
        Ok(())
    }

    #[step(next = gather)]
    fn work(&mut self, item: &u32) -> Result<()> {
        self.tag = "same in every arm".into();
        self.score = item * 10;
        Ok(())
    }

    #[step(join, next = end)]
    fn gather(&mut self, inputs: Inputs<Self>) -> Result<()> {
        let exclude: &[&str] = if self.exclude_score { &["score"] } else { &[] };
        inputs.merge_artifacts(self, exclude)?;
        self.seen = format!("{} {:?}", self.tag, self.data);
        Ok(())
    }

    #[step(end)]
    fn end(&mut self) -> Result<()> {
        Ok(())
    }
}

#[test]
fn merge_artifacts_copies_agreed_fields_and_names_the_differing_ones() {
    let (_d, ds) = temp_store();
    let s = flowlib::run::<Merge>(&ds, &run_options(2)).unwrap();
    assert_eq!(s.status, RunStatus::Succeeded, "{:?}", s.failures);
    let end = Run::<Merge>::open(&ds, &s.run_id)
        .unwrap()
        .task("end")
        .unwrap()
        .state()
        .unwrap();
    assert_eq!(end.seen, "same in every arm [0.5, 1.5]");
    assert_eq!(end.tag, "same in every arm");

    let s =
        flowlib::run::<Merge>(&ds, &run_options(2).with_param("exclude_score", "false")).unwrap();
    assert_eq!(s.status, RunStatus::Failed);
    let (task, error) = &s.failures[0];
    assert_eq!(task, "gather");
    assert!(error.contains("differ on `score`"), "{error}");
    assert!(
        !error.contains("`tag`") && !error.contains("`data`"),
        "{error}"
    );
}
