//! Damaged run records (a commit record, a manifest, a `run.json` written over with
//! garbage) are reported and skipped: `verify` names each one and still checks every
//! other blob, `runs` lists the other runs, `dump` shows intact tasks, and `resume`
//! re-runs the tasks whose records are unreadable while reusing the rest.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};

use flowlib::prelude::*;
use flowlib::{Datastore, Digest, OpenMode, ResumeOptions, Run, RunStatus};
use flowlib_testkit::{run_options, text, Sandbox};

static WORK_CALLS: AtomicUsize = AtomicUsize::new(0);

#[derive(FlowState, Default, Serialize, Deserialize)]
struct Patch {
    items: Vec<u64>,
    out: String,
    total: usize,
}

#[flow]
impl Patch {
    #[step(start, next = work, foreach = items)]
    fn start(&mut self) -> Result<()> {
        self.items = (0..4).collect();
        Ok(())
    }

    #[step(next = join)]
    fn work(&mut self, item: &u64) -> Result<()> {
        WORK_CALLS.fetch_add(1, Ordering::SeqCst);
        self.out = format!("item {item} done");
        Ok(())
    }

    #[step(join, next = end)]
    fn join(&mut self, inputs: Inputs<Self>) -> Result<()> {
        self.total = inputs.iter().map(|i| i.out.len()).sum();
        Ok(())
    }

    #[step(end)]
    fn end(&mut self) -> Result<()> {
        Ok(())
    }
}

fn run_dir(root: &Path, flow: &str, run: &str) -> PathBuf {
    root.join("flows").join(flow).join("runs").join(run)
}

/// Every blob the run's readable records reference, leaving out the tasks named.
fn blobs_of(ds: &Datastore, run: &str, without: &[&str]) -> BTreeSet<Digest> {
    let info = ds.run_info("Patch", run).unwrap();
    let mut out: BTreeSet<Digest> = info.record.initial.values().map(|b| b.digest).collect();
    for a in ds.task_attempts("Patch", run).unwrap() {
        if without.contains(&a.task_id().as_str()) {
            continue;
        }
        if let Some(m) = &a.manifest {
            out.extend(m.artifacts.values().map(|b| b.digest));
        }
    }
    out
}

#[test]
fn damaged_records_are_reported_and_skipped_and_resume_reruns_their_tasks() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("ds");
    let ds = Datastore::open(root.to_str().unwrap(), OpenMode::Create).unwrap();
    let other = flowlib::run::<Patch>(&ds, &run_options(2)).unwrap().run_id;
    let run = flowlib::run::<Patch>(&ds, &run_options(2)).unwrap().run_id;
    let full = flowlib::verify(&ds, Some("Patch"), Some(&run)).unwrap();
    assert!(full.is_ok());
    let expected = blobs_of(&ds, &run, &["work/1", "work/2"]);
    let other_blobs = blobs_of(&ds, &other, &[]);
    let other_initial = ds.run_info("Patch", &other).unwrap().record.initial.len();

    // Damage: the commit record of work/1, the manifest of work/2, the other run's run.json.
    let commit = run_dir(&root, "Patch", &run).join("tasks/work/1@0.commit.json");
    assert!(commit.exists(), "{}", commit.display());
    std::fs::write(&commit, "{garbage").unwrap();
    flowlib_testkit::damage_committed_manifest(
        &flowlib_testkit::commit_path(&root, "Patch", &run, "work/2", 0),
        |m| m["host"] = "elsewhere".into(),
    );
    std::fs::write(run_dir(&root, "Patch", &other).join("run.json"), "{garbage").unwrap();
    let ds = Datastore::open(root.to_str().unwrap(), OpenMode::Existing).unwrap();

    // verify names each damaged record and still checks every blob still reachable.
    let report = flowlib::verify(&ds, Some("Patch"), Some(&run)).unwrap();
    let problems: Vec<String> = report.problems.iter().map(|p| format!("{p:?}")).collect();
    assert_eq!(problems.len(), 2, "{problems:#?}");
    assert!(
        problems.iter().any(|p| p.contains("1@0.commit.json")),
        "{problems:#?}"
    );
    assert!(
        problems.iter().any(|p| p.contains("work/2")),
        "{problems:#?}"
    );
    assert_eq!(report.blobs, expected.len(), "{problems:#?}");
    assert!(
        report.blobs > full.blobs / 2,
        "{} of {}",
        report.blobs,
        full.blobs
    );
    // The other run: its run record is damaged, its tasks' blobs are still checked.
    let report = flowlib::verify(&ds, Some("Patch"), Some(&other)).unwrap();
    let problems: Vec<String> = report.problems.iter().map(|p| format!("{p:?}")).collect();
    assert_eq!(problems.len(), 1, "{problems:#?}");
    assert!(problems[0].contains("run record"), "{problems:#?}");
    assert!(
        report.blobs + other_initial >= other_blobs.len() && report.blobs > 0,
        "{} of {}",
        report.blobs,
        other_blobs.len()
    );
    // The whole datastore: all three damaged records.
    let report = flowlib::verify(&ds, None, None).unwrap();
    assert_eq!(report.problems.len(), 3, "{:#?}", report.problems);
    // gc still refuses to sweep a datastore whose references it cannot trust.
    let err = flowlib::gc(&ds, false, std::time::Duration::from_secs(86_400))
        .unwrap_err()
        .to_string();
    assert!(err.contains("gc stopped"), "{err}");

    // runs lists the intact run; the run and its intact tasks can be opened.
    let runs: Vec<String> = ds
        .runs("Patch")
        .unwrap()
        .into_iter()
        .map(|r| r.record.run_id)
        .collect();
    assert_eq!(runs, vec![run.clone()]);
    // Read alone (before the run's attempts are listed), an intact task reads and a
    // damaged one is an error that says its record is damaged.
    let alone = Run::<Patch>::open(&ds, &run).unwrap();
    let out: String = alone.task("work/3").unwrap().artifact("out").unwrap();
    assert_eq!(out, "item 3 done");
    let e = alone.task("work/1").err().expect("damaged").to_string();
    assert!(e.contains("damaged"), "{e}");
    let opened = Run::<Patch>::open(&ds, &run).unwrap();
    assert_eq!(
        opened.damaged().unwrap().len(),
        2,
        "{:#?}",
        opened.damaged()
    );
    let out: String = opened.task("work/3").unwrap().artifact("out").unwrap();
    assert_eq!(out, "item 3 done");
    assert!(opened.task("work/1").is_err());
    assert!(opened.task("work/2").is_err());
    let total: usize = ds.artifact("Patch", &run, "join", "total").unwrap();
    assert_eq!(total, 4 * "item 0 done".len());

    // resume re-runs the two tasks with unreadable records (and the join and end after
    // them), and reuses start, work/0 and work/3.
    WORK_CALLS.store(0, Ordering::SeqCst);
    let opts = ResumeOptions::default().with_origin(&run);
    let s = flowlib::resume::<Patch>(&ds, &run_options(2), &opts).unwrap();
    assert_eq!(s.status, RunStatus::Succeeded);
    assert_eq!(WORK_CALLS.load(Ordering::SeqCst), 2);
    let info = ds.run_info("Patch", &s.run_id).unwrap();
    assert_eq!(info.record.resume.unwrap().reused_tasks, 3);
    let total: usize = ds.artifact("Patch", &s.run_id, "join", "total").unwrap();
    assert_eq!(total, 4 * "item 0 done".len());
    assert!(flowlib::verify(&ds, Some("Patch"), Some(&s.run_id))
        .unwrap()
        .is_ok());
}

#[test]
fn runs_and_dump_report_damaged_records_and_show_the_rest() {
    let sb = Sandbox::new();
    let first = sb.run("hello", &["run"]);
    assert!(first.status.success(), "{}", text(&first));
    let second = sb.run("hello", &["run"]);
    assert!(second.status.success(), "{}", text(&second));
    let ds = sb.open();
    let ids = ds.run_ids("Hello").unwrap();
    let (old, new) = (&ids[0], &ids[1]);
    let root = sb.datastore();
    std::fs::write(run_dir(&root, "Hello", old).join("run.json"), "{garbage").unwrap();
    std::fs::write(
        run_dir(&root, "Hello", new).join("tasks/count/_@0.commit.json"),
        "{garbage",
    )
    .unwrap();

    let o = sb.run("hello", &["runs"]);
    let out = text(&o);
    assert!(o.status.success(), "{out}");
    assert!(out.contains(new.as_str()), "{out}");
    assert!(
        out.lines()
            .any(|l| l.contains(old.as_str()) && l.contains("damaged")),
        "{out}"
    );

    let o = sb.run("hello", &["dump", &format!("{new}/start"), "greeting"]);
    assert!(o.status.success(), "{}", text(&o));
    assert!(text(&o).contains("Hello, world!"), "{}", text(&o));
    let o = sb.run("hello", &["dump", new]);
    let out = text(&o);
    assert!(o.status.success(), "{out}");
    assert!(
        out.lines()
            .any(|l| l.contains("damaged") && l.contains("count")),
        "{out}"
    );

    let o = sb.run("hello", &["resume", "--origin", new]);
    assert!(o.status.success(), "{}", text(&o));
    let id = ds.latest_run("Hello").unwrap().unwrap();
    let info = ds.run_info("Hello", &id).unwrap();
    assert_eq!(info.record.resume.unwrap().reused_tasks, 1);
    let shout: String = ds.artifact("Hello", &id, "shout", "shout").unwrap();
    assert_eq!(shout, "HELLO, WORLD!");
}
