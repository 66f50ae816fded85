//! `run` of the examples: results, parameters, failures, progress output.

use flowlib::{Datastore, RunStatus};
use flowlib_testkit::{text, Sandbox};
use serde_json::{json, Value};

use super::{
    announced_run, assert_ok, digests, progress_tasks, run_ok, runs_rows, sorted, stderr, stdout,
};

// ---------------------------------------------------------------------------------------
// 1. hello

#[test]
fn hello_run_stores_and_shows_its_artifacts() {
    let sb = Sandbox::new();
    let o = sb.run("hello", &["run", "--name", "Ada"]);
    assert_ok(&o);
    assert!(
        stdout(&o).contains("HELLO, ADA!"),
        "the end step prints the shout\n{}",
        text(&o)
    );
    let id = announced_run(&o);

    let ds = sb.open();
    assert_eq!(
        ds.latest_run("Hello").unwrap().as_deref(),
        Some(id.as_str())
    );
    assert_eq!(ds.run_ids("Hello").unwrap(), vec![id.clone()]);
    let shout: String = ds.artifact("Hello", &id, "end", "shout").unwrap();
    assert_eq!(shout, "HELLO, ADA!");
    let greeting: String = ds.artifact("Hello", &id, "end", "greeting").unwrap();
    assert_eq!(greeting, "Hello, Ada!");
    let letters: usize = ds.artifact("Hello", &id, "count", "letters").unwrap();
    assert_eq!(letters, 8);

    let info = ds.run_info("Hello", &id).unwrap();
    assert_eq!(info.status(), RunStatus::Succeeded);
    assert_eq!(info.record.run_id, id);
    assert_eq!(info.record.flow, "Hello");
    assert_eq!(info.record.params.get("name"), Some(&json!("Ada")));
    assert_eq!(info.record.params.len(), 1, "{:?}", info.record.params);
    assert_eq!(info.end.as_ref().unwrap().tasks_ok, 4);
    assert!(info.record.graph_digest.starts_with("sha256:"));

    // `runs`: exactly one row, this run, succeeded, with its parameter.
    let runs = sb.run("hello", &["runs"]);
    assert_ok(&runs);
    let rows = runs_rows(&runs);
    assert_eq!(rows.len(), 1, "{}", text(&runs));
    assert_eq!(rows[0][0], id, "{}", text(&runs));
    assert_eq!(rows[0][1], "succeeded", "{}", text(&runs));
    assert!(
        rows[0].iter().any(|c| c == "name=\"Ada\""),
        "{}",
        text(&runs)
    );

    // `dump latest/end greeting`: the value as JSON.
    let d = sb.run("hello", &["dump", "latest/end", "greeting"]);
    assert_ok(&d);
    assert_eq!(stdout(&d).trim(), "\"Hello, Ada!\"", "{}", text(&d));
    let v: Value = serde_json::from_str(&stdout(&d)).unwrap();
    assert_eq!(v, json!("Hello, Ada!"));

    // `dump latest/count letters` is 8.
    let d = sb.run("hello", &["dump", "latest/count", "letters"]);
    assert_ok(&d);
    assert_eq!(stdout(&d).trim(), "8", "{}", text(&d));

    // `dump <id>`: the run, its parameter, and every step with its one task.
    let d = sb.run("hello", &["dump", &id]);
    assert_ok(&d);
    let out = stdout(&d);
    assert!(
        out.starts_with(&format!("run {id} of Hello: succeeded")),
        "{}",
        text(&d)
    );
    assert!(out.contains("name = \"Ada\""), "{}", text(&d));
    for step in ["start", "count", "shout", "end"] {
        assert!(
            out.lines().any(|l| {
                let mut w = l.split_whitespace();
                w.next() == Some(step) && l.contains("1 task ok")
            }),
            "step {step} missing from `dump {id}`\n{}",
            text(&d)
        );
    }
}

// ---------------------------------------------------------------------------------------
// 3. train

type Best = Option<(f64, f64, (f64, f64))>;

fn fit_scores(ds: &Datastore, run: &str) -> Vec<f64> {
    (0..4)
        .map(|i| {
            ds.artifact::<f64>("Train", run, &format!("fit/{i}"), "score")
                .unwrap()
        })
        .collect()
}

#[test]
fn train_fits_one_task_per_rate_and_picks_the_best() {
    let sb = Sandbox::new();
    let id = run_ok(&sb, "train", &["run", "-q"]);
    let ds = sb.open();

    let mut fits: Vec<String> = ds
        .task_attempts("Train", &id)
        .unwrap()
        .iter()
        .filter(|a| a.step == "fit" && a.status.is_success())
        .map(|a| a.task_id())
        .collect();
    fits.sort();
    assert_eq!(fits, sorted(&["fit/0", "fit/1", "fit/2", "fit/3"]));
    let start = ds.successful_task("Train", &id, "start").unwrap();
    assert_eq!(start.manifest.unwrap().foreach_count, Some(4));
    let rates: Vec<f64> = ds.artifact("Train", &id, "start", "rates").unwrap();
    assert_eq!(rates, vec![0.5, 0.1, 0.01, 0.001]);

    let scores = fit_scores(&ds, &id);
    assert!(scores.iter().all(|s| s.is_finite()), "{scores:?}");
    let best: Best = ds.artifact("Train", &id, "pick", "best").unwrap();
    let (rate, score, model) = best.expect("a best model");
    assert_eq!(rate, 0.5);
    let min = scores.iter().copied().fold(f64::INFINITY, f64::min);
    assert_eq!(
        score, min,
        "best is the lowest validation loss of {scores:?}"
    );
    assert_eq!(score, scores[0], "rate 0.5 is fit/0");
    let model0: (f64, f64) = ds.artifact("Train", &id, "fit/0", "model").unwrap();
    assert_eq!(model, model0);
    assert!(
        (model.0 - 3.0).abs() < 0.1 && (model.1 - 2.0).abs() < 0.1,
        "{model:?}"
    );
    let end_best: Best = ds.artifact("Train", &id, "end", "best").unwrap();
    assert_eq!(end_best, best);

    // `dump latest/fit`: the four tasks.
    let d = sb.run("train", &["dump", "latest/fit"]);
    assert_ok(&d);
    let out = stdout(&d);
    assert!(out.contains("4 successful tasks"), "{}", text(&d));
    for i in 0..4 {
        assert!(
            out.lines()
                .any(|l| l.split_whitespace().next() == Some(&format!("fit/{i}"))),
            "fit/{i} missing\n{}",
            text(&d)
        );
    }

    // `dump latest/fit/2 score`: a JSON number equal to the stored one.
    let d = sb.run("train", &["dump", "latest/fit/2", "score"]);
    assert_ok(&d);
    let v: Value = serde_json::from_str(&stdout(&d)).unwrap();
    assert_eq!(v.as_f64(), Some(scores[2]), "{}", text(&d));

    // `dump latest/pick best` agrees with the library.
    let d = sb.run("train", &["dump", "latest/pick", "best"]);
    assert_ok(&d);
    let v: Value = serde_json::from_str(&stdout(&d)).unwrap();
    assert_eq!(v, json!([rate, score, [model.0, model.1]]), "{}", text(&d));
}

#[test]
fn train_parameters_are_recorded_and_change_the_scores() {
    let sb = Sandbox::new();
    let default = run_ok(&sb, "train", &["run", "-q"]);
    let custom = run_ok(
        &sb,
        "train",
        &["run", "-q", "--split", "0.7", "--epochs", "10"],
    );
    assert_ne!(default, custom);
    let ds = sb.open();

    let p = ds.run_info("Train", &default).unwrap().record.params;
    assert_eq!(p.get("split"), Some(&json!(0.8)), "{p:?}");
    assert_eq!(p.get("epochs"), Some(&json!(100)), "{p:?}");
    let p = ds.run_info("Train", &custom).unwrap().record.params;
    assert_eq!(p.get("split"), Some(&json!(0.7)), "{p:?}");
    assert_eq!(p.get("epochs"), Some(&json!(10)), "{p:?}");
    let split: f64 = ds.artifact("Train", &custom, "fit/1", "split").unwrap();
    let epochs: u32 = ds.artifact("Train", &custom, "fit/1", "epochs").unwrap();
    assert_eq!((split, epochs), (0.7, 10));

    let a = fit_scores(&ds, &default);
    let b = fit_scores(&ds, &custom);
    for i in 0..4 {
        assert_ne!(a[i], b[i], "fit/{i} score unchanged: {a:?} vs {b:?}");
    }
    // The data does not depend on the parameters: both runs share its blob.
    let rows = |run: &str| digests(&ds, "Train", run, "start")["rows"];
    assert_eq!(rows(&default), rows(&custom));

    // `runs` shows both, oldest first, with their parameters.
    let r = sb.run("train", &["runs"]);
    assert_ok(&r);
    let rows = runs_rows(&r);
    assert_eq!(rows.len(), 2, "{}", text(&r));
    assert_eq!(
        (rows[0][0].as_str(), rows[1][0].as_str()),
        (default.as_str(), custom.as_str())
    );
    assert!(rows[1].iter().any(|c| c == "split=0.7"), "{}", text(&r));
    assert!(rows[1].iter().any(|c| c == "epochs=10"), "{}", text(&r));
    let r = sb.run("train", &["runs", "-n", "1"]);
    assert_ok(&r);
    let rows = runs_rows(&r);
    assert_eq!(rows.len(), 1, "{}", text(&r));
    assert_eq!(rows[0][0], custom);
}

#[test]
fn failed_run_exits_1_and_is_recorded_as_failed() {
    let sb = Sandbox::new();
    let o = sb.run("train", &["run", "--split", "1.5"]);
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    let err = stderr(&o);
    assert!(!err.contains("panicked"), "{}", text(&o));
    let line = err
        .lines()
        .find(|l| l.starts_with("flowlib: run ") && l.contains(" failed"))
        .unwrap_or_else(|| panic!("no `flowlib: run <id> failed` line\n{}", text(&o)));
    let id = line.split_whitespace().nth(2).unwrap().to_string();
    assert!(err.contains("--split must be in (0, 1)"), "{}", text(&o));
    let ds = sb.open();
    let info = ds.run_info("Train", &id).unwrap();
    assert_eq!(info.status(), RunStatus::Failed);
    let end = info.end.unwrap();
    assert_eq!(end.failures.len(), 1, "{:?}", end.failures);
    assert_eq!(end.failures[0].0, "start");
    let r = sb.run("train", &["runs"]);
    assert_ok(&r);
    let rows = runs_rows(&r);
    assert_eq!(rows.len(), 1, "{}", text(&r));
    assert_eq!(
        (rows[0][0].as_str(), rows[0][1].as_str()),
        (id.as_str(), "failed")
    );
}

// ---------------------------------------------------------------------------------------
// 8. progress output

const TRAIN_TASKS: [&str; 7] = ["start", "fit/0", "fit/1", "fit/2", "fit/3", "pick", "end"];

#[test]
fn plain_progress_prints_one_line_per_task() {
    let sb = Sandbox::new();
    let o = sb.run("train", &["run", "--plain"]);
    assert_ok(&o);
    assert_eq!(progress_tasks(&o), sorted(&TRAIN_TASKS), "{}", text(&o));
    let id = announced_run(&o);
    assert!(
        stderr(&o).contains(&format!("flowlib: run {id} of Train started")),
        "{}",
        text(&o)
    );
    // stderr is a pipe here, not a terminal: the default is the same plain output.
    let o = sb.run("train", &["run"]);
    assert_ok(&o);
    assert_eq!(progress_tasks(&o), sorted(&TRAIN_TASKS), "{}", text(&o));
    assert!(!stderr(&o).contains('\r'), "no live line off a terminal");
}

#[test]
fn quiet_prints_only_the_summary() {
    let sb = Sandbox::new();
    for flag in ["-q", "--quiet"] {
        let o = sb.run("train", &["run", flag]);
        assert_ok(&o);
        assert!(progress_tasks(&o).is_empty(), "{}", text(&o));
        let err = stderr(&o);
        let lines: Vec<&str> = err.lines().collect();
        assert_eq!(lines.len(), 1, "only the summary\n{}", text(&o));
        assert!(lines[0].starts_with("flowlib: run "), "{}", text(&o));
        assert!(lines[0].contains("succeeded"), "{}", text(&o));
        assert!(lines[0].contains("7 tasks"), "{}", text(&o));
    }
}
