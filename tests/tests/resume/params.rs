//! Resume with changed parameters, and the atomic resume record.

use super::*;

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
    // (The same JSON with one more space: compact, as a resume writes it, it has none.)
    let text = String::from_utf8(bytes).unwrap();
    assert!(text.contains("\"tasks\":["), "compact: {text}");
    std::fs::write(&path, text.replacen("\"tasks\":[", "\"tasks\": [", 1)).unwrap();
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
