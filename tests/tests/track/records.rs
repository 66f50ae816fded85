//! The tracking records under stress and damage: concurrent taggers and alias moves, gc
//! keeping what aliases point at, verify reporting damaged records by path, and the
//! untyped client reading lazily.

use std::time::Duration;

use flowlib::client::untyped::Run;
use flowlib_testkit::{fixture, text, Sandbox};

use super::track_ok;

#[test]
fn concurrent_taggers_in_processes_lose_nothing() {
    let sb = Sandbox::new();
    let run = track_ok(&sb, &["run", "--points", "1"]);
    let children: Vec<_> = (0..8)
        .map(|i| {
            sb.cmd(&fixture("trackflow"))
                .args([
                    "tag",
                    &run,
                    &format!("k{i}=v{i}"),
                    &format!("shared=from{i}"),
                ])
                .stdout(std::process::Stdio::null())
                .stderr(std::process::Stdio::piped())
                .spawn()
                .unwrap()
        })
        .collect();
    for c in children {
        let o = c.wait_with_output().unwrap();
        assert!(o.status.success(), "{}", text(&o));
    }
    let tags = sb.open().run_tags("Track", &run).unwrap();
    assert_eq!(tags.events, 8);
    for i in 0..8 {
        assert_eq!(tags.tags[&format!("k{i}")], format!("v{i}"));
    }
    assert!(tags.tags["shared"].starts_with("from"));
}

#[test]
fn concurrent_alias_moves_cannot_both_win() {
    let sb = Sandbox::new();
    let a = track_ok(&sb, &["run", "--points", "1"]);
    let b = track_ok(&sb, &["run", "--points", "1", "--lr", "0.1"]);
    let ds = sb.open();
    ds.set_alias("Track", "champion", &a, "end").unwrap();
    // Eight movers at once, each from the same starting point, many rounds.
    for round in 0..5 {
        let barrier = std::sync::Barrier::new(8);
        let results: Vec<_> = std::thread::scope(|s| {
            let hs: Vec<_> = (0..8)
                .map(|i| {
                    let (ds, barrier) = (&ds, &barrier);
                    let target = if i % 2 == 0 { &a } else { &b };
                    s.spawn(move || {
                        barrier.wait();
                        ds.set_alias("Track", "champion", &format!("{target}/work/0/loss"), "end")
                    })
                })
                .collect();
            hs.into_iter().map(|h| h.join().unwrap()).collect()
        });
        let wins: Vec<_> = results.iter().filter_map(|r| r.as_ref().ok()).collect();
        assert!(!wins.is_empty(), "round {round}: someone wins");
        for r in &results {
            if let Err(e) = r {
                let e = e.to_string();
                assert!(
                    e.contains("was moved concurrently") && e.contains(" by "),
                    "{e}"
                );
            }
        }
        // Every winner has its own number: none was silently overwritten.
        let mut numbers: Vec<u64> = wins.iter().map(|w| w.number).collect();
        numbers.sort();
        numbers.dedup();
        assert_eq!(numbers.len(), wins.len());
    }
    let history = ds.alias_history("Track", "champion").unwrap();
    let numbers: Vec<u64> = history.iter().map(|r| r.number).collect();
    assert_eq!(numbers, (0..history.len() as u64).collect::<Vec<_>>());
}

#[test]
fn gc_keeps_what_an_alias_points_at() {
    let sb = Sandbox::new();
    let a = track_ok(&sb, &["run", "--points", "1", "--lr", "0.123"]);
    let ds = sb.open();
    let rec = ds
        .set_alias("Track", "keep", &format!("{a}/work/1/loss"), "end")
        .unwrap();
    let kept = rec.blobs["loss"];
    let work = ds
        .successful_task("Track", &a, "work/1")
        .unwrap()
        .manifest
        .unwrap();
    assert!(
        work.inline.contains_key(&kept.digest),
        "`loss` is small: held inline in its task's record"
    );
    let blob = flowlib_testkit::blob_path(&sb.datastore(), &kept.digest);
    assert!(
        blob.exists(),
        "setting the alias stored the inline blob as an object"
    );
    let other = ds.successful_task("Track", &a, "gather").unwrap();
    let m = other.manifest.unwrap();
    let best = m.artifacts["best"];
    assert!(m.inline.contains_key(&best.digest), "no object to collect");
    // The run's initial state is objects: its `lr` is named by no alias.
    let unaliased = m.artifacts["lr"];
    assert!(flowlib_testkit::blob_path(&sb.datastore(), &unaliased.digest).exists());
    // The run goes away; only the alias still names its blob and manifest.
    std::fs::remove_dir_all(sb.datastore().join("flows/Track/runs").join(&a)).unwrap();
    let r = flowlib::gc(&ds, false, Duration::ZERO).unwrap();
    let hex = unaliased.digest.hex();
    assert!(
        r.deleted.iter().any(|d| d.path.contains(&hex[2..])),
        "the unaliased blob is collected: {:?}",
        r.deleted
    );
    let blob = flowlib_testkit::blob_path(&sb.datastore(), &kept.digest);
    assert!(blob.exists(), "the aliased blob survives gc");
    // The alias record carries the blobs it names (the task's manifest was inside the
    // deleted run's commit record): the alias still resolves to them.
    let named = ds.alias_history("Track", "keep").unwrap().pop().unwrap();
    assert_eq!(named.blobs["loss"], kept);
}

#[test]
fn verify_reports_damaged_tracking_records_by_path() {
    let sb = Sandbox::new();
    let a = track_ok(&sb, &["run", "--points", "10", "--tag", "team=x"]);
    let ds = sb.open();
    ds.set_alias("Track", "champion", &a, "end").unwrap();
    assert!(flowlib::verify(&ds, None, None).unwrap().is_ok());
    let run_dir = sb.datastore().join("flows/Track/runs").join(&a);
    let chunk = run_dir.join("metrics/work/0@0/00000000.jsonl");
    let tag = run_dir.join("tags/0000000000.json");
    let alias = sb
        .datastore()
        .join("flows/Track/aliases/champion/0000000000.json");
    for p in [&chunk, &tag, &alias] {
        assert!(p.exists(), "{}", p.display());
        std::fs::write(p, b"{ torn").unwrap();
    }
    let report = flowlib::verify(&ds, None, None).unwrap();
    let problems: Vec<String> = report.problems.iter().map(|p| format!("{p:?}")).collect();
    for p in [&chunk, &tag, &alias] {
        let name = p
            .strip_prefix(sb.datastore())
            .unwrap()
            .to_str()
            .unwrap()
            .to_string();
        assert!(
            problems.iter().any(|x| x.contains(&name)),
            "{name} in {problems:#?}"
        );
    }
    let o = sb
        .cmd(&fixture("trackflow"))
        .arg("verify")
        .output()
        .unwrap();
    assert_ne!(o.status.code(), Some(0), "{}", text(&o));
    assert!(text(&o).contains("00000000.jsonl"), "{}", text(&o));
}

#[test]
fn the_untyped_client_reads_only_what_it_is_asked_for() {
    let sb = Sandbox::new();
    let a = track_ok(&sb, &["run", "--points", "5", "--tag", "team=x"]);
    // In a store of format 1 every manifest is an object of its own, so one can go.
    assert!(flowlib_testkit::write_format1_store(&sb.datastore()) > 0);
    let ds = sb.open();
    let keep = ds
        .successful_task("Track", &a, "work/1")
        .unwrap()
        .manifest_ref
        .unwrap();
    // Every manifest but work/1's is gone: opening the run and reading work/1 still works.
    for a in ds.task_attempts("Track", &a).unwrap() {
        let m = a.manifest_ref.unwrap();
        if m.digest != keep.digest {
            let hex = m.digest.hex();
            std::fs::remove_file(sb.datastore().join(format!(
                "manifests/sha256/{}/{}.json",
                &hex[..2],
                &hex[2..]
            )))
            .unwrap();
        }
    }
    let run = Run::open(&ds, "Track", "latest").unwrap();
    assert_eq!(run.id(), a);
    assert_eq!(run.steps(), ["start", "work", "gather", "end"]);
    assert_eq!(run.tags().unwrap().tags["team"], "x");
    assert_eq!(run.params()["points"], 5);
    let tasks = run.step("work").unwrap().tasks().unwrap();
    assert_eq!(tasks.len(), 2);
    let t = &tasks[1];
    assert_eq!((t.id().as_str(), t.attempt()), ("work/1", 0));
    assert_eq!(t.status().unwrap(), flowlib::AttemptStatus::Ok);
    let loss = t.artifact("loss").unwrap();
    assert_eq!(loss.decode::<f64>().unwrap(), 0.01 * 10.0 + 0.01);
    assert_eq!(t.metrics().unwrap().len(), 6);
    assert_eq!(t.metric_summaries().unwrap()["train_loss"].count, 5);
    let names: Vec<String> = t
        .artifacts()
        .unwrap()
        .iter()
        .map(|a| a.name().to_string())
        .collect();
    assert!(names.contains(&"loss".to_string()));
    // Another task's manifest is gone: asking for it is an error naming the manifest.
    let e = run
        .task("gather")
        .unwrap()
        .artifact("best")
        .unwrap_err()
        .to_string();
    assert!(e.contains("manifest"), "{e}");
    assert!(run
        .step("nope")
        .unwrap_err()
        .to_string()
        .contains("no step `nope`"));
}
