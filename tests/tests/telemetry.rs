//! Telemetry: a run, its steps and its task attempts are `tracing` spans that a user's
//! subscriber sees, nested run → step → task, with the run id, flow, step, task and attempt
//! as fields; what a step logs with `tracing` lands inside its attempt's span. The flow runs
//! in the `spanflow` fixture's own process, whose global subscriber is a capturing layer
//! (`tests/fixtures/spanflow.rs`). (The OTLP export of the `otel` feature is tested in `otel`.)

use std::collections::BTreeMap;

use flowlib_testkit::{fixture, text};
use serde_json::Value;

#[derive(Clone, Debug)]
struct Seen {
    name: String,
    parent: Option<u64>,
    fields: BTreeMap<String, String>,
    closed: bool,
}

#[test]
fn a_run_its_steps_and_attempts_are_nested_tracing_spans_with_their_ids() {
    let dir = tempfile::tempdir().unwrap();
    let o = std::process::Command::new(fixture("spanflow"))
        .arg(dir.path().join("ds"))
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    let mut spans: BTreeMap<u64, Seen> = BTreeMap::new();
    let mut events: Vec<(Option<u64>, String)> = Vec::new();
    let mut run_id = String::new();
    for line in String::from_utf8_lossy(&o.stdout).lines() {
        let v: Value = serde_json::from_str(line).unwrap_or_else(|e| panic!("{e}: {line}"));
        if let Some(s) = v.get("span") {
            let seen = &s["seen"];
            spans.insert(
                s["id"].as_u64().unwrap(),
                Seen {
                    name: seen["name"].as_str().unwrap().to_string(),
                    parent: seen["parent"].as_u64(),
                    fields: serde_json::from_value(seen["fields"].clone()).unwrap(),
                    closed: seen["closed"].as_bool().unwrap(),
                },
            );
        } else if let Some(e) = v.get("event") {
            events.push((
                e["span"].as_u64(),
                e["message"].as_str().unwrap().to_string(),
            ));
        } else if let Some(r) = v.get("run") {
            run_id = r.as_str().unwrap().to_string();
        }
    }
    struct Summary {
        run_id: String,
    }
    let summary = Summary { run_id };
    let named = |n: &str| -> Vec<(u64, Seen)> {
        spans
            .iter()
            .filter(|(_, s)| s.name == n)
            .map(|(id, s)| (*id, s.clone()))
            .collect()
    };
    let runs = named("flowlib.run");
    assert_eq!(runs.len(), 1, "{spans:#?}");
    let (run_id, run) = &runs[0];
    assert_eq!(run.fields["run_id"], summary.run_id);
    assert_eq!(run.fields["flow"], "Spans");
    assert_eq!(run.fields["status"], "succeeded");
    assert!(run.closed);

    let steps = named("flowlib.step");
    let mut step_names: Vec<&str> = steps
        .iter()
        .map(|(_, s)| s.fields["step"].as_str())
        .collect();
    step_names.sort();
    assert_eq!(step_names, ["end", "join", "start", "work"]);
    for (_, s) in &steps {
        assert_eq!(
            s.parent,
            Some(*run_id),
            "a step span is the run span's child: {s:?}"
        );
        assert_eq!(s.fields["run_id"], summary.run_id);
    }

    let mut tasks: Vec<(String, String, String, String)> = named("flowlib.task")
        .into_iter()
        .map(|(_, t)| {
            let parent = &spans[&t.parent.expect("a task span has a parent")];
            assert_eq!(parent.name, "flowlib.step", "{t:?}");
            assert_eq!(parent.fields["step"], t.fields["step"], "{t:?}");
            assert_eq!(t.fields["run_id"], summary.run_id);
            assert_eq!(t.fields["flow"], "Spans");
            assert!(t.closed, "{t:?}");
            (
                t.fields["task"].clone(),
                t.fields["attempt"].clone(),
                t.fields["status"].clone(),
                t.fields["step"].clone(),
            )
        })
        .collect();
    tasks.sort();
    let want: Vec<(String, String, String, String)> = [
        ("end", "0", "ok", "end"),
        ("join", "0", "ok", "join"),
        ("start", "0", "ok", "start"),
        ("work/0", "0", "ok", "work"),
        ("work/1", "0", "failed", "work"),
        ("work/1", "1", "ok", "work"),
    ]
    .iter()
    .map(|(a, b, c, d)| (a.to_string(), b.to_string(), c.to_string(), d.to_string()))
    .collect();
    assert_eq!(tasks, want);

    // what a step logs is inside its attempt's span
    let working: Vec<_> = events.iter().filter(|(_, m)| m == "working").collect();
    assert_eq!(working.len(), 3, "work/0, and work/1 twice: {events:?}");
    for (span, _) in working {
        let s = &spans[&span.expect("the event is inside a span")];
        assert_eq!(
            (s.name.as_str(), s.fields["step"].as_str()),
            ("flowlib.task", "work")
        );
    }
}
