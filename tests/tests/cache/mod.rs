//! The cross-run cache of `#[cache]` steps, in process: what hits and what misses, that a
//! hit runs nothing and writes no blob, that its successors see exactly what a computed
//! task would have given them, concurrent runs with the same keys, damaged entries, and
//! gc. The CLI, kill -9 and S3 cases are in `cli.rs`.

use std::collections::HashMap;
use std::sync::Mutex;

use flowlib::prelude::*;
use flowlib::{Datastore, RunStatus, RunSummary};
use flowlib_testkit::{run_options, temp_store};

mod cli;
mod lazy;

/// Tests in this module count step calls in shared statics: one at a time.
static SERIAL: Mutex<()> = Mutex::new(());

fn serial() -> std::sync::MutexGuard<'static, ()> {
    SERIAL.lock().unwrap_or_else(|e| e.into_inner())
}

static CALLS: Mutex<Vec<String>> = Mutex::new(Vec::new());

fn called(step: impl Into<String>) {
    CALLS.lock().unwrap().push(step.into());
}

/// The step calls since the last look, sorted.
fn calls() -> Vec<String> {
    let mut v = std::mem::take(&mut *CALLS.lock().unwrap());
    v.sort();
    v
}

fn run_with(ds: &Datastore, opts: flowlib::RunOptions) -> RunSummary {
    let s = flowlib::run::<Memo>(ds, &opts).unwrap();
    assert_eq!(s.status, RunStatus::Succeeded, "{s:?}");
    s
}

fn params(p: &[(&str, &str)]) -> flowlib::RunOptions {
    let mut o = run_options(2);
    o.params = p
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    o
}

/// start → prep (cached, reads `n` and `data`) → split over `items` → square (cached, per
/// item) → total (cached join) → end. `seed` is read by no cached step; `label` is passed
/// through `prep` without being read by it.
#[derive(FlowState, Default, Serialize, Deserialize)]
struct Memo {
    #[param(default = 3u32, help = "rows")]
    n: u32,
    #[param(default = 7u32, help = "read only by end")]
    seed: u32,
    #[param(default = 1u64, help = "offset added by square")]
    offset: u64,
    data: Vec<u64>,
    label: String,
    prepared: u64,
    items: Vec<u64>,
    squared: u64,
    total: u64,
    report: String,
}

#[flow]
impl Memo {
    #[step(start, next = prep)]
    fn start(&mut self) -> Result<()> {
        called("start");
        self.data = (1..=u64::from(self.n)).collect();
        self.label = format!("label-{}", self.seed);
        Ok(())
    }

    #[step(next = split)]
    #[cache]
    fn prep(&mut self) -> Result<()> {
        called("prep");
        self.prepared = self.data.iter().sum();
        Ok(())
    }

    #[step(next = square, foreach = items)]
    fn split(&mut self) -> Result<()> {
        called("split");
        self.items = self.data.clone();
        Ok(())
    }

    #[step(next = total)]
    #[cache]
    fn square(&mut self, item: &u64) -> Result<()> {
        called(format!("square({item})"));
        self.squared = item * item + self.offset;
        Ok(())
    }

    #[step(join, next = end)]
    #[cache]
    fn total(&mut self, inputs: Inputs<Self>) -> Result<()> {
        called("total");
        self.total = inputs.iter().map(|i| i.squared).sum();
        Ok(())
    }

    #[step(end)]
    fn end(&mut self) -> Result<()> {
        called("end");
        self.report = format!(
            "{} prepared={} total={} seed={}",
            self.label, self.prepared, self.total, self.seed
        );
        Ok(())
    }
}

fn report(ds: &Datastore, s: &RunSummary) -> String {
    ds.artifact("Memo", &s.run_id, "end", "report").unwrap()
}

#[test]
fn a_second_run_takes_every_cached_task_and_runs_no_cached_body() {
    let _g = serial();
    let (dir, ds) = temp_store();
    calls();
    let first = run_with(&ds, run_options(2));
    assert_eq!(first.tasks_cached, 0);
    assert_eq!(
        calls(),
        [
            "end",
            "prep",
            "split",
            "square(1)",
            "square(2)",
            "square(3)",
            "start",
            "total"
        ]
    );
    let blobs_before = blob_files(&dir);

    let second = run_with(&ds, run_options(2));
    assert_eq!(calls(), ["end", "split", "start"], "no cached body ran");
    assert_eq!(
        second.tasks_cached, 5,
        "prep, three squares, total: {second:?}"
    );
    assert_eq!(report(&ds, &second), report(&ds, &first));
    // One task of the run, read alone, is the hit its run took, as the whole run lists it.
    let hit = ds.successful_task("Memo", &second.run_id, "prep").unwrap();
    assert!(hit.cached && !hit.reused, "{hit:?}");
    assert_eq!(hit.source.run, first.run_id, "taken from the first run");
    let listed = ds.task_attempts("Memo", &second.run_id).unwrap();
    let listed = listed.iter().find(|a| a.step == "prep").unwrap();
    assert_eq!(
        (&hit.source, hit.manifest_ref),
        (&listed.source, listed.manifest_ref)
    );
    assert_eq!(
        blob_files(&dir),
        blobs_before,
        "a hit stores no blob (start, split and end re-store what already exists)"
    );
    // Each hit is recorded in the new run, pointing at the task that computed it.
    let run = ds.task_attempts("Memo", &second.run_id).unwrap();
    let cached: Vec<_> = run.iter().filter(|a| a.cached).collect();
    assert_eq!(cached.len(), 5);
    for a in &cached {
        assert_eq!(a.source.run, first.run_id, "{}", a.task_id());
    }
    // The end record counts them.
    let end = ds.run_info("Memo", &second.run_id).unwrap().end.unwrap();
    assert_eq!(end.tasks_cached, 5);
    assert_eq!(end.tasks_ok, 8);
    let v = flowlib::verify(&ds, None, None).unwrap();
    assert!(v.problems.is_empty(), "{:?}", v.problems);
}

#[test]
fn what_changes_the_key_misses_and_nothing_else_does() {
    let _g = serial();
    let (_d, ds) = temp_store();
    run_with(&ds, run_options(2));
    calls();

    // `seed` is read by no cached step, but it changes `label`, which `prep` and the
    // squares pass through without reading: they hit, and the end sees the new label
    // through them. The join's key holds every field of its inputs (a join can read any
    // of them), so it runs.
    let s = run_with(&ds, params(&[("seed", "9")]));
    assert_eq!(calls(), ["end", "split", "start", "total"]);
    assert_eq!(s.tasks_cached, 4);
    assert_eq!(report(&ds, &s), "label-9 prepared=6 total=17 seed=9");

    // `offset` is read by `square` only: the squares miss, and so does the join over
    // their changed outputs; `prep` still hits.
    let s = run_with(&ds, params(&[("offset", "10")]));
    assert_eq!(
        calls(),
        [
            "end",
            "split",
            "square(1)",
            "square(2)",
            "square(3)",
            "start",
            "total"
        ]
    );
    assert_eq!(s.tasks_cached, 1);
    assert_eq!(report(&ds, &s), "label-7 prepared=6 total=44 seed=7");

    // A changed upstream artifact (`data`, from `n`): prep misses; the items 1..=3 are
    // the same values, so those squares hit and only the new item 4 runs; the join's
    // inputs changed, so it runs.
    let s = run_with(&ds, params(&[("n", "4")]));
    assert_eq!(
        calls(),
        ["end", "prep", "split", "square(4)", "start", "total"]
    );
    assert_eq!(s.tasks_cached, 3, "squares of 1, 2, 3: {s:?}");
    assert_eq!(report(&ds, &s), "label-7 prepared=10 total=34 seed=7");
}

#[test]
fn no_cache_and_refresh() {
    let _g = serial();
    let (_d, ds) = temp_store();
    run_with(&ds, run_options(2));
    calls();

    let s = run_with(&ds, run_options(2).without_cache());
    assert_eq!(s.tasks_cached, 0);
    assert_eq!(calls().len(), 8, "--no-cache runs everything");

    // --refresh square: the squares run and republish; prep and total hit.
    let s = run_with(&ds, run_options(2).with_refresh("square"));
    assert_eq!(
        calls(),
        [
            "end",
            "split",
            "square(1)",
            "square(2)",
            "square(3)",
            "start"
        ]
    );
    assert_eq!(s.tasks_cached, 2);

    // Refreshing an unknown or uncached step is refused before anything runs.
    let e = flowlib::run::<Memo>(&ds, &run_options(2).with_refresh("nosuch")).unwrap_err();
    assert!(e.to_string().contains("has no step `nosuch`"), "{e}");
    let e = flowlib::run::<Memo>(&ds, &run_options(2).with_refresh("end")).unwrap_err();
    assert!(e.to_string().contains("not a #[cache] step"), "{e}");
    assert!(calls().is_empty());
}

/// A step whose source changed, or whose `version` was bumped, misses; the same source
/// under another module hits (the key is the code's tokens, not where it is).
mod v1 {
    use super::called;
    use flowlib::prelude::*;

    #[derive(FlowState, Default, Serialize, Deserialize)]
    pub(super) struct Versioned {
        pub(super) x: u64,
        pub(super) y: u64,
    }

    #[flow]
    impl Versioned {
        #[step(start, next = end)]
        #[cache]
        fn start(&mut self) -> Result<()> {
            called("start");
            self.y = self.x + 1;
            Ok(())
        }

        #[step(end)]
        fn end(&mut self) -> Result<()> {
            Ok(())
        }
    }
}

mod v1_again {
    use super::called;
    use flowlib::prelude::*;

    #[derive(FlowState, Default, Serialize, Deserialize)]
    pub(super) struct Versioned {
        pub(super) x: u64,
        pub(super) y: u64,
    }

    #[flow]
    impl Versioned {
        #[step(start, next = end)]
        #[cache]
        fn start(&mut self) -> Result<()> {
            called("start");
            self.y = self.x + 1;
            Ok(())
        }

        #[step(end)]
        fn end(&mut self) -> Result<()> {
            Ok(())
        }
    }
}

mod v2_body {
    use super::called;
    use flowlib::prelude::*;

    #[derive(FlowState, Default, Serialize, Deserialize)]
    pub(super) struct Versioned {
        pub(super) x: u64,
        pub(super) y: u64,
    }

    #[flow]
    impl Versioned {
        #[step(start, next = end)]
        #[cache]
        fn start(&mut self) -> Result<()> {
            called("start");
            self.y = self.x + 2;
            Ok(())
        }

        #[step(end)]
        fn end(&mut self) -> Result<()> {
            Ok(())
        }
    }
}

mod v1_bumped {
    use super::called;
    use flowlib::prelude::*;

    #[derive(FlowState, Default, Serialize, Deserialize)]
    pub(super) struct Versioned {
        pub(super) x: u64,
        pub(super) y: u64,
    }

    #[flow]
    impl Versioned {
        #[step(start, next = end)]
        #[cache(version = "2")]
        fn start(&mut self) -> Result<()> {
            called("start");
            self.y = self.x + 1;
            Ok(())
        }

        #[step(end)]
        fn end(&mut self) -> Result<()> {
            Ok(())
        }
    }
}

fn cached_count<F: Flow>(ds: &Datastore) -> (usize, u64) {
    let s = flowlib::run::<F>(ds, &run_options(1)).unwrap();
    assert_eq!(s.status, RunStatus::Succeeded);
    let y: u64 = ds.artifact("Versioned", &s.run_id, "start", "y").unwrap();
    (s.tasks_cached, y)
}

#[test]
fn a_changed_body_or_a_bumped_version_misses_the_same_body_hits() {
    let _g = serial();
    let (_d, ds) = temp_store();
    calls();
    assert_eq!(cached_count::<v1::Versioned>(&ds), (0, 1));
    assert_eq!(
        cached_count::<v1_again::Versioned>(&ds),
        (1, 1),
        "same tokens"
    );
    assert_eq!(
        cached_count::<v2_body::Versioned>(&ds),
        (0, 2),
        "changed body"
    );
    assert_eq!(cached_count::<v2_body::Versioned>(&ds), (1, 2));
    assert_eq!(
        cached_count::<v1_bumped::Versioned>(&ds),
        (0, 1),
        "bumped version"
    );
    assert_eq!(cached_count::<v1_bumped::Versioned>(&ds), (1, 1));
    assert_eq!(calls().len(), 3);
}

#[test]
fn concurrent_runs_with_the_same_keys_both_succeed_and_one_entry_wins() {
    let _g = serial();
    let (_d, ds) = temp_store();
    for _ in 0..3 {
        let runs: Vec<RunSummary> = std::thread::scope(|s| {
            let a = s.spawn(|| run_with(&ds, params(&[("n", "6")])));
            let b = s.spawn(|| run_with(&ds, params(&[("n", "6")])));
            vec![a.join().unwrap(), b.join().unwrap()]
        });
        for r in &runs {
            assert_eq!(report(&ds, r), "label-7 prepared=21 total=97 seed=7");
        }
    }
    calls();
    let (entries, bad) = flowlib::cache::entries(&ds, "Memo", None).unwrap();
    assert!(bad.is_empty(), "{bad:?}");
    // prep, six squares and the join: one entry per key, however many runs computed it.
    assert_eq!(entries.len(), 8, "{entries:#?}");
    let v = flowlib::verify(&ds, None, None).unwrap();
    assert!(v.problems.is_empty(), "{:?}", v.problems);
}

#[test]
fn a_damaged_cache_entry_is_ignored_recomputed_and_replaced() {
    let _g = serial();
    let (dir, ds) = temp_store();
    run_with(&ds, run_options(2));
    calls();
    let (entries, _) = flowlib::cache::entries(&ds, "Memo", Some("prep")).unwrap();
    assert_eq!(entries.len(), 1);
    let path = dir
        .path()
        .join("ds/cache/Memo/prep")
        .join(format!("{}.json", entries[0].key.hex()));
    std::fs::write(&path, b"{ not json").unwrap();
    let v = flowlib::verify(&ds, None, None).unwrap();
    assert!(
        v.problems
            .iter()
            .any(|p| format!("{p:?}").contains("cache entry")),
        "verify reports the damaged entry: {:?}",
        v.problems
    );

    let s = run_with(&ds, run_options(2));
    assert!(calls().contains(&"prep".to_string()), "prep was recomputed");
    assert_eq!(s.tasks_cached, 4, "the squares and the join still hit");
    let (entries, bad) = flowlib::cache::entries(&ds, "Memo", Some("prep")).unwrap();
    assert!(bad.is_empty(), "the entry was replaced: {bad:?}");
    assert_eq!(entries[0].source.run, s.run_id);

    // A wrong manifest digest in an otherwise valid entry is not trusted either.
    let mut e: serde_json::Value = serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
    e["manifest"]["digest"] = serde_json::json!(format!("sha256:{}", "0".repeat(64)));
    std::fs::write(&path, serde_json::to_vec(&e).unwrap()).unwrap();
    run_with(&ds, run_options(2));
    assert!(calls().contains(&"prep".to_string()));
    let v = flowlib::verify(&ds, None, None).unwrap();
    assert!(v.problems.is_empty(), "{:?}", v.problems);
}

#[test]
fn gc_keeps_cached_tasks_and_prunes_entries_by_count_or_age() {
    let _g = serial();
    let (_d, ds) = temp_store();
    let first = run_with(&ds, run_options(2));
    run_with(&ds, params(&[("offset", "5")]));
    let report = flowlib::gc(&ds, false, std::time::Duration::ZERO).unwrap();
    assert_eq!(report.blobs, 0, "everything is referenced: {report:?}");
    let s = run_with(&ds, run_options(2));
    assert_eq!(s.tasks_cached, 5, "after gc every entry still hits");
    assert_eq!(report_of(&ds, &s), report_of(&ds, &first));

    let (all, _) = flowlib::cache::entries(&ds, "Memo", None).unwrap();
    assert_eq!(all.len(), 1 + 3 + 3 + 2, "prep, 2×3 squares, 2 joins");
    let policy = flowlib::CachePolicy::new(None, Some(1));
    let pruned = flowlib::prune_cache(&ds, policy, false).unwrap();
    assert_eq!(
        pruned.len(),
        5 + 1,
        "the newest of each step is kept: {pruned:?}"
    );
    let old = flowlib::CachePolicy::new(Some(std::time::Duration::ZERO), None);
    let pruned = flowlib::prune_cache(&ds, old, true).unwrap();
    assert_eq!(pruned.len(), 3, "a dry run lists the rest");
    assert_eq!(
        flowlib::cache::entries(&ds, "Memo", None).unwrap().0.len(),
        3
    );
    assert_eq!(flowlib::cache::clear(&ds, "Memo", None).unwrap(), 3);
    calls();
    let s = run_with(&ds, run_options(2));
    assert_eq!(s.tasks_cached, 0);
    assert_eq!(calls().len(), 8);
}

fn report_of(ds: &Datastore, s: &RunSummary) -> String {
    report(ds, s)
}

/// The blob files of the local datastore `temp_store` made in `dir`, by name.
fn blob_files(dir: &tempfile::TempDir) -> HashMap<String, u64> {
    walk(&dir.path().join("ds/blobs")).into_iter().collect()
}

fn walk(dir: &std::path::Path) -> Vec<(String, u64)> {
    let mut out = Vec::new();
    let Ok(rd) = std::fs::read_dir(dir) else {
        return out;
    };
    for e in rd.flatten() {
        let p = e.path();
        if p.is_dir() {
            out.extend(walk(&p));
        } else {
            out.push((
                p.display().to_string(),
                e.metadata().map(|m| m.len()).unwrap_or(0),
            ));
        }
    }
    out
}

/// Run by [`equal_maps_hash_the_same_in_different_processes`] in a child process: build a
/// map and a set in the order `FLOWLIB_MAP_CHILD` says, print their digests and the
/// order the map iterates in.
fn map_child(order: &str) {
    use std::collections::{HashMap, HashSet};
    let mut keys: Vec<u32> = (0..300).collect();
    if order == "rev" {
        keys.reverse();
    }
    let map: HashMap<String, (u32, Vec<String>)> = keys
        .iter()
        .map(|&k| {
            (
                format!("key-{k}"),
                (k, vec![format!("v{k}"); (k % 4) as usize]),
            )
        })
        .collect();
    let set: HashSet<(u32, String)> = keys.iter().map(|&k| (k, format!("s{k}"))).collect();
    let digest = |b: Vec<u8>| flowlib::Digest::of(&b).hex();
    println!("\nMAP {}", digest(flowlib::encode_blob(&map).unwrap()));
    println!("SET {}", digest(flowlib::encode_blob(&set).unwrap()));
    let first: Vec<&String> = map.keys().take(8).collect();
    println!("ORDER {first:?}");
}

#[test]
fn equal_maps_hash_the_same_in_different_processes() {
    if let Ok(order) = std::env::var("FLOWLIB_MAP_CHILD") {
        return map_child(&order);
    }
    let line = |out: &str, tag: &str| {
        out.lines()
            .find_map(|l| l.strip_prefix(tag).map(str::to_string))
            .unwrap_or_else(|| panic!("no {tag} line in {out}"))
    };
    let children: Vec<String> = ["fwd", "rev", "fwd"]
        .iter()
        .map(|order| {
            let o = std::process::Command::new(std::env::current_exe().unwrap())
                .args([
                    "--exact",
                    "cache::equal_maps_hash_the_same_in_different_processes",
                    "--nocapture",
                    "--test-threads=1",
                ])
                .env("FLOWLIB_MAP_CHILD", order)
                .output()
                .unwrap();
            assert!(o.status.success(), "{}", flowlib_testkit::text(&o));
            String::from_utf8_lossy(&o.stdout).into_owned()
        })
        .collect();
    let orders: Vec<String> = children.iter().map(|c| line(c, "ORDER ")).collect();
    assert!(
        orders[0] != orders[1] || orders[1] != orders[2],
        "the processes iterate their maps in different orders (else this proves nothing): {orders:?}"
    );
    for tag in ["MAP ", "SET "] {
        let d: Vec<String> = children.iter().map(|c| line(c, tag)).collect();
        assert_eq!(d[0], d[1], "{tag}in two processes, built in two orders");
        assert_eq!(d[0], d[2], "{tag}");
    }
}
