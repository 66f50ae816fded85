//! The thread executor, in process: shapes, failure isolation, resources, parameters,
//! large artifacts, and what each run leaves in the datastore.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;
use std::time::Duration;

use flowlib::prelude::*;
use flowlib::{Run, RunOptions, RunStatus};
use flowlib_testkit::{run_options, temp_store};

fn with_params(mut o: RunOptions, params: &[(&str, &str)]) -> RunOptions {
    o.params = params
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    o
}

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
        boom.contains("tests/executor.rs"),
        "the panic location is reported: {boom}"
    );
    assert_eq!(s.not_run, ["join", "end"]);
    // The healthy arm committed its artifacts; the failures are recorded with their errors.
    let run = Run::<Fails>::open(&ds, &s.run_id).unwrap();
    let v: u32 = run.task("good").unwrap().artifact("ok_value").unwrap();
    assert_eq!(v, 42);
    let attempts = run.attempts();
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
// Resources: slots bound concurrency; impossible requests fail before the run starts.

static RUNNING: AtomicUsize = AtomicUsize::new(0);
static PEAK: AtomicUsize = AtomicUsize::new(0);
static PEAK_LOCK: Mutex<()> = Mutex::new(());

#[derive(FlowState, Default, Serialize, Deserialize)]
struct Heavy {
    jobs: Vec<u32>,
    done: u32,
}

#[flow]
impl Heavy {
    #[step(start, next = work, foreach = jobs)]
    fn start(&mut self) -> Result<()> {
        self.jobs = (0..6).collect();
        Ok(())
    }

    #[step(next = gather)]
    #[resources(cpu = 2, memory = "1MiB")]
    fn work(&mut self, job: &u32) -> Result<()> {
        let now = RUNNING.fetch_add(1, Ordering::SeqCst) + 1;
        PEAK.fetch_max(now, Ordering::SeqCst);
        std::thread::sleep(Duration::from_millis(60));
        RUNNING.fetch_sub(1, Ordering::SeqCst);
        self.done = *job;
        Ok(())
    }

    #[step(join, next = end)]
    fn gather(&mut self, inputs: Inputs<Self>) -> Result<()> {
        self.done = inputs.iter().map(|i| i.done).sum();
        Ok(())
    }

    #[step(end)]
    fn end(&mut self) -> Result<()> {
        Ok(())
    }
}

#[test]
fn cpu_slots_bound_concurrency_and_impossible_requests_are_refused() {
    let _g = PEAK_LOCK.lock().unwrap();
    let (_d, ds) = temp_store();
    PEAK.store(0, Ordering::SeqCst);
    let s = flowlib::run::<Heavy>(&ds, &run_options(4)).unwrap();
    assert_eq!(s.status, RunStatus::Succeeded);
    // cpu = 2 on 4 slots: never more than two at once, and two did overlap.
    assert_eq!(PEAK.load(Ordering::SeqCst), 2);

    PEAK.store(0, Ordering::SeqCst);
    let mut o = run_options(4);
    o.limits.max_memory = 1 << 20; // one task's worth of memory
    let s = flowlib::run::<Heavy>(&ds, &o).unwrap();
    assert_eq!(s.status, RunStatus::Succeeded);
    assert_eq!(
        PEAK.load(Ordering::SeqCst),
        1,
        "the memory budget serializes the tasks"
    );

    let before = ds.run_ids("Heavy").unwrap().len();
    let err = flowlib::run::<Heavy>(&ds, &run_options(1))
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("step `work` asks for cpu=2 but this run has 1 CPU slot"),
        "{err}"
    );
    let mut o = run_options(4);
    o.limits.max_memory = 1000;
    let err = flowlib::run::<Heavy>(&ds, &o).unwrap_err().to_string();
    assert!(err.contains("asks for memory=1MiB"), "{err}");
    assert_eq!(
        ds.run_ids("Heavy").unwrap().len(),
        before,
        "nothing is written for a refused run"
    );
}

// ---------------------------------------------------------------------------------------
// Parameters.

#[derive(FlowState, Default, Serialize, Deserialize)]
struct Params {
    #[param(default = 3u32, help = "how many")]
    count: u32,
    #[param(help = "a label")]
    label: String,
    #[param(default = true)]
    verbose: bool,
    #[param(default = vec![1.0, 2.0])]
    weights: Vec<f64>,
    #[param(required, help = "must be given")]
    seed: u64,
    out: String,
}

#[flow]
impl Params {
    #[step(start, next = end)]
    fn start(&mut self) -> Result<()> {
        self.out = format!(
            "{} {} {} {:?} {}",
            self.count, self.label, self.verbose, self.weights, self.seed
        );
        Ok(())
    }

    #[step(end)]
    fn end(&mut self) -> Result<()> {
        Ok(())
    }
}

#[test]
fn parameters_parse_apply_and_are_recorded() {
    let (_d, ds) = temp_store();
    let err = flowlib::run::<Params>(&ds, &run_options(1))
        .unwrap_err()
        .to_string();
    assert!(err.contains("missing required parameter --seed"), "{err}");
    let o = with_params(
        run_options(1),
        &[
            ("seed", "7"),
            ("label", "hi there"),
            ("weights", "[0.5]"),
            ("verbose", "false"),
        ],
    );
    let s = flowlib::run::<Params>(&ds, &o).unwrap();
    let out: String = ds.artifact("Params", &s.run_id, "end", "out").unwrap();
    assert_eq!(out, "3 hi there false [0.5] 7");
    let rec = ds.run_info("Params", &s.run_id).unwrap().record;
    assert_eq!(rec.params["count"], serde_json::json!(3));
    assert_eq!(rec.params["weights"], serde_json::json!([0.5]));
    let o = with_params(run_options(1), &[("seed", "x")]);
    let err = flowlib::run::<Params>(&ds, &o).unwrap_err().to_string();
    assert!(err.contains("invalid value \"x\" for --seed"), "{err}");
    let o = with_params(run_options(1), &[("seed", "1"), ("weights", "1,2")]);
    let err = flowlib::run::<Params>(&ds, &o).unwrap_err().to_string();
    assert!(err.contains("--weights") && err.contains("JSON"), "{err}");
}

#[derive(FlowState, Default, Serialize, Deserialize)]
struct Mutates {
    #[param(default = 1u32)]
    knob: u32,
}

#[flow]
impl Mutates {
    #[step(start, next = end)]
    fn start(&mut self) -> Result<()> {
        self.knob += 1;
        Ok(())
    }

    #[step(end)]
    fn end(&mut self) -> Result<()> {
        Ok(())
    }
}

#[test]
fn parameters_are_read_only() {
    let (_d, ds) = temp_store();
    let s = flowlib::run::<Mutates>(&ds, &run_options(1)).unwrap();
    assert_eq!(s.status, RunStatus::Failed);
    assert!(
        s.failures[0].1.contains("changed parameter `knob`"),
        "{:?}",
        s.failures
    );
}

// ---------------------------------------------------------------------------------------
// Large artifacts stream through the store and come back intact.

#[derive(FlowState, Default, Serialize, Deserialize)]
struct Big {
    bytes: Vec<u8>,
    floats: Vec<f32>,
    words: Vec<String>,
    check: u64,
}

#[flow]
impl Big {
    #[step(start, next = read)]
    fn start(&mut self) -> Result<()> {
        self.bytes = (0..20_000_000u32)
            .map(|i| (i.wrapping_mul(2_654_435_761) >> 24) as u8)
            .collect();
        self.floats = (0..3_000_000).map(|i| i as f32 * 0.25).collect();
        self.words = (0..400_000).map(|i| format!("word-{i}")).collect();
        Ok(())
    }

    #[step(next = end)]
    fn read(&mut self) -> Result<()> {
        self.check = self.bytes.iter().map(|&b| u64::from(b)).sum::<u64>()
            + self.floats.iter().map(|&f| f as u64).sum::<u64>()
            + self.words.len() as u64;
        Ok(())
    }

    #[step(end)]
    fn end(&mut self) -> Result<()> {
        Ok(())
    }
}

#[test]
fn large_artifacts_round_trip_through_the_store() {
    let (_d, ds) = temp_store();
    let s = flowlib::run::<Big>(&ds, &run_options(2)).unwrap();
    assert_eq!(s.status, RunStatus::Succeeded, "{s:?}");
    let run = Run::<Big>::open(&ds, &s.run_id).unwrap();
    let state = run.step("end").unwrap().state().unwrap();
    let expected: Vec<u8> = (0..20_000_000u32)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 24) as u8)
        .collect();
    assert!(state.bytes == expected);
    assert_eq!(state.floats.len(), 3_000_000);
    assert_eq!(state.floats[2_999_999], 2_999_999.0 * 0.25);
    assert_eq!(state.words[399_999], "word-399999");
    let m = run.task("read").unwrap().manifest().clone();
    let start = run.task("start").unwrap().manifest().clone();
    // `read` did not change the big fields: same blobs, nothing rewritten.
    assert_eq!(m.artifacts["bytes"], start.artifacts["bytes"]);
    assert!(m.artifacts["bytes"].size > 20_000_000);
    let expected_check = expected.iter().map(|&b| u64::from(b)).sum::<u64>()
        + (0..3_000_000)
            .map(|i| (i as f32 * 0.25) as u64)
            .sum::<u64>()
        + 400_000;
    assert_eq!(state.check, expected_check);
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
// A step loads only the fields it can touch; join inputs share the split's fields.

static DECODES: AtomicUsize = AtomicUsize::new(0);
static DECODES_LOCK: Mutex<()> = Mutex::new(());

/// Counts how often it is decoded.
#[derive(Clone, Default, Serialize, PartialEq, Debug)]
struct Counted(Vec<u32>);

impl<'de> serde::Deserialize<'de> for Counted {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        DECODES.fetch_add(1, Ordering::SeqCst);
        Vec::<u32>::deserialize(d).map(Counted)
    }
}

#[derive(FlowState, Default, Serialize, Deserialize)]
struct Lazy {
    big: Counted,
    items: Vec<u32>,
    small: u32,
    seen: usize,
}

#[flow]
impl Lazy {
    #[step(start, next = untouched)]
    fn start(&mut self) -> Result<()> {
        self.big = Counted((0..1000).collect());
        self.items = (0..5).collect();
        Ok(())
    }

    /// Never names `big`: it is neither decoded nor stored again.
    #[step(next = helper)]
    fn untouched(&mut self) -> Result<()> {
        self.small = 7;
        Ok(())
    }

    /// Calls a method on `self`: every field is loaded.
    #[step(next = fan, foreach = items)]
    fn helper(&mut self) -> Result<()> {
        self.seen = self.count_big();
        Ok(())
    }

    #[step(next = gather)]
    fn fan(&mut self, item: &u32) -> Result<()> {
        self.small = *item;
        Ok(())
    }

    #[step(join, next = end)]
    fn gather(&mut self, inputs: Inputs<Self>) -> Result<()> {
        self.seen = inputs.iter().map(|i| i.big.0.len()).sum();
        Ok(())
    }

    #[step(end)]
    fn end(&mut self) -> Result<()> {
        Ok(())
    }
}

impl Lazy {
    fn count_big(&self) -> usize {
        self.big.0.len()
    }
}

#[test]
fn steps_load_only_the_fields_they_name_and_joins_share_split_fields() {
    let _g = DECODES_LOCK.lock().unwrap();
    let graph = <Lazy as Flow>::graph();
    assert_eq!(
        graph.step("untouched").unwrap().uses.as_deref(),
        Some(&["small"][..])
    );
    assert_eq!(
        graph.step("helper").unwrap().uses,
        None,
        "a method call on self may touch anything"
    );
    let (_d, ds) = temp_store();
    DECODES.store(0, Ordering::SeqCst);
    let s = flowlib::run::<Lazy>(&ds, &run_options(2)).unwrap();
    assert_eq!(s.status, RunStatus::Succeeded, "{s:?}");
    // `start` names `big` (it assigns it), so it loads the default first; `helper` decodes
    // it once; the join decodes it once (its split state) and clones it into each of its 5
    // inputs. `untouched`, the 5 `fan` tasks and `end` never decode it.
    assert_eq!(DECODES.load(Ordering::SeqCst), 3);
    let run = Run::<Lazy>::open(&ds, &s.run_id).unwrap();
    let seen: usize = run.task("gather").unwrap().artifact("seen").unwrap();
    assert_eq!(seen, 5000);
    let helper_seen: usize = run.task("helper").unwrap().artifact("seen").unwrap();
    assert_eq!(helper_seen, 1000);
    let start = run.task("start").unwrap().manifest().artifacts["big"];
    assert_eq!(
        run.task("end").unwrap().manifest().artifacts["big"],
        start,
        "passed through untouched"
    );
    let state = run.step("end").unwrap().state().unwrap();
    assert_eq!(state.big, Counted((0..1000).collect()));
    assert_eq!(state.small, 7);
}
