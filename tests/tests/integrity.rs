//! `verify` and `gc` against a real local datastore, over stored objects.

use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use flowlib::prelude::*;
use flowlib::{Datastore, OpenMode, RunStatus};
use flowlib_testkit::{blob_path, run_options};

/// These tests damage, orphan and collect stored objects: every handle here stores every
/// artifact as an object under `blobs/`, none inline in its task's record (that path is
/// tested in `store_format.rs`).
fn objects(url: &str, mode: OpenMode) -> flowlib::Result<Datastore> {
    Datastore::builder(url).mode(mode).inline_limit(0).open()
}

#[derive(FlowState, Default, Serialize, Deserialize)]
struct Keep {
    #[param(default = "x")]
    tag: String,
    values: Vec<u32>,
    total: u32,
}

#[flow]
impl Keep {
    #[step(start, next = end)]
    fn start(&mut self) -> Result<()> {
        self.values = vec![1, 2, 3];
        Ok(())
    }

    #[step(end)]
    fn end(&mut self) -> Result<()> {
        self.total = self.values.iter().sum();
        Ok(())
    }
}

fn setup() -> (tempfile::TempDir, PathBuf, Datastore, String) {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("ds");
    let ds = objects(root.to_str().unwrap(), OpenMode::Create).unwrap();
    let s = flowlib::run::<Keep>(&ds, &run_options(2)).unwrap();
    assert_eq!(s.status, RunStatus::Succeeded);
    (dir, root, ds, s.run_id)
}

fn age(path: &Path, by: Duration) {
    let f = std::fs::OpenOptions::new().write(true).open(path).unwrap();
    f.set_modified(SystemTime::now() - by).unwrap();
}

/// Store a blob nobody references, as a crashed task would leave behind.
fn orphan(root: &Path, value: &str) -> PathBuf {
    let bytes = flowlib::encode_blob(&value.to_string()).unwrap();
    let d = flowlib::Digest::of(&bytes);
    let p = blob_path(root, &d);
    std::fs::create_dir_all(p.parent().unwrap()).unwrap();
    std::fs::write(&p, bytes).unwrap();
    p
}

const DAY: Duration = Duration::from_secs(86_400);

#[test]
fn gc_deletes_only_old_unreferenced_objects() {
    let (_d, root, ds, run) = setup();
    let referenced = flowlib_testkit::count_files(&root.join("blobs"));
    let old = orphan(&root, "left by a crashed task");
    age(&old, 2 * DAY);
    let young = orphan(&root, "written a moment ago");
    // A manifest no commit names (a lost commit race), and an interrupted staged write.
    let manifest = root
        .join("manifests/sha256/ab")
        .join(format!("{}.json", "c".repeat(62)));
    std::fs::create_dir_all(manifest.parent().unwrap()).unwrap();
    std::fs::write(&manifest, "{}").unwrap();
    age(&manifest, 2 * DAY);
    let staged = root.join("blobs/sha256/00/interrupted#3");
    std::fs::create_dir_all(staged.parent().unwrap()).unwrap();
    std::fs::write(&staged, "partial").unwrap();
    age(&staged, 2 * DAY);

    let dry = flowlib::gc(&ds, true, DAY).unwrap();
    assert_eq!((dry.blobs, dry.orphans), (1, 2), "{dry:?}");
    assert!(
        old.exists() && manifest.exists() && staged.exists(),
        "a dry run deletes nothing"
    );

    let r = flowlib::gc(&ds, false, DAY).unwrap();
    assert_eq!((r.blobs, r.orphans), (1, 2), "{r:?}");
    assert!(r.kept_young >= 1);
    assert!(!old.exists() && !manifest.exists() && !staged.exists());
    assert!(young.exists(), "younger than the grace period: kept");
    // Everything a committed run references survives and still verifies.
    assert_eq!(
        flowlib_testkit::count_files(&root.join("blobs")),
        referenced + 1
    );
    assert_eq!(flowlib::verify(&ds, None, None).unwrap().problems.len(), 0);
    let total: u32 = ds.artifact("Keep", &run, "end", "total").unwrap();
    assert_eq!(total, 6);

    // With no grace period the young orphan goes too.
    let r = flowlib::gc(&ds, false, Duration::ZERO).unwrap();
    assert_eq!(r.blobs, 1);
    assert!(!young.exists());
    assert_eq!(flowlib::verify(&ds, None, None).unwrap().problems.len(), 0);
}

#[test]
fn reusing_an_old_unreferenced_blob_refreshes_it() {
    let (_d, root, ds, _run) = setup();
    // The blob of the value "y" exists, unreferenced and old (a crashed run wrote it).
    let stale = orphan(&root, "y");
    age(&stale, 3 * DAY);
    let opts = run_options(2).with_param("tag", "y");
    // A new run produces the same value: it is deduplicated, and its timestamp refreshed
    // so that a concurrent gc's grace period covers it until the run commits.
    let fresh = objects(ds.url(), OpenMode::Existing).unwrap();
    let s = flowlib::run::<Keep>(&fresh, &opts).unwrap();
    assert_eq!(s.status, RunStatus::Succeeded);
    let modified = std::fs::metadata(&stale).unwrap().modified().unwrap();
    assert!(
        modified > SystemTime::now() - Duration::from_secs(600),
        "timestamp refreshed"
    );
    let r = flowlib::gc(&ds, false, DAY).unwrap();
    assert_eq!(r.blobs, 0);
    let tag: String = ds.artifact("Keep", &s.run_id, "end", "tag").unwrap();
    assert_eq!(tag, "y");
}

#[test]
fn verify_names_run_task_artifact_and_digest_of_each_problem() {
    let (_d, root, ds, run) = setup();
    assert_eq!(
        flowlib::verify(&ds, Some("Keep"), Some(&run))
            .unwrap()
            .problems
            .len(),
        0
    );
    let a = ds.successful_task("Keep", &run, "end").unwrap();
    let total = a.manifest.unwrap().artifacts["total"];
    std::fs::remove_file(blob_path(&root, &total.digest)).unwrap();
    // `total` is referenced once (by `end`); verify reports it, and exits non-zero.
    let problems = flowlib::verify(&ds, None, None).unwrap().problems.len();
    assert_eq!(problems, 1);
    let fresh = objects(ds.url(), OpenMode::Existing).unwrap();
    let err = fresh
        .artifact::<u32>("Keep", &run, "end", "total")
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("missing") && err.contains(&total.digest.to_string()),
        "{err}"
    );
    // gc refuses to run on a datastore whose metadata it cannot trust.
    flowlib_testkit::damage_committed_manifest(
        &flowlib_testkit::commit_path(&root, "Keep", &run, "start", 0),
        |m| m["host"] = "elsewhere".into(),
    );
    let err = flowlib::gc(&ds, false, DAY).unwrap_err().to_string();
    assert!(err.contains("gc stopped"), "{err}");
}

/// Flip one byte in the middle of a file, keeping its size; returns the good bytes.
fn flip_a_byte(path: &Path) -> Vec<u8> {
    let good = std::fs::read(path).unwrap();
    let mut bytes = good.clone();
    let mid = bytes.len() / 2;
    bytes[mid] ^= 0x01;
    std::fs::write(path, &bytes).unwrap();
    good
}

#[test]
fn a_corrupt_blob_found_on_read_is_quarantined_and_the_next_run_rewrites_it() {
    let (_d, root, ds, run) = setup();
    let values = ds
        .successful_task("Keep", &run, "end")
        .unwrap()
        .manifest
        .unwrap()
        .artifacts["values"];
    let path = blob_path(&root, &values.digest);
    let good = flip_a_byte(&path);

    // The read fails as before, and moves the damaged blob aside.
    let fresh = objects(ds.url(), OpenMode::Existing).unwrap();
    let err = fresh
        .artifact::<Vec<u32>>("Keep", &run, "end", "values")
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("corrupted") && err.contains(&values.digest.to_string()),
        "{err}"
    );
    assert!(!path.exists(), "quarantined on read");
    let kept = flowlib_testkit::count_files(&root.join("quarantine"));
    assert_eq!(kept, 1, "the damaged copy is kept for inspection");
    let report = flowlib::verify(&fresh, None, None).unwrap();
    assert_eq!(report.problems.len(), 1, "{report:?}");

    // The same handle writes the value again: it must not remember the blob as stored.
    let s = flowlib::run::<Keep>(&fresh, &run_options(2)).unwrap();
    assert_eq!(s.status, RunStatus::Succeeded);
    assert_eq!(std::fs::read(&path).unwrap(), good, "rewritten");
    assert!(flowlib::verify(&fresh, None, None).unwrap().is_ok());
    let v: Vec<u32> = fresh.artifact("Keep", &run, "end", "values").unwrap();
    assert_eq!(v, [1, 2, 3]);

    // gc sweeps the quarantined copy once it is older than the grace period.
    let r = flowlib::gc(&ds, false, DAY).unwrap();
    assert_eq!(r.orphans, 0, "{r:?}");
    let r = flowlib::gc(&ds, false, Duration::ZERO).unwrap();
    assert_eq!(r.orphans, 1, "{r:?}");
    assert_eq!(flowlib_testkit::count_files(&root.join("quarantine")), 0);
}

#[test]
fn verify_repair_quarantines_every_corrupt_blob_and_the_next_run_rewrites_them() {
    let (_d, root, ds, run) = setup();
    let end = ds
        .successful_task("Keep", &run, "end")
        .unwrap()
        .manifest
        .unwrap()
        .artifacts;
    let (values, total, tag) = (end["values"], end["total"], end["tag"]);
    let good_values = flip_a_byte(&blob_path(&root, &values.digest));
    let total_path = blob_path(&root, &total.digest);
    let good_total = std::fs::read(&total_path).unwrap();
    std::fs::write(&total_path, &good_total[..good_total.len() - 1]).unwrap();
    std::fs::remove_file(blob_path(&root, &tag.digest)).unwrap();

    let mut r = flowlib::verify(&ds, None, None).unwrap();
    assert_eq!(r.problems.len(), 3, "{r:?}");
    assert!(r.quarantined.is_empty(), "plain verify moves nothing");
    assert!(total_path.exists());
    r.repair(&ds).unwrap();
    let mut moved: Vec<flowlib::Digest> = r.quarantined.iter().map(|q| q.0).collect();
    moved.sort();
    let mut corrupt = vec![values.digest, total.digest];
    corrupt.sort();
    assert_eq!(
        moved, corrupt,
        "the corrupt blobs, not the missing one: {r:?}"
    );
    assert_eq!(r.problems.len(), 3, "the runs stay damaged until rewritten");
    assert!(!blob_path(&root, &values.digest).exists() && !total_path.exists());
    assert_eq!(flowlib_testkit::count_files(&root.join("quarantine")), 2);
    let mut again = flowlib::verify(&ds, None, None).unwrap();
    again.repair(&ds).unwrap();
    assert!(again.quarantined.is_empty(), "{again:?}");

    // The next run stores all three again.
    let fresh = objects(ds.url(), OpenMode::Existing).unwrap();
    let s = flowlib::run::<Keep>(&fresh, &run_options(2)).unwrap();
    assert_eq!(s.status, RunStatus::Succeeded);
    assert!(flowlib::verify(&fresh, None, None).unwrap().is_ok());
    assert_eq!(
        std::fs::read(blob_path(&root, &values.digest)).unwrap(),
        good_values
    );
    assert_eq!(std::fs::read(&total_path).unwrap(), good_total);
    let total: u32 = fresh.artifact("Keep", &run, "end", "total").unwrap();
    assert_eq!(total, 6);
}

/// A wide foreach whose tasks store values that old unreferenced blobs already hold.
#[derive(FlowState, Default, Serialize, Deserialize)]
struct Fan {
    #[param(default = 0u32)]
    round: u32,
    items: Vec<u32>,
    out: String,
    count: usize,
}

const FAN: u32 = 1500;

fn fan_value(round: u32, item: u32) -> String {
    format!("gc race round {round} item {item}")
}

#[flow]
impl Fan {
    #[step(start, next = work, foreach = items)]
    fn start(&mut self) -> Result<()> {
        self.items = (0..FAN).collect();
        Ok(())
    }

    #[step(next = join)]
    fn work(&mut self, item: &u32) -> Result<()> {
        self.out = fan_value(self.round, *item);
        Ok(())
    }

    #[step(join, next = end)]
    fn join(&mut self, inputs: Inputs<Self>) -> Result<()> {
        self.count = inputs.iter().count();
        Ok(())
    }

    #[step(end)]
    fn end(&mut self) -> Result<()> {
        Ok(())
    }
}

/// Issue #8 item 1: a `gc` running next to a run must not delete an old unreferenced blob
/// that the run finds, refreshes and then commits. Old orphans hold exactly the values the
/// run's tasks produce (as deleted runs and abandoned attempts leave them), among many
/// unrelated old orphans that keep gc's sweep busy; gc runs in a loop for the whole run.
#[test]
fn gc_next_to_a_run_never_deletes_what_the_run_commits() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("ds");
    let ds = objects(root.to_str().unwrap(), OpenMode::Create).unwrap();
    for round in 0..3u32 {
        for item in 0..FAN {
            age(&orphan(&root, &fan_value(round, item)), 2 * DAY);
        }
        for n in 0..4 * FAN {
            age(&orphan(&root, &format!("unrelated {round} {n}")), 2 * DAY);
        }
        let done = std::sync::atomic::AtomicBool::new(false);
        let (summary, passes) = std::thread::scope(|s| {
            let gc = s.spawn(|| {
                let gc_ds = objects(ds.url(), OpenMode::Existing).unwrap();
                let mut passes = 0;
                while !done.load(std::sync::atomic::Ordering::SeqCst) {
                    flowlib::gc(&gc_ds, false, DAY).unwrap();
                    passes += 1;
                    std::thread::sleep(Duration::from_millis(5));
                }
                passes
            });
            let run_ds = objects(ds.url(), OpenMode::Existing).unwrap();
            let opts = run_options(2).with_param("round", round.to_string());
            let summary = flowlib::run::<Fan>(&run_ds, &opts);
            done.store(true, std::sync::atomic::Ordering::SeqCst);
            (summary, gc.join().unwrap())
        });
        let summary = summary.unwrap();
        assert_eq!(summary.status, RunStatus::Succeeded);
        assert!(passes > 0);
        let report = flowlib::verify(&ds, None, None).unwrap();
        assert!(
            report.problems.is_empty(),
            "round {round}: gc deleted {} blobs the run committed, e.g. {:?}",
            report.problems.len(),
            report.problems.first()
        );
        let count: usize = ds.artifact("Fan", &summary.run_id, "end", "count").unwrap();
        assert_eq!(count, FAN as usize);
    }
}
