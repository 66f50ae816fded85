//! End-to-end tests of the command line every flow binary gets from `flowlib::main`,
//! driven through the `hello`, `branch` and `train` examples. Each test works in its own
//! [`Sandbox`] (a temp directory with its own `./.flowlib`), so they run in parallel.
//!
//! Values are checked twice where it matters: once in what the CLI prints, once in what the
//! run stored, read back through the library (`Datastore::artifact`, `run_info`, manifests).

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::Output;

use flowlib::{Datastore, Digest, OpenMode, RunStatus};
use flowlib_testkit::{blob_path, example, snapshot, text, Sandbox};
use serde_json::{json, Value};

// ---------------------------------------------------------------------------------------
// helpers

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// Assert a zero exit and no panic.
#[track_caller]
fn assert_ok(o: &Output) {
    assert_eq!(o.status.code(), Some(0), "expected success\n{}", text(o));
    assert!(!stderr(o).contains("panicked"), "{}", text(o));
}

/// The run id a `run` announced on stderr (`flowlib: run <id> succeeded ...`).
#[track_caller]
fn announced_run(o: &Output) -> String {
    let err = stderr(o);
    let line = err
        .lines()
        .find(|l| l.starts_with("flowlib: run ") && l.contains(" succeeded"))
        .unwrap_or_else(|| panic!("no `flowlib: run <id> succeeded` line\n{}", text(o)));
    line.split_whitespace()
        .nth(2)
        .expect("a run id after `flowlib: run`")
        .to_string()
}

/// Run example `name` with `args`, assert it succeeded, return the run id it announced.
#[track_caller]
fn run_ok(sb: &Sandbox, name: &str, args: &[&str]) -> String {
    let o = sb.run(name, args);
    assert_ok(&o);
    announced_run(&o)
}

/// Assert the shape of a bad-input failure: exit 2, nothing on stdout, exactly one
/// non-empty line on stderr starting with `error:` and containing each of `needles`, no
/// panic and no backtrace. Returns the line.
#[track_caller]
fn assert_one_line_error(o: &Output, needles: &[&str]) -> String {
    assert_eq!(o.status.code(), Some(2), "expected exit 2\n{}", text(o));
    let err = stderr(o);
    assert!(
        !err.contains("panicked") && !err.to_lowercase().contains("backtrace"),
        "a panic or a backtrace\n{}",
        text(o)
    );
    let lines: Vec<&str> = err.lines().collect();
    assert_eq!(
        lines.len(),
        1,
        "expected exactly one line on stderr\n{}",
        text(o)
    );
    let line = lines[0];
    assert!(
        line.starts_with("error: ") && line.len() > "error: ".len() + 3,
        "the line must start with `error: ` and say something\n{}",
        text(o)
    );
    assert!(stdout(o).is_empty(), "nothing on stdout\n{}", text(o));
    for n in needles {
        assert!(
            line.contains(n),
            "the error should mention `{n}`\n{}",
            text(o)
        );
    }
    line.to_string()
}

/// Run example `name` with `args` in `sb` (with `RUST_BACKTRACE=1`, so a panic would show
/// its backtrace), assert a one-line bad-input error mentioning `needles`, and that the
/// sandbox is byte-for-byte unchanged. Returns the error line.
#[track_caller]
fn expect_bad_input(sb: &Sandbox, name: &str, args: &[&str], needles: &[&str]) -> String {
    let before = snapshot(sb.path());
    let o = sb
        .cmd(&example(name))
        .args(args)
        .env("RUST_BACKTRACE", "1")
        .output()
        .expect("spawn example");
    let line = assert_one_line_error(&o, needles);
    let after = snapshot(sb.path());
    let added: Vec<&PathBuf> = after.keys().filter(|k| !before.contains_key(*k)).collect();
    let changed: Vec<&PathBuf> = after
        .iter()
        .filter(|(k, v)| before.get(*k).is_some_and(|b| b != *v))
        .map(|(k, _)| k)
        .collect();
    assert!(
        added.is_empty() && changed.is_empty() && before.len() == after.len(),
        "`{name} {}` must write nothing; added {added:?}, changed {changed:?}\n{}",
        args.join(" "),
        text(&o)
    );
    line
}

/// Rows of `runs` output (the header dropped), split on whitespace.
fn runs_rows(o: &Output) -> Vec<Vec<String>> {
    let out = stdout(o);
    let mut lines = out.lines();
    let header = lines.next().unwrap_or_default();
    assert!(
        header.starts_with("RUN") && header.contains("STATUS"),
        "runs prints a header\n{}",
        text(o)
    );
    lines
        .filter(|l| !l.trim().is_empty())
        .map(|l| l.split_whitespace().map(str::to_string).collect())
        .collect()
}

fn open(path: &Path) -> Datastore {
    Datastore::open(path.to_str().unwrap(), OpenMode::Existing).expect("open datastore")
}

/// Artifact name -> blob digest of the successful task `task`.
fn digests(ds: &Datastore, flow: &str, run: &str, task: &str) -> BTreeMap<String, Digest> {
    ds.successful_task(flow, run, task)
        .unwrap_or_else(|e| panic!("task {task} of {run}: {e}"))
        .manifest
        .expect("successful tasks have a manifest")
        .artifacts
        .into_iter()
        .map(|(k, b)| (k, b.digest))
        .collect()
}

/// Digest of `value` encoded the way a flow field is.
fn digest_of<T: serde::Serialize>(value: &T) -> Digest {
    Digest::of(&flowlib::encode_blob(value).expect("encodes"))
}

/// The per-task lines of plain progress output (`  <task> ok (..ms)`): the task ids.
fn progress_tasks(o: &Output) -> Vec<String> {
    let mut tasks: Vec<String> = stderr(o)
        .lines()
        .filter(|l| l.starts_with("  "))
        .filter_map(|l| {
            let mut w = l.split_whitespace();
            match (w.next(), w.next()) {
                (Some(task), Some("ok")) => Some(task.to_string()),
                _ => None,
            }
        })
        .collect();
    tasks.sort();
    tasks
}

fn sorted(v: &[&str]) -> Vec<String> {
    let mut v: Vec<String> = v.iter().map(|s| s.to_string()).collect();
    v.sort();
    v
}

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
// 2. branch

#[test]
fn branch_computes_mean_and_variance_in_two_arms() {
    let sb = Sandbox::new();
    let o = sb.run("branch", &["run", "--n", "10"]);
    assert_ok(&o);
    assert!(
        stdout(&o).contains("n=10 mean=5.5 variance=8.25"),
        "{}",
        text(&o)
    );
    let id = announced_run(&o);
    let ds = sb.open();

    let info = ds.run_info("Branch", &id).unwrap();
    assert_eq!(info.status(), RunStatus::Succeeded);
    assert_eq!(info.record.params.get("n"), Some(&json!(10)));

    let mean: f64 = ds.artifact("Branch", &id, "stats", "mean").unwrap();
    let variance: f64 = ds.artifact("Branch", &id, "stats", "variance").unwrap();
    assert_eq!(mean, 5.5);
    assert_eq!(variance, 8.25);
    let numbers: Vec<u64> = ds.artifact("Branch", &id, "start", "numbers").unwrap();
    assert_eq!(numbers, (1..=10).collect::<Vec<u64>>());

    // Both arms ran, each computed its own statistic, and the join saw both.
    let sum: u64 = ds.artifact("Branch", &id, "sum", "sum").unwrap();
    let squares: u64 = ds
        .artifact("Branch", &id, "squares", "sum_squares")
        .unwrap();
    assert_eq!((sum, squares), (55, 385));
    let stats = ds.successful_task("Branch", &id, "stats").unwrap();
    let mut parents: Vec<String> = stats
        .manifest
        .unwrap()
        .parents
        .iter()
        .map(|p| p.task_id())
        .collect();
    parents.sort();
    // The join starts from the split's state (`start`) and joins both arms.
    assert_eq!(parents, sorted(&["start", "sum", "squares"]));
    let mut steps: Vec<String> = ds
        .task_attempts("Branch", &id)
        .unwrap()
        .iter()
        .filter(|a| a.status.is_success())
        .map(|a| a.task_id())
        .collect();
    steps.sort();
    assert_eq!(steps, sorted(&["start", "sum", "squares", "stats", "end"]));

    let d = sb.run("branch", &["dump", "latest/stats", "variance"]);
    assert_ok(&d);
    assert_eq!(stdout(&d).trim(), "8.25", "{}", text(&d));
}

const BRANCH_STEPS: [&str; 5] = ["start", "sum", "squares", "stats", "end"];
const BRANCH_EDGES: [(&str, &str); 5] = [
    ("start", "sum"),
    ("start", "squares"),
    ("sum", "stats"),
    ("squares", "stats"),
    ("stats", "end"),
];

fn expected_edges() -> BTreeSet<(String, String)> {
    BRANCH_EDGES
        .iter()
        .map(|(a, b)| (a.to_string(), b.to_string()))
        .collect()
}

#[test]
fn show_dot_has_every_step_and_edge() {
    let sb = Sandbox::new();
    let o = sb.run("branch", &["show", "--format", "dot"]);
    assert_ok(&o);
    let out = stdout(&o);
    assert!(out.trim_start().starts_with("digraph"), "{}", text(&o));
    assert!(out.trim_end().ends_with('}'), "{}", text(&o));
    for s in BRANCH_STEPS {
        assert!(
            out.contains(&format!("\"{s}\" [")),
            "node {s} missing\n{out}"
        );
    }
    // Edges: `"a" -> "b"` lines, compared as an exact set.
    fn node(s: &str) -> String {
        let s = s.trim().trim_end_matches(';');
        let s = s.split('[').next().unwrap_or_default();
        s.trim().trim_matches('"').to_string()
    }
    let edges: BTreeSet<(String, String)> = out
        .lines()
        .filter_map(|l| l.split_once("->"))
        .map(|(a, b)| (node(a), node(b)))
        .collect();
    assert_eq!(edges, expected_edges(), "{out}");
    assert!(
        sb.path().read_dir().unwrap().next().is_none(),
        "show writes nothing"
    );
}

#[test]
fn show_mermaid_has_every_step_and_edge() {
    let sb = Sandbox::new();
    let o = sb.run("branch", &["show", "--format", "mermaid"]);
    assert_ok(&o);
    let out = stdout(&o);
    assert!(out.starts_with("flowchart"), "{}", text(&o));
    // Nodes: `    sN<shape>"label..."`: map node ids to step names.
    let mut names: BTreeMap<String, String> = BTreeMap::new();
    for l in out.lines().skip(1) {
        let l = l.trim();
        if l.contains("-->") {
            continue;
        }
        let id: String = l.chars().take_while(|c| c.is_alphanumeric()).collect();
        let label = l.split('"').nth(1).unwrap_or_default();
        let name = label.split("<br/>").next().unwrap_or_default();
        names.insert(id, name.to_string());
    }
    let mut shown: Vec<String> = names.values().cloned().collect();
    shown.sort();
    assert_eq!(shown, sorted(&BRANCH_STEPS), "{out}");
    let edges: BTreeSet<(String, String)> = out
        .lines()
        .filter_map(|l| {
            let (a, b) = l.split_once("-->")?;
            let from = a.split_whitespace().next()?;
            let to = b.split_whitespace().next()?;
            Some((names.get(from)?.clone(), names.get(to)?.clone()))
        })
        .collect();
    assert_eq!(edges, expected_edges(), "{out}");
}

#[test]
fn show_json_parses_with_five_steps() {
    let sb = Sandbox::new();
    let o = sb.run("branch", &["show", "--format", "json"]);
    assert_ok(&o);
    let v: Value = serde_json::from_str(&stdout(&o))
        .unwrap_or_else(|e| panic!("show --format json is not JSON: {e}\n{}", text(&o)));
    assert_eq!(v["flow"], json!("Branch"));
    assert!(v["digest"]
        .as_str()
        .unwrap_or_default()
        .starts_with("sha256:"));
    let steps = v["steps"].as_array().expect("a steps array");
    assert_eq!(steps.len(), 5, "{v:#}");
    let names: Vec<&str> = steps.iter().map(|s| s["name"].as_str().unwrap()).collect();
    assert_eq!(names, BRANCH_STEPS);
    // `next` holds step indices; they must describe the same edges.
    let mut edges = BTreeSet::new();
    for s in steps {
        for n in s["next"].as_array().expect("a next array") {
            let to = names[n.as_u64().expect("a step index") as usize];
            edges.insert((s["name"].as_str().unwrap().to_string(), to.to_string()));
        }
    }
    assert_eq!(edges, expected_edges());
    // The digest is the one `check` reports.
    let c = sb.run("branch", &["check"]);
    assert_ok(&c);
    assert!(
        stdout(&c).contains(v["digest"].as_str().unwrap()),
        "{}",
        text(&c)
    );
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
// 4. content addressing

/// The distinct blob digests a `hello` run with `name` references: the initial state
/// (name, and the defaults "" / 0) plus every value its steps produce.
fn hello_blobs(name: &str) -> BTreeSet<Digest> {
    let greeting = format!("Hello, {name}!");
    let letters = greeting.chars().filter(|c| c.is_alphabetic()).count();
    [
        digest_of(&name.to_string()),
        digest_of(&String::new()),
        digest_of(&0usize),
        digest_of(&greeting),
        digest_of(&letters),
        digest_of(&greeting.to_uppercase()),
    ]
    .into_iter()
    .collect()
}

#[test]
fn identical_runs_write_no_new_blobs_and_changed_values_only_their_own() {
    let sb = Sandbox::new();
    let ada1 = run_ok(&sb, "hello", &["run", "-q", "--name", "Ada"]);
    let after_first = sb.blob_count();
    assert_eq!(after_first, hello_blobs("Ada").len());

    // The same run again: every blob already exists.
    let ada2 = run_ok(&sb, "hello", &["run", "-q", "--name", "Ada"]);
    assert_ne!(ada1, ada2);
    assert_eq!(
        sb.blob_count(),
        after_first,
        "a repeated run wrote new blobs"
    );
    let ds = sb.open();
    for task in ["start", "count", "shout", "end"] {
        assert_eq!(
            digests(&ds, "Hello", &ada1, task),
            digests(&ds, "Hello", &ada2, task),
            "task {task}: same values, same digests"
        );
    }
    let end = digests(&ds, "Hello", &ada1, "end");
    assert_eq!(end["name"], digest_of(&"Ada".to_string()));
    assert_eq!(end["greeting"], digest_of(&"Hello, Ada!".to_string()));
    assert_eq!(end["letters"], digest_of(&8usize));
    assert_eq!(end["shout"], digest_of(&"HELLO, ADA!".to_string()));

    // "Bob": name, greeting and shout change; "HelloBob" has 8 letters like "HelloAda".
    let mut expected: BTreeSet<Digest> = hello_blobs("Ada");
    let new: Vec<Digest> = hello_blobs("Bob").difference(&expected).copied().collect();
    assert_eq!(new.len(), 3, "name, greeting, shout");
    expected.extend(new);
    let bob = run_ok(&sb, "hello", &["run", "-q", "--name", "Bob"]);
    assert_eq!(sb.blob_count(), after_first + 3);
    let bob_end = digests(&ds, "Hello", &bob, "end");
    let changed: Vec<&str> = ["name", "greeting", "letters", "shout"]
        .into_iter()
        .filter(|a| bob_end[*a] != end[*a])
        .collect();
    assert_eq!(changed, ["name", "greeting", "shout"]);

    // "Grace": 10 letters, so `letters` changes too.
    let new: Vec<Digest> = hello_blobs("Grace")
        .difference(&expected)
        .copied()
        .collect();
    assert_eq!(new.len(), 4, "name, greeting, letters, shout");
    run_ok(&sb, "hello", &["run", "-q", "--name", "Grace"]);
    assert_eq!(sb.blob_count(), after_first + 3 + 4);
    expected.extend(new);

    // Exactly the expected blobs are on disk, each stored at its own digest.
    let on_disk: BTreeSet<Digest> = expected
        .iter()
        .copied()
        .filter(|d| blob_path(&sb.datastore(), d).is_file())
        .collect();
    assert_eq!(on_disk, expected);
    let v = sb.run("hello", &["verify"]);
    assert_ok(&v);
}

#[test]
fn unchanged_fields_point_at_their_parents_blob() {
    let sb = Sandbox::new();
    let id = run_ok(&sb, "hello", &["run", "-q", "--name", "Ada"]);
    let ds = sb.open();
    let initial: BTreeMap<String, Digest> = ds
        .run_info("Hello", &id)
        .unwrap()
        .record
        .initial
        .into_iter()
        .map(|(k, b)| (k, b.digest))
        .collect();
    assert_eq!(initial["name"], digest_of(&"Ada".to_string()));
    // Which field each step writes; every other field must keep its parent's digest.
    let chain = [
        ("start", Some("greeting")),
        ("count", Some("letters")),
        ("shout", Some("shout")),
        ("end", None),
    ];
    let mut parent = initial;
    for (step, writes) in chain {
        let now = digests(&ds, "Hello", &id, step);
        assert_eq!(
            now.keys().collect::<Vec<_>>(),
            parent.keys().collect::<Vec<_>>(),
            "step {step}: same artifacts"
        );
        for (field, d) in &now {
            if Some(field.as_str()) == writes {
                assert_ne!(*d, parent[field], "step {step} changed `{field}`");
            } else {
                assert_eq!(
                    *d, parent[field],
                    "step {step} did not change `{field}`: it must point at its parent's blob"
                );
            }
        }
        parent = now;
    }
}

// ---------------------------------------------------------------------------------------
// 5. datastore selection

#[test]
fn datastore_flag_with_a_relative_path() {
    let sb = Sandbox::new();
    let id = run_ok(&sb, "hello", &["run", "-q", "--datastore", "store"]);
    assert!(!sb.datastore().exists(), "nothing in ./.flowlib");
    assert!(flowlib::is_datastore_dir(&sb.path().join("store")));
    let ds = open(&sb.path().join("store"));
    assert_eq!(ds.latest_run("Hello").unwrap(), Some(id.clone()));
    let shout: String = ds.artifact("Hello", &id, "end", "shout").unwrap();
    assert_eq!(shout, "HELLO, WORLD!");

    // The flag is global: before the subcommand works too, and reads the same store.
    let r = sb.run("hello", &["--datastore", "store", "runs"]);
    assert_ok(&r);
    let rows = runs_rows(&r);
    assert_eq!(rows.len(), 1, "{}", text(&r));
    assert_eq!(rows[0][0], id);
    assert!(!sb.datastore().exists());
}

#[test]
fn datastore_flag_with_a_file_url() {
    let sb = Sandbox::new();
    let dir = sb.path().join("urlstore");
    let url = format!("file://{}", dir.display());
    let id = run_ok(&sb, "hello", &["run", "-q", "--datastore", &url]);
    assert!(!sb.datastore().exists(), "nothing in ./.flowlib");
    let ds = open(&dir);
    assert_eq!(ds.run_ids("Hello").unwrap(), vec![id.clone()]);
    let d = sb.run(
        "hello",
        &["dump", "latest/end", "shout", "--datastore", &url],
    );
    assert_ok(&d);
    assert_eq!(stdout(&d).trim(), "\"HELLO, WORLD!\"");

    // Percent-escapes in a file:// URL are decoded.
    let url = format!("file://{}/url%20store", sb.path().display());
    let id = run_ok(&sb, "hello", &["run", "-q", "--datastore", &url]);
    let ds = open(&sb.path().join("url store"));
    assert_eq!(ds.run_ids("Hello").unwrap(), vec![id]);
    assert!(!sb.path().join("url%20store").exists());
    assert!(!sb.datastore().exists());
}

#[test]
fn datastore_from_the_environment() {
    let sb = Sandbox::new();
    let o = sb
        .cmd(&example("hello"))
        .args(["run", "-q", "--name", "Env"])
        .env("FLOWLIB_DATASTORE", "envstore")
        .output()
        .unwrap();
    assert_ok(&o);
    let id = announced_run(&o);
    assert!(!sb.datastore().exists(), "nothing in ./.flowlib");
    let ds = open(&sb.path().join("envstore"));
    assert_eq!(ds.run_ids("Hello").unwrap(), vec![id.clone()]);
    let name: String = ds.artifact("Hello", &id, "start", "name").unwrap();
    assert_eq!(name, "Env");
    let d = sb
        .cmd(&example("hello"))
        .args(["dump", "latest/end", "greeting"])
        .env("FLOWLIB_DATASTORE", sb.path().join("envstore"))
        .output()
        .unwrap();
    assert_ok(&d);
    assert_eq!(stdout(&d).trim(), "\"Hello, Env!\"");
}

#[test]
fn datastore_flag_overrides_the_environment() {
    let sb = Sandbox::new();
    let o = sb
        .cmd(&example("hello"))
        .args(["run", "-q", "--datastore", "flagstore"])
        .env("FLOWLIB_DATASTORE", "envstore")
        .output()
        .unwrap();
    assert_ok(&o);
    let id = announced_run(&o);
    assert!(!sb.path().join("envstore").exists());
    assert!(!sb.datastore().exists());
    let ds = open(&sb.path().join("flagstore"));
    assert_eq!(ds.run_ids("Hello").unwrap(), vec![id]);
}

// ---------------------------------------------------------------------------------------
// 6. bad input: exit 2, one `error:` line, no panic, nothing written

/// A sandbox with one `hello --name Ada` run; returns it with the run id.
fn hello_sandbox() -> (Sandbox, String) {
    let sb = Sandbox::new();
    let id = run_ok(&sb, "hello", &["run", "-q", "--name", "Ada"]);
    (sb, id)
}

#[test]
fn bad_input_unknown_flag() {
    let sb = Sandbox::new();
    expect_bad_input(&sb, "hello", &["run", "--bogus"], &["--bogus"]);
    expect_bad_input(&sb, "hello", &["run", "--name"], &["--name"]);
    expect_bad_input(&sb, "hello", &["run", "-q", "--plain"], &[]);
    expect_bad_input(&sb, "hello", &["frobnicate"], &["frobnicate"]);
    assert!(!sb.datastore().exists());
}

#[test]
fn bad_input_ill_typed_parameter_names_the_flag() {
    // In an existing datastore (see the ignored test below for a fresh directory).
    let sb = Sandbox::new();
    run_ok(&sb, "branch", &["run", "-q", "--n", "3"]);
    for bad in ["abc", "-1", "1.5", ""] {
        expect_bad_input(&sb, "branch", &["run", "--n", bad], &["--n"]);
    }
    let line = expect_bad_input(&sb, "branch", &["run", "--n", "abc"], &["--n"]);
    assert!(line.contains("abc"), "{line}");
    expect_bad_input(
        &sb,
        "train",
        &["run", "--epochs", "many"],
        &["--epochs", "many"],
    );
    assert_eq!(sb.open().run_ids("Branch").unwrap().len(), 1);
}

#[test]

fn bad_input_ill_typed_parameter_in_a_fresh_directory_writes_nothing() {
    let sb = Sandbox::new();
    expect_bad_input(&sb, "branch", &["run", "--n", "abc"], &["--n"]);
    assert!(!sb.datastore().exists(), "no datastore created");
}

#[test]
fn bad_input_unknown_run() {
    let (sb, _) = hello_sandbox();
    expect_bad_input(&sb, "hello", &["dump", "nope"], &["nope"]);
    expect_bad_input(&sb, "hello", &["dump", "nope/end", "greeting"], &["nope"]);
    expect_bad_input(&sb, "hello", &["verify", "--run", "nope"], &["nope"]);
}

#[test]
fn bad_input_invalid_run_id() {
    let (sb, id) = hello_sandbox();
    for target in ["../x", "..", ".", "", "a b", "..%2f", "x\\y"] {
        expect_bad_input(&sb, "hello", &["dump", target], &["invalid run id"]);
    }
    // A valid but unknown run id followed by too many parts.
    expect_bad_input(&sb, "hello", &["dump", "a/b/c/d"], &["`a`"]);
    // A real run with a malformed task index.
    expect_bad_input(
        &sb,
        "hello",
        &["dump", &format!("{id}/end/x/y"), "greeting"],
        &["x/y"],
    );
    expect_bad_input(&sb, "hello", &["dump", "latest/end/1/2"], &["1/2"]);
}

#[test]
fn bad_input_unknown_step() {
    let (sb, _) = hello_sandbox();
    expect_bad_input(&sb, "hello", &["dump", "latest/nosuch"], &["nosuch"]);
    expect_bad_input(
        &sb,
        "hello",
        &["dump", "latest/nosuch", "greeting"],
        &["nosuch"],
    );
}

#[test]
fn bad_input_unknown_artifact() {
    let (sb, id) = hello_sandbox();
    expect_bad_input(&sb, "hello", &["dump", "latest/end", "nosuch"], &["nosuch"]);
    expect_bad_input(
        &sb,
        "hello",
        &["dump", &format!("{id}/count"), "bogus"],
        &["bogus"],
    );
}

#[test]
fn bad_input_datastore_is_a_regular_file() {
    let sb = Sandbox::new();
    std::fs::write(sb.path().join("afile"), "not a datastore").unwrap();
    for args in [
        &["run", "--datastore", "afile"][..],
        &["runs", "--datastore", "afile"],
        &["dump", "latest", "--datastore", "afile"],
        &["verify", "--datastore", "afile"],
    ] {
        expect_bad_input(&sb, "hello", args, &["afile", "not a directory"]);
    }
}

#[test]
fn bad_input_datastore_is_a_foreign_directory() {
    let sb = Sandbox::new();
    let dir = sb.path().join("foreign");
    std::fs::create_dir(&dir).unwrap();
    std::fs::write(dir.join("notes.txt"), "my notes").unwrap();
    for args in [
        &["run", "--datastore", "foreign"][..],
        &["runs", "--datastore", "foreign"],
        &["dump", "latest", "--datastore", "foreign"],
    ] {
        expect_bad_input(&sb, "hello", args, &["foreign"]);
        assert!(!dir.join("datastore.json").exists());
    }
    let o = sb
        .cmd(&example("hello"))
        .args(["run"])
        .env("FLOWLIB_DATASTORE", &dir)
        .output()
        .unwrap();
    assert_one_line_error(&o, &["foreign"]);
    assert!(!dir.join("datastore.json").exists());
    assert_eq!(
        std::fs::read_dir(&dir).unwrap().count(),
        1,
        "only notes.txt"
    );
}

#[test]
fn bad_input_datastore_does_not_exist() {
    let sb = Sandbox::new();
    for args in [
        &["runs", "--datastore", "nowhere"][..],
        &["dump", "latest", "--datastore", "nowhere"],
        &["dump", "latest/end", "greeting", "--datastore", "nowhere"],
        &["verify", "--datastore", "nowhere"],
        &["resume", "--datastore", "nowhere"],
    ] {
        expect_bad_input(&sb, "hello", args, &["nowhere"]);
        assert!(!sb.path().join("nowhere").exists());
    }
    // The default ./.flowlib, not there yet.
    expect_bad_input(&sb, "hello", &["runs"], &[".flowlib"]);
    expect_bad_input(&sb, "hello", &["dump", "latest"], &[".flowlib"]);
    assert!(!sb.datastore().exists());
}

#[test]
fn bad_input_max_workers_zero() {
    let sb = Sandbox::new();
    expect_bad_input(
        &sb,
        "hello",
        &["run", "--max-workers", "0"],
        &["--max-workers"],
    );
    expect_bad_input(&sb, "hello", &["run", "--max-workers", "two"], &["two"]);
    assert!(!sb.datastore().exists());
}

#[test]
fn bad_input_max_memory_bad_unit() {
    let sb = Sandbox::new();
    expect_bad_input(&sb, "hello", &["run", "--max-memory", "4GB"], &["4GB"]);
    expect_bad_input(&sb, "hello", &["run", "--max-memory", "lots"], &["lots"]);
    assert!(!sb.datastore().exists());
}

#[test]
fn bad_input_memory_budget_too_small_for_a_step() {
    let sb = Sandbox::new();
    // `squares` asks for 64MiB.
    expect_bad_input(
        &sb,
        "branch",
        &["run", "--max-memory", "1KiB"],
        &["squares"],
    );
    assert!(!sb.datastore().exists());
}

#[test]
fn bad_input_datastore_url() {
    let sb = Sandbox::new();
    expect_bad_input(&sb, "hello", &["run", "--datastore", ""], &["empty"]);
    expect_bad_input(
        &sb,
        "hello",
        &["run", "--datastore", "ftp://x/y"],
        &["ftp://"],
    );
    assert!(!sb.datastore().exists());
}

#[test]
fn dump_of_an_artifact_of_a_foreach_step_needs_a_task_index() {
    let sb = Sandbox::new();
    let id = run_ok(&sb, "train", &["run", "-q"]);
    let o = sb.run("train", &["dump", "latest/fit", "score"]);
    assert_eq!(o.status.code(), Some(2), "{}", text(&o));
    let err = stderr(&o);
    let lines: Vec<&str> = err.lines().collect();
    assert_eq!(lines.len(), 1, "{}", text(&o));
    assert!(lines[0].starts_with("error: "), "{}", text(&o));
    assert!(lines[0].contains(&format!("{id}/fit/0")), "{}", text(&o));
}

#[test]
fn bad_input_show_format_png() {
    let sb = Sandbox::new();
    expect_bad_input(&sb, "hello", &["show", "--format", "png"], &["png"]);
}

/// With no subcommand, clap prints the usage (many lines) on stderr: asserted here are
/// exit 2, nothing on stdout, a usage text listing the verbs, no panic, nothing written.
#[test]
fn no_subcommand_prints_usage_and_exits_2() {
    let sb = Sandbox::new();
    let o = sb
        .cmd(&example("hello"))
        .env("RUST_BACKTRACE", "1")
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(2), "{}", text(&o));
    assert!(stdout(&o).is_empty(), "{}", text(&o));
    let err = stderr(&o);
    assert!(err.contains("Usage:"), "{}", text(&o));
    for verb in [
        "run", "resume", "show", "check", "runs", "dump", "verify", "gc",
    ] {
        assert!(
            err.lines()
                .any(|l| l.split_whitespace().next() == Some(verb)),
            "usage lists `{verb}`\n{}",
            text(&o)
        );
    }
    assert!(!err.contains("panicked") && !err.contains("backtrace"));
    assert!(
        sb.path().read_dir().unwrap().next().is_none(),
        "nothing written"
    );
}

// ---------------------------------------------------------------------------------------
// 7. check and help

#[test]
fn check_prints_ok_and_help_exits_0() {
    let sb = Sandbox::new();
    let o = sb.run("hello", &["check"]);
    assert_ok(&o);
    let out = stdout(&o);
    assert!(out.starts_with("flow Hello: 4 steps"), "{}", text(&o));
    assert!(out.contains(": ok"), "{}", text(&o));
    let o = sb.run("train", &["check"]);
    assert_ok(&o);
    assert!(
        stdout(&o).starts_with("flow Train: 4 steps"),
        "{}",
        text(&o)
    );
    assert!(stdout(&o).contains(": ok"), "{}", text(&o));

    let o = sb.run("hello", &["--help"]);
    assert_ok(&o);
    let out = stdout(&o);
    assert!(
        out.contains("Usage:") && out.contains("flow Hello"),
        "{}",
        text(&o)
    );
    for verb in [
        "run", "resume", "show", "check", "runs", "dump", "verify", "gc",
    ] {
        assert!(
            out.lines()
                .any(|l| l.split_whitespace().next() == Some(verb)),
            "--help lists `{verb}`\n{}",
            text(&o)
        );
    }
    // `run --help` documents the parameter with its default.
    let o = sb.run("hello", &["run", "--help"]);
    assert_ok(&o);
    let out = stdout(&o);
    let line = out
        .lines()
        .find(|l| l.contains("--name"))
        .unwrap_or_else(|| panic!("--name missing\n{}", text(&o)));
    assert!(line.contains("world"), "{line}");
    assert!(
        sb.path().read_dir().unwrap().next().is_none(),
        "nothing written"
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

// ---------------------------------------------------------------------------------------
// 9. verify

#[test]
fn verify_detects_a_corrupted_blob() {
    let (sb, id) = hello_sandbox();
    let o = sb.run("hello", &["verify"]);
    assert_ok(&o);
    let out = stdout(&o);
    assert!(out.contains("no problems"), "{}", text(&o));
    assert!(!out.contains("problem:"), "{}", text(&o));

    // Damage the blob of `shout` ("HELLO, ADA!", written by `shout`, carried by `end`).
    let ds = sb.open();
    let shout = digests(&ds, "Hello", &id, "end")["shout"];
    let path = blob_path(&sb.datastore(), &shout);
    let mut bytes = std::fs::read(&path).unwrap();
    let mid = bytes.len() / 2;
    bytes[mid] ^= 0x20;
    std::fs::write(&path, &bytes).unwrap();

    let o = sb.run("hello", &["verify"]);
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    let out = stdout(&o);
    let digest = shout.to_string();
    for task in ["shout", "end"] {
        assert!(
            out.lines().any(|l| l.contains(&format!("run {id}"))
                && l.contains(&format!("task {task}"))
                && l.contains("`shout`")
                && l.contains(&digest)),
            "verify must name run, task {task}, artifact and digest\n{}",
            text(&o)
        );
    }
    assert!(out.contains("1 problem"), "{}", text(&o));
    let o = sb.run("hello", &["verify", "--run", &id]);
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    assert!(stdout(&o).contains(&digest), "{}", text(&o));

    // Reading it fails with one line naming the digest; other artifacts still read.
    let o = sb.run("hello", &["dump", "latest/end", "shout"]);
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    assert!(stdout(&o).is_empty(), "{}", text(&o));
    let err = stderr(&o);
    let lines: Vec<&str> = err.lines().collect();
    assert_eq!(lines.len(), 1, "{}", text(&o));
    assert!(lines[0].starts_with("error:"), "{}", text(&o));
    assert!(lines[0].contains(&digest), "{}", text(&o));
    assert!(lines[0].contains("corrupted"), "{}", text(&o));
    assert!(!err.contains("panicked"), "{}", text(&o));
    let err = ds
        .artifact::<String>("Hello", &id, "end", "shout")
        .unwrap_err()
        .to_string();
    assert!(err.contains("corrupted") && err.contains(&digest), "{err}");

    let o = sb.run("hello", &["dump", "latest/end", "greeting"]);
    assert_ok(&o);
    assert_eq!(stdout(&o).trim(), "\"Hello, Ada!\"");
}

// ---------------------------------------------------------------------------------------
// 10. several flows in one datastore

#[test]
fn two_flows_in_one_datastore_are_listed_separately() {
    let sb = Sandbox::new();
    let hello = run_ok(&sb, "hello", &["run", "-q"]);
    let branch = run_ok(&sb, "branch", &["run", "-q", "--n", "4"]);
    let ds = sb.open();
    assert_eq!(
        ds.flows().unwrap(),
        vec!["Branch".to_string(), "Hello".to_string()]
    );
    assert_eq!(ds.run_ids("Hello").unwrap(), vec![hello.clone()]);
    assert_eq!(ds.run_ids("Branch").unwrap(), vec![branch.clone()]);

    let o = sb.run("hello", &["runs"]);
    assert_ok(&o);
    let rows = runs_rows(&o);
    assert_eq!(rows.len(), 1, "{}", text(&o));
    assert_eq!(rows[0][0], hello);
    assert!(!stdout(&o).contains(&branch));

    let o = sb.run("branch", &["runs"]);
    assert_ok(&o);
    let rows = runs_rows(&o);
    assert_eq!(rows.len(), 1, "{}", text(&o));
    assert_eq!(rows[0][0], branch);
    assert!(!stdout(&o).contains(&hello));

    // Each binary's `latest` is its own flow's run; another flow's run id is unknown to it.
    let o = sb.run("branch", &["dump", "latest/stats", "mean"]);
    assert_ok(&o);
    assert_eq!(stdout(&o).trim(), "2.5");
    expect_bad_input(&sb, "hello", &["dump", &branch], &[&branch]);
}

#[test]
fn fsync_mode_commits_the_same_results() {
    let sb = Sandbox::new();
    let out = sb
        .cmd(&example("hello"))
        .args(["run", "-q", "--name", "Durable"])
        .env("FLOWLIB_FSYNC", "1")
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", text(&out));
    let ds = sb.open();
    let run = ds.latest_run("Hello").unwrap().unwrap();
    let shout: String = ds.artifact("Hello", &run, "end", "shout").unwrap();
    assert_eq!(shout, "HELLO, DURABLE!");
    assert_eq!(flowlib::verify(&ds, None, None).unwrap().problems.len(), 0);
}
