//! The tracking commands end to end: `run --tag`, `tag`, `untag`, `runs --where`,
//! `compare`, `alias`, `lineage`, and their errors.

use serde_json::Value;

use super::{stderr, stdout, track, track_ok};
use flowlib_testkit::{text, Sandbox};

/// Two runs with different learning rates, the first tagged at start.
fn two_runs(sb: &Sandbox) -> (String, String) {
    let a = track_ok(
        sb,
        &[
            "run",
            "--lr",
            "0.005",
            "--tag",
            "team=vision",
            "--tag",
            "owner=ada",
        ],
    );
    let b = track_ok(sb, &["run", "--lr", "0.05"]);
    (a, b)
}

#[track_caller]
fn ok(sb: &Sandbox, args: &[&str]) -> String {
    let o = track(sb, args);
    assert_eq!(o.status.code(), Some(0), "{args:?}\n{}", text(&o));
    stdout(&o)
}

#[test]
fn tags_notes_and_search() {
    let sb = Sandbox::new();
    let (a, b) = two_runs(&sb);
    // tag, note, untag: the fold of the events.
    ok(&sb, &["tag", &b, "team=audio", "stage=dev"]);
    ok(&sb, &["tag", &b, "--note", "lr too high?"]);
    let out = ok(&sb, &["untag", &b, "stage"]);
    assert_eq!(out.lines().next(), Some("team=audio"), "{out}");
    let shown = ok(&sb, &["tag", &b, "--format", "json"]);
    let v: Value = serde_json::from_str(&shown).unwrap();
    assert_eq!(v["tags"], serde_json::json!({"team": "audio"}));
    assert_eq!(v["notes"][0]["text"], "lr too high?");
    assert_eq!(v["events"], 3);
    let tags = sb.open().run_tags("Track", &a).unwrap();
    assert_eq!(tags.tags["owner"], "ada");

    // The brief's filter, and the table naming its columns.
    let out = ok(
        &sb,
        &[
            "runs",
            "--where",
            r#"params.lr < 0.01 and metrics.val_loss < 0.4 and tags.team = "vision""#,
        ],
    );
    assert!(out.contains(&a) && !out.contains(&b), "{out}");
    assert!(
        out.lines().next().unwrap().contains("metrics.val_loss"),
        "{out}"
    );
    // Order, limit, JSON.
    let out = ok(
        &sb,
        &[
            "runs",
            "--where",
            "metrics.val_loss.count >= 1",
            "--order-by",
            "metrics.val_loss",
            "--desc",
            "--limit",
            "1",
            "--format",
            "json",
        ],
    );
    let v: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v["runs"].as_array().unwrap().len(), 1);
    assert_eq!(v["runs"][0]["run"], b.as_str());
    // val_loss: the last value logged (work/1: lr * 10 + 0.01).
    assert_eq!(v["runs"][0]["metrics"]["val_loss"]["last"], 0.51);
    assert_eq!(v["runs"][0]["metrics"]["val_loss"]["min"], 0.5);
    assert_eq!(v["runs"][0]["metrics"]["train_loss"]["count"], 200);
    // CSV.
    let out = ok(&sb, &["runs", "--order-by", "params.lr", "--format", "csv"]);
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines[0], "run,status,started,params.lr");
    assert!(lines[1].starts_with(&format!("{a},succeeded,")) && lines[1].ends_with(",0.005"));
    assert!(lines[2].starts_with(&b));
    // The same query in Rust.
    let q = flowlib::client::Query::parse("tags.team = 'audio' or params.lr < 0.01")
        .unwrap()
        .order_by("params.lr", false)
        .unwrap();
    let rows = flowlib::client::search(&sb.open(), "Track", &q).unwrap();
    let ids: Vec<&str> = rows.iter().map(|r| r.run.as_str()).collect();
    assert_eq!(ids, [a.as_str(), b.as_str()]);

    // compare: parameters, metrics, tags, artifact digests; differences marked.
    let out = ok(&sb, &["compare", &a, &b]);
    let line = |key: &str| {
        out.lines()
            .find(|l| l[1..].trim_start().starts_with(key))
            .unwrap_or_else(|| panic!("no {key} line\n{out}"))
            .to_string()
    };
    assert!(line("params.lr ").starts_with('*'), "{out}");
    assert!(line("params.points ").starts_with(' '), "{out}");
    assert!(line("metrics.val_loss ").contains("0.51"), "{out}");
    assert!(line("tags.team ").contains("vision") && line("tags.team ").contains("audio"));
    assert!(line("artifacts.end/best ").starts_with('*'));
    assert!(line("artifacts.end/points ").starts_with(' '));
    let v: Value =
        serde_json::from_str(&ok(&sb, &["compare", &a, &b, "--format", "json"])).unwrap();
    let lr = v["rows"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["key"] == "params.lr")
        .unwrap();
    assert_eq!(lr["differs"], true);
}

#[test]
fn aliases_and_lineage() {
    let sb = Sandbox::new();
    let (a, b) = two_runs(&sb);
    let out = ok(
        &sb,
        &["alias", "set", "champion", &format!("{a}/gather/best")],
    );
    assert!(out.starts_with("champion #0 -> "), "{out}");
    ok(&sb, &["alias", "tag", "champion", "stage=prod"]);
    ok(&sb, &["alias", "set", "champion", &b]);
    ok(
        &sb,
        &["alias", "set", "baseline", &format!("{a}/work/1/loss")],
    );
    let hist = ok(&sb, &["alias", "history", "champion"]);
    let lines: Vec<&str> = hist.lines().collect();
    assert_eq!(lines.len(), 2, "{hist}");
    assert!(lines[0].contains(&format!("{a}/gather/best")) && lines[0].contains("[stage=prod]"));
    assert!(lines[1].contains(&format!("#1 -> {b}/end")), "{hist}");
    let get = ok(&sb, &["alias", "get", "champion", "--format", "json"]);
    let v: Value = serde_json::from_str(&get).unwrap();
    assert_eq!(v["moves"][0]["number"], 1);
    assert_eq!(v["moves"][0]["task"]["step"], "end");
    let list = ok(&sb, &["alias", "list"]);
    assert!(
        list.contains("baseline #0") && list.contains("champion #1"),
        "{list}"
    );

    // In Rust: the artifact reference and its lineage.
    let ds = sb.open();
    let view = ds.alias("Track", "baseline").unwrap();
    let blob = view.blob().unwrap();
    let loss: f64 = ds.artifact("Track", &a, "work/1", "loss").unwrap();
    assert_eq!(loss, 0.005 * 10.0 + 0.01);
    assert_eq!(view.lineage.produced_by.len(), 1);
    assert_eq!(view.lineage.produced_by[0].task.task_id(), "work/1");
    assert_eq!(view.lineage.aliases[0].name, "baseline");

    // Lineage: producer, inputs, parameters; a resume that reuses it; the alias.
    let resumed = track_ok(
        &sb,
        &["resume", "gather", "--origin", &a, "--tag", "kind=rerun"],
    );
    assert_eq!(
        ds.run_tags("Track", &resumed).unwrap().tags["kind"],
        "rerun"
    );
    let out = ok(&sb, &["lineage", &format!("{a}/work/1/loss")]);
    assert!(
        out.contains(&format!("produced by {a}/work/1 attempt 0 as `loss`")),
        "{out}"
    );
    assert!(out.contains(&format!("input {a}/start attempt 0")), "{out}");
    assert!(out.contains("param lr = 0.005"), "{out}");
    assert!(out.contains(&format!("reused by {resumed}")), "{out}");
    assert!(out.contains("alias baseline #0"), "{out}");
    let by_digest = ok(
        &sb,
        &["lineage", &blob.digest.to_string(), "--format", "json"],
    );
    let v: Value = serde_json::from_str(&by_digest).unwrap();
    assert_eq!(v["produced_by"][0]["task"]["run"], a.as_str());
    assert_eq!(v["appears_in"][0]["run"], resumed.as_str());
    assert_eq!(v["appears_in"][0]["reused"], true);
}

#[test]
fn bad_input_is_one_line_and_exit_2() {
    let sb = Sandbox::new();
    let (a, _) = two_runs(&sb);
    let cases: Vec<(Vec<String>, &str)> = vec![
        (
            vec![
                "runs".into(),
                "--where".into(),
                "params.lr < 0.1 and".into(),
            ],
            "column 20",
        ),
        (
            vec![
                "runs".into(),
                "--where".into(),
                "metrics.val_loss < x".into(),
            ],
            "column 20",
        ),
        (
            vec!["runs".into(), "--where".into(), "loss < 1".into()],
            "not a field",
        ),
        (
            vec!["runs".into(), "--order-by".into(), "nope".into()],
            "not a field",
        ),
        (
            vec![
                "tag".into(),
                "20990101T000000000Z-000000000000".into(),
                "a=b".into(),
            ],
            "has no run",
        ),
        (vec!["tag".into(), a.clone(), "novalue".into()], "key=value"),
        (
            vec!["untag".into(), a.clone(), "missing".into()],
            "has no tag `missing`",
        ),
        (
            vec!["alias".into(), "get".into(), "nope".into()],
            "no alias `nope`",
        ),
        (
            vec![
                "alias".into(),
                "set".into(),
                "x".into(),
                format!("{a}/gather/nosuch"),
            ],
            "no artifact `nosuch`",
        ),
        (
            vec![
                "alias".into(),
                "set".into(),
                "x".into(),
                format!("{a}/work/7/loss"),
            ],
            "work/7",
        ),
        (
            vec!["alias".into(), "set".into(), "bad/name".into(), a.clone()],
            "not a valid alias name",
        ),
        (
            vec!["lineage".into(), "nonsense".into()],
            "neither a digest",
        ),
        (
            vec![
                "compare".into(),
                a.clone(),
                "20990101T000000000Z-000000000000".into(),
            ],
            "has no run",
        ),
        (
            vec!["run".into(), "--tag".into(), "a b=c".into()],
            "not a valid tag key",
        ),
    ];
    for (args, want) in &cases {
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let o = track(&sb, &args);
        let err = stderr(&o);
        assert_eq!(o.status.code(), Some(2), "{args:?}\n{}", text(&o));
        assert_eq!(
            err.trim_end().lines().count(),
            1,
            "{args:?}: one line\n{err}"
        );
        assert!(
            err.starts_with("error: ") && err.contains(want),
            "{args:?}: {err}"
        );
        assert!(!err.contains("panicked"), "{err}");
    }
    // An alias whose task was deleted.
    ok(&sb, &["alias", "set", "gone", &format!("{a}/gather/best")]);
    std::fs::remove_dir_all(
        sb.datastore()
            .join("flows/Track/runs")
            .join(&a)
            .join("tasks"),
    )
    .unwrap();
    let o = track(&sb, &["alias", "get", "gone"]);
    assert_eq!(o.status.code(), Some(2), "{}", text(&o));
    assert!(
        stderr(&o).contains("is deleted or was never committed"),
        "{}",
        text(&o)
    );
    assert_eq!(stderr(&o).trim_end().lines().count(), 1);
}
