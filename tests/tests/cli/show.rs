//! The graph (`show` in dot, mermaid and json) and `check` / `--help`.

use std::collections::{BTreeMap, BTreeSet};

use flowlib::RunStatus;
use flowlib_testkit::{text, Sandbox};
use serde_json::{json, Value};

use super::{announced_run, assert_ok, sorted, stdout};

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

/// Regression (#8): `runs` and `dump` print JSON for tools with `--format json`, and `dump`
/// takes `latest`.
#[test]
fn runs_and_dump_print_json_with_format_json() {
    let (sb, id) = super::hello_sandbox();
    let parse = |args: &[&str]| -> Value {
        let o = sb.run("hello", args);
        assert_ok(&o);
        serde_json::from_str(&stdout(&o))
            .unwrap_or_else(|e| panic!("{args:?}: {e}: {}", stdout(&o)))
    };
    let runs = parse(&["runs", "--format", "json"]);
    assert_eq!(runs["runs"][0]["info"]["record"]["run_id"], json!(id));
    assert_eq!(runs["runs"][0]["state"], json!("succeeded"));
    let run = parse(&["dump", "latest", "--format", "json"]);
    assert_eq!(run["view"], json!("run"));
    assert_eq!(run["info"]["record"]["run_id"], json!(id));
    let task = parse(&["dump", &format!("{id}/end"), "--format", "json"]);
    assert_eq!(task["view"], json!("task"));
    let greeting = task["artifacts"]
        .as_array()
        .unwrap()
        .iter()
        .find(|a| a["name"] == json!("greeting"))
        .expect("the greeting artifact");
    assert!(
        greeting["value"].as_str().unwrap().contains("Ada"),
        "{greeting}"
    );
    let artifact = parse(&["dump", "latest/end", "greeting", "--format", "json"]);
    assert_eq!(artifact["view"], json!("artifact"));
    assert!(
        artifact["value"].as_str().unwrap().contains("Ada"),
        "{artifact}"
    );
    // Text stays the default.
    let o = sb.run("hello", &["runs"]);
    assert!(serde_json::from_str::<Value>(&stdout(&o)).is_err());
}

/// Regression (#8.16): `latest` is accepted wherever a run id is taken.
#[test]
fn latest_names_the_latest_run_everywhere() {
    let (sb, id) = super::hello_sandbox();
    let o = sb.run("hello", &["verify", "--run", "latest"]);
    assert_ok(&o);
    let o = sb.run("hello", &["resume", "-q", "--origin", "latest"]);
    assert_ok(&o);
    let resumed = announced_run(&o);
    assert_ne!(resumed, id);
    let o = sb.run("hello", &["dump", "latest", "--format", "json"]);
    assert_ok(&o);
    let v: Value = serde_json::from_str(&stdout(&o)).unwrap();
    assert_eq!(v["info"]["record"]["run_id"], json!(resumed));
}
