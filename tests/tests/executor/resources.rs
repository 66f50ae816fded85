//! What a run is given: CPU slots (and refused impossible requests), parameters.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;
use std::time::Duration;

use flowlib::prelude::*;
use flowlib::{RunOptions, RunStatus};
use flowlib_testkit::{run_options, temp_store};

fn with_params(mut o: RunOptions, params: &[(&str, &str)]) -> RunOptions {
    o.params = params
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    o
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
